//! Raw system interfaces: mapping the taint table, finding the physical
//! frames behind a mapping (`/proc/self/pagemap`), and reading a pinned BPF
//! map with the `bpf(2)` syscall (for the in-guest tests, which must not
//! mmap it: a shared mapping would count as shared memory).

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::fs::FileExt;
use std::sync::atomic::AtomicU64;

/// A shared read-write mapping of a BPF map's value area.
pub struct Mapping {
    ptr: *mut libc::c_void,
    len: usize,
}

impl Mapping {
    /// Maps `len` bytes of the mmapable BPF map `fd` and faults every page in.
    pub fn map(fd: BorrowedFd<'_>, len: usize) -> io::Result<Self> {
        // SAFETY: a fresh shared mapping of a file descriptor we hold; the
        // kernel validates fd, length and protection.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                fd.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Mapping { ptr, len })
    }

    /// The mapping as atomic words (the BPF programs write it concurrently).
    pub fn words(&self) -> &[AtomicU64] {
        // SAFETY: the mapping is page aligned, `len` bytes long, readable and
        // writable, and lives as long as `self`; all access goes through
        // atomics because the kernel updates it concurrently.
        unsafe { std::slice::from_raw_parts(self.ptr as *const AtomicU64, self.len / 8) }
    }

    /// Address of the first byte (for pagemap).
    pub fn addr(&self) -> usize {
        self.ptr as usize
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly what `map` mapped.
        unsafe {
            libc::munmap(self.ptr, self.len);
        }
    }
}

/// Physical frame numbers of the `pages` pages starting at `addr` in this
/// process, from `/proc/self/pagemap` (needs CAP_SYS_ADMIN to see them).
pub fn frames_of(addr: usize, pages: usize) -> io::Result<Vec<u64>> {
    let pm = File::open("/proc/self/pagemap")?;
    let mut out = Vec::with_capacity(pages);
    for i in 0..pages {
        let vpn = (addr / 4096 + i) as u64;
        let mut b = [0u8; 8];
        pm.read_exact_at(&mut b, vpn * 8)?;
        let e = u64::from_le_bytes(b);
        let pfn = e & ((1u64 << 55) - 1);
        if e >> 63 == 0 || pfn == 0 {
            return Err(io::Error::other(format!(
                "page {i} of the table is not present or its frame is hidden (pagemap entry {e:#x})"
            )));
        }
        out.push(pfn);
    }
    Ok(out)
}

const BPF_MAP_LOOKUP_ELEM: libc::c_long = 1;
const BPF_OBJ_GET: libc::c_long = 7;
const BPF_F_RDONLY: u32 = 1 << 3;

/// Opens a pinned BPF map read-only.
pub fn obj_get(path: &str) -> io::Result<File> {
    let c = std::ffi::CString::new(path).map_err(|_| io::Error::other("NUL in path"))?;
    // union bpf_attr for BPF_OBJ_GET: pathname u64, bpf_fd u32, file_flags u32
    let mut attr = [0u64; 16];
    attr[0] = c.as_ptr() as u64;
    attr[1] = u64::from(BPF_F_RDONLY) << 32;
    // SAFETY: bpf(2) reads a bpf_attr of the given size from `attr`, which
    // outlives the call, as does the path string it points to.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_OBJ_GET,
            attr.as_mut_ptr(),
            std::mem::size_of_val(&attr),
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel returned a new file descriptor that we now own.
    Ok(unsafe { <File as std::os::fd::FromRawFd>::from_raw_fd(fd as i32) })
}

const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;

/// Value size of the BPF map `map` (from its `bpf_map_info`).
pub fn value_size(map: &File) -> io::Result<u32> {
    // struct bpf_map_info starts: type u32, id u32, key_size u32, value_size u32
    let mut info = [0u32; 32];
    // union bpf_attr for BPF_OBJ_GET_INFO_BY_FD: bpf_fd u32, info_len u32, info u64
    let mut attr = [0u64; 16];
    attr[0] = u64::from(map.as_raw_fd() as u32) | ((std::mem::size_of_val(&info) as u64) << 32);
    attr[1] = info.as_mut_ptr() as u64;
    // SAFETY: the kernel writes at most info_len bytes into `info`, which
    // outlives the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_OBJ_GET_INFO_BY_FD,
            attr.as_mut_ptr(),
            std::mem::size_of_val(&attr),
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(info[3])
}

/// Copies element 0 of the array map `map`, whose value size must be `size`.
pub fn lookup_first(map: &File, size: usize) -> io::Result<Vec<u8>> {
    let vs = value_size(map)? as usize;
    if vs != size {
        return Err(io::Error::other(format!(
            "map value size {vs}, expected {size}"
        )));
    }
    let mut out = vec![0u8; size];
    let k: u32 = 0;
    // union bpf_attr for BPF_MAP_LOOKUP_ELEM: map_fd u32, pad, key u64, value u64, flags u64
    let mut attr = [0u64; 16];
    attr[0] = u64::from(map.as_raw_fd() as u32);
    attr[1] = &k as *const u32 as u64;
    attr[2] = out.as_mut_ptr() as u64;
    // SAFETY: the kernel writes value_size bytes to `out`, which was just
    // checked to be exactly `out.len()`; `k` and `out` outlive the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_MAP_LOOKUP_ELEM,
            attr.as_mut_ptr(),
            std::mem::size_of_val(&attr),
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(out)
}
