//! One end of the control conversation: lines out to a writer, lines in
//! from a reader on a thread of their own, so that every wait for the peer
//! is bounded (a pipe read cannot time out; a channel receive can).

use std::fmt;
use std::io::{BufRead, BufReader, Read, Write};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::Duration;

use serde::Serialize;

use super::protocol::{self, ProtocolError, Reply, Request, MAX_LINE};

/// Why the conversation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChannelError {
    /// the peer closed the connection
    Closed,
    /// the peer said nothing within `<secs>` s
    Silent {
        /// How long it was given.
        secs: u64,
    },
    /// the connection failed: `<reason>`
    Io(String),
    /// the peer sent a line this end refuses (the protocol's message)
    Protocol(ProtocolError),
}

impl fmt::Display for ChannelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChannelError::Closed => f.write_str("the peer closed the connection"),
            ChannelError::Silent { secs } => write!(f, "the peer said nothing within {secs} s"),
            ChannelError::Io(e) => write!(f, "the connection failed: {e}"),
            ChannelError::Protocol(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for ChannelError {}

impl From<ProtocolError> for ChannelError {
    fn from(e: ProtocolError) -> ChannelError {
        ChannelError::Protocol(e)
    }
}

/// What the reader thread hands over: a line without its newline, or the
/// end of the input.
type Incoming = Result<Vec<u8>, ChannelError>;

/// A line-oriented connection to the peer.
pub struct Channel {
    lines: Receiver<Incoming>,
    out: Box<dyn Write + Send>,
    /// The conversation ended (a refused line, a closed peer): nothing
    /// more is read.
    ended: Option<ChannelError>,
}

/// Reads lines of at most [`MAX_LINE`] bytes until the end, an error, or
/// an oversized line (which ends the input: what follows it cannot be
/// told apart from the rest of it).
fn read_lines(input: impl Read, tx: mpsc::Sender<Incoming>) {
    let mut r = BufReader::new(input);
    loop {
        let mut line = Vec::new();
        // One byte more than a line may have, to tell "too long" apart.
        let cap = u64::try_from(MAX_LINE).unwrap_or(u64::MAX);
        let read = (&mut r).take(cap).read_until(b'\n', &mut line);
        let item = match read {
            Ok(0) => Err(ChannelError::Closed),
            Ok(_) if line.last() == Some(&b'\n') => {
                line.pop();
                Ok(line)
            }
            // No newline: either the input ended mid-line or the line is
            // too long; both end the conversation.
            Ok(n) if n >= MAX_LINE => Err(ChannelError::Protocol(ProtocolError::TooLong)),
            Ok(_) => Err(ChannelError::Closed),
            Err(e) => Err(ChannelError::Io(e.to_string())),
        };
        let last = item.is_err();
        if tx.send(item).is_err() || last {
            return;
        }
    }
}

impl Channel {
    /// A channel reading `input` (on a thread it starts) and writing `output`.
    pub fn new(input: impl Read + Send + 'static, output: impl Write + Send + 'static) -> Channel {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || read_lines(input, tx));
        Channel {
            lines: rx,
            out: Box::new(output),
            ended: None,
        }
    }

    /// Sends one message.
    pub fn send<M: Serialize>(&mut self, msg: &M) -> Result<(), ChannelError> {
        let line = protocol::encode(msg);
        self.out
            .write_all(&line)
            .and_then(|()| self.out.flush())
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::BrokenPipe => ChannelError::Closed,
                _ => ChannelError::Io(e.to_string()),
            })
    }

    /// The next line, waiting at most `wait`: `Ok(None)` when none came.
    /// Once an error was returned, every later call returns it again.
    fn line(&mut self, wait: Duration) -> Result<Option<Vec<u8>>, ChannelError> {
        if let Some(e) = &self.ended {
            return Err(e.clone());
        }
        let got = match self.lines.recv_timeout(wait) {
            Ok(item) => item.map(Some),
            Err(RecvTimeoutError::Timeout) => Ok(None),
            Err(RecvTimeoutError::Disconnected) => Err(ChannelError::Closed),
        };
        if let Err(e) = &got {
            self.ended = Some(e.clone());
        }
        got
    }

    /// Marks the conversation ended by `e` and returns it.
    fn end(&mut self, e: ChannelError) -> ChannelError {
        self.ended = Some(e.clone());
        e
    }

    /// The next request, waiting at most `wait` (`Ok(None)`: none yet).
    pub fn request(&mut self, wait: Duration) -> Result<Option<Request>, ChannelError> {
        match self.line(wait)? {
            None => Ok(None),
            Some(l) => protocol::decode_request(&l)
                .map(Some)
                .map_err(|e| self.end(e.into())),
        }
    }

    /// The reply to the request just sent, waiting at most `wait`.
    pub fn reply(&mut self, wait: Duration) -> Result<Reply, ChannelError> {
        match self.line(wait)? {
            None => Err(self.end(ChannelError::Silent {
                secs: wait.as_secs(),
            })),
            Some(l) => protocol::decode_reply(&l).map_err(|e| self.end(e.into())),
        }
    }

    /// Sends `req` and waits at most `wait` for its reply.
    pub fn ask(&mut self, req: &Request, wait: Duration) -> Result<Reply, ChannelError> {
        if let Some(e) = &self.ended {
            return Err(e.clone());
        }
        self.send(req).map_err(|e| self.end(e))?;
        self.reply(wait)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn reading(input: &[u8]) -> Channel {
        Channel::new(Cursor::new(input.to_vec()), std::io::sink())
    }

    const WAIT: Duration = Duration::from_secs(5);

    #[test]
    fn lines_arrive_in_order_then_the_end() {
        let mut c = reading(b"{\"msg\":\"status\"}\n{\"msg\":\"done\"}\n");
        assert_eq!(c.request(WAIT), Ok(Some(Request::Status {})));
        assert_eq!(c.request(WAIT), Ok(Some(Request::Done {})));
        assert_eq!(c.request(WAIT), Err(ChannelError::Closed));
        assert_eq!(c.request(WAIT), Err(ChannelError::Closed));
    }

    #[test]
    fn a_line_cut_short_is_the_end_not_a_message() {
        let mut c = reading(b"{\"msg\":\"status\"}");
        assert_eq!(c.request(WAIT), Err(ChannelError::Closed));
    }

    #[test]
    fn an_oversized_line_ends_the_conversation() {
        let mut big = vec![b'a'; MAX_LINE + 10];
        big.extend_from_slice(b"\n{\"msg\":\"status\"}\n");
        let mut c = reading(&big);
        assert_eq!(
            c.request(WAIT),
            Err(ChannelError::Protocol(ProtocolError::TooLong))
        );
        // Nothing after it is read.
        assert_eq!(
            c.request(WAIT),
            Err(ChannelError::Protocol(ProtocolError::TooLong))
        );
    }

    #[test]
    fn a_refused_line_ends_the_conversation() {
        let mut c = reading(b"{\"msg\":\"nope\"}\n{\"msg\":\"status\"}\n");
        assert!(matches!(
            c.request(WAIT),
            Err(ChannelError::Protocol(ProtocolError::Malformed(_)))
        ));
        assert!(c.request(WAIT).is_err());
    }

    #[test]
    fn a_silent_peer_is_an_error_for_a_reply_and_nothing_for_a_request() {
        let (r, _w) = std::io::pipe().unwrap();
        let mut c = Channel::new(r, std::io::sink());
        let short = Duration::from_millis(10);
        assert_eq!(c.request(short), Ok(None));
        assert_eq!(c.reply(short), Err(ChannelError::Silent { secs: 0 }));
    }
}
