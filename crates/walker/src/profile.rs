//! The kernel profile: addresses and struct offsets the guest agent
//! publishes (guest-lsm/README.md, "Kernel profile (page 1)"), decoded and
//! checked before any of it is used to follow a guest pointer.

/// Profile magic, the ASCII bytes "DMPROF01".
pub const MAGIC: [u8; 8] = *b"DMPROF01";
/// The profile layout version this crate reads.
pub const VERSION: u32 = 1;
/// Link-time address of `_text` on x86-64 (`__START_KERNEL_map` + 16 MiB).
pub const LINK_TEXT: u64 = 0xffff_ffff_8100_0000;
/// `__START_KERNEL_map`: the kernel image is mapped at this address plus its
/// physical offset minus `phys_base` (arch/x86/include/asm/page_64_types.h).
pub const START_KERNEL_MAP: u64 = 0xffff_ffff_8000_0000;
/// `KERNEL_IMAGE_SIZE` with KASLR (1 GiB); modules start above it.
pub const KERNEL_IMAGE_SIZE: u64 = 1 << 30;
/// The only PageBuddy encoding known here: Linux 4.18 to 6.8 (checked in
/// 6.1's include/linux/page-flags.h) define `PAGE_TYPE_BASE` 0xf0000000 and
/// `PG_buddy` 0x00000080, and `PageType(page, flag)` is
/// `(page_type & (PAGE_TYPE_BASE | flag)) == PAGE_TYPE_BASE` (the type bit
/// is *cleared* to mark the type). 6.9 moved the type to the top byte.
pub const BUDDY_MASK: u32 = 0xf000_0080;
/// See [`BUDDY_MASK`].
pub const BUDDY_VALUE: u32 = 0xf000_0000;
/// `MAX_ORDER` in Linux 6.1 is 11: free blocks have orders 0..=10
/// (include/linux/mmzone.h; 6.4 renamed it to an inclusive bound).
pub const MAX_FREE_ORDER_6_1: u32 = 10;
/// Bytes of the published profile's fields.
pub const ENCODED_LEN: usize = 0xd0;

/// Byte offsets of the published profile's fields.
pub mod off {
    /// `[u8; 8]` magic.
    pub const MAGIC: usize = 0x000;
    /// u32 version.
    pub const VERSION: usize = 0x008;
    /// u32 bytes used.
    pub const SIZE: usize = 0x00c;
    /// u64 KASLR slide.
    pub const KASLR_SLIDE: usize = 0x010;
    /// u64 runtime `_text`.
    pub const TEXT: usize = 0x018;
    /// u64 `&init_task`.
    pub const INIT_TASK: usize = 0x020;
    /// u64 value of `page_offset_base`.
    pub const PAGE_OFFSET_BASE: usize = 0x028;
    /// u64 value of `vmemmap_base`.
    pub const VMEMMAP_BASE: usize = 0x030;
    /// u64 value of `vmalloc_base`.
    pub const VMALLOC_BASE: usize = 0x038;
    /// u64 value of `phys_base`.
    pub const PHYS_BASE: usize = 0x040;
    /// u32 paging levels.
    pub const LEVELS: usize = 0x048;
    /// u32 `sizeof(struct task_struct)`.
    pub const TASK_SIZE: usize = 0x04c;
    /// u32 offset of `task_struct.tasks`.
    pub const TASK_TASKS: usize = 0x050;
    /// u32 offset of `task_struct.pid`.
    pub const TASK_PID: usize = 0x054;
    /// u32 offset of `task_struct.tgid`.
    pub const TASK_TGID: usize = 0x058;
    /// u32 offset of `task_struct.comm`.
    pub const TASK_COMM: usize = 0x05c;
    /// u32 offset of `task_struct.mm`.
    pub const TASK_MM: usize = 0x060;
    /// u32 offset of `task_struct.active_mm`.
    pub const TASK_ACTIVE_MM: usize = 0x064;
    /// u32 offset of `mm_struct.pgd`.
    pub const MM_PGD: usize = 0x068;
    /// u32 `sizeof(struct page)`.
    pub const PAGE_SIZE: usize = 0x06c;
    /// u32 offset of `page.flags`.
    pub const PAGE_FLAGS: usize = 0x070;
    /// u32 offset of `page.page_type`.
    pub const PAGE_TYPE: usize = 0x074;
    /// u32 offset of `page.private`.
    pub const PAGE_PRIVATE: usize = 0x078;
    /// u32 buddy mask.
    pub const BUDDY_MASK: usize = 0x07c;
    /// u32 buddy value.
    pub const BUDDY_VALUE: usize = 0x080;
    /// u32 length of `task_struct.comm`.
    pub const COMM_LEN: usize = 0x084;
    /// u64 `&init_top_pgt`.
    pub const INIT_TOP_PGT: usize = 0x088;
    /// `[u8; 64]` kernel release.
    pub const RELEASE: usize = 0x090;
}

