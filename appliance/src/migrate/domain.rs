//! The migration protocol's ports on real hypercalls: the guest being
//! migrated away ([`XenSource`]), the paused shell that receives it
//! ([`XenShell`]) and the clock.
//!
//! Errors become a [`PortError`]: Xen's errno when there is one, else the
//! condition's name; each is logged with its full text here, because the
//! protocol only carries the name.

use alloc::vec::Vec;
use core::cell::RefCell;

use depmig_control::bitmap_route::{self, Buffer, Reply, Request, Route};
use depmig_control::keys;
use depmig_migrate::{DestDomain, DirtyBitmap, PortError, SourceDomain, TscInfo};
use xen_abi::errno::XenErrno;
use xen_abi::DomId;

use crate::platform::xen::domctl::{self, DomctlError};
use crate::platform::xen::foreign::{Access, ForeignError, ForeignWindow};
use crate::platform::xen::xenstore::Xenstore;
use crate::platform::xen::Xen;

const PAGE: usize = 4096;
/// How long the guest may take to suspend after the request.
const SUSPEND_TIMEOUT_NS: u64 = 30_000_000_000;
/// Most frames a domain may have for us (64 GiB): bounds every loop and
/// allocation sized by a domain's `maximum_gpfn`.
pub const MAX_PFNS: u64 = 1 << 24;

fn port_error_of(e: &DomctlError) -> PortError {
    match e {
        DomctlError::Xen(x) => PortError::Xen(*x),
        DomctlError::NoSuchDomain(_) => PortError::NoSuchDomain,
        DomctlError::BufferSize { .. } => PortError::BufferSize,
        DomctlError::Context(_) => PortError::HvmContext,
        DomctlError::NotSuspended { .. } => PortError::NotSuspended,
        DomctlError::ShutDownOtherwise(r) => PortError::ShutDownOtherwise(*r),
        DomctlError::Timeout => PortError::Timeout,
        DomctlError::Xenstore(_) => PortError::Xenstore,
    }
}

fn dom_err(what: &str, e: DomctlError) -> PortError {
    log::error!("migrate: {what}: {e}");
    port_error_of(&e)
}

fn map_err(what: &str, e: ForeignError) -> PortError {
    log::error!("migrate: {what}: {e}");
    match e {
        ForeignError::Map(x) | ForeignError::Release(x) => PortError::Xen(x),
        ForeignError::Entry { err, .. } => PortError::Xen(err),
        _ => PortError::Foreign,
    }
}

/// Frames in `dom`'s address space (`maximum_gpfn + 1`), refused above
/// [`MAX_PFNS`].
pub fn nr_pfns_of(dom: DomId) -> Result<u64, PortError> {
    let max = domctl::maximum_gpfn(dom).map_err(|e| dom_err("maximum_gpfn", e))?;
    let n = max.saturating_add(1);
    if n > MAX_PFNS {
        log::error!("migrate: domain {dom} claims {n} frames, more than we handle ({MAX_PFNS})");
        return Err(PortError::TooManyFrames);
    }
    Ok(n)
}

/// Copies `pfns` of `dom` (`whose` frames, for the log) into `buf` a
/// window at a time; absent frames are marked in `holes`.
fn read_frames(
    win: &mut ForeignWindow,
    dom: DomId,
    pfns: &[u64],
    buf: &mut [u8],
    holes: &mut [bool],
    whose: &str,
) -> Result<(), PortError> {
    let cap = win.capacity().max(1);
    for (k, chunk) in pfns.chunks(cap).enumerate() {
        let b = win
            .map(dom, chunk, Access::Read)
            .map_err(|e| map_err(&alloc::format!("mapping {whose} frames"), e))?;
        for i in 0..chunk.len() {
            let at = k * cap + i;
            match b.entry(i) {
                Ok(()) => {
                    let page = buf
                        .get_mut(at * PAGE..(at + 1) * PAGE)
                        .ok_or(PortError::BadLength)?;
                    b.read(i, 0, page)
                        .map_err(|e| map_err(&alloc::format!("reading a {whose} frame"), e))?;
                }
                Err(e) if is_hole(&e) => {
                    if let Some(h) = holes.get_mut(at) {
                        *h = true;
                    }
                }
                Err(e) => return Err(map_err(&alloc::format!("mapping a {whose} frame"), e)),
            }
        }
    }
    Ok(())
}

