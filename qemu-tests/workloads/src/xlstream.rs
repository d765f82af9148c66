//! A tolerant, incremental observer of the byte stream `xl migrate` sends to
//! its receiver: xl's save-file header and config, libxl's stream (header
//! "LibxlFmt", records), libxc's v2 stream inline after the one
//! `LIBXC_CONTEXT` record, and whatever follows libxl's `END` (xl's "go"
//! message). It only counts: the bytes are forwarded by the caller
//! unchanged, and when the stream stops making sense the observer stops
//! parsing and says why instead of failing the migration.
//!
//! Rounds. libxc (4.17, `xg_sr_save.c`) sends a round by walking the dirty
//! bitmap from pfn 0 upwards (`send_dirty_pages`) and batching pfns into
//! `PAGE_DATA` records of `MAX_BATCH_SIZE` (1024) entries, flushing a
//! shorter last batch at the end of the round (`flush_batch`). So within a
//! round pfns ascend and only the round's last record is short. A
//! `PAGE_DATA` record starts a new round when the previous record was short
//! or when its first pfn is not above the previous record's last. (A round
//! of an exact multiple of 1024 pfns followed by a round that starts above
//! its last pfn would be merged; `pfn_order_anomalies` counts pfns that go
//! down inside a record, which the save code never produces.)

/// libxc's batch size in 4.17 (`MAX_BATCH_SIZE`, `xg_save_restore.h`).
pub const MAX_BATCH_PFNS: u32 = 1024;
/// xl's save-file magic (`savefileheader_magic`, 32 bytes).
pub const XL_MAGIC: &[u8; 32] = b"Xen saved domain, xl format\n \0 \r";
/// libxl's stream ident, "LibxlFmt" (big-endian u64).
pub const LIBXL_IDENT: u64 = 0x4c69_6278_6c46_6d74;
/// libxc's image header marker.
pub const LIBXC_MARKER: u64 = u64::MAX;
/// libxc's image header id, "XENF".
pub const LIBXC_ID: u32 = 0x5845_4e46;
/// Largest libxc record body (`REC_LENGTH_MAX`).
pub const LIBXC_REC_MAX: u32 = 128 << 20;
/// Largest libxl record body this observer accepts.
pub const LIBXL_REC_MAX: u32 = 128 << 20;
/// Largest xl optional data (the domain config) accepted.
pub const XL_OPT_MAX: u32 = 16 << 20;

const LIBXL_END: u32 = 0;
const LIBXL_LIBXC_CONTEXT: u32 = 1;
const LIBXC_END: u32 = 0;
const LIBXC_PAGE_DATA: u32 = 1;
const PAGE_SHIFT: u32 = 12;

/// Why the observer stopped parsing (forwarding goes on).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseError {
    /// The stream starts with neither xl's magic nor libxl's ident.
    BadMagic,
    /// libxl's header has the wrong ident, a version other than 2, or big-endian records.
    BadLibxlHeader,
    /// A libxl record is longer than the cap, or LIBXC_CONTEXT has a body.
    BadLibxlRecord,
    /// libxc's image header is wrong (marker, id, version 2/3, little-endian).
    BadLibxcHeader,
    /// libxc's domain header has a page shift other than 12.
    BadDomainHeader,
    /// A libxc record is longer than `REC_LENGTH_MAX`.
    LibxcRecordTooLong,
    /// A PAGE_DATA record's length does not match its pfn count and types.
    BadPageData,
    /// xl's optional data is longer than the cap.
    BadXlHeader,
}

impl ParseError {
    /// Short text for reports.
    pub fn as_str(&self) -> &'static str {
        match self {
            ParseError::BadMagic => "stream starts with neither xl's nor libxl's header",
            ParseError::BadLibxlHeader => "bad libxl stream header",
            ParseError::BadLibxlRecord => "bad libxl record",
            ParseError::BadLibxcHeader => "bad libxc image header",
            ParseError::BadDomainHeader => "bad libxc domain header",
            ParseError::LibxcRecordTooLong => "libxc record longer than REC_LENGTH_MAX",
            ParseError::BadPageData => "PAGE_DATA length does not match its pfns",
            ParseError::BadXlHeader => "bad xl save-file header",
        }
    }
}

