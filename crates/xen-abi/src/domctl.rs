//! domctl/sysctl interface versions per Xen release, and the domctl
//! structures depmig uses.
//!
//! The `domctl` and `sysctl` hypercalls carry an interface version that
//! changes between releases without notice; a caller using the wrong one is
//! refused (or worse, misread). depmig supports exactly the releases in
//! [`RELEASES`] and refuses the rest: the appliance at boot, the dom0 tools
//! when they open `/dev/xen/privcmd`.
//!
//! The numbers are those of `xen/include/public/domctl.h` and `sysctl.h` at
//! each release's tags; they are the same at every point release of a line
//! (4.17.0–4.17.7, 4.19.0–4.19.6, 4.20.0–4.20.4, 4.21.0–4.21.2, 4.22.0).
//! 4.18 (domctl 0x16) is not supported.
//!
//! Every structure below has the same x86-64 layout, and every command and
//! flag the same value, in all of those releases; the interface bumps came
//! from what depmig does not use or already copes with: 0x16 (4.18, kept by
//! 4.19) for getdomaininfo's new answer to a missing domain, 0x17 (4.19)
//! for Arm's `dt_overlay` domctl and `createdomain`'s altp2m field, 0x18
//! (4.22) for Arm's `xen_arch_domainconfig`, sysctl 0x16 (4.21) for the
//! livepatch list. `tests/c_headers.rs` holds each layout against the
//! headers of every release in the table, so one set of types serves them
//! all. The getdomaininfo change: from 4.18 on, an id no domain has fails
//! with ESRCH, where 4.17 answered for the next domain up; callers treat
//! both as "no such domain".

use crate::version::Version;

/// The interface versions of one supported release.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Interfaces {
    /// `XEN_DOMCTL_INTERFACE_VERSION`.
    pub domctl: u32,
    /// `XEN_SYSCTL_INTERFACE_VERSION`.
    pub sysctl: u32,
}

/// A Xen release depmig speaks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Release {
    /// The release line (`XENVER_version`: major and minor only).
    pub version: Version,
    /// Its domctl and sysctl interface versions.
    pub interfaces: Interfaces,
}

const fn release(major: u16, minor: u16, domctl: u32, sysctl: u32) -> Release {
    Release {
        version: Version { major, minor },
        interfaces: Interfaces { domctl, sysctl },
    }
}

/// Every supported release, oldest first, with its interface versions.
pub const RELEASES: [Release; 5] = [
    release(4, 17, 0x15, 0x15),
    release(4, 19, 0x17, 0x15),
    release(4, 20, 0x17, 0x15),
    release(4, 21, 0x17, 0x16),
    release(4, 22, 0x18, 0x16),
];

/// The supported release of `version`, or `None` for a release this code
/// does not know (and must refuse).
pub fn release_for(version: Version) -> Option<&'static Release> {
    RELEASES.iter().find(|r| r.version == version)
}

/// The domctl/sysctl versions of `version`, or `None` for a release this
/// code does not know (and must refuse).
pub fn interfaces_for(version: Version) -> Option<Interfaces> {
    release_for(version).map(|r| r.interfaces)
}

/// The supported releases as text ("4.17, 4.19, …"), for the message that
/// refuses another one.
#[derive(Clone, Copy, Debug)]
pub struct SupportedReleases;

impl core::fmt::Display for SupportedReleases {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        for (i, r) in RELEASES.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{}", r.version)?;
        }
        Ok(())
    }
}

// The structures below are those of every release in `RELEASES` (see the
// module's notes); a domctl must carry the running release's
// `Interfaces::domctl` in its header.

/// `XEN_DOMCTL_pausedomain`.
pub const XEN_DOMCTL_PAUSEDOMAIN: u32 = 3;
/// `XEN_DOMCTL_unpausedomain`.
pub const XEN_DOMCTL_UNPAUSEDOMAIN: u32 = 4;
/// `XEN_DOMCTL_getdomaininfo`.
pub const XEN_DOMCTL_GETDOMAININFO: u32 = 5;
/// `XEN_DOMCTL_shadow_op`: log-dirty control.
pub const XEN_DOMCTL_SHADOW_OP: u32 = 10;
/// `XEN_DOMCTL_gethvmcontext`.
pub const XEN_DOMCTL_GETHVMCONTEXT: u32 = 33;
/// `XEN_DOMCTL_sethvmcontext`.
pub const XEN_DOMCTL_SETHVMCONTEXT: u32 = 34;
/// `XEN_DOMCTL_resumedomain`: end a suspend (clear the shutdown state).
pub const XEN_DOMCTL_RESUMEDOMAIN: u32 = 27;
/// `XEN_DOMCTL_gettscinfo`.
pub const XEN_DOMCTL_GETTSCINFO: u32 = 59;
/// `XEN_DOMCTL_settscinfo`.
pub const XEN_DOMCTL_SETTSCINFO: u32 = 60;

