//! The cost of a new customer's first message with 1k, 10k and 100k
//! conversations already waiting and no agent free (issue 11, "Cost that
//! must not grow with the queue"): it should not depend on the depth.
//!
//! Also reports the time an engine snapshot (`Engine::snapshot`, what the
//! server takes under the engine lock; it shares the conversations, the
//! encoding is done off the lock) takes at each depth, and for a tenant
//! that served 50,000 customers (last agents and histories), dropping it
//! included.
//!
//! Run: `cargo bench -p switchboard-core --bench queue_depth`
//! (small samples: about a minute, most of it filling the queues).

#[path = "../tests/common/mod.rs"]
mod common;

use common::{accept, end, messenger_customer, wrapup, World, ARCHIVE_MS};
use criterion::{criterion_group, criterion_main, Criterion};
use std::hint::black_box;
use std::time::{Duration, Instant};
use switchboard_core::Extensions;

/// A tenant with `depth` conversations waiting and its agents logged out.
fn world(depth: u64) -> World {
    let mut w = World::new(&[("alice", 2), ("bob", 1), ("carol", 3)]);
    let ext = Extensions::builtin();
    for i in 0..depth {
        if w.engine.handle(messenger_customer(i), w.now, &ext).is_err() {
            panic!("customer {i} refused");
        }
        w.now += 1;
    }
    w
}

fn queue_depth(c: &mut Criterion) {
    let ext = Extensions::builtin();
    let worlds: Vec<(u64, World)> = [1_000u64, 10_000, 100_000]
        .into_iter()
        .map(|depth| (depth, world(depth)))
        .collect();
    let mut group = c.benchmark_group("new_customer_message");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    let mut next = 10_000_000u64;
    for (depth, w) in &worlds {
        // Every message measured adds a waiting conversation: start again
        // from a copy once the queue grew by a tenth (not timed), so the
        // depth stays within 10% of the one named.
        let mut engine = w.engine.clone();
        let mut added = 0u64;
        let mut now = w.now;
        group.bench_function(format!("{depth}_waiting"), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    if added >= *depth / 10 {
                        engine = w.engine.clone();
                        added = 0;
                    }
                    next += 1;
                    now += 1;
                    let cmd = messenger_customer(next);
                    let start = Instant::now();
                    let out = black_box(engine.handle(cmd, now, &ext));
                    total += start.elapsed();
                    drop(out);
                    added += 1;
                }
                total
            })
        });
    }
    group.finish();
    let mut group = c.benchmark_group("snapshot");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(200))
        .measurement_time(Duration::from_secs(1));
    for (depth, w) in &worlds {
        group.bench_function(format!("{depth}_waiting"), |b| {
            b.iter(|| black_box(w.engine.snapshot()))
        });
    }
    // A tenant that has served many customers: their last agents and
    // histories are shared with the snapshot too, not copied under the lock.
    let served = served(50_000);
    group.bench_function("50000_customers_served", |b| {
        b.iter(|| black_box(served.engine.snapshot()))
    });
    group.finish();
}

/// A tenant whose one agent served `n` customers, each conversation
/// archived: `n` last agents and histories.
fn served(n: u64) -> World {
    let mut w = World::new(&[("alice", 1)]);
    w.available(&["alice"]);
    let ext = Extensions::builtin();
    for id in 1..=n {
        w.now += 1;
        let steps = [
            messenger_customer(id),
            accept("alice", id),
            end("alice", id),
            wrapup("alice", id, "resolved"),
        ];
        for cmd in steps {
            if let Err(e) = w.engine.handle(cmd, w.now, &ext) {
                panic!("customer {id}: {e}");
            }
        }
    }
    w.now += ARCHIVE_MS + 1;
    let _ = w.engine.tick(w.now, &ext);
    w
}

criterion_group!(benches, queue_depth);
criterion_main!(benches);