/// Whether a per-entry mapping error means "no frame there" (a hole) rather
/// than a refusal that must fail the migration.
fn is_hole(e: &ForeignError) -> bool {
    // Xen answers a gfn without a page with EINVAL or ENOENT (p2m lookup);
    // EPERM/EACCES (policy) and anything else are real failures.
    matches!(e, ForeignError::Entry { err, .. }
        if *err == xen_abi::errno::EINVAL || *err == xen_abi::errno::ENOENT)
}

/// Above this many pages a PVH guest's RAM may continue above the MMIO
/// hole below 4 GiB, and every frame is a candidate.
const LOW_RAM_MAX: u64 = 0xE0000;

/// libxl's ACPI tables of a PVH guest: `NUM_ACPI_PAGES` (16) frames from
/// `ACPI_INFO_PHYSICAL_ADDRESS` (0xfc000000), in the MMIO hole, populated
/// by the domain builder. The guest may write them (the FACS holds its
/// waking vector and global lock), so they travel like any other page.
const ACPI_FRAMES: core::ops::Range<u64> = 0xfc000..0xfc010;

/// Marks in `out` the frames of `dom` that may be populated: its RAM (from
/// frame 0 to a little past its page limit), libxl's ACPI tables
/// ([`ACPI_FRAMES`]) and the special frames below its highest one, or
/// every frame for a guest too big for that layout.
/// Frames marked but not populated cost one refused mapping each and go to
/// the destination as holes; probing them all beforehand would double the
/// mapping work, which is what copying costs under emulation.
fn candidate_frames(
    xen: &Xen,
    dom: DomId,
    nr: u64,
    out: &mut DirtyBitmap,
) -> Result<u64, PortError> {
    let info = domctl::getdomaininfo(xen, dom).map_err(|e| dom_err("domain info", e))?;
    let limit = info.max_pages.max(info.tot_pages);
    let mut n = 0u64;
    if limit > LOW_RAM_MAX {
        out.set_all();
        return Ok(nr);
    }
    let low_end = limit.saturating_add(0x1000).min(nr);
    let high_start = nr.saturating_sub(0x100).max(low_end);
    let acpi = ACPI_FRAMES.start.max(low_end)..ACPI_FRAMES.end.min(high_start);
    for pfn in (0..low_end).chain(acpi).chain(high_start..nr) {
        if out.set(pfn) {
            n += 1;
        }
    }
    log::info!(
        "migrate: domain {dom}: {n} candidate frames for {} pages held ({nr} addressable)",
        info.tot_pages
    );
    Ok(n)
}

/// How long dom0 may take to answer a bitmap request (it polls our keys
/// every 50 ms while it serves the route; the rest is one domctl).
const DOM0_REPLY_NS: u64 = 20_000_000_000;
/// How long one wait for a xenstore event lasts before the reply is read
/// again (a watch event may be missed between a read and the wait).
const DOM0_POLL_NS: u64 = 20_000_000;

/// The dom0 route ([`bitmap_route`]): our buffer, which dom0 maps, and the
/// last request's sequence.
///
/// Once published, the buffer is dom0's to write into whenever it serves a
/// request, even one we gave up waiting for: it is never freed (one per
/// migration, at most 16 MiB; the appliance powers off after it), and we
/// touch it only through a raw pointer, with volatile accesses, since
/// writes land in it behind the compiler's back.
struct Dom0Bitmap {
    /// The buffer's first word: `frames` whole frames, page-aligned.
    base: *mut u64,
    buffer: Buffer,
    seq: u64,
}

