//! The parser held to the command line it replaced: every option, default,
//! refusal and help text.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use depmig_control::bitmap_route::Route;
use depmig_control::{Compress, DeltaCache, Encodings, Encrypt, Fault, Mode, Policy};

use super::*;

fn migrate(args: &[&str]) -> MigrateOptions {
    match parse_args(args) {
        Ok(Command::Migrate(o)) => *o,
        other => panic!("expected migrate options, got {other:?}"),
    }
}

#[test]
fn defaults() {
    let o = migrate(&["migrate", "guest1", "--config", "/scenario/guest.cfg"]);
    assert_eq!(o.guest, "guest1");
    assert_eq!(o.config, PathBuf::from("/scenario/guest.cfg"));
    assert_eq!(o.mode, Mode::Baseline);
    assert_eq!(o.policy, Policy::Xen4);
    assert_eq!(o.timeout_s, 1800);
    assert_eq!(o.source_ip, Ipv4Addr::new(10, 77, 0, 21));
    assert_eq!(o.destination_ip, Ipv4Addr::new(10, 77, 0, 22));
    assert_eq!((o.prefix, o.port, o.bridge.as_str()), (24, 7100, "xenbr0"));
    assert_eq!(o.link_rate, None);
    assert_eq!(o.key_file, None);
    assert_eq!(o.report, None);
    assert_eq!(o.bitmap_route, Route::Auto);
}

#[test]
fn every_option() {
    let o = migrate(&[
        "migrate",
        "--mode=dependency-aware",
        "--policy",
        "xen-3.3",
        "g",
        "--config",
        "g.cfg",
        "--appliance",
        "/a.elf",
        "--report",
        "r.json",
        "--svg",
        "p.svg",
        "--baseline-report",
        "b.json",
        "--timeout",
        "60",
        "--key-file",
        "k",
        "--source-ip",
        "10.0.0.5",
        "--destination-ip=10.0.0.6",
        "--prefix",
        "16",
        "--port",
        "9000",
        "--bridge",
        "br1",
        "--link-rate",
        "40Mb/s",
        "--appliance-memory",
        "96",
        "--shell-name",
        "g-new",
        "--work-dir",
        "/w",
        "--scenario",
        "s1",
        "--workload",
        "mmuncher",
        "--fault",
        "corrupt-final",
        "--bitmap-route",
        "dom0",
    ]);
    assert_eq!(o.mode, Mode::DependencyAware);
    assert_eq!(o.policy, Policy::Xen33);
    let p = migrate(&[
        "migrate",
        "g",
        "--config",
        "g.cfg",
        "--mode",
        "paper-analysis",
    ]);
    assert_eq!(p.mode, Mode::PaperAnalysis);
    assert_eq!(p.mode.as_str(), "paper-analysis");
    assert_eq!(o.appliance, PathBuf::from("/a.elf"));
    assert_eq!(o.report, Some(PathBuf::from("r.json")));
    assert_eq!(o.svg, Some(PathBuf::from("p.svg")));
    assert_eq!(o.baseline_report, Some(PathBuf::from("b.json")));
    assert_eq!(o.timeout_s, 60);
    assert_eq!(o.key_file, Some(PathBuf::from("k")));
    assert_eq!(o.source_ip, Ipv4Addr::new(10, 0, 0, 5));
    assert_eq!(o.destination_ip, Ipv4Addr::new(10, 0, 0, 6));
    assert_eq!((o.prefix, o.port), (16, 9000));
    assert_eq!(o.bridge, "br1");
    assert_eq!(o.link_rate.as_deref(), Some("40Mb/s"));
    assert_eq!(o.appliance_memory_mib, 96);
    assert_eq!(o.shell_name.as_deref(), Some("g-new"));
    assert_eq!(o.work_dir, PathBuf::from("/w"));
    assert_eq!(o.scenario.as_deref(), Some("s1"));
    assert_eq!(o.workload.as_deref(), Some("mmuncher"));
    assert_eq!(o.fault, Some(Fault::CorruptFinal));
    assert_eq!(o.bitmap_route, Route::Dom0);
}

