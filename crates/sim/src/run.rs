//! Runs depmig's engine against the simulated guest: the engine's ports
//! implemented over one shared world (guest, destination image, link).

use std::cell::RefCell;
use std::rc::Rc;

use depmig_precopy::{
    migrate, Clock, DependencyOracle, DirtyBitmap, DirtyLog, GuestMemory, Mode, PageSink, Policy,
    PortError, Ports, Summary,
};

use crate::check::{check, Verdict};
use crate::guest::Guest;
use crate::workloads::{Workload, LINK_BYTES_PER_S};

/// Guest, destination and link.
#[derive(Debug)]
pub struct World {
    /// The source guest.
    pub guest: Guest,
    /// The destination image (a fresh domain holds zero everywhere).
    pub dest: Vec<u64>,
    /// Link bandwidth.
    pub bytes_per_s: f64,
}

impl World {
    /// Lets the guest run for as long as `bytes` take on the link.
    pub fn transfer(&mut self, bytes: u64) {
        let ns = (bytes as f64 / self.bytes_per_s * 1e9) as u64;
        self.guest.run(ns.max(1));
    }
}

/// One handle per port over the shared world.
#[derive(Clone, Debug)]
pub struct Handle(pub Rc<RefCell<World>>);

/// PAGE_DATA record header plus count/reserved.
const RECORD_OVERHEAD: u64 = 16;

impl GuestMemory for Handle {
    fn nr_pfns(&self) -> u64 {
        self.0.borrow().guest.frames()
    }
    fn populated(&mut self, out: &mut DirtyBitmap) -> Result<(), PortError> {
        // Fully populated RAM: Xen sends every frame in round 1.
        out.set_all();
        Ok(())
    }
}

impl DirtyLog for Handle {
    fn enable(&mut self) -> Result<(), PortError> {
        let mut w = self.0.borrow_mut();
        w.guest.dirty.clear_all();
        w.guest.logdirty = true;
        w.guest.start_recording();
        Ok(())
    }
    fn collect(&mut self, out: &mut DirtyBitmap) -> Result<(), PortError> {
        let mut w = self.0.borrow_mut();
        out.or_with(&w.guest.dirty);
        w.guest.dirty.clear_all();
        Ok(())
    }
    fn suspend(&mut self) -> Result<(), PortError> {
        self.0.borrow_mut().guest.suspended = true;
        Ok(())
    }
}

impl PageSink for Handle {
    fn send_pages(&mut self, pfns: &[u64]) -> Result<u64, PortError> {
        let mut w = self.0.borrow_mut();
        for &p in pfns {
            let c = w.guest.content[p as usize];
            w.dest[p as usize] = c;
        }
        let bytes = RECORD_OVERHEAD + pfns.len() as u64 * (8 + 4096);
        w.transfer(bytes);
        Ok(bytes)
    }
    fn zero_pages(&mut self, pfns: &[u64]) -> Result<u64, PortError> {
        let mut w = self.0.borrow_mut();
        for &p in pfns {
            w.dest[p as usize] = 0;
        }
        let bytes = RECORD_OVERHEAD + pfns.len() as u64 * 8;
        w.transfer(bytes);
        Ok(bytes)
    }
}

impl Clock for Handle {
    fn now_ns(&self) -> u64 {
        self.0.borrow().guest.now_ns
    }
}

impl DependencyOracle for Handle {
    fn freeze_quiet_groups(&mut self) -> Result<u32, PortError> {
        Ok(self.0.borrow_mut().guest.freeze_quiet())
    }
    fn thaw_all(&mut self) -> Result<(), PortError> {
        for p in &mut self.0.borrow_mut().guest.procs {
            p.frozen = false;
        }
        Ok(())
    }
    fn tainted_frames(&mut self, out: &mut DirtyBitmap) -> Result<(), PortError> {
        self.0.borrow_mut().guest.tainted_frames(out);
        Ok(())
    }
    fn free_frames(
        &mut self,
        _among: &DirtyBitmap,
        out: &mut DirtyBitmap,
    ) -> Result<(), PortError> {
        self.0.borrow().guest.free_frames(out);
        Ok(())
    }
}

/// One simulated migration's result.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// Workload.
    pub workload: Workload,
    /// Mode.
    pub mode: Mode,
    /// Policy name.
    pub policy: &'static str,
    /// Engine summary.
    pub summary: Summary,
    /// Consistency verdict.
    pub verdict: Verdict,
    /// Frozen groups thawed by an interaction during the migration.
    pub thawed: u32,
}

/// Simulates one migration of `workload` at `scale`.
pub fn simulate(
    workload: Workload,
    scale: f64,
    seed: u64,
    mode: Mode,
    policy: &mut dyn Policy,
) -> Outcome {
    let guest = workload.build(scale, seed);
    let n = guest.frames() as usize;
    let world = Rc::new(RefCell::new(World {
        guest,
        dest: vec![0; n],
        bytes_per_s: LINK_BYTES_PER_S,
    }));
    let (mut m, mut l, mut s, c, mut o) = (
        Handle(world.clone()),
        Handle(world.clone()),
        Handle(world.clone()),
        Handle(world.clone()),
        Handle(world.clone()),
    );
    let result = migrate(
        Ports {
            memory: &mut m,
            log: &mut l,
            sink: &mut s,
            clock: &c,
            oracle: &mut o,
        },
        mode,
        policy,
        &mut |_| {},
    );
    // The simulated ports never fail.
    let summary = match result {
        Ok(s) => s,
        Err(e) => panic!("simulated ports cannot fail: {e:?}"),
    };
    let w = world.borrow();
    let verdict = check(&w.guest, &w.dest);
    Outcome {
        workload,
        mode,
        policy: policy.name(),
        summary,
        verdict,
        thawed: w.guest.thawed,
    }
}
