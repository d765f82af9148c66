//! The source appliance's per-round line (`migrate/round`) and the progress
//! line printed for it.

use std::fmt;

/// One parsed `migrate/round` value:
/// `round=N dirty=D sent=S skipped_free=F bytes=B ms=T`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Round {
    /// Round number, from 1.
    pub round: u64,
    /// Pages dirty at the start of the round.
    pub dirty: u64,
    /// Pages sent.
    pub sent: u64,
    /// Pages skipped because they are free in the guest.
    pub skipped_free: u64,
    /// Stream bytes of the round.
    pub bytes: u64,
    /// Duration, milliseconds.
    pub ms: u64,
}

/// A round line that does not follow the agreed form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoundError {
    /// A field is not `key=number`.
    BadField(String),
    /// A field appears twice.
    Repeated(&'static str),
    /// A field is missing.
    Missing(&'static str),
    /// The line is longer than any real one.
    TooLong,
}

impl fmt::Display for RoundError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RoundError::BadField(s) => write!(f, "bad field `{s}`"),
            RoundError::Repeated(k) => write!(f, "field {k} repeated"),
            RoundError::Missing(k) => write!(f, "field {k} missing"),
            RoundError::TooLong => write!(f, "longer than 512 bytes"),
        }
    }
}

impl std::error::Error for RoundError {}

const FIELDS: [&str; 6] = ["round", "dirty", "sent", "skipped_free", "bytes", "ms"];

/// Parses a round line. Unknown `key=value` fields are ignored so the
/// appliance may add some; the six agreed ones must be there once each.
pub fn parse_round(line: &str) -> Result<Round, RoundError> {
    if line.len() > 512 {
        return Err(RoundError::TooLong);
    }
    let mut vals: [Option<u64>; 6] = [None; 6];
    for field in line.split_whitespace() {
        let (k, v) = field
            .split_once('=')
            .ok_or_else(|| RoundError::BadField(field.to_string()))?;
        let Some(i) = FIELDS.iter().position(|f| *f == k) else {
            continue;
        };
        let n: u64 = v
            .parse()
            .map_err(|_| RoundError::BadField(field.to_string()))?;
        let slot = vals
            .get_mut(i)
            .ok_or_else(|| RoundError::BadField(field.to_string()))?;
        if slot.is_some() {
            return Err(RoundError::Repeated(FIELDS.get(i).copied().unwrap_or("?")));
        }
        *slot = Some(n);
    }
    let get = |i: usize| -> Result<u64, RoundError> {
        vals.get(i)
            .copied()
            .flatten()
            .ok_or(RoundError::Missing(FIELDS.get(i).copied().unwrap_or("?")))
    };
    Ok(Round {
        round: get(0)?,
        dirty: get(1)?,
        sent: get(2)?,
        skipped_free: get(3)?,
        bytes: get(4)?,
        ms: get(5)?,
    })
}

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
    fn parses_the_agreed_line() {
        let r =
            parse_round("round=3 dirty=25800 sent=25719 skipped_free=12 bytes=105345024 ms=39700")
                .unwrap();
        assert_eq!(
            r,
            Round {
                round: 3,
                dirty: 25800,
                sent: 25719,
                skipped_free: 12,
                bytes: 105345024,
                ms: 39700
            }
        );
        // Extra fields are allowed, order is free.
        let r2 =
            parse_round("ms=1 tainted=4 round=1 sent=2 dirty=3 bytes=5 skipped_free=0").unwrap();
        assert_eq!((r2.round, r2.ms, r2.sent), (1, 1, 2));
    }

    #[test]
    fn rejects_other_lines() {
        assert_eq!(
            parse_round("round=1 dirty=2"),
            Err(RoundError::Missing("sent"))
        );
        assert_eq!(
            parse_round("round=x"),
            Err(RoundError::BadField("round=x".into()))
        );
        assert_eq!(
            parse_round("round"),
            Err(RoundError::BadField("round".into()))
        );
        assert_eq!(
            parse_round("round=1 round=2"),
            Err(RoundError::Repeated("round"))
        );
        assert_eq!(
            parse_round("round=-1"),
            Err(RoundError::BadField("round=-1".into()))
        );
        assert_eq!(parse_round(&"x".repeat(600)), Err(RoundError::TooLong));
        assert_eq!(parse_round(""), Err(RoundError::Missing("round")));
    }

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
