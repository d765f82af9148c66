//! `depmig save` and `depmig restore` against the scripted toolstack: the
//! save's only appliance armed with dom0 as its peer and nothing
//! negotiated, the guest destroyed only after dom0's end says the file is
//! complete, every failure before that leaving the guest running and the
//! end abandoned; the restore's shell run only once its appliance applied
//! the stream, and destroyed with the appliance when the stream is
//! refused.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::rc::Rc;

use crate::cli::{parse_args, Command, SaveArgs};
use crate::fake::{Behaviour, Fake, GUEST_CFG, IMAGE};
use crate::migrate::{restore, save, Outcome, RestoreOptions, RestoreSend, SaveEnd, Timings};

const SRC: &str = "guest--depmig-src";
const DST: &str = "guest--depmig-dst";
const DOM0: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);

/// What dom0's save end does and what it was asked.
#[derive(Debug, Default)]
struct EndState {
    key: Option<String>,
    /// What `state` answers.
    state: Option<String>,
    failure: Option<String>,
    abandoned: bool,
    /// The fake time at which it said `applied`.
    applied_at: Option<u64>,
}

struct FakeEnd(Rc<RefCell<EndState>>);

impl SaveEnd for FakeEnd {
    fn start(&mut self, key_hex: &str) -> Result<(), String> {
        self.0.borrow_mut().key = Some(key_hex.to_string());
        Ok(())
    }
    fn state(&mut self) -> Option<String> {
        self.0.borrow().state.clone()
    }
    fn failure(&mut self) -> Option<String> {
        self.0.borrow().failure.clone()
    }
    fn abandon(&mut self) -> Vec<String> {
        self.0.borrow_mut().abandoned = true;
        Vec::new()
    }
    fn summary(&mut self) -> String {
        "4096 stream bytes".into()
    }
}

/// How the fake source appliance and dom0's end behave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SavePlan {
    /// Two rounds, suspend, dom0's end applies, commit, PASS.
    Happy,
    /// dom0's end fails after the suspend (a bad tag, a full disk): the
    /// source resumes the guest and fails.
    EndFails,
    /// The source fails in round 1 (the guest never suspended).
    SourceFails,
}

fn save_behaviour(
    plan: SavePlan,
    end: Rc<RefCell<EndState>>,
    keys: Rc<RefCell<BTreeMap<String, String>>>,
) -> Box<dyn FnMut(&mut Fake)> {
    let mut k = 0u64;
    Box::new(move |f: &mut Fake| {
        let Some(a) = f.started(SRC) else { return };
        k += 1;
        let g = f.guest;
        match k {
            1 => {
                f.map(a, g);
                for key in [
                    "migrate/role",
                    "migrate/peer",
                    "migrate/compress",
                    "migrate/encrypt",
                    "migrate/verify",
                    "migrate/delta-cache",
                    "migrate/mode",
                    "migrate/key",
                ] {
                    if let Some(v) = f.control(a, key) {
                        keys.borrow_mut().insert(key.into(), v);
                    }
                }
                f.set(a, "state", "streaming");
                end.borrow_mut().state = Some("receiving".into());
            }
            2 if plan == SavePlan::SourceFails => {
                f.set(a, "state", "failed");
                f.set(a, "result", "FAIL Transport(Reset); guest never suspended");
                end.borrow_mut().state = Some("failed".into());
                f.poweroff(a);
            }
            2 => f.set(
                a,
                "round",
                "round=1 dirty=131072 sent=131072 skipped_free=0 bytes=537395200 ms=9000",
            ),
            3 if plan != SavePlan::SourceFails => {
                assert!(f.suspend_guest(a));
                f.set(a, "state", "final");
            }
            4 if plan == SavePlan::EndFails => {
                let mut e = end.borrow_mut();
                e.state = Some("failed".into());
                e.failure = Some("the stream was refused: BadTag".into());
                drop(e);
                f.resume_guest();
                f.set(a, "state", "failed");
                f.set(a, "result", "FAIL Refused(Auth); guest resumed");
                f.poweroff(a);
            }
            4 if plan == SavePlan::Happy => {
                let mut e = end.borrow_mut();
                e.state = Some("applied".into());
                e.applied_at = Some(f.now);
                drop(e);
                f.set(a, "state", "committed");
                f.set(
                    a,
                    "report",
                    &crate::report::tests::sample("depmig", &[131088, 500]),
                );
                f.set(a, "result", "PASS committed");
                f.poweroff(a);
            }
            _ => {}
        }
    })
}

