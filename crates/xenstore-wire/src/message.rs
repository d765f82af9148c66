//! xenstore messages: header, requests, replies, watch events, reassembly.

/// Bytes of a message header (`xsd_sockmsg`).
pub const HEADER_LEN: usize = 16;
/// Largest payload xenstored accepts or sends (`XENSTORE_PAYLOAD_MAX`).
pub const PAYLOAD_MAX: usize = 4096;
/// Largest whole message.
pub const MESSAGE_MAX: usize = HEADER_LEN + PAYLOAD_MAX;

/// Message types (`enum xsd_sockmsg_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
#[allow(missing_docs, reason = "names are those of xs_wire.h")]
pub enum MsgType {
    Control = 0,
    Directory = 1,
    Read = 2,
    GetPerms = 3,
    Watch = 4,
    Unwatch = 5,
    TransactionStart = 6,
    TransactionEnd = 7,
    Introduce = 8,
    Release = 9,
    GetDomainPath = 10,
    Write = 11,
    Mkdir = 12,
    Rm = 13,
    SetPerms = 14,
    WatchEvent = 15,
    Error = 16,
    IsDomainIntroduced = 17,
    Resume = 18,
    SetTarget = 19,
    ResetWatches = 21,
    DirectoryPart = 22,
}

impl MsgType {
    /// Decodes a raw type; `None` for values xs_wire.h does not define.
    pub fn from_raw(raw: u32) -> Option<Self> {
        use MsgType::*;
        Some(match raw {
            0 => Control,
            1 => Directory,
            2 => Read,
            3 => GetPerms,
            4 => Watch,
            5 => Unwatch,
            6 => TransactionStart,
            7 => TransactionEnd,
            8 => Introduce,
            9 => Release,
            10 => GetDomainPath,
            11 => Write,
            12 => Mkdir,
            13 => Rm,
            14 => SetPerms,
            15 => WatchEvent,
            16 => Error,
            17 => IsDomainIntroduced,
            18 => Resume,
            19 => SetTarget,
            21 => ResetWatches,
            22 => DirectoryPart,
            _ => return None,
        })
    }
}

/// Errors xenstored reports in an `XS_ERROR` reply (`xsd_errors`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XsError {
    /// EINVAL: invalid argument.
    Inval,
    /// EACCES: permission denied.
    Acces,
    /// EEXIST: node exists.
    Exist,
    /// EISDIR: is a directory.
    IsDir,
    /// ENOENT: no such node.
    NoEnt,
    /// ENOMEM: out of memory.
    NoMem,
    /// ENOSPC: quota exceeded.
    NoSpc,
    /// EIO: I/O error.
    Io,
    /// ENOTEMPTY: directory not empty.
    NotEmpty,
    /// ENOSYS: operation not supported.
    NoSys,
    /// EROFS: read-only.
    RoFs,
    /// EBUSY: busy.
    Busy,
    /// EAGAIN: transaction conflict, retry it.
    Again,
    /// EISCONN: already connected.
    IsConn,
    /// E2BIG: value or path too large.
    TooBig,
    /// EPERM: operation not permitted.
    Perm,
    /// An error string this codec does not know.
    Other,
}

impl XsError {
    /// Maps an error reply's string (without its NUL) to an error.
    pub fn from_name(name: &[u8]) -> Self {
        match name {
            b"EINVAL" => XsError::Inval,
            b"EACCES" => XsError::Acces,
            b"EEXIST" => XsError::Exist,
            b"EISDIR" => XsError::IsDir,
            b"ENOENT" => XsError::NoEnt,
            b"ENOMEM" => XsError::NoMem,
            b"ENOSPC" => XsError::NoSpc,
            b"EIO" => XsError::Io,
            b"ENOTEMPTY" => XsError::NotEmpty,
            b"ENOSYS" => XsError::NoSys,
            b"EROFS" => XsError::RoFs,
            b"EBUSY" => XsError::Busy,
            b"EAGAIN" => XsError::Again,
            b"EISCONN" => XsError::IsConn,
            b"E2BIG" => XsError::TooBig,
            b"EPERM" => XsError::Perm,
            _ => XsError::Other,
        }
    }
}

/// A protocol failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WireError {
    /// xenstored answered with an error.
    Xs(XsError),
    /// A header announces a payload larger than `PAYLOAD_MAX`.
    TooLong {
        /// The announced length.
        len: u32,
    },
    /// A request would exceed `PAYLOAD_MAX`.
    RequestTooLong,
    /// A path or token contains a NUL byte, which would break framing.
    InteriorNul,
    /// The output buffer is too small for the encoded request.
    BufferTooSmall,
    /// The reply's type is neither the request's nor `XS_ERROR`.
    UnexpectedType {
        /// Type of the request.
        expected: u32,
        /// Type received.
        got: u32,
    },
    /// The reply's payload does not have the shape its type requires.
    Malformed,
    /// A transaction id reply is not a decimal `u32`.
    BadNumber,
}

