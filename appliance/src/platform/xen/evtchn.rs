//! Event channels, 2-level ABI: allocate, bind, send, mask/unmask, and wait.

use core::sync::atomic::Ordering;

use xen_abi::errno::XenErrno;
use xen_abi::event_channel::*;
use xen_abi::hypercall::EVENT_CHANNEL_OP;
use xen_abi::{DomId, DOMID_SELF};

use super::hypercall::op;
use super::shared::SharedInfo;

fn evtchn_op<T: zerocopy::IntoBytes + zerocopy::Immutable>(
    cmd: u32,
    arg: &mut T,
) -> Result<(), XenErrno> {
    // SAFETY: every caller below pairs `cmd` with its argument struct.
    unsafe { op(EVENT_CHANNEL_OP, cmd, arg) }.map(|_| ())
}

/// Allocates a port in this domain that `remote` may bind to.
pub fn alloc_unbound(remote: DomId) -> Result<u32, XenErrno> {
    let mut a = AllocUnbound {
        dom: DOMID_SELF,
        remote_dom: remote,
        port: 0,
    };
    evtchn_op(EVTCHNOP_ALLOC_UNBOUND, &mut a)?;
    Ok(a.port)
}

/// Binds a new local port to `remote_port` of domain `remote`.
pub fn bind_interdomain(remote: DomId, remote_port: u32) -> Result<u32, XenErrno> {
    let mut a = BindInterdomain {
        remote_dom: remote,
        _pad: 0,
        remote_port,
        local_port: 0,
    };
    evtchn_op(EVTCHNOP_BIND_INTERDOMAIN, &mut a)?;
    Ok(a.local_port)
}

/// Notifies the other end of `port`.
pub fn send(port: u32) -> Result<(), XenErrno> {
    evtchn_op(EVTCHNOP_SEND, &mut PortOp { port })
}

/// Closes `port`.
pub fn close(port: u32) -> Result<(), XenErrno> {
    evtchn_op(EVTCHNOP_CLOSE, &mut PortOp { port })
}

/// Unmasks `port` through Xen, which redelivers it if it is pending.
pub fn unmask(port: u32) -> Result<(), XenErrno> {
    evtchn_op(EVTCHNOP_UNMASK, &mut PortOp { port })
}

fn split(port: u32) -> (usize, u64) {
    ((port / 64) as usize, 1u64 << (port % 64))
}

/// Masks `port` (guest side; no hypercall needed).
pub fn mask(si: &SharedInfo, port: u32) {
    let (w, bit) = split(port);
    si.mask(w).fetch_or(bit, Ordering::SeqCst);
}

/// Whether `port` is masked.
pub fn is_masked(si: &SharedInfo, port: u32) -> bool {
    let (w, bit) = split(port);
    si.mask(w).load(Ordering::SeqCst) & bit != 0
}

/// Whether `port` is pending.
pub fn is_pending(si: &SharedInfo, port: u32) -> bool {
    let (w, bit) = split(port);
    si.pending(w).load(Ordering::SeqCst) & bit != 0
}

/// Clears `port`'s pending bit; returns whether it was set.
pub fn take_pending(si: &SharedInfo, port: u32) -> bool {
    let (w, bit) = split(port);
    si.pending(w).fetch_and(!bit, Ordering::SeqCst) & bit != 0
}
