//! A scripted toolstack for the orchestration tests: domains with xl's
//! states, xenstore with xenstored's permission rules, files, and a clock
//! that only moves when the code under test sleeps. Appliances and the guest
//! are played by a behaviour closure run at every sleep. The fake records
//! every operation and every broken rule (two copies running, an appliance
//! writing where it may not).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use depmig_privcmd::DirtyCounts;

use crate::toolstack::errno::{EACCES, EPERM};
use crate::toolstack::{CmdOutput, DomState, GuestBuffer, Perm, ToolError, Toolstack};
use crate::xlcfg;

/// A domain.
#[derive(Debug, Clone)]
pub struct Dom {
    pub id: u32,
    pub name: String,
    pub paused: bool,
    pub shutdown: Option<char>,
    pub dying: bool,
}

impl Dom {
    fn state(&self) -> String {
        let running = self.shutdown.is_none() && !self.paused && !self.dying;
        format!(
            "{}{}{}{}{}{}",
            '-',
            if running { 'b' } else { '-' },
            if self.paused { 'p' } else { '-' },
            if self.shutdown.is_some() { 's' } else { '-' },
            self.shutdown.unwrap_or('-'),
            if self.dying { 'd' } else { '-' },
        )
    }

    fn list_line(&self) -> String {
        format!(
            "{:<40} {:>5} {:>5} {:>5}     {}  {:>8.1}\n",
            if self.dying {
                "(null)"
            } else {
                self.name.as_str()
            },
            self.id,
            512,
            1,
            self.state(),
            1.5
        )
    }

    /// Runs (or could run) guest code.
    pub fn running(&self) -> bool {
        self.shutdown.is_none() && !self.paused && !self.dying
    }
}

const LIST_HEADER: &str =
    "Name                                        ID   Mem VCPUs\tState\tTime(s)\n";

/// What plays the appliances and the guest.
pub type Behaviour = Box<dyn FnMut(&mut Fake)>;

/// The fake host.
pub struct Fake {
    pub doms: Vec<Dom>,
    next_id: u32,
    /// path -> (value, permissions)
    pub xs: BTreeMap<String, (String, Vec<Perm>)>,
    pub files: BTreeMap<PathBuf, Vec<u8>>,
    pub now: u64,
    /// Every operation, in order.
    pub log: Vec<String>,
    /// Every broken rule.
    pub violations: Vec<String>,
    /// The source guest's domid.
    pub guest: u32,
    /// The domid of the domain created from the guest's config (the shell).
    pub shell: Option<u32>,
    /// Names whose `xl create` fails.
    pub fail_create: Vec<String>,
    /// Domains `xl destroy` cannot remove.
    pub undestroyable: Vec<u32>,
    /// Domains that stay dying after `xl destroy`.
    pub sticky_dying: Vec<u32>,
    /// Foreign mappings held, as (mapper, mapped) domain ids. As in Xen, a
    /// destroyed domain that another still maps stays dying until that
    /// mapper unmaps (an appliance does so before it powers off) or is
    /// itself torn down; a crashed mapper keeps its mappings.
    pub maps: Vec<(u32, u32)>,
    /// The shell has been unpaused: from then on the source may never run.
    pub shell_ran: bool,
    /// Added to this host's wall clock (two hosts whose clocks differ).
    pub unix_skew_ms: u64,
    /// `xl pause` fails.
    pub fail_pause: bool,
    /// `xl unpause` of the shell fails.
    pub fail_unpause_shell: bool,
    /// Domains (by name) that must not run once the shell does: the
    /// destination appliance, which maps it.
    pub writers: Vec<String>,
    /// The guest config's path (a create from it makes the shell).
    pub guest_cfg: PathBuf,
    /// Offers the hypercall route (domctl state, pause, unpause): logged
    /// as `domctl ...`, the same rules as `xl`'s.
    pub domctl: bool,
    /// Every domctl fails (the caller must fall back to `xl`).
    pub fail_domctl: bool,
    /// How many frames any domain's address space spans (the answer to
    /// `guest_frame_count`, with `domctl`).
    pub addressable: u64,
    /// The log-dirty CLEANs from this one on (counting from 1) fail.
    pub fail_logdirty_from: Option<u32>,
    /// Log-dirty CLEANs run so far.
    pub cleans: u32,
    /// The bitmap buffer dom0 maps: (appliance, first frame, frames).
    pub bitmap_map: Option<(u32, u64, u32)>,
    /// dom0's writes to this node fail.
    pub fail_write: Option<String>,
    /// The hypervisor's version in `xl info`.
    pub xen_version: String,
    behaviour: Option<Behaviour>,
    /// Called after every `xl` command and every sleep: the two-host tests
    /// watch both hosts' domains through it.
    pub observer: Option<Behaviour>,
}

