//! The toolstack boundary: everything `depmig migrate` does to the host.
//!
//! The orchestration only talks to Xen through [`Toolstack`]: `xl` and the
//! `xenstore-*` commands, files, the clock and the random source. The real
//! implementation ([`System`]) runs the commands; the tests drive the
//! orchestration with a scripted fake that models domains and xenstore.
//!
//! This module and its children import nothing from the orchestration
//! ([`crate::migrate`]) or the dom0 bitmap route ([`crate::bitmap`]): both
//! are built on it, never the other way round.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use depmig_privcmd::DirtyCounts;

mod buffer;
mod domain;
pub mod errno;
mod system;
pub mod xsconn;

pub use buffer::{BufferError, GuestBuffer};
pub use domain::{parse_xl_list, parse_xl_list_all, DomState};
pub use system::System;

/// What a command printed and how it ended.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CmdOutput {
    /// Exit status 0.
    pub ok: bool,
    /// Its standard output.
    pub stdout: String,
    /// Its standard error.
    pub stderr: String,
}

impl CmdOutput {
    /// The last non-empty line of stderr (or stdout), for error messages.
    pub fn last_line(&self) -> String {
        let pick = |s: &str| {
            s.lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .map(str::trim)
                .map(String::from)
        };
        pick(&self.stderr)
            .or_else(|| pick(&self.stdout))
            .unwrap_or_else(|| "no output".to_string())
    }

    /// What a failed `xl` said: its lines naming an error, in order (libxl
    /// reports the cause first and its clean-up failures after it, so the
    /// last line alone can hide the cause), at most [`MAX_ERROR_LINES`] of
    /// them joined by " | "; the last line when none names an error.
    pub fn error_lines(&self) -> String {
        let errors: Vec<&str> = self
            .stderr
            .lines()
            .chain(self.stdout.lines())
            .map(str::trim)
            .filter(|l| l.to_ascii_lowercase().contains("error") || l.contains("failed"))
            .collect();
        if errors.is_empty() {
            return self.last_line();
        }
        let skip = errors.len().saturating_sub(MAX_ERROR_LINES);
        let mut text = errors[..MAX_ERROR_LINES.min(errors.len())].join(" | ");
        if skip > 0 {
            text.push_str(&format!(" | ({skip} more)"));
        }
        text
    }
}

/// Error lines of a failed command kept in its message.
pub const MAX_ERROR_LINES: usize = 6;

/// A toolstack operation that could not be carried out at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolError {
    /// The program could not be started (missing, not executable).
    Spawn {
        /// The program.
        program: String,
        /// The operating system's reason.
        reason: String,
    },
    /// A xenstore command failed.
    Xenstore {
        /// What was attempted, e.g. `write /local/domain/3/depmig/migrate/go`.
        what: String,
        /// The command's last line of output.
        reason: String,
    },
    /// A hypercall through privcmd failed: a domctl (the handoff falls
    /// back to `xl`), a memory op, or a mapping of another domain's frames.
    Domctl {
        /// What was attempted, e.g. `unpause 7`.
        what: String,
        /// The hypervisor's or the kernel's reason.
        reason: String,
        /// Its error number, when it had one.
        errno: Option<i32>,
    },
    /// A file could not be read or written.
    File {
        /// The file.
        path: String,
        /// The operating system's reason.
        reason: String,
    },
}

impl fmt::Display for ToolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ToolError::Spawn { program, reason } => write!(f, "cannot run {program}: {reason}"),
            ToolError::Xenstore { what, reason } => write!(f, "xenstore {what}: {reason}"),
            ToolError::Domctl { what, reason, .. } => write!(f, "domctl {what}: {reason}"),
            ToolError::File { path, reason } => write!(f, "{path}: {reason}"),
        }
    }
}

impl std::error::Error for ToolError {}

impl ToolError {
    /// The (positive) error number of a failed hypercall or mapping, when
    /// it had one.
    pub fn errno(&self) -> Option<i32> {
        match self {
            ToolError::Domctl { errno, .. } => *errno,
            _ => None,
        }
    }
}

/// One xenstore permission: a domain and what it may do (`xenstore-chmod` syntax).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Perm {
    /// `nD`: no access (as the first entry: owner D, others nothing).
    None(u32),
    /// `rD`: read.
    Read(u32),
    /// `wD`: write.
    Write(u32),
    /// `bD`: read and write.
    Both(u32),
}

impl fmt::Display for Perm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Perm::None(d) => write!(f, "n{d}"),
            Perm::Read(d) => write!(f, "r{d}"),
            Perm::Write(d) => write!(f, "w{d}"),
            Perm::Both(d) => write!(f, "b{d}"),
        }
    }
}

