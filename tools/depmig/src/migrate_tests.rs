//! Orchestration tests against the scripted toolstack.

use std::cell::RefCell;
use std::path::PathBuf;
use std::rc::Rc;

use super::*;
use crate::cli::{parse_args, Command};
use crate::fake::{Fake, GUEST_CFG, IMAGE};
use crate::json::{self, Value};
use crate::key;
use crate::report::{self, tests::sample};
use crate::svg::tests::check_xml;
use crate::toolstack::Perm;

const SRC: &str = "guest--depmig-src";
const DST: &str = "guest--depmig-dst";
const RESUME: &str = "guest--depmig-resume";

/// The source appliance's result line when the destination refuses its key.
const KEY_MISMATCH: &str = "FAIL Handshake(KeyMismatch); guest never suspended";

/// The source appliance's report of a migration that failed before its
/// first round, as `depmig_migrate::report::build` writes it (checked against
/// the builder in crates/migrate/src/report.rs, which reads the same file).
const APPLIANCE_FAILED_BEFORE_ROUND_1: &str =
    include_str!("../../../crates/migrate/tests/data/report-failed-before-round-1.json");

/// How the fake appliances behave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Plan {
    /// `rounds` pre-copy rounds, suspend, PASS, applied.
    Happy { rounds: u64 },
    /// Two rounds, then the source fails (the guest never suspended).
    SourceFails,
    /// The source suspends the guest, then crashes.
    CrashAfterSuspend,
    /// Streams forever; with `answers`, fails once its peer is gone.
    Stuck { answers: bool },
    /// The source says PASS with the guest suspended, the destination failed.
    DestFailsAfterPass,
    /// The source pauses the guest (instead of suspending) and crashes.
    PausesThenCrashes,
    /// The source fails before its first round (the destination refused
    /// its key), publishing the script's report first, if any; with
    /// `report_parts` it announces three parts and writes none.
    FailsBeforeRound1,
    /// The destination appliance crashes in round 1 still mapping the
    /// shell (kept by `on_crash = "preserve"`); the source's link stalls
    /// and it fails without ever suspending the guest.
    DestCrashes,
}

/// Knobs of a scripted run.
#[derive(Clone)]
struct Script {
    plan: Plan,
    resume_works: bool,
    report: Option<String>,
    report_parts: bool,
    /// The destination keeps running after `applied`.
    dst_lingers: bool,
    /// The source crashes right after `committed`, still mapping the guest.
    src_crashes_committed: bool,
    /// The source guest runs again after its appliance's PASS.
    source_wakes: bool,
    /// The source appliance takes the dom0 bitmap route (Happy plans).
    bitmap: Option<BitmapPlan>,
}

/// How the fake source appliance uses the dom0 bitmap route: it publishes
/// `bitmap` before its first round, asks for a `clean` in each round and a
/// `final` once the guest is suspended, and reads dom0's reply at its next
/// step; an `err` reply fails the collect and the migration, as in the
/// appliance (which resumes a suspended guest first).
#[derive(Clone)]
struct BitmapPlan {
    /// What it publishes as `bitmap`.
    layout: String,
    /// The sequence numbers of its requests in order (default 1, 2, 3 …).
    seqs: Vec<u64>,
    /// Rewrites `bitmap` to this before its second request.
    relayout: Option<String>,
}

impl BitmapPlan {
    /// A 1044480-frame guest's bitmap in 32 frames at the appliance's
    /// frame 0x1000 (the fake's guest has 0xff000 frames).
    fn new() -> BitmapPlan {
        BitmapPlan::with_layout("4096 32 1044480")
    }

    fn with_layout(layout: &str) -> BitmapPlan {
        BitmapPlan {
            layout: layout.into(),
            seqs: Vec::new(),
            relayout: None,
        }
    }
}

/// The fake source appliance's side of the dom0 bitmap route.
struct BitmapSim {
    plan: BitmapPlan,
    /// Requests made.
    made: usize,
    /// The request waiting for dom0's reply.
    pending: Option<u64>,
}

impl BitmapSim {
    fn publish(&self, f: &mut Fake, a: u32) {
        f.set(a, "bitmap", &self.plan.layout);
    }

    fn request(&mut self, f: &mut Fake, a: u32, final_pass: bool, seen: &RefCell<Seen>) {
        if self.made == 1 {
            if let Some(l) = &self.plan.relayout {
                f.set(a, "bitmap", l);
            }
        }
        let seq = self
            .plan
            .seqs
            .get(self.made)
            .copied()
            .unwrap_or(self.made as u64 + 1);
        self.made += 1;
        let text = format!("{seq} {}", if final_pass { "final" } else { "clean" });
        f.set(a, "bitmap-request", &text);
        seen.borrow_mut().bitmap_requests.push((f.now, text));
        self.pending = Some(seq);
    }

    /// Reads dom0's reply to the pending request (with the appliance's
    /// rights: it must be able to read it and not to write it); the errno
    /// of an `err` answer to it.
    fn answer(&mut self, f: &mut Fake, a: u32, seen: &RefCell<Seen>) -> Option<u64> {
        let seq = self.pending.take()?;
        let reply = f.control(a, "migrate/bitmap-reply").unwrap_or_default();
        seen.borrow_mut()
            .bitmap_replies
            .push((f.now, reply.clone()));
        let mut it = reply.split(' ');
        if it.next() != Some(seq.to_string().as_str()) || it.next() != Some("err") {
            return None;
        }
        it.next().and_then(|e| e.parse().ok())
    }
}

impl Script {
    fn new(plan: Plan) -> Script {
        Script {
            plan,
            resume_works: true,
            report: Some(sample("depmig", &[131088, 500, 60, 20])),
            report_parts: false,
            dst_lingers: false,
            src_crashes_committed: false,
            source_wakes: false,
            bitmap: None,
        }
    }
}

/// What the fake appliances saw of their configuration.
#[derive(Debug, Default)]
struct Seen {
    src_keys: BTreeMap<String, String>,
    dst_keys: BTreeMap<String, String>,
    resume_keys: BTreeMap<String, String>,
    /// The source's bitmap requests: (time, text).
    bitmap_requests: Vec<(u64, String)>,
    /// dom0's replies as the source read them: (time, text).
    bitmap_replies: Vec<(u64, String)>,
}

use std::collections::BTreeMap;

fn read_all(f: &mut Fake, id: u32, keys: &[&str]) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    for k in keys {
        if let Some(v) = f.control(id, k) {
            m.insert((*k).to_string(), v);
        }
    }
    m
}

fn behaviour(s: Script, seen: Rc<RefCell<Seen>>) -> Box<dyn FnMut(&mut Fake)> {
    let mut k: u64 = 0;
    let mut resumed = false;
    let mut ids: Option<(u32, u32)> = None;
    let mut bm = s.bitmap.clone().map(|plan| BitmapSim {
        plan,
        made: 0,
        pending: None,
    });
    Box::new(move |f: &mut Fake| {
        if let Some(r) = f.started(RESUME) {
            if !resumed {
                resumed = true;
                seen.borrow_mut().resume_keys =
                    read_all(f, r, &["migrate/role", "migrate/guest", "migrate/go"]);
                if s.resume_works && f.dom(f.guest).is_some_and(|d| d.shutdown == Some('s')) {
                    f.resume_guest();
                    f.set(r, "state", "resumed");
                    f.set(r, "result", "PASS resumed");
                } else {
                    f.set(r, "result", "FAIL resumedomain: -13");
                }
                f.poweroff(r);
            }
        }
        let src = f.started(SRC);
        let dst = f.started(DST);
        let src_keys = [
            "net/ip",
            "net/prefix",
            "migrate/role",
            "migrate/guest",
            "migrate/peer",
            "migrate/key",
            "migrate/mode",
            "migrate/policy",
            "migrate/fault",
            "migrate/verify",
            "migrate/bitmap-route",
            "migrate/bitmap-reply",
            "migrate/link-rate",
            "migrate/encodings",
        ];
        let dst_keys = [
            "net/ip",
            "net/prefix",
            "migrate/role",
            "migrate/guest",
            "migrate/port",
            "migrate/key",
            "migrate/mode",
            "migrate/policy",
            "migrate/fault",
            "migrate/verify",
        ];
        if let Plan::Stuck { answers } = s.plan {
            if let Some(a) = src {
                if k == 0 {
                    seen.borrow_mut().src_keys = read_all(f, a, &src_keys);
                    f.set(a, "state", "streaming");
                    f.set(
                        a,
                        "round",
                        "round=1 dirty=131072 sent=131072 skipped_free=0 bytes=537395200 ms=90000",
                    );
                }
                k += 1;
                if answers && f.by_name(DST).is_none() {
                    f.set(a, "state", "failed");
                    f.set(a, "result", "FAIL peer closed the connection");
                    f.poweroff(a);
                }
            }
            return;
        }
        if s.plan == Plan::DestCrashes {
            if let (0, Some(a), Some(d)) = (k, src, dst) {
                ids = Some((a, d));
                let (g, shell) = (f.guest, f.shell.unwrap_or(d));
                f.map(a, g);
                f.map(d, shell);
                f.set(d, "state", "receiving");
                f.set(a, "state", "streaming");
            }
            let Some((a, d)) = ids else { return };
            k += 1;
            if k == 5 {
                f.crash(d);
            }
            // The source gives up on a link that no longer moves.
            if k == 5 + DEST_CRASH_STALL_POLLS && f.dom(a).is_some_and(|x| x.running()) {
                f.set(a, "state", "failed");
                f.set(
                    a,
                    "result",
                    "FAIL Transport(Timeout); guest never suspended",
                );
                f.poweroff(a);
            }
            return;
        }
        let rounds = match s.plan {
            Plan::Happy { rounds } => rounds,
            _ => 2,
        };
        // After `committed` the CLI may pause the destination: the
        // appliances finish by the ids they had.
        let (a, d) = match (src, dst) {
            (Some(a), Some(d)) => {
                ids = Some((a, d));
                (a, d)
            }
            _ => match ids {
                Some(p) if k >= rounds + 3 && f.dom(p.0).is_some_and(|x| x.running()) => p,
                _ => return,
            },
        };
        k += 1;
        if k == 1 {
            // Each appliance maps its domain until it powers off.
            let (g, shell) = (f.guest, f.shell.unwrap_or(d));
            f.map(a, g);
            f.map(d, shell);
            let sk = read_all(f, a, &src_keys);
            let dk = read_all(f, d, &dst_keys);
            let mut seen = seen.borrow_mut();
            seen.src_keys = sk;
            seen.dst_keys = dk;
            f.set(a, "state", "connecting");
            f.set(d, "state", "receiving");
            if let Some(b) = &bm {
                b.publish(f, a);
            }
            return;
        }
        if let Some(b) = bm.as_mut() {
            if let Some(errno) = b.answer(f, a, &seen) {
                // The collect failed: the source resumes a guest it
                // suspended, fails, and its peer sees the link go.
                if f.dom(f.guest).is_some_and(|g| g.shutdown == Some('s')) {
                    f.resume_guest();
                }
                f.set(a, "state", "failed");
                f.set(
                    a,
                    "result",
                    &format!("FAIL log-dirty collect: dom0 answered errno {errno}"),
                );
                f.poweroff(a);
                f.set(d, "state", "failed");
                f.poweroff(d);
                return;
            }
        }
        if s.plan == Plan::FailsBeforeRound1 {
            if k == 2 {
                f.set(d, "state", "failed");
                f.poweroff(d);
                // As the appliance does: the report, then the result.
                if let Some(rep) = &s.report {
                    f.set(a, "report", rep);
                }
                if s.report_parts {
                    f.set(a, "report-parts", "3");
                }
                f.set(a, "state", "failed");
                f.set(a, "result", KEY_MISMATCH);
                f.poweroff(a);
            }
            return;
        }
        if k <= rounds + 1 {
            let r = k - 1;
            f.set(a, "state", "streaming");
            let sent = if r == 1 { 131088 } else { 500 / r };
            f.set(
                a,
                "round",
                &format!(
                    "round={r} dirty={sent} sent={sent} skipped_free=0 bytes={} ms=1000",
                    sent * 4100
                ),
            );
            if let Some(b) = bm.as_mut() {
                b.request(f, a, false, &seen);
            }
            return;
        }
        if k == rounds + 2 {
            match s.plan {
                Plan::SourceFails => {
                    f.set(a, "state", "failed");
                    f.set(
                        a,
                        "result",
                        "FAIL destination refused: key mismatch (NAK 002)",
                    );
                    f.poweroff(a);
                    f.set(d, "state", "failed");
                    f.poweroff(d);
                }
                Plan::PausesThenCrashes => {
                    let g = f.guest;
                    if let Some(gd) = f.dom_mut(g) {
                        gd.paused = true;
                    }
                    f.crash(a);
                }
                _ => {
                    f.set(a, "state", "suspending");
                    if !f.suspend_guest(a) {
                        f.set(a, "state", "failed");
                        f.set(a, "result", "FAIL could not write control/shutdown");
                        f.poweroff(a);
                        return;
                    }
                    f.set(a, "state", "final");
                    if let Some(b) = bm.as_mut() {
                        b.request(f, a, true, &seen);
                    }
                    if s.plan == Plan::CrashAfterSuspend {
                        f.crash(a);
                    }
                }
            }
            return;
        }
        if k == rounds + 3 {
            // As the appliances do: the destination applies and ACKs, the
            // source publishes `committed`; its report and result follow.
            f.set(d, "state", "applying");
            if s.plan == Plan::DestFailsAfterPass {
                f.set(d, "state", "failed");
            } else {
                f.set(d, "state", "applied");
            }
            f.set(a, "state", "committed");
            if s.source_wakes {
                f.resume_guest();
            }
            if s.src_crashes_committed {
                f.crash(a);
            }
            return;
        }
        if k == rounds + 4 {
            if let Some(rep) = &s.report {
                if s.report_parts {
                    let chunks: Vec<String> = rep
                        .as_bytes()
                        .chunks(700)
                        .map(|c| String::from_utf8_lossy(c).into_owned())
                        .collect();
                    f.set(a, "report-parts", &chunks.len().to_string());
                    // The appliance makes its own directory for the parts.
                    f.set(a, "report-part", "");
                    for (i, c) in chunks.iter().enumerate() {
                        f.set(a, &format!("report-part/{i}"), c);
                    }
                } else {
                    f.set(a, "report", rep);
                }
            }
            f.set(a, "result", "PASS 4 rounds, 131668 pages");
            f.poweroff(a);
            if !s.dst_lingers && f.dom(d).is_some_and(|x| !x.paused) {
                f.poweroff(d);
            }
        }
    })
}

