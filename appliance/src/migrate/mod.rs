//! The `migrate` mode: one side of a live migration, armed by dom0 through
//! our xenstore control directory (see `control`).
//!
//! - `source`: maps the guest, runs the pre-copy engine of
//!   `depmig-migrate` over our TCP link, suspends the guest for the copy
//!   round, and commits only on the destination's ACK; on any failure the
//!   guest is resumed with its suspend cancelled.
//! - `destination`: accepts the stream and fills the paused shell; applies
//!   the CPU state only once the stream is authenticated.
//! - `resume`: resumes a guest a dead source left suspended.
//!
//! Every run ends with `depmig-migrate: PASS …` or `depmig-migrate: FAIL …`
//! on the console and in `migrate/result`, then powers the appliance off.

mod control;
mod domain;
mod oracle;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::cell::{Cell, RefCell};
use core::sync::atomic::{AtomicU64, Ordering};

use depmig_control::bitmap_route::{self, Route};
use depmig_control::{keys, Encodings, Fault, Mode, Role as ArmedRole, Verdict};
use depmig_migrate::{
    codec, dest, engine_mode, report, source, AnyPolicy, Clock, Codec, DependencyOracle,
    DestConfig, NoOracle, PageTally, Progress, RoundStats, SourceConfig, SourceDomain, State,
    Transport, TransportError,
};
use depmig_tcplink::{Link, LinkConfig, Role};
use smoltcp::time::Duration;

use crate::net::{self, XenEnv};
use crate::platform::console::println;
use crate::platform::fail::End;
use crate::platform::xen::xenstore::Xenstore;
use crate::platform::xen::{domctl, Xen};

use control::{publish, Armed};
use domain::{XenShell, XenSource};

/// Pages of the foreign-mapping window (4 MiB).
const WINDOW_PAGES: usize = 1024;
/// How long the source may take to bring its link up (the destination may
/// still be starting); refused connects are retried meanwhile.
const CONNECT_SECS: u64 = 180;
/// Longest time the stream may make no progress. TCP backs off its
/// retransmissions 1, 2, 4, 8, 16 s (smoltcp's minimum RTO is 1 s): five
/// losses in a row already take 31 s, so a shorter bound would give up on
/// a link that TCP itself has not given up on.
const STALL_SECS: u64 = net::STALL_SECS;
/// Largest value we write in one node: xenstored refuses nodes of 2048
/// bytes or more from a domain (`quota_max_entry_size`), so longer reports
/// are split.
const XS_VALUE_MAX: usize = 2000;

struct XenClock(&'static Xen);

impl Clock for XenClock {
    fn now_ns(&self) -> u64 {
        self.0.now_ns()
    }
}

/// Publishes states and rounds to xenstore and the console.
struct Publisher<'x> {
    xs: &'x RefCell<Xenstore>,
    /// Set once the source entered [`State::Final`] (the guest is suspended).
    final_round: Option<&'x Cell<bool>>,
}

impl Progress for Publisher<'_> {
    fn state(&mut self, state: State) {
        if let (State::Final, Some(f)) = (state, self.final_round) {
            f.set(true);
        }
        println!("depmig-migrate: state {}", state.as_str());
        publish(&mut self.xs.borrow_mut(), keys::STATE, state.as_str());
    }
    fn round(&mut self, _stats: &RoundStats, line: &str) {
        println!("depmig-migrate: {line}");
        publish(&mut self.xs.borrow_mut(), keys::ROUND, line);
    }
    fn refusing(&mut self, error: &dyn core::fmt::Debug) {
        // Console only: the result key carries the verdict once the
        // destination has cleaned up.
        println!("depmig-migrate: refusing the stream: {error:?}");
    }
    fn fault_injected(&mut self, pfn: u64) {
        println!(
            "depmig-migrate: test fault corrupt-page: changed frame {pfn:#x} after the stream"
        );
    }
}

