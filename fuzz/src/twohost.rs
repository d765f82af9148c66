//! Target `twohost`: the control protocol of a two-host migration
//! (`depmig_cli::twohost`), lines from the peer as `depmig receive` (the
//! requests) and `depmig migrate GUEST HOST` (the replies) read them.
//!
//! Input: a mode byte, then by mode (low two bits):
//!
//! * 0 (requests): the bytes the source sends, read by a
//!   `twohost::channel::Channel` (its reader thread, over the input) with
//!   `Channel::request` until the conversation ends;
//! * 1 (replies): the bytes the destination sends, read with
//!   `Channel::reply`;
//! * 2 (messages): a message built from the input (a variant byte, then
//!   its fields: numbers, and texts given whole or as a fragment repeated
//!   up to a few hundred KiB and a tail, with words of the contract picked
//!   by index),
//!   encoded as this end sends it (`protocol::encode`) and read back
//!   (`decode_request`, `decode_reply`);
//! * 3 (the line cap): a byte choosing requests or replies and the line's
//!   length, from four bytes under `MAX_LINE` to four over it (newline
//!   included), then the line: padded in front with spaces to that length,
//!   and read through the channel as in 0 and 1.
//!
//! Invariants checked besides "no panic": the channel hands over exactly
//! the lines a model of its reader cuts (at most `MAX_LINE` bytes with the
//! newline; a longer line, a line cut short by the end, and any line after
//! a refused one end the conversation), each read as `decode_request` or
//! `decode_reply` reads it; an over-long line is refused as `TooLong`, and
//! spaces in front of a line under the cap change nothing; every message
//! accepted passes its own check, is spelt with the kind it says it is,
//! and re-encodes to one line, within the cap, that reads back as the same
//! message; a message built here reads back as itself if and only if its
//! check passes.

use std::io::Cursor;
use std::time::Duration;

use depmig_cli::twohost::channel::{Channel, ChannelError};
use depmig_cli::twohost::protocol::{
    self, decode_reply, decode_request, Liveness, Prepare, ProtocolError, Reply, Request, MAX_LINE,
};
use depmig_control::{Compress, Encrypt, Mode, Policy};

use crate::Input;

/// Mode 0: request lines.
pub const MODE_REQUESTS: u8 = 0;
/// Mode 1: reply lines.
pub const MODE_REPLIES: u8 = 1;
/// Mode 2: messages built and read back.
pub const MODE_MESSAGES: u8 = 2;
/// Mode 3: one line padded to about the cap.
pub const MODE_CAP: u8 = 3;

/// How long a read waits (the reader thread has the whole input at once).
const WAIT: Duration = Duration::from_secs(60);

/// The longest text a message built here gets.
const MAX_BUILT_TEXT: usize = 320 * 1024;

/// What a run saw (for the seed tests).
#[derive(Debug, PartialEq, Eq)]
pub struct Outcome {
    /// Messages accepted.
    pub accepted: Vec<String>,
    /// What ended the conversation (modes 0, 1 and 3), or the built
    /// message's refusal (mode 2).
    pub end: Option<ChannelError>,
}

/// Runs one input.
pub fn run(data: &[u8]) -> Outcome {
    let mut inp = Input::new(data);
    match inp.u8() & 3 {
        MODE_REQUESTS => conversation(inp.rest(), false),
        MODE_REPLIES => conversation(inp.rest(), true),
        MODE_MESSAGES => messages(&mut inp),
        _ => cap(&mut inp),
    }
}

/// The items a correct reader hands over: lines of at most `MAX_LINE`
/// bytes with their newline, then what ends the input.
fn model_lines(mut rest: &[u8]) -> (Vec<&[u8]>, ChannelError) {
    let mut lines = Vec::new();
    loop {
        let window = &rest[..rest.len().min(MAX_LINE)];
        match window.iter().position(|&b| b == b'\n') {
            Some(i) => {
                lines.push(&rest[..i]);
                rest = &rest[i + 1..];
            }
            None if window.len() >= MAX_LINE => {
                return (lines, ChannelError::Protocol(ProtocolError::TooLong))
            }
            None => return (lines, ChannelError::Closed),
        }
    }
}

/// A message as one end reads it.
trait Message: Clone + PartialEq + std::fmt::Debug {
    fn encode(&self) -> Vec<u8>;
    fn decode(line: &[u8]) -> Result<Self, ProtocolError>;
    fn check(&self) -> Result<(), ProtocolError>;
    fn kind(&self) -> &'static str;
    fn read(chan: &mut Channel) -> Result<Option<Self>, ChannelError>;
}

impl Message for Request {
    fn encode(&self) -> Vec<u8> {
        protocol::encode(self)
    }
    fn decode(line: &[u8]) -> Result<Self, ProtocolError> {
        decode_request(line)
    }
    fn check(&self) -> Result<(), ProtocolError> {
        Request::check(self)
    }
    fn kind(&self) -> &'static str {
        Request::kind(self)
    }
    fn read(chan: &mut Channel) -> Result<Option<Self>, ChannelError> {
        chan.request(WAIT)
    }
}

