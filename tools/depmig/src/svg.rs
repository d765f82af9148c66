//! Hand-written SVG plots of pages sent per round on a logarithmic axis
//! (round 1 carries the whole guest while later rounds carry only what was
//! dirtied, so a linear axis would hide them): bar groups per round (one
//! bar per migration), or one line per migration as in the paper's figures.

use std::fmt::Write;

/// One migration's pages per round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Series {
    /// Legend text.
    pub label: String,
    /// Pages sent in each round, round 1 first.
    pub pages: Vec<u64>,
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

/// Height of a bar for `v` pages when the axis tops out at 10^`decades`.
fn bar_height(v: u64, decades: u32, plot_h: f64) -> f64 {
    if v == 0 {
        return 0.0;
    }
    // log10(1) = 0: one page is the axis's floor, drawn as a hairline so
    // it still shows.
    let h = (v as f64).log10() / f64::from(decades) * plot_h;
    h.clamp(1.0, plot_h)
}

fn color(k: usize) -> &'static str {
    COLORS.get(k % COLORS.len()).copied().unwrap_or("#000000")
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
    fn new(series: &[Series]) -> Frame {
        let rounds = series
            .iter()
            .map(|s| s.pages.len())
            .max()
            .unwrap_or(0)
            .max(1);
        let max = series
            .iter()
            .flat_map(|s| s.pages.iter().copied())
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

    /// Height above the x axis of `v` pages.
    fn height(&self, v: u64) -> f64 {
        bar_height(v, self.decades, self.plot_h)
    }

    /// Opens the document and draws the title, grid, axes and round labels.
    fn open(&self, s: &mut String, title: &str, y_label: &str) {
        // Writing to a String cannot fail; the results are ignored on purpose.
        let _ = writeln!(
            s,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\" font-family=\"sans-serif\" font-size=\"12\">"
        );
        let _ = writeln!(s, "<title>{}</title>", escape(title));
        let _ = writeln!(
            s,
            "<rect x=\"0\" y=\"0\" width=\"{W}\" height=\"{H}\" fill=\"#ffffff\"/>"
        );
        let _ = writeln!(
            s,
            "<text x=\"{}\" y=\"24\" text-anchor=\"middle\" font-size=\"15\">{}</text>",
            W / 2.0,
            escape(title)
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
            escape(y_label)
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
    fn close(&self, s: &mut String, series: &[Series], lines: bool) {
        for (k, ser) in series.iter().enumerate() {
            let color = color(k);
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
                marker(s, k, x + 6.0, y - 4.0, "legend-point", "");
            } else {
                let _ = writeln!(
                    s,
                    "<rect x=\"{x}\" y=\"{:.1}\" width=\"12\" height=\"12\" fill=\"{color}\"/>",
                    y - 10.0
                );
            }
            let total: u64 = ser.pages.iter().fold(0u64, |a, p| a.saturating_add(*p));
            let _ = writeln!(
                s,
                "<text class=\"legend\" x=\"{}\" y=\"{y:.1}\">{} ({} rounds, {} pages)</text>",
                x + 18.0,
                escape(&ser.label),
                ser.pages.len(),
                total
            );
        }
        s.push_str("</svg>\n");
    }
}

/// The plot as a complete SVG document: per round a group of bars, one per
/// series.
pub fn pages_per_round(title: &str, series: &[Series]) -> String {
    let f = Frame::new(series);
    let nser = series.len().max(1);
    let bar_w = f.group_w * 0.8 / nser as f64;
    let mut s = String::new();
    f.open(&mut s, title, "pages sent");
    for (k, ser) in series.iter().enumerate() {
        let color = color(k);
        for (r, &v) in ser.pages.iter().enumerate() {
            let h = f.height(v);
            let x = LEFT + r as f64 * f.group_w + f.group_w * 0.1 + k as f64 * bar_w;
            let _ = writeln!(
                s,
                "<rect class=\"bar s{k}\" x=\"{x:.2}\" y=\"{:.2}\" width=\"{bar_w:.2}\" height=\"{h:.2}\" fill=\"{color}\"><title>{}: round {} {} pages</title></rect>",
                f.base - h,
                escape(&ser.label),
                r + 1,
                v
            );
            // The figure itself above the bar while there is room for it.
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
    f.close(&mut s, series, false);
    s
}

/// Draws series `k`'s marker centred on (`x`, `y`): a circle, square,
/// triangle or diamond by turns, so lines drawn over each other still show
/// every series.
fn marker(s: &mut String, k: usize, x: f64, y: f64, class: &str, tip: &str) {
    let c = color(k);
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
/// `polyline` through its rounds, a marker on each round), as in the
/// paper's figures of pages per round; `y_label` names what is counted.
/// Zero pages sit on the x axis.
pub fn pages_per_round_lines(title: &str, y_label: &str, series: &[Series]) -> String {
    let f = Frame::new(series);
    let mut s = String::new();
    f.open(&mut s, title, y_label);
    for (k, ser) in series.iter().enumerate() {
        let color = color(k);
        let points: Vec<(f64, f64, u64)> = ser
            .pages
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
            escape(&ser.label)
        );
        for (r, (x, y, v)) in points.iter().enumerate() {
            let tip = format!("{}: round {} {} pages", ser.label, r + 1, v);
            marker(&mut s, k, *x, *y, "point", &tip);
        }
    }
    f.close(&mut s, series, true);
    s
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A small XML well-formedness check: one root element, every tag
    /// closed in order, attributes quoted and unique, entities known, no
    /// stray `<` or `&` in text.
    /// An element's name and its attributes.
    pub(crate) type Element = (String, Vec<(String, String)>);

    /// A small XML well-formedness check (see the module's tests).
    pub(crate) fn check_xml(doc: &str) -> Result<Vec<Element>, String> {
        let mut stack: Vec<String> = Vec::new();
        let mut elements = Vec::new();
        let mut roots = 0;
        let mut rest = doc.trim();
        let check_text = |t: &str| -> Result<(), String> {
            let mut r = t;
            while let Some(i) = r.find('&') {
                let after = r.get(i + 1..).unwrap_or("");
                let end = after
                    .find(';')
                    .ok_or_else(|| format!("unterminated entity in {t:?}"))?;
                let name = after.get(..end).unwrap_or("");
                if !["amp", "lt", "gt", "quot", "apos"].contains(&name) {
                    return Err(format!("unknown entity &{name};"));
                }
                r = after.get(end + 1..).unwrap_or("");
            }
            Ok(())
        };
        while !rest.is_empty() {
            let lt = rest.find('<').ok_or("text after the root")?;
            let text = rest.get(..lt).unwrap_or("");
            if stack.is_empty() && !text.trim().is_empty() {
                return Err(format!("text outside the root: {text:?}"));
            }
            check_text(text)?;
            let gt = rest.find('>').ok_or("unterminated tag")?;
            let tag = rest.get(lt + 1..gt).ok_or("bad tag")?;
            if tag.contains('<') {
                return Err(format!("'<' inside tag {tag:?}"));
            }
            rest = rest.get(gt + 1..).unwrap_or("");
            if let Some(name) = tag.strip_prefix('/') {
                let open = stack
                    .pop()
                    .ok_or_else(|| format!("</{name}> closes nothing"))?;
                if open != name.trim() {
                    return Err(format!("</{name}> closes <{open}>"));
                }
                continue;
            }
            let self_closing = tag.ends_with('/');
            let body = tag.trim_end_matches('/');
            let name_end = body.find(char::is_whitespace).unwrap_or(body.len());
            let name = body.get(..name_end).unwrap_or("").to_string();
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == ':')
            {
                return Err(format!("bad element name in <{tag}>"));
            }
            // Attributes: name="value" pairs.
            let mut attrs: Vec<(String, String)> = Vec::new();
            let mut a = body.get(name_end..).unwrap_or("").trim();
            while !a.is_empty() {
                let eq = a
                    .find('=')
                    .ok_or_else(|| format!("attribute without value in <{tag}>"))?;
                let an = a.get(..eq).unwrap_or("").trim().to_string();
                let after = a.get(eq + 1..).unwrap_or("");
                let q = after.chars().next().ok_or("missing quote")?;
                if q != '"' && q != '\'' {
                    return Err(format!("unquoted attribute {an} in <{tag}>"));
                }
                let close = after
                    .get(1..)
                    .and_then(|x| x.find(q))
                    .ok_or("unterminated attribute")?;
                let val = after.get(1..close + 1).unwrap_or("").to_string();
                check_text(&val)?;
                if attrs.iter().any(|(n, _)| *n == an) {
                    return Err(format!("duplicate attribute {an}"));
                }
                attrs.push((an, val));
                a = after.get(close + 2..).unwrap_or("").trim();
            }
            if stack.is_empty() {
                roots += 1;
            }
            elements.push((name.clone(), attrs));
            if !self_closing {
                stack.push(name);
            }
        }
        if !stack.is_empty() {
            return Err(format!("unclosed <{}>", stack.join("> <")));
        }
        if roots != 1 {
            return Err(format!("{roots} root elements"));
        }
        Ok(elements)
    }

    #[test]
    fn the_checker_catches_malformed_documents() {
        assert!(check_xml("<a><b/></a>").is_ok());
        assert!(check_xml("<a><b></a>").is_err());
        assert!(check_xml("<a></a><a></a>").is_err());
        assert!(check_xml("<a x=1/>").is_err());
        assert!(check_xml("<a x=\"1\" x=\"2\"/>").is_err());
        assert!(check_xml("<a>1 & 2</a>").is_err());
        assert!(check_xml("<a>1 &amp; 2</a>").is_ok());
        assert!(check_xml("<a>").is_err());
    }

    fn attr<'a>(attrs: &'a [(String, String)], name: &str) -> &'a str {
        attrs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("no {name}"))
    }

    fn bars(doc: &str, class: &str) -> Vec<(f64, f64)> {
        check_xml(doc)
            .unwrap()
            .into_iter()
            .filter(|(n, a)| n == "rect" && a.iter().any(|(k, v)| k == "class" && v == class))
            .map(|(_, a)| {
                (
                    attr(&a, "x").parse().unwrap(),
                    attr(&a, "height").parse().unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn plots_one_bar_per_round_and_series_scaled_by_value() {
        let depmig = Series {
            label: "depmig <dependency-aware> & co".into(),
            pages: vec![131088, 259, 0, 12],
        };
        let base = Series {
            label: "xl migrate".into(),
            pages: vec![131088, 25751, 25719, 25696, 25698, 25965],
        };
        let doc = pages_per_round("pages per round: \"guest\"", &[depmig.clone(), base]);
        assert!(doc.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        let d = bars(&doc, "bar s0");
        let b = bars(&doc, "bar s1");
        assert_eq!((d.len(), b.len()), (4, 6));
        // Bigger values get taller bars; zero gets none; equal values equal bars.
        assert!(d[0].1 > d[1].1 && d[1].1 > d[3].1 && d[3].1 > d[2].1);
        assert_eq!(d[2].1, 0.0);
        assert_eq!(d[0].1, b[0].1);
        assert!(b[1].1 > d[1].1);
        // Bars advance left to right by round; a round's bars sit side by side.
        assert!(d.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(d[0].0 < b[0].0 && b[0].0 < d[1].0);
        // Every bar stays inside the plot.
        assert!(d
            .iter()
            .chain(&b)
            .all(|(_, h)| *h <= H - BOTTOM - TITLE + 0.01));
        // The labels are escaped, and the legend names both series.
        assert!(doc.contains("depmig &lt;dependency-aware&gt; &amp; co (4 rounds, 131359 pages)"));
        assert!(doc.contains("xl migrate (6 rounds, 259917 pages)"));
        // Round labels 1..=6.
        for r in 1..=6 {
            assert!(
                doc.contains(&format!("text-anchor=\"middle\">{r}</text>")),
                "round {r} unlabelled"
            );
        }
    }

    fn elements<'a>(doc: &'a [Element], name: &str, class: &str) -> Vec<&'a Element> {
        doc.iter()
            .filter(|(n, a)| n == name && a.iter().any(|(k, v)| k == "class" && v == class))
            .collect()
    }

    #[test]
    fn plots_one_line_per_series_through_its_rounds() {
        let series: Vec<Series> = (0..12)
            .map(|k| Series {
                label: format!("m{k} <\"x\"> & 'y'"),
                pages: (0..=k as u64).map(|r| 10u64.pow((r % 6) as u32)).collect(),
            })
            .collect();
        let doc = pages_per_round_lines("t <&>", "pages & <more>", &series);
        let els = check_xml(&doc).unwrap();
        assert_eq!(els.iter().filter(|(n, _)| n == "polyline").count(), 12);
        for (k, ser) in series.iter().enumerate() {
            let lines = elements(&els, "polyline", &format!("line s{k}"));
            assert_eq!(lines.len(), 1, "series {k}");
            let pts = attr(&lines[0].1, "points");
            let xy: Vec<(f64, f64)> = pts
                .split(' ')
                .map(|p| {
                    let (x, y) = p.split_once(',').unwrap();
                    (x.parse().unwrap(), y.parse().unwrap())
                })
                .collect();
            assert_eq!(xy.len(), ser.pages.len());
            // Left to right by round; y falls (higher on the page) as the value grows.
            assert!(xy.windows(2).all(|w| w[0].0 < w[1].0));
            for (w, p) in xy.windows(2).zip(ser.pages.windows(2)) {
                assert_eq!(w[0].1 > w[1].1, p[0] < p[1], "series {k}");
            }
            assert_eq!(
                els.iter()
                    .filter(|(_, a)| a
                        .iter()
                        .any(|(n, v)| n == "class" && *v == format!("point s{k}")))
                    .count(),
                ser.pages.len()
            );
        }
        // Series past the palette keep a colour of it and change their dashes.
        let style = |k: usize| {
            let found = elements(&els, "polyline", &format!("line s{k}"));
            let l = found[0];
            (
                attr(&l.1, "stroke").to_string(),
                attr(&l.1, "stroke-dasharray").to_string(),
            )
        };
        assert_eq!(style(0).0, style(COLORS.len()).0);
        assert_ne!(style(0).1, style(COLORS.len()).1);
        assert_ne!(style(0).0, style(1).0);
        // Labels and title escaped.
        assert!(doc.contains("m3 &lt;&quot;x&quot;&gt; &amp; &apos;y&apos; (4 rounds, 1111 pages)"));
        assert!(doc.contains("<title>t &lt;&amp;&gt;</title>"));
        assert!(!doc.contains("<\"x\">"));
        assert!(doc.contains(">pages &amp; &lt;more&gt; (log scale)</text>"));
        // Markers take four shapes by turns.
        for (k, shape) in ["circle", "rect", "polygon", "polygon", "circle"]
            .iter()
            .enumerate()
        {
            assert_eq!(elements(&els, shape, &format!("point s{k}")).len(), k + 1);
        }
        // Degenerate inputs still make documents.
        for series in [
            vec![],
            vec![Series {
                label: String::new(),
                pages: vec![],
            }],
            vec![Series {
                label: "z".into(),
                pages: vec![0, u64::MAX, 1],
            }],
        ] {
            check_xml(&pages_per_round_lines("t", "p", &series)).unwrap();
        }
    }

    #[test]
    fn degenerate_inputs_still_make_a_valid_document() {
        for series in [
            vec![],
            vec![Series {
                label: String::new(),
                pages: vec![],
            }],
            vec![Series {
                label: "x".into(),
                pages: vec![0, 0],
            }],
        ] {
            let doc = pages_per_round("t", &series);
            check_xml(&doc).unwrap();
        }
        let many = Series {
            label: "x".into(),
            pages: (1..=100).collect(),
        };
        let doc = pages_per_round("t", &[many]);
        assert_eq!(bars(&doc, "bar s0").len(), 100);
        let huge = Series {
            label: "x".into(),
            pages: vec![u64::MAX, 1],
        };
        check_xml(&pages_per_round("t", &[huge])).unwrap();
    }
}
