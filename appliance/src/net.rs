//! The appliance's network: a netfront on the vif the toolstack gave this
//! domain, under smoltcp, and the `nettest` mode that measures a TCP stream
//! between two appliances.
//!
//! The portable halves live in `depmig-netfront` (rings, slots, response
//! checks, the smoltcp device) and `depmig-tcplink` (the blocking stream with
//! deadlines); this file supplies what they abstract: pages of our own RAM
//! shared with the backend, grants, the event channel, xenstore and the clock.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::alloc::Layout;
use core::sync::atomic::{fence, Ordering};

use depmig_control::addr::{parse_ipv4, parse_prefix};
use depmig_netfront::config::{self, ConfigError, XenbusState};
use depmig_netfront::front::SLOTS;
use depmig_netfront::{Buffers, NetDevice, Netfront, Notify, SharedMem, PAGE_SIZE};
use depmig_tcplink::{Env, Link, LinkConfig, LinkError, Role};
use smoltcp::time::{Duration, Instant};
use xen_abi::errno::XenErrno;
use xen_abi::{DomId, PAGE_SHIFT};

use crate::platform::console::println;
use crate::platform::fail::End;
use crate::platform::xen::grant::GrantError;
use crate::platform::xen::xenstore::{Xenstore, XsClientError};
use crate::platform::xen::{evtchn, Wake, Xen};
use xenstore_wire::{WireError, XsError};

/// The frontend directory of our first vif, relative to our xenstore home.
const VIF: &str = "device/vif/0";
/// How long the backend may take to connect.
const CONNECT_NS: u64 = 60_000_000_000;

/// Why the vif could not be brought up.
#[derive(Debug)]
pub enum NetSetupError {
    /// A xenstore request failed.
    Xenstore(&'static str, XsClientError),
    /// A xenstore value had the wrong form.
    BadValue(&'static str, ConfigError),
    /// The heap has no page left for rings or buffers.
    OutOfMemory,
    /// Granting a page to the backend failed.
    Grant(GrantError),
    /// Allocating the event channel failed.
    Evtchn(XenErrno),
    /// The backend closed instead of connecting.
    BackendClosed(XenbusState),
    /// The backend did not connect in time.
    Timeout,
}

impl core::fmt::Display for NetSetupError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            NetSetupError::Xenstore(what, e) => write!(f, "xenstore {what}: {e:?}"),
            NetSetupError::BadValue(what, e) => write!(f, "{what}: {e}"),
            NetSetupError::OutOfMemory => write!(f, "no memory for rings and buffers"),
            NetSetupError::Grant(e) => write!(f, "granting a page to the backend: {e:?}"),
            NetSetupError::Evtchn(e) => write!(f, "allocating the event channel: {e}"),
            NetSetupError::BackendClosed(s) => write!(f, "the backend went to {s:?}"),
            NetSetupError::Timeout => write!(f, "the backend did not connect in time"),
        }
    }
}

/// A page of our own (identity-mapped) RAM that the backend shares.
///
/// Pages given to the backend are never freed: they stay granted for the
/// life of the domain, which ends with a shutdown.
pub struct OwnPage {
    addr: u64,
}

impl OwnPage {
    fn new() -> Result<Self, NetSetupError> {
        let layout = Layout::from_size_align(PAGE_SIZE, PAGE_SIZE)
            .map_err(|_| NetSetupError::OutOfMemory)?;
        // SAFETY: the layout has a non-zero size.
        let p = unsafe { alloc::alloc::alloc_zeroed(layout) };
        if p.is_null() {
            return Err(NetSetupError::OutOfMemory);
        }
        Ok(OwnPage { addr: p as u64 })
    }

    fn gfn(&self) -> u64 {
        // Identity mapping: the address is the guest-physical address.
        self.addr >> PAGE_SHIFT
    }

    fn inside(off: usize, len: usize) -> bool {
        off.checked_add(len).is_some_and(|end| end <= PAGE_SIZE)
    }
}

