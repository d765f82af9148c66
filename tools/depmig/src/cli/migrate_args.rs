//! `depmig migrate`'s options. Each field's doc comment is its help text,
//! kept verbatim (line breaks as written) so the help reads the same on
//! every terminal; `migrate_after_help.txt` follows them.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use clap::Args;
use depmig_control::bitmap_route::Route;
// The values of `--mode`, `--policy` and `--fault` are the contract's: the
// options are spelt as the keys they are written to.
use depmig_control::{Compress, DeltaCache, Encodings, Encrypt, Fault, Mode, Policy};

use super::values::{self, check, number, DOMAIN_NAME};

/// Everything `depmig migrate` was asked to do.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct MigrateOptions {
    /// name of the running guest domain (letters, digits, . _ -)
    #[arg(value_name = "guest", verbatim_doc_comment,
          value_parser = check("<guest>", DOMAIN_NAME, values::domain_name),
          help_heading = "Guest")]
    pub guest: String,
    /// the host to move the guest to: its dom0 runs
    /// `depmig receive`, reached by the transport (see
    /// --transport); without HOST, the guest moves into
    /// a new domain on this host
    #[arg(value_name = "HOST", verbatim_doc_comment,
          value_parser = check("<HOST>", super::twohost_args::HOST, values::host),
          help_heading = "Guest")]
    pub host: Option<String>,
    /// the guest's xl config; the paused shell that receives
    /// the guest is created from it (`xl create -p`) under
    /// another name (required)
    #[arg(
        long,
        value_name = "FILE",
        verbatim_doc_comment,
        help_heading = "Guest"
    )]
    pub config: PathBuf,

    /// baseline | dependency-aware | paper-analysis
    /// baseline sends every dirty page every round;
    /// dependency-aware lets the guest freeze quiet,
    /// untainted process groups so their pages go once;
    /// paper-analysis sends like baseline and counts,
    /// per round, the dirty pages of tainted processes.
    /// Both need the guest agent (guest-lsm) tracking
    /// in the guest (its data/depmig/state = tracking);
    /// without it the guest migrates in baseline mode,
    /// saying so (see --require-agent)
    #[arg(long, value_name = "MODE", verbatim_doc_comment, default_value = Mode::DEFAULT.as_str(),
          value_parser = check("--mode", "baseline, dependency-aware or paper-analysis",
                               |v| Mode::parse(v).ok()),
          help_heading = "Migration")]
    pub mode: Mode,
    /// refuse (exit 2) a guest whose agent is not tracking
    /// when the mode needs it, instead of migrating it in
    /// baseline mode
    #[arg(long, verbatim_doc_comment, help_heading = "Migration")]
    pub require_agent: bool,
    /// xen-3.3 | xen-4 | adaptive
    /// when pre-copy stops: Xen 3.3 (30 rounds, 3x memory,
    /// 50 pages), Xen 4.x (5 rounds, 50 pages), or adaptive
    /// (measured bandwidth and a downtime target)
    #[arg(long, value_name = "POLICY", verbatim_doc_comment,
          default_value = Policy::DEFAULT.as_str(),
          value_parser = check("--policy", "xen-3.3, xen-4 or adaptive", |v| Policy::parse(v).ok()),
          help_heading = "Migration")]
    pub policy: Policy,
    /// seconds from the start signal until the source must
    /// have reported a result and the destination applied
    /// the guest; then the migration is abandoned
    #[arg(long = "timeout", value_name = "S", verbatim_doc_comment, default_value = "1800",
          value_parser = number("--timeout", "whole seconds, 1 to 86400", 1..=86_400u64),
          help_heading = "Migration")]
    pub timeout_s: u64,
    /// shared HMAC key for the appliances: 64 hex digits
    /// (white space around them ignored). Default: 32
    /// fresh bytes from /dev/urandom
    #[arg(
        long,
        value_name = "FILE",
        verbatim_doc_comment,
        help_heading = "Migration"
    )]
    pub key_file: Option<PathBuf>,
    // Written to the source appliance's `migrate/bitmap-route` (the
    // option's spelling is the key's) and read the key's way, except that
    // an empty key means `auto` while an empty option names nothing.
    // dom0's side of the route is `crate::bitmap`.
    /// auto | direct | dom0
    /// who fetches the guest's dirty bitmaps: the source
    /// appliance itself (direct: only safe on a Xen
    /// carrying the fix for the shadow_op lock order;
    /// stock 4.19-4.22 stop the host when a PVH domain
    /// fetches one), or dom0, into the appliance's own
    /// buffer, on request (dom0); auto lets the
    /// appliance take direct on a Xen known to carry the
    /// fix (version -logdirtyfix), dom0 elsewhere; direct
    /// on any other Xen is refused
    #[arg(long, value_name = "ROUTE", verbatim_doc_comment, default_value = Route::Auto.as_str(),
          value_parser = check("--bitmap-route", "auto, direct or dom0",
                               |v| Route::parse(v).ok().filter(|_| !v.is_empty())),
          help_heading = "Migration")]
    pub bitmap_route: Route,
    /// compare every page before the destination copy may
    /// run: the source appliance digests the suspended
    /// guest, the destination the shell; a difference
    /// fails the migration (the guest resumes at the
    /// source) and the report names the frames. Costs
    /// downtime: the report gives ms per GiB at each end
    #[arg(long, verbatim_doc_comment, help_heading = "Migration")]
    pub verify: bool,
    // Written to both appliances' `migrate/compress`: the source offers
    // the codec, the destination accepts it; the report's appliance log
    // says which ran.
    /// none | lz4: pages LZ4-compressed per page, zero
    /// pages sent without data, when both appliances
    /// agree (depmig's own record: never in a save file).
    /// Default lz4 (with --encodings adaptive the source
    /// sends pages raw where compressing slows the move)
    #[arg(long, value_name = "CODEC", verbatim_doc_comment, default_value = Compress::Lz4.as_str(),
          value_parser = check("--compress", "none or lz4", |v| Compress::parse(v).ok()),
          help_heading = "Migration")]
    pub compress: Compress,
    // Written to both appliances' `migrate/encrypt`: each requires it of
    // the other, so a mismatch fails before any page is sent. Resolved by
    // [`MigrateOptions::encrypt`].
    /// on | off: the stream crosses the link in sealed
    /// records (ChaCha20-Poly1305, keys of this migration
    /// alone); an appliance armed on refuses a peer that
    /// does not seal. off sends pages in clear (tagged
    /// only): for a link nobody else can read. Default:
    /// on to another HOST, off between this host's own
    /// appliances (the stream stays on its bridge)
    #[arg(long = "encrypt", value_name = "ON|OFF", verbatim_doc_comment,
          value_parser = check("--encrypt", "on or off", |v| Encrypt::parse(v).ok()),
          help_heading = "Migration")]
    pub encrypt_arg: Option<Encrypt>,
    // Written to both appliances' `migrate/delta-cache`: the source
    // allocates the cache and offers deltas, the destination accepts them.
    /// MiB of the source appliance's cache of re-sent
    /// pages: a page sent again after round 1 is kept,
    /// and its next send goes as an XOR delta when that
    /// is smaller (depmig's own record: never in a save
    /// file). 0 is off. At most a quarter of
    /// --appliance-memory, which is the default, up to
    /// 16 MiB (16 with the default 64 MiB appliances)
    #[arg(long = "delta-cache", value_name = "MIB", verbatim_doc_comment,
          value_parser = check("--delta-cache", "MiB, 0 to 1024",
                               |v| DeltaCache::parse(v).ok()),
          help_heading = "Migration")]
    pub delta_cache_arg: Option<DeltaCache>,
    /// The cache's size, --delta-cache or its default (resolved when the
    /// arguments are checked).
    #[arg(skip)]
    pub delta_cache: DeltaCache,
    // Written to the source appliance's `migrate/encodings` (the
    // destination takes raw pages in any stream).
    /// adaptive | fixed: adaptive (the default) lets the
    /// source send pages raw while --compress and
    /// --delta-cache cost more CPU time than the link
    /// time they save (a fast link), and encode them
    /// again once the link is the bottleneck; fixed
    /// keeps them on for the whole migration. The report
    /// says per round which ran and why
    #[arg(long, value_name = "MODE", verbatim_doc_comment, default_value = Encodings::DEFAULT.as_str(),
          value_parser = check("--encodings", "adaptive or fixed", |v| Encodings::parse(v).ok()),
          help_heading = "Migration")]
    pub encodings: Encodings,

    /// with HOST: the command that reaches HOST's dom0
    /// instead of ssh, split as a shell splits it (no
    /// shell runs it); HOST and `depmig receive` are
    /// appended, and the command's stdin and stdout
    /// carry the control conversation (like `xl migrate
    /// -s`) [default: ssh]
    #[arg(
        long,
        value_name = "CMD",
        verbatim_doc_comment,
        help_heading = "Two hosts"
    )]
    pub transport: Option<String>,

    /// the depmig appliance image (PVH ELF)
    #[arg(
        long,
        value_name = "IMAGE",
        default_value = "/usr/lib/depmig/depmig-appliance",
        help_heading = "Appliances"
    )]
    pub appliance: PathBuf,
    /// memory of each appliance
    #[arg(long = "appliance-memory", value_name = "MIB", default_value = "64",
          value_parser = number("--appliance-memory", "MiB, 16 to 4096", 16..=4096u32),
          help_heading = "Appliances")]
    pub appliance_memory_mib: u32,
    /// source appliance's address
    #[arg(long, value_name = "IP", default_value = "10.77.0.21",
          value_parser = check("--source-ip", "an IPv4 address", |v| v.parse::<Ipv4Addr>().ok()),
          help_heading = "Appliances")]
    pub source_ip: Ipv4Addr,
    /// destination appliance's address
    #[arg(long, value_name = "IP", default_value = "10.77.0.22",
          value_parser = check("--destination-ip", "an IPv4 address",
                               |v| v.parse::<Ipv4Addr>().ok()),
          help_heading = "Appliances")]
    pub destination_ip: Ipv4Addr,
    /// prefix length of both addresses
    #[arg(long, value_name = "N", default_value = "24",
          value_parser = number("--prefix", "a prefix length, 1 to 30", 1..=30u8),
          help_heading = "Appliances")]
    pub prefix: u8,
    /// TCP port the destination listens on
    #[arg(long, value_name = "N", default_value = "7100",
          value_parser = number("--port", "a TCP port, 1 to 65535", 1..=u16::MAX),
          help_heading = "Appliances")]
    pub port: u16,
    /// bridge both appliances' vifs join
    #[arg(long, value_name = "NAME", default_value = "xenbr0",
          value_parser = check("--bridge", "an interface name (letters, digits, . _ -; at most 15)",
                               values::bridge),
          help_heading = "Appliances")]
    pub bridge: String,
    /// xl vif rate limit of the appliances' vifs, e.g.
    /// 40Mb/s (the migration link); the same option is
    /// also spelt --rate RATE [default: no limit]
    #[arg(long, alias = "rate", value_name = "RATE", verbatim_doc_comment,
          value_parser = check("--link-rate", "an xl vif rate such as 40Mb/s or 5MB/s@20ms",
                               values::link_rate),
          help_heading = "Appliances")]
    pub link_rate: Option<String>,
    /// name of the shell while it is filled
    /// [default: <guest>--incoming]
    #[arg(long, value_name = "NAME", verbatim_doc_comment,
          value_parser = check("--shell-name", DOMAIN_NAME, values::domain_name),
          help_heading = "Appliances")]
    pub shell_name: Option<String>,
    /// where the generated xl configs go
    #[arg(
        long,
        value_name = "DIR",
        default_value = "/tmp/depmig",
        help_heading = "Appliances"
    )]
    pub work_dir: PathBuf,

    /// the per-round JSON report (schema
    /// depmig-migration-report/1, from the source
    /// appliance), with the command's own figures under
    /// "cli"
    #[arg(
        long,
        value_name = "FILE",
        verbatim_doc_comment,
        help_heading = "Output"
    )]
    pub report: Option<PathBuf>,
    /// an SVG plot of pages sent per round
    #[arg(long, value_name = "FILE", help_heading = "Output")]
    pub svg: Option<PathBuf>,
    /// a stock `xl migrate` report (same schema) drawn
    /// next to this migration in the plot
    #[arg(
        long,
        value_name = "FILE",
        verbatim_doc_comment,
        help_heading = "Output"
    )]
    pub baseline_report: Option<PathBuf>,
    /// value of the report's "scenario" field
    #[arg(long, value_name = "NAME", help_heading = "Output")]
    pub scenario: Option<String>,
    /// value of the report's "workload" field
    #[arg(long, value_name = "NAME", help_heading = "Output")]
    pub workload: Option<String>,

    /// break this migration on purpose, to exercise the
    /// failure path: wrong-key (the destination gets
    /// another key) | corrupt-final (the source flips a
    /// byte of page data on the wire after suspending
    /// the guest) | corrupt-page (the destination flips
    /// a bit of one page of the shell before comparing;
    /// needs --verify). Each must end in a refused
    /// stream, the guest resumed at the source, the
    /// shell gone.
    #[arg(long, value_name = "FAULT", verbatim_doc_comment,
          value_parser = check("--fault", "wrong-key, corrupt-final or corrupt-page",
                               |v| Fault::parse(v).ok()),
          help_heading = "Testing")]
    pub fault: Option<Fault>,
}

impl MigrateOptions {
    /// Whether the stream is sealed: `--encrypt`, or by default on when it
    /// crosses to another HOST and off between this host's own appliances,
    /// whose stream never leaves its bridge (sealing costs CPU time per
    /// byte, most under emulation: `depmig-bench` prints it).
    pub fn encrypt(&self) -> Encrypt {
        self.encrypt_arg.unwrap_or(if self.host.is_some() {
            Encrypt::On
        } else {
            Encrypt::Off
        })
    }
}
