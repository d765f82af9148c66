//! Prints how long the walker takes over a synthetic 512 MiB guest with 100
//! processes, against copying all of that guest's memory once through the
//! same memory port (the work round 1 of a migration does anyway); then the
//! free-page question of a stop-and-copy round (a few hundred dirty frames)
//! asked both ways, whole array and targeted, through a page cache shaped
//! like the appliance's, counting the batches it asks for (in the
//! appliance each batch is a map and an unmap hypercall).

use std::time::Instant;

use depmig_precopy::{DependencyOracle, DirtyBitmap, PortError};
use depmig_walker::cache::Page;
use depmig_walker::synth::{GuestBuilder, PageSize};
use depmig_walker::{
    classify, free_among, scan_free, CachedMem, FrameSource, GroupControl, ImageMem, Kernel,
    KernelProfile, Limits, LinuxOracle, PhysMem, TaintTable,
};

const NR: u64 = 512 * 256; // 512 MiB
const DATA: u64 = 16384; // kernel objects below 64 MiB
const PROCS: i32 = 100;

struct NoFreezer;

impl GroupControl for NoFreezer {
    fn freeze(&mut self) -> Result<u32, PortError> {
        Ok(0)
    }
    fn thaw_all(&mut self) -> Result<(), PortError> {
        Ok(())
    }
}

/// Whole frames out of an image, as the appliance's mapping window gives.
struct Frames<'a>(&'a ImageMem);

impl FrameSource for Frames<'_> {
    type Error = ();
    fn fetch(
        &mut self,
        gfns: &[u64],
        pages: &mut [Box<Page>],
        results: &mut [Result<(), ()>],
    ) -> Result<(), ()> {
        for ((g, p), r) in gfns.iter().zip(pages.iter_mut()).zip(results.iter_mut()) {
            *r = self.0.read(g * 4096, &mut p[..]).map_err(|_| ());
        }
        Ok(())
    }
}

/// The appliance's cache shape: 128 pages, batches of up to 16 frames.
fn appliance_cache(mem: &ImageMem) -> CachedMem<Frames<'_>> {
    CachedMem::new(Frames(mem), mem.nr_pfns(), 128, 16)
}

/// A stop-and-copy round's dirty set: `n` frames spread over the guest
/// by a pseudo-random walk, one in `free_every` (if not 0) drawn from the
/// free order-10 blocks.
fn dirty_set(n: u64, free_every: u64) -> DirtyBitmap {
    let mut d = DirtyBitmap::new(NR);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    while d.count() < n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let pfn = if free_every != 0 && d.count().is_multiple_of(free_every) {
            98304 + x % (NR - 98304)
        } else {
            x % 98304
        };
        d.set(pfn);
    }
    d
}

