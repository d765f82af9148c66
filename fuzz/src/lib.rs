//! Harnesses of depmig's fuzz targets: each `run` takes the fuzzer's bytes,
//! drives one parser the way the appliance does on hostile input, and
//! panics when a documented invariant breaks (a panic inside the crate under
//! test is a finding too). The binaries in `src/bin` hand them to afl.rs;
//! the tests below replay the committed seeds through them.
#![forbid(unsafe_code)]

pub mod netfront;
pub mod report;
pub mod seeds;
pub mod stream;
pub mod twohost;
pub mod verify;
pub mod walker;
pub mod xenstore;

/// Reads the fuzzer's bytes front to back; past the end every read is
/// zero (so any input is a complete program for a harness).
#[derive(Clone, Debug)]
pub struct Input<'a> {
    rest: &'a [u8],
}

impl<'a> Input<'a> {
    /// A reader over `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Input { rest: data }
    }

    /// Whether every byte was read.
    pub fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    /// The next byte (0 past the end).
    pub fn u8(&mut self) -> u8 {
        match self.rest.split_first() {
            Some((&b, rest)) => {
                self.rest = rest;
                b
            }
            None => 0,
        }
    }

    /// The next `N` bytes, zero-padded past the end.
    pub fn array<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        let n = N.min(self.rest.len());
        out[..n].copy_from_slice(&self.rest[..n]);
        self.rest = &self.rest[n..];
        out
    }

    /// A little-endian u16.
    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes(self.array())
    }

    /// A little-endian u32.
    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.array())
    }

    /// A little-endian u64.
    pub fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.array())
    }

    /// Up to `n` bytes (fewer at the end).
    pub fn bytes(&mut self, n: usize) -> &'a [u8] {
        let (head, tail) = self.rest.split_at(n.min(self.rest.len()));
        self.rest = tail;
        head
    }

    /// Everything not read yet.
    pub fn rest(&mut self) -> &'a [u8] {
        core::mem::take(&mut self.rest)
    }
}

/// Cuts a byte string into segments of fuzzer-chosen sizes, the way a
/// socket or a ring hands data over: `seed`'s high nibble sets the largest
/// segment (1 to 32 KiB, 0xF: no cut at all), its bits drive a small
/// xorshift for the sizes.
#[derive(Clone, Debug)]
pub struct Cuts {
    state: u32,
    max: usize,
}

impl Cuts {
    /// Segments chosen by `seed`.
    pub fn new(seed: u8) -> Self {
        let shift = seed >> 4;
        Cuts {
            state: u32::from(seed) | 0x9e37_7900,
            max: if shift == 0xf { usize::MAX } else { 1 << shift },
        }
    }

    /// The size of the next segment, at most `left` (and at least 1 when
    /// `left` is not 0).
    pub fn next(&mut self, left: usize) -> usize {
        if self.max == usize::MAX {
            return left;
        }
        let mut x = self.state;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.state = x;
        (1 + x as usize % self.max).min(left)
    }
}

/// FNV-1a, to compare what two runs saw without keeping it all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Digest(pub u64);

impl Default for Digest {
    fn default() -> Self {
        Digest(0xcbf2_9ce4_8422_2325)
    }
}

