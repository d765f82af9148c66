//! The simulated guest: frames, processes, kernel, allocator, taint.
//!
//! A frame's content is modelled by the id of the write that produced it
//! (ids are unique and increase with time) or 0 for a zero page. Every
//! write after the migration starts is recorded per frame, so the checker
//! can tell whether an image equals the guest's memory at some instant.

use depmig_precopy::DirtyBitmap;

use crate::rng::Rng;

/// Who owns a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Owner {
    /// In the guest's free lists (zero, with `init_on_free`).
    Free,
    /// Kernel memory (shared by everyone: counted as tainted).
    Kernel,
    /// User memory of process `pid`.
    Proc(u32),
}

/// Allocation churn: a process allocates frames at `rate` per second,
/// writes them, and frees the oldest once it holds more than `hold`.
#[derive(Clone, Debug)]
pub struct Churn {
    /// Frames allocated per second.
    pub rate: f64,
    /// Frames held before the oldest is freed.
    pub hold: usize,
    held: std::collections::VecDeque<u64>,
    acc: f64,
}

impl Churn {
    /// Churn of `rate` frames per second, holding `hold`.
    pub fn new(rate: f64, hold: usize) -> Self {
        Churn {
            rate,
            hold,
            held: Default::default(),
            acc: 0.0,
        }
    }
}

/// A process of the model.
#[derive(Clone, Debug)]
pub struct Proc {
    /// Name for reports.
    pub name: String,
    /// User frames it writes (its working set).
    pub frames: Vec<u64>,
    /// Random writes per second over `frames`.
    pub write_rate: f64,
    /// Kernel frames its activity dirties (task struct, stack, page tables).
    pub kernel_frames: Vec<u64>,
    /// Kernel writes per second while running.
    pub kernel_rate: f64,
    /// Talks to the outside world (socket, tty): taints its group.
    pub external: bool,
    /// Allocation churn, if any.
    pub churn: Option<Churn>,
    /// Sequential append at `append_rate` frames per second into newly
    /// allocated kernel frames (page cache of a download).
    pub append_rate: f64,
    /// Frozen by the agent (cgroup freezer): does nothing.
    pub frozen: bool,
    acc: f64,
    kacc: f64,
    aacc: f64,
}

impl Proc {
    /// A process with no activity yet.
    pub fn new(name: &str) -> Self {
        Proc {
            name: name.to_string(),
            frames: vec![],
            write_rate: 0.0,
            kernel_frames: vec![],
            kernel_rate: 0.0,
            external: false,
            churn: None,
            append_rate: 0.0,
            frozen: false,
            acc: 0.0,
            kacc: 0.0,
            aacc: 0.0,
        }
    }
}

/// Two processes that interact (pipe, unix socket) at `rate` per second;
/// each interaction merges their dependency groups.
#[derive(Clone, Debug)]
pub struct Interaction {
    /// One end.
    pub a: u32,
    /// Other end.
    pub b: u32,
    /// Events per second.
    pub rate: f64,
    acc: f64,
}

impl Interaction {
    /// An interaction between `a` and `b`.
    pub fn new(a: u32, b: u32, rate: f64) -> Self {
        Interaction {
            a,
            b,
            rate,
            acc: 0.0,
        }
    }
}

/// The whole guest.
#[derive(Debug)]
pub struct Guest {
    /// Current content of every frame.
    pub content: Vec<u64>,
    /// Owner of every frame.
    pub owner: Vec<Owner>,
    /// Content at the moment recording started.
    pub base: Vec<u64>,
    /// Writes since recording started: (write id, content) per frame.
    pub history: Vec<Vec<(u64, u64)>>,
    /// Write id counter.
    pub writes: u64,
    /// Write id at which recording started.
    pub recording_since: Option<u64>,
    /// Log-dirty bitmap (when enabled).
    pub dirty: DirtyBitmap,
    /// Whether log-dirty is on.
    pub logdirty: bool,
    /// Processes, indexed by pid.
    pub procs: Vec<Proc>,
    /// Interactions.
    pub interactions: Vec<Interaction>,
    /// Union-find parent per pid.
    parent: Vec<u32>,
    /// Taint per union-find root.
    tainted: Vec<bool>,
    /// Kernel frames dirtied by background activity.
    pub kernel_hot: Vec<u64>,
    /// Background kernel writes per second.
    pub kernel_rate: f64,
    kacc: f64,
    /// Free frames available to allocations.
    pub free_list: Vec<u64>,
    /// Suspended: nothing runs.
    pub suspended: bool,
    /// Simulated time.
    pub now_ns: u64,
    /// Groups thawed because an interaction reached them.
    pub thawed: u32,
    rng: Rng,
}

