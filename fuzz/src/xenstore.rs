//! Target `xenstore`: the appliance's xenstore client reading replies and
//! watch events out of the shared response ring that xenstored (another
//! domain) writes.
//!
//! Input: a request byte (the type of the request a reply answers), then
//! a program of ring operations until the input ends: the peer writes
//! bytes at its producer index, or sets the producer or (hostile) the
//! consumer index to any value; the client takes one turn the way the
//! appliance's `receive` does (`readable_span`, at most what the
//! [`Assembler`] still wants, `push`, advance the consumer). Each complete
//! message is parsed as the reply to the request and as a watch event. One
//! operation instead encodes a request from fuzzer bytes and reassembles
//! it.
//!
//! Invariants checked besides "no panic": spans stay inside the ring and
//! never exceed what is queued; the assembler takes no more than it was
//! offered and what it wanted; a message's payload has the length its
//! header gives, at most `PAYLOAD_MAX`; every decoded reply agrees with
//! the bytes (a value is the payload, directory names hold no NUL and
//! cover the payload, a transaction id is the payload's digits, a watch
//! event's path and token rebuild the payload); an encoded request comes
//! back unchanged.

use xenstore_wire::message::{Message, HEADER_LEN, MESSAGE_MAX, PAYLOAD_MAX};
use xenstore_wire::ring::{readable_span, used, writable_span, RING_SIZE};
use xenstore_wire::{
    parse_reply, Assembler, Header, MsgType, Reply, Request, WatchEvent, WireError,
};

use crate::Input;

/// Requests a reply may answer, by the request byte.
const REQUESTS: [MsgType; 9] = [
    MsgType::Read,
    MsgType::Write,
    MsgType::Directory,
    MsgType::TransactionStart,
    MsgType::TransactionEnd,
    MsgType::Mkdir,
    MsgType::Rm,
    MsgType::Watch,
    MsgType::Unwatch,
];

/// Counts of what a run saw (for the seed tests).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Complete messages reassembled.
    pub messages: u32,
    /// Replies accepted for the request.
    pub replies: u32,
    /// Watch events accepted.
    pub events: u32,
    /// Protocol errors (indices or framing) the client reported.
    pub errors: u32,
}

struct Ring {
    bytes: [u8; RING_SIZE],
    prod: u32,
    cons: u32,
}

/// Runs one input.
pub fn run(data: &[u8]) -> Outcome {
    let mut inp = Input::new(data);
    let request = REQUESTS[usize::from(inp.u8()) % REQUESTS.len()];
    let start = u32::from(inp.u8()).wrapping_mul(0x0101_0101);
    let mut ring = Ring {
        bytes: [0; RING_SIZE],
        prod: start,
        cons: start,
    };
    let mut asm = Box::<Assembler>::default();
    let mut out = Outcome::default();
    while !inp.is_empty() {
        let op = inp.u8();
        match op & 7 {
            0..=2 => {
                let n = usize::from(inp.u8()) + 1 + usize::from(op >> 3) * 256;
                let data = inp.bytes(n);
                produce(&mut ring, data);
            }
            3 => ring.prod = inp.u32(),
            4 => ring.cons = inp.u32(),
            5 => ring.prod = ring.prod.wrapping_add(u32::from(inp.u16())),
            6 => round_trip(&mut inp, op >> 3),
            _ => {
                for _ in 0..=(op >> 3) {
                    consume(&mut ring, &mut asm, request, &mut out);
                }
            }
        }
    }
    // The client keeps reading until the ring is empty or broken.
    for _ in 0..2 * MESSAGE_MAX {
        let before = ring.cons;
        if !consume(&mut ring, &mut asm, request, &mut out) || ring.cons == before {
            break;
        }
    }
    out
}

/// The peer writes what fits of `data` at its producer index, as an honest
/// xenstored does.
fn produce(ring: &mut Ring, mut data: &[u8]) {
    while !data.is_empty() {
        let Ok((off, len)) = writable_span(ring.prod, ring.cons) else {
            return;
        };
        assert!(off + len <= RING_SIZE, "writable span past the ring");
        let n = len.min(data.len());
        if n == 0 {
            return;
        }
        ring.bytes[off..off + n].copy_from_slice(&data[..n]);
        ring.prod = ring.prod.wrapping_add(n as u32);
        data = &data[n..];
    }
}

/// One turn of the appliance's receive loop; false when it gave up (the
/// indices or the framing are broken).
fn consume(ring: &mut Ring, asm: &mut Assembler, request: MsgType, out: &mut Outcome) -> bool {
    if let Some(m) = asm.message() {
        check_message(&m, request, out);
        asm.clear();
    }
    let (off, len) = match readable_span(ring.prod, ring.cons) {
        Ok(s) => s,
        Err(_) => {
            out.errors += 1;
            return false;
        }
    };
    let queued = used(ring.prod, ring.cons).expect("span was readable");
    assert!(off + len <= RING_SIZE, "readable span past the ring");
    assert!(len <= queued, "span of {len} with {queued} queued");
    let wanted = asm.wanted();
    assert!(wanted <= MESSAGE_MAX, "assembler wants {wanted}");
    let n = len.min(wanted);
    match asm.push(&ring.bytes[off..off + n]) {
        Ok(taken) => {
            assert!(taken <= n, "took {taken} of {n}");
            ring.cons = ring.cons.wrapping_add(taken as u32);
        }
        Err(e) => {
            assert!(matches!(e, WireError::TooLong { len } if len as usize > PAYLOAD_MAX));
            asm.clear();
            out.errors += 1;
            return false;
        }
    }
    if let Some(m) = asm.message() {
        check_message(&m, request, out);
        asm.clear();
    }
    true
}

