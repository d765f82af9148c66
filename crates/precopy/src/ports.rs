//! The engine's view of the world: one trait per piece of hardware or guest
//! knowledge. The appliance implements them with hypercalls and guest
//! introspection; the simulator and tests implement them in memory.

use core::fmt;

use xen_abi::errno::XenErrno;

use crate::bitmap::DirtyBitmap;

/// Why an implementation of a port failed. The caller wraps it with the
/// operation that failed; the implementation logs the details (a buffer's
/// sizes, a xenstore path) when it returns one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PortError {
    /// Xen refused or failed the operation
    Xen(XenErrno),
    /// the port failed and its caller keeps the real error
    Recorded,
    /// the port's shared state was in use (a nested call: a bug)
    Busy,

    // The domain, through domctls and xenstore.
    /// no domain has this id
    NoSuchDomain,
    /// a buffer does not fit the hypercall's size field or the data
    BufferSize,
    /// the HVM context is malformed
    HvmContext,
    /// the domain is not suspended
    NotSuspended,
    /// the domain shut down, but not to suspend (this `SHUTDOWN_*` reason)
    ShutDownOtherwise(u32),
    /// the domain did not reach the awaited state before the deadline
    Timeout,
    /// a xenstore request failed
    Xenstore,
    /// the foreign mapping window refused the request
    Foreign,
    /// the domain has more frames than can be handled
    TooManyFrames,
    /// no buffer could be made for the domain's frames
    NoBuffer,
    /// a buffer is not the size its list of frames needs (a bug)
    BadLength,
    /// Xen populated fewer frames than asked for
    ShortPopulate,

    // dom0's bitmap route.
    /// dom0's bitmap reply is malformed
    Dom0Reply,
    /// dom0 did not answer a bitmap request in time
    Dom0Silent,
    /// dom0's log-dirty clean failed
    Dom0Clean(XenErrno),

    // The guest agent, through the guest's xenstore directory.
    /// the request to the guest agent could not be written
    AgentWrite,
    /// the guest agent answered with an error
    AgentRefused,
    /// the guest agent's answer is malformed
    AgentMalformed,
    /// the guest agent did not answer in time
    AgentSilent,
}

impl fmt::Display for PortError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = match self {
            PortError::Xen(e) => return write!(f, "Xen refused or failed the operation: {e}"),
            PortError::Recorded => "the port failed and its caller keeps the real error",
            PortError::Busy => "the port's shared state was in use (a nested call: a bug)",
            PortError::NoSuchDomain => "no domain has this id",
            PortError::BufferSize => "a buffer does not fit the hypercall's size field or the data",
            PortError::HvmContext => "the HVM context is malformed",
            PortError::NotSuspended => "the domain is not suspended",
            PortError::ShutDownOtherwise(r) => {
                return write!(f, "the domain shut down, but not to suspend (reason {r})")
            }
            PortError::Timeout => "the domain did not reach the awaited state before the deadline",
            PortError::Xenstore => "a xenstore request failed",
            PortError::Foreign => "the foreign mapping window refused the request",
            PortError::TooManyFrames => "the domain has more frames than can be handled",
            PortError::NoBuffer => "no buffer could be made for the domain's frames",
            PortError::BadLength => "a buffer is not the size its list of frames needs (a bug)",
            PortError::ShortPopulate => "Xen populated fewer frames than asked for",
            PortError::Dom0Reply => "dom0's bitmap reply is malformed",
            PortError::Dom0Silent => "dom0 did not answer a bitmap request in time",
            PortError::Dom0Clean(e) => return write!(f, "dom0's log-dirty clean failed: {e}"),
            PortError::AgentWrite => "the request to the guest agent could not be written",
            PortError::AgentRefused => "the guest agent answered with an error",
            PortError::AgentMalformed => "the guest agent's answer is malformed",
            PortError::AgentSilent => "the guest agent did not answer in time",
        };
        f.write_str(m)
    }
}

/// The migrating guest's memory layout.
pub trait GuestMemory {
    /// Size of the guest's physical address space in frames (p2m size).
    fn nr_pfns(&self) -> u64;
    /// Marks every populated frame (round 1 sends exactly these).
    fn populated(&mut self, out: &mut DirtyBitmap) -> Result<(), PortError>;
}

/// Log-dirty mode of the hypervisor, and the guest's suspension.
pub trait DirtyLog {
    /// Turns log-dirty mode on; every later write to guest memory is logged.
    fn enable(&mut self) -> Result<(), PortError>;
    /// ORs the frames written since the last call into `out` and resets
    /// the log (Xen's `XEN_DOMCTL_SHADOW_OP_CLEAN`).
    fn collect(&mut self, out: &mut DirtyBitmap) -> Result<(), PortError>;
    /// Suspends the guest; a `collect` after it returns the final set.
    fn suspend(&mut self) -> Result<(), PortError>;
}

