//! Layouts of the netif ring entries (`xen/include/public/io/netif.h`).
//!
//! Entries are encoded little-endian at fixed offsets; the offsets are kept in
//! `mod field`-style constants so the sizes can be asserted against the header.

/// `netif_tx_request`: gref u32 @0, offset u16 @4, flags u16 @6, id u16 @8, size u16 @10.
pub const TX_REQUEST_SIZE: usize = 12;
/// `netif_tx_response`: id u16 @0, status i16 @2.
pub const TX_RESPONSE_SIZE: usize = 4;
/// `netif_rx_request`: id u16 @0, pad u16 @2, gref u32 @4.
pub const RX_REQUEST_SIZE: usize = 8;
/// `netif_rx_response`: id u16 @0, offset u16 @2, flags u16 @4, status i16 @6.
pub const RX_RESPONSE_SIZE: usize = 8;

/// A tx ring slot holds the larger of request and response.
pub const TX_ENTRY_SIZE: usize = TX_REQUEST_SIZE;
/// An rx ring slot: request and response are both 8 bytes.
pub const RX_ENTRY_SIZE: usize = RX_REQUEST_SIZE;

/// `NETTXF_more_data`: the packet continues in the next request.
pub const NETTXF_MORE_DATA: u16 = 1 << 2;
/// `NETTXF_extra_info`: an extra-info slot follows.
pub const NETTXF_EXTRA_INFO: u16 = 1 << 3;

/// `NETRXF_more_data`: the packet continues in the next response.
pub const NETRXF_MORE_DATA: u16 = 1 << 2;
/// `NETRXF_extra_info`: the next slot holds extra info, not packet data.
pub const NETRXF_EXTRA_INFO: u16 = 1 << 3;

/// `NETIF_RSP_DROPPED`.
pub const NETIF_RSP_DROPPED: i16 = -2;
/// `NETIF_RSP_ERROR`.
pub const NETIF_RSP_ERROR: i16 = -1;
/// `NETIF_RSP_OKAY`.
pub const NETIF_RSP_OKAY: i16 = 0;
/// `NETIF_RSP_NULL`: a response for an extra-info slot.
pub const NETIF_RSP_NULL: i16 = 1;

/// A transmit request as the frontend writes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TxRequest {
    /// Grant reference of the page holding the packet.
    pub gref: u32,
    /// Offset of the packet in that page.
    pub offset: u16,
    /// `NETTXF_*` flags.
    pub flags: u16,
    /// Slot id echoed in the response.
    pub id: u16,
    /// Packet length in bytes.
    pub size: u16,
}

impl TxRequest {
    /// Encodes the request as it sits in the ring.
    pub fn encode(&self) -> [u8; TX_REQUEST_SIZE] {
        let mut b = [0u8; TX_REQUEST_SIZE];
        b[0..4].copy_from_slice(&self.gref.to_le_bytes());
        b[4..6].copy_from_slice(&self.offset.to_le_bytes());
        b[6..8].copy_from_slice(&self.flags.to_le_bytes());
        b[8..10].copy_from_slice(&self.id.to_le_bytes());
        b[10..12].copy_from_slice(&self.size.to_le_bytes());
        b
    }

    /// Decodes a request (used by test backends).
    pub fn decode(b: &[u8; TX_REQUEST_SIZE]) -> Self {
        TxRequest {
            gref: u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            offset: u16::from_le_bytes([b[4], b[5]]),
            flags: u16::from_le_bytes([b[6], b[7]]),
            id: u16::from_le_bytes([b[8], b[9]]),
            size: u16::from_le_bytes([b[10], b[11]]),
        }
    }
}

/// A transmit response as the backend writes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TxResponse {
    /// Id of the request answered.
    pub id: u16,
    /// `NETIF_RSP_*`.
    pub status: i16,
}

impl TxResponse {
    /// Decodes the first [`TX_RESPONSE_SIZE`] bytes of a slot.
    pub fn decode(b: &[u8; TX_RESPONSE_SIZE]) -> Self {
        TxResponse {
            id: u16::from_le_bytes([b[0], b[1]]),
            status: i16::from_le_bytes([b[2], b[3]]),
        }
    }

