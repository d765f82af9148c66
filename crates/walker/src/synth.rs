//! Synthetic Linux guests for tests and benchmarks: a builder that lays out
//! an `init_task`, processes, `mm_struct`s, page tables with 4 KiB, 2 MiB
//! and 1 GiB mappings (KPTI-style 8 KiB PGDs), the vmemmap array with free
//! buddy blocks, and a taint table, in an [`ImageMem`].
//!
//! The layouts are the published profile's, not a real kernel's offsets:
//! the walker reads only what the profile names.

use alloc::vec::Vec;

use depmig_guest_abi::table::{self as layout, hdr, Header};

use crate::kernel::{PTE_PRESENT, PTE_PSE};
use crate::mem::{ImageMem, PAGE_SIZE};
use crate::profile::{
    KernelProfile, PageLayout, PageTypes, TaskLayout, INVERTED_BUDDY_MASK, INVERTED_BUDDY_VALUE,
    LINK_TEXT, PGTY_FIRST, TOP_BYTE_MASK,
};

/// Frame of the synthetic kernel image's first page (`_text`).
pub const IMAGE_PFN: u64 = 16;
/// Offset of `mm_struct.pgd` in the synthetic layout.
pub const MM_PGD: u32 = 0x48;
/// Bytes of one synthetic `mm_struct`.
pub const MM_SIZE: u64 = 0x100;
/// The synthetic `task_struct` layout.
pub const TASK: TaskLayout = TaskLayout {
    size: 0x200,
    tasks: 0x98,
    pid: 0x140,
    tgid: 0x144,
    comm: 0x1a0,
    comm_len: 16,
    mm: 0xe8,
    active_mm: 0xf0,
};
/// Linux 6.1's `struct page` layout on x86-64 (flags 0, private 40,
/// `_mapcount`/`page_type` 48, 64 bytes; 6.12's has the same offsets) with
/// 6.1's inverted-bit page types; [`GuestBuilder::set_page_types`] switches
/// a guest to 6.12's.
pub const PAGE: PageLayout = PageLayout {
    size: 64,
    flags: 0,
    page_type: 48,
    private: 40,
    page_types: PageTypes::InvertedBit,
    buddy_mask: INVERTED_BUDDY_MASK,
    buddy_value: INVERTED_BUDDY_VALUE,
};
/// `PGTY_buddy` of Linux 6.12's `enum pagetype`.
pub const PGTY_BUDDY_6_12: u32 = PGTY_FIRST;
/// The largest free-block order of x86-64 Linux 6.1 and 6.12.
pub const MAX_ORDER_X86: u32 = 10;
/// Table entry flags: present, writable, user.
const TABLE_FLAGS: u64 = 0x7;
/// NX, set on the kernel copy of user top-level entries under KPTI.
const NX: u64 = 1 << 63;

/// Why the builder could not do what was asked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SynthError {
    /// The kernel allocation pool ran into the data frames.
    PoolExhausted,
    /// An address or frame is outside the image or misaligned.
    BadArgument,
}

/// A mapping size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PageSize {
    /// 4 KiB (a PTE).
    K4,
    /// 2 MiB (a PMD leaf).
    M2,
    /// 1 GiB (a PUD leaf).
    G1,
}

impl PageSize {
    /// Frames covered.
    pub fn frames(self) -> u64 {
        match self {
            PageSize::K4 => 1,
            PageSize::M2 => 512,
            PageSize::G1 => 512 * 512,
        }
    }
    fn level(self) -> u32 {
        match self {
            PageSize::K4 => 1,
            PageSize::M2 => 2,
            PageSize::G1 => 3,
        }
    }
}

/// A process (address space) made by the builder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProcId(pub usize);

/// Addresses of one synthetic process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SynthProc {
    /// Kernel address of its `mm_struct`.
    pub mm: u64,
    /// Guest-physical address of its PGD (kernel copy; the twin follows).
    pub pgd_pa: u64,
    /// Guest-physical address of its leader's `task_struct`.
    pub task_pa: u64,
}

