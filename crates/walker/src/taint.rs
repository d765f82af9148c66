//! The guest agent's taint table, read from outside (layout in
//! guest-lsm/README.md, "Taint table"): a header page listing the guest
//! frame of every table page, one entry per pid, one union-find word per
//! dependency group. The guest updates it concurrently; every field is
//! checked, every walk bounded, and anything doubtful reads as tainted.

use alloc::vec::Vec;

use depmig_guest_abi::table::{self as layout, Header, HeaderError};

use crate::mem::{read_u32, read_u64, PhysMem, PAGE_SIZE};

// The layout's names the walker's users refer to (the tests' synthetic
// tables, the benchmark), where they have always been.
pub use depmig_guest_abi::table::{
    hdr, F_FROZEN, F_TAINTED, F_THAW_REQ, MAGIC, MAX_FIND_CAP, MAX_PAGES, PARENT_MASK, TASK_VALID,
    VERSION,
};

/// A taint table that cannot be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaintError {
    /// The header frame could not be read.
    Unreadable,
    /// The magic is not "DMTAINT1".
    BadMagic,
    /// The layout version or page size is not the one read here.
    BadVersion,
    /// Page counts, indices or slot counts are inconsistent.
    BadGeometry,
    /// A listed frame is outside guest RAM, or page 0 is not the header.
    BadFrame,
}

/// What the table says about one task.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskState {
    /// Tainted, or no trustworthy entry.
    Tainted,
    /// Untainted; `frozen` when its group is frozen by the agent.
    Untainted {
        /// Root group id.
        group: u32,
        /// The group is frozen for the migration.
        frozen: bool,
    },
}

/// A checked view of the taint table's header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaintTable {
    /// Guest frame of every table page, page 0 first.
    pub frames: Vec<u64>,
    /// Page index of the kernel profile.
    pub profile_page: u32,
    /// The checked header (where the arrays are, the walk bound).
    header: Header,
    /// The agent's tgid.
    pub agent_tgid: u32,
    /// Whether the agent is tracking (state 1); if not, all is tainted.
    pub tracking: bool,
    /// Global flags (for the log).
    pub flags: u32,
}

impl From<HeaderError> for TaintError {
    fn from(e: HeaderError) -> Self {
        match e {
            // (a whole page is always read, so this cannot happen)
            HeaderError::Truncated => TaintError::Unreadable,
            HeaderError::BadMagic => TaintError::BadMagic,
            HeaderError::BadVersion => TaintError::BadVersion,
            HeaderError::BadGeometry => TaintError::BadGeometry,
        }
    }
}

impl TaintTable {
    /// Reads and checks the header at guest frame `gfn`.
    pub fn read<M: PhysMem + ?Sized>(mem: &M, gfn: u64) -> Result<Self, TaintError> {
        let base = gfn
            .checked_mul(PAGE_SIZE)
            .filter(|_| gfn < mem.nr_pfns())
            .ok_or(TaintError::BadFrame)?;
        let mut page = alloc::vec![0u8; PAGE_SIZE as usize];
        mem.read(base, &mut page)
            .map_err(|_| TaintError::Unreadable)?;
        let header = Header::parse(&page)?;
        let mut frames = Vec::with_capacity(header.nr_pages as usize);
        for i in 0..header.nr_pages {
            // (always listed: a parsed header has at most MAX_PAGES pages)
            let f = layout::frame(&page, i).ok_or(TaintError::BadFrame)?;
            if f >= mem.nr_pfns() {
                return Err(TaintError::BadFrame);
            }
            frames.push(f);
        }
        if frames.first() != Some(&gfn) {
            return Err(TaintError::BadFrame);
        }
        Ok(TaintTable {
            frames,
            profile_page: header.profile_page,
            agent_tgid: header.agent_tgid,
            tracking: header.tracking(),
            flags: header.flags,
            header,
        })
    }

    /// Guest frame of the kernel profile page.
    pub fn profile_gfn(&self) -> Option<u64> {
        self.frames.get(self.profile_page as usize).copied()
    }

    /// Guest-physical address of byte `off` of the table.
    fn addr(&self, off: u64) -> Option<u64> {
        let f = self.frames.get(usize::try_from(off / PAGE_SIZE).ok()?)?;
        Some(f * PAGE_SIZE + off % PAGE_SIZE)
    }

    /// The state of the task with thread id `pid` in thread group `tgid`.
    pub fn task_state<M: PhysMem + ?Sized>(&self, mem: &M, pid: i32, tgid: i32) -> TaskState {
        if !self.tracking || pid <= 0 || tgid <= 0 {
            return TaskState::Tainted;
        }
        let (pid, tgid) = (pid as u32, tgid as u32);
        let Some(at) = self.header.task_offset(pid).and_then(|o| self.addr(o)) else {
            return TaskState::Tainted;
        };
        let Ok(entry) = read_u64(mem, at) else {
            return TaskState::Tainted;
        };
        let Some(mut g) = layout::task_entry_group(entry, tgid) else {
            return TaskState::Tainted;
        };
        // Union-find: follow parents to the root, at most max_find steps.
        for _ in 0..=self.header.max_find {
            let Some(at) = self.header.group_offset(g).and_then(|o| self.addr(o)) else {
                return TaskState::Tainted;
            };
            let Ok(word) = read_u32(mem, at) else {
                return TaskState::Tainted;
            };
            let parent = word & PARENT_MASK;
            if parent == g {
                if g == 0 || word & (F_TAINTED | F_THAW_REQ) != 0 {
                    return TaskState::Tainted;
                }
                return TaskState::Untainted {
                    group: g,
                    frozen: word & F_FROZEN != 0,
                };
            }
            g = parent;
        }
        TaskState::Tainted
    }
}
