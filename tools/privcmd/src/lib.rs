//! dom0's domain-control hypercalls through Linux's `/dev/xen/privcmd`.
//!
//! `depmig migrate` hands a guest over with three toolstack steps: read the
//! source's and the destination appliance's states, pause that appliance if
//! it still runs, unpause the shell. With `xl` each costs a process and
//! libxl's start-up, about 0.2 s in the rig's emulated dom0, all of it time
//! the guest stands still; as `XEN_DOMCTL_getdomaininfo`,
//! `XEN_DOMCTL_pausedomain` and `XEN_DOMCTL_unpausedomain` each is one
//! hypercall. The caller falls back to `xl` whenever this fails.
//!
//! It also runs the source appliance's log-dirty CLEANs on the dom0 bitmap
//! route: stock Xen 4.19–4.22 copies the dirty bitmap to the caller of
//! `XEN_DOMCTL_shadow_op` while it holds the target's paging lock, and for a
//! translated caller (the PVH appliance) that copy takes a lock that ranks
//! below, which Xen answers with a BUG. A PV dom0's copy takes no such
//! lock. dom0 maps the appliance's bitmap buffer ([`Privcmd::map_foreign`])
//! and passes that mapping's address as the bitmap, so Xen writes the bits
//! straight into the appliance's memory ([`Privcmd::logdirty_clean_into`]).
//!
//! ABI facts from Xen's public headers (`xen/domctl.h`, `xen/version.h`,
//! `xen/xen.h`, `xen/memory.h`, `xen/sys/privcmd.h`) and Linux's
//! `include/uapi/xen/privcmd.h`; the Xen numbers and layouts are
//! `xen-abi`'s, which holds them against the headers of every release it
//! supports:
//!
//! - `struct xen_domctl`: `cmd` u32 at 0, `interface_version` u32 at 4,
//!   `domain` u16 at 8, padding to 16, then a 128-byte union: 144 bytes, in
//!   every supported release. Xen refuses a domctl whose interface version
//!   is not its own (`-EACCES`), and the version changes between releases
//!   (`xen_abi::domctl::RELEASES`), so [`Privcmd::open`] first asks the
//!   hypervisor its release (`xen_version(XENVER_version)`, hypercall 17,
//!   which answers `major << 16 | minor`) and refuses one missing from that
//!   table with [`OpenError::Unsupported`].
//! - `struct xen_domctl_getdomaininfo` (in the union): `domain` u16 at 0,
//!   `flags` u32 at 4 (`XEN_DOMINF_dying` bit 0, `shutdown` bit 2, `paused`
//!   bit 3, the shutdown code in bits 16..24). Xen 4.17 answers for the
//!   first domain whose id is at least the one asked, and echoes that
//!   domain's id: a different id means the one asked is gone. From 4.18 on
//!   the call fails with ESRCH instead. Both read as "no such domain".
//! - `struct xen_domctl_shadow_op` (in the union, command 10): `op` u32 at
//!   0 (`CLEAN` = 11), `mode` u32 at 4 (`LOGDIRTY_FINAL` = 1 for the pass
//!   with the guest suspended), `dirty_bitmap` at 16 (the caller's virtual
//!   address), `pages` u64 at 24 (bits wanted; Xen writes back how many it
//!   covered), `fault_count` u32 at 32 and `dirty_count` u32 at 36 (Xen's
//!   counters since the last CLEAN). Xen writes at most `ceil(pages / 8)`
//!   bytes of bitmap, bit `g % 8` of byte `g / 8` for guest frame `g`.
//! - `XENMEM_maximum_gpfn` (memory op 14, hypercall 12) takes a pointer to a
//!   `domid_t` and returns the domain's highest guest frame number.
//! - `__HYPERVISOR_domctl` is hypercall 36; privcmd's
//!   `IOCTL_PRIVCMD_HYPERCALL` takes `{ u64 op; u64 arg[5]; }` and returns
//!   the hypercall's result (a negative errno fails the ioctl).
//! - `IOCTL_PRIVCMD_MMAPBATCH_V2` = `_IOC(_IOC_NONE, 'P', 4, 32)` takes
//!   `struct privcmd_mmapbatch_v2 { unsigned int num; domid_t dom; __u64
//!   addr; const xen_pfn_t *arr; int *err; }` (x86-64: `num` at 0, `dom` at
//!   4, `addr` at 8, `arr` at 16, `err` at 24; 32 bytes). `addr` must be the
//!   start of a fresh `mmap` of the privcmd file exactly `num` pages long;
//!   the kernel maps foreign frame `arr[i]` of domain `dom` at page `i` and
//!   leaves `err[i]` 0 or sets a negative errno. The ioctl succeeds with
//!   per-frame errors in `err`, except that it fails with ENOENT (the
//!   array still filled) when a frame was paged out.
//!
//! The domctl buffer is locked in memory (`mlock`) so that the hypervisor's
//! copy to and from it never meets a page that is not present. A privcmd
//! mapping cannot be swapped: its page table entries are made by the ioctl
//! and stay until `munmap`.

