//! The `holdmap` mode: maps frames of a target domain and keeps them mapped
//! until the domain is destroyed from outside, as an appliance killed in the
//! middle of a migration would.
//!
//! dom0 names the target in our xenstore home, `depmig/hold/domid` (a node
//! only dom0 may write). We map [`FRAMES`] of its frames from [`FIRST_GFN`]
//! on, print `depmig-holdmap: holding N frames of domain D` and then sleep
//! for ever with the batch alive: nothing is unmapped. The rig scenario
//! `foreign-teardown` destroys us there and checks that the target can still
//! be destroyed completely, i.e. that the hypervisor drops the references of
//! foreign entries when the mapper dies. Any failure before that point ends
//! the run with `depmig-holdmap: FAIL <why>`.

use xen_abi::DomId;

use crate::platform::console::{self, println};
use crate::platform::fail::End;
use crate::platform::xen::foreign::{Access, ForeignError, ForeignWindow};
use crate::platform::xen::xenstore::{Xenstore, XsClientError};
use crate::platform::xen::Xen;

/// The target's domid, relative to our xenstore home.
const KEY: &str = "depmig/hold/domid";
/// Frames to map and hold.
const FRAMES: usize = 256;
/// First target frame: 1 MiB, RAM in every PVH guest the rig builds (the
/// frames from here on are populated in any guest of 2 MiB or more).
const FIRST_GFN: u64 = 0x100;
/// How long one sleep lasts; the loop around it never ends.
const NAP_NS: u64 = 3_600_000_000_000;

/// Why the mode stopped before holding anything.
#[derive(Debug)]
enum HoldError {
    /// No xenstore connection.
    Xenstore(XsClientError),
    /// `depmig/hold/domid` could not be read.
    Read(XsClientError),
    /// `depmig/hold/domid` is not the domid of another domain.
    BadDomid,
    /// The foreign window could not be set up.
    Window(ForeignError),
    /// The batch hypercall failed (nothing is mapped).
    Map(ForeignError),
    /// Xen refused every entry of the batch; the first entry's error.
    NoneMapped(ForeignError),
}

impl core::fmt::Display for HoldError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            HoldError::Xenstore(e) => write!(f, "xenstore: {e:?}"),
            HoldError::Read(e) => write!(f, "reading {KEY}: {e:?}"),
            HoldError::BadDomid => write!(f, "{KEY} is not another domain's domid"),
            HoldError::Window(e) => write!(f, "foreign window: {e}"),
            HoldError::Map(e) => write!(f, "mapping: {e}"),
            HoldError::NoneMapped(e) => write!(f, "no frame mapped: {e}"),
        }
    }
}

/// Parses the target's domid: the id of a guest domain (not dom0) that is
/// not ourselves.
fn parse_domid(v: &str, own: Option<DomId>) -> Option<DomId> {
    depmig_control::addr::parse_domid(v)
        .ok()
        .filter(|&d| Some(d) != own)
}

/// The `holdmap` mode; returns only when it fails.
pub fn run(x: &'static Xen) -> End {
    match hold(x) {
        Ok(never) => match never {},
        Err(e) => {
            println!("depmig-holdmap: FAIL {e}");
            End::Fail
        }
    }
}

fn hold(x: &'static Xen) -> Result<core::convert::Infallible, HoldError> {
    let mut xs = Xenstore::new(x).map_err(HoldError::Xenstore)?;
    let own = xs.own_domid();
    let value = xs.read_string(KEY).map_err(HoldError::Read)?;
    let target = parse_domid(&value, own).ok_or(HoldError::BadDomid)?;
    drop(xs);

    let mut window = ForeignWindow::new(x, FRAMES).map_err(HoldError::Window)?;
    let gfns: [u64; FRAMES] = core::array::from_fn(|i| FIRST_GFN + i as u64);
    let batch = window
        .map(target, &gfns, Access::Read)
        .map_err(HoldError::Map)?;
    let held = batch.mapped_count();
    if held == 0 {
        return Err(HoldError::NoneMapped(
            batch
                .entry(0)
                .err()
                .unwrap_or(ForeignError::NotProcessed(0)),
        ));
    }
    println!(
        "depmig-holdmap: holding {held} frames of domain {target} (gfn {FIRST_GFN:#x}..{:#x}, {} refused)",
        FIRST_GFN + FRAMES as u64,
        FRAMES - held
    );
    console::flush();
    // `batch` is dropped (its frames unmapped) only at the end of this scope,
    // which the loop never reaches: dom0 destroys the domain in it.
    loop {
        x.wait(&[], x.now_ns().saturating_add(NAP_NS));
    }
}
