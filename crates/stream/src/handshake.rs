//! depmig's handshake framing around the libxc stream: a hello from each
//! end (magic, version, role, flags, nonce), the destination's key
//! confirmation, then the stream, either in clear and followed by a
//! trailer with a tag over the whole transcript, or, when both hellos
//! agreed on [`Caps::ENCRYPTED`], in sealed records ([`crate::record`]);
//! then the destination's tagged reply.
//!
//! ```text
//! source -> destination : Hello(Source, nonce_s, flags)       32 bytes
//! destination -> source : Hello(Destination, nonce_d, answer) 32 bytes
//! destination -> source : confirmation                        32 bytes
//! in clear (ENCRYPTED not agreed):
//!   source -> destination : libxc stream ... END
//!   source -> destination : Trailer(stream length, tag)       32 bytes
//! sealed (ENCRYPTED agreed):
//!   source -> destination : Record(0) Record(1) ... Record(n, FINAL)
//!     each: "DS" flags(bit 0 FINAL) 0 length u32 | ciphertext | tag(16)
//!     the plaintexts, in order, are the libxc stream ... END exactly
//! (with --verify: page digest messages both ways, `depmig_migrate::verify`)
//! destination -> source : ACK | NAK+code (8) || reply tag     40 bytes
//!
//! confirmation  = HMAC-SHA256(key, "depmig key confirmation v2\0"
//!                                  || hello_s || hello_d)
//! one-time key  = HMAC-SHA256(key, "depmig transcript key v3\0"
//!                                  || hello_s || hello_d)
//! tag           = Poly1305(one-time key, stream || stream length)
//! record key    = HMAC-SHA256(key, "depmig record key source->destination v1\0"
//!                                  || hello_s || hello_d)
//! record nonce  = 0u32 || record counter u64 LE; AAD = the record header
//! reply tag     = HMAC-SHA256(key, "depmig reply destination->source v1\0"
//!                                  || hello_s || hello_d || 8u64 LE || reply)
//! ```
//!
//! Sealed, the trailer goes: the records prove what it proved. Each
//! record's tag covers its header and bytes under a nonce the receiver
//! counts itself, so a record altered, dropped, replayed or moved fails;
//! the final record's flag (under its tag) proves where the stream ends,
//! and the receiver takes it as authentic only when END ends the final
//! record exactly. The keys come from both hellos, as the transcript
//! key does, so the stream is bound to this migration and to the flags
//! both ends agreed on. A second MAC over the plaintext would prove the
//! same again at the cost of another Poly1305 pass over every byte
//! (`cargo run --release -p depmig-bench` prints both costs).
//!
//! The confirmation lets the source find a destination armed with another
//! key before it sends a page or suspends the guest (the tag would only
//! tell at the very end). It proves nothing to the destination, which
//! still trusts nothing before the tag. The destination's fresh nonce makes
//! a replayed stream or confirmation fail, and makes the Poly1305 key
//! (derived from both hellos) one this migration alone uses, as Poly1305
//! requires. Poly1305 rather than HMAC-SHA256 over the stream: without
//! SHA instructions (the appliance's emulated CPU has none) HMAC-SHA256 ran
//! at a fifth to an eighth of Poly1305's speed and was the largest part of
//! the destination's work per page (`cargo run -p depmig-bench` prints
//! both). The tag is
//! checked before the destination copy may run: bytes are applied to the
//! paused shell domain as they come, and a bad or missing tag means the
//! shell is destroyed, never unpaused.
//!
//! Hello layout: magic "DEPMIGHS" (8), version u16 LE, role u8, flags u8
//! (bit 0: [`FLAG_VERIFY`]; the others [`Caps`], bit 1 [`Caps::LZ4_PAGES`],
//! bit 2 [`Caps::ENCRYPTED`], bit 3 [`Caps::DELTA_PAGES`]; unknown bits
//! refused as reserved), reserved u32 (zero), nonce (16). A
//! peer of this version that does not know a flag refuses it as reserved;
//! both hellos feed the key confirmation and the transcript key, so a flag
//! changed on the way makes both fail. With neither verification nor a
//! capability the flags byte is zero, the hello of a peer that knows none.
//!
//! Verification (bit 0): both ends must be armed alike. After the trailer,
//! with verification on, the two ends exchange page digest messages
//! (`depmig_migrate::verify`); each carries a [`verify_tag`]: HMAC-SHA256
//! under the shared key over a label naming its direction, its sequence
//! number in that direction, both hellos and the message, so a message
//! cannot be forged, replayed from another migration, reordered, or
//! reflected back to its sender.
//!
//! Capabilities (bits 1..): the source's hello offers the encodings it
//! would use (`--compress`, `--delta-cache`) and encryption (`--encrypt on`), the
//! destination's answers with those it accepts among them
//! ([`Hello::answer`]), and both ends use what the answer holds
//! ([`negotiated`], [`negotiated_delta`], [`sealed`]). The confirmation and the tag (or the
//! record keys) cover both hellos, so a capability stripped or added on
//! the way fails the key confirmation before a page is sent. Encryption
//! is not a preference but a requirement: an end armed with it refuses a
//! peer whose hello lacks it ([`HandshakeError::EncryptionRefused`]), the
//! source after the confirmation and before any page, the destination
//! after its answer (so that its NAK says why) and before taking any of
//! the stream. Trailer layout: magic "DEPMIGT3" (8), stream length u64 LE
//! (8), tag (16).
//!
//! The reply: an end-of-migration ACK the source believes makes it
//! commit, after which dom0 destroys the source copy, so it carries a tag
//! ([`reply_tag`]) in clear and sealed streams alike; a reply without a
//! valid tag is refused whatever it says.
//!
//! PANICS: indexing here is into fixed-size arrays (`[u8; 32]`, `[u8; 16]`)
//! with constant indices and ranges inside their length, or, in
//! `TranscriptMac::absorb`, ranges of the 16-byte block buffer bounded by
//! what it holds (`have` < 16) and what still fits.

