//! depmig appliance: a freestanding PVH image that boots under Xen or QEMU.
#![no_std]
#![no_main]

mod arch;
mod rt;

use arch::io::outb;

/// Port of the debug console sink (Xen's and QEMU's `0xE9` hack).
const DEBUGCON: u16 = 0xE9;

fn put(s: &str) {
    for b in s.bytes() {
        // SAFETY: 0xE9 is a write-only debug sink.
        unsafe { outb(DEBUGCON, b) }
    }
}

/// First Rust code to run, on the boot stack, with the physical address of
/// the PVH `hvm_start_info` block.
#[unsafe(no_mangle)]
pub extern "C" fn boot_main(_start_info: u64) -> ! {
    put("depmig: boot\n");
    put("depmig-selftest: PASS\n");
    // SAFETY: isa-debug-exit at 0xf4 ends QEMU; elsewhere the write is ignored.
    unsafe { arch::io::outl(0xf4, 0x10) }
    arch::cpu::halt_forever()
}

#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    put("depmig-selftest: FAIL panic\n");
    arch::cpu::halt_forever()
}
