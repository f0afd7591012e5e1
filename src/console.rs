//! The supervisors' console feed of one tenant: told of every committed
//! batch of events (after the journal commit, in journal order), it keeps
//! what the engine does not (since when each agent is in its state, since
//! when each conversation is handled), the report figures
//! ([`crate::reports::Reports`]), and a change counter the console sockets
//! wait on.
//!
//! **Invariant:** supervisors cost the engine one short read per tenant at
//! most every [`COALESCE_MS`], however many sockets are open: the overview
//! is built once per change window and shared ([`Feed::overview`]).

use crate::clock::rfc3339;
use crate::reports::Reports;
use crate::tenant::Tenant;
use axum::extract::ws::Utf8Bytes;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use switchboard_core::model::{AgentState, ConversationId, ConversationState, Millis};
use switchboard_core::Event;
use tokio::sync::watch;

/// Smallest interval between two frames of a console socket (at most
/// about 10 frames a second).
pub const COALESCE_MS: u64 = 100;

pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Each critical section is a single update: a poisoned lock is safe.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// One overview built for a tenant.
#[derive(Debug)]
struct Built {
    version: u64,
    frame: Utf8Bytes,
    at: std::time::Instant,
}

/// What a console socket sends: the whole `overview` frame (shared, not
/// copied per socket: it is the size of the tenant), and whether it
/// reflects the latest change.
#[derive(Debug)]
pub struct Overview {
    pub frame: Utf8Bytes,
    pub fresh: bool,
}

/// See the module documentation.
#[derive(Debug)]
pub struct Feed {
    changes: watch::Sender<u64>,
    /// Since when each agent is in its current state.
    agent_since: Mutex<HashMap<String, Millis>>,
    /// Since when each conversation is handled by its agent.
    handled_since: Mutex<HashMap<ConversationId, Millis>>,
    /// The last overview built, with the change count it reflects and
    /// when it was built.
    cache: Mutex<Option<Built>>,
    pub reports: Mutex<Reports>,
}

impl Default for Feed {
    fn default() -> Self {
        Feed {
            changes: watch::Sender::new(0),
            agent_since: Mutex::default(),
            handled_since: Mutex::default(),
            cache: Mutex::default(),
            reports: Mutex::default(),
        }
    }
}

impl Feed {
    /// Events committed at `now` (recovery replays the journal through it
    /// too, so the figures survive restarts).
    pub fn record(&self, events: &[Event], now: Millis) {
        {
            let mut since = lock(&self.agent_since);
            let mut handled = lock(&self.handled_since);
            for ev in events {
                match ev {
                    Event::AgentState { agent, at, .. } => {
                        since.insert(agent.clone(), *at);
                    }
                    Event::ConversationStarted {
                        conversation, at, ..
                    } => {
                        handled.insert(*conversation, *at);
                    }
                    Event::ConversationArchived { conversation, .. } => {
                        handled.remove(conversation);
                    }
                    _ => {}
                }
            }
        }
        lock(&self.reports).record(events, now);
        self.changes.send_modify(|n| *n += 1);
    }

    /// A receiver woken on every recorded batch.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// The overview, built at most once per [`COALESCE_MS`] for the whole
    /// tenant and shared by every socket: a socket woken by a change made
    /// less than that after the last build gets that build, and `fresh`
    /// says whether it reflects the latest change (if not, the socket asks
    /// again once its own coalescing pause is over). Real time, not the
    /// tenant's clock: this paces work, it decides nothing.
    pub fn overview(&self, tenant: &Tenant) -> Overview {
        let version = *self.changes.borrow();
        let mut cache = lock(&self.cache);
        if let Some(b) = cache.as_ref() {
            let young = b.at.elapsed() < std::time::Duration::from_millis(COALESCE_MS);
            if b.version == version || young {
                return Overview {
                    frame: b.frame.clone(),
                    fresh: b.version == version,
                };
            }
        }
        let frame = Utf8Bytes::from(
            json!({"type": "overview", "overview": self.build(tenant)}).to_string(),
        );
        *cache = Some(Built {
            version,
            frame: frame.clone(),
            at: std::time::Instant::now(),
        });
        Overview { frame, fresh: true }
    }

    /// `{queues, agents, conversations, at}` (CONTRACT.md, "Added for the
    /// second round"): one read of the engine.
    pub fn build(&self, tenant: &Tenant) -> Value {
        let now = tenant.now();
        let agent_since = lock(&self.agent_since).clone();
        let handled_since = lock(&self.handled_since).clone();
        tenant.read(|e| {
            let mut queues = Vec::new();
            for q in e.queues() {
                let mut waiting = 0u64;
                let mut offered = 0u64;
                let mut oldest: Option<Millis> = None;
                for c in e.conversations().filter(|c| c.queue == q.id) {
                    match c.state {
                        ConversationState::Queued => {
                            waiting += 1;
                            oldest = Some(oldest.map_or(c.queued_at, |o| o.min(c.queued_at)));
                        }
                        ConversationState::Offered => offered += 1,
                        _ => {}
                    }
                }
                let (mut available, mut busy) = (0u64, 0u64);
                for a in e.agents().filter(|a| a.config.queues.contains(&q.id)) {
                    if a.can_take_more() {
                        available += 1;
                    } else if a.load() > 0 && a.state != AgentState::LoggedOut {
                        busy += 1;
                    }
                }
                queues.push(json!({
                    "id": q.id,
                    "name": q.name,
                    "waiting": waiting,
                    "longest_wait_ms": oldest.map_or(0, |o| now.saturating_sub(o)),
                    "offered": offered,
                    "agents_available": available,
                    "agents_busy": busy,
                }));
            }
            let agents: Vec<Value> = e
                .agents()
                .map(|a| {
                    json!({
                        "id": a.config.id,
                        "name": a.config.name,
                        "state": a.state.name(),
                        "reason": a.state.reason(),
                        "since": agent_since.get(&a.config.id).map(|t| rfc3339(*t)),
                        "load": a.load(),
                        "capacity": a.config.capacity,
                        "conversations": a.conversations.iter().collect::<Vec<_>>(),
                    })
                })
                .collect();
            let conversations: Vec<Value> = e
                .conversations()
                .filter(|c| {
                    !matches!(
                        c.state,
                        ConversationState::WrappedUp | ConversationState::Dropped
                    )
                })
                .map(|c| {
                    let since = match c.state {
                        ConversationState::Queued | ConversationState::Offered => c.queued_at,
                        _ => handled_since.get(&c.id).copied().unwrap_or(c.received_at),
                    };
                    json!({
                        "id": c.id,
                        "state": c.state.name(),
                        "queue": c.queue,
                        "agent": c.owner.as_ref().or(c.offer.as_ref().map(|o| &o.agent)),
                        "since": rfc3339(since),
                        "customer_name": c.customer_name,
                        "channel": c.channel,
                    })
                })
                .collect();
            json!({
                "at": rfc3339(now),
                "queues": queues,
                "agents": agents,
                "conversations": conversations,
            })
        })
    }
}
