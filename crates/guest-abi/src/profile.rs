//! The kernel profile: the addresses and struct offsets a reader outside
//! the guest needs to walk Linux's task list, page tables and page
//! descriptors. The guest agent fills a [`KernelProfile`] (offsets from the
//! kernel's BTF, addresses from `/proc/kallsyms`, variable values from a BPF
//! probe read) and publishes [`KernelProfile::encode`] in the taint table's
//! page 1 (guest-lsm/README.md, "Kernel profile (page 1)"); the walker
//! decodes it with [`KernelProfile::parse`], which checks it before any of
//! it is used to follow a guest pointer.

use crate::{le32, le64};

/// Profile magic, the ASCII bytes "DMPROF01".
pub const MAGIC: [u8; 8] = *b"DMPROF01";
/// Profile layout version. Version 2 publishes the page-type scheme and
/// the largest free-block order (version 1 had neither: its reader assumed
/// Linux 6.1's); a reader refuses every other version.
pub const VERSION: u32 = 2;
/// Link-time address of `_text` on x86-64 (`__START_KERNEL_map` +
/// `CONFIG_PHYSICAL_START`, 16 MiB); the KASLR slide is relative to it.
pub const LINK_TEXT: u64 = 0xffff_ffff_8100_0000;
/// `__START_KERNEL_map`: the kernel image is mapped at this address plus its
/// physical offset minus `phys_base` (arch/x86/include/asm/page_64_types.h).
pub const START_KERNEL_MAP: u64 = 0xffff_ffff_8000_0000;
/// `KERNEL_IMAGE_SIZE` with KASLR (1 GiB); modules start above it.
pub const KERNEL_IMAGE_SIZE: u64 = 1 << 30;
/// The inverted-bit PageBuddy test of Linux 4.18 to 6.8 (checked in 6.1's
/// include/linux/page-flags.h): `PAGE_TYPE_BASE` 0xf0000000 and `PG_buddy`
/// 0x00000080, and `PageType(page, flag)` is
/// `(page_type & (PAGE_TYPE_BASE | flag)) == PAGE_TYPE_BASE` (the type bit
/// is *cleared* to mark the type).
pub const INVERTED_BUDDY_MASK: u32 = 0xf000_0080;
/// See [`INVERTED_BUDDY_MASK`].
pub const INVERTED_BUDDY_VALUE: u32 = 0xf000_0000;
/// The top-byte page types of Linux 6.12 on: `enum pagetype` names the
/// type stored in `page_type`'s top byte, and `PageBuddy(page)` is
/// `(page_type >> 24) == PGTY_buddy`; `__SetPageBuddy` writes
/// `PGTY_buddy << 24`.
pub const TOP_BYTE_MASK: u32 = 0xff00_0000;
/// `PGTY_mapcount_underflow` in 6.12's `enum pagetype`: every type byte
/// lies below it.
pub const PGTY_MAPCOUNT_UNDERFLOW: u32 = 0xff;
/// The lowest type byte of 6.12's `enum pagetype` (`PGTY_buddy`); 0x80 to
/// 0xef are reserved there for `_mapcount` overflows.
pub const PGTY_FIRST: u32 = 0xf0;
/// The largest free-block order a profile may publish. x86-64 kernels use
/// 10 (6.1's `MAX_ORDER` 11, 6.12's `MAX_PAGE_ORDER` 10); the bound keeps a
/// hostile profile from making a block check read more than 2^20
/// descriptors.
pub const MAX_ORDER_BOUND: u32 = 20;
/// Bytes of the published profile's fields.
pub const ENCODED_LEN: usize = 0xd8;

