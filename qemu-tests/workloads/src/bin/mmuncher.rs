//! mmuncher: rewrites N MiB as fast as it can, checking before each rewrite
//! that every page still holds what the previous pass wrote.
//!
//! Output lines (read by the rig's scenarios):
//! `mmuncher: verify ok passes=N ...` every period while all is well;
//! `mmuncher: CORRUPT ...` for each bad page found (the first few) and in
//! every later periodic line: once corrupt, always reported corrupt.
//!
//! With `--status-comm` it also sets its own process name (`prctl
//! PR_SET_NAME`, no file opened) at start and after every pass to
//! `q<passes> ok`, or `q<passes> BAD` from the first corrupt page on
//! (sticky); `<passes>` is held at 9999999999 so the name fits the
//! kernel's 15 bytes (`depmig_workloads::comm`). A quiet muncher (stdin,
//! stdout and stderr on `/dev/null`) is then checked from outside with
//! `cat /proc/<pid>/comm`, which is no interaction of its own.

use depmig_workloads::args::Args;
use depmig_workloads::comm::{CommStatus, COMM_MAX};
use depmig_workloads::pattern::{Corruption, Muncher, PAGE_SIZE};
use depmig_workloads::unix_ms;
use std::io::Write;
use std::time::{Duration, Instant};

const MAX_REPORTED: usize = 16;

/// Largest `--mib` accepted (1 TiB).
const MAX_MIB: usize = 1 << 20;

/// Sets the calling thread's name (the main thread's is the process's
/// `/proc/<pid>/comm`); a failure leaves the old name, which the reader
/// outside then sees not advancing.
fn set_comm(name: &[u8; COMM_MAX + 1]) {
    // SAFETY: PR_SET_NAME reads at most 16 bytes from the pointer, which
    // points to a live 16-byte array ending in NUL; no other argument is used.
    unsafe {
        libc::prctl(libc::PR_SET_NAME, name.as_ptr() as libc::c_ulong, 0, 0, 0);
    }
}

fn main() {
    // The one option without a value.
    let mut status_comm = false;
    let words: Vec<String> = std::env::args()
        .skip(1)
        .filter(|w| {
            let flag = w == "--status-comm";
            status_comm |= flag;
            !flag
        })
        .collect();
    let args = match Args::parse(words, &["mib", "report-secs", "passes"]) {
        Ok(a) => a,
        Err(e) => {
            eprintln!(
                "mmuncher: {e}\nusage: mmuncher [--mib 100] [--report-secs 5] [--passes 0] [--status-comm]"
            );
            std::process::exit(2);
        }
    };
    let (mib, secs, max_passes) = match (
        args.num("mib", 100usize),
        args.num("report-secs", 5u64),
        args.num("passes", 0u64),
    ) {
        (Ok(m), Ok(s), Ok(p)) if m > 0 && m <= MAX_MIB => (m, s.max(1), p),
        _ => {
            eprintln!("mmuncher: bad --mib (1..={MAX_MIB}), --report-secs or --passes");
            std::process::exit(2);
        }
    };
    let pages = mib * ((1 << 20) / PAGE_SIZE);
    let mut comm = CommStatus::new();
    if status_comm {
        set_comm(&comm.name());
    }
    let mut m = Muncher::new(pages);
    let out = std::io::stdout();
    let _ = writeln!(
        out.lock(),
        "mmuncher: start mib={mib} pages={pages} unix_ms={}",
        unix_ms()
    );
    let period = Duration::from_secs(secs);
    let mut last = Instant::now();
    let mut last_passes = 0u64;
    let mut bad_total = 0u64;
    let mut reported = 0usize;
    loop {
        let mut bad: Vec<Corruption> = Vec::new();
        let n = m.pass(&mut bad, MAX_REPORTED);
        bad_total = bad_total.saturating_add(n);
        if status_comm {
            comm.record(m.passes(), n);
            set_comm(&comm.name());
        }
        for c in bad.iter().take(MAX_REPORTED.saturating_sub(reported)) {
            let _ = writeln!(
                out.lock(),
                "mmuncher: CORRUPT page={} pass={} {:?}",
                c.page,
                c.pass,
                c.what
            );
            reported += 1;
        }
        let done = max_passes != 0 && m.passes() >= max_passes;
        let el = last.elapsed();
        if el >= period || done {
            let rate = (m.passes() - last_passes) as f64 * pages as f64 / el.as_secs_f64();
            let status = if bad_total == 0 {
                format!("verify ok passes={}", m.passes())
            } else {
                format!("CORRUPT bad_pages={bad_total} passes={}", m.passes())
            };
            let _ = writeln!(
                out.lock(),
                "mmuncher: {status} pages_per_s={rate:.0} unix_ms={}",
                unix_ms()
            );
            last = Instant::now();
            last_passes = m.passes();
        }
        if done {
            std::process::exit(i32::from(bad_total != 0));
        }
    }
}
