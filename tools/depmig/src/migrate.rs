//! `depmig migrate`: the orchestration in dom0.
//!
//! dom0 never touches a page: it creates the paused shell and the two
//! appliances, arms them through xenstore, watches their progress, and at
//! the end either unpauses the shell and destroys the source, or destroys
//! the shell and makes sure the source guest runs. The one rule that must
//! never break: two copies never run. The shell is unpaused only while the
//! source cannot run: [`unpause_shell`] takes a [`SourceStopped`], which
//! only [`source_stopped`] (the source shut down for suspend, dying or
//! gone) and [`destroy_source`] make; and once the shell has been unpaused
//! the source is destroyed, never resumed. (Stock `xl migrate` hands over
//! in the same order: the receiver unpauses, then the sender destroys.)

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::cli::{Fault, MigrateOptions, Mode};
use crate::json::Value;
use crate::key::{self, KEY_BYTES};
use crate::progress::{self, Round};
use crate::report::{self, CliFigures, Summary};
use crate::svg::{self, Series};
use crate::toolstack::{Perm, ToolError, Toolstack};
use crate::xlcfg::{self, Vif};

/// A live round after the first this short (ms) switches xenstore polling
/// to the fast period: the stop-and-copy round may follow at once.
pub const SHORT_ROUND_MS: u64 = 5000;

/// How long the stop-and-copy round may run before the appliances' domain
/// states are checked again (ms).
pub const FINAL_QUIET_MS: u64 = 5000;

/// Waiting periods; the defaults suit the rig (TCG emulation, loaded host).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timings {
    /// Period of xenstore polling while pre-copy runs.
    pub poll: Duration,
    /// Period of xenstore polling once the source suspends the guest (the
    /// switchover adds to the guest's downtime).
    pub poll_fast: Duration,
    /// Period of the appliances' domain state checks (`xl list`).
    pub list_period: Duration,
    /// After one side finished or died, how long the other gets to report.
    pub grace: Duration,
    /// How long a destroyed domain may take to disappear.
    pub gone: Duration,
    /// How long a guest is watched after a failed migration for a suspend
    /// already under way.
    pub settle: Duration,
    /// How long the resume appliance gets (boot included).
    pub resume: Duration,
    /// How long the destination appliance may take to stop by itself after
    /// `applied` before it is destroyed.
    pub dst_stop: Duration,
    /// How long the guest agent may take to answer a thaw request.
    pub thaw: Duration,
}

impl Default for Timings {
    fn default() -> Timings {
        Timings {
            poll: Duration::from_millis(1000),
            poll_fast: Duration::from_millis(50),
            list_period: Duration::from_secs(3),
            grace: Duration::from_secs(90),
            gone: Duration::from_secs(60),
            settle: Duration::from_secs(5),
            resume: Duration::from_secs(240),
            dst_stop: Duration::from_secs(10),
            thaw: Duration::from_secs(30),
        }
    }
}

/// How a migration ended; [`Outcome::exit_code`] maps it to the exit status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The guest runs in the former shell under its own name.
    Migrated {
        /// Finishing steps that failed (rename, report, plot).
        warnings: Vec<String>,
    },
    /// Not migrated; the guest runs at the source, shell and appliances gone.
    RolledBack {
        /// Why the migration did not happen.
        reason: String,
        /// Cleanup steps that failed without endangering the guest.
        warnings: Vec<String>,
    },
    /// Nothing was created: a problem found up front.
    Refused {
        /// The problem.
        reason: String,
    },
    /// The guest could not be confirmed running, or something could not be
    /// cleaned up; an operator must look.
    NeedsOperator {
        /// What is wrong and what to do.
        reason: String,
    },
}

impl Outcome {
    /// The process exit status (see `depmig migrate --help`).
    pub fn exit_code(&self) -> u8 {
        match self {
            Outcome::Migrated { warnings } if warnings.is_empty() => 0,
            Outcome::Migrated { .. } => 3,
            Outcome::RolledBack { .. } => 1,
            Outcome::Refused { .. } => 2,
            Outcome::NeedsOperator { .. } => 4,
        }
    }
}

/// A domain's state as `xl list` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DomState {
    /// Domain id.
    pub domid: u32,
    /// Paused (`p`).
    pub paused: bool,
    /// Shut down (`s`), with the reason letter: `-` poweroff, `r` reboot,
    /// `s` suspend, `c` crash, `w` watchdog, `S` soft reset.
    pub shutdown: Option<char>,
    /// Dying (`d`): being torn down, will never run again.
    pub dying: bool,
}

impl DomState {
    /// The state the hypervisor reported for `domid` (shutdown codes as
    /// `xl list` letters them: `-rscwS`; another code reads `?`).
    pub fn from_info(domid: u32, i: depmig_privcmd::Info) -> DomState {
        DomState {
            domid,
            paused: i.paused,
            shutdown: i
                .shutdown
                .map(|c| "-rscwS".chars().nth(usize::from(c)).unwrap_or('?')),
            dying: i.dying,
        }
    }

    /// Shut down for suspend.
    pub fn suspended(&self) -> bool {
        self.shutdown == Some('s')
    }

    /// Neither shut down nor dying (it may be paused).
    pub fn alive(&self) -> bool {
        self.shutdown.is_none() && !self.dying
    }
}

/// Reads the domain line of `xl list <domain>` output.
pub fn parse_xl_list(out: &str) -> Option<DomState> {
    let line = out.lines().skip(1).find(|l| !l.trim().is_empty())?;
    let f: Vec<&str> = line.split_whitespace().collect();
    // name id mem vcpus state time; the name may be "(null)" for a dying one.
    if f.len() < 6 {
        return None;
    }
    let state = *f.get(f.len() - 2)?;
    let domid: u32 = f.get(f.len() - 5)?.parse().ok()?;
    let c: Vec<char> = state.chars().collect();
    if c.len() != 6 {
        return None;
    }
    let flag = |i: usize, want: char| c.get(i).is_some_and(|x| *x == want);
    let shutdown = if flag(3, 's') {
        c.get(4).copied()
    } else {
        None
    };
    Some(DomState {
        domid,
        paused: flag(2, 'p'),
        shutdown,
        dying: flag(5, 'd'),
    })
}

/// Reads every domain line of `xl list` output.
pub fn parse_xl_list_all(out: &str) -> Vec<DomState> {
    out.lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .filter_map(|l| parse_xl_list(&format!("header\n{l}")))
        .collect()
}

/// Something that went wrong while talking to the toolstack.
type Fail = String;

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
fn needs_agent(mode: Mode) -> bool {
    mode != Mode::Baseline
}

/// The sequence number of an agent request or status line (`<seq> …`).
fn agent_seq(line: &str) -> Option<u64> {
    line.split_whitespace().next()?.parse().ok()
}