/// Builds a synthetic guest.
pub struct GuestBuilder {
    /// The guest's memory.
    pub mem: ImageMem,
    /// The profile describing it.
    pub profile: KernelProfile,
    pool_next: u64,
    pool_end: u64,
    top_pa: u64,
    /// Task structs on the task list after `init_task`, by guest-physical
    /// address, in list order.
    pub tasks: Vec<u64>,
    /// Processes made so far.
    pub procs: Vec<SynthProc>,
    /// Guest frames of the taint table, when one was made.
    pub table_frames: Vec<u64>,
    task_slab: (u64, u64),
    mm_slab: (u64, u64),
}

impl GuestBuilder {
    /// A guest of `nr_pfns` frames with `levels`-level paging. Kernel
    /// objects are allocated from frame [`IMAGE_PFN`] + 2 up to
    /// `data_start` (exclusive); frames from `data_start` are the tests'.
    pub fn new(nr_pfns: u64, levels: u32, data_start: u64) -> Result<Self, SynthError> {
        if levels != 4 && levels != 5 || data_start > nr_pfns || data_start < IMAGE_PFN + 8 {
            return Err(SynthError::BadArgument);
        }
        let (pob, vmalloc, vmemmap) = if levels == 5 {
            (
                0xff11_0000_0000_0000,
                0xffa0_0000_0000_0000,
                0xffd4_0000_0000_0000,
            )
        } else {
            (
                0xffff_8880_0000_0000,
                0xffff_c900_0000_0000,
                0xffff_ea00_0000_0000,
            )
        };
        let image_pa = IMAGE_PFN * PAGE_SIZE;
        let profile = KernelProfile {
            kaslr_slide: 0,
            text: LINK_TEXT,
            init_task: LINK_TEXT + PAGE_SIZE / 2,
            page_offset_base: pob,
            vmemmap_base: vmemmap,
            vmalloc_base: vmalloc,
            // The image's first page is at image_pa: __pa_symbol(_text) =
            // _text - __START_KERNEL_map + phys_base.
            phys_base: image_pa.wrapping_sub(LINK_TEXT - crate::profile::START_KERNEL_MAP),
            levels,
            task: TASK,
            mm_pgd: MM_PGD,
            page: PAGE,
            init_top_pgt: LINK_TEXT + PAGE_SIZE,
            max_order: MAX_ORDER_X86,
            release: release(b"6.1.0-synthetic"),
        };
        let mut b = GuestBuilder {
            mem: ImageMem::new(nr_pfns),
            profile,
            pool_next: IMAGE_PFN + 2,
            pool_end: data_start,
            top_pa: image_pa + PAGE_SIZE,
            tasks: Vec::new(),
            procs: Vec::new(),
            table_frames: Vec::new(),
            task_slab: (0, 0),
            mm_slab: (0, 0),
        };
        let init = image_pa + PAGE_SIZE / 2;
        b.write_task(init, 0, 0, b"swapper/0", 0);
        // init_mm at image offset 3 KiB, its pgd init_top_pgt; it is
        // init_task's active_mm.
        let init_mm_pa = image_pa + 3 * PAGE_SIZE / 4;
        b.mem
            .write_u64(init_mm_pa + u64::from(MM_PGD), b.profile.init_top_pgt);
        b.mem.write_u64(
            init + u64::from(TASK.active_mm),
            LINK_TEXT + 3 * PAGE_SIZE / 4,
        );
        // vmemmap: one descriptor per frame, `_mapcount` -1 everywhere.
        let desc_pages = (nr_pfns * u64::from(PAGE.size)).div_ceil(PAGE_SIZE);
        let first = b.alloc(desc_pages, 1)?;
        for pfn in 0..nr_pfns {
            let at = first * PAGE_SIZE + pfn * u64::from(PAGE.size);
            b.mem.write_u32(at + u64::from(PAGE.page_type), u32::MAX);
        }
        for i in 0..desc_pages {
            b.map_kernel(vmemmap + i * PAGE_SIZE, first + i, PageSize::K4)?;
        }
        Ok(b)
    }

    /// Frames `[first, first + n)` from the kernel pool, `first` aligned
    /// to `align` frames.
    pub fn alloc(&mut self, n: u64, align: u64) -> Result<u64, SynthError> {
        let first = self.pool_next.next_multiple_of(align.max(1));
        let end = first.checked_add(n).ok_or(SynthError::PoolExhausted)?;
        if end > self.pool_end {
            return Err(SynthError::PoolExhausted);
        }
        self.pool_next = end;
        Ok(first)
    }