impl From<XsError> for WireError {
    fn from(e: XsError) -> Self {
        WireError::Xs(e)
    }
}

/// A decoded message header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Raw message type (see [`MsgType`]).
    pub ty: u32,
    /// Request id, echoed in the reply.
    pub req_id: u32,
    /// Transaction id, 0 outside transactions.
    pub tx_id: u32,
    /// Payload length.
    pub len: u32,
}

impl Header {
    /// Encodes the header.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = [0; HEADER_LEN];
        for (dst, v) in out
            .chunks_exact_mut(4)
            .zip([self.ty, self.req_id, self.tx_id, self.len])
        {
            dst.copy_from_slice(&v.to_le_bytes());
        }
        out
    }

    /// Decodes a header, rejecting payload lengths above `PAYLOAD_MAX`.
    pub fn decode(raw: &[u8; HEADER_LEN]) -> Result<Self, WireError> {
        let word = |i: usize| u32::from_le_bytes([raw[i], raw[i + 1], raw[i + 2], raw[i + 3]]);
        let h = Header {
            ty: word(0),
            req_id: word(4),
            tx_id: word(8),
            len: word(12),
        };
        if h.len as usize > PAYLOAD_MAX {
            return Err(WireError::TooLong { len: h.len });
        }
        Ok(h)
    }
}

/// One element of a request payload.
#[derive(Clone, Copy, Debug)]
enum Part<'a> {
    /// A string followed by a NUL; must not contain NUL itself.
    Str(&'a [u8]),
    /// Raw bytes, no terminator (the value of a write).
    Raw(&'a [u8]),
}

/// A request ready to encode.
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    ty: MsgType,
    tx_id: u32,
    parts: [Option<Part<'a>>; 2],
}

impl<'a> Request<'a> {
    fn new(ty: MsgType, tx_id: u32, a: Option<Part<'a>>, b: Option<Part<'a>>) -> Self {
        Request {
            ty,
            tx_id,
            parts: [a, b],
        }
    }

    /// `XS_READ path`.
    pub fn read(tx_id: u32, path: &'a [u8]) -> Self {
        Self::new(MsgType::Read, tx_id, Some(Part::Str(path)), None)
    }
    /// `XS_WRITE path value`.
    pub fn write(tx_id: u32, path: &'a [u8], value: &'a [u8]) -> Self {
        Self::new(
            MsgType::Write,
            tx_id,
            Some(Part::Str(path)),
            Some(Part::Raw(value)),
        )
    }
    /// `XS_DIRECTORY path`.
    pub fn directory(tx_id: u32, path: &'a [u8]) -> Self {
        Self::new(MsgType::Directory, tx_id, Some(Part::Str(path)), None)
    }
    /// `XS_MKDIR path`.
    pub fn mkdir(tx_id: u32, path: &'a [u8]) -> Self {
        Self::new(MsgType::Mkdir, tx_id, Some(Part::Str(path)), None)
    }
    /// `XS_RM path`.
    pub fn rm(tx_id: u32, path: &'a [u8]) -> Self {
        Self::new(MsgType::Rm, tx_id, Some(Part::Str(path)), None)
    }
    /// `XS_WATCH path token`.
    pub fn watch(path: &'a [u8], token: &'a [u8]) -> Self {
        Self::new(
            MsgType::Watch,
            0,
            Some(Part::Str(path)),
            Some(Part::Str(token)),
        )
    }
    /// `XS_UNWATCH path token`.
    pub fn unwatch(path: &'a [u8], token: &'a [u8]) -> Self {
        Self::new(
            MsgType::Unwatch,
            0,
            Some(Part::Str(path)),
            Some(Part::Str(token)),
        )
    }
    /// `XS_TRANSACTION_START`.
    pub fn transaction_start() -> Self {
        Self::new(MsgType::TransactionStart, 0, Some(Part::Str(b"")), None)
    }
    /// `XS_TRANSACTION_END`: commit (`T`) or abort (`F`).
    pub fn transaction_end(tx_id: u32, commit: bool) -> Self {
        let v: &'static [u8] = if commit { b"T" } else { b"F" };
        Self::new(MsgType::TransactionEnd, tx_id, Some(Part::Str(v)), None)
    }

    /// The request's message type.
    pub fn ty(&self) -> MsgType {
        self.ty
    }

    /// Payload length of the encoded request.
    pub fn payload_len(&self) -> usize {
        self.parts
            .iter()
            .flatten()
            .map(|p| match p {
                Part::Str(s) => s.len() + 1,
                Part::Raw(r) => r.len(),
            })
            .sum()
    }

    /// Encodes header and payload into `out`; returns the message length.
    pub fn encode(&self, req_id: u32, out: &mut [u8]) -> Result<usize, WireError> {
        let len = self.payload_len();
        if len > PAYLOAD_MAX {
            return Err(WireError::RequestTooLong);
        }
        let total = HEADER_LEN + len;
        let out = out.get_mut(..total).ok_or(WireError::BufferTooSmall)?;
        let header = Header {
            ty: self.ty as u32,
            req_id,
            tx_id: self.tx_id,
            len: len as u32,
        };
        let (head, mut rest) = out.split_at_mut(HEADER_LEN);
        head.copy_from_slice(&header.encode());
        for part in self.parts.iter().flatten() {
            let (bytes, nul) = match part {
                Part::Str(s) => {
                    if s.contains(&0) {
                        return Err(WireError::InteriorNul);
                    }
                    (*s, true)
                }
                Part::Raw(r) => (*r, false),
            };
            // PANICS: `rest` has exactly payload_len bytes left over all parts.
            let (dst, tail) = rest.split_at_mut(bytes.len());
            dst.copy_from_slice(bytes);
            rest = tail;
            if nul {
                let (dst, tail) = rest.split_at_mut(1);
                dst[0] = 0;
                rest = tail;
            }
        }
        Ok(total)
    }
}

/// A complete message: header and payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Message<'a> {
    /// The header.
    pub header: Header,
    /// The payload (`header.len` bytes).
    pub payload: &'a [u8],
}

