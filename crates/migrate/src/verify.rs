//! Page verification after the stream (`--verify`): once the trailer was
//! sent, the source digests every frame of the suspended guest and the
//! destination every frame of the shell, and they compare, before the
//! destination acknowledges.
//!
//! ```text
//! -> RANGES(first, digests...)   one message per RANGES_PER_MESSAGE ranges
//! <- NARROW(ranges...)           only where ranges differed (at most MAX_NARROW)
//! -> FRAMES(per-frame digests)   for those ranges
//! <- VERDICT(figures, frames)    then the 8-byte reply: ACK, or NAK VER
//! ```
//!
//! Each frame has a class, which each end decides from what it knows:
//!
//! | class | source (the suspended guest) | destination (the shell) |
//! | --- | --- | --- |
//! | `DATA` | a populated frame not below | the stream's last entry for it carried data |
//! | `FREE` | sent as free (its last entry XALLOC) and still free in the guest's allocator now | the last entry was XALLOC and the frame holds zeros |
//! | `HOLE` | not populated | the last entry was XTAB, or none came |
//! | `RING` | the guest's xenstore or console ring frame | the shell's (equal: checked while applying) |
//!
//! `DATA` frames carry a digest of their contents. A `FREE` frame that is
//! no longer free at the source, or no longer zero at the destination, is
//! `DATA` there, and so differs. The ring frames are the shell's own by
//! rule ([`crate::params`]): both ends mark them, nobody reads them, and
//! the report counts them under [`RING_RULE`]. Every dirty page is sent
//! in every mode (frozen process groups dirty nothing, so the copy they
//! sent once is current), so no frame is allowed to differ.
//!
//! A range's digest is taken over its frames' pfns, classes and digests in
//! order, so any difference in any of them changes it. Where a range
//! differs the destination asks for the range frame by frame and names
//! the frames (the first [`MAX_LISTED_FRAMES`]).
//!
//! The page digest is XXH3-64 (`xxhash-rust`): verification runs while the
//! guest is down, on a CPU without SHA or AES instructions (the rig's is
//! emulated), and XXH3 runs near memory speed with plain SSE2
//! (`depmig-bench` prints it beside memcpy and the Poly1305 tag). It is not
//! a cryptographic hash and need not be: it looks for pages that were
//! lost, misplaced or damaged between two ends that trust each other, and
//! a random difference escapes it with odds of 2^-64 per page; what a
//! third party could forge is kept out by the messages' own tags
//! ([`depmig_stream::verify_tag`]: HMAC-SHA256 under the migration's key,
//! per direction and sequence number, over both hellos).
//!
//! Every message is hostile until its tag checked, and is read with caps
//! on its length and counts; every loop is bounded by the guest's size.

use alloc::vec;
use alloc::vec::Vec;

use depmig_control::report::MAX_LISTED_FRAMES;
use depmig_precopy::{DependencyOracle, DirtyBitmap, PortError};
use depmig_stream::{check_verify_tag, verify_tag, Direction, Hello, PAGE_SIZE, VERIFY_TAG_LEN};
use xxhash_rust::xxh3::{xxh3_64, Xxh3};

use crate::ports::{DestDomain, SourceDomain, Transport, TransportError};

/// Frames per range digest (2 MiB of guest memory).
pub const RANGE_FRAMES: u64 = 512;
/// Range digests per RANGES message: the destination digests one
/// message's ranges while the source digests the next ones.
pub const RANGES_PER_MESSAGE: u64 = 16;
/// Ranges the destination asks for frame by frame, at most.
pub const MAX_NARROW: usize = 8;
/// How the ring frames are compared, as the report says.
pub const RING_RULE: &str = "the shell's own xenstore and console rings: kept, not compared";

/// Size of a message header: "DMV", the kind, the body's length (u32 LE).
const HEADER_LEN: usize = 8;
const MAGIC: [u8; 3] = *b"DMV";
const KIND_RANGES: u8 = b'R';
const KIND_NARROW: u8 = b'N';
const KIND_FRAMES: u8 = b'F';
const KIND_VERDICT: u8 = b'V';
/// Largest body: a FRAMES message of [`MAX_NARROW`] whole ranges.
const MAX_BODY: usize = 4 + MAX_NARROW * (12 + RANGE_FRAMES as usize * FRAME_LEN);
/// A frame's class and digest on the wire.
const FRAME_LEN: usize = 9;

/// A frame's class (see the module documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// Compared by contents.
    Data = 1,
    /// Free at the source, zero at the destination.
    Free = 2,
    /// Not part of the guest.
    Hole = 3,
    /// The shell's own ring, compared by rule.
    Ring = 4,
}

impl Class {
    /// Its name in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Data => "data",
            Class::Free => "free",
            Class::Hole => "hole",
            Class::Ring => "ring",
        }
    }

    fn from_u8(b: u8) -> Option<Class> {
        Some(match b {
            1 => Class::Data,
            2 => Class::Free,
            3 => Class::Hole,
            4 => Class::Ring,
            _ => return None,
        })
    }
}

/// One frame's class and, for [`Class::Data`], the digest of its contents
/// (zero otherwise).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame {
    /// Its class.
    pub class: Class,
    /// XXH3-64 of its 4096 bytes, for `Data`.
    pub digest: u64,
}

/// The digest of one page's contents.
pub fn page_digest(page: &[u8]) -> u64 {
    xxh3_64(page)
}

/// The digest of the range starting at `first` with `frames` in order.
pub fn range_digest(first: u64, frames: &[Frame]) -> u64 {
    let mut h = Xxh3::new();
    for (pfn, f) in (first..).zip(frames) {
        h.update(&pfn.to_le_bytes());
        h.update(&[f.class as u8]);
        h.update(&f.digest.to_le_bytes());
    }
    h.digest()
}

