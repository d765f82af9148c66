//! depmig-lsm-agent: loads and attaches the taint tracker, publishes where
//! the taint table and kernel profile live, and freezes/thaws quiet
//! untainted groups on request.

use aya::maps::Map;
use aya::programs::lsm::LsmLinkId;
use aya::programs::tp_btf::BtfTracePointLinkId;
use aya::programs::{BtfTracePoint, Lsm, Program};
use aya::{Btf as AyaBtf, Ebpf, EbpfLoader, Endianness};
use depmig_guest_abi::table::{
    hdr, F_TAINTED, NR_PAGES, PAGE_SIZE, PROFILE_PAGE, STATE_TRACKING, TABLE_BYTES,
};
use depmig_lsm_agent::btf::Btf;
use depmig_lsm_agent::freezer::{pids, Freezer};
use depmig_lsm_agent::home::{FileHome, Home, HomeCheck, HomeError, Publication, Session, XS_DIR};
use depmig_lsm_agent::profile::{self, Values};
use depmig_lsm_agent::sys::{frames_of, Mapping};
use depmig_lsm_agent::table::{fnv1a, Table};
use depmig_lsm_agent::xenstore::{Xenstore, XsError};
use std::fs;
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Programs in the BPF object and the LSM hook or BTF tracepoint of each.
const LSM_PROGS: &[(&str, &str)] = &[
    ("dm_file_permission", "file_permission"),
    ("dm_file_open", "file_open"),
    ("dm_mmap_file", "mmap_file"),
    ("dm_socket_create", "socket_create"),
    ("dm_socket_connect", "socket_connect"),
    ("dm_socket_listen", "socket_listen"),
    ("dm_socket_accept", "socket_accept"),
    ("dm_socket_sendmsg", "socket_sendmsg"),
    ("dm_socket_recvmsg", "socket_recvmsg"),
    ("dm_socket_socketpair", "socket_socketpair"),
    ("dm_unix_stream_connect", "unix_stream_connect"),
    ("dm_unix_may_send", "unix_may_send"),
    ("dm_task_kill", "task_kill"),
    ("dm_ptrace_access_check", "ptrace_access_check"),
    ("dm_ptrace_traceme", "ptrace_traceme"),
    ("dm_msgsnd", "msg_queue_msgsnd"),
    ("dm_msgrcv", "msg_queue_msgrcv"),
    ("dm_shmat", "shm_shmat"),
    ("dm_semop", "sem_semop"),
    ("dm_inode_free", "inode_free_security"),
    ("dm_sk_free", "sk_free_security"),
    ("dm_file_free", "file_free_security"),
];
const TP_PROGS: &[(&str, &str)] = &[
    ("dm_fork", "sched_process_fork"),
    ("dm_exit", "sched_process_exit"),
];

/// Agent errors; each message says what to do.
#[derive(Debug)]
enum AgentError {
    /// Bad command line.
    Usage(String),
    /// The kernel has no BTF where we looked.
    BtfMissing(PathBuf, std::io::Error),
    /// The BTF is unreadable.
    BtfBad(String),
    /// BPF LSM is compiled in but not in the active LSM list.
    BpfLsmInactive(String),
    /// The active LSM list could not be read.
    LsmUnknown(std::io::Error),
    /// xenstore cannot be reached for publishing.
    Xenstore(XsError),
    /// The first publication could not be written.
    Publish(HomeError),
    /// Loading or attaching the BPF object failed.
    Bpf(String),
    /// Building the kernel profile failed.
    Profile(String),
    /// Other I/O.
    Io(String, std::io::Error),
}

