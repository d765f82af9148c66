//! Grant table v1: grant our frames to other domains, map theirs.
//!
//! The table's frames are mapped into holes of the physmap window; entries
//! are written with the ordering the ABI requires (domid and frame before
//! flags) and revoked with a compare-exchange so a grant still in use by
//! the grantee is never silently taken back.

use core::sync::atomic::{fence, AtomicU16, AtomicU32, Ordering};

use xen_abi::errno::XenErrno;
use xen_abi::grant_table::*;
use xen_abi::hypercall::GRANT_TABLE_OP;
use xen_abi::{DomId, GrantRef, PAGE_SHIFT};

use super::hypercall::op_array;

/// Entries reserved for the toolstack (console, xenstore) at the table start.
pub const RESERVED_ENTRIES: u32 = 8;

/// Why a grant operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GrantError {
    /// The hypercall itself failed.
    Hypercall(XenErrno),
    /// Xen refused the operation with this `GNTST_*` status.
    Status(i16),
    /// No free entry left in the mapped frames.
    TableFull,
    /// The reference is outside the table or not one this code handed out.
    BadRef,
    /// The grantee still has the frame mapped; access was not revoked.
    InUse,
}

impl From<XenErrno> for GrantError {
    fn from(e: XenErrno) -> Self {
        GrantError::Hypercall(e)
    }
}

/// This domain's grant table.
pub struct GrantTable {
    base: u64,
    entries: u32,
    next: u32,
}

impl GrantTable {
    /// Wraps `frames` table frames mapped contiguously at `base`.
    ///
    /// # Safety
    /// 1. Xen mapped this domain's grant table frames 0..frames at `base`.
    pub unsafe fn new(base: u64, frames: u32) -> Self {
        GrantTable {
            base,
            entries: frames * ENTRIES_PER_FRAME as u32,
            next: RESERVED_ENTRIES,
        }
    }

    /// Number of usable entries.
    pub fn capacity(&self) -> u32 {
        self.entries
    }

    fn entry_addr(&self, r: GrantRef) -> Result<u64, GrantError> {
        if r >= self.entries {
            return Err(GrantError::BadRef);
        }
        Ok(self.base + u64::from(r) * 8)
    }

    fn flags(&self, r: GrantRef) -> Result<&AtomicU16, GrantError> {
        let a = self.entry_addr(r)?;
        // SAFETY: an entry inside the mapped table (checked above), 2-aligned.
        Ok(unsafe { &*(a as *const AtomicU16) })
    }

    /// Grants `domid` access to our frame `gfn`.
    pub fn grant(
        &mut self,
        domid: DomId,
        gfn: u64,
        readonly: bool,
    ) -> Result<GrantRef, GrantError> {
        let frame = u32::try_from(gfn).map_err(|_| GrantError::BadRef)?;
        // Simple allocation: scan for an invalid entry from `next`, bounded.
        for i in 0..self.entries.saturating_sub(RESERVED_ENTRIES) {
            let span = self.entries - RESERVED_ENTRIES;
            let r = RESERVED_ENTRIES + (self.next - RESERVED_ENTRIES + i) % span;
            let flags = self.flags(r)?;
            if flags.load(Ordering::SeqCst) & GTF_TYPE_MASK != GTF_INVALID {
                continue;
            }
            let a = self.entry_addr(r)?;
            // SAFETY: fields of an unused entry inside the mapped table; Xen
            // reads them only after `flags` makes the entry valid.
            unsafe {
                (*((a + 2) as *const AtomicU16)).store(domid, Ordering::SeqCst);
                (*((a + 4) as *const AtomicU32)).store(frame, Ordering::SeqCst);
            }
            fence(Ordering::SeqCst);
            flags.store(
                GTF_PERMIT_ACCESS | if readonly { GTF_READONLY } else { 0 },
                Ordering::SeqCst,
            );
            self.next = r + 1;
            if self.next >= self.entries {
                self.next = RESERVED_ENTRIES;
            }
            return Ok(r);
        }
        Err(GrantError::TableFull)
    }

