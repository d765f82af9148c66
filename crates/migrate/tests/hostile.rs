//! The destination against crafted and random byte streams: every refusal
//! is a typed error with the matching NAK, nothing beyond pages reaches the
//! shell unless the stream is authentic and complete, and no input panics.

mod common;

use std::time::Instant;

use common::*;
use depmig_migrate::reply::{nak, ACK, SIGNED_REPLY_LEN};
use depmig_migrate::*;
use depmig_stream::handshake::{CONFIRM_LEN, HELLO_LEN};
use depmig_stream::*;
use proptest::prelude::*;

const NR: u64 = 64;

fn hellos() -> (Hello, Hello) {
    (
        Hello {
            role: Role::Source,
            nonce: [1; 16],
            verify: false,
            caps: Caps::NONE,
        },
        Hello {
            role: Role::Destination,
            nonce: [2; 16],
            verify: false,
            caps: Caps::NONE,
        },
    )
}

/// A source's bytes: hello, whatever `build` encodes, trailer.
fn craft(build: impl FnOnce(&mut Encoder, &mut Authenticated<Vec<u8>>)) -> Vec<u8> {
    let (src, dst) = hellos();
    let mut wire = src.to_bytes().to_vec();
    let mac = TranscriptMac::new(KEY, &src, &dst).unwrap();
    let mut out = Authenticated::new(Vec::new(), mac);
    let mut enc = Encoder::new();
    build(&mut enc, &mut out);
    let (body, trailer) = out.finish();
    wire.extend_from_slice(&body);
    wire.extend_from_slice(&trailer);
    wire
}

fn head(enc: &mut Encoder, out: &mut Authenticated<Vec<u8>>) {
    enc.headers(
        out,
        &DomainHeader {
            domain_type: DomainType::X86Hvm,
            page_shift: 12,
            xen_major: 4,
            xen_minor: 17,
        },
    )
    .unwrap();
    enc.static_data_end(out).unwrap();
}

fn page(seed: u8) -> Vec<u8> {
    (0..PAGE).map(|i| seed ^ i as u8).collect()
}

fn good_params() -> Vec<HvmParam> {
    vec![
        HvmParam {
            index: 1,
            value: NR - 2,
        },
        HvmParam {
            index: 17,
            value: NR - 1,
        },
        HvmParam {
            index: 12,
            value: 0xfeff_d000,
        },
    ]
}

fn tail(enc: &mut Encoder, out: &mut Authenticated<Vec<u8>>, params: &[HvmParam]) {
    enc.tsc_info(
        out,
        &TscInfo {
            mode: 0,
            khz: 1000,
            nsec: 5,
            incarnation: 1,
        },
    )
    .unwrap();
    enc.hvm_params(out, params).unwrap();
    enc.hvm_context(out, &[9; 100]).unwrap();
    enc.end(out).unwrap();
}

fn valid() -> Vec<u8> {
    craft(|enc, out| {
        head(enc, out);
        let (a, b) = (page(1), page(2));
        enc.page_data(
            out,
            &[
                PfnEntry::normal(3),
                PfnEntry {
                    pfn: 4,
                    kind: PageType::XTab,
                },
                PfnEntry::normal(NR - 3),
            ],
            &[&a, &b],
        )
        .unwrap();
        enc.page_data(
            out,
            &[PfnEntry {
                pfn: 10,
                kind: PageType::XAlloc,
            }],
            &[],
        )
        .unwrap();
        tail(enc, out, &good_params());
    })
}

fn receive(bytes: Vec<u8>, chunk: usize) -> (Result<DestStats, DestError>, Shell, Vec<u8>) {
    let mut shell = Shell::new(NR);
    let mut t = Script::new(bytes, chunk);
    let cfg = DestConfig::new(KEY, [2; 16]);
    let r = dest::run(
        &mut shell,
        &mut t,
        &TestClock(Instant::now()),
        &mut NoProgress,
        &cfg,
    );
    (r, shell, t.out)
}

