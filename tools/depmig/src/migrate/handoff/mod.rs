//! The handoff: once the source committed and the destination applied, the
//! shell is unpaused while the source cannot run ([`proof`]), then the
//! names, the thaw, the source's destruction and the report.

use std::fmt;

use depmig_control::Mode;

use super::agent::{agent_dir, agent_seq};
use super::domains::{domain_state, two_domain_states, Listed, NotGone, XlError};
use super::{duration_ms, Outcome, Run};
use crate::toolstack::{DomState, Toolstack};

pub mod proof;

pub(super) use proof::unpause_received_shell;

use proof::{destroy_source, source_stopped_as, unpause_shell, NotStopped, SourceStopped};

/// Why the destination appliance could not be kept from running while the
/// shell does.
#[derive(Debug)]
pub(super) enum DestinationError {
    /// Its state could not be read (`xl`'s message).
    Xl(XlError),
    /// the destination appliance (domain `<dst>`) could not be destroyed: `<why>`
    NotDestroyed {
        /// The destination appliance.
        dst: u32,
        /// Why it is not gone.
        why: NotGone,
    },
}

impl fmt::Display for DestinationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DestinationError::Xl(e) => e.fmt(f),
            DestinationError::NotDestroyed { dst, why } => write!(
                f,
                "the destination appliance (domain {dst}) could not be destroyed: {why}"
            ),
        }
    }
}

impl std::error::Error for DestinationError {}

