//! depmig's delta record, [`rec::DEPMIG_DELTA_PAGES`]: pages the source
//! sent before, each carried as runs of the XOR of its new contents with
//! the contents the destination already holds for that frame (what the
//! last page record for it wrote), in the manner of QEMU's XBZRLE. Xen's
//! format has no such record; depmig sends it only when both hellos
//! agreed on [`crate::Caps::DELTA_PAGES`], and never writes it to a file.
//!
//! ```text
//! count u32 | reserved u32 (0)
//! pfn[count]       u64 each, as in PAGE_DATA; type NORMAL only
//! desc[count]      u32 each: bits 0-15 payload length, 0..=4095
//!                            bits 16-31 reserved, zero
//! payload[count]   the descriptors' lengths, back to back
//! padding to 8 bytes (not counted in the record length)
//! ```
//!
//! A payload is a sequence of pairs that together cover at most one page:
//!
//! ```text
//! pair      = zero_run literal_len literal[literal_len]
//! zero_run  = ULEB128, bytes left unchanged; 0..=4095, and 0 only in the
//!             first pair (two literals back to back are one)
//! literal_len = ULEB128, 1..=4096
//! literal   = the XOR of new and old contents over those bytes
//! ```
//!
//! ULEB128 here is at most two bytes (values up to 4096 need 13 bits) and
//! canonical: a second byte of zero is refused. The runs of a payload must
//! end at or before byte 4096; bytes after the last literal are unchanged,
//! so an empty payload is a page rewritten with what it held. A payload of
//! 4096 bytes or more is refused: the source sends such a page whole.
//!
//! The decoder turns a payload into an XOR mask of exactly one page
//! ([`decode`]); the destination XORs it into the frame ([`xor_into`]).
//! Each pair consumes at least three payload bytes, so decoding takes at
//! most 1365 steps whatever the input.
//!
//! The destination needs the frame's previous contents: a delta may only
//! follow a page record (whole or delta) that wrote that frame, with no
//! XALLOC or XTAB entry for it in between. Which pages the source keeps
//! copies of, and when it sends a delta, is its own business
//! (`depmig_migrate`'s delta cache); the record only promises the
//! destination a page it can check.

use crate::wire::{rec, PAGE_SIZE};

/// Size of one descriptor.
pub const DESC_LEN: usize = 4;
/// Largest payload of one page: a delta must be smaller than the page.
pub const MAX_PAYLOAD: usize = PAGE_SIZE - 1;
/// Bits 0–15 of a descriptor: the payload length.
pub const DESC_LEN_MASK: u32 = 0xFFFF;
/// Unchanged bytes the encoder keeps inside a literal rather than start a
/// new pair: a pair costs at least two bytes of lengths, so a gap of two
/// costs the same either way and one of three is cheaper split.
const GAP: usize = 2;

/// Why a delta payload or descriptor was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeltaError {
    /// Reserved descriptor bits are set.
    Reserved,
    /// The payload is as long as a page, or longer.
    TooLong,
    /// The payload ends inside a pair.
    Truncated,
    /// A run length is not canonical ULEB128 of at most two bytes.
    BadLength,
    /// A zero run of 0 after the first pair, or a literal of 0 bytes.
    EmptyRun,
    /// The runs go past the end of the page.
    Overflow,
}

/// The payload length a descriptor carries, checked: reserved bits zero,
/// less than a page.
pub fn desc_len(v: u32) -> Result<u16, DeltaError> {
    if v & !DESC_LEN_MASK != 0 {
        return Err(DeltaError::Reserved);
    }
    let len = (v & DESC_LEN_MASK) as u16;
    if usize::from(len) > MAX_PAYLOAD {
        return Err(DeltaError::TooLong);
    }
    Ok(len)
}

/// Writes `v` (at most 16383) as ULEB128 at `out[at..]`; the new end, or
/// `None` when it does not fit.
fn put_uleb(out: &mut [u8], at: usize, v: usize) -> Option<usize> {
    if v < 0x80 {
        *out.get_mut(at)? = v as u8;
        Some(at + 1)
    } else {
        let pair = out.get_mut(at..at + 2)?;
        pair[0] = (v as u8 & 0x7F) | 0x80;
        pair[1] = (v >> 7) as u8;
        Some(at + 2)
    }
}

