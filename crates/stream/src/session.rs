//! Both ends of a depmig connection put together: the source writes through
//! an [`Authenticated`] sink; the destination pushes received bytes into a
//! [`Receiver`], which reads the source's hello, decodes the stream, and
//! checks it: in clear, the trailer's tag over exactly the bytes it
//! decoded; sealed, each record's tag before any of its bytes reach the
//! decoder, and that END ends the final record.
//!
//! Source:
//! 1. send `Hello { role: Source, nonce, caps }`, read the destination's
//!    hello and confirmation;
//! 2. in clear, `TranscriptMac::new(key, &mine, &peer)` and
//!    [`Authenticated::new`]; sealed (both hellos hold
//!    [`Caps::ENCRYPTED`]), [`Sealer::new`] for source-to-destination and
//!    [`Authenticated::sealed`]; encode the stream through it, calling
//!    [`Authenticated::flush_record`] where bytes must leave now (end of a
//!    round, before the suspension);
//! 3. send what [`Authenticated::finish`] returns last: the trailer, or
//!    the final record.
//!
//! ```text
//! clear : hello | libxc stream ... END | trailer(32)
//! sealed: hello | record 0 | record 1 | ... | record n (FINAL)
//!         record = "DS" flags 0 len(u32) | ChaCha20(len bytes) | tag(16)
//! ```
//!
//! Destination: push every segment into [`Receiver::push`] until it returns
//! `None`; answer [`RxEvent::PeerHello`] with its own hello's
//! [`Hello::answer`] to it (what the receiver keyed the transcript or the
//! records with, and whose capabilities set the decoder's codec); apply
//! [`RxEvent::Stream`] events to the paused shell; only after
//! [`RxEvent::Authenticated`] may the copy run. A receiver whose own hello
//! holds [`Caps::ENCRYPTED`] requires it: to a source that does not offer
//! it, it still hands out the peer's hello (so that the caller answers and
//! can refuse with a reason) and then refuses everything
//! ([`HandshakeError::EncryptionRefused`]).

use alloc::boxed::Box;
use alloc::vec::Vec;

use crate::decode::{DecodeError, Decoder, Event, Limits};
use crate::encode::{ByteSink, SinkFull};
use crate::handshake::{
    negotiated, negotiated_delta, sealed, Caps, Direction, HandshakeError, Hello, Role,
    TranscriptMac, HELLO_LEN, MIN_KEY_LEN, TRAILER_LEN,
};
use crate::packed::Codec;
use crate::record::{Opener, RecordError, Sealer, MAX_RECORD_PLAINTEXT};

/// How the source's sink protects the stream.
#[derive(Debug)]
enum Protect {
    /// In clear, with the transcript MAC for the trailer (boxed: Poly1305's
    /// state is ten times a sealer's).
    Clear(Box<TranscriptMac>),
    /// In sealed records; `pending` is the plaintext of the next one.
    Sealed { sealer: Sealer, pending: Vec<u8> },
}

/// A sink that protects everything written through it: in clear it adds
/// the bytes to the transcript ([`Authenticated::new`]); sealed it cuts
/// them into records ([`Authenticated::sealed`]).
#[derive(Debug)]
pub struct Authenticated<S> {
    inner: S,
    how: Protect,
    written: u64,
}

impl<S: ByteSink> Authenticated<S> {
    /// Wraps `inner`; `mac` was started from both hellos. The stream goes
    /// in clear and ends with the trailer.
    pub fn new(inner: S, mac: TranscriptMac) -> Self {
        Authenticated {
            inner,
            how: Protect::Clear(Box::new(mac)),
            written: 0,
        }
    }

    /// Wraps `inner`; `sealer` is the source-to-destination one of both
    /// hellos. The stream goes in sealed records and ends with the final
    /// record.
    pub fn sealed(inner: S, sealer: Sealer) -> Self {
        Authenticated {
            inner,
            how: Protect::Sealed {
                sealer,
                pending: Vec::with_capacity(MAX_RECORD_PLAINTEXT),
            },
            written: 0,
        }
    }

    /// Whether the stream goes in sealed records.
    pub fn is_sealed(&self) -> bool {
        matches!(self.how, Protect::Sealed { .. })
    }

    /// Records sealed so far (0 in clear).
    pub fn records(&self) -> u64 {
        match &self.how {
            Protect::Clear(_) => 0,
            Protect::Sealed { sealer, .. } => sealer.records(),
        }
    }

    /// Stream bytes written through this sink (before sealing).
    pub fn written(&self) -> u64 {
        self.written
    }

