//! Test doubles: a guest that dirties pages while it is read, a shell, an
//! in-memory duplex byte pipe with backpressure and deadlines, fault
//! injectors, a clock and a progress recorder.
#![allow(dead_code)] // reason: each test file uses a different subset

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use depmig_migrate::*;
use xen_abi::errno::{EFAULT, EINVAL};

pub const PAGE: usize = 4096;
pub const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

/// xorshift64*: deterministic randomness.
#[derive(Clone, Debug)]
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// The migrating guest.
pub struct Guest {
    pub nr: u64,
    pub mem: Vec<u8>,
    pub populated: Vec<bool>,
    pub dirty: DirtyBitmap,
    pub log_on: bool,
    pub log_enables: u32,
    pub log_disables: u32,
    pub suspended: bool,
    pub suspend_calls: u32,
    pub resume_calls: u32,
    pub fail_suspend: bool,
    pub snapshot: Option<Vec<u8>>,
    pub rng: Rng,
    /// Pages the guest keeps rewriting.
    pub hot: Vec<u64>,
    /// Writes per `read_pages` call while running.
    pub writes_per_batch: usize,
    /// Frozen pages dirty nothing (dependency-aware mode).
    pub frozen: Vec<u64>,
    pub frozen_active: bool,
    /// At the first `read_pages` of round 2 this pfn is ballooned out.
    pub balloon_out: Option<u64>,
    /// Pages the guest frees (and zeroes) on its way into suspension.
    pub free_on_suspend: Vec<u64>,
    /// Pages free from the start, until the guest writes one (allocates it).
    pub free_at_start: Vec<u64>,
    /// Pages the oracle stops calling free from its second question with
    /// the guest suspended on (page verification's): a walker that changed
    /// its mind about a page sent as free.
    pub unfree_at_verify: Vec<u64>,
    /// Pages the guest holds that `populated` leaves out (a domain whose
    /// port misses a page of it): never sent unless written.
    pub hidden: Vec<u64>,
    /// Pages changed at suspension with no dirty bit, as Xen updates the
    /// vCPU areas a guest registers through its own mapping.
    pub unlogged: Vec<u64>,
    /// The oracle's free-frame questions asked with the guest suspended.
    pub free_asked_suspended: u32,
    pub reads: u64,
    pub params: BTreeMap<u32, u64>,
    pub tsc: TscInfo,
    pub context: Vec<u8>,
}

impl Guest {
    pub fn new(nr: u64, seed: u64) -> Self {
        let mut rng = Rng(seed | 1);
        let mut mem = vec![0u8; nr as usize * PAGE];
        for (i, w) in mem.chunks_mut(8).enumerate() {
            if i % 61 == 0 {
                w.copy_from_slice(&rng.next().to_le_bytes());
            }
        }
        let mut populated = vec![true; nr as usize];
        // A hole in the middle, never populated.
        for hole in populated.iter_mut().take(310).skip(300) {
            *hole = false;
        }
        let hot: Vec<u64> = (0..nr / 6).map(|_| rng.below(nr)).collect();
        let mut params = BTreeMap::new();
        for &p in &params::SAVED {
            params.insert(p, 0);
        }
        params.insert(1, nr - 2); // STORE_PFN
        params.insert(17, nr - 1); // CONSOLE_PFN
        params.insert(12, 0xfeff_d000); // IDENT_PT
        params.insert(36, 1); // X87_FIP_WIDTH
        params.insert(37, 0xfeff_c000 | (128 << 32)); // VM86_TSS_SIZED
        params.insert(2, 7); // STORE_EVTCHN: not in SAVED, never sent
        Guest {
            nr,
            mem,
            populated,
            dirty: DirtyBitmap::new(nr),
            log_on: false,
            log_enables: 0,
            log_disables: 0,
            suspended: false,
            suspend_calls: 0,
            resume_calls: 0,
            fail_suspend: false,
            snapshot: None,
            rng,
            hot,
            writes_per_batch: 40,
            frozen: vec![],
            frozen_active: false,
            balloon_out: None,
            free_on_suspend: vec![],
            free_at_start: vec![],
            unfree_at_verify: vec![],
            hidden: vec![],
            unlogged: vec![],
            free_asked_suspended: 0,
            reads: 0,
            params,
            tsc: TscInfo {
                mode: 0,
                khz: 2_000_000,
                nsec: 123_456_789,
                incarnation: 3,
            },
            context: (0..1500u32).map(|i| (i * 7 + 1) as u8).collect(),
        }
    }

