//! Values the frontend reads from and writes to xenstore, parsed strictly.
//!
//! The vif's `mac` comes from the toolstack and the device states from the
//! backend: text that another domain wrote, so parsing rejects anything but
//! the exact expected form. (The appliance's own address, netmask and peer
//! are dom0's, and parsed by the contract, `depmig-control`.)

/// A xenstore value that does not have the expected form.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigError {
    /// A MAC address is not six colon-separated pairs of hex digits.
    BadMac,
    /// A xenbus state is not a decimal number from 1 to 7.
    BadState,
}

impl core::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            ConfigError::BadMac => "MAC address is not of the form xx:xx:xx:xx:xx:xx",
            ConfigError::BadState => "xenbus state is not a number from 1 to 7",
        })
    }
}

/// Xenbus device states (`xen/include/public/io/xenbus.h`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XenbusState {
    /// 1: the driver is setting up.
    Initialising,
    /// 2: the backend waits for the frontend's details.
    InitWait,
    /// 3: the frontend wrote its details.
    Initialised,
    /// 4: both ends run.
    Connected,
    /// 5: the other end is going away.
    Closing,
    /// 6: the other end went away.
    Closed,
    /// 7: reconfiguring (not used by netfront).
    Reconfiguring,
}

impl XenbusState {
    /// Parses a `state` node's value (trailing NULs and newlines tolerated).
    pub fn parse(v: &[u8]) -> Result<Self, ConfigError> {
        let v = trim(v);
        Ok(match v {
            b"1" => XenbusState::Initialising,
            b"2" => XenbusState::InitWait,
            b"3" => XenbusState::Initialised,
            b"4" => XenbusState::Connected,
            b"5" => XenbusState::Closing,
            b"6" => XenbusState::Closed,
            b"7" => XenbusState::Reconfiguring,
            _ => return Err(ConfigError::BadState),
        })
    }

    /// The value to write into a `state` node.
    pub fn as_str(self) -> &'static str {
        match self {
            XenbusState::Initialising => "1",
            XenbusState::InitWait => "2",
            XenbusState::Initialised => "3",
            XenbusState::Connected => "4",
            XenbusState::Closing => "5",
            XenbusState::Closed => "6",
            XenbusState::Reconfiguring => "7",
        }
    }
}

fn trim(v: &[u8]) -> &[u8] {
    let mut end = v.len();
    while end > 0 && matches!(v.get(end - 1), Some(b'\0' | b'\n' | b' ')) {
        end -= 1;
    }
    v.get(..end).unwrap_or(&[])
}

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Parses a vif `mac` node: `00:16:3e:12:34:56`.
pub fn parse_mac(v: &[u8]) -> Result<[u8; 6], ConfigError> {
    let v = trim(v);
    if v.len() != 17 {
        return Err(ConfigError::BadMac);
    }
    let mut mac = [0u8; 6];
    for (i, byte) in mac.iter_mut().enumerate() {
        let at = i * 3;
        let (hi, lo) = match (
            v.get(at).copied().and_then(hex),
            v.get(at + 1).copied().and_then(hex),
        ) {
            (Some(h), Some(l)) => (h, l),
            _ => return Err(ConfigError::BadMac),
        };
        if i < 5 && v.get(at + 2) != Some(&b':') {
            return Err(ConfigError::BadMac);
        }
        *byte = hi << 4 | lo;
    }
    Ok(mac)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs() {
        assert_eq!(
            parse_mac(b"00:16:3e:0A:bc:ff\0"),
            Ok([0, 0x16, 0x3e, 0x0a, 0xbc, 0xff])
        );
        for bad in [
            &b"00:16:3e:0a:bc"[..],
            b"00-16-3e-0a-bc-ff",
            b"00:16:3e:0a:bc:fg",
            b"",
            b"000:16:3e:0a:bc:f",
        ] {
            assert_eq!(parse_mac(bad), Err(ConfigError::BadMac), "{:?}", bad);
        }
    }

    #[test]
    fn states() {
        assert_eq!(XenbusState::parse(b"4\0"), Ok(XenbusState::Connected));
        assert_eq!(XenbusState::parse(b"0"), Err(ConfigError::BadState));
        assert_eq!(XenbusState::parse(b"44"), Err(ConfigError::BadState));
        for s in 1..=7u8 {
            let st = XenbusState::parse(&[b'0' + s]).unwrap();
            assert_eq!(st.as_str().as_bytes(), &[b'0' + s]);
        }
    }
}
