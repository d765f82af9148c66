//! Migration reports (schema `depmig-migration-report/1`, described in
//! `qemu-tests/baseline/README.md`, its one definition the
//! [`MigrationReport`] of `depmig_control::report`): reading a report that
//! came from an appliance or a baseline run, and the figures `depmig` adds
//! itself.
//!
//! A report is hostile input (it comes from an appliance through xenstore,
//! or from a file), so reading it is strict and bounded: at most
//! [`json::MAX_INPUT`] bytes of RFC 8259 JSON; an object whose `schema`
//! names this schema and version, checked before any other field is
//! looked at; every required field present; each field of its type
//! (serde, with the field's path in the message); no per-round array past
//! [`MAX_ROUNDS`] entries; then the figures agreeing with each other
//! (`check.rs`).
//!
//! A migration that failed before its first round completed still has a
//! report: `rounds` 0 and empty per-round arrays. That is valid only in a
//! report that says the migration did not commit (`cli.outcome`
//! `rolled-back`, or the source appliance's `depmig.result` other than
//! `committed`, with nothing in it saying `committed` or `migrated`);
//! [`validate`] accepts it, [`parse_report`] (the reader of reports whose
//! figures are used: comparisons, the plot's baseline) does not.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::error::Category;
use serde_json::value::RawValue;

use crate::json::{self, JsonError, Value};

mod check;
mod command;
mod figures;

pub use command::{finish_report, without_figures, CliFigures};
pub use depmig_control::report::{MigrationReport, MAX_ROUNDS, SCHEMA};
pub use figures::{depmig_figures, source_figures, DepmigFigures, RoundCensus};

/// Why a report is not acceptable.
#[derive(Debug, Clone, PartialEq)]
pub enum ReportError {
    /// The text is not JSON.
    Json(JsonError),
    /// The top level is not an object.
    NotObject,
    /// `schema` is missing or names another schema.
    Schema(Option<String>),
    /// A required field is missing.
    Missing(&'static str),
    /// A field has the wrong type or an impossible value.
    Invalid(String),
}

impl fmt::Display for ReportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReportError::Json(e) => write!(f, "not JSON: {e}"),
            ReportError::NotObject => write!(f, "not a JSON object"),
            ReportError::Schema(None) => write!(f, "no \"schema\" field"),
            ReportError::Schema(Some(s)) => write!(f, "schema \"{s}\", expected \"{SCHEMA}\""),
            ReportError::Missing(k) => write!(f, "required field \"{k}\" missing"),
            ReportError::Invalid(why) => write!(f, "{why}"),
        }
    }
}

impl std::error::Error for ReportError {}

/// The figures of a valid report that `depmig` uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Who migrated (`xl-migrate`, `depmig`, ...).
    pub migrator: String,
    /// Pages with contents sent per round.
    pub per_round_pages: Vec<u64>,
    /// Their sum.
    pub total_pages: u64,
    /// 1-based index of the stop-and-copy round, if identified.
    pub final_round: Option<u64>,
    /// What the report says of the migration's end: `Some(true)` committed,
    /// `Some(false)` not committed, `None` when it does not say (the stock
    /// baseline's reports). The command's `cli.outcome` decides when present
    /// (the source may have committed its side and dom0 still rolled back),
    /// else the source appliance's `depmig.result`.
    pub committed: Option<bool>,
}

/// The fields every report has (`null` where the schema allows it), in
/// the order they are checked.
const REQUIRED: [&str; 7] = [
    "migrator",
    "page_size",
    "rounds",
    "final_round",
    "per_round_pages",
    "per_round",
    "total_pages",
];

/// Reads a report's text into its type: everything but the checks that
/// need the whole report.
pub fn read(text: &str) -> Result<MigrationReport, ReportError> {
    if text.len() > json::MAX_INPUT {
        return Err(ReportError::Json(JsonError::TooLarge));
    }
    // The envelope first: JSON all through, an object, this schema, the
    // required fields there. Each entry's value is only looked over here
    // (its text kept, nothing built from it).
    let top: BTreeMap<String, &RawValue> = match serde_json::from_str(text) {
        Ok(top) => top,
        Err(e) if e.classify() == Category::Data => return Err(ReportError::NotObject),
        Err(e) => return Err(ReportError::Json(JsonError::Malformed(e.to_string()))),
    };
    match top.get("schema") {
        None => return Err(ReportError::Schema(None)),
        Some(raw) => match serde_json::from_str::<String>(raw.get()) {
            Ok(s) if s == SCHEMA => {}
            Ok(s) => return Err(ReportError::Schema(Some(s))),
            Err(_) => return Err(ReportError::Schema(Some(raw.get().to_string()))),
        },
    }
    if let Some(key) = REQUIRED.iter().find(|k| !top.contains_key(**k)) {
        return Err(ReportError::Missing(key));
    }
    // Then the fields, each refused with its path (`"depmig.mode" is
    // neither a string nor null at line 1 column 9`).
    let mut de = serde_json::Deserializer::from_str(text);
    let report = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let why = e.into_inner();
        ReportError::Invalid(if path == "." {
            why.to_string()
        } else {
            format!("\"{path}\" {why}")
        })
    })?;
    // Last, what the fields above did not read: every number within range
    // there too, so that a report reads the same as a JSON value
    // (`parse_any_report`) as it does here.
    json::parse(text).map_err(ReportError::Json)?;
    Ok(report)
}

/// Reads and checks any report [`validate`] accepts, that of a migration
/// that failed before its first round included.
pub fn read_any(text: &str) -> Result<(MigrationReport, Summary), ReportError> {
    let r = read(text)?;
    let s = check::summary(&r)?;
    Ok((r, s))
}

/// Reads and checks the report of a migration whose per-round figures are
/// to be used: a valid report with at least one round (a report with none,
/// of a migration that failed before its first round completed, is refused
/// with a message saying so).
pub fn read_with_rounds(text: &str) -> Result<(MigrationReport, Summary), ReportError> {
    let (r, s) = read_any(text)?;
    if s.per_round_pages.is_empty() {
        return Err(ReportError::Invalid(
            "no round completed (the migration did not commit): no per-round figures".into(),
        ));
    }
    Ok((r, s))
}

/// [`read_with_rounds`], the report given back as a JSON value.
pub fn parse_report(text: &str) -> Result<(Value, Summary), ReportError> {
    let (_, s) = read_with_rounds(text)?;
    Ok((json::parse(text).map_err(ReportError::Json)?, s))
}

/// [`read_any`], the report given back as a JSON value.
pub fn parse_any_report(text: &str) -> Result<(Value, Summary), ReportError> {
    let (_, s) = read_any(text)?;
    Ok((json::parse(text).map_err(ReportError::Json)?, s))
}

/// Checks a report as its JSON text reads (a [`Value`] or a
/// [`MigrationReport`]): the schema, the required fields and their types,
/// and that the figures agree with each other. What is checked is the
/// text itself, so a report that passes is one this command reads back.
pub fn validate<R: fmt::Display + ?Sized>(report: &R) -> Result<Summary, ReportError> {
    read_any(&report.to_string()).map(|(_, s)| s)
}

#[cfg(test)]
pub(crate) mod tests;
