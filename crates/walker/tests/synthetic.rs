//! The walker over well-formed synthetic guests: exact attribution, free
//! frames, translation and taint-table reading (the profile's decoding is
//! tested in depmig-guest-abi).

mod common;

use common::*;
use depmig_precopy::{DependencyOracle, DirtyBitmap};
use depmig_walker::profile::{PageTypes, INVERTED_BUDDY_MASK, INVERTED_BUDDY_VALUE, LINK_TEXT};
use depmig_walker::synth::{GuestBuilder, PageSize};
use depmig_walker::{
    census, classify, free_among, scan_free, Class, Kernel, Limits, LinuxOracle, PhysMem,
    TaintTable, TaskState, WalkError,
};

fn check_scenario(levels: u32) {
    check_scenario_with(levels, PageTypes::InvertedBit);
}

fn check_scenario_with(levels: u32, types: PageTypes) {
    let s = scenario_with(levels, types);
    let frames = s.b.table_frames.clone();
    let (mem, profile) = s.b.build();
    let k = Kernel::new(&mem, &profile).unwrap();
    let table = TaintTable::read(&mem, s.table_gfn).unwrap();
    let c = classify(&k, Some(&table), &Limits::for_guest(NR)).unwrap();

    assert_eq!(c.stats.tasks, 6);
    assert_eq!(c.stats.kernel_threads, 1);
    assert_eq!(c.stats.mms, 4);
    assert_eq!(c.stats.failed_mms, 0);

    let mut alpha_frames = vec![5000];
    alpha_frames.extend(range(5120, 5632));
    let gamma_frames = vec![6001, 6002, 6003];
    let mut untainted = alpha_frames.clone();
    untainted.extend(&gamma_frames);
    assert_eq!(ones(&c.untainted), sorted(untainted.clone()));
    assert_eq!(ones(&c.frozen), alpha_frames);
    let mut mapped = untainted.clone();
    mapped.extend([5001, 6000, 6100]);
    assert_eq!(ones(&c.mapped), sorted(mapped));
    // tainted is exactly the complement of untainted.
    assert_eq!(c.tainted.count(), NR - untainted.len() as u64);
    assert!(c.tainted.test(5001) && c.tainted.test(6100) && !c.tainted.test(5000));

    let by_tgid = |t: i32| c.processes.iter().find(|p| p.tgid == t).unwrap();
    let a = by_tgid(100);
    assert_eq!(
        (a.class, a.tasks, a.pages, a.error),
        (Class::Frozen, 2, 514, None)
    );
    assert_eq!(&a.comm[..6], b"alpha\0");
    assert_eq!(by_tgid(200).class, Class::Tainted);
    assert_eq!(by_tgid(300).class, Class::Untainted);
    assert_eq!(by_tgid(400).class, Class::Tainted);
    // Page tables: each process has its PGD pair plus lower tables; none
    // of them is untainted, and none overlaps the data frames.
    assert!(c.page_tables.count() >= 4 * (2 + levels as u64 - 1));
    let mut pt = c.page_tables.clone();
    pt.and_with(&c.mapped);
    assert_eq!(pt.count(), 0);

    let free = scan_free(&k);
    let mut expect = range(7000, 7008);
    expect.push(6000);
    expect.extend(range(7168, 8192));
    assert_eq!(ones(&free.free), sorted(expect));
    assert_eq!((free.blocks, free.rejected, free.unreadable), (3, 0, 0));

    // Asked about a few frames, the targeted check reads a handful of
    // descriptors and agrees with the whole scan on each of them: heads,
    // tails of an order-0, -3 and -10 block, frames in use around them.
    let mut few = DirtyBitmap::new(NR);
    for f in [
        0, 5000, 5999, 6000, 6001, 6999, 7000, 7003, 7007, 7008, 7167, 7168, 7500, 8191,
    ] {
        few.set(f);
    }
    let t = free_among(&k, &few);
    let mut expect = free.free.clone();
    expect.and_with(&few);
    assert_eq!(ones(&t.free), ones(&expect));
    assert_eq!(
        ones(&t.free),
        vec![6000, 7000, 7003, 7007, 7168, 7500, 8191]
    );
    assert!(
        t.descriptors < free.descriptors / 4,
        "{} descriptors read for 14 frames, the whole scan read {}",
        t.descriptors,
        free.descriptors
    );
    // Asked about everything, it is the whole scan.
    let all = all(NR);
    assert_eq!(free_among(&k, &all).free, free.free);

    // Through the oracle: 6000 is mapped, so it is not reported free.
    let mut oracle = LinuxOracle::new(&mem, Freezer::default(), s.table_gfn);
    let mut out = DirtyBitmap::new(NR);
    oracle.free_frames(&all, &mut out).unwrap();
    let mut expect = range(7000, 7008);
    expect.extend(range(7168, 8192));
    assert_eq!(ones(&out), expect);
    for f in &frames {
        assert!(!out.test(*f));
    }
    oracle.tainted_frames(&mut out).unwrap();
    assert_eq!(out, c.tainted);
    assert_eq!(oracle.freeze_quiet_groups().unwrap(), 2);
    oracle.thaw_all().unwrap();
    assert_eq!(oracle.last_error(), None);
    assert!(oracle.last_classification().is_some());
}

