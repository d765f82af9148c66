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
//! ABI facts from Xen's public headers (`xen/domctl.h`, `xen/xen.h`,
//! `xen/sys/privcmd.h` of Debian's libxen-dev 4.17):
//!
//! - `struct xen_domctl`: `cmd` u32 at 0, `interface_version` u32 at 4,
//!   `domain` u16 at 8, padding to 16, then a 128-byte union: 144 bytes.
//!   Xen refuses a domctl whose interface version is not its own
//!   (`-EACCES`); 4.17's is 0x15.
//! - `struct xen_domctl_getdomaininfo` (in the union): `domain` u16 at 0,
//!   `flags` u32 at 4 (`XEN_DOMINF_dying` bit 0, `shutdown` bit 2, `paused`
//!   bit 3, the shutdown code in bits 16..24). Up to Xen 4.17 the call
//!   answers for the first domain whose id is at least the one asked, and
//!   echoes that domain's id: a different id means the one asked is gone.
//! - `__HYPERVISOR_domctl` is hypercall 36; privcmd's
//!   `IOCTL_PRIVCMD_HYPERCALL` takes `{ u64 op; u64 arg[5]; }` and returns
//!   the hypercall's result (a negative errno fails the ioctl).
//!
//! The domctl buffer is locked in memory (`mlock`) so that the hypervisor's
//! copy to and from it never meets a page that is not present.

#![deny(missing_docs)]

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;

/// `__HYPERVISOR_domctl`.
const HYPERVISOR_DOMCTL: u64 = 36;
/// `XEN_DOMCTL_INTERFACE_VERSION` of Xen 4.17.
pub const DOMCTL_INTERFACE_VERSION: u32 = 0x15;
/// `XEN_DOMCTL_pausedomain`.
const DOMCTL_PAUSEDOMAIN: u32 = 3;
/// `XEN_DOMCTL_unpausedomain`.
const DOMCTL_UNPAUSEDOMAIN: u32 = 4;
/// `XEN_DOMCTL_getdomaininfo`.
const DOMCTL_GETDOMAININFO: u32 = 5;
/// `sizeof(struct xen_domctl)`.
const DOMCTL_LEN: usize = 144;
/// Offset of the union in `struct xen_domctl`.
const UNION: usize = 16;
/// `_IOC(_IOC_NONE, 'P', 0, sizeof(privcmd_hypercall_t))`.
const IOCTL_PRIVCMD_HYPERCALL: libc::c_ulong = (48 << 16) | ((b'P' as libc::c_ulong) << 8);
/// Domain ids from here on are reserved (`DOMID_FIRST_RESERVED`).
const DOMID_FIRST_RESERVED: u32 = 0x7ff0;

/// `privcmd_hypercall_t`.
#[repr(C)]
struct Hypercall {
    op: u64,
    arg: [u64; 5],
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

/// `domid` as a domctl names it, if it can name a domain.
fn checked_domid(domid: u32) -> Option<u16> {
    u16::try_from(domid)
        .ok()
        .filter(|&d| u32::from(d) < DOMID_FIRST_RESERVED)
}

/// The domctl `cmd` for `domid`, as the hypervisor reads it.
fn request(cmd: u32, domid: u16) -> [u8; DOMCTL_LEN] {
    let mut b = [0u8; DOMCTL_LEN];
    b[0..4].copy_from_slice(&cmd.to_le_bytes());
    b[4..8].copy_from_slice(&DOMCTL_INTERFACE_VERSION.to_le_bytes());
    b[8..10].copy_from_slice(&domid.to_le_bytes());
    b
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
        paused: flags & (1 << 3) != 0,
        shutdown: (flags & (1 << 2) != 0).then_some((flags >> 16) as u8),
        dying: flags & 1 != 0,
    })
}

/// An open `/dev/xen/privcmd` with a locked domctl buffer.
pub struct Privcmd {
    file: File,
    buf: Box<[u8; DOMCTL_LEN]>,
}

impl Privcmd {
    /// Opens `/dev/xen/privcmd` and checks that the hypervisor takes this
    /// crate's domctls: dom0's own state must read back.
    pub fn open() -> io::Result<Privcmd> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/xen/privcmd")?;
        let buf = Box::new([0u8; DOMCTL_LEN]);
        // SAFETY: mlock only pins the pages of this live allocation, whose
        // address and length are those of the boxed array.
        let r = unsafe { libc::mlock(buf.as_ptr().cast(), DOMCTL_LEN) };
        if r != 0 {
            return Err(io::Error::last_os_error());
        }
        let mut p = Privcmd { file, buf };
        match p.info(0)? {
            Some(_) => Ok(p),
            None => Err(io::Error::other("dom0's state did not read back")),
        }
    }

    /// One domctl; the buffer holds the hypervisor's answer afterwards.
    /// Returns the id the request named.
    fn domctl(&mut self, cmd: u32, domid: u32) -> io::Result<u16> {
        let id =
            checked_domid(domid).ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
        *self.buf = request(cmd, id);
        let mut h = Hypercall {
            op: HYPERVISOR_DOMCTL,
            arg: [self.buf.as_mut_ptr() as u64, 0, 0, 0, 0],
        };
        // SAFETY: the ioctl reads `h` (a live, correctly laid out
        // privcmd_hypercall_t) and the hypervisor reads and writes the
        // 144-byte domctl buffer `h.arg[0]` points to, which is ours,
        // locked, and not otherwise borrowed during the call.
        let r = unsafe {
            libc::ioctl(
                self.file.as_raw_fd(),
                IOCTL_PRIVCMD_HYPERCALL,
                &mut h as *mut Hypercall,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(id)
    }

    /// Domain `domid`'s state; `Ok(None)` when there is no such domain.
    pub fn info(&mut self, domid: u32) -> io::Result<Option<Info>> {
        match self.domctl(DOMCTL_GETDOMAININFO, domid) {
            Ok(id) => Ok(decode_info(&self.buf, id)),
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Pauses domain `domid` (one pause reference, as `xl pause`).
    pub fn pause(&mut self, domid: u32) -> io::Result<()> {
        self.domctl(DOMCTL_PAUSEDOMAIN, domid).map(drop)
    }

    /// Drops the toolstack's pause of domain `domid` (as `xl unpause` does
    /// for a domain without a device model).
    pub fn unpause(&mut self, domid: u32) -> io::Result<()> {
        self.domctl(DOMCTL_UNPAUSEDOMAIN, domid).map(drop)
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

    #[test]
    fn a_request_names_command_version_and_domain() {
        let b = request(DOMCTL_UNPAUSEDOMAIN, 0x1234);
        assert_eq!(&b[0..4], &[4, 0, 0, 0]);
        assert_eq!(&b[4..8], &[0x15, 0, 0, 0]);
        assert_eq!(&b[8..10], &[0x34, 0x12]);
        assert!(b[10..].iter().all(|&x| x == 0));
    }

    fn answer(domid: u16, flags: u32) -> [u8; DOMCTL_LEN] {
        let mut b = request(DOMCTL_GETDOMAININFO, domid);
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
        for id in [DOMID_FIRST_RESERVED, 0x7fff, 0x1_0000, u32::MAX] {
            assert_eq!(checked_domid(id), None, "{id:#x}");
        }
    }
}