#[test]
fn verify_and_the_fault_only_it_catches() {
    let base = ["migrate", "g", "--config", "g.cfg"];
    assert!(!migrate(&base).verify);
    let o = migrate(&[&base[..], &["--verify"]].concat());
    assert!(o.verify);
    let o = migrate(&[&base[..], &["--fault", "corrupt-page", "--verify"]].concat());
    assert_eq!((o.fault, o.verify), (Some(Fault::CorruptPage), true));
    let refused = parse_args(&[&base[..], &["--fault", "corrupt-page"]].concat());
    assert_eq!(refused, Err(UsageError::FaultNeedsVerify("corrupt-page")));
    assert_eq!(
        refused.unwrap_err().to_string(),
        "--fault corrupt-page needs --verify: only page verification can catch it"
    );
}

#[test]
fn faults() {
    let base = ["migrate", "g", "--config", "g.cfg"];
    assert_eq!(migrate(&base).fault, None);
    let o = migrate(&[&base[..], &["--fault", "wrong-key"]].concat());
    assert_eq!(o.fault, Some(Fault::WrongKey));
    assert_eq!(o.fault.map(Fault::as_str), Some("wrong-key"));
    assert!(matches!(
        parse_args(&[&base[..], &["--fault", "nonsense"]].concat()),
        Err(UsageError::BadValue {
            option: "--fault",
            ..
        })
    ));
    assert_eq!(
        parse_args(&[&base[..], &["--fault", "wrong-key", "--fault", "wrong-key"]].concat()),
        Err(UsageError::Repeated("--fault"))
    );
}

#[test]
fn encryption_is_on_to_another_host_unless_asked_otherwise() {
    let base = ["migrate", "g", "--config", "g.cfg"];
    // Between this host's own appliances: off; to another host: on.
    assert_eq!(migrate(&base).encrypt(), Encrypt::Off);
    let remote = ["migrate", "g", "hostb", "--config", "g.cfg"];
    assert_eq!(migrate(&remote).encrypt(), Encrypt::On);
    for (v, e) in [("on", Encrypt::On), ("off", Encrypt::Off)] {
        assert_eq!(
            migrate(&[&base[..], &["--encrypt", v]].concat()).encrypt(),
            e
        );
        assert_eq!(
            migrate(&[&remote[..], &["--encrypt", v]].concat()).encrypt(),
            e
        );
    }
    for bad in ["ON", "yes", "", "aead"] {
        assert!(
            matches!(
                parse_args(&[&base[..], &["--encrypt", bad]].concat()),
                Err(UsageError::BadValue {
                    option: "--encrypt",
                    ..
                })
            ),
            "{bad:?}"
        );
    }
}

#[test]
fn compress_is_lz4_unless_told_otherwise() {
    let base = ["migrate", "g", "--config", "g.cfg"];
    assert_eq!(migrate(&base).compress, Compress::Lz4);
    for (v, c) in [("none", Compress::None), ("lz4", Compress::Lz4)] {
        assert_eq!(
            migrate(&[&base[..], &["--compress", v]].concat()).compress,
            c
        );
    }
    for bad in ["LZ4", "zstd", ""] {
        assert!(
            matches!(
                parse_args(&[&base[..], &["--compress", bad]].concat()),
                Err(UsageError::BadValue {
                    option: "--compress",
                    ..
                })
            ),
            "{bad:?}"
        );
    }
}

#[test]
fn the_delta_cache_takes_a_quarter_of_the_appliances_unless_told_and_must_fit() {
    let base = ["migrate", "g", "--config", "g.cfg"];
    // Unasked: a quarter of the appliances' memory, at most 16 MiB.
    assert_eq!(migrate(&base).delta_cache, DeltaCache(16));
    let with = |v: &[&str]| parse_args(&[&base[..], v].concat());
    for (mem, cache) in [("32", 8), ("16", 4), ("256", 16)] {
        assert!(
            matches!(
                with(&["--appliance-memory", mem]),
                Ok(Command::Migrate(o)) if o.delta_cache == DeltaCache(cache)
            ),
            "{mem}"
        );
    }
    assert!(matches!(
        with(&["--delta-cache", "0"]),
        Ok(Command::Migrate(o)) if o.delta_cache == DeltaCache::OFF
    ));
    assert!(matches!(
        with(&["--delta-cache", "4"]),
        Ok(Command::Migrate(o)) if o.delta_cache == DeltaCache(4)
    ));
    // A quarter of the appliances' memory at most: 16 of 64 MiB.
    assert!(with(&["--delta-cache", "16"]).is_ok());
    assert_eq!(
        with(&["--delta-cache", "17"]).err(),
        Some(UsageError::DeltaCacheTooLarge {
            cache: 17,
            memory: 64
        })
    );
    assert!(with(&["--delta-cache", "64", "--appliance-memory", "256"]).is_ok());
    for bad in ["-1", "4M", "", "1025"] {
        assert!(
            matches!(
                with(&["--delta-cache", bad]),
                Err(UsageError::BadValue {
                    option: "--delta-cache",
                    ..
                })
            ),
            "{bad:?}"
        );
    }
    assert_eq!(
        with(&["--delta-cache", "1", "--delta-cache", "2"]).err(),
        Some(UsageError::Repeated("--delta-cache"))
    );
}

