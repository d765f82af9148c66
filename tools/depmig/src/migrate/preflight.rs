//! The checks made before anything is created: the options, the guest's
//! config, the key, the guest itself, its agent, and the names the run
//! will give its domains. A refusal here leaves the host as it was.

use std::fmt;
use std::path::{Path, PathBuf};

use depmig_control::bitmap_route::{self, Route};
use depmig_control::{KeyError, Mode, KEY_LEN};

use super::agent::{agent_dir, needs_agent};
use super::domains::{domain_state, domid_of, XlError};
use super::outputs::{load_report, LoadReportError};
use crate::cli::MigrateOptions;
use crate::key;
use crate::toolstack::{DomState, ToolError, Toolstack};
use crate::xlcfg::{self, ConfigError, GuestKind};

/// Why a key file could not be used.
#[derive(Debug)]
pub(super) enum KeyFileError {
    /// It could not be read (the toolstack's message).
    Read(ToolError),
    /// It holds no key (the key parser's message).
    Parse(KeyError),
}

impl fmt::Display for KeyFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyFileError::Read(e) => e.fmt(f),
            KeyFileError::Parse(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for KeyFileError {}

/// Why a migration is refused before anything was created.
#[derive(Debug)]
pub(super) enum Refusal {
    /// the shell needs a name of its own
    ShellNamedAsGuest,
    /// guest config: `<error>` (it could not be read)
    ConfigUnreadable(ToolError),
    /// guest config `<path>`: `<error>`
    ConfigInvalid {
        /// The config file.
        path: PathBuf,
        /// What is wrong with it.
        error: ConfigError,
    },
    /// `<path>` is the config of `<named>`, not of `<guest>`
    ConfigOfAnother {
        /// The config file.
        path: PathBuf,
        /// The name in it.
        named: String,
        /// The guest to migrate.
        guest: String,
    },
    /// `<path>` makes a `<kind>` guest; depmig moves PVH guests only
    NotPvh {
        /// The guest's config.
        path: PathBuf,
        /// What kind of guest it makes.
        kind: GuestKind,
    },
    /// appliance image `<path>` not found (see --appliance)
    NoImage {
        /// The image looked for.
        path: PathBuf,
    },
    /// key file `<path>`: `<why>`
    KeyFile {
        /// The key file.
        path: PathBuf,
        /// Why it could not be used.
        why: KeyFileError,
    },
    /// no random key: `<error>`
    NoRandom(ToolError),
    /// baseline report: `<error>`
    Baseline(LoadReportError),
    /// no domain named `<guest>` (xl domid)
    NoGuest {
        /// The guest to migrate.
        guest: String,
    },
    /// A look-up failed (`xl`'s message).
    Xl(XlError),
    /// domain `<domid>` (`<guest>`) vanished
    Vanished {
        /// The guest's domain id, as looked up just before.
        domid: u32,
        /// The guest to migrate.
        guest: String,
    },
    /// `<guest>` (domain `<domid>`) is not running: `<state>`
    NotRunning {
        /// The guest to migrate.
        guest: String,
        /// Its domain id.
        domid: u32,
        /// Its state as listed.
        state: DomState,
    },
    /// mode `<mode>` needs the guest agent (guest-lsm) tracking in
    /// `<guest>`, but `<path>` is missing (or is `<found>`)
    NoAgent {
        /// The mode asked for.
        mode: Mode,
        /// The guest to migrate.
        guest: String,
        /// The agent's `state` node.
        path: String,
        /// What the node holds, if it exists.
        found: Option<String>,
    },
    /// `<path>`: `<error>` (the agent's `state` node could not be read)
    AgentUnreadable {
        /// The agent's `state` node.
        path: String,
        /// The toolstack's message.
        error: ToolError,
    },
    /// `--bitmap-route direct` on a hypervisor not known to carry the fix
    /// (`<xen_version>`, as `xl info` says)
    DirectWithoutFix {
        /// The hypervisor's version, or why it is unknown.
        xen_version: String,
    },
    /// a domain named `<name>` already exists (domain `<domid>`); remove it
    /// with `xl destroy <name>`
    NameTaken {
        /// The name this run would give a domain.
        name: String,
        /// The domain that has it.
        domid: u32,
    },
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::ShellNamedAsGuest => f.write_str("the shell needs a name of its own"),
            Refusal::ConfigUnreadable(e) => write!(f, "guest config: {e}"),
            Refusal::ConfigInvalid { path, error } => {
                write!(f, "guest config {}: {error}", path.display())
            }
            Refusal::ConfigOfAnother { path, named, guest } => write!(
                f,
                "{} is the config of `{named}`, not of `{guest}`",
                path.display()
            ),
            Refusal::NotPvh { path, kind } => write!(
                f,
                "{} makes {} {kind} guest; depmig moves PVH guests only (type = \"pvh\"): \
                 use xl migrate for PV and HVM guests",
                path.display(),
                if *kind == GuestKind::Hvm { "an" } else { "a" }
            ),
            Refusal::NoImage { path } => write!(
                f,
                "appliance image {} not found (see --appliance)",
                path.display()
            ),
            Refusal::KeyFile { path, why } => write!(f, "key file {}: {why}", path.display()),
            Refusal::NoRandom(e) => write!(f, "no random key: {e}"),
            Refusal::Baseline(e) => write!(f, "baseline report: {e}"),
            Refusal::NoGuest { guest } => write!(f, "no domain named `{guest}` (xl domid)"),
            Refusal::Xl(e) => e.fmt(f),
            Refusal::Vanished { domid, guest } => write!(f, "domain {domid} (`{guest}`) vanished"),
            Refusal::NotRunning {
                guest,
                domid,
                state,
            } => write!(f, "`{guest}` (domain {domid}) is not running: {state:?}"),
            Refusal::NoAgent {
                mode,
                guest,
                path,
                found,
            } => {
                write!(
                    f,
                    "mode {} needs the guest agent (guest-lsm) tracking in `{guest}`, but {path} is ",
                    mode.as_str()
                )?;
                match found {
                    Some(v) => write!(f, "`{}`", v.trim()),
                    None => f.write_str("missing"),
                }
            }
            Refusal::AgentUnreadable { path, error } => write!(f, "{path}: {error}"),
            Refusal::DirectWithoutFix { xen_version } => write!(
                f,
                "{} (this hypervisor: {xen_version})",
                bitmap_route::DirectWithoutFix
            ),
            Refusal::NameTaken { name, domid } => write!(
                f,
                "a domain named `{name}` already exists (domain {domid}); remove it with `xl destroy {name}`"
            ),
        }
    }
}

