//! The page pattern `mmuncher` writes and checks: a pass stamp and a
//! page-derived fill, so that a page lost, stale or misplaced after a
//! migration is told apart from one that is current.
//!
//! Layout of one page (little-endian 64-bit words): word 0 is the pass
//! number, word 1 the page's index in the buffer, every later word `j` is
//! `seed(page, pass) + j * GOLDEN`. Pass 0 means "never written": the page
//! must still be all zero, as the allocator handed it out.

/// Size of the pages the pattern is laid over.
pub const PAGE_SIZE: usize = 4096;
/// 64-bit words per page.
pub const WORDS: usize = PAGE_SIZE / 8;
const GOLDEN: u64 = 0x9e37_79b9_7f4a_7c15;

/// How a page differs from what the previous pass left in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mismatch {
    /// The pass stamp is not the one the previous pass wrote (stale or lost page).
    Stamp {
        /// Stamp the page should hold.
        expected: u64,
        /// Stamp it holds.
        found: u64,
    },
    /// The page-index word names another page (page landed in the wrong place).
    Index {
        /// Index found in the page.
        found: u64,
    },
    /// A fill word differs (torn or partly stale page).
    Fill {
        /// Index of the first differing word.
        word: usize,
        /// Value the word should hold.
        expected: u64,
        /// Value it holds.
        found: u64,
    },
    /// The slice handed over is not exactly one page long.
    Size,
}

fn seed(page: u64, pass: u64) -> u64 {
    // A cheap mix so neighbouring pages and passes do not share fills.
    let mut x = page.wrapping_mul(0xbf58_476d_1ce4_e5b9) ^ pass.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^= x >> 31;
    x.wrapping_add(0x2545_f491_4f6c_dd1d)
}

/// Expected value of word `j` of page `page` after pass `pass` (`pass` ≥ 1).
pub fn word_value(page: u64, pass: u64, j: usize) -> u64 {
    match j {
        0 => pass,
        1 => page,
        _ => seed(page, pass).wrapping_add((j as u64).wrapping_mul(GOLDEN)),
    }
}

fn read_word(page: &[u8], j: usize) -> Option<u64> {
    let b = page.get(j * 8..j * 8 + 8)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(b);
    Some(u64::from_le_bytes(a))
}

/// Checks that `data` holds what pass `pass` wrote to page `page`
/// (`pass == 0`: untouched, all zero).
pub fn check_page(data: &[u8], page: u64, pass: u64) -> Result<(), Mismatch> {
    if data.len() != PAGE_SIZE {
        return Err(Mismatch::Size);
    }
    for j in 0..WORDS {
        let found = read_word(data, j).ok_or(Mismatch::Size)?;
        let expected = if pass == 0 {
            0
        } else {
            word_value(page, pass, j)
        };
        if found != expected {
            return Err(match j {
                0 => Mismatch::Stamp { expected, found },
                1 if pass != 0 => Mismatch::Index { found },
                _ => Mismatch::Fill {
                    word: j,
                    expected,
                    found,
                },
            });
        }
    }
    Ok(())
}

/// Writes pass `pass`'s pattern for page `page` into `data`.
pub fn fill_page(data: &mut [u8], page: u64, pass: u64) -> Result<(), Mismatch> {
    if data.len() != PAGE_SIZE {
        return Err(Mismatch::Size);
    }
    for (j, chunk) in data.chunks_exact_mut(8).enumerate() {
        chunk.copy_from_slice(&word_value(page, pass, j).to_le_bytes());
    }
    Ok(())
}

/// One page that failed its check during a pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Corruption {
    /// Page index in the buffer.
    pub page: u64,
    /// Pass that was about to overwrite it.
    pub pass: u64,
    /// What was wrong.
    pub what: Mismatch,
}

/// A buffer rewritten pass after pass; every page is checked against the
/// previous pass right before it is overwritten.
pub struct Muncher {
    buf: Vec<u8>,
    pass: u64,
}

impl Muncher {
    /// A buffer of `pages` zeroed pages, no pass run yet.
    pub fn new(pages: usize) -> Self {
        Self {
            buf: vec![0u8; pages * PAGE_SIZE],
            pass: 0,
        }
    }

    /// Number of completed passes.
    pub fn passes(&self) -> u64 {
        self.pass
    }

