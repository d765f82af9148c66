//! A dirty-page bitmap: one bit per pfn, stored in 64-bit words in the same
//! bit order as Xen's log-dirty buffer on x86 (bit `n % 64` of word `n / 64`),
//! scanned a word at a time with `trailing_zeros`.

use alloc::vec;
use alloc::vec::Vec;

/// One bit per guest frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirtyBitmap {
    words: Vec<u64>,
    bits: u64,
}

impl DirtyBitmap {
    /// An all-clear bitmap for `bits` frames.
    pub fn new(bits: u64) -> Self {
        let n = bits.div_ceil(64) as usize;
        DirtyBitmap {
            words: vec![0; n],
            bits,
        }
    }

    /// Number of frames covered.
    pub fn len(&self) -> u64 {
        self.bits
    }

    /// Whether the bitmap covers no frame.
    pub fn is_empty(&self) -> bool {
        self.bits == 0
    }

    /// The backing words (for filling from a hypercall buffer).
    pub fn words(&self) -> &[u64] {
        &self.words
    }

    /// Mutable backing words; bits past `len()` are cleared by
    /// [`DirtyBitmap::trim`], which callers run after filling.
    pub fn words_mut(&mut self) -> &mut [u64] {
        &mut self.words
    }

    /// Clears the bits past `len()` in the last word.
    pub fn trim(&mut self) {
        let rem = self.bits % 64;
        if rem != 0 {
            if let Some(w) = self.words.last_mut() {
                *w &= (1u64 << rem) - 1;
            }
        }
    }

    /// Sets `pfn`; out-of-range pfns are ignored (and reported).
    pub fn set(&mut self, pfn: u64) -> bool {
        if pfn >= self.bits {
            return false;
        }
        if let Some(w) = self.words.get_mut((pfn / 64) as usize) {
            *w |= 1 << (pfn % 64);
        }
        true
    }

    /// Clears `pfn`.
    pub fn clear(&mut self, pfn: u64) {
        if let Some(w) = self.words.get_mut((pfn / 64) as usize) {
            *w &= !(1 << (pfn % 64));
        }
    }

    /// Whether `pfn` is set.
    pub fn test(&self, pfn: u64) -> bool {
        pfn < self.bits
            && self
                .words
                .get((pfn / 64) as usize)
                .is_some_and(|w| w & (1 << (pfn % 64)) != 0)
    }

    /// Clears every bit.
    pub fn clear_all(&mut self) {
        self.words.fill(0);
    }

    /// Sets every bit.
    pub fn set_all(&mut self) {
        self.words.fill(!0);
        self.trim();
    }

    /// Number of set bits.
    pub fn count(&self) -> u64 {
        self.words.iter().map(|w| u64::from(w.count_ones())).sum()
    }

    /// `self |= other` (the shorter length wins).
    pub fn or_with(&mut self, other: &DirtyBitmap) {
        for (a, b) in self.words.iter_mut().zip(&other.words) {
            *a |= b;
        }
    }

    /// `self &= other`.
    pub fn and_with(&mut self, other: &DirtyBitmap) {
        for (a, b) in self.words.iter_mut().zip(&other.words) {
            *a &= b;
        }
    }

    /// `self &= !other`.
    pub fn and_not_with(&mut self, other: &DirtyBitmap) {
        for (a, b) in self.words.iter_mut().zip(&other.words) {
            *a &= !b;
        }
    }

    /// `|self & other|` without building the intersection.
    pub fn count_and(&self, other: &DirtyBitmap) -> u64 {
        self.words
            .iter()
            .zip(&other.words)
            .map(|(a, b)| u64::from((a & b).count_ones()))
            .sum()
    }

    /// Copies `other` into `self` (lengths must match; extra words kept).
    pub fn copy_from(&mut self, other: &DirtyBitmap) {
        for (a, b) in self.words.iter_mut().zip(&other.words) {
            *a = *b;
        }
    }

    /// Calls `f` with each set bit in ascending order; the fast path for
    /// scans (a tight loop over words, `trailing_zeros` within a word).
    pub fn for_each_one<F: FnMut(u64)>(&self, mut f: F) {
        for (i, &w) in self.words.iter().enumerate() {
            let mut w = w;
            let base = (i as u64) << 6;
            while w != 0 {
                let pfn = base | u64::from(w.trailing_zeros());
                w &= w - 1;
                if pfn < self.bits {
                    f(pfn);
                }
            }
        }
    }

    /// Set bits in ascending order.
    pub fn iter_ones(&self) -> Ones<'_> {
        Ones {
            words: &self.words,
            idx: 0,
            cur: self.words.first().copied().unwrap_or(0),
            bits: self.bits,
        }
    }
}

/// Iterator over set bits, a word at a time.
#[derive(Clone, Debug)]
pub struct Ones<'a> {
    words: &'a [u64],
    idx: usize,
    cur: u64,
    bits: u64,
}

impl Iterator for Ones<'_> {
    type Item = u64;

    fn next(&mut self) -> Option<u64> {
        loop {
            if self.cur != 0 {
                let bit = u64::from(self.cur.trailing_zeros());
                self.cur &= self.cur - 1;
                let pfn = self.idx as u64 * 64 + bit;
                return if pfn < self.bits { Some(pfn) } else { None };
            }
            self.idx += 1;
            self.cur = *self.words.get(self.idx)?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn basics() {
        let mut b = DirtyBitmap::new(130);
        assert!(b.set(0) && b.set(63) && b.set(64) && b.set(129));
        assert!(!b.set(130));
        assert_eq!(b.iter_ones().collect::<Vec<_>>(), [0, 63, 64, 129]);
        assert_eq!(b.count(), 4);
        b.clear(63);
        assert!(!b.test(63) && b.test(64) && !b.test(500));
        b.set_all();
        assert_eq!(b.count(), 130);
        b.words_mut()[2] = !0;
        b.trim();
        assert_eq!(b.count(), 130);
    }

    proptest! {
        #[test]
        fn ops_match_a_set_model(a in prop::collection::btree_set(0u64..700, 0..200),
                                 b in prop::collection::btree_set(0u64..700, 0..200)) {
            let mut x = DirtyBitmap::new(700);
            let mut y = DirtyBitmap::new(700);
            for &p in &a { x.set(p); }
            for &p in &b { y.set(p); }
            prop_assert_eq!(x.iter_ones().collect::<Vec<_>>(), a.iter().copied().collect::<Vec<_>>());
            let mut seen = Vec::new();
            x.for_each_one(|p| seen.push(p));
            prop_assert_eq!(seen, a.iter().copied().collect::<Vec<_>>());
            prop_assert_eq!(x.count_and(&y), a.intersection(&b).count() as u64);
            let mut d = x.clone();
            d.and_not_with(&y);
            prop_assert_eq!(d.iter_ones().collect::<Vec<_>>(), a.difference(&b).copied().collect::<Vec<_>>());
            let mut u = x.clone();
            u.or_with(&y);
            prop_assert_eq!(u.count(), a.union(&b).count() as u64);
        }
    }
}