/// Why verification could not be carried out (a difference is not an
/// error here: the verdict says so).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VerifyError {
    /// The transport failed.
    Transport(TransportError),
    /// A message that is not a verification message where one must come.
    BadMagic,
    /// A message of a kind not expected at this point.
    UnexpectedKind(u8),
    /// A message longer than any this protocol sends.
    TooLong(u32),
    /// A message's tag did not match: forged, replayed or damaged.
    BadTag,
    /// A message's counts, order or lengths are inconsistent.
    Malformed,
    /// The source's guest has more frames than the shell.
    SizeMismatch {
        /// The source's frames.
        source: u64,
        /// The shell's frames.
        shell: u64,
    },
    /// The destination acknowledged without comparing pages.
    Skipped,
    /// Reading pages failed.
    Read(PortError),
    /// Writing a page (the `corrupt-page` test fault) failed.
    Write(PortError),
    /// The guest's allocator could not be asked whether frames sent as
    /// free still are.
    Oracle(PortError),
    /// Keys or hellos unfit for a tag (never after a handshake).
    Key,
    /// No memory for the source's digest of each frame it sends (8 bytes
    /// a frame of the guest's address space), asked before the handshake.
    NoMemory {
        /// Bytes asked for.
        bytes: u64,
    },
    /// The guest holds more pages than the frames the stream covered hold:
    /// a page of it lies where the stream never looked.
    Uncovered {
        /// Pages the guest holds (Xen's count).
        held: u64,
        /// Its data, free and ring frames among those the stream covered.
        covered: u64,
    },
}

/// What one end measured and learnt of the comparison.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VerifyStats {
    /// The comparison ended; `mismatched_ranges` says how.
    pub complete: bool,
    /// Ranges compared.
    pub ranges: u64,
    /// Ranges whose digests differed.
    pub mismatched_ranges: u64,
    /// Frames of class DATA, FREE, HOLE and RING, as this end saw them
    /// (the source's figures in the source's report).
    pub data: u64,
    /// See `data`.
    pub free: u64,
    /// See `data`.
    pub holes: u64,
    /// See `data`.
    pub rings: u64,
    /// Frames found different in the narrowed ranges.
    pub mismatched_frames: u64,
    /// The first of them, ascending, at most [`MAX_LISTED_FRAMES`].
    pub listed: Vec<u64>,
    /// Each listed frame's class at the source, then at the destination.
    pub listed_classes: Vec<(Class, Class)>,
    /// Time this end spent reading and digesting pages, ns.
    pub digest_ns: u64,
    /// Bytes of pages this end read for it.
    pub bytes_read: u64,
    /// The destination's own `digest_ns` and `bytes_read`, from its
    /// verdict (source only).
    pub peer_digest_ns: Option<u64>,
    /// See `peer_digest_ns`.
    pub peer_bytes_read: Option<u64>,
    /// Source only: frames found changed since they were sent without a
    /// dirty bit, and sent again in the copy round (the source's recheck,
    /// before END).
    pub unlogged_frames: u64,
    /// The first of them, ascending, at most [`MAX_LISTED_FRAMES`].
    pub unlogged_listed: Vec<u64>,
    /// Frames the recheck read, and the time it took, ns.
    pub recheck_frames: u64,
    /// See `recheck_frames`.
    pub recheck_ns: u64,
}

impl VerifyStats {
    fn count(&mut self, c: Class) {
        let n = match c {
            Class::Data => &mut self.data,
            Class::Free => &mut self.free,
            Class::Hole => &mut self.holes,
            Class::Ring => &mut self.rings,
        };
        *n = n.saturating_add(1);
    }
}

/// Milliseconds per GiB for `ns` spent on `bytes` (`None` for no bytes).
pub fn ms_per_gib(ns: u64, bytes: u64) -> Option<u64> {
    if bytes == 0 {
        return None;
    }
    let v = u128::from(ns) * (1u128 << 30) / u128::from(bytes) / 1_000_000;
    Some(u64::try_from(v).unwrap_or(u64::MAX))
}

/// The migration's key and hellos, and each direction's next sequence
/// number: what every message's tag binds.
pub struct Channel<'a> {
    key: &'a [u8],
    source: Hello,
    destination: Hello,
    /// Messages sent and received so far in each direction.
    s2d: u32,
    d2s: u32,
}

impl<'a> Channel<'a> {
    /// The channel of the migration of these hellos.
    pub fn new(key: &'a [u8], source: Hello, destination: Hello) -> Self {
        Channel {
            key,
            source,
            destination,
            s2d: 0,
            d2s: 0,
        }
    }

    fn seq(&mut self, dir: Direction) -> u32 {
        let s = match dir {
            Direction::SourceToDestination => &mut self.s2d,
            Direction::DestinationToSource => &mut self.d2s,
        };
        let v = *s;
        *s = s.wrapping_add(1);
        v
    }

    /// Frames `body` as a `kind` message with its tag, sends it.
    fn send<T: Transport>(
        &mut self,
        t: &mut T,
        dir: Direction,
        kind: u8,
        body: &[u8],
    ) -> Result<(), VerifyError> {
        let len = u32::try_from(body.len()).map_err(|_| VerifyError::Malformed)?;
        let mut msg = Vec::with_capacity(HEADER_LEN + body.len() + VERIFY_TAG_LEN);
        msg.extend_from_slice(&MAGIC);
        msg.push(kind);
        msg.extend_from_slice(&len.to_le_bytes());
        msg.extend_from_slice(body);
        let seq = self.seq(dir);
        let tag = verify_tag(self.key, &self.source, &self.destination, dir, seq, &msg)
            .map_err(|_| VerifyError::Key)?;
        msg.extend_from_slice(&tag);
        t.send(&msg)
            .and_then(|()| t.flush())
            .map_err(VerifyError::Transport)
    }