    fn write(&mut self, pfn: u64) {
        if !self.populated[pfn as usize] || (self.frozen_active && self.frozen.contains(&pfn)) {
            return;
        }
        // A page written is in use: the guest allocated it first.
        self.free_at_start.retain(|&p| p != pfn);
        let off = pfn as usize * PAGE + self.rng.below(PAGE as u64 / 8) as usize * 8;
        let v = self.rng.next().to_le_bytes();
        self.mem[off..off + 8].copy_from_slice(&v);
        if self.log_on {
            self.dirty.set(pfn);
        }
    }

    /// The guest runs a little.
    fn run(&mut self) {
        if self.suspended {
            return;
        }
        for _ in 0..self.writes_per_batch {
            let i = self.rng.below(self.hot.len() as u64) as usize;
            let p = self.hot[i];
            self.write(p);
        }
    }

    pub fn page(&self, pfn: u64) -> &[u8] {
        &self.mem[pfn as usize * PAGE..(pfn as usize + 1) * PAGE]
    }
}

/// A guest shared between the source role and a test's oracle.
#[derive(Clone)]
pub struct G(pub Arc<Mutex<Guest>>);

impl SourceDomain for G {
    fn nr_pfns(&self) -> u64 {
        self.0.lock().unwrap().nr_pfns()
    }
    fn populated(&mut self, out: &mut DirtyBitmap) -> Result<(), PortError> {
        self.0.lock().unwrap().populated(out)
    }
    fn read_pages(&mut self, p: &[u64], b: &mut [u8], h: &mut [bool]) -> Result<(), PortError> {
        self.0.lock().unwrap().read_pages(p, b, h)
    }
    fn log_dirty_enable(&mut self) -> Result<(), PortError> {
        self.0.lock().unwrap().log_dirty_enable()
    }
    fn log_dirty_collect(&mut self, out: &mut DirtyBitmap) -> Result<(), PortError> {
        self.0.lock().unwrap().log_dirty_collect(out)
    }
    fn log_dirty_disable(&mut self) -> Result<(), PortError> {
        self.0.lock().unwrap().log_dirty_disable()
    }
    fn suspend(&mut self) -> Result<(), PortError> {
        self.0.lock().unwrap().suspend()
    }
    fn resume_cancelled(&mut self) -> Result<bool, PortError> {
        self.0.lock().unwrap().resume_cancelled()
    }
    fn tsc_info(&mut self) -> Result<TscInfo, PortError> {
        self.0.lock().unwrap().tsc_info()
    }
    fn hvm_param(&mut self, index: u32) -> Result<u64, PortError> {
        self.0.lock().unwrap().hvm_param(index)
    }
    fn hvm_context(&mut self, out: &mut Vec<u8>) -> Result<(), PortError> {
        self.0.lock().unwrap().hvm_context(out)
    }
    fn pages_held(&mut self) -> Option<u64> {
        self.0.lock().unwrap().pages_held()
    }
}

/// A guest agent: freezes the cold pages' owners, knows the free pages.
pub struct Oracle {
    pub g: G,
    pub thaws: u32,
    /// Each census: round, frames counted, guest suspended and log-dirty
    /// on at the time.
    pub census: Vec<(u32, u64, bool, bool)>,
}