/// Byte offsets of the published profile's fields.
pub mod off {
    /// `[u8; 8]` magic.
    pub const MAGIC: usize = 0x000;
    /// u32 version.
    pub const VERSION: usize = 0x008;
    /// u32 bytes of the page in use ([`ENCODED_LEN`](super::ENCODED_LEN)).
    pub const SIZE: usize = 0x00c;
    /// u64 KASLR slide of the kernel image (runtime `_text` - link-time `_text`).
    pub const KASLR_SLIDE: usize = 0x010;
    /// u64 runtime address of `_text`.
    pub const TEXT: usize = 0x018;
    /// u64 address of `init_task`.
    pub const INIT_TASK: usize = 0x020;
    /// u64 value of `page_offset_base` (start of the direct map).
    pub const PAGE_OFFSET_BASE: usize = 0x028;
    /// u64 value of `vmemmap_base` (the `struct page` array).
    pub const VMEMMAP_BASE: usize = 0x030;
    /// u64 value of `vmalloc_base`.
    pub const VMALLOC_BASE: usize = 0x038;
    /// u64 value of `phys_base` (physical relocation of the kernel image).
    pub const PHYS_BASE: usize = 0x040;
    /// u32 paging levels (4 or 5).
    pub const LEVELS: usize = 0x048;
    /// u32 `sizeof(struct task_struct)`.
    pub const TASK_SIZE: usize = 0x04c;
    /// u32 `offsetof(struct task_struct, tasks)`.
    pub const TASK_TASKS: usize = 0x050;
    /// u32 `offsetof(struct task_struct, pid)`.
    pub const TASK_PID: usize = 0x054;
    /// u32 `offsetof(struct task_struct, tgid)`.
    pub const TASK_TGID: usize = 0x058;
    /// u32 `offsetof(struct task_struct, comm)`.
    pub const TASK_COMM: usize = 0x05c;
    /// u32 `offsetof(struct task_struct, mm)`.
    pub const TASK_MM: usize = 0x060;
    /// u32 `offsetof(struct task_struct, active_mm)`.
    pub const TASK_ACTIVE_MM: usize = 0x064;
    /// u32 `offsetof(struct mm_struct, pgd)`.
    pub const MM_PGD: usize = 0x068;
    /// u32 `sizeof(struct page)`.
    pub const PAGE_SIZE: usize = 0x06c;
    /// u32 `offsetof(struct page, flags)`.
    pub const PAGE_FLAGS: usize = 0x070;
    /// u32 `offsetof(struct page, page_type)`.
    pub const PAGE_TYPE: usize = 0x074;
    /// u32 `offsetof(struct page, private)` (a free buddy block's order).
    pub const PAGE_PRIVATE: usize = 0x078;
    /// u32 mask: a page is a free buddy head when `page_type & MASK == VALUE`.
    pub const BUDDY_MASK: usize = 0x07c;
    /// u32 value for the buddy test.
    pub const BUDDY_VALUE: usize = 0x080;
    /// u32 length of `task_struct.comm`.
    pub const COMM_LEN: usize = 0x084;
    /// u64 address of `init_top_pgt` (the kernel's own top page table).
    pub const INIT_TOP_PGT: usize = 0x088;
    /// `[u8; 64]` kernel release (`uname -r`), NUL padded.
    pub const RELEASE: usize = 0x090;
    /// u32 page-type scheme ([`PageTypes`](super::PageTypes) as a number).
    pub const PAGE_TYPES: usize = 0x0d0;
    /// u32 largest order of a free buddy block.
    pub const MAX_ORDER: usize = 0x0d4;
}

/// How a kernel marks the head of a free buddy block in `page->page_type`.
/// Both schemes leave every other page of a free block at the reset
/// `_mapcount` value -1 (`page_type` shares that word).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum PageTypes {
    /// Linux 4.18 to 6.8: `page_type & 0xf0000080 == 0xf0000000`
    /// ([`INVERTED_BUDDY_MASK`], [`INVERTED_BUDDY_VALUE`]).
    InvertedBit = 1,
    /// Linux 6.12 on: `page_type & 0xff000000 == PGTY_buddy << 24`
    /// ([`TOP_BYTE_MASK`]), `PGTY_buddy` from the kernel's `enum pagetype`.
    TopByte = 2,
}

impl PageTypes {
    /// The scheme published as `v`, if known.
    pub fn from_u32(v: u32) -> Option<Self> {
        match v {
            1 => Some(PageTypes::InvertedBit),
            2 => Some(PageTypes::TopByte),
            _ => None,
        }
    }

    /// Whether `page_type & mask == value` is this scheme's PageBuddy test:
    /// the inverted bit's one rule, or for the top byte a type byte from
    /// [`PGTY_FIRST`] up to (not including) [`PGTY_MAPCOUNT_UNDERFLOW`],
    /// with the low 24 bits clear.
    pub fn is_buddy_rule(self, mask: u32, value: u32) -> bool {
        match self {
            PageTypes::InvertedBit => mask == INVERTED_BUDDY_MASK && value == INVERTED_BUDDY_VALUE,
            PageTypes::TopByte => {
                let ty = value >> 24;
                mask == TOP_BYTE_MASK
                    && value & !TOP_BYTE_MASK == 0
                    && (PGTY_FIRST..PGTY_MAPCOUNT_UNDERFLOW).contains(&ty)
            }
        }
    }
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

/// Offsets in `struct page`, and how its `page_type` marks free blocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageLayout {
    /// `sizeof(struct page)` (64 on x86-64 6.1).
    pub size: u32,
    /// `flags` (u64).
    pub flags: u32,
    /// `page_type` (u32, shares its word with `_mapcount`).
    pub page_type: u32,
    /// `private` (u64; a free buddy head's order).
    pub private: u32,
    /// The kernel's page-type scheme, which `buddy_mask` and
    /// `buddy_value` must be a rule of.
    pub page_types: PageTypes,
    /// Mask of the PageBuddy test on `page_type`.
    pub buddy_mask: u32,
    /// Value of the PageBuddy test on `page_type`.
    pub buddy_value: u32,
}

