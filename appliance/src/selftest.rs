//! The self-test: exercises each piece of plumbing and prints one result
//! line, `depmig-selftest: PASS` or `depmig-selftest: FAIL <what>`.
//!
//! Without Xen only the platform-independent checks run and the skipped
//! ones are listed. The status only gets worse: the first failure is kept
//! for the result line, every failure is logged.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use xen_abi::grant_table::{GTF_PERMIT_ACCESS, GTF_READING, GTF_TYPE_MASK, GTF_WRITING};
use xen_abi::PAGE_SHIFT;

use crate::platform::boot_info::BootInfo;
use crate::platform::console::println;
use crate::platform::fail::End;
use crate::platform::xen::xenstore::{Xenstore, XsClientError};
use crate::platform::xen::{evtchn, grant, Wake, Xen};

/// Checks that need Xen, listed when they are skipped.
const XEN_CHECKS: &[&str] = &[
    "version",
    "hypercall-page",
    "console",
    "shared-info",
    "evtchn-loopback",
    "evtchn-timer",
    "xenstore",
    "grant-table",
];

type Check = Result<String, String>;

struct Report {
    passed: usize,
    failed: Vec<&'static str>,
}

impl Report {
    fn record(&mut self, name: &'static str, result: Check) {
        match result {
            Ok(detail) => {
                self.passed += 1;
                log::info!("check {name}: ok ({detail})");
            }
            Err(why) => {
                log::error!("check {name}: FAILED: {why}");
                self.failed.push(name);
            }
        }
    }
}

/// Runs every check that the platform allows; returns how the run ended.
pub fn run(info: &BootInfo, xen: Option<&'static Xen>) -> End {
    let mut r = Report {
        passed: 0,
        failed: Vec::new(),
    };
    r.record("boot-info", check_boot_info(info));
    r.record("heap", check_heap());
    r.record("clock", check_clock());
    r.record("xenstore-codec", check_codec());
    match xen {
        Some(x) => run_xen(&mut r, x),
        None => println!("depmig: skipped (need Xen): {}", XEN_CHECKS.join(", ")),
    }
    println!(
        "depmig: {} checks passed, {} failed",
        r.passed,
        r.failed.len()
    );
    if r.failed.is_empty() {
        println!("depmig-selftest: PASS");
        End::Pass
    } else {
        println!("depmig-selftest: FAIL {}", r.failed.join(","));
        End::Fail
    }
}

fn ensure(cond: bool, why: impl FnOnce() -> String) -> Result<(), String> {
    if cond {
        Ok(())
    } else {
        Err(why())
    }
}

fn check_boot_info(info: &BootInfo) -> Check {
    ensure(info.mode() == "selftest", || {
        format!("mode {:?}", info.mode())
    })?;
    ensure(!info.ram.is_empty(), || "memory map lists no RAM".into())?;
    let total: u64 = info.ram.iter().map(|r| r.end - r.start).sum();
    Ok(format!(
        "{} RAM regions, {} MiB",
        info.ram.len(),
        total >> 20
    ))
}

fn check_heap() -> Check {
    let (used0, total) = crate::platform::heap::usage();
    ensure(total > 0, || "no heap".into())?;
    let mut v: Vec<u64> = Vec::new();
    for i in 0..10_000u64 {
        v.push(i * 3);
    }
    ensure(
        v.iter().enumerate().all(|(i, &x)| x == i as u64 * 3),
        || "vector contents".into(),
    )?;
    let page = alloc::boxed::Box::new(Aligned([7u8; 4096]));
    let addr = &*page as *const Aligned as usize;
    ensure(addr.is_multiple_of(4096), || {
        format!("4 KiB alignment: {addr:#x}")
    })?;
    let big = alloc::vec![0xA5u8; 1 << 20];
    ensure(big.iter().all(|&b| b == 0xA5), || "1 MiB buffer".into())?;
    drop((v, page, big));
    let (used1, _) = crate::platform::heap::usage();
    ensure(used1 == used0, || {
        format!("leak: {used0} -> {used1} bytes in use")
    })?;
    // After freeing everything, one large block must fit again (coalescing).
    let again = alloc::vec![1u8; 2 << 20];
    ensure(again.len() == 2 << 20, || "re-allocation after free".into())?;
    Ok(format!("{} KiB heap", total / 1024))
}

