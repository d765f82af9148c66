//! The source role: handshake, pre-copy rounds through the engine, the
//! suspension, the CPU state, END, the authenticated trailer, then the
//! destination's ACK.
//!
//! ```text
//! -> Hello(Source)            <- Hello(Destination), key confirmation
//! -> image header, domain header, STATIC_DATA_END
//! -> PAGE_DATA...             (rounds; the guest runs, log-dirty on)
//!    suspend the guest
//! -> PAGE_DATA...             (copy round)
//! -> X86_TSC_INFO, HVM_PARAMS, HVM_CONTEXT, END
//! -> trailer (Poly1305 over everything after the hellos), or, with
//!    encryption agreed, all of the above from the image header on in
//!    sealed records, the last one marked final (`depmig_stream::record`)
//! <> page digests (with verification on: `crate::verify`)
//! <- DMACK\0\0\0 | DMNAK+code, with its tag (`crate::reply`)
//! ```
//!
//! Armed with encryption (`SourceConfig::encrypt`), the source offers it
//! and refuses a destination whose (confirmed) answer does not take it,
//! before it sends a page or suspends the guest.
//!
//! Whatever fails after the suspension was asked for, the guest is resumed
//! with its suspend cancelled; log-dirty mode is turned off on every exit.
//! On success the guest stays suspended: dom0 destroys it once the
//! destination reported `applied`.

use alloc::boxed::Box;
use alloc::vec;
use alloc::vec::Vec;
use core::cell::RefCell;

use depmig_precopy::{
    migrate, CensusCounts, Clock, DependencyOracle, DirtyBitmap, DirtyLog, EngineError,
    GuestMemory, Mode, PageSink, Policy, PortError, Ports, RoundStats, BATCH,
};
use depmig_stream::handshake::{HELLO_LEN, MIN_KEY_LEN};
use depmig_stream::{
    negotiated, negotiated_delta, sealed, verify_key_confirmation, Authenticated, ByteSink, Caps,
    Codec, Direction, DomainHeader, DomainType, EncodeError, Encoder, HandshakeError, Hello,
    HvmParam, PageTally, PageType, PfnEntry, Role, Sealer, SinkFull, TranscriptMac, CONFIRM_LEN,
    PAGE_SIZE,
};

use depmig_control::report::MAX_LISTED_FRAMES;

use crate::adapt::{Adapt, Why, Window};
use crate::delta_cache::{CacheError, CacheStats, DeltaCache};
use crate::params;
use crate::ports::{Progress, SourceDomain, State, Transport, TransportError};
use crate::reply::{self, NakCode, Reply, REPLY_LEN, SIGNED_REPLY_LEN};
use crate::verify::{self, Channel, SourceView, VerifyError, VerifyStats};
use xen_abi::hvm::{HVM_PARAM_CONSOLE_PFN, HVM_PARAM_STORE_PFN};

/// How the source runs.
#[derive(Clone, Copy, Debug)]
pub struct SourceConfig<'a> {
    /// The shared HMAC key (at least 16 bytes; `migrate/key` gives 32).
    pub key: &'a [u8],
    /// A fresh random nonce for this migration's hello.
    pub nonce: [u8; 16],
    /// What the engine sends (`Baseline`, `DependencyAware`, `PaperAnalysis`).
    pub mode: Mode,
    /// Xen version of this host, written into the domain header.
    pub xen_major: u32,
    /// Xen minor version.
    pub xen_minor: u32,
    /// Pages per PAGE_DATA record, 1 to 1024 (libxc's batch; other values
    /// are clamped). The source reads a record's pages, then sends them:
    /// while it reads the next, the link carries only what the peer's
    /// window lets out, so a record that takes longer to read than that
    /// window takes to drain leaves the link idle. The appliance uses
    /// [`RECORD_PAGES`].
    pub record_pages: usize,
    /// Compare the guest's pages with the shell's after the trailer
    /// (`--verify`); the destination must be armed alike.
    pub verify: bool,
    /// The page codec offered to the destination; pages travel with it
    /// only if the destination accepts it, raw otherwise
    /// ([`SourceStats::codec`] says which ran).
    pub compress: Codec,
    /// Send the stream in sealed records (`--encrypt on`): offered to the
    /// destination and required of it; a destination that does not take
    /// it is refused before a page is sent. Off, the stream goes in clear
    /// with the transcript tag.
    pub encrypt: bool,
    /// Size of the cache of re-sent pages in MiB ([`crate::delta_cache`]);
    /// 0 sends no deltas. Deltas are offered when it is not 0 and used
    /// only if the destination accepts them ([`SourceStats::delta`]).
    pub delta_cache_mib: u32,
    /// Switch the agreed encodings (LZ4, deltas) off where they slow the
    /// move and back on where the link is the bottleneck
    /// ([`crate::adapt`]); false pins them on for the whole migration
    /// (`--encodings fixed`). Nothing changes on the wire: raw pages are
    /// always legal in a stream that agreed on encodings.
    pub adaptive: bool,
}

/// Pages per record for a link like the appliances': with a 256 KiB
/// receive window, 40 Mb/s drains the window in ~50 ms, and the source
/// reads 64 pages in ~25 ms under emulation (mapping, copying, the MAC).
/// The record overhead is 8 bytes a page, 0.2 %.
pub const RECORD_PAGES: usize = 64;

/// A domain operation, named in errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceOp {
    /// `populated`.
    Populated,
    /// `read_pages`.
    ReadPages,
    /// `log_dirty_enable`.
    LogDirtyEnable,
    /// `log_dirty_collect`.
    LogDirtyCollect,
    /// `suspend`.
    Suspend,
    /// `tsc_info`.
    TscInfo,
    /// `hvm_param`.
    HvmParam,
    /// `hvm_context`.
    HvmContext,
}

/// Why the source gave up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceError {
    /// The key is shorter than 16 bytes.
    ShortKey,
    /// The mode may leave the destination inconsistent; an appliance never runs it.
    UnsoundMode,
    /// The guest reports no frames.
    EmptyGuest,
    /// The transport failed.
    Transport(TransportError),
    /// The destination's hello was refused.
    Handshake(HandshakeError),
    /// A domain operation failed.
    Domain(SourceOp, PortError),
    /// The dependency oracle failed.
    Oracle(PortError),
    /// The stream could not be encoded (a bug, or a pfn beyond 52 bits).
    Encode(EncodeError),
    /// The destination refused the migration.
    Nak(NakCode),
    /// The destination answered neither ACK nor NAK.
    BadReply([u8; REPLY_LEN]),
    /// The destination's reply did not carry its tag: forged or damaged
    /// on the way, so neither its ACK nor its NAK is believed.
    ForgedReply([u8; REPLY_LEN]),
    /// Page verification could not be carried out.
    Verify(VerifyError),
    /// The cache of re-sent pages could not be made.
    DeltaCache(CacheError),
}

