//! Target `verify`: the page-verification exchange after the stream
//! (`depmig_migrate::verify`, `--verify`): the destination's side
//! (`verify::destination`) against a hostile source, the source's side
//! (`verify::source`) against a hostile destination, and both sides
//! against each other.
//!
//! Input: a mode byte, a segmentation byte ([`Cuts`]: how the transport
//! hands bytes over), then a guest of ten bytes: a size byte (one of
//! [`SIZES`] frames), a density byte, a u32 layout seed and two u16 ring
//! frames (taken modulo the size plus two: 0 is none, past the end is
//! outside). The layout seed draws each frame's history from the density:
//! data (the stream's last entry carried its page), sent free (XALLOC, and
//! still free in the guest's allocator), a hole (XTAB: not populated at the
//! source) or untouched (no entry: not read at either end); in the two
//! largest guests, which are there for their number of ranges, only the
//! first and the last range were sent. Every page's contents come from the
//! seed and its pfn. Then, by mode (low three bits):
//!
//! * 0 (destination, raw): a u16 split, then the bytes the source sends
//!   after the trailer: the first `split` of them are what the destination
//!   already read with the trailer (`Buffered::left`), the rest come from
//!   the transport; the shell holds exactly what the stream left;
//! * 1 (destination, tagged): as 0, but the rest is messages the harness
//!   frames and tags: per message a control byte (bits 0-1 the kind,
//!   RANGES, NARROW, FRAMES or VERDICT; bit 2 set: the kind is the next
//!   byte instead; bits 4-5: 0 or 1 a correct tag, 1 with one bit of it
//!   flipped (bits 6-7 pick which byte), 2 the tag of the next sequence
//!   number, 3 the tag of the other direction), a u16 body length (modulo
//!   the largest body plus 64), the body;
//! * 2 (source, raw): a pages-held byte (0 unknown, 1 exactly the frames
//!   the stream covered, 2 one more, 3 one less), then the bytes the
//!   destination sends;
//! * 3 (source, tagged): a pages-held byte, then messages as in 1, tagged
//!   in the destination's direction;
//! * 4 to 7 (both sides): a pages-held byte (bit 0: unknown or exact), a
//!   change count (low two bits), then that many changes of a kind byte
//!   and a u16 pfn (modulo the size): a byte of the shell's copy of the
//!   frame flipped, the shell lost it, the guest's frame no longer free,
//!   the guest lost it. The two sides run against each other over an
//!   in-memory connection, the destination on a thread of its own.
//!
//! Invariants checked besides "no panic": a message whose tag does not
//! check (a wrong key, sequence number, direction, or one flipped bit) is
//! refused with `BadTag` before anything of its body is read, and nothing
//! is read from the shell until a message checked: the bytes each side
//! consumed end exactly at the message (or header) its verdict is about,
//! every message before it carries a valid tag, a refusal of the body
//! (`Malformed`, `UnexpectedKind`, `SizeMismatch`) or an acceptance comes
//! only after a valid one, and a bad magic or an oversized length is
//! refused at the header (the source takes a header without the magic as
//! the destination's reply); a side reads each of its frames at most once
//! for the range digests plus the narrowed ranges once (at most
//! `MAX_NARROW` of `RANGE_FRAMES` frames), ascending, below the guest's
//! size, only frames the stream covered; every message a side sends is
//! tagged in its direction and sequence, within the length caps: RANGES
//! one per `RANGES_PER_MESSAGE` ranges with the right counts and the
//! range digests of a model of the guest, NARROW 1 to `MAX_NARROW` ranges
//! ascending, FRAMES exactly the narrowed ranges frame by frame as the
//! model has them, VERDICT the destination's own figures with at most
//! `MAX_LISTED_FRAMES` frames; a verdict the source accepts names only
//! frames below the guest's size, ascending, inside the ranges it was
//! asked to narrow, no more than it counts; the source counts its frames'
//! classes as the model does, and refuses with `Uncovered` exactly when
//! the guest holds more pages than the stream covered. Both sides against
//! each other: equal memory is a match on both sides; after changes, the
//! ranges and frames found different, and the frames named with their
//! classes at both ends, are exactly the model's.

use depmig_control::report::MAX_LISTED_FRAMES;
use depmig_migrate::verify::{
    self, range_digest, Buffered, Channel, Class, DestView, Frame, SourceView, VerifyError,
    VerifyStats, MAX_NARROW, RANGES_PER_MESSAGE, RANGE_FRAMES,
};
use depmig_migrate::{
    DependencyOracle, DestDomain, DirtyBitmap, PortError, SourceDomain, Transport, TransportError,
};
use depmig_precopy::Clock;
use depmig_stream::{
    check_verify_tag, verify_tag, Caps, Direction, Hello, Role, TscInfo, PAGE_SIZE, VERIFY_TAG_LEN,
};

use std::sync::mpsc;
use std::time::Duration;

use crate::stream::{DEST_NONCE, KEY, SOURCE_NONCE};
use crate::{Cuts, Input};

/// Mode 0: the destination against the source's raw bytes.
pub const MODE_DEST_RAW: u8 = 0;
/// Mode 1: the destination against messages the harness tags.
pub const MODE_DEST_TAGGED: u8 = 1;
/// Mode 2: the source against the destination's raw bytes.
pub const MODE_SOURCE_RAW: u8 = 2;
/// Mode 3: the source against messages the harness tags.
pub const MODE_SOURCE_TAGGED: u8 = 3;
/// Mode 4: both sides against each other.
pub const MODE_PAIR: u8 = 4;

/// The guest sizes (frames) a size byte picks: one range, part of one,
/// exactly one, one frame more, a few, exactly one RANGES message of
/// ranges, and one range more.
pub const SIZES: [u64; 8] = [1, 16, 100, 512, 513, 1100, 8192, 8193];

/// A verification message's header: "DMV", its kind, its body's length.
const HEADER_LEN: usize = 8;
/// The largest body either side takes (a FRAMES message of `MAX_NARROW`
/// whole ranges): the crate's cap.
pub const MAX_BODY: usize = 4 + MAX_NARROW * (12 + RANGE_FRAMES as usize * 9);
/// The message kinds.
pub const KINDS: [u8; 4] = *b"RNFV";

/// The source's hello of every run (verification on).
pub fn source_hello() -> Hello {
    Hello {
        role: Role::Source,
        nonce: SOURCE_NONCE,
        verify: true,
        caps: Caps::NONE,
    }
}

/// The destination's hello of every run.
pub fn dest_hello() -> Hello {
    Hello {
        role: Role::Destination,
        nonce: DEST_NONCE,
        verify: true,
        caps: Caps::NONE,
    }
}

