//! Two hosts, the source's side: `depmig migrate GUEST HOST` with the
//! destination reached over the control protocol, and `depmig recover`,
//! which settles a handoff whose answer never came.
//!
//! The source host keeps everything of a local migration that concerns
//! its guest (checks, the source appliance, the watch, the roll-back with
//! its resume appliance); what concerns the shell and the destination
//! appliance is asked of `depmig receive` on HOST. The handoff's rules
//! (tools/depmig/README.md, "Two hosts: the handoff"):
//!
//! - the source says `source-stopped` only with a [`SourceStopped`] proof
//!   ([`StoppedNotice::from_proof`]), and from then on never resumes its
//!   guest unless the destination answers `absent` (it destroyed the
//!   shell);
//! - it destroys its guest only after the destination answered `running`;
//! - without an answer it keeps the guest suspended and ends
//!   [`Outcome::Indeterminate`], naming `depmig recover GUEST HOST`.

use std::fmt;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use depmig_control::keys;
use depmig_control::{Fault, Peer, Role};

use super::arm::ArmError;
use super::domains::{domain_state, domid_of, xl_ok};
use super::receive::bare_run;

use super::rollback::Abort;
use super::watch::Watch;
use super::{fall_back, preflight, Outcome, Run, Timings};
use crate::cli::{parse_args, Command, MigrateOptions};
use crate::toolstack::Toolstack;
use crate::twohost::channel::{Channel, ChannelError};
use crate::twohost::protocol::{
    Liveness, Prepare, ProtocolError, Reply, Request, StoppedNotice, VERSION,
};

/// How long the destination may take to answer `hello`, `status`,
/// `abort` or `done`. Generous: in the rig, with both hosts' machines on
/// two shared cores and the destination appliance receiving, host b's
/// dom0 once took more than 30 s to answer a `status`.
pub const REPLY_WAIT: Duration = Duration::from_secs(120);

/// How long the destination may take to create the shell and its
/// appliance (two `xl create`s, slow in an emulated dom0).
pub const PREPARE_WAIT: Duration = Duration::from_secs(300);

/// How long the destination may take to answer `source-stopped`: a state
/// read, perhaps a pause of its appliance (or 10 s for it to stop), the
/// unpause.
pub const HANDOFF_WAIT: Duration = Duration::from_secs(60);

/// The source's waits for the destination's answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteTimings {
    /// For `hello`, `status`, `abort`, `done`, `query`.
    pub reply: Duration,
    /// For `prepare`.
    pub prepare: Duration,
    /// For `source-stopped`.
    pub handoff: Duration,
}

impl Default for RemoteTimings {
    fn default() -> RemoteTimings {
        RemoteTimings {
            reply: REPLY_WAIT,
            prepare: PREPARE_WAIT,
            handoff: HANDOFF_WAIT,
        }
    }
}

/// The destination host's wall clock against ours, from `status`
/// exchanges: a reply stamped `b` that arrived `rtt` ms after its request
/// left at `a0` (our clock) says the offset is `b - (a0 + rtt / 2)` within
/// `rtt / 2`. The exchange with the shortest round trip is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct ClockOffset {
    /// The destination's clock minus ours, ms.
    pub(super) offset_ms: i64,
    /// How far off `offset_ms` may be, ms (half the round trip).
    pub(super) uncertainty_ms: u64,
}

impl ClockOffset {
    /// The estimate of one exchange: sent at `sent` and answered at
    /// `received` (our clock), stamped `theirs` (theirs); `None` if our
    /// clock went back meanwhile.
    pub(super) fn of_exchange(sent: u64, received: u64, theirs: u64) -> Option<ClockOffset> {
        let rtt = received.checked_sub(sent)?;
        let mid = i128::from(sent) + i128::from(rtt / 2);
        let offset_ms = i64::try_from(i128::from(theirs) - mid).ok()?;
        Some(ClockOffset {
            offset_ms,
            uncertainty_ms: rtt.div_ceil(2),
        })
    }

    /// A time of the destination's clock on ours.
    pub(super) fn to_ours(self, theirs: u64) -> Option<u64> {
        u64::try_from(i128::from(theirs) - i128::from(self.offset_ms)).ok()
    }
}

