//! What a set of frames is: which processes map them, which are their page
//! tables, and, for the rest (the kernel's), what their page descriptors
//! say. A measurement for the paper-analysis mode, which reports how many
//! dirty pages are tainted: the census says whose they are. It only reads;
//! nothing it finds changes what is sent.

use alloc::vec::Vec;

use depmig_precopy::{CensusCounts, DirtyBitmap};

use crate::classify::{walk_processes, Class, Limits};
use crate::error::WalkError;
use crate::free::{descriptor, descriptor_frame, IN_USE_FLAGS, PREFETCH};
use crate::kernel::Kernel;
use crate::mem::PhysMem;
use crate::taint::TaintTable;

/// One process mapping frames of the set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Owner {
    /// Tgid of the first task using the address space.
    pub tgid: i32,
    /// Its `comm`.
    pub comm: [u8; 16],
    /// How its frames are classed.
    pub class: Class,
    /// Frames of the set it maps (a frame several map counts for each).
    pub frames: u64,
}

/// The census of a set of frames. Every frame counts once in exactly one
/// of `user`, `page_tables`, `flagged`, `typed`, `buddy`, `plain` and
/// `unreadable`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Census {
    /// Frames in the set.
    pub asked: u64,
    /// Frames mapped by some process.
    pub user: u64,
    /// Page-table frames of user address spaces.
    pub page_tables: u64,
    /// Kernel frames whose descriptor carries a page flag (slab, page
    /// cache, reserved, locked: [`IN_USE_FLAGS`]).
    pub flagged: u64,
    /// Kernel frames with a page type other than PageBuddy (kernel page
    /// tables, offline pages, and the like).
    pub typed: u64,
    /// Heads of free buddy blocks.
    pub buddy: u64,
    /// Unmapped frames with a bare descriptor: kernel stacks, vmalloc and
    /// per-CPU memory, pages on per-CPU free lists, tails of free blocks.
    pub plain: u64,
    /// Frames whose descriptor could not be read.
    pub unreadable: u64,
    /// The processes mapping frames of the set, most frames first.
    pub owners: Vec<Owner>,
}

impl Census {
    /// The classes a migration report carries, for round `round`.
    pub fn counts(&self, round: u32) -> CensusCounts {
        CensusCounts {
            round,
            asked: self.asked,
            user: self.user,
            page_tables: self.page_tables,
            kernel: self.flagged + self.typed + self.buddy + self.plain,
            unreadable: self.unreadable,
        }
    }
}

/// Takes the census of the frames of `asked`: one walk of every address
/// space (bounded by `limits`) and one descriptor read per frame no
/// process maps.
pub fn census<M: PhysMem + ?Sized>(
    k: &Kernel<'_, M>,
    taint: Option<&TaintTable>,
    limits: &Limits,
    asked: &DirtyBitmap,
) -> Result<Census, WalkError> {
    let nr = k.mem().nr_pfns();
    let mut seen = DirtyBitmap::new(nr);
    let mut tables = DirtyBitmap::new(nr);
    let mut owners: Vec<Owner> = Vec::new();
    walk_processes(k, taint, limits, |p, frames| {
        let mut n = 0;
        for &(first, count) in &frames.ranges {
            // Bounded by the frames the walk found.
            for pfn in first..first.saturating_add(count).min(nr) {
                if asked.test(pfn) {
                    seen.set(pfn);
                    n += 1;
                }
            }
        }
        for &t in &frames.tables {
            if asked.test(t) {
                tables.set(t);
            }
        }
        if n > 0 {
            owners.push(Owner {
                tgid: p.tgid,
                comm: p.comm,
                class: p.class,
                frames: n,
            });
        }
    })?;
    owners.sort_by(|a, b| b.frames.cmp(&a.frames).then(a.tgid.cmp(&b.tgid)));
    tables.and_not_with(&seen);
    let mut c = Census {
        asked: asked.count(),
        user: seen.count(),
        page_tables: tables.count(),
        owners,
        ..Census::default()
    };
    let lay = k.profile().page;
    let rest: Vec<u64> = asked
        .iter_ones()
        .filter(|&p| p < nr && !seen.test(p) && !tables.test(p))
        .collect();
    // Frames beyond the guest's end.
    c.unreadable += asked
        .count()
        .saturating_sub(c.user + c.page_tables + rest.len() as u64);
    // One chunk of descriptor frames at a time; bounded by `rest`.
    for chunk in rest.chunks(PREFETCH) {
        let frames: Vec<u64> = chunk
            .iter()
            .filter_map(|&p| descriptor_frame(k, p))
            .collect();
        k.mem().prefetch(&frames);
        for &pfn in chunk {
            match descriptor(k, pfn) {
                None => c.unreadable += 1,
                Some((flags, _, _)) if flags & IN_USE_FLAGS != 0 => c.flagged += 1,
                Some((_, t, _)) if t & lay.buddy_mask == lay.buddy_value => c.buddy += 1,
                Some((_, u32::MAX, _)) => c.plain += 1,
                Some(_) => c.typed += 1,
            }
        }
    }
    Ok(c)
}