/// What a run ended with (for the seed tests).
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The destination's side: its figures, or its error.
    Dest(Result<VerifyStats, VerifyError>),
    /// The source's side: whether a verdict came (its figures) or the
    /// destination's reply in its place, or its error.
    Source(Result<Option<VerifyStats>, VerifyError>),
    /// Both sides: the destination's figures (both agreed on them).
    Pair(VerifyStats),
}

/// Runs one input.
pub fn run(data: &[u8]) -> Outcome {
    let mut inp = Input::new(data);
    let mode = inp.u8();
    let cuts = Cuts::new(inp.u8());
    let guest = Guest::new(&mut inp);
    match mode & 7 {
        MODE_DEST_RAW => destination(&guest, cuts, &mut inp, false),
        MODE_DEST_TAGGED => destination(&guest, cuts, &mut inp, true),
        MODE_SOURCE_RAW => source(&guest, cuts, &mut inp, false),
        MODE_SOURCE_TAGGED => source(&guest, cuts, &mut inp, true),
        _ => pair(&guest, cuts, &mut inp),
    }
}

/// A frame's history in the stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Hist {
    /// No entry: a hole at both ends, never read.
    Untouched,
    /// Its page came.
    Data,
    /// Sent as free (XALLOC), still free in the guest: zero at the shell.
    Free,
    /// XTAB: not populated at the source.
    Xtab,
}

/// Something changed at one end after the stream (mode 4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Change {
    /// A byte of the shell's copy flipped.
    Flip(u64),
    /// The shell lost the frame.
    Lost(u64),
    /// The guest's frame is no longer free.
    Unfree(u64),
    /// The guest lost the frame.
    Gone(u64),
}

/// The guest, the stream's history of it, and the shell's copy.
pub struct Guest {
    nr: u64,
    seed: u64,
    hist: Vec<Hist>,
    rings: [u64; 2],
    changes: Vec<Change>,
}

impl Guest {
    fn new(inp: &mut Input<'_>) -> Self {
        let size = inp.u8();
        let density = inp.u8();
        let seed = inp.u32();
        let nr = SIZES[usize::from(size & 7)];
        let rings = [
            u64::from(inp.u16()) % (nr + 2),
            u64::from(inp.u16()) % (nr + 2),
        ];
        let data = density & 15;
        let free = data + ((density >> 4) & 3);
        let xtab = free + (density >> 6);
        let mut x = u64::from(seed) << 1 | 1;
        let last = ranges_of(nr) - 1;
        let hist = (0..nr)
            .map(|p| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                // The largest guests are there for their number of
                // ranges: only their first and last range were sent.
                let r = p / RANGE_FRAMES;
                if nr > 4096 && r != 0 && r != last {
                    return Hist::Untouched;
                }
                match (x >> 60) as u8 {
                    r if r < data => Hist::Data,
                    r if r < free => Hist::Free,
                    r if r < xtab => Hist::Xtab,
                    _ => Hist::Untouched,
                }
            })
            .collect();
        Guest {
            nr,
            seed: u64::from(seed),
            hist,
            rings,
            changes: Vec::new(),
        }
    }

    fn is_ring(&self, pfn: u64) -> bool {
        pfn != 0 && self.rings.contains(&pfn)
    }

    fn hist(&self, pfn: u64) -> Hist {
        self.hist
            .get(pfn as usize)
            .copied()
            .unwrap_or(Hist::Untouched)
    }

    fn changed(&self, c: Change) -> bool {
        self.changes.contains(&c)
    }

    /// The guest's page `pfn`.
    fn page(&self, pfn: u64, out: &mut [u8]) {
        let v = (self.seed ^ pfn.wrapping_mul(0x9e37_79b9_7f4a_7c15)) | 1;
        for (i, w) in out.chunks_exact_mut(8).enumerate() {
            let x = if i == 0 { pfn } else { v.rotate_left(i as u32) };
            w.copy_from_slice(&x.to_le_bytes());
        }
    }

    /// The stream covered the frame (the source reads it).
    fn covered(&self, pfn: u64) -> bool {
        self.hist(pfn) != Hist::Untouched
    }

    /// The guest holds the frame's page now.
    fn populated(&self, pfn: u64) -> bool {
        matches!(self.hist(pfn), Hist::Data | Hist::Free) && !self.changed(Change::Gone(pfn))
    }

    /// The frame's class as the source must see it.
    fn source_class(&self, pfn: u64) -> Class {
        if self.is_ring(pfn) {
            Class::Ring
        } else if !self.covered(pfn) || !self.populated(pfn) {
            Class::Hole
        } else if self.hist(pfn) == Hist::Free && !self.changed(Change::Unfree(pfn)) {
            Class::Free
        } else {
            Class::Data
        }
    }

    /// The frame as the source must see it.
    fn source_frame(&self, pfn: u64) -> Frame {
        let class = self.source_class(pfn);
        let digest = if class == Class::Data {
            let mut p = vec![0u8; PAGE_SIZE];
            self.page(pfn, &mut p);
            verify::page_digest(&p)
        } else {
            0
        };
        Frame { class, digest }
    }

    /// The shell's copy of the frame (with the stream's history `Data` or
    /// `Free`).
    fn shell_page(&self, pfn: u64, out: &mut [u8]) {
        if self.hist(pfn) == Hist::Data {
            self.page(pfn, out);
        } else {
            out.fill(0);
        }
        if self.changed(Change::Flip(pfn)) {
            out[PAGE_SIZE / 2 + (pfn as usize % 64)] ^= 0x10;
        }
    }

    /// The frame as the destination must see it.
    fn dest_frame(&self, pfn: u64) -> Frame {
        let hole = Frame {
            class: Class::Hole,
            digest: 0,
        };
        if self.is_ring(pfn) {
            return Frame {
                class: Class::Ring,
                digest: 0,
            };
        }
        if !matches!(self.hist(pfn), Hist::Data | Hist::Free) || self.changed(Change::Lost(pfn)) {
            return hole;
        }
        let mut p = vec![0u8; PAGE_SIZE];
        self.shell_page(pfn, &mut p);
        if self.hist(pfn) == Hist::Free && p.iter().all(|&b| b == 0) {
            Frame {
                class: Class::Free,
                digest: 0,
            }
        } else {
            Frame {
                class: Class::Data,
                digest: verify::page_digest(&p),
            }
        }
    }

    /// Frames the source counts as the guest's pages: data, free, rings.
    fn covered_pages(&self) -> u64 {
        (0..self.nr)
            .filter(|&p| self.source_class(p) != Class::Hole)
            .count() as u64
    }

    /// What the stream told the destination.
    fn dest_view(&self) -> DestView {
        let mut v = DestView::new(self.nr, self.rings);
        for (pfn, h) in (0u64..).zip(&self.hist) {
            match h {
                Hist::Untouched => {}
                Hist::Data => v.note(pfn, Class::Data),
                Hist::Free => v.note(pfn, Class::Free),
                Hist::Xtab => v.note(pfn, Class::Hole),
            }
        }
        v
    }
}