impl Message for Reply {
    fn encode(&self) -> Vec<u8> {
        protocol::encode(self)
    }
    fn decode(line: &[u8]) -> Result<Self, ProtocolError> {
        decode_reply(line)
    }
    fn check(&self) -> Result<(), ProtocolError> {
        Reply::check(self)
    }
    fn kind(&self) -> &'static str {
        Reply::kind(self)
    }
    fn read(chan: &mut Channel) -> Result<Option<Self>, ChannelError> {
        chan.reply(WAIT).map(Some)
    }
}

/// An accepted message: checked, spelt with its kind, and the same again
/// from the line this end would send.
fn accepted<M: Message>(m: &M) {
    assert_eq!(m.check(), Ok(()), "an accepted message fails its check");
    let line = m.encode();
    assert!(
        line.len() <= MAX_LINE,
        "{} re-encodes to {} bytes, over the cap",
        m.kind(),
        line.len()
    );
    assert_eq!(line.last(), Some(&b'\n'));
    let body = &line[..line.len() - 1];
    assert!(!body.contains(&b'\n'), "a newline inside a message");
    let spelt = format!("{{\"msg\":\"{}\"", m.kind());
    assert!(
        body.starts_with(spelt.as_bytes()),
        "{} spelt as {}",
        m.kind(),
        String::from_utf8_lossy(&body[..body.len().min(40)])
    );
    assert_eq!(
        M::decode(body).as_ref(),
        Ok(m),
        "a message changed through its own line"
    );
}

fn conversation(bytes: &[u8], replies: bool) -> Outcome {
    if replies {
        converse::<Reply>(bytes)
    } else {
        converse::<Request>(bytes)
    }
}

fn converse<M: Message>(bytes: &[u8]) -> Outcome {
    let (lines, end) = model_lines(bytes);
    let mut chan = Channel::new(Cursor::new(bytes.to_vec()), std::io::sink());
    let mut out = Outcome {
        accepted: Vec::new(),
        end: None,
    };
    for line in &lines {
        let want = M::decode(line);
        assert!(
            line.len() < MAX_LINE,
            "a line of {} bytes handed over",
            line.len()
        );
        match (M::read(&mut chan), want) {
            (Ok(Some(m)), Ok(w)) => {
                assert_eq!(m, w, "the channel read a line otherwise");
                accepted(&m);
                out.accepted.push(m.kind().to_string());
            }
            (Err(ChannelError::Protocol(e)), Err(w)) => {
                assert_eq!(e, w, "the channel refused a line otherwise");
                // The conversation ended: nothing more is read.
                let again = M::read(&mut chan);
                assert_eq!(again, Err(ChannelError::Protocol(e.clone())));
                out.end = Some(ChannelError::Protocol(e));
                return out;
            }
            (got, want) => panic!("the channel gave {got:?} where the line reads {want:?}"),
        }
    }
    let got = M::read(&mut chan);
    assert_eq!(got, Err(end.clone()), "the end of the input");
    assert_eq!(M::read(&mut chan), Err(end.clone()), "the end not repeated");
    out.end = Some(end);
    out
}

/// A text from the input: a length byte and its bytes, or (length byte
/// 0xff) a u16 count, a fragment (a length byte and its bytes) repeated
/// that many times (bounded), and a tail (a length byte and its bytes);
/// not UTF-8 is mended.
fn text(inp: &mut Input<'_>) -> String {
    let n = inp.u8();
    let bytes = if n == 0xff {
        let count = usize::from(inp.u16());
        let len = usize::from(inp.u8());
        let frag = inp.bytes(len);
        let reps = if frag.is_empty() {
            0
        } else {
            count.min(MAX_BUILT_TEXT / frag.len())
        };
        let mut t = frag.repeat(reps);
        let len = usize::from(inp.u8());
        t.extend_from_slice(inp.bytes(len));
        t
    } else {
        inp.bytes(usize::from(n)).to_vec()
    };
    String::from_utf8_lossy(&bytes).into_owned()
}

/// A word of the contract (by index), or a text.
fn word(inp: &mut Input<'_>, words: &[&'static str]) -> String {
    let b = inp.u8();
    match words.get(usize::from(b)) {
        Some(w) => (*w).to_string(),
        None if b == 0xff => text(inp),
        None => String::new(),
    }
}

fn prepare(inp: &mut Input<'_>) -> Prepare {
    let modes = Mode::ALL.map(Mode::as_str);
    let policies = Policy::ALL.map(Policy::as_str);
    let compresses = Compress::ALL.map(Compress::as_str);
    let encrypts = Encrypt::ALL.map(Encrypt::as_str);
    let flags = inp.u8();
    Prepare {
        guest: text(inp),
        config: text(inp),
        key: if flags & 1 != 0 {
            text(inp)
        } else {
            "5a".repeat(32)
        },
        ip: if flags & 2 != 0 {
            text(inp)
        } else {
            "10.77.0.22".into()
        },
        prefix: inp.u8(),
        port: inp.u16(),
        mode: word(inp, &modes),
        policy: word(inp, &policies),
        verify: flags & 4 != 0,
        compress: word(inp, &compresses),
        encrypt: word(inp, &encrypts),
        delta_cache_mib: inp.u32(),
        appliance_memory_mib: u32::from(inp.u16()),
        link_rate: (flags & 8 != 0).then(|| text(inp)),
        fault: (flags & 16 != 0).then(|| text(inp)),
    }
}

