//! Operations on another domain: domctls (domain info, pause, log-dirty,
//! HVM context, TSC info, resume), HVM params and memory ops on a foreign
//! domid, and the cooperative suspend / cancelled-resume pair.
//!
//! Every domctl carries the interface version `xen::init` found for the
//! running release (`xen_abi::domctl::RELEASES`: 0x15 for Xen 4.17, 0x17
//! for 4.19–4.21, 0x18 for 4.22; the structures are the same in all of
//! them) and targets one domain by id. What a
//! domain may do to another is decided by the FLASK policy
//! (`qemu-tests/flask/depmig.te`); a refusal comes back as
//! `DomctlError::Xen(EACCES)`.

use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, Ordering};

use xen_abi::domctl::*;
use xen_abi::errno::XenErrno;
use xen_abi::hvm::{HvmParam, HVMOP_GET_PARAM, HVMOP_SET_PARAM};
use xen_abi::hvm_save::{self, ContextError};
use xen_abi::hypercall as nr;
use xen_abi::memory::{MemoryReservation, XENMEM_MAXIMUM_GPFN, XENMEM_POPULATE_PHYSMAP};
use xen_abi::sched::SHUTDOWN_SUSPEND;
use xen_abi::DomId;
use zerocopy::{FromBytes, Immutable, IntoBytes};

use super::hypercall;
use super::xenstore::{Xenstore, XsClientError};
use super::Xen;

/// Why an operation on another domain failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DomctlError {
    /// Xen refused or failed the hypercall (EACCES: the policy forbids it).
    Xen(XenErrno),
    /// No domain has this id.
    NoSuchDomain(DomId),
    /// A buffer does not fit the hypercall's size field or the data.
    BufferSize {
        /// Bytes (or bits) needed.
        need: u64,
        /// Bytes (or bits) given.
        have: u64,
    },
    /// The HVM context Xen returned or we were given is malformed.
    Context(ContextError),
    /// The domain is not suspended (shut down with reason suspend).
    NotSuspended {
        /// Its getdomaininfo flags.
        flags: u32,
    },
    /// The domain shut down, but not to suspend (this `SHUTDOWN_*` reason).
    ShutDownOtherwise(u32),
    /// The domain did not reach the awaited state before the deadline.
    Timeout,
    /// Writing the suspend request to the guest's xenstore failed.
    Xenstore(XsClientError),
}

impl From<XenErrno> for DomctlError {
    fn from(e: XenErrno) -> Self {
        DomctlError::Xen(e)
    }
}

impl From<ContextError> for DomctlError {
    fn from(e: ContextError) -> Self {
        DomctlError::Context(e)
    }
}

impl core::fmt::Display for DomctlError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            DomctlError::Xen(e) => write!(f, "{e}"),
            DomctlError::NoSuchDomain(d) => write!(f, "no domain {d}"),
            DomctlError::BufferSize { need, have } => {
                write!(f, "buffer too small: need {need}, have {have}")
            }
            DomctlError::Context(e) => write!(f, "{e}"),
            DomctlError::NotSuspended { flags } => {
                write!(f, "domain is not suspended (flags {flags:#x})")
            }
            DomctlError::ShutDownOtherwise(r) => {
                write!(f, "domain shut down with reason {r}, not suspend")
            }
            DomctlError::Timeout => write!(f, "timed out"),
            DomctlError::Xenstore(e) => write!(f, "xenstore: {e:?}"),
        }
    }
}

