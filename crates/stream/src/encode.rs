//! Encoder of the libxc stream. It checks every record against the same
//! order rules the decoder enforces, so depmig never writes a stream it
//! would refuse.
//!
//! Output goes to a [`ByteSink`]; `Vec<u8>` is one. For zero-copy sending,
//! [`Encoder::page_data_header`] writes a PAGE_DATA record's header and pfn
//! array only, and the caller then writes the pages itself, straight from
//! mapped guest memory.
//!
//! Once the handshake agreed on [`Codec::Lz4`] ([`Encoder::set_codec`]),
//! [`Encoder::page_data`] writes depmig's packed record instead of
//! PAGE_DATA ([`crate::packed`]); the encoder holds the compressed
//! payloads of one record until its length is known.
//!
//! Once it also agreed on deltas ([`Encoder::set_delta`]),
//! [`Encoder::page_data_delta`] sends each page the caller gives a base for
//! (the contents the destination holds) as a delta when that is smaller
//! ([`crate::delta`]): those pages go in a delta record after the record of
//! the others.

use alloc::vec::Vec;

use crate::delta;
use crate::order::{OrderChecker, OrderError};
use crate::packed::{
    compress_page, Codec, PageDesc, PageEncoding, PageTally, COMPRESS_BOUND, DESC_LEN,
};
use crate::wire::*;

/// Where encoded bytes go.
pub trait ByteSink {
    /// Appends `bytes`; fails when the sink cannot take them.
    fn put(&mut self, bytes: &[u8]) -> Result<(), SinkFull>;
}

/// A sink refused bytes (e.g. a fixed buffer is full).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SinkFull;

impl<S: ByteSink + ?Sized> ByteSink for &mut S {
    fn put(&mut self, bytes: &[u8]) -> Result<(), SinkFull> {
        (**self).put(bytes)
    }
}

impl ByteSink for Vec<u8> {
    fn put(&mut self, bytes: &[u8]) -> Result<(), SinkFull> {
        self.extend_from_slice(bytes);
        Ok(())
    }
}

/// Why a record could not be encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EncodeError {
    /// The record would break the stream's order rules.
    Order(OrderError),
    /// The image and domain headers were already written, or not yet.
    HeaderState,
    /// The domain type is not x86 HVM: libxc writes HVM for PVH guests
    /// too, and Xen's restorer refuses anything else.
    DomainType,
    /// A pfn does not fit in 52 bits.
    PfnTooLarge(u64),
    /// PAGE_DATA with no entries.
    EmptyPageData,
    /// PAGE_DATA with more entries than `MAX_BATCH`.
    BatchTooLarge(usize),
    /// The number of pages given differs from the entries that carry data.
    PageCountMismatch,
    /// A page is not exactly `PAGE_SIZE` bytes.
    PageSize,
    /// A body does not fit the record's length rules.
    BadBody,
    /// An optional record type without bit 31.
    NotOptional(u32),
    /// The sink refused the bytes.
    Sink,
    /// A record with deltas whose pfns are not strictly ascending: its
    /// pages are split over two records, which must not reorder writes
    /// to one frame.
    PfnOrder,
}

impl From<OrderError> for EncodeError {
    fn from(e: OrderError) -> Self {
        EncodeError::Order(e)
    }
}

impl From<SinkFull> for EncodeError {
    fn from(_: SinkFull) -> Self {
        EncodeError::Sink
    }
}

const ZEROS: [u8; REC_ALIGN] = [0; REC_ALIGN];

/// Writes a libxc stream record by record.
#[derive(Clone, Debug, Default)]
pub struct Encoder {
    order: OrderChecker,
    headers_done: bool,
    codec: Codec,
    /// One record's descriptors (packed records only).
    descs: Vec<PageDesc>,
    /// One record's LZ4 payloads, back to back (packed records only).
    packed: Vec<u8>,
    /// LZ4's output for one page before it joins `packed`.
    scratch: Vec<u8>,
    tally: PageTally,
    /// Whether delta records may be written.
    delta: bool,
    /// One delta record's payloads, back to back, and their lengths.
    deltas: Vec<u8>,
    delta_lens: Vec<u16>,
    /// Per page of the record: whether it goes as a delta.
    as_delta: Vec<bool>,
    /// One page's delta before it joins `deltas`.
    delta_scratch: Vec<u8>,
}

