//! depmig-lsm-test: the in-guest taint tests and overhead benchmark, and the
//! host-side check that the published frames hold the taint table.
//!
//! In the guest the test driver must itself stay untainted and must not
//! interact with its subjects (it would join their groups), so it talks to
//! them only through directory markers (mkdir/stat are not interactions),
//! waits for them with waitpid, and reads the table with bpf(2).

use depmig_guest_abi::profile::{self as profile_layout, START_KERNEL_MAP};
use depmig_guest_abi::table::{
    self as layout, hdr, F_FROZEN, PAGE_SIZE, STATE_TRACKING, TABLE_BYTES,
};
use depmig_lsm_agent::sys::{lookup_first, obj_get};
use depmig_lsm_agent::table::{fnv1a, Table, TaskState};
use std::fs;
use std::io::{Read, Write};
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

const MARKS: &str = "/run/dmt";
const PIN: &str = "/sys/fs/bpf/depmig/table";
const CONTROL: &str = "/run/depmig/control";
const STATUS: &str = "/run/depmig/status";

fn mark(name: &str) {
    let _ = fs::create_dir(format!("{MARKS}/{name}"));
}

fn has(name: &str) -> bool {
    Path::new(&format!("{MARKS}/{name}")).exists()
}

fn wait_mark(name: &str, secs: u64) -> bool {
    let end = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < end {
        if has(name) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    false
}

/// Forks a subject that runs `f`, then waits for `release` and exits.
/// Subjects never print (their output would be an interaction).
fn spawn(release: &str, f: impl FnOnce()) -> i32 {
    // SAFETY: the driver is single-threaded, so the child may run Rust code.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        f();
        wait_mark(release, 60);
        // SAFETY: leave without running exit handlers or flushing the
        // parent's buffered output.
        unsafe { libc::_exit(0) };
    }
    pid
}

fn reap(pids: &[i32]) {
    for p in pids {
        let mut st = 0;
        // SAFETY: waiting for our own child.
        unsafe { libc::waitpid(*p, &mut st, 0) };
    }
}

/// A fresh copy of the taint table.
struct Snap(Vec<AtomicU64>);

impl Snap {
    fn take() -> Result<Snap, String> {
        let f = obj_get(PIN).map_err(|e| format!("open pinned table: {e}"))?;
        let b = lookup_first(&f, TABLE_BYTES).map_err(|e| format!("read table: {e}"))?;
        Ok(Snap(
            b.chunks_exact(8)
                .map(|c| {
                    let mut w = [0u8; 8];
                    w.copy_from_slice(c);
                    AtomicU64::new(u64::from_le_bytes(w))
                })
                .collect(),
        ))
    }
    fn state(&self, pid: i32) -> Option<TaskState> {
        let t = Table::new(&self.0).ok()?;
        t.task_state(pid as u32, pid as u32).ok().flatten()
    }
}

fn state(pid: i32) -> Option<TaskState> {
    Snap::take().ok()?.state(pid)
}

fn tainted(pid: i32) -> bool {
    state(pid).is_some_and(|s| s.tainted())
}

fn untainted(pid: i32) -> bool {
    state(pid).is_some_and(|s| !s.tainted())
}

fn same_group(a: i32, b: i32) -> bool {
    let Ok(s) = Snap::take() else { return false };
    match (s.state(a), s.state(b)) {
        (Some(x), Some(y)) => x.root == y.root,
        _ => false,
    }
}

fn describe(pid: i32) -> String {
    match state(pid) {
        Some(s) => format!(
            "pid {pid}: group {} root {} flags {:#x}",
            s.group,
            s.root,
            s.flags >> 24
        ),
        None => format!("pid {pid}: no entry"),
    }
}

/// Opens a TCP connection over loopback to a listener of our own.
fn tcp_talk() {
    if let Ok(l) = std::net::TcpListener::bind("127.0.0.1:0") {
        if let Ok(a) = l.local_addr() {
            if let Ok(mut c) = std::net::TcpStream::connect(a) {
                let _ = c.write_all(b"x");
                if let Ok((mut s, _)) = l.accept() {
                    let mut b = [0u8; 1];
                    let _ = s.read_exact(&mut b);
                }
            }
        }
    }
}

/// Creating an inet socket is enough to taint.
fn inet_socket() {
    // SAFETY: plain socket(2); the descriptor is deliberately kept open.
    unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0) };
}

fn compute_until(release: &str) {
    let mut x: u64 = 1;
    while !has(release) {
        for i in 0..200_000u64 {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(i));
        }
    }
}

struct Suite {
    pass: u32,
    fail: u32,
}

impl Suite {
    fn verdict(&mut self, name: &str, ok: bool, detail: String) {
        if ok {
            self.pass += 1;
        } else {
            self.fail += 1;
        }
        println!(
            "VERDICT {name} {} {detail}",
            if ok { "PASS" } else { "FAIL" }
        );
    }

