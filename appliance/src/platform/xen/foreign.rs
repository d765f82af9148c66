//! Mapping another domain's frames into our physmap, in batches.
//!
//! A [`ForeignWindow`] is a run of our own pages whose RAM was given back to
//! Xen, so their frame numbers are holes; [`ForeignWindow::map`] fills up to
//! `capacity()` of them with a foreign domain's frames in one
//! `XENMEM_add_to_physmap_batch` (`XENMAPSPACE_gmfn_foreign`). Xen reports a
//! result per entry: a frame the foreign domain has not populated fails
//! alone, the rest of the batch is mapped. The returned [`Batch`] unmaps
//! every mapped entry (`XENMEM_remove_from_physmap`) when it is dropped, so
//! no path (error, early return) leaves a foreign frame mapped: stock Xen
//! 4.17 does not drop foreign references when the mapper is torn down, so
//! a domain whose frames stayed mapped here could never be fully destroyed
//! (the rig's Xen carries patch 0003, which drops them; unmapping is still
//! the rule).
//!
//! The foreign domain may change its pages while we look at them; every
//! access here is a volatile copy, and callers treat what they read as a
//! snapshot of untrusted data.

use alloc::alloc::{alloc, dealloc};
use alloc::vec::Vec;
use core::alloc::Layout;

use xen_abi::errno::XenErrno;
use xen_abi::hypercall::{MulticallEntry, MEMORY_OP, MULTICALL};
use xen_abi::memory::*;
use xen_abi::{DomId, DOMID_SELF, PAGE_SHIFT, PAGE_SIZE};

use super::hypercall;
use super::Xen;

/// Most pages a window may have (`xen_add_to_physmap_batch.size` is 16 bits).
pub const MAX_WINDOW_PAGES: usize = 4096;

/// Entry result before Xen processed it (Xen writes 0 or a negative errno).
const NOT_DONE: i32 = 1;

/// Why a foreign mapping operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ForeignError {
    /// No heap for the window's pages or bookkeeping.
    OutOfMemory,
    /// A window of 0 or more than [`MAX_WINDOW_PAGES`] pages was asked for.
    BadWindowSize(usize),
    /// Giving the window's RAM back to Xen failed.
    Release(XenErrno),
    /// More frames asked for than the window has usable pages.
    TooMany {
        /// Frames asked for.
        asked: usize,
        /// Usable window pages.
        capacity: usize,
    },
    /// The whole batch hypercall failed (nothing stays mapped).
    Map(XenErrno),
    /// This entry is not mapped: Xen refused it (e.g. EINVAL for a frame the
    /// domain has not populated, EACCES when the policy forbids it).
    Entry {
        /// Index in the batch.
        index: usize,
        /// Xen's error for it.
        err: XenErrno,
    },
    /// Xen never processed this entry (the batch call failed before it).
    NotProcessed(usize),
    /// Index outside the batch.
    Index(usize),
    /// Offset and length run outside the page.
    Range,
    /// A write through a batch mapped for reading.
    ReadOnly,
}

impl core::fmt::Display for ForeignError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ForeignError::OutOfMemory => write!(f, "no memory for the foreign window"),
            ForeignError::BadWindowSize(n) => write!(f, "bad window size {n}"),
            ForeignError::Release(e) => write!(f, "releasing the window's RAM: {e}"),
            ForeignError::TooMany { asked, capacity } => {
                write!(f, "{asked} frames asked, window holds {capacity}")
            }
            ForeignError::Map(e) => write!(f, "add_to_physmap_batch: {e}"),
            ForeignError::Entry { index, err } => write!(f, "entry {index} not mapped: {err}"),
            ForeignError::NotProcessed(i) => write!(f, "entry {i} not processed"),
            ForeignError::Index(i) => write!(f, "entry {i} outside the batch"),
            ForeignError::Range => write!(f, "access outside the page"),
            ForeignError::ReadOnly => write!(f, "write through a read-only batch"),
        }
    }
}

/// What a batch is for. Xen maps foreign frames writable either way; a
/// [`Access::Read`] batch refuses writes through its API.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Copy pages out (source role).
    Read,
    /// Also write pages (destination role, filling a shell).
    Write,
}

/// Counters over a window's life.
#[derive(Clone, Copy, Debug, Default)]
pub struct MapStats {
    /// Batch hypercalls made.
    pub batches: u64,
    /// Entries mapped.
    pub mapped: u64,
    /// Entries Xen refused.
    pub failed: u64,
    /// Entries unmapped again.
    pub unmapped: u64,
    /// Unmaps that failed (the window page is then never used again).
    pub unmap_failed: u64,
    /// Time spent in the map hypercall, ns.
    pub map_ns: u64,
    /// Time spent unmapping, ns.
    pub unmap_ns: u64,
}

