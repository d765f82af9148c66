//! The agent's live view of the taint table, and the union-find operations
//! the agent and the tests perform on it. The layout is the guest ↔
//! appliance contract in `depmig-guest-abi` (its `table` module, held
//! against `bpf/table.h`).
//!
//! The table is one value of a `BPF_F_MMAPABLE` array map. Page 0 is the
//! header (with the guest frame numbers of every table page), page 1 the
//! kernel profile, then one 8-byte entry per pid and one 4-byte word per
//! dependency group. All fields are little endian. The BPF program and the
//! agent update it concurrently with atomic operations only.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use depmig_guest_abi::table::{
    self as layout, hdr, Header, F_FROZEN, F_SHARED_MEM, F_TAINTED, F_THAW_REQ, GROUP_SLOTS,
    G_GROUPS_EXHAUSTED, MAGIC, MAX_FIND, PAGE_SIZE, PARENT_MASK, TABLE_BYTES, VERSION,
};

/// Errors of table access.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableError {
    /// An offset outside the table or not aligned for its field.
    BadOffset,
    /// The table's header does not carry the depmig magic and version.
    BadHeader,
    /// More table pages than the header can list.
    TooManyPages,
}

impl std::fmt::Display for TableError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TableError::BadOffset => "offset outside the taint table",
            TableError::BadHeader => "taint table header has no depmig magic/version",
            TableError::TooManyPages => "taint table has more pages than the header can list",
        })
    }
}

/// A view of a table in memory (the agent's mapping of the BPF map, or a
/// test buffer). Every access is bounds- and alignment-checked and atomic.
pub struct Table<'a> {
    words: &'a [AtomicU64],
}

/// Taint state of a task as a reader sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskState {
    /// Group id recorded for the task.
    pub group: u32,
    /// Root of that group.
    pub root: u32,
    /// Flags of the root (`F_*`).
    pub flags: u32,
}

impl TaskState {
    /// Whether the task's group is tainted.
    pub fn tainted(&self) -> bool {
        self.flags & F_TAINTED != 0
    }
}

impl<'a> Table<'a> {
    /// View over `words` (at least `TABLE_BYTES` long).
    pub fn new(words: &'a [AtomicU64]) -> Result<Self, TableError> {
        if words.len() * 8 < TABLE_BYTES {
            return Err(TableError::BadOffset);
        }
        Ok(Table { words })
    }

    fn word(&self, off: usize) -> Result<&AtomicU64, TableError> {
        if !off.is_multiple_of(8) {
            return Err(TableError::BadOffset);
        }
        self.words.get(off / 8).ok_or(TableError::BadOffset)
    }

    /// Reads the little-endian u64 at byte offset `off`.
    pub fn u64_at(&self, off: usize) -> Result<u64, TableError> {
        Ok(self.word(off)?.load(Ordering::Acquire))
    }

    /// Writes the u64 at byte offset `off`.
    pub fn set_u64(&self, off: usize, v: u64) -> Result<(), TableError> {
        self.word(off)?.store(v, Ordering::Release);
        Ok(())
    }

    fn half(&self, off: usize) -> Result<&AtomicU32, TableError> {
        if !off.is_multiple_of(4) {
            return Err(TableError::BadOffset);
        }
        let w = self.word(off & !7)?;
        // SAFETY: an AtomicU64 is 8-byte aligned and 8 bytes long; its two
        // 4-byte halves are valid, aligned AtomicU32 locations on x86-64
        // (little endian, mixed-size atomics are coherent there) and live as
        // long as the borrow of `w`.
        let p = unsafe { (w.as_ptr() as *mut u32).add((off & 7) / 4) };
        // SAFETY: see above; `p` is aligned and valid for the lifetime 'a.
        Ok(unsafe { AtomicU32::from_ptr(p) })
    }

    /// Reads the u32 at byte offset `off`.
    pub fn u32_at(&self, off: usize) -> Result<u32, TableError> {
        Ok(self.half(off)?.load(Ordering::Acquire))
    }

    /// Writes the u32 at byte offset `off`.
    pub fn set_u32(&self, off: usize, v: u32) -> Result<(), TableError> {
        self.half(off)?.store(v, Ordering::Release);
        Ok(())
    }

    /// ORs bits into the u32 at `off`, returning the old value.
    pub fn or_u32(&self, off: usize, v: u32) -> Result<u32, TableError> {
        Ok(self.half(off)?.fetch_or(v, Ordering::AcqRel))
    }

