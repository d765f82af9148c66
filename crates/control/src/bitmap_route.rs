//! How the source appliance gets the guest's dirty bitmap, and the small
//! xenstore exchange of the dom0 route, defined once for both ends.
//!
//! Stock Xen 4.19–4.22 copies a log-dirty bitmap to the caller of
//! `XEN_DOMCTL_shadow_op` while it holds the target's paging lock; for a
//! translated caller (the PVH appliance) that copy takes the caller's p2m
//! lock, which ranks below, and Xen stops the host. A PV dom0's copy takes
//! no such lock. So on such a hypervisor dom0 runs the CLEAN for the
//! appliance, into the appliance's own buffer, which dom0 maps.
//!
//! Keys, in the source appliance's `depmig/migrate/` directory:
//! - `bitmap-route` ([`keys::BITMAP_ROUTE`], dom0 → appliance, armed):
//!   [`Route`]'s text.
//! - `bitmap` ([`keys::BITMAP`], appliance → dom0, once): [`Buffer`]: where
//!   the buffer is.
//! - `bitmap-request` ([`keys::BITMAP_REQUEST`], appliance → dom0):
//!   [`Request`], `<seq> clean|final`.
//! - `bitmap-reply` ([`keys::BITMAP_REPLY`], dom0 → appliance; dom0 owns
//!   it, the appliance may only read it): [`Reply`],
//!   `<seq> ok <pages> <dirty> <faults>` or `<seq> err <errno>`.
//!
//! Every number is canonical decimal (ASCII digits, no sign, no leading
//! zero but `0` itself, within 64 bits) and fields are separated by exactly
//! one space, as `to_text` writes them. Everything here parses what the
//! other side wrote: strictly (both ends read a key the same way: only the
//! form its writer produces), bounded, never panicking.

use alloc::format;
use alloc::string::String;

#[cfg(doc)]
use crate::keys;

/// Bits of the bitmap one 4 KiB frame holds.
pub const PAGES_PER_FRAME: u64 = 4096 * 8;
/// Most frames a bitmap buffer may span (16 MiB of bitmap: a 512 GiB guest).
pub const MAX_FRAMES: u64 = 4096;

/// Who fetches the dirty bitmap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// The appliance on a hypervisor known to copy outside the paging lock,
    /// otherwise dom0.
    Auto,
    /// The appliance itself (`XEN_DOMCTL_shadow_op` with its own buffer):
    /// only on a hypervisor that carries the fix.
    Direct,
    /// dom0, into the appliance's buffer, through the keys above.
    Dom0,
}

impl Route {
    /// The key's text.
    pub fn as_str(self) -> &'static str {
        match self {
            Route::Auto => "auto",
            Route::Direct => "direct",
            Route::Dom0 => "dom0",
        }
    }

    /// Parses the key (absent or empty: [`Route::Auto`]); nothing around
    /// the word.
    pub fn parse(s: &str) -> Result<Route, RouteError> {
        match s {
            "" | "auto" => Ok(Route::Auto),
            "direct" => Ok(Route::Direct),
            "dom0" => Ok(Route::Dom0),
            _ => Err(RouteError::UnknownRoute),
        }
    }

    /// The route to take, given whether the hypervisor is known to copy
    /// bitmaps outside the paging lock: `Auto` stands for `Direct` there and
    /// for `Dom0` elsewhere; `Direct` elsewhere is refused, as it would stop
    /// the host.
    pub fn resolve(self, hypervisor_has_fix: bool) -> Result<Route, DirectWithoutFix> {
        match self {
            Route::Auto if hypervisor_has_fix => Ok(Route::Direct),
            Route::Auto => Ok(Route::Dom0),
            Route::Direct if !hypervisor_has_fix => Err(DirectWithoutFix),
            r => Ok(r),
        }
    }
}

/// Whether a hypervisor whose version carries `extra` (Xen's extra version,
/// e.g. `.4` or `.4-logdirtyfix`, or the whole `4.20.4-logdirtyfix`) is
/// known to copy dirty bitmaps outside the paging lock: the builds that
/// carry the fix say so in their extra version (`-logdirtyfix` for stock
/// Xen with the fix prepared for upstream, `-depmig` for the patched 4.17).
pub fn hypervisor_has_fix(extra: &str) -> bool {
    extra.contains("-logdirtyfix") || extra.contains("-depmig")
}

/// [`Route::Direct`] asked for on a hypervisor not known to carry the fix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DirectWithoutFix;

