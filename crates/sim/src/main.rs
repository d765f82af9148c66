//! `depmig-sim`: simulated migrations and the paper's figures.
//!
//! ```text
//! depmig-sim figures [--out DIR] [--scale F] [--seed N]
//! depmig-sim run [--workload NAME] [--mode NAME] [--policy xen33|xen4x|adaptive] [--scale F] [--seed N]
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use depmig_precopy::{Adaptive, Mode, Policy, Xen33, Xen4x};
use depmig_sim::report::{rounds_table, summary_table, svg_plot, Series};
use depmig_sim::run::{simulate, Outcome};
use depmig_sim::workloads::Workload;

/// depmig-sim: simulated migrations and the paper's figures
#[derive(Debug, Parser)]
#[command(name = "depmig-sim", args_override_self = true)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Writes the Figure 3 and 4 plots and the tables of every workload,
    /// mode and policy
    Figures {
        /// Directory for figure3.svg, figure4.svg and figures.md
        #[arg(long, value_name = "DIR", default_value = "out/sim")]
        out: PathBuf,
        #[command(flatten)]
        sim: SimArgs,
    },
    /// Simulates one migration and prints its table per round
    Run {
        /// Workload: dirtier-100MB, http-download, idle-server or
        /// dirtier+interactive (a prefix names the first that matches)
        #[arg(long, value_name = "NAME", default_value = "dirtier", value_parser = workload)]
        workload: Workload,
        /// Mode: baseline, dependency-aware, paper-analysis or
        /// paper-literal-unsound
        #[arg(long, value_name = "NAME", default_value = "baseline", value_parser = mode)]
        mode: Mode,
        /// When pre-copy stops
        #[arg(long, value_enum, default_value_t = PolicyName::Xen33)]
        policy: PolicyName,
        #[command(flatten)]
        sim: SimArgs,
    },
}

/// What every simulation takes.
#[derive(Debug, clap::Args)]
struct SimArgs {
    /// Size of the guest and its workload: 1 is the paper's 2 GB guest; above
    /// 0, at most 4
    #[arg(long, value_name = "F", default_value_t = 1.0, value_parser = scale)]
    scale: f64,
    /// Seed of the guest's random choices
    #[arg(long, value_name = "N", default_value_t = 1)]
    seed: u64,
}

/// The stop policies by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum PolicyName {
    /// Xen 3.3: 30 rounds, 3x memory, 50 pages
    Xen33,
    /// Xen 4.x: 5 rounds, 50 pages
    Xen4x,
    /// Measured bandwidth and a downtime target
    Adaptive,
}

fn scale(s: &str) -> Result<f64, &'static str> {
    s.parse()
        .ok()
        .filter(|f| *f > 0.0 && *f <= 4.0)
        .ok_or("--scale must be in (0, 4]")
}

fn mode(name: &str) -> Result<Mode, &'static str> {
    Ok(match name {
        "baseline" => Mode::Baseline,
        "dependency-aware" => Mode::DependencyAware,
        "paper-analysis" => Mode::PaperAnalysis,
        "paper-literal-unsound" => Mode::PaperLiteralUnsound,
        _ => return Err("unknown mode"),
    })
}

fn workload(name: &str) -> Result<Workload, &'static str> {
    Workload::ALL
        .into_iter()
        .find(|w| w.name() == name || w.name().starts_with(name))
        .ok_or("unknown workload")
}

fn policy(p: PolicyName) -> Box<dyn Policy> {
    match p {
        PolicyName::Xen33 => Box::new(Xen33::default()),
        PolicyName::Xen4x => Box::new(Xen4x::default()),
        PolicyName::Adaptive => Box::new(Adaptive::new(300_000_000)),
    }
}

