//! The targets of dependency-aware migration, evaluated from the reports:
//! later rounds small, the total near the guest's size, the downtime a
//! tenth of stock's, the totals of the depmig modes within 5% of depmig's
//! baseline; and the wire targets of every depmig mode against stock:
//! bytes on the wire and total time a quarter of stock's, the guest
//! stopped until running 3% of stock's. Each is evaluated for every report
//! of its mode, against the first report of the reference's role.

use super::{Figure, Migration, Role};
use crate::json::Value;

/// Target: every round after the first sends at most this many pages.
pub const LATER_ROUND_LIMIT: u64 = 100;

/// The workload the issue sets a target for: the HTTP download for the
/// totals within 5% of the baseline, the memory-dirtier (mmuncher) for the
/// others. Every target is evaluated on every set; this says which guest
/// its verdict is meant for.
pub fn set_for(key: &str) -> &'static str {
    if key.contains("within_5pct_of_baseline") {
        "http-download"
    } else {
        "mmuncher"
    }
}

/// A target's verdict with its figures.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// The stable key (`#2`, `#3`... appended for further reports of the
    /// same mode).
    pub key: String,
    /// The report the target is about.
    pub subject: Option<String>,
    /// The report it is compared with.
    pub reference: Option<String>,
    /// `None`: not evaluated (see `detail`).
    pub met: Option<bool>,
    /// The measured figure.
    pub value: Value,
    /// Its limit.
    pub limit: Value,
    /// Further figures for the JSON output.
    pub extra: Vec<(String, Value)>,
    /// The figures, or why it was not evaluated, in words.
    pub detail: String,
}

/// A decimal number as a JSON value (null if not finite, which the callers
/// never pass).
fn num(x: f64) -> Value {
    if x.is_finite() {
        Value::Num(format!("{x}"))
    } else {
        Value::Null
    }
}

/// The first report of `role`, noting when there are several.
fn reference(ms: &[Migration], role: Role, what: &str, notes: &mut Vec<String>) -> Option<usize> {
    let all: Vec<usize> = (0..ms.len())
        .filter(|&i| ms.get(i).is_some_and(|m| m.role == role))
        .collect();
    let first = all.first().copied()?;
    if all.len() > 1 {
        let label = ms.get(first).map_or("", |m| m.label.as_str());
        notes.push(format!(
            "{} {what} reports: the targets compare with the first, `{label}`",
            all.len()
        ));
    }
    Some(first)
}

fn keyed(key: &str, nth: usize) -> String {
    if nth == 0 {
        key.to_string()
    } else {
        format!("{key}#{}", nth + 1)
    }
}

fn not_evaluated(key: String, subject: Option<&Migration>, why: String) -> Target {
    Target {
        key,
        subject: subject.map(|m| m.label.clone()),
        reference: None,
        met: None,
        value: Value::Null,
        limit: Value::Null,
        extra: Vec::new(),
        detail: why,
    }
}

fn later_rounds(key: String, m: &Migration) -> Target {
    let largest = m
        .per_round_pages
        .iter()
        .enumerate()
        .skip(1)
        .max_by_key(|(_, p)| **p);
    let (met, value, detail) = match largest {
        None => (
            true,
            Value::Null,
            "a single round: no round after the first".to_string(),
        ),
        Some((i, &p)) => (
            p <= LATER_ROUND_LIMIT,
            Value::uint(p),
            format!(
                "largest round after the first: {p} pages (round {}), limit {LATER_ROUND_LIMIT}",
                i + 1
            ),
        ),
    };
    Target {
        key,
        subject: Some(m.label.clone()),
        reference: None,
        met: Some(met),
        value,
        limit: Value::uint(LATER_ROUND_LIMIT),
        extra: Vec::new(),
        detail,
    }
}