impl DependencyOracle for Oracle {
    fn freeze_quiet_groups(&mut self) -> Result<u32, PortError> {
        self.g.0.lock().unwrap().frozen_active = true;
        Ok(2)
    }
    fn thaw_all(&mut self) -> Result<(), PortError> {
        self.g.0.lock().unwrap().frozen_active = false;
        self.thaws += 1;
        Ok(())
    }
    fn tainted_frames(&mut self, out: &mut DirtyBitmap) -> Result<(), PortError> {
        out.set_all();
        for &p in &self.g.0.lock().unwrap().frozen {
            out.clear(p);
        }
        Ok(())
    }
    fn census(
        &mut self,
        round: u32,
        frames: &DirtyBitmap,
    ) -> Result<Option<CensusCounts>, PortError> {
        let g = self.g.0.lock().unwrap();
        let n = frames.count();
        self.census.push((round, n, g.suspended, g.log_on));
        // The lowest frame of the set is a process's, the rest the kernel's.
        Ok(Some(CensusCounts {
            round,
            asked: n,
            user: n.min(1),
            page_tables: 0,
            kernel: n.saturating_sub(1),
            unreadable: 0,
        }))
    }
    fn free_frames(
        &mut self,
        _among: &DirtyBitmap,
        out: &mut DirtyBitmap,
    ) -> Result<(), PortError> {
        let mut g = self.g.0.lock().unwrap();
        for &p in &g.free_at_start {
            out.set(p);
        }
        if g.suspended {
            g.free_asked_suspended += 1;
            for &p in &g.free_on_suspend {
                out.set(p);
            }
            if g.free_asked_suspended >= 2 {
                for &p in &g.unfree_at_verify {
                    out.clear(p);
                }
            }
        }
        Ok(())
    }
}

/// A boxed transport (tests pick wrappers at run time).
pub struct Boxed(pub Box<dyn Transport + Send>);

impl Transport for Boxed {
    fn send(&mut self, data: &[u8]) -> Result<(), TransportError> {
        self.0.send(data)
    }
    fn flush(&mut self) -> Result<(), TransportError> {
        self.0.flush()
    }
    fn recv(&mut self, buf: &mut [u8]) -> Result<usize, TransportError> {
        self.0.recv(buf)
    }
    fn blocked_ns(&self) -> Option<u64> {
        self.0.blocked_ns()
    }
    fn queued(&mut self) -> Option<u64> {
        self.0.queued()
    }
}

impl SourceDomain for Guest {
    fn nr_pfns(&self) -> u64 {
        self.nr
    }
    fn populated(&mut self, out: &mut DirtyBitmap) -> Result<(), PortError> {
        for (p, &on) in self.populated.iter().enumerate() {
            if on && !self.hidden.contains(&(p as u64)) {
                out.set(p as u64);
            }
        }
        Ok(())
    }
    fn pages_held(&mut self) -> Option<u64> {
        Some(self.populated.iter().filter(|&&on| on).count() as u64)
    }
    fn read_pages(
        &mut self,
        pfns: &[u64],
        buf: &mut [u8],
        holes: &mut [bool],
    ) -> Result<(), PortError> {
        assert_eq!(buf.len(), pfns.len() * PAGE);
        assert_eq!(holes.len(), pfns.len());
        assert!(holes.iter().all(|h| !h), "holes cleared before the call");
        self.reads += 1;
        for (i, &p) in pfns.iter().enumerate() {
            if p >= self.nr {
                return Err(PortError::Xen(EINVAL));
            }
            if self.populated[p as usize] {
                buf[i * PAGE..(i + 1) * PAGE].copy_from_slice(self.page(p));
            } else {
                holes[i] = true;
            }
        }
        self.run();
        if let Some(b) = self.balloon_out {
            if self.reads == 2 && !self.suspended {
                self.populated[b as usize] = false;
                self.dirty.set(b);
            }
        }
        Ok(())
    }
    fn log_dirty_enable(&mut self) -> Result<(), PortError> {
        self.log_on = true;
        self.log_enables += 1;
        Ok(())
    }
    fn log_dirty_collect(&mut self, out: &mut DirtyBitmap) -> Result<(), PortError> {
        assert!(self.log_on);
        out.or_with(&self.dirty);
        self.dirty.clear_all();
        Ok(())
    }
    fn log_dirty_disable(&mut self) -> Result<(), PortError> {
        self.log_on = false;
        self.log_disables += 1;
        Ok(())
    }
    fn suspend(&mut self) -> Result<(), PortError> {
        self.suspend_calls += 1;
        if self.fail_suspend {
            return Err(PortError::Timeout);
        }
        // Last words on the way down.
        for _ in 0..25 {
            let p = self.rng.below(self.nr);
            self.write(p);
        }
        for p in self.free_on_suspend.clone() {
            self.mem[p as usize * PAGE..(p as usize + 1) * PAGE].fill(0);
            if self.log_on {
                self.dirty.set(p);
            }
        }
        for p in self.unlogged.clone() {
            let off = p as usize * PAGE + 0xc00;
            let v = self.rng.next().to_le_bytes();
            self.mem[off..off + 8].copy_from_slice(&v);
        }
        self.suspended = true;
        self.snapshot = Some(self.mem.clone());
        Ok(())
    }
    fn resume_cancelled(&mut self) -> Result<bool, PortError> {
        self.resume_calls += 1;
        let was = self.suspended;
        self.suspended = false;
        Ok(was)
    }
    fn tsc_info(&mut self) -> Result<TscInfo, PortError> {
        assert!(self.suspended);
        Ok(self.tsc)
    }
    fn hvm_param(&mut self, index: u32) -> Result<u64, PortError> {
        self.params
            .get(&index)
            .copied()
            .ok_or(PortError::Xen(EINVAL))
    }
    fn hvm_context(&mut self, out: &mut Vec<u8>) -> Result<(), PortError> {
        assert!(self.suspended);
        out.clear();
        out.extend_from_slice(&self.context);
        Ok(())
    }
}