/// Runs domctl `cmd` on `dom` with `arg` as its payload; returns the payload
/// Xen wrote back.
fn domctl<T: IntoBytes + FromBytes + Immutable>(
    x: &Xen,
    cmd: u32,
    dom: DomId,
    arg: &T,
) -> Result<T, XenErrno> {
    let mut d = Domctl {
        cmd,
        interface_version: x.domctl_version,
        domain: dom,
        ..Default::default()
    };
    let a = arg.as_bytes();
    // Payload structs are at most DOMCTL_PAYLOAD bytes (checked below at
    // compile time for every type used here).
    // PANICS: n ≤ both lengths, so neither range can be out of bounds.
    let n = a.len().min(DOMCTL_PAYLOAD);
    d.payload[..n].copy_from_slice(&a[..n]);
    // SAFETY: `__HYPERVISOR_domctl` takes one pointer to a `struct xen_domctl`
    // (`Domctl` has its layout, checked against the headers); `d` is a live
    // exclusive local that Xen reads and writes back.
    XenErrno::check(unsafe {
        hypercall::raw(nr::DOMCTL, &mut d as *mut Domctl as u64, 0, 0, 0, 0)
    })?;
    T::read_from_prefix(&d.payload)
        .map(|(t, _)| t)
        .map_err(|_| xen_abi::errno::EINVAL)
}

const _: () = {
    assert!(core::mem::size_of::<GetDomainInfo>() <= DOMCTL_PAYLOAD);
    assert!(core::mem::size_of::<ShadowOp>() <= DOMCTL_PAYLOAD);
    assert!(core::mem::size_of::<HvmContext>() <= DOMCTL_PAYLOAD);
    assert!(core::mem::size_of::<TscInfo>() <= DOMCTL_PAYLOAD);
};

// ---------------------------------------------------------------------------
// Domain info, pause, resume
// ---------------------------------------------------------------------------

/// What `XEN_DOMCTL_getdomaininfo` says about a domain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DomInfo {
    /// The domain.
    pub domid: DomId,
    /// `XEN_DOMINF_*` flags.
    pub flags: u32,
    /// Pages the domain holds.
    pub tot_pages: u64,
    /// Its page limit.
    pub max_pages: u64,
    /// vCPUs online.
    pub nr_online_vcpus: u32,
    /// Highest vCPU id.
    pub max_vcpu_id: u32,
    /// CPU time used, ns.
    pub cpu_time: u64,
    /// FLASK security id.
    pub ssidref: u32,
}

impl DomInfo {
    /// The `SHUTDOWN_*` reason if the domain has shut down.
    pub fn shutdown_reason(&self) -> Option<u32> {
        dominf_shutdown_reason(self.flags)
    }

    /// Shut down with reason suspend (waiting to be saved or resumed).
    pub fn is_suspended(&self) -> bool {
        self.shutdown_reason() == Some(SHUTDOWN_SUSPEND)
    }

    /// Paused by a toolstack (pause count), not by a shutdown.
    pub fn is_paused(&self) -> bool {
        self.flags & DOMINF_PAUSED != 0
    }

    /// Being destroyed.
    pub fn is_dying(&self) -> bool {
        self.flags & DOMINF_DYING != 0
    }
}

/// `XEN_DOMCTL_getdomaininfo` for `dom`.
///
/// A missing domain is [`DomctlError::NoSuchDomain`] in every release:
/// Xen 4.17 answers for the first domain with an id ≥ `dom` (or fails with
/// ESRCH when there is none), later releases fail with ESRCH.
pub fn getdomaininfo(x: &Xen, dom: DomId) -> Result<DomInfo, DomctlError> {
    let i = match domctl(x, XEN_DOMCTL_GETDOMAININFO, dom, &GetDomainInfo::default()) {
        Ok(i) => i,
        Err(xen_abi::errno::ESRCH) => return Err(DomctlError::NoSuchDomain(dom)),
        Err(e) => return Err(e.into()),
    };
    if i.domain != dom {
        return Err(DomctlError::NoSuchDomain(dom));
    }
    Ok(DomInfo {
        domid: i.domain,
        flags: i.flags,
        tot_pages: i.tot_pages,
        max_pages: i.max_pages,
        nr_online_vcpus: i.nr_online_vcpus,
        max_vcpu_id: i.max_vcpu_id,
        cpu_time: i.cpu_time,
        ssidref: i.ssidref,
    })
}

