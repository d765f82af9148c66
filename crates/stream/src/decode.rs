//! Strict, incremental (push/pull) decoder of the libxc stream.
//!
//! Feed bytes as they arrive and pull events:
//!
//! ```
//! # use depmig_stream::{Decoder, Event, Limits};
//! # fn handle(_: Event<'_>) {}
//! let mut dec = Decoder::new(Limits::default());
//! let segment: &[u8] = &[0xff; 10]; // whatever the socket gave
//! let mut input = segment;
//! while let Some(ev) = dec.next(&mut input).unwrap() {
//!     handle(ev);
//! }
//! // `input` is empty now unless END was reached.
//! ```
//!
//! The decoder owns one staging buffer and one pfn array, both allocated by
//! [`Decoder::new`] from [`Limits`]; it never allocates afterwards. PAGE_DATA
//! records are not buffered whole: after the pfn array is read and checked,
//! each page is handed out on its own ([`Event::Page`]), so memory use does
//! not depend on the batch's data size. Once an error is returned the decoder
//! is poisoned and returns the same error again.

use alloc::vec::Vec;

use crate::order::{OrderChecker, OrderError};
use crate::wire::*;

/// Caps the decoder applies whatever the input says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest body accepted for a record other than PAGE_DATA (HVM_CONTEXT
    /// is the large one). Clamped to [`Limits::ABS_MAX_RECORD_BODY`].
    pub max_record_body: u32,
    /// Largest PAGE_DATA count. Clamped to [`Limits::ABS_MAX_BATCH`].
    pub max_batch: u32,
    /// Largest pfn accepted (e.g. the destination's p2m size minus one).
    pub max_pfn: u64,
}

impl Limits {
    /// Hard ceiling for `max_record_body` (16 MiB).
    pub const ABS_MAX_RECORD_BODY: u32 = 16 << 20;
    /// Hard ceiling for `max_batch`.
    pub const ABS_MAX_BATCH: u32 = 1 << 16;

    fn clamped(self) -> Limits {
        Limits {
            max_record_body: self.max_record_body.min(Self::ABS_MAX_RECORD_BODY),
            max_batch: self.max_batch.clamp(1, Self::ABS_MAX_BATCH),
            max_pfn: self.max_pfn.min(PFN_MASK),
        }
    }
}

impl Default for Limits {
    /// 1 MiB records, libxc's 1024-page batches, any 52-bit pfn.
    fn default() -> Self {
        Limits {
            max_record_body: 1 << 20,
            max_batch: MAX_BATCH,
            max_pfn: PFN_MASK,
        }
    }
}

/// Why a stream was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// The image header marker is not all ones (legacy or foreign image).
    BadMarker,
    /// The image header id is not "XENF".
    BadId(u32),
    /// The image version is not 3.
    UnsupportedVersion(u32),
    /// The image is big-endian; depmig reads little-endian (x86) images only.
    BigEndian,
    /// Reserved option bits or reserved image header fields are not zero.
    ReservedHeaderBits,
    /// The domain type is not x86 HVM (which libxc uses for PVH guests too).
    UnsupportedDomainType(u32),
    /// The page shift is not 12.
    UnsupportedPageShift(u16),
    /// The domain header's reserved field is not zero.
    ReservedDomainHeaderBits,
    /// A record broke the order rules.
    Order(OrderError),
    /// A record body is longer than the configured cap.
    RecordTooLong {
        /// Record type.
        rtype: u32,
        /// Announced body length.
        len: u32,
    },
    /// A record's length is wrong for its type.
    BadLength {
        /// Record type.
        rtype: u32,
        /// Announced body length.
        len: u32,
    },
    /// Padding after a record body is not zero.
    NonZeroPadding,
    /// A reserved field inside a record body is not zero.
    ReservedRecordBits(u32),
    /// PAGE_DATA with a count of zero.
    EmptyPageData,
    /// PAGE_DATA count above the batch cap.
    BatchTooLarge(u32),
    /// A pfn entry has reserved bits 52–59 set.
    PfnReservedBits(u64),
    /// A pfn entry carries a reserved page type.
    BadPageType(u8),
    /// A pfn is above the configured maximum.
    PfnOutOfRange(u64),
    /// PAGE_DATA length disagrees with its count and page types.
    PageDataLength {
        /// Length the pfn array implies.
        expected: u64,
        /// Announced length.
        got: u32,
    },
}