/// A run of our own frames turned into holes for foreign mappings.
pub struct ForeignWindow {
    xen: &'static Xen,
    base: u64,
    layout: Layout,
    /// Frame numbers of window pages that may be mapped into.
    usable: Vec<u64>,
    /// Window pages whose unmap failed: they may still hold a foreign frame.
    poisoned: Vec<u64>,
    stats: MapStats,
}

/// Gives our frames in `gfns` back to Xen (`XENMEM_decrease_reservation`).
fn release(gfns: &mut [u64]) -> Result<(), XenErrno> {
    let mut r = MemoryReservation {
        extent_start: gfns.as_mut_ptr() as u64,
        nr_extents: gfns.len() as u64,
        domid: DOMID_SELF,
        ..Default::default()
    };
    // SAFETY: XENMEM_decrease_reservation takes an xen_memory_reservation
    // whose extent array (`gfns`) lives across the call; nothing reads or
    // writes those frames' memory afterwards (they become holes).
    let done = unsafe { hypercall::op(MEMORY_OP, XENMEM_DECREASE_RESERVATION, &mut r)? };
    if done != gfns.len() as u64 {
        return Err(xen_abi::errno::ENOMEM);
    }
    Ok(())
}

/// Unmaps per multicall: one guest exit removes this many frames.
const UNMAP_PER_MULTICALL: usize = 128;

/// `XENMEM_remove_from_physmap` of each of our frames `gfns` (at most
/// [`UNMAP_PER_MULTICALL`]) in one `multicall`; `out[i]` gets frame `i`'s
/// result. Under nested emulation a guest exit costs far more than the
/// unmap itself, so this is what makes copying a guest affordable.
fn remove_many(gfns: &[u64], out: &mut [Result<(), XenErrno>]) {
    let n = gfns.len().min(UNMAP_PER_MULTICALL).min(out.len());
    let mut args = [RemoveFromPhysmap {
        domid: DOMID_SELF,
        _pad: [0; 3],
        gpfn: 0,
    }; UNMAP_PER_MULTICALL];
    let mut calls = [MulticallEntry::default(); UNMAP_PER_MULTICALL];
    for i in 0..n {
        args[i].gpfn = gfns[i];
        calls[i] = MulticallEntry {
            op: u64::from(MEMORY_OP),
            result: 1,
            args: [
                u64::from(XENMEM_REMOVE_FROM_PHYSMAP),
                &mut args[i] as *mut RemoveFromPhysmap as u64,
                0,
                0,
                0,
                0,
            ],
        };
    }
    // SAFETY: `multicall(calls, n)`: the entry array and every argument
    // struct it points to live on this stack frame across the call; Xen
    // writes only each entry's `result`.
    let r = unsafe { hypercall::raw(MULTICALL, calls.as_mut_ptr() as u64, n as u64, 0, 0, 0) };
    for i in 0..n {
        out[i] = if r != 0 {
            // The multicall itself failed: fall back to one call per frame.
            remove(gfns[i])
        } else {
            match calls[i].result {
                0 => Ok(()),
                e if e < 0 => Err(XenErrno(e.unsigned_abs() as u32)),
                _ => remove(gfns[i]),
            }
        };
    }
}

/// `XENMEM_remove_from_physmap` of our frame `gfn`.
fn remove(gfn: u64) -> Result<(), XenErrno> {
    let mut r = RemoveFromPhysmap {
        domid: DOMID_SELF,
        _pad: [0; 3],
        gpfn: gfn,
    };
    // SAFETY: XENMEM_remove_from_physmap takes an xen_remove_from_physmap.
    unsafe { hypercall::op(MEMORY_OP, XENMEM_REMOVE_FROM_PHYSMAP, &mut r)? };
    Ok(())
}

