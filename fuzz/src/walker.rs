//! Target `walker`: the Linux walker behind the dependency oracle over
//! guest memory the guest controls.
//!
//! A synthetic guest (`depmig_walker::synth`, 8 MiB, four processes, a
//! kernel thread, free blocks, the agent's taint table and kernel profile)
//! is built once per paging depth; each input then changes it. Input: a
//! flags byte (paging depth; whether reads go through the appliance's
//! page cache, `CachedMem`, and its size; work bounds; whether the table
//! frame given to the oracle is the fuzzer's; 6.1's page types or
//! 6.12's), then a program of memory
//! writes until the input ends: 8- and 4-byte words with values shaped
//! like pointers, table entries or small numbers, raw byte runs, holes
//! (unreadable frames), aimed at the kernel objects, the processes'
//! objects and page tables, the profile page, the taint table's header or
//! anywhere.
//!
//! Invariants checked besides "no panic": the classification is
//! consistent (failed walks tainted, tainted the complement of untainted,
//! frozen within untainted, page tables never untainted, the table budget
//! held); what the oracle answers matches its classification, or is "all
//! tainted, none free" after a failure; a frame reported free is never
//! mapped, never a page table, never a taint table frame, always one of
//! those asked about; the page cache changes no answer; every bitmap has
//! the guest's size.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

use depmig_precopy::{DependencyOracle, DirtyBitmap, PortError};
use depmig_walker::cache::Page;
use depmig_walker::profile::PageTypes;
use depmig_walker::synth::{GuestBuilder, PageSize};
use depmig_walker::{
    classify, free_among, scan_free, CachedMem, Class, Classification, FrameSource, GroupControl,
    ImageMem, Kernel, Limits, LinuxOracle, MemError, PhysMem, TaintTable, WalkError, PAGE_SIZE,
};

use crate::Input;

/// Frames of the synthetic guest (8 MiB).
pub const NR: u64 = 2048;
/// First frame left to the processes' data (below it: kernel objects).
pub const DATA: u64 = 1024;

/// A built guest and the addresses the input's writes aim at.
pub struct Base {
    /// The guest's memory.
    pub mem: ImageMem,
    /// Header frame of the taint table.
    pub table_gfn: u64,
    /// The taint table's frames (header first).
    pub table_frames: Vec<u64>,
    /// `[start, end)` of the kernel's objects (guest-physical).
    pub kernel: (u64, u64),
    /// `[start, end)` of the processes' objects and page tables.
    pub procs: (u64, u64),
    /// `page_offset_base` of the profile.
    pub direct_map: u64,
}

/// The guest of the seeds and the fuzzer: `levels`-level paging, 6.1's
/// page types or (`top_byte`) 6.12's.
///
/// alpha (pid 100, frozen group 5) maps 1100, 1101 and a 2 MiB page at
/// 1536; pid 101 shares its mm. beta (pid 200, tainted) maps 1101 and
/// 1200. gamma (pid 300, untainted via group 10 -> 9) maps 1201..1204.
/// kthreadd (pid 2). orphan (pid 400, no taint entry) maps 1300. Free:
/// 1024..1088, 1280..1296, 1400..1408, and 1200 (mapped by beta: a lying
/// descriptor).
pub fn build(levels: u32, top_byte: bool) -> Base {
    // PANICS: the layout below fits the pool (a fixed guest).
    let mut b = GuestBuilder::new(NR, levels, DATA).expect("guest");
    if top_byte {
        b.set_page_types(PageTypes::TopByte);
    }
    let alpha = b.add_process(100, b"alpha").expect("alpha");
    b.map(alpha, 0x40_0000, 1100, PageSize::K4).expect("map");
    b.map(alpha, 0x40_1000, 1101, PageSize::K4).expect("map");
    b.map(alpha, 0x4000_0000, 1536, PageSize::M2).expect("map");
    b.add_sharing(101, b"alpha-vfork", alpha).expect("vfork");
    let beta = b.add_process(200, b"beta").expect("beta");
    b.map(beta, 0x7fff_0000_0000, 1101, PageSize::K4)
        .expect("map");
    b.map(beta, 0x7fff_0000_1000, 1200, PageSize::K4)
        .expect("map");
    b.add_kthread(2, b"kthreadd").expect("kthread");
    let gamma = b.add_process(300, b"gamma").expect("gamma");
    for (i, pfn) in [1201u64, 1202, 1203].iter().enumerate() {
        b.map(gamma, 0x1000 * (i as u64 + 1), *pfn, PageSize::K4)
            .expect("map");
    }
    let orphan = b.add_process(400, b"orphan").expect("orphan");
    b.map(orphan, 0x1000, 1300, PageSize::K4).expect("map");
    let table_gfn = b.add_taint_table().expect("table");
    b.set_group(5, 5, depmig_walker::taint::F_FROZEN)
        .expect("group");
    b.set_group(7, 7, depmig_walker::taint::F_TAINTED)
        .expect("group");
    b.set_group(9, 9, 0).expect("group");
    b.set_group(10, 9, 0).expect("group");
    b.set_task_entry(100, 100, 5).expect("task");
    b.set_task_entry(101, 101, 5).expect("task");
    b.set_task_entry(200, 200, 7).expect("task");
    b.set_task_entry(300, 300, 10).expect("task");
    b.free_block(1024, 6).expect("free");
    b.free_block(1280, 4).expect("free");
    b.free_block(1400, 3).expect("free");
    b.free_block(1200, 0).expect("free");
    let kernel = (16 * PAGE_SIZE, b.pool_next() * PAGE_SIZE);
    let table_frames = b.table_frames.clone();
    let first = b.procs[0].pgd_pa.min(b.procs[0].task_pa);
    let last = table_frames.iter().min().copied().unwrap_or(DATA) * PAGE_SIZE;
    let direct_map = b.profile.page_offset_base;
    let (mem, _profile) = b.build();
    Base {
        mem,
        table_gfn,
        table_frames,
        kernel,
        procs: (first, last),
        direct_map,
    }
}