impl Dom0Bitmap {
    /// A page-aligned buffer for `nr` guest frames, published to dom0, with
    /// a watch on its reply.
    fn new(xs: &RefCell<Xenstore>, nr: u64) -> Result<Dom0Bitmap, PortError> {
        let frames = nr.div_ceil(bitmap_route::PAGES_PER_FRAME);
        let words = usize::try_from(frames)
            .ok()
            .and_then(|f| f.checked_mul(PAGE / 8))
            .ok_or(PortError::NoBuffer)?;
        let mut store = Vec::new();
        store
            .try_reserve_exact(words + PAGE / 8 - 1)
            .map_err(|_| PortError::NoBuffer)?;
        store.resize(words + PAGE / 8 - 1, 0u64);
        let store: &'static mut [u64] = store.leak();
        // Our memory is identity-mapped: an address is its frame number
        // times the page size.
        let addr = store.as_ptr() as usize;
        let off = (PAGE - addr % PAGE) % PAGE / 8;
        let first = (addr + off * 8) / PAGE;
        let base = store
            .get_mut(off..off + words)
            .ok_or(PortError::BadLength)?
            .as_mut_ptr();
        let buffer = Buffer::new(first as u64, nr).map_err(|e| {
            log::error!("migrate: bitmap buffer for {nr} frames: {e}");
            PortError::NoBuffer
        })?;
        let mut x = xs.borrow_mut();
        x.watch(keys::BITMAP_REPLY, "bitmap")
            .map_err(|e| xs_err("watching bitmap-reply", e))?;
        // Unlike the other keys, a failure here is fatal at once: dom0
        // cannot serve a buffer it never heard of.
        x.write(keys::BITMAP, buffer.to_text().as_bytes())
            .map_err(|e| xs_err("publishing the bitmap buffer", e))?;
        log::info!(
            "migrate: bitmap buffer for dom0: frames {:#x}+{} for {nr} guest frames",
            buffer.first_gfn,
            buffer.frames
        );
        Ok(Dom0Bitmap {
            base,
            buffer,
            seq: 0,
        })
    }

    /// Asks dom0 for a CLEAN into our buffer, waits for its answer and ORs
    /// the bitmap into `out`.
    fn collect(
        &mut self,
        xen: &Xen,
        xs: &RefCell<Xenstore>,
        final_pass: bool,
        out: &mut DirtyBitmap,
    ) -> Result<(), PortError> {
        // Whole words of the bitmap: inside the buffer's frames (Buffer
        // makes frames = ceil(pages / 32768), and 512 words a frame).
        let words = self.buffer.pages.div_ceil(64) as usize;
        // Xen writes only ceil(pages / 8) bytes: no bit may stay from the
        // last round.
        for i in 0..words {
            // SAFETY: `base` points to `frames * 512 >= words` leaked,
            // aligned u64s that nothing else in this program references.
            unsafe { core::ptr::write_volatile(self.base.add(i), 0) };
        }
        self.seq += 1;
        let req = Request {
            seq: self.seq,
            final_pass,
        };
        super::control::publish(&mut xs.borrow_mut(), keys::BITMAP_REQUEST, &req.to_text());
        let deadline = xen.now_ns().saturating_add(DOM0_REPLY_NS);
        let reply = loop {
            let text = {
                let mut x = xs.borrow_mut();
                x.read_string(keys::BITMAP_REPLY).unwrap_or_default()
            };
            // Empty until dom0's first answer; an earlier answer until this
            // one comes.
            if !text.is_empty() {
                match Reply::parse(&text) {
                    Ok(r) if r.seq() == self.seq => break r,
                    Ok(_) => {}
                    Err(e) => {
                        log::error!("migrate: dom0's bitmap reply {text:?}: {e}");
                        return Err(PortError::Dom0Reply);
                    }
                }
            }
            let now = xen.now_ns();
            if now >= deadline {
                log::error!(
                    "migrate: dom0 did not answer bitmap request {} within {} s",
                    self.seq,
                    DOM0_REPLY_NS / 1_000_000_000
                );
                return Err(PortError::Dom0Silent);
            }
            let _ = xs
                .borrow_mut()
                .next_event(now.saturating_add(DOM0_POLL_NS).min(deadline));
        };
        match reply {
            Reply::Ok { .. } => {}
            Reply::Err { errno, .. } => {
                log::error!("migrate: dom0's log-dirty clean for us failed: errno {errno}");
                return Err(PortError::Dom0Clean(XenErrno(
                    u32::try_from(errno).unwrap_or(u32::MAX),
                )));
            }
        }
        // dom0's domctl wrote the buffer through its own mapping of these
        // frames: read it as memory written behind the compiler's back.
        core::sync::atomic::fence(core::sync::atomic::Ordering::SeqCst);
        for (i, o) in out.words_mut().iter_mut().take(words).enumerate() {
            // SAFETY: as above; `i < words`.
            *o |= unsafe { core::ptr::read_volatile(self.base.add(i)) };
        }
        out.trim();
        Ok(())
    }
}

