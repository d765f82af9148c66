//! The engine against small in-memory fakes: round structure, policies,
//! free-page skipping, freezing, and the literal rule's inconsistency.

use std::cell::RefCell;
use std::rc::Rc;

use depmig_precopy::*;
use xen_abi::errno::EIO;

/// A toy guest: page contents are numbers; a "dirtier" rewrites the pages
/// in `hot` on every sent batch unless frozen; `free` pages read as zero.
struct World {
    pages: Vec<u64>,
    dest: Vec<u64>,
    dirty: DirtyBitmap,
    hot: Vec<u64>,
    tainted: Vec<u64>,
    /// Freed (and zeroed) as the guest suspends.
    free: Vec<u64>,
    /// Free from the start (content left over, meaningless).
    free_at_start: Vec<u64>,
    frozen: bool,
    suspended: bool,
    /// Taint walks made while the guest was suspended.
    suspended_taint_walks: u32,
    /// Taint walks made.
    taint_walks: u32,
    /// Whether the quiet groups were frozen when log-dirty was turned on.
    frozen_at_log_enable: Option<bool>,
    /// How many frames each free-page question asked about.
    free_asked: Vec<u64>,
    /// Census requests: round, frames, whether the guest was suspended.
    census: Vec<(u32, u64, bool)>,
    now: u64,
    tick: u64,
    batches: Vec<Vec<u64>>,
}

impl World {
    fn new(n: usize, hot: Vec<u64>) -> Rc<RefCell<World>> {
        Rc::new(RefCell::new(World {
            pages: (0..n as u64).map(|i| i + 1).collect(),
            dest: vec![0; n],
            dirty: DirtyBitmap::new(n as u64),
            hot,
            tainted: vec![],
            free: vec![],
            free_at_start: vec![],
            frozen: false,
            suspended: false,
            suspended_taint_walks: 0,
            taint_walks: 0,
            frozen_at_log_enable: None,
            free_asked: vec![],
            census: vec![],
            now: 0,
            tick: 0,
            batches: vec![],
        }))
    }
    fn run(&mut self) {
        self.now += 1000;
        if self.suspended || self.frozen {
            return;
        }
        self.tick += 1;
        for &p in &self.hot.clone() {
            self.pages[p as usize] = 1_000_000 + self.tick;
            self.dirty.set(p);
        }
    }
}

struct P(Rc<RefCell<World>>);

impl GuestMemory for P {
    fn nr_pfns(&self) -> u64 {
        self.0.borrow().pages.len() as u64
    }
    fn populated(&mut self, out: &mut DirtyBitmap) -> Result<(), PortError> {
        out.set_all();
        Ok(())
    }
}
impl DirtyLog for P {
    fn enable(&mut self) -> Result<(), PortError> {
        let frozen = self.0.borrow().frozen;
        self.0.borrow_mut().frozen_at_log_enable = Some(frozen);
        Ok(())
    }
    fn collect(&mut self, out: &mut DirtyBitmap) -> Result<(), PortError> {
        let mut w = self.0.borrow_mut();
        out.or_with(&w.dirty);
        w.dirty.clear_all();
        Ok(())
    }
    fn suspend(&mut self) -> Result<(), PortError> {
        let mut w = self.0.borrow_mut();
        w.suspended = true;
        // The guest freed (and zeroed) these pages on its way down.
        for p in w.free.clone() {
            w.pages[p as usize] = 0;
            w.dirty.set(p);
        }
        Ok(())
    }
}
impl PageSink for P {
    fn send_pages(&mut self, pfns: &[u64]) -> Result<u64, PortError> {
        let mut w = self.0.borrow_mut();
        for &p in pfns {
            w.dest[p as usize] = w.pages[p as usize];
        }
        w.batches.push(pfns.to_vec());
        w.run();
        Ok(pfns.len() as u64 * 4104)
    }
    fn zero_pages(&mut self, pfns: &[u64]) -> Result<u64, PortError> {
        let mut w = self.0.borrow_mut();
        for &p in pfns {
            w.dest[p as usize] = 0;
        }
        Ok(pfns.len() as u64 * 8)
    }
}
impl Clock for P {
    fn now_ns(&self) -> u64 {
        self.0.borrow().now
    }
}
impl DependencyOracle for P {
    fn freeze_quiet_groups(&mut self) -> Result<u32, PortError> {
        self.0.borrow_mut().frozen = true;
        Ok(1)
    }
    fn thaw_all(&mut self) -> Result<(), PortError> {
        self.0.borrow_mut().frozen = false;
        Ok(())
    }
    fn tainted_frames(&mut self, out: &mut DirtyBitmap) -> Result<(), PortError> {
        let mut w = self.0.borrow_mut();
        w.taint_walks += 1;
        if w.suspended {
            w.suspended_taint_walks += 1;
        }
        drop(w);
        for &p in &self.0.borrow().tainted {
            out.set(p);
        }
        Ok(())
    }
    fn census(
        &mut self,
        round: u32,
        frames: &DirtyBitmap,
    ) -> Result<Option<CensusCounts>, PortError> {
        let mut w = self.0.borrow_mut();
        let suspended = w.suspended;
        w.census.push((round, frames.count(), suspended));
        // A failing measurement never fails the migration (round 2's
        // fails, round 3's finds nothing to say); the others count every
        // frame as user.
        match round {
            2 => Err(PortError::Xen(EIO)),
            3 => Ok(None),
            _ => Ok(Some(CensusCounts {
                round,
                asked: frames.count(),
                user: frames.count(),
                ..CensusCounts::default()
            })),
        }
    }
    fn free_frames(&mut self, among: &DirtyBitmap, out: &mut DirtyBitmap) -> Result<(), PortError> {
        self.0.borrow_mut().free_asked.push(among.count());
        let w = self.0.borrow();
        for &p in w
            .free_at_start
            .iter()
            .chain(w.suspended.then_some(&w.free).into_iter().flatten())
        {
            out.set(p);
        }
        Ok(())
    }
}

