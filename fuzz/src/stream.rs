//! Target `stream`: what the destination appliance runs on bytes from the
//! network, and the decoders under it.
//!
//! Input: a mode byte, a segmentation byte ([`Cuts`]), then by mode:
//!
//! * 0 (raw): a shell byte, a fault byte, a buffer byte, then the wire as the source
//!   sends it (hello, stream, trailer), fed to `depmig_migrate::dest::run`
//!   over an in-memory shell and link, with the fixed [`KEY`];
//! * 1 (signed): as 0, but the rest is only the stream: the harness puts
//!   the source's hello before it and a valid trailer after it, so that
//!   the fuzzer reaches what happens after authentication (ring checks,
//!   parameters, the CPU state);
//! * 2 (decoder): three limit bytes, then a libxc stream for
//!   `depmig_stream::Decoder` alone, decoded whole and in segments; bit 2
//!   of the mode byte set, the decoder accepts depmig's packed page record
//!   (LZ4, zero pages) as after a handshake that agreed on it, bit 3 set,
//!   its delta record (each page's mask one page, for a normal entry);
//! * 3 (xl): a preamble byte, then an `xl migrate` stream for
//!   `XlStreamScanner`, scanned whole and in segments.
//!
//! Invariants checked besides "no panic": nothing but pages reaches the
//! shell unless the input really carries a valid tag; pages only land in
//! populated frames below the shell's size and never in its ring frames;
//! after an accepted migration the shell holds exactly the stream's pages
//! (the last copy of each, zeros for frames free at the copy round);
//! no more pages are written than the bytes received can hold (raw
//! pages 4 KiB each, packed pages their payload and descriptor); the
//! destination answers with its hello, the right key confirmation, then
//! ACK or the NAK of its error, with its tag; the decoders report the same events and
//! verdict however the bytes are cut, hand out exactly the pages a
//! PAGE_DATA record announced (each 4 KiB, within the pfn limit), never
//! count more consumed bytes than they were given, and never grow their
//! buffers.

use std::collections::BTreeMap;

use depmig_migrate::dest::{self, DestConfig, DestError, DestStats};
use depmig_migrate::params::{disposition, Disposition};
use depmig_migrate::reply::{self, nak, ACK, SIGNED_REPLY_LEN};
use depmig_migrate::{DestDomain, NoProgress, Transport, TransportError};
use depmig_precopy::{Clock, DirtyBitmap, PortError};
use depmig_stream::handshake::{HELLO_LEN, TRAILER_LEN, TRAILER_MAGIC};
use depmig_stream::{
    key_confirmation, Authenticated, ByteSink, Caps, Codec, DecodeError, Decoder, Event, Hello,
    LibxlError, Limits, PageType, Record, Role, RoundCounter, TranscriptMac, TscInfo, XlEvent,
    XlStreamScanner, PAGE_SIZE, PFN_MASK,
};

use crate::{Cuts, Digest, Input};

/// The key both ends hold in every run.
pub const KEY: &[u8] = b"depmig fuzz key, 32 bytes long..";
/// The source's nonce in signed mode and in the seeds.
pub const SOURCE_NONCE: [u8; 16] = [0x51; 16];
/// The destination's nonce.
pub const DEST_NONCE: [u8; 16] = [0xd5; 16];

/// Mode 0: the wire as it comes.
pub const MODE_RAW: u8 = 0;
/// Mode 1: the stream, wrapped in a hello and a valid trailer.
pub const MODE_SIGNED: u8 = 1;
/// Mode 2: the libxc decoder alone.
pub const MODE_DECODER: u8 = 2;
/// Mode 3: the xl stream scanner.
pub const MODE_XL: u8 = 3;

/// The source's hello of signed mode.
pub fn source_hello() -> Hello {
    Hello {
        role: Role::Source,
        nonce: SOURCE_NONCE,
        verify: false,
        caps: Caps::NONE,
    }
}

/// The destination's hello.
pub fn dest_hello() -> Hello {
    Hello {
        role: Role::Destination,
        nonce: DEST_NONCE,
        verify: false,
        caps: Caps::NONE,
    }
}

/// What a run ended with (for the seed tests).
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The destination role's result.
    Dest(Result<DestStats, DestError>),
    /// The decoder's verdict: whether it reached END, or its error.
    Decoder(Result<bool, DecodeError>),
    /// The scanner's verdict: whether it reached libxl's END, or its error.
    Xl(Result<bool, LibxlError>),
}

