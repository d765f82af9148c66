//! Save and restore over depmig's wire, for `depmig save` and `depmig
//! restore`: dom0 plays the destination to a source appliance and keeps
//! the stream ([`receive`]), or plays the source to a destination
//! appliance and sends a saved stream ([`send`]); [`check`] reads a saved
//! stream with the strict decoder before anything is created for it.
//!
//! Both speak the handshake of [`crate::source`] and [`crate::dest`] in
//! clear with nothing negotiated: no page codec, no deltas, no sealing, no
//! page verification. The bytes between the hellos and the trailer are
//! then exactly Xen's libxc stream v2 (image header through END), which is
//! what a save file holds; the trailer's tag authenticates them on the
//! wire, and the reply's tag the ACK.
//!
//! Saving: every stream byte is handed to a [`SaveSink`] as it is taken
//! (the last [`TRAILER_LEN`] bytes held back, since they may be the
//! trailer); once the tag matched, [`SaveSink::commit`] (the file renamed
//! into place) runs before the ACK, so the source commits, and dom0
//! destroys the guest, only once the file is complete. Any failure before
//! that is answered with a NAK, and the source resumes the guest.

use alloc::vec;
use alloc::vec::Vec;

use depmig_stream::handshake::{HELLO_LEN, MIN_KEY_LEN, TRAILER_LEN};
use depmig_stream::{
    key_confirmation, sealed, verify_key_confirmation, Authenticated, ByteSink, Caps, DecodeError,
    Decoder, Event, HandshakeError, Hello, Limits, Receiver, Role, RxError, RxEvent, SinkFull,
    TranscriptMac, MAX_BATCH,
};

use crate::ports::{Transport, TransportError};
use crate::reply::{self, nak, NakCode, Reply, ACK, SIGNED_REPLY_LEN};

/// Where a save puts the stream (a file in dom0).
pub trait SaveSink {
    /// Appends stream bytes, in order.
    fn write(&mut self, bytes: &[u8]) -> Result<(), SinkFull>;
    /// The stream is complete and authentic: make it the saved file
    /// (flush, sync, rename). Called once, before the ACK.
    fn commit(&mut self) -> Result<(), SinkFull>;
}

/// Where a restore reads the saved stream from.
pub trait SavedSource {
    /// Reads at least one byte into `buf`; `Ok(0)` at the end.
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, SinkFull>;
}

/// How dom0 plays its end.
#[derive(Clone, Copy, Debug)]
pub struct SavedConfig<'a> {
    /// The key dom0 gave the appliance (at least 16 bytes).
    pub key: &'a [u8],
    /// A fresh random nonce for dom0's hello.
    pub nonce: [u8; 16],
    /// Largest record body other than PAGE_DATA (saving: the decoder's cap).
    pub max_record_body: u32,
    /// Largest pfn taken (saving: the guest's p2m size minus one).
    pub max_pfn: u64,
}

impl<'a> SavedConfig<'a> {
    /// 1 MiB records (as the destination appliance), any pfn.
    pub fn new(key: &'a [u8], nonce: [u8; 16]) -> Self {
        SavedConfig {
            key,
            nonce,
            max_record_body: 1 << 20,
            max_pfn: Limits::default().max_pfn,
        }
    }

    fn limits(&self) -> Limits {
        Limits {
            max_record_body: self.max_record_body,
            max_batch: MAX_BATCH,
            max_pfn: self.max_pfn,
        }
    }
}

/// Why a save, a restore or a check failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SavedError {
    /// The key is shorter than 16 bytes.
    ShortKey,
    /// The connection failed.
    Transport(TransportError),
    /// The peer closed the connection before the stream was complete.
    PeerClosed,
    /// The source's hello, stream or trailer was refused.
    Stream(RxError),
    /// The source asked for page verification: a save has no copy to
    /// compare with.
    VerifyOffered,
    /// Bytes followed the trailer.
    TrailingBytes,
    /// The save file could not be written or read.
    File,
    /// The destination's hello or confirmation was refused.
    Handshake(HandshakeError),
    /// The saved stream was refused by the strict decoder.
    Decode(DecodeError),
    /// The saved stream ends before its END record.
    Truncated,
    /// The saved stream is checkpointed (COLO, Remus): not one saved guest.
    Checkpointed,
    /// The destination refused the stream (its NAK's code).
    Refused(NakCode),
    /// The destination's reply is neither ACK nor NAK.
    BadReply,
}

