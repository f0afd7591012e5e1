//! What agents do with a conversation: accept it, reply, transfer it,
//! invite a colleague, end it.

use super::{agents_aud, nobody, one, Engine, Extensions, Output};
use crate::channel::{Outbound, OutboundContext, OutboundMessage};
use crate::command::CommandError;
use crate::event::{Audience, Carrier, Delivery, Event};
use crate::model::{
    is_blank, strip_controls, ConversationId, ConversationState, DeliveryFailure, Millis,
    OfferKind, Party, TransferTarget, MAX_AGENT_MESSAGE_CHARS,
};
use crate::text;

/// An agent reply's attachments: at most [`crate::model::MAX_REPLY_ATTACHMENTS`],
/// each one of the server's copies (an id and its address), no location.
fn check_reply_attachments(list: &[crate::model::Attachment]) -> Result<(), CommandError> {
    use crate::model::MAX_REPLY_ATTACHMENTS;
    if list.len() > MAX_REPLY_ATTACHMENTS {
        return Err(CommandError::Invalid(format!(
            "at most {MAX_REPLY_ATTACHMENTS} attachments per reply"
        )));
    }
    if list.iter().any(|a| {
        a.id.is_empty() || a.url.is_empty() || !matches!(a.kind.as_str(), "image" | "file")
    }) {
        return Err(CommandError::Invalid(
            "a reply's attachment is a stored picture or file".into(),
        ));
    }
    Ok(())
}

