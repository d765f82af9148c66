//! Two-host migrations in one process: the source's `migrate_to_host`
//! and `recover` on one fake host, `receive` on another (on a thread of
//! its own), joined by pipes through a relay that can cut the
//! conversation before or after any message, or replace one. Both hosts'
//! domains are watched after every `xl` command and sleep: the guest must
//! never run on both at once, nor at the source again once it ran at the
//! destination.

use std::io::{BufRead, BufReader, Write};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::Duration;

use crate::cli::{parse_args, Command, MigrateOptions};
use crate::fake::{Fake, GUEST_CFG, IMAGE};
use crate::migrate::{
    migrate_to_host, receive, recover, Outcome, ReceiveOptions, ReceiveOutcome, ReceiveTimings,
    RecoverOptions, RemoteTimings, Timings,
};
use crate::report::tests::sample;
use crate::toolstack::Perm;
use crate::twohost::channel::Channel;

const SRC: &str = "guest--depmig-src";
const DST: &str = "guest--depmig-dst";
const RESUME: &str = "guest--depmig-resume";
const SHELL: &str = "guest--incoming";
const HOST: &str = "hostb";

/// Where the two fake appliances are; each plays its half from it.
#[derive(Debug, Default)]
struct Stage {
    dst_listening: bool,
    src_final: bool,
    dst_applied: bool,
}

/// What both hosts look like, as seen after every change on either.
#[derive(Debug, Default)]
struct World {
    /// The guest runs (or could: alive and unpaused) at the source.
    a_runs: bool,
    /// A copy runs at the destination (the shell, or a domain under the
    /// guest's name).
    b_runs: bool,
    b_ever_ran: bool,
    violations: Vec<String>,
    /// "a: guest gone", "b: guest runs", in the order they happened.
    events: Vec<String>,
}

impl World {
    fn note(&mut self) {
        if self.a_runs && self.b_runs {
            self.violations
                .push("the guest runs on both hosts".to_string());
        }
        if self.a_runs && self.b_ever_ran {
            self.violations
                .push("the source runs after the destination ran the guest".to_string());
        }
    }
}

/// The source appliance and its resume appliance, played on host A.
fn source_behaviour(stage: Arc<Mutex<Stage>>) -> Box<dyn FnMut(&mut Fake)> {
    let mut step = 0;
    let mut resumed = false;
    Box::new(move |f: &mut Fake| {
        if let Some(r) = f.started(RESUME) {
            if !resumed {
                resumed = true;
                if f.dom(f.guest).is_some_and(|d| d.shutdown == Some('s')) {
                    f.resume_guest();
                    f.set(r, "result", "PASS resumed");
                } else {
                    f.set(r, "result", "FAIL not suspended");
                }
                f.poweroff(r);
            }
        }
        let Some(a) = f.started(SRC) else { return };
        let mut st = stage.lock().unwrap();
        match step {
            0 => {
                let g = f.guest;
                f.map(a, g);
                f.set(a, "state", "connecting");
                step = 1;
            }
            1 if st.dst_listening => {
                f.set(a, "state", "streaming");
                f.set(
                    a,
                    "round",
                    "round=1 dirty=131088 sent=131088 skipped_free=0 bytes=537460800 ms=1000",
                );
                step = 2;
            }
            2 => {
                f.set(
                    a,
                    "round",
                    "round=2 dirty=500 sent=500 skipped_free=0 bytes=2050000 ms=1000",
                );
                step = 3;
            }
            3 => {
                f.set(a, "state", "suspending");
                f.suspend_guest(a);
                f.set(a, "state", "final");
                st.src_final = true;
                step = 4;
            }
            4 if st.dst_applied => {
                f.set(a, "state", "committed");
                step = 5;
            }
            5 => {
                f.set(a, "report", &sample("depmig", &[131088, 500, 60, 20]));
                f.set(a, "result", "PASS 4 rounds, 131668 pages");
                f.poweroff(a);
                step = 6;
            }
            _ => {}
        }
    })
}

