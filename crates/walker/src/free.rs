//! Free frames from the guest's page descriptors (`struct page` in the
//! vmemmap array).
//!
//! Linux 6.1 (include/linux/page-flags.h, mm/page_alloc.c): the first page
//! of a free buddy block has PageBuddy set, which for 4.18-6.8 means
//! `(page_type & (PAGE_TYPE_BASE | PG_buddy)) == PAGE_TYPE_BASE` with
//! `PAGE_TYPE_BASE` 0xf0000000 and `PG_buddy` 0x80 (`__SetPageBuddy`
//! clears the bit); its `private` holds the block's order (`buddy_order()`
//! reads `page_private()`), and the block covers `2^order` frames from the
//! head, which is aligned to its size. The other pages of a free block are
//! not marked; their `page_type` word is `_mapcount` at its reset value -1.
//! Pages on per-CPU lists are not PageBuddy and are not reported free.
//!
//! A frame is reported free only when proven: its block's head is PageBuddy
//! with an order ≤ the profile's bound, the head is aligned, the block lies
//! inside RAM, every page descriptor in the block was read, no other page
//! in the block is PageBuddy, and every other page's `page_type` is -1.

use crate::kernel::Kernel;
use crate::mem::PhysMem;
use depmig_precopy::DirtyBitmap;

/// Descriptors read per translation step.
const CHUNK: u64 = 64;

/// The result of a free-page scan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FreeScan {
    /// Frames proven free.
    pub free: DirtyBitmap,
    /// Free blocks accepted.
    pub blocks: u64,
    /// Blocks whose head claimed free but failed a check.
    pub rejected: u64,
    /// Frames whose descriptor could not be read.
    pub unreadable: u64,
}

#[derive(Clone, Copy)]
struct Pending {
    head: u64,
    end: u64,
    ok: bool,
}

/// Scans the page descriptors of every frame.
pub fn scan_free<M: PhysMem + ?Sized>(k: &Kernel<'_, M>) -> FreeScan {
    let p = *k.profile();
    let lay = p.page;
    let size = u64::from(lay.size);
    let nr = k.mem().nr_pfns();
    let mut out = FreeScan {
        free: DirtyBitmap::new(nr),
        blocks: 0,
        rejected: 0,
        unreadable: 0,
    };
    let mut buf = alloc::vec![0u8; (CHUNK * size) as usize];
    let mut pending: Option<Pending> = None;
    let mut base = 0u64;
    while base < nr {
        let n = CHUNK.min(nr - base);
        let len = (n * size) as usize;
        let va = base
            .checked_mul(size)
            .and_then(|o| p.vmemmap_base.checked_add(o));
        let chunk = buf.get_mut(..len);
        let readable = match (va, chunk) {
            (Some(va), Some(chunk)) => k.read_virt(va, chunk).is_ok(),
            _ => false,
        };
        for i in 0..n {
            let pfn = base + i;
            if let Some(b) = pending {
                if pfn >= b.end {
                    commit(&mut out, b);
                    pending = None;
                }
            }
            if !readable {
                out.unreadable += 1;
                if let Some(b) = pending.as_mut() {
                    b.ok = false;
                }
                continue;
            }
            let at = (i * size) as usize;
            let page_type = field_u32(&buf, at + lay.page_type as usize);
            let buddy = page_type & lay.buddy_mask == lay.buddy_value;
            match pending.as_mut() {
                // Inside a block: tails must be unmarked, unmapped pages.
                Some(b) if buddy || page_type != u32::MAX => b.ok = false,
                Some(_) => {}
                None if buddy => {
                    let order = field_u64(&buf, at + lay.private as usize);
                    let fits = order <= u64::from(p.max_order.min(20))
                        && pfn.is_multiple_of(1u64 << order)
                        && pfn + (1u64 << order) <= nr;
                    if fits {
                        pending = Some(Pending {
                            head: pfn,
                            end: pfn + (1u64 << order),
                            ok: true,
                        });
                    } else {
                        out.rejected += 1;
                    }
                }
                None => {}
            }
        }
        base += n;
    }
    if let Some(b) = pending {
        commit(&mut out, b);
    }
    out
}

fn commit(out: &mut FreeScan, b: Pending) {
    if b.ok {
        crate::bits::set_range(&mut out.free, b.head, b.end - b.head);
        out.blocks += 1;
    } else {
        out.rejected += 1;
    }
}

fn field_u32(buf: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    if let Some(s) = buf.get(at..at + 4) {
        a.copy_from_slice(s);
    }
    u32::from_le_bytes(a)
}

fn field_u64(buf: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    match buf.get(at..at + 8) {
        Some(s) => a.copy_from_slice(s),
        None => return u64::MAX,
    }
    u64::from_le_bytes(a)
}