#[test]
fn encodings_are_adaptive_unless_pinned() {
    let base = ["migrate", "g", "--config", "g.cfg"];
    assert_eq!(migrate(&base).encodings, Encodings::Adaptive);
    let with = |v: &[&str]| parse_args(&[&base[..], v].concat());
    assert!(matches!(
        with(&["--compress", "lz4", "--encodings", "fixed"]),
        Ok(Command::Migrate(o)) if o.encodings == Encodings::Fixed && o.compress == Compress::Lz4
    ));
    assert!(matches!(
        with(&["--encodings", "adaptive"]),
        Ok(Command::Migrate(o)) if o.encodings == Encodings::Adaptive
    ));
    for bad in ["off", "", "Fixed", "on"] {
        assert!(
            matches!(
                with(&["--encodings", bad]),
                Err(UsageError::BadValue {
                    option: "--encodings",
                    ..
                })
            ),
            "{bad:?}"
        );
    }
    assert_eq!(
        with(&["--encodings", "fixed", "--encodings", "fixed"]).err(),
        Some(UsageError::Repeated("--encodings"))
    );
}

#[test]
fn bitmap_routes() {
    let base = ["migrate", "g", "--config", "g.cfg"];
    assert_eq!(migrate(&base).bitmap_route, Route::Auto);
    for (v, r) in [
        ("auto", Route::Auto),
        ("direct", Route::Direct),
        ("dom0", Route::Dom0),
    ] {
        let o = migrate(&[&base[..], &["--bitmap-route", v]].concat());
        assert_eq!(o.bitmap_route, r);
        assert_eq!(o.bitmap_route.as_str(), v);
        let o = migrate(&[&base[..], &[format!("--bitmap-route={v}").as_str()]].concat());
        assert_eq!(o.bitmap_route, r);
    }
    for bad in ["Dom0", "xl", "", "dom0 "] {
        assert!(
            matches!(
                parse_args(&[&base[..], &["--bitmap-route", bad]].concat()),
                Err(UsageError::BadValue {
                    option: "--bitmap-route",
                    ..
                })
            ),
            "{bad:?}"
        );
    }
    assert_eq!(
        parse_args(
            &[
                &base[..],
                &["--bitmap-route", "dom0", "--bitmap-route", "auto"]
            ]
            .concat()
        ),
        Err(UsageError::Repeated("--bitmap-route"))
    );
    assert_eq!(
        parse_args(&[&base[..], &["--bitmap-route"]].concat()),
        Err(UsageError::MissingValue("--bitmap-route".into()))
    );
}

#[test]
fn help_texts() {
    assert_eq!(parse_args(&["--help"]), Ok(Command::Help(main_help())));
    assert_eq!(parse_args(&["-h"]), Ok(Command::Help(main_help())));
    assert_eq!(
        parse_args(&["migrate", "--help"]),
        Ok(Command::Help(migrate_help()))
    );
    // Help wins even when the rest is incomplete.
    assert_eq!(
        parse_args(&["migrate", "g", "-h"]),
        Ok(Command::Help(migrate_help()))
    );
    // Every option the parser knows is explained in the help.
    for opt in [
        "--config",
        "--mode",
        "--policy",
        "--appliance",
        "--report",
        "--svg",
        "--baseline-report",
        "--timeout",
        "--key-file",
        "--source-ip",
        "--destination-ip",
        "--prefix",
        "--port",
        "--bridge",
        "--link-rate",
        "--rate",
        "--appliance-memory",
        "--shell-name",
        "--work-dir",
        "--scenario",
        "--workload",
        "--fault",
        "--bitmap-route",
        "--help",
    ] {
        assert!(
            migrate_help().contains(&format!(" {opt} ")),
            "{opt} not in help"
        );
        // And each of them is really parsed (not an unknown option).
        let r = parse_args(&["migrate", opt]);
        assert!(
            !matches!(r, Err(UsageError::UnknownOption(_))),
            "{opt} unknown to the parser"
        );
    }
    for v in [
        "baseline",
        "dependency-aware",
        "xen-3.3",
        "xen-4",
        "adaptive",
        "auto | direct | dom0",
    ] {
        assert!(migrate_help().contains(v));
    }
    for code in ["  0  ", "  1  ", "  2  ", "  3  ", "  4  "] {
        assert!(
            migrate_help().contains(code),
            "exit code {code} undocumented"
        );
    }
}