    /// A snapshot of an entry: `(flags, domid, frame)`.
    pub fn entry(&self, r: GrantRef) -> Result<(u16, DomId, u32), GrantError> {
        let a = self.entry_addr(r)?;
        // SAFETY: fields of an entry inside the mapped table.
        unsafe {
            Ok((
                (*(a as *const AtomicU16)).load(Ordering::SeqCst),
                (*((a + 2) as *const AtomicU16)).load(Ordering::SeqCst),
                (*((a + 4) as *const AtomicU32)).load(Ordering::SeqCst),
            ))
        }
    }

    /// Revokes a grant unless the grantee still has it mapped.
    pub fn end_access(&mut self, r: GrantRef) -> Result<(), GrantError> {
        if r < RESERVED_ENTRIES {
            return Err(GrantError::BadRef);
        }
        let flags = self.flags(r)?;
        let cur = flags.load(Ordering::SeqCst);
        if cur & (GTF_READING | GTF_WRITING) != 0 {
            return Err(GrantError::InUse);
        }
        flags
            .compare_exchange(cur, GTF_INVALID, Ordering::SeqCst, Ordering::SeqCst)
            .map(|_| ())
            .map_err(|_| GrantError::InUse)
    }
}

/// A foreign grant mapped into our physmap.
#[derive(Debug)]
pub struct Mapping {
    /// Guest physical (= virtual) address of the mapped page.
    pub addr: u64,
    handle: u32,
}

/// Maps grant `gref` of domain `dom` at our guest frame `gfn` (a hole).
pub fn map(dom: DomId, gref: GrantRef, gfn: u64, readonly: bool) -> Result<Mapping, GrantError> {
    let mut m = MapGrantRef {
        host_addr: gfn << PAGE_SHIFT,
        flags: GNTMAP_HOST_MAP | if readonly { GNTMAP_READONLY } else { 0 },
        gref,
        dom,
        ..Default::default()
    };
    // SAFETY: GNTTABOP_map_grant_ref takes an array of gnttab_map_grant_ref.
    unsafe {
        op_array(
            GRANT_TABLE_OP,
            GNTTABOP_MAP_GRANT_REF,
            core::slice::from_mut(&mut m),
        )?
    };
    if m.status != GNTST_OKAY {
        return Err(GrantError::Status(m.status));
    }
    Ok(Mapping {
        addr: m.host_addr,
        handle: m.handle,
    })
}

/// Unmaps a mapping made by [`map`].
pub fn unmap(m: Mapping) -> Result<(), GrantError> {
    let mut u = UnmapGrantRef {
        host_addr: m.addr,
        handle: m.handle,
        ..Default::default()
    };
    // SAFETY: GNTTABOP_unmap_grant_ref takes an array of gnttab_unmap_grant_ref.
    unsafe {
        op_array(
            GRANT_TABLE_OP,
            GNTTABOP_UNMAP_GRANT_REF,
            core::slice::from_mut(&mut u),
        )?
    };
    if u.status != GNTST_OKAY {
        return Err(GrantError::Status(u.status));
    }
    Ok(())
}

/// `GNTTABOP_query_size` for this domain: `(frames in use, max frames)`.
pub fn query_size() -> Result<(u32, u32), GrantError> {
    let mut q = QuerySize {
        dom: xen_abi::DOMID_SELF,
        ..Default::default()
    };
    // SAFETY: GNTTABOP_query_size takes an array of gnttab_query_size.
    unsafe {
        op_array(
            GRANT_TABLE_OP,
            GNTTABOP_QUERY_SIZE,
            core::slice::from_mut(&mut q),
        )?
    };
    if q.status != GNTST_OKAY {
        return Err(GrantError::Status(q.status));
    }
    Ok((q.nr_frames, q.max_nr_frames))
}
