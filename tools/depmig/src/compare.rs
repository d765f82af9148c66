//! `depmig compare`: migrations of the same guest side by side, as in the
//! paper's figures of pages per round (a table, a log-scale plot), with the
//! headline figures of each and the targets of dependency-aware migration
//! evaluated from the reports.

use std::fmt;
use std::fmt::Write as _;
use std::io::Read;
use std::path::Path;

use crate::cli::CompareOptions;
use crate::json::{self, Value};
use crate::report::{self, DepmigFigures, ReportError};
use crate::svg::{self, Series};

/// The schema name of the `--json` output.
pub const SCHEMA: &str = "depmig-comparison/1";

/// Title when `--title` is not given.
pub const DEFAULT_TITLE: &str = "pages sent per round";

/// Target: every round after the first sends at most this many pages.
pub const LATER_ROUND_LIMIT: u64 = 100;

/// What a report is, from its own fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Stock `xl migrate`: `migrator` is not `depmig` and there is no
    /// `depmig` object.
    Stock,
    /// depmig in baseline mode.
    DepmigBaseline,
    /// depmig in paper-analysis mode.
    PaperAnalysis,
    /// depmig in dependency-aware mode.
    DependencyAware,
    /// Neither: a depmig report of no known mode, or another migrator that
    /// carries a `depmig` object. Shown, but no target uses it.
    Unclassified,
}

impl Role {
    /// The name used in the outputs.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Stock => "stock",
            Role::DepmigBaseline => "depmig-baseline",
            Role::PaperAnalysis => "depmig-paper-analysis",
            Role::DependencyAware => "depmig-dependency-aware",
            Role::Unclassified => "unclassified",
        }
    }
}

/// A number from a report: its text (kept for the JSON output, so nothing
/// is rounded on the way through) and its value.
#[derive(Debug, Clone, PartialEq)]
pub struct Figure {
    /// The number as the report wrote it.
    pub text: String,
    /// Its value (finite, non-negative).
    pub value: f64,
}

/// One report, read and classified.
#[derive(Debug, Clone, PartialEq)]
pub struct Migration {
    /// The label it was given on the command line.
    pub label: String,
    /// The file it came from, for messages.
    pub file: String,
    /// The report's `migrator`.
    pub migrator: String,
    /// What it is.
    pub role: Role,
    /// The depmig mode (`depmig.mode`, else `cli.mode`), if any.
    pub mode: Option<String>,
    /// The report's `scenario`, if a string.
    pub scenario: Option<String>,
    /// The report's `workload`, if a string.
    pub workload: Option<String>,
    /// Pages with contents sent per round.
    pub per_round_pages: Vec<u64>,
    /// The stop-and-copy round, if identified.
    pub final_round: Option<u64>,
    /// Pages sent in all.
    pub total_pages: u64,
    /// Every byte that crossed the link.
    pub stream_bytes: Option<Figure>,
    /// The report's downtime.
    pub downtime_ms: Option<Figure>,
    /// How the downtime was measured.
    pub downtime_method: Option<String>,
    /// The guest stopped until it ran again: stock, `downtime_xl_list_ms`
    /// (`xl list` polling); depmig, `cli.guest_downtime_ms` (the source
    /// appliance's suspend event until dom0 unpaused the shell).
    pub guest_downtime_ms: Option<Figure>,
    /// The migration's total time.
    pub total_time_ms: Option<Figure>,
    /// The appliance's figures (depmig reports only).
    pub depmig: Option<DepmigFigures>,
}

impl Migration {
    /// Pages skipped as free over all rounds, when the report counts them.
    pub fn skipped_free(&self) -> Option<u64> {
        let per_round = self.depmig.as_ref()?.per_round_skipped_free.as_ref()?;
        Some(per_round.iter().fold(0u64, |a, p| a.saturating_add(*p)))
    }

    /// Groups frozen for the migration, when the report says.
    pub fn frozen_groups(&self) -> Option<u64> {
        self.depmig.as_ref()?.frozen_groups
    }
}

/// Why `depmig compare` could not produce a comparison.
#[derive(Debug, Clone, PartialEq)]
pub enum CompareError {
    /// The report file could not be read.
    Read {
        /// The file.
        file: String,
        /// Why.
        why: String,
    },
    /// The report is malformed.
    Report {
        /// The file.
        file: String,
        /// What is wrong, naming the field.
        error: ReportError,
    },
    /// An output file could not be written.
    Write {
        /// The file.
        file: String,
        /// Why.
        why: String,
    },
}

impl fmt::Display for CompareError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CompareError::Read { file, why } => write!(f, "{file}: cannot read the report: {why}"),
            CompareError::Report { file, error } => write!(f, "{file}: {error}"),
            CompareError::Write { file, why } => write!(f, "{file}: cannot write: {why}"),
        }
    }
}

impl std::error::Error for CompareError {}

fn figure(v: &Value, key: &'static str) -> Result<Option<Figure>, ReportError> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(n @ Value::Num(text)) => {
            let value = n
                .as_f64()
                .filter(|x| x.is_finite() && *x >= 0.0)
                .ok_or_else(|| {
                    ReportError::Invalid(format!(
                        "\"{key}\" is not a finite non-negative number: {text}"
                    ))
                })?;
            Ok(Some(Figure {
                text: text.clone(),
                value,
            }))
        }
        Some(_) => Err(ReportError::Invalid(format!(
            "\"{key}\" is neither a non-negative number nor null"
        ))),
    }
}

fn opt_str(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(String::from)
}

/// Reads, validates and classifies one report's text.
pub fn load(label: &str, file: &str, text: &str) -> Result<Migration, CompareError> {
    let err = |error| CompareError::Report {
        file: file.to_string(),
        error,
    };
    let (v, s) = report::parse_report(text).map_err(err)?;
    // A migration that was rolled back is no figure of a model: its rounds
    // stop wherever it failed, and a target met on it would mislead.
    if s.committed == Some(false) {
        return Err(err(ReportError::Invalid(
            "the migration did not commit (depmig.result / cli.outcome): not compared".into(),
        )));
    }
    let depmig = report::depmig_figures(&v, s.per_round_pages.len()).map_err(err)?;
    let mode = depmig
        .as_ref()
        .and_then(|d| d.mode.clone())
        .or_else(|| v.get("cli").and_then(|c| opt_str(c, "mode")))
        .filter(|m| !m.is_empty());
    let role = if s.migrator == "depmig" {
        match mode.as_deref() {
            Some("baseline") => Role::DepmigBaseline,
            Some("paper-analysis") => Role::PaperAnalysis,
            Some("dependency-aware") => Role::DependencyAware,
            _ => Role::Unclassified,
        }
    } else if depmig.is_none() {
        Role::Stock
    } else {
        Role::Unclassified
    };
    if role == Role::PaperAnalysis {
        let d = depmig.as_ref();
        if d.and_then(|d| d.per_round_dirty.as_ref()).is_none() {
            return Err(err(ReportError::Missing("depmig.per_round_dirty")));
        }
        if d.and_then(|d| d.per_round_dirty_tainted.as_ref()).is_none() {
            return Err(err(ReportError::Missing("depmig.per_round_dirty_tainted")));
        }
    }
    Ok(Migration {
        label: label.to_string(),
        file: file.to_string(),
        migrator: s.migrator,
        role,
        mode,
        scenario: opt_str(&v, "scenario"),
        workload: opt_str(&v, "workload"),
        per_round_pages: s.per_round_pages,
        final_round: s.final_round,
        total_pages: s.total_pages,
        stream_bytes: figure(&v, "stream_bytes").map_err(err)?,
        downtime_ms: figure(&v, "downtime_ms").map_err(err)?,
        downtime_method: opt_str(&v, "downtime_method"),
        guest_downtime_ms: match role {
            Role::Stock => figure(&v, "downtime_xl_list_ms").map_err(err)?,
            _ => match v.get("cli") {
                Some(c) => figure(c, "guest_downtime_ms").map_err(err)?,
                None => None,
            },
        },
        total_time_ms: figure(&v, "total_time_ms").map_err(err)?,
        depmig,
    })
}

