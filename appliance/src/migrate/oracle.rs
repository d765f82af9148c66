//! The dependency oracle on real hypercalls: the guest's physical memory
//! through a small foreign-mapping window of its own ([`GuestPhys`], apart
//! from the streaming window), the guest agent's publication in the
//! guest's xenstore home ([`Publication`]), and the agent's freezer
//! through `data/depmig/request` and `status` ([`AgentControl`]).
//! [`AgentOracle`] puts them behind the walker's `LinuxOracle`.
//!
//! The walker reads many small pieces (list nodes, page-table entries,
//! page descriptors). Each foreign map and unmap is a hypercall, and under
//! nested emulation a costly one, so pages are copied into a small LRU
//! cache on the first read (the walker's host-tested `CachedMem`, which
//! also reads ahead when the walk goes through memory in order) and the
//! mapping is dropped at once. The cache
//! is emptied before every question the engine asks (the guest runs on
//! between rounds), so one walk reads one snapshot per page.
//!
//! Everything the guest wrote is hostile: a frame Xen refuses is a read
//! error, never a panic, and every loop and wait is bounded.

use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use core::cell::RefCell;

use depmig_migrate::{CensusCounts, DependencyOracle, DirtyBitmap, PortError};
use depmig_walker::agent::{self, Answer};
use depmig_walker::cache::Page;
use depmig_walker::{
    CacheStats, CachedMem, FrameSource, GroupControl, Kernel, KernelProfile, LinuxOracle, PhysMem,
    TaintTable,
};
use xen_abi::DomId;

use crate::platform::xen::foreign::{Access, ForeignError, ForeignWindow, MapStats};
use crate::platform::xen::xenstore::{Xenstore, XsClientError};
use crate::platform::xen::Xen;

const PAGE: usize = 4096;
/// Pages of the oracle's own mapping window: the most frames one read-ahead
/// maps in one hypercall.
pub const WINDOW_PAGES: usize = 16;
/// Pages the cache keeps (512 KiB of heap).
pub const CACHE_PAGES: usize = 128;
/// How long the agent may take to answer a freeze or thaw request.
pub const AGENT_TIMEOUT_NS: u64 = 20_000_000_000;
/// Period of the status checks while waiting for the agent (a watch on the
/// status node wakes us earlier).
const AGENT_POLL_NS: u64 = 250_000_000;

/// The guest's frames through the oracle's own small mapping window: one
/// `XENMEM_add_to_physmap_batch` per batch, copied out and unmapped at once
/// (the window is reused by the next batch).
pub struct WindowSource {
    dom: DomId,
    win: ForeignWindow,
}

impl FrameSource for WindowSource {
    type Error = ForeignError;

    fn fetch(
        &mut self,
        gfns: &[u64],
        pages: &mut [Box<Page>],
        results: &mut [Result<(), ForeignError>],
    ) -> Result<(), ForeignError> {
        // Dropping the batch at the end of this call unmaps every frame.
        let batch = self.win.map(self.dom, gfns, Access::Read)?;
        for (i, (page, r)) in pages.iter_mut().zip(results.iter_mut()).enumerate() {
            *r = batch.entry(i).and_then(|()| batch.copy_page(i, page));
        }
        Ok(())
    }
}

/// The guest's physical memory for the walker: [`CACHE_PAGES`] page copies
/// in front of a [`WINDOW_PAGES`]-page window.
pub type GuestPhys = CachedMem<WindowSource>;

/// Reads domain `dom`, whose physical address space has `nr_pfns` frames
/// (the same bound as the migration's bitmaps).
pub fn guest_phys(xen: &'static Xen, dom: DomId, nr_pfns: u64) -> Result<GuestPhys, ForeignError> {
    let win = ForeignWindow::new(xen, WINDOW_PAGES)?;
    Ok(CachedMem::new(
        WindowSource { dom, win },
        nr_pfns,
        CACHE_PAGES,
        WINDOW_PAGES,
    ))
}

/// The window's own counters (map calls, frames, time).
fn window_stats(mem: &GuestPhys) -> MapStats {
    mem.with_source(|s| s.win.stats()).unwrap_or_default()
}

