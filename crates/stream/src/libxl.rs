//! The libxl layer around the libxc stream, as stock `xl migrate` sends it,
//! and a per-round page counter for such streams.
//!
//! `xl migrate` writes its own preamble (a banner exchange and the domain
//! configuration) and then the libxl stream: a header (ident "LibxlFmt",
//! version 2, options; big-endian), then records framed like libxc's
//! (type, length, body padded to 8, little-endian). A `LIBXC_CONTEXT`
//! record (empty) hands the byte stream to libxc, whose own image header
//! follows; when libxc's END (or CHECKPOINT) has been read, libxl records
//! resume, ending with libxl's END.
//!
//! [`XlStreamScanner`] skips the preamble by searching for the ident, skips
//! libxl record bodies without buffering them, and runs the strict libxc
//! [`Decoder`] on the embedded stream.
//!
//! # Rounds
//!
//! libxc's saver sends each pre-copy round by walking its dirty bitmap from
//! pfn 0 upwards (`send_dirty_pages`: `for p in 0..p2m_size`, batched into
//! PAGE_DATA records of at most 1024 entries, flushed in order), and the
//! first round walks every pfn the same way. The stream has no record
//! between rounds, so [`RoundCounter`] starts a new round whenever a pfn is
//! not above the previous one. Two limits follow and are inherent: a round
//! with no dirty page leaves no trace, and a round whose every pfn lies
//! above the last pfn of the round before merges with it (rare once the
//! first round has ended at the top of the p2m).
//!
//! PANICS: `small` is a `[u8; 16]` indexed with constants below 16; every
//! other access is checked.

use alloc::vec::Vec;

use crate::decode::{DecodeError, Decoder, Event, Limits, Record};

/// libxl stream ident, "LibxlFmt".
pub const LIBXL_IDENT: u64 = 0x4c69_6278_6c46_6d74;
/// libxl stream version.
pub const LIBXL_VERSION: u32 = 2;
/// libxl header option bit 0: big-endian.
pub const LIBXL_OPT_BIG_ENDIAN: u32 = 1 << 0;
/// libxl header option bit 1: converted from a legacy stream.
pub const LIBXL_OPT_LEGACY: u32 = 1 << 1;

/// libxl record types.
pub mod librec {
    /// End of the libxl stream.
    pub const END: u32 = 0;
    /// The libxc stream follows.
    pub const LIBXC_CONTEXT: u32 = 1;
    /// Device model xenstore data.
    pub const EMULATOR_XENSTORE_DATA: u32 = 2;
    /// Device model state.
    pub const EMULATOR_CONTEXT: u32 = 3;
    /// End of a checkpoint.
    pub const CHECKPOINT_END: u32 = 4;
    /// Checkpoint state (COLO).
    pub const CHECKPOINT_STATE: u32 = 5;
}

/// Why an `xl migrate` stream could not be followed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LibxlError {
    /// No libxl header within the preamble cap.
    HeaderNotFound,
    /// The libxl version is not 2.
    UnsupportedVersion(u32),
    /// The libxl stream is big-endian or legacy-converted.
    UnsupportedOptions(u32),
    /// A LIBXC_CONTEXT record with a body.
    BadLibxcContext(u32),
    /// The embedded libxc stream was refused.
    Libxc(DecodeError),
}

/// What the scanner saw.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XlEvent<'a> {
    /// The libxl header, after `skipped` preamble bytes.
    LibxlHeader {
        /// Preamble bytes before the header.
        skipped: u64,
        /// Options word.
        options: u32,
    },
    /// A libxl record header (its body is skipped).
    LibxlRecord {
        /// Record type.
        rtype: u32,
        /// Body length.
        len: u32,
    },
    /// An event of the embedded libxc stream.
    Libxc(Event<'a>),
    /// libxl's END: nothing more is parsed.
    End,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Scanning,
    Header,
    RecordHeader,
    Skip(u64),
    Libxc,
    Done,
}