/// Polls (one a second) between the destination's crash and the source's
/// failure: the appliance's stall timeout.
const DEST_CRASH_STALL_POLLS: u64 = 30;

fn options(extra: &[&str]) -> MigrateOptions {
    let mut args = vec![
        "migrate",
        "guest",
        "--config",
        GUEST_CFG,
        "--appliance",
        IMAGE,
    ];
    args.extend_from_slice(extra);
    match parse_args(&args) {
        Ok(Command::Migrate(o)) => *o,
        other => panic!("{other:?}"),
    }
}

struct Ran {
    f: Fake,
    outcome: Outcome,
    seen: Rc<RefCell<Seen>>,
    text: String,
}

fn run_with(script: Script, extra: &[&str], setup: impl FnOnce(&mut Fake)) -> Ran {
    let seen = Rc::new(RefCell::new(Seen::default()));
    let mut f = Fake::new(behaviour(script, seen.clone()));
    f.writers.push(DST.into());
    setup(&mut f);
    let o = options(extra);
    let mut out: Vec<u8> = Vec::new();
    let outcome = migrate(&mut f, &o, &Timings::default(), &mut out);
    Ran {
        f,
        outcome,
        seen,
        text: String::from_utf8_lossy(&out).into_owned(),
    }
}

fn run(plan: Plan) -> Ran {
    run_with(Script::new(plan), &[], |_| {})
}

/// The appliance the guest's control/shutdown was opened to.
fn src_id_in_chmod(f: &Fake) -> String {
    let g = f.guest;
    f.log
        .iter()
        .find_map(|l| {
            l.strip_prefix(&format!(
                "xs chmod /local/domain/{g}/control/shutdown n{g} b"
            ))
        })
        .expect("control/shutdown opened to the source")
        .to_string()
}

/// Only dom0's own domains are left and the guest runs under its name.
fn assert_clean(f: &Fake, guest_id: u32) {
    let names: Vec<&str> = f.doms.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, ["guest"], "domains left: {:?}", f.doms);
    let g = f.by_name("guest").unwrap();
    assert_eq!(g.id, guest_id);
    assert!(g.running(), "guest not running: {g:?}");
    assert!(f.violations.is_empty(), "violations: {:?}", f.violations);
}

#[test]
fn xl_list_lines_are_read() {
    let out = "Name                                        ID   Mem VCPUs\tState\tTime(s)\n\
               guest                                        5   512     1     -b----       4.2\n";
    assert_eq!(
        parse_xl_list(out),
        Some(DomState {
            domid: 5,
            paused: false,
            shutdown: None,
            dying: false
        })
    );
    let s = parse_xl_list("h\nguest 5 512 1 ---ss- 4.2\n").unwrap();
    assert!(s.suspended() && !s.alive());
    let s = parse_xl_list("h\n(null) 7 0 1 --p--d 4.2\n").unwrap();
    assert!(s.dying && s.paused && !s.alive());
    let s = parse_xl_list("h\nx 8 64 1 ---sc- 0.1\n").unwrap();
    assert_eq!(s.shutdown, Some('c'));
    assert_eq!(parse_xl_list("h\n"), None);
    assert_eq!(parse_xl_list("h\nx 8 64 1 -b- 0.1\n"), None);
    assert_eq!(parse_xl_list("h\nx y 64 1 -b---- 0.1\n"), None);
}

/// The log's toolstack steps (`xl` and domctls) from the last `first`
/// before the shell's unpause up to that unpause.
fn handoff_steps(f: &Fake, first: &str, unpause: &str) -> Vec<String> {
    let end = f
        .pos(unpause)
        .unwrap_or_else(|| panic!("no `{unpause}`: {:#?}", f.log));
    let start = f.log[..end]
        .iter()
        .rposition(|l| l == first)
        .unwrap_or_else(|| panic!("no `{first}` before `{unpause}`: {:#?}", f.log));
    f.log[start..=end]
        .iter()
        .filter(|l| l.starts_with("xl ") || l.starts_with("domctl "))
        .cloned()
        .collect()
}

#[test]
fn the_handoff_takes_domctls_where_offered_and_xl_where_they_fail() {
    // Offered: two state reads, the destination's pause and the unpause,
    // one hypercall each; the fake applies xl's rules to them.
    let r = run_with(Script::new(Plan::Happy { rounds: 3 }), &[], |f| {
        f.domctl = true;
    });
    let (f, shell, dst) = migrated_cleanly(&r);
    let g = f.guest;
    assert_eq!(
        handoff_steps(
            f,
            &format!("domctl getdomaininfo {g}"),
            &format!("domctl unpause {shell}")
        ),
        [
            format!("domctl getdomaininfo {g}"),
            format!("domctl getdomaininfo {dst}"),
            format!("domctl pause {dst}"),
            format!("domctl unpause {shell}"),
        ]
    );
    assert!(
        !f.log.contains(&format!("xl unpause {shell}")),
        "{:#?}",
        f.log
    );
    assert!(f.violations.is_empty(), "{:?}", f.violations);
    assert!(r.text.contains("; handoff by domctls"), "{}", r.text);
    assert!(f
        .by_name("guest")
        .is_some_and(|d| d.id == shell && d.running()));

    // Every domctl failing: each step falls back to xl, same order.
    let r = run_with(Script::new(Plan::Happy { rounds: 3 }), &[], |f| {
        f.domctl = true;
        f.fail_domctl = true;
    });
    let (f, shell, dst) = migrated_cleanly(&r);
    let g = f.guest;
    assert_eq!(
        handoff_steps(
            f,
            &format!("domctl getdomaininfo {g}"),
            &format!("xl unpause {shell}")
        ),
        [
            format!("domctl getdomaininfo {g}"),
            "xl list".to_string(),
            format!("domctl pause {dst}"),
            format!("xl pause {dst}"),
            format!("domctl unpause {shell}"),
            format!("xl unpause {shell}"),
        ]
    );
    assert!(f.violations.is_empty(), "{:?}", f.violations);
}

#[test]
fn happy_path_runs_the_shell_while_the_source_is_suspended_then_destroys_it() {
    let r = run_with(
        Script::new(Plan::Happy { rounds: 3 }),
        &[
            "--report",
            "/out/r.json",
            "--svg",
            "/out/p.svg",
            "--scenario",
            "migrate-test",
        ],
        |_| {},
    );
    assert_eq!(
        r.outcome,
        Outcome::Migrated { warnings: vec![] },
        "{}",
        r.text
    );
    assert_eq!(r.outcome.exit_code(), 0);
    let f = &r.f;
    let (g, shell) = (f.guest, f.shell.unwrap());
    // The order that matters: the shell runs while the source is
    // suspended, then the source steps aside, the shell takes its name and
    // the source is destroyed (the fake records a violation if the source
    // could run at the unpause). Between the decision and the unpause: one
    // `xl list`, the destination's pause, the unpause.
    let away = f
        .pos(&format!("xl rename {g} guest--migratedaway"))
        .expect("source renamed");
    let rename = f
        .pos(&format!("xl rename {shell} guest"))
        .expect("shell renamed");
    let unpause = f
        .pos(&format!("xl unpause {shell}"))
        .expect("shell unpaused");
    let destroy = f.pos(&format!("xl destroy {g}")).expect("source destroyed");
    assert!(
        unpause < away && away < rename && rename < destroy,
        "{:#?}",
        f.log
    );
    let listed = f.log[..unpause]
        .iter()
        .rposition(|l| l == "xl list")
        .expect("one xl list before the unpause");
    assert_eq!(
        f.log[listed + 1..unpause]
            .iter()
            .filter(|l| l.starts_with("xl "))
            .collect::<Vec<_>>(),
        [&format!("xl pause {}", shell + 1)],
        "{:#?}",
        f.log
    );
    assert!(f.violations.is_empty(), "{:?}", f.violations);
    assert!(f.dom(g).is_none());
    assert_eq!(
        f.log
            .iter()
            .filter(|l| **l == format!("xl unpause {shell}"))
            .count(),
        1
    );
    // The shell came from the guest's config under its own name, paused.
    assert!(
        f.log.contains(&format!(
            "xl create -p {GUEST_CFG} name=\"guest--incoming\""
        )),
        "{:#?}",
        f.log
    );
    // Afterwards only the migrated guest is left, under the guest's name.
    let names: Vec<&str> = f.doms.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, ["guest"]);
    let now = f.by_name("guest").unwrap();
    assert_eq!(now.id, shell);
    assert!(now.running());
    assert!(f.violations.is_empty(), "{:?}", f.violations);
    // A progress line per round.
    for n in 1..=3 {
        assert!(
            r.text.contains(&format!("depmig: round   {n} [")),
            "no progress for round {n}:\n{}",
            r.text
        );
    }
    // The report: the appliance's, valid, with the command's figures.
    let text = String::from_utf8(f.files[&PathBuf::from("/out/r.json")].clone()).unwrap();
    let v = json::parse(&text).unwrap();
    report::validate(&v).unwrap();
    assert_eq!(
        v.get("scenario").and_then(Value::as_str),
        Some("migrate-test")
    );
    assert_eq!(report::validate(&v).unwrap().committed, Some(true));
    let cli = v.get("cli").unwrap();
    assert_eq!(cli.get("outcome").and_then(Value::as_str), Some("migrated"));
    assert_eq!(cli.get("reason"), Some(&Value::Null));
    assert_eq!(cli.get("figures_missing"), Some(&Value::Null));
    assert_eq!(cli.get("last_round_seen").and_then(Value::as_u64), Some(3));
    assert_eq!(
        cli.get("go_unix_ms").and_then(Value::as_u64),
        Some(1_800_000_000_000)
    );
    assert_eq!(
        cli.get("source_domid").and_then(Value::as_u64),
        Some(u64::from(g))
    );
    assert_eq!(
        cli.get("shell_domid").and_then(Value::as_u64),
        Some(u64::from(shell))
    );
    let total = cli.get("total_time_ms").and_then(Value::as_u64).unwrap();
    let down = cli.get("downtime_ms").and_then(Value::as_u64).unwrap();
    assert!(down > 0 && down < total, "downtime {down} total {total}");
    // The plot: one bar per round of the report.
    let svg = String::from_utf8(f.files[&PathBuf::from("/out/p.svg")].clone()).unwrap();
    let els = check_xml(&svg).unwrap();
    let bars = els
        .iter()
        .filter(|(n, a)| n == "rect" && a.iter().any(|(k, v)| k == "class" && v == "bar s0"))
        .count();
    assert_eq!(bars, 4);
}