impl SavedError {
    /// The NAK a save answers with.
    fn nak_code(&self) -> NakCode {
        match self {
            SavedError::Stream(RxError::Handshake(
                HandshakeError::BadTag
                | HandshakeError::LengthMismatch
                | HandshakeError::BadTrailerMagic
                | HandshakeError::Truncated,
            ))
            | SavedError::Stream(RxError::Record(_)) => NakCode::Auth,
            SavedError::Stream(RxError::Handshake(_)) | SavedError::VerifyOffered => NakCode::Hello,
            SavedError::Stream(RxError::Decode(DecodeError::PfnOutOfRange(_))) => NakCode::Pfn,
            SavedError::Stream(RxError::Decode(_)) | SavedError::TrailingBytes => NakCode::Decode,
            _ => NakCode::Internal,
        }
    }
}

/// What a save or a restore moved.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SavedStats {
    /// libxc stream bytes (image header through END).
    pub stream_bytes: u64,
    /// PAGE_DATA records.
    pub page_records: u64,
    /// Pages with data in them (a page sent in several rounds counts each
    /// time).
    pub pages: u64,
    /// The highest pfn with data.
    pub max_pfn: Option<u64>,
}

impl SavedStats {
    fn observe(&mut self, ev: &Event<'_>) {
        match ev {
            Event::PageData { .. } => self.page_records += 1,
            Event::Page {
                entry,
                data: Some(_),
            } => {
                self.pages += 1;
                self.max_pfn = Some(self.max_pfn.map_or(entry.pfn, |m| m.max(entry.pfn)));
            }
            _ => {}
        }
    }
}

/// Takes a stream from a source appliance on `t` into `sink`, as a
/// destination that negotiates nothing; ACKs once the trailer's tag
/// matched and `sink` committed, NAKs otherwise (once its hello went).
pub fn receive<T: Transport, S: SaveSink>(
    t: &mut T,
    sink: &mut S,
    cfg: &SavedConfig<'_>,
) -> Result<SavedStats, SavedError> {
    let mut hellos = None;
    let r = take(t, sink, cfg, &mut hellos);
    let signed = |code| {
        let (s, d): (Hello, Hello) = hellos?;
        reply::sign(code, cfg.key, &s, &d).ok()
    };
    match r {
        Ok(stats) => {
            let ack = signed(ACK).ok_or(SavedError::Stream(RxError::Handshake(
                HandshakeError::Truncated,
            )))?;
            t.send(&ack)
                .and_then(|()| t.flush())
                .map_err(SavedError::Transport)?;
            Ok(stats)
        }
        Err(e) => {
            if let Some(b) = signed(nak(e.nak_code())) {
                // Best effort: the source may be gone already.
                let _ = t.send(&b).and_then(|()| t.flush());
            }
            Err(e)
        }
    }
}

