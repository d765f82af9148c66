//! Target `netfront`: the appliance's network frontend against a backend
//! domain that writes whatever it likes into the shared rings.
//!
//! Input: a program of operations until the input ends. The frontend
//! transmits, polls (reaping both rings, validating every response),
//! hands received frames up and refills; the backend answers the next
//! transmit or receive request with fuzzer-chosen ids, statuses, offsets,
//! flags and frame bytes, or writes raw bytes into any ring slot, or sets
//! a response producer, an event index or any header word to any value.
//! One operation parses a xenstore value as the frontend's configuration.
//!
//! Invariants checked besides "no panic": the frontend touches the shared
//! pages only at aligned header words and inside the entry area, and its
//! buffers only by valid ids; while the backend has not tampered with a
//! ring, every request it finds there is well-formed (transmit ids below
//! the ring size, sizes up to a frame, grants of the right page; receive
//! ids equal to the slot), and the frames handed up are exactly, in order,
//! those the backend delivered that a model of the response rules accepts;
//! a frame handed up is 1 to `MAX_FRAME` bytes and the byte counters add
//! up; the transmit callback always gets a buffer of
//! the asked size (capped at a frame); the first protocol error is sticky
//! (every later poll repeats it, nothing is received or sent after it);
//! counters never go down; a parsed MAC prints back as its input.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use depmig_netfront::config::{parse_mac, XenbusState};
use depmig_netfront::front::SLOTS;
use depmig_netfront::ring::RING_HEADER;
use depmig_netfront::wire::{
    self, RxRequest, RxResponse, TxRequest, TxResponse, NETRXF_EXTRA_INFO, NETRXF_MORE_DATA,
};
use depmig_netfront::{
    Buffers, NetError, Netfront, Notify, SharedMem, Stats, MAX_FRAME, PAGE_SIZE,
};

use crate::Input;

type PageBytes = [u8; PAGE_SIZE];

/// A ring page both ends reach.
#[derive(Clone)]
struct Shared(Rc<RefCell<Box<PageBytes>>>);

impl Shared {
    fn new() -> Self {
        Shared(Rc::new(RefCell::new(Box::new([0; PAGE_SIZE]))))
    }

    fn word(&self, off: usize) -> u32 {
        let p = self.0.borrow();
        u32::from_le_bytes([p[off], p[off + 1], p[off + 2], p[off + 3]])
    }

    fn set_word(&self, off: usize, v: u32) {
        self.0.borrow_mut()[off..off + 4].copy_from_slice(&v.to_le_bytes());
    }
}

impl SharedMem for Shared {
    fn load_u32(&self, off: usize) -> u32 {
        assert!(
            off.is_multiple_of(4) && off < RING_HEADER,
            "load of word {off}"
        );
        self.word(off)
    }
    fn store_u32(&mut self, off: usize, value: u32) {
        assert!(
            off.is_multiple_of(4) && off < RING_HEADER,
            "store to word {off}"
        );
        self.set_word(off, value);
    }
    fn read(&self, off: usize, out: &mut [u8]) {
        assert!(
            off >= RING_HEADER && off + out.len() <= PAGE_SIZE,
            "read at {off}"
        );
        out.copy_from_slice(&self.0.borrow()[off..off + out.len()]);
    }
    fn write(&mut self, off: usize, data: &[u8]) {
        assert!(
            off >= RING_HEADER && off + data.len() <= PAGE_SIZE,
            "write at {off}"
        );
        self.0.borrow_mut()[off..off + data.len()].copy_from_slice(data);
    }
    fn fence(&self) {}
}

const TX_GREF: u32 = 0x1000;
const RX_GREF: u32 = 0x2000;
static ZERO: PageBytes = [0; PAGE_SIZE];

/// Packet pages, made on first use; the receive pages are shared with the
/// backend, which fills them.
struct Bufs {
    tx: Vec<Option<Box<PageBytes>>>,
    rx: Rc<RefCell<Vec<Option<Box<PageBytes>>>>>,
}