/// Runs one input.
pub fn run(data: &[u8]) -> Outcome {
    let mut inp = Input::new(data);
    let mode = inp.u8();
    let cuts = Cuts::new(inp.u8());
    match mode & 3 {
        MODE_RAW => destination(false, cuts, &mut inp),
        MODE_SIGNED => destination(true, cuts, &mut inp),
        MODE_DECODER => decoder(cuts, &mut inp, mode & 4 != 0, mode & 8 != 0),
        _ => xl(cuts, &mut inp),
    }
}

/// The wire of signed mode: the source's hello, `stream`, and the trailer
/// the source would send after it.
pub fn sign(stream: &[u8]) -> Vec<u8> {
    let src = source_hello();
    let mut wire = src.to_bytes().to_vec();
    // PANICS: the fixed key is long enough and the nonces differ.
    let mac = TranscriptMac::new(KEY, &src, &dest_hello()).expect("fixed hellos");
    let mut out = Authenticated::new(Vec::new(), mac);
    // PANICS: a Vec sink is never full.
    out.put(stream).expect("vec sink");
    let (body, trailer) = out.finish();
    wire.extend_from_slice(&body);
    wire.extend_from_slice(&trailer);
    wire
}

/// Whether `wire` starts with a source hello, a stream and a trailer whose
/// tag is valid under [`KEY`]: the only case in which the destination may
/// touch more than the shell's memory. Candidates are the offsets where the
/// trailer's magic and its length field agree.
fn carries_valid_tag(wire: &[u8]) -> bool {
    let Some(peer) = wire.get(..HELLO_LEN).and_then(|h| Hello::parse(h).ok()) else {
        return false;
    };
    let Ok(mac) = TranscriptMac::new(KEY, &peer, &dest_hello()) else {
        return false;
    };
    let after = &wire[HELLO_LEN..];
    for at in 0..after.len().saturating_sub(TRAILER_LEN - 1) {
        let t = &after[at..at + TRAILER_LEN];
        if t[..8] != TRAILER_MAGIC || t[8..16] != (at as u64).to_le_bytes() {
            continue;
        }
        let mut m = mac.clone();
        m.update(&after[..at]);
        if m.verify_trailer(t).is_ok() {
            return true;
        }
    }
    false
}

/// Shell operations, numbered for fault injection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Populated = 1,
    Populate,
    WritePages,
    ZeroFrames,
    HvmParam,
    SetHvmParam,
    SetTscInfo,
    SetHvmContext,
    Send,
    Recv,
}

/// Which call fails: operation number (low nibble, 0 = none) and which of
/// its calls (high nibble, 0 = the first).
#[derive(Clone, Copy, Debug)]
struct Fault {
    op: u8,
    nth: u32,
}

impl Fault {
    fn new(b: u8) -> Self {
        Fault {
            op: b & 0xf,
            nth: u32::from(b >> 4),
        }
    }

    /// Whether call number `count` (0-based) of `op` fails.
    fn fires(&self, op: Op, count: u32) -> bool {
        self.op == op as u8 && self.nth == count
    }
}

const INJECTED: PortError = PortError::Xen(xen_abi::errno::EIO);

/// A paused shell domain in memory that checks the destination's calls
/// against `DestDomain`'s contract.
struct Shell {
    nr: u64,
    rings: [u64; 2],
    initial: u8,
    have: DirtyBitmap,
    fault: Fault,
    calls: [u32; 11],
    populated: u64,
    written: u64,
    /// What each frame written or zeroed holds now (a digest, 0 for zeros).
    memory: BTreeMap<u64, u64>,
    zeroed: u64,
    params_set: u32,
    tsc_set: u32,
    context_set: u32,
    /// Something other than memory was changed.
    applied: bool,
    failed: bool,
}

impl Shell {
    fn call(&mut self, op: Op) -> Result<(), PortError> {
        let n = &mut self.calls[op as usize];
        let fires = self.fault.fires(op, *n);
        *n += 1;
        assert_eq!(
            self.context_set, 0,
            "{op:?} after the HVM context was loaded"
        );
        if fires {
            self.failed = true;
            return Err(INJECTED);
        }
        Ok(())
    }