    /// Reads the rest of a message whose header is `header`, checks its
    /// tag, returns its kind and body.
    fn finish_recv<R: Recv>(
        &mut self,
        r: &mut R,
        dir: Direction,
        header: [u8; HEADER_LEN],
    ) -> Result<(u8, Vec<u8>), VerifyError> {
        let [m0, m1, m2, kind, l0, l1, l2, l3] = header;
        if [m0, m1, m2] != MAGIC {
            return Err(VerifyError::BadMagic);
        }
        let len = u32::from_le_bytes([l0, l1, l2, l3]);
        let body_len = usize::try_from(len).map_err(|_| VerifyError::TooLong(len))?;
        if body_len > MAX_BODY {
            return Err(VerifyError::TooLong(len));
        }
        let mut msg = vec![0u8; HEADER_LEN + body_len + VERIFY_TAG_LEN];
        let (head, rest) = msg.split_at_mut(HEADER_LEN);
        head.copy_from_slice(&header);
        r.recv_exact(rest).map_err(VerifyError::Transport)?;
        let (signed, tag) = msg.split_at(HEADER_LEN + body_len);
        let seq = self.seq(dir);
        check_verify_tag(
            self.key,
            &self.source,
            &self.destination,
            dir,
            seq,
            signed,
            tag,
        )
        .map_err(|_| VerifyError::BadTag)?;
        let body = signed.get(HEADER_LEN..).unwrap_or(&[]).to_vec();
        Ok((kind, body))
    }
}

/// Where the destination reads from: bytes that followed the trailer in
/// the last read, then the transport.
pub trait Recv {
    /// Fills `buf` completely.
    fn recv_exact(&mut self, buf: &mut [u8]) -> Result<(), TransportError>;
}

/// The destination's reader: `left` (bytes already received) first.
pub struct Buffered<'t, T> {
    /// The transport.
    pub t: &'t mut T,
    /// Bytes received after the trailer, not yet read.
    pub left: Vec<u8>,
    /// How many of `left` were read.
    pub at: usize,
}

impl<T: Transport> Recv for Buffered<'_, T> {
    fn recv_exact(&mut self, mut buf: &mut [u8]) -> Result<(), TransportError> {
        let have = self.left.get(self.at..).unwrap_or(&[]);
        let n = have.len().min(buf.len());
        let (now, later) = buf.split_at_mut(n);
        now.copy_from_slice(have.get(..n).unwrap_or(&[]));
        self.at += n;
        buf = later;
        if buf.is_empty() {
            return Ok(());
        }
        self.t.recv_exact(buf)
    }
}

/// The source's reader: its transport.
struct Direct<'t, T>(&'t mut T);

impl<T: Transport> Recv for Direct<'_, T> {
    fn recv_exact(&mut self, buf: &mut [u8]) -> Result<(), TransportError> {
        self.0.recv_exact(buf)
    }
}

/// A checked reader of a message body.
struct Body<'b>(&'b [u8]);

impl Body<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], VerifyError> {
        let (head, rest) = self
            .0
            .split_first_chunk::<N>()
            .ok_or(VerifyError::Malformed)?;
        self.0 = rest;
        Ok(*head)
    }
    fn u8(&mut self) -> Result<u8, VerifyError> {
        Ok(self.take::<1>()?[0])
    }
    fn u32(&mut self) -> Result<u32, VerifyError> {
        Ok(u32::from_le_bytes(self.take()?))
    }
    fn u64(&mut self) -> Result<u64, VerifyError> {
        Ok(u64::from_le_bytes(self.take()?))
    }
    fn end(&self) -> Result<(), VerifyError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(VerifyError::Malformed)
        }
    }
}

/// Ranges covering `nr` frames.
fn ranges_of(nr: u64) -> u64 {
    nr.div_ceil(RANGE_FRAMES)
}

/// The pfns of range `r` of a guest of `nr` frames.
fn range_pfns(r: u64, nr: u64) -> core::ops::Range<u64> {
    let start = r.saturating_mul(RANGE_FRAMES).min(nr);
    start..start.saturating_add(RANGE_FRAMES).min(nr)
}

/// The front of the page buffer and of the hole flags for `n` frames, the
/// flags cleared: where either end reads a range's pages.
fn read_buffers<'a>(
    buf: &'a mut [u8],
    holes: &'a mut [bool],
    n: usize,
) -> Result<(&'a mut [u8], &'a mut [bool]), VerifyError> {
    let buf = buf
        .get_mut(..n.saturating_mul(PAGE_SIZE))
        .ok_or(VerifyError::Malformed)?;
    let holes = holes.get_mut(..n).ok_or(VerifyError::Malformed)?;
    holes.fill(false);
    Ok((buf, holes))
}

/// The source's view of the guest for the comparison.
pub struct SourceView<'a> {
    /// Frames sent last as free (XALLOC).
    pub sent_free: &'a DirtyBitmap,
    /// Frames the stream carried any entry for. The others are holes at
    /// the destination (no entry came), and so at the source: they are
    /// not read, and [`SourceDomain::pages_held`] shows none of the
    /// guest's pages is among them.
    pub sent_any: &'a DirtyBitmap,
    /// The guest's xenstore and console ring frames (0: none).
    pub rings: [u64; 2],
}

