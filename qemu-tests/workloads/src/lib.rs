//! Portable logic of the rig's workloads and measurement tools, host-tested.
//!
//! The binaries under `src/bin/` are thin: the memory pattern checked by
//! `mmuncher`, the HTTP parsing of `wlhttp`, the migration-stream observer and
//! rate limiter of `migpipe`, the probe's and the migration's JSON reports
//! all live here.
#![forbid(unsafe_code)]

pub mod args;
pub mod comm;
pub mod group;
pub mod http;
pub mod json;
pub mod pattern;
pub mod probe;
pub mod rate;
pub mod report;
pub mod stats;
pub mod synth;
pub mod xllist;
pub mod xlstream;

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
