//! xenstore client over the shared ring: read, write, directory, mkdir, rm,
//! watches and transactions.
//!
//! Framing and validation live in the portable `xenstore-wire` crate; this
//! module moves bytes between the ring page and that codec, waits on the
//! store event channel with deadlines, matches replies to request ids, and
//! queues watch events that arrive while a reply is awaited.

use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{fence, AtomicU32, Ordering};

use xenstore_wire::message::{Message, MESSAGE_MAX};
use xenstore_wire::ring::*;
use xenstore_wire::*;

use super::{evtchn, Wake, Xen};

/// How long one request may take before it is abandoned.
pub const REQUEST_TIMEOUT_NS: u64 = 10_000_000_000;
/// Watch events kept while nobody waits for them.
pub const WATCH_QUEUE_MAX: usize = 64;
/// Attempts for a transaction that keeps conflicting (EAGAIN).
pub const TRANSACTION_RETRIES: usize = 8;

/// Why a xenstore operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XsClientError {
    /// The wire protocol failed, or xenstored returned an error.
    Wire(WireError),
    /// The ring indices are inconsistent.
    Ring(RingError),
    /// No reply before the deadline.
    Timeout,
    /// A value is not UTF-8 where text was expected.
    NotText,
}

impl From<WireError> for XsClientError {
    fn from(e: WireError) -> Self {
        XsClientError::Wire(e)
    }
}

impl From<RingError> for XsClientError {
    fn from(e: RingError) -> Self {
        XsClientError::Ring(e)
    }
}

/// A fired watch: the path that changed and the watch's token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// The changed path.
    pub path: String,
    /// The token given to [`Xenstore::watch`].
    pub token: String,
}

/// The xenstore connection.
pub struct Xenstore {
    xen: &'static Xen,
    ring: u64,
    port: u32,
    next_id: u32,
    asm: alloc::boxed::Box<Assembler>,
    events: VecDeque<Event>,
    /// Watch events dropped because the queue was full.
    pub dropped_events: u64,
}

/// A reply kept after the assembler moved on.
struct OwnedReply {
    header: Header,
    payload: Vec<u8>,
}

impl Xenstore {
    /// Connects to the ring Xen named at boot.
    pub fn new(xen: &'static Xen) -> Result<Self, XsClientError> {
        let (ring, port) = xen.store;
        // The toolstack bound the port; make sure it is unmasked.
        if let Err(e) = evtchn::unmask(port) {
            log::warn!("xenstore: unmasking port {port} failed: {e}");
        }
        log::info!(
            "xenstore: ring at {ring:#x}, port {port} (masked: {}, pending: {})",
            evtchn::is_masked(&xen.shared, port),
            evtchn::is_pending(&xen.shared, port)
        );
        Ok(Xenstore {
            xen,
            ring,
            port,
            next_id: 1,
            asm: alloc::boxed::Box::default(),
            events: VecDeque::new(),
            dropped_events: 0,
        })
    }

    fn idx(&self, off: usize) -> &AtomicU32 {
        // SAFETY: an index field of the store page, which Xen set up for the
        // whole life of the domain.
        unsafe { &*((self.ring + off as u64) as *const AtomicU32) }
    }

    fn send_bytes(&mut self, mut bytes: &[u8], deadline: u64) -> Result<(), XsClientError> {
        while !bytes.is_empty() {
            let prod = self.idx(REQ_PROD_OFFSET).load(Ordering::Relaxed);
            let cons = self.idx(REQ_CONS_OFFSET).load(Ordering::Acquire);
            let (off, len) = writable_span(prod, cons)?;
            if len == 0 {
                let _ = evtchn::send(self.port);
                if self.xen.wait(&[self.port], deadline) == Wake::TimedOut {
                    return Err(XsClientError::Timeout);
                }
                continue;
            }
            let n = len.min(bytes.len());
            for (i, &b) in bytes.iter().take(n).enumerate() {
                let at = self.ring + (REQ_OFFSET + off + i) as u64;
                // SAFETY: inside the request ring (off + n <= RING_SIZE).
                unsafe { (at as *mut u8).write_volatile(b) };
            }
            fence(Ordering::Release);
            self.idx(REQ_PROD_OFFSET)
                .store(prod.wrapping_add(n as u32), Ordering::Release);
            let _ = evtchn::send(self.port);
            // PANICS: n <= bytes.len().
            bytes = &bytes[n..];
        }
        Ok(())
    }

