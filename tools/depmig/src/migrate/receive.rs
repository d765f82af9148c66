//! `depmig receive`: the destination host's side of a two-host migration,
//! serving the control protocol ([`crate::twohost::protocol`]) on one
//! channel with this host's toolstack. It creates the paused shell and the
//! destination appliance, arms the appliance with the key the source sent,
//! says where it listens, answers the source's polls, and runs the guest
//! only on the source's word that its copy cannot run.
//!
//! What it does when it hears nothing (the peer closed, went silent, or
//! sent a line it refuses): before the source's `source-stopped`, it
//! destroys the appliance and the shell, and never unpauses; after the
//! guest runs here, it leaves it running.

use std::fmt;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use depmig_control::{keys, Mode};

use super::domains::{domain_state, domid_of, xl_ok, NotGone};
use super::handoff::unpause_received_shell;
use super::preflight::{self, Refusal};
use super::{duration_ms, Run, Timings};
use crate::cli::{parse_args, Command, MigrateOptions};
use crate::report::CliFigures;
use crate::toolstack::{DomState, Toolstack};
use crate::twohost::channel::{Channel, ChannelError};
use crate::twohost::protocol::{
    Liveness, Prepare, ProtocolError, Reply, Request, StoppedNotice, VERSION,
};
use crate::{bitmap, xlcfg};

/// How long the destination waits for the source's next word before it
/// gives the migration up. The source polls every second while it watches
/// (and every 50 ms around the switchover); only a dead or cut-off source
/// is this quiet (longer than the source's own wait for an answer,
/// `REPLY_WAIT`, so that a slow answer never ends the conversation here
/// first).
pub const SILENCE_LIMIT: Duration = Duration::from_secs(300);

/// How long one wait for a request lasts before the destination looks at
/// its own appliance (and its silence limit) again. It is also the longest
/// a request waits unread, `source-stopped` included: short, since the
/// guest is down then.
pub const LISTEN: Duration = Duration::from_millis(20);

/// Waiting periods of `depmig receive`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiveTimings {
    /// One wait on the channel for a request (real time).
    pub listen: Duration,
    /// A sleep through the toolstack between two such waits (none by
    /// default: the wait on the channel is the pause).
    pub idle: Duration,
    /// How long the source may say nothing (the toolstack's clock).
    pub silence: Duration,
}

impl Default for ReceiveTimings {
    fn default() -> ReceiveTimings {
        ReceiveTimings {
            listen: LISTEN,
            idle: Duration::ZERO,
            silence: SILENCE_LIMIT,
        }
    }
}

/// This host's own settings of `depmig receive`: paths and the bridge are
/// never the peer's to choose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiveOptions {
    /// The appliance image.
    pub appliance: PathBuf,
    /// The bridge the appliance's vif joins.
    pub bridge: String,
    /// Where the guest's and the appliance's configs are written.
    pub work_dir: PathBuf,
}

/// How a `depmig receive` conversation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReceiveOutcome {
    /// The guest runs here (the source is gone or going).
    Migrated {
        /// Its domain id here.
        domid: u32,
        /// Steps after the handoff that failed.
        warnings: Vec<String>,
    },
    /// Nothing runs here: the migration was refused, given up or never
    /// started, and whatever was created is gone.
    NotMigrated {
        /// Why.
        reason: String,
    },
    /// A `depmig recover` query was answered.
    Answered {
        /// What was answered.
        answer: String,
    },
    /// Something could not be cleaned up, or the guest's state here is
    /// unclear: an operator must look.
    NeedsOperator {
        /// What is wrong.
        reason: String,
    },
}

impl ReceiveOutcome {
    /// The process exit status (see `depmig receive --help`).
    pub fn exit_code(&self) -> u8 {
        match self {
            ReceiveOutcome::Migrated { warnings, .. } if warnings.is_empty() => 0,
            ReceiveOutcome::Migrated { .. } => 3,
            ReceiveOutcome::Answered { .. } => 0,
            ReceiveOutcome::NotMigrated { .. } => 1,
            ReceiveOutcome::NeedsOperator { .. } => 4,
        }
    }
}