    /// The wrapped sink.
    pub fn inner_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Sealed: sends what waits for the next record now, as a record of
    /// its own (before the guest is suspended, at the end of a round), so
    /// that nothing written stays behind. In clear: nothing to do.
    pub fn flush_record(&mut self) -> Result<(), SinkFull> {
        match &mut self.how {
            Protect::Clear(_) => Ok(()),
            Protect::Sealed { sealer, pending } => {
                if pending.is_empty() {
                    return Ok(());
                }
                seal_to(&mut self.inner, sealer, pending, false)
            }
        }
    }

    /// Ends the stream: returns the sink and what to send last, the
    /// trailer in clear or the final record sealed.
    pub fn finish(self) -> (S, Vec<u8>) {
        match self.how {
            Protect::Clear(mac) => (self.inner, mac.trailer().to_vec()),
            Protect::Sealed {
                mut sealer,
                mut pending,
            } => {
                let mut tail = Vec::new();
                // `pending` never exceeds a record and the sealer is open
                // until here: this cannot fail; if it did, the tail would
                // be empty and the destination would refuse the stream.
                if let Ok((h, t)) = sealer.seal_in_place(&mut pending, true) {
                    tail.reserve(h.len() + pending.len() + t.len());
                    tail.extend_from_slice(&h);
                    tail.extend_from_slice(&pending);
                    tail.extend_from_slice(&t);
                }
                (self.inner, tail)
            }
        }
    }
}

/// Seals `pending` as the next record into `inner`, and empties it.
fn seal_to<S: ByteSink>(
    inner: &mut S,
    sealer: &mut Sealer,
    pending: &mut Vec<u8>,
    last: bool,
) -> Result<(), SinkFull> {
    let (h, t) = sealer.seal_in_place(pending, last).map_err(|_| SinkFull)?;
    inner.put(&h)?;
    inner.put(pending)?;
    inner.put(&t)?;
    pending.clear();
    Ok(())
}

impl<S: ByteSink> ByteSink for Authenticated<S> {
    fn put(&mut self, bytes: &[u8]) -> Result<(), SinkFull> {
        self.written += bytes.len() as u64;
        match &mut self.how {
            Protect::Clear(mac) => {
                self.inner.put(bytes)?;
                mac.update(bytes);
                Ok(())
            }
            Protect::Sealed { sealer, pending } => {
                // A full record is sealed only when more bytes come, so
                // that the final record is never empty when the stream
                // ends on a record's edge.
                let mut rest = bytes;
                while !rest.is_empty() {
                    if pending.len() >= MAX_RECORD_PLAINTEXT {
                        seal_to(&mut self.inner, sealer, pending, false)?;
                    }
                    let room = MAX_RECORD_PLAINTEXT.saturating_sub(pending.len());
                    let (now, later) = rest.split_at(room.min(rest.len()));
                    pending.extend_from_slice(now);
                    rest = later;
                }
                Ok(())
            }
        }
    }
}

/// What the receiver produced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RxEvent<'a> {
    /// The source's hello arrived: send our own hello now.
    PeerHello(Hello),
    /// A stream event, to apply to the paused shell domain.
    Stream(Event<'a>),
    /// The trailer's tag matched everything received: the stream is
    /// authentic and complete.
    Authenticated,
}

/// Why the receiver gave up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RxError {
    /// Handshake or trailer refused.
    Handshake(HandshakeError),
    /// The stream was refused by the decoder.
    Decode(DecodeError),
    /// A sealed record was refused, or the records did not end with the
    /// stream.
    Record(RecordError),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RxState {
    Hello,
    Stream,
    Trailer,
    Done,
}

/// The destination's side; see the module documentation.
#[derive(Debug)]
pub struct Receiver {
    key: Vec<u8>,
    mine: Hello,
    state: RxState,
    small: [u8; TRAILER_LEN],
    have: usize,
    mac: Option<TranscriptMac>,
    /// Sealed stream: the source-to-destination opener.
    opener: Option<Opener>,
    /// Refuse a source that does not offer encryption.
    require_sealed: bool,
    dec: Decoder,
    failed: Option<RxError>,
}

