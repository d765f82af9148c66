//! Two hosts: the control protocol between the source's `depmig migrate
//! GUEST HOST` and the destination's `depmig receive`, the channel that
//! carries it, and the transport command that starts the destination's
//! end. The orchestration on each side is in [`crate::migrate`]
//! (`migrate_to_host`, `receive`, `recover`).

pub mod channel;
pub mod protocol;
pub mod transport;
