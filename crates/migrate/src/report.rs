//! The per-migration report from the source's figures, schema
//! `depmig-migration-report/1` (documented in `qemu-tests/baseline/README.md`,
//! the same keys as the stock baseline's report), as compact JSON.
//!
//! What the source cannot know is `null`: it never sees the destination
//! run, so `resumed_unix_ms`, `downtime_xl_list_ms` and `poll_interval_ms`
//! are dom0's to fill in. `downtime_ms` is measured by the source: guest
//! seen suspended -> ACK received (the destination acknowledges once the
//! shell holds everything; dom0 unpauses it right after).
//! `downtime_final_round_ms` runs from the copy round's start to the ACK.
//! depmig's own per-round figures (dirty, dirty-and-tainted, skipped, and
//! in paper-analysis mode whose the dirty tainted pages were) go in a
//! top-level `depmig` object, which the schema allows as an extra entry.
//!
//! Compact output matters: the appliance publishes the report through one
//! xenstore write, whose payload Xen caps at 4096 bytes; six rounds take
//! about 1.5 KB.

use alloc::string::String;
use core::fmt::Write as _;

use crate::source::SourceStats;

/// Schema name written into every report.
pub const SCHEMA: &str = "depmig-migration-report/1";

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

/// A tiny JSON writer: objects and arrays with commas handled.
struct J {
    s: String,
    first: bool,
}

impl J {
    fn new() -> Self {
        J {
            s: String::new(),
            first: true,
        }
    }
    fn sep(&mut self) {
        if !self.first {
            self.s.push(',');
        }
        self.first = false;
    }
    fn key(&mut self, k: &str) {
        self.sep();
        str_lit(&mut self.s, k);
        self.s.push(':');
    }
    fn open(&mut self, k: &str, c: char) {
        self.key(k);
        self.s.push(c);
        self.first = true;
    }
    fn close(&mut self, c: char) {
        self.s.push(c);
        self.first = false;
    }
    fn u(&mut self, k: &str, v: u64) {
        self.key(k);
        let _ = write!(self.s, "{v}");
    }
    fn ou(&mut self, k: &str, v: Option<u64>) {
        match v {
            Some(v) => self.u(k, v),
            None => {
                self.key(k);
                self.s.push_str("null");
            }
        }
    }
    fn st(&mut self, k: &str, v: &str) {
        self.key(k);
        str_lit(&mut self.s, v);
    }
    fn b(&mut self, k: &str, v: bool) {
        self.key(k);
        self.s.push_str(if v { "true" } else { "false" });
    }
    fn null(&mut self, k: &str) {
        self.key(k);
        self.s.push_str("null");
    }
    fn arr<I: IntoIterator<Item = u64>>(&mut self, k: &str, it: I) {
        self.open(k, '[');
        for v in it {
            self.sep();
            let _ = write!(self.s, "{v}");
        }
        self.close(']');
    }
    fn elem_open(&mut self) {
        self.sep();
        self.s.push('{');
        self.first = true;
    }
}

/// Appends `v` as a JSON string literal.
fn str_lit(s: &mut String, v: &str) {
    s.push('"');
    for c in v.chars() {
        match c {
            '"' => s.push_str("\\\""),
            '\\' => s.push_str("\\\\"),
            '\n' => s.push_str("\\n"),
            '\r' => s.push_str("\\r"),
            '\t' => s.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(s, "\\u{:04x}", c as u32);
            }
            c => s.push(c),
        }
    }
    s.push('"');
}

fn ms(ns: u64) -> u64 {
    ns / 1_000_000
}

