//! depmig guest agent library: the taint table's live view, kernel BTF
//! reader, kernel profile builder, xenstore client, the publication and
//! request exchange, and the raw BPF/syscall helpers the agent and its
//! in-guest tests share. The layouts themselves are `depmig-guest-abi`'s.

pub mod btf;
pub mod freezer;
pub mod home;
pub mod profile;
pub mod sys;
pub mod table;
pub mod xenstore;
