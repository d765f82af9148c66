//! The starting corpus of each target, made with the crates' own encoders
//! so that every seed is a valid input that reaches deep: a complete
//! authentic migration, well-formed replies and events, a consistent
//! guest, a conversation with a well-behaved backend. The files under
//! `fuzz/seeds/<target>/` are these bytes (the tests check they match).

use depmig_stream::libxl::{librec, LIBXL_IDENT, LIBXL_VERSION};
use depmig_stream::{
    CpuidLeaf, DomainHeader, DomainType, Encoder, HvmParam, MsrEntry, PageType, PfnEntry, TscInfo,
    PAGE_SIZE,
};
use xenstore_wire::{Header, MsgType};

use crate::stream::{self, MODE_DECODER, MODE_RAW, MODE_SIGNED, MODE_XL};

/// A named seed.
pub type Seed = (&'static str, Vec<u8>);

/// The targets, each with its seeds.
pub fn all() -> Vec<(&'static str, Vec<Seed>)> {
    vec![
        ("stream", stream_seeds()),
        ("xenstore", xenstore_seeds()),
        ("walker", walker_seeds()),
        ("netfront", netfront_seeds()),
        ("report", report_seeds()),
        ("verify", verify_seeds()),
        ("twohost", twohost_seeds()),
    ]
}

/// Shell byte of the stream seeds: 64 frames, rings at 62 and 63, none
/// populated, batches of 64.
const SHELL_64: u8 = 1;

fn head(e: &mut Encoder, out: &mut Vec<u8>) {
    let d = DomainHeader {
        domain_type: DomainType::X86Hvm,
        page_shift: 12,
        xen_major: 4,
        xen_minor: 17,
    };
    // PANICS: a fixed, valid stream.
    e.headers(out, &d).expect("headers");
}

fn tail(e: &mut Encoder, out: &mut Vec<u8>) {
    e.tsc_info(
        out,
        &TscInfo {
            mode: 0,
            khz: 2_000_000,
            nsec: 123_456_789,
            incarnation: 1,
        },
    )
    .expect("tsc");
    let params = [
        HvmParam {
            index: 1,
            value: 62,
        },
        HvmParam {
            index: 17,
            value: 63,
        },
        HvmParam {
            index: 12,
            value: 0xfeff_d000,
        },
    ];
    e.hvm_params(out, &params).expect("params");
    e.hvm_context(out, &[0x5a; 24]).expect("context");
}

/// A complete migration of a 64-frame guest: one page of data, one frame
/// free at the copy round, one hole, a ring frame, then the CPU state.
pub fn migration() -> Vec<u8> {
    let mut out = Vec::new();
    let mut e = Encoder::new();
    head(&mut e, &mut out);
    e.static_data_end(&mut out).expect("static end");
    let page: Vec<u8> = (0..PAGE_SIZE).map(|i| (i % 251) as u8).collect();
    let entries = [
        PfnEntry::normal(3),
        PfnEntry {
            pfn: 4,
            kind: PageType::XAlloc,
        },
        PfnEntry {
            pfn: 5,
            kind: PageType::XTab,
        },
        PfnEntry {
            pfn: 62,
            kind: PageType::XAlloc,
        },
    ];
    e.page_data(&mut out, &entries, &[&page]).expect("pages");
    tail(&mut e, &mut out);
    e.end(&mut out).expect("end");
    out
}

/// A stream with every record type the decoder reads and no page data,
/// in two parts: up to its CHECKPOINT, and the checkpoint after it (an xl
/// stream puts libxl records between the two).
pub fn small_stream() -> (Vec<u8>, Vec<u8>) {
    let mut out = Vec::new();
    let mut e = Encoder::new();
    head(&mut e, &mut out);
    e.cpuid_policy(
        &mut out,
        &[CpuidLeaf {
            leaf: 0,
            subleaf: u32::MAX,
            a: 0xd,
            b: 0x756e_6547,
            c: 0x6c65_746e,
            d: 0x4965_6e69,
        }],
    )
    .expect("cpuid");
    e.msr_policy(
        &mut out,
        &[MsrEntry {
            idx: 0xce,
            flags: 0,
            val: 0x8000_0000,
        }],
    )
    .expect("msr");
    e.static_data_end(&mut out).expect("static end");
    let holes = [
        PfnEntry {
            pfn: 9,
            kind: PageType::XTab,
        },
        PfnEntry {
            pfn: 10,
            kind: PageType::XAlloc,
        },
    ];
    e.page_data(&mut out, &holes, &[]).expect("pages");
    e.optional(&mut out, 0x8000_0042, b"opt").expect("optional");
    e.verify(&mut out).expect("verify");
    e.page_data(&mut out, &holes[..1], &[]).expect("pages");
    tail(&mut e, &mut out);
    e.checkpoint(&mut out).expect("checkpoint");
    let mut next = Vec::new();
    e.page_data(&mut next, &holes[1..], &[]).expect("pages");
    tail(&mut e, &mut next);
    e.end(&mut next).expect("end");
    (out, next)
}

fn stream_seeds() -> Vec<Seed> {
    let m = migration();
    let mut signed = vec![MODE_SIGNED, 0xf0, SHELL_64, 0, 0];
    signed.extend_from_slice(&m);
    // The same migration as the source sends it, in 1-16 byte segments
    // into a 100-byte receive buffer.
    let mut raw = vec![MODE_RAW, 0x40, SHELL_64, 0, 2];
    raw.extend_from_slice(&stream::sign(&m));
    let (first, second) = small_stream();
    let mut dec = vec![MODE_DECODER, 0x20, 0x02, 0x02, 0x02];
    dec.extend_from_slice(&first);
    dec.extend_from_slice(&second);
    let mut xl = vec![MODE_XL, 0x30, 1];
    xl.extend_from_slice(b"xl preamble\n");
    xl.extend_from_slice(&LIBXL_IDENT.to_be_bytes());
    xl.extend_from_slice(&LIBXL_VERSION.to_be_bytes());
    xl.extend_from_slice(&0u32.to_be_bytes());
    let record = |v: &mut Vec<u8>, rtype: u32, body: &[u8]| {
        v.extend_from_slice(&rtype.to_le_bytes());
        v.extend_from_slice(&(body.len() as u32).to_le_bytes());
        v.extend_from_slice(body);
        v.resize(v.len() + (8 - body.len() % 8) % 8, 0);
    };
    record(&mut xl, librec::EMULATOR_XENSTORE_DATA, b"vnc\0");
    record(&mut xl, librec::LIBXC_CONTEXT, b"");
    xl.extend_from_slice(&first);
    record(&mut xl, librec::EMULATOR_CONTEXT, &[7; 12]);
    record(&mut xl, librec::CHECKPOINT_END, b"");
    record(&mut xl, librec::LIBXC_CONTEXT, b"");
    xl.extend_from_slice(&second);
    record(&mut xl, librec::EMULATOR_CONTEXT, &[7; 12]);
    record(&mut xl, librec::END, b"");
    vec![
        ("signed-migration", signed),
        ("raw-migration", raw),
        ("decoder-records", dec),
        ("decoder-packed", packed_seed()),
        ("decoder-delta", delta_seed()),
        ("xl-stream", xl),
    ]
}

/// Decoder mode with packed pages accepted: one packed record holding an
/// LZ4 page, a raw (noise) page, a zero page and a hole.
fn packed_seed() -> Vec<u8> {
    let mut out = vec![MODE_DECODER | 4, 0x20, 0x02, 0x02, 0x02];
    let mut e = Encoder::new();
    e.set_codec(depmig_stream::Codec::Lz4);
    head(&mut e, &mut out);
    e.static_data_end(&mut out).expect("static end");
    let text: Vec<u8> = (0..PAGE_SIZE).map(|i| b"depmig page "[i % 12]).collect();
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let noise: Vec<u8> = (0..PAGE_SIZE)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let zero = [0u8; PAGE_SIZE];
    let entries = [
        PfnEntry::normal(1),
        PfnEntry::normal(2),
        PfnEntry {
            pfn: 3,
            kind: PageType::XTab,
        },
        PfnEntry::normal(4),
    ];
    e.page_data(&mut out, &entries, &[&text, &noise, &zero])
        .expect("packed pages");
    tail(&mut e, &mut out);
    e.end(&mut out).expect("end");
    out
}

/// Decoder mode with packed pages and deltas accepted: two pages whole,
/// then both again, one as a delta (a few bytes changed) and one whole
/// (rewritten), then a hole.
fn delta_seed() -> Vec<u8> {
    let mut out = vec![MODE_DECODER | 4 | 8, 0x20, 0x02, 0x02, 0x02];
    let mut e = Encoder::new();
    e.set_codec(depmig_stream::Codec::Lz4);
    e.set_delta(true);
    head(&mut e, &mut out);
    e.static_data_end(&mut out).expect("static end");
    let text: Vec<u8> = (0..PAGE_SIZE).map(|i| b"depmig page "[i % 12]).collect();
    let mut edited = text.clone();
    edited[100..108].copy_from_slice(b"changed!");
    edited[4000] ^= 0x20;
    let other: Vec<u8> = (0..PAGE_SIZE).map(|i| (i * 7 % 251) as u8).collect();
    let entries = [PfnEntry::normal(1), PfnEntry::normal(2)];
    e.page_data_delta(&mut out, &entries, &[&text, &text], &[None, None])
        .expect("whole pages");
    e.page_data_delta(
        &mut out,
        &entries,
        &[&edited, &other],
        &[Some(&text), Some(&text)],
    )
    .expect("a delta and a page");
    e.page_data(
        &mut out,
        &[PfnEntry {
            pfn: 3,
            kind: PageType::XTab,
        }],
        &[],
    )
    .expect("a hole");
    tail(&mut e, &mut out);
    e.end(&mut out).expect("end");
    out
}

fn message(ty: MsgType, req_id: u32, payload: &[u8]) -> Vec<u8> {
    let h = Header {
        ty: ty as u32,
        req_id,
        tx_id: 0,
        len: payload.len() as u32,
    };
    let mut v = h.encode().to_vec();
    v.extend_from_slice(payload);
    v
}

/// A xenstore program: request byte, start index, then the messages
/// written at most 256 bytes at a time, each write followed by two
/// consumer turns.
fn xs_program(request: u8, start: u8, messages: &[Vec<u8>]) -> Vec<u8> {
    let mut p = vec![request, start];
    for m in messages {
        for piece in m.chunks(256) {
            p.push(0);
            p.push((piece.len() - 1) as u8);
            p.extend_from_slice(piece);
            p.push(7 | 1 << 3);
        }
    }
    p
}

fn xenstore_seeds() -> Vec<Seed> {
    let mut encode = vec![1u8, 0, 6 | 1 << 3, 5];
    encode.extend_from_slice(&8u16.to_le_bytes());
    encode.extend_from_slice(b"data/big");
    encode.extend_from_slice(&5u16.to_le_bytes());
    encode.extend_from_slice(b"value");
    encode.extend_from_slice(&0u32.to_le_bytes());
    encode.push(0);
    vec![
        (
            "read-reply",
            xs_program(0, 0, &[message(MsgType::Read, 1, b"4")]),
        ),
        (
            "directory-reply",
            xs_program(
                2,
                0,
                &[message(MsgType::Directory, 2, b"0\0backend\0state\0")],
            ),
        ),
        (
            "transaction-reply",
            xs_program(3, 0, &[message(MsgType::TransactionStart, 3, b"42\0")]),
        ),
        (
            "error-and-ok",
            xs_program(
                1,
                0,
                &[
                    message(MsgType::Error, 4, b"ENOENT\0"),
                    message(MsgType::Write, 5, b"OK\0"),
                ],
            ),
        ),
        (
            // Starts four bytes before the indices wrap.
            "watch-event-at-wrap",
            xs_program(
                7,
                0xff,
                &[message(
                    MsgType::WatchEvent,
                    0,
                    b"data/depmig/request\0tok\0",
                )],
            ),
        ),
        (
            "large-value",
            xs_program(0, 0x10, &[message(MsgType::Read, 6, &[b'v'; 1500])]),
        ),
        ("encode-write", encode),
    ]
}

fn walker_seeds() -> Vec<Seed> {
    // A write program: op, u32 offset into its region, value.
    let word = |op: u8, off: u32, v: u64| {
        let mut w = vec![op];
        w.extend_from_slice(&off.to_le_bytes());
        w.extend_from_slice(&v.to_le_bytes());
        w
    };
    let mut poked = vec![0x00];
    // A pointer into the direct map in a process object, a table entry in
    // the kernel's objects, a hole somewhere.
    poked.extend(word(2 << 3 | 1 << 6, 0x98, 0x1234_5678));
    poked.extend(word(2 << 6, 0x2000, 1100));
    poked.push(7 | 6 << 3);
    poked.extend_from_slice(&(1300u32 * 4096).to_le_bytes());
    vec![
        ("guest-4-level", vec![0x00]),
        ("guest-5-level", vec![0x01]),
        ("guest-4-level-cached", vec![0x02 | 1 << 6]),
        ("guest-5-level-cached-small", vec![0x03]),
        ("guest-small-limits", vec![0x08]),
        ("guest-poked", poked),
        ("guest-4-level-6.12-page-types", vec![0x20]),
        ("guest-5-level-6.12-page-types-cached", vec![0x23 | 1 << 6]),
    ]
}

fn netfront_seeds() -> Vec<Seed> {
    let transmit = |len: u16, fill: u8| {
        let mut v = vec![0];
        v.extend_from_slice(&len.to_le_bytes());
        v.push(fill);
        v
    };
    let deliver = |how: u8, data: &[u8]| {
        let mut v = vec![3, how];
        v.extend_from_slice(&(data.len() as u16).to_le_bytes());
        v.extend_from_slice(data);
        v
    };
    let mut traffic = Vec::new();
    traffic.extend(transmit(60, 0xab));
    traffic.extend(transmit(1514, 0xcd));
    traffic.extend([2, 0, 2, 0, 10]);
    traffic.extend(deliver(0, &[0x11; 60]));
    traffic.extend(deliver(0, &[0x22; 1514]));
    traffic.extend([10, 12, 12, 15]);
    let mut chains = Vec::new();
    // An error status, a two-slot chain, an extra-info slot and its
    // companion, then a frame.
    chains.extend([3, 0x10, 0, 0]);
    chains.extend(deliver(1 << 1, &[0x33; 100]));
    chains.extend(deliver(0, &[0x34; 100]));
    chains.extend(deliver(2 << 1, &[0x35; 60]));
    chains.extend(deliver(0, &[0x36; 8]));
    chains.extend(deliver(0, &[0x37; 64]));
    chains.extend([15]);
    let mut config = vec![14, 18];
    config.extend_from_slice(b"00:16:3e:0a:bc:ff\0");
    config.extend([14, 2, b'4', b'\n']);
    vec![
        ("traffic", traffic),
        ("dropped-chains", chains),
        ("config-values", config),
    ]
}

/// The `report` target's seeds: the reports `depmig`'s own tests hold as
/// golden texts (a finished two-round migration, one that failed before
/// its first round).
fn report_seeds() -> Vec<Seed> {
    vec![
        (
            "two-rounds-finished",
            include_bytes!("../../tools/depmig/tests/data/report-two-rounds-finished.json")
                .to_vec(),
        ),
        (
            "without-figures",
            include_bytes!("../../tools/depmig/tests/data/report-without-figures.json").to_vec(),
        ),
    ]
}

/// The ten guest bytes of the `verify` target: size index, density, layout
/// seed, the two ring frames.
fn verify_guest(size: u8, density: u8, seed: u32, rings: [u16; 2]) -> Vec<u8> {
    let mut g = vec![size, density];
    g.extend_from_slice(&seed.to_le_bytes());
    g.extend_from_slice(&rings[0].to_le_bytes());
    g.extend_from_slice(&rings[1].to_le_bytes());
    g
}

/// The `verify` target's seeds: what an honest source and destination
/// send each other over a guest of 100 frames (equal, or with a frame of
/// the shell changed), of 1100 (one frame changed in its second range)
/// and of 8193 (two RANGES messages), fed raw and tagged to either side;
/// a reply in place of the verdict; and both sides against each other.
fn verify_seeds() -> Vec<Seed> {
    use crate::verify::{
        transcript, untag, MODE_DEST_RAW, MODE_DEST_TAGGED, MODE_PAIR, MODE_SOURCE_RAW,
        MODE_SOURCE_TAGGED,
    };
    use depmig_stream::Direction::{DestinationToSource as D2S, SourceToDestination as S2D};
    let small = verify_guest(2, 0x5a, 7, [98, 99]);
    let mid = verify_guest(5, 0x9c, 11, [600, 0]);
    let big = verify_guest(7, 0x41, 13, [8000, 8001]);
    // Frame 40 gone from the guest; frame 527's page (sent as free)
    // reused in it. (Changes at the source: the destination's side of
    // modes 0 and 1 has the shell as the stream left it.)
    let gone40 = [1, 3, 40, 0];
    let unfree527 = [1, 2, 0x0f, 0x02];
    let (small_eq_s, small_eq_d) = transcript(&small, &[0]);
    let (small_ne_s, small_ne_d) = transcript(&small, &gone40);
    let (mid_ne_s, mid_ne_d) = transcript(&mid, &unfree527);
    let (big_s, _) = transcript(&big, &[0]);
    let seed = |mode: u8, cuts: u8, guest: &[u8], extra: &[u8], wire: &[u8]| {
        let mut v = vec![mode, cuts];
        v.extend_from_slice(guest);
        v.extend_from_slice(extra);
        v.extend_from_slice(wire);
        v
    };
    let split = |n: u16| n.to_le_bytes();
    // A NAK in place of the verdict (its tag is the reply's business).
    let mut reply = b"DMNAKVER".to_vec();
    reply.extend_from_slice(&[0x33; 32]);
    vec![
        (
            "dest-raw-equal",
            seed(MODE_DEST_RAW, 0xf0, &small, &split(0), &small_eq_s),
        ),
        (
            // The source's messages on the changed frame, with the first
            // 30 bytes read along with the trailer.
            "dest-raw-frame-changed",
            seed(MODE_DEST_RAW, 0x40, &small, &split(30), &small_ne_s),
        ),
        (
            "dest-tagged-frame-unfree",
            seed(
                MODE_DEST_TAGGED,
                0xf0,
                &mid,
                &split(0),
                &untag(&mid_ne_s, S2D),
            ),
        ),
        (
            "dest-tagged-two-messages",
            seed(MODE_DEST_TAGGED, 0x30, &big, &split(0), &untag(&big_s, S2D)),
        ),
        (
            "source-raw-verdict",
            seed(MODE_SOURCE_RAW, 0xf0, &small, &[1], &small_eq_d),
        ),
        (
            "source-raw-narrowed",
            seed(MODE_SOURCE_RAW, 0x20, &small, &[0], &small_ne_d),
        ),
        (
            "source-tagged-narrowed",
            seed(MODE_SOURCE_TAGGED, 0xf0, &mid, &[1], &untag(&mid_ne_d, D2S)),
        ),
        (
            "source-reply",
            seed(MODE_SOURCE_RAW, 0xf0, &small, &[0], &reply),
        ),
        (
            "source-uncovered",
            seed(MODE_SOURCE_RAW, 0xf0, &small, &[2], &[]),
        ),
        ("pair-equal", seed(MODE_PAIR, 0xf0, &mid, &[1, 0], &[])),
        (
            // A flipped byte (frame 42), a lost frame (550, sent as
            // free), a frame no longer free (138).
            "pair-changes",
            seed(
                MODE_PAIR,
                0x50,
                &mid,
                &[1, 3, 0, 42, 0, 1, 0x26, 0x02, 2, 138, 0],
                &[],
            ),
        ),
        (
            "pair-two-messages-gone",
            seed(MODE_PAIR, 0xf0, &big, &[0, 1, 3, 61, 0], &[]),
        ),
    ]
}

/// The `twohost` target's seeds: a whole conversation each way as the two
/// ends send it, a prepare message and a reply built field by field, and
/// a status request at the line cap and one byte over it.
fn twohost_seeds() -> Vec<Seed> {
    use crate::twohost::{MODE_CAP, MODE_MESSAGES, MODE_REPLIES, MODE_REQUESTS};
    use depmig_cli::twohost::protocol::{encode, Liveness, Prepare, Reply, Request, VERSION};
    let prepare = Prepare {
        guest: "guest".into(),
        config: "name = \"guest\"\ntype = \"pvh\"\nmemory = 512\n".into(),
        key: "ab".repeat(32),
        ip: "10.77.0.22".into(),
        prefix: 24,
        port: 7100,
        mode: "baseline".into(),
        policy: "xen-4".into(),
        verify: true,
        compress: "lz4".into(),
        encrypt: "on".into(),
        delta_cache_mib: 64,
        appliance_memory_mib: 64,
        link_rate: Some("100Mb/s".into()),
        fault: Some("corrupt-page".into()),
    };
    let mut requests = vec![MODE_REQUESTS];
    for r in [
        Request::Hello { version: VERSION },
        Request::Prepare(Box::new(prepare)),
        Request::Status {},
        Request::Abort {
            reason: "the source's appliance stopped".into(),
        },
        Request::Query {
            guest: "guest".into(),
        },
        Request::Done {},
    ] {
        requests.extend(encode(&r));
    }
    requests.extend_from_slice(b"{\"msg\":\"source-stopped\",\"source_domid\":5}\n");
    let mut replies = vec![MODE_REPLIES];
    for r in [
        Reply::Hello { version: VERSION },
        Reply::Ready {
            ip: "10.77.0.22".into(),
            port: 7100,
            shell_domid: 9,
        },
        Reply::Status {
            state: Some("receiving".into()),
            appliance: Liveness::Alive,
            clock_unix_ms: Some(1_800_000_000_123),
        },
        Reply::Running {
            domid: 9,
            unpaused_unix_ms: Some(1_800_000_000_456),
        },
        Reply::Absent {
            reason: "aborted".into(),
        },
        Reply::Unsettled {
            reason: "stuck".into(),
        },
        Reply::Refused {
            reason: "no".into(),
        },
        Reply::Bye {},
    ] {
        replies.extend(encode(&r));
    }
    // A prepare built field by field: its config a fragment repeated.
    let text = |t: &[u8]| {
        let mut v = vec![t.len() as u8];
        v.extend_from_slice(t);
        v
    };
    let mut built = vec![MODE_MESSAGES, 0, 1, 0x0f];
    built.extend(text(b"guest"));
    built.extend_from_slice(&[0xff, 0x00, 0x01, 12]);
    built.extend_from_slice(b"memory = 1\t\n");
    built.extend(text(b"vcpus = 2\n"));
    built.extend(text(&b"0123456789abcdef".repeat(4)));
    built.extend(text(b"10.77.0.22"));
    built.extend_from_slice(&[24, 0xbc, 0x1b, 0, 0, 0, 0]);
    built.extend_from_slice(&64u32.to_le_bytes());
    built.extend_from_slice(&64u16.to_le_bytes());
    built.extend(text(b"1Gb/s"));
    let mut built_reply = vec![MODE_MESSAGES, 1, 2, 1];
    built_reply.extend(text(b"sending"));
    built_reply.push(2);
    let status = encode(&Request::Status {});
    let status = &status[..status.len() - 1];
    // The line, newline included, exactly at the cap, and one byte over.
    let mut at_cap = vec![MODE_CAP, 4 << 1];
    at_cap.extend_from_slice(status);
    let mut over_cap = vec![MODE_CAP, 5 << 1];
    over_cap.extend_from_slice(status);
    vec![
        ("requests", requests),
        ("replies", replies),
        ("built-prepare", built),
        ("built-reply", built_reply),
        ("status-at-cap", at_cap),
        ("status-over-cap", over_cap),
    ]
}
