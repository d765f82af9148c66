//! The kernel profile's encoding and checked decoding: a round trip, one
//! refusal per check, and hostile bytes that never panic.

use depmig_guest_abi::profile::{
    off, KernelProfile, PageLayout, PageTypes, ProfileError, TaskLayout, ENCODED_LEN,
    INVERTED_BUDDY_MASK, INVERTED_BUDDY_VALUE, LINK_TEXT, START_KERNEL_MAP, TOP_BYTE_MASK,
};
use proptest::prelude::*;

/// The 4-level profile of the walker's synthetic guests (crates/walker's
/// `synth::GuestBuilder`): image at frame 16, `init_task` half a page into
/// it, `init_top_pgt` on its second page, 6.1's `struct page`.
fn synthetic() -> KernelProfile {
    let image_pa: u64 = 16 * 4096;
    let mut release = [0u8; 64];
    release[..15].copy_from_slice(b"6.1.0-synthetic");
    KernelProfile {
        kaslr_slide: 0,
        text: LINK_TEXT,
        init_task: LINK_TEXT + 2048,
        page_offset_base: 0xffff_8880_0000_0000,
        vmemmap_base: 0xffff_ea00_0000_0000,
        vmalloc_base: 0xffff_c900_0000_0000,
        // __pa_symbol(_text) = _text - __START_KERNEL_map + phys_base.
        phys_base: image_pa.wrapping_sub(LINK_TEXT - START_KERNEL_MAP),
        levels: 4,
        task: TaskLayout {
            size: 0x200,
            tasks: 0x98,
            pid: 0x140,
            tgid: 0x144,
            comm: 0x1a0,
            comm_len: 16,
            mm: 0xe8,
            active_mm: 0xf0,
        },
        mm_pgd: 0x48,
        page: PageLayout {
            size: 64,
            flags: 0,
            page_type: 48,
            private: 40,
            page_types: PageTypes::InvertedBit,
            buddy_mask: INVERTED_BUDDY_MASK,
            buddy_value: INVERTED_BUDDY_VALUE,
        },
        init_top_pgt: LINK_TEXT + 4096,
        // 6.1's MAX_ORDER 11: orders 0..=10.
        max_order: 10,
        release,
    }
}

/// The same guest with Linux 6.12's top-byte page types (`PGTY_buddy`
/// 0xf0) and its `MAX_PAGE_ORDER` 10.
fn synthetic_6_12() -> KernelProfile {
    let mut p = synthetic();
    p.page.page_types = PageTypes::TopByte;
    p.page.buddy_mask = TOP_BYTE_MASK;
    p.page.buddy_value = 0xf000_0000;
    p.release = [0; 64];
    p.release[..16].copy_from_slice(b"6.12.0-synthetic");
    p
}

#[test]
fn profile_round_trip_and_rejections() {
    let p = synthetic();
    let enc = p.encode();
    assert_eq!(KernelProfile::parse(&enc).unwrap(), p);
    assert_eq!(p.release_str(), "6.1.0-synthetic");
    let mutate = |f: &dyn Fn(&mut [u8; 4096])| {
        let mut e = enc;
        f(&mut e);
        KernelProfile::parse(&e)
    };
    let put32 =
        |e: &mut [u8; 4096], o: usize, v: u32| e[o..o + 4].copy_from_slice(&v.to_le_bytes());
    let put64 =
        |e: &mut [u8; 4096], o: usize, v: u64| e[o..o + 8].copy_from_slice(&v.to_le_bytes());
    assert_eq!(
        KernelProfile::parse(&enc[..100]),
        Err(ProfileError::Truncated)
    );
    assert_eq!(mutate(&|e| e[0] = b'X'), Err(ProfileError::BadMagic));
    // Version 1 (no page-type scheme, no order) is refused, not guessed.
    assert_eq!(
        mutate(&|e| put32(e, 8, 1)),
        Err(ProfileError::BadVersion(1))
    );
    assert_eq!(
        mutate(&|e| put32(e, 8, 3)),
        Err(ProfileError::BadVersion(3))
    );
    assert_eq!(mutate(&|e| put32(e, 0x48, 3)), Err(ProfileError::BadLevels));
    assert_eq!(
        mutate(&|e| put64(e, 0x28, 0x0000_7000_0000_0000)),
        Err(ProfileError::BadAddress)
    );
    assert_eq!(
        mutate(&|e| put64(e, 0x28, 0xffff_8880_0000_1000)),
        Err(ProfileError::BadAddress)
    );
    assert_eq!(
        mutate(&|e| put64(e, 0x10, 0x20_0000)),
        Err(ProfileError::TextMismatch)
    );
    assert_eq!(
        mutate(&|e| put64(e, 0x20, 0xffff_ffff_c000_0000)),
        Err(ProfileError::OutsideImage)
    );
    assert_eq!(
        mutate(&|e| put32(e, 0x54, 0x1fe)),
        Err(ProfileError::BadTaskLayout)
    );
    assert_eq!(
        mutate(&|e| put32(e, 0x58, 0x140)),
        Err(ProfileError::BadTaskLayout)
    );
    assert_eq!(
        mutate(&|e| put32(e, 0x84, 100)),
        Err(ProfileError::BadTaskLayout)
    );
    assert_eq!(
        mutate(&|e| put32(e, 0x68, 0x10_0000)),
        Err(ProfileError::BadMmLayout)
    );
    assert_eq!(
        mutate(&|e| put32(e, 0x74, 62)),
        Err(ProfileError::BadPageLayout)
    );
    assert_eq!(
        mutate(&|e| put32(e, 0x7c, 0xf000_0000)),
        Err(ProfileError::UnknownBuddyEncoding)
    );
    // The 6.12 rule published under the inverted-bit scheme.
    assert_eq!(
        mutate(&|e| put32(e, 0x7c, TOP_BYTE_MASK)),
        Err(ProfileError::UnknownBuddyEncoding)
    );
    assert_eq!(
        mutate(&|e| put32(e, 0xd0, 0)),
        Err(ProfileError::UnknownPageTypes(0))
    );
    assert_eq!(
        mutate(&|e| put32(e, 0xd0, 3)),
        Err(ProfileError::UnknownPageTypes(3))
    );
    assert_eq!(
        mutate(&|e| put32(e, 0xd4, 0)),
        Err(ProfileError::BadMaxOrder(0))
    );
    assert_eq!(
        mutate(&|e| put32(e, 0xd4, 21)),
        Err(ProfileError::BadMaxOrder(21))
    );
    assert!(mutate(&|e| put32(e, 0xd4, 20)).is_ok());
}

