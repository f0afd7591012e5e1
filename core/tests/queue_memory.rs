//! Memory held per waiting conversation, counted by a global allocator
//! (deterministic: bytes asked of the allocator plus 16 bytes of
//! bookkeeping per live block, not RSS): a surge of new
//! Messenger customers with no agent free must cost at most 2 KiB each
//! (issue 11, "Cost that must not grow with the queue").
//!
//! One test in this file: the counter is process-wide.

mod common;
use common::*;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use switchboard_core::Extensions;

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);
static BLOCKS: AtomicIsize = AtomicIsize::new(0);

/// What a block costs beyond its bytes in a general-purpose allocator
/// (glibc: an 8-byte header and rounding up to 16).
const PER_BLOCK: isize = 16;

/// Bytes held, with each live block's bookkeeping.
fn held() -> isize {
    LIVE.load(Ordering::Relaxed) + PER_BLOCK * BLOCKS.load(Ordering::Relaxed)
}

// SAFETY: forwards to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        BLOCKS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        BLOCKS.fetch_sub(1, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Heap bytes per waiting conversation above this fail the test.
const BUDGET: isize = 2 * 1024;

#[test]
fn a_waiting_conversation_holds_at_most_2_kib() {
    const N: u64 = 20_000;
    let mut w = World::new(&[("alice", 2), ("bob", 1)]);
    let ext = Extensions::builtin();
    // Warm up: first allocations of maps and the masker's caches.
    for i in 0..1_000 {
        w.engine
            .handle(messenger_customer(i), w.now, &ext)
            .expect("accepted");
    }
    let before = held();
    for i in 1_000..1_000 + N {
        let out = w
            .engine
            .handle(messenger_customer(i), w.now, &ext)
            .expect("accepted");
        // Journaled and published by the server, then dropped.
        drop(out);
        w.now += 1;
    }
    let per = (held() - before) / N as isize;
    println!("heap per waiting conversation: {per} bytes");
    assert_eq!(w.engine.waiting().count(), 1_000 + N as usize);
    assert!(per <= BUDGET, "{per} bytes per waiting conversation");
}