impl SharedMem for OwnPage {
    fn load_u32(&self, off: usize) -> u32 {
        if !Self::inside(off, 4) || !off.is_multiple_of(4) {
            return 0;
        }
        // SAFETY: an aligned u32 inside a page this domain owns for its whole
        // life (checked above); the backend may write it concurrently, hence volatile.
        unsafe { core::ptr::read_volatile((self.addr + off as u64) as *const u32) }
    }

    fn store_u32(&mut self, off: usize, value: u32) {
        if !Self::inside(off, 4) || !off.is_multiple_of(4) {
            return;
        }
        // SAFETY: as in load_u32.
        unsafe { core::ptr::write_volatile((self.addr + off as u64) as *mut u32, value) }
    }

    fn read(&self, off: usize, out: &mut [u8]) {
        if !Self::inside(off, out.len()) {
            return;
        }
        // SAFETY: the range lies inside our page (checked above) and `out`
        // is a distinct Rust buffer; the backend does not write a slot it
        // has published, and fences order the index reads before this copy.
        unsafe {
            core::ptr::copy_nonoverlapping(
                (self.addr + off as u64) as *const u8,
                out.as_mut_ptr(),
                out.len(),
            )
        }
    }

    fn write(&mut self, off: usize, data: &[u8]) {
        if !Self::inside(off, data.len()) {
            return;
        }
        // SAFETY: the range lies inside our page; the slot is ours until the
        // producer index that publishes it is written (after a fence).
        unsafe {
            core::ptr::copy_nonoverlapping(
                data.as_ptr(),
                (self.addr + off as u64) as *mut u8,
                data.len(),
            )
        }
    }

    fn fence(&self) {
        fence(Ordering::SeqCst);
    }
}

/// Packet pages granted to the backend once: (page, grant reference).
pub struct Pool {
    tx: Vec<(OwnPage, u32)>,
    rx: Vec<(OwnPage, u32)>,
}

impl Buffers for Pool {
    fn tx_gref(&self, id: u16) -> u32 {
        self.tx.get(usize::from(id)).map_or(0, |p| p.1)
    }

    fn with_tx_page<R>(&mut self, id: u16, f: impl FnOnce(&mut [u8]) -> R) -> R {
        match self.tx.get(usize::from(id)) {
            Some(p) => {
                // SAFETY: our own page; the frontend hands a transmit page
                // out only while no request for it is in flight, so the
                // backend is not reading it.
                let page =
                    unsafe { core::slice::from_raw_parts_mut(p.0.addr as *mut u8, PAGE_SIZE) };
                f(page)
            }
            None => f(&mut []),
        }
    }

    fn rx_gref(&self, buf: u16) -> u32 {
        self.rx.get(usize::from(buf)).map_or(0, |p| p.1)
    }

    fn with_rx_page<R>(&self, buf: u16, f: impl FnOnce(&[u8]) -> R) -> R {
        match self.rx.get(usize::from(buf)) {
            // SAFETY: our own page; the backend finished writing it before it
            // published the response, and it is not posted again until `f` returns.
            Some(p) => f(unsafe { core::slice::from_raw_parts(p.0.addr as *const u8, PAGE_SIZE) }),
            None => f(&[]),
        }
    }
}

/// Kicks the backend through our event channel.
pub struct EvtNotify(u32);

impl Notify for EvtNotify {
    fn notify(&mut self) {
        if let Err(e) = evtchn::send(self.0) {
            log::warn!("net: notifying the backend failed: {e}");
        }
    }
}

/// The connected vif.
pub type VifDevice = NetDevice<OwnPage, Pool, EvtNotify>;

/// A connected vif and what the toolstack said about it.
pub struct Vif {
    /// The smoltcp device.
    pub dev: VifDevice,
    /// Our end of the event channel.
    pub port: u32,
    /// The vif's MAC address.
    pub mac: [u8; 6],
}

fn xs_read(xs: &mut Xenstore, path: &str, what: &'static str) -> Result<Vec<u8>, NetSetupError> {
    xs.read(path).map_err(|e| NetSetupError::Xenstore(what, e))
}

fn parse_domid(v: &[u8]) -> Option<DomId> {
    depmig_control::addr::parse_xen_domid(core::str::from_utf8(v).ok()?).ok()
}