    /// Reads ring bytes into the assembler until a message completes.
    fn receive(&mut self, deadline: u64) -> Result<OwnedReply, XsClientError> {
        let mut chunk = [0u8; RING_SIZE];
        loop {
            if let Some(m) = self.asm.message() {
                let r = OwnedReply {
                    header: m.header,
                    payload: m.payload.to_vec(),
                };
                self.asm.clear();
                return Ok(r);
            }
            let prod = self.idx(RSP_PROD_OFFSET).load(Ordering::Acquire);
            let cons = self.idx(RSP_CONS_OFFSET).load(Ordering::Relaxed);
            let (off, len) = readable_span(prod, cons)?;
            if len == 0 {
                if self.xen.wait(&[self.port], deadline) == Wake::TimedOut {
                    return Err(XsClientError::Timeout);
                }
                continue;
            }
            let n = len.min(self.asm.wanted());
            for (i, c) in chunk.iter_mut().take(n).enumerate() {
                let at = self.ring + (RSP_OFFSET + off + i) as u64;
                // SAFETY: inside the response ring (off + n <= RING_SIZE).
                *c = unsafe { (at as *const u8).read_volatile() };
            }
            fence(Ordering::Acquire);
            // PANICS: n <= len <= RING_SIZE.
            let taken = self
                .asm
                .push(&chunk[..n])
                .inspect_err(|_| self.asm.clear())?;
            self.idx(RSP_CONS_OFFSET)
                .store(cons.wrapping_add(taken as u32), Ordering::Release);
            let _ = evtchn::send(self.port);
        }
    }

    fn queue_event(&mut self, r: &OwnedReply) {
        let msg = Message {
            header: r.header,
            payload: &r.payload,
        };
        if let Ok(ev) = WatchEvent::parse(&msg) {
            if self.events.len() >= WATCH_QUEUE_MAX {
                self.dropped_events += 1;
                return;
            }
            self.events.push_back(Event {
                path: String::from_utf8_lossy(ev.path).into_owned(),
                token: String::from_utf8_lossy(ev.token).into_owned(),
            });
        }
    }

    /// Sends `req` and returns its reply's header and payload.
    fn call(&mut self, req: Request<'_>) -> Result<OwnedReply, XsClientError> {
        let start = self.xen.now_ns();
        let ty = req.ty();
        let r = self.call_inner(req, start + REQUEST_TIMEOUT_NS);
        log::debug!(
            "xenstore: {ty:?} took {} us",
            (self.xen.now_ns() - start) / 1000
        );
        r
    }

    fn call_inner(&mut self, req: Request<'_>, deadline: u64) -> Result<OwnedReply, XsClientError> {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1).max(1);
        let mut buf = alloc::vec![0u8; MESSAGE_MAX];
        let n = req.encode(id, &mut buf)?;
        // PANICS: encode returned n <= buf.len().
        self.send_bytes(&buf[..n], deadline)?;
        // Bounded by the deadline even if the peer floods us with messages.
        loop {
            if self.xen.now_ns() > deadline {
                return Err(XsClientError::Timeout);
            }
            let r = self.receive(deadline)?;
            if r.header.ty == MsgType::WatchEvent as u32 {
                self.queue_event(&r);
                continue;
            }
            if r.header.req_id != id {
                // A stale reply to an abandoned request: skip it.
                continue;
            }
            return Ok(r);
        }
    }

