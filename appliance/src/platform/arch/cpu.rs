//! CPU helpers: CPUID, TSC, MSRs, interrupt flag, halting.

use core::arch::asm;
use core::arch::x86_64::{__cpuid_count, _rdtsc, CpuidResult};

/// Executes CPUID for `leaf`/`subleaf`.
pub fn cpuid(leaf: u32, subleaf: u32) -> CpuidResult {
    __cpuid_count(leaf, subleaf)
}

/// Reads the time-stamp counter.
pub fn rdtsc() -> u64 {
    // SAFETY: RDTSC is available in ring 0 on every x86-64 CPU.
    unsafe { _rdtsc() }
}

/// Writes a model-specific register.
///
/// # Safety
/// 1. `msr` must exist and the write must not break memory safety (e.g. the
///    hypercall-page MSR with the address of a page reserved for it).
pub unsafe fn wrmsr(msr: u32, value: u64) {
    // SAFETY: precondition 1.
    unsafe {
        asm!("wrmsr", in("ecx") msr, in("eax") value as u32, in("edx") (value >> 32) as u32,
             options(nostack, preserves_flags));
    }
}

/// Reads CR2 (the faulting address of the last page fault).
pub fn cr2() -> u64 {
    let v: u64;
    // SAFETY: reading CR2 in ring 0 has no side effects.
    unsafe { asm!("mov {}, cr2", out(reg) v, options(nomem, nostack, preserves_flags)) }
    v
}

/// Disables interrupts and halts forever.
pub fn halt_forever() -> ! {
    loop {
        // SAFETY: stopping the CPU with interrupts off touches no memory.
        unsafe { asm!("cli", "hlt", options(nomem, nostack)) }
    }
}
