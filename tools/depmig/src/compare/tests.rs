//! Comparisons of reports: columns, targets, outputs, and the refusals of
//! damaged reports.

use std::collections::HashMap;
use std::path::PathBuf;

use super::*;
use crate::report::{self, tests::sample};
use crate::svg::tests::check_xml;

/// A report with these pages per round, this downtime and, for depmig,
/// this `depmig` object (JSON text).
fn rep(migrator: &str, pages: &[u64], downtime: &str, depmig: Option<&str>) -> String {
    let base = sample(migrator, pages).replacen(
        "\"downtime_ms\":56",
        &format!("\"downtime_ms\":{downtime}"),
        1,
    );
    match depmig {
        None => base,
        Some(d) => format!(
            "{},\"depmig\":{d}}}",
            base.strip_suffix('}').expect("an object")
        ),
    }
}

fn list(v: &[u64]) -> String {
    let items: Vec<String> = v.iter().map(u64::to_string).collect();
    format!("[{}]", items.join(","))
}

fn depmig_obj(mode: &str, dirty: &[u64], tainted: &[u64], free: &[u64], frozen: u64) -> String {
    format!(
        "{{\"mode\":\"{mode}\",\"policy\":\"xen-4.x\",\"frozen_groups\":{frozen},\
         \"per_round_dirty\":{},\"per_round_dirty_tainted\":{},\"per_round_skipped_free\":{}}}",
        list(dirty),
        list(tainted),
        list(free)
    )
}

const GUEST: u64 = 32768;
const STOCK: [u64; 6] = [GUEST, 6400, 6410, 6400, 6405, 6500];
const BASE: [u64; 6] = [GUEST, 6401, 6400, 6400, 6402, 6480];
const PAPER: [u64; 6] = [GUEST, 6399, 6400, 6420, 6400, 6470];
const AWARE: [u64; 4] = [GUEST, 60, 13, 40];

fn stock() -> String {
    rep("xl-migrate", &STOCK, "20000", None)
}
fn base() -> String {
    let z = [0; 6];
    rep(
        "depmig",
        &BASE,
        "30000",
        Some(&depmig_obj("baseline", &BASE, &BASE, &z, 0)),
    )
}
fn paper() -> String {
    let dirty = [33000, 6399, 6400, 6420, 6400, 6470];
    let tainted = [900, 25, 13, 40, 22, 31];
    rep(
        "depmig",
        &PAPER,
        "31000",
        Some(&depmig_obj("paper-analysis", &dirty, &tainted, &[0; 6], 0)),
    )
}
fn aware_with(pages: &[u64], downtime: &str) -> String {
    let n = pages.len();
    let mut free = vec![0; n];
    if let Some(last) = free.last_mut() {
        *last = 120;
    }
    rep(
        "depmig",
        pages,
        downtime,
        Some(&depmig_obj("dependency-aware", pages, pages, &free, 1)),
    )
}
fn aware() -> String {
    aware_with(&AWARE, "1500")
}

/// In-memory files: reads from `files`, writes into `written`.
#[derive(Default)]
struct Mem {
    files: HashMap<PathBuf, Vec<u8>>,
    written: HashMap<PathBuf, Vec<u8>>,
    refuse_writes: bool,
}

impl Files for Mem {
    fn read(&mut self, path: &Path) -> Result<Vec<u8>, String> {
        self.files
            .get(path)
            .cloned()
            .ok_or_else(|| "No such file or directory (os error 2)".into())
    }
    fn write(&mut self, path: &Path, data: &[u8]) -> Result<(), String> {
        if self.refuse_writes {
            return Err("Permission denied (os error 13)".into());
        }
        self.written.insert(path.to_path_buf(), data.to_vec());
        Ok(())
    }
}

fn opts(reports: &[(&str, &str)]) -> CompareOptions {
    CompareOptions {
        title: None,
        svg: None,
        markdown: None,
        json: None,
        guest_pages: None,
        reports: reports
            .iter()
            .map(|(l, f)| (l.to_string(), PathBuf::from(f)))
            .collect(),
    }
}

/// Compares `reports` (label, text) as `depmig compare` would.
fn cmp(reports: &[(&str, String)], guest_pages: Option<u64>) -> Comparison {
    let mut mem = Mem::default();
    let mut pairs = Vec::new();
    for (i, (label, text)) in reports.iter().enumerate() {
        let f = format!("r{i}.json");
        mem.files
            .insert(PathBuf::from(&f), text.clone().into_bytes());
        pairs.push((label.to_string(), PathBuf::from(f)));
    }
    let o = CompareOptions {
        guest_pages,
        reports: pairs,
        ..opts(&[])
    };
    build(&o, &mut mem).unwrap()
}

fn target<'a>(c: &'a Comparison, key: &str) -> &'a Target {
    c.targets
        .iter()
        .find(|t| t.key == key)
        .unwrap_or_else(|| panic!("no target {key}: {:?}", c.targets))
}

fn full_set() -> Vec<(&'static str, String)> {
    vec![
        ("xl", stock()),
        ("base", base()),
        ("paper", paper()),
        ("aware", aware()),
    ]
}

