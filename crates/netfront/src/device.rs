//! The netfront as a smoltcp `phy::Device`.
//!
//! smoltcp hands out a receive and a transmit token at once and consumes the
//! transmit token (a reply) from inside the receive token's closure. So the
//! receive token carries its own copy of the frame (its buffer goes straight
//! back to the ring) and only the transmit token borrows the frontend, which
//! sits in a `RefCell`; a transmit token that finds the cell busy degrades to
//! a dropped frame rather than a panic.

use core::cell::RefCell;

use smoltcp::phy::{self, DeviceCapabilities, Medium};
use smoltcp::time::Instant;

use crate::front::{Buffers, Netfront, Notify};
use crate::ring::SharedMem;
use crate::MAX_FRAME;

/// A [`Netfront`] that smoltcp can drive.
pub struct NetDevice<M, B, N> {
    front: RefCell<Netfront<M, B, N>>,
}

impl<M: SharedMem, B: Buffers, N: Notify> NetDevice<M, B, N> {
    /// Wraps a connected frontend.
    pub fn new(front: Netfront<M, B, N>) -> Self {
        NetDevice {
            front: RefCell::new(front),
        }
    }

    /// The frontend, e.g. to poll it when the event channel fired or to read
    /// its statistics and error.
    pub fn front(&mut self) -> &mut Netfront<M, B, N> {
        self.front.get_mut()
    }
}

/// Receive token: a copy of one received frame.
pub struct RxToken {
    frame: [u8; MAX_FRAME],
    len: usize,
}
/// Transmit token: one free ring slot.
pub struct TxToken<'a, M, B, N>(&'a RefCell<Netfront<M, B, N>>);

impl phy::RxToken for RxToken {
    fn consume<R, F>(self, f: F) -> R
    where
        F: FnOnce(&[u8]) -> R,
    {
        f(self.frame.get(..self.len).unwrap_or(&[]))
    }
}

impl<M: SharedMem, B: Buffers, N: Notify> phy::TxToken for TxToken<'_, M, B, N> {
    fn consume<R, F>(self, len: usize, f: F) -> R
    where
        F: FnOnce(&mut [u8]) -> R,
    {
        match self.0.try_borrow_mut() {
            Ok(mut nf) => nf.transmit_with(len, f),
            Err(_) => {
                let mut tmp = [0u8; MAX_FRAME];
                let n = len.min(MAX_FRAME);
                // PANICS: never; n <= MAX_FRAME.
                f(&mut tmp[..n])
            }
        }
    }
}

impl<M: SharedMem, B: Buffers, N: Notify> phy::Device for NetDevice<M, B, N> {
    type RxToken<'a>
        = RxToken
    where
        Self: 'a;
    type TxToken<'a>
        = TxToken<'a, M, B, N>
    where
        Self: 'a;

