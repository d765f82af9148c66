//! migpipe: the rate-limited link that carries stock `xl migrate`'s stream.
//!
//! Forwards stdin to stdout unchanged at `--rate` bytes/s while observing
//! the stream (xl header, libxl records, libxc's v2 stream inline) to count
//! pages per pre-copy round. At end of input it writes the migration report
//! (`--report`), merging the suspend/resume times a state poller wrote to
//! `--events`. Put it in front of the receiver in xl's command:
//! `xl migrate -s "" guest "migpipe --rate 4M --report r.json | xl migrate-receive"`.
//!
//! `migpipe watch --domain NAME --events FILE` is that poller: it runs
//! `xl list` every `--interval-ms` and appends `suspended_unix_ms=` (source
//! seen shut down) and `resumed_unix_ms=` (destination seen running under
//! NAME) to FILE, then exits.

use clap::Parser;
use depmig_stream::{Limits, RoundCounter, XlEvent, XlStreamScanner};
use depmig_workloads::args::{Migpipe, MigpipeCommand};
use depmig_workloads::json;
use depmig_workloads::rate::Bucket;
use depmig_workloads::report::{build, parse_events, Meta, StrictDecoder};
use depmig_workloads::unix_ms;
use depmig_workloads::xllist::{self, Watch};
use depmig_workloads::xlstream::StreamObserver;
use std::io::{ErrorKind, Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

const CHUNK: usize = 64 * 1024;
/// Period of the progress lines on stderr.
const PROGRESS_EVERY: Duration = Duration::from_secs(10);
/// Most bytes of xl's preamble (header and domain config) before libxl's header.
const XL_PREAMBLE_MAX: u64 = 16 << 20;

fn watch(name: &str, events: &Path, interval_ms: u64, timeout_s: u64) -> ! {
    let interval = interval_ms.max(10);
    let deadline = Instant::now() + Duration::from_secs(timeout_s);
    let append = |line: String| {
        let r = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(events)
            .and_then(|mut f| writeln!(f, "{line}"));
        if let Err(e) = r {
            eprintln!("migpipe watch: {}: {e}", events.display());
        }
    };
    append(format!("poll_interval_ms={interval}"));
    let mut w = Watch::default();
    while Instant::now() < deadline {
        let t0 = unix_ms();
        let out = std::process::Command::new("xl").arg("list").output();
        // The state was sampled somewhere during the call: take its midpoint.
        let now = t0 + unix_ms().saturating_sub(t0) / 2;
        if let Ok(o) = out {
            let before = w;
            w.observe(
                &xllist::parse(&String::from_utf8_lossy(&o.stdout)),
                name,
                now,
            );
            if before.suspended_ms.is_none() {
                if let Some(t) = w.suspended_ms {
                    append(format!("suspended_unix_ms={t}"));
                }
            }
            if let Some(t) = w.resumed_ms {
                append(format!("resumed_unix_ms={t}"));
                std::process::exit(0);
            }
        }
        std::thread::sleep(Duration::from_millis(interval));
    }
    eprintln!("migpipe watch: timed out before {name} was seen running again");
    std::process::exit(1)
}

fn main() {
    let args = Migpipe::parse();
    if let Some(MigpipeCommand::Watch {
        domain,
        events,
        interval_ms,
        timeout_s,
    }) = &args.command
    {
        watch(domain, events, *interval_ms, *timeout_s);
    }
    // The parser already requires --rate when no command is given.
    let Some(rate) = args.rate else {
        eprintln!("migpipe: --rate is required (bytes/s, K/M/G suffixes, 0 = unlimited)");
        std::process::exit(2)
    };
    let (burst, wait_s) = (args.burst, args.events_wait_s);
    let mut meta = Meta {
        migrator: "xl-migrate".into(),
        scenario: args.scenario.clone().unwrap_or_default(),
        workload: args.workload.clone().unwrap_or_default(),
        link_rate: rate,
        ..Meta::default()
    };
    let t0 = Instant::now();
    let ns = || t0.elapsed().as_nanos() as u64;
    let mut bucket = Bucket::new(rate, burst, ns());
    let mut obs = StreamObserver::new();
    // The strict decoder follows the same bytes; its verdict goes in the report.
    let mut strict = XlStreamScanner::new(XL_PREAMBLE_MAX, Limits::default());
    let mut strict_rounds = RoundCounter::new();
    let mut strict_error: Option<String> = None;
    let mut input = std::io::stdin().lock();
    let mut output = std::io::stdout().lock();
    let mut buf = vec![0u8; CHUNK];
    let mut failed = None;
    let mut reported_error = false;
    let mut last_progress = Instant::now();
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => {
                failed = Some(format!("read: {e}"));
                break;
            }
        };
        let wait = bucket.take(n as u64, ns());
        if wait > 0 {
            std::thread::sleep(Duration::from_nanos(wait));
        }
        let now = unix_ms();
        meta.first_byte_ms.get_or_insert(now);
        let data = buf.get(..n).unwrap_or(&[]);
        let before = obs.rounds.len();
        obs.feed(data, now);
        if strict_error.is_none() {
            let r = strict.push(data, &mut |ev| {
                if let XlEvent::Libxc(e) = ev {
                    strict_rounds.observe(&e);
                }
            });
            if let Err(e) = r {
                strict_error = Some(format!("{e:?}"));
            }
        }
        if obs.rounds.len() != before {
            let prev = before
                .checked_sub(1)
                .and_then(|i| obs.rounds.get(i))
                .map_or(0, |r| r.pages);
            eprintln!(
                "migpipe: round {} begins at +{} ms (previous round: {prev} pages)",
                obs.rounds.len(),
                now.saturating_sub(meta.first_byte_ms.unwrap_or(now))
            );
        }
        if last_progress.elapsed() >= PROGRESS_EVERY {
            last_progress = Instant::now();
            let secs = now.saturating_sub(meta.first_byte_ms.unwrap_or(now)) as f64 / 1000.0;
            eprintln!(
                "migpipe: progress +{secs:.0} s, {} bytes, {:.0} KiB/s on average, round {}",
                obs.total_bytes,
                obs.total_bytes as f64 / 1024.0 / secs.max(0.001),
                obs.rounds.len()
            );
        }
        if let (Some(e), false) = (obs.error(), reported_error) {
            eprintln!(
                "migpipe: stream not understood ({}); forwarding without counting",
                e.as_str()
            );
            reported_error = true;
        }
        if let Err(e) = output.write_all(data).and_then(|_| output.flush()) {
            failed = Some(format!("write: {e}"));
            break;
        }
    }
    meta.last_byte_ms = Some(unix_ms());
    drop(output);
    // Give the poller time to see the destination running.
    if let Some(path) = &args.events {
        let deadline = Instant::now() + Duration::from_secs(wait_s);
        loop {
            let ev = parse_events(&std::fs::read_to_string(path).unwrap_or_default());
            meta.suspended_ms = ev.suspended_ms;
            meta.resumed_ms = ev.resumed_ms;
            meta.poll_interval_ms = ev.poll_interval_ms;
            if ev.resumed_ms.is_some() || Instant::now() >= deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    meta.strict_decoder = Some(StrictDecoder {
        decoder: "depmig-stream",
        complete: strict.is_done(),
        error: strict_error,
        per_round_pages: strict_rounds.finish().iter().map(|t| t.pages).collect(),
    });
    let pages: Vec<String> = obs.rounds.iter().map(|r| r.pages.to_string()).collect();
    eprintln!(
        "migpipe: {} bytes, rounds={} pages=[{}]{}",
        obs.total_bytes,
        obs.rounds.len(),
        pages.join(","),
        failed
            .as_deref()
            .map(|f| format!(" ({f})"))
            .unwrap_or_default()
    );
    if let Some(path) = &args.report {
        let mut tmp = path.clone().into_os_string();
        tmp.push(".tmp");
        let r = json::pretty(&build(&obs, &meta))
            .map_err(|e| std::io::Error::other(e.to_string()))
            .and_then(|text| std::fs::write(&tmp, text))
            .and_then(|_| std::fs::rename(&tmp, path));
        if let Err(e) = r {
            eprintln!("migpipe: cannot write {}: {e}", path.display());
            std::process::exit(1);
        }
    }
    if failed.is_some() {
        std::process::exit(1);
    }
}
