//! Command-line parsing and the help texts of `depmig`.

use std::fmt;
use std::net::Ipv4Addr;
use std::path::PathBuf;

/// How the source appliance chooses pages (written to `migrate/mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Classic pre-copy: every dirty page, every round.
    Baseline,
    /// Quiet untainted process groups frozen for the migration.
    DependencyAware,
    /// Baseline transfer, with dirty vs dirty-and-tainted pages counted
    /// per round (the paper's own measurement).
    PaperAnalysis,
}

impl Mode {
    /// The value written to xenstore.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Baseline => "baseline",
            Mode::DependencyAware => "dependency-aware",
            Mode::PaperAnalysis => "paper-analysis",
        }
    }
}

/// When pre-copy stops (written to `migrate/policy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// Xen 3.3: 30 rounds, 3x memory, 50 pages.
    Xen33,
    /// Xen 4.x: 5 rounds, 50 pages.
    Xen4,
    /// Driven by measured bandwidth and a downtime target.
    Adaptive,
}

impl Policy {
    /// The value written to xenstore.
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::Xen33 => "xen-3.3",
            Policy::Xen4 => "xen-4",
            Policy::Adaptive => "adaptive",
        }
    }
}

/// Everything `depmig migrate` was asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrateOptions {
    /// The running guest's domain name.
    pub guest: String,
    /// The guest's xl config (the shell is created from it).
    pub config: PathBuf,
    /// Page selection mode.
    pub mode: Mode,
    /// Pre-copy stop policy.
    pub policy: Policy,
    /// The appliance image (PVH ELF).
    pub appliance: PathBuf,
    /// Where to write the JSON report.
    pub report: Option<PathBuf>,
    /// Where to write the SVG plot.
    pub svg: Option<PathBuf>,
    /// A stock `xl migrate` report to overlay on the plot.
    pub baseline_report: Option<PathBuf>,
    /// Seconds from the start signal to a decision.
    pub timeout_s: u64,
    /// A file holding the shared key (64 hex digits) instead of a fresh one.
    pub key_file: Option<PathBuf>,
    /// The source appliance's address.
    pub source_ip: Ipv4Addr,
    /// The destination appliance's address.
    pub destination_ip: Ipv4Addr,
    /// Prefix length of both addresses.
    pub prefix: u8,
    /// TCP port the destination listens on.
    pub port: u16,
    /// Bridge the appliances' vifs join.
    pub bridge: String,
    /// xl vif rate limit for the appliances (e.g. `40Mb/s`).
    pub link_rate: Option<String>,
    /// Memory of each appliance, MiB.
    pub appliance_memory_mib: u32,
    /// Name of the shell while it is filled (default `<guest>--incoming`).
    pub shell_name: Option<String>,
    /// Directory for the generated appliance configs.
    pub work_dir: PathBuf,
    /// Value for the report's `scenario` field.
    pub scenario: Option<String>,
    /// Value for the report's `workload` field.
    pub workload: Option<String>,
    /// A deliberate failure to inject (testing the failure paths).
    pub fault: Option<Fault>,
}

/// A deliberate failure `--fault` injects, so the rig can check that a
/// broken migration is refused and the guest keeps running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The destination appliance is armed with a key other than the
    /// source's: the stream's tag cannot verify.
    WrongKey,
    /// The source appliance flips one byte of page data on the wire once
    /// the guest is suspended (after its transcript tag took the true
    /// byte): only the tag check at the end can catch it.
    CorruptFinal,
}

impl Fault {
    /// The option's spelling (also the value the source appliance reads
    /// from `migrate/fault`).
    pub fn as_str(self) -> &'static str {
        match self {
            Fault::WrongKey => "wrong-key",
            Fault::CorruptFinal => "corrupt-final",
        }
    }
}

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Print this text and exit 0.
    Help(&'static str),
    /// Migrate a guest.
    Migrate(Box<MigrateOptions>),
    /// Put several migration reports side by side.
    Compare(CompareOptions),
}

/// Most reports `depmig compare` takes at once.
pub const MAX_COMPARE_REPORTS: usize = 16;
/// Longest label of a compared report, in characters.
pub const MAX_LABEL_CHARS: usize = 64;
/// Longest `--title`, in characters.
pub const MAX_TITLE_CHARS: usize = 200;

/// Everything `depmig compare` was asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompareOptions {
    /// Title of the tables and the plot.
    pub title: Option<String>,
    /// Where to write the SVG plot.
    pub svg: Option<PathBuf>,
    /// Where to write the Markdown (also printed on standard output).
    pub markdown: Option<PathBuf>,
    /// Where to write the comparison as JSON.
    pub json: Option<PathBuf>,
    /// The guest's size in pages, for the total-pages target.
    pub guest_pages: Option<u64>,
    /// The reports, as (label, file), in the order given.
    pub reports: Vec<(String, PathBuf)>,
}

