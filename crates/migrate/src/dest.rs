//! The destination role: answers the source's hello, decodes the stream
//! strictly (`depmig-stream`'s [`Receiver`]: caps, order, pfn range),
//! writes pages into the paused shell as they arrive, and only once the
//! trailer's tag matched applies the TSC, the HVM parameters and the HVM
//! context; then it acknowledges. Any failure after its hello is answered
//! with a NAK carrying a code ([`NakCode`]).
//!
//! Pages reach the shell before the whole stream is authenticated: that is
//! safe because the shell stays paused and dom0 destroys it unless the
//! source reports success, which needs this side's ACK. With encryption
//! agreed (`DestConfig::encrypt`, required when set: a source that does not
//! offer it is answered, then refused with `NAK HEL`), each sealed record's
//! tag is checked before any of its bytes reach the decoder, and the
//! stream counts as authentic only once its final record ended exactly at
//! END. The ACK or NAK carries a tag ([`crate::reply`]).
//!
//! What is taken from the stream and what is kept from the shell: see
//! [`crate::params`]. In short, every parameter Xen's saver sends is
//! applied except the xenstore and console ones: their event channels are
//! the shell's, their frames must equal the shell's, and those two ring
//! frames keep the shell's own content: the stream's copies are never
//! written. (Xen's restorer clears them before it introduces the domain to
//! xenstored; here xenstored and xenconsoled serve the shell from its
//! creation, and would read the source's requests and output from a
//! copied ring as the shell's own — a request cut in half that way left
//! xenstored waiting for the rest and the resumed guest's first request,
//! and so its resume, hanging.)
//!
//! With verification on (`DestConfig::verify`, agreed in the hellos), the
//! shell's pages are compared with the guest's after the CPU state was
//! applied and before the ACK ([`crate::verify`]); any difference is
//! refused with `NAK VER`.
//!
//! Delta pages (depmig's delta record, when agreed in the hellos) are
//! applied to the frame's current contents: read from the shell when the
//! batch is written, or XORed into the copy still waiting in the batch. A
//! delta is refused (`NAK DEC`) unless the frame's current contents are
//! what the stream last wrote there, whole or by delta: not for a frame
//! the stream never wrote, nor one whose last entry was XALLOC or XTAB.
//! A delta for a ring frame is kept out like any ring entry.
//!
//! Page types: normal pages are written; XALLOC entries (free in the guest
//! at the copy round, depmig's dependency-aware mode) are populated and
//! zeroed; XTAB entries (holes) are skipped. BROKEN and the PV page-table
//! types are refused, as are VERIFY and CHECKPOINT records. CPUID and MSR
//! policy records are accepted and not applied: the shell was built from
//! the guest's own configuration on the same host.

use alloc::vec;
use alloc::vec::Vec;

use depmig_precopy::{Clock, DirtyBitmap, PortError};
use depmig_stream::handshake::MIN_KEY_LEN;
use depmig_stream::{
    key_confirmation, rec, Caps, Codec, DecodeError, Event, HandshakeError, Hello, HvmParam,
    Limits, PageTally, PageType, PfnEntry, Receiver, Record, Role, RxError, RxEvent, TscInfo,
    MAX_BATCH, PAGE_SIZE,
};
use xen_abi::hvm::{HVM_PARAM_CONSOLE_PFN, HVM_PARAM_STORE_PFN};

use depmig_stream::delta;

use crate::params::{disposition, Disposition};
use crate::ports::{DestDomain, Progress, State, Transport, TransportError};
use crate::reply::{self, nak, NakCode, ACK, SIGNED_REPLY_LEN};
use crate::verify::{self, Buffered, Channel, Class, DestView, VerifyError, VerifyStats};