/// Figures of one migration, complete on success and partial on failure.
/// Times are the caller's [`Clock`] readings in ns.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SourceStats {
    /// The mode that ran.
    pub mode: Option<Mode>,
    /// The policy's name.
    pub policy: &'static str,
    /// Frames in the guest's address space.
    pub nr_pfns: u64,
    /// Every round so far; the last one is the copy round on success.
    pub rounds: Vec<RoundStats>,
    /// Start of each round.
    pub round_start_ns: Vec<u64>,
    /// PAGE_DATA records of each round.
    pub round_records: Vec<u64>,
    /// Entries of each round sent as holes (frames gone since round 1).
    pub round_holes: Vec<u64>,
    /// Groups the oracle froze (dependency-aware mode).
    pub frozen_groups: u32,
    /// Every byte sent: our hello, the stream, the trailer.
    pub stream_bytes: u64,
    /// libxc records written.
    pub records: u64,
    /// The page codec the destination agreed to.
    pub codec: Codec,
    /// The stream went in sealed records.
    pub encrypted: bool,
    /// Sealed records sent (0 in clear).
    pub sealed_records: u64,
    /// How the pages went with [`Codec::Lz4`] (all zero otherwise).
    pub page_tally: PageTally,
    /// Bytes each round's page records would have taken as Xen's
    /// PAGE_DATA: beside [`RoundStats::bytes`], what compression saved.
    pub round_raw_bytes: Vec<u64>,
    /// How each round's pages with data went: `raw` counts every page sent
    /// whole and uncompressed (in PAGE_DATA or a packed record), the
    /// others as in [`SourceStats::page_tally`].
    pub round_pages: Vec<PageTally>,
    /// Whether the destination accepted delta pages.
    pub delta: bool,
    /// The cache of re-sent pages, when deltas were agreed on.
    pub delta_cache: Option<CacheStats>,
    /// Whether the encodings could switch ([`SourceConfig::adaptive`]).
    pub adaptive: bool,
    /// Per round, how the agreed encodings ran ([`crate::adapt`]); empty
    /// when none were agreed on.
    pub round_encodings: Vec<RoundEncodings>,
    /// First byte sent (the hello).
    pub start_ns: u64,
    /// The suspension was asked for.
    pub suspend_request_ns: Option<u64>,
    /// The guest was seen suspended.
    pub suspended_ns: Option<u64>,
    /// END was written.
    pub end_ns: Option<u64>,
    /// The trailer (the last byte) was sent and flushed.
    pub trailer_ns: Option<u64>,
    /// The ACK arrived.
    pub ack_ns: Option<u64>,
    /// Paper-analysis mode: whose each round's dirty tainted pages were,
    /// in round order, for the rounds whose census the oracle could take
    /// (the copy round's is taken after the destination's ACK).
    pub census: Vec<CensusCounts>,
    /// Page verification's figures, once it started.
    pub verify: Option<VerifyStats>,
}

impl SourceStats {
    /// Pages with contents sent (holes and freed pages excluded).
    pub fn pages_sent(&self) -> u64 {
        let sent: u64 = self.rounds.iter().map(|r| r.sent).sum();
        sent.saturating_sub(self.round_holes.iter().sum::<u64>())
    }

    /// Bytes of PAGE_DATA records.
    pub fn page_record_bytes(&self) -> u64 {
        self.rounds.iter().map(|r| r.bytes).sum()
    }

    /// Guest suspended -> ACK received.
    pub fn downtime_ns(&self) -> Option<u64> {
        self.ack_ns?.checked_sub(self.suspended_ns?)
    }

    /// First byte -> ACK received.
    pub fn total_ns(&self) -> Option<u64> {
        self.ack_ns?.checked_sub(self.start_ns)
    }
}

/// How the encodings ran in one round.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RoundEncodings {
    /// On when the round started.
    pub on_at_start: bool,
    /// On when it ended.
    pub on_at_end: bool,
    /// Times they were switched during the round (probes included).
    pub switches: u32,
    /// Pages with data sent while they were off.
    pub off_pages: u64,
    /// Time spent encoding, ns.
    pub encode_ns: u64,
    /// Time spent waiting for the link, ns.
    pub wait_ns: u64,
    /// The round's last decision (none when no window ended in it): why,
    /// and the window's time it predicted encoded and raw, ns.
    pub why: Option<Why>,
    /// See `why`.
    pub predicted_encoded_ns: Option<u64>,
    /// See `why`.
    pub predicted_raw_ns: Option<u64>,
}

impl RoundEncodings {
    fn starting(on: bool) -> Self {
        RoundEncodings {
            on_at_start: on,
            on_at_end: on,
            switches: 0,
            off_pages: 0,
            encode_ns: 0,
            wait_ns: 0,
            why: None,
            predicted_encoded_ns: None,
            predicted_raw_ns: None,
        }
    }

    /// `on`, `off`, or `switched` (the report's word).
    pub fn state(&self) -> &'static str {
        match (self.switches, self.on_at_start) {
            (0, true) => "on",
            (0, false) => "off",
            _ => "switched",
        }
    }
}

/// A failed migration: the error, what was measured, and how the guest was
/// put back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceFailure {
    /// The first error.
    pub error: SourceError,
    /// Figures up to the failure.
    pub stats: SourceStats,
    /// Whether `resume_cancelled` was called (the suspension had been asked for).
    pub resume_called: bool,
    /// Whether it found the guest suspended and resumed it.
    pub resumed: bool,
    /// The error of `resume_cancelled`, if it failed: the guest may still
    /// be suspended and dom0 must resume it.
    pub resume_error: Option<PortError>,
    /// The error of `log_dirty_disable`, if it failed.
    pub log_dirty_error: Option<PortError>,
    /// The error of the oracle's `thaw_all`, if it failed.
    pub thaw_error: Option<PortError>,
}

/// A successful migration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceOutcome {
    /// The figures.
    pub stats: SourceStats,
    /// The error of `log_dirty_disable`, if it failed (the migration stands).
    pub log_dirty_error: Option<PortError>,
}

/// The progress line for a round, as published under `migrate/round`
/// ([`depmig_control::Round`]).
pub fn round_line(st: &RoundStats) -> alloc::string::String {
    depmig_control::Round {
        round: u64::from(st.round),
        dirty: st.dirty,
        sent: st.sent,
        skipped_free: st.skipped_free,
        bytes: st.bytes,
        ms: st.time_ns / 1_000_000,
    }
    .to_text()
}

