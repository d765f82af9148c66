//! The kernel profile the guest agent publishes (guest-lsm/README.md,
//! "Kernel profile (page 1)"). Its layout and its checked decoding are part
//! of the guest ↔ appliance contract in `depmig-guest-abi`; they are
//! re-exported here, where the walker's users have always found them.

pub use depmig_guest_abi::profile::*;