/// How the destination runs.
#[derive(Clone, Copy, Debug)]
pub struct DestConfig<'a> {
    /// The shared HMAC key (at least 16 bytes).
    pub key: &'a [u8],
    /// A fresh random nonce for this migration's hello.
    pub nonce: [u8; 16],
    /// Largest body of a record other than PAGE_DATA (the HVM context is
    /// the big one); the stream's decoder allocates this once.
    pub max_record_body: u32,
    /// Pages handed to [`DestDomain::write_pages`] at most at once. The
    /// destination reads nothing from the link while it writes a batch, so
    /// a batch that takes longer than the peer needs to fill our receive
    /// window leaves the link idle (256 pages took ~130 ms under emulation,
    /// against ~50 ms for a 256 KiB window at 40 Mb/s).
    pub write_batch: usize,
    /// Size of the receive buffer.
    pub recv_buffer: usize,
    /// Compare the shell's pages with the guest's before acknowledging
    /// (`--verify`); the source must be armed alike.
    pub verify: bool,
    /// Test fault `corrupt-page`: flip one bit of one page the stream
    /// filled, after applying and before comparing (with `verify` only).
    pub corrupt_page: bool,
    /// The page codec accepted when the source offers it
    /// ([`DestStats::codec`] says which ran).
    pub accept: Codec,
    /// Take the stream only in sealed records (`--encrypt on`): a source
    /// that does not offer encryption is refused. Off, the stream is taken
    /// only in clear.
    pub encrypt: bool,
    /// Accept delta pages when the source offers them
    /// ([`DestStats::delta`] says whether they were agreed on).
    pub accept_delta: bool,
}

impl<'a> DestConfig<'a> {
    /// Defaults: 1 MiB records, 64-page write batches, 64 KiB reads,
    /// pages raw (Xen's PAGE_DATA) whatever the source offers, the stream
    /// in clear (the appliance sets [`DestConfig::encrypt`] from its
    /// contract, where it is on unless dom0 says otherwise).
    pub fn new(key: &'a [u8], nonce: [u8; 16]) -> Self {
        DestConfig {
            key,
            nonce,
            max_record_body: 1 << 20,
            write_batch: 64,
            recv_buffer: 64 << 10,
            verify: false,
            corrupt_page: false,
            accept: Codec::Raw,
            encrypt: false,
            accept_delta: false,
        }
    }
}

/// A shell operation, named in errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DestOp {
    /// `populated`.
    Populated,
    /// `populate`.
    Populate,
    /// `write_pages`.
    WritePages,
    /// `read_pages`, for the frames delta pages apply to.
    ReadPages,
    /// `zero_frames`.
    ZeroFrames,
    /// `hvm_param`.
    HvmParam,
    /// `set_hvm_param`.
    SetHvmParam,
    /// `set_tsc_info`.
    SetTscInfo,
    /// `set_hvm_context`.
    SetHvmContext,
}

/// Why the destination gave up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DestError {
    /// The key is shorter than 16 bytes.
    ShortKey,
    /// The shell reports no frames.
    EmptyShell,
    /// The transport failed.
    Transport(TransportError),
    /// The source closed the connection before the trailer.
    PeerClosed,
    /// The hello, the stream or the trailer was refused.
    Stream(RxError),
    /// A page type the destination does not take (BROKEN, PV page tables).
    UnsupportedPageType(u8),
    /// A record type the destination does not take (VERIFY, CHECKPOINT).
    UnsupportedRecord(u32),
    /// A pfn at or beyond the shell's address space.
    PfnOutOfRange(u64),
    /// A delta page for a frame whose contents are not what the stream
    /// last wrote there (never written, or zeroed or skipped since).
    DeltaWithoutBase(u64),
    /// A record the destination needs (TSC info, HVM params, HVM context)
    /// never came.
    Missing(u32),
    /// Bytes followed the trailer.
    TrailingBytes,
    /// An HVM parameter no migration stream carries.
    Param(u64),
    /// The guest's xenstore or console frame differs from the shell's.
    RingMismatch {
        /// `HVM_PARAM_STORE_PFN` or `HVM_PARAM_CONSOLE_PFN`.
        index: u32,
        /// The guest's frame.
        stream: u64,
        /// The shell's frame.
        shell: u64,
    },
    /// A shell operation failed.
    Domain(DestOp, PortError),
    /// Page verification could not be carried out.
    Verify(VerifyError),
    /// Page verification found the shell's pages differ from the guest's.
    PagesDiffer {
        /// Ranges whose digests differed.
        ranges: u64,
        /// Frames found different in the ranges compared frame by frame.
        frames: u64,
        /// The lowest of them.
        first: Option<u64>,
    },
}