/// Bytes buffered before they are handed to the transport: the encoder
/// writes pfn entries 8 bytes at a time.
const WIRE_BUFFER: usize = 64 << 10;

/// The transport as a [`ByteSink`], with a buffer, a byte count, and the
/// transport's error kept (the sink interface only says "full").
struct Wire<'t, T> {
    t: &'t mut T,
    buf: Vec<u8>,
    sent: u64,
    err: Option<TransportError>,
    clock: &'t dyn Clock,
    /// Time spent in the transport's `send`, ns.
    send_ns: u64,
    /// Bytes handed to the transport.
    handed: u64,
}

impl<T: Transport> Wire<'_, T> {
    fn push(&mut self) -> Result<(), SinkFull> {
        if self.err.is_some() {
            return Err(SinkFull);
        }
        if !self.buf.is_empty() {
            let t0 = self.clock.now_ns();
            let r = self.t.send(&self.buf);
            self.timed(t0, self.buf.len());
            if let Err(e) = r {
                self.err = Some(e);
                return Err(SinkFull);
            }
            self.buf.clear();
        }
        Ok(())
    }

    fn timed(&mut self, t0: u64, bytes: usize) {
        self.handed = self.handed.saturating_add(bytes as u64);
        let d = self.clock.now_ns().saturating_sub(t0);
        self.send_ns = self.send_ns.saturating_add(d);
    }

    /// Time spent waiting for the link so far: the transport's own
    /// measure, or all the time spent sending when it has none.
    fn waited_ns(&self) -> u64 {
        self.t.blocked_ns().unwrap_or(self.send_ns)
    }

    /// Bytes handed to the transport so far, and how many of them have
    /// not left yet, when it tells it.
    fn queued(&mut self) -> (u64, Option<u64>) {
        (self.handed, self.t.queued())
    }
}

impl<T: Transport> ByteSink for Wire<'_, T> {
    fn put(&mut self, bytes: &[u8]) -> Result<(), SinkFull> {
        if self.err.is_some() {
            return Err(SinkFull);
        }
        if self.buf.len() + bytes.len() > WIRE_BUFFER {
            self.push()?;
        }
        if bytes.len() >= WIRE_BUFFER {
            let t0 = self.clock.now_ns();
            let r = self.t.send(bytes);
            self.timed(t0, bytes.len());
            if let Err(e) = r {
                self.err = Some(e);
                return Err(SinkFull);
            }
        } else {
            self.buf.extend_from_slice(bytes);
        }
        self.sent += bytes.len() as u64;
        Ok(())
    }
}

/// Everything the engine's ports share.
struct Shared<'a, D, T> {
    dom: &'a mut D,
    out: Authenticated<Wire<'a, T>>,
    enc: Encoder,
    pages: Vec<u8>,
    holes: Vec<bool>,
    entries: Vec<PfnEntry>,
    progress: &'a mut dyn Progress,
    clock: &'a dyn Clock,
    log_on: bool,
    suspend_called: bool,
    stats: SourceStats,
    round_records: u64,
    round_holes: u64,
    round_raw_bytes: u64,
    /// Pages with data sent this round, and the encoder's tally at its start.
    round_data_pages: u64,
    round_tally_start: PageTally,
    /// Copies of re-sent pages, with deltas agreed on.
    cache: Option<DeltaCache>,
    /// Whether the encodings are on, with encodings agreed on.
    adapt: Option<Adapt>,
    /// The current window's figures, its start and the link wait then.
    win: Window,
    win_start_ns: u64,
    win_waited_ns: u64,
    win_queued: (u64, Option<u64>),
    /// The current round's encodings, and the link wait at its start.
    round_enc: RoundEncodings,
    round_waited_ns: u64,
    err: Option<SourceError>,
    /// Frames whose last entry went as free (XALLOC): with verification
    /// on, they must still be free at the end.
    sent_free: DirtyBitmap,
    /// Frames the stream carried an entry for, of any kind (verification
    /// on): the others are holes at the destination by construction.
    sent_any: DirtyBitmap,
    /// Frames whose last entry carried data (verification on), and the
    /// digest of that data per frame: see [`Port::recheck`].
    sent_data: DirtyBitmap,
    sent_digest: Vec<u64>,
}

impl<D, T: Transport> Shared<'_, D, T> {
    /// Keeps the first error; the engine only sees a [`PortError`].
    fn fail(&mut self, e: SourceError) -> PortError {
        if self.err.is_none() {
            self.err = Some(e);
        }
        PortError::Recorded
    }

    /// Sends the pages just read for `pfns` with deltas where the cache
    /// holds their frames' copies, then refreshes it: every page with data
    /// sent leaves its bytes in its entry, and a hole drops it.
    fn delta_record(&mut self, pfns: &[u64]) -> Result<(), PortError> {
        let Some(cache) = self.cache.as_mut() else {
            return Ok(());
        };
        // Inserted: pages re-sent by a live round after round 1
        // (`crate::delta_cache` says why).
        let insert = !self.stats.rounds.is_empty() && !self.suspend_called;
        // Lookups first (they count hits and misses), then the copies
        // borrowed for the encoder.
        let mut pages: Vec<&[u8]> = Vec::with_capacity(pfns.len());
        let mut hits: Vec<(u64, bool)> = Vec::with_capacity(pfns.len());
        for ((&pfn, &hole), page) in pfns
            .iter()
            .zip(&self.holes)
            .zip(self.pages.chunks_exact(PAGE_SIZE))
        {
            if hole {
                cache.forget(pfn);
            } else {
                hits.push((pfn, cache.lookup(pfn).is_some()));
                pages.push(page);
            }
        }
        let cache = &*cache;
        let bases: Vec<Option<&[u8]>> = hits
            .iter()
            .map(|&(pfn, hit)| if hit { cache.peek(pfn) } else { None })
            .collect();
        let r = self
            .enc
            .page_data_delta(&mut self.out, &self.entries, &pages, &bases);
        drop(bases);
        drop(pages);
        if let Err(e) = r {
            return Err(self.encode_error(e));
        }
        if let Some(cache) = self.cache.as_mut() {
            for ((&pfn, &hole), page) in pfns
                .iter()
                .zip(&self.holes)
                .zip(self.pages.chunks_exact(PAGE_SIZE))
            {
                if !hole {
                    cache.store(pfn, page, insert);
                }
            }
        }
        Ok(())
    }

    /// Ends the current window when it holds enough pages, and lets the
    /// controller decide the next one's encodings.
    fn end_window(&mut self) {
        let Some(adapt) = self.adapt.as_mut() else {
            return;
        };
        if self.win.pages == 0 || self.win.pages < adapt.window_pages() {
            return;
        }
        let now = self.clock.now_ns();
        let wire = self.out.inner_mut();
        let waited = wire.waited_ns();
        let queued = wire.queued();
        self.win.wall_ns = now.saturating_sub(self.win_start_ns);
        self.win.wait_ns = waited.saturating_sub(self.win_waited_ns);
        // What left the send buffer: what was handed to it less what its
        // queue grew by (bytes still in our own buffer are not counted:
        // they were not offered to the link yet).
        let handed = queued.0.saturating_sub(self.win_queued.0);
        (self.win.drained_bytes, self.win.queue_growth) = match (self.win_queued.1, queued.1) {
            (Some(q0), Some(q1)) => (
                handed.saturating_add(q0).saturating_sub(q1),
                q1.saturating_sub(q0),
            ),
            _ => (handed, 0),
        };
        let was_on = adapt.on();
        let d = adapt.decide(&self.win);
        let r = &mut self.round_enc;
        if d.on != was_on {
            r.switches = r.switches.saturating_add(1);
        }
        r.on_at_end = d.on;
        r.why = Some(d.why);
        r.predicted_encoded_ns = d.predicted_encoded_ns;
        r.predicted_raw_ns = d.predicted_raw_ns;
        self.win = Window::default();
        self.win_start_ns = now;
        self.win_waited_ns = waited;
        self.win_queued = queued;
    }

    /// Closes the round's encoding figures (with encodings agreed on).
    fn end_round_encodings(&mut self) {
        let Some(adapt) = self.adapt.as_ref() else {
            return;
        };
        let on = adapt.on();
        let waited = self.out.inner_mut().waited_ns();
        let mut r = core::mem::replace(&mut self.round_enc, RoundEncodings::starting(on));
        r.wait_ns = waited.saturating_sub(self.round_waited_ns);
        self.round_waited_ns = waited;
        self.stats.round_encodings.push(r);
    }

    fn encode_error(&mut self, e: EncodeError) -> PortError {
        let err = match (e, self.out.inner_mut().err) {
            (EncodeError::Sink, Some(t)) => SourceError::Transport(t),
            _ => SourceError::Encode(e),
        };
        self.fail(err)
    }
}

