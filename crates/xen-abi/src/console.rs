//! PV console ring (`io/console.h`) and Xen's own console (`xen.h`).

use crate::version::Version;

/// `console_io` command: write bytes to Xen's console (`CONSOLEIO_write`).
pub const CONSOLEIO_WRITE: u32 = 0;

/// Bytes in the input ring (backend to guest).
pub const IN_RING_SIZE: usize = 1024;
/// Bytes in the output ring (guest to backend).
pub const OUT_RING_SIZE: usize = 2048;

/// First release whose `xencons_interface` carries `connection`: one byte
/// after `out_prod` where the backend says whether it services the ring
/// (`XENCONSOLE_CONNECTED` 0, `XENCONSOLE_DISCONNECTED` 1).
pub const CONNECTION_SINCE: Version = Version {
    major: 4,
    minor: 21,
};

/// `xencons_interface` up to `out_prod`: all of it before
/// [`CONNECTION_SINCE`], the part every release shares after. The appliance
/// only writes output through the indices and does not read `connection`;
/// the ring is a whole page in every release.
#[derive(
    Clone,
    Copy,
    Debug,
    zerocopy::FromBytes,
    zerocopy::IntoBytes,
    zerocopy::Immutable,
    zerocopy::KnownLayout,
)]
#[repr(C)]
pub struct ConsoleInterface {
    /// Input ring.
    pub input: [u8; IN_RING_SIZE],
    /// Output ring.
    pub output: [u8; OUT_RING_SIZE],
    /// Input consumer index (guest).
    pub in_cons: u32,
    /// Input producer index (backend).
    pub in_prod: u32,
    /// Output consumer index (backend).
    pub out_cons: u32,
    /// Output producer index (guest).
    pub out_prod: u32,
}
crate::assert_layout!(
    ConsoleInterface,
    size = 3088,
    input = 0,
    output = 1024,
    in_cons = 3072,
    in_prod = 3076,
    out_cons = 3080,
    out_prod = 3084
);