/// Offsets in `struct task_struct`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct TaskLayout {
    /// `sizeof(struct task_struct)`.
    pub size: u32,
    /// `tasks` (a `struct list_head`: next, prev).
    pub tasks: u32,
    /// `pid` (i32).
    pub pid: u32,
    /// `tgid` (i32).
    pub tgid: u32,
    /// `comm` (`char[comm_len]`).
    pub comm: u32,
    /// `comm_len` (16 in Linux).
    pub comm_len: u32,
    /// `mm` (pointer; NULL for kernel threads).
    pub mm: u32,
    /// `active_mm` (pointer).
    pub active_mm: u32,
}

/// Offsets in `struct page`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct PageLayout {
    /// `sizeof(struct page)` (64 on x86-64 6.1).
    pub size: u32,
    /// `flags` (u64).
    pub flags: u32,
    /// `page_type` (u32, shares its word with `_mapcount`).
    pub page_type: u32,
    /// `private` (u64; a free buddy head's order).
    pub private: u32,
    /// Mask of the PageBuddy test on `page_type`.
    pub buddy_mask: u32,
    /// Value of the PageBuddy test on `page_type`.
    pub buddy_value: u32,
}

/// Everything the walker needs to know about the guest kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelProfile {
    /// Runtime `_text` minus [`LINK_TEXT`].
    pub kaslr_slide: u64,
    /// Runtime address of `_text`.
    pub text: u64,
    /// Address of `init_task` (in the kernel image).
    pub init_task: u64,
    /// Start of the direct map of all physical memory.
    pub page_offset_base: u64,
    /// Address of `struct page` for pfn 0.
    pub vmemmap_base: u64,
    /// Start of the vmalloc area (checked, not needed for translation).
    pub vmalloc_base: u64,
    /// Physical relocation of the kernel image.
    pub phys_base: u64,
    /// Paging levels: 4, or 5 with LA57.
    pub levels: u32,
    /// `struct task_struct` layout.
    pub task: TaskLayout,
    /// Offset of `mm_struct.pgd`.
    pub mm_pgd: u32,
    /// `struct page` layout.
    pub page: PageLayout,
    /// Address of `init_top_pgt` (= `swapper_pg_dir`, `init_mm.pgd`).
    pub init_top_pgt: u64,
    /// Highest free-block order accepted (not published; 10 for 6.1).
    pub max_order: u32,
    /// `uname -r`, NUL padded.
    pub release: [u8; 64],
}

/// A profile that cannot be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProfileError {
    /// The profile is shorter than its fields.
    Truncated,
    /// The magic is not "DMPROF01".
    BadMagic,
    /// The layout version is not 1.
    BadVersion,
    /// The declared size is smaller than the fields this reader needs.
    BadSize,
    /// Paging levels are neither 4 nor 5.
    BadLevels,
    /// An address is not a canonical kernel-half address, or is misaligned.
    BadAddress,
    /// `_text` does not equal the link address plus the KASLR slide.
    TextMismatch,
    /// `init_task` or `init_top_pgt` lies outside the kernel image mapping.
    OutsideImage,
    /// A `task_struct` field lies outside the structure or overlaps another.
    BadTaskLayout,
    /// The `mm_struct.pgd` offset is implausible.
    BadMmLayout,
    /// A `struct page` field lies outside the structure.
    BadPageLayout,
    /// The PageBuddy encoding is not the 4.18-6.8 one.
    UnknownBuddyEncoding,
}

fn get32(b: &[u8], o: usize) -> Result<u32, ProfileError> {
    let s = b.get(o..o + 4).ok_or(ProfileError::Truncated)?;
    let mut a = [0u8; 4];
    a.copy_from_slice(s);
    Ok(u32::from_le_bytes(a))
}

fn get64(b: &[u8], o: usize) -> Result<u64, ProfileError> {
    let s = b.get(o..o + 8).ok_or(ProfileError::Truncated)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(s);
    Ok(u64::from_le_bytes(a))
}

/// Whether `va` is canonical for the given paging depth.
pub fn canonical(va: u64, levels: u32) -> bool {
    let bits = if levels == 5 { 57 } else { 48 };
    let top = (va as i64) >> (bits - 1);
    top == 0 || top == -1
}

/// Whether `va` is a canonical kernel-half address.
pub fn kernel_half(va: u64, levels: u32) -> bool {
    canonical(va, levels) && (va as i64) < 0
}

