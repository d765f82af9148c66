//! Tables (Markdown) and plots (SVG, log-scale pages per round).

use std::fmt::Write as _;

use crate::run::Outcome;

/// A named per-round series.
pub struct Series<'a> {
    /// Legend label.
    pub label: &'a str,
    /// Stroke colour.
    pub color: &'a str,
    /// One value per round, round 1 first.
    pub values: Vec<u64>,
}

/// A Markdown table with one row per round and one column per series.
pub fn rounds_table(series: &[Series<'_>]) -> String {
    let rounds = series.iter().map(|s| s.values.len()).max().unwrap_or(0);
    let mut t = String::from("| round |");
    for s in series {
        let _ = write!(t, " {} |", s.label);
    }
    t.push_str("\n|---:|");
    for _ in series {
        t.push_str("---:|");
    }
    t.push('\n');
    for r in 0..rounds {
        let _ = write!(t, "| {} |", r + 1);
        for s in series {
            match s.values.get(r) {
                Some(v) => {
                    let _ = write!(t, " {v} |");
                }
                None => t.push_str("  |"),
            }
        }
        t.push('\n');
    }
    t
}

/// An SVG line plot of `series` on a log10 y axis (`depmig_plot`'s, as
/// depmig's own plots), in the series' colours; `ylabel` names what is
/// counted, in pages.
pub fn svg_plot(title: &str, ylabel: &str, series: &[Series<'_>]) -> String {
    let lines: Vec<depmig_plot::Series<'_>> = series
        .iter()
        .map(|s| depmig_plot::Series {
            label: s.label,
            values: &s.values,
            color: Some(s.color).filter(|c| !c.is_empty()),
        })
        .collect();
    let chart = depmig_plot::Chart {
        title,
        y_label: ylabel,
        unit: "pages",
    };
    depmig_plot::lines(&chart, &lines)
}

/// One row per simulated migration.
pub fn summary_table(outcomes: &[Outcome]) -> String {
    let mut t = String::from(
        "| workload | mode | policy | rounds | pages sent | MiB sent | copy-round pages | downtime ms | total s | frozen/thawed | equals suspend state | equals a past state |\n|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|---|\n",
    );
    for o in outcomes {
        let s = &o.summary;
        let last = s.rounds.last().map_or(0, |r| r.sent);
        let _ = writeln!(
            t,
            "| {} | {} | {} | {} | {} | {:.1} | {} | {:.1} | {:.2} | {}/{} | {} | {} |",
            o.workload.name(),
            o.mode.name(),
            o.policy,
            s.rounds.len(),
            s.pages_sent,
            s.bytes_sent as f64 / 1048576.0,
            last,
            s.copy_round_ns as f64 / 1e6,
            s.total_ns as f64 / 1e9,
            s.frozen_groups,
            o.thawed,
            if o.verdict.equals_suspend_state {
                "yes"
            } else {
                "NO"
            },
            if o.verdict.equals_some_past_state {
                "yes"
            } else {
                "NO"
            },
        );
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use depmig_plot::check::check_xml;

    #[test]
    fn the_plot_draws_each_series_in_its_colour() {
        let series = [
            Series {
                label: "stock: dirty",
                color: "#c0392b",
                values: vec![524288, 25600, 25600],
            },
            Series {
                label: "dirty & tainted",
                color: "",
                values: vec![1000, 0, 12],
            },
        ];
        let doc = svg_plot("Figure <4>", "pages per round", &series);
        let els = check_xml(&doc).unwrap();
        let lines: Vec<_> = els.iter().filter(|(n, _)| n == "polyline").collect();
        assert_eq!(lines.len(), 2);
        let stroke = |k: usize| {
            lines[k]
                .1
                .iter()
                .find(|(n, _)| n == "stroke")
                .map(|(_, v)| v.clone())
        };
        assert_eq!(stroke(0).as_deref(), Some("#c0392b"));
        // No colour of its own: the palette's.
        assert!(stroke(1).is_some_and(|c| c.starts_with('#') && c != "#c0392b"));
        assert!(doc.contains("<title>Figure &lt;4&gt;</title>"));
        assert!(doc.contains("dirty &amp; tainted (3 rounds, 1012 pages)"));
        assert!(doc.contains(">pages per round (log scale)</text>"));
        // The table has a row per round and a column per series.
        let t = rounds_table(&series);
        assert!(t.starts_with("| round | stock: dirty | dirty & tainted |"));
        assert!(t.contains("| 3 | 25600 | 12 |"));
    }
}
