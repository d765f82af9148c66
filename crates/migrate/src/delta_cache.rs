//! The source's copies of pages it re-sends, so that their next send can
//! be a delta against what the destination holds ([`depmig_stream::delta`]).
//!
//! Which pages enter: a page sent by a live round after round 1, whole or
//! as a delta. Round 1 sends every populated page once; most are never
//! sent again, and a cache of a few MiB filled by round 1 would hold only
//! its last pages. A page sent again after round 1 was dirtied while the
//! guest ran, the kind that is dirtied again and re-sent in the copy
//! round, whose bytes are the downtime. The copy round inserts nothing
//! (nothing is sent after it) but still uses and refreshes what is there.
//!
//! What an entry holds is exactly what the destination holds for the
//! frame: the bytes the last page record for it carried. Every send of a
//! page with data refreshes its entry when it has one; an entry is dropped
//! when its frame goes as a hole (XTAB) or free (XALLOC), after which the
//! destination holds something else; ring frames, which the destination
//! keeps its own of, are skipped there for deltas as for whole pages.
//!
//! Placement is direct-mapped, as QEMU's XBZRLE cache: frame `pfn` may sit
//! only in slot `pfn % slots`, so lookup, insertion and replacement are
//! O(1) with no index beside the tags. Consecutive frames, which a
//! kernel's dirty pages mostly are, take consecutive slots. A frame that
//! maps to an occupied slot replaces its occupant (an eviction). All the
//! memory is taken once, when the cache is made, and refused then with an
//! error rather than an abort when the heap lacks it.

use alloc::vec::Vec;

use depmig_stream::PAGE_SIZE;

/// Largest cache accepted, MiB: the contract's largest (the appliance's
/// heap is smaller still; it refuses what does not fit its own).
pub const MAX_MIB: u32 = depmig_control::DeltaCache::MAX_MIB;

/// Why a cache could not be made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheError {
    /// More than [`MAX_MIB`] MiB asked for.
    TooLarge(u32),
    /// The heap could not give the memory.
    NoMemory(u32),
}

/// What the cache did, for the report.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Size in MiB.
    pub mib: u32,
    /// Pages it holds at most.
    pub slots: u64,
    /// Sends of a page whose copy was there (a delta was tried).
    pub hits: u64,
    /// Sends of a page with data whose copy was not.
    pub misses: u64,
    /// Pages put in.
    pub inserts: u64,
    /// Insertions that replaced another frame's copy.
    pub evictions: u64,
}

/// The cache; see the module documentation.
#[derive(Debug)]
pub struct DeltaCache {
    /// Per slot: the frame held plus one, 0 when empty.
    tags: Vec<u64>,
    data: Vec<u8>,
    stats: CacheStats,
}

impl DeltaCache {
    /// A cache of `mib` MiB (0: an empty cache that holds nothing), its
    /// memory taken now.
    pub fn new(mib: u32) -> Result<DeltaCache, CacheError> {
        if mib > MAX_MIB {
            return Err(CacheError::TooLarge(mib));
        }
        let slots = (mib as usize) << 20 >> 12;
        let mut tags = Vec::new();
        let mut data = Vec::new();
        tags.try_reserve_exact(slots)
            .and_then(|()| data.try_reserve_exact(slots * PAGE_SIZE))
            .map_err(|_| CacheError::NoMemory(mib))?;
        tags.resize(slots, 0);
        data.resize(slots * PAGE_SIZE, 0);
        Ok(DeltaCache {
            tags,
            data,
            stats: CacheStats {
                mib,
                slots: slots as u64,
                ..CacheStats::default()
            },
        })
    }

    /// What it did so far.
    pub fn stats(&self) -> CacheStats {
        self.stats
    }

    fn slot(&self, pfn: u64) -> Option<usize> {
        let n = self.tags.len() as u64;
        (n > 0).then(|| (pfn % n) as usize)
    }

    fn page(&self, slot: usize) -> Option<&[u8]> {
        self.data.get(slot * PAGE_SIZE..(slot + 1) * PAGE_SIZE)
    }

    /// The copy of `pfn`, counting a hit or a miss.
    pub fn lookup(&mut self, pfn: u64) -> Option<&[u8]> {
        let hit = self
            .slot(pfn)
            .filter(|&s| self.tags.get(s) == Some(&pfn.wrapping_add(1)));
        match hit {
            Some(s) => {
                self.stats.hits += 1;
                self.page(s)
            }
            None => {
                self.stats.misses += 1;
                None
            }
        }
    }

    /// The copy of `pfn`, if held, counting nothing.
    pub fn peek(&self, pfn: u64) -> Option<&[u8]> {
        let s = self.slot(pfn)?;
        (self.tags.get(s) == Some(&pfn.wrapping_add(1)))
            .then(|| self.page(s))
            .flatten()
    }

    /// Refreshes the copy of `pfn` with `page` when held; otherwise puts
    /// it in when `insert`, replacing the slot's occupant.
    pub fn store(&mut self, pfn: u64, page: &[u8], insert: bool) {
        let Some(s) = self.slot(pfn) else {
            return;
        };
        let tag = pfn.wrapping_add(1);
        let Some(t) = self.tags.get_mut(s) else {
            return;
        };
        if *t != tag {
            if !insert {
                return;
            }
            if *t != 0 {
                self.stats.evictions += 1;
            }
            self.stats.inserts += 1;
            *t = tag;
        }
        if let Some(dst) = self.data.get_mut(s * PAGE_SIZE..(s + 1) * PAGE_SIZE) {
            if dst.len() == page.len() {
                dst.copy_from_slice(page);
            } else if let Some(t) = self.tags.get_mut(s) {
                // Not a page: the caller's bug; hold nothing rather than
                // something the destination does not.
                *t = 0;
            }
        }
    }

    /// Drops the copy of `pfn`: the destination no longer holds it.
    pub fn forget(&mut self, pfn: u64) {
        if let Some(s) = self.slot(pfn) {
            if let Some(t) = self.tags.get_mut(s) {
                if *t == pfn.wrapping_add(1) {
                    *t = 0;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn direct_mapped_with_counts() {
        let mut c = DeltaCache::new(1).unwrap();
        assert_eq!(c.stats().slots, 256);
        let a = [1u8; PAGE_SIZE];
        let b = [2u8; PAGE_SIZE];
        assert_eq!(c.lookup(5), None);
        c.store(5, &a, false);
        assert_eq!(c.peek(5), None, "not inserted");
        c.store(5, &a, true);
        assert_eq!(c.lookup(5), Some(&a[..]));
        // 261 maps to 5's slot: replaces it.
        c.store(261, &b, true);
        assert_eq!(c.peek(5), None);
        assert_eq!(c.peek(261), Some(&b[..]));
        // Refreshed without insertion when held.
        c.store(261, &a, false);
        assert_eq!(c.peek(261), Some(&a[..]));
        c.forget(5);
        assert_eq!(c.peek(261), Some(&a[..]), "another frame's copy stays");
        c.forget(261);
        assert_eq!(c.peek(261), None);
        let s = c.stats();
        assert_eq!((s.hits, s.misses, s.inserts, s.evictions), (1, 1, 2, 1));
    }

    #[test]
    fn sizes_are_checked_and_zero_holds_nothing() {
        assert_eq!(
            DeltaCache::new(MAX_MIB + 1).unwrap_err(),
            CacheError::TooLarge(MAX_MIB + 1)
        );
        let mut c = DeltaCache::new(0).unwrap();
        c.store(1, &[0; PAGE_SIZE], true);
        assert_eq!(c.lookup(1), None);
    }
}
