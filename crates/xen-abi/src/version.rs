//! `xen_version` sub-operations (`version.h`).

/// Returns `(major << 16) | minor` in the hypercall result.
pub const XENVER_VERSION: u32 = 0;
/// Fills a [`ExtraVersion`] buffer (e.g. ".5").
pub const XENVER_EXTRAVERSION: u32 = 1;
/// Fills an [`FeatureInfo`].
pub const XENVER_GET_FEATURES: u32 = 6;

/// `xen_extraversion_t`: a NUL-padded string of at most 16 bytes.
pub type ExtraVersion = [u8; 16];

/// `xen_feature_info`: one 32-bit word of the feature bitmap.
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
pub struct FeatureInfo {
    /// Which 32-bit word of the bitmap.
    pub submap_idx: u32,
    /// The word's bits.
    pub submap: u32,
}
crate::assert_layout!(FeatureInfo, size = 8, submap_idx = 0, submap = 4);

/// A hypervisor version as `XENVER_version` reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version {
    /// Major number (4 for Xen 4.17).
    pub major: u16,
    /// Minor number (17 for Xen 4.17).
    pub minor: u16,
}

impl Version {
    /// Decodes the `XENVER_version` result.
    pub fn from_raw(raw: u64) -> Self {
        Version {
            major: (raw >> 16) as u16,
            minor: raw as u16,
        }
    }
}

impl core::fmt::Display for Version {
    /// `major.minor`, as Xen names its releases ("4.20").
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}