fn base(levels: u32, top_byte: bool) -> &'static Base {
    static BASES: [OnceLock<Base>; 4] = [const { OnceLock::new() }; 4];
    let i = usize::from(levels == 5) | usize::from(top_byte) << 1;
    // PANICS: i < 4.
    BASES[i].get_or_init(|| build(levels, top_byte))
}

/// Builds both base guests now (the binary calls it before afl-fuzz's
/// fork server starts, so that every child inherits them).
pub fn prepare() {
    for top_byte in [false, true] {
        base(4, top_byte);
        base(5, top_byte);
    }
}

/// The base guest with the input's changes laid over it, copy-on-write
/// per frame.
pub struct Overlay<'a> {
    base: &'a [u8],
    pages: BTreeMap<u64, Box<Page>>,
    holes: BTreeSet<u64>,
}

impl<'a> Overlay<'a> {
    /// The base image unchanged.
    pub fn new(base: &'a ImageMem) -> Self {
        Overlay {
            base: base.bytes(),
            pages: BTreeMap::new(),
            holes: BTreeSet::new(),
        }
    }

    fn page_mut(&mut self, pfn: u64) -> Option<&mut Page> {
        let start = usize::try_from(pfn * PAGE_SIZE).ok()?;
        let src = self.base.get(start..start + PAGE_SIZE as usize)?;
        let p = self.pages.entry(pfn).or_insert_with(|| {
            let mut p = Box::new([0u8; PAGE_SIZE as usize]);
            p.copy_from_slice(src);
            p
        });
        Some(&mut **p)
    }

    /// Writes `data` at `gpa`; what falls outside RAM is dropped.
    pub fn write(&mut self, gpa: u64, data: &[u8]) {
        for (i, &b) in data.iter().enumerate() {
            let at = gpa.wrapping_add(i as u64);
            if let Some(p) = self.page_mut(at / PAGE_SIZE) {
                p[(at % PAGE_SIZE) as usize] = b;
            }
        }
    }

    /// Makes frame `pfn` unreadable.
    pub fn punch_hole(&mut self, pfn: u64) {
        self.holes.insert(pfn);
    }
}

impl PhysMem for Overlay<'_> {
    fn nr_pfns(&self) -> u64 {
        self.base.len() as u64 / PAGE_SIZE
    }

    fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), MemError> {
        let end = gpa
            .checked_add(buf.len() as u64)
            .ok_or(MemError::OutsideRam)?;
        if end > self.base.len() as u64 {
            return Err(MemError::OutsideRam);
        }
        let mut done = 0;
        while done < buf.len() {
            let at = gpa + done as u64;
            let pfn = at / PAGE_SIZE;
            let off = (at % PAGE_SIZE) as usize;
            let n = (PAGE_SIZE as usize - off).min(buf.len() - done);
            if self.holes.contains(&pfn) {
                return Err(MemError::Unreadable);
            }
            let dst = &mut buf[done..done + n];
            match self.pages.get(&pfn) {
                Some(p) => dst.copy_from_slice(&p[off..off + n]),
                None => {
                    let s = at as usize;
                    dst.copy_from_slice(&self.base[s..s + n]);
                }
            }
            done += n;
        }
        Ok(())
    }
}

/// Whole frames of the overlay for the page cache, checking the cache's
/// side of `FrameSource`'s contract.
struct Frames<'a, 'b> {
    mem: &'b Overlay<'a>,
    read_ahead: usize,
}

impl FrameSource for Frames<'_, '_> {
    type Error = MemError;