impl From<OrderError> for DecodeError {
    fn from(e: OrderError) -> Self {
        DecodeError::Order(e)
    }
}

/// A decoded record other than PAGE_DATA; bodies borrow the decoder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Record<'a> {
    /// END: the stream is complete.
    End,
    /// STATIC_DATA_END.
    StaticDataEnd,
    /// VERIFY: pages that follow are a resend for checking.
    Verify,
    /// CHECKPOINT: the stream so far is one consistent state.
    Checkpoint,
    /// X86_TSC_INFO.
    TscInfo(TscInfo),
    /// HVM_CONTEXT blob.
    HvmContext(&'a [u8]),
    /// HVM_PARAMS.
    HvmParams(HvmParams<'a>),
    /// X86_CPUID_POLICY.
    CpuidPolicy(CpuidPolicy<'a>),
    /// X86_MSR_POLICY.
    MsrPolicy(MsrPolicy<'a>),
    /// A record with bit 31 set, passed through unparsed.
    Optional {
        /// Record type.
        rtype: u32,
        /// Body without padding.
        body: &'a [u8],
    },
}

/// A checked HVM_PARAMS body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HvmParams<'a>(&'a [u8]);

impl<'a> HvmParams<'a> {
    /// Number of parameters.
    pub fn len(&self) -> usize {
        self.0.len().saturating_sub(8) / HVM_PARAM_LEN
    }
    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The parameters in stream order.
    pub fn iter(&self) -> impl Iterator<Item = HvmParam> + 'a {
        self.0
            .get(8..)
            .unwrap_or(&[])
            .chunks_exact(HVM_PARAM_LEN)
            .map(|c| HvmParam {
                index: le64(c, 0).unwrap_or(0),
                value: le64(c, 8).unwrap_or(0),
            })
    }
}

/// A checked X86_CPUID_POLICY body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuidPolicy<'a>(&'a [u8]);

impl<'a> CpuidPolicy<'a> {
    /// The raw body (array of `xen_cpuid_leaf_t`), as Xen's domctl takes it.
    pub fn raw(&self) -> &'a [u8] {
        self.0
    }
    /// The leaves in stream order.
    pub fn iter(&self) -> impl Iterator<Item = CpuidLeaf> + 'a {
        self.0.chunks_exact(CPUID_LEAF_LEN).map(|c| CpuidLeaf {
            leaf: le32(c, 0).unwrap_or(0),
            subleaf: le32(c, 4).unwrap_or(0),
            a: le32(c, 8).unwrap_or(0),
            b: le32(c, 12).unwrap_or(0),
            c: le32(c, 16).unwrap_or(0),
            d: le32(c, 20).unwrap_or(0),
        })
    }
}

/// A checked X86_MSR_POLICY body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MsrPolicy<'a>(&'a [u8]);

impl<'a> MsrPolicy<'a> {
    /// The raw body (array of `xen_msr_entry_t`).
    pub fn raw(&self) -> &'a [u8] {
        self.0
    }
    /// The entries in stream order.
    pub fn iter(&self) -> impl Iterator<Item = MsrEntry> + 'a {
        self.0.chunks_exact(MSR_ENTRY_LEN).map(|c| MsrEntry {
            idx: le32(c, 0).unwrap_or(0),
            flags: le32(c, 4).unwrap_or(0),
            val: le64(c, 8).unwrap_or(0),
        })
    }
}

/// What the decoder produced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// The image header (checked).
    ImageHeader(ImageHeader),
    /// The domain header (checked).
    DomainHeader(DomainHeader),
    /// A PAGE_DATA record starts; `count` [`Event::Page`]s follow.
    PageData {
        /// Number of pfn entries.
        count: u32,
    },
    /// One pfn entry of the current PAGE_DATA record, with its page when the
    /// type carries data (`data.len() == PAGE_SIZE`).
    Page {
        /// The entry.
        entry: PfnEntry,
        /// The page contents, if any.
        data: Option<&'a [u8]>,
    },
    /// Any other record.
    Record(Record<'a>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    ImageHeader,
    DomainHeader,
    RecordHeader,
    PageHeader { len: u32 },
    Pfns { len: u32, count: u32 },
    Pages { idx: u32 },
    Body { rtype: u32, len: u32 },
    Checkpointed,
    Done,
}

