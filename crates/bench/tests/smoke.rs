//! The bench binary runs at tiny sizes and checks its own results.

#[test]
fn quick_bench_runs() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_depmig-bench"))
        .arg("--quick")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("x memcpy time"), "{text}");
    assert!(text.contains("decode (64 KiB segments)"), "{text}");
}