impl Guest {
    /// A guest of `frames` frames, all free, zero.
    pub fn new(frames: u64, seed: u64) -> Self {
        let n = frames as usize;
        Guest {
            content: vec![0; n],
            owner: vec![Owner::Free; n],
            base: vec![],
            history: vec![],
            writes: 0,
            recording_since: None,
            dirty: DirtyBitmap::new(frames),
            logdirty: false,
            procs: vec![],
            interactions: vec![],
            parent: vec![],
            tainted: vec![],
            kernel_hot: vec![],
            kernel_rate: 0.0,
            kacc: 0.0,
            free_list: (0..frames).rev().collect(),
            suspended: false,
            now_ns: 0,
            thawed: 0,
            rng: Rng::new(seed),
        }
    }

    /// Number of frames.
    pub fn frames(&self) -> u64 {
        self.content.len() as u64
    }

    /// Takes `n` frames from the free list for `owner`, writing each once.
    pub fn alloc(&mut self, n: usize, owner: Owner) -> Vec<u64> {
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            let Some(p) = self.free_list.pop() else { break };
            self.owner[p as usize] = owner;
            self.write(p, false);
            v.push(p);
        }
        v
    }

    /// Frees `p` (zeroed, back on the free list).
    pub fn free(&mut self, p: u64) {
        self.write(p, true);
        self.owner[p as usize] = Owner::Free;
        self.free_list.push(p);
    }

    /// Adds a process and returns its pid.
    pub fn spawn(&mut self, p: Proc) -> u32 {
        let pid = self.procs.len() as u32;
        self.tainted.push(p.external);
        self.parent.push(pid);
        self.procs.push(p);
        pid
    }

    /// One write to frame `p` (zero content if `zero`).
    pub fn write(&mut self, p: u64, zero: bool) {
        self.writes += 1;
        let c = if zero { 0 } else { self.writes };
        let i = p as usize;
        self.content[i] = c;
        if self.recording_since.is_some() {
            self.history[i].push((self.writes, c));
        }
        if self.logdirty {
            self.dirty.set(p);
        }
    }

    /// Starts recording writes (at the start of a migration).
    pub fn start_recording(&mut self) {
        self.base = self.content.clone();
        self.history = vec![Vec::new(); self.content.len()];
        self.recording_since = Some(self.writes);
    }

    fn find(&mut self, mut x: u32) -> u32 {
        while self.parent[x as usize] != x {
            let g = self.parent[self.parent[x as usize] as usize];
            self.parent[x as usize] = g;
            x = g;
        }
        x
    }

    /// Whether `pid`'s group is tainted.
    pub fn is_tainted(&mut self, pid: u32) -> bool {
        let r = self.find(pid);
        self.tainted[r as usize]
    }

    /// Merges the groups of `a` and `b` (symmetric taint diffusion); an
    /// interaction reaching a frozen group thaws it and taints it.
    pub fn interact(&mut self, a: u32, b: u32) {
        let (ra, rb) = (self.find(a), self.find(b));
        let any_frozen = self
            .group_members(ra)
            .chain(self.group_members(rb))
            .any(|p| self.procs[p].frozen);
        let t = self.tainted[ra as usize] || self.tainted[rb as usize] || any_frozen;
        if ra != rb {
            self.parent[rb as usize] = ra;
        }
        self.tainted[ra as usize] = t;
        if any_frozen {
            self.thawed += 1;
            let members: Vec<usize> = self.group_members(ra).collect();
            for m in members {
                self.procs[m].frozen = false;
            }
        }
    }

    fn group_members(&self, root: u32) -> impl Iterator<Item = usize> + '_ {
        (0..self.procs.len()).filter(move |&p| {
            let mut x = p as u32;
            while self.parent[x as usize] != x {
                x = self.parent[x as usize];
            }
            x == root
        })
    }

    /// Freezes every process whose group is untainted: such a group has
    /// had no external endpoint and no interaction with a tainted group so
    /// far (quiet). Returns the number of dependency groups frozen.
    pub fn freeze_quiet(&mut self) -> u32 {
        let n = self.procs.len() as u32;
        let mut roots = std::collections::BTreeSet::new();
        for pid in 0..n {
            if self.is_tainted(pid) {
                continue;
            }
            self.procs[pid as usize].frozen = true;
            let r = self.find(pid);
            roots.insert(r);
        }
        roots.len() as u32
    }

    /// Marks frames of tainted processes and of the kernel.
    pub fn tainted_frames(&mut self, out: &mut DirtyBitmap) {
        let taint: Vec<bool> = (0..self.procs.len() as u32)
            .map(|p| self.is_tainted(p))
            .collect();
        for (i, o) in self.owner.iter().enumerate() {
            let t = match o {
                Owner::Free => false,
                Owner::Kernel => true,
                Owner::Proc(pid) => taint[*pid as usize],
            };
            if t {
                out.set(i as u64);
            }
        }
    }

    /// Marks free frames.
    pub fn free_frames(&self, out: &mut DirtyBitmap) {
        for (i, o) in self.owner.iter().enumerate() {
            if *o == Owner::Free {
                out.set(i as u64);
            }
        }
    }

    /// Runs the guest for `dt_ns`.
    pub fn run(&mut self, dt_ns: u64) {
        self.now_ns += dt_ns;
        if self.suspended {
            return;
        }
        let dt = dt_ns as f64 * 1e-9;
        // Background kernel activity.
        self.kacc += self.kernel_rate * dt;
        while self.kacc >= 1.0 {
            self.kacc -= 1.0;
            let i = self.rng.below(self.kernel_hot.len() as u64) as usize;
            if let Some(&p) = self.kernel_hot.get(i) {
                self.write(p, false);
            }
        }
        for pid in 0..self.procs.len() {
            if self.procs[pid].frozen {
                continue;
            }
            let mut pr = std::mem::replace(&mut self.procs[pid], Proc::new(""));
            pr.acc += pr.write_rate * dt;
            while pr.acc >= 1.0 {
                pr.acc -= 1.0;
                let i = self.rng.below(pr.frames.len() as u64) as usize;
                if let Some(&p) = pr.frames.get(i) {
                    self.write(p, false);
                }
            }
            pr.kacc += pr.kernel_rate * dt;
            while pr.kacc >= 1.0 {
                pr.kacc -= 1.0;
                let i = self.rng.below(pr.kernel_frames.len() as u64) as usize;
                if let Some(&p) = pr.kernel_frames.get(i) {
                    self.write(p, false);
                }
            }
            pr.aacc += pr.append_rate * dt;
            while pr.aacc >= 1.0 {
                pr.aacc -= 1.0;
                // Page cache: kernel-owned, written once as data arrives.
                self.alloc(1, Owner::Kernel);
            }
            if let Some(ch) = pr.churn.as_mut() {
                ch.acc += ch.rate * dt;
                let mut n = 0;
                while ch.acc >= 1.0 {
                    ch.acc -= 1.0;
                    n += 1;
                }
                for _ in 0..n {
                    let got = self.alloc(1, Owner::Proc(pid as u32));
                    ch.held.extend(got);
                    if ch.held.len() > ch.hold {
                        if let Some(old) = ch.held.pop_front() {
                            self.free(old);
                        }
                    }
                }
            }
            self.procs[pid] = pr;
        }
        let mut inter = std::mem::take(&mut self.interactions);
        for it in &mut inter {
            let frozen_a = self.procs[it.a as usize].frozen;
            let frozen_b = self.procs[it.b as usize].frozen;
            if frozen_a && frozen_b {
                continue;
            }
            it.acc += it.rate * dt;
            while it.acc >= 1.0 {
                it.acc -= 1.0;
                self.interact(it.a, it.b);
            }
        }
        self.interactions = inter;
    }
}
