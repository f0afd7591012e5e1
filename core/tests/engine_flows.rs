//! Exact event sequences for each flow of the agent's side of a conversation,
//! on a virtual clock.

mod common;
use common::*;
use switchboard_core::command::Command;
use switchboard_core::model::*;
use switchboard_core::CommandError;

#[test]
fn new_conversation_is_offered_to_the_longest_idle_agent_and_accepted() {
    let mut w = World::new(&[("alice", 5), ("bob", 5)]);
    w.available(&["alice", "bob"]);
    assert_eq!(
        w.customer("v1", "Hello, my order is late"),
        [
            "conversation_created #1 []",
            "message #1 Customer: Hello, my order is late []",
            "queued #1 support []",
            "offer #1 alice Queue [alice]",
        ]
    );
    assert_eq!(
        w.run(accept("alice", 1)),
        ["conversation_started #1 alice [alice]"]
    );
    assert_eq!(
        w.run(say("alice", 1, "Let me check")),
        ["message #1 Agent: Let me check [alice,customer]"]
    );
    assert_eq!(
        w.customer("v1", "thanks"),
        ["message #1 Customer: thanks [alice]"]
    );
    let c = w.engine.conversation(1).expect("conversation 1");
    assert_eq!(c.state, ConversationState::Active);
    assert_eq!(c.owner.as_deref(), Some("alice"));
}

#[test]
fn offer_carries_queue_source_received_time_and_masked_preview() {
    let mut w = World::new(&[("alice", 5)]);
    w.available(&["alice"]);
    let received = w.now;
    let out = w
        .try_run(customer_msg("v1", "my card is 4111 1111 1111 1111"))
        .expect("accepted");
    let offer = out
        .events()
        .find_map(|e| match e {
            switchboard_core::Event::Offer {
                queue,
                source,
                received_at,
                preview,
                expires_at,
                ..
            } => Some((
                queue.clone(),
                source.clone(),
                *received_at,
                preview.clone(),
                *expires_at,
            )),
            _ => None,
        })
        .expect("an offer");
    assert_eq!(offer.0, "support");
    assert_eq!(offer.1, "Web site");
    assert_eq!(offer.2, received);
    assert!(!offer.3.contains("4111 1111"), "preview leaks: {}", offer.3);
    assert_eq!(offer.4, received + RONA_MS);
}

#[test]
fn a_card_split_over_two_messages_is_masked_in_both_and_after_replay() {
    let mut w = World::new(&[("alice", 5)]);
    w.available(&["alice"]);
    assert_eq!(
        w.customer("v1", "ma carte 4111\u{a0}1111"),
        [
            "conversation_created #1 []",
            "message #1 Customer: ma carte 4111\u{a0}1111 []",
            "queued #1 support []",
            "offer #1 alice Queue [alice]",
        ]
    );
    // The second half makes a card: the first message is redacted (also
    // for alice, who has the offer and its preview), the second masked.
    assert_eq!(
        w.customer("v1", "1111 1111 merci"),
        [
            "message_redacted #1 [0]: ma carte ******** [alice]",
            "message #1 Customer: ****1111 merci []",
        ]
    );
    let c = w.engine.conversation(1).expect("conversation 1");
    assert_eq!(c.messages[0].text, "ma carte ********");
    assert_eq!(c.preview, "ma carte ********");
    // Replaying the journal gives the same transcript.
    let replayed = w.replay();
    let r = replayed.conversation(1).expect("replayed");
    assert_eq!(r.messages[0].text, "ma carte ********");
    assert_eq!(r.messages[1].text, "****1111 merci");
    // An agent's message in between: not consecutive, nothing redacted.
    w.run(accept("alice", 1));
    w.run(say("alice", 1, "Merci"));
    assert_eq!(
        w.customer("v1", "4111 1111"),
        ["message #1 Customer: 4111 1111 [alice]"]
    );
    assert_eq!(
        w.customer("v1", "1111 1111"),
        [
            "message_redacted #1 [3]: ******** [alice]",
            "message #1 Customer: ****1111 [alice]",
        ]
    );
}

