//! The progress line printed for the source appliance's per-round line
//! (`migrate/round`, read as the contract's [`Round`]).

use depmig_control::Round;

/// A bar of `width` cells filled in proportion `num / den` (clamped).
pub fn bar(num: u64, den: u64, width: usize) -> String {
    let filled = if den == 0 {
        0
    } else {
        let f = (u128::from(num.min(den)) * width as u128) / u128::from(den);
        usize::try_from(f).unwrap_or(width).min(width)
    };
    format!("[{}{}]", "#".repeat(filled), ".".repeat(width - filled))
}

/// The progress line for a round: the bar shows the pages sent against the
/// guest's memory (when known).
pub fn progress_line(r: &Round, guest_pages: Option<u64>, state: &str) -> String {
    let share = match guest_pages {
        Some(p) if p > 0 => format!(
            " {} {:>5.1}% of guest",
            bar(r.sent, p, 30),
            r.sent as f64 * 100.0 / p as f64
        ),
        _ => String::new(),
    };
    format!(
        "round {:>3}{share}  sent {} pages ({:.1} MiB), dirty {}, skipped free {}, {:.1} s  [{state}]",
        r.round,
        r.sent,
        r.bytes as f64 / 1_048_576.0,
        r.dirty,
        r.skipped_free,
        r.ms as f64 / 1000.0,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars() {
        assert_eq!(bar(0, 10, 10), "[..........]");
        assert_eq!(bar(5, 10, 10), "[#####.....]");
        assert_eq!(bar(10, 10, 10), "[##########]");
        assert_eq!(bar(99, 10, 10), "[##########]");
        assert_eq!(bar(1, 0, 4), "[....]");
        assert_eq!(bar(u64::MAX, u64::MAX, 4), "[####]");
    }

    #[test]
    fn progress_lines() {
        let r = Round {
            round: 2,
            dirty: 100,
            sent: 65536,
            skipped_free: 3,
            bytes: 268_435_456,
            ms: 1500,
        };
        let l = progress_line(&r, Some(131072), "streaming");
        assert!(
            l.starts_with("round   2 [###############...............]  50.0% of guest"),
            "{l}"
        );
        assert!(
            l.contains(
                "sent 65536 pages (256.0 MiB), dirty 100, skipped free 3, 1.5 s  [streaming]"
            ),
            "{l}"
        );
        let l = progress_line(&r, None, "final");
        assert!(!l.contains('#') && l.contains("[final]"), "{l}");
    }
}
