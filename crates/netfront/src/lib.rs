//! Portable half of the appliance's Xen network frontend (netfront).
//!
//! Everything here is plain logic over two small traits: [`ring::SharedMem`]
//! (a page shared with the backend domain) and [`front::Buffers`] (packet
//! pages that were granted to the backend once, at set-up). The appliance
//! implements them with volatile accesses and grant-table hypercalls; the tests
//! implement them in memory and play the backend themselves, including a
//! hostile one.
//!
//! The backend is another domain and may be buggy or malicious: every index,
//! id, length and flag it writes is checked, and a protocol violation moves the
//! device into a sticky error state ([`NetError`]) instead of panicking, so the
//! TCP layer above sees a dead link and reports an error rather than hanging.

#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

pub mod config;
pub mod device;
pub mod front;
pub mod ring;
pub mod wire;

#[cfg(test)]
mod testutil;

pub use device::NetDevice;
pub use front::{Buffers, Netfront, Notify, Stats};
pub use ring::SharedMem;

/// Size of a Xen page, of a ring page and of every packet buffer.
pub const PAGE_SIZE: usize = 4096;

/// Largest Ethernet frame the frontend sends or accepts (MTU 1500 + header);
/// without `feature-sg` every frame fits in one slot.
pub const MAX_FRAME: usize = 1514;

/// A fatal fault in the conversation with the backend. Once one is seen the
/// device stops moving packets and keeps reporting it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NetError {
    /// The backend advanced a response producer past the requests we made.
    ResponseOverrun,
    /// A transmit response named an id that is not in flight.
    BadTxId,
    /// A receive response's id does not match the slot it arrived in.
    BadRxId,
    /// A receive response described bytes outside its buffer page.
    BadRxExtent,
    /// A multi-slot receive chain ran longer than the ring.
    RxChainTooLong,
}

impl core::fmt::Display for NetError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            NetError::ResponseOverrun => "backend produced more responses than requests",
            NetError::BadTxId => "backend answered a transmit slot that is not in flight",
            NetError::BadRxId => "backend answered a receive slot with a foreign id",
            NetError::BadRxExtent => "backend described a packet outside its buffer page",
            NetError::RxChainTooLong => "backend sent a receive chain longer than the ring",
        })
    }
}