#[test]
fn a_source_running_again_after_pass_is_destroyed_before_the_shell_runs() {
    let mut script = Script::new(Plan::Happy { rounds: 2 });
    script.source_wakes = true;
    let r = run_with(script, &[], |_| {});
    assert_eq!(r.outcome.exit_code(), 0, "{:?}\n{}", r.outcome, r.text);
    let f = &r.f;
    let (g, shell) = (f.guest, f.shell.unwrap());
    let destroy = f.pos(&format!("xl destroy {g}")).expect("source destroyed");
    let unpause = f
        .pos(&format!("xl unpause {shell}"))
        .expect("shell unpaused");
    assert!(destroy < unpause, "{:#?}", f.log);
    assert!(f.pos(&format!("xl rename {g} ")).is_none(), "{:#?}", f.log);
    assert!(r.text.contains("is not suspended"), "{}", r.text);
}

#[test]
fn a_source_woken_while_its_appliance_maps_it_is_dying_enough_to_run_the_shell() {
    let mut script = Script::new(Plan::Happy { rounds: 2 });
    script.source_wakes = true;
    let r = run_with(script, &[], |_| {});
    let (f, shell, _) = migrated_cleanly(&r);
    let g = f.guest;
    // The source appliance still mapped the guest when it was destroyed:
    // dying is proof enough, the shell did not wait for it to go.
    let destroy = f.pos(&format!("xl destroy {g}")).unwrap();
    let unpause = f.pos(&format!("xl unpause {shell}")).unwrap();
    let between = &f.log[destroy..unpause];
    assert!(
        between.iter().filter(|l| l.starts_with("xl list")).count() <= 2,
        "{between:#?}"
    );
    assert!(f.dom(g).is_none(), "{:?}", f.doms);
}

#[test]
fn a_source_appliance_that_crashed_after_committing_goes_before_the_source_it_maps() {
    let mut script = Script::new(Plan::Happy { rounds: 2 });
    script.src_crashes_committed = true;
    let r = run_with(script, &[], |_| {});
    let warnings = match &r.outcome {
        Outcome::Migrated { warnings } => warnings,
        other => panic!("{other:?}\n{}", r.text),
    };
    // Its report is missing, nothing else.
    assert!(
        warnings
            .iter()
            .all(|w| !w.contains("dying") && !w.contains("still exists")),
        "{warnings:?}"
    );
    let f = &r.f;
    let (g, shell) = (f.guest, f.shell.unwrap());
    let src = shell + 2;
    let app_gone = f
        .pos(&format!("xl destroy {src}"))
        .expect("source appliance destroyed");
    let source_gone = f.pos(&format!("xl destroy {g}")).expect("source destroyed");
    assert!(app_gone < source_gone, "{:#?}", f.log);
    assert!(
        f.dom(g).is_none() && f.maps.is_empty(),
        "{:?} {:?}",
        f.doms,
        f.maps
    );
    assert!(f.dom(shell).is_some_and(crate::fake::Dom::running));
    assert!(f.violations.is_empty(), "{:?}", f.violations);
}

#[test]
fn appliances_get_the_agreed_keys_and_no_more_rights() {
    let r = run(Plan::Happy { rounds: 2 });
    assert_eq!(r.outcome.exit_code(), 0, "{:?}\n{}", r.outcome, r.text);
    let f = &r.f;
    let seen = r.seen.borrow();
    let g = f.guest.to_string();
    let shell = f.shell.unwrap().to_string();
    let key = key::to_hex(&std::array::from_fn(|i| {
        (i as u8).wrapping_mul(7).wrapping_add(1)
    }));
    let want_src: BTreeMap<String, String> = [
        ("net/ip", "10.77.0.21"),
        ("net/prefix", "24"),
        ("migrate/role", "source"),
        ("migrate/guest", g.as_str()),
        ("migrate/peer", "10.77.0.22:7100"),
        ("migrate/key", key.as_str()),
        ("migrate/mode", "baseline"),
        ("migrate/policy", "xen-4"),
        ("migrate/verify", "off"),
        ("migrate/bitmap-route", "auto"),
        ("migrate/bitmap-reply", ""),
        ("migrate/encodings", "adaptive"),
    ]
    .into_iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(seen.src_keys, want_src);
    let want_dst: BTreeMap<String, String> = [
        ("net/ip", "10.77.0.22"),
        ("net/prefix", "24"),
        ("migrate/role", "destination"),
        ("migrate/guest", shell.as_str()),
        ("migrate/port", "7100"),
        ("migrate/key", key.as_str()),
        ("migrate/mode", "baseline"),
        ("migrate/policy", "xen-4"),
        ("migrate/verify", "off"),
    ]
    .into_iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(seen.dst_keys, want_dst);
    // The control keys were readable but not writable by the appliances,
    // and everything the appliances wrote was allowed (the fake checks both).
    assert!(f.violations.is_empty(), "{:?}", f.violations);
    // The source may write the guest's control/shutdown; the guest stays owner.
    // go comes last, after every other key and permission and after the
    // appliances were unpaused (the fake numbers domains in creation order).
    let shell_id = f.shell.unwrap();
    let (dst_id, src_id) = (shell_id + 1, shell_id + 2);
    assert_eq!(src_id.to_string(), src_id_in_chmod(f));
    let go_writes: Vec<usize> = f
        .log
        .iter()
        .enumerate()
        .filter(|(_, l)| l.contains("/depmig/migrate/go=1"))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(go_writes.len(), 2);
    assert!(
        f.log[go_writes[0]].starts_with(&format!("xs write /local/domain/{dst_id}/")),
        "destination first"
    );
    assert!(f.log[go_writes[1]].starts_with(&format!("xs write /local/domain/{src_id}/")));
    for (i, l) in f.log.iter().enumerate() {
        if (l.starts_with("xs write") || l.starts_with("xs chmod")) && !l.contains("/migrate/go") {
            assert!(i < go_writes[0], "{l} after go: {:#?}", f.log);
        }
    }
    for id in [dst_id, src_id] {
        let u = f
            .pos(&format!("xl unpause {id}"))
            .expect("appliance unpaused");
        assert!(u < go_writes[0]);
    }
    // The generated appliance configs.
    let cfg = String::from_utf8(f.files[&PathBuf::from(format!("/tmp/depmig/{SRC}.cfg"))].clone())
        .unwrap();
    for want in [
        "type = \"pvh\"",
        "kernel = \"/scenario/depmig-appliance\"",
        "cmdline = \"migrate\"",
        "seclabel = \"system_u:system_r:depmig_appliance_t\"",
        "vif = [ \"bridge=xenbr0,mac=00:16:3e:4d:00:15\" ]",
        "on_crash = \"preserve\"",
    ] {
        assert!(cfg.contains(want), "{want} missing:\n{cfg}");
    }
}

#[test]
fn options_reach_the_appliances() {
    let r = run_with(
        Script::new(Plan::Happy { rounds: 1 }),
        &[
            "--mode",
            "dependency-aware",
            "--policy",
            "adaptive",
            "--port",
            "9999",
            "--link-rate",
            "40Mb/s",
        ],
        |f| {
            publish_agent(f);
            f.files.insert(
                PathBuf::from("/k"),
                format!("{}\n", "ab".repeat(32)).into_bytes(),
            );
        },
    );
    // No agent answers the thaw after the migration in this script: that
    // is a warning (exit 3), the guest was migrated.
    assert_eq!(r.outcome.exit_code(), 3, "{:?}", r.outcome);
    // The source's report carries the rate in bytes per second.
    assert_eq!(r.seen.borrow().src_keys["migrate/link-rate"], "5000000");
    let r2 = run_with(
        Script::new(Plan::Happy { rounds: 1 }),
        &[
            "--mode",
            "dependency-aware",
            "--policy",
            "adaptive",
            "--port",
            "9999",
            "--key-file",
            "/k",
        ],
        |f| {
            publish_agent(f);
            f.files.insert(
                PathBuf::from("/k"),
                format!("{}\n", "ab".repeat(32)).into_bytes(),
            );
        },
    );
    assert_eq!(r2.outcome.exit_code(), 3, "{:?}", r2.outcome);
    let seen = r2.seen.borrow();
    assert_eq!(seen.src_keys["migrate/key"], "ab".repeat(32));
    assert_eq!(seen.dst_keys["migrate/key"], "ab".repeat(32));
    assert_eq!(seen.src_keys["migrate/mode"], "dependency-aware");
    assert_eq!(seen.dst_keys["migrate/policy"], "adaptive");
    assert_eq!(seen.src_keys["migrate/peer"], "10.77.0.22:9999");
    assert_eq!(seen.dst_keys["migrate/port"], "9999");
    assert!(
        !seen.src_keys.contains_key("migrate/link-rate"),
        "no rate, no key"
    );
    let cfg =
        String::from_utf8(r.f.files[&PathBuf::from(format!("/tmp/depmig/{DST}.cfg"))].clone())
            .unwrap();
    assert!(cfg.contains("mac=00:16:3e:4d:00:16,rate=40Mb/s"), "{cfg}");
}