impl core::fmt::Display for DirectWithoutFix {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(
            "bitmap route `direct` needs a hypervisor that copies dirty bitmaps outside \
             the paging lock (its version says -logdirtyfix); stock Xen stops the host \
             when a PVH domain fetches one: use `auto` or `dom0`",
        )
    }
}

/// A key of the exchange that cannot be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RouteError {
    /// `bitmap-route` is none of auto, direct, dom0.
    UnknownRoute,
    /// A field is missing or not canonical decimal, fields are not
    /// separated by single spaces, or there are extra fields.
    Malformed,
    /// `bitmap` covers no pages.
    NoPages,
    /// `bitmap` spans more than [`MAX_FRAMES`] frames.
    TooManyFrames {
        /// The frames given.
        frames: u64,
    },
    /// `bitmap`'s frames are not `ceil(pages / PAGES_PER_FRAME)`.
    WrongFrames {
        /// The frames given.
        frames: u64,
        /// The frames its pages need.
        need: u64,
    },
    /// `bitmap`'s frames run past the last frame number.
    Overflow,
    /// A request is neither `clean` nor `final`, or its sequence is 0.
    BadRequest,
    /// A reply's status is neither `ok` nor `err`.
    BadReply,
}

impl core::fmt::Display for RouteError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            RouteError::UnknownRoute => f.write_str("bitmap route must be auto, direct or dom0"),
            RouteError::Malformed => f.write_str(
                "malformed bitmap key: canonical decimal fields separated by single spaces",
            ),
            RouteError::NoPages => f.write_str("a bitmap of 0 pages"),
            RouteError::TooManyFrames { frames } => {
                write!(f, "{frames} frames, more than {MAX_FRAMES}")
            }
            RouteError::WrongFrames { frames, need } => {
                write!(f, "{frames} frames where the pages need {need}")
            }
            RouteError::Overflow => f.write_str("the frames run past the last frame number"),
            RouteError::BadRequest => {
                f.write_str("bitmap request must be '<seq> clean|final', seq > 0")
            }
            RouteError::BadReply => {
                f.write_str("bitmap reply must be '<seq> ok ...' or '<seq> err <errno>'")
            }
        }
    }
}

/// A canonical decimal number: 1 to 20 ASCII digits, no leading zero (but
/// `0` itself), within `u64`. One spelling per number, so that a key reads
/// the same at both ends whatever parser a future end uses.
fn decimal(s: &str) -> Option<u64> {
    let canonical = !s.is_empty()
        && s.len() <= 20
        && s.bytes().all(|b| b.is_ascii_digit())
        && (s == "0" || !s.starts_with('0'));
    if canonical {
        s.parse().ok()
    } else {
        None
    }
}

/// A key's fields: separated by exactly one space, so that a doubled,
/// leading or trailing space reads as an empty field and a tab as part of
/// one (both refused by [`num`] and by every keyword).
fn fields(s: &str) -> core::str::Split<'_, char> {
    s.split(' ')
}

fn num(field: Option<&str>) -> Result<u64, RouteError> {
    field.and_then(decimal).ok_or(RouteError::Malformed)
}

/// Where the appliance's bitmap buffer lies (the `bitmap` key).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Buffer {
    /// The appliance's frame number of the buffer's first frame.
    pub first_gfn: u64,
    /// Consecutive frames, exactly `ceil(pages / PAGES_PER_FRAME)`.
    pub frames: u64,
    /// Guest frames the bitmap covers (bit `g % 64` of little-endian word
    /// `g / 64` is guest frame `g`).
    pub pages: u64,
}

impl Buffer {
    /// A buffer for `pages` guest frames at `first_gfn`, checked.
    pub fn new(first_gfn: u64, pages: u64) -> Result<Buffer, RouteError> {
        let frames = pages.div_ceil(PAGES_PER_FRAME);
        let b = Buffer {
            first_gfn,
            frames,
            pages,
        };
        b.check()?;
        Ok(b)
    }

    fn check(&self) -> Result<(), RouteError> {
        let frames = self.frames;
        if self.pages == 0 {
            return Err(RouteError::NoPages);
        }
        if frames > MAX_FRAMES {
            return Err(RouteError::TooManyFrames { frames });
        }
        let need = self.pages.div_ceil(PAGES_PER_FRAME);
        if frames != need {
            return Err(RouteError::WrongFrames { frames, need });
        }
        if self.first_gfn.checked_add(frames).is_none() {
            return Err(RouteError::Overflow);
        }
        Ok(())
    }

    /// The key's text.
    pub fn to_text(&self) -> String {
        format!("{} {} {}", self.first_gfn, self.frames, self.pages)
    }

