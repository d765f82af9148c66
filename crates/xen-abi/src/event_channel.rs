//! `event_channel_op` sub-operations and arguments (`event_channel.h`).

use crate::{DomId, EvtchnPort};

/// Bind a local port to a remote domain's unbound port.
pub const EVTCHNOP_BIND_INTERDOMAIN: u32 = 0;
/// Bind a virtual IRQ to a new port.
pub const EVTCHNOP_BIND_VIRQ: u32 = 1;
/// Close a port.
pub const EVTCHNOP_CLOSE: u32 = 3;
/// Notify the remote end of a port.
pub const EVTCHNOP_SEND: u32 = 4;
/// Allocate a port that a given remote domain may bind to.
pub const EVTCHNOP_ALLOC_UNBOUND: u32 = 6;
/// Unmask a port, redelivering it if pending.
pub const EVTCHNOP_UNMASK: u32 = 9;

/// Virtual timer: fires at the time set by `set_timer_op`.
pub const VIRQ_TIMER: u32 = 0;

/// Ports the 2-level ABI supports on x86-64 (64 words of 64 bits).
pub const EVTCHN_2L_NR_PORTS: u32 = 64 * 64;

/// `evtchn_alloc_unbound`.
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
pub struct AllocUnbound {
    /// Domain to allocate in (`DOMID_SELF`).
    pub dom: DomId,
    /// Domain allowed to bind the port.
    pub remote_dom: DomId,
    /// Out: the new port.
    pub port: EvtchnPort,
}
crate::assert_layout!(AllocUnbound, size = 8, dom = 0, remote_dom = 2, port = 4);

/// `evtchn_bind_interdomain`.
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
pub struct BindInterdomain {
    /// Domain holding the unbound port.
    pub remote_dom: DomId,
    /// Padding (C leaves it implicit).
    pub _pad: u16,
    /// The remote unbound port.
    pub remote_port: EvtchnPort,
    /// Out: the new local port.
    pub local_port: EvtchnPort,
}
crate::assert_layout!(
    BindInterdomain,
    size = 12,
    remote_dom = 0,
    remote_port = 4,
    local_port = 8
);

/// `evtchn_bind_virq`.
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
pub struct BindVirq {
    /// The virtual IRQ (`VIRQ_*`).
    pub virq: u32,
    /// vCPU to deliver on.
    pub vcpu: u32,
    /// Out: the new port.
    pub port: EvtchnPort,
}
crate::assert_layout!(BindVirq, size = 12, virq = 0, vcpu = 4, port = 8);

/// Argument of `EVTCHNOP_close`, `EVTCHNOP_send` and `EVTCHNOP_unmask`:
/// each is a struct holding one port.
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
pub struct PortOp {
    /// The port operated on.
    pub port: EvtchnPort,
}
crate::assert_layout!(PortOp, size = 4, port = 0);