#[test]
fn attribution_and_free_frames_4_level() {
    check_scenario(4);
}

#[test]
fn attribution_and_free_frames_5_level() {
    check_scenario(5);
}

#[test]
fn attribution_and_free_frames_6_12_page_types() {
    check_scenario_with(4, PageTypes::TopByte);
    check_scenario_with(5, PageTypes::TopByte);
}

#[test]
fn without_taint_table_everything_is_tainted() {
    let (mem, profile) = scenario(4).b.build();
    let k = Kernel::new(&mem, &profile).unwrap();
    let c = classify(&k, None, &Limits::for_guest(NR)).unwrap();
    assert_eq!(c.untainted.count(), 0);
    assert_eq!(c.tainted.count(), NR);
    assert!(c.processes.iter().all(|p| p.class == Class::Tainted));
}

#[test]
fn one_gib_leaf_is_clipped_to_ram() {
    let mut b = GuestBuilder::new(NR, 4, DATA).unwrap();
    let p = b.add_process(10, b"huge").unwrap();
    b.map(p, 0x40_0000_0000, 0, PageSize::G1).unwrap();
    let (mem, profile) = b.build();
    let k = Kernel::new(&mem, &profile).unwrap();
    let c = classify(&k, None, &Limits::for_guest(NR)).unwrap();
    assert_eq!(c.mapped.count(), NR);
    assert_eq!(c.processes[0].pages, NR);
    assert_eq!(c.stats.outside_ram, 512 * 512 - NR);
    // PGD + P4D-less 4-level: PGD, PUD table.
    assert_eq!(c.stats.tables, 2);
}

#[test]
fn prot_none_leaf_maps_its_inverted_frame() {
    let mut b = GuestBuilder::new(NR, 4, DATA).unwrap();
    let p = b.add_process(10, b"protnone").unwrap();
    b.map(p, 0x1000, 5000, PageSize::K4).unwrap();
    let (mut mem, profile) = b.build();
    // Find the PTE for 5000 and rewrite it as a PROT_NONE entry for 5002:
    // present clear, _PAGE_PROTNONE set, address bits inverted.
    let pte_pa = (0..NR * 512)
        .map(|i| i * 8)
        .find(|&a| {
            let mut x = [0u8; 8];
            mem.read(a, &mut x).unwrap();
            u64::from_le_bytes(x) == (5000 << 12) | 7
        })
        .unwrap();
    let prot = ((!(5002u64 << 12)) & 0x000f_ffff_ffff_f000) | 0x100;
    mem.write_u64(pte_pa, prot);
    let k = Kernel::new(&mem, &profile).unwrap();
    let c = classify(&k, None, &Limits::for_guest(NR)).unwrap();
    assert_eq!(ones(&c.mapped), vec![5002]);
    // A swap entry (present and PROTNONE clear) maps nothing.
    mem.write_u64(pte_pa, 0xdead_0000_0200);
    let k = Kernel::new(&mem, &profile).unwrap();
    let c = classify(&k, None, &Limits::for_guest(NR)).unwrap();
    assert_eq!(c.mapped.count(), 0);
    assert_eq!(c.processes[0].error, None);
}