/// Brings up `device/vif/0`: grants rings and buffers, writes the frontend
/// keys and waits (bounded) for the backend to connect.
pub fn connect(xen: &'static Xen, xs: &mut Xenstore) -> Result<Vif, NetSetupError> {
    let backend = xs_read(xs, &format!("{VIF}/backend"), "reading the vif's backend")?;
    let backend = String::from_utf8(backend)
        .map_err(|_| NetSetupError::Xenstore("the backend path", XsClientError::NotText))?;
    let backend = String::from(backend.trim_end_matches('\0'));
    let bid = xs_read(xs, &format!("{VIF}/backend-id"), "reading the backend id")?;
    let bid =
        parse_domid(&bid).ok_or(NetSetupError::BadValue("backend-id", ConfigError::BadState))?;
    let mac = xs_read(xs, &format!("{VIF}/mac"), "reading the MAC address")?;
    let mac = config::parse_mac(&mac).map_err(|e| NetSetupError::BadValue("mac", e))?;

    let grant = |page: &OwnPage, readonly: bool| -> Result<u32, NetSetupError> {
        xen.grants
            .lock()
            .grant(bid, page.gfn(), readonly)
            .map_err(NetSetupError::Grant)
    };
    let tx_ring = OwnPage::new()?;
    let rx_ring = OwnPage::new()?;
    let tx_ref = grant(&tx_ring, false)?;
    let rx_ref = grant(&rx_ring, false)?;
    let mut pool = Pool {
        tx: Vec::with_capacity(SLOTS),
        rx: Vec::with_capacity(SLOTS),
    };
    for _ in 0..SLOTS {
        let t = OwnPage::new()?;
        let g = grant(&t, true)?;
        pool.tx.push((t, g));
        let r = OwnPage::new()?;
        let g = grant(&r, false)?;
        pool.rx.push((r, g));
    }
    let port = evtchn::alloc_unbound(bid).map_err(NetSetupError::Evtchn)?;
    evtchn::unmask(port).map_err(NetSetupError::Evtchn)?;
    let front = Netfront::new(tx_ring, rx_ring, pool, EvtNotify(port));

    xs.transaction(|xs, tx| {
        let kv: [(&str, String); 7] = [
            ("tx-ring-ref", format!("{tx_ref}")),
            ("rx-ring-ref", format!("{rx_ref}")),
            ("event-channel", format!("{port}")),
            ("request-rx-copy", String::from("1")),
            ("feature-rx-notify", String::from("1")),
            // We check no checksums in hardware: ask for complete ones.
            ("feature-no-csum-offload", String::from("1")),
            ("state", String::from(XenbusState::Connected.as_str())),
        ];
        for (k, v) in kv.iter() {
            xs.write_tx(tx, &format!("{VIF}/{k}"), v.as_bytes())?;
        }
        Ok(())
    })
    .map_err(|e| NetSetupError::Xenstore("writing the frontend keys", e))?;

    let state_path = format!("{backend}/state");
    xs.watch(&state_path, "vif-backend")
        .map_err(|e| NetSetupError::Xenstore("watching the backend state", e))?;
    let deadline = xen.now_ns().saturating_add(CONNECT_NS);
    let result = loop {
        let st = xs_read(xs, &state_path, "reading the backend state")?;
        match XenbusState::parse(&st) {
            Ok(XenbusState::Connected) => break Ok(()),
            Ok(s @ (XenbusState::Closing | XenbusState::Closed)) => {
                break Err(NetSetupError::BackendClosed(s))
            }
            // Not there yet (or not written yet): wait for the watch.
            _ => {}
        }
        match xs.next_event(deadline) {
            Ok(_) => {}
            Err(XsClientError::Timeout) => break Err(NetSetupError::Timeout),
            Err(e) => break Err(NetSetupError::Xenstore("waiting for the backend", e)),
        }
    };
    let _ = xs.unwatch(&state_path, "vif-backend");
    result?;
    log::info!(
        "net: vif connected to {backend} (dom{bid}), port {port}, mac {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]
    );
    Ok(Vif {
        dev: NetDevice::new(front),
        port,
        mac,
    })
}

