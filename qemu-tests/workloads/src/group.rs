//! Several munchers at once, one thread each over its own part of the
//! buffer (`mmuncher --threads N`): in a guest with several vCPUs every
//! vCPU dirties and verifies memory, each thread pinned to its own CPU by
//! the caller's function when there are enough. A vCPU that did not come back after a migration stalls
//! the thread pinned to it, so the slowest thread's passes, which is what
//! the group reports, stop advancing.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crate::pattern::{Corruption, Muncher};

/// Most corrupt pages kept for printing, over all threads.
pub const MAX_KEPT: usize = 16;

/// Sizes, in pages, of `threads` parts of `pages` pages: as even as
/// possible, the larger ones first; `None` when a part would be empty.
pub fn split(pages: usize, threads: usize) -> Option<Vec<usize>> {
    if threads == 0 || pages < threads {
        return None;
    }
    let (each, extra) = (pages / threads, pages % threads);
    Some(
        (0..threads)
            .map(|i| each + usize::from(i < extra))
            .collect(),
    )
}

struct Shared {
    passes: Vec<AtomicU64>,
    done: Vec<AtomicBool>,
    bad: AtomicU64,
    kept: Mutex<Vec<(usize, Corruption)>>,
}

/// The running threads.
pub struct Group {
    shared: Arc<Shared>,
    pinned: Vec<Option<usize>>,
    handles: Vec<JoinHandle<()>>,
}

impl Group {
    /// Starts one thread per muncher; thread `i` first calls `pin(i)`,
    /// which pins it to a CPU and says whether it did. Each runs until it
    /// has completed `max_passes` passes (0: for ever).
    pub fn start(munchers: Vec<Muncher>, max_passes: u64, pin: fn(usize) -> bool) -> Group {
        let n = munchers.len();
        let shared = Arc::new(Shared {
            passes: munchers
                .iter()
                .map(|m| AtomicU64::new(m.passes()))
                .collect(),
            done: (0..n).map(|_| AtomicBool::new(false)).collect(),
            bad: AtomicU64::new(0),
            kept: Mutex::new(Vec::new()),
        });
        let (tx, rx) = std::sync::mpsc::channel();
        let handles = munchers
            .into_iter()
            .enumerate()
            .map(|(i, mut m)| {
                let shared = Arc::clone(&shared);
                let tx = tx.clone();
                std::thread::spawn(move || {
                    let _ = tx.send((i, pin(i)));
                    drop(tx);
                    let mut bad = Vec::new();
                    while max_passes == 0 || m.passes() < max_passes {
                        bad.clear();
                        let found = m.pass(&mut bad, MAX_KEPT);
                        if found != 0 {
                            shared.bad.fetch_add(found, Ordering::Relaxed);
                            if let Ok(mut kept) = shared.kept.lock() {
                                let room = MAX_KEPT.saturating_sub(kept.len());
                                kept.extend(bad.iter().take(room).map(|c| (i, *c)));
                            }
                        }
                        shared.passes[i].store(m.passes(), Ordering::Release);
                    }
                    shared.done[i].store(true, Ordering::Release);
                })
            })
            .collect();
        drop(tx);
        let mut pinned = vec![None; n];
        for (i, ok) in rx.iter().take(n) {
            if ok {
                pinned[i] = Some(i);
            }
        }
        Group {
            shared,
            pinned,
            handles,
        }
    }

    /// Completed passes of each thread.
    pub fn passes(&self) -> Vec<u64> {
        self.shared
            .passes
            .iter()
            .map(|p| p.load(Ordering::Acquire))
            .collect()
    }

    /// Passes every thread has completed.
    pub fn min_passes(&self) -> u64 {
        self.passes().into_iter().min().unwrap_or(0)
    }

    /// Bad pages found so far, all threads.
    pub fn bad_total(&self) -> u64 {
        self.shared.bad.load(Ordering::Relaxed)
    }

    /// The corrupt pages kept so far (thread, page), at most [`MAX_KEPT`].
    pub fn corruptions(&self) -> Vec<(usize, Corruption)> {
        self.shared
            .kept
            .lock()
            .map(|k| k.clone())
            .unwrap_or_default()
    }

    /// The CPU each thread is pinned to.
    pub fn pinned(&self) -> &[Option<usize>] {
        &self.pinned
    }

    /// Whether every thread has run its passes.
    pub fn finished(&self) -> bool {
        self.shared.done.iter().all(|d| d.load(Ordering::Acquire))
    }

    /// Waits for every thread (only returns when `max_passes` was set).
    pub fn join(self) {
        for h in self.handles {
            let _ = h.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pattern::PAGE_SIZE;

    #[test]
    fn parts_cover_the_buffer() {
        assert_eq!(split(10, 4), Some(vec![3, 3, 2, 2]));
        assert_eq!(split(8, 4), Some(vec![2, 2, 2, 2]));
        assert_eq!(split(3, 4), None);
        assert_eq!(split(5, 0), None);
        for (pages, threads) in [(25600, 4), (7, 7), (1000, 3)] {
            let parts = split(pages, threads).unwrap();
            assert_eq!(parts.iter().sum::<usize>(), pages);
            assert!(parts.iter().max().unwrap() - parts.iter().min().unwrap() <= 1);
        }
    }

    #[test]
    fn every_thread_runs_its_passes_clean() {
        let munchers = split(64, 4)
            .unwrap()
            .into_iter()
            .map(Muncher::new)
            .collect();
        let g = Group::start(munchers, 3, |_| false);
        while !g.finished() {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        assert_eq!(g.passes(), vec![3, 3, 3, 3]);
        assert_eq!(g.min_passes(), 3);
        assert_eq!(g.bad_total(), 0);
        assert!(g.corruptions().is_empty());
        assert_eq!(g.pinned(), &[None, None, None, None]);
        g.join();
    }

    #[test]
    fn a_corrupt_page_is_found_and_named_by_its_thread() {
        let mut munchers: Vec<Muncher> = split(12, 3)
            .unwrap()
            .into_iter()
            .map(Muncher::new)
            .collect();
        for m in &mut munchers {
            m.pass(&mut Vec::new(), 0);
        }
        // Thread 2's page 1 changes behind its back.
        munchers[2].raw_mut()[PAGE_SIZE + 9] ^= 0x40;
        let g = Group::start(munchers, 2, |i| i == 1);
        while !g.finished() {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        assert_eq!(g.bad_total(), 1);
        let kept = g.corruptions();
        assert_eq!(kept.len(), 1);
        assert_eq!((kept[0].0, kept[0].1.page, kept[0].1.pass), (2, 1, 2));
        assert_eq!(g.pinned(), &[None, Some(1), None]);
        g.join();
    }
}
