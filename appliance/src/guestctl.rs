//! The `guestctl` mode: exercises the operations a migration needs against
//! a real running guest G and a paused shell S (dom0 made both), prints one
//! line per check, and ends `depmig-guestctl: PASS …` or `FAIL <checks>`.
//!
//! Configuration, written by dom0 under our xenstore home:
//! `depmig/guestctl/guest` (G's domid), `depmig/guestctl/shell` (S's domid),
//! `depmig/guestctl/request` (a node we may write: we ask dom0 to unpause G
//! there, since the policy does not let appliances unpause) and
//! `depmig/guestctl/reply` (dom0's answer). dom0 also lets us read G's
//! `store/ring-ref` and write G's `control/shutdown`.
//!
//! The checks only pass on evidence: values compared with what another
//! party (the toolstack, the guest's kernel, Xen's counters) says.

use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use xen_abi::hvm::*;
use xen_abi::hvm_save::{self, Context};
use xen_abi::{DomId, PAGE_SIZE};

use crate::platform::console::println;
use crate::platform::fail::End;
use crate::platform::xen::domctl::{self, DomInfo, DomctlError};
use crate::platform::xen::foreign::{Access, ForeignError, ForeignWindow};
use crate::platform::xen::xenstore::Xenstore;
use crate::platform::xen::Xen;

/// Our configuration directory, relative to our xenstore home.
const DIR: &str = "depmig/guestctl";
/// Pages of the foreign window (the largest batch).
const WINDOW: usize = 1024;
/// The kernel's banner, somewhere in its read-only data.
const BANNER: &[u8] = b"Linux version ";
/// How long the guest may take to suspend itself under emulation.
const SUSPEND_TIMEOUT_NS: u64 = 120_000_000_000;
/// How long dom0 may take to answer a request.
const DOM0_TIMEOUT_NS: u64 = 120_000_000_000;

type Check = Result<String, String>;

struct Report {
    passed: usize,
    failed: Vec<&'static str>,
}

impl Report {
    fn record(&mut self, name: &'static str, result: Check) -> bool {
        match result {
            Ok(detail) => {
                self.passed += 1;
                println!("guestctl: {name}: ok: {detail}");
                true
            }
            Err(why) => {
                self.failed.push(name);
                println!("guestctl: {name}: FAILED: {why}");
                false
            }
        }
    }
}

fn ensure(cond: bool, why: impl FnOnce() -> String) -> Result<(), String> {
    if cond {
        Ok(())
    } else {
        Err(why())
    }
}

fn e<E: core::fmt::Display>(what: &'static str) -> impl Fn(E) -> String {
    move |err| format!("{what}: {err}")
}

fn sleep_ns(x: &Xen, ns: u64) {
    let deadline = x.now_ns().saturating_add(ns);
    while x.now_ns() < deadline {
        x.wait(&[], deadline);
    }
}

fn read_domid(xs: &mut Xenstore, key: &str) -> Result<DomId, String> {
    let v = xs
        .read_string(&format!("{DIR}/{key}"))
        .map_err(|err| format!("reading {DIR}/{key}: {err:?}"))?;
    depmig_control::addr::parse_domid(&v)
        .map_err(|_| format!("{DIR}/{key} = {v:?} is not a guest's domid"))
}

