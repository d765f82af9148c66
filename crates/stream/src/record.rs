//! Sealed records: how the source's stream crosses a network when both
//! hellos agreed on [`Caps::ENCRYPTED`](crate::Caps::ENCRYPTED). The bytes
//! the encoder writes are cut into records of at most
//! [`MAX_RECORD_PLAINTEXT`] bytes, each encrypted and authenticated with
//! ChaCha20-Poly1305 (RFC 8439; ChaCha20 rather than AES-GCM because the
//! appliances' emulated CPU has no AES instructions).
//!
//! ```text
//! record = header (8) || ciphertext (length) || tag (16)
//! header = magic "DS" (2) || flags u8 || reserved u8 (zero)
//!          || length u32 LE (plaintext bytes, 1..=65536; 0 only when final)
//! flags  : bit 0 FINAL (the sender's last record), others zero
//! key    = HMAC-SHA256(shared key, "depmig record key <direction> v1\0"
//!                      || hello_s || hello_d)
//! nonce  = 0u32 || counter u64 LE     (per direction, from 0, +1 a record)
//! aad    = header
//! ```
//!
//! The key is this migration's alone (both hellos carry fresh nonces) and
//! each direction has its own, so a counter value is never used twice
//! under one key, and a record cannot be reflected back to its sender.
//! The receiver does not read the counter from the wire: it opens record
//! `n` with nonce `n`. A replayed, reordered or dropped record is therefore
//! opened with a nonce other than its own and fails its tag, as does one
//! sealed under another key or for another migration, and one whose
//! header, ciphertext or tag changed on the way ([`RecordError::BadTag`]).
//! Nothing of a record reaches the caller before its tag checked.
//!
//! The FINAL flag proves where the sender stopped: it is covered by the
//! tag, the opener takes nothing after it ([`RecordError::AfterFinal`]),
//! and a receiver that sees the connection end without it knows the
//! stream was cut. The header is checked before the body is read: a
//! length over the cap is refused before anything is buffered, and the
//! opener's buffer is allocated once, at the cap.
//!
//! PANICS: indexing here is into the fixed header array with constant
//! indices, or into the opener's buffer, whose length is
//! `MAX_RECORD_PLAINTEXT + RECORD_TAG_LEN` and never shorter than the
//! `length + RECORD_TAG_LEN` a checked header allows; slices are taken with
//! `get` where a length comes from the wire.

use alloc::vec;
use alloc::vec::Vec;

use chacha20poly1305::aead::AeadInPlace;
use chacha20poly1305::{ChaCha20Poly1305, Key, KeyInit, Nonce, Tag};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::handshake::{check_pair, Direction, HandshakeError, Hello};

/// Size of a record header.
pub const RECORD_HEADER_LEN: usize = 8;
/// Size of a record's tag.
pub const RECORD_TAG_LEN: usize = 16;
/// Most plaintext bytes one record carries.
pub const MAX_RECORD_PLAINTEXT: usize = 64 << 10;
/// Magic of a record header.
pub const RECORD_MAGIC: [u8; 2] = *b"DS";
/// Header flag: the sender's last record in this direction.
pub const RECORD_FINAL: u8 = 1;

const KEY_S2D_SEPARATOR: &[u8] = b"depmig record key source->destination v1\0";
const KEY_D2S_SEPARATOR: &[u8] = b"depmig record key destination->source v1\0";

/// Why a record was refused (or could not be sealed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordError {
    /// The header's magic is wrong: not a sealed record.
    BadMagic,
    /// Unknown flag bits or the reserved byte are not zero.
    ReservedBits,
    /// The header claims more plaintext than a record may carry.
    TooLong(u32),
    /// A record other than the final one carries no plaintext.
    Empty,
    /// The tag does not match: the record was altered, replayed, reordered,
    /// one before it was dropped, or it was sealed under another key.
    BadTag,
    /// A record came after the sender's final one.
    AfterFinal,
    /// The record counter ran out (2^64 records under one key).
    Exhausted,
    /// The final record came before the stream's END: the stream was cut.
    FinalBeforeEnd,
    /// Plaintext follows the stream's END, or the decoder stopped before
    /// END with plaintext left.
    TrailingPlaintext,
}