impl std::fmt::Display for AgentError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AgentError::Usage(s) => f.write_str(s.trim_end()),
            AgentError::BtfMissing(p, e) => write!(
                f,
                "kernel BTF missing at {} ({e}): the guest kernel needs CONFIG_DEBUG_INFO_BTF",
                p.display()
            ),
            AgentError::BtfBad(s) => write!(f, "kernel BTF unusable: {s}"),
            AgentError::BpfLsmInactive(l) => write!(
                f,
                "BPF LSM is not active (active LSMs: {l}); boot the guest with `bpf` in lsm=, e.g. lsm={l},bpf"
            ),
            AgentError::LsmUnknown(e) => {
                write!(f, "cannot read the active LSM list /sys/kernel/security/lsm: {e}")
            }
            AgentError::Xenstore(e) => write!(
                f,
                "{e}; the agent publishes through xenstore (run in a Xen guest with xenbus), \
                 or pass --no-xenstore FILE to publish to a file"
            ),
            AgentError::Publish(e) => write!(f, "publishing: {e}"),
            AgentError::Bpf(s) => write!(f, "BPF: {s}"),
            AgentError::Profile(s) => write!(f, "kernel profile: {s}"),
            AgentError::Io(w, e) => write!(f, "{w}: {e}"),
        }
    }
}

/// The agent's command line. The defaults are where the guest image puts
/// things; the rig's hooks pass `--bpf` and, without xenstore,
/// `--no-xenstore`.
#[derive(Debug, clap::Parser)]
#[command(
    name = "depmig-lsm-agent",
    about = "Loads depmig's BPF LSM taint tracker, publishes the taint table and the kernel profile, freezes quiet untainted groups on request"
)]
struct Args {
    /// The compiled BPF object.
    #[arg(
        long,
        value_name = "OBJ",
        default_value = "/usr/lib/depmig/depmig_lsm.bpf.o"
    )]
    bpf: PathBuf,
    /// The kernel's BTF.
    #[arg(long, value_name = "FILE", default_value = "/sys/kernel/btf/vmlinux")]
    btf: PathBuf,
    /// Publish to this file instead of the guest's xenstore home.
    #[arg(long = "no-xenstore", value_name = "PUBLISH_FILE")]
    no_xenstore: Option<PathBuf>,
    /// Requests from the host side without xenstore.
    #[arg(long, value_name = "FILE", default_value = "/run/depmig/control")]
    control: PathBuf,
    /// Answers to those requests.
    #[arg(long, value_name = "FILE", default_value = "/run/depmig/status")]
    status: PathBuf,
    /// Where the BPF maps and programs are pinned.
    #[arg(long, value_name = "DIR", default_value = "/sys/fs/bpf/depmig")]
    pin: PathBuf,
    /// The cgroup v2 hierarchy the freezer uses.
    #[arg(long, value_name = "DIR", default_value = "/sys/fs/cgroup")]
    cgroup: PathBuf,
}

fn mount(src: &std::ffi::CStr, target: &str, fstype: &std::ffi::CStr) {
    let _ = fs::create_dir_all(target);
    if let Ok(t) = std::ffi::CString::new(target) {
        // SAFETY: mount(2) with valid NUL-terminated strings and no data; a
        // failure (already mounted, no permission) is detected by the caller.
        unsafe {
            libc::mount(
                src.as_ptr(),
                t.as_ptr(),
                fstype.as_ptr(),
                0,
                std::ptr::null(),
            );
        }
    }
}

/// Refuses unless `bpf` is in the active LSM list.
fn check_bpf_lsm() -> Result<(), AgentError> {
    let path = "/sys/kernel/security/lsm";
    if fs::metadata(path).is_err() {
        mount(c"securityfs", "/sys/kernel/security", c"securityfs");
    }
    let l = fs::read_to_string(path).map_err(AgentError::LsmUnknown)?;
    let l = l.trim().to_string();
    if l.split(',').any(|s| s == "bpf") {
        Ok(())
    } else {
        Err(AgentError::BpfLsmInactive(l))
    }
}

