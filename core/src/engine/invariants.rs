//! The engine's invariants, checked by property tests and recovery.

use super::Engine;
use crate::model::{AgentId, ConversationId, ConversationState};
use std::collections::{BTreeSet, HashMap};

impl Engine {
    /// Check the engine's invariants; `Err` names the first one broken.
    /// Used by property tests and by recovery checks.
    pub fn check_invariants(&self) -> Result<(), String> {
        for a in self.agents.values() {
            if a.load() > a.config.capacity {
                return Err(format!(
                    "agent {} over capacity: {} > {}",
                    a.config.id,
                    a.load(),
                    a.config.capacity
                ));
            }
            for id in &a.offers {
                let offered_here = self
                    .conversations
                    .get(id)
                    .and_then(|c| c.offer.as_ref())
                    .is_some_and(|o| o.agent == a.config.id);
                if !offered_here {
                    return Err(format!("agent {} holds a stale offer of {id}", a.config.id));
                }
            }
        }
        for c in self.conversations.values() {
            let holders = self
                .agents
                .values()
                .filter(|a| a.offers.contains(&c.id))
                .count();
            if holders > 1 {
                return Err(format!("conversation {} offered to {holders} agents", c.id));
            }
            if c.offer.is_some() && holders != 1 {
                return Err(format!("conversation {} offer not held by its agent", c.id));
            }
            let queued = self
                .waiting
                .get(&c.queue)
                .is_some_and(|w| w.contains(&(c.queued_at, c.id)));
            if queued != (c.state == ConversationState::Queued) {
                return Err(format!(
                    "conversation {} is {} but queued={queued}",
                    c.id,
                    c.state.name()
                ));
            }
            let ok = match c.state {
                ConversationState::Queued => c.owner.is_none() && c.offer.is_none(),
                ConversationState::Offered => c.owner.is_none() && c.offer.is_some(),
                ConversationState::Active => c.owner.is_some() && c.guest.is_none(),
                ConversationState::ConferenceRequested => {
                    c.owner.is_some() && c.offer.is_some() && c.guest.is_none()
                }
                ConversationState::Conference => c.owner.is_some() && c.guest.is_some(),
                ConversationState::Interrupted => c.owner.is_some(),
                ConversationState::Ended
                | ConversationState::WrappedUp
                | ConversationState::Dropped => c.offer.is_none(),
            };
            if !ok {
                return Err(format!(
                    "conversation {} inconsistent in state {}",
                    c.id,
                    c.state.name()
                ));
            }
            for p in c.owner.iter().chain(c.guest.iter()) {
                let holds = self
                    .agents
                    .get(p)
                    .is_some_and(|a| a.conversations.contains(&c.id));
                let live = !matches!(
                    c.state,
                    ConversationState::Ended | ConversationState::WrappedUp
                );
                if live && !holds {
                    return Err(format!("conversation {} lost by agent {p}", c.id));
                }
            }
        }
        let entries: usize = self.waiting.values().map(BTreeSet::len).sum();
        let queued = self
            .conversations
            .values()
            .filter(|c| c.state == ConversationState::Queued)
            .count();
        if entries != queued {
            return Err(format!(
                "{entries} waiting entries for {queued} queued conversations"
            ));
        }
        // The agent index is exactly what a scan of every conversation finds.
        let mut scanned: HashMap<AgentId, BTreeSet<ConversationId>> = HashMap::new();
        for c in self.conversations.values() {
            for a in c.concerned() {
                scanned.entry(a).or_default().insert(c.id);
            }
        }
        if scanned != self.by_agent {
            return Err(format!(
                "agent index differs from a scan: index {:?}, scan {scanned:?}",
                self.by_agent
            ));
        }
        // Dispatch skips only queues with nobody waiting or nobody free.
        for q in self.waiting.keys() {
            if self.unsettled(q) && !self.dirty.contains(q) {
                return Err(format!(
                    "queue {q} has someone free and someone waiting but is not marked"
                ));
            }
        }
        Ok(())
    }
}