/// The incremental decoder; see the module documentation.
#[derive(Debug)]
pub struct Decoder {
    limits: Limits,
    state: State,
    buf: Vec<u8>,
    release: bool,
    pfns: Vec<PfnEntry>,
    order: OrderChecker,
    failed: Option<DecodeError>,
    consumed: u64,
    domain: Option<DomainHeader>,
}

impl Decoder {
    /// A decoder expecting an image header, with buffers sized by `limits`.
    pub fn new(limits: Limits) -> Self {
        let limits = limits.clamped();
        let body_cap = limits.max_record_body as usize + REC_ALIGN;
        let pfn_cap = limits.max_batch as usize * 8;
        let cap = body_cap.max(pfn_cap).max(PAGE_SIZE).max(IHDR_LEN);
        Decoder {
            limits,
            state: State::ImageHeader,
            buf: Vec::with_capacity(cap),
            release: false,
            pfns: Vec::with_capacity(limits.max_batch as usize),
            order: OrderChecker::new(),
            failed: None,
            consumed: 0,
            domain: None,
        }
    }

    /// Whether END was decoded.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Whether the decoder stopped after a CHECKPOINT record; an outer
    /// layer (libxl) takes the stream back until [`Decoder::resume`].
    pub fn is_checkpointed(&self) -> bool {
        self.state == State::Checkpointed
    }

    /// Continues with the next checkpoint's records after a CHECKPOINT.
    pub fn resume(&mut self) {
        if self.state == State::Checkpointed {
            self.state = State::RecordHeader;
        }
    }

    /// Bytes consumed so far (the offset of the next unread byte).
    pub fn consumed(&self) -> u64 {
        self.consumed
    }

    /// The domain header, once read.
    pub fn domain_header(&self) -> Option<DomainHeader> {
        self.domain
    }

    /// Bytes of staging buffer allocated (fixed at construction).
    pub fn buffer_capacity(&self) -> usize {
        self.buf.capacity() + self.pfns.capacity() * core::mem::size_of::<PfnEntry>()
    }

    /// Copies from `input` until the staging buffer holds `need` bytes.
    fn fill(&mut self, input: &mut &[u8], need: usize) -> bool {
        let have = self.buf.len();
        if have >= need {
            return true;
        }
        let take = (need - have).min(input.len());
        // PANICS: `take <= input.len()` by the `min` above.
        let (head, tail) = input.split_at(take);
        // Never grows past the capacity reserved in `new`: every `need` was
        // checked against the limits that sized it.
        self.buf.extend_from_slice(head);
        *input = tail;
        self.consumed += take as u64;
        self.buf.len() == need
    }

