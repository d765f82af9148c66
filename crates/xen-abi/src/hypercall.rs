//! Hypercall numbers (`xen.h`, `__HYPERVISOR_*`).
//!
//! On x86-64 a hypercall is a `call` into the hypercall page at
//! `number * 32`, with arguments in rdi, rsi, rdx, r10, r8 and the result in
//! rax.

/// Bytes of hypercall-page code per hypercall.
pub const STUB_SIZE: usize = 32;

/// `set_timer_op`: one-shot timer at an absolute system time (ns).
pub const SET_TIMER_OP: u32 = 15;
/// `memory_op`: reservations and the physmap.
pub const MEMORY_OP: u32 = 12;
/// `multicall`: several hypercalls for the price of one guest exit.
pub const MULTICALL: u32 = 13;
/// `xen_version`: version and feature queries.
pub const XEN_VERSION: u32 = 17;
/// `console_io`: Xen's own console.
pub const CONSOLE_IO: u32 = 18;
/// `grant_table_op`.
pub const GRANT_TABLE_OP: u32 = 20;
/// `vcpu_op`.
pub const VCPU_OP: u32 = 24;
/// `sched_op`: yield, block, shutdown, poll.
pub const SCHED_OP: u32 = 29;
/// `event_channel_op`.
pub const EVENT_CHANNEL_OP: u32 = 32;
/// `hvm_op`: HVM parameters and callbacks.
pub const HVM_OP: u32 = 34;
/// `sysctl`.
pub const SYSCTL: u32 = 35;
/// `domctl`.
pub const DOMCTL: u32 = 36;

/// Number of stubs a hypercall page holds.
pub const PAGE_STUBS: usize = crate::PAGE_SIZE / STUB_SIZE;

/// `struct multicall_entry` (x86-64): one hypercall of a `multicall`; Xen
/// writes its return value into `result`.
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
pub struct MulticallEntry {
    /// Hypercall number.
    pub op: u64,
    /// Its return value (negative errno on failure).
    pub result: i64,
    /// Its arguments.
    pub args: [u64; 6],
}
crate::assert_layout!(MulticallEntry, size = 64, op = 0, result = 8, args = 16);