fn field_in(off: u32, len: u32, size: u32) -> bool {
    off.checked_add(len).is_some_and(|end| end <= size)
}

fn disjoint(a: (u32, u32), b: (u32, u32)) -> bool {
    a.0.saturating_add(a.1) <= b.0 || b.0.saturating_add(b.1) <= a.0
}

impl KernelProfile {
    /// Decodes the published profile page and runs [`KernelProfile::check`].
    pub fn parse(b: &[u8]) -> Result<Self, ProfileError> {
        if b.len() < ENCODED_LEN {
            return Err(ProfileError::Truncated);
        }
        if b.get(off::MAGIC..off::MAGIC + 8) != Some(&MAGIC[..]) {
            return Err(ProfileError::BadMagic);
        }
        if get32(b, off::VERSION)? != VERSION {
            return Err(ProfileError::BadVersion);
        }
        let size = get32(b, off::SIZE)?;
        if (size as usize) < ENCODED_LEN || size > 4096 {
            return Err(ProfileError::BadSize);
        }
        let mut release = [0u8; 64];
        release.copy_from_slice(
            b.get(off::RELEASE..off::RELEASE + 64)
                .ok_or(ProfileError::Truncated)?,
        );
        let p = KernelProfile {
            kaslr_slide: get64(b, off::KASLR_SLIDE)?,
            text: get64(b, off::TEXT)?,
            init_task: get64(b, off::INIT_TASK)?,
            page_offset_base: get64(b, off::PAGE_OFFSET_BASE)?,
            vmemmap_base: get64(b, off::VMEMMAP_BASE)?,
            vmalloc_base: get64(b, off::VMALLOC_BASE)?,
            phys_base: get64(b, off::PHYS_BASE)?,
            levels: get32(b, off::LEVELS)?,
            task: TaskLayout {
                size: get32(b, off::TASK_SIZE)?,
                tasks: get32(b, off::TASK_TASKS)?,
                pid: get32(b, off::TASK_PID)?,
                tgid: get32(b, off::TASK_TGID)?,
                comm: get32(b, off::TASK_COMM)?,
                comm_len: get32(b, off::COMM_LEN)?,
                mm: get32(b, off::TASK_MM)?,
                active_mm: get32(b, off::TASK_ACTIVE_MM)?,
            },
            mm_pgd: get32(b, off::MM_PGD)?,
            page: PageLayout {
                size: get32(b, off::PAGE_SIZE)?,
                flags: get32(b, off::PAGE_FLAGS)?,
                page_type: get32(b, off::PAGE_TYPE)?,
                private: get32(b, off::PAGE_PRIVATE)?,
                buddy_mask: get32(b, off::BUDDY_MASK)?,
                buddy_value: get32(b, off::BUDDY_VALUE)?,
            },
            init_top_pgt: get64(b, off::INIT_TOP_PGT)?,
            max_order: MAX_FREE_ORDER_6_1,
            release,
        };
        p.check()?;
        Ok(p)
    }

    /// Encodes the profile in the published layout (the inverse of
    /// [`KernelProfile::parse`]; used to build synthetic guests).
    pub fn encode(&self) -> [u8; 4096] {
        let mut b = [0u8; 4096];
        let put32 = |b: &mut [u8; 4096], o: usize, v: u32| {
            if let Some(d) = b.get_mut(o..o + 4) {
                d.copy_from_slice(&v.to_le_bytes());
            }
        };
        let put64 = |b: &mut [u8; 4096], o: usize, v: u64| {
            if let Some(d) = b.get_mut(o..o + 8) {
                d.copy_from_slice(&v.to_le_bytes());
            }
        };
        if let Some(d) = b.get_mut(off::MAGIC..off::MAGIC + 8) {
            d.copy_from_slice(&MAGIC);
        }
        put32(&mut b, off::VERSION, VERSION);
        put32(&mut b, off::SIZE, ENCODED_LEN as u32);
        put64(&mut b, off::KASLR_SLIDE, self.kaslr_slide);
        put64(&mut b, off::TEXT, self.text);
        put64(&mut b, off::INIT_TASK, self.init_task);
        put64(&mut b, off::PAGE_OFFSET_BASE, self.page_offset_base);
        put64(&mut b, off::VMEMMAP_BASE, self.vmemmap_base);
        put64(&mut b, off::VMALLOC_BASE, self.vmalloc_base);
        put64(&mut b, off::PHYS_BASE, self.phys_base);
        put32(&mut b, off::LEVELS, self.levels);
        put32(&mut b, off::TASK_SIZE, self.task.size);
        put32(&mut b, off::TASK_TASKS, self.task.tasks);
        put32(&mut b, off::TASK_PID, self.task.pid);
        put32(&mut b, off::TASK_TGID, self.task.tgid);
        put32(&mut b, off::TASK_COMM, self.task.comm);
        put32(&mut b, off::TASK_MM, self.task.mm);
        put32(&mut b, off::TASK_ACTIVE_MM, self.task.active_mm);
        put32(&mut b, off::MM_PGD, self.mm_pgd);
        put32(&mut b, off::PAGE_SIZE, self.page.size);
        put32(&mut b, off::PAGE_FLAGS, self.page.flags);
        put32(&mut b, off::PAGE_TYPE, self.page.page_type);
        put32(&mut b, off::PAGE_PRIVATE, self.page.private);
        put32(&mut b, off::BUDDY_MASK, self.page.buddy_mask);
        put32(&mut b, off::BUDDY_VALUE, self.page.buddy_value);
        put32(&mut b, off::COMM_LEN, self.task.comm_len);
        put64(&mut b, off::INIT_TOP_PGT, self.init_top_pgt);
        if let Some(d) = b.get_mut(off::RELEASE..off::RELEASE + 64) {
            d.copy_from_slice(&self.release);
        }
        b
    }

