//! `depmig compare`: migrations of the same guest side by side, as in the
//! paper's figures of pages per round (a table, a log-scale plot), with the
//! headline figures of each and the targets of dependency-aware migration
//! evaluated from the reports.
//!
//! Each job its own module: `load` reads and classifies a report,
//! `columns` lays out the per-round table, `targets` evaluates the targets,
//! `markdown` and `json_out` write the comparison out; this module holds
//! the types they share, puts them together ([`compare`]), plots it
//! ([`plot`]) and runs the command ([`run`]).

use std::fmt;
use std::io::Read;
use std::path::Path;

use serde::{Serialize, Serializer};

use crate::cli::CompareOptions;
use crate::json::{self, Value};
use crate::report::{DepmigFigures, ReportError};
use crate::svg::{self, Series};

mod columns;
mod json_out;
mod load;
mod markdown;
mod targets;

pub use columns::{Column, Measure};
pub use json_out::to_json;
pub use load::load;
pub use markdown::markdown;
pub use targets::{set_for, Target, LATER_ROUND_LIMIT};

/// The schema name of the `--json` output.
pub const SCHEMA: &str = "depmig-comparison/1";

/// Title when `--title` is not given.
pub const DEFAULT_TITLE: &str = "pages sent per round";

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

/// A number from a report: its text (written as it is into the JSON output
/// and the Markdown) and its value.
#[derive(Debug, Clone, PartialEq)]
pub struct Figure {
    /// The number as the report's reader gave it.
    pub text: String,
    /// Its value (finite, non-negative).
    pub value: f64,
}

impl Serialize for Figure {
    /// The number, as its text says.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        Value::Num(self.text.clone()).serialize(s)
    }
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
    /// Stream bytes of each round's records (`per_round[i].bytes`), `None`
    /// for a round the report gives none for.
    pub per_round_bytes: Vec<Option<u64>>,
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

    /// What compression and deltas did to the page records over all
    /// rounds, when the report says (`depmig.pages`).
    pub fn page_saving(&self) -> Option<PageSaving> {
        let d = self.depmig.as_ref()?;
        let sum = |a: &[u64]| a.iter().fold(0u64, |t, b| t.saturating_add(*b));
        let raw = sum(d.per_round_raw_bytes.as_deref()?);
        let saved = sum(d.per_round_bytes_saved.as_deref()?);
        Some(PageSaving {
            codec: d.codec.clone(),
            raw,
            // The reader refuses a round that saved more than it had, so
            // the sums hold the same; saturating all the same.
            sent: raw.saturating_sub(saved),
            saved,
        })
    }
}

/// A migration's page records over all rounds: what they took on the wire
/// and what they would have taken as Xen's PAGE_DATA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageSaving {
    /// The page codec agreed on, if the report names it.
    pub codec: Option<String>,
    /// Bytes the page records would have taken as PAGE_DATA.
    pub raw: u64,
    /// Bytes they took.
    pub sent: u64,
    /// `raw - sent`.
    pub saved: u64,
}

impl PageSaving {
    /// Bytes sent per raw byte (1 when nothing was saved), `None` when
    /// there were no page records.
    pub fn ratio(&self) -> Option<f64> {
        (self.raw > 0).then(|| self.sent as f64 / self.raw as f64)
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

/// Puts the reports side by side and evaluates the targets.
pub fn compare(title: &str, migrations: Vec<Migration>, guest_pages: Option<u64>) -> Comparison {
    let mut notes = Vec::new();
    let columns = columns::columns(&migrations, &mut notes);
    let (guest_pages, targets) = targets::targets(&migrations, guest_pages, &mut notes);
    Comparison {
        title: title.to_string(),
        migrations,
        columns,
        guest_pages,
        targets,
        notes,
    }
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
    let json = to_json(&c);
    if let (Some(p), true) = (&opts.json, json.is_empty()) {
        return Err(CompareError::Write {
            file: p.display().to_string(),
            why: "serde_json could not write the comparison".into(),
        });
    }
    let outputs = [
        (opts.markdown.as_deref(), md),
        (opts.json.as_deref(), format!("{json}\n")),
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
mod tests;
