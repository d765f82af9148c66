//! Migration reports (schema `depmig-migration-report/1`, described in
//! `qemu-tests/baseline/README.md`): validation of a report that came from an
//! appliance or a baseline run, and the figures `depmig` adds itself.
//!
//! A migration that failed before its first round completed still has a
//! report: `rounds` 0 and empty per-round arrays. That is valid only in a
//! report that says the migration did not commit (`cli.outcome`
//! `rolled-back`, or the source appliance's `depmig.result` other than
//! `committed`, with nothing in it saying `committed` or `migrated`);
//! [`validate`] accepts it, [`parse_report`] (the reader of reports whose
//! figures are used: comparisons, the plot's baseline) does not.

use std::fmt;

use crate::json::{self, JsonError, Value};

/// The schema name every report carries.
pub const SCHEMA: &str = "depmig-migration-report/1";

/// More rounds than any policy runs (Xen 3.3's limit is 30).
pub const MAX_ROUNDS: u64 = 10_000;

/// Why a report is not acceptable.
#[derive(Debug, Clone, PartialEq)]
pub enum ReportError {
    /// The text is not JSON.
    Json(JsonError),
    /// The top level is not an object.
    NotObject,
    /// `schema` is missing or names another schema.
    Schema(Option<String>),
    /// A required field is missing.
    Missing(&'static str),
    /// A field has the wrong type or an impossible value.
    Invalid(String),
}

impl fmt::Display for ReportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReportError::Json(e) => write!(f, "not JSON: {e}"),
            ReportError::NotObject => write!(f, "not a JSON object"),
            ReportError::Schema(None) => write!(f, "no \"schema\" field"),
            ReportError::Schema(Some(s)) => write!(f, "schema \"{s}\", expected \"{SCHEMA}\""),
            ReportError::Missing(k) => write!(f, "required field \"{k}\" missing"),
            ReportError::Invalid(why) => write!(f, "{why}"),
        }
    }
}

impl std::error::Error for ReportError {}

/// The figures of a valid report that `depmig` uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Who migrated (`xl-migrate`, `depmig`, ...).
    pub migrator: String,
    /// Pages with contents sent per round.
    pub per_round_pages: Vec<u64>,
    /// Their sum.
    pub total_pages: u64,
    /// 1-based index of the stop-and-copy round, if identified.
    pub final_round: Option<u64>,
    /// What the report says of the migration's end: `Some(true)` committed,
    /// `Some(false)` not committed, `None` when it does not say (the stock
    /// baseline's reports). The command's `cli.outcome` decides when present
    /// (the source may have committed its side and dom0 still rolled back),
    /// else the source appliance's `depmig.result`.
    pub committed: Option<bool>,
}

/// Numeric fields that are optional but, when present, are a number or null.
const OPTIONAL_NUMBERS: [&str; 9] = [
    "link_rate_bytes_per_s",
    "total_pfns",
    "page_bytes",
    "stream_bytes",
    "total_time_ms",
    "downtime_ms",
    "downtime_xl_list_ms",
    "downtime_final_round_ms",
    "poll_interval_ms",
];

fn uint(v: &Value, key: &'static str) -> Result<u64, ReportError> {
    let f = v.get(key).ok_or(ReportError::Missing(key))?;
    f.as_u64().ok_or_else(|| {
        ReportError::Invalid(format!("\"{key}\" is not a non-negative integer: {f}"))
    })
}

/// An array of non-negative integers; `name` (the field's path) goes into
/// the error.
fn uint_array(f: &Value, name: &str) -> Result<Vec<u64>, ReportError> {
    let items = f
        .as_array()
        .ok_or_else(|| ReportError::Invalid(format!("\"{name}\" is not an array")))?;
    let mut out = Vec::with_capacity(items.len());
    for (i, p) in items.iter().enumerate() {
        out.push(p.as_u64().ok_or_else(|| {
            ReportError::Invalid(format!("\"{name}\"[{i}] is not a non-negative integer"))
        })?);
    }
    Ok(out)
}

/// Parses and validates the report of a migration whose per-round figures
/// are to be used: a valid report with at least one round (a report with
/// none, of a migration that failed before its first round completed, is
/// refused with a message saying so).
pub fn parse_report(text: &str) -> Result<(Value, Summary), ReportError> {
    let (v, s) = parse_any_report(text)?;
    if s.per_round_pages.is_empty() {
        return Err(ReportError::Invalid(
            "no round completed (the migration did not commit): no per-round figures".into(),
        ));
    }
    Ok((v, s))
}

/// Parses and validates any report [`validate`] accepts, that of a
/// migration that failed before its first round included.
pub fn parse_any_report(text: &str) -> Result<(Value, Summary), ReportError> {
    let v = json::parse(text).map_err(ReportError::Json)?;
    let s = validate(&v)?;
    Ok((v, s))
}

/// A string field of an object: `None` when absent, null or empty.
fn opt_text<'a>(obj: &'a Value, key: &str, name: &str) -> Result<Option<&'a str>, ReportError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Str(s)) if s.is_empty() => Ok(None),
        Some(Value::Str(s)) => Ok(Some(s.as_str())),
        Some(_) => Err(ReportError::Invalid(format!(
            "\"{name}\" is neither a string nor null"
        ))),
    }
}

/// An optional object field: `None` when absent or null.
fn opt_obj<'a>(v: &'a Value, key: &str) -> Result<Option<&'a Value>, ReportError> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(o @ Value::Obj(_)) => Ok(Some(o)),
        Some(_) => Err(ReportError::Invalid(format!("\"{key}\" is not an object"))),
    }
}