/// The three engine ports over one [`Shared`].
struct Port<'s, 'a, D, T> {
    cell: &'s RefCell<Shared<'a, D, T>>,
    nr: u64,
    /// Pages per PAGE_DATA record ([`SourceConfig::record_pages`]).
    record_pages: usize,
}

/// What a port returns when the shared state is busy (never expected: the
/// engine does not nest port calls).
const BUSY: PortError = PortError::Busy;

impl<D: SourceDomain, T: Transport> Port<'_, '_, D, T> {
    /// Sends `pfns` as records of at most `record_pages` pages each (zero
    /// pages, which carry no data, as one record).
    fn page_data(&mut self, pfns: &[u64], kind: PageType) -> Result<u64, PortError> {
        let per = if kind == PageType::Normal {
            self.record_pages
        } else {
            BATCH
        };
        let mut bytes = 0;
        for chunk in pfns.chunks(per.clamp(1, BATCH)) {
            bytes += self.record(chunk, kind)?;
        }
        Ok(bytes)
    }

    /// With verification, after the copy round's dirty pages went: reads
    /// every frame whose last entry carried data and sends again, still in
    /// the copy round, those whose contents are no longer what was sent.
    /// The dirty log misses writes Xen makes through its own mappings of
    /// guest memory: the vCPU info, runstate and time areas a guest
    /// registers (`map_guest_area`) are updated on every context switch
    /// and time update without a dirty bit, so the page holding one may be
    /// sent once and change after. Xen's own save has the same gap (a
    /// resumed guest registers its areas again and Xen rewrites them); a
    /// page-by-page comparison would find it. The frames found are counted
    /// in the verification figures (`unlogged_frames`).
    fn recheck(&mut self) -> Result<(), PortError> {
        let mut changed = Vec::new();
        let mut listed = Vec::new();
        let (t0, checked) = {
            let mut guard = self.cell.try_borrow_mut().map_err(|_| BUSY)?;
            let sh = &mut *guard;
            let t0 = sh.clock.now_ns();
            let mut chunk: Vec<u64> = Vec::with_capacity(BATCH);
            let mut checked = 0u64;
            let mut ones = sh.sent_data.iter_ones().peekable();
            // The staging buffers of `record`, free until the pages found
            // changed are sent below.
            while ones.peek().is_some() {
                chunk.clear();
                chunk.extend(ones.by_ref().take(BATCH));
                let n = chunk.len();
                sh.pages.resize(n * PAGE_SIZE, 0);
                sh.holes.clear();
                sh.holes.resize(n, false);
                if let Err(e) = sh.dom.read_pages(&chunk, &mut sh.pages, &mut sh.holes) {
                    return Err(sh.fail(SourceError::Domain(SourceOp::ReadPages, e)));
                }
                let pages = sh.pages.chunks_exact(PAGE_SIZE);
                for ((&pfn, &hole), page) in chunk.iter().zip(&sh.holes).zip(pages) {
                    let sent = sh.sent_digest.get(pfn as usize).copied();
                    if hole || sent != Some(verify::page_digest(page)) {
                        changed.push(pfn);
                        if listed.len() < MAX_LISTED_FRAMES {
                            listed.push(pfn);
                        }
                    }
                }
                checked += n as u64;
            }
            (t0, checked)
        };
        if !changed.is_empty() {
            self.page_data(&changed, PageType::Normal)?;
        }
        let mut sh = self.cell.try_borrow_mut().map_err(|_| BUSY)?;
        let ns = sh.clock.now_ns().saturating_sub(t0);
        let vs = sh.stats.verify.get_or_insert_with(VerifyStats::default);
        vs.unlogged_frames = changed.len() as u64;
        vs.unlogged_listed = listed;
        vs.recheck_frames = checked;
        vs.recheck_ns = ns;
        Ok(())
    }