/// The `guestctl` mode.
pub fn run(x: &'static Xen) -> End {
    let fail = |what: String| {
        println!("depmig-guestctl: FAIL {what}");
        End::Fail
    };
    let mut xs = match Xenstore::new(x) {
        Ok(s) => s,
        Err(err) => return fail(format!("xenstore: {err:?}")),
    };
    let (g, s) = match (read_domid(&mut xs, "guest"), read_domid(&mut xs, "shell")) {
        (Ok(g), Ok(s)) => (g, s),
        (Err(err), _) | (_, Err(err)) => return fail(format!("configuration: {err}")),
    };
    let mut window = match ForeignWindow::new(x, WINDOW) {
        Ok(w) => w,
        Err(err) => return fail(format!("foreign window: {err}")),
    };
    println!(
        "guestctl: guest {g}, shell {s}, foreign window of {} pages",
        window.capacity()
    );
    let mut r = Report {
        passed: 0,
        failed: Vec::new(),
    };

    let info = match domctl::getdomaininfo(x, g) {
        Ok(i) => i,
        Err(err) => return fail(format!("getdomaininfo {g}: {err}")),
    };
    r.record("domaininfo", check_info(x, g, s, &info));
    r.record("store-pfn", check_store_pfn(&mut xs, g));
    let max_gpfn = domctl::maximum_gpfn(g);
    r.record("maximum-gpfn", check_max_gpfn(&info, max_gpfn));
    let max_gpfn = max_gpfn.unwrap_or(0);
    r.record("map-entries", check_map_entries(&mut window, g, max_gpfn));
    r.record(
        "map-scan",
        check_map_scan(x, &mut window, g, &info, max_gpfn),
    );
    r.record("map-throughput", check_throughput(x, &mut window, g));
    r.record("least-privilege", check_least_privilege(x, &mut window));
    // Stock 4.17 panics copying a dirty bitmap to a PVH caller. The rig's
    // patched hypervisor says so in its extra version ("-depmig"), as the
    // migrate mode checks; dom0 may also vouch for it (bitmap-copy = 1).
    let copy_ok = x.extra.contains("-depmig")
        || xs
            .read_string(&format!("{DIR}/bitmap-copy"))
            .is_ok_and(|v| v.trim() == "1");
    println!(
        "guestctl: Xen 4.{}{}: dirty bitmap copy {}",
        x.version.minor,
        x.extra,
        if copy_ok { "allowed" } else { "refused" }
    );
    domctl::allow_bitmap_copy(copy_ok);
    r.record(
        "log-dirty",
        check_logdirty(x, &mut xs, g, &info, max_gpfn, copy_ok),
    );
    let mut ctx = Vec::new();
    r.record("hvm-context", check_context(x, g, &info, &mut ctx));
    let tsc = domctl::get_tsc_info(x, g);
    r.record("tsc-info", check_tsc(x, g, s, tsc, &ctx));
    r.record("shell-params", check_shell_params(g, s));
    r.record("shell-context", check_shell_context(x, s, &ctx));
    r.record("shell-populate", check_populate(x, &mut window, s));
    r.record("suspend-resume", check_suspend_resume(x, &mut xs, g));

    let st = window.stats();
    println!(
        "guestctl: foreign map totals: {} batches, {} mapped, {} refused, {} unmapped, {} unmap failures",
        st.batches, st.mapped, st.failed, st.unmapped, st.unmap_failed
    );
    let leaked = st.mapped != st.unmapped || window.poisoned() != 0;
    drop(window);
    if leaked {
        r.failed.push("unmap-all");
        println!(
            "guestctl: unmap-all: FAILED: {} mapped, {} unmapped",
            st.mapped, st.unmapped
        );
    } else {
        r.passed += 1;
        println!("guestctl: unmap-all: ok: every mapped frame was unmapped");
    }
    println!(
        "guestctl: {} checks passed, {} failed",
        r.passed,
        r.failed.len()
    );
    if r.failed.is_empty() {
        println!(
            "depmig-guestctl: PASS {} checks (guest {g}, shell {s})",
            r.passed
        );
        End::Pass
    } else {
        println!("depmig-guestctl: FAIL {}", r.failed.join(","));
        End::Fail
    }
}

fn check_info(x: &Xen, g: DomId, s: DomId, i: &DomInfo) -> Check {
    ensure(i.shutdown_reason().is_none() && !i.is_dying(), || {
        format!("guest flags {:#x}: shut down or dying", i.flags)
    })?;
    ensure(!i.is_paused(), || {
        format!("guest flags {:#x}: paused", i.flags)
    })?;
    ensure(i.tot_pages > 0 && i.tot_pages <= i.max_pages, || {
        format!("tot_pages {} max_pages {}", i.tot_pages, i.max_pages)
    })?;
    ensure(
        i.nr_online_vcpus >= 1 && i.max_vcpu_id + 1 >= i.nr_online_vcpus,
        || {
            format!(
                "vcpus online {} max id {}",
                i.nr_online_vcpus, i.max_vcpu_id
            )
        },
    )?;
    let si = domctl::getdomaininfo(x, s).map_err(e("shell"))?;
    ensure(si.is_paused() && si.shutdown_reason().is_none(), || {
        format!("shell flags {:#x}: not paused, or shut down", si.flags)
    })?;
    // A domid past every domain: Xen finds none (ESRCH) or one we may not
    // see; never an answer for another domain passed off as this one.
    let none = domctl::getdomaininfo(x, 0x7fe0);
    ensure(none.is_err(), || format!("domid 0x7fe0 answered: {none:?}"))?;
    Ok(format!(
        "guest {g}: flags {:#x} tot_pages {} max_pages {} vcpus {} ssid {}; shell {s}: paused, tot_pages {} max_pages {}; domid 0x7fe0: {}",
        i.flags,
        i.tot_pages,
        i.max_pages,
        i.nr_online_vcpus,
        i.ssidref,
        si.tot_pages,
        si.max_pages,
        none.err().map(|e| format!("{e}")).unwrap_or_default()
    ))
}