    /// Parses and checks the key.
    pub fn parse(s: &str) -> Result<Buffer, RouteError> {
        let mut it = fields(s);
        let b = Buffer {
            first_gfn: num(it.next())?,
            frames: num(it.next())?,
            pages: num(it.next())?,
        };
        if it.next().is_some() {
            return Err(RouteError::Malformed);
        }
        b.check()?;
        Ok(b)
    }
}

/// One request for a CLEAN (the `bitmap-request` key).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request {
    /// Strictly increasing from 1.
    pub seq: u64,
    /// With `XEN_DOMCTL_SHADOW_LOGDIRTY_FINAL` (the guest is suspended).
    pub final_pass: bool,
}

impl Request {
    /// The key's text.
    pub fn to_text(&self) -> String {
        format!(
            "{} {}",
            self.seq,
            if self.final_pass { "final" } else { "clean" }
        )
    }

    /// Parses the key.
    pub fn parse(s: &str) -> Result<Request, RouteError> {
        let mut it = fields(s);
        let seq = num(it.next())?;
        let final_pass = match it.next() {
            Some("clean") => false,
            Some("final") => true,
            _ => return Err(RouteError::BadRequest),
        };
        if it.next().is_some() {
            return Err(RouteError::Malformed);
        }
        if seq == 0 {
            return Err(RouteError::BadRequest);
        }
        Ok(Request { seq, final_pass })
    }

    /// The sequence a request names, read even where [`Request::parse`]
    /// refuses the rest (or the sequence itself, 0): so that dom0 can
    /// answer a malformed request rather than leave the appliance waiting.
    /// `None` when not even that reads.
    pub fn seq_of(s: &str) -> Option<u64> {
        fields(s).next().and_then(decimal)
    }
}

/// What dom0 answers (the `bitmap-reply` key).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reply {
    /// The CLEAN ran; Xen's counters.
    Ok {
        /// The request's sequence.
        seq: u64,
        /// Pages Xen covered.
        pages: u64,
        /// Xen's dirty counter before the CLEAN reset it.
        dirty: u64,
        /// Xen's fault counter before the CLEAN reset it.
        faults: u64,
    },
    /// It failed: a positive errno (Xen's, or dom0's refusal).
    Err {
        /// The request's sequence.
        seq: u64,
        /// The error number.
        errno: u64,
    },
}

impl Reply {
    /// The sequence it answers.
    pub fn seq(&self) -> u64 {
        match *self {
            Reply::Ok { seq, .. } | Reply::Err { seq, .. } => seq,
        }
    }

    /// The key's text.
    pub fn to_text(&self) -> String {
        match *self {
            Reply::Ok {
                seq,
                pages,
                dirty,
                faults,
            } => format!("{seq} ok {pages} {dirty} {faults}"),
            Reply::Err { seq, errno } => format!("{seq} err {errno}"),
        }
    }