/// What one pre-copy round carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Round {
    /// PAGE_DATA records.
    pub records: u64,
    /// pfn entries (holes and invalid entries included).
    pub pfns: u64,
    /// Pages with contents sent.
    pub pages: u64,
    /// Stream bytes of the round's records (headers included).
    pub bytes: u64,
    /// Time the round's first record began, ms on the caller's clock.
    pub start_ms: u64,
    /// Time the round's last record ended.
    pub end_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Start,
    XlHeader,
    XlOpt(u64),
    LibxlHeader,
    LibxlRec,
    LibxlSkip(u64),
    LibxcIhdr,
    LibxcDhdr,
    LibxcRec,
    LibxcSkip(u64),
    PageHdr {
        len: u32,
    },
    Pfns {
        left: u32,
        data: u32,
        len: u32,
        count: u32,
    },
    PageBody(u64),
    Trailer,
    Failed(ParseError),
}

/// Incremental observer of an `xl migrate` stream.
pub struct StreamObserver {
    state: State,
    buf: [u8; 48],
    have: usize,
    /// Bytes fed so far.
    pub total_bytes: u64,
    /// Rounds seen so far.
    pub rounds: Vec<Round>,
    /// libxl records seen (END included).
    pub libxl_records: u64,
    /// libxc records seen (END included).
    pub libxc_records: u64,
    /// libxc stream version (2 or 3) once seen.
    pub libxc_version: u32,
    /// libxc domain type (1 PV, 2 HVM/PVH) once seen.
    pub domain_type: u32,
    /// pfns that went down inside one record (never expected).
    pub pfn_order_anomalies: u64,
    /// Time the first libxc record after the last PAGE_DATA was seen.
    pub after_pages_ms: Option<u64>,
    /// Time libxc's END record was seen.
    pub libxc_end_ms: Option<u64>,
    /// Time libxl's END record was seen.
    pub libxl_end_ms: Option<u64>,
    /// Bytes after libxl's END (xl's messages).
    pub trailer_bytes: u64,
    /// Time the first trailer byte was seen.
    pub trailer_ms: Option<u64>,
    last_rec_pfns: u32,
    last_pfn: Option<u64>,
    rec_first: Option<u64>,
    rec_start_ms: u64,
    now: u64,
}

impl Default for StreamObserver {
    fn default() -> Self {
        Self::new()
    }
}

fn be64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_be_bytes(a)
}
fn be32(b: &[u8]) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[..4]);
    u32::from_be_bytes(a)
}
fn le32(b: &[u8]) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[..4]);
    u32::from_le_bytes(a)
}
fn le64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}
fn pad8(n: u32) -> u64 {
    (u64::from(n) + 7) & !7
}

/// Whether a PAGE_DATA type nibble (bits 60..63 of an entry) carries a page.
/// NOTAB and the L1..L4 page-table types (pinned or not) do; XTAB (0xf),
/// XALLOC (0xe) and BROKEN (0xd) do not.
pub fn type_has_data(nibble: u8) -> bool {
    matches!(nibble, 0..=4 | 9..=12)
}

impl StreamObserver {
    /// A fresh observer expecting the start of a stream.
    pub fn new() -> Self {
        Self {
            state: State::Start,
            buf: [0; 48],
            have: 0,
            total_bytes: 0,
            rounds: Vec::new(),
            libxl_records: 0,
            libxc_records: 0,
            libxc_version: 0,
            domain_type: 0,
            pfn_order_anomalies: 0,
            after_pages_ms: None,
            libxc_end_ms: None,
            libxl_end_ms: None,
            trailer_bytes: 0,
            trailer_ms: None,
            last_rec_pfns: 0,
            last_pfn: None,
            rec_first: None,
            rec_start_ms: 0,
            now: 0,
        }
    }

    /// The error that stopped parsing, if any.
    pub fn error(&self) -> Option<ParseError> {
        match self.state {
            State::Failed(e) => Some(e),
            _ => None,
        }
    }

    /// Whether libxl's END record was seen (the stream proper is complete).
    pub fn complete(&self) -> bool {
        self.libxl_end_ms.is_some()
    }

