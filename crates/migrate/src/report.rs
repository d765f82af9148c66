//! The per-migration report from the source's figures: a
//! [`MigrationReport`] (schema [`SCHEMA`], defined with dom0's reader in
//! `depmig_control::report`), as compact JSON.
//!
//! What the source cannot know is `null`: it never sees the destination
//! run, so `resumed_unix_ms`, `downtime_xl_list_ms` and `poll_interval_ms`
//! are dom0's to fill in. `downtime_ms` is measured by the source: guest
//! seen suspended -> ACK received (the destination acknowledges once the
//! shell holds everything; dom0 unpauses it right after).
//! `downtime_final_round_ms` runs from the copy round's start to the ACK.
//! depmig's own per-round figures (dirty, dirty-and-tainted, skipped, and
//! in paper-analysis mode whose the dirty tainted pages were) go in the
//! top-level `depmig` object, which the schema allows as an extra entry.
//!
//! Compact output matters: the appliance publishes the report through
//! xenstore writes, whose payload xenstored caps; six rounds take about
//! 1.5 KB.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use depmig_control::report::{
    Census, DeltaCacheFigures, Events, MigrationReport, PageFigures, RoundFigures, SourceFigures,
    StreamFigures, VerifyFigures, PAGE_SIZE,
};
use depmig_precopy::{CensusCounts, RoundStats};

use crate::adapt::Why;
use crate::source::{RoundEncodings, SourceStats};
use crate::verify::{ms_per_gib, VerifyStats, RANGE_FRAMES, RING_RULE};

pub use depmig_control::report::SCHEMA;

/// What the caller adds to the source's figures.
#[derive(Clone, Copy, Debug, Default)]
pub struct ReportMeta<'a> {
    /// Who migrated (`depmig`).
    pub migrator: &'a str,
    /// Scenario name (may be empty).
    pub scenario: &'a str,
    /// The guest's workload (may be empty).
    pub workload: &'a str,
    /// Rate the link was held to in bytes/s (0 = unlimited).
    pub link_rate: u64,
    /// Unix time in ns at clock reading 0, when the caller knows the wall
    /// clock; `events` are `null` otherwise.
    pub unix_offset_ns: Option<u64>,
    /// The migration's outcome (`committed` or a failure reason).
    pub result: &'a str,
}

fn ms(ns: u64) -> u64 {
    ns / 1_000_000
}

