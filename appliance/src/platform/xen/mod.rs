//! Xen plumbing: detection, hypercalls, shared_info, event channels, grant
//! tables, console and xenstore.
//!
//! [`init`] brings everything up once at boot and refuses hypervisor
//! releases whose domctl interface this code does not know (those missing
//! from `xen_abi::domctl::RELEASES`).

pub mod console;
pub mod domctl;
pub mod evtchn;
pub mod foreign;
pub mod grant;
pub mod hypercall;
pub mod shared;
pub mod xenstore;

use core::arch::global_asm;
use core::sync::atomic::{AtomicBool, Ordering};

use xen_abi::domctl::SupportedReleases;
use xen_abi::errno::XenErrno;
use xen_abi::hvm::*;
use xen_abi::memory::*;
use xen_abi::version::Version;
use xen_abi::{DOMID_SELF, PAGE_SHIFT, PAGE_SIZE};

use crate::platform::arch::{cpu, symbol_addr};
use shared::SharedInfo;

/// Pages of the physmap window: holes where Xen maps shared_info, grant
/// table frames and foreign pages.
pub const WINDOW_PAGES: usize = 64;
/// Grant table frames mapped at boot.
pub const GRANT_FRAMES: u32 = 4;

global_asm!(
    r#"
    .pushsection .bss.physmap_window, "aw", @nobits
    .p2align 12
    .global physmap_window
physmap_window:
    .skip {size}
    .popsection
"#,
    size = const WINDOW_PAGES * PAGE_SIZE,
);

static PRESENT: AtomicBool = AtomicBool::new(false);
static XEN: spin::Once<Xen> = spin::Once::new();

/// Why Xen could not be brought up.
#[derive(Debug)]
pub enum InitError {
    /// CPUID names no hypercall MSR.
    NoHypercallMsr,
    /// The hypercall page did not get filled by Xen.
    HypercallPage,
    /// This hypervisor release is not one of `xen_abi::domctl::RELEASES`,
    /// so the domctl interface version it takes is unknown.
    Unsupported(Version),
    /// A hypercall during set-up failed.
    Hypercall(&'static str, XenErrno),
}

impl core::fmt::Display for InitError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            InitError::NoHypercallMsr => write!(f, "CPUID gives no hypercall MSR"),
            InitError::HypercallPage => write!(f, "hypercall page not installed"),
            InitError::Unsupported(v) => write!(
                f,
                "Xen {v} is not supported: its domctl interface version is unknown \
                 (supported: Xen {SupportedReleases})"
            ),
            InitError::Hypercall(what, e) => write!(f, "{what} failed: {e}"),
        }
    }
}

/// The Xen CPUID leaf base (0x4000_0000 + n·0x100) if running on Xen.
pub fn detect() -> Option<u32> {
    (0..0x100u32)
        .map(|i| 0x4000_0000 + i * 0x100)
        .find(|&base| {
            let r = cpu::cpuid(base, 0);
            (r.ebx, r.ecx, r.edx) == (0x566e_6558, 0x65584d4d, 0x4d4d566e) && r.eax >= base + 2
        })
}

/// Whether Xen was detected and its hypercall page installed.
pub fn present() -> bool {
    PRESENT.load(Ordering::SeqCst)
}

/// Everything set up by [`init`].
pub struct Xen {
    /// Hypervisor version.
    pub version: Version,
    /// Extra version string (e.g. ".5").
    pub extra: heapless::String<16>,
    /// domctl interface version for this release (from
    /// `xen_abi::domctl::RELEASES`).
    pub domctl_version: u32,
    /// The shared_info page.
    pub shared: SharedInfo,
    /// Instruction used by the hypercall page (for blocking).
    pub entry: Option<hypercall::Entry>,
    /// xenstore ring page and port.
    pub store: (u64, u32),
    /// PV console ring page and port.
    pub console: (u64, u32),
    /// The grant table.
    pub grants: spin::Mutex<grant::GrantTable>,
    /// Free pages of the physmap window (bit set = free).
    window_free: spin::Mutex<u64>,
}

/// The state set up by [`init`]. Panics before init (a programming error).
pub fn get() -> &'static Xen {
    // PANICS: only called after `init` succeeded (selftest, roles).
    XEN.get().expect("xen::init not run")
}

/// shared_info for code that runs only after init (console, clock).
pub fn shared_info() -> SharedInfo {
    get().shared
}

/// The shared_info page once init mapped it.
pub fn try_shared_info() -> Option<SharedInfo> {
    XEN.get().map(|x| x.shared)
}

