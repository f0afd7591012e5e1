//! Offers and dispatch: offering waiting conversations to free agents,
//! withdrawing offers and expiring them (RONA), and the routing inputs a
//! policy is asked with (live and on replay alike).

use super::{nobody, one, Engine, Extensions, Output};
use crate::event::Event;
use crate::model::{
    AgentState, ConversationId, Millis, OfferKind, QueueId, StateName, TransferNotAccepted,
    DEFAULT_RONA_TIMEOUT_MS,
};
use crate::routing::{Candidate, ConversationView};
use crate::text;
use std::ops::Bound::{Excluded, Unbounded};

impl Engine {
    #[allow(clippy::too_many_arguments)] // one call site per offer kind; a struct would only rename them
    pub(super) fn offer(
        &mut self,
        id: ConversationId,
        agent: &str,
        kind: OfferKind,
        return_queue: Option<QueueId>,
        generation: u64,
        now: Millis,
        out: &mut Output,
    ) {
        let Some(c) = self.conversations.get(&id) else {
            return;
        };
        let timeout = self
            .queues
            .get(&c.queue)
            .map(|q| q.rona_timeout_ms)
            .unwrap_or(DEFAULT_RONA_TIMEOUT_MS);
        let ev = Event::Offer {
            conversation: id,
            agent: agent.to_string(),
            kind,
            queue: c.queue.clone(),
            source: c.source.clone(),
            channel: c.channel.clone(),
            customer_name: c.customer_name.clone(),
            received_at: c.received_at,
            preview: c.preview.clone(),
            expires_at: now + timeout,
            generation,
            return_queue,
            at: now,
        };
        self.emit(out, ev, one(agent));
    }

    pub(super) fn withdraw_offers_of(
        &mut self,
        agent: &str,
        reason: &str,
        now: Millis,
        out: &mut Output,
    ) {
        let offers: Vec<ConversationId> = self
            .agents
            .get(agent)
            .map(|a| a.offers.iter().copied().collect())
            .unwrap_or_default();
        for id in offers {
            self.withdraw_offer(id, reason, now, out);
        }
    }

    /// Take back the pending offer of `id`, and move the conversation on:
    /// back to its queue, dropped, or (a conference invitation) back to the
    /// owner alone.
    pub(super) fn withdraw_offer(
        &mut self,
        id: ConversationId,
        reason: &str,
        now: Millis,
        out: &mut Output,
    ) {
        let Some(c) = self.conversations.get(&id) else {
            return;
        };
        let Some(offer) = c.offer.clone() else {
            return;
        };
        let (queue, queued_at, received_at, owner) =
            (c.queue.clone(), c.queued_at, c.received_at, c.owner.clone());
        self.rescind(out, id, &offer.agent, reason);
        match offer.kind {
            OfferKind::Queue => {
                let ev = Event::Queued {
                    conversation: id,
                    queue,
                    at: queued_at,
                };
                self.emit(out, ev, nobody());
            }
            OfferKind::Transfer => {
                let back = offer
                    .return_queue
                    .filter(|q| self.queues.contains_key(q))
                    .filter(|_| {
                        self.settings.transfer_not_accepted == TransferNotAccepted::ReturnToQueue
                    });
                let name = self.display_name(&offer.agent);
                match back {
                    Some(q) => {
                        self.system_message(
                            id,
                            text::transfer_declined(self.settings.language, &name),
                            now,
                            nobody(),
                            out,
                        );
                        // Ahead of conversations that arrived after this one:
                        // the customer has waited already.
                        let ev = Event::Queued {
                            conversation: id,
                            queue: q,
                            at: received_at,
                        };
                        self.emit(out, ev, nobody());
                    }
                    None => {
                        self.drop_unhandled(out, id, "transfer_not_accepted", now);
                    }
                }
            }
            OfferKind::Conference => {
                let aud = owner.map(|o| one(&o)).unwrap_or_default();
                let ev = Event::ConferenceCancelled {
                    conversation: id,
                    invitee: offer.agent.clone(),
                    reason: reason.to_string(),
                    at: now,
                };
                self.emit(out, ev, aud);
            }
        }
    }

    pub(super) fn expire_offer(
        &mut self,
        id: ConversationId,
        now: Millis,
        _ext: &Extensions<'_>,
        out: &mut Output,
    ) {
        let agent = match self.conversations.get(&id).and_then(|c| c.offer.as_ref()) {
            Some(o) => o.agent.clone(),
            None => {
                // Stale index entry: drop it so tick always makes progress.
                self.deadlines.retain(|(_, c)| *c != id);
                return;
            }
        };
        self.withdraw_offer(id, "timeout", now, out);
        let is_available = self
            .agents
            .get(&agent)
            .is_some_and(|a| a.state == AgentState::Available);
        if is_available {
            let ev = Event::AgentState {
                agent: agent.clone(),
                state: StateName::Rona,
                reason: None,
                at: now,
            };
            self.emit(out, ev, one(&agent));
        }
        self.withdraw_offers_of(&agent, "agent_unavailable", now, out);
    }

