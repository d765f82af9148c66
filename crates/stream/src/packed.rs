//! depmig's own page record, [`rec::DEPMIG_PACKED_PAGES`]: a PAGE_DATA
//! whose pages each travel raw, LZ4-compressed, or as "all zero" with no
//! data at all. Xen's format has no such record; depmig sends it only when
//! both hellos agreed on [`Codec::Lz4`], and never writes it to a file.
//!
//! ```text
//! count u32 | reserved u32 (0)
//! pfn[count]       u64 each, exactly as in PAGE_DATA
//! desc[n_data]     u32 each, one per entry whose type carries data:
//!                    bits  0-15  payload length
//!                    bits 16-23  encoding: 0 raw (length 4096),
//!                                1 LZ4 block (length 1..=4095),
//!                                2 zero page (length 0)
//!                    bits 24-31  reserved, zero
//! payload[n_data]  the descriptors' lengths, back to back
//! padding to 8 bytes (not counted in the record length)
//! ```
//!
//! Pages are compressed one by one, not the record as a whole: the
//! decoder then holds at most one compressed page (4095 bytes) and one
//! output page whatever the record's size, as it does for PAGE_DATA, and
//! a page that does not shrink costs only its descriptor. `depmig-bench`
//! prints both ways: on its synthetic pages one LZ4 block per 64-page
//! record came to 0.385 of the raw size against 0.402 per page (mixed
//! pages; text 0.392 against 0.466, sparse 0.131 against 0.141), at about
//! the same compression speed, while needing a 256 KiB buffer on each side
//! and the whole record before the first page could be written.
//!
//! An LZ4 payload is an LZ4 *block* (no frame, no size prefix); it must
//! decompress to exactly one page, and a page that would not shrink must be
//! sent raw, so an LZ4 payload of 4096 bytes or more is refused.

use crate::wire::{rec, PAGE_SIZE};

/// How pages travel, as agreed in the handshake.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Codec {
    /// Xen's PAGE_DATA, every page as it is: what a peer that did not
    /// agree on anything else gets, and what save files hold.
    #[default]
    Raw,
    /// [`rec::DEPMIG_PACKED_PAGES`] with LZ4 blocks and zero pages.
    Lz4,
}

impl Codec {
    /// The name reports and the CLI use.
    pub fn as_str(self) -> &'static str {
        match self {
            Codec::Raw => "none",
            Codec::Lz4 => "lz4",
        }
    }
}

/// Encoding of one page in a packed record (bits 16–23 of its descriptor).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PageEncoding {
    /// The page as it is, 4096 bytes.
    Raw,
    /// An LZ4 block of fewer than 4096 bytes that decompresses to the page.
    Lz4,
    /// Every byte is zero; no payload.
    Zero,
}

/// Bits 0–15 of a descriptor: the payload length.
pub const DESC_LEN_MASK: u32 = 0xFFFF;
/// Bits 16–23 of a descriptor hold the encoding.
pub const DESC_ENCODING_SHIFT: u32 = 16;
/// Bits 24–31 of a descriptor: reserved, zero.
pub const DESC_RESERVED_MASK: u32 = 0xFF00_0000;
/// Size of one descriptor.
pub const DESC_LEN: usize = 4;
/// Largest payload of a page: a raw page.
pub const MAX_PAYLOAD: usize = PAGE_SIZE;
/// Buffer size [`compress_page`] needs for its output.
pub const COMPRESS_BOUND: usize = lz4_flex::block::get_maximum_output_size(PAGE_SIZE);

/// A checked descriptor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PageDesc {
    /// How the page is encoded.
    pub encoding: PageEncoding,
    /// Payload bytes that follow for it.
    pub len: u16,
}

/// Why a descriptor was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DescError {
    /// Bits 24–31 are set.
    Reserved,
    /// An unknown encoding, or a length the encoding does not allow.
    Invalid,
}

impl PageDesc {
    /// The wire form.
    pub fn to_u32(self) -> u32 {
        let e: u32 = match self.encoding {
            PageEncoding::Raw => 0,
            PageEncoding::Lz4 => 1,
            PageEncoding::Zero => 2,
        };
        (e << DESC_ENCODING_SHIFT) | u32::from(self.len)
    }