fn xs_err(what: &str, e: crate::platform::xen::xenstore::XsClientError) -> PortError {
    log::error!("migrate: {what}: {e:?}");
    PortError::Xenstore
}

/// The guest being migrated away.
pub struct XenSource<'x> {
    xen: &'static Xen,
    xs: &'x RefCell<Xenstore>,
    dom: DomId,
    nr: u64,
    win: ForeignWindow,
    words: Vec<u64>,
    /// The dom0 route's buffer, where dom0 fetches the bitmaps.
    dom0: Option<Dom0Bitmap>,
    suspend_asked: bool,
    /// The frames round 1 tries.
    found: DirtyBitmap,
    /// Pages read so far, for a progress line every [`PROGRESS_PAGES`].
    read: u64,
    /// Time spent in `read_pages`, ns.
    busy_ns: u64,
}

/// A progress line on the console every this many pages copied.
const PROGRESS_PAGES: u64 = 4096;

/// Adds `n` to the page count `done`; logs a progress line (time in the
/// page copy `busy_ns`, of it mapping and unmapping, time in the link, heap
/// use, stack) each time it passes a multiple of [`PROGRESS_PAGES`].
fn progress(done: &mut u64, n: usize, verb: &str, win: &ForeignWindow, busy_ns: u64) {
    let before = *done;
    *done += n as u64;
    if before / PROGRESS_PAGES != *done / PROGRESS_PAGES {
        let m = win.stats();
        let (used, total) = crate::platform::heap::usage();
        log::info!(
            "migrate: {} pages {verb}; copy {} ms (map {} ms, unmap {} ms), link {} ms (frames out {}, in {}, lost here {}); heap {} of {} KiB; sp {:#x}, stack max {} KiB; trap tables {}",
            *done,
            busy_ns / 1_000_000,
            m.map_ns / 1_000_000,
            m.unmap_ns / 1_000_000,
            super::LINK_NS.load(core::sync::atomic::Ordering::Relaxed) / 1_000_000,
            super::LINK_FRAMES[0].load(core::sync::atomic::Ordering::Relaxed),
            super::LINK_FRAMES[1].load(core::sync::atomic::Ordering::Relaxed),
            super::LINK_FRAMES[2].load(core::sync::atomic::Ordering::Relaxed),
            used / 1024,
            total / 1024,
            crate::platform::arch::boot::stack_pointer(),
            crate::platform::arch::boot::stack_high_water() / 1024,
            if crate::platform::arch::trap::tables_intact() {
                "intact"
            } else {
                "CHANGED"
            }
        );
    }
}

impl<'x> XenSource<'x> {
    /// Copies `pfns` into `buf` a window at a time; absent frames are
    /// marked in `holes`.
    fn read_each(
        &mut self,
        pfns: &[u64],
        buf: &mut [u8],
        holes: &mut [bool],
    ) -> Result<(), PortError> {
        read_frames(&mut self.win, self.dom, pfns, buf, holes, "guest")
    }

    /// Sets up for guest `dom`: its size, a mapping window of `window`
    /// pages, and the buffer of the bitmap `route` (direct or dom0).
    pub fn new(
        xen: &'static Xen,
        xs: &'x RefCell<Xenstore>,
        dom: DomId,
        window: usize,
        route: Route,
    ) -> Result<Self, PortError> {
        let nr = nr_pfns_of(dom)?;
        let win = ForeignWindow::new(xen, window).map_err(|e| map_err("mapping window", e))?;
        let mut words = Vec::new();
        let mut dom0 = None;
        if route == Route::Dom0 {
            dom0 = Some(Dom0Bitmap::new(xs, nr)?);
        } else {
            words
                .try_reserve_exact(nr.div_ceil(64) as usize)
                .map_err(|_| PortError::NoBuffer)?;
            words.resize(nr.div_ceil(64) as usize, 0);
        }
        let mut found = DirtyBitmap::new(nr);
        candidate_frames(xen, dom, nr, &mut found)?;
        Ok(XenSource {
            xen,
            xs,
            dom,
            nr,
            win,
            words,
            dom0,
            suspend_asked: false,
            found,
            read: 0,
            busy_ns: 0,
        })
    }

