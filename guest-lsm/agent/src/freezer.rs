//! Freezing quiet untainted dependency groups with the cgroup v2 freezer:
//! each group's processes move into `<root>/depmig/g<id>`, which is frozen;
//! thawing unfreezes it and moves them back where they were.

use crate::table::{Table, TableError};
use depmig_guest_abi::table::{F_FROZEN, F_TAINTED, F_THAW_REQ};
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Errors of the freezer.
#[derive(Debug)]
pub enum FreezeError {
    /// cgroup v2 is not mounted at the cgroup root and could not be mounted.
    NoCgroup2(PathBuf),
    /// A cgroup file operation failed.
    Io(String, std::io::Error),
    /// The taint table could not be read.
    Table(TableError),
}

impl std::fmt::Display for FreezeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FreezeError::NoCgroup2(p) => write!(f, "cgroup v2 is not available at {}", p.display()),
            FreezeError::Io(what, e) => write!(f, "{what}: {e}"),
            FreezeError::Table(e) => write!(f, "taint table: {e}"),
        }
    }
}

impl From<TableError> for FreezeError {
    fn from(e: TableError) -> Self {
        FreezeError::Table(e)
    }
}

fn io<T>(what: impl FnOnce() -> String, r: std::io::Result<T>) -> Result<T, FreezeError> {
    r.map_err(|e| FreezeError::Io(what(), e))
}

/// One frozen group.
struct Frozen {
    group: u32,
    dir: PathBuf,
    /// pid -> cgroup path (relative to the root) it came from
    members: Vec<(u32, String)>,
}

/// The freezer's state.
pub struct Freezer {
    root: PathBuf,
    frozen: Vec<Frozen>,
    agent: u32,
}

/// A process as seen in /proc.
struct Proc {
    pid: u32,
    cgroup: String,
}

/// Whether `pid` is a kernel thread (PF_KTHREAD in /proc/pid/stat) or gone.
fn is_kthread_or_gone(pid: u32) -> bool {
    let Ok(s) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return true;
    };
    // fields after the last ')' : state ppid pgrp session tty tpgid flags
    let Some(rest) = s.rsplit_once(')').map(|(_, r)| r) else {
        return true;
    };
    let f: Vec<&str> = rest.split_ascii_whitespace().collect();
    let state = f.first().copied().unwrap_or("Z");
    let flags: u64 = f.get(6).and_then(|v| v.parse().ok()).unwrap_or(0x0020_0000);
    state == "Z" || state == "X" || flags & 0x0020_0000 != 0
}

/// Numeric entries of /proc.
pub fn pids() -> Vec<u32> {
    let mut v: Vec<u32> = fs::read_dir("/proc")
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    v.sort_unstable();
    v
}

fn cgroup_of(pid: u32) -> Option<String> {
    let s = fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("0::").map(str::to_string))
}

impl Freezer {
    /// A freezer over the cgroup v2 hierarchy at `root`, mounting it if needed.
    pub fn new(root: &Path, agent: u32) -> Result<Self, FreezeError> {
        if !root.join("cgroup.controllers").exists() {
            let _ = fs::create_dir_all(root);
            let src = c"cgroup2";
            let target = std::ffi::CString::new(root.as_os_str().as_encoded_bytes())
                .map_err(|_| FreezeError::NoCgroup2(root.into()))?;
            // SAFETY: mount(2) with valid NUL-terminated strings and no data.
            let r = unsafe {
                libc::mount(
                    src.as_ptr(),
                    target.as_ptr(),
                    src.as_ptr(),
                    0,
                    std::ptr::null(),
                )
            };
            if r != 0 || !root.join("cgroup.controllers").exists() {
                return Err(FreezeError::NoCgroup2(root.into()));
            }
        }
        Ok(Freezer {
            root: root.into(),
            frozen: Vec::new(),
            agent,
        })
    }

    /// Number of groups currently frozen.
    pub fn frozen_groups(&self) -> usize {
        self.frozen.len()
    }

    /// The frozen groups (by root pid) and the pids in each, for the log.
    pub fn frozen_members(&self) -> Vec<(u32, Vec<u32>)> {
        self.frozen
            .iter()
            .map(|f| (f.group, f.members.iter().map(|(pid, _)| *pid).collect()))
            .collect()
    }