impl std::error::Error for Refusal {}

impl From<XlError> for Refusal {
    fn from(e: XlError) -> Refusal {
        Refusal::Xl(e)
    }
}

/// What the checks found, for the run.
pub(super) struct Checked {
    /// The guest's domain id.
    pub(super) guest_id: u32,
    /// Its state before anything was done.
    pub(super) state: DomState,
    /// Its memory as its config gives it (MiB).
    pub(super) memory_mib: Option<u64>,
    /// The shared key, as 64 hex digits.
    pub(super) key_hex: String,
    /// The shell's name (none of the four names below is taken).
    pub(super) shell_name: String,
    /// The destination appliance's name.
    pub(super) dst_name: String,
    /// The source appliance's name.
    pub(super) src_name: String,
    /// The resume appliance's name.
    pub(super) resume_name: String,
    /// Why the mode asked for cannot run (no tracking agent): the
    /// migration runs in baseline mode instead.
    pub(super) agent_fallback: Option<String>,
}

/// The hypervisor's version as `xl info` gives it (`xen_version`), or why
/// it could not be read.
fn xen_version<T: Toolstack + ?Sized>(ts: &mut T) -> Result<String, String> {
    let out = ts
        .xl(&["info"])
        .map_err(|e| format!("unknown (xl info: {e})"))?;
    if !out.ok {
        return Err(format!("unknown (xl info: {})", out.last_line()));
    }
    out.stdout
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k.trim() == "xen_version").then(|| v.trim().to_string())
        })
        .ok_or_else(|| "unknown (xl info printed no xen_version)".to_string())
}