/// The destination appliance, played on host B.
fn destination_behaviour(stage: Arc<Mutex<Stage>>) -> Box<dyn FnMut(&mut Fake)> {
    let mut started = false;
    Box::new(move |f: &mut Fake| {
        agent_in_shell(f);
        let Some(d) = f.started(DST) else { return };
        let mut st = stage.lock().unwrap();
        if !started {
            started = true;
            if let Some(s) = f.shell {
                f.map(d, s);
            }
            f.set(d, "state", "receiving");
            st.dst_listening = true;
        } else if st.src_final && !st.dst_applied {
            f.set(d, "state", "applying");
            f.set(d, "state", "applied");
            st.dst_applied = true;
            f.poweroff(d);
        }
    })
}

/// The guest's agent in the received copy, once it runs: answers a thaw
/// request in its new home (two groups were frozen at the source).
fn agent_in_shell(f: &mut Fake) {
    let Some(shell) = f.shell else { return };
    if !f.dom(shell).is_some_and(|d| d.running()) {
        return;
    }
    let dir = format!("/local/domain/{shell}/data/depmig");
    let Some((req, _)) = f.xs.get(&format!("{dir}/request")).cloned() else {
        return;
    };
    let Some(seq) = req.strip_suffix(" thaw") else {
        return;
    };
    let answer = format!("{seq} thawed 2");
    if f.xs.get(&format!("{dir}/status")).map(|(v, _)| v) != Some(&answer) {
        assert!(f.dom_write(shell, &format!("{dir}/status"), &answer));
    }
}

/// Whether the guest runs on host A (source) or B (destination).
fn watch(world: Arc<Mutex<World>>, source: bool) -> Box<dyn FnMut(&mut Fake)> {
    Box::new(move |f: &mut Fake| {
        let mut w = world.lock().unwrap();
        if source {
            let runs = f.dom(f.guest).is_some_and(|d| d.running());
            let gone = f.dom(f.guest).is_none();
            if gone && !w.events.iter().any(|e| e == "a: guest gone") {
                w.events.push("a: guest gone".into());
            }
            w.a_runs = runs;
        } else {
            let runs = f
                .doms
                .iter()
                .any(|d| (d.name == "guest" || d.name == SHELL) && d.running());
            if runs && !w.b_ever_ran {
                w.events.push("b: guest runs".into());
            }
            w.b_runs = runs;
            w.b_ever_ran |= runs;
        }
        w.note();
    })
}

/// How the relay treats the conversation: message `n` counts both ways,
/// from 0 (the source's hello).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Relay {
    /// Everything passes.
    Clean,
    /// Message `n` is not delivered; the conversation is cut.
    CutBefore(usize),
    /// Message `n` is delivered, then the conversation is cut.
    CutAfter(usize),
    /// Message `n` is replaced by this line (the conversation goes on).
    Replace(usize, &'static str),
    /// The first message of this kind going this way (`>` to the
    /// destination, `<` back) is replaced by this line.
    ReplaceKind(char, &'static str, &'static str),
}

/// The relay's shared count and state.
#[derive(Default)]
struct Wire {
    count: usize,
    cut: bool,
    /// Every message that passed, as (direction, line).
    seen: Vec<(char, String)>,
    /// A [`Relay::ReplaceKind`] was applied.
    replaced: bool,
}

