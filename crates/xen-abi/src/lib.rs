//! Xen public ABI (x86-64) as Rust types: hypercall numbers, constants, structs.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]