fn check_store_pfn(xs: &mut Xenstore, g: DomId) -> Check {
    let param = domctl::hvm_param_get(g, HVM_PARAM_STORE_PFN).map_err(e("HVM_PARAM_STORE_PFN"))?;
    let path = format!("/local/domain/{g}/store/ring-ref");
    let v = xs
        .read_string(&path)
        .map_err(|err| format!("reading {path}: {err:?}"))?;
    let ring_ref: u64 = v
        .trim()
        .parse()
        .map_err(|_| format!("{path} = {v:?} is not a number"))?;
    ensure(param == ring_ref, || {
        format!("HVM_PARAM_STORE_PFN {param:#x} but store/ring-ref {ring_ref:#x}")
    })?;
    let console =
        domctl::hvm_param_get(g, HVM_PARAM_CONSOLE_PFN).map_err(e("HVM_PARAM_CONSOLE_PFN"))?;
    let evtchn =
        domctl::hvm_param_get(g, HVM_PARAM_STORE_EVTCHN).map_err(e("HVM_PARAM_STORE_EVTCHN"))?;
    ensure(console != 0 && console != param, || {
        format!("console pfn {console:#x}, store pfn {param:#x}")
    })?;
    Ok(format!(
        "STORE_PFN {param:#x} = store/ring-ref; STORE_EVTCHN {evtchn}, CONSOLE_PFN {console:#x}"
    ))
}

fn check_max_gpfn(i: &DomInfo, m: Result<u64, DomctlError>) -> Check {
    let m = m.map_err(e("XENMEM_maximum_gpfn"))?;
    // The physmap holds at least the domain's pages (minus a few Xen-side
    // ones), and a PVH guest's special pages sit below 4 GiB.
    ensure(m + 1 + 64 >= i.tot_pages && m < (1 << 20), || {
        format!("maximum gpfn {m:#x} for {} pages", i.tot_pages)
    })?;
    Ok(format!("{m:#x}"))
}

/// One batch mixing populated frames and frames past the guest's physmap:
/// the latter fail alone.
fn check_map_entries(w: &mut ForeignWindow, g: DomId, max_gpfn: u64) -> Check {
    let gfns = [0x100, max_gpfn + 1, max_gpfn + 0x1000, 0x101, 0x102];
    let b = w.map(g, &gfns, Access::Read).map_err(e("map"))?;
    let res: Vec<_> = (0..gfns.len()).map(|i| b.entry(i)).collect();
    ensure(
        b.gfn(1) == Some(max_gpfn + 1) && b.len() == gfns.len(),
        || "batch does not hold the frames asked for".into(),
    )?;
    let ok = |i: usize| res.get(i).is_some_and(|r| r.is_ok());
    let refused = |i: usize| matches!(res.get(i), Some(Err(ForeignError::Entry { .. })));
    ensure(ok(0) && ok(3) && ok(4) && refused(1) && refused(2), || {
        format!("per-entry results {res:?}")
    })?;
    let mut page = [0u8; 8];
    b.read(0, 0, &mut page).map_err(e("read"))?;
    let write = {
        let mut b = b;
        let w = b.write(0, 0, &[0]);
        let u = b.unmap();
        ensure(u.ok == 3 && u.failed == 0, || format!("unmap {u:?}"))?;
        w
    };
    ensure(write == Err(ForeignError::ReadOnly), || {
        format!("write through a read batch: {write:?}")
    })?;
    Ok(format!(
        "populated frames mapped, frames {:#x} and {:#x} refused ({}, {})",
        max_gpfn + 1,
        max_gpfn + 0x1000,
        res.get(1)
            .and_then(|r| r.err())
            .map(|e| format!("{e}"))
            .unwrap_or_default(),
        res.get(2)
            .and_then(|r| r.err())
            .map(|e| format!("{e}"))
            .unwrap_or_default()
    ))
}

/// Finds `BANNER` in `page`, also across the boundary with the previous
/// page's `tail`.
fn find_banner(tail: &[u8], page: &[u8]) -> bool {
    let mut joined = [0u8; 2 * 16];
    let n = tail.len().min(16);
    let head = BANNER.len().saturating_sub(1).min(16).min(page.len());
    // PANICS: n ≤ 16 ≤ tail.len() - (tail.len() - n), head ≤ 16 and
    // ≤ page.len(), so every range lies inside its 32-byte or given slice.
    joined[..n].copy_from_slice(&tail[tail.len() - n..]);
    joined[n..n + head].copy_from_slice(&page[..head]);
    joined[..n + head]
        .windows(BANNER.len())
        .any(|w| w == BANNER)
        || page.windows(BANNER.len()).any(|w| w == BANNER)
}

