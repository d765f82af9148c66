//! The comparison as one JSON object (schema [`SCHEMA`], the `--json`
//! output), serialised by serde from the types below. Their field order is
//! the order written; a target's `met` comes first so that a shell finds a
//! verdict with one `grep`.

use serde::ser::Serializer;
use serde::Serialize;

use super::{set_for, Comparison, Figure, Migration, Target, SCHEMA};
use crate::json::Value;

/// The whole output.
#[derive(Serialize)]
struct Output<'a> {
    schema: &'static str,
    title: &'a str,
    guest_pages: Option<u64>,
    guest_pages_from: Option<&'a str>,
    reports: Vec<Report<'a>>,
    columns: Vec<Column<'a>>,
    #[serde(serialize_with = "targets")]
    targets: &'a [Target],
    notes: &'a [String],
}

/// One report's headline figures.
#[derive(Serialize)]
struct Report<'a> {
    label: &'a str,
    file: &'a str,
    migrator: &'a str,
    role: &'static str,
    mode: Option<&'a str>,
    scenario: Option<&'a str>,
    workload: Option<&'a str>,
    rounds: u64,
    final_round: Option<u64>,
    per_round_pages: &'a [u64],
    total_pages: u64,
    total_bytes: Option<&'a Figure>,
    downtime_ms: Option<&'a Figure>,
    guest_downtime_ms: Option<&'a Figure>,
    downtime_method: Option<&'a str>,
    total_time_ms: Option<&'a Figure>,
    frozen_groups: Option<u64>,
    skipped_free_pages: Option<u64>,
    /// Stream bytes of each round's records, null for a round without.
    per_round_bytes: &'a [Option<u64>],
    /// What compression and deltas did to the page records; null when
    /// the report does not say.
    page_records: Option<PageRecords<'a>>,
}

/// A depmig report's page records, sent against Xen's PAGE_DATA.
#[derive(Serialize)]
struct PageRecords<'a> {
    codec: Option<String>,
    raw_bytes: u64,
    sent_bytes: u64,
    saved_bytes: u64,
    /// `sent_bytes / raw_bytes` to four places; null without page records.
    sent_over_raw: Option<f64>,
    per_round_raw_bytes: &'a [u64],
    per_round_bytes_saved: &'a [u64],
}

impl<'a> PageRecords<'a> {
    fn of(m: &'a Migration) -> Option<Self> {
        let d = m.depmig.as_ref()?;
        let p = m.page_saving()?;
        Some(PageRecords {
            sent_over_raw: p.ratio().map(|r| (r * 10_000.0).round() / 10_000.0),
            codec: p.codec,
            raw_bytes: p.raw,
            sent_bytes: p.sent,
            saved_bytes: p.saved,
            per_round_raw_bytes: d.per_round_raw_bytes.as_deref()?,
            per_round_bytes_saved: d.per_round_bytes_saved.as_deref()?,
        })
    }
}

impl<'a> From<&'a Migration> for Report<'a> {
    fn from(m: &'a Migration) -> Self {
        Report {
            label: &m.label,
            file: &m.file,
            migrator: &m.migrator,
            role: m.role.as_str(),
            mode: m.mode.as_deref(),
            scenario: m.scenario.as_deref(),
            workload: m.workload.as_deref(),
            rounds: m.per_round_pages.len() as u64,
            final_round: m.final_round,
            per_round_pages: &m.per_round_pages,
            total_pages: m.total_pages,
            total_bytes: m.stream_bytes.as_ref(),
            downtime_ms: m.downtime_ms.as_ref(),
            guest_downtime_ms: m.guest_downtime_ms.as_ref(),
            downtime_method: m.downtime_method.as_deref(),
            total_time_ms: m.total_time_ms.as_ref(),
            frozen_groups: m.frozen_groups(),
            skipped_free_pages: m.skipped_free(),
            per_round_bytes: &m.per_round_bytes,
            page_records: PageRecords::of(m),
        }
    }
}

/// One column of the per-round table.
#[derive(Serialize)]
struct Column<'a> {
    heading: &'a str,
    /// The label of the report it shows.
    report: &'a str,
    measure: &'static str,
    per_round: &'a [u64],
}

/// One target's verdict, under its key.
#[derive(Serialize)]
struct Verdict<'a> {
    met: Option<bool>,
    value: &'a Value,
    limit: &'a Value,
    subject: Option<&'a str>,
    reference: Option<&'a str>,
    set_for: &'static str,
    #[serde(flatten)]
    extra: Extra<'a>,
    detail: &'a str,
}

/// The targets as one object, keyed and in order.
fn targets<S: Serializer>(targets: &&[Target], s: S) -> Result<S::Ok, S::Error> {
    s.collect_map(targets.iter().map(|t| {
        let verdict = Verdict {
            met: t.met,
            value: &t.value,
            limit: &t.limit,
            subject: t.subject.as_deref(),
            reference: t.reference.as_deref(),
            set_for: set_for(&t.key),
            extra: Extra(&t.extra),
            detail: &t.detail,
        };
        (&t.key, verdict)
    }))
}

/// A target's further figures, as entries of its object.
struct Extra<'a>(&'a [(String, Value)]);

impl Serialize for Extra<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().map(|(k, v)| (k, v)))
    }
}

/// The comparison as compact JSON (schema [`SCHEMA`]). Empty if serde_json
/// refuses it, which it does only for a [`Value::Num`] that is no number:
/// the targets' numbers are formatted here, never read in.
pub fn to_json(c: &Comparison) -> String {
    let out = Output {
        schema: SCHEMA,
        title: &c.title,
        guest_pages: c.guest_pages.as_ref().map(|g| g.0),
        guest_pages_from: c.guest_pages.as_ref().map(|g| g.1.as_str()),
        reports: c.migrations.iter().map(Report::from).collect(),
        columns: c
            .columns
            .iter()
            .map(|col| Column {
                heading: &col.heading,
                report: c.migrations.get(col.report).map_or("", |m| &m.label),
                measure: col.measure.as_str(),
                per_round: &col.per_round,
            })
            .collect(),
        targets: &c.targets,
        notes: &c.notes,
    };
    serde_json::to_string(&out).unwrap_or_default()
}