    /// Clears bits of the u32 at `off`.
    pub fn clear_u32(&self, off: usize, v: u32) -> Result<u32, TableError> {
        Ok(self.half(off)?.fetch_and(!v, Ordering::AcqRel))
    }

    /// Writes a fresh header (before the BPF programs are attached).
    pub fn init_header(&self, agent_tgid: u32, frames: &[u64]) -> Result<(), TableError> {
        if frames.len() > hdr::MAX_FRAMES {
            return Err(TableError::TooManyPages);
        }
        self.set_u64(hdr::MAGIC, u64::from_le_bytes(MAGIC))?;
        for (off, v) in Header::new(agent_tgid, frames.len() as u32).words() {
            self.set_u32(off, v)?;
        }
        for (i, f) in frames.iter().enumerate() {
            self.set_u64(hdr::FRAMES + 8 * i, *f)?;
        }
        // Group 0: its own root, tainted for good.
        self.set_u32(Self::group_off(0)?, F_TAINTED)?;
        Ok(())
    }

    /// Checks magic and version.
    pub fn check_header(&self) -> Result<(), TableError> {
        if self.u64_at(hdr::MAGIC)? != u64::from_le_bytes(MAGIC)
            || self.u32_at(hdr::VERSION)? != VERSION
        {
            return Err(TableError::BadHeader);
        }
        Ok(())
    }

    /// Byte offset of group `g`'s word.
    pub fn group_off(g: u32) -> Result<usize, TableError> {
        layout::group_offset(g).ok_or(TableError::BadOffset)
    }

    /// Byte offset of pid `pid`'s entry.
    pub fn task_off(pid: u32) -> Result<usize, TableError> {
        layout::task_offset(pid).ok_or(TableError::BadOffset)
    }

    /// Root of group `g`, or `None` when the walk exceeds `MAX_FIND`.
    pub fn find(&self, mut g: u32) -> Result<Option<u32>, TableError> {
        for _ in 0..MAX_FIND {
            let p = self.u32_at(Self::group_off(g)?)? & PARENT_MASK;
            if p == g {
                return Ok(Some(g));
            }
            g = p;
        }
        Ok(None)
    }

    /// Group of `pid` (with `tgid`), if recorded.
    pub fn task_group(&self, pid: u32, tgid: u32) -> Result<Option<u32>, TableError> {
        let e = self.u64_at(Self::task_off(pid)?)?;
        Ok(layout::task_entry_group(e, tgid))
    }

    /// State of `pid`: `None` when it has no entry (readers treat that as tainted).
    pub fn task_state(&self, pid: u32, tgid: u32) -> Result<Option<TaskState>, TableError> {
        let Some(group) = self.task_group(pid, tgid)? else {
            return Ok(None);
        };
        let (root, flags) = match self.find(group)? {
            Some(r) => (r, self.u32_at(Self::group_off(r)?)? & !PARENT_MASK),
            None => (0, F_TAINTED),
        };
        Ok(Some(TaskState { group, root, flags }))
    }

    /// Group of the process `tgid` (its leader's entry), creating one the
    /// same way the BPF program does for tasks it has not seen yet.
    pub fn ensure_process_group(&self, tgid: u32) -> Result<u32, TableError> {
        let off = Self::task_off(tgid)?;
        let w = self.word(off)?;
        for _ in 0..4 {
            let e = w.load(Ordering::Acquire);
            if let Some(g) = layout::task_entry_group(e, tgid) {
                return Ok(g);
            }
            let g = self.alloc_group()?;
            let new = layout::task_entry(g, tgid);
            if w.compare_exchange(e, new, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                return Ok(g);
            }
        }
        Ok(0)
    }

    fn alloc_group(&self) -> Result<u32, TableError> {
        let id = self.half(hdr::NEXT_GROUP)?.fetch_add(1, Ordering::AcqRel);
        if id == 0 || id >= GROUP_SLOTS {
            self.or_u32(hdr::FLAGS, G_GROUPS_EXHAUSTED)?;
            return Ok(0);
        }
        self.set_u32(Self::group_off(id)?, id)?;
        Ok(id)
    }

    /// Sets flag bits on `g`'s root (retrying when the root moves), like the
    /// BPF program's `set_flags`.
    pub fn set_flags(&self, g: u32, bits: u32) -> Result<(), TableError> {
        for _ in 0..4 {
            let r = self.find(g)?.unwrap_or(0);
            let off = Self::group_off(r)?;
            let old = self.or_u32(off, bits)?;
            if old & F_FROZEN != 0 && bits & F_TAINTED != 0 {
                self.or_u32(off, F_THAW_REQ)?;
            }
            if self.u32_at(off)? & PARENT_MASK == r {
                return Ok(());
            }
        }
        Ok(())
    }