fn check_message(m: &Message<'_>, request: MsgType, out: &mut Outcome) {
    out.messages += 1;
    let h = m.header;
    assert_eq!(m.payload.len(), h.len as usize, "payload length");
    assert!(m.payload.len() <= PAYLOAD_MAX);
    let mut raw = [0u8; HEADER_LEN];
    raw.copy_from_slice(&h.encode());
    assert_eq!(Header::decode(&raw), Ok(h), "header round trip");

    // The client checks every reply against every request type it sends.
    for req in REQUESTS {
        let r = parse_reply(req, m);
        if req == request && r.is_ok() {
            out.replies += 1;
        }
        check_reply(req, m, r);
    }
    match WatchEvent::parse(m) {
        Ok(ev) => {
            out.events += 1;
            assert_eq!(h.ty, MsgType::WatchEvent as u32);
            assert!(!ev.path.contains(&0) && !ev.token.contains(&0));
            let mut back = ev.path.to_vec();
            back.push(0);
            back.extend_from_slice(ev.token);
            back.push(0);
            assert_eq!(back, m.payload, "watch event does not rebuild its payload");
        }
        Err(e) => assert!(matches!(
            e,
            WireError::Malformed | WireError::UnexpectedType { .. }
        )),
    }
}

fn check_reply(req: MsgType, m: &Message<'_>, r: Result<Reply<'_>, WireError>) {
    let p = m.payload;
    if m.header.ty == MsgType::Error as u32 {
        assert!(
            matches!(r, Err(WireError::Xs(_))),
            "error reply read as {r:?}"
        );
        return;
    }
    if m.header.ty != req as u32 {
        assert!(matches!(r, Err(WireError::UnexpectedType { .. })), "{r:?}");
        return;
    }
    match r {
        Ok(Reply::Ok) => assert!(p == b"OK" || p == b"OK\0"),
        Ok(Reply::Value(v)) => {
            assert_eq!(req, MsgType::Read);
            assert_eq!(v, p);
        }
        Ok(Reply::Directory(d)) => {
            assert_eq!(req, MsgType::Directory);
            let mut covered = 0;
            for name in d {
                assert!(!name.contains(&0), "NUL inside a directory name");
                covered += name.len() + 1;
                assert!(covered <= p.len(), "directory names past the payload");
            }
            assert_eq!(covered, p.len(), "directory names do not cover the payload");
        }
        Ok(Reply::TransactionId(id)) => {
            assert_eq!(req, MsgType::TransactionStart);
            let digits = p.strip_suffix(b"\0").expect("a NUL-terminated id");
            assert!(!digits.is_empty() && digits.iter().all(u8::is_ascii_digit));
            let v = digits.iter().fold(0u64, |v, &d| {
                v.saturating_mul(10).saturating_add(u64::from(d - b'0'))
            });
            assert_eq!(v, u64::from(id));
        }
        Err(e) => assert!(
            matches!(e, WireError::Malformed | WireError::BadNumber),
            "{req:?} reply refused with {e:?}"
        ),
    }
}

/// Encodes a request from fuzzer bytes and reads it back through an
/// assembler, in pieces.
fn round_trip(inp: &mut Input<'_>, kind: u8) {
    let split = usize::from(inp.u8());
    let path_len = usize::from(inp.u16()) % (PAYLOAD_MAX + 64);
    let path = inp.bytes(path_len);
    let value_len = usize::from(inp.u16()) % (PAYLOAD_MAX + 64);
    let value = inp.bytes(value_len);
    let tx = inp.u32();
    let req = match kind % 8 {
        0 => Request::read(tx, path),
        1 => Request::write(tx, path, value),
        2 => Request::directory(tx, path),
        3 => Request::mkdir(tx, path),
        4 => Request::rm(tx, path),
        5 => Request::watch(path, value),
        6 => Request::unwatch(path, value),
        _ => Request::transaction_end(tx, path.first().is_some_and(|b| b & 1 != 0)),
    };
    let mut wire = vec![0u8; MESSAGE_MAX + 64];
    let cap = MESSAGE_MAX + 64 - usize::from(inp.u8());
    let n = match req.encode(7, &mut wire[..cap]) {
        Ok(n) => n,
        Err(e) => {
            let len = req.payload_len();
            match e {
                WireError::RequestTooLong => assert!(len > PAYLOAD_MAX),
                WireError::BufferTooSmall => assert!(HEADER_LEN + len > cap),
                WireError::InteriorNul => {
                    assert!(
                        path.contains(&0) || (kind % 8 >= 5 && kind % 8 <= 6 && value.contains(&0))
                    )
                }
                other => panic!("encode failed with {other:?}"),
            }
            return;
        }
    };
    assert_eq!(n, HEADER_LEN + req.payload_len());
    let mut asm = Box::<Assembler>::default();
    let mut at = 0;
    let step = split.max(1);
    while asm.message().is_none() {
        assert!(at < n, "assembler wants more than the message");
        let end = (at + step).min(n);
        let took = asm.push(&wire[at..end]).expect("own request reassembles");
        assert!(took <= end - at);
        at += took;
    }
    assert_eq!(at, n, "assembler took bytes of the next message");
    let m = asm.message().expect("complete");
    assert_eq!(m.header.ty, req.ty() as u32);
    assert_eq!(m.header.req_id, 7);
    assert_eq!(m.payload, &wire[HEADER_LEN..n]);
}
