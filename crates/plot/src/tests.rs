//! The plots' geometry and escaping, drawn through the two shapes
//! depmig uses (bars of pages sent, lines of pages per round).

use super::*;
use crate::check::{check_xml, Element};

/// A series as its callers keep it.
#[derive(Clone)]
struct Owned {
    label: String,
    pages: Vec<u64>,
}

fn view(series: &[Owned]) -> Vec<Series<'_>> {
    series
        .iter()
        .map(|s| Series {
            label: &s.label,
            values: &s.pages,
            color: None,
        })
        .collect()
}

fn pages_per_round(title: &str, series: &[Owned]) -> String {
    let chart = Chart {
        title,
        y_label: "pages sent",
        unit: "pages",
    };
    crate::bars(&chart, &view(series))
}

fn pages_per_round_lines(title: &str, y_label: &str, series: &[Owned]) -> String {
    let chart = Chart {
        title,
        y_label,
        unit: "pages",
    };
    lines(&chart, &view(series))
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
    let depmig = Owned {
        label: "depmig <dependency-aware> & co".into(),
        pages: vec![131088, 259, 0, 12],
    };
    let base = Owned {
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
    let series: Vec<Owned> = (0..12)
        .map(|k| Owned {
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
        vec![Owned {
            label: String::new(),
            pages: vec![],
        }],
        vec![Owned {
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
        vec![Owned {
            label: String::new(),
            pages: vec![],
        }],
        vec![Owned {
            label: "x".into(),
            pages: vec![0, 0],
        }],
    ] {
        let doc = pages_per_round("t", &series);
        check_xml(&doc).unwrap();
    }
    let many = Owned {
        label: "x".into(),
        pages: (1..=100).collect(),
    };
    let doc = pages_per_round("t", &[many]);
    assert_eq!(bars(&doc, "bar s0").len(), 100);
    let huge = Owned {
        label: "x".into(),
        pages: vec![u64::MAX, 1],
    };
    check_xml(&pages_per_round("t", &[huge])).unwrap();
}

#[test]
fn a_series_may_bring_its_colour_and_the_chart_its_unit() {
    let values = [1u64, 10, 100];
    let series = [
        Series {
            label: "a",
            values: &values,
            color: Some("#123456"),
        },
        Series {
            label: "b",
            values: &values,
            color: Some("red\" onload=\"x"),
        },
        Series {
            label: "c",
            values: &values,
            color: None,
        },
    ];
    let chart = Chart {
        title: "t",
        y_label: "frames",
        unit: "frames",
    };
    for doc in [lines(&chart, &series), crate::bars(&chart, &series)] {
        let els = check_xml(&doc).unwrap();
        // A line's colour is its stroke, a bar's its fill.
        let paint = |k: usize| {
            let (class, attr) = if doc.contains("<polyline") {
                (format!("line s{k}"), "stroke")
            } else {
                (format!("bar s{k}"), "fill")
            };
            els.iter()
                .find(|(_, a)| a.iter().any(|(n, v)| n == "class" && *v == class))
                .and_then(|(_, a)| a.iter().find(|(n, _)| n == attr).map(|(_, v)| v.clone()))
                .unwrap()
        };
        assert_eq!(paint(0), "#123456");
        // A colour is an attribute value like any other text: escaped.
        assert_eq!(paint(1), "red&quot; onload=&quot;x");
        // Without one, the series takes the palette's colour for its place.
        assert_eq!(paint(2), COLORS[2]);
        assert!(doc.contains("c (3 rounds, 111 frames)"));
        assert!(doc.contains(">frames (log scale)</text>"));
        assert!(doc.contains(": round 3 100 frames</title>"));
    }
}