fn ranges_of(nr: u64) -> u64 {
    nr.div_ceil(RANGE_FRAMES)
}

fn range_pfns(r: u64, nr: u64) -> core::ops::Range<u64> {
    let start = r.saturating_mul(RANGE_FRAMES).min(nr);
    start..start.saturating_add(RANGE_FRAMES).min(nr)
}

/// Checks one `read_pages` call of either side.
fn check_read(pfns: &[u64], buf: &[u8], holes: &[bool], nr: u64) {
    assert!(!pfns.is_empty(), "read of no frames");
    assert!(
        pfns.len() as u64 <= RANGE_FRAMES,
        "read of {} frames",
        pfns.len()
    );
    assert!(pfns.windows(2).all(|w| w[0] < w[1]), "read not ascending");
    assert!(pfns.iter().all(|&p| p < nr), "read beyond the guest");
    assert_eq!(buf.len(), pfns.len() * PAGE_SIZE, "read buffer length");
    assert_eq!(holes.len(), pfns.len(), "read hole flags");
    assert!(holes.iter().all(|&h| !h), "hole flags not cleared");
}

/// The suspended guest (the source's side).
struct SourceGuest<'g> {
    g: &'g Guest,
    held: Option<u64>,
    frames_read: u64,
}

impl SourceDomain for SourceGuest<'_> {
    fn nr_pfns(&self) -> u64 {
        self.g.nr
    }
    fn populated(&mut self, _: &mut DirtyBitmap) -> Result<(), PortError> {
        panic!("verification asked which frames are populated")
    }
    fn read_pages(
        &mut self,
        pfns: &[u64],
        buf: &mut [u8],
        holes: &mut [bool],
    ) -> Result<(), PortError> {
        check_read(pfns, buf, holes, self.g.nr);
        for &p in pfns {
            assert!(self.g.covered(p), "the source read frame {p} never sent");
        }
        self.frames_read += pfns.len() as u64;
        for ((&p, page), hole) in pfns
            .iter()
            .zip(buf.chunks_exact_mut(PAGE_SIZE))
            .zip(holes.iter_mut())
        {
            if self.g.populated(p) {
                self.g.page(p, page);
            } else {
                *hole = true;
            }
        }
        Ok(())
    }
    fn log_dirty_enable(&mut self) -> Result<(), PortError> {
        panic!("log-dirty during verification")
    }
    fn log_dirty_collect(&mut self, _: &mut DirtyBitmap) -> Result<(), PortError> {
        panic!("log-dirty during verification")
    }
    fn log_dirty_disable(&mut self) -> Result<(), PortError> {
        panic!("log-dirty during verification")
    }
    fn suspend(&mut self) -> Result<(), PortError> {
        panic!("suspend during verification")
    }
    fn resume_cancelled(&mut self) -> Result<bool, PortError> {
        panic!("resume during verification")
    }
    fn tsc_info(&mut self) -> Result<TscInfo, PortError> {
        panic!("TSC asked during verification")
    }
    fn hvm_param(&mut self, _: u32) -> Result<u64, PortError> {
        panic!("parameter asked during verification")
    }
    fn hvm_context(&mut self, _: &mut Vec<u8>) -> Result<(), PortError> {
        panic!("context asked during verification")
    }
    fn pages_held(&mut self) -> Option<u64> {
        self.held
    }
}

/// The guest's allocator: every frame sent as free still is, but for the
/// changes.
struct FreeOracle<'g> {
    g: &'g Guest,
    asked: u32,
}

impl DependencyOracle for FreeOracle<'_> {
    fn freeze_quiet_groups(&mut self) -> Result<u32, PortError> {
        panic!("freeze during verification")
    }
    fn thaw_all(&mut self) -> Result<(), PortError> {
        panic!("thaw during verification")
    }
    fn tainted_frames(&mut self, _: &mut DirtyBitmap) -> Result<(), PortError> {
        panic!("taint asked during verification")
    }
    fn free_frames(&mut self, among: &DirtyBitmap, out: &mut DirtyBitmap) -> Result<(), PortError> {
        self.asked += 1;
        assert_eq!(self.asked, 1, "free frames asked twice");
        assert_eq!(out.len(), self.g.nr);
        for p in among.iter_ones() {
            assert_eq!(self.g.hist(p), Hist::Free, "asked about frame {p}");
            if !self.g.changed(Change::Unfree(p)) {
                out.set(p);
            }
        }
        Ok(())
    }
}

/// The shell (the destination's side).
struct ShellDom<'g> {
    g: &'g Guest,
    frames_read: u64,
}

impl DestDomain for ShellDom<'_> {
    fn nr_pfns(&self) -> u64 {
        self.g.nr
    }
    fn populated(&mut self, _: &mut DirtyBitmap) -> Result<(), PortError> {
        panic!("populated asked during verification")
    }
    fn populate(&mut self, _: &[u64]) -> Result<(), PortError> {
        panic!("populate during verification")
    }
    fn write_pages(&mut self, _: &[u64], _: &[u8]) -> Result<(), PortError> {
        panic!("the shell was written during verification")
    }
    fn zero_frames(&mut self, _: &[u64]) -> Result<(), PortError> {
        panic!("the shell was zeroed during verification")
    }
    fn read_pages(
        &mut self,
        pfns: &[u64],
        buf: &mut [u8],
        holes: &mut [bool],
    ) -> Result<(), PortError> {
        check_read(pfns, buf, holes, self.g.nr);
        self.frames_read += pfns.len() as u64;
        for ((&p, page), hole) in pfns
            .iter()
            .zip(buf.chunks_exact_mut(PAGE_SIZE))
            .zip(holes.iter_mut())
        {
            assert!(
                !self.g.is_ring(p) && matches!(self.g.hist(p), Hist::Data | Hist::Free),
                "the destination read frame {p}, which the stream did not fill"
            );
            if self.g.changed(Change::Lost(p)) {
                *hole = true;
            } else {
                self.g.shell_page(p, page);
            }
        }
        Ok(())
    }
    fn hvm_param(&mut self, _: u32) -> Result<u64, PortError> {
        panic!("parameter asked during verification")
    }
    fn set_hvm_param(&mut self, _: u32, _: u64) -> Result<(), PortError> {
        panic!("parameter set during verification")
    }
    fn set_tsc_info(&mut self, _: &TscInfo) -> Result<(), PortError> {
        panic!("TSC set during verification")
    }
    fn set_hvm_context(&mut self, _: &[u8]) -> Result<(), PortError> {
        panic!("context set during verification")
    }
}

