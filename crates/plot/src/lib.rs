//! SVG plots of a count per round on a logarithmic axis: the pages of each
//! pre-copy round, where round 1 carries the whole guest and later rounds
//! only what was dirtied, so a linear axis would hide them. A plot draws
//! per round a group of bars (one bar per series), or one line per series
//! as in the paper's figures; the output is one self-contained document.
//!
//! Text is escaped for XML; values up to `u64::MAX` and empty series still
//! make a valid document.
#![forbid(unsafe_code)]

use std::fmt::Write;

#[cfg(any(test, feature = "check"))]
pub mod check;

/// One series: a value per round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Series<'a> {
    /// Legend text.
    pub label: &'a str,
    /// The value of each round, round 1 first.
    pub values: &'a [u64],
    /// Stroke or fill colour (`#rrggbb`); `None` takes the palette's colour
    /// for the series' place.
    pub color: Option<&'a str>,
}

/// What a plot says about its values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chart<'a> {
    /// Title above the plot.
    pub title: &'a str,
    /// What the y axis counts; ` (log scale)` is appended.
    pub y_label: &'a str,
    /// The unit of a value, in the legend and the tooltips (`pages`).
    pub unit: &'a str,
}

const W: f64 = 860.0;
const H: f64 = 440.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 20.0;
/// Space above the plot for the title; the legend adds a line per series.
const TITLE: f64 = 44.0;
const BOTTOM: f64 = 60.0;
/// Series colours, told apart also in grey print; beyond them the colours
/// repeat and lines change their dash pattern.
const COLORS: [&str; 10] = [
    "#1f6fb4", "#c05a11", "#2b8a3e", "#7b3fa0", "#b8860b", "#0f8b8d", "#c2185b", "#5d4037",
    "#546e7a", "#6b8e23",
];
/// Dash patterns of lines, one per trip round the palette.
const DASHES: [&str; 4] = ["none", "6 3", "2 3", "8 3 2 3"];

/// Escapes text for XML content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Characters XML 1.0 does not allow.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

fn decade_label(exp: u32) -> String {
    match exp {
        0 => "1".into(),
        1 => "10".into(),
        2 => "100".into(),
        3 => "1k".into(),
        4 => "10k".into(),
        5 => "100k".into(),
        6 => "1M".into(),
        7 => "10M".into(),
        8 => "100M".into(),
        e => format!("1e{e}"),
    }
}

/// Height of a bar for `v` when the axis tops out at 10^`decades`.
fn bar_height(v: u64, decades: u32, plot_h: f64) -> f64 {
    if v == 0 {
        return 0.0;
    }
    // log10(1) = 0: a value of one is the axis's floor, drawn as a hairline
    // so it still shows.
    let h = (v as f64).log10() / f64::from(decades) * plot_h;
    h.clamp(1.0, plot_h)
}

/// Series `k`'s colour: its own (escaped, as it goes into an attribute),
/// else the palette's.
fn color(series: &Series<'_>, k: usize) -> String {
    match series.color {
        Some(c) => escape(c),
        None => COLORS
            .get(k % COLORS.len())
            .copied()
            .unwrap_or("#000000")
            .to_string(),
    }
}

fn dash(k: usize) -> &'static str {
    DASHES
        .get((k / COLORS.len()) % DASHES.len())
        .copied()
        .unwrap_or("none")
}

/// The geometry shared by both plots: a round's slot along x, the log axis
/// along y.
struct Frame {
    rounds: usize,
    decades: u32,
    top: f64,
    plot_w: f64,
    plot_h: f64,
    base: f64,
    group_w: f64,
}