/// A command line that cannot be obeyed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UsageError {
    /// No command given.
    NoCommand,
    /// An unknown command.
    UnknownCommand(String),
    /// An unknown option.
    UnknownOption(String),
    /// An option that needs a value came last.
    MissingValue(String),
    /// An option's value is not acceptable.
    BadValue {
        /// The option.
        option: &'static str,
        /// The value given.
        value: String,
        /// What is acceptable.
        expected: &'static str,
    },
    /// The guest name is missing.
    MissingGuest,
    /// More than one guest name.
    ExtraArgument(String),
    /// `--config` is missing.
    MissingConfig,
    /// An option was given twice.
    Repeated(&'static str),
    /// `depmig compare` was given no report.
    NoReports,
    /// Two reports given to `depmig compare` carry the same label.
    DuplicateLabel(String),
    /// More reports than [`MAX_COMPARE_REPORTS`].
    TooManyReports,
}

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UsageError::NoCommand => write!(f, "no command given (try `depmig --help`)"),
            UsageError::UnknownCommand(c) => {
                write!(f, "unknown command `{c}` (try `depmig --help`)")
            }
            UsageError::UnknownOption(o) => {
                write!(f, "unknown option `{o}` (try `depmig <command> --help`)")
            }
            UsageError::MissingValue(o) => write!(f, "option `{o}` needs a value"),
            UsageError::BadValue {
                option,
                value,
                expected,
            } => {
                write!(f, "bad value `{value}` for {option}: expected {expected}")
            }
            UsageError::MissingGuest => write!(
                f,
                "which guest? `depmig migrate <guest> --config <guest.cfg>`"
            ),
            UsageError::ExtraArgument(a) => {
                write!(f, "unexpected argument `{a}` (one guest per migration)")
            }
            UsageError::MissingConfig => write!(
                f,
                "--config <guest.cfg> is required (the shell is created from it)"
            ),
            UsageError::Repeated(o) => write!(f, "option {o} given twice"),
            UsageError::NoReports => write!(
                f,
                "which reports? `depmig compare LABEL=REPORT.json ...` (try `depmig compare --help`)"
            ),
            UsageError::DuplicateLabel(l) => write!(f, "label `{l}` given to two reports"),
            UsageError::TooManyReports => write!(
                f,
                "more than {MAX_COMPARE_REPORTS} reports; compare fewer at a time"
            ),
        }
    }
}

impl std::error::Error for UsageError {}

/// `depmig --help`.
pub const MAIN_HELP: &str = "\
depmig: live migration of a Xen guest by two depmig appliances

Usage:
  depmig migrate <guest> --config <guest.cfg> [options]
  depmig compare [options] LABEL=REPORT.json ...
  depmig --help | depmig migrate --help | depmig compare --help

Commands:
  migrate   move a running guest into a new domain on this host through a
            source and a destination appliance; the guest keeps running
            and at no time do two copies of it run
  compare   put migration reports of the same guest side by side: pages per
            round (table and log-scale plot), the headline figures of each,
            and the targets of dependency-aware migration evaluated from them

Run `depmig <command> --help` for every option, what the command does step
by step, and its exit codes.
";

/// `depmig compare --help`.
pub const COMPARE_HELP: &str = "\
depmig compare: migrations of the same guest side by side

Usage:
  depmig compare [options] LABEL=REPORT.json ...

Arguments:
  LABEL=REPORT.json        a migration report (schema
                           depmig-migration-report/1), written by
                           `depmig migrate --report` or by the rig's stock
                           `xl migrate` baseline, under a label of your choice
                           (1 to 64 characters, no control characters; each
                           label once). 1 to 16 reports, shown in this order

Options:
  --title TEXT             title of the tables and the plot
                           [pages sent per round]
  --svg FILE               write a log-scale plot of the per-round table, one
                           line per column
  --markdown FILE          write the Markdown printed on standard output
                           to FILE as well
  --json FILE              write the comparison as one JSON object (schema
                           depmig-comparison/1), the targets under \"targets\"
  --guest-pages N          the guest's size in pages, for the total-pages
                           target. Default: the stock report's round 1
  -h, --help               this text

What the reports are:
  The reports' own fields decide, never the labels: a report whose
  \"migrator\" is not \"depmig\" and that has no \"depmig\" object is stock
  `xl migrate`; a depmig report is baseline, paper-analysis or
  dependency-aware by its \"depmig\".\"mode\" (else by \"cli\".\"mode\").
  Where there are several stock or depmig baseline reports, the targets
  use the first.

