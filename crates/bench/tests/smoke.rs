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

/// `--pages` reads a stream's pages (here the stream fixture, whose one
/// frame is sent twice) and prints both tables; a file that is no stream
/// is refused with its reason.
#[test]
fn saved_pages_are_read_from_a_stream() {
    let bench = env!("CARGO_BIN_EXE_depmig-bench");
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../stream/fixtures/valid_full.bin"
    );
    let out = std::process::Command::new(bench)
        .args(["--quick", "--pages", fixture])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("3 pages with data, 2 distinct frames, 1 sent again"),
        "{text}"
    );
    assert!(text.contains("\nguest "), "{text}");
    assert!(text.contains("\nresent "), "{text}");

    let out = std::process::Command::new(bench)
        .args(["--pages", env!("CARGO_MANIFEST_DIR")])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("depmig-bench: reading"));
}
