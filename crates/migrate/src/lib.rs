//! depmig's migration protocol, independent of Xen: the source role
//! ([`source::run`]) and the destination role ([`dest::run`]) over traits
//! the appliance implements with hypercalls ([`SourceDomain`],
//! [`DestDomain`]) and its TCP link ([`Transport`]), plus the per-migration
//! JSON report ([`report`]).
//!
//! The wire is `depmig-stream`'s: hellos, Xen's libxc stream v2 in clear
//! with the Poly1305 trailer or in sealed ChaCha20-Poly1305 records
//! (`SourceConfig::encrypt`, `DestConfig::encrypt`); then the
//! destination's tagged reply ([`reply`]). Memory
//! moves through `depmig-precopy`'s engine, policies and modes.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod adapt;
pub mod config;
pub mod delta_cache;
pub mod dest;
pub mod params;
pub mod ports;
pub mod reply;
pub mod report;
pub mod saved;
pub mod source;
pub mod verify;

#[cfg(feature = "tcplink")]
pub mod link;

pub use config::{codec, engine_mode, AnyPolicy, PolicyKind};
pub use dest::{DestConfig, DestError, DestOp, DestStats};
pub use ports::{DestDomain, NoProgress, Progress, SourceDomain, State, Transport, TransportError};
pub use reply::{NakCode, Reply};
pub use source::{
    SourceConfig, SourceError, SourceFailure, SourceOp, SourceOutcome, SourceStats, RECORD_PAGES,
};
pub use verify::{VerifyError, VerifyStats};

pub use depmig_precopy::{
    CensusCounts, Clock, DependencyOracle, DirtyBitmap, Mode, NoOracle, Policy, PortError,
    RoundStats,
};
pub use depmig_stream::{Codec, HvmParam, PageTally, TscInfo};
