//! Command-line parsing of `depmig`: clap's derive reads the options (their
//! doc comments are the help texts), and its errors come back as
//! [`UsageError`]s, as do the rules that span several options.

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{ArgAction, Args, CommandFactory, FromArgMatches, Parser, Subcommand};

mod compare_args;
mod migrate_args;
mod saverestore_args;
mod twohost_args;
mod values;

pub use compare_args::CompareOptions;
pub use migrate_args::MigrateOptions;
pub use saverestore_args::{RestoreArgs, SaveArgs, SaveFormat};
pub use twohost_args::{ReceiveArgs, RecoverArgs};
pub use values::{link_rate, link_rate_bytes_per_s, valid_domain_name};

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Print this text and exit 0.
    Help(String),
    /// Migrate a guest.
    Migrate(Box<MigrateOptions>),
    /// Put several migration reports side by side.
    Compare(CompareOptions),
    /// Serve the destination's side of a two-host migration on stdin/stdout.
    Receive(ReceiveArgs),
    /// Settle a two-host handoff whose answer never came.
    Recover(RecoverArgs),
    /// Save a running guest to a file.
    Save(SaveArgs),
    /// Start a guest from a save file.
    Restore(RestoreArgs),
}

/// Most reports `depmig compare` takes at once.
pub const MAX_COMPARE_REPORTS: usize = 16;
/// Longest label of a compared report, in characters.
pub const MAX_LABEL_CHARS: usize = 64;
/// Longest `--title`, in characters.
pub const MAX_TITLE_CHARS: usize = 200;

