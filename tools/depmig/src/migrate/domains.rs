//! Domains as the orchestration sees them through `xl`: look-ups by name
//! or id, creation, and teardown in the order mappings require.

use std::fmt;
use std::path::Path;
use std::time::Duration;

use super::{duration_ms, Run};
use crate::toolstack::{parse_xl_list, parse_xl_list_all, DomState, ToolError, Toolstack};

/// An `xl` command that failed, or whose output could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum XlError {
    /// `xl` could not be run (the toolstack's own message).
    Tool(ToolError),
    /// `<command>: <reason>`: `xl` ran and failed; its last line of output.
    Failed {
        /// The command, e.g. `xl unpause 7`.
        command: String,
        /// Its last line of output.
        reason: String,
    },
    /// cannot read `<command>` output: `<output>`
    Unreadable {
        /// The command, e.g. `xl list 7`.
        command: String,
        /// What it printed.
        output: String,
    },
    /// xl domid `<name>` printed `<output>`
    NotADomid {
        /// The domain name asked for.
        name: String,
        /// What it printed.
        output: String,
    },
    /// xl create of `<name>` succeeded but the domain is not there
    CreatedNotThere {
        /// The domain name created.
        name: String,
    },
}

impl fmt::Display for XlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            XlError::Tool(e) => e.fmt(f),
            XlError::Failed { command, reason } => write!(f, "{command}: {reason}"),
            XlError::Unreadable { command, output } => {
                write!(f, "cannot read `{command}` output: {output}")
            }
            XlError::NotADomid { name, output } => write!(f, "xl domid {name} printed `{output}`"),
            XlError::CreatedNotThere { name } => {
                write!(
                    f,
                    "xl create of {name} succeeded but the domain is not there"
                )
            }
        }
    }
}

impl std::error::Error for XlError {}

impl From<ToolError> for XlError {
    fn from(e: ToolError) -> XlError {
        XlError::Tool(e)
    }
}

/// Runs `xl` with `args`; a command that ran but failed is
/// [`XlError::Failed`] under `command` (how messages name it).
pub(super) fn xl_ok<T: Toolstack + ?Sized>(
    ts: &mut T,
    args: &[&str],
    command: impl FnOnce() -> String,
) -> Result<(), XlError> {
    let out = ts.xl(args)?;
    if out.ok {
        Ok(())
    } else {
        Err(XlError::Failed {
            command: command(),
            reason: out.last_line(),
        })
    }
}

/// Looks a domain up by name or id; `Ok(None)` when there is none.
pub(super) fn domain_state<T: Toolstack + ?Sized>(
    ts: &mut T,
    ident: &str,
) -> Result<Option<DomState>, XlError> {
    let out = ts.xl(&["list", ident])?;
    if out.ok {
        return parse_xl_list(&out.stdout)
            .map(Some)
            .ok_or_else(|| XlError::Unreadable {
                command: format!("xl list {ident}"),
                output: out.stdout.trim().to_string(),
            });
    }
    let e = out.stderr.to_ascii_lowercase();
    if e.contains("invalid domain identifier") || e.contains("does not exist") {
        Ok(None)
    } else {
        Err(XlError::Failed {
            command: format!("xl list {ident}"),
            reason: out.last_line(),
        })
    }
}

/// Every domain's state from one `xl list` (one command where several
/// `xl list <id>` would each cost a process in a slow dom0).
fn all_domain_states<T: Toolstack + ?Sized>(ts: &mut T) -> Result<Vec<DomState>, XlError> {
    let out = ts.xl(&["list"])?;
    if !out.ok {
        return Err(XlError::Failed {
            command: "xl list".into(),
            reason: out.last_line(),
        });
    }
    let v = parse_xl_list_all(&out.stdout);
    if v.is_empty() {
        // dom0 is always listed.
        return Err(XlError::Unreadable {
            command: "xl list".into(),
            output: out.stdout.trim().to_string(),
        });
    }
    Ok(v)
}

/// A domain's state as one `xl list` showed it (`Ok(None)`: not listed).
pub(super) type Listed = Result<Option<DomState>, XlError>;

/// The states of domains `a` and `b` from one `xl list`; a failed list is
/// the error of both.
pub(super) fn two_domain_states<T: Toolstack + ?Sized>(
    ts: &mut T,
    a: u32,
    b: u32,
) -> (Listed, Listed) {
    // Two hypercalls where the host offers them; any failure: one `xl list`.
    if let Some(Ok(sa)) = ts.domctl_state(a) {
        if let Some(Ok(sb)) = ts.domctl_state(b) {
            return (Ok(sa), Ok(sb));
        }
    }
    match all_domain_states(ts) {
        Ok(v) => {
            let find = |id: u32| v.iter().find(|d| d.domid == id).copied();
            (Ok(find(a)), Ok(find(b)))
        }
        Err(e) => (Err(e.clone()), Err(e)),
    }
}

/// Looks a domain's id up by name; `Ok(None)` when there is none.
pub(super) fn domid_of<T: Toolstack + ?Sized>(
    ts: &mut T,
    name: &str,
) -> Result<Option<u32>, XlError> {
    let out = ts.xl(&["domid", name])?;
    if !out.ok {
        return Ok(None);
    }
    out.stdout
        .trim()
        .parse()
        .map(Some)
        .map_err(|_| XlError::NotADomid {
            name: name.to_string(),
            output: out.stdout.trim().to_string(),
        })
}

/// Why a destroyed domain is not gone.
#[derive(Debug, Clone)]
pub(super) enum NotGone {
    /// Torn down but held: another domain still maps its memory. It can
    /// never run again.
    Dying,
    /// Still there, not even dying; `xl destroy`'s complaint, if any.
    Remains(String),
    /// Its state could not be read, or `xl` could not be run.
    Unknown(XlError),
}