impl Frame {
    fn new(series: &[Series<'_>]) -> Frame {
        let rounds = series
            .iter()
            .map(|s| s.values.len())
            .max()
            .unwrap_or(0)
            .max(1);
        let max = series
            .iter()
            .flat_map(|s| s.values.iter().copied())
            .max()
            .unwrap_or(1)
            .max(1);
        // Smallest power of ten at or above the largest value (at least 10).
        let mut decades: u32 = 1;
        while decades < 19 && 10u64.pow(decades) < max {
            decades += 1;
        }
        let plot_w = W - LEFT - RIGHT;
        let top = TITLE + 16.0 * series.len() as f64 + 10.0;
        let plot_h = H - top - BOTTOM;
        Frame {
            rounds,
            decades,
            top,
            plot_w,
            plot_h,
            base: top + plot_h,
            group_w: plot_w / rounds as f64,
        }
    }

    /// Height above the x axis of `v`.
    fn height(&self, v: u64) -> f64 {
        bar_height(v, self.decades, self.plot_h)
    }

    /// Opens the document and draws the title, grid, axes and round labels.
    fn open(&self, s: &mut String, chart: &Chart<'_>) {
        // Writing to a String cannot fail; the results are ignored on purpose.
        let _ = writeln!(
            s,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\" font-family=\"sans-serif\" font-size=\"12\">"
        );
        let _ = writeln!(s, "<title>{}</title>", escape(chart.title));
        let _ = writeln!(
            s,
            "<rect x=\"0\" y=\"0\" width=\"{W}\" height=\"{H}\" fill=\"#ffffff\"/>"
        );
        let _ = writeln!(
            s,
            "<text x=\"{}\" y=\"24\" text-anchor=\"middle\" font-size=\"15\">{}</text>",
            W / 2.0,
            escape(chart.title)
        );
        let (top, base, plot_w, plot_h) = (self.top, self.base, self.plot_w, self.plot_h);
        // Decade grid and axis labels.
        for e in 0..=self.decades {
            let y = base - f64::from(e) / f64::from(self.decades) * plot_h;
            let _ = writeln!(
                s,
                "<line class=\"grid\" x1=\"{LEFT}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"#dddddd\"/>",
                LEFT + plot_w
            );
            let _ = writeln!(
                s,
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
                LEFT - 6.0,
                y + 4.0,
                decade_label(e)
            );
        }
        let _ = writeln!(
            s,
            "<line x1=\"{LEFT}\" y1=\"{top}\" x2=\"{LEFT}\" y2=\"{base}\" stroke=\"#000000\"/>"
        );
        let _ = writeln!(
            s,
            "<line x1=\"{LEFT}\" y1=\"{base}\" x2=\"{:.1}\" y2=\"{base}\" stroke=\"#000000\"/>",
            LEFT + plot_w
        );
        let _ = writeln!(
            s,
            "<text x=\"18\" y=\"{:.1}\" text-anchor=\"middle\" transform=\"rotate(-90 18 {:.1})\">{} (log scale)</text>",
            top + plot_h / 2.0,
            top + plot_h / 2.0,
            escape(chart.y_label)
        );
        let _ = writeln!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">round</text>",
            LEFT + plot_w / 2.0,
            H - 16.0
        );
        // Round labels: every round while they fit, else every fifth.
        let step = if self.rounds <= 40 { 1 } else { 5 };
        for r in (0..self.rounds).filter(|r| (r + 1) % step == 0 || *r == 0) {
            let x = LEFT + (r as f64 + 0.5) * self.group_w;
            let _ = writeln!(
                s,
                "<text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
                base + 16.0,
                r + 1
            );
        }
    }

    /// Draws the legend (a swatch per series: a square for bars, a line
    /// for lines) and closes the document.
    fn close(&self, s: &mut String, chart: &Chart<'_>, series: &[Series<'_>], lines: bool) {
        for (k, ser) in series.iter().enumerate() {
            let color = color(ser, k);
            let y = TITLE + 12.0 + k as f64 * 16.0;
            let x = LEFT;
            if lines {
                let _ = writeln!(
                    s,
                    "<line x1=\"{x}\" y1=\"{:.1}\" x2=\"{}\" y2=\"{:.1}\" stroke=\"{color}\" stroke-width=\"2\" stroke-dasharray=\"{}\"/>",
                    y - 4.0,
                    x + 12.0,
                    y - 4.0,
                    dash(k)
                );
                marker(s, k, &color, x + 6.0, y - 4.0, "legend-point", "");
            } else {
                let _ = writeln!(
                    s,
                    "<rect x=\"{x}\" y=\"{:.1}\" width=\"12\" height=\"12\" fill=\"{color}\"/>",
                    y - 10.0
                );
            }
            let total: u64 = ser.values.iter().fold(0u64, |a, p| a.saturating_add(*p));
            let _ = writeln!(
                s,
                "<text class=\"legend\" x=\"{}\" y=\"{y:.1}\">{} ({} rounds, {} {})</text>",
                x + 18.0,
                escape(ser.label),
                ser.values.len(),
                total,
                escape(chart.unit)
            );
        }
        s.push_str("</svg>\n");
    }
}