impl Buffers for Bufs {
    fn tx_gref(&self, id: u16) -> u32 {
        assert!(usize::from(id) < SLOTS, "transmit id {id}");
        TX_GREF + u32::from(id)
    }
    fn with_tx_page<R>(&mut self, id: u16, f: impl FnOnce(&mut [u8]) -> R) -> R {
        let page = self.tx[usize::from(id)].get_or_insert_with(|| Box::new([0; PAGE_SIZE]));
        f(&mut page[..])
    }
    fn rx_gref(&self, buf: u16) -> u32 {
        assert!(usize::from(buf) < SLOTS, "receive buffer {buf}");
        RX_GREF + u32::from(buf)
    }
    fn with_rx_page<R>(&self, buf: u16, f: impl FnOnce(&[u8]) -> R) -> R {
        let rx = self.rx.borrow();
        match &rx[usize::from(buf)] {
            Some(p) => f(&p[..]),
            None => f(&ZERO[..]),
        }
    }
}

#[derive(Clone, Default)]
struct Kicks(Rc<Cell<u64>>);

impl Notify for Kicks {
    fn notify(&mut self) {
        self.0.set(self.0.get() + 1);
    }
}

/// The backend's private indices, and whether it broke a ring's
/// contents (after which the requests found there prove nothing).
struct Backend {
    tx: Shared,
    rx: Shared,
    rx_pages: Rc<RefCell<Vec<Option<Box<PageBytes>>>>>,
    tx_req_cons: u32,
    tx_rsp_prod: u32,
    rx_req_cons: u32,
    rx_rsp_prod: u32,
    tx_tampered: bool,
    rx_tampered: bool,
    /// The frames the frontend must hand up, in order, while it can be
    /// predicted (the receive ring untouched by raw writes).
    rx_model: RxModel,
}

/// What the frontend does with each receive response, kept apart from its
/// code: the next slot after an extra-info flag is not a response; a chain
/// (more-data) is dropped whole; an error status, an empty or oversized
/// frame is dropped; a wrong id or an extent past the page kills the
/// device; anything else is a frame.
#[derive(Default)]
struct RxModel {
    skip_extra: Option<bool>,
    dropping_chain: bool,
    /// The device will fail: nothing more is predicted.
    broken: bool,
    frames: std::collections::VecDeque<Vec<u8>>,
}

impl RxModel {
    fn response(&mut self, slot: u32, rsp: &RxResponse, page: &[u8]) {
        if self.broken {
            return;
        }
        if let Some(chained) = self.skip_extra.take() {
            self.dropping_chain = chained;
            return;
        }
        if u32::from(rsp.id) != slot & (SLOTS as u32 - 1) {
            self.broken = true;
            return;
        }
        let more = rsp.flags & NETRXF_MORE_DATA != 0;
        if self.dropping_chain {
            self.dropping_chain = more;
            return;
        }
        let extra = rsp.flags & NETRXF_EXTRA_INFO != 0;
        let len = usize::try_from(rsp.status).unwrap_or(0);
        let start = usize::from(rsp.offset);
        if start + len > PAGE_SIZE {
            self.broken = true;
            return;
        }
        if extra || more || len == 0 || len > MAX_FRAME {
            if extra {
                self.skip_extra = Some(more);
            } else {
                self.dropping_chain = more;
            }
            return;
        }
        self.frames.push_back(page[start..start + len].to_vec());
    }
}

fn slot_off(index: u32, entry: usize) -> usize {
    RING_HEADER + (index as usize & (SLOTS - 1)) * entry
}