/// A clock that never moves.
struct NoClock;

impl Clock for NoClock {
    fn now_ns(&self) -> u64 {
        0
    }
}

/// The connection: the peer's bytes in fuzzer-chosen segments; what this
/// side sends is kept.
struct Wire<'a> {
    input: &'a [u8],
    at: usize,
    cuts: Cuts,
    sent: Vec<u8>,
}

impl<'a> Wire<'a> {
    fn new(input: &'a [u8], cuts: Cuts) -> Self {
        Wire {
            input,
            at: 0,
            cuts,
            sent: Vec::new(),
        }
    }
}

impl Transport for Wire<'_> {
    fn send(&mut self, data: &[u8]) -> Result<(), TransportError> {
        // One message per call, within the cap.
        assert!(data.len() >= HEADER_LEN + VERIFY_TAG_LEN, "short send");
        assert!(
            data.len() <= HEADER_LEN + MAX_BODY + VERIFY_TAG_LEN,
            "a message of {} bytes sent",
            data.len()
        );
        self.sent.extend_from_slice(data);
        Ok(())
    }
    fn flush(&mut self) -> Result<(), TransportError> {
        Ok(())
    }
    fn recv(&mut self, buf: &mut [u8]) -> Result<usize, TransportError> {
        assert!(!buf.is_empty(), "recv into an empty buffer");
        let n = self.cuts.next(self.input.len() - self.at).min(buf.len());
        buf[..n].copy_from_slice(&self.input[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

fn other(d: Direction) -> Direction {
    match d {
        Direction::SourceToDestination => Direction::DestinationToSource,
        Direction::DestinationToSource => Direction::SourceToDestination,
    }
}

/// A message framed and tagged as `dir`'s message number `seq`.
pub fn message(dir: Direction, seq: u32, kind: u8, body: &[u8]) -> Vec<u8> {
    let mut m = b"DMV".to_vec();
    m.push(kind);
    m.extend_from_slice(&(body.len() as u32).to_le_bytes());
    m.extend_from_slice(body);
    // PANICS: the fixed key and hellos are valid.
    let tag = verify_tag(KEY, &source_hello(), &dest_hello(), dir, seq, &m).expect("fixed hellos");
    m.extend_from_slice(&tag);
    m
}

/// Messages from the input, framed and tagged as `dir`'s (see the module
/// documentation).
fn tagged(inp: &mut Input<'_>, dir: Direction) -> Vec<u8> {
    let mut wire = Vec::new();
    let mut seq = 0u32;
    while !inp.is_empty() {
        let ctl = inp.u8();
        let kind = if ctl & 4 != 0 {
            inp.u8()
        } else {
            KINDS[usize::from(ctl & 3)]
        };
        let len = usize::from(inp.u16()) % (MAX_BODY + 64);
        let body = inp.bytes(len);
        let (d, s) = match (ctl >> 4) & 3 {
            2 => (dir, seq.wrapping_add(1)),
            3 => (other(dir), seq),
            _ => (dir, seq),
        };
        let mut m = message(d, s, kind, body);
        if (ctl >> 4) & 3 == 1 {
            let at = m.len() - VERIFY_TAG_LEN + usize::from(ctl >> 6) * 8;
            m[at] ^= 0x40;
        }
        wire.extend_from_slice(&m);
        seq = seq.wrapping_add(1);
    }
    wire
}

/// One piece of a side's input as a receiver must take it.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Piece {
    /// A whole message: where it starts and ends, its kind, its body, and
    /// whether its tag checks as its direction's message number (its
    /// index).
    Msg {
        end: usize,
        kind: u8,
        body: Vec<u8>,
        valid: bool,
    },
    /// A header to refuse: no magic, or a length over the cap.
    BadHeader { end: usize, magic: bool, len: u32 },
    /// The input ends inside this piece.
    Partial,
}

/// Cuts `wire` into messages as `dir`'s receiver reads it (up to the
/// first bad header or the end).
fn pieces(wire: &[u8], dir: Direction) -> Vec<Piece> {
    let mut out = Vec::new();
    let mut at = 0usize;
    let mut seq = 0u32;
    while at < wire.len() {
        let Some(h) = wire.get(at..at + HEADER_LEN) else {
            out.push(Piece::Partial);
            break;
        };
        let len = u32::from_le_bytes([h[4], h[5], h[6], h[7]]);
        let magic = h[..3] == *b"DMV";
        if !magic || len as usize > MAX_BODY {
            out.push(Piece::BadHeader {
                end: at + HEADER_LEN,
                magic,
                len,
            });
            break;
        }
        let end = at + HEADER_LEN + len as usize + VERIFY_TAG_LEN;
        let Some(m) = wire.get(at..end) else {
            out.push(Piece::Partial);
            break;
        };
        let (signed, tag) = m.split_at(m.len() - VERIFY_TAG_LEN);
        let valid =
            check_verify_tag(KEY, &source_hello(), &dest_hello(), dir, seq, signed, tag).is_ok();
        out.push(Piece::Msg {
            end,
            kind: h[3],
            body: signed[HEADER_LEN..].to_vec(),
            valid,
        });
        at = end;
        seq = seq.wrapping_add(1);
    }
    out
}

/// Where a side stopped reading, by its result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stop {
    /// After a message it read (accepted, or refused by its body).
    Read,
    /// After a message refused by its tag.
    Tag,
    /// After a header refused (or, at the source, taken as the reply).
    Header,
    /// At the end of the input.
    End,
    /// Before reading anything.
    Nothing,
}

/// The oracle of "refused by the tag before parsing": the bytes consumed
/// end where the verdict says, and only messages with valid tags come
/// before (and, but for `Stop::Tag`, at) that point. Returns the valid
/// messages read.
fn check_consumed(pcs: &[Piece], consumed: usize, total: usize, stop: Stop) -> Vec<(u8, Vec<u8>)> {
    let mut read = Vec::new();
    if stop == Stop::Nothing {
        assert_eq!(consumed, 0, "bytes read before anything was asked");
        return read;
    }
    if stop == Stop::End {
        assert_eq!(consumed, total, "stopped for the end before it");
    }
    for p in pcs {
        match p {
            Piece::Msg {
                end,
                kind,
                body,
                valid,
            } if *end <= consumed => {
                if *end == consumed && stop == Stop::Tag {
                    assert!(!valid, "a message with a valid tag refused by its tag");
                    return read;
                }
                assert!(
                    valid,
                    "a message with a bad tag (ending at {end}) was taken; stopped at {consumed} ({stop:?})"
                );
                read.push((*kind, body.clone()));
                if *end == consumed && stop == Stop::Read {
                    return read;
                }
            }
            Piece::Msg { end, .. } => {
                panic!("stopped at {consumed} ({stop:?}) inside the message ending at {end}")
            }
            Piece::BadHeader { end, .. } => {
                assert_eq!(stop, Stop::Header, "a bad header not refused");
                assert_eq!(*end, consumed, "a bad header refused elsewhere");
                return read;
            }
            Piece::Partial => {
                assert_eq!(stop, Stop::End, "stopped at {consumed} in a cut message");
                return read;
            }
        }
    }
    assert_eq!(stop, Stop::End, "stopped at {consumed} past the messages");
    read
}

/// Reads a body's numbers.
struct Rd<'b>(&'b [u8]);

