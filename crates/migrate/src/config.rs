//! Parsing of the values dom0 writes into an appliance's control directory
//! (`migrate/key`, `migrate/mode`, `migrate/policy`), and the policy object
//! a name stands for.

use depmig_precopy::{Adaptive, Decision, Mode, Policy, PolicyInput, Xen33, Xen4x};

/// Length of the shared key in bytes (64 hex digits).
pub const KEY_LEN: usize = 32;

/// Why a control value was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigError {
    /// The key is not exactly 64 hex digits.
    BadKey,
    /// The mode is not `baseline` or `dependency-aware`.
    BadMode,
    /// The policy is not `xen-3.3`, `xen-4` or `adaptive`.
    BadPolicy,
}

/// Parses `migrate/key`: 64 hex digits (surrounding whitespace ignored).
pub fn parse_key(s: &str) -> Result<[u8; KEY_LEN], ConfigError> {
    let s = s.trim().as_bytes();
    if s.len() != KEY_LEN * 2 {
        return Err(ConfigError::BadKey);
    }
    let mut key = [0u8; KEY_LEN];
    for (k, pair) in key.iter_mut().zip(s.chunks_exact(2)) {
        let hi = hex(pair.first().copied()).ok_or(ConfigError::BadKey)?;
        let lo = hex(pair.get(1).copied()).ok_or(ConfigError::BadKey)?;
        *k = (hi << 4) | lo;
    }
    Ok(key)
}

fn hex(c: Option<u8>) -> Option<u8> {
    match c? {
        c @ b'0'..=b'9' => Some(c - b'0'),
        c @ b'a'..=b'f' => Some(c - b'a' + 10),
        c @ b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Parses `migrate/mode`; empty means the default, `baseline`. Only the
/// sound modes an appliance may run are accepted.
pub fn parse_mode(s: &str) -> Result<Mode, ConfigError> {
    match s.trim() {
        "" | "baseline" => Ok(Mode::Baseline),
        "dependency-aware" => Ok(Mode::DependencyAware),
        "paper-analysis" => Ok(Mode::PaperAnalysis),
        _ => Err(ConfigError::BadMode),
    }
}

/// The stop policies an appliance can be armed with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PolicyKind {
    /// Xen 3.3's rule (30 rounds, 3x memory, 50 pages).
    Xen33,
    /// Xen 4.x's rule (5 live rounds, 50 pages); the default.
    Xen4,
    /// Bandwidth-driven, aiming at [`ADAPTIVE_DOWNTIME_TARGET_NS`].
    Adaptive,
}

/// Downtime target of the adaptive policy when chosen by name.
pub const ADAPTIVE_DOWNTIME_TARGET_NS: u64 = 300_000_000;

/// Parses `migrate/policy`; empty means the default, `xen-4`.
pub fn parse_policy(s: &str) -> Result<PolicyKind, ConfigError> {
    match s.trim() {
        "" | "xen-4" | "xen-4.x" => Ok(PolicyKind::Xen4),
        "xen-3.3" => Ok(PolicyKind::Xen33),
        "adaptive" => Ok(PolicyKind::Adaptive),
        _ => Err(ConfigError::BadPolicy),
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
    fn control_values() {
        let k = parse_key(&"0f".repeat(32)).unwrap();
        assert_eq!(k, [0x0f; 32]);
        assert_eq!(parse_key(&"0F".repeat(32)), Ok([0x0f; 32]));
        assert_eq!(parse_key(&"0f".repeat(31)), Err(ConfigError::BadKey));
        assert_eq!(parse_key(&"0g".repeat(32)), Err(ConfigError::BadKey));
        assert_eq!(parse_mode(""), Ok(Mode::Baseline));
        assert_eq!(parse_mode("dependency-aware"), Ok(Mode::DependencyAware));
        assert_eq!(
            parse_mode("paper-literal-UNSOUND"),
            Err(ConfigError::BadMode)
        );
        assert_eq!(parse_policy(""), Ok(PolicyKind::Xen4));
        assert_eq!(parse_policy("xen-3.3"), Ok(PolicyKind::Xen33));
        assert_eq!(parse_policy("fast"), Err(ConfigError::BadPolicy));
        assert_eq!(AnyPolicy::new(PolicyKind::Adaptive).name(), "adaptive");
    }
}