#[repr(C, align(4096))]
struct Aligned([u8; 4096]);

fn check_clock() -> Check {
    // The clock handed out never runs backwards: after a reading that came
    // out ahead (Xen's time record is re-stamped each calibration, and under
    // emulation its extrapolation can run fast) it holds still until the
    // raw time catches up. So it must advance once the raw time has moved
    // on by more than any plausible hold, not within a fixed amount of busy
    // work, which a fast host finishes inside one hold.
    const RAW_BOUND_NS: u64 = 10_000_000_000;
    const MAX_LOOPS: u32 = 100_000;
    let clock = || crate::platform::clock::now_ns();
    let raw = || crate::platform::clock::raw_ns();
    let (a, raw_a) = (clock(), raw());
    let mut x = 0u64;
    let mut loops = 0u32;
    let (b, raw_b) = loop {
        for i in 0..100_000u64 {
            x = core::hint::black_box(x.wrapping_add(i));
        }
        loops += 1;
        let (b, raw_b) = (clock(), raw());
        if b > a || loops >= MAX_LOOPS || raw_b.saturating_sub(raw_a) > RAW_BOUND_NS {
            break (b, raw_b);
        }
    };
    let (held, back) = crate::platform::clock::backward_steps();
    ensure(b > a, || {
        format!(
            "clock did not advance over {loops} busy loops: {a} -> {b} (raw {raw_a} -> {raw_b}; \
             {held} reading(s) held back, largest step back {back} ns)"
        )
    })?;
    Ok(format!(
        "advanced {} ns after {loops} busy loop(s) (raw {} ns); {held} reading(s) held back so far, largest step back {back} ns",
        b - a,
        raw_b.wrapping_sub(raw_a) as i64
    ))
}

fn check_codec() -> Check {
    use xenstore_wire::*;
    let mut buf = [0u8; 64];
    let n = Request::write(0, b"data/x", b"v")
        .encode(5, &mut buf)
        .map_err(|e| format!("{e:?}"))?;
    let mut a = Assembler::default();
    for b in buf.iter().take(n) {
        a.push(core::slice::from_ref(b))
            .map_err(|e| format!("{e:?}"))?;
    }
    let m = a.message().ok_or("message not reassembled")?;
    ensure(m.header.req_id == 5 && m.payload == b"data/x\0v", || {
        "round trip".into()
    })?;
    Ok("request encodes and reassembles".into())
}

fn run_xen(r: &mut Report, x: &'static Xen) {
    r.record(
        "version",
        Ok(format!(
            "Xen {}.{}{}, domctl interface {:#x}",
            x.version.major, x.version.minor, x.extra, x.domctl_version
        )),
    );
    r.record(
        "hypercall-page",
        match x.entry {
            Some(e) => Ok(format!("stubs use {e:?}")),
            None => Err("sched_op stub has an unexpected shape".into()),
        },
    );
    r.record("console", check_console());
    r.record("shared-info", check_shared_info(x));
    r.record("evtchn-loopback", check_loopback(x));
    r.record("evtchn-timer", check_timer(x));
    match Xenstore::new(x) {
        Ok(mut xs) => {
            let domid = xs.own_domid();
            r.record("xenstore", check_xenstore(x, &mut xs));
            r.record(
                "grant-table",
                match domid {
                    Some(d) => check_grants(x, d),
                    None => Err("own domid unknown (xenstore read failed)".into()),
                },
            );
        }
        Err(e) => {
            r.record("xenstore", Err(format!("{e:?}")));
            r.record("grant-table", Err("skipped: no xenstore".into()));
        }
    }
}

fn check_console() -> Check {
    println!("depmig: PV console check line");
    crate::platform::console::flush();
    match crate::platform::console::pv_drained() {
        Some(true) => Ok("a line written to the ring was consumed by the backend".into()),
        Some(false) => Err("the console backend did not consume the ring within 2 s".into()),
        None => Err("no PV console attached".into()),
    }
}

fn check_shared_info(x: &Xen) -> Check {
    let t1 = x.now_ns();
    let mut spins = 0u64;
    while x.now_ns() <= t1 {
        spins += 1;
        if spins > 100_000_000 {
            return Err("pvclock does not advance".into());
        }
    }
    let t = x.shared.time();
    ensure(t.tsc_to_system_mul != 0, || {
        "vcpu_time_info not filled".into()
    })?;
    Ok(format!(
        "pvclock {} ms since Xen boot, mul {:#x} shift {}",
        t1 / 1_000_000,
        t.tsc_to_system_mul,
        t.tsc_shift
    ))
}