/// A command line that cannot be obeyed; the doc comment of each variant
/// is its message.
#[derive(Debug, Clone, PartialEq, Eq, displaydoc::Display)]
pub enum UsageError {
    /// no command given (try `depmig --help`)
    NoCommand,
    /// unknown command `{0}` (try `depmig --help`)
    UnknownCommand(String),
    /// unknown option `{0}` (try `depmig <command> --help`)
    UnknownOption(String),
    /// option `{0}` needs a value
    MissingValue(String),
    /// bad value `{value}` for {option}: expected {expected}
    BadValue {
        /// The option.
        option: &'static str,
        /// The value given.
        value: String,
        /// What is acceptable.
        expected: &'static str,
    },
    /// which guest? `depmig migrate <guest> --config <guest.cfg>`
    MissingGuest,
    /// unexpected argument `{0}` (one guest per migration)
    ExtraArgument(String),
    /// --config <guest.cfg> is required (the shell is created from it)
    MissingConfig,
    /// option {0} given twice
    Repeated(&'static str),
    /// which reports? `depmig compare LABEL=REPORT.json ...` (try `depmig compare --help`)
    NoReports,
    /// label `{0}` given to two reports
    DuplicateLabel(String),
    /// more than 16 reports; compare fewer at a time
    TooManyReports,
    /// --fault {0} needs --verify: only page verification can catch it
    FaultNeedsVerify(&'static str),
    /// --delta-cache {cache} MiB does not fit appliances of {memory} MiB: at most a quarter of --appliance-memory
    DeltaCacheTooLarge {
        /// The cache asked for.
        cache: u32,
        /// The appliances' memory.
        memory: u32,
    },
    /// --transport needs HOST: `depmig migrate <guest> HOST --transport CMD ...`
    TransportWithoutHost,
    /// {0}
    Other(String),
}

impl std::error::Error for UsageError {}

/// depmig: live migration of a Xen guest by two depmig appliances
#[derive(Parser)]
#[command(
    name = "depmig",
    disable_help_flag = true,
    disable_help_subcommand = true,
    override_usage = "\
depmig migrate <guest> [HOST] --config <guest.cfg> [options]
       depmig receive [options]
       depmig recover <guest> HOST [options]
       depmig save <guest> FILE --config <guest.cfg> [options]
       depmig restore FILE [--config <guest.cfg>] [options]
       depmig compare [options] LABEL=REPORT.json ...
       depmig --help | depmig <command> --help",
    after_help = "\
Run `depmig <command> --help` for every option, what the command does step
by step, and its exit codes."
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Sub>,
    /// this text
    #[arg(short, long, action = ArgAction::Help)]
    help: Option<bool>,
}

/// A command's help: its title line (`before_help`) in place of the summary
/// that `depmig --help` lists it with.
const SUBCOMMAND_HELP: &str = "{before-help}{usage-heading} {usage}\n\n{all-args}{after-help}";

#[derive(Subcommand)]
enum Sub {
    /// move a running guest into a new domain on this host, or to
    /// HOST, through a source and a destination appliance; the guest
    /// keeps running and at no time do two copies of it run
    #[command(
        verbatim_doc_comment,
        disable_help_flag = true,
        before_help = "depmig migrate: live-migrate a guest through two depmig appliances",
        help_template = SUBCOMMAND_HELP,
        override_usage = "depmig migrate <guest> [HOST] --config <guest.cfg> [options]",
        after_help = include_str!("migrate_after_help.txt")
    )]
    Migrate(Box<WithHelp<MigrateOptions>>),
    /// put migration reports of the same guest side by side: pages per
    /// round (table and log-scale plot), the headline figures of each,
    /// and the targets of dependency-aware migration evaluated from them
    #[command(
        verbatim_doc_comment,
        disable_help_flag = true,
        before_help = "depmig compare: migrations of the same guest side by side",
        help_template = SUBCOMMAND_HELP,
        override_usage = "depmig compare [options] LABEL=REPORT.json ...",
        after_help = include_str!("compare_after_help.txt")
    )]
    Compare(WithHelp<CompareOptions>),
    /// the destination's side of `depmig migrate GUEST HOST`, started
    /// there by the transport: serves the control conversation on
    /// stdin/stdout, creates the shell and the destination appliance,
    /// and runs the guest only once the source said it is stopped
    #[command(
        verbatim_doc_comment,
        disable_help_flag = true,
        before_help = "depmig receive: the destination of a two-host migration",
        help_template = SUBCOMMAND_HELP,
        override_usage = "depmig receive [options]   (started by the transport; stdin/stdout are the conversation)",
        after_help = include_str!("receive_after_help.txt")
    )]
    Receive(WithHelp<ReceiveArgs>),
    /// after `depmig migrate GUEST HOST` ended with exit status 5:
    /// asks HOST whether the guest runs there, then destroys the
    /// suspended source (it does) or resumes it (it does not)
    #[command(
        verbatim_doc_comment,
        disable_help_flag = true,
        before_help = "depmig recover: settle a two-host handoff that got no answer",
        help_template = SUBCOMMAND_HELP,
        override_usage = "depmig recover <guest> HOST [options]",
        after_help = include_str!("recover_after_help.txt")
    )]
    Recover(WithHelp<RecoverArgs>),
    /// write a running guest to FILE as Xen's migration stream v2
    /// (in xl's save-file format by default), then destroy it, as
    /// `xl save` does: a source appliance sends it to dom0
    #[command(
        verbatim_doc_comment,
        disable_help_flag = true,
        before_help = "depmig save: save a running guest to a file through a source appliance",
        help_template = SUBCOMMAND_HELP,
        override_usage = "depmig save <guest> FILE --config <guest.cfg> [options]",
        after_help = include_str!("save_after_help.txt")
    )]
    Save(WithHelp<SaveArgs>),
    /// start a guest from a save file of `depmig save` (xl's
    /// format or a bare libxc stream): dom0 sends it to a
    /// destination appliance filling a paused shell
    #[command(
        verbatim_doc_comment,
        disable_help_flag = true,
        before_help = "depmig restore: start a guest from a save file through a destination appliance",
        help_template = SUBCOMMAND_HELP,
        override_usage = "depmig restore FILE [--config <guest.cfg>] [options]",
        after_help = include_str!("restore_after_help.txt")
    )]
    Restore(WithHelp<RestoreArgs>),
    /// the same as --help (whatever follows)
    #[command(hide = true)]
    Help {
        #[arg(hide = true, num_args = 0.., allow_hyphen_values = true)]
        ignored: Vec<String>,
    },
}