    /// The mapping window's counters.
    pub fn map_stats(&self) -> crate::platform::xen::foreign::MapStats {
        self.win.stats()
    }
}

impl SourceDomain for XenSource<'_> {
    fn nr_pfns(&self) -> u64 {
        self.nr
    }

    fn pages_held(&mut self) -> Option<u64> {
        domctl::getdomaininfo(self.xen, self.dom)
            .ok()
            .map(|i| i.tot_pages)
    }

    fn populated(&mut self, out: &mut DirtyBitmap) -> Result<(), PortError> {
        // Candidates that turn out empty are sent as holes.
        out.or_with(&self.found);
        Ok(())
    }

    fn read_pages(
        &mut self,
        pfns: &[u64],
        buf: &mut [u8],
        holes: &mut [bool],
    ) -> Result<(), PortError> {
        if buf.len() != pfns.len() * PAGE || holes.len() != pfns.len() {
            return Err(PortError::BadLength);
        }
        progress(&mut self.read, pfns.len(), "read", &self.win, self.busy_ns);
        let t0 = self.xen.now_ns();
        let r = self.read_each(pfns, buf, holes);
        self.busy_ns += self.xen.now_ns().saturating_sub(t0);
        r
    }

    fn log_dirty_enable(&mut self) -> Result<(), PortError> {
        match domctl::logdirty_enable(self.xen, self.dom) {
            // Xen refuses to turn log-dirty mode on twice (EINVAL). A source
            // appliance that died mid-migration leaves it on (the guest ran
            // on; nothing else turns it off), and a retry would fail here.
            // As Xen's own save code does for a mode already on: off, then
            // on again.
            Err(DomctlError::Xen(xen_abi::errno::EINVAL)) => {
                log::warn!(
                    "migrate: log-dirty mode was already on for domain {} (left by an earlier migration?): turning it off and on again",
                    self.dom
                );
                domctl::logdirty_off(self.xen, self.dom)
                    .and_then(|()| domctl::logdirty_enable(self.xen, self.dom))
                    .map_err(|e| dom_err("log-dirty enable", e))
            }
            r => r.map_err(|e| dom_err("log-dirty enable", e)),
        }
    }

    fn log_dirty_collect(&mut self, out: &mut DirtyBitmap) -> Result<(), PortError> {
        let final_pass = self.suspend_asked;
        let t0 = self.xen.now_ns();
        let route = if let Some(d) = self.dom0.as_mut() {
            d.collect(self.xen, self.xs, final_pass, out)?;
            "dom0"
        } else {
            self.words.iter_mut().for_each(|w| *w = 0);
            domctl::logdirty_clean(
                self.xen,
                self.dom,
                Some(&mut self.words),
                self.nr,
                final_pass,
            )
            .map_err(|e| dom_err("log-dirty clean", e))?;
            // Xen's bitmap has DirtyBitmap's layout (bit g % 64 of word
            // g / 64): OR it in a word at a time; trim drops bits past the
            // bitmap's end.
            for (o, &w) in out.words_mut().iter_mut().zip(&self.words) {
                *o |= w;
            }
            out.trim();
            "direct"
        };
        // What the route costs a round (and the final round's downtime).
        log::info!(
            "migrate: dirty bitmap{} by route {route} in {} us",
            if final_pass { " (final)" } else { "" },
            self.xen.now_ns().saturating_sub(t0) / 1000
        );
        Ok(())
    }

    fn log_dirty_disable(&mut self) -> Result<(), PortError> {
        domctl::logdirty_off(self.xen, self.dom).map_err(|e| dom_err("log-dirty off", e))
    }

    fn suspend(&mut self) -> Result<(), PortError> {
        self.suspend_asked = true;
        domctl::suspend(
            self.xen,
            &mut self.xs.borrow_mut(),
            self.dom,
            SUSPEND_TIMEOUT_NS,
        )
        .map(|_| ())
        .map_err(|e| dom_err("suspending the guest", e))
    }

    fn resume_cancelled(&mut self) -> Result<bool, PortError> {
        // Withdraw a request the guest may not have seen yet.
        let node = alloc::format!("/local/domain/{}/control/shutdown", self.dom);
        if let Err(e) = self.xs.borrow_mut().write(&node, b"") {
            log::warn!("migrate: clearing {node}: {e:?}");
        }
        let info = domctl::getdomaininfo(self.xen, self.dom)
            .map_err(|e| dom_err("domain info before resuming", e))?;
        if !info.is_suspended() {
            log::info!(
                "migrate: guest {} is not suspended; nothing to resume",
                self.dom
            );
            return Ok(false);
        }
        domctl::resume_cancelled(self.xen, self.dom)
            .map_err(|e| dom_err("resuming the guest", e))?;
        log::info!("migrate: guest {} resumed (suspend cancelled)", self.dom);
        Ok(true)
    }

    fn tsc_info(&mut self) -> Result<TscInfo, PortError> {
        let t = domctl::get_tsc_info(self.xen, self.dom).map_err(|e| dom_err("get TSC info", e))?;
        Ok(TscInfo {
            mode: t.tsc_mode,
            khz: t.gtsc_khz,
            nsec: t.elapsed_nsec,
            incarnation: t.incarnation,
        })
    }

    fn hvm_param(&mut self, index: u32) -> Result<u64, PortError> {
        domctl::hvm_param_get(self.dom, index).map_err(|e| dom_err("get HVM param", e))
    }

    fn hvm_context(&mut self, out: &mut Vec<u8>) -> Result<(), PortError> {
        domctl::get_hvm_context(self.xen, self.dom, out)
            .map(|_| ())
            .map_err(|e| dom_err("get HVM context", e))
    }
}