    /// Parses and checks the wire form: reserved bits zero, raw pages 4096
    /// bytes, zero pages none, LZ4 pages 1 to 4095.
    pub fn from_u32(v: u32) -> Result<PageDesc, DescError> {
        if v & DESC_RESERVED_MASK != 0 {
            return Err(DescError::Reserved);
        }
        let len = (v & DESC_LEN_MASK) as usize;
        let encoding = match (v >> DESC_ENCODING_SHIFT) & 0xFF {
            0 if len == PAGE_SIZE => PageEncoding::Raw,
            1 if (1..PAGE_SIZE).contains(&len) => PageEncoding::Lz4,
            2 if len == 0 => PageEncoding::Zero,
            _ => return Err(DescError::Invalid),
        };
        Ok(PageDesc {
            encoding,
            len: len as u16,
        })
    }
}

/// Pages of each encoding and the payload bytes of depmig's own records
/// (packed and delta; Xen's PAGE_DATA is not counted), counted by the
/// encoder (what it sent) and the decoder (what it accepted).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PageTally {
    /// Pages sent raw (they did not shrink).
    pub raw: u64,
    /// Pages sent as LZ4 blocks.
    pub lz4: u64,
    /// Pages sent as zero pages.
    pub zero: u64,
    /// Pages sent as deltas ([`crate::delta`]).
    pub delta: u64,
    /// Payload bytes of all of them (descriptors and pfns excluded).
    pub payload_bytes: u64,
}

impl PageTally {
    /// Counts one page.
    pub fn add(&mut self, d: PageDesc) {
        match d.encoding {
            PageEncoding::Raw => self.raw += 1,
            PageEncoding::Lz4 => self.lz4 += 1,
            PageEncoding::Zero => self.zero += 1,
        }
        self.payload_bytes += u64::from(d.len);
    }

    /// What was counted since `earlier`, a reading of the same tally.
    pub fn since(self, earlier: PageTally) -> PageTally {
        PageTally {
            raw: self.raw.saturating_sub(earlier.raw),
            lz4: self.lz4.saturating_sub(earlier.lz4),
            zero: self.zero.saturating_sub(earlier.zero),
            delta: self.delta.saturating_sub(earlier.delta),
            payload_bytes: self.payload_bytes.saturating_sub(earlier.payload_bytes),
        }
    }

    /// Pages counted.
    pub fn pages(&self) -> u64 {
        self.raw + self.lz4 + self.zero + self.delta
    }
}

/// Whether every byte of `page` is zero.
pub fn is_zero(page: &[u8]) -> bool {
    // Eight bytes at a time: this runs over every page sent.
    let mut chunks = page.chunks_exact(8);
    let words_zero = chunks
        .by_ref()
        .all(|c| u64::from_ne_bytes(c.try_into().unwrap_or([1; 8])) == 0);
    words_zero && chunks.remainder().iter().all(|&b| b == 0)
}

/// Encodes one page: zero, LZ4 when that is shorter than the page, raw
/// otherwise. `out` must hold [`COMPRESS_BOUND`] bytes; on return its first
/// `len` bytes are the LZ4 payload when the encoding is LZ4 (raw and zero
/// pages leave it unused: the caller sends the page itself, or nothing).
pub fn compress_page(page: &[u8], out: &mut [u8]) -> PageDesc {
    if page.len() != PAGE_SIZE {
        // Not a page: the caller's bug; sent raw, its length is checked
        // by the encoder before anything is written.
        return PageDesc {
            encoding: PageEncoding::Raw,
            len: PAGE_SIZE as u16,
        };
    }
    if is_zero(page) {
        return PageDesc {
            encoding: PageEncoding::Zero,
            len: 0,
        };
    }
    match lz4_flex::block::compress_into(page, out) {
        Ok(n) if (1..PAGE_SIZE).contains(&n) => PageDesc {
            encoding: PageEncoding::Lz4,
            len: n as u16,
        },
        // Did not shrink, or `out` too small: raw is always correct.
        _ => PageDesc {
            encoding: PageEncoding::Raw,
            len: PAGE_SIZE as u16,
        },
    }
}