/// Reads a ULEB128 run length at `p[*at..]`, canonical and at most two
/// bytes.
fn get_uleb(p: &[u8], at: &mut usize) -> Result<usize, DeltaError> {
    let b0 = *p.get(*at).ok_or(DeltaError::Truncated)?;
    if b0 & 0x80 == 0 {
        *at += 1;
        return Ok(usize::from(b0));
    }
    let b1 = *p.get(*at + 1).ok_or(DeltaError::Truncated)?;
    // A third byte, or a second byte that adds nothing.
    if b1 & 0x80 != 0 || b1 == 0 {
        return Err(DeltaError::BadLength);
    }
    *at += 2;
    Ok(usize::from(b0 & 0x7F) | (usize::from(b1) << 7))
}

/// The first index at or after `from` where `a` and `b` differ (`a.len()`
/// when none does). `a` and `b` have the same length.
fn next_diff(a: &[u8], b: &[u8], from: usize) -> usize {
    let n = a.len().min(b.len());
    let mut i = from;
    // Eight bytes at a time over the long unchanged stretches.
    while i + 8 <= n {
        let (Some(x), Some(y)) = (a.get(i..i + 8), b.get(i..i + 8)) else {
            break;
        };
        if x != y {
            break;
        }
        i += 8;
    }
    while i < n && a.get(i) == b.get(i) {
        i += 1;
    }
    i
}

/// Encodes `new` against `old` (both exactly one page) into `out`: the
/// payload's length, or `None` when it would not fit in `out` (pass the
/// room it must beat) or the pages are not one page each.
pub fn encode(new: &[u8], old: &[u8], out: &mut [u8]) -> Option<usize> {
    if new.len() != PAGE_SIZE || old.len() != PAGE_SIZE {
        return None;
    }
    let mut pos = 0;
    let mut at = 0;
    loop {
        let start = next_diff(new, old, pos);
        if start >= PAGE_SIZE {
            return Some(at);
        }
        // Extend the literal over differing bytes and gaps of up to GAP
        // unchanged ones.
        let mut last = start;
        let mut i = start + 1;
        while i < PAGE_SIZE && i - last <= GAP + 1 {
            if new.get(i) != old.get(i) {
                last = i;
            }
            i += 1;
        }
        let end = last + 1;
        at = put_uleb(out, at, start - pos)?;
        at = put_uleb(out, at, end - start)?;
        let lit = out.get_mut(at..at + (end - start))?;
        let (n, o) = (new.get(start..end)?, old.get(start..end)?);
        for ((d, &x), &y) in lit.iter_mut().zip(n).zip(o) {
            *d = x ^ y;
        }
        at += end - start;
        pos = end;
    }
}

/// Decodes `payload` into `mask` (exactly one page): the XOR to apply to
/// the frame's previous contents. Refuses anything but a well-formed
/// payload of at most one page; `mask` is all zero when it fails.
pub fn decode(payload: &[u8], mask: &mut [u8]) -> Result<(), DeltaError> {
    mask.fill(0);
    if mask.len() != PAGE_SIZE {
        return Err(DeltaError::Overflow);
    }
    if payload.len() > MAX_PAYLOAD {
        return Err(DeltaError::TooLong);
    }
    let r = decode_into(payload, mask);
    if r.is_err() {
        mask.fill(0);
    }
    r
}

fn decode_into(payload: &[u8], mask: &mut [u8]) -> Result<(), DeltaError> {
    let mut at = 0usize;
    let mut pos = 0usize;
    // Each pass consumes at least three payload bytes: bounded by the
    // payload's length.
    while at < payload.len() {
        let zero = get_uleb(payload, &mut at)?;
        let lit = get_uleb(payload, &mut at)?;
        if (zero == 0 && pos > 0) || lit == 0 {
            return Err(DeltaError::EmptyRun);
        }
        let start = pos.checked_add(zero).ok_or(DeltaError::Overflow)?;
        let end = start.checked_add(lit).ok_or(DeltaError::Overflow)?;
        if end > PAGE_SIZE {
            return Err(DeltaError::Overflow);
        }
        let src = payload.get(at..at + lit).ok_or(DeltaError::Truncated)?;
        mask.get_mut(start..end)
            .ok_or(DeltaError::Overflow)?
            .copy_from_slice(src);
        at += lit;
        pos = end;
    }
    Ok(())
}

/// `page ^= mask`, byte for byte over the shorter of the two.
pub fn xor_into(page: &mut [u8], mask: &[u8]) {
    let mut p = page.chunks_exact_mut(8);
    let mut m = mask.chunks_exact(8);
    for (a, b) in p.by_ref().zip(m.by_ref()) {
        let x = u64::from_ne_bytes(a.try_into().unwrap_or([0; 8]))
            ^ u64::from_ne_bytes(b.try_into().unwrap_or([0; 8]));
        a.copy_from_slice(&x.to_ne_bytes());
    }
    for (a, b) in p.into_remainder().iter_mut().zip(m.remainder()) {
        *a ^= b;
    }
}

