//! Free frames from the guest's page descriptors (`struct page` in the
//! vmemmap array).
//!
//! Linux (include/linux/page-flags.h, mm/page_alloc.c): the first page of a
//! free buddy block is PageBuddy, which the profile states as a rule on
//! `page_type` (`page_type & buddy_mask == buddy_value`) of the guest's
//! page-type scheme: 4.18-6.8 clear `PG_buddy` 0x80 under `PAGE_TYPE_BASE`
//! 0xf0000000, 6.12 writes `PGTY_buddy` into the top byte. Its `private`
//! holds the block's order (`buddy_order()` reads `page_private()`), at
//! most the profile's `max_order`, and the block covers `2^order` frames
//! from the head, which is aligned to its size. The other pages of a free
//! block are not marked; their `page_type` word is `_mapcount` at its
//! reset value -1 in both schemes. Pages on per-CPU lists are not
//! PageBuddy and are not reported free.
//!
//! A frame is reported free only when proven: its block's head is PageBuddy
//! with an order ≤ the profile's bound, the head is aligned, the block lies
//! inside RAM, every page descriptor in the block was read, no other page
//! in the block is PageBuddy, and every other page's `page_type` is -1.
//!
//! [`scan_free`] reads the whole array (64 descriptors a frame, 1024
//! frames for 256 MiB); [`free_among`] decides a few frames (the dirty
//! pages of a stop-and-copy round) from the descriptors that can matter:
//! the heads each frame's block could start at and the blocks they claim.

use crate::kernel::Kernel;
use crate::mem::PhysMem;
use crate::profile::MAX_ORDER_BOUND;
use alloc::collections::BTreeMap;
use alloc::vec::Vec;
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
    /// Page descriptors read.
    pub descriptors: u64,
}