/// Follows an `xl migrate` sender's byte stream; see the module docs.
#[derive(Debug)]
pub struct XlStreamScanner {
    state: State,
    window: u64,
    skipped: u64,
    max_preamble: u64,
    small: [u8; 16],
    have: usize,
    dec: Decoder,
    failed: Option<LibxlError>,
}

impl XlStreamScanner {
    /// A scanner that gives up if no libxl header shows within
    /// `max_preamble` bytes; `limits` configure the libxc decoder.
    pub fn new(max_preamble: u64, limits: Limits) -> Self {
        XlStreamScanner {
            state: State::Scanning,
            window: 0,
            skipped: 0,
            max_preamble,
            small: [0; 16],
            have: 0,
            dec: Decoder::new(limits),
            failed: None,
        }
    }

    /// Whether libxl's END was seen.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    fn fill(&mut self, input: &mut &[u8], need: usize) -> bool {
        while self.have < need {
            let Some((&b, rest)) = input.split_first() else {
                return false;
            };
            if let Some(slot) = self.small.get_mut(self.have) {
                *slot = b;
            }
            self.have += 1;
            *input = rest;
        }
        true
    }

    /// Consumes all of `input`, calling `visit` for each event. Bytes after
    /// libxl's END are ignored.
    pub fn push(
        &mut self,
        mut input: &[u8],
        visit: &mut dyn FnMut(XlEvent<'_>),
    ) -> Result<(), LibxlError> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        let r = self.run(&mut input, visit);
        if let Err(e) = r {
            self.failed = Some(e);
        }
        r
    }

    fn run(
        &mut self,
        input: &mut &[u8],
        visit: &mut dyn FnMut(XlEvent<'_>),
    ) -> Result<(), LibxlError> {
        loop {
            match self.state {
                State::Done => {
                    *input = &[];
                    return Ok(());
                }
                State::Scanning => {
                    let Some((&b, rest)) = input.split_first() else {
                        return Ok(());
                    };
                    *input = rest;
                    self.window = (self.window << 8) | u64::from(b);
                    self.skipped += 1;
                    if self.window == LIBXL_IDENT && self.skipped >= 8 {
                        self.small[..8].copy_from_slice(&LIBXL_IDENT.to_be_bytes());
                        self.have = 8;
                        self.skipped -= 8;
                        self.state = State::Header;
                    } else if self.skipped > self.max_preamble {
                        return Err(LibxlError::HeaderNotFound);
                    }
                }
                State::Header => {
                    if !self.fill(input, 16) {
                        return Ok(());
                    }
                    let version = u32::from_be_bytes([
                        self.small[8],
                        self.small[9],
                        self.small[10],
                        self.small[11],
                    ]);
                    let options = u32::from_be_bytes([
                        self.small[12],
                        self.small[13],
                        self.small[14],
                        self.small[15],
                    ]);
                    self.have = 0;
                    if version != LIBXL_VERSION {
                        return Err(LibxlError::UnsupportedVersion(version));
                    }
                    if options & (LIBXL_OPT_BIG_ENDIAN | LIBXL_OPT_LEGACY) != 0 {
                        return Err(LibxlError::UnsupportedOptions(options));
                    }
                    visit(XlEvent::LibxlHeader {
                        skipped: self.skipped,
                        options,
                    });
                    self.state = State::RecordHeader;
                }
                State::RecordHeader => {
                    if !self.fill(input, 8) {
                        return Ok(());
                    }
                    let rtype = u32::from_le_bytes([
                        self.small[0],
                        self.small[1],
                        self.small[2],
                        self.small[3],
                    ]);
                    let len = u32::from_le_bytes([
                        self.small[4],
                        self.small[5],
                        self.small[6],
                        self.small[7],
                    ]);
                    self.have = 0;
                    visit(XlEvent::LibxlRecord { rtype, len });
                    match rtype {
                        librec::END => {
                            visit(XlEvent::End);
                            self.state = State::Done;
                        }
                        librec::LIBXC_CONTEXT => {
                            if len != 0 {
                                return Err(LibxlError::BadLibxcContext(len));
                            }
                            self.dec.resume();
                            self.state = State::Libxc;
                        }
                        _ => {
                            let l = u64::from(len);
                            self.state = State::Skip(l + (8 - l % 8) % 8);
                        }
                    }
                }
                State::Skip(n) => {
                    let take = (n.min(input.len() as u64)) as usize;
                    *input = input.get(take..).unwrap_or(&[]);
                    let left = n - take as u64;
                    if left > 0 {
                        self.state = State::Skip(left);
                        return Ok(());
                    }
                    self.state = State::RecordHeader;
                }
                State::Libxc => {
                    while let Some(ev) = self.dec.next(input).map_err(LibxlError::Libxc)? {
                        visit(XlEvent::Libxc(ev));
                    }
                    if self.dec.is_done() || self.dec.is_checkpointed() {
                        self.state = State::RecordHeader;
                    } else {
                        return Ok(());
                    }
                }
            }
        }
    }
}