/// `XEN_DOMCTL_pausedomain`: adds one to the domain's pause count.
pub fn pause(x: &Xen, dom: DomId) -> Result<(), DomctlError> {
    domctl(x, XEN_DOMCTL_PAUSEDOMAIN, dom, &[0u8; 0]).map(|_| ())?;
    Ok(())
}

/// `XEN_DOMCTL_unpausedomain`: undoes one [`pause`]. The depmig policy does
/// not grant it to appliances (only dom0 unpauses), so there it fails with
/// EACCES.
pub fn unpause(x: &Xen, dom: DomId) -> Result<(), DomctlError> {
    domctl(x, XEN_DOMCTL_UNPAUSEDOMAIN, dom, &[0u8; 0]).map(|_| ())?;
    Ok(())
}

/// `XEN_DOMCTL_resumedomain`: clears a shut-down (suspended) domain's
/// shutdown state and lets its vCPUs run again. A toolstack pause stays.
pub fn resumedomain(x: &Xen, dom: DomId) -> Result<(), DomctlError> {
    domctl(x, XEN_DOMCTL_RESUMEDOMAIN, dom, &[0u8; 0]).map(|_| ())?;
    Ok(())
}

// ---------------------------------------------------------------------------
// Log-dirty
// ---------------------------------------------------------------------------

/// Counters a log-dirty CLEAN or PEEK returns.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DirtyStats {
    /// Bits (frames) Xen filled in the bitmap (≤ the bits asked for).
    pub pages: u64,
    /// Frames newly marked dirty since the last CLEAN.
    pub dirty_count: u32,
    /// Log-dirty faults since the last CLEAN.
    pub fault_count: u32,
}

/// Log-dirty ENABLE (`XEN_DOMCTL_SHADOW_OP_ENABLE`, mode LOG_DIRTY): from now
/// on Xen records every frame the domain (or a backend on its behalf) writes.
pub fn logdirty_enable(x: &Xen, dom: DomId) -> Result<(), DomctlError> {
    let op = ShadowOp {
        op: SHADOW_OP_ENABLE,
        mode: SHADOW_ENABLE_LOG_DIRTY,
        ..Default::default()
    };
    domctl(x, XEN_DOMCTL_SHADOW_OP, dom, &op)?;
    Ok(())
}

/// Log-dirty OFF (`XEN_DOMCTL_SHADOW_OP_OFF`).
pub fn logdirty_off(x: &Xen, dom: DomId) -> Result<(), DomctlError> {
    let op = ShadowOp {
        op: SHADOW_OP_OFF,
        ..Default::default()
    };
    domctl(x, XEN_DOMCTL_SHADOW_OP, dom, &op)?;
    Ok(())
}

/// Whether Xen may copy dirty bitmaps to us (off by default).
static BITMAP_COPY: AtomicBool = AtomicBool::new(false);

/// Allows [`logdirty_clean`] and [`logdirty_peek`] to have Xen copy the
/// dirty bitmap into our memory.
///
/// Off by default because stock Xen 4.17 cannot do it for a translated
/// (PVH) caller: `paging_log_dirty_op` copies the bitmap while it holds the
/// target's paging lock, the copy to a PVH caller walks the caller's p2m
/// under its p2m lock, and Xen's lock-order check stops the whole host
/// ("mm locking order violation: 64 > 16", `Xen BUG at mm-locks.h:80`, seen
/// in the rig). While off, a CLEAN or PEEK with a bitmap fails with
/// `DomctlError::Xen(EOPNOTSUPP)` before any hypercall. Turn it on only on a
/// hypervisor that copies outside that lock.
pub fn allow_bitmap_copy(on: bool) {
    BITMAP_COPY.store(on, Ordering::SeqCst);
}

