//! The reports' exact text. Rig scripts read them line by line (`jnum` and
//! `jlist` in `qemu-tests/guest/rig-guest.sh`, `baseline_check_strict` in
//! `qemu-tests/baseline/baseline.sh`), so every byte is held here: keys one
//! per line, lists of numbers on one line, nested objects two spaces deeper,
//! floats with three decimals, strings escaped.

use depmig_workloads::json;
use depmig_workloads::probe::{self, Phase};
use depmig_workloads::report::{build, Meta, StrictDecoder};
use depmig_workloads::synth::Builder;
use depmig_workloads::xlstream::StreamObserver;
use std::time::Duration;

/// A stock migration of three rounds seen by migpipe, with its strict
/// decoder's verdict and names that need escaping.
const MIGRATION: &str = include_str!("data/migration-report.json");
/// Bytes migpipe could not read as a stream: no rounds, empty lists.
const GARBAGE: &str = include_str!("data/migration-report-garbage.json");
/// A probe with a phase of samples, one of failures only, and one sample.
const PROBE: &str = include_str!("data/probe-report.json");
/// A probe stopped before its first request.
const PROBE_EMPTY: &str = include_str!("data/probe-report-empty.json");

fn strict_decoder(complete: bool, error: Option<&str>, pages: &[u64]) -> StrictDecoder {
    StrictDecoder {
        decoder: "depmig-stream",
        complete,
        error: error.map(String::from),
        per_round_pages: pages.to_vec(),
    }
}

fn migration_text() -> String {
    let mut b = Builder::xl();
    b.libxc_start();
    b.round(&(0..2000).collect::<Vec<_>>());
    b.round(&(10..300).collect::<Vec<_>>());
    b.round(&(3..9).collect::<Vec<_>>());
    b.finish();
    let mut obs = StreamObserver::new();
    for (i, c) in b.out.chunks(4096).enumerate() {
        obs.feed(c, 1_000 + 7 * i as u64);
    }
    let pages: Vec<u64> = obs.rounds.iter().map(|r| r.pages).collect();
    let meta = Meta {
        migrator: "xl-migrate".into(),
        scenario: "baseline \"quoted\" back\\slash\nline\u{1}é".into(),
        workload: "mmuncher".into(),
        link_rate: 4 << 20,
        first_byte_ms: Some(1_000),
        last_byte_ms: Some(5_000),
        suspended_ms: Some(1_300),
        resumed_ms: Some(2_000),
        poll_interval_ms: Some(200),
        strict_decoder: Some(strict_decoder(true, None, &pages)),
    };
    json::pretty(&build(&obs, &meta)).unwrap()
}

fn garbage_text() -> String {
    let mut obs = StreamObserver::new();
    let input: Vec<u8> = (0..100_000u32).map(|i| (i * 31 % 256) as u8).collect();
    obs.feed(&input, 1_000);
    let meta = Meta {
        migrator: "xl-migrate".into(),
        first_byte_ms: Some(1_000),
        last_byte_ms: Some(1_001),
        strict_decoder: Some(strict_decoder(
            false,
            Some("BadMagic([0, 31, 62, 93])"),
            &[],
        )),
        ..Meta::default()
    };
    json::pretty(&build(&obs, &meta)).unwrap()
}

fn probe_text(phases: &[Phase]) -> String {
    json::pretty(&probe::report(
        "http://10.0.0.2:8080/",
        Duration::from_millis(200),
        Duration::from_millis(5_000),
        4_321,
        phases,
    ))
    .unwrap()
}

fn phases() -> Vec<Phase> {
    vec![
        Phase {
            name: "before".into(),
            lat: vec![1.0, 2.5, 0.1234, 10.0005, 3.33333, 0.0],
            failures: 0,
            longest_gap_ms: 200,
        },
        Phase {
            name: "during".into(),
            lat: vec![],
            failures: 3,
            longest_gap_ms: 0,
        },
        Phase {
            name: "after".into(),
            lat: vec![1234.5678],
            failures: 1,
            longest_gap_ms: 4_321,
        },
    ]
}

#[test]
fn a_migration_report_is_written_exactly() {
    assert_eq!(migration_text(), MIGRATION);
}

#[test]
fn a_report_of_garbage_is_written_exactly() {
    assert_eq!(garbage_text(), GARBAGE);
}

#[test]
fn a_probe_report_is_written_exactly() {
    assert_eq!(probe_text(&phases()), PROBE);
}

#[test]
fn a_probe_report_without_phases_is_written_exactly() {
    assert_eq!(probe_text(&[]), PROBE_EMPTY);
}
