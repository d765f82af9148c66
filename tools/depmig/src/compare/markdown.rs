//! The comparison as Markdown: what standard output and `--markdown` get.

use std::fmt::Write as _;

use super::{set_for, Comparison, Figure, Measure, Role};

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

/// Bytes per round, one column per report, and what compression and
/// deltas saved in each depmig report's page records.
fn bytes_per_round(s: &mut String, c: &Comparison) {
    let _ = writeln!(s, "## Bytes per round\n");
    let ms = &c.migrations;
    if ms
        .iter()
        .all(|m| m.per_round_bytes.iter().all(Option::is_none))
    {
        let _ = writeln!(s, "No report gives bytes per round.\n");
    } else {
        let mut head = String::from("| round |");
        let mut rule = String::from("| ---: |");
        for m in ms {
            let _ = write!(head, " {} |", cell(&m.label));
            rule.push_str(" ---: |");
        }
        let _ = writeln!(s, "{head}\n{rule}");
        let rounds = ms
            .iter()
            .map(|m| m.per_round_bytes.len())
            .max()
            .unwrap_or(0);
        for r in 0..rounds {
            let mut row = format!("| {} |", r + 1);
            for m in ms {
                // A round the report does not have is empty, as in the
                // pages table; one it gives no bytes for is "-".
                match m.per_round_bytes.get(r) {
                    Some(Some(b)) => {
                        let _ = write!(row, " {b} |");
                    }
                    Some(None) => row.push_str(" - |"),
                    None => row.push_str(" |"),
                }
            }
            let _ = writeln!(s, "{row}");
        }
        let _ = writeln!(
            s,
            "\nStream bytes of each round's records (`per_round[i].bytes`), headers included; \
             depmig's after compression and deltas. The whole stream is the total bytes below."
        );
        for m in ms {
            if m.per_round_bytes.iter().all(Option::is_none) {
                let _ = writeln!(
                    s,
                    "`{}` gives no bytes per round: its cells are -.",
                    cell(&m.label)
                );
            }
        }
        s.push('\n');
    }
    let depmig: Vec<_> = ms.iter().filter(|m| m.role != Role::Stock).collect();
    if depmig.is_empty() {
        return;
    }
    let _ = writeln!(
        s,
        "Page records sent, of the bytes they would have taken as Xen's PAGE_DATA \
         (`depmig.pages`):"
    );
    for m in depmig {
        let label = cell(&m.label);
        let line = match m.page_saving() {
            None => "not in the report".to_string(),
            Some(p) => {
                let codec = p
                    .codec
                    .as_deref()
                    .map_or_else(String::new, |c| format!(" ({})", cell(c)));
                match p.ratio() {
                    None => format!("no page records{codec}"),
                    Some(r) => format!(
                        "{r:.3} of raw{codec}: {} of {} bytes, {} saved",
                        p.sent, p.raw, p.saved
                    ),
                }
            }
        };
        let _ = writeln!(s, "- {label}: {line}");
    }
    s.push('\n');
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
    bytes_per_round(&mut s, c);

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