    fn check_frames(&self, pfns: &[u64], what: &str) {
        assert!(!pfns.is_empty(), "{what} of no frames");
        for &p in pfns {
            assert!(
                p < self.nr,
                "{what} of pfn {p} beyond the shell ({})",
                self.nr
            );
            assert!(self.have.test(p), "{what} of unpopulated pfn {p}");
        }
    }
}

impl DestDomain for Shell {
    fn nr_pfns(&self) -> u64 {
        self.nr
    }

    fn populated(&mut self, out: &mut DirtyBitmap) -> Result<(), PortError> {
        self.call(Op::Populated)?;
        assert_eq!(out.len(), self.nr);
        match self.initial {
            0 => {}
            1 => out.set_all(),
            2 => (0..self.nr).step_by(2).for_each(|p| {
                out.set(p);
            }),
            _ => (0..self.nr / 2).for_each(|p| {
                out.set(p);
            }),
        }
        self.have = out.clone();
        Ok(())
    }

    fn populate(&mut self, pfns: &[u64]) -> Result<(), PortError> {
        self.call(Op::Populate)?;
        assert!(!pfns.is_empty(), "populate of no frames");
        assert!(
            pfns.windows(2).all(|w| w[0] < w[1]),
            "populate not ascending"
        );
        for &p in pfns {
            assert!(p < self.nr, "populate of pfn {p} beyond the shell");
            assert!(!self.have.test(p), "pfn {p} populated twice");
            self.have.set(p);
        }
        self.populated += pfns.len() as u64;
        Ok(())
    }

    fn write_pages(&mut self, pfns: &[u64], data: &[u8]) -> Result<(), PortError> {
        self.call(Op::WritePages)?;
        self.check_frames(pfns, "write");
        assert_eq!(data.len(), pfns.len() * PAGE_SIZE, "page data length");
        for &p in pfns {
            assert!(
                p == 0 || !self.rings.contains(&p),
                "ring frame {p} overwritten from the stream"
            );
        }
        self.written += pfns.len() as u64;
        for (&p, page) in pfns.iter().zip(data.chunks_exact(PAGE_SIZE)) {
            self.memory.insert(p, page_digest(page));
        }
        Ok(())
    }

    fn read_pages(
        &mut self,
        _pfns: &[u64],
        _buf: &mut [u8],
        _holes: &mut [bool],
    ) -> Result<(), PortError> {
        // Only page verification reads the shell, and it is off here.
        panic!("the shell was read with verification off")
    }

    fn zero_frames(&mut self, pfns: &[u64]) -> Result<(), PortError> {
        self.call(Op::ZeroFrames)?;
        self.check_frames(pfns, "zero");
        self.zeroed += pfns.len() as u64;
        for &p in pfns {
            self.memory.insert(p, 0);
        }
        Ok(())
    }

    fn hvm_param(&mut self, index: u32) -> Result<u64, PortError> {
        self.call(Op::HvmParam)?;
        match index {
            xen_abi::hvm::HVM_PARAM_STORE_PFN => Ok(self.rings[0]),
            xen_abi::hvm::HVM_PARAM_CONSOLE_PFN => Ok(self.rings[1]),
            _ => panic!("the destination asked the shell for parameter {index}"),
        }
    }

    fn set_hvm_param(&mut self, index: u32, _value: u64) -> Result<(), PortError> {
        self.applied = true;
        self.call(Op::SetHvmParam)?;
        assert_eq!(self.tsc_set, 1, "parameter set before the TSC");
        assert_eq!(
            disposition(u64::from(index)),
            Disposition::Apply,
            "parameter {index} set from the stream"
        );
        self.params_set += 1;
        Ok(())
    }

    fn set_tsc_info(&mut self, _tsc: &TscInfo) -> Result<(), PortError> {
        self.applied = true;
        self.call(Op::SetTscInfo)?;
        assert_eq!(self.tsc_set, 0, "TSC set twice");
        self.tsc_set += 1;
        Ok(())
    }

    fn set_hvm_context(&mut self, blob: &[u8]) -> Result<(), PortError> {
        self.applied = true;
        self.call(Op::SetHvmContext)?;
        assert!(!blob.is_empty(), "empty HVM context loaded");
        self.context_set += 1;
        Ok(())
    }
}

/// The connection: hands the wire over in fuzzer-chosen segments and keeps
/// what the destination sent.
/// A clock that never moves: the destination times only verification.
struct NoClock;