#[test]
fn usage_errors() {
    let cfg = ["--config", "g.cfg"];
    let with = |extra: &[&str]| {
        let mut v = vec!["migrate", "g"];
        v.extend_from_slice(&cfg);
        v.extend_from_slice(extra);
        parse_args(&v)
    };
    assert_eq!(parse_args::<&str>(&[]), Err(UsageError::NoCommand));
    assert_eq!(
        parse_args(&["frobnicate"]),
        Err(UsageError::UnknownCommand("frobnicate".into()))
    );
    assert_eq!(
        parse_args(&["--bogus"]),
        Err(UsageError::UnknownOption("--bogus".into()))
    );
    assert_eq!(
        parse_args(&["migrate", "--config", "g.cfg"]),
        Err(UsageError::MissingGuest)
    );
    assert_eq!(
        parse_args(&["migrate", "g"]),
        Err(UsageError::MissingConfig)
    );
    assert_eq!(
        with(&["h", "i"]),
        Err(UsageError::ExtraArgument("i".into()))
    );
    assert_eq!(
        with(&["--timeout"]),
        Err(UsageError::MissingValue("--timeout".into()))
    );
    assert_eq!(
        with(&["--frob", "1"]),
        Err(UsageError::UnknownOption("--frob".into()))
    );
    assert_eq!(
        with(&["--config", "x"]),
        Err(UsageError::Repeated("--config"))
    );
    let bad = |extra: &[&str], opt: &str| match with(extra) {
        Err(UsageError::BadValue { option, .. }) => assert_eq!(option, opt, "{extra:?}"),
        other => panic!("{extra:?}: expected a bad value, got {other:?}"),
    };
    bad(&["--mode", "fast"], "--mode");
    bad(&["--policy", "xen-5"], "--policy");
    bad(&["--timeout", "0"], "--timeout");
    bad(&["--timeout", "-3"], "--timeout");
    bad(&["--timeout", "ten"], "--timeout");
    bad(&["--source-ip", "10.77.0"], "--source-ip");
    bad(&["--destination-ip", "::1"], "--destination-ip");
    bad(&["--prefix", "33"], "--prefix");
    bad(&["--port", "0"], "--port");
    bad(&["--port", "70000"], "--port");
    bad(&["--bridge", "br\"0"], "--bridge");
    bad(&["--link-rate", "40Mb/s,script=x"], "--link-rate");
    bad(&["--link-rate", "fast"], "--link-rate");
    bad(&["--rate", "1Mb/s\""], "--link-rate");
    assert_eq!(
        with(&["--rate", "8Mb/s"])
            .map(|c| matches!(c, Command::Migrate(o) if o.link_rate.as_deref() == Some("8Mb/s"))),
        Ok(true)
    );
    assert_eq!(
        with(&["--rate", "8Mb/s", "--link-rate", "9Mb/s"]),
        Err(UsageError::Repeated("--link-rate/--rate"))
    );
    bad(&["--appliance-memory", "8"], "--appliance-memory");
    bad(&["--shell-name", "a b"], "--shell-name");
    match parse_args(&["migrate", "g\"x", "--config", "c"]) {
        Err(UsageError::BadValue {
            option: "<guest>", ..
        }) => {}
        other => panic!("quote in a guest name accepted: {other:?}"),
    }
    // Messages say what is wrong.
    let msg = with(&["--mode", "fast"]).unwrap_err().to_string();
    assert!(
        msg.contains("fast") && msg.contains("dependency-aware"),
        "{msg}"
    );
}

fn compare(args: &[&str]) -> Result<CompareOptions, UsageError> {
    let mut v = vec!["compare"];
    v.extend_from_slice(args);
    match parse_args(&v)? {
        Command::Compare(o) => Ok(o),
        other => panic!("expected compare options, got {other:?}"),
    }
}

