//! Kernel virtual addresses to guest-physical ones: the direct map, the
//! kernel image mapping, and everything else through the kernel's own page
//! tables (`init_top_pgt`), with the x86-64 entry rules the page-table
//! walker shares.

use crate::error::WalkError;
use crate::mem::{read_u64, PhysMem, PAGE_SIZE};
use crate::profile::{canonical, KernelProfile, KERNEL_IMAGE_SIZE, START_KERNEL_MAP};

/// Entry bit: present.
pub const PTE_PRESENT: u64 = 1 << 0;
/// Entry bit: page size (a leaf at PUD and PMD level).
pub const PTE_PSE: u64 = 1 << 7;
/// Entry bit: `_PAGE_PROTNONE` (the global bit, reused while not present;
/// arch/x86/include/asm/pgtable_types.h, Linux 6.1).
pub const PTE_PROTNONE: u64 = 1 << 8;
/// Physical address bits of an entry (`__PHYSICAL_MASK_SHIFT` 52).
pub const PTE_ADDR: u64 = 0x000f_ffff_ffff_f000;
/// Physical address bits of a 2 MiB leaf.
pub const PMD_HUGE_ADDR: u64 = 0x000f_ffff_ffe0_0000;
/// Physical address bits of a 1 GiB leaf.
pub const PUD_HUGE_ADDR: u64 = 0x000f_ffff_c000_0000;
/// Bit 12 of a huge leaf is its PAT bit, not an address bit.
pub const HUGE_PAT: u64 = 1 << 12;

/// What one page-table entry says, under Linux's conventions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Entry {
    /// Nothing mapped (not present: empty, swap or migration entry).
    None,
    /// A lower-level table at this guest-physical address.
    Table(u64),
    /// A leaf mapping this guest-physical base.
    Leaf(u64),
}

/// Decodes `e` found at `level` (1 = PTE, 2 = PMD, 3 = PUD, 4 = P4D/PML4,
/// 5 = PML5).
///
/// A not-present entry with `_PAGE_PROTNONE` set is a PROT_NONE (or NUMA
/// hinting) mapping: it still maps a frame, whose address bits Linux stores
/// inverted (L1TF mitigation, arch/x86/include/asm/pgtable-invert.h, 6.1).
/// Swap entries keep that bit clear (their type starts at bit 9), so they
/// decode as [`Entry::None`]. Non-leaf entries are only followed when
/// present; a PROT_NONE non-leaf entry or a PSE bit above the PUD level is
/// an error.
pub fn decode(e: u64, level: u32) -> Result<Entry, WalkError> {
    let present = e & PTE_PRESENT != 0;
    let protnone = !present && e & PTE_PROTNONE != 0;
    // A huge PMD being split is invalidated (`pmdp_invalidate`: present
    // and PROTNONE cleared, PSE kept, so `pmd_present()` still holds); it
    // still maps its frames. Migration entries have PSE clear.
    let invalidated = level == 2 && !present && !protnone && e & PTE_PSE != 0;
    if !present && !protnone && !invalidated {
        return Ok(Entry::None);
    }
    // Non-present mappings store their frame bits inverted, and only
    // those bits (`flip_protnone_guard` with the level's pfn mask).
    let bits = if present { e } else { !e };
    let huge = (level == 2 || level == 3) && e & PTE_PSE != 0;
    if level == 1 {
        return Ok(Entry::Leaf(bits & PTE_ADDR));
    }
    if huge {
        let (mask, reserved) = if level == 2 {
            (PMD_HUGE_ADDR, PTE_ADDR & !PMD_HUGE_ADDR & !HUGE_PAT)
        } else {
            (PUD_HUGE_ADDR, PTE_ADDR & !PUD_HUGE_ADDR & !HUGE_PAT)
        };
        if e & reserved != 0 {
            return Err(WalkError::BadEntry(level));
        }
        return Ok(Entry::Leaf(bits & mask));
    }
    if !present || e & PTE_PSE != 0 {
        return Err(WalkError::BadEntry(level));
    }
    Ok(Entry::Table(e & PTE_ADDR))
}

/// Bytes one entry covers at `level`.
pub fn level_span(level: u32) -> u64 {
    1u64 << (12 + 9 * level.saturating_sub(1).min(4))
}

/// The index into the table at `level` for `va`.
pub fn level_index(va: u64, level: u32) -> u64 {
    (va >> (12 + 9 * level.saturating_sub(1).min(4))) & 511
}

/// A checked view of the guest kernel: its profile, validated against
/// memory, and address translation.
pub struct Kernel<'a, M: PhysMem + ?Sized> {
    mem: &'a M,
    profile: KernelProfile,
    ram_end: u64,
    top: u64,
}