#[test]
fn kernel_addresses_translate_through_init_top_pgt() {
    for levels in [4, 5] {
        let mut b = GuestBuilder::new(NR, levels, DATA).unwrap();
        let vmalloc = b.profile.vmalloc_base;
        b.map_kernel(vmalloc + 0x20_0000, 4096, PageSize::M2)
            .unwrap();
        b.map_kernel(vmalloc + 0x5000, 4500, PageSize::K4).unwrap();
        b.map_kernel(vmalloc + 0x4000_0000, 0, PageSize::G1)
            .unwrap();
        b.mem.write_u64(4096 * 4096 + 0x1238, 0x1122_3344_5566_7788);
        b.mem.write_u64(4500 * 4096 + 0x10, 42);
        b.mem.write_u64(3 * 4096, 7);
        let desc = b.desc_pa(1234).unwrap();
        b.mem.write_u64(desc + 40, 99);
        let (mem, profile) = b.build();
        let k = Kernel::new(&mem, &profile).unwrap();
        assert_eq!(
            k.read_u64(vmalloc + 0x20_1238).unwrap(),
            0x1122_3344_5566_7788
        );
        assert_eq!(k.read_u64(vmalloc + 0x5010).unwrap(), 42);
        assert_eq!(k.read_u64(vmalloc + 0x4000_3000).unwrap(), 7);
        assert_eq!(
            k.read_u64(profile.vmemmap_base + 1234 * 64 + 40).unwrap(),
            99
        );
        assert_eq!(
            k.virt_to_phys(profile.page_offset_base + 0x1234).unwrap(),
            0x1234
        );
        assert!(matches!(
            k.virt_to_phys(vmalloc + 0x9000),
            Err(WalkError::NotMapped(_))
        ));
        // A 1 GiB kernel leaf past RAM's end fails.
        assert!(k.virt_to_phys(vmalloc + 0x4000_0000 + NR * 4096).is_err());
        assert!(matches!(
            k.virt_to_phys(0x0000_9000_0000_0000 | (1 << 62)),
            Err(WalkError::NotCanonical(_))
        ));
    }
}

/// The free-block checks under one page-type scheme; `not_buddy` is a
/// `page_type` word of that scheme's kernel that is not PageBuddy.
fn free_blocks_are_proven_or_rejected_under(types: PageTypes, not_buddy: u32) {
    let mut b = GuestBuilder::new(NR, 4, DATA).unwrap();
    b.set_page_types(types);
    b.free_block(5000, 3).unwrap(); // good
    b.free_block(5009, 1).unwrap(); // misaligned head
    b.free_block(5120, 11).unwrap(); // order beyond the published max_order 10
    b.free_block(5200, 4).unwrap(); // good head ...
    b.free_block(5204, 2).unwrap(); // ... with a nested head
    b.free_block(5248, 6).unwrap(); // good head ...
    let tail = b.desc_pa(5250).unwrap();
    b.mem.write_u32(tail + 48, 0xffff_fffe); // ... with a mapped tail
    b.free_block(5376, 7).unwrap(); // good head, one tail unreadable
    let hole = b.desc_pa(5440).unwrap() / 4096;
    b.free_block(8184, 4).unwrap(); // crosses the end of RAM
    b.free_block(6000, 0).unwrap(); // good
    b.free_block(6100, 0).unwrap();
    let head = b.desc_pa(6100).unwrap();
    b.mem.write_u32(head + 48, not_buddy);
    let (mut mem, profile) = b.build();
    mem.punch_hole(hole);
    let k = Kernel::new(&mem, &profile).unwrap();
    let f = scan_free(&k);
    let mut expect = range(5000, 5008);
    expect.push(6000);
    assert_eq!(ones(&f.free), expect, "{types:?}");
    assert_eq!(f.blocks, 2);
    // misaligned, order, nested (the outer block; the inner head only
    // spoils it), bad tail, hole, end.
    assert_eq!(f.rejected, 6);
    assert_eq!(f.unreadable, 64);
    // The targeted check agrees frame by frame.
    let mut asked = DirtyBitmap::new(NR);
    for pfn in [5000, 5007, 5009, 5120, 5200, 5250, 5376, 6000, 6100, 8190] {
        asked.set(pfn);
    }
    let t = free_among(&k, &asked);
    assert_eq!(ones(&t.free), vec![5000, 5007, 6000], "{types:?}");
}