/// The destination as the source's run sees it.
pub(super) struct RemoteDest<'a> {
    chan: &'a mut Channel,
    /// HOST, as the operator named it.
    host: String,
    /// The appliance's domain as the last `status` showed it.
    pub(super) liveness: Liveness,
    rt: RemoteTimings,
    /// The best estimate of HOST's clock so far.
    pub(super) clock: Option<ClockOffset>,
}

impl RemoteDest<'_> {
    /// The destination appliance's state (`None`: none written yet);
    /// `now` reads our wall clock (Unix ms) around the exchange.
    pub(super) fn poll(
        &mut self,
        mut now: impl FnMut() -> u64,
    ) -> Result<Option<String>, ChannelError> {
        let sent = now();
        let reply = self.chan.ask(&Request::Status {}, self.rt.reply)?;
        let received = now();
        match reply {
            Reply::Status {
                state,
                appliance,
                clock_unix_ms,
            } => {
                self.liveness = appliance;
                let sample =
                    clock_unix_ms.and_then(|b| ClockOffset::of_exchange(sent, received, b));
                if let Some(c) = sample {
                    if self
                        .clock
                        .is_none_or(|best| c.uncertainty_ms < best.uncertainty_ms)
                    {
                        self.clock = Some(c);
                    }
                }
                Ok(state)
            }
            other => Err(unexpected("status", &other)),
        }
    }
}

fn unexpected(expected: &'static str, got: &Reply) -> ChannelError {
    ChannelError::Protocol(ProtocolError::Unexpected {
        expected,
        got: got.kind(),
    })
}

/// Why the destination host would not take the guest.
#[derive(Debug)]
enum HostError {
    /// `<host>` refused: `<reason>`
    Refused {
        /// HOST.
        host: String,
        /// Its words.
        reason: String,
    },
    /// `<host>`: `<error>` (the conversation's)
    Channel {
        /// HOST.
        host: String,
        /// What went wrong.
        error: ChannelError,
    },
}

impl fmt::Display for HostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostError::Refused { host, reason } => write!(f, "{host} refused: {reason}"),
            HostError::Channel { host, error } => write!(f, "{host}: {error}"),
        }
    }
}

/// The first exchange: both ends speak [`VERSION`].
fn hello(chan: &mut Channel, host: &str, wait: Duration) -> Result<(), HostError> {
    let ch = |error| HostError::Channel {
        host: host.to_string(),
        error,
    };
    match chan.ask(&Request::Hello { version: VERSION }, wait) {
        Ok(Reply::Hello { version }) if version == VERSION => Ok(()),
        Ok(Reply::Hello { version }) => Err(ch(ChannelError::Protocol(ProtocolError::Version {
            theirs: version,
        }))),
        Ok(Reply::Refused { reason }) => Err(HostError::Refused {
            host: host.to_string(),
            reason,
        }),
        Ok(other) => Err(ch(unexpected("hello", &other))),
        Err(e) => Err(ch(e)),
    }
}

