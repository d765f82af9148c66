//! The destination's answer after the stream: `DMACK\0\0\0` when
//! everything was applied, `DMNAK` and a 3-byte ASCII code otherwise; on
//! the wire followed by its tag ([`sign`], [`open`]:
//! `depmig_stream::reply_tag`, HMAC-SHA256 under the shared key over both
//! hellos and the reply), so that nobody on the path can turn a refusal
//! into an acknowledgement (which would let the source commit, and dom0
//! destroy the only good copy) or forge a refusal.
//!
//! ```text
//! reply (8) || HMAC-SHA256(key, "depmig reply destination->source v1\0"
//!                          || hello_s || hello_d || 8u64 LE || reply)  (32)
//! ```

use depmig_stream::{check_reply_tag, reply_tag, HandshakeError, Hello, REPLY_TAG_LEN};

/// Size of a reply, without its tag.
pub const REPLY_LEN: usize = 8;
/// Size of a reply on the wire: the reply and its tag.
pub const SIGNED_REPLY_LEN: usize = REPLY_LEN + REPLY_TAG_LEN;
/// The acknowledgement: the shell holds the complete, authentic guest.
pub const ACK: [u8; REPLY_LEN] = *b"DMACK\0\0\0";
/// Prefix of a refusal; a 3-byte code follows.
pub const NAK_PREFIX: [u8; 5] = *b"DMNAK";

/// Why the destination refused, as carried in a NAK.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NakCode {
    /// `HEL`: the hello was refused (not a depmig source, wrong version or role).
    Hello,
    /// `AUT`: the trailer's tag or length did not match (wrong key, tampering).
    Auth,
    /// `DEC`: the stream was malformed, out of order or over a cap.
    Decode,
    /// `PFN`: a pfn beyond the shell's address space.
    Pfn,
    /// `UNS`: a record or page type depmig's destination does not take.
    Unsupported,
    /// `MIS`: TSC info or HVM parameters missing.
    Missing,
    /// `PAR`: an HVM parameter that may not be set, or the shell's ring
    /// frames differ from the guest's.
    Param,
    /// `MEM`: populating or writing the shell's memory failed.
    Memory,
    /// `APL`: applying the TSC, parameters or context failed.
    Apply,
    /// `INT`: the destination's own failure (configuration, transport).
    Internal,
    /// `VER`: page verification found the shell's pages differ from the
    /// guest's.
    Verify,
    /// A code this version does not know.
    Other([u8; 3]),
}

impl NakCode {
    /// The wire code.
    pub fn to_bytes(self) -> [u8; 3] {
        match self {
            NakCode::Hello => *b"HEL",
            NakCode::Auth => *b"AUT",
            NakCode::Decode => *b"DEC",
            NakCode::Pfn => *b"PFN",
            NakCode::Unsupported => *b"UNS",
            NakCode::Missing => *b"MIS",
            NakCode::Param => *b"PAR",
            NakCode::Memory => *b"MEM",
            NakCode::Apply => *b"APL",
            NakCode::Internal => *b"INT",
            NakCode::Verify => *b"VER",
            NakCode::Other(b) => b,
        }
    }

    /// Parses a wire code; unknown codes are kept as [`NakCode::Other`].
    pub fn from_bytes(b: [u8; 3]) -> Self {
        match &b {
            b"HEL" => NakCode::Hello,
            b"AUT" => NakCode::Auth,
            b"DEC" => NakCode::Decode,
            b"PFN" => NakCode::Pfn,
            b"UNS" => NakCode::Unsupported,
            b"MIS" => NakCode::Missing,
            b"PAR" => NakCode::Param,
            b"MEM" => NakCode::Memory,
            b"APL" => NakCode::Apply,
            b"INT" => NakCode::Internal,
            b"VER" => NakCode::Verify,
            _ => NakCode::Other(b),
        }
    }
}

/// A NAK on the wire.
pub fn nak(code: NakCode) -> [u8; REPLY_LEN] {
    let c = code.to_bytes();
    let p = NAK_PREFIX;
    // PANICS: constant indices into fixed-size arrays, checked at compile time.
    [p[0], p[1], p[2], p[3], p[4], c[0], c[1], c[2]]
}

/// A parsed reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reply {
    /// `DMACK\0\0\0`.
    Ack,
    /// `DMNAK` + code.
    Nak(NakCode),
    /// Anything else.
    Garbage([u8; REPLY_LEN]),
}

