//! depmig appliance: a freestanding PVH image that boots under Xen or QEMU.
//!
//! Boot order: traps, console, boot info, heap, Xen (if present), then the
//! mode named by the first word of the command line. Every run ends with one
//! result line and a shutdown (see `fail`).
#![no_std]
#![no_main]

extern crate alloc;

mod guestctl;
mod holdmap;
mod migrate;
mod net;
mod platform;
mod rights;
mod selftest;

use platform::console::println;
use platform::fail::End;
use platform::{arch, boot_info, clock, console, fail, heap, xen};

/// Most heap the image takes from the memory map.
const HEAP_MAX: u64 = 256 << 20;

/// First Rust code to run, on the boot stack, with the physical address of
/// the PVH `hvm_start_info` block.
#[unsafe(no_mangle)]
pub extern "C" fn boot_main(start_info: u64) -> ! {
    arch::boot::paint_stack();
    arch::trap::init();
    let tsc_known = clock::init();
    let xen_base = xen::detect();
    if xen_base.is_none() {
        console::enable_serial();
    }
    console::init_log();
    println!("depmig appliance {} booting", env!("CARGO_PKG_VERSION"));

    let info = match boot_info::read(start_info) {
        Ok(i) => i,
        Err(e) => {
            println!("depmig-selftest: FAIL boot info: {e:?}");
            fail::shutdown(End::Fail)
        }
    };
    log::info!("command line: {:?}", info.cmdline.as_str());
    init_heap(&info);
    if !tsc_known {
        log::info!("TSC frequency not reported by CPUID; timestamps assume 1 GHz");
    }

    let xen = match xen_base.map(xen::init) {
        None => {
            log::info!("no Xen (CPUID): plain machine, Xen checks will be skipped");
            None
        }
        Some(Ok(x)) => {
            console::use_console_io();
            // SAFETY: the console page and port Xen named in its HVM params.
            let pv = unsafe { xen::console::PvConsole::new(x.console.0, x.console.1) };
            console::attach_pv(pv);
            log::info!(
                "Xen {}.{}{} (domctl interface {:#x}), entry {:?}",
                x.version.major,
                x.version.minor,
                x.extra,
                x.domctl_version,
                x.entry
            );
            Some(x)
        }
        Some(Err(e)) => {
            println!("depmig: refusing to run: {e}");
            println!("depmig-selftest: FAIL xen init: {e}");
            fail::shutdown(End::Fail)
        }
    };

    match info.mode() {
        "selftest" => {
            // The self-test is a diagnostic run: show per-request detail.
            console::set_log_level(log::LevelFilter::Debug);
            let end = selftest::run(&info, xen);
            fail::shutdown(end)
        }
        // Deliberate failures, so the runner can check the fatal paths end
        // the run with an epitaph and a FAIL line.
        "crashtest" => {
            log::info!("crashtest: reading unmapped memory");
            // SAFETY: deliberately faults (the address is above the identity
            // map); the exception handler ends the run.
            let v = unsafe { core::ptr::read_volatile(0x40_0000_0000 as *const u64) };
            println!("depmig-selftest: FAIL crashtest did not fault ({v})");
            fail::shutdown(End::Fail)
        }
        "panictest" => panic!("deliberate panic (panictest)"),
        "dftest" => {
            log::info!("dftest: faulting with the exception stack on the guard page");
            arch::trap::break_exception_stack();
            // SAFETY: deliberately faults (above the identity map); its
            // delivery faults too, and the double-fault handler ends the run.
            let v = unsafe { core::ptr::read_volatile(0x40_0000_0000 as *const u64) };
            println!("depmig-selftest: FAIL dftest did not fault ({v})");
            fail::shutdown(End::Fail)
        }
        "stacktest" => {
            log::info!("stacktest: recursing until the stack guard faults");
            let depth = overflow_stack(0);
            println!("depmig-selftest: FAIL stacktest did not fault ({depth})");
            fail::shutdown(End::Fail)
        }
        // Two appliances on dom0's bridge: TCP throughput and fault handling.
        "nettest" => match xen {
            Some(x) => fail::shutdown(net::run_nettest(x)),
            None => {
                println!("depmig-nettest: FAIL nettest needs Xen (a vif)");
                fail::shutdown(End::Fail)
            }
        },
        // Domctls, foreign mapping, log-dirty and suspend/resume against a
        // running guest and a paused shell (rig scenario appliance-guestctl).
        "guestctl" => match xen {
            Some(x) => fail::shutdown(guestctl::run(x)),
            None => {
                println!("depmig-guestctl: FAIL guestctl needs Xen");
                fail::shutdown(End::Fail)
            }
        },
        // Maps frames of a domain and holds them until destroyed (rig
        // scenario foreign-teardown).
        "holdmap" => match xen {
            Some(x) => fail::shutdown(holdmap::run(x)),
            None => {
                println!("depmig-holdmap: FAIL holdmap needs Xen");
                fail::shutdown(End::Fail)
            }
        },
        // Tries the rights a migration needs over one domain and prints each
        // answer (rig scenario flask-least-privilege).
        "rights" => match xen {
            Some(x) => fail::shutdown(rights::run(x)),
            None => {
                println!("depmig-rights: FAIL rights needs Xen");
                fail::shutdown(End::Fail)
            }
        },
        // One side of a live migration, armed by dom0 (`depmig migrate`).
        "migrate" => match xen {
            Some(x) => fail::shutdown(migrate::run(x)),
            None => {
                println!("depmig-migrate: FAIL migrate needs Xen");
                fail::shutdown(End::Fail)
            }
        },
        other => {
            println!(
                "depmig: unknown mode {other:?} (known: selftest, nettest, guestctl, holdmap, rights, migrate, crashtest, panictest, stacktest, dftest)"
            );
            println!("depmig-selftest: FAIL unknown mode");
            fail::shutdown(End::Fail)
        }
    }
}

/// Gives the heap the largest RAM region above the image.
fn init_heap(info: &boot_info::BootInfo) {
    let image_end = arch::symbol_addr!("__image_end");
    let best = info
        .ram
        .iter()
        .map(|r| (r.start.max(image_end), r.end))
        .filter(|(s, e)| s < e)
        .max_by_key(|(s, e)| e - s);
    match best {
        Some((start, end)) => {
            let end = end.min(start + HEAP_MAX).min(arch::boot::IDENTITY_MAPPED);
            // SAFETY: RAM above the image that the memory map reports free;
            // the start info was copied out before this point; once only.
            unsafe { heap::init(start, end) };
            log::info!(
                "heap: {:#x}..{:#x} ({} KiB)",
                start,
                end,
                (end - start) / 1024
            );
        }
        None => log::warn!("no RAM region for the heap in the memory map"),
    }
}

/// Recurses with a 1 KiB frame per level until the boot stack's guard page
/// faults (for `stacktest`); the bound only keeps the compiler from
/// proving the recursion endless.
#[inline(never)]
fn overflow_stack(depth: u64) -> u64 {
    let mut frame = [0u8; 1024];
    frame[0] = depth as u8;
    let frame = core::hint::black_box(frame);
    if depth > u64::from(u32::MAX) {
        return depth;
    }
    overflow_stack(depth + 1).wrapping_add(u64::from(frame[1023]))
}
