//! The real host: `xl` and the `xenstore-*` commands, xenstored's socket
//! and `/dev/xen/privcmd`.

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use depmig_privcmd::{DirtyCounts, ForeignMapping, OpenError, Privcmd};
use xenstore_wire::XsError;

use super::errno::EINVAL;
use super::xsconn::{self, CallError, XsSocket};
use super::{CmdOutput, DomState, GuestBuffer, Perm, ToolError, Toolstack};

/// Why the hypercall route is not taken (the handoff then uses `xl`).
#[derive(Debug)]
enum NoPrivcmd {
    /// stand-in commands: `xl` and `xenstore-*` are stand-ins (under test),
    /// so the real hypervisor must not be touched.
    StandIn,
    /// `/dev/xen/privcmd` cannot carry the domctls (privcmd's message).
    Open(OpenError),
}

impl fmt::Display for NoPrivcmd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NoPrivcmd::StandIn => f.write_str("stand-in commands"),
            NoPrivcmd::Open(e) => e.fmt(f),
        }
    }
}

/// The real host: runs `xl` and `xenstore-*` from `PATH`; reads and
/// writes xenstore over xenstored's socket when it can (see [`xsconn`]).
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
    privcmd: Option<Result<Privcmd, NoPrivcmd>>,
    /// The source appliance's bitmap buffer, mapped for the dom0 bitmap
    /// route.
    bitmap: Option<ForeignMapping>,
}

impl System {
    /// A host whose generated files go to `dir` (created if missing).
    pub fn new(dir: PathBuf) -> System {
        System {
            start: Instant::now(),
            dir,
            bin: None,
            xs: None,
            xs_paths: xsconn::socket_candidates(),
            privcmd: None,
            bitmap: None,
        }
    }

    /// The same, with `xl` and `xenstore-*` taken from `bin` instead of `PATH`
    /// (and xenstore reached only through those commands).
    pub fn with_bin_dir(dir: PathBuf, bin: PathBuf) -> System {
        System {
            bin: Some(bin),
            xs_paths: Vec::new(),
            privcmd: Some(Err(NoPrivcmd::StandIn)),
            ..System::new(dir)
        }
    }

    /// The hypercall route, opened on first use; `None` (for good) when it
    /// cannot be: no privcmd, a Xen release whose domctl interface depmig
    /// does not know, or a hypervisor that refuses the domctls.
    fn privcmd(&mut self) -> Option<&mut Privcmd> {
        if self.privcmd.is_none() {
            self.privcmd = Some(Privcmd::open().map_err(NoPrivcmd::Open));
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
            errno: e.raw_os_error(),
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

    fn guest_frame_count(&mut self, domid: u32) -> Option<Result<u64, ToolError>> {
        self.via_privcmd("maximum_gpfn", domid, |p| p.max_gpfn(domid))
            .map(|r| r.map(|m| m.saturating_add(1)))
    }

    fn logdirty_clean_into(
        &mut self,
        guest: u32,
        appliance: u32,
        buffer: &GuestBuffer,
        final_pass: bool,
    ) -> Option<Result<DirtyCounts, ToolError>> {
        self.privcmd()?;
        let Some(Ok(p)) = self.privcmd.as_mut() else {
            return None;
        };
        let (first, frames) = (buffer.first_gfn(), buffer.frames());
        // One mapping serves every request of the migration; another
        // buffer (which the caller refuses before it gets here) would get
        // its own.
        if !self
            .bitmap
            .as_ref()
            .is_some_and(|m| m.is(appliance, first, frames))
        {
            self.bitmap = None;
            match p.map_foreign(appliance, first, frames) {
                Ok(m) => self.bitmap = Some(m),
                Err(e) => {
                    return Some(Err(ToolError::Domctl {
                        what: format!("map {frames} frames of domain {appliance} at {first:#x}"),
                        reason: e.to_string(),
                        errno: Some(e.errno()),
                    }))
                }
            }
        }
        let m = self.bitmap.as_mut()?;
        Some(
            p.logdirty_clean_into(guest, m, buffer.pages(), final_pass)
                .map_err(|e| ToolError::Domctl {
                    what: format!(
                        "shadow_op clean{} {guest}",
                        if final_pass { " final" } else { "" }
                    ),
                    reason: e.to_string(),
                    // A bitmap too large for the mapping is refused
                    // before any call, without an OS error number.
                    errno: e.raw_os_error().or_else(|| {
                        (e.kind() == std::io::ErrorKind::InvalidInput).then_some(EINVAL)
                    }),
                }),
        )
    }

    fn logdirty_release(&mut self) {
        self.bitmap = None;
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