    fn compute(&mut self) {
        let s = spawn("rel-compute", || compute_until("rel-compute"));
        std::thread::sleep(Duration::from_millis(400));
        let ok = untainted(s);
        let d = describe(s);
        mark("rel-compute");
        reap(&[s]);
        self.verdict("compute-only-untainted", ok, d);
    }

    fn tcp(&mut self) {
        let s = spawn("rel-tcp", || {
            tcp_talk();
            mark("done-tcp");
        });
        let ok = wait_mark("done-tcp", 20) && tainted(s);
        let d = describe(s);
        mark("rel-tcp");
        reap(&[s]);
        self.verdict("tcp-connect-taints", ok, d);
    }

    fn children(&mut self) {
        let t = spawn("rel-child", || {
            inet_socket();
            spawn("rel-child", || {
                mark(&format!("kid-t-{}", std::process::id()))
            });
        });
        let u = spawn("rel-child", || {
            spawn("rel-child", || {
                mark(&format!("kid-u-{}", std::process::id()))
            });
        });
        let kid = |p: &str| -> Option<i32> {
            let end = Instant::now() + Duration::from_secs(20);
            while Instant::now() < end {
                for e in fs::read_dir(MARKS).ok()?.flatten() {
                    let n = e.file_name().to_string_lossy().to_string();
                    if let Some(pid) = n.strip_prefix(p) {
                        return pid.parse().ok();
                    }
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            None
        };
        let (kt, ku) = (kid("kid-t-"), kid("kid-u-"));
        let ok_t = kt.is_some_and(tainted);
        let ok_u = ku.is_some_and(|k| untainted(k) && !same_group(k, u));
        let dt = kt.map(describe).unwrap_or("no child".into());
        let du = ku.map(describe).unwrap_or("no child".into());
        mark("rel-child");
        reap(&[t, u]);
        self.verdict("child-of-tainted-tainted", ok_t, dt);
        self.verdict("child-of-untainted-own-group", ok_u, du);
    }

    /// A and B share a pipe; `net` says who talks to the network and when.
    fn ab(&mut self, name: &str, net: Option<(char, bool)>) {
        let rel = format!("rel-{name}");
        let mut fds = [0i32; 2];
        // SAFETY: pipe(2) into a 2-int array.
        unsafe { libc::pipe(fds.as_mut_ptr()) };
        let (r, w) = (fds[0], fds[1]);
        let (n1, n2, n3) = (
            format!("{name}-b-read"),
            format!("{name}-a-done"),
            format!("{name}-b-done"),
        );
        let a = spawn(&rel, || {
            if net == Some(('a', false)) {
                tcp_talk();
            }
            // SAFETY: writing one byte from a valid buffer to our pipe end.
            unsafe { libc::write(w, b"x".as_ptr().cast(), 1) };
            wait_mark(&n1, 20);
            if net == Some(('a', true)) {
                tcp_talk();
            }
            mark(&n2);
        });
        let b = spawn(&rel, || {
            let mut c = [0u8; 1];
            // SAFETY: reading one byte into a valid buffer from our pipe end.
            unsafe { libc::read(r, c.as_mut_ptr().cast(), 1) };
            mark(&n1);
            if net == Some(('b', true)) {
                tcp_talk();
            }
            mark(&n3);
        });
        // SAFETY: closing the driver's copies; it never uses the pipe.
        unsafe {
            libc::close(r);
            libc::close(w);
        }
        let done = wait_mark(&n2, 20) && wait_mark(&n3, 20);
        let merged = same_group(a, b);
        let ok = done
            && merged
            && if net.is_some() {
                tainted(a) && tainted(b)
            } else {
                untainted(a) && untainted(b)
            };
        let d = format!("A {}; B {}", describe(a), describe(b));
        mark(&rel);
        reap(&[a, b]);
        self.verdict(name, ok, d);
    }

    fn signal(&mut self) {
        let t = spawn("rel-sig", || {});
        let s = spawn("rel-sig", || {
            // SAFETY: a null signal to a sibling.
            unsafe { libc::kill(t, 0) };
            mark("sig-sent");
        });
        let ok1 = wait_mark("sig-sent", 20) && same_group(s, t) && untainted(t);
        let d1 = format!("sender {}; target {}", describe(s), describe(t));
        let t2 = spawn("rel-sig", || {});
        let s2 = spawn("rel-sig", || {
            inet_socket();
            // SAFETY: a null signal to a sibling.
            unsafe { libc::kill(t2, 0) };
            mark("sig2-sent");
        });
        let ok2 = wait_mark("sig2-sent", 20) && same_group(s2, t2) && tainted(t2);
        let d2 = format!("tainted sender {}; target {}", describe(s2), describe(t2));
        mark("rel-sig");
        reap(&[t, s, t2, s2]);
        self.verdict("signal-merges", ok1, d1);
        self.verdict("signal-from-tainted-taints", ok2, d2);
    }

    fn persist(&mut self) {
        let mounted = fs::read_to_string("/proc/mounts")
            .unwrap_or_default()
            .lines()
            .any(|l| {
                l.split(' ').nth(1) == Some("/mnt/persist") && l.split(' ').nth(2) == Some("ext4")
            });
        let p = spawn("rel-persist", || {
            if let Ok(mut f) = fs::File::create("/mnt/persist/dmt-file") {
                let _ = f.write_all(b"persistent");
                let _ = f.sync_all();
            }
            mark("persist-done");
        });
        let v = spawn("rel-persist", || {
            if let Ok(mut f) = fs::File::create("/run/dmt-volatile") {
                let _ = f.write_all(b"volatile");
            }
            mark("volatile-done");
        });
        let ok_p = mounted && wait_mark("persist-done", 20) && tainted(p);
        let ok_v = wait_mark("volatile-done", 20) && untainted(v);
        let dp = format!("ext4 mounted={mounted} {}", describe(p));
        let dv = describe(v);
        mark("rel-persist");
        reap(&[p, v]);
        self.verdict("persistent-write-taints", ok_p, dp);
        self.verdict("tmpfs-write-untainted", ok_v, dv);
    }

    fn unix(&mut self) {
        let path = "/run/dmt-unix.sock";
        let srv = spawn("rel-unix", move || {
            if let Ok(l) = std::os::unix::net::UnixListener::bind(path) {
                mark("unix-listening");
                if let Ok((mut s, _)) = l.accept() {
                    let mut b = [0u8; 1];
                    let _ = s.read_exact(&mut b);
                }
            }
            mark("unix-served");
        });
        wait_mark("unix-listening", 20);
        let cli = spawn("rel-unix", move || {
            if let Ok(mut c) = std::os::unix::net::UnixStream::connect(path) {
                let _ = c.write_all(b"x");
            }
            mark("unix-sent");
        });
        let ok = wait_mark("unix-served", 20)
            && wait_mark("unix-sent", 20)
            && same_group(srv, cli)
            && untainted(srv);
        let d = format!("server {}; client {}", describe(srv), describe(cli));
        mark("rel-unix");
        reap(&[srv, cli]);
        self.verdict("unix-socket-merges", ok, d);
    }

    /// Short-lived children that share nothing give their group ids back.
    fn recycling(&mut self) {
        let next = || {
            Snap::take()
                .ok()
                .and_then(|s| Table::new(&s.0).ok()?.u32_at(hdr::NEXT_GROUP).ok())
        };
        let before = next();
        for _ in 0..300 {
            // SAFETY: single-threaded fork; the child exits at once.
            let p = unsafe { libc::fork() };
            if p == 0 {
                // SAFETY: immediate exit without running any Rust code.
                unsafe { libc::_exit(0) };
            }
            reap(&[p]);
        }
        let after = next();
        let ok = matches!((before, after), (Some(b), Some(a)) if a >= b && a - b < 30);
        self.verdict(
            "group-ids-recycled",
            ok,
            format!("300 forks moved next_group from {before:?} to {after:?}"),
        );
    }

    fn freeze(&mut self) {
        let s = spawn("rel-frz", || compute_until("rel-frz"));
        let s2 = spawn("rel-frz", || compute_until("rel-frz"));
        let i = spawn("rel-frz", move || {
            inet_socket();
            mark("i-ready");
            wait_mark("go", 60);
            // SAFETY: a null signal to the frozen subject.
            unsafe { libc::kill(s, 0) };
            mark("i-done");
        });
        wait_mark("i-ready", 20);
        // The driver must not be frozen itself: it touches the network.
        inet_socket();
        let r1 = request("1 freeze");
        let frozen_ok = r1.as_deref().is_some_and(|r| r.starts_with("1 frozen"));
        let f_s = is_frozen(s) && !progresses(s);
        let f_s2 = is_frozen(s2);
        let i_free = !is_frozen(i);
        self.verdict(
            "freeze-untainted",
            frozen_ok && f_s && f_s2 && i_free,
            format!(
                "status {r1:?}; s frozen={f_s} s2 frozen={f_s2} tainted interactor free={i_free}; {}",
                describe(s)
            ),
        );
        mark("go");
        let sent = wait_mark("i-done", 20);
        let end = Instant::now() + Duration::from_secs(5);
        while Instant::now() < end && is_frozen(s) {
            std::thread::sleep(Duration::from_millis(20));
        }
        let thawed = !is_frozen(s) && progresses(s) && tainted(s);
        let still = is_frozen(s2);
        self.verdict(
            "interaction-thaws-and-taints",
            sent && thawed && still,
            format!(
                "thawed={thawed} other still frozen={still}; {}",
                describe(s)
            ),
        );
        let r2 = request("2 thaw");
        let ok3 = r2.as_deref().is_some_and(|r| r.starts_with("2 thawed"))
            && !is_frozen(s2)
            && progresses(s2)
            && state(s2).is_some_and(|st| st.flags & F_FROZEN == 0);
        self.verdict(
            "thaw-request",
            ok3,
            format!("status {r2:?}; {}", describe(s2)),
        );
        mark("rel-frz");
        reap(&[s, s2, i]);
    }
}

/// Writes a control request and waits (bounded) for its status.
fn request(req: &str) -> Option<String> {
    let seq = req.split(' ').next()?;
    fs::write(format!("{CONTROL}.tmp"), req).ok()?;
    fs::rename(format!("{CONTROL}.tmp"), CONTROL).ok()?;
    let end = Instant::now() + Duration::from_secs(20);
    while Instant::now() < end {
        if let Ok(s) = fs::read_to_string(STATUS) {
            if s.split(' ').next() == Some(seq) {
                return Some(s);
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// Whether `pid` sits in a frozen cgroup.
fn is_frozen(pid: i32) -> bool {
    let Ok(c) = fs::read_to_string(format!("/proc/{pid}/cgroup")) else {
        return false;
    };
    let Some(p) = c.lines().find_map(|l| l.strip_prefix("0::")) else {
        return false;
    };
    fs::read_to_string(format!("/sys/fs/cgroup{p}/cgroup.events"))
        .is_ok_and(|e| e.lines().any(|l| l == "frozen 1"))
}

fn cpu_ticks(pid: i32) -> Option<u64> {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = s.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_ascii_whitespace().collect();
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

/// Whether `pid` accumulates CPU time over a short window.
fn progresses(pid: i32) -> bool {
    let Some(a) = cpu_ticks(pid) else {
        return false;
    };
    std::thread::sleep(Duration::from_millis(600));
    cpu_ticks(pid).is_some_and(|b| b > a)
}

fn suite() -> ExitCode {
    let _ = fs::create_dir_all(MARKS);
    // Wait for the agent to start tracking.
    let end = Instant::now() + Duration::from_secs(240);
    loop {
        if let Ok(s) = Snap::take() {
            if let Ok(t) = Table::new(&s.0) {
                if t.u32_at(hdr::STATE) == Ok(STATE_TRACKING) {
                    break;
                }
            }
        }
        if Instant::now() > end {
            println!("VERDICT agent-ready FAIL the agent did not start tracking");
            return ExitCode::FAILURE;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut s = Suite { pass: 0, fail: 0 };
    s.compute();
    s.tcp();
    s.children();
    s.ab("ab-pipe-then-a-net", Some(('a', true)));
    s.ab("ab-pipe-then-b-net", Some(('b', true)));
    s.ab("ab-a-net-then-pipe", Some(('a', false)));
    s.ab("ab-pipe-only-untainted", None);
    s.signal();
    s.persist();
    s.unix();
    s.recycling();
    s.freeze();
    println!("SUITE-DONE {} passed, {} failed", s.pass, s.fail);
    if s.fail == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Nanoseconds per operation of one run of `f(n)`.
fn per_op(n: u32, f: impl FnOnce(u32)) -> f64 {
    let t = Instant::now();
    f(n);
    t.elapsed().as_nanos() as f64 / f64::from(n)
}

/// One round of the three microbenchmarks: (pipe round trip, 64-byte
/// pread of a tmpfs file, fork+exit+wait), nanoseconds per operation.
fn bench_round(scale: u32) -> [f64; 3] {
    let mut a = [0i32; 2];
    let mut b = [0i32; 2];
    // SAFETY: pipe(2) into 2-int arrays.
    unsafe {
        libc::pipe(a.as_mut_ptr());
        libc::pipe(b.as_mut_ptr());
    }
    // SAFETY: single-threaded fork; the child only echoes bytes and exits.
    let echo = unsafe { libc::fork() };
    if echo == 0 {
        let mut c = [0u8; 1];
        // SAFETY: one-byte reads and writes on our pipe ends; the ends this
        // side does not use are closed so that EOF arrives.
        unsafe {
            libc::close(a[1]);
            libc::close(b[0]);
            while libc::read(a[0], c.as_mut_ptr().cast(), 1) == 1 {
                libc::write(b[1], c.as_ptr().cast(), 1);
            }
            libc::_exit(0);
        }
    }
    // SAFETY: closing the ends the parent does not use.
    unsafe {
        libc::close(a[0]);
        libc::close(b[1]);
    }
    let pipe = per_op(100 * scale, |n| {
        let mut c = [0u8; 1];
        for _ in 0..n {
            // SAFETY: one-byte writes and reads on our pipe ends.
            unsafe {
                libc::write(a[1], c.as_ptr().cast(), 1);
                libc::read(b[0], c.as_mut_ptr().cast(), 1);
            }
        }
    });
    // SAFETY: closing our ends ends the echo child.
    unsafe {
        libc::close(a[1]);
        libc::close(b[0]);
    }
    reap(&[echo]);
    let path = "/run/dmt-bench.dat";
    let _ = fs::write(path, vec![7u8; 4096]);
    let read = match fs::File::open(path) {
        Ok(f) => per_op(1000 * scale, |n| {
            use std::os::unix::fs::FileExt;
            let mut buf = [0u8; 64];
            for _ in 0..n {
                let _ = f.read_at(&mut buf, 0);
            }
        }),
        Err(_) => f64::NAN,
    };
    let fork = per_op(10 * scale, |n| {
        for _ in 0..n {
            // SAFETY: the child exits at once.
            let p = unsafe { libc::fork() };
            if p == 0 {
                // SAFETY: immediate exit in the child.
                unsafe { libc::_exit(0) };
            }
            reap(&[p]);
        }
    });
    [pipe, read, fork]
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Alternates rounds with the programs attached and detached (the agent
/// does it on request) so that drifting host load hits both alike; prints
/// the medians and the median of the per-round ratios.
fn bench_ab(rounds: u32) -> ExitCode {
    let mut with = Vec::new();
    let mut without = Vec::new();
    for r in 0..rounds {
        for attached in [true, false] {
            let seq = 100 + 2 * r + u32::from(!attached);
            let cmd = if attached {
                "bench-attach"
            } else {
                "bench-detach"
            };
            let want = if attached { "attached" } else { "detached" };
            match request(&format!("{seq} {cmd}")) {
                Some(s) if s.trim_end().ends_with(want) => {}
                other => {
                    println!("BENCH-RATIO failed: agent answered {other:?} to {cmd}");
                    return ExitCode::FAILURE;
                }
            }
            let m = bench_round(10);
            println!(
                "BENCH {} pipe_rt_ns={:.0} read_ns={:.0} fork_ns={:.0}",
                if attached { "lsm" } else { "base" },
                m[0],
                m[1],
                m[2]
            );
            if attached {
                with.push(m)
            } else {
                without.push(m)
            }
        }
    }
    // leave tracking on
    let _ = request(&format!("{} bench-attach", 100 + 2 * rounds));
    let mut out = [0f64; 3];
    for (k, o) in out.iter_mut().enumerate() {
        let mut ratios: Vec<f64> = with
            .iter()
            .zip(&without)
            .map(|(w, b)| w[k] / b[k])
            .collect();
        *o = median(&mut ratios);
    }
    let med = |v: &Vec<[f64; 3]>, k: usize| median(&mut v.iter().map(|m| m[k]).collect::<Vec<_>>());
    println!(
        "BENCH-MEDIANS ns/op attached: pipe_rt={:.0} read={:.0} fork={:.0}; detached: pipe_rt={:.0} read={:.0} fork={:.0}",
        med(&with, 0),
        med(&with, 1),
        med(&with, 2),
        med(&without, 0),
        med(&without, 1),
        med(&without, 2)
    );
    println!(
        "BENCH-RATIO (attached/detached, median of {rounds} alternating rounds) pipe_roundtrip={:.2} small_read={:.2} fork={:.2}",
        out[0], out[1], out[2]
    );
    ExitCode::SUCCESS
}

/// Host side: waits for the agent's dump window on the serial log, pauses
/// the VM through the QEMU monitor, saves guest RAM, resumes it, and
/// checks that the published frames hold the table pages the guest saw.
fn host_dump(a: &HostDump) -> ExitCode {
    let (log, mon, dump) = (a.serial.clone(), a.monitor.clone(), a.dump.clone());
    let timeout = a.timeout;
    let ram: u64 = a.ram_mb << 20;
    let fail = |why: String| {
        println!("VERDICT published-frames-hold-table FAIL {why}");
        ExitCode::FAILURE
    };
    let end = Instant::now() + Duration::from_secs(timeout);
    let find = |prefix: &str| -> Option<String> {
        while Instant::now() < end {
            let text = fs::read(&log).unwrap_or_default();
            let text = String::from_utf8_lossy(&text);
            // only a complete line: the guest may still be printing it
            if let Some(l) = text
                .split_inclusive('\n')
                .find(|l| l.starts_with(prefix) && l.ends_with('\n'))
            {
                return Some(l.trim_end().to_string());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    };
    let Some(begin) = find("DEPMIG-DUMP-BEGIN ") else {
        return fail("no dump window in the serial log".into());
    };
    let field = |line: &str, k: &str| -> Vec<String> {
        line.split(' ')
            .find_map(|kv| kv.strip_prefix(k))
            .map(|v| v.split(',').map(str::to_string).collect())
            .unwrap_or_default()
    };
    let frames: Vec<u64> = field(&begin, "frames=")
        .iter()
        .filter_map(|f| u64::from_str_radix(f, 16).ok())
        .collect();
    let before = field(&begin, "digests=");
    if frames.is_empty() || frames.len() != before.len() {
        return fail("malformed dump-window line".into());
    }
    if let Err(e) = monitor(
        &mon,
        &["stop", &format!("pmemsave 0 {ram} \"{dump}\""), "cont"],
    ) {
        return fail(format!("QEMU monitor: {e}"));
    }
    let Some(endl) = find("DEPMIG-DUMP-END ") else {
        return fail("no end of the dump window".into());
    };
    let after = field(&endl, "digests=");
    let Ok(mem) = fs::read(&dump) else {
        return fail("no memory dump".into());
    };
    let mut matched = 0;
    let mut stable = 0;
    for (i, f) in frames.iter().enumerate() {
        let off = (*f as usize) * PAGE_SIZE;
        let Some(page) = mem.get(off..off + PAGE_SIZE) else {
            return fail(format!("frame {f:#x} beyond guest RAM"));
        };
        let d = format!("{:x}", fnv1a(page));
        if before.get(i) == after.get(i) {
            stable += 1;
            if before.get(i) == Some(&d) {
                matched += 1;
            }
        }
    }
    // The header page must list its own frames.
    let hdr_ok = frames.first().is_some_and(|f0| {
        let off = *f0 as usize * PAGE_SIZE;
        mem.get(off..off + 8) == Some(&layout::MAGIC[..])
            && frames.iter().enumerate().all(|(i, f)| {
                let o = off + hdr::FRAMES + 8 * i;
                mem.get(o..o + 8)
                    .map(|b| u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
                    == Some(*f)
            })
    });
    let ok = hdr_ok && stable == frames.len() && matched == frames.len();
    println!(
        "VERDICT published-frames-hold-table {} {matched}/{} pages match from outside ({stable} stable, header lists its frames: {hdr_ok})",
        if ok { "PASS" } else { "FAIL" },
        frames.len()
    );
    let walk = frames
        .first()
        .zip(frames.get(1))
        .map(|(h, p)| walk_tasks(&mem, *h, *p));
    let walk_ok = matches!(walk, Some(Ok(_)));
    println!(
        "VERDICT profile-walks-task-list {} {}",
        if walk_ok { "PASS" } else { "FAIL" },
        match walk {
            Some(Ok(d)) | Some(Err(d)) => d,
            None => "no frames".into(),
        }
    );
    let memfree = |line: &str| -> u64 {
        field(line, "memfree_kb=")
            .first()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let memfree_kb = (memfree(&begin), memfree(&endl));
    let free = frames.get(1).map(|p| free_pages(&mem, *p, memfree_kb));
    let free_ok = matches!(free, Some(Ok(_)));
    println!(
        "VERDICT profile-finds-free-pages {} {}",
        if free_ok { "PASS" } else { "FAIL" },
        match free {
            Some(Ok(d)) | Some(Err(d)) => d,
            None => "no frames".into(),
        }
    );
    if ok && walk_ok && free_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Checks the kernel profile from outside: follows `init_task.tasks`
/// through the RAM dump with the published offsets and addresses, and
/// expects swapper, init (pid 1) and the agent (the table's agent tgid).
fn walk_tasks(mem: &[u8], hdr_frame: u64, prof_frame: u64) -> Result<String, String> {
    use depmig_guest_abi::profile::off;
    let rd = |pa: u64, n: usize| -> Option<&[u8]> {
        let a = usize::try_from(pa).ok()?;
        mem.get(a..a.checked_add(n)?)
    };
    let u64_at = |pa: u64| {
        rd(pa, 8).map(|b| u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
    };
    let u32_at = |pa: u64| rd(pa, 4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    let prof = prof_frame * PAGE_SIZE as u64;
    if rd(prof, 8) != Some(&profile_layout::MAGIC[..]) {
        return Err("no profile magic at the profile frame".into());
    }
    let g64 = |o: usize| u64_at(prof + o as u64).unwrap_or(0);
    let g32 = |o: usize| u64::from(u32_at(prof + o as u64).unwrap_or(0));
    let (init_task, pob, phys_base) = (
        g64(off::INIT_TASK),
        g64(off::PAGE_OFFSET_BASE),
        g64(off::PHYS_BASE),
    );
    let (tasks, pid, tgid, comm) = (
        g32(off::TASK_TASKS),
        g32(off::TASK_PID),
        g32(off::TASK_TGID),
        g32(off::TASK_COMM),
    );
    let agent = u32_at(hdr_frame * PAGE_SIZE as u64 + hdr::AGENT_TGID as u64).unwrap_or(0);
    // kernel image addresses map through phys_base, the rest through the direct map
    let pa = |va: u64| -> u64 {
        if va >= START_KERNEL_MAP {
            va.wrapping_sub(START_KERNEL_MAP).wrapping_add(phys_base)
        } else {
            va.wrapping_sub(pob)
        }
    };
    let name = |task: u64| -> String {
        rd(pa(task) + comm, 16)
            .map(|b| {
                String::from_utf8_lossy(b.split(|c| *c == 0).next().unwrap_or(&[])).into_owned()
            })
            .unwrap_or_default()
    };
    let swapper = name(init_task);
    let mut seen = Vec::new();
    let mut cur = init_task;
    for _ in 0..4096 {
        let next = u64_at(pa(cur) + tasks).ok_or("tasks.next outside RAM")?;
        let task = next.wrapping_sub(tasks);
        if task == init_task {
            break;
        }
        let p = u32_at(pa(task) + pid).ok_or("pid outside RAM")?;
        let t = u32_at(pa(task) + tgid).ok_or("tgid outside RAM")?;
        seen.push((p, t, name(task)));
        cur = task;
    }
    let init_ok = seen.iter().any(|(p, _, n)| *p == 1 && n == "init");
    let agent_ok = seen
        .iter()
        .any(|(p, t, n)| *p == agent && *t == agent && n.starts_with("depmig-lsm-age"));
    let d = format!(
        "init_task comm {swapper:?}, {} tasks walked, pid 1 init: {init_ok}, agent pid {agent} found: {agent_ok}",
        seen.len()
    );
    if swapper.starts_with("swapper") && init_ok && agent_ok {
        Ok(d)
    } else {
        Err(d)
    }
}

/// Checks the free-page rule from outside: walks the kernel page tables
/// (from `init_top_pgt`) to the `struct page` array at `vmemmap_base`,
/// counts the pages in free buddy blocks (`page_type & mask == value`,
/// order in `private`, at most the published largest order) and compares with the guest's MemFree, which also
/// counts per-CPU free lists: the buddy count must be at most MemFree and
/// at least 80% of it.
/// Slack on the upper bound, in KiB. The dump is taken between two MemFree
/// readings, and Linux sums MemFree from per-CPU vmstat deltas it folds in
/// lazily (up to its stat threshold, at most 125 pages, per CPU), so a
/// count of the buddy pages at the dump's instant may exceed both readings
/// by a little without any page being misread. A misread type encoding or
/// order field miscounts across the whole zone, far more than this.
const MEMFREE_SLACK_KB: u64 = 1024;

/// Counts the free pages the profile's buddy rule finds in the dump and
/// holds the count against MemFree read before and after it
/// (`memfree_kb`): at most the larger reading plus [`MEMFREE_SLACK_KB`], at
/// least 80 % of the smaller.
fn free_pages(mem: &[u8], prof_frame: u64, memfree_kb: (u64, u64)) -> Result<String, String> {
    use depmig_guest_abi::profile::off;
    let u64_at = |pa: u64| -> Option<u64> {
        let a = usize::try_from(pa).ok()?;
        let b = mem.get(a..a.checked_add(8)?)?;
        let mut w = [0u8; 8];
        w.copy_from_slice(b);
        Some(u64::from_le_bytes(w))
    };
    let prof = prof_frame * PAGE_SIZE as u64;
    let g64 = |o: usize| u64_at(prof + o as u64).unwrap_or(0);
    let g32 = |o: usize| g64(o) & 0xffff_ffff;
    if g32(off::LEVELS) != 4 {
        return Err("only 4-level paging is handled by this check".into());
    }
    let phys_base = g64(off::PHYS_BASE);
    let pml4 = g64(off::INIT_TOP_PGT)
        .wrapping_sub(START_KERNEL_MAP)
        .wrapping_add(phys_base);
    let (vmemmap, psize) = (g64(off::VMEMMAP_BASE), g32(off::PAGE_SIZE));
    let (ptype, private) = (g32(off::PAGE_TYPE), g32(off::PAGE_PRIVATE));
    let (mask, value) = (g32(off::BUDDY_MASK), g32(off::BUDDY_VALUE));
    let max_order = g32(off::MAX_ORDER);
    const ADDR: u64 = 0x000f_ffff_ffff_f000;
    // 4-level walk with 1 GiB and 2 MiB leaves
    let translate = |va: u64| -> Option<u64> {
        let e4 = u64_at((pml4 & ADDR) + ((va >> 39) & 511) * 8)?;
        if e4 & 1 == 0 {
            return None;
        }
        let e3 = u64_at((e4 & ADDR) + ((va >> 30) & 511) * 8)?;
        if e3 & 1 == 0 {
            return None;
        }
        if e3 & 0x80 != 0 {
            return Some((e3 & ADDR & !0x3fff_ffff) + (va & 0x3fff_ffff));
        }
        let e2 = u64_at((e3 & ADDR) + ((va >> 21) & 511) * 8)?;
        if e2 & 1 == 0 {
            return None;
        }
        if e2 & 0x80 != 0 {
            return Some((e2 & ADDR & !0x1f_ffff) + (va & 0x1f_ffff));
        }
        let e1 = u64_at((e2 & ADDR) + ((va >> 12) & 511) * 8)?;
        (e1 & 1 != 0).then_some((e1 & ADDR) + (va & 0xfff))
    };
    let nr_pfn = (mem.len() / PAGE_SIZE) as u64;
    let (mut free, mut blocks, mut pfn) = (0u64, 0u64, 0u64);
    while pfn < nr_pfn {
        let Some(pa) = translate(vmemmap.wrapping_add(pfn * psize)) else {
            pfn += 1;
            continue;
        };
        let pt = u64_at(pa + ptype).unwrap_or(0) & 0xffff_ffff;
        if pt & mask == value {
            let order = u64_at(pa + private).unwrap_or(0);
            if order > max_order {
                return Err(format!("pfn {pfn:#x}: buddy order {order} out of range"));
            }
            free += 1 << order;
            blocks += 1;
            pfn += 1 << order;
        } else {
            pfn += 1;
        }
    }
    let free_kb = free * 4;
    let (lo, hi) = (memfree_kb.0.min(memfree_kb.1), memfree_kb.0.max(memfree_kb.1));
    let d = format!(
        "{blocks} free blocks, {free_kb} KiB free by the buddy rule; guest MemFree {} KiB before the dump, {} KiB after",
        memfree_kb.0, memfree_kb.1
    );
    if lo > 0 && free_kb <= hi + MEMFREE_SLACK_KB && free_kb * 10 >= lo * 8 {
        Ok(d)
    } else {
        Err(d)
    }
}

/// Sends monitor commands one by one, each after the previous prompt.
fn monitor(sock: &str, cmds: &[&str]) -> Result<(), String> {
    let mut s = std::os::unix::net::UnixStream::connect(sock).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(60)))
        .map_err(|e| e.to_string())?;
    let wait_prompt = |s: &mut std::os::unix::net::UnixStream| -> Result<(), String> {
        let mut acc = Vec::new();
        let mut b = [0u8; 512];
        while !String::from_utf8_lossy(&acc).contains("(qemu)") {
            let n = s.read(&mut b).map_err(|e| e.to_string())?;
            if n == 0 {
                return Err("monitor closed".into());
            }
            acc.extend_from_slice(&b[..n]);
        }
        Ok(())
    };
    wait_prompt(&mut s)?;
    for c in cmds {
        s.write_all(format!("{c}\n").as_bytes())
            .map_err(|e| e.to_string())?;
        wait_prompt(&mut s)?;
    }
    Ok(())
}

/// The guest-lsm test programs: the suite and the A/B benchmark run in the
/// test guest, host-dump beside it on the host.
#[derive(Debug, clap::Parser)]
#[command(name = "depmig-lsm-test")]
enum Command {
    /// Every in-guest test, one VERDICT line each.
    Suite,
    /// The tracker's overhead: attached against detached, alternating.
    BenchAb {
        /// Rounds of each.
        #[arg(default_value_t = 8)]
        rounds: u32,
    },
    /// On the host: dumps the guest's RAM through QEMU's monitor while the
    /// suite holds still, and checks the published frames hold the table.
    HostDump(HostDump),
}

/// host-dump's options.
#[derive(Debug, clap::Args)]
struct HostDump {
    /// The guest's serial log.
    #[arg(long, value_name = "LOG")]
    serial: String,
    /// QEMU's monitor socket.
    #[arg(long, value_name = "SOCK")]
    monitor: String,
    /// The guest's RAM in MiB.
    #[arg(long = "ram-mb", value_name = "N")]
    ram_mb: u64,
    /// Where the dump goes.
    #[arg(long, value_name = "FILE")]
    dump: String,
    /// Seconds to wait for each step.
    #[arg(long, value_name = "S", default_value_t = 600)]
    timeout: u64,
}

fn main() -> ExitCode {
    match <Command as clap::Parser>::parse() {
        Command::Suite => suite(),
        Command::BenchAb { rounds } => bench_ab(rounds),
        Command::HostDump(a) => host_dump(&a),
    }
}

#[cfg(test)]
mod tests {
    use super::Command;
    use clap::Parser;

    #[test]
    fn the_test_scripts_invocations_parse() {
        assert!(matches!(
            Command::try_parse_from(["t", "suite"]),
            Ok(Command::Suite)
        ));
        assert!(matches!(
            Command::try_parse_from(["t", "bench-ab", "12"]),
            Ok(Command::BenchAb { rounds: 12 })
        ));
        match Command::try_parse_from([
            "t",
            "host-dump",
            "--serial",
            "s.log",
            "--monitor",
            "s.mon",
            "--ram-mb",
            "256",
            "--dump",
            "mem.dump",
            "--timeout",
            "420",
        ]) {
            Ok(Command::HostDump(a)) => {
                assert_eq!((a.serial.as_str(), a.monitor.as_str()), ("s.log", "s.mon"));
                assert_eq!(
                    (a.ram_mb, a.dump.as_str(), a.timeout),
                    (256, "mem.dump", 420)
                );
            }
            other => panic!("{other:?}"),
        }
        // A bad RAM size is refused, not read as 0.
        assert!(Command::try_parse_from([
            "t",
            "host-dump",
            "--serial",
            "s",
            "--monitor",
            "m",
            "--ram-mb",
            "x",
            "--dump",
            "d",
        ])
        .is_err());
    }
}
