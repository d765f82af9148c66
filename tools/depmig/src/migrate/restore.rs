//! `depmig restore FILE`: a migration whose source is dom0 itself.
//!
//! The destination's side is `depmig receive`'s (`receive.rs`): the
//! paused shell and the destination appliance created and armed with a
//! fresh key, taken down on any failure. dom0 then plays the source (a
//! [`RestoreSend`]: `crate::savefile::send_file`), sending the file's
//! libxc stream with the transcript tag, and waits for the appliance's
//! tagged ACK; with the appliance `applied` and no domain of the guest's
//! name on this host ([`no_copy_named`]), the shell runs and takes the
//! guest's name. The file was read through with the strict decoder before
//! this starts.

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::PathBuf;

use depmig_control::keys;
use depmig_control::{Policy, State};

use super::handoff::proof::{no_copy_named, unpause_restored_shell};
use super::receive::{bare_run, options_for, PrepareError, ReceiveOptions, NO_GUEST};
use super::{Outcome, Timings};
use crate::key;
use crate::toolstack::Toolstack;
use crate::twohost::protocol::{Prepare, Reply};

/// dom0's source end of a restore.
pub trait RestoreSend {
    /// Sends the checked file to the destination appliance at `addr`
    /// under the key (64 hex digits); `Ok` once the appliance ACKed it.
    fn send(&mut self, addr: SocketAddrV4, key_hex: &str) -> Result<(), String>;
}

/// What a restore needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreOptions {
    /// The guest's name (its config's `name`).
    pub guest: String,
    /// Its xl config, as text.
    pub config: String,
    /// The save file, for messages.
    pub file: PathBuf,
    /// The appliance image.
    pub appliance: PathBuf,
    /// The bridge the appliance's vif joins.
    pub bridge: String,
    /// Where configs are written.
    pub work_dir: PathBuf,
    /// The destination appliance's address.
    pub ip: Ipv4Addr,
    /// Its prefix length.
    pub prefix: u8,
    /// The port it listens on.
    pub port: u16,
    /// Its memory (MiB).
    pub appliance_memory_mib: u32,
}

/// Restores `ro.guest` from its checked save file through `sender`.
pub fn restore<T: Toolstack + ?Sized>(
    ts: &mut T,
    ro: &RestoreOptions,
    sender: &mut dyn RestoreSend,
    t: &Timings,
    out: &mut dyn Write,
) -> Outcome {
    let mut k = [0u8; depmig_control::KEY_LEN];
    if let Err(e) = ts.random(&mut k) {
        return Outcome::Refused {
            reason: format!("no fresh key: {e}"),
        };
    }
    let key_hex = key::to_hex(&k);
    let prep = Prepare {
        guest: ro.guest.clone(),
        config: ro.config.clone(),
        key: key_hex.clone(),
        ip: ro.ip.to_string(),
        prefix: ro.prefix,
        port: ro.port,
        mode: "baseline".into(),
        policy: Policy::DEFAULT.as_str().into(),
        verify: false,
        compress: "none".into(),
        encrypt: "off".into(),
        delta_cache_mib: 0,
        appliance_memory_mib: ro.appliance_memory_mib,
        link_rate: None,
        fault: None,
    };
    let own = ReceiveOptions {
        appliance: ro.appliance.clone(),
        bridge: ro.bridge.clone(),
        work_dir: ro.work_dir.clone(),
    };
    let cfg_path = ts.work_dir().join(format!("{}--incoming.cfg", ro.guest));
    let opts = match options_for(&prep, &own, &cfg_path) {
        Ok(o) => o,
        Err(e) => {
            return Outcome::Refused {
                reason: PrepareError::Options(e).to_string(),
            }
        }
    };
    let mut run = bare_run(ts, &opts, t, out, NO_GUEST);
    run.say(&format!(
        "restoring `{}` from {}",
        ro.guest,
        ro.file.display()
    ));
    let mut served = match run.prepare(&prep, &cfg_path) {
        Ok(s) => s,
        Err(e) => {
            let created = run.created.shell.is_some() || run.created.dst.is_some();
            let reason = e.to_string();
            return match run.take_down() {
                Err(left) => Outcome::NeedsOperator {
                    reason: format!("{reason}; then: {left}"),
                },
                Ok(()) if created => Outcome::RolledBack {
                    reason,
                    warnings: Vec::new(),
                },
                Ok(()) => Outcome::Refused { reason },
            };
        }
    };
    let addr = SocketAddrV4::new(ro.ip, ro.port);
    run.say(&format!(
        "sending {} to the destination appliance at {addr}",
        ro.file.display()
    ));
    if let Err(e) = sender.send(addr, &key_hex) {
        return not_restored(run.give_up(&format!("the stream was not taken: {e}")));
    }
    // The appliance writes `applied` right after its ACK.
    let start = run.ts.now_ms();
    loop {
        let state = run.read_key(served.dst, keys::STATE).ok().flatten();
        if state.as_deref() == Some(State::Applied.as_str()) {
            break;
        }
        if state.as_deref() == Some(State::Failed.as_str())
            || run.ts.now_ms().saturating_sub(start) >= super::duration_ms(t.grace)
        {
            return not_restored(run.give_up(&format!(
                "the destination appliance acknowledged but did not say `applied` (state `{}`)",
                state.unwrap_or_default()
            )));
        }
        run.ts.sleep(t.poll_fast);
    }
    let proof = match no_copy_named(run.ts, &ro.guest) {
        Ok(p) => p,
        Err(e) => return not_restored(run.give_up(&e)),
    };
    match run.run_shell(&mut served, |ts, shell| {
        unpause_restored_shell(ts, shell, &proof)
    }) {
        Reply::Running { domid, .. } => {
            let mut warnings = Vec::new();
            run.finish(&mut warnings);
            run.say(&format!("`{}` runs as domain {domid}", ro.guest));
            Outcome::Migrated { warnings }
        }
        Reply::Absent { reason } => Outcome::RolledBack {
            reason,
            warnings: Vec::new(),
        },
        Reply::Unsettled { reason } => Outcome::NeedsOperator { reason },
        other => Outcome::NeedsOperator {
            reason: format!("unexpected: {}", other.kind()),
        },
    }
}

/// A receive's "nothing runs here" as a restore's outcome.
fn not_restored(o: super::receive::ReceiveOutcome) -> Outcome {
    use super::receive::ReceiveOutcome;
    match o {
        ReceiveOutcome::NotMigrated { reason } => Outcome::RolledBack {
            reason,
            warnings: Vec::new(),
        },
        ReceiveOutcome::NeedsOperator { reason } => Outcome::NeedsOperator { reason },
        ReceiveOutcome::Migrated { .. } | ReceiveOutcome::Answered { .. } => {
            Outcome::NeedsOperator {
                reason: "internal: a give-up that did not give up".into(),
            }
        }
    }
}