/// The paused shell built from the guest's configuration.
pub struct Shell {
    pub nr: u64,
    pub mem: Vec<u8>,
    pub have: Vec<bool>,
    pub populate_calls: Vec<Vec<u64>>,
    pub repopulated: u64,
    pub pages_written: u64,
    pub zeroed: Vec<u64>,
    pub params: BTreeMap<u32, u64>,
    pub set_params: Vec<(u32, u64)>,
    pub tsc: Option<TscInfo>,
    pub context: Option<Vec<u8>>,
    /// Order of the apply steps, to check nothing precedes the pages.
    pub log: Vec<&'static str>,
}

impl Shell {
    pub fn new(nr: u64) -> Self {
        let mut have = vec![true; nr as usize];
        // The shell lacks a few frames the guest has.
        for lacking in have.iter_mut().take(520).skip(500) {
            *lacking = false;
        }
        let mut params = BTreeMap::new();
        params.insert(1, nr - 2);
        params.insert(17, nr - 1);
        params.insert(2, 99); // the shell's own store evtchn
        params.insert(18, 98);
        Shell {
            nr,
            mem: vec![0xEE; nr as usize * PAGE],
            have,
            populate_calls: vec![],
            repopulated: 0,
            pages_written: 0,
            zeroed: vec![],
            params,
            set_params: vec![],
            tsc: None,
            context: None,
            log: vec![],
        }
    }

    pub fn page(&self, pfn: u64) -> &[u8] {
        &self.mem[pfn as usize * PAGE..(pfn as usize + 1) * PAGE]
    }

    /// Whether anything beyond memory was touched.
    pub fn cpu_state_untouched(&self) -> bool {
        self.set_params.is_empty() && self.tsc.is_none() && self.context.is_none()
    }
}