    /// Feeds the next bytes of the stream, seen at time `now_ms`.
    pub fn feed(&mut self, mut data: &[u8], now_ms: u64) {
        self.now = now_ms;
        self.total_bytes += data.len() as u64;
        // Each step consumes at least one byte or changes state without
        // consuming; the latter happen at most a few times per byte.
        while !data.is_empty() {
            match self.state {
                State::Failed(_) => return,
                State::Trailer => {
                    if self.trailer_ms.is_none() {
                        self.trailer_ms = Some(now_ms);
                    }
                    self.trailer_bytes += data.len() as u64;
                    return;
                }
                State::XlOpt(n)
                | State::LibxlSkip(n)
                | State::LibxcSkip(n)
                | State::PageBody(n) => {
                    let take = (data.len() as u64).min(n);
                    // PANICS: take <= data.len().
                    data = &data[take as usize..];
                    let left = n - take;
                    self.state = match (self.state, left) {
                        (State::XlOpt(_), 0) => State::LibxlHeader,
                        (State::XlOpt(_), l) => State::XlOpt(l),
                        (State::LibxlSkip(_), 0) => State::LibxlRec,
                        (State::LibxlSkip(_), l) => State::LibxlSkip(l),
                        (State::LibxcSkip(_), 0) => State::LibxcRec,
                        (State::LibxcSkip(_), l) => State::LibxcSkip(l),
                        (State::PageBody(_), 0) => {
                            self.end_page_record();
                            State::LibxcRec
                        }
                        (_, l) => State::PageBody(l),
                    };
                }
                _ => {
                    let need = self.need();
                    let take = (need - self.have).min(data.len());
                    // PANICS: have + take <= need <= 48 and take <= data.len().
                    self.buf[self.have..self.have + take].copy_from_slice(&data[..take]);
                    self.have += take;
                    data = &data[take..];
                    if self.have == need {
                        self.have = 0;
                        self.state = self.step(need);
                    }
                }
            }
        }
    }

    fn need(&self) -> usize {
        match self.state {
            State::Start => 8,
            State::XlHeader => 48,
            State::LibxlHeader => 16,
            State::LibxlRec | State::LibxcRec | State::PageHdr { .. } | State::Pfns { .. } => 8,
            State::LibxcIhdr => 24,
            State::LibxcDhdr => 16,
            _ => 1,
        }
    }