/// Parses the destination's reply.
pub fn parse(b: [u8; REPLY_LEN]) -> Reply {
    if b == ACK {
        return Reply::Ack;
    }
    let [a0, a1, a2, a3, a4, c0, c1, c2] = b;
    if [a0, a1, a2, a3, a4] == NAK_PREFIX {
        return Reply::Nak(NakCode::from_bytes([c0, c1, c2]));
    }
    Reply::Garbage(b)
}

/// `reply` with its tag, as the destination sends it; `source` and
/// `destination` are the hellos as sent (the destination's answer).
pub fn sign(
    reply: [u8; REPLY_LEN],
    key: &[u8],
    source: &Hello,
    destination: &Hello,
) -> Result<[u8; SIGNED_REPLY_LEN], HandshakeError> {
    let tag = reply_tag(key, source, destination, &reply)?;
    let mut out = [0u8; SIGNED_REPLY_LEN];
    let (r, t) = out.split_at_mut(REPLY_LEN);
    r.copy_from_slice(&reply);
    t.copy_from_slice(&tag);
    Ok(out)
}

/// Checks a reply's tag and parses it: a reply whose tag fails is
/// refused whatever it says ([`HandshakeError::BadTag`]).
pub fn open(
    b: &[u8; SIGNED_REPLY_LEN],
    key: &[u8],
    source: &Hello,
    destination: &Hello,
) -> Result<Reply, HandshakeError> {
    let (r, t) = b.split_at(REPLY_LEN);
    check_reply_tag(key, source, destination, r, t)?;
    let mut reply = [0u8; REPLY_LEN];
    reply.copy_from_slice(r);
    Ok(parse(reply))
}

#[cfg(test)]
mod tests {
    use super::*;
    use depmig_stream::{Caps, Role};

    #[test]
    fn replies_are_signed_and_checked() {
        let key = b"sixteen byte key, or more";
        let s = Hello {
            role: Role::Source,
            nonce: [1; 16],
            verify: false,
            caps: Caps::NONE,
        };
        let d = Hello {
            role: Role::Destination,
            nonce: [2; 16],
            verify: false,
            caps: Caps::NONE,
        };
        let ack = sign(ACK, key, &s, &d).unwrap();
        assert_eq!(&ack[..REPLY_LEN], &ACK);
        assert_eq!(open(&ack, key, &s, &d), Ok(Reply::Ack));
        let refused = Err(HandshakeError::BadTag);
        // A NAK turned into an ACK on the way, keeping the NAK's tag.
        let mut forged = sign(nak(NakCode::Auth), key, &s, &d).unwrap();
        forged[..REPLY_LEN].copy_from_slice(&ACK);
        assert_eq!(open(&forged, key, &s, &d), refused);
        // A bare ACK with any tag, another key, another migration.
        let mut bare = [0u8; SIGNED_REPLY_LEN];
        bare[..REPLY_LEN].copy_from_slice(&ACK);
        assert_eq!(open(&bare, key, &s, &d), refused);
        assert_eq!(open(&ack, b"another key of 16+ bytes", &s, &d), refused);
        let d2 = Hello {
            nonce: [3; 16],
            ..d
        };
        assert_eq!(open(&ack, key, &s, &d2), refused);
        let mut flipped = ack;
        flipped[SIGNED_REPLY_LEN - 1] ^= 1;
        assert_eq!(open(&flipped, key, &s, &d), refused);
        // A signed NAK reads back with its code.
        let n = sign(nak(NakCode::Verify), key, &s, &d).unwrap();
        assert_eq!(open(&n, key, &s, &d), Ok(Reply::Nak(NakCode::Verify)));
    }

    #[test]
    fn replies_round_trip() {
        assert_eq!(parse(ACK), Reply::Ack);
        for c in [
            NakCode::Hello,
            NakCode::Auth,
            NakCode::Decode,
            NakCode::Pfn,
            NakCode::Unsupported,
            NakCode::Missing,
            NakCode::Param,
            NakCode::Memory,
            NakCode::Apply,
            NakCode::Internal,
            NakCode::Verify,
            NakCode::Other(*b"xyz"),
        ] {
            assert_eq!(parse(nak(c)), Reply::Nak(c));
        }
        assert_eq!(&nak(NakCode::Auth), b"DMNAKAUT");
        assert_eq!(&nak(NakCode::Verify), b"DMNAKVER");
        assert_eq!(parse(*b"DMACK\0\0\x01"), Reply::Garbage(*b"DMACK\0\0\x01"));
    }
}
