//! The guest agent's taint table, read from outside (layout in
//! guest-lsm/README.md, "Taint table"): a header page listing the guest
//! frame of every table page, one entry per pid, one union-find word per
//! dependency group. The guest updates it concurrently; every field is
//! checked, every walk bounded, and anything doubtful reads as tainted.

use alloc::vec::Vec;

use crate::mem::{read_u32, read_u64, PhysMem, PAGE_SIZE};

/// Header magic, the ASCII bytes "DMTAINT1".
pub const MAGIC: [u8; 8] = *b"DMTAINT1";
/// Layout version read here.
pub const VERSION: u32 = 1;
/// Group word: parent id bits.
pub const PARENT_MASK: u32 = 0x00ff_ffff;
/// Group flag: a member touched the outside world.
pub const F_TAINTED: u32 = 1 << 24;
/// Group flag: the agent froze the group.
pub const F_FROZEN: u32 = 1 << 26;
/// Group flag: an interaction reached a frozen group (it is being thawed).
pub const F_THAW_REQ: u32 = 1 << 27;
/// Task entry: valid bit in the high word.
pub const TASK_VALID: u32 = 0x8000_0000;
/// Most frames the header can list ((0xf00 - 0x40) / 8).
pub const MAX_PAGES: u32 = 472;
/// Bound on parent steps, whatever the header says.
pub const MAX_FIND_CAP: u32 = 64;

/// Header byte offsets.
pub mod hdr {
    /// Magic.
    pub const MAGIC: u64 = 0x000;
    /// u32 version.
    pub const VERSION: u64 = 0x008;
    /// u32 page size.
    pub const PAGE_SIZE: u64 = 0x00c;
    /// u32 pages.
    pub const NR_PAGES: u64 = 0x010;
    /// u32 profile page index.
    pub const PROFILE_PAGE: u64 = 0x014;
    /// u32 task page index.
    pub const TASK_PAGE: u64 = 0x018;
    /// u32 task slots.
    pub const TASK_SLOTS: u64 = 0x01c;
    /// u32 group page index.
    pub const GROUP_PAGE: u64 = 0x020;
    /// u32 group slots.
    pub const GROUP_SLOTS: u64 = 0x024;
    /// u32 agent tgid.
    pub const AGENT_TGID: u64 = 0x028;
    /// u32 state (1 = tracking).
    pub const STATE: u64 = 0x02c;
    /// u32 global flags.
    pub const FLAGS: u64 = 0x034;
    /// u32 max find steps.
    pub const MAX_FIND: u64 = 0x038;
    /// u64 frames, one per page.
    pub const FRAMES: u64 = 0x040;
}

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
    task_page: u32,
    task_slots: u32,
    group_page: u32,
    group_slots: u32,
    max_find: u32,
    /// The agent's tgid.
    pub agent_tgid: u32,
    /// Whether the agent is tracking (state 1); if not, all is tainted.
    pub tracking: bool,
    /// Global flags (for the log).
    pub flags: u32,
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
        let u32_at = |o: u64| -> u32 {
            let mut a = [0u8; 4];
            if let Some(s) = page.get(o as usize..o as usize + 4) {
                a.copy_from_slice(s);
            }
            u32::from_le_bytes(a)
        };
        if page.get(..8) != Some(&MAGIC[..]) {
            return Err(TaintError::BadMagic);
        }
        if u32_at(hdr::VERSION) != VERSION || u32_at(hdr::PAGE_SIZE) != PAGE_SIZE as u32 {
            return Err(TaintError::BadVersion);
        }
        let nr_pages = u32_at(hdr::NR_PAGES);
        let profile_page = u32_at(hdr::PROFILE_PAGE);
        let task_page = u32_at(hdr::TASK_PAGE);
        let task_slots = u32_at(hdr::TASK_SLOTS);
        let group_page = u32_at(hdr::GROUP_PAGE);
        let group_slots = u32_at(hdr::GROUP_SLOTS);
        let pages_for = |slots: u32, width: u64| (u64::from(slots) * width).div_ceil(PAGE_SIZE);
        let task_end = u64::from(task_page) + pages_for(task_slots, 8);
        let group_end = u64::from(group_page) + pages_for(group_slots, 4);
        let geometry_ok = (2..=MAX_PAGES).contains(&nr_pages)
            && profile_page >= 1
            && profile_page < nr_pages
            && task_page >= 1
            && task_end <= u64::from(nr_pages)
            && group_page >= 1
            && group_end <= u64::from(nr_pages)
            && group_slots <= PARENT_MASK + 1
            && (task_end <= u64::from(group_page) || group_end <= u64::from(task_page))
            && (u64::from(profile_page) < u64::from(task_page).min(u64::from(group_page))
                || u64::from(profile_page) >= task_end.max(group_end));
        if !geometry_ok {
            return Err(TaintError::BadGeometry);
        }
        let mut frames = Vec::with_capacity(nr_pages as usize);
        for i in 0..u64::from(nr_pages) {
            let o = (hdr::FRAMES + 8 * i) as usize;
            let mut a = [0u8; 8];
            if let Some(s) = page.get(o..o + 8) {
                a.copy_from_slice(s);
            }
            let f = u64::from_le_bytes(a);
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
            profile_page,
            task_page,
            task_slots,
            group_page,
            group_slots,
            max_find: u32_at(hdr::MAX_FIND).min(MAX_FIND_CAP),
            agent_tgid: u32_at(hdr::AGENT_TGID),
            tracking: u32_at(hdr::STATE) == 1,
            flags: u32_at(hdr::FLAGS),
        })
    }

    /// Guest frame of the kernel profile page.
    pub fn profile_gfn(&self) -> Option<u64> {
        self.frames.get(self.profile_page as usize).copied()
    }

    /// Guest-physical address of byte `off` of the array starting at page
    /// `first`.
    fn addr(&self, first: u32, off: u64) -> Option<u64> {
        let page = u64::from(first) + off / PAGE_SIZE;
        let f = self.frames.get(usize::try_from(page).ok()?)?;
        Some(f * PAGE_SIZE + off % PAGE_SIZE)
    }

    /// The state of the task with thread id `pid` in thread group `tgid`.
    pub fn task_state<M: PhysMem + ?Sized>(&self, mem: &M, pid: i32, tgid: i32) -> TaskState {
        if !self.tracking || pid <= 0 || tgid <= 0 {
            return TaskState::Tainted;
        }
        let (pid, tgid) = (pid as u32, tgid as u32);
        if pid >= self.task_slots {
            return TaskState::Tainted;
        }
        let Some(at) = self.addr(self.task_page, 8 * u64::from(pid)) else {
            return TaskState::Tainted;
        };
        let Ok(entry) = read_u64(mem, at) else {
            return TaskState::Tainted;
        };
        let hi = (entry >> 32) as u32;
        if hi != TASK_VALID | tgid {
            return TaskState::Tainted;
        }
        let mut g = entry as u32;
        // Union-find: follow parents to the root, at most max_find steps.
        for _ in 0..=self.max_find {
            if g >= self.group_slots {
                return TaskState::Tainted;
            }
            let Some(at) = self.addr(self.group_page, 4 * u64::from(g)) else {
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