/// The destination answered its hello and key confirmation, then `reply`
/// with its tag.
fn assert_replied(sent: &[u8], reply: [u8; 8]) {
    let (src, dst) = hellos();
    let confirm = depmig_stream::key_confirmation(KEY, &src, &dst).unwrap();
    let head = HELLO_LEN + CONFIRM_LEN;
    assert_eq!(sent.len(), head + SIGNED_REPLY_LEN, "{sent:?}");
    assert_eq!(&sent[..HELLO_LEN], &dst.to_bytes());
    assert_eq!(&sent[HELLO_LEN..head], &confirm);
    assert_eq!(&sent[head..head + 8], &reply);
    assert_eq!(
        &sent[head..],
        &depmig_migrate::reply::sign(reply, KEY, &src, &dst).unwrap()
    );
}

#[test]
fn a_valid_stream_is_applied_in_any_segmentation() {
    for chunk in [1, 7, 333, 4096, 1 << 20] {
        let (r, shell, sent) = receive(valid(), chunk);
        let st = r.unwrap_or_else(|e| panic!("chunk {chunk}: {e:?}"));
        assert_replied(&sent, ACK);
        assert_eq!(shell.page(3), &page(1)[..]);
        assert_eq!(shell.page(NR - 3), &page(2)[..]);
        assert_eq!(shell.page(4), &[0xEE; PAGE][..], "hole untouched");
        assert!(shell.page(10).iter().all(|&b| b == 0), "XALLOC zeroed");
        assert_eq!(
            shell.page(NR - 1),
            &[0xEE; PAGE][..],
            "ring the shell's own"
        );
        assert_eq!(
            (
                st.pages_written,
                st.pages_zeroed,
                st.holes,
                st.params_applied,
                st.params_kept
            ),
            (2, 1, 1, 1, 2)
        );
        assert_eq!(st.ring_pages_kept, 0);
        assert_eq!(shell.set_params, vec![(12, 0xfeff_d000)]);
        assert_eq!(shell.context.as_deref(), Some(&[9u8; 100][..]));
    }
}

#[test]
fn the_streams_copies_of_the_ring_frames_are_never_written() {
    // xenstored and xenconsoled serve the shell's rings from its creation:
    // the source's ring contents (a request cut in half, old output) must
    // not appear in them, whatever the stream says.
    let bytes = craft(|enc, out| {
        head(enc, out);
        let a = page(7);
        enc.page_data(out, &[PfnEntry::normal(NR - 1)], &[&a])
            .unwrap();
        enc.page_data(
            out,
            &[PfnEntry {
                pfn: NR - 2,
                kind: PageType::XAlloc,
            }],
            &[],
        )
        .unwrap();
        tail(enc, out, &good_params());
    });
    let (r, shell, sent) = receive(bytes, 4096);
    let st = r.expect("applied");
    assert_replied(&sent, ACK);
    assert_eq!(st.ring_pages_kept, 2);
    assert_eq!((st.pages_written, st.pages_zeroed), (0, 0));
    assert_eq!(
        shell.page(NR - 1),
        &[0xEE; PAGE][..],
        "console ring the shell's own"
    );
    assert_eq!(
        shell.page(NR - 2),
        &[0xEE; PAGE][..],
        "xenstore ring the shell's own"
    );
}

fn refused(bytes: Vec<u8>, want: DestError) {
    let (r, shell, sent) = receive(bytes, 1000);
    assert_eq!(r.unwrap_err(), want);
    assert_replied(&sent, nak(want.nak_code()));
    assert!(shell.cpu_state_untouched());
}

#[test]
fn pfn_beyond_the_shell_is_refused() {
    let bytes = craft(|enc, out| {
        head(enc, out);
        enc.page_data(out, &[PfnEntry::normal(NR)], &[&page(0)])
            .unwrap();
        tail(enc, out, &good_params());
    });
    let want = DestError::Stream(RxError::Decode(DecodeError::PfnOutOfRange(NR)));
    assert_eq!(want.nak_code(), NakCode::Pfn);
    refused(bytes, want);
}

