//! The HVM context blob (`hvm/save.h`, `arch-x86/hvm/save.h`): what
//! `XEN_DOMCTL_gethvmcontext` returns and `XEN_DOMCTL_sethvmcontext` takes.
//!
//! The blob is a sequence of records, each an 8-byte descriptor (`typecode`,
//! `instance`, `length`) followed by `length` bytes: a `HEADER` record first,
//! an `END` record last. The blob may come from a guest-influenced place (a
//! peer's stream, a buffer Xen filled for a domain we do not trust), so
//! [`Context::parse`] checks every length against the buffer, the header's
//! magic and version, the record count, and that `END` closes the blob
//! exactly. Nothing here panics on any input. Records other than the
//! header, `CPU` and `END` are carried without being read, so their layouts
//! may differ between releases (`LAPIC` gained `pending_esr` in 4.21) and
//! the Xen that loads them checks them.

use zerocopy::FromBytes;

/// `HVM_FILE_MAGIC`: the header record's `magic`.
pub const HVM_FILE_MAGIC: u32 = 0x5438_1286;
/// `HVM_FILE_VERSION`: the header record's `version`.
pub const HVM_FILE_VERSION: u32 = 1;

/// Typecode of the `END` record (no body).
pub const CODE_END: u16 = 0;
/// Typecode of the `HEADER` record ([`SaveHeader`]).
pub const CODE_HEADER: u16 = 1;
/// Typecode of a vCPU's `CPU` record (`struct hvm_hw_cpu`), instance = vCPU id.
pub const CODE_CPU: u16 = 2;
/// Typecode of a vCPU's `LAPIC` record.
pub const CODE_LAPIC: u16 = 5;
/// Typecode of a vCPU's `LAPIC_REGS` record.
pub const CODE_LAPIC_REGS: u16 = 6;
/// Typecode of a vCPU's `MTRR` record.
pub const CODE_MTRR: u16 = 14;
/// One past the highest typecode Xen defines (`HVM_SAVE_CODE_MAX`; 20 in
/// every release of [`crate::domctl::RELEASES`]).
pub const CODE_MAX: u16 = 20;

/// Size of `struct hvm_hw_cpu` (Xen ≥ 4.7).
pub const HW_CPU_SIZE: usize = 1032;
/// Size of `struct hvm_hw_cpu_compat` (before `msr_tsc_aux` and `flags`).
pub const HW_CPU_COMPAT_SIZE: usize = 1016;
/// Offset of `rax` in a CPU record's body (both layouts).
pub const HW_CPU_RAX: usize = 512;
/// Offset of `rflags` in a CPU record's body.
pub const HW_CPU_RFLAGS: usize = 648;
/// Offset of `rip` in a CPU record's body.
pub const HW_CPU_RIP: usize = 640;
/// Offset of `cr3` in a CPU record's body.
pub const HW_CPU_CR3: usize = 672;

/// Most records a context may hold: far above what 128 vCPUs produce
/// (about ten per vCPU), low enough to bound every walk.
pub const MAX_RECORDS: usize = 4096;
/// Largest context accepted (Xen's own for 128 vCPUs is well under 1 MiB).
pub const MAX_CONTEXT_BYTES: usize = 4 << 20;

/// `struct hvm_save_descriptor`.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    zerocopy::FromBytes,
    zerocopy::IntoBytes,
    zerocopy::Immutable,
    zerocopy::KnownLayout,
)]
#[repr(C)]
pub struct SaveDescriptor {
    /// `HVM_SAVE_CODE(...)` of the record.
    pub typecode: u16,
    /// Which instance (vCPU id for per-vCPU records).
    pub instance: u16,
    /// Body bytes after this descriptor.
    pub length: u32,
}
crate::assert_layout!(
    SaveDescriptor,
    size = 8,
    typecode = 0,
    instance = 2,
    length = 4
);