/// The source's side: digests the suspended guest and answers the
/// destination; returns when the destination's verdict came (`None`), or
/// with the 8-byte reply (a NAK, or an ACK) that came in its place.
pub fn source<D: SourceDomain + ?Sized, T: Transport>(
    dom: &mut D,
    t: &mut T,
    oracle: &mut dyn DependencyOracle,
    chan: &mut Channel<'_>,
    view: &SourceView<'_>,
    clock: &dyn depmig_precopy::Clock,
    stats: &mut VerifyStats,
) -> Result<Option<[u8; crate::reply::REPLY_LEN]>, VerifyError> {
    let nr = dom.nr_pfns();
    // Which of the frames sent as free still are: asked once, the guest
    // is suspended.
    let mut still_free = DirtyBitmap::new(nr);
    if view.sent_free.count() > 0 {
        oracle
            .free_frames(view.sent_free, &mut still_free)
            .map_err(VerifyError::Oracle)?;
        still_free.and_with(view.sent_free);
    }
    let mut src = SourcePages {
        dom,
        nr,
        sent_any: view.sent_any,
        still_free,
        rings: view.rings,
        buf: vec![0u8; RANGE_FRAMES as usize * PAGE_SIZE],
        holes: vec![false; RANGE_FRAMES as usize],
        frames: Vec::with_capacity(RANGE_FRAMES as usize),
    };
    let total = ranges_of(nr);
    let dir = Direction::SourceToDestination;
    let mut r = 0u64;
    while r < total {
        let n = RANGES_PER_MESSAGE.min(total - r);
        let mut body = Vec::with_capacity(20 + n as usize * 8);
        body.extend_from_slice(&nr.to_le_bytes());
        body.extend_from_slice(&r.to_le_bytes());
        body.extend_from_slice(&(n as u32).to_le_bytes());
        for i in r..r + n {
            let t0 = clock.now_ns();
            let read = src.range(i, Some(stats))?;
            stats.digest_ns = stats
                .digest_ns
                .saturating_add(clock.now_ns().saturating_sub(t0));
            let pfns = range_pfns(i, nr);
            stats.bytes_read = stats
                .bytes_read
                .saturating_add(read.saturating_mul(PAGE_SIZE as u64));
            body.extend_from_slice(&range_digest(pfns.start, &src.frames).to_le_bytes());
        }
        chan.send(t, dir, KIND_RANGES, &body)?;
        stats.ranges += n;
        r += n;
    }
    // The frames left unread were never sent: none may hold a page of the
    // guest's. Every page it holds is data, free or a ring frame among
    // those the stream covered (pages Xen shares with it, which Xen does
    // not count as held, may add to these, never take away).
    if let Some(held) = src.dom.pages_held() {
        let covered = stats
            .data
            .saturating_add(stats.free)
            .saturating_add(stats.rings);
        if covered < held {
            return Err(VerifyError::Uncovered { held, covered });
        }
    }
    // The destination asks for frames, or gives its verdict, or refuses.
    let back = Direction::DestinationToSource;
    let mut narrowed = false;
    // The ranges the destination asked for frame by frame.
    let mut asked: Vec<u64> = Vec::new();
    loop {
        let mut header = [0u8; HEADER_LEN];
        t.recv_exact(&mut header).map_err(VerifyError::Transport)?;
        if header.get(..3) != Some(&MAGIC[..]) {
            return Ok(Some(header));
        }
        let (kind, body) = chan.finish_recv(&mut Direct(t), back, header)?;
        let mut b = Body(&body);
        match kind {
            KIND_NARROW if !narrowed => {
                narrowed = true;
                let count = b.u32()? as usize;
                if count == 0 || count > MAX_NARROW {
                    return Err(VerifyError::Malformed);
                }
                let mut out = Vec::new();
                out.extend_from_slice(&(count as u32).to_le_bytes());
                let mut last = None;
                for _ in 0..count {
                    let i = b.u64()?;
                    if i >= total || last.is_some_and(|l| i <= l) {
                        return Err(VerifyError::Malformed);
                    }
                    last = Some(i);
                    asked.push(i);
                    src.range(i, None)?;
                    out.extend_from_slice(&i.to_le_bytes());
                    out.extend_from_slice(&(src.frames.len() as u32).to_le_bytes());
                    for f in &src.frames {
                        out.push(f.class as u8);
                        out.extend_from_slice(&f.digest.to_le_bytes());
                    }
                }
                b.end()?;
                chan.send(t, dir, KIND_FRAMES, &out)?;
            }
            KIND_VERDICT => {
                let v = Verdict::parse(&mut b)?;
                v.check(nr, &asked)?;
                stats.complete = true;
                stats.mismatched_ranges = v.mismatched_ranges;
                stats.mismatched_frames = v.mismatched_frames;
                stats.listed = v.listed;
                stats.listed_classes = v.classes;
                stats.peer_digest_ns = Some(v.digest_ns);
                stats.peer_bytes_read = Some(v.bytes_read);
                return Ok(None);
            }
            k => return Err(VerifyError::UnexpectedKind(k)),
        }
    }
}

/// Reads and classifies the source's frames, a range at a time.
struct SourcePages<'d, 'v, D: ?Sized> {
    dom: &'d mut D,
    nr: u64,
    sent_any: &'v DirtyBitmap,
    still_free: DirtyBitmap,
    rings: [u64; 2],
    buf: Vec<u8>,
    holes: Vec<bool>,
    frames: Vec<Frame>,
}

impl<D: SourceDomain + ?Sized> SourcePages<'_, '_, D> {
    /// Fills `frames` with range `r`'s; counts classes into `stats`. Only
    /// frames the stream covered are read; the others are holes. Returns
    /// how many frames it read.
    fn range(&mut self, r: u64, mut stats: Option<&mut VerifyStats>) -> Result<u64, VerifyError> {
        let all: Vec<u64> = range_pfns(r, self.nr).collect();
        let pfns: Vec<u64> = all
            .iter()
            .copied()
            .filter(|p| self.sent_any.test(*p))
            .collect();
        let (buf, holes) = read_buffers(&mut self.buf, &mut self.holes, pfns.len())?;
        if !pfns.is_empty() {
            self.dom
                .read_pages(&pfns, buf, holes)
                .map_err(VerifyError::Read)?;
        }
        self.frames.clear();
        let mut read = pfns
            .iter()
            .zip(holes.iter())
            .zip(buf.chunks(PAGE_SIZE))
            .peekable();
        for &pfn in &all {
            let (hole, page) = match read.peek() {
                Some(((&p, &h), page)) if p == pfn => {
                    let got = (h, *page);
                    read.next();
                    got
                }
                _ => (true, &[][..]),
            };
            let class = if pfn != 0 && self.rings.contains(&pfn) {
                Class::Ring
            } else if hole {
                Class::Hole
            } else if self.still_free.test(pfn) {
                Class::Free
            } else {
                Class::Data
            };
            let digest = if class == Class::Data {
                page_digest(page)
            } else {
                0
            };
            if let Some(s) = stats.as_deref_mut() {
                s.count(class);
            }
            self.frames.push(Frame { class, digest });
        }
        Ok(pfns.len() as u64)
    }
}