/// Builds the report of a migration from the source's figures.
pub fn build(stats: &SourceStats, meta: &ReportMeta<'_>) -> String {
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

    let mut j = J::new();
    j.s.push('{');
    j.st("schema", SCHEMA);
    j.st("migrator", meta.migrator);
    j.st("scenario", meta.scenario);
    j.st("workload", meta.workload);
    j.u("link_rate_bytes_per_s", meta.link_rate);
    j.u("page_size", 4096);
    j.u("rounds", rounds.len() as u64);
    j.ou("final_round", copy_round.map(|r| u64::from(r.round)));
    j.arr("per_round_pages", (0..rounds.len()).map(pages));
    j.open("per_round", '[');
    for (i, r) in rounds.iter().enumerate() {
        j.elem_open();
        j.u("round", u64::from(r.round));
        j.u("pages", pages(i));
        j.u("pfns", r.sent + r.skipped_free);
        j.u("bytes", r.bytes);
        j.u("records", stats.round_records.get(i).copied().unwrap_or(0));
        j.ou(
            "start_ms",
            stats.round_start_ns.get(i).map(|&t| since_start(t)),
        );
        j.u("duration_ms", ms(r.time_ns));
        j.close('}');
    }
    j.close(']');
    j.u("total_pages", total_pages);
    j.u("total_pfns", total_pfns);
    j.u("page_bytes", total_pages * 4096);
    j.u("stream_bytes", stats.stream_bytes);
    j.ou("total_time_ms", stats.total_ns().map(ms));
    j.ou("downtime_ms", stats.downtime_ns().map(ms));
    j.st(
        "downtime_method",
        if stats.downtime_ns().is_some() {
            "source: guest seen suspended -> destination's ACK"
        } else {
            "unknown"
        },
    );
    j.null("downtime_xl_list_ms");
    j.ou(
        "downtime_final_round_ms",
        final_start.and_then(|f| Some(ms(stats.ack_ns?.checked_sub(f)?))),
    );
    j.null("poll_interval_ms");
    j.open("events", '{');
    j.ou("first_byte_unix_ms", unix(Some(stats.start_ns)));
    j.ou("suspended_unix_ms", unix(stats.suspended_ns));
    j.ou("final_round_start_unix_ms", unix(final_start));
    j.ou("stream_end_unix_ms", unix(stats.end_ns));
    j.ou("go_unix_ms", unix(stats.ack_ns));
    j.null("resumed_unix_ms");
    j.ou("last_byte_unix_ms", unix(stats.trailer_ns));
    j.close('}');
    j.open("stream", '{');
    j.b("complete", stats.end_ns.is_some());
    j.null("libxl_records");
    j.u("libxc_records", stats.records);
    j.u("libxc_version", 3);
    j.u("domain_type", 2);
    j.u("pfn_order_anomalies", 0);
    j.u(
        "trailer_bytes",
        depmig_stream::handshake::TRAILER_LEN as u64,
    );
    j.null("parse_error");
    j.close('}');
    j.open("depmig", '{');
    j.st("mode", stats.mode.map_or("", |m| m.name()));
    j.st("policy", stats.policy);
    j.st("result", meta.result);
    j.u("nr_pfns", stats.nr_pfns);
    j.u("frozen_groups", u64::from(stats.frozen_groups));
    j.ou(
        "suspend_wait_ms",
        stats
            .suspended_ns
            .and_then(|s| Some(ms(s.checked_sub(stats.suspend_request_ns?)?))),
    );
    j.arr("per_round_dirty", rounds.iter().map(|r| r.dirty));
    j.arr(
        "per_round_dirty_tainted",
        rounds.iter().map(|r| r.dirty_tainted),
    );
    j.arr(
        "per_round_skipped_free",
        rounds.iter().map(|r| r.skipped_free),
    );
    j.arr("per_round_holes", stats.round_holes.iter().copied());
    // Paper-analysis mode: whose the dirty tainted pages were, for each
    // round whose census was taken (parallel arrays keep it compact).
    if stats.census.is_empty() {
        j.null("census");
    } else {
        let c = &stats.census;
        j.open("census", '{');
        j.arr("round", c.iter().map(|c| u64::from(c.round)));
        j.arr("asked", c.iter().map(|c| c.asked));
        j.arr("user", c.iter().map(|c| c.user));
        j.arr("page_tables", c.iter().map(|c| c.page_tables));
        j.arr("kernel", c.iter().map(|c| c.kernel));
        j.arr("unreadable", c.iter().map(|c| c.unreadable));
        j.close('}');
    }
    j.close('}');
    j.close('}');
    j.s
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

    #[test]
    fn strings_are_escaped() {
        let mut s = String::new();
        str_lit(&mut s, "a\"b\\c\nd\u{1}é");
        assert_eq!(s, "\"a\\\"b\\\\c\\nd\\u0001é\"");
    }
}
