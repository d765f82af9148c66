//! `sched_op` sub-operations and their arguments (`sched.h`).

/// Yield the CPU.
pub const SCHEDOP_YIELD: u32 = 0;
/// Block until an event is delivered (events enabled on entry).
pub const SCHEDOP_BLOCK: u32 = 1;
/// Shut the domain down; argument is a [`SchedShutdown`].
pub const SCHEDOP_SHUTDOWN: u32 = 2;
/// Wait for one of a set of ports; argument is a [`SchedPoll`].
pub const SCHEDOP_POLL: u32 = 3;

/// Shutdown reason: power off.
pub const SHUTDOWN_POWEROFF: u32 = 0;
/// Shutdown reason: reboot.
pub const SHUTDOWN_REBOOT: u32 = 1;
/// Shutdown reason: suspend (for migration).
pub const SHUTDOWN_SUSPEND: u32 = 2;
/// Shutdown reason: crash.
pub const SHUTDOWN_CRASH: u32 = 3;

/// `sched_shutdown`: passed by reference (not by value).
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
pub struct SchedShutdown {
    /// One of the `SHUTDOWN_*` reasons.
    pub reason: u32,
}
crate::assert_layout!(SchedShutdown, size = 4, reason = 0);

/// `sched_poll`: wait until one of `nr_ports` ports is pending or `timeout`.
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
pub struct SchedPoll {
    /// Guest address of an array of `evtchn_port_t`.
    pub ports: u64,
    /// Number of ports in the array (at most 128).
    pub nr_ports: u32,
    /// Padding (C leaves it implicit).
    pub _pad: u32,
    /// Absolute system time (ns) to give up at; 0 waits forever.
    pub timeout: u64,
}
crate::assert_layout!(SchedPoll, size = 24, ports = 0, nr_ports = 8, timeout = 16);
