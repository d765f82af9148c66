//! The netfront state machine: transmit ids, receive buffers, response
//! validation and refill.
//!
//! Buffer pages are granted to the backend once, at set-up, and reused for
//! the life of the device: transmit page `i` always travels with transmit id
//! `i`, and a receive buffer goes back on the ring as soon as the packet it
//! holds was handed up. Receive requests use the ring slot as their id, as
//! Linux's netfront does, because a backend that emits an extra-info slot
//! overwrites a request without echoing its id.

use crate::ring::{FrontRing, SharedMem};
use crate::wire::{self, RxRequest, RxResponse, TxRequest, TxResponse};
use crate::{NetError, MAX_FRAME, PAGE_SIZE};

/// Slots per ring, and transmit ids / receive buffers the frontend owns.
pub const SLOTS: usize = crate::ring::ring_size(wire::TX_ENTRY_SIZE) as usize;
const _: () = assert!(SLOTS == 256);
const _: () = assert!(crate::ring::ring_size(wire::RX_ENTRY_SIZE) as usize == SLOTS);

/// Packet pages shared with the backend, granted once.
pub trait Buffers {
    /// Grant reference (read-only for the backend) of transmit page `id`.
    fn tx_gref(&self, id: u16) -> u32;
    /// Runs `f` on transmit page `id` (`PAGE_SIZE` bytes) while the frontend owns it.
    fn with_tx_page<R>(&mut self, id: u16, f: impl FnOnce(&mut [u8]) -> R) -> R;
    /// Grant reference (writable by the backend) of receive page `buf`.
    fn rx_gref(&self, buf: u16) -> u32;
    /// Runs `f` on receive page `buf` (`PAGE_SIZE` bytes) after the backend filled it.
    fn with_rx_page<R>(&self, buf: u16, f: impl FnOnce(&[u8]) -> R) -> R;
}

/// Kicks the backend through the event channel.
pub trait Notify {
    /// Sends one event to the backend.
    fn notify(&mut self);
}

/// Counters, updated on every packet; printed by whoever owns the device.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Frames handed to the backend.
    pub tx_packets: u64,
    /// Bytes in those frames.
    pub tx_bytes: u64,
    /// Frames the backend answered with an error or a drop, or that we could not send.
    pub tx_errors: u64,
    /// Frames handed up to the stack.
    pub rx_packets: u64,
    /// Bytes in those frames.
    pub rx_bytes: u64,
    /// Receive slots answered with an error, or frames we dropped (chains, oversize).
    pub rx_dropped: u64,
    /// Event-channel notifications sent.
    pub notifies: u64,
}

/// A packet waiting in a receive buffer.
#[derive(Clone, Copy)]
struct Ready {
    buf: u16,
    offset: u16,
    len: u16,
}

/// How the next receive response is to be treated.
#[derive(Clone, Copy, PartialEq, Eq)]
enum RxState {
    /// Expecting the first slot of a packet.
    Start,
    /// The previous slot said an extra-info slot follows (and whether the
    /// packet continues after it).
    SkipExtra { chained: bool },
    /// Dropping the rest of a multi-slot chain we did not negotiate.
    DropChain,
}

/// A Xen network frontend over one tx and one rx ring.
pub struct Netfront<M, B, N> {
    tx: FrontRing<M>,
    rx: FrontRing<M>,
    bufs: B,
    notifier: N,
    tx_free: [u16; SLOTS],
    tx_free_len: usize,
    tx_inflight: [bool; SLOTS],
    rx_slot_buf: [u16; SLOTS],
    rx_free: [u16; SLOTS],
    rx_free_len: usize,
    ready: [Ready; SLOTS],
    ready_head: usize,
    ready_len: usize,
    rx_state: RxState,
    rx_chain: usize,
    scratch: [u8; MAX_FRAME],
    error: Option<NetError>,
    stats: Stats,
}