impl DestError {
    /// The code sent to the source in the NAK.
    pub fn nak_code(&self) -> NakCode {
        match self {
            DestError::Stream(RxError::Handshake(h)) => match h {
                HandshakeError::BadTag
                | HandshakeError::LengthMismatch
                | HandshakeError::BadTrailerMagic
                | HandshakeError::Truncated => NakCode::Auth,
                _ => NakCode::Hello,
            },
            DestError::Stream(RxError::Record(_)) => NakCode::Auth,
            DestError::Stream(RxError::Decode(DecodeError::PfnOutOfRange(_)))
            | DestError::PfnOutOfRange(_) => NakCode::Pfn,
            DestError::Stream(RxError::Decode(_))
            | DestError::TrailingBytes
            | DestError::DeltaWithoutBase(_) => NakCode::Decode,
            DestError::UnsupportedPageType(_) | DestError::UnsupportedRecord(_) => {
                NakCode::Unsupported
            }
            DestError::Missing(_) => NakCode::Missing,
            DestError::Param(_) | DestError::RingMismatch { .. } => NakCode::Param,
            DestError::Domain(
                DestOp::Populated
                | DestOp::Populate
                | DestOp::WritePages
                | DestOp::ReadPages
                | DestOp::ZeroFrames,
                _,
            ) => NakCode::Memory,
            DestError::Domain(_, _) => NakCode::Apply,
            DestError::PagesDiffer { .. } => NakCode::Verify,
            DestError::Verify(v) => match v {
                VerifyError::BadTag => NakCode::Auth,
                VerifyError::BadMagic
                | VerifyError::UnexpectedKind(_)
                | VerifyError::TooLong(_)
                | VerifyError::Malformed
                | VerifyError::SizeMismatch { .. } => NakCode::Decode,
                VerifyError::Read(_) | VerifyError::Write(_) => NakCode::Memory,
                // The source's findings; they never reach a destination.
                VerifyError::Uncovered { .. } => NakCode::Verify,
                VerifyError::NoMemory { .. } => NakCode::Memory,
                VerifyError::Transport(_)
                | VerifyError::Skipped
                | VerifyError::Oracle(_)
                | VerifyError::Key => NakCode::Internal,
            },
            DestError::ShortKey
            | DestError::EmptyShell
            | DestError::Transport(_)
            | DestError::PeerClosed => NakCode::Internal,
        }
    }
}

/// What the destination did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DestStats {
    /// Frames in the shell's address space.
    pub nr_pfns: u64,
    /// Bytes received (hello, stream, trailer).
    pub bytes_received: u64,
    /// PAGE_DATA records.
    pub page_records: u64,
    /// Pages written (a page sent in several rounds counts each time).
    pub pages_written: u64,
    /// XALLOC entries zeroed.
    pub pages_zeroed: u64,
    /// Stream entries for the shell's xenstore and console ring frames,
    /// not written (the shell keeps its own rings).
    pub ring_pages_kept: u64,
    /// XTAB entries (holes) skipped.
    pub holes: u64,
    /// Frames the shell lacked and was given.
    pub frames_populated: u64,
    /// Parameters set from the stream.
    pub params_applied: u32,
    /// Parameters in the stream the shell kept its own value of.
    pub params_kept: u32,
    /// CPUID/MSR policy and optional records accepted and not applied.
    pub records_ignored: u32,
    /// Page verification's figures, when it ran to its verdict.
    pub verify: Option<VerifyStats>,
    /// The frame the `corrupt-page` test fault changed.
    pub corrupted: Option<u64>,
    /// The page codec agreed with the source.
    pub codec: Codec,
    /// How the pages came in depmig's packed and delta records (all
    /// zero with neither).
    pub page_tally: PageTally,
    /// The stream came in sealed records.
    pub encrypted: bool,
    /// Sealed records opened (0 in clear).
    pub sealed_records: u64,
    /// Whether delta pages were agreed on with the source.
    pub delta: bool,
    /// Delta pages applied to the shell (ring frames excluded); each also
    /// counts in `pages_written`.
    pub deltas_applied: u64,
}

