//! Xen's migration stream v2 (libxc layer) for depmig: wire types, an encoder,
//! a strict incremental decoder, the libxl framing around it, and depmig's
//! authenticated handshake.
//!
//! Layouts and constants are those of Xen's `libxc-migration-stream` and
//! `libxl-migration-stream` specifications and the public headers. Every
//! multi-byte field after the image header is little-endian: depmig speaks
//! the format as x86 hosts write it and refuses big-endian images.
//!
//! The decoder ([`Decoder`]) is push/pull: feed it whatever bytes arrived
//! (a TCP segment, a pipe read) and pull [`Event`]s until it asks for more.
//! It allocates its buffers once, sized by [`Limits`], and never again,
//! whatever the input claims.
//!
//! depmig's own encodings of pages ([`packed`]: LZ4, zero pages; [`delta`]:
//! XOR runs against the page sent before) are record types of its own, agreed on in the handshake ([`Caps`]); without
//! that agreement the encoder never writes them and the decoder refuses
//! them.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod decode;
pub mod delta;
pub mod encode;
pub mod handshake;
pub mod libxl;
pub mod order;
pub mod packed;
pub mod record;
pub mod savefile;
pub mod session;
pub mod wire;

pub use decode::{DecodeError, Decoder, Event, Limits, Record};
pub use encode::{ByteSink, EncodeError, Encoder, SinkFull};
pub use handshake::{
    check_reply_tag, check_verify_tag, key_confirmation, negotiated, negotiated_delta, reply_tag,
    sealed, verify_key_confirmation, verify_tag, Caps, Direction, HandshakeError, Hello, Role,
    TranscriptMac, CONFIRM_LEN, FLAG_VERIFY, REPLY_TAG_LEN, VERIFY_TAG_LEN,
};
pub use libxl::{LibxlError, RoundCounter, RoundTally, XlEvent, XlStreamScanner};
pub use order::{OrderChecker, OrderError};
pub use packed::{Codec, PageTally};
pub use record::{Opener, RecordError, Sealer, MAX_RECORD_PLAINTEXT};
pub use savefile::{Format as SaveFormat, Prefix as SavePrefix, SaveFileError};
pub use session::{Authenticated, Receiver, RxError, RxEvent};
pub use wire::*;
