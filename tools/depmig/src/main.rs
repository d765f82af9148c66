//! `depmig`: the operator's command in dom0 (see `depmig --help`).
#![forbid(unsafe_code)]

use std::process::ExitCode;

use depmig_cli::cli::{parse_args, Command};
use depmig_cli::compare;
use depmig_cli::migrate::{migrate, Outcome, Timings};
use depmig_cli::toolstack::System;

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
        Err(e) => {
            eprintln!("depmig: {e}");
            return ExitCode::from(2);
        }
    };
    let mut host = System::new(opts.work_dir.clone());
    let mut out = std::io::stdout();
    let outcome = migrate(&mut host, &opts, &Timings::default(), &mut out);
    match &outcome {
        Outcome::Migrated { warnings } => {
            for w in warnings {
                eprintln!("depmig: warning: {w}");
            }
            println!("depmig: PASS migrated {}", opts.guest);
        }
        Outcome::RolledBack { reason, warnings } => {
            for w in warnings {
                eprintln!("depmig: warning: {w}");
            }
            eprintln!(
                "depmig: FAIL not migrated, {} runs at the source: {reason}",
                opts.guest
            );
        }
        Outcome::Refused { reason } => eprintln!("depmig: FAIL nothing done: {reason}"),
        Outcome::NeedsOperator { reason } => eprintln!("depmig: FAIL operator needed: {reason}"),
    }
    ExitCode::from(outcome.exit_code())
}