/// Xen's dirty counter in the fake's CLEANs.
pub const FAKE_DIRTY: u32 = 311;
/// Xen's fault counter in the fake's CLEANs.
pub const FAKE_FAULTS: u32 = 9;

pub const GUEST_CFG: &str = "/scenario/guest.cfg";
pub const IMAGE: &str = "/scenario/depmig-appliance";

impl Fake {
    /// Logs a domctl; `None` when the route is not offered, `Some(())` to
    /// go on. A failing domctl is logged, then answered by the caller.
    fn domctl_call(&mut self, what: &str, domid: u32) -> Option<()> {
        if !self.domctl {
            return None;
        }
        self.log.push(format!("domctl {what} {domid}"));
        Some(())
    }

    /// A refused domctl.
    fn domctl_refused(what: &str, domid: u32) -> ToolError {
        ToolError::Domctl {
            what: format!("{what} {domid}"),
            reason: "Permission denied (os error 13)".into(),
            errno: Some(EACCES),
        }
    }

    /// `xl pause`/`xl unpause`'s effect and rules, logged as the domctl.
    fn as_domctl(&mut self, what: &str, domid: u32) -> Result<(), ToolError> {
        if self.fail_domctl {
            return Err(Fake::domctl_refused(what, domid));
        }
        let out = self.xl(&[what, &domid.to_string()])?;
        // The rules ran; the log shows the domctl alone.
        self.log.pop();
        if out.ok {
            Ok(())
        } else {
            Err(Fake::domctl_refused(what, domid))
        }
    }

    /// A host with dom0 and a running guest named `guest` (domain 5).
    pub fn new(behaviour: Behaviour) -> Fake {
        let mut f = Fake {
            doms: Vec::new(),
            next_id: 5,
            xs: BTreeMap::new(),
            files: BTreeMap::new(),
            now: 0,
            log: Vec::new(),
            violations: Vec::new(),
            guest: 0,
            shell: None,
            fail_create: Vec::new(),
            undestroyable: Vec::new(),
            sticky_dying: Vec::new(),
            maps: Vec::new(),
            shell_ran: false,
            unix_skew_ms: 0,
            writers: Vec::new(),
            fail_pause: false,
            fail_unpause_shell: false,
            guest_cfg: PathBuf::from(GUEST_CFG),
            domctl: false,
            fail_domctl: false,
            xen_version: "4.20.4".into(),
            addressable: 0xff000,
            fail_logdirty_from: None,
            cleans: 0,
            bitmap_map: None,
            fail_write: None,
            behaviour: Some(behaviour),
            observer: None,
        };
        f.files.insert(
            PathBuf::from(GUEST_CFG),
            b"name = \"guest\"\ntype = \"pvh\"\nmemory = 512\nseclabel = \"system_u:system_r:depmig_guest_t\"\n".to_vec(),
        );
        f.files.insert(PathBuf::from(IMAGE), b"\x7fELF".to_vec());
        let g = f.add_domain("guest", false);
        f.guest = g;
        f
    }

    /// A host with dom0 alone (the destination of a two-host migration):
    /// no guest, and the guest's config is the one `depmig receive`
    /// writes (a create from it makes the shell).
    pub fn empty_host(behaviour: Behaviour) -> Fake {
        let mut f = Fake::new(behaviour);
        let g = f.guest;
        f.doms.retain(|d| d.id != g);
        f.remove_xs(g);
        f.guest = u32::MAX - 1;
        f.files.remove(Path::new(GUEST_CFG));
        f.guest_cfg = PathBuf::from("/tmp/depmig/guest--incoming.cfg");
        f
    }