/// Time spent inside the link's send and receive calls, ns (for the
/// progress lines: how the copy time splits between mapping, copying and
/// the network).
pub static LINK_NS: AtomicU64 = AtomicU64::new(0);
/// The vif's frames sent, received, and lost on our side (transmit ring
/// full or backend error; receive errors and drops), as of the last link call.
pub static LINK_FRAMES: [AtomicU64; 3] = [AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)];

/// The transport of either role: counts the time spent in the link
/// ([`LINK_NS`]) and, for dom0's test fault `corrupt-final`
/// (`migrate/fault`, source only), flips one bit in the middle of the first
/// large send after the guest was suspended. The transcript tag was
/// computed over the true bytes, so only the destination's check of the
/// tag at the end can catch it; the migration must then fail and the guest
/// resume here.
struct TimedLink<'a, T> {
    inner: &'a mut T,
    xen: &'static Xen,
    corrupt_final: bool,
    final_round: &'a Cell<bool>,
}

type VifLink = Link<net::VifDevice, XenEnv>;

impl TimedLink<'_, VifLink> {
    fn timed<R>(&mut self, f: impl FnOnce(&mut VifLink) -> R) -> R {
        let t0 = self.xen.now_ns();
        let r = f(self.inner);
        LINK_NS.fetch_add(self.xen.now_ns().saturating_sub(t0), Ordering::Relaxed);
        let st = self.inner.device().front().stats();
        for (slot, v) in
            LINK_FRAMES
                .iter()
                .zip([st.tx_packets, st.rx_packets, st.tx_errors + st.rx_dropped])
        {
            slot.store(v, Ordering::Relaxed);
        }
        r
    }
}

impl Transport for TimedLink<'_, VifLink> {
    fn send(&mut self, data: &[u8]) -> Result<(), TransportError> {
        if self.corrupt_final && self.final_round.get() && data.len() >= 8192 {
            self.corrupt_final = false;
            let mut copy = Vec::new();
            copy.try_reserve_exact(data.len())
                .map_err(|_| TransportError::Failed(-12))?;
            copy.extend_from_slice(data);
            let at = data.len() / 2;
            if let Some(b) = copy.get_mut(at) {
                *b ^= 0x01;
            }
            log::warn!(
                "migrate: test fault corrupt-final: byte {at} of a {}-byte send flipped on the wire",
                data.len()
            );
            return self.timed(|l| Transport::send(l, &copy));
        }
        self.timed(|l| Transport::send(l, data))
    }
    fn flush(&mut self) -> Result<(), TransportError> {
        self.timed(Transport::flush)
    }
    fn recv(&mut self, buf: &mut [u8]) -> Result<usize, TransportError> {
        self.timed(|l| Transport::recv(l, buf))
    }
    fn recv_exact(&mut self, buf: &mut [u8]) -> Result<(), TransportError> {
        self.timed(|l| Transport::recv_exact(l, buf))
    }
}

