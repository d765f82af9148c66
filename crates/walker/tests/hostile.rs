//! The walker over hostile guests: broken and endless task lists, pointers
//! outside RAM, page tables that loop, overlap or exceed the work bound,
//! random memory. It must never panic, always stop within its bounds, and
//! err toward sending.

mod common;

use common::*;
use depmig_precopy::{DependencyOracle, DirtyBitmap};
use depmig_walker::profile::PageTypes;
use depmig_walker::synth::{GuestBuilder, PageSize, TASK};
use depmig_walker::{
    classify, free_among, scan_free, Class, ImageMem, Kernel, KernelProfile, Limits, LinuxOracle,
    PhysMem, TaintTable, WalkError,
};
use proptest::prelude::*;

/// A guest with `n` processes, each mapping one frame (5000 + i).
fn simple(n: i32) -> (GuestBuilder, Vec<u64>) {
    let mut b = GuestBuilder::new(NR, 4, DATA).unwrap();
    for i in 0..n {
        let p = b.add_process(10 + i, b"p").unwrap();
        b.map(p, 0x1000, 5000 + i as u64, PageSize::K4).unwrap();
    }
    let nodes = b.tasks.iter().map(|t| t + u64::from(TASK.tasks)).collect();
    (b, nodes)
}

fn walk(
    mem: &ImageMem,
    profile: &KernelProfile,
    limits: Limits,
) -> Result<depmig_walker::Classification, WalkError> {
    let k = Kernel::new(mem, profile)?;
    classify(&k, None, &limits)
}

#[test]
fn task_list_cycles_are_errors() {
    let (b, nodes) = simple(4);
    let pob = b.profile.page_offset_base;
    let (mut mem, profile) = b.build();
    // p2 -> p1 (a cycle that never returns to init_task).
    mem.write_u64(nodes[2], pob + nodes[1]);
    let e = walk(&mem, &profile, Limits::for_guest(NR)).unwrap_err();
    // Every node has one `prev`, so re-entering a cycle breaks the back
    // link before the node is seen twice; both are caught.
    assert!(
        matches!(
            e,
            WalkError::TaskListBroken(_) | WalkError::TaskListCycle(_)
        ),
        "{e:?}"
    );
    // Lying prev pointers too: p1.prev = p2, so the first visit of p1 fails.
    mem.write_u64(nodes[1] + 8, pob + nodes[2]);
    assert!(walk(&mem, &profile, Limits::for_guest(NR)).is_err());
    // A node pointing at itself.
    let (b, nodes) = simple(2);
    let (mut mem, profile) = b.build();
    mem.write_u64(nodes[1], pob + nodes[1]);
    mem.write_u64(nodes[1] + 8, pob + nodes[1]);
    assert!(walk(&mem, &profile, Limits::for_guest(NR)).is_err());
}

#[test]
fn endless_lists_stop_at_the_bound() {
    let (b, _) = simple(40);
    let (mem, profile) = b.build();
    let limits = Limits {
        max_tasks: 25,
        ..Limits::for_guest(NR)
    };
    assert_eq!(
        walk(&mem, &profile, limits).unwrap_err(),
        WalkError::TaskListTooLong
    );
    assert_eq!(
        walk(&mem, &profile, Limits::for_guest(NR))
            .unwrap()
            .stats
            .tasks,
        40
    );
}