/// Applies stream events to the shell.
struct Applier<'a, D> {
    dom: &'a mut D,
    nr: u64,
    /// The shell's xenstore and console ring frames (0: none).
    rings: [u64; 2],
    batch: usize,
    have: DirtyBitmap,
    write_pfns: Vec<u64>,
    write_data: Vec<u8>,
    /// Per entry of `write_pfns`: its data is an XOR mask to apply to the
    /// frame's contents as the shell holds them before this batch.
    write_mask: Vec<bool>,
    /// Frames whose contents are what the stream last wrote there: the
    /// only ones a delta may apply to.
    held: DirtyBitmap,
    /// The shell's pages under masks, read when a batch is written.
    base_pfns: Vec<u64>,
    base_data: Vec<u8>,
    base_holes: Vec<bool>,
    zero_pfns: Vec<u64>,
    missing: Vec<u64>,
    tsc: Option<TscInfo>,
    params: Option<Vec<HvmParam>>,
    context: Option<Vec<u8>>,
    stats: DestStats,
    /// The stream's last entry per frame, kept for verification only.
    view: Option<DestView>,
}

impl<D: DestDomain> Applier<'_, D> {
    /// Gives the shell the frames of `pfns` it lacks.
    fn ensure(&mut self, which: Which) -> Result<(), DestError> {
        self.missing.clear();
        let pfns = match which {
            Which::Write => &self.write_pfns,
            Which::Zero => &self.zero_pfns,
        };
        for &p in pfns {
            if !self.have.test(p) {
                self.missing.push(p);
            }
        }
        if self.missing.is_empty() {
            return Ok(());
        }
        self.missing.sort_unstable();
        self.missing.dedup();
        self.dom
            .populate(&self.missing)
            .map_err(|e| DestError::Domain(DestOp::Populate, e))?;
        for &p in &self.missing {
            self.have.set(p);
        }
        self.stats.frames_populated += self.missing.len() as u64;
        Ok(())
    }

    fn flush_writes(&mut self) -> Result<(), DestError> {
        if self.write_pfns.is_empty() {
            return Ok(());
        }
        self.ensure(Which::Write)?;
        self.apply_masks()?;
        self.dom
            .write_pages(&self.write_pfns, &self.write_data)
            .map_err(|e| DestError::Domain(DestOp::WritePages, e))?;
        self.stats.pages_written += self.write_pfns.len() as u64;
        self.write_pfns.clear();
        self.write_data.clear();
        self.write_mask.clear();
        Ok(())
    }

    /// Turns the batch's masks into pages: each masked frame appears once
    /// in the batch, first (a later delta for it folded into its entry),
    /// so the shell's contents now are its base.
    fn apply_masks(&mut self) -> Result<(), DestError> {
        self.base_pfns.clear();
        for (&pfn, &masked) in self.write_pfns.iter().zip(&self.write_mask) {
            if masked {
                self.base_pfns.push(pfn);
            }
        }
        if self.base_pfns.is_empty() {
            return Ok(());
        }
        let n = self.base_pfns.len();
        self.base_data.resize(n * PAGE_SIZE, 0);
        self.base_holes.clear();
        self.base_holes.resize(n, false);
        self.dom
            .read_pages(&self.base_pfns, &mut self.base_data, &mut self.base_holes)
            .map_err(|e| DestError::Domain(DestOp::ReadPages, e))?;
        let mut bases = self.base_data.chunks_exact(PAGE_SIZE).zip(&self.base_holes);
        let slots = self.write_data.chunks_exact_mut(PAGE_SIZE);
        for ((slot, &masked), &pfn) in slots.zip(&self.write_mask).zip(&self.write_pfns) {
            if !masked {
                continue;
            }
            match bases.next() {
                Some((base, false)) => delta::xor_into(slot, base),
                _ => return Err(DestError::DeltaWithoutBase(pfn)),
            }
        }
        Ok(())
    }

    fn flush_zeros(&mut self) -> Result<(), DestError> {
        if self.zero_pfns.is_empty() {
            return Ok(());
        }
        self.ensure(Which::Zero)?;
        self.dom
            .zero_frames(&self.zero_pfns)
            .map_err(|e| DestError::Domain(DestOp::ZeroFrames, e))?;
        self.stats.pages_zeroed += self.zero_pfns.len() as u64;
        self.zero_pfns.clear();
        Ok(())
    }

    fn flush(&mut self) -> Result<(), DestError> {
        self.flush_writes()?;
        self.flush_zeros()
    }

    fn page(&mut self, entry: PfnEntry, data: Option<&[u8]>) -> Result<(), DestError> {
        if entry.pfn >= self.nr {
            return Err(DestError::PfnOutOfRange(entry.pfn));
        }
        let ring = entry.pfn != 0 && self.rings.contains(&entry.pfn);
        match entry.kind {
            PageType::Normal if !ring => {
                self.held.set(entry.pfn);
            }
            PageType::XAlloc | PageType::XTab => self.held.clear(entry.pfn),
            _ => {}
        }
        if let Some(v) = self.view.as_mut() {
            match entry.kind {
                PageType::Normal => v.note(entry.pfn, Class::Data),
                PageType::XAlloc => v.note(entry.pfn, Class::Free),
                PageType::XTab => v.note(entry.pfn, Class::Hole),
                _ => {}
            }
        }
        match entry.kind {
            PageType::Normal | PageType::XAlloc if ring => self.stats.ring_pages_kept += 1,
            PageType::Normal => {
                // The decoder hands a page with every entry whose type has data.
                let data = data
                    .filter(|d| d.len() == PAGE_SIZE)
                    .ok_or(DestError::Stream(RxError::Decode(
                        DecodeError::PageDataLength {
                            expected: PAGE_SIZE as u64,
                            got: 0,
                        },
                    )))?;
                // Writes and zeros keep their stream order.
                self.flush_zeros()?;
                self.write_pfns.push(entry.pfn);
                self.write_data.extend_from_slice(data);
                self.write_mask.push(false);
                if self.write_pfns.len() >= self.batch {
                    self.flush_writes()?;
                }
            }
            PageType::XAlloc => {
                self.flush_writes()?;
                self.zero_pfns.push(entry.pfn);
                if self.zero_pfns.len() >= self.batch {
                    self.flush_zeros()?;
                }
            }
            PageType::XTab => self.stats.holes += 1,
            k @ (PageType::Broken | PageType::Table(_) | PageType::PinnedTable(_)) => {
                return Err(DestError::UnsupportedPageType(k.to_nibble()));
            }
        }
        Ok(())
    }

    /// A delta page: `mask` XORed into what the frame holds.
    fn delta(&mut self, entry: PfnEntry, mask: &[u8]) -> Result<(), DestError> {
        if entry.pfn >= self.nr {
            return Err(DestError::PfnOutOfRange(entry.pfn));
        }
        if mask.len() != PAGE_SIZE || entry.kind != PageType::Normal {
            return Err(DestError::Stream(RxError::Decode(
                DecodeError::DeltaPageType(entry.kind.to_nibble()),
            )));
        }
        if let Some(v) = self.view.as_mut() {
            v.note(entry.pfn, Class::Data);
        }
        if entry.pfn != 0 && self.rings.contains(&entry.pfn) {
            self.stats.ring_pages_kept += 1;
            return Ok(());
        }
        if !self.held.test(entry.pfn) {
            return Err(DestError::DeltaWithoutBase(entry.pfn));
        }
        self.stats.deltas_applied += 1;
        // The frame's latest contents may still wait in the batch (a page
        // is sent once a round, and a batch can span two rounds).
        let queued = self.write_pfns.iter().rposition(|&p| p == entry.pfn);
        if let Some(slot) =
            queued.and_then(|i| self.write_data.get_mut(i * PAGE_SIZE..(i + 1) * PAGE_SIZE))
        {
            delta::xor_into(slot, mask);
            return Ok(());
        }
        self.flush_zeros()?;
        self.write_pfns.push(entry.pfn);
        self.write_data.extend_from_slice(mask);
        self.write_mask.push(true);
        if self.write_pfns.len() >= self.batch {
            self.flush_writes()?;
        }
        Ok(())
    }

    fn event(&mut self, ev: Event<'_>) -> Result<(), DestError> {
        match ev {
            Event::ImageHeader(_) | Event::DomainHeader(_) => {}
            Event::PageData { .. } => self.stats.page_records += 1,
            Event::Page { entry, data } => self.page(entry, data)?,
            Event::Delta { entry, mask } => self.delta(entry, mask)?,
            Event::Record(r) => match r {
                Record::End => self.flush()?,
                Record::StaticDataEnd => {}
                Record::CpuidPolicy(_) | Record::MsrPolicy(_) | Record::Optional { .. } => {
                    self.stats.records_ignored += 1;
                }
                Record::Verify => return Err(DestError::UnsupportedRecord(rec::VERIFY)),
                Record::Checkpoint => return Err(DestError::UnsupportedRecord(rec::CHECKPOINT)),
                Record::TscInfo(t) => self.tsc = Some(t),
                Record::HvmParams(p) => {
                    let mut v = Vec::with_capacity(p.len());
                    for param in p.iter() {
                        if disposition(param.index) == Disposition::Refuse {
                            return Err(DestError::Param(param.index));
                        }
                        v.push(param);
                    }
                    self.params = Some(v);
                }
                Record::HvmContext(b) => self.context = Some(b.to_vec()),
            },
        }
        Ok(())
    }

    /// Applies the CPU state once the stream is authentic.
    fn apply(&mut self) -> Result<(), DestError> {
        self.flush()?;
        let tsc = self.tsc.ok_or(DestError::Missing(rec::X86_TSC_INFO))?;
        let params = self
            .params
            .take()
            .ok_or(DestError::Missing(rec::HVM_PARAMS))?;
        let context = self
            .context
            .take()
            .ok_or(DestError::Missing(rec::HVM_CONTEXT))?;
        let [store, console] = self.rings;
        let mut apply = Vec::with_capacity(params.len());
        for p in &params {
            match disposition(p.index) {
                Disposition::Apply => apply.push(*p),
                Disposition::Keep => self.stats.params_kept += 1,
                Disposition::KeepMustMatch => {
                    let (index, shell) = if p.index == u64::from(HVM_PARAM_STORE_PFN) {
                        (HVM_PARAM_STORE_PFN, store)
                    } else {
                        (HVM_PARAM_CONSOLE_PFN, console)
                    };
                    if p.value != shell {
                        return Err(DestError::RingMismatch {
                            index,
                            stream: p.value,
                            shell,
                        });
                    }
                    self.stats.params_kept += 1;
                }
                Disposition::Refuse => return Err(DestError::Param(p.index)),
            }
        }
        self.dom
            .set_tsc_info(&tsc)
            .map_err(|e| DestError::Domain(DestOp::SetTscInfo, e))?;
        for p in &apply {
            // `disposition` applies only indices below 2^32; this cannot fail.
            let index = u32::try_from(p.index).map_err(|_| DestError::Param(p.index))?;
            self.dom
                .set_hvm_param(index, p.value)
                .map_err(|e| DestError::Domain(DestOp::SetHvmParam, e))?;
            self.stats.params_applied += 1;
        }
        self.dom
            .set_hvm_context(&context)
            .map_err(|e| DestError::Domain(DestOp::SetHvmContext, e))
    }
}

