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

/// An SVG line plot of `series` on a log10 y axis (zeros drawn at 1).
pub fn svg_plot(title: &str, ylabel: &str, series: &[Series<'_>]) -> String {
    let (w, h, ml, mr, mt, mb) = (760.0, 440.0, 70.0, 220.0, 40.0, 50.0);
    let pw = w - ml - mr;
    let ph = h - mt - mb;
    let rounds = series
        .iter()
        .map(|s| s.values.len())
        .max()
        .unwrap_or(1)
        .max(2);
    let maxv = series
        .iter()
        .flat_map(|s| s.values.iter().copied())
        .max()
        .unwrap_or(10)
        .max(10);
    let decades = (maxv as f64).log10().ceil().max(1.0);
    let x = |r: usize| ml + pw * (r as f64) / ((rounds - 1) as f64);
    let y = |v: u64| mt + ph - ph * ((v.max(1)) as f64).log10() / decades;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="{w}" height="{h}" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="22" font-size="15" text-anchor="middle">{title}</text>"#,
        ml + pw / 2.0
    );
    for d in 0..=decades as u32 {
        let yy = mt + ph - ph * f64::from(d) / decades;
        let _ = writeln!(
            s,
            r##"<line x1="{ml}" y1="{yy}" x2="{}" y2="{yy}" stroke="#ddd"/>"##,
            ml + pw
        );
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}" text-anchor="end">1e{d}</text>"#,
            ml - 6.0,
            yy + 4.0
        );
    }
    let step = if rounds > 12 { 5 } else { 1 };
    for r in (0..rounds).filter(|r| (r + 1) % step == 0 || *r == 0) {
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
            x(r),
            mt + ph + 18.0,
            r + 1
        );
    }
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" text-anchor="middle">round</text>"#,
        ml + pw / 2.0,
        h - 8.0
    );
    let _ = writeln!(
        s,
        r#"<text transform="translate(16,{}) rotate(-90)" text-anchor="middle">{ylabel}</text>"#,
        mt + ph / 2.0
    );
    let _ = writeln!(
        s,
        r#"<rect x="{ml}" y="{mt}" width="{pw}" height="{ph}" fill="none" stroke="black"/>"#
    );
    for (i, se) in series.iter().enumerate() {
        let pts: Vec<String> = se
            .values
            .iter()
            .enumerate()
            .map(|(r, &v)| format!("{:.1},{:.1}", x(r), y(v)))
            .collect();
        let _ = writeln!(
            s,
            r#"<polyline fill="none" stroke="{}" stroke-width="2" points="{}"/>"#,
            se.color,
            pts.join(" ")
        );
        for p in &pts {
            let (px, py) = p.split_once(',').unwrap_or(("0", "0"));
            let _ = writeln!(
                s,
                r#"<circle cx="{px}" cy="{py}" r="2.5" fill="{}"/>"#,
                se.color
            );
        }
        let ly = mt + 14.0 + 20.0 * i as f64;
        let _ = writeln!(
            s,
            r#"<line x1="{}" y1="{ly}" x2="{}" y2="{ly}" stroke="{}" stroke-width="2"/>"#,
            ml + pw + 10.0,
            ml + pw + 30.0,
            se.color
        );
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}">{}</text>"#,
            ml + pw + 36.0,
            ly + 4.0,
            se.label
        );
    }
    s.push_str("</svg>\n");
    s
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
