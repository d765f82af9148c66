//! Reports read, checked and finished, and the refusals with their
//! reasons.

use super::*;

/// A valid report with these pages per round.
pub(crate) fn sample(migrator: &str, pages: &[u64]) -> String {
    let per_round: Vec<String> = pages
        .iter()
        .enumerate()
        .map(|(i, p)| {
            format!(
                "{{\"round\":{},\"pages\":{p},\"pfns\":{p},\"bytes\":{},\"records\":1,\"start_ms\":{},\"duration_ms\":10}}",
                i + 1,
                p * 4096,
                i * 10
            )
        })
        .collect();
    let list: Vec<String> = pages.iter().map(u64::to_string).collect();
    format!(
        "{{\"schema\":\"{SCHEMA}\",\"migrator\":\"{migrator}\",\"scenario\":null,\"workload\":null,\
         \"link_rate_bytes_per_s\":5000000,\"page_size\":4096,\"rounds\":{},\"final_round\":{},\
         \"per_round_pages\":[{}],\"per_round\":[{}],\"total_pages\":{},\"total_time_ms\":1234,\
         \"downtime_ms\":56,\"downtime_method\":\"appliance\"}}",
        pages.len(),
        pages.len(),
        list.join(","),
        per_round.join(","),
        pages.iter().sum::<u64>()
    )
}

#[test]
fn accepts_a_valid_report() {
    let (_, s) = parse_report(&sample("depmig", &[131088, 1505, 40])).unwrap();
    assert_eq!(s.migrator, "depmig");
    assert_eq!(s.per_round_pages, vec![131088, 1505, 40]);
    assert_eq!(s.total_pages, 132633);
    assert_eq!(s.final_round, Some(3));
}

#[test]
fn a_figure_beyond_u64_reads_back_from_the_text_it_writes() {
    // An integer too large for u64 is kept as a float; the float written
    // back must read as the same float (found by the report fuzz target).
    let text = sample("depmig", &[10, 2]).replace(
        "\"total_time_ms\":1234",
        "\"total_time_ms\":1234,\"page_bytes\":1333333333333333333333333334348800",
    );
    let (r, s) = read_any(&text).unwrap();
    let (r2, s2) = read_any(&r.to_string()).unwrap();
    assert_eq!(r, r2);
    assert_eq!(s, s2);
}

#[test]
fn a_number_out_of_range_is_refused_wherever_it_stands() {
    // Also in a field the reader does not use, as the value reader does
    // (found by the report fuzz target).
    let text = sample("depmig", &[10, 2]).replace(
        "\"total_time_ms\":1234",
        "\"total_time_ms\":1234,\"unknown_field\":18000000e6550",
    );
    assert!(matches!(
        read_any(&text),
        Err(ReportError::Json(JsonError::Malformed(_)))
    ));
    assert!(parse_any_report(&text).is_err());
}

#[test]
fn accepts_the_rigs_baseline_report_if_present() {
    // The stock baseline's own output, when a rig run left one behind.
    let p = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../out/rig/baseline-http/files/baseline-http.json"
    );
    if let Ok(text) = std::fs::read_to_string(p) {
        let (_, s) = parse_report(&text).unwrap();
        assert_eq!(s.migrator, "xl-migrate");
        assert!(!s.per_round_pages.is_empty());
    }
}

fn reject(text: &str) -> ReportError {
    match parse_report(text) {
        Err(e) => e,
        Ok(_) => panic!("accepted: {text}"),
    }
}

