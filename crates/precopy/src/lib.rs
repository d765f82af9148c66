//! depmig's pre-copy engine: the classic live-migration loop over traits
//! (guest memory, dirty log, page sink, clock, dependency oracle), with
//! pluggable stop policies and per-round statistics.
//!
//! Nothing here touches Xen: the appliance implements the traits with
//! hypercalls, the simulator and the tests implement them in memory. Only
//! Xen's errno names come from `xen-abi`, to name a port's failure.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod bitmap;
pub mod engine;
pub mod policy;
pub mod ports;

pub use bitmap::DirtyBitmap;
pub use engine::{migrate, EngineError, Mode, Ports, RoundStats, Summary, BATCH};
pub use policy::{Adaptive, Decision, Policy, PolicyInput, Xen33, Xen4x};
pub use ports::{
    CensusCounts, Clock, DependencyOracle, DirtyLog, GuestMemory, NoOracle, PageSink, PortError,
};