/// Maps the guest's RAM (from frame 0 to a little past its page count) and
/// the special frames just below its highest frame, copies each populated
/// page and looks for the kernel banner; the populated count must match the
/// pages Xen says the domain holds. (Not the whole 4 GiB physmap: every hole
/// costs a refused entry, and under emulation a whole scan takes minutes.)
fn check_map_scan(x: &Xen, w: &mut ForeignWindow, g: DomId, i: &DomInfo, max_gpfn: u64) -> Check {
    let low_end = (i.tot_pages + 0x1000).min(max_gpfn + 1);
    let high_start = max_gpfn.saturating_sub(0xff).max(low_end);
    let ranges = [(0, low_end), (high_start, max_gpfn + 1)];
    let mut page = [0u8; PAGE_SIZE];
    let mut tail = [0u8; 16];
    let mut prev_gfn = u64::MAX;
    let mut mapped = 0u64;
    let mut scanned = 0u64;
    let mut banner_at = None;
    let mut gfns = Vec::with_capacity(WINDOW);
    let t0 = x.now_ns();
    for (start, end) in ranges {
        let mut next = start;
        while next < end {
            let n = (end - next).min(WINDOW as u64);
            gfns.clear();
            gfns.extend(next..next + n);
            let b = w.map(g, &gfns, Access::Read).map_err(e("map"))?;
            for k in 0..b.len() {
                if b.entry(k).is_err() {
                    continue;
                }
                mapped += 1;
                b.copy_page(k, &mut page).map_err(e("copy"))?;
                if banner_at.is_none() {
                    let gfn = next + k as u64;
                    let t: &[u8] = if prev_gfn.wrapping_add(1) == gfn {
                        &tail
                    } else {
                        &[]
                    };
                    if find_banner(t, &page) {
                        banner_at = Some(gfn);
                    }
                    tail.copy_from_slice(&page[PAGE_SIZE - 16..]);
                    prev_gfn = gfn;
                }
            }
            drop(b);
            scanned += n;
            next += n;
        }
    }
    let ns = x.now_ns().saturating_sub(t0).max(1);
    let at = banner_at.ok_or("no \"Linux version \" banner in any mapped page")?;
    // The physmap holds the domain's pages plus the few Xen shares with it
    // (shared_info, grant table frames), which tot_pages does not count.
    ensure(mapped.abs_diff(i.tot_pages) <= 64, || {
        format!(
            "{mapped} frames mapped of {} pages the domain holds",
            i.tot_pages
        )
    })?;
    Ok(format!(
        "{mapped} of {scanned} frames in 0..{low_end:#x} and {high_start:#x}..={max_gpfn:#x} populated (domain holds {}), kernel banner in frame {at:#x}; {} ms = {} pages/s mapped+copied+unmapped",
        i.tot_pages,
        ns / 1_000_000,
        u128::from(mapped) * 1_000_000_000 / u128::from(ns)
    ))
}

/// Map, copy and unmap rates for several batch sizes over the same RAM.
fn check_throughput(x: &Xen, w: &mut ForeignWindow, g: DomId) -> Check {
    const PAGES: u64 = 16384;
    const FIRST: u64 = 0x1000;
    let mut out = String::new();
    let mut page = [0u8; PAGE_SIZE];
    for batch in [64usize, 256, 1024] {
        let before = w.stats();
        let t0 = x.now_ns();
        let mut done = 0u64;
        let mut gfns = Vec::with_capacity(batch);
        let mut next = FIRST;
        while next < FIRST + PAGES {
            let n = (FIRST + PAGES - next).min(batch as u64);
            gfns.clear();
            gfns.extend(next..next + n);
            let b = w.map(g, &gfns, Access::Read).map_err(e("map"))?;
            for k in 0..b.len() {
                if b.copy_page(k, &mut page).is_ok() {
                    done += 1;
                }
            }
            drop(b);
            next += n;
        }
        let ns = x.now_ns().saturating_sub(t0).max(1);
        let after = w.stats();
        let map_ns = after.map_ns - before.map_ns;
        let unmap_ns = after.unmap_ns - before.unmap_ns;
        ensure(done == PAGES, || {
            format!("batch {batch}: {done} of {PAGES} pages mapped")
        })?;
        let rate = u128::from(done) * 1_000_000_000 / u128::from(ns);
        println!(
            "depmig-guestctl: map throughput batch={batch} pages={done} total_ms={} pages_per_s={rate} map_us_per_page={}.{:02} unmap_us_per_page={}.{:02}",
            ns / 1_000_000,
            map_ns / done / 1000,
            (map_ns / done % 1000) / 10,
            unmap_ns / done / 1000,
            (unmap_ns / done % 1000) / 10,
        );
        out.push_str(&format!("batch {batch}: {rate} pages/s; "));
    }
    Ok(out)
}