/// The record key of one direction of the migration of these hellos.
fn record_key(
    key: &[u8],
    source: &Hello,
    destination: &Hello,
    direction: Direction,
) -> Result<ChaCha20Poly1305, HandshakeError> {
    check_pair(key, source, destination)?;
    let label = match direction {
        Direction::SourceToDestination => KEY_S2D_SEPARATOR,
        Direction::DestinationToSource => KEY_D2S_SEPARATOR,
    };
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(key).map_err(|_| HandshakeError::ShortKey)?;
    mac.update(label);
    mac.update(&source.to_bytes());
    mac.update(&destination.to_bytes());
    let k = mac.finalize().into_bytes();
    Ok(ChaCha20Poly1305::new(Key::from_slice(&k)))
}

/// The nonce of record `counter`.
fn nonce(counter: u64) -> Nonce {
    let mut n = [0u8; 12];
    n[4..12].copy_from_slice(&counter.to_le_bytes());
    Nonce::from(n)
}

/// A record header.
fn header(len: usize, last: bool) -> [u8; RECORD_HEADER_LEN] {
    let mut h = [0u8; RECORD_HEADER_LEN];
    h[0..2].copy_from_slice(&RECORD_MAGIC);
    h[2] = if last { RECORD_FINAL } else { 0 };
    // `len` is at most MAX_RECORD_PLAINTEXT (checked by the callers).
    h[4..8].copy_from_slice(&(len as u32).to_le_bytes());
    h
}

/// Checks a header; returns the plaintext length and whether it is final.
fn parse_header(h: &[u8; RECORD_HEADER_LEN]) -> Result<(usize, bool), RecordError> {
    if h[0..2] != RECORD_MAGIC {
        return Err(RecordError::BadMagic);
    }
    if h[2] & !RECORD_FINAL != 0 || h[3] != 0 {
        return Err(RecordError::ReservedBits);
    }
    let last = h[2] & RECORD_FINAL != 0;
    let len = u32::from_le_bytes([h[4], h[5], h[6], h[7]]);
    if len as usize > MAX_RECORD_PLAINTEXT {
        return Err(RecordError::TooLong(len));
    }
    if len == 0 && !last {
        return Err(RecordError::Empty);
    }
    Ok((len as usize, last))
}

/// The sending end of one direction: seals records with consecutive
/// counters, and nothing after the final one.
#[derive(Clone)]
pub struct Sealer {
    aead: ChaCha20Poly1305,
    counter: u64,
    closed: bool,
}

impl core::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Sealer")
            .field("counter", &self.counter)
            .field("closed", &self.closed)
            .finish_non_exhaustive()
    }
}

impl Sealer {
    /// The sealer of `direction` for the migration of these hellos.
    pub fn new(
        key: &[u8],
        source: &Hello,
        destination: &Hello,
        direction: Direction,
    ) -> Result<Self, HandshakeError> {
        Ok(Sealer {
            aead: record_key(key, source, destination, direction)?,
            counter: 0,
            closed: false,
        })
    }

    /// Records sealed so far.
    pub fn records(&self) -> u64 {
        self.counter
    }

    /// Whether the final record was sealed.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Encrypts `buf` (the plaintext, at most [`MAX_RECORD_PLAINTEXT`]
    /// bytes, empty only when `last`) in place as the next record; returns
    /// the header to send before it and the tag to send after it.
    pub fn seal_in_place(
        &mut self,
        buf: &mut [u8],
        last: bool,
    ) -> Result<([u8; RECORD_HEADER_LEN], [u8; RECORD_TAG_LEN]), RecordError> {
        if self.closed {
            return Err(RecordError::AfterFinal);
        }
        if buf.len() > MAX_RECORD_PLAINTEXT {
            return Err(RecordError::TooLong(
                u32::try_from(buf.len()).unwrap_or(u32::MAX),
            ));
        }
        if buf.is_empty() && !last {
            return Err(RecordError::Empty);
        }
        if self.counter == u64::MAX {
            return Err(RecordError::Exhausted);
        }
        let h = header(buf.len(), last);
        let tag = self
            .aead
            .encrypt_in_place_detached(&nonce(self.counter), &h, buf)
            // Only for plaintexts beyond ChaCha20's 256 GiB: never here.
            .map_err(|_| RecordError::TooLong(u32::MAX))?;
        self.counter += 1;
        self.closed = last;
        let mut t = [0u8; RECORD_TAG_LEN];
        t.copy_from_slice(&tag);
        Ok((h, t))
    }