/// Which per-round figure a column shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Measure {
    /// Pages sent.
    Pages,
    /// Dirty pages (paper-analysis).
    Dirty,
    /// Dirty pages of tainted processes or the kernel (paper-analysis).
    DirtyTainted,
    /// Of those, the pages mapped by tainted processes, without the
    /// kernel's (paper-analysis, from its census).
    TaintedProcesses,
}

impl Measure {
    /// The name used in the JSON output.
    pub fn as_str(self) -> &'static str {
        match self {
            Measure::Pages => "pages",
            Measure::Dirty => "dirty",
            Measure::DirtyTainted => "dirty_tainted",
            Measure::TaintedProcesses => "tainted_processes",
        }
    }
}

/// One column of the per-round table (and one series of the plot).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// The heading (the report's label, plus the measure for the
    /// paper-analysis pair).
    pub heading: String,
    /// Index of the report in [`Comparison::migrations`].
    pub report: usize,
    /// What it shows.
    pub measure: Measure,
    /// One value per round of its report.
    pub per_round: Vec<u64>,
}

/// The workload the issue sets a target for: the HTTP download for the
/// totals within 5% of the baseline, the memory-dirtier (mmuncher) for the
/// others. Every target is evaluated on every set; this says which guest
/// its verdict is meant for.
pub fn set_for(key: &str) -> &'static str {
    if key.contains("within_5pct_of_baseline") {
        "http-download"
    } else {
        "mmuncher"
    }
}

/// A target's verdict with its figures.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// The stable key (`#2`, `#3`... appended for further reports of the
    /// same mode).
    pub key: String,
    /// The report the target is about.
    pub subject: Option<String>,
    /// The report it is compared with.
    pub reference: Option<String>,
    /// `None`: not evaluated (see `detail`).
    pub met: Option<bool>,
    /// The measured figure.
    pub value: Value,
    /// Its limit.
    pub limit: Value,
    /// Further figures for the JSON output.
    pub extra: Vec<(String, Value)>,
    /// The figures, or why it was not evaluated, in words.
    pub detail: String,
}

/// Everything `depmig compare` prints.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    /// The title.
    pub title: String,
    /// The reports, in the order given.
    pub migrations: Vec<Migration>,
    /// The per-round table's columns.
    pub columns: Vec<Column>,
    /// The guest's size in pages used by the targets, and where it came from.
    pub guest_pages: Option<(u64, String)>,
    /// The targets, in a fixed order.
    pub targets: Vec<Target>,
    /// Remarks on the set of reports.
    pub notes: Vec<String>,
}

/// A decimal number as a JSON value (null if not finite, which the callers
/// never pass).
fn num(x: f64) -> Value {
    if x.is_finite() {
        Value::Num(format!("{x}"))
    } else {
        Value::Null
    }
}

/// The first report of `role`, noting when there are several.
fn reference(ms: &[Migration], role: Role, what: &str, notes: &mut Vec<String>) -> Option<usize> {
    let all: Vec<usize> = (0..ms.len())
        .filter(|&i| ms.get(i).is_some_and(|m| m.role == role))
        .collect();
    let first = all.first().copied()?;
    if all.len() > 1 {
        let label = ms.get(first).map_or("", |m| m.label.as_str());
        notes.push(format!(
            "{} {what} reports: the targets compare with the first, `{label}`",
            all.len()
        ));
    }
    Some(first)
}

fn keyed(key: &str, nth: usize) -> String {
    if nth == 0 {
        key.to_string()
    } else {
        format!("{key}#{}", nth + 1)
    }
}

fn not_evaluated(key: String, subject: Option<&Migration>, why: String) -> Target {
    Target {
        key,
        subject: subject.map(|m| m.label.clone()),
        reference: None,
        met: None,
        value: Value::Null,
        limit: Value::Null,
        extra: Vec::new(),
        detail: why,
    }
}

fn later_rounds(key: String, m: &Migration) -> Target {
    let largest = m
        .per_round_pages
        .iter()
        .enumerate()
        .skip(1)
        .max_by_key(|(_, p)| **p);
    let (met, value, detail) = match largest {
        None => (
            true,
            Value::Null,
            "a single round: no round after the first".to_string(),
        ),
        Some((i, &p)) => (
            p <= LATER_ROUND_LIMIT,
            Value::uint(p),
            format!(
                "largest round after the first: {p} pages (round {}), limit {LATER_ROUND_LIMIT}",
                i + 1
            ),
        ),
    };
    Target {
        key,
        subject: Some(m.label.clone()),
        reference: None,
        met: Some(met),
        value,
        limit: Value::uint(LATER_ROUND_LIMIT),
        extra: Vec::new(),
        detail,
    }
}

fn total_vs_guest(key: String, m: &Migration, guest: Option<&(u64, String)>) -> Target {
    let Some((g, from)) = guest else {
        return not_evaluated(
            key,
            Some(m),
            "no guest size: no --guest-pages and no stock report to take it from".into(),
        );
    };
    // total <= 1.05 g, in integers; the limit written exactly.
    let hundredths = u128::from(*g) * 105;
    let met = u128::from(m.total_pages) * 100 <= hundredths;
    let limit = format!("{}.{:02}", hundredths / 100, hundredths % 100);
    let limit = limit
        .trim_end_matches('0')
        .trim_end_matches('.')
        .to_string();
    Target {
        key,
        subject: Some(m.label.clone()),
        reference: None,
        met: Some(met),
        value: Value::uint(m.total_pages),
        limit: Value::Num(limit.clone()),
        extra: vec![
            ("guest_pages".into(), Value::uint(*g)),
            ("guest_pages_from".into(), Value::str(from)),
        ],
        detail: format!(
            "{} pages sent, limit 1.05 x {g} guest pages ({from}) = {limit}; {:.3} x guest",
            m.total_pages,
            m.total_pages as f64 / *g as f64
        ),
    }
}

/// Which downtime a target compares.
#[derive(Clone, Copy)]
enum Downtime {
    /// Each report's own `downtime_ms`.
    Report,
    /// The guest stopped until it ran again ([`Migration::guest_downtime_ms`]).
    Guest,
}

fn downtime_vs_stock(
    key: String,
    m: &Migration,
    stock: Option<&Migration>,
    which: Downtime,
) -> Target {
    let Some(s) = stock else {
        return not_evaluated(
            key,
            Some(m),
            "no stock `xl migrate` report in the set".into(),
        );
    };
    let pick = |x: &'_ Migration| -> Option<Figure> {
        match which {
            Downtime::Report => x.downtime_ms.clone(),
            Downtime::Guest => x.guest_downtime_ms.clone(),
        }
    };
    let what = match which {
        Downtime::Report => "downtime",
        Downtime::Guest => "guest stopped until running",
    };
    let (mine, stocks) = (pick(m), pick(s));
    let (Some(d), Some(sd)) = (&mine, &stocks) else {
        let whose = if mine.is_none() { &m.label } else { &s.label };
        let mut t = not_evaluated(key, Some(m), format!("`{whose}` reports no {what} figure"));
        t.reference = Some(s.label.clone());
        return t;
    };
    let limit = sd.value / 10.0;
    Target {
        key,
        subject: Some(m.label.clone()),
        reference: Some(s.label.clone()),
        met: Some(d.value * 10.0 <= sd.value),
        value: Value::Num(d.text.clone()),
        limit: num(limit),
        extra: vec![("reference_downtime_ms".into(), Value::Num(sd.text.clone()))],
        detail: format!(
            "{what} {} ms, limit {limit:.1} ms (a tenth of `{}`'s {} ms)",
            d.text, s.label, sd.text
        ),
    }
}

fn total_vs_baseline(key: String, m: &Migration, base: Option<&Migration>) -> Target {
    let Some(b) = base else {
        return not_evaluated(key, Some(m), "no depmig baseline report in the set".into());
    };
    if b.total_pages == 0 {
        let mut t = not_evaluated(key, Some(m), format!("`{}` sent no page", b.label));
        t.reference = Some(b.label.clone());
        return t;
    }
    let diff = m.total_pages.abs_diff(b.total_pages);
    // |t - b| <= 5% of b, in integers.
    let met = u128::from(diff) * 20 <= u128::from(b.total_pages);
    let rel = diff as f64 / b.total_pages as f64;
    Target {
        key,
        subject: Some(m.label.clone()),
        reference: Some(b.label.clone()),
        met: Some(met),
        value: num(rel),
        limit: num(0.05),
        extra: vec![
            ("total_pages".into(), Value::uint(m.total_pages)),
            ("reference_total_pages".into(), Value::uint(b.total_pages)),
        ],
        detail: format!(
            "{} pages vs `{}`'s {}: {}{:.2}%, limit 5%",
            m.total_pages,
            b.label,
            b.total_pages,
            if m.total_pages >= b.total_pages {
                "+"
            } else {
                "-"
            },
            rel * 100.0
        ),
    }
}

