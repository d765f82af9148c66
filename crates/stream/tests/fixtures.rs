//! Golden binary fixtures: valid streams must decode to the expected events
//! and match the encoder byte for byte; each malformed stream must be refused
//! with its specific error. `DEPMIG_REGEN_FIXTURES=1 cargo test -p
//! depmig-stream --test fixtures` rewrites the files after a deliberate
//! format change.

use std::path::PathBuf;

use depmig_stream::order::OrderError;
use depmig_stream::*;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

fn dom() -> DomainHeader {
    DomainHeader {
        domain_type: DomainType::X86Hvm,
        page_shift: 12,
        xen_major: 4,
        xen_minor: 17,
    }
}

fn page(seed: u8) -> Vec<u8> {
    (0..PAGE_SIZE)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// The full valid stream, written with the encoder.
fn valid_full() -> Vec<u8> {
    let mut o = Vec::new();
    let mut e = Encoder::new();
    e.headers(&mut o, &dom()).unwrap();
    e.cpuid_policy(
        &mut o,
        &[CpuidLeaf {
            leaf: 0,
            subleaf: 0,
            a: 0xd,
            b: 1,
            c: 2,
            d: 3,
        }],
    )
    .unwrap();
    e.msr_policy(
        &mut o,
        &[MsrEntry {
            idx: 0xce,
            flags: 0,
            val: 1,
        }],
    )
    .unwrap();
    e.static_data_end(&mut o).unwrap();
    let (p0, p1, p2) = (page(0), page(1), page(2));
    e.page_data(
        &mut o,
        &[
            PfnEntry::normal(0),
            PfnEntry {
                pfn: 1,
                kind: PageType::XTab,
            },
            PfnEntry::normal(2),
            PfnEntry {
                pfn: 3,
                kind: PageType::XAlloc,
            },
        ],
        &[&p0, &p1],
    )
    .unwrap();
    e.page_data(&mut o, &[PfnEntry::normal(2)], &[&p2]).unwrap();
    e.tsc_info(
        &mut o,
        &TscInfo {
            mode: 1,
            khz: 2_000_000,
            nsec: 12345,
            incarnation: 2,
        },
    )
    .unwrap();
    e.hvm_context(&mut o, &[0xAB; 13]).unwrap();
    e.hvm_params(
        &mut o,
        &[
            HvmParam {
                index: 1,
                value: 0xfeff_f000,
            },
            HvmParam { index: 2, value: 7 },
        ],
    )
    .unwrap();
    e.end(&mut o).unwrap();
    o
}

fn valid_minimal() -> Vec<u8> {
    let mut o = Vec::new();
    let mut e = Encoder::new();
    e.headers(
        &mut o,
        &DomainHeader {
            domain_type: DomainType::X86Hvm,
            ..dom()
        },
    )
    .unwrap();
    e.static_data_end(&mut o).unwrap();
    e.hvm_context(&mut o, &[1; 8]).unwrap();
    e.end(&mut o).unwrap();
    o
}

/// A stream with an optional record (bit 31): valid by the specification,
/// which lets a receiver ignore it (Xen's own verify tool does not know it).
fn valid_optional() -> Vec<u8> {
    let mut o = Vec::new();
    let mut e = Encoder::new();
    e.headers(&mut o, &dom()).unwrap();
    e.optional(&mut o, 0x8000_0042, b"opt").unwrap();
    e.static_data_end(&mut o).unwrap();
    e.optional(&mut o, 0x8000_0043, &[]).unwrap();
    e.hvm_context(&mut o, &[1; 8]).unwrap();
    e.end(&mut o).unwrap();
    o
}

/// Hand-built pieces for malformed streams (the encoder refuses to make them).
fn ihdr(version: u32, options: u16) -> Vec<u8> {
    let mut b = ImageHeader { version, options }.to_bytes().to_vec();
    b.truncate(24);
    b
}

fn dhdr(t: u32, shift: u16) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&t.to_le_bytes());
    b.extend_from_slice(&shift.to_le_bytes());
    b.extend_from_slice(&[0, 0]);
    b.extend_from_slice(&4u32.to_le_bytes());
    b.extend_from_slice(&17u32.to_le_bytes());
    b
}

fn rec(t: u32, body: &[u8]) -> Vec<u8> {
    rec_len(t, body.len() as u32, body)
}

fn rec_len(t: u32, len: u32, body: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&t.to_le_bytes());
    b.extend_from_slice(&len.to_le_bytes());
    b.extend_from_slice(body);
    b.resize(b.len() + padding(body.len()), 0);
    b
}

fn head() -> Vec<u8> {
    let mut b = ihdr(3, 0);
    b.extend(dhdr(2, 12));
    b
}

fn head_static() -> Vec<u8> {
    let mut b = head();
    b.extend(rec(rec::STATIC_DATA_END, &[]));
    b
}

fn page_rec(count: u32, reserved: u32, pfns: &[u64], pages: usize) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&count.to_le_bytes());
    body.extend_from_slice(&reserved.to_le_bytes());
    for p in pfns {
        body.extend_from_slice(&p.to_le_bytes());
    }
    for i in 0..pages {
        body.extend(page(i as u8));
    }
    rec(rec::PAGE_DATA, &body)
}