/// The host as the orchestration sees it.
pub trait Toolstack {
    /// Runs `xl` with these arguments.
    fn xl(&mut self, args: &[&str]) -> Result<CmdOutput, ToolError>;
    /// Reads a xenstore node; `Ok(None)` when it does not exist (or is unreadable).
    fn xs_read(&mut self, path: &str) -> Result<Option<String>, ToolError>;
    /// Writes a xenstore node, creating it.
    fn xs_write(&mut self, path: &str, value: &str) -> Result<(), ToolError>;
    /// Sets a node's permissions; the first entry names the owner.
    fn xs_chmod(&mut self, path: &str, perms: &[Perm]) -> Result<(), ToolError>;
    /// Reads a whole (small) file.
    fn read_file(&mut self, path: &Path) -> Result<Vec<u8>, ToolError>;
    /// Writes a file, replacing it.
    fn write_file(&mut self, path: &Path, data: &[u8]) -> Result<(), ToolError>;
    /// Whether a file exists.
    fn file_exists(&mut self, path: &Path) -> bool;
    /// A directory for generated xl configs.
    fn work_dir(&mut self) -> PathBuf;
    /// Fills `buf` with random bytes from the system's source.
    fn random(&mut self, buf: &mut [u8]) -> Result<(), ToolError>;
    /// Milliseconds on a monotonic clock.
    fn now_ms(&mut self) -> u64;
    /// Wall-clock milliseconds since the Unix epoch (for reports).
    fn unix_ms(&mut self) -> u64;
    /// Sleeps.
    fn sleep(&mut self, d: Duration);
    /// How xenstore is reached, for the log.
    fn xenstore_route(&mut self) -> String {
        "xenstore commands".into()
    }
    /// Domain `domid`'s state by one hypercall, where the host offers that
    /// (`None`: use `xl list`; `Some(Ok(None))`: no such domain).
    fn domctl_state(&mut self, _domid: u32) -> Option<Result<Option<DomState>, ToolError>> {
        None
    }
    /// Pauses domain `domid` by one hypercall (`None`: use `xl pause`).
    fn domctl_pause(&mut self, _domid: u32) -> Option<Result<(), ToolError>> {
        None
    }
    /// Unpauses domain `domid` by one hypercall (`None`: use `xl unpause`).
    fn domctl_unpause(&mut self, _domid: u32) -> Option<Result<(), ToolError>> {
        None
    }
    /// How domains are paused, unpaused and looked at in the handoff, for
    /// the log.
    fn domctl_route(&mut self) -> String {
        "xl".into()
    }
    /// How many frames domain `domid`'s address space spans
    /// (`XENMEM_maximum_gpfn` + 1), where the host offers the hypercall
    /// (`None`: it does not).
    fn guest_frame_count(&mut self, _domid: u32) -> Option<Result<u64, ToolError>> {
        None
    }
    /// The dom0 bitmap route's one operation: a log-dirty CLEAN of domain
    /// `guest` (with `LOGDIRTY_FINAL` for `final_pass`) whose bitmap Xen
    /// writes into `buffer`, frames of domain `appliance` that dom0 maps
    /// (once, kept until [`Toolstack::logdirty_release`]); returns Xen's
    /// counters. `None` where the host offers no hypercalls.
    fn logdirty_clean_into(
        &mut self,
        _guest: u32,
        _appliance: u32,
        _buffer: &GuestBuffer,
        _final_pass: bool,
    ) -> Option<Result<DirtyCounts, ToolError>> {
        None
    }
    /// Drops dom0's mapping of the appliance's bitmap buffer, if any: until
    /// then that appliance, once destroyed, stays dying.
    fn logdirty_release(&mut self) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perms_use_xenstore_chmod_syntax() {
        let p = [Perm::None(7), Perm::Both(9), Perm::Read(0), Perm::Write(3)];
        let s: Vec<String> = p.iter().map(Perm::to_string).collect();
        assert_eq!(s, ["n7", "b9", "r0", "w3"]);
    }

    #[test]
    fn error_lines_keep_the_cause_before_the_cleanup() {
        let o = CmdOutput {
            ok: false,
            stdout: "Parsing config from /tmp/a.cfg\n".into(),
            stderr: "libxl: error: libxl_create.c:1234:domcreate_x: Domain 7:cannot make domain: -3\n\
                     libxl: error: libxl_domain.c:1060:domain_destroy_cb: Domain 7:Destruction of domain failed\n"
                .into(),
        };
        assert_eq!(
            o.error_lines(),
            "libxl: error: libxl_create.c:1234:domcreate_x: Domain 7:cannot make domain: -3 | \
             libxl: error: libxl_domain.c:1060:domain_destroy_cb: Domain 7:Destruction of domain failed"
        );
        let quiet = CmdOutput {
            ok: false,
            stdout: String::new(),
            stderr: "a\nb\n".into(),
        };
        assert_eq!(quiet.error_lines(), "b");
        let many = CmdOutput {
            ok: false,
            stdout: String::new(),
            stderr: (0..9).map(|i| format!("error {i}\n")).collect(),
        };
        assert_eq!(
            many.error_lines(),
            "error 0 | error 1 | error 2 | error 3 | error 4 | error 5 | (3 more)"
        );
    }

    #[test]
    fn last_line_prefers_stderr() {
        let o = CmdOutput {
            ok: false,
            stdout: "a\nb\n".into(),
            stderr: "x\ny\n\n".into(),
        };
        assert_eq!(o.last_line(), "y");
        let o = CmdOutput {
            ok: false,
            stdout: "a\nb\n".into(),
            stderr: String::new(),
        };
        assert_eq!(o.last_line(), "b");
        assert_eq!(CmdOutput::default().last_line(), "no output");
    }
}
