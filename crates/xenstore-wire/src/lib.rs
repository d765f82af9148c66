//! xenstore wire protocol: message codec and ring arithmetic, no_std.
//!
//! A xenstore message is a 16-byte header (`xsd_sockmsg`: type, request id,
//! transaction id, payload length, all little-endian `u32`) followed by at
//! most [`PAYLOAD_MAX`] bytes of payload, usually NUL-terminated strings. A
//! guest exchanges messages with xenstored over two 1 KiB rings in one shared
//! page, so a message larger than the free space of a ring travels in
//! several pieces; [`Assembler`] rebuilds messages from arbitrary pieces and
//! [`ring`] computes the contiguous spans to copy.
//!
//! Everything read from the ring is hostile: decoding never panics and every
//! violation is a typed [`WireError`].
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

pub mod message;
pub mod ring;

pub use message::{
    parse_reply, Assembler, Header, MsgType, Reply, Request, WatchEvent, WireError, XsError,
    HEADER_LEN, PAYLOAD_MAX,
};