/// Fills the report of a migration from the source's figures.
pub fn report(stats: &SourceStats, meta: &ReportMeta<'_>) -> MigrationReport {
    let rounds = &stats.rounds;
    let copy_round = rounds.last().filter(|r| r.last);
    let final_start = copy_round.and_then(|_| stats.round_start_ns.last().copied());
    let since_start = |t: u64| ms(t.saturating_sub(stats.start_ns));
    let pages = |i: usize| -> u64 {
        let r = rounds.get(i).map_or(0, |r| r.sent);
        r.saturating_sub(stats.round_holes.get(i).copied().unwrap_or(0))
    };
    let total_pages: u64 = (0..rounds.len()).map(pages).sum();
    let total_pfns: u64 = rounds.iter().map(|r| r.sent + r.skipped_free).sum();
    let unix = |t: Option<u64>| -> Option<u64> {
        let off = meta.unix_offset_ns?;
        Some(ms(off.checked_add(t?)?))
    };
    let per_round = rounds
        .iter()
        .enumerate()
        .map(|(i, r)| RoundFigures {
            round: u64::from(r.round),
            pages: pages(i),
            pfns: Some(r.sent + r.skipped_free),
            bytes: Some(r.bytes),
            records: Some(stats.round_records.get(i).copied().unwrap_or(0)),
            start_ms: stats.round_start_ns.get(i).map(|&t| since_start(t)),
            duration_ms: Some(ms(r.time_ns)),
        })
        .collect();
    // Paper-analysis mode: whose the dirty tainted pages were, for each
    // round whose census was taken (parallel arrays keep it compact).
    let census = (!stats.census.is_empty()).then(|| {
        let c = &stats.census;
        let col = |f: fn(&CensusCounts) -> u64| Some(c.iter().map(f).collect());
        Census {
            round: col(|c| u64::from(c.round)),
            asked: col(|c| c.asked),
            user: col(|c| c.user),
            page_tables: col(|c| c.page_tables),
            kernel: col(|c| c.kernel),
            unreadable: col(|c| c.unreadable),
        }
    });
    let per_round_of =
        |f: fn(&RoundStats) -> u64| -> Option<Vec<u64>> { Some(rounds.iter().map(f).collect()) };
    MigrationReport {
        schema: SCHEMA.into(),
        migrator: meta.migrator.into(),
        scenario: Some(meta.scenario.into()),
        workload: Some(meta.workload.into()),
        link_rate_bytes_per_s: Some(meta.link_rate.into()),
        page_size: PAGE_SIZE,
        rounds: rounds.len() as u64,
        final_round: copy_round.map(|r| u64::from(r.round)),
        per_round_pages: (0..rounds.len()).map(pages).collect(),
        per_round,
        total_pages,
        total_pfns: Some(total_pfns.into()),
        page_bytes: Some(total_pages.saturating_mul(PAGE_SIZE).into()),
        stream_bytes: Some(stats.stream_bytes.into()),
        total_time_ms: stats.total_ns().map(|t| ms(t).into()),
        downtime_ms: stats.downtime_ns().map(|t| ms(t).into()),
        downtime_method: Some(
            if stats.downtime_ns().is_some() {
                "source: guest seen suspended -> destination's ACK"
            } else {
                "unknown"
            }
            .into(),
        ),
        downtime_xl_list_ms: None,
        downtime_final_round_ms: final_start
            .and_then(|f| Some(ms(stats.ack_ns?.checked_sub(f)?).into())),
        poll_interval_ms: None,
        events: Some(Events {
            first_byte_unix_ms: unix(Some(stats.start_ns)),
            suspended_unix_ms: unix(stats.suspended_ns),
            final_round_start_unix_ms: unix(final_start),
            stream_end_unix_ms: unix(stats.end_ns),
            go_unix_ms: unix(stats.ack_ns),
            resumed_unix_ms: None,
            last_byte_unix_ms: unix(stats.trailer_ns),
        }),
        stream: Some(StreamFigures {
            complete: Some(stats.end_ns.is_some()),
            libxl_records: None,
            libxc_records: Some(stats.records),
            libxc_version: Some(3),
            domain_type: Some(2),
            pfn_order_anomalies: Some(0),
            // Sealed, the stream ends with its final record instead.
            trailer_bytes: Some(if stats.encrypted {
                0
            } else {
                depmig_stream::handshake::TRAILER_LEN as u64
            }),
            parse_error: None,
        }),
        depmig: Some(SourceFigures {
            mode: Some(stats.mode.map_or("", |m| m.name()).into()),
            policy: Some(stats.policy.into()),
            result: Some(meta.result.into()),
            nr_pfns: Some(stats.nr_pfns),
            frozen_groups: Some(u64::from(stats.frozen_groups)),
            suspend_wait_ms: stats
                .suspended_ns
                .and_then(|s| Some(ms(s.checked_sub(stats.suspend_request_ns?)?))),
            per_round_dirty: per_round_of(|r| r.dirty),
            per_round_dirty_tainted: per_round_of(|r| r.dirty_tainted),
            per_round_skipped_free: per_round_of(|r| r.skipped_free),
            per_round_holes: Some(stats.round_holes.clone()),
            census,
            verify: stats.verify.as_ref().map(verify_figures),
            // Absent in clear, so that reports of clear migrations read
            // and write as before.
            encrypted: stats.encrypted.then_some(true),
            sealed_records: stats.encrypted.then_some(stats.sealed_records),
            pages: page_figures(stats),
        }),
        cli: None,
    }
}

