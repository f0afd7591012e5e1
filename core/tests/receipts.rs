//! Exact events for the customer's channel reporting the agents' replies
//! delivered or read: only what changes something is emitted, replay and
//! snapshots keep it, and a receipt never opens a conversation.

mod common;
use common::*;
use switchboard_core::command::Command;
use switchboard_core::engine::transcript_of;
use switchboard_core::model::*;

fn receipt(who: &str, status: Receipt, watermark: Millis) -> Command {
    Command::CustomerReceipt {
        channel: "webchat".into(),
        customer: who.into(),
        status,
        watermark,
    }
}

fn receipts_of(e: &switchboard_core::Engine, c: ConversationId) -> Vec<Option<Receipt>> {
    e.conversation(c)
        .expect("conversation")
        .messages
        .iter()
        .map(|m| m.receipt)
        .collect()
}

#[test]
fn delivered_then_read_up_to_the_watermark_each_once() {
    let mut w = World::new(&[("alice", 5)]);
    w.available(&["alice"]);
    w.customer("v1", "hello");
    w.run(accept("alice", 1));
    w.now += 10;
    w.run(say("alice", 1, "first"));
    let first_at = w.now;
    w.now += 10;
    w.run(say("alice", 1, "second"));
    let second_at = w.now;
    w.now += 10;

    // Delivered up to the first reply only.
    assert_eq!(
        w.run(receipt("v1", Receipt::Delivered, first_at)),
        ["receipt #1 delivered through [1] [alice]"]
    );
    // The same receipt again (a redelivered webhook): nothing.
    assert!(w
        .run(receipt("v1", Receipt::Delivered, first_at))
        .is_empty());
    // Read covers both replies; the customer's own message is untouched.
    assert_eq!(
        w.run(receipt("v1", Receipt::Read, second_at + 5)),
        ["receipt #1 read through [2] [alice]"]
    );
    assert_eq!(
        receipts_of(&w.engine, 1),
        [None, Some(Receipt::Read), Some(Receipt::Read)]
    );
    // A late delivery receipt never lowers read.
    assert!(w
        .run(receipt("v1", Receipt::Delivered, second_at))
        .is_empty());
    assert!(w.run(receipt("v1", Receipt::Read, second_at)).is_empty());
    assert_eq!(
        receipts_of(&w.engine, 1),
        [None, Some(Receipt::Read), Some(Receipt::Read)]
    );

    // Replay, snapshot and the rebuilt transcript say the same.
    assert_eq!(receipts_of(&w.replay(), 1), receipts_of(&w.engine, 1));
    assert_eq!(receipts_of(&w.restored(), 1), receipts_of(&w.engine, 1));
    let rebuilt: Vec<Option<Receipt>> = transcript_of(&w.journal, Default::default())
        .iter()
        .map(|m| m.receipt)
        .collect();
    assert_eq!(rebuilt, receipts_of(&w.engine, 1));
}

#[test]
fn a_receipt_before_any_reply_or_without_a_conversation_changes_nothing() {
    let mut w = World::new(&[("alice", 5)]);
    w.available(&["alice"]);
    // No conversation: none is opened.
    assert!(w.run(receipt("nobody", Receipt::Read, w.now)).is_empty());
    assert!(w.engine.conversation(1).is_none());
    w.customer("v1", "hello");
    w.run(accept("alice", 1));
    // Nothing the agent wrote yet.
    assert!(w.run(receipt("v1", Receipt::Read, w.now)).is_empty());
    w.now += 10;
    w.run(say("alice", 1, "hi"));
    // A watermark before the reply was sent covers nothing.
    assert!(w.run(receipt("v1", Receipt::Read, w.now - 1)).is_empty());
    // Another customer's receipt does not touch this conversation.
    assert!(w.run(receipt("v2", Receipt::Read, w.now)).is_empty());
    assert_eq!(receipts_of(&w.engine, 1), [None, None]);
}

#[test]
fn a_later_reply_is_unread_until_the_next_watermark_passes_it() {
    let mut w = World::new(&[("alice", 5)]);
    w.available(&["alice"]);
    w.customer("v1", "hello");
    w.run(accept("alice", 1));
    w.run(say("alice", 1, "one"));
    w.now += 10;
    assert_eq!(
        w.run(receipt("v1", Receipt::Read, w.now)),
        ["receipt #1 read through [1] [alice]"]
    );
    w.now += 1;
    w.run(say("alice", 1, "two"));
    assert_eq!(receipts_of(&w.engine, 1), [None, Some(Receipt::Read), None]);
    w.now += 10;
    assert_eq!(
        w.run(receipt("v1", Receipt::Read, w.now)),
        ["receipt #1 read through [2] [alice]"]
    );
}
