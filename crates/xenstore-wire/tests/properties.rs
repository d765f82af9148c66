//! Property tests: decoding never panics; messages survive any split over the
//! 1 KiB ring.

use proptest::prelude::*;
use xenstore_wire::message::{Message, MESSAGE_MAX};
use xenstore_wire::ring::{readable_span, writable_span, RING_SIZE};
use xenstore_wire::*;

/// Pushes `bytes` through a simulated ring, the producer writing at most
/// `w` and the consumer reading at most `r` bytes per turn; returns the
/// reassembled payload. Indices start at `start` to exercise u32 wrap.
fn through_ring(bytes: &[u8], w: usize, r: usize, start: u32) -> Vec<u8> {
    let mut ring = [0u8; RING_SIZE];
    let (mut prod, mut cons) = (start, start);
    let mut sent = 0;
    let mut a = Assembler::default();
    let mut turns = 0;
    loop {
        turns += 1;
        assert!(turns < 100_000, "no progress");
        // Producer turn.
        let (off, len) = writable_span(prod, cons).unwrap();
        let n = len.min(w).min(bytes.len() - sent);
        ring[off..off + n].copy_from_slice(&bytes[sent..sent + n]);
        sent += n;
        prod = prod.wrapping_add(n as u32);
        // Consumer turn.
        let (off, len) = readable_span(prod, cons).unwrap();
        let n = len.min(r);
        let took = a.push(&ring[off..off + n]).unwrap();
        cons = cons.wrapping_add(took as u32);
        if let Some(m) = a.message() {
            return m.payload.to_vec();
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..MESSAGE_MAX + 64),
                                   chunk in 1usize..2000) {
        let mut a = Assembler::default();
        for piece in data.chunks(chunk) {
            match a.push(piece) {
                Ok(_) => {}
                Err(_) => break,
            }
            if let Some(m) = a.message() {
                for ty in [MsgType::Read, MsgType::Write, MsgType::Directory, MsgType::TransactionStart] {
                    let _ = parse_reply(ty, &m);
                }
                let _ = WatchEvent::parse(&m);
                a.clear();
            }
        }
    }

    #[test]
    fn arbitrary_payloads_never_panic(ty in 0u32..30, payload in proptest::collection::vec(any::<u8>(), 0..300)) {
        let m = Message { header: Header { ty, req_id: 1, tx_id: 0, len: payload.len() as u32 }, payload: &payload };
        for req in [MsgType::Read, MsgType::Write, MsgType::Directory, MsgType::TransactionStart, MsgType::Rm] {
            let _ = parse_reply(req, &m);
        }
        let _ = WatchEvent::parse(&m);
    }

    #[test]
    fn large_values_survive_any_split(value in proptest::collection::vec(any::<u8>(), 0..4000),
                                      w in 1usize..1100, r in 1usize..1100, start in any::<u32>()) {
        let mut wire = vec![0u8; MESSAGE_MAX];
        let n = Request::write(0, b"data/big", &value).encode(1, &mut wire).unwrap();
        let payload = through_ring(&wire[..n], w, r, start);
        prop_assert_eq!(&payload[..9], b"data/big\0");
        prop_assert_eq!(&payload[9..], &value[..]);
    }
}