    /// Runs the observer, if any.
    fn observe(&mut self) {
        if let Some(mut o) = self.observer.take() {
            o(self);
            self.observer = Some(o);
        }
    }

    fn add_domain(&mut self, name: &str, paused: bool) -> u32 {
        let id = self.next_id;
        self.next_id += 1;
        self.doms.push(Dom {
            id,
            name: name.to_string(),
            paused,
            shutdown: None,
            dying: false,
        });
        let home = format!("/local/domain/{id}");
        self.xs.insert(
            home.clone(),
            (String::new(), vec![Perm::None(0), Perm::Read(id)]),
        );
        self.xs.insert(
            format!("{home}/name"),
            (name.to_string(), vec![Perm::None(0), Perm::Read(id)]),
        );
        self.xs.insert(
            format!("{home}/control"),
            (String::new(), vec![Perm::None(0), Perm::Read(id)]),
        );
        self.xs.insert(
            format!("{home}/control/shutdown"),
            (String::new(), vec![Perm::None(id)]),
        );
        id
    }

    pub fn dom(&self, id: u32) -> Option<&Dom> {
        self.doms.iter().find(|d| d.id == id)
    }

    pub fn dom_mut(&mut self, id: u32) -> Option<&mut Dom> {
        self.doms.iter_mut().find(|d| d.id == id)
    }

    pub fn by_name(&self, name: &str) -> Option<&Dom> {
        self.doms.iter().find(|d| d.name == name && !d.dying)
    }

    fn find(&self, ident: &str) -> Option<&Dom> {
        match ident.parse::<u32>() {
            Ok(id) => self.dom(id),
            Err(_) => self.by_name(ident),
        }
    }

    fn remove_xs(&mut self, id: u32) {
        let home = format!("/local/domain/{id}");
        let prefix = format!("{home}/");
        self.xs.retain(|k, _| *k != home && !k.starts_with(&prefix));
    }

    fn can(perms: &[Perm], domid: u32, write: bool) -> bool {
        if domid == 0 {
            return true;
        }
        let Some(first) = perms.first() else {
            return false;
        };
        let (owner, default) = match *first {
            Perm::None(d) => (d, (false, false)),
            Perm::Read(d) => (d, (true, false)),
            Perm::Write(d) => (d, (false, true)),
            Perm::Both(d) => (d, (true, true)),
        };
        if owner == domid {
            return true;
        }
        let mine = perms.iter().skip(1).find_map(|p| match *p {
            Perm::None(d) if d == domid => Some((false, false)),
            Perm::Read(d) if d == domid => Some((true, false)),
            Perm::Write(d) if d == domid => Some((false, true)),
            Perm::Both(d) if d == domid => Some((true, true)),
            _ => None,
        });
        let (r, w) = mine.unwrap_or(default);
        if write {
            w
        } else {
            r
        }
    }

    fn parent(path: &str) -> Option<&str> {
        path.rsplit_once('/')
            .map(|(p, _)| p)
            .filter(|p| !p.is_empty())
    }

    /// A write by `domid` under xenstored's rules: an existing node needs
    /// write permission; a new one, write permission on its parent, and it
    /// then belongs to the writer.
    pub fn dom_write(&mut self, domid: u32, path: &str, value: &str) -> bool {
        if let Some((v, perms)) = self.xs.get_mut(path) {
            if Fake::can(perms, domid, true) {
                *v = value.to_string();
                return true;
            }
            self.violations
                .push(format!("domain {domid} may not write {path}"));
            return false;
        }
        let Some(parent) = Fake::parent(path) else {
            return false;
        };
        match self.xs.get(parent) {
            Some((_, perms)) if Fake::can(perms, domid, true) => {
                let mut p = perms.clone();
                if let Some(first) = p.first_mut() {
                    *first = match *first {
                        Perm::None(_) => Perm::None(domid),
                        Perm::Read(_) => Perm::Read(domid),
                        Perm::Write(_) => Perm::Write(domid),
                        Perm::Both(_) => Perm::Both(domid),
                    };
                }
                self.xs.insert(path.to_string(), (value.to_string(), p));
                true
            }
            _ => {
                self.violations
                    .push(format!("domain {domid} may not create {path}"));
                false
            }
        }
    }