/// Shadow op: turn log-dirty (and shadow modes) off.
pub const SHADOW_OP_OFF: u32 = 0;
/// Shadow op: read and clear the dirty bitmap.
pub const SHADOW_OP_CLEAN: u32 = 11;
/// Shadow op: read the dirty bitmap without clearing it.
pub const SHADOW_OP_PEEK: u32 = 12;
/// Shadow op: enable a mode (`mode` = `SHADOW_ENABLE_*`).
pub const SHADOW_OP_ENABLE: u32 = 32;
/// Mode bit for `SHADOW_OP_ENABLE`: log-dirty.
pub const SHADOW_ENABLE_LOG_DIRTY: u32 = 1 << 2;
/// Flag for CLEAN/PEEK: this is the final pass (the guest is paused).
pub const SHADOW_LOGDIRTY_FINAL: u32 = 1 << 0;

/// `XEN_DOMINF_shutdown`: the domain has shut down (reason in bits 16..24).
pub const DOMINF_SHUTDOWN: u32 = 1 << 2;
/// `XEN_DOMINF_paused`.
pub const DOMINF_PAUSED: u32 = 1 << 3;
/// `XEN_DOMINF_hvm_guest` (set for PVH too).
pub const DOMINF_HVM_GUEST: u32 = 1 << 1;
/// `XEN_DOMINF_dying`: the domain is being destroyed.
pub const DOMINF_DYING: u32 = 1 << 0;
/// `XEN_DOMINF_blocked`: every vCPU is blocked.
pub const DOMINF_BLOCKED: u32 = 1 << 4;
/// `XEN_DOMINF_running`: a vCPU is running.
pub const DOMINF_RUNNING: u32 = 1 << 5;
/// `XEN_DOMINF_shutdownshift`: where the shutdown reason sits in the flags.
pub const DOMINF_SHUTDOWN_SHIFT: u32 = 16;
/// `XEN_DOMINF_shutdownmask`: the shutdown reason's mask (after shifting).
pub const DOMINF_SHUTDOWN_MASK: u32 = 255;

/// The `SHUTDOWN_*` reason in getdomaininfo `flags`, if the domain has shut
/// down (`XEN_DOMINF_shutdown`).
pub const fn dominf_shutdown_reason(flags: u32) -> Option<u32> {
    if flags & DOMINF_SHUTDOWN == 0 {
        None
    } else {
        Some((flags >> DOMINF_SHUTDOWN_SHIFT) & DOMINF_SHUTDOWN_MASK)
    }
}

/// Bytes of the payload union of `struct xen_domctl`.
pub const DOMCTL_PAYLOAD: usize = 128;

/// `struct xen_domctl`: header plus the payload union as raw bytes.
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
pub struct Domctl {
    /// `XEN_DOMCTL_*`.
    pub cmd: u32,
    /// Must be the running release's domctl interface version.
    pub interface_version: u32,
    /// Target domain.
    pub domain: crate::DomId,
    /// Padding.
    pub _pad: [u16; 3],
    /// The command's argument struct, at its start.
    pub payload: [u8; DOMCTL_PAYLOAD],
}
crate::assert_layout!(
    Domctl,
    size = 144,
    cmd = 0,
    interface_version = 4,
    domain = 8,
    payload = 16
);

impl Default for Domctl {
    fn default() -> Self {
        Domctl {
            cmd: 0,
            interface_version: 0,
            domain: 0,
            _pad: [0; 3],
            payload: [0; DOMCTL_PAYLOAD],
        }
    }
}

/// `xen_domctl_getdomaininfo`.
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
pub struct GetDomainInfo {
    /// Domain id.
    pub domain: crate::DomId,
    /// Padding.
    pub pad1: u16,
    /// `XEN_DOMINF_*`.
    pub flags: u32,
    /// Pages allocated.
    pub tot_pages: u64,
    /// Page limit.
    pub max_pages: u64,
    /// Outstanding claim.
    pub outstanding_pages: u64,
    /// Shared pages.
    pub shr_pages: u64,
    /// Paged-out pages.
    pub paged_pages: u64,
    /// Frame of the domain's shared_info.
    pub shared_info_frame: u64,
    /// CPU time used (ns).
    pub cpu_time: u64,
    /// Online vCPUs.
    pub nr_online_vcpus: u32,
    /// Highest vCPU id.
    pub max_vcpu_id: u32,
    /// FLASK security id.
    pub ssidref: u32,
    /// Toolstack handle (UUID).
    pub handle: [u8; 16],
    /// CPU pool.
    pub cpupool: u32,
    /// Guest physical address width.
    pub gpaddr_bits: u8,
    /// Padding.
    pub pad2: [u8; 7],
    /// `xen_arch_domainconfig.emulation_flags`.
    pub emulation_flags: u32,
    /// `xen_arch_domainconfig.misc_flags`.
    pub misc_flags: u32,
}
crate::assert_layout!(
    GetDomainInfo,
    size = 112,
    flags = 4,
    tot_pages = 8,
    shared_info_frame = 48,
    cpu_time = 56,
    nr_online_vcpus = 64,
    ssidref = 72,
    handle = 76,
    cpupool = 92,
    gpaddr_bits = 96,
    emulation_flags = 104
);