fn cat(parts: &[Vec<u8>]) -> Vec<u8> {
    parts.concat()
}

fn malformed() -> Vec<(&'static str, Vec<u8>, DecodeError)> {
    let ctx = rec(rec::HVM_CONTEXT, &[1; 8]);
    let end = rec(rec::END, &[]);
    let mut bad_marker = head();
    bad_marker[3] = 0xfe;
    let mut bad_id = head();
    bad_id[8] = b'Y';
    let mut padded = cat(&[head_static(), rec(rec::HVM_CONTEXT, &[1; 3])]);
    let n = padded.len();
    padded[n - 1] = 1;
    vec![
        ("bad_marker", bad_marker, DecodeError::BadMarker),
        ("bad_id", bad_id, DecodeError::BadId(0x5945_4E46)),
        (
            "version2",
            cat(&[ihdr(2, 0), dhdr(2, 12)]),
            DecodeError::UnsupportedVersion(2),
        ),
        (
            "big_endian",
            cat(&[ihdr(3, 1), dhdr(2, 12)]),
            DecodeError::BigEndian,
        ),
        (
            "reserved_option",
            cat(&[ihdr(3, 4), dhdr(2, 12)]),
            DecodeError::ReservedHeaderBits,
        ),
        (
            "pvh_domain",
            cat(&[ihdr(3, 0), dhdr(3, 12)]),
            DecodeError::UnsupportedDomainType(3),
        ),
        (
            "pv_domain",
            cat(&[ihdr(3, 0), dhdr(1, 12)]),
            DecodeError::UnsupportedDomainType(1),
        ),
        (
            "page_shift",
            cat(&[ihdr(3, 0), dhdr(2, 21)]),
            DecodeError::UnsupportedPageShift(21),
        ),
        ("nonzero_padding", padded, DecodeError::NonZeroPadding),
        (
            "pfn_reserved_bits",
            cat(&[head_static(), page_rec(1, 0, &[1 << 52], 1)]),
            DecodeError::PfnReservedBits(1 << 52),
        ),
        (
            "page_type_reserved",
            cat(&[head_static(), page_rec(1, 0, &[5 << 60], 1)]),
            DecodeError::BadPageType(5),
        ),
        (
            "page_count_zero",
            cat(&[head_static(), page_rec(0, 0, &[], 0)]),
            DecodeError::EmptyPageData,
        ),
        (
            "page_header_reserved",
            cat(&[head_static(), page_rec(1, 9, &[1], 1)]),
            DecodeError::ReservedRecordBits(rec::PAGE_DATA),
        ),
        (
            "page_length_mismatch",
            cat(&[head_static(), page_rec(2, 0, &[1, 2], 1)]),
            DecodeError::PageDataLength {
                expected: 8 + 16 + 2 * 4096,
                got: 8 + 16 + 4096,
            },
        ),
        (
            "batch_too_large",
            cat(&[head_static(), page_rec(1025, 0, &[], 0)]),
            DecodeError::BatchTooLarge(1025),
        ),
        (
            "record_too_long",
            cat(&[head_static(), rec_len(rec::HVM_CONTEXT, 0xFFFF_FFF0, &[])]),
            DecodeError::RecordTooLong {
                rtype: rec::HVM_CONTEXT,
                len: 0xFFFF_FFF0,
            },
        ),
        (
            "unknown_mandatory",
            cat(&[head_static(), rec(0x13, &[0; 8])]),
            DecodeError::Order(OrderError::UnsupportedMandatory(0x13)),
        ),
        (
            "pv_record",
            cat(&[head(), rec(rec::X86_PV_INFO, &[8, 4, 0, 0, 0, 0, 0, 0])]),
            DecodeError::Order(OrderError::UnsupportedMandatory(rec::X86_PV_INFO)),
        ),
        (
            "page_before_static_end",
            cat(&[head(), page_rec(1, 0, &[1], 1)]),
            DecodeError::Order(OrderError::Misplaced(rec::PAGE_DATA)),
        ),
        (
            "page_after_context",
            cat(&[head_static(), ctx.clone(), page_rec(1, 0, &[1], 1)]),
            DecodeError::Order(OrderError::Misplaced(rec::PAGE_DATA)),
        ),
        (
            "missing_context",
            cat(&[head_static(), end]),
            DecodeError::Order(OrderError::MissingHvmContext),
        ),
        (
            "duplicate_cpuid",
            cat(&[
                head(),
                rec(rec::X86_CPUID_POLICY, &[0; 24]),
                rec(rec::X86_CPUID_POLICY, &[0; 24]),
            ]),
            DecodeError::Order(OrderError::Duplicate(rec::X86_CPUID_POLICY)),
        ),
        (
            "cpuid_bad_length",
            cat(&[head(), rec(rec::X86_CPUID_POLICY, &[0; 20])]),
            DecodeError::BadLength {
                rtype: rec::X86_CPUID_POLICY,
                len: 20,
            },
        ),
        (
            "end_with_body",
            cat(&[head_static(), ctx, rec(rec::END, &[0; 8])]),
            DecodeError::BadLength {
                rtype: rec::END,
                len: 8,
            },
        ),
        (
            "tsc_reserved",
            cat(&[
                head_static(),
                rec(rec::X86_TSC_INFO, &[&[0u8; 20][..], &[1, 0, 0, 0]].concat()),
            ]),
            DecodeError::ReservedRecordBits(rec::X86_TSC_INFO),
        ),
        (
            "hvm_params_count",
            cat(&[
                head_static(),
                rec(
                    rec::HVM_PARAMS,
                    &[
                        2, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0,
                    ],
                ),
            ]),
            DecodeError::BadLength {
                rtype: rec::HVM_PARAMS,
                len: 24,
            },
        ),
    ]
}

