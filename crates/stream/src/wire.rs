//! Wire constants and fixed-layout types of the libxc stream (headers, record
//! types, page types, small records).
//!
//! PANICS: the `to_bytes` serialisers index fixed-size arrays with constant
//! ranges inside their length; none of them can fire.

/// `marker` of the image header: all ones, so no legacy image matches.
pub const IHDR_MARKER: u64 = 0xFFFF_FFFF_FFFF_FFFF;
/// `id` of the image header: "XENF".
pub const IHDR_ID: u32 = 0x5845_4E46;
/// The image version depmig writes and reads (v3 added `STATIC_DATA_END`).
pub const IHDR_VERSION: u32 = 3;
/// Image header `options` bit 0: the rest of the stream is big-endian.
pub const IHDR_OPT_BIG_ENDIAN: u16 = 1 << 0;
/// Size of the image header on the wire.
pub const IHDR_LEN: usize = 24;
/// Size of the domain header on the wire.
pub const DHDR_LEN: usize = 16;
/// Size of a record header (type, body length).
pub const RHDR_LEN: usize = 8;
/// Records are padded so each ends on this boundary.
pub const REC_ALIGN: usize = 8;
/// x86 page shift; the only one depmig accepts.
pub const PAGE_SHIFT: u16 = 12;
/// x86 page size.
pub const PAGE_SIZE: usize = 1 << PAGE_SHIFT;
/// libxc's largest PAGE_DATA batch (`MAX_BATCH_SIZE`); the default cap.
pub const MAX_BATCH: u32 = 1024;

/// Bits 0–51 of a PAGE_DATA pfn entry: the frame number.
pub const PFN_MASK: u64 = (1 << 52) - 1;
/// Bits 52–59 of a PAGE_DATA pfn entry: reserved, must be zero.
pub const PFN_RESERVED_MASK: u64 = 0xff << 52;
/// Bits 60–63 of a PAGE_DATA pfn entry hold the `XEN_DOMCTL_PFINFO_*` type.
pub const PFN_TYPE_SHIFT: u32 = 60;

/// Record type numbers (`REC_TYPE_*`).
pub mod rec {
    /// End of the stream.
    pub const END: u32 = 0x0000_0000;
    /// Guest pages.
    pub const PAGE_DATA: u32 = 0x0000_0001;
    /// PV guest info (unsupported by depmig).
    pub const X86_PV_INFO: u32 = 0x0000_0002;
    /// PV P2M frames (unsupported by depmig).
    pub const X86_PV_P2M_FRAMES: u32 = 0x0000_0003;
    /// PV vcpu basic context (unsupported by depmig).
    pub const X86_PV_VCPU_BASIC: u32 = 0x0000_0004;
    /// PV vcpu extended context (unsupported by depmig).
    pub const X86_PV_VCPU_EXTENDED: u32 = 0x0000_0005;
    /// PV vcpu xsave state (unsupported by depmig).
    pub const X86_PV_VCPU_XSAVE: u32 = 0x0000_0006;
    /// PV shared info page (unsupported by depmig).
    pub const SHARED_INFO: u32 = 0x0000_0007;
    /// TSC mode, frequency, elapsed time and incarnation.
    pub const X86_TSC_INFO: u32 = 0x0000_0008;
    /// HVM context blob (`XEN_DOMCTL_{get,set}hvmcontext`).
    pub const HVM_CONTEXT: u32 = 0x0000_0009;
    /// HVM parameters as (index, value) pairs.
    pub const HVM_PARAMS: u32 = 0x0000_000A;
    /// Deprecated toolstack blob (unsupported by depmig).
    pub const TOOLSTACK: u32 = 0x0000_000B;
    /// PV vcpu MSRs (unsupported by depmig).
    pub const X86_PV_VCPU_MSRS: u32 = 0x0000_000C;
    /// All memory was sent; what follows is resent for verification.
    pub const VERIFY: u32 = 0x0000_000D;
    /// End of one consistent checkpoint (Remus/COLO).
    pub const CHECKPOINT: u32 = 0x0000_000E;
    /// COLO secondary's dirty pfn list (unsupported by depmig).
    pub const CHECKPOINT_DIRTY_PFN_LIST: u32 = 0x0000_000F;
    /// End of the static data (CPU policy) at the stream's head.
    pub const STATIC_DATA_END: u32 = 0x0000_0010;
    /// CPUID policy: array of `xen_cpuid_leaf_t`.
    pub const X86_CPUID_POLICY: u32 = 0x0000_0011;
    /// MSR policy: array of `xen_msr_entry_t`.
    pub const X86_MSR_POLICY: u32 = 0x0000_0012;
    /// Bit 31 marks an optional record a receiver may ignore.
    pub const OPTIONAL: u32 = 0x8000_0000;