impl ForeignWindow {
    /// Takes `pages` pages of heap and gives their RAM back to Xen.
    pub fn new(xen: &'static Xen, pages: usize) -> Result<Self, ForeignError> {
        if pages == 0 || pages > MAX_WINDOW_PAGES {
            return Err(ForeignError::BadWindowSize(pages));
        }
        let layout = Layout::from_size_align(pages * PAGE_SIZE, PAGE_SIZE)
            .map_err(|_| ForeignError::OutOfMemory)?;
        let mut usable = Vec::new();
        usable
            .try_reserve_exact(pages)
            .map_err(|_| ForeignError::OutOfMemory)?;
        let mut poisoned = Vec::new();
        poisoned
            .try_reserve_exact(pages)
            .map_err(|_| ForeignError::OutOfMemory)?;
        // SAFETY: the layout has a non-zero size.
        let p = unsafe { alloc(layout) };
        if p.is_null() {
            return Err(ForeignError::OutOfMemory);
        }
        let base = p as u64;
        usable.extend((0..pages as u64).map(|i| (base >> PAGE_SHIFT) + i));
        let mut list = usable.clone();
        if let Err(e) = release(&mut list) {
            // Some frames may be holes now: never hand this memory back to
            // the allocator.
            log::error!("foreign window: releasing {pages} pages failed: {e}; leaking them");
            return Err(ForeignError::Release(e));
        }
        Ok(ForeignWindow {
            xen,
            base,
            layout,
            usable,
            poisoned,
            stats: MapStats::default(),
        })
    }

    /// Pages a batch may map at most.
    pub fn capacity(&self) -> usize {
        self.usable.len()
    }

    /// Counters so far.
    pub fn stats(&self) -> MapStats {
        self.stats
    }

    /// Window pages lost to failed unmaps.
    pub fn poisoned(&self) -> usize {
        self.poisoned.len()
    }

    /// Maps domain `dom`'s frames `gfns` (at most [`capacity`](Self::capacity))
    /// into the window. Entries Xen refuses are reported per entry by the
    /// returned batch; the call itself fails only when the hypercall does, and
    /// then nothing stays mapped.
    pub fn map(
        &mut self,
        dom: DomId,
        gfns: &[u64],
        access: Access,
    ) -> Result<Batch<'_>, ForeignError> {
        let n = gfns.len();
        if n > self.usable.len() {
            return Err(ForeignError::TooMany {
                asked: n,
                capacity: self.usable.len(),
            });
        }
        let mut idxs = Vec::new();
        idxs.try_reserve_exact(n)
            .map_err(|_| ForeignError::OutOfMemory)?;
        idxs.extend_from_slice(gfns);
        let mut slots = Vec::new();
        slots
            .try_reserve_exact(n)
            .map_err(|_| ForeignError::OutOfMemory)?;
        slots.extend_from_slice(self.usable.get(..n).ok_or(ForeignError::OutOfMemory)?);
        let mut errs = Vec::new();
        errs.try_reserve_exact(n)
            .map_err(|_| ForeignError::OutOfMemory)?;
        errs.resize(n, NOT_DONE);
        let mut arg = AddToPhysmapBatch {
            domid: DOMID_SELF,
            space: XENMAPSPACE_GMFN_FOREIGN as u16,
            // n ≤ capacity ≤ MAX_WINDOW_PAGES < 65536.
            size: n as u16,
            foreign_domid: dom,
            idxs: idxs.as_ptr() as u64,
            gpfns: slots.as_ptr() as u64,
            errs: errs.as_mut_ptr() as u64,
        };
        let t0 = self.xen.now_ns();
        let r = if n == 0 {
            Ok(0)
        } else {
            // SAFETY: XENMEM_add_to_physmap_batch takes an
            // xen_add_to_physmap_batch whose three arrays (`idxs`, `slots`,
            // `errs`, `n` entries each) live across the call; Xen writes only
            // `errs`. The destination frames are window holes that nothing
            // else uses while this batch exists (it borrows the window).
            unsafe { hypercall::op(MEMORY_OP, XENMEM_ADD_TO_PHYSMAP_BATCH, &mut arg) }
        };
        self.stats.map_ns += self.xen.now_ns().saturating_sub(t0);
        self.stats.batches += 1;
        let batch = Batch {
            window: self,
            dom,
            access,
            gfns: idxs,
            slots,
            errs,
        };
        let ok = batch.errs.iter().filter(|&&e| e == 0).count() as u64;
        batch.window.stats.mapped += ok;
        batch.window.stats.failed += batch.errs.iter().filter(|&&e| e < 0).count() as u64;
        match r {
            // Dropping the batch unmaps whatever Xen mapped before failing.
            Err(e) => {
                drop(batch);
                Err(ForeignError::Map(e))
            }
            Ok(_) => Ok(batch),
        }
    }
}