/// How pages travelled, per round; `None` when no round was counted
/// (figures built by hand, or a failure before round 1).
fn page_figures(stats: &SourceStats) -> Option<PageFigures> {
    if stats.round_pages.is_empty() {
        return None;
    }
    let col =
        |f: fn(&depmig_stream::PageTally) -> u64| Some(stats.round_pages.iter().map(f).collect());
    let saved = stats
        .rounds
        .iter()
        .zip(&stats.round_raw_bytes)
        .map(|(r, &raw)| raw.saturating_sub(r.bytes))
        .collect();
    Some(PageFigures {
        codec: Some(stats.codec.as_str().into()),
        per_round_raw: col(|t| t.raw),
        per_round_lz4: col(|t| t.lz4),
        per_round_zero: col(|t| t.zero),
        per_round_delta: col(|t| t.delta),
        per_round_raw_bytes: Some(stats.round_raw_bytes.clone()),
        per_round_bytes_saved: Some(saved),
        delta_cache: stats.delta_cache.map(|c| DeltaCacheFigures {
            mib: Some(u64::from(c.mib)),
            slots: Some(c.slots),
            hits: Some(c.hits),
            misses: Some(c.misses),
            inserts: Some(c.inserts),
            evictions: Some(c.evictions),
        }),
        ..encoding_figures(stats)
    })
}

/// The adaptive encodings' figures per round ([`crate::adapt`]); all
/// absent when no encoding was agreed on.
fn encoding_figures(stats: &SourceStats) -> PageFigures {
    let e = &stats.round_encodings;
    if e.is_empty() {
        return PageFigures::default();
    }
    let col = |f: fn(&RoundEncodings) -> u64| Some(e.iter().map(f).collect());
    let text =
        |f: fn(&RoundEncodings) -> &'static str| Some(e.iter().map(|r| f(r).into()).collect());
    PageFigures {
        encodings: Some(if stats.adaptive { "adaptive" } else { "fixed" }.into()),
        per_round_encodings: text(RoundEncodings::state),
        per_round_encodings_why: text(|r| r.why.map_or("none", Why::as_str)),
        per_round_encodings_switches: col(|r| u64::from(r.switches)),
        per_round_unencoded: col(|r| r.off_pages),
        per_round_encode_us: col(|r| r.encode_ns / 1000),
        per_round_link_wait_us: col(|r| r.wait_ns / 1000),
        per_round_predicted_encoded_us: col(|r| r.predicted_encoded_ns.unwrap_or(0) / 1000),
        per_round_predicted_raw_us: col(|r| r.predicted_raw_ns.unwrap_or(0) / 1000),
        ..PageFigures::default()
    }
}

/// Page verification's section: the source's own counts and time, the
/// destination's time and findings from its verdict.
fn verify_figures(v: &VerifyStats) -> VerifyFigures {
    let result = match (v.complete, v.mismatched_ranges) {
        (false, _) => "incomplete",
        (true, 0) => "match",
        (true, _) => "mismatch",
    };
    VerifyFigures {
        result: Some(result.into()),
        range_frames: Some(RANGE_FRAMES),
        ranges: Some(v.ranges),
        mismatched_ranges: v.complete.then_some(v.mismatched_ranges),
        frames_compared: Some(v.data),
        frames_free: Some(v.free),
        frames_holes: Some(v.holes),
        frames_rings: Some(v.rings),
        ring_rule: Some(RING_RULE.into()),
        mismatched_frames: v.complete.then_some(v.mismatched_frames),
        mismatched_frames_listed: v.complete.then(|| v.listed.clone()),
        mismatched_frames_classes: v.complete.then(|| {
            v.listed_classes
                .iter()
                .map(|(s, d)| format!("{}/{}", s.as_str(), d.as_str()))
                .collect()
        }),
        source_ms: Some(ms(v.digest_ns)),
        destination_ms: v.peer_digest_ns.map(ms),
        source_ms_per_gib: ms_per_gib(v.digest_ns, v.bytes_read),
        destination_ms_per_gib: v
            .peer_digest_ns
            .zip(v.peer_bytes_read)
            .and_then(|(ns, b)| ms_per_gib(ns, b)),
        unlogged_frames: Some(v.unlogged_frames),
        unlogged_frames_listed: Some(v.unlogged_listed.clone()),
        recheck_ms: Some(ms(v.recheck_ns)),
    }
}

/// The report of a migration from the source's figures, as compact JSON:
/// what the appliance publishes.
pub fn build(stats: &SourceStats, meta: &ReportMeta<'_>) -> String {
    report(stats, meta).to_json()
}

