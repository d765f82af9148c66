//! The per-migration report, shared by the stock baseline and depmig runs
//! (schema `depmig-migration-report/1`, documented in
//! `qemu-tests/baseline/README.md`).

use crate::json::Json;
use crate::xlstream::StreamObserver;

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
    /// Further top-level entries appended as they are (e.g. a cross-check).
    pub extra: Vec<(String, Json)>,
}

fn sub(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    a?.checked_sub(b?)
}

/// Builds the report from the stream observer (fed with Unix-ms times) and `meta`.
pub fn build(obs: &StreamObserver, meta: &Meta) -> Json {
    let start = meta.first_byte_ms;
    let mut rounds = Vec::new();
    for (i, r) in obs.rounds.iter().enumerate() {
        let mut o = Json::obj();
        o.set("round", Json::U(i as u64 + 1))
            .set("pages", Json::U(r.pages))
            .set("pfns", Json::U(r.pfns))
            .set("bytes", Json::U(r.bytes))
            .set("records", Json::U(r.records))
            .set("start_ms", Json::opt_u(sub(Some(r.start_ms), start)))
            .set("duration_ms", Json::U(r.end_ms.saturating_sub(r.start_ms)));
        rounds.push(o);
    }
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

    let mut events = Json::obj();
    events
        .set("first_byte_unix_ms", Json::opt_u(start))
        .set("suspended_unix_ms", Json::opt_u(meta.suspended_ms))
        .set("final_round_start_unix_ms", Json::opt_u(final_start))
        .set("stream_end_unix_ms", Json::opt_u(obs.libxl_end_ms))
        .set("go_unix_ms", Json::opt_u(obs.trailer_ms))
        .set("resumed_unix_ms", Json::opt_u(meta.resumed_ms))
        .set("last_byte_unix_ms", Json::opt_u(meta.last_byte_ms));

    let mut stream = Json::obj();
    stream
        .set("complete", Json::Bool(obs.complete()))
        .set("libxl_records", Json::U(obs.libxl_records))
        .set("libxc_records", Json::U(obs.libxc_records))
        .set("libxc_version", Json::U(u64::from(obs.libxc_version)))
        .set("domain_type", Json::U(u64::from(obs.domain_type)))
        .set("pfn_order_anomalies", Json::U(obs.pfn_order_anomalies))
        .set("trailer_bytes", Json::U(obs.trailer_bytes))
        .set(
            "parse_error",
            obs.error()
                .map_or(Json::Null, |e| Json::S(e.as_str().into())),
        );

    let mut o = Json::obj();
    o.set("schema", Json::S(SCHEMA.into()))
        .set("migrator", Json::S(meta.migrator.clone()))
        .set("scenario", Json::S(meta.scenario.clone()))
        .set("workload", Json::S(meta.workload.clone()))
        .set("link_rate_bytes_per_s", Json::U(meta.link_rate))
        .set("page_size", Json::U(4096))
        .set("rounds", Json::U(obs.rounds.len() as u64))
        .set("final_round", Json::opt_u(final_round))
        .set(
            "per_round_pages",
            Json::A(obs.rounds.iter().map(|r| Json::U(r.pages)).collect()),
        )
        .set("per_round", Json::A(rounds))
        .set("total_pages", Json::U(total_pages))
        .set("total_pfns", Json::U(total_pfns))
        .set("page_bytes", Json::U(total_pages * 4096))
        .set("stream_bytes", Json::U(obs.total_bytes))
        .set("total_time_ms", Json::opt_u(sub(end, start)))
        .set("downtime_ms", Json::opt_u(downtime))
        .set("downtime_method", Json::S(method.into()))
        .set("downtime_xl_list_ms", Json::opt_u(xl_list))
        .set("downtime_final_round_ms", Json::opt_u(from_final))
        .set("poll_interval_ms", Json::opt_u(meta.poll_interval_ms))
        .set("events", events)
        .set("stream", stream);
    for (k, v) in &meta.extra {
        o.set(k, v.clone());
    }
    o
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
        let text = build(&obs, &meta).pretty();
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
