//! The words of the contract: the values of `role`, `mode`, `policy`,
//! `fault`, `state` and `result`, each with one text form, and why a value
//! is refused.

use alloc::format;
use alloc::string::String;
use core::fmt;

/// Why a value of the contract was refused. The appliance reports some by
/// name (`mode: BadMode`); the message says what was wanted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ControlError {
    /// Not a [`Role`].
    BadRole,
    /// Not a [`Mode`].
    BadMode,
    /// Not a [`Policy`].
    BadPolicy,
    /// Not a [`Fault`].
    BadFault,
    /// Not a [`Verify`].
    BadVerify,
    /// Not a [`State`].
    BadState,
    /// Not a [`Verdict`].
    BadVerdict,
    /// The shared key is not 64 hex digits ([`crate::KeyError`] says how).
    BadKey,
    /// Not a domid a guest can have ([`crate::addr::parse_domid`]).
    BadDomid,
    /// Not a TCP port ([`crate::addr::parse_port`]).
    BadPort,
    /// Not `IP:PORT` ([`crate::Peer`]).
    BadPeer,
    /// IPv4 address is not of the form a.b.c.d.
    BadIpv4,
    /// Prefix length is not a number from 0 to 32.
    BadPrefix,
    /// Not a [`Compress`].
    BadCompress,
    /// Not an [`Encrypt`].
    BadEncrypt,
    /// Not a [`DeltaCache`] size.
    BadDeltaCache,
    /// Not an [`Encodings`].
    BadEncodings,
}

/// Writes "`what` must be a, b or c".
fn one_of(f: &mut fmt::Formatter<'_>, what: &str, words: &[&str]) -> fmt::Result {
    write!(f, "{what} must be ")?;
    for (i, w) in words.iter().enumerate() {
        let sep = match i {
            0 => "",
            i if i + 1 == words.len() => " or ",
            _ => ", ",
        };
        write!(f, "{sep}{w}")?;
    }
    Ok(())
}

impl fmt::Display for ControlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ControlError::BadRole => one_of(f, "role", &Role::ALL.map(Role::as_str)),
            ControlError::BadMode => one_of(f, "mode", &Mode::ALL.map(Mode::as_str)),
            ControlError::BadPolicy => one_of(f, "policy", &Policy::ALL.map(Policy::as_str)),
            ControlError::BadFault => one_of(f, "fault", &Fault::ALL.map(Fault::as_str)),
            ControlError::BadVerify => one_of(f, "verify", &Verify::ALL.map(Verify::as_str)),
            ControlError::BadState => one_of(f, "state", &State::ALL.map(State::as_str)),
            ControlError::BadVerdict => one_of(f, "verdict", &Verdict::ALL.map(Verdict::as_str)),
            ControlError::BadKey => f.write_str("the key must be 64 hex digits"),
            ControlError::BadDomid => f.write_str("not a guest's domid (1 to 32751)"),
            ControlError::BadPort => f.write_str("not a TCP port (1 to 65535)"),
            ControlError::BadPeer => f.write_str("peer must be IP:PORT"),
            ControlError::BadIpv4 => f.write_str("IPv4 address is not of the form a.b.c.d"),
            ControlError::BadPrefix => f.write_str("prefix length is not a number from 0 to 32"),
            ControlError::BadCompress => {
                one_of(f, "compress", &Compress::ALL.map(Compress::as_str))
            }
            ControlError::BadEncrypt => one_of(f, "encrypt", &Encrypt::ALL.map(Encrypt::as_str)),
            ControlError::BadEncodings => {
                one_of(f, "encodings", &Encodings::ALL.map(Encodings::as_str))
            }
            ControlError::BadDeltaCache => write!(
                f,
                "delta-cache must be a whole number of MiB from 0 to {}",
                DeltaCache::MAX_MIB
            ),
        }
    }
}

impl core::error::Error for ControlError {}

