//! depmig's handshake framing around the libxc stream: a hello from each
//! end (magic, version, role, nonce), then the stream, then a trailer with
//! a tag over the whole transcript under a key both appliances were given.
//!
//! ```text
//! source -> destination : Hello(Source, nonce_s)              32 bytes
//! destination -> source : Hello(Destination, nonce_d)         32 bytes
//! destination -> source : confirmation                        32 bytes
//! source -> destination : libxc stream ... END
//! source -> destination : Trailer(stream length, tag)         32 bytes
//! confirmation = HMAC-SHA256(key, "depmig key confirmation v2\0"
//!                                 || hello_s || hello_d)
//! one-time key = HMAC-SHA256(key, "depmig transcript key v3\0"
//!                                 || hello_s || hello_d)
//! tag = Poly1305(one-time key, stream || stream length)
//! ```
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
//! (zero), reserved u32 (zero), nonce (16). Trailer layout: magic
//! "DEPMIGT3" (8), stream length u64 LE (8), tag (16).
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
    /// Flags or reserved bytes are not zero.
    ReservedBits,
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
}

/// Checks both hellos belong together and makes the keyed MAC for them.
fn keyed(
    key: &[u8],
    label: &[u8],
    source: &Hello,
    destination: &Hello,
) -> Result<Hmac<Sha256>, HandshakeError> {
    if key.len() < MIN_KEY_LEN {
        return Err(HandshakeError::ShortKey);
    }
    if source.role != Role::Source || destination.role != Role::Destination {
        return Err(HandshakeError::UnexpectedRole);
    }
    if source.nonce == destination.nonce {
        return Err(HandshakeError::ReflectedNonce);
    }
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(key).map_err(|_| HandshakeError::ShortKey)?;
    mac.update(label);
    mac.update(&source.to_bytes());
    mac.update(&destination.to_bytes());
    Ok(mac)
}

/// The destination's key confirmation for this pair of hellos.
pub fn key_confirmation(
    key: &[u8],
    source: &Hello,
    destination: &Hello,
) -> Result<[u8; CONFIRM_LEN], HandshakeError> {
    let mac = keyed(key, CONFIRM_SEPARATOR, source, destination)?;
    let mut out = [0u8; CONFIRM_LEN];
    out.copy_from_slice(&mac.finalize().into_bytes());
    Ok(out)
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

/// One end's hello.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hello {
    /// Sender's role.
    pub role: Role,
    /// Fresh random nonce.
    pub nonce: [u8; 16],
}

impl Hello {
    /// Serialises the hello.
    pub fn to_bytes(&self) -> [u8; HELLO_LEN] {
        let mut b = [0u8; HELLO_LEN];
        b[0..8].copy_from_slice(&HELLO_MAGIC);
        b[8..10].copy_from_slice(&HANDSHAKE_VERSION.to_le_bytes());
        b[10] = self.role.to_u8();
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
        if b[11..16].iter().any(|&x| x != 0) {
            return Err(HandshakeError::ReservedBits);
        }
        let mut nonce = [0u8; 16];
        nonce.copy_from_slice(&b[16..32]);
        Ok(Hello { role, nonce })
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
            },
            Hello {
                role: Role::Destination,
                nonce: [2; 16],
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
        assert_eq!(Hello::parse(&b[..31]), Err(HandshakeError::Truncated));
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
