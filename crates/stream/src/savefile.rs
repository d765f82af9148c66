//! The save file around a libxc stream: either the plain libxc stream
//! (image header through END), or xl's own save-file format, which stock
//! `xl restore FILE` reads.
//!
//! ```text
//! xl save file (x86, so the xl header's words are little-endian):
//!   magic "Xen saved domain, xl format\n \0 \r"          32
//!   byteorder 0x01020304, mandatory flags, optional flags,
//!   optional data length                                   4 x u32
//!   optional data: config length u32 | config              (xl config text)
//!   libxl header: ident "LibxlFmt" u64 BE, version 2 u32 BE, options u32 BE
//!   libxl record LIBXC_CONTEXT (type 1, length 0)          8
//!   libxc stream: image header ... END
//!   libxl record END (type 0, length 0)                    8
//! ```
//!
//! The mandatory flags say `STREAMv2` (the libxl stream above) and, when
//! the config is libxl's JSON rather than xl config text, `JSON`; depmig
//! writes config text, which `xl restore` parses as it parses a config
//! file. A PVH guest has no device model, so no emulator record sits
//! between libxc's END and libxl's; depmig refuses a file that has one.
//!
//! [`parse_prefix`] finds where the libxc stream starts in either format;
//! the stream itself is checked by the strict [`crate::Decoder`], and what
//! follows its END by [`check_tail`].
//!
//! PANICS: `le32`/`be32` index a slice taken with `get(at..at + 4)`, four
//! bytes long.

use alloc::vec::Vec;

use crate::libxl::{librec, LIBXL_IDENT, LIBXL_VERSION};
use crate::wire::IHDR_MARKER;

/// Magic of xl's save-file header.
pub const XL_MAGIC: [u8; 32] = *b"Xen saved domain, xl format\n \0 \r";
/// xl header's byte-order word, as the saving host wrote it.
pub const XL_BYTEORDER: u32 = 0x0102_0304;
/// xl mandatory flag: the config is libxl's JSON.
pub const XL_FLAG_JSON: u32 = 1 << 0;
/// xl mandatory flag: the stream is libxl's v2.
pub const XL_FLAG_STREAM_V2: u32 = 1 << 1;
/// Size of xl's fixed header.
pub const XL_HEADER_LEN: usize = 48;
/// Size of the libxl stream header.
pub const LIBXL_HEADER_LEN: usize = 16;
/// Size of a libxl record header.
pub const LIBXL_RECORD_HEADER_LEN: usize = 8;
/// Largest optional data accepted (the config): xl configs are small.
pub const MAX_OPTIONAL_DATA: u32 = 1 << 20;
/// libxl's END record, the last bytes of an xl save file.
pub const LIBXL_END_RECORD: [u8; 8] = [0; 8];

/// What a save file is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// The libxc stream alone.
    Libxc,
    /// xl's save file around a libxl stream.
    Xl,
}

/// Where the parts of a save file are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Prefix {
    /// The file's format.
    pub format: Format,
    /// Offset of the libxc stream's image header.
    pub libxc_offset: u64,
    /// The config the xl header carries (offset, length), if any.
    pub config: Option<(u64, u32)>,
    /// Whether that config is libxl's JSON (else xl config text).
    pub config_json: bool,
}

/// Why a save file was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SaveFileError {
    /// The file ends inside its headers.
    Truncated,
    /// Neither a libxc image header nor xl's save-file magic.
    UnknownFormat,
    /// The xl header's byte-order word is not this host's.
    ByteOrder(u32),
    /// The xl header has mandatory flags this reader does not know, or
    /// lacks `STREAMv2` (a legacy stream).
    MandatoryFlags(u32),
    /// The optional data is longer than [`MAX_OPTIONAL_DATA`].
    OptionalDataTooLong(u32),
    /// The optional data does not hold the config length it claims.
    BadOptionalData,
    /// The libxl header's ident is not "LibxlFmt".
    LibxlIdent,
    /// The libxl stream is not version 2.
    LibxlVersion(u32),
    /// The libxl header's options are set (big-endian or legacy stream).
    LibxlOptions(u32),
    /// The first libxl record is not an empty LIBXC_CONTEXT.
    NoLibxcContext {
        /// Its type.
        rtype: u32,
        /// Its length.
        len: u32,
    },
    /// After libxc's END: not exactly libxl's END record (an emulator
    /// record, a checkpoint, or trailing bytes).
    BadTail,
}

fn le32(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at + 4)?;
    Some(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at + 4)?;
    Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