/// Checks the guest's config, `text` read from `path`: a PVH guest named
/// `guest` (or unnamed). Both hosts of a two-host migration make this
/// check, the destination on the text the source sent.
pub(super) fn check_guest_config(
    text: &[u8],
    path: &Path,
    guest: &str,
) -> Result<xlcfg::GuestConfig, Refusal> {
    let cfg = xlcfg::parse_guest_config(text).map_err(|error| Refusal::ConfigInvalid {
        path: path.to_path_buf(),
        error,
    })?;
    let kind = cfg.kind();
    if kind != GuestKind::Pvh {
        return Err(Refusal::NotPvh {
            path: path.to_path_buf(),
            kind,
        });
    }
    if let Some(n) = cfg.name.as_deref().filter(|n| *n != guest) {
        return Err(Refusal::ConfigOfAnother {
            path: path.to_path_buf(),
            named: n.to_string(),
            guest: guest.to_string(),
        });
    }
    Ok(cfg)
}

/// Checks everything that can be checked before a domain is created.
pub(super) fn check<T: Toolstack + ?Sized>(
    ts: &mut T,
    opts: &MigrateOptions,
) -> Result<Checked, Refusal> {
    let g = &opts.guest;
    let shell_name = opts
        .shell_name
        .clone()
        .unwrap_or_else(|| format!("{g}--incoming"));
    if shell_name == *g {
        return Err(Refusal::ShellNamedAsGuest);
    }
    let cfg_text = ts
        .read_file(&opts.config)
        .map_err(Refusal::ConfigUnreadable)?;
    let cfg = check_guest_config(&cfg_text, &opts.config, g)?;
    if !ts.file_exists(&opts.appliance) {
        return Err(Refusal::NoImage {
            path: opts.appliance.clone(),
        });
    }
    let key = match &opts.key_file {
        Some(p) => ts
            .read_file(p)
            .map_err(KeyFileError::Read)
            .and_then(|d| key::parse_key_file(&d).map_err(KeyFileError::Parse))
            .map_err(|why| Refusal::KeyFile {
                path: p.clone(),
                why,
            })?,
        None => {
            let mut k = [0u8; KEY_LEN];
            ts.random(&mut k).map_err(Refusal::NoRandom)?;
            k
        }
    };
    let key_hex = key::to_hex(&key);
    if opts.bitmap_route == Route::Direct {
        let xen_version = xen_version(ts);
        if !xen_version
            .as_deref()
            .is_ok_and(bitmap_route::hypervisor_has_fix)
        {
            return Err(Refusal::DirectWithoutFix {
                xen_version: xen_version.unwrap_or_else(|why| why),
            });
        }
    }
    if let Some(b) = &opts.baseline_report {
        load_report(ts, b).map_err(Refusal::Baseline)?;
    }
    let guest_id = domid_of(ts, g)?.ok_or_else(|| Refusal::NoGuest { guest: g.clone() })?;
    let state = domain_state(ts, &guest_id.to_string())?.ok_or_else(|| Refusal::Vanished {
        domid: guest_id,
        guest: g.clone(),
    })?;
    if !state.alive() {
        return Err(Refusal::NotRunning {
            guest: g.clone(),
            domid: guest_id,
            state,
        });
    }
    // The oracle of the other modes reads what the guest's agent publishes.
    // Without a tracking agent nothing is known of the guest's processes,
    // and every dirty page is sent: baseline mode, unless refused.
    let mut agent_fallback = None;
    if needs_agent(opts.mode) {
        let path = format!("{}/state", agent_dir(guest_id));
        match ts.xs_read(&path) {
            Ok(Some(s)) if s.trim() == "tracking" => {}
            Ok(found) => {
                let no_agent = Refusal::NoAgent {
                    mode: opts.mode,
                    guest: g.clone(),
                    path,
                    found,
                };
                if opts.require_agent {
                    return Err(no_agent);
                }
                agent_fallback = Some(format!(
                    "{no_agent}: migrating in baseline mode instead (--require-agent refuses)"
                ));
            }
            Err(error) => return Err(Refusal::AgentUnreadable { path, error }),
        }
    }
    let names = [
        shell_name,
        format!("{g}--depmig-dst"),
        format!("{g}--depmig-src"),
        format!("{g}--depmig-resume"),
    ];
    for n in &names {
        if let Some(domid) = domid_of(ts, n)? {
            return Err(Refusal::NameTaken {
                name: n.clone(),
                domid,
            });
        }
    }
    let [shell_name, dst_name, src_name, resume_name] = names;
    Ok(Checked {
        guest_id,
        state,
        memory_mib: cfg.memory_mib,
        key_hex,
        shell_name,
        dst_name,
        src_name,
        resume_name,
        agent_fallback,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The texts the command has always printed.
    #[test]
    fn messages_keep_their_text() {
        let file = ToolError::File {
            path: "/k".into(),
            reason: "denied".into(),
        };
        let state = DomState {
            domid: 5,
            paused: false,
            shutdown: Some('s'),
            dying: false,
        };
        let cases = [
            (
                Refusal::ShellNamedAsGuest,
                "the shell needs a name of its own".to_string(),
            ),
            (
                Refusal::ConfigUnreadable(file.clone()),
                "guest config: /k: denied".into(),
            ),
            (
                Refusal::ConfigInvalid {
                    path: "/g.cfg".into(),
                    error: ConfigError::NotText,
                },
                format!("guest config /g.cfg: {}", ConfigError::NotText),
            ),
            (
                Refusal::ConfigOfAnother {
                    path: "/g.cfg".into(),
                    named: "other".into(),
                    guest: "guest".into(),
                },
                "/g.cfg is the config of `other`, not of `guest`".into(),
            ),
            (
                Refusal::NoImage {
                    path: "/img".into(),
                },
                "appliance image /img not found (see --appliance)".into(),
            ),
            (
                Refusal::KeyFile {
                    path: "/k".into(),
                    why: KeyFileError::Read(file.clone()),
                },
                "key file /k: /k: denied".into(),
            ),
            (
                Refusal::KeyFile {
                    path: "/k".into(),
                    why: KeyFileError::Parse(KeyError::Length(4)),
                },
                format!("key file /k: {}", KeyError::Length(4)),
            ),
            (
                Refusal::NoRandom(file.clone()),
                "no random key: /k: denied".into(),
            ),
            (
                Refusal::Baseline(LoadReportError::NotText {
                    path: "/b.json".into(),
                }),
                "baseline report: /b.json: not UTF-8 text".into(),
            ),
            (
                Refusal::NoGuest {
                    guest: "guest".into(),
                },
                "no domain named `guest` (xl domid)".into(),
            ),
            (
                Refusal::Xl(XlError::Failed {
                    command: "xl list 5".into(),
                    reason: "boom".into(),
                }),
                "xl list 5: boom".into(),
            ),
            (
                Refusal::Vanished {
                    domid: 5,
                    guest: "guest".into(),
                },
                "domain 5 (`guest`) vanished".into(),
            ),
            (
                Refusal::NotRunning {
                    guest: "guest".into(),
                    domid: 5,
                    state,
                },
                format!("`guest` (domain 5) is not running: {state:?}"),
            ),
            (
                Refusal::NoAgent {
                    mode: Mode::DependencyAware,
                    guest: "guest".into(),
                    path: "/a/state".into(),
                    found: None,
                },
                format!(
                    "mode {} needs the guest agent (guest-lsm) tracking in `guest`, but /a/state is missing",
                    Mode::DependencyAware.as_str()
                ),
            ),
            (
                Refusal::NoAgent {
                    mode: Mode::DependencyAware,
                    guest: "guest".into(),
                    path: "/a/state".into(),
                    found: Some(" stopped\n".into()),
                },
                format!(
                    "mode {} needs the guest agent (guest-lsm) tracking in `guest`, but /a/state is `stopped`",
                    Mode::DependencyAware.as_str()
                ),
            ),
            (
                Refusal::AgentUnreadable {
                    path: "/a/state".into(),
                    error: file,
                },
                "/a/state: /k: denied".into(),
            ),
            (
                Refusal::NameTaken {
                    name: "guest--incoming".into(),
                    domid: 9,
                },
                "a domain named `guest--incoming` already exists (domain 9); remove it with `xl destroy guest--incoming`".into(),
            ),
        ];
        for (refusal, text) in cases {
            assert_eq!(refusal.to_string(), text);
        }
    }
}