/// Copies lines from `from` to `to` (direction `dir`), counting them in
/// `wire` and applying `relay`; ends at the end of `from` or at a cut,
/// dropping `to` (the other end then reads its end).
fn relay_lines(
    from: impl std::io::Read,
    mut to: impl Write,
    dir: char,
    wire: Arc<Mutex<Wire>>,
    relay: Relay,
) {
    let mut r = BufReader::new(from);
    loop {
        let mut line = Vec::new();
        if r.read_until(b'\n', &mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut w = wire.lock().unwrap();
        if w.cut {
            return;
        }
        let n = w.count;
        w.count += 1;
        match relay {
            Relay::CutBefore(k) if k == n => {
                w.cut = true;
                return;
            }
            Relay::Replace(k, text) if k == n => {
                line = format!("{text}\n").into_bytes();
            }
            Relay::ReplaceKind(d, kind, text)
                if d == dir
                    && String::from_utf8_lossy(&line).contains(&format!("\"msg\":\"{kind}\""))
                    && !w.replaced =>
            {
                w.replaced = true;
                line = format!("{text}\n").into_bytes();
            }
            _ => {}
        }
        w.seen
            .push((dir, String::from_utf8_lossy(&line).trim_end().to_string()));
        if to.write_all(&line).and_then(|()| to.flush()).is_err() {
            w.cut = true;
            return;
        }
        if relay == Relay::CutAfter(n) {
            w.cut = true;
            return;
        }
    }
}

/// A conversation's two ends, joined through a relay.
fn join(relay: Relay, wire: Arc<Mutex<Wire>>) -> (Channel, Channel) {
    let (a_in_r, a_in_w) = std::io::pipe().unwrap();
    let (a_out_r, a_out_w) = std::io::pipe().unwrap();
    let (b_in_r, b_in_w) = std::io::pipe().unwrap();
    let (b_out_r, b_out_w) = std::io::pipe().unwrap();
    let w1 = wire.clone();
    thread::spawn(move || relay_lines(a_out_r, b_in_w, '>', w1, relay));
    thread::spawn(move || relay_lines(b_out_r, a_in_w, '<', wire, relay));
    (Channel::new(a_in_r, a_out_w), Channel::new(b_in_r, b_out_w))
}

fn options(extra: &[&str]) -> MigrateOptions {
    let mut args = vec![
        "migrate",
        "guest",
        HOST,
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

/// What host B looked like at the end.
struct HostB {
    outcomes: Vec<ReceiveOutcome>,
    /// (name, running, paused, shutdown) of every domain.
    doms: Vec<(String, bool, bool, Option<char>)>,
    violations: Vec<String>,
    log: Vec<String>,
    text: String,
}

/// Host B: serves each channel it is handed, in turn, with one fake.
fn host_b(
    stage: Arc<Mutex<Stage>>,
    world: Arc<Mutex<World>>,
    chans: mpsc::Receiver<Channel>,
    setup: fn(&mut Fake),
) -> thread::JoinHandle<HostB> {
    thread::spawn(move || {
        let mut f = Fake::empty_host(destination_behaviour(stage));
        f.observer = Some(watch(world, false));
        f.writers.push(DST.into());
        setup(&mut f);
        let own = ReceiveOptions {
            appliance: IMAGE.into(),
            bridge: "xenbr0".into(),
            work_dir: "/tmp/depmig".into(),
        };
        // The fake clock moves 20 ms per wait; a real wait of 5 ms between
        // them, so that the source (on real time) is never the one that
        // looks silent.
        let rt = ReceiveTimings {
            listen: Duration::from_millis(5),
            idle: Duration::from_millis(20),
            ..ReceiveTimings::default()
        };
        let mut outcomes = Vec::new();
        let mut text = Vec::new();
        for mut chan in chans {
            outcomes.push(receive(
                &mut f,
                &own,
                &Timings::default(),
                &rt,
                &mut chan,
                &mut text,
            ));
        }
        HostB {
            outcomes,
            doms: f
                .doms
                .iter()
                .map(|d| (d.name.clone(), d.running(), d.paused, d.shutdown))
                .collect(),
            violations: f.violations.clone(),
            log: f.log.clone(),
            text: String::from_utf8_lossy(&text).into_owned(),
        }
    })
}

/// One two-host migration (and, when `recover_after`, a `depmig recover`
/// when it ended indeterminate).
struct Ran {
    a: Fake,
    outcome: Outcome,
    recovered: Option<Outcome>,
    b: HostB,
    world: Arc<Mutex<World>>,
    wire: Vec<(char, String)>,
    text: String,
}

fn remote_timings() -> RemoteTimings {
    RemoteTimings {
        reply: Duration::from_secs(20),
        prepare: Duration::from_secs(20),
        handoff: Duration::from_secs(20),
    }
}

fn run_with(relay: Relay, recover_after: bool, setup_b: fn(&mut Fake)) -> Ran {
    run_opts(relay, recover_after, &[], |_| {}, setup_b)
}

/// [`run_with`] with extra `depmig migrate` arguments and a set-up of host
/// A too.
fn run_opts(
    relay: Relay,
    recover_after: bool,
    extra: &[&str],
    setup_a: fn(&mut Fake),
    setup_b: fn(&mut Fake),
) -> Ran {
    let stage = Arc::new(Mutex::new(Stage::default()));
    let world = Arc::new(Mutex::new(World::default()));
    let (to_b, chans) = mpsc::channel();
    let b = host_b(stage.clone(), world.clone(), chans, setup_b);
    let mut a = Fake::new(source_behaviour(stage));
    a.observer = Some(watch(world.clone(), true));
    setup_a(&mut a);
    let wire = Arc::new(Mutex::new(Wire::default()));
    let (mut chan_a, chan_b) = join(relay, wire.clone());
    to_b.send(chan_b).unwrap();
    let mut out = Vec::new();
    let outcome = migrate_to_host(
        &mut a,
        &options(extra),
        HOST,
        &mut chan_a,
        &Timings::default(),
        &remote_timings(),
        &mut out,
    );
    drop(chan_a);
    let mut recovered = None;
    if recover_after && matches!(outcome, Outcome::Indeterminate { .. }) {
        let (mut chan_a, chan_b) = join(Relay::Clean, Arc::new(Mutex::new(Wire::default())));
        to_b.send(chan_b).unwrap();
        let ro = RecoverOptions {
            guest: "guest".into(),
            host: HOST.into(),
            appliance: IMAGE.into(),
            work_dir: "/tmp/depmig".into(),
        };
        recovered = Some(recover(
            &mut a,
            &ro,
            &mut chan_a,
            &Timings::default(),
            &remote_timings(),
            &mut out,
        ));
    }
    drop(to_b);
    let b = b.join().unwrap();
    let wire = wire.lock().unwrap().seen.clone();
    Ran {
        a,
        outcome,
        recovered,
        b,
        world,
        wire,
        text: String::from_utf8_lossy(&out).into_owned(),
    }
}

fn run(relay: Relay) -> Ran {
    run_with(relay, false, |_| {})
}

/// Where the guest ended up.
#[derive(Debug, PartialEq, Eq)]
enum Place {
    Source,
    Destination,
    /// Suspended at the source, the source said so and named `recover`.
    Indeterminate,
}

impl Ran {
    fn b_has(&self, name: &str) -> bool {
        self.b.doms.iter().any(|d| d.0 == name)
    }

    /// Checks the safety rules and says where the guest is.
    fn place(&self) -> Place {
        let ctx = || {
            format!(
                "{:?}\n{}\n--- b:\n{}\n{:?}",
                self.outcome, self.text, self.b.text, self.wire
            )
        };
        let w = self.world.lock().unwrap();
        assert!(w.violations.is_empty(), "{:?}\n{}", w.violations, ctx());
        assert!(
            self.a.violations.is_empty(),
            "{:?}\n{}",
            self.a.violations,
            ctx()
        );
        assert!(
            self.b.violations.is_empty(),
            "{:?}\n{}",
            self.b.violations,
            ctx()
        );
        // No appliance is left on either host.
        for n in [SRC, RESUME] {
            assert!(self.a.by_name(n).is_none(), "{n} left\n{}", ctx());
        }
        assert!(!self.b_has(DST), "{DST} left on b\n{}", ctx());
        let guest = self.a.dom(self.a.guest);
        let b_runs = self
            .b
            .doms
            .iter()
            .any(|d| (d.0 == "guest" || d.0 == SHELL) && d.1);
        match guest {
            Some(g) if g.running() => {
                assert!(!self.b_has(SHELL) && !self.b_has("guest"), "{}", ctx());
                Place::Source
            }
            None => {
                assert!(b_runs && self.b_has("guest"), "{}", ctx());
                Place::Destination
            }
            Some(g) if g.shutdown == Some('s') => {
                match &self.outcome {
                    Outcome::Indeterminate { reason } => {
                        assert!(reason.contains("depmig recover guest hostb"), "{reason}")
                    }
                    other => panic!("suspended but {other:?}\n{}", ctx()),
                }
                assert_eq!(self.outcome.exit_code(), 5);
                Place::Indeterminate
            }
            Some(g) => panic!("source guest {g:?}\n{}", ctx()),
        }
    }
}

#[test]
fn a_clean_two_host_move_runs_the_guest_at_b_only_after_the_source_stopped() {
    let r = run(Relay::Clean);
    assert_eq!(r.place(), Place::Destination, "{}", r.text);
    assert_eq!(
        r.outcome,
        Outcome::Migrated { warnings: vec![] },
        "{}",
        r.text
    );
    assert!(matches!(
        r.b.outcomes.as_slice(),
        [ReceiveOutcome::Migrated { warnings, .. }] if warnings.is_empty()
    ));
    // The guest ran at B, then the source went: never the other way.
    let w = r.world.lock().unwrap();
    assert_eq!(w.events, ["b: guest runs", "a: guest gone"]);
    // The messages in order.
    let kinds: Vec<&str> = r
        .wire
        .iter()
        .map(|(_, l)| {
            let i = l.find("\"msg\":\"").unwrap() + 7;
            let rest = &l[i..];
            &rest[..rest.find('"').unwrap()]
        })
        .filter(|k| *k != "status")
        .collect();
    assert_eq!(
        kinds,
        [
            "hello",
            "hello",
            "prepare",
            "ready",
            "source-stopped",
            "running",
            "done",
            "bye"
        ]
    );
    // The key went over the control channel and reached B's appliance.
    let key = crate::key::to_hex(&{
        let mut k = [0u8; 32];
        for (i, b) in k.iter_mut().enumerate() {
            *b = (i as u8).wrapping_mul(7).wrapping_add(1);
        }
        k
    });
    assert!(r
        .b
        .log
        .iter()
        .any(|l| l.ends_with(&format!("/depmig/migrate/key={key}"))));
    // The source appliance's peer is B's appliance.
    assert!(r
        .a
        .log
        .iter()
        .any(|l| l.ends_with("/depmig/migrate/peer=10.77.0.22:7100")));
    // B renamed the shell; A destroyed its guest after B's answer.
    assert!(r
        .b
        .log
        .iter()
        .any(|l| l.starts_with("xl rename") && l.ends_with(" guest")));
}

/// The value a fake's log shows last written to an appliance key ending in
/// `suffix` (`/depmig/migrate/key`, ...).
fn written(log: &[String], suffix: &str) -> Option<String> {
    log.iter()
        .rev()
        .filter(|l| l.starts_with("xs write "))
        .find_map(|l| {
            l.split_once(&format!("{suffix}="))
                .map(|(_, v)| v.to_string())
        })
}

#[test]
fn a_fault_across_hosts_is_armed_by_the_host_that_injects_it() {
    // wrong-key: B's appliance is armed with a key one digit off A's.
    let r = run_opts(
        Relay::Clean,
        false,
        &["--fault", "wrong-key"],
        |_| {},
        |_| {},
    );
    let ka = written(&r.a.log, "/depmig/migrate/key").expect("A's appliance key");
    let kb = written(&r.b.log, "/depmig/migrate/key").expect("B's appliance key");
    assert_eq!((ka.len(), kb.len()), (64, 64));
    assert_ne!(ka, kb);
    assert_eq!(ka[1..], kb[1..]);
    assert!(
        r.text.contains("test fault wrong-key injected on purpose"),
        "{}",
        r.text
    );
    // corrupt-page: only B's appliance gets the fault key, through prepare.
    let r = run_opts(
        Relay::Clean,
        false,
        &["--fault", "corrupt-page", "--verify"],
        |_| {},
        |_| {},
    );
    assert_eq!(
        written(&r.b.log, "/depmig/migrate/fault").as_deref(),
        Some("corrupt-page")
    );
    assert_eq!(written(&r.a.log, "/depmig/migrate/fault"), None);
    assert!(r.wire.iter().any(
        |(_, l)| l.contains("\"msg\":\"prepare\"") && l.contains("\"fault\":\"corrupt-page\"")
    ));
    // corrupt-final: A's source appliance alone; prepare names no fault.
    let r = run_opts(
        Relay::Clean,
        false,
        &["--fault", "corrupt-final"],
        |_| {},
        |_| {},
    );
    assert_eq!(
        written(&r.a.log, "/depmig/migrate/fault").as_deref(),
        Some("corrupt-final")
    );
    assert_eq!(written(&r.b.log, "/depmig/migrate/fault"), None);
    assert!(r.wire.iter().all(|(_, l)| !l.contains("\"fault\"")));
}

#[test]
fn a_conversation_cut_anywhere_leaves_one_copy_or_the_documented_suspension() {
    let clean = run(Relay::Clean);
    // How many status polls a run takes depends on when each host's
    // threads get to run: a few more indices than the clean run's cover
    // every message of every run.
    let total = clean.wire.len() + 4;
    let mut places = std::collections::BTreeMap::new();
    for n in 0..total {
        for relay in [Relay::CutBefore(n), Relay::CutAfter(n)] {
            let r = run(relay);
            let place = r.place();
            // Only a cut between the stop notice's sending and its
            // answer's delivery leaves the source not knowing.
            let sent = r.text.contains("; telling hostb");
            let answered = r
                .wire
                .iter()
                .any(|(d, l)| *d == '<' && l.contains("\"msg\":\"running\""));
            assert_eq!(
                place == Place::Indeterminate,
                sent && !answered,
                "{relay:?}: {place:?}\n{}",
                r.text
            );
            // Before the stop notice was sent the source runs its guest.
            if !sent {
                assert_eq!(place, Place::Source, "{relay:?}\n{}", r.text);
            }
            if answered {
                assert_eq!(place, Place::Destination, "{relay:?}\n{}", r.text);
            }
            places.insert(format!("{relay:?}"), place);
        }
    }
    // hello, prepare, the polls, source-stopped, done: each cut two ways.
    assert!(places.len() >= 2 * 12, "{places:?}");
    for p in [Place::Source, Place::Indeterminate, Place::Destination] {
        assert!(places.values().any(|q| *q == p), "no cut ends in {p:?}");
    }
}

#[test]
fn recover_settles_the_indeterminate_window_both_ways() {
    // The notice reached B, which ran the guest; the answer was lost.
    let r = run_with(
        Relay::ReplaceKind('<', "running", "{\"msg\":\"running\""),
        true,
        |_| {},
    );
    assert!(matches!(r.outcome, Outcome::Indeterminate { .. }));
    assert_eq!(
        r.recovered,
        Some(Outcome::Migrated { warnings: vec![] }),
        "{}",
        r.text
    );
    assert_eq!(r.place(), Place::Destination);
    assert!(matches!(r.b.outcomes[1], ReceiveOutcome::Answered { .. }));
    // The notice never reached B (a line it refuses in its place), which
    // destroyed its shell: the source is resumed.
    let r = run_with(
        Relay::ReplaceKind('>', "source-stopped", "{\"msg\":\"source-stopped\"}"),
        true,
        |_| {},
    );
    assert!(matches!(r.outcome, Outcome::Indeterminate { .. }));
    assert!(
        matches!(r.recovered, Some(Outcome::RolledBack { .. })),
        "{:?}\n{}",
        r.recovered,
        r.text
    );
    assert_eq!(r.place(), Place::Source);
}

#[test]
fn hostile_lines_from_either_side_are_refused_with_the_same_safety() {
    let over = crate::twohost::protocol::MAX_LINE + 6 * 1024;
    let oversized: &'static str = Box::leak("x".repeat(over).into_boxed_str());
    let cases: Vec<(Relay, &str, bool)> = vec![
        // The source's hello of another version.
        (
            Relay::Replace(0, r#"{"msg":"hello","version":2}"#),
            "version 2",
            false,
        ),
        // The destination's hello of another version.
        (
            Relay::Replace(1, r#"{"msg":"hello","version":7}"#),
            "version 7",
            false,
        ),
        // A malformed prepare; an unknown message from the destination.
        (
            Relay::Replace(2, r#"{"msg":"prepare","guest":"guest"}"#),
            "malformed",
            false,
        ),
        (Relay::Replace(3, r#"{"msg":"launch"}"#), "malformed", false),
        // An oversized status poll and an oversized status reply.
        (Relay::Replace(4, oversized), "bytes", false),
        (Relay::Replace(5, oversized), "bytes", false),
        // A prepare whose value is refused (a key of 31 bytes).
        (
            Relay::ReplaceKind(
                '>',
                "prepare",
                r#"{"msg":"prepare","guest":"guest","config":"type = \"pvh\"\n","key":"abab","ip":"10.77.0.22","prefix":24,"port":7100,"mode":"baseline","policy":"xen-4","verify":false,"compress":"none","encrypt":"on","delta_cache_mib":0,"appliance_memory_mib":64,"link_rate":null}"#,
            ),
            "key",
            false,
        ),
        // A forged answer to the stop notice.
        (
            Relay::ReplaceKind('<', "running", r#"{"msg":"running","domid":"6"}"#),
            "malformed",
            true,
        ),
    ];
    for (relay, words, after_stop) in cases {
        let r = run(relay);
        let place = r.place();
        let all = format!("{:?} {:?} {}", r.outcome, r.b.outcomes, r.b.text);
        assert!(all.contains(words), "{relay:?}: `{words}` not in {all}");
        let expected = if after_stop {
            Place::Indeterminate
        } else {
            Place::Source
        };
        assert_eq!(place, expected, "{relay:?}: {all}");
    }
}

#[test]
fn a_destination_that_cannot_run_the_shell_destroys_it_and_the_source_resumes() {
    let r = run_with(Relay::Clean, false, |f| f.fail_unpause_shell = true);
    assert_eq!(r.place(), Place::Source, "{}", r.text);
    match &r.outcome {
        Outcome::RolledBack { reason, .. } => assert!(reason.contains("xl unpause"), "{reason}"),
        other => panic!("{other:?}"),
    }
    assert!(
        r.a.log.iter().any(|l| l.contains(RESUME)),
        "resumed by a resume appliance"
    );
    assert!(r
        .wire
        .iter()
        .any(|(d, l)| *d == '<' && l.contains("\"msg\":\"absent\"")));
}

#[test]
fn a_guest_already_at_the_destination_is_refused_before_anything_is_made() {
    fn guest_there(f: &mut Fake) {
        f.files.insert(
            "/g.cfg".into(),
            b"name = \"guest\"\ntype = \"pvh\"\n".to_vec(),
        );
        let _ = crate::toolstack::Toolstack::xl(f, &["create", "-p", "/g.cfg"]);
    }
    let r = run_with(Relay::Clean, false, guest_there);
    match &r.outcome {
        Outcome::Refused { reason } => assert!(reason.contains("already exists here"), "{reason}"),
        other => panic!("{other:?}"),
    }
    assert!(r.a.dom(r.a.guest).is_some_and(|d| d.running()));
    assert!(!r.b_has(SHELL));
}

#[test]
fn dependency_aware_across_hosts_thaws_the_guest_at_the_destination() {
    // The guest's agent tracks at A (so the mode does not fall back).
    fn agent_at_a(f: &mut Fake) {
        let g = f.guest;
        let dir = format!("/local/domain/{g}/data/depmig");
        f.xs.insert(
            format!("/local/domain/{g}/data"),
            (String::new(), vec![Perm::None(g)]),
        );
        f.xs.insert(dir.clone(), (String::new(), vec![Perm::None(g)]));
        for (k, v) in [
            ("version", "1"),
            ("table-gfn", "0x3f2a1"),
            ("table-pages", "322"),
            ("profile-gfn", "0x3f2a2"),
            ("state", "tracking"),
            ("request", "41 freeze"),
            ("status", "41 frozen 2 3"),
        ] {
            f.xs.insert(format!("{dir}/{k}"), (v.into(), vec![Perm::None(g)]));
        }
    }
    let r = run_opts(
        Relay::Clean,
        false,
        &["--mode", "dependency-aware"],
        agent_at_a,
        |_| {},
    );
    assert_eq!(r.place(), Place::Destination, "{}", r.text);
    let Some(ReceiveOutcome::Migrated { domid, warnings }) = r.b.outcomes.first() else {
        panic!("{:?}\n{}", r.b.outcomes, r.b.text);
    };
    assert!(warnings.is_empty(), "{warnings:?}");
    assert!(r.b.text.contains("thawed 2 group(s)"), "{}", r.b.text);
    // The request went to the guest's new home, after it ran there, and
    // the node is the guest's.
    let req = format!("xs write /local/domain/{domid}/data/depmig/request=");
    let thaw =
        r.b.log
            .iter()
            .position(|l| l.starts_with(&req) && l.ends_with(" thaw"));
    let unpause =
        r.b.log
            .iter()
            .position(|l| *l == format!("xl unpause {domid}"));
    assert!(
        matches!((unpause, thaw), (Some(u), Some(t)) if u < t),
        "{:#?}",
        r.b.log
    );
    assert!(
        r.b.log
            .iter()
            .any(|l| *l == format!("xs chmod /local/domain/{domid}/data/depmig/request n{domid}")),
        "{:#?}",
        r.b.log
    );
    // A baseline move asks nothing of the agent.
    let r = run(Relay::Clean);
    assert!(
        !r.b.log.iter().any(|l| l.contains("data/depmig/request")),
        "{:#?}",
        r.b.log
    );
}

#[test]
fn the_destinations_clock_offset_is_estimated_and_its_unpause_moved_onto_ours() {
    // B's clock runs an hour ahead of A's.
    let r = run_opts(
        Relay::Clean,
        false,
        &[],
        |_| {},
        |b| b.unix_skew_ms = 3_600_000,
    );
    assert_eq!(r.place(), Place::Destination, "{}", r.text);
    let line = r
        .text
        .lines()
        .find(|l| l.contains("hostb's clock is"))
        .unwrap_or_else(|| panic!("{}", r.text));
    // "hostb's clock is N ms ahead of ours (within U ms)"; both fake clocks
    // start together and move only when their host waits, so N is the hour
    // give or take the little each waited.
    let n: u64 = line
        .split("clock is ")
        .nth(1)
        .and_then(|t| t.split(' ').next())
        .and_then(|t| t.parse().ok())
        .unwrap();
    assert!(line.contains("ahead of ours"), "{line}");
    assert!(n.abs_diff(3_600_000) < 120_000, "{line}");
}
