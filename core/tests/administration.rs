//! A tenant administered through the engine: agents, accounts, queues and
//! idle reasons changed by commands whose events are the journal. Each
//! change is an exact event sequence carrying who did it, and a replay of
//! the journal or a restore of a snapshot gives the same state.

mod common;
use common::*;
use switchboard_core::command::{AgentProfile, Command};
use switchboard_core::engine::Engine;
use switchboard_core::model::*;
use switchboard_core::CommandError;

const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaA";

fn profile(name: &str, capacity: u32, queues: &[&str], role: Role) -> AgentProfile {
    AgentProfile {
        name: name.into(),
        capacity,
        queues: queues.iter().map(|q| q.to_string()).collect(),
        skills: vec!["french".into()],
        role,
    }
}

fn create(agent: &str, p: AgentProfile) -> Command {
    Command::CreateAgent {
        by: "ada".into(),
        agent: agent.into(),
        profile: p,
        password_hash: HASH.into(),
    }
}

fn enabled(agent: &str, enabled: bool) -> Command {
    Command::SetAgentEnabled {
        by: "platform".into(),
        agent: agent.into(),
        enabled,
    }
}

/// What administration changes, as one comparable value.
fn admin_state(e: &Engine) -> String {
    let agents: Vec<String> = e
        .agents()
        .map(|a| {
            format!(
                "{} {} cap={} q={:?} s={:?} role={} hash={:?} disabled={} state={}",
                a.config.id,
                a.config.name,
                a.config.capacity,
                a.config.queues,
                a.config.skills,
                e.role_of(&a.config.id).name(),
                e.password_hash(&a.config.id),
                e.is_disabled(&a.config.id),
                a.state.name()
            )
        })
        .collect();
    let queues: Vec<String> = e
        .queues()
        .map(|q| format!("{} {} {}", q.id, q.name, q.rona_timeout_ms))
        .collect();
    format!("{agents:#?}\n{queues:?}\n{:?}", e.idle_reasons())
}

fn same_after_replay_and_restore(w: &World) {
    let live = admin_state(&w.engine);
    assert_eq!(admin_state(&w.replay()), live, "replay differs");
    assert_eq!(admin_state(&w.restored()), live, "snapshot differs");
}

#[test]
fn an_admin_creates_an_agent_who_logs_in_and_gets_offers() {
    let mut w = World::new(&[("alice", 1)]);
    assert_eq!(
        w.run(create("carol", profile(" Carol ", 2, &["support"], Role::Agent))),
        [
            "agent_saved carol (Carol) cap=2 queues=support skills=french role=agent created=true by=ada []",
            &format!("password_set carol {HASH} by=ada []"),
        ]
    );
    assert_eq!(w.engine.password_hash("carol"), Some(HASH));
    w.available(&["carol"]);
    assert_eq!(w.customer("v1", "hello")[3], "offer #1 carol Queue [carol]");
    same_after_replay_and_restore(&w);
}

#[test]
fn editing_capacity_and_queues_takes_effect_at_once() {
    let mut w = World::new(&[("alice", 1)]);
    w.available(&["alice"]);
    w.customer("v1", "one");
    w.run(accept("alice", 1));
    // Full: the second customer waits.
    let t = w.customer("v2", "two");
    assert!(!t.iter().any(|l| l.starts_with("offer")), "{t:?}");
    let edit = Command::EditAgent {
        by: "ada".into(),
        agent: "alice".into(),
        profile: profile("Alice", 2, &["support", "billing"], Role::Supervisor),
    };
    assert_eq!(
        w.run(edit),
        [
            "agent_saved alice (Alice) cap=2 queues=support,billing skills=french role=supervisor created=false by=ada []",
            "offer #2 alice Queue [alice]",
        ]
    );
    assert_eq!(w.engine.role_of("alice"), Role::Supervisor);
    same_after_replay_and_restore(&w);
}

#[test]
fn disabling_logs_the_agent_out_and_puts_its_offer_back_and_refuses_its_login() {
    let mut w = World::new(&[("alice", 1), ("bob", 1)]);
    w.available(&["alice"]);
    assert_eq!(w.customer("v1", "hello")[3], "offer #1 alice Queue [alice]");
    assert_eq!(
        w.run(enabled("alice", false)),
        [
            "offer_rescinded #1 alice agent_unavailable [alice]",
            "queued #1 support []",
            "agent_state alice logged_out [alice]",
            "agent_enabled alice false by=platform []",
        ]
    );
    assert!(w.engine.is_disabled("alice"));
    let refused = w.try_run(Command::Login {
        agent: "alice".into(),
    });
    assert!(matches!(refused, Err(CommandError::Conflict(_))));
    same_after_replay_and_restore(&w);
    assert_eq!(
        w.run(enabled("alice", true)),
        ["agent_enabled alice true by=platform []"]
    );
    w.run(Command::Login {
        agent: "alice".into(),
    });
    same_after_replay_and_restore(&w);
}

#[test]
fn an_agent_holding_a_conversation_is_not_disabled() {
    let mut w = World::new(&[("alice", 1)]);
    w.available(&["alice"]);
    w.customer("v1", "hello");
    w.run(accept("alice", 1));
    let refused = w.try_run(enabled("alice", false));
    assert!(
        matches!(&refused, Err(CommandError::Conflict(m)) if m.contains("close them first")),
        "{refused:?}"
    );
    assert!(!w.engine.is_disabled("alice"));
}