    /// Encodes the response (used by test backends).
    pub fn encode(&self) -> [u8; TX_RESPONSE_SIZE] {
        let mut b = [0u8; TX_RESPONSE_SIZE];
        b[0..2].copy_from_slice(&self.id.to_le_bytes());
        b[2..4].copy_from_slice(&self.status.to_le_bytes());
        b
    }
}

/// A receive request: an empty buffer page offered to the backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RxRequest {
    /// Slot id echoed in the response.
    pub id: u16,
    /// Grant reference of the buffer page.
    pub gref: u32,
}

impl RxRequest {
    /// Encodes the request as it sits in the ring.
    pub fn encode(&self) -> [u8; RX_REQUEST_SIZE] {
        let mut b = [0u8; RX_REQUEST_SIZE];
        b[0..2].copy_from_slice(&self.id.to_le_bytes());
        b[4..8].copy_from_slice(&self.gref.to_le_bytes());
        b
    }

    /// Decodes a request (used by test backends).
    pub fn decode(b: &[u8; RX_REQUEST_SIZE]) -> Self {
        RxRequest {
            id: u16::from_le_bytes([b[0], b[1]]),
            gref: u32::from_le_bytes([b[4], b[5], b[6], b[7]]),
        }
    }
}

/// A receive response: where in the buffer the packet landed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RxResponse {
    /// Id of the request answered.
    pub id: u16,
    /// Offset of the data in the buffer page.
    pub offset: u16,
    /// `NETRXF_*` flags.
    pub flags: u16,
    /// Length in bytes when positive, `NETIF_RSP_*` error when negative.
    pub status: i16,
}

impl RxResponse {
    /// Decodes a response slot.
    pub fn decode(b: &[u8; RX_RESPONSE_SIZE]) -> Self {
        RxResponse {
            id: u16::from_le_bytes([b[0], b[1]]),
            offset: u16::from_le_bytes([b[2], b[3]]),
            flags: u16::from_le_bytes([b[4], b[5]]),
            status: i16::from_le_bytes([b[6], b[7]]),
        }
    }

    /// Encodes the response (used by test backends).
    pub fn encode(&self) -> [u8; RX_RESPONSE_SIZE] {
        let mut b = [0u8; RX_RESPONSE_SIZE];
        b[0..2].copy_from_slice(&self.id.to_le_bytes());
        b[2..4].copy_from_slice(&self.offset.to_le_bytes());
        b[4..6].copy_from_slice(&self.flags.to_le_bytes());
        b[6..8].copy_from_slice(&self.status.to_le_bytes());
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip() {
        let t = TxRequest {
            gref: 0x1234_5678,
            offset: 2,
            flags: 3,
            id: 255,
            size: 1514,
        };
        assert_eq!(TxRequest::decode(&t.encode()), t);
        let r = RxResponse {
            id: 7,
            offset: 0,
            flags: NETRXF_MORE_DATA,
            status: -1,
        };
        assert_eq!(RxResponse::decode(&r.encode()), r);
        let q = RxRequest { id: 9, gref: 77 };
        assert_eq!(RxRequest::decode(&q.encode()), q);
        let s = TxResponse {
            id: 3,
            status: NETIF_RSP_DROPPED,
        };
        assert_eq!(TxResponse::decode(&s.encode()), s);
    }

    #[test]
    fn field_offsets_match_netif_h() {
        // gref first, id at byte 8, size at byte 10 (netif_tx_request).
        let b = TxRequest {
            gref: 1,
            offset: 0,
            flags: 0,
            id: 0x0102,
            size: 0x0304,
        }
        .encode();
        assert_eq!(b, [1, 0, 0, 0, 0, 0, 0, 0, 2, 1, 4, 3]);
        // rx request: id, 2 bytes of padding, then gref.
        assert_eq!(
            RxRequest { id: 5, gref: 6 }.encode(),
            [5, 0, 0, 0, 6, 0, 0, 0]
        );
    }
}