impl<'a, M: PhysMem + ?Sized> Kernel<'a, M> {
    /// Checks `profile` and validates it against the guest: the direct map
    /// fits below the kernel image, the kernel's top page table lies in
    /// RAM, `init_task` is pid 0, tgid 0, named `swapper/0`, without an
    /// `mm`, and when its `active_mm` is `init_mm`, that mm's pgd is
    /// `init_top_pgt`.
    pub fn new(mem: &'a M, profile: &KernelProfile) -> Result<Self, WalkError> {
        profile.check()?;
        let ram_end = mem.nr_pfns().saturating_mul(PAGE_SIZE);
        // The direct map must fit below the kernel image mapping.
        if profile
            .page_offset_base
            .checked_add(ram_end)
            .is_none_or(|end| end > START_KERNEL_MAP)
        {
            return Err(WalkError::Profile(crate::profile::ProfileError::BadAddress));
        }
        let mut k = Kernel {
            mem,
            profile: *profile,
            ram_end,
            top: 0,
        };
        let top = k.image_to_phys(profile.init_top_pgt)?;
        if top.checked_add(PAGE_SIZE).is_none_or(|e| e > ram_end) {
            return Err(WalkError::TableOutsideRam(top));
        }
        k.top = top;
        let t = profile.task;
        let pid = k.read_i32(profile.init_task + u64::from(t.pid))?;
        let tgid = k.read_i32(profile.init_task + u64::from(t.tgid))?;
        let mut comm = [0u8; 64];
        let n = (t.comm_len as usize).min(64);
        let comm = comm.get_mut(..n).unwrap_or(&mut []);
        k.read_virt(profile.init_task + u64::from(t.comm), comm)?;
        let name = b"swapper/0";
        let named = comm.get(..name.len()) == Some(&name[..])
            && comm.get(name.len()).is_none_or(|&c| c == 0);
        let mm = k.read_u64(profile.init_task + u64::from(t.mm))?;
        if pid != 0 || tgid != 0 || !named || mm != 0 {
            return Err(WalkError::NotSwapper);
        }
        // The idle task borrows the last user mm it ran after (lazy TLB),
        // so `active_mm` may be any mm; but if it is in the kernel image it
        // is `init_mm`, whose pgd is `swapper_pg_dir` = `init_top_pgt`.
        // That checks the `mm_struct.pgd` offset and `init_top_pgt` at once.
        let active = k.read_u64(profile.init_task + u64::from(t.active_mm))?;
        if (START_KERNEL_MAP..START_KERNEL_MAP + KERNEL_IMAGE_SIZE).contains(&active) {
            let pgd = k.read_u64(active.saturating_add(u64::from(profile.mm_pgd)))?;
            if pgd != profile.init_top_pgt {
                return Err(WalkError::BadMm(active));
            }
        }
        Ok(k)
    }

    /// The validated profile.
    pub fn profile(&self) -> &KernelProfile {
        &self.profile
    }

