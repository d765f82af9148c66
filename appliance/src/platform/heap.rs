//! The image's heap: a first-fit free list over RAM the memory map gives.
//!
//! Blocks are multiples of 16 bytes at 16-byte boundaries, the free list is
//! sorted by address and neighbours are merged on free. Enough for the
//! control-plane allocations of the appliance; hot paths use fixed buffers.

use core::alloc::{GlobalAlloc, Layout};
use core::ptr::null_mut;

const UNIT: usize = 16;

#[repr(C)]
struct Free {
    size: usize,
    next: *mut Free,
}

struct Heap {
    head: *mut Free,
    total: usize,
    used: usize,
}

// SAFETY: the raw pointers name memory owned by the heap alone; all access
// goes through the mutex below.
unsafe impl Send for Heap {}

/// The global allocator.
pub struct LockedHeap(spin::Mutex<Heap>);

#[global_allocator]
static HEAP: LockedHeap = LockedHeap(spin::Mutex::new(Heap {
    head: null_mut(),
    total: 0,
    used: 0,
}));

const fn round_up(v: usize, to: usize) -> usize {
    (v + to - 1) & !(to - 1)
}

fn block_size(layout: &Layout) -> usize {
    round_up(layout.size().max(UNIT), UNIT)
}

/// Gives the heap the memory `[start, end)`.
///
/// # Safety
/// 1. The range is RAM that nothing else uses, now or later.
/// 2. Called at most once, before any allocation.
pub unsafe fn init(start: u64, end: u64) {
    let s = round_up(start as usize, UNIT);
    let e = (end as usize) & !(UNIT - 1);
    if e <= s + UNIT {
        return;
    }
    let mut h = HEAP.0.lock();
    let block = s as *mut Free;
    // SAFETY: precondition 1: the range is ours and large enough for a header.
    unsafe {
        block.write(Free {
            size: e - s,
            next: null_mut(),
        })
    };
    h.head = block;
    h.total = e - s;
}

/// `(bytes in use, bytes managed)`.
pub fn usage() -> (usize, usize) {
    let h = HEAP.0.lock();
    (h.used, h.total)
}

// SAFETY: alloc returns blocks from the free list that no one else holds,
// sized and aligned as asked; dealloc returns them to the list.
unsafe impl GlobalAlloc for LockedHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let size = block_size(&layout);
        let align = layout.align().max(UNIT);
        let mut h = self.0.lock();
        let mut prev: *mut Free = null_mut();
        let mut cur = h.head;
        while !cur.is_null() {
            // SAFETY: every list node is a valid free block header.
            let (bsize, next) = unsafe { ((*cur).size, (*cur).next) };
            let start = cur as usize;
            let end = start + bsize;
            let aligned = round_up(start, align);
            if aligned.checked_add(size).is_some_and(|a_end| a_end <= end) {
                let front = aligned - start;
                let back = end - (aligned + size);
                let mut link = next;
                if back > 0 {
                    let b = (aligned + size) as *mut Free;
                    // SAFETY: the tail of this free block, at least UNIT bytes.
                    unsafe { b.write(Free { size: back, next }) };
                    link = b;
                }
                if front > 0 {
                    // SAFETY: cur stays a free block of `front` bytes.
                    unsafe {
                        cur.write(Free {
                            size: front,
                            next: link,
                        })
                    };
                    link = cur;
                }
                if prev.is_null() {
                    h.head = link;
                } else {
                    // SAFETY: prev is a valid free block header.
                    unsafe { (*prev).next = link };
                }
                h.used += size;
                return aligned as *mut u8;
            }
            prev = cur;
            cur = next;
        }
        null_mut()
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let size = block_size(&layout);
        let addr = ptr as usize;
        let mut h = self.0.lock();
        h.used -= size;
        let mut prev: *mut Free = null_mut();
        let mut cur = h.head;
        while !cur.is_null() && (cur as usize) < addr {
            prev = cur;
            // SAFETY: list nodes are valid headers.
            cur = unsafe { (*cur).next };
        }
        let block = ptr as *mut Free;
        // SAFETY: the caller returns a block this allocator handed out, of
        // `size` bytes, which is again free memory of the heap.
        unsafe {
            block.write(Free { size, next: cur });
            if !cur.is_null() && addr + size == cur as usize {
                (*block).size += (*cur).size;
                (*block).next = (*cur).next;
            }
            if prev.is_null() {
                h.head = block;
            } else if prev as usize + (*prev).size == addr {
                (*prev).size += (*block).size;
                (*prev).next = (*block).next;
            } else {
                (*prev).next = block;
            }
        }
    }
}
