//! Reading one report for a comparison: read and checked as every report
//! is ([`crate::report`]), refused if the migration did not commit, and
//! classified by its own fields (never by its label).

use depmig_control::report::Number;

use super::{CompareError, Figure, Migration, Role};
use crate::report::{self, ReportError};

/// A figure of the report, `None` when absent or null.
fn figure(n: Option<&Number>, key: &'static str) -> Result<Option<Figure>, ReportError> {
    let Some(n) = n else {
        return Ok(None);
    };
    // The reader refuses negative and out-of-range numbers already; a
    // figure used in arithmetic is checked where it is taken all the same.
    let value = n
        .as_f64()
        .filter(|x| x.is_finite() && *x >= 0.0)
        .ok_or_else(|| {
            ReportError::Invalid(format!(
                "\"{key}\" is not a finite non-negative number: {n}"
            ))
        })?;
    Ok(Some(Figure {
        text: n.to_string(),
        value,
    }))
}

/// Reads, validates and classifies one report's text.
pub fn load(label: &str, file: &str, text: &str) -> Result<Migration, CompareError> {
    let err = |error| CompareError::Report {
        file: file.to_string(),
        error,
    };
    let (r, s) = report::read_with_rounds(text).map_err(err)?;
    // A migration that was rolled back is no figure of a model: its rounds
    // stop wherever it failed, and a target met on it would mislead.
    if s.committed == Some(false) {
        return Err(err(ReportError::Invalid(
            "the migration did not commit (depmig.result / cli.outcome): not compared".into(),
        )));
    }
    let depmig = report::source_figures(&r, s.per_round_pages.len()).map_err(err)?;
    let mode = depmig
        .as_ref()
        .and_then(|d| d.mode.clone())
        .or_else(|| r.cli.as_ref().and_then(|c| c.mode.clone()))
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
    let guest_downtime = match role {
        Role::Stock => figure(r.downtime_xl_list_ms.as_ref(), "downtime_xl_list_ms"),
        _ => figure(
            r.cli.as_ref().and_then(|c| c.guest_downtime_ms.as_ref()),
            "cli.guest_downtime_ms",
        ),
    };
    Ok(Migration {
        label: label.to_string(),
        file: file.to_string(),
        migrator: s.migrator,
        role,
        mode,
        scenario: r.scenario,
        workload: r.workload,
        per_round_pages: s.per_round_pages,
        per_round_bytes: r.per_round.iter().map(|f| f.bytes).collect(),
        final_round: s.final_round,
        total_pages: s.total_pages,
        stream_bytes: figure(r.stream_bytes.as_ref(), "stream_bytes").map_err(err)?,
        downtime_ms: figure(r.downtime_ms.as_ref(), "downtime_ms").map_err(err)?,
        downtime_method: r.downtime_method,
        guest_downtime_ms: guest_downtime.map_err(err)?,
        total_time_ms: figure(r.total_time_ms.as_ref(), "total_time_ms").map_err(err)?,
        depmig,
    })
}
