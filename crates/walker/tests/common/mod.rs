//! Helpers shared by the walker's integration tests.
#![allow(dead_code)] // each test binary uses a different subset

use depmig_precopy::{DirtyBitmap, PortError};
use depmig_walker::profile::PageTypes;
use depmig_walker::synth::{GuestBuilder, PageSize, ProcId};
use depmig_walker::GroupControl;

pub fn ones(b: &DirtyBitmap) -> Vec<u64> {
    let mut v = Vec::new();
    b.for_each_one(|p| v.push(p));
    v
}

/// A bitmap of `n` frames, all set.
pub fn all(n: u64) -> DirtyBitmap {
    let mut b = DirtyBitmap::new(n);
    b.set_all();
    b
}

pub fn range(a: u64, b: u64) -> Vec<u64> {
    (a..b).collect()
}

pub fn sorted(mut v: Vec<u64>) -> Vec<u64> {
    v.sort_unstable();
    v.dedup();
    v
}

/// Frames of the standard scenario (32 MiB guest, data from frame 4096).
pub const NR: u64 = 8192;
pub const DATA: u64 = 4096;

pub struct Scenario {
    pub b: GuestBuilder,
    pub alpha: ProcId,
    pub beta: ProcId,
    pub gamma: ProcId,
    pub table_gfn: u64,
}

/// alpha (pid 100, frozen group 5): 4K 5000, 5001; 2M 5120..5632; pid 101
///   shares its mm (vfork child), also in group 5.
/// beta (pid 200, tainted group 7): 4K 5001 (shared with alpha), 6000.
/// gamma (pid 300, running untainted group 9 via parent 10 -> root 9):
///   4K 6001..6004 as three pages.
/// kthreadd (pid 2), no mm. pid 400 "orphan": no taint entry, maps 6100.
pub fn scenario(levels: u32) -> Scenario {
    scenario_with(levels, PageTypes::InvertedBit)
}

/// [`scenario`] with the given page-type scheme (6.1's or 6.12's).
pub fn scenario_with(levels: u32, types: PageTypes) -> Scenario {
    let mut b = GuestBuilder::new(NR, levels, DATA).unwrap();
    b.set_page_types(types);
    let alpha = b.add_process(100, b"alpha").unwrap();
    b.map(alpha, 0x40_0000, 5000, PageSize::K4).unwrap();
    b.map(alpha, 0x40_1000, 5001, PageSize::K4).unwrap();
    b.map(alpha, 0x4000_0000, 5120, PageSize::M2).unwrap();
    b.add_sharing(101, b"alpha-vfork", alpha).unwrap();
    let beta = b.add_process(200, b"beta").unwrap();
    b.map(beta, 0x7fff_0000_0000, 5001, PageSize::K4).unwrap();
    b.map(beta, 0x7fff_0000_1000, 6000, PageSize::K4).unwrap();
    b.add_kthread(2, b"kthreadd").unwrap();
    let gamma = b.add_process(300, b"gamma").unwrap();
    for (i, pfn) in [6001u64, 6002, 6003].iter().enumerate() {
        b.map(gamma, 0x1000 * (i as u64 + 1), *pfn, PageSize::K4)
            .unwrap();
    }
    let orphan = b.add_process(400, b"orphan").unwrap();
    b.map(orphan, 0x1000, 6100, PageSize::K4).unwrap();
    let table_gfn = b.add_taint_table().unwrap();
    b.set_group(5, 5, depmig_walker::taint::F_FROZEN).unwrap();
    b.set_group(7, 7, depmig_walker::taint::F_TAINTED).unwrap();
    b.set_group(9, 9, 0).unwrap();
    b.set_group(10, 9, 0).unwrap();
    b.set_task_entry(100, 100, 5).unwrap();
    b.set_task_entry(101, 101, 5).unwrap();
    b.set_task_entry(200, 200, 7).unwrap();
    b.set_task_entry(300, 300, 10).unwrap();
    // Free: 7000..7008 (order 3), 7168..8192 (order 10), 6000 (order 0,
    // but mapped by beta).
    b.free_block(7000, 3).unwrap();
    b.free_block(7168, 10).unwrap();
    b.free_block(6000, 0).unwrap();
    Scenario {
        b,
        alpha,
        beta,
        gamma,
        table_gfn,
    }
}

/// A freezer double counting calls.
#[derive(Default)]
pub struct Freezer {
    pub freezes: u32,
    pub thaws: u32,
}

impl GroupControl for Freezer {
    fn freeze(&mut self) -> Result<u32, PortError> {
        self.freezes += 1;
        Ok(2)
    }
    fn thaw_all(&mut self) -> Result<(), PortError> {
        self.thaws += 1;
        Ok(())
    }
}