/// A nonce unique to this run: our boot-relative clock, the TSC, the
/// wall clock and the role, mixed (it needs to be fresh, not secret).
fn nonce(xen: &Xen, role: u8) -> [u8; 16] {
    let mut s = xen.now_ns()
        ^ crate::platform::arch::cpu::rdtsc().rotate_left(17)
        ^ xen.shared.boot_wallclock_ns().unwrap_or(0).rotate_left(41)
        ^ u64::from(role) << 56;
    let mut out = [0u8; 16];
    for chunk in out.chunks_exact_mut(8) {
        // splitmix64
        s = s.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = s;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        chunk.copy_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    out
}

fn finish(xs: Option<&RefCell<Xenstore>>, pass: bool, text: &str) -> End {
    let line = if pass { Verdict::Pass } else { Verdict::Fail }.line(text);
    if let Some(xs) = xs {
        let mut xs = xs.borrow_mut();
        if !pass {
            publish(&mut xs, keys::STATE, State::Failed.as_str());
        }
        publish(&mut xs, keys::RESULT, &line);
    }
    println!("depmig-migrate: {line}");
    if pass {
        End::Pass
    } else {
        End::Fail
    }
}

/// Writes the report as `migrate/report` or, when longer than xenstored
/// takes, as `migrate/report-part/0..N` with `migrate/report-parts = N`.
fn publish_report(xs: &RefCell<Xenstore>, json: &str) {
    let mut xs = xs.borrow_mut();
    if json.len() <= XS_VALUE_MAX {
        publish(&mut xs, keys::REPORT, json);
        return;
    }
    let mut parts = 0usize;
    let mut rest = json;
    while !rest.is_empty() {
        let mut cut = rest.len().min(XS_VALUE_MAX);
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        let (head, tail) = rest.split_at(cut);
        publish(&mut xs, &keys::report_part(parts), head);
        parts += 1;
        rest = tail;
    }
    publish(&mut xs, keys::REPORT_PARTS, &format!("{parts}"));
}

/// Runs the `migrate` mode.
pub fn run(xen: &'static Xen) -> End {
    let xs = match Xenstore::new(xen) {
        Ok(x) => RefCell::new(x),
        Err(e) => return finish(None, false, &format!("xenstore: {e:?}")),
    };
    publish(&mut xs.borrow_mut(), keys::STATE, State::Waiting.as_str());
    let armed = match control::wait_armed(xen, &mut xs.borrow_mut()) {
        Ok(a) => a,
        Err(e) => return finish(Some(&xs), false, &format!("configuration: {e}")),
    };
    log::info!(
        "migrate: armed as {:?} for domain {} (mode {:?}, policy {:?})",
        armed.role,
        armed.guest,
        armed.mode,
        armed.policy
    );
    match armed.role {
        ArmedRole::Source => run_source(xen, &xs, &armed),
        ArmedRole::Destination => run_destination(xen, &xs, &armed),
        ArmedRole::Resume => run_resume(xen, &xs, &armed),
    }
}

fn link_config(armed: &Armed, mac: [u8; 6]) -> LinkConfig {
    let mut cfg = LinkConfig::new(mac, armed.ip, armed.prefix);
    cfg.connect_timeout = Duration::from_secs(CONNECT_SECS);
    cfg.stall_timeout = Duration::from_secs(STALL_SECS);
    cfg.retry_refused = Some(Duration::from_millis(500));
    cfg.recv_buffer_size = net::RECV_WINDOW;
    cfg
}

fn run_source(xen: &'static Xen, xs: &RefCell<Xenstore>, armed: &Armed) -> End {
    // Stock Xen stops the host when it copies a dirty bitmap to a PVH
    // domain (depmig_control::bitmap_route): we fetch it ourselves only where
    // the hypervisor says in its extra version that it carries the fix;
    // otherwise dom0 fetches it into our buffer, and `direct` is refused
    // before the guest is touched.
    let route = match armed
        .bitmap_route
        .resolve(bitmap_route::hypervisor_has_fix(&xen.extra))
    {
        Ok(r) => r,
        Err(e) => {
            return finish(
                Some(xs),
                false,
                &format!(
                    "{e} (Xen {}.{}{})",
                    xen.version.major, xen.version.minor, xen.extra
                ),
            )
        }
    };
    log::info!(
        "migrate: dirty bitmaps by route {} (armed {}, Xen {}.{}{})",
        route.as_str(),
        armed.bitmap_route.as_str(),
        xen.version.major,
        xen.version.minor,
        xen.extra
    );
    if route == Route::Direct {
        domctl::allow_bitmap_copy(true);
    }
    // Check the guest before touching the network.
    match domctl::getdomaininfo(xen, armed.guest) {
        Ok(i) if i.shutdown_reason().is_some() => {
            return finish(
                Some(xs),
                false,
                &format!("guest {} is shut down", armed.guest),
            )
        }
        Ok(_) => {}
        Err(e) => return finish(Some(xs), false, &format!("guest {}: {e}", armed.guest)),
    }
    // Every mode but the baseline reads the guest through what its agent
    // published; without a usable publication it FAILs here, it never
    // runs as the baseline instead.
    let guest_mem = if armed.mode == Mode::Baseline {
        None
    } else {
        match oracle_memory(xen, xs, armed.guest) {
            Ok(m) => Some(m),
            Err(e) => {
                return finish(
                    Some(xs),
                    false,
                    &format!("mode {}: {e}", armed.mode.as_str()),
                )
            }
        }
    };
    let final_round = Cell::new(false);
    let mut progress = Publisher {
        xs,
        final_round: Some(&final_round),
    };
    progress.state(State::Connecting);
    if let Err(e) = delta_cache_fits(armed.delta_cache.0) {
        return finish(Some(xs), false, &e);
    }
    let vif = match net::connect(xen, &mut xs.borrow_mut()) {
        Ok(v) => v,
        Err(e) => return finish(Some(xs), false, &format!("vif: {e}")),
    };
    let env = XenEnv::new(xen, vif.port);
    let role = Role::Connect {
        peer: armed.peer,
        port: armed.port,
    };
    let mut link = match Link::open(vif.dev, env, link_config(armed, vif.mac), role) {
        Ok(l) => l,
        Err(e) => {
            return finish(
                Some(xs),
                false,
                &format!("connecting to the destination: {e}"),
            )
        }
    };
    let mut dom = match XenSource::new(xen, xs, armed.guest, WINDOW_PAGES, route) {
        Ok(d) => d,
        Err(e) => {
            link.abort();
            return finish(
                Some(xs),
                false,
                &format!("guest {}: setup failed ({e:?})", armed.guest),
            );
        }
    };
    if let Some((mem, _)) = &guest_mem {
        if depmig_walker::PhysMem::nr_pfns(mem) != dom.nr_pfns() {
            link.abort();
            return finish(
                Some(xs),
                false,
                &format!("guest {}: its size changed during setup", armed.guest),
            );
        }
    }
    let mut agent_oracle = guest_mem.as_ref().map(|(mem, publication)| {
        let control = oracle::AgentControl::new(xen, xs, armed.guest);
        oracle::AgentOracle::new(xen, mem, control, publication)
    });
    let mut no_oracle = NoOracle;
    let oracle: &mut dyn DependencyOracle = match agent_oracle.as_mut() {
        Some(o) => o,
        None => &mut no_oracle,
    };
    let clock = XenClock(xen);
    let mut policy = AnyPolicy::new(armed.policy);
    let cfg = SourceConfig {
        key: &armed.key,
        nonce: nonce(xen, 1),
        mode: engine_mode(armed.mode),
        xen_major: u32::from(xen.version.major),
        xen_minor: u32::from(xen.version.minor),
        record_pages: source::RECORD_PAGES,
        verify: armed.verify.is_on(),
        compress: codec(armed.compress),
        encrypt: armed.encrypt.is_on(),
        delta_cache_mib: armed.delta_cache.0,
        adaptive: armed.encodings == Encodings::Adaptive,
    };
    let fault = control::read_opt(xs, keys::FAULT);
    let corrupt_final = match Fault::parse(&fault) {
        Ok(Fault::CorruptFinal) => {
            log::warn!(
                "migrate: test fault {} armed by dom0",
                Fault::CorruptFinal.as_str()
            );
            true
        }
        _ if fault.is_empty() => false,
        // The faults dom0 injects itself or arms the destination with
        // (`Fault::injected_by`) are never ours: unknown here, as any
        // other text.
        _ => {
            link.abort();
            return finish(Some(xs), false, &format!("unknown test fault {fault:?}"));
        }
    };
    let mut transport = TimedLink {
        inner: &mut link,
        xen,
        corrupt_final,
        final_round: &final_round,
    };
    let r = source::run(
        &mut dom,
        &mut transport,
        &clock,
        oracle,
        &mut policy,
        &mut progress,
        &cfg,
    );
    let m = dom.map_stats();
    log::info!(
        "migrate: mapped {} frames in {} batches ({} refused), map {} ms, unmap {} ms",
        m.mapped,
        m.batches,
        m.failed,
        m.map_ns / 1_000_000,
        m.unmap_ns / 1_000_000
    );
    drop(dom);
    if let Some(o) = &agent_oracle {
        log::info!("migrate: oracle: {}", o.summary());
    }
    drop(agent_oracle);
    let workload = control::read_opt(xs, keys::WORKLOAD);
    let scenario = control::read_opt(xs, keys::SCENARIO);
    let link_rate = control::read_opt(xs, keys::LINK_RATE)
        .parse::<u64>()
        .unwrap_or(0);
    let meta = |result: &'static str| report::ReportMeta {
        migrator: "depmig",
        scenario: scenario.as_str(),
        workload: workload.as_str(),
        link_rate,
        unix_offset_ns: xen.shared.boot_wallclock_ns(),
        result,
    };
    match r {
        Ok(out) => {
            // Report and result before the goodbye: dom0 may have paused
            // the destination already (it runs the guest's copy once we
            // published `committed`), and then the close waits it out.
            let s = &out.stats;
            log_codec("sent", s.codec, &s.page_tally, s.page_record_bytes(), {
                s.round_raw_bytes.iter().sum()
            });
            log_sealing("sent", s.encrypted, s.sealed_records);
            for (i, e) in s.round_encodings.iter().enumerate() {
                log::info!(
                    "migrate: round {} encodings {} ({} switches, {} pages raw, encode {} ms, link wait {} ms, last: {})",
                    i + 1,
                    e.state(),
                    e.switches,
                    e.off_pages,
                    e.encode_ns / 1_000_000,
                    e.wait_ns / 1_000_000,
                    e.why.map_or("no decision", |w| w.as_str())
                );
            }
            if let Some(c) = &s.delta_cache {
                log::info!(
                    "migrate: delta cache {} MiB ({} pages): {} hits, {} misses, {} inserts, {} evictions",
                    c.mib,
                    c.slots,
                    c.hits,
                    c.misses,
                    c.inserts,
                    c.evictions
                );
            }
            publish_report(xs, &report::build(s, &meta("committed")));
            let pages: u64 = s.rounds.iter().map(|r| r.sent).sum();
            let summary = format!(
                "committed rounds={} pages={} bytes={} downtime_ms={} total_ms={}",
                s.rounds.len(),
                pages,
                s.stream_bytes,
                s.downtime_ns().unwrap_or(0) / 1_000_000,
                s.total_ns().unwrap_or(0) / 1_000_000
            );
            let end = finish(Some(xs), true, &summary);
            if let Err(e) = link.close() {
                log::warn!("migrate: closing the link: {e}");
            }
            end
        }
        Err(f) => {
            link.abort();
            publish_report(xs, &report::build(&f.stats, &meta("failed")));
            let guest = match (f.resume_called, f.resumed, f.resume_error) {
                (false, ..) => String::from("guest never suspended"),
                (true, _, Some(e)) => format!("guest NOT resumed ({e})"),
                (true, true, None) => String::from("guest resumed"),
                (true, false, None) => String::from("guest was not suspended, nothing to resume"),
            };
            finish(Some(xs), false, &format!("{:?}; {guest}", f.error))
        }
    }
}