fn logdirty_read(
    x: &Xen,
    dom: DomId,
    op: u32,
    bitmap: Option<&mut [u64]>,
    pages: u64,
    final_pass: bool,
) -> Result<DirtyStats, DomctlError> {
    let addr = match bitmap {
        Some(b) => {
            if !BITMAP_COPY.load(Ordering::SeqCst) {
                return Err(DomctlError::Xen(xen_abi::errno::EOPNOTSUPP));
            }
            let have = (b.len() as u64).saturating_mul(64);
            if pages > have {
                return Err(DomctlError::BufferSize { need: pages, have });
            }
            b.as_mut_ptr() as u64
        }
        // No buffer: Xen walks (and for CLEAN clears) the first `pages`
        // bits without copying them anywhere.
        None => 0,
    };
    let arg = ShadowOp {
        op,
        mode: if final_pass { SHADOW_LOGDIRTY_FINAL } else { 0 },
        dirty_bitmap: addr,
        pages,
        ..Default::default()
    };
    // Xen writes at most ceil(pages / 8) bytes at `addr`, inside the slice
    // (checked above); our memory is identity-mapped, so the address is the
    // guest virtual address Xen copies to.
    let r = domctl(x, XEN_DOMCTL_SHADOW_OP, dom, &arg)?;
    Ok(DirtyStats {
        pages: r.pages,
        dirty_count: r.dirty_count,
        fault_count: r.fault_count,
    })
}

/// Log-dirty CLEAN: copies the dirty bitmap of frames `0..pages` into
/// `bitmap` (bit `g % 64` of word `g / 64` = frame `g`, as Xen's byte
/// bitmap reads on x86) and clears Xen's copy; returns the counters, which
/// CLEAN resets. `final_pass` sets `LOGDIRTY_FINAL` (also marks frames Xen
/// itself holds mapped for writing). With `bitmap = None` Xen clears the
/// first `pages` bits without copying them (the only form stock Xen 4.17
/// survives for a PVH caller, see [`allow_bitmap_copy`]); with `pages = 0`
/// too, only the counters reset and bits already set stay set (and so are
/// not counted again).
pub fn logdirty_clean(
    x: &Xen,
    dom: DomId,
    bitmap: Option<&mut [u64]>,
    pages: u64,
    final_pass: bool,
) -> Result<DirtyStats, DomctlError> {
    logdirty_read(x, dom, SHADOW_OP_CLEAN, bitmap, pages, final_pass)
}

/// Log-dirty PEEK: like [`logdirty_clean`] but leaves Xen's bitmap and
/// counters as they are.
pub fn logdirty_peek(
    x: &Xen,
    dom: DomId,
    bitmap: Option<&mut [u64]>,
    pages: u64,
) -> Result<DirtyStats, DomctlError> {
    logdirty_read(x, dom, SHADOW_OP_PEEK, bitmap, pages, false)
}

// ---------------------------------------------------------------------------
// HVM context, TSC, params
// ---------------------------------------------------------------------------

/// Bytes `XEN_DOMCTL_gethvmcontext` needs for `dom`'s context now.
pub fn hvm_context_size(x: &Xen, dom: DomId) -> Result<u32, DomctlError> {
    let r = domctl(x, XEN_DOMCTL_GETHVMCONTEXT, dom, &HvmContext::default())?;
    Ok(r.size)
}

