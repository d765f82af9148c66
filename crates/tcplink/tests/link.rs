//! Links between two threads over an in-memory Ethernet, with a bridge that
//! can lose the peer, inject garbage frames, or carry frames faithfully.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;

use depmig_tcplink::{Env, Link, LinkConfig, LinkDevice, LinkError, Role};
use smoltcp::phy::{self, Device, DeviceCapabilities, Medium};
use smoltcp::time::{Duration, Instant};

/// Wakes a sleeping link when a frame arrives for it.
#[derive(Clone, Default)]
struct Doorbell(Arc<(Mutex<bool>, Condvar)>);

impl Doorbell {
    fn ring(&self) {
        let (m, c) = &*self.0;
        *m.lock().unwrap() = true;
        c.notify_all();
    }
}

struct HostEnv {
    start: std::time::Instant,
    bell: Doorbell,
}

impl Env for HostEnv {
    fn now(&mut self) -> Instant {
        Instant::from_micros(self.start.elapsed().as_micros() as i64)
    }
    fn wait(&mut self, deadline: Instant) {
        let now = self.now();
        if deadline <= now {
            return;
        }
        let d = std::time::Duration::from_micros((deadline - now).total_micros());
        let (m, c) = &*self.bell.0;
        let mut rung = m.lock().unwrap();
        if !*rung {
            rung = c.wait_timeout(rung, d).unwrap().0;
        }
        *rung = false;
    }
}

struct ChanDev {
    rx: Receiver<Vec<u8>>,
    tx: Sender<Vec<u8>>,
    queue: VecDeque<Vec<u8>>,
    broken: Arc<AtomicBool>,
}

struct Rx(Vec<u8>);
struct Tx<'a>(&'a Sender<Vec<u8>>);

impl phy::RxToken for Rx {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

impl phy::TxToken for Tx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut buf = vec![0u8; len];
        let r = f(&mut buf);
        let _ = self.0.send(buf);
        r
    }
}

impl Device for ChanDev {
    type RxToken<'a> = Rx;
    type TxToken<'a> = Tx<'a>;
    fn receive(&mut self, _: Instant) -> Option<(Rx, Tx<'_>)> {
        while let Ok(f) = self.rx.try_recv() {
            self.queue.push_back(f);
        }
        let f = self.queue.pop_front()?;
        Some((Rx(f), Tx(&self.tx)))
    }
    fn transmit(&mut self, _: Instant) -> Option<Tx<'_>> {
        Some(Tx(&self.tx))
    }
    fn capabilities(&self) -> DeviceCapabilities {
        let mut c = DeviceCapabilities::default();
        c.medium = Medium::Ethernet;
        c.max_transmission_unit = 1514;
        c
    }
}

impl LinkDevice for ChanDev {
    fn is_broken(&mut self) -> bool {
        self.broken.load(Ordering::SeqCst)
    }
}

/// What the bridge does to the frames it carries.
#[derive(Clone, Copy, PartialEq)]
enum Fault {
    None,
    /// Carry this many frames, then lose everything (the peer vanished).
    VanishAfter(usize),
    /// Interleave a garbage frame after every real one, both directions.
    Garbage,
}

struct Side {
    dev: ChanDev,
    env: HostEnv,
}