/// What the source appliance (`depmig.result`) and the command
/// (`cli.outcome`) say of the migration's end: `Some(true)` committed.
fn verdicts(v: &Value) -> Result<(Option<bool>, Option<bool>), ReportError> {
    let source = match opt_obj(v, "depmig")? {
        Some(d) => opt_text(d, "result", "depmig.result")?.map(|r| r == "committed"),
        None => None,
    };
    let cli = match opt_obj(v, "cli")? {
        Some(c) => match opt_text(c, "outcome", "cli.outcome")? {
            None => None,
            Some("migrated") => Some(true),
            Some("rolled-back") => Some(false),
            Some(other) => {
                return Err(ReportError::Invalid(format!(
                    "\"cli.outcome\" is \"{other}\", neither \"migrated\" nor \"rolled-back\""
                )))
            }
        },
        None => None,
    };
    Ok((source, cli))
}

/// The per-round arrays of the `depmig` object, which a report with no
/// round must have empty.
const DEPMIG_PER_ROUND: [&str; 4] = [
    "per_round_dirty",
    "per_round_dirty_tainted",
    "per_round_skipped_free",
    "per_round_holes",
];

/// The extra rules of a report with no round: it says the migration did not
/// commit, nothing in it says otherwise, and nothing is per round.
fn check_no_round(v: &Value, source: Option<bool>, cli: Option<bool>) -> Result<(), ReportError> {
    let says = |x: Option<bool>| match x {
        None => "nothing",
        Some(true) => "committed",
        Some(false) => "not committed",
    };
    if cli.or(source) != Some(false) || source == Some(true) || cli == Some(true) {
        return Err(ReportError::Invalid(format!(
            "\"rounds\" 0 is only valid in a report of a migration that did not commit \
             (\"depmig.result\" says {}, \"cli.outcome\" says {})",
            says(source),
            says(cli)
        )));
    }
    if let Some(st) = opt_obj(v, "stream")? {
        if matches!(st.get("complete"), Some(Value::Bool(true))) {
            return Err(ReportError::Invalid(
                "\"stream.complete\" is true in a report with no round".into(),
            ));
        }
    }
    if let Some(d) = opt_obj(v, "depmig")? {
        for key in DEPMIG_PER_ROUND {
            match d.get(key) {
                None | Some(Value::Null) => {}
                Some(Value::Arr(a)) if a.is_empty() => {}
                Some(_) => {
                    return Err(ReportError::Invalid(format!(
                        "\"depmig.{key}\" is not an empty array in a report with no round"
                    )))
                }
            }
        }
    }
    Ok(())
}

/// Checks a parsed report: the schema, the required fields and their types,
/// and that the per-round figures agree with each other.
pub fn validate(v: &Value) -> Result<Summary, ReportError> {
    if !matches!(v, Value::Obj(_)) {
        return Err(ReportError::NotObject);
    }
    match v.get("schema") {
        None => return Err(ReportError::Schema(None)),
        Some(Value::Str(s)) if s == SCHEMA => {}
        Some(other) => {
            return Err(ReportError::Schema(Some(
                other
                    .as_str()
                    .map_or_else(|| other.to_string(), String::from),
            )))
        }
    }
    let migrator = v
        .get("migrator")
        .ok_or(ReportError::Missing("migrator"))?
        .as_str()
        .ok_or_else(|| ReportError::Invalid("\"migrator\" is not a string".into()))?
        .to_string();
    for key in ["scenario", "workload", "downtime_method"] {
        if let Some(f) = v.get(key) {
            if !matches!(f, Value::Str(_) | Value::Null) {
                return Err(ReportError::Invalid(format!(
                    "\"{key}\" is neither a string nor null"
                )));
            }
        }
    }
    let page_size = uint(v, "page_size")?;
    if page_size == 0 || !page_size.is_power_of_two() {
        return Err(ReportError::Invalid(format!(
            "\"page_size\" {page_size} is not a power of two"
        )));
    }
    let rounds = uint(v, "rounds")?;
    if rounds > MAX_ROUNDS {
        return Err(ReportError::Invalid(format!(
            "\"rounds\" {rounds} is not in 0..={MAX_ROUNDS}"
        )));
    }
    let (source, cli) = verdicts(v)?;
    if rounds == 0 {
        check_no_round(v, source, cli)?;
    }
    let final_round = match v.get("final_round") {
        None => return Err(ReportError::Missing("final_round")),
        Some(Value::Null) => None,
        Some(f) if rounds == 0 => {
            return Err(ReportError::Invalid(format!(
                "\"final_round\" {f} in a report with no round"
            )))
        }
        Some(f) => {
            let n = f.as_u64().filter(|n| (1..=rounds).contains(n));
            Some(n.ok_or_else(|| {
                ReportError::Invalid(format!(
                    "\"final_round\" {f} is not a round of 1..={rounds}"
                ))
            })?)
        }
    };
    let per_round_pages = uint_array(
        v.get("per_round_pages")
            .ok_or(ReportError::Missing("per_round_pages"))?,
        "per_round_pages",
    )?;
    if per_round_pages.len() as u64 != rounds {
        return Err(ReportError::Invalid(format!(
            "\"per_round_pages\" has {} entries for {rounds} rounds",
            per_round_pages.len()
        )));
    }
    let per_round = v
        .get("per_round")
        .ok_or(ReportError::Missing("per_round"))?
        .as_array()
        .ok_or_else(|| ReportError::Invalid("\"per_round\" is not an array".into()))?;
    if per_round.len() != per_round_pages.len() {
        return Err(ReportError::Invalid(format!(
            "\"per_round\" has {} entries for {rounds} rounds",
            per_round.len()
        )));
    }
    for (i, (r, pages)) in per_round.iter().zip(&per_round_pages).enumerate() {
        if !matches!(r, Value::Obj(_)) {
            return Err(ReportError::Invalid(format!(
                "\"per_round\"[{i}] is not an object"
            )));
        }
        let n = uint(r, "round")?;
        if n != i as u64 + 1 {
            return Err(ReportError::Invalid(format!(
                "\"per_round\"[{i}] is round {n}, expected {}",
                i + 1
            )));
        }
        let p = uint(r, "pages")?;
        if p != *pages {
            return Err(ReportError::Invalid(format!(
                "round {n}: {p} pages in \"per_round\", {pages} in \"per_round_pages\""
            )));
        }
        for key in ["pfns", "bytes", "records", "start_ms", "duration_ms"] {
            if let Some(f) = r.get(key) {
                if !matches!(f, Value::Null) && f.as_u64().is_none() {
                    return Err(ReportError::Invalid(format!(
                        "round {n}: \"{key}\" is not a non-negative integer or null"
                    )));
                }
            }
        }
    }
    let total_pages = uint(v, "total_pages")?;
    let sum = per_round_pages
        .iter()
        .try_fold(0u64, |a, p| a.checked_add(*p));
    if sum != Some(total_pages) {
        return Err(ReportError::Invalid(format!(
            "\"total_pages\" {total_pages} is not the sum of \"per_round_pages\""
        )));
    }
    for key in OPTIONAL_NUMBERS {
        if let Some(f) = v.get(key) {
            if !matches!(f, Value::Null) && f.as_f64().is_none_or(|x| x < 0.0) {
                return Err(ReportError::Invalid(format!(
                    "\"{key}\" is neither a non-negative number nor null"
                )));
            }
        }
    }
    Ok(Summary {
        migrator,
        per_round_pages,
        total_pages,
        final_round,
        committed: cli.or(source),
    })
}