#[test]
fn task_pointers_outside_ram_or_user_space_are_errors() {
    let (b, nodes) = simple(3);
    let p = b.profile;
    let (mem, profile) = b.build();
    for bad in [
        p.page_offset_base + NR * 4096 + 0x40, // past the direct map: unmapped
        0x1000,                                // user address
        p.vmalloc_base + 0x40,                 // unmapped kernel address
        p.page_offset_base + 0x44,             // misaligned
        0xdead_beef_0000_0000,                 // non-canonical
    ] {
        let mut m = mem.clone();
        m.write_u64(nodes[1], bad);
        assert!(
            walk(&m, &profile, Limits::for_guest(NR)).is_err(),
            "{bad:#x}"
        );
    }
    // A task's mm pointing into user space.
    let mut m = mem.clone();
    m.write_u64(
        nodes[0] - u64::from(TASK.tasks) + u64::from(TASK.mm),
        0x7000,
    );
    assert_eq!(
        walk(&m, &profile, Limits::for_guest(NR)).unwrap_err(),
        WalkError::BadMm(0x7000)
    );
    // An mm at the very top of the address space (its pgd field wraps).
    let mut m = mem.clone();
    m.write_u64(
        nodes[0] - u64::from(TASK.tasks) + u64::from(TASK.mm),
        0xffff_ffff_ffff_fff8,
    );
    let c = walk(&m, &profile, Limits::for_guest(NR)).unwrap();
    assert!(c
        .processes
        .iter()
        .any(|p| p.error.is_some() && p.class == Class::Tainted));
    // A pid out of range.
    let mut m = mem.clone();
    m.write_u32(
        nodes[0] - u64::from(TASK.tasks) + u64::from(TASK.pid),
        0xffff_fff0,
    );
    assert!(matches!(
        walk(&m, &profile, Limits::for_guest(NR)),
        Err(WalkError::BadPid(_))
    ));
    // A hole under a task.
    let mut m = mem.clone();
    m.punch_hole(nodes[2] / 4096);
    assert!(matches!(
        walk(&m, &profile, Limits::for_guest(NR)),
        Err(WalkError::Mem(..))
    ));
}

#[test]
fn broken_back_link_is_an_error() {
    let (b, nodes) = simple(3);
    let (mut mem, profile) = b.build();
    mem.write_u64(nodes[2] + 8, 0xffff_8880_0000_0000);
    assert_eq!(
        walk(&mem, &profile, Limits::for_guest(NR)).unwrap_err(),
        WalkError::TaskListBroken(profile.page_offset_base + nodes[2])
    );
}

/// A table entry slot of process `i`'s PGD.
fn pgd_slot(b: &GuestBuilder, i: usize, idx: u64) -> u64 {
    b.procs[i].pgd_pa + 8 * idx
}

#[test]
fn looping_and_overlapping_tables_taint_only_their_process() {
    // p0's PGD entry 1 points at its own PGD.
    let (b, _) = simple(3);
    let slot = pgd_slot(&b, 0, 1);
    let pgd = b.procs[0].pgd_pa;
    let (mut mem, profile) = b.build();
    mem.write_u64(slot, pgd | 7);
    let c = walk(&mem, &profile, Limits::for_guest(NR)).unwrap();
    assert_eq!(c.processes[0].error, Some(WalkError::TableReused(pgd)));
    assert_eq!(c.processes[0].class, Class::Tainted);
    assert_eq!(c.processes[1].error, None);
    assert_eq!(c.stats.failed_mms, 1);

    // p1's PGD entries 0 and 2 share one PUD table (an overlap in one mm).
    let (b, _) = simple(3);
    let s0 = pgd_slot(&b, 1, 0);
    let s2 = pgd_slot(&b, 1, 2);
    let (mut mem, profile) = b.build();
    let mut e = [0u8; 8];
    mem.read(s0, &mut e).unwrap();
    mem.write(s2, &e);
    let c = walk(&mem, &profile, Limits::for_guest(NR)).unwrap();
    assert!(matches!(
        c.processes[1].error,
        Some(WalkError::TableReused(_))
    ));
    assert!(c.processes[0].error.is_none() && c.processes[2].error.is_none());

    // p0 and p1 share their PUD table (two address spaces, one table):
    // allowed, and both see the frame.
    let (b, _) = simple(2);
    let s0 = pgd_slot(&b, 0, 0);
    let s1 = pgd_slot(&b, 1, 0);
    let (mut mem, profile) = b.build();
    mem.read(s0, &mut e).unwrap();
    mem.write(s1, &e);
    let c = walk(&mem, &profile, Limits::for_guest(NR)).unwrap();
    assert_eq!(c.stats.failed_mms, 0);
    assert_eq!(ones(&c.mapped), vec![5000]);
    assert!(c.processes.iter().all(|p| p.pages == 1));
}