fn take<T: Transport, S: SaveSink>(
    t: &mut T,
    sink: &mut S,
    cfg: &SavedConfig<'_>,
    hellos: &mut Option<(Hello, Hello)>,
) -> Result<SavedStats, SavedError> {
    if cfg.key.len() < MIN_KEY_LEN {
        return Err(SavedError::ShortKey);
    }
    let mine = Hello {
        role: Role::Destination,
        nonce: cfg.nonce,
        verify: false,
        caps: Caps::NONE,
    };
    let mut rx = Receiver::new(cfg.key, mine, cfg.limits())
        .map_err(|e| SavedError::Stream(RxError::Handshake(e)))?;
    let mut stats = SavedStats::default();
    // Bytes the receiver took, from the first after the source's hello;
    // the last TRAILER_LEN of them wait in `held` until more come.
    let mut taken: u64 = 0;
    let mut held: Vec<u8> = Vec::with_capacity(2 * TRAILER_LEN);
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let n = t.recv(&mut buf).map_err(SavedError::Transport)?;
        if n == 0 {
            return Err(SavedError::PeerClosed);
        }
        let mut input = buf.get(..n).unwrap_or(&[]);
        let mut authentic = false;
        loop {
            let before: &[u8] = input;
            let ev = rx.push(&mut input);
            let used = before.get(..before.len() - input.len()).unwrap_or(&[]);
            // The hello's bytes are not the stream's.
            let skip = HELLO_LEN.saturating_sub(usize::try_from(taken).unwrap_or(HELLO_LEN));
            taken += used.len() as u64;
            let stream = used.get(skip.min(used.len())..).unwrap_or(&[]);
            hold(sink, &mut held, stream)?;
            match ev.map_err(SavedError::Stream)? {
                None => break,
                Some(RxEvent::PeerHello(peer)) => {
                    let confirm = key_confirmation(cfg.key, &peer, &mine)
                        .map_err(|e| SavedError::Stream(RxError::Handshake(e)))?;
                    t.send(&mine.to_bytes())
                        .and_then(|()| t.send(&confirm))
                        .and_then(|()| t.flush())
                        .map_err(SavedError::Transport)?;
                    *hellos = Some((peer, mine));
                    if peer.verify {
                        return Err(SavedError::VerifyOffered);
                    }
                }
                Some(RxEvent::Stream(ev)) => stats.observe(&ev),
                Some(RxEvent::Authenticated) => authentic = true,
            }
        }
        if authentic {
            if !input.is_empty() {
                return Err(SavedError::TrailingBytes);
            }
            // `held` is the trailer; everything before it went to the sink.
            stats.stream_bytes = rx.decoder().consumed();
            sink.commit().map_err(|_| SavedError::File)?;
            return Ok(stats);
        }
    }
}

/// Appends `bytes` to what is held back and passes on all but the last
/// [`TRAILER_LEN`].
fn hold<S: SaveSink>(sink: &mut S, held: &mut Vec<u8>, bytes: &[u8]) -> Result<(), SavedError> {
    if bytes.len() >= TRAILER_LEN {
        sink.write(held).map_err(|_| SavedError::File)?;
        held.clear();
        let (now, later) = bytes.split_at(bytes.len() - TRAILER_LEN);
        sink.write(now).map_err(|_| SavedError::File)?;
        held.extend_from_slice(later);
    } else {
        held.extend_from_slice(bytes);
        if held.len() > TRAILER_LEN {
            let over = held.len() - TRAILER_LEN;
            sink.write(held.get(..over).unwrap_or(&[]))
                .map_err(|_| SavedError::File)?;
            held.drain(..over);
        }
    }
    Ok(())
}

/// Reads a saved libxc stream from `src` with the strict decoder (limits
/// from `cfg`) up to its END; returns its figures, and how many bytes
/// followed END in the last read (`tail`, what the file holds after the
/// stream; at most the size of one read).
pub fn check<R: SavedSource>(
    src: &mut R,
    cfg: &SavedConfig<'_>,
    tail: &mut Vec<u8>,
) -> Result<SavedStats, SavedError> {
    let mut dec = Decoder::new(cfg.limits());
    let mut stats = SavedStats::default();
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let n = src.read(&mut buf).map_err(|_| SavedError::File)?;
        if n == 0 {
            return Err(SavedError::Truncated);
        }
        let mut input = buf.get(..n).unwrap_or(&[]);
        while let Some(ev) = dec.next(&mut input).map_err(SavedError::Decode)? {
            stats.observe(&ev);
        }
        if dec.is_done() {
            stats.stream_bytes = dec.consumed();
            tail.clear();
            tail.extend_from_slice(input);
            // The rest of the file, up to a record header's worth more:
            // enough to tell libxl's END from anything longer.
            let mut more = [0u8; 64];
            loop {
                let m = src.read(&mut more).map_err(|_| SavedError::File)?;
                if m == 0 || tail.len() > 64 {
                    break;
                }
                tail.extend_from_slice(more.get(..m).unwrap_or(&[]));
            }
            return Ok(stats);
        }
        if dec.is_checkpointed() {
            return Err(SavedError::Checkpointed);
        }
    }
}