    /// Sends one PAGE_DATA record of `pfns`.
    fn record(&mut self, pfns: &[u64], kind: PageType) -> Result<u64, PortError> {
        let mut guard = self.cell.try_borrow_mut().map_err(|_| BUSY)?;
        let sh = &mut *guard;
        let n = pfns.len();
        sh.entries.clear();
        let mut holes = 0u64;
        if kind == PageType::Normal {
            sh.pages.resize(n * PAGE_SIZE, 0);
            sh.holes.clear();
            sh.holes.resize(n, false);
            if let Err(e) = sh.dom.read_pages(pfns, &mut sh.pages, &mut sh.holes) {
                return Err(sh.fail(SourceError::Domain(SourceOp::ReadPages, e)));
            }
            let pages = sh.pages.chunks_exact(PAGE_SIZE);
            for ((&pfn, &hole), page) in pfns.iter().zip(&sh.holes).zip(pages) {
                let kind = if hole {
                    holes += 1;
                    sh.sent_data.clear(pfn);
                    PageType::XTab
                } else {
                    if let Some(d) = sh.sent_digest.get_mut(pfn as usize) {
                        sh.sent_data.set(pfn);
                        *d = verify::page_digest(page);
                    }
                    PageType::Normal
                };
                sh.sent_free.clear(pfn);
                sh.sent_any.set(pfn);
                sh.entries.push(PfnEntry { pfn, kind });
            }
        } else {
            for &pfn in pfns {
                sh.sent_any.set(pfn);
                sh.sent_data.clear(pfn);
                if kind == PageType::XAlloc {
                    sh.sent_free.set(pfn);
                } else {
                    sh.sent_free.clear(pfn);
                }
                // The destination zeroes or skips it: no base any more.
                if let Some(c) = sh.cache.as_mut() {
                    c.forget(pfn);
                }
            }
            sh.entries
                .extend(pfns.iter().map(|&pfn| PfnEntry { pfn, kind }));
        }
        let before = sh.out.written();
        let data_pages = (n as u64).saturating_sub(holes);
        let data_pages = if kind == PageType::Normal {
            data_pages
        } else {
            0
        };
        // Windows end where a record is about to be sent, after its pages
        // were read: the send buffer's queue is compared at the same point
        // of the read-encode-send cycle, where the link had the time of a
        // read to drain the last record's burst.
        if kind == PageType::Normal {
            sh.end_window();
        }
        let raw_bytes = 8 + 8 + 8 * n as u64 + data_pages * PAGE_SIZE as u64;
        sh.round_raw_bytes += raw_bytes;
        sh.round_data_pages += data_pages;
        // Encoded: agreed on and not switched off (`crate::adapt`). Off,
        // the pages go as PAGE_DATA, which a stream with encodings agreed
        // on still allows.
        let encoded = kind == PageType::Normal
            && (sh.cache.is_some() || sh.enc.codec() != Codec::Raw)
            && sh.adapt.as_ref().is_none_or(Adapt::on);
        if kind == PageType::Normal && !encoded {
            sh.round_enc.off_pages += data_pages;
            // The destination will hold these pages' new bytes: a copy
            // kept of their old ones would make a later delta wrong.
            if let Some(c) = sh.cache.as_mut() {
                for &pfn in pfns {
                    c.forget(pfn);
                }
            }
        }
        let t0 = sh.clock.now_ns();
        let send0 = sh.out.inner_mut().send_ns;
        if encoded && sh.cache.is_some() {
            sh.delta_record(pfns)?;
        } else if encoded {
            // Packed: the encoder needs the record's pages at once.
            let pages: Vec<&[u8]> = sh
                .pages
                .chunks_exact(PAGE_SIZE)
                .zip(&sh.holes)
                .filter(|(_, &hole)| !hole)
                .map(|(p, _)| p)
                .collect();
            if let Err(e) = sh.enc.page_data(&mut sh.out, &sh.entries, &pages) {
                return Err(sh.encode_error(e));
            }
        } else if let Err(e) = sh.enc.page_data_header(&mut sh.out, &sh.entries) {
            return Err(sh.encode_error(e));
        }
        if encoded {
            sh.clock.encoded(data_pages);
            let spent = sh.clock.now_ns().saturating_sub(t0);
            let sending = sh.out.inner_mut().send_ns.saturating_sub(send0);
            let encode = spent.saturating_sub(sending);
            sh.win.encode_ns = sh.win.encode_ns.saturating_add(encode);
            sh.round_enc.encode_ns = sh.round_enc.encode_ns.saturating_add(encode);
        }
        if kind == PageType::Normal && !encoded {
            // Runs of pages without holes go out in one piece.
            let mut i = 0;
            while i < n {
                if sh.holes.get(i).copied().unwrap_or(true) {
                    i += 1;
                    continue;
                }
                let mut j = i;
                while j < n && !sh.holes.get(j).copied().unwrap_or(true) {
                    j += 1;
                }
                let run = sh.pages.get(i * PAGE_SIZE..j * PAGE_SIZE).unwrap_or(&[]);
                if sh.out.put(run).is_err() {
                    return Err(sh.encode_error(EncodeError::Sink));
                }
                i = j;
            }
        }
        sh.round_records += 1;
        sh.round_holes += holes;
        sh.stats.records += 1;
        let bytes = sh.out.written() - before;
        if kind == PageType::Normal {
            sh.win.pages += data_pages;
            sh.win.raw_bytes += raw_bytes;
            sh.win.sent_bytes += bytes;
        }
        Ok(bytes)
    }
}

impl<D: SourceDomain, T: Transport> GuestMemory for Port<'_, '_, D, T> {
    fn nr_pfns(&self) -> u64 {
        self.nr
    }
    fn populated(&mut self, out: &mut DirtyBitmap) -> Result<(), PortError> {
        let mut sh = self.cell.try_borrow_mut().map_err(|_| BUSY)?;
        match sh.dom.populated(out) {
            Ok(()) => Ok(()),
            Err(e) => Err(sh.fail(SourceError::Domain(SourceOp::Populated, e))),
        }
    }
}

impl<D: SourceDomain, T: Transport> DirtyLog for Port<'_, '_, D, T> {
    fn enable(&mut self) -> Result<(), PortError> {
        let mut sh = self.cell.try_borrow_mut().map_err(|_| BUSY)?;
        // Set first: a failed enable may have half-happened; disabling is harmless.
        sh.log_on = true;
        match sh.dom.log_dirty_enable() {
            Ok(()) => Ok(()),
            Err(e) => Err(sh.fail(SourceError::Domain(SourceOp::LogDirtyEnable, e))),
        }
    }
    fn collect(&mut self, out: &mut DirtyBitmap) -> Result<(), PortError> {
        let mut sh = self.cell.try_borrow_mut().map_err(|_| BUSY)?;
        match sh.dom.log_dirty_collect(out) {
            Ok(()) => Ok(()),
            Err(e) => Err(sh.fail(SourceError::Domain(SourceOp::LogDirtyCollect, e))),
        }
    }
    fn suspend(&mut self) -> Result<(), PortError> {
        let mut guard = self.cell.try_borrow_mut().map_err(|_| BUSY)?;
        let sh = &mut *guard;
        // Everything of the live rounds leaves before the guest stops.
        if sh.out.flush_record().is_err() || sh.out.inner_mut().push().is_err() {
            return Err(sh.encode_error(EncodeError::Sink));
        }
        sh.progress.state(State::Suspending);
        sh.suspend_called = true;
        sh.stats.suspend_request_ns = Some(sh.clock.now_ns());
        if let Err(e) = sh.dom.suspend() {
            return Err(sh.fail(SourceError::Domain(SourceOp::Suspend, e)));
        }
        sh.stats.suspended_ns = Some(sh.clock.now_ns());
        sh.progress.state(State::Final);
        Ok(())
    }
}