Output (standard output, and --markdown):
  1. pages per round, one column per report; a paper-analysis report has two:
     its dirty pages and its dirty pages of tainted processes per round (the
     paper's measure; it sends like baseline);
  2. per report: rounds, total pages, total bytes (everything on the link),
     downtime, total time, frozen groups, pages skipped as free;
  3. the targets, each `met`, `NOT met` or `not evaluated` (saying why),
     with its figures:
       da_later_rounds_le_100            dependency-aware: every round after
                                         the first sends at most 100 pages
       da_total_pages_le_1_05_guest      dependency-aware: total pages at most
                                         1.05 x the guest's pages
       da_downtime_le_0_1_stock          dependency-aware: downtime at most a
                                         tenth of stock `xl migrate`'s
       pa_total_pages_within_5pct_of_baseline
       da_total_pages_within_5pct_of_baseline
                                         paper-analysis / dependency-aware:
                                         total pages within 5% of the depmig
                                         baseline's
     A second report of the same mode gets the keys with #2 appended, and so
     on. Which targets matter depends on the workload: the first three for
     a guest whose working set is one busy process, the 5% ones for a
     guest that is all tainted (an HTTP download).

Exit status:
  0  the comparison was produced (whether or not the targets are met)
  1  a report could not be read or is malformed (the message names the file
     and the field), or an output file could not be written
  2  usage error
";

/// `depmig migrate --help`.
pub const MIGRATE_HELP: &str = "\
depmig migrate: live-migrate a guest through two depmig appliances

Usage:
  depmig migrate <guest> --config <guest.cfg> [options]

Arguments:
  <guest>                  name of the running guest domain (letters, digits, . _ -)
  --config FILE            the guest's xl config; the paused shell that receives
                           the guest is created from it (`xl create -p`) under
                           another name (required)

Migration:
  --mode MODE              baseline | dependency-aware | paper-analysis
                           [baseline]
                           baseline sends every dirty page every round;
                           dependency-aware lets the guest freeze quiet,
                           untainted process groups so their pages go once;
                           paper-analysis sends like baseline and counts,
                           per round, the dirty pages of tainted processes.
                           Both need the guest agent (guest-lsm) tracking
                           in the guest (its data/depmig/state = tracking)
  --policy POLICY          xen-3.3 | xen-4 | adaptive           [xen-4]
                           when pre-copy stops: Xen 3.3 (30 rounds, 3x memory,
                           50 pages), Xen 4.x (5 rounds, 50 pages), or adaptive
                           (measured bandwidth and a downtime target)
  --timeout S              seconds from the start signal until the source must
                           have reported a result and the destination applied
                           the guest; then the migration is abandoned  [1800]
  --key-file FILE          shared HMAC key for the appliances: 64 hex digits
                           (white space around them ignored). Default: 32
                           fresh bytes from /dev/urandom

Appliances:
  --appliance IMAGE        the depmig appliance image (PVH ELF)
                           [/usr/lib/depmig/depmig-appliance]
  --appliance-memory MIB   memory of each appliance                     [64]
  --source-ip IP           source appliance's address           [10.77.0.21]
  --destination-ip IP      destination appliance's address      [10.77.0.22]
  --prefix N               prefix length of both addresses              [24]
  --port N                 TCP port the destination listens on        [7100]
  --bridge NAME            bridge both appliances' vifs join        [xenbr0]
  --link-rate RATE         xl vif rate limit of the appliances' vifs, e.g.
  --rate RATE              40Mb/s (the migration link)          [no limit]
  --shell-name NAME        name of the shell while it is filled
                           [<guest>--incoming]
  --work-dir DIR           where the generated xl configs go   [/tmp/depmig]

Output:
  --report FILE            the per-round JSON report (schema
                           depmig-migration-report/1, from the source
                           appliance), with the command's own figures under
                           \"cli\"
  --svg FILE               an SVG plot of pages sent per round
  --baseline-report FILE   a stock `xl migrate` report (same schema) drawn
                           next to this migration in the plot
  --scenario NAME          value of the report's \"scenario\" field
  --workload NAME          value of the report's \"workload\" field

Testing:
  --fault FAULT            break this migration on purpose, to exercise the
                           failure path: wrong-key (the destination gets
                           another key) | corrupt-final (the source flips a
                           byte of page data on the wire after suspending
                           the guest). Either must end in a refused stream,
                           the guest resumed at the source, the shell gone.
  -h, --help               this text

What it does:
  1. finds the guest (`xl domid`) and checks it is running;
  2. creates the shell: `xl create -p <guest.cfg> name=\"<shell>\"` (paused);
  3. creates the destination and the source appliance (`xl create -p` of a
     generated config: type pvh, cmdline `migrate`, label depmig_appliance_t,
     one vif on the bridge, on_crash preserve), writes their control keys
     under /local/domain/<appliance>/depmig/, lets the source appliance write
     the guest's control/shutdown (and, for the modes that need the guest
     agent, read the guest's data/depmig keys and write data/depmig/request;
     the guest stays their owner), unpauses them and writes migrate/go last;
  4. prints a progress line per pre-copy round;
  5. on source `committed` (the destination's ACK is in) and destination
     `applied`: checks with one `xl list` that the source guest is suspended
     (shut down for suspend: it cannot run; one that is not is destroyed
     first) and that the destination appliance stopped (else pauses it),
     unpauses the shell, then renames the source <guest>--migratedaway and
     the shell to the guest's name; in
     dependency-aware mode it then asks the migrated guest's agent to thaw
     the groups frozen at the source (`<seq> thaw` in data/depmig/request,
     from dom0) and waits up to 30 s for its `<seq> thawed <n>` in
     data/depmig/status (no answer is a warning); then destroys the source
     and waits until it is gone (it is never resumed once the shell ran);
  6. on failure or timeout: destroys the shell first, lets the source
     appliance finish (it resumes the guest itself), and makes sure the guest
     runs: a guest left suspended is resumed by a resume-only appliance, a
     guest left paused is unpaused; then removes every appliance; in
     dependency-aware mode it asks the guest's agent to thaw (the source
     appliance does so itself unless it died) and gives the guest its
     data/depmig keys back.

Exit status:
  0  migrated: the guest runs in the former shell, under its own name
  1  not migrated: the migration failed or timed out, the guest runs at the
     source, the shell and the appliances are gone
  2  usage error or a problem found before anything was created
  3  migrated, but a finishing step failed (rename, report or plot); see the
     messages
  4  needs an operator: the guest could not be confirmed running, or a domain
     could not be cleaned up; the messages say which and what to do
";

fn value<'a>(opt: &str, it: &mut impl Iterator<Item = &'a str>) -> Result<&'a str, UsageError> {
    it.next()
        .ok_or_else(|| UsageError::MissingValue(opt.to_string()))
}

fn set<T>(slot: &mut Option<T>, v: T, name: &'static str) -> Result<(), UsageError> {
    if slot.is_some() {
        return Err(UsageError::Repeated(name));
    }
    *slot = Some(v);
    Ok(())
}