/// A reply, checked against the request it answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reply<'a> {
    /// `"OK"` (write, mkdir, rm, watch, unwatch, transaction end).
    Ok,
    /// A node's value (read), returned as raw bytes.
    Value(&'a [u8]),
    /// Directory entries (directory).
    Directory(Directory<'a>),
    /// A new transaction id (transaction start).
    TransactionId(u32),
}

/// Checks a reply `msg` to a request of type `request` and decodes it.
///
/// `XS_ERROR` replies become `Err(WireError::Xs(..))`; a reply whose shape
/// does not fit its type is `Malformed`.
pub fn parse_reply<'a>(request: MsgType, msg: &Message<'a>) -> Result<Reply<'a>, WireError> {
    let payload = msg.payload;
    if msg.header.ty == MsgType::Error as u32 {
        let name = payload.strip_suffix(b"\0").unwrap_or(payload);
        return Err(WireError::Xs(XsError::from_name(name)));
    }
    if msg.header.ty != request as u32 {
        return Err(WireError::UnexpectedType {
            expected: request as u32,
            got: msg.header.ty,
        });
    }
    match request {
        MsgType::Read => Ok(Reply::Value(payload)),
        MsgType::Directory => Directory::new(payload).map(Reply::Directory),
        MsgType::TransactionStart => {
            let digits = payload.strip_suffix(b"\0").ok_or(WireError::Malformed)?;
            parse_u32(digits).map(Reply::TransactionId)
        }
        MsgType::Write
        | MsgType::Mkdir
        | MsgType::Rm
        | MsgType::Watch
        | MsgType::Unwatch
        | MsgType::TransactionEnd => {
            if payload == b"OK\0" || payload == b"OK" {
                Ok(Reply::Ok)
            } else {
                Err(WireError::Malformed)
            }
        }
        _ => Err(WireError::Malformed),
    }
}

fn parse_u32(digits: &[u8]) -> Result<u32, WireError> {
    if digits.is_empty() || digits.len() > 10 {
        return Err(WireError::BadNumber);
    }
    let mut v: u64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return Err(WireError::BadNumber);
        }
        v = v * 10 + u64::from(d - b'0');
    }
    u32::try_from(v).map_err(|_| WireError::BadNumber)
}

/// The entries of a directory reply: NUL-terminated names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Directory<'a> {
    rest: &'a [u8],
}

impl<'a> Directory<'a> {
    /// Checks the shape (empty, or names each ending in NUL) of `payload`.
    pub fn new(payload: &'a [u8]) -> Result<Self, WireError> {
        if !payload.is_empty() && payload.last() != Some(&0) {
            return Err(WireError::Malformed);
        }
        Ok(Directory { rest: payload })
    }
}

