//! Range operations on the engine's bitmap, a word at a time.

use depmig_precopy::DirtyBitmap;

/// Sets `count` bits from `first`, clipped to the bitmap.
pub fn set_range(b: &mut DirtyBitmap, first: u64, count: u64) {
    let end = first.saturating_add(count).min(b.len());
    let mut pfn = first;
    let words = b.words_mut();
    while pfn < end {
        let bit = pfn % 64;
        let n = (64 - bit).min(end - pfn);
        let mask = if n == 64 {
            !0
        } else {
            ((1u64 << n) - 1) << bit
        };
        if let Some(w) = words.get_mut((pfn / 64) as usize) {
            *w |= mask;
        }
        pfn += n;
    }
}