#[test]
fn table_budget_is_global() {
    let (b, _) = simple(5);
    let (mem, profile) = b.build();
    // Each process needs 4 tables (PGD, PUD, PMD, PTE): 9 allow two.
    let c = walk(
        &mem,
        &profile,
        Limits {
            max_tables: 9,
            ..Limits::for_guest(NR)
        },
    )
    .unwrap();
    assert_eq!(c.stats.tables, 9);
    assert_eq!(c.stats.failed_mms, 3);
    assert!(c
        .processes
        .iter()
        .filter(|p| p.error.is_some())
        .all(|p| p.error == Some(WalkError::TooManyTables) && p.class == Class::Tainted));
}

#[test]
fn impossible_entries_are_errors() {
    for (what, entry) in [
        ("table outside RAM", ((NR + 5) << 12) | 7),
        ("PSE at the top level", (5000 << 12) | 0x87),
        (
            "PROT_NONE table",
            (!(5000u64 << 12) & 0x000f_ffff_ffff_f000) | 0x100,
        ),
    ] {
        let (b, _) = simple(1);
        let slot = pgd_slot(&b, 0, 3);
        let (mut mem, profile) = b.build();
        mem.write_u64(slot, entry);
        let c = walk(&mem, &profile, Limits::for_guest(NR)).unwrap();
        assert!(c.processes[0].error.is_some(), "{what}");
        assert_eq!(c.untainted.count(), 0);
    }
    // A 2 MiB leaf with reserved address bits set.
    let mut b = GuestBuilder::new(NR, 4, DATA).unwrap();
    let p = b.add_process(10, b"p").unwrap();
    b.map(p, 0x20_0000, 5120, PageSize::M2).unwrap();
    let (mut mem, profile) = b.build();
    let pmd_entry = (5120u64 << 12) | 0x87;
    let at = (0..NR * 512).map(|i| i * 8).find(|&a| {
        let mut x = [0u8; 8];
        mem.read(a, &mut x).unwrap();
        u64::from_le_bytes(x) == pmd_entry
    });
    mem.write_u64(at.unwrap(), pmd_entry | 0x2000);
    let c = walk(&mem, &profile, Limits::for_guest(NR)).unwrap();
    assert_eq!(c.processes[0].error, Some(WalkError::BadEntry(2)));
}

#[test]
fn oracle_falls_back_to_sending_everything() {
    let s = scenario(4);
    let node = s.b.tasks[1] + u64::from(TASK.tasks);
    let (mut mem, _) = s.b.build();
    mem.write_u64(node, 0x1000);
    let mut o = LinuxOracle::new(&mem, Freezer::default(), s.table_gfn);
    let mut out = DirtyBitmap::new(NR + 100);
    o.tainted_frames(&mut out).unwrap();
    assert_eq!(out.count(), NR + 100);
    out.set_all();
    o.free_frames(&all(NR + 100), &mut out).unwrap();
    assert_eq!(out.count(), 0);
    assert_eq!(o.last_error(), Some(WalkError::BadTaskPointer(0x1000)));
    // A broken taint table header: the same.
    let s = scenario(4);
    let (mut mem, _) = s.b.build();
    mem.write(s.table_gfn * 4096, b"garbage!");
    let mut o = LinuxOracle::new(&mem, Freezer::default(), s.table_gfn);
    o.tainted_frames(&mut out).unwrap();
    assert_eq!(out.count(), NR + 100);
    o.free_frames(&all(NR + 100), &mut out).unwrap();
    assert_eq!(out.count(), 0);
}

/// Checks the classification's own consistency: failed walks are
/// tainted, untainted frames exclude page tables, frozen ⊆ untainted,
/// tainted is untainted's complement, the table bound held.
fn check_consistent(c: &depmig_walker::Classification, limits: &Limits) {
    for p in &c.processes {
        if p.error.is_some() {
            assert_eq!(p.class, Class::Tainted);
        }
    }
    assert_eq!(c.untainted.count_and(&c.page_tables), 0);
    assert_eq!(c.frozen.count_and(&c.untainted), c.frozen.count());
    assert_eq!(c.tainted.count_and(&c.untainted), 0);
    assert_eq!(c.tainted.count() + c.untainted.count(), c.tainted.len());
    assert!(c.stats.tables <= limits.max_tables);
}