/// What the agent published is missing or unusable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PublicationError {
    /// This key is absent: the agent is not running or not publishing.
    Missing(&'static str),
    /// This key could not be read (permissions, xenstore failure).
    Unreadable(&'static str, XsClientError),
    /// This key's value is malformed or out of range.
    Malformed(&'static str),
    /// `version` is not the layout read here (1).
    WrongVersion,
    /// `state` is not `tracking`.
    NotTracking,
    /// The taint table header at `table-gfn` is unusable.
    Table(depmig_walker::TaintError),
    /// The table's profile page is not the published `profile-gfn`.
    ProfileMismatch,
    /// The kernel profile is unusable, or init_task is not where it says.
    Kernel(depmig_walker::WalkError),
}

/// Where the agent's taint table and kernel profile live.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Publication {
    /// Frame of the table's header page.
    pub table_gfn: u64,
    /// Frame of the kernel profile page.
    pub profile_gfn: u64,
}

/// The guest's agent directory, absolute.
pub fn agent_dir(guest: DomId) -> String {
    format!("/local/domain/{guest}/data/depmig")
}

fn read_key(xs: &mut Xenstore, dir: &str, key: &'static str) -> Result<String, PublicationError> {
    match xs.read(&format!("{dir}/{key}")) {
        Ok(v) => {
            let s = core::str::from_utf8(&v).map_err(|_| PublicationError::Malformed(key))?;
            Ok(String::from(agent::trim(s)))
        }
        Err(XsClientError::Wire(xenstore_wire::WireError::Xs(xenstore_wire::XsError::NoEnt))) => {
            Err(PublicationError::Missing(key))
        }
        Err(e) => Err(PublicationError::Unreadable(key, e)),
    }
}

/// A published frame number, checked to lie inside the guest.
fn parse_gfn(s: &str, nr_pfns: u64, key: &'static str) -> Result<u64, PublicationError> {
    agent::parse_gfn(s, nr_pfns).ok_or(PublicationError::Malformed(key))
}

impl Publication {
    /// Reads the agent's keys from the guest's home and checks them against
    /// the guest's memory: the table header, the profile page it names,
    /// and the kernel the profile describes (init_task is `swapper/0`).
    pub fn read(
        xs: &mut Xenstore,
        guest: DomId,
        mem: &GuestPhys,
    ) -> Result<Self, PublicationError> {
        let dir = agent_dir(guest);
        if read_key(xs, &dir, "version")? != "1" {
            return Err(PublicationError::WrongVersion);
        }
        if read_key(xs, &dir, "state")? != "tracking" {
            return Err(PublicationError::NotTracking);
        }
        let nr = mem.nr_pfns();
        let table_gfn = parse_gfn(&read_key(xs, &dir, "table-gfn")?, nr, "table-gfn")?;
        let profile_gfn = parse_gfn(&read_key(xs, &dir, "profile-gfn")?, nr, "profile-gfn")?;
        let table = TaintTable::read(mem, table_gfn).map_err(PublicationError::Table)?;
        if table.profile_gfn() != Some(profile_gfn) {
            return Err(PublicationError::ProfileMismatch);
        }
        let mut page = alloc::vec![0u8; PAGE];
        mem.read(profile_gfn * PAGE as u64, &mut page)
            .map_err(|e| {
                PublicationError::Kernel(depmig_walker::WalkError::Mem(
                    e,
                    profile_gfn * PAGE as u64,
                ))
            })?;
        let profile = KernelProfile::parse(&page)
            .map_err(|e| PublicationError::Kernel(depmig_walker::WalkError::Profile(e)))?;
        Kernel::new(mem, &profile).map_err(PublicationError::Kernel)?;
        Ok(Publication {
            table_gfn,
            profile_gfn,
        })
    }
}

/// The agent's freezer, through the guest's `data/depmig/request` (which
/// dom0 lets us write) and `status` (which it lets us read).
pub struct AgentControl<'x> {
    xen: &'static Xen,
    xs: &'x RefCell<Xenstore>,
    dir: String,
    /// Number of the next request.
    next: u32,
    timeout_ns: u64,
    /// Requests answered, for the log.
    pub answered: u32,
}

/// The watch token of the status node.
const TOKEN: &str = "depmig-agent-status";

impl<'x> AgentControl<'x> {
    /// Talks to guest `guest`'s agent; sequence numbers continue after
    /// the last request found there.
    pub fn new(xen: &'static Xen, xs: &'x RefCell<Xenstore>, guest: DomId) -> Self {
        let dir = agent_dir(guest);
        let last = xs
            .try_borrow_mut()
            .ok()
            .and_then(|mut x| x.read_string(&format!("{dir}/request")).ok());
        // Without an earlier request, start somewhere no earlier controller
        // of this guest is likely to have used (the agent acts on any seq
        // different from the last one it served).
        let fresh = ((xen.now_ns() / 1_000_000) % 1_000_000_000) as u32 + 1000;
        let next = agent::next_seq(last.as_deref(), fresh);
        AgentControl {
            xen,
            xs,
            dir,
            next,
            timeout_ns: AGENT_TIMEOUT_NS,
            answered: 0,
        }
    }