    /// Next frame the pool would hand out.
    pub fn pool_next(&self) -> u64 {
        self.pool_next
    }

    /// Direct-map address of guest-physical `pa`.
    pub fn direct(&self, pa: u64) -> u64 {
        self.profile.page_offset_base + pa
    }

    /// Guest-physical address of the descriptor of `pfn`.
    pub fn desc_pa(&self, pfn: u64) -> Option<u64> {
        // vmemmap is mapped page by page from one pool run.
        let va = self.profile.vmemmap_base + pfn * u64::from(PAGE.size);
        self.translate(va)
    }

    fn translate(&self, va: u64) -> Option<u64> {
        let mut table = self.top_pa;
        let mut level = self.profile.levels;
        loop {
            let slot = table + 8 * crate::kernel::level_index(va, level);
            let e = read(&self.mem, slot)?;
            if e & PTE_PRESENT == 0 {
                return None;
            }
            if level == 1 || (level <= 3 && e & PTE_PSE != 0) {
                let span = crate::kernel::level_span(level);
                return Some((e & crate::kernel::PTE_ADDR & !(span - 1)) | (va & (span - 1)));
            }
            table = e & crate::kernel::PTE_ADDR;
            level -= 1;
        }
    }

    fn write_task(&mut self, pa: u64, pid: i32, tgid: i32, comm: &[u8], mm: u64) {
        let t = TASK;
        self.mem.write_u32(pa + u64::from(t.pid), pid as u32);
        self.mem.write_u32(pa + u64::from(t.tgid), tgid as u32);
        let mut c = [0u8; 16];
        for (d, s) in c.iter_mut().zip(comm.iter().take(15)) {
            *d = *s;
        }
        self.mem.write(pa + u64::from(t.comm), &c);
        self.mem.write_u64(pa + u64::from(t.mm), mm);
        self.mem.write_u64(pa + u64::from(t.active_mm), mm);
    }

    fn slab(&mut self, which: bool, size: u64) -> Result<u64, SynthError> {
        let s = if which { self.task_slab } else { self.mm_slab };
        let (next, end) = if s.0 + size > s.1 {
            let f = self.alloc(1, 1)? * PAGE_SIZE;
            (f, f + PAGE_SIZE)
        } else {
            s
        };
        let r = (next + size, end);
        if which {
            self.task_slab = r;
        } else {
            self.mm_slab = r;
        }
        Ok(next)
    }

    /// Maps kernel address `va` to frame `pfn` in `init_top_pgt`.
    pub fn map_kernel(&mut self, va: u64, pfn: u64, size: PageSize) -> Result<(), SynthError> {
        let top = self.top_pa;
        self.map_in(top, None, va, pfn, size)
    }

    fn map_in(
        &mut self,
        top: u64,
        twin: Option<u64>,
        va: u64,
        pfn: u64,
        size: PageSize,
    ) -> Result<(), SynthError> {
        let span = size.frames();
        if !pfn.is_multiple_of(span) || !va.is_multiple_of(span * PAGE_SIZE) {
            return Err(SynthError::BadArgument);
        }
        let mut table = top;
        let mut level = self.profile.levels;
        while level > size.level() {
            let idx = crate::kernel::level_index(va, level);
            let slot = table + 8 * idx;
            let e = read(&self.mem, slot).ok_or(SynthError::BadArgument)?;
            let next = if e & PTE_PRESENT != 0 {
                e & crate::kernel::PTE_ADDR
            } else {
                let t = self.alloc(1, 1)? * PAGE_SIZE;
                let user = level == self.profile.levels && twin.is_some();
                self.mem
                    .write_u64(slot, t | TABLE_FLAGS | if user { NX } else { 0 });
                if let (true, Some(tw)) = (user, twin) {
                    self.mem.write_u64(tw + 8 * idx, t | TABLE_FLAGS);
                }
                t
            };
            table = next;
            level -= 1;
        }
        let leaf = (pfn * PAGE_SIZE) | TABLE_FLAGS | if level > 1 { PTE_PSE } else { 0 };
        self.mem
            .write_u64(table + 8 * crate::kernel::level_index(va, level), leaf);
        Ok(())
    }

