//! CPU helpers: CPUID, TSC, halting.

use core::arch::asm;
use core::arch::x86_64::{__cpuid_count, _rdtsc, CpuidResult};

/// Executes CPUID for `leaf`/`subleaf`.
pub fn cpuid(leaf: u32, subleaf: u32) -> CpuidResult {
    // SAFETY: CPUID exists on every x86-64 CPU and only reads registers.
    unsafe { __cpuid_count(leaf, subleaf) }
}

/// Reads the time-stamp counter.
pub fn rdtsc() -> u64 {
    // SAFETY: RDTSC is available in ring 0 on every x86-64 CPU.
    unsafe { _rdtsc() }
}

/// Disables interrupts and halts forever.
pub fn halt_forever() -> ! {
    loop {
        // SAFETY: stopping the CPU with interrupts off touches no memory.
        unsafe { asm!("cli", "hlt", options(nomem, nostack)) }
    }
}