impl Digest {
    /// Adds bytes.
    pub fn bytes(&mut self, b: &[u8]) {
        for &x in b {
            self.0 ^= u64::from(x);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    /// Adds a number.
    pub fn u64(&mut self, v: u64) {
        self.bytes(&v.to_le_bytes());
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    fn dir(target: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("seeds")
            .join(target)
    }

    /// The committed seeds are the generators' bytes; with
    /// `DEPMIG_FUZZ_WRITE_SEEDS=1` the test writes them instead.
    #[test]
    fn seeds_are_current() {
        let write = std::env::var_os("DEPMIG_FUZZ_WRITE_SEEDS").is_some();
        for (target, seeds) in crate::seeds::all() {
            let d = dir(target);
            if write {
                std::fs::create_dir_all(&d).unwrap();
            }
            let mut names: Vec<String> = Vec::new();
            for (name, bytes) in &seeds {
                let f = d.join(format!("{name}.bin"));
                names.push(format!("{name}.bin"));
                if write {
                    std::fs::write(&f, bytes).unwrap();
                }
                assert_eq!(
                    &std::fs::read(&f).unwrap(),
                    bytes,
                    "{} is stale",
                    f.display()
                );
                assert!(bytes.len() <= 8192, "{} is large", f.display());
            }
            let mut on_disk: Vec<String> = std::fs::read_dir(&d)
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect();
            on_disk.sort();
            names.sort();
            assert_eq!(on_disk, names, "seeds of {target}");
        }
    }

    fn seed(target: &str, name: &str) -> Vec<u8> {
        std::fs::read(dir(target).join(format!("{name}.bin"))).unwrap()
    }

    #[test]
    fn stream_seeds_complete() {
        use crate::stream::{run, Outcome};
        for name in ["signed-migration", "raw-migration"] {
            match run(&seed("stream", name)) {
                Outcome::Dest(Ok(s)) => {
                    assert_eq!(
                        (s.pages_written, s.pages_zeroed, s.holes),
                        (1, 1, 1),
                        "{name}"
                    );
                    assert_eq!(s.ring_pages_kept, 1, "{name}");
                    assert_eq!(s.params_applied, 1, "{name}");
                }
                other => panic!("{name}: {other:?}"),
            }
        }
        assert_eq!(
            run(&seed("stream", "decoder-records")),
            Outcome::Decoder(Ok(true))
        );
        // The packed seed decodes with packed pages accepted, and is
        // refused by a decoder that did not agree to them.
        let mut packed = seed("stream", "decoder-packed");
        assert_eq!(run(&packed), Outcome::Decoder(Ok(true)));
        packed[0] &= !4;
        assert_eq!(
            run(&packed),
            Outcome::Decoder(Err(depmig_stream::DecodeError::NotNegotiated(
                depmig_stream::rec::DEPMIG_PACKED_PAGES
            )))
        );
        let mut delta = seed("stream", "decoder-delta");
        assert_eq!(run(&delta), Outcome::Decoder(Ok(true)));
        delta[0] &= !8;
        assert_eq!(
            run(&delta),
            Outcome::Decoder(Err(depmig_stream::DecodeError::NotNegotiated(
                depmig_stream::rec::DEPMIG_DELTA_PAGES
            )))
        );
        assert_eq!(run(&seed("stream", "xl-stream")), Outcome::Xl(Ok(true)));
    }

    #[test]
    fn stream_refuses_forgeries() {
        use crate::stream::{run, Outcome};
        use depmig_migrate::DestError;
        use depmig_stream::{HandshakeError, RxError};
        // The raw seed with one byte of the page changed: refused by the tag.
        let mut s = seed("stream", "raw-migration");
        let at = s.len() - 1000;
        s[at] ^= 1;
        assert_eq!(
            run(&s),
            Outcome::Dest(Err(DestError::Stream(RxError::Handshake(
                HandshakeError::BadTag
            ))))
        );
    }

    #[test]
    fn xenstore_seeds_parse() {
        use crate::xenstore::run;
        for (name, replies, events) in [
            ("read-reply", 1, 0),
            ("directory-reply", 1, 0),
            ("transaction-reply", 1, 0),
            ("error-and-ok", 1, 0),
            ("watch-event-at-wrap", 0, 1),
            ("large-value", 1, 0),
        ] {
            let o = run(&seed("xenstore", name));
            assert_eq!(
                (o.replies, o.events, o.errors),
                (replies, events, 0),
                "{name}: {o:?}"
            );
        }
        let o = run(&seed("xenstore", "encode-write"));
        assert_eq!(o.errors, 0);
    }

    #[test]
    fn walker_seeds_walk() {
        use crate::walker::run;
        for name in [
            "guest-4-level",
            "guest-5-level",
            "guest-4-level-cached",
            "guest-5-level-cached-small",
            "guest-4-level-6.12-page-types",
            "guest-5-level-6.12-page-types-cached",
        ] {
            let o = run(&seed("walker", name));
            // Four address spaces; the free blocks (88 frames) less beta's
            // lying frame and the frames not asked about.
            assert_eq!(o.classified, Ok(4), "{name}");
            assert!((60..88).contains(&o.free), "{name}: {o:?}");
        }
        // Six tasks against a bound of three: everything tainted, none free.
        let o = run(&seed("walker", "guest-small-limits"));
        assert_eq!(o.classified, Err(depmig_walker::WalkError::TaskListTooLong));
        assert_eq!(o.free, 0);
        let _ = run(&seed("walker", "guest-poked"));
    }

    #[test]
    fn report_seeds_are_accepted_and_damage_is_refused() {
        use crate::report::{run, Outcome};
        assert_eq!(
            run(&seed("report", "two-rounds-finished")),
            Outcome::Accepted(2)
        );
        assert_eq!(
            run(&seed("report", "without-figures")),
            Outcome::Accepted(0)
        );
        let mut cut = seed("report", "two-rounds-finished");
        cut.truncate(cut.len() / 2);
        assert_eq!(run(&cut), Outcome::Refused);
        assert_eq!(run(&[0xff, 0xfe]), Outcome::NotText);
    }

    #[test]
    fn verify_seeds_reach_their_verdicts() {
        use crate::verify::{run, Outcome};
        let dest = |name| match run(&seed("verify", name)) {
            Outcome::Dest(Ok(s)) => s,
            other => panic!("{name}: {other:?}"),
        };
        let s = dest("dest-raw-equal");
        assert_eq!((s.ranges, s.mismatched_ranges), (1, 0));
        let s = dest("dest-raw-frame-changed");
        assert_eq!((s.mismatched_ranges, s.listed), (1, vec![40]));
        let s = dest("dest-tagged-frame-unfree");
        assert_eq!((s.ranges, s.mismatched_ranges), (3, 1));
        assert_eq!(s.listed, vec![527]);
        assert_eq!(
            s.listed_classes,
            vec![(
                depmig_migrate::verify::Class::Data,
                depmig_migrate::verify::Class::Free
            )]
        );
        let s = dest("dest-tagged-two-messages");
        assert_eq!((s.ranges, s.mismatched_ranges), (17, 0));
        let source = |name| match run(&seed("verify", name)) {
            Outcome::Source(r) => r,
            other => panic!("{name}: {other:?}"),
        };
        let s = source("source-raw-verdict").unwrap().unwrap();
        assert_eq!(s.mismatched_ranges, 0);
        let s = source("source-raw-narrowed").unwrap().unwrap();
        assert_eq!((s.mismatched_ranges, s.listed), (1, vec![40]));
        let s = source("source-tagged-narrowed").unwrap().unwrap();
        assert_eq!((s.mismatched_frames, s.listed), (1, vec![527]));
        assert_eq!(source("source-reply"), Ok(None));
        assert!(matches!(
            source("source-uncovered"),
            Err(depmig_migrate::VerifyError::Uncovered { .. })
        ));
        let pair = |name| match run(&seed("verify", name)) {
            Outcome::Pair(s) => s,
            other => panic!("{name}: {other:?}"),
        };
        assert_eq!(pair("pair-equal").mismatched_ranges, 0);
        let s = pair("pair-changes");
        assert_eq!((s.mismatched_ranges, s.mismatched_frames), (2, 3), "{s:?}");
        assert_eq!(pair("pair-two-messages-gone").mismatched_frames, 1);
    }

    #[test]
    fn verify_refuses_a_wrong_tag_before_the_body() {
        use crate::verify::{run, Outcome};
        use depmig_migrate::VerifyError;
        // The raw seed with one byte of its first digest changed.
        let mut s = seed("verify", "dest-raw-equal");
        let at = 2 + 10 + 2 + 8 + 20;
        s[at] ^= 1;
        assert_eq!(run(&s), Outcome::Dest(Err(VerifyError::BadTag)));
        // The tagged seed with its first message tagged as the second.
        let mut s = seed("verify", "dest-tagged-frame-unfree");
        s[2 + 10 + 2] |= 2 << 4;
        assert_eq!(run(&s), Outcome::Dest(Err(VerifyError::BadTag)));
    }

    #[test]
    fn twohost_seeds_are_read() {
        use crate::twohost::run;
        use depmig_cli::twohost::channel::ChannelError;
        use depmig_cli::twohost::protocol::ProtocolError;
        let o = run(&seed("twohost", "requests"));
        assert_eq!(
            o.accepted,
            [
                "hello",
                "prepare",
                "status",
                "abort",
                "query",
                "done",
                "source-stopped"
            ]
        );
        assert_eq!(o.end, Some(ChannelError::Closed));
        let o = run(&seed("twohost", "replies"));
        assert_eq!(o.accepted.len(), 8);
        assert_eq!(o.end, Some(ChannelError::Closed));
        for name in ["built-prepare", "built-reply"] {
            let o = run(&seed("twohost", name));
            assert_eq!((o.accepted.len(), o.end), (1, None), "{name}");
        }
        assert_eq!(run(&seed("twohost", "status-at-cap")).accepted, ["status"]);
        let o = run(&seed("twohost", "status-over-cap"));
        assert!(o.accepted.is_empty());
        assert_eq!(o.end, Some(ChannelError::Protocol(ProtocolError::TooLong)));
    }

    #[test]
    fn netfront_seeds_move_frames() {
        use crate::netfront::run;
        let o = run(&seed("netfront", "traffic"));
        assert_eq!(o.error, None);
        assert_eq!((o.stats.tx_packets, o.stats.rx_packets), (2, 2), "{o:?}");
        assert_eq!(o.stats.rx_bytes, 60 + 1514);
        let o = run(&seed("netfront", "dropped-chains"));
        assert_eq!(o.error, None);
        assert_eq!((o.stats.rx_packets, o.stats.rx_dropped), (1, 3), "{o:?}");
        assert_eq!(run(&seed("netfront", "config-values")).error, None);
    }
}
