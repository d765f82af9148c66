//! The consistency check: does the destination image equal the guest's
//! memory at some instant of the migration?
//!
//! For each frame the instants (write ids) at which the guest's frame held
//! what the destination holds form a union of intervals; the image is a
//! state the guest passed through exactly when the intersection of these
//! sets over all frames is not empty. The stricter property a resumable
//! guest needs — equality with the memory at suspension, where its CPU
//! state was taken — is reported too.

use crate::guest::Guest;

// PANICS: the slice indices in `intersect` are bounded by its loop
// conditions; the simulator reads only what it generated itself.

/// Verdict of the check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// Destination equals guest memory at suspension.
    pub equals_suspend_state: bool,
    /// Destination equals guest memory at some instant since the start.
    pub equals_some_past_state: bool,
    /// Frames whose destination content differs from the suspended guest.
    pub stale_frames: u64,
}

type Iv = (u64, u64); // [lo, hi)

fn intersect(a: &[Iv], b: &[Iv]) -> Vec<Iv> {
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    while i < a.len() && j < b.len() {
        let lo = a[i].0.max(b[j].0);
        let hi = a[i].1.min(b[j].1);
        if lo < hi {
            out.push((lo, hi));
        }
        if a[i].1 < b[j].1 {
            i += 1;
        } else {
            j += 1;
        }
    }
    out
}

/// Checks `dest` against the recorded history of `guest`.
pub fn check(guest: &Guest, dest: &[u64]) -> Verdict {
    let stale_frames = guest
        .content
        .iter()
        .zip(dest)
        .filter(|(a, b)| a != b)
        .count() as u64;
    let start = guest.recording_since.unwrap_or(0);
    let end = guest.writes + 1;
    let mut alive: Vec<Iv> = vec![(start, end)];
    for (i, &want) in dest.iter().enumerate() {
        let hist = guest.history.get(i).map(|h| h.as_slice()).unwrap_or(&[]);
        let base = guest.base.get(i).copied().unwrap_or(0);
        let mut mine: Vec<Iv> = Vec::new();
        let mut lo = start;
        let mut cur = base;
        for &(id, c) in hist {
            if cur == want && lo < id {
                mine.push((lo, id));
            }
            lo = id;
            cur = c;
        }
        if cur == want {
            mine.push((lo, end));
        }
        if mine.len() == 1 && mine[0] == (start, end) {
            continue;
        }
        alive = intersect(&alive, &mine);
        if alive.is_empty() {
            break;
        }
    }
    Verdict {
        equals_suspend_state: stale_frames == 0,
        equals_some_past_state: !alive.is_empty(),
        stale_frames,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guest::{Guest, Owner};

    #[test]
    fn detects_mixed_instants_and_accepts_real_ones() {
        let mut g = Guest::new(4, 1);
        g.alloc(4, Owner::Kernel);
        g.start_recording();
        let snap0 = g.content.clone();
        g.write(0, false);
        g.write(1, false);
        let snap1 = g.content.clone();
        g.write(0, false);
        let now = g.content.clone();
        assert!(check(&g, &snap0).equals_some_past_state);
        assert!(check(&g, &snap1).equals_some_past_state);
        let v = check(&g, &now);
        assert!(v.equals_some_past_state && v.equals_suspend_state);
        // Frame 0 from the latest write, frame 1 from before its write:
        // never the guest's memory at one instant.
        let mut mixed = now.clone();
        mixed[1] = snap0[1];
        let v = check(&g, &mixed);
        assert!(!v.equals_some_past_state && !v.equals_suspend_state);
        assert_eq!(v.stale_frames, 1);
        // A zeroed (freed) frame matches only after its zeroing write.
        g.free(2);
        let mut z = g.content.clone();
        assert!(check(&g, &z).equals_suspend_state);
        z[2] = 0;
        z[0] = snap1[0];
        assert!(!check(&g, &z).equals_some_past_state);
    }
}
