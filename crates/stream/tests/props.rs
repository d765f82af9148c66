//! Property tests: encode→decode is the identity under any split of the
//! byte stream, and no input (random, or a valid stream mutated) makes the
//! decoder or the xl scanner panic; a stream sealed in records arrives as
//! it was sent, however it was cut, and once altered is never
//! authenticated, nor does anything after the alteration reach the
//! decoder.

use std::collections::BTreeMap;

use depmig_stream::*;
use proptest::prelude::*;

#[derive(Clone, Debug, PartialEq)]
struct Model {
    dom: DomainHeader,
    cpuid: Vec<CpuidLeaf>,
    msrs: Vec<MsrEntry>,
    batches: Vec<Vec<(u64, u8, u8)>>, // (pfn, type nibble, data seed)
    tsc: Option<TscInfo>,
    params: Vec<(u64, u64)>,
    context: Vec<u8>,
    optional: Option<(u32, Vec<u8>)>,
    /// Pages in depmig's packed record (LZ4, zero pages) instead of PAGE_DATA.
    packed: bool,
}

/// A page whose first byte is `seed`: all zero for seed 0, else patterned
/// (compresses), noise (does not) or sparse, by `seed % 3`.
fn page_for(seed: u8, pfn: u64) -> Vec<u8> {
    if seed == 0 {
        return vec![0; PAGE_SIZE];
    }
    let mut x = (u64::from(seed) << 32) ^ pfn ^ 0x9E37_79B9_7F4A_7C15;
    let mut p: Vec<u8> = (0..PAGE_SIZE)
        .map(|i| match seed % 3 {
            0 => seed ^ (i as u8) ^ (pfn as u8),
            1 => {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            }
            _ => u8::from(i % 509 == 0) * seed,
        })
        .collect();
    p[0] = seed;
    p
}

fn model() -> impl Strategy<Value = Model> {
    let types = prop_oneof![
        Just(0u8),
        Just(0xF),
        Just(0xE),
        Just(0xD),
        1u8..=4,
        9u8..=0xC
    ];
    let seed = prop_oneof![Just(0u8), any::<u8>()];
    let entry = (0u64..(1 << 52), types, seed);
    (
        Just(DomainType::X86Hvm),
        any::<(u32, u32)>(),
        prop::collection::vec(any::<(u32, u32, u32, u32, u32, u32)>(), 0..4),
        prop::collection::vec(any::<(u32, u32, u64)>(), 0..4),
        prop::collection::vec(prop::collection::vec(entry, 1..6), 0..4),
        prop::option::of(any::<(u32, u32, u64, u32)>()),
        prop::collection::vec(any::<(u64, u64)>(), 0..5),
        prop::collection::vec(any::<u8>(), 1..40),
        prop::option::of((
            0x8000_0000u32..=u32::MAX,
            prop::collection::vec(any::<u8>(), 0..20),
        )),
        any::<bool>(),
    )
        .prop_map(
            |(dt, (maj, min), cpuid, msrs, batches, tsc, params, context, optional, packed)| {
                Model {
                    dom: DomainHeader {
                        domain_type: dt,
                        page_shift: 12,
                        xen_major: maj,
                        xen_minor: min,
                    },
                    cpuid: cpuid
                        .into_iter()
                        .map(|(leaf, subleaf, a, b, c, d)| CpuidLeaf {
                            leaf,
                            subleaf,
                            a,
                            b,
                            c,
                            d,
                        })
                        .collect(),
                    msrs: msrs
                        .into_iter()
                        .map(|(idx, flags, val)| MsrEntry { idx, flags, val })
                        .collect(),
                    batches,
                    tsc: tsc.map(|(mode, khz, nsec, incarnation)| TscInfo {
                        mode,
                        khz,
                        nsec,
                        incarnation,
                    }),
                    params,
                    context,
                    optional,
                    packed,
                }
            },
        )
}

fn codec(packed: bool) -> Codec {
    if packed {
        Codec::Lz4
    } else {
        Codec::Raw
    }
}

