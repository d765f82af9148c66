//! The toolstack boundary: everything `depmig migrate` does to the host.
//!
//! The orchestration only talks to Xen through [`Toolstack`]: `xl` and the
//! `xenstore-*` commands, files, the clock and the random source. The real
//! implementation runs the commands; the tests drive the orchestration with a
//! scripted fake that models domains and xenstore.

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use xenstore_wire::XsError;

use crate::migrate::DomState;
use crate::xsconn::{CallError, XsSocket};
use depmig_privcmd::Privcmd;

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
}

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
    /// A domain-control hypercall failed (the caller falls back to `xl`).
    Domctl {
        /// What was attempted, e.g. `unpause 7`.
        what: String,
        /// The hypervisor's or the kernel's reason.
        reason: String,
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
            ToolError::Domctl { what, reason } => write!(f, "domctl {what}: {reason}"),
            ToolError::File { path, reason } => write!(f, "{path}: {reason}"),
        }
    }
}

impl std::error::Error for ToolError {}

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
}

/// The real host: runs `xl` and `xenstore-*` from `PATH`; reads and
/// writes xenstore over xenstored's socket when it can (see [`crate::xsconn`]).
pub struct System {
    start: Instant,
    dir: PathBuf,
    bin: Option<PathBuf>,
    /// The socket connection, once made.
    xs: Option<XsSocket>,
    /// Where to look for the socket; empty when the commands are the only way
    /// (stand-in commands under test, or no socket found).
    xs_paths: Vec<PathBuf>,
    /// `/dev/xen/privcmd`, once opened; `Err` (for good) when it cannot be,
    /// or under test.
    privcmd: Option<Result<Privcmd, String>>,
}

impl System {
    /// A host whose generated files go to `dir` (created if missing).
    pub fn new(dir: PathBuf) -> System {
        System {
            start: Instant::now(),
            dir,
            bin: None,
            xs: None,
            xs_paths: crate::xsconn::socket_candidates(),
            privcmd: None,
        }
    }

    /// The same, with `xl` and `xenstore-*` taken from `bin` instead of `PATH`
    /// (and xenstore reached only through those commands).
    pub fn with_bin_dir(dir: PathBuf, bin: PathBuf) -> System {
        System {
            bin: Some(bin),
            xs_paths: Vec::new(),
            privcmd: Some(Err("stand-in commands".into())),
            ..System::new(dir)
        }
    }

    /// The hypercall route, opened on first use; `None` (for good) when it
    /// cannot be: no privcmd, or the hypervisor refuses its domctls (another
    /// interface version).
    fn privcmd(&mut self) -> Option<&mut Privcmd> {
        if self.privcmd.is_none() {
            self.privcmd = Some(Privcmd::open().map_err(|e| e.to_string()));
        }
        self.privcmd.as_mut()?.as_mut().ok()
    }

    /// Runs a domctl; a failure is the caller's to fall back from (`xl`).
    fn via_privcmd<R>(
        &mut self,
        what: &str,
        domid: u32,
        op: impl FnOnce(&mut Privcmd) -> std::io::Result<R>,
    ) -> Option<Result<R, ToolError>> {
        let p = self.privcmd()?;
        Some(op(p).map_err(|e| ToolError::Domctl {
            what: format!("{what} {domid}"),
            reason: e.to_string(),
        }))
    }

    /// The socket connection, made on first use; `None` (for good) when no
    /// socket accepts.
    fn socket(&mut self) -> Option<&mut XsSocket> {
        if self.xs.is_none() && !self.xs_paths.is_empty() {
            self.xs = XsSocket::connect_any(&self.xs_paths);
            if self.xs.is_none() {
                self.xs_paths.clear();
            }
        }
        self.xs.as_mut()
    }

    /// Runs `op` over the socket. `None` means "use the commands": no
    /// socket, or the connection broke (it is dropped; the next call
    /// connects again).
    fn over_socket<R>(
        &mut self,
        op: impl FnOnce(&mut XsSocket) -> Result<R, CallError>,
    ) -> Option<Result<R, XsError>> {
        let sock = self.socket()?;
        match op(sock) {
            Ok(r) => Some(Ok(r)),
            Err(CallError::Xs(e)) => Some(Err(e)),
            Err(CallError::Broken(_)) => {
                self.xs = None;
                None
            }
        }
    }