fn total_vs_guest(key: String, m: &Migration, guest: Option<&(u64, String)>) -> Target {
    let Some((g, from)) = guest else {
        return not_evaluated(
            key,
            Some(m),
            "no guest size: no --guest-pages and no stock report to take it from".into(),
        );
    };
    // total <= 1.05 g, in integers; the limit written exactly.
    let hundredths = u128::from(*g) * 105;
    let met = u128::from(m.total_pages) * 100 <= hundredths;
    let limit = format!("{}.{:02}", hundredths / 100, hundredths % 100);
    let limit = limit
        .trim_end_matches('0')
        .trim_end_matches('.')
        .to_string();
    Target {
        key,
        subject: Some(m.label.clone()),
        reference: None,
        met: Some(met),
        value: Value::uint(m.total_pages),
        limit: Value::Num(limit.clone()),
        extra: vec![
            ("guest_pages".into(), Value::uint(*g)),
            ("guest_pages_from".into(), Value::str(from)),
        ],
        detail: format!(
            "{} pages sent, limit 1.05 x {g} guest pages ({from}) = {limit}; {:.3} x guest",
            m.total_pages,
            m.total_pages as f64 / *g as f64
        ),
    }
}

/// Which downtime a target compares.
#[derive(Clone, Copy)]
enum Downtime {
    /// Each report's own `downtime_ms`.
    Report,
    /// The guest stopped until it ran again ([`Migration::guest_downtime_ms`]).
    Guest,
}

fn downtime_vs_stock(
    key: String,
    m: &Migration,
    stock: Option<&Migration>,
    which: Downtime,
) -> Target {
    let Some(s) = stock else {
        return not_evaluated(
            key,
            Some(m),
            "no stock `xl migrate` report in the set".into(),
        );
    };
    let pick = |x: &'_ Migration| -> Option<Figure> {
        match which {
            Downtime::Report => x.downtime_ms.clone(),
            Downtime::Guest => x.guest_downtime_ms.clone(),
        }
    };
    let what = match which {
        Downtime::Report => "downtime",
        Downtime::Guest => "guest stopped until running",
    };
    let (mine, stocks) = (pick(m), pick(s));
    let (Some(d), Some(sd)) = (&mine, &stocks) else {
        let whose = if mine.is_none() { &m.label } else { &s.label };
        let mut t = not_evaluated(key, Some(m), format!("`{whose}` reports no {what} figure"));
        t.reference = Some(s.label.clone());
        return t;
    };
    let limit = sd.value / 10.0;
    Target {
        key,
        subject: Some(m.label.clone()),
        reference: Some(s.label.clone()),
        met: Some(d.value * 10.0 <= sd.value),
        value: Value::Num(d.text.clone()),
        limit: num(limit),
        extra: vec![("reference_downtime_ms".into(), Value::Num(sd.text.clone()))],
        detail: format!(
            "{what} {} ms, limit {limit:.1} ms (a tenth of `{}`'s {} ms)",
            d.text, s.label, sd.text
        ),
    }
}

/// A figure of each depmig report that the wire targets hold to a
/// fraction of the stock report's.
#[derive(Clone, Copy)]
enum Wire {
    /// `stream_bytes`: every byte that crossed the link.
    Bytes,
    /// The guest stopped until it ran again ([`Migration::guest_downtime_ms`]),
    /// the figure the issue names; the report's own `downtime_ms` is
    /// measured differently by each migrator (see the Markdown's list).
    GuestDowntime,
    /// `total_time_ms`: the migration's total time.
    TotalTime,
}

