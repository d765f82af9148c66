//! The taint table header's encoding and checked decoding, and the task
//! entry: a round trip, one refusal per check, and hostile bytes that never
//! panic.

use depmig_guest_abi::table::{
    self, frame, hdr, task_entry, task_entry_group, Header, HeaderError, MAGIC, MAX_FIND_CAP,
    MAX_PAGES, NR_PAGES, PAGE_SIZE,
};
use proptest::prelude::*;

/// A header page as the agent writes it, listing frames 1000, 1001, ...
fn page(h: &Header) -> Vec<u8> {
    let mut p = vec![0u8; PAGE_SIZE];
    p[hdr::MAGIC..hdr::MAGIC + 8].copy_from_slice(&MAGIC);
    for (o, v) in h.words() {
        p[o..o + 4].copy_from_slice(&v.to_le_bytes());
    }
    for i in 0..h.nr_pages as usize {
        let o = hdr::FRAMES + 8 * i;
        p[o..o + 8].copy_from_slice(&(1000 + i as u64).to_le_bytes());
    }
    p
}

fn put32(p: &mut [u8], o: usize, v: u32) {
    p[o..o + 4].copy_from_slice(&v.to_le_bytes());
}

#[test]
fn the_agents_header_round_trips() {
    let h = Header::new(77, NR_PAGES);
    assert!(!h.tracking());
    let p = page(&h);
    assert_eq!(Header::parse(&p), Ok(h));
    let tracking = Header {
        state: table::STATE_TRACKING,
        ..h
    };
    assert!(Header::parse(&page(&tracking)).unwrap().tracking());
    assert_eq!(frame(&p, 0), Some(1000));
    assert_eq!(
        frame(&p, NR_PAGES - 1),
        Some(1000 + u64::from(NR_PAGES) - 1)
    );
    assert_eq!(frame(&p, MAX_PAGES), None);
    assert_eq!(frame(&p[..100], 20), None);
    // The header's offsets are the layout's own.
    assert_eq!(h.task_offset(5).map(|o| o as usize), table::task_offset(5));
    assert_eq!(
        h.group_offset(9).map(|o| o as usize),
        table::group_offset(9)
    );
    assert_eq!(h.task_offset(table::TASK_SLOTS), None);
    assert_eq!(table::group_offset(table::GROUP_SLOTS), None);
    assert_eq!(table::task_offset(0), Some(2 * PAGE_SIZE));
    assert_eq!(table::group_offset(0), Some(66 * PAGE_SIZE));
}

#[test]
fn header_rejections() {
    let good = page(&Header::new(1, NR_PAGES));
    let bad = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut p = good.clone();
        f(&mut p);
        Header::parse(&p)
    };
    assert_eq!(
        Header::parse(&good[..PAGE_SIZE - 1]),
        Err(HeaderError::Truncated)
    );
    assert_eq!(bad(&|p| p[3] = b'X'), Err(HeaderError::BadMagic));
    assert_eq!(
        bad(&|p| put32(p, hdr::VERSION, 2)),
        Err(HeaderError::BadVersion)
    );
    assert_eq!(
        bad(&|p| put32(p, hdr::PAGE_SIZE, 8192)),
        Err(HeaderError::BadVersion)
    );
    let geometry = [
        (hdr::NR_PAGES, 1),
        (hdr::NR_PAGES, MAX_PAGES + 1),
        (hdr::NR_PAGES, NR_PAGES - 1),
        (hdr::PROFILE_PAGE, 0),
        (hdr::PROFILE_PAGE, 2),
        (hdr::PROFILE_PAGE, NR_PAGES),
        (hdr::TASK_PAGE, 0),
        (hdr::TASK_PAGE, 3),
        (hdr::TASK_SLOTS, u32::MAX),
        (hdr::GROUP_PAGE, 0),
        (hdr::GROUP_PAGE, 65),
        (hdr::GROUP_SLOTS, 1 << 30),
    ];
    for (o, v) in geometry {
        assert_eq!(
            bad(&|p| put32(p, o, v)),
            Err(HeaderError::BadGeometry),
            "{o:#x} = {v}"
        );
    }
    // Walk bounds beyond the cap are capped, not refused.
    let h = bad(&|p| put32(p, hdr::MAX_FIND, u32::MAX)).unwrap();
    assert_eq!(h.max_find, MAX_FIND_CAP);
}

#[test]
fn task_entries_name_their_thread_group() {
    let e = task_entry(3, 10);
    assert_eq!(e, 0x8000_000a_0000_0003);
    assert_eq!(task_entry_group(e, 10), Some(3));
    assert_eq!(task_entry_group(e, 11), None);
    assert_eq!(task_entry_group(0, 0), None);
    assert_eq!(task_entry_group(e & 0x7fff_ffff_ffff_ffff, 10), None);
}

proptest! {
    // 48 cases by default; PROPTEST_CASES=n for a longer hunt.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(48),
        ..ProptestConfig::default()
    })]

    /// The agent's header with random header words: whatever decodes has
    /// a geometry whose arrays lie inside the listed pages.
    #[test]
    fn mutated_headers_never_panic(
        writes in proptest::collection::vec((0usize..hdr::FRAMES / 4, any::<u32>()), 1..8),
        len in 0usize..PAGE_SIZE + 8,
    ) {
        let mut p = page(&Header::new(1, NR_PAGES));
        for (w, v) in writes {
            if w >= 2 {
                put32(&mut p, 4 * w, v);
            }
        }
        p.resize(len.max(PAGE_SIZE), 0);
        let p = &p[..len.min(p.len())];
        if let Ok(h) = Header::parse(p) {
            prop_assert!(h.nr_pages <= MAX_PAGES && h.max_find <= MAX_FIND_CAP);
            let end = u64::from(h.nr_pages) * PAGE_SIZE as u64;
            for (first, last) in [
                (h.task_offset(0), h.task_offset(h.task_slots.saturating_sub(1))),
                (h.group_offset(0), h.group_offset(h.group_slots.saturating_sub(1))),
            ] {
                if let (Some(a), Some(b)) = (first, last) {
                    prop_assert!(a < end && b < end);
                }
            }
            for i in 0..h.nr_pages {
                prop_assert!(frame(p, i).is_some());
            }
        }
    }
}