/// Domains outside the grant stay out of reach: dom0's frames are refused,
/// and so is unpausing (only dom0 may unpause).
fn check_least_privilege(x: &Xen, w: &mut ForeignWindow) -> Check {
    let b = w.map(0, &[0x100], Access::Read);
    let map0 = match &b {
        Ok(b) => b.entry(0),
        Err(err) => Err(*err),
    };
    drop(b);
    ensure(
        matches!(
            map0,
            Err(ForeignError::Entry {
                err: xen_abi::errno::EACCES,
                ..
            }) | Err(ForeignError::Map(xen_abi::errno::EACCES))
        ),
        || format!("mapping a dom0 frame: {map0:?}"),
    )?;
    let info0 = domctl::getdomaininfo(x, 0);
    ensure(
        info0 == Err(DomctlError::Xen(xen_abi::errno::EACCES)),
        || format!("getdomaininfo(dom0): {info0:?}"),
    )?;
    Ok("dom0 frame refused (EACCES), getdomaininfo(dom0) refused (EACCES)".into())
}

/// Asks dom0 (through our `request` node) to unpause G; waits for its reply.
fn ask_dom0_unpause(x: &Xen, xs: &mut Xenstore, n: u32) -> Result<(), String> {
    let req = format!("unpause {n}");
    xs.write(&format!("{DIR}/request"), req.as_bytes())
        .map_err(|err| format!("writing {DIR}/request: {err:?}"))?;
    let want = format!("unpaused {n}");
    let deadline = x.now_ns().saturating_add(DOM0_TIMEOUT_NS);
    loop {
        if let Ok(v) = xs.read_string(&format!("{DIR}/reply")) {
            if v.trim() == want {
                return Ok(());
            }
        }
        if x.now_ns() >= deadline {
            return Err("dom0 did not answer the unpause request".into());
        }
        sleep_ns(x, 200_000_000);
    }
}