    /// Number of pages.
    pub fn pages(&self) -> usize {
        self.buf.len() / PAGE_SIZE
    }

    /// Runs one pass: checks each page against the previous pass, then
    /// rewrites it. Bad pages are pushed to `bad` (at most `max_bad`) and
    /// rewritten anyway so one fault is reported once. Returns the number of
    /// bad pages found.
    pub fn pass(&mut self, bad: &mut Vec<Corruption>, max_bad: usize) -> u64 {
        let prev = self.pass;
        let next = prev + 1;
        let mut n_bad = 0u64;
        for (i, page) in self.buf.chunks_exact_mut(PAGE_SIZE).enumerate() {
            let idx = i as u64;
            if let Err(what) = check_page(page, idx, prev) {
                n_bad += 1;
                if bad.len() < max_bad {
                    bad.push(Corruption {
                        page: idx,
                        pass: next,
                        what,
                    });
                }
            }
            // Cannot fail: chunks_exact_mut hands out exactly one page.
            let _ = fill_page(page, idx, next);
        }
        self.pass = next;
        n_bad
    }

    /// Mutable access to the raw buffer (tests inject faults through it).
    pub fn raw_mut(&mut self) -> &mut [u8] {
        &mut self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passes_verify_clean() {
        let mut m = Muncher::new(8);
        let mut bad = Vec::new();
        for _ in 0..5 {
            assert_eq!(m.pass(&mut bad, 10), 0);
        }
        assert!(bad.is_empty());
        assert_eq!(m.passes(), 5);
    }

    #[test]
    fn stale_page_is_detected() {
        let mut m = Muncher::new(4);
        let mut bad = Vec::new();
        m.pass(&mut bad, 10);
        // Keep page 2 as pass 1 left it, as a migration that lost its last copy would.
        let mut old = vec![0u8; PAGE_SIZE];
        old.copy_from_slice(&m.raw_mut()[2 * PAGE_SIZE..3 * PAGE_SIZE]);
        m.pass(&mut bad, 10);
        m.raw_mut()[2 * PAGE_SIZE..3 * PAGE_SIZE].copy_from_slice(&old);
        assert_eq!(m.pass(&mut bad, 10), 1);
        assert_eq!(
            bad,
            vec![Corruption {
                page: 2,
                pass: 3,
                what: Mismatch::Stamp {
                    expected: 2,
                    found: 1
                }
            }]
        );
        // Reported once: the next pass is clean again.
        bad.clear();
        assert_eq!(m.pass(&mut bad, 10), 0);
    }

    #[test]
    fn swapped_and_zeroed_pages_are_detected() {
        let mut m = Muncher::new(4);
        let mut bad = Vec::new();
        m.pass(&mut bad, 10);
        let raw = m.raw_mut();
        let (a, b) = raw.split_at_mut(PAGE_SIZE);
        a.swap_with_slice(&mut b[..PAGE_SIZE]);
        raw[3 * PAGE_SIZE..].fill(0);
        assert_eq!(m.pass(&mut bad, 10), 3);
        assert_eq!(bad[0].what, Mismatch::Index { found: 1 });
        assert_eq!(
            bad[2].what,
            Mismatch::Stamp {
                expected: 1,
                found: 0
            }
        );
    }

    #[test]
    fn single_flipped_word_is_detected() {
        let mut m = Muncher::new(2);
        let mut bad = Vec::new();
        m.pass(&mut bad, 10);
        m.raw_mut()[PAGE_SIZE + 4000] ^= 1;
        assert_eq!(m.pass(&mut bad, 10), 1);
        assert!(matches!(bad[0].what, Mismatch::Fill { word: 500, .. }));
    }

    #[test]
    fn fresh_page_must_be_zero() {
        let page = vec![0u8; PAGE_SIZE];
        assert_eq!(check_page(&page, 7, 0), Ok(()));
        assert_eq!(check_page(&page[..100], 7, 0), Err(Mismatch::Size));
        let mut p = page.clone();
        fill_page(&mut p, 7, 3).unwrap();
        assert_eq!(check_page(&p, 7, 3), Ok(()));
        assert!(check_page(&p, 7, 2).is_err());
        assert!(check_page(&p, 8, 3).is_err());
    }
}