impl Engine {
    pub(super) fn accept(
        &mut self,
        agent: &str,
        id: ConversationId,
        now: Millis,
        out: &mut Output,
    ) -> Result<(), CommandError> {
        let c = self.visible(agent, id)?;
        let Some(offer) = c.offer.as_ref().filter(|o| o.agent == agent) else {
            return Err(CommandError::Conflict("nothing to accept".into()));
        };
        match offer.kind {
            OfferKind::Queue | OfferKind::Transfer => {
                let ev = Event::ConversationStarted {
                    conversation: id,
                    agent: agent.to_string(),
                    queue: c.queue.clone(),
                    channel: c.channel.clone(),
                    customer: c.customer_handle.clone(),
                    customer_name: c.customer_name.clone(),
                    source: c.source.clone(),
                    received_at: c.received_at,
                    cad: c.cad.to_cad(),
                    at: now,
                };
                self.emit(out, ev, one(agent));
            }
            OfferKind::Conference => {
                let participants = c.participants();
                self.guest_joins(id, agent, participants, now, out);
            }
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn agent_message(
        &mut self,
        agent: &str,
        id: ConversationId,
        text: String,
        attachments: Vec<crate::model::Attachment>,
        now: Millis,
        ext: &Extensions<'_>,
        out: &mut Output,
    ) -> Result<(), CommandError> {
        let c = self.visible(agent, id)?;
        let is_participant = c.owner.as_deref() == Some(agent) || c.guest.as_deref() == Some(agent);
        match c.state {
            ConversationState::Active
            | ConversationState::ConferenceRequested
            | ConversationState::Conference
                if is_participant => {}
            ConversationState::Interrupted => {
                return Err(CommandError::Conflict(
                    "this conversation was interrupted: it can only be ended".into(),
                ))
            }
            _ => {
                return Err(CommandError::Conflict(
                    "you are not in this conversation".into(),
                ))
            }
        }
        // The limit is on what was sent, before anything is stripped.
        let n = text.chars().count();
        if n > MAX_AGENT_MESSAGE_CHARS {
            return Err(CommandError::Invalid(format!(
                "message is longer than {MAX_AGENT_MESSAGE_CHARS} characters ({n})"
            )));
        }
        let text = strip_controls(&text).into_owned();
        if is_blank(&text) && attachments.is_empty() {
            return Err(CommandError::Invalid("message is empty".into()));
        }
        check_reply_attachments(&attachments)?;
        // The text is valid: ask the channel how it reaches the customer.
        // A refusal (Messenger past its 7-day window) refuses the command,
        // with nothing stored.
        let message = OutboundMessage {
            conversation: id,
            customer: c.customer.clone(),
            author: agent.to_string(),
            text: text.clone(),
        };
        let ctx = OutboundContext {
            now,
            last_customer_message_at: c.customer_wrote_at,
        };
        let carrier = match ext.channels.outbound(&c.channel, &message, &ctx) {
            Some(Ok(Outbound::Refuse(reason))) => return Err(CommandError::Conflict(reason)),
            Some(Ok(Outbound::Send(request))) => Ok(Carrier::Request(request)),
            Some(Ok(Outbound::Push)) => Ok(Carrier::Push),
            Some(Err(_)) => Err(DeliveryFailure::AdapterFailed),
            None => Err(DeliveryFailure::NoAdapter),
        };
        let index = c.messages.len();
        let channel = c.channel.clone();
        let delivery = |carrier| Delivery {
            conversation: id,
            channel: c.channel.clone(),
            customer: c.customer.clone(),
            author: agent.to_string(),
            text: text.clone(),
            attachments: attachments.clone(),
            message: index,
            carrier,
        };
        let carrier = carrier.map(delivery);
        let participants = c.participants();
        let aud = Audience {
            agents: participants.clone(),
            customer: true,
        };
        let ev = Event::Message {
            conversation: id,
            from: Party::Agent,
            author: agent.to_string(),
            text: self.mask_for_agents(&text),
            at: now,
            external_id: None,
            attachments: self.mask_attachments(&attachments),
            sent_at: None,
        };
        self.emit(out, ev, aud);
        match carrier {
            Ok(delivery) => out.deliveries.push(delivery),
            Err(reason) => {
                let ev = Event::DeliveryFailed {
                    conversation: id,
                    channel,
                    message: index,
                    reason,
                    at: now,
                };
                self.emit(out, ev, agents_aud(participants));
            }
        }
        Ok(())
    }

    pub(super) fn transfer(
        &mut self,
        agent: &str,
        id: ConversationId,
        to: TransferTarget,
        now: Millis,
        ext: &Extensions<'_>,
        out: &mut Output,
    ) -> Result<(), CommandError> {
        let c = self.visible(agent, id)?;
        if c.owner.as_deref() != Some(agent) {
            return Err(CommandError::Conflict("only the owner can transfer".into()));
        }
        match c.state {
            ConversationState::Active => {}
            ConversationState::Interrupted => {
                return Err(CommandError::Conflict(
                    "this conversation was interrupted: it can only be ended".into(),
                ))
            }
            ConversationState::ConferenceRequested | ConversationState::Conference => {
                return Err(CommandError::Conflict("end the conference first".into()))
            }
            _ => return Err(CommandError::Conflict("conversation is not active".into())),
        }
        let from_queue = c.queue.clone();
        let lang = self.settings.language;
        let name = self.display_name(agent);
        let line = match &to {
            TransferTarget::Queue(q) => {
                let queue = self.queues.get(q).ok_or(CommandError::NotFound("queue"))?;
                text::transferred_to_queue(lang, &name, &queue.name)
            }
            TransferTarget::Agent(b) => {
                if b == agent {
                    return Err(CommandError::Conflict(
                        "you cannot transfer to yourself".into(),
                    ));
                }
                let target = self.agents.get(b).ok_or(CommandError::NotFound("agent"))?;
                if !target.can_take_more() {
                    return Err(CommandError::Conflict(format!(
                        "agent {} is not available",
                        target.config.name
                    )));
                }
                text::transferred_to_agent(lang, &name, &target.config.name)
            }
        };
        let reasons = ext.wrapup.reasons(&from_queue).to_vec();
        self.system_message(id, line, now, one(agent), out);
        let ev = Event::Transferred {
            conversation: id,
            agent: agent.to_string(),
            to: to.clone(),
            at: now,
        };
        self.emit(out, ev, one(agent));
        let ev = Event::WrapupRequired {
            conversation: id,
            agent: agent.to_string(),
            reasons,
        };
        self.emit(out, ev, one(agent));
        match to {
            TransferTarget::Queue(queue) => {
                self.emit(
                    out,
                    Event::Queued {
                        conversation: id,
                        queue,
                        at: now,
                    },
                    nobody(),
                );
            }
            TransferTarget::Agent(b) => {
                self.offer(id, &b, OfferKind::Transfer, Some(from_queue), 0, now, out);
            }
        }
        Ok(())
    }

    pub(super) fn invite(
        &mut self,
        agent: &str,
        id: ConversationId,
        invitee: &str,
        now: Millis,
        out: &mut Output,
    ) -> Result<(), CommandError> {
        let c = self.visible(agent, id)?;
        if c.owner.as_deref() != Some(agent) {
            return Err(CommandError::Conflict(
                "only the owner can start a conference".into(),
            ));
        }
        match c.state {
            ConversationState::Active => {}
            ConversationState::ConferenceRequested | ConversationState::Conference => {
                return Err(CommandError::Conflict(
                    "a conference is already under way".into(),
                ))
            }
            ConversationState::Interrupted => {
                return Err(CommandError::Conflict(
                    "this conversation was interrupted: it can only be ended".into(),
                ))
            }
            _ => return Err(CommandError::Conflict("conversation is not active".into())),
        }
        if invitee == agent {
            return Err(CommandError::Conflict("you are already in it".into()));
        }
        let target = self
            .agents
            .get(invitee)
            .ok_or(CommandError::NotFound("agent"))?;
        if !target.can_take_more() {
            return Err(CommandError::Conflict(format!(
                "agent {} is not available",
                target.config.name
            )));
        }
        let ev = Event::ConferenceRequested {
            conversation: id,
            agent: agent.to_string(),
            invitee: invitee.to_string(),
            at: now,
        };
        self.emit(out, ev, one(agent));
        self.offer(id, invitee, OfferKind::Conference, None, 0, now, out);
        Ok(())
    }

    /// End the conversation for everyone; every participant owes a wrap-up.
    pub(super) fn end_conversation(
        &mut self,
        id: ConversationId,
        by: &str,
        now: Millis,
        ext: &Extensions<'_>,
        out: &mut Output,
    ) {
        let Some(c) = self.conversations.get(&id) else {
            return;
        };
        if let Some(offer) = c.offer.clone() {
            self.rescind(out, id, &offer.agent, "ended");
        }
        let Some(c) = self.conversations.get(&id) else {
            return;
        };
        let participants = c.participants();
        let reasons = ext.wrapup.reasons(&c.queue).to_vec();
        let ev = Event::ConversationEnded {
            conversation: id,
            by: by.to_string(),
            at: now,
        };
        self.emit(
            out,
            ev,
            Audience {
                agents: participants.clone(),
                customer: true,
            },
        );
        for agent in participants {
            let ev = Event::WrapupRequired {
                conversation: id,
                agent: agent.clone(),
                reasons: reasons.clone(),
            };
            self.emit(out, ev, one(&agent));
        }
    }
}
