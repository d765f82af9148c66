//! A blocking TCP byte stream over smoltcp: the link between the source and
//! destination appliances.
//!
//! One [`Link`] owns one interface, one TCP socket and the device under it.
//! Every call makes progress or fails within a bound: connecting and
//! accepting have a deadline, and a transfer that makes no progress for the
//! stall timeout (peer gone, link dead, window shut) fails with
//! [`LinkError::Stalled`] instead of hanging. When there is nothing to do the
//! link sleeps through [`Env::wait`] (the appliance blocks on its event
//! channel with a timer), never spinning.

#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::vec;

use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::phy::Device;
use smoltcp::socket::tcp::{self, State};
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpAddress, IpCidr, Ipv4Address};

/// Time and sleep, as the platform provides them.
pub trait Env {
    /// A monotonic clock.
    fn now(&mut self) -> Instant;
    /// Sleeps until the device may have work (an event arrived) or until
    /// `deadline`, whichever is first. Spurious early returns are fine.
    fn wait(&mut self, deadline: Instant);
}

/// A device that can tell that its link is dead for good.
pub trait LinkDevice: Device {
    /// Whether the device stopped moving frames (e.g. its backend misbehaved).
    fn is_broken(&mut self) -> bool;
}

impl<M, B, N> LinkDevice for depmig_netfront::NetDevice<M, B, N>
where
    M: depmig_netfront::SharedMem,
    B: depmig_netfront::Buffers,
    N: depmig_netfront::Notify,
{
    fn is_broken(&mut self) -> bool {
        self.front().error().is_some()
    }
}

/// Why a link operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkError {
    /// No connection was established before the deadline.
    ConnectTimeout,
    /// The peer refused the connection.
    Refused,
    /// The peer reset the connection, or it was lost.
    Reset,
    /// No progress for longer than the stall timeout; the connection was aborted.
    Stalled,
    /// The peer closed its side before the expected bytes arrived.
    UnexpectedEof,
    /// The network device failed (its backend misbehaved or went away).
    DeviceFailed,
    /// The local configuration cannot be used (e.g. address or port zero).
    BadConfig,
}

impl core::fmt::Display for LinkError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            LinkError::ConnectTimeout => "no connection before the deadline",
            LinkError::Refused => "the peer refused the connection",
            LinkError::Reset => "the connection was reset or lost",
            LinkError::Stalled => "no progress within the stall timeout",
            LinkError::UnexpectedEof => "the peer closed the stream early",
            LinkError::DeviceFailed => "the network device failed",
            LinkError::BadConfig => "unusable link configuration",
        })
    }
}

/// Which end of the connection this is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Connect to `peer:port`.
    Connect {
        /// The peer's address.
        peer: [u8; 4],
        /// The peer's port.
        port: u16,
    },
    /// Wait for one connection on `port`.
    Accept {
        /// The local port.
        port: u16,
    },
}

/// Addresses, buffers and bounds of a link.
#[derive(Clone, Copy, Debug)]
pub struct LinkConfig {
    /// This end's MAC address (the vif's).
    pub mac: [u8; 6],
    /// This end's IPv4 address.
    pub ip: [u8; 4],
    /// Prefix length of the local network.
    pub prefix: u8,
    /// Deadline for connecting or accepting.
    pub connect_timeout: Duration,
    /// Longest time a transfer may make no progress.
    pub stall_timeout: Duration,
    /// Size of the send buffer.
    pub buffer_size: usize,
    /// Size of the receive buffer, which is the most the peer may have in
    /// flight (the advertised window; above 64 KiB smoltcp scales it). Keep
    /// it within what the device can hold while this end is busy elsewhere
    /// (a netfront's receive ring): a window larger than that only turns a
    /// busy receiver into dropped segments and retransmission timeouts.
    pub recv_buffer_size: usize,
    /// Connecting side: when the peer refuses (nobody listens yet), try
    /// again after this pause until `connect_timeout`; `None` fails at once
    /// with [`LinkError::Refused`].
    pub retry_refused: Option<Duration>,
}

impl LinkConfig {
    /// Sensible bounds for a migration link on `ip/prefix`.
    pub fn new(mac: [u8; 6], ip: [u8; 4], prefix: u8) -> Self {
        LinkConfig {
            mac,
            ip,
            prefix,
            connect_timeout: Duration::from_secs(30),
            stall_timeout: Duration::from_secs(10),
            buffer_size: 1 << 20,
            recv_buffer_size: 1 << 20,
            retry_refused: None,
        }
    }
}

/// Ephemeral port the connecting side uses.
const LOCAL_PORT: u16 = 49152;

/// One TCP connection with its interface and device.
pub struct Link<D, E> {
    dev: D,
    env: E,
    iface: Interface,
    sockets: SocketSet<'static>,
    handle: SocketHandle,
    cfg: LinkConfig,
    closing: bool,
    /// Time `send` slept with its send buffer full, µs.
    blocked_us: u64,
}