    /// A read by `domid`; a refused read is a violation.
    pub fn dom_read(&mut self, domid: u32, path: &str) -> Option<String> {
        let (v, perms) = self.xs.get(path)?.clone();
        if Fake::can(&perms, domid, false) {
            Some(v)
        } else {
            self.violations
                .push(format!("domain {domid} may not read {path}"));
            None
        }
    }

    /// Whether `domid` could write the existing node `path`.
    pub fn dom_can_write(&self, domid: u32, path: &str) -> bool {
        self.xs
            .get(path)
            .is_some_and(|(_, p)| Fake::can(p, domid, true))
    }

    /// An appliance named `name` that runs and was told to go.
    pub fn started(&self, name: &str) -> Option<u32> {
        let d = self.by_name(name)?;
        if !d.running() {
            return None;
        }
        let go = self
            .xs
            .get(&format!("/local/domain/{}/depmig/migrate/go", d.id))?;
        (go.0 == "1").then_some(d.id)
    }

    /// The appliance `id` writes `migrate/<key>` in its own home.
    pub fn set(&mut self, id: u32, key: &str, value: &str) {
        self.dom_write(
            id,
            &format!("/local/domain/{id}/depmig/migrate/{key}"),
            value,
        );
    }

    /// The appliance `id` reads its `depmig/<key>` (must be readable by it
    /// and not writable: dom0's control keys).
    pub fn control(&mut self, id: u32, key: &str) -> Option<String> {
        let path = format!("/local/domain/{id}/depmig/{key}");
        if self.dom_can_write(id, &path) {
            self.violations.push(format!(
                "appliance {id} could rewrite its control key {key}"
            ));
        }
        self.dom_read(id, &path)
    }

    /// The source appliance `app` suspends the guest cooperatively; the
    /// guest takes the request (clears the node) and suspends.
    pub fn suspend_guest(&mut self, app: u32) -> bool {
        let g = self.guest;
        if !self.dom_write(
            app,
            &format!("/local/domain/{g}/control/shutdown"),
            "suspend",
        ) {
            return false;
        }
        if let Some((v, _)) = self
            .xs
            .get_mut(&format!("/local/domain/{g}/control/shutdown"))
        {
            v.clear();
        }
        if let Some(d) = self.dom_mut(g) {
            d.shutdown = Some('s');
        }
        true
    }

    /// The guest runs again (a cancelled suspend).
    pub fn resume_guest(&mut self) {
        let g = self.guest;
        if self.shell_ran && self.dom(g).is_some() {
            self.violations.push(format!(
                "t={}: source resumed after the shell ran",
                self.now
            ));
        }
        if let Some(d) = self.dom_mut(g) {
            d.shutdown = None;
        }
    }

    /// The domain stops by itself; an appliance unmaps everything first.
    pub fn poweroff(&mut self, id: u32) {
        if let Some(d) = self.dom_mut(id) {
            d.shutdown = Some('-');
        }
        self.unmap_all(id);
    }

    /// `mapper` maps frames of `mapped`.
    pub fn map(&mut self, mapper: u32, mapped: u32) {
        self.maps.push((mapper, mapped));
    }

    fn mapped(&self, id: u32) -> bool {
        self.maps.iter().any(|&(_, m)| m == id)
    }

    /// Drops every mapping `mapper` holds; a dying domain nobody maps any
    /// more goes (unless it is one that stays dying), and so on down.
    fn unmap_all(&mut self, mapper: u32) {
        let mut gone = vec![mapper];
        while let Some(m) = gone.pop() {
            self.maps.retain(|&(by, _)| by != m);
            let free: Vec<u32> = self
                .doms
                .iter()
                .filter(|d| d.dying && !self.sticky_dying.contains(&d.id) && !self.mapped(d.id))
                .map(|d| d.id)
                .collect();
            self.doms.retain(|d| !free.contains(&d.id));
            gone.extend(free);
        }
    }

    pub fn crash(&mut self, id: u32) {
        if let Some(d) = self.dom_mut(id) {
            d.shutdown = Some('c');
        }
    }

    /// Index of the first log entry starting with `prefix`.
    pub fn pos(&self, prefix: &str) -> Option<usize> {
        self.log.iter().position(|l| l.starts_with(prefix))
    }

