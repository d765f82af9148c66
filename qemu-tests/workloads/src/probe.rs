//! The latency probe's report (schema `depmig-latency-probe/1`): samples
//! split by phase, each phase summarised as percentiles.

use crate::json;
use crate::stats::summarize;
use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;
use std::time::Duration;

/// Samples taken while the phase file named one phase.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Phase {
    /// The phase's name (`before`, `during`, `after`).
    pub name: String,
    /// Latency of each successful request, ms.
    pub lat: Vec<f64>,
    /// Requests that failed.
    pub failures: u64,
    /// Longest time between two successes that ended in this phase, ms.
    pub longest_gap_ms: u64,
}

/// The probe's report, in the order its keys are written.
#[derive(Debug, Clone, Serialize)]
pub struct ProbeReport {
    schema: &'static str,
    url: String,
    interval_ms: u64,
    timeout_ms: u64,
    longest_gap_between_successes_ms: u64,
    phases: Phases,
}

/// The phases as an object keyed by name, in the order they came.
#[derive(Debug, Clone)]
struct Phases(Vec<(String, PhaseReport)>);

impl Serialize for Phases {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (name, p) in &self.0 {
            m.serialize_entry(name, p)?;
        }
        m.end()
    }
}

/// One phase: counts, and percentiles when a request succeeded.
#[derive(Debug, Clone, Serialize)]
struct PhaseReport {
    ok: u64,
    failures: u64,
    longest_gap_between_successes_ms: u64,
    #[serde(flatten)]
    latency: Option<Latency>,
}

/// Latency percentiles of a phase's successes, ms.
#[derive(Debug, Clone, Serialize)]
struct Latency {
    #[serde(serialize_with = "json::three_decimals")]
    p50_ms: f64,
    #[serde(serialize_with = "json::three_decimals")]
    p90_ms: f64,
    #[serde(serialize_with = "json::three_decimals")]
    p99_ms: f64,
    #[serde(serialize_with = "json::three_decimals")]
    max_ms: f64,
    #[serde(serialize_with = "json::three_decimals")]
    mean_ms: f64,
}

/// The report of a probe of `url`, with phases in the order they came.
pub fn report(
    url: &str,
    interval: Duration,
    timeout: Duration,
    longest_gap: u64,
    phases: &[Phase],
) -> ProbeReport {
    let phases = phases
        .iter()
        .map(|p| {
            let latency = summarize(&p.lat).map(|s| Latency {
                p50_ms: s.p50,
                p90_ms: s.p90,
                p99_ms: s.p99,
                max_ms: s.max,
                mean_ms: s.mean,
            });
            let report = PhaseReport {
                ok: p.lat.len() as u64,
                failures: p.failures,
                longest_gap_between_successes_ms: p.longest_gap_ms,
                latency,
            };
            (p.name.clone(), report)
        })
        .collect();
    ProbeReport {
        schema: "depmig-latency-probe/1",
        url: url.into(),
        interval_ms: interval.as_millis() as u64,
        timeout_ms: timeout.as_millis() as u64,
        longest_gap_between_successes_ms: longest_gap,
        phases: Phases(phases),
    }
}
