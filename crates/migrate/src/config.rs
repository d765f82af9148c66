//! What the contract's names stand for in the engine: the policy object a
//! `migrate/policy` value names, the engine's mode for a `migrate/mode`
//! value and the stream's page codec for a `migrate/compress` value. The names themselves, and their parsing, are the contract's
//! (`depmig_control`).

use depmig_control::{Compress, Mode as ArmedMode};
use depmig_precopy::{Adaptive, Decision, Mode, Policy, PolicyInput, Xen33, Xen4x};
use depmig_stream::Codec;

/// The stop policies an appliance can be armed with: the contract's
/// [`depmig_control::Policy`].
pub use depmig_control::Policy as PolicyKind;

/// Downtime target of the adaptive policy when chosen by name.
pub const ADAPTIVE_DOWNTIME_TARGET_NS: u64 = 300_000_000;

/// The engine's mode for a mode an appliance is armed with (the engine has
/// one more, unsound, that no appliance runs).
pub fn engine_mode(mode: ArmedMode) -> Mode {
    match mode {
        ArmedMode::Baseline => Mode::Baseline,
        ArmedMode::DependencyAware => Mode::DependencyAware,
        ArmedMode::PaperAnalysis => Mode::PaperAnalysis,
    }
}

/// The stream's page codec for the one an appliance is armed with: the
/// source offers it, the destination accepts it.
pub fn codec(compress: Compress) -> Codec {
    match compress {
        Compress::None => Codec::Raw,
        Compress::Lz4 => Codec::Lz4,
    }
}

/// One of the policies, chosen at run time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AnyPolicy {
    /// Xen 3.3.
    Xen33(Xen33),
    /// Xen 4.x.
    Xen4(Xen4x),
    /// Adaptive.
    Adaptive(Adaptive),
}

impl AnyPolicy {
    /// The policy `kind` names, with its default parameters.
    pub fn new(kind: PolicyKind) -> Self {
        match kind {
            PolicyKind::Xen33 => AnyPolicy::Xen33(Xen33::default()),
            PolicyKind::Xen4 => AnyPolicy::Xen4(Xen4x::default()),
            PolicyKind::Adaptive => AnyPolicy::Adaptive(Adaptive::new(ADAPTIVE_DOWNTIME_TARGET_NS)),
        }
    }
}

impl Policy for AnyPolicy {
    fn decide(&mut self, input: &PolicyInput) -> Decision {
        match self {
            AnyPolicy::Xen33(p) => p.decide(input),
            AnyPolicy::Xen4(p) => p.decide(input),
            AnyPolicy::Adaptive(p) => p.decide(input),
        }
    }
    fn name(&self) -> &'static str {
        match self {
            AnyPolicy::Xen33(p) => p.name(),
            AnyPolicy::Xen4(p) => p.name(),
            AnyPolicy::Adaptive(p) => p.name(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_by_name() {
        assert_eq!(AnyPolicy::new(PolicyKind::Adaptive).name(), "adaptive");
        assert_eq!(AnyPolicy::new(PolicyKind::Xen33).name(), "xen-3.3");
        // Reports name Xen 4.x's rule so, and the key takes that name too.
        let xen4 = AnyPolicy::new(PolicyKind::Xen4).name();
        assert_eq!(xen4, PolicyKind::XEN4_REPORT_NAME);
        assert_eq!(PolicyKind::from_key(xen4), Ok(PolicyKind::Xen4));
    }

    #[test]
    fn armed_codecs_keep_their_names_in_the_stream() {
        for c in Compress::ALL {
            assert_eq!(codec(c).as_str(), c.as_str());
        }
    }

    #[test]
    fn armed_modes_keep_their_names_in_the_engine() {
        for m in ArmedMode::ALL {
            let e = engine_mode(m);
            assert_eq!(e.name(), m.as_str());
            assert!(e.is_sound());
        }
    }
}