impl Drop for ForeignWindow {
    fn drop(&mut self) {
        // Batches borrow the window, so nothing is mapped now except pages
        // whose unmap failed. Give the holes RAM again, then the allocator
        // may have the memory back; if anything fails, leak it instead.
        if !self.poisoned.is_empty() {
            log::error!(
                "foreign window: {} pages may still hold foreign frames; leaking the window",
                self.poisoned.len()
            );
            return;
        }
        let mut gfns = self.usable.clone();
        let mut r = MemoryReservation {
            extent_start: gfns.as_mut_ptr() as u64,
            nr_extents: gfns.len() as u64,
            domid: DOMID_SELF,
            ..Default::default()
        };
        // SAFETY: XENMEM_populate_physmap takes an xen_memory_reservation
        // whose extent array (`gfns`) lives across the call.
        let done = unsafe { hypercall::op(MEMORY_OP, XENMEM_POPULATE_PHYSMAP, &mut r) };
        if done != Ok(gfns.len() as u64) {
            log::error!("foreign window: repopulating failed ({done:?}); leaking the window");
            return;
        }
        // SAFETY: allocated in `new` with this layout; every page has RAM
        // again and nothing references the memory.
        unsafe { dealloc(self.base as *mut u8, self.layout) };
    }
}

/// Frames of one foreign domain mapped into a window; unmapped on drop.
pub struct Batch<'w> {
    window: &'w mut ForeignWindow,
    dom: DomId,
    access: Access,
    gfns: Vec<u64>,
    slots: Vec<u64>,
    errs: Vec<i32>,
}

/// Result of [`Batch::unmap`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Unmapped {
    /// Entries unmapped.
    pub ok: usize,
    /// Entries whose unmap failed (their window pages are retired).
    pub failed: usize,
}

