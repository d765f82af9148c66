//! The status `mmuncher --status-comm` keeps in its own process name, so a
//! quiet writer (nothing but `/dev/null` open) can be checked from outside
//! through `/proc/<pid>/comm` without any interaction of its own.
//!
//! Format: `q<passes> ok` while every verification so far was clean,
//! `q<passes> BAD` from the first corrupt page on (sticky); `<passes>` is the
//! number of completed passes in decimal, held at [`PASSES_MAX`] (ten
//! digits) so that the name fits the kernel's 15 bytes.

use std::fmt;

/// Longest process name the kernel keeps (`TASK_COMM_LEN` − 1).
pub const COMM_MAX: usize = 15;

/// Largest pass count shown; later passes show this (`q9999999999 BAD`
/// is exactly [`COMM_MAX`] bytes).
pub const PASSES_MAX: u64 = 9_999_999_999;

/// Pass count and verdict of a muncher, as its process name shows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CommStatus {
    passes: u64,
    corrupt: bool,
}

impl CommStatus {
    /// No pass run, nothing found corrupt (`q0 ok`).
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that `passes` passes are complete and the last one found
    /// `bad_pages` corrupt pages; once any was, the status stays `BAD`.
    pub fn record(&mut self, passes: u64, bad_pages: u64) {
        self.passes = passes;
        self.corrupt |= bad_pages != 0;
    }

    /// Whether every verification so far was clean.
    pub fn clean(&self) -> bool {
        !self.corrupt
    }

    /// The name as `PR_SET_NAME` takes it: at most [`COMM_MAX`] bytes,
    /// NUL-terminated and NUL-padded.
    pub fn name(&self) -> [u8; COMM_MAX + 1] {
        let mut out = [0u8; COMM_MAX + 1];
        let text = self.to_string();
        for (o, b) in out.iter_mut().take(COMM_MAX).zip(text.bytes()) {
            *o = b;
        }
        out
    }
}

impl fmt::Display for CommStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verdict = if self.corrupt { "BAD" } else { "ok" };
        write!(f, "q{} {verdict}", self.passes.min(PASSES_MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name_text(s: &CommStatus) -> String {
        let n = s.name();
        assert_eq!(n[COMM_MAX], 0, "always NUL-terminated");
        let len = n.iter().position(|&b| b == 0).unwrap();
        assert!(n[len..].iter().all(|&b| b == 0));
        String::from_utf8(n[..len].to_vec()).unwrap()
    }

    #[test]
    fn format_and_sticky_bad() {
        let mut s = CommStatus::new();
        assert_eq!(s.to_string(), "q0 ok");
        s.record(1, 0);
        s.record(12345, 0);
        assert_eq!(name_text(&s), "q12345 ok");
        assert!(s.clean());
        s.record(12346, 3);
        assert_eq!(name_text(&s), "q12346 BAD");
        for p in 12347..12350 {
            s.record(p, 0);
        }
        assert_eq!(name_text(&s), "q12349 BAD");
        assert!(!s.clean());
    }

    #[test]
    fn fits_the_kernel_name_for_any_count() {
        for p in [
            0,
            9,
            10,
            PASSES_MAX - 1,
            PASSES_MAX,
            PASSES_MAX + 1,
            u64::MAX,
        ] {
            for bad in [0, 1, u64::MAX] {
                let mut s = CommStatus::new();
                s.record(p, bad);
                let t = name_text(&s);
                assert!(t.len() <= COMM_MAX, "{t}");
                assert_eq!(t, s.to_string(), "nothing cut off");
                let shown: u64 = t[1..].split(' ').next().unwrap().parse().unwrap();
                assert_eq!(shown, p.min(PASSES_MAX));
            }
        }
        let mut s = CommStatus::new();
        s.record(u64::MAX, 1);
        assert_eq!(name_text(&s), "q9999999999 BAD");
        assert_eq!(name_text(&s).len(), COMM_MAX);
    }

    #[test]
    fn shell_pattern_of_the_rig_matches() {
        // The rig reads `q<digits> ok|BAD` from /proc/<pid>/comm.
        let mut s = CommStatus::new();
        s.record(7, 0);
        let t = s.to_string();
        let (q, v) = t.split_once(' ').unwrap();
        assert!(q.starts_with('q') && q[1..].bytes().all(|b| b.is_ascii_digit()));
        assert!(v == "ok" || v == "BAD");
    }
}
