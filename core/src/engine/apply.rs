//! Applying events: the only place the state changes, live and on replay,
//! with the indexes kept alongside (waiting queues, the agent index, the
//! queues dispatch must look at, recent channel message ids).

use super::transcript::{delivery_notice, mark_failed, message_of};
use super::{
    dequeue, enqueue, preview_of, receipts, Conversation, Engine, PastConversation, PendingOffer,
    DEDUP_WINDOW_MS, HISTORY_KEPT,
};
use crate::event::Event;
use crate::model::{AgentState, ConversationId, ConversationState, Millis, OfferKind, Party};
use std::collections::BTreeSet;
use std::sync::Arc;

impl Engine {
    /// Apply one event to the state: the only place state changes. Used
    /// live by `handle`/`tick` and to replay a journal. Also keeps the
    /// agent index and the queues `dispatch` must look at.
    pub fn apply(&mut self, event: &Event) {
        let conversation = event.conversation();
        let before = conversation
            .and_then(|id| self.conversations.get(&id))
            .map(|c| c.concerned())
            .unwrap_or_default();
        let free_before: Vec<(Millis, u32, bool)> =
            before.iter().map(|a| self.agent_key(a)).collect();
        let free_agent = match event {
            Event::AgentState { agent, .. } => Some((agent.clone(), self.agent_key(agent))),
            _ => None,
        };
        self.apply_event(event);
        let Some(id) = conversation else {
            if let Some((agent, key)) = free_agent {
                self.mark_if_freed(&agent, Some(key));
            }
            return;
        };
        let (after, queued) = match self.conversations.get(&id) {
            Some(c) => {
                let queued = self
                    .waiting
                    .get(&c.queue)
                    .is_some_and(|w| w.contains(&(c.queued_at, id)))
                    .then(|| c.queue.clone());
                (c.concerned(), queued)
            }
            None => (Vec::new(), None),
        };
        for (agent, key) in before.iter().zip(free_before) {
            if !after.contains(agent) {
                if let Some(set) = self.by_agent.get_mut(agent) {
                    set.remove(&id);
                    if set.is_empty() {
                        self.by_agent.remove(agent);
                    }
                }
            }
            self.mark_if_freed(agent, Some(key));
        }
        for agent in &after {
            if !before.contains(agent) {
                self.by_agent.entry(agent.clone()).or_default().insert(id);
                self.mark_if_freed(agent, None);
            }
        }
        if let Some(q) = queued {
            self.dirty.insert(q);
        }
    }

    /// What the routing policy sees of an agent that may change: when it
    /// became free, its load, whether it can take more.
    pub(super) fn agent_key(&self, agent: &str) -> (Millis, u32, bool) {
        self.agents.get(agent).map_or((0, 0, false), |a| {
            (a.idle_since, a.load(), a.can_take_more())
        })
    }

    /// Mark the queues of `agent` for `dispatch` if it can take more and
    /// changed (`before` unknown: assume it did).
    pub(super) fn mark_if_freed(&mut self, agent: &str, before: Option<(Millis, u32, bool)>) {
        let key = self.agent_key(agent);
        if !key.2 || before == Some(key) {
            return;
        }
        if let Some(a) = self.agents.get(agent) {
            for q in &a.config.queues {
                if !self.dirty.contains(q) {
                    self.dirty.insert(q.clone());
                }
            }
        }
    }

