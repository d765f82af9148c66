//! The per-migration report, shared by the stock baseline and depmig runs
//! (schema `depmig-migration-report/1`, documented in
//! `qemu-tests/baseline/README.md`).

use crate::json;
use crate::xlstream::StreamObserver;
use serde::Serialize;

/// Schema name written into every report.
pub const SCHEMA: &str = "depmig-migration-report/1";

/// What the caller knows beyond the stream itself. Times are Unix ms.
#[derive(Debug, Clone, Default)]
pub struct Meta {
    /// Who migrated: `xl-migrate` for the stock baseline.
    pub migrator: String,
    /// Scenario name.
    pub scenario: String,
    /// Workload name.
    pub workload: String,
    /// Link rate the stream was held to (bytes/s, 0 = unlimited).
    pub link_rate: u64,
    /// First stream byte seen.
    pub first_byte_ms: Option<u64>,
    /// Last stream byte seen (end of input).
    pub last_byte_ms: Option<u64>,
    /// Source guest first seen suspended (xl list state polling).
    pub suspended_ms: Option<u64>,
    /// Destination guest first seen running (xl list state polling).
    pub resumed_ms: Option<u64>,
    /// Period of that polling.
    pub poll_interval_ms: Option<u64>,
    /// The strict decoder's cross-check, written last when there is one.
    pub strict_decoder: Option<StrictDecoder>,
}

/// depmig-stream's strict decoder's verdict on the bytes migpipe forwarded,
/// beside migpipe's own tolerant count.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct StrictDecoder {
    /// The decoder's name (`depmig-stream`).
    pub decoder: &'static str,
    /// Whether it saw the stream's end.
    pub complete: bool,
    /// Why it stopped reading, if it refused the stream.
    pub error: Option<String>,
    /// Pages it counted in each round.
    #[serde(serialize_with = "json::one_line")]
    pub per_round_pages: Vec<u64>,
}

/// The report, in the order its keys are written (`qemu-tests/baseline/README.md`
/// describes each).
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    schema: &'static str,
    migrator: String,
    scenario: String,
    workload: String,
    link_rate_bytes_per_s: u64,
    page_size: u64,
    rounds: u64,
    final_round: Option<u64>,
    #[serde(serialize_with = "json::one_line")]
    per_round_pages: Vec<u64>,
    per_round: Vec<RoundReport>,
    total_pages: u64,
    total_pfns: u64,
    page_bytes: u64,
    stream_bytes: u64,
    total_time_ms: Option<u64>,
    downtime_ms: Option<u64>,
    downtime_method: &'static str,
    downtime_xl_list_ms: Option<u64>,
    downtime_final_round_ms: Option<u64>,
    poll_interval_ms: Option<u64>,
    events: EventTimes,
    stream: StreamReport,
    #[serde(skip_serializing_if = "Option::is_none")]
    strict_decoder: Option<StrictDecoder>,
}

/// One pre-copy round; `start_ms` from the first stream byte.
#[derive(Debug, Clone, Serialize)]
struct RoundReport {
    round: u64,
    pages: u64,
    pfns: u64,
    bytes: u64,
    records: u64,
    start_ms: Option<u64>,
    duration_ms: u64,
}

/// When each thing was seen, Unix ms.
#[derive(Debug, Clone, Serialize)]
struct EventTimes {
    first_byte_unix_ms: Option<u64>,
    suspended_unix_ms: Option<u64>,
    final_round_start_unix_ms: Option<u64>,
    stream_end_unix_ms: Option<u64>,
    go_unix_ms: Option<u64>,
    resumed_unix_ms: Option<u64>,
    last_byte_unix_ms: Option<u64>,
}

/// What the observer made of the stream.
#[derive(Debug, Clone, Serialize)]
struct StreamReport {
    complete: bool,
    libxl_records: u64,
    libxc_records: u64,
    libxc_version: u32,
    domain_type: u32,
    pfn_order_anomalies: u64,
    trailer_bytes: u64,
    parse_error: Option<&'static str>,
}

fn sub(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    a?.checked_sub(b?)
}