    fn check_copies(&mut self) {
        let guest_runs = self.dom(self.guest).is_some_and(Dom::running);
        let shell_runs = self
            .shell
            .and_then(|s| self.dom(s))
            .is_some_and(Dom::running);
        if guest_runs && shell_runs {
            self.violations
                .push(format!("t={}: source and shell both running", self.now));
        }
    }

    fn ok(stdout: String) -> Result<CmdOutput, ToolError> {
        Ok(CmdOutput {
            ok: true,
            stdout,
            stderr: String::new(),
        })
    }

    fn err(stderr: String) -> Result<CmdOutput, ToolError> {
        Ok(CmdOutput {
            ok: false,
            stdout: String::new(),
            stderr,
        })
    }
}

impl Fake {
    /// `xl` as the fake host runs it.
    fn run_xl(&mut self, args: &[&str]) -> Result<CmdOutput, ToolError> {
        self.log.push(format!("xl {}", args.join(" ")));
        match args {
            ["domid", name] => match self.by_name(name) {
                Some(d) => Fake::ok(format!("{}\n", d.id)),
                None => Fake::err(format!(
                    "Can't get domid of domain name '{name}', maybe this domain does not exist.\n"
                )),
            },
            ["info"] => Fake::ok(format!(
                "host                   : rig\nxen_major              : 4\nxen_version            : {}\n",
                self.xen_version
            )),
            ["list"] => {
                let mut out = String::from(LIST_HEADER);
                for d in &self.doms {
                    out.push_str(&d.list_line());
                }
                Fake::ok(out)
            }
            ["list", ident] => match self.find(ident) {
                Some(d) => Fake::ok(format!("{LIST_HEADER}{}", d.list_line())),
                None if ident.parse::<u32>().is_ok() => {
                    Fake::err(format!("Error: Domain '{ident}' does not exist.\n"))
                }
                None => Fake::err(format!("{ident} is an invalid domain identifier (rc=-6)\n")),
            },
            ["create", "-p", cfg, extra @ ..] => {
                let Some(text) = self.files.get(Path::new(cfg)).cloned() else {
                    return Fake::err(format!(
                        "Failed to read config file: {cfg}: No such file or directory\n"
                    ));
                };
                let parsed = xlcfg::parse_guest_config(&text).map_err(|e| ToolError::File {
                    path: cfg.to_string(),
                    reason: e.to_string(),
                })?;
                let mut name = parsed.name.unwrap_or_default();
                for e in extra {
                    if let Some(v) = e.strip_prefix("name=") {
                        name = v.trim_matches('"').to_string();
                    }
                }
                if self.fail_create.contains(&name) {
                    return Fake::err(
                        "libxl: error: libxl_create.c: domain creation failed\n".into(),
                    );
                }
                if self.by_name(&name).is_some() {
                    return Fake::err(format!(
                        "libxl: error: domain with name \"{name}\" already exists.\n"
                    ));
                }
                let id = self.add_domain(&name, true);
                if Path::new(cfg) == self.guest_cfg {
                    self.shell = Some(id);
                }
                Fake::ok(String::new())
            }
            ["destroy", ident] => {
                let Some(id) = self.find(ident).map(|d| d.id) else {
                    return Fake::err(format!("{ident} is an invalid domain identifier (rc=-6)\n"));
                };
                if self.undestroyable.contains(&id) {
                    return Fake::err("libxl: error: libxl_domain.c: destroy failed\n".into());
                }
                self.remove_xs(id);
                if self.sticky_dying.contains(&id) || self.mapped(id) {
                    if let Some(d) = self.dom_mut(id) {
                        d.dying = true;
                    }
                } else {
                    self.doms.retain(|d| d.id != id);
                }
                // Its own mappings go with it.
                self.unmap_all(id);
                Fake::ok(String::new())
            }
            ["rename", ident, new] => {
                let Some(id) = self.find(ident).map(|d| d.id) else {
                    return Fake::err(format!("{ident} is an invalid domain identifier (rc=-6)\n"));
                };
                if self.by_name(new).is_some_and(|d| d.id != id) {
                    return Fake::err(format!("Can't rename domain '{ident}'.\n"));
                }
                if let Some(d) = self.dom_mut(id) {
                    d.name = new.to_string();
                }
                Fake::ok(String::new())
            }
            ["pause", ident] => {
                if self.fail_pause {
                    return Fake::err(
                        "libxl: error: libxl_domain.c: pausing domain failed\n".into(),
                    );
                }
                let Some(id) = self.find(ident).map(|d| d.id) else {
                    return Fake::err(format!("{ident} is an invalid domain identifier (rc=-6)\n"));
                };
                if let Some(d) = self.dom_mut(id) {
                    d.paused = true;
                }
                Fake::ok(String::new())
            }
            ["unpause", ident] => {
                let Some(id) = self.find(ident).map(|d| d.id) else {
                    return Fake::err(format!("{ident} is an invalid domain identifier (rc=-6)\n"));
                };
                if Some(id) == self.shell && self.fail_unpause_shell {
                    return Fake::err("libxl: error: libxl_domain.c: unpausing domain failed\n".into());
                }
                // The source may still exist, but it must not be able to run:
                // shut down (for suspend) or dying.
                if Some(id) == self.shell
                    && self
                        .dom(self.guest)
                        .is_some_and(|g| !g.dying && g.shutdown.is_none())
                {
                    self.violations.push(format!(
                        "t={}: shell {id} unpaused while the source guest could run",
                        self.now
                    ));
                }
                if Some(id) == self.shell {
                    self.shell_ran = true;
                    for name in self.writers.clone() {
                        if self.by_name(&name).is_some_and(Dom::running) {
                            self.violations.push(format!(
                                "t={}: shell {id} unpaused while {name} could still write into it",
                                self.now
                            ));
                        }
                    }
                }
                if id == self.guest && self.shell_ran {
                    self.violations.push(format!(
                        "t={}: source unpaused after the shell ran",
                        self.now
                    ));
                }
                if let Some(d) = self.dom_mut(id) {
                    d.paused = false;
                }
                self.check_copies();
                Fake::ok(String::new())
            }
            _ => Fake::err(format!("xl: unknown command {args:?}\n")),
        }
    }
}