/// Migrates `opts.guest` to HOST, whose `depmig receive` answers on
/// `chan`; progress goes to `out`.
pub fn migrate_to_host<T: Toolstack + ?Sized>(
    ts: &mut T,
    opts: &MigrateOptions,
    host: &str,
    chan: &mut Channel,
    t: &Timings,
    rt: &RemoteTimings,
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
    // The config travels as text; the destination checks it again.
    let config = match ts.read_file(&opts.config).map(String::from_utf8) {
        Ok(Ok(text)) => text,
        _ => {
            return Outcome::Refused {
                reason: format!("guest config {}: not UTF-8 text", opts.config.display()),
            }
        }
    };
    let (opts, requested_mode) = fall_back(opts, checked.agent_fallback.as_ref());
    let opts = &opts;
    let mut run = Run::new(ts, opts, checked, requested_mode, t, out);
    run.say(&format!(
        "migrating `{}` (domain {}) to {host}",
        opts.guest, run.guest_id
    ));
    if let Err(e) = hello(chan, host, rt.reply) {
        return Outcome::Refused {
            reason: e.to_string(),
        };
    }
    let prepare = Prepare {
        guest: opts.guest.clone(),
        config,
        // --fault wrong-key: host b's appliance gets another key, as on
        // one host.
        key: if opts.fault == Some(Fault::WrongKey) {
            super::arm::wrong_key(&run.checked_key)
        } else {
            run.checked_key.clone()
        },
        ip: opts.destination_ip.to_string(),
        prefix: opts.prefix,
        port: opts.port,
        mode: opts.mode.as_str().into(),
        policy: opts.policy.as_str().into(),
        verify: opts.verify,
        compress: opts.compress.as_str().into(),
        encrypt: opts.encrypt().as_str().into(),
        delta_cache_mib: opts.delta_cache.0,
        appliance_memory_mib: opts.appliance_memory_mib,
        link_rate: opts.link_rate.clone(),
        fault: opts
            .fault
            .filter(|f| f.injected_by() == Some(Role::Destination))
            .map(|f| f.as_str().to_string()),
    };
    let peer = match chan.ask(&Request::Prepare(Box::new(prepare)), rt.prepare) {
        Ok(Reply::Ready {
            ip,
            port,
            shell_domid,
        }) => {
            run.say(&format!(
                "{host}: shell {shell_domid} created, its appliance listens at {ip}:{port}"
            ));
            match ip.parse::<std::net::Ipv4Addr>() {
                Ok(a) => Peer { ip: a.octets(), port },
                // PANICS: never; the reply check parsed it already.
                Err(_) => Peer { ip: [0; 4], port },
            }
        }
        Ok(Reply::Refused { reason }) => {
            return Outcome::Refused {
                reason: HostError::Refused {
                    host: host.to_string(),
                    reason,
                }
                .to_string(),
            }
        }
        Ok(other) => {
            return Outcome::Refused {
                reason: HostError::Channel {
                    host: host.to_string(),
                    error: unexpected("ready", &other),
                }
                .to_string(),
            }
        }
        Err(error) => {
            return Outcome::Refused {
                reason: format!(
                    "{}; nothing was created here, and {host} destroys what it made when the conversation ends",
                    HostError::Channel {
                        host: host.to_string(),
                        error
                    }
                ),
            }
        }
    };
    run.remote = Some(RemoteDest {
        chan,
        host: host.to_string(),
        liveness: Liveness::Alive,
        rt: rt.clone(),
        clock: None,
    });
    let outcome = run.migrate_remote(peer);
    run.ts.logdirty_release();
    outcome
}

