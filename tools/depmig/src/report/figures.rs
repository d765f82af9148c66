//! The figures depmig's source appliance adds under `depmig`, checked
//! against the report's rounds: what `depmig compare` and the plots use.

use std::fmt;

use depmig_control::report::{Census, MigrationReport};

use super::ReportError;

/// The figures depmig's source appliance adds under `"depmig"` (the stock
/// baseline's reports have none). Absent or null fields are `None`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DepmigFigures {
    /// `baseline`, `dependency-aware` or `paper-analysis` (`None` when
    /// missing or empty).
    pub mode: Option<String>,
    /// Process groups the guest's agent froze for the migration.
    pub frozen_groups: Option<u64>,
    /// Dirty pages per round.
    pub per_round_dirty: Option<Vec<u64>>,
    /// Dirty pages of tainted processes or the kernel per round.
    pub per_round_dirty_tainted: Option<Vec<u64>>,
    /// Pages not sent per round because they were free.
    pub per_round_skipped_free: Option<Vec<u64>>,
    /// Paper-analysis mode: whose each round's dirty tainted pages were,
    /// for the rounds whose census was taken, in round order.
    pub census: Option<Vec<RoundCensus>>,
    /// The page codec agreed on (`depmig.pages.codec`).
    pub codec: Option<String>,
    /// Bytes each round's page records would have taken as Xen's
    /// PAGE_DATA (`depmig.pages.per_round_raw_bytes`).
    pub per_round_raw_bytes: Option<Vec<u64>>,
    /// Of those, what compression and deltas saved per round
    /// (`depmig.pages.per_round_bytes_saved`).
    pub per_round_bytes_saved: Option<Vec<u64>>,
}

/// Whose one round's dirty tainted pages were (`depmig.census`): every
/// page counts in exactly one of `user`, `page_tables`, `kernel` and
/// `unreadable`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RoundCensus {
    /// The round (1-based).
    pub round: u64,
    /// The round's dirty tainted pages.
    pub asked: u64,
    /// Of those, pages mapped by (tainted) processes: the paper's measure.
    pub user: u64,
    /// Page tables of user address spaces.
    pub page_tables: u64,
    /// The kernel's own pages.
    pub kernel: u64,
    /// Pages nothing could be said about.
    pub unreadable: u64,
}

/// Reads `depmig.census` (parallel arrays `round`, `asked`, `user`,
/// `page_tables`, `kernel`, `unreadable`): rounds ascending within
/// `1..=rounds`, each round's classes adding up to its `asked`, and
/// `asked` the round's dirty tainted pages when the report has them.
fn census(
    c: &Census,
    rounds: usize,
    dirty_tainted: Option<&[u64]>,
) -> Result<Vec<RoundCensus>, ReportError> {
    let cols = [
        ("round", &c.round),
        ("asked", &c.asked),
        ("user", &c.user),
        ("page_tables", &c.page_tables),
        ("kernel", &c.kernel),
        ("unreadable", &c.unreadable),
    ];
    let mut first = None;
    for (k, col) in cols {
        let name = format!("depmig.census.{k}");
        let Some(col) = col else {
            return Err(ReportError::Invalid(format!("\"{name}\" is missing")));
        };
        match first {
            None => first = Some(col.len()),
            Some(n) if n != col.len() => {
                return Err(ReportError::Invalid(format!(
                    "\"{name}\" has {} entries, \"depmig.census.round\" {n}",
                    col.len()
                )))
            }
            Some(_) => {}
        }
    }
    let col = |c: &Option<Vec<u64>>| c.clone().unwrap_or_default();
    // Equal lengths, checked above: the zips lose nothing.
    let rows = col(&c.round)
        .into_iter()
        .zip(col(&c.asked))
        .zip(col(&c.user))
        .zip(col(&c.page_tables))
        .zip(col(&c.kernel))
        .zip(col(&c.unreadable));
    let mut out: Vec<RoundCensus> = Vec::new();
    for (((((round, asked), user), page_tables), kernel), unreadable) in rows {
        let r = RoundCensus {
            round,
            asked,
            user,
            page_tables,
            kernel,
            unreadable,
        };
        let bad = |why: String| {
            ReportError::Invalid(format!("\"depmig.census\", round {}: {why}", r.round))
        };
        if r.round == 0 || r.round > rounds as u64 {
            return Err(bad(format!("not a round of the {rounds}")));
        }
        if out.last().is_some_and(|p| p.round >= r.round) {
            return Err(bad("rounds not ascending".into()));
        }
        let sum = [r.user, r.page_tables, r.kernel, r.unreadable]
            .iter()
            .try_fold(0u64, |a, &v| a.checked_add(v));
        if sum != Some(r.asked) {
            return Err(bad(format!("classes do not add up to {} pages", r.asked)));
        }
        out.push(r);
    }
    for r in &out {
        let tainted = r
            .round
            .checked_sub(1)
            .and_then(|i| dirty_tainted?.get(usize::try_from(i).ok()?));
        if let Some(t) = tainted {
            if *t != r.asked {
                return Err(ReportError::Invalid(format!(
                    "\"depmig.census\", round {}: {} pages counted, the round had {t} dirty tainted",
                    r.round, r.asked
                )));
            }
        }
    }
    Ok(out)
}

