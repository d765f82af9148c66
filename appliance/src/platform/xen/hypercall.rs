//! The hypercall layer: the hypercall page and typed calls.
//!
//! Xen fills the page (named to it through the MSR that CPUID leaf
//! `base + 2` gives) with one 32-byte stub per hypercall. Arguments go in
//! rdi, rsi, rdx, r10, r8 and the result comes back in rax; Xen may clobber
//! the argument registers, so they are all declared clobbered here.

use core::arch::{asm, global_asm};

use xen_abi::errno::XenErrno;
use xen_abi::hypercall as nr;
use zerocopy::{Immutable, IntoBytes};

use crate::platform::arch::symbol_addr;

global_asm!(
    r#"
    .pushsection .text.hypercall_page, "ax"
    .p2align 12
    .global hypercall_page
hypercall_page:
    .fill 4096, 1, 0xcc
    .popsection
"#
);

/// Physical (= virtual) address of the hypercall page.
pub fn page_addr() -> u64 {
    symbol_addr!("hypercall_page")
}

/// Raw hypercall with up to five arguments.
///
/// # Safety
/// 1. The hypercall page has been installed.
/// 2. The arguments are valid for hypercall `nr`: every pointer names
///    memory of the size and mutability that hypercall reads or writes.
pub unsafe fn raw(nr: u32, a1: u64, a2: u64, a3: u64, a4: u64, a5: u64) -> i64 {
    let entry = page_addr() + u64::from(nr) * nr::STUB_SIZE as u64;
    let ret: i64;
    // SAFETY: preconditions 1 and 2; the call may push (no `nostack`).
    unsafe {
        asm!(
            "call {entry}",
            entry = in(reg) entry,
            inout("rdi") a1 => _,
            inout("rsi") a2 => _,
            inout("rdx") a3 => _,
            inout("r10") a4 => _,
            inout("r8") a5 => _,
            lateout("rax") ret,
            out("rcx") _,
            out("r11") _,
        );
    }
    ret
}

/// A hypercall `nr` with sub-command `cmd` and one argument struct.
///
/// # Safety
/// 1. The hypercall page has been installed.
/// 2. `T` is the argument struct Xen's ABI defines for `nr`/`cmd`.
pub unsafe fn op<T: IntoBytes + Immutable>(
    nr: u32,
    cmd: u32,
    arg: &mut T,
) -> Result<u64, XenErrno> {
    // SAFETY: preconditions 1 and 2; `arg` is a live exclusive reference.
    XenErrno::check(unsafe { raw(nr, u64::from(cmd), arg as *mut T as u64, 0, 0, 0) })
}

/// Like [`op`] for hypercalls taking `(cmd, array, count)`.
///
/// # Safety
/// As for [`op`], with `T` the element type of the array.
pub unsafe fn op_array<T: IntoBytes + Immutable>(
    nr: u32,
    cmd: u32,
    args: &mut [T],
) -> Result<u64, XenErrno> {
    // SAFETY: as for `op`; Xen touches `args.len()` elements.
    XenErrno::check(unsafe {
        raw(
            nr,
            u64::from(cmd),
            args.as_mut_ptr() as u64,
            args.len() as u64,
            0,
            0,
        )
    })
}

/// `xen_version(XENVER_version)`: `(major << 16) | minor`.
pub fn version_raw() -> u64 {
    // SAFETY: XENVER_version takes no pointer.
    unsafe {
        raw(
            nr::XEN_VERSION,
            u64::from(xen_abi::version::XENVER_VERSION),
            0,
            0,
            0,
            0,
        ) as u64
    }
}

/// `xen_version(XENVER_extraversion)`.
pub fn extraversion() -> Result<xen_abi::version::ExtraVersion, XenErrno> {
    let mut buf = [0u8; 16];
    // SAFETY: XENVER_extraversion writes a 16-byte xen_extraversion_t.
    unsafe {
        op(
            nr::XEN_VERSION,
            xen_abi::version::XENVER_EXTRAVERSION,
            &mut buf,
        )?
    };
    Ok(buf)
}

/// `console_io(CONSOLEIO_write)`: Xen prints `bytes` in its console as this
/// domain's lines (`(dN) …`), as it does for the debug port, in one exit
/// instead of one per byte.
pub fn console_write(bytes: &[u8]) -> Result<(), XenErrno> {
    // SAFETY: CONSOLEIO_write reads `count` bytes from the pointer, which
    // `bytes` covers for the duration of the call.
    XenErrno::check(unsafe {
        raw(
            nr::CONSOLE_IO,
            u64::from(xen_abi::console::CONSOLEIO_WRITE),
            bytes.len() as u64,
            bytes.as_ptr() as u64,
            0,
            0,
        )
    })
    .map(|_| ())
}

/// `sched_op(SCHEDOP_shutdown)`. Returns only if Xen refused.
pub fn shutdown(reason: u32) {
    let mut arg = xen_abi::sched::SchedShutdown { reason };
    // SAFETY: SCHEDOP_shutdown takes a sched_shutdown by reference.
    let _ = unsafe { op(nr::SCHED_OP, xen_abi::sched::SCHEDOP_SHUTDOWN, &mut arg) };
}

/// `sched_op(SCHEDOP_poll)`: waits until one of `ports` is pending or the
/// absolute system time `timeout_ns` (0: no timeout) passes. Works with
/// interrupts off and with masked ports.
pub fn poll(ports: &[u32], timeout_ns: u64) -> Result<(), XenErrno> {
    let mut arg = xen_abi::sched::SchedPoll {
        ports: ports.as_ptr() as u64,
        nr_ports: ports.len() as u32,
        _pad: 0,
        timeout: timeout_ns,
    };
    // SAFETY: SCHEDOP_poll reads `nr_ports` ports from `ports`, which lives
    // across the call.
    unsafe { op(nr::SCHED_OP, xen_abi::sched::SCHEDOP_POLL, &mut arg) }.map(|_| ())
}

/// The instruction Xen's stubs use to enter the hypervisor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Entry {
    /// Intel VT-x.
    Vmcall,
    /// AMD-V.
    Vmmcall,
}

/// Reads which instruction the installed page uses (from the sched_op stub:
/// `mov eax, imm32` then the 3-byte instruction).
pub fn entry_instruction() -> Option<Entry> {
    let stub = page_addr() + u64::from(nr::SCHED_OP) * nr::STUB_SIZE as u64;
    let mut b = [0u8; 8];
    for (i, byte) in b.iter_mut().enumerate() {
        // SAFETY: reads inside the hypercall page, which is mapped.
        *byte = unsafe { ((stub + i as u64) as *const u8).read_volatile() };
    }
    match b {
        [0xb8, 29, 0, 0, 0, 0x0f, 0x01, 0xc1] => Some(Entry::Vmcall),
        [0xb8, 29, 0, 0, 0, 0x0f, 0x01, 0xd9] => Some(Entry::Vmmcall),
        _ => None,
    }
}
