//! A direct connection to xenstored's Unix socket.
//!
//! `depmig migrate` polls the appliances' progress several times a second
//! around the switchover; one `xenstore-read` process per key costs tens to
//! hundreds of milliseconds in a dom0 under emulation, which the guest pays
//! as downtime. Over the socket a read is one request and one reply. The
//! messages are those of the wire crate (`xsd_sockmsg`); anything xenstored
//! sends is checked (a reply to another request, a payload longer than the
//! protocol allows, a reply of the wrong type are errors), and every call
//! has a timeout.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use xenstore_wire::message::{Message, MESSAGE_MAX};
use xenstore_wire::{
    parse_reply, Header, MsgType, Reply, Request, WireError, XsError, HEADER_LEN, PAYLOAD_MAX,
};

/// Longest wait for a reply (xenstored answers in milliseconds).
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Watch events a caller that set no watch may still be sent (e.g. by a
/// xenstored that delivers stale ones); more than this between a request
/// and its reply is a broken connection.
const MAX_SKIPPED: usize = 64;

/// Where xenstored listens: `XENSTORED_PATH` (as libxenstore honours it),
/// else the usual run directories.
pub fn socket_candidates() -> Vec<PathBuf> {
    let mut v = Vec::new();
    if let Some(p) = std::env::var_os("XENSTORED_PATH") {
        v.push(PathBuf::from(p));
    }
    v.push(PathBuf::from("/run/xenstored/socket"));
    v.push(PathBuf::from("/var/run/xenstored/socket"));
    v
}

/// One open connection.
pub struct XsSocket {
    stream: UnixStream,
    next_id: u32,
    path: PathBuf,
}

/// Why a call failed.
#[derive(Debug)]
pub enum CallError {
    /// xenstored answered with an error (`ENOENT`, `EACCES`, …).
    Xs(XsError),
    /// The connection broke, timed out or carried something malformed; it
    /// must not be used again.
    Broken(String),
}

impl XsSocket {
    /// Connects to the socket at `path`.
    pub fn connect(path: &Path) -> std::io::Result<XsSocket> {
        let stream = UnixStream::connect(path)?;
        stream.set_read_timeout(Some(CALL_TIMEOUT))?;
        stream.set_write_timeout(Some(CALL_TIMEOUT))?;
        Ok(XsSocket {
            stream,
            next_id: 1,
            path: path.to_path_buf(),
        })
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Connects to the first candidate that accepts.
    pub fn connect_any(paths: &[PathBuf]) -> Option<XsSocket> {
        paths.iter().find_map(|p| XsSocket::connect(p).ok())
    }

    fn call(&mut self, req: &Request<'_>) -> Result<(Header, Vec<u8>), CallError> {
        let broken =
            |what: &str, e: &dyn std::fmt::Display| CallError::Broken(format!("{what}: {e}"));
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1).max(1);
        let mut buf = vec![0u8; MESSAGE_MAX];
        let n = req
            .encode(id, &mut buf)
            .map_err(|e| broken("request", &format!("{e:?}")))?;
        self.stream
            .write_all(&buf[..n])
            .map_err(|e| broken("sending", &e))?;
        for _ in 0..=MAX_SKIPPED {
            let mut raw = [0u8; HEADER_LEN];
            self.stream
                .read_exact(&mut raw)
                .map_err(|e| broken("reading a reply", &e))?;
            let header =
                Header::decode(&raw).map_err(|e| broken("reply header", &format!("{e:?}")))?;
            let len = header.len as usize;
            if len > PAYLOAD_MAX {
                return Err(CallError::Broken(format!(
                    "reply announces {len} bytes (at most {PAYLOAD_MAX})"
                )));
            }
            let mut payload = vec![0u8; len];
            self.stream
                .read_exact(&mut payload)
                .map_err(|e| broken("reading a reply", &e))?;
            if header.ty == MsgType::WatchEvent as u32 {
                continue;
            }
            if header.req_id != id {
                return Err(CallError::Broken(format!(
                    "reply to request {} while waiting for {id}",
                    header.req_id
                )));
            }
            return Ok((header, payload));
        }
        Err(CallError::Broken(format!(
            "more than {MAX_SKIPPED} watch events before a reply"
        )))
    }

    fn checked<'a>(ty: MsgType, header: Header, payload: &'a [u8]) -> Result<Reply<'a>, CallError> {
        parse_reply(ty, &Message { header, payload }).map_err(|e| match e {
            WireError::Xs(x) => CallError::Xs(x),
            other => CallError::Broken(format!("reply: {other:?}")),
        })
    }

    /// Reads a node; `Ok(None)` when it does not exist or may not be read
    /// (as `xenstore-read` fails for both).
    pub fn read(&mut self, path: &str) -> Result<Option<Vec<u8>>, CallError> {
        let req = Request::read(0, path.as_bytes());
        let (h, payload) = self.call(&req)?;
        match Self::checked(MsgType::Read, h, &payload) {
            Ok(Reply::Value(v)) => Ok(Some(v.to_vec())),
            Ok(_) => Err(CallError::Broken("read: unexpected reply".into())),
            Err(CallError::Xs(XsError::NoEnt | XsError::Acces)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Writes a node, creating it.
    pub fn write(&mut self, path: &str, value: &[u8]) -> Result<(), CallError> {
        let req = Request::write(0, path.as_bytes(), value);
        let (h, payload) = self.call(&req)?;
        match Self::checked(MsgType::Write, h, &payload)? {
            Reply::Ok => Ok(()),
            _ => Err(CallError::Broken("write: unexpected reply".into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::os::unix::net::UnixListener;

    /// A tiny xenstored: serves read and write from a map; `quirk` bends
    /// its replies to test the client's checks.
    fn serve(listener: UnixListener, quirk: &'static str) {
        let (mut s, _) = listener.accept().unwrap();
        let mut store: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();
        loop {
            let mut raw = [0u8; HEADER_LEN];
            if s.read_exact(&mut raw).is_err() {
                return;
            }
            let h = Header::decode(&raw).unwrap();
            let mut p = vec![0u8; h.len as usize];
            s.read_exact(&mut p).unwrap();
            let reply = |ty: u32, req_id: u32, body: &[u8]| {
                let mut out = Header {
                    ty,
                    req_id,
                    tx_id: 0,
                    len: body.len() as u32,
                }
                .encode()
                .to_vec();
                out.extend_from_slice(body);
                out
            };
            let mut out = Vec::new();
            if quirk == "watch-event-first" {
                out.extend(reply(MsgType::WatchEvent as u32, 0, b"/a\0tok\0"));
            }
            let id = if quirk == "wrong-id" {
                h.req_id + 7
            } else {
                h.req_id
            };
            match MsgType::from_raw(h.ty) {
                Some(MsgType::Read) => {
                    let path = p.strip_suffix(b"\0").unwrap().to_vec();
                    match store.get(&path) {
                        Some(v) => out.extend(reply(h.ty, id, v)),
                        None => out.extend(reply(MsgType::Error as u32, id, b"ENOENT\0")),
                    }
                }
                Some(MsgType::Write) => {
                    let nul = p.iter().position(|b| *b == 0).unwrap();
                    store.insert(p[..nul].to_vec(), p[nul + 1..].to_vec());
                    out.extend(reply(h.ty, id, b"OK\0"));
                }
                _ => out.extend(reply(MsgType::Error as u32, id, b"EINVAL\0")),
            }
            if quirk == "oversized" {
                out = reply(MsgType::Read as u32, id, &[]);
                out[12..16].copy_from_slice(&(PAYLOAD_MAX as u32 + 1).to_le_bytes());
            }
            s.write_all(&out).unwrap();
        }
    }

    fn server(quirk: &'static str) -> (PathBuf, std::thread::JoinHandle<()>) {
        let dir = std::env::temp_dir().join(format!(
            "depmig-xs-{}-{quirk}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("socket");
        let l = UnixListener::bind(&path).unwrap();
        (path, std::thread::spawn(move || serve(l, quirk)))
    }

    #[test]
    fn reads_writes_and_missing_nodes() {
        let (path, t) = server("");
        let mut c = XsSocket::connect_any(&[PathBuf::from("/nonexistent/socket"), path.clone()])
            .expect("connects to the second candidate");
        assert!(matches!(c.read("/local/domain/3/x"), Ok(None)));
        c.write("/local/domain/3/x", b"PASS committed").unwrap();
        assert_eq!(
            c.read("/local/domain/3/x").unwrap().unwrap(),
            b"PASS committed"
        );
        c.write("/local/domain/3/x", b"").unwrap();
        assert_eq!(c.read("/local/domain/3/x").unwrap().unwrap(), b"");
        drop(c);
        t.join().unwrap();
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }

    #[test]
    fn watch_events_are_skipped() {
        let (path, t) = server("watch-event-first");
        let mut c = XsSocket::connect(&path).unwrap();
        c.write("/a", b"1").unwrap();
        assert_eq!(c.read("/a").unwrap().unwrap(), b"1");
        drop(c);
        t.join().unwrap();
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }

    #[test]
    fn a_reply_to_another_request_or_too_long_breaks_the_connection() {
        for quirk in ["wrong-id", "oversized"] {
            let (path, t) = server(quirk);
            let mut c = XsSocket::connect(&path).unwrap();
            match c.read("/a") {
                Err(CallError::Broken(_)) => {}
                other => panic!("{quirk}: {other:?}"),
            }
            drop(c);
            t.join().unwrap();
            let _ = std::fs::remove_dir_all(path.parent().unwrap());
        }
    }
}
