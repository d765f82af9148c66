//! The command lines of the binaries, declared with clap's derive (the doc
//! comments are the help texts). They live here, not in `src/bin/`, so the
//! rig's invocations are tested on the host.
//!
//! Every option takes `--key value` or `--key=value`; given twice, the last
//! one counts. A mistake exits with status 2 and a usage message.

use std::path::PathBuf;

use clap::builder::RangedU64ValueParser;
use clap::{Parser, Subcommand};

use crate::http::{parse_url, Url};
use crate::rate::parse_rate;

/// Largest `--mib` of mmuncher (1 TiB).
pub const MAX_MIB: u64 = 1 << 20;

fn rate(s: &str) -> Result<u64, &'static str> {
    parse_rate(s).ok_or("expected bytes/s with an optional K, M or G suffix (0 = unlimited)")
}

fn url(s: &str) -> Result<Url, String> {
    parse_url(s).map_err(|e| format!("{s}: {e}"))
}

/// mmuncher: rewrites N MiB as fast as it can, checking before each rewrite
/// that every page still holds what the previous pass wrote.
#[derive(Debug, Parser)]
#[command(name = "mmuncher", args_override_self = true)]
pub struct Mmuncher {
    /// MiB to rewrite, 1 to 1048576
    #[arg(long, value_name = "MIB", default_value_t = 100,
          value_parser = RangedU64ValueParser::<usize>::new().range(1..=MAX_MIB))]
    pub mib: usize,
    /// Seconds between status lines (0 counts as 1)
    #[arg(long, value_name = "S", default_value_t = 5)]
    pub report_secs: u64,
    /// Passes to run before exiting (0 = for ever)
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub passes: u64,
    /// Also show the status as the process name (`q<passes> ok|BAD`)
    #[arg(long)]
    pub status_comm: bool,
    /// Threads, each rewriting its own part of the buffer, pinned one to a
    /// CPU when there are enough CPUs; the passes reported are the slowest
    /// thread's (1 to 64)
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = RangedU64ValueParser::<usize>::new().range(1..=64))]
    pub threads: usize,
}

/// migpipe: forwards stdin to stdout at `--rate` bytes/s, counting the
/// pages of each pre-copy round of the `xl migrate` stream it carries.
#[derive(Debug, Parser)]
#[command(
    name = "migpipe",
    args_override_self = true,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
pub struct Migpipe {
    /// The state poller instead of the pipe
    #[command(subcommand)]
    pub command: Option<MigpipeCommand>,
    /// Bytes/s, K/M/G suffixes (binary multiples), 0 = unlimited
    #[arg(long, value_name = "BYTES", required = true, value_parser = rate)]
    pub rate: Option<u64>,
    // The burst must cover a late wake-up (emulated dom0s oversleep by tens
    // of ms): 256 KiB keeps 5 MB/s through 50 ms sleeps.
    /// Bytes the link may send at once after a pause (K/M/G suffixes)
    #[arg(long, value_name = "BYTES", default_value = "256K", value_parser = rate)]
    pub burst: u64,
    /// Where to write the migration report (JSON) at end of input
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// The events file `migpipe watch` appends to, merged into the report
    #[arg(long, value_name = "FILE")]
    pub events: Option<PathBuf>,
    /// Seconds to wait at end of input for the events file to show the
    /// destination running
    #[arg(long, value_name = "S", default_value_t = 60)]
    pub events_wait_s: u64,
    /// Value of the report's "scenario" field
    #[arg(long, value_name = "NAME")]
    pub scenario: Option<String>,
    /// Value of the report's "workload" field
    #[arg(long, value_name = "NAME")]
    pub workload: Option<String>,
}

/// migpipe's commands.
#[derive(Debug, Subcommand)]
pub enum MigpipeCommand {
    /// Polls `xl list` and appends `suspended_unix_ms=` (the source seen
    /// shut down) and `resumed_unix_ms=` (the destination seen running under
    /// NAME) to the events file, then exits
    Watch {
        /// The migrating domain's name
        #[arg(long, value_name = "NAME")]
        domain: String,
        /// The file to append to
        #[arg(long, value_name = "FILE")]
        events: PathBuf,
        /// Milliseconds between polls (at least 10 are taken)
        #[arg(long, value_name = "MS", default_value_t = 200)]
        interval_ms: u64,
        /// Seconds to poll before giving up
        #[arg(long, value_name = "S", default_value_t = 1800)]
        timeout_s: u64,
    },
}