    fn fetch(
        &mut self,
        gfns: &[u64],
        pages: &mut [Box<Page>],
        results: &mut [Result<(), MemError>],
    ) -> Result<(), MemError> {
        assert!(
            !gfns.is_empty() && gfns.len() <= self.read_ahead,
            "batch of {}",
            gfns.len()
        );
        assert_eq!((pages.len(), results.len()), (gfns.len(), gfns.len()));
        for (i, g) in gfns.iter().enumerate() {
            assert!(!gfns[..i].contains(g), "gfn {g} twice in a batch");
            assert!(*g < self.mem.nr_pfns(), "gfn {g} beyond the guest");
        }
        for ((g, p), r) in gfns.iter().zip(pages.iter_mut()).zip(results.iter_mut()) {
            *r = self.mem.read(g * PAGE_SIZE, &mut p[..]);
        }
        Ok(())
    }
}

/// The agent's freezer, counting calls.
#[derive(Default)]
struct Freezer {
    calls: u32,
}

impl GroupControl for Freezer {
    fn freeze(&mut self) -> Result<u32, PortError> {
        self.calls += 1;
        Ok(1)
    }
    fn thaw_all(&mut self) -> Result<(), PortError> {
        self.calls += 1;
        Ok(())
    }
}

/// What a run saw (for the seed tests).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// The classification's verdict: processes found, or the error.
    pub classified: Result<usize, WalkError>,
    /// Frames the oracle reported free.
    pub free: u64,
}

/// Runs one input.
pub fn run(data: &[u8]) -> Outcome {
    let mut inp = Input::new(data);
    let flags = inp.u8();
    let levels = if flags & 1 == 0 { 4 } else { 5 };
    let b = base(levels, flags & 0x20 != 0);
    let mut mem = Overlay::new(&b.mem);
    let limits = match (flags >> 2) & 3 {
        0 | 1 => Limits::for_guest(NR),
        2 => Limits {
            max_tasks: 3,
            max_tables: 7,
        },
        _ => Limits {
            max_tasks: 64,
            max_tables: 64,
        },
    };
    let table_gfn = if flags & 0x10 != 0 {
        u64::from(inp.u16())
    } else {
        b.table_gfn
    };
    let cached = flags & 2 != 0;
    let (capacity, read_ahead) = [(1, 1), (4, 3), (64, 16), (512, 64)][usize::from(flags >> 6)];
    while !inp.is_empty() {
        write(&mut inp, &mut mem, b);
    }

    let direct = walk(&mem, b.table_gfn, &limits);
    if cached {
        let cache = CachedMem::new(
            Frames {
                mem: &mem,
                read_ahead,
            },
            NR,
            capacity,
            read_ahead,
        );
        let through = walk(&cache, b.table_gfn, &limits);
        assert_eq!(direct, through, "the page cache changed the walk");
        cache.flush();
        oracle(&cache, table_gfn, limits)
    } else {
        oracle(&mem, table_gfn, limits)
    }
}

/// One change to guest memory, from the input.
fn write(inp: &mut Input<'_>, mem: &mut Overlay<'_>, b: &Base) {
    let op = inp.u8();
    let (lo, hi) = match (op >> 3) & 7 {
        0 | 1 => b.kernel,
        2 | 3 => b.procs,
        4 => {
            let f = b.table_frames.get(1).copied().unwrap_or(0) * PAGE_SIZE;
            (f, f + PAGE_SIZE)
        }
        5 => (b.table_gfn * PAGE_SIZE, (b.table_gfn + 1) * PAGE_SIZE),
        _ => (0, NR * PAGE_SIZE),
    };
    let at = lo + u64::from(inp.u32()) % (hi - lo);
    match op & 7 {
        0..=2 => {
            let v = inp.u64();
            // Plausible values reach deeper than random ones.
            let v = match op >> 6 {
                0 => v,
                1 => b.direct_map + (v % (NR * PAGE_SIZE)),
                2 => ((v % NR) << 12) | (v >> 60) | 1,
                _ => v & 0xffff_ffff,
            };
            mem.write(at & !7, &v.to_le_bytes());
        }
        3 => mem.write(at & !3, &inp.u32().to_le_bytes()),
        4 | 5 => {
            let n = usize::from(inp.u8()) + 1;
            mem.write(at, inp.bytes(n));
        }
        6 => {
            // A whole page of fuzzer bytes (the profile page, say).
            let n = usize::from(inp.u16()) % (PAGE_SIZE as usize + 1);
            mem.write(at & !(PAGE_SIZE - 1), inp.bytes(n));
        }
        _ => mem.punch_hole(at / PAGE_SIZE),
    }
}

