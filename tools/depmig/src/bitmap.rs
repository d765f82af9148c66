//! The dom0 bitmap route: dom0 runs the source appliance's log-dirty CLEANs
//! of the guest, and Xen writes each dirty bitmap straight into the
//! appliance's own buffer, which dom0 maps.
//!
//! Why: stock Xen 4.19–4.22 copies the bitmap of `XEN_DOMCTL_shadow_op`
//! CLEAN/PEEK to the caller while it holds the target's paging lock. For a
//! translated caller (the PVH appliance) that copy takes the caller's p2m
//! lock, which ranks below, and Xen BUGs; for a PV caller (dom0) it takes no
//! such lock. So on such a hypervisor the appliance asks, and dom0 runs the
//! domctl with the mapping of the appliance's buffer as the bitmap address.
//!
//! The exchange, in the source appliance's `/local/domain/<A>/depmig/migrate/`
//! (every number canonical decimal: ASCII digits, no sign, no leading zero;
//! fields separated by one space). Its keys are defined once, for both ends,
//! in [`depmig_control::keys`] and [`depmig_control::bitmap_route`]: dom0
//! reads and writes them with that module's parsers and formatters, and adds
//! only its own policy below.
//!
//! | key | written by | value |
//! | --- | --- | --- |
//! | `bitmap-route` | dom0, armed | `auto`, `direct` or `dom0` (`--bitmap-route`) |
//! | `bitmap-reply` | dom0 (created empty when armed, `n0 r<A>`) | `<seq> ok <pages> <dirty_count> <fault_count>` or `<seq> err <errno>` |
//! | `bitmap` | the appliance, once, before its first request | `<first_gfn> <frames> <pages>` |
//! | `bitmap-request` | the appliance, per collect | `<seq> clean` or `<seq> final`, seq 1, 2, 3 … |
//!
//! `bitmap`: the buffer is `frames` consecutive 4 KiB frames of the
//! appliance from its frame `first_gfn`; it covers guest frames `0..pages`,
//! bit `g % 64` of little-endian word `g / 64` for frame `g`. `final` is the
//! pass with the guest suspended (`XEN_DOMCTL_SHADOW_LOGDIRTY_FINAL`).
//!
//! Everything the appliance writes is hostile input; [`Service`] holds to
//! these rules:
//! - The domctl always names the guest dom0 is migrating; the appliance
//!   names no domain.
//! - `bitmap` is accepted only when the contract's
//!   [`Buffer::parse`](depmig_control::bitmap_route::Buffer::parse) takes
//!   it (`pages` at least 1, `frames` exactly `ceil(pages / 32768)` and at
//!   most [`MAX_FRAMES`](depmig_control::bitmap_route::MAX_FRAMES),
//!   `first_gfn + frames` within 64 bits) and
//!   `pages` is at most the guest's frame count as Xen reports it
//!   (`XENMEM_maximum_gpfn` + 1: a PVH guest's address space reaches its
//!   special pages below 4 GiB, far beyond its memory size). The first
//!   `bitmap` dom0 reads is the one for the whole migration: a refused one
//!   stays refused, and a request while `bitmap` reads otherwise than the
//!   accepted one is refused.
//! - A request whose seq is not above the last one answered is ignored; one
//!   whose seq cannot be read is ignored (and said once); one with a
//!   readable seq but otherwise malformed is answered `err 22`. A request is
//!   never served twice: a second CLEAN would overwrite the bits the first
//!   one delivered.
//! - Errors: 22 (EINVAL) for a malformed or refused `bitmap` or request, 38
//!   (ENOSYS) where dom0 has no hypercalls (no `/dev/xen/privcmd`), 95
//!   (EOPNOTSUPP) when the source was armed `direct`, 125 (ECANCELED) for a
//!   request still open when the migration ended, else the failed
//!   hypercall's or mapping's own errno (5, EIO, when it had none).

use std::fmt;

use depmig_control::bitmap_route::{Reply, Request, Route};
use depmig_control::keys;
use depmig_privcmd::DirtyCounts;