#[test]
fn columns_one_per_report_and_two_for_paper_analysis() {
    let c = cmp(&full_set(), None);
    let heads: Vec<&str> = c.columns.iter().map(|c| c.heading.as_str()).collect();
    assert_eq!(
        heads,
        ["xl", "base", "paper dirty", "paper dirty+tainted", "aware"]
    );
    let roles: Vec<Role> = c.migrations.iter().map(|m| m.role).collect();
    assert_eq!(
        roles,
        [
            Role::Stock,
            Role::DepmigBaseline,
            Role::PaperAnalysis,
            Role::DependencyAware
        ]
    );
    let md = markdown(&c);
    assert!(
        md.contains(
            "| round | xl | base | paper dirty | paper dirty+tainted | aware |\n\
             | ---: | ---: | ---: | ---: | ---: | ---: |\n\
             | 1 | 32768 | 32768 | 33000 | 900 | 32768 |\n\
             | 2 | 6400 | 6401 | 6399 | 25 | 60 |\n"
        ),
        "{md}"
    );
    // Rounds a report does not have are empty cells.
    assert!(md.contains("| 5 | 6405 | 6402 | 6400 | 22 | |\n"), "{md}");
    assert!(md.contains("| 6 | 6500 | 6480 | 6470 | 31 | |\n"), "{md}");
    // The summary: rounds, totals, bytes, downtime, time, frozen, free.
    let total = |p: &[u64]| p.iter().sum::<u64>();
    assert!(md.contains(&format!(
        "| xl | xl-migrate | stock | 6 | {} | - | 20000 | - | 1234 | - | - |",
        total(&STOCK)
    )));
    assert!(md.contains(&format!(
        "| aware | depmig | dependency-aware | 4 | {} | - | 1500 | - | 1234 | 1 | 120 |",
        total(&AWARE)
    )));
    assert!(md.contains(&format!(
        "| paper | depmig | paper-analysis | 6 | {} | - | 31000 | - | 1234 | 0 | 0 |",
        total(&PAPER)
    )));
    // The plot has one line per column, labels escaped.
    let c = cmp(
        &[("a <&> \"b\"", stock()), ("p", paper()), ("d", aware())],
        None,
    );
    let doc = plot(&c);
    let els = check_xml(&doc).unwrap();
    assert_eq!(els.iter().filter(|(n, _)| n == "polyline").count(), 4);
    assert!(doc.contains("a &lt;&amp;&gt; &quot;b&quot; (6 rounds"));
    assert!(doc.contains(">p dirty+tainted (6 rounds, 1031 pages)<"));
    assert!(!doc.contains("<&>"));
}

/// `paper()` with a census of the rounds listed: a fifth of each
/// round's dirty tainted pages mapped by processes, the rest the
/// kernel's.
fn paper_with_census(rounds: &[u64]) -> String {
    let tainted = [900u64, 25, 13, 40, 22, 31];
    let pick = |f: &dyn Fn(u64) -> u64| -> String {
        list(
            &rounds
                .iter()
                .map(|&r| f(tainted[r as usize - 1]))
                .collect::<Vec<_>>(),
        )
    };
    let census = format!(
        ",\"census\":{{\"round\":{},\"asked\":{},\"user\":{},\"page_tables\":{},\"kernel\":{},\"unreadable\":{}}}}}}}",
        list(rounds),
        pick(&|t| t),
        pick(&|t| t / 5),
        pick(&|_| 0),
        pick(&|t| t - t / 5),
        pick(&|_| 0)
    );
    let p = paper();
    let (head, _) = p.rsplit_once("}}").expect("depmig object last");
    format!("{head}{census}")
}

#[test]
fn the_census_adds_a_column_of_tainted_processes_pages() {
    let set = |p: String| vec![("xl", stock()), ("paper", p), ("aware", aware())];
    let c = cmp(&set(paper_with_census(&[1, 2, 3, 4, 5, 6])), None);
    let heads: Vec<&str> = c.columns.iter().map(|c| c.heading.as_str()).collect();
    assert_eq!(
        heads,
        [
            "xl",
            "paper dirty",
            "paper dirty+tainted",
            "paper of tainted processes",
            "aware"
        ]
    );
    let col = &c.columns[3];
    assert_eq!(col.measure, Measure::TaintedProcesses);
    assert_eq!(col.per_round, vec![180, 5, 2, 8, 4, 6]);
    let md = markdown(&c);
    assert!(md.contains("| 2 | 6400 | 6399 | 25 | 5 | 60 |\n"), "{md}");
    assert!(
        md.contains("the pages mapped by tainted processes alone"),
        "{md}"
    );
    let j = to_json(&c).to_string();
    assert!(j.contains("\"measure\":\"tainted_processes\""), "{j}");
    let doc = plot(&c);
    assert!(
        doc.contains(">paper of tainted processes (6 rounds, 205 pages)<"),
        "{doc}"
    );
    // A census missing in some rounds gives no column, and a note says so.
    let c = cmp(&set(paper_with_census(&[1, 3])), None);
    assert_eq!(c.columns.len(), 4);
    assert!(
        c.notes
            .iter()
            .any(|n| n.contains("taken in rounds 1, 3 of 6 only")),
        "{:?}",
        c.notes
    );
    // Without one, the pair as before and no note.
    let c = cmp(&set(paper()), None);
    assert_eq!(c.columns.len(), 4);
    assert!(
        c.notes.iter().all(|n| !n.contains("census")),
        "{:?}",
        c.notes
    );
}

#[test]
fn a_migration_that_did_not_commit_is_refused() {
    let failed = base().replacen(
        "\"policy\":\"xen-4.x\",",
        "\"policy\":\"xen-4.x\",\"result\":\"failed\",",
        1,
    );
    assert_ne!(failed, base());
    match load("f", "f.json", &failed) {
        Err(CompareError::Report { file, error }) => {
            assert_eq!(file, "f.json");
            assert!(error.to_string().contains("did not commit"), "{error}");
        }
        other => panic!(
            "a rolled-back report was compared: {:?}",
            other.map(|m| m.label)
        ),
    }
    let committed = base().replacen(
        "\"policy\":\"xen-4.x\",",
        "\"policy\":\"xen-4.x\",\"result\":\"committed\",",
        1,
    );
    assert!(load("c", "c.json", &committed).is_ok());
}