    /// Seals `plaintext` as the next record and appends it to `out`.
    pub fn seal(
        &mut self,
        plaintext: &[u8],
        last: bool,
        out: &mut Vec<u8>,
    ) -> Result<(), RecordError> {
        let at = out.len();
        out.extend_from_slice(&[0u8; RECORD_HEADER_LEN]);
        out.extend_from_slice(plaintext);
        let body = out.get_mut(at + RECORD_HEADER_LEN..).unwrap_or(&mut []);
        match self.seal_in_place(body, last) {
            Ok((h, t)) => {
                if let Some(slot) = out.get_mut(at..at + RECORD_HEADER_LEN) {
                    slot.copy_from_slice(&h);
                }
                out.extend_from_slice(&t);
                Ok(())
            }
            Err(e) => {
                out.truncate(at);
                Err(e)
            }
        }
    }
}

/// Where the opener is in the record it reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Part {
    /// Reading the header (`have` bytes of it so far).
    Header,
    /// Reading ciphertext and tag: `len` plaintext bytes, final or not.
    Body { len: usize, last: bool },
}

/// The receiving end of one direction, fed bytes as they arrive: reads a
/// record, checks its header, then its tag, and only then hands out its
/// plaintext ([`Opener::plaintext`], [`Opener::consume`]).
#[derive(Clone)]
pub struct Opener {
    aead: ChaCha20Poly1305,
    counter: u64,
    head: [u8; RECORD_HEADER_LEN],
    part: Part,
    /// Bytes of the current part read so far.
    have: usize,
    /// Ciphertext and tag of the record being read, then its plaintext.
    buf: Vec<u8>,
    /// Unread plaintext: `buf[at..end]`.
    at: usize,
    end: usize,
    closed: bool,
    failed: Option<RecordError>,
}

impl core::fmt::Debug for Opener {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Opener")
            .field("counter", &self.counter)
            .field("part", &self.part)
            .field("closed", &self.closed)
            .field("failed", &self.failed)
            .finish_non_exhaustive()
    }
}

impl Opener {
    /// The opener of `direction` for the migration of these hellos. Its
    /// buffer, one record at the cap, is allocated here and never again.
    pub fn new(
        key: &[u8],
        source: &Hello,
        destination: &Hello,
        direction: Direction,
    ) -> Result<Self, HandshakeError> {
        Ok(Opener {
            aead: record_key(key, source, destination, direction)?,
            counter: 0,
            head: [0; RECORD_HEADER_LEN],
            part: Part::Header,
            have: 0,
            buf: vec![0; MAX_RECORD_PLAINTEXT + RECORD_TAG_LEN],
            at: 0,
            end: 0,
            closed: false,
            failed: None,
        })
    }

    /// Records opened so far.
    pub fn records(&self) -> u64 {
        self.counter
    }

    /// Whether the final record was opened.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// The opened plaintext not yet consumed.
    pub fn plaintext(&self) -> &[u8] {
        self.buf.get(self.at..self.end).unwrap_or(&[])
    }

    /// Marks `n` bytes of [`Opener::plaintext`] as consumed.
    pub fn consume(&mut self, n: usize) {
        self.at = self.at.saturating_add(n).min(self.end);
    }

