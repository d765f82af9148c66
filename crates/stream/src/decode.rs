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
//!
//! depmig's packed page record ([`crate::packed`]) is read only after
//! [`Decoder::set_codec`] accepted it (the handshake agreed on it); its
//! pages come out as [`Event::Page`]s like PAGE_DATA's, decompressed into
//! one page buffer of the decoder's, so a consumer cannot tell them apart.
//!
//! depmig's delta record ([`crate::delta`]) is read only after
//! [`Decoder::set_delta`] accepted it; each of its pages comes out as an
//! [`Event::Delta`] holding a whole-page XOR mask, checked and decoded into
//! the same page buffer: the consumer applies it to the frame it holds.

use alloc::vec;
use alloc::vec::Vec;

use crate::delta::{self, DeltaError};
use crate::order::{OrderChecker, OrderError};
use crate::packed::{
    decompress_page, Codec, DescError, PageDesc, PageEncoding, PageTally, DESC_LEN, MAX_PAYLOAD,
};
use crate::wire::*;

/// What a zero page of a packed record decodes to.
static ZERO_PAGE: [u8; PAGE_SIZE] = [0; PAGE_SIZE];

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
    /// A depmig extension record the handshake did not agree on.
    NotNegotiated(u32),
    /// A packed page's descriptor names an unknown encoding, or a length
    /// its encoding does not allow.
    BadPageDescriptor(u32),
    /// A packed page's LZ4 block is malformed or does not make exactly
    /// one page.
    BadCompressedPage(u64),
    /// A delta page's descriptor or runs are malformed, or its runs go
    /// past the end of the page.
    BadDeltaPage {
        /// The page's pfn (0 for a descriptor, read before the pages).
        pfn: u64,
        /// What was wrong.
        why: DeltaError,
    },
    /// A delta record's entry is not a normal page.
    DeltaPageType(u8),
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
    /// One page of a delta record (within a [`Event::PageData`] like any
    /// other): the frame's new contents are its previous contents XOR
    /// `mask` (`mask.len() == PAGE_SIZE`).
    Delta {
        /// The entry (always a normal page).
        entry: PfnEntry,
        /// The XOR to apply.
        mask: &'a [u8],
    },
    /// Any other record.
    Record(Record<'a>),
}

/// Which page record is being read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PageRec {
    /// Xen's PAGE_DATA.
    Plain,
    /// [`rec::DEPMIG_PACKED_PAGES`].
    Packed,
    /// [`rec::DEPMIG_DELTA_PAGES`].
    Delta,
}

impl PageRec {
    fn rtype(self) -> u32 {
        match self {
            PageRec::Plain => rec::PAGE_DATA,
            PageRec::Packed => rec::DEPMIG_PACKED_PAGES,
            PageRec::Delta => rec::DEPMIG_DELTA_PAGES,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    ImageHeader,
    DomainHeader,
    RecordHeader,
    PageHeader {
        len: u32,
        kind: PageRec,
    },
    Pfns {
        len: u32,
        count: u32,
        kind: PageRec,
    },
    DeltaDescs {
        len: u32,
        count: u32,
    },
    DeltaPages {
        idx: u32,
        pad: u8,
    },
    Pages {
        idx: u32,
    },
    Descs {
        len: u32,
        count: u32,
        with_data: u32,
    },
    PackedPages {
        idx: u32,
        desc: u32,
        pad: u8,
    },
    PackedPad {
        pad: u8,
    },
    Body {
        rtype: u32,
        len: u32,
    },
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
    codec: Codec,
    descs: Vec<PageDesc>,
    /// Whether the delta record is accepted.
    delta: bool,
    /// One delta record's payload lengths.
    delta_lens: Vec<u16>,
    /// A decompressed page of a packed record, or a delta's XOR mask.
    page: Vec<u8>,
    tally: PageTally,
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
            codec: Codec::Raw,
            descs: Vec::with_capacity(limits.max_batch as usize),
            delta: false,
            delta_lens: Vec::with_capacity(limits.max_batch as usize),
            page: vec![0; PAGE_SIZE],
            tally: PageTally::default(),
        }
    }

    /// Accepts depmig's packed page record when `codec` is
    /// [`Codec::Lz4`]: what the handshake agreed on, before the stream
    /// starts. Without it the record is refused
    /// ([`DecodeError::NotNegotiated`]).
    pub fn set_codec(&mut self, codec: Codec) {
        self.codec = codec;
    }

