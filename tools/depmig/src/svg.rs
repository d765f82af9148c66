//! depmig's plots of pages per round, drawn by `depmig_plot` on a
//! logarithmic axis: bar groups per round (one bar per migration) for
//! `depmig migrate --svg`, one line per migration for `depmig compare`.

pub use depmig_plot::escape;
use depmig_plot::Chart;

/// One migration's pages per round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Series {
    /// Legend text.
    pub label: String,
    /// Pages sent in each round, round 1 first.
    pub pages: Vec<u64>,
}

fn view(series: &[Series]) -> Vec<depmig_plot::Series<'_>> {
    series
        .iter()
        .map(|s| depmig_plot::Series {
            label: &s.label,
            values: &s.pages,
            color: None,
        })
        .collect()
}

/// The plot as a complete SVG document: per round a group of bars, one per
/// series.
pub fn pages_per_round(title: &str, series: &[Series]) -> String {
    let chart = Chart {
        title,
        y_label: "pages sent",
        unit: "pages",
    };
    depmig_plot::bars(&chart, &view(series))
}

/// The plot as a complete SVG document with one line per series (a
/// `polyline` through its rounds, a marker on each round), as in the
/// paper's figures of pages per round; `y_label` names what is counted.
/// Zero pages sit on the x axis.
pub fn pages_per_round_lines(title: &str, y_label: &str, series: &[Series]) -> String {
    let chart = Chart {
        title,
        y_label,
        unit: "pages",
    };
    depmig_plot::lines(&chart, &view(series))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The well-formedness check the plots are tested with.
    pub(crate) use depmig_plot::check::check_xml;

    #[test]
    fn the_plots_carry_the_series_title_and_axis() {
        let series = [
            Series {
                label: "depmig <aware>".into(),
                pages: vec![131088, 259, 0, 12],
            },
            Series {
                label: "xl migrate".into(),
                pages: vec![131088, 25751],
            },
        ];
        let bars = pages_per_round("t & u", &series);
        let els = check_xml(&bars).unwrap();
        let count = |class: &str| {
            els.iter()
                .filter(|(_, a)| a.iter().any(|(k, v)| k == "class" && v == class))
                .count()
        };
        assert_eq!((count("bar s0"), count("bar s1")), (4, 2));
        assert!(bars.contains("<title>t &amp; u</title>"));
        assert!(bars.contains(">pages sent (log scale)</text>"));
        assert!(bars.contains("depmig &lt;aware&gt; (4 rounds, 131359 pages)"));
        let lines = pages_per_round_lines("t", "dirty pages", &series);
        let els = check_xml(&lines).unwrap();
        assert_eq!(els.iter().filter(|(n, _)| n == "polyline").count(), 2);
        assert!(lines.contains(">dirty pages (log scale)</text>"));
        assert!(lines.contains("xl migrate (2 rounds, 156839 pages)"));
    }
}
