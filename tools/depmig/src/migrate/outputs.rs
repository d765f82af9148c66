//! Outputs: the source appliance's report read back, the report and the
//! plot written.

use std::fmt;
use std::path::{Path, PathBuf};

use depmig_control::keys::{self, in_domain};

use super::Run;
use crate::json::Value;
use crate::report::{self, ReportError, Summary};
use crate::svg::{self, Series};
use crate::toolstack::{ToolError, Toolstack};

/// Why the source appliance's report could not be read from xenstore.
#[derive(Debug)]
pub(super) enum ReportReadError {
    /// A key could not be read (the toolstack's message).
    Tool(ToolError),
    /// migrate/report-parts is `<text>`, not 1..=2048
    Parts {
        /// What the appliance wrote.
        text: String,
    },
    /// report part `<i>` of `<parts>` missing
    PartMissing {
        /// The missing part.
        i: u32,
        /// How many there were to be.
        parts: u32,
    },
}

impl fmt::Display for ReportReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReportReadError::Tool(e) => e.fmt(f),
            ReportReadError::Parts { text } => {
                write!(f, "migrate/report-parts is `{text}`, not 1..=2048")
            }
            ReportReadError::PartMissing { i, parts } => {
                write!(f, "report part {i} of {parts} missing")
            }
        }
    }
}

impl std::error::Error for ReportReadError {}

impl From<ToolError> for ReportReadError {
    fn from(e: ToolError) -> ReportReadError {
        ReportReadError::Tool(e)
    }
}

/// Why a report file could not be loaded.
#[derive(Debug, Clone, PartialEq)]
pub enum LoadReportError {
    /// The file could not be read (the toolstack's message, which names it).
    Read(ToolError),
    /// `<path>`: not UTF-8 text
    NotText {
        /// The file.
        path: PathBuf,
    },
    /// `<path>`: `<error>` (not a valid report)
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        error: ReportError,
    },
}

impl fmt::Display for LoadReportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadReportError::Read(e) => e.fmt(f),
            LoadReportError::NotText { path } => write!(f, "{}: not UTF-8 text", path.display()),
            LoadReportError::Invalid { path, error } => write!(f, "{}: {error}", path.display()),
        }
    }
}

impl std::error::Error for LoadReportError {}