impl Rd<'_> {
    fn take<const N: usize>(&mut self) -> [u8; N] {
        // PANICS: only on what this side itself sent, which must be whole.
        let (h, t) = self.0.split_first_chunk::<N>().expect("a whole body");
        self.0 = t;
        *h
    }
    fn u8(&mut self) -> u8 {
        self.take::<1>()[0]
    }
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.take())
    }
    fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.take())
    }
}

fn class(b: u8) -> Class {
    match b {
        1 => Class::Data,
        2 => Class::Free,
        3 => Class::Hole,
        4 => Class::Ring,
        _ => panic!("class byte {b} sent"),
    }
}

/// A verdict as sent.
#[derive(Debug, PartialEq, Eq)]
struct SentVerdict {
    mismatched_ranges: u64,
    mismatched_frames: u64,
    digest_ns: u64,
    bytes_read: u64,
    listed: Vec<u64>,
    classes: Vec<(Class, Class)>,
}

fn parse_verdict(body: &[u8]) -> SentVerdict {
    let mut b = Rd(body);
    let mismatched_ranges = b.u64();
    let mismatched_frames = b.u64();
    let digest_ns = b.u64();
    let bytes_read = b.u64();
    let n = b.u32() as usize;
    assert!(n <= MAX_LISTED_FRAMES, "{n} frames listed");
    let mut listed = Vec::new();
    let mut classes = Vec::new();
    for _ in 0..n {
        listed.push(b.u64());
        let s = class(b.u8());
        let d = class(b.u8());
        classes.push((s, d));
    }
    assert!(b.0.is_empty(), "bytes after the verdict");
    SentVerdict {
        mismatched_ranges,
        mismatched_frames,
        digest_ns,
        bytes_read,
        listed,
        classes,
    }
}

/// The narrowed ranges a NARROW body asks for, checked.
fn parse_narrow(body: &[u8], total: u64) -> Vec<u64> {
    let mut b = Rd(body);
    let n = b.u32() as usize;
    assert!((1..=MAX_NARROW).contains(&n), "{n} ranges narrowed");
    let ask: Vec<u64> = (0..n).map(|_| b.u64()).collect();
    assert!(b.0.is_empty(), "bytes after the ranges asked");
    assert!(
        ask.windows(2).all(|w| w[0] < w[1]),
        "ranges asked not ascending"
    );
    assert!(
        ask.iter().all(|&i| i < total),
        "a range past the guest asked"
    );
    ask
}

/// What a verdict names is inside the guest and the ranges narrowed, no
/// more than it counts, in order.
fn check_named(stats: &VerifyStats, nr: u64, narrowed: &[u64]) {
    assert!(stats.complete);
    assert!(stats.listed.len() <= MAX_LISTED_FRAMES);
    assert_eq!(stats.listed.len(), stats.listed_classes.len());
    assert!(stats.mismatched_frames >= stats.listed.len() as u64);
    assert!(
        stats.listed.windows(2).all(|w| w[0] < w[1]),
        "frames named out of order: {:?}",
        stats.listed
    );
    for &p in &stats.listed {
        assert!(p < nr, "frame {p} named in a guest of {nr}");
        assert!(
            narrowed.contains(&(p / RANGE_FRAMES)),
            "frame {p} named outside the ranges narrowed ({narrowed:?})"
        );
    }
    let narrowed_frames: u64 = narrowed
        .iter()
        .map(|&i| {
            let r = range_pfns(i, nr);
            r.end - r.start
        })
        .sum();
    assert!(
        stats.mismatched_frames <= narrowed_frames,
        "{} frames differ in {} narrowed",
        stats.mismatched_frames,
        narrowed_frames
    );
    assert!(stats.mismatched_ranges <= ranges_of(nr));
    assert_eq!(
        stats.mismatched_ranges.min(MAX_NARROW as u64),
        narrowed.len() as u64,
        "ranges narrowed and ranges found different disagree"
    );
}

/// The destination's side over `t`, `left` read with the trailer:
/// its result, how many of `left` it took, the frames it read.
fn dest_side<T: Transport>(
    g: &Guest,
    left: &[u8],
    t: &mut T,
) -> (Result<VerifyStats, VerifyError>, usize, u64) {
    let mut shell = ShellDom { g, frames_read: 0 };
    let view = g.dest_view();
    let mut chan = Channel::new(KEY, source_hello(), dest_hello());
    let mut r = Buffered {
        t,
        left: left.to_vec(),
        at: 0,
    };
    let out = verify::destination(&mut shell, &mut r, &mut chan, &view, &NoClock);
    (out.map(|o| o.stats), r.at, shell.frames_read)
}

fn dest_run(
    g: &Guest,
    left: &[u8],
    wire: &[u8],
    cuts: Cuts,
) -> (Result<VerifyStats, VerifyError>, usize, Vec<u8>, u64) {
    let mut link = Wire::new(wire, cuts);
    let (r, consumed, frames_read) = dest_side(g, left, &mut link);
    assert!(
        link.at == 0 || consumed == left.len(),
        "the transport read before the bytes already received"
    );
    (r, consumed + link.at, link.sent, frames_read)
}