impl Backend {
    /// Answers the next transmit request, if there is one.
    fn answer_tx(&mut self, inp: &mut Input<'_>) {
        let how = inp.u8();
        if self.tx_req_cons == self.tx.word(0) {
            return;
        }
        let mut b = [0u8; wire::TX_REQUEST_SIZE];
        b.copy_from_slice(
            &self.tx.0.borrow()[slot_off(self.tx_req_cons, wire::TX_ENTRY_SIZE)..]
                [..wire::TX_REQUEST_SIZE],
        );
        let req = TxRequest::decode(&b);
        if !self.tx_tampered {
            assert!(usize::from(req.id) < SLOTS, "{req:?}");
            assert_eq!(req.gref, TX_GREF + u32::from(req.id), "{req:?}");
            assert!(
                usize::from(req.size) <= MAX_FRAME && req.offset == 0,
                "{req:?}"
            );
            assert_eq!(req.flags, 0, "{req:?}");
        }
        self.tx_req_cons = self.tx_req_cons.wrapping_add(1);
        let rsp = TxResponse {
            id: if how & 1 == 0 { req.id } else { inp.u16() },
            status: [0, -1, -2, 1][usize::from(how >> 1 & 3)],
        };
        let off = slot_off(self.tx_rsp_prod, wire::TX_ENTRY_SIZE);
        self.tx.0.borrow_mut()[off..off + wire::TX_RESPONSE_SIZE].copy_from_slice(&rsp.encode());
        self.tx_rsp_prod = self.tx_rsp_prod.wrapping_add(1);
        self.tx.set_word(8, self.tx_rsp_prod);
    }

    /// Fills the next posted receive buffer and answers its request.
    fn answer_rx(&mut self, inp: &mut Input<'_>) {
        let how = inp.u8();
        let len = inp.u16();
        let offset = if how & 1 == 0 { 0 } else { inp.u16() };
        if self.rx_req_cons == self.rx.word(0) {
            return;
        }
        let mut b = [0u8; wire::RX_REQUEST_SIZE];
        b.copy_from_slice(
            &self.rx.0.borrow()[slot_off(self.rx_req_cons, wire::RX_ENTRY_SIZE)..][..8],
        );
        let req = RxRequest::decode(&b);
        if !self.rx_tampered {
            assert_eq!(
                usize::from(req.id),
                self.rx_req_cons as usize & (SLOTS - 1),
                "{req:?}"
            );
            assert!(
                (RX_GREF..RX_GREF + SLOTS as u32).contains(&req.gref),
                "{req:?}"
            );
        }
        self.rx_req_cons = self.rx_req_cons.wrapping_add(1);
        if let Some(buf) = req
            .gref
            .checked_sub(RX_GREF)
            .filter(|&b| (b as usize) < SLOTS)
        {
            let mut pages = self.rx_pages.borrow_mut();
            let page = pages[buf as usize].get_or_insert_with(|| Box::new([0; PAGE_SIZE]));
            let start = usize::from(offset).min(PAGE_SIZE);
            let end = (start + usize::from(len)).min(PAGE_SIZE);
            let src = inp.bytes(end - start);
            page[start..start + src.len()].copy_from_slice(src);
            page[start + src.len()..end].fill(how);
        }
        let flags = match how >> 1 & 3 {
            0 => 0,
            1 => NETRXF_MORE_DATA,
            2 => NETRXF_EXTRA_INFO,
            _ => inp.u16(),
        };
        let rsp = RxResponse {
            id: if how & 8 == 0 { req.id } else { inp.u16() },
            offset,
            flags,
            status: if how & 16 == 0 {
                len as i16
            } else {
                [-1, -2, 0, 1][usize::from(how >> 5 & 3)]
            },
        };
        if !self.rx_tampered {
            let pages = self.rx_pages.borrow();
            let page = usize::try_from(req.gref - RX_GREF)
                .ok()
                .and_then(|b| pages[b].as_deref())
                .unwrap_or(&ZERO);
            self.rx_model.response(self.rx_rsp_prod, &rsp, page);
        }
        let off = slot_off(self.rx_rsp_prod, wire::RX_ENTRY_SIZE);
        self.rx.0.borrow_mut()[off..off + wire::RX_RESPONSE_SIZE].copy_from_slice(&rsp.encode());
        self.rx_rsp_prod = self.rx_rsp_prod.wrapping_add(1);
        self.rx.set_word(8, self.rx_rsp_prod);
    }
}

