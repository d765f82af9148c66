//! The proof that the source guest cannot run, and the one step that needs
//! it: unpausing the shell.
//!
//! [`SourceStopped`]'s field is private to this module, so no code outside
//! it can make one: only [`source_stopped`] (and, from a state just listed,
//! `source_stopped_as`) and [`destroy_source`] do, and the compiler keeps
//! it so. On a destination host the proof is the source's word,
//! [`StoppedNotice`], which only the control protocol delivers (and only
//! a [`SourceStopped`] makes on the source host):
//! [`unpause_received_shell`] takes it. Nothing else belongs here.

use std::fmt;
use std::time::Duration;

use crate::migrate::domains::{domain_state, xl_ok, XlError};
use crate::migrate::duration_ms;
use crate::toolstack::{DomState, Toolstack};
use crate::twohost::protocol::StoppedNotice;

/// Why the source guest could not be shown unable to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotStopped {
    /// the source guest (domain `<domid>`) is not suspended: `<state>`
    NotSuspended {
        /// The source guest.
        domid: u32,
        /// Its state as listed.
        state: DomState,
    },
    /// source guest (domain `<domid>`) still exists after xl destroy
    /// (and, when `xl destroy` itself failed, ` (xl destroy: <why>)`)
    NotDestroyed {
        /// The source guest.
        domid: u32,
        /// `xl destroy`'s last line, when it failed.
        destroy: Option<String>,
    },
    /// Its state could not be read (`xl`'s message).
    Xl(XlError),
}

impl fmt::Display for NotStopped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NotStopped::NotSuspended { domid, state } => write!(
                f,
                "the source guest (domain {domid}) is not suspended: {state:?}"
            ),
            NotStopped::NotDestroyed { domid, destroy } => {
                write!(
                    f,
                    "source guest (domain {domid}) still exists after xl destroy"
                )?;
                match destroy {
                    Some(why) => write!(f, " (xl destroy: {why})"),
                    None => Ok(()),
                }
            }
            NotStopped::Xl(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for NotStopped {}

impl From<XlError> for NotStopped {
    fn from(e: XlError) -> NotStopped {
        NotStopped::Xl(e)
    }
}

/// Why the shell was not unpaused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnpauseError {
    /// refusing to unpause domain `<shell>`: it is the source
    ShellIsSource {
        /// The domain asked to be unpaused.
        shell: u32,
    },
    /// `xl unpause` failed (`xl`'s message).
    Xl(XlError),
}