    /// First of the record types depmig reserves for its own extensions
    /// ("DP" in the top half). Xen numbers its record types upwards from
    /// zero (0x12 is the last in 4.20), so this block stays clear of
    /// them; bit 31 is clear, so they are mandatory: Xen's restorer
    /// refuses a stream holding one instead of skipping pages.
    pub const DEPMIG_EXT_FIRST: u32 = 0x4450_0000;
    /// Last of depmig's extension record types.
    pub const DEPMIG_EXT_LAST: u32 = 0x4450_FFFF;
    /// depmig extension: PAGE_DATA with each page raw, LZ4-compressed or
    /// zero ([`crate::packed`]); only when negotiated in the handshake.
    pub const DEPMIG_PACKED_PAGES: u32 = 0x4450_0001;
    /// depmig extension: pages sent before, each as runs of its XOR with
    /// the contents the destination holds ([`crate::delta`]); only when
    /// negotiated in the handshake.
    pub const DEPMIG_DELTA_PAGES: u32 = 0x4450_0002;
}

/// Size of one `xen_cpuid_leaf_t`.
pub const CPUID_LEAF_LEN: usize = 24;
/// Size of one `xen_msr_entry_t`.
pub const MSR_ENTRY_LEN: usize = 16;
/// Size of the X86_TSC_INFO body.
pub const TSC_INFO_LEN: usize = 24;
/// Size of one HVM_PARAMS entry.
pub const HVM_PARAM_LEN: usize = 16;

/// The image header: identifies a v2-format stream and its version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageHeader {
    /// Spec version (3 for what depmig writes).
    pub version: u32,
    /// Options word; bit 0 is the endianness of the rest.
    pub options: u16,
}

impl ImageHeader {
    /// The header depmig writes: version 3, little-endian.
    pub const CURRENT: ImageHeader = ImageHeader {
        version: IHDR_VERSION,
        options: 0,
    };

    /// Serialises the header (always big-endian on the wire).
    pub fn to_bytes(&self) -> [u8; IHDR_LEN] {
        let mut b = [0u8; IHDR_LEN];
        b[0..8].copy_from_slice(&IHDR_MARKER.to_be_bytes());
        b[8..12].copy_from_slice(&IHDR_ID.to_be_bytes());
        b[12..16].copy_from_slice(&self.version.to_be_bytes());
        b[16..18].copy_from_slice(&self.options.to_be_bytes());
        b
    }
}

/// The domain type field of the domain header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DomainType {
    /// x86 PV (recognised, refused by depmig's decoder).
    X86Pv,
    /// x86 HVM; libxc also uses it for PVH guests.
    X86Hvm,
    /// x86 PVH.
    X86Pvh,
    /// ARM (recognised, refused).
    Arm,
}

impl DomainType {
    /// The wire number.
    pub fn to_u32(self) -> u32 {
        match self {
            DomainType::X86Pv => 1,
            DomainType::X86Hvm => 2,
            DomainType::X86Pvh => 3,
            DomainType::Arm => 4,
        }
    }

    /// Parses the wire number.
    pub fn from_u32(v: u32) -> Option<Self> {
        Some(match v {
            1 => DomainType::X86Pv,
            2 => DomainType::X86Hvm,
            3 => DomainType::X86Pvh,
            4 => DomainType::Arm,
            _ => return None,
        })
    }
}