#[test]
fn roles_come_from_the_reports_not_the_labels() {
    // Labels that lie: the stock report called "aware" and so on.
    let c = cmp(
        &[
            ("aware", stock()),
            ("stock", aware()),
            ("paper", base()),
            ("base", paper()),
        ],
        None,
    );
    let t = target(&c, "da_downtime_le_0_1_stock");
    assert_eq!(
        (t.subject.as_deref(), t.reference.as_deref()),
        (Some("stock"), Some("aware"))
    );
    let t = target(&c, "pa_total_pages_within_5pct_of_baseline");
    assert_eq!(
        (t.subject.as_deref(), t.reference.as_deref()),
        (Some("base"), Some("paper"))
    );
    // A depmig report without a depmig object takes the CLI's mode.
    let cli_only = sample("depmig", &[10, 1]).replacen(
        "\"downtime_method\"",
        "\"cli\":{\"mode\":\"dependency-aware\"},\"downtime_method\"",
        1,
    );
    let c = cmp(&[("x", cli_only)], None);
    assert_eq!(c.migrations[0].role, Role::DependencyAware);
    // Neither: shown, noted, used by no target.
    let odd = rep("depmig", &[10, 1], "5", Some("{\"mode\":\"turbo\"}"));
    let other = rep("sim", &[10, 1], "5", Some("{}"));
    let c = cmp(&[("odd", odd), ("other", other)], None);
    assert!(c.migrations.iter().all(|m| m.role == Role::Unclassified));
    assert_eq!(c.columns.len(), 2);
    assert!(c
        .notes
        .iter()
        .any(|n| n.contains("`odd`") && n.contains("turbo")));
    assert!(c
        .notes
        .iter()
        .any(|n| n.contains("`other`") && n.contains("`sim`")));
    assert!(c.targets.iter().all(|t| t.met.is_none()));
}

#[test]
fn the_guests_own_downtime_is_a_second_downtime_target() {
    // Stock: `xl list`'s view; depmig: the command's suspend -> unpause.
    let xl = stock().replacen(
        "\"downtime_method\"",
        "\"downtime_xl_list_ms\":21000,\"downtime_method\"",
        1,
    );
    let with_cli = |ms: &str| {
        let a = aware();
        let end = a.rfind('}').unwrap();
        format!(
            "{},\"cli\":{{\"outcome\":\"migrated\",\"guest_downtime_ms\":{ms}}}}}",
            &a[..end]
        )
    };
    let c = cmp(&[("xl", xl.clone()), ("aware", with_cli("6300"))], None);
    // The report's own downtime (1500 ms) meets the tenth; the guest's
    // (6300 ms against 21000) does not.
    assert_eq!(target(&c, "da_downtime_le_0_1_stock").met, Some(true));
    let t = target(&c, "da_guest_downtime_le_0_1_stock");
    assert_eq!(t.met, Some(false), "{t:?}");
    assert!(
        t.detail
            .contains("guest stopped until running 6300 ms, limit 2100.0 ms"),
        "{}",
        t.detail
    );
    let md = markdown(&c);
    assert!(md.contains("| 1500 | 6300 |"), "{md}");
    assert!(md.contains("| 20000 | 21000 |"), "{md}");
    let c = cmp(&[("xl", xl), ("aware", with_cli("2100"))], None);
    assert_eq!(target(&c, "da_guest_downtime_le_0_1_stock").met, Some(true));
    // Without the figures: not evaluated, and said why.
    let c = cmp(&[("xl", stock()), ("aware", with_cli("2100"))], None);
    let t = target(&c, "da_guest_downtime_le_0_1_stock");
    assert!(
        t.met.is_none() && t.detail.contains("`xl` reports no guest stopped"),
        "{t:?}"
    );
}

#[test]
fn targets_met() {
    let c = cmp(&full_set(), None);
    let keys: Vec<&str> = c.targets.iter().map(|t| t.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "da_later_rounds_le_100",
            "da_total_pages_le_1_05_guest",
            "da_downtime_le_0_1_stock",
            "da_guest_downtime_le_0_1_stock",
            "pa_total_pages_within_5pct_of_baseline",
            "da_total_pages_within_5pct_of_baseline",
            "base_bytes_le_0_25_stock",
            "base_guest_downtime_le_0_03_stock",
            "base_total_time_le_0_25_stock",
            "pa_bytes_le_0_25_stock",
            "pa_guest_downtime_le_0_03_stock",
            "pa_total_time_le_0_25_stock",
            "da_bytes_le_0_25_stock",
            "da_guest_downtime_le_0_03_stock",
            "da_total_time_le_0_25_stock",
        ]
    );
    assert_eq!(c.guest_pages, Some((GUEST, "round 1 of stock `xl`".into())));
    let t = target(&c, "da_later_rounds_le_100");
    assert_eq!((t.met, &t.value), (Some(true), &Value::uint(60)));
    assert!(t.detail.contains("60 pages (round 2)"), "{}", t.detail);
    let t = target(&c, "da_total_pages_le_1_05_guest");
    assert_eq!(t.met, Some(true));
    assert_eq!(t.value, Value::uint(GUEST + 113));
    // 1.05 x 32768 = 34406.4, written exactly.
    assert_eq!(t.limit, Value::Num("34406.4".into()));
    let c2 = cmp(&[("d", aware())], Some(100));
    assert_eq!(
        target(&c2, "da_total_pages_le_1_05_guest").limit,
        Value::Num("105".into())
    );
    let t = target(&c, "da_downtime_le_0_1_stock");
    assert_eq!(t.met, Some(true));
    assert_eq!(
        (t.value.as_f64(), t.limit.as_f64()),
        (Some(1500.0), Some(2000.0))
    );
    let t = target(&c, "pa_total_pages_within_5pct_of_baseline");
    assert_eq!(t.met, Some(true));
    assert!(t.value.as_f64().is_some_and(|v| v < 0.001));
    // Dependency-aware sends far fewer pages than the baseline: a figure,
    // not an error.
    let t = target(&c, "da_total_pages_within_5pct_of_baseline");
    assert_eq!(t.met, Some(false));
    assert!(t.value.as_f64().is_some_and(|v| v > 0.4));
    let md = markdown(&c);
    assert!(
        md.contains("- `da_later_rounds_le_100` (set for the mmuncher guest) [aware]: **met**: largest round after the first: 60 pages (round 2), limit 100"),
        "{md}"
    );
    assert!(md.contains("- `da_downtime_le_0_1_stock` (set for the mmuncher guest) [aware vs xl]: **met**: downtime 1500 ms, limit 2000.0 ms"), "{md}");
    assert!(
        md.contains("`da_total_pages_within_5pct_of_baseline` (set for the http-download guest) [aware vs base]: **NOT met**"),
        "{md}"
    );
}