/// Where pages go (the stream to the destination).
pub trait PageSink {
    /// Sends the current contents of `pfns` (ascending, at most
    /// [`crate::BATCH`]); returns the bytes put on the wire.
    fn send_pages(&mut self, pfns: &[u64]) -> Result<u64, PortError>;
    /// Tells the destination that `pfns` are free in the guest: it holds
    /// zero there. Returns the bytes put on the wire.
    ///
    /// On the wire depmig sends these as PAGE_DATA entries of type XALLOC
    /// (no data) in the copy round; depmig's destination clears such
    /// frames. A stock receiver only populates them and may keep an older
    /// copy, which is harmless to Linux (a free page's content is never
    /// read before it is written) but is not a byte-exact image.
    fn zero_pages(&mut self, pfns: &[u64]) -> Result<u64, PortError>;
}

/// A monotonic clock.
pub trait Clock {
    /// Nanoseconds since an arbitrary origin.
    fn now_ns(&self) -> u64;

    /// The caller just encoded `pages` pages (compressed them, computed
    /// their deltas). A simulated clock advances by its model's cost of
    /// that work, so that tests can give encoding a cost the host's CPU
    /// does not have; a real clock, whose time passed while the work ran,
    /// ignores it (the default).
    fn encoded(&self, _pages: u64) {}
}

/// What the guest's own structures say about its frames and processes.
///
/// Mistakes here must fall on the safe side: a frame the oracle cannot
/// classify is reported tainted and not free.
pub trait DependencyOracle {
    /// Asks the guest agent to freeze every untainted, quiet dependency
    /// group for the rest of the migration (dependency-aware mode only).
    /// Returns the number of groups frozen.
    fn freeze_quiet_groups(&mut self) -> Result<u32, PortError>;
    /// Thaws every group frozen for the migration. The engine never calls
    /// it: the caller does when a migration is abandoned and the source
    /// guest resumes (on success the destination's agent thaws them).
    fn thaw_all(&mut self) -> Result<(), PortError>;
    /// Marks frames owned by tainted processes or the kernel.
    fn tainted_frames(&mut self, out: &mut DirtyBitmap) -> Result<(), PortError>;
    /// Marks the frames of `among` that are free in the guest's page
    /// allocator (marks outside `among` are ignored; `among` lets an oracle
    /// read only what decides those frames). Asked in round 1, where a
    /// page freed and then reused is written, hence dirty, before it means
    /// anything, and while the guest is suspended for the final round.
    fn free_frames(&mut self, among: &DirtyBitmap, out: &mut DirtyBitmap) -> Result<(), PortError>;
    /// Paper-analysis mode's measurement: the frames round `round` found
    /// dirty and tainted, for the oracle to say whose they are. Nothing it
    /// does changes what is sent, and its errors never fail a migration.
    /// `None` when no census could be taken; by default none is.
    fn census(
        &mut self,
        _round: u32,
        _frames: &DirtyBitmap,
    ) -> Result<Option<CensusCounts>, PortError> {
        Ok(None)
    }
}

/// Whose a round's dirty tainted frames are, in the classes a report
/// carries: every frame of the set counts in exactly one of `user`,
/// `page_tables`, `kernel` and `unreadable`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CensusCounts {
    /// The round.
    pub round: u32,
    /// Frames in the set.
    pub asked: u64,
    /// Frames mapped by a process (the set holds tainted frames only, so
    /// these are pages of tainted processes: the paper's own measure).
    pub user: u64,
    /// Page-table frames of user address spaces.
    pub page_tables: u64,
    /// The kernel's own frames (slab, page cache, stacks, per-CPU...).
    pub kernel: u64,
    /// Frames nothing could be said about.
    pub unreadable: u64,
}

/// An oracle that knows nothing: everything tainted, nothing free, nothing
/// frozen. With it every mode degrades to the baseline.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoOracle;

impl DependencyOracle for NoOracle {
    fn freeze_quiet_groups(&mut self) -> Result<u32, PortError> {
        Ok(0)
    }
    fn thaw_all(&mut self) -> Result<(), PortError> {
        Ok(())
    }
    fn tainted_frames(&mut self, out: &mut DirtyBitmap) -> Result<(), PortError> {
        out.set_all();
        Ok(())
    }
    fn free_frames(
        &mut self,
        _among: &DirtyBitmap,
        out: &mut DirtyBitmap,
    ) -> Result<(), PortError> {
        out.clear_all();
        Ok(())
    }
}