impl Encoder {
    /// A fresh encoder writing Xen's PAGE_DATA; the first call must be
    /// [`Encoder::headers`].
    pub fn new() -> Self {
        Encoder::default()
    }

    /// Sets how [`Encoder::page_data`] sends pages: only what the
    /// handshake agreed on ([`crate::negotiated`]).
    pub fn set_codec(&mut self, codec: Codec) {
        self.codec = codec;
    }

    /// The codec [`Encoder::page_data`] uses.
    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// How the pages of packed and delta records were sent so far (all
    /// zero with [`Codec::Raw`] and no deltas).
    pub fn tally(&self) -> PageTally {
        self.tally
    }

    /// Lets [`Encoder::page_data_delta`] write delta records: only what
    /// the handshake agreed on ([`crate::negotiated_delta`]).
    pub fn set_delta(&mut self, on: bool) {
        self.delta = on;
    }

    /// Whether delta records may be written.
    pub fn delta(&self) -> bool {
        self.delta
    }

    /// Writes the image header (v3, little-endian) and `dom`.
    pub fn headers<S: ByteSink>(
        &mut self,
        out: &mut S,
        dom: &DomainHeader,
    ) -> Result<(), EncodeError> {
        if self.headers_done {
            return Err(EncodeError::HeaderState);
        }
        if dom.domain_type != DomainType::X86Hvm {
            return Err(EncodeError::DomainType);
        }
        out.put(&ImageHeader::CURRENT.to_bytes())?;
        out.put(&dom.to_bytes())?;
        self.headers_done = true;
        Ok(())
    }

    fn begin<S: ByteSink>(
        &mut self,
        out: &mut S,
        rtype: u32,
        len: usize,
    ) -> Result<(), EncodeError> {
        if !self.headers_done {
            return Err(EncodeError::HeaderState);
        }
        let len = u32::try_from(len).map_err(|_| EncodeError::BadBody)?;
        self.order.accept(rtype)?;
        let mut h = [0u8; RHDR_LEN];
        h[0..4].copy_from_slice(&rtype.to_le_bytes());
        h[4..8].copy_from_slice(&len.to_le_bytes());
        out.put(&h)?;
        Ok(())
    }

    fn record<S: ByteSink>(
        &mut self,
        out: &mut S,
        rtype: u32,
        parts: &[&[u8]],
    ) -> Result<(), EncodeError> {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        self.begin(out, rtype, len)?;
        for p in parts {
            out.put(p)?;
        }
        out.put(ZEROS.get(..padding(len)).unwrap_or(&[]))?;
        Ok(())
    }

    /// X86_CPUID_POLICY from leaves (at least one).
    pub fn cpuid_policy<S: ByteSink>(
        &mut self,
        out: &mut S,
        leaves: &[CpuidLeaf],
    ) -> Result<(), EncodeError> {
        if leaves.is_empty() {
            return Err(EncodeError::BadBody);
        }
        let body: Vec<u8> = leaves.iter().flat_map(|l| l.to_bytes()).collect();
        self.record(out, rec::X86_CPUID_POLICY, &[&body])
    }

    /// X86_MSR_POLICY from entries (at least one).
    pub fn msr_policy<S: ByteSink>(
        &mut self,
        out: &mut S,
        msrs: &[MsrEntry],
    ) -> Result<(), EncodeError> {
        if msrs.is_empty() {
            return Err(EncodeError::BadBody);
        }
        let body: Vec<u8> = msrs.iter().flat_map(|m| m.to_bytes()).collect();
        self.record(out, rec::X86_MSR_POLICY, &[&body])
    }

    /// STATIC_DATA_END.
    pub fn static_data_end<S: ByteSink>(&mut self, out: &mut S) -> Result<(), EncodeError> {
        self.record(out, rec::STATIC_DATA_END, &[])
    }