fn encode(m: &Model) -> Vec<u8> {
    let mut o = Vec::new();
    let mut e = Encoder::new();
    e.set_codec(codec(m.packed));
    e.headers(&mut o, &m.dom).unwrap();
    if !m.cpuid.is_empty() {
        e.cpuid_policy(&mut o, &m.cpuid).unwrap();
    }
    if !m.msrs.is_empty() {
        e.msr_policy(&mut o, &m.msrs).unwrap();
    }
    e.static_data_end(&mut o).unwrap();
    for b in &m.batches {
        let entries: Vec<PfnEntry> = b
            .iter()
            .map(|&(pfn, t, _)| PfnEntry {
                pfn,
                kind: PageType::from_nibble(t).unwrap(),
            })
            .collect();
        let pages: Vec<Vec<u8>> = b
            .iter()
            .filter(|&&(_, t, _)| PageType::from_nibble(t).unwrap().has_data())
            .map(|&(pfn, _, s)| page_for(s, pfn))
            .collect();
        let refs: Vec<&[u8]> = pages.iter().map(|p| p.as_slice()).collect();
        e.page_data(&mut o, &entries, &refs).unwrap();
    }
    if let Some((t, body)) = &m.optional {
        e.optional(&mut o, *t, body).unwrap();
    }
    if let Some(t) = &m.tsc {
        e.tsc_info(&mut o, t).unwrap();
    }
    let params: Vec<HvmParam> = m
        .params
        .iter()
        .map(|&(index, value)| HvmParam { index, value })
        .collect();
    e.hvm_params(&mut o, &params).unwrap();
    e.hvm_context(&mut o, &m.context).unwrap();
    e.end(&mut o).unwrap();
    o
}

/// Decodes `bytes` fed in pieces of `chunk` bytes back into a model.
fn decode(bytes: &[u8], chunk: usize, packed: bool) -> Result<Model, DecodeError> {
    let mut dec = Decoder::new(Limits::default());
    dec.set_codec(codec(packed));
    let mut m = Model {
        dom: DomainHeader {
            domain_type: DomainType::Arm,
            page_shift: 0,
            xen_major: 0,
            xen_minor: 0,
        },
        cpuid: vec![],
        msrs: vec![],
        batches: vec![],
        tsc: None,
        params: vec![],
        context: vec![],
        optional: None,
        packed,
    };
    for piece in bytes.chunks(chunk.max(1)) {
        let mut input = piece;
        while let Some(ev) = dec.next(&mut input)? {
            match ev {
                Event::ImageHeader(h) => assert_eq!(h, ImageHeader::CURRENT),
                Event::DomainHeader(d) => m.dom = d,
                Event::PageData { .. } => m.batches.push(vec![]),
                Event::Page { entry, data } => {
                    let seed = match data {
                        Some(d) => {
                            assert_eq!(d.len(), PAGE_SIZE);
                            let s = d[0];
                            assert_eq!(d, page_for(s, entry.pfn).as_slice());
                            s
                        }
                        None => 0,
                    };
                    m.batches
                        .last_mut()
                        .unwrap()
                        .push((entry.pfn, entry.kind.to_nibble(), seed));
                }
                Event::Delta { .. } => panic!("no delta was agreed on"),
                Event::Record(r) => match r {
                    Record::CpuidPolicy(p) => m.cpuid = p.iter().collect(),
                    Record::MsrPolicy(p) => m.msrs = p.iter().collect(),
                    Record::TscInfo(t) => m.tsc = Some(t),
                    Record::HvmParams(p) => {
                        m.params = p.iter().map(|p| (p.index, p.value)).collect()
                    }
                    Record::HvmContext(c) => m.context = c.to_vec(),
                    Record::Optional { rtype, body } => m.optional = Some((rtype, body.to_vec())),
                    _ => {}
                },
            }
        }
        assert!(input.is_empty() || dec.is_done());
    }
    assert!(dec.is_done());
    Ok(m)
}

/// Zeroes the seeds of pages that carry no data, as the decoder reports them.
fn normalise(mut m: Model) -> Model {
    for b in &mut m.batches {
        for e in b.iter_mut() {
            if !PageType::from_nibble(e.1).unwrap().has_data() {
                e.2 = 0;
            }
        }
    }
    m
}

/// Decodes whatever `bytes` hold with a decoder refusing and one accepting
/// packed pages; neither may panic or grow its buffers, and every page it
/// hands out is a whole page.
fn drain(bytes: &[u8], chunk: usize) {
    for c in [Codec::Raw, Codec::Lz4] {
        let mut dec = Decoder::new(Limits {
            max_record_body: 4096,
            max_batch: 64,
            max_pfn: 1 << 30,
        });
        dec.set_codec(c);
        // The decoder that takes packed pages takes deltas too.
        dec.set_delta(c == Codec::Lz4);
        let cap = dec.buffer_capacity();
        for piece in bytes.chunks(chunk.max(1)) {
            let mut input = piece;
            while let Ok(Some(ev)) = dec.next(&mut input) {
                match ev {
                    Event::Page { data: Some(d), .. } => assert_eq!(d.len(), PAGE_SIZE),
                    Event::Delta { entry, mask } => {
                        assert_eq!(mask.len(), PAGE_SIZE);
                        assert_eq!(entry.kind, PageType::Normal);
                    }
                    _ => {}
                }
            }
            if dec.is_done() {
                break;
            }
        }
        assert_eq!(dec.buffer_capacity(), cap);
    }
}

