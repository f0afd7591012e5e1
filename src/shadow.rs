//! Shadow routing: a candidate policy asked, beside the live one, every
//! routing decision the live policy makes, with the same inputs, to see
//! where it would differ before it goes live
//! (`PUT|GET|DELETE /admin/tenants/{tenant}/shadow`, docs/lua.md).
//!
//! The live path only copies the inputs (agents' names and skills are
//! shared, not copied) and hands them to the shadow's own thread through
//! a bounded queue; when the thread falls behind, the decision is dropped
//! and counted, never waited for. The candidate runs in its own Lua state
//! (or plugin instance) with its own instruction and memory budgets.
//!
//! **Invariant:** a shadow has no effect on live decisions: its answer is
//! only compared and counted (`tests/shadow.rs`,
//! `a_shadow_policy_never_changes_who_gets_the_conversation`).

use crate::generation::RoutingCandidate;
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, MutexGuard};
use switchboard_core::model::{AgentConfig, Cad, ConversationId, Millis};
use switchboard_core::routing::{Candidate, ConversationView, RouteDecision, RoutingPolicy};

/// Decisions waiting for the shadow's thread; past it they are dropped.
pub const QUEUE: usize = 1024;
/// Disagreements kept (the latest).
pub const KEPT_DISAGREEMENTS: usize = 100;

/// What never changes about an agent while the tenant runs (its
/// configuration), shared with the shadow's thread instead of copied.
#[derive(Debug, Clone)]
struct AgentInfo {
    id: Arc<str>,
    name: Arc<str>,
    skills: Arc<[String]>,
}

impl AgentInfo {
    fn new(id: &str, name: &str, skills: &[String]) -> AgentInfo {
        AgentInfo {
            id: id.into(),
            name: name.into(),
            skills: skills.into(),
        }
    }
}

/// A candidate agent as the live policy saw it.
#[derive(Debug)]
struct CandidateCopy {
    agent: AgentInfo,
    /// The live candidate's configuration stamp: the texts in `agent`
    /// are that configuration's.
    stamp: u64,
    load: u32,
    capacity: u32,
    idle_since: Millis,
}

/// The inputs of one live decision and what the live side made of it.
#[derive(Debug)]
struct Job {
    now: Millis,
    id: ConversationId,
    queue: String,
    channel: String,
    customer: String,
    customer_name: String,
    source: String,
    preview: String,
    cad: Cad,
    received_at: Millis,
    queued_at: Millis,
    last_agent: Option<String>,
    candidates: Vec<CandidateCopy>,
    /// The agent the live decision gave it to (`None`: kept queued).
    live: Option<String>,
}

/// A decision where the candidate chose otherwise (ids only: no customer
/// text).
#[derive(Debug, Clone, Serialize)]
pub struct Disagreement {
    pub conversation: ConversationId,
    pub at: String,
    pub live: Option<String>,
    pub shadow: Option<String>,
}

#[derive(Debug, Default)]
struct Counters {
    decisions: AtomicU64,
    agreed: AtomicU64,
    errors: AtomicU64,
    dropped: AtomicU64,
    disagreements: Mutex<VecDeque<Disagreement>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Each critical section is one push or one copy: nothing half-written.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A candidate policy running in shadow of a tenant's live one. Dropping
/// it stops its thread once the decisions already queued are answered.
#[derive(Debug)]
pub struct Shadow {
    routing: String,
    since: Millis,
    tx: SyncSender<Job>,
    counters: Arc<Counters>,
    agents: HashMap<String, AgentInfo>,
    candidate: Arc<RoutingCandidate>,
}

impl Shadow {
    /// Start asking `candidate` (loaded from `routing`) beside the live
    /// policy of a tenant with these agents.
    pub fn start(
        tenant: &str,
        routing: &str,
        since: Millis,
        candidate: RoutingCandidate,
        agents: &[AgentConfig],
    ) -> std::io::Result<Shadow> {
        let (tx, rx) = sync_channel(QUEUE);
        let counters = Arc::new(Counters::default());
        let candidate = Arc::new(candidate);
        let (c, p) = (counters.clone(), candidate.clone());
        std::thread::Builder::new()
            .name(format!("shadow-{tenant}"))
            .spawn(move || run(rx, &p, &c))?;
        Ok(Shadow {
            routing: routing.to_string(),
            since,
            tx,
            counters,
            agents: agents
                .iter()
                .map(|a| (a.id.clone(), AgentInfo::new(&a.id, &a.name, &a.skills)))
                .collect(),
            candidate,
        })
    }

