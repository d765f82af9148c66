//! What the protocol needs from the platform: the migrating guest, the shell
//! that receives it, a byte transport and a progress sink. The appliance
//! implements these with hypercalls, xenstore and its TCP link; the tests
//! implement them in memory.
//!
//! Domain operations fail with precopy's [`PortError`] (a Xen errno, or a
//! named condition such as a timeout); the roles wrap it with the operation
//! that failed, so the log says which hypercall broke.

use alloc::vec::Vec;

use depmig_precopy::{DirtyBitmap, PortError};
use depmig_stream::TscInfo;

/// The guest being migrated away (source role).
///
/// Calls come from one thread in this order: `nr_pfns`, `populated`,
/// `log_dirty_enable`, then `read_pages` and `log_dirty_collect` in rounds,
/// `suspend`, a last `log_dirty_collect` and `read_pages`, `tsc_info`,
/// `hvm_param`, `hvm_context`; finally `log_dirty_disable`, and
/// `resume_cancelled` when the migration failed after `suspend` was called.
pub trait SourceDomain {
    /// Size of the guest's physical address space in frames (its p2m size,
    /// `XENMEM_maximum_gpfn + 1`). Every pfn handed back is below it.
    fn nr_pfns(&self) -> u64;

    /// Marks every populated frame; round 1 sends exactly these. An
    /// implementation that cannot tell may mark every frame: holes are then
    /// reported by [`SourceDomain::read_pages`].
    fn populated(&mut self, out: &mut DirtyBitmap) -> Result<(), PortError>;

    /// Reads the current contents of `pfns` (ascending, at most
    /// [`depmig_precopy::BATCH`]) into `buf`, page `i` at
    /// `buf[i * 4096..(i + 1) * 4096]` (`buf.len() == pfns.len() * 4096`).
    /// A frame that is not populated (any more, e.g. ballooned out) is not
    /// an error: set `holes[i] = true` and its bytes are ignored; otherwise
    /// leave `holes[i]` false (it is cleared before the call).
    fn read_pages(
        &mut self,
        pfns: &[u64],
        buf: &mut [u8],
        holes: &mut [bool],
    ) -> Result<(), PortError>;

    /// Turns log-dirty mode on (`XEN_DOMCTL_SHADOW_OP_ENABLE_LOGDIRTY`).
    fn log_dirty_enable(&mut self) -> Result<(), PortError>;

    /// ORs the frames written since the last call into `out` and resets the
    /// log (`XEN_DOMCTL_SHADOW_OP_CLEAN`). After `suspend`, the final set.
    fn log_dirty_collect(&mut self, out: &mut DirtyBitmap) -> Result<(), PortError>;

    /// Turns log-dirty mode off (`XEN_DOMCTL_SHADOW_OP_OFF`). Called on
    /// every exit once `log_dirty_enable` was called, success or failure.
    fn log_dirty_disable(&mut self) -> Result<(), PortError>;

    /// Suspends the guest cooperatively and waits, bounded, until it is
    /// shut down with reason suspend (the appliance writes `suspend` to the
    /// guest's `control/shutdown` and polls `getdomaininfo`). Returns an
    /// error if the guest did not suspend in time; the protocol then calls
    /// [`SourceDomain::resume_cancelled`].
    fn suspend(&mut self) -> Result<(), PortError>;

    /// Undoes a suspension after a failed migration: withdraws a pending
    /// suspend request and, if the guest is shut down for suspend, resumes
    /// it with the suspend cancelled (vCPU 0's `rax := 1` in its HVM context,
    /// see `xen_abi::hvm_save::set_cpu_reg`, then `XEN_DOMCTL_resumedomain`).
    /// Called whenever `suspend` was called and the migration then failed,
    /// including when `suspend` itself failed, so it must be harmless on a
    /// guest that is still running. `Ok(true)`: the guest was suspended and
    /// runs again; `Ok(false)`: it was not suspended (still running, or shut
    /// down for another reason, e.g. crashed): nothing was resumed.
    fn resume_cancelled(&mut self) -> Result<bool, PortError>;