impl<D: SourceDomain, T: Transport> PageSink for Port<'_, '_, D, T> {
    fn send_pages(&mut self, pfns: &[u64]) -> Result<u64, PortError> {
        self.page_data(pfns, PageType::Normal)
    }
    fn zero_pages(&mut self, pfns: &[u64]) -> Result<u64, PortError> {
        self.page_data(pfns, PageType::XAlloc)
    }
}

/// Runs the source role over `transport` to a destination already
/// listening. `clock` times rounds and the downtime; `oracle` answers the
/// engine's questions about the guest (pass [`depmig_precopy::NoOracle`]
/// for the baseline); `policy` decides when to stop pre-copy.
///
/// On success the guest is suspended and the destination holds it; on
/// failure the guest was resumed (see [`SourceFailure`]).
#[allow(clippy::too_many_arguments)] // reason: each port is a separate platform object
pub fn run<D: SourceDomain, T: Transport>(
    domain: &mut D,
    transport: &mut T,
    clock: &dyn Clock,
    oracle: &mut dyn DependencyOracle,
    policy: &mut dyn Policy,
    progress: &mut dyn Progress,
    cfg: &SourceConfig<'_>,
) -> Result<SourceOutcome, Box<SourceFailure>> {
    let mut stats = SourceStats {
        mode: Some(cfg.mode),
        policy: policy.name(),
        start_ns: clock.now_ns(),
        ..SourceStats::default()
    };
    let early = |error, stats: SourceStats| {
        Box::new(SourceFailure {
            error,
            stats,
            resume_called: false,
            resumed: false,
            resume_error: None,
            log_dirty_error: None,
            thaw_error: None,
        })
    };
    if cfg.key.len() < MIN_KEY_LEN {
        return Err(early(SourceError::ShortKey, stats));
    }
    if !cfg.mode.is_sound() {
        return Err(early(SourceError::UnsoundMode, stats));
    }
    let nr = domain.nr_pfns();
    stats.nr_pfns = nr;
    if nr == 0 {
        return Err(early(SourceError::EmptyGuest, stats));
    }

    progress.state(State::Connecting);
    // Taken before anything is sent: a cache that does not fit is refused
    // before the destination hears of this migration.
    let cache = match DeltaCache::new(cfg.delta_cache_mib) {
        Ok(c) => c,
        Err(e) => return Err(early(SourceError::DeltaCache(e), stats)),
    };
    // Verification's digest of each frame sent, likewise taken before
    // anything is sent, and refused rather than aborting when it does not
    // fit (8 bytes a frame: 8 MiB for a guest whose frames reach 4 GiB).
    let mut sent_digest: Vec<u64> = Vec::new();
    if cfg.verify {
        let n = usize::try_from(nr).unwrap_or(usize::MAX);
        if sent_digest.try_reserve_exact(n).is_err() {
            let bytes = nr.saturating_mul(8);
            return Err(early(
                SourceError::Verify(VerifyError::NoMemory { bytes }),
                stats,
            ));
        }
        sent_digest.resize(n, 0);
    }
    let (keys, hellos, codec, delta) = match handshake(transport, cfg) {
        Ok(m) => m,
        Err(e) => {
            progress.state(State::Failed);
            return Err(early(e, stats));
        }
    };
    stats.stream_bytes = HELLO_LEN as u64;
    stats.codec = codec;
    stats.encrypted = matches!(keys, Keys::Sealed(_));
    stats.delta = delta;
    progress.state(State::Streaming);
    let mut enc = Encoder::new();
    enc.set_codec(codec);
    enc.set_delta(delta);

    let wire = Wire {
        t: transport,
        buf: Vec::with_capacity(WIRE_BUFFER),
        sent: 0,
        err: None,
        clock,
        send_ns: 0,
        handed: 0,
    };
    let encodings = codec != Codec::Raw || delta;
    stats.adaptive = cfg.adaptive && encodings;
    let cell = RefCell::new(Shared {
        dom: domain,
        out: match keys {
            Keys::Clear(mac) => Authenticated::new(wire, *mac),
            Keys::Sealed(sealer) => Authenticated::sealed(wire, sealer),
        },
        enc,
        pages: vec![0; BATCH * PAGE_SIZE],
        holes: Vec::with_capacity(BATCH),
        entries: Vec::with_capacity(BATCH),
        progress,
        clock,
        log_on: false,
        suspend_called: false,
        stats,
        round_records: 0,
        round_holes: 0,
        round_raw_bytes: 0,
        round_data_pages: 0,
        round_tally_start: PageTally::default(),
        cache: delta.then_some(cache),
        adapt: encodings.then(|| Adapt::new(cfg.adaptive)),
        win: Window::default(),
        win_start_ns: clock.now_ns(),
        win_waited_ns: 0,
        win_queued: (0, Some(0)),
        round_enc: RoundEncodings::starting(true),
        round_waited_ns: 0,
        err: None,
        sent_free: DirtyBitmap::new(if cfg.verify { nr } else { 0 }),
        sent_any: DirtyBitmap::new(if cfg.verify { nr } else { 0 }),
        sent_data: DirtyBitmap::new(if cfg.verify { nr } else { 0 }),
        sent_digest,
    });

    // Headers and the (empty) static data: the shell was built from the
    // guest's own configuration on this host, so no CPU policy travels.
    {
        let mut guard = cell.borrow_mut();
        let sh = &mut *guard;
        let dom_hdr = DomainHeader {
            domain_type: DomainType::X86Hvm,
            page_shift: 12,
            xen_major: cfg.xen_major,
            xen_minor: cfg.xen_minor,
        };
        let r = sh
            .enc
            .headers(&mut sh.out, &dom_hdr)
            .and_then(|()| sh.enc.static_data_end(&mut sh.out));
        if let Err(e) = r {
            sh.encode_error(e);
        } else {
            sh.stats.records += 1;
        }
    }

    let mut frozen_tried = false;
    let engine = if cell.borrow().err.is_some() {
        Err(EngineError::Sink(PortError::Recorded))
    } else {
        frozen_tried = cfg.mode == Mode::DependencyAware;
        let record_pages = cfg.record_pages;
        let mut memory = Port {
            cell: &cell,
            nr,
            record_pages,
        };
        let mut log = Port {
            cell: &cell,
            nr,
            record_pages,
        };
        let mut sink = Port {
            cell: &cell,
            nr,
            record_pages,
        };
        let ports = Ports {
            memory: &mut memory,
            log: &mut log,
            sink: &mut sink,
            clock,
            oracle: &mut *oracle,
        };
        migrate(ports, cfg.mode, policy, &mut |st: &RoundStats| {
            if let Ok(mut guard) = cell.try_borrow_mut() {
                let sh = &mut *guard;
                let now = sh.clock.now_ns();
                sh.stats.round_start_ns.push(now.saturating_sub(st.time_ns));
                sh.stats.round_records.push(sh.round_records);
                sh.stats.round_holes.push(sh.round_holes);
                sh.stats.round_raw_bytes.push(sh.round_raw_bytes);
                let tally = sh.enc.tally();
                let mut pages = tally.since(sh.round_tally_start);
                pages.raw = sh
                    .round_data_pages
                    .saturating_sub(pages.lz4 + pages.zero + pages.delta);
                sh.stats.round_pages.push(pages);
                sh.round_tally_start = tally;
                sh.round_data_pages = 0;
                sh.round_records = 0;
                sh.round_holes = 0;
                sh.round_raw_bytes = 0;
                sh.end_round_encodings();
                sh.stats.rounds.push(*st);
                // Hand the round's tail to the transport (sealed: as a
                // record of its own); an error shows up on the next write.
                let _ = sh.out.flush_record();
                let _ = sh.out.inner_mut().push();
                sh.progress.round(st, &round_line(st));
            }
        })
    };

    // With verification: frames that changed without a dirty bit go again
    // in the copy round, before END (see `Port::recheck`).
    let engine = match engine {
        Ok(summary) if cfg.verify => {
            let mut port = Port {
                cell: &cell,
                nr,
                record_pages: cfg.record_pages,
            };
            port.recheck().map(|()| summary).map_err(EngineError::Sink)
        }
        other => other,
    };

    let Shared {
        dom,
        mut out,
        mut enc,
        progress,
        log_on,
        suspend_called,
        mut stats,
        err,
        sent_free,
        sent_any,
        cache,
        ..
    } = cell.into_inner();
    stats.page_tally = enc.tally();
    stats.delta_cache = cache.as_ref().map(DeltaCache::stats);
    drop(cache);
    let mut copy_round_census = None;
    let result = match engine {
        Ok(summary) => {
            stats.frozen_groups = summary.frozen_groups;
            stats.census = summary.census;
            copy_round_census = summary.copy_round_census;
            let verify = cfg.verify.then(|| Verification {
                oracle: &mut *oracle,
                chan: Channel::new(cfg.key, hellos.0, hellos.1),
                sent_free: &sent_free,
                sent_any: &sent_any,
            });
            let peer = (cfg.key, hellos.0, hellos.1);
            finish(dom, out, &mut enc, &mut stats, clock, verify, peer)
        }
        Err(e) => {
            stats.stream_bytes += out.inner_mut().sent;
            Err(match (err, e) {
                (Some(first), _) => first,
                (None, EngineError::Oracle(p)) => SourceError::Oracle(p),
                (None, EngineError::EmptyGuest) => SourceError::EmptyGuest,
                // Every other port records its own error first; keep the
                // engine's view should one not.
                (
                    None,
                    EngineError::Memory(p) | EngineError::DirtyLog(p) | EngineError::Sink(p),
                ) => SourceError::Domain(SourceOp::Populated, p),
            })
        }
    };

    // Committed as soon as the destination's ACK is in: dom0 may run the
    // destination copy from now on, so nothing after this point resumes the
    // guest; turning log-dirty off is housekeeping on a guest about to go.
    if result.is_ok() {
        progress.state(State::Committed);
    }
    let log_dirty_error = if log_on {
        dom.log_dirty_disable().err()
    } else {
        None
    };
    if result.is_ok() {
        // A measurement only: the suspended source is intact until dom0
        // destroys it (a census cut short by that just fails, ignored).
        if let Some((round, set)) = &copy_round_census {
            if let Ok(Some(c)) = oracle.census(*round, set) {
                stats.census.push(c);
            }
        }
    }
    match result {
        Ok(()) => Ok(SourceOutcome {
            stats,
            log_dirty_error,
        }),
        Err(error) => {
            let (resumed, resume_error) = if suspend_called {
                match dom.resume_cancelled() {
                    Ok(r) => (r, None),
                    Err(e) => (false, Some(e)),
                }
            } else {
                (false, None)
            };
            let thaw_error = if frozen_tried {
                oracle.thaw_all().err()
            } else {
                None
            };
            progress.state(State::Failed);
            Err(Box::new(SourceFailure {
                error,
                stats,
                resume_called: suspend_called,
                resumed,
                resume_error,
                log_dirty_error,
                thaw_error,
            }))
        }
    }
}