/// `struct hvm_save_header`.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    zerocopy::FromBytes,
    zerocopy::IntoBytes,
    zerocopy::Immutable,
    zerocopy::KnownLayout,
)]
#[repr(C)]
pub struct SaveHeader {
    /// Must be [`HVM_FILE_MAGIC`].
    pub magic: u32,
    /// Must be [`HVM_FILE_VERSION`].
    pub version: u32,
    /// Xen changeset that saved it.
    pub changeset: u64,
    /// CPUID leaf 1 eax of the saving host.
    pub cpuid: u32,
    /// Guest TSC frequency in kHz.
    pub gtsc_khz: u32,
}
crate::assert_layout!(
    SaveHeader,
    size = 24,
    magic = 0,
    version = 4,
    changeset = 8,
    cpuid = 16,
    gtsc_khz = 20
);

const DESC: usize = core::mem::size_of::<SaveDescriptor>();

/// Why an HVM context blob was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContextError {
    /// The blob is larger than [`MAX_CONTEXT_BYTES`].
    TooLarge(usize),
    /// A descriptor or a record body runs past the end of the blob (at this offset).
    Truncated(usize),
    /// The first record is not a `HEADER` record.
    NoHeader,
    /// The `HEADER` record's length is not that of `struct hvm_save_header`.
    BadHeaderLength(u32),
    /// The header's magic is not `HVM_FILE_MAGIC`.
    BadMagic(u32),
    /// The header's version is not `HVM_FILE_VERSION`.
    BadVersion(u32),
    /// A second `HEADER` record (at this offset).
    DuplicateHeader(usize),
    /// The `END` record has a body.
    BadEndLength(u32),
    /// Bytes follow the `END` record (at this offset).
    TrailingBytes(usize),
    /// The blob ends without an `END` record.
    NoEnd,
    /// More than [`MAX_RECORDS`] records.
    TooManyRecords,
    /// A CPU record's length is neither of the two known layouts.
    BadCpuLength(u32),
    /// Two CPU records for the same vCPU.
    DuplicateCpu(u16),
    /// No CPU record for this vCPU.
    NoCpu(u16),
}

impl core::fmt::Display for ContextError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ContextError::TooLarge(n) => write!(f, "HVM context of {n} bytes is too large"),
            ContextError::Truncated(at) => write!(f, "HVM context truncated at byte {at}"),
            ContextError::NoHeader => write!(f, "HVM context does not start with a header record"),
            ContextError::BadHeaderLength(n) => {
                write!(f, "HVM context header record has length {n}")
            }
            ContextError::BadMagic(m) => write!(f, "HVM context magic {m:#x} is wrong"),
            ContextError::BadVersion(v) => write!(f, "HVM context version {v} is unknown"),
            ContextError::DuplicateHeader(at) => write!(f, "second header record at byte {at}"),
            ContextError::BadEndLength(n) => write!(f, "END record has length {n}"),
            ContextError::TrailingBytes(at) => write!(f, "bytes after the END record at byte {at}"),
            ContextError::NoEnd => write!(f, "HVM context has no END record"),
            ContextError::TooManyRecords => write!(f, "HVM context has too many records"),
            ContextError::BadCpuLength(n) => write!(f, "CPU record has length {n}"),
            ContextError::DuplicateCpu(i) => write!(f, "two CPU records for vCPU {i}"),
            ContextError::NoCpu(i) => write!(f, "no CPU record for vCPU {i}"),
        }
    }
}

/// One record of a parsed context.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record<'a> {
    /// `HVM_SAVE_CODE(...)`.
    pub typecode: u16,
    /// Instance (vCPU id for per-vCPU records).
    pub instance: u16,
    /// Offset of the body in the blob.
    pub offset: usize,
    /// The body.
    pub body: &'a [u8],
}

/// Reads the descriptor at `at`; `None` if it does not fit.
fn descriptor(bytes: &[u8], at: usize) -> Option<SaveDescriptor> {
    let end = at.checked_add(DESC)?;
    SaveDescriptor::read_from_bytes(bytes.get(at..end)?).ok()
}

/// A validated HVM context blob.
#[derive(Clone, Copy, Debug)]
pub struct Context<'a> {
    bytes: &'a [u8],
    header: SaveHeader,
    records: usize,
}

