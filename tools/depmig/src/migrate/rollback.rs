//! Roll-back: the shell and the appliances destroyed in mapping order, the
//! source guest made to run again (a resume appliance for a suspended
//! one), its keys given back, the report written.

use std::fmt;

use depmig_control::keys;
use depmig_control::{Mode, Role, Verdict};

use super::arm::ArmError;
use super::domains::{domain_state, xl_ok, XlError};
use super::outputs::ReportReadError;
use super::watch::WatchFailure;
use super::{duration_ms, Outcome, Run};
use crate::toolstack::{DomState, Perm, ToolError, Toolstack};

/// Why a migration was given up: the reason the roll-back says and
/// reports.
#[derive(Debug)]
pub(super) enum Abort {
    /// The shell or an appliance could not be created, configured or
    /// started (that step's message).
    Arm(ArmError),
    /// The watch gave the migration up (its message).
    Watch(WatchFailure),
    /// internal: start left a domain uncreated
    Uncreated,
    /// Two hosts: the handoff could not go on (the destination's or the
    /// source's reason).
    Destination(String),
}

impl fmt::Display for Abort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Abort::Arm(e) => e.fmt(f),
            Abort::Watch(e) => e.fmt(f),
            Abort::Uncreated => f.write_str("internal: start left a domain uncreated"),
            Abort::Destination(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for Abort {}

/// Why the source guest could not be confirmed running after a roll-back.
#[derive(Debug)]
pub(super) enum NotRunning {
    /// Its state could not be read, or `xl unpause` failed (`xl`'s
    /// message).
    Xl(XlError),
    /// the source guest (domain `<guest>`) no longer exists
    Gone {
        /// The source guest.
        guest: u32,
    },
    /// the source guest (domain `<guest>`) is crashed, shut down or dying;
    /// it cannot be resumed by depmig
    Dead {
        /// The source guest.
        guest: u32,
        /// Its state as listed.
        state: DomState,
    },
    /// the source guest (domain `<guest>`) is not running: `<state>`
    Stuck {
        /// The source guest.
        guest: u32,
        /// Its state as listed.
        state: DomState,
    },
    /// The resume appliance could not be set up (that step's message).
    Arm(ArmError),
    /// the source guest (domain `<guest>`) is suspended and could not be
    /// resumed: `<why>`
    NotResumed {
        /// The source guest.
        guest: u32,
        /// Why the resume appliance did not resume it.
        why: ResumeError,
    },
}

impl fmt::Display for NotRunning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NotRunning::Xl(e) => e.fmt(f),
            NotRunning::Gone { guest } => {
                write!(f, "the source guest (domain {guest}) no longer exists")
            }
            NotRunning::Dead { guest, state } => write!(
                f,
                "the source guest (domain {guest}) is {}; it cannot be resumed by depmig",
                match state.shutdown {
                    Some('c') => "crashed",
                    Some(_) => "shut down",
                    None => "dying",
                }
            ),
            NotRunning::Stuck { guest, state } => {
                write!(
                    f,
                    "the source guest (domain {guest}) is not running: {state:?}"
                )
            }
            NotRunning::Arm(e) => e.fmt(f),
            NotRunning::NotResumed { guest, why } => write!(
                f,
                "the source guest (domain {guest}) is suspended and could not be resumed: {why}"
            ),
        }
    }
}

impl std::error::Error for NotRunning {}

impl From<XlError> for NotRunning {
    fn from(e: XlError) -> NotRunning {
        NotRunning::Xl(e)
    }
}

/// Why the resume appliance did not resume the source guest.
#[derive(Debug)]
pub(super) enum ResumeError {
    /// Its keys could not be written or read (the toolstack's message).
    Tool(ToolError),
    /// It could not be unpaused or looked at (`xl`'s message).
    Xl(XlError),
    /// the resume appliance reported `<result>` (not PASS)
    Reported {
        /// Its result line.
        result: String,
    },
    /// the resume appliance stopped without a result
    Stopped,
    /// the resume appliance reported nothing within `<secs>` s
    Silent {
        /// How long it was given.
        secs: u64,
    },
}

impl fmt::Display for ResumeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResumeError::Tool(e) => e.fmt(f),
            ResumeError::Xl(e) => e.fmt(f),
            ResumeError::Reported { result } => {
                write!(f, "the resume appliance reported {result}")
            }
            ResumeError::Stopped => f.write_str("the resume appliance stopped without a result"),
            ResumeError::Silent { secs } => {
                write!(f, "the resume appliance reported nothing within {secs} s")
            }
        }
    }
}

impl std::error::Error for ResumeError {}

impl From<ToolError> for ResumeError {
    fn from(e: ToolError) -> ResumeError {
        ResumeError::Tool(e)
    }
}

impl From<XlError> for ResumeError {
    fn from(e: XlError) -> ResumeError {
        ResumeError::Xl(e)
    }
}

