//! A bounded cache of guest frames in front of a source that can only copy
//! whole frames, a few at a time (the appliance's foreign mappings, where
//! every map and unmap is a hypercall).
//!
//! The walker reads many small pieces (list nodes, page-table entries, page
//! descriptors); [`CachedMem`] answers them from page copies and asks its
//! [`FrameSource`] only on a miss: for one frame, or, when the reads go
//! through memory in order (the frame before is cached), for the next
//! `read_ahead` frames in one batch. Refusals are cached too, so a hole
//! costs one request per walk. The owner empties the cache with
//! [`CachedMem::flush`] whenever the guest may have changed its memory
//! (before each walk); within a walk every page reads as one snapshot.

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::cell::RefCell;
use core::fmt::Debug;

use crate::mem::{MemError, PhysMem, PAGE_SIZE};

const PAGE: usize = PAGE_SIZE as usize;

/// One guest frame's contents.
pub type Page = [u8; PAGE];

/// Copies whole guest frames.
pub trait FrameSource {
    /// Why a frame or a batch could not be copied.
    type Error: Copy + Debug;
    /// Copies frames `gfns` (distinct, at most the cache's read-ahead) into
    /// `pages[i]`, reporting each frame's outcome in `results[i]`. An `Err`
    /// return means the whole batch failed (nothing copied).
    fn fetch(
        &mut self,
        gfns: &[u64],
        pages: &mut [Box<Page>],
        results: &mut [Result<(), Self::Error>],
    ) -> Result<(), Self::Error>;
}

/// Counters of a [`CachedMem`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Reads asked for.
    pub reads: u64,
    /// Page lookups the cache answered.
    pub hits: u64,
    /// Page lookups that went to the source.
    pub misses: u64,
    /// Batches asked of the source.
    pub fetches: u64,
    /// Frames copied.
    pub frames: u64,
    /// Frames the source refused.
    pub refused: u64,
    /// Batches that failed as a whole.
    pub failed_fetches: u64,
    /// Times the cache was emptied.
    pub flushes: u64,
}

/// Why a read failed, as the cache saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheError<E> {
    /// The source refused the frame, or the batch failed.
    Source(E),
    /// No heap for a page copy.
    OutOfMemory,
    /// A read while another was under way (re-entrancy).
    Busy,
}

struct Slot<E> {
    gfn: u64,
    page: Option<Box<Page>>,
    refused: Option<E>,
    last_use: u64,
}

struct Inner<S: FrameSource> {
    source: S,
    slots: Vec<Slot<S::Error>>,
    /// gfn -> index in `slots`.
    index: BTreeMap<u64, usize>,
    /// Page buffers of flushed or evicted slots, reused.
    spare: Vec<Box<Page>>,
    tick: u64,
    stats: CacheStats,
    last_error: Option<CacheError<S::Error>>,
}

/// Guest-physical memory read through a [`FrameSource`], with at most
/// `capacity` page copies kept.
pub struct CachedMem<S: FrameSource> {
    nr: u64,
    capacity: usize,
    read_ahead: usize,
    inner: RefCell<Inner<S>>,
}

impl<S: FrameSource> CachedMem<S> {
    /// A cache of `capacity` pages (at least 1) over `source`, for a guest
    /// of `nr_pfns` frames, asking for at most `read_ahead` frames (at
    /// least 1) per batch.
    pub fn new(source: S, nr_pfns: u64, capacity: usize, read_ahead: usize) -> Self {
        let capacity = capacity.max(1);
        CachedMem {
            nr: nr_pfns,
            capacity,
            read_ahead: read_ahead.clamp(1, capacity),
            inner: RefCell::new(Inner {
                source,
                slots: Vec::new(),
                index: BTreeMap::new(),
                spare: Vec::new(),
                tick: 0,
                stats: CacheStats::default(),
                last_error: None,
            }),
        }
    }

    /// Forgets every cached page and refusal.
    pub fn flush(&self) {
        if let Ok(mut g) = self.inner.try_borrow_mut() {
            let inner = &mut *g;
            for s in inner.slots.drain(..) {
                if let Some(p) = s.page {
                    inner.spare.push(p);
                }
            }
            inner.index.clear();
            inner.stats.flushes += 1;
        }
    }

    /// The counters so far.
    pub fn stats(&self) -> CacheStats {
        self.inner.try_borrow().map(|g| g.stats).unwrap_or_default()
    }