#[test]
fn rejects_reports_that_do_not_hold_together() {
    let good = sample("depmig", &[100, 20, 5]);
    let edit = |from: &str, to: &str| {
        assert!(good.contains(from), "{from} not in the sample");
        good.replacen(from, to, 1)
    };
    assert!(matches!(reject("{"), ReportError::Json(_)));
    assert_eq!(reject("[1]"), ReportError::NotObject);
    assert_eq!(reject("{}"), ReportError::Schema(None));
    assert_eq!(
        reject(&edit(SCHEMA, "depmig-migration-report/2")),
        ReportError::Schema(Some("depmig-migration-report/2".into()))
    );
    assert_eq!(
        reject(&edit("\"migrator\":\"depmig\",", "")),
        ReportError::Missing("migrator")
    );
    assert!(matches!(
        reject(&edit("\"migrator\":\"depmig\"", "\"migrator\":7")),
        ReportError::Invalid(_)
    ));
    assert!(matches!(
        reject(&edit("\"rounds\":3", "\"rounds\":4")),
        ReportError::Invalid(_)
    ));
    assert!(matches!(
        reject(&edit("\"rounds\":3", "\"rounds\":0")),
        ReportError::Invalid(_)
    ));
    assert!(matches!(
        reject(&edit("\"total_pages\":125", "\"total_pages\":126")),
        ReportError::Invalid(_)
    ));
    assert!(matches!(
        reject(&edit("\"final_round\":3", "\"final_round\":9")),
        ReportError::Invalid(_)
    ));
    assert!(matches!(
        reject(&edit("[100,20,5]", "[100,20,-5]")),
        ReportError::Invalid(_)
    ));
    assert!(matches!(
        reject(&edit("{\"round\":2,", "{\"round\":7,")),
        ReportError::Invalid(_)
    ));
    assert!(matches!(
        reject(&edit(
            "{\"round\":2,\"pages\":20",
            "{\"round\":2,\"pages\":21"
        )),
        ReportError::Invalid(_)
    ));
    assert!(matches!(
        reject(&edit("\"page_size\":4096", "\"page_size\":4095")),
        ReportError::Invalid(_)
    ));
    assert!(matches!(
        reject(&edit("\"downtime_ms\":56", "\"downtime_ms\":\"56\"")),
        ReportError::Invalid(_)
    ));
    assert!(matches!(
        reject(&edit("\"downtime_ms\":56", "\"downtime_ms\":-1")),
        ReportError::Invalid(_)
    ));
    assert_eq!(
        reject(&edit("\"final_round\":3,", "")),
        ReportError::Missing("final_round")
    );
    // Null where the schema allows it.
    assert!(parse_report(&edit("\"final_round\":3", "\"final_round\":null")).is_ok());
    assert!(parse_report(&edit("\"downtime_ms\":56", "\"downtime_ms\":null")).is_ok());
}

/// A report of a migration that failed before its first round, in the
/// shape the source appliance writes it (shortened).
const NO_ROUND: &str = concat!(
    r#"{"schema":"depmig-migration-report/1","migrator":"depmig","page_size":4096,"#,
    r#""rounds":0,"final_round":null,"per_round_pages":[],"per_round":[],"total_pages":0,"#,
    r#""total_time_ms":null,"stream":{"complete":false},"#,
    r#""depmig":{"result":"failed","per_round_dirty":[],"per_round_holes":[]}}"#
);

