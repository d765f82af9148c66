//! Stop policies: after each live round, decide whether to go on or to
//! suspend the guest and copy what is left.

/// What a policy sees after a live round.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PolicyInput {
    /// Live rounds completed so far (1 after the first).
    pub round: u32,
    /// Pages sent in the round just completed.
    pub sent_last: u64,
    /// Pages found dirty since that round started (the next round's work).
    pub dirty: u64,
    /// Pages sent in all rounds so far.
    pub sent_total: u64,
    /// Populated pages of the guest.
    pub guest_pages: u64,
    /// Bytes put on the wire in the round just completed.
    pub round_bytes: u64,
    /// Duration of that round.
    pub round_ns: u64,
}

/// A policy's verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Run another live round.
    Continue,
    /// Suspend the guest and send the rest.
    StopAndCopy,
}

/// A stop policy.
pub trait Policy {
    /// Decides after a live round.
    fn decide(&mut self, input: &PolicyInput) -> Decision;
    /// Short name for reports.
    fn name(&self) -> &'static str;
}

/// Xen 3.3's `xc_domain_save` rule (the paper's baseline): stop when the
/// last round sent fewer than `min_pages`, after `max_rounds - 1` live
/// rounds (so the copy round is round `max_rounds`), or when more than
/// `max_factor` times the guest's memory has been sent. (Xen 3.3 also stops
/// when a round sends more than the one before at the maximum rate limit;
/// depmig does not rate-limit, so that clause never applies.)
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Xen33 {
    /// Total rounds including the final copy (30).
    pub max_rounds: u32,
    /// Memory multiple that ends pre-copy (3).
    pub max_factor: u64,
    /// Round size below which pre-copy ends (50).
    pub min_pages: u64,
}

impl Default for Xen33 {
    fn default() -> Self {
        Xen33 {
            max_rounds: 30,
            max_factor: 3,
            min_pages: 50,
        }
    }
}

impl Policy for Xen33 {
    fn decide(&mut self, i: &PolicyInput) -> Decision {
        if i.round + 1 >= self.max_rounds
            || i.sent_last < self.min_pages
            || i.sent_total > i.guest_pages.saturating_mul(self.max_factor)
        {
            Decision::StopAndCopy
        } else {
            Decision::Continue
        }
    }
    fn name(&self) -> &'static str {
        "xen-3.3"
    }
}

/// Xen 4.x libxenguest's simple pre-copy policy as its save loop applies
/// it: at most `max_live_rounds` live rounds; once a collected dirty count
/// falls below `min_dirty`, those pages still go in one more live round and
/// the copy round follows (libxenguest sends the batch the policy was
/// shown before it acts on "stop").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Xen4x {
    /// Live rounds before the copy round (5).
    pub max_live_rounds: u32,
    /// Dirty count below which pre-copy ends (50).
    pub min_dirty: u64,
    stop_after_next: bool,
}

impl Default for Xen4x {
    fn default() -> Self {
        Xen4x {
            max_live_rounds: 5,
            min_dirty: 50,
            stop_after_next: false,
        }
    }
}

impl Policy for Xen4x {
    fn decide(&mut self, i: &PolicyInput) -> Decision {
        if self.stop_after_next || i.round >= self.max_live_rounds {
            return Decision::StopAndCopy;
        }
        if i.dirty < self.min_dirty {
            self.stop_after_next = true;
        }
        Decision::Continue
    }
    fn name(&self) -> &'static str {
        "xen-4.x"
    }
}

/// Bandwidth-driven policy: estimate the copy round's duration from the
/// bandwidth measured in the last round and stop once it fits the downtime
/// target; also stop when the dirty set stops shrinking (the guest dirties
/// faster than the link drains), or at the round and traffic caps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Adaptive {
    /// Acceptable downtime.
    pub downtime_target_ns: u64,
    /// Wire cost of one page (data plus pfn entry).
    pub page_wire_bytes: u64,
    /// Total rounds cap including the copy round.
    pub max_rounds: u32,
    /// Memory multiple cap.
    pub max_factor: u64,
    /// Rounds in a row without a 5 % shrink of the dirty set that end
    /// pre-copy.
    pub patience: u32,
    stalled: u32,
    last_dirty: u64,
}