/// Heap the source keeps free beside its delta cache, for what it
/// allocates once connected: the 4 MiB page batch, the network's buffers,
/// the stream's records, the dirty bitmaps, with room to spare.
const DELTA_CACHE_HEAP_RESERVE: usize = 12 << 20;

/// Refuses a delta cache the heap cannot hold beside what the source
/// needs, before anything is connected (the cache is allocated, once, as
/// the migration starts).
fn delta_cache_fits(mib: u32) -> Result<(), String> {
    if mib == 0 {
        return Ok(());
    }
    let (used, total) = crate::platform::heap::usage();
    let free = total.saturating_sub(used);
    // Pages and one 8-byte tag per page.
    let need = ((mib as usize) << 20) + ((mib as usize) << 9);
    if need.saturating_add(DELTA_CACHE_HEAP_RESERVE) > free {
        return Err(format!(
            "delta-cache {mib} MiB does not fit: the heap has {} KiB free and the source keeps {} MiB of it for the rest (give the appliances more memory, or a smaller --delta-cache)",
            free / 1024,
            DELTA_CACHE_HEAP_RESERVE >> 20
        ));
    }
    Ok(())
}

/// Logs the page codec that ran and what it saved: page record bytes on
/// the wire against what Xen's PAGE_DATA would have taken.
fn log_codec(what: &str, c: Codec, t: &PageTally, wire: u64, raw: u64) {
    log::info!(
        "migrate: pages {what} {}: {} lz4, {} raw, {} zero, {} delta; page records {wire} bytes of {raw} uncompressed",
        c.as_str(),
        t.lz4,
        t.raw,
        t.zero,
        t.delta
    );
}

