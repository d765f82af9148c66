//! The `rights` mode: tries each right a migration needs over one domain
//! and prints whether Xen allowed it, so the rig can show the FLASK policy
//! with the real appliance rather than a stand-in.
//!
//! dom0 names the target in our xenstore home, `depmig/rights/domid` (a
//! node only dom0 may write). Against it, in this order:
//! - `hvmctx`: the size of its HVM context (`XEN_DOMCTL_gethvmcontext`);
//! - `map`: one of its frames mapped for reading (`XENMAPSPACE_gmfn_foreign`);
//! - `logdirty`: log-dirty mode switched on, and off again when allowed;
//! - `pause`: its pause count raised (the policy lets only dom0 unpause).
//!
//! Each prints `depmig-rights: <op> d<D> allowed` or `depmig-rights: <op>
//! d<D> refused <errno or reason>`; the run ends with `depmig-rights: DONE`
//! (each answer is a finding, not a failure) or `depmig-rights: FAIL <why>`
//! when the target could not even be named.

use xen_abi::errno::XenErrno;
use xen_abi::DomId;

use crate::platform::console::{self, println};
use crate::platform::fail::End;
use crate::platform::xen::domctl::{self, DomctlError};
use crate::platform::xen::foreign::{Access, ForeignError, ForeignWindow};
use crate::platform::xen::xenstore::Xenstore;
use crate::platform::xen::Xen;

/// The target's domid, relative to our xenstore home.
const KEY: &str = "depmig/rights/domid";
/// The frame `map` asks for: 1 MiB, RAM in every PVH guest the rig builds.
const GFN: u64 = 0x100;

/// The `rights` mode.
pub fn run(x: &'static Xen) -> End {
    let target = match target(x) {
        Ok(t) => t,
        Err(why) => {
            println!("depmig-rights: FAIL {why}");
            return End::Fail;
        }
    };
    say(
        "hvmctx",
        target,
        domctl::hvm_context_size(x, target)
            .map(|_| ())
            .map_err(domctl_why),
    );
    say("map", target, map_one(x, target));
    let logdirty = domctl::logdirty_enable(x, target);
    if logdirty.is_ok() {
        if let Err(e) = domctl::logdirty_off(x, target) {
            println!("depmig-rights: logdirty d{target}: switching it off again failed: {e:?}");
        }
    }
    say("logdirty", target, logdirty.map_err(domctl_why));
    say(
        "pause",
        target,
        domctl::pause(x, target).map_err(domctl_why),
    );
    println!("depmig-rights: DONE");
    console::flush();
    End::Pass
}

/// Reads and checks the target's domid: an ordinary domain, not ourselves
/// (dom0 is a valid target: the policy must refuse it too).
fn target(x: &'static Xen) -> Result<DomId, &'static str> {
    let mut xs = Xenstore::new(x).map_err(|_| "no xenstore connection")?;
    let own = xs.own_domid();
    let v = xs
        .read_string(KEY)
        .map_err(|_| "cannot read depmig/rights/domid")?;
    // dom0 is a target too: the rig asks that each right be refused on it.
    depmig_control::addr::parse_xen_domid(&v)
        .ok()
        .filter(|&d| Some(d) != own)
        .ok_or("depmig/rights/domid is not another domain's domid")
}

/// Why an operation was refused, as the rig reads it: Xen's errno name
/// when Xen answered, else the error.
enum Why {
    Errno(XenErrno),
    Other(alloc::string::String),
}

fn domctl_why(e: DomctlError) -> Why {
    match e {
        DomctlError::Xen(n) => Why::Errno(n),
        other => Why::Other(alloc::format!("{other:?}")),
    }
}

fn foreign_why(e: ForeignError) -> Why {
    match e {
        ForeignError::Map(n) | ForeignError::Entry { err: n, .. } => Why::Errno(n),
        other => Why::Other(alloc::format!("{other}")),
    }
}

/// Maps [`GFN`] for reading; unmapped again when the batch drops.
fn map_one(x: &'static Xen, target: DomId) -> Result<(), Why> {
    let mut window = ForeignWindow::new(x, 1).map_err(foreign_why)?;
    let batch = window
        .map(target, &[GFN], Access::Read)
        .map_err(foreign_why)?;
    batch.entry(0).map_err(foreign_why)
}

fn say(op: &str, target: DomId, r: Result<(), Why>) {
    match r {
        Ok(()) => println!("depmig-rights: {op} d{target} allowed"),
        Err(Why::Errno(n)) => println!("depmig-rights: {op} d{target} refused {n}"),
        Err(Why::Other(s)) => println!("depmig-rights: {op} d{target} refused ({s})"),
    }
}