#[test]
fn oversized_record_is_refused_before_it_is_buffered() {
    let bytes = craft(|enc, out| {
        head(enc, out);
        enc.hvm_context(out, &vec![1u8; 2 << 20]).unwrap();
        enc.end(out).unwrap();
    });
    refused(
        bytes,
        DestError::Stream(RxError::Decode(DecodeError::RecordTooLong {
            rtype: rec::HVM_CONTEXT,
            len: 2 << 20,
        })),
    );
}

#[test]
fn pv_and_broken_pages_are_refused() {
    for kind in [
        PageType::Broken,
        PageType::Table(1),
        PageType::PinnedTable(4),
    ] {
        let bytes = craft(|enc, out| {
            head(enc, out);
            let data = page(0);
            let pages: Vec<&[u8]> = if kind.has_data() { vec![&data] } else { vec![] };
            enc.page_data(out, &[PfnEntry { pfn: 1, kind }], &pages)
                .unwrap();
            tail(enc, out, &good_params());
        });
        refused(bytes, DestError::UnsupportedPageType(kind.to_nibble()));
    }
}

#[test]
fn verify_records_are_refused() {
    let bytes = craft(|enc, out| {
        head(enc, out);
        enc.verify(out).unwrap();
        tail(enc, out, &good_params());
    });
    refused(bytes, DestError::UnsupportedRecord(rec::VERIFY));
}

#[test]
fn parameters_outside_the_migration_set_are_refused() {
    let mut params = good_params();
    params.push(HvmParam {
        index: 0,
        value: 1 << 57,
    });
    let bytes = craft(|enc, out| {
        head(enc, out);
        tail(enc, out, &params);
    });
    refused(bytes, DestError::Param(0));
}

#[test]
fn ring_frames_must_match_the_shell() {
    let mut params = good_params();
    params[0].value = 5;
    let bytes = craft(|enc, out| {
        head(enc, out);
        tail(enc, out, &params);
    });
    refused(
        bytes,
        DestError::RingMismatch {
            index: 1,
            stream: 5,
            shell: NR - 2,
        },
    );
}

#[test]
fn the_shells_event_channels_are_kept() {
    let mut params = good_params();
    params.push(HvmParam { index: 2, value: 5 });
    let bytes = craft(|enc, out| {
        head(enc, out);
        tail(enc, out, &params);
    });
    let (r, shell, sent) = receive(bytes, 4096);
    assert_eq!(r.unwrap().params_kept, 3);
    assert_replied(&sent, ACK);
    assert_eq!(shell.params[&2], 99);
}

#[test]
fn missing_tsc_info_is_refused() {
    let bytes = craft(|enc, out| {
        head(enc, out);
        enc.hvm_params(out, &good_params()).unwrap();
        enc.hvm_context(out, &[1; 8]).unwrap();
        enc.end(out).unwrap();
    });
    refused(bytes, DestError::Missing(rec::X86_TSC_INFO));
}

#[test]
fn bytes_after_the_trailer_are_refused() {
    let mut bytes = valid();
    bytes.extend_from_slice(b"more");
    refused(bytes, DestError::TrailingBytes);
}

#[test]
fn a_stream_cut_short_is_a_closed_peer() {
    let mut bytes = valid();
    bytes.truncate(bytes.len() - 10);
    let (r, shell, sent) = receive(bytes, 100);
    assert_eq!(r.unwrap_err(), DestError::PeerClosed);
    assert!(shell.cpu_state_untouched());
    assert_replied(&sent, nak(NakCode::Internal));
}

