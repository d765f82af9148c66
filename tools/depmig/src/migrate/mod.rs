//! `depmig migrate`: the orchestration in dom0.
//!
//! dom0 never touches a page: it creates the paused shell and the two
//! appliances, arms them through xenstore, watches their progress, and at
//! the end either unpauses the shell and destroys the source, or destroys
//! the shell and makes sure the source guest runs. The one rule that must
//! never break: two copies never run. The shell is unpaused only while the
//! source cannot run: [`unpause_shell`] takes a [`SourceStopped`], which
//! only [`source_stopped`] (the source shut down for suspend, dying or
//! gone) and [`destroy_source`] make; and once the shell has been unpaused
//! the source is destroyed, never resumed. (Stock `xl migrate` hands over
//! in the same order: the receiver unpauses, then the sender destroys.)
//! The proof's constructor is private to `handoff::proof`, so the compiler
//! keeps that rule.
//!
//! The steps, in the order a migration takes them: `preflight` (every
//! check made before a domain is created), `arm` (the shell and the
//! appliances created, configured through xenstore, started), `watch`
//! (progress polled, the dom0 bitmap route served), then `handoff` (the
//! shell runs, the source goes) or `rollback` (the shell goes, the source
//! runs), and `outputs` (the report and the plot). `agent` speaks to the
//! guest's agent, `domains` to `xl`. Each step has its own error enum whose
//! text is the message the command prints.

use std::io::Write;
use std::time::Duration;

use depmig_control::keys::in_domain;
use depmig_control::{Mode, Round};

use crate::bitmap;
use crate::cli::MigrateOptions;
use crate::report::CliFigures;
use crate::toolstack::{ToolError, Toolstack};

mod agent;
mod arm;
mod domains;
mod handoff;
mod outputs;
mod preflight;
mod receive;
mod remote;
mod restore;
mod rollback;
mod save;
mod watch;

pub use crate::toolstack::{parse_xl_list, parse_xl_list_all, DomState};
pub use agent::agent_dir;
pub use domains::XlError;
pub use handoff::proof::{
    destroy_source, source_stopped, unpause_shell, NotStopped, SourceStopped, UnpauseError,
};
pub use outputs::{load_report, LoadReportError};
pub use receive::{receive, ReceiveOptions, ReceiveOutcome, ReceiveTimings};
pub use remote::{migrate_to_host, recover, RecoverOptions, RemoteTimings};
pub use restore::{restore, RestoreOptions, RestoreSend};
pub use save::{save, SaveEnd};

use rollback::Abort;
use watch::Watch;

/// A live round after the first this short (ms) switches xenstore polling
/// to the fast period: the stop-and-copy round may follow at once.
pub const SHORT_ROUND_MS: u64 = 5000;

/// How long the stop-and-copy round may run before the appliances' domain
/// states are checked again (ms).
pub const FINAL_QUIET_MS: u64 = 5000;

/// Waiting periods; the defaults suit the rig (TCG emulation, loaded host).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timings {
    /// Period of xenstore polling while pre-copy runs.
    pub poll: Duration,
    /// Period of xenstore polling once the source suspends the guest (the
    /// switchover adds to the guest's downtime).
    pub poll_fast: Duration,
    /// Period of the appliances' domain state checks (`xl list`).
    pub list_period: Duration,
    /// After one side finished or died, how long the other gets to report.
    pub grace: Duration,
    /// How long a destroyed domain may take to disappear.
    pub gone: Duration,
    /// How long a guest is watched after a failed migration for a suspend
    /// already under way.
    pub settle: Duration,
    /// How long the resume appliance gets (boot included).
    pub resume: Duration,
    /// How long the destination appliance may take to stop by itself after
    /// `applied` before it is destroyed.
    pub dst_stop: Duration,
    /// How long the guest agent may take to answer a thaw request.
    pub thaw: Duration,
}

