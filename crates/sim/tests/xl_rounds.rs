//! `xl-rounds` end to end: an xl-framed stream through the binary, bytes
//! passed through unchanged, rounds reported.

use std::io::Write;
use std::process::{Command, Stdio};

use depmig_stream::*;

fn stream() -> Vec<u8> {
    let mut o = Vec::new();
    let mut e = Encoder::new();
    let d = DomainHeader {
        domain_type: DomainType::X86Hvm,
        page_shift: 12,
        xen_major: 4,
        xen_minor: 17,
    };
    e.headers(&mut o, &d).unwrap();
    e.static_data_end(&mut o).unwrap();
    let page = vec![1u8; PAGE_SIZE];
    // Round 1: pfns 0..3000 in batches of 1024 with a hole; rounds 2, 3.
    let rounds: [Vec<u64>; 3] = [(0..3000).collect(), (100..150).collect(), vec![7, 9]];
    for r in &rounds {
        for c in r.chunks(1024) {
            let entries: Vec<PfnEntry> = c
                .iter()
                .map(|&p| PfnEntry {
                    pfn: p,
                    kind: if p == 5 {
                        PageType::XTab
                    } else {
                        PageType::Normal
                    },
                })
                .collect();
            let pages: Vec<&[u8]> = entries
                .iter()
                .filter(|e| e.kind.has_data())
                .map(|_| &page[..])
                .collect();
            e.page_data(&mut o, &entries, &pages).unwrap();
        }
    }
    e.hvm_context(&mut o, &[1; 16]).unwrap();
    e.end(&mut o).unwrap();
    let mut s = b"banner and config\n".to_vec();
    s.extend_from_slice(&libxl::LIBXL_IDENT.to_be_bytes());
    s.extend_from_slice(&[0, 0, 0, 2, 0, 0, 0, 0]);
    s.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0]);
    s.extend_from_slice(&o);
    s.extend_from_slice(&[0; 8]);
    s
}

#[test]
fn counts_rounds_and_passes_bytes_through() {
    let s = stream();
    let report = std::env::temp_dir().join(format!("xl-rounds-{}.txt", std::process::id()));
    let mut child = Command::new(env!("CARGO_BIN_EXE_xl-rounds"))
        .args(["--tee", "--report", report.to_str().unwrap()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let s2 = s.clone();
    let writer = std::thread::spawn(move || {
        for c in s2.chunks(1000) {
            stdin.write_all(c).unwrap();
        }
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert!(out.status.success());
    assert_eq!(out.stdout, s);
    let text = std::fs::read_to_string(&report).unwrap();
    let _ = std::fs::remove_file(&report);
    assert_eq!(
        text,
        "round 1 entries 3000 pages 2999 records 3\nround 2 entries 50 pages 50 records 1\nround 3 entries 2 pages 2 records 1\nrounds 3\nstatus ok\n"
    );
}