use hmac::{Hmac, Mac};
use poly1305::universal_hash::{KeyInit, UniversalHash};
use poly1305::Poly1305;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::packed::Codec;

/// Magic of a hello message.
pub const HELLO_MAGIC: [u8; 8] = *b"DEPMIGHS";
/// Handshake version this crate speaks.
pub const HANDSHAKE_VERSION: u16 = 3;
/// Size of a hello on the wire.
pub const HELLO_LEN: usize = 32;
/// Magic of the trailer.
pub const TRAILER_MAGIC: [u8; 8] = *b"DEPMIGT3";
/// Size of the trailer on the wire.
pub const TRAILER_LEN: usize = 32;
/// Shortest key accepted.
pub const MIN_KEY_LEN: usize = 16;
/// Size of the destination's key confirmation.
pub const CONFIRM_LEN: usize = 32;

const DOMAIN_SEPARATOR: &[u8] = b"depmig transcript key v3\0";
const CONFIRM_SEPARATOR: &[u8] = b"depmig key confirmation v2\0";
const VERIFY_S2D_SEPARATOR: &[u8] = b"depmig verify source->destination v1\0";
const VERIFY_D2S_SEPARATOR: &[u8] = b"depmig verify destination->source v1\0";
const REPLY_SEPARATOR: &[u8] = b"depmig reply destination->source v1\0";

/// Hello flag: the sender compares page digests after the trailer
/// (`--verify`). Both ends must agree.
pub const FLAG_VERIFY: u8 = 1;
/// Size of a [`verify_tag`].
pub const VERIFY_TAG_LEN: usize = 32;
/// Size of a [`reply_tag`].
pub const REPLY_TAG_LEN: usize = 32;

/// Which end of a migration a peer is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Sends the guest.
    Source,
    /// Receives the guest.
    Destination,
}

impl Role {
    fn to_u8(self) -> u8 {
        match self {
            Role::Source => 1,
            Role::Destination => 2,
        }
    }
}

/// Why a handshake or trailer was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HandshakeError {
    /// Fewer bytes than a hello or trailer.
    Truncated,
    /// The hello magic is wrong: not a depmig peer.
    BadMagic,
    /// The peer speaks another handshake version.
    UnsupportedVersion(u16),
    /// The role byte is unknown.
    BadRole(u8),
    /// Unknown flag bits or reserved bytes are not zero.
    ReservedBits,
    /// The destination accepted a capability the source did not offer.
    UnofferedCapability,
    /// The peer claims the wrong role for this direction.
    UnexpectedRole,
    /// Both hellos carry the same nonce (reflection).
    ReflectedNonce,
    /// The shared key is shorter than [`MIN_KEY_LEN`].
    ShortKey,
    /// The trailer magic is wrong.
    BadTrailerMagic,
    /// The trailer's stream length differs from the bytes received.
    LengthMismatch,
    /// The authentication tag does not match: the stream is not trusted.
    BadTag,
    /// The destination's key confirmation does not match: it holds
    /// another key.
    KeyMismatch,
    /// One end compares page digests after the trailer and the other does
    /// not: both must be armed alike.
    VerifyMismatch,
    /// This end was armed to encrypt the stream and the peer did not offer
    /// or accept it: refused before any page is sent in clear.
    EncryptionRefused,
}

/// Checks the key is long enough and both hellos belong together.
pub(crate) fn check_pair(
    key: &[u8],
    source: &Hello,
    destination: &Hello,
) -> Result<(), HandshakeError> {
    if key.len() < MIN_KEY_LEN {
        return Err(HandshakeError::ShortKey);
    }
    if source.role != Role::Source || destination.role != Role::Destination {
        return Err(HandshakeError::UnexpectedRole);
    }
    if source.nonce == destination.nonce {
        return Err(HandshakeError::ReflectedNonce);
    }
    Ok(())
}

/// Checks both hellos belong together and makes the keyed MAC for them.
fn keyed(
    key: &[u8],
    label: &[u8],
    source: &Hello,
    destination: &Hello,
) -> Result<Hmac<Sha256>, HandshakeError> {
    check_pair(key, source, destination)?;
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(key).map_err(|_| HandshakeError::ShortKey)?;
    mac.update(label);
    mac.update(&source.to_bytes());
    mac.update(&destination.to_bytes());
    Ok(mac)
}

