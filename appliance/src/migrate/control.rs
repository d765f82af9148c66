//! The migration's control directory in our xenstore home: what dom0 arms
//! us with (`depmig/migrate/*`, `depmig/net/*`) and what we publish back
//! (state, the latest round, the report, the result).
//!
//! Every value comes from dom0, but it is parsed as strictly as anything
//! else: a malformed key is a clear FAIL, never a guess.

use alloc::format;
use alloc::string::{String, ToString};

use depmig_migrate::{parse_key, parse_mode, parse_policy, Mode, PolicyKind};
use depmig_netfront::config;

use crate::xen::xenstore::Xenstore;
use crate::xen::Xen;

/// Our control directory, relative to our xenstore home.
pub const DIR: &str = "depmig/migrate";
/// How long dom0 may take between creating us and writing `go`.
pub const ARM_NS: u64 = 600_000_000_000;

/// Which side of a migration this appliance plays.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RoleKind {
    /// Maps and streams the guest.
    Source,
    /// Fills the paused shell.
    Destination,
    /// Only resumes a guest left suspended by a source that died.
    Resume,
}

/// What dom0 armed us with.
#[derive(Clone, Debug)]
pub struct Armed {
    /// Our role.
    pub role: RoleKind,
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
    pub key: [u8; 32],
    /// What the engine sends (`baseline`, `dependency-aware`).
    pub mode: Mode,
    /// The pre-copy policy (`xen-3.3`, `xen-4`, `adaptive`).
    pub policy: PolicyKind,
}

fn read(xs: &mut Xenstore, path: &str) -> Result<String, String> {
    xs.read_string(path)
        .map(|s| String::from(s.trim_end_matches('\0').trim()))
        .map_err(|e| format!("reading {path}: {e:?}"))
}

fn read_or(xs: &mut Xenstore, path: &str, default: &str) -> Result<String, String> {
    match xs.read_string(path) {
        Ok(s) => Ok(String::from(s.trim_end_matches('\0').trim())),
        Err(crate::xen::xenstore::XsClientError::Wire(xenstore_wire::WireError::Xs(
            xenstore_wire::XsError::NoEnt,
        ))) => Ok(default.to_string()),
        Err(e) => Err(format!("reading {path}: {e:?}")),
    }
}

/// Parses `n` as a domid a guest can have (1..0x7FF0: not dom0, not a
/// special id).
pub fn parse_domid(s: &str) -> Result<u16, String> {
    match s.parse::<u16>() {
        Ok(d) if d > 0 && d < 0x7FF0 => Ok(d),
        _ => Err(format!("{s:?} is not a guest domid")),
    }
}

/// Parses `IP:PORT`.
pub fn parse_peer(s: &str) -> Result<([u8; 4], u16), String> {
    let (ip, port) = s
        .split_once(':')
        .ok_or_else(|| format!("peer {s:?}: want IP:PORT"))?;
    let ip = config::parse_ipv4(ip.as_bytes()).map_err(|e| format!("peer: {e}"))?;
    let port = parse_port(port)?;
    Ok((ip, port))
}

fn parse_port(s: &str) -> Result<u16, String> {
    match s.parse::<u16>() {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(format!("port {s:?} is not a TCP port")),
    }
}

/// Waits (bounded by [`ARM_NS`]) until dom0 wrote `migrate/go`, then reads
/// the whole configuration.
pub fn wait_armed(xen: &Xen, xs: &mut Xenstore) -> Result<Armed, String> {
    let go = format!("{DIR}/go");
    xs.watch(&go, "go")
        .map_err(|e| format!("watching {go}: {e:?}"))?;
    let deadline = xen.now_ns().saturating_add(ARM_NS);
    loop {
        if read_or(xs, &go, "")? == "1" {
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
    let _ = xs.unwatch(&go, "go");

    let role = match read(xs, &format!("{DIR}/role"))?.as_str() {
        "source" => RoleKind::Source,
        "destination" => RoleKind::Destination,
        "resume" => RoleKind::Resume,
        other => {
            return Err(format!(
                "role {other:?}: want source, destination or resume"
            ))
        }
    };
    let guest = parse_domid(&read(xs, &format!("{DIR}/guest"))?)?;
    let mut armed = Armed {
        role,
        guest,
        ip: [0; 4],
        prefix: 0,
        peer: [0; 4],
        port: 0,
        key: [0; 32],
        mode: parse_mode(&read_or(xs, &format!("{DIR}/mode"), "baseline")?)
            .map_err(|e| format!("mode: {e:?}"))?,
        policy: parse_policy(&read_or(xs, &format!("{DIR}/policy"), "xen-4")?)
            .map_err(|e| format!("policy: {e:?}"))?,
    };
    if role == RoleKind::Resume {
        return Ok(armed);
    }
    armed.ip = config::parse_ipv4(read(xs, "depmig/net/ip")?.as_bytes())
        .map_err(|e| format!("net/ip: {e}"))?;
    armed.prefix = config::parse_prefix(read(xs, "depmig/net/prefix")?.as_bytes())
        .map_err(|e| format!("net/prefix: {e}"))?;
    armed.key = parse_key(&read(xs, &format!("{DIR}/key"))?).map_err(|e| format!("key: {e:?}"))?;
    match role {
        RoleKind::Source => {
            let (peer, port) = parse_peer(&read(xs, &format!("{DIR}/peer"))?)?;
            armed.peer = peer;
            armed.port = port;
        }
        _ => armed.port = parse_port(&read(xs, &format!("{DIR}/port"))?)?,
    }
    Ok(armed)
}

/// Publishes a key of our control directory; a failure is logged, not
/// fatal (dom0 also reads our console).
pub fn publish(xs: &mut Xenstore, key: &str, value: &str) {
    let path = format!("{DIR}/{key}");
    if let Err(e) = xs.write(&path, value.as_bytes()) {
        log::warn!("migrate: publishing {path}: {e:?}");
    }
}

/// An optional key of our control directory (`migrate/<key>`), empty when
/// absent or unreadable.
pub fn read_opt(xs: &core::cell::RefCell<Xenstore>, key: &str) -> String {
    read_or(&mut xs.borrow_mut(), &format!("{DIR}/{key}"), "").unwrap_or_default()
}