/// Whether `s` is a safe domain name: 1 to 64 of letters, digits, `.`, `_`, `-`.
pub fn valid_domain_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
}

fn number<T: std::str::FromStr>(
    option: &'static str,
    v: &str,
    expected: &'static str,
) -> Result<T, UsageError> {
    v.parse().map_err(|_| UsageError::BadValue {
        option,
        value: v.to_string(),
        expected,
    })
}

/// Parses the arguments after the program name.
pub fn parse_args<S: AsRef<str>>(args: &[S]) -> Result<Command, UsageError> {
    let mut it = args.iter().map(AsRef::as_ref);
    match it.next() {
        None => Err(UsageError::NoCommand),
        Some("-h" | "--help" | "help") => Ok(Command::Help(MAIN_HELP)),
        Some("migrate") => parse_migrate(it),
        Some("compare") => parse_compare(it),
        Some(other) if other.starts_with('-') => Err(UsageError::UnknownOption(other.to_string())),
        Some(other) => Err(UsageError::UnknownCommand(other.to_string())),
    }
}

/// Splits `--opt=value` into the option and its inline value; any other
/// argument comes back whole (`--opt value` takes its value from the next one).
fn split_option(arg: &str) -> (&str, Option<&str>) {
    match arg.split_once('=') {
        Some((o, v)) if o.starts_with("--") => (o, Some(v)),
        _ => (arg, None),
    }
}

fn parse_compare<'a>(mut it: impl Iterator<Item = &'a str>) -> Result<Command, UsageError> {
    let mut title = None;
    let mut svg = None;
    let mut markdown = None;
    let mut json = None;
    let mut guest_pages = None;
    let mut reports: Vec<(String, PathBuf)> = Vec::new();
    let printable = |s: &str| !s.chars().any(char::is_control);
    while let Some(arg) = it.next() {
        let (opt, inline) = split_option(arg);
        let mut val = |name: &str| -> Result<&'a str, UsageError> {
            match inline {
                Some(v) => Ok(v),
                None => value(name, &mut it),
            }
        };
        match opt {
            "-h" | "--help" => return Ok(Command::Help(COMPARE_HELP)),
            "--title" => {
                let v = val(opt)?;
                if v.chars().count() > MAX_TITLE_CHARS || !printable(v) {
                    return Err(UsageError::BadValue {
                        option: "--title",
                        value: v.into(),
                        expected: "at most 200 characters, no control characters",
                    });
                }
                set(&mut title, v.to_string(), "--title")?;
            }
            "--svg" => set(&mut svg, PathBuf::from(val(opt)?), "--svg")?,
            "--markdown" => set(&mut markdown, PathBuf::from(val(opt)?), "--markdown")?,
            "--json" => set(&mut json, PathBuf::from(val(opt)?), "--json")?,
            "--guest-pages" => {
                let v = val(opt)?;
                let expected = "a number of pages, 1 to 2^40";
                let n: u64 = number("--guest-pages", v, expected)?;
                if !(1..=1 << 40).contains(&n) {
                    return Err(UsageError::BadValue {
                        option: "--guest-pages",
                        value: v.into(),
                        expected,
                    });
                }
                set(&mut guest_pages, n, "--guest-pages")?;
            }
            s if s.starts_with('-') && s.len() > 1 => {
                return Err(UsageError::UnknownOption(s.to_string()))
            }
            pair => {
                let bad = || UsageError::BadValue {
                    option: "LABEL=REPORT",
                    value: pair.into(),
                    expected: "a label (1 to 64 characters, no control characters), `=`, a file",
                };
                let (label, file) = pair.split_once('=').ok_or_else(bad)?;
                if label.is_empty()
                    || label.chars().count() > MAX_LABEL_CHARS
                    || !printable(label)
                    || file.is_empty()
                {
                    return Err(bad());
                }
                if reports.iter().any(|(l, _)| l == label) {
                    return Err(UsageError::DuplicateLabel(label.to_string()));
                }
                if reports.len() >= MAX_COMPARE_REPORTS {
                    return Err(UsageError::TooManyReports);
                }
                reports.push((label.to_string(), PathBuf::from(file)));
            }
        }
    }
    if reports.is_empty() {
        return Err(UsageError::NoReports);
    }
    Ok(Command::Compare(CompareOptions {
        title,
        svg,
        markdown,
        json,
        guest_pages,
        reports,
    }))
}