    fn receive(&mut self, _now: Instant) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        let nf = self.front.get_mut();
        // Reap both rings every time (two index reads when idle): completed
        // transmit slots must come back even while receive traffic keeps
        // the stack busy. A protocol error is sticky and reported through
        // `front()`.
        let _ = nf.poll();
        let mut tok = RxToken {
            frame: [0; MAX_FRAME],
            len: 0,
        };
        nf.receive_with(|p| {
            // Frames longer than MAX_FRAME were dropped on arrival.
            let n = p.len().min(MAX_FRAME);
            if let (Some(dst), Some(src)) = (tok.frame.get_mut(..n), p.get(..n)) {
                dst.copy_from_slice(src);
            }
            tok.len = n;
        })?;
        Some((tok, TxToken(&self.front)))
    }

    fn transmit(&mut self, _now: Instant) -> Option<Self::TxToken<'_>> {
        let nf = self.front.get_mut();
        if nf.tx_slots_free() == 0 {
            let _ = nf.poll();
        }
        if nf.tx_slots_free() > 0 {
            Some(TxToken(&self.front))
        } else {
            None
        }
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let free = self
            .front
            .try_borrow()
            .map(|nf| nf.tx_slots_free())
            .unwrap_or(0);
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = MAX_FRAME;
        // smoltcp sends at most this many frames per poll: what the ring takes now.
        caps.max_burst_size = Some(free.max(1));
        caps
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{pair, Backend, Kicks, Page, TestBufs};
    use crate::wire;
    use smoltcp::iface::{Config, Interface, SocketSet};
    use smoltcp::phy::Device;
    use smoltcp::socket::tcp;
    use smoltcp::wire::{EthernetAddress, HardwareAddress, IpAddress, IpCidr, Ipv4Address};

    type Dev = NetDevice<Page, TestBufs, Kicks>;

    struct Host {
        dev: Dev,
        be: Backend,
        iface: Interface,
    }

    fn host(mac: u8, ip: Ipv4Address) -> Host {
        let (nf, be) = pair();
        let mut dev = NetDevice::new(nf);
        let hw = HardwareAddress::Ethernet(EthernetAddress([0x00, 0x16, 0x3e, 0, 0, mac]));
        let mut iface = Interface::new(Config::new(hw), &mut dev, Instant::ZERO);
        iface.update_ip_addrs(|a| a.push(IpCidr::new(IpAddress::Ipv4(ip), 24)).unwrap());
        Host { dev, be, iface }
    }

    /// The bridge between the two backends: every frame one side transmits
    /// reaches the other side's receive ring (or is dropped if it is full).
    fn bridge(a: &mut Host, b: &mut Host) -> usize {
        let mut moved = 0;
        for f in a.be.take_tx(wire::NETIF_RSP_OKAY) {
            moved += usize::from(b.be.deliver(&f));
        }
        for f in b.be.take_tx(wire::NETIF_RSP_OKAY) {
            moved += usize::from(a.be.deliver(&f));
        }
        moved
    }

    #[test]
    fn tcp_stream_between_two_frontends() {
        let ip_a = Ipv4Address::new(10, 0, 0, 1);
        let ip_b = Ipv4Address::new(10, 0, 0, 2);
        let mut a = host(1, ip_a);
        let mut b = host(2, ip_b);
        let mk = || {
            tcp::Socket::new(
                tcp::SocketBuffer::new(vec![0; 256 * 1024]),
                tcp::SocketBuffer::new(vec![0; 256 * 1024]),
            )
        };
        let mut sa = SocketSet::new(vec![]);
        let mut sb = SocketSet::new(vec![]);
        let ha = sa.add(mk());
        let hb = sb.add(mk());
        sb.get_mut::<tcp::Socket>(hb).listen(7000).unwrap();
        sa.get_mut::<tcp::Socket>(ha)
            .connect(a.iface.context(), (IpAddress::Ipv4(ip_b), 7000), 49152)
            .unwrap();

        const TOTAL: usize = 4 << 20;
        let byte = |i: usize| (i * 7 + i / 4096) as u8;
        let (mut sent, mut got) = (0usize, 0usize);
        let mut now = Instant::ZERO;
        for _ in 0..200_000 {
            a.iface.poll(now, &mut a.dev, &mut sa);
            b.iface.poll(now, &mut b.dev, &mut sb);
            let s = sa.get_mut::<tcp::Socket>(ha);
            if s.can_send() && sent < TOTAL {
                sent += s
                    .send(|buf| {
                        let n = buf.len().min(TOTAL - sent);
                        for (k, x) in buf[..n].iter_mut().enumerate() {
                            *x = byte(sent + k);
                        }
                        (n, n)
                    })
                    .unwrap();
            }
            let r = sb.get_mut::<tcp::Socket>(hb);
            while r.can_recv() {
                let ok = r
                    .recv(|buf| {
                        let good = buf.iter().enumerate().all(|(k, &x)| x == byte(got + k));
                        (buf.len(), (buf.len(), good))
                    })
                    .unwrap();
                assert!(ok.1, "corrupted byte near offset {got}");
                got += ok.0;
            }
            if got == TOTAL {
                break;
            }
            bridge(&mut a, &mut b);
            now += smoltcp::time::Duration::from_millis(1);
        }
        assert_eq!(got, TOTAL);
        let (fa, fb) = (a.dev.front().stats(), b.dev.front().stats());
        assert!(fa.tx_packets > (TOTAL / 1500) as u64, "{fa:?}");
        assert_eq!(a.dev.front().error(), None);
        assert_eq!(b.dev.front().error(), None);
        assert!(fb.rx_bytes >= TOTAL as u64);
    }

    #[test]
    fn burst_follows_free_slots_and_dead_device_stops() {
        let (nf, mut be) = pair();
        let mut dev = NetDevice::new(nf);
        assert_eq!(dev.capabilities().max_burst_size, Some(crate::front::SLOTS));
        for _ in 0..10 {
            let t = dev.transmit(Instant::ZERO).unwrap();
            phy::TxToken::consume(t, 60, |b| b.fill(0));
        }
        assert_eq!(
            dev.capabilities().max_burst_size,
            Some(crate::front::SLOTS - 10)
        );
        be.set_tx_rsp_prod(11);
        assert!(dev.receive(Instant::ZERO).is_none());
        assert!(dev.transmit(Instant::ZERO).is_none());
        assert_eq!(dev.front().error(), Some(crate::NetError::ResponseOverrun));
    }
}