#[test]
fn top_byte_profile_round_trip_and_rejections() {
    let p = synthetic_6_12();
    let enc = p.encode();
    assert_eq!(
        enc[off::PAGE_TYPES..off::PAGE_TYPES + 4],
        2u32.to_le_bytes()
    );
    assert_eq!(enc[off::MAX_ORDER..off::MAX_ORDER + 4], 10u32.to_le_bytes());
    let back = KernelProfile::parse(&enc).unwrap();
    assert_eq!(back, p);
    assert_eq!(back.page.page_types, PageTypes::TopByte);
    let with = |mask: u32, value: u32, types: u32| {
        let mut e = enc;
        e[0x7c..0x80].copy_from_slice(&mask.to_le_bytes());
        e[0x80..0x84].copy_from_slice(&value.to_le_bytes());
        e[0xd0..0xd4].copy_from_slice(&types.to_le_bytes());
        KernelProfile::parse(&e)
    };
    // Every type byte of 6.12's enum pagetype is a possible rule ...
    assert!(with(TOP_BYTE_MASK, 0xf700_0000, 2).is_ok());
    // ... but not the underflow byte, the overflow reserve, low bits set,
    // another mask, or 6.1's rule under the top-byte scheme.
    for (mask, value) in [
        (TOP_BYTE_MASK, 0xff00_0000),
        (TOP_BYTE_MASK, 0xef00_0000),
        (TOP_BYTE_MASK, 0x8000_0000),
        (TOP_BYTE_MASK, 0xf000_0080),
        (0xf000_0000, 0xf000_0000),
        (INVERTED_BUDDY_MASK, INVERTED_BUDDY_VALUE),
    ] {
        assert_eq!(
            with(mask, value, 2),
            Err(ProfileError::UnknownBuddyEncoding),
            "{mask:#x} {value:#x}"
        );
    }
}

#[test]
fn refusals_say_what_is_wrong() {
    let msg = ProfileError::BadVersion(1).to_string();
    assert!(msg.contains("version 1") && msg.contains("only 2"), "{msg}");
    assert!(ProfileError::UnknownPageTypes(7)
        .to_string()
        .contains("scheme 7"));
    assert!(ProfileError::BadMaxOrder(30)
        .to_string()
        .contains("order 30"));
}

#[test]
fn encoding_fills_the_declared_bytes_only() {
    let enc = synthetic().encode();
    assert_eq!(&enc[..8], b"DMPROF01");
    assert_eq!(enc[0xc..0x10], (ENCODED_LEN as u32).to_le_bytes());
    assert!(enc[ENCODED_LEN..].iter().all(|&b| b == 0));
    // The decoder needs the declared bytes and no more.
    assert!(KernelProfile::parse(&enc[..ENCODED_LEN]).is_ok());
    assert_eq!(
        KernelProfile::parse(&enc[..ENCODED_LEN - 1]),
        Err(ProfileError::Truncated)
    );
}

proptest! {
    // 48 cases by default; PROPTEST_CASES=n for a longer hunt.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(48),
        ..ProptestConfig::default()
    })]

    /// Random bytes as a profile page.
    #[test]
    fn random_profiles_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        if let Ok(p) = KernelProfile::parse(&bytes) {
            prop_assert!(p.check().is_ok());
        }
    }

    /// A valid profile with random bytes overwritten: whatever decodes has
    /// passed every check, and encodes back to the same fields.
    #[test]
    fn mutated_profiles_never_panic(
        writes in proptest::collection::vec((0usize..ENCODED_LEN + 8, any::<u8>()), 1..16),
    ) {
        let mut enc = synthetic().encode();
        for (at, v) in writes {
            enc[at] = v;
        }
        if let Ok(p) = KernelProfile::parse(&enc) {
            prop_assert!(p.check().is_ok());
            prop_assert_eq!(KernelProfile::parse(&p.encode()), Ok(p));
        }
    }
}
