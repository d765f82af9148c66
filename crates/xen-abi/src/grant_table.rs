//! Grant table v1 entries and `grant_table_op` arguments (`grant_table.h`).

use crate::{DomId, GrantRef};

/// Map a grant.
pub const GNTTABOP_MAP_GRANT_REF: u32 = 0;
/// Unmap a grant.
pub const GNTTABOP_UNMAP_GRANT_REF: u32 = 1;
/// Query the current and maximum grant table size.
pub const GNTTABOP_QUERY_SIZE: u32 = 6;
/// Read the table's ABI version.
pub const GNTTABOP_GET_VERSION: u32 = 10;

/// Entry type: no grant.
pub const GTF_INVALID: u16 = 0;
/// Entry type: the named domain may map or copy the frame.
pub const GTF_PERMIT_ACCESS: u16 = 1;
/// Mask of the entry type bits.
pub const GTF_TYPE_MASK: u16 = 3;
/// Grant is read-only.
pub const GTF_READONLY: u16 = 1 << 2;
/// Set by Xen while the grantee has the frame mapped for reading.
pub const GTF_READING: u16 = 1 << 3;
/// Set by Xen while the grantee has the frame mapped for writing.
pub const GTF_WRITING: u16 = 1 << 4;

/// Map for the host (CPU) at `host_addr` (a guest physical address on HVM).
pub const GNTMAP_HOST_MAP: u32 = 1 << 1;
/// Map read-only.
pub const GNTMAP_READONLY: u32 = 1 << 2;

/// Grant op status: success.
pub const GNTST_OKAY: i16 = 0;

/// Entries of 8 bytes per 4 KiB frame.
pub const ENTRIES_PER_FRAME: usize = crate::PAGE_SIZE / core::mem::size_of::<GrantEntryV1>();

/// `grant_entry_v1`.
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
pub struct GrantEntryV1 {
    /// `GTF_*`; written last by the granter, updated by Xen.
    pub flags: u16,
    /// The domain being granted access.
    pub domid: DomId,
    /// The granted guest frame.
    pub frame: u32,
}
crate::assert_layout!(GrantEntryV1, size = 8, flags = 0, domid = 2, frame = 4);

/// `gnttab_map_grant_ref`.
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
pub struct MapGrantRef {
    /// Where to map: a guest physical address for HVM/PVH.
    pub host_addr: u64,
    /// `GNTMAP_*`.
    pub flags: u32,
    /// The grant reference in the granter's table.
    pub gref: GrantRef,
    /// The granting domain.
    pub dom: DomId,
    /// Out: `GNTST_*`.
    pub status: i16,
    /// Out: handle for the unmap.
    pub handle: u32,
    /// Out: bus address for device maps.
    pub dev_bus_addr: u64,
}
crate::assert_layout!(
    MapGrantRef,
    size = 32,
    host_addr = 0,
    flags = 8,
    gref = 12,
    dom = 16,
    status = 18,
    handle = 20,
    dev_bus_addr = 24
);

/// `gnttab_unmap_grant_ref`.
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
pub struct UnmapGrantRef {
    /// The address given to the map.
    pub host_addr: u64,
    /// Device address, 0 for host maps.
    pub dev_bus_addr: u64,
    /// Handle returned by the map.
    pub handle: u32,
    /// Out: `GNTST_*`.
    pub status: i16,
    /// Padding (C leaves it implicit).
    pub _pad: u16,
}
crate::assert_layout!(
    UnmapGrantRef,
    size = 24,
    host_addr = 0,
    dev_bus_addr = 8,
    handle = 16,
    status = 20
);

/// `gnttab_query_size`.
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
pub struct QuerySize {
    /// Domain queried (`DOMID_SELF`).
    pub dom: DomId,
    /// Padding (C leaves it implicit).
    pub _pad: u16,
    /// Out: frames in use.
    pub nr_frames: u32,
    /// Out: maximum frames.
    pub max_nr_frames: u32,
    /// Out: `GNTST_*`.
    pub status: i16,
    /// Padding (C leaves it implicit).
    pub _pad2: u16,
}
crate::assert_layout!(
    QuerySize,
    size = 16,
    dom = 0,
    nr_frames = 4,
    max_nr_frames = 8,
    status = 12
);

/// `gnttab_get_version`.
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
pub struct GetVersion {
    /// Domain queried.
    pub dom: DomId,
    /// Padding (C leaves it implicit).
    pub _pad: u16,
    /// Out: 1 or 2.
    pub version: u32,
}
crate::assert_layout!(GetVersion, size = 8, dom = 0, version = 4);
