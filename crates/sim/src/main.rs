//! `depmig-sim`: simulated migrations and the paper's figures.
//!
//! ```text
//! depmig-sim figures [--out DIR] [--scale F] [--seed N]
//! depmig-sim run --workload NAME --mode NAME [--policy xen33|xen4x|adaptive] [--scale F]
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use depmig_precopy::{Adaptive, Mode, Policy, Xen33, Xen4x};
use depmig_sim::report::{rounds_table, summary_table, svg_plot, Series};
use depmig_sim::run::{simulate, Outcome};
use depmig_sim::workloads::Workload;

fn policy(name: &str) -> Option<Box<dyn Policy>> {
    Some(match name {
        "xen33" => Box::new(Xen33::default()),
        "xen4x" => Box::new(Xen4x::default()),
        "adaptive" => Box::new(Adaptive::new(300_000_000)),
        _ => return None,
    })
}

fn mode(name: &str) -> Option<Mode> {
    Some(match name {
        "baseline" => Mode::Baseline,
        "dependency-aware" => Mode::DependencyAware,
        "paper-analysis" => Mode::PaperAnalysis,
        "paper-literal-unsound" => Mode::PaperLiteralUnsound,
        _ => return None,
    })
}

fn workload(name: &str) -> Option<Workload> {
    Workload::ALL
        .into_iter()
        .find(|w| w.name() == name || w.name().starts_with(name))
}

struct Args {
    cmd: String,
    out: PathBuf,
    scale: f64,
    seed: u64,
    workload: String,
    mode: String,
    policy: String,
}

fn parse() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let mut a = Args {
        cmd: it.next().unwrap_or_default(),
        out: PathBuf::from("out/sim"),
        scale: 1.0,
        seed: 1,
        workload: "dirtier".into(),
        mode: "baseline".into(),
        policy: "xen33".into(),
    };
    while let Some(k) = it.next() {
        let v = it.next().ok_or(format!("{k} needs a value"))?;
        match k.as_str() {
            "--out" => a.out = PathBuf::from(v),
            "--scale" => a.scale = v.parse().map_err(|_| "bad --scale")?,
            "--seed" => a.seed = v.parse().map_err(|_| "bad --seed")?,
            "--workload" => a.workload = v,
            "--mode" => a.mode = v,
            "--policy" => a.policy = v,
            _ => return Err(format!("unknown option {k}")),
        }
    }
    if !(a.scale > 0.0 && a.scale <= 4.0) {
        return Err("--scale must be in (0, 4]".into());
    }
    Ok(a)
}

fn figures(a: &Args) -> Result<(), String> {
    std::fs::create_dir_all(&a.out).map_err(|e| format!("{}: {e}", a.out.display()))?;
    let run = |w, m, p: &str| {
        simulate(
            w,
            a.scale,
            a.seed,
            m,
            policy(p).expect("known policy").as_mut(),
        )
    };
    let base = run(Workload::Dirtier, Mode::Baseline, "xen33");
    let analysis = run(Workload::Dirtier, Mode::PaperAnalysis, "xen33");
    let aware = run(Workload::Dirtier, Mode::DependencyAware, "xen33");
    let literal = run(Workload::Dirtier, Mode::PaperLiteralUnsound, "xen33");
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
        let p = a.out.join(name);
        std::fs::write(&p, text).map_err(|e| format!("{}: {e}", p.display()))
    };
    write(
        "figure3.svg",
        &svg_plot(title3, "pages per round (log)", &fig3),
    )?;
    write(
        "figure4.svg",
        &svg_plot(title4, "pages per round (log)", &fig4),
    )?;

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
            for p in ["xen33", "xen4x", "adaptive"] {
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
        a.out.display()
    );
    Ok(())
}

fn main() -> ExitCode {
    let a = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("depmig-sim: {e}");
            return ExitCode::from(2);
        }
    };
    let r = match a.cmd.as_str() {
        "figures" => figures(&a),
        "run" => (|| {
            let w = workload(&a.workload).ok_or("unknown workload")?;
            let m = mode(&a.mode).ok_or("unknown mode")?;
            let mut p = policy(&a.policy).ok_or("unknown policy")?;
            let o = simulate(w, a.scale, a.seed, m, p.as_mut());
            let t = rounds_table(&[
                Series { label: "dirty", color: "", values: o.summary.rounds.iter().map(|r| r.dirty).collect() },
                Series { label: "tainted", color: "", values: o.summary.rounds.iter().map(|r| r.dirty_tainted).collect() },
                Series { label: "sent", color: "", values: o.summary.rounds.iter().map(|r| r.sent).collect() },
                Series { label: "skipped free", color: "", values: o.summary.rounds.iter().map(|r| r.skipped_free).collect() },
            ]);
            println!("{t}\n{}", summary_table(&[o]));
            Ok::<(), String>(())
        })(),
        _ => Err("usage: depmig-sim figures [--out DIR] [--scale F] [--seed N] | run --workload W --mode M [--policy P]".into()),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("depmig-sim: {e}");
            ExitCode::FAILURE
        }
    }
}