pub use crate::toolstack::errno::{ECANCELED, EINVAL, EIO, ENOSYS, EOPNOTSUPP};
pub use crate::toolstack::{BufferError, GuestBuffer};
use crate::toolstack::{ToolError, Toolstack};

/// Longest text of the appliance's that a message quotes.
const QUOTE_CHARS: usize = 64;

/// Text the appliance wrote, for a message: escaped and cut short.
fn quoted(s: &str) -> String {
    let mut q: String = s
        .chars()
        .take(QUOTE_CHARS)
        .flat_map(char::escape_debug)
        .collect();
    if s.chars().nth(QUOTE_CHARS).is_some() {
        q.push('…');
    }
    q
}

/// A `bitmap-request` as the service sees it: a request to serve, or a
/// refused one whose sequence still reads (`Err(Some(seq))`: answered
/// `err 22`), or one that cannot even be answered (`Err(None)`).
fn read_request(text: &str) -> Result<Request, Option<u64>> {
    Request::parse(text).map_err(|_| Request::seq_of(text))
}

/// The reply for a CLEAN that ran: Xen's counters.
fn answer(seq: u64, counts: DirtyCounts) -> Reply {
    Reply::Ok {
        seq,
        pages: counts.pages,
        dirty: counts.dirty.into(),
        faults: counts.faults.into(),
    }
}

/// The reply for a request refused or failed with `errno` (positive).
fn refusal(seq: u64, errno: i32) -> Reply {
    Reply::Err {
        seq,
        errno: errno.unsigned_abs().into(),
    }
}

/// Why dom0 refuses the appliance's buffer or answers a request with an
/// error number ([`Refusal::errno`]) instead of a CLEAN.
#[derive(Debug)]
enum Refusal {
    /// the source was armed `direct` (`EOPNOTSUPP`)
    ArmedDirect,
    /// dom0 has no hypercalls (/dev/xen/privcmd) (`ENOSYS`)
    NoHypercalls,
    /// The hypercall or the mapping failed (its message; its own errno,
    /// else `EIO`).
    Host(ToolError),
    /// The buffer breaks the contract or is larger than the guest (its
    /// message; `EINVAL`).
    Buffer(BufferError),
    /// the buffer was refused (the errno it was refused with)
    BufferRefused {
        /// The errno its refusal carried.
        errno: i32,
    },
    /// no buffer published (`EINVAL`)
    NoBuffer,
    /// `bitmap` changed from `<was>` to `<now>` (`EINVAL`; both quoted)
    BufferChanged {
        /// The text dom0 took.
        was: String,
        /// The text now, if any.
        now: Option<String>,
    },
    /// `bitmap` could not be read back (the toolstack's message; `EIO`).
    Unreadable(ToolError),
}

impl Refusal {
    /// The (positive) error number the appliance is answered with.
    fn errno(&self) -> i32 {
        match self {
            Refusal::ArmedDirect => EOPNOTSUPP,
            Refusal::NoHypercalls => ENOSYS,
            Refusal::Host(e) => e.errno().unwrap_or(EIO),
            Refusal::Buffer(_) | Refusal::NoBuffer | Refusal::BufferChanged { .. } => EINVAL,
            Refusal::BufferRefused { errno } => *errno,
            Refusal::Unreadable(_) => EIO,
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::ArmedDirect => f.write_str("the source was armed `direct`"),
            Refusal::NoHypercalls => f.write_str("dom0 has no hypercalls (/dev/xen/privcmd)"),
            Refusal::Host(e) | Refusal::Unreadable(e) => e.fmt(f),
            Refusal::Buffer(e) => e.fmt(f),
            Refusal::BufferRefused { .. } => f.write_str("the buffer was refused"),
            Refusal::NoBuffer => f.write_str("no buffer published"),
            Refusal::BufferChanged { was, now } => write!(
                f,
                "`bitmap` changed from `{}` to `{}`",
                quoted(was),
                now.as_deref().map_or_else(|| "missing".into(), quoted)
            ),
        }
    }
}

impl std::error::Error for Refusal {}