/// Why the destination refused to prepare.
#[derive(Debug)]
pub(super) enum PrepareError {
    /// The migration's values as options (the parser's message).
    Options(String),
    /// The checks the source makes too (their message).
    Refused(Refusal),
    /// a domain named `<guest>` already exists here (domain `<domid>`)
    GuestHere {
        /// The guest.
        guest: String,
        /// Its domain id here.
        domid: u32,
    },
    /// Creating or arming failed (that step's message).
    Arm(String),
}

impl fmt::Display for PrepareError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PrepareError::Options(e) => write!(f, "the migration's values: {e}"),
            PrepareError::Refused(e) => e.fmt(f),
            PrepareError::GuestHere { guest, domid } => write!(
                f,
                "a domain named `{guest}` already exists here (domain {domid})"
            ),
            PrepareError::Arm(e) => e.fmt(f),
        }
    }
}

/// The options a local migration would take for `p`, read by the same
/// parser (so every value passes the same checks as on a command line),
/// with this host's own paths, image and bridge.
pub(super) fn options_for(
    p: &Prepare,
    own: &ReceiveOptions,
    cfg: &std::path::Path,
) -> Result<MigrateOptions, String> {
    let port = p.port.to_string();
    let prefix = p.prefix.to_string();
    let mem = p.appliance_memory_mib.to_string();
    let delta = p.delta_cache_mib.to_string();
    let cfg = cfg.display().to_string();
    let appliance = own.appliance.display().to_string();
    let work_dir = own.work_dir.display().to_string();
    let mut args: Vec<&str> = vec![
        "migrate",
        &p.guest,
        "--config",
        &cfg,
        "--appliance",
        &appliance,
        "--work-dir",
        &work_dir,
        "--bridge",
        &own.bridge,
        "--mode",
        &p.mode,
        "--policy",
        &p.policy,
        "--compress",
        &p.compress,
        "--encrypt",
        &p.encrypt,
        "--delta-cache",
        &delta,
        "--destination-ip",
        &p.ip,
        "--prefix",
        &prefix,
        "--port",
        &port,
        "--appliance-memory",
        &mem,
    ];
    if p.verify {
        args.push("--verify");
    }
    if let Some(r) = &p.link_rate {
        args.extend(["--link-rate", r]);
    }
    if let Some(f) = &p.fault {
        args.extend(["--fault", f]);
    }
    match parse_args(&args) {
        Ok(Command::Migrate(o)) => Ok(*o),
        Ok(_) => Err("not a migration".into()),
        Err(e) => Err(e.to_string()),
    }
}

/// Where the conversation is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Shell and appliance exist; the shell never ran.
    Armed,
    /// The guest runs here.
    Running(u32),
}

/// The destination's side of one migration, after `prepare`.
pub(super) struct Served {
    pub(super) shell: u32,
    pub(super) dst: u32,
    phase: Phase,
    /// The appliance's last state said, to say only changes.
    said: Option<String>,
}

