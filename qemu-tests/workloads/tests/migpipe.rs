//! migpipe end to end on a synthetic stream: bytes pass unchanged, never
//! faster than the set rate, and the report counts the rounds.

use depmig_workloads::synth::Builder;
use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::Instant;

#[test]
fn forwards_unchanged_at_the_rate_and_reports_rounds() {
    let mut b = Builder::xl();
    b.libxc_start();
    let rounds: [Vec<u64>; 3] = [(0..1100).collect(), (5..305).collect(), (7..57).collect()];
    for r in &rounds {
        b.round(r);
    }
    b.finish();
    let stream = b.out;
    let dir = std::env::temp_dir().join(format!("migpipe-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let report = dir.join("report.json");
    let rate: u64 = 8 << 20;
    let mut child = Command::new(env!("CARGO_BIN_EXE_migpipe"))
        .args([
            "--rate",
            "8M",
            "--burst",
            "65536",
            "--workload",
            "synthetic",
        ])
        .arg("--report")
        .arg(&report)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = stream.clone();
    let t0 = Instant::now();
    let writer = std::thread::spawn(move || stdin.write_all(&input).unwrap());
    let mut out = Vec::new();
    child.stdout.take().unwrap().read_to_end(&mut out).unwrap();
    let elapsed = t0.elapsed().as_secs_f64();
    writer.join().unwrap();
    let status = child.wait().unwrap();
    assert!(status.success());
    assert!(out == stream, "forwarded bytes differ");
    let floor = (stream.len() as f64 - 65536.0) / rate as f64;
    assert!(
        elapsed >= floor * 0.95,
        "{elapsed:.3} s is faster than the rate allows ({floor:.3} s)"
    );
    let text = std::fs::read_to_string(&report).unwrap();
    let pages: Vec<String> = rounds
        .iter()
        .map(|r| r.iter().filter(|p| *p % 7 != 0).count().to_string())
        .collect();
    assert!(
        text.contains(&format!("\"per_round_pages\": [{}]", pages.join(", "))),
        "{text}"
    );
    assert!(text.contains("\"final_round\": 3,"), "{text}");
    assert!(text.contains("\"parse_error\": null"), "{text}");
    assert!(
        text.contains(&format!("\"stream_bytes\": {},", stream.len())),
        "{text}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn garbage_is_forwarded_and_reported_not_understood() {
    let dir = std::env::temp_dir().join(format!("migpipe-garbage-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let report = dir.join("report.json");
    let input: Vec<u8> = (0..100_000u32).map(|i| (i * 31 % 256) as u8).collect();
    let mut child = Command::new(env!("CARGO_BIN_EXE_migpipe"))
        .args(["--rate", "0"])
        .arg("--report")
        .arg(&report)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let data = input.clone();
    let writer = std::thread::spawn(move || stdin.write_all(&data).unwrap());
    let mut out = Vec::new();
    child.stdout.take().unwrap().read_to_end(&mut out).unwrap();
    writer.join().unwrap();
    assert!(child.wait().unwrap().success());
    assert!(out == input);
    let text = std::fs::read_to_string(&report).unwrap();
    assert!(text.contains("\"rounds\": 0,"), "{text}");
    assert!(!text.contains("\"parse_error\": null"), "{text}");
    std::fs::remove_dir_all(&dir).ok();
}