#[test]
fn unanswered_offer_puts_agent_in_rona_and_reaches_the_next_agent() {
    let mut w = World::new(&[("alice", 5), ("bob", 5)]);
    w.available(&["alice", "bob"]);
    w.customer("v1", "hi");
    assert_eq!(w.advance(RONA_MS - 1), Vec::<String>::new());
    assert_eq!(
        w.advance(1),
        [
            "offer_rescinded #1 alice timeout [alice]",
            "queued #1 support []",
            "agent_state alice rona [alice]",
            "offer #1 bob Queue [bob]",
        ]
    );
    // RONA gets nothing new, even when it is the only one free.
    w.run(accept("bob", 1));
    w.run(Command::SetIdle {
        agent: "bob".into(),
        reason: "Lunch".into(),
    });
    assert_eq!(
        w.customer("v2", "anyone?").last().map(String::as_str),
        Some("queued #2 support []")
    );
    // Only the agent leaves RONA, by setting Available: then it gets the offer.
    assert_eq!(
        w.run(Command::SetAvailable {
            agent: "alice".into()
        }),
        [
            "agent_state alice available [alice]",
            "offer #2 alice Queue [alice]"
        ]
    );
}

#[test]
fn with_no_agent_free_conversations_wait_in_order() {
    let mut w = World::new(&[("alice", 1)]);
    w.run(Command::Login {
        agent: "alice".into(),
    });
    w.customer("v1", "first");
    w.now += 10;
    w.customer("v2", "second");
    w.now += 10;
    w.customer("v3", "third");
    assert_eq!(w.engine.waiting().collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(
        w.run(Command::SetAvailable {
            agent: "alice".into()
        }),
        [
            "agent_state alice available [alice]",
            "offer #1 alice Queue [alice]"
        ]
    );
    w.run(accept("alice", 1));
    w.run(end("alice", 1));
    // Capacity comes back only with the wrap-up.
    assert_eq!(
        w.run(wrapup("alice", 1, "resolved")),
        [
            "wrapup_submitted #1 alice resolved [alice]",
            "offer #2 alice Queue [alice]"
        ]
    );
}

#[test]
fn a_requeued_conversation_keeps_its_place_in_line() {
    let mut w = World::new(&[("alice", 1), ("bob", 1)]);
    w.available(&["alice"]);
    w.customer("v1", "first");
    w.now += 10;
    w.customer("v2", "second");
    w.advance(RONA_MS);
    // #1 went back to the head of the line, before #2.
    assert_eq!(w.engine.waiting().collect::<Vec<_>>(), [1, 2]);
    w.available(&["bob"]);
    assert_eq!(
        w.engine.conversation(1).map(|c| c.state),
        Some(ConversationState::Offered)
    );
}

#[test]
fn agent_message_over_1000_characters_or_empty_is_refused_and_nothing_stored() {
    let mut w = World::new(&[("alice", 5)]);
    w.available(&["alice"]);
    w.customer("v1", "hi");
    w.run(accept("alice", 1));
    let before = w.engine.conversation(1).map(|c| c.messages.len());
    let long: String = "é".repeat(1001);
    match w.try_run(say("alice", 1, &long)) {
        Err(CommandError::Invalid(m)) => assert!(m.contains("1000"), "{m}"),
        other => panic!("expected Invalid, got {other:?}"),
    }
    assert!(matches!(
        w.try_run(say("alice", 1, "  ")),
        Err(CommandError::Invalid(_))
    ));
    assert_eq!(w.engine.conversation(1).map(|c| c.messages.len()), before);
    // Exactly 1000 scalar values (multi-byte) is fine.
    let exact: String = "é".repeat(1000);
    assert_eq!(w.run(say("alice", 1, &exact)).len(), 1);
}

#[test]
fn transfer_to_an_agent_then_wrapup_for_the_transferring_agent() {
    let mut w = World::new(&[("alice", 5), ("bob", 5)]);
    w.available(&["alice", "bob"]);
    w.customer("v1", "hi");
    w.run(accept("alice", 1));
    assert_eq!(
        w.run(Command::Transfer {
            agent: "alice".into(),
            conversation: 1,
            to: TransferTarget::Agent("bob".into()),
        }),
        [
            "message #1 System: alice transferred the conversation to bob [alice]",
            "transferred #1 alice -> Agent(\"bob\") [alice]",
            "wrapup_required #1 alice [alice]",
            "offer #1 bob Transfer [bob]",
        ]
    );
    assert_eq!(
        w.run(accept("bob", 1)),
        ["conversation_started #1 bob [bob]"]
    );
    assert_eq!(
        w.run(wrapup("alice", 1, "transferred")),
        ["wrapup_submitted #1 alice transferred [alice]"]
    );
    // Alice no longer sees the conversation.
    assert!(matches!(
        w.try_run(say("alice", 1, "still here?")),
        Err(CommandError::NotFound(_))
    ));
}

#[test]
fn transfer_to_a_queue_is_offered_to_that_queues_agents() {
    let mut w = World::new(&[("alice", 5), ("bob", 5)]);
    w.available(&["alice", "bob"]);
    w.customer("v1", "hi");
    w.run(accept("alice", 1));
    let t = w.run(Command::Transfer {
        agent: "alice".into(),
        conversation: 1,
        to: TransferTarget::Queue("billing".into()),
    });
    assert_eq!(
        t,
        [
            "message #1 System: alice transferred the conversation to queue billing [alice]",
            "transferred #1 alice -> Queue(\"billing\") [alice]",
            "wrapup_required #1 alice [alice]",
            "queued #1 billing []",
            "offer #1 bob Queue [bob]",
        ]
    );
}

#[test]
fn transfer_not_accepted_returns_to_the_queue_by_default() {
    let mut w = World::new(&[("alice", 5), ("bob", 5), ("carol", 5)]);
    w.available(&["alice", "bob", "carol"]);
    w.customer("v1", "hi");
    w.run(accept("alice", 1));
    w.run(Command::Transfer {
        agent: "alice".into(),
        conversation: 1,
        to: TransferTarget::Agent("bob".into()),
    });
    assert_eq!(
        w.advance(RONA_MS),
        [
            "offer_rescinded #1 bob timeout [bob]",
            "message #1 System: bob did not accept the transfer: back in queue []",
            "queued #1 support []",
            "agent_state bob rona [bob]",
            "offer #1 carol Queue [carol]",
        ]
    );
}

#[test]
fn transfer_not_accepted_is_dropped_when_the_tenant_says_so() {
    let mut s = settings();
    s.transfer_not_accepted = TransferNotAccepted::Drop;
    let mut w = World::with_settings(&[("alice", 5), ("bob", 5)], s);
    w.available(&["alice", "bob"]);
    w.customer("v1", "hi");
    w.run(accept("alice", 1));
    w.run(Command::Transfer {
        agent: "alice".into(),
        conversation: 1,
        to: TransferTarget::Agent("bob".into()),
    });
    assert_eq!(
        w.advance(RONA_MS),
        [
            "offer_rescinded #1 bob timeout [bob]",
            "conversation_dropped #1 transfer_not_accepted [customer]",
            "agent_state bob rona [bob]",
        ]
    );
    // The customer's next message opens a new conversation.
    assert!(w
        .customer("v1", "hello?")
        .contains(&"conversation_created #2 []".to_string()));
}

#[test]
fn transfer_to_an_unavailable_agent_is_refused() {
    let mut w = World::new(&[("alice", 5), ("bob", 5)]);
    w.available(&["alice"]);
    w.run(Command::Login {
        agent: "bob".into(),
    });
    w.customer("v1", "hi");
    w.run(accept("alice", 1));
    let r = w.try_run(Command::Transfer {
        agent: "alice".into(),
        conversation: 1,
        to: TransferTarget::Agent("bob".into()),
    });
    assert!(matches!(r, Err(CommandError::Conflict(_))), "{r:?}");
    let r = w.try_run(Command::Transfer {
        agent: "alice".into(),
        conversation: 1,
        to: TransferTarget::Queue("nowhere".into()),
    });
    assert_eq!(r, Err(CommandError::NotFound("queue")));
}

#[test]
fn conference_requested_started_left_then_ended_with_wrapup() {
    let mut w = World::new(&[("bob", 5), ("carol", 5)]);
    w.available(&["bob", "carol"]);
    w.customer("v1", "hi");
    w.run(accept("bob", 1));
    assert_eq!(
        w.run(Command::InviteToConference {
            agent: "bob".into(),
            conversation: 1,
            invitee: "carol".into(),
        }),
        [
            "conference_requested #1 bob -> carol [bob]",
            "offer #1 carol Conference [carol]",
        ]
    );
    assert_eq!(
        w.engine.conversation(1).map(|c| c.state),
        Some(ConversationState::ConferenceRequested)
    );
    assert_eq!(
        w.run(accept("carol", 1)),
        [
            "conference_started #1 carol [bob,carol]",
            "message #1 System: carol joined the conversation [bob,carol]",
        ]
    );
    assert_eq!(
        w.run(say("carol", 1, "Hi, I am Carol")),
        ["message #1 Agent: Hi, I am Carol [bob,carol,customer]"]
    );
    assert_eq!(
        w.run(Command::LeaveConference {
            agent: "carol".into(),
            conversation: 1,
        }),
        [
            "participant_left #1 carol [bob,carol]",
            "message #1 System: carol left the conversation [bob,carol]",
        ]
    );
    assert_eq!(w.customer("v1", "ok"), ["message #1 Customer: ok [bob]"]);
    // Invite again, then end the conference: the conversation ends for all.
    w.run(Command::InviteToConference {
        agent: "bob".into(),
        conversation: 1,
        invitee: "carol".into(),
    });
    w.run(accept("carol", 1));
    assert_eq!(
        w.run(Command::EndConference {
            agent: "bob".into(),
            conversation: 1,
        }),
        [
            "conference_ended #1 bob [bob,carol]",
            "conversation_ended #1 bob [bob,carol,customer]",
            "wrapup_required #1 bob [bob]",
            "wrapup_required #1 carol [carol]",
        ]
    );
    w.run(wrapup("bob", 1, "resolved"));
    assert_eq!(
        w.engine.conversation(1).map(|c| c.state),
        Some(ConversationState::Ended)
    );
    w.run(wrapup("carol", 1, "resolved"));
    assert_eq!(
        w.engine.conversation(1).map(|c| c.state),
        Some(ConversationState::WrappedUp)
    );
}

#[test]
fn conference_invitation_not_accepted_leaves_the_owner_alone() {
    let mut w = World::new(&[("bob", 5), ("carol", 5)]);
    w.available(&["bob", "carol"]);
    w.customer("v1", "hi");
    w.run(accept("bob", 1));
    w.run(Command::InviteToConference {
        agent: "bob".into(),
        conversation: 1,
        invitee: "carol".into(),
    });
    assert_eq!(
        w.advance(RONA_MS),
        [
            "offer_rescinded #1 carol timeout [carol]",
            "conference_cancelled #1 carol timeout [bob]",
            "agent_state carol rona [carol]",
        ]
    );
    assert_eq!(
        w.engine.conversation(1).map(|c| c.state),
        Some(ConversationState::Active)
    );
}

#[test]
fn only_the_owner_ends_and_wrapup_needs_a_listed_reason() {
    let mut w = World::new(&[("alice", 5)]);
    w.available(&["alice"]);
    w.customer("v1", "hi");
    assert!(matches!(
        w.try_run(end("alice", 1)),
        Err(CommandError::Conflict(_))
    ));
    w.run(accept("alice", 1));
    assert!(matches!(
        w.try_run(wrapup("alice", 1, "resolved")),
        Err(CommandError::Conflict(_))
    ));
    assert_eq!(
        w.run(end("alice", 1)),
        [
            "conversation_ended #1 alice [alice,customer]",
            "wrapup_required #1 alice [alice]",
        ]
    );
    assert!(matches!(
        w.try_run(wrapup("alice", 1, "no-such-code")),
        Err(CommandError::Invalid(_))
    ));
    assert!(matches!(
        w.try_run(say("alice", 1, "bye")),
        Err(CommandError::Conflict(_))
    ));
    assert_eq!(
        w.run(wrapup("alice", 1, "resolved")),
        ["wrapup_submitted #1 alice resolved [alice]"]
    );
}

#[test]
fn deleting_a_queue_interrupts_its_conversations_which_can_only_be_ended() {
    let mut w = World::new(&[("alice", 5)]);
    w.available(&["alice"]);
    w.customer("v1", "hi");
    w.run(accept("alice", 1));
    w.customer("v2", "hello");
    w.run(Command::SetIdle {
        agent: "alice".into(),
        reason: "Break".into(),
    });
    w.customer("v3", "anyone?");
    let t = w.run(Command::DeleteQueue {
        queue: "support".into(),
    });
    assert_eq!(
        t,
        [
            "conversation_interrupted #1 [alice]",
            "message #1 System: The queue support was deleted by an administrator: this conversation can only be ended. [alice]",
            "conversation_dropped #2 queue_deleted [customer]",
            "conversation_dropped #3 queue_deleted [customer]",
            "queue_deleted support []",
        ]
    );
    assert!(matches!(
        w.try_run(say("alice", 1, "hi")),
        Err(CommandError::Conflict(_))
    ));
    assert!(matches!(
        w.try_run(Command::Transfer {
            agent: "alice".into(),
            conversation: 1,
            to: TransferTarget::Queue("billing".into()),
        }),
        Err(CommandError::Conflict(_))
    ));
    assert_eq!(
        w.run(end("alice", 1)),
        [
            "conversation_ended #1 alice [alice,customer]",
            "wrapup_required #1 alice [alice]",
        ]
    );
}

#[test]
fn going_idle_hands_pending_offers_back_to_the_queue() {
    let mut w = World::new(&[("alice", 5), ("bob", 5)]);
    w.available(&["alice", "bob"]);
    w.customer("v1", "hi");
    assert_eq!(
        w.run(Command::SetIdle {
            agent: "alice".into(),
            reason: "Break".into(),
        }),
        [
            "offer_rescinded #1 alice agent_unavailable [alice]",
            "queued #1 support []",
            "agent_state alice idle [alice]",
            "offer #1 bob Queue [bob]",
        ]
    );
}

#[test]
fn capacity_bounds_concurrent_conversations() {
    let mut w = World::new(&[("alice", 2)]);
    w.available(&["alice"]);
    w.customer("v1", "a");
    w.customer("v2", "b");
    assert_eq!(
        w.customer("v3", "c").last().map(String::as_str),
        Some("queued #3 support []")
    );
    assert_eq!(w.engine.agent("alice").map(|a| a.load()), Some(2));
}

#[test]
fn commands_about_someone_elses_conversation_get_not_found() {
    let mut w = World::new(&[("alice", 5), ("bob", 5)]);
    w.available(&["alice"]);
    w.customer("v1", "hi");
    w.run(accept("alice", 1));
    assert_eq!(
        w.try_run(say("bob", 1, "x")),
        Err(CommandError::NotFound("conversation"))
    );
    assert_eq!(
        w.try_run(say("bob", 99, "x")),
        Err(CommandError::NotFound("conversation"))
    );
    assert_eq!(
        w.try_run(accept("nobody", 1)),
        Err(CommandError::NotFound("conversation"))
    );
}

#[test]
fn masking_off_shows_raw_text_and_on_masks_cad_and_messages() {
    let mut s = settings();
    s.mask = false;
    let mut w = World::with_settings(&[("alice", 5)], s);
    w.available(&["alice"]);
    w.customer("v1", "mail me at melissa@gmail.com");
    let c = w.engine.conversation(1).expect("conversation");
    assert_eq!(c.messages[0].text, "mail me at melissa@gmail.com");
}

#[test]
fn replaying_the_events_rebuilds_the_same_state() {
    let mut w = World::new(&[("alice", 5), ("bob", 5), ("carol", 5)]);
    let mut journal = Vec::new();
    let mut record = |out: switchboard_core::Output| {
        journal.extend(out.emitted.into_iter().map(|e| e.event));
    };
    let ext = switchboard_core::Extensions::builtin();
    for a in ["alice", "bob", "carol"] {
        record(
            w.engine
                .handle(Command::Login { agent: a.into() }, w.now, &ext)
                .expect("login"),
        );
        record(
            w.engine
                .handle(Command::SetAvailable { agent: a.into() }, w.now, &ext)
                .expect("av"),
        );
    }
    record(
        w.engine
            .handle(customer_msg("v1", "hi"), w.now, &ext)
            .expect("msg"),
    );
    record(
        w.engine
            .handle(customer_msg("v2", "hey"), w.now, &ext)
            .expect("msg"),
    );
    record(w.engine.tick(w.now + RONA_MS, &ext));
    let mut fresh = World::new(&[("alice", 5), ("bob", 5), ("carol", 5)]);
    for e in &journal {
        fresh.engine.apply(e);
    }
    fresh
        .engine
        .check_invariants()
        .expect("replayed state is consistent");
    let summary = |e: &switchboard_core::Engine| {
        (
            e.conversations()
                .map(|c| {
                    (
                        c.id,
                        c.state,
                        c.owner.clone(),
                        c.offer.clone(),
                        c.messages.len(),
                    )
                })
                .collect::<Vec<_>>(),
            e.agents()
                .map(|a| (a.config.id.clone(), a.state.clone(), a.load()))
                .collect::<Vec<_>>(),
            e.next_deadline(),
        )
    };
    assert_eq!(summary(&fresh.engine), summary(&w.engine));
}

#[test]
fn a_redelivered_channel_message_is_stored_once() {
    let mut w = World::new(&[("alice", 5)]);
    w.available(&["alice"]);
    let with_id = |text: &str, mid: &str| match customer_msg("psid-1", text) {
        Command::CustomerMessage(mut m) => {
            m.external_id = Some(mid.into());
            Command::CustomerMessage(m)
        }
        other => other,
    };
    assert_eq!(w.run(with_id("hello", "m.1")).len(), 4);
    assert_eq!(w.run(with_id("hello", "m.1")), Vec::<String>::new());
    assert_eq!(
        w.run(with_id("again", "m.2")),
        ["message #1 Customer: again []"]
    );
    assert_eq!(w.engine.conversation(1).map(|c| c.messages.len()), Some(2));
    // Still dropped after a restart from a snapshot.
    let snap = w.engine.snapshot();
    let mut again = World::new(&[("alice", 5)]);
    again.engine.restore(snap);
    again.now = w.now;
    assert_eq!(again.run(with_id("hello", "m.1")), Vec::<String>::new());
}

#[test]
fn closed_conversations_are_archived_after_the_retention() {
    let mut w = World::new(&[("alice", 5)]);
    w.available(&["alice"]);
    w.customer("v1", "hi");
    w.run(accept("alice", 1));
    w.run(end("alice", 1));
    w.run(wrapup("alice", 1, "resolved"));
    assert_eq!(w.advance(ARCHIVE_MS - 1), Vec::<String>::new());
    assert_eq!(w.advance(1), ["conversation_archived #1 []"]);
    assert!(w.engine.conversation(1).is_none());
    assert_eq!(w.engine.next_deadline(), None);
    // The customer's next message opens a new conversation, as before.
    assert!(w
        .customer("v1", "again")
        .contains(&"conversation_created #2 []".to_string()));
}

#[test]
fn a_returning_customer_brings_its_history_and_only_its_own() {
    let mut w = World::new(&[("alice", 5), ("bob", 5)]);
    w.available(&["alice", "bob"]);
    w.customer("v1", "hi");
    let opened = w.engine.conversation(1).map(|c| c.received_at);
    w.run(accept("alice", 1));
    w.run(end("alice", 1));
    w.run(wrapup("alice", 1, "resolved"));
    let closed = w.engine.conversation(1).and_then(|c| c.closed_at);
    w.advance(ARCHIVE_MS);
    // Another customer, then v1 again.
    w.customer("v2", "hello");
    w.customer("v1", "me again");
    let open_of = |who: &str| {
        w.engine
            .conversations()
            .find(|c| c.customer == who && c.state.is_open())
            .map(|c| c.id)
    };
    let (mine, other) = (open_of("v1"), open_of("v2"));
    let (Some(mine), Some(other)) = (mine, other) else {
        panic!("both customers have an open conversation");
    };
    assert_eq!(
        w.engine.history_of(mine),
        [switchboard_core::engine::PastConversation {
            conversation: 1,
            opened_at: opened.expect("opened"),
            closed_at: closed,
            queue: "support".into(),
            agent: Some("alice".into()),
            wrapup_reasons: vec!["resolved".into()],
            interrupted_reason: None,
        }]
    );
    assert_eq!(w.engine.history_of(other), []);
    // It survives a restart from a snapshot, and a replay of the journal.
    let mut again = World::new(&[("alice", 5), ("bob", 5)]);
    again.engine.restore(w.engine.snapshot());
    assert_eq!(again.engine.history_of(mine), w.engine.history_of(mine));
    assert_eq!(w.replay().history_of(mine), w.engine.history_of(mine));
}

#[test]
fn a_dropped_conversation_waits_for_every_wrapup_before_archiving() {
    let mut s = settings();
    s.transfer_not_accepted = TransferNotAccepted::Drop;
    let mut w = World::with_settings(&[("alice", 5), ("bob", 5)], s);
    w.available(&["alice", "bob"]);
    w.customer("v1", "hi");
    w.run(accept("alice", 1));
    w.run(Command::Transfer {
        agent: "alice".into(),
        conversation: 1,
        to: TransferTarget::Agent("bob".into()),
    });
    w.advance(RONA_MS);
    // Dropped, but alice still owes her wrap-up: nothing archived.
    assert!(!w
        .advance(ARCHIVE_MS)
        .iter()
        .any(|l| l.starts_with("conversation_archived")));
    w.run(wrapup("alice", 1, "transferred"));
    assert_eq!(w.advance(ARCHIVE_MS), ["conversation_archived #1 []"]);
}

/// A policy of generation 7 that picks `pick`, or cannot decide.
struct Gen7(Option<&'static str>);

impl switchboard_core::routing::RoutingPolicy for Gen7 {
    fn route(
        &self,
        _: &switchboard_core::routing::ConversationView<'_>,
        _: &[switchboard_core::routing::Candidate<'_>],
    ) -> switchboard_core::routing::RouteDecision {
        match self.0 {
            Some(a) => switchboard_core::routing::RouteDecision::Agent(a.into()),
            None => switchboard_core::routing::RouteDecision::Fallback,
        }
    }
    fn generation(&self) -> u64 {
        7
    }
}

#[test]
fn each_offer_records_which_generation_chose_the_agent() {
    let offer_of = |policy: Gen7| {
        let mut w = World::new(&[("alice", 5), ("bob", 5)]);
        w.available(&["alice", "bob"]);
        let wrapup = switchboard_core::wrapup::BuiltinWrapUp::default();
        let ext = switchboard_core::Extensions {
            routing: &policy,
            wrapup: &wrapup,
            channels: &switchboard_core::channel::BuiltinChannels,
        };
        let out = w
            .engine
            .handle(customer_msg("v1", "hi"), w.now, &ext)
            .expect("accepted");
        let offer = out
            .events()
            .find_map(|e| match e {
                switchboard_core::Event::Offer {
                    agent, generation, ..
                } => Some((agent.clone(), *generation)),
                _ => None,
            })
            .expect("an offer");
        offer
    };
    assert_eq!(offer_of(Gen7(Some("bob"))), ("bob".to_string(), 7));
    // The policy failed: the built-in longest idle chose, generation 0.
    assert_eq!(offer_of(Gen7(None)), ("alice".to_string(), 0));
    // The policy named someone who cannot take it: the same.
    assert_eq!(offer_of(Gen7(Some("nobody"))), ("alice".to_string(), 0));
}

#[test]
fn control_characters_are_stripped_and_invisible_only_text_is_empty() {
    let mut w = World::new(&[("alice", 5)]);
    w.available(&["alice"]);
    assert_eq!(
        w.customer("v1", "bon\u{1b}[31mjour \u{202e}txt.exe\u{7}"),
        [
            "conversation_created #1 []",
            "message #1 Customer: bon[31mjour txt.exe []",
            "queued #1 support []",
            "offer #1 alice Queue [alice]",
        ]
    );
    // The length limit counts what was sent: stripping cannot sneak a
    // longer message in.
    let long = format!("{}\u{1}", "a".repeat(20_000));
    assert!(matches!(
        w.try_run(customer_msg("v1", &long)),
        Err(CommandError::Invalid(_))
    ));
    for blank in ["\u{200b}\u{200d}", " \u{feff} ", "\u{7}\u{1}"] {
        assert!(matches!(
            w.try_run(customer_msg("v1", blank)),
            Err(CommandError::Invalid(_))
        ));
    }
    w.run(accept("alice", 1));
    assert!(matches!(
        w.try_run(say("alice", 1, "\u{200b}")),
        Err(CommandError::Invalid(_))
    ));
    assert_eq!(
        w.run(say("alice", 1, "ok\u{0}\u{202d}")),
        ["message #1 Agent: ok [alice,customer]"]
    );
}

#[test]
fn idle_reasons_come_from_the_tenant_list() {
    let mut w = World::new(&[("alice", 5)]);
    w.available(&["alice"]);
    let idle = |reason: &str| Command::SetIdle {
        agent: "alice".into(),
        reason: reason.into(),
    };
    assert!(matches!(
        w.try_run(idle("Gone fishing")),
        Err(CommandError::Invalid(_))
    ));
    let reason = |w: &World| {
        w.engine
            .agent("alice")
            .and_then(|a| a.state.reason().map(str::to_owned))
    };
    assert_eq!(w.run(idle("Lunch")), ["agent_state alice idle [alice]"]);
    assert_eq!(reason(&w).as_deref(), Some("Lunch"));
    // The default reason is always allowed (no reason given).
    assert_eq!(w.run(idle(" ")), ["agent_state alice idle [alice]"]);
    assert_eq!(reason(&w).as_deref(), Some("Not ready"));
}

#[test]
fn a_channels_cad_never_replaces_the_servers_own_variables() {
    let mut w = World::new(&[("alice", 5)]);
    let mut cmd = customer_msg("v1", "hello");
    if let Command::CustomerMessage(m) = &mut cmd {
        for k in switchboard_core::model::SERVER_CAD_KEYS {
            m.cad.insert(k.to_string(), "forged".into());
        }
        m.cad.insert("language".into(), "fr".into());
    }
    w.run(cmd);
    let c = w.engine.conversation(1).expect("conversation");
    assert_eq!(c.cad["contact_origin"], "webchat");
    assert_eq!(c.cad["entry_point"], "Web site");
    assert_eq!(c.cad["customer_name"], "Customer v1");
    assert_eq!(c.cad["language"], "fr", "other variables are kept");
}