fn save_args() -> SaveArgs {
    let args = [
        "save",
        "guest",
        "/out/guest.save",
        "--config",
        GUEST_CFG,
        "--appliance",
        IMAGE,
        "--report",
        "/out/save.json",
    ];
    match parse_args(&args) {
        Ok(Command::Save(a)) => a,
        other => panic!("{other:?}"),
    }
}

struct Saved {
    f: Fake,
    outcome: Outcome,
    end: Rc<RefCell<EndState>>,
    keys: BTreeMap<String, String>,
    text: String,
}

fn run_save(plan: SavePlan, host: fn(Behaviour) -> Fake) -> Saved {
    let end = Rc::new(RefCell::new(EndState::default()));
    let keys = Rc::new(RefCell::new(BTreeMap::new()));
    let mut f = host(save_behaviour(plan, end.clone(), keys.clone()));
    let a = save_args();
    let opts = a.migrate_options(DOM0).unwrap();
    let peer = depmig_control::Peer {
        ip: DOM0.octets(),
        port: a.port,
    };
    let mut out = Vec::new();
    let outcome = save(
        &mut f,
        &opts,
        &a.file,
        peer,
        &mut FakeEnd(end.clone()),
        &Timings::default(),
        &mut out,
    );
    let keys = keys.borrow().clone();
    Saved {
        f,
        outcome,
        end,
        keys,
        text: String::from_utf8_lossy(&out).into_owned(),
    }
}

#[test]
fn a_save_destroys_the_guest_only_after_dom0s_end_has_the_file() {
    let r = run_save(SavePlan::Happy, Fake::new);
    assert_eq!(
        r.outcome,
        Outcome::Migrated { warnings: vec![] },
        "{}",
        r.text
    );
    let f = &r.f;
    let g = f.guest;
    // Only the source appliance was made: no shell, no destination.
    let creates: Vec<&String> = f
        .log
        .iter()
        .filter(|l| l.starts_with("xl create"))
        .collect();
    assert_eq!(creates, ["xl create -p /tmp/depmig/guest--depmig-src.cfg"]);
    // Its peer is dom0, and nothing is negotiated: the file is Xen's stream.
    assert_eq!(r.keys["migrate/role"], "source");
    assert_eq!(r.keys["migrate/peer"], "10.77.0.1:7100");
    assert_eq!(r.keys["migrate/compress"], "none");
    assert_eq!(r.keys["migrate/encrypt"], "off");
    assert_eq!(r.keys["migrate/verify"], "off");
    assert_eq!(r.keys["migrate/delta-cache"], "0");
    assert_eq!(r.keys["migrate/mode"], "baseline");
    // dom0's end holds the key the appliance was given.
    assert_eq!(
        r.end.borrow().key.as_deref(),
        Some(r.keys["migrate/key"].as_str())
    );
    // The guest goes, after the end said the file is complete.
    let destroy = f.pos(&format!("xl destroy {g}")).expect("guest destroyed");
    assert!(r.end.borrow().applied_at.is_some());
    assert!(f.dom(g).is_none(), "{:?}", f.doms);
    assert!(f.by_name(SRC).is_none());
    assert!(f.log[..destroy]
        .iter()
        .all(|l| !l.starts_with("xl unpause 5")));
    assert!(!r.end.borrow().abandoned);
    assert!(f.violations.is_empty(), "{:?}", f.violations);
    assert!(r.text.contains("saving `guest`"), "{}", r.text);
    // The source appliance's report, with the command's figures, passes
    // the report's own checks.
    let text = std::str::from_utf8(&f.files[&std::path::PathBuf::from("/out/save.json")]).unwrap();
    crate::report::parse_any_report(text).unwrap_or_else(|e| panic!("{e}: {text}"));
    assert!(text.contains("\"outcome\":\"migrated\""), "{text}");
}