    /// Merges the groups of `a` and `b` (same rules as the BPF program).
    pub fn merge(&self, a: u32, b: u32) -> Result<(), TableError> {
        for _ in 0..4 {
            let (Some(ra), Some(rb)) = (self.find(a)?, self.find(b)?) else {
                break;
            };
            if ra == rb {
                return Ok(());
            }
            let (ra, rb) = (ra.min(rb), ra.max(rb));
            let h = self.half(Self::group_off(rb)?)?;
            let wb = h.load(Ordering::Acquire);
            if wb & PARENT_MASK != rb {
                continue;
            }
            if h.compare_exchange(
                wb,
                (wb & !PARENT_MASK) | ra,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_err()
            {
                continue;
            }
            let fb = h.load(Ordering::Acquire) & !PARENT_MASK;
            let fa = self.u32_at(Self::group_off(ra)?)? & !PARENT_MASK;
            let mut bits = fb & (F_TAINTED | F_SHARED_MEM | F_THAW_REQ);
            if (fa | fb) & F_FROZEN != 0 {
                bits |= F_TAINTED | F_THAW_REQ;
            }
            if bits != 0 {
                self.set_flags(ra, bits)?;
            }
            return Ok(());
        }
        self.set_flags(a, F_TAINTED)?;
        self.set_flags(b, F_TAINTED)
    }

    /// Copies page `i` of the table into `out`.
    pub fn read_page(&self, i: u32, out: &mut [u8; PAGE_SIZE]) -> Result<(), TableError> {
        let base = i as usize * PAGE_SIZE;
        for (k, chunk) in out.chunks_exact_mut(8).enumerate() {
            chunk.copy_from_slice(&self.u64_at(base + 8 * k)?.to_le_bytes());
        }
        Ok(())
    }
}

/// FNV-1a (64-bit) of a page: the guest and the host compare table pages
/// by this digest.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn buf() -> Vec<AtomicU64> {
        (0..TABLE_BYTES / 8).map(|_| AtomicU64::new(0)).collect()
    }

    #[test]
    fn merge_and_taint_reach_the_root() {
        let b = buf();
        let t = Table::new(&b).unwrap();
        t.init_header(7, &[1, 2, 3]).unwrap();
        t.check_header().unwrap();
        let a = t.ensure_process_group(100).unwrap();
        let c = t.ensure_process_group(200).unwrap();
        let d = t.ensure_process_group(300).unwrap();
        assert_ne!(a, c);
        assert_eq!(t.ensure_process_group(100).unwrap(), a);
        t.merge(a, c).unwrap();
        assert!(!t.task_state(200, 200).unwrap().unwrap().tainted());
        t.set_flags(c, F_TAINTED).unwrap();
        assert!(t.task_state(100, 100).unwrap().unwrap().tainted());
        assert!(t.task_state(200, 200).unwrap().unwrap().tainted());
        assert!(!t.task_state(300, 300).unwrap().unwrap().tainted());
        assert_eq!(t.task_state(300, 301).unwrap(), None);
        let _ = d;
    }

    #[test]
    fn merging_into_a_frozen_group_requests_a_thaw() {
        let b = buf();
        let t = Table::new(&b).unwrap();
        t.init_header(7, &[]).unwrap();
        let a = t.ensure_process_group(10).unwrap();
        let c = t.ensure_process_group(11).unwrap();
        t.set_flags(a, F_FROZEN).unwrap();
        t.merge(c, a).unwrap();
        let s = t.task_state(10, 10).unwrap().unwrap();
        assert!(s.tainted());
        assert!(s.flags & F_THAW_REQ != 0);
    }

    #[test]
    fn cycles_and_bad_offsets_are_errors_not_panics() {
        let b = buf();
        let t = Table::new(&b).unwrap();
        t.set_u32(Table::group_off(5).unwrap(), 6).unwrap();
        t.set_u32(Table::group_off(6).unwrap(), 5).unwrap();
        assert_eq!(t.find(5).unwrap(), None);
        assert_eq!(t.u32_at(TABLE_BYTES), Err(TableError::BadOffset));
        assert_eq!(t.u32_at(3), Err(TableError::BadOffset));
        assert!(Table::group_off(GROUP_SLOTS).is_err());
        assert!(Table::new(&b[..10]).is_err());
    }
}