/// Puts the reports side by side and evaluates the targets.
pub fn compare(title: &str, migrations: Vec<Migration>, guest_pages: Option<u64>) -> Comparison {
    let mut notes = Vec::new();
    let mut columns = Vec::new();
    for (i, m) in migrations.iter().enumerate() {
        let pair = match (&m.role, &m.depmig) {
            (Role::PaperAnalysis, Some(d)) => d
                .per_round_dirty
                .as_ref()
                .zip(d.per_round_dirty_tainted.as_ref()),
            _ => None,
        };
        match pair {
            Some((dirty, tainted)) => {
                columns.push(Column {
                    heading: format!("{} dirty", m.label),
                    report: i,
                    measure: Measure::Dirty,
                    per_round: dirty.clone(),
                });
                columns.push(Column {
                    heading: format!("{} dirty+tainted", m.label),
                    report: i,
                    measure: Measure::DirtyTainted,
                    per_round: tainted.clone(),
                });
                match m.depmig.as_ref().and_then(|d| d.census.as_ref()) {
                    Some(census) if census.len() == tainted.len() => columns.push(Column {
                        heading: format!("{} of tainted processes", m.label),
                        report: i,
                        measure: Measure::TaintedProcesses,
                        per_round: census.iter().map(|c| c.user).collect(),
                    }),
                    Some(census) => {
                        let taken: Vec<String> =
                            census.iter().map(|c| c.round.to_string()).collect();
                        notes.push(format!(
                            "`{}`: the census (whose the dirty tainted pages are) was taken in rounds {} of {} only: no column of tainted processes' pages",
                            m.label,
                            if taken.is_empty() { "none".into() } else { taken.join(", ") },
                            tainted.len()
                        ));
                    }
                    None => {}
                }
            }
            None => columns.push(Column {
                heading: m.label.clone(),
                report: i,
                measure: Measure::Pages,
                per_round: m.per_round_pages.clone(),
            }),
        }
        if m.role == Role::Unclassified {
            notes.push(format!(
                "`{}` (migrator `{}`, mode {}) is neither stock nor a known depmig mode: no target uses it",
                m.label,
                m.migrator,
                m.mode.as_deref().unwrap_or("unknown")
            ));
        }
    }
    let mut workloads: Vec<&str> = migrations
        .iter()
        .filter_map(|m| m.workload.as_deref())
        .collect();
    workloads.sort_unstable();
    workloads.dedup();
    if workloads.len() > 1 {
        notes.push(format!(
            "the reports name different workloads ({}): not the same guest?",
            workloads.join(", ")
        ));
    }

    let stock =
        reference(&migrations, Role::Stock, "stock", &mut notes).and_then(|i| migrations.get(i));
    let base = reference(
        &migrations,
        Role::DepmigBaseline,
        "depmig baseline",
        &mut notes,
    )
    .and_then(|i| migrations.get(i));
    let guest = match (guest_pages, stock) {
        (Some(g), _) => Some((g, "--guest-pages".to_string())),
        (None, Some(s)) => s
            .per_round_pages
            .first()
            .map(|p| (*p, format!("round 1 of stock `{}`", s.label))),
        (None, None) => None,
    };

    let of =
        |role: Role| -> Vec<&Migration> { migrations.iter().filter(|m| m.role == role).collect() };
    let aware = of(Role::DependencyAware);
    let paper = of(Role::PaperAnalysis);
    let mut targets = Vec::new();
    if aware.is_empty() {
        for key in [
            "da_later_rounds_le_100",
            "da_total_pages_le_1_05_guest",
            "da_downtime_le_0_1_stock",
            "da_guest_downtime_le_0_1_stock",
        ] {
            targets.push(not_evaluated(
                key.into(),
                None,
                "no dependency-aware depmig report in the set".into(),
            ));
        }
    }
    for (n, m) in aware.iter().enumerate() {
        targets.push(later_rounds(keyed("da_later_rounds_le_100", n), m));
        targets.push(total_vs_guest(
            keyed("da_total_pages_le_1_05_guest", n),
            m,
            guest.as_ref(),
        ));
        targets.push(downtime_vs_stock(
            keyed("da_downtime_le_0_1_stock", n),
            m,
            stock,
            Downtime::Report,
        ));
        targets.push(downtime_vs_stock(
            keyed("da_guest_downtime_le_0_1_stock", n),
            m,
            stock,
            Downtime::Guest,
        ));
    }
    for (prefix, set, what) in [
        ("pa", &paper, "paper-analysis"),
        ("da", &aware, "dependency-aware"),
    ] {
        let key = format!("{prefix}_total_pages_within_5pct_of_baseline");
        if set.is_empty() {
            targets.push(not_evaluated(
                key.clone(),
                None,
                format!("no {what} depmig report in the set"),
            ));
        }
        for (n, m) in set.iter().enumerate() {
            targets.push(total_vs_baseline(keyed(&key, n), m, base));
        }
    }
    Comparison {
        title: title.to_string(),
        migrations,
        columns,
        guest_pages: guest,
        targets,
        notes,
    }
}

/// Text for a Markdown table cell: `|` escaped, line breaks (which labels
/// cannot hold) flattened.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace(['\n', '\r'], " ")
}

fn fig(f: Option<&Figure>) -> String {
    f.map_or_else(|| "-".to_string(), |f| f.text.clone())
}

fn opt_u(n: Option<u64>) -> String {
    n.map_or_else(|| "-".to_string(), |n| n.to_string())
}

fn verdict(met: Option<bool>) -> &'static str {
    match met {
        Some(true) => "met",
        Some(false) => "NOT met",
        None => "not evaluated",
    }
}