impl Wire {
    /// The key after the mode's prefix.
    fn stem(self) -> &'static str {
        match self {
            Wire::Bytes => "bytes_le_0_25_stock",
            Wire::GuestDowntime => "guest_downtime_le_0_03_stock",
            Wire::TotalTime => "total_time_le_0_25_stock",
        }
    }

    /// The limit as a fraction of stock's figure: numerator, denominator
    /// (both exact in an f64), and in words.
    fn fraction(self) -> (f64, f64, &'static str) {
        match self {
            Wire::Bytes | Wire::TotalTime => (1.0, 4.0, "a quarter"),
            Wire::GuestDowntime => (3.0, 100.0, "3%"),
        }
    }

    /// The figure in words.
    fn what(self) -> &'static str {
        match self {
            Wire::Bytes => "bytes on the wire",
            Wire::GuestDowntime => "guest stopped until running",
            Wire::TotalTime => "total time",
        }
    }

    fn unit(self) -> &'static str {
        match self {
            Wire::Bytes => "bytes",
            Wire::GuestDowntime | Wire::TotalTime => "ms",
        }
    }

    /// The report's field it comes from, for the messages.
    fn field(self, m: &Migration) -> &'static str {
        match (self, m.role) {
            (Wire::Bytes, _) => "stream_bytes",
            (Wire::GuestDowntime, Role::Stock) => "downtime_xl_list_ms",
            (Wire::GuestDowntime, _) => "cli.guest_downtime_ms",
            (Wire::TotalTime, _) => "total_time_ms",
        }
    }

    /// The key of the stock figure in the JSON output.
    fn reference_key(self) -> &'static str {
        match self {
            Wire::Bytes => "reference_stream_bytes",
            Wire::GuestDowntime => "reference_guest_downtime_ms",
            Wire::TotalTime => "reference_total_time_ms",
        }
    }

    fn figure(self, m: &Migration) -> Option<&Figure> {
        match self {
            Wire::Bytes => m.stream_bytes.as_ref(),
            Wire::GuestDowntime => m.guest_downtime_ms.as_ref(),
            Wire::TotalTime => m.total_time_ms.as_ref(),
        }
    }
}

/// `m`'s figure against the fraction of `stock`'s that `w` allows.
fn wire_vs_stock(key: String, m: &Migration, stock: Option<&Migration>, w: Wire) -> Target {
    let Some(s) = stock else {
        return not_evaluated(
            key,
            Some(m),
            "no stock `xl migrate` report in the set".into(),
        );
    };
    let (what, unit) = (w.what(), w.unit());
    let (Some(d), Some(sd)) = (w.figure(m), w.figure(s)) else {
        let whose = if w.figure(m).is_none() { m } else { s };
        let mut t = not_evaluated(
            key,
            Some(m),
            format!("`{}` reports no {what} (`{}`)", whose.label, w.field(whose)),
        );
        t.reference = Some(s.label.clone());
        return t;
    };
    let (times, per, words) = w.fraction();
    let limit = sd.value * times / per;
    // value <= stock's x times / per, without the division.
    let met = d.value * per <= sd.value * times;
    let ratio = (sd.value > 0.0).then(|| d.value / sd.value);
    let of_stock = ratio.map_or_else(String::new, |r| format!("; {r:.3} x stock's"));
    Target {
        key,
        subject: Some(m.label.clone()),
        reference: Some(s.label.clone()),
        met: Some(met),
        value: Value::Num(d.text.clone()),
        limit: num(limit),
        extra: vec![
            (w.reference_key().into(), Value::Num(sd.text.clone())),
            ("ratio".into(), ratio.map_or(Value::Null, num)),
        ],
        detail: format!(
            "{what} {} {unit} (`{}`), limit {limit} {unit} ({words} of `{}`'s {} {unit}, `{}`){of_stock}",
            d.text,
            w.field(m),
            s.label,
            sd.text,
            w.field(s)
        ),
    }
}

fn total_vs_baseline(key: String, m: &Migration, base: Option<&Migration>) -> Target {
    let Some(b) = base else {
        return not_evaluated(key, Some(m), "no depmig baseline report in the set".into());
    };
    if b.total_pages == 0 {
        let mut t = not_evaluated(key, Some(m), format!("`{}` sent no page", b.label));
        t.reference = Some(b.label.clone());
        return t;
    }
    let diff = m.total_pages.abs_diff(b.total_pages);
    // |t - b| <= 5% of b, in integers.
    let met = u128::from(diff) * 20 <= u128::from(b.total_pages);
    let rel = diff as f64 / b.total_pages as f64;
    Target {
        key,
        subject: Some(m.label.clone()),
        reference: Some(b.label.clone()),
        met: Some(met),
        value: num(rel),
        limit: num(0.05),
        extra: vec![
            ("total_pages".into(), Value::uint(m.total_pages)),
            ("reference_total_pages".into(), Value::uint(b.total_pages)),
        ],
        detail: format!(
            "{} pages vs `{}`'s {}: {}{:.2}%, limit 5%",
            m.total_pages,
            b.label,
            b.total_pages,
            if m.total_pages >= b.total_pages {
                "+"
            } else {
                "-"
            },
            rel * 100.0
        ),
    }
}