impl Default for Timings {
    fn default() -> Timings {
        Timings {
            poll: Duration::from_millis(1000),
            poll_fast: Duration::from_millis(50),
            list_period: Duration::from_secs(3),
            grace: Duration::from_secs(90),
            gone: Duration::from_secs(60),
            settle: Duration::from_secs(5),
            resume: Duration::from_secs(240),
            dst_stop: Duration::from_secs(10),
            thaw: Duration::from_secs(30),
        }
    }
}

/// How a migration ended; [`Outcome::exit_code`] maps it to the exit status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The guest runs in the former shell under its own name.
    Migrated {
        /// Finishing steps that failed (rename, report, plot).
        warnings: Vec<String>,
    },
    /// Not migrated; the guest runs at the source, shell and appliances gone.
    RolledBack {
        /// Why the migration did not happen.
        reason: String,
        /// Cleanup steps that failed without endangering the guest.
        warnings: Vec<String>,
    },
    /// Nothing was created: a problem found up front.
    Refused {
        /// The problem.
        reason: String,
    },
    /// The guest could not be confirmed running, or something could not be
    /// cleaned up; an operator must look.
    NeedsOperator {
        /// What is wrong and what to do.
        reason: String,
    },
    /// Two hosts: the source told the destination it stopped and heard no
    /// answer. Its guest stays suspended (never resumed, never destroyed)
    /// until `depmig recover` asks the destination.
    Indeterminate {
        /// What happened and the command that settles it.
        reason: String,
    },
}

impl Outcome {
    /// The process exit status (see `depmig migrate --help`).
    pub fn exit_code(&self) -> u8 {
        match self {
            Outcome::Migrated { warnings } if warnings.is_empty() => 0,
            Outcome::Migrated { .. } => 3,
            Outcome::RolledBack { .. } => 1,
            Outcome::Refused { .. } => 2,
            Outcome::NeedsOperator { .. } => 4,
            Outcome::Indeterminate { .. } => 5,
        }
    }
}

/// A duration in whole milliseconds, as the toolstack's clock counts.
fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Domains this run created, by id.
#[derive(Debug, Default)]
struct Created {
    shell: Option<u32>,
    dst: Option<u32>,
    src: Option<u32>,
}

/// Everything one migration needs while it runs.
struct Run<'a, T: Toolstack + ?Sized> {
    ts: &'a mut T,
    o: &'a MigrateOptions,
    t: &'a Timings,
    out: &'a mut dyn Write,
    guest_id: u32,
    guest_paused_before: bool,
    guest_pages: Option<u64>,
    shell_name: String,
    src_name: String,
    dst_name: String,
    resume_name: String,
    created: Created,
    cli: CliFigures,
    last_round: Option<Round>,
    src_result: Option<String>,
    /// The source appliance was given write access to the guest's control/shutdown.
    shutdown_opened: bool,
    /// The shared key, as 64 hex digits.
    checked_key: String,
    /// The guest's agent nodes whose permissions were opened to the source
    /// appliance (restored on roll-back).
    agent_opened: Vec<String>,
    /// dom0's side of the dom0 bitmap route.
    bitmap: bitmap::Service,
    /// Two hosts: the destination, reached over the control protocol
    /// (`None`: it is on this host).
    remote: Option<remote::RemoteDest<'a>>,
    /// `depmig save`: dom0's own end, in place of a destination appliance.
    saver: Option<&'a mut dyn save::SaveEnd>,
}

impl<T: Toolstack + ?Sized> Run<'_, T> {
    /// Says one line of progress (`depmig: <msg>`).
    fn say(&mut self, msg: &str) {
        // Progress output is best effort; a closed stdout must not stop a
        // migration half way.
        let _ = writeln!(self.out, "depmig: {msg}");
        let _ = self.out.flush();
    }

    /// Reads one of the appliance's keys ([`keys`](depmig_control::keys)),
    /// trimmed; `Ok(None)` when missing or empty.
    fn read_key(&mut self, domid: u32, key: &str) -> Result<Option<String>, ToolError> {
        let v = self.ts.xs_read(&in_domain(domid, key))?;
        Ok(v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty()))
    }
}