#[test]
fn free_blocks_are_proven_or_rejected() {
    // 6.1: PG_buddy set (the bit is cleared to mark a free head).
    free_blocks_are_proven_or_rejected_under(PageTypes::InvertedBit, 0xf000_0080);
    // 6.12: PGTY_table in the top byte.
    free_blocks_are_proven_or_rejected_under(PageTypes::TopByte, 0xf200_0000);
}

/// Under 6.12's published rule, only `PGTY_buddy << 24` heads a free
/// block: not 6.1's free head (-1 with 0x80 cleared, a `_mapcount`
/// overflow to 6.12), not 6.12's page tables or slab pages, which 6.1's
/// rule would take for free heads (why the scheme is published, never
/// guessed).
#[test]
fn top_byte_rule_takes_only_pgty_buddy() {
    for word in [0xffff_ff7fu32, 0xf200_0000, 0xf500_0000, 0xf000_00ff] {
        let mut b = GuestBuilder::new(NR, 4, DATA).unwrap();
        b.set_page_types(PageTypes::TopByte);
        b.free_block(5000, 2).unwrap();
        b.free_block(5004, 2).unwrap();
        let d = b.desc_pa(5004).unwrap();
        b.mem.write_u32(d + 48, word);
        let (mem, profile) = b.build();
        let k = Kernel::new(&mem, &profile).unwrap();
        let f = scan_free(&k);
        // 0xf00000ff keeps PGTY_buddy in its top byte: the kernel's own
        // test (page_type >> 24) takes it too.
        let want = if word >> 24 == 0xf0 {
            range(5000, 5008)
        } else {
            range(5000, 5004)
        };
        assert_eq!(ones(&f.free), want, "{word:#x}");
    }
    for pgty_word in [0xf200_0000u32, 0xf500_0000] {
        assert_eq!(pgty_word & INVERTED_BUDDY_MASK, INVERTED_BUDDY_VALUE);
    }
}

/// The largest order comes from the profile: with 3 published, an
/// order-4 block is refused by the whole scan and the targeted check.
#[test]
fn max_order_is_the_published_one() {
    for types in [PageTypes::InvertedBit, PageTypes::TopByte] {
        let mut b = GuestBuilder::new(NR, 4, DATA).unwrap();
        b.set_page_types(types);
        b.free_block(5000, 3).unwrap();
        b.free_block(5120, 4).unwrap();
        b.profile.max_order = 3;
        let (mem, profile) = b.build();
        let k = Kernel::new(&mem, &profile).unwrap();
        let f = scan_free(&k);
        assert_eq!(ones(&f.free), range(5000, 5008), "{types:?}");
        assert_eq!(f.rejected, 1);
        let mut asked = DirtyBitmap::new(NR);
        asked.set(5001);
        asked.set(5121);
        assert_eq!(ones(&free_among(&k, &asked).free), vec![5001]);
    }
}

