//! Why a walk stopped. Every variant makes the caller send rather than skip.

use crate::mem::MemError;
use crate::profile::ProfileError;
use crate::taint::TaintError;

/// A walk of guest structures that could not be completed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WalkError {
    /// The kernel profile is unusable.
    Profile(ProfileError),
    /// The taint table is unusable.
    Taint(TaintError),
    /// A guest-physical read failed at this address.
    Mem(MemError, u64),
    /// A virtual address is not canonical for the paging depth.
    NotCanonical(u64),
    /// A kernel virtual address has no present mapping.
    NotMapped(u64),
    /// A page-table entry at this level has reserved or impossible bits.
    BadEntry(u32),
    /// A page table lies outside guest RAM.
    TableOutsideRam(u64),
    /// A page-table page occurs twice within one address space (a loop or
    /// an overlap); its guest-physical address.
    TableReused(u64),
    /// The bound on page-table pages was reached.
    TooManyTables,
    /// `init_task` is not pid 0 named `swapper/0`.
    NotSwapper,
    /// A task pointer is not an aligned kernel-half address.
    BadTaskPointer(u64),
    /// A task's pid or tgid is out of range.
    BadPid(i32),
    /// The task list revisits a node other than its head.
    TaskListCycle(u64),
    /// The task list did not return to its head within the task bound.
    TaskListTooLong,
    /// A node's successor does not point back at it (`next->prev != node`).
    TaskListBroken(u64),
    /// An `mm_struct` pointer or its `pgd` is not a usable address.
    BadMm(u64),
}

impl From<ProfileError> for WalkError {
    fn from(e: ProfileError) -> Self {
        WalkError::Profile(e)
    }
}

impl From<TaintError> for WalkError {
    fn from(e: TaintError) -> Self {
        WalkError::Taint(e)
    }
}