fn go(w: &Rc<RefCell<World>>, mode: Mode, policy: &mut dyn Policy) -> Summary {
    let (mut a, mut b, mut c, d, mut e) = (
        P(w.clone()),
        P(w.clone()),
        P(w.clone()),
        P(w.clone()),
        P(w.clone()),
    );
    let mut seen = vec![];
    let s = migrate(
        Ports {
            memory: &mut a,
            log: &mut b,
            sink: &mut c,
            clock: &d,
            oracle: &mut e,
        },
        mode,
        policy,
        &mut |r| seen.push(*r),
    )
    .unwrap();
    assert_eq!(seen, s.rounds);
    s
}

#[test]
fn baseline_runs_to_the_round_cap_and_ends_consistent() {
    let w = World::new(3000, (100..200).collect());
    let s = go(&w, Mode::Baseline, &mut Xen33::default());
    assert_eq!(s.rounds.len(), 30);
    assert_eq!(s.rounds[0].sent, 3000);
    assert!(
        s.rounds[1..].iter().all(|r| r.sent == 100),
        "{:?}",
        s.rounds
    );
    assert!(s.rounds.last().unwrap().last);
    let w = w.borrow();
    assert_eq!(w.pages, w.dest);
    for b in &w.batches {
        assert!(b.len() <= BATCH && b.windows(2).all(|x| x[0] < x[1]));
    }
}

#[test]
fn xen4x_stops_after_five_live_rounds() {
    let w = World::new(3000, (100..200).collect());
    let s = go(&w, Mode::Baseline, &mut Xen4x::default());
    assert_eq!(s.rounds.len(), 6);
    let w = w.borrow();
    assert_eq!(w.pages, w.dest);
}

#[test]
fn dependency_aware_freezes_and_skips_free_pages() {
    let w = World::new(3000, (100..200).collect());
    // Pages 10..20 are freed (and zeroed) as the guest suspends.
    w.borrow_mut().free = (10..20).collect();
    let s = go(&w, Mode::DependencyAware, &mut Xen33::default());
    assert_eq!(s.frozen_groups, 1);
    // Frozen before logging: the writer's last writes are read by round 1.
    assert_eq!(w.borrow().frozen_at_log_enable, Some(true));
    // Xen 3.3 stops after a round that sent < 50 pages: round 2 sent none.
    assert_eq!(s.rounds.len(), 3);
    assert_eq!(
        s.rounds[1].dirty, 0,
        "frozen dirtier: nothing dirty after round 1"
    );
    assert_eq!(
        (
            s.rounds[2].dirty,
            s.rounds[2].sent,
            s.rounds[2].skipped_free
        ),
        (10, 0, 10)
    );
    assert_eq!(w.borrow().dest[12], 0);
    assert_eq!(s.rounds[0].skipped_free, 0, "nothing free in round 1");
    // One taint walk, in round 1: later ones would decide nothing and
    // lengthen the rounds (the copy round's, the downtime); their pages
    // count tainted.
    assert_eq!(w.borrow().taint_walks, 1);
    assert_eq!(w.borrow().suspended_taint_walks, 0);
    assert!(s.rounds[1..].iter().all(|r| r.dirty_tainted == r.dirty));
    // Asked about every page in round 1, and only the copy round's dirty
    // pages while suspended.
    assert_eq!(w.borrow().free_asked, vec![3000, 10]);
    let w = w.borrow();
    assert_eq!(w.pages, w.dest);
}

