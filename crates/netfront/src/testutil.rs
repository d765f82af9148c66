//! In-memory stand-ins for shared pages, granted buffers, the event channel
//! and the backend domain (netback), for tests.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

use crate::front::{Buffers, Netfront, Notify, SLOTS};
use crate::ring::{SharedMem, RING_HEADER};
use crate::wire::{self, RxRequest, RxResponse, TxRequest, TxResponse};
use crate::PAGE_SIZE;

/// A page in host memory both ends can reach.
#[derive(Clone)]
pub struct Page(pub Rc<RefCell<Vec<u8>>>);

impl Page {
    pub fn new() -> Self {
        Page(Rc::new(RefCell::new(vec![0u8; PAGE_SIZE])))
    }
}

impl SharedMem for Page {
    fn load_u32(&self, off: usize) -> u32 {
        let p = self.0.borrow();
        u32::from_le_bytes([p[off], p[off + 1], p[off + 2], p[off + 3]])
    }
    fn store_u32(&mut self, off: usize, value: u32) {
        self.0.borrow_mut()[off..off + 4].copy_from_slice(&value.to_le_bytes());
    }
    fn read(&self, off: usize, out: &mut [u8]) {
        out.copy_from_slice(&self.0.borrow()[off..off + out.len()]);
    }
    fn write(&mut self, off: usize, data: &[u8]) {
        self.0.borrow_mut()[off..off + data.len()].copy_from_slice(data);
    }
    fn fence(&self) {}
}

/// Buffer pages with fake grant references, registered in a grant table the
/// backend reads.
pub struct TestBufs {
    tx: Vec<Page>,
    rx: Vec<Page>,
}

const TX_GREF_BASE: u32 = 1000;
const RX_GREF_BASE: u32 = 2000;

impl Buffers for TestBufs {
    fn tx_gref(&self, id: u16) -> u32 {
        TX_GREF_BASE + u32::from(id)
    }
    fn with_tx_page<R>(&mut self, id: u16, f: impl FnOnce(&mut [u8]) -> R) -> R {
        f(&mut self.tx[usize::from(id)].0.borrow_mut())
    }
    fn rx_gref(&self, buf: u16) -> u32 {
        RX_GREF_BASE + u32::from(buf)
    }
    fn with_rx_page<R>(&self, buf: u16, f: impl FnOnce(&[u8]) -> R) -> R {
        f(&self.rx[usize::from(buf)].0.borrow())
    }
}

/// Counts notifications.
#[derive(Clone, Default)]
pub struct Kicks(pub Rc<Cell<u32>>);

impl Notify for Kicks {
    fn notify(&mut self) {
        self.0.set(self.0.get() + 1);
    }
}

/// A netback stand-in that can behave or misbehave.
pub struct Backend {
    tx: Page,
    rx: Page,
    grants: HashMap<u32, Page>,
    tx_req_cons: u32,
    tx_rsp_prod: u32,
    rx_req_cons: u32,
    rx_rsp_prod: u32,
}

fn slot_off(index: u32, entry: usize) -> usize {
    RING_HEADER + (index as usize & (SLOTS - 1)) * entry
}

impl Backend {
    pub fn rx_requests_posted(&self) -> u32 {
        self.rx.load_u32(0)
    }

    fn tx_request(&self, index: u32) -> TxRequest {
        let mut b = [0u8; wire::TX_REQUEST_SIZE];
        self.tx.read(slot_off(index, wire::TX_ENTRY_SIZE), &mut b);
        TxRequest::decode(&b)
    }

    /// Ids of transmit requests not consumed yet.
    pub fn peek_tx_ids(&self) -> Vec<u16> {
        let prod = self.tx.load_u32(0);
        (self.tx_req_cons..prod)
            .map(|i| self.tx_request(i).id)
            .collect()
    }