impl Receiver {
    /// A receiver holding `key` that will answer with `mine` (a
    /// destination hello with a fresh nonce and the capabilities it
    /// supports), narrowed to what the source offers ([`Hello::answer`]).
    pub fn new(key: &[u8], mine: Hello, limits: Limits) -> Result<Self, HandshakeError> {
        if key.len() < MIN_KEY_LEN {
            return Err(HandshakeError::ShortKey);
        }
        if mine.role != Role::Destination {
            return Err(HandshakeError::UnexpectedRole);
        }
        Ok(Receiver {
            key: key.to_vec(),
            mine,
            state: RxState::Hello,
            small: [0; TRAILER_LEN],
            have: 0,
            mac: None,
            opener: None,
            require_sealed: mine.caps.contains(Caps::ENCRYPTED),
            dec: Decoder::new(limits),
            failed: None,
        })
    }

    /// Whether the stream comes in sealed records (known once the
    /// source's hello came).
    pub fn is_sealed(&self) -> bool {
        self.opener.is_some()
    }

    /// Sealed records opened so far.
    pub fn records(&self) -> u64 {
        self.opener.as_ref().map_or(0, Opener::records)
    }

    /// Whether the trailer was verified.
    pub fn is_authenticated(&self) -> bool {
        self.state == RxState::Done
    }

    /// The stream decoder (for its progress counters).
    pub fn decoder(&self) -> &Decoder {
        &self.dec
    }

    /// The page codec agreed with the source (raw until its hello came).
    pub fn codec(&self) -> Codec {
        self.dec.codec()
    }

    fn fill(&mut self, input: &mut &[u8], need: usize) -> bool {
        while self.have < need {
            let Some((&b, rest)) = input.split_first() else {
                return false;
            };
            if let Some(slot) = self.small.get_mut(self.have) {
                *slot = b;
            }
            self.have += 1;
            *input = rest;
        }
        true
    }

    /// Consumes bytes from `input` and returns the next event, or `None`
    /// when more input is needed (or everything is done; bytes after the
    /// trailer are left in `input`). After an error every call returns it
    /// again.
    pub fn push<'s>(&'s mut self, input: &mut &[u8]) -> Result<Option<RxEvent<'s>>, RxError> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        if self.state == RxState::Hello {
            let r = self.hello(input);
            if let Err(e) = r {
                self.failed = Some(e);
            }
            return r;
        }
        if self.opener.is_some() {
            return self.sealed_stream(input);
        }
        if self.state == RxState::Stream && self.dec.is_done() {
            self.state = RxState::Trailer;
        }
        if self.state != RxState::Stream {
            return trailer(
                &mut self.small,
                &mut self.have,
                &mut self.mac,
                &mut self.state,
                &mut self.failed,
                input,
            );
        }
        let before: &[u8] = input;
        // The decoder poisons itself: its errors repeat without `failed`.
        let r = self.dec.next(input);
        let used = before.len() - input.len();
        if let Some(mac) = self.mac.as_mut() {
            mac.update(before.get(..used).unwrap_or(&[]));
        }
        match r {
            Ok(Some(ev)) => Ok(Some(RxEvent::Stream(ev))),
            Ok(None) if input.is_empty() => Ok(None),
            // Input left over: the decoder stopped at END (or at a
            // CHECKPOINT, which depmig never sends: the trailer check
            // then fails).
            Ok(None) => {
                self.state = RxState::Trailer;
                trailer(
                    &mut self.small,
                    &mut self.have,
                    &mut self.mac,
                    &mut self.state,
                    &mut self.failed,
                    input,
                )
            }
            Err(e) => Err(RxError::Decode(e)),
        }
    }

    /// The sealed stream: records opened one by one, their plaintext
    /// decoded; authentic once END ends the final record exactly.
    fn sealed_stream<'s>(&'s mut self, input: &mut &[u8]) -> Result<Option<RxEvent<'s>>, RxError> {
        if self.state == RxState::Done {
            return Ok(None);
        }
        let Some(opener) = self.opener.as_mut() else {
            return Err(RxError::Handshake(HandshakeError::Truncated));
        };
        // Each turn consumes input or plaintext, or returns.
        loop {
            if self.dec.is_done() {
                if !opener.plaintext().is_empty() {
                    return Err(stick(
                        &mut self.failed,
                        RxError::Record(RecordError::TrailingPlaintext),
                    ));
                }
                if opener.is_closed() {
                    self.state = RxState::Done;
                    return Ok(Some(RxEvent::Authenticated));
                }
                // END ended a record that was not the final one: only an
                // empty final record may follow (anything else is refused
                // above on the next turn).
                match opener.open(input) {
                    Ok(true) => continue,
                    Ok(false) => return Ok(None),
                    Err(e) => return Err(stick(&mut self.failed, RxError::Record(e))),
                }
            }
            if opener.plaintext().is_empty() {
                if opener.is_closed() {
                    return Err(stick(
                        &mut self.failed,
                        RxError::Record(RecordError::FinalBeforeEnd),
                    ));
                }
                match opener.open(input) {
                    Ok(true) => continue,
                    Ok(false) => return Ok(None),
                    Err(e) => return Err(stick(&mut self.failed, RxError::Record(e))),
                }
            }
            let mut text = opener.plaintext();
            let before = text.len();
            let r = self.dec.advance(&mut text);
            let used = before - text.len();
            opener.consume(used);
            match r {
                Ok(Some(p)) => return Ok(Some(RxEvent::Stream(self.dec.materialise(p)))),
                Ok(None) if !opener.plaintext().is_empty() && !self.dec.is_done() => {
                    // Stopped with plaintext left and not at END (a
                    // CHECKPOINT, which depmig never sends).
                    return Err(stick(
                        &mut self.failed,
                        RxError::Record(RecordError::TrailingPlaintext),
                    ));
                }
                Ok(None) => {}
                Err(e) => return Err(stick(&mut self.failed, RxError::Decode(e))),
            }
        }
    }

    fn hello(&mut self, input: &mut &[u8]) -> Result<Option<RxEvent<'static>>, RxError> {
        if !self.fill(input, HELLO_LEN) {
            return Ok(None);
        }
        self.have = 0;
        let peer = Hello::parse(&self.small).map_err(RxError::Handshake)?;
        if peer.role != Role::Source {
            return Err(RxError::Handshake(HandshakeError::UnexpectedRole));
        }
        let answer = self.mine.answer(&peer);
        let codec = negotiated(&peer, &answer).map_err(RxError::Handshake)?;
        let delta = negotiated_delta(&peer, &answer).map_err(RxError::Handshake)?;
        let on = match sealed(&peer, &answer, self.require_sealed) {
            Ok(on) => on,
            // Armed to encrypt and not offered it: the caller still answers
            // (so that the source hears why, in a NAK); nothing of the
            // stream is taken.
            Err(e @ HandshakeError::EncryptionRefused) => {
                self.failed = Some(RxError::Handshake(e));
                self.mine = answer;
                return Ok(Some(RxEvent::PeerHello(peer)));
            }
            Err(e) => return Err(RxError::Handshake(e)),
        };
        if on {
            let opener = Opener::new(&self.key, &peer, &answer, Direction::SourceToDestination)
                .map_err(RxError::Handshake)?;
            self.opener = Some(opener);
        } else {
            let mac = TranscriptMac::new(&self.key, &peer, &answer).map_err(RxError::Handshake)?;
            self.mac = Some(mac);
        }
        self.mine = answer;
        self.dec.set_codec(codec);
        self.dec.set_delta(delta);
        self.state = RxState::Stream;
        Ok(Some(RxEvent::PeerHello(peer)))
    }
}