/// Serves one conversation on `chan` with this host's toolstack; progress
/// goes to `log` (stdout is the channel).
pub fn receive<T: Toolstack + ?Sized>(
    ts: &mut T,
    own: &ReceiveOptions,
    t: &Timings,
    rt: &ReceiveTimings,
    chan: &mut Channel,
    log: &mut dyn Write,
) -> ReceiveOutcome {
    let say = |log: &mut dyn Write, m: &str| {
        let _ = writeln!(log, "depmig receive: {m}");
    };
    // Hello first: another version is refused before anything is made.
    match next_request(ts, rt, chan) {
        Ok(Request::Hello { version }) if version == VERSION => {
            if let Err(e) = chan.send(&Reply::Hello { version: VERSION }) {
                return not_migrated(format!("before anything was created: {e}"));
            }
        }
        Ok(Request::Hello { version }) => {
            let e = ProtocolError::Version { theirs: version };
            let _ = chan.send(&Reply::Refused {
                reason: e.to_string(),
            });
            return not_migrated(e.to_string());
        }
        Ok(other) => {
            let e = ProtocolError::Unexpected {
                expected: "hello",
                got: other.kind(),
            };
            let _ = chan.send(&Reply::Refused {
                reason: e.to_string(),
            });
            return not_migrated(e.to_string());
        }
        Err(e) => return not_migrated(format!("before anything was created: {e}")),
    }
    let prep = match next_request(ts, rt, chan) {
        Ok(Request::Prepare(p)) => p,
        Ok(Request::Query { guest }) => {
            let (reply, outcome) = settle(ts, t, &guest, log);
            let _ = chan.send(&reply);
            return outcome;
        }
        Ok(other) => {
            let e = ProtocolError::Unexpected {
                expected: "prepare or query",
                got: other.kind(),
            };
            let _ = chan.send(&Reply::Refused {
                reason: e.to_string(),
            });
            return not_migrated(e.to_string());
        }
        Err(e) => return not_migrated(format!("before anything was created: {e}")),
    };
    say(log, &format!("preparing to receive `{}`", prep.guest));
    // The toolstack's work directory, made if it is missing (the source's
    // config is written there).
    let cfg_path = ts.work_dir().join(format!("{}--incoming.cfg", prep.guest));
    let opts = match options_for(&prep, own, &cfg_path) {
        Ok(o) => o,
        Err(e) => return refuse(chan, PrepareError::Options(e).to_string()),
    };
    let mut run = bare_run(ts, &opts, t, log, NO_GUEST);
    let served = match run.prepare(&prep, &cfg_path) {
        Ok(s) => s,
        Err(e) => {
            let mut reason = e.to_string();
            if let Err(left) = run.take_down() {
                reason = format!("{reason}; then: {left}");
                let _ = chan.send(&Reply::Refused {
                    reason: reason.clone(),
                });
                return ReceiveOutcome::NeedsOperator { reason };
            }
            return refuse(chan, reason);
        }
    };
    let ready = Reply::Ready {
        ip: prep.ip.clone(),
        port: prep.port,
        shell_domid: served.shell,
    };
    if let Err(e) = chan.send(&ready) {
        return run.give_up(&format!("the source is gone: {e}"));
    }
    run.serve(served, rt, chan)
}

fn not_migrated(reason: String) -> ReceiveOutcome {
    ReceiveOutcome::NotMigrated { reason }
}

/// Refuses the request (nothing of it is left here) and ends.
fn refuse(chan: &mut Channel, reason: String) -> ReceiveOutcome {
    let _ = chan.send(&Reply::Refused {
        reason: reason.clone(),
    });
    not_migrated(reason)
}

/// The next request, within the silence limit.
fn next_request<T: Toolstack + ?Sized>(
    ts: &mut T,
    rt: &ReceiveTimings,
    chan: &mut Channel,
) -> Result<Request, ChannelError> {
    let start = ts.now_ms();
    loop {
        // The toolstack's pause first (none by default): the host's clock
        // moves on between two requests as it does in a wait.
        ts.sleep(rt.idle);
        if let Some(r) = chan.request(rt.listen)? {
            return Ok(r);
        }
        if ts.now_ms().saturating_sub(start) >= duration_ms(rt.silence) {
            return Err(ChannelError::Silent {
                secs: rt.silence.as_secs(),
            });
        }
    }
}

/// The guest id of a run on a host where the guest is not (the
/// destination): no domain has it.
pub(super) const NO_GUEST: u32 = u32::MAX;

