//! The guest agent's xenstore text, parsed (guest-lsm/README.md,
//! "Publication and control"): frame numbers in `data/depmig/*-gfn`,
//! requests `<seq> <command>` and answers `<seq> <result>`. The guest
//! writes all of it, so every parser here is total: anything unexpected is
//! `None` or [`Answer::Malformed`], never a panic.

/// Longest status or request line taken (the agent's are far shorter).
pub const MAX_LINE: usize = 512;

/// The agent's answer to one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// `frozen <groups> <procs>`.
    Frozen {
        /// Groups frozen.
        groups: u32,
        /// Processes in them.
        procs: u32,
    },
    /// `thawed <groups>`.
    Thawed(u32),
    /// `error <message>`: the agent could not do it.
    Error,
    /// Anything else after the right sequence number.
    Malformed,
}

/// The value of a node as text: NULs and white space around it dropped.
pub fn trim(value: &str) -> &str {
    value.trim_matches(|c: char| c == '\0' || c.is_whitespace())
}

/// A frame number as the agent publishes it (`0x…`, or plain decimal),
/// which must lie below `nr_pfns`.
pub fn parse_gfn(value: &str, nr_pfns: u64) -> Option<u64> {
    let s = trim(value);
    let v = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) if !h.is_empty() && h.len() <= 16 && h.bytes().all(|c| c.is_ascii_hexdigit()) => {
            u64::from_str_radix(h, 16).ok()?
        }
        Some(_) => return None,
        None if !s.is_empty() && s.len() <= 20 && s.bytes().all(|c| c.is_ascii_digit()) => {
            s.parse().ok()?
        }
        None => return None,
    };
    (v < nr_pfns).then_some(v)
}

/// The sequence number that starts a request or status line.
pub fn seq_of(line: &str) -> Option<u32> {
    let s = trim(line);
    if s.len() > MAX_LINE {
        return None;
    }
    let first = s.split(' ').next()?;
    if first.is_empty() || !first.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    first.parse().ok()
}

/// The number of the next request after the one found in the request node
/// (`last`); `fresh` when there is none (the agent acts on any number but
/// the last one it served, so a fresh start must not repeat it).
pub fn next_seq(last: Option<&str>, fresh: u32) -> u32 {
    match last.and_then(seq_of) {
        Some(n) => n.wrapping_add(1),
        None => fresh,
    }
}

/// The answer in `status` to request `seq`, or `None` while the status
/// still answers another request.
pub fn answer_to(status: &str, seq: u32) -> Option<Answer> {
    if seq_of(status)? != seq {
        return None;
    }
    let s = trim(status);
    let rest = s.split_once(' ').map_or("", |(_, r)| r);
    let mut f = rest.split(' ');
    let word = f.next().unwrap_or("");
    let mut num = || -> Option<u32> {
        let w = f.next()?;
        if w.is_empty() || !w.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        w.parse().ok()
    };
    Some(match word {
        "error" => Answer::Error,
        "frozen" => match (num(), num(), f.next()) {
            (Some(groups), Some(procs), None) => Answer::Frozen { groups, procs },
            _ => Answer::Malformed,
        },
        "thawed" => match (num(), f.next()) {
            (Some(n), None) => Answer::Thawed(n),
            _ => Answer::Malformed,
        },
        _ => Answer::Malformed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn frame_numbers() {
        assert_eq!(parse_gfn("0x4f68", 1 << 20), Some(0x4f68));
        assert_eq!(parse_gfn("0X4F68\0", 1 << 20), Some(0x4f68));
        assert_eq!(parse_gfn(" 20328\n", 1 << 20), Some(20328));
        // Outside the guest, empty, signed, junk, too long.
        assert_eq!(parse_gfn("0x100000", 1 << 20), None);
        for bad in [
            "",
            "0x",
            "-1",
            "+5",
            "0x-1",
            "0x+1",
            "12ab",
            "0x1 2",
            "0x00000000000000001",
            "123456789012345678901",
            "0xffffffffffffffff",
        ] {
            assert_eq!(parse_gfn(bad, u64::MAX), None, "{bad:?}");
        }
    }

    #[test]
    fn sequence_numbers() {
        assert_eq!(seq_of("41 thaw"), Some(41));
        assert_eq!(seq_of("41"), Some(41));
        assert_eq!(seq_of("41 thawed 0\0"), Some(41));
        for bad in [
            "",
            "thaw",
            "-1 thaw",
            "+1 thaw",
            "4294967296 thaw",
            "4x thaw",
        ] {
            assert_eq!(seq_of(bad), None, "{bad:?}");
        }
        assert_eq!(next_seq(Some("41 thaw"), 1000), 42);
        assert_eq!(next_seq(Some("junk"), 1000), 1000);
        assert_eq!(next_seq(None, 1000), 1000);
        assert_eq!(next_seq(Some("4294967295 thaw"), 7), 0);
    }

    #[test]
    fn answers() {
        assert_eq!(
            answer_to("7 frozen 2 3", 7),
            Some(Answer::Frozen {
                groups: 2,
                procs: 3
            })
        );
        assert_eq!(answer_to("7 thawed 0\n", 7), Some(Answer::Thawed(0)));
        assert_eq!(
            answer_to("7 error cgroup v2 missing", 7),
            Some(Answer::Error)
        );
        // Another request's status, including one whose number starts alike.
        assert_eq!(answer_to("6 thawed 1", 7), None);
        assert_eq!(answer_to("70 thawed 1", 7), None);
        assert_eq!(answer_to("", 7), None);
        for bad in [
            "7 frozen 2",
            "7 frozen 2 3 4",
            "7 frozen -2 3",
            "7 thawed",
            "7 thawed x",
            "7 thawed 1 2",
            "7 dumped",
            "7",
        ] {
            assert_eq!(answer_to(bad, 7), Some(Answer::Malformed), "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn parsers_take_anything(s in ".{0,600}", seq in any::<u32>(), nr in any::<u64>()) {
            let _ = parse_gfn(&s, nr);
            let _ = seq_of(&s);
            let _ = next_seq(Some(&s), 1);
            let _ = answer_to(&s, seq);
            if let Some(g) = parse_gfn(&s, nr) {
                prop_assert!(g < nr);
            }
        }
    }
}
