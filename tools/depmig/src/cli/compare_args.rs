//! `depmig compare`'s options. Each field's doc comment is its help text,
//! kept verbatim (line breaks as written) so the help reads the same on
//! every terminal; `compare_after_help.txt` follows them.

use std::path::PathBuf;

use clap::Args;

use super::values::{self, check, number};

/// Everything `depmig compare` was asked to do.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct CompareOptions {
    /// title of the tables and the plot
    /// [default: pages sent per round]
    #[arg(long, value_name = "TEXT", verbatim_doc_comment, value_parser = check("--title",
          "at most 200 characters, no control characters", values::title))]
    pub title: Option<String>,
    /// write a log-scale plot of the per-round table, one
    /// line per column
    #[arg(long, value_name = "FILE", verbatim_doc_comment)]
    pub svg: Option<PathBuf>,
    /// write the Markdown printed on standard output
    /// to FILE as well
    #[arg(long, value_name = "FILE", verbatim_doc_comment)]
    pub markdown: Option<PathBuf>,
    /// write the comparison as one JSON object (schema
    /// depmig-comparison/1), the targets under "targets"
    #[arg(long, value_name = "FILE", verbatim_doc_comment)]
    pub json: Option<PathBuf>,
    /// the guest's size in pages, for the total-pages
    /// target. Default: the stock report's round 1
    #[arg(long, value_name = "N", verbatim_doc_comment, value_parser = number(
          "--guest-pages", "a number of pages, 1 to 2^40", 1..=1u64 << 40))]
    pub guest_pages: Option<u64>,
    /// a migration report (schema
    /// depmig-migration-report/1), written by
    /// `depmig migrate --report` or by the rig's stock
    /// `xl migrate` baseline, under a label of your choice
    /// (1 to 64 characters, no control characters; each
    /// label once). 1 to 16 reports, shown in this order
    #[arg(value_name = "LABEL=REPORT.json", verbatim_doc_comment, value_parser = check(
          "LABEL=REPORT", "a label (1 to 64 characters, no control characters), `=`, a file",
          values::labelled_report))]
    pub reports: Vec<(String, PathBuf)>,
}
