//! The shared_info page: event bitmaps, vCPU 0's upcall state and pvclock.
//!
//! Xen writes this page at any time, so it is only touched through atomics
//! and volatile reads at the offsets `xen_abi::shared_info` fixes, never
//! through Rust references to its structs.

use core::mem::offset_of;
use core::sync::atomic::{fence, AtomicU32, AtomicU64, AtomicU8, Ordering};

use xen_abi::shared_info::{SharedInfo as Layout, VcpuInfo, VcpuTimeInfo};

/// The mapped shared_info page.
#[derive(Clone, Copy, Debug)]
pub struct SharedInfo {
    base: u64,
}

impl SharedInfo {
    /// Wraps the page mapped at `base`.
    ///
    /// # Safety
    /// 1. `base` is the page-aligned address where Xen mapped shared_info,
    ///    and it stays mapped for the rest of the run.
    pub unsafe fn new(base: u64) -> Self {
        SharedInfo { base }
    }

    fn atomic_u64(&self, off: usize) -> &AtomicU64 {
        // SAFETY: `off` is 8-aligned and inside the page (callers use layout
        // offsets); the page lives for the run (constructor precondition).
        unsafe { &*((self.base + off as u64) as *const AtomicU64) }
    }

    /// Word `w` (0..64) of the 2-level pending bitmap.
    pub fn pending(&self, w: usize) -> &AtomicU64 {
        self.atomic_u64(offset_of!(Layout, evtchn_pending) + 8 * (w % 64))
    }

    /// Word `w` (0..64) of the 2-level mask bitmap.
    pub fn mask(&self, w: usize) -> &AtomicU64 {
        self.atomic_u64(offset_of!(Layout, evtchn_mask) + 8 * (w % 64))
    }

    /// Address of vCPU 0's `evtchn_upcall_pending` byte.
    pub fn upcall_pending_addr(&self) -> u64 {
        self.base + offset_of!(VcpuInfo, evtchn_upcall_pending) as u64
    }

    /// vCPU 0's `evtchn_upcall_pending`.
    pub fn upcall_pending(&self) -> &AtomicU8 {
        // SAFETY: a byte inside the page, which lives for the run.
        unsafe { &*(self.upcall_pending_addr() as *const AtomicU8) }
    }

    /// A consistent copy of vCPU 0's pvclock record (seqlock read).
    pub fn time(&self) -> VcpuTimeInfo {
        let at = self.base + offset_of!(VcpuInfo, time) as u64;
        // SAFETY: `version` is the first u32 of the record, inside the page.
        let version = unsafe { &*(at as *const AtomicU32) };
        let mut t = VcpuTimeInfo::default();
        for _ in 0..1000 {
            let v1 = version.load(Ordering::Acquire);
            // SAFETY: the record is inside the page; a torn read is detected
            // by the version check below and retried.
            t = unsafe { core::ptr::read_volatile(at as *const VcpuTimeInfo) };
            fence(Ordering::Acquire);
            if v1 & 1 == 0 && version.load(Ordering::Relaxed) == v1 {
                break;
            }
        }
        t
    }

    /// Xen system time now, in ns: the TSC is read inside the record's
    /// version loop, so record and TSC belong together.
    pub fn system_time_ns(&self) -> u64 {
        let at = self.base + offset_of!(VcpuInfo, time) as u64;
        // SAFETY: `version` is the first u32 of the record, inside the page.
        let version = unsafe { &*(at as *const AtomicU32) };
        let mut t = VcpuTimeInfo::default();
        let mut tsc = 0;
        for _ in 0..1000 {
            let v1 = version.load(Ordering::Acquire);
            // SAFETY: the record is inside the page; a torn read is detected
            // by the version check below and retried.
            t = unsafe { core::ptr::read_volatile(at as *const VcpuTimeInfo) };
            tsc = crate::platform::arch::cpu::rdtsc();
            fence(Ordering::Acquire);
            if v1 & 1 == 0 && version.load(Ordering::Relaxed) == v1 {
                break;
            }
        }
        t.system_time_at(tsc)
    }

    /// Unix time in ns at system time 0 (Xen's wall clock fields, read
    /// under their version counter); `None` if they never settled.
    pub fn boot_wallclock_ns(&self) -> Option<u64> {
        let u32_at = |off: usize| {
            // SAFETY: a 4-aligned u32 inside the page, which lives for the run.
            unsafe { &*((self.base + off as u64) as *const AtomicU32) }
        };
        let version = u32_at(offset_of!(Layout, wc_version));
        for _ in 0..1000 {
            let v1 = version.load(Ordering::Acquire);
            let sec = u32_at(offset_of!(Layout, wc_sec)).load(Ordering::Relaxed) as u64;
            let hi = u32_at(offset_of!(Layout, wc_sec_hi)).load(Ordering::Relaxed) as u64;
            let nsec = u32_at(offset_of!(Layout, wc_nsec)).load(Ordering::Relaxed) as u64;
            fence(Ordering::Acquire);
            if v1 & 1 == 0 && version.load(Ordering::Relaxed) == v1 {
                let secs = hi << 32 | sec;
                return secs.checked_mul(1_000_000_000)?.checked_add(nsec);
            }
        }
        None
    }
}