    /// Consumes every transmit request, answers each with `status`, returns the frames.
    pub fn take_tx(&mut self, status: i16) -> Vec<Vec<u8>> {
        let prod = self.tx.load_u32(0);
        let mut out = Vec::new();
        while self.tx_req_cons != prod {
            let req = self.tx_request(self.tx_req_cons);
            self.tx_req_cons = self.tx_req_cons.wrapping_add(1);
            let page = &self.grants[&req.gref];
            let off = usize::from(req.offset);
            out.push(page.0.borrow()[off..off + usize::from(req.size)].to_vec());
            self.respond_tx_raw(TxResponse { id: req.id, status });
        }
        out
    }

    pub fn respond_tx_raw(&mut self, rsp: TxResponse) {
        let off = slot_off(self.tx_rsp_prod, wire::TX_ENTRY_SIZE);
        self.tx.write(off, &rsp.encode());
        self.tx_rsp_prod = self.tx_rsp_prod.wrapping_add(1);
        self.tx.store_u32(8, self.tx_rsp_prod);
    }

    /// Copies `frame` into the next posted receive buffer, as rx-copy does.
    pub fn deliver(&mut self, frame: &[u8]) -> bool {
        let grants = self.grants.clone();
        self.respond_rx_with(|req| {
            grants[&req.gref].0.borrow_mut()[..frame.len()].copy_from_slice(frame);
            RxResponse {
                id: req.id,
                offset: 0,
                flags: 0,
                status: frame.len() as i16,
            }
        })
    }

    /// Consumes the next posted receive request and answers it with `f(id)`.
    pub fn respond_rx_raw(&mut self, f: impl FnOnce(u16) -> RxResponse) -> bool {
        self.respond_rx_with(|req| f(req.id))
    }

    fn respond_rx_with(&mut self, f: impl FnOnce(RxRequest) -> RxResponse) -> bool {
        let prod = self.rx.load_u32(0);
        if self.rx_req_cons == prod {
            return false;
        }
        let mut b = [0u8; wire::RX_REQUEST_SIZE];
        self.rx
            .read(slot_off(self.rx_req_cons, wire::RX_ENTRY_SIZE), &mut b);
        self.rx_req_cons = self.rx_req_cons.wrapping_add(1);
        let rsp = f(RxRequest::decode(&b));
        self.rx.write(
            slot_off(self.rx_rsp_prod, wire::RX_ENTRY_SIZE),
            &rsp.encode(),
        );
        self.rx_rsp_prod = self.rx_rsp_prod.wrapping_add(1);
        self.rx.store_u32(8, self.rx_rsp_prod);
        true
    }

    pub fn write_rx_slot_raw(&mut self, index: u32, bytes: [u8; 8]) {
        self.rx.write(slot_off(index, wire::RX_ENTRY_SIZE), &bytes);
    }

    pub fn write_tx_slot_raw(&mut self, index: u32, bytes: [u8; 8]) {
        self.tx.write(slot_off(index, wire::TX_ENTRY_SIZE), &bytes);
    }

    pub fn set_rx_rsp_prod(&mut self, v: u32) {
        self.rx.store_u32(8, v);
    }

    pub fn set_tx_rsp_prod(&mut self, v: u32) {
        self.tx.store_u32(8, v);
    }
}

/// A frontend and the backend it talks to.
pub fn pair() -> (Netfront<Page, TestBufs, Kicks>, Backend) {
    let (tx, rx) = (Page::new(), Page::new());
    let bufs = TestBufs {
        tx: (0..SLOTS).map(|_| Page::new()).collect(),
        rx: (0..SLOTS).map(|_| Page::new()).collect(),
    };
    let mut grants = HashMap::new();
    for i in 0..SLOTS as u16 {
        grants.insert(bufs.tx_gref(i), bufs.tx[usize::from(i)].clone());
        grants.insert(bufs.rx_gref(i), bufs.rx[usize::from(i)].clone());
    }
    let nf = Netfront::new(tx.clone(), rx.clone(), bufs, Kicks::default());
    let be = Backend {
        tx,
        rx,
        grants,
        tx_req_cons: 0,
        tx_rsp_prod: 0,
        rx_req_cons: 0,
        rx_rsp_prod: 0,
    };
    (nf, be)
}
