//! `hvm_op` sub-operations and HVM parameters (`hvm_op.h`, `params.h`).

use crate::DomId;

/// Set an HVM parameter.
pub const HVMOP_SET_PARAM: u32 = 0;
/// Read an HVM parameter.
pub const HVMOP_GET_PARAM: u32 = 1;

/// How event channel upcalls are delivered.
pub const HVM_PARAM_CALLBACK_IRQ: u32 = 0;
/// Guest frame of the xenstore ring.
pub const HVM_PARAM_STORE_PFN: u32 = 1;
/// Event channel of the xenstore ring.
pub const HVM_PARAM_STORE_EVTCHN: u32 = 2;
/// Guest frame of the PV console ring.
pub const HVM_PARAM_CONSOLE_PFN: u32 = 17;
/// Event channel of the PV console ring.
pub const HVM_PARAM_CONSOLE_EVTCHN: u32 = 18;

/// Virtual platform timer mode.
pub const HVM_PARAM_TIMER_MODE: u32 = 10;
/// Identity-map page table for real mode (VMX).
pub const HVM_PARAM_IDENT_PT: u32 = 12;
/// Where the ACPI PM ports sit (0 legacy, 1 new).
pub const HVM_PARAM_ACPI_IOPORTS_LOCATION: u32 = 19;
/// Ring page of the paging vm_event ring.
pub const HVM_PARAM_PAGING_RING_PFN: u32 = 27;
/// Ring page of the monitor vm_event ring.
pub const HVM_PARAM_MONITOR_RING_PFN: u32 = 28;
/// Ring page of the sharing vm_event ring.
pub const HVM_PARAM_SHARING_RING_PFN: u32 = 29;
/// First ioreq server page.
pub const HVM_PARAM_IOREQ_SERVER_PFN: u32 = 32;
/// Number of ioreq server pages.
pub const HVM_PARAM_NR_IOREQ_SERVER_PAGES: u32 = 33;
/// Guest address of the VM generation id.
pub const HVM_PARAM_VM_GENERATION_ID_ADDR: u32 = 34;
/// Width of the x87 FIP/FDP registers saved (0, 4 or 8 bytes).
pub const HVM_PARAM_X87_FIP_WIDTH: u32 = 36;
/// VM86 TSS location and size.
pub const HVM_PARAM_VM86_TSS_SIZED: u32 = 37;
/// Machine-check capabilities.
pub const HVM_PARAM_MCA_CAP: u32 = 38;

/// Callback type in bits 63:56 of `HVM_PARAM_CALLBACK_IRQ`: an IDT vector.
pub const HVM_PARAM_CALLBACK_TYPE_VECTOR: u64 = 2;

/// The `HVM_PARAM_CALLBACK_IRQ` value that delivers upcalls on `vector`.
pub const fn callback_via_vector(vector: u8) -> u64 {
    (HVM_PARAM_CALLBACK_TYPE_VECTOR << 56) | vector as u64
}

/// `xen_hvm_param`.
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
pub struct HvmParam {
    /// Domain (`DOMID_SELF`).
    pub domid: DomId,
    /// Padding (C leaves it implicit).
    pub _pad: u16,
    /// `HVM_PARAM_*`.
    pub index: u32,
    /// In (set) or out (get).
    pub value: u64,
}
crate::assert_layout!(HvmParam, size = 16, domid = 0, index = 4, value = 8);
