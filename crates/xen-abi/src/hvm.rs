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