impl<T: Toolstack + ?Sized> Run<'_, T> {
    /// Destroys the source guest ([`destroy_source`]) and notes when it was
    /// gone in the report's figures.
    pub(super) fn destroy_source_now(&mut self) -> Result<SourceStopped, NotStopped> {
        let p = destroy_source(self.ts, self.guest_id, self.t.gone)?;
        self.cli.source_destroyed_unix_ms = Some(self.ts.unix_ms());
        Ok(p)
    }

    /// After the decision to commit: with the source suspended and the
    /// destination appliance stopped or paused, unpause the shell
    /// ([`Self::hand_over`]); then the names, the thaw, the source's
    /// destruction, the report.
    pub(super) fn commit(&mut self, shell: u32, src: u32, dst: u32) -> Outcome {
        let mut warnings = Vec::new();
        let agent_last = self.agent_last_request();
        let destroyed_first = match self.hand_over(shell, dst) {
            Ok(destroyed_first) => destroyed_first,
            Err(needs_operator) => return needs_operator,
        };
        self.note_shell_runs(shell, &mut warnings);
        // The names, as xl does: the source steps aside, the shell takes
        // the guest's name (after the unpause: names are the operator's,
        // the guest does not wait for them).
        let away = format!("{}--migratedaway", self.o.guest);
        self.rename_after_handoff(shell, destroyed_first, &away, &mut warnings);
        // The groups the source froze are still frozen in the migrated
        // guest: its agent thaws them on request, in its new home.
        if self.o.mode == Mode::DependencyAware {
            self.thaw_migrated(shell, agent_last, &mut warnings);
        }
        // dom0 maps the source appliance's bitmap buffer on the dom0 bitmap
        // route: unmapped before that appliance is destroyed, else it would
        // stay dying (after the unpause: it is not the guest's downtime).
        self.end_bitmap_route(src, false);
        // The shell runs (and its agent thawed what was frozen): the source
        // goes, and is never resumed. Its appliance maps it until it stops
        // (the copy window before its result, the dependency oracle's until
        // it powers off), so the appliance reports and goes first, or the
        // source would stay dying until then.
        let report = self.committed_source_report(src);
        self.destroy_source_side(shell, src, dst, destroyed_first, &away, &mut warnings);
        warnings.extend(self.write_outputs(report, true));
        Outcome::Migrated { warnings }
    }

    /// The last request the source appliance made of the guest's agent (its
    /// freeze), in the dependency-aware mode: the migrated agent has served
    /// it already, so the thaw after the unpause must carry a later number.
    fn agent_last_request(&mut self) -> Option<u64> {
        if self.o.mode != Mode::DependencyAware {
            return None;
        }
        self.ts
            .xs_read(&format!("{}/request", agent_dir(self.guest_id)))
            .ok()
            .flatten()
            .as_deref()
            .and_then(agent_seq)
    }

    /// The handoff proper, the guest's downtime: one `xl list`, at most one
    /// `xl pause`, and the unpause of the shell, which runs only while the
    /// source cannot. Returns whether the source had to be destroyed first;
    /// an error is the outcome that leaves the rest to an operator.
    fn hand_over(&mut self, shell: u32, dst: u32) -> Result<bool, Outcome> {
        let (src_state, dst_state) = two_domain_states(self.ts, self.guest_id, dst);
        let (proof, destroyed_first) = self.prove_source_stopped(shell, src_state)?;
        // No appliance may still be able to write into the shell when it
        // runs. The destination has nothing left to write after `applied`
        // but its goodbye to the source; it is paused if it has not stopped
        // yet (and destroyed with the source appliance afterwards).
        if let Err(e) = self.quiesce_destination(dst, dst_state.ok().flatten()) {
            return Err(Outcome::NeedsOperator {
                reason: format!(
                    "{e}. The migrated copy waits paused in domain {shell} ({}); the source guest (domain {}) is {}: \
                     destroy domain {dst}, then destroy the source and `xl unpause {shell}`",
                    self.shell_name,
                    self.guest_id,
                    if destroyed_first { "gone" } else { "suspended" }
                ),
            });
        }
        if let Err(e) = unpause_shell(self.ts, shell, &proof) {
            return Err(Outcome::NeedsOperator {
                reason: if destroyed_first {
                    format!("{e}. The source is gone; the only copy of the guest is the paused domain {shell}: run `xl unpause {shell}`")
                } else {
                    format!(
                        "{e}. The migrated copy waits paused in domain {shell}; the source guest (domain {}) is suspended and intact: \
                         run `xl unpause {shell}` and destroy the source, or destroy {shell} and resume the source",
                        self.guest_id
                    )
                },
            });
        }
        Ok(destroyed_first)
    }

    /// The proof that the source cannot run when the shell does, from its
    /// state as just listed: it is suspended (the source appliance saw it
    /// so before its final round). If it is not, it is destroyed first, as
    /// a last resort; the flag says so.
    pub(super) fn prove_source_stopped(
        &mut self,
        shell: u32,
        listed: Listed,
    ) -> Result<(SourceStopped, bool), Outcome> {
        let proof = listed
            .map_err(NotStopped::from)
            .and_then(|st| source_stopped_as(self.guest_id, st));
        match proof {
            Ok(p) => {
                self.say(&format!(
                    "source committed and destination applied: the source guest (domain {}) is suspended; the shell runs first, then the source is destroyed",
                    self.guest_id
                ));
                Ok((p, false))
            }
            Err(e) => {
                self.say(&format!("{e}: destroying it before the shell runs"));
                match self.destroy_source_now() {
                    Ok(p) => Ok((p, true)),
                    Err(e) => Err(Outcome::NeedsOperator {
                        reason: format!(
                            "{e}. The migrated copy waits paused in domain {shell} ({}); the source guest is not suspended. \
                             Destroy domain {} and then `xl unpause {shell}`, or destroy {shell}",
                            self.shell_name, self.guest_id
                        ),
                    }),
                }
            }
        }
    }

    /// Two hosts: the proof that the source cannot run, from its state now
    /// (suspended, dying or gone); a source in another state is destroyed
    /// first, as a last resort (the flag says so). The error is the reason
    /// the migration is given up.
    pub(super) fn source_stop_proof(&mut self) -> Result<(SourceStopped, bool), String> {
        match proof::source_stopped(self.ts, self.guest_id) {
            Ok(p) => Ok((p, false)),
            Err(e) => {
                self.say(&format!(
                    "{e}: destroying it before the destination runs the guest"
                ));
                self.destroy_source_now()
                    .map(|p| (p, true))
                    .map_err(|e| e.to_string())
            }
        }
    }

    /// Notes when the shell was unpaused, says how long the move took, and
    /// checks the shell runs.
    fn note_shell_runs(&mut self, shell: u32, warnings: &mut Vec<String>) {
        let now = self.ts.unix_ms();
        self.cli.shell_unpaused_unix_ms = Some(now);
        let secs = |from: Option<u64>| {
            from.map_or_else(
                || "?".to_string(),
                |t| format!("{:.1} s", now.saturating_sub(t) as f64 / 1000.0),
            )
        };
        self.say(&format!(
            "the guest runs as domain {shell}: {} after go, {} after it was seen suspended",
            secs(self.cli.go_unix_ms),
            secs(self.cli.final_seen_unix_ms)
        ));
        match domain_state(self.ts, &shell.to_string()) {
            Ok(Some(s)) if s.alive() && !s.paused => {}
            Ok(s) => warnings.push(format!("after unpause the shell looks like {s:?}")),
            Err(e) => warnings.push(e.to_string()),
        }
    }

    /// The source (if it still exists) is renamed `away`, the shell takes
    /// the guest's name.
    fn rename_after_handoff(
        &mut self,
        shell: u32,
        destroyed_first: bool,
        away: &str,
        warnings: &mut Vec<String>,
    ) {
        if !destroyed_first {
            match self.ts.xl(&["rename", &self.guest_id.to_string(), away]) {
                Ok(out) if out.ok => {}
                Ok(out) => warnings.push(format!(
                    "xl rename {} {away}: {}",
                    self.guest_id,
                    out.last_line()
                )),
                Err(e) => warnings.push(format!("xl rename {} {away}: {e}", self.guest_id)),
            }
        }
        let rename = self.ts.xl(&["rename", &shell.to_string(), &self.o.guest]);
        match rename {
            Ok(out) if out.ok => {}
            Ok(out) => warnings.push(format!(
                "xl rename {shell} {}: {} (the guest runs as {})",
                self.o.guest,
                out.last_line(),
                self.shell_name
            )),
            Err(e) => warnings.push(format!(
                "xl rename: {e} (the guest runs as {})",
                self.shell_name
            )),
        }
    }

    /// Asks the migrated guest's agent to thaw what the source froze; a
    /// failure is a warning that says how to do it by hand.
    pub(super) fn thaw_migrated(
        &mut self,
        shell: u32,
        agent_last: Option<u64>,
        warnings: &mut Vec<String>,
    ) {
        match self.agent_thaw(shell, agent_last) {
            Ok(n) => self.say(&format!("the guest's agent thawed {n} group(s)")),
            Err(e) => warnings.push(format!(
                "thawing the groups frozen for the migration: {e}; processes of the guest may stay frozen \
                 (write `<n> thaw` to {}/request)",
                agent_dir(shell)
            )),
        }
    }

    /// Destroys the source appliance, the destination appliance and the
    /// source guest, mappers first, and notes when the source was gone. A
    /// source that stays is never resumed: the warning says so.
    fn destroy_source_side(
        &mut self,
        shell: u32,
        src: u32,
        dst: u32,
        destroyed_first: bool,
        away: &str,
        warnings: &mut Vec<String>,
    ) {
        let g = self.guest_id;
        if !destroyed_first {
            self.say(&format!("destroying the source guest (domain {g})"));
        }
        // A source destroyed before the unpause may still be dying: it is
        // awaited here too, after its mapper.
        let failed = self.destroy_all(&[src, dst, g]);
        let source_failed = failed.iter().find(|(id, _)| *id == g);
        if !destroyed_first && source_failed.is_none_or(|(_, e)| matches!(e, NotGone::Dying)) {
            self.cli.source_destroyed_unix_ms = Some(self.ts.unix_ms());
        }
        for (id, e) in &failed {
            let id = *id;
            warnings.push(if id == g && matches!(e, NotGone::Dying) {
                format!("the source guest (domain {g}) is dying but not gone: {e}")
            } else if id == g {
                format!(
                    "the source guest (domain {g}) still exists after xl destroy ({e}): the source (renamed {away}) \
                     stays suspended; destroy it, never resume it: the guest runs as domain {shell}"
                )
            } else {
                let name = if id == src { &self.src_name } else { &self.dst_name };
                format!("appliance {name} (domain {id}): {e}")
            });
        }
    }

    /// Makes sure the destination appliance cannot run while the shell
    /// does: stopped already (as `xl list` showed it: `state`), or paused
    /// now; if it cannot be paused, the slow way ([`Self::stop_destination`]).
    pub(super) fn quiesce_destination(
        &mut self,
        dst: u32,
        state: Option<DomState>,
    ) -> Result<(), DestinationError> {
        match state {
            Some(s) if s.alive() && !s.paused => {}
            _ => return Ok(()),
        }
        if let Some(Ok(())) = self.ts.domctl_pause(dst) {
            return Ok(());
        }
        let why = match self.ts.xl(&["pause", &dst.to_string()]) {
            Ok(out) if out.ok => return Ok(()),
            Ok(out) => out.last_line(),
            Err(e) => e.to_string(),
        };
        self.say(&format!(
            "xl pause {dst}: {why}; waiting for the destination appliance to stop"
        ));
        self.stop_destination(dst)
    }

    /// Waits briefly for the destination appliance to stop by itself, and
    /// destroys it if it does not.
    fn stop_destination(&mut self, dst: u32) -> Result<(), DestinationError> {
        let start = self.ts.now_ms();
        loop {
            match domain_state(self.ts, &dst.to_string()).map_err(DestinationError::Xl)? {
                Some(s) if s.alive() => {}
                _ => return Ok(()),
            }
            if self.ts.now_ms().saturating_sub(start) >= duration_ms(self.t.dst_stop) {
                break;
            }
            self.ts.sleep(self.t.poll_fast);
        }
        self.say("the destination appliance is still running: destroying it before the shell runs");
        self.destroy_and_wait(dst)
            .map_err(|why| DestinationError::NotDestroyed { dst, why })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The texts the command has always printed.
    #[test]
    fn messages_keep_their_text() {
        assert_eq!(
            DestinationError::NotDestroyed {
                dst: 7,
                why: NotGone::Dying
            }
            .to_string(),
            "the destination appliance (domain 7) could not be destroyed: still dying (a domain still maps its memory)"
        );
        let xl = XlError::Failed {
            command: "xl list 7".into(),
            reason: "boom".into(),
        };
        assert_eq!(DestinationError::Xl(xl).to_string(), "xl list 7: boom");
    }
}