impl DestDomain for Shell {
    fn nr_pfns(&self) -> u64 {
        self.nr
    }
    fn populated(&mut self, out: &mut DirtyBitmap) -> Result<(), PortError> {
        for (p, &on) in self.have.iter().enumerate() {
            if on {
                out.set(p as u64);
            }
        }
        Ok(())
    }
    fn populate(&mut self, pfns: &[u64]) -> Result<(), PortError> {
        assert!(pfns.windows(2).all(|w| w[0] < w[1]), "ascending, unique");
        for &p in pfns {
            if self.have[p as usize] {
                self.repopulated += 1;
            }
            self.have[p as usize] = true;
            self.mem[p as usize * PAGE..(p as usize + 1) * PAGE].fill(0xAB);
        }
        self.populate_calls.push(pfns.to_vec());
        Ok(())
    }
    fn write_pages(&mut self, pfns: &[u64], data: &[u8]) -> Result<(), PortError> {
        assert_eq!(data.len(), pfns.len() * PAGE);
        self.log.push("pages");
        for (i, &p) in pfns.iter().enumerate() {
            if !self.have[p as usize] {
                return Err(PortError::Xen(EFAULT));
            }
            self.mem[p as usize * PAGE..(p as usize + 1) * PAGE]
                .copy_from_slice(&data[i * PAGE..(i + 1) * PAGE]);
        }
        self.pages_written += pfns.len() as u64;
        Ok(())
    }
    fn zero_frames(&mut self, pfns: &[u64]) -> Result<(), PortError> {
        self.log.push("zero");
        for &p in pfns {
            if !self.have[p as usize] {
                return Err(PortError::Xen(EFAULT));
            }
            self.mem[p as usize * PAGE..(p as usize + 1) * PAGE].fill(0);
            self.zeroed.push(p);
        }
        Ok(())
    }
    fn read_pages(
        &mut self,
        pfns: &[u64],
        buf: &mut [u8],
        holes: &mut [bool],
    ) -> Result<(), PortError> {
        assert_eq!(buf.len(), pfns.len() * PAGE);
        assert_eq!(holes.len(), pfns.len());
        self.log.push("read");
        for (i, &p) in pfns.iter().enumerate() {
            if p >= self.nr {
                return Err(PortError::Xen(EINVAL));
            }
            if self.have[p as usize] {
                buf[i * PAGE..(i + 1) * PAGE].copy_from_slice(self.page(p));
            } else {
                holes[i] = true;
            }
        }
        Ok(())
    }
    fn hvm_param(&mut self, index: u32) -> Result<u64, PortError> {
        Ok(self.params.get(&index).copied().unwrap_or(0))
    }
    fn set_hvm_param(&mut self, index: u32, value: u64) -> Result<(), PortError> {
        self.log.push("param");
        self.params.insert(index, value);
        self.set_params.push((index, value));
        Ok(())
    }
    fn set_tsc_info(&mut self, tsc: &TscInfo) -> Result<(), PortError> {
        self.log.push("tsc");
        self.tsc = Some(*tsc);
        Ok(())
    }
    fn set_hvm_context(&mut self, blob: &[u8]) -> Result<(), PortError> {
        self.log.push("context");
        self.context = Some(blob.to_vec());
        Ok(())
    }
}

struct Pipe {
    q: VecDeque<u8>,
    cap: usize,
    writer_gone: bool,
    reader_gone: bool,
}

struct Chan {
    m: Mutex<Pipe>,
    cv: Condvar,
}

impl Chan {
    fn new(cap: usize) -> Arc<Self> {
        Arc::new(Chan {
            m: Mutex::new(Pipe {
                q: VecDeque::new(),
                cap,
                writer_gone: false,
                reader_gone: false,
            }),
            cv: Condvar::new(),
        })
    }
}

/// One end of an in-memory connection: bounded buffers (backpressure), a
/// deadline on every wait, and a dropped end seen by the other as closed.
pub struct End {
    tx: Arc<Chan>,
    rx: Arc<Chan>,
    timeout: Duration,
    pub sent: u64,
    pub received: u64,
}

/// A connected pair with `cap` bytes of buffer each way.
pub fn duplex(cap: usize, timeout: Duration) -> (End, End) {
    let a = Chan::new(cap);
    let b = Chan::new(cap);
    (
        End {
            tx: a.clone(),
            rx: b.clone(),
            timeout,
            sent: 0,
            received: 0,
        },
        End {
            tx: b,
            rx: a,
            timeout,
            sent: 0,
            received: 0,
        },
    )
}

impl Drop for End {
    fn drop(&mut self) {
        self.tx.m.lock().unwrap().writer_gone = true;
        self.tx.cv.notify_all();
        self.rx.m.lock().unwrap().reader_gone = true;
        self.rx.cv.notify_all();
    }
}

