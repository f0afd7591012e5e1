//! `Command::AgentGone`: what the server asks when an agent's session ended
//! or its desktop stayed away past the grace period.

mod common;
use common::*;
use switchboard_core::command::Command;
use switchboard_core::model::*;

fn gone(agent: &str) -> Command {
    Command::AgentGone {
        agent: agent.into(),
    }
}

#[test]
fn a_gone_agents_pending_offer_goes_at_once_to_the_next_agent() {
    let mut w = World::new(&[("alice", 5), ("bob", 5)]);
    w.available(&["alice"]);
    w.customer("v1", "hi");
    w.available(&["bob"]);
    assert_eq!(
        w.run(gone("alice")),
        [
            "offer_rescinded #1 alice agent_unavailable [alice]",
            "queued #1 support []",
            "agent_state alice logged_out [alice]",
            "offer #1 bob Queue [bob]",
        ]
    );
    assert_eq!(
        w.engine.agent("alice").map(|a| a.state.clone()),
        Some(AgentState::LoggedOut)
    );
    // Asking again changes nothing.
    assert_eq!(w.run(gone("alice")), Vec::<String>::new());
}

#[test]
fn a_gone_agent_with_a_conversation_keeps_it_but_gets_nothing_new() {
    let mut w = World::new(&[("alice", 5)]);
    w.available(&["alice"]);
    w.customer("v1", "hi");
    w.run(accept("alice", 1));
    assert_eq!(w.run(gone("alice")), ["agent_state alice idle [alice]"]);
    assert_eq!(
        w.engine
            .agent("alice")
            .and_then(|a| a.state.reason().map(String::from)),
        Some(DISCONNECTED_REASON.to_string())
    );
    assert_eq!(w.run(gone("alice")), Vec::<String>::new());
    w.customer("v2", "anyone?");
    let c = w.engine.conversation(2).expect("conversation 2");
    assert_eq!(c.state, ConversationState::Queued, "nothing new is offered");
    assert_eq!(
        w.engine.conversation(1).and_then(|c| c.owner.clone()),
        Some("alice".to_string())
    );
}