fn figures(out: &std::path::Path, a: &SimArgs) -> Result<(), String> {
    std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let run = |w, m, p| simulate(w, a.scale, a.seed, m, policy(p).as_mut());
    let base = run(Workload::Dirtier, Mode::Baseline, PolicyName::Xen33);
    let analysis = run(Workload::Dirtier, Mode::PaperAnalysis, PolicyName::Xen33);
    let aware = run(Workload::Dirtier, Mode::DependencyAware, PolicyName::Xen33);
    let literal = run(
        Workload::Dirtier,
        Mode::PaperLiteralUnsound,
        PolicyName::Xen33,
    );
    let col = |o: &Outcome, f: fn(&depmig_precopy::RoundStats) -> u64| {
        o.summary.rounds.iter().map(f).collect::<Vec<_>>()
    };

    let fig3 = [Series {
        label: "stock pre-copy: pages sent",
        color: "#c0392b",
        values: col(&base, |r| r.sent),
    }];
    let fig4 = [
        Series {
            label: "stock: dirty",
            color: "#c0392b",
            values: col(&analysis, |r| r.dirty),
        },
        Series {
            label: "dirty and tainted",
            color: "#2471a3",
            values: col(&analysis, |r| r.dirty_tainted),
        },
        Series {
            label: "depmig dep-aware: sent",
            color: "#229954",
            values: col(&aware, |r| r.sent),
        },
    ];
    let title3 = "Figure 3 shape: 100 MB dirtier, 2 GB guest, Xen 3.3 policy";
    let title4 = "Figure 4 shape: dirty vs dirty-and-tainted; depmig sent";
    let write = |name: &str, text: &str| {
        let p = out.join(name);
        std::fs::write(&p, text).map_err(|e| format!("{}: {e}", p.display()))
    };
    write("figure3.svg", &svg_plot(title3, "pages per round", &fig3))?;
    write("figure4.svg", &svg_plot(title4, "pages per round", &fig4))?;

    let per_round = rounds_table(&[
        Series {
            label: "stock dirty",
            color: "",
            values: col(&base, |r| r.dirty),
        },
        Series {
            label: "stock sent",
            color: "",
            values: col(&base, |r| r.sent),
        },
        Series {
            label: "dirty & tainted",
            color: "",
            values: col(&analysis, |r| r.dirty_tainted),
        },
        Series {
            label: "dep-aware sent",
            color: "",
            values: col(&aware, |r| r.sent),
        },
        Series {
            label: "dep-aware skipped free",
            color: "",
            values: col(&aware, |r| r.skipped_free),
        },
        Series {
            label: "literal (UNSOUND) sent",
            color: "",
            values: col(&literal, |r| r.sent),
        },
    ]);

    let mut all: Vec<Outcome> = vec![];
    for w in Workload::ALL {
        for m in [
            Mode::Baseline,
            Mode::DependencyAware,
            Mode::PaperLiteralUnsound,
        ] {
            for p in [PolicyName::Xen33, PolicyName::Xen4x, PolicyName::Adaptive] {
                all.push(run(w, m, p));
            }
        }
    }
    let md = format!(
        "# depmig simulator: the paper's Figures 3 and 4\n\nscale {} ({} frames), seed {}, link 1 Gbit/s.\n\n## Per round, dirtier workload (Xen 3.3 policy)\n\n{}\n\n## All workloads\n\n{}\n",
        a.scale,
        base.summary.rounds.first().map_or(0, |r| r.dirty),
        a.seed,
        per_round,
        summary_table(&all)
    );
    write("figures.md", &md)?;
    println!("{md}");
    println!(
        "wrote {}/figure3.svg, figure4.svg, figures.md",
        out.display()
    );
    Ok(())
}

fn run(w: Workload, m: Mode, p: PolicyName, a: &SimArgs) {
    let o = simulate(w, a.scale, a.seed, m, policy(p).as_mut());
    let col = |f: fn(&depmig_precopy::RoundStats) -> u64| {
        o.summary.rounds.iter().map(f).collect::<Vec<_>>()
    };
    let t = rounds_table(&[
        Series {
            label: "dirty",
            color: "",
            values: col(|r| r.dirty),
        },
        Series {
            label: "tainted",
            color: "",
            values: col(|r| r.dirty_tainted),
        },
        Series {
            label: "sent",
            color: "",
            values: col(|r| r.sent),
        },
        Series {
            label: "skipped free",
            color: "",
            values: col(|r| r.skipped_free),
        },
    ]);
    println!("{t}\n{}", summary_table(&[o]));
}