    /// Writes the header and pfn array of a PAGE_DATA record and returns how
    /// many pages of data the caller must write next, in entry order.
    pub fn page_data_header<S: ByteSink>(
        &mut self,
        out: &mut S,
        entries: &[PfnEntry],
    ) -> Result<usize, EncodeError> {
        if entries.is_empty() {
            return Err(EncodeError::EmptyPageData);
        }
        if entries.len() > MAX_BATCH as usize {
            return Err(EncodeError::BatchTooLarge(entries.len()));
        }
        let mut with_data = 0usize;
        for e in entries {
            e.to_u64().ok_or(EncodeError::PfnTooLarge(e.pfn))?;
            if e.kind.has_data() {
                with_data += 1;
            }
        }
        let len = 8 + entries.len() * 8 + with_data * PAGE_SIZE;
        self.begin(out, rec::PAGE_DATA, len)?;
        let mut h = [0u8; 8];
        h[0..4].copy_from_slice(&(entries.len() as u32).to_le_bytes());
        out.put(&h)?;
        for e in entries {
            out.put(&e.to_u64().unwrap_or(0).to_le_bytes())?;
        }
        Ok(with_data)
    }

    /// A whole page record: `pages` holds one page per entry whose type
    /// carries data, in order. PAGE_DATA with [`Codec::Raw`]; depmig's
    /// packed record with [`Codec::Lz4`].
    pub fn page_data<S: ByteSink>(
        &mut self,
        out: &mut S,
        entries: &[PfnEntry],
        pages: &[&[u8]],
    ) -> Result<(), EncodeError> {
        let with_data = entries.iter().filter(|e| e.kind.has_data()).count();
        if with_data != pages.len() {
            return Err(EncodeError::PageCountMismatch);
        }
        if pages.iter().any(|p| p.len() != PAGE_SIZE) {
            return Err(EncodeError::PageSize);
        }
        if self.codec == Codec::Lz4 {
            return self.packed_page_data(out, entries, pages);
        }
        self.page_data_header(out, entries)?;
        for p in pages {
            out.put(p)?;
        }
        Ok(())
    }

    /// [`crate::packed`]'s record; `pages` was checked by the caller.
    fn packed_page_data<S: ByteSink>(
        &mut self,
        out: &mut S,
        entries: &[PfnEntry],
        pages: &[&[u8]],
    ) -> Result<(), EncodeError> {
        if entries.is_empty() {
            return Err(EncodeError::EmptyPageData);
        }
        if entries.len() > MAX_BATCH as usize {
            return Err(EncodeError::BatchTooLarge(entries.len()));
        }
        for e in entries {
            e.to_u64().ok_or(EncodeError::PfnTooLarge(e.pfn))?;
        }
        self.descs.clear();
        self.packed.clear();
        self.scratch.resize(COMPRESS_BOUND, 0);
        for p in pages {
            let d = compress_page(p, &mut self.scratch);
            if d.encoding == PageEncoding::Lz4 {
                let z = self.scratch.get(..usize::from(d.len)).unwrap_or(&[]);
                self.packed.extend_from_slice(z);
            }
            self.descs.push(d);
        }
        self.write_packed(out, entries, pages)
    }

    /// Writes a packed record whose descriptors and LZ4 payloads are in
    /// `descs` and `packed`, one per page of `pages`.
    fn write_packed<S: ByteSink>(
        &mut self,
        out: &mut S,
        entries: &[PfnEntry],
        pages: &[&[u8]],
    ) -> Result<(), EncodeError> {
        // Payload lengths: LZ4 blocks from `packed`, raw pages whole.
        let raw = self
            .descs
            .iter()
            .filter(|d| d.encoding == PageEncoding::Raw)
            .count();
        let len =
            8 + entries.len() * 8 + pages.len() * DESC_LEN + self.packed.len() + raw * PAGE_SIZE;
        self.begin(out, rec::DEPMIG_PACKED_PAGES, len)?;
        let mut h = [0u8; 8];
        h[0..4].copy_from_slice(&(entries.len() as u32).to_le_bytes());
        out.put(&h)?;
        for e in entries {
            out.put(&e.to_u64().unwrap_or(0).to_le_bytes())?;
        }
        for d in &self.descs {
            out.put(&d.to_u32().to_le_bytes())?;
        }
        let mut at = 0usize;
        for (d, p) in self.descs.iter().zip(pages) {
            match d.encoding {
                PageEncoding::Raw => out.put(p)?,
                PageEncoding::Lz4 => {
                    let end = at + usize::from(d.len);
                    out.put(self.packed.get(at..end).unwrap_or(&[]))?;
                    at = end;
                }
                PageEncoding::Zero => {}
            }
            self.tally.add(*d);
        }
        out.put(ZEROS.get(..padding(len)).unwrap_or(&[]))?;
        Ok(())
    }