#[test]
fn dependency_aware_sends_pages_free_in_round_1_as_zero_pages() {
    let w = World::new(3000, (100..200).collect());
    w.borrow_mut().free_at_start = (2000..2100).collect();
    let s = go(&w, Mode::DependencyAware, &mut Xen33::default());
    assert_eq!(
        (
            s.rounds[0].dirty,
            s.rounds[0].sent,
            s.rounds[0].skipped_free
        ),
        (3000, 2900, 100)
    );
    let w = w.borrow();
    // Never copied; the destination holds zero there.
    assert!(w
        .batches
        .iter()
        .flatten()
        .all(|p| !(2000..2100).contains(p)));
    assert!((2000..2100).all(|p| w.dest[p] == 0));
    // Everything else arrived as the guest left it.
    assert!((0..3000)
        .filter(|p| !(2000..2100).contains(p))
        .all(|p| w.pages[p] == w.dest[p]));
    // Baseline copies them all.
    drop(w);
    let w = World::new(3000, (100..200).collect());
    w.borrow_mut().free_at_start = (2000..2100).collect();
    let s = go(&w, Mode::Baseline, &mut Xen33::default());
    assert_eq!((s.rounds[0].sent, s.rounds[0].skipped_free), (3000, 0));
}

#[test]
fn paper_analysis_counts_tainted_and_literal_rule_breaks() {
    let w = World::new(3000, (100..200).collect());
    w.borrow_mut().tainted = (150..160).collect();
    let s = go(&w, Mode::PaperAnalysis, &mut Xen4x::default());
    assert!(s.rounds[1..]
        .iter()
        .all(|r| r.dirty == 100 && r.dirty_tainted == 10));
    // The paper's measurement covers the copy round too.
    assert_eq!(w.borrow().suspended_taint_walks, 1);
    assert_eq!(w.borrow().pages, w.borrow().dest);
    // The census of each live round's dirty tainted pages, not of the copy
    // round (it would lengthen the downtime): that set comes back in the
    // summary, for the caller to count after the handoff.
    let census = w.borrow().census.clone();
    assert_eq!(census.len(), s.rounds.len() - 1);
    assert!(census
        .iter()
        .enumerate()
        .all(|(i, &c)| c == (i as u32 + 1, 10, false)));
    // The counts the oracle could give come back in round order; the
    // failed and empty ones are simply missing.
    let kept: Vec<(u32, u64, u64)> = s
        .census
        .iter()
        .map(|c| (c.round, c.asked, c.user))
        .collect();
    let want: Vec<(u32, u64, u64)> = (1..s.rounds.len() as u32)
        .filter(|r| *r != 2 && *r != 3)
        .map(|r| (r, 10, 10))
        .collect();
    assert!(s.rounds.len() >= 4, "rounds {}", s.rounds.len());
    assert_eq!(kept, want);
    let (round, set) = s.copy_round_census.as_ref().expect("copy round kept");
    assert_eq!(*round as usize, s.rounds.len());
    assert_eq!(set.count(), s.rounds.last().unwrap().dirty_tainted);
    assert!(set.iter_ones().all(|p| (150..160).contains(&p)));

    let w = World::new(3000, (100..200).collect());
    w.borrow_mut().tainted = (150..160).collect();
    let s = go(&w, Mode::PaperLiteralUnsound, &mut Xen4x::default());
    assert!(
        w.borrow().census.is_empty() && s.copy_round_census.is_none(),
        "a census only in paper-analysis mode"
    );
    assert!(s.rounds[1..]
        .iter()
        .all(|r| r.sent == 10 && r.skipped_untainted == 90));
    let w = w.borrow();
    // Untainted hot pages hold values from round 1; tainted ones are fresh.
    assert_ne!(w.pages, w.dest);
    assert_eq!(w.pages[155], w.dest[155]);
    assert_ne!(w.pages[105], w.dest[105]);
}

#[test]
fn sink_failure_is_reported() {
    struct Bad;
    impl PageSink for Bad {
        fn send_pages(&mut self, _: &[u64]) -> Result<u64, PortError> {
            Err(PortError::Xen(EIO))
        }
        fn zero_pages(&mut self, _: &[u64]) -> Result<u64, PortError> {
            Ok(0)
        }
    }
    let w = World::new(10, vec![]);
    let (mut a, mut b, d) = (P(w.clone()), P(w.clone()), P(w.clone()));
    let r = migrate(
        Ports {
            memory: &mut a,
            log: &mut b,
            sink: &mut Bad,
            clock: &d,
            oracle: &mut NoOracle,
        },
        Mode::Baseline,
        &mut Xen4x::default(),
        &mut |_| {},
    );
    assert_eq!(r, Err(EngineError::Sink(PortError::Xen(EIO))));
}