/// A guest with 6.1's page types (`top_byte` false) or 6.12's whose
/// descriptors from frame 6144 on are `descs` (kind, a random word, an
/// order): kinds 0 and 1 a buddy head, 2 and 3 plain, 4 some page type
/// (maybe buddy), 5 plain with one page flag, others the random word as
/// page type. Returns the image, its profile and every descriptor's
/// address.
fn random_descriptors(
    descs: &[(u8, u32, u64)],
    top_byte: bool,
) -> (ImageMem, KernelProfile, Vec<u64>) {
    let mut b = GuestBuilder::new(NR, 4, DATA).unwrap();
    if top_byte {
        b.set_page_types(PageTypes::TopByte);
    }
    let head = b.buddy_head_word();
    let desc: Vec<u64> = (0..NR).map(|p| b.desc_pa(p).unwrap()).collect();
    for (i, &(kind, t, order)) in descs.iter().enumerate() {
        let at = desc[6144 + i];
        let page_type = match kind {
            0 | 1 => head,
            2 | 3 | 5 => u32::MAX,
            // 6.1's type words are 0xf000_0000 plus bits; 6.12's a type
            // byte from 0xf0 up, with random low bits.
            4 if top_byte => 0xf000_0000 | (t & 0x0f00_00ff),
            4 => t | 0xf000_0000,
            _ => t,
        };
        b.mem.write_u32(at + 48, page_type);
        b.mem.write_u64(at + 40, order);
        if kind == 5 {
            b.mem.write_u64(at, 1 << (t % 16));
        }
    }
    let (mem, profile) = b.build();
    (mem, profile, desc)
}

fn descriptor(mem: &ImageMem, b_desc: &[u64], pfn: u64) -> (u32, u64) {
    let pa = b_desc[pfn as usize];
    let mut t = [0u8; 4];
    let mut p = [0u8; 8];
    mem.read(pa + 48, &mut t).unwrap();
    mem.read(pa + 40, &mut p).unwrap();
    (u32::from_le_bytes(t), u64::from_le_bytes(p))
}

