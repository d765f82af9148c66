//! xenstore client over the Linux xenbus device (`/dev/xen/xenbus`), using
//! the project's `xenstore-wire` codec for framing and reply checking.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use xenstore_wire::message::Message;
use xenstore_wire::{parse_reply, Header, MsgType, Reply, Request, WireError, HEADER_LEN};

/// Errors talking to xenstore.
#[derive(Debug)]
pub enum XsError {
    /// No xenbus device could be opened (not running on Xen, or xenfs missing).
    Unreachable(String),
    /// Reading or writing the device failed.
    Io(std::io::Error),
    /// The reply does not answer our request.
    BadReply,
    /// The codec rejected a request or reply.
    Wire(WireError),
}

impl std::fmt::Display for XsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            XsError::Unreachable(s) => write!(f, "xenstore unreachable: {s}"),
            XsError::Io(e) => write!(f, "xenstore I/O error: {e}"),
            XsError::BadReply => f.write_str("xenstore reply does not match the request"),
            XsError::Wire(e) => write!(f, "xenstore protocol error: {e:?}"),
        }
    }
}

/// A connection to xenstore through the kernel's xenbus device (or, in
/// tests, any byte stream speaking the same protocol).
pub struct Xenstore<T: Read + Write = File> {
    dev: T,
    next_req: u32,
}

impl Xenstore<File> {
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
}

impl<T: Read + Write> Xenstore<T> {
    /// A client over an already open transport.
    pub fn over(dev: T) -> Self {
        Xenstore { dev, next_req: 1 }
    }

    /// Sends `req` and returns the checked reply's value bytes (empty for "OK").
    fn call(&mut self, req: Request<'_>) -> Result<Vec<u8>, XsError> {
        let id = self.next_req;
        self.next_req = self.next_req.wrapping_add(1);
        let mut out = vec![0u8; HEADER_LEN + xenstore_wire::PAYLOAD_MAX];
        let n = req.encode(id, &mut out).map_err(XsError::Wire)?;
        self.dev
            .write_all(out.get(..n).ok_or(XsError::BadReply)?)
            .map_err(XsError::Io)?;
        let mut h = [0u8; HEADER_LEN];
        self.dev.read_exact(&mut h).map_err(XsError::Io)?;
        let header = Header::decode(&h).map_err(XsError::Wire)?;
        let mut payload = vec![0u8; header.len as usize];
        self.dev.read_exact(&mut payload).map_err(XsError::Io)?;
        if header.req_id != id {
            return Err(XsError::BadReply);
        }
        match parse_reply(
            req.ty(),
            &Message {
                header,
                payload: &payload,
            },
        ) {
            Ok(Reply::Value(v)) => Ok(v.to_vec()),
            Ok(Reply::Ok) => Ok(Vec::new()),
            Ok(_) => Err(XsError::BadReply),
            Err(e) => Err(XsError::Wire(e)),
        }
    }

    /// Writes `value` at `path` (relative paths are under the domain's home).
    pub fn write(&mut self, path: &str, value: &str) -> Result<(), XsError> {
        self.call(Request::write(0, path.as_bytes(), value.as_bytes()))
            .map(|_| ())
    }

    /// Creates directory `path`.
    pub fn mkdir(&mut self, path: &str) -> Result<(), XsError> {
        self.call(Request::mkdir(0, path.as_bytes())).map(|_| ())
    }