/// The comparison as Markdown (what standard output and `--markdown` get).
pub fn markdown(c: &Comparison) -> String {
    let mut s = String::new();
    // Writing to a String cannot fail; the results are ignored on purpose.
    let _ = writeln!(s, "# {}\n", cell(&c.title));
    let _ = writeln!(s, "## Pages per round\n");
    let mut head = String::from("| round |");
    let mut rule = String::from("| ---: |");
    for col in &c.columns {
        let _ = write!(head, " {} |", cell(&col.heading));
        rule.push_str(" ---: |");
    }
    let _ = writeln!(s, "{head}\n{rule}");
    let rounds = c
        .columns
        .iter()
        .map(|col| col.per_round.len())
        .max()
        .unwrap_or(0);
    for r in 0..rounds {
        let mut row = format!("| {} |", r + 1);
        for col in &c.columns {
            match col.per_round.get(r) {
                Some(v) => {
                    let _ = write!(row, " {v} |");
                }
                None => row.push_str(" |"),
            }
        }
        let _ = writeln!(s, "{row}");
    }
    s.push('\n');
    if c.columns
        .iter()
        .any(|col| col.measure == Measure::TaintedProcesses)
    {
        let _ = writeln!(
            s,
            "Pages sent, except the paper-analysis columns (it sends like baseline; its pages \
             sent are in the totals below): its dirty pages, its dirty pages of tainted \
             processes or the kernel (dirty+tainted: what a sound dependency-aware move must \
             still send), and of those the pages mapped by tainted processes alone, without \
             the kernel's (from the appliance's census of each round).\n"
        );
    } else if c.columns.iter().any(|col| col.measure != Measure::Pages) {
        let _ = writeln!(
            s,
            "Pages sent, except the paper-analysis pair: its dirty pages and its dirty pages \
             of tainted processes or the kernel per round (it sends like baseline; its pages \
             sent are in the totals below).\n"
        );
    } else {
        let _ = writeln!(s, "Pages sent in each round.\n");
    }

    let _ = writeln!(s, "## Per migration\n");
    let _ = writeln!(
        s,
        "| migration | migrator | mode | rounds | total pages | total bytes | downtime ms | \
         guest stopped until running ms | total time ms | frozen groups | pages skipped as free |"
    );
    let _ = writeln!(
        s,
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    for m in &c.migrations {
        let mode = match m.role {
            Role::Stock => "stock".to_string(),
            _ => m.mode.clone().unwrap_or_else(|| "?".into()),
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            cell(&m.label),
            cell(&m.migrator),
            cell(&mode),
            m.per_round_pages.len(),
            m.total_pages,
            fig(m.stream_bytes.as_ref()),
            fig(m.downtime_ms.as_ref()),
            fig(m.guest_downtime_ms.as_ref()),
            fig(m.total_time_ms.as_ref()),
            opt_u(m.frozen_groups()),
            opt_u(m.skipped_free()),
        );
    }
    s.push('\n');
    let _ = writeln!(
        s,
        "Total bytes: everything that crossed the link. Downtime as each report measured it:"
    );
    for m in &c.migrations {
        let _ = writeln!(
            s,
            "- {}: {}",
            cell(&m.label),
            cell(m.downtime_method.as_deref().unwrap_or("not said"))
        );
    }
    let _ = writeln!(
        s,
        "\nGuest stopped until running: stock `xl migrate`, `xl list` polling (the source seen \
         suspended until the destination seen running); depmig, the source appliance's suspend \
         event until dom0 unpaused the shell (two clocks: Xen's wall clock and dom0's)."
    );
    s.push('\n');

    let _ = writeln!(s, "## Targets\n");
    match &c.guest_pages {
        Some((g, from)) => {
            let _ = writeln!(s, "Guest pages: {g} ({from}).\n");
        }
        None => {
            let _ = writeln!(s, "Guest pages: unknown.\n");
        }
    }
    for t in &c.targets {
        let who = match (&t.subject, &t.reference) {
            (Some(a), Some(b)) => format!(" [{} vs {}]", cell(a), cell(b)),
            (Some(a), None) => format!(" [{}]", cell(a)),
            _ => String::new(),
        };
        let _ = writeln!(
            s,
            "- `{}` (set for the {} guest){who}: **{}**: {}",
            t.key,
            set_for(&t.key),
            verdict(t.met),
            cell(&t.detail)
        );
    }
    if !c.notes.is_empty() {
        let _ = writeln!(s, "\n## Notes\n");
        for n in &c.notes {
            let _ = writeln!(s, "- {}", cell(n));
        }
    }
    s
}

fn opt_fig(f: Option<&Figure>) -> Value {
    f.map_or(Value::Null, |f| Value::Num(f.text.clone()))
}

fn opt_string(s: Option<&str>) -> Value {
    s.map_or(Value::Null, Value::str)
}

fn uints(v: &[u64]) -> Value {
    Value::Arr(v.iter().map(|n| Value::uint(*n)).collect())
}

/// The comparison as one JSON object (schema [`SCHEMA`]).
pub fn to_json(c: &Comparison) -> Value {
    let reports = c
        .migrations
        .iter()
        .map(|m| {
            Value::Obj(vec![
                ("label".into(), Value::str(&m.label)),
                ("file".into(), Value::str(&m.file)),
                ("migrator".into(), Value::str(&m.migrator)),
                ("role".into(), Value::str(m.role.as_str())),
                ("mode".into(), opt_string(m.mode.as_deref())),
                ("scenario".into(), opt_string(m.scenario.as_deref())),
                ("workload".into(), opt_string(m.workload.as_deref())),
                ("rounds".into(), Value::uint(m.per_round_pages.len() as u64)),
                ("final_round".into(), Value::opt_uint(m.final_round)),
                ("per_round_pages".into(), uints(&m.per_round_pages)),
                ("total_pages".into(), Value::uint(m.total_pages)),
                ("total_bytes".into(), opt_fig(m.stream_bytes.as_ref())),
                ("downtime_ms".into(), opt_fig(m.downtime_ms.as_ref())),
                (
                    "guest_downtime_ms".into(),
                    opt_fig(m.guest_downtime_ms.as_ref()),
                ),
                (
                    "downtime_method".into(),
                    opt_string(m.downtime_method.as_deref()),
                ),
                ("total_time_ms".into(), opt_fig(m.total_time_ms.as_ref())),
                ("frozen_groups".into(), Value::opt_uint(m.frozen_groups())),
                (
                    "skipped_free_pages".into(),
                    Value::opt_uint(m.skipped_free()),
                ),
            ])
        })
        .collect();
    let columns = c
        .columns
        .iter()
        .map(|col| {
            Value::Obj(vec![
                ("heading".into(), Value::str(&col.heading)),
                (
                    "report".into(),
                    Value::str(c.migrations.get(col.report).map_or("", |m| &m.label)),
                ),
                ("measure".into(), Value::str(col.measure.as_str())),
                ("per_round".into(), uints(&col.per_round)),
            ])
        })
        .collect();
    let targets = c
        .targets
        .iter()
        .map(|t| {
            let mut fields = vec![
                ("met".into(), t.met.map_or(Value::Null, Value::Bool)),
                ("value".into(), t.value.clone()),
                ("limit".into(), t.limit.clone()),
                ("subject".into(), opt_string(t.subject.as_deref())),
                ("reference".into(), opt_string(t.reference.as_deref())),
                ("set_for".into(), Value::str(set_for(&t.key))),
            ];
            fields.extend(t.extra.iter().cloned());
            fields.push(("detail".into(), Value::str(&t.detail)));
            (t.key.clone(), Value::Obj(fields))
        })
        .collect();
    Value::Obj(vec![
        ("schema".into(), Value::str(SCHEMA)),
        ("title".into(), Value::str(&c.title)),
        (
            "guest_pages".into(),
            Value::opt_uint(c.guest_pages.as_ref().map(|g| g.0)),
        ),
        (
            "guest_pages_from".into(),
            opt_string(c.guest_pages.as_ref().map(|g| g.1.as_str())),
        ),
        ("reports".into(), Value::Arr(reports)),
        ("columns".into(), Value::Arr(columns)),
        ("targets".into(), Value::Obj(targets)),
        (
            "notes".into(),
            Value::Arr(c.notes.iter().map(|n| Value::str(n)).collect()),
        ),
    ])
}

/// The per-round table as a log-scale line plot, one line per column.
pub fn plot(c: &Comparison) -> String {
    let series: Vec<Series> = c
        .columns
        .iter()
        .map(|col| Series {
            label: col.heading.clone(),
            pages: col.per_round.clone(),
        })
        .collect();
    let y_label = if c.columns.iter().all(|col| col.measure == Measure::Pages) {
        "pages sent"
    } else {
        "pages sent, or dirty"
    };
    svg::pages_per_round_lines(&c.title, y_label, &series)
}

/// Where `depmig compare` reads reports and writes its outputs.
pub trait Files {
    /// The whole file, or why not.
    fn read(&mut self, path: &Path) -> Result<Vec<u8>, String>;
    /// Writes (replaces) the file.
    fn write(&mut self, path: &Path, data: &[u8]) -> Result<(), String>;
}

/// The real file system; reads stop past the JSON reader's size limit.
#[derive(Debug, Default)]
pub struct RealFiles;

impl Files for RealFiles {
    fn read(&mut self, path: &Path) -> Result<Vec<u8>, String> {
        let f = std::fs::File::open(path).map_err(|e| e.to_string())?;
        let mut data = Vec::new();
        // One byte past the limit is enough to know the file is too large.
        f.take(json::MAX_INPUT as u64 + 1)
            .read_to_end(&mut data)
            .map_err(|e| e.to_string())?;
        Ok(data)
    }

    fn write(&mut self, path: &Path, data: &[u8]) -> Result<(), String> {
        std::fs::write(path, data).map_err(|e| e.to_string())
    }
}

/// Reads every report and builds the comparison.
pub fn build<F: Files + ?Sized>(
    opts: &CompareOptions,
    files: &mut F,
) -> Result<Comparison, CompareError> {
    let mut migrations = Vec::with_capacity(opts.reports.len());
    for (label, path) in &opts.reports {
        let file = path.display().to_string();
        let data = files.read(path).map_err(|why| CompareError::Read {
            file: file.clone(),
            why,
        })?;
        if data.len() > json::MAX_INPUT {
            return Err(CompareError::Report {
                file,
                error: ReportError::Json(json::JsonError::TooLarge),
            });
        }
        let text = String::from_utf8(data).map_err(|_| CompareError::Read {
            file: file.clone(),
            why: "not UTF-8 text".into(),
        })?;
        migrations.push(load(label, &file, &text)?);
    }
    let title = opts.title.as_deref().unwrap_or(DEFAULT_TITLE);
    Ok(compare(title, migrations, opts.guest_pages))
}

/// Runs `depmig compare`: the Markdown goes to `out` (and `--markdown`),
/// the JSON and the plot to their files. Returns the comparison, or the
/// first error (exit status 1).
pub fn run<F: Files + ?Sized>(
    opts: &CompareOptions,
    files: &mut F,
    out: &mut dyn std::io::Write,
) -> Result<Comparison, CompareError> {
    let c = build(opts, files)?;
    let md = markdown(&c);
    // Standard output closed is not a reason to withhold the files.
    let _ = out.write_all(md.as_bytes());
    let outputs = [
        (opts.markdown.as_deref(), md),
        (opts.json.as_deref(), format!("{}\n", to_json(&c))),
        (opts.svg.as_deref(), plot(&c)),
    ];
    for (path, text) in outputs {
        if let Some(p) = path {
            files
                .write(p, text.as_bytes())
                .map_err(|why| CompareError::Write {
                    file: p.display().to_string(),
                    why,
                })?;
        }
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::path::PathBuf;

    use super::*;
    use crate::report::tests::sample;
    use crate::svg::tests::check_xml;

    /// A report with these pages per round, this downtime and, for depmig,
    /// this `depmig` object (JSON text).
    fn rep(migrator: &str, pages: &[u64], downtime: &str, depmig: Option<&str>) -> String {
        let base = sample(migrator, pages).replacen(
            "\"downtime_ms\":56",
            &format!("\"downtime_ms\":{downtime}"),
            1,
        );
        match depmig {
            None => base,
            Some(d) => format!(
                "{},\"depmig\":{d}}}",
                base.strip_suffix('}').expect("an object")
            ),
        }
    }

    fn list(v: &[u64]) -> String {
        let items: Vec<String> = v.iter().map(u64::to_string).collect();
        format!("[{}]", items.join(","))
    }

    fn depmig_obj(mode: &str, dirty: &[u64], tainted: &[u64], free: &[u64], frozen: u64) -> String {
        format!(
            "{{\"mode\":\"{mode}\",\"policy\":\"xen-4.x\",\"frozen_groups\":{frozen},\
             \"per_round_dirty\":{},\"per_round_dirty_tainted\":{},\"per_round_skipped_free\":{}}}",
            list(dirty),
            list(tainted),
            list(free)
        )
    }

    const GUEST: u64 = 32768;
    const STOCK: [u64; 6] = [GUEST, 6400, 6410, 6400, 6405, 6500];
    const BASE: [u64; 6] = [GUEST, 6401, 6400, 6400, 6402, 6480];
    const PAPER: [u64; 6] = [GUEST, 6399, 6400, 6420, 6400, 6470];
    const AWARE: [u64; 4] = [GUEST, 60, 13, 40];

    fn stock() -> String {
        rep("xl-migrate", &STOCK, "20000", None)
    }
    fn base() -> String {
        let z = [0; 6];
        rep(
            "depmig",
            &BASE,
            "30000",
            Some(&depmig_obj("baseline", &BASE, &BASE, &z, 0)),
        )
    }
    fn paper() -> String {
        let dirty = [33000, 6399, 6400, 6420, 6400, 6470];
        let tainted = [900, 25, 13, 40, 22, 31];
        rep(
            "depmig",
            &PAPER,
            "31000",
            Some(&depmig_obj("paper-analysis", &dirty, &tainted, &[0; 6], 0)),
        )
    }
    fn aware_with(pages: &[u64], downtime: &str) -> String {
        let n = pages.len();
        let mut free = vec![0; n];
        if let Some(last) = free.last_mut() {
            *last = 120;
        }
        rep(
            "depmig",
            pages,
            downtime,
            Some(&depmig_obj("dependency-aware", pages, pages, &free, 1)),
        )
    }
    fn aware() -> String {
        aware_with(&AWARE, "1500")
    }

    /// In-memory files: reads from `files`, writes into `written`.
    #[derive(Default)]
    struct Mem {
        files: HashMap<PathBuf, Vec<u8>>,
        written: HashMap<PathBuf, Vec<u8>>,
        refuse_writes: bool,
    }

    impl Files for Mem {
        fn read(&mut self, path: &Path) -> Result<Vec<u8>, String> {
            self.files
                .get(path)
                .cloned()
                .ok_or_else(|| "No such file or directory (os error 2)".into())
        }
        fn write(&mut self, path: &Path, data: &[u8]) -> Result<(), String> {
            if self.refuse_writes {
                return Err("Permission denied (os error 13)".into());
            }
            self.written.insert(path.to_path_buf(), data.to_vec());
            Ok(())
        }
    }

    fn opts(reports: &[(&str, &str)]) -> CompareOptions {
        CompareOptions {
            title: None,
            svg: None,
            markdown: None,
            json: None,
            guest_pages: None,
            reports: reports
                .iter()
                .map(|(l, f)| (l.to_string(), PathBuf::from(f)))
                .collect(),
        }
    }

    /// Compares `reports` (label, text) as `depmig compare` would.
    fn cmp(reports: &[(&str, String)], guest_pages: Option<u64>) -> Comparison {
        let mut mem = Mem::default();
        let mut pairs = Vec::new();
        for (i, (label, text)) in reports.iter().enumerate() {
            let f = format!("r{i}.json");
            mem.files
                .insert(PathBuf::from(&f), text.clone().into_bytes());
            pairs.push((label.to_string(), PathBuf::from(f)));
        }
        let o = CompareOptions {
            guest_pages,
            reports: pairs,
            ..opts(&[])
        };
        build(&o, &mut mem).unwrap()
    }

    fn target<'a>(c: &'a Comparison, key: &str) -> &'a Target {
        c.targets
            .iter()
            .find(|t| t.key == key)
            .unwrap_or_else(|| panic!("no target {key}: {:?}", c.targets))
    }

    fn full_set() -> Vec<(&'static str, String)> {
        vec![
            ("xl", stock()),
            ("base", base()),
            ("paper", paper()),
            ("aware", aware()),
        ]
    }

    #[test]
    fn columns_one_per_report_and_two_for_paper_analysis() {
        let c = cmp(&full_set(), None);
        let heads: Vec<&str> = c.columns.iter().map(|c| c.heading.as_str()).collect();
        assert_eq!(
            heads,
            ["xl", "base", "paper dirty", "paper dirty+tainted", "aware"]
        );
        let roles: Vec<Role> = c.migrations.iter().map(|m| m.role).collect();
        assert_eq!(
            roles,
            [
                Role::Stock,
                Role::DepmigBaseline,
                Role::PaperAnalysis,
                Role::DependencyAware
            ]
        );
        let md = markdown(&c);
        assert!(
            md.contains(
                "| round | xl | base | paper dirty | paper dirty+tainted | aware |\n\
                 | ---: | ---: | ---: | ---: | ---: | ---: |\n\
                 | 1 | 32768 | 32768 | 33000 | 900 | 32768 |\n\
                 | 2 | 6400 | 6401 | 6399 | 25 | 60 |\n"
            ),
            "{md}"
        );
        // Rounds a report does not have are empty cells.
        assert!(md.contains("| 5 | 6405 | 6402 | 6400 | 22 | |\n"), "{md}");
        assert!(md.contains("| 6 | 6500 | 6480 | 6470 | 31 | |\n"), "{md}");
        // The summary: rounds, totals, bytes, downtime, time, frozen, free.
        let total = |p: &[u64]| p.iter().sum::<u64>();
        assert!(md.contains(&format!(
            "| xl | xl-migrate | stock | 6 | {} | - | 20000 | - | 1234 | - | - |",
            total(&STOCK)
        )));
        assert!(md.contains(&format!(
            "| aware | depmig | dependency-aware | 4 | {} | - | 1500 | - | 1234 | 1 | 120 |",
            total(&AWARE)
        )));
        assert!(md.contains(&format!(
            "| paper | depmig | paper-analysis | 6 | {} | - | 31000 | - | 1234 | 0 | 0 |",
            total(&PAPER)
        )));
        // The plot has one line per column, labels escaped.
        let c = cmp(
            &[("a <&> \"b\"", stock()), ("p", paper()), ("d", aware())],
            None,
        );
        let doc = plot(&c);
        let els = check_xml(&doc).unwrap();
        assert_eq!(els.iter().filter(|(n, _)| n == "polyline").count(), 4);
        assert!(doc.contains("a &lt;&amp;&gt; &quot;b&quot; (6 rounds"));
        assert!(doc.contains(">p dirty+tainted (6 rounds, 1031 pages)<"));
        assert!(!doc.contains("<&>"));
    }

    /// `paper()` with a census of the rounds listed: a fifth of each
    /// round's dirty tainted pages mapped by processes, the rest the
    /// kernel's.
    fn paper_with_census(rounds: &[u64]) -> String {
        let tainted = [900u64, 25, 13, 40, 22, 31];
        let pick = |f: &dyn Fn(u64) -> u64| -> String {
            list(
                &rounds
                    .iter()
                    .map(|&r| f(tainted[r as usize - 1]))
                    .collect::<Vec<_>>(),
            )
        };
        let census = format!(
            ",\"census\":{{\"round\":{},\"asked\":{},\"user\":{},\"page_tables\":{},\"kernel\":{},\"unreadable\":{}}}}}}}",
            list(rounds),
            pick(&|t| t),
            pick(&|t| t / 5),
            pick(&|_| 0),
            pick(&|t| t - t / 5),
            pick(&|_| 0)
        );
        let p = paper();
        let (head, _) = p.rsplit_once("}}").expect("depmig object last");
        format!("{head}{census}")
    }

    #[test]
    fn the_census_adds_a_column_of_tainted_processes_pages() {
        let set = |p: String| vec![("xl", stock()), ("paper", p), ("aware", aware())];
        let c = cmp(&set(paper_with_census(&[1, 2, 3, 4, 5, 6])), None);
        let heads: Vec<&str> = c.columns.iter().map(|c| c.heading.as_str()).collect();
        assert_eq!(
            heads,
            [
                "xl",
                "paper dirty",
                "paper dirty+tainted",
                "paper of tainted processes",
                "aware"
            ]
        );
        let col = &c.columns[3];
        assert_eq!(col.measure, Measure::TaintedProcesses);
        assert_eq!(col.per_round, vec![180, 5, 2, 8, 4, 6]);
        let md = markdown(&c);
        assert!(md.contains("| 2 | 6400 | 6399 | 25 | 5 | 60 |\n"), "{md}");
        assert!(
            md.contains("the pages mapped by tainted processes alone"),
            "{md}"
        );
        let j = to_json(&c).to_string();
        assert!(j.contains("\"measure\":\"tainted_processes\""), "{j}");
        let doc = plot(&c);
        assert!(
            doc.contains(">paper of tainted processes (6 rounds, 205 pages)<"),
            "{doc}"
        );
        // A census missing in some rounds gives no column, and a note says so.
        let c = cmp(&set(paper_with_census(&[1, 3])), None);
        assert_eq!(c.columns.len(), 4);
        assert!(
            c.notes
                .iter()
                .any(|n| n.contains("taken in rounds 1, 3 of 6 only")),
            "{:?}",
            c.notes
        );
        // Without one, the pair as before and no note.
        let c = cmp(&set(paper()), None);
        assert_eq!(c.columns.len(), 4);
        assert!(
            c.notes.iter().all(|n| !n.contains("census")),
            "{:?}",
            c.notes
        );
    }

    #[test]
    fn a_migration_that_did_not_commit_is_refused() {
        let failed = base().replacen(
            "\"policy\":\"xen-4.x\",",
            "\"policy\":\"xen-4.x\",\"result\":\"failed\",",
            1,
        );
        assert_ne!(failed, base());
        match load("f", "f.json", &failed) {
            Err(CompareError::Report { file, error }) => {
                assert_eq!(file, "f.json");
                assert!(error.to_string().contains("did not commit"), "{error}");
            }
            other => panic!(
                "a rolled-back report was compared: {:?}",
                other.map(|m| m.label)
            ),
        }
        let committed = base().replacen(
            "\"policy\":\"xen-4.x\",",
            "\"policy\":\"xen-4.x\",\"result\":\"committed\",",
            1,
        );
        assert!(load("c", "c.json", &committed).is_ok());
    }

    #[test]
    fn roles_come_from_the_reports_not_the_labels() {
        // Labels that lie: the stock report called "aware" and so on.
        let c = cmp(
            &[
                ("aware", stock()),
                ("stock", aware()),
                ("paper", base()),
                ("base", paper()),
            ],
            None,
        );
        let t = target(&c, "da_downtime_le_0_1_stock");
        assert_eq!(
            (t.subject.as_deref(), t.reference.as_deref()),
            (Some("stock"), Some("aware"))
        );
        let t = target(&c, "pa_total_pages_within_5pct_of_baseline");
        assert_eq!(
            (t.subject.as_deref(), t.reference.as_deref()),
            (Some("base"), Some("paper"))
        );
        // A depmig report without a depmig object takes the CLI's mode.
        let cli_only = sample("depmig", &[10, 1]).replacen(
            "\"downtime_method\"",
            "\"cli\":{\"mode\":\"dependency-aware\"},\"downtime_method\"",
            1,
        );
        let c = cmp(&[("x", cli_only)], None);
        assert_eq!(c.migrations[0].role, Role::DependencyAware);
        // Neither: shown, noted, used by no target.
        let odd = rep("depmig", &[10, 1], "5", Some("{\"mode\":\"turbo\"}"));
        let other = rep("sim", &[10, 1], "5", Some("{}"));
        let c = cmp(&[("odd", odd), ("other", other)], None);
        assert!(c.migrations.iter().all(|m| m.role == Role::Unclassified));
        assert_eq!(c.columns.len(), 2);
        assert!(c
            .notes
            .iter()
            .any(|n| n.contains("`odd`") && n.contains("turbo")));
        assert!(c
            .notes
            .iter()
            .any(|n| n.contains("`other`") && n.contains("`sim`")));
        assert!(c.targets.iter().all(|t| t.met.is_none()));
    }

    #[test]
    fn the_guests_own_downtime_is_a_second_downtime_target() {
        // Stock: `xl list`'s view; depmig: the command's suspend -> unpause.
        let xl = stock().replacen(
            "\"downtime_method\"",
            "\"downtime_xl_list_ms\":21000,\"downtime_method\"",
            1,
        );
        let with_cli = |ms: &str| {
            let a = aware();
            let end = a.rfind('}').unwrap();
            format!(
                "{},\"cli\":{{\"outcome\":\"migrated\",\"guest_downtime_ms\":{ms}}}}}",
                &a[..end]
            )
        };
        let c = cmp(&[("xl", xl.clone()), ("aware", with_cli("6300"))], None);
        // The report's own downtime (1500 ms) meets the tenth; the guest's
        // (6300 ms against 21000) does not.
        assert_eq!(target(&c, "da_downtime_le_0_1_stock").met, Some(true));
        let t = target(&c, "da_guest_downtime_le_0_1_stock");
        assert_eq!(t.met, Some(false), "{t:?}");
        assert!(
            t.detail
                .contains("guest stopped until running 6300 ms, limit 2100.0 ms"),
            "{}",
            t.detail
        );
        let md = markdown(&c);
        assert!(md.contains("| 1500 | 6300 |"), "{md}");
        assert!(md.contains("| 20000 | 21000 |"), "{md}");
        let c = cmp(&[("xl", xl), ("aware", with_cli("2100"))], None);
        assert_eq!(target(&c, "da_guest_downtime_le_0_1_stock").met, Some(true));
        // Without the figures: not evaluated, and said why.
        let c = cmp(&[("xl", stock()), ("aware", with_cli("2100"))], None);
        let t = target(&c, "da_guest_downtime_le_0_1_stock");
        assert!(
            t.met.is_none() && t.detail.contains("`xl` reports no guest stopped"),
            "{t:?}"
        );
    }

    #[test]
    fn targets_met() {
        let c = cmp(&full_set(), None);
        let keys: Vec<&str> = c.targets.iter().map(|t| t.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "da_later_rounds_le_100",
                "da_total_pages_le_1_05_guest",
                "da_downtime_le_0_1_stock",
                "da_guest_downtime_le_0_1_stock",
                "pa_total_pages_within_5pct_of_baseline",
                "da_total_pages_within_5pct_of_baseline",
            ]
        );
        assert_eq!(c.guest_pages, Some((GUEST, "round 1 of stock `xl`".into())));
        let t = target(&c, "da_later_rounds_le_100");
        assert_eq!((t.met, &t.value), (Some(true), &Value::uint(60)));
        assert!(t.detail.contains("60 pages (round 2)"), "{}", t.detail);
        let t = target(&c, "da_total_pages_le_1_05_guest");
        assert_eq!(t.met, Some(true));
        assert_eq!(t.value, Value::uint(GUEST + 113));
        // 1.05 x 32768 = 34406.4, written exactly.
        assert_eq!(t.limit, Value::Num("34406.4".into()));
        let c2 = cmp(&[("d", aware())], Some(100));
        assert_eq!(
            target(&c2, "da_total_pages_le_1_05_guest").limit,
            Value::Num("105".into())
        );
        let t = target(&c, "da_downtime_le_0_1_stock");
        assert_eq!(t.met, Some(true));
        assert_eq!(
            (t.value.as_f64(), t.limit.as_f64()),
            (Some(1500.0), Some(2000.0))
        );
        let t = target(&c, "pa_total_pages_within_5pct_of_baseline");
        assert_eq!(t.met, Some(true));
        assert!(t.value.as_f64().is_some_and(|v| v < 0.001));
        // Dependency-aware sends far fewer pages than the baseline: a figure,
        // not an error.
        let t = target(&c, "da_total_pages_within_5pct_of_baseline");
        assert_eq!(t.met, Some(false));
        assert!(t.value.as_f64().is_some_and(|v| v > 0.4));
        let md = markdown(&c);
        assert!(
            md.contains("- `da_later_rounds_le_100` (set for the mmuncher guest) [aware]: **met**: largest round after the first: 60 pages (round 2), limit 100"),
            "{md}"
        );
        assert!(md.contains("- `da_downtime_le_0_1_stock` (set for the mmuncher guest) [aware vs xl]: **met**: downtime 1500 ms, limit 2000.0 ms"), "{md}");
        assert!(
            md.contains("`da_total_pages_within_5pct_of_baseline` (set for the http-download guest) [aware vs base]: **NOT met**"),
            "{md}"
        );
    }

    #[test]
    fn targets_not_met_and_their_edges() {
        // Each limit overstepped by one, alone: 101 pages in a later round;
        // one page more than 1.05 x guest in all; downtime a tenth of
        // stock's plus 1 ms.
        let verdicts = |pages: &[u64], downtime: &str| -> Vec<Option<bool>> {
            let c = cmp(&[("xl", stock()), ("d", aware_with(pages, downtime))], None);
            [
                "da_later_rounds_le_100",
                "da_total_pages_le_1_05_guest",
                "da_downtime_le_0_1_stock",
            ]
            .iter()
            .map(|k| target(&c, k).met)
            .collect()
        };
        let t = Some(true);
        let f = Some(false);
        let limit_total = GUEST * 105 / 100; // 34406, under 1.05 x 32768 = 34406.4
        assert_eq!(verdicts(&[GUEST, 101, 5], "1"), [f, t, t]);
        assert_eq!(verdicts(&[limit_total + 1 - 10, 10], "1"), [t, f, t]);
        assert_eq!(verdicts(&[GUEST, 10], "2001"), [t, t, f]);
        // Exactly at each limit: met.
        assert_eq!(verdicts(&[limit_total - 100, 100], "2000"), [t, t, t]);
        let c = cmp(
            &[("xl", stock()), ("d", aware_with(&[GUEST, 101, 5], "2001"))],
            None,
        );
        let md = markdown(&c);
        assert!(md.contains("`da_later_rounds_le_100` (set for the mmuncher guest) [d]: **NOT met**: largest round after the first: 101 pages (round 2), limit 100"), "{md}");
        assert!(md.contains("`da_downtime_le_0_1_stock` (set for the mmuncher guest) [d vs xl]: **NOT met**: downtime 2001 ms, limit 2000.0 ms"), "{md}");
        // --guest-pages wins over the stock report's round 1.
        let c = cmp(&[("xl", stock()), ("d", aware())], Some(GUEST / 2));
        assert_eq!(c.guest_pages, Some((GUEST / 2, "--guest-pages".into())));
        assert_eq!(target(&c, "da_total_pages_le_1_05_guest").met, Some(false));
        // 5% of the baseline: just inside and just outside.
        let b: u64 = BASE.iter().sum();
        let near = |extra: u64| {
            let mut p = PAPER.to_vec();
            let sum: u64 = p.iter().sum();
            p[1] = p[1] + b + extra - sum;
            rep(
                "depmig",
                &p,
                "1",
                Some(&depmig_obj("paper-analysis", &p, &p, &[0; 6], 0)),
            )
        };
        let inside = cmp(&[("b", base()), ("p", near(b / 20))], None);
        assert_eq!(
            target(&inside, "pa_total_pages_within_5pct_of_baseline").met,
            Some(true)
        );
        let outside = cmp(&[("b", base()), ("p", near(b / 20 + 1))], None);
        assert_eq!(
            target(&outside, "pa_total_pages_within_5pct_of_baseline").met,
            Some(false)
        );
    }

    #[test]
    fn targets_without_their_references_say_so() {
        // No stock report: no downtime reference, no guest size.
        let c = cmp(&[("d", aware())], None);
        let t = target(&c, "da_downtime_le_0_1_stock");
        assert_eq!(t.met, None);
        assert!(t.detail.contains("no stock"), "{}", t.detail);
        let t = target(&c, "da_total_pages_le_1_05_guest");
        assert_eq!(t.met, None);
        assert!(t.detail.contains("--guest-pages"), "{}", t.detail);
        assert_eq!(target(&c, "da_later_rounds_le_100").met, Some(true));
        let t = target(&c, "da_total_pages_within_5pct_of_baseline");
        assert!(t.met.is_none() && t.detail.contains("no depmig baseline"));
        let t = target(&c, "pa_total_pages_within_5pct_of_baseline");
        assert!(t.met.is_none() && t.detail.contains("no paper-analysis"));
        // With --guest-pages the size target is evaluated after all.
        let c = cmp(&[("d", aware())], Some(GUEST));
        assert_eq!(target(&c, "da_total_pages_le_1_05_guest").met, Some(true));
        // Downtime missing on either side.
        let no_dt = rep("xl-migrate", &STOCK, "null", None);
        let c = cmp(&[("xl", no_dt), ("d", aware())], None);
        let t = target(&c, "da_downtime_le_0_1_stock");
        assert!(t.met.is_none() && t.detail.contains("`xl` reports no downtime"));
        // No dependency-aware report: its targets are there, not evaluated.
        let c = cmp(&[("xl", stock())], None);
        assert_eq!(c.targets.len(), 6);
        assert!(c.targets.iter().all(|t| t.met.is_none()));
        assert!(markdown(&c).contains("**not evaluated**: no dependency-aware depmig report"));
        // A single round: nothing after the first to exceed the limit.
        let c = cmp(&[("d", aware_with(&[GUEST], "1"))], None);
        let t = target(&c, "da_later_rounds_le_100");
        assert_eq!((t.met, &t.value), (Some(true), &Value::Null));
    }

    #[test]
    fn several_reports_of_a_kind() {
        let c = cmp(
            &[
                ("xl1", stock()),
                ("xl2", rep("xl-migrate", &STOCK, "10", None)),
                ("d1", aware()),
                ("d2", aware_with(&[GUEST, 500], "100")),
            ],
            None,
        );
        assert_eq!(target(&c, "da_later_rounds_le_100").met, Some(true));
        let t = target(&c, "da_later_rounds_le_100#2");
        assert_eq!((t.met, t.subject.as_deref()), (Some(false), Some("d2")));
        // The first stock report is the reference, and a note says so.
        let t = target(&c, "da_downtime_le_0_1_stock#2");
        assert_eq!((t.met, t.reference.as_deref()), (Some(true), Some("xl1")));
        assert!(c
            .notes
            .iter()
            .any(|n| n.contains("2 stock") && n.contains("`xl1`")));
        let keys: Vec<&str> = c.targets.iter().map(|t| t.key.as_str()).collect();
        assert!(keys.contains(&"da_total_pages_within_5pct_of_baseline#2"));
    }

    #[test]
    fn json_output_round_trips_with_stable_keys() {
        let c = cmp(&full_set(), None);
        let text = to_json(&c).to_string();
        let v = json::parse(&text).unwrap();
        assert_eq!(v.get("schema").and_then(Value::as_str), Some(SCHEMA));
        assert_eq!(v.get("guest_pages").and_then(Value::as_u64), Some(GUEST));
        let t = v.get("targets").unwrap();
        assert_eq!(
            t.get("da_later_rounds_le_100").and_then(|t| t.get("met")),
            Some(&Value::Bool(true))
        );
        assert_eq!(
            t.get("da_total_pages_within_5pct_of_baseline")
                .and_then(|t| t.get("met")),
            Some(&Value::Bool(false))
        );
        let dt = t.get("da_downtime_le_0_1_stock").unwrap();
        assert_eq!(dt.get("value").and_then(Value::as_u64), Some(1500));
        assert_eq!(dt.get("limit").and_then(Value::as_f64), Some(2000.0));
        assert_eq!(dt.get("reference").and_then(Value::as_str), Some("xl"));
        // "met" comes first, so a shell can find a verdict with one grep.
        assert!(text.contains("\"da_later_rounds_le_100\":{\"met\":true,"));
        let reports = v.get("reports").and_then(Value::as_array).unwrap();
        let roles: Vec<&str> = reports
            .iter()
            .filter_map(|r| r.get("role").and_then(Value::as_str))
            .collect();
        assert_eq!(
            roles,
            [
                "stock",
                "depmig-baseline",
                "depmig-paper-analysis",
                "depmig-dependency-aware"
            ]
        );
        let aware = &reports[3];
        assert_eq!(aware.get("frozen_groups").and_then(Value::as_u64), Some(1));
        assert_eq!(
            aware.get("skipped_free_pages").and_then(Value::as_u64),
            Some(120)
        );
        let cols = v.get("columns").and_then(Value::as_array).unwrap();
        assert_eq!(cols.len(), 5);
        assert_eq!(
            cols[3].get("measure").and_then(Value::as_str),
            Some("dirty_tainted")
        );
        assert_eq!(cols[3].get("report").and_then(Value::as_str), Some("paper"));
    }

    #[test]
    fn run_writes_every_output() {
        let mut mem = Mem::default();
        mem.files.insert("s.json".into(), stock().into_bytes());
        mem.files.insert("a.json".into(), aware().into_bytes());
        let o = CompareOptions {
            title: Some("mmuncher, 128 MiB".into()),
            svg: Some("o.svg".into()),
            markdown: Some("o.md".into()),
            json: Some("o.json".into()),
            ..opts(&[("stock", "s.json"), ("aware", "a.json")])
        };
        let mut out = Vec::new();
        run(&o, &mut mem, &mut out).unwrap();
        assert!(out.starts_with(b"# mmuncher, 128 MiB\n"));
        assert_eq!(mem.written.get(Path::new("o.md")), Some(&out));
        let j = String::from_utf8(mem.written[Path::new("o.json")].clone()).unwrap();
        assert!(json::parse(&j).is_ok());
        let svg = String::from_utf8(mem.written[Path::new("o.svg")].clone()).unwrap();
        assert_eq!(
            check_xml(&svg)
                .unwrap()
                .iter()
                .filter(|(n, _)| n == "polyline")
                .count(),
            2
        );
        // A write that fails is an error naming the file.
        mem.refuse_writes = true;
        match run(&o, &mut mem, &mut Vec::new()) {
            Err(e @ CompareError::Write { .. }) => assert!(e.to_string().contains("o.md")),
            other => panic!("{other:?}"),
        }
    }

    /// Runs a comparison of a good stock report and `text`; the error text.
    fn reject(text: Vec<u8>) -> String {
        let mut mem = Mem::default();
        mem.files.insert("s.json".into(), stock().into_bytes());
        mem.files.insert("bad.json".into(), text);
        let o = opts(&[("s", "s.json"), ("bad", "bad.json")]);
        match run(&o, &mut mem, &mut Vec::new()) {
            Err(e) => {
                let msg = e.to_string();
                assert!(msg.starts_with("bad.json: "), "{msg}");
                msg
            }
            Ok(_) => panic!("accepted"),
        }
    }

    #[test]
    fn malformed_reports_are_errors_naming_file_and_field() {
        let no_file = {
            let mut mem = Mem::default();
            match build(&opts(&[("x", "missing.json")]), &mut mem) {
                Err(e @ CompareError::Read { .. }) => e.to_string(),
                other => panic!("{other:?}"),
            }
        };
        assert!(no_file.contains("missing.json") && no_file.contains("os error 2"));
        assert!(reject(b"{".to_vec()).contains("not JSON"));
        assert!(reject(vec![0xff, 0xfe]).contains("not UTF-8"));
        assert!(reject(vec![b' '; json::MAX_INPUT + 1]).contains("larger than"));
        let good = aware();
        let edit = |from: &str, to: &str| {
            assert!(good.contains(from), "{from}");
            reject(good.replacen(from, to, 1).into_bytes())
        };
        let m = edit("\"per_round_pages\":[", "\"per_round_pagez\":[");
        assert!(m.contains("\"per_round_pages\""), "{m}");
        let m = edit("\"per_round_dirty\":[32768,", "\"per_round_dirty\":[");
        assert!(
            m.contains("depmig.per_round_dirty") && m.contains("3 entries for 4"),
            "{m}"
        );
        let m = edit(
            "\"per_round_skipped_free\":[",
            "\"per_round_skipped_free\":[\"x\",",
        );
        assert!(m.contains("depmig.per_round_skipped_free"), "{m}");
        let m = edit("\"frozen_groups\":1", "\"frozen_groups\":true");
        assert!(m.contains("depmig.frozen_groups"), "{m}");
        let m = edit("\"downtime_ms\":1500", "\"downtime_ms\":1e400");
        assert!(m.contains("\"downtime_ms\"") && m.contains("finite"), "{m}");
        let m = edit("\"total_time_ms\":1234", "\"total_time_ms\":{}");
        assert!(m.contains("\"total_time_ms\""), "{m}");
        let m = edit("\"rounds\":4", "\"rounds\":5");
        assert!(m.contains("per_round_pages"), "{m}");
        // A paper-analysis report must carry both per-round measures.
        let p = paper();
        let m = reject(
            p.replacen("\"per_round_dirty_tainted\"", "\"per_round_x\"", 1)
                .into_bytes(),
        );
        assert!(m.contains("depmig.per_round_dirty_tainted"), "{m}");
        // Huge arrays are refused by size or by their round count, not read.
        let huge = format!(
            "{{\"schema\":\"{}\",\"migrator\":\"xl-migrate\",\"page_size\":4096,\"rounds\":1,\
             \"final_round\":1,\"per_round_pages\":[{}],\"per_round\":[],\"total_pages\":0}}",
            report::SCHEMA,
            vec!["0"; 500_000].join(",")
        );
        let m = reject(huge.into_bytes());
        assert!(m.contains("per_round_pages"), "{m}");
    }

    #[test]
    fn never_panics_on_damaged_reports() {
        // Every truncation and a byte flipped at every position of a valid
        // report: an error or a comparison, never a panic.
        let text = aware();
        let bytes = text.as_bytes();
        for end in 0..bytes.len() {
            let mut mem = Mem::default();
            mem.files.insert("a".into(), bytes[..end].to_vec());
            assert!(build(&opts(&[("a", "a")]), &mut mem).is_err());
        }
        for i in 0..bytes.len() {
            for b in [b'0', b'9', b'-', b'"', b'{', b']', b'n', b' '] {
                let mut v = bytes.to_vec();
                v[i] = b;
                let mut mem = Mem::default();
                mem.files.insert("a".into(), v);
                mem.files.insert("s".into(), stock().into_bytes());
                if let Ok(c) = build(&opts(&[("s", "s"), ("a", "a")]), &mut mem) {
                    let _ = markdown(&c);
                    let _ = to_json(&c);
                    check_xml(&plot(&c)).unwrap();
                }
            }
        }
    }
}