fn parse_migrate<'a>(mut it: impl Iterator<Item = &'a str>) -> Result<Command, UsageError> {
    let mut guest = None;
    let mut config = None;
    let mut mode = None;
    let mut policy = None;
    let mut appliance = None;
    let mut report = None;
    let mut svg = None;
    let mut baseline_report = None;
    let mut timeout_s = None;
    let mut key_file = None;
    let mut fault = None;
    let mut source_ip = None;
    let mut destination_ip = None;
    let mut prefix = None;
    let mut port = None;
    let mut bridge = None;
    let mut link_rate = None;
    let mut appliance_memory_mib = None;
    let mut shell_name = None;
    let mut work_dir = None;
    let mut scenario = None;
    let mut workload = None;

    while let Some(arg) = it.next() {
        let (opt, inline) = split_option(arg);
        let mut val = |name: &str| -> Result<&'a str, UsageError> {
            match inline {
                Some(v) => Ok(v),
                None => value(name, &mut it),
            }
        };
        match opt {
            "-h" | "--help" => return Ok(Command::Help(MIGRATE_HELP)),
            "--config" => set(&mut config, PathBuf::from(val(opt)?), "--config")?,
            "--mode" => {
                let v = val(opt)?;
                let m = match v {
                    "baseline" => Mode::Baseline,
                    "dependency-aware" => Mode::DependencyAware,
                    "paper-analysis" => Mode::PaperAnalysis,
                    _ => {
                        return Err(UsageError::BadValue {
                            option: "--mode",
                            value: v.into(),
                            expected: "baseline, dependency-aware or paper-analysis",
                        })
                    }
                };
                set(&mut mode, m, "--mode")?;
            }
            "--policy" => {
                let v = val(opt)?;
                let p = match v {
                    "xen-3.3" => Policy::Xen33,
                    "xen-4" => Policy::Xen4,
                    "adaptive" => Policy::Adaptive,
                    _ => {
                        return Err(UsageError::BadValue {
                            option: "--policy",
                            value: v.into(),
                            expected: "xen-3.3, xen-4 or adaptive",
                        })
                    }
                };
                set(&mut policy, p, "--policy")?;
            }
            "--appliance" => set(&mut appliance, PathBuf::from(val(opt)?), "--appliance")?,
            "--report" => set(&mut report, PathBuf::from(val(opt)?), "--report")?,
            "--svg" => set(&mut svg, PathBuf::from(val(opt)?), "--svg")?,
            "--baseline-report" => set(
                &mut baseline_report,
                PathBuf::from(val(opt)?),
                "--baseline-report",
            )?,
            "--timeout" => {
                let v = val(opt)?;
                let t: u64 = number("--timeout", v, "whole seconds, 1 to 86400")?;
                if !(1..=86_400).contains(&t) {
                    return Err(UsageError::BadValue {
                        option: "--timeout",
                        value: v.into(),
                        expected: "whole seconds, 1 to 86400",
                    });
                }
                set(&mut timeout_s, t, "--timeout")?;
            }
            "--key-file" => set(&mut key_file, PathBuf::from(val(opt)?), "--key-file")?,
            "--fault" => {
                let v = val(opt)?;
                let f = match v {
                    "wrong-key" => Fault::WrongKey,
                    "corrupt-final" => Fault::CorruptFinal,
                    _ => {
                        return Err(UsageError::BadValue {
                            option: "--fault",
                            value: v.into(),
                            expected: "wrong-key or corrupt-final",
                        })
                    }
                };
                set(&mut fault, f, "--fault")?;
            }
            "--source-ip" => set(
                &mut source_ip,
                number("--source-ip", val(opt)?, "an IPv4 address")?,
                "--source-ip",
            )?,
            "--destination-ip" => set(
                &mut destination_ip,
                number("--destination-ip", val(opt)?, "an IPv4 address")?,
                "--destination-ip",
            )?,
            "--prefix" => {
                let v = val(opt)?;
                let p: u8 = number("--prefix", v, "a prefix length, 1 to 30")?;
                if !(1..=30).contains(&p) {
                    return Err(UsageError::BadValue {
                        option: "--prefix",
                        value: v.into(),
                        expected: "a prefix length, 1 to 30",
                    });
                }
                set(&mut prefix, p, "--prefix")?;
            }
            "--port" => {
                let v = val(opt)?;
                let p: u16 = number("--port", v, "a TCP port, 1 to 65535")?;
                if p == 0 {
                    return Err(UsageError::BadValue {
                        option: "--port",
                        value: v.into(),
                        expected: "a TCP port, 1 to 65535",
                    });
                }
                set(&mut port, p, "--port")?;
            }
            "--bridge" => {
                let v = val(opt)?;
                if !valid_domain_name(v) || v.len() > 15 {
                    return Err(UsageError::BadValue {
                        option: "--bridge",
                        value: v.into(),
                        expected: "an interface name (letters, digits, . _ -; at most 15)",
                    });
                }
                set(&mut bridge, v.to_string(), "--bridge")?;
            }
            "--link-rate" | "--rate" => {
                let v = val(opt)?;
                // xl's rate syntax: digits, a unit, optional "/s" and "@interval".
                let ok = !v.is_empty()
                    && v.len() <= 32
                    && v.starts_with(|c: char| c.is_ascii_digit())
                    && v.bytes()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'/' | b'@' | b'.'));
                if !ok {
                    return Err(UsageError::BadValue {
                        option: "--link-rate",
                        value: v.into(),
                        expected: "an xl vif rate such as 40Mb/s or 5MB/s@20ms",
                    });
                }
                set(&mut link_rate, v.to_string(), "--link-rate/--rate")?;
            }
            "--appliance-memory" => {
                let v = val(opt)?;
                let m: u32 = number("--appliance-memory", v, "MiB, 16 to 4096")?;
                if !(16..=4096).contains(&m) {
                    return Err(UsageError::BadValue {
                        option: "--appliance-memory",
                        value: v.into(),
                        expected: "MiB, 16 to 4096",
                    });
                }
                set(&mut appliance_memory_mib, m, "--appliance-memory")?;
            }
            "--shell-name" => {
                let v = val(opt)?;
                if !valid_domain_name(v) {
                    return Err(UsageError::BadValue {
                        option: "--shell-name",
                        value: v.into(),
                        expected: "a domain name (1 to 64 of letters, digits, . _ -)",
                    });
                }
                set(&mut shell_name, v.to_string(), "--shell-name")?;
            }
            "--work-dir" => set(&mut work_dir, PathBuf::from(val(opt)?), "--work-dir")?,
            "--scenario" => set(&mut scenario, val(opt)?.to_string(), "--scenario")?,
            "--workload" => set(&mut workload, val(opt)?.to_string(), "--workload")?,
            s if s.starts_with('-') && s.len() > 1 => {
                return Err(UsageError::UnknownOption(s.to_string()))
            }
            name => {
                if guest.is_some() {
                    return Err(UsageError::ExtraArgument(name.to_string()));
                }
                if !valid_domain_name(name) {
                    return Err(UsageError::BadValue {
                        option: "<guest>",
                        value: name.into(),
                        expected: "a domain name (1 to 64 of letters, digits, . _ -)",
                    });
                }
                guest = Some(name.to_string());
            }
        }
    }

    let guest = guest.ok_or(UsageError::MissingGuest)?;
    let config = config.ok_or(UsageError::MissingConfig)?;
    Ok(Command::Migrate(Box::new(MigrateOptions {
        guest,
        config,
        mode: mode.unwrap_or(Mode::Baseline),
        policy: policy.unwrap_or(Policy::Xen4),
        appliance: appliance.unwrap_or_else(|| PathBuf::from("/usr/lib/depmig/depmig-appliance")),
        report,
        svg,
        baseline_report,
        timeout_s: timeout_s.unwrap_or(1800),
        key_file,
        source_ip: source_ip.unwrap_or(Ipv4Addr::new(10, 77, 0, 21)),
        destination_ip: destination_ip.unwrap_or(Ipv4Addr::new(10, 77, 0, 22)),
        prefix: prefix.unwrap_or(24),
        port: port.unwrap_or(7100),
        bridge: bridge.unwrap_or_else(|| "xenbr0".to_string()),
        link_rate,
        appliance_memory_mib: appliance_memory_mib.unwrap_or(64),
        shell_name,
        work_dir: work_dir.unwrap_or_else(|| PathBuf::from("/tmp/depmig")),
        scenario,
        workload,
        fault,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn migrate(args: &[&str]) -> MigrateOptions {
        match parse_args(args) {
            Ok(Command::Migrate(o)) => *o,
            other => panic!("expected migrate options, got {other:?}"),
        }
    }

    #[test]
    fn defaults() {
        let o = migrate(&["migrate", "guest1", "--config", "/scenario/guest.cfg"]);
        assert_eq!(o.guest, "guest1");
        assert_eq!(o.config, PathBuf::from("/scenario/guest.cfg"));
        assert_eq!(o.mode, Mode::Baseline);
        assert_eq!(o.policy, Policy::Xen4);
        assert_eq!(o.timeout_s, 1800);
        assert_eq!(o.source_ip, Ipv4Addr::new(10, 77, 0, 21));
        assert_eq!(o.destination_ip, Ipv4Addr::new(10, 77, 0, 22));
        assert_eq!((o.prefix, o.port, o.bridge.as_str()), (24, 7100, "xenbr0"));
        assert_eq!(o.link_rate, None);
        assert_eq!(o.key_file, None);
        assert_eq!(o.report, None);
    }

    #[test]
    fn every_option() {
        let o = migrate(&[
            "migrate",
            "--mode=dependency-aware",
            "--policy",
            "xen-3.3",
            "g",
            "--config",
            "g.cfg",
            "--appliance",
            "/a.elf",
            "--report",
            "r.json",
            "--svg",
            "p.svg",
            "--baseline-report",
            "b.json",
            "--timeout",
            "60",
            "--key-file",
            "k",
            "--source-ip",
            "10.0.0.5",
            "--destination-ip=10.0.0.6",
            "--prefix",
            "16",
            "--port",
            "9000",
            "--bridge",
            "br1",
            "--link-rate",
            "40Mb/s",
            "--appliance-memory",
            "96",
            "--shell-name",
            "g-new",
            "--work-dir",
            "/w",
            "--scenario",
            "s1",
            "--workload",
            "mmuncher",
            "--fault",
            "corrupt-final",
        ]);
        assert_eq!(o.mode, Mode::DependencyAware);
        assert_eq!(o.policy, Policy::Xen33);
        let p = migrate(&[
            "migrate",
            "g",
            "--config",
            "g.cfg",
            "--mode",
            "paper-analysis",
        ]);
        assert_eq!(p.mode, Mode::PaperAnalysis);
        assert_eq!(p.mode.as_str(), "paper-analysis");
        assert_eq!(o.appliance, PathBuf::from("/a.elf"));
        assert_eq!(o.report, Some(PathBuf::from("r.json")));
        assert_eq!(o.svg, Some(PathBuf::from("p.svg")));
        assert_eq!(o.baseline_report, Some(PathBuf::from("b.json")));
        assert_eq!(o.timeout_s, 60);
        assert_eq!(o.key_file, Some(PathBuf::from("k")));
        assert_eq!(o.source_ip, Ipv4Addr::new(10, 0, 0, 5));
        assert_eq!(o.destination_ip, Ipv4Addr::new(10, 0, 0, 6));
        assert_eq!((o.prefix, o.port), (16, 9000));
        assert_eq!(o.bridge, "br1");
        assert_eq!(o.link_rate.as_deref(), Some("40Mb/s"));
        assert_eq!(o.appliance_memory_mib, 96);
        assert_eq!(o.shell_name.as_deref(), Some("g-new"));
        assert_eq!(o.work_dir, PathBuf::from("/w"));
        assert_eq!(o.scenario.as_deref(), Some("s1"));
        assert_eq!(o.workload.as_deref(), Some("mmuncher"));
        assert_eq!(o.fault, Some(Fault::CorruptFinal));
    }

    #[test]
    fn faults() {
        let base = ["migrate", "g", "--config", "g.cfg"];
        assert_eq!(migrate(&base).fault, None);
        let o = migrate(&[&base[..], &["--fault", "wrong-key"]].concat());
        assert_eq!(o.fault, Some(Fault::WrongKey));
        assert_eq!(o.fault.map(Fault::as_str), Some("wrong-key"));
        assert!(matches!(
            parse_args(&[&base[..], &["--fault", "nonsense"]].concat()),
            Err(UsageError::BadValue {
                option: "--fault",
                ..
            })
        ));
        assert_eq!(
            parse_args(&[&base[..], &["--fault", "wrong-key", "--fault", "wrong-key"]].concat()),
            Err(UsageError::Repeated("--fault"))
        );
    }

    #[test]
    fn help_texts() {
        assert_eq!(parse_args(&["--help"]), Ok(Command::Help(MAIN_HELP)));
        assert_eq!(parse_args(&["-h"]), Ok(Command::Help(MAIN_HELP)));
        assert_eq!(
            parse_args(&["migrate", "--help"]),
            Ok(Command::Help(MIGRATE_HELP))
        );
        // Help wins even when the rest is incomplete.
        assert_eq!(
            parse_args(&["migrate", "g", "-h"]),
            Ok(Command::Help(MIGRATE_HELP))
        );
        // Every option the parser knows is explained in the help.
        for opt in [
            "--config",
            "--mode",
            "--policy",
            "--appliance",
            "--report",
            "--svg",
            "--baseline-report",
            "--timeout",
            "--key-file",
            "--source-ip",
            "--destination-ip",
            "--prefix",
            "--port",
            "--bridge",
            "--link-rate",
            "--rate",
            "--appliance-memory",
            "--shell-name",
            "--work-dir",
            "--scenario",
            "--workload",
            "--fault",
            "--help",
        ] {
            assert!(
                MIGRATE_HELP.contains(&format!(" {opt} ")),
                "{opt} not in help"
            );
            // And each of them is really parsed (not an unknown option).
            let r = parse_args(&["migrate", opt]);
            assert!(
                !matches!(r, Err(UsageError::UnknownOption(_))),
                "{opt} unknown to the parser"
            );
        }
        for v in [
            "baseline",
            "dependency-aware",
            "xen-3.3",
            "xen-4",
            "adaptive",
        ] {
            assert!(MIGRATE_HELP.contains(v));
        }
        for code in ["  0  ", "  1  ", "  2  ", "  3  ", "  4  "] {
            assert!(MIGRATE_HELP.contains(code), "exit code {code} undocumented");
        }
    }

    #[test]
    fn usage_errors() {
        let cfg = ["--config", "g.cfg"];
        let with = |extra: &[&str]| {
            let mut v = vec!["migrate", "g"];
            v.extend_from_slice(&cfg);
            v.extend_from_slice(extra);
            parse_args(&v)
        };
        assert_eq!(parse_args::<&str>(&[]), Err(UsageError::NoCommand));
        assert_eq!(
            parse_args(&["frobnicate"]),
            Err(UsageError::UnknownCommand("frobnicate".into()))
        );
        assert_eq!(
            parse_args(&["--bogus"]),
            Err(UsageError::UnknownOption("--bogus".into()))
        );
        assert_eq!(
            parse_args(&["migrate", "--config", "g.cfg"]),
            Err(UsageError::MissingGuest)
        );
        assert_eq!(
            parse_args(&["migrate", "g"]),
            Err(UsageError::MissingConfig)
        );
        assert_eq!(with(&["h"]), Err(UsageError::ExtraArgument("h".into())));
        assert_eq!(
            with(&["--timeout"]),
            Err(UsageError::MissingValue("--timeout".into()))
        );
        assert_eq!(
            with(&["--frob", "1"]),
            Err(UsageError::UnknownOption("--frob".into()))
        );
        assert_eq!(
            with(&["--config", "x"]),
            Err(UsageError::Repeated("--config"))
        );
        let bad = |extra: &[&str], opt: &str| match with(extra) {
            Err(UsageError::BadValue { option, .. }) => assert_eq!(option, opt, "{extra:?}"),
            other => panic!("{extra:?}: expected a bad value, got {other:?}"),
        };
        bad(&["--mode", "fast"], "--mode");
        bad(&["--policy", "xen-5"], "--policy");
        bad(&["--timeout", "0"], "--timeout");
        bad(&["--timeout", "-3"], "--timeout");
        bad(&["--timeout", "ten"], "--timeout");
        bad(&["--source-ip", "10.77.0"], "--source-ip");
        bad(&["--destination-ip", "::1"], "--destination-ip");
        bad(&["--prefix", "33"], "--prefix");
        bad(&["--port", "0"], "--port");
        bad(&["--port", "70000"], "--port");
        bad(&["--bridge", "br\"0"], "--bridge");
        bad(&["--link-rate", "40Mb/s,script=x"], "--link-rate");
        bad(&["--link-rate", "fast"], "--link-rate");
        bad(&["--rate", "1Mb/s\""], "--link-rate");
        assert_eq!(
            with(&["--rate", "8Mb/s"]).map(
                |c| matches!(c, Command::Migrate(o) if o.link_rate.as_deref() == Some("8Mb/s"))
            ),
            Ok(true)
        );
        assert_eq!(
            with(&["--rate", "8Mb/s", "--link-rate", "9Mb/s"]),
            Err(UsageError::Repeated("--link-rate/--rate"))
        );
        bad(&["--appliance-memory", "8"], "--appliance-memory");
        bad(&["--shell-name", "a b"], "--shell-name");
        match parse_args(&["migrate", "g\"x", "--config", "c"]) {
            Err(UsageError::BadValue {
                option: "<guest>", ..
            }) => {}
            other => panic!("quote in a guest name accepted: {other:?}"),
        }
        // Messages say what is wrong.
        let msg = with(&["--mode", "fast"]).unwrap_err().to_string();
        assert!(
            msg.contains("fast") && msg.contains("dependency-aware"),
            "{msg}"
        );
    }

    fn compare(args: &[&str]) -> Result<CompareOptions, UsageError> {
        let mut v = vec!["compare"];
        v.extend_from_slice(args);
        match parse_args(&v)? {
            Command::Compare(o) => Ok(o),
            other => panic!("expected compare options, got {other:?}"),
        }
    }

    #[test]
    fn compare_arguments() {
        let o = compare(&[
            "stock=out/b.json",
            "--title",
            "mmuncher <128 MiB>",
            "--svg=p.svg",
            "depmig aware=d=1.json",
            "--markdown",
            "t.md",
            "--json",
            "c.json",
            "--guest-pages",
            "32768",
        ])
        .unwrap();
        assert_eq!(o.title.as_deref(), Some("mmuncher <128 MiB>"));
        assert_eq!(o.svg, Some(PathBuf::from("p.svg")));
        assert_eq!(o.markdown, Some(PathBuf::from("t.md")));
        assert_eq!(o.json, Some(PathBuf::from("c.json")));
        assert_eq!(o.guest_pages, Some(32768));
        // The label ends at the first `=`; the order is kept.
        assert_eq!(
            o.reports,
            vec![
                ("stock".to_string(), PathBuf::from("out/b.json")),
                ("depmig aware".to_string(), PathBuf::from("d=1.json")),
            ]
        );
        let o = compare(&["a=x"]).unwrap();
        assert_eq!((o.title, o.svg, o.guest_pages), (None, None, None));

        assert_eq!(compare(&[]), Err(UsageError::NoReports));
        assert_eq!(compare(&["--svg", "p.svg"]), Err(UsageError::NoReports));
        assert_eq!(
            compare(&["a=x", "a=y"]),
            Err(UsageError::DuplicateLabel("a".into()))
        );
        let many: Vec<String> = (0..=MAX_COMPARE_REPORTS)
            .map(|i| format!("r{i}=f"))
            .collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        assert_eq!(compare(&many), Err(UsageError::TooManyReports));
        assert!(compare(&many[..MAX_COMPARE_REPORTS]).is_ok());
        assert_eq!(
            compare(&["a=x", "--frob"]),
            Err(UsageError::UnknownOption("--frob".into()))
        );
        assert_eq!(
            compare(&["a=x", "--json"]),
            Err(UsageError::MissingValue("--json".into()))
        );
        assert_eq!(
            compare(&["a=x", "--svg", "a", "--svg", "b"]),
            Err(UsageError::Repeated("--svg"))
        );
        let long = "l".repeat(MAX_LABEL_CHARS + 1) + "=f";
        for bad in ["nolabel", "=f", "a=", "a\nb=f", &long] {
            match compare(&[bad]) {
                Err(UsageError::BadValue {
                    option: "LABEL=REPORT",
                    ..
                }) => {}
                other => panic!("{bad:?}: {other:?}"),
            }
        }
        for (opt, v) in [
            ("--guest-pages", "0"),
            ("--guest-pages", "-1"),
            ("--guest-pages", "many"),
            ("--guest-pages", "2000000000000"),
            ("--title", "a\u{7}b"),
        ] {
            match compare(&["a=x", opt, v]) {
                Err(UsageError::BadValue { option, .. }) => assert_eq!(option, opt),
                other => panic!("{opt} {v}: {other:?}"),
            }
        }
        // Help wins, and documents every option, target key and exit code.
        assert_eq!(
            parse_args(&["compare", "a=x", "--help"]),
            Ok(Command::Help(COMPARE_HELP))
        );
        for opt in [
            "--title",
            "--svg",
            "--markdown",
            "--json",
            "--guest-pages",
            "--help",
        ] {
            assert!(
                COMPARE_HELP.contains(&format!(" {opt} ")),
                "{opt} not in help"
            );
            assert!(
                !matches!(
                    parse_args(&["compare", opt]),
                    Err(UsageError::UnknownOption(_))
                ),
                "{opt} unknown to the parser"
            );
        }
        for key in [
            "da_later_rounds_le_100",
            "da_total_pages_le_1_05_guest",
            "da_downtime_le_0_1_stock",
            "pa_total_pages_within_5pct_of_baseline",
            "da_total_pages_within_5pct_of_baseline",
        ] {
            assert!(COMPARE_HELP.contains(key), "{key} not in help");
        }
        for code in ["  0  ", "  1  ", "  2  "] {
            assert!(COMPARE_HELP.contains(code), "exit code {code} undocumented");
        }
        assert!(MAIN_HELP.contains("depmig compare") && MAIN_HELP.contains("  compare  "));
    }

    #[test]
    fn domain_names() {
        assert!(valid_domain_name("guest-1.a_b"));
        assert!(!valid_domain_name(""));
        assert!(!valid_domain_name("a/b"));
        assert!(!valid_domain_name("a\"b"));
        assert!(!valid_domain_name(&"x".repeat(65)));
    }
}
