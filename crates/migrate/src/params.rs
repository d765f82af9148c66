//! Which HVM parameters travel, and what the destination does with each.
//!
//! The source sends the parameters Xen's own saver sends
//! (`write_hvm_params` in libxenguest), skipping zero values as it does.
//! The destination applies them, except the ones that describe the shell's
//! own connection to dom0's daemons: `STORE_EVTCHN` and `CONSOLE_EVTCHN`
//! are never taken from the stream (the shell's event channels stay), and
//! `STORE_PFN` and `CONSOLE_PFN` must equal the shell's own (the guest
//! kernel keeps using the frames it found at boot, and the shell was built
//! from the same configuration, so they match; a mismatch is refused
//! rather than leaving the guest talking to a ring no daemon reads). Those
//! two ring frames keep the shell's own content: the stream's copies are
//! never written (see `dest`; Xen's restorer clears them instead, before
//! the daemons ever see the domain).

use xen_abi::hvm::{
    HVM_PARAM_CONSOLE_EVTCHN, HVM_PARAM_CONSOLE_PFN, HVM_PARAM_STORE_EVTCHN, HVM_PARAM_STORE_PFN,
};

/// `HVM_PARAM_IOREQ_PFN`.
pub const IOREQ_PFN: u32 = 5;
/// `HVM_PARAM_BUFIOREQ_PFN`.
pub const BUFIOREQ_PFN: u32 = 6;
/// `HVM_PARAM_VIRIDIAN`.
pub const VIRIDIAN: u32 = 9;
/// `HVM_PARAM_IDENT_PT`.
pub const IDENT_PT: u32 = 12;
/// `HVM_PARAM_ACPI_IOPORTS_LOCATION`.
pub const ACPI_IOPORTS_LOCATION: u32 = 19;
/// `HVM_PARAM_PAGING_RING_PFN`.
pub const PAGING_RING_PFN: u32 = 27;
/// `HVM_PARAM_MONITOR_RING_PFN`.
pub const MONITOR_RING_PFN: u32 = 28;
/// `HVM_PARAM_SHARING_RING_PFN`.
pub const SHARING_RING_PFN: u32 = 29;
/// `HVM_PARAM_IOREQ_SERVER_PFN`.
pub const IOREQ_SERVER_PFN: u32 = 32;
/// `HVM_PARAM_NR_IOREQ_SERVER_PAGES`.
pub const NR_IOREQ_SERVER_PAGES: u32 = 33;
/// `HVM_PARAM_VM_GENERATION_ID_ADDR`.
pub const VM_GENERATION_ID_ADDR: u32 = 34;
/// `HVM_PARAM_X87_FIP_WIDTH`.
pub const X87_FIP_WIDTH: u32 = 36;
/// `HVM_PARAM_VM86_TSS_SIZED`.
pub const VM86_TSS_SIZED: u32 = 37;
/// `HVM_PARAM_MCA_CAP`.
pub const MCA_CAP: u32 = 38;

/// The parameters the source reads and sends, in Xen's saver's order.
pub const SAVED: [u32; 16] = [
    HVM_PARAM_STORE_PFN,
    IOREQ_PFN,
    BUFIOREQ_PFN,
    PAGING_RING_PFN,
    MONITOR_RING_PFN,
    SHARING_RING_PFN,
    VM86_TSS_SIZED,
    HVM_PARAM_CONSOLE_PFN,
    ACPI_IOPORTS_LOCATION,
    VIRIDIAN,
    IDENT_PT,
    VM_GENERATION_ID_ADDR,
    IOREQ_SERVER_PFN,
    NR_IOREQ_SERVER_PAGES,
    X87_FIP_WIDTH,
    MCA_CAP,
];

/// What the destination does with a parameter found in the stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Disposition {
    /// Set it in the shell.
    Apply,
    /// Keep the shell's own value; the stream's must be equal.
    KeepMustMatch,
    /// Keep the shell's own value whatever the stream says.
    Keep,
    /// Not a parameter a migration stream carries: refuse the stream.
    Refuse,
}

/// The destination's rule for `index`.
pub fn disposition(index: u64) -> Disposition {
    let Ok(i) = u32::try_from(index) else {
        return Disposition::Refuse;
    };
    match i {
        HVM_PARAM_STORE_PFN | HVM_PARAM_CONSOLE_PFN => Disposition::KeepMustMatch,
        HVM_PARAM_STORE_EVTCHN | HVM_PARAM_CONSOLE_EVTCHN => Disposition::Keep,
        i if SAVED.contains(&i) => Disposition::Apply,
        _ => Disposition::Refuse,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rings_kept_others_applied() {
        assert_eq!(disposition(1), Disposition::KeepMustMatch);
        assert_eq!(disposition(17), Disposition::KeepMustMatch);
        assert_eq!(disposition(2), Disposition::Keep);
        assert_eq!(disposition(18), Disposition::Keep);
        assert_eq!(disposition(12), Disposition::Apply);
        assert_eq!(disposition(38), Disposition::Apply);
        assert_eq!(disposition(0), Disposition::Refuse, "callback irq");
        assert_eq!(disposition(1 << 40), Disposition::Refuse);
        for p in SAVED {
            assert_ne!(disposition(u64::from(p)), Disposition::Refuse);
        }
    }
}