/// The guest's size in pages and where it came from, and the targets in a
/// fixed order; notes which reports are the references.
pub(super) fn targets(
    migrations: &[Migration],
    guest_pages: Option<u64>,
    notes: &mut Vec<String>,
) -> (Option<(u64, String)>, Vec<Target>) {
    let stock = reference(migrations, Role::Stock, "stock", notes).and_then(|i| migrations.get(i));
    let base = reference(migrations, Role::DepmigBaseline, "depmig baseline", notes)
        .and_then(|i| migrations.get(i));
    let guest = match (guest_pages, stock) {
        (Some(g), _) => Some((g, "--guest-pages".to_string())),
        (None, Some(s)) => s
            .per_round_pages
            .first()
            .map(|p| (*p, format!("round 1 of stock `{}`", s.label))),
        (None, None) => None,
    };
    let of =
        |role: Role| -> Vec<&Migration> { migrations.iter().filter(|m| m.role == role).collect() };
    let aware = of(Role::DependencyAware);
    let paper = of(Role::PaperAnalysis);
    let mut targets = Vec::new();
    if aware.is_empty() {
        for key in [
            "da_later_rounds_le_100",
            "da_total_pages_le_1_05_guest",
            "da_downtime_le_0_1_stock",
            "da_guest_downtime_le_0_1_stock",
        ] {
            targets.push(not_evaluated(
                key.into(),
                None,
                "no dependency-aware depmig report in the set".into(),
            ));
        }
    }
    for (n, m) in aware.iter().enumerate() {
        targets.push(later_rounds(keyed("da_later_rounds_le_100", n), m));
        targets.push(total_vs_guest(
            keyed("da_total_pages_le_1_05_guest", n),
            m,
            guest.as_ref(),
        ));
        targets.push(downtime_vs_stock(
            keyed("da_downtime_le_0_1_stock", n),
            m,
            stock,
            Downtime::Report,
        ));
        targets.push(downtime_vs_stock(
            keyed("da_guest_downtime_le_0_1_stock", n),
            m,
            stock,
            Downtime::Guest,
        ));
    }
    for (prefix, set, what) in [
        ("pa", &paper, "paper-analysis"),
        ("da", &aware, "dependency-aware"),
    ] {
        let key = format!("{prefix}_total_pages_within_5pct_of_baseline");
        if set.is_empty() {
            targets.push(not_evaluated(
                key.clone(),
                None,
                format!("no {what} depmig report in the set"),
            ));
        }
        for (n, m) in set.iter().enumerate() {
            targets.push(total_vs_baseline(keyed(&key, n), m, base));
        }
    }
    // The wire targets, for every depmig mode.
    let baseline = of(Role::DepmigBaseline);
    for (prefix, set, what) in [
        ("base", &baseline, "baseline"),
        ("pa", &paper, "paper-analysis"),
        ("da", &aware, "dependency-aware"),
    ] {
        let wires = [Wire::Bytes, Wire::GuestDowntime, Wire::TotalTime];
        if set.is_empty() {
            for w in wires {
                targets.push(not_evaluated(
                    format!("{prefix}_{}", w.stem()),
                    None,
                    format!("no {what} depmig report in the set"),
                ));
            }
        }
        for (n, m) in set.iter().enumerate() {
            for w in wires {
                let key = keyed(&format!("{prefix}_{}", w.stem()), n);
                targets.push(wire_vs_stock(key, m, stock, w));
            }
        }
    }
    (guest, targets)
}