    /// Parses the key.
    pub fn parse(s: &str) -> Result<Reply, RouteError> {
        let mut it = fields(s);
        let seq = num(it.next())?;
        let r = match it.next() {
            Some("ok") => Reply::Ok {
                seq,
                pages: num(it.next())?,
                dirty: num(it.next())?,
                faults: num(it.next())?,
            },
            Some("err") => Reply::Err {
                seq,
                errno: num(it.next())?,
            },
            _ => return Err(RouteError::BadReply),
        };
        if it.next().is_some() {
            return Err(RouteError::Malformed);
        }
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn routes() {
        for r in [Route::Auto, Route::Direct, Route::Dom0] {
            assert_eq!(Route::parse(r.as_str()), Ok(r));
        }
        assert_eq!(Route::parse(""), Ok(Route::Auto));
        for bad in ["Direct", "xl", "dom0 ", " dom0", "dom0\n", "\tauto", " "] {
            assert_eq!(Route::parse(bad), Err(RouteError::UnknownRoute), "{bad:?}");
        }
        assert_eq!(Route::Auto.resolve(true), Ok(Route::Direct));
        assert_eq!(Route::Auto.resolve(false), Ok(Route::Dom0));
        assert_eq!(Route::Direct.resolve(true), Ok(Route::Direct));
        assert_eq!(Route::Direct.resolve(false), Err(DirectWithoutFix));
        assert_eq!(Route::Dom0.resolve(true), Ok(Route::Dom0));
        assert_eq!(Route::Dom0.resolve(false), Ok(Route::Dom0));
        assert!(hypervisor_has_fix(".4-logdirtyfix"));
        assert!(hypervisor_has_fix("4.20.4-logdirtyfix"));
        assert!(hypervisor_has_fix(".5-depmig"));
        assert!(!hypervisor_has_fix(".4"));
        assert!(!hypervisor_has_fix("4.20.4"));
        assert!(DirectWithoutFix.to_string().contains("stops the host"));
    }

    #[test]
    fn numbers_are_canonical_decimal() {
        assert_eq!(decimal("0"), Some(0));
        assert_eq!(decimal("4096"), Some(4096));
        assert_eq!(decimal("18446744073709551615"), Some(u64::MAX));
        for bad in [
            "",
            "007",
            "00",
            "+1",
            "-1",
            " 1",
            "1 ",
            "0x10",
            "1e3",
            "18446744073709551616",
            "123456789012345678901",
            "\u{661}",
        ] {
            assert_eq!(decimal(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn buffers() {
        let b = Buffer::new(0x1234, 65536).unwrap();
        assert_eq!(b.frames, 2);
        assert_eq!(Buffer::parse(&b.to_text()), Ok(b));
        assert_eq!(Buffer::new(7, 65537).unwrap().frames, 3);
        assert_eq!(
            Buffer::parse("4096 32 1044480"),
            Ok(Buffer {
                first_gfn: 4096,
                frames: 32,
                pages: 1_044_480
            })
        );
        assert_eq!(Buffer::parse("0 1 1").map(|b| b.frames), Ok(1));
        // A partial last frame counts.
        assert_eq!(Buffer::parse("7 2 32769").map(|b| b.frames), Ok(2));
        // The largest buffer: 16 MiB of bitmap at the top of the range.
        let top = u64::MAX - MAX_FRAMES;
        assert_eq!(
            Buffer::parse(&format!("{top} 4096 134217728")).map(|b| b.frames),
            Ok(MAX_FRAMES)
        );
        for bad in [
            "",
            "1 2",
            "1 2 65536 4",
            "x 2 65536",
            "-1 2 65536",
            "1 +2 65536",
            "0x1000 32 1044480",
            "1 2 99999999999999999999999",
            "18446744073709551616 32 1044480",
            // What the appliance never writes: leading zeros, other spacing.
            "4096 032 1044480",
            "04096 32 1044480",
            "4096  32 1044480",
            "4096\t32\t1044480",
            "4096 32 1044480 ",
            " 4096 32 1044480",
            "4096 32 1044480\n",
        ] {
            assert_eq!(Buffer::parse(bad), Err(RouteError::Malformed), "{bad:?}");
        }
    }

    #[test]
    fn each_bad_buffer_is_refused_for_its_own_reason() {
        for (bad, why) in [
            ("1 0 0", RouteError::NoPages),
            ("4096 1 0", RouteError::NoPages),
            (
                "1 4097 134250000",
                RouteError::TooManyFrames { frames: 4097 },
            ),
            (
                "4096 18446744073709551615 1044480",
                RouteError::TooManyFrames { frames: u64::MAX },
            ),
            ("1 3 65536", RouteError::WrongFrames { frames: 3, need: 2 }),
            ("1 1 65536", RouteError::WrongFrames { frames: 1, need: 2 }),
            (
                "4096 33 1044480",
                RouteError::WrongFrames {
                    frames: 33,
                    need: 32,
                },
            ),
            ("18446744073709551615 2 65536", RouteError::Overflow),
            // One frame past the end.
            ("18446744073709551584 32 1044480", RouteError::Overflow),
        ] {
            assert_eq!(Buffer::parse(bad), Err(why), "{bad}");
        }
        assert_eq!(Buffer::new(1, 0), Err(RouteError::NoPages));
        assert_eq!(
            Buffer::new(1, MAX_FRAMES * PAGES_PER_FRAME + 1),
            Err(RouteError::TooManyFrames { frames: 4097 })
        );
        assert_eq!(Buffer::new(u64::MAX, 1), Err(RouteError::Overflow));
    }

    #[test]
    fn requests_and_replies() {
        for r in [
            Request {
                seq: 1,
                final_pass: false,
            },
            Request {
                seq: 9,
                final_pass: true,
            },
        ] {
            assert_eq!(Request::parse(&r.to_text()), Ok(r));
        }
        assert_eq!(Request::parse("0 clean"), Err(RouteError::BadRequest));
        assert_eq!(Request::parse("1 peek"), Err(RouteError::BadRequest));
        assert_eq!(Request::parse("1 clean x"), Err(RouteError::Malformed));
        for r in [
            Reply::Ok {
                seq: 3,
                pages: 65536,
                dirty: 12,
                faults: 40,
            },
            Reply::Err { seq: 4, errno: 22 },
        ] {
            assert_eq!(Reply::parse(&r.to_text()), Ok(r));
            assert!(r.seq() == 3 || r.seq() == 4);
        }
        let ok = Reply::Ok {
            seq: 3,
            pages: 1_044_480,
            dirty: 311,
            faults: 9,
        };
        assert_eq!(ok.to_text(), "3 ok 1044480 311 9");
        assert_eq!(Reply::Err { seq: 4, errno: 22 }.to_text(), "4 err 22");
        assert_eq!(Reply::parse("3 maybe"), Err(RouteError::BadReply));
        assert_eq!(Reply::parse("3 ok 1 2"), Err(RouteError::Malformed));
        assert_eq!(Reply::parse(""), Err(RouteError::Malformed));
    }

    #[test]
    fn requests_are_read_strictly_but_a_readable_seq_is_answerable() {
        assert_eq!(
            Request::parse("3 final"),
            Ok(Request {
                seq: 3,
                final_pass: true
            })
        );
        // Its sequence reads: dom0 can answer it with an error.
        for (text, why) in [
            ("4", RouteError::BadRequest),
            ("4 peek", RouteError::BadRequest),
            ("4 Clean", RouteError::BadRequest),
            ("4 ", RouteError::BadRequest),
            ("4  clean", RouteError::BadRequest),
            ("4 clean extra", RouteError::Malformed),
            ("4 clean ", RouteError::Malformed),
        ] {
            assert_eq!(Request::parse(text), Err(why), "{text:?}");
            assert_eq!(Request::seq_of(text), Some(4), "{text:?}");
        }
        // Sequence 0 reads but is never a request (they start at 1).
        assert_eq!(Request::parse("0 clean"), Err(RouteError::BadRequest));
        assert_eq!(Request::seq_of("0 clean"), Some(0));
        // Not even the sequence reads.
        for text in [
            "", "x clean", "04 clean", "-1 clean", "+1 clean", " 1 clean", "1\tclean",
        ] {
            assert_eq!(Request::parse(text), Err(RouteError::Malformed), "{text:?}");
            assert_eq!(Request::seq_of(text), None, "{text:?}");
        }
    }

    #[test]
    fn replies_are_read_strictly() {
        for bad in [
            "3 ok 1 2 3 ",
            "3 ok 1 2 03",
            "03 err 22",
            "3\terr\t22",
            "3 err 22\n",
            "3 err -22",
            "3 err 22 1",
        ] {
            assert_eq!(Reply::parse(bad), Err(RouteError::Malformed), "{bad:?}");
        }
        for bad in ["3 OK 1 2 3", "3  ok 1 2 3", "3 "] {
            assert_eq!(Reply::parse(bad), Err(RouteError::BadReply), "{bad:?}");
        }
    }

    #[test]
    fn errors_say_what_is_wrong() {
        for (e, says) in [
            (RouteError::NoPages, "0 pages"),
            (
                RouteError::TooManyFrames { frames: 4097 },
                "4097 frames, more than 4096",
            ),
            (
                RouteError::WrongFrames {
                    frames: 33,
                    need: 32,
                },
                "33 frames where the pages need 32",
            ),
            (RouteError::Overflow, "past the last frame number"),
        ] {
            assert!(format!("{e}").contains(says), "{e}");
        }
    }

    proptest! {
        #[test]
        fn every_key_reads_as_written(
            first_gfn in any::<u64>(),
            pages in 1..=MAX_FRAMES * PAGES_PER_FRAME,
            seq in 1..=u64::MAX,
            final_pass in any::<bool>(),
            (a, b, c) in (any::<u64>(), any::<u64>(), any::<u64>()),
        ) {
            match Buffer::new(first_gfn, pages) {
                Ok(buf) => prop_assert_eq!(Buffer::parse(&buf.to_text()), Ok(buf)),
                Err(e) => prop_assert_eq!(e, RouteError::Overflow),
            }
            let req = Request { seq, final_pass };
            prop_assert_eq!(Request::parse(&req.to_text()), Ok(req));
            prop_assert_eq!(Request::seq_of(&req.to_text()), Some(seq));
            for reply in [
                Reply::Ok { seq: a, pages: b, dirty: c, faults: a ^ b },
                Reply::Err { seq: a, errno: b },
            ] {
                prop_assert_eq!(Reply::parse(&reply.to_text()), Ok(reply));
            }
        }

        #[test]
        fn no_text_makes_a_parser_panic(s in "[0-9 a-z\t\n+-]{0,48}|\\PC{0,48}") {
            let _ = Route::parse(&s);
            let _ = Buffer::parse(&s);
            let _ = Request::parse(&s);
            let _ = Request::seq_of(&s);
            let _ = Reply::parse(&s);
        }
    }
}