#[derive(Clone, Copy)]
enum Which {
    Write,
    Zero,
}

/// Runs the destination role on an accepted connection into the paused
/// shell `domain` (`clock` times page verification). Returns once everything was applied and the ACK sent,
/// or with the first error (a NAK was sent if the handshake got that far).
/// The shell is never unpaused here.
pub fn run<D: DestDomain, T: Transport>(
    domain: &mut D,
    transport: &mut T,
    clock: &dyn Clock,
    progress: &mut dyn Progress,
    cfg: &DestConfig<'_>,
) -> Result<DestStats, DestError> {
    // Both hellos as sent, once ours went out: the reply's tag covers them.
    let mut hellos = None;
    let r = receive(domain, transport, clock, progress, cfg, &mut hellos);
    let signed = |code| -> Option<[u8; SIGNED_REPLY_LEN]> {
        let (s, d) = hellos?;
        reply::sign(code, cfg.key, &s, &d).ok()
    };
    match r {
        Ok(stats) => {
            // An authentic stream always follows our hello, and the key
            // was checked then: the ACK can always be signed.
            let Some(ack) = signed(ACK) else {
                progress.state(State::Failed);
                return Err(DestError::Stream(RxError::Handshake(
                    HandshakeError::Truncated,
                )));
            };
            let sent = transport.send(&ack).and_then(|()| transport.flush());
            match sent {
                Ok(()) => {
                    progress.state(State::Applied);
                    Ok(stats)
                }
                Err(e) => {
                    progress.state(State::Failed);
                    Err(DestError::Transport(e))
                }
            }
        }
        Err(e) => {
            if let Some(b) = signed(nak(e.nak_code())) {
                progress.refusing(&e);
                // Best effort: the source may be gone already.
                let _ = transport.send(&b).and_then(|()| transport.flush());
            }
            progress.state(State::Failed);
            Err(e)
        }
    }
}

