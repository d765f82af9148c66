//! The adaptive encodings (`depmig_migrate::adapt`) end to end, on a
//! simulated clock: the source reads pages at a CPU cost per page, encodes
//! them at a cost per page, and hands bytes to a link of a given rate
//! behind a send buffer, waiting when the buffer is full. Times compared
//! are the simulated clock's, never the host's; the destination runs as in
//! `e2e.rs`, and the shell must equal the guest in every case.

mod common;

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use depmig_migrate::report::{self, ReportMeta};
use depmig_migrate::*;

/// 32 MiB guest: a few windows of 512 pages in each round after the first.
const NR: u64 = 8192;

/// The simulated CPU: reading a page, encoding one, copying a byte to the
/// link (ns). Reading and encoding are of the order the appliance shows
/// under emulation; encoding costs four times reading.
const READ_NS: u64 = 10_000;
const ENCODE_NS: u64 = 40_000;
const COPY_PS_PER_BYTE: u64 = 250;

/// Link rates, bytes per second: fast (a raw page in 2 µs, the CPU is the
/// bottleneck) and slow (10 MB/s, a raw page in 410 µs).
const FAST: u64 = 2_000_000_000;
const SLOW: u64 = 10_000_000;

/// The send buffer in front of the simulated link.
const SEND_BUFFER: u64 = 256 << 10;

/// The simulated clock, shared by the source's ports.
#[derive(Clone, Default)]
struct SimClock(Arc<AtomicU64>);