/// Time and sleep for the TCP link: the pvclock, and blocking on the vif's
/// event channel with a timer.
pub struct XenEnv {
    xen: &'static Xen,
    port: u32,
}

impl XenEnv {
    /// An environment that wakes on `port`.
    pub fn new(xen: &'static Xen, port: u32) -> Self {
        XenEnv { xen, port }
    }
}

impl Env for XenEnv {
    fn now(&mut self) -> Instant {
        Instant::from_micros((self.xen.now_ns() / 1000) as i64)
    }

    fn wait(&mut self, deadline: Instant) {
        let ns = (deadline.total_micros().max(0) as u64).saturating_mul(1000);
        match self.xen.wait(&[self.port], ns) {
            Wake::Port(_) | Wake::TimedOut => {}
        }
    }
}

/// Seconds a transfer may make no progress before the link gives up: above
/// the 31 s that TCP's retransmission back-off (1, 2, 4, 8, 16 s) spends on
/// five lost segments in a row, which a loaded emulated bridge can cause.
pub const STALL_SECS: u64 = 60;

/// Receive window of every appliance link: what the netfront's receive
/// ring holds while we are busy elsewhere (a destination mapping and
/// writing a batch of pages does not look at the ring for seconds under
/// emulation). With a window larger than the ring, segments beyond it
/// overflow into netback's queue and are dropped, and each drop costs the
/// sender a retransmission timeout of a second or more (with a 1 MiB
/// window both ends of a migration spent most of their time waiting in the
/// link). 256 slots of one full segment each hold 256 × 1460 bytes; 70 %
/// of that leaves room for other frames.
pub const RECV_WINDOW: usize = 256 * 1024;
const _: () = assert!(RECV_WINDOW <= SLOTS * 1460);

/// What `nettest` was asked to do (from `depmig/net/` in our xenstore home,
/// written by dom0 before it unpaused us).
struct NetTest {
    ip: [u8; 4],
    prefix: u8,
    role: Role,
    bytes: u64,
}

/// Why the configuration could not be read: `Missing` (a key not there, as
/// xenstored says) may still be written; anything else will not change.
enum ConfigRead {
    Missing(String),
    Bad(String),
}

impl From<String> for ConfigRead {
    fn from(s: String) -> Self {
        ConfigRead::Bad(s)
    }
}

fn read_text(xs: &mut Xenstore, key: &'static str) -> Result<String, ConfigRead> {
    xs.read_string(&format!("depmig/net/{key}"))
        .map(|s| String::from(s.trim_end_matches('\0').trim()))
        .map_err(|e| {
            let what = format!("reading depmig/net/{key}: {e:?}");
            match e {
                XsClientError::Wire(WireError::Xs(XsError::NoEnt)) => ConfigRead::Missing(what),
                _ => ConfigRead::Bad(what),
            }
        })
}

/// How long a key dom0 wrote before unpausing us may take to become
/// visible. dom0 writes before it unpauses, so this is only slack: one CI
/// run saw a sender read `depmig/net/ip` as absent although dom0's write had
/// succeeded; waiting on a watch bounds that instead of failing at once.
const CONFIG_WAIT_NS: u64 = 30_000_000_000;

/// [`read_test`], waiting on a watch of `depmig/net` (up to
/// [`CONFIG_WAIT_NS`]) while a key is missing.
fn read_test_waiting(xen: &Xen, xs: &mut Xenstore) -> Result<NetTest, String> {
    let first = match read_test(xs) {
        Ok(t) => return Ok(t),
        Err(ConfigRead::Bad(e)) => return Err(e),
        Err(ConfigRead::Missing(e)) => e,
    };
    println!(
        "depmig-nettest: {first}; waiting up to {} s for dom0 to write it",
        CONFIG_WAIT_NS / 1_000_000_000
    );
    xs.watch("depmig/net", "nettest-config")
        .map_err(|e| format!("{first}; watching depmig/net: {e:?}"))?;
    let deadline = xen.now_ns().saturating_add(CONFIG_WAIT_NS);
    let result = loop {
        match read_test(xs) {
            Ok(t) => break Ok(t),
            Err(ConfigRead::Bad(e)) => break Err(e),
            Err(ConfigRead::Missing(e)) => match xs.next_event(deadline) {
                Ok(_) => {}
                Err(XsClientError::Timeout) => {
                    let seen = xs
                        .directory("depmig/net")
                        .map(|d| d.join(","))
                        .unwrap_or_else(|e| format!("{e:?}"));
                    break Err(format!(
                        "{e} after {} s (depmig/net holds: {seen})",
                        CONFIG_WAIT_NS / 1_000_000_000
                    ));
                }
                Err(ev) => break Err(format!("{e}; waiting for depmig/net: {ev:?}")),
            },
        }
    };
    let _ = xs.unwatch("depmig/net", "nettest-config");
    result
}