/// Pages of one pre-copy round as seen in a stream.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RoundTally {
    /// pfn entries of any type (holes included, as libxc counts them).
    pub entries: u64,
    /// Entries that carried a page of data.
    pub pages: u64,
    /// PAGE_DATA records.
    pub records: u64,
}

/// Splits a stream's PAGE_DATA into rounds by pfn order; see the module
/// docs for the rule and its limits.
#[derive(Clone, Debug, Default)]
pub struct RoundCounter {
    rounds: Vec<RoundTally>,
    current: RoundTally,
    last_pfn: Option<u64>,
    after_verify: bool,
}

impl RoundCounter {
    /// Most rounds kept; later ones are added to the last.
    pub const MAX_ROUNDS: usize = 4096;

    /// An empty counter.
    pub fn new() -> Self {
        Self::default()
    }

    fn close(&mut self) {
        if self.current != RoundTally::default() {
            if self.rounds.len() < Self::MAX_ROUNDS {
                self.rounds.push(self.current);
            } else if let Some(last) = self.rounds.last_mut() {
                last.entries += self.current.entries;
                last.pages += self.current.pages;
                last.records += self.current.records;
            }
        }
        self.current = RoundTally::default();
        self.last_pfn = None;
    }

    /// Observes one libxc event.
    pub fn observe(&mut self, ev: &Event<'_>) {
        if self.after_verify {
            return;
        }
        match ev {
            Event::PageData { .. } => self.current.records += 1,
            Event::Page { entry, data } => {
                if self.last_pfn.is_some_and(|l| entry.pfn <= l) {
                    // The record that opened this round belongs to it.
                    let carried = 1;
                    self.current.records -= carried.min(self.current.records);
                    self.close();
                    self.current.records = carried;
                }
                self.last_pfn = Some(entry.pfn);
                self.current.entries += 1;
                if data.is_some() {
                    self.current.pages += 1;
                }
            }
            // What follows VERIFY is a resend for checking, not a round.
            Event::Record(Record::Verify) => {
                self.close();
                self.after_verify = true;
            }
            Event::Record(Record::Checkpoint | Record::End) => self.close(),
            _ => {}
        }
    }

    /// Closed rounds so far (the open one is added by [`RoundCounter::finish`]).
    pub fn rounds(&self) -> &[RoundTally] {
        &self.rounds
    }

