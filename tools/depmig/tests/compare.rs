//! `depmig compare` as a program: its exit statuses and files, on the rig's
//! own report format.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("depmig-compare-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn depmig(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_depmig"))
        .args(args)
        .output()
        .unwrap()
}

/// A report in the schema both migrators write, compact.
fn report(migrator: &str, pages: &[u64], downtime: u64, depmig: &str) -> String {
    let rounds: Vec<String> = pages
        .iter()
        .enumerate()
        .map(|(i, p)| format!("{{\"round\":{},\"pages\":{p}}}", i + 1))
        .collect();
    let list: Vec<String> = pages.iter().map(u64::to_string).collect();
    format!(
        "{{\"schema\":\"depmig-migration-report/1\",\"migrator\":\"{migrator}\",\"page_size\":4096,\
         \"rounds\":{n},\"final_round\":{n},\"per_round_pages\":[{l}],\"per_round\":[{r}],\
         \"total_pages\":{t},\"stream_bytes\":{b},\"downtime_ms\":{downtime},\"total_time_ms\":900{depmig}}}",
        n = pages.len(),
        l = list.join(","),
        r = rounds.join(","),
        t = pages.iter().sum::<u64>(),
        b = pages.iter().sum::<u64>() * 4100,
    )
}

fn write(d: &Path, name: &str, text: &str) -> String {
    let p = d.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

#[test]
fn exit_statuses_and_outputs() {
    let d = dir("run");
    let stock = write(
        &d,
        "stock.json",
        &report("xl-migrate", &[1000, 300, 290], 900, ""),
    );
    let aware = write(
        &d,
        "aware.json",
        &report(
            "depmig",
            &[1000, 30, 12],
            80,
            ",\"depmig\":{\"mode\":\"dependency-aware\",\"frozen_groups\":1,\
             \"per_round_dirty\":[1000,30,12],\"per_round_dirty_tainted\":[1000,30,12],\
             \"per_round_skipped_free\":[0,0,4]}",
        ),
    );
    let (svg, md, js) = (d.join("c.svg"), d.join("c.md"), d.join("c.json"));
    let out = depmig(&[
        "compare",
        "--title",
        "small <guest>",
        &format!("xl={stock}"),
        &format!("aware={aware}"),
        "--svg",
        svg.to_str().unwrap(),
        "--markdown",
        md.to_str().unwrap(),
        "--json",
        js.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.starts_with("# small <guest>\n"));
    assert!(stdout.contains("| 2 | 300 | 30 |"));
    assert_eq!(std::fs::read_to_string(&md).unwrap(), stdout);
    let j = std::fs::read_to_string(&js).unwrap();
    assert!(
        j.contains("\"da_later_rounds_le_100\":{\"met\":true,"),
        "{j}"
    );
    assert!(
        j.contains("\"da_downtime_le_0_1_stock\":{\"met\":true,"),
        "{j}"
    );
    assert!(
        j.contains("\"da_total_pages_le_1_05_guest\":{\"met\":true,"),
        "{j}"
    );
    let s = std::fs::read_to_string(&svg).unwrap();
    assert_eq!(s.matches("<polyline ").count(), 2);
    assert!(s.contains("small &lt;guest&gt;"));

    // Targets not met are still a comparison: status 0.
    let slow = write(
        &d,
        "slow.json",
        &report(
            "depmig",
            &[1000, 300, 290],
            800,
            ",\"depmig\":{\"mode\":\"dependency-aware\"}",
        ),
    );
    let out = depmig(&["compare", &format!("xl={stock}"), &format!("d={slow}")]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(String::from_utf8(out.stdout)
        .unwrap()
        .contains("**NOT met**"));

    // A malformed report: status 1, the file and the field named.
    let bad = write(
        &d,
        "bad.json",
        &report(
            "depmig",
            &[1000, 30],
            80,
            ",\"depmig\":{\"mode\":\"paper-analysis\",\"per_round_dirty\":[1]}",
        ),
    );
    let out = depmig(&["compare", &format!("xl={stock}"), &format!("p={bad}")]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("bad.json") && err.contains("depmig.per_round_dirty"),
        "{err}"
    );
    assert!(out.stdout.is_empty());
    // A missing one: status 1.
    let out = depmig(&["compare", "x=/nonexistent/r.json"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8(out.stderr)
        .unwrap()
        .contains("/nonexistent/r.json"));

    // Usage errors: status 2. Help: status 0.
    for args in [
        &["compare"][..],
        &["compare", "--guest-pages", "0", "a=b"],
        &["compare", "a=b", "a=c"],
        &["compare", "--bogus", "a=b"],
    ] {
        assert_eq!(depmig(args).status.code(), Some(2), "{args:?}");
    }
    let help = depmig(&["compare", "--help"]);
    assert_eq!(help.status.code(), Some(0));
    assert!(String::from_utf8(help.stdout)
        .unwrap()
        .contains("LABEL=REPORT.json"));
    let _ = std::fs::remove_dir_all(&d);
}