/// What the command saw of a migration, added to the report under `"cli"`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CliFigures {
    /// The guest's name.
    pub guest: String,
    /// Its domain id at the source.
    pub source_domid: u32,
    /// The shell's domain id (the guest's after the migration).
    pub shell_domid: u32,
    /// `baseline` or `dependency-aware`.
    pub mode: String,
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
    /// `xl unpause` of the shell returned.
    pub shell_unpaused_unix_ms: Option<u64>,
}

fn str_or_null(s: Option<&str>) -> Value {
    s.map_or(Value::Null, Value::str)
}

fn diff(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(a), Some(b)) => b.checked_sub(a),
        _ => None,
    }
}

impl CliFigures {
    /// The JSON object written under `"cli"`.
    pub fn to_json(&self) -> Value {
        Value::Obj(vec![
            ("guest".into(), Value::str(&self.guest)),
            (
                "source_domid".into(),
                Value::uint(u64::from(self.source_domid)),
            ),
            (
                "shell_domid".into(),
                Value::uint(u64::from(self.shell_domid)),
            ),
            ("mode".into(), Value::str(&self.mode)),
            ("policy".into(), Value::str(&self.policy)),
            ("outcome".into(), Value::str(&self.outcome)),
            ("reason".into(), str_or_null(self.reason.as_deref())),
            ("source_result".into(), Value::str(&self.source_result)),
            (
                "last_round_seen".into(),
                Value::opt_uint(self.last_round_seen),
            ),
            (
                "figures_missing".into(),
                str_or_null(self.figures_missing.as_deref()),
            ),
            (
                "poll_interval_ms".into(),
                Value::uint(self.poll_interval_ms),
            ),
            ("go_unix_ms".into(), Value::opt_uint(self.go_unix_ms)),
            (
                "final_seen_unix_ms".into(),
                Value::opt_uint(self.final_seen_unix_ms),
            ),
            (
                "result_seen_unix_ms".into(),
                Value::opt_uint(self.result_seen_unix_ms),
            ),
            (
                "source_destroyed_unix_ms".into(),
                Value::opt_uint(self.source_destroyed_unix_ms),
            ),
            (
                "shell_unpaused_unix_ms".into(),
                Value::opt_uint(self.shell_unpaused_unix_ms),
            ),
            // go -> the shell running: the whole migration as the operator sees it.
            (
                "total_time_ms".into(),
                Value::opt_uint(diff(self.go_unix_ms, self.shell_unpaused_unix_ms)),
            ),
            // The guest seen suspended -> the shell unpaused (an upper bound of
            // the downtime, coarsened by the polling period).
            (
                "downtime_ms".into(),
                Value::opt_uint(diff(self.final_seen_unix_ms, self.shell_unpaused_unix_ms)),
            ),
            // The source's PASS seen -> the shell unpaused: dom0's own share.
            (
                "switchover_ms".into(),
                Value::opt_uint(diff(self.result_seen_unix_ms, self.shell_unpaused_unix_ms)),
            ),
        ])
    }
}

/// The report `depmig` writes: the appliance's report with the command's
/// figures under `"cli"`, and `scenario`/`workload` filled in when given.
pub fn finish_report(
    mut report: Value,
    cli: &CliFigures,
    scenario: Option<&str>,
    workload: Option<&str>,
) -> Value {
    if let Some(s) = scenario {
        report.set("scenario", Value::str(s));
    }
    if let Some(w) = workload {
        report.set("workload", Value::str(w));
    }
    let mut c = cli.to_json();
    // The guest's own downtime: suspended, as the source appliance saw it
    // (Xen's wall clock), until the shell was unpaused (dom0's clock).
    let suspended = report
        .get("events")
        .and_then(|e| e.get("suspended_unix_ms"))
        .and_then(Value::as_u64);
    c.set(
        "guest_downtime_ms",
        Value::opt_uint(diff(suspended, cli.shell_unpaused_unix_ms)),
    );
    report.set("cli", c);
    report
}

