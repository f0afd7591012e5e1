//! Supervisors' actions on the engine, as exact event sequences on a
//! virtual clock: force an agent's state, move a waiting conversation,
//! close a stuck one. Each starts with its audit event.

mod common;
use common::*;
use switchboard_core::command::Command;
use switchboard_core::model::*;
use switchboard_core::CommandError;

fn set_state(agent: &str, state: &str, reason: Option<&str>) -> Command {
    Command::SupervisorSetState {
        supervisor: "sam".into(),
        agent: agent.into(),
        state: state.into(),
        reason: reason.map(str::to_owned),
    }
}

fn move_to(c: ConversationId, queue: &str) -> Command {
    Command::MoveConversation {
        supervisor: "sam".into(),
        conversation: c,
        queue: queue.into(),
    }
}

fn close(c: ConversationId, reason: &str) -> Command {
    Command::CloseConversation {
        supervisor: "sam".into(),
        conversation: c,
        reason: reason.into(),
    }
}

fn world() -> World {
    World::new(&[("alice", 1), ("bob", 1), ("sam", 1)])
}

#[test]
fn logging_out_an_agent_who_left_puts_its_offer_back_for_the_next_agent() {
    let mut w = world();
    w.available(&["alice", "bob"]);
    assert_eq!(w.customer("v1", "hello")[3], "offer #1 alice Queue [alice]");
    assert_eq!(
        w.run(set_state("alice", "logged_out", None)),
        [
            "supervisor_action sam set_state alice logged_out []",
            "offer_rescinded #1 alice agent_unavailable [alice]",
            "queued #1 support []",
            "agent_state alice logged_out [alice]",
            "offer #1 bob Queue [bob]",
        ]
    );
    let replayed = w.replay();
    assert_eq!(
        replayed.agent("alice").map(|a| a.state.clone()),
        Some(AgentState::LoggedOut)
    );
}

#[test]
fn a_supervisor_sets_an_agent_idle_with_a_reason_then_available() {
    let mut w = world();
    w.available(&["alice"]);
    assert_eq!(
        w.run(set_state("alice", "idle", Some("Break"))),
        [
            "supervisor_action sam set_state alice idle (Break) []",
            "agent_state alice idle [alice]",
        ]
    );
    assert_eq!(
        w.run(set_state("alice", "available", None)),
        [
            "supervisor_action sam set_state alice available []",
            "agent_state alice available [alice]",
        ]
    );
}

#[test]
fn forced_states_are_refused_when_they_do_not_fit() {
    let mut w = world();
    w.available(&["alice"]);
    w.customer("v1", "hello");
    w.run(accept("alice", 1));
    let busy = w.try_run(set_state("alice", "logged_out", None));
    assert!(matches!(busy, Err(CommandError::Conflict(_))), "{busy:?}");
    let bad = w.try_run(set_state("alice", "asleep", None));
    assert!(matches!(bad, Err(CommandError::Invalid(_))), "{bad:?}");
    let nobody = w.try_run(set_state("zoe", "available", None));
    assert_eq!(nobody, Err(CommandError::NotFound("agent")));
    let out = w.try_run(set_state("bob", "available", None));
    assert!(matches!(out, Err(CommandError::Conflict(_))), "{out:?}");
    let unknown_reason = w.try_run(set_state("alice", "idle", Some("Nap")));
    assert!(
        matches!(unknown_reason, Err(CommandError::Invalid(_))),
        "{unknown_reason:?}"
    );
}

#[test]
fn a_waiting_conversation_moves_and_keeps_its_place_by_arrival() {
    let mut w = world();
    w.customer("v1", "first");
    w.now += 10;
    w.customer("v2", "second");
    w.now += 10;
    assert_eq!(
        w.run(move_to(2, "billing")),
        [
            "supervisor_action sam move #2 billing []",
            "queued #2 billing []"
        ]
    );
    w.now += 10;
    assert_eq!(
        w.run(move_to(1, "billing")),
        [
            "supervisor_action sam move #1 billing []",
            "queued #1 billing []"
        ]
    );
    assert_eq!(w.engine.queue_depth("billing"), 2);
    assert_eq!(w.engine.queue_depth("support"), 0);
    assert_eq!(w.engine.waiting().collect::<Vec<_>>(), [1, 2]);
    let c1 = w.engine.conversation(1).expect("conversation 1");
    assert_eq!(c1.queued_at, c1.received_at);
    let replayed = w.replay();
    assert_eq!(replayed.waiting().collect::<Vec<_>>(), [1, 2]);
    assert_eq!(replayed.queue_depth("billing"), 2);
}

#[test]
fn moving_an_offered_conversation_withdraws_the_offer_first() {
    let mut w = world();
    w.available(&["alice"]);
    w.customer("v1", "hello");
    assert_eq!(
        w.run(move_to(1, "billing")),
        [
            "supervisor_action sam move #1 billing []",
            "offer_rescinded #1 alice cancelled [alice]",
            "queued #1 billing []",
            "offer #1 alice Queue [alice]",
        ]
    );
}