fn read_test(xs: &mut Xenstore) -> Result<NetTest, ConfigRead> {
    let ip = parse_ipv4(&read_text(xs, "ip")?).map_err(|e| format!("ip: {e}"))?;
    let prefix = parse_prefix(&read_text(xs, "prefix")?).map_err(|e| format!("prefix: {e}"))?;
    let port: u16 = read_text(xs, "port")?
        .parse()
        .map_err(|_| String::from("port: not a number"))?;
    let bytes: u64 = read_text(xs, "bytes")?
        .parse()
        .map_err(|_| String::from("bytes: not a number"))?;
    let role = match read_text(xs, "role")?.as_str() {
        "send" => {
            let peer = parse_ipv4(&read_text(xs, "peer")?).map_err(|e| format!("peer: {e}"))?;
            Role::Connect { peer, port }
        }
        "recv" => Role::Accept { port },
        other => return Err(format!("role: {other:?} is neither send nor recv").into()),
    };
    Ok(NetTest {
        ip,
        prefix,
        role,
        bytes,
    })
}

/// Byte `o` of the test stream: the little-endian bytes of `(o / 8) ^ MIX`,
/// so a receiver can check every byte knowing only its offset.
const MIX: u64 = 0x5eed_0fde_90a1_1000;

fn fill(buf: &mut [u8], at: u64) {
    for (i, b) in buf.iter_mut().enumerate() {
        let o = at + i as u64;
        *b = ((o / 8) ^ MIX).to_le_bytes()[(o % 8) as usize];
    }
}

/// Offset of the first byte of `buf` (which starts at offset `at`) that
/// differs from the test stream.
fn first_bad(buf: &[u8], at: u64) -> Option<u64> {
    let mut i = 0usize;
    while i < buf.len() {
        let o = at + i as u64;
        if o.is_multiple_of(8) && i + 8 <= buf.len() {
            let mut w = [0u8; 8];
            w.copy_from_slice(buf.get(i..i + 8)?);
            if u64::from_le_bytes(w) != (o / 8) ^ MIX {
                return Some(o);
            }
            i += 8;
        } else {
            if buf.get(i).copied() != Some(((o / 8) ^ MIX).to_le_bytes()[(o % 8) as usize]) {
                return Some(o);
            }
            i += 1;
        }
    }
    None
}

/// Failures of the test transfer itself.
enum TestError {
    Link(LinkError),
    Corrupt(u64),
    Short(u64),
}

/// Progress is logged every this many bytes.
const PROGRESS_EVERY: u64 = 16 << 20;

fn progress(link: &mut Link<VifDevice, XenEnv>, done: u64, next: &mut u64) {
    if done >= *next {
        *next = done + PROGRESS_EVERY;
        let s = link.device().front().stats();
        log::info!(
            "net: {} MiB; tx {} pkts, rx {} pkts, tx errors {}, rx dropped {}, notifies {}",
            done >> 20,
            s.tx_packets,
            s.rx_packets,
            s.tx_errors,
            s.rx_dropped,
            s.notifies
        );
    }
}

