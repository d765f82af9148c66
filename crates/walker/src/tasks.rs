//! The task list: `init_task.tasks`, the circular doubly linked list of
//! thread-group leaders (Linux adds a task to it only when it leads its
//! group; other threads share the leader's `mm` and, in the taint table, its
//! group). The caller still dedupes by `mm`, which `vfork` children and
//! `CLONE_VM` processes share with their parent.

use alloc::collections::BTreeSet;
use alloc::vec::Vec;

use crate::error::WalkError;
use crate::kernel::Kernel;
use crate::mem::PhysMem;
use crate::profile::kernel_half;

/// `PID_MAX_LIMIT` on 64-bit Linux (4 Mi).
pub const PID_MAX_LIMIT: i32 = 1 << 22;

/// One task as read from the guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TaskInfo {
    /// Address of the `task_struct`.
    pub task: u64,
    /// Thread id.
    pub pid: i32,
    /// Process id.
    pub tgid: i32,
    /// `comm`, NUL padded (first 16 bytes).
    pub comm: [u8; 16],
    /// `mm` (0 for kernel threads).
    pub mm: u64,
}

/// Walks `init_task.tasks` and returns every task but `init_task`.
///
/// Bounded by `max_tasks` nodes. Fails when a pointer is not an aligned
/// kernel-half address or cannot be read, when a node's successor does not
/// point back at it, when a node other than the head recurs (a cycle), or
/// when the head is not reached within the bound.
pub fn walk_tasks<M: PhysMem + ?Sized>(
    k: &Kernel<'_, M>,
    max_tasks: u32,
) -> Result<Vec<TaskInfo>, WalkError> {
    let p = *k.profile();
    let lay = p.task;
    let head = p.init_task.wrapping_add(u64::from(lay.tasks));
    let mut seen: BTreeSet<u64> = BTreeSet::new();
    let mut out = Vec::new();
    let mut prev = head;
    let mut node = k.read_u64(head)?;
    let mut steps: u32 = 0;
    loop {
        if !kernel_half(node, p.levels) || !node.is_multiple_of(8) {
            return Err(WalkError::BadTaskPointer(node));
        }
        let back = k.read_u64(node.wrapping_add(8))?;
        if back != prev {
            return Err(WalkError::TaskListBroken(node));
        }
        if node == head {
            return Ok(out);
        }
        steps += 1;
        if steps > max_tasks {
            return Err(WalkError::TaskListTooLong);
        }
        if !seen.insert(node) {
            return Err(WalkError::TaskListCycle(node));
        }
        let task = node
            .checked_sub(u64::from(lay.tasks))
            .ok_or(WalkError::BadTaskPointer(node))?;
        out.push(read_task(k, task)?);
        prev = node;
        node = k.read_u64(node)?;
    }
}

fn read_task<M: PhysMem + ?Sized>(k: &Kernel<'_, M>, task: u64) -> Result<TaskInfo, WalkError> {
    let p = *k.profile();
    let lay = p.task;
    let pid = k.read_i32(task.wrapping_add(u64::from(lay.pid)))?;
    let tgid = k.read_i32(task.wrapping_add(u64::from(lay.tgid)))?;
    for v in [pid, tgid] {
        if v <= 0 || v > PID_MAX_LIMIT {
            return Err(WalkError::BadPid(v));
        }
    }
    let mut comm = [0u8; 16];
    let n = (lay.comm_len as usize).min(16);
    if let Some(c) = comm.get_mut(..n) {
        k.read_virt(task.wrapping_add(u64::from(lay.comm)), c)?;
    }
    let mm = k.read_u64(task.wrapping_add(u64::from(lay.mm)))?;
    if mm != 0 && (!kernel_half(mm, p.levels) || !mm.is_multiple_of(8)) {
        return Err(WalkError::BadMm(mm));
    }
    Ok(TaskInfo {
        task,
        pid,
        tgid,
        comm,
        mm,
    })
}