/// The plot as a complete SVG document: per round a group of bars, one per
/// series, each with its value above it while there is room.
pub fn bars(chart: &Chart<'_>, series: &[Series<'_>]) -> String {
    let f = Frame::new(series);
    let nser = series.len().max(1);
    let bar_w = f.group_w * 0.8 / nser as f64;
    let mut s = String::new();
    f.open(&mut s, chart);
    for (k, ser) in series.iter().enumerate() {
        let color = color(ser, k);
        for (r, &v) in ser.values.iter().enumerate() {
            let h = f.height(v);
            let x = LEFT + r as f64 * f.group_w + f.group_w * 0.1 + k as f64 * bar_w;
            let _ = writeln!(
                s,
                "<rect class=\"bar s{k}\" x=\"{x:.2}\" y=\"{:.2}\" width=\"{bar_w:.2}\" height=\"{h:.2}\" fill=\"{color}\"><title>{}: round {} {} {}</title></rect>",
                f.base - h,
                escape(ser.label),
                r + 1,
                v,
                escape(chart.unit)
            );
            if f.rounds * nser <= 24 {
                let _ = writeln!(
                    s,
                    "<text class=\"value\" x=\"{:.2}\" y=\"{:.2}\" text-anchor=\"middle\" font-size=\"10\">{v}</text>",
                    x + bar_w / 2.0,
                    f.base - h - 3.0
                );
            }
        }
    }
    f.close(&mut s, chart, series, false);
    s
}

/// Draws series `k`'s marker centred on (`x`, `y`): a circle, square,
/// triangle or diamond by turns, so lines drawn over each other still show
/// every series.
fn marker(s: &mut String, k: usize, c: &str, x: f64, y: f64, class: &str, tip: &str) {
    let tip = if tip.is_empty() {
        String::new()
    } else {
        format!("<title>{}</title>", escape(tip))
    };
    let cls = format!("{class} s{k}");
    let _ = match k % 4 {
        0 => writeln!(
            s,
            "<circle class=\"{cls}\" cx=\"{x:.2}\" cy=\"{y:.2}\" r=\"3.5\" fill=\"{c}\">{tip}</circle>"
        ),
        1 => writeln!(
            s,
            "<rect class=\"{cls}\" x=\"{:.2}\" y=\"{:.2}\" width=\"6\" height=\"6\" fill=\"{c}\">{tip}</rect>",
            x - 3.0,
            y - 3.0
        ),
        2 => writeln!(
            s,
            "<polygon class=\"{cls}\" points=\"{x:.2},{:.2} {:.2},{:.2} {:.2},{:.2}\" fill=\"{c}\">{tip}</polygon>",
            y - 4.5,
            x + 4.0,
            y + 3.0,
            x - 4.0,
            y + 3.0
        ),
        _ => writeln!(
            s,
            "<polygon class=\"{cls}\" points=\"{x:.2},{:.2} {:.2},{y:.2} {x:.2},{:.2} {:.2},{y:.2}\" fill=\"none\" stroke=\"{c}\" stroke-width=\"1.5\">{tip}</polygon>",
            y - 4.5,
            x + 4.5,
            y + 4.5,
            x - 4.5
        ),
    };
}

/// The plot as a complete SVG document with one line per series (a
/// `polyline` through its rounds, a marker on each round). Zero sits on the
/// x axis.
pub fn lines(chart: &Chart<'_>, series: &[Series<'_>]) -> String {
    let f = Frame::new(series);
    let mut s = String::new();
    f.open(&mut s, chart);
    for (k, ser) in series.iter().enumerate() {
        let color = color(ser, k);
        let points: Vec<(f64, f64, u64)> = ser
            .values
            .iter()
            .enumerate()
            .map(|(r, &v)| (LEFT + (r as f64 + 0.5) * f.group_w, f.base - f.height(v), v))
            .collect();
        let coords: Vec<String> = points
            .iter()
            .map(|(x, y, _)| format!("{x:.2},{y:.2}"))
            .collect();
        let _ = writeln!(
            s,
            "<polyline class=\"line s{k}\" points=\"{}\" fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" stroke-dasharray=\"{}\"><title>{}</title></polyline>",
            coords.join(" "),
            dash(k),
            escape(ser.label)
        );
        for (r, (x, y, v)) in points.iter().enumerate() {
            let tip = format!("{}: round {} {} {}", ser.label, r + 1, v, chart.unit);
            marker(&mut s, k, &color, *x, *y, "point", &tip);
        }
    }
    f.close(&mut s, chart, series, true);
    s
}

#[cfg(test)]
mod tests;