    /// Freezes every untainted group except those holding pid 1, the agent
    /// or kernel threads. Returns (groups, processes) frozen.
    pub fn freeze_quiet(&mut self, t: &Table<'_>) -> Result<(usize, usize), FreezeError> {
        let mut by_root: BTreeMap<u32, Vec<Proc>> = BTreeMap::new();
        let mut excluded_roots = Vec::new();
        for pid in pids() {
            if pid == self.agent || is_kthread_or_gone(pid) {
                continue;
            }
            let Ok(Some(st)) = t.task_state(pid, pid) else {
                continue; // no entry: treated as tainted
            };
            if pid == 1 {
                excluded_roots.push(st.root);
                continue;
            }
            if st.tainted() || st.flags & F_FROZEN != 0 || st.root == 0 {
                continue;
            }
            let Some(cg) = cgroup_of(pid) else { continue };
            by_root
                .entry(st.root)
                .or_default()
                .push(Proc { pid, cgroup: cg });
        }
        let depmig = self.root.join("depmig");
        io(
            || format!("mkdir {}", depmig.display()),
            fs::create_dir_all(&depmig),
        )?;
        let (mut ng, mut np) = (0, 0);
        for (root, procs) in by_root {
            if excluded_roots.contains(&root) {
                continue;
            }
            // Mark first: an interaction from now on requests a thaw.
            t.set_flags(root, F_FROZEN)?;
            let dir = depmig.join(format!("g{root}"));
            io(
                || format!("mkdir {}", dir.display()),
                fs::create_dir_all(&dir),
            )?;
            let mut members = Vec::new();
            for p in procs {
                if fs::write(dir.join("cgroup.procs"), p.pid.to_string()).is_ok() {
                    members.push((p.pid, p.cgroup));
                }
            }
            io(
                || format!("freeze {}", dir.display()),
                fs::write(dir.join("cgroup.freeze"), "1"),
            )?;
            np += members.len();
            ng += 1;
            self.frozen.push(Frozen {
                group: root,
                dir,
                members,
            });
        }
        // Wait (bounded) for the kernel to report the cgroups frozen.
        let deadline = Instant::now() + Duration::from_secs(3);
        for f in &self.frozen {
            while Instant::now() < deadline {
                let ev = fs::read_to_string(f.dir.join("cgroup.events")).unwrap_or_default();
                if ev.lines().any(|l| l == "frozen 1") {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        // Whatever got tainted while we were freezing is thawed right away.
        self.thaw_requested(t)?;
        Ok((ng, np))
    }

    fn thaw_one(&self, f: &Frozen, t: &Table<'_>) -> Result<(), FreezeError> {
        io(
            || format!("thaw {}", f.dir.display()),
            fs::write(f.dir.join("cgroup.freeze"), "0"),
        )?;
        for (pid, cg) in &f.members {
            let back = self
                .root
                .join(cg.trim_start_matches('/'))
                .join("cgroup.procs");
            let _ = fs::write(back, pid.to_string());
        }
        let _ = fs::remove_dir(&f.dir);
        // Clear the marks on the old root and on its current root.
        let off = Table::group_off(f.group)?;
        t.clear_u32(off, F_FROZEN | F_THAW_REQ)?;
        if let Some(r) = t.find(f.group)? {
            t.clear_u32(Table::group_off(r)?, F_FROZEN | F_THAW_REQ)?;
        }
        Ok(())
    }

    /// Thaws the frozen groups an interaction reached (or that got tainted).
    /// Returns how many were thawed.
    pub fn thaw_requested(&mut self, t: &Table<'_>) -> Result<usize, FreezeError> {
        let mut n = 0;
        let mut keep = Vec::new();
        for f in std::mem::take(&mut self.frozen) {
            let own = t.u32_at(Table::group_off(f.group)?)?;
            let rootw = match t.find(f.group)? {
                Some(r) => t.u32_at(Table::group_off(r)?)?,
                None => F_TAINTED,
            };
            if (own | rootw) & (F_THAW_REQ | F_TAINTED) != 0 {
                self.thaw_one(&f, t)?;
                n += 1;
            } else {
                keep.push(f);
            }
        }
        self.frozen = keep;
        Ok(n)
    }

    /// Thaws everything. Returns how many groups were thawed.
    pub fn thaw_all(&mut self, t: &Table<'_>) -> Result<usize, FreezeError> {
        let all = std::mem::take(&mut self.frozen);
        let n = all.len();
        for f in &all {
            self.thaw_one(f, t)?;
        }
        Ok(n)
    }
}
