//! The `report` target: a migration report's text as `depmig compare` and
//! `depmig migrate` read it from a file anyone could have written.
//!
//! Checked besides "no panic": a report that is accepted is accepted again
//! from the text it writes back (same report, same figures), and the two
//! readers the command has (typed, and as a JSON value) agree on whether a
//! text is a report.

use depmig_cli::report;

/// What the harness saw (for the seed tests).
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Not UTF-8: no reader is reached.
    NotText,
    /// Refused by the reader.
    Refused,
    /// Accepted, with this many rounds.
    Accepted(usize),
}

/// Feeds `data` to the report readers.
pub fn run(data: &[u8]) -> Outcome {
    let Ok(text) = std::str::from_utf8(data) else {
        return Outcome::NotText;
    };
    let typed = report::read_any(text);
    let as_value = report::parse_any_report(text);
    assert_eq!(
        typed.is_ok(),
        as_value.is_ok(),
        "the typed reader and the value reader disagree: {:?} / {:?}",
        typed.as_ref().err(),
        as_value.as_ref().err()
    );
    let Ok((r, s)) = typed else {
        return Outcome::Refused;
    };
    if let (Ok((_, s2)), _) = (&as_value, ()) {
        assert_eq!(&s, s2, "the two readers give different figures");
    }
    let again = r.to_string();
    let (r2, s2) = report::read_any(&again)
        .unwrap_or_else(|e| panic!("an accepted report does not read back from its own text: {e}"));
    assert_eq!(r, r2, "the report changed through its own text");
    assert_eq!(s, s2, "the figures changed through the report's own text");
    Outcome::Accepted(s.per_round_pages.len())
}