impl Clock for NoClock {
    fn now_ns(&self) -> u64 {
        0
    }
}

struct Link<'a> {
    wire: &'a [u8],
    at: usize,
    cuts: Cuts,
    sent: Vec<u8>,
    fault: Fault,
    sends: u32,
    recvs: u32,
    failed: bool,
}

impl Transport for Link<'_> {
    fn send(&mut self, data: &[u8]) -> Result<(), TransportError> {
        let n = self.sends;
        self.sends += 1;
        if self.fault.fires(Op::Send, n) {
            self.failed = true;
            return Err(TransportError::Reset);
        }
        self.sent.extend_from_slice(data);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), TransportError> {
        Ok(())
    }

    fn recv(&mut self, buf: &mut [u8]) -> Result<usize, TransportError> {
        assert!(!buf.is_empty(), "recv into an empty buffer");
        let n = self.recvs;
        self.recvs += 1;
        if self.fault.fires(Op::Recv, n) {
            self.failed = true;
            return Err(TransportError::Timeout);
        }
        let left = self.wire.len() - self.at;
        let n = self.cuts.next(left).min(buf.len());
        buf[..n].copy_from_slice(&self.wire[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

fn destination(signed: bool, cuts: Cuts, inp: &mut Input<'_>) -> Outcome {
    let shell = inp.u8();
    let fault = Fault::new(inp.u8());
    let buffer = inp.u8();
    let wire = if signed {
        sign(inp.rest())
    } else {
        inp.rest().to_vec()
    };
    let nr = [16u64, 64, 4096, 1 << 20][usize::from(shell & 3)];
    let rings = match (shell >> 2) & 3 {
        0 => [nr - 2, nr - 1],
        1 => [0, 0],
        2 => [nr - 1, nr - 1],
        _ => [1, nr + 7],
    };
    let mut dom = Shell {
        nr,
        rings,
        initial: (shell >> 4) & 3,
        have: DirtyBitmap::new(nr),
        fault,
        calls: [0; 11],
        populated: 0,
        written: 0,
        memory: BTreeMap::new(),
        zeroed: 0,
        params_set: 0,
        tsc_set: 0,
        context_set: 0,
        applied: false,
        failed: false,
    };
    let mut link = Link {
        wire: &wire,
        at: 0,
        cuts,
        sent: Vec::new(),
        fault,
        sends: 0,
        recvs: 0,
        failed: false,
    };
    let mut cfg = DestConfig::new(KEY, DEST_NONCE);
    cfg.write_batch = [64, 1, 3, 1024][usize::from(shell >> 6)];
    cfg.recv_buffer = [65536, 1, 100, 4096][usize::from(buffer & 3)];
    let r = dest::run(&mut dom, &mut link, &NoClock, &mut NoProgress, &cfg);

    if dom.applied || r.is_ok() {
        assert!(
            carries_valid_tag(&wire),
            "state applied from a stream without a valid tag: {r:?}"
        );
    }
    let injected = dom.failed || link.failed;
    if let Ok(s) = &r {
        assert!(!injected, "success despite an injected failure");
        assert_eq!((dom.tsc_set, dom.context_set), (1, 1));
        assert_eq!(s.pages_written, dom.written);
        assert_eq!(s.pages_zeroed, dom.zeroed);
        assert_eq!(s.frames_populated, dom.populated);
        assert_eq!(s.params_applied, dom.params_set);
        assert_eq!(s.nr_pfns, nr);
        assert_eq!(
            dom.memory,
            expected_memory(&wire, nr, rings),
            "the shell does not hold the stream's pages"
        );
    }
    // PAGE_DATA carries a page's bytes for each page written.
    if let Ok(s) = &r {
        assert!(
            s.pages_written * PAGE_SIZE as u64 <= s.bytes_received,
            "{} pages written from {} bytes",
            s.pages_written,
            s.bytes_received
        );
    }
    assert!(
        dom.written * PAGE_SIZE as u64 <= link.at as u64,
        "{} pages written from {} bytes",
        dom.written,
        link.at
    );

    // What went back: nothing before the peer's hello; then our hello and
    // the key confirmation; then ACK or the NAK of the error.
    let sent = &link.sent;
    if sent.len() >= 2 * HELLO_LEN {
        let peer = Hello::parse(&wire).expect("hello answered only after a valid one");
        assert_eq!(sent[..HELLO_LEN], dest_hello().to_bytes());
        let confirm = key_confirmation(KEY, &peer, &dest_hello()).expect("valid hellos");
        assert_eq!(sent[HELLO_LEN..2 * HELLO_LEN], confirm);
    }
    // The reply carries its tag over both hellos.
    let signed = |r| {
        let peer = Hello::parse(&wire).expect("a reply only after a valid hello");
        reply::sign(r, KEY, &peer, &dest_hello().answer(&peer)).expect("valid hellos")
    };
    if !link.failed {
        match &r {
            Ok(_) => {
                assert_eq!(sent.len(), 2 * HELLO_LEN + SIGNED_REPLY_LEN);
                assert!(sent.ends_with(&signed(ACK)));
            }
            Err(e) if !sent.is_empty() => {
                assert_eq!(sent.len(), 2 * HELLO_LEN + SIGNED_REPLY_LEN, "{e:?}");
                assert!(sent.ends_with(&signed(nak(e.nak_code()))), "{e:?}");
            }
            Err(_) => {}
        }
    }
    Outcome::Dest(r)
}

/// A page's digest as the shell memory model keeps it (never 0, which
/// stands for a zeroed frame).
fn page_digest(page: &[u8]) -> u64 {
    let mut d = Digest::default();
    d.bytes(page);
    d.0 | 1
}

/// The shell's memory after an accepted migration, from the stream alone:
/// the last copy of each page wins, a frame free at the copy round is
/// zeroed, a hole is left alone, and the ring frames keep the shell's own
/// content.
fn expected_memory(wire: &[u8], nr: u64, rings: [u64; 2]) -> BTreeMap<u64, u64> {
    let mut dec = Decoder::new(Limits {
        max_record_body: 1 << 20,
        max_batch: depmig_stream::MAX_BATCH,
        max_pfn: nr - 1,
    });
    let mut input = &wire[HELLO_LEN..];
    let mut memory = BTreeMap::new();
    // PANICS: the destination accepted this stream.
    while let Some(ev) = dec.next(&mut input).expect("accepted stream decodes") {
        if let Event::Page { entry, data } = ev {
            if entry.pfn != 0 && rings.contains(&entry.pfn) {
                continue;
            }
            match (entry.kind, data) {
                (PageType::Normal, Some(page)) => {
                    memory.insert(entry.pfn, page_digest(page));
                }
                (PageType::XAlloc, None) => {
                    memory.insert(entry.pfn, 0);
                }
                _ => {}
            }
        }
    }
    assert!(dec.is_done(), "accepted stream without END");
    memory
}

/// What one decoding saw, compared between two segmentations.
#[derive(Debug, PartialEq, Eq)]
struct Seen<E> {
    digest: Digest,
    events: u64,
    consumed: u64,
    result: Result<bool, E>,
}

/// Checks the order of events and each event's shape, and digests it.
struct EventCheck {
    max_pfn: u64,
    max_batch: u32,
    events: u64,
    pages_left: u32,
    data_pages: u64,
    digest: Digest,
}

impl EventCheck {
    fn new(limits: Limits) -> Self {
        EventCheck {
            max_pfn: limits.max_pfn.min(PFN_MASK),
            max_batch: limits.max_batch.clamp(1, Limits::ABS_MAX_BATCH),
            events: 0,
            pages_left: 0,
            data_pages: 0,
            digest: Digest::default(),
        }
    }

    fn event(&mut self, ev: &Event<'_>) {
        let d = &mut self.digest;
        match (self.events, ev) {
            (0, Event::ImageHeader(h)) => d.u64(u64::from(h.version)),
            (0, other) => panic!("first event {other:?}"),
            (1, Event::DomainHeader(h)) => {
                d.u64(u64::from(h.xen_major) << 32 | u64::from(h.xen_minor))
            }
            (1, other) => panic!("second event {other:?}"),
            (_, Event::ImageHeader(_) | Event::DomainHeader(_)) => panic!("header twice"),
            (_, Event::PageData { count }) => {
                assert_eq!(self.pages_left, 0, "PAGE_DATA inside PAGE_DATA");
                assert!((1..=self.max_batch).contains(count), "batch of {count}");
                self.pages_left = *count;
                d.u64(u64::from(*count));
            }
            (_, Event::Page { entry, data }) => {
                assert!(self.pages_left > 0, "page beyond its record's count");
                self.pages_left -= 1;
                assert!(
                    entry.pfn <= self.max_pfn,
                    "pfn {:#x} over the limit",
                    entry.pfn
                );
                assert_eq!(data.is_some(), entry.kind.has_data(), "{entry:?}");
                d.u64(entry.pfn << 4 | u64::from(entry.kind.to_nibble()));
                if let Some(p) = data {
                    assert_eq!(p.len(), PAGE_SIZE);
                    self.data_pages += 1;
                    d.bytes(p);
                }
            }
            (_, Event::Delta { entry, mask }) => {
                assert!(self.pages_left > 0, "delta beyond its record's count");
                self.pages_left -= 1;
                assert!(
                    entry.pfn <= self.max_pfn,
                    "pfn {:#x} over the limit",
                    entry.pfn
                );
                assert_eq!(entry.kind, PageType::Normal, "{entry:?}");
                assert_eq!(mask.len(), PAGE_SIZE);
                self.data_pages += 1;
                d.u64(entry.pfn << 4 | 0xD);
                d.bytes(mask);
            }
            (_, Event::Record(r)) => {
                assert_eq!(self.pages_left, 0, "record inside PAGE_DATA");
                record(d, r);
            }
        }
        self.events += 1;
    }
}

fn record(d: &mut Digest, r: &Record<'_>) {
    match r {
        Record::End => d.u64(1),
        Record::StaticDataEnd => d.u64(2),
        Record::Verify => d.u64(3),
        Record::Checkpoint => d.u64(4),
        Record::TscInfo(t) => {
            d.u64(5);
            d.u64(u64::from(t.mode) << 32 | u64::from(t.khz));
            d.u64(t.nsec);
            d.u64(u64::from(t.incarnation));
        }
        Record::HvmContext(b) => {
            assert!(!b.is_empty(), "empty HVM context");
            d.u64(6);
            d.bytes(b);
        }
        Record::HvmParams(p) => {
            d.u64(7);
            let mut n = 0;
            for q in p.iter() {
                d.u64(q.index);
                d.u64(q.value);
                n += 1;
            }
            assert_eq!(n, p.len());
        }
        Record::CpuidPolicy(p) => {
            assert!(!p.raw().is_empty());
            assert_eq!(p.iter().count() * 24, p.raw().len(), "partial CPUID leaf");
            d.u64(8);
            d.bytes(p.raw());
        }
        Record::MsrPolicy(p) => {
            assert!(!p.raw().is_empty());
            assert_eq!(p.iter().count() * 16, p.raw().len(), "partial MSR entry");
            d.u64(9);
            d.bytes(p.raw());
        }
        Record::Optional { rtype, body } => {
            assert!(*rtype & 0x8000_0000 != 0, "optional record {rtype:#x}");
            d.u64(u64::from(*rtype));
            d.bytes(body);
        }
    }
}

/// Limits from three fuzzer bytes, small enough to keep runs fast.
fn limits(inp: &mut Input<'_>) -> Limits {
    let [a, b, c] = inp.array::<3>();
    Limits {
        max_record_body: [0, 24, 4096, 1 << 20][usize::from(a & 3)] + u32::from(a >> 2),
        max_batch: [0, 1, 1024, 1 << 20][usize::from(b & 3)] + u32::from(b >> 2),
        max_pfn: [0, 0xff, PFN_MASK, u64::MAX][usize::from(c & 3)] ^ u64::from(c >> 2),
    }
}

fn decode(
    bytes: &[u8],
    limits: Limits,
    codec: Codec,
    delta: bool,
    mut cuts: Option<Cuts>,
) -> Seen<DecodeError> {
    let mut dec = Decoder::new(limits);
    dec.set_codec(codec);
    dec.set_delta(delta);
    let cap = dec.buffer_capacity();
    let mut check = EventCheck::new(limits);
    let mut fed = 0usize;
    let mut result = Ok(false);
    'feed: while fed < bytes.len() {
        let n = cuts
            .as_mut()
            .map_or(bytes.len() - fed, |c| c.next(bytes.len() - fed));
        let mut input = &bytes[fed..fed + n];
        fed += n;
        loop {
            // The event borrows the decoder: look at it before anything else.
            let stopped = match dec.next(&mut input) {
                Ok(Some(ev)) => {
                    check.event(&ev);
                    None
                }
                Ok(None) => Some(Ok(())),
                Err(e) => Some(Err(e)),
            };
            match stopped {
                None => {}
                Some(Ok(())) if input.is_empty() => break,
                Some(Ok(())) if dec.is_checkpointed() => dec.resume(),
                Some(Ok(())) => {
                    assert!(dec.is_done(), "input left over before END");
                    fed -= input.len();
                    result = Ok(true);
                    break 'feed;
                }
                Some(Err(e)) => {
                    assert_eq!(dec.next(&mut &b"more"[..]), Err(e), "error not repeated");
                    fed -= input.len();
                    result = Err(e);
                    break 'feed;
                }
            }
            assert!(
                dec.consumed() == (fed - input.len()) as u64,
                "consumed {} of {} bytes given",
                dec.consumed(),
                fed - input.len()
            );
        }
    }
    if result == Ok(false) {
        result = Ok(dec.is_done());
    }
    assert!(dec.consumed() <= fed as u64);
    // PAGE_DATA's pages each took 4 KiB of input; a packed record's took
    // their payload and a 4-byte descriptor each.
    let t = dec.tally();
    let unpacked = check.data_pages.saturating_sub(t.pages());
    assert!(
        unpacked * PAGE_SIZE as u64 + t.payload_bytes + t.pages() * 4 <= dec.consumed(),
        "{} pages ({} packed) from {} bytes",
        check.data_pages,
        t.pages(),
        dec.consumed()
    );
    assert!(t.pages() <= check.data_pages, "packed pages not handed out");
    assert_eq!(dec.buffer_capacity(), cap, "decoder buffers grew");
    Seen {
        digest: check.digest,
        events: check.events,
        consumed: dec.consumed(),
        result,
    }
}

fn decoder(cuts: Cuts, inp: &mut Input<'_>, packed: bool, delta: bool) -> Outcome {
    let limits = limits(inp);
    let bytes = inp.rest();
    let codec = if packed { Codec::Lz4 } else { Codec::Raw };
    let whole = decode(bytes, limits, codec, delta, None);
    let split = decode(bytes, limits, codec, delta, Some(cuts));
    assert_eq!(whole, split, "segmentation changed what was decoded");
    Outcome::Decoder(whole.result)
}

fn scan(bytes: &[u8], max_preamble: u64, mut cuts: Option<Cuts>) -> Seen<LibxlError> {
    let mut sc = XlStreamScanner::new(max_preamble, Limits::default());
    let mut rounds = RoundCounter::new();
    let mut check = EventCheck::new(Limits::default());
    let mut records = Digest::default();
    let mut fed = 0usize;
    let mut result = Ok(false);
    while fed < bytes.len() && result.is_ok() {
        let n = cuts
            .as_mut()
            .map_or(bytes.len() - fed, |c| c.next(bytes.len() - fed));
        let r = sc.push(&bytes[fed..fed + n], &mut |ev| match ev {
            XlEvent::LibxlHeader { skipped, options } => {
                assert!(skipped <= max_preamble, "header after {skipped} bytes");
                records.u64(skipped);
                records.u64(u64::from(options));
            }
            XlEvent::LibxlRecord { rtype, len } => {
                records.u64(u64::from(rtype) << 32 | u64::from(len));
            }
            XlEvent::Libxc(e) => {
                rounds.observe(&e);
                check.event(&e);
            }
            XlEvent::End => records.u64(u64::MAX),
        });
        fed += n;
        if let Err(e) = r {
            assert_eq!(sc.push(b"more", &mut |_| {}), Err(e), "error not repeated");
            result = Err(e);
        }
    }
    if result.is_ok() {
        result = Ok(sc.is_done());
    }
    let tally = rounds.finish();
    records.u64(tally.len() as u64);
    records.u64(check.digest.0);
    Seen {
        digest: records,
        events: check.events,
        consumed: 0,
        result,
    }
}

fn xl(cuts: Cuts, inp: &mut Input<'_>) -> Outcome {
    let max_preamble = [8u64, 64, 4096, 1 << 20][usize::from(inp.u8() & 3)];
    let bytes = inp.rest();
    let whole = scan(bytes, max_preamble, None);
    let split = scan(bytes, max_preamble, Some(cuts));
    assert_eq!(whole, split, "segmentation changed what was scanned");
    Outcome::Xl(whole.result)
}