#[test]
fn init_task_must_be_swapper() {
    let b = GuestBuilder::new(NR, 4, DATA).unwrap();
    let (mem, profile) = b.build();
    let init_pa = 16 * 4096 + 2048;
    for (off, bytes) in [
        (0x140u64, &1u32.to_le_bytes()[..]),
        (0x144, &1u32.to_le_bytes()[..]),
        (0x1a0, &b"swapper/1"[..]),
        (0x1a0, &b"swapper/0x"[..]),
    ] {
        let mut m = mem.clone();
        m.write(init_pa + off, bytes);
        assert_eq!(
            Kernel::new(&m, &profile).err(),
            Some(WalkError::NotSwapper),
            "offset {off:#x}"
        );
    }
    assert!(Kernel::new(&mem, &profile).is_ok());
    // init_task with an mm.
    let mut m = mem.clone();
    m.write_u64(init_pa + 0xe8, profile.page_offset_base + 0x5000);
    assert_eq!(Kernel::new(&m, &profile).err(), Some(WalkError::NotSwapper));
    // init_mm's pgd is not init_top_pgt (wrong mm_struct.pgd offset).
    let mut p = profile;
    p.mm_pgd = 0x50;
    assert_eq!(
        Kernel::new(&mem, &p).err(),
        Some(WalkError::BadMm(LINK_TEXT + 3072))
    );
    // A borrowed user mm as active_mm is fine (lazy TLB).
    let mut m = mem.clone();
    m.write_u64(init_pa + 0xf0, profile.page_offset_base + 0x5000);
    assert!(Kernel::new(&m, &profile).is_ok());
    // A phys_base that puts the image outside RAM.
    let mut p = profile;
    p.phys_base = p.phys_base.wrapping_add(1 << 40);
    assert!(Kernel::new(&mem, &p).is_err());
}

#[test]
fn taint_entries_are_checked() {
    let mut b = GuestBuilder::new(NR, 4, DATA).unwrap();
    let gfn = b.add_taint_table().unwrap();
    b.set_group(3, 3, 0).unwrap();
    b.set_task_entry(10, 10, 3).unwrap(); // good
    b.set_task_entry(11, 99, 3).unwrap(); // stale: other tgid
    b.set_task_entry(12, 12, 0).unwrap(); // group 0
                                          // A chain 100 -> 101 -> ... -> 140 (root): 40 steps, beyond 32.
    for g in 100..140 {
        b.set_group(g, g + 1, 0).unwrap();
    }
    b.set_group(140, 140, 0).unwrap();
    b.set_task_entry(13, 13, 100).unwrap();
    b.set_task_entry(14, 14, 110).unwrap(); // 30 steps: fine
    b.set_group(200, 201, 0).unwrap(); // a parent cycle
    b.set_group(201, 200, 0).unwrap();
    b.set_task_entry(15, 15, 200).unwrap();
    b.set_group(
        300,
        300,
        depmig_walker::taint::F_FROZEN | depmig_walker::taint::F_THAW_REQ,
    )
    .unwrap();
    b.set_task_entry(16, 16, 300).unwrap();
    b.set_task_entry(17, 17, 262_144 + 5).unwrap(); // group id beyond slots
    let (mut mem, _) = b.build();
    let t = TaintTable::read(&mem, gfn).unwrap();
    let st = |p: i32| t.task_state(&mem, p, p);
    assert_eq!(
        st(10),
        TaskState::Untainted {
            group: 3,
            frozen: false
        }
    );
    assert_eq!(st(11), TaskState::Tainted);
    assert_eq!(st(12), TaskState::Tainted);
    assert_eq!(st(13), TaskState::Tainted);
    assert_eq!(
        st(14),
        TaskState::Untainted {
            group: 140,
            frozen: false
        }
    );
    assert_eq!(st(15), TaskState::Tainted);
    assert_eq!(st(16), TaskState::Tainted);
    assert_eq!(st(17), TaskState::Tainted);
    assert_eq!(st(18), TaskState::Tainted); // no entry
    assert_eq!(st(40000), TaskState::Tainted); // beyond slots
    assert_eq!(t.task_state(&mem, -1, 10), TaskState::Tainted);
    // Not tracking yet: everything tainted.
    let h = gfn * 4096;
    mem.write_u32(h + 0x2c, 0);
    let t = TaintTable::read(&mem, gfn).unwrap();
    assert_eq!(t.task_state(&mem, 10, 10), TaskState::Tainted);
    // Header rejections.
    use depmig_walker::TaintError;
    let bad = |f: &dyn Fn(&mut depmig_walker::ImageMem)| {
        let mut m = mem.clone();
        f(&mut m);
        TaintTable::read(&m, gfn).err()
    };
    assert_eq!(
        bad(&|m| {
            m.write(h, b"XXXXXXXX");
        }),
        Some(TaintError::BadMagic)
    );
    assert_eq!(
        bad(&|m| {
            m.write_u32(h + 8, 2);
        }),
        Some(TaintError::BadVersion)
    );
    assert_eq!(
        bad(&|m| {
            m.write_u32(h + 0x10, 1000);
        }),
        Some(TaintError::BadGeometry)
    );
    assert_eq!(
        bad(&|m| {
            m.write_u32(h + 0x24, 1 << 30);
        }),
        Some(TaintError::BadGeometry)
    );
    assert_eq!(
        bad(&|m| {
            m.write_u32(h + 0x20, 3);
        }),
        Some(TaintError::BadGeometry)
    );
    assert_eq!(
        bad(&|m| {
            m.write_u64(h + 0x48, NR);
        }),
        Some(TaintError::BadFrame)
    );
    assert_eq!(
        bad(&|m| {
            m.write_u64(h + 0x40, 5);
        }),
        Some(TaintError::BadFrame)
    );
    assert_eq!(
        TaintTable::read(&mem, NR + 1).err(),
        Some(TaintError::BadFrame)
    );
}