    /// Checks what can be checked without reading guest memory.
    pub fn check(&self) -> Result<(), ProfileError> {
        if self.levels != 4 && self.levels != 5 {
            return Err(ProfileError::BadLevels);
        }
        let l = self.levels;
        for a in [
            self.text,
            self.init_task,
            self.page_offset_base,
            self.vmemmap_base,
            self.vmalloc_base,
            self.init_top_pgt,
        ] {
            if !kernel_half(a, l) {
                return Err(ProfileError::BadAddress);
            }
        }
        // The direct map and vmemmap bases are PUD-aligned (KASLR moves
        // them in 1 GiB steps); init_top_pgt is a page.
        if !self.page_offset_base.is_multiple_of(1 << 30)
            || !self.vmemmap_base.is_multiple_of(1 << 30)
            || !self.init_top_pgt.is_multiple_of(4096)
            || !self.init_task.is_multiple_of(8)
        {
            return Err(ProfileError::BadAddress);
        }
        if self.text != LINK_TEXT.wrapping_add(self.kaslr_slide) {
            return Err(ProfileError::TextMismatch);
        }
        let image = START_KERNEL_MAP..START_KERNEL_MAP + KERNEL_IMAGE_SIZE;
        if !image.contains(&self.init_task)
            || !image.contains(&self.init_top_pgt)
            || !image.contains(&self.text)
        {
            return Err(ProfileError::OutsideImage);
        }
        let t = &self.task;
        if t.size == 0
            || t.size > 1 << 20
            || t.comm_len == 0
            || t.comm_len > 64
            || !field_in(t.tasks, 16, t.size)
            || !field_in(t.pid, 4, t.size)
            || !field_in(t.tgid, 4, t.size)
            || !field_in(t.comm, t.comm_len, t.size)
            || !field_in(t.mm, 8, t.size)
            || !field_in(t.active_mm, 8, t.size)
            || !t.tasks.is_multiple_of(8)
            || !t.mm.is_multiple_of(8)
        {
            return Err(ProfileError::BadTaskLayout);
        }
        let fields = [
            (t.tasks, 16),
            (t.pid, 4),
            (t.tgid, 4),
            (t.comm, t.comm_len),
            (t.mm, 8),
            (t.active_mm, 8),
        ];
        for (i, a) in fields.iter().enumerate() {
            for b in fields.iter().skip(i + 1) {
                if !disjoint(*a, *b) {
                    return Err(ProfileError::BadTaskLayout);
                }
            }
        }
        if self.mm_pgd > 1 << 16 || !self.mm_pgd.is_multiple_of(8) {
            return Err(ProfileError::BadMmLayout);
        }
        let p = &self.page;
        if p.size < 32
            || p.size > 256
            || !p.size.is_multiple_of(8)
            || !field_in(p.flags, 8, p.size)
            || !field_in(p.page_type, 4, p.size)
            || !field_in(p.private, 8, p.size)
            || !disjoint((p.page_type, 4), (p.private, 8))
        {
            return Err(ProfileError::BadPageLayout);
        }
        if p.buddy_mask != BUDDY_MASK || p.buddy_value != BUDDY_VALUE {
            return Err(ProfileError::UnknownBuddyEncoding);
        }
        Ok(())
    }

    /// The kernel release as text, up to its first NUL (empty if not UTF-8).
    pub fn release_str(&self) -> &str {
        let n = self.release.iter().position(|&c| c == 0).unwrap_or(64);
        self.release
            .get(..n)
            .and_then(|s| core::str::from_utf8(s).ok())
            .unwrap_or("")
    }
}