    /// Reads `path`; `None` when it does not exist.
    pub fn read(&mut self, path: &str) -> Result<Option<String>, XsError> {
        match self.call(Request::read(0, path.as_bytes())) {
            Ok(v) => Ok(Some(String::from_utf8_lossy(&v).into_owned())),
            Err(XsError::Wire(WireError::Xs(xenstore_wire::XsError::NoEnt))) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// The request type a `Request` was built for (re-exported for tests).
pub fn request_type(r: &Request<'_>) -> MsgType {
    r.ty()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_frame_as_xs_wire_h_says() {
        let r = Request::write(0, b"data/depmig/state", b"tracking");
        assert_eq!(request_type(&r), MsgType::Write);
        let mut out = [0u8; 64];
        let n = r.encode(7, &mut out).unwrap();
        let h = Header::decode(out[..16].try_into().unwrap()).unwrap();
        assert_eq!((h.ty, h.req_id, h.tx_id), (MsgType::Write as u32, 7, 0));
        assert_eq!(&out[16..n], b"data/depmig/state\0tracking");
    }

    /// Plays xenstored on the other end of a socket: answers each request
    /// with `reply(type, req_id, payload)` -> (type, req_id, payload).
    fn fake(
        mut s: std::os::unix::net::UnixStream,
        reply: impl Fn(u32, u32, &[u8]) -> (u32, u32, Vec<u8>) + Send + 'static,
    ) -> std::thread::JoinHandle<()> {
        std::thread::spawn(move || loop {
            let mut h = [0u8; 16];
            if s.read_exact(&mut h).is_err() {
                return;
            }
            let hd = Header::decode(&h).unwrap();
            let mut p = vec![0u8; hd.len as usize];
            s.read_exact(&mut p).unwrap();
            let (ty, id, body) = reply(hd.ty, hd.req_id, &p);
            let out = Header {
                ty,
                req_id: id,
                tx_id: 0,
                len: body.len() as u32,
            };
            let mut m = out.encode().to_vec();
            m.extend_from_slice(&body);
            s.write_all(&m).unwrap();
        })
    }

    #[test]
    fn write_read_and_missing_keys() {
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        let srv = fake(b, |ty, id, p| {
            if ty == MsgType::Read as u32 && p == b"data/depmig/none\0" {
                (MsgType::Error as u32, id, b"ENOENT\0".to_vec())
            } else if ty == MsgType::Read as u32 {
                (ty, id, b"1 freeze".to_vec())
            } else {
                (ty, id, b"OK\0".to_vec())
            }
        });
        let mut xs = Xenstore::over(a);
        xs.mkdir("data/depmig").unwrap();
        xs.write("data/depmig/state", "tracking").unwrap();
        assert_eq!(
            xs.read("data/depmig/request").unwrap().as_deref(),
            Some("1 freeze")
        );
        assert_eq!(xs.read("data/depmig/none").unwrap(), None);
        drop(xs);
        srv.join().unwrap();
    }

    #[test]
    fn hostile_replies_are_errors() {
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        let srv = fake(b, |ty, id, _| (ty, id.wrapping_add(1), b"OK\0".to_vec()));
        let mut xs = Xenstore::over(a);
        assert!(matches!(xs.write("k", "v"), Err(XsError::BadReply)));
        drop(xs);
        srv.join().unwrap();

        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        let srv = fake(b, |_, id, _| (MsgType::Directory as u32, id, Vec::new()));
        let mut xs = Xenstore::over(a);
        assert!(matches!(xs.write("k", "v"), Err(XsError::Wire(_))));
        drop(xs);
        srv.join().unwrap();

        // A header announcing more than the protocol allows.
        let (a, mut b) = std::os::unix::net::UnixStream::pair().unwrap();
        let srv = std::thread::spawn(move || {
            let mut h = [0u8; 64];
            let _ = b.read(&mut h);
            let bad = Header {
                ty: MsgType::Read as u32,
                req_id: 1,
                tx_id: 0,
                len: 70_000,
            };
            b.write_all(&bad.encode()).unwrap();
        });
        let mut xs = Xenstore::over(a);
        assert!(matches!(
            xs.read("k"),
            Err(XsError::Wire(WireError::TooLong { .. }))
        ));
        srv.join().unwrap();
    }

    #[test]
    fn unreachable_without_xenbus() {
        if std::path::Path::new("/dev/xen/xenbus").exists() {
            return;
        }
        assert!(matches!(Xenstore::open(), Err(XsError::Unreachable(_))));
    }
}