/// A run for one guest outside a migration's checks: the destination's
/// (`guest_id` [`NO_GUEST`]) or `depmig recover`'s (the suspended source).
pub(super) fn bare_run<'a, T: Toolstack + ?Sized>(
    ts: &'a mut T,
    opts: &'a MigrateOptions,
    t: &'a Timings,
    log: &'a mut dyn Write,
    guest_id: u32,
) -> Run<'a, T> {
    let g = &opts.guest;
    Run {
        guest_id,
        guest_paused_before: false,
        guest_pages: None,
        shell_name: format!("{g}--incoming"),
        src_name: format!("{g}--depmig-src"),
        dst_name: format!("{g}--depmig-dst"),
        resume_name: format!("{g}--depmig-resume"),
        created: super::Created::default(),
        cli: CliFigures::default(),
        last_round: None,
        src_result: None,
        shutdown_opened: false,
        agent_opened: Vec::new(),
        bitmap: bitmap::Service::new(opts.bitmap_route, guest_id),
        remote: None,
        saver: None,
        checked_key: String::new(),
        ts,
        o: opts,
        t,
        out: log,
    }
}

/// How the destination appliance's domain is, as listed.
fn liveness(state: Option<DomState>) -> Liveness {
    match state {
        None => Liveness::Vanished,
        Some(s) if s.alive() => Liveness::Alive,
        Some(s) if s.shutdown == Some('c') => Liveness::Crashed,
        Some(_) => Liveness::Stopped,
    }
}