/// `Ok` when `tag` is `want` (compared in constant time), else `BadTag`.
fn tag_matches(want: &[u8], tag: &[u8]) -> Result<(), HandshakeError> {
    if bool::from(want.ct_eq(tag)) {
        Ok(())
    } else {
        Err(HandshakeError::BadTag)
    }
}

/// The destination's key confirmation for this pair of hellos.
pub fn key_confirmation(
    key: &[u8],
    source: &Hello,
    destination: &Hello,
) -> Result<[u8; CONFIRM_LEN], HandshakeError> {
    let mac = keyed(key, CONFIRM_SEPARATOR, source, destination)?;
    Ok(mac.finalize().into_bytes().into())
}

/// The source's check of the destination's key confirmation
/// (constant-time compare).
pub fn verify_key_confirmation(
    key: &[u8],
    source: &Hello,
    destination: &Hello,
    confirmation: &[u8],
) -> Result<(), HandshakeError> {
    keyed(key, CONFIRM_SEPARATOR, source, destination)?
        .verify_slice(confirmation)
        .map_err(|_| HandshakeError::KeyMismatch)
}

/// Which way a page digest message goes ([`verify_tag`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Source to destination: the digests of the suspended guest.
    SourceToDestination,
    /// Destination to source: requests for finer digests, the verdict.
    DestinationToSource,
}

/// The tag of the `seq`-th page digest message (from 0) sent in
/// `direction` after the trailer of the migration of these hellos.
pub fn verify_tag(
    key: &[u8],
    source: &Hello,
    destination: &Hello,
    direction: Direction,
    seq: u32,
    message: &[u8],
) -> Result<[u8; VERIFY_TAG_LEN], HandshakeError> {
    let label = match direction {
        Direction::SourceToDestination => VERIFY_S2D_SEPARATOR,
        Direction::DestinationToSource => VERIFY_D2S_SEPARATOR,
    };
    let mut mac = keyed(key, label, source, destination)?;
    mac.update(&seq.to_le_bytes());
    mac.update(&(message.len() as u64).to_le_bytes());
    mac.update(message);
    Ok(mac.finalize().into_bytes().into())
}

/// Checks a page digest message's tag (constant-time compare).
pub fn check_verify_tag(
    key: &[u8],
    source: &Hello,
    destination: &Hello,
    direction: Direction,
    seq: u32,
    message: &[u8],
    tag: &[u8],
) -> Result<(), HandshakeError> {
    tag_matches(
        &verify_tag(key, source, destination, direction, seq, message)?,
        tag,
    )
}

/// The tag of the destination's reply (ACK or NAK) after the stream of
/// the migration of these hellos: HMAC-SHA256 under the shared key over
/// a label of its own (so that no other message's tag passes for it), both
/// hellos and the reply. A reply is sent once per migration, so no
/// sequence number is needed; the hellos' fresh nonces keep a reply of
/// another migration from passing.
pub fn reply_tag(
    key: &[u8],
    source: &Hello,
    destination: &Hello,
    reply: &[u8],
) -> Result<[u8; REPLY_TAG_LEN], HandshakeError> {
    let mut mac = keyed(key, REPLY_SEPARATOR, source, destination)?;
    mac.update(&(reply.len() as u64).to_le_bytes());
    mac.update(reply);
    Ok(mac.finalize().into_bytes().into())
}

/// Checks a reply's tag (constant-time compare).
pub fn check_reply_tag(
    key: &[u8],
    source: &Hello,
    destination: &Hello,
    reply: &[u8],
    tag: &[u8],
) -> Result<(), HandshakeError> {
    tag_matches(&reply_tag(key, source, destination, reply)?, tag)
}

/// Capabilities a hello carries in its flags byte beside [`FLAG_VERIFY`]
/// (bit 0, which is not a capability): offered by the source, accepted by
/// the destination.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Caps(u8);

impl Caps {
    /// None: Xen's own records only.
    pub const NONE: Caps = Caps(0);
    /// Pages in depmig's packed record ([`crate::packed`]: LZ4, zero pages).
    /// Bit 1: bit 0 is [`FLAG_VERIFY`].
    pub const LZ4_PAGES: Caps = Caps(1 << 1);
    /// The stream travels in sealed records ([`crate::record`]). Bit 2.
    pub const ENCRYPTED: Caps = Caps(1 << 2);
    /// Re-sent pages as deltas against what the destination holds
    /// ([`crate::delta`]). Bit 3.
    pub const DELTA_PAGES: Caps = Caps(1 << 3);
    /// Every capability bit this version knows; others are refused.
    pub const KNOWN: Caps = Caps(Self::LZ4_PAGES.0 | Self::ENCRYPTED.0 | Self::DELTA_PAGES.0);

    /// The capabilities needed for `codec`.
    pub fn for_codec(codec: Codec) -> Caps {
        match codec {
            Codec::Raw => Caps::NONE,
            Codec::Lz4 => Caps::LZ4_PAGES,
        }
    }

    /// The flags byte.
    pub fn bits(self) -> u8 {
        self.0
    }

