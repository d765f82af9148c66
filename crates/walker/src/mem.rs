//! Guest-physical memory as the walker sees it: a read-only port, and an
//! in-memory image that implements it for tests and benchmarks.

use alloc::vec;
use alloc::vec::Vec;

/// Size of a guest frame.
pub const PAGE_SIZE: u64 = 4096;
/// log2 of [`PAGE_SIZE`].
pub const PAGE_SHIFT: u32 = 12;

/// Why a guest-physical read failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemError {
    /// The address range is not inside guest RAM.
    OutsideRam,
    /// The frame exists but could not be read (hole, mapping failure).
    Unreadable,
}

/// Read access to a guest's physical memory.
///
/// The appliance implements it with foreign mappings of the guest's frames;
/// tests implement it with [`ImageMem`]. Reads may be of any length; the
/// walker never asks for more than one page at a time.
pub trait PhysMem {
    /// Frames in the guest's physical address space (pfn bound; bitmaps
    /// produced by the walker have this many bits).
    fn nr_pfns(&self) -> u64;
    /// Fills `buf` from guest-physical address `gpa`.
    fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), MemError>;
    /// Says that frames `pfns` are about to be read, so that a memory that
    /// copies frames in batches can ask for them together. Best effort:
    /// it may keep fewer, and reads stay correct either way.
    fn prefetch(&self, _pfns: &[u64]) {}
}

impl<T: PhysMem + ?Sized> PhysMem for &T {
    fn nr_pfns(&self) -> u64 {
        (**self).nr_pfns()
    }
    fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), MemError> {
        (**self).read(gpa, buf)
    }
    fn prefetch(&self, pfns: &[u64]) {
        (**self).prefetch(pfns)
    }
}

/// Reads a little-endian u64 at `gpa`.
pub fn read_u64<M: PhysMem + ?Sized>(mem: &M, gpa: u64) -> Result<u64, MemError> {
    let mut b = [0u8; 8];
    mem.read(gpa, &mut b)?;
    Ok(u64::from_le_bytes(b))
}

/// Reads a little-endian u32 at `gpa`.
pub fn read_u32<M: PhysMem + ?Sized>(mem: &M, gpa: u64) -> Result<u32, MemError> {
    let mut b = [0u8; 4];
    mem.read(gpa, &mut b)?;
    Ok(u32::from_le_bytes(b))
}

/// A guest's RAM held in one host buffer (pfn 0 at offset 0), with
/// optional unreadable frames (holes).
#[derive(Clone, Debug)]
pub struct ImageMem {
    bytes: Vec<u8>,
    holes: Vec<u64>,
}

impl ImageMem {
    /// A zeroed image of `nr_pfns` frames.
    pub fn new(nr_pfns: u64) -> Self {
        let len = usize::try_from(nr_pfns.saturating_mul(PAGE_SIZE)).unwrap_or(0);
        ImageMem {
            bytes: vec![0; len],
            holes: Vec::new(),
        }
    }

    /// An image holding exactly `bytes` (rounded down to whole frames).
    pub fn from_bytes(mut bytes: Vec<u8>) -> Self {
        let whole = bytes.len() - bytes.len() % PAGE_SIZE as usize;
        bytes.truncate(whole);
        ImageMem {
            bytes,
            holes: Vec::new(),
        }
    }

    /// The raw bytes (for building images).
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The raw bytes, writable (for building and corrupting images).
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.bytes
    }

    /// Makes frame `pfn` unreadable.
    pub fn punch_hole(&mut self, pfn: u64) {
        if let Err(i) = self.holes.binary_search(&pfn) {
            self.holes.insert(i, pfn);
        }
    }

    /// Writes `data` at `gpa`; out-of-range writes are dropped and reported.
    pub fn write(&mut self, gpa: u64, data: &[u8]) -> bool {
        let Ok(start) = usize::try_from(gpa) else {
            return false;
        };
        let Some(end) = start.checked_add(data.len()) else {
            return false;
        };
        match self.bytes.get_mut(start..end) {
            Some(dst) => {
                dst.copy_from_slice(data);
                true
            }
            None => false,
        }
    }

    /// Writes a little-endian u64.
    pub fn write_u64(&mut self, gpa: u64, v: u64) -> bool {
        self.write(gpa, &v.to_le_bytes())
    }

    /// Writes a little-endian u32.
    pub fn write_u32(&mut self, gpa: u64, v: u32) -> bool {
        self.write(gpa, &v.to_le_bytes())
    }
}

impl PhysMem for ImageMem {
    fn nr_pfns(&self) -> u64 {
        self.bytes.len() as u64 / PAGE_SIZE
    }

    fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), MemError> {
        let start = usize::try_from(gpa).map_err(|_| MemError::OutsideRam)?;
        let end = start.checked_add(buf.len()).ok_or(MemError::OutsideRam)?;
        let src = self.bytes.get(start..end).ok_or(MemError::OutsideRam)?;
        if !self.holes.is_empty() && !buf.is_empty() {
            let first = gpa >> PAGE_SHIFT;
            let last = (end as u64 - 1) >> PAGE_SHIFT;
            let i = self.holes.partition_point(|&h| h < first);
            if self.holes.get(i).is_some_and(|&h| h <= last) {
                return Err(MemError::Unreadable);
            }
        }
        buf.copy_from_slice(src);
        Ok(())
    }
}