#[test]
fn compare_arguments() {
    let o = compare(&[
        "stock=out/b.json",
        "--title",
        "mmuncher <128 MiB>",
        "--svg=p.svg",
        "depmig aware=d=1.json",
        "--markdown",
        "t.md",
        "--json",
        "c.json",
        "--guest-pages",
        "32768",
    ])
    .unwrap();
    assert_eq!(o.title.as_deref(), Some("mmuncher <128 MiB>"));
    assert_eq!(o.svg, Some(PathBuf::from("p.svg")));
    assert_eq!(o.markdown, Some(PathBuf::from("t.md")));
    assert_eq!(o.json, Some(PathBuf::from("c.json")));
    assert_eq!(o.guest_pages, Some(32768));
    // The label ends at the first `=`; the order is kept.
    assert_eq!(
        o.reports,
        vec![
            ("stock".to_string(), PathBuf::from("out/b.json")),
            ("depmig aware".to_string(), PathBuf::from("d=1.json")),
        ]
    );
    let o = compare(&["a=x"]).unwrap();
    assert_eq!((o.title, o.svg, o.guest_pages), (None, None, None));

    assert_eq!(compare(&[]), Err(UsageError::NoReports));
    assert_eq!(compare(&["--svg", "p.svg"]), Err(UsageError::NoReports));
    assert_eq!(
        compare(&["a=x", "a=y"]),
        Err(UsageError::DuplicateLabel("a".into()))
    );
    let many: Vec<String> = (0..=MAX_COMPARE_REPORTS)
        .map(|i| format!("r{i}=f"))
        .collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    assert_eq!(compare(&many), Err(UsageError::TooManyReports));
    assert!(compare(&many[..MAX_COMPARE_REPORTS]).is_ok());
    assert_eq!(
        compare(&["a=x", "--frob"]),
        Err(UsageError::UnknownOption("--frob".into()))
    );
    assert_eq!(
        compare(&["a=x", "--json"]),
        Err(UsageError::MissingValue("--json".into()))
    );
    assert_eq!(
        compare(&["a=x", "--svg", "a", "--svg", "b"]),
        Err(UsageError::Repeated("--svg"))
    );
    let long = "l".repeat(MAX_LABEL_CHARS + 1) + "=f";
    for bad in ["nolabel", "=f", "a=", "a\nb=f", &long] {
        match compare(&[bad]) {
            Err(UsageError::BadValue {
                option: "LABEL=REPORT",
                ..
            }) => {}
            other => panic!("{bad:?}: {other:?}"),
        }
    }
    for (opt, v) in [
        ("--guest-pages", "0"),
        ("--guest-pages", "-1"),
        ("--guest-pages", "many"),
        ("--guest-pages", "2000000000000"),
        ("--title", "a\u{7}b"),
    ] {
        match compare(&["a=x", opt, v]) {
            Err(UsageError::BadValue { option, .. }) => assert_eq!(option, opt),
            other => panic!("{opt} {v}: {other:?}"),
        }
    }
    // Help wins, and documents every option, target key and exit code.
    assert_eq!(
        parse_args(&["compare", "a=x", "--help"]),
        Ok(Command::Help(compare_help()))
    );
    for opt in [
        "--title",
        "--svg",
        "--markdown",
        "--json",
        "--guest-pages",
        "--help",
    ] {
        assert!(
            compare_help().contains(&format!(" {opt} ")),
            "{opt} not in help"
        );
        assert!(
            !matches!(
                parse_args(&["compare", opt]),
                Err(UsageError::UnknownOption(_))
            ),
            "{opt} unknown to the parser"
        );
    }
    for key in [
        "da_later_rounds_le_100",
        "da_total_pages_le_1_05_guest",
        "da_downtime_le_0_1_stock",
        "pa_total_pages_within_5pct_of_baseline",
        "da_total_pages_within_5pct_of_baseline",
    ] {
        assert!(compare_help().contains(key), "{key} not in help");
    }
    for code in ["  0  ", "  1  ", "  2  "] {
        assert!(
            compare_help().contains(code),
            "exit code {code} undocumented"
        );
    }
    assert!(main_help().contains("depmig compare") && main_help().contains("  compare  "));
}

#[test]
fn domain_names() {
    assert!(valid_domain_name("guest-1.a_b"));
    assert!(!valid_domain_name(""));
    assert!(!valid_domain_name("a/b"));
    assert!(!valid_domain_name("a\"b"));
    assert!(!valid_domain_name(&"x".repeat(65)));
}