/// Reads `dom`'s HVM context into `buf` (resized to fit): asks for the size,
/// then fetches, retrying once if the context grew in between. The bytes
/// are validated with [`hvm_save::Context::parse`] before returning.
pub fn get_hvm_context(x: &Xen, dom: DomId, buf: &mut Vec<u8>) -> Result<usize, DomctlError> {
    let mut last = Err(DomctlError::Xen(xen_abi::errno::ENOSPC));
    for _ in 0..2 {
        let need = hvm_context_size(x, dom)? as usize;
        if need > hvm_save::MAX_CONTEXT_BYTES {
            return Err(ContextError::TooLarge(need).into());
        }
        // Some slack so a record added between the two calls still fits.
        buf.clear();
        buf.resize(need + 4096, 0);
        let arg = HvmContext {
            size: buf.len() as u32,
            _pad: 0,
            buffer: buf.as_mut_ptr() as u64,
        };
        // Xen writes at most `arg.size` bytes at `buffer`, all inside `buf`.
        match domctl(x, XEN_DOMCTL_GETHVMCONTEXT, dom, &arg) {
            Ok(r) => {
                let got = (r.size as usize).min(buf.len());
                buf.truncate(got);
                hvm_save::Context::parse(buf)?;
                return Ok(got);
            }
            Err(xen_abi::errno::ENOSPC) => last = Err(DomctlError::Xen(xen_abi::errno::ENOSPC)),
            Err(e) => return Err(e.into()),
        }
    }
    last
}

/// Loads an HVM context into `dom` (`XEN_DOMCTL_sethvmcontext`; Xen pauses
/// the domain around the load). The blob is validated first.
pub fn set_hvm_context(x: &Xen, dom: DomId, ctx: &[u8]) -> Result<(), DomctlError> {
    hvm_save::Context::parse(ctx)?;
    let size = u32::try_from(ctx.len()).map_err(|_| DomctlError::BufferSize {
        need: ctx.len() as u64,
        have: u64::from(u32::MAX),
    })?;
    let arg = HvmContext {
        size,
        _pad: 0,
        // Xen only reads the buffer (copy_from_guest of `size` bytes).
        buffer: ctx.as_ptr() as u64,
    };
    domctl(x, XEN_DOMCTL_SETHVMCONTEXT, dom, &arg)?;
    Ok(())
}

/// `XEN_DOMCTL_gettscinfo`.
pub fn get_tsc_info(x: &Xen, dom: DomId) -> Result<TscInfo, DomctlError> {
    Ok(domctl(x, XEN_DOMCTL_GETTSCINFO, dom, &TscInfo::default())?)
}

/// `XEN_DOMCTL_settscinfo` (mode, frequency, incarnation, elapsed time).
pub fn set_tsc_info(x: &Xen, dom: DomId, info: &TscInfo) -> Result<(), DomctlError> {
    domctl(x, XEN_DOMCTL_SETTSCINFO, dom, info)?;
    Ok(())
}

/// `HVMOP_get_param` on `dom`.
pub fn hvm_param_get(dom: DomId, index: u32) -> Result<u64, DomctlError> {
    let mut p = HvmParam {
        domid: dom,
        _pad: 0,
        index,
        value: 0,
    };
    // SAFETY: HVMOP_get_param takes an xen_hvm_param.
    unsafe { hypercall::op(nr::HVM_OP, HVMOP_GET_PARAM, &mut p)? };
    Ok(p.value)
}

/// `HVMOP_set_param` on `dom`.
pub fn hvm_param_set(dom: DomId, index: u32, value: u64) -> Result<(), DomctlError> {
    let mut p = HvmParam {
        domid: dom,
        _pad: 0,
        index,
        value,
    };
    // SAFETY: HVMOP_set_param takes an xen_hvm_param.
    unsafe { hypercall::op(nr::HVM_OP, HVMOP_SET_PARAM, &mut p)? };
    Ok(())
}

// ---------------------------------------------------------------------------
// Memory ops on a foreign domain
// ---------------------------------------------------------------------------

/// `XENMEM_maximum_gpfn`: the highest frame number `dom` has in its physmap.
pub fn maximum_gpfn(dom: DomId) -> Result<u64, DomctlError> {
    let mut d: DomId = dom;
    // SAFETY: XENMEM_maximum_gpfn takes a pointer to a domid_t and returns
    // the frame number as its result.
    Ok(unsafe { hypercall::op(nr::MEMORY_OP, XENMEM_MAXIMUM_GPFN, &mut d)? })
}

