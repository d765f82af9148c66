//! `xl-rounds`: counts the pages of each pre-copy round in a stock
//! `xl migrate` stream (or a bare libxc stream with `--libxc`) read from
//! stdin. With `--tee` the bytes are copied to stdout unchanged, so it can
//! sit in the pipe between `xl migrate` and its receiver:
//!
//! ```text
//! xl migrate -s "xl-rounds --tee --report /tmp/rounds.txt | ssh-less-receiver" ...
//! ```
//!
//! The report has one line per round: `round N entries E pages P records R`
//! (entries include holes, which stock xl's round 1 sends for the whole
//! p2m), then `rounds N` and `status ok|incomplete|error: ...`. The round
//! rule and its limits are those of `depmig_stream::libxl`.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

use depmig_stream::{Limits, RoundCounter, XlEvent, XlStreamScanner};

/// xl-rounds: counts the pages of each pre-copy round of an `xl migrate`
/// stream read from stdin
#[derive(Debug, Parser)]
#[command(name = "xl-rounds", args_override_self = true)]
struct Cli {
    /// Copy the bytes to stdout unchanged
    #[arg(long)]
    tee: bool,
    /// The input is a bare libxc stream, without xl's and libxl's headers
    #[arg(long)]
    libxc: bool,
    /// Write the report to FILE instead of stderr
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
}

fn main() -> ExitCode {
    let Cli { tee, libxc, report } = Cli::parse();
    let limits = Limits {
        max_record_body: 16 << 20,
        ..Limits::default()
    };
    let mut scanner = XlStreamScanner::new(64 << 20, limits);
    let mut dec = depmig_stream::Decoder::new(limits);
    let mut counter = RoundCounter::new();
    let mut status = String::from("incomplete");
    let mut done = false;
    let mut stdin = std::io::stdin().lock();
    let mut stdout = std::io::stdout().lock();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = match stdin.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                status = format!("error: read: {e}");
                break;
            }
        };
        let chunk = &buf[..n];
        if tee
            && stdout
                .write_all(chunk)
                .and_then(|_| stdout.flush())
                .is_err()
        {
            status = "error: write to stdout failed".into();
            break;
        }
        if done || status.starts_with("error") {
            continue;
        }
        if libxc {
            let mut input = chunk;
            loop {
                match dec.next(&mut input) {
                    Ok(Some(ev)) => counter.observe(&ev),
                    Ok(None) => break,
                    Err(e) => {
                        status = format!("error: {e:?}");
                        break;
                    }
                }
            }
            done = dec.is_done();
        } else {
            let r = scanner.push(chunk, &mut |ev| {
                if let XlEvent::Libxc(e) = ev {
                    counter.observe(&e)
                }
            });
            if let Err(e) = r {
                status = format!("error: {e:?}");
            }
            done = scanner.is_done();
        }
    }
    if done {
        status = "ok".into();
    }
    let rounds = counter.finish();
    let mut text = String::new();
    for (i, r) in rounds.iter().enumerate() {
        text.push_str(&format!(
            "round {} entries {} pages {} records {}\n",
            i + 1,
            r.entries,
            r.pages,
            r.records
        ));
    }
    text.push_str(&format!("rounds {}\nstatus {status}\n", rounds.len()));
    match report {
        Some(path) => {
            if let Err(e) = std::fs::write(&path, &text) {
                eprintln!("xl-rounds: {}: {e}", path.display());
                return ExitCode::FAILURE;
            }
        }
        None => eprint!("{text}"),
    }
    if status == "ok" {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_options_parse() {
        // tests/xl_rounds.rs and the module's example.
        let c = Cli::try_parse_from(["xl-rounds", "--tee", "--report", "/tmp/rounds.txt"]).unwrap();
        assert!(c.tee && !c.libxc);
        assert_eq!(c.report, Some(PathBuf::from("/tmp/rounds.txt")));
        let c = Cli::try_parse_from(["xl-rounds", "--libxc"]).unwrap();
        assert!(c.libxc && !c.tee && c.report.is_none());
        for bad in [
            &["xl-rounds", "-x"][..],
            &["xl-rounds", "file"],
            &["xl-rounds", "--report"],
        ] {
            assert_eq!(
                Cli::try_parse_from(bad).unwrap_err().exit_code(),
                2,
                "{bad:?}"
            );
        }
    }
}
