//! The source appliance's per-round line (`round`, also on its console):
//! `round=N dirty=D sent=S skipped_free=F bytes=B ms=T`.

use alloc::string::String;
use core::fmt::{self, Write};

/// One pre-copy round as the `round` key carries it.
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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoundError<'a> {
    /// A field is not `key=number` (the field).
    BadField(&'a str),
    /// A field appears twice.
    Repeated(&'static str),
    /// A field is missing.
    Missing(&'static str),
    /// The line is longer than [`LINE_MAX`].
    TooLong,
}

impl fmt::Display for RoundError<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RoundError::BadField(s) => write!(f, "bad field `{s}`"),
            RoundError::Repeated(k) => write!(f, "field {k} repeated"),
            RoundError::Missing(k) => write!(f, "field {k} missing"),
            RoundError::TooLong => write!(f, "longer than {LINE_MAX} bytes"),
        }
    }
}

impl core::error::Error for RoundError<'_> {}

/// The longest line read: longer than any real one.
pub const LINE_MAX: usize = 512;

/// The agreed fields, in the order they are written.
const FIELDS: [&str; 6] = ["round", "dirty", "sent", "skipped_free", "bytes", "ms"];

impl Round {
    fn values(&self) -> [u64; 6] {
        [
            self.round,
            self.dirty,
            self.sent,
            self.skipped_free,
            self.bytes,
            self.ms,
        ]
    }

    /// The key's text: the six fields in order, `key=decimal`, one space
    /// apart.
    pub fn to_text(&self) -> String {
        let mut line = String::new();
        for (i, (k, v)) in FIELDS.iter().zip(self.values()).enumerate() {
            let sep = if i == 0 { "" } else { " " };
            // Writing to a String cannot fail.
            let _ = write!(line, "{sep}{k}={v}");
        }
        line
    }

    /// Reads a round line. Unknown `key=value` fields are ignored so that
    /// the appliance may add some; the six agreed ones must be there once
    /// each, in any order, separated by white space.
    pub fn parse(line: &str) -> Result<Round, RoundError<'_>> {
        if line.len() > LINE_MAX {
            return Err(RoundError::TooLong);
        }
        let mut vals: [Option<u64>; 6] = [None; 6];
        for field in line.split_whitespace() {
            let (k, v) = field.split_once('=').ok_or(RoundError::BadField(field))?;
            let Some((name, slot)) = FIELDS.iter().zip(vals.iter_mut()).find(|(f, _)| **f == k)
            else {
                continue;
            };
            let n: u64 = v.parse().map_err(|_| RoundError::BadField(field))?;
            if slot.is_some() {
                return Err(RoundError::Repeated(name));
            }
            *slot = Some(n);
        }
        let [round, dirty, sent, skipped_free, bytes, ms] = vals;
        let [f_round, f_dirty, f_sent, f_skipped_free, f_bytes, f_ms] = FIELDS;
        Ok(Round {
            round: round.ok_or(RoundError::Missing(f_round))?,
            dirty: dirty.ok_or(RoundError::Missing(f_dirty))?,
            sent: sent.ok_or(RoundError::Missing(f_sent))?,
            skipped_free: skipped_free.ok_or(RoundError::Missing(f_skipped_free))?,
            bytes: bytes.ok_or(RoundError::Missing(f_bytes))?,
            ms: ms.ok_or(RoundError::Missing(f_ms))?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // These two were the dom0 command's (`parse_round`, in
    // tools/depmig/src/progress.rs), moved here with the parser.
    #[test]
    fn parses_the_agreed_line() {
        let r =
            Round::parse("round=3 dirty=25800 sent=25719 skipped_free=12 bytes=105345024 ms=39700")
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
            Round::parse("ms=1 tainted=4 round=1 sent=2 dirty=3 bytes=5 skipped_free=0").unwrap();
        assert_eq!((r2.round, r2.ms, r2.sent), (1, 1, 2));
    }

    #[test]
    fn rejects_other_lines() {
        assert_eq!(
            Round::parse("round=1 dirty=2"),
            Err(RoundError::Missing("sent"))
        );
        assert_eq!(
            Round::parse("round=x"),
            Err(RoundError::BadField("round=x"))
        );
        assert_eq!(Round::parse("round"), Err(RoundError::BadField("round")));
        assert_eq!(
            Round::parse("round=1 round=2"),
            Err(RoundError::Repeated("round"))
        );
        assert_eq!(
            Round::parse("round=-1"),
            Err(RoundError::BadField("round=-1"))
        );
        assert_eq!(Round::parse(&"x".repeat(600)), Err(RoundError::TooLong));
        assert_eq!(Round::parse(""), Err(RoundError::Missing("round")));
    }

    #[test]
    fn the_engines_line() {
        let r = Round {
            round: 7,
            dirty: 4100,
            sent: 3900,
            skipped_free: 200,
            bytes: 16_015_360,
            ms: 812,
        };
        assert_eq!(
            r.to_text(),
            "round=7 dirty=4100 sent=3900 skipped_free=200 bytes=16015360 ms=812"
        );
        assert_eq!(
            RoundError::BadField("round=x").to_string(),
            "bad field `round=x`"
        );
        assert_eq!(RoundError::TooLong.to_string(), "longer than 512 bytes");
    }

    proptest! {
        #[test]
        fn every_line_reads_as_written(v in any::<[u64; 6]>()) {
            let [round, dirty, sent, skipped_free, bytes, ms] = v;
            let r = Round { round, dirty, sent, skipped_free, bytes, ms };
            let line = r.to_text();
            prop_assert!(line.len() <= LINE_MAX);
            prop_assert_eq!(Round::parse(&line), Ok(r));
        }

        #[test]
        fn no_text_makes_it_panic(s in "[a-z_= 0-9-]{0,80}|\\PC{0,80}") {
            let _ = Round::parse(&s);
        }
    }
}