    /// Decodes the next event from `input`, consuming what it uses.
    /// `Ok(None)` means more input is needed (or END was reached; see
    /// [`Decoder::is_done`]); bytes after END are left in `input`.
    pub fn next<'s>(&'s mut self, input: &mut &[u8]) -> Result<Option<Event<'s>>, DecodeError> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        if self.release {
            self.buf.clear();
            self.release = false;
        }
        match self.step(input) {
            Ok(Some(ev)) => Ok(Some(self.materialise(ev))),
            Ok(None) => Ok(None),
            Err(e) => {
                self.failed = Some(e);
                Err(e)
            }
        }
    }

    /// Turns an internal event into one that borrows the staging buffer.
    fn materialise(&mut self, ev: Pending) -> Event<'_> {
        self.release = true;
        let buf = self.buf.as_slice();
        match ev {
            Pending::Ready(ev) => ev,
            Pending::Page(entry, with_data) => Event::Page {
                entry,
                data: if with_data { Some(buf) } else { None },
            },
            Pending::Body(rtype, len) => {
                let body = buf.get(..len as usize).unwrap_or(&[]);
                Event::Record(match rtype {
                    rec::HVM_CONTEXT => Record::HvmContext(body),
                    rec::HVM_PARAMS => Record::HvmParams(HvmParams(body)),
                    rec::X86_CPUID_POLICY => Record::CpuidPolicy(CpuidPolicy(body)),
                    rec::X86_MSR_POLICY => Record::MsrPolicy(MsrPolicy(body)),
                    rec::X86_TSC_INFO => Record::TscInfo(TscInfo {
                        mode: le32(body, 0).unwrap_or(0),
                        khz: le32(body, 4).unwrap_or(0),
                        nsec: le64(body, 8).unwrap_or(0),
                        incarnation: le32(body, 16).unwrap_or(0),
                    }),
                    rec::END => Record::End,
                    rec::STATIC_DATA_END => Record::StaticDataEnd,
                    rec::VERIFY => Record::Verify,
                    rec::CHECKPOINT => Record::Checkpoint,
                    _ => Record::Optional { rtype, body },
                })
            }
        }
    }

    fn step(&mut self, input: &mut &[u8]) -> Result<Option<Pending>, DecodeError> {
        loop {
            match self.state {
                State::Done | State::Checkpointed => return Ok(None),
                State::ImageHeader => {
                    if !self.fill(input, IHDR_LEN) {
                        return Ok(None);
                    }
                    let h = parse_image_header(&self.buf)?;
                    self.buf.clear();
                    self.state = State::DomainHeader;
                    return Ok(Some(Pending::Ready(Event::ImageHeader(h))));
                }
                State::DomainHeader => {
                    if !self.fill(input, DHDR_LEN) {
                        return Ok(None);
                    }
                    let d = parse_domain_header(&self.buf)?;
                    self.buf.clear();
                    self.domain = Some(d);
                    self.state = State::RecordHeader;
                    return Ok(Some(Pending::Ready(Event::DomainHeader(d))));
                }
                State::RecordHeader => {
                    if !self.fill(input, RHDR_LEN) {
                        return Ok(None);
                    }
                    let rtype = le32(&self.buf, 0).unwrap_or(0);
                    let len = le32(&self.buf, 4).unwrap_or(0);
                    self.buf.clear();
                    self.order.accept(rtype)?;
                    self.state = self.record_state(rtype, len)?;
                }
                State::PageHeader { len } => {
                    if !self.fill(input, 8) {
                        return Ok(None);
                    }
                    let count = le32(&self.buf, 0).unwrap_or(0);
                    let reserved = le32(&self.buf, 4).unwrap_or(0);
                    self.buf.clear();
                    if reserved != 0 {
                        return Err(DecodeError::ReservedRecordBits(rec::PAGE_DATA));
                    }
                    if count == 0 {
                        return Err(DecodeError::EmptyPageData);
                    }
                    if count > self.limits.max_batch {
                        return Err(DecodeError::BatchTooLarge(count));
                    }
                    // The pfn array alone must fit in the announced length.
                    if u64::from(len) < 8 + u64::from(count) * 8 {
                        return Err(DecodeError::PageDataLength {
                            expected: 8 + u64::from(count) * 8,
                            got: len,
                        });
                    }
                    self.state = State::Pfns { len, count };
                }
                State::Pfns { len, count } => {
                    if !self.fill(input, count as usize * 8) {
                        return Ok(None);
                    }
                    self.pfns.clear();
                    let mut with_data: u64 = 0;
                    for c in self.buf.chunks_exact(8) {
                        let raw = le64(c, 0).unwrap_or(0);
                        if raw & PFN_RESERVED_MASK != 0 {
                            return Err(DecodeError::PfnReservedBits(raw));
                        }
                        let nib = (raw >> PFN_TYPE_SHIFT) as u8;
                        let kind =
                            PageType::from_nibble(nib).ok_or(DecodeError::BadPageType(nib))?;
                        let pfn = raw & PFN_MASK;
                        if pfn > self.limits.max_pfn {
                            return Err(DecodeError::PfnOutOfRange(pfn));
                        }
                        if kind.has_data() {
                            with_data += 1;
                        }
                        if self.pfns.len() < self.pfns.capacity() {
                            self.pfns.push(PfnEntry { pfn, kind });
                        }
                    }
                    self.buf.clear();
                    let expected = 8 + u64::from(count) * 8 + with_data * PAGE_SIZE as u64;
                    if expected != u64::from(len) {
                        return Err(DecodeError::PageDataLength { expected, got: len });
                    }
                    self.state = State::Pages { idx: 0 };
                    return Ok(Some(Pending::Ready(Event::PageData { count })));
                }
                State::Pages { idx } => {
                    let Some(&entry) = self.pfns.get(idx as usize) else {
                        self.state = State::RecordHeader;
                        continue;
                    };
                    if entry.kind.has_data() && !self.fill(input, PAGE_SIZE) {
                        return Ok(None);
                    }
                    self.state = State::Pages { idx: idx + 1 };
                    return Ok(Some(Pending::Page(entry, entry.kind.has_data())));
                }
                State::Body { rtype, len } => {
                    let pad = padding(len as usize);
                    if !self.fill(input, len as usize + pad) {
                        return Ok(None);
                    }
                    // PANICS: `fill` returned true, so `buf.len() == len + pad`.
                    let (body, tail) = self.buf.split_at(len as usize);
                    if tail.iter().any(|&b| b != 0) {
                        return Err(DecodeError::NonZeroPadding);
                    }
                    check_body(rtype, body)?;
                    self.state = match rtype {
                        rec::END => State::Done,
                        rec::CHECKPOINT => State::Checkpointed,
                        _ => State::RecordHeader,
                    };
                    return Ok(Some(Pending::Body(rtype, len)));
                }
            }
        }
    }

    /// Length checks that need only the header, then the next state.
    fn record_state(&self, rtype: u32, len: u32) -> Result<State, DecodeError> {
        let bad = DecodeError::BadLength { rtype, len };
        match rtype {
            rec::PAGE_DATA => {
                if len < 8 {
                    return Err(bad);
                }
                return Ok(State::PageHeader { len });
            }
            rec::END | rec::STATIC_DATA_END | rec::VERIFY | rec::CHECKPOINT if len != 0 => {
                return Err(bad)
            }
            rec::X86_TSC_INFO if len as usize != TSC_INFO_LEN => return Err(bad),
            _ => {}
        }
        if len > self.limits.max_record_body {
            return Err(DecodeError::RecordTooLong { rtype, len });
        }
        Ok(State::Body { rtype, len })
    }
}