/// Two sides joined by a bridge thread; returns them and a stop flag.
fn wire(fault: Fault) -> (Side, Side, Arc<AtomicBool>) {
    let (a_out, a_tx) = channel::<Vec<u8>>();
    let (b_out, b_tx) = channel::<Vec<u8>>();
    let (to_a, a_in) = channel::<Vec<u8>>();
    let (to_b, b_in) = channel::<Vec<u8>>();
    let (bell_a, bell_b) = (Doorbell::default(), Doorbell::default());
    let stop = Arc::new(AtomicBool::new(false));
    let start = std::time::Instant::now();
    {
        let (bell_a, bell_b, stop) = (bell_a.clone(), bell_b.clone(), stop.clone());
        let carried = AtomicUsize::new(0);
        thread::spawn(move || {
            let mut seed = 0x1234_5678_9abc_def0u64;
            let mut garbage = move || {
                let mut f = vec![0u8; 14 + (seed % 200) as usize];
                for b in f.iter_mut() {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    *b = seed as u8;
                }
                // Half of them claim to be IPv4 so they get past Ethernet.
                if seed.is_multiple_of(2) {
                    f[12] = 0x08;
                    f[13] = 0x00;
                }
                f
            };
            while !stop.load(Ordering::SeqCst) {
                let mut moved = false;
                for (rx, tx, bell) in [(&a_tx, &to_b, &bell_b), (&b_tx, &to_a, &bell_a)] {
                    match rx.recv_timeout(std::time::Duration::from_micros(200)) {
                        Ok(f) => {
                            moved = true;
                            let n = carried.fetch_add(1, Ordering::SeqCst);
                            if let Fault::VanishAfter(limit) = fault {
                                if n >= limit {
                                    continue;
                                }
                            }
                            let _ = tx.send(f);
                            if fault == Fault::Garbage {
                                let _ = tx.send(garbage());
                            }
                            bell.ring();
                        }
                        Err(RecvTimeoutError::Timeout) => {}
                        Err(RecvTimeoutError::Disconnected) => {}
                    }
                }
                if !moved {
                    thread::yield_now();
                }
            }
        });
    }
    let side = |rx, tx, bell| Side {
        dev: ChanDev {
            rx,
            tx,
            queue: VecDeque::new(),
            broken: Arc::new(AtomicBool::new(false)),
        },
        env: HostEnv { start, bell },
    };
    (side(a_in, a_out, bell_a), side(b_in, b_out, bell_b), stop)
}

const IP_A: [u8; 4] = [10, 9, 0, 1];
const IP_B: [u8; 4] = [10, 9, 0, 2];
const PORT: u16 = 8470;

fn cfg(ip: [u8; 4], mac: u8) -> LinkConfig {
    let mut c = LinkConfig::new([0x00, 0x16, 0x3e, 0, 9, mac], ip, 24);
    c.connect_timeout = Duration::from_secs(5);
    c.stall_timeout = Duration::from_millis(1500);
    c.buffer_size = 256 * 1024;
    c
}

fn pattern(i: usize) -> u8 {
    (i.wrapping_mul(31) ^ (i >> 12)) as u8
}

fn spawn_server(
    b: Side,
    cfg: LinkConfig,
    body: impl FnOnce(&mut Link<ChanDev, HostEnv>) -> Result<usize, LinkError> + Send + 'static,
) -> thread::JoinHandle<Result<usize, LinkError>> {
    thread::spawn(move || {
        let mut link = Link::open(b.dev, b.env, cfg, Role::Accept { port: PORT })?;
        let n = body(&mut link)?;
        // Answer the client's FIN with ours.
        link.close()?;
        Ok(n)
    })
}

/// The connecting side, which every test expects to connect.
fn client(a: Side) -> Link<ChanDev, HostEnv> {
    Link::open(
        a.dev,
        a.env,
        cfg(IP_A, 1),
        Role::Connect {
            peer: IP_B,
            port: PORT,
        },
    )
    .unwrap()
}

fn recv_pattern(link: &mut Link<ChanDev, HostEnv>) -> Result<usize, LinkError> {
    let mut got = 0usize;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = link.recv(&mut buf)?;
        if n == 0 {
            return Ok(got);
        }
        for (k, &x) in buf[..n].iter().enumerate() {
            assert_eq!(x, pattern(got + k), "byte {} corrupted", got + k);
        }
        got += n;
    }
}

fn send_pattern(link: &mut Link<ChanDev, HostEnv>, total: usize) -> Result<(), LinkError> {
    let mut sent = 0;
    while sent < total {
        let n = (total - sent).min(100_000);
        let chunk: Vec<u8> = (sent..sent + n).map(pattern).collect();
        link.send(&chunk)?;
        sent += n;
    }
    Ok(())
}