impl Transport for End {
    fn send(&mut self, mut data: &[u8]) -> Result<(), TransportError> {
        let deadline = Instant::now() + self.timeout;
        let mut p = self.tx.m.lock().unwrap();
        while !data.is_empty() {
            if p.reader_gone {
                return Err(TransportError::Reset);
            }
            let room = p.cap - p.q.len();
            if room > 0 {
                let n = room.min(data.len());
                p.q.extend(&data[..n]);
                data = &data[n..];
                self.sent += n as u64;
                self.tx.cv.notify_all();
                continue;
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(TransportError::Timeout);
            }
            p = self.tx.cv.wait_timeout(p, deadline - now).unwrap().0;
        }
        Ok(())
    }
    fn flush(&mut self) -> Result<(), TransportError> {
        let deadline = Instant::now() + self.timeout;
        let mut p = self.tx.m.lock().unwrap();
        loop {
            if p.q.is_empty() {
                return Ok(());
            }
            if p.reader_gone {
                return Err(TransportError::Reset);
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(TransportError::Timeout);
            }
            p = self.tx.cv.wait_timeout(p, deadline - now).unwrap().0;
        }
    }
    fn recv(&mut self, buf: &mut [u8]) -> Result<usize, TransportError> {
        let deadline = Instant::now() + self.timeout;
        let mut p = self.rx.m.lock().unwrap();
        loop {
            if !p.q.is_empty() {
                let n = buf.len().min(p.q.len());
                for (d, s) in buf.iter_mut().zip(p.q.drain(..n)) {
                    *d = s;
                }
                self.received += n as u64;
                self.rx.cv.notify_all();
                return Ok(n);
            }
            if p.writer_gone {
                return Ok(0);
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(TransportError::Timeout);
            }
            p = self.rx.cv.wait_timeout(p, deadline - now).unwrap().0;
        }
    }
}

/// Flips one byte of what passes through `send` at stream offset `at`.
pub struct Corrupt<T> {
    pub inner: T,
    pub at: u64,
    pub pos: u64,
}

impl<T: Transport> Transport for Corrupt<T> {
    fn send(&mut self, data: &[u8]) -> Result<(), TransportError> {
        let start = self.pos;
        self.pos += data.len() as u64;
        if (start..self.pos).contains(&self.at) {
            let mut v = data.to_vec();
            v[(self.at - start) as usize] ^= 0x40;
            self.inner.send(&v)
        } else {
            self.inner.send(data)
        }
    }
    fn flush(&mut self) -> Result<(), TransportError> {
        self.inner.flush()
    }
    fn recv(&mut self, buf: &mut [u8]) -> Result<usize, TransportError> {
        self.inner.recv(buf)
    }
}

/// Dies (drops the connection, fails) once `limit` bytes went through in
/// the chosen direction: the appliance destroyed mid-stream.
pub struct Vanish<T> {
    pub inner: Option<T>,
    pub limit: u64,
    pub pos: u64,
    pub on_send: bool,
}

impl<T: Transport> Vanish<T> {
    pub fn new(inner: T, limit: u64, on_send: bool) -> Self {
        Vanish {
            inner: Some(inner),
            limit,
            pos: 0,
            on_send,
        }
    }
    fn live(&mut self) -> Result<&mut T, TransportError> {
        if self.pos >= self.limit {
            self.inner = None;
        }
        self.inner.as_mut().ok_or(TransportError::Reset)
    }
}

impl<T: Transport> Transport for Vanish<T> {
    fn send(&mut self, data: &[u8]) -> Result<(), TransportError> {
        if !self.on_send {
            return self.live()?.send(data);
        }
        // Up to the limit, then gone.
        let room = (self.limit - self.pos.min(self.limit)) as usize;
        let n = room.min(data.len());
        self.live()?.send(&data[..n])?;
        self.pos += n as u64;
        if n < data.len() {
            self.pos = self.limit;
            self.inner = None;
            return Err(TransportError::Reset);
        }
        Ok(())
    }
    fn flush(&mut self) -> Result<(), TransportError> {
        self.live()?.flush()
    }
    fn recv(&mut self, buf: &mut [u8]) -> Result<usize, TransportError> {
        if self.on_send {
            return self.live()?.recv(buf);
        }
        let room = (self.limit - self.pos.min(self.limit)) as usize;
        let take = room.min(buf.len());
        let r = self.live()?.recv(&mut buf[..take]);
        if let Ok(n) = r {
            self.pos += n as u64;
        }
        r
    }
}

/// Changes the `n`-th (from 0) verification message that passes through
/// `send` (each goes out in one call, starting "DMV"): flips a byte of its
/// body, or sends the message before it again in its place (a replay).
pub struct TamperVerify<T> {
    pub inner: T,
    pub n: usize,
    pub replay: bool,
    pub seen: usize,
    pub last: Option<Vec<u8>>,
}