impl fmt::Display for NotGone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NotGone::Dying => f.write_str("still dying (a domain still maps its memory)"),
            NotGone::Remains(why) => write!(f, "not destroyed: {why}"),
            NotGone::Unknown(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for NotGone {}

impl<T: Toolstack + ?Sized> Run<'_, T> {
    /// Creates a domain, paused, from `cfg` (with `extra` settings) and
    /// returns its id; a create that failed leaves nothing behind.
    pub(super) fn create_domain(
        &mut self,
        cfg: &Path,
        extra: &[String],
        name: &str,
    ) -> Result<u32, XlError> {
        let cfg_s = cfg.display().to_string();
        let mut args: Vec<&str> = vec!["create", "-p", &cfg_s];
        args.extend(extra.iter().map(String::as_str));
        let out = self.ts.xl(&args)?;
        // A failed create may still leave a domain behind: look it up either way.
        let id = domid_of(self.ts, name)?;
        let failed = || XlError::Failed {
            command: format!("xl create {name}"),
            reason: out.error_lines(),
        };
        match (out.ok, id) {
            (true, Some(id)) => Ok(id),
            (true, None) => Err(XlError::CreatedNotThere {
                name: name.to_string(),
            }),
            (false, Some(id)) => {
                self.destroy_quietly(id, name);
                Err(failed())
            }
            (false, None) => Err(failed()),
        }
    }

    /// Destroys a domain and waits for it to go; a failure is only said.
    pub(super) fn destroy_quietly(&mut self, domid: u32, what: &str) {
        if let Err(e) = self.destroy_and_wait(domid) {
            self.say(&format!("warning: {what} (domain {domid}): {e}"));
        }
    }

    /// Destroys a domain and waits until it is gone.
    pub(super) fn destroy_and_wait(&mut self, domid: u32) -> Result<(), NotGone> {
        match self.destroy_all(&[domid]).pop() {
            Some((_, e)) => Err(e),
            None => Ok(()),
        }
    }

    /// Destroys the domains in the order given, then waits until every one
    /// is gone, all within one `gone` period; returns those that are not,
    /// with why. A domain that another still maps stays dying until that
    /// mapper unmaps or is torn down itself, so mappers come first: an
    /// appliance before the domain it maps (the destination appliance
    /// before the shell, the source appliance before the source guest),
    /// dead or alive. Waiting for a mapped domain before its mapper went
    /// would wait out the whole period for nothing.
    pub(super) fn destroy_all(&mut self, domids: &[u32]) -> Vec<(u32, NotGone)> {
        let mut refused: Vec<(u32, String)> = Vec::new();
        let mut failed: Vec<(u32, NotGone)> = Vec::new();
        for &domid in domids {
            match self.ts.xl(&["destroy", &domid.to_string()]) {
                Ok(out) if out.ok => {}
                Ok(out) => refused.push((domid, out.last_line())),
                Err(e) => failed.push((domid, NotGone::Unknown(e.into()))),
            }
        }
        let start = self.ts.now_ms();
        let mut waiting: Vec<u32> = domids
            .iter()
            .copied()
            .filter(|d| failed.iter().all(|(f, _)| f != d))
            .collect();
        loop {
            let mut still = Vec::new();
            for &domid in &waiting {
                match domain_state(self.ts, &domid.to_string()) {
                    Ok(None) => {}
                    Ok(Some(s)) => still.push((domid, s)),
                    Err(e) => failed.push((domid, NotGone::Unknown(e))),
                }
            }
            waiting.retain(|d| still.iter().any(|(s, _)| s == d));
            if still.is_empty() {
                return failed;
            }
            if self.ts.now_ms().saturating_sub(start) >= duration_ms(self.t.gone) {
                for (domid, s) in still {
                    failed.push((
                        domid,
                        if s.dying {
                            NotGone::Dying
                        } else {
                            NotGone::Remains(
                                refused
                                    .iter()
                                    .find(|(r, _)| *r == domid)
                                    .map_or_else(|| "still there".into(), |(_, why)| why.clone()),
                            )
                        },
                    ));
                }
                return failed;
            }
            self.ts.sleep(Duration::from_millis(500));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The texts the command has always printed (the rig reads some).
    #[test]
    fn messages_keep_their_text() {
        let spawn = ToolError::Spawn {
            program: "xl".into(),
            reason: "No such file or directory (os error 2)".into(),
        };
        assert_eq!(
            XlError::from(spawn.clone()).to_string(),
            "cannot run xl: No such file or directory (os error 2)"
        );
        let failed = XlError::Failed {
            command: "xl list 7".into(),
            reason: "boom".into(),
        };
        assert_eq!(failed.to_string(), "xl list 7: boom");
        assert_eq!(
            XlError::Unreadable {
                command: "xl list".into(),
                output: "junk".into()
            }
            .to_string(),
            "cannot read `xl list` output: junk"
        );
        assert_eq!(
            XlError::NotADomid {
                name: "guest".into(),
                output: "x".into()
            }
            .to_string(),
            "xl domid guest printed `x`"
        );
        assert_eq!(
            XlError::CreatedNotThere {
                name: "guest--depmig-src".into()
            }
            .to_string(),
            "xl create of guest--depmig-src succeeded but the domain is not there"
        );
        assert_eq!(
            NotGone::Dying.to_string(),
            "still dying (a domain still maps its memory)"
        );
        assert_eq!(
            NotGone::Remains("still there".into()).to_string(),
            "not destroyed: still there"
        );
        assert_eq!(NotGone::Unknown(failed).to_string(), "xl list 7: boom");
    }
}