#[test]
fn targets_not_met_and_their_edges() {
    // Each limit overstepped by one, alone: 101 pages in a later round;
    // one page more than 1.05 x guest in all; downtime a tenth of
    // stock's plus 1 ms.
    let verdicts = |pages: &[u64], downtime: &str| -> Vec<Option<bool>> {
        let c = cmp(&[("xl", stock()), ("d", aware_with(pages, downtime))], None);
        [
            "da_later_rounds_le_100",
            "da_total_pages_le_1_05_guest",
            "da_downtime_le_0_1_stock",
        ]
        .iter()
        .map(|k| target(&c, k).met)
        .collect()
    };
    let t = Some(true);
    let f = Some(false);
    let limit_total = GUEST * 105 / 100; // 34406, under 1.05 x 32768 = 34406.4
    assert_eq!(verdicts(&[GUEST, 101, 5], "1"), [f, t, t]);
    assert_eq!(verdicts(&[limit_total + 1 - 10, 10], "1"), [t, f, t]);
    assert_eq!(verdicts(&[GUEST, 10], "2001"), [t, t, f]);
    // Exactly at each limit: met.
    assert_eq!(verdicts(&[limit_total - 100, 100], "2000"), [t, t, t]);
    let c = cmp(
        &[("xl", stock()), ("d", aware_with(&[GUEST, 101, 5], "2001"))],
        None,
    );
    let md = markdown(&c);
    assert!(md.contains("`da_later_rounds_le_100` (set for the mmuncher guest) [d]: **NOT met**: largest round after the first: 101 pages (round 2), limit 100"), "{md}");
    assert!(md.contains("`da_downtime_le_0_1_stock` (set for the mmuncher guest) [d vs xl]: **NOT met**: downtime 2001 ms, limit 2000.0 ms"), "{md}");
    // --guest-pages wins over the stock report's round 1.
    let c = cmp(&[("xl", stock()), ("d", aware())], Some(GUEST / 2));
    assert_eq!(c.guest_pages, Some((GUEST / 2, "--guest-pages".into())));
    assert_eq!(target(&c, "da_total_pages_le_1_05_guest").met, Some(false));
    // 5% of the baseline: just inside and just outside.
    let b: u64 = BASE.iter().sum();
    let near = |extra: u64| {
        let mut p = PAPER.to_vec();
        let sum: u64 = p.iter().sum();
        p[1] = p[1] + b + extra - sum;
        rep(
            "depmig",
            &p,
            "1",
            Some(&depmig_obj("paper-analysis", &p, &p, &[0; 6], 0)),
        )
    };
    let inside = cmp(&[("b", base()), ("p", near(b / 20))], None);
    assert_eq!(
        target(&inside, "pa_total_pages_within_5pct_of_baseline").met,
        Some(true)
    );
    let outside = cmp(&[("b", base()), ("p", near(b / 20 + 1))], None);
    assert_eq!(
        target(&outside, "pa_total_pages_within_5pct_of_baseline").met,
        Some(false)
    );
}

#[test]
fn targets_without_their_references_say_so() {
    // No stock report: no downtime reference, no guest size.
    let c = cmp(&[("d", aware())], None);
    let t = target(&c, "da_downtime_le_0_1_stock");
    assert_eq!(t.met, None);
    assert!(t.detail.contains("no stock"), "{}", t.detail);
    let t = target(&c, "da_total_pages_le_1_05_guest");
    assert_eq!(t.met, None);
    assert!(t.detail.contains("--guest-pages"), "{}", t.detail);
    assert_eq!(target(&c, "da_later_rounds_le_100").met, Some(true));
    let t = target(&c, "da_total_pages_within_5pct_of_baseline");
    assert!(t.met.is_none() && t.detail.contains("no depmig baseline"));
    let t = target(&c, "pa_total_pages_within_5pct_of_baseline");
    assert!(t.met.is_none() && t.detail.contains("no paper-analysis"));
    // With --guest-pages the size target is evaluated after all.
    let c = cmp(&[("d", aware())], Some(GUEST));
    assert_eq!(target(&c, "da_total_pages_le_1_05_guest").met, Some(true));
    // Downtime missing on either side.
    let no_dt = rep("xl-migrate", &STOCK, "null", None);
    let c = cmp(&[("xl", no_dt), ("d", aware())], None);
    let t = target(&c, "da_downtime_le_0_1_stock");
    assert!(t.met.is_none() && t.detail.contains("`xl` reports no downtime"));
    // No dependency-aware report: its targets are there, not evaluated.
    let c = cmp(&[("xl", stock())], None);
    assert_eq!(c.targets.len(), 15);
    assert!(c.targets.iter().all(|t| t.met.is_none()));
    assert!(markdown(&c).contains("**not evaluated**: no dependency-aware depmig report"));
    // A single round: nothing after the first to exceed the limit.
    let c = cmp(&[("d", aware_with(&[GUEST], "1"))], None);
    let t = target(&c, "da_later_rounds_le_100");
    assert_eq!((t.met, &t.value), (Some(true), &Value::Null));
}

#[test]
fn several_reports_of_a_kind() {
    let c = cmp(
        &[
            ("xl1", stock()),
            ("xl2", rep("xl-migrate", &STOCK, "10", None)),
            ("d1", aware()),
            ("d2", aware_with(&[GUEST, 500], "100")),
        ],
        None,
    );
    assert_eq!(target(&c, "da_later_rounds_le_100").met, Some(true));
    let t = target(&c, "da_later_rounds_le_100#2");
    assert_eq!((t.met, t.subject.as_deref()), (Some(false), Some("d2")));
    // The first stock report is the reference, and a note says so.
    let t = target(&c, "da_downtime_le_0_1_stock#2");
    assert_eq!((t.met, t.reference.as_deref()), (Some(true), Some("xl1")));
    assert!(c
        .notes
        .iter()
        .any(|n| n.contains("2 stock") && n.contains("`xl1`")));
    let keys: Vec<&str> = c.targets.iter().map(|t| t.key.as_str()).collect();
    assert!(keys.contains(&"da_total_pages_within_5pct_of_baseline#2"));
}

#[test]
fn json_output_is_written_exactly() {
    let mut set = full_set();
    set.push(("paper census", paper_with_census(&[1, 3])));
    let c = cmp(&set, None);
    assert_eq!(
        to_json(&c).to_string(),
        include_str!("../../tests/data/comparison.json").trim_end()
    );
}