    /// The guest's TSC mode, frequency, elapsed time and incarnation
    /// (`XEN_DOMCTL_gettscinfo`).
    fn tsc_info(&mut self) -> Result<TscInfo, PortError>;

    /// One HVM parameter (`HVMOP_get_param`). Asked for each index of
    /// [`crate::params::SAVED`], as Xen's own saver does; zero values are
    /// not sent.
    fn hvm_param(&mut self, index: u32) -> Result<u64, PortError>;

    /// The guest's HVM context blob (`XEN_DOMCTL_gethvmcontext`), replacing
    /// the contents of `out`. Asked once, with the guest suspended.
    fn hvm_context(&mut self, out: &mut Vec<u8>) -> Result<(), PortError>;

    /// Pages the guest holds now (Xen's `tot_pages`), when known. Page
    /// verification asks it with the guest suspended, to show that the
    /// frames the stream covered hold all of them. Pages Xen shares with
    /// the guest (shared info, grant table frames) are not counted.
    fn pages_held(&mut self) -> Option<u64> {
        None
    }
}

/// The paused shell domain that receives the guest (destination role).
///
/// The destination writes memory as it arrives and applies the TSC, the
/// parameters and the HVM context only once the stream is authenticated.
/// It never unpauses the shell: dom0 does, after the source committed.
pub trait DestDomain {
    /// Size of the shell's physical address space in frames; any pfn at or
    /// above it in the stream is refused.
    fn nr_pfns(&self) -> u64;

    /// Marks the frames the shell already has (the domain builder populated
    /// its RAM). Frames not marked are given to [`DestDomain::populate`]
    /// before they are first written. Marking none is allowed only if
    /// `populate` leaves already-populated frames alone.
    fn populated(&mut self, out: &mut DirtyBitmap) -> Result<(), PortError>;

    /// Gives the shell the frames `pfns` (ascending within a call, each pfn
    /// at most once per migration): `XENMEM_populate_physmap`.
    fn populate(&mut self, pfns: &[u64]) -> Result<(), PortError>;

    /// Writes pages: `data[i * 4096..(i + 1) * 4096]` into frame `pfns[i]`.
    /// Every frame is populated. A hostile stream may repeat a pfn inside a
    /// batch; later entries win.
    fn write_pages(&mut self, pfns: &[u64], data: &[u8]) -> Result<(), PortError>;

    /// Fills the frames `pfns` (populated) with zeros: pages free in the
    /// guest at the copy round, and the xenstore and console rings.
    fn zero_frames(&mut self, pfns: &[u64]) -> Result<(), PortError>;

    /// Reads the shell's frames `pfns` into `buf` as
    /// [`SourceDomain::read_pages`] reads the guest's (a frame the shell
    /// lacks sets `holes[i]`). Asked with verification on, after the
    /// stream was applied, and with delta pages agreed on, for the frames
    /// a batch's deltas apply to, before the batch is written.
    fn read_pages(
        &mut self,
        pfns: &[u64],
        buf: &mut [u8],
        holes: &mut [bool],
    ) -> Result<(), PortError>;

    /// Reads one of the shell's HVM parameters (`HVMOP_get_param`); asked
    /// for `HVM_PARAM_STORE_PFN` and `HVM_PARAM_CONSOLE_PFN`.
    fn hvm_param(&mut self, index: u32) -> Result<u64, PortError>;

    /// Sets one HVM parameter (`HVMOP_set_param`).
    fn set_hvm_param(&mut self, index: u32, value: u64) -> Result<(), PortError>;

    /// Sets the TSC state (`XEN_DOMCTL_settscinfo`).
    fn set_tsc_info(&mut self, tsc: &TscInfo) -> Result<(), PortError>;