/// Keeps the receiver's first error and returns it.
fn stick(failed: &mut Option<RxError>, e: RxError) -> RxError {
    if failed.is_none() {
        *failed = Some(e);
    }
    e
}

/// Reads the trailer and checks the tag (fields passed apart so the
/// decoder may stay borrowed by the caller).
fn trailer(
    small: &mut [u8; TRAILER_LEN],
    have: &mut usize,
    mac: &mut Option<TranscriptMac>,
    state: &mut RxState,
    failed: &mut Option<RxError>,
    input: &mut &[u8],
) -> Result<Option<RxEvent<'static>>, RxError> {
    if *state == RxState::Done {
        return Ok(None);
    }
    while *have < TRAILER_LEN {
        let Some((&b, rest)) = input.split_first() else {
            return Ok(None);
        };
        if let Some(slot) = small.get_mut(*have) {
            *slot = b;
        }
        *have += 1;
        *input = rest;
    }
    let r = match mac.take() {
        Some(m) => m
            .verify_trailer(small.as_slice())
            .map_err(RxError::Handshake),
        None => Err(RxError::Handshake(HandshakeError::Truncated)),
    };
    match r {
        Ok(()) => {
            *state = RxState::Done;
            Ok(Some(RxEvent::Authenticated))
        }
        Err(e) => {
            *failed = Some(e);
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::Encoder;
    use crate::wire::*;
    use alloc::vec;

    const KEY: &[u8] = b"sixteen byte key, or more";

    /// The headers and the three pages every test stream begins with
    /// (pfn 1 of 9s, pfn 2 of text, pfn 3 of zeros): [`expected_pages`].
    fn sample_pages(e: &mut Encoder, out: &mut impl ByteSink) {
        let d = DomainHeader {
            domain_type: DomainType::X86Hvm,
            page_shift: 12,
            xen_major: 4,
            xen_minor: 17,
        };
        e.headers(&mut *out, &d).unwrap();
        e.static_data_end(&mut *out).unwrap();
        e.page_data(&mut *out, &[PfnEntry::normal(1)], &[&[9u8; PAGE_SIZE]])
            .unwrap();
        let text: Vec<u8> = (0..PAGE_SIZE).map(|i| b"depmig "[i % 7]).collect();
        e.page_data(
            &mut *out,
            &[PfnEntry::normal(2), PfnEntry::normal(3)],
            &[&text, &[0u8; PAGE_SIZE]],
        )
        .unwrap();
    }

    fn source_bytes(tamper: Option<usize>) -> Vec<u8> {
        source_bytes_with(tamper, Caps::NONE, Caps::NONE, None)
    }

    /// The source offers `offer` to a destination supporting `supported`
    /// and encodes with what they agree on, or with `force`.
    fn source_bytes_with(
        tamper: Option<usize>,
        offer: Caps,
        supported: Caps,
        force: Option<Codec>,
    ) -> Vec<u8> {
        let src = Hello {
            role: Role::Source,
            nonce: [5; 16],
            verify: false,
            caps: offer,
        };
        let dst = Hello {
            role: Role::Destination,
            nonce: [6; 16],
            verify: false,
            caps: supported,
        }
        .answer(&src);
        let mut wire = src.to_bytes().to_vec();
        let mac = TranscriptMac::new(KEY, &src, &dst).unwrap();
        let mut out = Authenticated::new(Vec::new(), mac);
        let mut e = Encoder::new();
        e.set_codec(force.unwrap_or(negotiated(&src, &dst).unwrap()));
        sample_pages(&mut e, &mut out);
        e.hvm_context(&mut out, &[1; 5]).unwrap();
        e.end(&mut out).unwrap();
        let (body, trailer) = out.finish();
        let at = wire.len();
        wire.extend_from_slice(&body);
        wire.extend_from_slice(&trailer);
        if let Some(i) = tamper {
            wire[at + i] ^= 0x40;
        }
        wire
    }

    fn receive(wire: &[u8], seg: usize) -> Result<(bool, u32), RxError> {
        receive_with(wire, seg, Caps::NONE).map(|(a, p, _)| (a, p.len() as u32))
    }

    /// Pages received: pfn and contents, in stream order.
    type Pages = Vec<(u64, Vec<u8>)>;

    fn expected_pages() -> Pages {
        let text: Vec<u8> = (0..PAGE_SIZE).map(|i| b"depmig "[i % 7]).collect();
        vec![
            (1, vec![9u8; PAGE_SIZE]),
            (2, text),
            (3, vec![0u8; PAGE_SIZE]),
        ]
    }

    /// Receives as a destination supporting `supported`: whether the
    /// stream was authenticated, its pages, the codec agreed.
    fn receive_with(
        wire: &[u8],
        seg: usize,
        supported: Caps,
    ) -> Result<(bool, Pages, Codec), RxError> {
        let mut rx = Receiver::new(
            KEY,
            Hello {
                role: Role::Destination,
                nonce: [6; 16],
                verify: false,
                caps: supported,
            },
            Limits::default(),
        )
        .unwrap();
        let mut pages = Vec::new();
        let mut hello = false;
        for s in wire.chunks(seg) {
            let mut input = s;
            while let Some(ev) = rx.push(&mut input)? {
                match ev {
                    RxEvent::PeerHello(_) => hello = true,
                    RxEvent::Stream(Event::Page { entry, data }) => {
                        pages.push((entry.pfn, data.unwrap_or(&[]).to_vec()))
                    }
                    _ => {}
                }
            }
        }
        assert!(hello);
        Ok((rx.is_authenticated(), pages, rx.codec()))
    }

    #[test]
    fn packed_pages_only_where_both_hellos_agree() {
        let lz4 = Caps::LZ4_PAGES;
        let none = Caps::NONE;
        // (offered, supported) -> codec used; the pages arrive the same.
        for (offer, supported, codec) in [
            (lz4, lz4, Codec::Lz4),
            (lz4, none, Codec::Raw),
            (none, lz4, Codec::Raw),
            (none, none, Codec::Raw),
        ] {
            let wire = source_bytes_with(None, offer, supported, None);
            for seg in [1, 13, 4096, wire.len()] {
                let (ok, pages, got) = receive_with(&wire, seg, supported).unwrap();
                assert!(ok, "{offer:?} {supported:?} {seg}");
                assert_eq!(got, codec);
                assert_eq!(pages, expected_pages());
            }
        }
        // Compressed, the stream is shorter.
        let raw = source_bytes_with(None, none, none, None).len();
        let packed = source_bytes_with(None, lz4, lz4, None).len();
        assert!(packed + 2 * PAGE_SIZE < raw, "{packed} vs {raw}");
        // A source that packs what was not agreed is refused at the record.
        let wire = source_bytes_with(None, lz4, none, Some(Codec::Lz4));
        assert_eq!(
            receive_with(&wire, 64, none).map(|_| ()),
            Err(RxError::Decode(DecodeError::NotNegotiated(
                rec::DEPMIG_PACKED_PAGES
            )))
        );
        // An answer holding what the source did not offer: refused.
        let mut wire = source_bytes_with(None, none, none, None);
        wire[11] = lz4.bits();
        let mut rx = Receiver::new(
            KEY,
            Hello {
                role: Role::Destination,
                nonce: [6; 16],
                verify: false,
                caps: lz4,
            },
            Limits::default(),
        )
        .unwrap();
        let mut input = wire.as_slice();
        // The offer now holds LZ4 (a changed hello): accepted here, but the
        // transcript key differs from the source's, so the tag fails.
        let mut last = Ok(());
        loop {
            match rx.push(&mut input) {
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(e) => {
                    last = Err(e);
                    break;
                }
            }
        }
        assert_eq!(last, Err(RxError::Handshake(HandshakeError::BadTag)));
    }

    #[test]
    fn authentic_stream_in_any_segmentation() {
        let wire = source_bytes(None);
        for seg in [1, 3, 47, 4096, wire.len()] {
            assert_eq!(receive(&wire, seg), Ok((true, 3)), "segment {seg}");
        }
        // Truncated: never authenticated.
        assert_eq!(receive(&wire[..wire.len() - 1], 7), Ok((false, 3)));
    }

    #[test]
    fn tampering_is_caught() {
        // A byte inside the page's data: the decoder accepts it, the tag
        // does not.
        let at = IHDR_LEN + DHDR_LEN + 8 + 16 + 100;
        assert_eq!(
            receive(&source_bytes(Some(at)), 64),
            Err(RxError::Handshake(HandshakeError::BadTag))
        );
        // The image header: refused by the decoder first.
        assert_eq!(
            receive(&source_bytes(Some(0)), 64),
            Err(RxError::Decode(DecodeError::BadMarker))
        );
    }

    #[test]
    fn wrong_peer_role_refused() {
        let mut wire = source_bytes(None);
        wire[10] = 2;
        assert_eq!(
            receive(&wire, 64),
            Err(RxError::Handshake(HandshakeError::UnexpectedRole))
        );
    }

    /// Hellos of a sealed migration.
    fn sealed_hellos() -> (Hello, Hello) {
        let src = Hello {
            role: Role::Source,
            nonce: [5; 16],
            verify: false,
            caps: Caps::ENCRYPTED,
        };
        let dst = Hello {
            role: Role::Destination,
            nonce: [6; 16],
            verify: false,
            caps: Caps::ENCRYPTED,
        }
        .answer(&src);
        (src, dst)
    }

    /// The source's stream sealed under `key`: its hello, then each record
    /// apart. `extra` pages of filler make the stream span several
    /// records.
    fn sealed_source(key: &[u8], extra: u64) -> (Vec<u8>, Vec<Vec<u8>>) {
        let (src, dst) = sealed_hellos();
        let sealer = Sealer::new(key, &src, &dst, Direction::SourceToDestination).unwrap();
        let mut out = Authenticated::sealed(Vec::new(), sealer);
        assert!(out.is_sealed());
        let mut e = Encoder::new();
        sample_pages(&mut e, &mut out);
        for p in 0..extra {
            let page = [p as u8; PAGE_SIZE];
            e.page_data(&mut out, &[PfnEntry::normal(4 + p)], &[&page])
                .unwrap();
        }
        // A record ends here, as at the source's suspension.
        out.flush_record().unwrap();
        e.hvm_context(&mut out, &[1; 5]).unwrap();
        e.end(&mut out).unwrap();
        let records = out.records();
        let (body, tail) = out.finish();
        // Split the wire back into records by their headers.
        let mut recs = Vec::new();
        let all = [&body[..], &tail].concat();
        let mut at = 0;
        while at < all.len() {
            let len = u32::from_le_bytes(all[at + 4..at + 8].try_into().unwrap()) as usize;
            let n = RECORD_HEADER_LEN + len + RECORD_TAG_LEN;
            recs.push(all[at..at + n].to_vec());
            at += n;
        }
        assert_eq!(recs.len() as u64, records + 1);
        (src.to_bytes().to_vec(), recs)
    }

    /// Receives as a destination that requires encryption.
    fn receive_sealed(wire: &[u8], seg: usize) -> Result<(bool, Pages), RxError> {
        receive_with(wire, seg, Caps::ENCRYPTED).map(|(a, p, _)| (a, p))
    }

    use crate::record::{RECORD_HEADER_LEN, RECORD_TAG_LEN};

    #[test]
    fn sealed_stream_round_trip_in_any_segmentation() {
        for extra in [0, 20, 40] {
            let (hello, recs) = sealed_source(KEY, extra);
            let wire = [hello, recs.concat()].concat();
            let mut want = expected_pages();
            for p in 0..extra {
                want.push((4 + p, vec![p as u8; PAGE_SIZE]));
            }
            for seg in [1, 7, 4096, wire.len()] {
                if seg == 1 && extra > 0 {
                    continue;
                }
                assert_eq!(
                    receive_sealed(&wire, seg),
                    Ok((true, want.clone())),
                    "{extra} {seg}"
                );
            }
            // Pages are not on the wire in clear.
            let page = [9u8; 64];
            assert!(!wire.windows(64).any(|w| w == page));
        }
        // Three records at least with 40 filler pages (a record holds 64 KiB).
        assert!(sealed_source(KEY, 40).1.len() >= 3);
    }

    #[test]
    fn sealed_records_altered_replayed_swapped_or_dropped_are_refused() {
        let (hello, recs) = sealed_source(KEY, 20);
        assert!(recs.len() >= 3, "{}", recs.len());
        let bad_tag = Err(RxError::Record(RecordError::BadTag));
        let with = |rs: &[&Vec<u8>]| {
            let mut w = hello.clone();
            for r in rs {
                w.extend_from_slice(r);
            }
            w
        };
        let all: Vec<&Vec<u8>> = recs.iter().collect();
        // A flipped bit in the header's length, in the ciphertext, in the tag.
        for at in [4, RECORD_HEADER_LEN + 3, recs[1].len() - 1] {
            let mut r1 = recs[1].clone();
            r1[at] ^= 0x01;
            let mut rs = all.clone();
            rs[1] = &r1;
            assert_eq!(receive_sealed(&with(&rs), 512), bad_tag, "{at}");
        }
        // The final flag set on a record that is not final, or cleared.
        let mut r0 = recs[0].clone();
        r0[2] ^= 1;
        let mut rs = all.clone();
        rs[0] = &r0;
        assert_eq!(receive_sealed(&with(&rs), 512), bad_tag);
        // Replayed.
        let mut rs = all.clone();
        rs.insert(1, &recs[0]);
        assert_eq!(receive_sealed(&with(&rs), 512), bad_tag);
        // Swapped.
        let mut rs = all.clone();
        rs.swap(0, 1);
        assert_eq!(receive_sealed(&with(&rs), 512), bad_tag);
        // Dropped.
        let mut rs = all.clone();
        rs.remove(1);
        assert_eq!(receive_sealed(&with(&rs), 512), bad_tag);
        // Nothing of a refused record reaches the decoder: pages of the
        // records before it do, none after.
        let mut rx = Receiver::new(
            KEY,
            Hello {
                role: Role::Destination,
                nonce: [6; 16],
                verify: false,
                caps: Caps::ENCRYPTED,
            },
            Limits::default(),
        )
        .unwrap();
        let mut r1 = recs[1].clone();
        r1[RECORD_HEADER_LEN] ^= 0x80;
        let mut rs = all.clone();
        rs[1] = &r1;
        let wire = with(&rs);
        let mut input = &wire[..];
        let mut pages_seen = 0u64;
        let err = loop {
            match rx.push(&mut input) {
                Ok(Some(RxEvent::Stream(Event::Page { .. }))) => pages_seen += 1,
                Ok(Some(_)) => {}
                Ok(None) => break None,
                Err(e) => break Some(e),
            }
        };
        assert_eq!(err, Some(RxError::Record(RecordError::BadTag)));
        assert_eq!(rx.records(), 1);
        // The first record holds 64 KiB: at most 15 whole pages of it.
        assert!(pages_seen <= 16, "{pages_seen}");
        assert!(!rx.is_authenticated());
    }

    #[test]
    fn a_sealed_stream_cut_short_is_never_authenticated() {
        let (hello, recs) = sealed_source(KEY, 20);
        let full = [hello.clone(), recs.concat()].concat();
        // Cut anywhere: before the final record, inside it.
        for cut in [
            hello.len() + 1,
            hello.len() + recs[0].len(),
            full.len() - recs.last().unwrap().len(),
            full.len() - 1,
        ] {
            let got = receive_sealed(&full[..cut], 333);
            assert!(matches!(got, Ok((false, _))), "{cut}: {got:?}");
        }
        // A final flag on an early record (a forger without the key cannot
        // set it; a source that did ends the stream before END): refused.
        let (src, dst) = sealed_hellos();
        let mut sealer = Sealer::new(KEY, &src, &dst, Direction::SourceToDestination).unwrap();
        let mut e = Encoder::new();
        let mut text = Vec::new();
        let d = DomainHeader {
            domain_type: DomainType::X86Hvm,
            page_shift: 12,
            xen_major: 4,
            xen_minor: 17,
        };
        e.headers(&mut text, &d).unwrap();
        let mut wire = src.to_bytes().to_vec();
        sealer.seal(&text, true, &mut wire).unwrap();
        assert_eq!(
            receive_sealed(&wire, 64),
            Err(RxError::Record(RecordError::FinalBeforeEnd))
        );
        // Bytes after END inside the final record: refused.
        e.static_data_end(&mut text).unwrap();
        e.hvm_context(&mut text, &[1; 5]).unwrap();
        e.end(&mut text).unwrap();
        let mut sealer = Sealer::new(KEY, &src, &dst, Direction::SourceToDestination).unwrap();
        let mut wire = src.to_bytes().to_vec();
        let mut t2 = text.clone();
        t2.push(0);
        sealer.seal(&t2, true, &mut wire).unwrap();
        assert_eq!(
            receive_sealed(&wire, 64),
            Err(RxError::Record(RecordError::TrailingPlaintext))
        );
        // END at a record's edge, then an empty final record: authentic.
        let mut sealer = Sealer::new(KEY, &src, &dst, Direction::SourceToDestination).unwrap();
        let mut wire = src.to_bytes().to_vec();
        sealer.seal(&text, false, &mut wire).unwrap();
        let edge = wire.len();
        sealer.seal(&[], true, &mut wire).unwrap();
        assert!(matches!(receive_sealed(&wire, 5), Ok((true, _))));
        // Without the final record: not authenticated.
        assert!(matches!(receive_sealed(&wire[..edge], 5), Ok((false, _))));
    }

    #[test]
    fn a_sealed_stream_under_another_key_is_refused() {
        let (hello, recs) = sealed_source(b"another key of 16+ bytes", 0);
        let wire = [hello, recs.concat()].concat();
        assert_eq!(
            receive_sealed(&wire, 100),
            Err(RxError::Record(RecordError::BadTag))
        );
    }

    #[test]
    fn encryption_is_required_where_armed() {
        // A source that offers no encryption, to a destination that
        // requires it: refused at the hello, before any stream byte.
        let wire = source_bytes(None);
        assert_eq!(
            receive_with(&wire, 64, Caps::ENCRYPTED).map(|_| ()),
            Err(RxError::Handshake(HandshakeError::EncryptionRefused))
        );
        // A source that offers it, to a destination that does not take
        // it: the destination answers without it, and the source refuses
        // (see `sealed`); a sealed stream sent anyway is not a libxc one.
        let (hello, recs) = sealed_source(KEY, 0);
        let wire = [hello, recs.concat()].concat();
        assert_eq!(
            receive_with(&wire, 64, Caps::NONE).map(|_| ()),
            Err(RxError::Decode(DecodeError::BadMarker))
        );
        let (src, dst) = sealed_hellos();
        let clear = Hello {
            caps: Caps::NONE,
            ..dst
        };
        assert_eq!(sealed(&src, &dst, true), Ok(true));
        assert_eq!(sealed(&src, &clear, false), Ok(false));
        assert_eq!(
            sealed(&src, &clear, true),
            Err(HandshakeError::EncryptionRefused)
        );
        let plain_src = Hello {
            caps: Caps::NONE,
            ..src
        };
        assert_eq!(
            sealed(&plain_src, &dst, false),
            Err(HandshakeError::UnofferedCapability)
        );
    }
}
