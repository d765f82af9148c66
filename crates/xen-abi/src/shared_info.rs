//! The shared_info page and per-vCPU info (`xen.h`, `arch-x86/xen.h`).
//!
//! Xen writes these concurrently; the image reads them with volatile or
//! atomic accesses at the offsets defined here rather than through
//! references to the structs.

/// vCPUs with a `vcpu_info` slot in shared_info (`XEN_LEGACY_MAX_VCPUS`).
pub const LEGACY_MAX_VCPUS: usize = 32;

/// `vcpu_time_info`: the pvclock record.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    zerocopy::FromBytes,
    zerocopy::IntoBytes,
    zerocopy::Immutable,
    zerocopy::KnownLayout,
)]
#[repr(C)]
pub struct VcpuTimeInfo {
    /// Odd while Xen updates the record.
    pub version: u32,
    /// Padding.
    pub pad0: u32,
    /// TSC at the last update.
    pub tsc_timestamp: u64,
    /// System time (ns since boot) at the last update.
    pub system_time: u64,
    /// TSC-to-ns multiplier (32.32 fixed point, after the shift).
    pub tsc_to_system_mul: u32,
    /// Power-of-two shift applied to the TSC delta first.
    pub tsc_shift: i8,
    /// `XEN_PVCLOCK_*` flags.
    pub flags: u8,
    /// Padding.
    pub pad1: [u8; 2],
}
crate::assert_layout!(
    VcpuTimeInfo,
    size = 32,
    version = 0,
    tsc_timestamp = 8,
    system_time = 16,
    tsc_to_system_mul = 24,
    tsc_shift = 28,
    flags = 29
);

/// The furthest a TSC reading behind the record's stamp is extrapolated
/// backwards (1 s): beyond it the stamp's time stands. In the rig, under
/// heavy load, readings came out more than 10 s behind the stamp, and the
/// time read as zero for 14 s.
pub const MAX_BACKWARD_NS: u64 = 1_000_000_000;

impl VcpuTimeInfo {
    /// System time in ns at TSC value `tsc`, by Xen's formula, extended
    /// to a TSC reading older than the record's stamp (seen under nested
    /// emulation: a TSC read a little behind the stamp). That reading is
    /// extrapolated backwards from the stamp, by at most
    /// [`MAX_BACKWARD_NS`]; taken as an unsigned delta it would wrap and
    /// the time would leap centuries ahead.
    pub fn system_time_at(&self, tsc: u64) -> u64 {
        let scale = |mut delta: u64| {
            if self.tsc_shift >= 0 {
                delta <<= self.tsc_shift.unsigned_abs() as u32;
            } else {
                delta >>= self.tsc_shift.unsigned_abs() as u32;
            }
            ((u128::from(delta) * u128::from(self.tsc_to_system_mul)) >> 32) as u64
        };
        if tsc >= self.tsc_timestamp {
            self.system_time
                .wrapping_add(scale(tsc - self.tsc_timestamp))
        } else {
            let back = scale(self.tsc_timestamp - tsc);
            if back > MAX_BACKWARD_NS {
                // Not a little behind: this TSC is not comparable with the
                // stamp's, and extrapolating would drop the time by seconds
                // or to zero. The stamp's own time is the best known.
                self.system_time
            } else {
                self.system_time.saturating_sub(back)
            }
        }
    }
}

/// `vcpu_info`.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    zerocopy::FromBytes,
    zerocopy::IntoBytes,
    zerocopy::Immutable,
    zerocopy::KnownLayout,
)]
#[repr(C)]
pub struct VcpuInfo {
    /// Set by Xen when an event is pending for this vCPU.
    pub evtchn_upcall_pending: u8,
    /// Set by the guest to mask upcalls.
    pub evtchn_upcall_mask: u8,
    /// Padding.
    pub pad: [u8; 6],
    /// 2-level ABI: which words of `evtchn_pending` have pending bits.
    pub evtchn_pending_sel: u64,
    /// `arch_vcpu_info`: cr2 and padding.
    pub arch: [u64; 2],
    /// The pvclock record.
    pub time: VcpuTimeInfo,
}
crate::assert_layout!(
    VcpuInfo,
    size = 64,
    evtchn_upcall_pending = 0,
    evtchn_upcall_mask = 1,
    evtchn_pending_sel = 8,
    arch = 16,
    time = 32
);

/// `shared_info` (x86-64).
#[derive(
    Clone,
    Copy,
    Debug,
    zerocopy::FromBytes,
    zerocopy::IntoBytes,
    zerocopy::Immutable,
    zerocopy::KnownLayout,
)]
#[repr(C)]
pub struct SharedInfo {
    /// Per-vCPU info for the first 32 vCPUs.
    pub vcpu_info: [VcpuInfo; LEGACY_MAX_VCPUS],
    /// 2-level ABI pending bitmap.
    pub evtchn_pending: [u64; 64],
    /// 2-level ABI mask bitmap.
    pub evtchn_mask: [u64; 64],
    /// Wallclock: odd while updating.
    pub wc_version: u32,
    /// Wallclock seconds (low 32 bits).
    pub wc_sec: u32,
    /// Wallclock nanoseconds.
    pub wc_nsec: u32,
    /// Wallclock seconds (high 32 bits).
    pub wc_sec_hi: u32,
    /// `arch_shared_info` (PV p2m bookkeeping; unused by PVH).
    pub arch: [u64; 6],
}
crate::assert_layout!(
    SharedInfo,
    size = 3136,
    vcpu_info = 0,
    evtchn_pending = 2048,
    evtchn_mask = 2560,
    wc_version = 3072,
    wc_sec = 3076,
    wc_nsec = 3080,
    wc_sec_hi = 3084,
    arch = 3088
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pvclock_formula() {
        let t = VcpuTimeInfo {
            tsc_timestamp: 1000,
            system_time: 5_000,
            // 0.5 ns per tick after the shift.
            tsc_to_system_mul: 1 << 31,
            tsc_shift: 1,
            ..Default::default()
        };
        // delta 100 << 1 = 200, * 0.5 = 100.
        assert_eq!(t.system_time_at(1100), 5_100);
        let t = VcpuTimeInfo { tsc_shift: -1, ..t };
        // delta 100 >> 1 = 50, * 0.5 = 25.
        assert_eq!(t.system_time_at(1100), 5_025);
        // A TSC behind the stamp is extrapolated backwards (delta -100 >> 1
        // = -50, * 0.5 = -25), not a wrapped huge delta, and still advances.
        assert_eq!(t.system_time_at(900), 4_975);
        assert!(t.system_time_at(950) > t.system_time_at(900));
        assert_eq!(t.system_time_at(0), 5_000 - 250);
        let early = VcpuTimeInfo {
            system_time: 10,
            ..t
        };
        assert_eq!(early.system_time_at(0), 0, "never below zero");
        // Far behind (here 2 s of ticks at 1 ns a tick): the stamp's time.
        let ns = VcpuTimeInfo {
            tsc_timestamp: 3_000_000_000,
            system_time: 20_000_000_000,
            tsc_to_system_mul: 1 << 31,
            tsc_shift: 1,
            ..Default::default()
        };
        assert_eq!(ns.system_time_at(1_000_000_000), 20_000_000_000);
        assert_eq!(ns.system_time_at(2_500_000_000), 19_500_000_000);
    }
}
