//! The engine's view of the world: one trait per piece of hardware or guest
//! knowledge. The appliance implements them with hypercalls and guest
//! introspection; the simulator and tests implement them in memory.

use crate::bitmap::DirtyBitmap;

/// A failure reported by an implementation of a port, with its own code
/// (an errno, a hypercall status) for the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortError {
    /// Implementation-defined code.
    pub code: i32,
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