    /// The guest memory.
    pub fn mem(&self) -> &'a M {
        self.mem
    }

    /// End of guest RAM (bytes).
    pub fn ram_end(&self) -> u64 {
        self.ram_end
    }

    fn image_to_phys(&self, va: u64) -> Result<u64, WalkError> {
        // __pa_symbol(): x - __START_KERNEL_map + phys_base.
        let pa = va
            .wrapping_sub(START_KERNEL_MAP)
            .wrapping_add(self.profile.phys_base);
        if pa >= self.ram_end {
            return Err(WalkError::Mem(crate::mem::MemError::OutsideRam, pa));
        }
        Ok(pa)
    }

    /// Translates a kernel virtual address to a guest-physical one.
    pub fn virt_to_phys(&self, va: u64) -> Result<u64, WalkError> {
        let pob = self.profile.page_offset_base;
        if va >= pob && va - pob < self.ram_end {
            return Ok(va - pob);
        }
        if (START_KERNEL_MAP..START_KERNEL_MAP + KERNEL_IMAGE_SIZE).contains(&va) {
            return self.image_to_phys(va);
        }
        self.walk_kernel(va)
    }

    /// Translates through `init_top_pgt`.
    fn walk_kernel(&self, va: u64) -> Result<u64, WalkError> {
        let levels = self.profile.levels;
        if !canonical(va, levels) {
            return Err(WalkError::NotCanonical(va));
        }
        let mut table = self.top;
        let mut level = levels;
        // Bounded by the paging depth.
        while level >= 1 {
            let slot = table + 8 * level_index(va, level);
            let e = read_u64(self.mem, slot).map_err(|e| WalkError::Mem(e, slot))?;
            match decode(e, level)? {
                Entry::None => return Err(WalkError::NotMapped(va)),
                Entry::Leaf(base) => {
                    let pa = base | (va & (level_span(level) - 1));
                    if pa >= self.ram_end {
                        return Err(WalkError::Mem(crate::mem::MemError::OutsideRam, pa));
                    }
                    return Ok(pa);
                }
                Entry::Table(next) => {
                    if level == 1 {
                        return Err(WalkError::BadEntry(1));
                    }
                    if next.checked_add(PAGE_SIZE).is_none_or(|e| e > self.ram_end) {
                        return Err(WalkError::TableOutsideRam(next));
                    }
                    table = next;
                    level -= 1;
                }
            }
        }
        Err(WalkError::NotMapped(va))
    }

    /// Reads `buf.len()` bytes at kernel virtual address `va`, translating
    /// each page separately.
    pub fn read_virt(&self, va: u64, buf: &mut [u8]) -> Result<(), WalkError> {
        let mut done = 0usize;
        // Bounded by buf.len() / PAGE_SIZE + 1 iterations.
        while done < buf.len() {
            let cur = va
                .checked_add(done as u64)
                .ok_or(WalkError::NotCanonical(va))?;
            let in_page = (PAGE_SIZE - (cur % PAGE_SIZE)) as usize;
            let n = in_page.min(buf.len() - done);
            let pa = self.virt_to_phys(cur)?;
            let dst = buf
                .get_mut(done..done + n)
                .ok_or(WalkError::NotMapped(cur))?;
            self.mem.read(pa, dst).map_err(|e| WalkError::Mem(e, pa))?;
            done += n;
        }
        Ok(())
    }

    /// Reads a u64 at a kernel virtual address.
    pub fn read_u64(&self, va: u64) -> Result<u64, WalkError> {
        let mut b = [0u8; 8];
        self.read_virt(va, &mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    /// Reads an i32 at a kernel virtual address.
    pub fn read_i32(&self, va: u64) -> Result<i32, WalkError> {
        let mut b = [0u8; 4];
        self.read_virt(va, &mut b)?;
        Ok(i32::from_le_bytes(b))
    }

    /// Reads a u32 at a kernel virtual address.
    pub fn read_u32(&self, va: u64) -> Result<u32, WalkError> {
        let mut b = [0u8; 4];
        self.read_virt(va, &mut b)?;
        Ok(u32::from_le_bytes(b))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ADDR: u64 = 0x1234_5000;

    #[test]
    fn entries_decode_as_linux_writes_them() {
        // Present 4 KiB leaf, NX and high software bits ignored.
        assert_eq!(decode(ADDR | 0x67 | 1 << 63, 1), Ok(Entry::Leaf(ADDR)));
        // PTE bit 7 is PAT, not a size.
        assert_eq!(decode(ADDR | 0x87, 1), Ok(Entry::Leaf(ADDR)));
        // PROT_NONE leaf: address inverted.
        let prot = (!ADDR & PTE_ADDR) | PTE_PROTNONE;
        assert_eq!(decode(prot, 1), Ok(Entry::Leaf(ADDR)));
        // Swap entry (type from bit 9, offset inverted): nothing.
        assert_eq!(decode((!ADDR & PTE_ADDR) | 0x600, 1), Ok(Entry::None));
        assert_eq!(decode(0, 3), Ok(Entry::None));
        // Tables at every non-leaf level.
        for l in 2..=5 {
            assert_eq!(decode(ADDR | 0x67, l), Ok(Entry::Table(ADDR)));
        }
        // 2 MiB and 1 GiB leaves, with the PAT bit (12) set.
        assert_eq!(
            decode(0x4020_0000 | HUGE_PAT | 0x87, 2),
            Ok(Entry::Leaf(0x4020_0000))
        );
        assert_eq!(
            decode(0x8000_0000 | HUGE_PAT | 0x87, 3),
            Ok(Entry::Leaf(0x8000_0000))
        );
        // Reserved bits in huge leaves.
        assert_eq!(decode(0x4020_2000 | 0x87, 2), Err(WalkError::BadEntry(2)));
        assert_eq!(decode(0x4010_0000 | 0x87, 3), Err(WalkError::BadEntry(3)));
        // PSE above the PUD.
        assert_eq!(decode(ADDR | 0x87, 4), Err(WalkError::BadEntry(4)));
        assert_eq!(decode(ADDR | 0x87, 5), Err(WalkError::BadEntry(5)));
        // PROT_NONE 2 MiB leaf: only the frame bits inverted.
        let prot2 = (!0x4020_0000u64 & PMD_HUGE_ADDR) | PTE_PSE | PTE_PROTNONE;
        assert_eq!(decode(prot2, 2), Ok(Entry::Leaf(0x4020_0000)));
        // PROT_NONE on a non-leaf entry.
        assert_eq!(decode(prot, 3), Err(WalkError::BadEntry(3)));
        // A huge PMD invalidated for a split: still maps its frames.
        let inv = (!0x4020_0000u64 & PMD_HUGE_ADDR) | PTE_PSE | 0x60;
        assert_eq!(decode(inv, 2), Ok(Entry::Leaf(0x4020_0000)));
        assert_eq!(decode(inv, 1), Ok(Entry::None));
    }

    #[test]
    fn indices_and_spans() {
        let va = 0x0000_7f12_3456_7000u64;
        assert_eq!(level_index(va, 1), (va >> 12) & 511);
        assert_eq!(level_index(va, 4), (va >> 39) & 511);
        assert_eq!(level_index(0x00ff_0000_0000_0000, 5), 0xff);
        assert_eq!(level_span(2), 2 << 20);
        assert_eq!(level_span(3), 1 << 30);
    }
}