/// How the stream is protected, keyed from both hellos.
enum Keys {
    /// In clear, with the transcript tag in the trailer (boxed: Poly1305's
    /// state is ten times a sealer's).
    Clear(Box<TranscriptMac>),
    /// In sealed records.
    Sealed(Sealer),
}

/// Sends our hello, reads and checks the destination's; returns the
/// stream's keys, both hellos (ours first), the page codec the
/// destination accepted and whether it accepted deltas.
fn handshake<T: Transport>(
    t: &mut T,
    cfg: &SourceConfig<'_>,
) -> Result<(Keys, (Hello, Hello), Codec, bool), SourceError> {
    let offer = Caps::for_codec(cfg.compress).union(Caps::for_delta(cfg.delta_cache_mib > 0));
    let mine = Hello {
        role: Role::Source,
        nonce: cfg.nonce,
        verify: cfg.verify,
        caps: if cfg.encrypt {
            offer.union(Caps::ENCRYPTED)
        } else {
            offer
        },
    };
    t.send(&mine.to_bytes()).map_err(SourceError::Transport)?;
    t.flush().map_err(SourceError::Transport)?;
    let mut b = [0u8; HELLO_LEN];
    t.recv_exact(&mut b).map_err(SourceError::Transport)?;
    let peer = Hello::parse(&b).map_err(SourceError::Handshake)?;
    if peer.role != Role::Destination {
        return Err(SourceError::Handshake(HandshakeError::UnexpectedRole));
    }
    // The destination proves it holds our key before anything is sent (a
    // wrong key would otherwise show only at the trailer, after the guest
    // was suspended).
    let mut c = [0u8; CONFIRM_LEN];
    t.recv_exact(&mut c).map_err(SourceError::Transport)?;
    verify_key_confirmation(cfg.key, &mine, &peer, &c).map_err(SourceError::Handshake)?;
    // Confirmed, the destination's flags are its own: both ends must
    // verify, or neither.
    if peer.verify != cfg.verify {
        return Err(SourceError::Handshake(HandshakeError::VerifyMismatch));
    }
    let codec = negotiated(&mine, &peer).map_err(SourceError::Handshake)?;
    let delta = negotiated_delta(&mine, &peer).map_err(SourceError::Handshake)?;
    // Armed to encrypt, a confirmed answer without it is refused here,
    // before any page leaves in clear.
    let keys = if sealed(&mine, &peer, cfg.encrypt).map_err(SourceError::Handshake)? {
        Keys::Sealed(
            Sealer::new(cfg.key, &mine, &peer, Direction::SourceToDestination)
                .map_err(SourceError::Handshake)?,
        )
    } else {
        Keys::Clear(Box::new(
            TranscriptMac::new(cfg.key, &mine, &peer).map_err(SourceError::Handshake)?,
        ))
    };
    Ok((keys, (mine, peer), codec, delta))
}