    /// Adds a process (a thread-group leader with its own address space).
    pub fn add_process(&mut self, pid: i32, comm: &[u8]) -> Result<ProcId, SynthError> {
        let pgd = self.alloc(2, 2)? * PAGE_SIZE;
        let mm_pa = self.slab(false, MM_SIZE)?;
        let mm = self.direct(mm_pa);
        self.mem
            .write_u64(mm_pa + u64::from(MM_PGD), self.direct(pgd));
        let task = self.slab(true, u64::from(TASK.size))?;
        self.write_task(task, pid, pid, comm, mm);
        self.tasks.push(task);
        self.procs.push(SynthProc {
            mm,
            pgd_pa: pgd,
            task_pa: task,
        });
        Ok(ProcId(self.procs.len() - 1))
    }

    /// Adds a task on the task list sharing `with`'s address space (a
    /// `vfork` child or `CLONE_VM` process).
    pub fn add_sharing(&mut self, pid: i32, comm: &[u8], with: ProcId) -> Result<(), SynthError> {
        let mm = self.procs.get(with.0).ok_or(SynthError::BadArgument)?.mm;
        let task = self.slab(true, u64::from(TASK.size))?;
        self.write_task(task, pid, pid, comm, mm);
        self.tasks.push(task);
        Ok(())
    }

    /// Adds a kernel thread (no `mm`).
    pub fn add_kthread(&mut self, pid: i32, comm: &[u8]) -> Result<(), SynthError> {
        let task = self.slab(true, u64::from(TASK.size))?;
        self.write_task(task, pid, pid, comm, 0);
        self.tasks.push(task);
        Ok(())
    }

    /// Maps user address `va` of process `p` to `pfn`.
    pub fn map(&mut self, p: ProcId, va: u64, pfn: u64, size: PageSize) -> Result<(), SynthError> {
        let pgd = self.procs.get(p.0).ok_or(SynthError::BadArgument)?.pgd_pa;
        if va >> 47 != 0 && self.profile.levels == 4 || va >> 56 != 0 {
            return Err(SynthError::BadArgument);
        }
        self.map_in(pgd, Some(pgd + PAGE_SIZE), va, pfn, size)
    }

    /// Switches the guest's page-type scheme (and the profile's PageBuddy
    /// rule with it); call before [`GuestBuilder::free_block`]. The top-byte
    /// scheme uses 6.12's `PGTY_buddy`.
    pub fn set_page_types(&mut self, types: PageTypes) {
        let (mask, value) = match types {
            PageTypes::InvertedBit => (INVERTED_BUDDY_MASK, INVERTED_BUDDY_VALUE),
            PageTypes::TopByte => (TOP_BYTE_MASK, PGTY_BUDDY_6_12 << 24),
        };
        self.profile.page.page_types = types;
        self.profile.page.buddy_mask = mask;
        self.profile.page.buddy_value = value;
    }

    /// The `page_type` word the guest's kernel leaves in a free block's
    /// head: 6.1's `__SetPageBuddy` clears `PG_buddy` (0x80) in the reset
    /// value -1; 6.12's writes `PGTY_buddy << 24`.
    pub fn buddy_head_word(&self) -> u32 {
        match self.profile.page.page_types {
            PageTypes::InvertedBit => !0x80u32,
            PageTypes::TopByte => self.profile.page.buddy_value,
        }
    }

    /// Marks `2^order` frames from `pfn` as a free buddy block.
    pub fn free_block(&mut self, pfn: u64, order: u32) -> Result<(), SynthError> {
        let pa = self.desc_pa(pfn).ok_or(SynthError::BadArgument)?;
        let head = self.buddy_head_word();
        self.mem.write_u32(pa + u64::from(PAGE.page_type), head);
        self.mem
            .write_u64(pa + u64::from(PAGE.private), u64::from(order));
        Ok(())
    }