#[test]
fn json_output_round_trips_with_stable_keys() {
    let c = cmp(&full_set(), None);
    let text = to_json(&c).to_string();
    let v = json::parse(&text).unwrap();
    assert_eq!(v.get("schema").and_then(Value::as_str), Some(SCHEMA));
    assert_eq!(v.get("guest_pages").and_then(Value::as_u64), Some(GUEST));
    let t = v.get("targets").unwrap();
    assert_eq!(
        t.get("da_later_rounds_le_100").and_then(|t| t.get("met")),
        Some(&Value::Bool(true))
    );
    assert_eq!(
        t.get("da_total_pages_within_5pct_of_baseline")
            .and_then(|t| t.get("met")),
        Some(&Value::Bool(false))
    );
    let dt = t.get("da_downtime_le_0_1_stock").unwrap();
    assert_eq!(dt.get("value").and_then(Value::as_u64), Some(1500));
    assert_eq!(dt.get("limit").and_then(Value::as_f64), Some(2000.0));
    assert_eq!(dt.get("reference").and_then(Value::as_str), Some("xl"));
    // "met" comes first, so a shell can find a verdict with one grep.
    assert!(text.contains("\"da_later_rounds_le_100\":{\"met\":true,"));
    let reports = v.get("reports").and_then(Value::as_array).unwrap();
    let roles: Vec<&str> = reports
        .iter()
        .filter_map(|r| r.get("role").and_then(Value::as_str))
        .collect();
    assert_eq!(
        roles,
        [
            "stock",
            "depmig-baseline",
            "depmig-paper-analysis",
            "depmig-dependency-aware"
        ]
    );
    let aware = &reports[3];
    assert_eq!(aware.get("frozen_groups").and_then(Value::as_u64), Some(1));
    assert_eq!(
        aware.get("skipped_free_pages").and_then(Value::as_u64),
        Some(120)
    );
    let cols = v.get("columns").and_then(Value::as_array).unwrap();
    assert_eq!(cols.len(), 5);
    assert_eq!(
        cols[3].get("measure").and_then(Value::as_str),
        Some("dirty_tainted")
    );
    assert_eq!(cols[3].get("report").and_then(Value::as_str), Some("paper"));
}

#[test]
fn run_writes_every_output() {
    let mut mem = Mem::default();
    mem.files.insert("s.json".into(), stock().into_bytes());
    mem.files.insert("a.json".into(), aware().into_bytes());
    let o = CompareOptions {
        title: Some("mmuncher, 128 MiB".into()),
        svg: Some("o.svg".into()),
        markdown: Some("o.md".into()),
        json: Some("o.json".into()),
        ..opts(&[("stock", "s.json"), ("aware", "a.json")])
    };
    let mut out = Vec::new();
    run(&o, &mut mem, &mut out).unwrap();
    assert!(out.starts_with(b"# mmuncher, 128 MiB\n"));
    assert_eq!(mem.written.get(Path::new("o.md")), Some(&out));
    let j = String::from_utf8(mem.written[Path::new("o.json")].clone()).unwrap();
    assert!(json::parse(&j).is_ok());
    let svg = String::from_utf8(mem.written[Path::new("o.svg")].clone()).unwrap();
    assert_eq!(
        check_xml(&svg)
            .unwrap()
            .iter()
            .filter(|(n, _)| n == "polyline")
            .count(),
        2
    );
    // A write that fails is an error naming the file.
    mem.refuse_writes = true;
    match run(&o, &mut mem, &mut Vec::new()) {
        Err(e @ CompareError::Write { .. }) => assert!(e.to_string().contains("o.md")),
        other => panic!("{other:?}"),
    }
}

/// Runs a comparison of a good stock report and `text`; the error text.
fn reject(text: Vec<u8>) -> String {
    let mut mem = Mem::default();
    mem.files.insert("s.json".into(), stock().into_bytes());
    mem.files.insert("bad.json".into(), text);
    let o = opts(&[("s", "s.json"), ("bad", "bad.json")]);
    match run(&o, &mut mem, &mut Vec::new()) {
        Err(e) => {
            let msg = e.to_string();
            assert!(msg.starts_with("bad.json: "), "{msg}");
            msg
        }
        Ok(_) => panic!("accepted"),
    }
}

#[test]
fn malformed_reports_are_errors_naming_file_and_field() {
    let no_file = {
        let mut mem = Mem::default();
        match build(&opts(&[("x", "missing.json")]), &mut mem) {
            Err(e @ CompareError::Read { .. }) => e.to_string(),
            other => panic!("{other:?}"),
        }
    };
    assert!(no_file.contains("missing.json") && no_file.contains("os error 2"));
    assert!(reject(b"{".to_vec()).contains("not JSON"));
    assert!(reject(vec![0xff, 0xfe]).contains("not UTF-8"));
    assert!(reject(vec![b' '; json::MAX_INPUT + 1]).contains("larger than"));
    let good = aware();
    let edit = |from: &str, to: &str| {
        assert!(good.contains(from), "{from}");
        reject(good.replacen(from, to, 1).into_bytes())
    };
    let m = edit("\"per_round_pages\":[", "\"per_round_pagez\":[");
    assert!(m.contains("\"per_round_pages\""), "{m}");
    let m = edit("\"per_round_dirty\":[32768,", "\"per_round_dirty\":[");
    assert!(
        m.contains("depmig.per_round_dirty") && m.contains("3 entries for 4"),
        "{m}"
    );
    let m = edit(
        "\"per_round_skipped_free\":[",
        "\"per_round_skipped_free\":[\"x\",",
    );
    assert!(m.contains("depmig.per_round_skipped_free"), "{m}");
    let m = edit("\"frozen_groups\":1", "\"frozen_groups\":true");
    assert!(m.contains("depmig.frozen_groups"), "{m}");
    let m = edit("\"downtime_ms\":1500", "\"downtime_ms\":1e400");
    assert!(m.contains("\"downtime_ms\"") && m.contains("finite"), "{m}");
    let m = edit("\"total_time_ms\":1234", "\"total_time_ms\":{}");
    assert!(m.contains("\"total_time_ms\""), "{m}");
    let m = edit("\"rounds\":4", "\"rounds\":5");
    assert!(m.contains("per_round_pages"), "{m}");
    // A paper-analysis report must carry both per-round measures.
    let p = paper();
    let m = reject(
        p.replacen("\"per_round_dirty_tainted\"", "\"per_round_x\"", 1)
            .into_bytes(),
    );
    assert!(m.contains("depmig.per_round_dirty_tainted"), "{m}");
    // Huge arrays are refused by size or by their round count, not read.
    let huge = format!(
        "{{\"schema\":\"{}\",\"migrator\":\"xl-migrate\",\"page_size\":4096,\"rounds\":1,\
         \"final_round\":1,\"per_round_pages\":[{}],\"per_round\":[],\"total_pages\":0}}",
        report::SCHEMA,
        vec!["0"; 500_000].join(",")
    );
    let m = reject(huge.into_bytes());
    assert!(m.contains("per_round_pages"), "{m}");
}

