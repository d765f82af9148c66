//! x86-64 specifics: boot entry, descriptor tables and traps, port I/O, CPU
//! helpers. All privileged instructions of the image live below here, except
//! the hypercall instructions in `xen::hypercall`.

pub mod boot;
pub mod cpu;
pub mod io;
pub mod trap;

/// Address of a linker or assembler symbol, without creating a Rust object
/// for the memory behind it.
macro_rules! symbol_addr {
    ($sym:literal) => {{
        let addr: u64;
        // SAFETY: loads an address constant; touches no memory.
        unsafe {
            core::arch::asm!(concat!("lea {}, [rip + ", $sym, "]"), out(reg) addr,
                             options(nomem, nostack, preserves_flags, pure));
        }
        addr
    }};
}
pub(crate) use symbol_addr;
