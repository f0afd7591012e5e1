//! Snapshots: the whole state of an engine at one point of its journal,
//! so recovery need not replay the journal from the start.

use super::{
    enqueue, AdminSnapshot, Conversations, CustomerMap, Engine, PastConversation, RecentIds,
};
use crate::model::{AgentId, AgentState, ConversationId, ConversationState, Millis, QueueId};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;

/// The whole state of an engine at one point of its journal, so recovery
/// need not replay the journal from the start. Indexes are rebuilt.
///
/// Conversations, channel message ids, last agents and histories are
/// shared with the engine (serialized as the values themselves): taking a
/// snapshot under the engine lock copies pointers, and the encoding, done
/// off the lock, reads values the engine no longer changes in place.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Snapshot {
    pub agents: Vec<AgentSnapshot>,
    pub conversations: Conversations,
    /// Encoded as `[channel, customer, agent]`, sorted.
    pub last_agent: CustomerMap<AgentId>,
    /// Customers' earlier conversations, encoded as `[channel, customer,
    /// [past…]]`, sorted; absent in older snapshots.
    #[serde(default)]
    pub history: CustomerMap<Arc<VecDeque<PastConversation>>>,
    pub deleted_queues: Vec<QueueId>,
    pub recent_external: RecentIds,
    pub next_id: ConversationId,
    /// The masking setting as the journal left it (admins change it with
    /// [`crate::Command::ChangeSettings`]); absent in older snapshots.
    #[serde(default)]
    pub mask: Option<bool>,
    /// What admins changed (agents, accounts, queues, idle reasons);
    /// absent in older snapshots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin: Option<AdminSnapshot>,
}

/// The run-time part of an agent (its configuration comes from config).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AgentSnapshot {
    pub id: AgentId,
    pub state: AgentState,
    pub idle_since: Millis,
    pub conversations: BTreeSet<ConversationId>,
    pub offers: BTreeSet<ConversationId>,
    pub wrapups: BTreeSet<ConversationId>,
}

impl Engine {
    /// Capture the state for a later [`Engine::restore`].
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            agents: self
                .agents
                .values()
                .map(|a| AgentSnapshot {
                    id: a.config.id.clone(),
                    state: a.state.clone(),
                    idle_since: a.idle_since,
                    conversations: a.conversations.clone(),
                    offers: a.offers.clone(),
                    wrapups: a.wrapups.clone(),
                })
                .collect(),
            conversations: self.conversations.clone(),
            last_agent: self.last_agent.clone(),
            history: self.history.clone(),
            deleted_queues: self.deleted_queues.iter().cloned().collect(),
            recent_external: self.recent_order.clone(),
            next_id: self.next_id,
            mask: Some(self.settings.mask),
            admin: self.admin_snapshot(),
        }
    }

    /// Put back the state of a snapshot into an engine built from the
    /// current configuration (new agents start logged out; agents no
    /// longer configured are forgotten).
    pub fn restore(&mut self, snap: Snapshot) {
        if let Some(mask) = snap.mask {
            self.settings.mask = mask;
        }
        if let Some(admin) = &snap.admin {
            self.restore_admin(admin);
        }
        for q in &snap.deleted_queues {
            self.queues.remove(q);
            self.deleted_queues.insert(q.clone());
        }
        for a in self.agents.values_mut() {
            a.config.queues.retain(|q| !snap.deleted_queues.contains(q));
        }
        for s in snap.agents {
            if let Some(a) = self.agents.get_mut(&s.id) {
                a.state = s.state;
                a.idle_since = s.idle_since;
                a.conversations = s.conversations;
                a.offers = s.offers;
                a.wrapups = s.wrapups;
            }
        }
        for c in snap.conversations.iter_shared() {
            let key = (c.channel.clone(), c.customer.clone());
            if c.state.is_open() {
                self.open_by_customer.insert(key, c.id);
            }
            if c.state == ConversationState::Queued {
                enqueue(&mut self.waiting, &c.queue, c.queued_at, c.id);
                self.dirty.insert(c.queue.clone());
            }
            for agent in c.concerned() {
                self.by_agent.entry(agent).or_default().insert(c.id);
            }
            if let Some(o) = &c.offer {
                self.deadlines.insert((o.expires_at, c.id));
            }
            if let Some(at) = c.closed_at {
                self.closing
                    .insert((at.saturating_add(self.settings.archive_after_ms), c.id));
            }
            self.conversations.insert(c.clone());
        }
        self.last_agent = snap.last_agent;
        self.history = snap.history;
        for (at, id) in snap.recent_external.iter() {
            self.recent_external.insert(id.clone(), *at);
            self.recent_order.push_back((*at, id.clone()));
        }
        self.next_id = self.next_id.max(snap.next_id);
    }
}