#[test]
fn never_panics_on_damaged_reports() {
    // Every truncation and a byte flipped at every position of a valid
    // report: an error or a comparison, never a panic.
    let text = aware();
    let bytes = text.as_bytes();
    for end in 0..bytes.len() {
        let mut mem = Mem::default();
        mem.files.insert("a".into(), bytes[..end].to_vec());
        assert!(build(&opts(&[("a", "a")]), &mut mem).is_err());
    }
    for i in 0..bytes.len() {
        for b in [b'0', b'9', b'-', b'"', b'{', b']', b'n', b' '] {
            let mut v = bytes.to_vec();
            v[i] = b;
            let mut mem = Mem::default();
            mem.files.insert("a".into(), v);
            mem.files.insert("s".into(), stock().into_bytes());
            if let Ok(c) = build(&opts(&[("s", "s"), ("a", "a")]), &mut mem) {
                let _ = markdown(&c);
                let _ = to_json(&c);
                check_xml(&plot(&c)).unwrap();
            }
        }
    }
}

/// `text` with the wire targets' figures: `stream_bytes`, the guest
/// stopped until running (`downtime_xl_list_ms` in a stock report,
/// `cli.guest_downtime_ms` in a depmig one) and `total_time_ms`; `None`
/// leaves the figure out.
fn wire(text: &str, bytes: Option<u64>, guest_ms: Option<u64>, total_ms: Option<u64>) -> String {
    let mut figures = String::new();
    if let Some(b) = bytes {
        figures.push_str(&format!("\"stream_bytes\":{b},"));
    }
    if let Some(t) = total_ms {
        figures.push_str(&format!("\"total_time_ms\":{t},"));
    }
    assert!(text.contains("\"total_time_ms\":1234,"));
    let mut out = text.replacen("\"total_time_ms\":1234,", &figures, 1);
    if let Some(g) = guest_ms {
        if out.contains("\"depmig\":") {
            let end = out.rfind('}').expect("an object");
            out = format!(
                "{},\"cli\":{{\"outcome\":\"migrated\",\"guest_downtime_ms\":{g}}}}}",
                &out[..end]
            );
        } else {
            out = out.replacen(
                "\"downtime_method\"",
                &format!("\"downtime_xl_list_ms\":{g},\"downtime_method\""),
                1,
            );
        }
    }
    out
}

/// A stock report of 400 MB on the wire, 20 s of the guest stopped and
/// 80 s in all: the wire targets' limits are 100 MB, 600 ms and 20 s.
fn stock_wire() -> String {
    wire(&stock(), Some(400_000_000), Some(20_000), Some(80_000))
}

const WIRE_KEYS: [&str; 3] = [
    "da_bytes_le_0_25_stock",
    "da_guest_downtime_le_0_03_stock",
    "da_total_time_le_0_25_stock",
];

#[test]
fn wire_targets_met_and_not_met_at_their_limits() {
    let verdicts = |bytes: u64, guest: u64, total: u64| -> Vec<Option<bool>> {
        let d = wire(&aware(), Some(bytes), Some(guest), Some(total));
        let c = cmp(&[("xl", stock_wire()), ("d", d)], None);
        WIRE_KEYS.iter().map(|k| target(&c, k).met).collect()
    };
    let (t, f) = (Some(true), Some(false));
    // Exactly at each limit: met; one over, alone: not met.
    assert_eq!(verdicts(100_000_000, 600, 20_000), [t, t, t]);
    assert_eq!(verdicts(100_000_001, 600, 20_000), [f, t, t]);
    assert_eq!(verdicts(100_000_000, 601, 20_000), [t, f, t]);
    assert_eq!(verdicts(100_000_000, 600, 20_001), [t, t, f]);

    let d = wire(&aware(), Some(30_000_000), Some(900), Some(20_000));
    let c = cmp(&[("xl", stock_wire()), ("d", d)], None);
    let b = target(&c, "da_bytes_le_0_25_stock");
    assert_eq!(
        (b.met, &b.value, &b.limit),
        (
            Some(true),
            &Value::Num("30000000".into()),
            &Value::Num("100000000".into())
        )
    );
    assert_eq!(
        b.extra,
        [
            (
                "reference_stream_bytes".to_string(),
                Value::Num("400000000".into())
            ),
            ("ratio".to_string(), Value::Num("0.075".into())),
        ]
    );
    assert_eq!(
        (b.subject.as_deref(), b.reference.as_deref()),
        (Some("d"), Some("xl"))
    );
    let md = markdown(&c);
    assert!(
        md.contains(
            "- `da_bytes_le_0_25_stock` (set for the mmuncher guest) [d vs xl]: **met**: \
             bytes on the wire 30000000 bytes (`stream_bytes`), limit 100000000 bytes \
             (a quarter of `xl`'s 400000000 bytes, `stream_bytes`); 0.075 x stock's\n"
        ),
        "{md}"
    );
    // The downtime compared is the guest stopped until running, each side's
    // field named.
    assert!(
        md.contains(
            "- `da_guest_downtime_le_0_03_stock` (set for the mmuncher guest) [d vs xl]: \
             **NOT met**: guest stopped until running 900 ms (`cli.guest_downtime_ms`), \
             limit 600 ms (3% of `xl`'s 20000 ms, `downtime_xl_list_ms`); 0.045 x stock's\n"
        ),
        "{md}"
    );
    assert!(
        md.contains(
            "- `da_total_time_le_0_25_stock` (set for the mmuncher guest) [d vs xl]: **met**: \
             total time 20000 ms (`total_time_ms`), limit 20000 ms \
             (a quarter of `xl`'s 80000 ms, `total_time_ms`); 0.250 x stock's\n"
        ),
        "{md}"
    );
    // The report's own downtime (1500 ms) is not what the 3% target uses.
    assert_eq!(target(&c, "da_downtime_le_0_1_stock").met, Some(true));
    // The JSON output: the verdict first, then the figures.
    let j = to_json(&c);
    assert!(
        j.contains(
            "\"da_guest_downtime_le_0_03_stock\":{\"met\":false,\"value\":900,\"limit\":600,\
             \"subject\":\"d\",\"reference\":\"xl\",\"set_for\":\"mmuncher\",\
             \"reference_guest_downtime_ms\":20000,\"ratio\":0.045,"
        ),
        "{j}"
    );
}