#![deny(missing_docs)]

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io;
use std::mem::{offset_of, size_of};
use std::os::fd::AsRawFd;

use xen_abi::domctl::{
    self, Domctl, ShadowOp, SupportedReleases, DOMINF_DYING, DOMINF_PAUSED, SHADOW_LOGDIRTY_FINAL,
    SHADOW_OP_CLEAN, XEN_DOMCTL_GETDOMAININFO, XEN_DOMCTL_PAUSEDOMAIN, XEN_DOMCTL_SHADOW_OP,
    XEN_DOMCTL_UNPAUSEDOMAIN,
};
use xen_abi::hypercall::{DOMCTL, MEMORY_OP, XEN_VERSION};
use xen_abi::memory::XENMEM_MAXIMUM_GPFN;
use xen_abi::version::{Version, XENVER_VERSION};
use xen_abi::{DOMID_FIRST_RESERVED, PAGE_SIZE};

/// `sizeof(struct xen_domctl)`.
const DOMCTL_LEN: usize = size_of::<Domctl>();
/// Offset of the union in `struct xen_domctl`.
const UNION: usize = offset_of!(Domctl, payload);
/// `_IOC(_IOC_NONE, 'P', 0, sizeof(privcmd_hypercall_t))`.
const IOCTL_PRIVCMD_HYPERCALL: libc::c_ulong = (48 << 16) | ((b'P' as libc::c_ulong) << 8);
/// `sizeof(struct privcmd_mmapbatch_v2)` on x86-64.
const MMAPBATCH_LEN: usize = 32;
/// `_IOC(_IOC_NONE, 'P', 4, sizeof(struct privcmd_mmapbatch_v2))`.
const IOCTL_PRIVCMD_MMAPBATCH_V2: libc::c_ulong =
    ((MMAPBATCH_LEN as libc::c_ulong) << 16) | ((b'P' as libc::c_ulong) << 8) | 4;

/// Most frames [`Privcmd::map_foreign`] maps at once (256 MiB): bounds the
/// frame and error arrays it allocates and the address space it takes.
pub const MAX_MAP_FRAMES: u32 = 1 << 16;
/// Bits of log-dirty bitmap one 4 KiB frame holds.
pub const BITMAP_PAGES_PER_FRAME: u64 = (PAGE_SIZE as u64) * 8;

/// `privcmd_hypercall_t`.
#[repr(C)]
struct Hypercall {
    op: u64,
    arg: [u64; 5],
}

/// Why `/dev/xen/privcmd` cannot carry this crate's domctls.
#[derive(Debug)]
pub enum OpenError {
    /// `/dev/xen/privcmd` could not be opened, asked the hypervisor's
    /// version, or locked the domctl buffer.
    Io(io::Error),
    /// The hypervisor is a release whose domctl interface version depmig
    /// does not know; the message names the supported releases.
    Unsupported(Version),
    /// dom0's own state did not read back through `getdomaininfo`.
    NoReadBack,
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpenError::Io(e) => write!(f, "/dev/xen/privcmd: {e}"),
            OpenError::Unsupported(v) => write!(
                f,
                "Xen {v} is not supported: its domctl interface version is unknown \
                 (supported: Xen {SupportedReleases})"
            ),
            OpenError::NoReadBack => write!(f, "dom0's state did not read back"),
        }
    }
}

impl std::error::Error for OpenError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            OpenError::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for OpenError {
    fn from(e: io::Error) -> Self {
        OpenError::Io(e)
    }
}

/// A domain's state as the hypervisor reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Info {
    /// Paused by the toolstack.
    pub paused: bool,
    /// Shut down, with the guest's code (0 poweroff, 1 reboot, 2 suspend,
    /// 3 crash, 4 watchdog, 5 soft reset).
    pub shutdown: Option<u8>,
    /// Being torn down.
    pub dying: bool,
}

/// What one log-dirty CLEAN returned: the `xen_domctl_shadow_op` fields
/// Xen writes back.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DirtyCounts {
    /// Bits Xen covered (at most the number asked).
    pub pages: u64,
    /// Pages dirtied since the last CLEAN, by Xen's counter.
    pub dirty: u32,
    /// Log-dirty faults since the last CLEAN, by Xen's counter.
    pub faults: u32,
}

/// Why frames of another domain could not be mapped.
#[derive(Debug)]
pub enum MapError {
    /// No frames asked, more than [`MAX_MAP_FRAMES`], or frame numbers
    /// past the end of the 64-bit range.
    BadRange,
    /// The domain id names no domain (a reserved id, or above 16 bits).
    BadDomain,
    /// The address space for the mapping could not be reserved (`mmap` of
    /// `/dev/xen/privcmd`).
    Reserve(io::Error),
    /// `IOCTL_PRIVCMD_MMAPBATCH_V2` failed as a whole.
    Batch(io::Error),
    /// One frame could not be mapped: its index in the batch and the
    /// (positive) errno the kernel or Xen gave for it.
    Frame {
        /// Index of the frame in the batch.
        index: u32,
        /// The error number.
        errno: i32,
    },
}

