//! The paper's workloads, scaled: `scale = 1.0` is a 2 GB guest (512 Ki
//! frames) on a 1 Gbit/s link, as in the paper's testbed.

use crate::guest::{Churn, Guest, Interaction, Owner, Proc};

/// Frames of the paper's 2 GB guest.
pub const PAPER_FRAMES: u64 = 512 * 1024;
/// The paper's link: 1 Gbit/s, in bytes per second.
pub const LINK_BYTES_PER_S: f64 = 125e6;
/// Wire bytes per page (data plus pfn entry).
pub const PAGE_WIRE_BYTES: f64 = 4104.0;

/// A workload's name and how to build it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    /// A process rewriting random pages of a 100 MB buffer, nothing else
    /// but an idle system (the paper's Figures 3 and 4).
    Dirtier,
    /// A long HTTP download: network-facing, page cache growing, socket
    /// buffers churning.
    HttpDownload,
    /// A network server that is mostly idle.
    IdleServer,
    /// The dirtier next to an interactive server that talks to a worker
    /// over a pipe, plus a batch job the server contacts once during the
    /// migration (a frozen group that must be thawed).
    Mix,
}

impl Workload {
    /// All workloads.
    pub const ALL: [Workload; 4] = [
        Workload::Dirtier,
        Workload::HttpDownload,
        Workload::IdleServer,
        Workload::Mix,
    ];

    /// Short name.
    pub fn name(self) -> &'static str {
        match self {
            Workload::Dirtier => "dirtier-100MB",
            Workload::HttpDownload => "http-download",
            Workload::IdleServer => "idle-server",
            Workload::Mix => "dirtier+interactive",
        }
    }

    /// Builds the guest at `scale` and runs it for a warm-up second.
    pub fn build(self, scale: f64, seed: u64) -> Guest {
        let frames = ((PAPER_FRAMES as f64 * scale) as u64).max(4096);
        let sc = |n: f64| ((n * scale) as usize).max(16);
        let link_pages = LINK_BYTES_PER_S / PAGE_WIRE_BYTES;
        let mut g = Guest::new(frames, seed);
        // Kernel image, slab and page cache: static, 15 % of memory.
        g.alloc(sc(PAPER_FRAMES as f64 * 0.15), Owner::Kernel);
        g.kernel_hot = g.alloc(256, Owner::Kernel);
        g.kernel_rate = 80.0;
        // Idle daemons: init (untainted, quiet) and sshd (listening socket).
        for (name, external) in [("init", false), ("sshd", true)] {
            let mut p = Proc::new(name);
            p.external = external;
            let pid = g.spawn(p);
            let f = g.alloc(sc(2048.0), Owner::Proc(pid));
            let k = g.alloc(4, Owner::Kernel);
            let p = &mut g.procs[pid as usize];
            p.frames = f;
            p.kernel_frames = k;
            p.kernel_rate = 1.0;
        }
        let dirtier = |g: &mut Guest| {
            let pid = g.spawn(Proc::new("dirtier"));
            let f = g.alloc(sc(25_600.0), Owner::Proc(pid));
            let k = g.alloc(4, Owner::Kernel);
            let p = &mut g.procs[pid as usize];
            p.frames = f;
            // 10 % faster than the link drains: random rewrites of the
            // buffer settle at a steady dirty set of ~18 % of it per round.
            p.write_rate = 1.1 * link_pages;
            p.kernel_frames = k;
            p.kernel_rate = 100.0;
            pid
        };
        let simple =
            |g: &mut Guest, name: &str, external: bool, frames: f64, rate: f64, krate: f64| {
                let mut p = Proc::new(name);
                p.external = external;
                let pid = g.spawn(p);
                let f = g.alloc(sc(frames), Owner::Proc(pid));
                let k = g.alloc(8, Owner::Kernel);
                let p = &mut g.procs[pid as usize];
                p.frames = f;
                p.write_rate = rate;
                p.kernel_frames = k;
                p.kernel_rate = krate;
                pid
            };
        match self {
            Workload::Dirtier => {
                dirtier(&mut g);
            }
            Workload::HttpDownload => {
                let pid = simple(&mut g, "wget", true, 256.0, 50.0, 200.0);
                let p = &mut g.procs[pid as usize];
                // 5 MB/s into the page cache; socket buffers churning.
                p.append_rate = 1280.0 * scale.max(0.05);
                p.churn = Some(Churn::new(256.0, 64));
            }
            Workload::IdleServer => {
                simple(&mut g, "httpd", true, 512.0, 5.0, 10.0);
            }
            Workload::Mix => {
                dirtier(&mut g);
                let server = simple(&mut g, "server", true, 2048.0, 400.0, 100.0);
                let worker = simple(&mut g, "worker", false, 1024.0, 300.0, 50.0);
                let batch = simple(&mut g, "batch", false, 8192.0, 2000.0, 50.0);
                g.interactions.push(Interaction::new(server, worker, 2.0));
                g.interactions.push(Interaction::new(server, batch, 0.5));
                g.procs[server as usize].churn = Some(Churn::new(100.0, 200));
            }
        }
        // Warm-up: one second of activity before the migration starts.
        for _ in 0..10 {
            g.run(100_000_000);
        }
        g
    }
}