impl<D: LinkDevice, E: Env> Link<D, E> {
    /// Brings the interface up and establishes the connection.
    pub fn open(mut dev: D, mut env: E, cfg: LinkConfig, role: Role) -> Result<Self, LinkError> {
        if cfg.ip == [0; 4] || cfg.prefix > 32 || cfg.buffer_size == 0 || cfg.recv_buffer_size == 0
        {
            return Err(LinkError::BadConfig);
        }
        let hw = HardwareAddress::Ethernet(EthernetAddress(cfg.mac));
        let now = env.now();
        let mut iface = Interface::new(Config::new(hw), &mut dev, now);
        let ip = Ipv4Address::from_octets(cfg.ip);
        let mut added = false;
        iface.update_ip_addrs(|a| {
            added = a.push(IpCidr::new(IpAddress::Ipv4(ip), cfg.prefix)).is_ok()
        });
        if !added {
            return Err(LinkError::BadConfig);
        }
        let mut socket = tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0u8; cfg.recv_buffer_size]),
            tcp::SocketBuffer::new(vec![0u8; cfg.buffer_size]),
        );
        socket.set_nagle_enabled(false);
        match role {
            Role::Connect { peer, port } => {
                if port == 0 || peer == [0; 4] {
                    return Err(LinkError::BadConfig);
                }
                let remote = (IpAddress::Ipv4(Ipv4Address::from_octets(peer)), port);
                socket
                    .connect(iface.context(), remote, LOCAL_PORT)
                    .map_err(|_| LinkError::BadConfig)?;
            }
            Role::Accept { port } => {
                socket.listen(port).map_err(|_| LinkError::BadConfig)?;
            }
        }
        let mut sockets = SocketSet::new(vec![]);
        let handle = sockets.add(socket);
        let mut link = Link {
            dev,
            env,
            iface,
            sockets,
            handle,
            cfg,
            closing: false,
            blocked_us: 0,
        };
        link.establish(role)?;
        Ok(link)
    }

    fn socket(&mut self) -> &mut tcp::Socket<'static> {
        self.sockets.get_mut::<tcp::Socket>(self.handle)
    }

    /// Runs the stack once; fails when the device died.
    fn pump(&mut self) -> Result<Instant, LinkError> {
        let now = self.env.now();
        self.iface.poll(now, &mut self.dev, &mut self.sockets);
        if self.dev.is_broken() {
            self.socket().abort();
            return Err(LinkError::DeviceFailed);
        }
        Ok(now)
    }

    /// Sleeps until the stack has a timer due, an event arrives, or `limit`.
    fn sleep(&mut self, now: Instant, limit: Instant) {
        let at = match self.iface.poll_at(now, &self.sockets) {
            Some(t) if t < limit => t,
            _ => limit,
        };
        if at > now {
            self.env.wait(at);
        }
    }

    fn establish(&mut self, role: Role) -> Result<(), LinkError> {
        let deadline = self.env.now() + self.cfg.connect_timeout;
        let mut was_syn = false;
        loop {
            let now = self.pump()?;
            let state = self.socket().state();
            match state {
                State::Established => return Ok(()),
                State::SynSent | State::SynReceived => was_syn = true,
                State::Listen => {}
                // A SYN answered by a reset puts the socket back to Closed
                // (or Listen for the accepting side, which just keeps waiting).
                _ => {
                    let err = if matches!(role, Role::Connect { .. }) && was_syn {
                        LinkError::Refused
                    } else {
                        LinkError::Reset
                    };
                    match (err, role, self.cfg.retry_refused) {
                        (LinkError::Refused, Role::Connect { peer, port }, Some(pause))
                            if now + pause < deadline =>
                        {
                            // Nobody listens yet: wait, then knock again.
                            let until = now + pause;
                            loop {
                                let t = self.pump()?;
                                if t >= until {
                                    break;
                                }
                                self.sleep(t, until);
                            }
                            was_syn = false;
                            let remote = (IpAddress::Ipv4(Ipv4Address::from_octets(peer)), port);
                            let cx = self.iface.context();
                            self.sockets
                                .get_mut::<tcp::Socket>(self.handle)
                                .connect(cx, remote, LOCAL_PORT)
                                .map_err(|_| LinkError::BadConfig)?;
                            continue;
                        }
                        _ => return Err(err),
                    }
                }
            }
            if now >= deadline {
                self.socket().abort();
                let _ = self.pump();
                return Err(LinkError::ConnectTimeout);
            }
            self.sleep(now, deadline);
        }
    }

    /// The state the socket is in, mapped to an error if the connection is gone.
    fn check_alive(&mut self) -> Result<(), LinkError> {
        match self.socket().state() {
            State::Closed | State::Listen => Err(LinkError::Reset),
            _ => Ok(()),
        }
    }

    /// Sends all of `data`, waiting while the send buffer is full
    /// (backpressure). Returns when `data` sits in the send buffer; use
    /// [`Self::flush`] to wait for the peer's acknowledgement.
    pub fn send(&mut self, mut data: &[u8]) -> Result<(), LinkError> {
        let mut last_progress = self.env.now();
        let mut last_queue = usize::MAX;
        while !data.is_empty() {
            let now = self.pump()?;
            self.check_alive()?;
            let sock = self.socket();
            if !sock.may_send() {
                return Err(LinkError::Reset);
            }
            let n = sock.send_slice(data).map_err(|_| LinkError::Reset)?;
            let queue = sock.send_queue();
            data = data.get(n..).unwrap_or(&[]);
            // Progress: bytes accepted into the buffer or acknowledged by the peer.
            if n > 0 || queue < last_queue {
                last_progress = now;
            }
            last_queue = queue;
            if n == 0 {
                self.stall_check(now, last_progress)?;
                self.sleep(now, last_progress + self.cfg.stall_timeout);
                let slept = (self.env.now() - now).total_micros();
                self.blocked_us = self.blocked_us.saturating_add(slept);
            }
        }
        // Hand what was queued to the device before returning.
        self.pump()?;
        Ok(())
    }

    /// Time [`Self::send`] spent waiting for room in the send buffer (the
    /// peer or the link not taking bytes as fast as they came), in total.
    pub fn blocked(&self) -> Duration {
        Duration::from_micros(self.blocked_us)
    }

    /// Bytes handed to [`Self::send`] that the peer has not acknowledged
    /// yet (the send buffer's queue), after running the stack once so that
    /// acknowledgements that arrived since the last call count. A failed
    /// device shows at the next transfer.
    pub fn queued(&mut self) -> usize {
        let _ = self.pump();
        self.socket().send_queue()
    }

    fn stall_check(&mut self, now: Instant, last_progress: Instant) -> Result<(), LinkError> {
        if now >= last_progress + self.cfg.stall_timeout {
            self.socket().abort();
            let _ = self.pump();
            return Err(LinkError::Stalled);
        }
        Ok(())
    }

    /// Waits until the peer acknowledged everything sent.
    pub fn flush(&mut self) -> Result<(), LinkError> {
        let mut last_progress = self.env.now();
        let mut last_queue = usize::MAX;
        loop {
            let now = self.pump()?;
            self.check_alive()?;
            let queue = self.socket().send_queue();
            if queue == 0 {
                return Ok(());
            }
            if queue < last_queue {
                last_progress = now;
                last_queue = queue;
            }
            self.stall_check(now, last_progress)?;
            self.sleep(now, last_progress + self.cfg.stall_timeout);
        }
    }

    /// Receives at least one byte into `buf`; `Ok(0)` means the peer closed
    /// its side cleanly (end of stream).
    pub fn recv(&mut self, buf: &mut [u8]) -> Result<usize, LinkError> {
        if buf.is_empty() {
            return Ok(0);
        }
        let start = self.env.now();
        loop {
            let now = self.pump()?;
            let sock = self.socket();
            if sock.can_recv() {
                return sock.recv_slice(buf).map_err(|_| LinkError::Reset);
            }
            match sock.state() {
                // The peer sent FIN and everything before it was read.
                State::CloseWait | State::LastAck | State::TimeWait | State::Closing => {
                    return Ok(0)
                }
                State::Closed | State::Listen if !self.closing => return Err(LinkError::Reset),
                State::Closed | State::Listen => return Ok(0),
                _ => {}
            }
            self.stall_check(now, start)?;
            self.sleep(now, start + self.cfg.stall_timeout);
        }
    }

    /// Fills `buf` completely or fails.
    pub fn recv_exact(&mut self, mut buf: &mut [u8]) -> Result<(), LinkError> {
        while !buf.is_empty() {
            let n = self.recv(buf)?;
            if n == 0 {
                return Err(LinkError::UnexpectedEof);
            }
            buf = buf.get_mut(n..).unwrap_or(&mut []);
        }
        Ok(())
    }

    /// Flushes, sends FIN and waits (bounded) for the peer to close its side.
    pub fn close(mut self) -> Result<(), LinkError> {
        self.flush()?;
        self.closing = true;
        self.socket().close();
        let deadline = self.env.now() + self.cfg.stall_timeout;
        loop {
            let now = self.pump()?;
            match self.socket().state() {
                State::Closed | State::TimeWait => return Ok(()),
                State::CloseWait => self.socket().close(),
                _ => {}
            }
            if now >= deadline {
                self.socket().abort();
                let _ = self.pump();
                return Err(LinkError::Stalled);
            }
            self.sleep(now, deadline);
        }
    }

    /// Aborts the connection (sends RST) at once.
    pub fn abort(mut self) {
        self.socket().abort();
        let _ = self.pump();
    }

    /// The device, e.g. for its statistics.
    pub fn device(&mut self) -> &mut D {
        &mut self.dev
    }
}