#[test]
fn injected_faults_arm_the_appliances_accordingly() {
    let r = run_with(
        Script::new(Plan::Happy { rounds: 1 }),
        &["--key-file", "/k", "--fault", "wrong-key"],
        |f| {
            f.files.insert(
                PathBuf::from("/k"),
                format!("{}\n", "ab".repeat(32)).into_bytes(),
            );
        },
    );
    let seen = r.seen.borrow();
    assert_eq!(seen.src_keys["migrate/key"], "ab".repeat(32));
    let dst = &seen.dst_keys["migrate/key"];
    assert_eq!(dst.len(), 64);
    assert_ne!(
        dst,
        &"ab".repeat(32),
        "the destination must get another key"
    );
    assert!(!seen.src_keys.contains_key("migrate/fault"));
    drop(seen);
    let r = run_with(
        Script::new(Plan::Happy { rounds: 1 }),
        &["--fault", "corrupt-final"],
        |_| {},
    );
    let seen = r.seen.borrow();
    assert_eq!(seen.src_keys["migrate/fault"], "corrupt-final");
    assert_eq!(seen.src_keys["migrate/key"], seen.dst_keys["migrate/key"]);
    assert!(!seen.dst_keys.contains_key("migrate/fault"));
    drop(seen);
    // corrupt-page: the destination injects it, both ends verify.
    let r = run_with(
        Script::new(Plan::Happy { rounds: 1 }),
        &["--verify", "--fault", "corrupt-page"],
        |_| {},
    );
    let seen = r.seen.borrow();
    assert_eq!(seen.dst_keys["migrate/fault"], "corrupt-page");
    assert!(!seen.src_keys.contains_key("migrate/fault"));
    assert_eq!(seen.src_keys["migrate/verify"], "on");
    assert_eq!(seen.dst_keys["migrate/verify"], "on");
    assert_eq!(seen.src_keys["migrate/key"], seen.dst_keys["migrate/key"]);
}

#[test]
fn source_failure_destroys_the_shell_and_the_guest_keeps_running() {
    let r = run(Plan::SourceFails);
    match &r.outcome {
        Outcome::RolledBack { reason, warnings } => {
            assert!(reason.contains("key mismatch"), "{reason}");
            assert!(warnings.is_empty(), "{warnings:?}");
        }
        other => panic!("{other:?}\n{}", r.text),
    }
    assert_eq!(r.outcome.exit_code(), 1);
    let f = &r.f;
    let shell = f.shell.unwrap();
    assert!(f.pos(&format!("xl destroy {shell}")).is_some());
    assert!(
        f.pos(&format!("xl unpause {shell}")).is_none(),
        "shell unpaused: {:#?}",
        f.log
    );
    assert!(f.pos(&format!("xl destroy {}", f.guest)).is_none());
    // The guest's control node is the guest's alone again.
    let g = f.guest;
    assert_eq!(
        f.xs[&format!("/local/domain/{g}/control/shutdown")].1,
        vec![Perm::None(g)]
    );
    assert!(
        f.by_name(RESUME).is_none()
            && f.pos(&format!("xl create -p /tmp/depmig/{RESUME}"))
                .is_none()
    );
    assert_clean(f, g);
}

#[test]
fn a_crashed_source_appliance_leaves_a_suspended_guest_that_is_resumed() {
    let r = run(Plan::CrashAfterSuspend);
    match &r.outcome {
        Outcome::RolledBack { reason, .. } => assert!(reason.contains("crashed"), "{reason}"),
        other => panic!("{other:?}\n{}", r.text),
    }
    let f = &r.f;
    let g = f.guest.to_string();
    // The shell went before the resume appliance came.
    let shell_gone = f.pos(&format!("xl destroy {}", f.shell.unwrap())).unwrap();
    let resume = f
        .pos(&format!("xl create -p /tmp/depmig/{RESUME}.cfg"))
        .expect("a resume appliance");
    assert!(shell_gone < resume);
    let seen = r.seen.borrow();
    assert_eq!(
        seen.resume_keys.get("migrate/role").map(String::as_str),
        Some("resume")
    );
    assert_eq!(seen.resume_keys.get("migrate/guest"), Some(&g));
    let cfg =
        String::from_utf8(f.files[&PathBuf::from(format!("/tmp/depmig/{RESUME}.cfg"))].clone())
            .unwrap();
    assert!(!cfg.contains("vif"), "{cfg}");
    assert_clean(f, f.guest);
}

#[test]
fn a_crashed_destination_still_mapping_the_shell_is_destroyed_before_the_shell_is_awaited() {
    let r = run(Plan::DestCrashes);
    match &r.outcome {
        Outcome::RolledBack { reason, warnings } => {
            assert!(reason.contains("Transport(Timeout)"), "{reason}");
            assert!(warnings.is_empty(), "{warnings:?}");
        }
        other => panic!("{other:?}\n{}", r.text),
    }
    assert_eq!(r.outcome.exit_code(), 1);
    let f = &r.f;
    let (shell, dst) = (f.shell.unwrap(), f.shell.unwrap() + 1);
    assert!(
        r.text.contains("destination appliance crashed"),
        "{}",
        r.text
    );
    // The mapper goes first, so the shell can go at all.
    let dst_gone = f
        .pos(&format!("xl destroy {dst}"))
        .expect("destination destroyed");
    let shell_gone = f
        .pos(&format!("xl destroy {shell}"))
        .expect("shell destroyed");
    assert!(dst_gone < shell_gone, "{:#?}", f.log);
    assert!(f.pos(&format!("xl unpause {shell}")).is_none());
    assert!(f.maps.is_empty(), "{:?}", f.maps);
    // Done soon after the source's failure, not after waiting out a domain
    // that cannot go.
    let failed_at = (5 + DEST_CRASH_STALL_POLLS) * 1000;
    let t = Timings::default();
    assert!(
        f.now < failed_at + duration_ms(t.gone),
        "rolled back at {} ms",
        f.now
    );
    assert_clean(f, f.guest);
}

#[test]
fn a_guest_that_cannot_be_resumed_needs_an_operator() {
    let mut s = Script::new(Plan::CrashAfterSuspend);
    s.resume_works = false;
    let r = run_with(s, &[], |_| {});
    match &r.outcome {
        Outcome::NeedsOperator { reason } => {
            assert!(
                reason.contains("suspended and could not be resumed"),
                "{reason}"
            );
            assert!(reason.contains("FAIL resumedomain"), "{reason}");
        }
        other => panic!("{other:?}\n{}", r.text),
    }
    assert_eq!(r.outcome.exit_code(), 4);
    // Still: the shell is gone and was never unpaused; no appliance is left.
    let f = &r.f;
    assert!(f.dom(f.shell.unwrap()).is_none());
    assert!(f.pos(&format!("xl unpause {}", f.shell.unwrap())).is_none());
    assert_eq!(f.doms.len(), 1);
    assert!(f.violations.is_empty(), "{:?}", f.violations);
}

#[test]
fn a_guest_left_paused_by_a_dead_appliance_is_unpaused() {
    let r = run(Plan::PausesThenCrashes);
    assert_eq!(r.outcome.exit_code(), 1, "{:?}\n{}", r.outcome, r.text);
    let f = &r.f;
    let shell_gone = f.pos(&format!("xl destroy {}", f.shell.unwrap())).unwrap();
    let unpause = f
        .pos(&format!("xl unpause {}", f.guest))
        .expect("guest unpaused");
    assert!(shell_gone < unpause);
    assert_clean(f, f.guest);
}

#[test]
fn timeout_abandons_the_migration_and_the_source_resumes() {
    let r = run_with(
        Script::new(Plan::Stuck { answers: true }),
        &["--timeout", "30"],
        |_| {},
    );
    match &r.outcome {
        Outcome::RolledBack { reason, .. } => {
            assert!(reason.contains("timed out after 30 s"), "{reason}");
            assert!(reason.contains("last round 1"), "{reason}");
        }
        other => panic!("{other:?}\n{}", r.text),
    }
    let f = &r.f;
    // Decided at the deadline, not before, and not long after.
    let t = Timings::default();
    assert!(f.now >= 30_000, "gave up at {} ms", f.now);
    assert!(
        f.now < 30_000 + duration_ms(t.grace),
        "took until {} ms",
        f.now
    );
    // The source answered once its peer was gone and was then removed.
    assert!(
        r.text.contains("source result: FAIL peer closed"),
        "{}",
        r.text
    );
    assert_clean(f, f.guest);
}

#[test]
fn a_silent_source_is_destroyed_after_the_grace_period() {
    let r = run_with(
        Script::new(Plan::Stuck { answers: false }),
        &["--timeout", "20"],
        |_| {},
    );
    assert_eq!(r.outcome.exit_code(), 1, "{:?}", r.outcome);
    let f = &r.f;
    let t = Timings::default();
    assert!(
        f.now >= 20_000 + duration_ms(t.grace),
        "destroyed the source after {} ms",
        f.now
    );
    assert!(
        r.text.contains("reported nothing: destroying it"),
        "{}",
        r.text
    );
    assert_clean(f, f.guest);
}

#[test]
fn destination_failure_after_source_pass_resumes_the_guest() {
    let r = run(Plan::DestFailsAfterPass);
    match &r.outcome {
        Outcome::RolledBack { reason, .. } => {
            assert!(reason.contains("destination failed"), "{reason}")
        }
        other => panic!("{other:?}\n{}", r.text),
    }
    let f = &r.f;
    assert!(f.pos(&format!("xl unpause {}", f.shell.unwrap())).is_none());
    assert!(f.pos(&format!("xl destroy {}", f.guest)).is_none());
    assert!(f
        .pos(&format!("xl create -p /tmp/depmig/{RESUME}.cfg"))
        .is_some());
    assert_clean(f, f.guest);
}

#[test]
fn refusals_create_nothing() {
    let no_create = |r: &Ran| {
        assert!(r.f.pos("xl create").is_none(), "{:#?}", r.f.log);
        assert_eq!(r.outcome.exit_code(), 2, "{:?}", r.outcome);
    };
    // No such guest.
    let r = run_with(Script::new(Plan::Happy { rounds: 1 }), &[], |f| {
        f.doms.clear();
    });
    no_create(&r);
    assert!(
        matches!(&r.outcome, Outcome::Refused { reason } if reason.contains("no domain named `guest`"))
    );
    // A config of another guest.
    let r = run_with(Script::new(Plan::Happy { rounds: 1 }), &[], |f| {
        f.files.insert(
            PathBuf::from(GUEST_CFG),
            b"name = \"other\"\ntype = \"pvh\"\nmemory = 64\n".to_vec(),
        );
    });
    no_create(&r);
    assert!(
        matches!(&r.outcome, Outcome::Refused { reason } if reason.contains("config of `other`")),
        "{:?}",
        r.outcome
    );
    // PV and HVM guests, named as such.
    for (cfg, kind) in [
        ("type = \"pv\"\n", "a PV guest"),
        ("builder = \"hvm\"\n", "an HVM guest"),
        ("type = \"hvm\"\n", "an HVM guest"),
        ("kernel = \"/k\"\n", "a PV guest"),
    ] {
        let r = run_with(Script::new(Plan::Happy { rounds: 1 }), &[], |f| {
            f.files.insert(
                PathBuf::from(GUEST_CFG),
                format!("name = \"guest\"\n{cfg}memory = 64\n").into_bytes(),
            );
        });
        no_create(&r);
        assert!(
            matches!(&r.outcome, Outcome::Refused { reason }
                if reason.contains(kind) && reason.contains("PVH guests only")),
            "{cfg}: {:?}",
            r.outcome
        );
    }
    // No config, no image, a bad key file, a bad baseline report.
    let r = run_with(Script::new(Plan::Happy { rounds: 1 }), &[], |f| {
        f.files.remove(&PathBuf::from(GUEST_CFG));
    });
    no_create(&r);
    let r = run_with(Script::new(Plan::Happy { rounds: 1 }), &[], |f| {
        f.files.remove(&PathBuf::from(IMAGE));
    });
    no_create(&r);
    assert!(matches!(&r.outcome, Outcome::Refused { reason } if reason.contains("--appliance")));
    let r = run_with(
        Script::new(Plan::Happy { rounds: 1 }),
        &["--key-file", "/k"],
        |f| {
            f.files.insert(PathBuf::from("/k"), b"short".to_vec());
        },
    );
    no_create(&r);
    let r = run_with(
        Script::new(Plan::Happy { rounds: 1 }),
        &["--baseline-report", "/b.json"],
        |f| {
            f.files
                .insert(PathBuf::from("/b.json"), b"{\"schema\":\"other\"}".to_vec());
        },
    );
    no_create(&r);
    // A leftover domain with one of depmig's names.
    let r = run_with(Script::new(Plan::Happy { rounds: 1 }), &[], |f| {
        f.doms.push(crate::fake::Dom {
            id: 99,
            name: SRC.into(),
            paused: true,
            shutdown: None,
            dying: false,
        });
    });
    no_create(&r);
    assert!(matches!(&r.outcome, Outcome::Refused { reason } if reason.contains("already exists")));
    // A guest that is not running.
    let r = run_with(Script::new(Plan::Happy { rounds: 1 }), &[], |f| {
        let g = f.guest;
        f.dom_mut(g).unwrap().shutdown = Some('s');
    });
    no_create(&r);
}

