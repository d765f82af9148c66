//! The pre-copy loop.
//!
//! Round 1 sends every populated frame; each later live round sends what
//! the dirty log collected during the round before; after each live round
//! the policy decides whether to go on. Then the guest is suspended, the
//! final dirty set is collected and sent. The caller writes the CPU state
//! and END afterwards.
//!
//! Modes differ only in what they send (see [`Mode`]); every mode records,
//! per round, pages dirty, dirty-and-tainted, sent, skipped, bytes and time.

use alloc::vec::Vec;

use crate::bitmap::DirtyBitmap;
use crate::policy::{Decision, Policy, PolicyInput};
use crate::ports::{
    CensusCounts, Clock, DependencyOracle, DirtyLog, GuestMemory, PageSink, PortError,
};

/// Largest batch handed to the sink (libxc's PAGE_DATA batch).
pub const BATCH: usize = 1024;

/// What the engine sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Stock pre-copy: every dirty page, every round.
    Baseline,
    /// depmig's sound mode: quiet untainted groups are frozen before round
    /// 1 (they dirty nothing afterwards); at the copy round, pages free in
    /// the suspended guest are not sent and the destination holds zero
    /// there. Every dirty page is still sent.
    DependencyAware,
    /// Baseline transfer; statistics record dirty vs dirty-and-tainted per
    /// round, the paper's own measurement.
    PaperAnalysis,
    /// UNSOUND, simulator only: the paper's literal rule — after round 1,
    /// send only pages that are dirty and tainted. The destination can end
    /// in a state the guest never was in.
    PaperLiteralUnsound,
}

impl Mode {
    /// Short name for reports.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Baseline => "baseline",
            Mode::DependencyAware => "dependency-aware",
            Mode::PaperAnalysis => "paper-analysis",
            Mode::PaperLiteralUnsound => "paper-literal-UNSOUND",
        }
    }

    /// Whether the mode can leave the destination inconsistent.
    pub fn is_sound(self) -> bool {
        self != Mode::PaperLiteralUnsound
    }
}

/// Statistics of one round.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RoundStats {
    /// 1-based round number.
    pub round: u32,
    /// Whether this was the copy round (guest suspended).
    pub last: bool,
    /// Pages due this round (populated pages for round 1, dirty after).
    pub dirty: u64,
    /// Of those, pages of tainted processes or the kernel. A
    /// dependency-aware migration walks for taint in round 1 only (later the
    /// answer decides nothing, and the walk would lengthen the round, or the
    /// downtime): all pages of its later rounds count as tainted.
    pub dirty_tainted: u64,
    /// Pages sent.
    pub sent: u64,
    /// Pages not sent because free in the guest (round 1 and the copy round
    /// of a dependency-aware migration): they go as zero pages.
    pub skipped_free: u64,
    /// Pages not sent because untainted (unsound literal rule only).
    pub skipped_untainted: u64,
    /// Bytes put on the wire.
    pub bytes: u64,
    /// Round duration.
    pub time_ns: u64,
}

/// Outcome of a migration's memory phase.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Every round in order; the last one is the copy round.
    pub rounds: Vec<RoundStats>,
    /// Pages sent in all rounds.
    pub pages_sent: u64,
    /// Bytes sent in all rounds.
    pub bytes_sent: u64,
    /// Groups the oracle froze (dependency-aware mode).
    pub frozen_groups: u32,
    /// Duration of the copy round (the memory part of the downtime).
    pub copy_round_ns: u64,
    /// Duration of the whole memory phase.
    pub total_ns: u64,
    /// Paper-analysis mode: the copy round's dirty tainted frames, for a
    /// census once the destination has everything (taking it in the copy
    /// round would lengthen the downtime it measures).
    pub copy_round_census: Option<(u32, DirtyBitmap)>,
    /// Paper-analysis mode: the census of each live round the oracle could
    /// take (the copy round's is the caller's, above).
    pub census: Vec<CensusCounts>,
}

/// Which port failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EngineError {
    /// The guest memory port failed.
    Memory(PortError),
    /// The dirty log or suspension failed.
    DirtyLog(PortError),
    /// The page sink failed.
    Sink(PortError),
    /// The dependency oracle failed.
    Oracle(PortError),
    /// The guest has no frames.
    EmptyGuest,
}

/// The ports the engine drives.
pub struct Ports<'a> {
    /// Guest layout.
    pub memory: &'a mut dyn GuestMemory,
    /// Log-dirty and suspension.
    pub log: &'a mut dyn DirtyLog,
    /// The stream.
    pub sink: &'a mut dyn PageSink,
    /// Time.
    pub clock: &'a dyn Clock,
    /// Guest knowledge.
    pub oracle: &'a mut dyn DependencyOracle,
}