fn window_base() -> u64 {
    symbol_addr!("physmap_window")
}

fn hvm_param(index: u32) -> Result<u64, XenErrno> {
    let mut p = HvmParam {
        domid: DOMID_SELF,
        _pad: 0,
        index,
        value: 0,
    };
    // SAFETY: HVMOP_get_param takes an xen_hvm_param.
    unsafe { hypercall::op(xen_abi::hypercall::HVM_OP, HVMOP_GET_PARAM, &mut p)? };
    Ok(p.value)
}

fn set_hvm_param(index: u32, value: u64) -> Result<(), XenErrno> {
    let mut p = HvmParam {
        domid: DOMID_SELF,
        _pad: 0,
        index,
        value,
    };
    // SAFETY: HVMOP_set_param takes an xen_hvm_param.
    unsafe { hypercall::op(xen_abi::hypercall::HVM_OP, HVMOP_SET_PARAM, &mut p)? };
    Ok(())
}

fn add_to_physmap(space: u32, idx: u64, gfn: u64) -> Result<(), XenErrno> {
    let mut a = AddToPhysmap {
        domid: DOMID_SELF,
        size: 0,
        space,
        idx,
        gpfn: gfn,
    };
    // SAFETY: XENMEM_add_to_physmap takes an xen_add_to_physmap.
    unsafe { hypercall::op(xen_abi::hypercall::MEMORY_OP, XENMEM_ADD_TO_PHYSMAP, &mut a)? };
    Ok(())
}

/// Returns the window's RAM to Xen so its frames become holes.
fn release_window() -> Result<(), XenErrno> {
    let first = window_base() >> PAGE_SHIFT;
    let mut gfns = [0u64; WINDOW_PAGES];
    for (i, g) in gfns.iter_mut().enumerate() {
        *g = first + i as u64;
    }
    let mut r = MemoryReservation {
        extent_start: gfns.as_mut_ptr() as u64,
        nr_extents: WINDOW_PAGES as u64,
        ..Default::default()
    };
    r.domid = DOMID_SELF;
    // SAFETY: XENMEM_decrease_reservation takes an xen_memory_reservation
    // whose extent array (`gfns`) lives across the call; nothing uses the
    // window's memory (only its addresses).
    let done = unsafe {
        hypercall::op(
            xen_abi::hypercall::MEMORY_OP,
            XENMEM_DECREASE_RESERVATION,
            &mut r,
        )?
    };
    if done != WINDOW_PAGES as u64 {
        return Err(xen_abi::errno::ENOMEM);
    }
    Ok(())
}