#[test]
fn a_foreign_peer_gets_no_hello() {
    let mut bytes = valid();
    bytes[0] ^= 1;
    let (r, shell, sent) = receive(bytes, 100);
    assert_eq!(
        r.unwrap_err(),
        DestError::Stream(RxError::Handshake(HandshakeError::BadMagic))
    );
    assert!(sent.is_empty());
    assert_eq!(shell.pages_written, 0);
}

#[test]
fn a_reflected_hello_is_refused() {
    let mut bytes = valid();
    bytes[16..32].copy_from_slice(&[2; 16]);
    let (r, _, _) = receive(bytes, 100);
    assert_eq!(
        r.unwrap_err(),
        DestError::Stream(RxError::Handshake(HandshakeError::ReflectedNonce))
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..3000),
                                chunk in 1usize..600,
                                with_hello in any::<bool>()) {
        let mut input = if with_hello { hellos().0.to_bytes().to_vec() } else { vec![] };
        input.extend(bytes);
        let (r, shell, _) = receive(input, chunk);
        prop_assert!(r.is_err());
        prop_assert!(shell.cpu_state_untouched());
    }

    #[test]
    fn mutated_streams_are_refused_without_panic(
        flips in prop::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..4),
        cut in prop::option::of(any::<prop::sample::Index>()),
        chunk in 1usize..5000,
    ) {
        let mut bytes = valid();
        for (at, x) in flips {
            let i = at.index(bytes.len());
            bytes[i] ^= x;
        }
        if let Some(c) = cut {
            let n = c.index(bytes.len());
            bytes.truncate(n);
        }
        let (r, shell, _) = receive(bytes, chunk);
        prop_assert!(r.is_err());
        prop_assert!(shell.cpu_state_untouched());
    }
}

/// Both hellos with delta pages agreed on.
fn delta_hellos() -> (Hello, Hello) {
    let (s, d) = hellos();
    (
        Hello {
            caps: Caps::DELTA_PAGES,
            ..s
        },
        Hello {
            caps: Caps::DELTA_PAGES,
            ..d
        },
    )
}

/// A source's bytes with deltas agreed on: hello, `build`'s records
/// between the headers and the tail, trailer.
fn craft_delta(build: impl FnOnce(&mut Encoder, &mut Authenticated<Vec<u8>>)) -> Vec<u8> {
    let (src, dst) = delta_hellos();
    let mut wire = src.to_bytes().to_vec();
    let mac = TranscriptMac::new(KEY, &src, &dst).unwrap();
    let mut out = Authenticated::new(Vec::new(), mac);
    let mut enc = Encoder::new();
    enc.set_delta(true);
    head(&mut enc, &mut out);
    build(&mut enc, &mut out);
    tail(&mut enc, &mut out, &good_params());
    let (body, trailer) = out.finish();
    wire.extend_from_slice(&body);
    wire.extend_from_slice(&trailer);
    wire
}

/// The destination, accepting deltas, writing batches of `batch` pages.
fn receive_delta(bytes: Vec<u8>, batch: usize) -> (Result<DestStats, DestError>, Shell) {
    let mut shell = Shell::new(NR);
    let mut t = Script::new(bytes, 777);
    let cfg = DestConfig {
        accept_delta: true,
        write_batch: batch,
        ..DestConfig::new(KEY, [2; 16])
    };
    let r = dest::run(
        &mut shell,
        &mut t,
        &TestClock(Instant::now()),
        &mut NoProgress,
        &cfg,
    );
    (r, shell)
}

/// Sends `page` for `pfn` whole, or as a delta against `base`.
fn send(
    enc: &mut Encoder,
    out: &mut Authenticated<Vec<u8>>,
    pfn: u64,
    page: &[u8],
    base: Option<&[u8]>,
) {
    let before = enc.tally().delta;
    enc.page_data_delta(out, &[PfnEntry::normal(pfn)], &[page], &[base])
        .unwrap();
    assert_eq!(enc.tally().delta > before, base.is_some(), "pfn {pfn}");
}

