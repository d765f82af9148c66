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

use clap::Parser;
use depmig_workloads::args::Mmuncher;
use depmig_workloads::comm::{CommStatus, COMM_MAX};
use depmig_workloads::group::{self, Group};
use depmig_workloads::pattern::{Corruption, Muncher, PAGE_SIZE};
use depmig_workloads::unix_ms;
use std::io::Write;
use std::time::{Duration, Instant};

const MAX_REPORTED: usize = 16;

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

/// Pins the calling thread to CPU `cpu`; whether it worked.
fn pin_to(cpu: usize) -> bool {
    if cpu >= libc::CPU_SETSIZE as usize {
        return false;
    }
    // SAFETY: all zeroes is the empty cpu_set_t; CPU_SET is given a CPU
    // below CPU_SETSIZE (checked above), and sched_setaffinity reads exactly
    // size_of::<cpu_set_t>() bytes of the live set; pid 0 is this thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0
    }
}

fn main() {
    let args = Mmuncher::parse();
    if args.threads > 1 {
        threaded(&args);
    }
    let status_comm = args.status_comm;
    let (mib, secs, max_passes) = (args.mib, args.report_secs.max(1), args.passes);
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

/// `--threads N` (N > 1): the buffer split among N threads, one per vCPU;
/// the same lines as one thread prints, with the slowest thread's passes,
/// and the thread of each corrupt page. Never returns.
fn threaded(args: &Mmuncher) -> ! {
    let (mib, secs, max_passes) = (args.mib, args.report_secs.max(1), args.passes);
    let pages = mib * ((1 << 20) / PAGE_SIZE);
    let out = std::io::stdout();
    let Some(parts) = group::split(pages, args.threads) else {
        let _ = writeln!(
            out.lock(),
            "mmuncher: {mib} MiB is too little for {} threads",
            args.threads
        );
        std::process::exit(2);
    };
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut comm = CommStatus::new();
    if args.status_comm {
        set_comm(&comm.name());
    }
    let pin: fn(usize) -> bool = if cpus >= args.threads {
        pin_to
    } else {
        |_| false
    };
    let g = Group::start(
        parts.into_iter().map(Muncher::new).collect(),
        max_passes,
        pin,
    );
    let pinned: Vec<String> = g
        .pinned()
        .iter()
        .map(|c| c.map_or_else(|| "-".to_string(), |c| c.to_string()))
        .collect();
    let _ = writeln!(
        out.lock(),
        "mmuncher: start mib={mib} pages={pages} threads={} cpus={cpus} pinned={} unix_ms={}",
        args.threads,
        pinned.join(","),
        unix_ms()
    );
    let period = Duration::from_secs(secs);
    let mut last = Instant::now();
    let mut last_total: u64 = 0;
    let mut last_min = 0u64;
    let mut reported = 0usize;
    loop {
        std::thread::sleep(Duration::from_millis(100));
        let done = g.finished();
        let min = g.min_passes();
        let bad_total = g.bad_total();
        if args.status_comm && (min != last_min || bad_total != 0) {
            comm.record(min, bad_total);
            set_comm(&comm.name());
        }
        last_min = min;
        let kept = g.corruptions();
        for (t, c) in kept
            .iter()
            .skip(reported)
            .take(MAX_REPORTED.saturating_sub(reported))
        {
            let _ = writeln!(
                out.lock(),
                "mmuncher: CORRUPT page={} pass={} thread={t} {:?}",
                c.page,
                c.pass,
                c.what
            );
        }
        reported = reported.max(kept.len().min(MAX_REPORTED));
        let el = last.elapsed();
        if el >= period || done {
            // Pages rewritten by all threads since the last line.
            let total: u64 = g
                .passes()
                .iter()
                .zip(group::split(pages, args.threads).unwrap_or_default())
                .map(|(p, n)| p.saturating_mul(n as u64))
                .sum();
            let rate = total.saturating_sub(last_total) as f64 / el.as_secs_f64();
            let status = if bad_total == 0 {
                format!("verify ok passes={min}")
            } else {
                format!("CORRUPT bad_pages={bad_total} passes={min}")
            };
            let _ = writeln!(
                out.lock(),
                "mmuncher: {status} pages_per_s={rate:.0} unix_ms={}",
                unix_ms()
            );
            last = Instant::now();
            last_total = total;
        }
        if done {
            std::process::exit(i32::from(bad_total != 0));
        }
    }
}