/// The report of a migration the source appliance left no usable report
/// of: no round, every figure null, migrator `depmig`. [`finish_report`]
/// adds the command's figures, whose `outcome` (`rolled-back`) and
/// `figures_missing` make it valid and say why it is empty.
pub fn without_figures() -> Value {
    let null = |k: &str| (k.to_string(), Value::Null);
    Value::Obj(vec![
        ("schema".into(), Value::str(SCHEMA)),
        ("migrator".into(), Value::str("depmig")),
        null("scenario"),
        null("workload"),
        null("link_rate_bytes_per_s"),
        ("page_size".into(), Value::uint(4096)),
        ("rounds".into(), Value::uint(0)),
        null("final_round"),
        ("per_round_pages".into(), Value::Arr(Vec::new())),
        ("per_round".into(), Value::Arr(Vec::new())),
        ("total_pages".into(), Value::uint(0)),
        null("total_pfns"),
        null("page_bytes"),
        null("stream_bytes"),
        null("total_time_ms"),
        null("downtime_ms"),
        null("downtime_method"),
        null("downtime_xl_list_ms"),
        null("downtime_final_round_ms"),
        null("poll_interval_ms"),
        null("events"),
        null("stream"),
    ])
}

/// The figures depmig's source appliance adds under `"depmig"` (the stock
/// baseline's reports have none). Absent or null fields are `None`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DepmigFigures {
    /// `baseline`, `dependency-aware` or `paper-analysis` (`None` when
    /// missing or empty).
    pub mode: Option<String>,
    /// Process groups the guest's agent froze for the migration.
    pub frozen_groups: Option<u64>,
    /// Dirty pages per round.
    pub per_round_dirty: Option<Vec<u64>>,
    /// Dirty pages of tainted processes or the kernel per round.
    pub per_round_dirty_tainted: Option<Vec<u64>>,
    /// Pages not sent per round because they were free.
    pub per_round_skipped_free: Option<Vec<u64>>,
    /// Paper-analysis mode: whose each round's dirty tainted pages were,
    /// for the rounds whose census was taken, in round order.
    pub census: Option<Vec<RoundCensus>>,
}

/// Whose one round's dirty tainted pages were (`depmig.census`): every
/// page counts in exactly one of `user`, `page_tables`, `kernel` and
/// `unreadable`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RoundCensus {
    /// The round (1-based).
    pub round: u64,
    /// The round's dirty tainted pages.
    pub asked: u64,
    /// Of those, pages mapped by (tainted) processes: the paper's measure.
    pub user: u64,
    /// Page tables of user address spaces.
    pub page_tables: u64,
    /// The kernel's own pages.
    pub kernel: u64,
    /// Pages nothing could be said about.
    pub unreadable: u64,
}

/// Reads `depmig.census` (parallel arrays `round`, `asked`, `user`,
/// `page_tables`, `kernel`, `unreadable`): rounds ascending within
/// `1..=rounds`, each round's classes adding up to its `asked`, and
/// `asked` the round's dirty tainted pages when the report has them.
fn census(
    d: &Value,
    rounds: usize,
    dirty_tainted: Option<&[u64]>,
) -> Result<Option<Vec<RoundCensus>>, ReportError> {
    let c = match d.get("census") {
        None | Some(Value::Null) => return Ok(None),
        Some(c @ Value::Obj(_)) => c,
        Some(_) => {
            return Err(ReportError::Invalid(
                "\"depmig.census\" is not an object".into(),
            ))
        }
    };
    let keys = [
        "round",
        "asked",
        "user",
        "page_tables",
        "kernel",
        "unreadable",
    ];
    let mut cols = Vec::with_capacity(keys.len());
    for k in keys {
        let name = format!("depmig.census.{k}");
        let a = match c.get(k) {
            Some(f) => uint_array(f, &name)?,
            None => return Err(ReportError::Invalid(format!("\"{name}\" is missing"))),
        };
        if let Some(first) = cols.first().map(Vec::len) {
            if a.len() != first {
                return Err(ReportError::Invalid(format!(
                    "\"{name}\" has {} entries, \"depmig.census.round\" {first}",
                    a.len()
                )));
            }
        }
        cols.push(a);
    }
    let mut out: Vec<RoundCensus> = Vec::with_capacity(cols[0].len());
    for (i, &round) in cols[0].iter().enumerate() {
        let r = RoundCensus {
            round,
            asked: cols[1][i],
            user: cols[2][i],
            page_tables: cols[3][i],
            kernel: cols[4][i],
            unreadable: cols[5][i],
        };
        let bad = |why: String| {
            ReportError::Invalid(format!("\"depmig.census\", round {}: {why}", r.round))
        };
        if r.round == 0 || r.round > rounds as u64 {
            return Err(bad(format!("not a round of the {rounds}")));
        }
        if out.last().is_some_and(|p| p.round >= r.round) {
            return Err(bad("rounds not ascending".into()));
        }
        let sum = [r.user, r.page_tables, r.kernel, r.unreadable]
            .iter()
            .try_fold(0u64, |a, &v| a.checked_add(v));
        if sum != Some(r.asked) {
            return Err(bad(format!("classes do not add up to {} pages", r.asked)));
        }
        out.push(r);
    }
    for r in &out {
        if let Some(t) = dirty_tainted.and_then(|t| t.get(r.round as usize - 1)) {
            if *t != r.asked {
                return Err(ReportError::Invalid(format!(
                    "\"depmig.census\", round {}: {} pages counted, the round had {t} dirty tainted",
                    r.round, r.asked
                )));
            }
        }
    }
    Ok(Some(out))
}

