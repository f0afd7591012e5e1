//! Random command sequences keep the engine's invariants: no agent above
//! capacity, a conversation offered to at most one agent at a time, every
//! conversation in exactly one consistent state, none lost; and replaying
//! the events gives the same state.

mod common;
use common::*;
use proptest::prelude::*;
use switchboard_core::command::Command;
use switchboard_core::model::{ConversationState, TransferTarget};
use switchboard_core::Extensions;

const AGENTS: [&str; 3] = ["alice", "bob", "carol"];

#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)] // test data: a few hundred steps, size does not matter
enum Step {
    Cmd(Command),
    Wait(u64),
}

fn agent_name() -> impl Strategy<Value = String> {
    prop::sample::select(AGENTS.to_vec()).prop_map(str::to_string)
}

fn step() -> impl Strategy<Value = Step> {
    let conv = 1u64..6;
    prop_oneof![
        (0u8..4).prop_map(|c| Step::Cmd(customer_msg(&format!("v{c}"), "hello"))),
        agent_name().prop_map(|agent| Step::Cmd(Command::Login { agent })),
        agent_name().prop_map(|agent| Step::Cmd(Command::SetAvailable { agent })),
        agent_name().prop_map(|agent| Step::Cmd(Command::SetIdle {
            agent,
            reason: "Break".into()
        })),
        agent_name().prop_map(|agent| Step::Cmd(Command::Logout { agent })),
        (agent_name(), conv.clone()).prop_map(|(a, c)| Step::Cmd(accept(&a, c))),
        (agent_name(), conv.clone()).prop_map(|(a, c)| Step::Cmd(say(&a, c, "ok"))),
        (agent_name(), conv.clone(), agent_name()).prop_map(|(a, c, b)| Step::Cmd(
            Command::Transfer {
                agent: a,
                conversation: c,
                to: TransferTarget::Agent(b)
            }
        )),
        (
            agent_name(),
            conv.clone(),
            prop::sample::select(vec!["support", "billing"])
        )
            .prop_map(|(a, c, q)| Step::Cmd(Command::Transfer {
                agent: a,
                conversation: c,
                to: TransferTarget::Queue(q.into())
            })),
        (agent_name(), conv.clone(), agent_name()).prop_map(|(a, c, b)| Step::Cmd(
            Command::InviteToConference {
                agent: a,
                conversation: c,
                invitee: b
            }
        )),
        (agent_name(), conv.clone()).prop_map(|(a, c)| Step::Cmd(Command::EndConference {
            agent: a,
            conversation: c
        })),
        (agent_name(), conv.clone()).prop_map(|(a, c)| Step::Cmd(Command::LeaveConference {
            agent: a,
            conversation: c
        })),
        (agent_name(), conv.clone()).prop_map(|(a, c)| Step::Cmd(end(&a, c))),
        (agent_name(), conv.clone()).prop_map(|(a, c)| Step::Cmd(wrapup(&a, c, "resolved"))),
        Just(Step::Cmd(Command::DeleteQueue {
            queue: "billing".into()
        })),
        agent_name().prop_map(|a| Step::Cmd(Command::AgentGone { agent: a })),
        (1u64..40_000).prop_map(Step::Wait),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]
    #[test]
    fn random_sequences_keep_every_invariant(steps in prop::collection::vec(step(), 1..80)) {
        let mut w = World::new(&[("alice", 2), ("bob", 1), ("carol", 3)]);
        let ext = Extensions::builtin();
        let mut journal = Vec::new();
        let mut created = 0usize;
        let mut archived = 0usize;
        for s in steps {
            let out = match s {
                Step::Cmd(c) => w.engine.handle(c, w.now, &ext).ok(),
                Step::Wait(ms) => { w.now += ms; Some(w.engine.tick(w.now, &ext)) }
            };
            if let Some(out) = out {
                created += out.events().filter(|e| e.type_name() == "conversation_created").count();
                archived += out.events().filter(|e| e.type_name() == "conversation_archived").count();
                journal.extend(out.emitted.into_iter().map(|e| e.event));
            }
            if let Err(e) = w.engine.check_invariants() {
                prop_assert!(false, "{}", e);
            }
            // Nothing is lost: every conversation ever created is still
            // known, or was archived after it closed.
            prop_assert_eq!(w.engine.conversations().count() + archived, created);
            // An offer expiring is always in the future or due now.
            if let Some(d) = w.engine.next_deadline() { prop_assert!(d + 40_000 > w.now); }
            for c in w.engine.conversations() {
                if let Some(closed) = c.closed_at {
                    prop_assert!(closed + ARCHIVE_MS > w.now, "conversation {} overdue for archiving", c.id);
                }
            }
        }
        // Each open conversation is queued, offered or held by an agent.
        for c in w.engine.conversations() {
            if c.state.is_open() {
                let held = c.owner.is_some() || c.offer.is_some()
                    || w.engine.waiting().any(|id| id == c.id);
                prop_assert!(held, "conversation {} lost in {}", c.id, c.state.name());
            }
            if c.state == ConversationState::Queued {
                prop_assert!(c.offer.is_none());
            }
        }
        // Replay gives the same state.
        let mut fresh = World::new(&[("alice", 2), ("bob", 1), ("carol", 3)]);
        for e in &journal { fresh.engine.apply(e); }
        let key = |e: &switchboard_core::Engine| (
            e.conversations().map(|c| (c.id, c.state, c.owner.clone(), c.guest.clone(), c.offer.clone())).collect::<Vec<_>>(),
            e.agents().map(|a| (a.state.clone(), a.load())).collect::<Vec<_>>(),
            e.waiting().collect::<Vec<_>>(),
            // Each customer's earlier conversations (what the agent's
            // history panel shows).
            e.conversations().map(|c| e.history_of(c.id)).collect::<Vec<_>>(),
        );
        prop_assert_eq!(key(&fresh.engine), key(&w.engine));
        // So does a snapshot, through JSON as it is stored.
        let json = serde_json::to_string(&w.engine.snapshot()).expect("snapshot serializes");
        let snap = serde_json::from_str(&json).expect("snapshot deserializes");
        let mut restored = World::new(&[("alice", 2), ("bob", 1), ("carol", 3)]);
        restored.engine.restore(snap);
        restored.engine.check_invariants().map_err(TestCaseError::fail)?;
        prop_assert_eq!(key(&restored.engine), key(&w.engine));
        prop_assert_eq!(restored.engine.next_deadline(), w.engine.next_deadline());
    }
}
