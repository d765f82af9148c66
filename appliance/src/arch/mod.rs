//! x86-64 specifics: boot entry, port I/O, CPU helpers.

pub mod boot;
pub mod cpu;
pub mod io;
