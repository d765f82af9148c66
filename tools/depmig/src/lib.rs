//! depmig's dom0 command as a library: argument parsing, the toolstack
//! boundary, the migration orchestration, reports and plots.
#![forbid(unsafe_code)]

pub mod bitmap;
pub mod cli;
pub mod compare;
pub mod json;
pub mod key;
pub mod migrate;
pub mod progress;
pub mod report;
pub mod savefile;
pub mod svg;
pub mod toolstack;
pub mod twohost;
pub mod xlcfg;

/// The connection to xenstored's socket, part of the host boundary
/// ([`toolstack`]).
pub use toolstack::xsconn;

#[cfg(test)]
pub(crate) mod fake;

#[cfg(test)]
mod twohost_tests;

#[cfg(test)]
mod saverestore_tests;