    /// The codec accepted.
    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// Accepts depmig's delta record when `on`: what the handshake agreed
    /// on ([`crate::negotiated_delta`]), before the stream starts. Without
    /// it the record is refused ([`DecodeError::NotNegotiated`]).
    pub fn set_delta(&mut self, on: bool) {
        self.delta = on;
    }

    /// Whether the delta record is accepted.
    pub fn delta(&self) -> bool {
        self.delta
    }

    /// How the pages of packed records came so far.
    pub fn tally(&self) -> PageTally {
        self.tally
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
        self.buf.capacity()
            + self.pfns.capacity() * core::mem::size_of::<PfnEntry>()
            + self.descs.capacity() * core::mem::size_of::<PageDesc>()
            + self.delta_lens.capacity() * core::mem::size_of::<u16>()
            + self.page.capacity()
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
        match self.advance(input) {
            Ok(Some(ev)) => Ok(Some(self.materialise(ev))),
            Ok(None) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// [`Decoder::next`] without the borrow of its event: a caller that
    /// loops over records (the sealed [`crate::Receiver`]) decides what to
    /// do next before it borrows the event with [`Decoder::materialise`].
    pub(crate) fn advance(&mut self, input: &mut &[u8]) -> Result<Option<Pending>, DecodeError> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        if self.release {
            self.buf.clear();
            self.release = false;
        }
        match self.step(input) {
            Ok(p) => Ok(p),
            Err(e) => {
                self.failed = Some(e);
                Err(e)
            }
        }
    }

    /// Turns an internal event into one that borrows the staging buffer.
    pub(crate) fn materialise(&mut self, ev: Pending) -> Event<'_> {
        self.release = true;
        let buf = self.buf.as_slice();
        match ev {
            Pending::Ready(ev) => ev,
            Pending::Page(entry, with_data) => Event::Page {
                entry,
                data: if with_data { Some(buf) } else { None },
            },
            Pending::Unpacked(entry) => Event::Page {
                entry,
                data: Some(self.page.as_slice()),
            },
            Pending::Zero(entry) => Event::Page {
                entry,
                data: Some(&ZERO_PAGE),
            },
            Pending::Delta(entry) => Event::Delta {
                entry,
                mask: self.page.as_slice(),
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
                    // depmig's own records exist only where the handshake
                    // agreed on them; other types of its block are unknown
                    // mandatory records to the order checker.
                    if rtype == rec::DEPMIG_PACKED_PAGES && self.codec != Codec::Lz4 {
                        return Err(DecodeError::NotNegotiated(rtype));
                    }
                    if rtype == rec::DEPMIG_DELTA_PAGES && !self.delta {
                        return Err(DecodeError::NotNegotiated(rtype));
                    }
                    self.order.accept(rtype)?;
                    self.state = self.record_state(rtype, len)?;
                }
                State::PageHeader { len, kind } => {
                    if !self.fill(input, 8) {
                        return Ok(None);
                    }
                    let count = le32(&self.buf, 0).unwrap_or(0);
                    let reserved = le32(&self.buf, 4).unwrap_or(0);
                    self.buf.clear();
                    if reserved != 0 {
                        return Err(DecodeError::ReservedRecordBits(kind.rtype()));
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
                    // A packed record is never longer than raw pages with
                    // descriptors: refused before its pfns are read.
                    let most = match kind {
                        PageRec::Plain => u64::MAX,
                        PageRec::Packed => {
                            8 + u64::from(count) * (8 + (DESC_LEN + MAX_PAYLOAD) as u64)
                        }
                        PageRec::Delta => {
                            8 + u64::from(count)
                                * (8 + (delta::DESC_LEN + delta::MAX_PAYLOAD) as u64)
                        }
                    };
                    if u64::from(len) > most {
                        return Err(DecodeError::PageDataLength {
                            expected: most,
                            got: len,
                        });
                    }
                    self.state = State::Pfns { len, count, kind };
                }
                State::Pfns {
                    len,
                    count,
                    kind: rkind,
                } => {
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
                        if rkind == PageRec::Delta && kind != PageType::Normal {
                            return Err(DecodeError::DeltaPageType(nib));
                        }
                        if kind.has_data() {
                            with_data += 1;
                        }
                        if self.pfns.len() < self.pfns.capacity() {
                            self.pfns.push(PfnEntry { pfn, kind });
                        }
                    }
                    self.buf.clear();
                    if rkind == PageRec::Delta {
                        // PANICS: no overflow, `count` is at most 2^16.
                        let least = 8 + u64::from(count) * (8 + delta::DESC_LEN as u64);
                        let most = least + u64::from(count) * delta::MAX_PAYLOAD as u64;
                        if !(least..=most).contains(&u64::from(len)) {
                            return Err(DecodeError::PageDataLength {
                                expected: least,
                                got: len,
                            });
                        }
                        self.state = State::DeltaDescs { len, count };
                        continue;
                    }
                    if rkind == PageRec::Packed {
                        // PANICS: `with_data <= count`, a u32.
                        let with_data = with_data as u32;
                        let least = 8 + u64::from(count) * 8 + u64::from(with_data) * 4;
                        let most = least + u64::from(with_data) * MAX_PAYLOAD as u64;
                        if !(least..=most).contains(&u64::from(len)) {
                            return Err(DecodeError::PageDataLength {
                                expected: least,
                                got: len,
                            });
                        }
                        self.state = State::Descs {
                            len,
                            count,
                            with_data,
                        };
                        continue;
                    }
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
                State::Descs {
                    len,
                    count,
                    with_data,
                } => {
                    if !self.fill(input, with_data as usize * DESC_LEN) {
                        return Ok(None);
                    }
                    self.descs.clear();
                    let mut payload: u64 = 0;
                    for c in self.buf.chunks_exact(DESC_LEN) {
                        let raw = le32(c, 0).unwrap_or(0);
                        let d = PageDesc::from_u32(raw).map_err(|e| match e {
                            DescError::Reserved => {
                                DecodeError::ReservedRecordBits(rec::DEPMIG_PACKED_PAGES)
                            }
                            DescError::Invalid => DecodeError::BadPageDescriptor(raw),
                        })?;
                        payload += u64::from(d.len);
                        if self.descs.len() < self.descs.capacity() {
                            self.descs.push(d);
                        }
                    }
                    self.buf.clear();
                    let expected = 8 + u64::from(count) * 8 + u64::from(with_data) * 4 + payload;
                    if expected != u64::from(len) {
                        return Err(DecodeError::PageDataLength { expected, got: len });
                    }
                    self.state = State::PackedPages {
                        idx: 0,
                        desc: 0,
                        pad: padding(len as usize) as u8,
                    };
                    return Ok(Some(Pending::Ready(Event::PageData { count })));
                }
                State::PackedPages { idx, desc, pad } => {
                    let Some(&entry) = self.pfns.get(idx as usize) else {
                        self.state = State::PackedPad { pad };
                        continue;
                    };
                    if !entry.kind.has_data() {
                        self.state = State::PackedPages {
                            idx: idx + 1,
                            desc,
                            pad,
                        };
                        return Ok(Some(Pending::Page(entry, false)));
                    }
                    // One descriptor per entry with data, checked above.
                    let Some(&d) = self.descs.get(desc as usize) else {
                        return Err(DecodeError::BadPageDescriptor(0));
                    };
                    if !self.fill(input, usize::from(d.len)) {
                        return Ok(None);
                    }
                    let ev = match d.encoding {
                        PageEncoding::Raw => Pending::Page(entry, true),
                        PageEncoding::Zero => Pending::Zero(entry),
                        PageEncoding::Lz4 => {
                            if !decompress_page(&self.buf, &mut self.page) {
                                return Err(DecodeError::BadCompressedPage(entry.pfn));
                            }
                            Pending::Unpacked(entry)
                        }
                    };
                    self.tally.add(d);
                    self.state = State::PackedPages {
                        idx: idx + 1,
                        desc: desc + 1,
                        pad,
                    };
                    return Ok(Some(ev));
                }
                State::DeltaDescs { len, count } => {
                    if !self.fill(input, count as usize * delta::DESC_LEN) {
                        return Ok(None);
                    }
                    self.delta_lens.clear();
                    let mut payload: u64 = 0;
                    for c in self.buf.chunks_exact(delta::DESC_LEN) {
                        let raw = le32(c, 0).unwrap_or(0);
                        let n = delta::desc_len(raw).map_err(|why| match why {
                            DeltaError::Reserved => {
                                DecodeError::ReservedRecordBits(rec::DEPMIG_DELTA_PAGES)
                            }
                            why => DecodeError::BadDeltaPage { pfn: 0, why },
                        })?;
                        payload += u64::from(n);
                        if self.delta_lens.len() < self.delta_lens.capacity() {
                            self.delta_lens.push(n);
                        }
                    }
                    self.buf.clear();
                    let expected = 8 + u64::from(count) * (8 + delta::DESC_LEN as u64) + payload;
                    if expected != u64::from(len) {
                        return Err(DecodeError::PageDataLength { expected, got: len });
                    }
                    self.state = State::DeltaPages {
                        idx: 0,
                        pad: padding(len as usize) as u8,
                    };
                    return Ok(Some(Pending::Ready(Event::PageData { count })));
                }
                State::DeltaPages { idx, pad } => {
                    let (Some(&entry), Some(&n)) = (
                        self.pfns.get(idx as usize),
                        self.delta_lens.get(idx as usize),
                    ) else {
                        self.state = State::PackedPad { pad };
                        continue;
                    };
                    if !self.fill(input, usize::from(n)) {
                        return Ok(None);
                    }
                    delta::decode(&self.buf, &mut self.page).map_err(|why| {
                        DecodeError::BadDeltaPage {
                            pfn: entry.pfn,
                            why,
                        }
                    })?;
                    self.tally.delta += 1;
                    self.tally.payload_bytes += u64::from(n);
                    self.state = State::DeltaPages { idx: idx + 1, pad };
                    return Ok(Some(Pending::Delta(entry)));
                }
                State::PackedPad { pad } => {
                    if !self.fill(input, usize::from(pad)) {
                        return Ok(None);
                    }
                    if self.buf.iter().any(|&b| b != 0) {
                        return Err(DecodeError::NonZeroPadding);
                    }
                    self.buf.clear();
                    self.state = State::RecordHeader;
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
            rec::PAGE_DATA | rec::DEPMIG_PACKED_PAGES | rec::DEPMIG_DELTA_PAGES => {
                if len < 8 {
                    return Err(bad);
                }
                let kind = match rtype {
                    rec::DEPMIG_PACKED_PAGES => PageRec::Packed,
                    rec::DEPMIG_DELTA_PAGES => PageRec::Delta,
                    _ => PageRec::Plain,
                };
                return Ok(State::PageHeader { len, kind });
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
pub(crate) enum Pending {
    Ready(Event<'static>),
    Page(PfnEntry, bool),
    /// A page decompressed into the decoder's page buffer.
    Unpacked(PfnEntry),
    /// A zero page of a packed record.
    Zero(PfnEntry),
    /// A delta page's mask, decoded into the decoder's page buffer.
    Delta(PfnEntry),
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

    /// The image and domain headers and STATIC_DATA_END, and the encoder
    /// that wrote them.
    fn headers_only() -> (Vec<u8>, Encoder) {
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
        (out, e)
    }

    fn tiny_stream() -> Vec<u8> {
        let (mut out, mut e) = headers_only();
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

    /// Headers and STATIC_DATA_END, then `rec` as a record of type
    /// `rtype` whose header announces `len` (its body's length by default).
    fn head_then(rtype: u32, body: &[u8], len: Option<u32>) -> Vec<u8> {
        let (mut out, _) = headers_only();
        out.extend_from_slice(&rtype.to_le_bytes());
        let len = len.unwrap_or(body.len() as u32);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(body);
        out.extend_from_slice(&[0; REC_ALIGN][..padding(body.len())]);
        out
    }

    /// A packed record body: `pfns` (normal pages), then `descs`, then
    /// `payload`.
    fn packed_body(pfns: &[u64], descs: &[u32], payload: &[u8]) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&(pfns.len() as u32).to_le_bytes());
        b.extend_from_slice(&[0; 4]);
        for p in pfns {
            b.extend_from_slice(&p.to_le_bytes());
        }
        for d in descs {
            b.extend_from_slice(&d.to_le_bytes());
        }
        b.extend_from_slice(payload);
        b
    }

    /// Decodes with packed pages accepted: the error, or the pages seen.
    fn packed_result(s: &[u8]) -> Result<Vec<String>, DecodeError> {
        let mut dec = Decoder::new(Limits::default());
        dec.set_codec(Codec::Lz4);
        collect(&mut dec, s)
    }

    fn lz4(data: &[u8]) -> Vec<u8> {
        let mut out = vec![0u8; lz4_flex::block::get_maximum_output_size(data.len())];
        let n = lz4_flex::block::compress_into(data, &mut out).unwrap();
        out.truncate(n);
        out
    }

    const LZ4_DESC: u32 = 1 << 16;
    const ZERO_DESC: u32 = 2 << 16;

    #[test]
    fn packed_record_decodes_each_encoding() {
        let z = lz4(&[5u8; PAGE_SIZE]);
        let mut payload = z.clone();
        payload.extend_from_slice(&[6u8; PAGE_SIZE]);
        let body = packed_body(
            &[1, 2, 3],
            &[LZ4_DESC | z.len() as u32, PAGE_SIZE as u32, ZERO_DESC],
            &payload,
        );
        let s = head_then(rec::DEPMIG_PACKED_PAGES, &body, None);
        let mut dec = Decoder::new(Limits::default());
        dec.set_codec(Codec::Lz4);
        let mut split = Vec::new();
        for b in s.chunks(1) {
            split.extend(collect(&mut dec, b).unwrap());
        }
        assert_eq!(split, packed_result(&s).unwrap());
        assert!(split.iter().any(|e| e == "page 1 5"), "{split:?}");
        assert!(split.iter().any(|e| e == "page 2 6"));
        assert!(split.iter().any(|e| e == "page 3 0"));
        let t = dec.tally();
        assert_eq!((t.lz4, t.raw, t.zero), (1, 1, 1));
        assert_eq!(t.payload_bytes, (z.len() + PAGE_SIZE) as u64);
    }

    /// Xen's PAGE_DATA stays legal once packed pages were agreed on: the
    /// source sends pages raw while its adaptive encodings are off.
    #[test]
    fn page_data_decodes_in_a_stream_that_agreed_on_lz4() {
        let mut body = Vec::new();
        body.extend_from_slice(&2u32.to_le_bytes());
        body.extend_from_slice(&[0; 4]);
        body.extend_from_slice(&1u64.to_le_bytes());
        body.extend_from_slice(&2u64.to_le_bytes());
        body.extend_from_slice(&[7u8; PAGE_SIZE]);
        body.extend_from_slice(&[8u8; PAGE_SIZE]);
        let s = head_then(rec::PAGE_DATA, &body, None);
        let seen = packed_result(&s).unwrap();
        assert!(seen.iter().any(|e| e == "page 1 7"), "{seen:?}");
        assert!(seen.iter().any(|e| e == "page 2 8"), "{seen:?}");
    }

    #[test]
    fn packed_record_refused_unless_negotiated() {
        let body = packed_body(&[1], &[ZERO_DESC], &[]);
        let s = head_then(rec::DEPMIG_PACKED_PAGES, &body, None);
        assert_eq!(
            collect(&mut Decoder::new(Limits::default()), &s).unwrap_err(),
            DecodeError::NotNegotiated(rec::DEPMIG_PACKED_PAGES)
        );
        assert!(packed_result(&s).is_ok());
        // The delta record without its agreement.
        let s = head_then(rec::DEPMIG_DELTA_PAGES, &body, None);
        assert_eq!(
            packed_result(&s).unwrap_err(),
            DecodeError::NotNegotiated(rec::DEPMIG_DELTA_PAGES)
        );
        // Another type of depmig's block: an unknown mandatory record.
        let s = head_then(rec::DEPMIG_DELTA_PAGES + 1, &body, None);
        assert_eq!(
            packed_result(&s).unwrap_err(),
            DecodeError::Order(OrderError::UnsupportedMandatory(
                rec::DEPMIG_DELTA_PAGES + 1
            ))
        );
    }

    #[test]
    fn hostile_packed_records_are_refused() {
        let page = [5u8; PAGE_SIZE];
        let z = lz4(&page);
        let zl = z.len() as u32;
        let rtype = rec::DEPMIG_PACKED_PAGES;
        let refuse = |body: &[u8], len: Option<u32>| packed_result(&head_then(rtype, body, len));

        // Reserved header word, empty, over the batch cap.
        let mut b = packed_body(&[1], &[ZERO_DESC], &[]);
        b[4] = 1;
        assert_eq!(
            refuse(&b, None),
            Err(DecodeError::ReservedRecordBits(rtype))
        );
        assert_eq!(
            refuse(&packed_body(&[], &[], &[]), None),
            Err(DecodeError::EmptyPageData)
        );
        let mut b = packed_body(&[1], &[ZERO_DESC], &[]);
        b[0..4].copy_from_slice(&(MAX_BATCH + 1).to_le_bytes());
        assert_eq!(
            refuse(&b, None),
            Err(DecodeError::BatchTooLarge(MAX_BATCH + 1))
        );
        // A length beyond what raw pages could take: refused at the header.
        let b = packed_body(&[1], &[ZERO_DESC], &[]);
        assert!(matches!(
            refuse(&b, Some(8 + 8 + 4 + 4096 + 1)),
            Err(DecodeError::PageDataLength { .. })
        ));
        // A length that disagrees with the descriptors.
        let b = packed_body(&[1], &[LZ4_DESC | zl], &z);
        assert!(matches!(
            refuse(&b, Some(b.len() as u32 + 1)),
            Err(DecodeError::PageDataLength { .. })
        ));
        // Reserved descriptor bits; unknown encoding; lengths the encoding
        // does not allow (LZ4 that did not shrink, a short raw page, a zero
        // page with data).
        let b = packed_body(&[1], &[ZERO_DESC | 1 << 24], &[]);
        assert_eq!(
            refuse(&b, None),
            Err(DecodeError::ReservedRecordBits(rtype))
        );
        for d in [3 << 16, LZ4_DESC | 4096, LZ4_DESC, 4095, ZERO_DESC | 1] {
            let payload = vec![0u8; (d & 0xFFFF) as usize];
            let b = packed_body(&[1], &[d], &payload);
            assert_eq!(
                refuse(&b, None),
                Err(DecodeError::BadPageDescriptor(d)),
                "{d:#x}"
            );
        }
        // LZ4 that is garbage, makes less than a page, or more.
        let b = packed_body(&[7], &[LZ4_DESC | 3], &[0xF0, 1, 2]);
        assert_eq!(refuse(&b, None), Err(DecodeError::BadCompressedPage(7)));
        let half = lz4(&page[..PAGE_SIZE / 2]);
        let b = packed_body(&[7], &[LZ4_DESC | half.len() as u32], &half);
        assert_eq!(refuse(&b, None), Err(DecodeError::BadCompressedPage(7)));
        let two = lz4(&[5u8; 2 * PAGE_SIZE]);
        let b = packed_body(&[7], &[LZ4_DESC | two.len() as u32], &two);
        assert_eq!(refuse(&b, None), Err(DecodeError::BadCompressedPage(7)));
        // Non-zero padding after the payloads.
        let b = packed_body(&[1], &[LZ4_DESC | zl], &z);
        let mut s = head_then(rtype, &b, None);
        if padding(b.len()) > 0 {
            *s.last_mut().unwrap() = 1;
            assert_eq!(packed_result(&s), Err(DecodeError::NonZeroPadding));
        }
        // Pfn checks as for PAGE_DATA.
        let b = packed_body(&[1 << 56], &[ZERO_DESC], &[]);
        assert_eq!(refuse(&b, None), Err(DecodeError::PfnReservedBits(1 << 56)));
        // Truncated anywhere: more input wanted, never an error or a page
        // beyond those complete.
        let b = packed_body(&[1, 2], &[LZ4_DESC | zl, ZERO_DESC], &z);
        let s = head_then(rtype, &b, None);
        let whole = packed_result(&s).unwrap();
        for cut in 0..s.len() {
            let part = packed_result(&s[..cut]).unwrap();
            assert!(part.len() <= whole.len());
            assert_eq!(part[..], whole[..part.len()]);
        }
    }

    /// A delta record body: `pfns` (raw entries), `descs`, `payload`.
    fn delta_body(pfns: &[u64], descs: &[u32], payload: &[u8]) -> Vec<u8> {
        packed_body(pfns, descs, payload)
    }

    /// Decodes with deltas accepted: the error, or the events seen.
    fn delta_result(s: &[u8]) -> Result<Vec<String>, DecodeError> {
        let mut dec = Decoder::new(Limits::default());
        dec.set_delta(true);
        let mut input = s;
        let mut v = Vec::new();
        while let Some(ev) = dec.next(&mut input)? {
            v.push(match ev {
                Event::Delta { entry, mask } => {
                    let at = mask.iter().position(|&b| b != 0);
                    format!("delta {} {at:?}", entry.pfn)
                }
                other => format!("{other:?}"),
            });
        }
        Ok(v)
    }

    #[test]
    fn delta_record_decodes_to_masks() {
        // pfn 4: byte 10 XOR 0x55; pfn 9: unchanged.
        let body = delta_body(&[4, 9], &[3, 0], &[10, 1, 0x55]);
        let s = head_then(rec::DEPMIG_DELTA_PAGES, &body, None);
        let v = delta_result(&s).unwrap();
        assert!(v.iter().any(|e| e == "delta 4 Some(10)"), "{v:?}");
        assert!(v.iter().any(|e| e == "delta 9 None"), "{v:?}");
        let mut dec = Decoder::new(Limits::default());
        dec.set_delta(true);
        for b in s.chunks(1) {
            let mut input = b;
            while dec.next(&mut input).unwrap().is_some() {}
        }
        assert_eq!((dec.tally().delta, dec.tally().payload_bytes), (2, 3));
    }

    #[test]
    fn hostile_delta_records_are_refused() {
        let rtype = rec::DEPMIG_DELTA_PAGES;
        let refuse = |body: &[u8], len: Option<u32>| delta_result(&head_then(rtype, body, len));
        let mut b = delta_body(&[1], &[0], &[]);
        b[4] = 1;
        assert_eq!(
            refuse(&b, None),
            Err(DecodeError::ReservedRecordBits(rtype))
        );
        assert_eq!(
            refuse(&delta_body(&[], &[], &[]), None),
            Err(DecodeError::EmptyPageData)
        );
        // Only normal pages: a hole or a free page has no previous contents.
        for t in [0xF_u64, 0xE] {
            let b = delta_body(&[1 | t << 60], &[0], &[]);
            assert_eq!(refuse(&b, None), Err(DecodeError::DeltaPageType(t as u8)));
        }
        // Reserved descriptor bits; a payload as long as a page.
        let b = delta_body(&[1], &[1 << 16], &[]);
        assert_eq!(
            refuse(&b, None),
            Err(DecodeError::ReservedRecordBits(rtype))
        );
        let b = delta_body(&[1, 2], &[4096, 0], &[0; 4096]);
        assert_eq!(
            refuse(&b, None),
            Err(DecodeError::BadDeltaPage {
                pfn: 0,
                why: DeltaError::TooLong
            })
        );
        // A length beyond what the count allows, or not the descriptors'.
        let b = delta_body(&[1], &[3], &[0, 1, 1]);
        assert!(matches!(
            refuse(&b, Some(8 + 8 + 4 + 4095 + 1)),
            Err(DecodeError::PageDataLength { .. })
        ));
        assert!(matches!(
            refuse(&b, Some(b.len() as u32 + 1)),
            Err(DecodeError::PageDataLength { .. })
        ));
        // Runs past the end of the page: 4095 unchanged, then two bytes.
        let b = delta_body(&[7], &[5], &[0xFF, 0x1F, 2, 1, 1]);
        assert_eq!(
            refuse(&b, None),
            Err(DecodeError::BadDeltaPage {
                pfn: 7,
                why: DeltaError::Overflow
            })
        );
        // A pair cut by the payload's end, a non-canonical length.
        let b = delta_body(&[7], &[2], &[0, 2]);
        assert_eq!(
            refuse(&b, None),
            Err(DecodeError::BadDeltaPage {
                pfn: 7,
                why: DeltaError::Truncated
            })
        );
        let b = delta_body(&[7], &[4], &[0x80, 0, 1, 1]);
        assert_eq!(
            refuse(&b, None),
            Err(DecodeError::BadDeltaPage {
                pfn: 7,
                why: DeltaError::BadLength
            })
        );
        // After VERIFY: compared, not applied.
        let (mut s, _) = headers_only();
        s.extend_from_slice(&rec::VERIFY.to_le_bytes());
        s.extend_from_slice(&[0; 4]);
        let b = delta_body(&[1], &[0], &[]);
        s.extend_from_slice(&rtype.to_le_bytes());
        s.extend_from_slice(&(b.len() as u32).to_le_bytes());
        s.extend_from_slice(&b);
        assert_eq!(
            delta_result(&s),
            Err(DecodeError::Order(OrderError::Misplaced(rtype)))
        );
        // Truncated anywhere: more input wanted, never an error.
        let b = delta_body(&[1, 2], &[3, 0], &[5, 1, 9]);
        let s = head_then(rtype, &b, None);
        let whole = delta_result(&s).unwrap();
        for cut in 0..s.len() {
            let part = delta_result(&s[..cut]).unwrap();
            assert_eq!(part[..], whole[..part.len()]);
        }
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