#[test]
fn every_option_of_the_parser_can_be_reported_repeated() {
    use clap::CommandFactory;
    let cli = Cli::command();
    let mut seen = Vec::new();
    for sub in cli.get_subcommands() {
        for arg in sub.get_arguments() {
            if let Some(long) = arg.get_long().filter(|l| *l != "help" && *l != "link-rate") {
                let name = format!("--{long}");
                assert!(OPTION_NAMES.contains(&name.as_str()), "{name} not listed");
                seen.push(name);
            }
        }
    }
    for name in OPTION_NAMES {
        assert!(
            seen.iter().any(|s| s == name),
            "{name} listed but not parsed"
        );
    }
    for sub in ["migrate", "compare"] {
        let base: &[&str] = if sub == "migrate" {
            &["migrate", "g", "--config", "c"]
        } else {
            &["compare", "a=x"]
        };
        for name in OPTION_NAMES.iter().filter(|n| **n != "--config") {
            let value = match *name {
                "--mode" => "baseline",
                "--policy" => "xen-4",
                "--fault" => "wrong-key",
                "--bitmap-route" => "dom0",
                "--compress" => "lz4",
                "--encrypt" => "off",
                "--encodings" => "fixed",
                "--source-ip" | "--destination-ip" => "10.0.0.1",
                "--bridge" | "--shell-name" => "b",
                _ => "16",
            };
            // A flag takes no value.
            let args = if *name == "--verify" || *name == "--require-agent" {
                [base, &[*name, *name]].concat()
            } else {
                [base, &[*name, value, *name, value]].concat()
            };
            match parse_args(&args) {
                Err(UsageError::Repeated(n)) => assert_eq!(n, *name),
                // An option of the other command.
                Err(UsageError::UnknownOption(o)) => assert_eq!(o, *name),
                other => panic!("{args:?}: {other:?}"),
            }
        }
    }
}

#[test]
fn help_also_as_a_command_and_after_options() {
    assert_eq!(parse_args(&["help"]), Ok(Command::Help(main_help())));
    assert_eq!(
        parse_args(&["help", "migrate", "-x"]),
        Ok(Command::Help(main_help()))
    );
    assert_eq!(
        parse_args(&["compare", "--svg", "p.svg", "-h"]),
        Ok(Command::Help(compare_help()))
    );
    assert!(migrate_help().starts_with("depmig migrate: "));
    assert!(compare_help().starts_with("depmig compare: "));
    // Defaults are shown where clap knows them.
    for d in ["[default: 1800]", "[default: xenbr0]", "[default: auto]"] {
        assert!(migrate_help().contains(d), "{d}");
    }
}