    /// A page record like [`Encoder::page_data`]'s, where `bases[i]`, when
    /// given, is what the destination holds for the frame of `pages[i]`
    /// (what the last page record for it wrote). Such a page goes as a
    /// delta ([`crate::delta`]) when its payload and descriptor are smaller
    /// than what it would take otherwise (its LZ4 block or zero page and
    /// descriptor with [`Codec::Lz4`], 4096 bytes raw); the deltas follow,
    /// in a record of their own, the record of the other entries. Entries'
    /// pfns must be strictly ascending. Without [`Encoder::set_delta`]
    /// this is [`Encoder::page_data`].
    pub fn page_data_delta<S: ByteSink>(
        &mut self,
        out: &mut S,
        entries: &[PfnEntry],
        pages: &[&[u8]],
        bases: &[Option<&[u8]>],
    ) -> Result<(), EncodeError> {
        if !self.delta {
            return self.page_data(out, entries, pages);
        }
        let with_data = entries.iter().filter(|e| e.kind.has_data()).count();
        if with_data != pages.len() || bases.len() != pages.len() {
            return Err(EncodeError::PageCountMismatch);
        }
        if pages.iter().any(|p| p.len() != PAGE_SIZE)
            || bases.iter().flatten().any(|b| b.len() != PAGE_SIZE)
        {
            return Err(EncodeError::PageSize);
        }
        if entries.is_empty() {
            return Err(EncodeError::EmptyPageData);
        }
        if entries.len() > MAX_BATCH as usize {
            return Err(EncodeError::BatchTooLarge(entries.len()));
        }
        if entries.windows(2).any(|w| w[0].pfn >= w[1].pfn) {
            return Err(EncodeError::PfnOrder);
        }
        for e in entries {
            e.to_u64().ok_or(EncodeError::PfnTooLarge(e.pfn))?;
        }
        let lz4 = self.codec == Codec::Lz4;
        self.descs.clear();
        self.packed.clear();
        self.deltas.clear();
        self.delta_lens.clear();
        self.as_delta.clear();
        self.scratch.resize(COMPRESS_BOUND, 0);
        self.delta_scratch.resize(delta::MAX_PAYLOAD, 0);
        for (p, base) in pages.iter().zip(bases) {
            // What the page takes whole: payload and descriptor. The LZ4
            // block stays in `scratch` until the page's choice is made.
            let packed = lz4.then(|| compress_page(p, &mut self.scratch));
            let whole = packed.map_or(PAGE_SIZE, |d| usize::from(d.len) + DESC_LEN);
            // A delta must take less: room for its payload below that.
            let room = whole
                .saturating_sub(delta::DESC_LEN + 1)
                .min(delta::MAX_PAYLOAD);
            let d = match (base, self.delta_scratch.get_mut(..room)) {
                (Some(b), Some(buf)) if whole > delta::DESC_LEN => delta::encode(p, b, buf),
                _ => None,
            };
            match d {
                Some(n) => {
                    let bytes = self.delta_scratch.get(..n).unwrap_or(&[]);
                    self.deltas.extend_from_slice(bytes);
                    self.delta_lens.push(n as u16);
                    self.as_delta.push(true);
                }
                None => {
                    if let Some(d) = packed {
                        if d.encoding == PageEncoding::Lz4 {
                            let z = self.scratch.get(..usize::from(d.len)).unwrap_or(&[]);
                            self.packed.extend_from_slice(z);
                        }
                        self.descs.push(d);
                    }
                    self.as_delta.push(false);
                }
            }
        }
        // Split the entries: deltas apart, the rest (holes too) in order.
        let mut whole_entries: Vec<PfnEntry> = Vec::with_capacity(entries.len());
        let mut whole_pages: Vec<&[u8]> = Vec::with_capacity(pages.len());
        let mut delta_pfns: Vec<u64> = Vec::with_capacity(self.delta_lens.len());
        let mut page = 0usize;
        for e in entries {
            if !e.kind.has_data() {
                whole_entries.push(*e);
                continue;
            }
            let is_delta = self.as_delta.get(page).copied().unwrap_or(false);
            if is_delta {
                delta_pfns.push(e.pfn);
            } else {
                whole_entries.push(*e);
                whole_pages.push(pages.get(page).copied().unwrap_or(&[]));
            }
            page += 1;
        }
        if !whole_entries.is_empty() {
            if lz4 {
                self.write_packed(out, &whole_entries, &whole_pages)?;
            } else {
                self.page_data_header(out, &whole_entries)?;
                for p in &whole_pages {
                    out.put(p)?;
                }
            }
        }
        if delta_pfns.is_empty() {
            return Ok(());
        }
        let count = delta_pfns.len();
        let len = 8 + count * (8 + delta::DESC_LEN) + self.deltas.len();
        self.begin(out, rec::DEPMIG_DELTA_PAGES, len)?;
        let mut h = [0u8; 8];
        h[0..4].copy_from_slice(&(count as u32).to_le_bytes());
        out.put(&h)?;
        for &pfn in &delta_pfns {
            out.put(&PfnEntry::normal(pfn).to_u64().unwrap_or(0).to_le_bytes())?;
        }
        for &n in &self.delta_lens {
            out.put(&u32::from(n).to_le_bytes())?;
        }
        out.put(&self.deltas)?;
        out.put(ZEROS.get(..padding(len)).unwrap_or(&[]))?;
        self.tally.delta += count as u64;
        self.tally.payload_bytes += self.deltas.len() as u64;
        Ok(())
    }