/// What dom0 made of the appliance's `bitmap`.
#[derive(Debug)]
enum Published {
    /// Nothing published yet (or ever: the appliance fetches its bitmaps
    /// itself).
    No,
    /// Refused: every request is answered `err <errno>`.
    Refused { errno: i32 },
    /// Accepted: requests are served into this buffer.
    Accepted { text: String, buffer: GuestBuffer },
}

/// dom0's side of the route for one migration: [`Service::poll`] at every
/// poll of the watch, [`Service::finish`] once the migration is decided.
#[derive(Debug)]
pub struct Service {
    route: Route,
    guest: u32,
    published: Published,
    /// The highest sequence number answered (or refused).
    last_seq: u64,
    /// A reply whose write failed, written again at the next poll.
    unsent: Option<String>,
    /// The last request whose sequence number could not be read (said once).
    unreadable: Option<String>,
    /// The last xenstore failure said (said once).
    last_error: Option<String>,
}

impl Service {
    /// The route as the source was armed with it, for the migration of
    /// domain `guest` (dom0's own knowledge of it).
    pub fn new(route: Route, guest: u32) -> Service {
        Service {
            route,
            guest,
            published: Published::No,
            last_seq: 0,
            unsent: None,
            unreadable: None,
            last_error: None,
        }
    }

    /// Whether the appliance published its buffer: from then on dom0 polls
    /// at the fast period, since every collect waits for its reply.
    pub fn in_use(&self) -> bool {
        !matches!(self.published, Published::No)
    }