impl<T: Toolstack + ?Sized> Run<'_, T> {
    fn host(&self) -> String {
        match (&self.remote, &self.saver) {
            (Some(r), _) => r.host.clone(),
            (None, Some(_)) => "dom0 (save)".into(),
            (None, None) => String::new(),
        }
    }

    /// The source appliance armed with HOST's appliance as its peer, the
    /// watch, then the handoff or the roll-back.
    fn migrate_remote(&mut self, peer: Peer) -> Outcome {
        let src = match self.start_source(peer) {
            Ok(src) => src,
            Err(e) => return self.roll_back_remote(Abort::Arm(e)),
        };
        match self.watch(src, u32::MAX) {
            Watch::Success => self.commit_remote(src),
            Watch::Failure(reason) => self.roll_back_remote(Abort::Watch(reason)),
        }
    }

    /// Creates, arms and starts the source appliance.
    pub(super) fn start_source(&mut self, peer: Peer) -> Result<u32, ArmError> {
        let name = self.src_name.clone();
        let vif = self.vif(self.o.source_ip);
        let cfg = self.write_config(&name, Some(&vif))?;
        self.say(&format!("creating the source appliance {name}"));
        let src = self.create_domain(&cfg, &[], &name)?;
        self.created.src = Some(src);
        self.arm_source(src, &self.checked_key.clone(), peer)?;
        self.open_guest_nodes(src)?;
        xl_ok(self.ts, &["unpause", &src.to_string()], || {
            format!("xl unpause {name}")
        })?;
        self.write_keys(src, &[(keys::GO, keys::GO_VALUE.into())])?;
        self.cli.go_unix_ms = Some(self.ts.unix_ms());
        let o = self.o;
        self.say(&format!(
            "armed: source appliance {src} -> {}:{} on {}, mode {}, policy {}",
            std::net::Ipv4Addr::from(peer.ip),
            peer.port,
            self.host(),
            o.mode.as_str(),
            o.policy.as_str()
        ));
        Ok(src)
    }

    /// Before the source said it stopped: HOST destroys its shell and
    /// appliance (told so, or by itself when the conversation ends), and
    /// the guest runs here again.
    fn roll_back_remote(&mut self, reason: Abort) -> Outcome {
        let mut note = None;
        if let Some(r) = self.remote.as_mut() {
            let abort = Request::Abort {
                reason: truncate(&reason.to_string()),
            };
            note = match r.chan.ask(&abort, r.rt.reply) {
                Ok(Reply::Absent { .. }) => None,
                Ok(Reply::Unsettled { reason }) => {
                    Some(format!("{}: {reason} (its shell never ran)", r.host))
                }
                Ok(other) => Some(format!(
                    "{}: answered {} to abort; it destroys its shell when the conversation ends",
                    r.host,
                    other.kind()
                )),
                Err(e) => Some(format!(
                    "{}: {e}; it destroys its shell when the conversation ends",
                    r.host
                )),
            };
        }
        let mut outcome = self.roll_back(reason);
        if let (Some(n), Outcome::RolledBack { warnings, .. }) = (note, &mut outcome) {
            warnings.push(n);
        }
        outcome
    }

    /// The handoff across hosts: the proof that the source cannot run, the
    /// word to HOST, and what its answer allows.
    fn commit_remote(&mut self, src: u32) -> Outcome {
        let g = self.guest_id;
        let host = self.host();
        let (proof, destroyed_first) = match self.source_stop_proof() {
            Ok(p) => p,
            Err(e) => return self.roll_back_remote(Abort::Destination(e)),
        };
        self.say(&format!(
            "source committed and {host}'s appliance applied: the source guest (domain {g}) is {}; telling {host}",
            if destroyed_first { "destroyed" } else { "suspended" }
        ));
        let notice = StoppedNotice::from_proof(&proof);
        // From this line on the source never resumes its guest unless
        // HOST answers that it destroyed the shell.
        let answer = match self.remote.as_mut() {
            Some(r) => r.chan.ask(&Request::SourceStopped(notice), r.rt.handoff),
            None => Err(ChannelError::Closed),
        };
        match answer {
            Ok(Reply::Running {
                domid,
                unpaused_unix_ms,
            }) => self.finish_remote(src, domid, unpaused_unix_ms, destroyed_first),
            Ok(Reply::Absent { reason }) if !destroyed_first => {
                self.say(&format!("{host} destroyed its shell: {reason}"));
                self.roll_back(Abort::Destination(format!("{host}: {reason}")))
            }
            Ok(Reply::Absent { reason }) => Outcome::NeedsOperator {
                reason: format!(
                    "{host}: {reason}; the source guest (domain {g}) had been destroyed before the handoff: the guest is lost"
                ),
            },
            Ok(Reply::Unsettled { reason }) => self.indeterminate(src, &format!("{host}: {reason}")),
            Ok(other) => self.indeterminate(
                src,
                &HostError::Channel {
                    host: host.clone(),
                    error: unexpected("running or absent", &other),
                }
                .to_string(),
            ),
            Err(error) => self.indeterminate(
                src,
                &HostError::Channel {
                    host: host.clone(),
                    error,
                }
                .to_string(),
            ),
        }
    }

    /// HOST runs the guest: the source side goes, HOST is told.
    fn finish_remote(
        &mut self,
        src: u32,
        domid: u32,
        unpaused_there: Option<u64>,
        destroyed_first: bool,
    ) -> Outcome {
        let g = self.guest_id;
        let host = self.host();
        // The unpause on our clock: HOST's time of it, moved by the clock
        // offset, when both are known; else when the answer arrived (later
        // than the unpause by up to a round trip).
        let answered = self.ts.unix_ms();
        let clock = self.remote.as_ref().and_then(|r| r.clock);
        self.cli.destination_unpaused_unix_ms = unpaused_there;
        self.cli.destination_clock_offset_ms = clock.map(|c| c.offset_ms);
        self.cli.destination_clock_uncertainty_ms = clock.map(|c| c.uncertainty_ms);
        let moved = clock.zip(unpaused_there).and_then(|(c, t)| c.to_ours(t));
        self.cli.shell_unpaused_unix_ms = Some(moved.map_or(answered, |t| t.min(answered)));
        if let Some(c) = clock {
            self.say(&format!(
                "{host}'s clock is {} ms {} ours (within {} ms)",
                c.offset_ms.unsigned_abs(),
                if c.offset_ms < 0 {
                    "behind"
                } else {
                    "ahead of"
                },
                c.uncertainty_ms
            ));
        }
        self.say(&format!("the guest runs on {host} as domain {domid}"));
        let mut warnings = Vec::new();
        self.end_bitmap_route(src, false);
        let report = self.committed_source_report(src);
        if !destroyed_first {
            self.say(&format!("destroying the source guest (domain {g})"));
        }
        for (id, e) in self.destroy_all(&[src, g]) {
            warnings.push(if id == g {
                format!(
                    "the source guest (domain {g}) is not gone ({e}): destroy it, never resume it: the guest runs on {host}"
                )
            } else {
                format!("source appliance (domain {id}): {e}")
            });
        }
        self.cli.source_destroyed_unix_ms = Some(self.ts.unix_ms());
        if let Some(r) = self.remote.as_mut() {
            match r.chan.ask(&Request::Done {}, r.rt.reply) {
                Ok(Reply::Bye {}) => {}
                Ok(other) => warnings.push(format!("{host} answered {} to done", other.kind())),
                Err(e) => warnings.push(format!("{host}: {e} (after the handoff)")),
            }
        }
        warnings.extend(self.write_outputs(report, true));
        Outcome::Migrated { warnings }
    }

    /// No answer to `source-stopped`: the guest stays suspended here,
    /// neither resumed nor destroyed; the source appliance, committed, goes.
    fn indeterminate(&mut self, src: u32, why: &str) -> Outcome {
        let g = self.guest_id;
        let host = self.host();
        self.end_bitmap_route(src, false);
        self.await_source_result(src, self.t.poll_fast);
        if let Err(e) = self.destroy_and_wait(src) {
            self.say(&format!("warning: source appliance (domain {src}): {e}"));
        }
        Outcome::Indeterminate {
            reason: format!(
                "{why}. The source said it stopped and heard no answer: whether the guest runs on {host} is unknown. \
                 The guest stays suspended here (domain {g}), neither resumed nor destroyed. \
                 Run `depmig recover {} {host}`: it asks {host}, then destroys this copy (the guest runs there) \
                 or resumes it (no copy runs there and its shell is gone)",
                self.o.guest
            ),
        }
    }
}