/// Detects Xen, installs the hypercall page and sets up every facility.
pub fn init(base: u32) -> Result<&'static Xen, InitError> {
    let leaf = cpu::cpuid(base + 2, 0);
    if leaf.eax == 0 {
        return Err(InitError::NoHypercallMsr);
    }
    // SAFETY: the MSR CPUID names installs the hypercall page at the given
    // page, which the image reserves for it (filled with int3 until then).
    unsafe { cpu::wrmsr(leaf.ebx, hypercall::page_addr()) };
    let entry = hypercall::entry_instruction();
    // The first stub is `mov eax, 0` in both variants: check it landed.
    // SAFETY: reading the first byte of the mapped hypercall page.
    if unsafe { (hypercall::page_addr() as *const u8).read_volatile() } == 0xcc {
        return Err(InitError::HypercallPage);
    }
    PRESENT.store(true, Ordering::SeqCst);

    let version = Version::from_raw(hypercall::version_raw());
    let mut extra = heapless::String::new();
    if let Ok(raw) = hypercall::extraversion() {
        for &b in raw.iter().take_while(|&&b| b != 0) {
            let _ = extra.push(if b.is_ascii_graphic() { b as char } else { '?' });
        }
    }
    let interfaces =
        xen_abi::domctl::interfaces_for(version).ok_or(InitError::Unsupported(version))?;

    let h = |what| move |e| InitError::Hypercall(what, e);
    release_window().map_err(h("releasing the physmap window"))?;
    let win = window_base() >> PAGE_SHIFT;
    add_to_physmap(XENMAPSPACE_SHARED_INFO, 0, win).map_err(h("mapping shared_info"))?;
    // SAFETY: Xen mapped shared_info at the window's first page just now.
    let shared = unsafe { SharedInfo::new(window_base()) };
    crate::platform::arch::trap::set_upcall_pending_addr(shared.upcall_pending_addr());
    set_hvm_param(
        HVM_PARAM_CALLBACK_IRQ,
        callback_via_vector(crate::platform::arch::trap::UPCALL_VECTOR),
    )
    .map_err(h("setting the callback vector"))?;

    let mut frames = 0;
    for f in 0..GRANT_FRAMES {
        if add_to_physmap(
            XENMAPSPACE_GRANT_TABLE,
            u64::from(f),
            win + 1 + u64::from(f),
        )
        .is_err()
        {
            break;
        }
        frames += 1;
    }
    if frames == 0 {
        return Err(InitError::Hypercall(
            "mapping grant table frames",
            xen_abi::errno::ENOMEM,
        ));
    }
    // SAFETY: grant frames 0..frames were mapped at window pages 1..
    let grants = unsafe { grant::GrantTable::new(window_base() + PAGE_SIZE as u64, frames) };
    let used = 1 + GRANT_FRAMES as usize;
    let window_free = if used >= 64 { 0 } else { !0u64 << used };

    let store = (
        hvm_param(HVM_PARAM_STORE_PFN).map_err(h("reading HVM_PARAM_STORE_PFN"))? << PAGE_SHIFT,
        hvm_param(HVM_PARAM_STORE_EVTCHN).map_err(h("reading HVM_PARAM_STORE_EVTCHN"))? as u32,
    );
    let console = (
        hvm_param(HVM_PARAM_CONSOLE_PFN).map_err(h("reading HVM_PARAM_CONSOLE_PFN"))? << PAGE_SHIFT,
        hvm_param(HVM_PARAM_CONSOLE_EVTCHN).map_err(h("reading HVM_PARAM_CONSOLE_EVTCHN"))? as u32,
    );

    Ok(XEN.call_once(|| Xen {
        version,
        extra,
        domctl_version: interfaces.domctl,
        shared,
        entry,
        store,
        console,
        grants: spin::Mutex::new(grants),
        window_free: spin::Mutex::new(window_free),
    }))
}

/// What [`Xen::wait`] saw.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wake {
    /// This port was pending (its pending bit is now cleared).
    Port(u32),
    /// The deadline passed.
    TimedOut,
}

impl Xen {
    /// System time in ns (pvclock).
    pub fn now_ns(&self) -> u64 {
        crate::platform::clock::monotonic(self.shared.system_time_ns())
    }

    /// Sleeps until one of `ports` is pending or the absolute system time
    /// `deadline_ns` passes; with no ports, until any event or the deadline.
    /// A pending port's bit is cleared before it is reported.
    ///
    /// This uses SCHEDOP_poll with interrupts left off: Xen marks the vCPU
    /// blocked, then checks the listed ports' pending bits itself, so an
    /// event arriving between our check and the hypercall is never slept
    /// through, and no upcall can race with the call. (An earlier version
    /// opened interrupts around SCHEDOP_block; an upcall landing in that
    /// window could divert execution, which crashed a networked appliance
    /// under load.) Masked and unmasked ports both work.
    pub fn wait(&self, ports: &[u32], deadline_ns: u64) -> Wake {
        let si = &self.shared;
        loop {
            // Keep Xen from counting stale upcalls as work to deliver.
            si.upcall_pending().store(0, Ordering::SeqCst);
            for &p in ports {
                if evtchn::take_pending(si, p) {
                    return Wake::Port(p);
                }
            }
            if self.now_ns() >= deadline_ns {
                return Wake::TimedOut;
            }
            if let Err(e) = hypercall::poll(ports, deadline_ns) {
                // Cannot sleep: report the deadline rather than spin.
                log::warn!("SCHEDOP_poll failed: {e}");
                return Wake::TimedOut;
            }
        }
    }

    /// Takes a free page (a hole) from the physmap window: its frame number.
    pub fn window_page(&self) -> Option<u64> {
        let mut free = self.window_free.lock();
        if *free == 0 {
            return None;
        }
        let i = free.trailing_zeros();
        *free &= !(1u64 << i);
        Some((window_base() >> PAGE_SHIFT) + u64::from(i))
    }

    /// Returns a window page taken with [`Xen::window_page`] (unmapped again).
    pub fn release_window_page(&self, gfn: u64) {
        let i = gfn.wrapping_sub(window_base() >> PAGE_SHIFT);
        if i < WINDOW_PAGES as u64 {
            *self.window_free.lock() |= 1u64 << i;
        }
    }
}