fn destination(g: &Guest, cuts: Cuts, inp: &mut Input<'_>, signed: bool) -> Outcome {
    let split = usize::from(inp.u16());
    let s2d = Direction::SourceToDestination;
    let bytes = if signed {
        tagged(inp, s2d)
    } else {
        inp.rest().to_vec()
    };
    let (left, wire) = bytes.split_at(split.min(bytes.len()));
    let (r, consumed, sent, frames_read) = dest_run(g, left, wire, cuts);

    let stop = match &r {
        Ok(_)
        | Err(VerifyError::Malformed | VerifyError::UnexpectedKind(_))
        | Err(VerifyError::SizeMismatch { .. }) => Stop::Read,
        Err(VerifyError::BadTag) => Stop::Tag,
        Err(VerifyError::BadMagic | VerifyError::TooLong(_)) => Stop::Header,
        Err(VerifyError::Transport(TransportError::Closed)) => Stop::End,
        Err(e) => panic!("the destination failed with {e:?}"),
    };
    let pcs = pieces(&bytes, s2d);
    let read = check_consumed(&pcs, consumed, bytes.len(), stop);
    if let Err(e @ (VerifyError::BadMagic | VerifyError::TooLong(_))) = &r {
        let Some(Piece::BadHeader { magic, len, .. }) = pcs.last() else {
            panic!("{e:?} without a bad header");
        };
        assert_eq!(
            *e,
            if *magic {
                VerifyError::TooLong(*len)
            } else {
                VerifyError::BadMagic
            }
        );
    }
    // Nothing is read from the shell before a message checked.
    if read.is_empty() {
        assert_eq!(
            frames_read, 0,
            "the shell read on the strength of no message"
        );
    }
    // The source's size, from its first message.
    let nr = read
        .first()
        .and_then(|(_, b)| b.get(..8))
        .map(|b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])));
    if let Err(VerifyError::SizeMismatch { source, shell }) = &r {
        assert_eq!(Some(*source), nr);
        assert_eq!(*shell, g.nr);
        assert!(*source > g.nr);
    }
    assert!(
        frames_read <= g.nr + MAX_NARROW as u64 * RANGE_FRAMES,
        "{frames_read} frames read in a shell of {}",
        g.nr
    );

    // What the destination sent: NARROW, then VERDICT, each tagged.
    let d2s = Direction::DestinationToSource;
    let out = pieces(&sent, d2s);
    let mut narrowed = Vec::new();
    let mut verdict = None;
    for (i, p) in out.iter().enumerate() {
        let Piece::Msg {
            kind, body, valid, ..
        } = p
        else {
            panic!("the destination sent a broken message: {p:?}");
        };
        assert!(valid, "the destination's message {i} has a bad tag");
        match (i, kind) {
            (0, b'N') => {
                let n = nr.expect("a narrowing after a message");
                narrowed = parse_narrow(body, ranges_of(n));
            }
            (_, b'V') if verdict.is_none() => verdict = Some(parse_verdict(body)),
            _ => panic!(
                "the destination sent {:?} as its message {i}",
                *kind as char
            ),
        }
    }
    match &r {
        Ok(stats) => {
            let n = nr.expect("verified without a message");
            let v = verdict.expect("verified without a verdict");
            assert_eq!(stats.ranges, ranges_of(n));
            check_named(stats, n, &narrowed);
            assert_eq!(
                v,
                SentVerdict {
                    mismatched_ranges: stats.mismatched_ranges,
                    mismatched_frames: stats.mismatched_frames,
                    digest_ns: stats.digest_ns,
                    bytes_read: stats.bytes_read,
                    listed: stats.listed.clone(),
                    classes: stats.listed_classes.clone(),
                },
                "the verdict sent is not the destination's"
            );
            // The first pass reads each frame the stream filled once.
            let filled = (0..n)
                .filter(|&p| !g.is_ring(p) && matches!(g.hist(p), Hist::Data | Hist::Free))
                .count() as u64;
            let narrowed_frames: u64 = narrowed
                .iter()
                .map(|&i| {
                    range_pfns(i, n)
                        .filter(|&p| !g.is_ring(p) && matches!(g.hist(p), Hist::Data | Hist::Free))
                        .count() as u64
                })
                .sum();
            assert_eq!(frames_read, filled + narrowed_frames, "frames read");
            assert_eq!(
                stats.data + stats.free + stats.holes + stats.rings,
                n,
                "classes counted"
            );
        }
        Err(_) => assert!(verdict.is_none(), "a verdict sent, then an error"),
    }
    Outcome::Dest(r)
}

/// The source's side over `t`: its result, its figures, the frames it
/// read.
fn source_side<T: Transport>(
    g: &Guest,
    held: Option<u64>,
    t: &mut T,
) -> (Result<Option<[u8; 8]>, VerifyError>, VerifyStats, u64) {
    let mut dom = SourceGuest {
        g,
        held,
        frames_read: 0,
    };
    let mut oracle = FreeOracle { g, asked: 0 };
    let mut chan = Channel::new(KEY, source_hello(), dest_hello());
    let mut sent_free = DirtyBitmap::new(g.nr);
    let mut sent_any = DirtyBitmap::new(g.nr);
    for (p, h) in (0u64..).zip(&g.hist) {
        if *h == Hist::Free {
            sent_free.set(p);
        }
        if *h != Hist::Untouched {
            sent_any.set(p);
        }
    }
    let view = SourceView {
        sent_free: &sent_free,
        sent_any: &sent_any,
        rings: g.rings,
    };
    let mut stats = VerifyStats::default();
    let r = verify::source(
        &mut dom,
        t,
        &mut oracle,
        &mut chan,
        &view,
        &NoClock,
        &mut stats,
    );
    assert!(oracle.asked <= 1);
    (r, stats, dom.frames_read)
}

#[allow(clippy::type_complexity)]
fn source_run(
    g: &Guest,
    held: Option<u64>,
    input: &[u8],
    cuts: Cuts,
) -> (
    Result<Option<[u8; 8]>, VerifyError>,
    VerifyStats,
    usize,
    Vec<u8>,
    u64,
) {
    let mut t = Wire::new(input, cuts);
    let (r, stats, frames_read) = source_side(g, held, &mut t);
    (r, stats, t.at, t.sent, frames_read)
}