fn tool(e: ToolError) -> Fail {
    e.to_string()
}

/// Looks a domain up by name or id; `Ok(None)` when there is none.
fn domain_state<T: Toolstack + ?Sized>(ts: &mut T, ident: &str) -> Result<Option<DomState>, Fail> {
    let out = ts.xl(&["list", ident]).map_err(tool)?;
    if out.ok {
        return parse_xl_list(&out.stdout).map(Some).ok_or_else(|| {
            format!(
                "cannot read `xl list {ident}` output: {}",
                out.stdout.trim()
            )
        });
    }
    let e = out.stderr.to_ascii_lowercase();
    if e.contains("invalid domain identifier") || e.contains("does not exist") {
        Ok(None)
    } else {
        Err(format!("xl list {ident}: {}", out.last_line()))
    }
}

/// Every domain's state from one `xl list` (one command where several
/// `xl list <id>` would each cost a process in a slow dom0).
fn all_domain_states<T: Toolstack + ?Sized>(ts: &mut T) -> Result<Vec<DomState>, Fail> {
    let out = ts.xl(&["list"]).map_err(tool)?;
    if !out.ok {
        return Err(format!("xl list: {}", out.last_line()));
    }
    let v = parse_xl_list_all(&out.stdout);
    if v.is_empty() {
        // dom0 is always listed.
        return Err(format!(
            "cannot read `xl list` output: {}",
            out.stdout.trim()
        ));
    }
    Ok(v)
}

/// A domain's state as one `xl list` showed it (`Ok(None)`: not listed).
type Listed = Result<Option<DomState>, Fail>;

/// The states of domains `a` and `b` from one `xl list`; a failed list is
/// the error of both.
fn two_domain_states<T: Toolstack + ?Sized>(ts: &mut T, a: u32, b: u32) -> (Listed, Listed) {
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

fn domid_of<T: Toolstack + ?Sized>(ts: &mut T, name: &str) -> Result<Option<u32>, Fail> {
    let out = ts.xl(&["domid", name]).map_err(tool)?;
    if !out.ok {
        return Ok(None);
    }
    out.stdout
        .trim()
        .parse()
        .map(Some)
        .map_err(|_| format!("xl domid {name} printed `{}`", out.stdout.trim()))
}

/// Proof that the source guest cannot run: it is shut down for suspend
/// (Xen never schedules it again unless a toolstack resumes it, which this
/// command never does once the shell was unpaused), dying (torn down), or
/// gone. Only [`source_stopped`] and [`destroy_source`] make one.
#[derive(Debug)]
pub struct SourceStopped {
    domid: u32,
    dying: bool,
}

/// Checks that the source guest is shut down for suspend, dying or gone.
pub fn source_stopped<T: Toolstack + ?Sized>(
    ts: &mut T,
    domid: u32,
) -> Result<SourceStopped, Fail> {
    source_stopped_as(domid, domain_state(ts, &domid.to_string())?)
}

/// The same, from the state `xl list` just showed for it (`None`: not listed).
fn source_stopped_as(domid: u32, state: Option<DomState>) -> Result<SourceStopped, Fail> {
    match state {
        None => Ok(SourceStopped {
            domid,
            dying: false,
        }),
        Some(s) if s.dying || s.suspended() => Ok(SourceStopped {
            domid,
            dying: s.dying,
        }),
        Some(s) => Err(format!(
            "the source guest (domain {domid}) is not suspended: {s:?}"
        )),
    }
}

/// Destroys the source guest and waits until it is gone.
pub fn destroy_source<T: Toolstack + ?Sized>(
    ts: &mut T,
    domid: u32,
    within: Duration,
) -> Result<SourceStopped, Fail> {
    let id = domid.to_string();
    let out = ts.xl(&["destroy", &id]).map_err(tool)?;
    let destroy_msg = if out.ok {
        String::new()
    } else {
        format!(" (xl destroy: {})", out.last_line())
    };
    let start = ts.now_ms();
    let mut dying = false;
    loop {
        match domain_state(ts, &id)? {
            None => {
                return Ok(SourceStopped {
                    domid,
                    dying: false,
                })
            }
            Some(s) if s.dying => dying = true,
            Some(_) => {}
        }
        if ts.now_ms().saturating_sub(start) >= duration_ms(within) {
            if dying {
                // A domain whose foreign mappings were not all released stays
                // dying forever on Xen 4.17; it can never run again.
                return Ok(SourceStopped { domid, dying: true });
            }
            return Err(format!(
                "source guest (domain {domid}) still exists after xl destroy{destroy_msg}"
            ));
        }
        ts.sleep(Duration::from_millis(500));
    }
}

/// Unpauses the shell; only possible with proof that the source cannot run.
pub fn unpause_shell<T: Toolstack + ?Sized>(
    ts: &mut T,
    shell: u32,
    proof: &SourceStopped,
) -> Result<(), Fail> {
    // The proof's domain is the source's, never the shell's.
    if proof.domid == shell {
        return Err(format!(
            "refusing to unpause domain {shell}: it is the source"
        ));
    }
    if let Some(Ok(())) = ts.domctl_unpause(shell) {
        return Ok(());
    }
    let out = ts.xl(&["unpause", &shell.to_string()]).map_err(tool)?;
    if out.ok {
        Ok(())
    } else {
        Err(format!("xl unpause {shell}: {}", out.last_line()))
    }
}

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Domains this run created, by id.
#[derive(Debug, Default)]
struct Created {
    shell: Option<u32>,
    dst: Option<u32>,
    src: Option<u32>,
}

/// How the watch ended.
enum Watch {
    Success,
    Failure(String),
}

/// Everything one migration needs while it runs.
struct Run<'a, T: Toolstack + ?Sized> {
    ts: &'a mut T,
    o: &'a MigrateOptions,
    t: &'a Timings,
    out: &'a mut dyn Write,
    guest_id: u32,
    guest_paused_before: bool,
    guest_pages: Option<u64>,
    shell_name: String,
    src_name: String,
    dst_name: String,
    resume_name: String,
    created: Created,
    cli: CliFigures,
    last_round: Option<Round>,
    src_result: Option<String>,
    /// The source appliance was given write access to the guest's control/shutdown.
    shutdown_opened: bool,
    /// The guest's agent nodes whose permissions were opened to the source
    /// appliance (restored on roll-back).
    agent_opened: Vec<String>,
}