fn check_loopback(x: &Xen) -> Check {
    let e = |what: &'static str| move |err| format!("{what}: {err}");
    let a = evtchn::alloc_unbound(xen_abi::DOMID_SELF).map_err(e("alloc_unbound"))?;
    let b = evtchn::bind_interdomain(xen_abi::DOMID_SELF, a).map_err(e("bind_interdomain"))?;
    let result = (|| {
        evtchn::unmask(a).map_err(e("unmask"))?;
        evtchn::unmask(b).map_err(e("unmask"))?;
        // b -> a, waited for with SCHEDOP_poll.
        evtchn::send(b).map_err(e("send"))?;
        crate::platform::xen::hypercall::poll(&[a], x.now_ns() + 1_000_000_000)
            .map_err(e("poll"))?;
        ensure(evtchn::take_pending(&x.shared, a), || {
            "poll returned without the event".into()
        })?;
        // a -> b, waited for with SCHEDOP_block.
        evtchn::send(a).map_err(e("send"))?;
        match x.wait(&[b], x.now_ns() + 1_000_000_000) {
            Wake::Port(p) if p == b => {}
            w => return Err(format!("block wait: {w:?}")),
        }
        // Masked ports stay pending but do not wake a block.
        evtchn::mask(&x.shared, b);
        evtchn::send(a).map_err(e("send"))?;
        ensure(evtchn::is_pending(&x.shared, b), || {
            "masked port not pending".into()
        })?;
        evtchn::unmask(b).map_err(e("unmask"))?;
        ensure(evtchn::take_pending(&x.shared, b), || {
            "unmasked port lost its event".into()
        })?;
        Ok(format!("ports {a}<->{b}: poll and block round trips"))
    })();
    let _ = evtchn::close(b);
    let _ = evtchn::close(a);
    result
}

fn check_timer(x: &Xen) -> Check {
    let start = x.now_ns();
    let deadline = start + 20_000_000;
    let w = x.wait(&[], deadline);
    let end = x.now_ns();
    ensure(w == Wake::TimedOut, || format!("{w:?}"))?;
    ensure(end >= deadline, || "woke before the deadline".into())?;
    Ok(format!(
        "blocked {} us for a 20 ms VIRQ_TIMER deadline",
        (end - start) / 1000
    ))
}

fn xs_err(what: &'static str) -> impl Fn(XsClientError) -> String {
    move |e| format!("{what}: {e:?}")
}

fn check_xenstore(x: &Xen, xs: &mut Xenstore) -> Check {
    let domid = xs.read_string("domid").map_err(xs_err("read domid"))?;
    let name = xs.read_string("name").map_err(xs_err("read name"))?;
    let dir = "data/depmig-selftest";
    xs.write(&format!("{dir}/k"), b"v1")
        .map_err(xs_err("write"))?;
    let v = xs.read(&format!("{dir}/k")).map_err(xs_err("read back"))?;
    ensure(v == b"v1", || format!("read back {v:?}"))?;
    // An error reply is a typed error, not a crash.
    match xs.read(&format!("{dir}/missing")) {
        Err(XsClientError::Wire(xenstore_wire::WireError::Xs(xenstore_wire::XsError::NoEnt))) => {}
        other => return Err(format!("missing node: {other:?}")),
    }
    // Transaction: two writes committed together.
    xs.transaction(|xs, tx| {
        xs.write_tx(tx, &format!("{dir}/t1"), b"a")?;
        xs.write_tx(tx, &format!("{dir}/t2"), b"b")?;
        xs.read_tx(tx, &format!("{dir}/t1"))
    })
    .map_err(xs_err("transaction"))?;
    ensure(
        xs.read(&format!("{dir}/t2")).map_err(xs_err("read t2"))? == b"b",
        || "t2".into(),
    )?;
    // A value larger than the 1 KiB ring (under xenstored's 2 KiB quota).
    let big: Vec<u8> = (0..1500u32).map(|i| b'a' + (i % 26) as u8).collect();
    xs.write(&format!("{dir}/big"), &big)
        .map_err(xs_err("write big"))?;
    let back = xs.read(&format!("{dir}/big")).map_err(xs_err("read big"))?;
    ensure(back == big, || {
        format!("big value came back as {} bytes", back.len())
    })?;
    let mut list = xs.directory(dir).map_err(xs_err("directory"))?;
    list.sort();
    ensure(list == ["big", "k", "t1", "t2"], || {
        format!("directory {list:?}")
    })?;
    // Watch: the initial event, then one for a write.
    let wpath = format!("{dir}/w");
    xs.watch(&wpath, "depmig-tok").map_err(xs_err("watch"))?;
    let first = xs
        .next_event(x.now_ns() + 5_000_000_000)
        .map_err(xs_err("initial watch event"))?;
    ensure(first.token == "depmig-tok", || {
        format!("initial event {first:?}")
    })?;
    xs.write(&wpath, b"fire").map_err(xs_err("write watched"))?;
    let ev = xs
        .next_event(x.now_ns() + 5_000_000_000)
        .map_err(xs_err("watch event"))?;
    ensure(
        ev.token == "depmig-tok" && ev.path.ends_with("data/depmig-selftest/w"),
        || format!("event {ev:?}"),
    )?;
    xs.unwatch(&wpath, "depmig-tok")
        .map_err(xs_err("unwatch"))?;
    xs.rm(dir).map_err(xs_err("rm"))?;
    Ok(format!(
        "domid {domid}, name {name:?}; write/read/directory/transaction/watch/1500-byte value"
    ))
}