    /// X86_TSC_INFO.
    pub fn tsc_info<S: ByteSink>(&mut self, out: &mut S, tsc: &TscInfo) -> Result<(), EncodeError> {
        self.record(out, rec::X86_TSC_INFO, &[&tsc.to_bytes()])
    }

    /// HVM_PARAMS.
    pub fn hvm_params<S: ByteSink>(
        &mut self,
        out: &mut S,
        params: &[HvmParam],
    ) -> Result<(), EncodeError> {
        let count = u32::try_from(params.len()).map_err(|_| EncodeError::BadBody)?;
        let mut body = Vec::with_capacity(8 + params.len() * HVM_PARAM_LEN);
        body.extend_from_slice(&count.to_le_bytes());
        body.extend_from_slice(&[0; 4]);
        for p in params {
            body.extend_from_slice(&p.index.to_le_bytes());
            body.extend_from_slice(&p.value.to_le_bytes());
        }
        self.record(out, rec::HVM_PARAMS, &[&body])
    }

    /// HVM_CONTEXT (non-empty blob from `XEN_DOMCTL_gethvmcontext`).
    pub fn hvm_context<S: ByteSink>(
        &mut self,
        out: &mut S,
        blob: &[u8],
    ) -> Result<(), EncodeError> {
        if blob.is_empty() {
            return Err(EncodeError::BadBody);
        }
        self.record(out, rec::HVM_CONTEXT, &[blob])
    }

    /// VERIFY.
    pub fn verify<S: ByteSink>(&mut self, out: &mut S) -> Result<(), EncodeError> {
        self.record(out, rec::VERIFY, &[])
    }

    /// CHECKPOINT.
    pub fn checkpoint<S: ByteSink>(&mut self, out: &mut S) -> Result<(), EncodeError> {
        self.record(out, rec::CHECKPOINT, &[])
    }

    /// An optional record (type with bit 31 set).
    pub fn optional<S: ByteSink>(
        &mut self,
        out: &mut S,
        rtype: u32,
        body: &[u8],
    ) -> Result<(), EncodeError> {
        if rtype & rec::OPTIONAL == 0 {
            return Err(EncodeError::NotOptional(rtype));
        }
        self.record(out, rtype, &[body])
    }

    /// END.
    pub fn end<S: ByteSink>(&mut self, out: &mut S) -> Result<(), EncodeError> {
        self.record(out, rec::END, &[])
    }