impl<'a> Iterator for Directory<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let end = self.rest.iter().position(|&b| b == 0)?;
        let (name, rest) = self.rest.split_at(end);
        self.rest = rest.get(1..).unwrap_or(&[]);
        Some(name)
    }
}

/// A watch event (`XS_WATCH_EVENT`): the path that changed and the token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WatchEvent<'a> {
    /// The path that fired (may be below the watched path).
    pub path: &'a [u8],
    /// The token given with the watch.
    pub token: &'a [u8],
}

impl<'a> WatchEvent<'a> {
    /// Decodes a watch event's payload: `path NUL token NUL`.
    pub fn parse(msg: &Message<'a>) -> Result<Self, WireError> {
        if msg.header.ty != MsgType::WatchEvent as u32 {
            return Err(WireError::UnexpectedType {
                expected: MsgType::WatchEvent as u32,
                got: msg.header.ty,
            });
        }
        let body = msg
            .payload
            .strip_suffix(b"\0")
            .ok_or(WireError::Malformed)?;
        let split = body
            .iter()
            .position(|&b| b == 0)
            .ok_or(WireError::Malformed)?;
        let (path, token) = body.split_at(split);
        let token = token.get(1..).ok_or(WireError::Malformed)?;
        if token.contains(&0) {
            return Err(WireError::Malformed);
        }
        Ok(WatchEvent { path, token })
    }
}

/// Rebuilds messages from bytes that arrive in arbitrary pieces.
///
/// Feed bytes with [`Assembler::push`] until [`Assembler::message`] returns
/// a message, use it, then [`Assembler::clear`]. A header announcing more
/// than `PAYLOAD_MAX` bytes is an error after which the stream cannot be
/// resynchronised.
#[derive(Clone)]
pub struct Assembler {
    buf: [u8; MESSAGE_MAX],
    filled: usize,
    header: Option<Header>,
}

impl Default for Assembler {
    fn default() -> Self {
        Assembler {
            buf: [0; MESSAGE_MAX],
            filled: 0,
            header: None,
        }
    }
}

impl Assembler {
    /// Bytes still needed to complete the current header or message.
    pub fn wanted(&self) -> usize {
        match self.header {
            None => HEADER_LEN - self.filled,
            Some(h) => HEADER_LEN + h.len as usize - self.filled,
        }
    }

    /// Takes as many bytes of `data` as the current message needs; returns
    /// how many it took.
    pub fn push(&mut self, data: &[u8]) -> Result<usize, WireError> {
        let mut taken = 0;
        while taken < data.len() && self.wanted() > 0 {
            let n = self.wanted().min(data.len() - taken);
            let (Some(dst), Some(src)) = (
                self.buf.get_mut(self.filled..self.filled + n),
                data.get(taken..taken + n),
            ) else {
                return Err(WireError::Malformed);
            };
            dst.copy_from_slice(src);
            self.filled += n;
            taken += n;
            if self.header.is_none() && self.filled == HEADER_LEN {
                let mut raw = [0; HEADER_LEN];
                raw.copy_from_slice(&self.buf[..HEADER_LEN]);
                self.header = Some(Header::decode(&raw)?);
            }
        }
        Ok(taken)
    }