fn check_logdirty(
    x: &Xen,
    xs: &mut Xenstore,
    g: DomId,
    i: &DomInfo,
    max_gpfn: u64,
    copy_ok: bool,
) -> Check {
    let pages = max_gpfn + 1;
    let mut bitmap = vec![0u64; pages.div_ceil(64) as usize];
    domctl::logdirty_enable(x, g).map_err(e("enable"))?;
    let result = (|| -> Check {
        // Round 0: whatever was dirtied since enabling.
        domctl::logdirty_clean(x, g, None, pages, false).map_err(e("clean"))?;
        sleep_ns(x, 2_000_000_000);
        let p1 = domctl::logdirty_peek(x, g, None, pages).map_err(e("peek"))?;
        sleep_ns(x, 1_000_000_000);
        let p2 = domctl::logdirty_peek(x, g, None, pages).map_err(e("peek"))?;
        let bm = if copy_ok { Some(&mut bitmap[..]) } else { None };
        let c = domctl::logdirty_clean(x, g, bm, pages, false).map_err(e("clean"))?;
        let running = c.dirty_count;
        ensure(
            p1.dirty_count <= p2.dirty_count && p2.dirty_count <= c.dirty_count,
            || {
                format!(
                    "PEEK cleared: peeks {} then {}, clean {}",
                    p1.dirty_count, p2.dirty_count, c.dirty_count
                )
            },
        )?;
        ensure(c.pages == pages, || {
            format!("Xen filled {} of {pages} bits", c.pages)
        })?;
        let bitmap_detail = if copy_ok {
            // Xen counts a frame when its bit goes from clear to set, so the
            // copied bitmap holds exactly that many bits.
            let bits: u64 = bitmap.iter().map(|w| u64::from(w.count_ones())).sum();
            ensure(bits == u64::from(c.dirty_count), || {
                format!("bitmap has {bits} bits set, Xen counted {}", c.dirty_count)
            })?;
            format!("bitmap copied, {bits} bits = the count")
        } else {
            // Copying the bitmap out would stop the whole host on this Xen;
            // the wrapper must refuse before any hypercall.
            let copy = domctl::logdirty_peek(x, g, Some(&mut bitmap), pages);
            ensure(
                copy == Err(DomctlError::Xen(xen_abi::errno::EOPNOTSUPP)),
                || format!("bitmap copy not refused: {copy:?}"),
            )?;
            "bitmap copy refused (unpatched Xen)".into()
        };
        // mmuncher rewrites 100 MiB (25600 pages) per pass.
        ensure(running >= 1000 && u64::from(running) <= i.tot_pages, || {
            format!(
                "{running} pages dirty in 3 s while mmuncher runs (domain holds {})",
                i.tot_pages
            )
        })?;
        // The same with the guest paused: next to nothing changes.
        domctl::pause(x, g).map_err(e("pause"))?;
        let paused = (|| -> Result<(u32, Result<(), DomctlError>), String> {
            let pi = domctl::getdomaininfo(x, g).map_err(e("getdomaininfo"))?;
            ensure(pi.is_paused(), || {
                format!("flags {:#x} after pause", pi.flags)
            })?;
            domctl::logdirty_clean(x, g, None, pages, false).map_err(e("clean"))?;
            sleep_ns(x, 3_000_000_000);
            let c = domctl::logdirty_clean(x, g, None, pages, true).map_err(e("clean"))?;
            Ok((c.dirty_count, domctl::unpause(x, g)))
        })();
        // Only dom0 may unpause: ask it whatever happened above.
        ask_dom0_unpause(x, xs, 1)?;
        let (paused_dirty, own_unpause) = paused?;
        let ui = domctl::getdomaininfo(x, g).map_err(e("getdomaininfo"))?;
        ensure(!ui.is_paused(), || {
            format!("flags {:#x} after dom0's unpause", ui.flags)
        })?;
        sleep_ns(x, 3_000_000_000);
        let again = domctl::logdirty_clean(x, g, None, pages, false).map_err(e("clean"))?;
        let after = again.dirty_count;
        println!(
            "depmig-guestctl: dirty pages running_3s={running} paused_3s={paused_dirty} after_unpause_3s={after} peeks={},{}",
            p1.dirty_count, p2.dirty_count
        );
        ensure(
            own_unpause == Err(DomctlError::Xen(xen_abi::errno::EACCES)),
            || format!("our own unpause: {own_unpause:?} (the policy should refuse it)"),
        )?;
        ensure(paused_dirty <= 64, || {
            format!("{paused_dirty} pages dirty in 3 s while paused")
        })?;
        // Running again, mmuncher dirties far more than the paused guest did
        // (how much depends on how much CPU the emulation leaves it).
        ensure(after >= 100 && after > 4 * paused_dirty, || {
            format!("{after} pages dirty in 3 s after the unpause, {paused_dirty} while paused")
        })?;
        Ok(format!(
            "running: {running} dirty in 3 s (PEEKs {} <= {} did not clear; {bitmap_detail}); paused: {paused_dirty} in 3 s; own unpause refused (EACCES), dom0 unpaused; then {after} in 3 s",
            p1.dirty_count, p2.dirty_count
        ))
    })();
    // Log-dirty off whatever happened.
    let off = domctl::logdirty_off(x, g);
    let detail = result?;
    off.map_err(e("off"))?;
    Ok(detail)
}

fn check_context(x: &Xen, g: DomId, i: &DomInfo, ctx: &mut Vec<u8>) -> Check {
    let need = domctl::hvm_context_size(x, g).map_err(e("size query"))?;
    let got = domctl::get_hvm_context(x, g, ctx).map_err(e("gethvmcontext"))?;
    let c = Context::parse(ctx).map_err(e("parse"))?;
    let cpus = c.cpu_count();
    ensure(cpus == i.nr_online_vcpus as usize, || {
        format!("{cpus} CPU records for {} vCPUs", i.nr_online_vcpus)
    })?;
    for v in 0..i.nr_online_vcpus {
        let v = v as u16;
        c.cpu(v).map_err(e("CPU record"))?;
    }
    let cr3 = c.cpu_reg(0, hvm_save::HW_CPU_CR3).map_err(e("cr3"))?;
    let rip = c.cpu_reg(0, hvm_save::HW_CPU_RIP).map_err(e("rip"))?;
    ensure(cr3 != 0 && rip != 0, || {
        format!("vCPU0 cr3 {cr3:#x} rip {rip:#x}")
    })?;
    Ok(format!(
        "{got} bytes (size query said {need}), {} records, {cpus} CPU records for {} vCPUs, header gtsc_khz {}; vCPU0 rip {rip:#x} cr3 {cr3:#x}",
        c.record_count(),
        i.nr_online_vcpus,
        c.header().gtsc_khz
    ))
}