#[test]
fn deltas_apply_to_the_frame_whether_written_or_still_queued() {
    let a = page(1);
    let mut b = a.clone();
    b[5] ^= 0x77;
    let mut c = b.clone();
    c[4000] ^= 1;
    let bytes = craft_delta(|enc, out| {
        // Frame 3: whole, then two deltas; frame 5: whole, then a free
        // entry of another frame between it and its delta.
        send(enc, out, 3, &a, None);
        send(enc, out, 3, &b, Some(&a));
        send(enc, out, 5, &a, None);
        enc.page_data(
            out,
            &[PfnEntry {
                pfn: 9,
                kind: PageType::XAlloc,
            }],
            &[],
        )
        .unwrap();
        send(enc, out, 3, &c, Some(&b));
        send(enc, out, 5, &c, Some(&a));
    });
    // A batch of one writes each page at once: deltas read the shell. A
    // large batch holds them: deltas fold into the queued copy.
    for batch in [1, 64] {
        let (r, shell) = receive_delta(bytes.clone(), batch);
        let st = r.unwrap_or_else(|e| panic!("batch {batch}: {e:?}"));
        assert!(st.delta);
        assert_eq!(st.deltas_applied, 3);
        assert_eq!(st.page_tally.delta, 3);
        assert_eq!(shell.page(3), &c[..], "batch {batch}");
        assert_eq!(shell.page(5), &c[..], "batch {batch}");
    }
}

#[test]
fn a_delta_without_a_base_is_refused() {
    let a = page(1);
    let mut b = a.clone();
    b[5] ^= 0x77;
    // Never written; then zeroed since; then skipped as a hole since.
    let never = craft_delta(|enc, out| send(enc, out, 3, &b, Some(&a)));
    let freed = craft_delta(|enc, out| {
        send(enc, out, 3, &a, None);
        enc.page_data(
            out,
            &[PfnEntry {
                pfn: 3,
                kind: PageType::XAlloc,
            }],
            &[],
        )
        .unwrap();
        send(enc, out, 3, &b, Some(&a));
    });
    let hole = craft_delta(|enc, out| {
        send(enc, out, 3, &a, None);
        enc.page_data(
            out,
            &[PfnEntry {
                pfn: 3,
                kind: PageType::XTab,
            }],
            &[],
        )
        .unwrap();
        send(enc, out, 3, &b, Some(&a));
    });
    for bytes in [never, freed, hole] {
        let (r, shell) = receive_delta(bytes, 64);
        let e = r.unwrap_err();
        assert_eq!(e, DestError::DeltaWithoutBase(3));
        assert_eq!(e.nak_code(), NakCode::Decode);
        assert!(shell.cpu_state_untouched());
    }
}

#[test]
fn a_delta_for_a_ring_frame_is_kept_out_like_its_page() {
    let a = page(1);
    let mut b = a.clone();
    b[5] ^= 0x77;
    let ring = NR - 2;
    let bytes = craft_delta(|enc, out| {
        send(enc, out, ring, &a, None);
        send(enc, out, ring, &b, Some(&a));
    });
    let (r, shell) = receive_delta(bytes, 64);
    let st = r.unwrap();
    assert_eq!(st.ring_pages_kept, 2);
    assert_eq!(st.deltas_applied, 0);
    assert!(shell.page(ring).iter().all(|&x| x == 0xEE));
}

#[test]
fn deltas_not_agreed_on_are_refused() {
    let a = page(1);
    let bytes = craft_delta(|enc, out| {
        send(enc, out, 3, &a, None);
        send(enc, out, 3, &a, Some(&a));
    });
    // The same source, to a destination that does not take deltas: its
    // decoder refuses the record before a page of it is applied.
    let (r, _, _) = receive(bytes, 1000);
    assert_eq!(
        r.unwrap_err(),
        DestError::Stream(RxError::Decode(DecodeError::NotNegotiated(
            rec::DEPMIG_DELTA_PAGES
        )))
    );
}
