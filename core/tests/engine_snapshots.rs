//! Snapshots: what a stored snapshot holds, whatever the engine shares
//! with it.

mod common;
use common::*;
use std::sync::Arc;
use switchboard_core::engine::Snapshot;
use switchboard_core::model::ConversationId;

/// A tenant with a customer's archived conversation (history, last
/// agent), a redelivered message dropped, one conversation offered and
/// one waiting: every part a snapshot carries.
fn world() -> World {
    let mut w = World::new(&[("alice", 1)]);
    w.available(&["alice"]);
    w.run(messenger_customer(1));
    w.now += 1;
    w.run(accept("alice", 1));
    w.run(say("alice", 1, "On its way"));
    w.run(end("alice", 1));
    w.run(wrapup("alice", 1, "resolved"));
    w.advance(ARCHIVE_MS + 1);
    for i in 1..=3 {
        w.now += 1;
        w.run(messenger_customer(i));
    }
    w
}

fn json(snap: &Snapshot) -> String {
    match serde_json::to_string_pretty(snap) {
        Ok(s) => s,
        Err(e) => panic!("snapshot does not serialize: {e}"),
    }
}

/// The form snapshots were stored in before conversations were shared
/// with the engine (written by that version from the same commands):
/// stored snapshots still load, and new ones are written the same.
const STORED: &str = include_str!("engine_snapshots.json");

#[test]
fn a_snapshot_is_written_as_before_and_a_stored_one_loads() {
    let w = world();
    assert_eq!(json(&w.engine.snapshot()), STORED.trim_end());
    let stored: Snapshot = match serde_json::from_str(STORED) {
        Ok(s) => s,
        Err(e) => panic!("stored snapshot does not load: {e}"),
    };
    let mut restored = World::new(&[("alice", 1)]).engine;
    restored.restore(stored);
    assert_eq!(restored.check_invariants(), Ok(()));
    assert_eq!(json(&restored.snapshot()), STORED.trim_end());
    assert_eq!(restored.waiting().collect::<Vec<_>>(), vec![3]);
    let Some(c) = restored.open_conversation_of("messenger", "7000000000000002") else {
        panic!("the offered conversation is not restored");
    };
    assert_eq!(c.offer.as_ref().map(|o| o.agent.as_str()), Some("alice"));
}

#[test]
fn a_snapshot_keeps_what_it_saw_while_the_engine_moves_on() {
    let mut w = world();
    let before = w.engine.snapshot();
    let seen = json(&before);
    // The offered conversation is accepted and written in, a new one
    // arrives.
    w.run(accept("alice", 2));
    w.run(say("alice", 2, "Let me look"));
    w.run(messenger_customer(40));
    assert_eq!(json(&before), seen);
    assert_ne!(json(&w.engine.snapshot()), seen);
}

#[test]
fn taking_a_snapshot_shares_conversations_instead_of_copying_them() {
    let mut w = world();
    let first = w.engine.snapshot();
    let second = w.engine.snapshot();
    assert_eq!(first.conversations.len(), 2);
    for (a, b) in first
        .conversations
        .iter_shared()
        .zip(second.conversations.iter_shared())
    {
        assert!(Arc::ptr_eq(a, b), "conversation {} was copied", a.id);
    }
    // A conversation that changed is a copy of its own; the others are
    // still shared.
    w.run(accept("alice", 2));
    let third = w.engine.snapshot();
    let find = |s: &Snapshot, id| s.conversations.shared(&id).cloned();
    let (Some(old2), Some(new2), Some(old3), Some(new3)) = (
        find(&first, 2),
        find(&third, 2),
        find(&first, 3),
        find(&third, 3),
    ) else {
        panic!("conversations 2 and 3 are in both snapshots");
    };
    assert!(!Arc::ptr_eq(&old2, &new2));
    assert!(Arc::ptr_eq(&old3, &new3));
}

#[test]
fn redeliveries_are_dropped_within_the_window_across_snapshots() {
    let ext = switchboard_core::Extensions::builtin();
    let mut w = World::new(&[("alice", 1)]);
    for i in 0..150 {
        w.now += 1;
        w.run(messenger_customer(i));
    }
    let early = w.engine.snapshot();
    assert_eq!(early.recent_external.len(), 150);
    // A redelivery within the window changes nothing, here and in an
    // engine restored from the snapshot.
    let again = w.engine.handle(messenger_customer(70), w.now, &ext);
    assert!(again.is_ok_and(|o| o.emitted.is_empty()));
    let mut restored = World::new(&[("alice", 1)]).engine;
    restored.restore(early.clone());
    let again = restored.handle(messenger_customer(70), w.now, &ext);
    assert!(again.is_ok_and(|o| o.emitted.is_empty()));
    // Past the window the ids are forgotten (a new message writes them
    // again), one by one in arrival order; the earlier snapshot still
    // holds the 150 it saw.
    w.now = 1_000_000 + switchboard_core::engine::DEDUP_WINDOW_MS + 100;
    w.run(messenger_customer(1_000));
    let late = w.engine.snapshot();
    let ids: Vec<u64> = late.recent_external.iter().map(|(at, _)| *at).collect();
    assert_eq!(
        ids.len(),
        1 + 150 - 99,
        "ids seen before the window are gone"
    );
    assert!(ids.windows(2).all(|p| p[0] <= p[1]));
    assert_eq!(early.recent_external.len(), 150);
    let seen_70 = w.engine.handle(messenger_customer(70), w.now, &ext);
    assert!(seen_70.is_ok_and(|o| !o.emitted.is_empty()));
    let stored: Snapshot = match serde_json::from_str(&json(&late)) {
        Ok(s) => s,
        Err(e) => panic!("snapshot does not load: {e}"),
    };
    assert_eq!(json(&stored), json(&late));
}

/// The same state gives the same snapshot bytes (replay and stored
/// snapshots compare byte for byte): with customers served several times
/// and archived, a restored engine and a replayed one write exactly the
/// snapshot taken, and a snapshot held while more customers are served
/// keeps what it saw.
#[test]
fn the_same_state_gives_the_same_snapshot_bytes() {
    let mut w = World::new(&[("alice", 1)]);
    w.available(&["alice"]);
    let serve = |w: &mut World, n: u64, c: ConversationId| {
        w.now += 1;
        w.customer(&format!("customer{}", n % 7), &format!("Question {n}"));
        w.run(accept("alice", c));
        w.run(end("alice", c));
        w.run(wrapup("alice", c, "resolved"));
        w.advance(ARCHIVE_MS + 1);
    };
    for n in 1..=30 {
        serve(&mut w, n, n);
    }
    let before = json(&w.engine.snapshot());
    let mut restored = World::new(&[("alice", 1)]).engine;
    restored.restore(w.engine.snapshot());
    assert_eq!(restored.check_invariants(), Ok(()));
    assert_eq!(json(&restored.snapshot()), before);
    assert_eq!(json(&w.replay().snapshot()), before);

    let held = w.engine.snapshot();
    serve(&mut w, 31, 31);
    assert_eq!(json(&held), before);
    assert_ne!(json(&w.engine.snapshot()), before);
}