impl<M: SharedMem, B: Buffers, N: Notify> Netfront<M, B, N> {
    /// Initialises both shared rings and posts every receive buffer. The ring
    /// pages and buffers must be granted to the backend before it connects.
    pub fn new(tx_page: M, rx_page: M, bufs: B, notifier: N) -> Self {
        let mut tx_free = [0u16; SLOTS];
        let mut rx_free = [0u16; SLOTS];
        for (i, (t, r)) in tx_free.iter_mut().zip(rx_free.iter_mut()).enumerate() {
            // PANICS: never; SLOTS is 256 so i fits in u16.
            *t = i as u16;
            *r = i as u16;
        }
        let mut nf = Netfront {
            tx: FrontRing::init(tx_page, wire::TX_ENTRY_SIZE),
            rx: FrontRing::init(rx_page, wire::RX_ENTRY_SIZE),
            bufs,
            notifier,
            tx_free,
            tx_free_len: SLOTS,
            tx_inflight: [false; SLOTS],
            rx_slot_buf: [0; SLOTS],
            rx_free,
            rx_free_len: SLOTS,
            ready: [Ready {
                buf: 0,
                offset: 0,
                len: 0,
            }; SLOTS],
            ready_head: 0,
            ready_len: 0,
            rx_state: RxState::Start,
            rx_chain: 0,
            scratch: [0; MAX_FRAME],
            error: None,
            stats: Stats::default(),
        };
        nf.refill_rx();
        nf
    }

    /// The first protocol violation seen, if any; the device is dead after it.
    pub fn error(&self) -> Option<NetError> {
        self.error
    }

    /// Packet counters.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Transmit slots free right now (the burst smoltcp may send).
    pub fn tx_slots_free(&self) -> usize {
        if self.error.is_some() {
            return 0;
        }
        self.tx_free_len.min(self.tx.free_requests() as usize)
    }

    /// Whether a received packet waits to be handed up.
    pub fn rx_pending(&self) -> bool {
        self.error.is_none() && self.ready_len > 0
    }