    pub(super) fn apply_event(&mut self, event: &Event) {
        match event {
            Event::AgentState {
                agent,
                state,
                reason,
                at,
            } => {
                if let Some(a) = self.agents.get_mut(agent) {
                    a.state = AgentState::from_event(*state, reason.as_deref());
                    if a.state == AgentState::Available {
                        a.idle_since = *at;
                    }
                }
            }
            Event::ConversationCreated {
                conversation,
                channel,
                customer,
                customer_handle,
                customer_name,
                source,
                received_at,
                cad,
            } => {
                let customer_handle = if customer_handle.is_empty() {
                    self.mask_for_agents(customer)
                } else {
                    customer_handle.clone()
                };
                self.conversations.insert(Arc::new(Conversation {
                    id: *conversation,
                    channel: channel.clone(),
                    customer: customer.clone(),
                    customer_handle,
                    customer_name: customer_name.clone(),
                    source: source.clone(),
                    received_at: *received_at,
                    cad: cad.clone().into(),
                    queue: String::new(),
                    state: ConversationState::Queued,
                    queued_at: *received_at,
                    owner: None,
                    guest: None,
                    offer: None,
                    preview: String::new(),
                    messages: Vec::new(),
                    pending_wrapups: BTreeSet::new(),
                    interrupted_reason: None,
                    closed_at: None,
                    wrapup_reasons: Vec::new(),
                    customer_wrote_at: None,
                }));
                self.open_by_customer
                    .insert((channel.clone(), customer.clone()), *conversation);
                self.next_id = self.next_id.max(conversation + 1);
            }
            Event::Queued {
                conversation,
                queue,
                at,
            } => {
                if let Some(c) = self.conversations.get_mut(conversation) {
                    c.state = ConversationState::Queued;
                    dequeue(&mut self.waiting, &c.queue, c.queued_at, *conversation);
                    c.queue = queue.clone();
                    c.queued_at = *at;
                    c.owner = None;
                    enqueue(&mut self.waiting, queue, *at, *conversation);
                }
            }
            Event::Offer {
                conversation,
                agent,
                kind,
                expires_at,
                return_queue,
                at,
                ..
            } => {
                if let Some(c) = self.conversations.get_mut(conversation) {
                    dequeue(&mut self.waiting, &c.queue, c.queued_at, *conversation);
                    if *kind != OfferKind::Conference {
                        c.state = ConversationState::Offered;
                    }
                    c.offer = Some(PendingOffer {
                        agent: agent.clone(),
                        kind: *kind,
                        expires_at: *expires_at,
                        return_queue: return_queue.clone(),
                    });
                    self.deadlines.insert((*expires_at, *conversation));
                }
                if let Some(a) = self.agents.get_mut(agent) {
                    a.offers.insert(*conversation);
                    a.idle_since = *at;
                }
            }
            Event::OfferRescinded {
                conversation,
                agent,
                ..
            } => {
                self.clear_offer(*conversation, agent);
            }
            Event::ConversationStarted {
                conversation,
                agent,
                ..
            } => {
                self.clear_offer(*conversation, agent);
                if let Some(c) = self.conversations.get_mut(conversation) {
                    c.state = ConversationState::Active;
                    c.owner = Some(agent.clone());
                    self.last_agent
                        .insert((c.channel.clone(), c.customer.clone()), agent.clone());
                }
                if let Some(a) = self.agents.get_mut(agent) {
                    a.conversations.insert(*conversation);
                }
            }
            Event::Message {
                conversation,
                from,
                text,
                at,
                external_id,
                sent_at,
                ..
            } => {
                if let Some(x) = external_id {
                    self.remember_external(x, *at);
                }
                if let Some(c) = self.conversations.get_mut(conversation) {
                    if *from == Party::Customer {
                        // The latest the customer wrote: an older message
                        // arriving late does not move it back or forward.
                        let wrote = sent_at.unwrap_or(*at);
                        c.customer_wrote_at =
                            Some(c.customer_wrote_at.map_or(wrote, |w| w.max(wrote)));
                    }
                    if c.preview.is_empty() && *from == Party::Customer {
                        c.preview = preview_of(text);
                    }
                    // Most conversations wait with one message: room for one.
                    if c.messages.is_empty() {
                        c.messages.reserve_exact(1);
                    }
                    c.messages.extend(message_of(event));
                }
            }
            Event::MessageRedacted {
                conversation,
                index,
                text,
                ..
            } => {
                if let Some(c) = self.conversations.get_mut(conversation) {
                    let first_from_customer =
                        c.messages.iter().position(|m| m.from == Party::Customer);
                    if first_from_customer == Some(*index) {
                        c.preview = preview_of(text);
                    }
                    if let Some(m) = c.messages.get_mut(*index) {
                        m.text = text.clone();
                    }
                }
            }
            Event::Transferred {
                conversation,
                agent,
                ..
            } => {
                if let Some(c) = self.conversations.get_mut(conversation) {
                    c.owner = None;
                }
                if let Some(a) = self.agents.get_mut(agent) {
                    a.conversations.remove(conversation);
                }
            }
            Event::ConferenceRequested { conversation, .. } => {
                if let Some(c) = self.conversations.get_mut(conversation) {
                    c.state = ConversationState::ConferenceRequested;
                }
            }
            Event::ConferenceCancelled { conversation, .. } => {
                if let Some(c) = self.conversations.get_mut(conversation) {
                    if c.state == ConversationState::ConferenceRequested {
                        c.state = ConversationState::Active;
                    }
                }
            }
            Event::ConferenceStarted {
                conversation,
                agent,
                ..
            } => {
                self.clear_offer(*conversation, agent);
                if let Some(c) = self.conversations.get_mut(conversation) {
                    c.state = ConversationState::Conference;
                    c.guest = Some(agent.clone());
                }
                if let Some(a) = self.agents.get_mut(agent) {
                    a.conversations.insert(*conversation);
                }
            }
            Event::ConferenceEnded { .. } => {}
            Event::ParticipantLeft {
                conversation,
                agent,
                at,
            } => {
                if let Some(c) = self.conversations.get_mut(conversation) {
                    if c.guest.as_deref() == Some(agent.as_str()) {
                        c.guest = None;
                        c.state = ConversationState::Active;
                    }
                }
                if let Some(a) = self.agents.get_mut(agent) {
                    a.conversations.remove(conversation);
                    a.idle_since = *at;
                }
            }
            Event::ConversationInterrupted {
                conversation,
                reason,
                ..
            } => {
                if let Some(c) = self.conversations.get_mut(conversation) {
                    c.state = ConversationState::Interrupted;
                    c.interrupted_reason = Some(reason.clone());
                    self.open_by_customer
                        .remove(&(c.channel.clone(), c.customer.clone()));
                }
            }
            Event::ConversationEnded { conversation, .. } => {
                if let Some(c) = self.conversations.get_mut(conversation) {
                    c.state = ConversationState::Ended;
                    let key = (c.channel.clone(), c.customer.clone());
                    if self.open_by_customer.get(&key) == Some(conversation) {
                        self.open_by_customer.remove(&key);
                    }
                    for agent in c.owner.iter().chain(c.guest.iter()) {
                        if let Some(a) = self.agents.get_mut(agent) {
                            a.conversations.remove(conversation);
                        }
                    }
                }
            }
            Event::ConversationDropped {
                conversation, at, ..
            } => {
                if let Some(c) = self.conversations.get_mut(conversation) {
                    dequeue(&mut self.waiting, &c.queue, c.queued_at, *conversation);
                    c.state = ConversationState::Dropped;
                    let key = (c.channel.clone(), c.customer.clone());
                    if self.open_by_customer.get(&key) == Some(conversation) {
                        self.open_by_customer.remove(&key);
                    }
                }
                self.mark_closed_if_done(*conversation, *at);
            }
            Event::WrapupRequired {
                conversation,
                agent,
                ..
            } => {
                if let Some(a) = self.agents.get_mut(agent) {
                    a.wrapups.insert(*conversation);
                }
                if let Some(c) = self.conversations.get_mut(conversation) {
                    c.pending_wrapups.insert(agent.clone());
                }
            }
            Event::WrapupSubmitted {
                conversation,
                agent,
                reason,
                at,
            } => {
                if let Some(c) = self.conversations.get_mut(conversation) {
                    c.wrapup_reasons.push(reason.clone());
                }
                if let Some(a) = self.agents.get_mut(agent) {
                    a.wrapups.remove(conversation);
                    a.idle_since = *at;
                }
                if let Some(c) = self.conversations.get_mut(conversation) {
                    c.pending_wrapups.remove(agent);
                    if c.state == ConversationState::Ended && c.pending_wrapups.is_empty() {
                        c.state = ConversationState::WrappedUp;
                    }
                }
                self.mark_closed_if_done(*conversation, *at);
            }
            Event::ConversationArchived { conversation, .. } => {
                // Archives are emitted from the front of `closing`, in
                // order: the entry is the first one (a scan only for an
                // event that says otherwise).
                match self.closing.first() {
                    Some((_, id)) if id == conversation => {
                        self.closing.pop_first();
                    }
                    _ => self.closing.retain(|(_, id)| id != conversation),
                }
                if let Some(c) = self.conversations.remove(conversation) {
                    dequeue(&mut self.waiting, &c.queue, c.queued_at, *conversation);
                    if let Some(o) = &c.offer {
                        self.deadlines.remove(&(o.expires_at, *conversation));
                    }
                    let past = Arc::make_mut(
                        self.history
                            .get_or_insert_with((c.channel, c.customer), Default::default),
                    );
                    if past.len() >= HISTORY_KEPT {
                        past.pop_front();
                    }
                    past.push_back(PastConversation {
                        conversation: c.id,
                        opened_at: c.received_at,
                        closed_at: c.closed_at,
                        queue: c.queue,
                        agent: c.owner,
                        wrapup_reasons: c.wrapup_reasons,
                        interrupted_reason: c.interrupted_reason,
                    });
                }
            }
            Event::QueueDeleted { queue, .. } => {
                self.queues.remove(queue);
                self.managed_queues.remove(queue);
                self.deleted_queues.insert(queue.clone());
                for a in self.agents.values_mut() {
                    a.config.queues.retain(|q| q != queue);
                }
            }
            Event::SettingsChanged { mask, .. } => {
                self.settings.mask = *mask;
            }
            // The audit trail: the events the action caused change the state.
            Event::SupervisorAction { .. } => {}
            Event::AgentSaved { .. }
            | Event::PasswordSet { .. }
            | Event::AgentEnabled { .. }
            | Event::QueueSaved { .. }
            | Event::IdleReasonsChanged { .. } => self.apply_admin(event),
            Event::DeliveryFailed {
                conversation,
                message,
                reason,
                at,
                ..
            } => {
                let lang = self.settings.language;
                if let Some(c) = self.conversations.get_mut(conversation) {
                    mark_failed(&mut c.messages, *message, *reason);
                    c.messages.push(delivery_notice(lang, *reason, *at));
                }
            }
            Event::Receipt {
                conversation,
                status,
                through,
                ..
            } => {
                if let Some(c) = self.conversations.get_mut(conversation) {
                    receipts::mark_receipt(&mut c.messages, *status, *through);
                }
            }
        }
    }

    pub(super) fn remember_external(&mut self, id: &str, at: Millis) {
        let id: Arc<str> = id.into();
        self.recent_external.insert(id.clone(), at);
        self.recent_order.push_back((at, id));
        while let Some((t, old)) = self.recent_order.front() {
            if t.saturating_add(DEDUP_WINDOW_MS) >= at {
                break;
            }
            if self.recent_external.get(old) == Some(t) {
                self.recent_external.remove(old);
            }
            self.recent_order.pop_front();
        }
    }

    pub(super) fn clear_offer(&mut self, id: ConversationId, agent: &str) {
        if let Some(c) = self.conversations.get_mut(&id) {
            if let Some(o) = c.offer.take() {
                self.deadlines.remove(&(o.expires_at, id));
            }
        }
        if let Some(a) = self.agents.get_mut(agent) {
            a.offers.remove(&id);
        }
    }
}