/// Whether `rtype` is the delta record.
pub fn is_delta_record(rtype: u32) -> bool {
    rtype == rec::DEPMIG_DELTA_PAGES
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page_from(seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..PAGE_SIZE)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    fn round_trip(new: &[u8], old: &[u8]) -> usize {
        let mut out = vec![0u8; MAX_PAYLOAD];
        let n = encode(new, old, &mut out).expect("fits");
        let mut mask = vec![0u8; PAGE_SIZE];
        decode(&out[..n], &mut mask).unwrap();
        let mut back = old.to_vec();
        xor_into(&mut back, &mask);
        assert_eq!(back, new);
        n
    }

    #[test]
    fn small_changes_make_small_deltas() {
        let old = page_from(3);
        assert_eq!(round_trip(&old, &old), 0, "unchanged: empty");
        let mut new = old.clone();
        new[0] ^= 1;
        assert_eq!(round_trip(&new, &old), 3);
        new[4095] ^= 0xFF;
        // A second pair: zero run 4094 takes two bytes.
        assert_eq!(round_trip(&new, &old), 3 + 2 + 1 + 1);
        // Gaps of up to two unchanged bytes stay inside one literal.
        let mut new = old.clone();
        for i in [100, 103, 106] {
            new[i] ^= 0x5A;
        }
        assert_eq!(round_trip(&new, &old), 2 + 7);
        let mut new = old.clone();
        for i in [100, 104] {
            new[i] ^= 0x5A;
        }
        assert_eq!(round_trip(&new, &old), 3 + 3);
    }

    #[test]
    fn a_delta_that_does_not_fit_is_not_made() {
        let old = page_from(3);
        let new = page_from(4);
        let mut out = vec![0u8; MAX_PAYLOAD];
        assert_eq!(encode(&new, &old, &mut out), None);
        let mut near = old.clone();
        near[10] ^= 1;
        assert_eq!(encode(&near, &old, &mut out[..2]), None, "room for 2");
        assert_eq!(encode(&near, &old, &mut out[..3]), Some(3));
        assert_eq!(encode(&near[..100], &old[..100], &mut out), None);
    }

    #[test]
    fn hostile_payloads_are_refused() {
        let mut mask = vec![0u8; PAGE_SIZE];
        let mut d = |p: &[u8]| decode(p, &mut mask);
        assert_eq!(d(&[]), Ok(()));
        assert_eq!(d(&[0, 1, 9]), Ok(()));
        assert_eq!(d(&[0]), Err(DeltaError::Truncated));
        assert_eq!(d(&[0, 2, 9]), Err(DeltaError::Truncated));
        assert_eq!(d(&[0, 0]), Err(DeltaError::EmptyRun), "empty literal");
        assert_eq!(d(&[0, 1, 9, 0, 1, 9]), Err(DeltaError::EmptyRun));
        assert_eq!(d(&[0x80, 0, 1, 9]), Err(DeltaError::BadLength));
        assert_eq!(d(&[0x80, 0x80, 1]), Err(DeltaError::BadLength));
        // 4095 unchanged, then two bytes: past the page.
        assert_eq!(d(&[0xFF, 0x1F, 2, 1, 1]), Err(DeltaError::Overflow));
        assert_eq!(d(&[0xFF, 0x1F, 1, 1]), Ok(()));
        // 4096 then 1: past the page, even with no zero run.
        let mut big = vec![0x80, 0x20];
        big.resize(2 + 4096, 7);
        assert_eq!(d(&big[..]), Err(DeltaError::TooLong));
        assert_eq!(desc_len(4095), Ok(4095));
        assert_eq!(desc_len(4096), Err(DeltaError::TooLong));
        assert_eq!(desc_len(1 << 16), Err(DeltaError::Reserved));
        // A short mask is refused, never overrun.
        assert_eq!(
            decode(&[0, 1, 9], &mut [0u8; 10]),
            Err(DeltaError::Overflow)
        );
    }

    #[test]
    fn a_failed_decode_leaves_no_mask() {
        let mut mask = vec![0u8; PAGE_SIZE];
        assert_eq!(
            decode(&[0, 1, 9, 0xFF, 0x1F, 2, 1, 1], &mut mask),
            Err(DeltaError::Overflow)
        );
        assert!(mask.iter().all(|&b| b == 0));
    }
}