/// A command's options and its `-h, --help`, which prints the whole text
/// (clap's own `-h` would print a shorter one).
#[derive(Args)]
struct WithHelp<T: Args + FromArgMatches> {
    #[command(flatten)]
    options: T,
    /// this text
    #[arg(short, long, action = ArgAction::Help)]
    help: Option<bool>,
}

/// Every option's spelling, for [`UsageError::Repeated`] (a test holds it
/// against the parser's options).
#[rustfmt::skip]
const OPTION_NAMES: &[&str] = &[
    "--config", "--mode", "--policy", "--timeout", "--key-file", "--bitmap-route", "--compress",
    "--encrypt",
    "--delta-cache", "--encodings",
    "--appliance", "--appliance-memory", "--source-ip", "--destination-ip", "--prefix",
    "--port", "--bridge", "--shell-name", "--work-dir", "--report", "--svg",
    "--baseline-report", "--scenario", "--workload", "--fault", "--verify",
    "--title", "--markdown", "--json", "--guest-pages", "--require-agent", "--transport",
    "--format", "--dom0-ip",
];

/// The parser: the derived one, where every option's value may start with
/// `-` (the word after an option is always its value).
fn command() -> clap::Command {
    let hyphen_values = |c: clap::Command| {
        c.mut_args(|a| {
            let takes_value = a.get_long().is_some() && a.get_action().takes_values();
            a.allow_hyphen_values(takes_value)
        })
    };
    Cli::command()
        .mut_subcommand("migrate", hyphen_values)
        .mut_subcommand("compare", hyphen_values)
        .mut_subcommand("receive", hyphen_values)
        .mut_subcommand("recover", hyphen_values)
        .mut_subcommand("save", hyphen_values)
        .mut_subcommand("restore", hyphen_values)
}

/// Parses the arguments after the program name.
pub fn parse_args<S: AsRef<str>>(args: &[S]) -> Result<Command, UsageError> {
    let argv = std::iter::once("depmig").chain(args.iter().map(AsRef::as_ref));
    let parsed = command()
        .try_get_matches_from(argv)
        .and_then(|m| Cli::from_arg_matches(&m));
    let cli = match parsed {
        Ok(cli) => cli,
        Err(e) if e.kind() == ErrorKind::DisplayHelp => return Ok(Command::Help(e.to_string())),
        Err(e) => return Err(usage_error(&e)),
    };
    match cli.command {
        None => Err(UsageError::NoCommand),
        Some(Sub::Help { .. }) => Ok(Command::Help(main_help())),
        Some(Sub::Migrate(m)) => check_migrate(m.options).map(|o| Command::Migrate(Box::new(o))),
        Some(Sub::Compare(c)) => check_compare(c.options).map(Command::Compare),
        Some(Sub::Receive(r)) => Ok(Command::Receive(r.options)),
        Some(Sub::Recover(r)) => Ok(Command::Recover(r.options)),
        Some(Sub::Save(r)) => Ok(Command::Save(r.options)),
        Some(Sub::Restore(r)) => Ok(Command::Restore(r.options)),
    }
}

/// The delta cache's size when `--delta-cache` is not given (MiB).
pub const DEFAULT_DELTA_CACHE_MIB: u32 = 16;

/// The rules of `depmig migrate` that span its arguments.
fn check_migrate(mut o: MigrateOptions) -> Result<MigrateOptions, UsageError> {
    // The source appliance allocates the cache on its heap beside a few
    // MiB of its own; it refuses one that does not fit, but only once
    // armed. A quarter of its memory leaves it ample room. Unasked, the
    // cache takes that quarter up to 16 MiB: 4096 pages, well above the
    // few hundred the copy round of the rig's guests re-sends.
    o.delta_cache = o.delta_cache_arg.unwrap_or(depmig_control::DeltaCache(
        (o.appliance_memory_mib / 4).min(DEFAULT_DELTA_CACHE_MIB),
    ));
    let cache = o.delta_cache.0;
    if u64::from(cache) * 4 > u64::from(o.appliance_memory_mib) {
        return Err(UsageError::DeltaCacheTooLarge {
            cache,
            memory: o.appliance_memory_mib,
        });
    }
    if o.transport.is_some() && o.host.is_none() {
        return Err(UsageError::TransportWithoutHost);
    }
    // Unverified, a page damaged at the destination would be run.
    match o.fault {
        Some(f) if f.needs_verify() && !o.verify => Err(UsageError::FaultNeedsVerify(f.as_str())),
        _ => Ok(o),
    }
}