/// An event whose borrowed part is still to be attached.
enum Pending {
    Ready(Event<'static>),
    Page(PfnEntry, bool),
    Body(u32, u32),
}

fn parse_image_header(b: &[u8]) -> Result<ImageHeader, DecodeError> {
    if be64(b, 0) != Some(IHDR_MARKER) {
        return Err(DecodeError::BadMarker);
    }
    let id = be32(b, 8).unwrap_or(0);
    if id != IHDR_ID {
        return Err(DecodeError::BadId(id));
    }
    let version = be32(b, 12).unwrap_or(0);
    if version != IHDR_VERSION {
        return Err(DecodeError::UnsupportedVersion(version));
    }
    let options = be16(b, 16).unwrap_or(0);
    if options & IHDR_OPT_BIG_ENDIAN != 0 {
        return Err(DecodeError::BigEndian);
    }
    if options != 0 || be16(b, 18) != Some(0) || be32(b, 20) != Some(0) {
        return Err(DecodeError::ReservedHeaderBits);
    }
    Ok(ImageHeader { version, options })
}

fn parse_domain_header(b: &[u8]) -> Result<DomainHeader, DecodeError> {
    let t = le32(b, 0).unwrap_or(0);
    let domain_type = match DomainType::from_u32(t) {
        // libxc writes x86 HVM for HVM and PVH guests alike, and Xen's
        // restorer refuses any other type, so depmig does too.
        Some(d @ DomainType::X86Hvm) => d,
        _ => return Err(DecodeError::UnsupportedDomainType(t)),
    };
    let page_shift = le16(b, 4).unwrap_or(0);
    if page_shift != PAGE_SHIFT {
        return Err(DecodeError::UnsupportedPageShift(page_shift));
    }
    if le16(b, 6) != Some(0) {
        return Err(DecodeError::ReservedDomainHeaderBits);
    }
    Ok(DomainHeader {
        domain_type,
        page_shift,
        xen_major: le32(b, 8).unwrap_or(0),
        xen_minor: le32(b, 12).unwrap_or(0),
    })
}

/// Per-type body checks once the whole body is in hand.
fn check_body(rtype: u32, body: &[u8]) -> Result<(), DecodeError> {
    let len = body.len() as u32;
    let bad = DecodeError::BadLength { rtype, len };
    match rtype {
        rec::X86_TSC_INFO if le32(body, 20) != Some(0) => {
            return Err(DecodeError::ReservedRecordBits(rtype));
        }
        rec::HVM_CONTEXT if body.is_empty() => {
            return Err(bad);
        }
        rec::HVM_PARAMS => {
            let count = le32(body, 0).ok_or(bad)?;
            if le32(body, 4) != Some(0) {
                return Err(DecodeError::ReservedRecordBits(rtype));
            }
            if 8 + u64::from(count) * HVM_PARAM_LEN as u64 != body.len() as u64 {
                return Err(bad);
            }
        }
        rec::X86_CPUID_POLICY
            if (body.is_empty() || !body.len().is_multiple_of(CPUID_LEAF_LEN)) =>
        {
            return Err(bad);
        }
        rec::X86_MSR_POLICY if (body.is_empty() || !body.len().is_multiple_of(MSR_ENTRY_LEN)) => {
            return Err(bad);
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::Encoder;

    fn tiny_stream() -> Vec<u8> {
        let mut out = Vec::new();
        let mut e = Encoder::new();
        e.headers(
            &mut out,
            &DomainHeader {
                domain_type: DomainType::X86Hvm,
                page_shift: 12,
                xen_major: 4,
                xen_minor: 17,
            },
        )
        .unwrap();
        e.static_data_end(&mut out).unwrap();
        let page = [7u8; PAGE_SIZE];
        e.page_data(
            &mut out,
            &[
                PfnEntry::normal(3),
                PfnEntry {
                    pfn: 9,
                    kind: PageType::XTab,
                },
            ],
            &[&page],
        )
        .unwrap();
        e.hvm_context(&mut out, &[1, 2, 3]).unwrap();
        e.end(&mut out).unwrap();
        out
    }

    fn collect(dec: &mut Decoder, mut input: &[u8]) -> Result<Vec<String>, DecodeError> {
        let mut v = Vec::new();
        while let Some(ev) = dec.next(&mut input)? {
            v.push(match ev {
                Event::Page { entry, data } => {
                    format!("page {} {}", entry.pfn, data.map_or(0, |d| d[0]))
                }
                other => format!("{other:?}"),
            });
        }
        Ok(v)
    }

    #[test]
    fn byte_at_a_time_equals_whole() {
        let s = tiny_stream();
        let whole = collect(&mut Decoder::new(Limits::default()), &s).unwrap();
        let mut dec = Decoder::new(Limits::default());
        let mut split = Vec::new();
        for b in s.chunks(1) {
            split.extend(collect(&mut dec, b).unwrap());
        }
        assert_eq!(whole, split);
        assert!(dec.is_done());
        assert!(whole.iter().any(|e| e == "page 3 7"));
        assert!(whole.iter().any(|e| e == "page 9 0"));
        assert_eq!(whole.last().map(String::as_str), Some("Record(End)"));
    }

    #[test]
    fn trailing_bytes_left_unconsumed() {
        let mut s = tiny_stream();
        let n = s.len();
        s.extend_from_slice(b"tail");
        let mut dec = Decoder::new(Limits::default());
        let mut input = s.as_slice();
        while dec.next(&mut input).unwrap().is_some() {}
        assert_eq!(input, b"tail");
        assert_eq!(dec.consumed(), n as u64);
    }

    #[test]
    fn oversized_record_refused_before_buffering() {
        let mut s = tiny_stream();
        let mut dec = Decoder::new(Limits {
            max_record_body: 2,
            ..Limits::default()
        });
        let err = collect(&mut dec, &s).unwrap_err();
        assert_eq!(
            err,
            DecodeError::RecordTooLong {
                rtype: rec::HVM_CONTEXT,
                len: 3
            }
        );
        // Poisoned: the same error again.
        s.clear();
        assert_eq!(collect(&mut dec, &s).unwrap_err(), err);
    }
}