    fn call_parse<T>(
        &mut self,
        req: Request<'_>,
        f: impl FnOnce(Reply<'_>) -> Result<T, XsClientError>,
    ) -> Result<T, XsClientError> {
        let ty = req.ty();
        let r = self.call(req)?;
        let reply = parse_reply(
            ty,
            &Message {
                header: r.header,
                payload: &r.payload,
            },
        )?;
        f(reply)
    }

    fn expect_ok(reply: Reply<'_>) -> Result<(), XsClientError> {
        match reply {
            Reply::Ok => Ok(()),
            _ => Err(WireError::Malformed.into()),
        }
    }

    /// Reads a node's value (in transaction `tx`, 0 for none).
    pub fn read_tx(&mut self, tx: u32, path: &str) -> Result<Vec<u8>, XsClientError> {
        self.call_parse(Request::read(tx, path.as_bytes()), |r| match r {
            Reply::Value(v) => Ok(v.to_vec()),
            _ => Err(WireError::Malformed.into()),
        })
    }

    /// Reads a node's value.
    pub fn read(&mut self, path: &str) -> Result<Vec<u8>, XsClientError> {
        self.read_tx(0, path)
    }

    /// Reads a node's value as text.
    pub fn read_string(&mut self, path: &str) -> Result<String, XsClientError> {
        String::from_utf8(self.read(path)?).map_err(|_| XsClientError::NotText)
    }

    /// Our own domid, as xenstore's `domid` node in our home says; `None`
    /// if it cannot be read or is not a domain's id.
    pub fn own_domid(&mut self) -> Option<xen_abi::DomId> {
        let v = self.read_string("domid").ok()?;
        depmig_control::addr::parse_xen_domid(&v).ok()
    }

    /// Writes a node (in transaction `tx`, 0 for none).
    pub fn write_tx(&mut self, tx: u32, path: &str, value: &[u8]) -> Result<(), XsClientError> {
        self.call_parse(Request::write(tx, path.as_bytes(), value), Self::expect_ok)
    }

    /// Writes a node.
    pub fn write(&mut self, path: &str, value: &[u8]) -> Result<(), XsClientError> {
        self.write_tx(0, path, value)
    }

    /// Lists a node's children.
    pub fn directory(&mut self, path: &str) -> Result<Vec<String>, XsClientError> {
        self.call_parse(Request::directory(0, path.as_bytes()), |r| match r {
            Reply::Directory(d) => Ok(d.map(|n| String::from_utf8_lossy(n).into_owned()).collect()),
            _ => Err(WireError::Malformed.into()),
        })
    }

    /// Creates a node (and its parents).
    #[allow(dead_code, reason = "API for the migration roles")]
    pub fn mkdir(&mut self, path: &str) -> Result<(), XsClientError> {
        self.call_parse(Request::mkdir(0, path.as_bytes()), Self::expect_ok)
    }

    /// Removes a node and its children.
    pub fn rm(&mut self, path: &str) -> Result<(), XsClientError> {
        self.call_parse(Request::rm(0, path.as_bytes()), Self::expect_ok)
    }

    /// Registers a watch on `path` (xenstored fires it once at once).
    pub fn watch(&mut self, path: &str, token: &str) -> Result<(), XsClientError> {
        self.call_parse(
            Request::watch(path.as_bytes(), token.as_bytes()),
            Self::expect_ok,
        )
    }

    /// Removes a watch.
    pub fn unwatch(&mut self, path: &str, token: &str) -> Result<(), XsClientError> {
        self.call_parse(
            Request::unwatch(path.as_bytes(), token.as_bytes()),
            Self::expect_ok,
        )
    }

    /// The next watch event, waiting until `deadline_ns` at most.
    pub fn next_event(&mut self, deadline_ns: u64) -> Result<Event, XsClientError> {
        loop {
            if let Some(ev) = self.events.pop_front() {
                return Ok(ev);
            }
            if self.xen.now_ns() > deadline_ns {
                return Err(XsClientError::Timeout);
            }
            let r = self.receive(deadline_ns)?;
            if r.header.ty == MsgType::WatchEvent as u32 {
                self.queue_event(&r);
            }
            // Anything else is a stale reply: dropped.
        }
    }

    /// Starts a transaction; returns its id.
    pub fn transaction_start(&mut self) -> Result<u32, XsClientError> {
        self.call_parse(Request::transaction_start(), |r| match r {
            Reply::TransactionId(t) => Ok(t),
            _ => Err(WireError::Malformed.into()),
        })
    }

    /// Ends a transaction, committing or aborting it. A conflicting commit
    /// fails with `Wire(Xs(Again))`.
    pub fn transaction_end(&mut self, tx: u32, commit: bool) -> Result<(), XsClientError> {
        self.call_parse(Request::transaction_end(tx, commit), Self::expect_ok)
    }

    /// Runs `body` in a transaction, retrying on conflicts (bounded).
    pub fn transaction<T>(
        &mut self,
        mut body: impl FnMut(&mut Self, u32) -> Result<T, XsClientError>,
    ) -> Result<T, XsClientError> {
        let mut last = XsClientError::Wire(WireError::Xs(XsError::Again));
        for _ in 0..TRANSACTION_RETRIES {
            let tx = self.transaction_start()?;
            let value = match body(self, tx) {
                Ok(v) => v,
                Err(e) => {
                    let _ = self.transaction_end(tx, false);
                    return Err(e);
                }
            };
            match self.transaction_end(tx, true) {
                Ok(()) => return Ok(value),
                Err(e @ XsClientError::Wire(WireError::Xs(XsError::Again))) => last = e,
                Err(e) => return Err(e),
            }
        }
        Err(last)
    }
}