/// What a run saw (for the seed tests).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// The frontend's counters at the end.
    pub stats: Stats,
    /// Its sticky error, if the backend misbehaved.
    pub error: Option<NetError>,
}

/// Runs one input.
pub fn run(data: &[u8]) -> Outcome {
    let mut inp = Input::new(data);
    let (tx, rx) = (Shared::new(), Shared::new());
    let rx_pages = Rc::new(RefCell::new((0..SLOTS).map(|_| None).collect::<Vec<_>>()));
    let bufs = Bufs {
        tx: (0..SLOTS).map(|_| None).collect(),
        rx: rx_pages.clone(),
    };
    let kicks = Kicks::default();
    let mut nf = Netfront::new(tx.clone(), rx.clone(), bufs, kicks.clone());
    let mut be = Backend {
        tx,
        rx,
        rx_pages,
        tx_req_cons: 0,
        tx_rsp_prod: 0,
        rx_req_cons: 0,
        rx_rsp_prod: 0,
        tx_tampered: false,
        rx_tampered: false,
        rx_model: RxModel::default(),
    };
    let mut seen = Seen {
        error: None,
        stats: nf.stats(),
        rx_bytes: 0,
    };
    while !inp.is_empty() {
        let op = inp.u8();
        match op & 15 {
            0 | 1 => {
                let len = usize::from(inp.u16() % 1600);
                let fill = inp.u8();
                let got = nf.transmit_with(len, |b| {
                    b.fill(fill);
                    b.len()
                });
                assert_eq!(got, len.min(MAX_FRAME), "transmit buffer size");
            }
            2 => be.answer_tx(&mut inp),
            3 | 4 => be.answer_rx(&mut inp),
            5 => {
                let index = inp.u32();
                let raw = inp.array::<8>();
                be.rx.0.borrow_mut()[slot_off(index, wire::RX_ENTRY_SIZE)..][..8]
                    .copy_from_slice(&raw);
                be.rx_tampered = true;
            }
            6 => {
                let index = inp.u32();
                let raw = inp.array::<12>();
                be.tx.0.borrow_mut()[slot_off(index, wire::TX_ENTRY_SIZE)..][..12]
                    .copy_from_slice(&raw);
                be.tx_tampered = true;
            }
            7 => {
                let v = inp.u32();
                if op & 16 == 0 {
                    be.rx_tampered = true;
                }
                let page = if op & 16 == 0 { &be.rx } else { &be.tx };
                let now = page.word(8);
                page.set_word(
                    8,
                    if op & 32 == 0 {
                        v
                    } else {
                        now.wrapping_add(v % 4)
                    },
                );
            }
            8 => {
                let v = inp.u32();
                let page = if op & 16 == 0 { &be.rx } else { &be.tx };
                page.set_word(4, v);
            }
            9 => {
                // Any header word, the frontend's own producer among them.
                let off = usize::from(op >> 4) * 4;
                let v = inp.u32();
                if op & 128 == 0 {
                    be.rx.set_word(off % RING_HEADER, v);
                    be.rx_tampered = true;
                } else {
                    be.tx.set_word(off % RING_HEADER, v);
                    be.tx_tampered = true;
                }
            }
            10 | 11 => poll(&mut nf, &mut seen),
            12 => receive(&mut nf, &mut be, &mut seen),
            13 => nf.refill_rx(),
            14 => config(&mut inp),
            _ => {
                poll(&mut nf, &mut seen);
                while nf.rx_pending() {
                    receive(&mut nf, &mut be, &mut seen);
                }
            }
        }
        check(&nf, &mut seen);
    }
    poll(&mut nf, &mut seen);
    for _ in 0..=SLOTS {
        if !nf.rx_pending() {
            break;
        }
        receive(&mut nf, &mut be, &mut seen);
    }
    assert!(!nf.rx_pending(), "more frames waiting than buffers");
    if !be.rx_tampered && !be.rx_model.broken && nf.error().is_none() {
        assert_eq!(
            be.rx_model.frames.len(),
            0,
            "a delivered frame was never handed up"
        );
    }
    check(&nf, &mut seen);
    Outcome {
        stats: nf.stats(),
        error: nf.error(),
    }
}

