//! A monotonic clock: Xen's pvclock when available, else the TSC.

use core::sync::atomic::{AtomicU64, Ordering};

use crate::platform::arch::cpu;

static TSC_AT_BOOT: AtomicU64 = AtomicU64::new(0);
static TSC_HZ: AtomicU64 = AtomicU64::new(1_000_000_000);

/// Records the boot TSC and the TSC frequency CPUID reports (leaf 0x15 or
/// 0x16; 1 GHz assumed when neither says). Returns whether it was reported.
pub fn init() -> bool {
    TSC_AT_BOOT.store(cpu::rdtsc(), Ordering::Relaxed);
    let max = cpu::cpuid(0, 0).eax;
    let mut hz = 0u64;
    if max >= 0x15 {
        let r = cpu::cpuid(0x15, 0);
        if r.eax != 0 && r.ebx != 0 && r.ecx != 0 {
            hz = u64::from(r.ecx) * u64::from(r.ebx) / u64::from(r.eax);
        }
    }
    if hz == 0 && max >= 0x16 {
        hz = u64::from(cpu::cpuid(0x16, 0).eax & 0xFFFF) * 1_000_000;
    }
    if hz != 0 {
        TSC_HZ.store(hz, Ordering::Relaxed);
    }
    hz != 0
}

/// The latest time handed out, so that no reader ever sees time go back.
static LAST_NS: AtomicU64 = AtomicU64::new(0);

/// `t`, or the latest time already handed out if that is later: every
/// deadline and timeout in the image compares against one clock that never
/// runs backwards (a time record read on one CPU with the TSC of another can
/// be a little behind).
pub fn monotonic(t: u64) -> u64 {
    let prev = LAST_NS.fetch_max(t, Ordering::Relaxed);
    if t < prev {
        BACKWARD_STEPS.fetch_add(1, Ordering::Relaxed);
        MAX_BACKWARD_NS.fetch_max(prev - t, Ordering::Relaxed);
    }
    prev.max(t)
}

/// Readings that were behind one already handed out (and were held at it).
static BACKWARD_STEPS: AtomicU64 = AtomicU64::new(0);
/// The largest such step back, ns.
static MAX_BACKWARD_NS: AtomicU64 = AtomicU64::new(0);

/// `(readings held back, largest step back in ns)` so far.
pub fn backward_steps() -> (u64, u64) {
    (
        BACKWARD_STEPS.load(Ordering::Relaxed),
        MAX_BACKWARD_NS.load(Ordering::Relaxed),
    )
}

/// Nanoseconds: Xen system time under Xen, else TSC time since boot, as
/// read, without the monotonic clamp (the self-test compares the two).
pub fn raw_ns() -> u64 {
    if let Some(si) = crate::platform::xen::try_shared_info() {
        return si.system_time_ns();
    }
    let ticks = cpu::rdtsc().wrapping_sub(TSC_AT_BOOT.load(Ordering::Relaxed));
    let hz = TSC_HZ.load(Ordering::Relaxed).max(1);
    ((u128::from(ticks) * 1_000_000_000) / u128::from(hz)) as u64
}

/// Nanoseconds, never less than a time already handed out.
pub fn now_ns() -> u64 {
    monotonic(raw_ns())
}