#[test]
fn a_report_with_no_round_is_valid_only_when_it_did_not_commit() {
    let (_, s) = parse_any_report(NO_ROUND).unwrap();
    assert_eq!(s.per_round_pages, Vec::<u64>::new());
    assert_eq!((s.total_pages, s.final_round), (0, None));
    assert_eq!(s.committed, Some(false));
    // Not for figures: comparisons and the plot's baseline refuse it.
    match parse_report(NO_ROUND) {
        Err(ReportError::Invalid(m)) => assert!(m.contains("no round completed"), "{m}"),
        other => panic!("{other:?}"),
    }
    let edit = |from: &str, to: &str| {
        assert!(NO_ROUND.contains(from), "{from} not in the report");
        NO_ROUND.replacen(from, to, 1)
    };
    let refused = |text: &str, why: &str| match parse_any_report(text) {
        Err(ReportError::Invalid(m)) => assert!(m.contains(why), "{m}\n{text}"),
        other => panic!("{other:?}\n{text}"),
    };
    // A committed migration needs a round.
    refused(
        &edit("\"result\":\"failed\"", "\"result\":\"committed\""),
        "only valid in a report of a migration that did not commit",
    );
    // Saying nothing is not saying it failed.
    let silent = edit("\"result\":\"failed\",", "");
    refused(&silent, "\"depmig.result\" says nothing");
    refused(
        &edit("\"result\":\"failed\"", "\"result\":\"\""),
        "says nothing",
    );
    refused(
        &edit("\"result\":\"failed\"", "\"result\":null"),
        "says nothing",
    );
    // The command's outcome: it decides, and it must agree.
    let with_cli = |text: &str, outcome: &str| {
        format!(
            "{},\"cli\":{{\"outcome\":{outcome}}}}}",
            text.strip_suffix('}').unwrap()
        )
    };
    let (_, s) = parse_any_report(&with_cli(&silent, "\"rolled-back\"")).unwrap();
    assert_eq!(s.committed, Some(false));
    assert!(parse_any_report(&with_cli(NO_ROUND, "\"rolled-back\"")).is_ok());
    refused(
        &with_cli(NO_ROUND, "\"migrated\""),
        "\"cli.outcome\" says committed",
    );
    refused(
        &with_cli(
            &edit("\"result\":\"failed\"", "\"result\":\"committed\""),
            "\"rolled-back\"",
        ),
        "\"depmig.result\" says committed",
    );
    refused(&with_cli(NO_ROUND, "\"maybe\""), "neither \"migrated\" nor");
    refused(
        &with_cli(NO_ROUND, "7"),
        "\"cli.outcome\" is neither a string",
    );
    refused(
        &format!("{},\"cli\":[]}}", NO_ROUND.strip_suffix('}').unwrap()),
        "\"cli\" is not an object",
    );
    refused(
        &edit("\"result\":\"failed\"", "\"result\":7"),
        "\"depmig.result\" is neither",
    );
    refused(
        &edit("\"depmig\":{", "\"depmig\":[],\"x\":{"),
        "\"depmig\" is not an object",
    );
    // Nothing per round, nothing final, nothing complete.
    refused(
        &edit("\"final_round\":null", "\"final_round\":1"),
        "no round",
    );
    refused(
        &edit("\"final_round\":null", "\"final_round\":0"),
        "no round",
    );
    refused(
        &edit("\"per_round_pages\":[]", "\"per_round_pages\":[0]"),
        "\"per_round_pages\" has 1 entries for 0 rounds",
    );
    refused(
        &edit(
            "\"per_round\":[]",
            "\"per_round\":[{\"round\":1,\"pages\":0}]",
        ),
        "\"per_round\" has 1 entries",
    );
    refused(
        &edit("\"total_pages\":0", "\"total_pages\":1"),
        "\"total_pages\" 1 is not the sum",
    );
    refused(
        &edit("\"complete\":false", "\"complete\":true"),
        "\"stream.complete\" is true",
    );
    assert!(parse_any_report(&edit("\"stream\":{\"complete\":false}", "\"stream\":null")).is_ok());
    refused(
        &edit("\"per_round_dirty\":[]", "\"per_round_dirty\":[4]"),
        "\"depmig.per_round_dirty\" is not an empty array",
    );
    refused(
        &edit("\"per_round_holes\":[]", "\"per_round_holes\":[0]"),
        "\"depmig.per_round_holes\"",
    );
    refused(
        &edit("\"per_round_holes\":[]", "\"per_round_skipped_free\":\"x\""),
        "\"depmig.per_round_skipped_free\"",
    );
    refused(
        &edit("\"rounds\":0", "\"rounds\":10001"),
        "not in 0..=10000",
    );
}