/// Reads the `"depmig"` object of a report already [`validate`]d with
/// `rounds` rounds: `Ok(None)` when there is none, an error naming the
/// field when one has the wrong type or a per-round array's length is not
/// `rounds`.
pub fn depmig_figures(v: &Value, rounds: usize) -> Result<Option<DepmigFigures>, ReportError> {
    let d = match v.get("depmig") {
        None | Some(Value::Null) => return Ok(None),
        Some(d @ Value::Obj(_)) => d,
        Some(_) => return Err(ReportError::Invalid("\"depmig\" is not an object".into())),
    };
    let mode = match d.get("mode") {
        None | Some(Value::Null) => None,
        Some(Value::Str(s)) if s.is_empty() => None,
        Some(Value::Str(s)) => Some(s.clone()),
        Some(_) => {
            return Err(ReportError::Invalid(
                "\"depmig.mode\" is neither a string nor null".into(),
            ))
        }
    };
    let frozen_groups = match d.get("frozen_groups") {
        None | Some(Value::Null) => None,
        Some(f) => Some(f.as_u64().ok_or_else(|| {
            ReportError::Invalid(format!(
                "\"depmig.frozen_groups\" is not a non-negative integer: {f}"
            ))
        })?),
    };
    let per_round = |key: &str| -> Result<Option<Vec<u64>>, ReportError> {
        let name = format!("depmig.{key}");
        match d.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(f) => {
                let a = uint_array(f, &name)?;
                if a.len() != rounds {
                    return Err(ReportError::Invalid(format!(
                        "\"{name}\" has {} entries for {rounds} rounds",
                        a.len()
                    )));
                }
                Ok(Some(a))
            }
        }
    };
    let per_round_dirty_tainted = per_round("per_round_dirty_tainted")?;
    Ok(Some(DepmigFigures {
        mode,
        frozen_groups,
        per_round_dirty: per_round("per_round_dirty")?,
        census: census(d, rounds, per_round_dirty_tainted.as_deref())?,
        per_round_dirty_tainted,
        per_round_skipped_free: per_round("per_round_skipped_free")?,
    }))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A valid report with these pages per round.
    pub(crate) fn sample(migrator: &str, pages: &[u64]) -> String {
        let per_round: Vec<String> = pages
            .iter()
            .enumerate()
            .map(|(i, p)| {
                format!(
                    "{{\"round\":{},\"pages\":{p},\"pfns\":{p},\"bytes\":{},\"records\":1,\"start_ms\":{},\"duration_ms\":10}}",
                    i + 1,
                    p * 4096,
                    i * 10
                )
            })
            .collect();
        let list: Vec<String> = pages.iter().map(u64::to_string).collect();
        format!(
            "{{\"schema\":\"{SCHEMA}\",\"migrator\":\"{migrator}\",\"scenario\":null,\"workload\":null,\
             \"link_rate_bytes_per_s\":5000000,\"page_size\":4096,\"rounds\":{},\"final_round\":{},\
             \"per_round_pages\":[{}],\"per_round\":[{}],\"total_pages\":{},\"total_time_ms\":1234,\
             \"downtime_ms\":56,\"downtime_method\":\"appliance\"}}",
            pages.len(),
            pages.len(),
            list.join(","),
            per_round.join(","),
            pages.iter().sum::<u64>()
        )
    }

    #[test]
    fn accepts_a_valid_report() {
        let (_, s) = parse_report(&sample("depmig", &[131088, 1505, 40])).unwrap();
        assert_eq!(s.migrator, "depmig");
        assert_eq!(s.per_round_pages, vec![131088, 1505, 40]);
        assert_eq!(s.total_pages, 132633);
        assert_eq!(s.final_round, Some(3));
    }

    #[test]
    fn accepts_the_rigs_baseline_report_if_present() {
        // The stock baseline's own output, when a rig run left one behind.
        let p = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../out/rig/baseline-http/files/baseline-http.json"
        );
        if let Ok(text) = std::fs::read_to_string(p) {
            let (_, s) = parse_report(&text).unwrap();
            assert_eq!(s.migrator, "xl-migrate");
            assert!(!s.per_round_pages.is_empty());
        }
    }

    fn reject(text: &str) -> ReportError {
        match parse_report(text) {
            Err(e) => e,
            Ok(_) => panic!("accepted: {text}"),
        }
    }

    #[test]
    fn rejects_reports_that_do_not_hold_together() {
        let good = sample("depmig", &[100, 20, 5]);
        let edit = |from: &str, to: &str| {
            assert!(good.contains(from), "{from} not in the sample");
            good.replacen(from, to, 1)
        };
        assert!(matches!(reject("{"), ReportError::Json(_)));
        assert_eq!(reject("[1]"), ReportError::NotObject);
        assert_eq!(reject("{}"), ReportError::Schema(None));
        assert_eq!(
            reject(&edit(SCHEMA, "depmig-migration-report/2")),
            ReportError::Schema(Some("depmig-migration-report/2".into()))
        );
        assert_eq!(
            reject(&edit("\"migrator\":\"depmig\",", "")),
            ReportError::Missing("migrator")
        );
        assert!(matches!(
            reject(&edit("\"migrator\":\"depmig\"", "\"migrator\":7")),
            ReportError::Invalid(_)
        ));
        assert!(matches!(
            reject(&edit("\"rounds\":3", "\"rounds\":4")),
            ReportError::Invalid(_)
        ));
        assert!(matches!(
            reject(&edit("\"rounds\":3", "\"rounds\":0")),
            ReportError::Invalid(_)
        ));
        assert!(matches!(
            reject(&edit("\"total_pages\":125", "\"total_pages\":126")),
            ReportError::Invalid(_)
        ));
        assert!(matches!(
            reject(&edit("\"final_round\":3", "\"final_round\":9")),
            ReportError::Invalid(_)
        ));
        assert!(matches!(
            reject(&edit("[100,20,5]", "[100,20,-5]")),
            ReportError::Invalid(_)
        ));
        assert!(matches!(
            reject(&edit("{\"round\":2,", "{\"round\":7,")),
            ReportError::Invalid(_)
        ));
        assert!(matches!(
            reject(&edit(
                "{\"round\":2,\"pages\":20",
                "{\"round\":2,\"pages\":21"
            )),
            ReportError::Invalid(_)
        ));
        assert!(matches!(
            reject(&edit("\"page_size\":4096", "\"page_size\":4095")),
            ReportError::Invalid(_)
        ));
        assert!(matches!(
            reject(&edit("\"downtime_ms\":56", "\"downtime_ms\":\"56\"")),
            ReportError::Invalid(_)
        ));
        assert!(matches!(
            reject(&edit("\"downtime_ms\":56", "\"downtime_ms\":-1")),
            ReportError::Invalid(_)
        ));
        assert_eq!(
            reject(&edit("\"final_round\":3,", "")),
            ReportError::Missing("final_round")
        );
        // Null where the schema allows it.
        assert!(parse_report(&edit("\"final_round\":3", "\"final_round\":null")).is_ok());
        assert!(parse_report(&edit("\"downtime_ms\":56", "\"downtime_ms\":null")).is_ok());
    }

    /// A report of a migration that failed before its first round, in the
    /// shape the source appliance writes it (shortened).
    const NO_ROUND: &str = concat!(
        r#"{"schema":"depmig-migration-report/1","migrator":"depmig","page_size":4096,"#,
        r#""rounds":0,"final_round":null,"per_round_pages":[],"per_round":[],"total_pages":0,"#,
        r#""total_time_ms":null,"stream":{"complete":false},"#,
        r#""depmig":{"result":"failed","per_round_dirty":[],"per_round_holes":[]}}"#
    );

    #[test]
    fn a_report_with_no_round_is_valid_only_when_it_did_not_commit() {
        let (_, s) = parse_any_report(NO_ROUND).unwrap();
        assert_eq!(s.per_round_pages, Vec::<u64>::new());
        assert_eq!((s.total_pages, s.final_round), (0, None));
        assert_eq!(s.committed, Some(false));
        // Not for figures: comparisons and the plot's baseline refuse it.
        match parse_report(NO_ROUND) {
            Err(ReportError::Invalid(m)) => assert!(m.contains("no round completed"), "{m}"),
            other => panic!("{other:?}"),
        }
        let edit = |from: &str, to: &str| {
            assert!(NO_ROUND.contains(from), "{from} not in the report");
            NO_ROUND.replacen(from, to, 1)
        };
        let refused = |text: &str, why: &str| match parse_any_report(text) {
            Err(ReportError::Invalid(m)) => assert!(m.contains(why), "{m}\n{text}"),
            other => panic!("{other:?}\n{text}"),
        };
        // A committed migration needs a round.
        refused(
            &edit("\"result\":\"failed\"", "\"result\":\"committed\""),
            "only valid in a report of a migration that did not commit",
        );
        // Saying nothing is not saying it failed.
        let silent = edit("\"result\":\"failed\",", "");
        refused(&silent, "\"depmig.result\" says nothing");
        refused(
            &edit("\"result\":\"failed\"", "\"result\":\"\""),
            "says nothing",
        );
        refused(
            &edit("\"result\":\"failed\"", "\"result\":null"),
            "says nothing",
        );
        // The command's outcome: it decides, and it must agree.
        let with_cli = |text: &str, outcome: &str| {
            format!(
                "{},\"cli\":{{\"outcome\":{outcome}}}}}",
                text.strip_suffix('}').unwrap()
            )
        };
        let (_, s) = parse_any_report(&with_cli(&silent, "\"rolled-back\"")).unwrap();
        assert_eq!(s.committed, Some(false));
        assert!(parse_any_report(&with_cli(NO_ROUND, "\"rolled-back\"")).is_ok());
        refused(
            &with_cli(NO_ROUND, "\"migrated\""),
            "\"cli.outcome\" says committed",
        );
        refused(
            &with_cli(
                &edit("\"result\":\"failed\"", "\"result\":\"committed\""),
                "\"rolled-back\"",
            ),
            "\"depmig.result\" says committed",
        );
        refused(&with_cli(NO_ROUND, "\"maybe\""), "neither \"migrated\" nor");
        refused(
            &with_cli(NO_ROUND, "7"),
            "\"cli.outcome\" is neither a string",
        );
        refused(
            &format!("{},\"cli\":[]}}", NO_ROUND.strip_suffix('}').unwrap()),
            "\"cli\" is not an object",
        );
        refused(
            &edit("\"result\":\"failed\"", "\"result\":7"),
            "\"depmig.result\" is neither",
        );
        refused(
            &edit("\"depmig\":{", "\"depmig\":[],\"x\":{"),
            "\"depmig\" is not an object",
        );
        // Nothing per round, nothing final, nothing complete.
        refused(
            &edit("\"final_round\":null", "\"final_round\":1"),
            "no round",
        );
        refused(
            &edit("\"final_round\":null", "\"final_round\":0"),
            "no round",
        );
        refused(
            &edit("\"per_round_pages\":[]", "\"per_round_pages\":[0]"),
            "\"per_round_pages\" has 1 entries for 0 rounds",
        );
        refused(
            &edit(
                "\"per_round\":[]",
                "\"per_round\":[{\"round\":1,\"pages\":0}]",
            ),
            "\"per_round\" has 1 entries",
        );
        refused(
            &edit("\"total_pages\":0", "\"total_pages\":1"),
            "\"total_pages\" 1 is not the sum",
        );
        refused(
            &edit("\"complete\":false", "\"complete\":true"),
            "\"stream.complete\" is true",
        );
        assert!(
            parse_any_report(&edit("\"stream\":{\"complete\":false}", "\"stream\":null")).is_ok()
        );
        refused(
            &edit("\"per_round_dirty\":[]", "\"per_round_dirty\":[4]"),
            "\"depmig.per_round_dirty\" is not an empty array",
        );
        refused(
            &edit("\"per_round_holes\":[]", "\"per_round_holes\":[0]"),
            "\"depmig.per_round_holes\"",
        );
        refused(
            &edit("\"per_round_holes\":[]", "\"per_round_skipped_free\":\"x\""),
            "\"depmig.per_round_skipped_free\"",
        );
        refused(
            &edit("\"rounds\":0", "\"rounds\":10001"),
            "not in 0..=10000",
        );
    }

    #[test]
    fn a_report_with_rounds_says_whether_it_committed() {
        let base = sample("depmig", &[100, 20]);
        let add = |extra: &str| format!("{},{extra}}}", base.strip_suffix('}').unwrap());
        let committed = |text: &str| parse_report(text).map(|(_, s)| s.committed);
        // The stock baseline's report says nothing.
        assert_eq!(committed(&base), Ok(None));
        assert_eq!(
            committed(&add(r#""depmig":{"result":"committed"}"#)),
            Ok(Some(true))
        );
        assert_eq!(
            committed(&add(r#""depmig":{"result":"failed"}"#)),
            Ok(Some(false))
        );
        assert_eq!(
            committed(&add(r#""cli":{"outcome":"migrated"}"#)),
            Ok(Some(true))
        );
        // The source committed its side, dom0 still rolled back (the
        // destination failed after the ACK): the command's outcome decides.
        assert_eq!(
            committed(&add(
                r#""depmig":{"result":"committed"},"cli":{"outcome":"rolled-back"}"#
            )),
            Ok(Some(false))
        );
        // A failure after some rounds keeps its per-round figures.
        let (_, s) = parse_report(&add(r#""depmig":{"result":"failed"}"#)).unwrap();
        assert_eq!(s.per_round_pages, vec![100, 20]);
    }

    #[test]
    fn a_report_without_figures_needs_the_commands_outcome() {
        // Alone it says nothing of the migration's end: not valid.
        assert!(matches!(
            validate(&without_figures()),
            Err(ReportError::Invalid(m)) if m.contains("did not commit")
        ));
        let cli = CliFigures {
            guest: "g".into(),
            outcome: "rolled-back".into(),
            reason: Some("source appliance: FAIL connecting to the destination".into()),
            source_result: "FAIL connecting to the destination".into(),
            figures_missing: Some("the source appliance left no report".into()),
            ..CliFigures::default()
        };
        let full = finish_report(without_figures(), &cli, Some("migrate-x"), None);
        let again = json::parse(&full.to_string()).unwrap();
        let s = validate(&again).unwrap();
        assert_eq!((s.migrator.as_str(), s.committed), ("depmig", Some(false)));
        assert!(s.per_round_pages.is_empty());
        let c = again.get("cli").unwrap();
        assert_eq!(c.get("go_unix_ms"), Some(&Value::Null));
        assert_eq!(
            c.get("reason").and_then(Value::as_str),
            Some("source appliance: FAIL connecting to the destination")
        );
        // Under a committed migration it is refused.
        let migrated = CliFigures {
            outcome: "migrated".into(),
            ..cli
        };
        assert!(validate(&finish_report(without_figures(), &migrated, None, None)).is_err());
    }

    #[test]
    fn reads_the_appliances_figures() {
        let base = sample("depmig", &[100, 20, 5]);
        let good = format!(
            "{},\"depmig\":{{\"mode\":\"paper-analysis\",\"frozen_groups\":2,\
             \"per_round_dirty\":[110,20,5],\"per_round_dirty_tainted\":[50,3,1],\
             \"per_round_skipped_free\":null,\"census\":{{\"round\":[1,3],\"asked\":[50,1],\"user\":[10,1],\"page_tables\":[2,0],\"kernel\":[37,0],\"unreadable\":[1,0]}}}}}}",
            base.strip_suffix('}').unwrap()
        );
        let (v, s) = parse_report(&good).unwrap();
        let d = depmig_figures(&v, s.per_round_pages.len())
            .unwrap()
            .unwrap();
        assert_eq!(d.mode.as_deref(), Some("paper-analysis"));
        assert_eq!(d.frozen_groups, Some(2));
        assert_eq!(d.per_round_dirty, Some(vec![110, 20, 5]));
        assert_eq!(d.per_round_dirty_tainted, Some(vec![50, 3, 1]));
        assert_eq!(d.per_round_skipped_free, None);
        let census = d.census.expect("census");
        assert_eq!(
            census,
            vec![
                RoundCensus {
                    round: 1,
                    asked: 50,
                    user: 10,
                    page_tables: 2,
                    kernel: 37,
                    unreadable: 1
                },
                RoundCensus {
                    round: 3,
                    asked: 1,
                    user: 1,
                    page_tables: 0,
                    kernel: 0,
                    unreadable: 0
                },
            ]
        );
        // None at all: the stock baseline.
        let (v, _) = parse_report(&sample("xl-migrate", &[1, 2])).unwrap();
        assert_eq!(depmig_figures(&v, 2), Ok(None));
        // Each malformation is named.
        let bad = |from: &str, to: &str, field: &str| {
            assert!(good.contains(from), "{from}");
            // Refused by the validation (a "depmig" that is no object) or by
            // the reader of the figures.
            let got = parse_report(&good.replacen(from, to, 1))
                .and_then(|(v, s)| depmig_figures(&v, s.per_round_pages.len()));
            match got {
                Err(ReportError::Invalid(m)) => assert!(m.contains(field), "{m}"),
                other => panic!("{from} -> {to}: {other:?}"),
            }
        };
        bad("[110,20,5]", "[110,20]", "depmig.per_round_dirty");
        bad("[50,3,1]", "[50,3,1,0]", "depmig.per_round_dirty_tainted");
        bad("[50,3,1]", "[50,-3,1]", "depmig.per_round_dirty_tainted");
        bad("[110,20,5]", "\"x\"", "depmig.per_round_dirty");
        bad(
            "\"per_round_skipped_free\":null",
            "\"per_round_skipped_free\":[1,2,3.5]",
            "depmig.per_round_skipped_free",
        );
        bad(
            "\"frozen_groups\":2",
            "\"frozen_groups\":-2",
            "depmig.frozen_groups",
        );
        bad("\"mode\":\"paper-analysis\"", "\"mode\":7", "depmig.mode");
        // The census: its arrays agree, its rounds exist and ascend, its
        // classes add up to the round's dirty tainted pages.
        bad("\"user\":[10,1]", "\"user\":[10]", "depmig.census.user");
        bad("\"kernel\":[37,0],", "", "depmig.census.kernel");
        bad(
            "\"round\":[1,3]",
            "\"round\":[1,4]",
            "round 4: not a round of the 3",
        );
        bad(
            "\"round\":[1,3]",
            "\"round\":[3,1]",
            "round 1: rounds not ascending",
        );
        bad(
            "\"user\":[10,1]",
            "\"user\":[11,1]",
            "round 1: classes do not add up to 50",
        );
        bad(
            "\"asked\":[50,1],\"user\":[10,1]",
            "\"asked\":[51,1],\"user\":[11,1]",
            "round 1: 51 pages counted, the round had 50 dirty tainted",
        );
        bad(
            "\"census\":{",
            "\"census\":[],\"x\":{",
            "\"depmig.census\" is not an object",
        );
        bad(
            "\"depmig\":{\"mode\"",
            "\"depmig\":[],\"x\":{\"mode\"",
            "\"depmig\" is not an object",
        );
    }

    #[test]
    fn adds_the_commands_figures() {
        let (v, _) = parse_report(&sample("depmig", &[10])).unwrap();
        let cli = CliFigures {
            guest: "g".into(),
            source_domid: 3,
            shell_domid: 4,
            mode: "baseline".into(),
            policy: "xen-4".into(),
            outcome: "migrated".into(),
            reason: None,
            source_result: "PASS done".into(),
            last_round_seen: Some(1),
            figures_missing: None,
            poll_interval_ms: 500,
            go_unix_ms: Some(1000),
            final_seen_unix_ms: Some(5000),
            result_seen_unix_ms: Some(6000),
            source_destroyed_unix_ms: Some(6500),
            shell_unpaused_unix_ms: Some(7000),
        };
        let out = finish_report(v, &cli, Some("migrate-mmuncher"), None);
        // Still a valid report after the additions.
        let again = json::parse(&out.to_string()).unwrap();
        validate(&again).unwrap();
        assert_eq!(
            again.get("scenario").and_then(Value::as_str),
            Some("migrate-mmuncher")
        );
        assert_eq!(again.get("workload"), Some(&Value::Null));
        let c = again.get("cli").unwrap();
        assert_eq!(c.get("total_time_ms").and_then(Value::as_u64), Some(6000));
        assert_eq!(c.get("downtime_ms").and_then(Value::as_u64), Some(2000));
        assert_eq!(c.get("switchover_ms").and_then(Value::as_u64), Some(1000));
        assert_eq!(c.get("shell_domid").and_then(Value::as_u64), Some(4));
        // No `events` in this report: the guest's downtime is unknown.
        assert_eq!(c.get("guest_downtime_ms"), Some(&Value::Null));
        // With the source's suspend event: suspended -> shell unpaused.
        let mut with_events = again.clone();
        let mut ev = json::parse("{\"suspended_unix_ms\":4200}").unwrap();
        ev.set("resumed_unix_ms", Value::Null);
        with_events.set("events", ev);
        let out = finish_report(with_events, &cli, None, None);
        let c = out.get("cli").unwrap();
        assert_eq!(
            c.get("guest_downtime_ms").and_then(Value::as_u64),
            Some(2800)
        );
        let none = CliFigures {
            shell_unpaused_unix_ms: None,
            ..cli
        };
        assert_eq!(none.to_json().get("total_time_ms"), Some(&Value::Null));
    }
}