#[test]
fn only_waiting_conversations_move_and_only_to_known_queues() {
    let mut w = world();
    w.available(&["alice"]);
    w.customer("v1", "hello");
    assert_eq!(
        w.try_run(move_to(1, "nowhere")),
        Err(CommandError::NotFound("queue"))
    );
    assert_eq!(
        w.try_run(move_to(9, "billing")),
        Err(CommandError::NotFound("conversation"))
    );
    w.run(accept("alice", 1));
    let active = w.try_run(move_to(1, "billing"));
    assert!(
        matches!(active, Err(CommandError::Conflict(_))),
        "{active:?}"
    );
    w.customer("v2", "hello");
    let same = w.try_run(move_to(2, "support"));
    assert!(matches!(same, Err(CommandError::Conflict(_))), "{same:?}");
}

#[test]
fn closing_an_active_conversation_tells_the_agent_why_and_asks_a_wrapup() {
    let mut w = world();
    w.available(&["alice"]);
    w.customer("v1", "hello");
    w.run(accept("alice", 1));
    assert_eq!(
        w.run(close(1, "Customer left hours ago")),
        [
            "supervisor_action sam close #1 (Customer left hours ago) []",
            "message #1 System: Closed by sam: Customer left hours ago [alice]",
            "conversation_ended #1 sam [alice,customer]",
            "wrapup_required #1 alice [alice]",
        ]
    );
    assert_eq!(
        w.run(wrapup("alice", 1, "resolved")),
        ["wrapup_submitted #1 alice resolved [alice]"]
    );
    let again = w.try_run(close(1, "again"));
    assert!(matches!(again, Err(CommandError::Conflict(_))), "{again:?}");
}

#[test]
fn closing_a_waiting_conversation_drops_it_and_the_reason_is_masked() {
    let mut w = world();
    w.available(&["alice"]);
    w.customer("v1", "hello");
    assert_eq!(
        w.run(close(1, "spam from 4111 1111 1111 1111")),
        [
            "supervisor_action sam close #1 (spam from ************1111) []",
            "offer_rescinded #1 alice ended [alice]",
            "conversation_dropped #1 closed_by_supervisor [customer]",
        ]
    );
    let blank = w.try_run(close(1, " \u{200b} "));
    assert!(matches!(blank, Err(CommandError::Invalid(_))), "{blank:?}");
}

#[test]
fn the_audit_trail_survives_the_journal_and_replay() {
    let mut w = world();
    w.available(&["alice"]);
    w.customer("v1", "hello");
    w.run(accept("alice", 1));
    w.run(close(1, "stuck"));
    w.run(wrapup("alice", 1, "resolved"));
    w.run(set_state("alice", "logged_out", None));
    let audits: Vec<serde_json::Value> = w
        .journal
        .iter()
        .map(|e| serde_json::to_value(e).expect("event to JSON"))
        .filter(|v| v["type"] == "supervisor_action")
        .collect();
    assert_eq!(
        audits,
        [
            serde_json::json!({"type": "supervisor_action", "supervisor": "sam",
                "action": "close", "conversation": 1, "reason": "stuck", "at": w.now}),
            serde_json::json!({"type": "supervisor_action", "supervisor": "sam",
                "action": "set_state", "agent": "alice", "state": "logged_out", "at": w.now}),
        ]
    );
    // Read back from JSON, the journal rebuilds the same state.
    let text: Vec<String> = w
        .journal
        .iter()
        .map(|e| serde_json::to_string(e).expect("encode"))
        .collect();
    let back: Vec<switchboard_core::Event> = text
        .iter()
        .map(|t| serde_json::from_str(t).expect("decode"))
        .collect();
    assert_eq!(back, w.journal);
    let replayed = w.replay();
    assert_eq!(
        replayed.agent("alice").map(|a| a.state.clone()),
        Some(AgentState::LoggedOut)
    );
    assert_eq!(
        replayed.conversation(1).map(|c| c.state),
        Some(ConversationState::WrappedUp)
    );
}

fn join(c: ConversationId) -> Command {
    Command::JoinConversation {
        supervisor: "sam".into(),
        conversation: c,
    }
}

#[test]
fn a_supervisor_joins_an_active_conversation_writes_and_leaves() {
    let mut w = world();
    w.available(&["alice"]);
    w.customer("v1", "hello");
    // Not while it waits, nor logged out.
    assert!(matches!(w.try_run(join(1)), Err(CommandError::Conflict(_))));
    w.run(accept("alice", 1));
    assert!(
        matches!(w.try_run(join(1)), Err(CommandError::Conflict(_))),
        "sam is logged out"
    );
    w.run(Command::Login {
        agent: "sam".into(),
    });
    assert_eq!(
        w.run(join(1)),
        [
            "supervisor_action sam join #1 []",
            "conference_started #1 sam [alice,sam]",
            "message #1 System: sam joined the conversation [alice,sam]",
        ]
    );
    assert_eq!(
        w.run(say("sam", 1, "I am here to help")),
        ["message #1 Agent: I am here to help [alice,sam,customer]"]
    );
    // Only one third participant.
    assert!(matches!(w.try_run(join(1)), Err(CommandError::Conflict(_))));
    let left = w.run(Command::LeaveConference {
        agent: "sam".into(),
        conversation: 1,
    });
    assert_eq!(
        left,
        [
            "participant_left #1 sam [alice,sam]",
            "message #1 System: sam left the conversation [alice,sam]",
        ]
    );
    let c = w.replay();
    let c = c.conversation(1).expect("still open");
    assert_eq!(c.state, ConversationState::Active);
    assert_eq!(
        (c.owner.as_deref(), c.guest.as_deref()),
        (Some("alice"), None)
    );
}
