//! The numbers and addresses of the contract: domids (`guest`), TCP ports
//! (`port`), the destination's address (`peer`) and the appliance's own
//! (`depmig/net/ip`, `depmig/net/prefix`).

use alloc::format;
use alloc::string::String;

use crate::ControlError;

/// Reads a domid a guest can have: decimal, 1 to 0x7fef (not dom0, not one
/// of Xen's special ids); trailing NULs, newlines and spaces tolerated.
pub fn parse_domid(s: &str) -> Result<u16, ControlError> {
    match parse_xen_domid(s) {
        Ok(0) => Err(ControlError::BadDomid),
        other => other,
    }
}

/// Reads the id of any real domain, dom0 included (a backend's
/// `backend-id`, a domain's own `domid`): decimal, 0 to 0x7fef; trailing
/// NULs, newlines and spaces tolerated.
pub fn parse_xen_domid(s: &str) -> Result<u16, ControlError> {
    match trim(s).parse::<u16>() {
        Ok(d) if d < 0x7FF0 => Ok(d),
        _ => Err(ControlError::BadDomid),
    }
}

/// Reads a TCP port: decimal, 1 to 65535.
pub fn parse_port(s: &str) -> Result<u16, ControlError> {
    match s.parse::<u16>() {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(ControlError::BadPort),
    }
}

/// An IPv4 address as the contract writes it: the dotted quad.
pub fn ipv4_text(ip: [u8; 4]) -> String {
    let [a, b, c, d] = ip;
    format!("{a}.{b}.{c}.{d}")
}

/// Trailing NULs, newlines and spaces, which a xenstore value may carry.
fn trim(s: &str) -> &str {
    s.trim_end_matches(['\0', '\n', ' '])
}

/// A decimal of 1 to 3 digits, no leading zero, at most `max`.
fn decimal(s: &str, max: u32) -> Option<u32> {
    let v = s.as_bytes();
    if v.is_empty() || v.len() > 3 || (v.len() > 1 && v.first() == Some(&b'0')) {
        return None;
    }
    let mut n = 0u32;
    for &c in v {
        if !c.is_ascii_digit() {
            return None;
        }
        n = n * 10 + u32::from(c - b'0');
    }
    (n <= max).then_some(n)
}

/// Reads a dotted-quad IPv4 address (trailing NULs, newlines and spaces
/// tolerated).
pub fn parse_ipv4(s: &str) -> Result<[u8; 4], ControlError> {
    let mut out = [0u8; 4];
    let mut parts = trim(s).split('.');
    for o in out.iter_mut() {
        let p = parts.next().ok_or(ControlError::BadIpv4)?;
        let n = decimal(p, 255).ok_or(ControlError::BadIpv4)?;
        *o = u8::try_from(n).map_err(|_| ControlError::BadIpv4)?;
    }
    if parts.next().is_some() {
        return Err(ControlError::BadIpv4);
    }
    Ok(out)
}

/// Reads a prefix length, 0 to 32 (trailing NULs, newlines and spaces
/// tolerated).
pub fn parse_prefix(s: &str) -> Result<u8, ControlError> {
    decimal(trim(s), 32)
        .and_then(|n| u8::try_from(n).ok())
        .ok_or(ControlError::BadPrefix)
}

/// Where the destination listens (`peer`): `IP:PORT`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Peer {
    /// The destination appliance's address.
    pub ip: [u8; 4],
    /// Its TCP port.
    pub port: u16,
}

impl Peer {
    /// The key's text.
    pub fn to_text(&self) -> String {
        format!("{}:{}", ipv4_text(self.ip), self.port)
    }

    /// Reads the key: [`ControlError::BadPeer`] without a `:`, else the
    /// error of the address ([`parse_ipv4`]) or of the port ([`parse_port`]).
    pub fn parse(s: &str) -> Result<Peer, ControlError> {
        let (ip, port) = s.split_once(':').ok_or(ControlError::BadPeer)?;
        Ok(Peer {
            ip: parse_ipv4(ip)?,
            port: parse_port(port)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ipv4_and_prefix() {
        // Moved from depmig-netfront's config.
        assert_eq!(parse_ipv4("10.0.2.15"), Ok([10, 0, 2, 15]));
        for bad in [
            "10.0.2",
            "10.0.2.256",
            "10.0.2.1.1",
            "1..2.3",
            "01.2.3.4",
            "a.b.c.d",
            "",
        ] {
            assert_eq!(parse_ipv4(bad), Err(ControlError::BadIpv4), "{:?}", bad);
        }
        assert_eq!(parse_prefix("24\n"), Ok(24));
        assert_eq!(parse_prefix("33"), Err(ControlError::BadPrefix));
        assert_eq!(parse_prefix("-1"), Err(ControlError::BadPrefix));
    }

    #[test]
    fn domids_and_ports() {
        assert_eq!(parse_domid("7"), Ok(7));
        assert_eq!(parse_domid("32751"), Ok(0x7FEF));
        assert_eq!(parse_domid("12\0"), Ok(12));
        assert_eq!(parse_domid("0"), Err(ControlError::BadDomid));
        assert_eq!(parse_xen_domid("0\n"), Ok(0));
        assert_eq!(parse_xen_domid("32752"), Err(ControlError::BadDomid));
        assert_eq!(parse_xen_domid(" 3"), Err(ControlError::BadDomid));
        for bad in ["0", "32752", "65535", "65536", "-1", "", "x", " 7"] {
            assert_eq!(parse_domid(bad), Err(ControlError::BadDomid), "{bad:?}");
        }
        assert_eq!(parse_port("7100"), Ok(7100));
        assert_eq!(parse_port("65535"), Ok(65535));
        for bad in ["0", "65536", "-1", "", "http"] {
            assert_eq!(parse_port(bad), Err(ControlError::BadPort), "{bad:?}");
        }
    }

    #[test]
    fn peers() {
        let p = Peer {
            ip: [10, 77, 0, 22],
            port: 9999,
        };
        assert_eq!(p.to_text(), "10.77.0.22:9999");
        assert_eq!(Peer::parse("10.77.0.22:9999"), Ok(p));
        assert_eq!(Peer::parse("10.77.0.22"), Err(ControlError::BadPeer));
        assert_eq!(Peer::parse("10.77.0:9999"), Err(ControlError::BadIpv4));
        assert_eq!(Peer::parse("10.77.0.22:0"), Err(ControlError::BadPort));
        assert_eq!(Peer::parse("10.77.0.22:9999:1"), Err(ControlError::BadPort));
    }

    proptest! {
        #[test]
        fn addresses_read_as_written(ip in any::<[u8; 4]>(), port in 1..=u16::MAX, prefix in 0..=32u8) {
            prop_assert_eq!(parse_ipv4(&ipv4_text(ip)), Ok(ip));
            let p = Peer { ip, port };
            prop_assert_eq!(Peer::parse(&p.to_text()), Ok(p));
            prop_assert_eq!(parse_prefix(&format!("{prefix}")), Ok(prefix));
        }

        #[test]
        fn no_text_makes_a_parser_panic(s in "[0-9.:\0\n +-]{0,24}|\\PC{0,24}") {
            let _ = parse_ipv4(&s);
            let _ = parse_prefix(&s);
            let _ = parse_domid(&s);
            let _ = parse_port(&s);
            let _ = Peer::parse(&s);
        }
    }
}