fn check_tsc(
    x: &Xen,
    g: DomId,
    s: DomId,
    t: Result<xen_abi::domctl::TscInfo, DomctlError>,
    ctx: &[u8],
) -> Check {
    let t = t.map_err(e("gettscinfo"))?;
    let hdr = Context::parse(ctx).map_err(e("context"))?.header();
    ensure(t.gtsc_khz != 0 && t.gtsc_khz == hdr.gtsc_khz, || {
        format!(
            "gettscinfo khz {} vs context header {}",
            t.gtsc_khz, hdr.gtsc_khz
        )
    })?;
    // What a destination does: the shell takes the guest's TSC info.
    domctl::set_tsc_info(x, s, &t).map_err(e("settscinfo on the shell"))?;
    let back = domctl::get_tsc_info(x, s).map_err(e("gettscinfo on the shell"))?;
    ensure(
        back.tsc_mode == t.tsc_mode
            && back.gtsc_khz == t.gtsc_khz
            && back.incarnation == t.incarnation.wrapping_add(1),
        || format!("shell reads back {back:?} after setting {t:?}"),
    )?;
    Ok(format!(
        "guest {g}: mode {} {} kHz incarnation {}; shell {s} took it (incarnation now {})",
        t.tsc_mode, t.gtsc_khz, t.incarnation, back.incarnation
    ))
}

fn check_shell_params(g: DomId, s: DomId) -> Check {
    let gv = domctl::hvm_param_get(g, HVM_PARAM_X87_FIP_WIDTH).map_err(e("get on the guest"))?;
    domctl::hvm_param_set(s, HVM_PARAM_X87_FIP_WIDTH, 4).map_err(e("set 4"))?;
    let v4 = domctl::hvm_param_get(s, HVM_PARAM_X87_FIP_WIDTH).map_err(e("get"))?;
    let bad = domctl::hvm_param_set(s, HVM_PARAM_X87_FIP_WIDTH, 3);
    domctl::hvm_param_set(s, HVM_PARAM_X87_FIP_WIDTH, gv).map_err(e("set the guest's"))?;
    let back = domctl::hvm_param_get(s, HVM_PARAM_X87_FIP_WIDTH).map_err(e("get"))?;
    ensure(v4 == 4 && back == gv, || {
        format!("read back {v4} after 4, {back} after {gv}")
    })?;
    ensure(bad == Err(DomctlError::Xen(xen_abi::errno::EINVAL)), || {
        format!("setting 3: {bad:?}")
    })?;
    Ok(format!(
        "X87_FIP_WIDTH on the shell: 4 read back, 3 refused (EINVAL), guest's {gv} read back"
    ))
}

fn check_shell_context(x: &Xen, s: DomId, ctx: &[u8]) -> Check {
    ensure(!ctx.is_empty(), || "no guest context to load".into())?;
    domctl::set_hvm_context(x, s, ctx).map_err(e("sethvmcontext"))?;
    let mut back = Vec::new();
    domctl::get_hvm_context(x, s, &mut back).map_err(e("gethvmcontext"))?;
    let a = Context::parse(ctx).map_err(e("parse"))?;
    let b = Context::parse(&back).map_err(e("parse back"))?;
    let (ra, rb) = (
        a.cpu_reg(0, hvm_save::HW_CPU_RIP).map_err(e("rip"))?,
        b.cpu_reg(0, hvm_save::HW_CPU_RIP).map_err(e("rip back"))?,
    );
    let (ca, cb) = (
        a.cpu_reg(0, hvm_save::HW_CPU_CR3).map_err(e("cr3"))?,
        b.cpu_reg(0, hvm_save::HW_CPU_CR3).map_err(e("cr3 back"))?,
    );
    ensure(
        ra == rb && ca == cb && a.cpu_count() == b.cpu_count(),
        || format!("shell reads back rip {rb:#x} cr3 {cb:#x}, loaded rip {ra:#x} cr3 {ca:#x}"),
    )?;
    Ok(format!(
        "guest's {} bytes loaded into the shell; it reads back vCPU0 rip {rb:#x} cr3 {cb:#x}",
        ctx.len()
    ))
}

