//! Prints how long the walker takes over a synthetic 512 MiB guest with 100
//! processes, against copying all of that guest's memory once through the
//! same memory port (the work round 1 of a migration does anyway).

use std::time::Instant;

use depmig_precopy::{DependencyOracle, DirtyBitmap, PortError};
use depmig_walker::synth::{GuestBuilder, PageSize};
use depmig_walker::{
    classify, scan_free, GroupControl, Kernel, Limits, LinuxOracle, PhysMem, TaintTable,
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
    let oracle_ms = time(reps, || {
        let _ = oracle.tainted_frames(&mut out);
        let _ = oracle.free_frames(&mut out);
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
    Ok(())
}