    /// Reads one of the appliance's keys, trimmed; `Ok(None)` when missing
    /// or empty.
    fn read<T: Toolstack + ?Sized>(
        ts: &mut T,
        src: u32,
        key: &str,
    ) -> Result<Option<String>, ToolError> {
        Ok(ts
            .xs_read(&keys::in_domain(src, key))?
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty()))
    }

    /// [`Self::read`], with a failure said once and read as nothing.
    fn read_noting<T: Toolstack + ?Sized>(
        &mut self,
        ts: &mut T,
        src: u32,
        key: &str,
        notes: &mut Vec<String>,
    ) -> Option<String> {
        match Self::read(ts, src, key) {
            Ok(v) => v,
            Err(e) => {
                let msg = format!("warning: bitmap route: {e}");
                if self.last_error.as_ref() != Some(&msg) {
                    notes.push(msg.clone());
                    self.last_error = Some(msg);
                }
                None
            }
        }
    }

    /// Serves the appliance's newest request, if it made one since the last
    /// poll; returns what is worth saying.
    pub fn poll<T: Toolstack + ?Sized>(&mut self, ts: &mut T, src: u32) -> Vec<String> {
        let mut notes = Vec::new();
        if let Some(r) = self.unsent.take() {
            self.send(ts, src, r, &mut notes);
        }
        if !self.in_use() {
            match self.read_noting(ts, src, keys::BITMAP, &mut notes) {
                Some(text) => self.publish(ts, text, &mut notes),
                None => return notes,
            }
        }
        let Some(text) = self.read_noting(ts, src, keys::BITMAP_REQUEST, &mut notes) else {
            return notes;
        };
        let reply = match read_request(&text) {
            Ok(r) if r.seq > self.last_seq => {
                self.last_seq = r.seq;
                self.serve(ts, src, r, &mut notes)
            }
            Err(Some(seq)) if seq > self.last_seq => {
                self.last_seq = seq;
                notes.push(format!(
                    "bitmap route: request `{}` refused: neither `{seq} clean` nor `{seq} final`",
                    quoted(&text)
                ));
                refusal(seq, EINVAL)
            }
            Err(None) => {
                if self.unreadable.as_ref() != Some(&text) {
                    notes.push(format!(
                        "warning: bitmap route: request `{}` has no sequence number: ignored",
                        quoted(&text)
                    ));
                    self.unreadable = Some(text);
                }
                return notes;
            }
            // Answered already (or older; or 0, below every sequence).
            Ok(_) | Err(Some(_)) => return notes,
        };
        self.send(ts, src, reply.to_text(), &mut notes);
        notes
    }

    /// Takes the appliance's `bitmap` (the first one read) or refuses it.
    fn publish<T: Toolstack + ?Sized>(
        &mut self,
        ts: &mut T,
        text: String,
        notes: &mut Vec<String>,
    ) {
        let checked = if self.route == Route::Direct {
            Err(Refusal::ArmedDirect)
        } else {
            match ts.guest_frame_count(self.guest) {
                None => Err(Refusal::NoHypercalls),
                Some(Err(e)) => Err(Refusal::Host(e)),
                Some(Ok(n)) => GuestBuffer::parse(&text, n).map_err(Refusal::Buffer),
            }
        };
        self.published = match checked {
            Ok(buffer) => {
                notes.push(format!(
                    "bitmap route: dom0 fetches domain {}'s dirty bitmaps ({} pages) into the source appliance's frames {:#x}+{}",
                    self.guest,
                    buffer.pages(),
                    buffer.first_gfn(),
                    buffer.frames()
                ));
                Published::Accepted { text, buffer }
            }
            Err(why) => {
                let errno = why.errno();
                notes.push(format!(
                    "bitmap route: the source appliance's buffer `{}` refused ({why}): its requests are answered `err {errno}`",
                    quoted(&text)
                ));
                Published::Refused { errno }
            }
        };
    }

    /// Runs one CLEAN for a new request (or says why not).
    fn serve<T: Toolstack + ?Sized>(
        &mut self,
        ts: &mut T,
        src: u32,
        req: Request,
        notes: &mut Vec<String>,
    ) -> Reply {
        let seq = req.seq;
        let refuse = |why: Refusal, notes: &mut Vec<String>| {
            let errno = why.errno();
            notes.push(format!(
                "bitmap route: request {seq} answered `err {errno}`: {why}"
            ));
            refusal(seq, errno)
        };
        let (text, buffer) = match &self.published {
            Published::Accepted { text, buffer } => (text.clone(), *buffer),
            Published::Refused { errno } => {
                return refuse(Refusal::BufferRefused { errno: *errno }, notes)
            }
            Published::No => return refuse(Refusal::NoBuffer, notes),
        };
        // The buffer dom0 took stays the buffer: another one now would be a
        // layout dom0 never checked.
        match Self::read(ts, src, keys::BITMAP) {
            Ok(Some(now)) if now == text => {}
            Ok(now) => return refuse(Refusal::BufferChanged { was: text, now }, notes),
            Err(e) => return refuse(Refusal::Unreadable(e), notes),
        }
        match ts.logdirty_clean_into(self.guest, src, &buffer, req.final_pass) {
            None => refuse(Refusal::NoHypercalls, notes),
            Some(Err(e)) => refuse(Refusal::Host(e), notes),
            Some(Ok(counts)) => {
                notes.push(format!(
                    "bitmap {seq}{}: {} pages, {} dirty",
                    if req.final_pass { " (final)" } else { "" },
                    counts.pages,
                    counts.dirty
                ));
                answer(seq, counts)
            }
        }
    }

    /// Writes a reply; one that cannot be written is kept for the next poll
    /// (the request is not served again).
    fn send<T: Toolstack + ?Sized>(
        &mut self,
        ts: &mut T,
        src: u32,
        reply: String,
        notes: &mut Vec<String>,
    ) {
        if let Err(e) = ts.xs_write(&keys::in_domain(src, keys::BITMAP_REPLY), &reply) {
            notes.push(format!(
                "warning: bitmap route: {e}; the reply is written again at the next poll"
            ));
            self.unsent = Some(reply);
        }
    }

    /// Ends the route: dom0's mapping of the buffer goes (the appliance,
    /// once destroyed, would otherwise stay dying), and with `cancel` a
    /// request still unanswered is answered `err 125`, so that the
    /// appliance need not wait out its own timeout. Called once the
    /// migration is decided and before the source appliance is destroyed.
    pub fn finish<T: Toolstack + ?Sized>(
        &mut self,
        ts: &mut T,
        src: u32,
        cancel: bool,
    ) -> Vec<String> {
        ts.logdirty_release();
        let mut notes = Vec::new();
        if !cancel || !self.in_use() {
            return notes;
        }
        if let Some(r) = self.unsent.take() {
            self.send(ts, src, r, &mut notes);
        }
        let Some(text) = self.read_noting(ts, src, keys::BITMAP_REQUEST, &mut notes) else {
            return notes;
        };
        let Some(seq) = Request::seq_of(&text) else {
            return notes;
        };
        if seq > self.last_seq {
            self.last_seq = seq;
            notes.push(format!(
                "bitmap route: request {seq} came as the migration ended: answered `err {ECANCELED}`"
            ));
            self.send(ts, src, refusal(seq, ECANCELED).to_text(), &mut notes);
        }
        notes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::Fake;
    use depmig_control::bitmap_route::RouteError;

    /// A 512 MiB PVH guest's frames: up to its special pages below 4 GiB.
    const GUEST_FRAMES: u64 = 0xff000;

    #[test]
    fn requests_are_read_strictly() {
        let ok = |seq, final_pass| Ok(Request { seq, final_pass });
        assert_eq!(read_request("1 clean"), ok(1, false));
        assert_eq!(read_request("3 final"), ok(3, true));
        // Sequences start at 1: 0 is below every one answered, ignored.
        assert_eq!(read_request("0 clean"), Err(Some(0)));
        for (text, seq) in [
            ("4", 4),
            ("4 peek", 4),
            ("4 clean extra", 4),
            ("4  clean", 4),
            ("4 Clean", 4),
            ("4 ", 4),
        ] {
            assert_eq!(read_request(text), Err(Some(seq)), "{text:?}");
        }
        for text in [
            "", "x clean", "04 clean", "-1 clean", " 1 clean", "1\tclean",
        ] {
            assert_eq!(read_request(text), Err(None), "{text:?}");
        }
    }

    #[test]
    fn replies_carry_the_seq_and_xens_counters() {
        let ok = answer(
            3,
            DirtyCounts {
                pages: 1_044_480,
                dirty: 311,
                faults: 9,
            },
        );
        assert_eq!(ok.to_text(), "3 ok 1044480 311 9");
        assert_eq!(refusal(4, 22).to_text(), "4 err 22");
    }

    #[test]
    fn refusals_keep_their_text_and_errno() {
        let denied = ToolError::Domctl {
            what: "maximum_gpfn 5".into(),
            reason: "Permission denied (os error 13)".into(),
            errno: Some(13),
        };
        let xs = ToolError::Xenstore {
            what: "read /x".into(),
            reason: "gone".into(),
        };
        for (r, errno, text) in [
            (
                Refusal::ArmedDirect,
                EOPNOTSUPP,
                "the source was armed `direct`".to_string(),
            ),
            (
                Refusal::NoHypercalls,
                ENOSYS,
                "dom0 has no hypercalls (/dev/xen/privcmd)".into(),
            ),
            (Refusal::Host(denied.clone()), 13, denied.to_string()),
            (
                Refusal::Host(ToolError::Domctl {
                    what: "maximum_gpfn 5".into(),
                    reason: "Permission denied (os error 13)".into(),
                    errno: None,
                }),
                EIO,
                "domctl maximum_gpfn 5: Permission denied (os error 13)".into(),
            ),
            (
                Refusal::Buffer(BufferError::Layout(RouteError::NoPages)),
                EINVAL,
                BufferError::Layout(RouteError::NoPages).to_string(),
            ),
            (
                Refusal::BufferRefused { errno: 95 },
                95,
                "the buffer was refused".into(),
            ),
            (Refusal::NoBuffer, EINVAL, "no buffer published".into()),
            (
                Refusal::BufferChanged {
                    was: "4096 32 1044480".into(),
                    now: None,
                },
                EINVAL,
                "`bitmap` changed from `4096 32 1044480` to `missing`".into(),
            ),
            (
                Refusal::Unreadable(xs),
                EIO,
                "xenstore read /x: gone".into(),
            ),
        ] {
            assert_eq!((r.errno(), r.to_string()), (errno, text));
        }
    }

    #[test]
    fn quotes_of_hostile_text_are_short_and_escaped() {
        assert_eq!(quoted("1 clean"), "1 clean");
        assert_eq!(quoted("a\nb\u{1b}"), "a\\nb\\u{1b}");
        let long = "9".repeat(2000);
        assert_eq!(quoted(&long), format!("{}…", "9".repeat(64)));
    }

    // The service against the fake toolstack: the appliance's keys are
    // written straight into its xenstore.

    /// The source appliance's domain id in these tests.
    const SRC: u32 = 8;

    fn host() -> Fake {
        let mut f = Fake::new(Box::new(|_| {}));
        f.domctl = true;
        f.addressable = GUEST_FRAMES;
        f
    }

    /// The source appliance's `depmig/migrate/<key>`.
    fn path(key: &str) -> String {
        format!("/local/domain/{SRC}/depmig/migrate/{key}")
    }

    fn set(f: &mut Fake, key: &str, value: &str) {
        f.xs.insert(
            path(key),
            (value.to_string(), vec![crate::toolstack::Perm::None(SRC)]),
        );
    }

    fn reply(f: &Fake) -> Option<&str> {
        f.xs.get(&path("bitmap-reply")).map(|(v, _)| v.as_str())
    }

    fn cleans(f: &Fake) -> Vec<&str> {
        f.log
            .iter()
            .filter(|l| l.starts_with("domctl shadow_op"))
            .map(String::as_str)
            .collect()
    }

    fn service() -> Service {
        Service::new(Route::Auto, 5)
    }

    #[test]
    fn nothing_is_served_before_the_buffer_is_published() {
        let mut f = host();
        let mut s = service();
        set(&mut f, "bitmap-request", "1 clean");
        assert!(s.poll(&mut f, SRC).is_empty());
        assert!(!s.in_use());
        assert_eq!(reply(&f), None);
        assert!(cleans(&f).is_empty());
    }

    #[test]
    fn each_new_request_is_served_once_for_the_migrated_guest() {
        let mut f = host();
        let mut s = service();
        set(&mut f, "bitmap", "4096 32 1044480");
        let notes = s.poll(&mut f, SRC);
        assert!(s.in_use());
        assert!(
            notes[0].contains("domain 5's dirty bitmaps (1044480 pages)")
                && notes[0].contains("frames 0x1000+32"),
            "{notes:?}"
        );
        // No request yet: nothing mapped.
        assert_eq!(reply(&f), None);
        assert!(f.maps.is_empty());
        set(&mut f, "bitmap-request", "1 clean");
        s.poll(&mut f, SRC);
        assert_eq!(reply(&f), Some("1 ok 1044480 311 9"));
        assert_eq!(f.maps, [(0, SRC)], "dom0 maps the buffer");
        // Polled again: the same request is not served twice.
        s.poll(&mut f, SRC);
        set(&mut f, "bitmap-request", "2 final");
        s.poll(&mut f, SRC);
        assert_eq!(reply(&f), Some("2 ok 1044480 311 9"));
        // An older or repeated number is ignored.
        for old in ["2 final", "1 clean", "0 clean", "2 peek"] {
            set(&mut f, "bitmap-request", old);
            assert!(s.poll(&mut f, SRC).is_empty(), "{old}");
        }
        assert_eq!(reply(&f), Some("2 ok 1044480 311 9"));
        assert_eq!(
            cleans(&f),
            [
                "domctl shadow_op clean 5 into 8:0x1000+32 pages 1044480",
                "domctl shadow_op clean final 5 into 8:0x1000+32 pages 1044480"
            ]
        );
        // Mapped once for both, and gone at the end.
        assert_eq!(f.log.iter().filter(|l| l.starts_with("map ")).count(), 1);
        s.finish(&mut f, SRC, false);
        assert!(f.maps.is_empty());
    }

    #[test]
    fn a_refused_buffer_answers_every_request_with_its_errno_and_no_domctl() {
        for (layout, errno, why) in [
            (
                "4096 33 1044480",
                EINVAL,
                "33 frames where the pages need 32",
            ),
            (
                "4096 62 2000000",
                EINVAL,
                "more than the guest's 1044480 frames",
            ),
            ("4096 4097 134250000", EINVAL, "4097 frames, more than 4096"),
            (
                "18446744073709551615 32 1044480",
                EINVAL,
                "past the last frame",
            ),
            ("4096 32", EINVAL, "not `<first_gfn> <frames> <pages>`"),
            ("4096 0 0", EINVAL, "0 pages"),
        ] {
            let mut f = host();
            let mut s = service();
            set(&mut f, "bitmap", layout);
            let notes = s.poll(&mut f, SRC);
            assert!(s.in_use(), "{layout}");
            assert!(notes[0].contains(why), "{layout}: {notes:?}");
            for seq in 1..=2 {
                set(&mut f, "bitmap-request", &format!("{seq} clean"));
                s.poll(&mut f, SRC);
                assert_eq!(reply(&f), Some(format!("{seq} err {errno}").as_str()));
            }
            assert!(cleans(&f).is_empty(), "{layout}: {:?}", f.log);
            assert!(f.maps.is_empty());
            // Published again, fixed: still the first one that counts.
            set(&mut f, "bitmap", "4096 32 1044480");
            set(&mut f, "bitmap-request", "3 clean");
            s.poll(&mut f, SRC);
            assert_eq!(reply(&f), Some(format!("3 err {errno}").as_str()));
            assert!(cleans(&f).is_empty());
        }
    }

    #[test]
    fn a_buffer_that_changes_after_it_was_taken_is_refused() {
        let mut f = host();
        let mut s = service();
        set(&mut f, "bitmap", "4096 32 1044480");
        set(&mut f, "bitmap-request", "1 clean");
        s.poll(&mut f, SRC);
        assert_eq!(reply(&f), Some("1 ok 1044480 311 9"));
        set(&mut f, "bitmap", "8192 32 1044480");
        set(&mut f, "bitmap-request", "2 clean");
        let notes = s.poll(&mut f, SRC);
        assert_eq!(reply(&f), Some("2 err 22"));
        assert!(
            notes
                .iter()
                .any(|n| n.contains("changed from `4096 32 1044480` to `8192 32 1044480`")),
            "{notes:?}"
        );
        f.xs.remove(&path("bitmap"));
        set(&mut f, "bitmap-request", "3 clean");
        s.poll(&mut f, SRC);
        assert_eq!(reply(&f), Some("3 err 22"));
        assert_eq!(cleans(&f).len(), 1);
    }

    #[test]
    fn malformed_requests_get_an_error_only_when_their_seq_reads() {
        let mut f = host();
        let mut s = service();
        set(&mut f, "bitmap", "4096 32 1044480");
        set(&mut f, "bitmap-request", "1 peek");
        s.poll(&mut f, SRC);
        assert_eq!(reply(&f), Some("1 err 22"));
        // Unreadable: ignored, said once.
        set(&mut f, "bitmap-request", "one clean");
        let notes = s.poll(&mut f, SRC);
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(notes[0].contains("no sequence number"), "{notes:?}");
        assert!(s.poll(&mut f, SRC).is_empty());
        assert_eq!(reply(&f), Some("1 err 22"));
        // A long hostile value is quoted short.
        set(&mut f, "bitmap-request", &format!("x{}", "y".repeat(1000)));
        let notes = s.poll(&mut f, SRC);
        assert!(notes[0].len() < 200, "{notes:?}");
        // The next good one is served.
        set(&mut f, "bitmap-request", "2 clean");
        s.poll(&mut f, SRC);
        assert_eq!(reply(&f), Some("2 ok 1044480 311 9"));
        assert_eq!(cleans(&f).len(), 1);
    }

    #[test]
    fn a_failing_clean_is_answered_with_its_errno() {
        let mut f = host();
        f.fail_logdirty_from = Some(1);
        let mut s = service();
        set(&mut f, "bitmap", "4096 32 1044480");
        set(&mut f, "bitmap-request", "1 clean");
        let notes = s.poll(&mut f, SRC);
        assert_eq!(reply(&f), Some("1 err 1"));
        assert!(
            notes
                .iter()
                .any(|n| n.contains("request 1 answered `err 1`")),
            "{notes:?}"
        );
        assert_eq!(cleans(&f).len(), 1, "tried once, not again");
        s.poll(&mut f, SRC);
        assert_eq!(cleans(&f).len(), 1);
    }

    #[test]
    fn without_hypercalls_or_armed_direct_requests_are_refused() {
        // No privcmd in dom0.
        let mut f = host();
        f.domctl = false;
        let mut s = service();
        set(&mut f, "bitmap", "4096 32 1044480");
        set(&mut f, "bitmap-request", "1 clean");
        s.poll(&mut f, SRC);
        assert_eq!(reply(&f), Some("1 err 38"));
        // The frame count cannot be asked.
        let mut f = host();
        f.fail_domctl = true;
        let mut s = service();
        set(&mut f, "bitmap", "4096 32 1044480");
        set(&mut f, "bitmap-request", "1 clean");
        s.poll(&mut f, SRC);
        assert_eq!(reply(&f), Some("1 err 13"));
        // Armed direct: the appliance was to fetch its bitmaps itself.
        let mut f = host();
        let mut s = Service::new(Route::Direct, 5);
        set(&mut f, "bitmap", "4096 32 1044480");
        set(&mut f, "bitmap-request", "1 clean");
        let notes = s.poll(&mut f, SRC);
        assert_eq!(reply(&f), Some("1 err 95"));
        assert!(notes[0].contains("armed `direct`"), "{notes:?}");
        assert!(cleans(&f).is_empty());
        assert!(!f.log.iter().any(|l| l.contains("maximum_gpfn")));
    }

    #[test]
    fn a_reply_that_cannot_be_written_is_written_at_the_next_poll() {
        let mut f = host();
        let mut s = service();
        set(&mut f, "bitmap", "4096 32 1044480");
        set(&mut f, "bitmap-request", "1 clean");
        f.fail_write = Some(path("bitmap-reply"));
        let notes = s.poll(&mut f, SRC);
        assert!(
            notes.iter().any(|n| n.contains("written again")),
            "{notes:?}"
        );
        assert_eq!(reply(&f), None);
        f.fail_write = None;
        s.poll(&mut f, SRC);
        assert_eq!(reply(&f), Some("1 ok 1044480 311 9"));
        assert_eq!(cleans(&f).len(), 1, "the CLEAN ran once");
    }

    #[test]
    fn finishing_unmaps_and_cancels_an_open_request() {
        let mut f = host();
        let mut s = service();
        set(&mut f, "bitmap", "4096 32 1044480");
        set(&mut f, "bitmap-request", "1 clean");
        s.poll(&mut f, SRC);
        assert_eq!(f.maps, [(0, SRC)]);
        // A request the watch never polled.
        set(&mut f, "bitmap-request", "2 clean");
        let notes = s.finish(&mut f, SRC, true);
        assert!(f.maps.is_empty());
        assert_eq!(reply(&f), Some("2 err 125"));
        assert!(notes[0].contains("request 2"), "{notes:?}");
        assert_eq!(cleans(&f).len(), 1);
        // Answered ones are left alone; without `cancel` nothing is read.
        let mut f = host();
        let mut s = service();
        set(&mut f, "bitmap", "4096 32 1044480");
        set(&mut f, "bitmap-request", "1 clean");
        s.poll(&mut f, SRC);
        assert!(s.finish(&mut f, SRC, true).is_empty());
        assert_eq!(reply(&f), Some("1 ok 1044480 311 9"));
        set(&mut f, "bitmap-request", "2 clean");
        assert!(s.finish(&mut f, SRC, false).is_empty());
        assert_eq!(reply(&f), Some("1 ok 1044480 311 9"));
        // A route never used: nothing to cancel.
        let mut f = host();
        set(&mut f, "bitmap-request", "1 clean");
        assert!(service().finish(&mut f, SRC, true).is_empty());
        assert_eq!(reply(&f), None);
    }
}
