//! Console sinks and the `log` backend.
//!
//! Every line goes to Xen's console (once the hypercall page is in:
//! `console_io`, one hypercall per write; before that, and on plain QEMU,
//! the 0xE9 debug port, one VM exit per byte) and, depending on the
//! platform, to COM1 (plain QEMU) or to the PV console ring (Xen). Writers
//! never block for long: a full PV ring is waited on with a bounded poll and
//! output is dropped after that.

use core::fmt::{self, Write};

use crate::platform::arch::io::{inb, outb};
use crate::platform::xen::console::PvConsole;

const DEBUGCON: u16 = 0xE9;
const COM1: u16 = 0x3F8;

/// Bytes of early output kept for the PV console, which comes up later.
const EARLY_MAX: usize = 4096;

/// Where console output goes.
pub struct Console {
    serial: bool,
    /// Xen's console through `console_io` instead of the debug port.
    hypercall: bool,
    pv: Option<PvConsole>,
    /// Output written before the PV console was attached (replayed to it).
    early: heapless::Vec<u8, EARLY_MAX>,
}

static CONSOLE: spin::Mutex<Console> = spin::Mutex::new(Console {
    serial: false,
    hypercall: false,
    pv: None,
    early: heapless::Vec::new(),
});

impl Console {
    fn put_bytes(&mut self, bytes: &[u8]) {
        if self.hypercall && crate::platform::xen::hypercall::console_write(bytes).is_err() {
            // Refused (a policy without writeconsole): the port from now on.
            self.hypercall = false;
        }
        if !self.hypercall {
            for &b in bytes {
                // SAFETY: 0xE9 is a write-only debug sink on QEMU and Xen.
                unsafe { outb(DEBUGCON, b) }
            }
        }
        if self.serial {
            for &b in bytes {
                serial_put(b);
            }
        }
        match self.pv.as_mut() {
            Some(pv) => pv.write(bytes),
            None => {
                let room = EARLY_MAX - self.early.len();
                // PANICS: `room` is at most the remaining capacity.
                let _ = self
                    .early
                    .extend_from_slice(&bytes[..bytes.len().min(room)]);
            }
        }
    }
}

impl Write for Console {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.put_bytes(s.as_bytes());
        Ok(())
    }
}

fn serial_put(b: u8) {
    // Bounded wait for the transmitter holding register (LSR bit 5).
    for _ in 0..100_000 {
        // SAFETY: COM1's line status register has no read side effects.
        if unsafe { inb(COM1 + 5) } & 0x20 != 0 {
            break;
        }
    }
    // SAFETY: writing the data register of COM1 sends one byte.
    unsafe { outb(COM1, b) }
}

/// Turns on the COM1 sink (plain QEMU only: a PVH domain has no UART).
pub fn enable_serial() {
    // 8N1, no interrupts, FIFO on; the divisor stays at QEMU's default.
    // SAFETY: programming COM1's line control, FIFO and interrupt registers.
    unsafe {
        outb(COM1 + 1, 0x00);
        outb(COM1 + 3, 0x03);
        outb(COM1 + 2, 0xC7);
    }
    CONSOLE.lock().serial = true;
}

/// Sends Xen's console output through `console_io` from now on (the
/// hypercall page must be installed).
pub fn use_console_io() {
    CONSOLE.lock().hypercall = true;
}

/// Adds the PV console ring as a sink, replaying the early output to it.
pub fn attach_pv(mut pv: PvConsole) {
    let mut c = CONSOLE.lock();
    pv.write(&c.early);
    c.early.clear();
    c.pv = Some(pv);
}

/// Sets how much the `log` backend prints.
pub fn set_log_level(level: log::LevelFilter) {
    log::set_max_level(level);
}

/// Waits (bounded) until the PV console backend has read everything.
pub fn flush() {
    if let Some(pv) = CONSOLE.lock().pv.as_mut() {
        pv.flush();
    }
}

/// Whether a PV console is attached and its backend has read everything;
/// `None` without a PV console.
pub fn pv_drained() -> Option<bool> {
    CONSOLE.lock().pv.as_ref().map(|pv| pv.drained())
}

/// Prints formatted text to every sink.
pub fn print(args: fmt::Arguments<'_>) {
    let _ = CONSOLE.lock().write_fmt(args);
}

/// Prints from the panic/exception path: takes the lock even if the code
/// that failed held it (one CPU, interrupts off: nobody else can).
pub fn print_emergency(args: fmt::Arguments<'_>) {
    if CONSOLE.is_locked() {
        // SAFETY: the only holder is the interrupted code on this CPU, which
        // will never run again (the failure path ends the domain).
        unsafe { CONSOLE.force_unlock() }
    }
    print(args);
}

/// `println!` for the image.
macro_rules! println {
    ($($arg:tt)*) => { $crate::platform::console::print(format_args!("{}\n", format_args!($($arg)*))) };
}
pub(crate) use println;

struct Logger;

impl log::Log for Logger {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            let ms = crate::platform::clock::now_ns() / 1_000_000;
            print(format_args!(
                "[{:>5}.{:03}] {:<5} {}\n",
                ms / 1000,
                ms % 1000,
                record.level(),
                record.args()
            ));
        }
    }
    fn flush(&self) {}
}

static LOGGER: Logger = Logger;

/// Installs the `log` backend.
pub fn init_log() {
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(log::LevelFilter::Info);
}
