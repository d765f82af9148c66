//! How a run ends: the final result line, then shutdown; and the fatal paths
//! (panic, CPU exception) that leave an epitaph first.

use core::sync::atomic::{AtomicBool, Ordering};

use crate::platform::arch::{cpu, io};
use crate::platform::console::print_emergency;

/// isa-debug-exit port (QEMU `-device isa-debug-exit,iobase=0xf4`).
const DEBUG_EXIT: u16 = 0xF4;
/// QEMU exits with `(code << 1) | 1`: 33 on pass, 35 on fail, 37 on crash.
const EXIT_PASS: u32 = 0x10;
const EXIT_FAIL: u32 = 0x11;
const EXIT_CRASH: u32 = 0x12;

static FAILING: AtomicBool = AtomicBool::new(false);

/// How the run ended.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// Every check passed.
    Pass,
    /// A check failed; the run completed.
    Fail,
    /// A panic or CPU exception.
    Crash,
}

/// Flushes the console and ends the domain (Xen) or QEMU (plain).
pub fn shutdown(end: End) -> ! {
    crate::platform::console::flush();
    if crate::platform::xen::present() {
        let reason = match end {
            End::Pass | End::Fail => xen_abi::sched::SHUTDOWN_POWEROFF,
            End::Crash => xen_abi::sched::SHUTDOWN_CRASH,
        };
        crate::platform::xen::hypercall::shutdown(reason);
    }
    let code = match end {
        End::Pass => EXIT_PASS,
        End::Fail => EXIT_FAIL,
        End::Crash => EXIT_CRASH,
    };
    // SAFETY: isa-debug-exit ends QEMU; without the device the write is lost.
    unsafe { io::outl(DEBUG_EXIT, code) }
    print_emergency(format_args!(
        "depmig: shutdown did not take effect (no Xen, no isa-debug-exit); halting\n"
    ));
    cpu::halt_forever()
}

fn fatal(args: core::fmt::Arguments<'_>) -> ! {
    if FAILING.swap(true, Ordering::SeqCst) {
        // A failure while failing: print nothing more, just stop.
        shutdown(End::Crash)
    }
    print_emergency(format_args!("depmig: EPITAPH: {args}\n"));
    print_emergency(format_args!("depmig-selftest: FAIL crash: {args}\n"));
    shutdown(End::Crash)
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    match info.location() {
        Some(l) => fatal(format_args!(
            "panic at {}:{}: {}",
            l.file(),
            l.line(),
            info.message()
        )),
        None => fatal(format_args!("panic: {}", info.message())),
    }
}

/// Called by the exception entry stub.
pub fn exception(frame: &crate::platform::arch::trap::Frame, cr2: u64) -> ! {
    let r = frame.regs();
    print_emergency(format_args!(
        "depmig: regs rax={:#x} rbx={:#x} rcx={:#x} rdx={:#x} rsi={:#x} rdi={:#x} rbp={:#x}\n",
        r[0], r[1], r[2], r[3], r[4], r[5], r[6]
    ));
    // A page fault on the guard page below the boot stack is an overflow.
    let what = if frame.vector == 14 && crate::platform::arch::boot::stack_guard().contains(&cr2) {
        " (boot stack overflow)"
    } else if frame.vector == 8 {
        // A fault while delivering another: its own frame is gone, but
        // whether our descriptor tables were overwritten tells a lot.
        if crate::platform::arch::trap::tables_intact() {
            " (double fault; descriptor tables intact)"
        } else {
            " (double fault; descriptor tables CHANGED)"
        }
    } else {
        ""
    };
    fatal(format_args!(
        "CPU exception {} error {:#x} at rip {:#x} rsp {:#x} cr2 {:#x}{what}",
        frame.vector, frame.error, frame.rip, frame.rsp, cr2
    ))
}