/// The destination's verdict on the wire.
struct Verdict {
    mismatched_ranges: u64,
    mismatched_frames: u64,
    listed: Vec<u64>,
    /// Each listed frame's class at the source and at the destination.
    classes: Vec<(Class, Class)>,
    digest_ns: u64,
    bytes_read: u64,
}

impl Verdict {
    fn to_bytes(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(36 + self.listed.len() * 10);
        for v in [
            self.mismatched_ranges,
            self.mismatched_frames,
            self.digest_ns,
            self.bytes_read,
        ] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        b.extend_from_slice(&(self.listed.len() as u32).to_le_bytes());
        for (p, (src, dst)) in self.listed.iter().zip(&self.classes) {
            b.extend_from_slice(&p.to_le_bytes());
            b.push(*src as u8);
            b.push(*dst as u8);
        }
        b
    }

    fn parse(b: &mut Body<'_>) -> Result<Verdict, VerifyError> {
        let mismatched_ranges = b.u64()?;
        let mismatched_frames = b.u64()?;
        let digest_ns = b.u64()?;
        let bytes_read = b.u64()?;
        let n = b.u32()? as usize;
        if n > MAX_LISTED_FRAMES || n as u64 > mismatched_frames {
            return Err(VerifyError::Malformed);
        }
        let mut listed = Vec::with_capacity(n);
        let mut classes = Vec::with_capacity(n);
        for _ in 0..n {
            listed.push(b.u64()?);
            let src = Class::from_u8(b.u8()?).ok_or(VerifyError::Malformed)?;
            let dst = Class::from_u8(b.u8()?).ok_or(VerifyError::Malformed)?;
            classes.push((src, dst));
        }
        b.end()?;
        Ok(Verdict {
            mismatched_ranges,
            mismatched_frames,
            listed,
            classes,
            digest_ns,
            bytes_read,
        })
    }

    /// Whether the source may take this verdict on a guest of `nr` frames
    /// after it was asked to narrow the ranges `asked` (none: it was not):
    /// no more differing ranges than the guest has, and the first
    /// [`MAX_NARROW`] of them the ones asked for; no more differing frames
    /// than those ranges hold; the frames named ascending, each in one of
    /// those ranges, so inside the guest. An honest destination's verdict
    /// always passes; what passes goes into the source's figures and
    /// report as it stands.
    fn check(&self, nr: u64, asked: &[u64]) -> Result<(), VerifyError> {
        let narrowed_frames = asked.iter().fold(0u64, |n, &r| {
            let pfns = range_pfns(r, nr);
            n.saturating_add(pfns.end - pfns.start)
        });
        let in_asked = |p: u64| p < nr && asked.contains(&(p / RANGE_FRAMES));
        let ok = self.mismatched_ranges <= ranges_of(nr)
            && self.mismatched_ranges.min(MAX_NARROW as u64) == asked.len() as u64
            && self.mismatched_frames <= narrowed_frames
            && self.listed.windows(2).all(|w| w[0] < w[1])
            && self.listed.iter().all(|&p| in_asked(p));
        if ok {
            Ok(())
        } else {
            Err(VerifyError::Malformed)
        }
    }
}

/// The destination's record of the stream's last entry for each frame.
pub struct DestView {
    /// The last entry carried data.
    pub data: DirtyBitmap,
    /// The last entry was XALLOC (free in the guest: zeroed).
    pub free: DirtyBitmap,
    /// The shell's xenstore and console ring frames (0: none).
    pub rings: [u64; 2],
}

impl DestView {
    /// No entry yet for any of `nr` frames.
    pub fn new(nr: u64, rings: [u64; 2]) -> Self {
        DestView {
            data: DirtyBitmap::new(nr),
            free: DirtyBitmap::new(nr),
            rings,
        }
    }

    /// Notes the stream's entry for `pfn` of class `class` (`Data`,
    /// `Free`, or `Hole` for XTAB).
    pub fn note(&mut self, pfn: u64, class: Class) {
        self.data.clear(pfn);
        self.free.clear(pfn);
        match class {
            Class::Data => {
                self.data.set(pfn);
            }
            Class::Free => {
                self.free.set(pfn);
            }
            Class::Hole | Class::Ring => {}
        }
    }

    fn expected(&self, pfn: u64) -> Class {
        if pfn != 0 && self.rings.contains(&pfn) {
            Class::Ring
        } else if self.data.test(pfn) {
            Class::Data
        } else if self.free.test(pfn) {
            Class::Free
        } else {
            Class::Hole
        }
    }

    /// The `corrupt-page` test fault's frame: the first frame of the
    /// shell's upper half whose contents came in the stream, else the
    /// first such frame at all.
    pub fn fault_frame(&self) -> Option<u64> {
        let half = self.data.len() / 2;
        self.data
            .iter_ones()
            .find(|&p| p >= half && self.expected(p) == Class::Data)
            .or_else(|| {
                self.data
                    .iter_ones()
                    .find(|&p| self.expected(p) == Class::Data)
            })
    }
}

/// The destination's comparison's outcome.
pub struct DestOutcome {
    /// Its figures.
    pub stats: VerifyStats,
}