#[test]
fn a_save_whose_file_fails_resumes_the_guest_and_abandons_the_end() {
    let r = run_save(SavePlan::EndFails, Fake::new);
    let Outcome::RolledBack { reason, warnings } = &r.outcome else {
        panic!("{:?}\n{}", r.outcome, r.text);
    };
    assert!(reason.contains("FAIL"), "{reason}");
    assert!(
        warnings.iter().any(|w| w.contains("BadTag")),
        "{warnings:?}"
    );
    let f = &r.f;
    assert!(r.end.borrow().abandoned);
    assert!(f.dom(f.guest).is_some_and(|d| d.running()), "{:?}", f.doms);
    assert!(f.pos(&format!("xl destroy {} ", f.guest)).is_none());
    assert_eq!(f.doms.len(), 1, "{:?}", f.doms);
    assert!(f.violations.is_empty(), "{:?}", f.violations);
}

#[test]
fn a_source_failing_mid_save_leaves_the_guest_running() {
    let r = run_save(SavePlan::SourceFails, Fake::new);
    assert!(
        matches!(r.outcome, Outcome::RolledBack { .. }),
        "{:?}",
        r.outcome
    );
    assert_eq!(r.outcome.exit_code(), 1);
    let f = &r.f;
    assert!(r.end.borrow().abandoned);
    assert!(f.dom(f.guest).is_some_and(|d| d.running()));
    assert_eq!(f.doms.len(), 1, "{:?}", f.doms);
}

#[test]
fn a_save_of_a_missing_guest_creates_nothing_and_never_starts_the_end() {
    let r = run_save(SavePlan::Happy, Fake::empty_host);
    assert!(
        matches!(r.outcome, Outcome::Refused { .. }),
        "{:?}",
        r.outcome
    );
    assert!(r.end.borrow().key.is_none());
    assert!(!r.f.log.iter().any(|l| l.starts_with("xl create")));
}

/// dom0's restore end: records what it was given, answers as told.
struct FakeSender {
    sent: Rc<RefCell<Option<(SocketAddrV4, String)>>>,
    answer: Result<(), String>,
}

impl RestoreSend for FakeSender {
    fn send(&mut self, addr: SocketAddrV4, key_hex: &str) -> Result<(), String> {
        *self.sent.borrow_mut() = Some((addr, key_hex.to_string()));
        self.answer.clone()
    }
}

fn restore_behaviour(
    sent: Rc<RefCell<Option<(SocketAddrV4, String)>>>,
    key: Rc<RefCell<Option<String>>>,
) -> Box<dyn FnMut(&mut Fake)> {
    let mut started = false;
    Box::new(move |f: &mut Fake| {
        let Some(d) = f.started(DST) else { return };
        if !started {
            started = true;
            if let Some(s) = f.shell {
                f.map(d, s);
            }
            *key.borrow_mut() = f.control(d, "migrate/key");
            f.set(d, "state", "receiving");
        } else if sent.borrow().is_some() {
            f.set(d, "state", "applied");
            f.poweroff(d);
        }
    })
}

struct Restored {
    f: Fake,
    outcome: Outcome,
    sent: Option<(SocketAddrV4, String)>,
    key: Option<String>,
    text: String,
}

fn run_restore(answer: Result<(), String>, host: fn(Behaviour) -> Fake) -> Restored {
    let sent = Rc::new(RefCell::new(None));
    let key = Rc::new(RefCell::new(None));
    let mut f = host(restore_behaviour(sent.clone(), key.clone()));
    f.writers.push(DST.into());
    let ro = RestoreOptions {
        guest: "guest".into(),
        config: "name = \"guest\"\ntype = \"pvh\"\nmemory = 512\n".into(),
        file: "/out/guest.save".into(),
        appliance: IMAGE.into(),
        bridge: "xenbr0".into(),
        work_dir: "/tmp/depmig".into(),
        ip: Ipv4Addr::new(10, 77, 0, 22),
        prefix: 24,
        port: 7100,
        appliance_memory_mib: 64,
    };
    let mut sender = FakeSender {
        sent: sent.clone(),
        answer,
    };
    let mut out = Vec::new();
    // The fake's guest is only needed by a save: a restore starts on a
    // host without it.
    let outcome = restore(&mut f, &ro, &mut sender, &Timings::default(), &mut out);
    let sent = sent.borrow().clone();
    let key = key.borrow().clone();
    Restored {
        f,
        outcome,
        sent,
        key,
        text: String::from_utf8_lossy(&out).into_owned(),
    }
}