    /// The live policy decided `decision` for `conversation` among
    /// `candidates` at `now`: hand the same inputs to the shadow's thread.
    /// Never blocks; a full queue drops the decision (counted).
    pub fn observe(
        &self,
        now: Millis,
        conversation: &ConversationView<'_>,
        candidates: &[Candidate<'_>],
        decision: &RouteDecision,
        generation: u64,
    ) {
        let live = decision
            .clone()
            .resolve(candidates, generation)
            .map(|(a, _)| a);
        let job = Job {
            now,
            id: conversation.id,
            queue: conversation.queue.to_string(),
            channel: conversation.channel.to_string(),
            customer: conversation.customer.to_string(),
            customer_name: conversation.customer_name.to_string(),
            source: conversation.source.to_string(),
            preview: conversation.preview.to_string(),
            cad: conversation.cad.clone(),
            received_at: conversation.received_at,
            queued_at: conversation.queued_at,
            last_agent: conversation.last_agent.map(str::to_string),
            candidates: candidates
                .iter()
                .map(|c| CandidateCopy {
                    agent: match self.agents.get(c.id) {
                        Some(a) if *a.name == *c.name && *a.skills == *c.skills => a.clone(),
                        _ => AgentInfo::new(c.id, c.name, c.skills),
                    },
                    stamp: c.stamp,
                    load: c.load,
                    capacity: c.capacity,
                    idle_since: c.idle_since,
                })
                .collect(),
            live,
        };
        match self.tx.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// `{routing, since, decisions, agreed, errors, dropped,
    /// disagreements: [{conversation, at, live, shadow}], last_errors}`.
    pub fn report(&self) -> Value {
        let c = &self.counters;
        let disagreements: Vec<Disagreement> = lock(&c.disagreements).iter().cloned().collect();
        let last_errors: Vec<Value> = self
            .candidate
            .report()
            .into_iter()
            .flat_map(|r| r.last_errors)
            .map(|f| {
                json!({"file": f.file, "line": f.line, "message": f.message, "kind": f.kind,
                       "at": crate::clock::rfc3339(f.at)})
            })
            .collect();
        json!({
            "routing": self.routing,
            "since": crate::clock::rfc3339(self.since),
            "decisions": c.decisions.load(Ordering::Relaxed),
            "agreed": c.agreed.load(Ordering::Relaxed),
            "errors": c.errors.load(Ordering::Relaxed),
            "dropped": c.dropped.load(Ordering::Relaxed),
            "disagreements": disagreements,
            "last_errors": last_errors,
        })
    }

    /// The short form shown with the tenant's scripts.
    pub fn summary(&self) -> Value {
        let c = &self.counters;
        json!({
            "routing": self.routing,
            "since": crate::clock::rfc3339(self.since),
            "decisions": c.decisions.load(Ordering::Relaxed),
            "agreed": c.agreed.load(Ordering::Relaxed),
            "errors": c.errors.load(Ordering::Relaxed),
            "dropped": c.dropped.load(Ordering::Relaxed),
        })
    }
}

/// The shadow's thread: ask the candidate each decision, compare, count.
fn run(rx: Receiver<Job>, candidate: &RoutingCandidate, counters: &Counters) {
    while let Ok(job) = rx.recv() {
        let candidates: Vec<Candidate<'_>> = job
            .candidates
            .iter()
            .map(|c| Candidate {
                id: &c.agent.id,
                name: &c.agent.name,
                load: c.load,
                capacity: c.capacity,
                idle_since: c.idle_since,
                skills: &c.agent.skills,
                stamp: c.stamp,
            })
            .collect();
        let view = ConversationView {
            id: job.id,
            queue: &job.queue,
            channel: &job.channel,
            customer: &job.customer,
            customer_name: &job.customer_name,
            source: &job.source,
            preview: &job.preview,
            cad: &job.cad,
            received_at: job.received_at,
            queued_at: job.queued_at,
            last_agent: job.last_agent.as_deref(),
        };
        candidate.set_now(job.now);
        let decision = candidate.route(&view, &candidates);
        counters.decisions.fetch_add(1, Ordering::Relaxed);
        if decision == RouteDecision::Fallback {
            counters.errors.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        let shadow = decision
            .resolve(&candidates, candidate.generation())
            .map(|(a, _)| a);
        if shadow == job.live {
            counters.agreed.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        let mut kept = lock(&counters.disagreements);
        if kept.len() >= KEPT_DISAGREEMENTS {
            kept.pop_front();
        }
        kept.push_back(Disagreement {
            conversation: job.id,
            at: crate::clock::rfc3339(job.now),
            live: job.live,
            shadow,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use switchboard_core::lua::{Generation, Limits, ScriptFiles, ScriptSpec};
    use switchboard_core::Masker;

    fn candidate(source: &str) -> RoutingCandidate {
        let spec = ScriptSpec {
            tenant: "t".into(),
            files: ScriptFiles::from_pairs([("routing/c.lua", source)]),
            routing: Some("routing/c.lua".into()),
            wrapup: None,
            wrapup_queues: BTreeMap::new(),
            responses: None,
            channels: BTreeMap::new(),
            queues: vec!["support".into()],
            masker: Masker::default(),
            // Small, so that the queue drains soon after the test.
            limits: Limits {
                instructions_per_call: 200_000,
                ..Limits::default()
            },
        };
        RoutingCandidate::Lua(Generation::load(&spec, 1, 0).expect("candidate loads"))
    }

    #[test]
    fn a_shadow_that_falls_behind_drops_and_counts_instead_of_waiting() {
        // Every call spends its whole instruction budget: far slower than
        // the decisions handed to it.
        let slow = candidate("return { route = function() while true do end end }");
        let agents = [AgentConfig {
            id: "a".into(),
            name: "A".into(),
            capacity: 1,
            queues: vec!["support".into()],
            skills: vec![],
        }];
        let shadow = Shadow::start("t", "routing/c.lua", 0, slow, &agents).expect("starts");
        let cad = Cad::new();
        let view = ConversationView {
            id: 1,
            queue: "support",
            channel: "webchat",
            customer: "c",
            customer_name: "C",
            source: "Web chat",
            preview: "hi",
            cad: &cad,
            received_at: 0,
            queued_at: 0,
            last_agent: None,
        };
        let skills: Vec<String> = Vec::new();
        let candidates = [Candidate {
            id: "a",
            name: "A",
            load: 0,
            capacity: 1,
            idle_since: 0,
            skills: &skills,
            stamp: 0,
        }];
        let decision = RouteDecision::Agent("a".into());
        for _ in 0..(QUEUE + 100) {
            shadow.observe(0, &view, &candidates, &decision, 1);
        }
        // At most the queue and the one being answered were taken.
        let r = shadow.report();
        assert!(r["dropped"].as_u64().is_some_and(|d| d >= 99), "{r}");
    }
}