/// A sink writing to the transport.
struct Wire<'t, T> {
    t: &'t mut T,
    err: Option<TransportError>,
}

impl<T: Transport> ByteSink for Wire<'_, T> {
    fn put(&mut self, bytes: &[u8]) -> Result<(), SinkFull> {
        self.t.send(bytes).map_err(|e| {
            self.err = Some(e);
            SinkFull
        })
    }
}

/// Sends `len` bytes of a saved libxc stream from `src` (checked with
/// [`check`] first) to a destination appliance on `t`, as a source that
/// negotiates nothing, and waits for its tagged reply: `Ok` on its ACK.
pub fn send<T: Transport, R: SavedSource>(
    t: &mut T,
    src: &mut R,
    len: u64,
    cfg: &SavedConfig<'_>,
) -> Result<SavedStats, SavedError> {
    if cfg.key.len() < MIN_KEY_LEN {
        return Err(SavedError::ShortKey);
    }
    let mine = Hello {
        role: Role::Source,
        nonce: cfg.nonce,
        verify: false,
        caps: Caps::NONE,
    };
    t.send(&mine.to_bytes()).map_err(SavedError::Transport)?;
    t.flush().map_err(SavedError::Transport)?;
    let mut b = [0u8; HELLO_LEN];
    t.recv_exact(&mut b).map_err(SavedError::Transport)?;
    let peer = Hello::parse(&b).map_err(SavedError::Handshake)?;
    if peer.role != Role::Destination {
        return Err(SavedError::Handshake(HandshakeError::UnexpectedRole));
    }
    let mut c = [0u8; 32];
    t.recv_exact(&mut c).map_err(SavedError::Transport)?;
    verify_key_confirmation(cfg.key, &mine, &peer, &c).map_err(SavedError::Handshake)?;
    if peer.verify {
        return Err(SavedError::Handshake(HandshakeError::VerifyMismatch));
    }
    // A destination armed to encrypt refuses a clear stream: so do we.
    if sealed(&mine, &peer, false).map_err(SavedError::Handshake)? {
        return Err(SavedError::Handshake(HandshakeError::EncryptionRefused));
    }
    let mac = TranscriptMac::new(cfg.key, &mine, &peer).map_err(SavedError::Handshake)?;
    let mut out = Authenticated::new(Wire { t, err: None }, mac);
    let mut buf = vec![0u8; 64 << 10];
    let mut left = len;
    while left > 0 {
        let want = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
        let n = src
            .read(buf.get_mut(..want).unwrap_or(&mut []))
            .map_err(|_| SavedError::File)?;
        if n == 0 {
            return Err(SavedError::Truncated);
        }
        if out.put(buf.get(..n).unwrap_or(&[])).is_err() {
            let e = out.inner_mut().err.unwrap_or(TransportError::Failed(-1));
            return Err(SavedError::Transport(e));
        }
        left -= n as u64;
    }
    let (wire, trailer) = out.finish();
    let t = wire.t;
    t.send(&trailer)
        .and_then(|()| t.flush())
        .map_err(SavedError::Transport)?;
    let mut r = [0u8; SIGNED_REPLY_LEN];
    t.recv_exact(&mut r).map_err(SavedError::Transport)?;
    match reply::open(&r, cfg.key, &mine, &peer).map_err(SavedError::Handshake)? {
        Reply::Ack => Ok(SavedStats {
            stream_bytes: len,
            ..SavedStats::default()
        }),
        Reply::Nak(code) => Err(SavedError::Refused(code)),
        Reply::Garbage(_) => Err(SavedError::BadReply),
    }
}