fn receive<D: DestDomain, T: Transport>(
    domain: &mut D,
    transport: &mut T,
    clock: &dyn Clock,
    progress: &mut dyn Progress,
    cfg: &DestConfig<'_>,
    hellos: &mut Option<(Hello, Hello)>,
) -> Result<DestStats, DestError> {
    if cfg.key.len() < MIN_KEY_LEN {
        return Err(DestError::ShortKey);
    }
    let nr = domain.nr_pfns();
    if nr == 0 {
        return Err(DestError::EmptyShell);
    }
    let accept = Caps::for_codec(cfg.accept).union(Caps::for_delta(cfg.accept_delta));
    let mine = Hello {
        role: Role::Destination,
        nonce: cfg.nonce,
        verify: cfg.verify,
        caps: if cfg.encrypt {
            accept.union(Caps::ENCRYPTED)
        } else {
            accept
        },
    };
    let limits = Limits {
        max_record_body: cfg.max_record_body,
        max_batch: MAX_BATCH,
        max_pfn: nr - 1,
    };
    let mut rx = Receiver::new(cfg.key, mine, limits)
        .map_err(|e| DestError::Stream(RxError::Handshake(e)))?;
    let mut have = DirtyBitmap::new(nr);
    domain
        .populated(&mut have)
        .map_err(|e| DestError::Domain(DestOp::Populated, e))?;
    let batch = cfg.write_batch.clamp(1, MAX_BATCH as usize);
    let mut ring = |index| {
        domain
            .hvm_param(index)
            .map_err(|e| DestError::Domain(DestOp::HvmParam, e))
    };
    let rings = [ring(HVM_PARAM_STORE_PFN)?, ring(HVM_PARAM_CONSOLE_PFN)?];
    let mut ap = Applier {
        dom: domain,
        nr,
        rings,
        batch,
        have,
        write_pfns: Vec::with_capacity(batch),
        write_data: Vec::with_capacity(batch * PAGE_SIZE),
        write_mask: Vec::with_capacity(batch),
        held: DirtyBitmap::new(if cfg.accept_delta { nr } else { 0 }),
        base_pfns: Vec::new(),
        base_data: Vec::new(),
        base_holes: Vec::new(),
        zero_pfns: Vec::with_capacity(batch),
        missing: Vec::with_capacity(batch),
        tsc: None,
        params: None,
        context: None,
        stats: DestStats {
            nr_pfns: nr,
            ..DestStats::default()
        },
        view: cfg.verify.then(|| DestView::new(nr, rings)),
    };
    let mut peer_hello = None;
    let mut after_trailer = Vec::new();
    let mut buf = vec![0u8; cfg.recv_buffer.max(64)];
    loop {
        let n = transport.recv(&mut buf).map_err(DestError::Transport)?;
        if n == 0 {
            return Err(DestError::PeerClosed);
        }
        ap.stats.bytes_received += n as u64;
        let mut input = buf.get(..n).unwrap_or(&[]);
        let mut authentic = false;
        loop {
            let ev = match rx.push(&mut input) {
                Ok(Some(ev)) => ev,
                Ok(None) => break,
                Err(e) => return Err(DestError::Stream(e)),
            };
            match ev {
                RxEvent::PeerHello(peer) => {
                    // What the receiver keyed its transcript with: our
                    // capabilities narrowed to the source's offer.
                    let answer = mine.answer(&peer);
                    let confirm = key_confirmation(cfg.key, &peer, &answer)
                        .map_err(|e| DestError::Stream(RxError::Handshake(e)))?;
                    transport
                        .send(&answer.to_bytes())
                        .and_then(|()| transport.send(&confirm))
                        .and_then(|()| transport.flush())
                        .map_err(DestError::Transport)?;
                    *hellos = Some((peer, answer));
                    // Refused after our hello went out, so that the source
                    // hears why (it checks the flags too).
                    if peer.verify != cfg.verify {
                        return Err(DestError::Stream(RxError::Handshake(
                            HandshakeError::VerifyMismatch,
                        )));
                    }
                    peer_hello = Some((peer, answer));
                    progress.state(State::Receiving);
                }
                RxEvent::Stream(ev) => ap.event(ev)?,
                RxEvent::Authenticated => authentic = true,
            }
        }
        if authentic {
            if !input.is_empty() {
                // With verification the source's digests follow at once.
                if !cfg.verify {
                    return Err(DestError::TrailingBytes);
                }
                after_trailer.extend_from_slice(input);
            }
            break;
        }
    }
    ap.stats.codec = rx.codec();
    ap.stats.encrypted = rx.is_sealed();
    ap.stats.sealed_records = rx.records();
    ap.stats.page_tally = rx.decoder().tally();
    ap.stats.delta = rx.decoder().delta();
    progress.state(State::Applying);
    ap.apply()?;
    if let (Some(view), Some((peer, answer))) = (ap.view.take(), peer_hello) {
        if cfg.corrupt_page {
            let pfn = view
                .fault_frame()
                .ok_or(DestError::Verify(VerifyError::Malformed))?;
            verify::corrupt_page(ap.dom, pfn).map_err(DestError::Verify)?;
            ap.stats.corrupted = Some(pfn);
            progress.fault_injected(pfn);
        }
        // The hellos as sent: the source's and our answer to it.
        let mut chan = Channel::new(cfg.key, peer, answer);
        let mut io = Buffered {
            t: transport,
            left: after_trailer,
            at: 0,
        };
        let out = verify::destination(ap.dom, &mut io, &mut chan, &view, clock)
            .map_err(DestError::Verify)?;
        let v = out.stats;
        if v.mismatched_ranges > 0 {
            return Err(DestError::PagesDiffer {
                ranges: v.mismatched_ranges,
                frames: v.mismatched_frames,
                first: v.listed.first().copied(),
            });
        }
        ap.stats.verify = Some(v);
    }
    Ok(ap.stats)
}