/// `XENMEM_populate_physmap` for `dom`: gives it fresh (zeroed) 4 KiB frames
/// at the frame numbers in `gfns`. Returns how many, from the start of the
/// list, Xen populated (fewer than asked when it ran out of the domain's
/// page limit or met a frame that is already populated).
pub fn populate_physmap(dom: DomId, gfns: &mut [u64]) -> Result<usize, DomctlError> {
    let mut r = MemoryReservation {
        extent_start: gfns.as_mut_ptr() as u64,
        nr_extents: gfns.len() as u64,
        extent_order: 0,
        mem_flags: 0,
        domid: dom,
        _pad: [0; 3],
    };
    // SAFETY: XENMEM_populate_physmap takes an xen_memory_reservation whose
    // extent array (`gfns`, `nr_extents` entries) lives across the call and
    // may be written (Xen stores frame numbers back for non-translated callers).
    let done = unsafe { hypercall::op(nr::MEMORY_OP, XENMEM_POPULATE_PHYSMAP, &mut r)? };
    Ok((done as usize).min(gfns.len()))
}

// ---------------------------------------------------------------------------
// Cooperative suspend and cancelled resume
// ---------------------------------------------------------------------------

/// How often the suspend wait looks at the domain's state.
const SUSPEND_POLL_NS: u64 = 50_000_000;

/// Asks the guest to suspend itself: writes `suspend` to
/// `/local/domain/<dom>/control/shutdown` (dom0 must have given us write
/// permission on that node). The guest's kernel acknowledges by clearing the
/// node, quiesces, and makes the suspend hypercall.
pub fn request_suspend(xs: &mut Xenstore, dom: DomId) -> Result<(), DomctlError> {
    let path = alloc::format!("/local/domain/{dom}/control/shutdown");
    xs.write(&path, b"suspend").map_err(DomctlError::Xenstore)
}

/// Waits (bounded by `timeout_ns`) until `dom` has shut down with reason
/// suspend. A shutdown for another reason, or the domain vanishing, ends the
/// wait early with an error.
pub fn wait_suspended(x: &Xen, dom: DomId, timeout_ns: u64) -> Result<DomInfo, DomctlError> {
    let deadline = x.now_ns().saturating_add(timeout_ns);
    loop {
        let i = getdomaininfo(x, dom)?;
        match i.shutdown_reason() {
            Some(SHUTDOWN_SUSPEND) => return Ok(i),
            Some(other) => return Err(DomctlError::ShutDownOtherwise(other)),
            None => {}
        }
        let now = x.now_ns();
        if now >= deadline {
            return Err(DomctlError::Timeout);
        }
        x.wait(&[], now.saturating_add(SUSPEND_POLL_NS).min(deadline));
    }
}

/// [`request_suspend`] then [`wait_suspended`].
pub fn suspend(
    x: &Xen,
    xs: &mut Xenstore,
    dom: DomId,
    timeout_ns: u64,
) -> Result<DomInfo, DomctlError> {
    request_suspend(xs, dom)?;
    wait_suspended(x, dom, timeout_ns)
}

/// Resumes a suspended guest with its suspend cancelled, as Xen's own
/// toolstack does after a failed save: vCPU 0's `rax` := 1 in the HVM
/// context (the suspend hypercall then returns 1, "cancelled", and the
/// guest carries on with its old state), load the context back, then
/// `XEN_DOMCTL_resumedomain`. Refuses a domain that is not suspended.
pub fn resume_cancelled(x: &Xen, dom: DomId) -> Result<(), DomctlError> {
    let i = getdomaininfo(x, dom)?;
    if !i.is_suspended() {
        return Err(DomctlError::NotSuspended { flags: i.flags });
    }
    let mut ctx = Vec::new();
    get_hvm_context(x, dom, &mut ctx)?;
    hvm_save::set_cpu_reg(&mut ctx, 0, hvm_save::HW_CPU_RAX, 1)?;
    set_hvm_context(x, dom, &ctx)?;
    resumedomain(x, dom)
}