/// Sends `set` in ascending batches of at most [`BATCH`].
fn send_set(
    set: &DirtyBitmap,
    batch: &mut Vec<u64>,
    zero: bool,
    sink: &mut dyn PageSink,
) -> Result<(u64, u64), EngineError> {
    let mut pages = 0;
    let mut bytes = 0;
    batch.clear();
    let mut flush = |batch: &mut Vec<u64>| -> Result<(), EngineError> {
        if batch.is_empty() {
            return Ok(());
        }
        let b = if zero {
            sink.zero_pages(batch)
        } else {
            sink.send_pages(batch)
        };
        bytes += b.map_err(EngineError::Sink)?;
        pages += batch.len() as u64;
        batch.clear();
        Ok(())
    };
    for pfn in set.iter_ones() {
        batch.push(pfn);
        if batch.len() == BATCH {
            flush(batch)?;
        }
    }
    flush(batch)?;
    Ok((pages, bytes))
}

/// Runs the memory phase of a migration. `progress` sees each round's
/// statistics as soon as the round ends.
pub fn migrate(
    ports: Ports<'_>,
    mode: Mode,
    policy: &mut dyn Policy,
    progress: &mut dyn FnMut(&RoundStats),
) -> Result<Summary, EngineError> {
    let Ports {
        memory,
        log,
        sink,
        clock,
        oracle,
    } = ports;
    let n = memory.nr_pfns();
    if n == 0 {
        return Err(EngineError::EmptyGuest);
    }
    let mut due = DirtyBitmap::new(n);
    let mut scratch = DirtyBitmap::new(n);
    let mut taint = DirtyBitmap::new(n);
    let mut batch: Vec<u64> = Vec::with_capacity(BATCH);
    let mut summary = Summary::default();
    let start = clock.now_ns();

    memory.populated(&mut due).map_err(EngineError::Memory)?;
    let guest_pages = due.count();
    // Freeze first: what the quiet groups write before the freeze lands is
    // read by round 1 (which reads every page after log-dirty is on), so
    // logging their last writes would only send those pages twice.
    if mode == Mode::DependencyAware {
        summary.frozen_groups = oracle.freeze_quiet_groups().map_err(EngineError::Oracle)?;
    }
    log.enable().map_err(EngineError::DirtyLog)?;

    let mut round: u32 = 1;
    let mut last = false;
    loop {
        if last {
            log.suspend().map_err(EngineError::DirtyLog)?;
            scratch.clear_all();
            log.collect(&mut scratch).map_err(EngineError::DirtyLog)?;
            due.or_with(&scratch);
        }
        let t0 = clock.now_ns();
        let mut st = RoundStats {
            round,
            last,
            dirty: due.count(),
            ..RoundStats::default()
        };
        // A dependency-aware migration sends every dirty page: after round
        // 1 (whose walk the free-page check reuses) a taint walk decides
        // nothing and only lengthens the round, so more is dirty by the
        // next. Those rounds count all their pages tainted.
        st.dirty_tainted = if mode == Mode::DependencyAware && (last || round > 1) {
            st.dirty
        } else {
            taint.clear_all();
            oracle
                .tainted_frames(&mut taint)
                .map_err(EngineError::Oracle)?;
            due.count_and(&taint)
        };
        // Whose the dirty tainted pages are: measured while the guest runs;
        // the copy round's set is kept for after the handoff (see Summary).
        if mode == Mode::PaperAnalysis {
            scratch.copy_from(&due);
            scratch.and_with(&taint);
            if last {
                summary.copy_round_census = Some((round, scratch.clone()));
            } else if let Ok(Some(c)) = oracle.census(round, &scratch) {
                summary.census.push(c);
            }
        }

        match mode {
            Mode::Baseline | Mode::PaperAnalysis => {}
            // Pages free in the guest need no content: in round 1 and in the
            // copy round they go as zero pages (populated, not copied). A page
            // free in round 1 that the guest allocates later is written by
            // it before it means anything, so it is dirty by then and sent.
            Mode::DependencyAware if last || round == 1 => {
                scratch.clear_all();
                oracle
                    .free_frames(&due, &mut scratch)
                    .map_err(EngineError::Oracle)?;
                scratch.and_with(&due);
                due.and_not_with(&scratch);
                let (pages, bytes) = send_set(&scratch, &mut batch, true, sink)?;
                st.skipped_free = pages;
                st.bytes += bytes;
            }
            Mode::DependencyAware => {}
            Mode::PaperLiteralUnsound if round >= 2 => {
                st.skipped_untainted = due.count() - st.dirty_tainted;
                due.and_with(&taint);
            }
            Mode::PaperLiteralUnsound => {}
        }

        let (pages, bytes) = send_set(&due, &mut batch, false, sink)?;
        st.sent = pages;
        st.bytes += bytes;
        st.time_ns = clock.now_ns().saturating_sub(t0);
        summary.pages_sent += st.sent;
        summary.bytes_sent += st.bytes;
        summary.rounds.push(st);
        progress(&st);
        if last {
            summary.copy_round_ns = st.time_ns;
            break;
        }

        due.clear_all();
        log.collect(&mut due).map_err(EngineError::DirtyLog)?;
        let input = PolicyInput {
            round,
            sent_last: st.sent,
            dirty: due.count(),
            sent_total: summary.pages_sent,
            guest_pages,
            round_bytes: st.bytes,
            round_ns: st.time_ns,
        };
        last = policy.decide(&input) == Decision::StopAndCopy;
        round += 1;
    }
    summary.total_ns = clock.now_ns().saturating_sub(start);
    Ok(summary)
}