/// The paused shell dom0 built from the guest's configuration.
///
/// Built from the same configuration, the shell has every frame the guest
/// has but the few the guest maps itself (e.g. grant frames). Rather than
/// probe a million frames up front, the shell reports all as populated and
/// gives a frame RAM when writing it finds a hole there (a frame the
/// mapping refuses as absent is certainly not populated, so nothing Xen
/// holds is ever replaced).
pub struct XenShell {
    xen: &'static Xen,
    dom: DomId,
    nr: u64,
    win: ForeignWindow,
    /// Frames given RAM while writing.
    pub populated_here: u64,
    /// Pages written so far, for a progress line every [`PROGRESS_PAGES`].
    written: u64,
    /// Time spent in `write_pages`, ns.
    busy_ns: u64,
}

impl XenShell {
    /// Sets up for shell `dom` with a mapping window of `window` pages.
    pub fn new(xen: &'static Xen, dom: DomId, window: usize) -> Result<Self, PortError> {
        let nr = nr_pfns_of(dom)?;
        let win = ForeignWindow::new(xen, window).map_err(|e| map_err("mapping window", e))?;
        Ok(XenShell {
            xen,
            dom,
            nr,
            win,
            populated_here: 0,
            written: 0,
            busy_ns: 0,
        })
    }