#[test]
fn a_restore_runs_the_shell_under_the_guests_name_once_applied() {
    let r = run_restore(Ok(()), Fake::empty_host);
    assert_eq!(
        r.outcome,
        Outcome::Migrated { warnings: vec![] },
        "{}",
        r.text
    );
    let f = &r.f;
    let shell = f.shell.expect("shell created");
    let (addr, key) = r.sent.expect("sent");
    assert_eq!(addr, SocketAddrV4::new(Ipv4Addr::new(10, 77, 0, 22), 7100));
    assert_eq!(Some(key), r.key, "the appliance's key is the sender's");
    let unpause = f
        .pos(&format!("xl unpause {shell}"))
        .expect("shell unpaused");
    let rename = f.pos(&format!("xl rename {shell} guest")).expect("renamed");
    assert!(unpause < rename);
    let names: Vec<&str> = f.doms.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, ["guest"], "{:?}", f.doms);
    assert!(f.by_name("guest").unwrap().running());
    assert!(f.violations.is_empty(), "{:?}", f.violations);
}

#[test]
fn a_restore_whose_stream_is_refused_leaves_nothing() {
    let r = run_restore(
        Err("the destination appliance refused it (NAK DEC)".into()),
        Fake::empty_host,
    );
    let Outcome::RolledBack { reason, .. } = &r.outcome else {
        panic!("{:?}\n{}", r.outcome, r.text);
    };
    assert!(reason.contains("NAK DEC"), "{reason}");
    let f = &r.f;
    let shell = f.shell.expect("shell created");
    assert!(f.pos(&format!("xl unpause {shell}")).is_none(), "never ran");
    assert!(f.doms.is_empty(), "{:?}", f.doms);
}

#[test]
fn a_restore_beside_a_guest_of_its_name_is_refused_before_anything_is_created() {
    let r = run_restore(Ok(()), Fake::new);
    assert!(
        matches!(r.outcome, Outcome::Refused { .. }),
        "{:?}",
        r.outcome
    );
    assert!(r.sent.is_none());
    assert!(!r.f.log.iter().any(|l| l.starts_with("xl create")));
}

#[test]
fn save_and_restore_parse_and_a_save_negotiates_nothing() {
    let a = save_args();
    assert_eq!(a.file, std::path::PathBuf::from("/out/guest.save"));
    assert_eq!(a.format, crate::cli::SaveFormat::Xl);
    assert_eq!((a.dom0_ip, a.port), (None, 7100));
    let o = a.migrate_options(DOM0).unwrap();
    assert_eq!(o.destination_ip, DOM0);
    assert_eq!(o.host, None);
    assert!(!o.verify);
    assert_eq!(o.compress.as_str(), "none");
    assert_eq!(o.encrypt().as_str(), "off");
    assert_eq!(o.delta_cache.0, 0);
    assert_eq!(o.mode.as_str(), "baseline");
    match parse_args(&[
        "save",
        "guest",
        "f",
        "--config",
        "c",
        "--format",
        "libxc",
        "--dom0-ip",
        "10.0.0.1",
    ]) {
        Ok(Command::Save(s)) => {
            assert_eq!(s.format, crate::cli::SaveFormat::Libxc);
            assert_eq!(s.dom0_ip, Some(Ipv4Addr::new(10, 0, 0, 1)));
        }
        other => panic!("{other:?}"),
    }
    assert!(
        parse_args(&["save", "guest", "f"]).is_err(),
        "--config is required"
    );
    assert!(parse_args(&["save", "guest", "f", "--config", "c", "--format", "raw"]).is_err());
    match parse_args(&["restore", "f"]) {
        Ok(Command::Restore(r)) => {
            assert_eq!(r.config, None);
            assert_eq!(r.destination_ip, Ipv4Addr::new(10, 77, 0, 22));
        }
        other => panic!("{other:?}"),
    }
    for help in [&["save", "--help"][..], &["restore", "--help"][..]] {
        assert!(matches!(parse_args(help), Ok(Command::Help(_))));
    }
}