#[test]
fn census_says_whose_frames_are() {
    // A page table's page_type: 6.1's PG_table (0x200) cleared, 6.12's
    // PGTY_table in the top byte.
    census_under(PageTypes::InvertedBit, 0xffff_fdff);
    census_under(PageTypes::TopByte, 0xf200_0000);
}

fn census_under(types: PageTypes, typed_word: u32) {
    let mut s = scenario_with(4, types);
    // Kernel frames: one with a page flag, one with a page type, one bare.
    let d = |b: &GuestBuilder, pfn: u64| b.desc_pa(pfn).unwrap();
    let (flagged, typed) = (d(&s.b, 4200), d(&s.b, 4202));
    s.b.mem.write_u64(flagged, 1 << 9);
    s.b.mem.write_u32(typed + 48, typed_word);
    let (mem, profile) = s.b.build();
    let k = Kernel::new(&mem, &profile).unwrap();
    let table = TaintTable::read(&mem, s.table_gfn).unwrap();
    let limits = Limits::for_guest(NR);
    let c = classify(&k, Some(&table), &limits).unwrap();
    let pt = c.page_tables.iter_ones().next().unwrap();
    let mut asked = DirtyBitmap::new(NR);
    for f in [5000, 5001, 5120, 6001, 7000, 7003, 4200, 4201, 4202, pt] {
        asked.set(f);
    }
    let n = census(&k, Some(&table), &limits, &asked).unwrap();
    assert_eq!(
        (
            n.asked,
            n.user,
            n.page_tables,
            n.flagged,
            n.typed,
            n.buddy,
            n.plain,
            n.unreadable
        ),
        (10, 4, 1, 1, 1, 1, 2, 0)
    );
    let owners: Vec<(i32, u64, Class)> = n
        .owners
        .iter()
        .map(|o| (o.tgid, o.frames, o.class))
        .collect();
    assert_eq!(
        owners,
        vec![
            (100, 3, Class::Frozen),
            (200, 1, Class::Tainted),
            (300, 1, Class::Untainted)
        ]
    );
    // Through the oracle, kept with its round.
    let mut oracle = LinuxOracle::new(&mem, Freezer::default(), s.table_gfn);
    let counts = oracle.census(3, &asked).unwrap().expect("a census");
    // The report's classes: the kernel's four descriptor classes as one.
    assert_eq!(
        (
            counts.round,
            counts.asked,
            counts.user,
            counts.page_tables,
            counts.kernel,
            counts.unreadable
        ),
        (3, 10, 4, 1, 5, 0)
    );
    assert_eq!(oracle.last_census(), Some(&(3, Ok(n))));
}
