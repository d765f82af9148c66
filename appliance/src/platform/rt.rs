//! Freestanding runtime symbols the precompiled `core` expects from libc.
//!
//! They are written with `rep` string instructions rather than loops: LLVM
//! recognises a copy loop and turns it back into a call to `memcpy`, which
//! would then call itself.

use core::arch::asm;

/// Copies `n` bytes from `src` to `dst` (regions must not overlap).
///
/// # Safety
/// 1. `src` is readable and `dst` writable for `n` bytes; they do not overlap.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memcpy(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    // SAFETY: precondition 1; the direction flag is clear (boot code and the
    // ABI keep it clear).
    unsafe {
        asm!("rep movsb", inout("rcx") n => _, inout("rdi") dst => _, inout("rsi") src => _,
             options(nostack, preserves_flags));
    }
    dst
}

/// Copies `n` bytes from `src` to `dst`; the regions may overlap.
///
/// # Safety
/// 1. `src` is readable and `dst` writable for `n` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memmove(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    if n == 0 || dst as usize <= src as usize || dst as usize >= (src as usize).wrapping_add(n) {
        // SAFETY: copying forward is correct when dst is below src or past its end.
        return unsafe { memcpy(dst, src, n) };
    }
    // SAFETY: precondition 1; copying backwards from the last byte handles the
    // overlap with dst above src. The direction flag is restored with `cld`.
    unsafe {
        asm!("std", "rep movsb", "cld",
             inout("rcx") n => _,
             inout("rdi") dst.wrapping_add(n - 1) => _,
             inout("rsi") src.wrapping_add(n - 1) => _,
             options(nostack));
    }
    dst
}

/// Fills `n` bytes at `dst` with the low byte of `c`.
///
/// # Safety
/// 1. `dst` is writable for `n` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memset(dst: *mut u8, c: i32, n: usize) -> *mut u8 {
    // SAFETY: precondition 1; the direction flag is clear.
    unsafe {
        asm!("rep stosb", inout("rcx") n => _, inout("rdi") dst => _, in("al") c as u8,
             options(nostack, preserves_flags));
    }
    dst
}

/// Compares `n` bytes; returns the difference of the first differing bytes.
///
/// # Safety
/// 1. `a` and `b` are readable for `n` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    let mut i = 0;
    while i < n {
        // SAFETY: i < n, precondition 1. Volatile reads keep LLVM from turning
        // this loop into a call to memcmp itself.
        let (x, y) = unsafe { (a.add(i).read_volatile(), b.add(i).read_volatile()) };
        if x != y {
            return i32::from(x) - i32::from(y);
        }
        i += 1;
    }
    0
}

/// Compares `n` bytes for equality only (zero when equal).
///
/// # Safety
/// 1. As for [`memcmp`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn bcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    // SAFETY: same precondition.
    unsafe { memcmp(a, b, n) }
}

/// Referenced by the precompiled `core`; never called with `panic = "abort"`.
#[unsafe(no_mangle)]
pub extern "C" fn rust_eh_personality() {}

/// Referenced by the precompiled `alloc` on its unwind paths; with
/// `panic = "abort"` nothing unwinds, so reaching it is a bug.
#[unsafe(no_mangle)]
pub extern "C" fn _Unwind_Resume() -> ! {
    crate::platform::arch::cpu::halt_forever()
}