/// Everything the walker needs to know about the guest kernel: what the
/// agent publishes, and what the walker decodes.
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
    /// Largest order of a free buddy block: the length of the kernel's
    /// `struct zone.free_area` array minus one (10 on x86-64).
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
    /// The layout version (carried) is not the one this reader knows
    /// ([`VERSION`]): the guest agent and the appliance are of different
    /// releases.
    BadVersion(u32),
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
    /// The page-type scheme (carried) is none this reader knows.
    UnknownPageTypes(u32),
    /// The PageBuddy mask and value are not a rule of the published
    /// page-type scheme.
    UnknownBuddyEncoding,
    /// The largest free-block order (carried) is 0 or above
    /// [`MAX_ORDER_BOUND`].
    BadMaxOrder(u32),
}

impl core::fmt::Display for ProfileError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ProfileError::Truncated => f.write_str("kernel profile shorter than its fields"),
            ProfileError::BadMagic => f.write_str("kernel profile magic is not DMPROF01"),
            ProfileError::BadVersion(v) => write!(
                f,
                "kernel profile layout version {v}, this reader knows only {VERSION}: \
                 the guest agent and the appliance are of different releases"
            ),
            ProfileError::BadSize => {
                f.write_str("kernel profile declares fewer bytes than its fields")
            }
            ProfileError::BadLevels => {
                f.write_str("kernel profile paging levels are neither 4 nor 5")
            }
            ProfileError::BadAddress => {
                f.write_str("kernel profile address not canonical kernel-half or misaligned")
            }
            ProfileError::TextMismatch => {
                f.write_str("kernel profile _text is not the link address plus the KASLR slide")
            }
            ProfileError::OutsideImage => {
                f.write_str("kernel profile init_task or init_top_pgt outside the kernel image")
            }
            ProfileError::BadTaskLayout => {
                f.write_str("kernel profile task_struct layout implausible")
            }
            ProfileError::BadMmLayout => {
                f.write_str("kernel profile mm_struct.pgd offset implausible")
            }
            ProfileError::BadPageLayout => {
                f.write_str("kernel profile struct page layout implausible")
            }
            ProfileError::UnknownPageTypes(v) => {
                write!(
                    f,
                    "kernel profile page-type scheme {v} unknown to this reader"
                )
            }
            ProfileError::UnknownBuddyEncoding => f.write_str(
                "kernel profile PageBuddy mask/value are not a rule of its page-type scheme",
            ),
            ProfileError::BadMaxOrder(o) => write!(
                f,
                "kernel profile largest free-block order {o} outside 1..={MAX_ORDER_BOUND}"
            ),
        }
    }
}

fn get32(b: &[u8], o: usize) -> Result<u32, ProfileError> {
    le32(b, o).ok_or(ProfileError::Truncated)
}

fn get64(b: &[u8], o: usize) -> Result<u64, ProfileError> {
    le64(b, o).ok_or(ProfileError::Truncated)
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
        let version = get32(b, off::VERSION)?;
        if version != VERSION {
            return Err(ProfileError::BadVersion(version));
        }
        let size = get32(b, off::SIZE)?;
        if (size as usize) < ENCODED_LEN || size > 4096 {
            return Err(ProfileError::BadSize);
        }
        let types = get32(b, off::PAGE_TYPES)?;
        let page_types = PageTypes::from_u32(types).ok_or(ProfileError::UnknownPageTypes(types))?;
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
                page_types,
                buddy_mask: get32(b, off::BUDDY_MASK)?,
                buddy_value: get32(b, off::BUDDY_VALUE)?,
            },
            init_top_pgt: get64(b, off::INIT_TOP_PGT)?,
            max_order: get32(b, off::MAX_ORDER)?,
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
        put32(&mut b, off::PAGE_TYPES, self.page.page_types as u32);
        put32(&mut b, off::MAX_ORDER, self.max_order);
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
        if !p.page_types.is_buddy_rule(p.buddy_mask, p.buddy_value) {
            return Err(ProfileError::UnknownBuddyEncoding);
        }
        if self.max_order == 0 || self.max_order > MAX_ORDER_BOUND {
            return Err(ProfileError::BadMaxOrder(self.max_order));
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