    /// The complete message, once all its bytes arrived.
    pub fn message(&self) -> Option<Message<'_>> {
        let h = self.header?;
        if self.wanted() != 0 {
            return None;
        }
        let payload = self.buf.get(HEADER_LEN..HEADER_LEN + h.len as usize)?;
        Some(Message { header: h, payload })
    }

    /// Forgets the current message (after it was used, or after an error).
    pub fn clear(&mut self) {
        self.filled = 0;
        self.header = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(ty: MsgType, payload: &[u8]) -> Message<'_> {
        Message {
            header: Header {
                ty: ty as u32,
                req_id: 1,
                tx_id: 0,
                len: payload.len() as u32,
            },
            payload,
        }
    }

    #[test]
    fn encodes_write_with_path_nul_and_raw_value() {
        let mut out = [0; 64];
        let n = Request::write(5, b"data/x", b"hello")
            .encode(9, &mut out)
            .unwrap();
        assert_eq!(n, 16 + 7 + 5);
        assert_eq!(
            &out[..16],
            &Header {
                ty: 11,
                req_id: 9,
                tx_id: 5,
                len: 12
            }
            .encode()
        );
        assert_eq!(&out[16..n], b"data/x\0hello");
    }

    #[test]
    fn rejects_bad_requests() {
        let mut out = [0; 64];
        assert_eq!(
            Request::read(0, b"a\0b").encode(1, &mut out),
            Err(WireError::InteriorNul)
        );
        assert_eq!(
            Request::read(0, &[b'a'; 100]).encode(1, &mut out),
            Err(WireError::BufferTooSmall)
        );
        let big = [b'v'; PAYLOAD_MAX];
        let mut out = [0; MESSAGE_MAX + 10];
        assert_eq!(
            Request::write(0, b"p", &big).encode(1, &mut out),
            Err(WireError::RequestTooLong)
        );
    }

    #[test]
    fn replies_decode_by_request_type() {
        assert_eq!(
            parse_reply(MsgType::Write, &msg(MsgType::Write, b"OK\0")),
            Ok(Reply::Ok)
        );
        assert_eq!(
            parse_reply(MsgType::Read, &msg(MsgType::Read, b"7")),
            Ok(Reply::Value(b"7"))
        );
        assert_eq!(
            parse_reply(
                MsgType::TransactionStart,
                &msg(MsgType::TransactionStart, b"42\0")
            ),
            Ok(Reply::TransactionId(42))
        );
        let Ok(Reply::Directory(d)) =
            parse_reply(MsgType::Directory, &msg(MsgType::Directory, b"a\0bc\0"))
        else {
            panic!("directory");
        };
        assert_eq!(d.collect::<Vec<_>>(), vec![&b"a"[..], &b"bc"[..]]);
        let Ok(Reply::Directory(d)) =
            parse_reply(MsgType::Directory, &msg(MsgType::Directory, b""))
        else {
            panic!("empty directory");
        };
        assert_eq!(d.count(), 0);
    }

    #[test]
    fn error_and_malformed_replies_are_typed() {
        let e = |p: &[u8]| parse_reply(MsgType::Read, &msg(MsgType::Error, p)).map(|_| ());
        assert_eq!(e(b"ENOENT\0"), Err(WireError::Xs(XsError::NoEnt)));
        assert_eq!(e(b"EAGAIN\0"), Err(WireError::Xs(XsError::Again)));
        assert_eq!(e(b"EWHAT\0"), Err(WireError::Xs(XsError::Other)));
        assert_eq!(
            parse_reply(MsgType::Read, &msg(MsgType::Write, b"OK\0")),
            Err(WireError::UnexpectedType {
                expected: 2,
                got: 11
            })
        );
        assert_eq!(
            parse_reply(MsgType::Write, &msg(MsgType::Write, b"KO\0")),
            Err(WireError::Malformed)
        );
        assert_eq!(
            parse_reply(MsgType::Directory, &msg(MsgType::Directory, b"a\0b")),
            Err(WireError::Malformed)
        );
        for bad in [
            &b"\0"[..],
            b"12a\0",
            b"99999999999\0",
            b"4294967296\0",
            b"7",
        ] {
            assert!(parse_reply(
                MsgType::TransactionStart,
                &msg(MsgType::TransactionStart, bad)
            )
            .is_err());
        }
    }

    #[test]
    fn watch_events() {
        let ev = WatchEvent::parse(&msg(MsgType::WatchEvent, b"data/k\0tok\0")).unwrap();
        assert_eq!((ev.path, ev.token), (&b"data/k"[..], &b"tok"[..]));
        for bad in [&b""[..], b"path", b"path\0", b"p\0t", b"p\0t\0x\0"] {
            assert!(
                WatchEvent::parse(&msg(MsgType::WatchEvent, bad)).is_err(),
                "{bad:?}"
            );
        }
        assert!(WatchEvent::parse(&msg(MsgType::Read, b"p\0t\0")).is_err());
    }

    #[test]
    fn assembler_rebuilds_split_messages() {
        let mut wire = [0; 128];
        let n = Request::write(0, b"k", b"value")
            .encode(3, &mut wire)
            .unwrap();
        let mut a = Assembler::default();
        for byte in &wire[..n - 1] {
            assert_eq!(a.push(core::slice::from_ref(byte)), Ok(1));
            assert!(a.message().is_none());
        }
        // A push with extra bytes takes only what the message needs.
        assert_eq!(a.push(&wire[n - 1..n + 5]), Ok(1));
        let m = a.message().unwrap();
        assert_eq!(m.header.req_id, 3);
        assert_eq!(m.payload, b"k\0value");
        a.clear();
        assert!(a.message().is_none());
    }

    #[test]
    fn assembler_rejects_oversized_header() {
        let h = Header {
            ty: 2,
            req_id: 0,
            tx_id: 0,
            len: PAYLOAD_MAX as u32 + 1,
        }
        .encode();
        let mut a = Assembler::default();
        assert_eq!(
            a.push(&h),
            Err(WireError::TooLong {
                len: PAYLOAD_MAX as u32 + 1
            })
        );
    }
}