impl<'a> Context<'a> {
    /// Validates the whole blob: header first (magic, version), every record
    /// inside the buffer, CPU records of a known size and one per instance,
    /// `END` last with nothing after it.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, ContextError> {
        if bytes.len() > MAX_CONTEXT_BYTES {
            return Err(ContextError::TooLarge(bytes.len()));
        }
        let first = descriptor(bytes, 0).ok_or(ContextError::Truncated(0))?;
        if first.typecode != CODE_HEADER {
            return Err(ContextError::NoHeader);
        }
        if first.length as usize != core::mem::size_of::<SaveHeader>() {
            return Err(ContextError::BadHeaderLength(first.length));
        }
        let header = bytes
            .get(DESC..DESC + core::mem::size_of::<SaveHeader>())
            .and_then(|b| SaveHeader::read_from_bytes(b).ok())
            .ok_or(ContextError::Truncated(DESC))?;
        if header.magic != HVM_FILE_MAGIC {
            return Err(ContextError::BadMagic(header.magic));
        }
        if header.version != HVM_FILE_VERSION {
            return Err(ContextError::BadVersion(header.version));
        }
        // vCPU ids seen in CPU records, as a bitmap over the 16-bit instance.
        let mut seen = [0u64; 1024];
        let mut at = 0usize;
        let mut count = 0usize;
        loop {
            if count >= MAX_RECORDS {
                return Err(ContextError::TooManyRecords);
            }
            let d = match descriptor(bytes, at) {
                Some(d) => d,
                None if at == bytes.len() => return Err(ContextError::NoEnd),
                None => return Err(ContextError::Truncated(at)),
            };
            let body = at + DESC;
            let end = body
                .checked_add(d.length as usize)
                .filter(|&e| e <= bytes.len())
                .ok_or(ContextError::Truncated(at))?;
            count += 1;
            match d.typecode {
                CODE_HEADER if at != 0 => return Err(ContextError::DuplicateHeader(at)),
                CODE_END => {
                    if d.length != 0 {
                        return Err(ContextError::BadEndLength(d.length));
                    }
                    if end != bytes.len() {
                        return Err(ContextError::TrailingBytes(end));
                    }
                    return Ok(Context {
                        bytes,
                        header,
                        records: count,
                    });
                }
                CODE_CPU => {
                    let len = d.length as usize;
                    if len != HW_CPU_SIZE && len != HW_CPU_COMPAT_SIZE {
                        return Err(ContextError::BadCpuLength(d.length));
                    }
                    let (w, b) = (usize::from(d.instance) / 64, d.instance % 64);
                    // `seen` has 1024 words = 65536 bits: every u16 fits.
                    let word = seen
                        .get_mut(w)
                        .ok_or(ContextError::DuplicateCpu(d.instance))?;
                    if *word & (1 << b) != 0 {
                        return Err(ContextError::DuplicateCpu(d.instance));
                    }
                    *word |= 1 << b;
                }
                _ => {}
            }
            at = end;
        }
    }

    /// The header record.
    pub fn header(&self) -> SaveHeader {
        self.header
    }

    /// Number of records, `HEADER` and `END` included.
    pub fn record_count(&self) -> usize {
        self.records
    }

    /// The blob's length in bytes.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether the blob is empty (never, once parsed).
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The records in order, `HEADER` first and `END` last.
    pub fn records(&self) -> Records<'a> {
        Records {
            bytes: self.bytes,
            at: 0,
            left: self.records,
        }
    }

    /// Number of CPU records.
    pub fn cpu_count(&self) -> usize {
        self.records().filter(|r| r.typecode == CODE_CPU).count()
    }

    /// The CPU record of vCPU `instance`.
    pub fn cpu(&self, instance: u16) -> Result<Record<'a>, ContextError> {
        self.records()
            .find(|r| r.typecode == CODE_CPU && r.instance == instance)
            .ok_or(ContextError::NoCpu(instance))
    }

    /// A 64-bit register at `offset` (e.g. [`HW_CPU_RAX`]) of vCPU `instance`.
    pub fn cpu_reg(&self, instance: u16, offset: usize) -> Result<u64, ContextError> {
        let r = self.cpu(instance)?;
        read_u64(r.body, offset).ok_or(ContextError::Truncated(r.offset))
    }
}

fn read_u64(b: &[u8], off: usize) -> Option<u64> {
    let s = b.get(off..off.checked_add(8)?)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(s);
    Some(u64::from_le_bytes(a))
}

