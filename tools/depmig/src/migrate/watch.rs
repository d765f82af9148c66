//! Watching: the appliances' progress and states polled until the
//! migration succeeded, failed or timed out; the dom0 bitmap route served
//! on the way.

use std::fmt;
use std::ops::ControlFlow;
use std::time::Duration;

use depmig_control::keys;
use depmig_control::{Round, State, Verdict};

use super::domains::{domain_state, two_domain_states};
use super::{duration_ms, Run, FINAL_QUIET_MS, SHORT_ROUND_MS};
use crate::progress;
use crate::toolstack::{DomState, ToolError, Toolstack};

/// An appliance's `state` key as last read: the text, shown as it is, and
/// the [`State`] it names (`None` before the first read, or for a text the
/// contract does not know).
#[derive(Debug, Default)]
struct StateKey {
    text: String,
    state: Option<State>,
}

impl StateKey {
    fn read(text: String) -> StateKey {
        StateKey {
            state: State::parse(&text).ok(),
            text,
        }
    }

    fn is(&self, state: State) -> bool {
        self.state == Some(state)
    }
}

impl fmt::Display for StateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// How an appliance that is no longer alive went, as `xl list` showed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Down {
    /// vanished: not listed any more.
    Vanished,
    /// crashed: shut down with the crash code.
    Crashed,
    /// stopped: shut down otherwise, or dying.
    Stopped,
}

impl Down {
    /// How a domain listed as `state` (`None`: not listed) went.
    fn of(state: Option<DomState>) -> Down {
        match state {
            None => Down::Vanished,
            Some(s) if s.shutdown == Some('c') => Down::Crashed,
            Some(_) => Down::Stopped,
        }
    }
}

impl fmt::Display for Down {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Down::Vanished => "vanished",
            Down::Crashed => "crashed",
            Down::Stopped => "stopped",
        })
    }
}

/// Why the watch gave the migration up.
#[derive(Debug)]
pub(super) enum WatchFailure {
    /// xenstore unreadable: `<error>` (twenty polls in a row failed)
    XenstoreUnreadable(ToolError),
    /// source appliance: `<result>` (its FAIL line)
    SourceFailed {
        /// The result line.
        result: String,
    },
    /// source appliance wrote an unknown result `<result>`
    UnknownResult {
        /// The result line.
        result: String,
    },
    /// the source committed but the destination failed
    DestinationFailedAfterCommit,
    /// the source committed but the destination did not report `applied`
    /// within `<secs>` s (state `<state>`)
    NotApplied {
        /// The grace period.
        secs: u64,
        /// The destination's last state.
        state: String,
    },
    /// the source appliance `<down>` without a result
    SourceDown(Down),
    /// the destination appliance failed (state `<state>`) and the source
    /// reported nothing within `<secs>` s
    DestinationDown {
        /// The destination's last state.
        state: String,
        /// The grace period.
        secs: u64,
    },
    /// the destination host: `<error>` (the control conversation's)
    DestinationLost(crate::twohost::channel::ChannelError),
    /// timed out after `<secs>` s (source `<src>`, destination `<dst>`,
    /// last round `<round>` or none)
    TimedOut {
        /// The migration's timeout.
        secs: u64,
        /// The source's last state.
        src: String,
        /// The destination's last state.
        dst: String,
        /// The last round seen.
        round: Option<u64>,
    },
}

impl fmt::Display for WatchFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WatchFailure::XenstoreUnreadable(e) => write!(f, "xenstore unreadable: {e}"),
            WatchFailure::SourceFailed { result } => write!(f, "source appliance: {result}"),
            WatchFailure::UnknownResult { result } => {
                write!(f, "source appliance wrote an unknown result `{result}`")
            }
            WatchFailure::DestinationFailedAfterCommit => {
                f.write_str("the source committed but the destination failed")
            }
            WatchFailure::NotApplied { secs, state } => write!(
                f,
                "the source committed but the destination did not report `applied` within {secs} s (state `{state}`)"
            ),
            WatchFailure::SourceDown(down) => {
                write!(f, "the source appliance {down} without a result")
            }
            WatchFailure::DestinationDown { state, secs } => write!(
                f,
                "the destination appliance failed (state `{state}`) and the source reported nothing within {secs} s"
            ),
            WatchFailure::DestinationLost(e) => write!(f, "the destination host: {e}"),
            WatchFailure::TimedOut {
                secs,
                src,
                dst,
                round,
            } => {
                write!(
                    f,
                    "timed out after {secs} s (source `{src}`, destination `{dst}`, last round "
                )?;
                match round {
                    Some(r) => write!(f, "{r})"),
                    None => f.write_str("none)"),
                }
            }
        }
    }
}