    fn step(&mut self, n: usize) -> State {
        let b = self.buf;
        let b = &b[..n];
        match self.state {
            State::Start => {
                if b == &XL_MAGIC[..8] {
                    self.have = 8;
                    State::XlHeader
                } else if be64(b) == LIBXL_IDENT {
                    self.have = 8;
                    State::LibxlHeader
                } else {
                    State::Failed(ParseError::BadMagic)
                }
            }
            State::XlHeader => {
                if &b[..32] != XL_MAGIC {
                    return State::Failed(ParseError::BadMagic);
                }
                let opt = le32(&b[44..48]);
                if opt > XL_OPT_MAX {
                    return State::Failed(ParseError::BadXlHeader);
                }
                if opt == 0 {
                    State::LibxlHeader
                } else {
                    State::XlOpt(u64::from(opt))
                }
            }
            State::LibxlHeader => {
                if be64(b) != LIBXL_IDENT || be32(&b[8..]) != 2 || be32(&b[12..]) & 1 != 0 {
                    return State::Failed(ParseError::BadLibxlHeader);
                }
                State::LibxlRec
            }
            State::LibxlRec => {
                let (ty, len) = (le32(b), le32(&b[4..]));
                self.libxl_records += 1;
                if len > LIBXL_REC_MAX {
                    return State::Failed(ParseError::BadLibxlRecord);
                }
                match ty {
                    LIBXL_END => {
                        self.libxl_end_ms = Some(self.now);
                        State::Trailer
                    }
                    LIBXL_LIBXC_CONTEXT if len != 0 => State::Failed(ParseError::BadLibxlRecord),
                    LIBXL_LIBXC_CONTEXT => State::LibxcIhdr,
                    _ if len == 0 => State::LibxlRec,
                    _ => State::LibxlSkip(pad8(len)),
                }
            }
            State::LibxcIhdr => {
                let version = be32(&b[12..]);
                let options = u16::from_be_bytes([b[16], b[17]]);
                if be64(b) != LIBXC_MARKER
                    || be32(&b[8..]) != LIBXC_ID
                    || !(2..=3).contains(&version)
                    || options & 1 != 0
                {
                    return State::Failed(ParseError::BadLibxcHeader);
                }
                self.libxc_version = version;
                State::LibxcDhdr
            }
            State::LibxcDhdr => {
                self.domain_type = le32(b);
                if u16::from_le_bytes([b[4], b[5]]) as u32 != PAGE_SHIFT {
                    return State::Failed(ParseError::BadDomainHeader);
                }
                State::LibxcRec
            }
            State::LibxcRec => {
                let (ty, len) = (le32(b) & 0x7fff_ffff, le32(&b[4..]));
                self.libxc_records += 1;
                if len > LIBXC_REC_MAX {
                    return State::Failed(ParseError::LibxcRecordTooLong);
                }
                if ty == LIBXC_PAGE_DATA {
                    self.rec_start_ms = self.now;
                    return if len < 8 {
                        State::Failed(ParseError::BadPageData)
                    } else {
                        State::PageHdr { len }
                    };
                }
                if !self.rounds.is_empty() && self.after_pages_ms.is_none() {
                    self.after_pages_ms = Some(self.now);
                }
                if ty == LIBXC_END {
                    self.libxc_end_ms = Some(self.now);
                    return State::LibxlRec;
                }
                if len == 0 {
                    State::LibxcRec
                } else {
                    State::LibxcSkip(pad8(len))
                }
            }
            State::PageHdr { len } => {
                let count = le32(b);
                // The header plus `count` entries must fit in the record.
                if count == 0 || u64::from(count) * 8 + 8 > u64::from(len) {
                    return State::Failed(ParseError::BadPageData);
                }
                self.rec_first = None;
                State::Pfns {
                    left: count,
                    data: 0,
                    len,
                    count,
                }
            }
            State::Pfns {
                left,
                data,
                len,
                count,
            } => {
                let entry = le64(b);
                let pfn = entry & 0x000f_ffff_ffff_ffff;
                let nibble = (entry >> 60) as u8;
                let data = data + u32::from(type_has_data(nibble));
                match self.rec_first {
                    None => {
                        self.begin_page_record(pfn, count, len);
                        self.rec_first = Some(pfn);
                    }
                    Some(_) => {
                        if self.last_pfn.is_some_and(|l| pfn <= l) {
                            self.pfn_order_anomalies += 1;
                        }
                    }
                }
                self.last_pfn = Some(pfn);
                if left > 1 {
                    return State::Pfns {
                        left: left - 1,
                        data,
                        len,
                        count,
                    };
                }
                let expect = 8 + u64::from(count) * 8 + u64::from(data) * 4096;
                if expect != u64::from(len) {
                    return State::Failed(ParseError::BadPageData);
                }
                if let Some(r) = self.rounds.last_mut() {
                    r.pages += u64::from(data);
                }
                let body = u64::from(data) * 4096 + pad8(len) - u64::from(len);
                if body == 0 {
                    self.end_page_record();
                    State::LibxcRec
                } else {
                    State::PageBody(body)
                }
            }
            s => s,
        }
    }

    fn begin_page_record(&mut self, first: u64, count: u32, len: u32) {
        let new_round = match (self.rounds.is_empty(), self.last_pfn) {
            (true, _) | (_, None) => true,
            (false, Some(last)) => self.last_rec_pfns < MAX_BATCH_PFNS || first <= last,
        };
        if new_round {
            self.rounds.push(Round {
                start_ms: self.rec_start_ms,
                ..Round::default()
            });
        }
        self.last_rec_pfns = count;
        if let Some(r) = self.rounds.last_mut() {
            r.records += 1;
            r.pfns += u64::from(count);
            r.bytes += 8 + pad8(len);
        }
    }