fn check_grants(x: &Xen, domid: u16) -> Check {
    let e = |what: &'static str| move |err: grant::GrantError| format!("{what}: {err:?}");
    let (frames, max) = grant::query_size().map_err(e("query_size"))?;
    // A page of ours with a pattern, granted to ourselves and mapped back.
    let mut page = alloc::boxed::Box::new(Aligned([0u8; 4096]));
    for (i, b) in page.0.iter_mut().enumerate() {
        *b = (i % 251) as u8;
    }
    let gfn = (&*page as *const Aligned as u64) >> PAGE_SHIFT;
    let mut gt = x.grants.lock();
    let gref = gt.grant(domid, gfn, false).map_err(e("grant"))?;
    let (flags, gdom, frame) = gt.entry(gref).map_err(e("entry"))?;
    ensure(
        flags & GTF_TYPE_MASK == GTF_PERMIT_ACCESS && gdom == domid && u64::from(frame) == gfn,
        || format!("entry {flags:#x} {gdom} {frame:#x}"),
    )?;
    let hole = x.window_page().ok_or("physmap window exhausted")?;
    let result = (|| -> Result<(), String> {
        let m = grant::map(domid, gref, hole, false).map_err(e("map own grant"))?;
        // SAFETY: Xen mapped the granted page at `m.addr` just now.
        let seen = unsafe { core::ptr::read_volatile((m.addr + 1000) as *const u8) };
        let (busy, _, _) = gt.entry(gref).map_err(e("entry"))?;
        let in_use = gt.end_access(gref);
        grant::unmap(m).map_err(e("unmap"))?;
        ensure(seen == (1000 % 251) as u8, || {
            format!("mapped page reads {seen}")
        })?;
        ensure(busy & (GTF_READING | GTF_WRITING) != 0, || {
            format!("Xen did not mark the entry in use: {busy:#x}")
        })?;
        ensure(in_use == Err(grant::GrantError::InUse), || {
            "revoked while mapped".into()
        })?;
        gt.end_access(gref).map_err(e("end_access after unmap"))?;
        Ok(())
    })();
    x.release_window_page(hole);
    result?;
    // A read-only grant to dom0, checked and revoked.
    let r0 = gt.grant(0, gfn, true).map_err(e("grant to dom0"))?;
    let (f0, d0, _) = gt.entry(r0).map_err(e("entry"))?;
    ensure(
        d0 == 0 && f0 & xen_abi::grant_table::GTF_READONLY != 0,
        || format!("dom0 entry {f0:#x}"),
    )?;
    gt.end_access(r0).map_err(e("end_access dom0"))?;
    drop(page);
    Ok(format!("table {frames}/{max} frames, {} entries; self grant {gref} mapped, read, busy-flagged, revoked", gt.capacity()))
}
