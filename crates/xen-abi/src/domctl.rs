//! domctl/sysctl interface versions per Xen release.
//!
//! The `domctl` and `sysctl` hypercalls carry an interface version that
//! changes between releases without notice; a caller using the wrong one is
//! refused (or worse, misread). The appliance supports exactly the releases
//! listed here and refuses the rest at boot.

use crate::version::Version;

/// `XEN_DOMCTL_INTERFACE_VERSION` of Xen 4.17.
pub const DOMCTL_INTERFACE_VERSION_4_17: u32 = 0x15;
/// `XEN_SYSCTL_INTERFACE_VERSION` of Xen 4.17.
pub const SYSCTL_INTERFACE_VERSION_4_17: u32 = 0x15;

/// The interface versions of one supported release.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Interfaces {
    /// `XEN_DOMCTL_INTERFACE_VERSION`.
    pub domctl: u32,
    /// `XEN_SYSCTL_INTERFACE_VERSION`.
    pub sysctl: u32,
}

/// The domctl/sysctl versions of `version`, or `None` for a release this
/// code does not know (and must refuse).
pub fn interfaces_for(version: Version) -> Option<Interfaces> {
    match (version.major, version.minor) {
        (4, 17) => Some(Interfaces {
            domctl: DOMCTL_INTERFACE_VERSION_4_17,
            sysctl: SYSCTL_INTERFACE_VERSION_4_17,
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_known_releases_have_interfaces() {
        let v = |major, minor| Version { major, minor };
        assert_eq!(interfaces_for(v(4, 17)).map(|i| i.domctl), Some(0x15));
        assert_eq!(interfaces_for(v(4, 16)), None);
        assert_eq!(interfaces_for(v(4, 19)), None);
        assert_eq!(interfaces_for(v(5, 17)), None);
    }
}
