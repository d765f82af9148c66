//! GDT with a TSS, IDT with IST stacks, exception entry and the event upcall.
//!
//! The image runs with interrupts off (it sleeps with SCHEDOP_poll, see
//! `xen::Xen::wait`). Every gate uses an IST stack
//! so a trap never lands in the red zone of the code it interrupted (the
//! precompiled `core` uses the red zone). Exceptions are fatal: the handler
//! prints an epitaph and ends the run. The upcall vector only clears
//! `evtchn_upcall_pending` and `evtchn_pending_sel`, in assembly, saving
//! the two registers it uses.

use core::arch::{asm, global_asm};
use core::ptr::addr_of_mut;
use core::sync::atomic::{AtomicU64, Ordering};

/// IDT vector Xen injects for event channel upcalls.
pub const UPCALL_VECTOR: u8 = 0xF3;

/// Address of `vcpu_info[0].evtchn_upcall_pending` once shared_info is
/// mapped; 0 before. Read by the upcall stub.
pub static UPCALL_PENDING_ADDR: AtomicU64 = AtomicU64::new(0);

const IST_SIZE: usize = 16 * 1024;
const GDT_CODE: u16 = 0x08;
const GDT_TSS: u16 = 0x18;

#[repr(C, packed(4))]
struct Tss {
    _res0: u32,
    rsp: [u64; 3],
    _res1: u64,
    ist: [u64; 7],
    _res2: u64,
    _res3: u16,
    iomap_base: u16,
}
const _: () = assert!(core::mem::size_of::<Tss>() == 104);

#[repr(C, align(16))]
struct Tables {
    gdt: [u64; 5],
    tss: Tss,
    idt: [[u64; 2]; 256],
}

static mut TABLES: Tables = Tables {
    gdt: [0; 5],
    tss: Tss {
        _res0: 0,
        rsp: [0; 3],
        _res1: 0,
        ist: [0; 7],
        _res2: 0,
        _res3: 0,
        iomap_base: 104,
    },
    idt: [[0; 2]; 256],
};

#[repr(C, align(16))]
struct Stack([u8; IST_SIZE]);
static mut IST_EXCEPTION: Stack = Stack([0; IST_SIZE]);
static mut IST_UPCALL: Stack = Stack([0; IST_SIZE]);
/// The double fault's own stack: a fault while delivering an exception on
/// [`IST_EXCEPTION`] (that stack or its page unusable) still gets an epitaph
/// instead of a silent triple fault.
static mut IST_DOUBLE_FAULT: Stack = Stack([0; IST_SIZE]);

#[repr(C, packed)]
struct Pointer {
    limit: u16,
    base: u64,
}

/// Register state saved by the exception entry, in push order reversed.
#[repr(C)]
pub struct Frame {
    regs: [u64; 15],
    /// Exception vector.
    pub vector: u64,
    /// Error code (0 for vectors without one).
    pub error: u64,
    /// Faulting instruction.
    pub rip: u64,
    cs: u64,
    rflags: u64,
    /// Stack pointer at the fault.
    pub rsp: u64,
    ss: u64,
}

/// For the `dftest` mode: points the exception stack (IST1) at the stack
/// guard page, so the next exception faults while it is delivered and
/// becomes a double fault on its own stack.
pub fn break_exception_stack() {
    let guard_top = super::boot::stack_guard().end;
    // SAFETY: single CPU, interrupts off; the TSS field is only read by the
    // CPU when it delivers an exception, which is what the caller wants next.
    unsafe {
        let t = &mut *addr_of_mut!(TABLES);
        let mut ist = t.tss.ist;
        ist[0] = guard_top;
        t.tss.ist = ist;
    }
}

/// [`tables_digest`] right after [`init`].
static TABLES_AT_INIT: AtomicU64 = AtomicU64::new(0);

/// Whether the GDT, TSS and IDT still hold what [`init`] wrote.
pub fn tables_intact() -> bool {
    tables_digest() == TABLES_AT_INIT.load(Ordering::Relaxed)
}