/// Checks what the source sent: its RANGES (the model's digests), and
/// FRAMES for the ranges `narrowed`, if it was asked.
fn check_source_sent(g: &Guest, sent: &[u8], narrowed: Option<&[u64]>) {
    let total = ranges_of(g.nr);
    let messages = total.div_ceil(RANGES_PER_MESSAGE) as usize;
    let out = pieces(sent, Direction::SourceToDestination);
    assert_eq!(
        out.len(),
        messages + usize::from(narrowed.is_some()),
        "the source sent {} messages",
        out.len()
    );
    let frames: Vec<Frame> = (0..g.nr).map(|p| g.source_frame(p)).collect();
    for (i, p) in out.iter().enumerate() {
        let Piece::Msg {
            kind, body, valid, ..
        } = p
        else {
            panic!("the source sent a broken message: {p:?}");
        };
        assert!(valid, "the source's message {i} has a bad tag");
        let mut b = Rd(body);
        if i < messages {
            assert_eq!(*kind, b'R');
            assert_eq!(b.u64(), g.nr);
            let first = b.u64();
            assert_eq!(first, i as u64 * RANGES_PER_MESSAGE);
            let count = u64::from(b.u32());
            assert_eq!(count, RANGES_PER_MESSAGE.min(total - first));
            for r in first..first + count {
                let pfns = range_pfns(r, g.nr);
                let want =
                    range_digest(pfns.start, &frames[pfns.start as usize..pfns.end as usize]);
                assert_eq!(b.u64(), want, "range {r}'s digest");
            }
        } else {
            assert_eq!(*kind, b'F');
            let ask = narrowed.unwrap_or(&[]);
            assert_eq!(b.u32() as usize, ask.len());
            for &r in ask {
                let pfns = range_pfns(r, g.nr);
                assert_eq!(b.u64(), r);
                assert_eq!(u64::from(b.u32()), pfns.end - pfns.start);
                for pfn in pfns {
                    let f = Frame {
                        class: class(b.u8()),
                        digest: b.u64(),
                    };
                    assert_eq!(f, frames[pfn as usize], "frame {pfn} as sent");
                }
            }
        }
        assert!(b.0.is_empty(), "bytes after the source's message {i}");
    }
}

/// The source's counts of its frames' classes, as the model has them.
fn check_source_counts(g: &Guest, stats: &VerifyStats) {
    let mut want = [0u64; 5];
    for p in 0..g.nr {
        want[g.source_class(p) as usize] += 1;
    }
    assert_eq!(
        [stats.data, stats.free, stats.holes, stats.rings],
        [want[1], want[2], want[3], want[4]],
        "the source's classes"
    );
    assert_eq!(stats.ranges, ranges_of(g.nr));
}

fn held_pages(g: &Guest, b: u8) -> Option<u64> {
    let c = g.covered_pages();
    match b & 3 {
        0 => None,
        1 => Some(c),
        2 => Some(c + 1),
        _ => Some(c.saturating_sub(1)),
    }
}

fn source(g: &Guest, cuts: Cuts, inp: &mut Input<'_>, signed: bool) -> Outcome {
    let held_byte = inp.u8();
    let held = held_pages(g, held_byte);
    let d2s = Direction::DestinationToSource;
    let input = if signed {
        tagged(inp, d2s)
    } else {
        inp.rest().to_vec()
    };
    let (r, stats, consumed, sent, frames_read) = source_run(g, held, &input, cuts);

    let uncovered = held_byte & 3 == 2;
    let stop = match &r {
        Err(VerifyError::Uncovered { held: h, covered }) => {
            assert!(uncovered, "uncovered with every page covered");
            assert_eq!((Some(*h), *covered), (held, g.covered_pages()));
            Stop::Nothing
        }
        _ if uncovered => panic!("a page outside the stream not found: {r:?}"),
        Ok(None) | Err(VerifyError::Malformed | VerifyError::UnexpectedKind(_)) => Stop::Read,
        Ok(Some(_)) | Err(VerifyError::TooLong(_)) => Stop::Header,
        Err(VerifyError::BadTag) => Stop::Tag,
        Err(VerifyError::Transport(TransportError::Closed)) => Stop::End,
        Err(e) => panic!("the source failed with {e:?}"),
    };
    let pcs = pieces(&input, d2s);
    let read = check_consumed(&pcs, consumed, input.len(), stop);
    match (&r, pcs.last()) {
        (Ok(Some(h)), Some(Piece::BadHeader { end, magic, .. })) => {
            assert!(!magic, "a verification message taken as the reply");
            assert_eq!(h[..], input[end - HEADER_LEN..*end]);
        }
        (Err(VerifyError::TooLong(n)), Some(Piece::BadHeader { magic, len, .. })) => {
            assert!(*magic);
            assert_eq!(n, len);
        }
        (Ok(Some(_)) | Err(VerifyError::TooLong(_)), p) => panic!("{r:?} at {p:?}"),
        _ => {}
    }
    // The first NARROW the source took, if it answered one.
    let narrowed: Option<Vec<u64>> = read.iter().find(|(k, _)| *k == b'N').and_then(|(_, b)| {
        let mut rd = Rd(b);
        if b.len() < 4 {
            return None;
        }
        let n = rd.u32() as usize;
        if n == 0 || n > MAX_NARROW || b.len() != 4 + 8 * n {
            return None;
        }
        let ask: Vec<u64> = (0..n).map(|_| rd.u64()).collect();
        let ok = ask.windows(2).all(|w| w[0] < w[1]) && ask.iter().all(|&i| i < ranges_of(g.nr));
        ok.then_some(ask)
    });
    check_source_sent(g, &sent, narrowed.as_deref());
    check_source_counts(g, &stats);
    let sent_any = g.hist.iter().filter(|&&h| h != Hist::Untouched).count() as u64;
    assert!(
        frames_read <= sent_any + MAX_NARROW as u64 * RANGE_FRAMES,
        "{frames_read} frames read of {sent_any} covered"
    );
    match r {
        Ok(None) => {
            assert_eq!(read.last().map(|(k, _)| *k), Some(b'V'));
            check_named(&stats, g.nr, narrowed.as_deref().unwrap_or(&[]));
            Outcome::Source(Ok(Some(stats)))
        }
        Ok(Some(_)) => {
            assert!(!stats.complete);
            Outcome::Source(Ok(None))
        }
        Err(e) => {
            assert!(!stats.complete);
            Outcome::Source(Err(e))
        }
    }
}

/// One end of an in-memory connection between the two sides: what the
/// other end sent, handed over in fuzzer-chosen segments.
struct Pipe {
    tx: mpsc::Sender<Vec<u8>>,
    rx: mpsc::Receiver<Vec<u8>>,
    buf: Vec<u8>,
    at: usize,
    cuts: Cuts,
    sent: Vec<u8>,
}