/// Times and counts one way of answering the free-page question.
fn free_question(
    label: &str,
    mem: &ImageMem,
    profile: &KernelProfile,
    dirty: &DirtyBitmap,
    targeted: bool,
) -> Result<(u64, u64), String> {
    let cache = appliance_cache(mem);
    let k = Kernel::new(&cache, profile).map_err(|e| format!("{e:?}"))?;
    let before = cache.stats();
    let t = Instant::now();
    let (mut free, descriptors) = if targeted {
        let f = free_among(&k, dirty);
        (f.free, f.descriptors)
    } else {
        let f = scan_free(&k);
        (f.free, f.descriptors)
    };
    free.and_with(dirty);
    let ms = t.elapsed().as_secs_f64() * 1e3;
    let s = cache.stats();
    println!(
        "  {label:<40} {ms:7.2} ms, {:6} descriptors, {:5} batches, {:5} frames; {} of {} dirty free",
        descriptors,
        s.fetches - before.fetches,
        s.frames - before.frames,
        free.count(),
        dirty.count()
    );
    Ok((s.fetches - before.fetches, s.frames - before.frames))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

fn time<F: FnMut()>(reps: usize, mut f: F) -> f64 {
    let mut v = Vec::with_capacity(reps);
    for _ in 0..reps {
        let t = Instant::now();
        f();
        v.push(t.elapsed().as_secs_f64() * 1e3);
    }
    median(v)
}

fn main() -> Result<(), String> {
    let t = Instant::now();
    let mut b = GuestBuilder::new(NR, 4, DATA).map_err(|e| format!("{e:?}"))?;
    let gfn = b.add_taint_table().map_err(|e| format!("{e:?}"))?;
    let span = 98304 - DATA - 1024; // data frames for mappings
    for i in 0..PROCS {
        let pid = 1000 + i;
        let p = b
            .add_process(pid, b"worker")
            .map_err(|e| format!("{e:?}"))?;
        // 1000 scattered 4 KiB pages (text, heap, stack; some shared with
        // other processes) and one 2 MiB page.
        for j in 0..1000u64 {
            let pfn = DATA + (i as u64 * 997 + j * 131) % span;
            let va = 0x40_0000 + j * 0x1000 + (j / 300) * 0x1000_0000;
            b.map(p, va, pfn, PageSize::K4)
                .map_err(|e| format!("{e:?}"))?;
        }
        let huge = (DATA + span).next_multiple_of(512) + (i as u64 % 2) * 512;
        b.map(p, 0x7f00_0000_0000, huge, PageSize::M2)
            .map_err(|e| format!("{e:?}"))?;
        let group = 10 + i as u32;
        let flags = match i % 4 {
            0 | 1 => depmig_walker::taint::F_TAINTED,
            2 => depmig_walker::taint::F_FROZEN,
            _ => 0,
        };
        b.set_group(group, group, flags)
            .map_err(|e| format!("{e:?}"))?;
        b.set_task_entry(pid as u32, pid as u32, group)
            .map_err(|e| format!("{e:?}"))?;
    }
    for k in 0..50 {
        b.add_kthread(2 + k, b"kworker")
            .map_err(|e| format!("{e:?}"))?;
    }
    // Descriptors of the frames in use say so, as a kernel's do: of every
    // ten, four mapped (`_mapcount` 0), four with a page flag (slab,
    // reserved, page cache), two unmarked (kernel stacks, vmalloc).
    for pfn in 0..DATA + span {
        let pa = b.desc_pa(pfn).ok_or("no descriptor")?;
        match pfn % 10 {
            0..=3 => b.mem.write_u32(pa + 48, 0),
            4..=7 => b.mem.write_u64(pa, 1 << 9),
            _ => true,
        };
    }
    // The top quarter of memory free in order-10 blocks, plus scattered
    // order-0 pages.
    for head in (98304..NR).step_by(1024) {
        b.free_block(head, 10).map_err(|e| format!("{e:?}"))?;
    }
    for pfn in (DATA + span..98304).step_by(3) {
        b.free_block(pfn, 0).map_err(|e| format!("{e:?}"))?;
    }
    let (mem, profile) = b.build();
    println!(
        "guest: {} MiB, {} processes, built in {:.0} ms",
        NR / 256,
        PROCS,
        t.elapsed().as_secs_f64() * 1e3
    );

    let reps = 5;
    let mut page = vec![0u8; 4096];
    let copy_ms = time(reps, || {
        for pfn in 0..NR {
            let _ = mem.read(pfn * 4096, &mut page);
            std::hint::black_box(&page);
        }
    });
    let k = Kernel::new(&mem, &profile).map_err(|e| format!("{e:?}"))?;
    let table = TaintTable::read(&mem, gfn).map_err(|e| format!("{e:?}"))?;
    let limits = Limits::for_guest(NR);
    let mut c = None;
    let classify_ms = time(reps, || {
        c = classify(&k, Some(&table), &limits).ok();
    });
    let c = c.ok_or("classification failed")?;
    let mut f = None;
    let free_ms = time(reps, || f = Some(scan_free(&k)));
    let f = f.ok_or("no free scan")?;
    let mut oracle = LinuxOracle::new(&mem, NoFreezer, gfn);
    let mut out = DirtyBitmap::new(NR);
    let mut all = DirtyBitmap::new(NR);
    all.set_all();
    let oracle_ms = time(reps, || {
        let _ = oracle.tainted_frames(&mut out);
        let _ = oracle.free_frames(&all, &mut out);
    });
    println!(
        "tasks {} (kernel threads {}), address spaces {}, page tables read {}, mapped frames {}",
        c.stats.tasks,
        c.stats.kernel_threads,
        c.stats.mms,
        c.stats.tables,
        c.mapped.count()
    );
    println!(
        "frames: untainted {} (frozen {}), tainted {}, free {} in {} blocks, oracle free {}",
        c.untainted.count(),
        c.frozen.count(),
        c.tainted.count(),
        f.free.count(),
        f.blocks,
        out.count()
    );
    println!("median of {reps} runs:");
    println!("  copy all guest memory once (baseline) {copy_ms:8.2} ms");
    println!(
        "  task list + page tables + taint       {classify_ms:8.2} ms  ({:.3}x baseline)",
        classify_ms / copy_ms
    );
    println!(
        "  free-page scan (struct page)          {free_ms:8.2} ms  ({:.3}x baseline)",
        free_ms / copy_ms
    );
    println!(
        "  oracle: tainted_frames + free_frames  {oracle_ms:8.2} ms  ({:.3}x baseline)",
        oracle_ms / copy_ms
    );
    println!("free-page question of a stop-and-copy round, through a 128-page cache (one run):");
    println!("  (dirty sets: scattered frames; none free, or 1 in 10 in a free order-10 block)");
    for (n, free_every) in [(400u64, 0u64), (400, 10), (4000, 10)] {
        let dirty = dirty_set(n, free_every);
        let label = format!(
            "{n} dirty, {}",
            if free_every == 0 {
                "none free"
            } else {
                "1/10 free"
            }
        );
        let whole = free_question(&format!("{label}: whole"), &mem, &profile, &dirty, false)?;
        let targeted = free_question(&format!("{label}: targeted"), &mem, &profile, &dirty, true)?;
        println!(
            "  {label}: targeted asks {:.3}x the whole array's batches, {:.3}x its frames",
            targeted.0 as f64 / whole.0.max(1) as f64,
            targeted.1 as f64 / whole.1.max(1) as f64
        );
    }
    Ok(())
}
