//! The one command that writes the figures runs and writes them.

use std::process::Command;

#[test]
fn figures_command_writes_tables_and_plots() {
    let dir = std::env::temp_dir().join(format!("depmig-sim-figures-{}", std::process::id()));
    let out = Command::new(env!("CARGO_BIN_EXE_depmig-sim"))
        .args([
            "figures",
            "--out",
            dir.to_str().unwrap(),
            "--scale",
            "0.03125",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("| 30 |"),
        "30 rounds of stock pre-copy in the table"
    );
    for f in ["figure3.svg", "figure4.svg"] {
        let svg = std::fs::read_to_string(dir.join(f)).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("<polyline"), "{f}");
    }
    let md = std::fs::read_to_string(dir.join("figures.md")).unwrap();
    assert!(md.contains("paper-literal-UNSOUND") && md.contains("| NO |"));
    let _ = std::fs::remove_dir_all(&dir);
    let bad = Command::new(env!("CARGO_BIN_EXE_depmig-sim"))
        .args(["figures", "--scale", "9"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
}
