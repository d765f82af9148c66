//! `depmig`: the operator's command in dom0 (see `depmig --help`).
#![forbid(unsafe_code)]

use std::process::ExitCode;

use depmig_cli::cli::{
    parse_args, Command, MigrateOptions, ReceiveArgs, RecoverArgs, RestoreArgs, SaveArgs,
    SaveFormat,
};
use depmig_cli::compare;
use depmig_cli::migrate::{
    migrate, migrate_to_host, receive, recover, restore, save, Outcome, ReceiveOptions,
    ReceiveOutcome, ReceiveTimings, RecoverOptions, RemoteTimings, RestoreOptions, Timings,
};
use depmig_cli::savefile::{self, FileSender, TcpSaver};
use depmig_cli::toolstack::System;
use depmig_cli::twohost::channel::Channel;
use depmig_cli::twohost::transport::{self, DEFAULT_TRANSPORT};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let opts = match parse_args(&args) {
        Ok(Command::Help(text)) => {
            print!("{text}");
            return ExitCode::SUCCESS;
        }
        Ok(Command::Migrate(o)) => o,
        Ok(Command::Compare(o)) => {
            let mut out = std::io::stdout();
            return match compare::run(&o, &mut compare::RealFiles, &mut out) {
                Ok(_) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("depmig compare: {e}");
                    ExitCode::from(1)
                }
            };
        }
        Ok(Command::Receive(r)) => return run_receive(&r),
        Ok(Command::Recover(r)) => return run_recover(&r),
        Ok(Command::Save(a)) => return run_save(&a),
        Ok(Command::Restore(a)) => return run_restore(&a),
        Err(e) => {
            eprintln!("depmig: {e}");
            return ExitCode::from(2);
        }
    };
    let outcome = match &opts.host {
        None => {
            let mut host = System::new(opts.work_dir.clone());
            let mut out = std::io::stdout();
            migrate(&mut host, &opts, &Timings::default(), &mut out)
        }
        Some(h) => run_two_host(&opts, h),
    };
    say_outcome(&opts.guest, &outcome);
    ExitCode::from(outcome.exit_code())
}

/// `depmig migrate GUEST HOST`: the transport started, the migration run
/// over it, the transport waited for.
fn run_two_host(opts: &MigrateOptions, host: &str) -> Outcome {
    let cmd = opts.transport.as_deref().unwrap_or(DEFAULT_TRANSPORT);
    let (mut child, mut chan) = match transport::start(cmd, host) {
        Ok(c) => c,
        Err(e) => {
            return Outcome::Refused {
                reason: e.to_string(),
            }
        }
    };
    let mut ts = System::new(opts.work_dir.clone());
    let mut out = std::io::stdout();
    let outcome = migrate_to_host(
        &mut ts,
        opts,
        host,
        &mut chan,
        &Timings::default(),
        &RemoteTimings::default(),
        &mut out,
    );
    // Closing our end tells the destination the conversation is over.
    drop(chan);
    let _ = child.wait();
    outcome
}

fn say_outcome(guest: &str, outcome: &Outcome) {
    match outcome {
        Outcome::Migrated { warnings } => {
            for w in warnings {
                eprintln!("depmig: warning: {w}");
            }
            println!("depmig: PASS migrated {guest}");
        }
        Outcome::RolledBack { reason, warnings } => {
            for w in warnings {
                eprintln!("depmig: warning: {w}");
            }
            eprintln!("depmig: FAIL not migrated, {guest} runs at the source: {reason}");
        }
        Outcome::Refused { reason } => eprintln!("depmig: FAIL nothing done: {reason}"),
        Outcome::NeedsOperator { reason } => eprintln!("depmig: FAIL operator needed: {reason}"),
        Outcome::Indeterminate { reason } => {
            eprintln!("depmig: FAIL handoff unconfirmed: {reason}")
        }
    }
}

/// `depmig receive`: the conversation on stdin/stdout, the log on stderr.
fn run_receive(r: &ReceiveArgs) -> ExitCode {
    let own = ReceiveOptions {
        appliance: r.appliance.clone(),
        bridge: r.bridge.clone(),
        work_dir: r.work_dir.clone(),
    };
    let mut ts = System::new(r.work_dir.clone());
    let mut chan = Channel::new(std::io::stdin(), std::io::stdout());
    let mut log = std::io::stderr();
    let outcome = receive(
        &mut ts,
        &own,
        &Timings::default(),
        &ReceiveTimings::default(),
        &mut chan,
        &mut log,
    );
    match &outcome {
        ReceiveOutcome::Migrated { domid, warnings } => {
            for w in warnings {
                eprintln!("depmig receive: warning: {w}");
            }
            eprintln!("depmig receive: PASS the guest runs here as domain {domid}");
        }
        ReceiveOutcome::NotMigrated { reason } => {
            eprintln!("depmig receive: FAIL nothing runs here: {reason}")
        }
        ReceiveOutcome::Answered { answer } => eprintln!("depmig receive: {answer}"),
        ReceiveOutcome::NeedsOperator { reason } => {
            eprintln!("depmig receive: FAIL operator needed: {reason}")
        }
    }
    ExitCode::from(outcome.exit_code())
}