/// Attachments of the loaded programs (detachable for the overhead benchmark).
#[derive(Default)]
struct Links {
    lsm: Vec<(&'static str, LsmLinkId)>,
    tp: Vec<(&'static str, BtfTracePointLinkId)>,
}

impl Links {
    fn attach(&mut self, ebpf: &mut Ebpf) -> Result<(), AgentError> {
        if !self.lsm.is_empty() {
            return Ok(());
        }
        for (name, _) in LSM_PROGS {
            if let Some(Program::Lsm(p)) = ebpf.program_mut(name) {
                let id = p
                    .attach()
                    .map_err(|e| AgentError::Bpf(format!("attach {name}: {e}")))?;
                self.lsm.push((name, id));
            }
        }
        for (name, _) in TP_PROGS {
            if let Some(Program::BtfTracePoint(p)) = ebpf.program_mut(name) {
                let id = p
                    .attach()
                    .map_err(|e| AgentError::Bpf(format!("attach {name}: {e}")))?;
                self.tp.push((name, id));
            }
        }
        Ok(())
    }

    fn detach(&mut self, ebpf: &mut Ebpf) {
        for (name, id) in self.lsm.drain(..) {
            if let Some(Program::Lsm(p)) = ebpf.program_mut(name) {
                let _ = p.detach(id);
            }
        }
        for (name, id) in self.tp.drain(..) {
            if let Some(Program::BtfTracePoint(p)) = ebpf.program_mut(name) {
                let _ = p.detach(id);
            }
        }
    }
}

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// Asks the BPF program to read kernel words at `addrs` (task_kill probe).
fn probe(t: &Table<'_>, addrs: &[u64]) -> Result<Vec<u64>, AgentError> {
    let te = |e| AgentError::Profile(format!("{e}"));
    for i in 0..hdr::PROBE_SLOTS {
        t.set_u64(hdr::PROBE_ADDR + 8 * i, addrs.get(i).copied().unwrap_or(0))
            .map_err(te)?;
    }
    let seq = t.u32_at(hdr::PROBE_DONE).map_err(te)?.wrapping_add(1);
    t.set_u32(hdr::PROBE_SEQ, seq).map_err(te)?;
    // SAFETY: a null signal to ourselves; it only runs the permission hooks.
    unsafe {
        libc::kill(libc::getpid(), 0);
    }
    if t.u32_at(hdr::PROBE_DONE).map_err(te)? != seq {
        return Err(AgentError::Profile("the BPF probe did not answer".into()));
    }
    (0..addrs.len())
        .map(|i| t.u64_at(hdr::PROBE_VAL + 8 * i).map_err(te))
        .collect()
}

/// Taints processes that already hold external endpoints when tracking
/// starts: inet/packet/netlink sockets, ttys and other non-trivial
/// character devices, persistent files open for writing.
fn scan_existing(t: &Table<'_>, agent: u32) -> usize {
    let unix_inodes: Vec<String> = fs::read_to_string("/proc/net/unix")
        .unwrap_or_default()
        .lines()
        .skip(1)
        .filter_map(|l| l.split_ascii_whitespace().nth(6).map(str::to_string))
        .collect();
    let mut n = 0;
    for pid in pids() {
        if pid == agent {
            continue;
        }
        let Ok(dir) = fs::read_dir(format!("/proc/{pid}/fd")) else {
            continue;
        };
        let mut external = false;
        for e in dir.flatten().take(4096) {
            let Ok(link) = fs::read_link(e.path()) else {
                continue;
            };
            let l = link.to_string_lossy();
            if let Some(ino) = l.strip_prefix("socket:[").and_then(|s| s.strip_suffix(']')) {
                external |= !unix_inodes.iter().any(|u| u == ino);
            } else if l.starts_with('/') {
                external |= fd_is_external(pid, &e.file_name().to_string_lossy(), &e.path());
            }
        }
        if is_kthread(pid) {
            continue;
        }
        // Shared writable memory with others cannot be traced back to the
        // peers from here: be conservative.
        external |= fs::read_to_string(format!("/proc/{pid}/maps"))
            .map(|m| {
                m.lines()
                    .any(|l| l.split_ascii_whitespace().nth(1) == Some("rw-s"))
            })
            .unwrap_or(false);
        // Every process gets an entry now, so idle ones are freezable;
        // earlier interactions among them are unknown, but one that
        // reaches a frozen group later thaws and taints it.
        if let Ok(g) = t.ensure_process_group(pid) {
            if external && t.set_flags(g, F_TAINTED).is_ok() {
                n += 1;
            }
        }
    }
    n
}

/// Whether `pid` is a kernel thread (PF_KTHREAD in /proc/pid/stat).
fn is_kthread(pid: u32) -> bool {
    let Ok(s) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return true;
    };
    let flags = s
        .rsplit_once(')')
        .and_then(|(_, r)| r.split_ascii_whitespace().nth(6))
        .and_then(|f| f.parse::<u64>().ok())
        .unwrap_or(0x0020_0000);
    flags & 0x0020_0000 != 0
}

fn fd_is_external(pid: u32, fd: &str, path: &std::path::Path) -> bool {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let Ok(md) = fs::metadata(path) else {
        return false;
    };
    let ft = md.file_type();
    if ft.is_char_device() {
        let (maj, min) = (libc::major(md.rdev()), libc::minor(md.rdev()));
        return !(maj == 1 && matches!(min, 3 | 5 | 7 | 8 | 9));
    }
    if !ft.is_file() {
        return false;
    }
    let flags = fs::read_to_string(format!("/proc/{pid}/fdinfo/{fd}"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("flags:"))
                .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
        })
        .unwrap_or(0);
    if flags & 3 == 0 {
        return false; // read-only
    }
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()) else {
        return true;
    };
    // SAFETY: statfs(2) writes into the zeroed struct we pass.
    let mut sfs: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: valid path string and out pointer.
    if unsafe { libc::statfs(c.as_ptr(), &mut sfs) } != 0 {
        return true;
    }
    let magic = sfs.f_type as u64;
    const MEMORY_OR_PSEUDO: &[u64] = &[
        0x0102_1994,
        0x8584_58f6,
        0x9584_58f6,
        0x5345_434d,
        0x9fa0,
        0x6265_6572,
        0x27e0eb,
        0x6367_7270,
        0xcafe_4a11,
        0x6462_6720,
        0x7472_6163,
        0x7363_6673,
        0x6e73_6673,
        0x6265_6570,
        0x4249_4e4d,
        0x0904_1934,
    ];
    !MEMORY_OR_PSEUDO.contains(&magic)
}

