//! The PV console ring (`xencons_interface`), output side.

use core::mem::offset_of;
use core::sync::atomic::{fence, AtomicU32, Ordering};

use xen_abi::console::{ConsoleInterface as L, OUT_RING_SIZE};

/// Longest a writer waits for ring space before dropping output.
const WAIT_NS: u64 = 2_000_000_000;

/// The console ring and its event channel.
pub struct PvConsole {
    ring: u64,
    port: u32,
    broken: bool,
}

impl PvConsole {
    /// Wraps the ring page at `ring` signalled through `port`.
    ///
    /// # Safety
    /// 1. `ring` is the console page Xen named (HVM_PARAM_CONSOLE_PFN),
    ///    mapped for the rest of the run.
    pub unsafe fn new(ring: u64, port: u32) -> Self {
        PvConsole {
            ring,
            port,
            broken: false,
        }
    }

    fn index(&self, off: usize) -> &AtomicU32 {
        // SAFETY: an index field inside the ring page (constructor precondition).
        unsafe { &*((self.ring + off as u64) as *const AtomicU32) }
    }

    /// Bytes queued, or `None` when the backend moved `out_cons` out of range.
    fn queued(&self) -> Option<usize> {
        let prod = self.index(offset_of!(L, out_prod)).load(Ordering::Relaxed);
        let cons = self.index(offset_of!(L, out_cons)).load(Ordering::Acquire);
        let n = prod.wrapping_sub(cons) as usize;
        (n <= OUT_RING_SIZE).then_some(n)
    }

    /// Queues `bytes`, waiting (bounded) for space; drops what does not fit.
    pub fn write(&mut self, mut bytes: &[u8]) {
        let deadline = crate::platform::clock::now_ns() + WAIT_NS;
        while !bytes.is_empty() && !self.broken {
            let Some(used) = self.queued() else {
                self.broken = true;
                return;
            };
            let free = OUT_RING_SIZE - used;
            if free == 0 {
                let _ = super::evtchn::send(self.port);
                if crate::platform::clock::now_ns() > deadline {
                    return;
                }
                let _ = super::hypercall::poll(
                    &[self.port],
                    crate::platform::clock::now_ns() + 10_000_000,
                );
                super::evtchn::take_pending(&super::shared_info(), self.port);
                continue;
            }
            let prod = self.index(offset_of!(L, out_prod)).load(Ordering::Relaxed);
            let n = free.min(bytes.len());
            let out = self.ring + offset_of!(L, output) as u64;
            for (i, &b) in bytes.iter().take(n).enumerate() {
                let at = out + (prod.wrapping_add(i as u32) as usize % OUT_RING_SIZE) as u64;
                // SAFETY: a byte inside the output ring of the page.
                unsafe { (at as *mut u8).write_volatile(b) };
            }
            fence(Ordering::Release);
            self.index(offset_of!(L, out_prod))
                .store(prod.wrapping_add(n as u32), Ordering::Release);
            // PANICS: n <= bytes.len() by construction.
            bytes = &bytes[n..];
        }
        let _ = super::evtchn::send(self.port);
    }

    /// Whether the backend has consumed everything queued so far.
    pub fn drained(&self) -> bool {
        !self.broken && self.queued() == Some(0)
    }

    /// Waits (bounded) until the backend consumed everything.
    pub fn flush(&mut self) {
        let deadline = crate::platform::clock::now_ns() + WAIT_NS;
        while !self.broken
            && self.queued().is_some_and(|n| n > 0)
            && crate::platform::clock::now_ns() < deadline
        {
            let _ = super::evtchn::send(self.port);
            let _ =
                super::hypercall::poll(&[self.port], crate::platform::clock::now_ns() + 10_000_000);
            super::evtchn::take_pending(&super::shared_info(), self.port);
        }
    }
}
