//! `depmig save GUEST FILE`: a migration whose destination is dom0 itself.
//!
//! Only a source appliance is created; its peer is dom0's listener on the
//! appliances' bridge (a [`SaveEnd`]: `crate::savefile::TcpSaver`), which
//! plays the destination with nothing negotiated (`depmig_migrate::saved`)
//! and writes the clear libxc stream to FILE. Everything else is the
//! migration's: the checks, the source appliance armed and watched, the
//! dom0 bitmap route, and the roll-back that makes the guest run again
//! when anything fails before the save end's ACK. Once the source
//! committed (it had the ACK, sent only after FILE was renamed into
//! place) and the save end says `applied`, the suspended guest is
//! destroyed, as `xl save` does.

use std::io::Write;
use std::path::Path;

use depmig_control::Peer;

use super::rollback::Abort;
use super::watch::Watch;
use super::{fall_back, preflight, Outcome, Run, Timings};
use crate::cli::MigrateOptions;
use crate::toolstack::Toolstack;

/// dom0's end of a save, as the watch sees it.
pub trait SaveEnd {
    /// Starts listening for the source appliance with the migration's key
    /// (64 hex digits); `Err` says why it cannot.
    fn start(&mut self, key_hex: &str) -> Result<(), String>;
    /// Its state in the appliances' words: none before the source
    /// connected, then `receiving`, `applied` (FILE complete and renamed,
    /// the ACK sent) or `failed`.
    fn state(&mut self) -> Option<String>;
    /// Why it failed, once `failed`.
    fn failure(&mut self) -> Option<String>;
    /// Gives up: stops listening or receiving and removes what it wrote;
    /// a note for each thing the operator should know.
    fn abandon(&mut self) -> Vec<String>;
    /// What it saved, once `applied` (bytes, pages), for the last line.
    fn summary(&mut self) -> String;
}

/// Saves `opts.guest` through a source appliance whose peer is `peer`
/// (dom0's address on the bridge, where `end` listens) into `file`.
pub fn save<T: Toolstack + ?Sized>(
    ts: &mut T,
    opts: &MigrateOptions,
    file: &Path,
    peer: Peer,
    end: &mut dyn SaveEnd,
    t: &Timings,
    out: &mut dyn Write,
) -> Outcome {
    let checked = match preflight::check(ts, opts) {
        Ok(c) => c,
        Err(refusal) => {
            return Outcome::Refused {
                reason: refusal.to_string(),
            }
        }
    };
    if let Err(reason) = end.start(&checked.key_hex) {
        return Outcome::Refused { reason };
    }
    let (opts, requested_mode) = fall_back(opts, checked.agent_fallback.as_ref());
    let opts = &opts;
    let mut run = Run::new(ts, opts, checked, requested_mode, t, out);
    run.say(&format!(
        "saving `{}` (domain {}) to {}",
        opts.guest,
        run.guest_id,
        file.display()
    ));
    run.saver = Some(end);
    let outcome = run.save_to(peer);
    run.ts.logdirty_release();
    outcome
}

impl<T: Toolstack + ?Sized> Run<'_, T> {
    /// The source appliance armed with dom0 as its peer, the watch, then
    /// the guest destroyed or the roll-back.
    fn save_to(&mut self, peer: Peer) -> Outcome {
        let src = match self.start_source(peer) {
            Ok(src) => src,
            Err(e) => return self.roll_back_save(Abort::Arm(e)),
        };
        match self.watch(src, u32::MAX) {
            Watch::Success => self.finish_save(src),
            Watch::Failure(reason) => self.roll_back_save(Abort::Watch(reason)),
        }
    }

    /// Before the source committed: the save end stops and removes what it
    /// wrote, and the guest runs again.
    fn roll_back_save(&mut self, reason: Abort) -> Outcome {
        let mut notes = Vec::new();
        if let Some(end) = self.saver.as_mut() {
            if let Some(why) = end.failure() {
                notes.push(format!("dom0's save end: {why}"));
            }
            notes.extend(end.abandon());
        }
        let mut outcome = self.roll_back(reason);
        if let Outcome::RolledBack { warnings, .. } = &mut outcome {
            warnings.extend(notes);
        } else {
            for n in notes {
                self.say(&n);
            }
        }
        outcome
    }

    /// The source committed and FILE is complete: the guest, suspended,
    /// is destroyed with the source appliance.
    fn finish_save(&mut self, src: u32) -> Outcome {
        let g = self.guest_id;
        let (_proof, destroyed_first) = match self.source_stop_proof() {
            Ok(p) => p,
            Err(e) => return self.roll_back_save(Abort::Destination(e)),
        };
        let summary = self
            .saver
            .as_mut()
            .map_or_else(String::new, |e| e.summary());
        self.say(&format!(
            "source committed and the file is complete ({summary}): the guest (domain {g}) is {}",
            if destroyed_first {
                "destroyed"
            } else {
                "suspended"
            }
        ));
        let mut warnings = Vec::new();
        self.end_bitmap_route(src, false);
        let report = self.committed_source_report(src);
        if !destroyed_first {
            self.say(&format!("destroying the saved guest (domain {g})"));
        }
        for (id, e) in self.destroy_all(&[src, g]) {
            warnings.push(if id == g {
                format!(
                    "the saved guest (domain {g}) is not gone ({e}): destroy it, never resume it while the file may be restored"
                )
            } else {
                format!("source appliance (domain {id}): {e}")
            });
        }
        self.cli.source_destroyed_unix_ms = Some(self.ts.unix_ms());
        warnings.extend(self.write_outputs(report, true));
        Outcome::Migrated { warnings }
    }
}