proptest! {
    // 48 cases by default; PROPTEST_CASES=n for a longer hunt.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(48),
        ..ProptestConfig::default()
    })]

    /// Random 8-byte writes anywhere in the kernel's objects (task structs,
    /// mm_structs, page tables, descriptors, the taint table).
    #[test]
    fn mutated_guests_never_panic(
        levels in prop_oneof![Just(4u32), Just(5u32)],
        writes in proptest::collection::vec((any::<u64>(), any::<u64>(), 0u8..5), 1..24),
    ) {
        let s = scenario(levels);
        let lo = 16 * 4096u64;
        let hi = s.b.pool_next() * 4096;
        let pob = s.b.profile.page_offset_base;
        let frames = s.b.table_frames.clone();
        // Half the writes go to the processes' own objects (tasks, mms,
        // page tables), which lie between the first PGD and the table.
        let plo = s.b.procs[0].pgd_pa.min(s.b.procs[0].task_pa);
        let phi = frames.iter().min().unwrap() * 4096;
        let (mut mem, profile) = s.b.build();
        for (at, v, kind) in writes {
            let at = if at & 1 == 0 {
                lo + (at % (hi - lo)) / 8 * 8
            } else {
                plo + (at % (phi - plo)) / 8 * 8
            };
            // Plausible values reach deeper than random ones.
            let v = match kind {
                0 => v,
                1 => pob + (v % (NR * 4096)) / 8 * 8,
                2 => ((v % NR) << 12) | 7,
                3 => v & 0xffff_ffff,
                _ => !(v % 4096) & !7, // near the top of the address space
            };
            mem.write_u64(at, v);
        }
        let limits = Limits::for_guest(NR);
        if let Ok(k) = Kernel::new(&mem, &profile) {
            let table = TaintTable::read(&mem, s.table_gfn).ok();
            if let Ok(c) = classify(&k, table.as_ref(), &limits) {
                check_consistent(&c, &limits);
            }
            let _ = scan_free(&k);
        }
        let mut o = LinuxOracle::new(&mem, Freezer::default(), s.table_gfn);
        let mut out = DirtyBitmap::new(NR);
        o.tainted_frames(&mut out).unwrap();
        if let Some(c) = o.last_classification() {
            prop_assert_eq!(&out, &c.tainted);
        } else {
            prop_assert_eq!(out.count(), NR);
        }
        o.free_frames(&all(NR), &mut out).unwrap();
        if out.count() > 0 {
            let c = o.classify_now().unwrap();
            prop_assert_eq!(out.count_and(&c.mapped), 0);
            prop_assert_eq!(out.count_and(&c.page_tables), 0);
            for f in &frames {
                prop_assert!(!out.test(*f));
            }
        }
    }

    /// Random page descriptors: every frame reported free lies in a block
    /// whose head is PageBuddy with a valid, aligned order, whose other
    /// descriptors are unmarked (checked here from the frame's side).
    #[test]
    fn free_frames_are_proven(
        descs in proptest::collection::vec((0u8..7, any::<u32>(), 0u64..14), 2048),
        top_byte in any::<bool>(),
    ) {
        let (mem, profile, desc) = random_descriptors(&descs, top_byte);
        // The kernel's own PageBuddy test, written out per scheme.
        let is_buddy = |t: u32| if top_byte { t >> 24 == 0xf0 } else { t & 0xf000_0080 == 0xf000_0000 };
        let k = Kernel::new(&mem, &profile).unwrap();
        let f = scan_free(&k);
        let mut bad = None;
        f.free.for_each_one(|pfn| {
            let proven = (0..=10u64).any(|o| {
                let h = pfn & !((1 << o) - 1);
                let (t, ord) = descriptor(&mem, &desc, h);
                is_buddy(t)
                    && ord == o
                    && h + (1 << o) <= NR
                    && (h + 1..h + (1 << o)).all(|x| descriptor(&mem, &desc, x).0 == u32::MAX)
            });
            if !proven && bad.is_none() {
                bad = Some(pfn);
            }
        });
        prop_assert_eq!(bad, None);
    }

    /// Random page descriptors, asked about a random few frames: the
    /// targeted check never reports a frame the whole scan does not, and
    /// never panics or reads more than a whole scan's worth and a block.
    #[test]
    fn targeted_free_is_within_the_whole_scan(
        descs in proptest::collection::vec((0u8..7, any::<u32>(), 0u64..14), 2048),
        asked in proptest::collection::vec(0u64..NR, 1..120),
        top_byte in any::<bool>(),
    ) {
        let (mem, profile, _) = random_descriptors(&descs, top_byte);
        let k = Kernel::new(&mem, &profile).unwrap();
        let whole = scan_free(&k);
        let mut among = DirtyBitmap::new(NR);
        for &f in &asked {
            among.set(f);
        }
        let t = free_among(&k, &among);
        let mut allowed = whole.free.clone();
        allowed.and_with(&among);
        prop_assert_eq!(t.free.count_and(&allowed), t.free.count());
        prop_assert!(t.descriptors <= NR + 1024 + 11);
    }

    /// A consistent allocator: random non-overlapping aligned free blocks,
    /// frames in use marked as a kernel marks them (mapped, flagged or
    /// plain). Asked about any frames, the targeted check answers exactly
    /// what the whole scan does.
    #[test]
    fn targeted_free_matches_the_whole_scan_on_a_consistent_guest(
        blocks in proptest::collection::vec((0u64..2048, 0u32..11), 0..40),
        used in proptest::collection::vec((0u64..2048, 0u8..3), 0..400),
        asked in proptest::collection::vec(0u64..2048, 1..200),
        top_byte in any::<bool>(),
    ) {
        let mut b = GuestBuilder::new(NR, 4, DATA).unwrap();
        if top_byte {
            b.set_page_types(PageTypes::TopByte);
        }
        let base = 6144u64;
        let mut taken = vec![false; 2048];
        for (at, order) in blocks {
            let size = 1u64 << order;
            let head = at & !(size - 1);
            if head + size > 2048 || (head..head + size).any(|p| taken[p as usize]) {
                continue;
            }
            for p in head..head + size {
                taken[p as usize] = true;
            }
            b.free_block(base + head, order).unwrap();
        }
        for (at, kind) in used {
            if taken[at as usize] {
                continue;
            }
            let pa = b.desc_pa(base + at).unwrap();
            match kind {
                0 => b.mem.write_u32(pa + 48, 0), // mapped once
                1 => b.mem.write_u64(pa, 1 << 9), // a page flag
                _ => true,                         // unmarked
            };
        }
        let (mem, profile) = b.build();
        let k = Kernel::new(&mem, &profile).unwrap();
        let whole = scan_free(&k);
        let mut among = DirtyBitmap::new(NR);
        for &f in &asked {
            among.set(base + f);
        }
        let t = free_among(&k, &among);
        let mut expect = whole.free.clone();
        expect.and_with(&among);
        prop_assert_eq!(ones(&t.free), ones(&expect));
    }

    /// Random page tables: a pool of table frames filled with entries that
    /// point at each other, at the PGD, outside RAM or at huge leaves.
    #[test]
    fn random_page_tables_stay_bounded(
        entries in proptest::collection::vec((0usize..9, 0u64..512, 0u8..6, 0usize..9, any::<u64>()), 1..200),
        max_tables in 1u64..40,
    ) {
        let mut b = GuestBuilder::new(NR, 4, DATA).unwrap();
        let p = b.add_process(10, b"victim").unwrap();
        b.add_process(11, b"bystander").unwrap();
        let pgd = b.procs[p.0].pgd_pa;
        // Table 0 is the PGD (user half), 1..9 are data frames used as tables.
        let table = |i: usize| if i == 0 { pgd } else { (4200 + i as u64) << 12 };
        for (t, slot, kind, target, r) in entries {
            let slot = if t == 0 { slot % 256 } else { slot };
            let e = match kind {
                0 => table(target) | 7,
                1 => table(target) | 0x87,
                2 => ((r % (2 * NR)) << 12) | 7,
                3 => r,
                4 => 0,
                _ => ((r % 16) << 30) | 0x87,
            };
            b.mem.write_u64(table(t) + 8 * slot, e);
        }
        let (mem, profile) = b.build();
        let limits = Limits { max_tables, ..Limits::for_guest(NR) };
        let c = walk(&mem, &profile, limits).unwrap();
        check_consistent(&c, &limits);
        prop_assert!(c.mapped.len() == NR);
    }

    /// A small guest whose memory is random except the pages that make the
    /// profile valid (init_task, the top page table).
    #[test]
    fn random_memory_never_panics(seed in any::<u64>(), head in any::<u64>()) {
        let b = GuestBuilder::new(512, 4, 64).unwrap();
        let (mem, profile) = b.build();
        let mut bytes = mem.bytes().to_vec();
        let mut x = seed | 1;
        for (i, chunk) in bytes.chunks_mut(8).enumerate() {
            if (16 * 512..18 * 512).contains(&i) {
                continue;
            }
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            chunk.copy_from_slice(&x.to_le_bytes());
        }
        let mut m = ImageMem::from_bytes(bytes);
        // Send the list somewhere random inside the direct map.
        m.write_u64(16 * 4096 + 2048 + u64::from(TASK.tasks), profile.page_offset_base + (head % (512 * 4096)) / 8 * 8);
        let limits = Limits::for_guest(512);
        let k = Kernel::new(&m, &profile).unwrap();
        if let Ok(c) = classify(&k, None, &limits) {
            check_consistent(&c, &limits);
        }
        let f = scan_free(&k);
        prop_assert!(f.free.len() == 512);
        let mut o = LinuxOracle::new(&m, Freezer::default(), seed % 600);
        let mut out = DirtyBitmap::new(512);
        o.tainted_frames(&mut out).unwrap();
        prop_assert_eq!(out.count(), 512);
        o.free_frames(&all(512), &mut out).unwrap();
        prop_assert_eq!(out.count(), 0);
    }
}