/// Runs one migration as `opts` says; progress goes to `out`.
pub fn migrate<T: Toolstack + ?Sized>(
    ts: &mut T,
    opts: &MigrateOptions,
    t: &Timings,
    out: &mut dyn Write,
) -> Outcome {
    let checked = match preflight::check(ts, opts) {
        Ok(c) => c,
        Err(refusal) => {
            return Outcome::Refused {
                reason: refusal.to_string(),
            }
        }
    };
    // A mode the guest cannot serve runs as baseline, said and reported.
    let (opts, requested_mode) = fall_back(opts, checked.agent_fallback.as_ref());
    let opts = &opts;
    let mut run = Run::new(ts, opts, checked, requested_mode, t, out);
    run.say(&format!(
        "migrating `{}` (domain {})",
        opts.guest, run.guest_id
    ));
    if let Err(e) = run.start(&run.checked_key.clone()) {
        return run.roll_back(Abort::Arm(e));
    }
    let (Some(shell), Some(src), Some(dst)) = (run.created.shell, run.created.src, run.created.dst)
    else {
        return run.roll_back(Abort::Uncreated);
    };
    let outcome = match run.watch(src, dst) {
        Watch::Success => run.commit(shell, src, dst),
        Watch::Failure(reason) => run.roll_back(Abort::Watch(reason)),
    };
    // A commit left to an operator stops before its own unmapping: dom0
    // keeps no mapping of an appliance past this command either way.
    run.ts.logdirty_release();
    outcome
}

impl<'a, T: Toolstack + ?Sized> Run<'a, T> {
    /// A run of `opts` on what the checks found; the mode fallback, if
    /// any, is said.
    fn new(
        ts: &'a mut T,
        opts: &'a MigrateOptions,
        checked: preflight::Checked,
        requested_mode: Option<String>,
        t: &'a Timings,
        out: &'a mut dyn Write,
    ) -> Run<'a, T> {
        let g = &opts.guest;
        let guest_id = checked.guest_id;
        let mut run = Run {
            guest_id,
            guest_paused_before: checked.state.paused,
            guest_pages: checked.memory_mib.map(|m| m.saturating_mul(256)),
            shell_name: checked.shell_name,
            src_name: checked.src_name,
            dst_name: checked.dst_name,
            resume_name: checked.resume_name,
            created: Created::default(),
            cli: CliFigures {
                guest: g.clone(),
                source_domid: guest_id,
                mode: opts.mode.as_str().into(),
                requested_mode,
                mode_fallback: checked.agent_fallback.clone(),
                policy: opts.policy.as_str().into(),
                poll_interval_ms: duration_ms(t.poll),
                ..CliFigures::default()
            },
            last_round: None,
            src_result: None,
            shutdown_opened: false,
            agent_opened: Vec::new(),
            bitmap: bitmap::Service::new(opts.bitmap_route, guest_id),
            remote: None,
            saver: None,
            checked_key: checked.key_hex,
            ts,
            o: opts,
            t,
            out,
        };
        if let Some(why) = &checked.agent_fallback {
            run.say(why);
        }
        run
    }
}

/// The mode a run takes: the one asked for, or baseline when the guest's
/// agent cannot serve it (`fallback`: the reason); returns the options to
/// run with and the mode asked for when it fell back.
fn fall_back(opts: &MigrateOptions, fallback: Option<&String>) -> (MigrateOptions, Option<String>) {
    match fallback {
        Some(_) => (
            MigrateOptions {
                mode: Mode::Baseline,
                ..opts.clone()
            },
            Some(opts.mode.as_str().to_string()),
        ),
        None => (opts.clone(), None),
    }
}

#[cfg(test)]
#[path = "../migrate_tests.rs"]
mod tests;