#[cfg(test)]
mod tests {
    use super::*;
    use depmig_precopy::Mode;

    /// What the source knows after failing before its first round (here
    /// the destination refused the key): the run's start and the guest's
    /// size, no round, no suspension, no END.
    fn failed_before_round_1() -> SourceStats {
        SourceStats {
            mode: Some(Mode::Baseline),
            policy: "xen-4.x",
            nr_pfns: 32768,
            start_ns: 5_000_000_000,
            ..SourceStats::default()
        }
    }

    /// The report of a migration that failed before round 1, exactly; dom0's
    /// `depmig migrate` tests read the same file (tools/depmig,
    /// `migrate_tests.rs`), so both sides agree on it.
    const FAILED_BEFORE_ROUND_1: &str =
        include_str!("../tests/data/report-failed-before-round-1.json");

    #[test]
    fn a_failure_before_round_1_reports_no_round_and_says_failed() {
        let text = build(
            &failed_before_round_1(),
            &ReportMeta {
                migrator: "depmig",
                scenario: "migrate-fault-key",
                workload: "",
                link_rate: 5_000_000,
                unix_offset_ns: Some(1_800_000_000_000_000_000),
                result: "failed",
            },
        );
        assert_eq!(text, FAILED_BEFORE_ROUND_1);
    }

    /// What the source knows after a paper-analysis migration of two
    /// rounds (one live, then the copy round), each with its census, and a
    /// scenario name that needs escaping.
    fn two_rounds() -> SourceStats {
        let round = |round, last, dirty, sent, bytes| RoundStats {
            round,
            last,
            dirty,
            dirty_tainted: dirty / 2,
            sent,
            skipped_free: 3,
            skipped_untainted: 0,
            bytes,
            time_ns: 1_500_000_000 * u64::from(round),
        };
        let census = |round, asked| CensusCounts {
            round,
            asked,
            user: asked / 4,
            page_tables: 1,
            kernel: asked - asked / 4 - 1,
            unreadable: 0,
        };
        SourceStats {
            mode: Some(Mode::PaperAnalysis),
            policy: "xen-4.x",
            nr_pfns: 32768,
            rounds: vec![
                round(1, false, 32768, 32765, 134_000_000),
                round(2, true, 40, 37, 160_000),
            ],
            round_start_ns: vec![5_000_000_000, 6_600_000_000],
            round_records: vec![33, 1],
            round_holes: vec![0, 2],
            frozen_groups: 0,
            stream_bytes: 134_200_000,
            records: 40,
            start_ns: 5_000_000_000,
            suspend_request_ns: Some(6_500_000_000),
            suspended_ns: Some(6_550_000_000),
            end_ns: Some(9_000_000_000),
            trailer_ns: Some(9_100_000_000),
            ack_ns: Some(9_200_000_000),
            census: vec![census(1, 16384), census(2, 20)],
            verify: None,
            ..SourceStats::default()
        }
    }

    /// The report of [`two_rounds`], exactly: the bytes the source
    /// appliance publishes and dom0 reads.
    const TWO_ROUNDS: &str = include_str!("../tests/data/report-two-rounds.json");

    #[test]
    fn a_two_round_report_is_written_exactly() {
        let text = build(
            &two_rounds(),
            &ReportMeta {
                migrator: "depmig",
                scenario: "migrate-\"quoted\"\n",
                workload: "mmuncher",
                link_rate: 0,
                unix_offset_ns: Some(1_800_000_000_000_000_000),
                result: "committed",
            },
        );
        assert_eq!(text, TWO_ROUNDS);
    }