/// The destination's side: reads the source's digests, digests the shell
/// range by range, narrows differing ranges, sends its verdict. `Ok` with
/// `mismatched_ranges > 0` means the pages differ: the caller refuses.
pub fn destination<D: DestDomain + ?Sized, T: Transport>(
    dom: &mut D,
    r: &mut Buffered<'_, T>,
    chan: &mut Channel<'_>,
    view: &DestView,
    clock: &dyn depmig_precopy::Clock,
) -> Result<DestOutcome, VerifyError> {
    let shell_nr = dom.nr_pfns();
    let mut stats = VerifyStats::default();
    let mut pages = DestPages {
        dom,
        view,
        buf: vec![0u8; RANGE_FRAMES as usize * PAGE_SIZE],
        holes: vec![false; RANGE_FRAMES as usize],
        frames: Vec::with_capacity(RANGE_FRAMES as usize),
    };
    let s2d = Direction::SourceToDestination;
    let mut differing: Vec<u64> = Vec::new();
    let mut nr: Option<u64> = None;
    let mut next = 0u64;
    loop {
        if let Some(n) = nr {
            if next >= ranges_of(n) {
                break;
            }
        }
        let mut header = [0u8; HEADER_LEN];
        r.recv_exact(&mut header).map_err(VerifyError::Transport)?;
        let (kind, body) = chan.finish_recv(r, s2d, header)?;
        if kind != KIND_RANGES {
            return Err(VerifyError::UnexpectedKind(kind));
        }
        let mut b = Body(&body);
        let their_nr = b.u64()?;
        match nr {
            None if their_nr == 0 => return Err(VerifyError::Malformed),
            None if their_nr > shell_nr => {
                return Err(VerifyError::SizeMismatch {
                    source: their_nr,
                    shell: shell_nr,
                })
            }
            None => nr = Some(their_nr),
            Some(n) if n != their_nr => return Err(VerifyError::Malformed),
            Some(_) => {}
        }
        let n = their_nr;
        let first = b.u64()?;
        let count = u64::from(b.u32()?);
        if first != next || count != RANGES_PER_MESSAGE.min(ranges_of(n) - next) {
            return Err(VerifyError::Malformed);
        }
        for i in first..first + count {
            let theirs = b.u64()?;
            let t0 = clock.now_ns();
            pages.range(i, n, Some(&mut stats))?;
            stats.digest_ns = stats
                .digest_ns
                .saturating_add(clock.now_ns().saturating_sub(t0));
            if range_digest(range_pfns(i, n).start, &pages.frames) != theirs {
                stats.mismatched_ranges += 1;
                differing.push(i);
            }
        }
        b.end()?;
        stats.ranges += count;
        next += count;
    }
    let n = nr.unwrap_or(0);
    let d2s = Direction::DestinationToSource;
    if !differing.is_empty() {
        // Frame by frame for the first few differing ranges.
        let ask: Vec<u64> = differing.iter().copied().take(MAX_NARROW).collect();
        let mut req = Vec::with_capacity(4 + ask.len() * 8);
        req.extend_from_slice(&(ask.len() as u32).to_le_bytes());
        for i in &ask {
            req.extend_from_slice(&i.to_le_bytes());
        }
        chan.send(r.t, d2s, KIND_NARROW, &req)?;
        let mut header = [0u8; HEADER_LEN];
        r.recv_exact(&mut header).map_err(VerifyError::Transport)?;
        let (kind, body) = chan.finish_recv(r, s2d, header)?;
        if kind != KIND_FRAMES {
            return Err(VerifyError::UnexpectedKind(kind));
        }
        let mut b = Body(&body);
        if b.u32()? as usize != ask.len() {
            return Err(VerifyError::Malformed);
        }
        for &i in &ask {
            let pfns = range_pfns(i, n);
            if b.u64()? != i || u64::from(b.u32()?) != pfns.end - pfns.start {
                return Err(VerifyError::Malformed);
            }
            pages.range(i, n, None)?;
            for (pfn, mine) in pfns.zip(pages.frames.iter()) {
                let class = Class::from_u8(b.u8()?).ok_or(VerifyError::Malformed)?;
                let digest = b.u64()?;
                if (Frame { class, digest }) != *mine {
                    stats.mismatched_frames += 1;
                    if stats.listed.len() < MAX_LISTED_FRAMES {
                        stats.listed.push(pfn);
                        stats.listed_classes.push((class, mine.class));
                    }
                }
            }
        }
        b.end()?;
        // Ranges whose digests differ hold a differing frame; should the
        // frames agree after all (digests of another kind of difference),
        // the range still counts: the verdict never turns to a match here.
    }
    stats.bytes_read = pages.bytes_read_total(&stats);
    let verdict = Verdict {
        mismatched_ranges: stats.mismatched_ranges,
        mismatched_frames: stats.mismatched_frames,
        listed: stats.listed.clone(),
        classes: stats.listed_classes.clone(),
        digest_ns: stats.digest_ns,
        bytes_read: stats.bytes_read,
    };
    chan.send(r.t, d2s, KIND_VERDICT, &verdict.to_bytes())?;
    stats.complete = true;
    Ok(DestOutcome { stats })
}

/// Reads and classifies the shell's frames, a range at a time.
struct DestPages<'d, 'v, D: ?Sized> {
    dom: &'d mut D,
    view: &'v DestView,
    buf: Vec<u8>,
    holes: Vec<bool>,
    frames: Vec<Frame>,
}

impl<D: DestDomain + ?Sized> DestPages<'_, '_, D> {
    /// Pages read: every DATA and FREE frame the stream left.
    fn bytes_read_total(&self, stats: &VerifyStats) -> u64 {
        stats
            .data
            .saturating_add(stats.free)
            .saturating_mul(PAGE_SIZE as u64)
    }

    /// Fills `frames` with range `r`'s of a guest of `nr` frames (frames
    /// past the shell's end are holes); counts classes into `stats`.
    fn range(
        &mut self,
        r: u64,
        nr: u64,
        mut stats: Option<&mut VerifyStats>,
    ) -> Result<(), VerifyError> {
        let pfns = range_pfns(r, nr);
        // Only frames the stream filled are read.
        let read: Vec<u64> = pfns
            .clone()
            .filter(|&p| matches!(self.view.expected(p), Class::Data | Class::Free))
            .collect();
        if !read.is_empty() {
            let (buf, holes) = read_buffers(&mut self.buf, &mut self.holes, read.len())?;
            self.dom
                .read_pages(&read, buf, holes)
                .map_err(VerifyError::Read)?;
        }
        self.frames.clear();
        let mut k = 0usize;
        for pfn in pfns {
            let expected = self.view.expected(pfn);
            let frame = match expected {
                Class::Ring | Class::Hole => Frame {
                    class: expected,
                    digest: 0,
                },
                Class::Data | Class::Free => {
                    let hole = self.holes.get(k).copied().unwrap_or(true);
                    let page = self
                        .buf
                        .get(k * PAGE_SIZE..(k + 1) * PAGE_SIZE)
                        .unwrap_or(&[]);
                    k += 1;
                    if hole {
                        // The stream filled it and the shell lost it.
                        Frame {
                            class: Class::Hole,
                            digest: 0,
                        }
                    } else if expected == Class::Free && page.iter().all(|&b| b == 0) {
                        Frame {
                            class: Class::Free,
                            digest: 0,
                        }
                    } else {
                        Frame {
                            class: Class::Data,
                            digest: page_digest(page),
                        }
                    }
                }
            };
            if let Some(s) = stats.as_deref_mut() {
                s.count(frame.class);
            }
            self.frames.push(frame);
        }
        Ok(())
    }
}