impl<T: Transport> Transport for TamperVerify<T> {
    fn send(&mut self, data: &[u8]) -> Result<(), TransportError> {
        if !data.starts_with(b"DMV") {
            return self.inner.send(data);
        }
        let i = self.seen;
        self.seen += 1;
        let last = self.last.replace(data.to_vec());
        if i != self.n {
            return self.inner.send(data);
        }
        if self.replay {
            return self.inner.send(&last.expect("a message to replay"));
        }
        let mut v = data.to_vec();
        // The last byte before the 32-byte tag: a digest or a count.
        let at = v.len() - 33;
        v[at] ^= 0x01;
        self.inner.send(&v)
    }
    fn flush(&mut self) -> Result<(), TransportError> {
        self.inner.flush()
    }
    fn recv(&mut self, buf: &mut [u8]) -> Result<usize, TransportError> {
        self.inner.recv(buf)
    }
}

/// Wall time since the test started.
pub struct TestClock(pub Instant);

impl Clock for TestClock {
    fn now_ns(&self) -> u64 {
        self.0.elapsed().as_nanos() as u64
    }
}

/// Records what a role reported.
#[derive(Default, Debug)]
pub struct Recorder {
    pub states: Vec<State>,
    pub lines: Vec<String>,
    /// The destination's refusals, as `{:?}` of the error.
    pub refusals: Vec<String>,
}

impl Progress for Recorder {
    fn state(&mut self, state: State) {
        self.states.push(state);
    }
    fn round(&mut self, _: &RoundStats, line: &str) {
        self.lines.push(line.to_string());
    }
    fn refusing(&mut self, error: &dyn std::fmt::Debug) {
        self.refusals.push(format!("{error:?}"));
    }
}

/// A transport that plays back fixed bytes and records what is sent.
pub struct Script {
    pub input: Vec<u8>,
    pub pos: usize,
    pub chunk: usize,
    pub out: Vec<u8>,
}

impl Script {
    pub fn new(input: Vec<u8>, chunk: usize) -> Self {
        Script {
            input,
            pos: 0,
            chunk: chunk.max(1),
            out: vec![],
        }
    }
}