/// The domain header: guest type, page size, saving Xen's version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DomainHeader {
    /// Guest type.
    pub domain_type: DomainType,
    /// log2 of the guest page size.
    pub page_shift: u16,
    /// Xen major version of the saving host.
    pub xen_major: u32,
    /// Xen minor version of the saving host.
    pub xen_minor: u32,
}

impl DomainHeader {
    /// Serialises the header (little-endian).
    pub fn to_bytes(&self) -> [u8; DHDR_LEN] {
        let mut b = [0u8; DHDR_LEN];
        b[0..4].copy_from_slice(&self.domain_type.to_u32().to_le_bytes());
        b[4..6].copy_from_slice(&self.page_shift.to_le_bytes());
        b[8..12].copy_from_slice(&self.xen_major.to_le_bytes());
        b[12..16].copy_from_slice(&self.xen_minor.to_le_bytes());
        b
    }
}

/// `XEN_DOMCTL_PFINFO_*` page type carried in bits 60–63 of a pfn entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PageType {
    /// Ordinary page with data.
    Normal,
    /// Page-table page of level 1–4 (PV only); the payload is the level.
    Table(u8),
    /// Pinned page-table page of level 1–4 (PV only).
    PinnedTable(u8),
    /// Broken page: no data.
    Broken,
    /// Allocate only: no data.
    XAlloc,
    /// Invalid (hole): no data.
    XTab,
}

impl PageType {
    /// The 4-bit wire value.
    pub fn to_nibble(self) -> u8 {
        match self {
            PageType::Normal => 0x0,
            PageType::Table(l) => l & 0x7,
            PageType::PinnedTable(l) => 0x8 | (l & 0x7),
            PageType::Broken => 0xD,
            PageType::XAlloc => 0xE,
            PageType::XTab => 0xF,
        }
    }

    /// Parses the 4-bit wire value; 0x5–0x8 are reserved and refused.
    pub fn from_nibble(v: u8) -> Option<Self> {
        Some(match v {
            0x0 => PageType::Normal,
            0x1..=0x4 => PageType::Table(v),
            0x9..=0xC => PageType::PinnedTable(v & 0x7),
            0xD => PageType::Broken,
            0xE => PageType::XAlloc,
            0xF => PageType::XTab,
            _ => return None,
        })
    }

    /// Whether a page of this type carries `PAGE_SIZE` bytes of data.
    pub fn has_data(self) -> bool {
        !matches!(self, PageType::Broken | PageType::XAlloc | PageType::XTab)
    }
}

/// One entry of PAGE_DATA's pfn array.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PfnEntry {
    /// Guest frame number (below 2^52).
    pub pfn: u64,
    /// Page type.
    pub kind: PageType,
}

impl PfnEntry {
    /// A normal page with data.
    pub fn normal(pfn: u64) -> Self {
        PfnEntry {
            pfn,
            kind: PageType::Normal,
        }
    }

    /// The 64-bit wire form; `None` when the pfn does not fit in 52 bits.
    pub fn to_u64(self) -> Option<u64> {
        if self.pfn & !PFN_MASK != 0 {
            return None;
        }
        Some(self.pfn | (u64::from(self.kind.to_nibble()) << PFN_TYPE_SHIFT))
    }
}

/// X86_TSC_INFO body.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TscInfo {
    /// `TSC_MODE_*`.
    pub mode: u32,
    /// TSC frequency in kHz.
    pub khz: u32,
    /// Elapsed time in ns.
    pub nsec: u64,
    /// Incarnation.
    pub incarnation: u32,
}

impl TscInfo {
    /// Serialises the body.
    pub fn to_bytes(&self) -> [u8; TSC_INFO_LEN] {
        let mut b = [0u8; TSC_INFO_LEN];
        b[0..4].copy_from_slice(&self.mode.to_le_bytes());
        b[4..8].copy_from_slice(&self.khz.to_le_bytes());
        b[8..16].copy_from_slice(&self.nsec.to_le_bytes());
        b[16..20].copy_from_slice(&self.incarnation.to_le_bytes());
        b
    }
}

/// One HVM parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HvmParam {
    /// `HVM_PARAM_*` index.
    pub index: u64,
    /// Value.
    pub value: u64,
}

