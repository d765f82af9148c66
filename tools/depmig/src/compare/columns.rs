//! The per-round table: one column per report, two or three for a
//! paper-analysis report (its dirty pages, its dirty tainted pages, and of
//! those the pages of tainted processes when its census covers every
//! round), with the notes on the set that the reports call for.

use super::{Migration, Role};

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
    /// Index of the report in [`super::Comparison::migrations`].
    pub report: usize,
    /// What it shows.
    pub measure: Measure,
    /// One value per round of its report.
    pub per_round: Vec<u64>,
}

/// The columns of `migrations` in order; notes what a column cannot show
/// and what does not fit the set.
pub(super) fn columns(migrations: &[Migration], notes: &mut Vec<String>) -> Vec<Column> {
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
    columns
}