/// A reason short enough for one protocol line's free text.
fn truncate(s: &str) -> String {
    let max = crate::twohost::protocol::MAX_TEXT;
    let mut t: String = s.chars().filter(|c| !c.is_control()).collect();
    if t.len() > max {
        let mut cut = max;
        while !t.is_char_boundary(cut) {
            cut -= 1;
        }
        t.truncate(cut);
    }
    t
}

/// What `depmig recover` needs of this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoverOptions {
    /// The guest left suspended.
    pub guest: String,
    /// The destination host, as the migration named it.
    pub host: String,
    /// The appliance image (for a resume appliance).
    pub appliance: PathBuf,
    /// Where the resume appliance's config goes.
    pub work_dir: PathBuf,
}

/// Settles a two-host handoff left indeterminate: asks HOST whether the
/// guest runs there; destroys the suspended source if so, resumes it if
/// HOST has no running copy and no shell left.
pub fn recover<T: Toolstack + ?Sized>(
    ts: &mut T,
    ro: &RecoverOptions,
    chan: &mut Channel,
    t: &Timings,
    rt: &RemoteTimings,
    out: &mut dyn Write,
) -> Outcome {
    let (g, host) = (&ro.guest, &ro.host);
    let refused = |reason: String| Outcome::Refused { reason };
    let id = match domid_of(ts, g) {
        Ok(Some(id)) => id,
        Ok(None) => return refused(format!("no domain named `{g}` here: nothing to recover")),
        Err(e) => return refused(e.to_string()),
    };
    match domain_state(ts, &id.to_string()) {
        Ok(Some(s)) if s.suspended() => {}
        Ok(Some(s)) => {
            return refused(format!(
                "`{g}` (domain {id}) is not suspended ({s:?}): nothing to recover"
            ))
        }
        Ok(None) => return refused(format!("domain {id} (`{g}`) vanished")),
        Err(e) => return refused(e.to_string()),
    }
    let _ = writeln!(out, "depmig: asking {host} whether `{g}` runs there");
    if let Err(e) = hello(chan, host, rt.reply) {
        return Outcome::Indeterminate {
            reason: format!("{e}; `{g}` stays suspended here (domain {id}): run `depmig recover {g} {host}` again"),
        };
    }
    let answer = chan.ask(&Request::Query { guest: g.clone() }, rt.handoff);
    match answer {
        Ok(Reply::Running { domid, .. }) => {
            let _ = writeln!(
                out,
                "depmig: `{g}` runs on {host} as domain {domid}: destroying the suspended source (domain {id})"
            );
            match super::destroy_source(ts, id, t.gone) {
                Ok(_) => Outcome::Migrated { warnings: Vec::new() },
                Err(e) => Outcome::NeedsOperator {
                    reason: format!("{e}; the guest runs on {host}: destroy domain {id} here, never resume it"),
                },
            }
        }
        Ok(Reply::Absent { reason }) => {
            let opts = match parse_args(&[
                "migrate",
                g,
                "--config",
                "/dev/null",
                "--appliance",
                &ro.appliance.display().to_string(),
                "--work-dir",
                &ro.work_dir.display().to_string(),
            ]) {
                Ok(Command::Migrate(o)) => *o,
                Ok(_) | Err(_) => return refused(format!("`{g}`: not a domain name")),
            };
            let mut run = bare_run(ts, &opts, t, out, id);
            run.say(&format!("{host}: {reason}; resuming the source"));
            match run.ensure_guest_runs() {
                Ok(()) => Outcome::RolledBack {
                    reason: format!("{host}: {reason}"),
                    warnings: Vec::new(),
                },
                Err(e) => Outcome::NeedsOperator {
                    reason: e.to_string(),
                },
            }
        }
        Ok(Reply::Unsettled { reason }) => Outcome::NeedsOperator {
            reason: format!("{host}: {reason}; `{g}` stays suspended here (domain {id})"),
        },
        Ok(Reply::Refused { reason }) => Outcome::Indeterminate {
            reason: format!("{host} refused: {reason}; `{g}` stays suspended here (domain {id})"),
        },
        Ok(other) => Outcome::Indeterminate {
            reason: format!(
                "{host}: {}; `{g}` stays suspended here (domain {id}): run `depmig recover {g} {host}` again",
                unexpected("running or absent", &other)
            ),
        },
        Err(e) => Outcome::Indeterminate {
            reason: format!("{host}: {e}; `{g}` stays suspended here (domain {id}): run `depmig recover {g} {host}` again"),
        },
    }
}

