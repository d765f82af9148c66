//! PVH entry: 32-bit protected mode to 64-bit long mode, then into Rust.
//!
//! The PVH boot protocol (Xen's `arch-x86/hvm/start_info.h`) enters at the
//! address in the `XEN_ELFNOTE_PHYS32_ENTRY` note with paging off, flat 32-bit
//! segments, interrupts off, no usable stack, and `%ebx` holding the physical
//! address of the `hvm_start_info` block. This file builds identity page
//! tables for the low 4 GiB (2 MiB pages), turns on long mode and SSE (the
//! precompiled `core` uses SSE), and calls [`crate::boot_main`].

use core::arch::global_asm;

/// Bytes of the boot stack that Rust code starts on.
pub const BOOT_STACK_SIZE: usize = 128 * 1024;

/// Bytes identity-mapped by the boot page tables (4 GiB, 2 MiB pages).
pub const IDENTITY_MAPPED: u64 = 4 << 30;

// Xen ELF notes (`xen/include/public/elfnote.h`): type 18 is PHYS32_ENTRY, the
// only one a PVH loader needs; GUEST_OS (6), LOADER (8) and XEN_VERSION (5)
// name the image for tools that print them.
global_asm!(
    r#"
    .pushsection .note.xen, "a", @note
    .p2align 2
    .long 4, 4, 18
    .asciz "Xen"
    .long pvh_start32

    .p2align 2
    .long 4, 2f - 1f, 6
    .asciz "Xen"
1:  .asciz "depmig"
2:  .p2align 2

    .long 4, 4f - 3f, 8
    .asciz "Xen"
3:  .asciz "generic"
4:  .p2align 2

    .long 4, 6f - 5f, 5
    .asciz "Xen"
5:  .asciz "xen-3.0"
6:  .p2align 2
    .popsection
"#
);

global_asm!(
    r#"
    .pushsection .boot.text, "ax"
    .code32
    .global pvh_start32
pvh_start32:
    cli
    cld
    mov esi, ebx                    // start_info, carried into Rust
    mov esp, offset boot_stack_top  // PVH gives no stack; the far return needs one

    // PD entries: 2048 x 2 MiB pages, present | writable | large.
    mov edi, offset boot_pd
    xor ecx, ecx
2:  mov eax, ecx
    shl eax, 21
    or eax, 0x83
    mov [edi + ecx * 8], eax
    mov edx, ecx
    shr edx, 11                     // bits 32+ of (ecx << 21)
    mov [edi + ecx * 8 + 4], edx
    inc ecx
    cmp ecx, 2048
    jb 2b

    // The 2 MiB page holding the stack guard becomes 512 small pages, the
    // guard's own entry left not-present: a stack overflow faults there
    // instead of running down into these tables.
    mov ebx, offset boot_stack_guard
    shr ebx, 21                     // index of its 2 MiB page (image < 4 GiB)
    mov edi, offset boot_pt
    mov eax, ebx
    shl eax, 21
    or eax, 0x3                     // present | writable
    xor ecx, ecx
7:  mov [edi + ecx * 8], eax
    mov dword ptr [edi + ecx * 8 + 4], 0
    add eax, 4096
    inc ecx
    cmp ecx, 512
    jb 7b
    mov eax, offset boot_stack_guard
    shr eax, 12
    and eax, 511
    mov dword ptr [edi + eax * 8], 0
    mov eax, offset boot_pt
    or eax, 0x3
    mov edi, offset boot_pd
    mov [edi + ebx * 8], eax
    mov dword ptr [edi + ebx * 8 + 4], 0

    // PDPT: four entries, one per PD page.
    mov edi, offset boot_pdpt
    mov eax, offset boot_pd
    or eax, 0x3
    xor ecx, ecx
3:  mov [edi + ecx * 8], eax
    mov dword ptr [edi + ecx * 8 + 4], 0
    add eax, 4096
    inc ecx
    cmp ecx, 4
    jb 3b

    // PML4: one entry.
    mov eax, offset boot_pdpt
    or eax, 0x3
    mov [boot_pml4], eax
    mov dword ptr [boot_pml4 + 4], 0

    // CR4: PAE (5), OSFXSR (9), OSXMMEXCPT (10).
    mov eax, cr4
    or eax, (1 << 5) | (1 << 9) | (1 << 10)
    mov cr4, eax
    mov eax, offset boot_pml4
    mov cr3, eax
    // EFER.LME (8).
    mov ecx, 0xC0000080
    rdmsr
    or eax, (1 << 8)
    wrmsr
    // CR0: PG (31), PE (0), MP (1); clear EM (2) so SSE does not trap.
    mov eax, cr0
    and eax, ~(1 << 2)
    or eax, (1 << 31) | (1 << 1) | 1
    mov cr0, eax

    lgdt [boot_gdt_ptr]
    // Far return into the 64-bit code segment.
    mov eax, offset pvh_start64
    push 0x08
    push eax
    retf

    .code64
pvh_start64:
    mov ax, 0x10
    mov ds, ax
    mov es, ax
    mov ss, ax
    xor eax, eax
    mov fs, ax
    mov gs, ax
    lea rsp, [rip + boot_stack_top]
    xor ebp, ebp
    mov edi, esi                    // zero-extends start_info into rdi
    call {main}
4:  hlt
    jmp 4b

    .p2align 3
boot_gdt:
    .quad 0
    .quad 0x00AF9A000000FFFF        // 0x08: 64-bit code, DPL 0
    .quad 0x00CF92000000FFFF        // 0x10: data, DPL 0
boot_gdt_end:
boot_gdt_ptr:
    .word boot_gdt_end - boot_gdt - 1
    .long boot_gdt
    .popsection

    .pushsection .boot.bss, "aw", @nobits
    .p2align 12
    .global boot_pml4
boot_pml4:  .skip 4096
boot_pdpt:  .skip 4096
boot_pd:    .skip 4096 * 4
boot_pt:    .skip 4096
    .global boot_stack_guard
boot_stack_guard: .skip 4096
    .global boot_stack
boot_stack: .skip {stack_size}
    .global boot_stack_top
boot_stack_top:
    .popsection
"#,
    main = sym crate::boot_main,
    stack_size = const BOOT_STACK_SIZE,
);