    /// Pages held now.
    pub fn cached(&self) -> usize {
        self.inner.try_borrow().map(|g| g.index.len()).unwrap_or(0)
    }

    /// The last error a read met.
    pub fn last_error(&self) -> Option<CacheError<S::Error>> {
        self.inner.try_borrow().ok().and_then(|g| g.last_error)
    }

    /// Runs `f` on the source (for its own counters).
    pub fn with_source<T>(&self, f: impl FnOnce(&S) -> T) -> Option<T> {
        self.inner.try_borrow().ok().map(|g| f(&g.source))
    }

    /// Copies `out.len()` bytes from `offset` of frame `gfn` (inside one page).
    fn read_in_page(
        &self,
        gfn: u64,
        offset: usize,
        out: &mut [u8],
    ) -> Result<(), CacheError<S::Error>> {
        let mut g = self.inner.try_borrow_mut().map_err(|_| CacheError::Busy)?;
        let inner = &mut *g;
        inner.tick += 1;
        let tick = inner.tick;
        let i = match inner.index.get(&gfn) {
            Some(&i) => {
                inner.stats.hits += 1;
                i
            }
            None => {
                inner.stats.misses += 1;
                let sequential = gfn > 0 && inner.index.contains_key(&(gfn - 1));
                let n = if sequential {
                    (self.read_ahead as u64)
                        .min(self.nr.saturating_sub(gfn))
                        .max(1)
                } else {
                    1
                };
                if let Err(e) = inner.fill(gfn, n, tick, self.capacity) {
                    inner.last_error = Some(e);
                    return Err(e);
                }
                *inner.index.get(&gfn).ok_or(CacheError::OutOfMemory)?
            }
        };
        let slot = inner.slots.get_mut(i).ok_or(CacheError::OutOfMemory)?;
        slot.last_use = tick;
        match (&slot.page, slot.refused) {
            (Some(p), _) => {
                let src = offset
                    .checked_add(out.len())
                    .and_then(|end| p.get(offset..end))
                    .ok_or(CacheError::OutOfMemory)?;
                out.copy_from_slice(src);
                Ok(())
            }
            (None, Some(e)) => Err(CacheError::Source(e)),
            (None, None) => Err(CacheError::OutOfMemory),
        }
    }
}

impl<S: FrameSource> Inner<S> {
    fn buffer(&mut self) -> Option<Box<Page>> {
        match self.spare.pop() {
            Some(p) => Some(p),
            None => {
                let mut v: Vec<u8> = Vec::new();
                v.try_reserve_exact(PAGE).ok()?;
                v.resize(PAGE, 0);
                v.into_boxed_slice().try_into().ok()
            }
        }
    }

    /// A slot for `gfn`: a new one below `capacity`, else the least
    /// recently used one.
    fn slot_for(&mut self, gfn: u64, tick: u64, capacity: usize) -> Option<usize> {
        if self.slots.len() < capacity {
            self.slots.try_reserve(1).ok()?;
            self.slots.push(Slot {
                gfn,
                page: None,
                refused: None,
                last_use: tick,
            });
            return Some(self.slots.len() - 1);
        }
        let (i, _) = self
            .slots
            .iter()
            .enumerate()
            .min_by_key(|(_, s)| s.last_use)?;
        let s = self.slots.get_mut(i)?;
        self.index.remove(&s.gfn);
        if let Some(p) = s.page.take() {
            self.spare.push(p);
        }
        s.gfn = gfn;
        s.refused = None;
        s.last_use = tick;
        Some(i)
    }

    /// Fetches `first` and up to `n - 1` following frames not cached yet.
    fn fill(
        &mut self,
        first: u64,
        n: u64,
        tick: u64,
        capacity: usize,
    ) -> Result<(), CacheError<S::Error>> {
        let mut gfns: Vec<u64> = Vec::new();
        gfns.try_reserve_exact(n as usize)
            .map_err(|_| CacheError::OutOfMemory)?;
        for gfn in first..first.saturating_add(n) {
            if gfn == first || !self.index.contains_key(&gfn) {
                gfns.push(gfn);
            }
        }
        self.fetch_list(gfns, tick, capacity)
    }

