//! What a replay of the journal asks a policy is exactly what the live
//! policy was asked: random command sequences run live with a policy that
//! records its inputs (conversation view and candidates), then the
//! journal is applied to a fresh engine and, before each offer made from a
//! queue, `Engine::with_routing_inputs` must give the very same inputs,
//! and the live answer resolved by `RouteDecision::resolve` the very same
//! agent (the ground of `switchboard scripts replay` and shadow routing).

mod common;
use common::*;
use proptest::prelude::*;
use std::sync::Mutex;
use switchboard_core::command::Command;
use switchboard_core::model::{OfferKind, TransferTarget};
use switchboard_core::routing::{Candidate, ConversationView, RouteDecision, RoutingPolicy};
use switchboard_core::{Event, Extensions};

const AGENTS: [&str; 3] = ["alice", "bob", "carol"];

fn render(v: &ConversationView<'_>, candidates: &[Candidate<'_>]) -> String {
    let mut s = format!(
        "{} {} {} {} {} {} {} {:?} {} {} {:?} |",
        v.id,
        v.queue,
        v.channel,
        v.customer,
        v.customer_name,
        v.source,
        v.preview,
        v.cad,
        v.received_at,
        v.queued_at,
        v.last_agent
    );
    for c in candidates {
        s.push_str(&format!(
            " {}/{}/{}/{}/{}/{:?}",
            c.id, c.name, c.load, c.capacity, c.idle_since, c.skills
        ));
    }
    s
}

/// Decides from its inputs only, in three ways, and records what it saw.
#[derive(Default)]
struct Recording {
    asked: Mutex<Vec<(String, Option<String>)>>,
}

impl RoutingPolicy for Recording {
    fn route(&self, v: &ConversationView<'_>, candidates: &[Candidate<'_>]) -> RouteDecision {
        let d = match v.id % 3 {
            0 if candidates.len() < 3 => RouteDecision::KeepQueued,
            1 => candidates
                .iter()
                .max_by_key(|c| (c.load, c.id))
                .map_or(RouteDecision::Fallback, |c| {
                    RouteDecision::Agent(c.id.into())
                }),
            _ => RouteDecision::Ranked(candidates.iter().rev().map(|c| c.id.to_string()).collect()),
        };
        let resolved = d.clone().resolve(candidates, 0).map(|(a, _)| a);
        if let Ok(mut a) = self.asked.lock() {
            a.push((render(v, candidates), resolved));
        }
        d
    }
}

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
    let conv = 1u64..8;
    prop_oneof![
        3 => (0u8..6).prop_map(|c| Step::Cmd(customer_msg(&format!("v{c}"), "hello 4111 1111 1111 1111"))),
        1 => agent_name().prop_map(|agent| Step::Cmd(Command::Login { agent })),
        2 => agent_name().prop_map(|agent| Step::Cmd(Command::SetAvailable { agent })),
        1 => agent_name().prop_map(|agent| Step::Cmd(Command::SetIdle { agent, reason: "Break".into() })),
        2 => (agent_name(), conv.clone()).prop_map(|(a, c)| Step::Cmd(accept(&a, c))),
        1 => (agent_name(), conv.clone()).prop_map(|(a, c)| Step::Cmd(end(&a, c))),
        1 => (agent_name(), conv.clone()).prop_map(|(a, c)| Step::Cmd(wrapup(&a, c, "resolved"))),
        1 => (agent_name(), conv.clone(), prop::sample::select(vec!["support", "billing"]))
            .prop_map(|(a, c, q)| Step::Cmd(Command::Transfer {
                agent: a,
                conversation: c,
                to: TransferTarget::Queue(q.into())
            })),
        1 => (1u64..40_000).prop_map(Step::Wait),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    #[test]
    fn a_replay_asks_exactly_what_the_live_policy_was_asked(steps in prop::collection::vec(step(), 1..80)) {
        let agents = [("alice", 2), ("bob", 1), ("carol", 3)];
        let mut w = World::new(&agents);
        let policy = Recording::default();
        let builtin = Extensions::builtin();
        let ext = Extensions { routing: &policy, ..builtin };
        let mut journal: Vec<Event> = Vec::new();
        for s in steps {
            let out = match s {
                Step::Cmd(c) => w.engine.handle(c, w.now, &ext).ok(),
                Step::Wait(ms) => { w.now += ms; Some(w.engine.tick(w.now, &ext)) }
            };
            if let Some(out) = out {
                journal.extend(out.emitted.into_iter().map(|e| e.event));
            }
        }
        // The live decisions that made an offer, in order.
        let live: Vec<(String, String)> = policy
            .asked
            .lock()
            .map(|a| a.iter().filter_map(|(r, d)| d.clone().map(|d| (r.clone(), d))).collect())
            .unwrap_or_default();
        let mut fresh = World::new(&agents).engine;
        let mut replayed = Vec::new();
        for e in &journal {
            if let Event::Offer { conversation, agent, kind: OfferKind::Queue, .. } = e {
                let inputs = fresh.with_routing_inputs(*conversation, render);
                prop_assert!(inputs.is_some(), "no inputs for conversation {}", conversation);
                replayed.push((inputs.unwrap_or_default(), agent.clone()));
            }
            fresh.apply(e);
        }
        prop_assert_eq!(replayed, live);
    }
}