impl<T: Toolstack + ?Sized> Run<'_, T> {
    /// After a committed migration (or save): waits for the source
    /// appliance's result (it maps the source until it stops, so it goes
    /// first, or the source would stay dying), records the outcome in the
    /// command's figures and reads the appliance's report.
    pub(super) fn committed_source_report(
        &mut self,
        src: u32,
    ) -> Result<Option<String>, ReportReadError> {
        self.await_source_result(src, self.t.poll_fast);
        // The report's schema knows a migration that committed or rolled
        // back; a save that committed is a migration whose destination
        // was dom0.
        self.cli.outcome = "migrated".into();
        self.cli.source_result = self.src_result.clone().unwrap_or_default();
        self.cli.last_round_seen = self.last_round.map(|r| r.round);
        self.read_report(src)
    }

    /// The source appliance's report: `migrate/report`, or, for a report
    /// larger than one xenstore node may be, `migrate/report-parts` = N and
    /// the pieces `migrate/report-part/0` .. N-1 in order.
    pub(super) fn read_report(&mut self, src: u32) -> Result<Option<String>, ReportReadError> {
        if let Some(r) = self.read_key(src, keys::REPORT)? {
            return Ok(Some(r));
        }
        let Some(parts) = self.read_key(src, keys::REPORT_PARTS)? else {
            return Ok(None);
        };
        let parts: u32 = parts
            .parse()
            .ok()
            .filter(|n| (1..=2048).contains(n))
            .ok_or(ReportReadError::Parts { text: parts })?;
        let mut text = String::new();
        for i in 0..parts {
            let path = in_domain(src, &keys::report_part(i as usize));
            let piece = self
                .ts
                .xs_read(&path)?
                .ok_or(ReportReadError::PartMissing { i, parts })?;
            text.push_str(&piece);
        }
        Ok(Some(text))
    }

    /// Writes the report and the plot; returns the problems as warnings.
    /// A migration that committed needs the source appliance's valid report;
    /// one that did not gets a report in any case: the source's (with no
    /// round when it failed before the first completed), or, when the source
    /// left none or an invalid one, one without figures that says why.
    pub(super) fn write_outputs(
        &mut self,
        report_text: Result<Option<String>, ReportReadError>,
        committed: bool,
    ) -> Vec<String> {
        let mut warnings = Vec::new();
        // What page verification found and cost, on the terminal whether
        // or not a report is written.
        let verified = match &report_text {
            Ok(Some(text)) => report::read_any(text)
                .ok()
                .and_then(|(r, _)| r.depmig?.verify),
            _ => None,
        };
        if let Some(v) = verified {
            self.say(&verify_line(&v));
        }
        if self.o.report.is_none() && self.o.svg.is_none() {
            return warnings;
        }
        // The error: why there is no usable report, and whether one was
        // there but invalid (a warning) rather than absent.
        let source = match report_text {
            Err(e) => Err((
                format!("the source appliance's report could not be read: {e}"),
                true,
            )),
            Ok(None) => Err(("the source appliance left no report".to_string(), false)),
            Ok(Some(text)) => report::parse_any_report(&text).map_err(|e| {
                (
                    format!("the source appliance's report is not valid: {e}"),
                    true,
                )
            }),
        };
        let (value, migrator, pages) = match source {
            Ok((v, s)) => (v, s.migrator, s.per_round_pages),
            Err((why, _)) if committed => {
                warnings.push(format!("{why}; no report or plot written"));
                return warnings;
            }
            Err((why, invalid)) => {
                if invalid {
                    warnings.push(format!("{why}; the report has no figures"));
                } else {
                    self.say(&format!("{why}: the report has the command's figures only"));
                }
                self.cli.figures_missing = Some(why);
                (report::without_figures(), "depmig".to_string(), Vec::new())
            }
        };
        if let Some(path) = self.o.report.clone() {
            let full = report::finish_report(
                value,
                &self.cli,
                self.o.scenario.as_deref(),
                self.o.workload.as_deref(),
            );
            // Never write a report this command would refuse to read.
            match report::validate(&full) {
                Ok(_) => {
                    let text = format!("{full}\n");
                    match self.ts.write_file(&path, text.as_bytes()) {
                        Ok(()) => self.say(&format!("report written to {}", path.display())),
                        Err(e) => warnings.push(format!("report: {e}")),
                    }
                }
                Err(e) => warnings.push(format!(
                    "the report with the command's figures is not valid: {e}; no report written"
                )),
            }
        }
        if let Some(path) = self.o.svg.clone() {
            let mut series = vec![Series {
                label: format!(
                    "{} ({}, {})",
                    migrator,
                    self.o.mode.as_str(),
                    self.o.policy.as_str()
                ),
                pages: pages.clone(),
            }];
            if let Some(b) = self.o.baseline_report.clone() {
                match load_report(self.ts, &b) {
                    Ok((_, s)) => series.push(Series {
                        label: format!("{} (baseline)", s.migrator),
                        pages: s.per_round_pages,
                    }),
                    Err(e) => warnings.push(format!("baseline report left out of the plot: {e}")),
                }
            }
            // A migration that failed before its first round still gets its
            // plot, empty, with a note (and the baseline beside it).
            let empty = pages.is_empty();
            let title = if empty {
                format!(
                    "pages sent per round: {} (no round completed: not migrated)",
                    self.o.guest
                )
            } else {
                format!("pages sent per round: {}", self.o.guest)
            };
            let doc = svg::pages_per_round(&title, &series);
            match self.ts.write_file(&path, doc.as_bytes()) {
                Ok(()) => self.say(&format!(
                    "plot written to {}{}",
                    path.display(),
                    if empty { " (no round completed)" } else { "" }
                )),
                Err(e) => warnings.push(format!("plot: {e}")),
            }
        }
        warnings
    }
}

