//! The taint table's layout, the Rust side of guest-lsm/bpf/table.h (which
//! the BPF program includes; `tests/c_header.rs` holds the two together).
//!
//! The table is one value of a `BPF_F_MMAPABLE` array map. Page 0 is the
//! header (with the guest frame numbers of every table page), page 1 the
//! kernel profile, then one 8-byte entry per pid and one 4-byte word per
//! dependency group. All fields are little endian. The guest agent writes
//! the header ([`Header::new`], [`Header::words`]); a reader outside the
//! guest decodes it with [`Header::parse`], which checks every count and
//! index before any of them is used to find a page.

use crate::{le32, le64};

/// Size of one table page.
pub const PAGE_SIZE: usize = 4096;
/// Entries in the per-pid task array.
pub const TASK_SLOTS: u32 = 32768;
/// Words in the group array; group 0 is the permanently tainted overflow group.
pub const GROUP_SLOTS: u32 = 262_144;
/// Bytes of one task entry (see [`task_entry`]).
pub const TASK_ENTRY_BYTES: u32 = 8;
/// Bytes of one group word (parent id and flags).
pub const GROUP_WORD_BYTES: u32 = 4;
/// Page index of the kernel profile.
pub const PROFILE_PAGE: u32 = 1;
/// Page index of the first task entry.
pub const TASK_PAGE: u32 = 2;
/// Page index of the first group word.
pub const GROUP_PAGE: u32 = TASK_PAGE + TASK_SLOTS * TASK_ENTRY_BYTES / PAGE_SIZE as u32;
/// Pages in the whole table.
pub const NR_PAGES: u32 = GROUP_PAGE + GROUP_SLOTS * GROUP_WORD_BYTES / PAGE_SIZE as u32;
/// Bytes in the whole table (the map's value size).
pub const TABLE_BYTES: usize = NR_PAGES as usize * PAGE_SIZE;
/// Header magic, the ASCII bytes "DMTAINT1".
pub const MAGIC: [u8; 8] = *b"DMTAINT1";
/// Layout version.
pub const VERSION: u32 = 1;
/// Bound on union-find parent walks (readers outside the guest use it too).
pub const MAX_FIND: u32 = 32;
/// Bound on parent steps a reader takes, whatever the header says.
pub const MAX_FIND_CAP: u32 = 64;
/// Most pages a header can list ([`hdr::MAX_FRAMES`]).
pub const MAX_PAGES: u32 = hdr::MAX_FRAMES as u32;

// The table this layout defines fits the frame list of its own header.
const _: () = assert!(NR_PAGES <= MAX_PAGES);

/// Group word: low 24 bits are the parent id.
pub const PARENT_MASK: u32 = 0x00ff_ffff;
/// Group flag: a member touched something outside the guest.
pub const F_TAINTED: u32 = 1 << 24;
/// Group flag: a member has shared memory mappings (forked children join).
pub const F_SHARED_MEM: u32 = 1 << 25;
/// Group flag: the agent froze this group.
pub const F_FROZEN: u32 = 1 << 26;
/// Group flag: an interaction reached the frozen group; the agent must thaw it.
pub const F_THAW_REQ: u32 = 1 << 27;
/// Group flag: referred to by more than its founding task (never recycled).
pub const F_REF: u32 = 1 << 28;
/// Group flag: the id is on the free list (no valid entry refers to it).
pub const F_FREED: u32 = 1 << 29;
/// Task entry high word: valid bit, ORed with the tgid.
pub const TASK_VALID: u32 = 0x8000_0000;

/// Global flag: group ids ran out; new groups are the tainted group 0.
pub const G_GROUPS_EXHAUSTED: u32 = 1;
/// Global flag: the object map was full at least once (the toucher was tainted).
pub const G_OBJECTS_FULL: u32 = 2;
/// Global flag: a pid beyond `TASK_SLOTS` was seen (it has no entry: tainted).
pub const G_PID_OVERFLOW: u32 = 4;
/// Global flag: a union-find walk hit its bound (treated as tainted).
pub const G_FIND_BOUND: u32 = 8;

/// Header state: the agent has not started tracking (readers: all tainted).
pub const STATE_INITIALISING: u32 = 0;
/// Header state: the BPF programs are attached and the table is kept.
pub const STATE_TRACKING: u32 = 1;

