//! Runs the walker over a raw guest RAM dump (QEMU `pmemsave 0 <ram>`, pfn
//! 0 at offset 0) given the taint table's header frame, and prints what it
//! finds: the profile, every address space with its class, free frames.

use std::process::ExitCode;

use depmig_precopy::{DependencyOracle, DirtyBitmap, PortError};
use depmig_walker::{
    census, classify, free_among, scan_free, GroupControl, ImageMem, Kernel, KernelProfile, Limits,
    LinuxOracle, PhysMem, TaintTable, PAGE_SIZE,
};

struct NoFreezer;

impl GroupControl for NoFreezer {
    fn freeze(&mut self) -> Result<u32, PortError> {
        Ok(0)
    }
    fn thaw_all(&mut self) -> Result<(), PortError> {
        Ok(())
    }
}

fn run(path: &str, gfn: &str) -> Result<(), String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{path}: {e}"))?;
    let gfn = u64::from_str_radix(gfn.trim_start_matches("0x"), 16)
        .map_err(|e| format!("table frame {gfn}: {e}"))?;
    let mem = ImageMem::from_bytes(bytes);
    println!(
        "guest: {} frames ({} MiB)",
        mem.nr_pfns(),
        mem.nr_pfns() / 256
    );
    let table = TaintTable::read(&mem, gfn).map_err(|e| format!("taint table: {e:?}"))?;
    println!(
        "taint table: {} pages, profile page {}, agent tgid {}, tracking {}, flags {:#x}",
        table.frames.len(),
        table.profile_page,
        table.agent_tgid,
        table.tracking,
        table.flags
    );
    let pgfn = table.profile_gfn().ok_or("no profile frame")?;
    let mut page = vec![0u8; PAGE_SIZE as usize];
    mem.read(pgfn * PAGE_SIZE, &mut page)
        .map_err(|e| format!("profile frame: {e:?}"))?;
    let profile = KernelProfile::parse(&page).map_err(|e| format!("profile: {e}"))?;
    println!(
        "profile: release {} levels {} text {:#x} page_offset_base {:#x} vmemmap_base {:#x} phys_base {:#x} init_top_pgt {:#x}",
        profile.release_str(),
        profile.levels,
        profile.text,
        profile.page_offset_base,
        profile.vmemmap_base,
        profile.phys_base,
        profile.init_top_pgt
    );
    println!(
        "profile: page types {:?} buddy (page_type & {:#x}) == {:#x} max order {}",
        profile.page.page_types,
        profile.page.buddy_mask,
        profile.page.buddy_value,
        profile.max_order
    );
    let k = Kernel::new(&mem, &profile).map_err(|e| format!("kernel: {e:?}"))?;
    println!("init_task: pid 0 swapper/0 (validated)");
    let limits = Limits::for_guest(mem.nr_pfns());
    let c = classify(&k, Some(&table), &limits).map_err(|e| format!("walk: {e:?}"))?;
    for p in &c.processes {
        let n = p.comm.iter().position(|&b| b == 0).unwrap_or(16);
        println!(
            "  tgid {:6} {:16} tasks {} pages {:6} {:?}{}",
            p.tgid,
            String::from_utf8_lossy(&p.comm[..n]),
            p.tasks,
            p.pages,
            p.class,
            p.error.map(|e| format!(" error {e:?}")).unwrap_or_default()
        );
    }
    println!(
        "tasks {} (kernel threads {}), address spaces {} (failed {}), page tables {}, mapped frames {}",
        c.stats.tasks,
        c.stats.kernel_threads,
        c.stats.mms,
        c.stats.failed_mms,
        c.stats.tables,
        c.mapped.count()
    );
    println!(
        "frames: untainted {} (frozen {}), tainted {}",
        c.untainted.count(),
        c.frozen.count(),
        c.tainted.count()
    );
    let f = scan_free(&k);
    println!(
        "struct page scan: {} free frames in {} blocks, {} rejected, {} unreadable",
        f.free.count(),
        f.blocks,
        f.rejected,
        f.unreadable
    );
    targeted_check(&k, &f);
    let mut all = DirtyBitmap::new(mem.nr_pfns());
    all.set_all();
    let n = census(&k, Some(&table), &limits, &all).map_err(|e| format!("census: {e:?}"))?;
    println!(
        "census of every frame: {} asked; user {} (walk: {} mapped), user page tables {}, kernel flagged {}, kernel typed {}, plain {}, buddy heads {}, unreadable {}; {} owners",
        n.asked,
        n.user,
        c.mapped.count(),
        n.page_tables,
        n.flagged,
        n.typed,
        n.plain,
        n.buddy,
        n.unreadable,
        n.owners.len()
    );
    let mut o = LinuxOracle::new(&mem, NoFreezer, gfn);
    let mut out = DirtyBitmap::new(mem.nr_pfns());
    o.free_frames(&all, &mut out)
        .map_err(|e| format!("oracle: {e:?}"))?;
    println!(
        "oracle free frames: {} ({:.1}% of RAM){}",
        out.count(),
        100.0 * out.count() as f64 / mem.nr_pfns() as f64,
        o.last_error()
            .map(|e| format!(" fell back: {e:?}"))
            .unwrap_or_default()
    );
    Ok(())
}

/// Asks the targeted free-page check about sets of frames the size of a
/// stop-and-copy round's dirty set (half of them free by the whole scan,
/// half anywhere) and compares each answer with the whole scan's.
fn targeted_check<M: PhysMem>(k: &Kernel<'_, M>, whole: &depmig_walker::FreeScan) {
    let nr = k.mem().nr_pfns();
    let free: Vec<u64> = whole.free.iter_ones().collect();
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let (mut agree, mut asked_free, mut found_free, mut descriptors) = (0, 0, 0, 0);
    let sets = 8;
    for _ in 0..sets {
        let mut among = DirtyBitmap::new(nr);
        while among.count() < 400 {
            let pfn = match free.len() as u64 {
                n if n > 0 && among.count().is_multiple_of(2) => free[(next() % n) as usize],
                _ => next() % nr,
            };
            among.set(pfn);
        }
        let t = free_among(k, &among);
        let mut expect = whole.free.clone();
        expect.and_with(&among);
        if t.free == expect {
            agree += 1;
        }
        asked_free += expect.count();
        found_free += t.free.count();
        descriptors += t.descriptors;
    }
    println!(
        "targeted free check: {agree} of {sets} sets of 400 frames agree with the whole scan; {found_free} of {asked_free} free frames asked found; {} descriptors read a set (whole scan {})",
        descriptors / sets,
        whole.descriptors
    );
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let (Some(path), Some(gfn)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: walker-dump RAM.dump TABLE_HEADER_GFN(hex)");
        return ExitCode::FAILURE;
    };
    match run(path, gfn) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("walker-dump: {e}");
            ExitCode::FAILURE
        }
    }
}
