//! Xen public ABI (x86-64) as Rust types: hypercall numbers, constants, structs.
//!
//! Everything here mirrors Xen's public headers (`xen/include/public`, shipped
//! by Debian as `libxen-dev`) of the releases in [`domctl::RELEASES`]. Each
//! struct carries `const` size and offset assertions with the values those
//! headers give for x86-64, and `tests/c_headers.rs` compiles the same facts
//! against the installed headers (4.17) and, when given their source trees,
//! those of the other releases, so a drift in either direction fails the
//! tests.
//!
//! The `xen-sys` crate is deliberately not used: its published version
//! carries Xen 4.15's headers (so its domctl layouts are not 4.17's) and its
//! hypercall wrappers are wrong; checking its bindgen types would cost as
//! much as writing these, which are checked against the installed headers.
//!
//! Structs derive `zerocopy` traits so the image can view them as bytes
//! without `unsafe`; padding that C leaves implicit is spelled out as `_pad`
//! fields.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

pub mod console;
pub mod domctl;
pub mod errno;
pub mod event_channel;
pub mod grant_table;
pub mod hvm;
pub mod hvm_save;
pub mod hypercall;
pub mod memory;
pub mod sched;
pub mod shared_info;
pub mod start_info;
pub mod version;

/// A domain identifier (`domid_t`).
pub type DomId = u16;

/// "This domain" in hypercalls that take a domain id.
pub const DOMID_SELF: DomId = 0x7FF0;

/// First domain id that names no real domain (`DOMID_FIRST_RESERVED`).
pub const DOMID_FIRST_RESERVED: DomId = 0x7FF0;

/// An event channel port (`evtchn_port_t`).
pub type EvtchnPort = u32;

/// A grant reference (`grant_ref_t`).
pub type GrantRef = u32;

/// Size of a Xen page on x86 (`XEN_PAGE_SIZE`).
pub const PAGE_SIZE: usize = 4096;

/// log2 of [`PAGE_SIZE`].
pub const PAGE_SHIFT: u32 = 12;

/// Asserts a struct's size and field offsets at compile time.
#[macro_export]
macro_rules! assert_layout {
    ($ty:ty, size = $size:expr $(, $field:ident = $off:expr)* $(,)?) => {
        const _: () = assert!(core::mem::size_of::<$ty>() == $size);
        $( const _: () = assert!(core::mem::offset_of!($ty, $field) == $off); )*
    };
}