fn run(args: Args) -> Result<(), AgentError> {
    // 1. Refuse early on a kernel we cannot track.
    let btf_bytes = fs::read(&args.btf).map_err(|e| AgentError::BtfMissing(args.btf.clone(), e))?;
    let btf = Btf::parse(&btf_bytes).map_err(|e| AgentError::BtfBad(e.to_string()))?;
    check_bpf_lsm()?;
    let mut home: Box<dyn Home> = match &args.no_xenstore {
        None => {
            let mut xs = Xenstore::open().map_err(AgentError::Xenstore)?;
            xs.mkdir(XS_DIR).map_err(AgentError::Xenstore)?;
            Box::new(xs)
        }
        Some(p) => Box::new(FileHome::new(
            p.clone(),
            args.control.clone(),
            args.status.clone(),
        )),
    };
    // xenstored is shared by every guest: ask it for requests every 100 ms
    // only; a file is cheap to read every 20 ms.
    let request_ticks: u32 = if args.no_xenstore.is_none() { 5 } else { 1 };

    // 2. Load the object against the kernel's BTF.
    let aya_btf = AyaBtf::parse(&btf_bytes, Endianness::default())
        .map_err(|e| AgentError::BtfBad(e.to_string()))?;
    let mut ebpf = EbpfLoader::new()
        .btf(Some(&aya_btf))
        .load_file(&args.bpf)
        .map_err(|e| AgentError::Bpf(format!("loading {}: {e}", args.bpf.display())))?;

    // 3. Map the table, find its frames, write the header.
    let map = ebpf
        .map("dm_table")
        .ok_or_else(|| AgentError::Bpf("no dm_table map".into()))?;
    let Map::Array(md) = map else {
        return Err(AgentError::Bpf("dm_table is not an array map".into()));
    };
    let mapping = Mapping::map(md.fd().as_fd(), TABLE_BYTES)
        .map_err(|e| AgentError::Io("mmap of the taint table".into(), e))?;
    let frames = frames_of(mapping.addr(), NR_PAGES as usize)
        .map_err(|e| AgentError::Io("frames of the taint table".into(), e))?;
    let t = Table::new(mapping.words()).map_err(|e| AgentError::Bpf(e.to_string()))?;
    let me = std::process::id();
    t.init_header(me, &frames)
        .map_err(|e| AgentError::Bpf(e.to_string()))?;
    mount(c"bpf", "/sys/fs/bpf", c"bpf");
    let _ = fs::create_dir_all(&args.pin);
    let pin = args.pin.join("table");
    let _ = fs::remove_file(&pin);
    map.pin(&pin)
        .map_err(|e| AgentError::Bpf(format!("pin {}: {e}", pin.display())))?;

    // 4. Load and attach every program.
    for (name, hook) in LSM_PROGS {
        let p: &mut Lsm = match ebpf.program_mut(name) {
            Some(Program::Lsm(p)) => p,
            _ => {
                return Err(AgentError::Bpf(format!(
                    "program {name} missing or not LSM"
                )))
            }
        };
        p.load(hook, &aya_btf)
            .map_err(|e| AgentError::Bpf(format!("load {name}: {e:?}")))?;
    }
    for (name, tp) in TP_PROGS {
        let p: &mut BtfTracePoint = match ebpf.program_mut(name) {
            Some(Program::BtfTracePoint(p)) => p,
            _ => {
                return Err(AgentError::Bpf(format!(
                    "program {name} missing or not tp_btf"
                )))
            }
        };
        p.load(tp, &aya_btf)
            .map_err(|e| AgentError::Bpf(format!("load {name}: {e:?}")))?;
    }
    let mut links = Links::default();
    links.attach(&mut ebpf)?;

    // 5. Kernel profile: BTF offsets, kallsyms addresses, probed values.
    let ks = fs::read_to_string("/proc/kallsyms")
        .map_err(|e| AgentError::Io("read /proc/kallsyms".into(), e))?;
    let syms = profile::parse_kallsyms(&ks).map_err(|e| AgentError::Profile(e.to_string()))?;
    let v = probe(
        &t,
        &[
            syms.page_offset_base,
            syms.vmemmap_base,
            syms.vmalloc_base,
            syms.phys_base,
            syms.l5_enabled,
        ],
    )?;
    let vals = Values {
        page_offset_base: v.first().copied().unwrap_or(0),
        vmemmap_base: v.get(1).copied().unwrap_or(0),
        vmalloc_base: v.get(2).copied().unwrap_or(0),
        phys_base: v.get(3).copied().unwrap_or(0),
        l5_enabled: v.get(4).copied().unwrap_or(0),
    };
    if vals.page_offset_base == 0 || vals.vmemmap_base == 0 {
        return Err(AgentError::Profile(
            "probe read zero for page_offset_base/vmemmap_base".into(),
        ));
    }
    let release = fs::read_to_string("/proc/sys/kernel/osrelease")
        .map_err(|e| AgentError::Io("read osrelease".into(), e))?;
    let prof = profile::build(&btf, &syms, &vals, release.trim())
        .map_err(|e| AgentError::Profile(e.to_string()))?;
    let page = prof.encode();
    let pbase = PROFILE_PAGE as usize * PAGE_SIZE;
    for (i, c) in page.chunks_exact(8).enumerate() {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        t.set_u64(pbase + 8 * i, u64::from_le_bytes(w))
            .map_err(|e| AgentError::Bpf(e.to_string()))?;
    }

    // 6. Start tracking, then taint what already talks to the outside.
    t.set_u32(hdr::STATE, STATE_TRACKING)
        .map_err(|e| AgentError::Bpf(e.to_string()))?;
    let pre = scan_existing(&t, me);

    // 7. Publish.
    let frame_list: Vec<String> = frames.iter().map(|f| format!("{f:x}")).collect();
    let (Some(&f0), Some(&f1)) = (frames.first(), frames.get(1)) else {
        return Err(AgentError::Bpf(
            "taint table has fewer than two pages".into(),
        ));
    };
    let mut session = Session::new(Publication {
        table_gfn: f0,
        profile_gfn: f1,
        table_pages: NR_PAGES,
    });
    session
        .publish(home.as_mut())
        .map_err(AgentError::Publish)?;
    println!(
        "depmig-lsm: tracking; table-gfn={f0:#x} pages={} pre-tainted={pre}",
        NR_PAGES
    );
    println!("depmig-lsm: profile {}", profile::render(&prof));
    println!("depmig-lsm: frames {}", frame_list.join(","));

    // 8. Serve requests.
    // SAFETY: installing an async-signal-safe handler that only stores an atomic.
    unsafe {
        libc::signal(
            libc::SIGTERM,
            on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t,
        );
        libc::signal(
            libc::SIGINT,
            on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t,
        );
    }
    let mut freezer = Freezer::new(&args.cgroup, me);
    let mut tick: u32 = 0;
    while !STOP.load(Ordering::SeqCst) {
        tick = tick.wrapping_add(1);
        if let Ok(fz) = freezer.as_mut() {
            if fz.frozen_groups() > 0 {
                if let Ok(n) = fz.thaw_requested(&t) {
                    if n > 0 {
                        println!("depmig-lsm: thawed {n} group(s) an interaction reached");
                    }
                }
            }
        }
        // After a live migration the guest is a new domain with an empty
        // home: publish again (checked about once a second, and whenever
        // the request text changes, before it is served).
        if tick.is_multiple_of(HOME_CHECK_TICKS) {
            if let Ok(c) = session.check_home(home.as_mut()) {
                report_home(&c);
            }
        }
        if tick.is_multiple_of(request_ticks) {
            if let Ok((check, req)) = session.poll(home.as_mut()) {
                if let Some(c) = &check {
                    report_home(c);
                }
                if let Some(req) = req {
                    let result = handle(&req.cmd, &t, &mut freezer, &frames, &mut ebpf, &mut links);
                    if let Err(e) = session.answer(home.as_mut(), &req, &result) {
                        println!("depmig-lsm: cannot answer request {}: {e}", req.seq);
                    }
                }
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    if let Ok(fz) = freezer.as_mut() {
        let _ = fz.thaw_all(&t);
    }
    println!("depmig-lsm: stopped");
    Ok(())
}

/// Serve-loop ticks (20 ms) between checks that the home still holds the
/// publication.
const HOME_CHECK_TICKS: u32 = 50;

/// Logs what a check of the home found, when it did something.
fn report_home(c: &HomeCheck) {
    match c {
        HomeCheck::Present => {}
        HomeCheck::Republished => println!("depmig-lsm: re-published (home was empty)"),
        HomeCheck::RepublishFailed(e) => {
            println!("depmig-lsm: home is empty and re-publishing failed (will retry): {e}")
        }
    }
}

/// Page digests of the table, comma separated.
fn digests(t: &Table<'_>) -> String {
    let mut page = [0u8; PAGE_SIZE];
    (0..NR_PAGES)
        .map(|i| match t.read_page(i, &mut page) {
            Ok(()) => format!("{:x}", fnv1a(&page)),
            Err(_) => "-".into(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn handle(
    cmd: &str,
    t: &Table<'_>,
    freezer: &mut Result<Freezer, depmig_lsm_agent::freezer::FreezeError>,
    frames: &[u64],
    ebpf: &mut Ebpf,
    links: &mut Links,
) -> String {
    match (cmd, freezer) {
        // Benchmark only: tracking is off while detached.
        ("bench-detach", _) => {
            links.detach(ebpf);
            "detached".into()
        }
        ("bench-attach", _) => match links.attach(ebpf) {
            Ok(()) => "attached".into(),
            Err(e) => format!("error {e}"),
        },
        ("freeze", Ok(fz)) => match fz.freeze_quiet(t) {
            Ok((g, p)) => {
                // Which processes stopped: the rig ties a freeze to the
                // writer it expects frozen.
                for (group, pids) in fz.frozen_members() {
                    let pids: Vec<String> = pids.iter().map(u32::to_string).collect();
                    println!("depmig-lsm: frozen group {group}: pids {}", pids.join(","));
                }
                format!("frozen {g} {p}")
            }
            Err(e) => format!("error {e}"),
        },
        ("thaw", Ok(fz)) => match fz.thaw_all(t) {
            Ok(n) => format!("thawed {n}"),
            Err(e) => format!("error {e}"),
        },
        ("freeze" | "thaw", Err(e)) => format!("error {e}"),
        ("dump-window", _) => {
            // Lets a reader outside check the published frames: digests of
            // every page, a quiet window, the digests again.
            // MemFree is read on both sides of the window: the dump falls
            // between the two readings, not at either.
            let f: Vec<String> = frames.iter().map(|f| format!("{f:x}")).collect();
            let memfree = || {
                fs::read_to_string("/proc/meminfo")
                    .ok()
                    .and_then(|m| {
                        m.lines().find_map(|l| l.strip_prefix("MemFree:")).and_then(|v| {
                            v.trim().trim_end_matches("kB").trim().parse::<u64>().ok()
                        })
                    })
                    .unwrap_or(0)
            };
            println!(
                "DEPMIG-DUMP-BEGIN memfree_kb={} frames={} digests={}",
                memfree(),
                f.join(","),
                digests(t)
            );
            std::thread::sleep(Duration::from_secs(4));
            println!(
                "DEPMIG-DUMP-END memfree_kb={} digests={}",
                memfree(),
                digests(t)
            );
            "dumped".into()
        }
        _ => "error unknown request".into(),
    }
}

fn main() -> ExitCode {
    let args = match <Args as clap::Parser>::try_parse() {
        Ok(a) => a,
        // --help prints and succeeds; anything else is a usage error.
        Err(e) if !e.use_stderr() => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            // clap's text begins with its own "error: ".
            let text = e.to_string();
            let text = text.strip_prefix("error: ").unwrap_or(&text);
            eprintln!(
                "depmig-lsm-agent: error: {}",
                AgentError::Usage(text.into())
            );
            return ExitCode::FAILURE;
        }
    };
    let r = run(args);
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("depmig-lsm-agent: error: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Args;
    use clap::Parser;
    use std::path::Path;

    #[test]
    fn the_rigs_invocations_parse() {
        // The rig's hooks and the guest-lsm tests' init.
        let a = Args::try_parse_from(["a", "--bpf", "/usr/lib/depmig/depmig_lsm.bpf.o"]).unwrap();
        assert_eq!(a.bpf, Path::new("/usr/lib/depmig/depmig_lsm.bpf.o"));
        assert_eq!(a.no_xenstore, None);
        assert_eq!(a.cgroup, Path::new("/sys/fs/cgroup"));
        // The walker's real-guest run publishes to a file.
        let a = Args::try_parse_from([
            "a",
            "--bpf",
            "/depmig/depmig_lsm.bpf.o",
            "--no-xenstore",
            "/run/depmig/publish",
        ])
        .unwrap();
        assert_eq!(
            a.no_xenstore.as_deref(),
            Some(Path::new("/run/depmig/publish"))
        );
        assert_eq!(a.control, Path::new("/run/depmig/control"));
    }

    #[test]
    fn usage_errors() {
        assert!(Args::try_parse_from(["a", "--bogus"]).is_err());
        assert!(Args::try_parse_from(["a", "--bpf"]).is_err());
        assert!(Args::try_parse_from(["a", "stray"]).is_err());
    }
}