fn request(inp: &mut Input<'_>) -> Request {
    match inp.u8() % 7 {
        0 => Request::Hello { version: inp.u32() },
        1 => Request::Prepare(Box::new(prepare(inp))),
        2 => Request::Status {},
        3 => {
            // The notice is made only by reading it (its field is private).
            let line = format!(r#"{{"msg":"source-stopped","source_domid":{}}}"#, inp.u32());
            // PANICS: a well-formed notice.
            decode_request(line.as_bytes()).expect("a notice")
        }
        4 => Request::Done {},
        5 => Request::Abort { reason: text(inp) },
        _ => Request::Query { guest: text(inp) },
    }
}

fn reply(inp: &mut Input<'_>) -> Reply {
    match inp.u8() % 8 {
        0 => Reply::Hello { version: inp.u32() },
        1 => Reply::Ready {
            ip: text(inp),
            port: inp.u16(),
            shell_domid: inp.u32(),
        },
        2 => Reply::Status {
            state: (inp.u8() & 1 != 0).then(|| text(inp)),
            appliance: [
                Liveness::Alive,
                Liveness::Stopped,
                Liveness::Crashed,
                Liveness::Vanished,
            ][usize::from(inp.u8() & 3)],
            clock_unix_ms: (inp.u8() & 1 != 0).then(|| inp.u64()),
        },
        3 => Reply::Running {
            domid: inp.u32(),
            unpaused_unix_ms: (inp.u8() & 1 != 0).then(|| inp.u64()),
        },
        4 => Reply::Absent { reason: text(inp) },
        5 => Reply::Unsettled { reason: text(inp) },
        6 => Reply::Bye {},
        _ => Reply::Refused { reason: text(inp) },
    }
}

/// A built message reads back as itself exactly when its check passes.
fn round_trip<M: Message>(m: &M) -> Option<ChannelError> {
    let line = m.encode();
    let back = M::decode(&line[..line.len() - 1]);
    match m.check() {
        Ok(()) => {
            accepted(m);
            None
        }
        Err(e) => {
            assert!(back.is_err(), "{} accepted against its own check", m.kind());
            Some(ChannelError::Protocol(e))
        }
    }
}

fn messages(inp: &mut Input<'_>) -> Outcome {
    let (kind, end) = if inp.u8() & 1 == 0 {
        let m = request(inp);
        (m.kind(), round_trip(&m))
    } else {
        let m = reply(inp);
        (m.kind(), round_trip(&m))
    };
    Outcome {
        accepted: if end.is_none() {
            vec![kind.to_string()]
        } else {
            Vec::new()
        },
        end,
    }
}

fn cap(inp: &mut Input<'_>) -> Outcome {
    let b = inp.u8();
    // The line's length with its newline: MAX_LINE - 4 to MAX_LINE + 4.
    let len = MAX_LINE - 4 + usize::from(b >> 1) % 9;
    let content = inp.rest();
    let mut bytes = vec![b' '; (len - 1).saturating_sub(content.len())];
    bytes.extend_from_slice(content);
    bytes.push(b'\n');
    let first = bytes.len() - content.len() - 1;
    let replies = b & 1 != 0;
    let out = conversation(&bytes, replies);
    // The first line: refused when over the cap, else read as if it had
    // no spaces in front.
    let first_line = bytes
        .iter()
        .position(|&c| c == b'\n')
        .unwrap_or(bytes.len());
    let line = &bytes[..first_line];
    let unpadded = &bytes[first.min(first_line)..first_line];
    let want = if first_line >= MAX_LINE {
        Err(ProtocolError::TooLong)
    } else if replies {
        same_meaning(decode_reply(line), decode_reply(unpadded))
    } else {
        same_meaning(decode_request(line), decode_request(unpadded))
    };
    match want {
        Ok(kind) => assert_eq!(out.accepted.first().map(String::as_str), Some(kind)),
        Err(e) => {
            assert!(out.accepted.is_empty());
            assert_eq!(out.end, Some(ChannelError::Protocol(e)));
        }
    }
    out
}

/// Spaces in front of a line change nothing: both read, as the same
/// message, or neither does.
fn same_meaning<M: Message>(
    padded: Result<M, ProtocolError>,
    unpadded: Result<M, ProtocolError>,
) -> Result<&'static str, ProtocolError> {
    match (padded, unpadded) {
        (Ok(a), Ok(b)) => {
            assert_eq!(a, b, "spaces changed a message");
            Ok(a.kind())
        }
        (Err(e), Err(_)) => Err(e),
        (a, b) => panic!("spaces changed whether a line reads: {a:?} / {b:?}"),
    }
}