impl Transport for Script {
    fn send(&mut self, data: &[u8]) -> Result<(), TransportError> {
        self.out.extend_from_slice(data);
        Ok(())
    }
    fn flush(&mut self) -> Result<(), TransportError> {
        Ok(())
    }
    fn recv(&mut self, buf: &mut [u8]) -> Result<usize, TransportError> {
        let n = buf.len().min(self.chunk).min(self.input.len() - self.pos);
        buf[..n].copy_from_slice(&self.input[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// A small strict JSON checker (RFC 8259 grammar): returns the parsed value.
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    Num(f64),
    Str(String),
    Arr(Vec<Json>),
    Obj(Vec<(String, Json)>),
}

impl Json {
    pub fn get(&self, k: &str) -> Option<&Json> {
        match self {
            Json::Obj(v) => v.iter().find(|(key, _)| key == k).map(|(_, v)| v),
            _ => None,
        }
    }
    pub fn num(&self) -> Option<f64> {
        match self {
            Json::Num(n) => Some(*n),
            _ => None,
        }
    }
    pub fn u(&self, k: &str) -> u64 {
        self.get(k)
            .and_then(Json::num)
            .unwrap_or_else(|| panic!("{k} is not a number")) as u64
    }
    pub fn arr(&self) -> &[Json] {
        match self {
            Json::Arr(v) => v,
            _ => panic!("not an array"),
        }
    }
}

pub fn parse_json(s: &str) -> Result<Json, String> {
    let b = s.as_bytes();
    let mut i = 0;
    let v = value(b, &mut i)?;
    ws(b, &mut i);
    if i != b.len() {
        return Err(format!("trailing data at {i}"));
    }
    Ok(v)
}

fn ws(b: &[u8], i: &mut usize) {
    while *i < b.len() && matches!(b[*i], b' ' | b'\n' | b'\r' | b'\t') {
        *i += 1;
    }
}

fn value(b: &[u8], i: &mut usize) -> Result<Json, String> {
    ws(b, i);
    let c = *b.get(*i).ok_or("eof")?;
    match c {
        b'{' => {
            *i += 1;
            let mut v = vec![];
            ws(b, i);
            if b.get(*i) == Some(&b'}') {
                *i += 1;
                return Ok(Json::Obj(v));
            }
            loop {
                ws(b, i);
                let k = match value(b, i)? {
                    Json::Str(s) => s,
                    _ => return Err(format!("key expected at {i}")),
                };
                ws(b, i);
                if b.get(*i) != Some(&b':') {
                    return Err(format!(": expected at {i}"));
                }
                *i += 1;
                if v.iter().any(|(key, _): &(String, Json)| *key == k) {
                    return Err(format!("duplicate key {k}"));
                }
                v.push((k, value(b, i)?));
                ws(b, i);
                match b.get(*i) {
                    Some(b',') => *i += 1,
                    Some(b'}') => {
                        *i += 1;
                        return Ok(Json::Obj(v));
                    }
                    _ => return Err(format!(", or }} expected at {i}")),
                }
            }
        }
        b'[' => {
            *i += 1;
            let mut v = vec![];
            ws(b, i);
            if b.get(*i) == Some(&b']') {
                *i += 1;
                return Ok(Json::Arr(v));
            }
            loop {
                v.push(value(b, i)?);
                ws(b, i);
                match b.get(*i) {
                    Some(b',') => *i += 1,
                    Some(b']') => {
                        *i += 1;
                        return Ok(Json::Arr(v));
                    }
                    _ => return Err(format!(", or ] expected at {i}")),
                }
            }
        }
        b'"' => {
            *i += 1;
            let mut s = String::new();
            loop {
                let c = *b.get(*i).ok_or("eof in string")?;
                *i += 1;
                match c {
                    b'"' => return Ok(Json::Str(s)),
                    b'\\' => {
                        let e = *b.get(*i).ok_or("eof in escape")?;
                        *i += 1;
                        match e {
                            b'"' => s.push('"'),
                            b'\\' => s.push('\\'),
                            b'/' => s.push('/'),
                            b'n' => s.push('\n'),
                            b'r' => s.push('\r'),
                            b't' => s.push('\t'),
                            b'b' => s.push('\u{8}'),
                            b'f' => s.push('\u{c}'),
                            b'u' => {
                                let h = std::str::from_utf8(b.get(*i..*i + 4).ok_or("short \\u")?)
                                    .map_err(|e| e.to_string())?;
                                let n = u32::from_str_radix(h, 16).map_err(|e| e.to_string())?;
                                s.push(char::from_u32(n).ok_or("bad \\u")?);
                                *i += 4;
                            }
                            _ => return Err(format!("bad escape at {i}")),
                        }
                    }
                    c if c < 0x20 => return Err(format!("control char in string at {i}")),
                    _ => {
                        // Copy the whole UTF-8 sequence.
                        let start = *i - 1;
                        let mut end = *i;
                        while end < b.len() && (b[end] & 0xC0) == 0x80 {
                            end += 1;
                        }
                        s.push_str(std::str::from_utf8(&b[start..end]).map_err(|e| e.to_string())?);
                        *i = end;
                    }
                }
            }
        }
        b't' if b[*i..].starts_with(b"true") => {
            *i += 4;
            Ok(Json::Bool(true))
        }
        b'f' if b[*i..].starts_with(b"false") => {
            *i += 5;
            Ok(Json::Bool(false))
        }
        b'n' if b[*i..].starts_with(b"null") => {
            *i += 4;
            Ok(Json::Null)
        }
        b'-' | b'0'..=b'9' => {
            let start = *i;
            if b[*i] == b'-' {
                *i += 1;
            }
            let digits = *i;
            while *i < b.len() && b[*i].is_ascii_digit() {
                *i += 1;
            }
            if *i == digits || (b[digits] == b'0' && *i - digits > 1) {
                return Err(format!("bad number at {start}"));
            }
            if b.get(*i) == Some(&b'.') {
                *i += 1;
                let f = *i;
                while *i < b.len() && b[*i].is_ascii_digit() {
                    *i += 1;
                }
                if *i == f {
                    return Err(format!("bad fraction at {start}"));
                }
            }
            let t = std::str::from_utf8(&b[start..*i]).map_err(|e| e.to_string())?;
            Ok(Json::Num(
                t.parse()
                    .map_err(|e: std::num::ParseFloatError| e.to_string())?,
            ))
        }
        _ => Err(format!("unexpected {:?} at {i}", c as char)),
    }
}