    /// Whether END was written.
    pub fn ended(&self) -> bool {
        self.order.ended()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headed(codec: Codec) -> (Vec<u8>, Encoder) {
        let mut out = Vec::new();
        let mut e = Encoder::new();
        e.set_codec(codec);
        e.set_delta(true);
        let d = DomainHeader {
            domain_type: DomainType::X86Hvm,
            page_shift: 12,
            xen_major: 4,
            xen_minor: 20,
        };
        e.headers(&mut out, &d).unwrap();
        e.static_data_end(&mut out).unwrap();
        (out, e)
    }

    fn noise(seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..PAGE_SIZE)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    #[test]
    fn a_delta_is_sent_only_when_smaller_than_the_page_otherwise() {
        let old = noise(1);
        let mut near = old.clone();
        near[100] ^= 1;
        let far = noise(2);
        let zero = vec![0u8; PAGE_SIZE];
        let entries = [
            PfnEntry::normal(1),
            PfnEntry::normal(2),
            PfnEntry::normal(3),
        ];
        let pages: [&[u8]; 3] = [&near, &far, &zero];
        let bases = [Some(&old[..]), Some(&old[..]), Some(&old[..])];
        // Raw: the small change goes as a delta; noise against noise and
        // a page cleared would take more than 4096 bytes as deltas.
        let (mut out, mut e) = headed(Codec::Raw);
        e.page_data_delta(&mut out, &entries, &pages, &bases)
            .unwrap();
        assert_eq!(e.tally().delta, 1);
        assert_eq!(e.tally().payload_bytes, 3);
        // LZ4: the cleared page is a zero page, not a 4096-byte delta.
        let (mut out, mut e) = headed(Codec::Lz4);
        e.page_data_delta(&mut out, &entries, &pages, &bases)
            .unwrap();
        let t = e.tally();
        assert_eq!((t.delta, t.zero, t.raw), (1, 1, 1));
        // Nothing that would not shrink: no delta record at all.
        let (mut out, mut e) = headed(Codec::Raw);
        let before = out.len();
        e.page_data_delta(&mut out, &entries[1..2], &pages[1..2], &bases[1..2])
            .unwrap();
        assert_eq!(e.tally().delta, 0);
        assert_eq!(out.len() - before, 8 + 8 + 8 + PAGE_SIZE);
        // Without the agreement: never a delta.
        let (mut out, mut e) = headed(Codec::Raw);
        e.set_delta(false);
        e.page_data_delta(&mut out, &entries, &pages, &bases)
            .unwrap();
        assert_eq!(e.tally().delta, 0);
    }

    #[test]
    fn deltas_need_ascending_pfns_and_whole_bases() {
        let p = vec![1u8; PAGE_SIZE];
        let (mut out, mut e) = headed(Codec::Raw);
        let two = [PfnEntry::normal(2), PfnEntry::normal(2)];
        assert_eq!(
            e.page_data_delta(&mut out, &two, &[&p, &p], &[None, None]),
            Err(EncodeError::PfnOrder)
        );
        let one = [PfnEntry::normal(2)];
        assert_eq!(
            e.page_data_delta(&mut out, &one, &[&p], &[Some(&p[..10])]),
            Err(EncodeError::PageSize)
        );
        assert_eq!(
            e.page_data_delta(&mut out, &one, &[&p], &[]),
            Err(EncodeError::PageCountMismatch)
        );
    }

    #[test]
    fn padding_and_order_enforced() {
        let mut out = Vec::new();
        let mut e = Encoder::new();
        assert_eq!(e.static_data_end(&mut out), Err(EncodeError::HeaderState));
        let d = DomainHeader {
            domain_type: DomainType::X86Hvm,
            page_shift: 12,
            xen_major: 4,
            xen_minor: 17,
        };
        e.headers(&mut out, &d).unwrap();
        assert_eq!(
            e.page_data(&mut out, &[PfnEntry::normal(1)], &[&[0u8; PAGE_SIZE]]),
            Err(EncodeError::Order(OrderError::Misplaced(rec::PAGE_DATA)))
        );
        e.static_data_end(&mut out).unwrap();
        let before = out.len();
        e.hvm_context(&mut out, &[1, 2, 3]).unwrap();
        assert_eq!(out.len() - before, 8 + 8);
        assert_eq!(&out[before..before + 8], &[9, 0, 0, 0, 3, 0, 0, 0]);
        assert_eq!(&out[before + 8..], &[1, 2, 3, 0, 0, 0, 0, 0]);
        assert_eq!(e.end(&mut out), Ok(()));
        assert!(e.ended());
    }
}