/// `depmig` as the rig's scripts and the READMEs run it, with their shell
/// variables filled in: each line must parse, to the options they mean.
#[test]
fn the_invocations_of_the_scripts_and_readmes_parse() {
    use clap::Parser;
    // qemu-tests/migrate/migrate.sh, depmig_migrate NAME REPORT SVG [OPTIONS...],
    // with $DEPMIG_LINK_RATE (run.sh's default) and $DEPMIG_MIGRATE_ARGS
    // (qemu-tests/README.md's example) set.
    let rig = |report: &str, svg: &str, extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = [
            "migrate",
            "guest",
            "--config",
            "/tmp/guest.cfg",
            "--appliance",
            "/scenario/depmig-appliance",
            "--report",
            report,
            "--svg",
            svg,
            "--rate",
            "20Mb/s",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        v.extend(extra.iter().map(|s| s.to_string()));
        v.extend(["--bitmap-route".to_string(), "direct".to_string()]);
        v
    };
    let cases: Vec<(Vec<String>, Mode, Option<Fault>, u64)> = vec![
        // migrate-faults.sh
        (
            rig(
                "/tmp/f1.json",
                "/tmp/f1.svg",
                &["--fault", "wrong-key", "--timeout", "1200"],
            ),
            Mode::Baseline,
            Some(Fault::WrongKey),
            1200,
        ),
        (
            rig(
                "/tmp/f2.json",
                "/tmp/f2.svg",
                &["--fault", "corrupt-final", "--timeout", "1200"],
            ),
            Mode::Baseline,
            Some(Fault::CorruptFinal),
            1200,
        ),
        (
            rig("/tmp/f3.json", "/tmp/f3.svg", &["--timeout", "1200"]),
            Mode::Baseline,
            None,
            1200,
        ),
        // migrate-mmuncher.sh
        (
            rig(
                "/tmp/depmig-mmuncher.json",
                "/tmp/depmig-mmuncher.svg",
                &[
                    "--scenario",
                    "migrate-mmuncher",
                    "--workload",
                    "mmuncher",
                    "--baseline-report",
                    "/tmp/baseline-mmuncher.json",
                ],
            ),
            Mode::Baseline,
            None,
            1800,
        ),
        // migrate-paper.sh
        (
            rig(
                "/tmp/depmig-paper.json",
                "/tmp/depmig-paper.svg",
                &[
                    "--mode",
                    "paper-analysis",
                    "--timeout",
                    "3000",
                    "--scenario",
                    "migrate-paper",
                    "--workload",
                    "mmuncher-4MiB+quiet-mmuncher-4MiB",
                ],
            ),
            Mode::PaperAnalysis,
            None,
            3000,
        ),
        // migrate-paper-da.sh (through depmig_migrate_retrying)
        (
            rig(
                "/tmp/depmig-paper-da.json",
                "/tmp/depmig-paper-da.svg",
                &[
                    "--mode",
                    "dependency-aware",
                    "--timeout",
                    "3000",
                    "--scenario",
                    "migrate-paper-da",
                    "--workload",
                    "mmuncher-4MiB+quiet-mmuncher-4MiB",
                ],
            ),
            Mode::DependencyAware,
            None,
            3000,
        ),
        // migrate-smoke.sh
        (
            rig(
                "/tmp/depmig-smoke.json",
                "/tmp/depmig-smoke.svg",
                &[
                    "--scenario",
                    "migrate-smoke",
                    "--workload",
                    "mmuncher-16MiB",
                ],
            ),
            Mode::Baseline,
            None,
            1800,
        ),
        // paper-mixed.sh
        (
            rig(
                "/tmp/depmig-mixed.json",
                "/tmp/depmig-mixed.svg",
                &[
                    "--mode",
                    "dependency-aware",
                    "--timeout",
                    "3000",
                    "--scenario",
                    "paper-mixed",
                    "--workload",
                    "quiet-mmuncher-32MiB+httpd",
                ],
            ),
            Mode::DependencyAware,
            None,
            3000,
        ),
    ];
    // paper-mmuncher.sh (and paper-http.sh), one per mode.
    let mut cases = cases;
    for (mode, m) in [
        ("baseline", Mode::Baseline),
        ("paper-analysis", Mode::PaperAnalysis),
        ("dependency-aware", Mode::DependencyAware),
    ] {
        let (json, svg) = (format!("/tmp/{mode}.json"), format!("/tmp/{mode}.svg"));
        for (s, wl) in [
            ("paper-mmuncher", "quiet-mmuncher-32MiB"),
            ("paper-http", "httpdl+httpd"),
        ] {
            let extra = [
                "--mode",
                mode,
                "--timeout",
                "3000",
                "--scenario",
                s,
                "--workload",
                wl,
                "--baseline-report",
                "/tmp/stock.json",
            ];
            cases.push((rig(&json, &svg, &extra), m, None, 3000));
        }
    }
    for (args, mode, fault, timeout) in &cases {
        let argv = std::iter::once("depmig").chain(args.iter().map(String::as_str));
        assert!(Cli::try_parse_from(argv).is_ok(), "{args:?}");
        let o = match parse_args(args) {
            Ok(Command::Migrate(o)) => o,
            other => panic!("{args:?}: {other:?}"),
        };
        assert_eq!((o.mode, o.fault, o.timeout_s), (*mode, *fault, *timeout));
        assert_eq!(o.guest, "guest");
        assert_eq!(o.appliance, PathBuf::from("/scenario/depmig-appliance"));
        assert_eq!(o.link_rate.as_deref(), Some("20Mb/s"));
        assert_eq!(o.bitmap_route, Route::Direct);
        assert!(o.report.is_some() && o.svg.is_some());
    }

    // tools/depmig/README.md.
    let readme = [
        "migrate",
        "guest",
        "--config",
        "/etc/xen/guest.cfg",
        "--appliance",
        "/scenario/depmig-appliance",
        "--mode",
        "baseline",
        "--policy",
        "xen-4",
        "--rate",
        "40Mb/s",
        "--report",
        "guest.json",
        "--svg",
        "guest.svg",
        "--baseline-report",
        "stock.json",
    ];
    assert!(Cli::try_parse_from(std::iter::once("depmig").chain(readme)).is_ok());
    let o = match parse_args(&readme) {
        Ok(Command::Migrate(o)) => o,
        other => panic!("{other:?}"),
    };
    assert_eq!((o.mode, o.policy), (Mode::Baseline, Policy::Xen4));
    assert_eq!(o.baseline_report, Some(PathBuf::from("stock.json")));
    for help in [
        &["--help"][..],
        &["migrate", "--help"],
        &["compare", "--help"],
    ] {
        assert!(matches!(parse_args(help), Ok(Command::Help(_))), "{help:?}");
    }

    // paper-mmuncher.sh's comparison, and tools/depmig/README.md's.
    let title = "paper-mmuncher: pages sent per round (256 MiB guest, 20Mb/s)";
    let rig_compare = [
        "compare",
        "--title",
        title,
        "--guest-pages",
        "65536",
        "--svg",
        "/tmp/paper-mmuncher.svg",
        "--markdown",
        "/tmp/paper-mmuncher.md",
        "--json",
        "/tmp/paper-mmuncher-compare.json",
        "stock-xl=/tmp/stock.json",
        "depmig-baseline=/tmp/baseline.json",
        "depmig-paper-analysis=/tmp/paper-analysis.json",
        "depmig-dependency-aware=/tmp/dependency-aware.json",
    ];
    let readme_compare = [
        "compare",
        "--title",
        "mmuncher, 128 MiB",
        "--svg",
        "cmp.svg",
        "--markdown",
        "cmp.md",
        "--json",
        "cmp.json",
        "stock=baseline-mmuncher.json",
        "baseline=depmig-baseline.json",
        "paper=depmig-paper.json",
        "aware=depmig-da.json",
    ];
    for (args, title, first) in [
        (&rig_compare[..], title, "stock-xl"),
        (&readme_compare[..], "mmuncher, 128 MiB", "stock"),
    ] {
        assert!(Cli::try_parse_from(std::iter::once("depmig").chain(args.iter().copied())).is_ok());
        match parse_args(args) {
            Ok(Command::Compare(o)) => {
                assert_eq!(o.title.as_deref(), Some(title));
                assert_eq!(o.reports.len(), 4);
                assert_eq!(o.reports[0].0, first);
                assert!(o.svg.is_some() && o.markdown.is_some() && o.json.is_some());
            }
            other => panic!("{args:?}: {other:?}"),
        }
    }
}

