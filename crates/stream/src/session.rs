//! Both ends of a depmig connection put together: the source writes through
//! an [`Authenticated`] sink; the destination pushes received bytes into a
//! [`Receiver`], which reads the source's hello, decodes the stream, and
//! checks the trailer's tag over exactly the bytes it decoded.
//!
//! Source:
//! 1. send `Hello { role: Source, nonce }`, read the destination's hello;
//! 2. `TranscriptMac::new(key, &mine, &peer)`, wrap the socket's sink in
//!    [`Authenticated`], encode the stream through it;
//! 3. send [`Authenticated::finish`]'s trailer.
//!
//! Destination: push every segment into [`Receiver::push`] until it returns
//! `None`; answer [`RxEvent::PeerHello`] with its own hello's
//! [`Hello::answer`] to it (what the receiver keyed the transcript with,
//! and whose capabilities set the decoder's codec); apply
//! [`RxEvent::Stream`] events to the paused shell; only after
//! [`RxEvent::Authenticated`] may the copy run.

use alloc::vec::Vec;

use crate::decode::{DecodeError, Decoder, Event, Limits};
use crate::encode::{ByteSink, SinkFull};
use crate::handshake::{
    negotiated, negotiated_delta, HandshakeError, Hello, Role, TranscriptMac, HELLO_LEN,
    MIN_KEY_LEN, TRAILER_LEN,
};
use crate::packed::Codec;

/// A sink that adds everything written through it to the transcript.
#[derive(Debug)]
pub struct Authenticated<S> {
    inner: S,
    mac: TranscriptMac,
}

impl<S: ByteSink> Authenticated<S> {
    /// Wraps `inner`; `mac` was started from both hellos.
    pub fn new(inner: S, mac: TranscriptMac) -> Self {
        Authenticated { inner, mac }
    }

    /// The wrapped sink.
    pub fn inner_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Ends the stream: returns the sink and the trailer to send last.
    pub fn finish(self) -> (S, [u8; TRAILER_LEN]) {
        (self.inner, self.mac.trailer())
    }
}

impl<S: ByteSink> ByteSink for Authenticated<S> {
    fn put(&mut self, bytes: &[u8]) -> Result<(), SinkFull> {
        self.inner.put(bytes)?;
        self.mac.update(bytes);
        Ok(())
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
            dec: Decoder::new(limits),
            failed: None,
        })
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
        let mac = TranscriptMac::new(&self.key, &peer, &answer).map_err(RxError::Handshake)?;
        self.mine = answer;
        self.dec.set_codec(codec);
        self.dec.set_delta(delta);
        self.mac = Some(mac);
        self.state = RxState::Stream;
        Ok(Some(RxEvent::PeerHello(peer)))
    }
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
    use crate::handshake::Caps;
    use crate::wire::*;
    use alloc::vec;

    const KEY: &[u8] = b"sixteen byte key, or more";

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
        let d = DomainHeader {
            domain_type: DomainType::X86Hvm,
            page_shift: 12,
            xen_major: 4,
            xen_minor: 17,
        };
        e.headers(&mut out, &d).unwrap();
        e.static_data_end(&mut out).unwrap();
        e.page_data(&mut out, &[PfnEntry::normal(1)], &[&[9u8; PAGE_SIZE]])
            .unwrap();
        let text: Vec<u8> = (0..PAGE_SIZE).map(|i| b"depmig "[i % 7]).collect();
        e.page_data(
            &mut out,
            &[PfnEntry::normal(2), PfnEntry::normal(3)],
            &[&text, &[0u8; PAGE_SIZE]],
        )
        .unwrap();
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
}
