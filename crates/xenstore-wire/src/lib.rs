//! xenstore wire protocol: message codec and ring arithmetic, no_std.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]