fn transfer(link: &mut Link<VifDevice, XenEnv>, role: Role, total: u64) -> Result<u64, TestError> {
    let mut buf = alloc::vec![0u8; 64 * 1024];
    let mut done = 0u64;
    let mut next = PROGRESS_EVERY;
    match role {
        Role::Connect { .. } => {
            while done < total {
                let n = (total - done).min(buf.len() as u64) as usize;
                let chunk = buf.get_mut(..n).unwrap_or(&mut []);
                fill(chunk, done);
                link.send(chunk).map_err(TestError::Link)?;
                done += n as u64;
                progress(link, done, &mut next);
            }
            link.flush().map_err(TestError::Link)?;
        }
        Role::Accept { .. } => loop {
            let n = link.recv(&mut buf).map_err(TestError::Link)?;
            if n == 0 {
                break;
            }
            if let Some(bad) = first_bad(buf.get(..n).unwrap_or(&[]), done) {
                return Err(TestError::Corrupt(bad));
            }
            done += n as u64;
            progress(link, done, &mut next);
            if done > total {
                return Err(TestError::Corrupt(total));
            }
        },
    }
    if done != total {
        return Err(TestError::Short(done));
    }
    Ok(done)
}

/// The `nettest` mode: bring up the vif, connect to (or accept) the peer
/// appliance, move `depmig/net/bytes` bytes of a checkable stream and print
/// the throughput. Ends with `depmig-nettest: PASS …` or `FAIL …`.
pub fn run_nettest(xen: &'static Xen) -> End {
    let fail = |what: String| {
        println!("depmig-nettest: FAIL {what}");
        End::Fail
    };
    let mut xs = match Xenstore::new(xen) {
        Ok(x) => x,
        Err(e) => return fail(format!("xenstore: {e:?}")),
    };
    let test = match read_test_waiting(xen, &mut xs) {
        Ok(t) => t,
        Err(e) => return fail(format!("configuration: {e}")),
    };
    let vif = match connect(xen, &mut xs) {
        Ok(v) => v,
        Err(e) => return fail(format!("vif: {e}")),
    };
    let mut cfg = LinkConfig::new(vif.mac, test.ip, test.prefix);
    cfg.connect_timeout = Duration::from_secs(120);
    // A receiver on another host may start listening after the sender
    // (their dom0s start them): a refused connection is tried again.
    cfg.retry_refused = Some(Duration::from_secs(1));
    cfg.stall_timeout = Duration::from_secs(STALL_SECS);
    cfg.recv_buffer_size = RECV_WINDOW;
    let env = XenEnv::new(xen, vif.port);
    let role_name = if matches!(test.role, Role::Connect { .. }) {
        "send"
    } else {
        "recv"
    };
    let mut link = match Link::open(vif.dev, env, cfg, test.role) {
        Ok(l) => l,
        Err(e) => return fail(format!("connect: {e}")),
    };
    let t0 = xen.now_ns();
    let result = transfer(&mut link, test.role, test.bytes);
    let stats = link.device().front().stats();
    log::info!("net: {stats:?}");
    let moved = match result {
        Ok(n) => n,
        Err(TestError::Link(e)) => {
            link.abort();
            return fail(format!("{role_name}: {e}"));
        }
        Err(TestError::Corrupt(at)) => {
            link.abort();
            return fail(format!("{role_name}: stream corrupt at byte {at}"));
        }
        Err(TestError::Short(n)) => {
            link.abort();
            return fail(format!(
                "{role_name}: stream ended after {n} of {} bytes",
                test.bytes
            ));
        }
    };
    let ns = xen.now_ns().saturating_sub(t0).max(1);
    if let Err(e) = link.close() {
        log::warn!("net: close: {e}");
    }
    // MiB/s with two decimals, in integer arithmetic.
    let centi = (moved as u128 * 100 * 1_000_000_000 / ns as u128 / (1 << 20)) as u64;
    println!(
        "depmig-net: {role_name} {moved} bytes in {}.{:03} s = {}.{:02} MiB/s",
        ns / 1_000_000_000,
        (ns / 1_000_000) % 1000,
        centi / 100,
        centi % 100
    );
    println!(
        "depmig-nettest: PASS {role_name} {moved} bytes {}.{:02} MiB/s",
        centi / 100,
        centi % 100
    );
    End::Pass
}

// Rings and buffers fit in the grant entries of the frames mapped at boot.
const _: () = assert!(
    SLOTS * 2 + 2 + crate::platform::xen::grant::RESERVED_ENTRIES as usize
        <= crate::platform::xen::GRANT_FRAMES as usize * 512
);