#[test]
fn bulk_transfer_and_clean_close() {
    let (a, b, stop) = wire(Fault::None);
    let server = spawn_server(b, cfg(IP_B, 2), |link| {
        let n = recv_pattern(link)?;
        Ok(n)
    });
    let mut link = client(a);
    const TOTAL: usize = 8 << 20;
    send_pattern(&mut link, TOTAL).unwrap();
    // close() flushes, sends FIN and returns once the server closed too.
    assert_eq!(link.close(), Ok(()));
    assert_eq!(server.join().unwrap(), Ok(TOTAL));
    stop.store(true, Ordering::SeqCst);
}

#[test]
fn a_small_receive_window_still_carries_everything() {
    let (a, b, stop) = wire(Fault::None);
    let mut small = cfg(IP_B, 2);
    // A 16 KiB window: the sender may have at most that much in flight.
    small.recv_buffer_size = 16 * 1024;
    let server = spawn_server(b, small, |link| {
        let n = recv_pattern(link)?;
        Ok(n)
    });
    let mut link = client(a);
    const TOTAL: usize = 2 << 20;
    send_pattern(&mut link, TOTAL).unwrap();
    assert_eq!(link.close(), Ok(()));
    assert_eq!(server.join().unwrap(), Ok(TOTAL));
    stop.store(true, Ordering::SeqCst);
}

#[test]
fn garbage_frames_do_not_break_the_stream() {
    let (a, b, stop) = wire(Fault::Garbage);
    let server = spawn_server(b, cfg(IP_B, 2), recv_pattern);
    let mut link = client(a);
    send_pattern(&mut link, 1 << 20).unwrap();
    assert_eq!(link.close(), Ok(()));
    assert_eq!(server.join().unwrap(), Ok(1 << 20));
    stop.store(true, Ordering::SeqCst);
}

#[test]
fn vanished_peer_stalls_both_ends() {
    let (a, b, stop) = wire(Fault::VanishAfter(40));
    let server = spawn_server(b, cfg(IP_B, 2), recv_pattern);
    let mut link = client(a);
    let sent = send_pattern(&mut link, 64 << 20).and_then(|()| link.flush());
    assert_eq!(sent, Err(LinkError::Stalled));
    assert_eq!(server.join().unwrap(), Err(LinkError::Stalled));
    stop.store(true, Ordering::SeqCst);
}

#[test]
fn peer_reset_is_an_error() {
    let (a, b, stop) = wire(Fault::None);
    let server = thread::spawn(move || {
        let mut link = Link::open(b.dev, b.env, cfg(IP_B, 2), Role::Accept { port: PORT })?;
        let mut first = [0u8; 1000];
        link.recv_exact(&mut first)?;
        link.abort();
        Ok::<(), LinkError>(())
    });
    let mut link = client(a);
    let r = send_pattern(&mut link, 64 << 20).and_then(|()| link.flush());
    assert_eq!(server.join().unwrap(), Ok(()));
    assert_eq!(r, Err(LinkError::Reset));
    stop.store(true, Ordering::SeqCst);
}

#[test]
fn early_eof_is_reported() {
    let (a, b, stop) = wire(Fault::None);
    let server = spawn_server(b, cfg(IP_B, 2), |link| {
        let mut buf = vec![0u8; 10_000];
        link.recv_exact(&mut buf).map(|()| 0)
    });
    let mut link = client(a);
    link.send(&[7u8; 100]).unwrap();
    // The server fails and never sends its FIN, so this close cannot finish cleanly.
    assert_eq!(link.close(), Err(LinkError::Stalled));
    assert_eq!(server.join().unwrap(), Err(LinkError::UnexpectedEof));
    stop.store(true, Ordering::SeqCst);
}