    #[test]
    fn strings_are_escaped() {
        let meta = ReportMeta {
            scenario: "a\"b\\c\nd\u{1}é",
            ..ReportMeta::default()
        };
        let text = build(&SourceStats::default(), &meta);
        assert!(text.contains(r#""scenario":"a\"b\\c\nd\u0001é""#), "{text}");
    }

    #[test]
    fn a_report_reads_back_as_the_figures_it_was_built_from() {
        let meta = ReportMeta {
            migrator: "depmig",
            scenario: "s",
            workload: "w",
            link_rate: 1,
            unix_offset_ns: None,
            result: "committed",
        };
        let built = report(&two_rounds(), &meta);
        let again: MigrationReport = serde_json::from_str(&build(&two_rounds(), &meta)).unwrap();
        assert_eq!(again, built);
        assert_eq!(again.per_round_pages, [32765, 35]);
        assert_eq!(again.final_round, Some(2));
        // No wall clock: no event time.
        assert_eq!(again.events.map(|e| e.go_unix_ms), Some(None));
        let census = again.depmig.and_then(|d| d.census).unwrap();
        assert_eq!(census.user, Some(vec![4096, 5]));
    }

    #[test]
    fn page_figures_read_back_and_stay_out_when_not_counted() {
        let meta = ReportMeta::default();
        let plain = build(&two_rounds(), &meta);
        assert!(!plain.contains("\"pages\":{"), "{plain}");
        let mut st = two_rounds();
        st.round_raw_bytes = vec![134_500_000, 200_000];
        st.round_pages = vec![
            depmig_stream::PageTally {
                raw: 32765,
                ..Default::default()
            },
            depmig_stream::PageTally {
                raw: 5,
                delta: 30,
                payload_bytes: 600,
                ..Default::default()
            },
        ];
        st.delta = true;
        st.delta_cache = Some(crate::delta_cache::CacheStats {
            mib: 4,
            slots: 1024,
            hits: 30,
            misses: 40,
            inserts: 40,
            evictions: 2,
        });
        let text = build(&st, &meta);
        let again: MigrationReport = serde_json::from_str(&text).unwrap();
        let p = again.depmig.and_then(|d| d.pages).unwrap();
        assert_eq!(p.codec.as_deref(), Some("none"));
        assert_eq!(p.per_round_delta, Some(vec![0, 30]));
        assert_eq!(p.per_round_raw, Some(vec![32765, 5]));
        assert_eq!(p.per_round_bytes_saved, Some(vec![500_000, 40_000]));
        let c = p.delta_cache.unwrap();
        assert_eq!((c.hits, c.evictions), (Some(30), Some(2)));
        // No encoding figures without them, not even as nulls.
        assert!(!text.contains("encodings"), "{text}");
        assert_eq!(p.per_round_encodings, None);
    }

    #[test]
    fn adaptive_encoding_figures_read_back_per_round() {
        let mut st = two_rounds();
        st.round_raw_bytes = vec![134_500_000, 200_000];
        st.round_pages = vec![depmig_stream::PageTally::default(); 2];
        st.adaptive = true;
        st.round_encodings = vec![
            RoundEncodings {
                on_at_start: true,
                on_at_end: false,
                switches: 1,
                off_pages: 32_000,
                encode_ns: 1_500_000,
                wait_ns: 2_000,
                why: Some(Why::Cpu),
                predicted_encoded_ns: Some(30_000_000),
                predicted_raw_ns: Some(6_000_000),
            },
            RoundEncodings {
                on_at_start: false,
                on_at_end: false,
                switches: 0,
                off_pages: 35,
                encode_ns: 0,
                wait_ns: 0,
                why: None,
                predicted_encoded_ns: None,
                predicted_raw_ns: None,
            },
        ];
        let text = build(&st, &ReportMeta::default());
        let again: MigrationReport = serde_json::from_str(&text).unwrap();
        let p = again.depmig.and_then(|d| d.pages).unwrap();
        assert_eq!(p.encodings.as_deref(), Some("adaptive"));
        let words = |v: Option<Vec<String>>| v.unwrap().join(",");
        assert_eq!(words(p.per_round_encodings), "switched,off");
        assert_eq!(words(p.per_round_encodings_why), "cpu,none");
        assert_eq!(p.per_round_encodings_switches, Some(vec![1, 0]));
        assert_eq!(p.per_round_unencoded, Some(vec![32_000, 35]));
        assert_eq!(p.per_round_encode_us, Some(vec![1500, 0]));
        assert_eq!(p.per_round_link_wait_us, Some(vec![2, 0]));
        assert_eq!(p.per_round_predicted_encoded_us, Some(vec![30_000, 0]));
        assert_eq!(p.per_round_predicted_raw_us, Some(vec![6000, 0]));
    }
}
