//! The real toolstack implementation against stand-in `xl` and `xenstore-*`
//! scripts that behave like the bookworm tools in the cases depmig relies on:
//! `xenstore-read -R` prints the raw value without a newline and says
//! "couldn't read path" for a missing node; `xenstore-write -R` stores the
//! value as given; `xenstore-chmod PATH PERM...` takes the permissions as
//! separate arguments.

use std::path::{Path, PathBuf};

use depmig_cli::toolstack::{Perm, System, ToolError, Toolstack};

/// Writes an executable script. The file is written by a child `sh`, not
/// by this process: tests run in parallel threads, and a file this
/// process held open for writing would be inherited by whatever another
/// thread forks at that moment, so that executing the script fails with
/// "Text file busy" until that child execs.
fn script(dir: &Path, name: &str, body: &str) {
    use std::io::Write;
    let p = dir.join(name);
    let mut child = std::process::Command::new("sh")
        .args(["-c", "cat > \"$1\" && chmod 755 \"$1\"", "sh"])
        .arg(&p)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(format!("#!/bin/sh\n{body}\n").as_bytes())
        .unwrap();
    drop(stdin);
    assert!(child.wait().unwrap().success());
}

fn stubs(tag: &str) -> (PathBuf, System) {
    let root = std::env::temp_dir().join(format!("depmig-cli-system-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let bin = root.join("bin");
    let store = root.join("store");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::create_dir_all(&store).unwrap();
    let s = store.display();
    script(
        &bin,
        "xenstore-read",
        &format!(
            "[ \"$1\" = -R ] || {{ echo \"usage\" >&2; exit 2; }}\n\
             case $2 in /broken*) echo 'xenstore-read: could not connect to xenstored' >&2; exit 1;; esac\n\
             if [ -f \"{s}$2/.v\" ]; then cat \"{s}$2/.v\"; else echo \"xenstore-read: couldn't read path $2\" >&2; exit 1; fi"
        ),
    );
    script(
        &bin,
        "xenstore-write",
        &format!(
            "[ \"$1\" = -R ] || {{ echo \"usage\" >&2; exit 2; }}\n\
             case $2 in /readonly*) echo \"xenstore-write: could not write path $2\" >&2; exit 1;; esac\n\
             mkdir -p \"{s}$2\" && printf '%s' \"$3\" > \"{s}$2/.v\""
        ),
    );
    script(
        &bin,
        "xenstore-chmod",
        &format!(
            "p=$1; shift\n[ -d \"{s}$p\" ] || {{ echo \"xenstore-chmod: Could not set permissions on $p\" >&2; exit 1; }}\n\
             echo \"$@\" > \"{s}$p/.perms\""
        ),
    );
    script(&bin, "xl", "echo \"args:$#:$*\"; [ \"$1\" = list ] && { echo 'x is an invalid domain identifier (rc=-6)' >&2; exit 1; }; exit 0");
    let sys = System::with_bin_dir(root.join("work"), bin);
    (root, sys)
}

#[test]
fn xenstore_values_go_through_unchanged() {
    let (root, mut sys) = stubs("xs");
    let key = "0123456789abcdef".repeat(4);
    for v in [
        "1",
        "10.77.0.22:7100",
        key.as_str(),
        "a value with spaces",
        "{\"json\":\"with \\\"escapes\\\" and \\\\\"}",
        "",
    ] {
        sys.xs_write("/local/domain/7/depmig/migrate/x", v).unwrap();
        assert_eq!(
            sys.xs_read("/local/domain/7/depmig/migrate/x")
                .unwrap()
                .as_deref(),
            Some(v)
        );
    }
    assert_eq!(
        sys.xs_read("/local/domain/7/depmig/migrate/absent")
            .unwrap(),
        None
    );
    assert!(matches!(
        sys.xs_read("/broken/x"),
        Err(ToolError::Xenstore { .. })
    ));
    assert!(matches!(
        sys.xs_write("/readonly/x", "1"),
        Err(ToolError::Xenstore { .. })
    ));
    sys.xs_chmod(
        "/local/domain/7/depmig/migrate",
        &[Perm::None(0), Perm::Both(7)],
    )
    .unwrap();
    let perms =
        std::fs::read_to_string(root.join("store/local/domain/7/depmig/migrate/.perms")).unwrap();
    assert_eq!(perms.trim(), "n0 b7");
    match sys.xs_chmod("/nowhere", &[Perm::None(0)]) {
        Err(e) => assert!(e.to_string().contains("Could not set permissions"), "{e}"),
        Ok(()) => panic!("chmod of a missing node succeeded"),
    }
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn xl_gets_its_arguments_one_by_one() {
    let (root, mut sys) = stubs("xl");
    let out = sys
        .xl(&[
            "create",
            "-p",
            "/scenario/guest.cfg",
            "name=\"guest--incoming\"",
        ])
        .unwrap();
    assert!(out.ok);
    assert_eq!(
        out.stdout.trim(),
        "args:4:create -p /scenario/guest.cfg name=\"guest--incoming\""
    );
    let out = sys.xl(&["list", "x"]).unwrap();
    assert!(!out.ok);
    assert_eq!(out.last_line(), "x is an invalid domain identifier (rc=-6)");
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn a_missing_tool_is_a_clear_error() {
    let root = std::env::temp_dir().join(format!("depmig-cli-system-{}-none", std::process::id()));
    let mut sys = System::with_bin_dir(root.join("work"), root.join("no-bin"));
    match sys.xl(&["list"]) {
        Err(ToolError::Spawn { program, .. }) => {
            assert!(program.ends_with("no-bin/xl"), "{program}")
        }
        other => panic!("{other:?}"),
    }
}