/// Byte written over the unused part of the boot stack at start-up, so the
/// deepest point the stack ever reached can be read back.
const STACK_PAINT: u64 = 0x5a5a_5a5a_5a5a_5a5a;

/// The boot stack's bounds `(lowest byte, top)`.
fn stack_bounds() -> (u64, u64) {
    (
        crate::platform::arch::symbol_addr!("boot_stack"),
        crate::platform::arch::symbol_addr!("boot_stack_top"),
    )
}

/// The stack guard page (not mapped: touching it faults).
pub fn stack_guard() -> core::ops::Range<u64> {
    let g = crate::platform::arch::symbol_addr!("boot_stack_guard");
    g..g + 4096
}

/// The current stack pointer.
pub fn stack_pointer() -> u64 {
    let sp: u64;
    // SAFETY: reads rsp into a register; no memory access, no flags.
    unsafe {
        core::arch::asm!("mov {}, rsp", out(reg) sp, options(nomem, nostack, preserves_flags))
    };
    sp
}

/// Paints the boot stack below the caller's frame (leaving a margin for
/// the red zone and this function's own frame). Call once, early.
pub fn paint_stack() {
    let (low, top) = stack_bounds();
    let sp = stack_pointer();
    if sp <= low || sp > top {
        return;
    }
    let end = (sp - 1024) & !7;
    let mut p = low;
    while p < end {
        // SAFETY: [low, end) is boot stack below every live frame (the
        // caller's frame and red zone lie above sp - 1024), and nothing else
        // uses it; volatile so the stores are not elided.
        unsafe { core::ptr::write_volatile(p as *mut u64, STACK_PAINT) };
        p += 8;
    }
}

/// The most boot stack ever used, in bytes (from the painted pattern; only
/// meaningful after [`paint_stack`]).
pub fn stack_high_water() -> u64 {
    let (low, top) = stack_bounds();
    let mut p = low;
    while p < top {
        // SAFETY: reads the boot stack, mapped and ours; volatile because
        // the compiler cannot see the other writers (every call frame).
        if unsafe { core::ptr::read_volatile(p as *const u64) } != STACK_PAINT {
            break;
        }
        p += 8;
    }
    top - p
}
