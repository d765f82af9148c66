//! Front end of a Xen shared ring (`xen/include/public/io/ring.h`).
//!
//! Layout of the shared page: `req_prod` @0, `req_event` @4, `rsp_prod` @8,
//! `rsp_event` @12, 48 bytes of padding, then the entries from byte 64. The
//! number of entries is the largest power of two that fits. Indices are free
//! running `u32`s; a slot is `index & (size - 1)`.
//!
//! The producer index the backend writes (`rsp_prod`) is hostile input: the
//! ring refuses a value that claims more responses than requests outstanding.

use crate::{NetError, PAGE_SIZE};

const REQ_PROD: usize = 0;
const REQ_EVENT: usize = 4;
const RSP_PROD: usize = 8;
const RSP_EVENT: usize = 12;
/// Offset of the first entry in the shared page.
pub const RING_HEADER: usize = 64;

/// A page shared with the backend domain.
///
/// Implementations make each `load_u32`/`store_u32` a single volatile access
/// and `fence` a full barrier; `read`/`write` copy entry bytes. Offsets passed
/// by this crate always lie inside the page.
pub trait SharedMem {
    /// Reads the `u32` at `off` (little-endian, naturally aligned).
    fn load_u32(&self, off: usize) -> u32;
    /// Writes the `u32` at `off`.
    fn store_u32(&mut self, off: usize, value: u32);
    /// Copies `out.len()` bytes starting at `off` out of the page.
    fn read(&self, off: usize, out: &mut [u8]);
    /// Copies `data` into the page at `off`.
    fn write(&mut self, off: usize, data: &[u8]);
    /// Full memory barrier: orders every access before it against every one after.
    fn fence(&self);
}

/// Number of entries of `entry_size` bytes in one ring page.
pub const fn ring_size(entry_size: usize) -> u32 {
    let n = (PAGE_SIZE - RING_HEADER) / entry_size;
    // Round down to a power of two, as __RD32 does.
    let mut p = 1u32;
    while (p as usize) * 2 <= n {
        p *= 2;
    }
    p
}

/// The frontend's private view of one shared ring.
pub struct FrontRing<M> {
    mem: M,
    entry_size: usize,
    size: u32,
    req_prod_pvt: u32,
    rsp_cons: u32,
}

impl<M: SharedMem> FrontRing<M> {
    /// Initialises the shared page (SHARED_RING_INIT) and the private indices
    /// (FRONT_RING_INIT). Call before the page is granted to the backend.
    pub fn init(mut mem: M, entry_size: usize) -> Self {
        for off in (0..RING_HEADER).step_by(4) {
            mem.store_u32(off, 0);
        }
        mem.store_u32(REQ_EVENT, 1);
        mem.store_u32(RSP_EVENT, 1);
        mem.fence();
        FrontRing {
            mem,
            entry_size,
            size: ring_size(entry_size),
            req_prod_pvt: 0,
            rsp_cons: 0,
        }
    }

    /// Number of slots in the ring.
    pub fn size(&self) -> u32 {
        self.size
    }

    /// Requests written (pushed or not) whose responses were not consumed yet.
    pub fn outstanding(&self) -> u32 {
        self.req_prod_pvt.wrapping_sub(self.rsp_cons)
    }

    /// Slots free for new requests.
    pub fn free_requests(&self) -> u32 {
        self.size - self.outstanding()
    }

    /// Free-running index the next request will take.
    pub fn next_request_index(&self) -> u32 {
        self.req_prod_pvt
    }

    /// Free-running index of the next response to consume.
    pub fn next_response_index(&self) -> u32 {
        self.rsp_cons
    }

    fn slot_offset(&self, index: u32) -> usize {
        RING_HEADER + ((index & (self.size - 1)) as usize) * self.entry_size
    }

    /// Writes a request into the next private slot. Returns `false` (and
    /// writes nothing) when the ring is full or the entry is too large.
    pub fn put_request(&mut self, entry: &[u8]) -> bool {
        if self.free_requests() == 0 || entry.len() > self.entry_size {
            return false;
        }
        let off = self.slot_offset(self.req_prod_pvt);
        self.mem.write(off, entry);
        self.req_prod_pvt = self.req_prod_pvt.wrapping_add(1);
        true
    }

    /// Publishes the private requests (RING_PUSH_REQUESTS_AND_CHECK_NOTIFY);
    /// returns whether the backend asked to be notified.
    pub fn push_requests(&mut self) -> bool {
        let old = self.mem.load_u32(REQ_PROD);
        let new = self.req_prod_pvt;
        if old == new {
            return false;
        }
        self.mem.fence();
        self.mem.store_u32(REQ_PROD, new);
        self.mem.fence();
        let event = self.mem.load_u32(REQ_EVENT);
        new.wrapping_sub(event) < new.wrapping_sub(old)
    }