impl FreeScan {
    /// Nothing found yet, for a guest of `nr` frames.
    fn empty(nr: u64) -> Self {
        FreeScan {
            free: DirtyBitmap::new(nr),
            blocks: 0,
            rejected: 0,
            unreadable: 0,
            descriptors: 0,
        }
    }
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
    let mut out = FreeScan::empty(nr);
    let mut buf = alloc::vec![0u8; (CHUNK * size) as usize];
    let mut pending: Option<Pending> = None;
    let mut base = 0u64;
    while base < nr {
        let n = CHUNK.min(nr - base);
        let len = (n * size) as usize;
        let va = descriptor_va(k, base);
        let chunk = buf.get_mut(..len);
        let readable = match (va, chunk) {
            (Some(va), Some(chunk)) => k.read_virt(va, chunk).is_ok(),
            _ => false,
        };
        if readable {
            out.descriptors += n;
        }
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
                    let fits = order <= u64::from(p.max_order.min(MAX_ORDER_BOUND))
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

/// `page->flags` bits no free page carries: the kernel clears every page
/// flag as it frees a page (`free_pages_prepare` clears
/// `PAGE_FLAGS_CHECK_AT_PREP`, all of them but hwpoison, on each page of
/// the block), and the low 16 are page flags in every layout since 4.x
/// (zone, node and section numbers sit at the top of the word). A frame
/// with one of them set is in use: slab, page cache, reserved, locked.
/// (A kernel that reports free pages to a balloon marks them with an alias
/// of `PG_uptodate`: such pages are reported in use, which only sends them.)
pub const IN_USE_FLAGS: u64 = 0xffff;

/// What is known about one frame as a possible block head.
#[derive(Clone, Copy)]
enum Head {
    /// Its descriptor shows it in use: neither a head nor a tail.
    InUse,
    /// Not a PageBuddy head with an order that fits (aligned, within the
    /// profile's bound, inside RAM), or its descriptor is unreadable.
    Plain,
    /// A fitting head whose block `[head, end)` failed a check.
    Rejected(u64),
    /// A fitting head whose block `[head, end)` is proven free.
    Accepted(u64),
    /// A fitting head ending at `end`, its block not yet checked.
    Unchecked(u64),
}

/// Which frames of `among` are free, reading only the descriptors that can
/// decide them. A frame is free when, of the heads its block could start
/// at (the frame aligned down to each order up to the profile's bound),
/// exactly one is a fitting PageBuddy head whose block covers the frame,
/// and that block passes [`scan_free`]'s checks; a frame whose own
/// descriptor says it is in use (a `page_type` other than -1 and
/// PageBuddy, or one of [`IN_USE_FLAGS`]) is decided by that alone. In a
/// consistent guest the answer is `scan_free`'s restricted to `among`; in
/// any guest it is a subset of it (a second head covering the frame is one
/// `scan_free` would also have rejected the block for).
///
/// Each head is read and each block checked once, and the descriptors of
/// the next few dozen frames are asked of the memory together
/// ([`PhysMem::prefetch`]). When `among` holds more than half as many
/// frames as the descriptor array fills, or the descriptors read would
/// exceed a whole scan's, it scans the whole array instead.
pub fn free_among<M: PhysMem + ?Sized>(k: &Kernel<'_, M>, among: &DirtyBitmap) -> FreeScan {
    let nr = k.mem().nr_pfns();
    let array_frames = nr.saturating_mul(u64::from(k.profile().page.size)) / crate::mem::PAGE_SIZE;
    if among.count() > array_frames / 2 {
        return restricted(scan_free(k), among);
    }
    let mut t = Targeted {
        k,
        nr,
        max_order: k.profile().max_order.min(MAX_ORDER_BOUND),
        heads: BTreeMap::new(),
        block: alloc::vec![0u8; (CHUNK * u64::from(k.profile().page.size)) as usize],
        out: FreeScan::empty(nr),
    };
    let cands: Vec<u64> = among.iter_ones().filter(|&p| p < nr).collect();
    let mut frames: Vec<u64> = Vec::with_capacity(PREFETCH + 32);
    let mut i = 0;
    // Each pass decides at least one frame: bounded by `among`'s size.
    while i < cands.len() {
        // The next frames whose own descriptors fit one prefetch; then,
        // for those their descriptor does not show in use, the
        // descriptors of their possible heads.
        frames.clear();
        let mut j = i;
        while let Some(&pfn) = cands.get(j) {
            let before = frames.len();
            t.descriptor_frames(pfn, 0, &mut frames);
            if before > 0 && frames.len() > PREFETCH {
                frames.truncate(before);
                break;
            }
            j += 1;
        }
        let chunk = cands.get(i..j).unwrap_or(&[]);
        k.mem().prefetch(&frames);
        frames.clear();
        for &pfn in chunk {
            if !t.look(pfn) && frames.len() < PREFETCH {
                t.descriptor_frames(pfn, t.max_order, &mut frames);
            }
        }
        k.mem().prefetch(&frames);
        for &pfn in chunk {
            if t.out.descriptors > nr {
                return restricted(scan_free(k), among);
            }
            t.decide(pfn);
        }
        i = j;
    }
    let mut out = t.out;
    out.free.and_with(among);
    out
}

/// Descriptor frames [`free_among`] and the census ask their memory to
/// fetch together (below the appliance's 128-page cache, leaving room for
/// page tables).
pub(crate) const PREFETCH: usize = 48;

/// The state of one [`free_among`].
struct Targeted<'k, 'a, M: PhysMem + ?Sized> {
    k: &'k Kernel<'a, M>,
    nr: u64,
    max_order: u32,
    heads: BTreeMap<u64, Head>,
    block: Vec<u8>,
    out: FreeScan,
}

impl<M: PhysMem + ?Sized> Targeted<'_, '_, M> {
    /// The distinct guest frames holding the descriptors of `pfn`'s
    /// possible heads up to `max_order` not read yet, appended to `frames`.
    fn descriptor_frames(&self, pfn: u64, max_order: u32, frames: &mut Vec<u64>) {
        let mut last = u64::MAX;
        for order in 0..=max_order {
            let h = pfn & !((1u64 << order) - 1);
            if h == last || self.heads.contains_key(&h) {
                continue;
            }
            last = h;
            if let Some(f) = descriptor_frame(self.k, h) {
                if !frames.contains(&f) {
                    frames.push(f);
                }
            }
        }
    }

    /// Reads `pfn`'s own descriptor (once); whether it shows the frame in
    /// use, which decides it.
    fn look(&mut self, pfn: u64) -> bool {
        matches!(self.head(pfn), Head::InUse)
    }

    /// What frame `h`'s descriptor says of it as a head, read once.
    fn head(&mut self, h: u64) -> Head {
        if let Some(&v) = self.heads.get(&h) {
            return v;
        }
        let v = read_head(self.k, h, self.nr, self.max_order, &mut self.out);
        self.heads.insert(h, v);
        v
    }

    /// Decides frame `pfn`.
    fn decide(&mut self, pfn: u64) {
        if self.out.free.test(pfn) {
            return;
        }
        let mut covering: Option<u64> = None;
        let mut conflict = false;
        let mut last = u64::MAX;
        for order in 0..=self.max_order {
            let h = pfn & !((1u64 << order) - 1);
            if h == last {
                continue;
            }
            last = h;
            let end = match self.head(h) {
                // A frame in use is not the tail of a free block.
                Head::InUse if order == 0 => return,
                Head::Plain | Head::InUse => continue,
                Head::Rejected(e) | Head::Accepted(e) | Head::Unchecked(e) => e,
            };
            if pfn < end {
                conflict |= covering.is_some();
                covering = Some(h);
            }
        }
        let Some(h) = covering else { return };
        let verdict = match self.heads.get(&h) {
            Some(&Head::Unchecked(end)) if !conflict => {
                if check_block(self.k, h, end, &mut self.block, &mut self.out) {
                    crate::bits::set_range(&mut self.out.free, h, end - h);
                    self.out.blocks += 1;
                    Head::Accepted(end)
                } else {
                    self.out.rejected += 1;
                    Head::Rejected(end)
                }
            }
            Some(&Head::Unchecked(end)) => {
                self.out.rejected += 1;
                Head::Rejected(end)
            }
            Some(&v) => v,
            None => Head::Plain,
        };
        self.heads.insert(h, verdict);
    }
}

/// Frame `pfn`'s descriptor: its `flags`, `page_type` and `private`
/// words, read through the kernel's vmemmap mapping.
pub(crate) fn descriptor<M: PhysMem + ?Sized>(
    k: &Kernel<'_, M>,
    pfn: u64,
) -> Option<(u64, u32, u64)> {
    let lay = k.profile().page;
    let mut d = [0u8; 64];
    let size = (lay.size as usize).min(d.len());
    k.read_virt(descriptor_va(k, pfn)?, d.get_mut(..size)?)
        .ok()?;
    Some((
        field_u64(&d, lay.flags as usize),
        field_u32(&d, lay.page_type as usize),
        field_u64(&d, lay.private as usize),
    ))
}

/// The kernel virtual address of frame `pfn`'s descriptor (in the
/// vmemmap array), if it does not overflow.
fn descriptor_va<M: PhysMem + ?Sized>(k: &Kernel<'_, M>, pfn: u64) -> Option<u64> {
    let p = k.profile();
    pfn.checked_mul(u64::from(p.page.size))
        .and_then(|o| p.vmemmap_base.checked_add(o))
}

/// The guest frame holding frame `pfn`'s descriptor.
pub(crate) fn descriptor_frame<M: PhysMem + ?Sized>(k: &Kernel<'_, M>, pfn: u64) -> Option<u64> {
    k.virt_to_phys(descriptor_va(k, pfn)?)
        .ok()
        .map(|pa| pa / crate::mem::PAGE_SIZE)
}

/// Reads frame `h`'s descriptor as a possible head.
fn read_head<M: PhysMem + ?Sized>(
    k: &Kernel<'_, M>,
    h: u64,
    nr: u64,
    max_order: u32,
    out: &mut FreeScan,
) -> Head {
    let lay = k.profile().page;
    let Some((flags, page_type, order)) = descriptor(k, h) else {
        out.unreadable += 1;
        return Head::Plain;
    };
    out.descriptors += 1;
    if flags & IN_USE_FLAGS != 0 {
        return Head::InUse;
    }
    if page_type & lay.buddy_mask != lay.buddy_value {
        return if page_type == u32::MAX {
            Head::Plain
        } else {
            Head::InUse
        };
    }
    let fits = order <= u64::from(max_order) && h.is_multiple_of(1u64 << order);
    match h.checked_add(1u64 << order.min(63)) {
        Some(end) if fits && end <= nr => Head::Unchecked(end),
        _ => {
            out.rejected += 1;
            Head::Plain
        }
    }
}

/// Checks the tails of block `[h, end)`: every descriptor read, none
/// PageBuddy, every `page_type` -1.
fn check_block<M: PhysMem + ?Sized>(
    k: &Kernel<'_, M>,
    h: u64,
    end: u64,
    buf: &mut [u8],
    out: &mut FreeScan,
) -> bool {
    let p = k.profile();
    let size = u64::from(p.page.size);
    let mut base = h + 1;
    // Bounded by the block's size, at most 2^20 frames.
    while base < end {
        let n = CHUNK.min(end - base);
        let va = descriptor_va(k, base);
        let Some(chunk) = buf.get_mut(..(n * size) as usize) else {
            return false;
        };
        if va.is_none_or(|va| k.read_virt(va, chunk).is_err()) {
            out.unreadable += n;
            return false;
        }
        out.descriptors += n;
        for i in 0..n {
            let at = (i * size) as usize + p.page.page_type as usize;
            if field_u32(chunk, at) != u32::MAX {
                return false;
            }
        }
        base += n;
    }
    true
}

/// A whole scan's answer restricted to `among`.
fn restricted(mut scan: FreeScan, among: &DirtyBitmap) -> FreeScan {
    scan.free.and_with(among);
    scan
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
