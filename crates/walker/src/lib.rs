//! Reads a Linux x86-64 guest from outside: checks the kernel profile the
//! guest agent published, walks the task list and every address space's
//! page tables, finds free frames in the page descriptors, reads the taint
//! table, and turns all of it into the frame sets the pre-copy engine's
//! dependency oracle reports.
//!
//! Guest memory is hostile: every pointer is checked against guest RAM,
//! every walk is bounded, cycles and shared tables are detected, and any
//! inconsistency falls back to "send it": a frame is free only if proven
//! free, a process untainted only if its whole walk succeeded.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;

pub mod agent;
pub mod bits;
pub mod cache;
pub mod census;
pub mod classify;
pub mod error;
pub mod free;
pub mod kernel;
pub mod mem;
pub mod oracle;
pub mod pgtable;
pub mod profile;
pub mod synth;
pub mod taint;
pub mod tasks;

pub use cache::{CacheError, CacheStats, CachedMem, FrameSource};
pub use census::{census, Census, Owner};
pub use classify::{classify, Class, Classification, Limits, Process, Stats};
pub use error::WalkError;
pub use free::{free_among, scan_free, FreeScan};
pub use kernel::Kernel;
pub use mem::{ImageMem, MemError, PhysMem, PAGE_SIZE};
pub use oracle::{GroupControl, LinuxOracle};
pub use profile::{KernelProfile, ProfileError};
pub use taint::{TaintError, TaintTable, TaskState};
pub use tasks::{walk_tasks, TaskInfo};