    /// Responses the backend has produced and we have not consumed, checked
    /// against what we asked for.
    pub fn unconsumed_responses(&self) -> Result<u32, NetError> {
        let prod = self.mem.load_u32(RSP_PROD);
        let avail = prod.wrapping_sub(self.rsp_cons);
        if avail > self.outstanding() {
            return Err(NetError::ResponseOverrun);
        }
        self.mem.fence();
        Ok(avail)
    }

    /// Copies the next response (at `rsp_cons`) into `out` and consumes it.
    /// The caller must have seen it counted by [`Self::unconsumed_responses`].
    pub fn take_response(&mut self, out: &mut [u8]) {
        let off = self.slot_offset(self.rsp_cons);
        let n = out.len().min(self.entry_size);
        if let Some(dst) = out.get_mut(..n) {
            self.mem.read(off, dst);
        }
        self.rsp_cons = self.rsp_cons.wrapping_add(1);
    }

    /// Re-arms the response event (RING_FINAL_CHECK_FOR_RESPONSES) and says
    /// whether responses arrived meanwhile.
    pub fn final_check_for_responses(&mut self) -> Result<bool, NetError> {
        if self.unconsumed_responses()? > 0 {
            return Ok(true);
        }
        self.mem.store_u32(RSP_EVENT, self.rsp_cons.wrapping_add(1));
        self.mem.fence();
        Ok(self.unconsumed_responses()? > 0)
    }

    /// The shared page, e.g. for a test backend.
    pub fn mem(&self) -> &M {
        &self.mem
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::Page;
    use crate::wire;

    #[test]
    fn netif_rings_have_256_slots() {
        assert_eq!(ring_size(wire::TX_ENTRY_SIZE), 256);
        assert_eq!(ring_size(wire::RX_ENTRY_SIZE), 256);
        assert_eq!(ring_size(64), 32);
    }

    #[test]
    fn init_sets_event_indices() {
        let page = Page::new();
        let _ring = FrontRing::init(page.clone(), 8);
        assert_eq!(page.load_u32(REQ_EVENT), 1);
        assert_eq!(page.load_u32(RSP_EVENT), 1);
        assert_eq!(page.load_u32(REQ_PROD), 0);
    }

    #[test]
    fn push_notifies_only_when_backend_asked() {
        let mut page = Page::new();
        let mut ring = FrontRing::init(page.clone(), 8);
        assert!(ring.put_request(&[1; 8]));
        // req_event = 1: the backend wants to hear about request 0.
        assert!(ring.push_requests());
        // The backend consumed it and asks to hear about request 5 onwards.
        page.store_u32(REQ_EVENT, 5);
        assert!(ring.put_request(&[2; 8]));
        assert!(!ring.push_requests());
        for _ in 0..3 {
            assert!(ring.put_request(&[3; 8]));
        }
        assert!(ring.push_requests());
        assert_eq!(page.load_u32(REQ_PROD), 5);
    }

    #[test]
    fn full_ring_refuses_requests() {
        let mut ring = FrontRing::init(Page::new(), 64);
        for _ in 0..32 {
            assert!(ring.put_request(&[0; 64]));
        }
        assert!(!ring.put_request(&[0; 64]));
        assert!(!FrontRing::init(Page::new(), 8).put_request(&[0; 9]));
    }

    #[test]
    fn responses_beyond_requests_are_refused() {
        let mut page = Page::new();
        let mut ring = FrontRing::init(page.clone(), 8);
        ring.put_request(&[0; 8]);
        ring.push_requests();
        page.store_u32(RSP_PROD, 1);
        assert_eq!(ring.unconsumed_responses(), Ok(1));
        page.store_u32(RSP_PROD, 2);
        assert_eq!(ring.unconsumed_responses(), Err(NetError::ResponseOverrun));
        // A producer index far behind ours wraps to a huge count: refused too.
        page.store_u32(RSP_PROD, u32::MAX);
        assert_eq!(ring.unconsumed_responses(), Err(NetError::ResponseOverrun));
    }

    #[test]
    fn indices_wrap_around_u32() {
        let mut page = Page::new();
        let mut ring = FrontRing::init(page.clone(), 8);
        ring.req_prod_pvt = u32::MAX - 1;
        ring.rsp_cons = u32::MAX - 1;
        page.store_u32(REQ_PROD, u32::MAX - 1);
        for i in 0..4u8 {
            assert!(ring.put_request(&[i; 8]));
        }
        ring.push_requests();
        assert_eq!(page.load_u32(REQ_PROD), 2);
        page.store_u32(RSP_PROD, 1);
        assert_eq!(ring.unconsumed_responses(), Ok(3));
        let mut out = [0u8; 8];
        for i in 0..3u8 {
            ring.take_response(&mut out);
            // The backend never overwrote the slots, so we read our requests back.
            assert_eq!(out, [i; 8]);
        }
        assert_eq!(ring.final_check_for_responses(), Ok(false));
        assert_eq!(page.load_u32(RSP_EVENT), 2);
    }
}