/// The `corrupt-page` test fault: flips one bit of frame `pfn` of the
/// shell (read, changed, written back), so that verification must find it.
pub fn corrupt_page<D: DestDomain + ?Sized>(dom: &mut D, pfn: u64) -> Result<(), VerifyError> {
    let mut page = vec![0u8; PAGE_SIZE];
    let mut hole = [false];
    dom.read_pages(&[pfn], &mut page, &mut hole)
        .map_err(VerifyError::Read)?;
    if let Some(b) = page.get_mut(PAGE_SIZE / 2) {
        *b ^= 0x01;
    }
    dom.write_pages(&[pfn], &page).map_err(VerifyError::Write)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_digests_see_class_digest_and_place() {
        let d = |c, x| Frame {
            class: c,
            digest: x,
        };
        let a = [d(Class::Data, 1), d(Class::Free, 0), d(Class::Hole, 0)];
        let base = range_digest(0, &a);
        assert_eq!(base, range_digest(0, &a));
        let mut b = a;
        b[0].digest = 2;
        assert_ne!(range_digest(0, &b), base);
        let mut b = a;
        b[1].class = Class::Hole;
        assert_ne!(range_digest(0, &b), base);
        assert_ne!(range_digest(512, &a), base);
        assert_ne!(range_digest(0, &a[..2]), base);
        // A page's digest sees one bit.
        let mut page = vec![0u8; PAGE_SIZE];
        let z = page_digest(&page);
        page[4095] = 1;
        assert_ne!(page_digest(&page), z);
    }

    #[test]
    fn ranges_cover_the_guest_exactly() {
        assert_eq!(ranges_of(0), 0);
        assert_eq!(ranges_of(1), 1);
        assert_eq!(ranges_of(512), 1);
        assert_eq!(ranges_of(513), 2);
        assert_eq!(range_pfns(1, 513), 512..513);
        assert_eq!(range_pfns(5, 513), 513..513);
    }

    #[test]
    fn cost_per_gib() {
        assert_eq!(ms_per_gib(500_000_000, 512 << 20), Some(1000));
        assert_eq!(ms_per_gib(1, 0), None);
        assert_eq!(ms_per_gib(u64::MAX, 1), Some(u64::MAX));
    }

    #[test]
    fn a_verdict_reads_back_and_its_caps_hold() {
        let v = Verdict {
            mismatched_ranges: 2,
            mismatched_frames: 3,
            listed: vec![7, 9, 4000],
            classes: vec![
                (Class::Data, Class::Hole),
                (Class::Free, Class::Data),
                (Class::Data, Class::Data),
            ],
            digest_ns: 5,
            bytes_read: 6,
        };
        let bytes = v.to_bytes();
        let back = Verdict::parse(&mut Body(&bytes)).unwrap();
        assert_eq!(
            (back.mismatched_frames, back.listed, back.bytes_read),
            (3, vec![7, 9, 4000], 6)
        );
        assert_eq!(back.classes, v.classes);
        // A class byte no end sends.
        let mut bad_class = bytes.clone();
        bad_class[36 + 8] = 0;
        assert!(Verdict::parse(&mut Body(&bad_class)).is_err());
        // More frames listed than found, a truncated or a longer body.
        let mut more = bytes.clone();
        more[8] = 2;
        assert!(Verdict::parse(&mut Body(&more)).is_err());
        assert!(Verdict::parse(&mut Body(&bytes[..bytes.len() - 1])).is_err());
        let mut long = bytes.clone();
        long.push(0);
        assert!(Verdict::parse(&mut Body(&long)).is_err());
    }

    #[test]
    fn a_verdict_names_only_frames_of_the_ranges_narrowed() {
        let v = |ranges, frames, listed: Vec<u64>| Verdict {
            mismatched_ranges: ranges,
            mismatched_frames: frames,
            classes: vec![(Class::Data, Class::Data); listed.len()],
            listed,
            digest_ns: 0,
            bytes_read: 0,
        };
        // 1100 frames: ranges 0 and 1 whole, range 2 of 76 frames.
        let nr = 1100;
        assert_eq!(v(0, 0, vec![]).check(nr, &[]), Ok(()));
        assert_eq!(v(1, 2, vec![600, 700]).check(nr, &[1]), Ok(()));
        assert_eq!(
            v(9, 76, vec![1024, 1099]).check(nr, &[2]),
            Err(VerifyError::Malformed)
        );
        assert_eq!(v(1, 76, vec![1024, 1099]).check(nr, &[2]), Ok(()));
        let refused = [
            // A frame past the guest, in no range or in one not asked.
            (v(1, 1, vec![1100]), vec![2]),
            (v(1, 1, vec![u64::MAX]), vec![2]),
            (v(1, 1, vec![10]), vec![1]),
            // Out of order, or twice.
            (v(1, 2, vec![700, 600]), vec![1]),
            (v(1, 2, vec![600, 600]), vec![1]),
            // More frames than the ranges asked hold.
            (v(1, 77, vec![]), vec![2]),
            // Ranges differing without a narrowing, or more than the guest
            // has, or fewer than were narrowed.
            (v(1, 0, vec![]), vec![]),
            (v(4, 1, vec![600]), vec![1]),
            (v(1, 2, vec![600]), vec![0, 1]),
        ];
        for (verdict, asked) in refused {
            assert_eq!(
                verdict.check(nr, &asked),
                Err(VerifyError::Malformed),
                "{:?} after {asked:?}",
                verdict.listed
            );
        }
        // Past MAX_NARROW differing ranges, the first MAX_NARROW are asked.
        let many = 20 * RANGE_FRAMES;
        let asked: Vec<u64> = (0..MAX_NARROW as u64).collect();
        assert_eq!(v(20, 3, vec![0, 1, 2]).check(many, &asked), Ok(()));
        assert_eq!(
            v(20, 3, vec![0, 1, 2]).check(many, &asked[1..]),
            Err(VerifyError::Malformed)
        );
    }

    /// A guest of `nr` frames, every one a page of `0x5a` bytes.
    struct Flat(u64);

    impl SourceDomain for Flat {
        fn nr_pfns(&self) -> u64 {
            self.0
        }
        fn read_pages(
            &mut self,
            _pfns: &[u64],
            buf: &mut [u8],
            _holes: &mut [bool],
        ) -> Result<(), PortError> {
            buf.fill(0x5a);
            Ok(())
        }
        fn populated(&mut self, _: &mut DirtyBitmap) -> Result<(), PortError> {
            unreachable!()
        }
        fn log_dirty_enable(&mut self) -> Result<(), PortError> {
            unreachable!()
        }
        fn log_dirty_collect(&mut self, _: &mut DirtyBitmap) -> Result<(), PortError> {
            unreachable!()
        }
        fn log_dirty_disable(&mut self) -> Result<(), PortError> {
            unreachable!()
        }
        fn suspend(&mut self) -> Result<(), PortError> {
            unreachable!()
        }
        fn resume_cancelled(&mut self) -> Result<bool, PortError> {
            unreachable!()
        }
        fn tsc_info(&mut self) -> Result<depmig_stream::TscInfo, PortError> {
            unreachable!()
        }
        fn hvm_param(&mut self, _: u32) -> Result<u64, PortError> {
            unreachable!()
        }
        fn hvm_context(&mut self, _: &mut Vec<u8>) -> Result<(), PortError> {
            unreachable!()
        }
    }

    /// Plays `input` back; keeps what is sent.
    #[derive(Default)]
    struct Scripted {
        input: Vec<u8>,
        at: usize,
        sent: Vec<u8>,
    }

    impl Transport for Scripted {
        fn send(&mut self, data: &[u8]) -> Result<(), TransportError> {
            self.sent.extend_from_slice(data);
            Ok(())
        }
        fn flush(&mut self) -> Result<(), TransportError> {
            Ok(())
        }
        fn recv(&mut self, buf: &mut [u8]) -> Result<usize, TransportError> {
            let n = buf.len().min(self.input.len() - self.at);
            buf[..n].copy_from_slice(&self.input[self.at..self.at + n]);
            self.at += n;
            Ok(n)
        }
    }

    struct Still;

    impl depmig_precopy::Clock for Still {
        fn now_ns(&self) -> u64 {
            0
        }
    }

    /// The source's side against a destination holding the key that sends
    /// NARROW of range 1 and then `verdict`.
    fn source_given(verdict: &Verdict) -> (Result<Option<[u8; 8]>, VerifyError>, VerifyStats) {
        use depmig_stream::{Caps, Role};
        let key = [7u8; 32];
        let hello = |role, n| Hello {
            role,
            nonce: [n; 16],
            verify: true,
            caps: Caps::NONE,
        };
        let (s, d) = (hello(Role::Source, 1), hello(Role::Destination, 2));
        let mut dest = Channel::new(&key, s, d);
        let mut wire = Scripted::default();
        let back = Direction::DestinationToSource;
        let mut ask = 1u32.to_le_bytes().to_vec();
        ask.extend_from_slice(&1u64.to_le_bytes());
        dest.send(&mut wire, back, KIND_NARROW, &ask).unwrap();
        dest.send(&mut wire, back, KIND_VERDICT, &verdict.to_bytes())
            .unwrap();
        let nr = 1100;
        let mut all = DirtyBitmap::new(nr);
        all.set_all();
        let none = DirtyBitmap::new(nr);
        let view = SourceView {
            sent_free: &none,
            sent_any: &all,
            rings: [0, 0],
        };
        let mut chan = Channel::new(&key, s, d);
        let mut stats = VerifyStats::default();
        let mut t = Scripted {
            input: wire.sent,
            ..Scripted::default()
        };
        let r = source(
            &mut Flat(nr),
            &mut t,
            &mut depmig_precopy::NoOracle,
            &mut chan,
            &view,
            &Still,
            &mut stats,
        );
        (r, stats)
    }

    #[test]
    fn the_source_refuses_a_verdict_naming_frames_outside_the_guest() {
        let verdict = |listed: Vec<u64>| Verdict {
            mismatched_ranges: 1,
            mismatched_frames: listed.len() as u64,
            classes: vec![(Class::Data, Class::Hole); listed.len()],
            listed,
            digest_ns: 0,
            bytes_read: 0,
        };
        // A frame of the range narrowed: taken, into the figures.
        let (r, stats) = source_given(&verdict(vec![600]));
        assert_eq!(r, Ok(None));
        assert!(stats.complete);
        assert_eq!(stats.listed, vec![600]);
        // Past the guest's 1100 frames (the `verify` fuzz target's check:
        // a verdict naming frame 5000 went into the source's figures), or
        // in a range not narrowed: refused, and nothing of it kept.
        for listed in [vec![5000], vec![u64::MAX], vec![10]] {
            let (r, stats) = source_given(&verdict(listed.clone()));
            assert_eq!(r, Err(VerifyError::Malformed), "{listed:?}");
            assert!(!stats.complete);
            assert!(stats.listed.is_empty());
        }
    }
}
