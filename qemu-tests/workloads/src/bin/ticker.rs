//! ticker: prints a counter and the time every second, so a console shows
//! that the guest is alive; a tick much later than due is reported as a gap.
//! Gaps are measured on the wall clock: a guest suspended for migration does
//! not count the suspension into its monotonic clock, but the wall clock is
//! set again on resume.

use depmig_workloads::unix_ms;
use std::io::Write;
use std::time::{Duration, Instant};

fn main() {
    let out = std::io::stdout();
    let mut n = 0u64;
    let mut next = Instant::now();
    let mut prev = unix_ms();
    loop {
        let now = unix_ms();
        let gap = now.saturating_sub(prev);
        let mut line = format!("ticker: n={n} unix_ms={now}");
        if n > 0 && gap > 1500 {
            line.push_str(&format!(" gap_ms={gap}"));
        }
        let _ = writeln!(out.lock(), "{line}");
        prev = now;
        n += 1;
        next += Duration::from_secs(1);
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        } else {
            // Fell behind (the guest was stopped): restart the cadence.
            next = now;
        }
    }
}