impl Adaptive {
    /// A policy aiming at `downtime_target_ns`.
    pub fn new(downtime_target_ns: u64) -> Self {
        Adaptive {
            downtime_target_ns,
            page_wire_bytes: 4096 + 8,
            max_rounds: 30,
            max_factor: 3,
            patience: 3,
            stalled: 0,
            last_dirty: u64::MAX,
        }
    }

    /// Predicted duration of copying `pages` at the measured bandwidth;
    /// `None` when nothing was measured.
    pub fn predict_ns(&self, pages: u64, round_bytes: u64, round_ns: u64) -> Option<u64> {
        if round_bytes == 0 || round_ns == 0 {
            return None;
        }
        let bytes = u128::from(pages) * u128::from(self.page_wire_bytes);
        let ns = bytes * u128::from(round_ns) / u128::from(round_bytes);
        Some(u64::try_from(ns).unwrap_or(u64::MAX))
    }
}

impl Policy for Adaptive {
    fn decide(&mut self, i: &PolicyInput) -> Decision {
        if i.dirty.saturating_mul(20) >= self.last_dirty.saturating_mul(19) {
            self.stalled += 1;
        } else {
            self.stalled = 0;
        }
        self.last_dirty = i.dirty;
        let fits = self
            .predict_ns(i.dirty, i.round_bytes, i.round_ns)
            .is_some_and(|t| t <= self.downtime_target_ns);
        if fits
            || i.dirty == 0
            || self.stalled >= self.patience
            || i.round + 1 >= self.max_rounds
            || i.sent_total > i.guest_pages.saturating_mul(self.max_factor)
        {
            Decision::StopAndCopy
        } else {
            Decision::Continue
        }
    }
    fn name(&self) -> &'static str {
        "adaptive"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(round: u32, sent_last: u64, dirty: u64) -> PolicyInput {
        PolicyInput {
            round,
            sent_last,
            dirty,
            sent_total: 1000,
            guest_pages: 1000,
            round_bytes: 0,
            round_ns: 0,
        }
    }

    #[test]
    fn xen33_rules() {
        let mut p = Xen33::default();
        assert_eq!(p.decide(&input(1, 5000, 5000)), Decision::Continue);
        assert_eq!(p.decide(&input(28, 5000, 5000)), Decision::Continue);
        assert_eq!(p.decide(&input(29, 5000, 5000)), Decision::StopAndCopy);
        assert_eq!(p.decide(&input(3, 49, 5000)), Decision::StopAndCopy);
        let mut i = input(3, 5000, 5000);
        i.sent_total = 3001;
        assert_eq!(p.decide(&i), Decision::StopAndCopy);
    }

    #[test]
    fn xen4x_rules() {
        let mut p = Xen4x::default();
        assert_eq!(p.decide(&input(4, 5000, 5000)), Decision::Continue);
        assert_eq!(p.decide(&input(5, 5000, 5000)), Decision::StopAndCopy);
        // Below 50: one more live round sends them, then the copy round.
        let mut p = Xen4x::default();
        assert_eq!(p.decide(&input(2, 5000, 49)), Decision::Continue);
        assert_eq!(p.decide(&input(3, 49, 60)), Decision::StopAndCopy);
    }

    #[test]
    fn adaptive_stops_when_copy_fits_or_stalls() {
        // 1 GB/s measured: 4104 bytes per page, 1000 pages ~ 4.1 ms.
        let mut p = Adaptive::new(5_000_000);
        let mut i = input(1, 100_000, 1000);
        i.round_bytes = 1_000_000_000;
        i.round_ns = 1_000_000_000;
        assert_eq!(p.decide(&i), Decision::StopAndCopy);
        let mut p = Adaptive::new(1_000_000);
        assert_eq!(p.decide(&i), Decision::Continue);
        i.round = 2;
        assert_eq!(p.decide(&i), Decision::Continue);
        i.round = 3;
        assert_eq!(p.decide(&i), Decision::Continue);
        i.round = 4;
        assert_eq!(p.decide(&i), Decision::StopAndCopy, "three stalled rounds");
    }
}