    /// Reaps transmit and receive responses and refills the receive ring.
    /// Call when the event channel fired (and before sleeping on it).
    /// Returns the sticky error once the backend misbehaved.
    pub fn poll(&mut self) -> Result<(), NetError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        let res = self.reap_tx().and_then(|()| self.reap_rx());
        if let Err(e) = res {
            self.error = Some(e);
            return Err(e);
        }
        self.refill_rx();
        Ok(())
    }

    fn kick(&mut self, notify: bool) {
        if notify {
            self.stats.notifies += 1;
            self.notifier.notify();
        }
    }

    fn reap_tx(&mut self) -> Result<(), NetError> {
        // Bounded: each pass consumes only responses to requests already
        // outstanding, and no new requests are made here.
        for _ in 0..=SLOTS {
            let n = self.tx.unconsumed_responses()?;
            for _ in 0..n {
                let mut raw = [0u8; wire::TX_RESPONSE_SIZE];
                self.tx.take_response(&mut raw);
                let rsp = TxResponse::decode(&raw);
                let id = usize::from(rsp.id);
                match self.tx_inflight.get_mut(id) {
                    Some(f) if *f => *f = false,
                    _ => return Err(NetError::BadTxId),
                }
                if rsp.status != wire::NETIF_RSP_OKAY {
                    self.stats.tx_errors += 1;
                }
                // PANICS: never; tx_free_len < SLOTS while an id was in flight.
                self.tx_free[self.tx_free_len] = rsp.id;
                self.tx_free_len += 1;
            }
            if !self.tx.final_check_for_responses()? {
                return Ok(());
            }
        }
        Ok(())
    }

    fn reap_rx(&mut self) -> Result<(), NetError> {
        for _ in 0..=SLOTS {
            let n = self.rx.unconsumed_responses()?;
            for _ in 0..n {
                let index = self.rx.next_response_index();
                let slot = (index as usize) & (SLOTS - 1);
                let mut raw = [0u8; wire::RX_RESPONSE_SIZE];
                self.rx.take_response(&mut raw);
                // PANICS: never; slot is masked to SLOTS - 1.
                let buf = self.rx_slot_buf[slot];
                self.rx_response(slot, buf, RxResponse::decode(&raw))?;
            }
            if !self.rx.final_check_for_responses()? {
                return Ok(());
            }
        }
        Ok(())
    }

    /// Handles one receive slot whose buffer is `buf`.
    fn rx_response(&mut self, slot: usize, buf: u16, rsp: RxResponse) -> Result<(), NetError> {
        if let RxState::SkipExtra { chained } = self.rx_state {
            // An extra-info slot: its bytes are not a response; recycle the buffer.
            self.recycle_rx(buf);
            self.rx_state = if chained {
                RxState::DropChain
            } else {
                RxState::Start
            };
            return self.count_chain_slot();
        }
        if usize::from(rsp.id) != slot {
            return Err(NetError::BadRxId);
        }
        let more = rsp.flags & wire::NETRXF_MORE_DATA != 0;
        if self.rx_state == RxState::DropChain {
            self.recycle_rx(buf);
            if !more {
                self.rx_state = RxState::Start;
            }
            return self.count_chain_slot();
        }
        // The first slot of a packet.
        let extra = rsp.flags & wire::NETRXF_EXTRA_INFO != 0;
        let len = usize::try_from(rsp.status).unwrap_or(0);
        if usize::from(rsp.offset) + len > PAGE_SIZE {
            return Err(NetError::BadRxExtent);
        }
        if extra || more || len == 0 || len > MAX_FRAME {
            // An error status, or a frame needing features we did not
            // negotiate (no feature-sg, no GSO): drop it but stay in step
            // with the ring.
            self.stats.rx_dropped += 1;
            self.recycle_rx(buf);
            self.rx_chain = 1;
            self.rx_state = match (extra, more) {
                (true, chained) => RxState::SkipExtra { chained },
                (false, true) => RxState::DropChain,
                (false, false) => RxState::Start,
            };
            return Ok(());
        }
        let at = (self.ready_head + self.ready_len) & (SLOTS - 1);
        // PANICS: never; `at` is masked, and only SLOTS buffers exist so the
        // queue cannot overflow.
        self.ready[at] = Ready {
            buf,
            offset: rsp.offset,
            len: len as u16,
        };
        self.ready_len += 1;
        Ok(())
    }

    /// Counts one more slot of a packet being dropped; a chain longer than
    /// the ring can only come from a backend that is making it up.
    fn count_chain_slot(&mut self) -> Result<(), NetError> {
        self.rx_chain += 1;
        if self.rx_chain > SLOTS {
            return Err(NetError::RxChainTooLong);
        }
        Ok(())
    }

    fn recycle_rx(&mut self, buf: u16) {
        if self.rx_free_len < SLOTS {
            // PANICS: never; checked just above.
            self.rx_free[self.rx_free_len] = buf;
            self.rx_free_len += 1;
        }
    }

    /// Posts every free receive buffer and kicks the backend if it asked.
    pub fn refill_rx(&mut self) {
        if self.error.is_some() {
            return;
        }
        while self.rx_free_len > 0 && self.rx.free_requests() > 0 {
            self.rx_free_len -= 1;
            // PANICS: never; rx_free_len < SLOTS after the decrement.
            let buf = self.rx_free[self.rx_free_len];
            let slot = (self.rx.next_request_index() as usize) & (SLOTS - 1);
            // PANICS: never; slot is masked.
            self.rx_slot_buf[slot] = buf;
            let req = RxRequest {
                id: slot as u16,
                gref: self.bufs.rx_gref(buf),
            };
            self.rx.put_request(&req.encode());
        }
        let notify = self.rx.push_requests();
        self.kick(notify);
    }

    /// Hands the oldest received packet to `f` and returns its buffer to the
    /// ring. `None` when nothing is waiting.
    pub fn receive_with<R>(&mut self, f: impl FnOnce(&[u8]) -> R) -> Option<R> {
        if !self.rx_pending() {
            return None;
        }
        // PANICS: never; ready_head is kept masked.
        let r = self.ready[self.ready_head];
        self.ready_head = (self.ready_head + 1) & (SLOTS - 1);
        self.ready_len -= 1;
        let (off, len) = (usize::from(r.offset), usize::from(r.len));
        let out = self.bufs.with_rx_page(r.buf, |page| {
            // The extent was checked on arrival (offset + len <= PAGE_SIZE).
            f(page.get(off..off + len).unwrap_or(&[]))
        });
        self.stats.rx_packets += 1;
        self.stats.rx_bytes += len as u64;
        self.recycle_rx(r.buf);
        self.refill_rx();
        Some(out)
    }

    /// Lets `f` fill a frame of `len` bytes and queues it for the backend.
    /// Without a free slot (or after a protocol error, or for an oversized
    /// frame) `f` still runs, on scratch memory, and the frame is counted
    /// as a transmit error.
    pub fn transmit_with<R>(&mut self, len: usize, f: impl FnOnce(&mut [u8]) -> R) -> R {
        if self.tx_slots_free() == 0 && self.error.is_none() {
            // Reap first: a reply sent while receiving (an ACK) must not be
            // dropped only because completed slots were not collected yet.
            let _ = self.poll();
        }
        if self.tx_slots_free() == 0 || len > MAX_FRAME {
            self.stats.tx_errors += 1;
            let n = len.min(MAX_FRAME);
            // PANICS: never; n <= MAX_FRAME, the scratch size.
            return f(&mut self.scratch[..n]);
        }
        self.tx_free_len -= 1;
        // PANICS: never; tx_free_len < SLOTS after the decrement.
        let id = self.tx_free[self.tx_free_len];
        let out = self.bufs.with_tx_page(id, |page| {
            let mut tmp = [0u8; 0];
            f(page.get_mut(..len).unwrap_or(&mut tmp))
        });
        // PANICS: never; ids are below SLOTS.
        self.tx_inflight[usize::from(id)] = true;
        let req = TxRequest {
            gref: self.bufs.tx_gref(id),
            offset: 0,
            flags: 0,
            id,
            size: len as u16,
        };
        self.tx.put_request(&req.encode());
        self.stats.tx_packets += 1;
        self.stats.tx_bytes += len as u64;
        let notify = self.tx.push_requests();
        self.kick(notify);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::Page;
    use crate::testutil::{pair, Backend, Kicks, TestBufs};
    use proptest::prelude::*;

    type Front = Netfront<Page, TestBufs, Kicks>;

    fn setup() -> (Front, Backend) {
        pair()
    }

    #[test]
    fn posts_every_receive_buffer_at_start() {
        let (_nf, be) = setup();
        assert_eq!(be.rx_requests_posted(), SLOTS as u32);
    }

    #[test]
    fn frames_travel_both_ways() {
        let (mut nf, mut be) = setup();
        nf.transmit_with(60, |b| b.fill(0xab));
        let sent = be.take_tx(wire::NETIF_RSP_OKAY);
        assert_eq!(sent, vec![vec![0xab; 60]]);
        nf.poll().unwrap();
        assert_eq!(nf.tx_slots_free(), SLOTS);

        assert!(be.deliver(&[1, 2, 3, 4]));
        nf.poll().unwrap();
        assert_eq!(nf.receive_with(|p| p.to_vec()), Some(vec![1, 2, 3, 4]));
        assert_eq!(nf.receive_with(|p| p.len()), None);
        // The buffer went back on the ring.
        assert_eq!(be.rx_requests_posted(), SLOTS as u32 + 1);
        let s = nf.stats();
        assert_eq!((s.tx_packets, s.rx_packets, s.rx_bytes), (1, 1, 4));
    }

    #[test]
    fn transmit_without_slots_counts_an_error() {
        let (mut nf, _be) = setup();
        for _ in 0..SLOTS {
            nf.transmit_with(64, |b| b.fill(1));
        }
        assert_eq!(nf.tx_slots_free(), 0);
        let n = nf.transmit_with(64, |b| b.len());
        assert_eq!(n, 64);
        assert_eq!(nf.stats().tx_errors, 1);
        assert_eq!(nf.stats().tx_packets, SLOTS as u64);
    }

    #[test]
    fn transmit_reaps_completed_slots_first() {
        let (mut nf, mut be) = setup();
        for _ in 0..SLOTS {
            nf.transmit_with(64, |b| b.fill(1));
        }
        // The backend answered them all, but nobody polled the frontend.
        assert_eq!(be.take_tx(wire::NETIF_RSP_OKAY).len(), SLOTS);
        nf.transmit_with(64, |b| b.fill(2));
        assert_eq!(nf.stats().tx_errors, 0);
        assert_eq!(nf.stats().tx_packets, SLOTS as u64 + 1);
    }

    #[test]
    fn backend_errors_free_the_slot() {
        let (mut nf, mut be) = setup();
        nf.transmit_with(64, |b| b.fill(1));
        be.take_tx(wire::NETIF_RSP_DROPPED);
        nf.poll().unwrap();
        assert_eq!(nf.tx_slots_free(), SLOTS);
        assert_eq!(nf.stats().tx_errors, 1);
    }

    #[test]
    fn unknown_tx_id_kills_the_device() {
        let (mut nf, mut be) = setup();
        nf.transmit_with(64, |b| b.fill(1));
        be.respond_tx_raw(TxResponse { id: 200, status: 0 });
        assert_eq!(nf.poll(), Err(NetError::BadTxId));
        assert_eq!(nf.tx_slots_free(), 0);
        assert_eq!(nf.poll(), Err(NetError::BadTxId));
        // Transmits after the fault are refused, not sent.
        nf.transmit_with(64, |b| b.fill(2));
        assert_eq!(nf.stats().tx_packets, 1);
    }

    #[test]
    fn tx_response_twice_for_one_id_is_refused() {
        let (mut nf, mut be) = setup();
        nf.transmit_with(64, |b| b.fill(1));
        nf.transmit_with(64, |b| b.fill(1));
        let id = be.peek_tx_ids()[0];
        be.respond_tx_raw(TxResponse { id, status: 0 });
        be.respond_tx_raw(TxResponse { id, status: 0 });
        assert_eq!(nf.poll(), Err(NetError::BadTxId));
    }

    #[test]
    fn response_producer_beyond_requests_is_refused() {
        let (mut nf, mut be) = setup();
        be.set_tx_rsp_prod(5);
        assert_eq!(nf.poll(), Err(NetError::ResponseOverrun));
    }

    #[test]
    fn rx_extent_outside_page_is_refused() {
        let (mut nf, mut be) = setup();
        be.respond_rx_raw(|slot| RxResponse {
            id: slot,
            offset: 4000,
            flags: 0,
            status: 200,
        });
        assert_eq!(nf.poll(), Err(NetError::BadRxExtent));
        assert!(!nf.rx_pending());
    }

    #[test]
    fn rx_id_from_another_slot_is_refused() {
        let (mut nf, mut be) = setup();
        be.respond_rx_raw(|slot| RxResponse {
            id: slot + 1,
            offset: 0,
            flags: 0,
            status: 60,
        });
        assert_eq!(nf.poll(), Err(NetError::BadRxId));
    }

    #[test]
    fn rx_errors_and_chains_are_dropped_and_recycled() {
        let (mut nf, mut be) = setup();
        be.respond_rx_raw(|slot| RxResponse {
            id: slot,
            offset: 0,
            flags: 0,
            status: -1,
        });
        // A two-slot chain: dropped whole.
        be.respond_rx_raw(|slot| RxResponse {
            id: slot,
            offset: 0,
            flags: wire::NETRXF_MORE_DATA,
            status: 100,
        });
        be.respond_rx_raw(|slot| RxResponse {
            id: slot,
            offset: 0,
            flags: 0,
            status: 100,
        });
        // Extra info: the next slot is not a response at all.
        be.respond_rx_raw(|slot| RxResponse {
            id: slot,
            offset: 0,
            flags: wire::NETRXF_EXTRA_INFO,
            status: 60,
        });
        be.respond_rx_raw(|_| RxResponse {
            id: 0xffff,
            offset: 0xffff,
            flags: 0xffff,
            status: 1,
        });
        assert!(be.deliver(&[9; 60]));
        nf.poll().unwrap();
        assert_eq!(nf.receive_with(|p| p.to_vec()), Some(vec![9; 60]));
        assert_eq!(nf.receive_with(|p| p.len()), None);
        assert_eq!(nf.stats().rx_dropped, 3);
        // Every buffer went back: SLOTS initial posts plus 6 recycled.
        assert_eq!(be.rx_requests_posted(), SLOTS as u32 + 6);
    }

    #[test]
    fn endless_chain_is_refused() {
        let (mut nf, mut be) = setup();
        for _ in 0..(3 * SLOTS) {
            let answered = be.respond_rx_raw(|slot| RxResponse {
                id: slot,
                offset: 0,
                flags: wire::NETRXF_MORE_DATA,
                status: 10,
            });
            // Out of posted buffers: let the frontend recycle them.
            if !answered && nf.poll().is_err() {
                break;
            }
        }
        assert_eq!(nf.poll(), Err(NetError::RxChainTooLong));
    }

    proptest! {
        /// Whatever a backend writes into the response slots and producer
        /// indices, the frontend neither panics nor loops.
        #[test]
        fn garbage_responses_never_panic(
            ops in proptest::collection::vec((any::<u8>(), any::<[u8; 8]>(), any::<u32>()), 0..200)
        ) {
            let (mut nf, mut be) = setup();
            for (op, bytes, word) in ops {
                match op % 6 {
                    0 => { nf.transmit_with(usize::from(bytes[0]) * 8, |b| b.fill(bytes[1])); }
                    1 => be.write_rx_slot_raw(word, bytes),
                    2 => be.write_tx_slot_raw(word, bytes),
                    3 => be.set_rx_rsp_prod(word % 512),
                    4 => be.set_tx_rsp_prod(word % 512),
                    _ => { let _ = nf.poll(); let _ = nf.receive_with(|p| p.len()); }
                }
            }
            let _ = nf.poll();
            while nf.receive_with(|p| p.len()).is_some() {}
        }
    }
}
