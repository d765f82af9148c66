//! The keys of the contract, as paths relative to an appliance's xenstore
//! home (`/local/domain/<id>`): what the appliance reads and writes as they
//! are, and what dom0 places in the appliance's home with [`in_domain`].

use alloc::format;
use alloc::string::String;

/// The directory of the migration's keys: a literal, so that every key
/// below is one too.
macro_rules! migrate_dir {
    () => {
        "depmig/migrate"
    };
}

/// A key of [`MIGRATE_DIR`].
macro_rules! migrate_key {
    ($name:literal) => {
        concat!(migrate_dir!(), "/", $name)
    };
}

/// The migration's control directory: dom0's keys, read-only to the
/// appliance, and the appliance's own nodes (dom0 lets it create them).
pub const MIGRATE_DIR: &str = migrate_dir!();
/// The directory of the appliance's network configuration.
pub const NET_DIR: &str = "depmig/net";

/// The appliance's IPv4 address on dom0's bridge ([`crate::addr::parse_ipv4`]).
pub const IP: &str = "depmig/net/ip";
/// The prefix length of [`IP`] ([`crate::addr::parse_prefix`]).
pub const PREFIX: &str = "depmig/net/prefix";

/// The appliance's [`crate::Role`].
pub const ROLE: &str = migrate_key!("role");
/// The domain it works on: the guest (source, resume) or the shell
/// (destination) ([`crate::addr::parse_domid`]).
pub const GUEST: &str = migrate_key!("guest");
/// Source: where the destination listens ([`crate::Peer`]).
pub const PEER: &str = migrate_key!("peer");
/// Destination: the TCP port to listen on ([`crate::addr::parse_port`]).
pub const PORT: &str = migrate_key!("port");
/// Source and destination: the shared HMAC key ([`crate::hexkey`]).
pub const KEY: &str = migrate_key!("key");
/// The [`crate::Mode`]; absent means [`crate::Mode::DEFAULT`].
pub const MODE: &str = migrate_key!("mode");
/// The [`crate::Policy`]; absent means [`crate::Policy::DEFAULT`].
pub const POLICY: &str = migrate_key!("policy");
/// Source or destination, tests only: a [`crate::Fault`] the appliance
/// injects itself ([`crate::Fault::injected_by`]).
pub const FAULT: &str = migrate_key!("fault");
/// Source and destination: whether they compare page digests after the
/// stream ([`crate::Verify`]); absent means [`crate::Verify::DEFAULT`].
pub const VERIFY: &str = migrate_key!("verify");
/// Source: who fetches the dirty bitmap ([`crate::bitmap_route::Route`]).
pub const BITMAP_ROUTE: &str = migrate_key!("bitmap-route");
/// Source: the page codec it offers; destination: the one it accepts
/// ([`crate::values::Compress`]; absent means none).
pub const COMPRESS: &str = migrate_key!("compress");
/// Source and destination: whether the stream is sealed, and required of
/// the peer ([`crate::values::Encrypt`]; absent means on).
pub const ENCRYPT: &str = migrate_key!("encrypt");
/// Source: the size of its cache of re-sent pages, which it offers deltas
/// with; destination: whether it accepts them (not 0)
/// ([`crate::values::DeltaCache`]; absent means 0, off).
pub const DELTA_CACHE: &str = migrate_key!("delta-cache");
/// Source: whether it may switch the agreed encodings off where they slow
/// the move ([`crate::values::Encodings`]; absent means adaptive).
pub const ENCODINGS: &str = migrate_key!("encodings");
/// Source, optional: the report's `workload` field.
pub const WORKLOAD: &str = migrate_key!("workload");
/// Source, optional: the report's `scenario` field.
pub const SCENARIO: &str = migrate_key!("scenario");
/// Source, optional: the report's link rate, bytes per second (dom0 writes
/// it from `--link-rate`).
pub const LINK_RATE: &str = migrate_key!("link-rate");
/// Written last by dom0, [`GO_VALUE`]: the configuration is complete.
pub const GO: &str = migrate_key!("go");
/// The value of [`GO`].
pub const GO_VALUE: &str = "1";

/// The appliance's [`crate::State`].
pub const STATE: &str = migrate_key!("state");
/// Source: the latest pre-copy round ([`crate::Round`]).
pub const ROUND: &str = migrate_key!("round");
/// The appliance's last word: a [`crate::Verdict`] and why.
pub const RESULT: &str = migrate_key!("result");
/// Source: its JSON report, when it fits one node.
pub const REPORT: &str = migrate_key!("report");
/// Source: the number of [`report_part`] nodes of a longer report.
pub const REPORT_PARTS: &str = migrate_key!("report-parts");
/// Destination: the port it listens on, once it does.
pub const LISTENING: &str = migrate_key!("listening");

/// Source, dom0 route: where its bitmap buffer is
/// ([`crate::bitmap_route::Buffer`]).
pub const BITMAP: &str = migrate_key!("bitmap");
/// Source, dom0 route: its requests ([`crate::bitmap_route::Request`]).
pub const BITMAP_REQUEST: &str = migrate_key!("bitmap-request");
/// dom0 route: dom0's answers ([`crate::bitmap_route::Reply`]); dom0 owns
/// the node, the appliance only reads it.
pub const BITMAP_REPLY: &str = migrate_key!("bitmap-reply");

/// Piece `i` (from 0) of a report too long for one node, in order.
pub fn report_part(i: usize) -> String {
    format!("{}/{i}", migrate_key!("report-part"))
}

/// Where `key` lies in domain `domid`'s home: the absolute path dom0 uses.
pub fn in_domain(domid: u32, key: &str) -> String {
    format!("/local/domain/{domid}/{key}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_the_ones_both_ends_use() {
        assert_eq!(ROLE, "depmig/migrate/role");
        assert_eq!(BITMAP_REPLY, "depmig/migrate/bitmap-reply");
        assert_eq!(report_part(3), "depmig/migrate/report-part/3");
        assert_eq!(in_domain(7, GO), "/local/domain/7/depmig/migrate/go");
        assert_eq!(in_domain(7, IP), "/local/domain/7/depmig/net/ip");
        for k in [
            ROLE,
            GUEST,
            PEER,
            PORT,
            KEY,
            MODE,
            POLICY,
            FAULT,
            VERIFY,
            BITMAP_ROUTE,
            COMPRESS,
            ENCRYPT,
            DELTA_CACHE,
            ENCODINGS,
            WORKLOAD,
            SCENARIO,
            LINK_RATE,
            GO,
            STATE,
            ROUND,
            RESULT,
            REPORT,
            REPORT_PARTS,
            LISTENING,
            BITMAP,
            BITMAP_REQUEST,
            BITMAP_REPLY,
        ] {
            let name = k
                .strip_prefix(MIGRATE_DIR)
                .and_then(|n| n.strip_prefix('/'));
            assert!(
                name.is_some_and(|n| !n.is_empty() && !n.contains('/')),
                "{k}"
            );
        }
        for k in [IP, PREFIX] {
            assert_eq!(k.rsplit_once('/').map(|(d, _)| d), Some(NET_DIR), "{k}");
        }
    }
}