/// The rules of `depmig compare` that span its arguments.
fn check_compare(o: CompareOptions) -> Result<CompareOptions, UsageError> {
    if o.reports.is_empty() {
        return Err(UsageError::NoReports);
    }
    for (i, (label, _)) in o.reports.iter().enumerate() {
        if o.reports.iter().take(i).any(|(l, _)| l == label) {
            return Err(UsageError::DuplicateLabel(label.clone()));
        }
    }
    if o.reports.len() > MAX_COMPARE_REPORTS {
        return Err(UsageError::TooManyReports);
    }
    Ok(o)
}

fn help_of(args: &[&str]) -> String {
    match parse_args(args) {
        Ok(Command::Help(text)) => text,
        // PANICS: asking for help cannot fail (the tests hold each of them).
        other => unreachable!("no help from {args:?}: {other:?}"),
    }
}

/// `depmig --help`.
pub fn main_help() -> String {
    help_of(&["--help"])
}

/// `depmig migrate --help`.
pub fn migrate_help() -> String {
    help_of(&["migrate", "--help"])
}

/// `depmig receive --help`.
pub fn receive_help() -> String {
    help_of(&["receive", "--help"])
}

/// `depmig recover --help`.
pub fn recover_help() -> String {
    help_of(&["recover", "--help"])
}

/// `depmig compare --help`.
pub fn compare_help() -> String {
    help_of(&["compare", "--help"])
}

/// The option named in clap's rendering of an argument (`--port <N>`,
/// `--port=7`), without its value.
fn option_name(shown: &str) -> &str {
    let name = shown.split(' ').next().unwrap_or(shown);
    name.split('=').next().unwrap_or(name)
}

fn context(e: &clap::Error, kind: ContextKind) -> Vec<String> {
    match e.get(kind) {
        Some(ContextValue::String(s)) => vec![s.clone()],
        Some(ContextValue::Strings(v)) => v.clone(),
        _ => Vec::new(),
    }
}

/// clap's error as the [`UsageError`] it stands for.
fn usage_error(e: &clap::Error) -> UsageError {
    let arg = context(e, ContextKind::InvalidArg)
        .into_iter()
        .next()
        .unwrap_or_default();
    match e.kind() {
        // The value parsers refuse with a UsageError of their own.
        ErrorKind::ValueValidation => std::error::Error::source(e)
            .and_then(|s| s.downcast_ref::<UsageError>())
            .cloned()
            .unwrap_or_else(|| UsageError::Other(e.to_string())),
        // clap's word for an option given without its value.
        ErrorKind::InvalidValue => UsageError::MissingValue(option_name(&arg).to_string()),
        ErrorKind::UnknownArgument if arg.starts_with('-') => {
            UsageError::UnknownOption(option_name(&arg).to_string())
        }
        ErrorKind::UnknownArgument => UsageError::ExtraArgument(arg),
        ErrorKind::InvalidSubcommand => UsageError::UnknownCommand(
            context(e, ContextKind::InvalidSubcommand)
                .into_iter()
                .next()
                .unwrap_or_default(),
        ),
        ErrorKind::ArgumentConflict if context(e, ContextKind::PriorArg).first() == Some(&arg) => {
            match option_name(&arg) {
                "--link-rate" => UsageError::Repeated("--link-rate/--rate"),
                name => OPTION_NAMES.iter().find(|n| **n == name).map_or_else(
                    || UsageError::Other(e.to_string()),
                    |n| UsageError::Repeated(n),
                ),
            }
        }
        ErrorKind::MissingRequiredArgument => {
            let missing = context(e, ContextKind::InvalidArg);
            if missing.iter().any(|m| m == "<guest>") {
                UsageError::MissingGuest
            } else if missing.iter().any(|m| option_name(m) == "--config") {
                UsageError::MissingConfig
            } else {
                UsageError::Other(e.to_string())
            }
        }
        _ => UsageError::Other(e.to_string()),
    }
}

#[cfg(test)]
mod tests;
