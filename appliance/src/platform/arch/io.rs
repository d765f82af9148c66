//! x86 port I/O: the only place `in`/`out` instructions are written.

use core::arch::asm;

/// Writes one byte to an I/O port.
///
/// # Safety
/// 1. The port must belong to a device whose effect of this write is
///    understood by the caller (a debug sink, a UART, the exit device).
pub unsafe fn outb(port: u16, value: u8) {
    // SAFETY: port I/O has no memory effects; precondition 1 covers the device.
    unsafe {
        asm!("out dx, al", in("dx") port, in("al") value, options(nomem, nostack, preserves_flags))
    }
}

/// Writes a 32-bit value to an I/O port.
///
/// # Safety
/// 1. As for [`outb`].
pub unsafe fn outl(port: u16, value: u32) {
    // SAFETY: as in `outb`.
    unsafe {
        asm!("out dx, eax", in("dx") port, in("eax") value, options(nomem, nostack, preserves_flags))
    }
}

/// Reads one byte from an I/O port.
///
/// # Safety
/// 1. Reading the port must have no side effect the caller does not expect.
pub unsafe fn inb(port: u16) -> u8 {
    let value: u8;
    // SAFETY: port I/O has no memory effects; precondition 1 covers the device.
    unsafe {
        asm!("in al, dx", in("dx") port, out("al") value, options(nomem, nostack, preserves_flags))
    }
    value
}