impl Toolstack for Fake {
    fn xl(&mut self, args: &[&str]) -> Result<CmdOutput, ToolError> {
        let out = self.run_xl(args);
        self.observe();
        out
    }

    fn xs_read(&mut self, path: &str) -> Result<Option<String>, ToolError> {
        Ok(self.xs.get(path).map(|(v, _)| v.clone()))
    }

    fn xs_write(&mut self, path: &str, value: &str) -> Result<(), ToolError> {
        if self.fail_write.as_deref() == Some(path) {
            return Err(ToolError::Xenstore {
                what: format!("write {path}"),
                reason: "EIO".into(),
            });
        }
        self.log.push(format!("xs write {path}={value}"));
        // dom0 may write anywhere; missing parents appear with inherited perms.
        let mut missing = Vec::new();
        let mut p = path;
        while !self.xs.contains_key(p) {
            missing.push(p.to_string());
            match Fake::parent(p) {
                Some(q) => p = q,
                None => break,
            }
        }
        let inherited = self
            .xs
            .get(p)
            .map(|(_, perms)| perms.clone())
            .unwrap_or_else(|| vec![Perm::None(0)]);
        for m in missing.into_iter().rev() {
            self.xs.insert(m, (String::new(), inherited.clone()));
        }
        if let Some((v, _)) = self.xs.get_mut(path) {
            *v = value.to_string();
        }
        Ok(())
    }

    fn xs_chmod(&mut self, path: &str, perms: &[Perm]) -> Result<(), ToolError> {
        let spec: Vec<String> = perms.iter().map(Perm::to_string).collect();
        self.log.push(format!("xs chmod {path} {}", spec.join(" ")));
        match self.xs.get_mut(path) {
            Some((_, p)) => {
                *p = perms.to_vec();
                Ok(())
            }
            None => Err(ToolError::Xenstore {
                what: format!("chmod {path}"),
                reason: "could not set permissions".into(),
            }),
        }
    }