/// Validates `bytes` and sets a 64-bit register of vCPU `instance`'s CPU
/// record (e.g. `rax` := 1 to make a suspend hypercall return "cancelled").
pub fn set_cpu_reg(
    bytes: &mut [u8],
    instance: u16,
    offset: usize,
    value: u64,
) -> Result<(), ContextError> {
    let at = {
        let c = Context::parse(bytes)?;
        let r = c.cpu(instance)?;
        if offset.checked_add(8).is_none_or(|e| e > r.body.len()) {
            return Err(ContextError::Truncated(r.offset));
        }
        r.offset + offset
    };
    let dst = bytes
        .get_mut(at..at + 8)
        .ok_or(ContextError::Truncated(at))?;
    dst.copy_from_slice(&value.to_le_bytes());
    Ok(())
}

/// Iterator over the records of a validated [`Context`].
#[derive(Clone, Debug)]
pub struct Records<'a> {
    bytes: &'a [u8],
    at: usize,
    left: usize,
}

impl<'a> Iterator for Records<'a> {
    type Item = Record<'a>;

    fn next(&mut self) -> Option<Record<'a>> {
        if self.left == 0 {
            return None;
        }
        let d = descriptor(self.bytes, self.at)?;
        let body = self.at + DESC;
        let end = body.checked_add(d.length as usize)?;
        let r = Record {
            typecode: d.typecode,
            instance: d.instance,
            offset: body,
            body: self.bytes.get(body..end)?,
        };
        self.at = end;
        self.left -= 1;
        Some(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zerocopy::IntoBytes;

    fn rec(out: &mut Vec<u8>, typecode: u16, instance: u16, body: &[u8]) {
        let d = SaveDescriptor {
            typecode,
            instance,
            length: body.len() as u32,
        };
        out.extend_from_slice(d.as_bytes());
        out.extend_from_slice(body);
    }

    fn header() -> Vec<u8> {
        SaveHeader {
            magic: HVM_FILE_MAGIC,
            version: HVM_FILE_VERSION,
            changeset: 0,
            cpuid: 0x806f8,
            gtsc_khz: 2_000_000,
        }
        .as_bytes()
        .to_vec()
    }

    fn cpu(rax: u64) -> Vec<u8> {
        let mut b = vec![0u8; HW_CPU_SIZE];
        b[HW_CPU_RAX..HW_CPU_RAX + 8].copy_from_slice(&rax.to_le_bytes());
        b
    }

    /// header, CPU 0, LAPIC 0, CPU 1, END.
    fn sample() -> Vec<u8> {
        let mut v = Vec::new();
        rec(&mut v, CODE_HEADER, 0, &header());
        rec(&mut v, CODE_CPU, 0, &cpu(29));
        rec(&mut v, CODE_LAPIC, 0, &[1, 2, 3, 4]);
        rec(&mut v, CODE_CPU, 1, &cpu(7));
        rec(&mut v, CODE_END, 0, &[]);
        v
    }

    #[test]
    fn parses_a_well_formed_context() {
        let v = sample();
        let c = Context::parse(&v).unwrap();
        assert_eq!(c.record_count(), 5);
        assert_eq!(c.cpu_count(), 2);
        assert_eq!(c.header().gtsc_khz, 2_000_000);
        assert_eq!(c.cpu_reg(0, HW_CPU_RAX), Ok(29));
        assert_eq!(c.cpu_reg(1, HW_CPU_RAX), Ok(7));
        assert_eq!(c.cpu(2), Err(ContextError::NoCpu(2)));
        let codes: Vec<_> = c.records().map(|r| (r.typecode, r.instance)).collect();
        assert_eq!(codes, [(1, 0), (2, 0), (5, 0), (2, 1), (0, 0)]);
    }

    #[test]
    fn sets_rax_of_one_vcpu_only() {
        let mut v = sample();
        set_cpu_reg(&mut v, 0, HW_CPU_RAX, 1).unwrap();
        let c = Context::parse(&v).unwrap();
        assert_eq!(c.cpu_reg(0, HW_CPU_RAX), Ok(1));
        assert_eq!(c.cpu_reg(1, HW_CPU_RAX), Ok(7));
        assert_eq!(
            set_cpu_reg(&mut v, 3, HW_CPU_RAX, 1),
            Err(ContextError::NoCpu(3))
        );
        assert!(set_cpu_reg(&mut v, 0, HW_CPU_SIZE - 4, 1).is_err());
        assert!(set_cpu_reg(&mut v, 0, usize::MAX - 3, 1).is_err());
    }

    #[test]
    fn rejects_malformed_contexts() {
        let good = sample();
        assert_eq!(Context::parse(&[]).unwrap_err(), ContextError::Truncated(0));
        // Every strict prefix is refused, never accepted or panicking.
        for n in 0..good.len() {
            assert!(Context::parse(&good[..n]).is_err(), "prefix {n} accepted");
        }
        let mut v = good.clone();
        v[8] ^= 1; // magic
        assert!(matches!(Context::parse(&v), Err(ContextError::BadMagic(_))));
        let mut v = good.clone();
        v[12] = 2; // version
        assert_eq!(Context::parse(&v).unwrap_err(), ContextError::BadVersion(2));
        let mut v = good.clone();
        v[0] = 2; // first record not a header
        assert_eq!(Context::parse(&v).unwrap_err(), ContextError::NoHeader);
        let mut v = good.clone();
        v.push(0); // trailing byte
        assert!(matches!(
            Context::parse(&v),
            Err(ContextError::TrailingBytes(_))
        ));
        // A huge length in the LAPIC record.
        let mut v = good.clone();
        let lapic = 8 + 24 + 8 + HW_CPU_SIZE;
        v[lapic + 4..lapic + 8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            Context::parse(&v),
            Err(ContextError::Truncated(_))
        ));
        // A CPU record of the wrong size.
        let mut v = Vec::new();
        rec(&mut v, CODE_HEADER, 0, &header());
        rec(&mut v, CODE_CPU, 0, &[0u8; 520]);
        rec(&mut v, CODE_END, 0, &[]);
        assert_eq!(
            Context::parse(&v).unwrap_err(),
            ContextError::BadCpuLength(520)
        );
        // Two CPU records for one vCPU.
        let mut v = Vec::new();
        rec(&mut v, CODE_HEADER, 0, &header());
        rec(&mut v, CODE_CPU, 3, &cpu(0));
        rec(&mut v, CODE_CPU, 3, &cpu(0));
        rec(&mut v, CODE_END, 0, &[]);
        assert_eq!(
            Context::parse(&v).unwrap_err(),
            ContextError::DuplicateCpu(3)
        );
        // A second header.
        let mut v = Vec::new();
        rec(&mut v, CODE_HEADER, 0, &header());
        rec(&mut v, CODE_HEADER, 0, &header());
        rec(&mut v, CODE_END, 0, &[]);
        assert!(matches!(
            Context::parse(&v),
            Err(ContextError::DuplicateHeader(_))
        ));
        // END with a body.
        let mut v = Vec::new();
        rec(&mut v, CODE_HEADER, 0, &header());
        rec(&mut v, CODE_END, 0, &[0]);
        assert_eq!(
            Context::parse(&v).unwrap_err(),
            ContextError::BadEndLength(1)
        );
        // No END.
        let mut v = Vec::new();
        rec(&mut v, CODE_HEADER, 0, &header());
        assert_eq!(Context::parse(&v).unwrap_err(), ContextError::NoEnd);
    }

    #[test]
    fn record_count_is_bounded() {
        let mut v = Vec::new();
        rec(&mut v, CODE_HEADER, 0, &header());
        for _ in 0..MAX_RECORDS {
            rec(&mut v, CODE_LAPIC, 0, &[]);
        }
        rec(&mut v, CODE_END, 0, &[]);
        assert_eq!(
            Context::parse(&v).unwrap_err(),
            ContextError::TooManyRecords
        );
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        // A small deterministic fuzz: mutate the sample at pseudo-random
        // positions; parse must return, never panic.
        let base = sample();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..20_000 {
            let mut v = base.clone();
            for _ in 0..4 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let i = (x as usize) % v.len();
                v[i] = (x >> 32) as u8;
            }
            x ^= x << 13;
            let cut = (x as usize) % (v.len() + 1);
            let _ = Context::parse(&v[..cut]).map(|c| (c.cpu_count(), c.cpu_reg(0, HW_CPU_RAX)));
            let _ = set_cpu_reg(&mut v, 0, HW_CPU_RAX, 1);
        }
    }
}