impl<T: Toolstack + ?Sized> Run<'_, T> {
    /// The checks the source made too (the config: PVH, its name), the
    /// names this host would give, then the shell and the appliance
    /// created, armed and started.
    pub(super) fn prepare(
        &mut self,
        p: &Prepare,
        cfg_path: &std::path::Path,
    ) -> Result<Served, PrepareError> {
        preflight::check_guest_config(p.config.as_bytes(), cfg_path, &p.guest)
            .map_err(PrepareError::Refused)?;
        if !self.ts.file_exists(&self.o.appliance) {
            return Err(PrepareError::Refused(Refusal::NoImage {
                path: self.o.appliance.clone(),
            }));
        }
        let xl = |e: super::XlError| PrepareError::Refused(Refusal::Xl(e));
        if let Some(domid) = domid_of(self.ts, &p.guest).map_err(xl)? {
            return Err(PrepareError::GuestHere {
                guest: p.guest.clone(),
                domid,
            });
        }
        for name in [self.shell_name.clone(), self.dst_name.clone()] {
            if let Some(domid) = domid_of(self.ts, &name).map_err(xl)? {
                return Err(PrepareError::Refused(Refusal::NameTaken { name, domid }));
            }
        }
        let arm = |e: &dyn fmt::Display| PrepareError::Arm(e.to_string());
        self.ts
            .write_file(cfg_path, p.config.as_bytes())
            .map_err(|e| arm(&e))?;
        self.say(&format!("creating the shell {}", self.shell_name));
        let shell_name = self.shell_name.clone();
        let shell = self
            .create_domain(cfg_path, &[xlcfg::name_override(&shell_name)], &shell_name)
            .map_err(|e| arm(&e))?;
        self.created.shell = Some(shell);
        let dst_name = self.dst_name.clone();
        let vif = self.vif(self.o.destination_ip);
        let dst_cfg = self
            .write_config(&dst_name, Some(&vif))
            .map_err(|e| arm(&e))?;
        self.say(&format!("creating the destination appliance {dst_name}"));
        let dst = self
            .create_domain(&dst_cfg, &[], &dst_name)
            .map_err(|e| arm(&e))?;
        self.created.dst = Some(dst);
        self.arm_destination(dst, shell, &p.key)
            .map_err(|e| arm(&e))?;
        xl_ok(self.ts, &["unpause", &dst.to_string()], || {
            format!("xl unpause {dst_name}")
        })
        .map_err(|e| arm(&e))?;
        self.write_keys(dst, &[(keys::GO, keys::GO_VALUE.into())])
            .map_err(|e| arm(&e))?;
        self.say(&format!(
            "armed: destination appliance {dst} listens at {}:{}, shell {shell}",
            p.ip, p.port
        ));
        Ok(Served {
            shell,
            dst,
            phase: Phase::Armed,
            said: None,
        })
    }

    /// Destroys the appliance and then the shell it maps, whatever exists
    /// of them; the error names what stays.
    pub(super) fn take_down(&mut self) -> Result<(), String> {
        let dst = self.created.dst.take();
        let shell = self.created.shell.take();
        let doomed: Vec<u32> = dst.into_iter().chain(shell).collect();
        let failed = self.destroy_all(&doomed);
        if failed.is_empty() {
            return Ok(());
        }
        Err(failed
            .iter()
            .map(|(id, e)| {
                let what = if Some(*id) == shell {
                    "the shell"
                } else {
                    "the destination appliance"
                };
                format!("{what} (domain {id}) could not be destroyed: {e}; it was never unpaused")
            })
            .collect::<Vec<_>>()
            .join("; "))
    }

    /// The migration is given up before the guest ran here: everything
    /// goes, nothing is unpaused.
    pub(super) fn give_up(&mut self, why: &str) -> ReceiveOutcome {
        self.say(&format!("{why}: destroying the appliance and the shell"));
        match self.take_down() {
            Ok(()) => not_migrated(why.to_string()),
            Err(left) => ReceiveOutcome::NeedsOperator {
                reason: format!("{why}; then: {left}"),
            },
        }
    }

    /// The appliance's state key and its domain's liveness; says changes.
    fn status(&mut self, s: &mut Served) -> Reply {
        let state = self
            .read_key(s.dst, keys::STATE)
            .ok()
            .flatten()
            // A word of the contract's, as the reply check wants it; an
            // appliance's junk is not passed on.
            .filter(|v| v.len() <= 64 && v.bytes().all(|c| c.is_ascii_graphic()));
        let alive = domain_state(self.ts, &s.dst.to_string());
        if state != s.said {
            if let Some(st) = &state {
                self.say(&format!("destination: {st}"));
            }
            s.said = state.clone();
        }
        Reply::Status {
            state,
            appliance: match alive {
                Ok(l) => liveness(l),
                // Unreadable: reported alive, the source's watch keeps
                // its own time limits.
                Err(_) => Liveness::Alive,
            },
            clock_unix_ms: Some(self.ts.unix_ms()),
        }
    }

    /// Requests until the conversation ends.
    fn serve(&mut self, mut s: Served, rt: &ReceiveTimings, chan: &mut Channel) -> ReceiveOutcome {
        let mut warnings = Vec::new();
        loop {
            let req = match next_request(self.ts, rt, chan) {
                Ok(r) => r,
                Err(e) => return self.hung_up(&s, &e.to_string(), warnings),
            };
            let reply = match (&req, s.phase) {
                (Request::Status {}, _) => self.status(&mut s),
                (Request::SourceStopped(n), Phase::Armed) => self.run_guest(&mut s, n),
                (Request::Abort { reason }, Phase::Armed) => {
                    let why = format!("the source gave up: {reason}");
                    self.say(&format!("{why}: destroying the appliance and the shell"));
                    let (reply, outcome) = match self.take_down() {
                        Ok(()) => (
                            Reply::Absent {
                                reason: why.clone(),
                            },
                            not_migrated(why),
                        ),
                        Err(left) => (
                            Reply::Unsettled {
                                reason: left.clone(),
                            },
                            ReceiveOutcome::NeedsOperator {
                                reason: format!("{why}; then: {left}"),
                            },
                        ),
                    };
                    let _ = chan.send(&reply);
                    return outcome;
                }
                (Request::Done {}, Phase::Running(domid)) => {
                    self.finish(&mut warnings);
                    let _ = chan.send(&Reply::Bye {});
                    return ReceiveOutcome::Migrated { domid, warnings };
                }
                (other, _) => {
                    let e = ProtocolError::Unexpected {
                        expected: match s.phase {
                            Phase::Armed => "status, source-stopped or abort",
                            Phase::Running(_) => "status or done",
                        },
                        got: other.kind(),
                    };
                    let _ = chan.send(&Reply::Refused {
                        reason: e.to_string(),
                    });
                    return self.hung_up(&s, &e.to_string(), warnings);
                }
            };
            let gone = chan.send(&reply).err();
            if let Reply::Absent { reason } = &reply {
                return not_migrated(reason.clone());
            }
            if let Reply::Unsettled { reason } = &reply {
                return ReceiveOutcome::NeedsOperator {
                    reason: reason.clone(),
                };
            }
            if let Some(e) = gone {
                return self.hung_up(&s, &e.to_string(), warnings);
            }
            // The groups the source froze are still frozen in the guest that
            // runs here now: its agent thaws them on request, in its new
            // home (after the answer: the source need not wait for it). The
            // agent forgets the numbers it served in its old home, so no
            // number needs to come from the source.
            if let Reply::Running { domid, .. } = reply {
                if self.o.mode == Mode::DependencyAware {
                    self.thaw_migrated(domid, None, &mut warnings);
                }
            }
        }
    }

    /// The conversation ended without its last word: before the guest ran
    /// here, everything goes; after, the guest stays.
    fn hung_up(&mut self, s: &Served, why: &str, mut warnings: Vec<String>) -> ReceiveOutcome {
        match s.phase {
            Phase::Armed => self.give_up(&format!("no word from the source ({why})")),
            Phase::Running(domid) => {
                warnings.push(format!(
                    "the source did not say it is gone ({why}); the guest runs here"
                ));
                self.finish(&mut warnings);
                ReceiveOutcome::Migrated { domid, warnings }
            }
        }
    }

    /// The source says its guest cannot run: with the appliance done
    /// (`applied`) and unable to write into the shell, the shell runs and
    /// takes the guest's name. If it cannot run, it is destroyed and the
    /// answer says so; if it can neither run nor go, an operator must look.
    fn run_guest(&mut self, s: &mut Served, n: &StoppedNotice) -> Reply {
        self.say(&format!(
            "the source says its guest (domain {} there) is stopped",
            n.source_domid()
        ));
        self.run_shell(s, |ts, shell| unpause_received_shell(ts, shell, n))
    }

    /// The shell runs, by `unpause` (which holds the proof that no other
    /// copy can run), once the appliance applied the guest and can no
    /// longer write into the shell; then it takes the guest's name.
    pub(super) fn run_shell(
        &mut self,
        s: &mut Served,
        unpause: impl FnOnce(&mut T, u32) -> Result<(), super::UnpauseError>,
    ) -> Reply {
        let state = self.read_key(s.dst, keys::STATE).ok().flatten();
        if state.as_deref() != Some(depmig_control::State::Applied.as_str()) {
            return self.not_run(format!(
                "the destination appliance has not applied the guest (state `{}`)",
                state.unwrap_or_default()
            ));
        }
        let listed = domain_state(self.ts, &s.dst.to_string()).ok().flatten();
        if let Err(e) = self.quiesce_destination(s.dst, listed) {
            return self.not_run(e.to_string());
        }
        if let Err(e) = unpause(self.ts, s.shell) {
            return self.not_run(e.to_string());
        }
        let unpaused_unix_ms = self.ts.unix_ms();
        self.say(&format!("the guest runs as domain {}", s.shell));
        let rename = self.ts.xl(&["rename", &s.shell.to_string(), &self.o.guest]);
        if !matches!(rename, Ok(ref out) if out.ok) {
            self.say(&format!(
                "warning: xl rename {} {} failed; the guest runs as {}",
                s.shell, self.o.guest, self.shell_name
            ));
        }
        s.phase = Phase::Running(s.shell);
        // The shell is the guest now: never destroyed by this command.
        self.created.shell = None;
        Reply::Running {
            domid: s.shell,
            unpaused_unix_ms: Some(unpaused_unix_ms),
        }
    }

    /// The shell will not run: it goes, and the answer lets the source
    /// resume (or, if it stays, keep its guest suspended).
    fn not_run(&mut self, why: String) -> Reply {
        self.say(&format!("{why}: destroying the appliance and the shell"));
        match self.take_down() {
            Ok(()) => Reply::Absent { reason: why },
            Err(left) => Reply::Unsettled {
                reason: format!("{why}; then: {left}"),
            },
        }
    }

    /// After the handoff: the appliance, stopped or paused, goes.
    pub(super) fn finish(&mut self, warnings: &mut Vec<String>) {
        if let Some(dst) = self.created.dst.take() {
            if let Err(e) = self.destroy_and_wait(dst) {
                warnings.push(format!("destination appliance (domain {dst}): {e}"));
            }
        }
    }
}