    /// Sends `<seq> cmd` and waits for `<seq> …` in `status`; returns the
    /// agent's answer.
    fn request(&mut self, cmd: &str) -> Result<Answer, PortError> {
        let mut xs = self.xs.try_borrow_mut().map_err(|_| PortError::Busy)?;
        let status_path = format!("{}/status", self.dir);
        let mut seq = self.next;
        // A stale status with our number would read as an answer: skip it.
        if let Ok(s) = xs.read_string(&status_path) {
            if agent::seq_of(&s) == Some(seq) {
                seq = seq.wrapping_add(1);
            }
        }
        self.next = seq.wrapping_add(1);
        let watching = xs.watch(&status_path, TOKEN).is_ok();
        let line = format!("{seq} {cmd}");
        if let Err(e) = xs.write(&format!("{}/request", self.dir), line.as_bytes()) {
            log::error!("migrate: writing {}/request: {e:?}", self.dir);
            if watching {
                let _ = xs.unwatch(&status_path, TOKEN);
            }
            return Err(PortError::AgentWrite);
        }
        log::info!("migrate: asked the guest agent `{line}`");
        let t0 = self.xen.now_ns();
        let deadline = t0.saturating_add(self.timeout_ns);
        let answer = loop {
            if let Ok(s) = xs.read_string(&status_path) {
                if let Some(a) = agent::answer_to(&s, seq) {
                    break Some((a, s));
                }
            }
            let now = self.xen.now_ns();
            if now >= deadline {
                break None;
            }
            // A watch event (or the period) brings us back to read again;
            // a timeout here is just the period. Any other failure must not
            // turn this into a busy loop: sleep the period out.
            let until = now.saturating_add(AGENT_POLL_NS).min(deadline);
            match xs.next_event(until) {
                Ok(_) | Err(XsClientError::Timeout) => {}
                Err(_) => {
                    let _ = self.xen.wait(&[], until);
                }
            }
        };
        if watching {
            let _ = xs.unwatch(&status_path, TOKEN);
        }
        match answer {
            Some((a, text)) => {
                self.answered += 1;
                log::info!(
                    "migrate: the guest agent answered `{}` after {} ms",
                    agent::trim(&text),
                    self.xen.now_ns().saturating_sub(t0) / 1_000_000
                );
                Ok(a)
            }
            None => {
                log::error!(
                    "migrate: the guest agent did not answer `{line}` within {} s",
                    self.timeout_ns / 1_000_000_000
                );
                Err(PortError::AgentSilent)
            }
        }
    }
}

impl GroupControl for AgentControl<'_> {
    fn freeze(&mut self) -> Result<u32, PortError> {
        match self.request("freeze")? {
            Answer::Frozen { groups, procs } => {
                log::info!("migrate: the guest agent froze {groups} group(s), {procs} process(es)");
                Ok(groups)
            }
            Answer::Error => Err(PortError::AgentRefused),
            _ => Err(PortError::AgentMalformed),
        }
    }

    fn thaw_all(&mut self) -> Result<(), PortError> {
        match self.request("thaw")? {
            Answer::Thawed(n) => {
                log::info!("migrate: the guest agent thawed {n} group(s)");
                Ok(())
            }
            Answer::Error => Err(PortError::AgentRefused),
            _ => Err(PortError::AgentMalformed),
        }
    }
}

/// The engine's oracle over a Linux guest: the walker's [`LinuxOracle`]
/// over [`GuestPhys`], with the page cache emptied before every question
/// and each walk's cost and fallback logged.
pub struct AgentOracle<'m, 'x> {
    xen: &'static Xen,
    mem: &'m GuestPhys,
    inner: LinuxOracle<&'m GuestPhys, AgentControl<'x>>,
    walks: u32,
    seen_error: Option<depmig_walker::WalkError>,
}

impl<'m, 'x> AgentOracle<'m, 'x> {
    /// The oracle for the guest whose publication `publication` was read
    /// and checked from `mem`.
    pub fn new(
        xen: &'static Xen,
        mem: &'m GuestPhys,
        control: AgentControl<'x>,
        publication: &Publication,
    ) -> Self {
        AgentOracle {
            xen,
            mem,
            inner: LinuxOracle::new(mem, control, publication.table_gfn),
            walks: 0,
            seen_error: None,
        }
    }

    /// Classifies the guest once now and logs what it found (tasks,
    /// address spaces, untainted frames) and what it cost.
    pub fn survey(&mut self) {
        self.mem.flush();
        let before = self.mem.stats();
        let t0 = self.xen.now_ns();
        let r = self.inner.classify_now();
        let ms = self.xen.now_ns().saturating_sub(t0) / 1_000_000;
        let after = self.mem.stats();
        match r {
            Ok(c) => log::info!(
                "migrate: guest survey: {} tasks ({} kernel threads), {} address spaces ({} failed), {} untainted and {} frozen frames; {} ms, {} maps",
                c.stats.tasks,
                c.stats.kernel_threads,
                c.stats.mms,
                c.stats.failed_mms,
                c.untainted.count(),
                c.frozen.count(),
                ms,
                after.fetches - before.fetches
            ),
            Err(e) => log::warn!(
                "migrate: guest survey failed ({e:?}) after {ms} ms; every frame counts as tainted"
            ),
        }
    }

