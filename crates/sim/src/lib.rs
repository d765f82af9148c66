//! A discrete-time simulator of pre-copy live migration, to reproduce the
//! shape of Nocentino & Ruth's (VTDC'09) Figures 3 and 4 with depmig's
//! engine and to check that every sound mode leaves the destination in a
//! state the guest really was in.
//!
//! The guest model: frames owned by processes, by the kernel, or free;
//! processes with dirty rates, external endpoints (taint) and interactions
//! that merge their dependency groups symmetrically; a kernel that dirties
//! a small hot set; allocation churn whose freed frames are zeroed (the
//! guest runs with `init_on_free=1`, so a free frame holds zero). Time
//! advances as the engine sends pages over a link of fixed bandwidth.
#![forbid(unsafe_code)]

pub mod check;
pub mod guest;
pub mod report;
pub mod rng;
pub mod run;
pub mod workloads;