const SEAL_KEY: &[u8] = b"0123456789abcdef";

/// The hellos of a sealed migration (packed pages too, when `packed`).
fn sealed_hellos(packed: bool) -> (handshake::Hello, handshake::Hello) {
    let caps = if packed {
        Caps::ENCRYPTED.union(Caps::LZ4_PAGES)
    } else {
        Caps::ENCRYPTED
    };
    let s = handshake::Hello {
        role: handshake::Role::Source,
        nonce: [2; 16],
        verify: false,
        caps,
    };
    let d = handshake::Hello {
        role: handshake::Role::Destination,
        nonce: [1; 16],
        verify: false,
        caps,
    };
    (s, d)
}

/// `stream` sealed as the source sends it: the hello, then records, with a
/// record ended early at each of `cuts` (as at the end of a round).
fn seal(stream: &[u8], packed: bool, cuts: &[usize]) -> Vec<u8> {
    let (s, d) = sealed_hellos(packed);
    let sealer = Sealer::new(SEAL_KEY, &s, &d, Direction::SourceToDestination).unwrap();
    let mut out = Authenticated::sealed(s.to_bytes().to_vec(), sealer);
    let mut cuts: Vec<usize> = cuts.iter().map(|&c| c.min(stream.len())).collect();
    cuts.sort_unstable();
    let mut at = 0;
    for c in cuts {
        out.put(&stream[at..c]).unwrap();
        out.flush_record().unwrap();
        at = c;
    }
    out.put(&stream[at..]).unwrap();
    let (mut wire, tail) = out.finish();
    wire.extend_from_slice(&tail);
    wire
}

/// What a receiver hands out, owned: each event's debug text, pages as
/// their pfn, type and a hash of the data.
fn owned(ev: &Event<'_>) -> String {
    use std::hash::{Hash, Hasher};
    match ev {
        Event::Page { entry, data } => {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            data.hash(&mut h);
            format!("page {} {:?} {:x}", entry.pfn, entry.kind, h.finish())
        }
        Event::Record(Record::HvmContext(c)) => format!("context {c:?}"),
        other => format!("{other:?}"),
    }
}

/// Feeds `wire` in `chunk`-byte pieces to a receiver that requires
/// encryption: the events, whether it authenticated, the error if any.
fn receive_sealed(wire: &[u8], chunk: usize, packed: bool) -> (Vec<String>, bool, Option<RxError>) {
    let (_, d) = sealed_hellos(packed);
    let mut rx = Receiver::new(SEAL_KEY, d, Limits::default()).unwrap();
    let mut events = Vec::new();
    for piece in wire.chunks(chunk.max(1)) {
        let mut input = piece;
        loop {
            match rx.push(&mut input) {
                Ok(Some(RxEvent::Stream(ev))) => events.push(owned(&ev)),
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(e) => return (events, rx.is_authenticated(), Some(e)),
            }
        }
    }
    (events, rx.is_authenticated(), None)
}

/// The events of the clear stream, as a plain decoder gives them.
fn clear_events(stream: &[u8], packed: bool) -> Vec<String> {
    let mut dec = Decoder::new(Limits::default());
    dec.set_codec(codec(packed));
    let mut input = stream;
    let mut events = Vec::new();
    while let Ok(Some(ev)) = dec.next(&mut input) {
        events.push(owned(&ev));
    }
    events
}