    /// From the capability bits of a flags byte ([`FLAG_VERIFY`] cleared);
    /// `None` when an unknown bit is set (bit 0 included).
    pub fn from_bits(bits: u8) -> Option<Caps> {
        (bits & !Self::KNOWN.0 == 0).then_some(Caps(bits))
    }

    /// Whether every capability of `other` is in `self`.
    pub fn contains(self, other: Caps) -> bool {
        self.0 & other.0 == other.0
    }

    /// The capabilities in both.
    pub fn intersect(self, other: Caps) -> Caps {
        Caps(self.0 & other.0)
    }

    /// The capabilities in either.
    pub fn union(self, other: Caps) -> Caps {
        Caps(self.0 | other.0)
    }

    /// The capabilities needed for deltas when `on`.
    pub fn for_delta(on: bool) -> Caps {
        if on {
            Caps::DELTA_PAGES
        } else {
            Caps::NONE
        }
    }
}

/// Whether the stream travels sealed ([`crate::record`]), given the
/// source's offer and the destination's answer, and what `required` (the
/// end's own `--encrypt`) asks: an end armed with encryption refuses a
/// peer that did not offer or answer it ([`HandshakeError::EncryptionRefused`])
/// rather than send or take the stream in clear.
pub fn sealed(source: &Hello, destination: &Hello, required: bool) -> Result<bool, HandshakeError> {
    if !source.caps.contains(destination.caps) {
        return Err(HandshakeError::UnofferedCapability);
    }
    let on = destination.caps.contains(Caps::ENCRYPTED);
    if required && !on {
        return Err(HandshakeError::EncryptionRefused);
    }
    Ok(on)
}

/// The page codec two hellos agreed on: what the destination's answer
/// accepted, which must be among what the source offered.
pub fn negotiated(source: &Hello, destination: &Hello) -> Result<Codec, HandshakeError> {
    if !source.caps.contains(destination.caps) {
        return Err(HandshakeError::UnofferedCapability);
    }
    Ok(if destination.caps.contains(Caps::LZ4_PAGES) {
        Codec::Lz4
    } else {
        Codec::Raw
    })
}

/// Whether two hellos agreed on delta pages: the destination's answer
/// accepted them, which must be among what the source offered.
pub fn negotiated_delta(source: &Hello, destination: &Hello) -> Result<bool, HandshakeError> {
    if !source.caps.contains(destination.caps) {
        return Err(HandshakeError::UnofferedCapability);
    }
    Ok(destination.caps.contains(Caps::DELTA_PAGES))
}

/// One end's hello.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hello {
    /// Sender's role.
    pub role: Role,
    /// Fresh random nonce.
    pub nonce: [u8; 16],
    /// The sender compares page digests after the trailer ([`FLAG_VERIFY`]).
    pub verify: bool,
    /// Source: the capabilities it offers; destination: those it accepts.
    pub caps: Caps,
}

impl Hello {
    /// Serialises the hello.
    pub fn to_bytes(&self) -> [u8; HELLO_LEN] {
        let mut b = [0u8; HELLO_LEN];
        b[0..8].copy_from_slice(&HELLO_MAGIC);
        b[8..10].copy_from_slice(&HANDSHAKE_VERSION.to_le_bytes());
        b[10] = self.role.to_u8();
        b[11] = if self.verify { FLAG_VERIFY } else { 0 } | self.caps.bits();
        b[16..32].copy_from_slice(&self.nonce);
        b
    }

    /// Parses and checks a hello.
    pub fn parse(b: &[u8]) -> Result<Hello, HandshakeError> {
        let b: &[u8; HELLO_LEN] = b
            .get(..HELLO_LEN)
            .and_then(|s| s.try_into().ok())
            .ok_or(HandshakeError::Truncated)?;
        if b[0..8] != HELLO_MAGIC {
            return Err(HandshakeError::BadMagic);
        }
        let version = u16::from_le_bytes([b[8], b[9]]);
        if version != HANDSHAKE_VERSION {
            return Err(HandshakeError::UnsupportedVersion(version));
        }
        let role = match b[10] {
            1 => Role::Source,
            2 => Role::Destination,
            r => return Err(HandshakeError::BadRole(r)),
        };
        let caps = Caps::from_bits(b[11] & !FLAG_VERIFY).ok_or(HandshakeError::ReservedBits)?;
        if b[12..16].iter().any(|&x| x != 0) {
            return Err(HandshakeError::ReservedBits);
        }
        let mut nonce = [0u8; 16];
        nonce.copy_from_slice(&b[16..32]);
        Ok(Hello {
            role,
            nonce,
            verify: b[11] & FLAG_VERIFY != 0,
            caps,
        })
    }

    /// The destination's answer to the source's `offer`: this hello
    /// (holding what the destination supports, and whether it verifies)
    /// with the capabilities both have. The destination sends it;
    /// [`crate::Receiver`] keys the transcript with it.
    pub fn answer(self, offer: &Hello) -> Hello {
        Hello {
            caps: self.caps.intersect(offer.caps),
            ..self
        }
    }
}

/// Poly1305 block size.
const BLOCK: usize = 16;