    fn end_page_record(&mut self) {
        let now = self.now;
        if let Some(r) = self.rounds.last_mut() {
            r.end_ms = now;
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    pub use crate::synth::Builder;

    fn feed_in_chunks(bytes: &[u8], chunk: usize) -> StreamObserver {
        let mut o = StreamObserver::new();
        for (i, c) in bytes.chunks(chunk).enumerate() {
            o.feed(c, i as u64);
        }
        o
    }

    fn sample() -> (Builder, Vec<(u64, u64)>) {
        let mut b = Builder::xl();
        b.libxc_start();
        let r1: Vec<u64> = (0..1100).collect();
        let r2: Vec<u64> = (100..1124).collect(); // exactly one full batch
        let r3: Vec<u64> = (1200..1300).collect(); // starts above r2's last pfn
        let r4: Vec<u64> = vec![5, 9, 4000];
        let mut expect = Vec::new();
        for r in [&r1, &r2, &r3, &r4] {
            b.round(r);
            let pages = r.iter().filter(|p| *p % 7 != 0).count() as u64;
            expect.push((r.len() as u64, pages));
        }
        b.finish();
        (b, expect)
    }

    #[test]
    fn counts_rounds_pfns_and_pages_whatever_the_chunking() {
        let (b, expect) = sample();
        for chunk in [3, 4096, 65536, b.out.len()] {
            let o = feed_in_chunks(&b.out, chunk);
            assert_eq!(o.error(), None, "chunk {chunk}");
            assert!(o.complete());
            assert_eq!(o.libxc_version, 3);
            assert_eq!(o.domain_type, 2);
            // r2 ends with a full batch and r3 starts above it: merged, as documented.
            let got: Vec<(u64, u64)> = o.rounds.iter().map(|r| (r.pfns, r.pages)).collect();
            let merged = vec![
                expect[0],
                (expect[1].0 + expect[2].0, expect[1].1 + expect[2].1),
                expect[3],
            ];
            assert_eq!(got, merged, "chunk {chunk}");
            assert_eq!(o.pfn_order_anomalies, 0);
            assert_eq!(o.trailer_bytes, 43);
            assert_eq!(o.total_bytes, b.out.len() as u64);
        }
    }

    #[test]
    fn byte_by_byte_feeding() {
        let mut b = Builder::xl();
        b.libxc_start();
        b.round(&[1, 2, 3, 7]);
        b.round(&[2]);
        b.finish();
        let o = feed_in_chunks(&b.out, 1);
        assert_eq!(o.error(), None);
        let got: Vec<(u64, u64)> = o.rounds.iter().map(|r| (r.pfns, r.pages)).collect();
        assert_eq!(got, vec![(4, 3), (1, 1)]);
        assert_eq!(o.rounds[0].bytes, 8 + 8 + 4 * 8 + 3 * 4096);
    }

    #[test]
    fn full_batch_followed_by_lower_pfn_is_a_new_round() {
        let mut b = Builder::xl();
        b.libxc_start();
        b.round(&(1..=1024).collect::<Vec<_>>());
        b.round(&(1..=1024).collect::<Vec<_>>());
        b.round(&[3]);
        b.finish();
        let o = feed_in_chunks(&b.out, 100);
        assert_eq!(o.rounds.len(), 3);
        assert!(o.after_pages_ms.is_some());
    }

    #[test]
    fn bare_libxl_stream_is_accepted() {
        let (b, _) = sample();
        // Drop xl's header: 48 bytes plus the config.
        let cfg_len = b"name = \"guest\"\n".len();
        let o = feed_in_chunks(&b.out[48 + cfg_len..], 333);
        assert_eq!(o.error(), None);
        assert_eq!(o.rounds.len(), 3);
    }

    #[test]
    fn corrupt_streams_stop_parsing_cleanly() {
        let (b, _) = sample();
        let mut o = StreamObserver::new();
        o.feed(b"GET / HTTP/1.1\r\n", 0);
        assert_eq!(o.error(), Some(ParseError::BadMagic));
        // A PAGE_DATA length that disagrees with its pfns.
        let mut bad = b.out.clone();
        let holes = (0..1024u32).filter(|p| p % 7 == 0).count() as u32;
        let len = 8 + 1024 * 8 + (1024 - holes) * 4096;
        let mut hdr = 1u32.to_le_bytes().to_vec();
        hdr.extend_from_slice(&len.to_le_bytes());
        let pos = bad
            .windows(8)
            .position(|w| w == hdr.as_slice())
            .unwrap_or(0);
        assert!(pos > 0, "first PAGE_DATA header found");
        bad[pos + 4] ^= 0x08;
        let o = feed_in_chunks(&bad, 4096);
        assert_eq!(o.error(), Some(ParseError::BadPageData));
        // Every truncation and every single-byte flip is handled without panic.
        // Positions in the headers and pfn lists, then spread over the stream.
        let cuts = (0..200).chain((200..b.out.len()).step_by(b.out.len() / 40));
        for cut in cuts {
            let _ = feed_in_chunks(&b.out[..cut], 4096);
            let mut f = b.out.clone();
            f[cut] ^= 0xa5;
            let _ = feed_in_chunks(&f, 509);
        }
    }

    #[test]
    fn data_types() {
        for n in [0u8, 1, 2, 3, 4, 9, 10, 11, 12] {
            assert!(type_has_data(n));
        }
        for n in [0xdu8, 0xe, 0xf] {
            assert!(!type_has_data(n));
        }
    }
}