    fn write_each(&mut self, pfns: &[u64], data: Option<&[u8]>) -> Result<(), PortError> {
        let cap = self.win.capacity().max(1);
        let zero = [0u8; PAGE];
        let mut absent: Vec<u64> = Vec::new();
        for (k, chunk) in pfns.chunks(cap).enumerate() {
            // Two passes at most: the second after giving absent frames RAM.
            for pass in 0..2 {
                absent.clear();
                let mut b = self
                    .win
                    .map(self.dom, chunk, Access::Write)
                    .map_err(|e| map_err("mapping shell frames", e))?;
                for (i, &pfn) in chunk.iter().enumerate() {
                    let at = k * cap + i;
                    match b.entry(i) {
                        Ok(()) => {}
                        Err(e) if is_hole(&e) && pass == 0 => {
                            absent.push(pfn);
                            continue;
                        }
                        Err(e) => return Err(map_err("mapping a shell frame", e)),
                    }
                    let src: &[u8] = match data {
                        Some(d) => d
                            .get(at * PAGE..(at + 1) * PAGE)
                            .ok_or(PortError::BadLength)?,
                        None => &zero,
                    };
                    b.write(i, 0, src)
                        .map_err(|e| map_err("writing a shell frame", e))?;
                }
                drop(b);
                if absent.is_empty() {
                    break;
                }
                // A stream may repeat a pfn within a batch: populate each once.
                absent.sort_unstable();
                absent.dedup();
                let mut list = absent.clone();
                let done = domctl::populate_physmap(self.dom, &mut list)
                    .map_err(|e| dom_err("populate", e))?;
                if done != absent.len() {
                    log::error!("migrate: populate gave {done} of {} frames", absent.len());
                    return Err(PortError::ShortPopulate);
                }
                self.populated_here += done as u64;
                // The second pass rewrites this chunk's present frames too:
                // harmless, the same bytes.
            }
        }
        Ok(())
    }
}

impl XenShell {
    /// The mapping window's counters.
    pub fn map_stats(&self) -> crate::platform::xen::foreign::MapStats {
        self.win.stats()
    }
}

impl DestDomain for XenShell {
    fn nr_pfns(&self) -> u64 {
        self.nr
    }

    fn populated(&mut self, out: &mut DirtyBitmap) -> Result<(), PortError> {
        // Absent frames are found and given RAM when written (see above).
        out.set_all();
        Ok(())
    }

    fn populate(&mut self, pfns: &[u64]) -> Result<(), PortError> {
        let mut list: Vec<u64> = pfns.to_vec();
        let done =
            domctl::populate_physmap(self.dom, &mut list).map_err(|e| dom_err("populate", e))?;
        if done != pfns.len() {
            log::error!("migrate: populate gave {done} of {} frames", pfns.len());
            return Err(PortError::ShortPopulate);
        }
        Ok(())
    }

    fn write_pages(&mut self, pfns: &[u64], data: &[u8]) -> Result<(), PortError> {
        if data.len() != pfns.len() * PAGE {
            return Err(PortError::BadLength);
        }
        progress(
            &mut self.written,
            pfns.len(),
            "written",
            &self.win,
            self.busy_ns,
        );
        let t0 = self.xen.now_ns();
        let r = self.write_each(pfns, Some(data));
        self.busy_ns += self.xen.now_ns().saturating_sub(t0);
        r
    }

    fn zero_frames(&mut self, pfns: &[u64]) -> Result<(), PortError> {
        self.write_each(pfns, None)
    }

    fn read_pages(
        &mut self,
        pfns: &[u64],
        buf: &mut [u8],
        holes: &mut [bool],
    ) -> Result<(), PortError> {
        if buf.len() != pfns.len() * PAGE || holes.len() != pfns.len() {
            return Err(PortError::BadLength);
        }
        read_frames(&mut self.win, self.dom, pfns, buf, holes, "shell")
    }

    fn hvm_param(&mut self, index: u32) -> Result<u64, PortError> {
        domctl::hvm_param_get(self.dom, index).map_err(|e| dom_err("get shell HVM param", e))
    }

    fn set_hvm_param(&mut self, index: u32, value: u64) -> Result<(), PortError> {
        domctl::hvm_param_set(self.dom, index, value).map_err(|e| dom_err("set HVM param", e))
    }

    fn set_tsc_info(&mut self, tsc: &TscInfo) -> Result<(), PortError> {
        let t = xen_abi::domctl::TscInfo {
            tsc_mode: tsc.mode,
            gtsc_khz: tsc.khz,
            incarnation: tsc.incarnation,
            elapsed_nsec: tsc.nsec,
            ..Default::default()
        };
        domctl::set_tsc_info(self.xen, self.dom, &t).map_err(|e| dom_err("set TSC info", e))
    }

    fn set_hvm_context(&mut self, blob: &[u8]) -> Result<(), PortError> {
        domctl::set_hvm_context(self.xen, self.dom, blob).map_err(|e| dom_err("set HVM context", e))
    }
}
