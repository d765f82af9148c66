//! The guest ↔ appliance contract, defined once: the layouts the guest agent
//! (guest-lsm/agent, std, in the guest) writes into guest memory and the
//! walker (crates/walker, no_std, in the appliance) reads from outside.
//!
//! * [`table`]: the taint table the BPF program and the agent keep
//!   (mirrored in C by guest-lsm/bpf/table.h, which `tests/c_header.rs`
//!   holds against this crate), with the header the agent writes and the
//!   checked header decoding a reader needs.
//! * [`profile`]: the kernel profile the agent publishes in the table's
//!   page 1, with its encoder and its checked decoder.
//!
//! The format is described in guest-lsm/README.md ("Taint table", "Kernel
//! profile"). Everything a reader decodes comes from a guest and is
//! hostile: decoding never panics and refuses what it cannot trust.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod profile;
pub mod table;

/// The little-endian u32 at byte `o` of `b`, if `b` holds it.
fn le32(b: &[u8], o: usize) -> Option<u32> {
    let s = b.get(o..o.checked_add(4)?)?;
    let mut a = [0u8; 4];
    a.copy_from_slice(s);
    Some(u32::from_le_bytes(a))
}

/// The little-endian u64 at byte `o` of `b`, if `b` holds it.
fn le64(b: &[u8], o: usize) -> Option<u64> {
    let s = b.get(o..o.checked_add(8)?)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(s);
    Some(u64::from_le_bytes(a))
}