/// A stream of two rounds over `pfns`: round 1 sends `old` pages whole,
/// round 2 the `new` ones with the old as bases (deltas where smaller).
fn delta_stream(pfns: &[u64], old: &[Vec<u8>], new: &[Vec<u8>], codec: Codec) -> Vec<u8> {
    let mut out = Vec::new();
    let mut e = Encoder::new();
    e.set_codec(codec);
    e.set_delta(true);
    e.headers(
        &mut out,
        &DomainHeader {
            domain_type: DomainType::X86Hvm,
            page_shift: 12,
            xen_major: 4,
            xen_minor: 20,
        },
    )
    .unwrap();
    e.static_data_end(&mut out).unwrap();
    let entries: Vec<PfnEntry> = pfns.iter().map(|&p| PfnEntry::normal(p)).collect();
    let olds: Vec<&[u8]> = old.iter().map(Vec::as_slice).collect();
    let news: Vec<&[u8]> = new.iter().map(Vec::as_slice).collect();
    let none: Vec<Option<&[u8]>> = vec![None; pfns.len()];
    e.page_data_delta(&mut out, &entries, &olds, &none).unwrap();
    let bases: Vec<Option<&[u8]>> = olds.iter().map(|&o| Some(o)).collect();
    e.page_data_delta(&mut out, &entries, &news, &bases)
        .unwrap();
    e.hvm_context(&mut out, &[1]).unwrap();
    e.end(&mut out).unwrap();
    out
}

/// Applies a stream as a destination would: pages written, deltas XORed
/// into what the frame holds (refused for a frame never written).
fn apply(bytes: &[u8], chunk: usize) -> Result<BTreeMap<u64, Vec<u8>>, String> {
    let mut dec = Decoder::new(Limits::default());
    dec.set_codec(Codec::Lz4);
    dec.set_delta(true);
    let mut mem: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
    for piece in bytes.chunks(chunk.max(1)) {
        let mut input = piece;
        while let Some(ev) = dec.next(&mut input).map_err(|e| format!("{e:?}"))? {
            match ev {
                Event::Page {
                    entry,
                    data: Some(d),
                } => {
                    mem.insert(entry.pfn, d.to_vec());
                }
                Event::Delta { entry, mask } => {
                    let page = mem.get_mut(&entry.pfn).ok_or("delta without base")?;
                    delta::xor_into(page, mask);
                }
                _ => {}
            }
        }
    }
    Ok(mem)
}