    /// Fetches frames `gfns` (distinct) in one batch and caches them.
    fn fetch_list(
        &mut self,
        gfns: Vec<u64>,
        tick: u64,
        capacity: usize,
    ) -> Result<(), CacheError<S::Error>> {
        let mut pages: Vec<Box<Page>> = Vec::new();
        pages
            .try_reserve_exact(gfns.len())
            .map_err(|_| CacheError::OutOfMemory)?;
        for _ in 0..gfns.len() {
            match self.buffer() {
                Some(p) => pages.push(p),
                None => {
                    self.spare.append(&mut pages);
                    return Err(CacheError::OutOfMemory);
                }
            }
        }
        let mut results: Vec<Result<(), S::Error>> = Vec::new();
        results
            .try_reserve_exact(gfns.len())
            .map_err(|_| CacheError::OutOfMemory)?;
        results.resize(gfns.len(), Ok(()));
        self.stats.fetches += 1;
        if let Err(e) = self.source.fetch(&gfns, &mut pages, &mut results) {
            self.stats.failed_fetches += 1;
            self.spare.append(&mut pages);
            return Err(CacheError::Source(e));
        }
        for ((gfn, page), r) in gfns.into_iter().zip(pages).zip(results) {
            let Some(i) = self.slot_for(gfn, tick, capacity) else {
                self.spare.push(page);
                continue;
            };
            let Some(s) = self.slots.get_mut(i) else {
                continue;
            };
            match r {
                Ok(()) => {
                    s.page = Some(page);
                    self.stats.frames += 1;
                }
                Err(e) => {
                    s.refused = Some(e);
                    self.spare.push(page);
                    self.stats.refused += 1;
                    self.last_error = Some(CacheError::Source(e));
                }
            }
            self.index.insert(gfn, i);
        }
        Ok(())
    }
}

impl<S: FrameSource> PhysMem for CachedMem<S> {
    fn nr_pfns(&self) -> u64 {
        self.nr
    }

    /// Fetches the frames of `pfns` not cached yet, in batches of the
    /// read-ahead size, at most the cache's capacity of them.
    fn prefetch(&self, pfns: &[u64]) {
        let Ok(mut g) = self.inner.try_borrow_mut() else {
            return;
        };
        let inner = &mut *g;
        inner.tick += 1;
        let tick = inner.tick;
        let mut want: Vec<u64> = Vec::new();
        for &pfn in pfns {
            if want.len() >= self.capacity {
                break;
            }
            if pfn < self.nr && !inner.index.contains_key(&pfn) && !want.contains(&pfn) {
                if want.try_reserve(1).is_err() {
                    break;
                }
                want.push(pfn);
            }
        }
        // Bounded by the capacity over the batch size.
        for batch in want.chunks(self.read_ahead) {
            let mut gfns: Vec<u64> = Vec::new();
            if gfns.try_reserve_exact(batch.len()).is_err() {
                return;
            }
            gfns.extend_from_slice(batch);
            if let Err(e) = inner.fetch_list(gfns, tick, self.capacity) {
                inner.last_error = Some(e);
                return;
            }
        }
    }

    fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), MemError> {
        if let Ok(mut g) = self.inner.try_borrow_mut() {
            g.stats.reads += 1;
        }
        let end = gpa
            .checked_add(buf.len() as u64)
            .ok_or(MemError::OutsideRam)?;
        if end > self.nr.saturating_mul(PAGE_SIZE) {
            return Err(MemError::OutsideRam);
        }
        let mut done = 0usize;
        // One iteration per page touched.
        while done < buf.len() {
            let at = gpa + done as u64;
            let offset = (at % PAGE_SIZE) as usize;
            let n = (PAGE - offset).min(buf.len() - done);
            let dst = buf.get_mut(done..done + n).ok_or(MemError::Unreadable)?;
            self.read_in_page(at / PAGE_SIZE, offset, dst)
                .map_err(|_| MemError::Unreadable)?;
            done += n;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mem::ImageMem;
    use proptest::prelude::*;

    /// A source over an image, counting what it is asked.
    struct ImageSource {
        img: ImageMem,
        holes: Vec<u64>,
        fail_batches: bool,
        asked: Vec<Vec<u64>>,
    }

    impl ImageSource {
        fn new(pages: u64) -> Self {
            let mut img = ImageMem::new(pages);
            for (i, b) in img.bytes_mut().iter_mut().enumerate() {
                *b = (i as u64).wrapping_mul(2654435761).wrapping_shr(7) as u8;
            }
            ImageSource {
                img,
                holes: Vec::new(),
                fail_batches: false,
                asked: Vec::new(),
            }
        }
    }

    impl FrameSource for ImageSource {
        type Error = i32;
        fn fetch(
            &mut self,
            gfns: &[u64],
            pages: &mut [Box<Page>],
            results: &mut [Result<(), i32>],
        ) -> Result<(), i32> {
            self.asked.push(gfns.to_vec());
            if self.fail_batches {
                return Err(-5);
            }
            for ((g, p), r) in gfns.iter().zip(pages.iter_mut()).zip(results.iter_mut()) {
                *r = if self.holes.contains(g) {
                    Err(-22)
                } else {
                    self.img.read(g * PAGE_SIZE, &mut p[..]).map_err(|_| -14)
                };
            }
            Ok(())
        }
    }

    fn mem(pages: u64, capacity: usize, ra: usize) -> CachedMem<ImageSource> {
        CachedMem::new(ImageSource::new(pages), pages, capacity, ra)
    }

    fn asked(m: &CachedMem<ImageSource>) -> Vec<Vec<u64>> {
        m.with_source(|s| s.asked.clone()).unwrap()
    }

    #[test]
    fn repeated_reads_of_a_page_fetch_it_once() {
        let m = mem(64, 8, 4);
        let mut b = [0u8; 8];
        for off in [0u64, 8, 4000, 100] {
            m.read(5 * PAGE_SIZE + off, &mut b).unwrap();
        }
        assert_eq!(asked(&m), vec![vec![5]]);
        let s = m.stats();
        assert_eq!((s.hits, s.misses, s.fetches, s.frames), (3, 1, 1, 1));
        // After a flush the page is fetched again.
        m.flush();
        m.read(5 * PAGE_SIZE, &mut b).unwrap();
        assert_eq!(asked(&m).len(), 2);
        assert_eq!(m.stats().flushes, 1);
    }

    #[test]
    fn prefetch_asks_for_listed_frames_together_and_reads_then_hit() {
        let m = mem(64, 8, 4);
        let mut b = [0u8; 8];
        m.read(9 * PAGE_SIZE, &mut b).unwrap();
        // Cached (9), repeated (3) and outside the guest (99) frames are
        // not asked again; at most the capacity (8) are fetched.
        m.prefetch(&[3, 9, 40, 3, 7, 99, 1, 2, 20, 21, 22, 23, 24]);
        assert_eq!(
            asked(&m),
            vec![vec![9], vec![3, 40, 7, 1], vec![2, 20, 21, 22]]
        );
        let before = m.stats();
        for f in [3, 40, 7, 1, 2, 20, 21, 22] {
            m.read(f * PAGE_SIZE + 16, &mut b).unwrap();
            let mut want = [0u8; 8];
            m.with_source(|s| s.img.read(f * PAGE_SIZE + 16, &mut want).unwrap());
            assert_eq!(b, want);
        }
        let s = m.stats();
        assert_eq!((s.misses, s.fetches), (before.misses, before.fetches));
    }

    #[test]
    fn reads_across_pages_match_the_image() {
        let m = mem(16, 4, 4);
        let src = ImageSource::new(16);
        let mut got = vec![0u8; 3 * PAGE];
        let mut want = got.clone();
        m.read(2 * PAGE_SIZE + 100, &mut got).unwrap();
        src.img.read(2 * PAGE_SIZE + 100, &mut want).unwrap();
        assert_eq!(got, want);
        // Four pages were touched: the first alone, then (in order) a
        // read-ahead batch from the second.
        assert_eq!(asked(&m), vec![vec![2], vec![3, 4, 5, 6]]);
    }

    #[test]
    fn in_order_reads_are_read_ahead_scattered_ones_are_not() {
        let m = mem(256, 64, 16);
        let mut b = [0u8; 64];
        for pfn in 0..64u64 {
            m.read(pfn * PAGE_SIZE, &mut b).unwrap();
        }
        // Frame 0 alone, then batches of 16 from frame 1.
        let a = asked(&m);
        assert_eq!(a.len(), 1 + 4, "{a:?}");
        assert_eq!(a[0], vec![0]);
        assert_eq!(a[1], (1..17).collect::<Vec<u64>>());
        let m = mem(256, 64, 16);
        for pfn in [7u64, 90, 33, 200, 150] {
            m.read(pfn * PAGE_SIZE, &mut b).unwrap();
        }
        assert!(asked(&m).iter().all(|b| b.len() == 1));
        // Read-ahead stops at the end of the guest.
        let m = mem(20, 64, 16);
        m.read(17 * PAGE_SIZE, &mut b).unwrap();
        m.read(18 * PAGE_SIZE, &mut b).unwrap();
        assert_eq!(asked(&m), vec![vec![17], vec![18, 19]]);
    }

    #[test]
    fn the_cache_stays_bounded_and_evicts_the_least_recently_used() {
        let m = mem(512, 8, 1);
        let mut b = [0u8; 8];
        // Pages 0, 10, ..., 70 fill the cache; page 0 is used again.
        for k in 0..8u64 {
            m.read(k * 10 * PAGE_SIZE, &mut b).unwrap();
        }
        m.read(0, &mut b).unwrap();
        // A ninth page evicts the least recently used: page 10.
        m.read(300 * PAGE_SIZE, &mut b).unwrap();
        assert_eq!(m.cached(), 8);
        let before = asked(&m).len();
        m.read(0, &mut b).unwrap();
        assert_eq!(asked(&m).len(), before, "page 0 was evicted");
        m.read(10 * PAGE_SIZE, &mut b).unwrap();
        assert_eq!(asked(&m).len(), before + 1, "page 10 was kept");
        for k in 0..400u64 {
            m.read(k * PAGE_SIZE, &mut b).unwrap();
            assert!(m.cached() <= 8);
        }
    }

    #[test]
    fn refused_frames_are_errors_cached_until_the_flush() {
        let mut src = ImageSource::new(32);
        src.holes.push(9);
        let m = CachedMem::new(src, 32, 8, 4);
        let mut b = [0u8; 8];
        assert_eq!(m.read(9 * PAGE_SIZE, &mut b), Err(MemError::Unreadable));
        assert_eq!(m.read(9 * PAGE_SIZE + 8, &mut b), Err(MemError::Unreadable));
        assert_eq!(asked(&m), vec![vec![9]]);
        assert_eq!(m.last_error(), Some(CacheError::Source(-22)));
        // A read spanning the hole fails; its neighbours read.
        let mut two = vec![0u8; 16];
        assert_eq!(
            m.read(9 * PAGE_SIZE - 8, &mut two),
            Err(MemError::Unreadable)
        );
        m.read(8 * PAGE_SIZE, &mut b).unwrap();
        m.read(10 * PAGE_SIZE, &mut b).unwrap();
        assert_eq!(m.stats().refused, 1);
        m.flush();
        assert!(m.read(9 * PAGE_SIZE, &mut b).is_err());
        assert_eq!(m.stats().refused, 2);
    }

    #[test]
    fn a_failed_batch_caches_nothing_and_is_retried() {
        let mut src = ImageSource::new(8);
        src.fail_batches = true;
        let m = CachedMem::new(src, 8, 4, 4);
        let mut b = [0u8; 8];
        assert_eq!(m.read(PAGE_SIZE, &mut b), Err(MemError::Unreadable));
        assert_eq!(m.read(PAGE_SIZE, &mut b), Err(MemError::Unreadable));
        assert_eq!(m.cached(), 0);
        assert_eq!(m.stats().failed_fetches, 2);
        assert_eq!(m.last_error(), Some(CacheError::Source(-5)));
    }

    #[test]
    fn reads_outside_the_guest_never_reach_the_source() {
        let m = mem(8, 4, 4);
        let mut b = [0u8; 16];
        assert_eq!(m.read(8 * PAGE_SIZE, &mut b), Err(MemError::OutsideRam));
        assert_eq!(m.read(8 * PAGE_SIZE - 8, &mut b), Err(MemError::OutsideRam));
        assert_eq!(m.read(u64::MAX - 4, &mut b), Err(MemError::OutsideRam));
        assert!(asked(&m).is_empty());
        // An empty read inside the guest touches nothing.
        m.read(PAGE_SIZE, &mut []).unwrap();
        assert!(asked(&m).is_empty());
    }

    proptest! {
        #[test]
        fn any_read_returns_the_image_bytes(
            reads in proptest::collection::vec((0u64..24 * PAGE_SIZE, 0usize..9000), 1..40),
            capacity in 1usize..12,
            ra in 1usize..20,
        ) {
            let m = mem(24, capacity, ra);
            let src = ImageSource::new(24);
            for (gpa, len) in reads {
                let mut got = vec![0u8; len];
                let mut want = vec![0u8; len];
                let r = m.read(gpa, &mut got);
                let w = src.img.read(gpa, &mut want);
                prop_assert_eq!(r, w);
                if r.is_ok() {
                    prop_assert_eq!(&got, &want);
                }
                prop_assert!(m.cached() <= capacity);
            }
        }
    }
}