/// An enum of the contract with one text form per value: `ALL`, `as_str`
/// and the `parse` that takes exactly what `as_str` writes, so that the
/// text of a value is written down once.
macro_rules! words {
    (
        $(#[$meta:meta])*
        pub enum $name:ident, refused as $err:ident {
            $($(#[$vmeta:meta])* $variant:ident = $text:literal,)+
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            /// Every value, in the order declared.
            pub const ALL: [$name; [$($name::$variant),+].len()] = [$($name::$variant),+];

            /// The value's one text form, as written to xenstore.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }

            /// Reads exactly what [`Self::as_str`] writes: nothing around
            /// it, no other spelling.
            pub fn parse(s: &str) -> Result<$name, ControlError> {
                $name::ALL
                    .into_iter()
                    .find(|v| v.as_str() == s)
                    .ok_or(ControlError::$err)
            }
        }
    };
}

words! {
    /// Which side of a migration an appliance plays (`role`).
    pub enum Role, refused as BadRole {
        /// Maps and streams the guest.
        Source = "source",
        /// Fills the paused shell.
        Destination = "destination",
        /// Only resumes a guest left suspended by a source that died.
        Resume = "resume",
    }
}

words! {
    /// How the source chooses pages (`mode`): the modes an appliance may be
    /// armed with. The engine's own mode (`depmig_precopy::Mode`) has one
    /// more, unsound, for the simulator only.
    pub enum Mode, refused as BadMode {
        /// Classic pre-copy: every dirty page, every round.
        Baseline = "baseline",
        /// Quiet untainted process groups frozen for the migration.
        DependencyAware = "dependency-aware",
        /// Baseline transfer, with dirty vs dirty-and-tainted pages counted
        /// per round (the paper's own measurement).
        PaperAnalysis = "paper-analysis",
    }
}

impl Mode {
    /// The mode when dom0 names none.
    pub const DEFAULT: Mode = Mode::Baseline;

    /// Reads the `mode` key as the appliance does (its values trimmed):
    /// empty or absent is [`Mode::DEFAULT`].
    pub fn from_key(s: &str) -> Result<Mode, ControlError> {
        if s.is_empty() {
            Ok(Mode::DEFAULT)
        } else {
            Mode::parse(s)
        }
    }
}

words! {
    /// When pre-copy stops (`policy`).
    pub enum Policy, refused as BadPolicy {
        /// Xen 3.3's rule: 30 rounds, 3x memory, 50 pages.
        Xen33 = "xen-3.3",
        /// Xen 4.x's rule: 5 live rounds, 50 pages.
        Xen4 = "xen-4",
        /// Driven by measured bandwidth and a downtime target.
        Adaptive = "adaptive",
    }
}

impl Policy {
    /// The policy when dom0 names none.
    pub const DEFAULT: Policy = Policy::Xen4;

    /// The name reports give [`Policy::Xen4`] (the engine's
    /// `depmig_precopy::Xen4x`); the `policy` key takes it too, though dom0
    /// never writes it.
    pub const XEN4_REPORT_NAME: &'static str = "xen-4.x";

    /// Reads the `policy` key as the appliance does (its values trimmed):
    /// empty or absent is [`Policy::DEFAULT`].
    pub fn from_key(s: &str) -> Result<Policy, ControlError> {
        match s {
            "" => Ok(Policy::DEFAULT),
            Policy::XEN4_REPORT_NAME => Ok(Policy::Xen4),
            _ => Policy::parse(s),
        }
    }
}

words! {
    /// How pages travel (`compress`): the source offers it, the destination
    /// accepts it; pages are compressed only when both were armed with it.
    pub enum Compress, refused as BadCompress {
        /// Xen's PAGE_DATA, pages as they are.
        None = "none",
        /// depmig's packed page record: LZ4 per page, zero pages without
        /// data, pages that do not shrink raw.
        Lz4 = "lz4",
    }
}

impl Compress {
    /// The codec when dom0 names none: off, so that a stream is Xen's own
    /// unless asked otherwise.
    pub const DEFAULT: Compress = Compress::None;

    /// Reads the `compress` key as the appliance does (its values trimmed):
    /// empty or absent is [`Compress::DEFAULT`].
    pub fn from_key(s: &str) -> Result<Compress, ControlError> {
        if s.is_empty() {
            Ok(Compress::DEFAULT)
        } else {
            Compress::parse(s)
        }
    }
}

/// The source's cache of re-sent pages, in MiB (`delta-cache`): deltas
/// are offered, and accepted, only when it is not 0. dom0 writes the same
/// value to both appliances.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct DeltaCache(pub u32);

impl DeltaCache {
    /// Off: what an absent key means.
    pub const OFF: DeltaCache = DeltaCache(0);
    /// Largest size the contract carries; an appliance refuses any that
    /// does not fit its heap.
    pub const MAX_MIB: u32 = 1024;

    /// Whether deltas are on.
    pub fn is_on(self) -> bool {
        self.0 > 0
    }

    /// Parses a size: decimal digits, 0 to [`DeltaCache::MAX_MIB`].
    pub fn parse(s: &str) -> Result<DeltaCache, ControlError> {
        if s.is_empty() || s.len() > 4 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ControlError::BadDeltaCache);
        }
        match s.parse::<u32>() {
            Ok(v) if v <= Self::MAX_MIB => Ok(DeltaCache(v)),
            _ => Err(ControlError::BadDeltaCache),
        }
    }

    /// Reads the `delta-cache` key as the appliance does (its values
    /// trimmed): empty or absent is [`DeltaCache::OFF`].
    pub fn from_key(s: &str) -> Result<DeltaCache, ControlError> {
        if s.is_empty() {
            Ok(DeltaCache::OFF)
        } else {
            DeltaCache::parse(s)
        }
    }

    /// The key's value.
    pub fn to_key(self) -> String {
        format!("{}", self.0)
    }
}

words! {
    /// Whether the stream crosses the link in sealed records (`encrypt`):
    /// ChaCha20-Poly1305 per record under keys of this migration alone.
    /// An appliance armed with it requires it of its peer: the source
    /// refuses a destination that does not take it before any page is
    /// sent, the destination refuses a source that does not offer it.
    pub enum Encrypt, refused as BadEncrypt {
        /// In clear, authenticated by the transcript tag.
        Off = "off",
        /// Sealed records.
        On = "on",
    }
}

impl Encrypt {
    /// Encryption when dom0 names none: on, so that a stream is never in
    /// clear on a network unless the operator asked for it.
    pub const DEFAULT: Encrypt = Encrypt::On;

    /// Reads the `encrypt` key as the appliance does (its value trimmed):
    /// empty or absent is [`Encrypt::DEFAULT`].
    pub fn from_key(s: &str) -> Result<Encrypt, ControlError> {
        if s.is_empty() {
            Ok(Encrypt::DEFAULT)
        } else {
            Encrypt::parse(s)
        }
    }

    /// Whether the stream is sealed.
    pub const fn is_on(self) -> bool {
        matches!(self, Encrypt::On)
    }
}

words! {
    /// Whether the source may switch the agreed encodings (`compress`,
    /// `delta-cache`) off where they slow the move (`encodings`; source
    /// only, the wire is the same either way).
    pub enum Encodings, refused as BadEncodings {
        /// Measured per window of pages: off where the CPU, not the link,
        /// is the bottleneck, on again where the link is.
        Adaptive = "adaptive",
        /// On for the whole migration once agreed.
        Fixed = "fixed",
    }
}

impl Encodings {
    /// When dom0 names none: adaptive.
    pub const DEFAULT: Encodings = Encodings::Adaptive;

    /// Reads the `encodings` key as the appliance does (its value
    /// trimmed): empty or absent is [`Encodings::DEFAULT`].
    pub fn from_key(s: &str) -> Result<Encodings, ControlError> {
        if s.is_empty() {
            Ok(Encodings::DEFAULT)
        } else {
            Encodings::parse(s)
        }
    }
}

words! {
    /// A deliberate failure `depmig migrate --fault` injects, so that the
    /// rig can check that a broken migration is refused and the guest keeps
    /// running.
    pub enum Fault, refused as BadFault {
        /// The destination appliance is armed with a key other than the
        /// source's: the stream's tag cannot verify.
        WrongKey = "wrong-key",
        /// The source appliance flips one byte of page data on the wire
        /// once the guest is suspended (after its transcript tag took the
        /// true byte): only the tag check at the end can catch it.
        CorruptFinal = "corrupt-final",
        /// The destination appliance flips one byte of one guest page in
        /// the shell after the stream was applied and before the page
        /// digests are compared: only verification ([`Verify::On`]) can
        /// catch it, so it is refused without.
        CorruptPage = "corrupt-page",
    }
}

impl Fault {
    /// The appliance dom0 arms with it (its `fault` key), for that
    /// appliance to inject; `None`: dom0 injects it itself.
    pub const fn injected_by(self) -> Option<Role> {
        match self {
            Fault::WrongKey => None,
            Fault::CorruptFinal => Some(Role::Source),
            Fault::CorruptPage => Some(Role::Destination),
        }
    }

    /// Whether the fault only shows when pages are verified.
    pub const fn needs_verify(self) -> bool {
        matches!(self, Fault::CorruptPage)
    }
}

words! {
    /// Whether both appliances compare page digests after the stream
    /// (`verify`): the source digests the suspended guest, the destination
    /// the shell, and a difference fails the migration.
    pub enum Verify, refused as BadVerify {
        /// No comparison.
        Off = "off",
        /// Every page compared.
        On = "on",
    }
}

impl Verify {
    /// Verification when dom0 names none.
    pub const DEFAULT: Verify = Verify::Off;

    /// Reads the `verify` key as the appliance does (its value trimmed):
    /// empty or absent is [`Verify::DEFAULT`].
    pub fn from_key(s: &str) -> Result<Verify, ControlError> {
        if s.is_empty() {
            Ok(Verify::DEFAULT)
        } else {
            Verify::parse(s)
        }
    }

    /// Whether digests are compared.
    pub const fn is_on(self) -> bool {
        matches!(self, Verify::On)
    }
}

words! {
    /// A role's state as published under `state`.
    pub enum State, refused as BadState {
        /// Armed, waiting for dom0's go (published by the appliance itself).
        Waiting = "waiting",
        /// Source: connecting and exchanging hellos.
        Connecting = "connecting",
        /// Source: pre-copy rounds with the guest running.
        Streaming = "streaming",
        /// Source: the guest is being suspended.
        Suspending = "suspending",
        /// Source: the guest is suspended; last pages, CPU state, waiting for the ACK.
        Final = "final",
        /// Source: the destination acknowledged; the guest stays suspended.
        Committed = "committed",
        /// Destination: the source's hello arrived; pages are being applied.
        Receiving = "receiving",
        /// Destination: the stream is authentic; TSC, parameters and context
        /// are being applied.
        Applying = "applying",
        /// Destination: everything applied and acknowledged.
        Applied = "applied",
        /// Either role gave up.
        Failed = "failed",
    }
}

words! {
    /// How an appliance's run ended: the first word of its `result` (and of
    /// its last console line).
    pub enum Verdict, refused as BadVerdict {
        /// It did what it was armed for.
        Pass = "PASS",
        /// It did not; the rest of the line says why.
        Fail = "FAIL",
    }
}

impl Verdict {
    /// The `result` value: the verdict, a space, and what happened.
    pub fn line(self, what: &str) -> String {
        format!("{} {what}", self.as_str())
    }

    /// The verdict a `result` value begins with, if any.
    pub fn of(result: &str) -> Option<Verdict> {
        Verdict::ALL
            .into_iter()
            .find(|v| result.starts_with(v.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every value reads back as itself, and no other text reads: empty,
    /// other case, white space around, a prefix or an extension.
    fn round_trips<T: Copy + PartialEq + fmt::Debug>(
        all: &[T],
        as_str: fn(T) -> &'static str,
        parse: fn(&str) -> Result<T, ControlError>,
        refused: ControlError,
    ) {
        for (i, &v) in all.iter().enumerate() {
            let text = as_str(v);
            assert_eq!(parse(text), Ok(v), "{text}");
            assert!(
                all.iter().skip(i + 1).all(|&w| as_str(w) != text),
                "{text} twice"
            );
            for bad in [
                text.to_uppercase(),
                text.to_lowercase().replace('-', "_"),
                format!(" {text}"),
                format!("{text} "),
                format!("{text}\n"),
                format!("{text}\0"),
                format!("{text}x"),
                String::from(&text[..text.len() - 1]),
            ] {
                if bad != text {
                    assert_eq!(parse(&bad), Err(refused), "{bad:?}");
                }
            }
        }
        for bad in ["", " ", "x", "unknown"] {
            assert_eq!(parse(bad), Err(refused), "{bad:?}");
        }
    }

    #[test]
    fn every_value_has_one_text() {
        round_trips(&Role::ALL, Role::as_str, Role::parse, ControlError::BadRole);
        round_trips(&Mode::ALL, Mode::as_str, Mode::parse, ControlError::BadMode);
        round_trips(
            &Policy::ALL,
            Policy::as_str,
            Policy::parse,
            ControlError::BadPolicy,
        );
        round_trips(
            &Fault::ALL,
            Fault::as_str,
            Fault::parse,
            ControlError::BadFault,
        );
        round_trips(
            &Verify::ALL,
            Verify::as_str,
            Verify::parse,
            ControlError::BadVerify,
        );
        round_trips(
            &State::ALL,
            State::as_str,
            State::parse,
            ControlError::BadState,
        );
        round_trips(
            &Verdict::ALL,
            Verdict::as_str,
            Verdict::parse,
            ControlError::BadVerdict,
        );
        round_trips(
            &Compress::ALL,
            Compress::as_str,
            Compress::parse,
            ControlError::BadCompress,
        );
        round_trips(
            &Encrypt::ALL,
            Encrypt::as_str,
            Encrypt::parse,
            ControlError::BadEncrypt,
        );
        round_trips(
            &Encodings::ALL,
            Encodings::as_str,
            Encodings::parse,
            ControlError::BadEncodings,
        );
    }

    #[test]
    fn the_texts_on_the_wire() {
        assert_eq!(Role::Destination.as_str(), "destination");
        assert_eq!(Mode::PaperAnalysis.as_str(), "paper-analysis");
        assert_eq!(Policy::Xen33.as_str(), "xen-3.3");
        assert_eq!(Policy::Xen4.as_str(), "xen-4");
        assert_eq!(Fault::CorruptFinal.as_str(), "corrupt-final");
        assert_eq!(State::Committed.as_str(), "committed");
        assert_eq!(Verdict::Fail.as_str(), "FAIL");
        assert_eq!(State::ALL.len(), 10);
    }

    #[test]
    fn keys_with_defaults() {
        // Moved from depmig-migrate's `parse_mode`/`parse_policy`.
        assert_eq!(Mode::from_key(""), Ok(Mode::Baseline));
        assert_eq!(
            Mode::from_key("dependency-aware"),
            Ok(Mode::DependencyAware)
        );
        assert_eq!(
            Mode::from_key("paper-literal-UNSOUND"),
            Err(ControlError::BadMode)
        );
        assert_eq!(Policy::from_key(""), Ok(Policy::Xen4));
        assert_eq!(Policy::from_key("xen-4.x"), Ok(Policy::Xen4));
        assert_eq!(Policy::from_key("xen-3.3"), Ok(Policy::Xen33));
        assert_eq!(Policy::from_key("fast"), Err(ControlError::BadPolicy));
        // The alias is read, never written, and only by the key.
        assert_eq!(Policy::parse("xen-4.x"), Err(ControlError::BadPolicy));
        assert_eq!(Mode::parse(""), Err(ControlError::BadMode));
        assert_eq!(Compress::from_key(""), Ok(Compress::None));
        assert_eq!(Compress::from_key("lz4"), Ok(Compress::Lz4));
        assert_eq!(Encodings::from_key(""), Ok(Encodings::Adaptive));
        assert_eq!(Encodings::from_key("fixed"), Ok(Encodings::Fixed));
        assert_eq!(Encodings::from_key("off"), Err(ControlError::BadEncodings));
        assert_eq!(DeltaCache::from_key(""), Ok(DeltaCache::OFF));
        assert_eq!(DeltaCache::from_key("4"), Ok(DeltaCache(4)));
        assert_eq!(DeltaCache::parse("1024"), Ok(DeltaCache(1024)));
        for bad in ["1025", "-1", "4M", " 4", "99999", "+4"] {
            assert_eq!(
                DeltaCache::parse(bad),
                Err(ControlError::BadDeltaCache),
                "{bad}"
            );
        }
        assert_eq!(DeltaCache(4).to_key(), "4");
        assert_eq!(
            ControlError::BadDeltaCache.to_string(),
            "delta-cache must be a whole number of MiB from 0 to 1024"
        );
        assert_eq!(Compress::from_key("LZ4"), Err(ControlError::BadCompress));
        assert_eq!(
            ControlError::BadCompress.to_string(),
            "compress must be none or lz4"
        );
        // Encryption is on unless dom0 says off.
        assert_eq!(Encrypt::from_key(""), Ok(Encrypt::On));
        assert_eq!(Encrypt::from_key("off"), Ok(Encrypt::Off));
        assert_eq!(Encrypt::from_key("no"), Err(ControlError::BadEncrypt));
        assert_eq!(
            ControlError::BadEncrypt.to_string(),
            "encrypt must be off or on"
        );
    }

    #[test]
    fn each_fault_travels_to_the_appliance_that_injects_it() {
        assert_eq!(Fault::CorruptFinal.injected_by(), Some(Role::Source));
        assert_eq!(Fault::CorruptPage.injected_by(), Some(Role::Destination));
        assert_eq!(Fault::WrongKey.injected_by(), None);
        assert!(Fault::CorruptPage.needs_verify());
        assert!(!Fault::CorruptFinal.needs_verify());
        assert_eq!(Fault::CorruptPage.as_str(), "corrupt-page");
    }

    #[test]
    fn verify_is_off_unless_asked() {
        assert_eq!(Verify::from_key(""), Ok(Verify::Off));
        assert_eq!(Verify::from_key("on"), Ok(Verify::On));
        assert_eq!(Verify::from_key("1"), Err(ControlError::BadVerify));
        assert!(Verify::On.is_on() && !Verify::Off.is_on());
        assert_eq!(
            ControlError::BadVerify.to_string(),
            "verify must be off or on"
        );
    }

    #[test]
    fn results() {
        let pass = Verdict::Pass.line("committed rounds=3");
        assert_eq!(pass, "PASS committed rounds=3");
        assert_eq!(Verdict::of(&pass), Some(Verdict::Pass));
        assert_eq!(Verdict::of("FAIL configuration: x"), Some(Verdict::Fail));
        assert_eq!(Verdict::of("FAILED"), Some(Verdict::Fail));
        for other in ["", "pass", " PASS", "OK"] {
            assert_eq!(Verdict::of(other), None, "{other:?}");
        }
    }

    #[test]
    fn errors_say_what_is_wanted() {
        assert_eq!(
            ControlError::BadRole.to_string(),
            "role must be source, destination or resume"
        );
        assert_eq!(
            ControlError::BadMode.to_string(),
            "mode must be baseline, dependency-aware or paper-analysis"
        );
        assert_eq!(
            ControlError::BadVerdict.to_string(),
            "verdict must be PASS or FAIL"
        );
        assert_eq!(format!("{:?}", ControlError::BadPolicy), "BadPolicy");
    }
}