#[test]
fn creation_failures_clean_up_what_was_made() {
    // The shell cannot be created: nothing else happens.
    let r = run_with(Script::new(Plan::Happy { rounds: 1 }), &[], |f| {
        f.fail_create.push("guest--incoming".into())
    });
    assert_eq!(r.outcome.exit_code(), 1, "{:?}", r.outcome);
    assert!(
        matches!(&r.outcome, Outcome::RolledBack { reason, .. } if reason.contains("xl create guest--incoming"))
    );
    assert!(r.f.pos("xs chmod").is_none());
    assert_clean(&r.f, r.f.guest);
    // The source appliance cannot be created: shell and destination go.
    let r = run_with(Script::new(Plan::Happy { rounds: 1 }), &[], |f| {
        f.fail_create.push(SRC.into())
    });
    assert_eq!(r.outcome.exit_code(), 1, "{:?}", r.outcome);
    assert!(r
        .f
        .pos(&format!("xl destroy {}", r.f.shell.unwrap()))
        .is_some());
    assert!(
        r.f.pos("xs write").is_none(),
        "armed without a source: {:#?}",
        r.f.log
    );
    assert_clean(&r.f, r.f.guest);
}

#[test]
fn an_indestructible_source_stays_suspended_with_a_warning() {
    let r = run_with(Script::new(Plan::Happy { rounds: 1 }), &[], |f| {
        let g = f.guest;
        f.undestroyable.push(g);
    });
    match &r.outcome {
        Outcome::Migrated { warnings } => assert!(
            warnings.len() == 1
                && warnings[0].contains("still exists")
                && warnings[0].contains("never resume it"),
            "{warnings:?}"
        ),
        other => panic!("{other:?}"),
    }
    let f = &r.f;
    // The guest runs as the shell; the source is suspended, renamed away,
    // and was never resumed (the fake would have recorded it).
    assert!(f
        .dom(f.shell.unwrap())
        .is_some_and(crate::fake::Dom::running));
    let src = f.dom(f.guest).expect("the source still exists");
    assert_eq!(
        (src.shutdown, src.name.as_str()),
        (Some('s'), "guest--migratedaway")
    );
    assert!(f.violations.is_empty(), "{:?}", f.violations);
}