/// Header byte offsets (page 0).
pub mod hdr {
    /// `[u8; 8]` magic.
    pub const MAGIC: usize = 0x000;
    /// u32 layout version.
    pub const VERSION: usize = 0x008;
    /// u32 page size.
    pub const PAGE_SIZE: usize = 0x00c;
    /// u32 number of pages (= number of frames listed).
    pub const NR_PAGES: usize = 0x010;
    /// u32 page index of the profile.
    pub const PROFILE_PAGE: usize = 0x014;
    /// u32 page index of the task array.
    pub const TASK_PAGE: usize = 0x018;
    /// u32 task slots.
    pub const TASK_SLOTS: usize = 0x01c;
    /// u32 page index of the group array.
    pub const GROUP_PAGE: usize = 0x020;
    /// u32 group slots.
    pub const GROUP_SLOTS: usize = 0x024;
    /// u32 tgid of the agent (its own actions are not tracked).
    pub const AGENT_TGID: usize = 0x028;
    /// u32 state: 0 initialising, 1 tracking.
    pub const STATE: usize = 0x02c;
    /// u32 next group id to hand out.
    pub const NEXT_GROUP: usize = 0x030;
    /// u32 global flags (`G_*`).
    pub const FLAGS: usize = 0x034;
    /// u32 bound on parent walks.
    pub const MAX_FIND: usize = 0x038;
    /// u64 frame numbers of the table pages, in page order.
    pub const FRAMES: usize = 0x040;
    /// Most frames the header holds.
    pub const MAX_FRAMES: usize = (PROBE_ADDR - FRAMES) / 8;
    /// `u64[8]`: kernel addresses the agent asks the BPF program to read.
    pub const PROBE_ADDR: usize = 0xf00;
    /// `u64[8]`: values read.
    pub const PROBE_VAL: usize = 0xf40;
    /// u32 probe request sequence number.
    pub const PROBE_SEQ: usize = 0xf80;
    /// u32 last probe sequence number served.
    pub const PROBE_DONE: usize = 0xf84;
    /// Number of probe slots.
    pub const PROBE_SLOTS: usize = 8;
}

/// The task entry saying that a task of thread group `tgid` is in `group`.
pub fn task_entry(group: u32, tgid: u32) -> u64 {
    (u64::from(TASK_VALID | tgid) << 32) | u64::from(group)
}

/// The group `entry` records for a task of thread group `tgid`: `None` when
/// the entry is empty or names another thread group (a recycled pid's stale
/// entry). Readers treat a task without a group as tainted.
pub fn task_entry_group(entry: u64, tgid: u32) -> Option<u32> {
    ((entry >> 32) as u32 == TASK_VALID | tgid).then_some(entry as u32)
}

/// Byte offset in a table of this layout of pid `pid`'s entry.
pub fn task_offset(pid: u32) -> Option<usize> {
    (pid < TASK_SLOTS)
        .then(|| TASK_PAGE as usize * PAGE_SIZE + TASK_ENTRY_BYTES as usize * pid as usize)
}

/// Byte offset in a table of this layout of group `g`'s word.
pub fn group_offset(g: u32) -> Option<usize> {
    (g < GROUP_SLOTS)
        .then(|| GROUP_PAGE as usize * PAGE_SIZE + GROUP_WORD_BYTES as usize * g as usize)
}

/// A header page that cannot be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderError {
    /// Fewer bytes than a table page.
    Truncated,
    /// The magic is not "DMTAINT1".
    BadMagic,
    /// The layout version or page size is not the one defined here.
    BadVersion,
    /// Page counts, indices or slot counts are inconsistent.
    BadGeometry,
}

/// The header's fields after its magic, version and page size (which are
/// fixed by this layout); the frame list follows them (see [`frame`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Pages in the table, and frames the header lists.
    pub nr_pages: u32,
    /// Page index of the kernel profile.
    pub profile_page: u32,
    /// Page index of the first task entry.
    pub task_page: u32,
    /// Entries in the task array.
    pub task_slots: u32,
    /// Page index of the first group word.
    pub group_page: u32,
    /// Words in the group array.
    pub group_slots: u32,
    /// The agent's tgid (its own actions are not tracked).
    pub agent_tgid: u32,
    /// [`STATE_INITIALISING`] or [`STATE_TRACKING`].
    pub state: u32,
    /// Next group id to hand out.
    pub next_group: u32,
    /// Global flags (`G_*`).
    pub flags: u32,
    /// Bound on parent walks; at most [`MAX_FIND_CAP`] once parsed.
    pub max_find: u32,
}

impl Header {
    /// The header the agent writes, before tracking starts, for a table
    /// of this layout whose first `nr_pages` pages it lists.
    pub fn new(agent_tgid: u32, nr_pages: u32) -> Self {
        Header {
            nr_pages,
            profile_page: PROFILE_PAGE,
            task_page: TASK_PAGE,
            task_slots: TASK_SLOTS,
            group_page: GROUP_PAGE,
            group_slots: GROUP_SLOTS,
            agent_tgid,
            state: STATE_INITIALISING,
            // Group 0 is the tainted overflow group, never handed out.
            next_group: 1,
            flags: 0,
            max_find: MAX_FIND,
        }
    }