type Front = Netfront<Shared, Bufs, Kicks>;

/// What the harness tracks across operations.
struct Seen {
    error: Option<NetError>,
    stats: Stats,
    rx_bytes: u64,
}

fn poll(nf: &mut Front, seen: &mut Seen) {
    let r = nf.poll();
    match seen.error {
        Some(e) => assert_eq!(r, Err(e), "error not sticky"),
        None => seen.error = r.err(),
    }
}

fn receive(nf: &mut Front, be: &mut Backend, seen: &mut Seen) {
    let got = nf.receive_with(|p| p.to_vec());
    if seen.error.is_some() || nf.error().is_some() {
        assert_eq!(got, None, "frame received after a protocol error");
    }
    if let Some(frame) = got {
        let n = frame.len();
        assert!((1..=MAX_FRAME).contains(&n), "frame of {n} bytes handed up");
        seen.rx_bytes += n as u64;
        if !be.rx_tampered && !be.rx_model.broken {
            let want = be.rx_model.frames.pop_front();
            assert_eq!(
                Some(frame),
                want,
                "frame handed up is not the one delivered"
            );
        }
    }
}

fn check(nf: &Front, seen: &mut Seen) {
    let s = nf.stats();
    let o = seen.stats;
    assert!(
        s.tx_packets >= o.tx_packets
            && s.tx_bytes >= o.tx_bytes
            && s.tx_errors >= o.tx_errors
            && s.rx_packets >= o.rx_packets
            && s.rx_bytes >= o.rx_bytes
            && s.rx_dropped >= o.rx_dropped
            && s.notifies >= o.notifies,
        "counters went down: {o:?} -> {s:?}"
    );
    assert_eq!(s.rx_bytes, seen.rx_bytes, "received bytes miscounted");
    assert!(nf.tx_slots_free() <= SLOTS);
    if let Some(e) = seen.error {
        // Dead since the last check at least: nothing moved since.
        assert_eq!(
            (s.tx_packets, s.rx_packets),
            (o.tx_packets, o.rx_packets),
            "traffic after {e:?}"
        );
    }
    if seen.error.is_none() {
        seen.error = nf.error();
    }
    if let Some(e) = seen.error {
        assert_eq!(nf.error(), Some(e), "error forgotten");
        assert!(!nf.rx_pending() && nf.tx_slots_free() == 0);
    }
    seen.stats = s;
}

/// Parses fuzzer bytes as a xenstore `mac` or `state` value.
fn config(inp: &mut Input<'_>) {
    let n = usize::from(inp.u8() % 32);
    let v = inp.bytes(n);
    if let Ok(mac) = parse_mac(v) {
        let text = mac.map(|b| format!("{b:02x}")).join(":");
        let mut trimmed = v.to_vec();
        while matches!(trimmed.last(), Some(b'\0' | b'\n' | b' ')) {
            trimmed.pop();
        }
        assert_eq!(
            text.as_bytes(),
            trimmed.to_ascii_lowercase(),
            "MAC round trip"
        );
    }
    if let Ok(s) = XenbusState::parse(v) {
        assert_eq!(XenbusState::parse(s.as_str().as_bytes()), Ok(s));
    }
}