/// Writes xl's save-file header with `config` (xl config text) as its
/// optional data, the libxl header and the LIBXC_CONTEXT record: what goes
/// before the libxc stream. [`LIBXL_END_RECORD`] goes after it.
pub fn xl_prefix(config: &[u8]) -> Vec<u8> {
    let config_len = u32::try_from(config.len()).unwrap_or(u32::MAX);
    let optional = config_len.saturating_add(4);
    let mut out = Vec::with_capacity(
        XL_HEADER_LEN + optional as usize + LIBXL_HEADER_LEN + LIBXL_RECORD_HEADER_LEN,
    );
    out.extend_from_slice(&XL_MAGIC);
    for w in [XL_BYTEORDER, XL_FLAG_STREAM_V2, 0, optional] {
        out.extend_from_slice(&w.to_le_bytes());
    }
    out.extend_from_slice(&config_len.to_le_bytes());
    out.extend_from_slice(config.get(..config_len as usize).unwrap_or(config));
    out.extend_from_slice(&LIBXL_IDENT.to_be_bytes());
    out.extend_from_slice(&LIBXL_VERSION.to_be_bytes());
    out.extend_from_slice(&0u32.to_be_bytes());
    out.extend_from_slice(&librec::LIBXC_CONTEXT.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out
}

/// How many bytes [`parse_prefix`] may need: the xl header, then its
/// optional data, then the libxl header and first record.
pub fn prefix_need(head: &[u8]) -> usize {
    match le32(head, 44) {
        Some(opt) if head.starts_with(&XL_MAGIC) => XL_HEADER_LEN
            .saturating_add(opt.min(MAX_OPTIONAL_DATA) as usize)
            .saturating_add(LIBXL_HEADER_LEN + LIBXL_RECORD_HEADER_LEN),
        _ => XL_HEADER_LEN,
    }
}

/// Finds where the libxc stream starts in `head`, the first bytes of a
/// save file (at least [`prefix_need`] of them, or the whole file).
pub fn parse_prefix(head: &[u8]) -> Result<Prefix, SaveFileError> {
    if head.len() >= 8 && head.get(..8) == Some(&IHDR_MARKER.to_be_bytes()[..]) {
        return Ok(Prefix {
            format: Format::Libxc,
            libxc_offset: 0,
            config: None,
            config_json: false,
        });
    }
    if !head.starts_with(&XL_MAGIC) {
        return Err(
            if head.len() < XL_MAGIC.len() && XL_MAGIC.starts_with(head) {
                SaveFileError::Truncated
            } else {
                SaveFileError::UnknownFormat
            },
        );
    }
    let word = |at| le32(head, at).ok_or(SaveFileError::Truncated);
    let order = word(32)?;
    if order != XL_BYTEORDER {
        return Err(SaveFileError::ByteOrder(order));
    }
    let mandatory = word(36)?;
    if mandatory & !(XL_FLAG_JSON | XL_FLAG_STREAM_V2) != 0 || mandatory & XL_FLAG_STREAM_V2 == 0 {
        return Err(SaveFileError::MandatoryFlags(mandatory));
    }
    let optional = word(44)?;
    if optional > MAX_OPTIONAL_DATA {
        return Err(SaveFileError::OptionalDataTooLong(optional));
    }
    let config = if optional == 0 {
        None
    } else {
        if optional < 4 {
            return Err(SaveFileError::BadOptionalData);
        }
        let len = word(XL_HEADER_LEN)?;
        if len > optional - 4 {
            return Err(SaveFileError::BadOptionalData);
        }
        Some(((XL_HEADER_LEN + 4) as u64, len))
    };
    let at = XL_HEADER_LEN + optional as usize;
    let ident = head
        .get(at..at + 8)
        .ok_or(SaveFileError::Truncated)?
        .try_into()
        .map(u64::from_be_bytes)
        .map_err(|_| SaveFileError::Truncated)?;
    if ident != LIBXL_IDENT {
        return Err(SaveFileError::LibxlIdent);
    }
    let version = be32(head, at + 8).ok_or(SaveFileError::Truncated)?;
    if version != LIBXL_VERSION {
        return Err(SaveFileError::LibxlVersion(version));
    }
    let options = be32(head, at + 12).ok_or(SaveFileError::Truncated)?;
    if options != 0 {
        return Err(SaveFileError::LibxlOptions(options));
    }
    let rec = at + LIBXL_HEADER_LEN;
    let rtype = le32(head, rec).ok_or(SaveFileError::Truncated)?;
    let len = le32(head, rec + 4).ok_or(SaveFileError::Truncated)?;
    if rtype != librec::LIBXC_CONTEXT || len != 0 {
        return Err(SaveFileError::NoLibxcContext { rtype, len });
    }
    Ok(Prefix {
        format: Format::Xl,
        libxc_offset: (rec + LIBXL_RECORD_HEADER_LEN) as u64,
        config,
        config_json: mandatory & XL_FLAG_JSON != 0,
    })
}

/// Checks what follows libxc's END: nothing in a libxc file, exactly
/// libxl's END record in an xl file.
pub fn check_tail(format: Format, tail: &[u8]) -> Result<(), SaveFileError> {
    let ok = match format {
        Format::Libxc => tail.is_empty(),
        Format::Xl => tail == LIBXL_END_RECORD,
    };
    if ok {
        Ok(())
    } else {
        Err(SaveFileError::BadTail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_xl_prefix_parses_back_with_its_config() {
        let cfg = b"name = \"g\"\ntype = \"pvh\"\n";
        let mut f = xl_prefix(cfg);
        assert_eq!(prefix_need(&f), f.len());
        let p = parse_prefix(&f).unwrap();
        assert_eq!(p.format, Format::Xl);
        assert_eq!(p.libxc_offset, f.len() as u64);
        let (at, len) = p.config.unwrap();
        assert_eq!(&f[at as usize..][..len as usize], cfg);
        assert!(!p.config_json);
        f.extend_from_slice(&IHDR_MARKER.to_be_bytes());
        assert_eq!(parse_prefix(&f).unwrap().libxc_offset, p.libxc_offset);
    }

    #[test]
    fn a_libxc_stream_starts_at_zero() {
        let p = parse_prefix(&IHDR_MARKER.to_be_bytes()).unwrap();
        assert_eq!(p.format, Format::Libxc);
        assert_eq!(p.libxc_offset, 0);
    }

    #[test]
    fn every_damaged_header_is_refused() {
        let good = xl_prefix(b"x");
        assert_eq!(parse_prefix(b"hello"), Err(SaveFileError::UnknownFormat));
        assert_eq!(parse_prefix(&good[..10]), Err(SaveFileError::Truncated));
        for cut in 32..good.len() {
            assert_eq!(
                parse_prefix(&good[..cut]),
                Err(SaveFileError::Truncated),
                "cut at {cut}"
            );
        }
        let patch = |at: usize, v: &[u8]| {
            let mut b = good.clone();
            b[at..at + v.len()].copy_from_slice(v);
            parse_prefix(&b)
        };
        assert_eq!(
            patch(32, &0x0403_0201u32.to_le_bytes()),
            Err(SaveFileError::ByteOrder(0x0403_0201))
        );
        assert_eq!(
            patch(36, &0u32.to_le_bytes()),
            Err(SaveFileError::MandatoryFlags(0))
        );
        assert_eq!(
            patch(36, &6u32.to_le_bytes()),
            Err(SaveFileError::MandatoryFlags(6))
        );
        assert_eq!(
            patch(44, &(MAX_OPTIONAL_DATA + 1).to_le_bytes()),
            Err(SaveFileError::OptionalDataTooLong(MAX_OPTIONAL_DATA + 1))
        );
        assert_eq!(
            patch(48, &9u32.to_le_bytes()),
            Err(SaveFileError::BadOptionalData)
        );
        assert_eq!(patch(53, b"X"), Err(SaveFileError::LibxlIdent));
        assert_eq!(
            patch(61, &3u32.to_be_bytes()),
            Err(SaveFileError::LibxlVersion(3))
        );
        assert_eq!(
            patch(65, &1u32.to_be_bytes()),
            Err(SaveFileError::LibxlOptions(1))
        );
        assert_eq!(
            patch(69, &2u32.to_le_bytes()),
            Err(SaveFileError::NoLibxcContext { rtype: 2, len: 0 })
        );
    }

    #[test]
    fn the_tail_is_exactly_libxl_end() {
        assert_eq!(check_tail(Format::Xl, &LIBXL_END_RECORD), Ok(()));
        assert_eq!(check_tail(Format::Libxc, &[]), Ok(()));
        assert_eq!(check_tail(Format::Xl, &[]), Err(SaveFileError::BadTail));
        assert_eq!(check_tail(Format::Libxc, &[0]), Err(SaveFileError::BadTail));
        let mut emu = LIBXL_END_RECORD.to_vec();
        emu[0] = 3;
        assert_eq!(check_tail(Format::Xl, &emu), Err(SaveFileError::BadTail));
    }
}