#[test]
fn a_dying_source_counts_as_gone_with_a_warning() {
    let r = run_with(Script::new(Plan::Happy { rounds: 1 }), &[], |f| {
        let g = f.guest;
        f.sticky_dying.push(g);
    });
    match &r.outcome {
        Outcome::Migrated { warnings } => {
            assert!(warnings.iter().any(|w| w.contains("dying")), "{warnings:?}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(r.outcome.exit_code(), 3);
    assert!(r.f.violations.is_empty(), "{:?}", r.f.violations);
}

#[test]
fn unpause_shell_refuses_a_proof_for_the_shell_itself() {
    let mut f = Fake::new(Box::new(|_| {}));
    // Only the checks make a proof: domain 9 does not exist, so it cannot run.
    let proof: SourceStopped = source_stopped(&mut f, 9).unwrap();
    assert_eq!(proof.domid(), 9);
    assert!(unpause_shell(&mut f, 9, &proof).is_err());
    assert!(f.pos("xl unpause").is_none());
}

#[test]
fn destroy_source_only_proves_what_it_saw() {
    let mut f = Fake::new(Box::new(|_| {}));
    let g = f.guest;
    f.undestroyable.push(g);
    assert!(destroy_source(&mut f, g, Duration::from_secs(5)).is_err());
    f.undestroyable.clear();
    let proof = destroy_source(&mut f, g, Duration::from_secs(5)).unwrap();
    assert_eq!(proof.domid(), g);
    assert!(f.dom(g).is_none());
}

#[test]
fn reports_in_parts_are_put_together() {
    let mut s = Script::new(Plan::Happy { rounds: 2 });
    s.report_parts = true;
    let r = run_with(s, &["--report", "/r.json"], |_| {});
    assert_eq!(
        r.outcome,
        Outcome::Migrated { warnings: vec![] },
        "{}",
        r.text
    );
    let v =
        json::parse(std::str::from_utf8(&r.f.files[&PathBuf::from("/r.json")]).unwrap()).unwrap();
    assert_eq!(
        report::validate(&v).unwrap().per_round_pages,
        vec![131088, 500, 60, 20]
    );
}

#[test]
fn a_bad_report_is_a_warning_not_a_failed_migration() {
    let mut s = Script::new(Plan::Happy { rounds: 2 });
    s.report = Some("{\"schema\":\"depmig-migration-report/1\",\"rounds\":2}".into());
    let r = run_with(s, &["--report", "/r.json", "--svg", "/p.svg"], |_| {});
    match &r.outcome {
        Outcome::Migrated { warnings } => assert!(
            warnings.iter().any(|w| w.contains("not valid")),
            "{warnings:?}"
        ),
        other => panic!("{other:?}"),
    }
    assert_eq!(r.outcome.exit_code(), 3);
    assert!(!r.f.files.contains_key(&PathBuf::from("/r.json")));
    assert!(!r.f.files.contains_key(&PathBuf::from("/p.svg")));
    let mut s = Script::new(Plan::Happy { rounds: 2 });
    s.report = None;
    let r = run_with(s, &["--report", "/r.json"], |_| {});
    assert_eq!(r.outcome.exit_code(), 3, "{:?}", r.outcome);
    // Without --report or --svg a missing report does not matter.
    let mut s = Script::new(Plan::Happy { rounds: 2 });
    s.report = None;
    assert_eq!(run_with(s, &[], |_| {}).outcome.exit_code(), 0);
}

#[test]
fn the_plot_overlays_the_baseline() {
    let r = run_with(
        Script::new(Plan::Happy { rounds: 2 }),
        &["--svg", "/p.svg", "--baseline-report", "/b.json"],
        |f| {
            f.files.insert(
                PathBuf::from("/b.json"),
                sample("xl-migrate", &[131088, 25751, 25719, 25696, 25698, 25965]).into_bytes(),
            );
        },
    );
    assert_eq!(r.outcome.exit_code(), 0, "{:?}", r.outcome);
    let svg = String::from_utf8(r.f.files[&PathBuf::from("/p.svg")].clone()).unwrap();
    let els = check_xml(&svg).unwrap();
    let count = |class: &str| {
        els.iter()
            .filter(|(n, a)| n == "rect" && a.iter().any(|(k, v)| k == "class" && v == class))
            .count()
    };
    assert_eq!((count("bar s0"), count("bar s1")), (4, 6));
    assert!(svg.contains("xl-migrate (baseline)"));
}

/// A migration that ended without a warning: the fake, the shell's and the
/// destination appliance's domids.
fn migrated_cleanly(r: &Ran) -> (&Fake, u32, u32) {
    assert_eq!(
        r.outcome,
        Outcome::Migrated { warnings: vec![] },
        "{}",
        r.text
    );
    let shell = r.f.shell.unwrap();
    (&r.f, shell, shell + 1)
}

#[test]
fn a_running_destination_is_paused_before_the_shell_runs_and_destroyed_after() {
    let r = run(Plan::Happy { rounds: 2 });
    let (f, shell, dst) = migrated_cleanly(&r);
    let paused = f
        .pos(&format!("xl pause {dst}"))
        .expect("destination paused");
    let unpause = f.pos(&format!("xl unpause {shell}")).unwrap();
    let gone = f
        .pos(&format!("xl destroy {dst}"))
        .expect("destination destroyed");
    assert!(paused < unpause && unpause < gone, "{:#?}", f.log);
    // The source's report and result came after the handoff and were read.
    assert!(r.text.contains("source result: PASS"), "{}", r.text);
    assert!(f.violations.is_empty(), "{:?}", f.violations);
}

#[test]
fn a_destination_that_cannot_be_paused_is_destroyed_before_the_shell_runs() {
    let mut s = Script::new(Plan::Happy { rounds: 2 });
    s.dst_lingers = true;
    let r = run_with(s, &[], |f| f.fail_pause = true);
    let (f, shell, dst) = migrated_cleanly(&r);
    let gone = f
        .pos(&format!("xl destroy {dst}"))
        .expect("destination destroyed");
    let unpause = f.pos(&format!("xl unpause {shell}")).unwrap();
    assert!(
        gone < unpause && unpause < f.pos(&format!("xl destroy {}", f.guest)).unwrap(),
        "{:#?}",
        f.log
    );
    assert!(
        r.text.contains("still running: destroying it"),
        "{}",
        r.text
    );
    assert!(f.violations.is_empty(), "{:?}", f.violations);
}

/// The guest agent (guest-lsm) as the fake plays it: it lives in the
/// guest's home until the shell runs, then in the shell's (the migrated
/// guest keeps its memory, so its last served request number too), and
/// answers `<seq> freeze` / `<seq> thaw` in `data/depmig/status`, reading
/// and writing with the guest's own rights.
#[derive(Debug, Default)]
struct AgentSim {
    /// The agent stops answering once the guest was migrated.
    silent_after_migration: bool,
    /// The fake source appliance asks for a freeze (dependency-aware).
    source_freezes: bool,
    last_seq: String,
    frozen: u64,
    /// Requests served: (domain, request line).
    served: Vec<(u32, String)>,
    /// What the fake source appliance read of the agent's keys.
    src_read: BTreeMap<String, String>,
    src_asked: bool,
}

const AGENT_PUBLISHED: [(&str, &str); 5] = [
    ("version", "1"),
    ("table-gfn", "0x3f2a1"),
    ("table-pages", "322"),
    ("profile-gfn", "0x3f2a2"),
    ("state", "tracking"),
];

/// The guest's agent published its keys (owned by the guest alone, as it
/// writes them) and once served request 41.
fn publish_agent(f: &mut Fake) {
    let g = f.guest;
    let dir = format!("/local/domain/{g}/data/depmig");
    f.xs.insert(
        format!("/local/domain/{g}/data"),
        (String::new(), vec![Perm::None(g)]),
    );
    f.xs.insert(dir.clone(), (String::new(), vec![Perm::None(g)]));
    for (k, v) in AGENT_PUBLISHED {
        f.xs.insert(format!("{dir}/{k}"), (v.into(), vec![Perm::None(g)]));
    }
    f.xs.insert(
        format!("{dir}/request"),
        ("41 thaw".into(), vec![Perm::None(g)]),
    );
    f.xs.insert(
        format!("{dir}/status"),
        ("41 thawed 0".into(), vec![Perm::None(g)]),
    );
}

fn agent_step(f: &mut Fake, a: &mut AgentSim) {
    // The fake source appliance: reads the agent's keys, asks for a freeze.
    if let Some(src) = f.started(SRC) {
        if !a.src_asked {
            a.src_asked = true;
            let dir = format!("/local/domain/{}/data/depmig", f.guest);
            for k in [
                "version",
                "table-gfn",
                "table-pages",
                "profile-gfn",
                "state",
                "request",
            ] {
                if let Some(v) = f.dom_read(src, &format!("{dir}/{k}")) {
                    a.src_read.insert(k.to_string(), v);
                }
            }
            if a.source_freezes {
                let next = a
                    .src_read
                    .get("request")
                    .and_then(|r| r.split(' ').next().and_then(|n| n.parse::<u64>().ok()));
                let line = format!("{} freeze", next.map_or(1, |n| n + 1));
                f.dom_write(src, &format!("{dir}/request"), &line);
            }
        }
    }
    let shell_runs = f.shell.and_then(|s| f.dom(s)).is_some_and(|d| d.running());
    let home = if shell_runs {
        if a.silent_after_migration {
            return;
        }
        f.shell.unwrap()
    } else if f.dom(f.guest).is_some_and(|d| d.running()) {
        f.guest
    } else {
        return;
    };
    let dir = format!("/local/domain/{home}/data/depmig");
    if !f.xs.contains_key(&format!("{dir}/request")) {
        return;
    }
    let Some(req) = f.dom_read(home, &format!("{dir}/request")) else {
        return;
    };
    let Some((seq, cmd)) = req.trim().split_once(' ') else {
        return;
    };
    if seq == a.last_seq {
        return;
    }
    a.last_seq = seq.to_string();
    a.served.push((home, req.clone()));
    let answer = match cmd {
        "freeze" => {
            a.frozen = 2;
            "frozen 2 3".to_string()
        }
        "thaw" => format!("thawed {}", std::mem::take(&mut a.frozen)),
        _ => "error unknown request".into(),
    };
    f.dom_write(home, &format!("{dir}/status"), &format!("{seq} {answer}"));
}

/// A run with the agent played in the guest (published, last request 41).
fn run_agent(script: Script, extra: &[&str], agent: AgentSim) -> (Ran, Rc<RefCell<AgentSim>>) {
    let seen = Rc::new(RefCell::new(Seen::default()));
    let agent = Rc::new(RefCell::new(AgentSim {
        last_seq: "41".into(),
        ..agent
    }));
    let mut inner = behaviour(script, seen.clone());
    let a = agent.clone();
    let mut f = Fake::new(Box::new(move |f: &mut Fake| {
        inner(f);
        agent_step(f, &mut a.borrow_mut());
    }));
    publish_agent(&mut f);
    let o = options(extra);
    let mut out: Vec<u8> = Vec::new();
    let outcome = migrate(&mut f, &o, &Timings::default(), &mut out);
    (
        Ran {
            f,
            outcome,
            seen,
            text: String::from_utf8_lossy(&out).into_owned(),
        },
        agent,
    )
}

#[test]
fn agent_modes_are_refused_without_a_tracking_agent_when_required() {
    for mode in ["paper-analysis", "dependency-aware"] {
        let r = run_with(
            Script::new(Plan::Happy { rounds: 1 }),
            &["--mode", mode, "--require-agent"],
            |_| {},
        );
        assert!(r.f.pos("xl create").is_none(), "{:#?}", r.f.log);
        match &r.outcome {
            Outcome::Refused { reason } => assert!(
                reason.contains(mode)
                    && reason.contains("guest agent")
                    && reason.contains("data/depmig/state is missing"),
                "{reason}"
            ),
            other => panic!("{other:?}"),
        }
        // An agent still starting (not tracking) is refused too.
        let r = run_with(
            Script::new(Plan::Happy { rounds: 1 }),
            &["--mode", mode, "--require-agent"],
            |f| {
                publish_agent(f);
                let g = f.guest;
                f.xs.get_mut(&format!("/local/domain/{g}/data/depmig/state"))
                    .unwrap()
                    .0 = "initialising".into();
            },
        );
        assert!(r.f.pos("xl create").is_none());
        assert!(
            matches!(&r.outcome, Outcome::Refused { reason } if reason.contains("`initialising`")),
            "{:?}",
            r.outcome
        );
    }
}

#[test]
fn agent_modes_fall_back_to_baseline_without_a_tracking_agent() {
    for mode in ["paper-analysis", "dependency-aware"] {
        let r = run_with(
            Script::new(Plan::Happy { rounds: 1 }),
            &["--mode", mode, "--report", "/r.json"],
            |_| {},
        );
        assert_eq!(r.outcome.exit_code(), 0, "{:?}\n{}", r.outcome, r.text);
        // Said before anything is created, with the reason.
        let said = r
            .text
            .lines()
            .find(|l| l.contains("migrating in baseline mode instead"))
            .unwrap_or_else(|| panic!("no fallback line in:\n{}", r.text));
        assert!(
            said.contains(mode) && said.contains("data/depmig/state is missing"),
            "{said}"
        );
        // The appliances were armed for the baseline, and the agent's keys
        // were left alone.
        let seen = r.seen.borrow();
        assert_eq!(seen.src_keys["migrate/mode"], "baseline");
        assert_eq!(seen.dst_keys["migrate/mode"], "baseline");
        drop(seen);
        assert!(
            !r.f.log.iter().any(|l| l.contains("data/depmig")),
            "{:#?}",
            r.f.log
        );
        let (v, _) = written_report(&r.f, "/r.json");
        assert_eq!(field(&v, &["cli", "mode"]).as_str(), Some("baseline"));
        assert_eq!(field(&v, &["cli", "requested_mode"]).as_str(), Some(mode));
        let why = field(&v, &["cli", "mode_fallback"]).as_str().unwrap();
        assert!(why.contains("guest agent"), "{why}");
    }
    // The baseline does not look at the agent at all.
    let r = run(Plan::Happy { rounds: 1 });
    assert_eq!(r.outcome.exit_code(), 0);
    assert!(
        !r.f.log.iter().any(|l| l.contains("data/depmig")),
        "{:#?}",
        r.f.log
    );
}

#[test]
fn paper_analysis_opens_the_agent_keys_to_the_source_only() {
    let (r, agent) = run_agent(
        Script::new(Plan::Happy { rounds: 2 }),
        &["--mode", "paper-analysis"],
        AgentSim::default(),
    );
    assert_eq!(
        r.outcome,
        Outcome::Migrated { warnings: vec![] },
        "{}",
        r.text
    );
    let f = &r.f;
    let g = f.guest;
    let src = f.by_name("guest").map(|d| d.id).unwrap() + 2;
    assert_eq!(r.seen.borrow().src_keys["migrate/mode"], "paper-analysis");
    // The source appliance read every published key (the fake records a
    // refused read as a violation).
    let a = agent.borrow();
    for (k, v) in AGENT_PUBLISHED {
        assert_eq!(a.src_read.get(k).map(String::as_str), Some(v), "{k}");
    }
    assert!(f.violations.is_empty(), "{:?}", f.violations);
    // Read for the published keys and status, read and write for request,
    // the guest first (owner) in every one, nothing for anyone else.
    let dir = format!("/local/domain/{g}/data/depmig");
    for k in [
        "version",
        "table-gfn",
        "table-pages",
        "profile-gfn",
        "state",
        "status",
    ] {
        assert!(
            f.log.contains(&format!("xs chmod {dir}/{k} n{g} r{src}")),
            "{k}: {:#?}",
            f.log
        );
    }
    assert!(f
        .log
        .contains(&format!("xs chmod {dir}/request n{g} b{src}")));
    let dst = src - 1;
    for l in f
        .log
        .iter()
        .filter(|l| l.starts_with("xs chmod") && l.contains("data/depmig"))
    {
        assert!(
            !l.ends_with(&format!(" r{dst}")) && !l.ends_with(&format!(" b{dst}")),
            "the destination appliance got a right: {l}"
        );
    }
    // Granted before go, like every other right.
    let go = f
        .pos(&format!("xs write /local/domain/{src}/depmig/migrate/go"))
        .unwrap();
    let grant = f.pos(&format!("xs chmod {dir}/request")).unwrap();
    assert!(grant < go);
    // Nothing was frozen, so nothing is thawed after the migration.
    let shell = f.shell.unwrap();
    assert!(f
        .pos(&format!("xs write /local/domain/{shell}/data/depmig"))
        .is_none());
    assert!(a.served.is_empty(), "{:?}", a.served);
}

#[test]
fn dependency_aware_thaws_the_migrated_guest_after_the_unpause() {
    let (r, agent) = run_agent(
        Script::new(Plan::Happy { rounds: 2 }),
        &["--mode", "dependency-aware"],
        AgentSim {
            source_freezes: true,
            ..AgentSim::default()
        },
    );
    assert_eq!(
        r.outcome,
        Outcome::Migrated { warnings: vec![] },
        "{}",
        r.text
    );
    let f = &r.f;
    let (g, shell) = (f.guest, f.shell.unwrap());
    let a = agent.borrow();
    // The source froze in the guest's home; the thaw went to the migrated
    // guest's new home, numbered after the freeze the agent had served.
    assert_eq!(
        a.served,
        vec![(g, "42 freeze".to_string()), (shell, "43 thaw".to_string())]
    );
    assert_eq!(a.frozen, 0, "groups left frozen");
    let dir = format!("/local/domain/{shell}/data/depmig");
    assert_eq!(f.xs[&format!("{dir}/status")].0, "43 thawed 2");
    // The request node dom0 made there belongs to the guest.
    assert_eq!(f.xs[&format!("{dir}/request")].1, vec![Perm::None(shell)]);
    assert_eq!(f.xs[&dir].1, vec![Perm::None(shell)]);
    // Only after the shell runs (the agent cannot answer before).
    let unpause = f.pos(&format!("xl unpause {shell}")).unwrap();
    let thaw = f.pos(&format!("xs write {dir}/request=43 thaw")).unwrap();
    assert!(unpause < thaw, "{:#?}", f.log);
    assert!(r.text.contains("thawed 2 group(s)"), "{}", r.text);
    assert!(f.violations.is_empty(), "{:?}", f.violations);
}

#[test]
fn a_silent_agent_after_migration_is_a_warning_not_a_hang() {
    let (r, agent) = run_agent(
        Script::new(Plan::Happy { rounds: 1 }),
        &["--mode", "dependency-aware"],
        AgentSim {
            source_freezes: true,
            silent_after_migration: true,
            ..AgentSim::default()
        },
    );
    match &r.outcome {
        Outcome::Migrated { warnings } => {
            assert_eq!(warnings.len(), 1, "{warnings:?}");
            assert!(
                warnings[0].contains("did not answer `43 thaw` within 30 s"),
                "{warnings:?}"
            );
        }
        other => panic!("{other:?}\n{}", r.text),
    }
    assert_eq!(r.outcome.exit_code(), 3);
    assert_eq!(agent.borrow().frozen, 2);
    // Bounded: the whole run, thaw wait included, stays well under 2 min
    // of the fake's clock.
    assert!(r.f.now < 120_000, "{}", r.f.now);
}

#[test]
fn a_failed_dependency_aware_migration_thaws_and_gives_the_keys_back() {
    let (r, agent) = run_agent(
        Script::new(Plan::SourceFails),
        &["--mode", "dependency-aware"],
        AgentSim {
            source_freezes: true,
            ..AgentSim::default()
        },
    );
    assert_eq!(r.outcome.exit_code(), 1, "{:?}\n{}", r.outcome, r.text);
    let f = &r.f;
    let g = f.guest;
    let a = agent.borrow();
    // The fake source appliance died without thawing: dom0 asked.
    assert_eq!(
        a.served,
        vec![(g, "42 freeze".to_string()), (g, "43 thaw".to_string())]
    );
    assert_eq!(a.frozen, 0);
    let dir = format!("/local/domain/{g}/data/depmig");
    for k in [
        "",
        "/version",
        "/table-gfn",
        "/table-pages",
        "/profile-gfn",
        "/state",
        "/status",
        "/request",
    ] {
        assert_eq!(
            f.xs[&format!("{dir}{k}")].1,
            vec![Perm::None(g)],
            "{dir}{k}"
        );
    }
    assert_clean(f, g);
}

/// The report file `path` the fake holds, parsed and validated.
fn written_report(f: &Fake, path: &str) -> (Value, report::Summary) {
    let data = f
        .files
        .get(&PathBuf::from(path))
        .unwrap_or_else(|| panic!("no report at {path}: {:?}", f.files.keys()));
    let text = std::str::from_utf8(data).unwrap();
    assert!(text.ends_with('\n'));
    report::parse_any_report(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

fn field<'a>(v: &'a Value, path: &[&str]) -> &'a Value {
    path.iter().fold(v, |v, k| {
        v.get(k)
            .unwrap_or_else(|| panic!("no {k} in {path:?}: {v}"))
    })
}

#[test]
fn a_migration_failed_before_round_1_leaves_its_report_and_plot() {
    let mut s = Script::new(Plan::FailsBeforeRound1);
    s.report = Some(APPLIANCE_FAILED_BEFORE_ROUND_1.into());
    let r = run_with(
        s,
        &[
            "--report",
            "/out/r.json",
            "--svg",
            "/out/p.svg",
            "--scenario",
            "migrate-fault-key",
        ],
        |_| {},
    );
    // Still a failed migration, exit status 1, the guest running at home.
    match &r.outcome {
        Outcome::RolledBack { reason, warnings } => {
            assert!(reason.contains("KeyMismatch"), "{reason}");
            assert!(warnings.is_empty(), "{warnings:?}\n{}", r.text);
        }
        other => panic!("{other:?}\n{}", r.text),
    }
    assert_eq!(r.outcome.exit_code(), 1);
    assert_clean(&r.f, r.f.guest);
    assert!(
        r.text.contains("report written to /out/r.json"),
        "{}",
        r.text
    );
    // The report: the source's, no round, saying it failed and why.
    let (v, sum) = written_report(&r.f, "/out/r.json");
    assert_eq!(sum.per_round_pages, Vec::<u64>::new());
    assert_eq!((sum.total_pages, sum.final_round), (0, None));
    assert_eq!(sum.committed, Some(false));
    assert_eq!(field(&v, &["rounds"]).as_u64(), Some(0));
    assert_eq!(
        field(&v, &["per_round"]).as_array().map(<[_]>::len),
        Some(0)
    );
    assert_eq!(field(&v, &["depmig", "result"]).as_str(), Some("failed"));
    assert_eq!(
        field(&v, &["depmig", "per_round_dirty"])
            .as_array()
            .map(<[_]>::len),
        Some(0)
    );
    assert_eq!(field(&v, &["stream", "complete"]), &Value::Bool(false));
    assert_eq!(field(&v, &["cli", "outcome"]).as_str(), Some("rolled-back"));
    assert_eq!(
        field(&v, &["cli", "source_result"]).as_str(),
        Some(KEY_MISMATCH)
    );
    let reason = field(&v, &["cli", "reason"]).as_str().unwrap();
    assert_eq!(reason, format!("source appliance: {KEY_MISMATCH}"));
    assert_eq!(field(&v, &["cli", "figures_missing"]), &Value::Null);
    assert_eq!(field(&v, &["cli", "last_round_seen"]), &Value::Null);
    assert!(field(&v, &["cli", "go_unix_ms"]).as_u64().is_some());
    assert!(field(&v, &["cli", "result_seen_unix_ms"])
        .as_u64()
        .is_some());
    assert_eq!(field(&v, &["cli", "shell_unpaused_unix_ms"]), &Value::Null);
    assert_eq!(field(&v, &["cli", "total_time_ms"]), &Value::Null);
    // The figures that need a round refuse it, with a message saying why.
    let text = std::str::from_utf8(&r.f.files[&PathBuf::from("/out/r.json")]).unwrap();
    match report::parse_report(text) {
        Err(report::ReportError::Invalid(m)) => assert!(m.contains("no round completed"), "{m}"),
        other => panic!("{other:?}"),
    }
    match crate::compare::load("failed", "/out/r.json", text) {
        Err(e) => {
            let m = e.to_string();
            assert!(
                m.contains("/out/r.json") && m.contains("no round completed"),
                "{m}"
            );
        }
        Ok(m) => panic!("compare took a failed migration: {m:?}"),
    }
    // The plot: drawn, empty, with the note.
    let svg = String::from_utf8(r.f.files[&PathBuf::from("/out/p.svg")].clone()).unwrap();
    let els = check_xml(&svg).unwrap();
    assert!(svg.contains("no round completed"), "{svg}");
    assert!(!els
        .iter()
        .any(|(n, a)| n == "rect" && a.iter().any(|(k, v)| k == "class" && v == "bar s0")));
    assert!(
        r.text
            .contains("plot written to /out/p.svg (no round completed)"),
        "{}",
        r.text
    );
}

#[test]
fn a_failed_migration_without_the_sources_report_still_leaves_one() {
    // The source left no report (it failed before it could make one, e.g.
    // the peer was unreachable): the report has the command's figures only.
    let mut s = Script::new(Plan::FailsBeforeRound1);
    s.report = None;
    let r = run_with(s, &["--report", "/r.json"], |_| {});
    match &r.outcome {
        Outcome::RolledBack { warnings, .. } => assert!(warnings.is_empty(), "{warnings:?}"),
        other => panic!("{other:?}\n{}", r.text),
    }
    assert_eq!(r.outcome.exit_code(), 1);
    let (v, sum) = written_report(&r.f, "/r.json");
    assert!(sum.per_round_pages.is_empty());
    assert_eq!(sum.committed, Some(false));
    assert_eq!(sum.migrator, "depmig");
    assert!(v.get("depmig").is_none(), "no appliance figures: {v}");
    assert_eq!(
        field(&v, &["cli", "figures_missing"]).as_str(),
        Some("the source appliance left no report")
    );
    assert_eq!(
        field(&v, &["cli", "source_result"]).as_str(),
        Some(KEY_MISMATCH)
    );
    assert_eq!(field(&v, &["cli", "mode"]).as_str(), Some("baseline"));
    assert!(
        r.text.contains("the report has the command's figures only"),
        "{}",
        r.text
    );

    // An invalid report: a warning, and the report without figures.
    let mut s = Script::new(Plan::FailsBeforeRound1);
    s.report = Some(APPLIANCE_FAILED_BEFORE_ROUND_1.replace("\"rounds\":0", "\"rounds\":1"));
    let r = run_with(s, &["--report", "/r.json"], |_| {});
    match &r.outcome {
        Outcome::RolledBack { warnings, .. } => assert!(
            warnings.len() == 1 && warnings[0].contains("report is not valid"),
            "{warnings:?}"
        ),
        other => panic!("{other:?}\n{}", r.text),
    }
    assert_eq!(r.outcome.exit_code(), 1);
    let (v, _) = written_report(&r.f, "/r.json");
    let why = field(&v, &["cli", "figures_missing"]).as_str().unwrap();
    assert!(
        why.contains("not valid") && why.contains("per_round_pages"),
        "{why}"
    );

    // A report announced in parts that never came: a warning, no figures.
    let s = Script {
        report: None,
        report_parts: true,
        ..Script::new(Plan::FailsBeforeRound1)
    };
    let r = run_with(s, &["--report", "/r.json"], |_| {});
    match &r.outcome {
        Outcome::RolledBack { warnings, .. } => assert!(
            warnings.len() == 1 && warnings[0].contains("report part 0 of 3 missing"),
            "{warnings:?}"
        ),
        other => panic!("{other:?}\n{}", r.text),
    }
    let (v, _) = written_report(&r.f, "/r.json");
    assert_eq!(
        field(&v, &["cli", "figures_missing"]).as_str(),
        Some("the source appliance's report could not be read: report part 0 of 3 missing")
    );

    // Failed after two rounds with no report: the rounds the command saw.
    let r = run_with(
        Script {
            report: None,
            ..Script::new(Plan::SourceFails)
        },
        &["--report", "/r.json"],
        |_| {},
    );
    assert_eq!(r.outcome.exit_code(), 1, "{:?}", r.outcome);
    let (v, sum) = written_report(&r.f, "/r.json");
    assert!(sum.per_round_pages.is_empty());
    assert_eq!(field(&v, &["cli", "last_round_seen"]).as_u64(), Some(2));

    // Failed before the appliances were armed: no go, the reason.
    let r = run_with(
        Script::new(Plan::Happy { rounds: 1 }),
        &["--report", "/r.json"],
        |f| f.fail_create.push(SRC.into()),
    );
    assert_eq!(r.outcome.exit_code(), 1, "{:?}", r.outcome);
    let (v, _) = written_report(&r.f, "/r.json");
    assert_eq!(field(&v, &["cli", "go_unix_ms"]), &Value::Null);
    assert!(field(&v, &["cli", "reason"])
        .as_str()
        .unwrap()
        .contains("xl create guest--depmig-src"));
}

#[test]
fn a_failed_migration_with_rounds_keeps_the_sources_figures() {
    // The source failed after two rounds and published its report.
    let mut s = Script::new(Plan::FailsBeforeRound1);
    let failed_later = sample("depmig", &[131088, 500]).replacen(
        "\"downtime_method\"",
        "\"depmig\":{\"result\":\"failed\",\"per_round_dirty\":[131088,500]},\"downtime_method\"",
        1,
    );
    s.report = Some(failed_later);
    let r = run_with(s, &["--report", "/r.json"], |_| {});
    assert_eq!(r.outcome.exit_code(), 1, "{:?}", r.outcome);
    let (v, sum) = written_report(&r.f, "/r.json");
    assert_eq!(sum.per_round_pages, vec![131088, 500]);
    assert_eq!(sum.committed, Some(false));
    assert_eq!(field(&v, &["cli", "figures_missing"]), &Value::Null);
}

#[test]
fn a_committed_migration_still_needs_the_sources_report_with_rounds() {
    // A source that says it committed with no round: refused, a warning.
    let mut s = Script::new(Plan::Happy { rounds: 2 });
    s.report = Some(
        APPLIANCE_FAILED_BEFORE_ROUND_1
            .replace("\"result\":\"failed\"", "\"result\":\"committed\""),
    );
    let r = run_with(s, &["--report", "/r.json", "--svg", "/p.svg"], |_| {});
    match &r.outcome {
        Outcome::Migrated { warnings } => assert!(
            warnings
                .iter()
                .any(|w| w.contains("\"rounds\" 0 is only valid")),
            "{warnings:?}"
        ),
        other => panic!("{other:?}"),
    }
    assert_eq!(r.outcome.exit_code(), 3);
    assert!(!r.f.files.contains_key(&PathBuf::from("/r.json")));
    assert!(!r.f.files.contains_key(&PathBuf::from("/p.svg")));
    // A failed report with no round under a committed migration is refused
    // once the command's outcome is added (never written).
    let mut s = Script::new(Plan::Happy { rounds: 2 });
    s.report = Some(APPLIANCE_FAILED_BEFORE_ROUND_1.into());
    let r = run_with(s, &["--report", "/r.json"], |_| {});
    match &r.outcome {
        Outcome::Migrated { warnings } => assert!(
            warnings.iter().any(|w| w.contains("not valid")),
            "{warnings:?}"
        ),
        other => panic!("{other:?}"),
    }
    assert!(!r.f.files.contains_key(&PathBuf::from("/r.json")));
}

/// A run on the dom0 bitmap route: the fake offers hypercalls.
fn run_bitmap(plan: BitmapPlan, extra: &[&str], setup: impl FnOnce(&mut Fake)) -> Ran {
    let mut script = Script::new(Plan::Happy { rounds: 2 });
    script.bitmap = Some(plan);
    run_with(script, extra, |f| {
        f.domctl = true;
        setup(f);
    })
}

/// The CLEANs dom0 ran, as the fake logs them.
fn cleans(f: &Fake) -> Vec<&str> {
    f.log
        .iter()
        .filter(|l| l.starts_with("domctl shadow_op"))
        .map(String::as_str)
        .collect()
}

/// The replies the source appliance read.
fn replies(r: &Ran) -> Vec<String> {
    r.seen
        .borrow()
        .bitmap_replies
        .iter()
        .map(|(_, t)| t.clone())
        .collect()
}

/// A migration rolled back with the guest running at the source, nothing
/// left behind, no mapping held.
fn rolled_back_cleanly(r: &Ran) {
    match &r.outcome {
        Outcome::RolledBack { warnings, .. } => assert!(warnings.is_empty(), "{warnings:?}"),
        other => panic!("{other:?}\n{}", r.text),
    }
    assert_clean(&r.f, r.f.guest);
    assert!(r.f.maps.is_empty(), "{:?}", r.f.maps);
    assert_eq!(r.f.bitmap_map, None);
}

#[test]
fn the_dom0_bitmap_route_serves_each_collect_for_the_migrated_guest() {
    let r = run_bitmap(BitmapPlan::new(), &[], |_| {});
    let (f, shell, _) = migrated_cleanly(&r);
    let (g, src) = (f.guest, shell + 2);
    // Two rounds' CLEANs and the final one, on the guest dom0 migrates,
    // into the source appliance's frames.
    let into = format!("{g} into {src}:0x1000+32 pages 1044480");
    assert_eq!(
        cleans(f),
        [
            format!("domctl shadow_op clean {into}"),
            format!("domctl shadow_op clean {into}"),
            format!("domctl shadow_op clean final {into}"),
        ]
    );
    // The final one came with the guest suspended, and the source read
    // every answer under its own number.
    let seen = r.seen.borrow();
    let asked: Vec<&str> = seen
        .bitmap_requests
        .iter()
        .map(|(_, t)| t.as_str())
        .collect();
    assert_eq!(asked, ["1 clean", "2 clean", "3 final"]);
    assert_eq!(
        replies(&r),
        [
            "1 ok 1044480 311 9",
            "2 ok 1044480 311 9",
            "3 ok 1044480 311 9"
        ]
    );
    // Promptly: each answer was there one fast poll after its request.
    for ((asked_at, _), (read_at, _)) in seen.bitmap_requests.iter().zip(&seen.bitmap_replies) {
        assert!(read_at - asked_at <= 50, "{asked_at} -> {read_at}");
    }
    // The frame count came from Xen, the buffer was mapped once, and
    // unmapped after the shell ran, before the appliance was destroyed.
    assert_eq!(f.log.iter().filter(|l| l.starts_with("map ")).count(), 1);
    assert!(f.log.contains(&format!("domctl maximum_gpfn {g}")));
    let unmap = f.pos(&format!("unmap bitmap of {src}")).expect("unmapped");
    assert!(f.pos(&format!("domctl unpause {shell}")).unwrap() < unmap);
    assert!(unmap < f.pos(&format!("xl destroy {src}")).unwrap());
    assert!(f.maps.is_empty() && f.dom(src).is_none(), "{:?}", f.doms);
    // dom0 owns the reply node; the appliance only reads it (the fake's
    // `control` read checks both; no violation).
    assert!(f.violations.is_empty(), "{:?}", f.violations);
    assert!(seen.src_keys["migrate/bitmap-reply"].is_empty());
    assert!(r.text.contains("bitmap route auto"), "{}", r.text);
    assert!(
        r.text
            .contains("bitmap 3 (final): 1044480 pages, 311 dirty"),
        "{}",
        r.text
    );
}

#[test]
fn pinned_encodings_reach_the_source_appliance() {
    let r = run_with(
        Script::new(Plan::Happy { rounds: 1 }),
        &["--compress", "lz4", "--encodings", "fixed"],
        |_| {},
    );
    migrated_cleanly(&r);
    let seen = r.seen.borrow();
    assert_eq!(seen.src_keys["migrate/encodings"], "fixed");
    assert!(r.text.contains("encodings fixed"), "{}", r.text);
}

#[test]
fn the_armed_route_reaches_the_source_appliance() {
    for route in ["auto", "direct", "dom0"] {
        let r = run_with(
            Script::new(Plan::Happy { rounds: 1 }),
            &["--bitmap-route", route],
            |f| f.xen_version = "4.20.4-logdirtyfix".into(),
        );
        migrated_cleanly(&r);
        assert_eq!(r.seen.borrow().src_keys["migrate/bitmap-route"], route);
        // Not taken up by the source: dom0 maps and runs nothing.
        assert!(cleans(&r.f).is_empty() && r.f.bitmap_map.is_none());
    }
    let r = run_bitmap(BitmapPlan::new(), &["--bitmap-route", "dom0"], |_| {});
    migrated_cleanly(&r);
    assert_eq!(cleans(&r.f).len(), 3);
}

#[test]
fn a_hostile_bitmap_buffer_gets_an_error_and_no_domctl() {
    for layout in [
        "4096 33 1044480",                 // one frame too many
        "4096 62 2000000",                 // more pages than the guest has frames
        "4096 4097 134250000",             // above the cap
        "18446744073709551615 32 1044480", // the frames overflow
        "4096 32 1044480 7",               // malformed
    ] {
        let r = run_bitmap(BitmapPlan::with_layout(layout), &[], |_| {});
        rolled_back_cleanly(&r);
        assert_eq!(replies(&r), ["1 err 22"], "{layout}");
        assert!(cleans(&r.f).is_empty(), "{layout}: {:#?}", r.f.log);
        assert!(!r.f.log.iter().any(|l| l.starts_with("map ")), "{layout}");
        assert!(r.text.contains("refused"), "{}", r.text);
    }
}

#[test]
fn a_buffer_changed_after_it_was_taken_is_refused() {
    let mut plan = BitmapPlan::new();
    plan.relayout = Some("8192 32 1044480".into());
    let r = run_bitmap(plan, &[], |_| {});
    rolled_back_cleanly(&r);
    assert_eq!(replies(&r), ["1 ok 1044480 311 9", "2 err 22"]);
    assert_eq!(cleans(&r.f).len(), 1);
}

#[test]
fn a_repeated_request_is_served_once() {
    let mut plan = BitmapPlan::new();
    plan.seqs = vec![1, 1, 3];
    let r = run_bitmap(plan, &[], |_| {});
    let (f, _, _) = migrated_cleanly(&r);
    // The second `1 clean` found the first's answer and no new CLEAN.
    assert_eq!(
        replies(&r),
        [
            "1 ok 1044480 311 9",
            "1 ok 1044480 311 9",
            "3 ok 1044480 311 9"
        ]
    );
    let c = cleans(f);
    assert_eq!(c.len(), 2, "{c:?}");
    assert!(c[1].starts_with("domctl shadow_op clean final"), "{c:?}");
}

#[test]
fn a_failing_clean_is_an_error_reply_and_the_migration_rolls_back() {
    // In round 1.
    let r = run_bitmap(BitmapPlan::new(), &[], |f| f.fail_logdirty_from = Some(1));
    rolled_back_cleanly(&r);
    assert_eq!(replies(&r), ["1 err 1"]);
    assert!(r.text.contains("request 1 answered `err 1`"), "{}", r.text);
    // The final one, with the guest suspended: the source resumes it.
    let r = run_bitmap(BitmapPlan::new(), &[], |f| f.fail_logdirty_from = Some(3));
    rolled_back_cleanly(&r);
    assert_eq!(
        replies(&r),
        ["1 ok 1044480 311 9", "2 ok 1044480 311 9", "3 err 1"]
    );
    assert!(r
        .f
        .pos(&format!("xl unpause {}", r.f.shell.unwrap()))
        .is_none());
    // The source appliance went once dom0 let go of its buffer.
    let src = r.f.shell.unwrap() + 2;
    let unmap =
        r.f.pos(&format!("unmap bitmap of {src}"))
            .expect("unmapped");
    assert!(unmap < r.f.pos(&format!("xl destroy {src}")).unwrap());
}

#[test]
fn without_hypercalls_or_armed_direct_the_route_is_refused() {
    let r = run_bitmap(BitmapPlan::new(), &[], |f| f.domctl = false);
    rolled_back_cleanly(&r);
    assert_eq!(replies(&r), ["1 err 38"]);
    let r = run_bitmap(BitmapPlan::new(), &["--bitmap-route", "direct"], |f| {
        f.xen_version = "4.20.4-logdirtyfix".into()
    });
    rolled_back_cleanly(&r);
    assert_eq!(replies(&r), ["1 err 95"]);
    assert!(cleans(&r.f).is_empty());
}

#[test]
fn direct_is_refused_up_front_on_a_hypervisor_without_the_fix() {
    for version in ["4.20.4", "4.21.0"] {
        let r = run_with(
            Script::new(Plan::Happy { rounds: 1 }),
            &["--bitmap-route", "direct"],
            |f| f.xen_version = version.into(),
        );
        assert!(r.f.pos("xl create").is_none(), "{:#?}", r.f.log);
        match &r.outcome {
            Outcome::Refused { reason } => assert!(
                reason.contains("stops the host") && reason.contains(version),
                "{reason}"
            ),
            other => panic!("{other:?}"),
        }
    }
    // Auto and dom0 never ask.
    for route in ["auto", "dom0"] {
        let r = run_with(
            Script::new(Plan::Happy { rounds: 1 }),
            &["--bitmap-route", route],
            |_| {},
        );
        migrated_cleanly(&r);
        assert!(!r.f.log.iter().any(|l| l == "xl info"), "{:#?}", r.f.log);
    }
}