/// `depmig recover GUEST HOST`.
fn run_recover(r: &RecoverArgs) -> ExitCode {
    let cmd = r.transport.as_deref().unwrap_or(DEFAULT_TRANSPORT);
    let outcome = match transport::start(cmd, &r.host) {
        Err(e) => Outcome::Indeterminate {
            reason: format!(
                "{e}; `{}` stays suspended here: run `depmig recover {} {}` again",
                r.guest, r.guest, r.host
            ),
        },
        Ok((mut child, mut chan)) => {
            let ro = RecoverOptions {
                guest: r.guest.clone(),
                host: r.host.clone(),
                appliance: r.appliance.clone(),
                work_dir: r.work_dir.clone(),
            };
            let mut ts = System::new(r.work_dir.clone());
            let mut out = std::io::stdout();
            let o = recover(
                &mut ts,
                &ro,
                &mut chan,
                &Timings::default(),
                &RemoteTimings::default(),
                &mut out,
            );
            drop(chan);
            let _ = child.wait();
            o
        }
    };
    say_outcome(&r.guest, &outcome);
    ExitCode::from(outcome.exit_code())
}

/// `depmig save GUEST FILE`: dom0's listener and FILE made first, then the
/// save.
fn run_save(a: &SaveArgs) -> ExitCode {
    let refused = |reason: String| {
        eprintln!("depmig: FAIL nothing done: {reason}");
        ExitCode::from(2)
    };
    let ip = match a
        .dom0_ip
        .map_or_else(|| savefile::bridge_ipv4(&a.bridge), Ok)
    {
        Ok(ip) => ip,
        Err(e) => return refused(e),
    };
    let opts = match a.migrate_options(ip) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("depmig: {e}");
            return ExitCode::from(2);
        }
    };
    let config = match std::fs::read(&a.config) {
        Ok(c) => c,
        Err(e) => return refused(format!("guest config {}: {e}", a.config.display())),
    };
    let format = match a.format {
        SaveFormat::Xl => depmig_stream::SaveFormat::Xl,
        SaveFormat::Libxc => depmig_stream::SaveFormat::Libxc,
    };
    let addr = std::net::SocketAddr::from((ip, a.port));
    let mut end = match TcpSaver::new(addr, &a.file, format, &config) {
        Ok(s) => s,
        Err(e) => return refused(e),
    };
    let peer = depmig_control::Peer {
        ip: ip.octets(),
        port: a.port,
    };
    let mut host = System::new(a.work_dir.clone());
    let mut out = std::io::stdout();
    let outcome = save(
        &mut host,
        &opts,
        &a.file,
        peer,
        &mut end,
        &Timings::default(),
        &mut out,
    );
    drop(end);
    match &outcome {
        Outcome::Migrated { warnings } => {
            for w in warnings {
                eprintln!("depmig: warning: {w}");
            }
            println!("depmig: PASS saved {} to {}", a.guest, a.file.display());
        }
        Outcome::RolledBack { reason, warnings } => {
            for w in warnings {
                eprintln!("depmig: warning: {w}");
            }
            eprintln!("depmig: FAIL not saved, {} runs: {reason}", a.guest);
        }
        other => say_outcome(&a.guest, other),
    }
    ExitCode::from(outcome.exit_code())
}

/// `depmig restore FILE`: the file read through first, then the restore.
fn run_restore(a: &RestoreArgs) -> ExitCode {
    let refused = |reason: String| {
        eprintln!("depmig: FAIL nothing done: {reason}");
        ExitCode::from(2)
    };
    let checked = match savefile::check_file(&a.file) {
        Ok(c) => c,
        Err(e) => return refused(format!("{}: {e}", a.file.display())),
    };
    println!(
        "depmig: {} holds a complete stream: {} bytes, {} pages",
        a.file.display(),
        checked.stats.stream_bytes,
        checked.stats.pages
    );
    let config = match (&a.config, &checked.config) {
        (Some(p), _) => match std::fs::read(p) {
            Ok(c) => c,
            Err(e) => return refused(format!("guest config {}: {e}", p.display())),
        },
        (None, Some((c, false))) => c.clone(),
        (None, Some((_, true))) => {
            return refused(format!(
                "{} carries its config as libxl JSON: give --config <guest.cfg>",
                a.file.display()
            ))
        }
        (None, None) => {
            return refused(format!(
                "{} carries no config: give --config <guest.cfg>",
                a.file.display()
            ))
        }
    };
    let Ok(text) = String::from_utf8(config) else {
        return refused("the guest config is not UTF-8 text".into());
    };
    let guest = match depmig_cli::xlcfg::parse_guest_config(text.as_bytes()) {
        Ok(c) => match c.name {
            Some(n) => n,
            None => return refused("the guest config names no guest (`name = ...`)".into()),
        },
        Err(e) => return refused(format!("the guest config: {e}")),
    };
    let ro = RestoreOptions {
        guest: guest.clone(),
        config: text,
        file: a.file.clone(),
        appliance: a.appliance.clone(),
        bridge: a.bridge.clone(),
        work_dir: a.work_dir.clone(),
        ip: a.destination_ip,
        prefix: a.prefix,
        port: a.port,
        appliance_memory_mib: a.appliance_memory_mib,
    };
    let mut sender = FileSender {
        path: a.file.clone(),
        checked,
        connect_wait: std::time::Duration::from_secs(a.timeout_s.min(600)),
    };
    let mut host = System::new(a.work_dir.clone());
    let mut out = std::io::stdout();
    let outcome = restore(&mut host, &ro, &mut sender, &Timings::default(), &mut out);
    match &outcome {
        Outcome::Migrated { warnings } => {
            for w in warnings {
                eprintln!("depmig: warning: {w}");
            }
            println!("depmig: PASS restored {guest} from {}", a.file.display());
        }
        Outcome::RolledBack { reason, warnings } => {
            for w in warnings {
                eprintln!("depmig: warning: {w}");
            }
            eprintln!("depmig: FAIL not restored, nothing left: {reason}");
        }
        other => say_outcome(&guest, other),
    }
    ExitCode::from(outcome.exit_code())
}
