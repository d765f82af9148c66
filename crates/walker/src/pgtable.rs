//! One address space's page tables, walked from `mm->pgd`: 4- and 5-level
//! paging, 2 MiB and 1 GiB leaves, PROT_NONE leaves; bounded, with every
//! table page checked to occur once per address space.
//!
//! KPTI: with page-table isolation Linux allocates the PGD as two pages
//! (`PGD_ALLOCATION_ORDER` 1); `mm->pgd` is the kernel's copy and the page
//! after it the user copy. Linux writes each user-half top-level entry to
//! both (`pti_set_user_pgtbl`, the kernel copy gaining NX), so both point
//! at the same lower tables and reading the kernel copy finds every user
//! mapping. The walker reads only that copy and counts the twin page as a
//! page-table frame of the process when the PGD is 8 KiB aligned.

use alloc::collections::BTreeSet;
use alloc::vec;
use alloc::vec::Vec;

use crate::error::WalkError;
use crate::kernel::{decode, Entry, Kernel};
use crate::mem::{PhysMem, PAGE_SIZE};
use crate::profile::kernel_half;

/// Top-level entries covering user space (the lower half).
pub const USER_TOP_ENTRIES: usize = 256;

/// Frames found in one address space.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MmFrames {
    /// Mapped guest frames as `(first pfn, count)`, adjacent runs merged,
    /// clipped to guest RAM.
    pub ranges: Vec<(u64, u64)>,
    /// Page-table frames (the PGD, its KPTI twin, every lower table).
    pub tables: Vec<u64>,
    /// 4 KiB frames mapped inside RAM, duplicates counted.
    pub pages: u64,
    /// 4 KiB frames mapped outside RAM (device memory), ignored.
    pub outside_ram: u64,
}

impl MmFrames {
    fn add(&mut self, pfn: u64, count: u64, nr_pfns: u64) {
        let end = pfn.saturating_add(count).min(nr_pfns);
        if pfn >= end {
            self.outside_ram = self.outside_ram.saturating_add(count);
            return;
        }
        let n = end - pfn;
        self.outside_ram = self.outside_ram.saturating_add(count - n);
        self.pages = self.pages.saturating_add(n);
        if let Some(last) = self.ranges.last_mut() {
            if last.0 + last.1 == pfn {
                last.1 += n;
                return;
            }
        }
        self.ranges.push((pfn, n));
    }
}

struct Ctx<'k, 'a, M: PhysMem + ?Sized> {
    k: &'k Kernel<'a, M>,
    seen: BTreeSet<u64>,
    budget: &'k mut u64,
    out: &'k mut MmFrames,
    bytes: Vec<u8>,
    nr_pfns: u64,
}

impl<M: PhysMem + ?Sized> Ctx<'_, '_, M> {
    /// Claims table `pa` and reads its entries into `dst`.
    fn load(&mut self, pa: u64, dst: &mut [u64]) -> Result<(), WalkError> {
        if !pa.is_multiple_of(PAGE_SIZE)
            || pa
                .checked_add(PAGE_SIZE)
                .is_none_or(|e| e > self.k.ram_end())
        {
            return Err(WalkError::TableOutsideRam(pa));
        }
        if *self.budget == 0 {
            return Err(WalkError::TooManyTables);
        }
        *self.budget -= 1;
        if !self.seen.insert(pa) {
            return Err(WalkError::TableReused(pa));
        }
        self.out.tables.push(pa / PAGE_SIZE);
        self.k
            .mem()
            .read(pa, &mut self.bytes)
            .map_err(|e| WalkError::Mem(e, pa))?;
        for (d, c) in dst.iter_mut().zip(self.bytes.chunks_exact(8)) {
            let mut a = [0u8; 8];
            a.copy_from_slice(c);
            *d = u64::from_le_bytes(a);
        }
        Ok(())
    }

    /// Walks the table already loaded in `bufs[0]` at `level`.
    fn walk(&mut self, level: u32, n: usize, bufs: &mut [Vec<u64>]) -> Result<(), WalkError> {
        let Some((cur, rest)) = bufs.split_first_mut() else {
            return Err(WalkError::BadEntry(level));
        };
        for &e in cur.iter().take(n) {
            match decode(e, level)? {
                Entry::None => {}
                Entry::Leaf(base) => {
                    let count = 1u64 << (9 * level.saturating_sub(1).min(2));
                    self.out.add(base / PAGE_SIZE, count, self.nr_pfns);
                }
                Entry::Table(pa) => {
                    let Some(next) = rest.first_mut() else {
                        return Err(WalkError::BadEntry(level));
                    };
                    self.load(pa, next)?;
                    self.walk(level.saturating_sub(1), 512, rest)?;
                }
            }
        }
        Ok(())
    }
}

/// Walks the user half of the address space of `mm` (a kernel address of
/// an `mm_struct`), appending what it finds to `out` (partial results stay
/// there on error). Each table page read costs one unit of `budget`.
pub fn walk_mm<M: PhysMem + ?Sized>(
    k: &Kernel<'_, M>,
    mm: u64,
    budget: &mut u64,
    out: &mut MmFrames,
) -> Result<(), WalkError> {
    let p = *k.profile();
    let pgd = k.read_u64(mm.wrapping_add(u64::from(p.mm_pgd)))?;
    if !kernel_half(pgd, p.levels) || !pgd.is_multiple_of(PAGE_SIZE) {
        return Err(WalkError::BadMm(pgd));
    }
    let pgd_pa = k.virt_to_phys(pgd)?;
    let levels = p.levels as usize;
    let mut bufs: Vec<Vec<u64>> = (0..levels).map(|_| vec![0u64; 512]).collect();
    let mut ctx = Ctx {
        k,
        seen: BTreeSet::new(),
        budget,
        out,
        bytes: vec![0u8; PAGE_SIZE as usize],
        nr_pfns: k.mem().nr_pfns(),
    };
    if let Some(top) = bufs.first_mut() {
        ctx.load(pgd_pa, top)?;
    }
    if pgd_pa.is_multiple_of(2 * PAGE_SIZE) && pgd_pa + 2 * PAGE_SIZE <= k.ram_end() {
        ctx.out.tables.push(pgd_pa / PAGE_SIZE + 1);
    }
    ctx.walk(p.levels, USER_TOP_ENTRIES, &mut bufs)
}