/// Running MAC over the transcript, kept by both ends: Poly1305 under the
/// one-time key derived from the long-term key and both hellos. Input is
/// fed to Poly1305 in whole blocks; a partial block waits in `buf`, so
/// the tag does not depend on how the stream was cut into calls.
#[derive(Clone)]
pub struct TranscriptMac {
    poly: Poly1305,
    buf: [u8; BLOCK],
    have: usize,
    len: u64,
}

impl core::fmt::Debug for TranscriptMac {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("TranscriptMac")
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl TranscriptMac {
    /// Starts the transcript after both hellos were exchanged.
    pub fn new(key: &[u8], source: &Hello, destination: &Hello) -> Result<Self, HandshakeError> {
        let one_time = keyed(key, DOMAIN_SEPARATOR, source, destination)?
            .finalize()
            .into_bytes();
        Ok(TranscriptMac {
            poly: Poly1305::new(&one_time),
            buf: [0; BLOCK],
            have: 0,
            len: 0,
        })
    }

    /// Feeds bytes to Poly1305, whole blocks only.
    fn absorb(&mut self, mut data: &[u8]) {
        if self.have > 0 {
            let take = (BLOCK - self.have).min(data.len());
            let (head, rest) = data.split_at(take);
            self.buf[self.have..self.have + take].copy_from_slice(head);
            self.have += take;
            data = rest;
            if self.have < BLOCK {
                return;
            }
            self.poly.update_padded(&self.buf);
            self.have = 0;
        }
        let whole = data.len() - data.len() % BLOCK;
        let (blocks, tail) = data.split_at(whole);
        // A multiple of the block size: nothing is padded.
        self.poly.update_padded(blocks);
        self.buf[..tail.len()].copy_from_slice(tail);
        self.have = tail.len();
    }

    /// Adds stream bytes, in order, exactly as sent or received.
    pub fn update(&mut self, stream: &[u8]) {
        self.absorb(stream);
        self.len = self.len.wrapping_add(stream.len() as u64);
    }

    /// Stream bytes covered so far.
    pub fn stream_len(&self) -> u64 {
        self.len
    }

    /// The tag over the stream and its length.
    fn tag(mut self) -> [u8; BLOCK] {
        let len = self.len.to_le_bytes();
        self.absorb(&len);
        let have = self.have;
        let tag = self.poly.compute_unpadded(&self.buf[..have]);
        let mut out = [0u8; BLOCK];
        out.copy_from_slice(&tag);
        out
    }

    /// The source's trailer.
    pub fn trailer(self) -> [u8; TRAILER_LEN] {
        let len = self.len;
        let tag = self.tag();
        let mut t = [0u8; TRAILER_LEN];
        t[0..8].copy_from_slice(&TRAILER_MAGIC);
        t[8..16].copy_from_slice(&len.to_le_bytes());
        t[16..32].copy_from_slice(&tag);
        t
    }

    /// The destination's check of the trailer (constant-time tag compare).
    pub fn verify_trailer(self, trailer: &[u8]) -> Result<(), HandshakeError> {
        let t: &[u8; TRAILER_LEN] = trailer
            .get(..TRAILER_LEN)
            .and_then(|s| s.try_into().ok())
            .ok_or(HandshakeError::Truncated)?;
        if t[0..8] != TRAILER_MAGIC {
            return Err(HandshakeError::BadTrailerMagic);
        }
        let mut l = [0u8; 8];
        l.copy_from_slice(&t[8..16]);
        if u64::from_le_bytes(l) != self.len {
            return Err(HandshakeError::LengthMismatch);
        }
        if bool::from(self.tag().ct_eq(&t[16..32])) {
            Ok(())
        } else {
            Err(HandshakeError::BadTag)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn hellos() -> (Hello, Hello) {
        (
            Hello {
                role: Role::Source,
                nonce: [1; 16],
                verify: false,
                caps: Caps::NONE,
            },
            Hello {
                role: Role::Destination,
                nonce: [2; 16],
                verify: false,
                caps: Caps::NONE,
            },
        )
    }

    #[test]
    fn key_confirmation_binds_key_and_both_hellos() {
        let (s, d) = hellos();
        let c = key_confirmation(KEY, &s, &d).unwrap();
        assert_eq!(verify_key_confirmation(KEY, &s, &d, &c), Ok(()));
        // Another key, another nonce, a truncated or altered value: refused.
        let other = b"another key of 16+ bytes";
        assert_eq!(
            verify_key_confirmation(other, &s, &d, &c),
            Err(HandshakeError::KeyMismatch)
        );
        let d2 = Hello {
            nonce: [3; 16],
            ..d
        };
        assert_eq!(
            verify_key_confirmation(KEY, &s, &d2, &c),
            Err(HandshakeError::KeyMismatch)
        );
        assert_eq!(
            verify_key_confirmation(KEY, &s, &d, &c[..31]),
            Err(HandshakeError::KeyMismatch)
        );
        let mut bad = c;
        bad[7] ^= 0x40;
        assert_eq!(
            verify_key_confirmation(KEY, &s, &d, &bad),
            Err(HandshakeError::KeyMismatch)
        );
        // It is not the transcript tag's first block under another name.
        let mut t = TranscriptMac::new(KEY, &s, &d).unwrap();
        t.update(&[]);
        assert_ne!(&t.trailer()[16..32], &c[..16]);
        assert_eq!(
            key_confirmation(b"short", &s, &d),
            Err(HandshakeError::ShortKey)
        );
        assert_eq!(
            key_confirmation(KEY, &d, &s),
            Err(HandshakeError::UnexpectedRole)
        );
    }

    #[test]
    fn hello_round_trip_and_checks() {
        let (s, _) = hellos();
        let b = s.to_bytes();
        assert_eq!(Hello::parse(&b), Ok(s));
        let mut bad = b;
        bad[0] ^= 1;
        assert_eq!(Hello::parse(&bad), Err(HandshakeError::BadMagic));
        let mut bad = b;
        bad[8] = 9;
        assert_eq!(
            Hello::parse(&bad),
            Err(HandshakeError::UnsupportedVersion(9))
        );
        let mut bad = b;
        bad[10] = 7;
        assert_eq!(Hello::parse(&bad), Err(HandshakeError::BadRole(7)));
        let mut bad = b;
        bad[12] = 1;
        assert_eq!(Hello::parse(&bad), Err(HandshakeError::ReservedBits));
        let mut bad = b;
        bad[11] = 16;
        assert_eq!(Hello::parse(&bad), Err(HandshakeError::ReservedBits));
        // The verify flag reads back; off, the hello is the one of before.
        assert_eq!(b[11], 0);
        let v = Hello { verify: true, ..s };
        assert_eq!(v.to_bytes()[11], FLAG_VERIFY);
        assert_eq!(Hello::parse(&v.to_bytes()), Ok(v));
        assert_eq!(Hello::parse(&b[..31]), Err(HandshakeError::Truncated));
        let mut bad = b;
        bad[11] = 0x80;
        assert_eq!(Hello::parse(&bad), Err(HandshakeError::ReservedBits));
    }

    #[test]
    fn capabilities_are_offered_answered_and_bound_to_the_transcript() {
        let (s, d) = hellos();
        let offer = Hello {
            caps: Caps::LZ4_PAGES,
            ..s
        };
        let b = offer.to_bytes();
        assert_eq!(b[11], 2);
        assert_eq!(Hello::parse(&b), Ok(offer));
        // A destination that supports LZ4 accepts it only when offered.
        let supports = Hello {
            caps: Caps::LZ4_PAGES,
            ..d
        };
        let yes = supports.answer(&offer);
        assert_eq!(yes.caps, Caps::LZ4_PAGES);
        assert_eq!(negotiated(&offer, &yes), Ok(Codec::Lz4));
        let no = supports.answer(&s);
        assert_eq!(no.caps, Caps::NONE);
        assert_eq!(negotiated(&s, &no), Ok(Codec::Raw));
        // One that does not support it answers with none.
        assert_eq!(d.answer(&offer).caps, Caps::NONE);
        assert_eq!(negotiated(&offer, &d.answer(&offer)), Ok(Codec::Raw));
        // Accepting what was not offered is refused.
        assert_eq!(
            negotiated(&s, &yes),
            Err(HandshakeError::UnofferedCapability)
        );
        // A downgrade on the way (the offer's bit cleared) changes the
        // hellos the confirmation covers.
        let c = key_confirmation(KEY, &offer, &yes).unwrap();
        assert_eq!(
            verify_key_confirmation(KEY, &s, &no, &c),
            Err(HandshakeError::KeyMismatch)
        );
        assert_eq!(
            verify_key_confirmation(KEY, &offer, &no, &c),
            Err(HandshakeError::KeyMismatch)
        );
        assert_eq!(Caps::for_codec(Codec::Lz4), Caps::LZ4_PAGES);
        assert_eq!(Caps::for_codec(Codec::Raw), Caps::NONE);
        assert_eq!(Caps::from_bits(2), Some(Caps::LZ4_PAGES));
        assert_eq!(Caps::from_bits(FLAG_VERIFY), None);
        assert_eq!(Caps::from_bits(4), Some(Caps::ENCRYPTED));
        assert_eq!(Caps::from_bits(8), Some(Caps::DELTA_PAGES));
        assert_eq!(Caps::from_bits(16), None);
    }

    #[test]
    fn delta_pages_are_bit_3_and_negotiated_apart_from_the_codec() {
        let (s, d) = hellos();
        let both = Caps::LZ4_PAGES.union(Caps::DELTA_PAGES);
        assert_eq!(Caps::DELTA_PAGES.bits(), 8);
        assert_eq!(Caps::for_delta(true), Caps::DELTA_PAGES);
        assert_eq!(Caps::for_delta(false), Caps::NONE);
        assert_eq!(Caps::from_bits(8), Some(Caps::DELTA_PAGES));
        assert_eq!(
            Caps::from_bits(8 | 4),
            Some(Caps::DELTA_PAGES.union(Caps::ENCRYPTED))
        );
        assert_eq!(Caps::from_bits(16), None, "bit 4 is not this version's");
        let offer = Hello { caps: both, ..s };
        assert_eq!(Hello::parse(&offer.to_bytes()), Ok(offer));
        // A destination taking deltas only: deltas over raw pages.
        let delta_only = Hello {
            caps: Caps::DELTA_PAGES,
            ..d
        }
        .answer(&offer);
        assert_eq!(negotiated(&offer, &delta_only), Ok(Codec::Raw));
        assert_eq!(negotiated_delta(&offer, &delta_only), Ok(true));
        // Not offered: not taken, and taking it anyway is refused.
        let lz4_offer = Hello {
            caps: Caps::LZ4_PAGES,
            ..s
        };
        let answer = Hello { caps: both, ..d }.answer(&lz4_offer);
        assert_eq!(negotiated_delta(&lz4_offer, &answer), Ok(false));
        let forced = Hello { caps: both, ..d };
        assert_eq!(
            negotiated_delta(&lz4_offer, &forced),
            Err(HandshakeError::UnofferedCapability)
        );
    }

    #[test]
    fn verify_and_capabilities_share_the_flags_byte() {
        let (s, d) = hellos();
        // Bit 0 is verify, bit 1 LZ4; with neither the byte is zero, as before.
        assert_eq!(s.to_bytes()[11], 0);
        let both = Hello {
            verify: true,
            caps: Caps::LZ4_PAGES,
            ..s
        };
        let b = both.to_bytes();
        assert_eq!(b[11], FLAG_VERIFY | Caps::LZ4_PAGES.bits());
        assert_eq!(b[11], 3);
        assert_eq!(Hello::parse(&b), Ok(both));
        let only_lz4 = Hello {
            caps: Caps::LZ4_PAGES,
            ..s
        };
        assert!(!Hello::parse(&only_lz4.to_bytes()).unwrap().verify);
        // Bit 2 is encryption, bit 3 deltas; any other bit, alone or beside them, is
        // refused.
        let sealed_too = Hello {
            caps: Caps::LZ4_PAGES.union(Caps::ENCRYPTED),
            ..both
        };
        assert_eq!(sealed_too.to_bytes()[11], 7);
        assert_eq!(Hello::parse(&sealed_too.to_bytes()), Ok(sealed_too));
        for bit in 4..8 {
            let mut bad = b;
            bad[11] |= 1 << bit;
            assert_eq!(Hello::parse(&bad), Err(HandshakeError::ReservedBits));
        }
        // The answer keeps the destination's verify flag and narrows only
        // the capabilities.
        let dest = Hello {
            verify: true,
            caps: Caps::LZ4_PAGES,
            ..d
        };
        let yes = dest.answer(&both);
        assert!(yes.verify);
        assert_eq!(yes.caps, Caps::LZ4_PAGES);
        assert_eq!(negotiated(&both, &yes), Ok(Codec::Lz4));
        let no = dest.answer(&Hello { verify: true, ..s });
        assert!(no.verify);
        assert_eq!(no.caps, Caps::NONE);
        // The verify flag changed on the way fails the confirmation too.
        let c = key_confirmation(KEY, &both, &yes).unwrap();
        assert_eq!(
            verify_key_confirmation(KEY, &only_lz4, &yes, &c),
            Err(HandshakeError::KeyMismatch)
        );
    }

    #[test]
    fn trailer_verifies_and_detects_tampering() {
        let (s, d) = hellos();
        let mut tx = TranscriptMac::new(KEY, &s, &d).unwrap();
        let mut rx = tx.clone();
        tx.update(b"stream bytes");
        let trailer = tx.trailer();
        let mut rx_bad = rx.clone();
        rx.update(b"stream ");
        rx.update(b"bytes");
        assert_eq!(rx.clone().verify_trailer(&trailer), Ok(()));
        rx_bad.update(b"stream bytez");
        assert_eq!(rx_bad.verify_trailer(&trailer), Err(HandshakeError::BadTag));
        let mut t2 = trailer;
        t2[31] ^= 1;
        assert_eq!(rx.clone().verify_trailer(&t2), Err(HandshakeError::BadTag));
        let mut t3 = trailer;
        t3[8] ^= 1;
        assert_eq!(rx.verify_trailer(&t3), Err(HandshakeError::LengthMismatch));
    }

    /// Poly1305 of `stream || length` in one piece, under the one-time key.
    fn one_shot(s: &Hello, d: &Hello, stream: &[u8]) -> [u8; 16] {
        let k = keyed(KEY, DOMAIN_SEPARATOR, s, d)
            .unwrap()
            .finalize()
            .into_bytes();
        let mut m = stream.to_vec();
        m.extend_from_slice(&(stream.len() as u64).to_le_bytes());
        let mut out = [0u8; 16];
        out.copy_from_slice(&Poly1305::new(&k).compute_unpadded(&m));
        out
    }

    #[test]
    fn the_tag_does_not_depend_on_how_the_stream_was_cut() {
        let (s, d) = hellos();
        let stream: Vec<u8> = (0..1000u32).map(|i| (i * 7 + i / 13) as u8).collect();
        // Cuts inside blocks, on block edges, empty calls, single bytes.
        for cuts in [
            &[1000][..],
            &[0, 1, 15, 16, 17, 17, 31, 33, 500, 1000],
            &[16, 32, 48, 999, 1000],
            &[3, 5, 7, 11, 13, 1000],
        ] {
            let mut t = TranscriptMac::new(KEY, &s, &d).unwrap();
            let mut at = 0;
            for &c in cuts {
                t.update(&stream[at..c]);
                at = c;
            }
            assert_eq!(t.stream_len(), 1000);
            let trailer = t.trailer();
            assert_eq!(trailer[16..32], one_shot(&s, &d, &stream), "{cuts:?}");
        }
        // Lengths around the block size, the length's 8 bytes included.
        for n in [0, 1, 7, 8, 9, 15, 16, 17, 24, 31, 32, 33] {
            let mut t = TranscriptMac::new(KEY, &s, &d).unwrap();
            t.update(&stream[..n]);
            assert_eq!(t.trailer()[16..32], one_shot(&s, &d, &stream[..n]), "{n}");
        }
    }

    #[test]
    fn verify_tags_bind_key_hellos_direction_sequence_and_message() {
        let (s, d) = hellos();
        let s2d = Direction::SourceToDestination;
        let t = verify_tag(KEY, &s, &d, s2d, 0, b"digests").unwrap();
        assert_eq!(
            check_verify_tag(KEY, &s, &d, s2d, 0, b"digests", &t),
            Ok(())
        );
        let refused = Err(HandshakeError::BadTag);
        // Another message, sequence number, direction, key or migration.
        assert_eq!(
            check_verify_tag(KEY, &s, &d, s2d, 0, b"digestz", &t),
            refused
        );
        assert_eq!(
            check_verify_tag(KEY, &s, &d, s2d, 1, b"digests", &t),
            refused
        );
        let d2s = Direction::DestinationToSource;
        assert_eq!(
            check_verify_tag(KEY, &s, &d, d2s, 0, b"digests", &t),
            refused
        );
        let other = b"another key of 16+ bytes";
        assert_eq!(
            check_verify_tag(other, &s, &d, s2d, 0, b"digests", &t),
            refused
        );
        let d2 = Hello {
            nonce: [3; 16],
            ..d
        };
        assert_eq!(
            check_verify_tag(KEY, &s, &d2, s2d, 0, b"digests", &t),
            refused
        );
        assert_eq!(
            check_verify_tag(KEY, &s, &d, s2d, 0, b"digests", &t[..31]),
            refused
        );
        // Not the key confirmation under another name.
        assert_ne!(t, key_confirmation(KEY, &s, &d).unwrap());
    }

    #[test]
    fn reply_tags_bind_key_hellos_and_reply() {
        let (s, d) = hellos();
        let t = reply_tag(KEY, &s, &d, b"DMACK\0\0\0").unwrap();
        assert_eq!(check_reply_tag(KEY, &s, &d, b"DMACK\0\0\0", &t), Ok(()));
        let refused = Err(HandshakeError::BadTag);
        assert_eq!(check_reply_tag(KEY, &s, &d, b"DMNAKAUT", &t), refused);
        let other = b"another key of 16+ bytes";
        assert_eq!(check_reply_tag(other, &s, &d, b"DMACK\0\0\0", &t), refused);
        let d2 = Hello {
            nonce: [3; 16],
            ..d
        };
        assert_eq!(check_reply_tag(KEY, &s, &d2, b"DMACK\0\0\0", &t), refused);
        assert_eq!(
            check_reply_tag(KEY, &s, &d, b"DMACK\0\0\0", &t[..31]),
            refused
        );
        // Not a verify message's tag for the same bytes.
        let v = verify_tag(
            KEY,
            &s,
            &d,
            Direction::DestinationToSource,
            0,
            b"DMACK\0\0\0",
        )
        .unwrap();
        assert_ne!(t, v);
    }

    #[test]
    fn wrong_key_or_nonce_fails() {
        let (s, d) = hellos();
        let mut tx = TranscriptMac::new(KEY, &s, &d).unwrap();
        tx.update(b"x");
        let trailer = tx.trailer();
        let mut other = TranscriptMac::new(b"another key of 16+ bytes", &s, &d).unwrap();
        other.update(b"x");
        assert_eq!(other.verify_trailer(&trailer), Err(HandshakeError::BadTag));
        let d2 = Hello {
            nonce: [3; 16],
            ..d
        };
        let mut replay = TranscriptMac::new(KEY, &s, &d2).unwrap();
        replay.update(b"x");
        assert_eq!(replay.verify_trailer(&trailer), Err(HandshakeError::BadTag));
        assert_eq!(
            TranscriptMac::new(b"short", &s, &d).unwrap_err(),
            HandshakeError::ShortKey
        );
        assert_eq!(
            TranscriptMac::new(KEY, &d, &s).unwrap_err(),
            HandshakeError::UnexpectedRole
        );
        assert_eq!(
            TranscriptMac::new(
                KEY,
                &s,
                &Hello {
                    nonce: s.nonce,
                    ..d
                }
            )
            .unwrap_err(),
            HandshakeError::ReflectedNonce
        );
    }
}
