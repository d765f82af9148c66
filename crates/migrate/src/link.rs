//! [`Transport`] for the appliance's TCP link (`depmig_tcplink::Link`), so
//! the roles run directly over it. Enabled by the `tcplink` feature.

use depmig_tcplink::{Env, Link, LinkDevice, LinkError};

use crate::ports::{Transport, TransportError};

impl From<LinkError> for TransportError {
    fn from(e: LinkError) -> Self {
        match e {
            LinkError::Stalled | LinkError::ConnectTimeout => TransportError::Timeout,
            LinkError::UnexpectedEof => TransportError::Closed,
            LinkError::Reset | LinkError::Refused => TransportError::Reset,
            LinkError::DeviceFailed => TransportError::Failed(1),
            LinkError::BadConfig => TransportError::Failed(2),
        }
    }
}

impl<D: LinkDevice, E: Env> Transport for Link<D, E> {
    fn send(&mut self, data: &[u8]) -> Result<(), TransportError> {
        Link::send(self, data).map_err(Into::into)
    }
    fn flush(&mut self) -> Result<(), TransportError> {
        Link::flush(self).map_err(Into::into)
    }
    fn recv(&mut self, buf: &mut [u8]) -> Result<usize, TransportError> {
        Link::recv(self, buf).map_err(Into::into)
    }
    fn blocked_ns(&self) -> Option<u64> {
        Some(Link::blocked(self).total_micros().saturating_mul(1000))
    }
    fn queued(&mut self) -> Option<u64> {
        Some(Link::queued(self) as u64)
    }
    fn recv_exact(&mut self, buf: &mut [u8]) -> Result<(), TransportError> {
        Link::recv_exact(self, buf).map_err(Into::into)
    }
}