impl std::error::Error for WatchFailure {}

/// A remote appliance's liveness as a listed state (`None`: not listed).
fn listed_as(l: crate::twohost::protocol::Liveness, domid: u32) -> Option<DomState> {
    use crate::twohost::protocol::Liveness;
    let s = DomState {
        domid,
        paused: false,
        shutdown: None,
        dying: false,
    };
    match l {
        Liveness::Alive => Some(s),
        Liveness::Stopped => Some(DomState {
            shutdown: Some('-'),
            ..s
        }),
        Liveness::Crashed => Some(DomState {
            shutdown: Some('c'),
            ..s
        }),
        Liveness::Vanished => None,
    }
}

/// How the watch ended.
pub(super) enum Watch {
    /// The source committed and the destination applied.
    Success,
    /// The migration is given up.
    Failure(WatchFailure),
}

/// The watch's time limits (monotonic ms).
struct Limits {
    /// When the whole migration times out.
    deadline: u64,
    /// How long one appliance may go on alone after the other finished or
    /// failed.
    grace: u64,
}

/// What the watch has seen so far.
#[derive(Default)]
struct Seen {
    /// The source appliance's state.
    src: StateKey,
    /// The destination appliance's state.
    dst: StateKey,
    /// The last round line read.
    round_line: String,
    /// When the source was first seen committed (or with a result): the
    /// destination's `applied` is awaited from then.
    src_pass_at: Option<u64>,
    /// When the destination was first seen failed or down.
    dst_down_at: Option<u64>,
    /// Polls in a row whose keys could not be read.
    errors: u32,
    /// When the appliances' domains were last listed.
    last_list: Option<u64>,
    /// When the source was first seen in its stop-and-copy round.
    final_seen_at: Option<u64>,
}

/// The appliances' keys as one poll read them (trimmed; `None`: missing or
/// empty).
struct Keys {
    src_state: Option<String>,
    round: Option<String>,
    result: Option<String>,
    dst_state: Option<String>,
}