/// `base` with `changes` (offset, xor) applied.
fn changed(base: &[u8], changes: &[(usize, u8)]) -> Vec<u8> {
    let mut p = base.to_vec();
    for &(at, x) in changes {
        p[at % PAGE_SIZE] ^= x;
    }
    p
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn a_delta_round_trips_and_is_smaller_than_a_page(
        seed in 1u8..=255,
        changes in prop::collection::vec((0usize..PAGE_SIZE, any::<u8>()), 0..40),
    ) {
        let old = page_for(seed, 7);
        let new = changed(&old, &changes);
        let mut out = vec![0u8; delta::MAX_PAYLOAD];
        let n = delta::encode(&new, &old, &mut out).expect("a few bytes fit");
        // Each change costs at most its byte and a pair's four length bytes.
        prop_assert!(n <= changes.len() * 5);
        let mut mask = vec![0u8; PAGE_SIZE];
        delta::decode(&out[..n], &mut mask).unwrap();
        let mut back = old.clone();
        delta::xor_into(&mut back, &mask);
        prop_assert_eq!(back, new);
    }

    #[test]
    fn any_payload_decodes_to_one_page_or_is_refused(
        payload in prop::collection::vec(any::<u8>(), 0..5000),
    ) {
        let mut mask = vec![0xAAu8; PAGE_SIZE];
        match delta::decode(&payload, &mut mask) {
            Ok(()) => prop_assert!(payload.len() < PAGE_SIZE),
            Err(_) => prop_assert!(mask.iter().all(|&b| b == 0)),
        }
        prop_assert_eq!(mask.len(), PAGE_SIZE);
    }

    #[test]
    fn delta_streams_rebuild_the_new_pages_under_any_split(
        seeds in prop::collection::vec(any::<u8>(), 1..12),
        changes in prop::collection::vec((0usize..PAGE_SIZE, any::<u8>()), 0..30),
        noisy in any::<prop::sample::Index>(),
        lz4 in any::<bool>(),
        chunk in prop_oneof![Just(1usize), 2usize..700, Just(1 << 20)],
    ) {
        let pfns: Vec<u64> = (0..seeds.len() as u64).map(|i| i * 3 + 1).collect();
        let old: Vec<Vec<u8>> = seeds.iter().zip(&pfns).map(|(&s, &p)| page_for(s, p)).collect();
        let mut new: Vec<Vec<u8>> = old.iter().map(|o| changed(o, &changes)).collect();
        // One page rewritten entirely: a delta would not be smaller.
        let k = noisy.index(new.len());
        new[k] = page_for(1, 99);
        let codec = if lz4 { Codec::Lz4 } else { Codec::Raw };
        let bytes = delta_stream(&pfns, &old, &new, codec);
        let mem = apply(&bytes, chunk).unwrap();
        for (p, want) in pfns.iter().zip(&new) {
            prop_assert_eq!(&mem[p], want);
        }
        // Never larger than the same pages without deltas (plus a delta
        // record's header and padding).
        let mut e = Encoder::new();
        e.set_codec(codec);
        let plain = {
            let mut out = Vec::new();
            e.headers(&mut out, &DomainHeader { domain_type: DomainType::X86Hvm, page_shift: 12, xen_major: 4, xen_minor: 20 }).unwrap();
            e.static_data_end(&mut out).unwrap();
            let entries: Vec<PfnEntry> = pfns.iter().map(|&p| PfnEntry::normal(p)).collect();
            let olds: Vec<&[u8]> = old.iter().map(Vec::as_slice).collect();
            let news: Vec<&[u8]> = new.iter().map(Vec::as_slice).collect();
            e.page_data(&mut out, &entries, &olds).unwrap();
            e.page_data(&mut out, &entries, &news).unwrap();
            e.hvm_context(&mut out, &[1]).unwrap();
            e.end(&mut out).unwrap();
            out
        };
        prop_assert!(bytes.len() <= plain.len() + 8 + 8 + 8);
    }

    #[test]
    fn mutated_delta_streams_never_panic(
        seeds in prop::collection::vec(any::<u8>(), 1..6),
        changes in prop::collection::vec((0usize..PAGE_SIZE, any::<u8>()), 0..10),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        chunk in 1usize..3000,
    ) {
        let pfns: Vec<u64> = (0..seeds.len() as u64).collect();
        let old: Vec<Vec<u8>> = seeds.iter().zip(&pfns).map(|(&s, &p)| page_for(s, p)).collect();
        let new: Vec<Vec<u8>> = old.iter().map(|o| changed(o, &changes)).collect();
        let mut bytes = delta_stream(&pfns, &old, &new, Codec::Raw);
        for (i, x) in flips {
            let at = i.index(bytes.len());
            bytes[at] ^= x | 1;
        }
        drain(&bytes, chunk);
        let _ = apply(&bytes, chunk);
    }

    #[test]
    fn encode_decode_identity(m in model(), chunk in prop_oneof![Just(1usize), 2usize..64, Just(4096), Just(1 << 20)]) {
        let bytes = encode(&m);
        let back = decode(&bytes, chunk, m.packed).unwrap();
        prop_assert_eq!(back, normalise(m.clone()));
        // Packed pages that were not agreed on are refused, never read.
        if m.packed && !m.batches.is_empty() {
            prop_assert_eq!(
                decode(&bytes, chunk, false).unwrap_err(),
                DecodeError::NotNegotiated(rec::DEPMIG_PACKED_PAGES)
            );
        }
    }

    #[test]
    fn packed_costs_at_most_a_descriptor_a_page(m in model()) {
        let raw = encode(&Model { packed: false, ..m.clone() });
        let packed = encode(&Model { packed: true, ..m.clone() });
        // Each page costs at most its 4-byte descriptor more, plus padding.
        let pages: usize = m.batches.iter().map(Vec::len).sum();
        prop_assert!(packed.len() <= raw.len() + pages * 4 + m.batches.len() * 8);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2048), chunk in 1usize..300) {
        drain(&bytes, chunk);
        let mut sc = XlStreamScanner::new(1 << 16, Limits::default());
        for piece in bytes.chunks(chunk) {
            if sc.push(piece, &mut |_| {}).is_err() {
                break;
            }
        }
        let mine = handshake::Hello { role: handshake::Role::Destination, nonce: [1; 16], verify: false, caps: Caps::LZ4_PAGES };
        let mut rx = Receiver::new(b"0123456789abcdef", mine, Limits::default()).unwrap();
        // A valid source hello first, so the garbage reaches the stream.
        let mut hello = handshake::Hello { role: handshake::Role::Source, nonce: [2; 16], verify: false, caps: Caps::LZ4_PAGES }.to_bytes().to_vec();
        hello.extend_from_slice(&bytes);
        for piece in hello.chunks(chunk) {
            let mut input = piece;
            while let Ok(Some(_)) = rx.push(&mut input) {}
        }
        prop_assert!(!rx.is_authenticated());
    }

    #[test]
    fn valid_head_then_garbage_never_panics(m in model(), tail in prop::collection::vec(any::<u8>(), 0..600), keep in 0usize..200) {
        let bytes = encode(&m);
        let keep = (40 + keep).min(bytes.len());
        let mut s = bytes[..keep].to_vec();
        s.extend_from_slice(&tail);
        drain(&s, 7);
    }

    #[test]
    fn mutated_valid_stream_never_panics(m in model(), flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8), chunk in 1usize..5000) {
        let mut bytes = encode(&m);
        for (i, x) in flips {
            let at = i.index(bytes.len());
            bytes[at] ^= x | 1;
        }
        drain(&bytes, chunk);
        let mut counter = RoundCounter::new();
        let mut sc = XlStreamScanner::new(64, Limits::default());
        let mut wrapped = 0x4c69_6278_6c46_6d74u64.to_be_bytes().to_vec();
        wrapped.extend_from_slice(&[0, 0, 0, 2, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0]);
        wrapped.extend_from_slice(&bytes);
        let _ = sc.push(&wrapped, &mut |ev| if let XlEvent::Libxc(e) = ev { counter.observe(&e) });
        let _ = counter.finish();
    }

    #[test]
    fn sealed_stream_arrives_as_sent(m in model(), chunk in prop_oneof![Just(1usize), 2usize..5000, Just(1 << 20)], cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..4)) {
        let stream = encode(&m);
        let cuts: Vec<usize> = cuts.iter().map(|i| i.index(stream.len() + 1)).collect();
        let wire = seal(&stream, m.packed, &cuts);
        let (events, ok, err) = receive_sealed(&wire, chunk, m.packed);
        prop_assert_eq!(err, None);
        prop_assert!(ok);
        prop_assert_eq!(events, clear_events(&stream, m.packed));
    }

    #[test]
    fn altered_sealed_stream_is_never_authenticated(m in model(), flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6), chunk in 1usize..5000, cut in any::<prop::sample::Index>()) {
        let stream = encode(&m);
        let mut wire = seal(&stream, m.packed, &[cut.index(stream.len() + 1)]);
        let hello = handshake::HELLO_LEN;
        for (i, x) in flips {
            let at = hello + i.index(wire.len() - hello);
            wire[at] ^= x | 1;
        }
        let (events, ok, _) = receive_sealed(&wire, chunk, m.packed);
        prop_assert!(!ok);
        // Nothing altered reached the decoder: what came out is a prefix
        // of the true stream's events.
        let truth = clear_events(&stream, m.packed);
        prop_assert!(events.len() <= truth.len());
        prop_assert_eq!(&truth[..events.len()], &events[..]);
    }

    #[test]
    fn sealed_stream_cut_or_spliced_is_never_authenticated(m in model(), keep in any::<prop::sample::Index>(), junk in prop::collection::vec(any::<u8>(), 0..64), chunk in 1usize..5000) {
        let stream = encode(&m);
        let wire = seal(&stream, m.packed, &[stream.len() / 2]);
        // Cut anywhere after the hello, then garbage (or nothing).
        let hello = handshake::HELLO_LEN;
        let keep = hello + keep.index(wire.len() - hello);
        let mut cut = wire[..keep].to_vec();
        cut.extend_from_slice(&junk);
        if cut != wire {
            let (events, ok, _) = receive_sealed(&cut, chunk, m.packed);
            prop_assert!(!ok);
            let truth = clear_events(&stream, m.packed);
            prop_assert_eq!(&truth[..events.len()], &events[..]);
        }
    }

    #[test]
    fn hostile_records_never_panic(len in any::<u32>(), flags in any::<u8>(), body in prop::collection::vec(any::<u8>(), 0..2048), chunk in 1usize..300) {
        let (s, _) = sealed_hellos(false);
        let mut wire = s.to_bytes().to_vec();
        wire.extend_from_slice(b"DS");
        wire.push(flags);
        wire.push(0);
        wire.extend_from_slice(&(len % (MAX_RECORD_PLAINTEXT as u32 + 64)).to_le_bytes());
        wire.extend_from_slice(&body);
        let (events, ok, _) = receive_sealed(&wire, chunk, false);
        prop_assert!(!ok);
        prop_assert!(events.is_empty());
        let (events, ok, _) = receive_sealed(&[&s.to_bytes()[..], &body].concat(), chunk, false);
        prop_assert!(!ok);
        prop_assert!(events.is_empty());
    }
}