    /// Whether some agent of `queue` can take more now.
    pub(super) fn has_candidate(&self, queue: &str) -> bool {
        self.agents
            .values()
            .any(|a| a.can_take_more() && a.config.queues.iter().any(|q| q == queue))
    }

    /// Whether `dispatch` has work in `queue`: someone waits and someone
    /// is free to take it.
    pub(super) fn unsettled(&self, queue: &str) -> bool {
        self.queue_depth(queue) > 0 && self.has_candidate(queue)
    }

    /// Offer waiting conversations, oldest first, to free agents. Only
    /// the queues where something changed (`dirty`) are looked at, and
    /// each only while one of its agents can take more: the policy is
    /// asked exactly what a scan of every waiting conversation would ask
    /// (the others have nobody free), in the same order, at a cost that
    /// does not grow with the queues.
    pub(super) fn dispatch(&mut self, now: Millis, ext: &Extensions<'_>, out: &mut Output) {
        if self.dirty.is_empty() {
            return;
        }
        let dirty = std::mem::take(&mut self.dirty);
        // Each queue with work, and the last conversation looked at in it.
        let mut live: Vec<(QueueId, Option<(Millis, ConversationId)>)> = dirty
            .into_iter()
            .filter(|q| self.unsettled(q))
            .map(|q| (q, None))
            .collect();
        loop {
            // The oldest conversation not yet looked at, over those queues.
            let next = live
                .iter()
                .enumerate()
                .filter_map(|(i, (q, after))| {
                    let w = self.waiting.get(q)?;
                    let k = match after {
                        None => w.first(),
                        Some(k) => w.range((Excluded(*k), Unbounded)).next(),
                    }?;
                    Some((*k, i))
                })
                .min();
            let Some((key, i)) = next else {
                break;
            };
            if let Some(slot) = live.get_mut(i) {
                slot.1 = Some(key);
            }
            let id = key.1;
            let decided = self.with_routing_inputs(id, |view, candidates| {
                ext.routing
                    .route(view, candidates)
                    .resolve(candidates, ext.routing.generation())
            });
            let Some(chosen) = decided else {
                continue;
            };
            if let Some((agent, generation)) = chosen {
                self.offer(id, &agent, OfferKind::Queue, None, generation, now, out);
                // Only an offer uses up capacity: look again only after one.
                live.retain(|(q, _)| self.has_candidate(q));
            }
        }
        // Someone is still free there and the policy kept conversations
        // queued: it is asked again next time, as a full scan would.
        for (q, _) in live {
            if self.unsettled(&q) {
                self.dirty.insert(q);
            }
        }
    }

    /// What a routing policy is asked about waiting conversation `id` in
    /// the present state: its view and the candidates (Available agents
    /// of its queue with spare capacity, in id order). `None` when there
    /// is no such conversation or nobody can take it. `dispatch` asks
    /// through this, and so does a replay of the journal, which calls it
    /// just before applying each offer made from a queue.
    pub fn with_routing_inputs<R>(
        &self,
        id: ConversationId,
        f: impl FnOnce(&ConversationView<'_>, &[Candidate<'_>]) -> R,
    ) -> Option<R> {
        let c = self.conversations.get(&id)?;
        let candidates: Vec<Candidate<'_>> = self
            .agents
            .values()
            .filter(|a| a.can_take_more() && a.config.queues.contains(&c.queue))
            .map(|a| Candidate {
                id: &a.config.id,
                name: &a.config.name,
                load: a.load(),
                capacity: a.config.capacity,
                idle_since: a.idle_since,
                skills: &a.config.skills,
                stamp: a.stamp,
            })
            .collect();
        if candidates.is_empty() {
            return None;
        }
        let key = (c.channel.clone(), c.customer.clone());
        let cad = c.cad.to_cad();
        let view = ConversationView {
            id,
            queue: &c.queue,
            channel: &c.channel,
            customer: &c.customer_handle,
            customer_name: &c.customer_name,
            source: &c.source,
            preview: &c.preview,
            cad: &cad,
            received_at: c.received_at,
            queued_at: c.queued_at,
            last_agent: self.last_agent.get(&key).map(String::as_str),
        };
        Some(f(&view, &candidates))
    }
}