    fn read_file(&mut self, path: &Path) -> Result<Vec<u8>, ToolError> {
        self.files
            .get(path)
            .cloned()
            .ok_or_else(|| ToolError::File {
                path: path.display().to_string(),
                reason: "No such file or directory".into(),
            })
    }

    fn write_file(&mut self, path: &Path, data: &[u8]) -> Result<(), ToolError> {
        self.files.insert(path.to_path_buf(), data.to_vec());
        Ok(())
    }

    fn file_exists(&mut self, path: &Path) -> bool {
        self.files.contains_key(path)
    }

    fn work_dir(&mut self) -> PathBuf {
        PathBuf::from("/tmp/depmig")
    }

    fn random(&mut self, buf: &mut [u8]) -> Result<(), ToolError> {
        for (i, b) in buf.iter_mut().enumerate() {
            *b = (i as u8).wrapping_mul(7).wrapping_add(1);
        }
        Ok(())
    }

    fn now_ms(&mut self) -> u64 {
        self.now
    }

    fn unix_ms(&mut self) -> u64 {
        1_800_000_000_000 + self.now + self.unix_skew_ms
    }

    fn domctl_state(&mut self, domid: u32) -> Option<Result<Option<DomState>, ToolError>> {
        self.domctl_call("getdomaininfo", domid)?;
        if self.fail_domctl {
            return Some(Err(Fake::domctl_refused("getdomaininfo", domid)));
        }
        Some(Ok(self.dom(domid).map(|d| DomState {
            domid,
            paused: d.paused,
            shutdown: d.shutdown,
            dying: d.dying,
        })))
    }

    fn domctl_pause(&mut self, domid: u32) -> Option<Result<(), ToolError>> {
        self.domctl_call("pause", domid)?;
        Some(self.as_domctl("pause", domid))
    }

    fn domctl_unpause(&mut self, domid: u32) -> Option<Result<(), ToolError>> {
        self.domctl_call("unpause", domid)?;
        Some(self.as_domctl("unpause", domid))
    }

    fn guest_frame_count(&mut self, domid: u32) -> Option<Result<u64, ToolError>> {
        self.domctl_call("maximum_gpfn", domid)?;
        if self.fail_domctl {
            return Some(Err(Fake::domctl_refused("maximum_gpfn", domid)));
        }
        Some(Ok(self.addressable))
    }

    fn logdirty_clean_into(
        &mut self,
        guest: u32,
        appliance: u32,
        buffer: &GuestBuffer,
        final_pass: bool,
    ) -> Option<Result<DirtyCounts, ToolError>> {
        if !self.domctl {
            return None;
        }
        let (first, frames) = (buffer.first_gfn(), buffer.frames());
        if self.bitmap_map != Some((appliance, first, frames)) {
            self.logdirty_release();
            self.log
                .push(format!("map {frames} frames of {appliance} at {first:#x}"));
            self.maps.push((0, appliance));
            self.bitmap_map = Some((appliance, first, frames));
        }
        let what = format!(
            "shadow_op clean{} {guest}",
            if final_pass { " final" } else { "" }
        );
        self.log.push(format!(
            "domctl {what} into {appliance}:{first:#x}+{frames} pages {}",
            buffer.pages()
        ));
        self.cleans += 1;
        if self.fail_logdirty_from.is_some_and(|n| self.cleans >= n) {
            return Some(Err(ToolError::Domctl {
                what,
                reason: "Operation not permitted (os error 1)".into(),
                errno: Some(EPERM),
            }));
        }
        Some(Ok(DirtyCounts {
            pages: buffer.pages(),
            dirty: FAKE_DIRTY,
            faults: FAKE_FAULTS,
        }))
    }

    fn logdirty_release(&mut self) {
        if let Some((appliance, ..)) = self.bitmap_map.take() {
            self.log.push(format!("unmap bitmap of {appliance}"));
            // dom0 maps nothing else: all of its mappings go.
            self.unmap_all(0);
        }
    }

    fn domctl_route(&mut self) -> String {
        if self.domctl {
            "domctls".into()
        } else {
            "xl".into()
        }
    }

    fn sleep(&mut self, d: Duration) {
        self.now += u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        if let Some(mut b) = self.behaviour.take() {
            b(self);
            self.behaviour = Some(b);
        }
        self.check_copies();
        self.observe();
    }
}