impl<T: Toolstack + ?Sized> Run<'_, T> {
    /// The failure path: the destination appliance and the shell it maps
    /// go first, then the source appliance once it reported; then the guest
    /// must be running.
    pub(super) fn roll_back(&mut self, reason: Abort) -> Outcome {
        let reason = reason.to_string();
        self.say(&format!("migration failed: {reason}"));
        if let Some(src) = self.created.src {
            // A collect still waiting for dom0 is answered now, so the
            // source appliance fails it at once and resumes the guest.
            self.end_bitmap_route(src, true);
        }
        // Problems that leave the guest safe are warnings; the others need
        // an operator.
        let mut warnings: Vec<String> = Vec::new();
        let mut operator: Vec<String> = Vec::new();
        self.destroy_shell_side(&mut warnings, &mut operator);
        let report = self.stop_source_appliance(&mut warnings);
        self.close_guest_control(&mut warnings);
        let g = self.guest_id;
        let runs = match self.ensure_guest_runs() {
            Ok(()) => {
                self.say(&format!("the guest runs at the source (domain {g})"));
                true
            }
            Err(e) => {
                operator.push(e.to_string());
                false
            }
        };
        // The source appliance thaws what it froze when it fails; should it
        // have died first, the groups would stay frozen: ask once more (a
        // thaw with nothing frozen thaws nothing).
        if runs && self.o.mode == Mode::DependencyAware && !self.agent_opened.is_empty() {
            match self.agent_thaw(g, None) {
                Ok(n) => self.say(&format!("the guest's agent thawed {n} group(s)")),
                Err(e) => warnings.push(format!("thawing the guest's frozen groups: {e}")),
            }
        }
        self.restore_agent_keys(&mut warnings);
        self.cli.outcome = "rolled-back".into();
        self.cli.reason = Some(reason.clone());
        self.cli.source_result = self.src_result.clone().unwrap_or_default();
        self.cli.last_round_seen = self.last_round.map(|r| r.round);
        // Every migration this command started leaves its report, a failed
        // one too (with no round when it failed before the first).
        warnings.extend(self.write_outputs(report, false));
        if operator.is_empty() {
            Outcome::RolledBack { reason, warnings }
        } else {
            operator.extend(warnings);
            Outcome::NeedsOperator {
                reason: format!("{reason}; then: {}", operator.join("; ")),
            }
        }
    }

    /// Destroys the destination appliance and the shell. The destination
    /// appliance maps the shell, crashed or not: it goes first, and the
    /// shell can then go too. A shell that stays needs an operator (it was
    /// never unpaused).
    fn destroy_shell_side(&mut self, warnings: &mut Vec<String>, operator: &mut Vec<String>) {
        let dst = self.created.dst.take();
        let shell = self.created.shell.take();
        if let Some(shell) = shell {
            self.say(&format!(
                "destroying the shell (domain {shell}){}",
                dst.map_or_else(String::new, |d| format!(
                    " and, first, the destination appliance (domain {d}) that maps it"
                ))
            ));
        }
        let doomed: Vec<u32> = dst.into_iter().chain(shell).collect();
        for (id, e) in self.destroy_all(&doomed) {
            if Some(id) == shell {
                operator.push(format!(
                    "the shell {} (domain {id}) could not be destroyed: {e}; it was never unpaused",
                    self.shell_name
                ));
            } else {
                warnings.push(format!("destination appliance (domain {id}): {e}"));
            }
        }
    }

    /// Lets the source appliance finish, reads its report, destroys it.
    /// The source resumes the guest itself once it notices the failure
    /// (its peer is gone now): it is given time to finish.
    fn stop_source_appliance(
        &mut self,
        warnings: &mut Vec<String>,
    ) -> Result<Option<String>, ReportReadError> {
        let Some(src) = self.created.src.take() else {
            return Ok(None);
        };
        self.await_source_result(src, self.t.poll);
        let report = self.read_report(src);
        if let Err(e) = self.destroy_and_wait(src) {
            warnings.push(format!("source appliance (domain {src}): {e}"));
        }
        report
    }

    /// No appliance may touch the guest's control node any more, and a
    /// suspend request the guest has not taken yet is withdrawn.
    fn close_guest_control(&mut self, warnings: &mut Vec<String>) {
        if !self.shutdown_opened {
            return;
        }
        let g = self.guest_id;
        let node = format!("/local/domain/{g}/control/shutdown");
        if let Ok(Some(v)) = self.ts.xs_read(&node) {
            if v.trim() == "suspend" {
                self.say("withdrawing the pending suspend request");
                if let Err(e) = self.ts.xs_write(&node, "") {
                    warnings.push(e.to_string());
                }
            }
        }
        if let Err(e) = self.ts.xs_chmod(&node, &[Perm::None(g)]) {
            warnings.push(format!(
                "restoring the guest's control/shutdown permissions: {e}"
            ));
        }
    }

    /// Makes sure the source guest runs: a suspended guest is resumed by a
    /// resume-only appliance, a guest the appliance left paused is unpaused.
    pub(super) fn ensure_guest_runs(&mut self) -> Result<(), NotRunning> {
        let g = self.guest_id;
        let id = g.to_string();
        // A suspend already under way shows within a moment.
        let start = self.ts.now_ms();
        let mut state;
        loop {
            state = domain_state(self.ts, &id)?;
            let settled = self.ts.now_ms().saturating_sub(start) >= duration_ms(self.t.settle);
            if settled || !matches!(state, Some(s) if s.alive()) {
                break;
            }
            self.ts.sleep(self.t.poll);
        }
        let s = state.ok_or(NotRunning::Gone { guest: g })?;
        if s.suspended() {
            self.say("the guest is left suspended: starting a resume appliance");
            self.resume_guest()?;
        } else if s.alive() && s.paused && !self.guest_paused_before {
            self.say("the guest is left paused: unpausing it");
            xl_ok(self.ts, &["unpause", &id], || format!("xl unpause {g}"))?;
        } else if !s.alive() {
            return Err(NotRunning::Dead { guest: g, state: s });
        }
        match domain_state(self.ts, &id)? {
            Some(s) if s.alive() && (!s.paused || self.guest_paused_before) => Ok(()),
            Some(state) => Err(NotRunning::Stuck { guest: g, state }),
            None => Err(NotRunning::Gone { guest: g }),
        }
    }

    /// Resumes the suspended source guest with a resume-only appliance,
    /// destroyed afterwards whatever it reported.
    fn resume_guest(&mut self) -> Result<(), NotRunning> {
        let g = self.guest_id;
        let name = self.resume_name.clone();
        let cfg = self.write_config(&name, None).map_err(NotRunning::Arm)?;
        let r = self.create_domain(&cfg, &[], &name)?;
        let outcome = (|| -> Result<(), ResumeError> {
            self.write_keys(
                r,
                &[
                    (keys::ROLE, Role::Resume.as_str().into()),
                    (keys::GUEST, g.to_string()),
                ],
            )?;
            self.open_status_dir(r)?;
            xl_ok(self.ts, &["unpause", &r.to_string()], || {
                format!("xl unpause {name}")
            })?;
            self.write_keys(r, &[(keys::GO, keys::GO_VALUE.into())])?;
            let start = self.ts.now_ms();
            loop {
                if let Some(res) = self.read_key(r, keys::RESULT)? {
                    self.say(&format!("resume appliance: {res}"));
                    return if Verdict::of(&res) == Some(Verdict::Pass) {
                        Ok(())
                    } else {
                        Err(ResumeError::Reported { result: res })
                    };
                }
                match domain_state(self.ts, &r.to_string())? {
                    Some(s) if s.alive() => {}
                    _ => return Err(ResumeError::Stopped),
                }
                if self.ts.now_ms().saturating_sub(start) >= duration_ms(self.t.resume) {
                    return Err(ResumeError::Silent {
                        secs: self.t.resume.as_secs(),
                    });
                }
                self.ts.sleep(self.t.poll);
            }
        })();
        self.destroy_quietly(r, &name);
        outcome.map_err(|why| NotRunning::NotResumed { guest: g, why })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The texts the command has always printed.
    #[test]
    fn messages_keep_their_text() {
        assert_eq!(
            Abort::Uncreated.to_string(),
            "internal: start left a domain uncreated"
        );
        assert_eq!(
            Abort::Watch(WatchFailure::DestinationFailedAfterCommit).to_string(),
            "the source committed but the destination failed"
        );
        let xl = XlError::Failed {
            command: "xl create guest--incoming".into(),
            reason: "boom".into(),
        };
        assert_eq!(
            Abort::Arm(ArmError::Xl(xl.clone())).to_string(),
            "xl create guest--incoming: boom"
        );
        let state = DomState {
            domid: 5,
            paused: true,
            shutdown: None,
            dying: false,
        };
        assert_eq!(
            NotRunning::Gone { guest: 5 }.to_string(),
            "the source guest (domain 5) no longer exists"
        );
        for (shutdown, dying, how) in [
            (Some('c'), false, "crashed"),
            (Some('-'), false, "shut down"),
            (None, true, "dying"),
        ] {
            let state = DomState {
                shutdown,
                dying,
                ..state
            };
            assert_eq!(
                NotRunning::Dead { guest: 5, state }.to_string(),
                format!("the source guest (domain 5) is {how}; it cannot be resumed by depmig")
            );
        }
        assert_eq!(
            NotRunning::Stuck { guest: 5, state }.to_string(),
            format!("the source guest (domain 5) is not running: {state:?}")
        );
        assert_eq!(
            NotRunning::Xl(xl.clone()).to_string(),
            "xl create guest--incoming: boom"
        );
        assert_eq!(
            NotRunning::Arm(ArmError::Xl(xl)).to_string(),
            "xl create guest--incoming: boom"
        );
        for (why, text) in [
            (
                ResumeError::Reported {
                    result: "FAIL x".into(),
                },
                "the resume appliance reported FAIL x",
            ),
            (
                ResumeError::Stopped,
                "the resume appliance stopped without a result",
            ),
            (
                ResumeError::Silent { secs: 240 },
                "the resume appliance reported nothing within 240 s",
            ),
        ] {
            assert_eq!(
                NotRunning::NotResumed { guest: 5, why }.to_string(),
                format!(
                    "the source guest (domain 5) is suspended and could not be resumed: {text}"
                )
            );
        }
    }
}