#[test]
fn nobody_listening_is_refused_and_nobody_there_times_out() {
    // A host that answers SYN with RST: a link on the peer address that is
    // not listening on PORT.
    let (a, b, stop) = wire(Fault::None);
    let other = thread::spawn(move || {
        let r = Link::open(b.dev, b.env, cfg(IP_B, 2), Role::Accept { port: PORT + 1 });
        assert_eq!(r.err(), Some(LinkError::ConnectTimeout));
    });
    let r = Link::open(
        a.dev,
        a.env,
        cfg(IP_A, 1),
        Role::Connect {
            peer: IP_B,
            port: PORT,
        },
    );
    assert_eq!(r.err(), Some(LinkError::Refused));
    other.join().unwrap();
    stop.store(true, Ordering::SeqCst);

    let (a, _b, stop) = wire(Fault::VanishAfter(0));
    let mut c = cfg(IP_A, 1);
    c.connect_timeout = Duration::from_millis(800);
    let r = Link::open(
        a.dev,
        a.env,
        c,
        Role::Connect {
            peer: IP_B,
            port: PORT,
        },
    );
    assert_eq!(r.err(), Some(LinkError::ConnectTimeout));
    stop.store(true, Ordering::SeqCst);
}

#[test]
fn a_connect_with_retry_waits_for_a_late_listener() {
    // Nobody ever listens: the retries end at the connect deadline. Then a
    // listener that comes up 1.2 s after the first SYN was refused.
    let (a, b, stop) = wire(Fault::None);
    let server = thread::spawn(move || {
        // Answer SYNs with RST meanwhile: a link listening on another port.
        let refuser = Link::open(b.dev, b.env, cfg(IP_B, 2), Role::Accept { port: PORT + 1 });
        refuser.err()
    });
    let mut c = cfg(IP_A, 1);
    c.connect_timeout = Duration::from_millis(900);
    c.retry_refused = Some(Duration::from_millis(200));
    let r = Link::open(
        a.dev,
        a.env,
        c,
        Role::Connect {
            peer: IP_B,
            port: PORT,
        },
    );
    // Still refused when no time is left for another try.
    assert_eq!(r.err(), Some(LinkError::Refused));
    stop.store(true, Ordering::SeqCst);
    let _ = server.join();

    let (a, b, stop) = wire(Fault::None);
    let server = thread::spawn(move || {
        thread::sleep(std::time::Duration::from_millis(1200));
        let mut link = Link::open(b.dev, b.env, cfg(IP_B, 2), Role::Accept { port: PORT })?;
        let n = recv_pattern(&mut link)?;
        link.close()?;
        Ok::<usize, LinkError>(n)
    });
    let mut c = cfg(IP_A, 1);
    c.retry_refused = Some(Duration::from_millis(200));
    let mut link = Link::open(
        a.dev,
        a.env,
        c,
        Role::Connect {
            peer: IP_B,
            port: PORT,
        },
    )
    .expect("the retrying client connects once the listener is up");
    send_pattern(&mut link, 300_000).unwrap();
    link.close().unwrap();
    assert_eq!(server.join().unwrap(), Ok(300_000));
    stop.store(true, Ordering::SeqCst);
}

#[test]
fn dead_device_fails_fast() {
    let (a, b, stop) = wire(Fault::None);
    let broken = a.dev.broken.clone();
    let server = spawn_server(b, cfg(IP_B, 2), recv_pattern);
    let mut link = client(a);
    link.send(&[1u8; 1000]).unwrap();
    broken.store(true, Ordering::SeqCst);
    assert_eq!(link.send(&[1u8; 1000]), Err(LinkError::DeviceFailed));
    drop(server);
    stop.store(true, Ordering::SeqCst);
}

#[test]
fn bad_config_is_refused() {
    let (a, _b, stop) = wire(Fault::None);
    let r = Link::open(
        a.dev,
        a.env,
        cfg([0, 0, 0, 0], 1),
        Role::Accept { port: PORT },
    );
    assert_eq!(r.err(), Some(LinkError::BadConfig));
    let (a, _b, stop2) = wire(Fault::None);
    let mut no_window = cfg(IP_A, 1);
    no_window.recv_buffer_size = 0;
    let r = Link::open(a.dev, a.env, no_window, Role::Accept { port: PORT });
    assert_eq!(r.err(), Some(LinkError::BadConfig));
    stop.store(true, Ordering::SeqCst);
    stop2.store(true, Ordering::SeqCst);
}