impl SimClock {
    fn advance(&self, ns: u64) {
        self.0.fetch_add(ns, Ordering::SeqCst);
    }
    fn now(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

impl Clock for SimClock {
    fn now_ns(&self) -> u64 {
        self.now()
    }
    fn encoded(&self, pages: u64) {
        self.advance(pages * ENCODE_NS);
    }
}

/// The guest, read at [`READ_NS`] a page.
struct Timed {
    g: G,
    clock: SimClock,
}

impl SourceDomain for Timed {
    fn nr_pfns(&self) -> u64 {
        self.g.nr_pfns()
    }
    fn populated(&mut self, out: &mut DirtyBitmap) -> Result<(), PortError> {
        self.g.populated(out)
    }
    fn read_pages(&mut self, p: &[u64], b: &mut [u8], h: &mut [bool]) -> Result<(), PortError> {
        self.clock.advance(p.len() as u64 * READ_NS);
        self.g.read_pages(p, b, h)
    }
    fn log_dirty_enable(&mut self) -> Result<(), PortError> {
        self.g.log_dirty_enable()
    }
    fn log_dirty_collect(&mut self, out: &mut DirtyBitmap) -> Result<(), PortError> {
        self.g.log_dirty_collect(out)
    }
    fn log_dirty_disable(&mut self) -> Result<(), PortError> {
        self.g.log_dirty_disable()
    }
    fn suspend(&mut self) -> Result<(), PortError> {
        self.g.suspend()
    }
    fn resume_cancelled(&mut self) -> Result<bool, PortError> {
        self.g.resume_cancelled()
    }
    fn tsc_info(&mut self) -> Result<TscInfo, PortError> {
        self.g.tsc_info()
    }
    fn hvm_param(&mut self, index: u32) -> Result<u64, PortError> {
        self.g.hvm_param(index)
    }
    fn hvm_context(&mut self, out: &mut Vec<u8>) -> Result<(), PortError> {
        self.g.hvm_context(out)
    }
    fn pages_held(&mut self) -> Option<u64> {
        self.g.pages_held()
    }
}

/// The link: bytes drain at the current round's rate behind a send buffer
/// of [`SEND_BUFFER`] bytes; a send that does not fit waits (simulated)
/// for room, and copying costs [`COPY_PS_PER_BYTE`]. The bytes themselves
/// go on through the in-memory pipe to the destination.
struct SimLink {
    inner: End,
    clock: SimClock,
    /// Rate of each round (the last one holds on), and the round now.
    rates: Vec<u64>,
    round: Arc<AtomicU32>,
    /// Bytes handed over that have not left, as of `at` (simulated ns).
    backlog: u64,
    at: u64,
    blocked: u64,
}

impl SimLink {
    fn rate(&self) -> u64 {
        let i = self.round.load(Ordering::SeqCst) as usize;
        self.rates[i.min(self.rates.len() - 1)]
    }

    /// Drains the backlog up to now, at the current rate.
    fn drain(&mut self) {
        let now = self.clock.now();
        let gone =
            u128::from(now.saturating_sub(self.at)) * u128::from(self.rate()) / 1_000_000_000;
        self.backlog = self
            .backlog
            .saturating_sub(u64::try_from(gone).unwrap_or(u64::MAX));
        self.at = now;
    }

    /// Time the link takes for `bytes`, ns.
    fn time_for(&self, bytes: u64) -> u64 {
        (u128::from(bytes) * 1_000_000_000 / u128::from(self.rate())) as u64
    }
}

impl Transport for SimLink {
    fn send(&mut self, data: &[u8]) -> Result<(), TransportError> {
        let n = data.len() as u64;
        self.clock.advance(n * COPY_PS_PER_BYTE / 1000);
        self.drain();
        self.backlog += n;
        // Room for these bytes once the backlog fits the buffer.
        if self.backlog > SEND_BUFFER {
            let wait = self.time_for(self.backlog - SEND_BUFFER);
            self.clock.advance(wait);
            self.blocked += wait;
            self.drain();
        }
        self.inner.send(data)
    }
    fn flush(&mut self) -> Result<(), TransportError> {
        self.drain();
        self.clock.advance(self.time_for(self.backlog));
        self.drain();
        self.inner.flush()
    }
    fn recv(&mut self, buf: &mut [u8]) -> Result<usize, TransportError> {
        self.inner.recv(buf)
    }
    fn blocked_ns(&self) -> Option<u64> {
        Some(self.blocked)
    }
    fn queued(&mut self) -> Option<u64> {
        self.drain();
        Some(self.backlog)
    }
}

/// Counts rounds for the link's schedule.
struct Rounds {
    rec: Recorder,
    round: Arc<AtomicU32>,
}

impl Progress for Rounds {
    fn state(&mut self, state: State) {
        self.rec.state(state);
    }
    fn round(&mut self, st: &RoundStats, line: &str) {
        self.round.fetch_add(1, Ordering::SeqCst);
        self.rec.round(st, line);
    }
}

struct Sim {
    seed: u64,
    compress: Codec,
    delta_cache_mib: u32,
    adaptive: bool,
    rates: Vec<u64>,
    policy: PolicyKind,
    verify: bool,
}

impl Sim {
    fn new(seed: u64, rates: &[u64]) -> Sim {
        Sim {
            seed,
            compress: Codec::Lz4,
            delta_cache_mib: 8,
            adaptive: true,
            rates: rates.to_vec(),
            policy: PolicyKind::Xen4,
            verify: false,
        }
    }

    /// Without encodings: the raw baseline.
    fn raw(seed: u64, rates: &[u64]) -> Sim {
        Sim {
            compress: Codec::Raw,
            delta_cache_mib: 0,
            ..Sim::new(seed, rates)
        }
    }

    fn run(self) -> SourceStats {
        let mut guest = Guest::new(NR, self.seed);
        // Many more writes than e2e's guest: rounds after the first
        // resend a few thousand pages, several windows each.
        guest.writes_per_batch = 150;
        let guest = Arc::new(Mutex::new(guest));
        let (a, b) = duplex(256 << 10, Duration::from_secs(20));
        let clock = SimClock::default();
        let round = Arc::new(AtomicU32::new(0));
        let (src, dst, shell) = std::thread::scope(|s| {
            let g = G(guest.clone());
            let clock = clock.clone();
            let round = round.clone();
            let sim = &self;
            let src = s.spawn(move || {
                let mut t = SimLink {
                    inner: a,
                    clock: clock.clone(),
                    rates: sim.rates.clone(),
                    round: round.clone(),
                    backlog: 0,
                    at: 0,
                    blocked: 0,
                };
                let mut dom = Timed {
                    g: g.clone(),
                    clock: clock.clone(),
                };
                let mut oracle = Oracle {
                    g,
                    thaws: 0,
                    census: Vec::new(),
                };
                let mut progress = Rounds {
                    rec: Recorder::default(),
                    round,
                };
                let mut pol = AnyPolicy::new(sim.policy);
                let cfg = SourceConfig {
                    key: KEY,
                    nonce: [1; 16],
                    mode: Mode::Baseline,
                    xen_major: 4,
                    xen_minor: 20,
                    record_pages: 64,
                    verify: sim.verify,
                    compress: sim.compress,
                    encrypt: false,
                    delta_cache_mib: sim.delta_cache_mib,
                    adaptive: sim.adaptive,
                };
                source::run(
                    &mut dom,
                    &mut t,
                    &clock,
                    &mut oracle,
                    &mut pol,
                    &mut progress,
                    &cfg,
                )
            });
            let dst = s.spawn(move || {
                let mut t = b;
                let mut shell = Shell::new(NR);
                let mut cfg = DestConfig {
                    accept: Codec::Lz4,
                    accept_delta: true,
                    ..DestConfig::new(KEY, [2; 16])
                };
                cfg.verify = sim.verify;
                let r = dest::run(
                    &mut shell,
                    &mut t,
                    &TestClock(Instant::now()),
                    &mut Recorder::default(),
                    &cfg,
                );
                (r, shell)
            });
            let src = src.join().unwrap();
            let (dst, shell) = dst.join().unwrap();
            (src, dst, shell)
        });
        let out = src.unwrap_or_else(|f| panic!("source failed: {:?}", f.error));
        let dst = dst.expect("destination succeeded");
        assert_eq!(
            out.stats.page_tally, dst.page_tally,
            "both ends count alike"
        );
        // The shell holds the guest as suspended, but for its own rings.
        let g = guest.lock().unwrap();
        let snap = g.snapshot.as_ref().expect("guest was suspended");
        for p in 0..NR - 2 {
            if g.populated[p as usize] {
                let want = &snap[p as usize * PAGE..(p as usize + 1) * PAGE];
                assert!(shell.page(p) == want, "pfn {p} differs");
            }
        }
        if let Some(v) = &out.stats.verify {
            assert!(v.complete && v.mismatched_ranges == 0, "{v:?}");
        }
        out.stats
    }
}

fn states(st: &SourceStats) -> Vec<&'static str> {
    st.round_encodings.iter().map(|e| e.state()).collect()
}

fn total_ns(st: &SourceStats) -> u64 {
    st.total_ns().expect("acknowledged")
}

/// On a link fast enough for the CPU to be the bottleneck, the encodings
/// go off after the first (short) window, and the move takes at most 5 %
/// longer than without encodings, on the simulated clock.
#[test]
fn on_a_fast_link_encodings_switch_off_and_the_move_is_no_slower_than_raw() {
    let adaptive = Sim::new(31, &[FAST]).run();
    let raw = Sim::raw(31, &[FAST]).run();
    let fixed = Sim {
        adaptive: false,
        ..Sim::new(31, &[FAST])
    }
    .run();
    assert!(adaptive.adaptive && !fixed.adaptive);
    // The same pages went each time (the guest writes per page read).
    assert_eq!(adaptive.pages_sent(), raw.pages_sent());
    assert_eq!(adaptive.pages_sent(), fixed.pages_sent());
    let s = states(&adaptive);
    assert_eq!(s[0], "switched", "{s:?}");
    let first = adaptive.round_encodings[0];
    // All but the first window's records and a probe's went raw.
    assert!(first.off_pages >= NR - 4 * 64, "{first:?}");
    // Later rounds off, but for probes.
    for e in &adaptive.round_encodings[1..] {
        assert!(!e.on_at_end && e.encode_ns <= 64 * ENCODE_NS, "{e:?}");
    }
    let (a, r, f) = (total_ns(&adaptive), total_ns(&raw), total_ns(&fixed));
    assert!(a * 100 <= r * 105, "adaptive {a} ns, raw {r} ns");
    assert!(a * 2 < f, "adaptive {a} ns, fixed {f} ns");
    // Pinned, nothing switched.
    assert!(states(&fixed).iter().all(|&s| s == "on"));
    assert!(fixed.round_encodings.iter().all(|e| e.off_pages == 0));
}

/// On a slow link the encodings stay on, and the move is much faster than
/// raw. Encoded, this guest keeps the CPU the bottleneck even on the slow
/// link, so nothing shows the link's limit at first: one record goes raw
/// as a trial, its queue grows, and the encodings are back.
#[test]
fn on_a_slow_link_encodings_stay_on() {
    let adaptive = Sim::new(32, &[SLOW]).run();
    let raw = Sim::raw(32, &[SLOW]).run();
    // Trials of raw (a record each), fewer and fewer: no more than two in
    // the first round's 16 windows, three in all.
    let e = &adaptive.round_encodings;
    assert!(e[0].on_at_end && e[0].off_pages <= 2 * 64, "{:?}", e[0]);
    let trials: u64 = e.iter().map(|e| e.off_pages).sum();
    assert!(trials <= 3 * 64, "{e:?}");
    assert!(adaptive.page_tally.lz4 > 0 && adaptive.page_tally.delta > 0);
    let (a, r) = (total_ns(&adaptive), total_ns(&raw));
    assert!(a * 4 < r, "adaptive {a} ns, raw {r} ns");
    // The report says so.
    let rep = report::report(&adaptive, &ReportMeta::default());
    let p = rep.depmig.and_then(|d| d.pages).expect("page figures");
    assert_eq!(p.encodings.as_deref(), Some("adaptive"));
    let on = p.per_round_encodings.expect("per round");
    assert_eq!(on[0], "switched");
    assert_eq!(p.per_round_unencoded.unwrap()[0], e[0].off_pages);
    assert!(p.per_round_link_wait_us.unwrap().iter().sum::<u64>() > 0);
    assert!(p.per_round_encode_us.unwrap().iter().sum::<u64>() > 0);
}

/// A link fast for the first rounds and slow after: off, then back on.
#[test]
fn a_link_that_slows_down_brings_the_encodings_back() {
    let st = Sim {
        policy: PolicyKind::Xen33,
        ..Sim::new(33, &[FAST, FAST, FAST, SLOW])
    }
    .run();
    let e = &st.round_encodings;
    assert!(e.len() > 5, "{} rounds", e.len());
    assert!(!e[1].on_at_end && !e[2].on_at_end, "{e:?}");
    assert_eq!(e[3].state(), "switched", "{:?}", e[3]);
    assert!(e[3].on_at_end, "{:?}", e[3]);
    // On from then on, but for a trial of raw (a record at most) now and
    // then, after 8, 16, 32... windows that did not wait on the link.
    let trials: Vec<u64> = e[4..]
        .iter()
        .map(|e| e.off_pages)
        .filter(|&p| p > 0)
        .collect();
    assert!(
        trials.len() <= 4 && trials.iter().all(|&p| p <= 64),
        "{e:?}"
    );
    // Deltas again once back on.
    assert!(st.round_pages[4..].iter().any(|t| t.delta > 0));
}

/// The delta cache across a pause: pages cached while the encodings are
/// on, re-sent raw while they are off, and dirtied again once they are
/// back must not go as deltas against the copy sent before the pause
/// (the destination holds the raw one). Verification compares every page
/// as well.
#[test]
fn deltas_after_a_pause_are_against_what_the_destination_holds() {
    let st = Sim {
        policy: PolicyKind::Xen33,
        verify: true,
        ..Sim::new(
            34,
            &[SLOW, SLOW, SLOW, FAST, FAST, FAST, FAST, FAST, FAST, SLOW],
        )
    }
    .run();
    let e = &st.round_encodings;
    assert!(e.len() > 11, "{} rounds", e.len());
    // Deltas before the pause, pages raw during it, deltas after.
    assert!(st.round_pages[1..3].iter().any(|t| t.delta > 0));
    let paused = e[3..9].iter().map(|r| r.off_pages).sum::<u64>();
    assert!(paused > 1000, "{e:?}");
    assert!(e[10..].iter().all(|r| r.on_at_end), "{e:?}");
    assert!(st.round_pages[10..].iter().any(|t| t.delta > 0));
}