/// One `xen_cpuid_leaf_t`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuidLeaf {
    /// Leaf.
    pub leaf: u32,
    /// Subleaf.
    pub subleaf: u32,
    /// EAX.
    pub a: u32,
    /// EBX.
    pub b: u32,
    /// ECX.
    pub c: u32,
    /// EDX.
    pub d: u32,
}

impl CpuidLeaf {
    /// Serialises one leaf.
    pub fn to_bytes(&self) -> [u8; CPUID_LEAF_LEN] {
        let mut o = [0u8; CPUID_LEAF_LEN];
        for (i, v) in [self.leaf, self.subleaf, self.a, self.b, self.c, self.d]
            .into_iter()
            .enumerate()
        {
            o[i * 4..i * 4 + 4].copy_from_slice(&v.to_le_bytes());
        }
        o
    }
}

/// One `xen_msr_entry_t`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MsrEntry {
    /// MSR index.
    pub idx: u32,
    /// Flags (reserved by Xen, passed through).
    pub flags: u32,
    /// Value.
    pub val: u64,
}

impl MsrEntry {
    /// Serialises one entry.
    pub fn to_bytes(&self) -> [u8; MSR_ENTRY_LEN] {
        let mut o = [0u8; MSR_ENTRY_LEN];
        o[0..4].copy_from_slice(&self.idx.to_le_bytes());
        o[4..8].copy_from_slice(&self.flags.to_le_bytes());
        o[8..16].copy_from_slice(&self.val.to_le_bytes());
        o
    }
}

/// Padding after a body of `len` bytes.
pub fn padding(len: usize) -> usize {
    (REC_ALIGN - len % REC_ALIGN) % REC_ALIGN
}

/// Reads a little-endian u32 at `off`; `None` past the end.
pub(crate) fn le32(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        b.get(off..off.checked_add(4)?)?.try_into().ok()?,
    ))
}

/// Reads a little-endian u64 at `off`; `None` past the end.
pub(crate) fn le64(b: &[u8], off: usize) -> Option<u64> {
    Some(u64::from_le_bytes(
        b.get(off..off.checked_add(8)?)?.try_into().ok()?,
    ))
}

/// Reads a little-endian u16 at `off`; `None` past the end.
pub(crate) fn le16(b: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_le_bytes(
        b.get(off..off.checked_add(2)?)?.try_into().ok()?,
    ))
}

/// Reads a big-endian u64 at `off`; `None` past the end.
pub(crate) fn be64(b: &[u8], off: usize) -> Option<u64> {
    Some(u64::from_be_bytes(
        b.get(off..off.checked_add(8)?)?.try_into().ok()?,
    ))
}

/// Reads a big-endian u32 at `off`; `None` past the end.
pub(crate) fn be32(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_be_bytes(
        b.get(off..off.checked_add(4)?)?.try_into().ok()?,
    ))
}

/// Reads a big-endian u16 at `off`; `None` past the end.
pub(crate) fn be16(b: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_be_bytes(
        b.get(off..off.checked_add(2)?)?.try_into().ok()?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_types_round_trip_and_reserved_refused() {
        for v in 0u8..16 {
            match PageType::from_nibble(v) {
                Some(t) => assert_eq!(t.to_nibble(), v),
                None => assert!((5..=8).contains(&v), "nibble {v:#x}"),
            }
        }
        assert!(!PageType::XTab.has_data());
        assert!(PageType::PinnedTable(3).has_data());
    }

    #[test]
    fn pfn_entry_packs_type_in_top_nibble() {
        let e = PfnEntry {
            pfn: 0x1234,
            kind: PageType::XTab,
        };
        assert_eq!(e.to_u64(), Some(0xF000_0000_0000_1234));
        assert_eq!(PfnEntry::normal(1 << 52).to_u64(), None);
    }

    #[test]
    fn image_header_layout() {
        let b = ImageHeader::CURRENT.to_bytes();
        assert_eq!(&b[0..8], &[0xff; 8]);
        assert_eq!(&b[8..12], b"XENF");
        assert_eq!(&b[12..16], &[0, 0, 0, 3]);
        assert_eq!(&b[16..24], &[0; 8]);
    }
}
