//! `memory_op` sub-operations and arguments (`memory.h`).

use crate::DomId;

/// Give pages back to Xen.
pub const XENMEM_DECREASE_RESERVATION: u32 = 1;
/// Allocate pages at given guest frames.
pub const XENMEM_POPULATE_PHYSMAP: u32 = 6;
/// Map a Xen-owned or foreign frame into the physmap.
pub const XENMEM_ADD_TO_PHYSMAP: u32 = 7;
/// Remove a frame from the physmap.
pub const XENMEM_REMOVE_FROM_PHYSMAP: u32 = 15;
/// Highest guest frame number a domain has populated (result of the call;
/// the argument is a pointer to a `domid_t`).
pub const XENMEM_MAXIMUM_GPFN: u32 = 14;
/// Batched add-to-physmap (foreign frames).
pub const XENMEM_ADD_TO_PHYSMAP_BATCH: u32 = 23;

/// Map space: the shared_info page.
pub const XENMAPSPACE_SHARED_INFO: u32 = 0;
/// Map space: a grant table frame (`idx` = frame number).
pub const XENMAPSPACE_GRANT_TABLE: u32 = 1;
/// Map space: another domain's frame (`add_to_physmap_batch` only).
pub const XENMAPSPACE_GMFN_FOREIGN: u32 = 4;

/// `xen_add_to_physmap`.
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
pub struct AddToPhysmap {
    /// Domain whose physmap changes (`DOMID_SELF`).
    pub domid: DomId,
    /// Number of pages for `XENMAPSPACE_gmfn_range`.
    pub size: u16,
    /// `XENMAPSPACE_*`.
    pub space: u32,
    /// Index within the space.
    pub idx: u64,
    /// Guest frame to map it at.
    pub gpfn: u64,
}
crate::assert_layout!(
    AddToPhysmap,
    size = 24,
    domid = 0,
    size = 2,
    space = 4,
    idx = 8,
    gpfn = 16
);

/// `xen_remove_from_physmap`.
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
pub struct RemoveFromPhysmap {
    /// Domain whose physmap changes.
    pub domid: DomId,
    /// Padding (C leaves it implicit).
    pub _pad: [u16; 3],
    /// Guest frame to unmap.
    pub gpfn: u64,
}
crate::assert_layout!(RemoveFromPhysmap, size = 16, domid = 0, gpfn = 8);

/// `xen_memory_reservation`.
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
pub struct MemoryReservation {
    /// Guest address of an array of frame numbers.
    pub extent_start: u64,
    /// Number of extents in the array.
    pub nr_extents: u64,
    /// log2 of pages per extent.
    pub extent_order: u32,
    /// `XENMEMF_*` flags.
    pub mem_flags: u32,
    /// Domain operated on.
    pub domid: DomId,
    /// Padding (C leaves it implicit).
    pub _pad: [u16; 3],
}
crate::assert_layout!(
    MemoryReservation,
    size = 32,
    extent_start = 0,
    nr_extents = 8,
    extent_order = 16,
    mem_flags = 20,
    domid = 24
);

/// `xen_add_to_physmap_batch`.
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
pub struct AddToPhysmapBatch {
    /// Domain whose physmap changes.
    pub domid: DomId,
    /// `XENMAPSPACE_*` (16 bits here).
    pub space: u16,
    /// Number of entries in the three arrays.
    pub size: u16,
    /// Domain owning the frames for `XENMAPSPACE_gmfn_foreign`, else 0.
    pub foreign_domid: DomId,
    /// Guest address of the `xen_ulong_t` source indices.
    pub idxs: u64,
    /// Guest address of the `xen_pfn_t` destination frames.
    pub gpfns: u64,
    /// Guest address of the `int` per-entry results.
    pub errs: u64,
}
crate::assert_layout!(
    AddToPhysmapBatch,
    size = 32,
    domid = 0,
    space = 2,
    size = 4,
    foreign_domid = 6,
    idxs = 8,
    gpfns = 16,
    errs = 24
);
