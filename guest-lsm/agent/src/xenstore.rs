//! Minimal xenstore client over the Linux xenbus device (`/dev/xen/xenbus`):
//! the 16-byte wire header (type, req_id, tx_id, len) and READ/WRITE/MKDIR.
//! (crates/xenstore-wire is the appliance's no_std codec; it was a stub when
//! this was written, so the agent carries this small one.)

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};

/// `XS_READ` from xs_wire.h.
pub const XS_READ: u32 = 2;
/// `XS_WRITE`.
pub const XS_WRITE: u32 = 11;
/// `XS_MKDIR`.
pub const XS_MKDIR: u32 = 12;
/// `XS_ERROR`.
pub const XS_ERROR: u32 = 16;
/// `XENSTORE_PAYLOAD_MAX`.
pub const PAYLOAD_MAX: usize = 4096;

/// Errors talking to xenstore.
#[derive(Debug)]
pub enum XsError {
    /// No xenbus device could be opened (not running on Xen, or xenfs missing).
    Unreachable(String),
    /// Reading or writing the device failed.
    Io(std::io::Error),
    /// The request or reply is larger than the protocol allows.
    TooLong,
    /// The reply does not answer our request.
    BadReply,
    /// xenstored answered with an error (e.g. "ENOENT").
    Remote(String),
}

impl std::fmt::Display for XsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            XsError::Unreachable(s) => write!(f, "xenstore unreachable: {s}"),
            XsError::Io(e) => write!(f, "xenstore I/O error: {e}"),
            XsError::TooLong => f.write_str("xenstore message too long"),
            XsError::BadReply => f.write_str("xenstore reply does not match the request"),
            XsError::Remote(e) => write!(f, "xenstore error {e}"),
        }
    }
}

/// Encodes one request.
pub fn encode(ty: u32, req_id: u32, payload: &[u8]) -> Result<Vec<u8>, XsError> {
    if payload.len() > PAYLOAD_MAX {
        return Err(XsError::TooLong);
    }
    let mut m = Vec::with_capacity(16 + payload.len());
    for v in [ty, req_id, 0, payload.len() as u32] {
        m.extend_from_slice(&v.to_le_bytes());
    }
    m.extend_from_slice(payload);
    Ok(m)
}

/// Decodes a reply header: (type, req_id, payload length), length capped.
pub fn decode_header(h: &[u8; 16]) -> Result<(u32, u32, usize), XsError> {
    let w = |i: usize| u32::from_le_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
    let len = w(12) as usize;
    if len > PAYLOAD_MAX {
        return Err(XsError::TooLong);
    }
    Ok((w(0), w(4), len))
}

/// A connection to xenstore through the kernel's xenbus device.
pub struct Xenstore {
    dev: File,
    next_req: u32,
}

impl Xenstore {
    /// Opens `/dev/xen/xenbus` (or the older `/proc/xen/xenbus`).
    pub fn open() -> Result<Self, XsError> {
        let mut why = Vec::new();
        for p in ["/dev/xen/xenbus", "/proc/xen/xenbus"] {
            match OpenOptions::new().read(true).write(true).open(p) {
                Ok(dev) => return Ok(Xenstore { dev, next_req: 1 }),
                Err(e) => why.push(format!("{p}: {e}")),
            }
        }
        Err(XsError::Unreachable(why.join("; ")))
    }

    fn call(&mut self, ty: u32, payload: &[u8]) -> Result<Vec<u8>, XsError> {
        let req = self.next_req;
        self.next_req = self.next_req.wrapping_add(1);
        self.dev
            .write_all(&encode(ty, req, payload)?)
            .map_err(XsError::Io)?;
        let mut h = [0u8; 16];
        self.dev.read_exact(&mut h).map_err(XsError::Io)?;
        let (rty, rreq, len) = decode_header(&h)?;
        let mut body = vec![0u8; len];
        self.dev.read_exact(&mut body).map_err(XsError::Io)?;
        if rty == XS_ERROR {
            let e = body.split(|c| *c == 0).next().unwrap_or(&[]);
            return Err(XsError::Remote(String::from_utf8_lossy(e).into_owned()));
        }
        if rty != ty || rreq != req {
            return Err(XsError::BadReply);
        }
        Ok(body)
    }

    /// Writes `value` at `path` (relative paths are under the domain's home).
    pub fn write(&mut self, path: &str, value: &str) -> Result<(), XsError> {
        let mut p = path.as_bytes().to_vec();
        p.push(0);
        p.extend_from_slice(value.as_bytes());
        self.call(XS_WRITE, &p).map(|_| ())
    }

    /// Creates directory `path`.
    pub fn mkdir(&mut self, path: &str) -> Result<(), XsError> {
        let mut p = path.as_bytes().to_vec();
        p.push(0);
        self.call(XS_MKDIR, &p).map(|_| ())
    }

    /// Reads `path`; `None` when it does not exist.
    pub fn read(&mut self, path: &str) -> Result<Option<String>, XsError> {
        let mut p = path.as_bytes().to_vec();
        p.push(0);
        match self.call(XS_READ, &p) {
            Ok(v) => Ok(Some(String::from_utf8_lossy(&v).into_owned())),
            Err(XsError::Remote(e)) if e == "ENOENT" => Ok(None),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip_and_caps() {
        let m = encode(XS_WRITE, 9, b"data/x\0v").unwrap();
        assert_eq!(m.len(), 16 + 8);
        let h: [u8; 16] = m[..16].try_into().unwrap();
        assert_eq!(decode_header(&h).unwrap(), (XS_WRITE, 9, 8));
        let mut big = h;
        big[12..16].copy_from_slice(&(PAYLOAD_MAX as u32 + 1).to_le_bytes());
        assert!(matches!(decode_header(&big), Err(XsError::TooLong)));
        assert!(matches!(
            encode(XS_READ, 1, &[0; PAYLOAD_MAX + 1]),
            Err(XsError::TooLong)
        ));
    }
}