    /// Loads the HVM context blob (`XEN_DOMCTL_sethvmcontext`); the last
    /// step before the ACK.
    fn set_hvm_context(&mut self, blob: &[u8]) -> Result<(), PortError>;
}

/// Why the transport failed. Every variant is final: the roles give up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransportError {
    /// No progress within the transport's own deadline (peer hung, link dead).
    Timeout,
    /// The peer closed the connection before the expected bytes arrived.
    Closed,
    /// The connection was reset or lost.
    Reset,
    /// Anything else (device failure, bad configuration), with the
    /// implementation's code.
    Failed(i32),
}

/// A reliable, ordered byte stream to the peer (TCP).
///
/// Every call must return within a bound the implementation chooses (the
/// appliance's link fails a transfer that makes no progress for its stall
/// timeout); the protocol relies on that to never hang.
pub trait Transport {
    /// Sends all of `data`, waiting while the peer is slow (backpressure).
    fn send(&mut self, data: &[u8]) -> Result<(), TransportError>;

    /// Waits until everything sent was handed to the peer.
    fn flush(&mut self) -> Result<(), TransportError>;

    /// Receives at least one byte into `buf` (`buf` is never empty);
    /// `Ok(0)` means the peer closed its side cleanly.
    fn recv(&mut self, buf: &mut [u8]) -> Result<usize, TransportError>;

    /// Time this transport's `send` spent waiting for room to put bytes in
    /// (its send buffer full: the link is not taking them as fast as they
    /// come), ns since it was made, on the caller's clock's scale; `None`
    /// when it does not measure it. The source's adaptive encodings read
    /// it ([`crate::adapt`]); without it, all the time spent in `send`
    /// counts as waiting, which keeps the encodings on more often.
    fn blocked_ns(&self) -> Option<u64> {
        None
    }

    /// Bytes handed to `send` that have not left yet (its send buffer's
    /// queue, unacknowledged bytes included), after taking in what the
    /// peer acknowledged since the last call; `None` when it does not say.
    /// A queue that grows while the source sends shows that the link is
    /// the bottleneck before the buffer is full ([`crate::adapt`]).
    fn queued(&mut self) -> Option<u64> {
        None
    }

    /// Fills `buf` completely; end of stream first is [`TransportError::Closed`].
    fn recv_exact(&mut self, mut buf: &mut [u8]) -> Result<(), TransportError> {
        while !buf.is_empty() {
            let n = self.recv(buf)?;
            if n == 0 {
                return Err(TransportError::Closed);
            }
            buf = buf.get_mut(n..).ok_or(TransportError::Failed(-1))?;
        }
        Ok(())
    }
}

/// A role's state as published under `migrate/state`: the contract's.
pub use depmig_control::State;

/// Where a role reports progress (xenstore `migrate/state`,
/// `migrate/round`, the console). Calls must be cheap; they cannot fail.
pub trait Progress {
    /// The role entered `state`.
    fn state(&mut self, state: State);
    /// A pre-copy round ended (source only); `line` is its
    /// [`depmig_control::Round`] text,
    /// `round=N dirty=D sent=S skipped_free=F bytes=B ms=T`.
    fn round(&mut self, stats: &depmig_precopy::RoundStats, line: &str);
    /// The destination refuses the stream for `error` (its
    /// [`DestError`](crate::dest::DestError); called before the NAK goes
    /// out: once the source has the NAK, dom0 may destroy the destination at
    /// any moment, and the reason must be out by then).
    fn refusing(&mut self, _error: &dyn core::fmt::Debug) {}
    /// A test fault was injected at `pfn` (the destination's `corrupt-page`:
    /// the frame it changed after the stream, which verification must name).
    fn fault_injected(&mut self, _pfn: u64) {}
}

/// A progress sink that ignores everything.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn state(&mut self, _: State) {}
    fn round(&mut self, _: &depmig_precopy::RoundStats, _: &str) {}
}