impl<T: Toolstack + ?Sized> Run<'_, T> {
    /// Polls the appliances until the migration succeeded, failed or timed
    /// out. One poll: the dom0 bitmap route served, the appliances' keys
    /// read, their domains listed (now and then), the time limits checked;
    /// then a sleep, short around the switchover.
    pub(super) fn watch(&mut self, src: u32, dst: u32) -> Watch {
        let start = self.ts.now_ms();
        let limits = Limits {
            deadline: start.saturating_add(self.o.timeout_s.saturating_mul(1000)),
            grace: duration_ms(self.t.grace),
        };
        let mut seen = Seen::default();
        loop {
            if let ControlFlow::Break(end) = self.poll_once(src, dst, &limits, &mut seen) {
                return end;
            }
            let period = self.poll_period(&seen);
            self.ts.sleep(period);
        }
    }

    /// One poll of the watch; `Break` ends it.
    fn poll_once(
        &mut self,
        src: u32,
        dst: u32,
        limits: &Limits,
        seen: &mut Seen,
    ) -> ControlFlow<Watch> {
        // First, so that a collect waiting for dom0 (the final one is in
        // the guest's downtime) is answered as early in the poll as can be.
        for note in self.bitmap.poll(self.ts, src) {
            self.say(&note);
        }
        self.read_progress(src, dst, limits, seen)?;
        self.check_domains(src, dst, seen)?;
        self.check_limits(limits, seen)
    }

    /// Reads the appliances' keys and acts on what changed: states, the
    /// round line, the source's result; ends the watch on a result, on the
    /// destination's `applied` after the source committed, or on twenty
    /// unreadable polls in a row.
    fn read_progress(
        &mut self,
        src: u32,
        dst: u32,
        limits: &Limits,
        seen: &mut Seen,
    ) -> ControlFlow<Watch> {
        // Two hosts: the destination's state is asked of its host; a
        // conversation that broke ends the watch (the destination destroys
        // its shell when it ends).
        let ts = &mut self.ts;
        let remote_state = match self.remote.as_mut().map(|r| r.poll(|| ts.unix_ms())) {
            None => None,
            Some(Ok(s)) => Some(s),
            Some(Err(e)) => {
                return ControlFlow::Break(Watch::Failure(WatchFailure::DestinationLost(e)))
            }
        };
        // A save: dom0's own end stands for the destination.
        let remote_state = match self.saver.as_mut() {
            Some(end) => Some(end.state()),
            None => remote_state,
        };
        let polled = (|| -> Result<_, ToolError> {
            Ok(Keys {
                src_state: self.read_key(src, keys::STATE)?,
                round: self.read_key(src, keys::ROUND)?,
                result: self.read_key(src, keys::RESULT)?,
                dst_state: match remote_state {
                    Some(s) => s,
                    None => self.read_key(dst, keys::STATE)?,
                },
            })
        })();
        let now = self.ts.now_ms();
        let read = match polled {
            Err(e) => {
                seen.errors += 1;
                if seen.errors >= 20 {
                    return ControlFlow::Break(Watch::Failure(WatchFailure::XenstoreUnreadable(e)));
                }
                return ControlFlow::Continue(());
            }
            Ok(read) => read,
        };
        seen.errors = 0;
        self.note_states(read.src_state, read.dst_state, seen);
        self.note_round(read.round, seen);
        if let Some(r) = read.result {
            self.note_result(r)?;
        }
        // `committed` comes before the result: the source had the
        // destination's ACK and will never resume the guest. Its
        // report and result follow, and are read after the handoff.
        if seen.src.is(State::Committed) || self.src_result.is_some() {
            if seen.dst.is(State::Applied) {
                return ControlFlow::Break(Watch::Success);
            }
            if seen.dst.is(State::Failed) {
                return ControlFlow::Break(Watch::Failure(
                    WatchFailure::DestinationFailedAfterCommit,
                ));
            }
            let at = *seen.src_pass_at.get_or_insert(now);
            if now.saturating_sub(at) >= limits.grace {
                return ControlFlow::Break(Watch::Failure(WatchFailure::NotApplied {
                    secs: limits.grace / 1000,
                    state: std::mem::take(&mut seen.dst.text),
                }));
            }
        }
        if seen.dst.is(State::Failed) {
            seen.dst_down_at.get_or_insert(now);
        }
        ControlFlow::Continue(())
    }

    /// Says each appliance's new state; notes when the source was first
    /// seen in its stop-and-copy round.
    fn note_states(
        &mut self,
        src_state: Option<String>,
        dst_state: Option<String>,
        seen: &mut Seen,
    ) {
        if let Some(s) = src_state.filter(|s| *s != seen.src.text) {
            self.say(&format!("source: {s}"));
            seen.src = StateKey::read(s);
            if seen.src.is(State::Final) && self.cli.final_seen_unix_ms.is_none() {
                self.cli.final_seen_unix_ms = Some(self.ts.unix_ms());
                seen.final_seen_at = Some(self.ts.now_ms());
            }
        }
        if let Some(d) = dst_state.filter(|d| *d != seen.dst.text) {
            self.say(&format!("destination: {d}"));
            seen.dst = StateKey::read(d);
        }
    }

    /// Says a new round line as a progress line.
    fn note_round(&mut self, line: Option<String>, seen: &mut Seen) {
        let Some(line) = line.filter(|l| *l != seen.round_line) else {
            return;
        };
        match Round::parse(&line) {
            Ok(r) => {
                self.say(&progress::progress_line(
                    &r,
                    self.guest_pages,
                    &seen.src.text,
                ));
                self.last_round = Some(r);
            }
            Err(e) => self.say(&format!("warning: unreadable round line `{line}`: {e}")),
        }
        seen.round_line = line;
    }

    /// Takes the source's result: a PASS goes on to the handoff, anything
    /// else ends the watch.
    fn note_result(&mut self, r: String) -> ControlFlow<Watch> {
        if self.src_result.is_none() {
            self.cli.result_seen_unix_ms = Some(self.ts.unix_ms());
            self.say(&format!("source result: {r}"));
        }
        self.src_result = Some(r.clone());
        match Verdict::of(&r) {
            Some(Verdict::Pass) => ControlFlow::Continue(()),
            Some(Verdict::Fail) => {
                ControlFlow::Break(Watch::Failure(WatchFailure::SourceFailed { result: r }))
            }
            None => ControlFlow::Break(Watch::Failure(WatchFailure::UnknownResult { result: r })),
        }
    }

    /// Lists the appliances' domains, every `list_period` outside the
    /// stop-and-copy round's first FINAL_QUIET_MS: a source that stopped
    /// without a result ends the watch; a destination that stopped before
    /// `applied` starts the grace period.
    fn check_domains(&mut self, src: u32, dst: u32, seen: &mut Seen) -> ControlFlow<Watch> {
        let now = self.ts.now_ms();
        // The stop-and-copy round is short when it matters (the guest is
        // down): an `xl list` then would delay seeing its end by the
        // command's cost, so the appliances are only checked again once it
        // has lasted FINAL_QUIET_MS.
        let in_final = seen.src.is(State::Final)
            && seen
                .final_seen_at
                .is_some_and(|t| now.saturating_sub(t) < FINAL_QUIET_MS);
        if in_final
            || seen
                .last_list
                .is_some_and(|t| now.saturating_sub(t) < duration_ms(self.t.list_period))
        {
            return ControlFlow::Continue(());
        }
        seen.last_list = Some(now);
        let liveness = match (&self.remote, &self.saver) {
            (Some(r), _) => Some(r.liveness),
            // dom0's own save end: alive as long as this command is.
            (None, Some(_)) => Some(crate::twohost::protocol::Liveness::Alive),
            (None, None) => None,
        };
        let (src_listed, dst_listed) = match liveness {
            None => two_domain_states(self.ts, src, dst),
            // The destination appliance is listed on its own host, as the
            // last `status` said.
            Some(l) => (
                domain_state(self.ts, &src.to_string()),
                Ok(listed_as(l, dst)),
            ),
        };
        match src_listed {
            Ok(Some(s)) if s.alive() => {}
            Ok(state) => match self.read_key(src, keys::RESULT) {
                // It stops after its result, as it should (a result
                // written just before is read by the next poll).
                Ok(Some(_)) => {}
                _ => {
                    return ControlFlow::Break(Watch::Failure(WatchFailure::SourceDown(Down::of(
                        state,
                    ))))
                }
            },
            Err(e) => self.say(&format!("warning: {e}")),
        }
        match dst_listed {
            Ok(Some(s)) if s.alive() => {}
            Ok(state) if !seen.dst.is(State::Applied) => {
                if seen.dst_down_at.is_none() {
                    self.say(&format!(
                        "the destination appliance {} (state `{}`)",
                        Down::of(state),
                        seen.dst
                    ));
                }
                seen.dst_down_at.get_or_insert(self.ts.now_ms());
            }
            Ok(_) => {}
            Err(_) => {} // said once, for the source
        }
        ControlFlow::Continue(())
    }

    /// Ends the watch when the destination has been down for the grace
    /// period, or at the migration's deadline.
    fn check_limits(&mut self, limits: &Limits, seen: &mut Seen) -> ControlFlow<Watch> {
        let now = self.ts.now_ms();
        if let Some(at) = seen.dst_down_at {
            if now.saturating_sub(at) >= limits.grace {
                return ControlFlow::Break(Watch::Failure(WatchFailure::DestinationDown {
                    state: std::mem::take(&mut seen.dst.text),
                    secs: limits.grace / 1000,
                }));
            }
        }
        if now >= limits.deadline {
            return ControlFlow::Break(Watch::Failure(WatchFailure::TimedOut {
                secs: self.o.timeout_s,
                src: std::mem::take(&mut seen.src.text),
                dst: std::mem::take(&mut seen.dst.text),
                round: self.last_round.map(|r| r.round),
            }));
        }
        ControlFlow::Continue(())
    }

    /// How long to sleep before the next poll. Short rounds after the first
    /// mean the source may suspend the guest any moment, and the whole
    /// switchover may then take less than one slow period. On the dom0
    /// bitmap route every collect waits for the watch to serve it.
    fn poll_period(&self, seen: &Seen) -> Duration {
        let short_rounds = self
            .last_round
            .is_some_and(|r| r.round >= 2 && r.ms <= SHORT_ROUND_MS);
        let switching = matches!(
            seen.src.state,
            Some(State::Suspending | State::Final | State::Committed)
        ) || self.src_result.is_some()
            || matches!(seen.dst.state, Some(State::Applying | State::Applied))
            || short_rounds
            || self.bitmap.in_use();
        if switching {
            self.t.poll_fast
        } else {
            self.t.poll
        }
    }

    /// Waits until the source appliance wrote its result (its report comes
    /// first) or stopped, for at most the grace period, polling every `period`.
    pub(super) fn await_source_result(&mut self, src: u32, period: Duration) {
        let start = self.ts.now_ms();
        loop {
            let result = self.read_key(src, keys::RESULT).ok().flatten();
            let alive = result.is_none()
                && matches!(domain_state(self.ts, &src.to_string()), Ok(Some(s)) if s.alive());
            if result.is_some() || !alive {
                if let Some(r) = result {
                    if self.src_result.is_none() {
                        self.cli.result_seen_unix_ms = Some(self.ts.unix_ms());
                        self.say(&format!("source result: {r}"));
                    }
                    self.src_result = Some(r);
                }
                return;
            }
            if self.ts.now_ms().saturating_sub(start) >= duration_ms(self.t.grace) {
                self.say("the source appliance reported nothing: destroying it");
                return;
            }
            self.ts.sleep(period);
        }
    }

    /// Ends the dom0 bitmap route
    /// ([`Service::finish`](crate::bitmap::Service::finish)).
    pub(super) fn end_bitmap_route(&mut self, src: u32, cancel: bool) {
        for note in self.bitmap.finish(self.ts, src, cancel) {
            self.say(&note);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The texts the command has always printed; the rig reads the
    /// appliances' ends (`appliance crashed`, `appliance stopped`).
    #[test]
    fn messages_keep_their_text() {
        let e = ToolError::Xenstore {
            what: "read /x".into(),
            reason: "gone".into(),
        };
        assert_eq!(
            WatchFailure::XenstoreUnreadable(e).to_string(),
            "xenstore unreadable: xenstore read /x: gone"
        );
        assert_eq!(
            WatchFailure::SourceFailed {
                result: "FAIL x".into()
            }
            .to_string(),
            "source appliance: FAIL x"
        );
        assert_eq!(
            WatchFailure::UnknownResult {
                result: "MAYBE".into()
            }
            .to_string(),
            "source appliance wrote an unknown result `MAYBE`"
        );
        assert_eq!(
            WatchFailure::DestinationFailedAfterCommit.to_string(),
            "the source committed but the destination failed"
        );
        assert_eq!(
            WatchFailure::NotApplied {
                secs: 90,
                state: "applying".into()
            }
            .to_string(),
            "the source committed but the destination did not report `applied` within 90 s (state `applying`)"
        );
        let crashed = DomState {
            domid: 8,
            paused: false,
            shutdown: Some('c'),
            dying: false,
        };
        let stopped = DomState {
            shutdown: Some('-'),
            ..crashed
        };
        let dying = DomState {
            shutdown: None,
            dying: true,
            ..crashed
        };
        for (state, text) in [
            (None, "the source appliance vanished without a result"),
            (
                Some(crashed),
                "the source appliance crashed without a result",
            ),
            (
                Some(stopped),
                "the source appliance stopped without a result",
            ),
            (Some(dying), "the source appliance stopped without a result"),
        ] {
            assert_eq!(WatchFailure::SourceDown(Down::of(state)).to_string(), text);
        }
        assert_eq!(
            WatchFailure::DestinationDown {
                state: "failed".into(),
                secs: 90
            }
            .to_string(),
            "the destination appliance failed (state `failed`) and the source reported nothing within 90 s"
        );
        assert_eq!(
            WatchFailure::TimedOut {
                secs: 1200,
                src: "precopy".into(),
                dst: "receiving".into(),
                round: Some(4)
            }
            .to_string(),
            "timed out after 1200 s (source `precopy`, destination `receiving`, last round 4)"
        );
        assert_eq!(
            WatchFailure::TimedOut {
                secs: 1200,
                src: String::new(),
                dst: String::new(),
                round: None
            }
            .to_string(),
            "timed out after 1200 s (source ``, destination ``, last round none)"
        );
    }
}