impl MapError {
    /// A positive errno for the failure (EINVAL for the checks made here,
    /// EIO when the kernel gave none).
    pub fn errno(&self) -> i32 {
        match self {
            MapError::BadRange | MapError::BadDomain => libc::EINVAL,
            MapError::Reserve(e) | MapError::Batch(e) => e.raw_os_error().unwrap_or(libc::EIO),
            MapError::Frame { errno, .. } => *errno,
        }
    }
}

impl fmt::Display for MapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MapError::BadRange => write!(
                f,
                "frame range refused (1 to {MAX_MAP_FRAMES} frames within 64-bit frame numbers)"
            ),
            MapError::BadDomain => f.write_str("no domain can have that id"),
            MapError::Reserve(e) => write!(f, "mmap of /dev/xen/privcmd: {e}"),
            MapError::Batch(e) => write!(f, "IOCTL_PRIVCMD_MMAPBATCH_V2: {e}"),
            MapError::Frame { index, errno } => write!(
                f,
                "frame {index} of the batch: {}",
                io::Error::from_raw_os_error(*errno)
            ),
        }
    }
}

impl std::error::Error for MapError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            MapError::Reserve(e) | MapError::Batch(e) => Some(e),
            _ => None,
        }
    }
}

/// Consecutive frames of another domain mapped into this process, readable
/// and writable, until dropped. Nothing in this process reads or writes
/// them: the mapping exists so that a hypercall can write through it.
pub struct ForeignMapping {
    addr: *mut libc::c_void,
    len: usize,
    domid: u16,
    first_gfn: u64,
    frames: u32,
}

impl ForeignMapping {
    /// The domain whose frames these are.
    pub fn domid(&self) -> u32 {
        u32::from(self.domid)
    }

    /// That domain's frame number of the first frame.
    pub fn first_gfn(&self) -> u64 {
        self.first_gfn
    }

    /// How many frames are mapped.
    pub fn frames(&self) -> u32 {
        self.frames
    }

    /// Whether this maps exactly `frames` frames of `domid` from `first_gfn`.
    pub fn is(&self, domid: u32, first_gfn: u64, frames: u32) -> bool {
        self.domid() == domid && self.first_gfn == first_gfn && self.frames == frames
    }
}

impl Drop for ForeignMapping {
    fn drop(&mut self) {
        // SAFETY: `addr` and `len` are those of the mmap that made this
        // mapping, which nothing else unmaps; no reference into it exists
        // (nothing here ever reads or writes it), and a hypercall writing
        // through it needs `&mut self`, so none runs now. Unmapping drops
        // the foreign frames' references (the kernel's privcmd_close).
        // munmap of a whole range we mapped fails only on arguments no
        // mmap returns; there is nothing a drop could do about it anyway.
        let _ = unsafe { libc::munmap(self.addr, self.len) };
    }
}

impl fmt::Debug for ForeignMapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ForeignMapping")
            .field("domid", &self.domid)
            .field("first_gfn", &self.first_gfn)
            .field("frames", &self.frames)
            .finish()
    }
}

/// `domid` as a domctl names it, if it can name a domain.
fn checked_domid(domid: u32) -> Option<u16> {
    u16::try_from(domid)
        .ok()
        .filter(|&d| d < DOMID_FIRST_RESERVED)
}

/// The domctl interface version of `version`'s release.
fn domctl_interface(version: Version) -> Result<u32, OpenError> {
    domctl::interfaces_for(version)
        .map(|i| i.domctl)
        .ok_or(OpenError::Unsupported(version))
}

/// The domctl `cmd` for `domid` with interface version `interface`, as the
/// hypervisor reads it.
fn request(cmd: u32, domid: u16, interface: u32) -> [u8; DOMCTL_LEN] {
    let mut b = [0u8; DOMCTL_LEN];
    b[0..4].copy_from_slice(&cmd.to_le_bytes());
    b[4..8].copy_from_slice(&interface.to_le_bytes());
    b[8..10].copy_from_slice(&domid.to_le_bytes());
    b
}

// PANICS (the four helpers below): they are only given offsets of
// `ShadowOp` fields, and `ShadowOp` lies inside the payload union, which
// lies inside the buffer (both asserted at compile time below).

/// Writes a 32-bit field of the domctl payload union.
fn put_u32(b: &mut [u8; DOMCTL_LEN], at: usize, v: u32) {
    b[UNION + at..UNION + at + 4].copy_from_slice(&v.to_le_bytes());
}