impl fmt::Display for UnpauseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UnpauseError::ShellIsSource { shell } => {
                write!(f, "refusing to unpause domain {shell}: it is the source")
            }
            UnpauseError::Xl(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for UnpauseError {}

/// Proof that the source guest cannot run: it is shut down for suspend
/// (Xen never schedules it again unless a toolstack resumes it, which this
/// command never does once the shell was unpaused), dying (torn down), or
/// gone. Only [`source_stopped`] and [`destroy_source`] make one.
#[derive(Debug)]
pub struct SourceStopped {
    domid: u32,
}

impl SourceStopped {
    /// The source guest's domain id the proof is for.
    pub fn domid(&self) -> u32 {
        self.domid
    }
}

/// Checks that the source guest is shut down for suspend, dying or gone.
pub fn source_stopped<T: Toolstack + ?Sized>(
    ts: &mut T,
    domid: u32,
) -> Result<SourceStopped, NotStopped> {
    source_stopped_as(domid, domain_state(ts, &domid.to_string())?)
}

/// The same, from the state `xl list` just showed for it (`None`: not listed).
pub(super) fn source_stopped_as(
    domid: u32,
    state: Option<DomState>,
) -> Result<SourceStopped, NotStopped> {
    match state {
        None => Ok(SourceStopped { domid }),
        Some(s) if s.dying || s.suspended() => Ok(SourceStopped { domid }),
        Some(state) => Err(NotStopped::NotSuspended { domid, state }),
    }
}

/// Destroys the source guest and waits until it is gone or dying: either
/// way it can never run again. A dying source may stay so while its
/// appliance still maps it; the caller waits for it to go after that.
pub fn destroy_source<T: Toolstack + ?Sized>(
    ts: &mut T,
    domid: u32,
    within: Duration,
) -> Result<SourceStopped, NotStopped> {
    let id = domid.to_string();
    let out = ts.xl(&["destroy", &id]).map_err(XlError::from)?;
    let destroy = (!out.ok).then(|| out.last_line());
    let start = ts.now_ms();
    loop {
        match domain_state(ts, &id)? {
            None => return Ok(SourceStopped { domid }),
            Some(s) if s.dying => return Ok(SourceStopped { domid }),
            Some(_) => {}
        }
        if ts.now_ms().saturating_sub(start) >= duration_ms(within) {
            return Err(NotStopped::NotDestroyed { domid, destroy });
        }
        ts.sleep(Duration::from_millis(500));
    }
}

/// Unpauses the shell; only possible with proof that the source cannot run.
pub fn unpause_shell<T: Toolstack + ?Sized>(
    ts: &mut T,
    shell: u32,
    proof: &SourceStopped,
) -> Result<(), UnpauseError> {
    // The proof's domain is the source's, never the shell's.
    if proof.domid == shell {
        return Err(UnpauseError::ShellIsSource { shell });
    }
    unpause(ts, shell)
}

/// Unpauses the shell on the destination host of a two-host migration;
/// only possible with the source host's word that its guest cannot run
/// (the source's domain ids are another host's: nothing to compare).
pub fn unpause_received_shell<T: Toolstack + ?Sized>(
    ts: &mut T,
    shell: u32,
    _notice: &StoppedNotice,
) -> Result<(), UnpauseError> {
    unpause(ts, shell)
}

/// Proof, for `depmig restore`, that no copy of the restored guest runs on
/// this host: no domain carries its name (a save destroyed the guest it
/// saved; one that was kept or restored before under this name is found).
/// Only [`no_copy_named`] makes one.
#[derive(Debug)]
pub struct NoCopyHere {
    _private: (),
}

/// Checks that no domain on this host is named `guest`.
pub fn no_copy_named<T: Toolstack + ?Sized>(ts: &mut T, guest: &str) -> Result<NoCopyHere, String> {
    match super::super::domains::domid_of(ts, guest) {
        Ok(None) => Ok(NoCopyHere { _private: () }),
        Ok(Some(id)) => Err(format!(
            "a domain named `{guest}` exists (domain {id}): the saved guest is not restored beside it"
        )),
        Err(e) => Err(e.to_string()),
    }
}

/// Unpauses a shell restored from a save file; only possible with proof
/// that no copy of the guest runs here.
pub fn unpause_restored_shell<T: Toolstack + ?Sized>(
    ts: &mut T,
    shell: u32,
    _proof: &NoCopyHere,
) -> Result<(), UnpauseError> {
    unpause(ts, shell)
}

/// The unpause itself: a domctl where the host offers it, else `xl`.
fn unpause<T: Toolstack + ?Sized>(ts: &mut T, shell: u32) -> Result<(), UnpauseError> {
    if let Some(Ok(())) = ts.domctl_unpause(shell) {
        return Ok(());
    }
    xl_ok(ts, &["unpause", &shell.to_string()], || {
        format!("xl unpause {shell}")
    })
    .map_err(UnpauseError::Xl)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The texts the command has always printed (the rig reads some).
    #[test]
    fn messages_keep_their_text() {
        let state = DomState {
            domid: 5,
            paused: false,
            shutdown: None,
            dying: false,
        };
        assert_eq!(
            NotStopped::NotSuspended { domid: 5, state }.to_string(),
            format!("the source guest (domain 5) is not suspended: {state:?}")
        );
        assert_eq!(
            NotStopped::NotDestroyed {
                domid: 5,
                destroy: None
            }
            .to_string(),
            "source guest (domain 5) still exists after xl destroy"
        );
        assert_eq!(
            NotStopped::NotDestroyed {
                domid: 5,
                destroy: Some("refused".into())
            }
            .to_string(),
            "source guest (domain 5) still exists after xl destroy (xl destroy: refused)"
        );
        let xl = XlError::Failed {
            command: "xl unpause 9".into(),
            reason: "boom".into(),
        };
        assert_eq!(NotStopped::Xl(xl.clone()).to_string(), "xl unpause 9: boom");
        assert_eq!(
            UnpauseError::ShellIsSource { shell: 9 }.to_string(),
            "refusing to unpause domain 9: it is the source"
        );
        assert_eq!(UnpauseError::Xl(xl).to_string(), "xl unpause 9: boom");
    }
}