/// Builds the report from the stream observer (fed with Unix-ms times) and `meta`.
pub fn build(obs: &StreamObserver, meta: &Meta) -> Report {
    let start = meta.first_byte_ms;
    let per_round = obs
        .rounds
        .iter()
        .enumerate()
        .map(|(i, r)| RoundReport {
            round: i as u64 + 1,
            pages: r.pages,
            pfns: r.pfns,
            bytes: r.bytes,
            records: r.records,
            start_ms: sub(Some(r.start_ms), start),
            duration_ms: r.end_ms.saturating_sub(r.start_ms),
        })
        .collect();
    // The stop-and-copy round is the last one when libxc's end-of-checkpoint
    // records followed it.
    let final_round =
        (obs.after_pages_ms.is_some() && !obs.rounds.is_empty()).then_some(obs.rounds.len() as u64);
    let final_start = final_round
        .and_then(|_| obs.rounds.last())
        .map(|r| r.start_ms);
    let total_pages: u64 = obs.rounds.iter().map(|r| r.pages).sum();
    let total_pfns: u64 = obs.rounds.iter().map(|r| r.pfns).sum();
    let xl_list = sub(meta.resumed_ms, meta.suspended_ms);
    let from_final = sub(meta.resumed_ms, final_start);
    // The pipe's own view needs no polling: the stop-and-copy round starts
    // right after the suspend, and the receiver unpauses right after xl's
    // "go" message, which follows libxl's END.
    let pipe = sub(obs.trailer_ms, final_start);
    let (downtime, method) = match (pipe, xl_list, from_final) {
        (Some(d), _, _) => (
            Some(d),
            "pipe: stop-and-copy round start -> xl's go message",
        ),
        (None, Some(d), _) => (
            Some(d),
            "xl-list: source seen suspended -> destination seen running",
        ),
        (None, None, Some(d)) => (
            Some(d),
            "pipe + xl-list: final round start -> destination seen running",
        ),
        (None, None, None) => (None, "unknown"),
    };
    let end = meta.resumed_ms.or(meta.last_byte_ms);

    Report {
        schema: SCHEMA,
        migrator: meta.migrator.clone(),
        scenario: meta.scenario.clone(),
        workload: meta.workload.clone(),
        link_rate_bytes_per_s: meta.link_rate,
        page_size: 4096,
        rounds: obs.rounds.len() as u64,
        final_round,
        per_round_pages: obs.rounds.iter().map(|r| r.pages).collect(),
        per_round,
        total_pages,
        total_pfns,
        page_bytes: total_pages * 4096,
        stream_bytes: obs.total_bytes,
        total_time_ms: sub(end, start),
        downtime_ms: downtime,
        downtime_method: method,
        downtime_xl_list_ms: xl_list,
        downtime_final_round_ms: from_final,
        poll_interval_ms: meta.poll_interval_ms,
        events: EventTimes {
            first_byte_unix_ms: start,
            suspended_unix_ms: meta.suspended_ms,
            final_round_start_unix_ms: final_start,
            stream_end_unix_ms: obs.libxl_end_ms,
            go_unix_ms: obs.trailer_ms,
            resumed_unix_ms: meta.resumed_ms,
            last_byte_unix_ms: meta.last_byte_ms,
        },
        stream: StreamReport {
            complete: obs.complete(),
            libxl_records: obs.libxl_records,
            libxc_records: obs.libxc_records,
            libxc_version: obs.libxc_version,
            domain_type: obs.domain_type,
            pfn_order_anomalies: obs.pfn_order_anomalies,
            trailer_bytes: obs.trailer_bytes,
            parse_error: obs.error().map(|e| e.as_str()),
        },
        strict_decoder: meta.strict_decoder.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xlstream::tests::Builder;

    #[test]
    fn report_from_a_synthetic_migration() {
        let mut b = Builder::xl();
        b.libxc_start();
        b.round(&(0..2000).collect::<Vec<_>>());
        b.round(&(10..20).collect::<Vec<_>>());
        b.finish();
        let mut obs = StreamObserver::new();
        for (i, c) in b.out.chunks(4096).enumerate() {
            obs.feed(c, 1_000 + i as u64);
        }
        let meta = Meta {
            migrator: "xl-migrate".into(),
            link_rate: 1 << 20,
            first_byte_ms: Some(1_000),
            last_byte_ms: Some(5_000),
            suspended_ms: Some(1_500),
            resumed_ms: Some(2_000),
            ..Meta::default()
        };
        let text = json::pretty(&build(&obs, &meta)).unwrap();
        assert!(text.contains("\"rounds\": 2,"), "{text}");
        assert!(text.contains("\"final_round\": 2,"), "{text}");
        let p1 = (0..2000).filter(|p| p % 7 != 0).count();
        let p2 = (10..20).filter(|p| p % 7 != 0).count();
        assert!(
            text.contains(&format!("\"per_round_pages\": [{p1}, {p2}]")),
            "{text}"
        );
        // The pipe's view: stop-and-copy round start -> go message.
        let go = obs.trailer_ms.unwrap();
        let fin = obs.rounds[1].start_ms;
        assert!(
            text.contains(&format!("\"downtime_ms\": {},", go - fin)),
            "{text}"
        );
        assert!(text.contains("\"downtime_xl_list_ms\": 500,"), "{text}");
        assert!(text.contains("\"total_time_ms\": 1000,"), "{text}");
        assert!(text.contains("\"parse_error\": null"), "{text}");
    }
}

/// Events written by the scenario's state poller, one `key=value` per line:
/// `suspended_unix_ms`, `resumed_unix_ms`, `poll_interval_ms`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Events {
    /// Source first seen suspended.
    pub suspended_ms: Option<u64>,
    /// Destination first seen running.
    pub resumed_ms: Option<u64>,
    /// Poll period.
    pub poll_interval_ms: Option<u64>,
}

/// Parses an events file; unknown keys and bad lines are ignored (the first value of a key wins).
pub fn parse_events(text: &str) -> Events {
    let mut e = Events::default();
    for line in text.lines() {
        let Some((k, v)) = line.trim().split_once('=') else {
            continue;
        };
        let Ok(v) = v.trim().parse::<u64>() else {
            continue;
        };
        let slot = match k.trim() {
            "suspended_unix_ms" => &mut e.suspended_ms,
            "resumed_unix_ms" => &mut e.resumed_ms,
            "poll_interval_ms" => &mut e.poll_interval_ms,
            _ => continue,
        };
        slot.get_or_insert(v);
    }
    e
}

#[cfg(test)]
mod event_tests {
    use super::*;

    #[test]
    fn events_file() {
        let e = parse_events("poll_interval_ms=200\nsuspended_unix_ms=5\njunk\nsuspended_unix_ms=9\nresumed_unix_ms=x\n");
        assert_eq!(
            e,
            Events {
                suspended_ms: Some(5),
                resumed_ms: None,
                poll_interval_ms: Some(200)
            }
        );
    }
}