#[test]
fn invalid_or_conflicting_changes_are_refused_and_change_nothing() {
    let mut w = World::new(&[("alice", 1)]);
    let before = admin_state(&w.engine);
    let cases = [
        create("alice", profile("A", 1, &[], Role::Agent)),
        create("bad id", profile("A", 1, &[], Role::Agent)),
        create("zed", profile("", 1, &[], Role::Agent)),
        create("zed", profile("Zed", 0, &[], Role::Agent)),
        create("zed", profile("Zed", 1, &["nowhere"], Role::Agent)),
        Command::CreateAgent {
            by: "ada".into(),
            agent: "zed".into(),
            profile: profile("Zed", 1, &[], Role::Agent),
            password_hash: "plain".into(),
        },
        Command::EditAgent {
            by: "ada".into(),
            agent: "nobody".into(),
            profile: profile("N", 1, &[], Role::Agent),
        },
        Command::SaveQueue {
            by: "ada".into(),
            queue: "support".into(),
            name: "Support".into(),
            rona_timeout_ms: 30_000,
            create: true,
        },
        Command::SaveQueue {
            by: "ada".into(),
            queue: "nowhere".into(),
            name: "N".into(),
            rona_timeout_ms: 30_000,
            create: false,
        },
        Command::SaveQueue {
            by: "ada".into(),
            queue: "fast".into(),
            name: "Fast".into(),
            rona_timeout_ms: 5,
            create: true,
        },
        Command::SetIdleReasons {
            by: "ada".into(),
            reasons: vec!["Lunch".into(), "Lunch".into()],
        },
    ];
    for c in cases {
        assert!(w.try_run(c.clone()).is_err(), "{c:?} was accepted");
    }
    assert!(w.journal.is_empty());
    assert_eq!(admin_state(&w.engine), before);
}

#[test]
fn a_new_queue_receives_transfers_and_an_edited_one_keeps_its_conversations() {
    let mut w = World::new(&[("alice", 1), ("bob", 1)]);
    assert_eq!(
        w.run(Command::SaveQueue {
            by: "ada".into(),
            queue: "vip".into(),
            name: "VIP".into(),
            rona_timeout_ms: 20_000,
            create: true,
        }),
        ["queue_saved vip (VIP) rona=20000 created=true by=ada []"]
    );
    w.run(Command::EditAgent {
        by: "ada".into(),
        agent: "bob".into(),
        profile: profile("Bob", 1, &["vip"], Role::Agent),
    });
    w.available(&["alice", "bob"]);
    w.customer("v1", "hello");
    w.run(accept("alice", 1));
    let t = w.run(Command::Transfer {
        agent: "alice".into(),
        conversation: 1,
        to: TransferTarget::Queue("vip".into()),
    });
    assert!(t.iter().any(|l| l == "offer #1 bob Queue [bob]"), "{t:?}");
    w.run(Command::SaveQueue {
        by: "ada".into(),
        queue: "vip".into(),
        name: "Very important".into(),
        rona_timeout_ms: 25_000,
        create: false,
    });
    assert_eq!(
        w.engine.queue("vip").map(|q| q.rona_timeout_ms),
        Some(25_000)
    );
    same_after_replay_and_restore(&w);
}

#[test]
fn idle_reasons_are_replaced_and_only_those_are_accepted() {
    let mut w = World::new(&[("alice", 1)]);
    assert_eq!(
        w.run(Command::SetIdleReasons {
            by: "ada".into(),
            reasons: vec![" Lunch ".into(), "Training".into()],
        }),
        ["idle_reasons_changed Lunch,Training by=ada []"]
    );
    w.run(Command::Login {
        agent: "alice".into(),
    });
    let refused = w.try_run(Command::SetIdle {
        agent: "alice".into(),
        reason: "Coffee".into(),
    });
    assert!(matches!(refused, Err(CommandError::Invalid(_))));
    w.run(Command::SetIdle {
        agent: "alice".into(),
        reason: "Lunch".into(),
    });
    same_after_replay_and_restore(&w);
}

#[test]
fn the_password_hash_is_in_no_event_an_agent_receives() {
    let mut w = World::new(&[("alice", 1)]);
    let out = w
        .try_run(create(
            "carol",
            profile("Carol", 1, &["support"], Role::Admin),
        ))
        .expect("created");
    for e in &out.emitted {
        assert!(e.audience.agents.is_empty() && !e.audience.customer);
    }
    let out = w
        .try_run(Command::SetPassword {
            by: "carol".into(),
            agent: "alice".into(),
            password_hash: HASH.into(),
        })
        .expect("set");
    assert!(out.emitted.iter().all(|e| e.audience.agents.is_empty()));
    let debug = format!("{:?} {:?}", w.engine.snapshot().admin, out.emitted);
    assert!(!debug.contains("aGFzaA"), "{debug}");
}

/// Routing policies are told when an agent's configuration was replaced:
/// an edit gives the agent's candidate a new stamp, and a decision in
/// between without an edit keeps it (`Candidate::stamp`).
#[test]
fn an_edited_agent_is_a_new_configuration_for_routing_policies() {
    let mut w = World::new(&[("alice", 2)]);
    w.available(&["alice"]);
    w.customer("v1", "one");
    let stamp = |w: &World| {
        w.engine
            .with_routing_inputs(1, |_, candidates| candidates[0].stamp)
            .unwrap_or(0)
    };
    let first = stamp(&w);
    assert_ne!(first, 0);
    assert_eq!(stamp(&w), first);
    w.run(Command::EditAgent {
        by: "ada".into(),
        agent: "alice".into(),
        profile: profile("Alice", 3, &["support"], Role::Agent),
    });
    let edited = stamp(&w);
    assert_ne!(edited, 0);
    assert_ne!(edited, first);
}
