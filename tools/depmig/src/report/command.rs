//! What `depmig migrate` adds to the source appliance's report (`cli`),
//! and the report it writes when the source left it none to add to.

use depmig_control::report::{CommandFigures, MigrationReport, PAGE_SIZE, SCHEMA};

use crate::json::{self, Value};

/// What the command saw of a migration, added to the report under `"cli"`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CliFigures {
    /// The guest's name.
    pub guest: String,
    /// Its domain id at the source.
    pub source_domid: u32,
    /// The shell's domain id (the guest's after the migration).
    pub shell_domid: u32,
    /// The mode the migration runs in.
    pub mode: String,
    /// The mode asked for, when a fallback chose another.
    pub requested_mode: Option<String>,
    /// Why the migration does not run in the mode asked for.
    pub mode_fallback: Option<String>,
    /// The stop policy.
    pub policy: String,
    /// `migrated` or `rolled-back`.
    pub outcome: String,
    /// Why the migration was rolled back (`None` when it migrated).
    pub reason: Option<String>,
    /// The source appliance's result line.
    pub source_result: String,
    /// The last round the command saw in the source's progress (its figures
    /// may be all a failed migration leaves when the source's report is
    /// missing).
    pub last_round_seen: Option<u64>,
    /// `None` when the report's figures are the source appliance's report;
    /// otherwise why there are none (the report then has no round).
    pub figures_missing: Option<String>,
    /// Polling period of the command, ms.
    pub poll_interval_ms: u64,
    /// `migrate/go` written to the source (wall clock, ms); `None` when the
    /// migration failed before it.
    pub go_unix_ms: Option<u64>,
    /// The source first seen in state `final` (the guest suspended).
    pub final_seen_unix_ms: Option<u64>,
    /// The source's result first seen.
    pub result_seen_unix_ms: Option<u64>,
    /// The source guest seen gone after `xl destroy`.
    pub source_destroyed_unix_ms: Option<u64>,
    /// `xl unpause` of the shell returned (two hosts: the destination's
    /// time of it on our clock, or when its answer arrived).
    pub shell_unpaused_unix_ms: Option<u64>,
    /// Two hosts: the unpause on the destination's clock.
    pub destination_unpaused_unix_ms: Option<u64>,
    /// Two hosts: the destination's clock minus ours, ms.
    pub destination_clock_offset_ms: Option<i64>,
    /// Two hosts: how far off that offset may be, ms.
    pub destination_clock_uncertainty_ms: Option<u64>,
}

fn diff(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    b?.checked_sub(a?)
}

impl CliFigures {
    /// The object written under `"cli"`, with the durations between the
    /// times seen (`guest_downtime_ms` needs the source's report: see
    /// [`finish_report`]).
    pub fn to_report(&self) -> CommandFigures {
        CommandFigures {
            guest: Some(self.guest.clone()),
            source_domid: Some(u64::from(self.source_domid)),
            shell_domid: Some(u64::from(self.shell_domid)),
            mode: Some(self.mode.clone()),
            requested_mode: self.requested_mode.clone(),
            mode_fallback: self.mode_fallback.clone(),
            policy: Some(self.policy.clone()),
            outcome: Some(self.outcome.clone()),
            reason: self.reason.clone(),
            source_result: Some(self.source_result.clone()),
            last_round_seen: self.last_round_seen,
            figures_missing: self.figures_missing.clone(),
            poll_interval_ms: Some(self.poll_interval_ms),
            go_unix_ms: self.go_unix_ms,
            final_seen_unix_ms: self.final_seen_unix_ms,
            result_seen_unix_ms: self.result_seen_unix_ms,
            source_destroyed_unix_ms: self.source_destroyed_unix_ms,
            shell_unpaused_unix_ms: self.shell_unpaused_unix_ms,
            destination_unpaused_unix_ms: self.destination_unpaused_unix_ms,
            destination_clock_offset_ms: self.destination_clock_offset_ms,
            destination_clock_uncertainty_ms: self.destination_clock_uncertainty_ms,
            // go -> the shell running: the whole migration as the operator
            // sees it.
            total_time_ms: diff(self.go_unix_ms, self.shell_unpaused_unix_ms),
            // The guest seen suspended -> the shell unpaused (an upper bound
            // of the downtime, coarsened by the polling period).
            downtime_ms: diff(self.final_seen_unix_ms, self.shell_unpaused_unix_ms),
            // The source's PASS seen -> the shell unpaused: dom0's own share.
            switchover_ms: diff(self.result_seen_unix_ms, self.shell_unpaused_unix_ms),
            guest_downtime_ms: None,
        }
    }
}

/// The report `depmig` writes: the appliance's report (as
/// [`super::parse_any_report`] or [`without_figures`] gave it) with the
/// command's figures under `"cli"`, and `scenario`/`workload` filled in
/// when given. Should `report` not read as a report (it always does, having
/// been read before), the figureless report takes its place and
/// `cli.figures_missing` says why.
pub fn finish_report(
    report: Value,
    cli: &CliFigures,
    scenario: Option<&str>,
    workload: Option<&str>,
) -> MigrationReport {
    let mut c = cli.to_report();
    let mut r = match super::read(&report.to_string()) {
        Ok(r) => r,
        Err(e) => {
            c.figures_missing = Some(format!("the report could not be read back: {e}"));
            figureless()
        }
    };
    if let Some(s) = scenario {
        r.scenario = Some(s.to_string());
    }
    if let Some(w) = workload {
        r.workload = Some(w.to_string());
    }
    // The guest's own downtime: suspended, as the source appliance saw it
    // (Xen's wall clock), until the shell was unpaused (dom0's clock).
    let suspended = r.events.as_ref().and_then(|e| e.suspended_unix_ms);
    c.guest_downtime_ms = diff(suspended, cli.shell_unpaused_unix_ms).map(Into::into);
    r.cli = Some(c);
    r
}

/// The report of a migration the source appliance left no usable report
/// of: no round, every figure null, migrator `depmig`.
fn figureless() -> MigrationReport {
    MigrationReport {
        schema: SCHEMA.into(),
        migrator: "depmig".into(),
        page_size: PAGE_SIZE,
        ..MigrationReport::default()
    }
}

/// [`figureless`] as a JSON value. [`finish_report`] adds the command's
/// figures, whose `outcome` (`rolled-back`) and `figures_missing` make it
/// valid and say why it is empty.
pub fn without_figures() -> Value {
    // serde_json writes and reads back a report without fail; were it to
    // fail, `finish_report` would read `null` as no report and take the
    // same figureless one.
    json::parse(&figureless().to_json()).unwrap_or(Value::Null)
}