fn main() -> ExitCode {
    // A usage mistake exits with status 2 (clap's), as it always has.
    match Cli::parse().command {
        Cmd::Figures { out, sim } => match figures(&out, &sim) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("depmig-sim: {e}");
                ExitCode::FAILURE
            }
        },
        Cmd::Run {
            workload,
            mode,
            policy,
            sim,
        } => {
            run(workload, mode, policy, &sim);
            ExitCode::SUCCESS
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cmd, clap::Error> {
        Cli::try_parse_from(std::iter::once("depmig-sim").chain(args.iter().copied()))
            .map(|c| c.command)
    }

    /// The README's command, tests/cli.rs's, and the defaults of each.
    #[test]
    fn the_documented_invocations_parse() {
        match parse(&["figures", "--out", "out/sim"]).unwrap() {
            Cmd::Figures { out, sim } => {
                assert_eq!(out, PathBuf::from("out/sim"));
                assert_eq!((sim.scale, sim.seed), (1.0, 1));
            }
            other => panic!("{other:?}"),
        }
        match parse(&["figures", "--out", "/tmp/d", "--scale", "0.03125"]).unwrap() {
            Cmd::Figures { sim, .. } => assert_eq!(sim.scale, 0.03125),
            other => panic!("{other:?}"),
        }
        // Given twice, the last one counts.
        match parse(&["figures", "--scale", "1", "--scale", "0.5"]).unwrap() {
            Cmd::Figures { sim, .. } => assert_eq!(sim.scale, 0.5),
            other => panic!("{other:?}"),
        }
        match parse(&["figures"]).unwrap() {
            Cmd::Figures { out, .. } => assert_eq!(out, PathBuf::from("out/sim")),
            other => panic!("{other:?}"),
        }
        match parse(&["run"]).unwrap() {
            Cmd::Run {
                workload,
                mode,
                policy,
                sim,
            } => {
                assert_eq!(workload, Workload::Dirtier);
                assert_eq!(mode, Mode::Baseline);
                assert_eq!(policy, PolicyName::Xen33);
                assert_eq!((sim.scale, sim.seed), (1.0, 1));
            }
            other => panic!("{other:?}"),
        }
        for (p, want) in [
            ("xen33", PolicyName::Xen33),
            ("xen4x", PolicyName::Xen4x),
            ("adaptive", PolicyName::Adaptive),
        ] {
            match parse(&[
                "run",
                "--workload",
                "http",
                "--mode",
                "paper-literal-unsound",
                "--policy",
                p,
                "--scale",
                "0.5",
                "--seed",
                "7",
            ])
            .unwrap()
            {
                Cmd::Run {
                    workload,
                    mode,
                    policy,
                    sim,
                } => {
                    assert_eq!(workload, Workload::HttpDownload);
                    assert_eq!(mode, Mode::PaperLiteralUnsound);
                    assert_eq!(policy, want);
                    assert_eq!((sim.scale, sim.seed), (0.5, 7));
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn bad_values_are_refused() {
        for args in [
            &["figures", "--scale", "9"][..],
            &["figures", "--scale", "0"],
            &["figures", "--scale", "x"],
            &["figures", "--seed", "-1"],
            &["figures", "--out"],
            &["run", "--workload", "nothing"],
            &["run", "--mode", "fast"],
            &["run", "--policy", "xen5"],
            &["plot"],
            &[],
        ] {
            let e = parse(args).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{args:?}");
        }
        let msg = parse(&["figures", "--scale", "9"]).unwrap_err().to_string();
        assert!(msg.contains("(0, 4]"), "{msg}");
    }
}