    /// Every u32 field of the header with its byte offset, in layout
    /// order, version and page size included: what a writer stores (the
    /// magic at [`hdr::MAGIC`] and the frames at [`hdr::FRAMES`] aside).
    pub fn words(&self) -> [(usize, u32); 13] {
        [
            (hdr::VERSION, VERSION),
            (hdr::PAGE_SIZE, PAGE_SIZE as u32),
            (hdr::NR_PAGES, self.nr_pages),
            (hdr::PROFILE_PAGE, self.profile_page),
            (hdr::TASK_PAGE, self.task_page),
            (hdr::TASK_SLOTS, self.task_slots),
            (hdr::GROUP_PAGE, self.group_page),
            (hdr::GROUP_SLOTS, self.group_slots),
            (hdr::AGENT_TGID, self.agent_tgid),
            (hdr::STATE, self.state),
            (hdr::NEXT_GROUP, self.next_group),
            (hdr::FLAGS, self.flags),
            (hdr::MAX_FIND, self.max_find),
        ]
    }

    /// Decodes and checks a header page read from a guest: magic, version
    /// and page size, then the geometry (at least two and at most
    /// [`MAX_PAGES`] pages; the profile page, the task array and the group
    /// array inside the table and not overlapping; group ids within the
    /// parent mask). The walk bound is capped at [`MAX_FIND_CAP`].
    pub fn parse(page: &[u8]) -> Result<Self, HeaderError> {
        if page.len() < PAGE_SIZE {
            return Err(HeaderError::Truncated);
        }
        if page.get(hdr::MAGIC..hdr::MAGIC + 8) != Some(&MAGIC[..]) {
            return Err(HeaderError::BadMagic);
        }
        // Every header offset is below PAGE_SIZE - 4, so the fallback is
        // never taken; it keeps the read panic-free all the same.
        let u32_at = |o: usize| le32(page, o).unwrap_or(0);
        if u32_at(hdr::VERSION) != VERSION || u32_at(hdr::PAGE_SIZE) != PAGE_SIZE as u32 {
            return Err(HeaderError::BadVersion);
        }
        let h = Header {
            nr_pages: u32_at(hdr::NR_PAGES),
            profile_page: u32_at(hdr::PROFILE_PAGE),
            task_page: u32_at(hdr::TASK_PAGE),
            task_slots: u32_at(hdr::TASK_SLOTS),
            group_page: u32_at(hdr::GROUP_PAGE),
            group_slots: u32_at(hdr::GROUP_SLOTS),
            agent_tgid: u32_at(hdr::AGENT_TGID),
            state: u32_at(hdr::STATE),
            next_group: u32_at(hdr::NEXT_GROUP),
            flags: u32_at(hdr::FLAGS),
            max_find: u32_at(hdr::MAX_FIND).min(MAX_FIND_CAP),
        };
        if !h.geometry_ok() {
            return Err(HeaderError::BadGeometry);
        }
        Ok(h)
    }

    fn geometry_ok(&self) -> bool {
        let page = PAGE_SIZE as u64;
        let pages_for =
            |slots: u32, width: u32| (u64::from(slots) * u64::from(width)).div_ceil(page);
        let nr_pages = u64::from(self.nr_pages);
        let (profile_page, task_page, group_page) = (
            u64::from(self.profile_page),
            u64::from(self.task_page),
            u64::from(self.group_page),
        );
        let task_end = task_page + pages_for(self.task_slots, TASK_ENTRY_BYTES);
        let group_end = group_page + pages_for(self.group_slots, GROUP_WORD_BYTES);
        (2..=MAX_PAGES).contains(&self.nr_pages)
            && profile_page >= 1
            && profile_page < nr_pages
            && task_page >= 1
            && task_end <= nr_pages
            && group_page >= 1
            && group_end <= nr_pages
            && self.group_slots <= PARENT_MASK + 1
            && (task_end <= group_page || group_end <= task_page)
            && (profile_page < task_page.min(group_page) || profile_page >= task_end.max(group_end))
    }

    /// Whether the agent is tracking; if not, a reader takes every task as
    /// tainted.
    pub fn tracking(&self) -> bool {
        self.state == STATE_TRACKING
    }

    /// Byte offset in the table of pid `pid`'s entry, or `None` beyond the
    /// header's task slots.
    pub fn task_offset(&self, pid: u32) -> Option<u64> {
        (pid < self.task_slots).then(|| {
            u64::from(self.task_page) * PAGE_SIZE as u64
                + u64::from(TASK_ENTRY_BYTES) * u64::from(pid)
        })
    }

    /// Byte offset in the table of group `g`'s word, or `None` beyond the
    /// header's group slots.
    pub fn group_offset(&self, g: u32) -> Option<u64> {
        (g < self.group_slots).then(|| {
            u64::from(self.group_page) * PAGE_SIZE as u64
                + u64::from(GROUP_WORD_BYTES) * u64::from(g)
        })
    }
}

/// The guest frame of table page `i` as header page `page` lists it, or
/// `None` beyond the frames a header can hold (or a short page).
pub fn frame(page: &[u8], i: u32) -> Option<u64> {
    if i >= MAX_PAGES {
        return None;
    }
    le64(page, hdr::FRAMES + 8 * i as usize)
}