/// Populates a frame the shell lacks, writes it through a foreign mapping,
/// reads it back through a fresh one.
fn check_populate(x: &Xen, w: &mut ForeignWindow, s: DomId) -> Check {
    let before = domctl::getdomaininfo(x, s).map_err(e("getdomaininfo"))?;
    ensure(before.tot_pages < before.max_pages, || {
        format!(
            "shell is at its limit: {} of {} pages",
            before.tot_pages, before.max_pages
        )
    })?;
    // Twice the shell's RAM: in the hole between RAM and the special pages.
    let gfn = (before.tot_pages * 2).next_multiple_of(0x100);
    let probe: Vec<u64> = (gfn..gfn + 8).collect();
    {
        let b = w.map(s, &probe, Access::Read).map_err(e("probe map"))?;
        let mapped = b.mapped_count();
        ensure(mapped == 0, || {
            format!("{mapped} of 8 frames from {gfn:#x} are populated already")
        })?;
    }
    let mut list = [gfn];
    let done = domctl::populate_physmap(s, &mut list).map_err(e("populate"))?;
    ensure(done == 1, || format!("populate did {done} of 1"))?;
    let after = domctl::getdomaininfo(x, s).map_err(e("getdomaininfo"))?;
    ensure(after.tot_pages == before.tot_pages + 1, || {
        format!("tot_pages {} -> {}", before.tot_pages, after.tot_pages)
    })?;
    let mut pattern = [0u8; PAGE_SIZE];
    for (k, b) in pattern.iter_mut().enumerate() {
        *b = (k as u64 * 131 + gfn) as u8;
    }
    pattern[..16].copy_from_slice(b"depmig-guestctl\0");
    let mut fresh = [0u8; PAGE_SIZE];
    {
        let mut b = w
            .map(s, &[gfn], Access::Write)
            .map_err(e("map for writing"))?;
        b.entry(0).map_err(e("map for writing"))?;
        b.copy_page(0, &mut fresh).map_err(e("read fresh page"))?;
        b.write_page(0, &pattern).map_err(e("write"))?;
        let u = b.unmap();
        ensure(u.ok == 1, || format!("unmap {u:?}"))?;
    }
    ensure(fresh.iter().all(|&b| b == 0), || {
        "the fresh frame was not zeroed".into()
    })?;
    let mut back = [0u8; PAGE_SIZE];
    {
        let b = w
            .map(s, &[gfn], Access::Read)
            .map_err(e("map for reading"))?;
        b.copy_page(0, &mut back).map_err(e("read back"))?;
    }
    ensure(back == pattern, || {
        let k = back
            .iter()
            .zip(pattern.iter())
            .position(|(a, b)| a != b)
            .unwrap_or(0);
        format!("read back differs at byte {k}")
    })?;
    Ok(format!(
        "frame {gfn:#x}: unpopulated (8 probed frames refused), populated (tot_pages {} -> {}), zeroed, written, read back identical through a new mapping",
        before.tot_pages, after.tot_pages
    ))
}

fn check_suspend_resume(x: &Xen, xs: &mut Xenstore, g: DomId) -> Check {
    let t0 = x.now_ns();
    let si = domctl::suspend(x, xs, g, SUSPEND_TIMEOUT_NS).map_err(e("suspend"))?;
    let t_susp = x.now_ns();
    let mut ctx = Vec::new();
    domctl::get_hvm_context(x, g, &mut ctx).map_err(e("gethvmcontext while suspended"))?;
    let rax = Context::parse(&ctx)
        .and_then(|c| c.cpu_reg(0, hvm_save::HW_CPU_RAX))
        .map_err(e("rax"))?;
    domctl::resume_cancelled(x, g).map_err(e("resume_cancelled"))?;
    let t_res = x.now_ns();
    let ri = domctl::getdomaininfo(x, g).map_err(e("getdomaininfo"))?;
    ensure(ri.shutdown_reason().is_none(), || {
        format!("still shut down after resume: flags {:#x}", ri.flags)
    })?;
    // It runs again: its CPU time grows.
    sleep_ns(x, 2_000_000_000);
    let later = domctl::getdomaininfo(x, g).map_err(e("getdomaininfo"))?;
    ensure(
        later.shutdown_reason().is_none() && later.cpu_time > ri.cpu_time,
        || {
            format!(
                "after 2 s: flags {:#x}, cpu time {} -> {}",
                later.flags, ri.cpu_time, later.cpu_time
            )
        },
    )?;
    // A resume of a running domain is refused.
    let again = domctl::resume_cancelled(x, g);
    ensure(
        matches!(again, Err(DomctlError::NotSuspended { .. })),
        || format!("resume_cancelled of a running guest: {again:?}"),
    )?;
    println!(
        "depmig-guestctl: suspend resume suspend_ms={} resume_ms={}",
        (t_susp - t0) / 1_000_000,
        (t_res - t_susp) / 1_000_000
    );
    Ok(format!(
        "suspended after {} ms (flags {:#x}, vCPU0 rax was {rax}), resumed cancelled in {} ms; runs again (cpu time {} -> {} ns)",
        (t_susp - t0) / 1_000_000,
        si.flags,
        (t_res - t_susp) / 1_000_000,
        ri.cpu_time,
        later.cpu_time
    ))
}