/// `depmig recover`'s question, answered: a live domain of `guest` here
/// (under its name, or the shell's once unpaused) is a running copy; a
/// paused shell never ran, and goes with its appliance.
fn settle<T: Toolstack + ?Sized>(
    ts: &mut T,
    t: &Timings,
    guest: &str,
    log: &mut dyn Write,
) -> (Reply, ReceiveOutcome) {
    let _ = writeln!(log, "depmig receive: asked whether `{guest}` runs here");
    let shell_name = format!("{guest}--incoming");
    let dst_name = format!("{guest}--depmig-dst");
    let look = |ts: &mut T, name: &str| -> Result<Option<DomState>, String> {
        match domid_of(ts, name).map_err(|e| e.to_string())? {
            None => Ok(None),
            Some(id) => domain_state(ts, &id.to_string()).map_err(|e| e.to_string()),
        }
    };
    let unsettled = |reason: String| {
        (
            Reply::Unsettled {
                reason: reason.clone(),
            },
            ReceiveOutcome::NeedsOperator { reason },
        )
    };
    for name in [guest, shell_name.as_str()] {
        match look(ts, name) {
            Ok(Some(s)) if s.alive() && (name == guest || !s.paused) => {
                let answer = format!("`{guest}` runs here as domain {}", s.domid);
                return (
                    Reply::Running {
                        domid: s.domid,
                        unpaused_unix_ms: None,
                    },
                    ReceiveOutcome::Answered { answer },
                );
            }
            Ok(_) => {}
            Err(e) => return unsettled(e),
        }
    }
    // No running copy: what is left of the migration goes, the mapper
    // (the appliance) before the shell it maps.
    let mut doomed = Vec::new();
    for name in [dst_name.as_str(), shell_name.as_str()] {
        match look(ts, name) {
            Ok(Some(s)) => doomed.push(s.domid),
            Ok(None) => {}
            Err(e) => return unsettled(e),
        }
    }
    let mut failed: Vec<(u32, NotGone)> = Vec::new();
    if !doomed.is_empty() {
        let opts = match parse_args(&["migrate", guest, "--config", "/dev/null"]) {
            Ok(Command::Migrate(o)) => *o,
            _ => return unsettled(format!("`{guest}` is not a domain name")),
        };
        let mut run = bare_run(ts, &opts, t, log, NO_GUEST);
        run.say(&format!(
            "no running copy of `{guest}`: destroying what is left of its migration"
        ));
        failed = run.destroy_all(&doomed);
    }
    if failed.is_empty() {
        let answer = format!("`{guest}` does not run here and no shell of it remains");
        (
            Reply::Absent {
                reason: answer.clone(),
            },
            ReceiveOutcome::Answered { answer },
        )
    } else {
        unsettled(
            failed
                .iter()
                .map(|(id, e)| format!("domain {id} could not be destroyed: {e}"))
                .collect::<Vec<_>>()
                .join("; "),
        )
    }
}