/// `xen_domctl_shadow_op`.
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
pub struct ShadowOp {
    /// `SHADOW_OP_*`.
    pub op: u32,
    /// ENABLE: `SHADOW_ENABLE_*`; CLEAN/PEEK: `SHADOW_LOGDIRTY_*`.
    pub mode: u32,
    /// Shadow memory in MiB (GET/SET_ALLOCATION).
    pub mb: u32,
    /// Padding.
    pub _pad: u32,
    /// Guest address of the dirty bitmap (CLEAN/PEEK).
    pub dirty_bitmap: u64,
    /// Bitmap size in pages (bits); updated by Xen.
    pub pages: u64,
    /// Out: faults since the last CLEAN.
    pub fault_count: u32,
    /// Out: pages dirtied since the last CLEAN.
    pub dirty_count: u32,
}
crate::assert_layout!(
    ShadowOp,
    size = 40,
    op = 0,
    mode = 4,
    mb = 8,
    dirty_bitmap = 16,
    pages = 24,
    fault_count = 32,
    dirty_count = 36
);

/// `xen_domctl_hvmcontext`.
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
pub struct HvmContext {
    /// In: buffer size; out: bytes filled (or needed, with a null buffer).
    pub size: u32,
    /// Padding.
    pub _pad: u32,
    /// Guest address of the buffer, or 0 to ask for the size.
    pub buffer: u64,
}
crate::assert_layout!(HvmContext, size = 16, size = 0, buffer = 8);

/// `xen_domctl_tsc_info` (gettscinfo / settscinfo).
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    zerocopy::FromBytes,
    zerocopy::IntoBytes,
    zerocopy::Immutable,
    zerocopy::KnownLayout,
)]
#[repr(C)]
pub struct TscInfo {
    /// `XEN_CPUID_TSC_MODE_*` (0 default, 1 always emulate, 2 never emulate).
    pub tsc_mode: u32,
    /// Guest TSC frequency in kHz.
    pub gtsc_khz: u32,
    /// Incremented on each restore (guests may watch it).
    pub incarnation: u32,
    /// Padding.
    pub pad: u32,
    /// Elapsed guest time in ns (emulated TSC modes).
    pub elapsed_nsec: u64,
}
crate::assert_layout!(
    TscInfo,
    size = 24,
    tsc_mode = 0,
    gtsc_khz = 4,
    incarnation = 8,
    pad = 12,
    elapsed_nsec = 16
);

#[cfg(test)]
mod tests {
    use super::*;

    fn v(major: u16, minor: u16) -> Version {
        Version { major, minor }
    }

    #[test]
    fn each_release_has_its_headers_numbers() {
        let i = |domctl, sysctl| Some(Interfaces { domctl, sysctl });
        assert_eq!(interfaces_for(v(4, 17)), i(0x15, 0x15));
        assert_eq!(interfaces_for(v(4, 19)), i(0x17, 0x15));
        assert_eq!(interfaces_for(v(4, 20)), i(0x17, 0x15));
        assert_eq!(interfaces_for(v(4, 21)), i(0x17, 0x16));
        assert_eq!(interfaces_for(v(4, 22)), i(0x18, 0x16));
    }

    #[test]
    fn unknown_releases_are_refused() {
        for (major, minor) in [
            (4, 16),
            (4, 18),
            (4, 23),
            (4, 0),
            (5, 0),
            (5, 17),
            (5, 20),
            (3, 4),
        ] {
            assert_eq!(interfaces_for(v(major, minor)), None, "{major}.{minor}");
            assert_eq!(release_for(v(major, minor)), None, "{major}.{minor}");
        }
    }

    #[test]
    fn releases_are_listed_once_oldest_first() {
        assert!(RELEASES.windows(2).all(|w| w[0].version < w[1].version));
        let mut s = std::string::String::new();
        core::fmt::write(&mut s, format_args!("{SupportedReleases}")).unwrap();
        assert_eq!(s, "4.17, 4.19, 4.20, 4.21, 4.22");
    }

    #[test]
    fn shutdown_reason_only_when_shut_down() {
        assert_eq!(dominf_shutdown_reason(0x0002_0000), None);
        assert_eq!(
            dominf_shutdown_reason(DOMINF_SHUTDOWN | (2 << DOMINF_SHUTDOWN_SHIFT)),
            Some(2)
        );
        assert_eq!(
            dominf_shutdown_reason(DOMINF_SHUTDOWN | DOMINF_PAUSED | (0x1ff << 16)),
            Some(0xff)
        );
    }
}
