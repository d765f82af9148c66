//! Frames attributed to processes and combined with the taint table into
//! what the dependency oracle reports.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use depmig_precopy::DirtyBitmap;

use crate::bits::set_range;
use crate::error::WalkError;
use crate::kernel::Kernel;
use crate::mem::PhysMem;
use crate::pgtable::{walk_mm, MmFrames};
use crate::taint::{TaintTable, TaskState};
use crate::tasks::walk_tasks;

/// Bounds on the work one classification may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Most tasks on the task list.
    pub max_tasks: u32,
    /// Most page-table pages read, over all address spaces together.
    pub max_tables: u64,
}

impl Limits {
    /// Defaults for a guest of `nr_pfns` frames: 65536 tasks (twice
    /// Linux's default `pid_max`), and max(65536, nr_pfns / 4) table pages
    /// (a guest whose page tables fill a quarter of its memory is hostile).
    pub fn for_guest(nr_pfns: u64) -> Self {
        Limits {
            max_tasks: 65536,
            max_tables: (nr_pfns / 4).max(65536),
        }
    }
}

/// How a process's frames are classed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// Tainted, no taint table entry, or its walk failed.
    Tainted,
    /// Untainted and running.
    Untainted,
    /// Untainted and frozen by the agent.
    Frozen,
}

/// One address space and the processes using it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Process {
    /// Tgid of the first task found using the address space.
    pub tgid: i32,
    /// Its `comm`.
    pub comm: [u8; 16],
    /// Address of the `mm_struct`.
    pub mm: u64,
    /// Tasks on the task list sharing this `mm`.
    pub tasks: u32,
    /// Class of its frames.
    pub class: Class,
    /// 4 KiB frames mapped (inside RAM, duplicates counted).
    pub pages: u64,
    /// Why its walk failed, if it did (the process then counts as tainted).
    pub error: Option<WalkError>,
}

/// Counters of one classification.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Tasks on the task list (without `init_task`).
    pub tasks: u64,
    /// Tasks without an `mm` (kernel threads).
    pub kernel_threads: u64,
    /// Distinct address spaces.
    pub mms: u64,
    /// Address spaces whose walk failed.
    pub failed_mms: u64,
    /// Page-table pages read.
    pub tables: u64,
    /// Pages mapped outside RAM (ignored).
    pub outside_ram: u64,
}

/// What the walk found, as bitmaps over guest frames.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Classification {
    /// The oracle's tainted set: every frame except those proven to be
    /// mapped only by untainted processes (kernel frames, page tables,
    /// unmapped frames and frames of tainted or unwalkable processes).
    pub tainted: DirtyBitmap,
    /// Frames mapped only by untainted processes whose walk succeeded.
    pub untainted: DirtyBitmap,
    /// The part of `untainted` mapped only by frozen processes.
    pub frozen: DirtyBitmap,
    /// Every frame any walk found mapped, complete or not.
    pub mapped: DirtyBitmap,
    /// Page-table frames of user address spaces.
    pub page_tables: DirtyBitmap,
    /// One entry per address space.
    pub processes: Vec<Process>,
    /// Counters.
    pub stats: Stats,
}

fn apply(b: &mut DirtyBitmap, f: &MmFrames) {
    for &(pfn, n) in &f.ranges {
        set_range(b, pfn, n);
    }
}

/// Walks the task list and every address space. Without a taint table
/// every process is tainted. Fails only when the task list cannot be
/// walked; a failing address space makes its process tainted.
pub fn classify<M: PhysMem + ?Sized>(
    k: &Kernel<'_, M>,
    taint: Option<&TaintTable>,
    limits: &Limits,
) -> Result<Classification, WalkError> {
    let nr = k.mem().nr_pfns();
    let mut tainted_any = DirtyBitmap::new(nr);
    let mut untainted_any = DirtyBitmap::new(nr);
    let mut running_any = DirtyBitmap::new(nr);
    let mut frozen_any = DirtyBitmap::new(nr);
    let mut mapped = DirtyBitmap::new(nr);
    let mut page_tables = DirtyBitmap::new(nr);
    let (processes, stats) = walk_processes(k, taint, limits, |p, frames| {
        apply(&mut mapped, frames);
        for &t in &frames.tables {
            page_tables.set(t);
        }
        match p.class {
            Class::Tainted => apply(&mut tainted_any, frames),
            Class::Untainted => {
                apply(&mut untainted_any, frames);
                apply(&mut running_any, frames);
            }
            Class::Frozen => {
                apply(&mut untainted_any, frames);
                apply(&mut frozen_any, frames);
            }
        }
    })?;
    let mut untainted = untainted_any;
    untainted.and_not_with(&tainted_any);
    untainted.and_not_with(&page_tables);
    let mut frozen = frozen_any;
    frozen.and_with(&untainted);
    frozen.and_not_with(&running_any);
    let mut tainted = DirtyBitmap::new(nr);
    tainted.set_all();
    tainted.and_not_with(&untainted);
    Ok(Classification {
        tainted,
        untainted,
        frozen,
        mapped,
        page_tables,
        processes,
        stats,
    })
}

/// Walks the task list and every address space, classing each process as
/// [`classify`] describes, and shows `visit` each process with the frames
/// its walk found. Fails only when the task list cannot be walked.
pub(crate) fn walk_processes<M, F>(
    k: &Kernel<'_, M>,
    taint: Option<&TaintTable>,
    limits: &Limits,
    mut visit: F,
) -> Result<(Vec<Process>, Stats), WalkError>
where
    M: PhysMem + ?Sized,
    F: FnMut(&Process, &MmFrames),
{
    let mem = k.mem();
    let tasks = walk_tasks(k, limits.max_tasks)?;
    let mut stats = Stats {
        tasks: tasks.len() as u64,
        ..Stats::default()
    };
    // Address space -> indices of its tasks, in task-list order.
    let mut by_mm: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
    for (i, t) in tasks.iter().enumerate() {
        if t.mm == 0 {
            stats.kernel_threads += 1;
        } else {
            by_mm.entry(t.mm).or_default().push(i);
        }
    }
    let mut processes = Vec::with_capacity(by_mm.len());
    let mut budget = limits.max_tables;
    let mut frames = MmFrames::default();
    for (&mm, idx) in &by_mm {
        let mut class = if taint.is_some() {
            Class::Frozen
        } else {
            Class::Tainted
        };
        if let Some(table) = taint {
            for t in idx.iter().filter_map(|&i| tasks.get(i)) {
                match table.task_state(mem, t.pid, t.tgid) {
                    TaskState::Tainted => class = Class::Tainted,
                    TaskState::Untainted { frozen: false, .. } if class == Class::Frozen => {
                        class = Class::Untainted
                    }
                    TaskState::Untainted { .. } => {}
                }
            }
        }
        frames.ranges.clear();
        frames.tables.clear();
        frames.pages = 0;
        frames.outside_ram = 0;
        let before = budget;
        let result = walk_mm(k, mm, &mut budget, &mut frames);
        stats.tables += before - budget;
        stats.outside_ram += frames.outside_ram;
        if result.is_err() {
            stats.failed_mms += 1;
            class = Class::Tainted;
        }
        let first = idx.first().and_then(|&i| tasks.get(i));
        let p = Process {
            tgid: first.map_or(0, |t| t.tgid),
            comm: first.map_or([0; 16], |t| t.comm),
            mm,
            tasks: idx.len() as u32,
            class,
            pages: frames.pages,
            error: result.err(),
        };
        visit(&p, &frames);
        processes.push(p);
    }
    stats.mms = by_mm.len() as u64;
    Ok((processes, stats))
}