#[test]
fn a_report_with_rounds_says_whether_it_committed() {
    let base = sample("depmig", &[100, 20]);
    let add = |extra: &str| format!("{},{extra}}}", base.strip_suffix('}').unwrap());
    let committed = |text: &str| parse_report(text).map(|(_, s)| s.committed);
    // The stock baseline's report says nothing.
    assert_eq!(committed(&base), Ok(None));
    assert_eq!(
        committed(&add(r#""depmig":{"result":"committed"}"#)),
        Ok(Some(true))
    );
    assert_eq!(
        committed(&add(r#""depmig":{"result":"failed"}"#)),
        Ok(Some(false))
    );
    assert_eq!(
        committed(&add(r#""cli":{"outcome":"migrated"}"#)),
        Ok(Some(true))
    );
    // The source committed its side, dom0 still rolled back (the
    // destination failed after the ACK): the command's outcome decides.
    assert_eq!(
        committed(&add(
            r#""depmig":{"result":"committed"},"cli":{"outcome":"rolled-back"}"#
        )),
        Ok(Some(false))
    );
    // A failure after some rounds keeps its per-round figures.
    let (_, s) = parse_report(&add(r#""depmig":{"result":"failed"}"#)).unwrap();
    assert_eq!(s.per_round_pages, vec![100, 20]);
}

#[test]
fn a_report_without_figures_needs_the_commands_outcome() {
    // Alone it says nothing of the migration's end: not valid.
    assert!(matches!(
        validate(&without_figures()),
        Err(ReportError::Invalid(m)) if m.contains("did not commit")
    ));
    let cli = CliFigures {
        guest: "g".into(),
        outcome: "rolled-back".into(),
        reason: Some("source appliance: FAIL connecting to the destination".into()),
        source_result: "FAIL connecting to the destination".into(),
        figures_missing: Some("the source appliance left no report".into()),
        ..CliFigures::default()
    };
    let full = finish_report(without_figures(), &cli, Some("migrate-x"), None);
    let again = json::parse(&full.to_string()).unwrap();
    let s = validate(&again).unwrap();
    assert_eq!((s.migrator.as_str(), s.committed), ("depmig", Some(false)));
    assert!(s.per_round_pages.is_empty());
    let c = again.get("cli").unwrap();
    assert_eq!(c.get("go_unix_ms"), Some(&Value::Null));
    assert_eq!(
        c.get("reason").and_then(Value::as_str),
        Some("source appliance: FAIL connecting to the destination")
    );
    // Under a committed migration it is refused.
    let migrated = CliFigures {
        outcome: "migrated".into(),
        ..cli
    };
    assert!(validate(&finish_report(without_figures(), &migrated, None, None)).is_err());
}

#[test]
fn reads_the_appliances_figures() {
    let base = sample("depmig", &[100, 20, 5]);
    let good = format!(
        "{},\"depmig\":{{\"mode\":\"paper-analysis\",\"frozen_groups\":2,\
         \"per_round_dirty\":[110,20,5],\"per_round_dirty_tainted\":[50,3,1],\
         \"per_round_skipped_free\":null,\"census\":{{\"round\":[1,3],\"asked\":[50,1],\"user\":[10,1],\"page_tables\":[2,0],\"kernel\":[37,0],\"unreadable\":[1,0]}}}}}}",
        base.strip_suffix('}').unwrap()
    );
    let (v, s) = parse_report(&good).unwrap();
    let d = depmig_figures(&v, s.per_round_pages.len())
        .unwrap()
        .unwrap();
    assert_eq!(d.mode.as_deref(), Some("paper-analysis"));
    assert_eq!(d.frozen_groups, Some(2));
    assert_eq!(d.per_round_dirty, Some(vec![110, 20, 5]));
    assert_eq!(d.per_round_dirty_tainted, Some(vec![50, 3, 1]));
    assert_eq!(d.per_round_skipped_free, None);
    let census = d.census.expect("census");
    assert_eq!(
        census,
        vec![
            RoundCensus {
                round: 1,
                asked: 50,
                user: 10,
                page_tables: 2,
                kernel: 37,
                unreadable: 1
            },
            RoundCensus {
                round: 3,
                asked: 1,
                user: 1,
                page_tables: 0,
                kernel: 0,
                unreadable: 0
            },
        ]
    );
    // None at all: the stock baseline.
    let (v, _) = parse_report(&sample("xl-migrate", &[1, 2])).unwrap();
    assert_eq!(depmig_figures(&v, 2), Ok(None));
    // Each malformation is named.
    let bad = |from: &str, to: &str, field: &str| {
        assert!(good.contains(from), "{from}");
        // Refused by the validation (a "depmig" that is no object) or by
        // the reader of the figures.
        let got = parse_report(&good.replacen(from, to, 1))
            .and_then(|(v, s)| depmig_figures(&v, s.per_round_pages.len()));
        match got {
            Err(ReportError::Invalid(m)) => assert!(m.contains(field), "{m}"),
            other => panic!("{from} -> {to}: {other:?}"),
        }
    };
    bad("[110,20,5]", "[110,20]", "depmig.per_round_dirty");
    bad("[50,3,1]", "[50,3,1,0]", "depmig.per_round_dirty_tainted");
    bad("[50,3,1]", "[50,-3,1]", "depmig.per_round_dirty_tainted");
    bad("[110,20,5]", "\"x\"", "depmig.per_round_dirty");
    bad(
        "\"per_round_skipped_free\":null",
        "\"per_round_skipped_free\":[1,2,3.5]",
        "depmig.per_round_skipped_free",
    );
    bad(
        "\"frozen_groups\":2",
        "\"frozen_groups\":-2",
        "depmig.frozen_groups",
    );
    bad("\"mode\":\"paper-analysis\"", "\"mode\":7", "depmig.mode");
    // The census: its arrays agree, its rounds exist and ascend, its
    // classes add up to the round's dirty tainted pages.
    bad("\"user\":[10,1]", "\"user\":[10]", "depmig.census.user");
    bad("\"kernel\":[37,0],", "", "depmig.census.kernel");
    bad(
        "\"round\":[1,3]",
        "\"round\":[1,4]",
        "round 4: not a round of the 3",
    );
    bad(
        "\"round\":[1,3]",
        "\"round\":[3,1]",
        "round 1: rounds not ascending",
    );
    bad(
        "\"user\":[10,1]",
        "\"user\":[11,1]",
        "round 1: classes do not add up to 50",
    );
    bad(
        "\"asked\":[50,1],\"user\":[10,1]",
        "\"asked\":[51,1],\"user\":[11,1]",
        "round 1: 51 pages counted, the round had 50 dirty tainted",
    );
    bad(
        "\"census\":{",
        "\"census\":[],\"x\":{",
        "\"depmig.census\" is not an object",
    );
    bad(
        "\"depmig\":{\"mode\"",
        "\"depmig\":[],\"x\":{\"mode\"",
        "\"depmig\" is not an object",
    );
}

/// The source appliance's report of a two-round migration, exactly as
/// `depmig_migrate::report::build` writes it (its own test reads the
/// same file).
const APPLIANCE_TWO_ROUNDS: &str =
    include_str!("../../../../crates/migrate/tests/data/report-two-rounds.json");

/// The command's figures of a migration that went through.
fn migrated() -> CliFigures {
    CliFigures {
        guest: "g \"1\"".into(),
        source_domid: 3,
        shell_domid: 4,
        mode: "paper-analysis".into(),
        requested_mode: None,
        mode_fallback: None,
        policy: "xen-4.x".into(),
        outcome: "migrated".into(),
        reason: None,
        source_result: "PASS done".into(),
        last_round_seen: Some(2),
        figures_missing: None,
        poll_interval_ms: 500,
        go_unix_ms: Some(1_800_000_004_000),
        final_seen_unix_ms: Some(1_800_000_006_700),
        result_seen_unix_ms: Some(1_800_000_009_400),
        source_destroyed_unix_ms: Some(1_800_000_009_600),
        shell_unpaused_unix_ms: Some(1_800_000_009_900),
        destination_unpaused_unix_ms: None,
        destination_clock_offset_ms: None,
        destination_clock_uncertainty_ms: None,
    }
}

#[test]
fn the_written_report_is_the_appliances_with_the_commands_figures_exactly() {
    let (v, _) = parse_report(APPLIANCE_TWO_ROUNDS).unwrap();
    let full = finish_report(v, &migrated(), Some("migrate-x"), None).to_string();
    assert_eq!(
        full,
        include_str!("../../tests/data/report-two-rounds-finished.json").trim_end()
    );
    let cli = CliFigures {
        outcome: "rolled-back".into(),
        reason: Some("source appliance: FAIL connecting".into()),
        figures_missing: Some("the source appliance left no report".into()),
        last_round_seen: None,
        final_seen_unix_ms: None,
        shell_unpaused_unix_ms: None,
        ..migrated()
    };
    let full = finish_report(without_figures(), &cli, None, Some("mmuncher")).to_string();
    assert_eq!(
        full,
        include_str!("../../tests/data/report-without-figures.json").trim_end()
    );
}

#[test]
fn adds_the_commands_figures() {
    let (v, _) = parse_report(&sample("depmig", &[10])).unwrap();
    let cli = CliFigures {
        guest: "g".into(),
        source_domid: 3,
        shell_domid: 4,
        mode: "baseline".into(),
        requested_mode: Some("dependency-aware".into()),
        mode_fallback: Some("no agent".into()),
        policy: "xen-4".into(),
        outcome: "migrated".into(),
        reason: None,
        source_result: "PASS done".into(),
        last_round_seen: Some(1),
        figures_missing: None,
        poll_interval_ms: 500,
        go_unix_ms: Some(1000),
        final_seen_unix_ms: Some(5000),
        result_seen_unix_ms: Some(6000),
        source_destroyed_unix_ms: Some(6500),
        shell_unpaused_unix_ms: Some(7000),
        destination_unpaused_unix_ms: Some(6900),
        destination_clock_offset_ms: Some(-100),
        destination_clock_uncertainty_ms: Some(3),
    };
    let out = finish_report(v, &cli, Some("migrate-mmuncher"), None);
    // Still a valid report after the additions.
    let again = json::parse(&out.to_string()).unwrap();
    validate(&again).unwrap();
    assert_eq!(
        again.get("scenario").and_then(Value::as_str),
        Some("migrate-mmuncher")
    );
    assert_eq!(again.get("workload"), Some(&Value::Null));
    let c = again.get("cli").unwrap();
    assert_eq!(c.get("total_time_ms").and_then(Value::as_u64), Some(6000));
    assert_eq!(c.get("downtime_ms").and_then(Value::as_u64), Some(2000));
    assert_eq!(c.get("switchover_ms").and_then(Value::as_u64), Some(1000));
    assert_eq!(c.get("shell_domid").and_then(Value::as_u64), Some(4));
    assert_eq!(
        c.get("requested_mode").and_then(Value::as_str),
        Some("dependency-aware")
    );
    assert_eq!(
        c.get("mode_fallback").and_then(Value::as_str),
        Some("no agent")
    );
    // No `events` in this report: the guest's downtime is unknown.
    assert_eq!(c.get("guest_downtime_ms"), Some(&Value::Null));
    // With the source's suspend event: suspended -> shell unpaused.
    let mut with_events = again.clone();
    let mut ev = json::parse("{\"suspended_unix_ms\":4200}").unwrap();
    ev.set("resumed_unix_ms", Value::Null);
    with_events.set("events", ev);
    let out = json::parse(&finish_report(with_events, &cli, None, None).to_string()).unwrap();
    let c = out.get("cli").unwrap();
    assert_eq!(
        c.get("guest_downtime_ms").and_then(Value::as_u64),
        Some(2800)
    );
    let none = CliFigures {
        shell_unpaused_unix_ms: None,
        ..cli
    };
    assert_eq!(none.to_report().total_time_ms, None);
}