/// The `"depmig"` object of a report already read and checked with
/// `rounds` rounds: `Ok(None)` when there is none, an error naming the
/// field when a per-round array's length is not `rounds`, the census
/// does not hold together, or a round saved more bytes than its page
/// records would have taken.
pub fn source_figures(
    r: &MigrationReport,
    rounds: usize,
) -> Result<Option<DepmigFigures>, ReportError> {
    let Some(d) = &r.depmig else {
        return Ok(None);
    };
    let per_round = |key: &str, a: &Option<Vec<u64>>| -> Result<Option<Vec<u64>>, ReportError> {
        match a {
            Some(a) if a.len() != rounds => Err(ReportError::Invalid(format!(
                "\"depmig.{key}\" has {} entries for {rounds} rounds",
                a.len()
            ))),
            a => Ok(a.clone()),
        }
    };
    let per_round_dirty_tainted = per_round("per_round_dirty_tainted", &d.per_round_dirty_tainted)?;
    let pages = d.pages.as_ref();
    let per_round_raw_bytes = per_round(
        "pages.per_round_raw_bytes",
        pages.map_or(&None, |p| &p.per_round_raw_bytes),
    )?;
    let per_round_bytes_saved = per_round(
        "pages.per_round_bytes_saved",
        pages.map_or(&None, |p| &p.per_round_bytes_saved),
    )?;
    // A round cannot save more than its page records would have taken.
    if let (Some(raw), Some(saved)) = (&per_round_raw_bytes, &per_round_bytes_saved) {
        if let Some((i, (r, s))) = raw.iter().zip(saved).enumerate().find(|(_, (r, s))| s > r) {
            return Err(ReportError::Invalid(format!(
                "\"depmig.pages.per_round_bytes_saved\", round {}: {s} bytes saved of {r}",
                i + 1
            )));
        }
    }
    let census = match &d.census {
        Some(c) => Some(census(c, rounds, per_round_dirty_tainted.as_deref())?),
        None => None,
    };
    Ok(Some(DepmigFigures {
        mode: d.mode.clone().filter(|m| !m.is_empty()),
        frozen_groups: d.frozen_groups,
        per_round_dirty: per_round("per_round_dirty", &d.per_round_dirty)?,
        census,
        per_round_dirty_tainted,
        per_round_skipped_free: per_round("per_round_skipped_free", &d.per_round_skipped_free)?,
        codec: pages
            .and_then(|p| p.codec.clone())
            .filter(|c| !c.is_empty()),
        per_round_raw_bytes,
        per_round_bytes_saved,
    }))
}

/// [`source_figures`] of a report as its JSON text reads (a
/// [`crate::json::Value`] or a [`MigrationReport`]).
pub fn depmig_figures<R: fmt::Display + ?Sized>(
    report: &R,
    rounds: usize,
) -> Result<Option<DepmigFigures>, ReportError> {
    source_figures(&super::read(&report.to_string())?, rounds)
}
