//! Index arithmetic of the xenstore rings (`xenstore_domain_interface`).
//!
//! Producer and consumer indices are free-running `u32`s; the byte at index
//! `i` lives at `i % RING_SIZE`. The consumer's index is written by the other
//! end, so every function here treats it as hostile: a distance larger than
//! the ring is reported as [`RingError`] instead of being trusted.

/// Bytes in each of the two rings (`XENSTORE_RING_SIZE`).
pub const RING_SIZE: usize = 1024;

/// Offset of the request ring in the shared page.
pub const REQ_OFFSET: usize = 0;
/// Offset of the response ring in the shared page.
pub const RSP_OFFSET: usize = 1024;
/// Offset of `req_cons`.
pub const REQ_CONS_OFFSET: usize = 2048;
/// Offset of `req_prod`.
pub const REQ_PROD_OFFSET: usize = 2052;
/// Offset of `rsp_cons`.
pub const RSP_CONS_OFFSET: usize = 2056;
/// Offset of `rsp_prod`.
pub const RSP_PROD_OFFSET: usize = 2060;
/// Offset of `server_features`.
pub const SERVER_FEATURES_OFFSET: usize = 2064;
/// Offset of `connection`.
pub const CONNECTION_OFFSET: usize = 2068;
/// Offset of `error`.
pub const ERROR_OFFSET: usize = 2072;
/// Size of `xenstore_domain_interface`.
pub const INTERFACE_SIZE: usize = 2076;

/// The ring indices are inconsistent: the peer moved one out of range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RingError {
    /// Producer index seen.
    pub prod: u32,
    /// Consumer index seen.
    pub cons: u32,
}

impl core::fmt::Display for RingError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "xenstore ring indices out of range (prod {}, cons {})",
            self.prod, self.cons
        )
    }
}

/// Bytes queued between `cons` and `prod`, checked against the ring size.
pub fn used(prod: u32, cons: u32) -> Result<usize, RingError> {
    let n = prod.wrapping_sub(cons) as usize;
    if n > RING_SIZE {
        Err(RingError { prod, cons })
    } else {
        Ok(n)
    }
}

/// The contiguous span a producer at `prod` may write now: `(offset, len)`
/// within the ring. `len` is 0 when the ring is full.
pub fn writable_span(prod: u32, cons: u32) -> Result<(usize, usize), RingError> {
    let free = RING_SIZE - used(prod, cons)?;
    let off = prod as usize % RING_SIZE;
    Ok((off, free.min(RING_SIZE - off)))
}

/// The contiguous span a consumer at `cons` may read now: `(offset, len)`
/// within the ring. `len` is 0 when the ring is empty.
pub fn readable_span(prod: u32, cons: u32) -> Result<(usize, usize), RingError> {
    let avail = used(prod, cons)?;
    let off = cons as usize % RING_SIZE;
    Ok((off, avail.min(RING_SIZE - off)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_wrap_at_the_ring_end() {
        assert_eq!(writable_span(0, 0), Ok((0, 1024)));
        assert_eq!(writable_span(1000, 0), Ok((1000, 24)));
        assert_eq!(writable_span(1024, 0), Ok((0, 0)));
        assert_eq!(writable_span(1030, 1000), Ok((6, 994)));
        assert_eq!(readable_span(1030, 1000), Ok((1000, 24)));
        assert_eq!(readable_span(1030, 1024), Ok((0, 6)));
        // Free-running indices wrap at u32::MAX.
        assert_eq!(readable_span(5, u32::MAX - 4), Ok((1019, 5)));
        assert_eq!(used(5, u32::MAX - 4), Ok(10));
    }

    #[test]
    fn hostile_indices_are_errors() {
        assert_eq!(
            used(2000, 0),
            Err(RingError {
                prod: 2000,
                cons: 0
            })
        );
        assert!(readable_span(0, 1).is_err());
        assert!(writable_span(0, 1).is_err());
    }
}