/// Logs whether the stream was sealed, and in how many records.
fn log_sealing(what: &str, encrypted: bool, records: u64) {
    if encrypted {
        log::info!("migrate: stream {what} sealed: {records} ChaCha20-Poly1305 records");
    } else {
        log::info!("migrate: stream {what} in clear, with the transcript tag");
    }
}

/// The guest's memory for the oracle and the agent's checked publication,
/// or why a mode that needs them cannot run.
fn oracle_memory(
    xen: &'static Xen,
    xs: &RefCell<Xenstore>,
    guest: u16,
) -> Result<(oracle::GuestPhys, oracle::Publication), String> {
    let nr = domain::nr_pfns_of(guest).map_err(|e| format!("guest size: {e}"))?;
    let mem =
        oracle::guest_phys(xen, guest, nr).map_err(|e| format!("oracle mapping window: {e}"))?;
    let publication =
        oracle::Publication::read(&mut xs.borrow_mut(), guest, &mem).map_err(|e| {
            format!(
                "the guest agent's publication in {} is unusable: {e:?}",
                oracle::agent_dir(guest)
            )
        })?;
    log::info!(
        "migrate: guest agent: taint table at frame {:#x}, kernel profile at frame {:#x}",
        publication.table_gfn,
        publication.profile_gfn
    );
    // One walk now, before the destination waits on us: what the guest
    // looks like and what a walk costs.
    let control = oracle::AgentControl::new(xen, xs, guest);
    oracle::AgentOracle::new(xen, &mem, control, &publication).survey();
    Ok((mem, publication))
}