    fn run(&self, name: &str, args: &[&str]) -> Result<CmdOutput, ToolError> {
        let program = match &self.bin {
            Some(b) => b.join(name),
            None => PathBuf::from(name),
        };
        let program = program.display().to_string();
        let out = Command::new(&program)
            .args(args)
            .output()
            .map_err(|e| ToolError::Spawn {
                program: program.to_string(),
                reason: e.to_string(),
            })?;
        Ok(CmdOutput {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }
}

impl Toolstack for System {
    fn xl(&mut self, args: &[&str]) -> Result<CmdOutput, ToolError> {
        self.run("xl", args)
    }

    fn xs_read(&mut self, path: &str) -> Result<Option<String>, ToolError> {
        match self.over_socket(|x| x.read(path)) {
            Some(Ok(v)) => return Ok(v.map(|v| String::from_utf8_lossy(&v).into_owned())),
            Some(Err(e)) => {
                return Err(ToolError::Xenstore {
                    what: format!("read {path}"),
                    reason: format!("{e:?}"),
                })
            }
            None => {}
        }
        // -R: the value's bytes as they are (no escaping, no newline added).
        let out = self.run("xenstore-read", &["-R", path])?;
        if out.ok {
            return Ok(Some(out.stdout));
        }
        // xenstore-read says "couldn't read path" for a missing or
        // unreadable node; anything else (no xenstored) is an error.
        if out.stderr.contains("couldn't read path") {
            Ok(None)
        } else {
            Err(ToolError::Xenstore {
                what: format!("read {path}"),
                reason: out.last_line(),
            })
        }
    }

    fn xs_write(&mut self, path: &str, value: &str) -> Result<(), ToolError> {
        match self.over_socket(|x| x.write(path, value.as_bytes())) {
            Some(Ok(())) => return Ok(()),
            Some(Err(e)) => {
                return Err(ToolError::Xenstore {
                    what: format!("write {path}"),
                    reason: format!("{e:?}"),
                })
            }
            None => {}
        }
        let out = self.run("xenstore-write", &["-R", path, value])?;
        if out.ok {
            Ok(())
        } else {
            Err(ToolError::Xenstore {
                what: format!("write {path}"),
                reason: out.last_line(),
            })
        }
    }

    fn xs_chmod(&mut self, path: &str, perms: &[Perm]) -> Result<(), ToolError> {
        let specs: Vec<String> = perms.iter().map(Perm::to_string).collect();
        let mut args: Vec<&str> = vec![path];
        args.extend(specs.iter().map(String::as_str));
        let out = self.run("xenstore-chmod", &args)?;
        if out.ok {
            Ok(())
        } else {
            Err(ToolError::Xenstore {
                what: format!("chmod {path} {}", specs.join(" ")),
                reason: out.last_line(),
            })
        }
    }

    fn read_file(&mut self, path: &Path) -> Result<Vec<u8>, ToolError> {
        let file_err = |e: std::io::Error| ToolError::File {
            path: path.display().to_string(),
            reason: e.to_string(),
        };
        // Bounded: configs, keys and reports are small.
        let mut data = Vec::new();
        std::fs::File::open(path)
            .and_then(|f| f.take(16 << 20).read_to_end(&mut data))
            .map_err(file_err)?;
        Ok(data)
    }

    fn write_file(&mut self, path: &Path, data: &[u8]) -> Result<(), ToolError> {
        std::fs::write(path, data).map_err(|e| ToolError::File {
            path: path.display().to_string(),
            reason: e.to_string(),
        })
    }

    fn file_exists(&mut self, path: &Path) -> bool {
        path.is_file()
    }

    fn work_dir(&mut self) -> PathBuf {
        // Best effort: if it cannot be made, writing the config says why.
        let _ = std::fs::create_dir_all(&self.dir);
        self.dir.clone()
    }

    fn random(&mut self, buf: &mut [u8]) -> Result<(), ToolError> {
        std::fs::File::open("/dev/urandom")
            .and_then(|mut f| f.read_exact(buf))
            .map_err(|e| ToolError::File {
                path: "/dev/urandom".into(),
                reason: e.to_string(),
            })
    }

    fn now_ms(&mut self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn unix_ms(&mut self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0)
    }

    fn sleep(&mut self, d: Duration) {
        std::thread::sleep(d);
    }

    fn xenstore_route(&mut self) -> String {
        match self.socket() {
            Some(x) => format!("xenstored's socket {}", x.path().display()),
            None => "xenstore commands".into(),
        }
    }

    fn domctl_state(&mut self, domid: u32) -> Option<Result<Option<DomState>, ToolError>> {
        self.via_privcmd("getdomaininfo", domid, |p| p.info(domid))
            .map(|r| r.map(|info| info.map(|i| DomState::from_info(domid, i))))
    }

    fn domctl_pause(&mut self, domid: u32) -> Option<Result<(), ToolError>> {
        self.via_privcmd("pause", domid, |p| p.pause(domid))
    }

    fn domctl_unpause(&mut self, domid: u32) -> Option<Result<(), ToolError>> {
        self.via_privcmd("unpause", domid, |p| p.unpause(domid))
    }

    fn domctl_route(&mut self) -> String {
        match self.privcmd() {
            Some(_) => "domctls through /dev/xen/privcmd (xl when one fails)".into(),
            None => match &self.privcmd {
                Some(Err(e)) => format!("xl (no domctls: {e})"),
                _ => "xl".into(),
            },
        }
    }
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

    #[test]
    fn the_real_host_reads_files_and_random_bytes() {
        let dir = std::env::temp_dir().join(format!("depmig-cli-test-{}", std::process::id()));
        let mut sys = System::new(dir.clone());
        let f = sys.work_dir().join("x.cfg");
        sys.write_file(&f, b"hello").unwrap();
        assert!(sys.file_exists(&f));
        assert_eq!(sys.read_file(&f).unwrap(), b"hello");
        let mut a = [0u8; 32];
        let mut b = [0u8; 32];
        sys.random(&mut a).unwrap();
        sys.random(&mut b).unwrap();
        assert_ne!(a, b, "two draws of 32 random bytes were equal");
        assert!(matches!(
            sys.read_file(&dir.join("missing")),
            Err(ToolError::File { .. })
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