    /// Walks and maps so far, for the final log line.
    pub fn summary(&self) -> String {
        let (s, w) = (self.mem.stats(), window_stats(self.mem));
        format!(
            "{} walks; {} reads, {} hits, {} misses, {} map calls ({} failed), {} frames copied, {} refused; map {} ms, unmap {} ms; last walk error {:?}, last read error {:?}",
            self.walks,
            s.reads,
            s.hits,
            s.misses,
            s.fetches,
            s.failed_fetches,
            s.frames,
            s.refused,
            w.map_ns / 1_000_000,
            w.unmap_ns / 1_000_000,
            self.inner.last_error(),
            self.mem.last_error()
        )
    }

    /// Logs a walk's cost and, when its error differs from the last one
    /// seen, why it fell back to the safe answer (the walker keeps only the
    /// latest error).
    fn after_walk(&mut self, what: &str, before: CacheStats, t0: u64, marked: u64) {
        self.walks += 1;
        let s = self.mem.stats();
        let ms = self.xen.now_ns().saturating_sub(t0) / 1_000_000;
        log::info!(
            "migrate: oracle walk {} ({what}): {marked} frames marked; {} ms, {} maps, {} frames copied, {} refused",
            self.walks,
            ms,
            s.fetches - before.fetches,
            s.frames - before.frames,
            s.refused - before.refused
        );
        let e = self.inner.last_error();
        if e.is_some() && e != self.seen_error {
            log::warn!(
                "migrate: oracle walk {} failed ({e:?}, last read error {:?}): this and later failing walks answer all tainted / none free",
                self.walks,
                self.mem.last_error()
            );
        }
        self.seen_error = e;
    }
}

impl DependencyOracle for AgentOracle<'_, '_> {
    fn freeze_quiet_groups(&mut self) -> Result<u32, PortError> {
        self.inner.freeze_quiet_groups()
    }

    fn thaw_all(&mut self) -> Result<(), PortError> {
        self.inner.thaw_all()
    }

    fn tainted_frames(&mut self, out: &mut DirtyBitmap) -> Result<(), PortError> {
        self.mem.flush();
        let (before, t0) = (self.mem.stats(), self.xen.now_ns());
        let r = self.inner.tainted_frames(out);
        let untainted = self.mem.nr_pfns().saturating_sub(out.count());
        self.after_walk("untainted", before, t0, untainted);
        r
    }

    fn census(
        &mut self,
        round: u32,
        frames: &DirtyBitmap,
    ) -> Result<Option<CensusCounts>, PortError> {
        self.mem.flush();
        let (before, t0) = (self.mem.stats(), self.xen.now_ns());
        let r = self.inner.census(round, frames);
        let ms = self.xen.now_ns().saturating_sub(t0) / 1_000_000;
        let maps = self.mem.stats().fetches - before.fetches;
        match self.inner.last_census() {
            Some((_, Ok(c))) => {
                let mut owners = String::new();
                for o in c.owners.iter().take(8) {
                    let n = o.comm.iter().position(|&b| b == 0).unwrap_or(o.comm.len());
                    let comm = String::from_utf8_lossy(o.comm.get(..n).unwrap_or(&[]));
                    owners.push_str(&format!(" {comm}[{}]={}", o.tgid, o.frames));
                }
                log::info!(
                    "migrate: census of round {round}'s {} dirty tainted frames: user {} (by process:{owners}), user page tables {}, kernel flagged {}, kernel typed {}, plain {}, buddy heads {}, unreadable {}; {ms} ms, {maps} maps",
                    c.asked,
                    c.user,
                    c.page_tables,
                    c.flagged,
                    c.typed,
                    c.plain,
                    c.buddy,
                    c.unreadable
                );
            }
            Some((_, Err(e))) => {
                log::warn!("migrate: census of round {round} failed ({e:?}) after {ms} ms")
            }
            None => {}
        }
        r
    }

    fn free_frames(&mut self, among: &DirtyBitmap, out: &mut DirtyBitmap) -> Result<(), PortError> {
        self.mem.flush();
        let (before, t0) = (self.mem.stats(), self.xen.now_ns());
        let r = self.inner.free_frames(among, out);
        let what = format!("free, {} frames asked", among.count());
        self.after_walk(&what, before, t0, out.count());
        r
    }
}