fn run_destination(xen: &'static Xen, xs: &RefCell<Xenstore>, armed: &Armed) -> End {
    // The shell must be a paused, live domain.
    match domctl::getdomaininfo(xen, armed.guest) {
        Ok(i) if !i.is_paused() || i.is_dying() => {
            return finish(
                Some(xs),
                false,
                &format!("shell {} is not paused", armed.guest),
            )
        }
        Ok(_) => {}
        Err(e) => return finish(Some(xs), false, &format!("shell {}: {e}", armed.guest)),
    }
    let mut shell = match XenShell::new(xen, armed.guest, WINDOW_PAGES) {
        Ok(d) => d,
        Err(e) => {
            return finish(
                Some(xs),
                false,
                &format!("shell {}: setup failed ({e:?})", armed.guest),
            )
        }
    };
    let vif = match net::connect(xen, &mut xs.borrow_mut()) {
        Ok(v) => v,
        Err(e) => return finish(Some(xs), false, &format!("vif: {e}")),
    };
    let env = XenEnv::new(xen, vif.port);
    publish(
        &mut xs.borrow_mut(),
        keys::LISTENING,
        &format!("{}", armed.port),
    );
    println!("depmig-migrate: listening on port {}", armed.port);
    let mut link = match Link::open(
        vif.dev,
        env,
        link_config(armed, vif.mac),
        Role::Accept { port: armed.port },
    ) {
        Ok(l) => l,
        Err(e) => return finish(Some(xs), false, &format!("waiting for the source: {e}")),
    };
    let mut progress = Publisher {
        xs,
        final_round: None,
    };
    let mut cfg = DestConfig {
        accept: codec(armed.compress),
        accept_delta: armed.delta_cache.is_on(),
        ..DestConfig::new(&armed.key, nonce(xen, 2))
    };
    cfg.verify = armed.verify.is_on();
    cfg.encrypt = armed.encrypt.is_on();
    let fault = control::read_opt(xs, keys::FAULT);
    match Fault::parse(&fault) {
        // Without verification the damage would reach the guest.
        Ok(Fault::CorruptPage) if cfg.verify => {
            log::warn!(
                "migrate: test fault {} armed by dom0",
                Fault::CorruptPage.as_str()
            );
            cfg.corrupt_page = true;
        }
        Ok(Fault::CorruptPage) => {
            link.abort();
            return finish(
                Some(xs),
                false,
                "test fault corrupt-page needs verify=on: refused",
            );
        }
        _ if fault.is_empty() => {}
        _ => {
            link.abort();
            return finish(Some(xs), false, &format!("unknown test fault {fault:?}"));
        }
    }
    let never = Cell::new(false);
    let mut transport = TimedLink {
        inner: &mut link,
        xen,
        corrupt_final: false,
        final_round: &never,
    };
    let r = dest::run(
        &mut shell,
        &mut transport,
        &XenClock(xen),
        &mut progress,
        &cfg,
    );
    let m = shell.map_stats();
    log::info!(
        "migrate: mapped {} shell frames in {} batches ({} refused), map {} ms, unmap {} ms; gave RAM to {} frames",
        m.mapped,
        m.batches,
        m.failed,
        m.map_ns / 1_000_000,
        m.unmap_ns / 1_000_000,
        shell.populated_here
    );
    drop(shell);
    if let Ok(s) = &r {
        let t = &s.page_tally;
        log::info!(
            "migrate: pages came {}: {} lz4, {} raw, {} zero, {} delta ({} applied), {} payload bytes",
            s.codec.as_str(),
            t.lz4,
            t.raw,
            t.zero,
            t.delta,
            s.deltas_applied,
            t.payload_bytes
        );
        log_sealing("came", s.encrypted, s.sealed_records);
    }
    match r {
        Ok(s) => {
            // No goodbye: the ACK is acknowledged by the source's TCP (the
            // flush waited for it), and the source closes only after its
            // report. Stopping now lets dom0 find us stopped at the handoff
            // instead of pausing us first. (Nothing is sent: no RST.)
            drop(link);
            let verified = match &s.verify {
                Some(v) => format!(
                    " verified ranges={} data={} free={} holes={} rings={} digest_ms={} ms_per_gib={}",
                    v.ranges,
                    v.data,
                    v.free,
                    v.holes,
                    v.rings,
                    v.digest_ns / 1_000_000,
                    depmig_migrate::verify::ms_per_gib(v.digest_ns, v.bytes_read).unwrap_or(0)
                ),
                None => String::new(),
            };
            finish(
                Some(xs),
                true,
                &format!(
                    "applied pages={} zeroed={} holes={} populated={} params={} kept={} bytes={}{verified}",
                    s.pages_written,
                    s.pages_zeroed,
                    s.holes,
                    s.frames_populated,
                    s.params_applied,
                    s.params_kept,
                    s.bytes_received
                ),
            )
        }
        Err(e) => {
            // The NAK is flushed already; a close would wait on a source
            // that may still be sending.
            link.abort();
            finish(Some(xs), false, &format!("{e:?}"))
        }
    }
}

fn run_resume(xen: &'static Xen, xs: &RefCell<Xenstore>, armed: &Armed) -> End {
    let info = match domctl::getdomaininfo(xen, armed.guest) {
        Ok(i) => i,
        Err(e) => return finish(Some(xs), false, &format!("guest {}: {e}", armed.guest)),
    };
    if !info.is_suspended() {
        return finish(
            Some(xs),
            false,
            &format!(
                "guest {} is not suspended (flags {:#x})",
                armed.guest, info.flags
            ),
        );
    }
    // Log-dirty may still be on if the source died mid-migration.
    let _ = domctl::logdirty_off(xen, armed.guest);
    match domctl::resume_cancelled(xen, armed.guest) {
        Ok(()) => finish(Some(xs), true, &format!("guest {} resumed", armed.guest)),
        Err(e) => finish(
            Some(xs),
            false,
            &format!("resuming guest {}: {e}", armed.guest),
        ),
    }
}