/// What page verification needs at the end.
struct Verification<'a, 'k> {
    oracle: &'a mut dyn DependencyOracle,
    chan: Channel<'k>,
    sent_free: &'a DirtyBitmap,
    sent_any: &'a DirtyBitmap,
}

/// After the copy round: CPU state, END, trailer (or final record), and
/// the reply, whose tag is checked under `peer`'s key and hellos.
fn finish<D: SourceDomain, T: Transport>(
    dom: &mut D,
    mut out: Authenticated<Wire<'_, T>>,
    enc: &mut Encoder,
    stats: &mut SourceStats,
    clock: &dyn Clock,
    verification: Option<Verification<'_, '_>>,
    peer: (&[u8], Hello, Hello),
) -> Result<(), SourceError> {
    let mut rings = [0u64; 2];
    let sink_error =
        |out: &mut Authenticated<Wire<'_, T>>, e: EncodeError| match (e, out.inner_mut().err) {
            (EncodeError::Sink, Some(t)) => SourceError::Transport(t),
            _ => SourceError::Encode(e),
        };
    let tail = (|| {
        let tsc = dom
            .tsc_info()
            .map_err(|e| SourceError::Domain(SourceOp::TscInfo, e))?;
        let mut list: Vec<HvmParam> = Vec::with_capacity(params::SAVED.len());
        for index in params::SAVED {
            let value = dom
                .hvm_param(index)
                .map_err(|e| SourceError::Domain(SourceOp::HvmParam, e))?;
            match index {
                HVM_PARAM_STORE_PFN => rings[0] = value,
                HVM_PARAM_CONSOLE_PFN => rings[1] = value,
                _ => {}
            }
            if value != 0 {
                list.push(HvmParam {
                    index: u64::from(index),
                    value,
                });
            }
        }
        let mut ctx = Vec::new();
        dom.hvm_context(&mut ctx)
            .map_err(|e| SourceError::Domain(SourceOp::HvmContext, e))?;
        enc.tsc_info(&mut out, &tsc)
            .and_then(|()| enc.hvm_params(&mut out, &list))
            .and_then(|()| enc.hvm_context(&mut out, &ctx))
            .and_then(|()| enc.end(&mut out))
            .map_err(|e| sink_error(&mut out, e))
    })();
    if let Err(e) = tail {
        stats.stream_bytes += out.inner_mut().sent;
        return Err(e);
    }
    stats.records += 4;
    stats.end_ns = Some(clock.now_ns());

    // The trailer covers the stream; it is not part of it. Sealed, the
    // final record carries the stream's last bytes instead.
    stats.sealed_records = out.records() + u64::from(out.is_sealed());
    let (mut wire, trailer) = out.finish();
    let sent = wire.put(&trailer).and_then(|()| wire.push());
    stats.stream_bytes += wire.sent;
    if sent.is_err() {
        return Err(SourceError::Transport(
            wire.err.unwrap_or(TransportError::Failed(-1)),
        ));
    }
    wire.t.flush().map_err(SourceError::Transport)?;
    stats.trailer_ns = Some(clock.now_ns());

    // With verification, the destination's reply may come in place of
    // its verdict (a refusal); then its first bytes were read there.
    let (key, hello_s, hello_d) = peer;
    let mut early_reply = None;
    if let Some(mut v) = verification {
        let view = SourceView {
            sent_free: v.sent_free,
            sent_any: v.sent_any,
            rings,
        };
        let vs = stats.verify.get_or_insert_with(VerifyStats::default);
        early_reply = match verify::source(dom, wire.t, v.oracle, &mut v.chan, &view, clock, vs) {
            Ok(None) => None,
            Ok(Some(head)) => {
                let mut b = [0u8; SIGNED_REPLY_LEN];
                let (r, tag) = b.split_at_mut(REPLY_LEN);
                r.copy_from_slice(&head);
                wire.t.recv_exact(tag).map_err(SourceError::Transport)?;
                Some(b)
            }
            // A destination that refused the stream (its tag, its decoder)
            // answers with a NAK and hangs up while we still send digests:
            // the NAK may wait in our receive buffer, and names the cause
            // better than the hang-up does.
            Err(VerifyError::Transport(e)) => {
                let mut b = [0u8; SIGNED_REPLY_LEN];
                let got = wire
                    .t
                    .recv_exact(&mut b)
                    .ok()
                    .and_then(|()| reply::open(&b, key, &hello_s, &hello_d).ok());
                match got {
                    Some(Reply::Nak(_)) => Some(b),
                    _ => return Err(SourceError::Verify(VerifyError::Transport(e))),
                }
            }
            Err(e) => return Err(SourceError::Verify(e)),
        };
        if early_reply.is_none() && !vs.complete {
            return Err(SourceError::Verify(VerifyError::Malformed));
        }
    }

    let b = match early_reply {
        Some(b) => b,
        None => {
            let mut b = [0u8; SIGNED_REPLY_LEN];
            wire.t.recv_exact(&mut b).map_err(SourceError::Transport)?;
            b
        }
    };
    let opened = reply::open(&b, key, &hello_s, &hello_d).map_err(|_| {
        let mut r = [0u8; REPLY_LEN];
        r.copy_from_slice(b.get(..REPLY_LEN).unwrap_or(&[0; REPLY_LEN]));
        SourceError::ForgedReply(r)
    })?;
    match opened {
        // An ACK needs a verdict of no difference first.
        Reply::Ack
            if stats
                .verify
                .as_ref()
                .is_some_and(|v| !v.complete || v.mismatched_ranges > 0) =>
        {
            Err(SourceError::Verify(VerifyError::Skipped))
        }
        Reply::Ack => {
            stats.ack_ns = Some(clock.now_ns());
            Ok(())
        }
        Reply::Nak(code) => Err(SourceError::Nak(code)),
        Reply::Garbage(b) => Err(SourceError::BadReply(b)),
    }
}