fn decode_all(bytes: &[u8]) -> (Result<Vec<String>, DecodeError>, bool, usize) {
    let mut dec = Decoder::new(Limits::default());
    let mut input = bytes;
    let mut out = Vec::new();
    loop {
        match dec.next(&mut input) {
            Ok(Some(ev)) => out.push(match ev {
                Event::Page { entry, data } => {
                    format!(
                        "page {:#x} {:?} {:?}",
                        entry.pfn,
                        entry.kind,
                        data.map(|d| d[..4].to_vec())
                    )
                }
                other => format!("{other:?}"),
            }),
            Ok(None) => return (Ok(out), dec.is_done(), input.len()),
            Err(e) => return (Err(e), false, input.len()),
        }
    }
}

fn check_or_regen(name: &str, bytes: &[u8]) -> Vec<u8> {
    let path = dir().join(format!("{name}.bin"));
    if std::env::var_os("DEPMIG_REGEN_FIXTURES").is_some() {
        std::fs::create_dir_all(dir()).unwrap();
        std::fs::write(&path, bytes).unwrap();
    }
    let golden = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    golden
}

#[test]
fn valid_fixtures_match_encoder_and_decode() {
    for (name, bytes) in [
        ("valid_full", valid_full()),
        ("valid_minimal", valid_minimal()),
        ("valid_optional", valid_optional()),
    ] {
        let golden = check_or_regen(name, &bytes);
        assert_eq!(
            golden, bytes,
            "{name}: encoder output drifted from the golden file"
        );
        let (events, done, left) = decode_all(&golden);
        let events = events.unwrap_or_else(|e| panic!("{name}: {e:?}"));
        assert!(done && left == 0, "{name}");
        assert_eq!(events.last().unwrap(), "Record(End)");
    }
    let (events, _, _) = decode_all(&valid_full());
    let events = events.unwrap();
    let expect_pages = [
        "page 0x0 Normal Some([0, 31, 62, 93])",
        "page 0x1 XTab None",
        "page 0x2 Normal Some([1, 32, 63, 94])",
        "page 0x3 XAlloc None",
        "page 0x2 Normal Some([2, 33, 64, 95])",
    ];
    let pages: Vec<&str> = events
        .iter()
        .filter(|e| e.starts_with("page"))
        .map(|s| s.as_str())
        .collect();
    assert_eq!(pages, expect_pages);
    assert!(events.iter().any(|e| e.contains(
        "HvmContext([171, 171, 171, 171, 171, 171, 171, 171, 171, 171, 171, 171, 171])"
    )));
    let (opt, _, _) = decode_all(&valid_optional());
    assert!(opt
        .unwrap()
        .iter()
        .any(|e| e.contains("Optional { rtype: 2147483714, body: [111, 112, 116] }")));
    assert!(events
        .iter()
        .any(|e| e
            .contains("TscInfo(TscInfo { mode: 1, khz: 2000000, nsec: 12345, incarnation: 2 })")));
}

#[test]
fn malformed_fixtures_are_refused_with_their_error() {
    let cases = malformed();
    assert!(cases.len() >= 24);
    for (name, bytes, want) in cases {
        let golden = check_or_regen(name, &bytes);
        assert_eq!(
            golden, bytes,
            "{name}: generator drifted from the golden file"
        );
        let (got, done, left) = decode_all(&golden);
        assert!(!done && left < golden.len(), "{name}");
        assert_eq!(got.err(), Some(want), "{name}");
    }
}

#[test]
fn truncated_valid_stream_is_incomplete_not_an_error() {
    let full = valid_full();
    for cut in [0, 1, 23, 24, 39, 40, 100, full.len() / 2, full.len() - 1] {
        let (got, done, _) = decode_all(&full[..cut]);
        assert!(got.is_ok(), "cut {cut}: {got:?}");
        assert!(!done, "cut {cut}");
    }
}

#[test]
fn capped_decoder_allocates_once() {
    let mut dec = Decoder::new(Limits {
        max_record_body: 64,
        max_batch: 4,
        max_pfn: 1 << 20,
    });
    let cap = dec.buffer_capacity();
    let mut input = &valid_full()[..];
    while let Ok(Some(_)) = dec.next(&mut input) {}
    assert_eq!(dec.buffer_capacity(), cap);
    assert!(cap < 16 * 1024, "{cap}");
}