/// wlhttp: the rig's HTTP workloads, one static binary for guest and dom0.
#[derive(Debug, Parser)]
#[command(name = "wlhttp", args_override_self = true)]
pub struct Wlhttp {
    /// What to run
    #[command(subcommand)]
    pub command: WlhttpCommand,
}

/// wlhttp's commands.
#[derive(Debug, Subcommand)]
pub enum WlhttpCommand {
    /// (dom0) answers `GET /stream[?bytes=N]` with an endless (or N-byte)
    /// patterned body
    ServeStream {
        /// TCP port to listen on
        #[arg(long, value_name = "P", value_parser = clap::value_parser!(u16).range(1..))]
        port: u16,
    },
    /// (guest) downloads such a stream, checks the pattern and prints the
    /// throughput every period; reconnects after an error
    Fetch {
        /// `http://IPv4[:port]/path` of the stream
        #[arg(long, value_name = "URL", value_parser = url)]
        url: Url,
        /// Seconds between throughput lines (0 counts as 1)
        #[arg(long, value_name = "S", default_value_t = 1)]
        report_secs: u64,
    },
    /// (guest) answers every GET with a short body
    Serve {
        /// TCP port to listen on
        #[arg(long, value_name = "P", value_parser = clap::value_parser!(u16).range(1..))]
        port: u16,
    },
    /// (dom0) queries a server, one connection per request, labelling each
    /// sample with the phase named in a file (`before`, `during`, `after`;
    /// `stop` ends it), and writes latency percentiles per phase as JSON
    Probe {
        /// `http://IPv4[:port]/path` to query
        #[arg(long, value_name = "URL", value_parser = url)]
        url: Url,
        /// The file naming the phase
        #[arg(long, value_name = "FILE")]
        phase_file: PathBuf,
        /// Where to write the JSON
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// Milliseconds between requests
        #[arg(long, value_name = "MS", default_value_t = 100)]
        interval_ms: u64,
        /// Milliseconds a request may take (0 counts as 1)
        #[arg(long, value_name = "MS", default_value_t = 2000)]
        timeout_ms: u64,
        /// Seconds to probe at most
        #[arg(long, value_name = "S", default_value_t = 600)]
        max_secs: u64,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::error::ErrorKind;

    fn kind<T: std::fmt::Debug>(r: Result<T, clap::Error>) -> ErrorKind {
        r.unwrap_err().kind()
    }

    #[test]
    fn parses_options_and_words() {
        let a = Wlhttp::try_parse_from(["wlhttp", "serve", "--port", "80"]).unwrap();
        assert!(matches!(a.command, WlhttpCommand::Serve { port: 80 }));
        let a = Mmuncher::try_parse_from(["mmuncher", "--mib=5"]).unwrap();
        assert_eq!(a.mib, 5);
        assert_eq!(a.passes, 0);
        assert_eq!(
            kind(Wlhttp::try_parse_from(["wlhttp", "serve", "--port"])),
            ErrorKind::InvalidValue
        );
        assert_eq!(
            kind(Wlhttp::try_parse_from(["wlhttp", "serve", "--x", "1"])),
            ErrorKind::UnknownArgument
        );
        assert_eq!(
            kind(Wlhttp::try_parse_from(["wlhttp", "serve", "--port", "x"])),
            ErrorKind::ValueValidation
        );
    }

    #[test]
    fn values_are_checked_and_the_last_one_counts() {
        for bad in [
            &["mmuncher", "--mib", "0"][..],
            &["mmuncher", "--mib", "1048577"],
        ] {
            assert_eq!(
                kind(Mmuncher::try_parse_from(bad)),
                ErrorKind::ValueValidation
            );
        }
        let m = Mmuncher::try_parse_from(["mmuncher", "--mib", "4", "--mib", "8"]).unwrap();
        assert_eq!(m.mib, 8);
        match Wlhttp::try_parse_from(["wlhttp", "serve", "--port", "1", "--port", "2"]) {
            Ok(Wlhttp {
                command: WlhttpCommand::Serve { port },
            }) => assert_eq!(port, 2),
            other => panic!("{other:?}"),
        }
        let p = Migpipe::try_parse_from([
            "migpipe", "watch", "--domain", "a", "--domain", "b", "--events", "e",
        ]);
        assert!(
            matches!(p.unwrap().command, Some(MigpipeCommand::Watch { domain, .. }) if domain == "b")
        );
        assert_eq!(
            kind(Wlhttp::try_parse_from(["wlhttp", "serve", "--port", "0"])),
            ErrorKind::ValueValidation
        );
        assert_eq!(
            kind(Wlhttp::try_parse_from([
                "wlhttp",
                "fetch",
                "--url",
                "https://x/"
            ])),
            ErrorKind::ValueValidation
        );
        assert_eq!(
            kind(Wlhttp::try_parse_from([
                "wlhttp",
                "probe",
                "--url",
                "http://10.0.0.1/"
            ])),
            ErrorKind::MissingRequiredArgument
        );
        // No command: the usage, as an error (status 2).
        let e = Wlhttp::try_parse_from(["wlhttp"]).unwrap_err();
        assert_eq!(
            e.kind(),
            ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
        );
        assert_eq!(e.exit_code(), 2);
        // migpipe: --rate is required for the pipe, not for the poller, and
        // the poller takes none of the pipe's options.
        assert_eq!(
            kind(Migpipe::try_parse_from(["migpipe", "--report", "r.json"])),
            ErrorKind::MissingRequiredArgument
        );
        assert_eq!(
            kind(Migpipe::try_parse_from(["migpipe", "--rate", "4X"])),
            ErrorKind::ValueValidation
        );
        assert_eq!(
            kind(Migpipe::try_parse_from([
                "migpipe", "watch", "--domain", "g"
            ])),
            ErrorKind::MissingRequiredArgument
        );
        assert!(Migpipe::try_parse_from(["migpipe", "--rate", "1", "watch"]).is_err());
        let p = Migpipe::try_parse_from(["migpipe", "--rate", "0"]).unwrap();
        assert_eq!((p.rate, p.burst, p.events_wait_s), (Some(0), 256 << 10, 60));
        assert_eq!((p.scenario, p.report), (None, None));
    }

    /// The command lines of the rig's scripts, their shell variables
    /// filled in, parse to what they mean.
    #[test]
    fn the_rigs_invocations_parse() {
        // qemu-tests/guest/init (the guest's workloads).
        let m =
            Mmuncher::try_parse_from(["/bin/mmuncher", "--mib", "64", "--threads", "1"]).unwrap();
        assert_eq!(
            (m.mib, m.report_secs, m.passes, m.status_comm, m.threads),
            (64, 5, 0, false, 1)
        );
        // migrate-smp's depmig.threads=4.
        let m =
            Mmuncher::try_parse_from(["/bin/mmuncher", "--mib", "64", "--threads", "4"]).unwrap();
        assert_eq!(m.threads, 4);
        assert!(Mmuncher::try_parse_from(["/bin/mmuncher", "--threads", "0"]).is_err());
        // Without --threads: one.
        let m = Mmuncher::try_parse_from(["/bin/mmuncher", "--mib", "4"]).unwrap();
        assert_eq!(m.threads, 1);
        // qemu-tests/migrate/scenarios/{paper-mmuncher,paper-mixed,migrate-paper}.hook
        let m =
            Mmuncher::try_parse_from(["/bin/mmuncher", "--mib", "32", "--status-comm"]).unwrap();
        assert_eq!((m.mib, m.status_comm), (32, true));
        let m = Mmuncher::try_parse_from(["/bin/mmuncher", "--mib", "4"]).unwrap();
        assert_eq!(m.mib, 4);

        // qemu-tests/guest/init, baseline-http.sh, paper-*.sh, test-qemu.sh.
        let w = |args: &[&str]| {
            Wlhttp::try_parse_from(std::iter::once("wlhttp").chain(args.iter().copied()))
                .unwrap_or_else(|e| panic!("{args:?}: {e}"))
                .command
        };
        match w(&["fetch", "--url", "http://10.77.0.1:8080/stream"]) {
            WlhttpCommand::Fetch { url, report_secs } => {
                assert_eq!(url.target, "/stream");
                assert_eq!(report_secs, 1);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            w(&["serve", "--port", "80"]),
            WlhttpCommand::Serve { port: 80 }
        ));
        assert!(matches!(
            w(&["serve-stream", "--port", "8080"]),
            WlhttpCommand::ServeStream { port: 8080 }
        ));
        for (interval, timeout, max) in [
            (250, 3000, 3000),
            (20, 3000, 3000),
            (200, 3000, 60),
            (200, 5000, 30),
        ] {
            let (i, t, m) = (interval.to_string(), timeout.to_string(), max.to_string());
            match w(&[
                "probe",
                "--url",
                "http://10.77.0.30/",
                "--phase-file",
                "/tmp/phase",
                "--out",
                "/tmp/probe.json",
                "--interval-ms",
                &i,
                "--timeout-ms",
                &t,
                "--max-secs",
                &m,
            ]) {
                WlhttpCommand::Probe {
                    phase_file,
                    out,
                    interval_ms,
                    timeout_ms,
                    max_secs,
                    ..
                } => {
                    assert_eq!(phase_file, PathBuf::from("/tmp/phase"));
                    assert_eq!(out, PathBuf::from("/tmp/probe.json"));
                    assert_eq!(
                        (interval_ms, timeout_ms, max_secs),
                        (interval, timeout, max)
                    );
                }
                other => panic!("{other:?}"),
            }
        }

        // qemu-tests/baseline/baseline.sh: the poller and the pipe.
        let p = Migpipe::try_parse_from([
            "/scenario/bin/migpipe",
            "watch",
            "--domain",
            "guest",
            "--events",
            "/tmp/guest.events",
            "--interval-ms",
            "1000",
            "--timeout-s",
            "3000",
        ])
        .unwrap();
        match p.command {
            Some(MigpipeCommand::Watch {
                domain,
                events,
                interval_ms,
                timeout_s,
            }) => {
                assert_eq!(
                    (domain.as_str(), interval_ms, timeout_s),
                    ("guest", 1000, 3000)
                );
                assert_eq!(events, PathBuf::from("/tmp/guest.events"));
            }
            other => panic!("{other:?}"),
        }
        // $DEPMIG_LINK_BYTES_PER_SEC is a plain number of bytes.
        let p = Migpipe::try_parse_from([
            "/scenario/bin/migpipe",
            "--rate",
            "2500000",
            "--report",
            "/tmp/b.json",
            "--events",
            "/tmp/guest.events",
            "--scenario",
            "baseline-mmuncher",
            "--workload",
            "mmuncher",
        ])
        .unwrap();
        assert!(p.command.is_none());
        assert_eq!((p.rate, p.burst), (Some(2_500_000), 256 << 10));
        assert_eq!(p.report, Some(PathBuf::from("/tmp/b.json")));
        assert_eq!(p.events, Some(PathBuf::from("/tmp/guest.events")));
        assert_eq!(
            (p.scenario.as_deref(), p.workload.as_deref()),
            (Some("baseline-mmuncher"), Some("mmuncher"))
        );
        // qemu-tests/baseline/README.md and migpipe.rs's own example.
        let p = Migpipe::try_parse_from(["migpipe", "--rate", "4M", "--report", "r.json"]).unwrap();
        assert_eq!(p.rate, Some(4 << 20));
        // tests/migpipe.rs.
        let p = Migpipe::try_parse_from([
            "migpipe",
            "--rate",
            "8M",
            "--burst",
            "65536",
            "--workload",
            "synthetic",
            "--report",
            "/tmp/r.json",
        ])
        .unwrap();
        assert_eq!((p.rate, p.burst), (Some(8 << 20), 65536));
    }
}
