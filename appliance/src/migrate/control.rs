//! The migration's control directory in our xenstore home: what dom0 arms
//! us with (`depmig/migrate/*`, `depmig/net/*`) and what we publish back
//! (state, the latest round, the report, the result).
//!
//! The keys and the form of their values are the contract with dom0
//! (`depmig_control`), which dom0 builds from too. Every value comes from
//! dom0, but it is parsed as strictly as anything else: a malformed key is a
//! clear FAIL, never a guess.

use alloc::format;
use alloc::string::{String, ToString};

use depmig_control::addr::{parse_domid, parse_ipv4, parse_port, parse_prefix};
use depmig_control::bitmap_route::Route;
use depmig_control::{
    keys, parse_key, Compress, ControlError, DeltaCache, Encodings, Encrypt, Key, Mode, Peer,
    Policy, Role, Verify,
};

use crate::platform::xen::xenstore::Xenstore;
use crate::platform::xen::Xen;

/// How long dom0 may take between creating us and writing `go`.
pub const ARM_NS: u64 = 600_000_000_000;

/// What dom0 armed us with.
#[derive(Clone, Debug)]
pub struct Armed {
    /// Our role.
    pub role: Role,
    /// The guest (source, resume) or the shell (destination).
    pub guest: u16,
    /// Our IPv4 address and prefix on dom0's bridge (not for `resume`).
    pub ip: [u8; 4],
    /// Prefix length of `ip`.
    pub prefix: u8,
    /// The destination's address (source only).
    pub peer: [u8; 4],
    /// TCP port: the destination listens on it, the source connects to it.
    pub port: u16,
    /// The shared HMAC key (32 bytes from 64 hex digits; not for `resume`).
    pub key: Key,
    /// What the engine sends (`baseline`, `dependency-aware`).
    pub mode: Mode,
    /// The pre-copy policy (`xen-3.3`, `xen-4`, `adaptive`).
    pub policy: Policy,
    /// Who fetches the dirty bitmap (`bitmap-route`; source only).
    pub bitmap_route: Route,
    /// Whether pages are compared after the stream (`verify`; source and
    /// destination).
    pub verify: Verify,
    /// The page codec offered (source) or accepted (destination).
    pub compress: Compress,
    /// Whether the stream is sealed, and required of the peer (`encrypt`;
    /// source and destination; absent: on).
    pub encrypt: Encrypt,
    /// The cache of re-sent pages (source; deltas offered when not 0), or
    /// whether deltas are accepted (destination, not 0).
    pub delta_cache: DeltaCache,
    /// Whether the agreed encodings may switch off where they slow the
    /// move (`encodings`; source only; absent: adaptive).
    pub encodings: Encodings,
}

fn read(xs: &mut Xenstore, path: &str) -> Result<String, String> {
    xs.read_string(path)
        .map(|s| String::from(s.trim_end_matches('\0').trim()))
        .map_err(|e| format!("reading {path}: {e:?}"))
}

fn read_or(xs: &mut Xenstore, path: &str, default: &str) -> Result<String, String> {
    match xs.read_string(path) {
        Ok(s) => Ok(String::from(s.trim_end_matches('\0').trim())),
        Err(crate::platform::xen::xenstore::XsClientError::Wire(xenstore_wire::WireError::Xs(
            xenstore_wire::XsError::NoEnt,
        ))) => Ok(default.to_string()),
        Err(e) => Err(format!("reading {path}: {e:?}")),
    }
}

/// Why `guest` was refused.
fn bad_domid(s: &str) -> String {
    format!("{s:?} is not a guest domid")
}

/// Why a port (`port`, or `peer`'s) was refused.
fn bad_port(s: &str) -> String {
    format!("port {s:?} is not a TCP port")
}

/// Reads `peer`, saying what is wrong with it.
fn parse_peer(s: &str) -> Result<Peer, String> {
    Peer::parse(s).map_err(|e| match e {
        ControlError::BadIpv4 => format!("peer: {e}"),
        ControlError::BadPort => bad_port(s.split_once(':').map_or("", |(_, port)| port)),
        _ => format!("peer {s:?}: want IP:PORT"),
    })
}