#[cfg(test)]
mod clock_tests {
    use super::ClockOffset;

    #[test]
    fn an_exchange_bounds_the_offset_by_half_its_round_trip() {
        // Sent at 1000, answered at 1040 (ours), stamped 5020 (theirs): the
        // stamp was taken between 1000 and 1040 ours, so the offset lies in
        // [3980, 4020]; the midpoint 4000, within 20.
        let c = ClockOffset::of_exchange(1000, 1040, 5020).unwrap();
        assert_eq!((c.offset_ms, c.uncertainty_ms), (4000, 20));
        assert_eq!(c.to_ours(9000), Some(5000));
        // Behind us.
        let c = ClockOffset::of_exchange(10_000, 10_001, 2_000).unwrap();
        assert_eq!((c.offset_ms, c.uncertainty_ms), (-8000, 1));
        assert_eq!(c.to_ours(2_500), Some(10_500));
        // Our clock going back gives no estimate; nor does a time that
        // would fall before 1970 on ours.
        assert_eq!(ClockOffset::of_exchange(1000, 999, 5000), None);
        assert_eq!(
            ClockOffset::of_exchange(0, 0, 5000).unwrap().to_ours(10),
            None
        );
        // Hostile stamps give no estimate rather than overflow.
        assert_eq!(ClockOffset::of_exchange(0, u64::MAX, u64::MAX), None);
        assert_eq!(ClockOffset::of_exchange(u64::MAX, u64::MAX, 0), None);
        let far = ClockOffset::of_exchange(0, 2, u64::MAX / 2).unwrap();
        assert_eq!(far.to_ours(u64::MAX), Some(u64::MAX - u64::MAX / 2 + 1));
    }
}