    /// Closes the open round and returns all rounds.
    pub fn finish(mut self) -> Vec<RoundTally> {
        self.close();
        self.rounds
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::Encoder;
    use crate::wire::*;

    fn libxc_stream(rounds: &[&[u64]]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut e = Encoder::new();
        let d = DomainHeader {
            domain_type: DomainType::X86Hvm,
            page_shift: 12,
            xen_major: 4,
            xen_minor: 17,
        };
        e.headers(&mut out, &d).unwrap();
        e.cpuid_policy(&mut out, &[CpuidLeaf::default()]).unwrap();
        e.static_data_end(&mut out).unwrap();
        let page = [0u8; PAGE_SIZE];
        for r in rounds {
            for chunk in r.chunks(3) {
                let entries: Vec<PfnEntry> = chunk.iter().map(|&p| PfnEntry::normal(p)).collect();
                let pages: Vec<&[u8]> = chunk.iter().map(|_| &page[..]).collect();
                e.page_data(&mut out, &entries, &pages).unwrap();
            }
        }
        e.tsc_info(&mut out, &TscInfo::default()).unwrap();
        e.hvm_context(&mut out, &[0; 40]).unwrap();
        e.hvm_params(&mut out, &[HvmParam { index: 1, value: 2 }])
            .unwrap();
        e.end(&mut out).unwrap();
        out
    }

    fn xl_wrap(libxc: &[u8]) -> Vec<u8> {
        let mut s = b"xl migration receiver ready\n\x00some config LibxlF".to_vec();
        s.extend_from_slice(&LIBXL_IDENT.to_be_bytes());
        s.extend_from_slice(&LIBXL_VERSION.to_be_bytes());
        s.extend_from_slice(&0u32.to_be_bytes());
        // An emulator record with an odd length, then LIBXC_CONTEXT.
        s.extend_from_slice(&2u32.to_le_bytes());
        s.extend_from_slice(&5u32.to_le_bytes());
        s.extend_from_slice(&[1, 2, 3, 4, 5, 0, 0, 0]);
        s.extend_from_slice(&1u32.to_le_bytes());
        s.extend_from_slice(&0u32.to_le_bytes());
        s.extend_from_slice(libxc);
        s.extend_from_slice(&[0; 8]);
        s.extend_from_slice(b"trailing chatter");
        s
    }

    #[test]
    fn counts_rounds_through_xl_framing_in_any_split() {
        let rounds: [&[u64]; 4] = [&[0, 1, 2, 3, 4, 5, 6, 7], &[2, 5, 6], &[1, 6], &[3]];
        let s = xl_wrap(&libxc_stream(&rounds));
        for chunk in [1usize, 7, 4096, s.len()] {
            let mut sc = XlStreamScanner::new(1 << 20, Limits::default());
            let mut rc = RoundCounter::new();
            let mut ended = false;
            let mut skipped = None;
            for c in s.chunks(chunk) {
                sc.push(c, &mut |ev| match ev {
                    XlEvent::Libxc(e) => rc.observe(&e),
                    XlEvent::End => ended = true,
                    XlEvent::LibxlHeader { skipped: k, .. } => skipped = Some(k),
                    _ => {}
                })
                .unwrap();
            }
            assert!(ended && sc.is_done());
            assert_eq!(skipped, Some(47));
            let got: Vec<u64> = rc.finish().iter().map(|r| r.pages).collect();
            assert_eq!(got, [8, 3, 2, 1], "chunk {chunk}");
        }
    }

    #[test]
    fn preamble_cap_and_bad_context() {
        let mut sc = XlStreamScanner::new(16, Limits::default());
        assert_eq!(
            sc.push(&[0u8; 64], &mut |_| {}),
            Err(LibxlError::HeaderNotFound)
        );
        let mut s = LIBXL_IDENT.to_be_bytes().to_vec();
        s.extend_from_slice(&2u32.to_be_bytes());
        s.extend_from_slice(&0u32.to_be_bytes());
        s.extend_from_slice(&1u32.to_le_bytes());
        s.extend_from_slice(&8u32.to_le_bytes());
        let mut sc = XlStreamScanner::new(16, Limits::default());
        assert_eq!(
            sc.push(&s, &mut |_| {}),
            Err(LibxlError::BadLibxcContext(8))
        );
    }
}
