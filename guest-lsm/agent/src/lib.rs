//! depmig guest agent library: taint table layout, kernel BTF reader, kernel
//! profile, xenstore client, the publication and request exchange, and the
//! raw BPF/syscall helpers the agent and its in-guest tests share.

pub mod btf;
pub mod freezer;
pub mod home;
pub mod profile;
pub mod sys;
pub mod table;
pub mod xenstore;