/// Decompresses one LZ4 payload into `page` (exactly [`PAGE_SIZE`]
/// bytes); `false` when the block is malformed or does not make exactly
/// one page. Nothing is written outside `page`.
pub fn decompress_page(payload: &[u8], page: &mut [u8]) -> bool {
    page.len() == PAGE_SIZE
        && matches!(lz4_flex::block::decompress_into(payload, page), Ok(n) if n == PAGE_SIZE)
}

/// Whether `rtype` lies in depmig's block of record types.
pub fn is_depmig_extension(rtype: u32) -> bool {
    (rec::DEPMIG_EXT_FIRST..=rec::DEPMIG_EXT_LAST).contains(&rtype)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptors_round_trip_and_refuse_what_they_must() {
        for d in [
            PageDesc {
                encoding: PageEncoding::Raw,
                len: 4096,
            },
            PageDesc {
                encoding: PageEncoding::Lz4,
                len: 1,
            },
            PageDesc {
                encoding: PageEncoding::Lz4,
                len: 4095,
            },
            PageDesc {
                encoding: PageEncoding::Zero,
                len: 0,
            },
        ] {
            assert_eq!(PageDesc::from_u32(d.to_u32()), Ok(d));
        }
        assert_eq!(
            PageDesc::from_u32(4095),
            Err(DescError::Invalid),
            "short raw"
        );
        assert_eq!(
            PageDesc::from_u32(1 << 16),
            Err(DescError::Invalid),
            "empty lz4"
        );
        assert_eq!(
            PageDesc::from_u32((1 << 16) | 4096),
            Err(DescError::Invalid),
            "lz4 that did not shrink"
        );
        assert_eq!(PageDesc::from_u32((2 << 16) | 1), Err(DescError::Invalid));
        assert_eq!(PageDesc::from_u32(3 << 16), Err(DescError::Invalid));
        assert_eq!(
            PageDesc::from_u32((1 << 24) | 4096),
            Err(DescError::Reserved)
        );
    }

    #[test]
    fn pages_pick_their_encoding() {
        let mut out = [0u8; COMPRESS_BOUND];
        let zero = [0u8; PAGE_SIZE];
        assert_eq!(compress_page(&zero, &mut out).encoding, PageEncoding::Zero);
        let mut one = zero;
        one[4095] = 1;
        let d = compress_page(&one, &mut out);
        assert_eq!(d.encoding, PageEncoding::Lz4);
        let mut back = [0xAAu8; PAGE_SIZE];
        assert!(decompress_page(&out[..d.len as usize], &mut back));
        assert_eq!(back, one);
        // xorshift noise does not shrink.
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let noise: Vec<u8> = (0..PAGE_SIZE)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        assert_eq!(compress_page(&noise, &mut out).encoding, PageEncoding::Raw);
    }

    #[test]
    fn decompression_makes_exactly_one_page() {
        let mut out = [0u8; COMPRESS_BOUND];
        let half: Vec<u8> = (0..PAGE_SIZE / 2).map(|i| (i % 7) as u8).collect();
        let n = lz4_flex::block::compress_into(&half, &mut out).unwrap();
        let mut page = [0u8; PAGE_SIZE];
        assert!(!decompress_page(&out[..n], &mut page), "half a page");
        let double: Vec<u8> = (0..PAGE_SIZE * 2).map(|i| (i % 7) as u8).collect();
        let mut big = vec![0u8; lz4_flex::block::get_maximum_output_size(double.len())];
        let n = lz4_flex::block::compress_into(&double, &mut big).unwrap();
        assert!(!decompress_page(&big[..n], &mut page), "two pages");
        assert!(!decompress_page(&[0xF0, 1, 2], &mut page), "garbage");
        assert!(!decompress_page(&[], &mut page), "empty");
        assert!(
            !decompress_page(&big[..n], &mut page[..100]),
            "short output"
        );
    }
}