/// Waits (bounded by [`ARM_NS`]) until dom0 wrote `migrate/go`, then reads
/// the whole configuration.
pub fn wait_armed(xen: &Xen, xs: &mut Xenstore) -> Result<Armed, String> {
    let go = keys::GO;
    xs.watch(go, "go")
        .map_err(|e| format!("watching {go}: {e:?}"))?;
    let deadline = xen.now_ns().saturating_add(ARM_NS);
    loop {
        if read_or(xs, go, "")? == keys::GO_VALUE {
            break;
        }
        if xen.now_ns() >= deadline {
            return Err(String::from(
                "dom0 did not arm us (no migrate/go) within 600 s",
            ));
        }
        // Any event (or a timeout) sends us back to read the key again.
        let _ = xs.next_event(deadline);
    }
    let _ = xs.unwatch(go, "go");

    let role = read(xs, keys::ROLE)?;
    let role = Role::parse(&role)
        .map_err(|_| format!("role {role:?}: want source, destination or resume"))?;
    let guest = read(xs, keys::GUEST)?;
    let guest = parse_domid(&guest).map_err(|_| bad_domid(&guest))?;
    let mut armed = Armed {
        role,
        guest,
        ip: [0; 4],
        prefix: 0,
        peer: [0; 4],
        port: 0,
        key: [0; 32],
        mode: Mode::from_key(&read_or(xs, keys::MODE, "")?).map_err(|e| format!("mode: {e:?}"))?,
        policy: Policy::from_key(&read_or(xs, keys::POLICY, "")?)
            .map_err(|e| format!("policy: {e:?}"))?,
        bitmap_route: Route::parse(&read_or(xs, keys::BITMAP_ROUTE, "")?)
            .map_err(|e| format!("bitmap-route: {e}"))?,
        verify: Verify::from_key(&read_or(xs, keys::VERIFY, "")?)
            .map_err(|e| format!("verify: {e}"))?,
        compress: Compress::from_key(&read_or(xs, keys::COMPRESS, "")?)
            .map_err(|e| format!("compress: {e}"))?,
        encrypt: Encrypt::from_key(&read_or(xs, keys::ENCRYPT, "")?)
            .map_err(|e| format!("encrypt: {e}"))?,
        delta_cache: DeltaCache::from_key(&read_or(xs, keys::DELTA_CACHE, "")?)
            .map_err(|e| format!("{e}"))?,
        encodings: Encodings::from_key(&read_or(xs, keys::ENCODINGS, "")?)
            .map_err(|e| format!("{e}"))?,
    };
    if role == Role::Resume {
        return Ok(armed);
    }
    armed.ip = parse_ipv4(&read(xs, keys::IP)?).map_err(|e| format!("net/ip: {e}"))?;
    armed.prefix =
        parse_prefix(&read(xs, keys::PREFIX)?).map_err(|e| format!("net/prefix: {e}"))?;
    armed.key = parse_key(&read(xs, keys::KEY)?)
        .map_err(|e| format!("key: {:?}", ControlError::from(e)))?;
    match role {
        Role::Source => {
            let peer = parse_peer(&read(xs, keys::PEER)?)?;
            armed.peer = peer.ip;
            armed.port = peer.port;
        }
        _ => {
            let port = read(xs, keys::PORT)?;
            armed.port = parse_port(&port).map_err(|_| bad_port(&port))?;
        }
    }
    Ok(armed)
}

/// Publishes one of our keys ([`keys`]); a failure is logged, not fatal
/// (dom0 also reads our console).
pub fn publish(xs: &mut Xenstore, key: &str, value: &str) {
    if let Err(e) = xs.write(key, value.as_bytes()) {
        log::warn!("migrate: publishing {key}: {e:?}");
    }
}

/// An optional key of dom0's ([`keys`]), empty when absent or unreadable.
pub fn read_opt(xs: &core::cell::RefCell<Xenstore>, key: &str) -> String {
    read_or(&mut xs.borrow_mut(), key, "").unwrap_or_default()
}