/// Writes a 64-bit field of the domctl payload union.
fn put_u64(b: &mut [u8; DOMCTL_LEN], at: usize, v: u64) {
    b[UNION + at..UNION + at + 8].copy_from_slice(&v.to_le_bytes());
}

/// Reads a 32-bit field of the domctl payload union.
fn get_u32(b: &[u8; DOMCTL_LEN], at: usize) -> u32 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&b[UNION + at..UNION + at + 4]);
    u32::from_le_bytes(w)
}

/// Reads a 64-bit field of the domctl payload union.
fn get_u64(b: &[u8; DOMCTL_LEN], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[UNION + at..UNION + at + 8]);
    u64::from_le_bytes(w)
}

const _: () = assert!(size_of::<ShadowOp>() <= domctl::DOMCTL_PAYLOAD);
const _: () = assert!(UNION + domctl::DOMCTL_PAYLOAD == DOMCTL_LEN);

/// The shadow_op CLEAN of `domid` into the bitmap at `bitmap` (a virtual
/// address of ours), `pages` bits, with `LOGDIRTY_FINAL` for `final_pass`.
fn shadow_clean_request(
    domid: u16,
    interface: u32,
    bitmap: u64,
    pages: u64,
    final_pass: bool,
) -> [u8; DOMCTL_LEN] {
    let mut b = request(XEN_DOMCTL_SHADOW_OP, domid, interface);
    put_u32(&mut b, offset_of!(ShadowOp, op), SHADOW_OP_CLEAN);
    let mode = if final_pass { SHADOW_LOGDIRTY_FINAL } else { 0 };
    put_u32(&mut b, offset_of!(ShadowOp, mode), mode);
    put_u64(&mut b, offset_of!(ShadowOp, dirty_bitmap), bitmap);
    put_u64(&mut b, offset_of!(ShadowOp, pages), pages);
    b
}

/// The counters in a shadow_op answer.
fn decode_counts(b: &[u8; DOMCTL_LEN]) -> DirtyCounts {
    DirtyCounts {
        pages: get_u64(b, offset_of!(ShadowOp, pages)),
        dirty: get_u32(b, offset_of!(ShadowOp, dirty_count)),
        faults: get_u32(b, offset_of!(ShadowOp, fault_count)),
    }
}

/// `struct privcmd_mmapbatch_v2` as the kernel reads it: `num` frames of
/// domain `dom` at the mapping starting at `addr`, the frame numbers at
/// `arr`, the per-frame errors to `err` (both addresses of ours).
fn mmapbatch_arg(num: u32, dom: u16, addr: u64, arr: u64, err: u64) -> [u8; MMAPBATCH_LEN] {
    let mut b = [0u8; MMAPBATCH_LEN];
    b[0..4].copy_from_slice(&num.to_le_bytes());
    b[4..6].copy_from_slice(&dom.to_le_bytes());
    b[8..16].copy_from_slice(&addr.to_le_bytes());
    b[16..24].copy_from_slice(&arr.to_le_bytes());
    b[24..32].copy_from_slice(&err.to_le_bytes());
    b
}

/// The domain id and the byte length of a mapping of `frames` frames of
/// `domid` from `first_gfn`, if this crate maps such a range.
fn map_range(domid: u32, first_gfn: u64, frames: u32) -> Result<(u16, usize), MapError> {
    let dom = checked_domid(domid).ok_or(MapError::BadDomain)?;
    if frames == 0 || frames > MAX_MAP_FRAMES {
        return Err(MapError::BadRange);
    }
    first_gfn
        .checked_add(u64::from(frames))
        .ok_or(MapError::BadRange)?;
    // At most 2^16 pages of 4 KiB: no overflow.
    Ok((dom, frames as usize * PAGE_SIZE))
}

/// Whether a bitmap of `pages` bits fits in `frames` frames.
fn bitmap_fits(frames: u32, pages: u64) -> bool {
    pages <= u64::from(frames) * BITMAP_PAGES_PER_FRAME
}

/// The first frame the kernel refused in a batch's error array (the
/// kernel stores negative errnos), if any.
fn first_frame_error(errs: &[i32]) -> Option<MapError> {
    errs.iter()
        .enumerate()
        .find(|(_, &e)| e != 0)
        .map(|(i, &e)| MapError::Frame {
            index: u32::try_from(i).unwrap_or(u32::MAX),
            errno: e.checked_neg().filter(|&n| n > 0).unwrap_or(libc::EIO),
        })
}

/// Reads a getdomaininfo answer to a question about `asked`: `None` when
/// it describes another domain (the one asked does not exist).
fn decode_info(b: &[u8; DOMCTL_LEN], asked: u16) -> Option<Info> {
    let echoed = u16::from_le_bytes([b[UNION], b[UNION + 1]]);
    if echoed != asked {
        return None;
    }
    let flags = u32::from_le_bytes([b[UNION + 4], b[UNION + 5], b[UNION + 6], b[UNION + 7]]);
    Some(Info {
        paused: flags & DOMINF_PAUSED != 0,
        shutdown: domctl::dominf_shutdown_reason(flags).map(|r| r as u8),
        dying: flags & DOMINF_DYING != 0,
    })
}