impl Batch<'_> {
    /// Entries in the batch.
    pub fn len(&self) -> usize {
        self.gfns.len()
    }

    /// Whether the batch has no entries.
    #[allow(dead_code, reason = "API for the migration roles")]
    pub fn is_empty(&self) -> bool {
        self.gfns.is_empty()
    }

    /// The foreign domain.
    #[allow(dead_code, reason = "API for the migration roles")]
    pub fn domid(&self) -> DomId {
        self.dom
    }

    /// The foreign frame number of entry `i`.
    pub fn gfn(&self, i: usize) -> Option<u64> {
        self.gfns.get(i).copied()
    }

    /// Entries Xen mapped.
    pub fn mapped_count(&self) -> usize {
        self.errs.iter().filter(|&&e| e == 0).count()
    }

    /// Whether entry `i` is mapped, or Xen's error for it.
    pub fn entry(&self, i: usize) -> Result<(), ForeignError> {
        match self.errs.get(i) {
            None => Err(ForeignError::Index(i)),
            Some(0) => Ok(()),
            Some(&e) if e < 0 => Err(ForeignError::Entry {
                index: i,
                err: XenErrno(e.unsigned_abs()),
            }),
            Some(_) => Err(ForeignError::NotProcessed(i)),
        }
    }

    /// Address of entry `i`'s page in our (identity-mapped) memory.
    ///
    /// For callers that must avoid a copy: the page belongs to another
    /// domain that may change it at any time, so only volatile or atomic
    /// accesses are sound, and not after the batch is dropped.
    pub fn addr(&self, i: usize) -> Result<u64, ForeignError> {
        self.entry(i)?;
        let slot = self.slots.get(i).ok_or(ForeignError::Index(i))?;
        Ok(slot << PAGE_SHIFT)
    }

    fn span(&self, i: usize, offset: usize, len: usize) -> Result<u64, ForeignError> {
        if offset.checked_add(len).is_none_or(|e| e > PAGE_SIZE) {
            return Err(ForeignError::Range);
        }
        Ok(self.addr(i)? + offset as u64)
    }

    /// Copies `out.len()` bytes from `offset` of entry `i`'s page.
    pub fn read(&self, i: usize, offset: usize, out: &mut [u8]) -> Result<(), ForeignError> {
        let a = self.span(i, offset, out.len())?;
        if a % 8 == 0 && out.len().is_multiple_of(8) {
            // Whole words: an eighth of the accesses (this is the copy loop
            // of every page a migration sends).
            for (k, w) in out.chunks_exact_mut(8).enumerate() {
                // SAFETY: an aligned word inside a mapped foreign page
                // (checked by `span`), which stays mapped while `self` lives.
                let v = unsafe { ((a + 8 * k as u64) as *const u64).read_volatile() };
                w.copy_from_slice(&v.to_ne_bytes());
            }
            return Ok(());
        }
        for (k, b) in out.iter_mut().enumerate() {
            // SAFETY: inside a mapped foreign page (checked by `span`), which
            // stays mapped while `self` lives.
            *b = unsafe { ((a + k as u64) as *const u8).read_volatile() };
        }
        Ok(())
    }

    /// Copies entry `i`'s whole page.
    pub fn copy_page(&self, i: usize, out: &mut [u8; PAGE_SIZE]) -> Result<(), ForeignError> {
        let a = self.addr(i)?;
        for (k, w) in out.chunks_exact_mut(8).enumerate() {
            // SAFETY: an aligned word inside a mapped foreign page, which
            // stays mapped while `self` lives.
            let v = unsafe { ((a + 8 * k as u64) as *const u64).read_volatile() };
            w.copy_from_slice(&v.to_le_bytes());
        }
        Ok(())
    }

    /// Writes `data` at `offset` of entry `i`'s page (a [`Access::Write`] batch).
    pub fn write(&mut self, i: usize, offset: usize, data: &[u8]) -> Result<(), ForeignError> {
        if self.access != Access::Write {
            return Err(ForeignError::ReadOnly);
        }
        let a = self.span(i, offset, data.len())?;
        if a % 8 == 0 && data.len().is_multiple_of(8) {
            for (k, w) in data.chunks_exact(8).enumerate() {
                let mut v = [0u8; 8];
                v.copy_from_slice(w);
                // SAFETY: an aligned word inside a mapped foreign page
                // (checked by `span`) of a batch mapped for writing.
                unsafe { ((a + 8 * k as u64) as *mut u64).write_volatile(u64::from_ne_bytes(v)) };
            }
            return Ok(());
        }
        for (k, &b) in data.iter().enumerate() {
            // SAFETY: inside a mapped foreign page (checked by `span`) of a
            // batch mapped for writing.
            unsafe { ((a + k as u64) as *mut u8).write_volatile(b) };
        }
        Ok(())
    }

    /// Writes entry `i`'s whole page (a [`Access::Write`] batch).
    pub fn write_page(&mut self, i: usize, data: &[u8; PAGE_SIZE]) -> Result<(), ForeignError> {
        if self.access != Access::Write {
            return Err(ForeignError::ReadOnly);
        }
        let a = self.addr(i)?;
        for (k, w) in data.chunks_exact(8).enumerate() {
            let mut b = [0u8; 8];
            b.copy_from_slice(w);
            // SAFETY: an aligned word inside a mapped foreign page of a batch
            // mapped for writing.
            unsafe { ((a + 8 * k as u64) as *mut u64).write_volatile(u64::from_le_bytes(b)) };
        }
        Ok(())
    }

    /// Unmaps every mapped entry now and reports how it went (dropping the
    /// batch does the same, silently but for a log line).
    pub fn unmap(mut self) -> Unmapped {
        self.unmap_all()
    }

    fn unmap_all(&mut self) -> Unmapped {
        let t0 = self.window.xen.now_ns();
        let mut u = Unmapped::default();
        let mut todo: [u64; UNMAP_PER_MULTICALL] = [0; UNMAP_PER_MULTICALL];
        let mut results = [Ok(()); UNMAP_PER_MULTICALL];
        let mut i = 0usize;
        while i < self.slots.len() {
            // The next run of mapped entries, at most one multicall's worth.
            let mut n = 0usize;
            while i < self.slots.len() && n < UNMAP_PER_MULTICALL {
                if let (Some(&slot), Some(e)) = (self.slots.get(i), self.errs.get_mut(i)) {
                    if *e == 0 {
                        todo[n] = slot;
                        n += 1;
                    }
                    // Whatever happens, this entry is no longer ours to unmap.
                    *e = if *e == 0 { NOT_DONE } else { *e };
                }
                i += 1;
            }
            if n == 0 {
                continue;
            }
            remove_many(&todo[..n], &mut results[..n]);
            for (slot, r) in todo[..n].iter().zip(results[..n].iter()) {
                match r {
                    Ok(()) => u.ok += 1,
                    Err(err) => {
                        u.failed += 1;
                        log::error!(
                            "foreign: unmapping frame {slot:#x} failed: {err}; retiring it"
                        );
                        self.window.usable.retain(|s| s != slot);
                        self.window.poisoned.push(*slot);
                    }
                }
            }
        }
        let w = &mut *self.window;
        w.stats.unmap_ns += w.xen.now_ns().saturating_sub(t0);
        w.stats.unmapped += u.ok as u64;
        w.stats.unmap_failed += u.failed as u64;
        u
    }
}

impl Drop for Batch<'_> {
    fn drop(&mut self) {
        let u = self.unmap_all();
        if u.failed != 0 {
            log::error!(
                "foreign: {} frames of domain {} stay mapped",
                u.failed,
                self.dom
            );
        }
    }
}