/// Both ends of a connection.
fn pipes(cuts: &Cuts) -> (Pipe, Pipe) {
    let (tx_a, rx_b) = mpsc::channel();
    let (tx_b, rx_a) = mpsc::channel();
    let end = |tx, rx| Pipe {
        tx,
        rx,
        buf: Vec::new(),
        at: 0,
        cuts: cuts.clone(),
        sent: Vec::new(),
    };
    (end(tx_a, rx_a), end(tx_b, rx_b))
}

impl Transport for Pipe {
    fn send(&mut self, data: &[u8]) -> Result<(), TransportError> {
        assert!(data.len() <= HEADER_LEN + MAX_BODY + VERIFY_TAG_LEN);
        self.sent.extend_from_slice(data);
        self.tx
            .send(data.to_vec())
            .map_err(|_| TransportError::Reset)
    }
    fn flush(&mut self) -> Result<(), TransportError> {
        Ok(())
    }
    fn recv(&mut self, buf: &mut [u8]) -> Result<usize, TransportError> {
        assert!(!buf.is_empty(), "recv into an empty buffer");
        if self.at == self.buf.len() {
            match self.rx.recv_timeout(Duration::from_secs(10)) {
                Ok(v) => {
                    self.buf = v;
                    self.at = 0;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => return Ok(0),
                Err(mpsc::RecvTimeoutError::Timeout) => return Err(TransportError::Timeout),
            }
        }
        let n = self.cuts.next(self.buf.len() - self.at).min(buf.len());
        buf[..n].copy_from_slice(&self.buf[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// Both sides against each other, the destination on a thread of its
/// own. Returns their results and what each sent.
#[allow(clippy::type_complexity)]
fn exchange(
    g: &Guest,
    held: Option<u64>,
    cuts: &Cuts,
) -> (
    Result<Option<[u8; 8]>, VerifyError>,
    VerifyStats,
    Result<VerifyStats, VerifyError>,
    (Vec<u8>, Vec<u8>),
) {
    let (mut to_dest, mut to_source) = pipes(cuts);
    std::thread::scope(|sc| {
        let dest = sc.spawn(move || {
            let (r, _, _) = dest_side(g, &[], &mut to_source);
            (r, to_source.sent)
        });
        let (rs, stats, _) = source_side(g, held, &mut to_dest);
        let s_sent = std::mem::take(&mut to_dest.sent);
        // The destination sees the source hang up, if it still waits.
        drop(to_dest);
        // PANICS: only if the destination's side panicked (a finding).
        let (rd, d_sent) = dest.join().expect("the destination's side");
        (rs, stats, rd, (s_sent, d_sent))
    })
}

/// What each side sends to the other in a run of mode 4 on `guest` (the
/// ten guest bytes) and `changes` (the bytes after the pages-held byte):
/// the source's messages, then the destination's (for the seeds).
pub fn transcript(guest: &[u8], changes: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let mut bytes = guest.to_vec();
    bytes.extend_from_slice(changes);
    let mut inp = Input::new(&bytes);
    let g = Guest::new(&mut inp);
    let g = with_changes(&g, &mut inp);
    exchange(&g, None, &Cuts::new(0xf0)).3
}

/// The messages of `wire` (as `dir` sends them) in the tagged modes'
/// layout: a control byte of the kind, the body's length, the body.
pub fn untag(wire: &[u8], dir: Direction) -> Vec<u8> {
    let mut out = Vec::new();
    for p in pieces(wire, dir) {
        // PANICS: only for the seeds, from messages this harness made.
        let Piece::Msg { kind, body, .. } = p else {
            panic!("not a message: {p:?}")
        };
        let k = KINDS.iter().position(|&x| x == kind).expect("a kind");
        out.push(k as u8);
        out.extend_from_slice(&(body.len() as u16).to_le_bytes());
        out.extend_from_slice(&body);
    }
    out
}

/// The guest `g` with the changes the input gives (mode 4).
fn with_changes(g: &Guest, inp: &mut Input<'_>) -> Guest {
    let mut changed = Guest {
        nr: g.nr,
        seed: g.seed,
        hist: g.hist.clone(),
        rings: g.rings,
        changes: Vec::new(),
    };
    for _ in 0..inp.u8() & 3 {
        let kind = inp.u8();
        let pfn = u64::from(inp.u16()) % g.nr;
        changed.changes.push(match kind & 3 {
            0 => Change::Flip(pfn),
            1 => Change::Lost(pfn),
            2 => Change::Unfree(pfn),
            _ => Change::Gone(pfn),
        });
    }
    changed
}

fn pair(g: &Guest, cuts: Cuts, inp: &mut Input<'_>) -> Outcome {
    let held = if inp.u8() & 1 == 0 {
        None
    } else {
        Some(g.covered_pages())
    };
    let g = with_changes(g, inp);
    // Held pages as the changed guest has them.
    let held = held.map(|_| g.covered_pages());

    let (rs, s_stats, rd, _) = exchange(&g, held, &cuts);
    assert_eq!(rs, Ok(None), "the source's side");
    let d = rd.expect("the destination's side");

    // The model: the frames that differ, the ranges that hold them.
    let differ: Vec<u64> = (0..g.nr)
        .filter(|&p| g.source_frame(p) != g.dest_frame(p))
        .collect();
    let mut ranges: Vec<u64> = differ.iter().map(|p| p / RANGE_FRAMES).collect();
    ranges.dedup();
    let narrowed: Vec<u64> = ranges.iter().copied().take(MAX_NARROW).collect();
    let found: Vec<u64> = differ
        .iter()
        .copied()
        .filter(|p| narrowed.contains(&(p / RANGE_FRAMES)))
        .collect();
    let listed: Vec<u64> = found.iter().copied().take(MAX_LISTED_FRAMES).collect();
    let classes: Vec<(Class, Class)> = listed
        .iter()
        .map(|&p| (g.source_frame(p).class, g.dest_frame(p).class))
        .collect();
    for s in [&s_stats, &d] {
        assert!(s.complete);
        assert_eq!(s.mismatched_ranges, ranges.len() as u64, "ranges differing");
        assert_eq!(s.mismatched_frames, found.len() as u64, "frames differing");
        assert_eq!(s.listed, listed, "frames named");
        assert_eq!(s.listed_classes, classes, "classes named");
        assert_eq!(s.ranges, ranges_of(g.nr));
    }
    check_source_counts(&g, &s_stats);
    let mut want = [0u64; 5];
    for p in 0..g.nr {
        want[g.dest_frame(p).class as usize] += 1;
    }
    assert_eq!(
        [d.data, d.free, d.holes, d.rings],
        [want[1], want[2], want[3], want[4]],
        "the destination's classes"
    );
    Outcome::Pair(d)
}
