//! Fan-out of JSON frames to the sockets of agents, web chat visitors and
//! supervisors monitoring a conversation, and agents' presence (since when
//! each has had no socket).

use super::lock;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use switchboard_core::model::{ConversationId, Millis};
use tokio::sync::mpsc;

/// Messages queued for one subscriber before it counts as too slow.
const SUBSCRIBER_BUFFER: usize = 1024;

/// A live connection that receives JSON text frames.
#[derive(Debug)]
struct Subscriber {
    id: u64,
    /// The agent session the socket was opened with (none for visitors).
    session: Option<String>,
    tx: mpsc::Sender<Arc<str>>,
}

/// Fan-out of JSON frames to the connections of agents and visitors.
#[derive(Debug, Default)]
pub struct Hub {
    next_id: AtomicU64,
    agents: Mutex<HashMap<String, Vec<Subscriber>>>,
    visitors: Mutex<HashMap<String, Vec<Subscriber>>>,
    /// Since when each agent with no open socket has had none (set when
    /// its last socket closes or when it logs in without one).
    agents_away: Mutex<HashMap<String, Millis>>,
    /// What supervisors' consoles read (`crate::console`).
    pub console: crate::console::Feed,
    /// Supervisors' consoles monitoring a conversation, by conversation id.
    monitors: Mutex<HashMap<String, Vec<Subscriber>>>,
}

/// A subscription; dropping it does not unsubscribe (call `Hub::leave_*`).
#[derive(Debug)]
pub struct Subscription {
    pub id: u64,
    pub rx: mpsc::Receiver<Arc<str>>,
}

impl Hub {
    fn join(
        map: &Mutex<HashMap<String, Vec<Subscriber>>>,
        key: &str,
        id: u64,
        session: Option<String>,
    ) -> Subscription {
        let (tx, rx) = mpsc::channel(SUBSCRIBER_BUFFER);
        lock(map)
            .entry(key.to_string())
            .or_default()
            .push(Subscriber { id, session, tx });
        Subscription { id, rx }
    }

    /// Remove a subscriber; true when it was the key's last.
    fn leave(map: &Mutex<HashMap<String, Vec<Subscriber>>>, key: &str, id: u64) -> bool {
        let mut m = lock(map);
        if let Some(subs) = m.get_mut(key) {
            subs.retain(|s| s.id != id);
            if subs.is_empty() {
                m.remove(key);
            }
        }
        !m.contains_key(key)
    }

    fn send(map: &Mutex<HashMap<String, Vec<Subscriber>>>, key: &str, frame: &Arc<str>) {
        let mut m = lock(map);
        if let Some(subs) = m.get_mut(key) {
            // A full buffer means the client stopped reading: cut it off; it
            // reconnects and reloads its state.
            subs.retain(|s| s.tx.try_send(frame.clone()).is_ok());
        }
    }

    /// A socket of `agent` opened with session `session`.
    pub fn join_agent(&self, agent: &str, session: &str) -> Subscription {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let sub = Self::join(&self.agents, agent, id, Some(session.to_string()));
        lock(&self.agents_away).remove(agent);
        sub
    }

    /// A socket of `agent` closed at `now`.
    pub fn leave_agent(&self, agent: &str, id: u64, now: Millis) {
        if Self::leave(&self.agents, agent, id) {
            lock(&self.agents_away).insert(agent.to_string(), now);
        }
    }

    /// Close every socket opened with session `session` (its senders are
    /// dropped: each socket's pump ends and closes it).
    pub fn close_session(&self, agent: &str, session: &str) {
        let mut m = lock(&self.agents);
        if let Some(subs) = m.get_mut(agent) {
            subs.retain(|s| s.session.as_deref() != Some(session));
        }
    }

    /// Start the agent's away time at `now` if it has no open socket (a
    /// login without a desktop connected yet).
    pub fn away_unless_connected(&self, agent: &str, now: Millis) {
        let connected = lock(&self.agents).contains_key(agent);
        if !connected {
            lock(&self.agents_away)
                .entry(agent.to_string())
                .or_insert(now);
        }
    }

    /// Since when the agent has had no open socket, if it has none.
    pub fn away_since(&self, agent: &str) -> Option<Millis> {
        lock(&self.agents_away).get(agent).copied()
    }

    /// The agents away, with since when.
    pub(super) fn away(&self) -> Vec<(String, Millis)> {
        lock(&self.agents_away)
            .iter()
            .map(|(a, t)| (a.clone(), *t))
            .collect()
    }

    pub(super) fn forget_away(&self, agent: &str) {
        lock(&self.agents_away).remove(agent);
    }

    pub fn join_visitor(&self, visitor: &str) -> Subscription {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        Self::join(&self.visitors, visitor, id, None)
    }

    pub fn leave_visitor(&self, visitor: &str, id: u64) {
        Self::leave(&self.visitors, visitor, id);
    }

    pub fn to_agent(&self, agent: &str, frame: &Arc<str>) {
        Self::send(&self.agents, agent, frame)
    }

    pub fn to_visitor(&self, visitor: &str, frame: &Arc<str>) {
        Self::send(&self.visitors, visitor, frame)
    }

    /// A supervisor's console starts monitoring `conversation`: it gets
    /// the agents' frame of each of its events (but its creation, which
    /// holds the customer's raw id).
    pub fn join_monitor(&self, conversation: ConversationId) -> Subscription {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        Self::join(&self.monitors, &conversation.to_string(), id, None)
    }

    pub fn leave_monitor(&self, conversation: ConversationId, id: u64) {
        Self::leave(&self.monitors, &conversation.to_string(), id);
    }

    pub(super) fn is_monitored(&self, conversation: ConversationId) -> bool {
        let m = lock(&self.monitors);
        !m.is_empty() && m.contains_key(&conversation.to_string())
    }

    pub(super) fn to_monitors(&self, conversation: ConversationId, frame: &Arc<str>) {
        Self::send(&self.monitors, &conversation.to_string(), frame)
    }

    /// Close every socket (the tenant leaves this node).
    pub fn close_all(&self) {
        lock(&self.agents).clear();
        lock(&self.visitors).clear();
        lock(&self.monitors).clear();
    }

    /// Number of open agent connections.
    pub fn agent_connections(&self) -> usize {
        lock(&self.agents).values().map(Vec::len).sum()
    }
}