#[test]
fn messages_name_the_limits_they_enforce() {
    let msg = UsageError::TooManyReports.to_string();
    assert!(msg.contains(&MAX_COMPARE_REPORTS.to_string()), "{msg}");
    assert_eq!(
        UsageError::Repeated("--port").to_string(),
        "option --port given twice"
    );
    assert_eq!(
        UsageError::BadValue {
            option: "--port",
            value: "0".into(),
            expected: "a TCP port, 1 to 65535"
        }
        .to_string(),
        "bad value `0` for --port: expected a TCP port, 1 to 65535"
    );
}

#[test]
fn link_rates_parse_as_xl_computes_them() {
    use super::link_rate_bytes_per_s as bps;
    assert_eq!(bps("40Mb/s"), Some(5_000_000));
    assert_eq!(bps("20Mb/s"), Some(2_500_000));
    assert_eq!(bps("5MB/s@20ms"), Some(5_000_000));
    assert_eq!(bps("1Gb/s@50us"), Some(125_000_000));
    assert_eq!(bps("100KB/s@1s"), Some(100_000));
    assert_eq!(bps("7b/s"), Some(0));
    assert_eq!(bps("4096B/s"), Some(4096));
    assert_eq!(bps("4294967295B/s"), Some(4_294_967_295));
    for bad in [
        "",
        "40Mb",
        "40Mb/",
        "Mb/s",
        "0Mb/s",
        "4294967296B/s",
        "40mb/s",
        "40M/s",
        "40Mb/s@",
        "40Mb/s@ms",
        "40Mb/s@20h",
        "40Mb/s@20ms@1",
        "-4Mb/s",
        "4 Mb/s",
        "40Mb/s,script=x",
        "+4Mb/s",
        "40Mb/s@4294967296us",
    ] {
        assert_eq!(bps(bad), None, "{bad:?}");
        assert_eq!(super::link_rate(bad), None, "{bad:?}");
    }
}
