//! The contract between dom0 (`depmig migrate`, tools/depmig) and the
//! appliances it arms (appliance/src/migrate), defined once and built into
//! both ends: the xenstore keys, the text of every value, and their parsers.
//!
//! dom0 writes an appliance's configuration into the appliance's xenstore
//! home (`/local/domain/<id>/`, readable but not writable by the appliance),
//! then `go`; the appliance publishes its progress next to it (dom0 opens
//! `depmig/migrate/` for the appliance's own nodes). Every key, relative to
//! that home ([`keys`]):
//!
//! | key | written by | value |
//! | --- | --- | --- |
//! | `depmig/net/ip`, `depmig/net/prefix` | dom0 (source, destination) | [`addr::parse_ipv4`], [`addr::parse_prefix`] |
//! | `depmig/migrate/role` | dom0 | [`Role`] |
//! | `…/guest` | dom0 | the guest (source, resume) or the shell (destination): [`addr::parse_domid`] |
//! | `…/peer` | dom0 (source) | the destination's [`addr::Peer`], `IP:PORT` |
//! | `…/port` | dom0 (destination) | [`addr::parse_port`] |
//! | `…/key` | dom0 (source, destination) | the shared HMAC key, 64 hex digits ([`hexkey`]) |
//! | `…/mode`, `…/policy` | dom0 | [`Mode`], [`Policy`] (absent: their defaults) |
//! | `…/fault` | dom0 (source or destination, tests only) | [`Fault`] |
//! | `…/verify` | dom0 (source, destination) | [`Verify`] (absent: off) |
//! | `…/compress` | dom0 (source, destination) | [`Compress`] (absent: none) |
//! | `…/encrypt` | dom0 (source, destination) | [`Encrypt`] (absent: on) |
//! | `…/bitmap-route`, `…/bitmap-reply` | dom0 (source) | [`bitmap_route`] |
//! | `…/workload`, `…/scenario` | an operator, optionally | the report's metadata |
//! | `…/link-rate` | dom0, from `depmig migrate --link-rate` (bytes per second) | the report's metadata |
//! | `…/go` | dom0, last | [`keys::GO_VALUE`] |
//! | `…/state` | the appliance | [`State`] |
//! | `…/round` | the source, per round | [`Round`] |
//! | `…/result` | the appliance, last | a [`Verdict`] and why |
//! | `…/report`, `…/report-parts`, `…/report-part/N` | the source | its JSON [`report::MigrationReport`], whole or in pieces |
//! | `…/listening` | the destination | the port it listens on |
//! | `…/bitmap`, `…/bitmap-request` | the source | [`bitmap_route`] |
//!
//! Each value has exactly one text form: the writer writes it with the
//! type's `as_str`/`to_text`, the reader reads it with the same type's
//! `parse`, which takes nothing else. The report, a JSON object, is the
//! one exception: it is a serde type, written and read with serde_json
//! ([`report`]). Everything here parses text another domain wrote:
//! strictly, bounded, never panicking, with small error enums.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod addr;
pub mod bitmap_route;
pub mod hexkey;
pub mod keys;
pub mod report;
pub mod round;
pub mod values;

pub use addr::Peer;
pub use hexkey::{parse_key, to_hex, Key, KeyError, KEY_LEN};
pub use round::{Round, RoundError};
pub use values::{
    Compress, ControlError, DeltaCache, Encodings, Encrypt, Fault, Mode, Policy, Role, State,
    Verdict, Verify,
};