impl<T: Toolstack + ?Sized> Run<'_, T> {
    fn say(&mut self, msg: &str) {
        // Progress output is best effort; a closed stdout must not stop a
        // migration half way.
        let _ = writeln!(self.out, "depmig: {msg}");
        let _ = self.out.flush();
    }

    fn home(domid: u32) -> String {
        format!("/local/domain/{domid}/depmig")
    }

    fn read_key(&mut self, domid: u32, key: &str) -> Result<Option<String>, Fail> {
        let v = self
            .ts
            .xs_read(&format!("{}/{key}", Self::home(domid)))
            .map_err(tool)?;
        Ok(v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty()))
    }

    /// Writes control keys readable (not writable) by the appliance.
    fn write_keys(&mut self, domid: u32, keys: &[(&str, String)]) -> Result<(), Fail> {
        for (k, v) in keys {
            let path = format!("{}/{k}", Self::home(domid));
            self.ts.xs_write(&path, v).map_err(tool)?;
            self.ts
                .xs_chmod(&path, &[Perm::None(0), Perm::Read(domid)])
                .map_err(tool)?;
        }
        Ok(())
    }

    /// The appliance may create its own nodes (state, round, result,
    /// report) in its `migrate/` directory; dom0's keys there stay read-only.
    fn open_status_dir(&mut self, domid: u32) -> Result<(), Fail> {
        let dir = format!("{}/migrate", Self::home(domid));
        self.ts
            .xs_chmod(&dir, &[Perm::None(0), Perm::Both(domid)])
            .map_err(tool)
    }

    fn create_domain(&mut self, cfg: &Path, extra: &[String], name: &str) -> Result<u32, Fail> {
        let cfg_s = cfg.display().to_string();
        let mut args: Vec<&str> = vec!["create", "-p", &cfg_s];
        args.extend(extra.iter().map(String::as_str));
        let out = self.ts.xl(&args).map_err(tool)?;
        // A failed create may still leave a domain behind: look it up either way.
        let id = domid_of(self.ts, name)?;
        match (out.ok, id) {
            (true, Some(id)) => Ok(id),
            (true, None) => Err(format!(
                "xl create of {name} succeeded but the domain is not there"
            )),
            (false, Some(id)) => {
                self.destroy_quietly(id, name);
                Err(format!("xl create {name}: {}", out.last_line()))
            }
            (false, None) => Err(format!("xl create {name}: {}", out.last_line())),
        }
    }

    fn destroy_quietly(&mut self, domid: u32, what: &str) {
        if let Err(e) = self.destroy_and_wait(domid) {
            self.say(&format!("warning: {what} (domain {domid}): {e}"));
        }
    }

    /// Destroys a domain and waits until it is gone (or dying).
    fn destroy_and_wait(&mut self, domid: u32) -> Result<(), Fail> {
        let id = domid.to_string();
        let out = self.ts.xl(&["destroy", &id]).map_err(tool)?;
        let start = self.ts.now_ms();
        loop {
            match domain_state(self.ts, &id)? {
                None => return Ok(()),
                Some(s)
                    if s.dying
                        && self.ts.now_ms().saturating_sub(start) >= duration_ms(self.t.gone) =>
                {
                    return Err("still dying (it may hold foreign mappings)".into())
                }
                Some(_) if self.ts.now_ms().saturating_sub(start) >= duration_ms(self.t.gone) => {
                    return Err(format!(
                        "not destroyed: {}",
                        if out.ok {
                            "still there".into()
                        } else {
                            out.last_line()
                        }
                    ))
                }
                Some(_) => {}
            }
            self.ts.sleep(Duration::from_millis(500));
        }
    }

    fn write_config(&mut self, name: &str, vif: Option<&Vif>) -> Result<PathBuf, Fail> {
        let text =
            xlcfg::appliance_config(name, &self.o.appliance, self.o.appliance_memory_mib, vif)
                .map_err(|e| e.to_string())?;
        let path = self.ts.work_dir().join(format!("{name}.cfg"));
        self.ts.write_file(&path, text.as_bytes()).map_err(tool)?;
        Ok(path)
    }

    fn vif(&self, ip: std::net::Ipv4Addr) -> Vif {
        Vif {
            bridge: self.o.bridge.clone(),
            ip,
            rate: self.o.link_rate.clone(),
        }
    }

    /// Creates the shell and both appliances, arms them, starts them.
    fn start(&mut self, key_hex: &str) -> Result<(), Fail> {
        let o = self.o;
        // Shell: the guest's own config under another name, paused.
        self.say(&format!(
            "creating the shell {} from {}",
            self.shell_name,
            o.config.display()
        ));
        let shell_name = self.shell_name.clone();
        let shell =
            self.create_domain(&o.config, &[xlcfg::name_override(&shell_name)], &shell_name)?;
        self.created.shell = Some(shell);
        self.cli.shell_domid = shell;

        let dst_cfg =
            self.write_config(&self.dst_name.clone(), Some(&self.vif(o.destination_ip)))?;
        let src_cfg = self.write_config(&self.src_name.clone(), Some(&self.vif(o.source_ip)))?;
        self.say(&format!(
            "creating the destination appliance {}",
            self.dst_name
        ));
        let dst_name = self.dst_name.clone();
        let dst = self.create_domain(&dst_cfg, &[], &dst_name)?;
        self.created.dst = Some(dst);
        self.say(&format!("creating the source appliance {}", self.src_name));
        let src_name = self.src_name.clone();
        let src = self.create_domain(&src_cfg, &[], &src_name)?;
        self.created.src = Some(src);

        let prefix = o.prefix.to_string();
        // --fault wrong-key: the destination gets the key with every bit of
        // its first byte flipped (still 64 hex digits, just not the source's).
        let dst_key = if o.fault == Some(Fault::WrongKey) {
            let mut k = key_hex.as_bytes().to_vec();
            if let Some(c) = k.first_mut() {
                *c = if *c == b'0' { b'f' } else { b'0' };
            }
            String::from_utf8(k).unwrap_or_else(|_| key_hex.to_string())
        } else {
            key_hex.to_string()
        };
        self.write_keys(
            dst,
            &[
                ("net/ip", o.destination_ip.to_string()),
                ("net/prefix", prefix.clone()),
                ("migrate/role", "destination".into()),
                ("migrate/guest", shell.to_string()),
                ("migrate/port", o.port.to_string()),
                ("migrate/key", dst_key),
                ("migrate/mode", o.mode.as_str().into()),
                ("migrate/policy", o.policy.as_str().into()),
            ],
        )?;
        self.open_status_dir(dst)?;
        self.write_keys(
            src,
            &[
                ("net/ip", o.source_ip.to_string()),
                ("net/prefix", prefix),
                ("migrate/role", "source".into()),
                ("migrate/guest", self.guest_id.to_string()),
                ("migrate/peer", format!("{}:{}", o.destination_ip, o.port)),
                ("migrate/key", key_hex.to_string()),
                ("migrate/mode", o.mode.as_str().into()),
                ("migrate/policy", o.policy.as_str().into()),
            ],
        )?;
        if o.fault == Some(Fault::CorruptFinal) {
            self.write_keys(
                src,
                &[("migrate/fault", Fault::CorruptFinal.as_str().into())],
            )?;
        }
        if let Some(f) = o.fault {
            self.say(&format!("test fault {} injected on purpose", f.as_str()));
        }
        self.open_status_dir(src)?;
        // The source suspends the guest through the guest's own node; the
        // guest stays its owner.
        let g = self.guest_id;
        self.ts
            .xs_chmod(
                &format!("/local/domain/{g}/control/shutdown"),
                &[Perm::None(g), Perm::Both(src)],
            )
            .map_err(tool)?;
        self.shutdown_opened = true;
        if needs_agent(o.mode) {
            self.open_agent_keys(src)?;
        }

        for (id, name) in [(dst, self.dst_name.clone()), (src, self.src_name.clone())] {
            let out = self.ts.xl(&["unpause", &id.to_string()]).map_err(tool)?;
            if !out.ok {
                return Err(format!("xl unpause {name}: {}", out.last_line()));
            }
        }
        // go last: the destination first so it listens before the source connects.
        self.write_keys(dst, &[("migrate/go", "1".into())])?;
        self.write_keys(src, &[("migrate/go", "1".into())])?;
        self.cli.go_unix_ms = Some(self.ts.unix_ms());
        let route = self.ts.xenstore_route();
        let handoff = self.ts.domctl_route();
        self.say(&format!(
            "armed: source appliance {src} -> destination appliance {dst} ({}:{}), mode {}, policy {}; xenstore through {route}; handoff by {handoff}",
            o.destination_ip,
            o.port,
            o.mode.as_str(),
            o.policy.as_str()
        ));
        Ok(())
    }

    /// Lets the source appliance read the guest agent's keys and write its
    /// `request` (the guest stays their owner). `status` and `request` are
    /// created empty when the agent has not made them yet (an empty request
    /// is no request to the agent), so their permissions exist before the
    /// appliance starts.
    fn open_agent_keys(&mut self, src: u32) -> Result<(), Fail> {
        let g = self.guest_id;
        let dir = agent_dir(g);
        for k in ["status", "request"] {
            let path = format!("{dir}/{k}");
            if self.ts.xs_read(&path).map_err(tool)?.is_none() {
                self.ts.xs_write(&path, "").map_err(tool)?;
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
            if self.ts.xs_read(&path).map_err(tool)?.is_none() {
                continue;
            }
            self.agent_opened.push(path.clone());
            self.ts
                .xs_chmod(&path, &[Perm::None(g), perm])
                .map_err(tool)?;
        }
        Ok(())
    }

    /// Gives the guest its agent keys back (only the guest may use them).
    fn restore_agent_keys(&mut self, warnings: &mut Vec<String>) {
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
    fn agent_thaw(&mut self, domid: u32, after: Option<u64>) -> Result<u64, Fail> {
        let dir = agent_dir(domid);
        let req = format!("{dir}/request");
        let status_path = format!("{dir}/status");
        let current = self.ts.xs_read(&req).map_err(tool)?;
        if current.is_none() {
            // A migrated guest's new home has no agent nodes yet: create the
            // request node and hand it (and its directory) to the guest.
            self.ts.xs_write(&req, "").map_err(tool)?;
            self.ts.xs_chmod(&dir, &[Perm::None(domid)]).map_err(tool)?;
            self.ts.xs_chmod(&req, &[Perm::None(domid)]).map_err(tool)?;
        }
        let last = after.or_else(|| current.as_deref().and_then(agent_seq));
        let mut seq = match last {
            Some(n) => n.saturating_add(1),
            // No number known: one no earlier request is likely to have used
            // (the agent acts on any number other than its last one).
            None => self.ts.unix_ms() / 1000 % 1_000_000_000 + 1000,
        };
        let stale = self.ts.xs_read(&status_path).map_err(tool)?;
        if stale.as_deref().and_then(agent_seq) == Some(seq) {
            seq = seq.saturating_add(1);
        }
        self.ts
            .xs_write(&req, &format!("{seq} thaw"))
            .map_err(tool)?;
        let start = self.ts.now_ms();
        loop {
            if let Some(s) = self.ts.xs_read(&status_path).map_err(tool)? {
                let s = s.trim();
                if agent_seq(s) == Some(seq) {
                    let answer = s.split_once(' ').map_or("", |(_, a)| a.trim());
                    if let Some(n) = answer.strip_prefix("thawed ") {
                        return n
                            .trim()
                            .parse()
                            .map_err(|_| format!("the guest agent answered `{s}`"));
                    }
                    return Err(format!("the guest agent answered `{s}`"));
                }
            }
            if self.ts.now_ms().saturating_sub(start) >= duration_ms(self.t.thaw) {
                return Err(format!(
                    "the guest agent did not answer `{seq} thaw` within {} s",
                    self.t.thaw.as_secs()
                ));
            }
            self.ts.sleep(self.t.poll_fast);
        }
    }

    /// Polls the appliances until the migration succeeded, failed or timed out.
    fn watch(&mut self, src: u32, dst: u32) -> Watch {
        let start = self.ts.now_ms();
        let deadline = start.saturating_add(self.o.timeout_s.saturating_mul(1000));
        let grace = duration_ms(self.t.grace);
        let mut src_state = String::new();
        let mut dst_state = String::new();
        let mut round_line = String::new();
        let mut src_pass_at: Option<u64> = None;
        let mut dst_down_at: Option<u64> = None;
        let mut errors = 0u32;
        let mut last_list: Option<u64> = None;
        let mut final_seen_at: Option<u64> = None;
        loop {
            let polled = (|| -> Result<_, Fail> {
                Ok((
                    self.read_key(src, "migrate/state")?,
                    self.read_key(src, "migrate/round")?,
                    self.read_key(src, "migrate/result")?,
                    self.read_key(dst, "migrate/state")?,
                ))
            })();
            let now = self.ts.now_ms();
            match polled {
                Err(e) => {
                    errors += 1;
                    if errors >= 20 {
                        return Watch::Failure(format!("xenstore unreadable: {e}"));
                    }
                }
                Ok((s_state, s_round, s_result, d_state)) => {
                    errors = 0;
                    if let Some(s) = s_state.filter(|s| *s != src_state) {
                        self.say(&format!("source: {s}"));
                        if s == "final" && self.cli.final_seen_unix_ms.is_none() {
                            self.cli.final_seen_unix_ms = Some(self.ts.unix_ms());
                            final_seen_at = Some(self.ts.now_ms());
                        }
                        src_state = s;
                    }
                    if let Some(d) = d_state.filter(|d| *d != dst_state) {
                        self.say(&format!("destination: {d}"));
                        dst_state = d;
                    }
                    if let Some(line) = s_round.filter(|l| *l != round_line) {
                        match progress::parse_round(&line) {
                            Ok(r) => {
                                self.say(&progress::progress_line(
                                    &r,
                                    self.guest_pages,
                                    &src_state,
                                ));
                                self.last_round = Some(r);
                            }
                            Err(e) => {
                                self.say(&format!("warning: unreadable round line `{line}`: {e}"))
                            }
                        }
                        round_line = line;
                    }
                    if let Some(r) = s_result {
                        if self.src_result.is_none() {
                            self.cli.result_seen_unix_ms = Some(self.ts.unix_ms());
                            self.say(&format!("source result: {r}"));
                        }
                        self.src_result = Some(r.clone());
                        if r.starts_with("FAIL") {
                            return Watch::Failure(format!("source appliance: {r}"));
                        }
                        if !r.starts_with("PASS") {
                            return Watch::Failure(format!(
                                "source appliance wrote an unknown result `{r}`"
                            ));
                        }
                    }
                    // `committed` comes before the result: the source had the
                    // destination's ACK and will never resume the guest. Its
                    // report and result follow, and are read after the handoff.
                    if src_state == "committed" || self.src_result.is_some() {
                        if dst_state == "applied" {
                            return Watch::Success;
                        }
                        if dst_state == "failed" {
                            return Watch::Failure(
                                "the source committed but the destination failed".into(),
                            );
                        }
                        let at = *src_pass_at.get_or_insert(now);
                        if now.saturating_sub(at) >= grace {
                            return Watch::Failure(format!(
                                "the source committed but the destination did not report `applied` within {} s (state `{dst_state}`)",
                                grace / 1000
                            ));
                        }
                    }
                    if dst_state == "failed" {
                        dst_down_at.get_or_insert(now);
                    }
                }
            }
            let now = self.ts.now_ms();
            // The stop-and-copy round is short when it matters (the guest is
            // down): an `xl list` then would delay seeing its end by the
            // command's cost, so the appliances are only checked again once it
            // has lasted FINAL_QUIET_MS.
            let in_final = src_state == "final"
                && final_seen_at.is_some_and(|t| now.saturating_sub(t) < FINAL_QUIET_MS);
            if !in_final
                && last_list
                    .is_none_or(|t| now.saturating_sub(t) >= duration_ms(self.t.list_period))
            {
                last_list = Some(now);
                let (src_listed, dst_listed) = two_domain_states(self.ts, src, dst);
                match src_listed {
                    Ok(Some(s)) if s.alive() => {}
                    Ok(state) => match self.read_key(src, "migrate/result") {
                        // It stops after its result, as it should (a result
                        // written just before is read by the next poll).
                        Ok(Some(_)) => {}
                        _ => {
                            return Watch::Failure(match state {
                                None => "the source appliance vanished without a result".into(),
                                Some(s) if s.shutdown == Some('c') => {
                                    "the source appliance crashed without a result".into()
                                }
                                Some(_) => "the source appliance stopped without a result".into(),
                            })
                        }
                    },
                    Err(e) => self.say(&format!("warning: {e}")),
                }
                match dst_listed {
                    Ok(Some(s)) if s.alive() => {}
                    Ok(state) if dst_state != "applied" => {
                        if dst_down_at.is_none() {
                            self.say(&format!(
                                "the destination appliance {} (state `{dst_state}`)",
                                match state {
                                    None => "vanished",
                                    Some(s) if s.shutdown == Some('c') => "crashed",
                                    Some(_) => "stopped",
                                }
                            ));
                        }
                        dst_down_at.get_or_insert(self.ts.now_ms());
                    }
                    Ok(_) => {}
                    Err(_) => {} // said once, for the source
                }
            }
            let now = self.ts.now_ms();
            if let Some(at) = dst_down_at {
                if now.saturating_sub(at) >= grace {
                    return Watch::Failure(format!(
                        "the destination appliance failed (state `{dst_state}`) and the source reported nothing within {} s",
                        grace / 1000
                    ));
                }
            }
            if now >= deadline {
                let round = self
                    .last_round
                    .map_or_else(|| "none".to_string(), |r| r.round.to_string());
                return Watch::Failure(format!(
                    "timed out after {} s (source `{src_state}`, destination `{dst_state}`, last round {round})",
                    self.o.timeout_s
                ));
            }
            // Short rounds after the first mean the source may suspend the
            // guest any moment, and the whole switchover may then take less
            // than one slow period.
            let short_rounds = self
                .last_round
                .is_some_and(|r| r.round >= 2 && r.ms <= SHORT_ROUND_MS);
            let switching = matches!(src_state.as_str(), "suspending" | "final" | "committed")
                || self.src_result.is_some()
                || matches!(dst_state.as_str(), "applying" | "applied")
                || short_rounds;
            self.ts.sleep(if switching {
                self.t.poll_fast
            } else {
                self.t.poll
            });
        }
    }

    /// The source appliance's report: `migrate/report`, or, for a report
    /// larger than one xenstore node may be, `migrate/report-parts` = N and
    /// the pieces `migrate/report-part/0` .. N-1 in order.
    fn read_report(&mut self, src: u32) -> Result<Option<String>, Fail> {
        if let Some(r) = self.read_key(src, "migrate/report")? {
            return Ok(Some(r));
        }
        let Some(parts) = self.read_key(src, "migrate/report-parts")? else {
            return Ok(None);
        };
        let parts: u32 = parts
            .parse()
            .ok()
            .filter(|n| (1..=2048).contains(n))
            .ok_or_else(|| format!("migrate/report-parts is `{parts}`, not 1..=2048"))?;
        let mut text = String::new();
        for i in 0..parts {
            let path = format!("{}/migrate/report-part/{i}", Self::home(src));
            let piece = self
                .ts
                .xs_read(&path)
                .map_err(tool)?
                .ok_or_else(|| format!("report part {i} of {parts} missing"))?;
            text.push_str(&piece);
        }
        Ok(Some(text))
    }

    /// Writes the report and the plot; returns the problems as warnings.
    /// A migration that committed needs the source appliance's valid report;
    /// one that did not gets a report in any case: the source's (with no
    /// round when it failed before the first completed), or, when the source
    /// left none or an invalid one, one without figures that says why.
    fn write_outputs(
        &mut self,
        report_text: Result<Option<String>, Fail>,
        committed: bool,
    ) -> Vec<String> {
        let mut warnings = Vec::new();
        if self.o.report.is_none() && self.o.svg.is_none() {
            return warnings;
        }
        // The error: why there is no usable report, and whether one was
        // there but invalid (a warning) rather than absent.
        let source = match report_text {
            Err(e) => Err((
                format!("the source appliance's report could not be read: {e}"),
                true,
            )),
            Ok(None) => Err(("the source appliance left no report".to_string(), false)),
            Ok(Some(text)) => report::parse_any_report(&text).map_err(|e| {
                (
                    format!("the source appliance's report is not valid: {e}"),
                    true,
                )
            }),
        };
        let (value, migrator, pages) = match source {
            Ok((v, s)) => (v, s.migrator, s.per_round_pages),
            Err((why, _)) if committed => {
                warnings.push(format!("{why}; no report or plot written"));
                return warnings;
            }
            Err((why, invalid)) => {
                if invalid {
                    warnings.push(format!("{why}; the report has no figures"));
                } else {
                    self.say(&format!("{why}: the report has the command's figures only"));
                }
                self.cli.figures_missing = Some(why);
                (report::without_figures(), "depmig".to_string(), Vec::new())
            }
        };
        if let Some(path) = self.o.report.clone() {
            let full = report::finish_report(
                value,
                &self.cli,
                self.o.scenario.as_deref(),
                self.o.workload.as_deref(),
            );
            // Never write a report this command would refuse to read.
            match report::validate(&full) {
                Ok(_) => {
                    let text = format!("{full}\n");
                    match self.ts.write_file(&path, text.as_bytes()) {
                        Ok(()) => self.say(&format!("report written to {}", path.display())),
                        Err(e) => warnings.push(format!("report: {e}")),
                    }
                }
                Err(e) => warnings.push(format!(
                    "the report with the command's figures is not valid: {e}; no report written"
                )),
            }
        }
        if let Some(path) = self.o.svg.clone() {
            let mut series = vec![Series {
                label: format!(
                    "{} ({}, {})",
                    migrator,
                    self.o.mode.as_str(),
                    self.o.policy.as_str()
                ),
                pages: pages.clone(),
            }];
            if let Some(b) = self.o.baseline_report.clone() {
                match load_report(self.ts, &b) {
                    Ok((_, s)) => series.push(Series {
                        label: format!("{} (baseline)", s.migrator),
                        pages: s.per_round_pages,
                    }),
                    Err(e) => warnings.push(format!("baseline report left out of the plot: {e}")),
                }
            }
            // A migration that failed before its first round still gets its
            // plot, empty, with a note (and the baseline beside it).
            let empty = pages.is_empty();
            let title = if empty {
                format!(
                    "pages sent per round: {} (no round completed: not migrated)",
                    self.o.guest
                )
            } else {
                format!("pages sent per round: {}", self.o.guest)
            };
            let doc = svg::pages_per_round(&title, &series);
            match self.ts.write_file(&path, doc.as_bytes()) {
                Ok(()) => self.say(&format!(
                    "plot written to {}{}",
                    path.display(),
                    if empty { " (no round completed)" } else { "" }
                )),
                Err(e) => warnings.push(format!("plot: {e}")),
            }
        }
        warnings
    }

    /// Destroys the source guest ([`destroy_source`]) and notes when it was
    /// gone in the report's figures.
    fn destroy_source_now(&mut self) -> Result<SourceStopped, Fail> {
        let p = destroy_source(self.ts, self.guest_id, self.t.gone)?;
        self.cli.source_destroyed_unix_ms = Some(self.ts.unix_ms());
        Ok(p)
    }

    /// After the decision to commit: with the source suspended and the
    /// destination appliance stopped or paused, unpause the shell; then the
    /// names, the thaw, the source's destruction, the report. Everything
    /// between the decision and the unpause is the guest's downtime: one
    /// `xl list`, at most one `xl pause`, and the unpause.
    fn commit(&mut self, shell: u32, src: u32, dst: u32) -> Outcome {
        let mut warnings = Vec::new();
        // The last request the source appliance made of the guest's agent
        // (its freeze): the migrated agent has served it already, so the
        // thaw after the unpause must carry a later number.
        let agent_last = if self.o.mode == Mode::DependencyAware {
            self.ts
                .xs_read(&format!("{}/request", agent_dir(self.guest_id)))
                .ok()
                .flatten()
                .as_deref()
                .and_then(agent_seq)
        } else {
            None
        };
        // The source must not be able to run when the shell does: it is
        // suspended (the source appliance saw it so before its final
        // round). If it is not, it is destroyed first, as a last resort.
        let (src_state, dst_state) = two_domain_states(self.ts, self.guest_id, dst);
        let proof = src_state.and_then(|st| source_stopped_as(self.guest_id, st));
        let (proof, destroyed_first) = match proof {
            Ok(p) => {
                self.say(&format!(
                    "source committed and destination applied: the source guest (domain {}) is suspended; the shell runs first, then the source is destroyed",
                    self.guest_id
                ));
                (p, false)
            }
            Err(e) => {
                self.say(&format!("{e}: destroying it before the shell runs"));
                match self.destroy_source_now() {
                    Ok(p) => (p, true),
                    Err(e) => {
                        return Outcome::NeedsOperator {
                            reason: format!(
                                "{e}. The migrated copy waits paused in domain {shell} ({}); the source guest is not suspended. \
                                 Destroy domain {} and then `xl unpause {shell}`, or destroy {shell}",
                                self.shell_name, self.guest_id
                            ),
                        }
                    }
                }
            }
        };
        // No appliance may still be able to write into the shell when it
        // runs. The destination has nothing left to write after `applied`
        // but its goodbye to the source; it is paused if it has not stopped
        // yet (and destroyed with the source appliance afterwards).
        if let Err(e) = self.quiesce_destination(dst, dst_state.ok().flatten()) {
            return Outcome::NeedsOperator {
                reason: format!(
                    "{e}. The migrated copy waits paused in domain {shell} ({}); the source guest (domain {}) is {}: \
                     destroy domain {dst}, then destroy the source and `xl unpause {shell}`",
                    self.shell_name,
                    self.guest_id,
                    if destroyed_first { "gone" } else { "suspended" }
                ),
            };
        }
        if let Err(e) = unpause_shell(self.ts, shell, &proof) {
            return Outcome::NeedsOperator {
                reason: if destroyed_first {
                    format!("{e}. The source is gone; the only copy of the guest is the paused domain {shell}: run `xl unpause {shell}`")
                } else {
                    format!(
                        "{e}. The migrated copy waits paused in domain {shell}; the source guest (domain {}) is suspended and intact: \
                         run `xl unpause {shell}` and destroy the source, or destroy {shell} and resume the source",
                        self.guest_id
                    )
                },
            };
        }
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
            Err(e) => warnings.push(e),
        }
        // The names, as xl does: the source steps aside, the shell takes
        // the guest's name (after the unpause: names are the operator's,
        // the guest does not wait for them).
        let away = format!("{}--migratedaway", self.o.guest);
        if !destroyed_first {
            match self.ts.xl(&["rename", &self.guest_id.to_string(), &away]) {
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
        // The groups the source froze are still frozen in the migrated
        // guest: its agent thaws them on request, in its new home.
        if self.o.mode == Mode::DependencyAware {
            match self.agent_thaw(shell, agent_last) {
                Ok(n) => self.say(&format!("the guest's agent thawed {n} group(s)")),
                Err(e) => warnings.push(format!(
                    "thawing the groups frozen for the migration: {e}; processes of the guest may stay frozen \
                     (write `<n> thaw` to {}/request)",
                    agent_dir(shell)
                )),
            }
        }
        // The shell runs (and its agent thawed what was frozen): the source
        // goes, and is never resumed.
        let gone = if destroyed_first {
            Ok(proof)
        } else {
            self.say(&format!(
                "destroying the source guest (domain {})",
                self.guest_id
            ));
            self.destroy_source_now()
        };
        match gone {
            Ok(p) => {
                if p.dying {
                    warnings.push(format!(
                        "the source guest (domain {}) is dying but not gone: it may hold foreign mappings",
                        p.domid
                    ));
                }
            }
            Err(e) => warnings.push(format!(
                "{e}: the source (renamed {away}) stays suspended; destroy it, never resume it: the guest runs as domain {shell}"
            )),
        }
        // The source writes its report and result after `committed`.
        self.await_source_result(src, self.t.poll_fast);
        self.cli.outcome = "migrated".into();
        self.cli.source_result = self.src_result.clone().unwrap_or_default();
        self.cli.last_round_seen = self.last_round.map(|r| r.round);
        let report = self.read_report(src);
        for (id, name) in [(src, self.src_name.clone()), (dst, self.dst_name.clone())] {
            if let Err(e) = self.destroy_and_wait(id) {
                warnings.push(format!("appliance {name} (domain {id}): {e}"));
            }
        }
        warnings.extend(self.write_outputs(report, true));
        Outcome::Migrated { warnings }
    }

    /// Makes sure the destination appliance cannot run while the shell
    /// does: stopped already (as `xl list` showed it: `state`), or paused
    /// now; if it cannot be paused, the slow way ([`Self::stop_destination`]).
    fn quiesce_destination(&mut self, dst: u32, state: Option<DomState>) -> Result<(), Fail> {
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

    /// Waits until the source appliance wrote its result (its report comes
    /// first) or stopped, for at most the grace period, polling every `period`.
    fn await_source_result(&mut self, src: u32, period: Duration) {
        let start = self.ts.now_ms();
        loop {
            let result = self.read_key(src, "migrate/result").ok().flatten();
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

    /// Waits briefly for the destination appliance to stop by itself, and
    /// destroys it if it does not.
    fn stop_destination(&mut self, dst: u32) -> Result<(), Fail> {
        let start = self.ts.now_ms();
        loop {
            match domain_state(self.ts, &dst.to_string())? {
                Some(s) if s.alive() => {}
                _ => return Ok(()),
            }
            if self.ts.now_ms().saturating_sub(start) >= duration_ms(self.t.dst_stop) {
                break;
            }
            self.ts.sleep(self.t.poll_fast);
        }
        self.say("the destination appliance is still running: destroying it before the shell runs");
        self.destroy_and_wait(dst).map_err(|e| {
            format!("the destination appliance (domain {dst}) could not be destroyed: {e}")
        })
    }

    /// The failure path: the shell goes first, then the appliances; then the
    /// guest must be running.
    fn roll_back(&mut self, reason: String) -> Outcome {
        self.say(&format!("migration failed: {reason}"));
        let mut warnings: Vec<String> = Vec::new();
        let mut operator: Vec<String> = Vec::new();
        if let Some(shell) = self.created.shell.take() {
            self.say(&format!("destroying the shell (domain {shell})"));
            if let Err(e) = self.destroy_and_wait(shell) {
                operator.push(format!("the shell {} (domain {shell}) could not be destroyed: {e}; it was never unpaused", self.shell_name));
            }
        }
        if let Some(dst) = self.created.dst.take() {
            if let Err(e) = self.destroy_and_wait(dst) {
                warnings.push(format!("destination appliance (domain {dst}): {e}"));
            }
        }
        let mut report = Ok(None);
        if let Some(src) = self.created.src.take() {
            // The source resumes the guest itself once it notices the
            // failure (its peer is gone now): give it time to finish.
            self.await_source_result(src, self.t.poll);
            report = self.read_report(src);
            if let Err(e) = self.destroy_and_wait(src) {
                warnings.push(format!("source appliance (domain {src}): {e}"));
            }
        }
        // No appliance may touch the guest's control node any more, and a
        // suspend request the guest has not taken yet is withdrawn.
        let g = self.guest_id;
        if self.shutdown_opened {
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
        let runs = match self.ensure_guest_runs() {
            Ok(()) => {
                self.say(&format!("the guest runs at the source (domain {g})"));
                true
            }
            Err(e) => {
                operator.push(e);
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

    /// Makes sure the source guest runs: a suspended guest is resumed by a
    /// resume-only appliance, a guest the appliance left paused is unpaused.
    fn ensure_guest_runs(&mut self) -> Result<(), Fail> {
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
        let s = state.ok_or_else(|| format!("the source guest (domain {g}) no longer exists"))?;
        if s.suspended() {
            self.say("the guest is left suspended: starting a resume appliance");
            self.resume_guest()?;
        } else if s.alive() && s.paused && !self.guest_paused_before {
            self.say("the guest is left paused: unpausing it");
            let out = self.ts.xl(&["unpause", &id]).map_err(tool)?;
            if !out.ok {
                return Err(format!("xl unpause {g}: {}", out.last_line()));
            }
        } else if !s.alive() {
            return Err(format!(
                "the source guest (domain {g}) is {}; it cannot be resumed by depmig",
                match s.shutdown {
                    Some('c') => "crashed",
                    Some(_) => "shut down",
                    None => "dying",
                }
            ));
        }
        match domain_state(self.ts, &id)? {
            Some(s) if s.alive() && (!s.paused || self.guest_paused_before) => Ok(()),
            Some(s) => Err(format!(
                "the source guest (domain {g}) is not running: {s:?}"
            )),
            None => Err(format!("the source guest (domain {g}) no longer exists")),
        }
    }

    fn resume_guest(&mut self) -> Result<(), Fail> {
        let g = self.guest_id;
        let name = self.resume_name.clone();
        let cfg = self.write_config(&name, None)?;
        let r = self.create_domain(&cfg, &[], &name)?;
        let outcome = (|| -> Result<(), Fail> {
            self.write_keys(
                r,
                &[
                    ("migrate/role", "resume".into()),
                    ("migrate/guest", g.to_string()),
                ],
            )?;
            self.open_status_dir(r)?;
            let out = self.ts.xl(&["unpause", &r.to_string()]).map_err(tool)?;
            if !out.ok {
                return Err(format!("xl unpause {name}: {}", out.last_line()));
            }
            self.write_keys(r, &[("migrate/go", "1".into())])?;
            let start = self.ts.now_ms();
            loop {
                if let Some(res) = self.read_key(r, "migrate/result")? {
                    self.say(&format!("resume appliance: {res}"));
                    return if res.starts_with("PASS") {
                        Ok(())
                    } else {
                        Err(format!("the resume appliance reported {res}"))
                    };
                }
                match domain_state(self.ts, &r.to_string())? {
                    Some(s) if s.alive() => {}
                    _ => return Err("the resume appliance stopped without a result".into()),
                }
                if self.ts.now_ms().saturating_sub(start) >= duration_ms(self.t.resume) {
                    return Err(format!(
                        "the resume appliance reported nothing within {} s",
                        self.t.resume.as_secs()
                    ));
                }
                self.ts.sleep(self.t.poll);
            }
        })();
        self.destroy_quietly(r, &name);
        outcome.map_err(|e| {
            format!("the source guest (domain {g}) is suspended and could not be resumed: {e}")
        })
    }
}

/// Reads and validates a report file.
pub fn load_report<T: Toolstack + ?Sized>(
    ts: &mut T,
    path: &Path,
) -> Result<(Value, Summary), String> {
    let data = ts.read_file(path).map_err(|e| e.to_string())?;
    let text =
        String::from_utf8(data).map_err(|_| format!("{}: not UTF-8 text", path.display()))?;
    report::parse_report(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// Runs one migration as `opts` says; progress goes to `out`.
pub fn migrate<T: Toolstack + ?Sized>(
    ts: &mut T,
    opts: &MigrateOptions,
    t: &Timings,
    out: &mut dyn Write,
) -> Outcome {
    let refuse = |reason: String| Outcome::Refused { reason };
    let g = &opts.guest;
    let shell_name = opts
        .shell_name
        .clone()
        .unwrap_or_else(|| format!("{g}--incoming"));
    if shell_name == *g {
        return refuse("the shell needs a name of its own".into());
    }

    // Everything that can be checked before a domain is created.
    let cfg_text = match ts.read_file(&opts.config) {
        Ok(t) => t,
        Err(e) => return refuse(format!("guest config: {e}")),
    };
    let cfg = match xlcfg::parse_guest_config(&cfg_text) {
        Ok(c) => c,
        Err(e) => return refuse(format!("guest config {}: {e}", opts.config.display())),
    };
    if let Some(n) = cfg.name.as_deref().filter(|n| n != g) {
        return refuse(format!(
            "{} is the config of `{n}`, not of `{g}`",
            opts.config.display()
        ));
    }
    if !ts.file_exists(&opts.appliance) {
        return refuse(format!(
            "appliance image {} not found (see --appliance)",
            opts.appliance.display()
        ));
    }
    let key = match &opts.key_file {
        Some(p) => match ts
            .read_file(p)
            .map_err(|e| e.to_string())
            .and_then(|d| key::parse_key_file(&d).map_err(|e| e.to_string()))
        {
            Ok(k) => k,
            Err(e) => return refuse(format!("key file {}: {e}", p.display())),
        },
        None => {
            let mut k = [0u8; KEY_BYTES];
            if let Err(e) = ts.random(&mut k) {
                return refuse(format!("no random key: {e}"));
            }
            k
        }
    };
    let key_hex = key::to_hex(&key);
    if let Some(b) = &opts.baseline_report {
        if let Err(e) = load_report(ts, b) {
            return refuse(format!("baseline report: {e}"));
        }
    }
    let guest_id = match domid_of(ts, g) {
        Ok(Some(id)) => id,
        Ok(None) => return refuse(format!("no domain named `{g}` (xl domid)")),
        Err(e) => return refuse(e),
    };
    let state = match domain_state(ts, &guest_id.to_string()) {
        Ok(Some(s)) => s,
        Ok(None) => return refuse(format!("domain {guest_id} (`{g}`) vanished")),
        Err(e) => return refuse(e),
    };
    if !state.alive() {
        return refuse(format!(
            "`{g}` (domain {guest_id}) is not running: {state:?}"
        ));
    }
    // The oracle of the other modes reads what the guest's agent publishes.
    if needs_agent(opts.mode) {
        let path = format!("{}/state", agent_dir(guest_id));
        match ts.xs_read(&path) {
            Ok(Some(s)) if s.trim() == "tracking" => {}
            Ok(s) => {
                return refuse(format!(
                    "mode {} needs the guest agent (guest-lsm) tracking in `{g}`, but {path} is {}",
                    opts.mode.as_str(),
                    s.map_or_else(|| "missing".to_string(), |v| format!("`{}`", v.trim()))
                ))
            }
            Err(e) => return refuse(format!("{path}: {e}")),
        }
    }
    let names = [
        shell_name.clone(),
        format!("{g}--depmig-dst"),
        format!("{g}--depmig-src"),
        format!("{g}--depmig-resume"),
    ];
    for n in &names {
        match domid_of(ts, n) {
            Ok(None) => {}
            Ok(Some(id)) => {
                return refuse(format!("a domain named `{n}` already exists (domain {id}); remove it with `xl destroy {n}`"))
            }
            Err(e) => return refuse(e),
        }
    }
    let [_, dst_name, src_name, resume_name] = names;

    let mut run = Run {
        guest_id,
        guest_paused_before: state.paused,
        guest_pages: cfg.memory_mib.map(|m| m.saturating_mul(256)),
        shell_name,
        src_name,
        dst_name,
        resume_name,
        created: Created::default(),
        cli: CliFigures {
            guest: g.clone(),
            source_domid: guest_id,
            mode: opts.mode.as_str().into(),
            policy: opts.policy.as_str().into(),
            poll_interval_ms: duration_ms(t.poll),
            ..CliFigures::default()
        },
        last_round: None,
        src_result: None,
        shutdown_opened: false,
        agent_opened: Vec::new(),
        ts,
        o: opts,
        t,
        out,
    };
    run.say(&format!("migrating `{g}` (domain {guest_id})"));
    if let Err(e) = run.start(&key_hex) {
        return run.roll_back(e);
    }
    let (Some(shell), Some(src), Some(dst)) = (run.created.shell, run.created.src, run.created.dst)
    else {
        return run.roll_back("internal: start left a domain uncreated".into());
    };
    match run.watch(src, dst) {
        Watch::Success => run.commit(shell, src, dst),
        Watch::Failure(reason) => run.roll_back(reason),
    }
}

#[cfg(test)]
#[path = "migrate_tests.rs"]
mod tests;