/// FNV-1a over the GDT, TSS and IDT, to tell later whether anything wrote
/// over them.
fn tables_digest() -> u64 {
    let base = addr_of_mut!(TABLES) as *const u8;
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for i in 0..core::mem::size_of::<Tables>() {
        // SAFETY: reads the bytes of TABLES, which exists for the whole run;
        // after init nothing writes it but the CPU's TSS busy bit, set once
        // by `ltr` before any digest is taken.
        let b = unsafe { base.add(i).read_volatile() };
        h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Loads the GDT (with the TSS), the IDT and the task register.
///
/// Call once on the boot CPU, with interrupts off, before anything can trap.
pub fn init() {
    let stubs = super::symbol_addr!("isr_table") as *const u64;
    let upcall = super::symbol_addr!("upcall_entry");
    // SAFETY: called once at boot on the only CPU with interrupts off, so
    // nothing else accesses TABLES or the IST stacks; the stub table holds
    // 32 addresses (see the assembly below).
    unsafe {
        let t = &mut *addr_of_mut!(TABLES);
        t.gdt[1] = 0x00AF_9A00_0000_FFFF; // 64-bit code
        t.gdt[2] = 0x00CF_9200_0000_FFFF; // data
        let base = addr_of_mut!(t.tss) as u64;
        let limit = core::mem::size_of::<Tss>() as u64 - 1;
        t.gdt[3] =
            limit | ((base & 0xFF_FFFF) << 16) | (0x89 << 40) | (((base >> 24) & 0xFF) << 56);
        t.gdt[4] = base >> 32;
        let top = |s: *mut Stack| (s as u64 + IST_SIZE as u64) & !15;
        t.tss.ist = [
            top(addr_of_mut!(IST_EXCEPTION)),
            top(addr_of_mut!(IST_UPCALL)),
            top(addr_of_mut!(IST_DOUBLE_FAULT)),
            0,
            0,
            0,
            0,
        ];
        for v in 0..32 {
            t.idt[v] = gate(stubs.add(v).read(), 1);
        }
        t.idt[8] = gate(stubs.add(8).read(), 3);
        t.idt[UPCALL_VECTOR as usize] = gate(upcall, 2);

        let gdtp = Pointer {
            limit: (core::mem::size_of_val(&t.gdt) - 1) as u16,
            base: t.gdt.as_ptr() as u64,
        };
        let idtp = Pointer {
            limit: (core::mem::size_of_val(&t.idt) - 1) as u16,
            base: t.idt.as_ptr() as u64,
        };
        asm!(
            "lgdt [{gdt}]",
            "push {code}",
            "lea {tmp}, [rip + 2f]",
            "push {tmp}",
            "retfq",
            "2:",
            "lidt [{idt}]",
            "ltr {tss:x}",
            gdt = in(reg) &gdtp,
            idt = in(reg) &idtp,
            code = const GDT_CODE as u64,
            tss = in(reg) GDT_TSS,
            tmp = out(reg) _,
        );
    }
    TABLES_AT_INIT.store(tables_digest(), Ordering::Relaxed);
}

/// An interrupt gate (type 0xE, DPL 0, present) to `handler` on IST `ist`.
fn gate(handler: u64, ist: u64) -> [u64; 2] {
    let low = (handler & 0xFFFF)
        | (u64::from(GDT_CODE) << 16)
        | (ist << 32)
        | (0x8E << 40)
        | (((handler >> 16) & 0xFFFF) << 48);
    [low, handler >> 32]
}

/// Points the upcall stub at `vcpu_info[0].evtchn_upcall_pending`.
pub fn set_upcall_pending_addr(addr: u64) {
    UPCALL_PENDING_ADDR.store(addr, Ordering::SeqCst);
}

extern "C" fn exception(frame: &Frame) -> ! {
    crate::platform::fail::exception(frame, super::cpu::cr2())
}

global_asm!(
    r#"
    .pushsection .text.traps, "ax"
    .macro ISR_NOERR n
isr_\n:
    push 0
    push \n
    jmp isr_common
    .endm
    .macro ISR_ERR n
isr_\n:
    push \n
    jmp isr_common
    .endm
    .irp n, 0,1,2,3,4,5,6,7,9,15,16,18,19,20,22,23,24,25,26,27,28,31
    ISR_NOERR \n
    .endr
    .irp n, 8,10,11,12,13,14,17,21,29,30
    ISR_ERR \n
    .endr

isr_common:
    push rax
    push rbx
    push rcx
    push rdx
    push rsi
    push rdi
    push rbp
    push r8
    push r9
    push r10
    push r11
    push r12
    push r13
    push r14
    push r15
    mov rdi, rsp
    and rsp, -16
    call {handler}
    ud2

    // Clears vcpu_info[0].evtchn_upcall_pending and evtchn_pending_sel. The
    // image waits with SCHEDOP_poll and never opens interrupts, so this only
    // runs if an event is injected at a moment nothing expects it; the
    // waiting code rescans the pending bitmap itself.
    .global upcall_entry
upcall_entry:
    push rax
    push rcx
    mov rax, [rip + {pending}]
    test rax, rax
    jz 2f
    mov byte ptr [rax], 0
    xor ecx, ecx
    xchg [rax + 8], rcx
2:  pop rcx
    pop rax
    iretq
    .popsection

    .pushsection .rodata.isr_table, "a"
    .p2align 3
    .global isr_table
isr_table:
    .irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
    .quad isr_\n
    .endr
    .popsection
"#,
    handler = sym exception,
    pending = sym UPCALL_PENDING_ADDR,
);

impl Frame {
    /// General registers in the order rax, rbx, rcx, rdx, rsi, rdi, rbp, r8..r15.
    pub fn regs(&self) -> [u64; 15] {
        let mut r = self.regs;
        r.reverse();
        r
    }
}