#[test]
fn wire_targets_are_evaluated_for_every_depmig_mode() {
    let set = [
        ("xl", stock_wire()),
        (
            "base",
            wire(&base(), Some(390_000_000), Some(19_000), Some(79_000)),
        ),
        (
            "paper",
            wire(&paper(), Some(396_000_000), Some(19_500), Some(81_000)),
        ),
        (
            "aware",
            wire(&aware(), Some(20_000_000), Some(300), Some(9_000)),
        ),
        (
            "aware2",
            wire(&aware(), Some(120_000_000), Some(300), Some(9_000)),
        ),
    ];
    let c = cmp(&set, None);
    let verdict = |k: &str| {
        let t = target(&c, k);
        (t.met, t.subject.clone().unwrap_or_default())
    };
    let no = |who: &str| (Some(false), who.to_string());
    let yes = |who: &str| (Some(true), who.to_string());
    for (prefix, who) in [("base", "base"), ("pa", "paper")] {
        for stem in [
            "bytes_le_0_25_stock",
            "guest_downtime_le_0_03_stock",
            "total_time_le_0_25_stock",
        ] {
            assert_eq!(verdict(&format!("{prefix}_{stem}")), no(who));
        }
    }
    for k in WIRE_KEYS {
        assert_eq!(verdict(k), yes("aware"));
    }
    // A second report of a mode gets `#2`.
    assert_eq!(verdict("da_bytes_le_0_25_stock#2"), no("aware2"));
    assert_eq!(verdict("da_total_time_le_0_25_stock#2"), yes("aware2"));
    assert!(target(&c, "pa_bytes_le_0_25_stock")
        .detail
        .contains("0.990 x stock's"));
}

#[test]
fn wire_targets_without_their_figures_say_so() {
    let d = || wire(&aware(), Some(1), Some(1), Some(1));
    // No stock report: none of the nine evaluated.
    let c = cmp(&[("d", d()), ("b", base())], None);
    for k in WIRE_KEYS {
        let t = target(&c, k);
        assert!(
            t.met.is_none() && t.detail == "no stock `xl migrate` report in the set",
            "{t:?}"
        );
    }
    let t = target(&c, "base_bytes_le_0_25_stock");
    assert!(t.met.is_none() && t.detail.contains("no stock"), "{t:?}");
    // No report of a mode: its three are there, not evaluated.
    let t = target(&c, "pa_guest_downtime_le_0_03_stock");
    assert_eq!(
        (t.met, t.detail.as_str(), t.subject.as_deref()),
        (None, "no paper-analysis depmig report in the set", None)
    );
    // A figure missing on the subject's side...
    let c = cmp(
        &[
            ("xl", stock_wire()),
            ("d", wire(&aware(), None, None, None)),
        ],
        None,
    );
    let t = target(&c, "da_bytes_le_0_25_stock");
    assert_eq!(
        (t.met, t.detail.as_str(), t.reference.as_deref()),
        (
            None,
            "`d` reports no bytes on the wire (`stream_bytes`)",
            Some("xl")
        )
    );
    let t = target(&c, "da_guest_downtime_le_0_03_stock");
    assert_eq!(
        t.detail,
        "`d` reports no guest stopped until running (`cli.guest_downtime_ms`)"
    );
    assert_eq!(
        target(&c, "da_total_time_le_0_25_stock").detail,
        "`d` reports no total time (`total_time_ms`)"
    );
    // ...and on stock's.
    let c = cmp(&[("xl", stock()), ("d", d())], None);
    assert_eq!(
        target(&c, "da_bytes_le_0_25_stock").detail,
        "`xl` reports no bytes on the wire (`stream_bytes`)"
    );
    assert_eq!(
        target(&c, "da_guest_downtime_le_0_03_stock").detail,
        "`xl` reports no guest stopped until running (`downtime_xl_list_ms`)"
    );
    assert!(markdown(&c).contains(
        "- `da_bytes_le_0_25_stock` (set for the mmuncher guest) [d vs xl]: **not evaluated**: \
         `xl` reports no bytes on the wire (`stream_bytes`)\n"
    ));
    let j = to_json(&c);
    assert!(
        j.contains("\"da_bytes_le_0_25_stock\":{\"met\":null,\"value\":null,\"limit\":null,"),
        "{j}"
    );
    // Stock's total time 0: the inequality still decides; no ratio.
    let c = cmp(
        &[
            ("xl", wire(&stock(), None, None, Some(0))),
            ("d", wire(&aware(), None, None, Some(0))),
        ],
        None,
    );
    let t = target(&c, "da_total_time_le_0_25_stock");
    assert_eq!(t.met, Some(true));
    assert!(!t.detail.contains("x stock's"), "{}", t.detail);
    assert_eq!(t.extra.get(1), Some(&("ratio".to_string(), Value::Null)));
}

/// `text` (a depmig report) with a `depmig.pages` object of these
/// per-round raw bytes and bytes saved.
fn with_pages(text: &str, codec: &str, raw: &[u64], saved: &[u64]) -> String {
    let from = "\"policy\":\"xen-4.x\",";
    assert!(text.contains(from));
    text.replacen(
        from,
        &format!(
            "{from}\"pages\":{{\"codec\":\"{codec}\",\"per_round_raw_bytes\":{},\
             \"per_round_bytes_saved\":{}}},",
            list(raw),
            list(saved)
        ),
        1,
    )
}

