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
    if !present && !protnone {
        return Ok(Entry::None);
    }
    // L1TF inversion of the address bits for PROT_NONE entries.
    let bits = if protnone { !e } else { e };
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
        if bits & reserved != 0 {
            return Err(WalkError::BadEntry(level));
        }
        return Ok(Entry::Leaf(bits & mask));
    }
    if protnone || e & PTE_PSE != 0 {
        return Err(WalkError::BadEntry(level));
    }
    Ok(Entry::Table(e & PTE_ADDR))
}

/// Bytes one entry covers at `level`.
pub fn level_span(level: u32) -> u64 {
    1u64 << (12 + 9 * (level - 1).min(4))
}

/// The index into the table at `level` for `va`.
pub fn level_index(va: u64, level: u32) -> u64 {
    (va >> (12 + 9 * (level - 1).min(4))) & 511
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
    /// Checks `profile` and validates it against the guest: the kernel's
    /// top page table lies in RAM, and `init_task` is pid 0, tgid 0, named
    /// `swapper/0`.
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
        if pid != 0 || tgid != 0 || !named {
            return Err(WalkError::NotSwapper);
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
