//! What the PVH loader tells the image: command line and memory map.
//!
//! Copied out of the loader's `hvm_start_info` at boot, before the heap may
//! reuse the memory it lies in. The loader is trusted no more than needed:
//! lengths are capped and a bad magic is an error.

use heapless::{String, Vec};
use xen_abi::start_info::{MemmapEntry, StartInfo, MEMMAP_TYPE_RAM, START_MAGIC};
use zerocopy::FromBytes;

/// Longest command line kept.
pub const CMDLINE_MAX: usize = 256;
/// Most RAM regions kept.
pub const REGIONS_MAX: usize = 16;

/// A RAM region `[start, end)`.
#[derive(Clone, Copy, Debug)]
pub struct Region {
    /// First byte.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
}

/// The boot information the image keeps.
pub struct BootInfo {
    /// The command line (lossy UTF-8, truncated to `CMDLINE_MAX`).
    pub cmdline: String<CMDLINE_MAX>,
    /// RAM regions from the memory map.
    pub ram: Vec<Region, REGIONS_MAX>,
}

/// Why the start info could not be read.
#[derive(Debug)]
#[allow(dead_code, reason = "the field is printed through Debug")]
pub enum BootInfoError {
    /// The start info magic is wrong: not booted through PVH.
    BadMagic(u32),
}

/// Reads the start info at physical address `pa` (identity mapped).
pub fn read(pa: u64) -> Result<BootInfo, BootInfoError> {
    let si: StartInfo = read_phys(pa);
    if si.magic != START_MAGIC {
        return Err(BootInfoError::BadMagic(si.magic));
    }
    let mut cmdline = String::new();
    if si.cmdline_paddr != 0 {
        for i in 0..CMDLINE_MAX as u64 {
            let b: u8 = read_phys(si.cmdline_paddr + i);
            if b == 0 {
                break;
            }
            let c = if b.is_ascii() && !b.is_ascii_control() {
                b as char
            } else {
                '?'
            };
            if cmdline.push(c).is_err() {
                break;
            }
        }
    }
    let mut ram = Vec::new();
    if si.version >= 1 {
        for i in 0..u64::from(si.memmap_entries.min(128)) {
            let e: MemmapEntry = read_phys(si.memmap_paddr + i * 24);
            if e.kind == MEMMAP_TYPE_RAM && e.size > 0 {
                let r = Region {
                    start: e.addr,
                    end: e.addr.saturating_add(e.size),
                };
                if ram.push(r).is_err() {
                    break;
                }
            }
        }
    }
    Ok(BootInfo { cmdline, ram })
}

/// Copies a `T` from identity-mapped physical memory.
fn read_phys<T: FromBytes>(pa: u64) -> T {
    // SAFETY: the loader placed the start info, command line and memory map
    // in RAM below 4 GiB, which the boot page tables identity-map; `T` is
    // valid for any bytes and is read unaligned.
    unsafe { core::ptr::read_unaligned(pa as *const T) }
}

impl BootInfo {
    /// The mode word: the first word of the command line.
    pub fn mode(&self) -> &str {
        self.cmdline.split_ascii_whitespace().next().unwrap_or("")
    }
}