    /// Makes a taint table (tracking, no entries) and returns its header
    /// frame. Its pages are allocated in descending order so that lookups
    /// must go through the frame list.
    pub fn add_taint_table(&mut self) -> Result<u64, SynthError> {
        let n = u64::from(layout::NR_PAGES);
        let first = self.alloc(n, 1)?;
        self.table_frames = (0..n).map(|i| first + n - 1 - i).collect();
        let h = self.table_frames.first().copied().unwrap_or(first) * PAGE_SIZE;
        self.mem.write(h + hdr::MAGIC as u64, &layout::MAGIC);
        let header = Header {
            state: layout::STATE_TRACKING,
            ..Header::new(0, n as u32)
        };
        for (o, v) in header.words() {
            self.mem.write_u32(h + o as u64, v);
        }
        let frames = self.table_frames.clone();
        for (i, f) in frames.iter().enumerate() {
            self.mem.write_u64(h + (hdr::FRAMES + 8 * i) as u64, *f);
        }
        // Group 0: the permanently tainted root.
        self.set_group(0, 0, layout::F_TAINTED)?;
        Ok(h / PAGE_SIZE)
    }

    /// Guest-physical address of element `index` (of `width` bytes) of the
    /// table array that starts at page `page`. Not bounded by the array's
    /// slots: the tests write past them on purpose.
    fn table_slot(&self, page: u32, width: u32, index: u32) -> Result<u64, SynthError> {
        let off = u64::from(width) * u64::from(index);
        let f = self
            .table_frames
            .get((u64::from(page) + off / PAGE_SIZE) as usize)
            .ok_or(SynthError::BadArgument)?;
        Ok(f * PAGE_SIZE + off % PAGE_SIZE)
    }

    /// Writes the task entry of `pid`: member of `group`, thread group
    /// `tgid`.
    pub fn set_task_entry(&mut self, pid: u32, tgid: u32, group: u32) -> Result<(), SynthError> {
        let at = self.table_slot(layout::TASK_PAGE, layout::TASK_ENTRY_BYTES, pid)?;
        self.mem.write_u64(at, layout::task_entry(group, tgid));
        Ok(())
    }

    /// Writes group word `id`: `parent` and `flags`.
    pub fn set_group(&mut self, id: u32, parent: u32, flags: u32) -> Result<(), SynthError> {
        let at = self.table_slot(layout::GROUP_PAGE, layout::GROUP_WORD_BYTES, id)?;
        self.mem
            .write_u32(at, (parent & layout::PARENT_MASK) | flags);
        Ok(())
    }

    /// Sets the table's state word (1 = tracking).
    pub fn set_table_state(&mut self, state: u32) {
        if let Some(f) = self.table_frames.first() {
            self.mem.write_u32(f * PAGE_SIZE + hdr::STATE as u64, state);
        }
    }

    /// Links the task list (init_task, then the tasks in order), writes
    /// the profile into the taint table's page 1 if there is one, and
    /// returns the image and profile.
    pub fn build(mut self) -> (ImageMem, KernelProfile) {
        let off = u64::from(TASK.tasks);
        let head_va = self.profile.init_task + off;
        let head_pa = IMAGE_PFN * PAGE_SIZE + PAGE_SIZE / 2 + off;
        let mut nodes: Vec<(u64, u64)> = Vec::with_capacity(self.tasks.len() + 1);
        nodes.push((head_va, head_pa));
        for &t in &self.tasks {
            nodes.push((self.direct(t + off), t + off));
        }
        let n = nodes.len();
        for i in 0..n {
            let at = |j: usize| nodes.get(j % n).copied().unwrap_or_default();
            let (_, pa) = at(i);
            self.mem.write_u64(pa, at(i + 1).0);
            self.mem.write_u64(pa + 8, at(i + n - 1).0);
        }
        if let Some(&f) = self.table_frames.get(1) {
            let page = self.profile.encode();
            self.mem.write(f * PAGE_SIZE, &page);
        }
        (self.mem, self.profile)
    }
}

fn read(mem: &ImageMem, pa: u64) -> Option<u64> {
    crate::mem::read_u64(mem, pa).ok()
}

fn release(s: &[u8]) -> [u8; 64] {
    let mut r = [0u8; 64];
    for (d, c) in r.iter_mut().zip(s) {
        *d = *c;
    }
    r
}