/// The terminal's line for the report's `depmig.verify` section.
fn verify_line(v: &depmig_control::report::VerifyFigures) -> String {
    let n = |x: Option<u64>| x.map_or_else(|| "?".to_string(), |x| x.to_string());
    let mut line = format!(
        "page verification: {}; {} ranges, frames by contents {}, free {}, holes {}, rings {} (by rule); digests: source {} ms ({} ms/GiB), destination {} ms ({} ms/GiB)",
        v.result.as_deref().unwrap_or("?"),
        n(v.ranges),
        n(v.frames_compared),
        n(v.frames_free),
        n(v.frames_holes),
        n(v.frames_rings),
        n(v.source_ms),
        n(v.source_ms_per_gib),
        n(v.destination_ms),
        n(v.destination_ms_per_gib),
    );
    if let Some(ms) = v.recheck_ms {
        line.push_str(&format!("; recheck before END {ms} ms"));
    }
    if let Some(n) = v.unlogged_frames.filter(|&n| n > 0) {
        let listed = v.unlogged_frames_listed.clone().unwrap_or_default();
        let frames: Vec<String> = listed.iter().map(|p| format!("{p:#x}")).collect();
        line.push_str(&format!(
            "; {n} frames had changed since sent without a dirty bit and went again (Xen writes the vCPU areas a guest registers so): {}",
            frames.join(" ")
        ));
    }
    if v.mismatched_ranges.unwrap_or(0) > 0 {
        let listed = v.mismatched_frames_listed.clone().unwrap_or_default();
        let classes = v.mismatched_frames_classes.clone().unwrap_or_default();
        let frames: Vec<String> = listed
            .iter()
            .enumerate()
            .map(|(i, p)| match classes.get(i) {
                Some(c) => format!("{p:#x} ({c})"),
                None => format!("{p:#x}"),
            })
            .collect();
        line.push_str(&format!(
            "; {} ranges differ, {} frames found different: {}",
            n(v.mismatched_ranges),
            n(v.mismatched_frames),
            frames.join(" ")
        ));
    }
    line
}

/// Reads and validates a report file.
pub fn load_report<T: Toolstack + ?Sized>(
    ts: &mut T,
    path: &Path,
) -> Result<(Value, Summary), LoadReportError> {
    let data = ts.read_file(path).map_err(LoadReportError::Read)?;
    let text = String::from_utf8(data).map_err(|_| LoadReportError::NotText {
        path: path.to_path_buf(),
    })?;
    report::parse_report(&text).map_err(|error| LoadReportError::Invalid {
        path: path.to_path_buf(),
        error,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The texts the command has always printed.
    #[test]
    fn the_verification_line_names_costs_and_frames() {
        let v = depmig_control::report::VerifyFigures {
            result: Some("mismatch".into()),
            ranges: Some(128),
            frames_compared: Some(60000),
            source_ms: Some(250),
            source_ms_per_gib: Some(1000),
            mismatched_ranges: Some(1),
            mismatched_frames: Some(1),
            mismatched_frames_listed: Some(vec![0x8000]),
            ..Default::default()
        };
        let line = verify_line(&v);
        assert!(
            line.starts_with("page verification: mismatch; 128 ranges"),
            "{line}"
        );
        assert!(
            line.contains("source 250 ms (1000 ms/GiB), destination ? ms"),
            "{line}"
        );
        assert!(line.ends_with("1 frames found different: 0x8000"), "{line}");
        assert!(!line.contains("recheck"), "{line}");
    }

    #[test]
    fn the_verification_line_names_frames_sent_again_after_the_recheck() {
        let v = depmig_control::report::VerifyFigures {
            result: Some("match".into()),
            mismatched_ranges: Some(0),
            recheck_ms: Some(26005),
            unlogged_frames: Some(1),
            unlogged_frames_listed: Some(vec![0x10]),
            ..Default::default()
        };
        let line = verify_line(&v);
        assert!(line.starts_with("page verification: match;"), "{line}");
        assert!(line.contains("; recheck before END 26005 ms;"), "{line}");
        assert!(
            line.ends_with("1 frames had changed since sent without a dirty bit and went again (Xen writes the vCPU areas a guest registers so): 0x10"),
            "{line}"
        );
        let none = depmig_control::report::VerifyFigures {
            unlogged_frames: Some(0),
            ..v
        };
        assert!(!verify_line(&none).contains("dirty bit"));
    }

    #[test]
    fn messages_keep_their_text() {
        assert_eq!(
            ReportReadError::Parts { text: "0".into() }.to_string(),
            "migrate/report-parts is `0`, not 1..=2048"
        );
        assert_eq!(
            ReportReadError::PartMissing { i: 2, parts: 3 }.to_string(),
            "report part 2 of 3 missing"
        );
        let e = ToolError::File {
            path: "/b.json".into(),
            reason: "No such file or directory (os error 2)".into(),
        };
        assert_eq!(
            LoadReportError::Read(e).to_string(),
            "/b.json: No such file or directory (os error 2)"
        );
        assert_eq!(
            LoadReportError::NotText {
                path: "/b.json".into()
            }
            .to_string(),
            "/b.json: not UTF-8 text"
        );
        let error = ReportError::Invalid("no round completed".into());
        assert_eq!(
            LoadReportError::Invalid {
                path: "/b.json".into(),
                error: error.clone()
            }
            .to_string(),
            format!("/b.json: {error}")
        );
    }
}