    /// Reads from `input` until the next record is opened (`Ok(true)`) or
    /// the input runs out (`Ok(false)`). Call it only when the plaintext
    /// was consumed: it discards what is left. After an error every call
    /// returns it again.
    pub fn open(&mut self, input: &mut &[u8]) -> Result<bool, RecordError> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        let r = self.open_inner(input);
        if let Err(e) = r {
            self.failed = Some(e);
            self.at = 0;
            self.end = 0;
        }
        r
    }

    fn open_inner(&mut self, input: &mut &[u8]) -> Result<bool, RecordError> {
        self.at = 0;
        self.end = 0;
        if self.closed {
            return if input.is_empty() {
                Ok(false)
            } else {
                Err(RecordError::AfterFinal)
            };
        }
        if self.part == Part::Header {
            let take = (RECORD_HEADER_LEN - self.have).min(input.len());
            let (head, rest) = input.split_at(take);
            if let Some(slot) = self.head.get_mut(self.have..self.have + take) {
                slot.copy_from_slice(head);
            }
            self.have += take;
            *input = rest;
            if self.have < RECORD_HEADER_LEN {
                return Ok(false);
            }
            let (len, last) = parse_header(&self.head)?;
            if self.counter == u64::MAX {
                return Err(RecordError::Exhausted);
            }
            self.part = Part::Body { len, last };
            self.have = 0;
        }
        let Part::Body { len, last } = self.part else {
            return Ok(false);
        };
        let need = len + RECORD_TAG_LEN;
        let take = need.saturating_sub(self.have).min(input.len());
        let (body, rest) = input.split_at(take);
        let slot = self
            .buf
            .get_mut(self.have..self.have + take)
            .ok_or(RecordError::TooLong(len as u32))?;
        slot.copy_from_slice(body);
        self.have += take;
        *input = rest;
        if self.have < need {
            return Ok(false);
        }
        let (text, tag) = self
            .buf
            .get_mut(..need)
            .ok_or(RecordError::TooLong(len as u32))?
            .split_at_mut(len);
        self.aead
            .decrypt_in_place_detached(&nonce(self.counter), &self.head, text, Tag::from_slice(tag))
            .map_err(|_| RecordError::BadTag)?;
        self.counter += 1;
        self.part = Part::Header;
        self.have = 0;
        self.end = len;
        self.closed = last;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handshake::{Caps, Role};

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";
    const S2D: Direction = Direction::SourceToDestination;

    fn hellos() -> (Hello, Hello) {
        (
            Hello {
                role: Role::Source,
                nonce: [1; 16],
                verify: false,
                caps: Caps::ENCRYPTED,
            },
            Hello {
                role: Role::Destination,
                nonce: [2; 16],
                verify: false,
                caps: Caps::ENCRYPTED,
            },
        )
    }

    /// Records of `sizes` bytes each (the last one final), as sealed, each
    /// apart, and the plaintext they carry.
    fn sealed(sizes: &[usize]) -> (Vec<Vec<u8>>, Vec<u8>) {
        let (s, d) = hellos();
        let mut tx = Sealer::new(KEY, &s, &d, S2D).unwrap();
        let mut all = Vec::new();
        let mut recs = Vec::new();
        for (i, &n) in sizes.iter().enumerate() {
            let text: Vec<u8> = (0..n).map(|j| (i * 31 + j * 7) as u8).collect();
            let mut r = Vec::new();
            tx.seal(&text, i + 1 == sizes.len(), &mut r).unwrap();
            assert_eq!(r.len(), RECORD_HEADER_LEN + n + RECORD_TAG_LEN);
            all.extend_from_slice(&text);
            recs.push(r);
        }
        (recs, all)
    }

    /// Opens `wire` cut into `seg`-byte pieces: the plaintext, whether the
    /// final record was seen, or the first error.
    fn open_all(wire: &[u8], seg: usize) -> Result<(Vec<u8>, bool), RecordError> {
        let (s, d) = hellos();
        let mut rx = Opener::new(KEY, &s, &d, S2D).unwrap();
        let mut out = Vec::new();
        for piece in wire.chunks(seg.max(1)) {
            let mut input = piece;
            while rx.open(&mut input)? {
                out.extend_from_slice(rx.plaintext());
                let n = rx.plaintext().len();
                rx.consume(n);
            }
            assert!(input.is_empty());
        }
        Ok((out, rx.is_closed()))
    }

    #[test]
    fn round_trip_in_any_segmentation() {
        let (recs, text) = sealed(&[1, 100, MAX_RECORD_PLAINTEXT, 17, 0]);
        let wire = recs.concat();
        for seg in [1, 7, 8, 24, 4096, wire.len()] {
            assert_eq!(open_all(&wire, seg), Ok((text.clone(), true)), "{seg}");
        }
        // The ciphertext is not the plaintext.
        let (recs, text) = sealed(&[64]);
        assert_ne!(&recs[0][RECORD_HEADER_LEN..][..64], &text[..]);
    }

    #[test]
    fn a_flipped_bit_anywhere_is_refused() {
        let (recs, _) = sealed(&[40, 3]);
        let wire = recs.concat();
        for i in 0..recs[0].len() {
            let mut bad = wire.clone();
            bad[i] ^= 0x10;
            let want = match i {
                0 | 1 => Err(RecordError::BadMagic),
                // Bit 4 of the flags is unknown; the byte after is reserved.
                2 | 3 => Err(RecordError::ReservedBits),
                // A longer length within the cap: the opener waits for
                // bytes that never come, and nothing comes out.
                5 => Ok((Vec::new(), false)),
                6 => Err(RecordError::TooLong(40 | 0x10_0000)),
                7 => Err(RecordError::TooLong(40 | 0x1000_0000)),
                _ => Err(RecordError::BadTag),
            };
            assert_eq!(open_all(&bad, 5), want, "byte {i}");
        }
        // The final flag set or cleared on the way: refused by the tag.
        let mut bad = wire.clone();
        bad[2] ^= RECORD_FINAL;
        assert_eq!(open_all(&bad, 64), Err(RecordError::BadTag));
        let mut bad = wire.clone();
        bad[recs[0].len() + 2] ^= RECORD_FINAL;
        assert_eq!(open_all(&bad, 64), Err(RecordError::BadTag));
        // A length changed within the cap: the tag fails (or the bytes run
        // out before it, and nothing comes out).
        let mut bad = wire.clone();
        bad[4] ^= 1;
        assert_eq!(open_all(&bad, 64), Err(RecordError::BadTag));
    }

    #[test]
    fn replayed_swapped_dropped_or_foreign_records_are_refused() {
        let (recs, _) = sealed(&[10, 20, 30, 5]);
        let refused = Err(RecordError::BadTag);
        // Replayed.
        let wire = [&recs[0][..], &recs[0], &recs[1], &recs[2], &recs[3]].concat();
        assert_eq!(open_all(&wire, 9), refused);
        // Swapped.
        let wire = [&recs[0][..], &recs[2], &recs[1], &recs[3]].concat();
        assert_eq!(open_all(&wire, 9), refused);
        // Dropped.
        let wire = [&recs[0][..], &recs[2], &recs[3]].concat();
        assert_eq!(open_all(&wire, 9), refused);
        // The final record dropped: everything opens, the end is unproven.
        let wire = [&recs[0][..], &recs[1], &recs[2]].concat();
        assert!(!open_all(&wire, 9).unwrap().1);
        // Truncated inside a record: nothing of it comes out.
        let wire = recs.concat();
        let (got, closed) = open_all(&wire[..wire.len() - 1], 9).unwrap();
        assert!(!closed);
        assert_eq!(got.len(), 60);
        // Anything after the final record.
        let wire = [&recs.concat()[..], &[0]].concat();
        assert_eq!(open_all(&wire, 9), Err(RecordError::AfterFinal));
        // Sealed under another key, for another migration, or for the
        // other direction.
        let (s, d) = hellos();
        let other_key = b"another key of 16+ bytes";
        let d2 = Hello {
            nonce: [3; 16],
            ..d
        };
        for (key, dst, dir) in [
            (&other_key[..], d, S2D),
            (KEY, d2, S2D),
            (KEY, d, Direction::DestinationToSource),
        ] {
            let mut tx = Sealer::new(key, &s, &dst, dir).unwrap();
            let mut wire = Vec::new();
            tx.seal(b"pages", true, &mut wire).unwrap();
            assert_eq!(open_all(&wire, 64), refused);
        }
    }

    #[test]
    fn lengths_are_checked_before_anything_is_buffered() {
        let mut h = header(0, false);
        h[4..8].copy_from_slice(&(MAX_RECORD_PLAINTEXT as u32 + 1).to_le_bytes());
        assert_eq!(
            open_all(&h, 8),
            Err(RecordError::TooLong(MAX_RECORD_PLAINTEXT as u32 + 1))
        );
        h[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(open_all(&h, 3), Err(RecordError::TooLong(u32::MAX)));
        assert_eq!(open_all(&header(0, false), 8), Err(RecordError::Empty));
        // The sealer keeps the same rules.
        let (s, d) = hellos();
        let mut tx = Sealer::new(KEY, &s, &d, S2D).unwrap();
        let mut out = Vec::new();
        assert_eq!(
            tx.seal(&vec![0; MAX_RECORD_PLAINTEXT + 1], false, &mut out),
            Err(RecordError::TooLong(MAX_RECORD_PLAINTEXT as u32 + 1))
        );
        assert_eq!(tx.seal(&[], false, &mut out), Err(RecordError::Empty));
        assert!(out.is_empty());
        tx.seal(&[], true, &mut out).unwrap();
        assert!(tx.is_closed());
        assert_eq!(tx.seal(b"x", true, &mut out), Err(RecordError::AfterFinal));
        assert_eq!(out.len(), RECORD_HEADER_LEN + RECORD_TAG_LEN);
        // Keys are checked as the handshake's are.
        assert_eq!(
            Sealer::new(b"short", &s, &d, S2D).unwrap_err(),
            HandshakeError::ShortKey
        );
        assert_eq!(
            Opener::new(KEY, &d, &s, S2D).unwrap_err(),
            HandshakeError::UnexpectedRole
        );
    }

    #[test]
    fn errors_stick() {
        let (recs, _) = sealed(&[10, 10]);
        let (s, d) = hellos();
        let mut rx = Opener::new(KEY, &s, &d, S2D).unwrap();
        let mut bad = recs[0].clone();
        bad[12] ^= 1;
        let mut input = &bad[..];
        assert_eq!(rx.open(&mut input), Err(RecordError::BadTag));
        assert!(rx.plaintext().is_empty());
        let mut input = &recs[0][..];
        assert_eq!(rx.open(&mut input), Err(RecordError::BadTag));
    }
}
