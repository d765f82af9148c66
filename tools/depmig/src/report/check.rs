//! What a report read into its type must still hold: the figures that
//! repeat each other agree (`rounds`, the per-round arrays, the sum), the
//! caps, and the rules of a report with no round.

use depmig_control::report::{MigrationReport, MAX_ROUNDS};

use super::{ReportError, Summary};

/// The report's summary, once its figures agree with each other.
pub(super) fn summary(r: &MigrationReport) -> Result<Summary, ReportError> {
    let invalid = |why: String| Err(ReportError::Invalid(why));
    let page_size = r.page_size;
    if !page_size.is_power_of_two() {
        return invalid(format!("\"page_size\" {page_size} is not a power of two"));
    }
    let rounds = r.rounds;
    if rounds > MAX_ROUNDS {
        return invalid(format!("\"rounds\" {rounds} is not in 0..={MAX_ROUNDS}"));
    }
    let (source, cli) = verdicts(r)?;
    if rounds == 0 {
        check_no_round(r, source, cli)?;
    }
    match r.final_round {
        Some(f) if rounds == 0 => {
            return invalid(format!("\"final_round\" {f} in a report with no round"));
        }
        Some(f) if !(1..=rounds).contains(&f) => {
            return invalid(format!(
                "\"final_round\" {f} is not a round of 1..={rounds}"
            ));
        }
        _ => {}
    }
    let pages = &r.per_round_pages;
    if pages.len() as u64 != rounds {
        return invalid(format!(
            "\"per_round_pages\" has {} entries for {rounds} rounds",
            pages.len()
        ));
    }
    if r.per_round.len() != pages.len() {
        return invalid(format!(
            "\"per_round\" has {} entries for {rounds} rounds",
            r.per_round.len()
        ));
    }
    for (i, (round, p)) in r.per_round.iter().zip(pages).enumerate() {
        let n = round.round;
        if n != i as u64 + 1 {
            return invalid(format!(
                "\"per_round\"[{i}] is round {n}, expected {}",
                i + 1
            ));
        }
        if round.pages != *p {
            return invalid(format!(
                "round {n}: {} pages in \"per_round\", {p} in \"per_round_pages\"",
                round.pages
            ));
        }
    }
    let total_pages = r.total_pages;
    let sum = pages.iter().try_fold(0u64, |a, p| a.checked_add(*p));
    if sum != Some(total_pages) {
        return invalid(format!(
            "\"total_pages\" {total_pages} is not the sum of \"per_round_pages\""
        ));
    }
    Ok(Summary {
        migrator: r.migrator.clone(),
        per_round_pages: pages.clone(),
        total_pages,
        final_round: r.final_round,
        committed: cli.or(source),
    })
}

/// A string field that says something: `None` when absent, null or empty.
fn said(s: Option<&String>) -> Option<&str> {
    s.map(String::as_str).filter(|s| !s.is_empty())
}

/// What the source appliance (`depmig.result`) and the command
/// (`cli.outcome`) say of the migration's end: `Some(true)` committed.
fn verdicts(r: &MigrationReport) -> Result<(Option<bool>, Option<bool>), ReportError> {
    let source = r
        .depmig
        .as_ref()
        .and_then(|d| said(d.result.as_ref()))
        .map(|result| result == "committed");
    let cli = match r.cli.as_ref().and_then(|c| said(c.outcome.as_ref())) {
        None => None,
        Some("migrated") => Some(true),
        Some("rolled-back") => Some(false),
        Some(other) => {
            return Err(ReportError::Invalid(format!(
                "\"cli.outcome\" is \"{other}\", neither \"migrated\" nor \"rolled-back\""
            )))
        }
    };
    Ok((source, cli))
}

/// The extra rules of a report with no round: it says the migration did not
/// commit, nothing in it says otherwise, and nothing is per round.
fn check_no_round(
    r: &MigrationReport,
    source: Option<bool>,
    cli: Option<bool>,
) -> Result<(), ReportError> {
    let says = |x: Option<bool>| match x {
        None => "nothing",
        Some(true) => "committed",
        Some(false) => "not committed",
    };
    if cli.or(source) != Some(false) || source == Some(true) || cli == Some(true) {
        return Err(ReportError::Invalid(format!(
            "\"rounds\" 0 is only valid in a report of a migration that did not commit \
             (\"depmig.result\" says {}, \"cli.outcome\" says {})",
            says(source),
            says(cli)
        )));
    }
    if r.stream.as_ref().and_then(|s| s.complete) == Some(true) {
        return Err(ReportError::Invalid(
            "\"stream.complete\" is true in a report with no round".into(),
        ));
    }
    if let Some(d) = &r.depmig {
        // The `depmig` object's per-round arrays, which must be empty.
        let per_round = [
            ("per_round_dirty", &d.per_round_dirty),
            ("per_round_dirty_tainted", &d.per_round_dirty_tainted),
            ("per_round_skipped_free", &d.per_round_skipped_free),
            ("per_round_holes", &d.per_round_holes),
        ];
        for (key, a) in per_round {
            if a.as_ref().is_some_and(|a| !a.is_empty()) {
                return Err(ReportError::Invalid(format!(
                    "\"depmig.{key}\" is not an empty array in a report with no round"
                )));
            }
        }
    }
    Ok(())
}
