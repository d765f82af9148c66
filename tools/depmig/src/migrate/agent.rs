//! The guest agent (guest-lsm): its keys opened to the source appliance
//! and given back, and the thaw request after a migration or a roll-back.

use std::fmt;

use depmig_control::Mode;

use super::{duration_ms, Run};
use crate::toolstack::{Perm, ToolError, Toolstack};

/// Why the guest agent did not thaw what it froze.
#[derive(Debug)]
pub(super) enum ThawError {
    /// Its nodes could not be read or written (the toolstack's message).
    Tool(ToolError),
    /// the guest agent answered `<status>`: not `<seq> thawed <n>`
    Answered {
        /// Its status line.
        status: String,
    },
    /// the guest agent did not answer `<seq> thaw` within `<secs>` s
    Silent {
        /// The request's sequence number.
        seq: u64,
        /// How long it was given.
        secs: u64,
    },
}

impl fmt::Display for ThawError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ThawError::Tool(e) => e.fmt(f),
            ThawError::Answered { status } => write!(f, "the guest agent answered `{status}`"),
            ThawError::Silent { seq, secs } => write!(
                f,
                "the guest agent did not answer `{seq} thaw` within {secs} s"
            ),
        }
    }
}

impl std::error::Error for ThawError {}

impl From<ToolError> for ThawError {
    fn from(e: ToolError) -> ThawError {
        ThawError::Tool(e)
    }
}

/// The guest agent's (guest-lsm) directory in domain `domid`'s home.
pub fn agent_dir(domid: u32) -> String {
    format!("/local/domain/{domid}/data/depmig")
}

/// The agent's keys the source appliance reads (guest-lsm/README.md,
/// "Publication and control"); `request` it also writes.
const AGENT_KEYS: [&str; 6] = [
    "version",
    "table-gfn",
    "table-pages",
    "profile-gfn",
    "state",
    "status",
];

/// Whether the mode needs the guest agent's publication and freezer.
pub(super) fn needs_agent(mode: Mode) -> bool {
    mode != Mode::Baseline
}

/// The sequence number of an agent request or status line (`<seq> …`).
pub(super) fn agent_seq(line: &str) -> Option<u64> {
    line.split_whitespace().next()?.parse().ok()
}

impl<T: Toolstack + ?Sized> Run<'_, T> {
    /// Lets the source appliance read the guest agent's keys and write its
    /// `request` (the guest stays their owner). `status` and `request` are
    /// created empty when the agent has not made them yet (an empty request
    /// is no request to the agent), so their permissions exist before the
    /// appliance starts.
    pub(super) fn open_agent_keys(&mut self, src: u32) -> Result<(), ToolError> {
        let g = self.guest_id;
        let dir = agent_dir(g);
        for k in ["status", "request"] {
            let path = format!("{dir}/{k}");
            if self.ts.xs_read(&path)?.is_none() {
                self.ts.xs_write(&path, "")?;
            }
        }
        let mut nodes = vec![(dir.clone(), Perm::Read(src))];
        nodes.extend(
            AGENT_KEYS
                .iter()
                .map(|k| (format!("{dir}/{k}"), Perm::Read(src))),
        );
        nodes.push((format!("{dir}/request"), Perm::Both(src)));
        for (path, perm) in nodes {
            // A key the agent did not publish stays absent: the appliance
            // names it when it refuses.
            if self.ts.xs_read(&path)?.is_none() {
                continue;
            }
            self.agent_opened.push(path.clone());
            self.ts.xs_chmod(&path, &[Perm::None(g), perm])?;
        }
        Ok(())
    }

    /// Gives the guest its agent keys back (only the guest may use them).
    pub(super) fn restore_agent_keys(&mut self, warnings: &mut Vec<String>) {
        let g = self.guest_id;
        for path in std::mem::take(&mut self.agent_opened) {
            if let Err(e) = self.ts.xs_chmod(&path, &[Perm::None(g)]) {
                warnings.push(format!("restoring the permissions of {path}: {e}"));
            }
        }
    }

    /// Asks the agent in domain `domid` to thaw every group it froze and
    /// waits (bounded by `Timings::thaw`) for its answer; returns how many
    /// groups it thawed. The request's number follows `after` (the last
    /// request the agent served), else the one found in the node.
    pub(super) fn agent_thaw(&mut self, domid: u32, after: Option<u64>) -> Result<u64, ThawError> {
        let dir = agent_dir(domid);
        let req = format!("{dir}/request");
        let status_path = format!("{dir}/status");
        let current = self.ts.xs_read(&req)?;
        if current.is_none() {
            // A migrated guest's new home has no agent nodes yet: create the
            // request node and hand it (and its directory) to the guest.
            self.ts.xs_write(&req, "")?;
            self.ts.xs_chmod(&dir, &[Perm::None(domid)])?;
            self.ts.xs_chmod(&req, &[Perm::None(domid)])?;
        }
        let last = after.or_else(|| current.as_deref().and_then(agent_seq));
        let mut seq = match last {
            Some(n) => n.saturating_add(1),
            // No number known: one no earlier request is likely to have used
            // (the agent acts on any number other than its last one).
            None => self.ts.unix_ms() / 1000 % 1_000_000_000 + 1000,
        };
        let stale = self.ts.xs_read(&status_path)?;
        if stale.as_deref().and_then(agent_seq) == Some(seq) {
            seq = seq.saturating_add(1);
        }
        self.ts.xs_write(&req, &format!("{seq} thaw"))?;
        let start = self.ts.now_ms();
        loop {
            if let Some(s) = self.ts.xs_read(&status_path)? {
                let s = s.trim();
                if agent_seq(s) == Some(seq) {
                    let answer = s.split_once(' ').map_or("", |(_, a)| a.trim());
                    if let Some(n) = answer.strip_prefix("thawed ") {
                        return n.trim().parse().map_err(|_| ThawError::Answered {
                            status: s.to_string(),
                        });
                    }
                    return Err(ThawError::Answered {
                        status: s.to_string(),
                    });
                }
            }
            if self.ts.now_ms().saturating_sub(start) >= duration_ms(self.t.thaw) {
                return Err(ThawError::Silent {
                    seq,
                    secs: self.t.thaw.as_secs(),
                });
            }
            self.ts.sleep(self.t.poll_fast);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The texts the command has always printed.
    #[test]
    fn messages_keep_their_text() {
        assert_eq!(
            ThawError::Answered {
                status: "42 failed".into()
            }
            .to_string(),
            "the guest agent answered `42 failed`"
        );
        assert_eq!(
            ThawError::Silent { seq: 42, secs: 30 }.to_string(),
            "the guest agent did not answer `42 thaw` within 30 s"
        );
        let e = ToolError::Xenstore {
            what: "read /x".into(),
            reason: "gone".into(),
        };
        assert_eq!(ThawError::from(e).to_string(), "xenstore read /x: gone");
    }
}