/// The walks the appliance makes, directly (not through the oracle), so
/// that two memories can be compared.
#[derive(Debug, PartialEq, Eq)]
struct Walk {
    classified: Option<Result<Classification, WalkError>>,
    free: Option<DirtyBitmap>,
}

fn walk<M: PhysMem>(mem: &M, table_gfn: u64, limits: &Limits) -> Walk {
    let table = TaintTable::read(mem, table_gfn).ok();
    let profile = table.as_ref().and_then(|t| {
        let gfn = t.profile_gfn()?;
        let mut page = vec![0u8; PAGE_SIZE as usize];
        mem.read(gfn * PAGE_SIZE, &mut page).ok()?;
        depmig_walker::KernelProfile::parse(&page).ok()
    });
    let Some(k) = profile.and_then(|p| Kernel::new(mem, &p).ok()) else {
        return Walk {
            classified: None,
            free: None,
        };
    };
    let c = classify(&k, table.as_ref(), limits);
    if let Ok(c) = &c {
        check_consistent(c, limits);
    }
    let scan = scan_free(&k);
    assert_eq!(scan.free.len(), NR);
    // free_among over a few frames decides them as the whole scan does.
    let mut among = DirtyBitmap::new(NR);
    for pfn in [
        0, 1024, 1087, 1088, 1100, 1200, 1281, 1401, 1407, 1408, 2047,
    ] {
        among.set(pfn);
    }
    // free_among decides a few frames from fewer descriptors: never more
    // than the whole scan finds among them.
    let some = free_among(&k, &among);
    let mut beyond = some.free.clone();
    beyond.and_not_with(&scan.free);
    assert_eq!(
        beyond.count(),
        0,
        "free_among found frames scan_free did not"
    );
    assert_eq!(
        some.free.count_and(&among),
        some.free.count(),
        "free_among beyond its set"
    );
    Walk {
        classified: Some(c),
        free: Some(scan.free),
    }
}

/// The classification's own consistency.
fn check_consistent(c: &Classification, limits: &Limits) {
    for p in &c.processes {
        if p.error.is_some() {
            assert_eq!(p.class, Class::Tainted, "failed walk not tainted");
        }
    }
    for b in [
        &c.tainted,
        &c.untainted,
        &c.frozen,
        &c.mapped,
        &c.page_tables,
    ] {
        assert_eq!(b.len(), NR);
    }
    assert_eq!(
        c.untainted.count_and(&c.page_tables),
        0,
        "page table untainted"
    );
    assert_eq!(
        c.frozen.count_and(&c.untainted),
        c.frozen.count(),
        "frozen not untainted"
    );
    assert_eq!(c.tainted.count_and(&c.untainted), 0);
    assert_eq!(c.tainted.count() + c.untainted.count(), NR);
    assert!(c.stats.tables <= limits.max_tables, "table budget exceeded");
}

fn oracle<M: PhysMem>(mem: &M, table_gfn: u64, limits: Limits) -> Outcome {
    let mut o = LinuxOracle::new(mem, Freezer::default(), table_gfn);
    o.set_limits(limits);
    let mut out = DirtyBitmap::new(NR);
    o.tainted_frames(&mut out).expect("the oracle never fails");
    let classified = match o.last_classification() {
        Some(c) => {
            assert_eq!(
                &out, &c.tainted,
                "tainted answer is not the classification's"
            );
            Ok(c.processes.len())
        }
        None => {
            assert_eq!(out.count(), NR, "failed walk did not taint everything");
            Err(o.last_error().expect("a failure leaves its error"))
        }
    };
    let mut among = DirtyBitmap::new(NR);
    among.set_all();
    for pfn in (0..NR).step_by(7) {
        among.clear(pfn);
    }
    o.free_frames(&among, &mut out)
        .expect("the oracle never fails");
    let free = out.count();
    if free > 0 {
        let c = o
            .classify_now()
            .expect("free frames only from a walk that worked");
        assert_eq!(out.count_and(&c.mapped), 0, "mapped frame reported free");
        assert_eq!(out.count_and(&c.page_tables), 0, "page table reported free");
        assert_eq!(
            out.count_and(&among),
            free,
            "frame not asked about reported free"
        );
        let table = TaintTable::read(mem, table_gfn).expect("a walk that worked read the table");
        for f in &table.frames {
            assert!(!out.test(*f), "taint table frame {f} reported free");
        }
    }
    if let Some(n) = o.census(1, &among).expect("the oracle never fails") {
        assert_eq!(n.asked, among.count(), "census of another set");
        let parts = [n.user, n.page_tables, n.kernel, n.unreadable];
        assert!(
            parts
                .iter()
                .try_fold(0u64, |a, &x| a.checked_add(x))
                .is_some_and(|t| t <= n.asked),
            "census classes exceed the frames asked: {n:?}"
        );
    }
    Outcome { classified, free }
}