/// `aware()` sending LZ4: 34370000 of 134720000 raw bytes.
fn aware_lz4() -> String {
    with_pages(
        &aware(),
        "lz4",
        &[134_250_000, 250_000, 55_000, 165_000],
        &[100_000_000, 200_000, 50_000, 100_000],
    )
}

#[test]
fn bytes_per_round_beside_pages() {
    let mut set = full_set();
    set[3].1 = aware_lz4();
    let c = cmp(&set, None);
    let md = markdown(&c);
    // One column per report, whatever its pages columns; the sample
    // reports' rounds are 4096 bytes a page.
    assert!(
        md.contains(
            "## Bytes per round\n\n\
             | round | xl | base | paper | aware |\n\
             | ---: | ---: | ---: | ---: | ---: |\n\
             | 1 | 134217728 | 134217728 | 134217728 | 134217728 |\n\
             | 2 | 26214400 | 26218496 | 26210304 | 245760 |\n"
        ),
        "{md}"
    );
    assert!(
        md.contains("| 5 | 26234880 | 26222592 | 26214400 | |\n"),
        "{md}"
    );
    // The pages table is as it was, and comes first.
    let pages = md.find("## Pages per round").unwrap();
    assert!(pages < md.find("## Bytes per round").unwrap());
    assert!(
        md.contains("| 2 | 6400 | 6401 | 6399 | 25 | 60 |\n"),
        "{md}"
    );
    // The saving of each depmig report.
    assert!(
        md.contains(
            "Page records sent, of the bytes they would have taken as Xen's PAGE_DATA \
             (`depmig.pages`):\n\
             - base: not in the report\n\
             - paper: not in the report\n\
             - aware: 0.255 of raw (lz4): 34370000 of 134720000 bytes, 100350000 saved\n"
        ),
        "{md}"
    );
    // The JSON: bytes per round and the page records in each report.
    let v = json::parse(&to_json(&c)).unwrap();
    let reports = v.get("reports").and_then(Value::as_array).unwrap();
    let bytes: Vec<u64> = reports[3]
        .get("per_round_bytes")
        .and_then(Value::as_array)
        .unwrap()
        .iter()
        .filter_map(Value::as_u64)
        .collect();
    assert_eq!(bytes, AWARE.map(|p| p * 4096));
    let p = reports[3].get("page_records").unwrap();
    assert_eq!(p.get("codec").and_then(Value::as_str), Some("lz4"));
    assert_eq!(
        p.get("raw_bytes").and_then(Value::as_u64),
        Some(134_720_000)
    );
    assert_eq!(
        p.get("sent_bytes").and_then(Value::as_u64),
        Some(34_370_000)
    );
    assert_eq!(
        p.get("saved_bytes").and_then(Value::as_u64),
        Some(100_350_000)
    );
    assert_eq!(p.get("sent_over_raw").and_then(Value::as_f64), Some(0.2551));
    assert_eq!(
        p.get("per_round_bytes_saved")
            .and_then(Value::as_array)
            .map(<[Value]>::len),
        Some(4)
    );
    assert_eq!(reports[1].get("page_records"), Some(&Value::Null));
    // The keys there were are where they were.
    assert_eq!(
        reports[3].get("total_pages").and_then(Value::as_u64),
        Some(AWARE.iter().sum())
    );
}

#[test]
fn a_stock_report_without_bytes_per_round() {
    // The stock report's rounds give no bytes: its cells are "-", and the
    // table says so.
    let mut xl = stock();
    for p in STOCK {
        xl = xl.replacen(&format!("\"bytes\":{},", p * 4096), "\"bytes\":null,", 1);
    }
    assert!(!xl.contains("\"bytes\":1") && !xl.contains("\"bytes\":2"));
    let c = cmp(&[("xl", xl.clone()), ("aware", aware())], None);
    let md = markdown(&c);
    assert!(
        md.contains(
            "| round | xl | aware |\n\
             | ---: | ---: | ---: |\n\
             | 1 | - | 134217728 |\n\
             | 2 | - | 245760 |\n"
        ),
        "{md}"
    );
    assert!(md.contains("| 5 | - | |\n"), "{md}");
    assert!(
        md.contains("`xl` gives no bytes per round: its cells are -.\n"),
        "{md}"
    );
    let j = to_json(&c);
    assert!(
        j.contains("\"per_round_bytes\":[null,null,null,null,null,null]"),
        "{j}"
    );
    // A depmig report without `depmig.pages` says so; a stock one is not
    // listed (it sends pages whole).
    assert!(md.contains("- aware: not in the report\n"), "{md}");
    assert!(!md.contains("- xl: not in the report"), "{md}");
    // No report with bytes per round: no table, one line.
    let c = cmp(&[("xl", xl)], None);
    let md = markdown(&c);
    assert!(
        md.contains("## Bytes per round\n\nNo report gives bytes per round.\n"),
        "{md}"
    );
    assert!(!md.contains("Page records sent"), "{md}");
}

#[test]
fn page_figures_that_do_not_hold_together_are_refused() {
    let refuse = |text: String| match load("a", "a.json", &text) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("accepted"),
    };
    let m = refuse(with_pages(&aware(), "lz4", &[1, 2, 3], &[0, 0, 0]));
    assert!(
        m.contains("\"depmig.pages.per_round_raw_bytes\" has 3 entries for 4 rounds"),
        "{m}"
    );
    let m = refuse(with_pages(&aware(), "lz4", &[1, 2, 3, 4], &[0, 3, 0, 0]));
    assert!(
        m.contains("\"depmig.pages.per_round_bytes_saved\", round 2: 3 bytes saved of 2"),
        "{m}"
    );
    // No page records at all: no ratio.
    let c = cmp(
        &[("d", with_pages(&aware(), "none", &[0; 4], &[0; 4]))],
        None,
    );
    assert!(
        markdown(&c).contains("- d: no page records (none)\n"),
        "{}",
        markdown(&c)
    );
}