/// One hypercall through privcmd: its (non-negative) result.
///
/// # Safety
///
/// 1. Every address in `arg` that hypercall `op` reads or writes through
///    points to memory of ours that is live, large enough for what `op`
///    reads and writes there, and not otherwise borrowed during the call.
unsafe fn hypercall(file: &File, op: u32, arg: [u64; 5]) -> io::Result<libc::c_int> {
    let mut h = Hypercall {
        op: u64::from(op),
        arg,
    };
    // SAFETY: the ioctl reads `h`, a live, correctly laid out
    // privcmd_hypercall_t; what the hypervisor does with the arguments is
    // covered by precondition 1.
    let r = unsafe {
        libc::ioctl(
            file.as_raw_fd(),
            IOCTL_PRIVCMD_HYPERCALL,
            &mut h as *mut Hypercall,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(r)
}

/// An open `/dev/xen/privcmd` with a locked domctl buffer.
pub struct Privcmd {
    file: File,
    buf: Box<[u8; DOMCTL_LEN]>,
    version: Version,
    interface: u32,
}

impl Privcmd {
    /// Opens `/dev/xen/privcmd`, asks the hypervisor its release and takes
    /// that release's domctl interface version (refusing a release depmig
    /// does not know), then checks that the hypervisor takes this crate's
    /// domctls: dom0's own state must read back.
    pub fn open() -> Result<Privcmd, OpenError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/xen/privcmd")?;
        // SAFETY: XENVER_version reads and writes no memory (its buffer
        // argument is NULL); the release comes back as the result.
        let raw =
            unsafe { hypercall(&file, XEN_VERSION, [u64::from(XENVER_VERSION), 0, 0, 0, 0]) }?;
        // `hypercall` only returns non-negative results.
        let version = Version::from_raw(raw as u64);
        let interface = domctl_interface(version)?;
        let buf = Box::new([0u8; DOMCTL_LEN]);
        // SAFETY: mlock only pins the pages of this live allocation, whose
        // address and length are those of the boxed array.
        let r = unsafe { libc::mlock(buf.as_ptr().cast(), DOMCTL_LEN) };
        if r != 0 {
            return Err(io::Error::last_os_error().into());
        }
        let mut p = Privcmd {
            file,
            buf,
            version,
            interface,
        };
        match p.info(0)? {
            Some(_) => Ok(p),
            None => Err(OpenError::NoReadBack),
        }
    }

    /// The hypervisor's release.
    pub fn version(&self) -> Version {
        self.version
    }

    /// The domctl interface version every request carries.
    pub fn domctl_interface(&self) -> u32 {
        self.interface
    }

    /// One domctl; the buffer holds the hypervisor's answer afterwards.
    /// Returns the id the request named.
    fn domctl(&mut self, cmd: u32, domid: u32) -> io::Result<u16> {
        let id =
            checked_domid(domid).ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
        *self.buf = request(cmd, id, self.interface);
        // SAFETY: the domctl reads and writes one `struct xen_domctl`
        // (DOMCTL_LEN bytes) at its argument: our boxed buffer, locked, and
        // not otherwise borrowed during the call.
        unsafe {
            hypercall(
                &self.file,
                DOMCTL,
                [self.buf.as_mut_ptr() as u64, 0, 0, 0, 0],
            )
        }?;
        Ok(id)
    }

    /// Domain `domid`'s highest guest frame number (`XENMEM_maximum_gpfn`):
    /// its address space is that plus one frames.
    pub fn max_gpfn(&mut self, domid: u32) -> io::Result<u64> {
        let id =
            checked_domid(domid).ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
        self.buf[0..2].copy_from_slice(&id.to_le_bytes());
        // SAFETY: XENMEM_maximum_gpfn reads one domid_t at its argument: the
        // start of our boxed, locked buffer, not otherwise borrowed during
        // the call; it writes no memory.
        let r = unsafe {
            hypercall(
                &self.file,
                MEMORY_OP,
                [
                    u64::from(XENMEM_MAXIMUM_GPFN),
                    self.buf.as_ptr() as u64,
                    0,
                    0,
                    0,
                ],
            )
        }?;
        // `hypercall` only returns non-negative results.
        Ok(r as u64)
    }

    /// Maps `frames` frames of domain `domid`, from its frame number
    /// `first_gfn` on, readable and writable, into this process.
    pub fn map_foreign(
        &self,
        domid: u32,
        first_gfn: u64,
        frames: u32,
    ) -> Result<ForeignMapping, MapError> {
        let (dom, len) = map_range(domid, first_gfn, frames)?;
        let count = u64::from(frames);
        // SAFETY: a new shared mapping of the privcmd file at an address the
        // kernel picks: it overlaps nothing of ours. privcmd only gives it
        // page table entries through the ioctl below.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                self.file.as_raw_fd(),
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(MapError::Reserve(io::Error::last_os_error()));
        }
        // From here on, dropping `mapping` unmaps the range, on every path.
        let mapping = ForeignMapping {
            addr: p,
            len,
            domid: dom,
            first_gfn,
            frames,
        };
        let gfns: Vec<u64> = (first_gfn..first_gfn + count).collect();
        let mut errs = vec![0i32; gfns.len()];
        let arg = mmapbatch_arg(
            frames,
            dom,
            p as u64,
            gfns.as_ptr() as u64,
            errs.as_mut_ptr() as u64,
        );
        // SAFETY: the kernel reads the 32-byte argument, `frames` frame
        // numbers at `gfns` and writes `frames` ints at `errs` (both live
        // vectors of that length, not otherwise borrowed during the call),
        // and fills the page table entries of our fresh mapping at `p`,
        // `frames` pages long, which nothing references.
        let r = unsafe {
            libc::ioctl(
                self.file.as_raw_fd(),
                IOCTL_PRIVCMD_MMAPBATCH_V2,
                arg.as_ptr(),
            )
        };
        if r < 0 {
            let e = io::Error::last_os_error();
            // ENOENT: a frame was paged out, and the array says which.
            if e.raw_os_error() == Some(libc::ENOENT) {
                if let Some(f) = first_frame_error(&errs) {
                    return Err(f);
                }
            }
            return Err(MapError::Batch(e));
        }
        match first_frame_error(&errs) {
            Some(f) => Err(f),
            None => Ok(mapping),
        }
    }

    /// Log-dirty CLEAN of domain `domid` (`XEN_DOMCTL_shadow_op`, op CLEAN,
    /// with `LOGDIRTY_FINAL` for `final_pass`): Xen writes the dirty bits
    /// of frames `0..pages` through `bitmap` (bit `g % 8` of byte `g / 8` =
    /// frame `g`), clears its own, and returns its counters. `pages` must
    /// fit the mapping (32768 per frame), else `InvalidInput` and no call.
    pub fn logdirty_clean_into(
        &mut self,
        domid: u32,
        bitmap: &mut ForeignMapping,
        pages: u64,
        final_pass: bool,
    ) -> io::Result<DirtyCounts> {
        let id =
            checked_domid(domid).ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
        if !bitmap_fits(bitmap.frames, pages) {
            return Err(io::Error::from(io::ErrorKind::InvalidInput));
        }
        *self.buf = shadow_clean_request(id, self.interface, bitmap.addr as u64, pages, final_pass);
        // SAFETY: the domctl reads and writes one `struct xen_domctl` at
        // its argument (our boxed, locked buffer, not otherwise borrowed
        // during the call) and writes at most ceil(pages / 8) bytes at the
        // bitmap address: inside the mapping (checked above), which we
        // borrow exclusively and never reference, and whose page table
        // entries stay until it is dropped.
        unsafe {
            hypercall(
                &self.file,
                DOMCTL,
                [self.buf.as_mut_ptr() as u64, 0, 0, 0, 0],
            )
        }?;
        Ok(decode_counts(&self.buf))
    }

    /// Domain `domid`'s state; `Ok(None)` when there is no such domain.
    pub fn info(&mut self, domid: u32) -> io::Result<Option<Info>> {
        match self.domctl(XEN_DOMCTL_GETDOMAININFO, domid) {
            Ok(id) => Ok(decode_info(&self.buf, id)),
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Pauses domain `domid` (one pause reference, as `xl pause`).
    pub fn pause(&mut self, domid: u32) -> io::Result<()> {
        self.domctl(XEN_DOMCTL_PAUSEDOMAIN, domid).map(drop)
    }

    /// Drops the toolstack's pause of domain `domid` (as `xl unpause` does
    /// for a domain without a device model).
    pub fn unpause(&mut self, domid: u32) -> io::Result<()> {
        self.domctl(XEN_DOMCTL_UNPAUSEDOMAIN, domid).map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ioctl_number_is_privcmds() {
        // _IOC(_IOC_NONE, 'P', 0, 48) on x86.
        assert_eq!(IOCTL_PRIVCMD_HYPERCALL, 0x0030_5000);
        assert_eq!(core::mem::size_of::<Hypercall>(), 48);
    }

    fn v(major: u16, minor: u16) -> Version {
        Version { major, minor }
    }

    #[test]
    fn the_domctl_layout_is_xen_domctl() {
        assert_eq!(DOMCTL_LEN, 144);
        assert_eq!(UNION, 16);
    }

    #[test]
    fn each_release_gets_its_domctl_interface() {
        // XENVER_version's answer is major << 16 | minor.
        let of = |raw: u64| domctl_interface(Version::from_raw(raw)).ok();
        assert_eq!(of(0x0004_0011), Some(0x15));
        assert_eq!(of(0x0004_0013), Some(0x17));
        assert_eq!(of(0x0004_0014), Some(0x17));
        assert_eq!(of(0x0004_0015), Some(0x17));
        assert_eq!(of(0x0004_0016), Some(0x18));
    }

    #[test]
    fn unknown_releases_are_refused_naming_the_supported_ones() {
        for (major, minor) in [(4, 16), (4, 18), (4, 23), (5, 0), (5, 17)] {
            match domctl_interface(v(major, minor)) {
                Err(e @ OpenError::Unsupported(got)) => {
                    assert_eq!(got, v(major, minor));
                    assert_eq!(
                        e.to_string(),
                        format!(
                            "Xen {major}.{minor} is not supported: its domctl interface \
                             version is unknown (supported: Xen 4.17, 4.19, 4.20, 4.21, 4.22)"
                        )
                    );
                }
                other => panic!("{major}.{minor}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_request_names_command_version_and_domain() {
        let b = request(XEN_DOMCTL_UNPAUSEDOMAIN, 0x1234, 0x15);
        assert_eq!(&b[0..4], &[4, 0, 0, 0]);
        assert_eq!(&b[4..8], &[0x15, 0, 0, 0]);
        assert_eq!(&b[8..10], &[0x34, 0x12]);
        assert!(b[10..].iter().all(|&x| x == 0));
    }

    #[test]
    fn a_request_carries_the_running_releases_interface() {
        let expected = [
            (v(4, 17), 0x15),
            (v(4, 19), 0x17),
            (v(4, 20), 0x17),
            (v(4, 21), 0x17),
            (v(4, 22), 0x18),
        ];
        let table: Vec<Version> = domctl::RELEASES.iter().map(|r| r.version).collect();
        let listed: Vec<Version> = expected.iter().map(|&(r, _)| r).collect();
        assert_eq!(table, listed);
        for (release, interface) in expected {
            let b = request(
                XEN_DOMCTL_GETDOMAININFO,
                7,
                domctl_interface(release).unwrap(),
            );
            assert_eq!(&b[0..4], &[5, 0, 0, 0], "{release}");
            assert_eq!(&b[4..8], &[interface, 0, 0, 0], "{release}");
            assert_eq!(&b[8..10], &[7, 0], "{release}");
            assert!(b[10..].iter().all(|&x| x == 0), "{release}");
        }
    }

    fn answer(domid: u16, flags: u32) -> [u8; DOMCTL_LEN] {
        let mut b = request(XEN_DOMCTL_GETDOMAININFO, domid, 0x17);
        b[UNION..UNION + 2].copy_from_slice(&domid.to_le_bytes());
        b[UNION + 4..UNION + 8].copy_from_slice(&flags.to_le_bytes());
        b
    }

    #[test]
    fn getdomaininfo_flags_read_as_xl_shows_them() {
        // Shut down for suspend (code 2), paused.
        let b = answer(7, (2 << 16) | (1 << 2) | (1 << 3));
        assert_eq!(
            decode_info(&b, 7),
            Some(Info {
                paused: true,
                shutdown: Some(2),
                dying: false
            })
        );
        // Running (bit 5), blocked (bit 4): neither paused nor shut down; a
        // stale shutdown code without the shutdown bit means nothing.
        let b = answer(7, (3 << 16) | (1 << 5) | (1 << 4));
        assert_eq!(
            decode_info(&b, 7),
            Some(Info {
                paused: false,
                shutdown: None,
                dying: false
            })
        );
        // Dying.
        assert_eq!(decode_info(&answer(7, 1), 7).map(|i| i.dying), Some(true));
        // The answer is about domain 9: domain 7 does not exist.
        assert_eq!(decode_info(&answer(9, 0), 7), None);
    }

    #[test]
    fn reserved_and_oversized_domids_are_refused() {
        assert_eq!(checked_domid(0), Some(0));
        assert_eq!(checked_domid(0x7fef), Some(0x7fef));
        for id in [u32::from(DOMID_FIRST_RESERVED), 0x7fff, 0x1_0000, u32::MAX] {
            assert_eq!(checked_domid(id), None, "{id:#x}");
        }
    }

    #[test]
    fn the_mmapbatch_ioctl_and_argument_are_linuxs() {
        // _IOC(_IOC_NONE, 'P', 4, 32) on x86.
        assert_eq!(IOCTL_PRIVCMD_MMAPBATCH_V2, 0x0020_5004);
        let b = mmapbatch_arg(
            3,
            0x0102,
            0x7f00_1234_5000,
            0x5555_0000_1000,
            0x5555_0000_2000,
        );
        assert_eq!(&b[0..4], &[3, 0, 0, 0], "num");
        assert_eq!(&b[4..6], &[0x02, 0x01], "dom");
        assert_eq!(&b[6..8], &[0, 0], "padding before addr");
        assert_eq!(&b[8..16], &0x7f00_1234_5000u64.to_le_bytes(), "addr");
        assert_eq!(&b[16..24], &0x5555_0000_1000u64.to_le_bytes(), "arr");
        assert_eq!(&b[24..32], &0x5555_0000_2000u64.to_le_bytes(), "err");
    }

    #[test]
    fn a_shadow_clean_request_is_xen_domctl_shadow_op() {
        for (final_pass, mode) in [(false, 0u8), (true, 1)] {
            let b = shadow_clean_request(7, 0x17, 0x7f00_1234_5000, 1_044_480, final_pass);
            assert_eq!(&b[0..4], &[10, 0, 0, 0], "XEN_DOMCTL_shadow_op");
            assert_eq!(&b[4..8], &[0x17, 0, 0, 0], "interface version");
            assert_eq!(&b[8..10], &[7, 0], "the domain whose log is cleaned");
            assert!(b[10..16].iter().all(|&x| x == 0));
            assert_eq!(&b[16..20], &[11, 0, 0, 0], "op CLEAN");
            assert_eq!(&b[20..24], &[mode, 0, 0, 0], "LOGDIRTY_FINAL or not");
            assert!(b[24..32].iter().all(|&x| x == 0), "mb, padding");
            assert_eq!(&b[32..40], &0x7f00_1234_5000u64.to_le_bytes(), "bitmap");
            assert_eq!(&b[40..48], &1_044_480u64.to_le_bytes(), "pages");
            assert!(b[48..].iter().all(|&x| x == 0), "counters and the rest");
        }
    }

    #[test]
    fn the_answers_counters_are_read() {
        let mut b = shadow_clean_request(7, 0x17, 0x1000, 1_044_480, false);
        // Xen covered fewer pages than asked and counted.
        b[40..48].copy_from_slice(&1_040_000u64.to_le_bytes());
        b[48..52].copy_from_slice(&9u32.to_le_bytes());
        b[52..56].copy_from_slice(&311u32.to_le_bytes());
        assert_eq!(
            decode_counts(&b),
            DirtyCounts {
                pages: 1_040_000,
                dirty: 311,
                faults: 9
            }
        );
    }

    #[test]
    fn a_bitmap_must_fit_its_mapping() {
        assert!(bitmap_fits(1, 32768));
        assert!(!bitmap_fits(1, 32769));
        assert!(bitmap_fits(32, 1_044_480));
        assert!(!bitmap_fits(0, 1));
        assert!(bitmap_fits(
            MAX_MAP_FRAMES,
            u64::from(MAX_MAP_FRAMES) * 32768
        ));
        assert!(!bitmap_fits(u32::MAX, u64::MAX));
    }

    #[test]
    fn mapping_ranges_are_checked_before_any_call() {
        assert_eq!(map_range(8, 0x1234, 32).ok(), Some((8, 32 * 4096)));
        assert_eq!(
            map_range(8, 0, MAX_MAP_FRAMES).ok(),
            Some((8, (MAX_MAP_FRAMES as usize) * 4096))
        );
        assert_eq!(
            map_range(8, u64::MAX - 2, 2).ok(),
            Some((8, 2 * 4096)),
            "the last frame numbers"
        );
        for (domid, gfn, frames) in [
            (8, 0, 0),
            (8, 0, MAX_MAP_FRAMES + 1),
            (8, u64::MAX - 1, 2),
            (8, u64::MAX, 1),
        ] {
            assert!(
                matches!(map_range(domid, gfn, frames), Err(MapError::BadRange)),
                "{gfn:#x}+{frames}"
            );
        }
        for domid in [u32::from(DOMID_FIRST_RESERVED), 0x1_0000, u32::MAX] {
            assert!(matches!(map_range(domid, 0, 1), Err(MapError::BadDomain)));
        }
        assert_eq!(MapError::BadRange.errno(), libc::EINVAL);
    }

    #[test]
    fn a_refused_frame_reports_its_index_and_errno() {
        assert!(first_frame_error(&[0, 0, 0]).is_none());
        match first_frame_error(&[0, 0, -libc::EPERM, -libc::ENOENT]) {
            Some(e @ MapError::Frame { index: 2, errno }) => {
                assert_eq!(errno, libc::EPERM);
                assert_eq!(e.errno(), libc::EPERM);
            }
            other => panic!("{other:?}"),
        }
        // Not a negative errno: still a failure, with a neutral errno.
        assert!(matches!(
            first_frame_error(&[5]),
            Some(MapError::Frame {
                index: 0,
                errno: libc::EIO
            })
        ));
        assert!(matches!(
            first_frame_error(&[i32::MIN]),
            Some(MapError::Frame {
                errno: libc::EIO,
                ..
            })
        ));
        let batch = MapError::Batch(io::Error::from_raw_os_error(libc::EFAULT));
        assert_eq!(batch.errno(), libc::EFAULT);
    }
}
