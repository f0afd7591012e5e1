//! What customers do: write (a new conversation, or one more message in
//! their open one, with an item split over two messages masked in both),
//! and leave before an agent took the conversation
//! ([`crate::Command::CustomerLeft`], counted as *abandoned* by the
//! reports).

use super::{
    agents_aud, nobody, plausible_sent_at, preview_of, Conversation, Engine, Extensions, Output,
    MAX_CUSTOMER_MESSAGE_CHARS,
};
use crate::command::{CommandError, CustomerMessage};
use crate::event::Event;
use crate::model::{is_blank, strip_controls, Cad, ConversationState, Millis, Party};
use crate::routing::ConversationView;
use std::borrow::Cow;

/// The reason of the `conversation_dropped` event of a conversation its
/// customer left while it waited.
pub const CUSTOMER_LEFT: &str = "customer_left";

impl Engine {
    /// See [`crate::Command::CustomerLeft`].
    pub(super) fn customer_left(
        &mut self,
        channel: &str,
        customer: &str,
        now: Millis,
        out: &mut Output,
    ) -> Result<(), CommandError> {
        let c = self
            .open_conversation_of(channel, customer)
            .ok_or(CommandError::NotFound("conversation"))?;
        if !matches!(
            c.state,
            ConversationState::Queued | ConversationState::Offered
        ) {
            return Err(CommandError::Conflict(
                "an agent has this conversation: the agent ends it".into(),
            ));
        }
        let (id, offer) = (c.id, c.offer.clone());
        if let Some(o) = offer {
            self.rescind(out, id, &o.agent, "ended");
        }
        self.drop_unhandled(out, id, CUSTOMER_LEFT, now);
        Ok(())
    }

    /// A sensitive item the customer split over their previous message
    /// and `raw` (the new one): the previous message's index, its text
    /// masked, and `raw` masked. Only when the tenant masks and the last
    /// message of the transcript is the customer's.
    pub(super) fn split_item(
        &self,
        c: &Conversation,
        raw: &str,
    ) -> Option<(usize, String, String)> {
        if !self.settings.mask {
            return None;
        }
        let index = c.messages.len().checked_sub(1)?;
        let last = c.messages.get(index)?;
        if last.from != Party::Customer {
            return None;
        }
        let (earlier, masked) = self.masker.mask_across(&last.text, raw)?;
        Some((index, earlier, masked))
    }

    pub(super) fn customer_message(
        &mut self,
        msg: CustomerMessage,
        now: Millis,
        ext: &Extensions<'_>,
        out: &mut Output,
    ) -> Result<(), CommandError> {
        // The limit is on what was sent, before anything is stripped.
        let n = msg.text.chars().count();
        if n > MAX_CUSTOMER_MESSAGE_CHARS {
            return Err(CommandError::Invalid(format!(
                "message is longer than {MAX_CUSTOMER_MESSAGE_CHARS} characters ({n})"
            )));
        }
        let mut msg = msg;
        if let Cow::Owned(clean) = strip_controls(&msg.text) {
            msg.text = clean;
        }
        if let Some(name) = &msg.customer_name {
            msg.customer_name = Some(strip_controls(name).into_owned());
        }
        if is_blank(&msg.text) && msg.attachments.is_empty() {
            return Err(CommandError::Invalid("message is empty".into()));
        }
        let attachments = self.mask_attachments(&msg.attachments);
        if let Some(x) = &msg.external_id {
            if self.recent_external.contains_key(x.as_str()) {
                // A redelivery of a message already stored: nothing to do.
                return Ok(());
            }
        }
        let mut text = self.mask_for_agents(&msg.text);
        let key = (msg.channel.clone(), msg.customer.clone());
        if let Some(&id) = self.open_by_customer.get(&key) {
            let (author, aud, split) = match self.conversations.get(&id) {
                Some(c) => (
                    c.customer_name.clone(),
                    agents_aud(c.participants()),
                    self.split_item(c, &msg.text),
                ),
                None => return Err(CommandError::NotFound("conversation")),
            };
            if let Some((index, earlier, masked)) = split {
                text = masked;
                // Also the agent it is offered to: the offer shows a preview.
                let mut told = aud.clone();
                if let Some(o) = self.conversations.get(&id).and_then(|c| c.offer.as_ref()) {
                    if !told.agents.contains(&o.agent) {
                        told.agents.push(o.agent.clone());
                    }
                }
                let ev = Event::MessageRedacted {
                    conversation: id,
                    index,
                    text: earlier,
                    at: now,
                };
                self.emit(out, ev, told);
            }
            let ev = Event::Message {
                conversation: id,
                from: Party::Customer,
                author,
                text,
                at: now,
                external_id: msg.external_id,
                attachments,
                sent_at: plausible_sent_at(msg.sent_at, now),
            };
            self.emit(out, ev, aud);
            return Ok(());
        }

        let id = self.next_id;
        let customer_name = self.mask_for_agents(
            msg.customer_name
                .as_deref()
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .unwrap_or("Customer"),
        );
        let source = self.mask_for_agents(&msg.source);
        // The channel's variables first: the server's own (SERVER_CAD_KEYS)
        // are written last, so a customer cannot pose as another origin.
        let mut cad = Cad::new();
        for (k, v) in &msg.cad {
            cad.insert(k.clone(), self.mask_for_agents(v));
        }
        cad.insert("contact_origin".into(), msg.channel.clone());
        cad.insert("entry_point".into(), source.clone());
        cad.insert("customer_name".into(), customer_name.clone());
        let preview = preview_of(&text);
        let customer_handle = self.mask_for_agents(&msg.customer);
        let queue = {
            let view = ConversationView {
                id,
                queue: &msg.queue,
                channel: &msg.channel,
                customer: &customer_handle,
                customer_name: &customer_name,
                source: &source,
                preview: &preview,
                cad: &cad,
                received_at: now,
                queued_at: now,
                last_agent: self.last_agent.get(&key).map(String::as_str),
            };
            let chosen = ext
                .routing
                .entry(&view)
                .filter(|q| self.queues.contains_key(q));
            match chosen {
                Some(q) => q,
                None if self.queues.contains_key(&msg.queue) => msg.queue.clone(),
                None if self.queues.contains_key(&self.settings.default_queue) => {
                    self.settings.default_queue.clone()
                }
                // Its entry point's queue was deleted: any queue rather
                // than losing the customer.
                None => match self.queues.keys().next() {
                    Some(q) => q.clone(),
                    None => return Err(CommandError::NotFound("queue")),
                },
            }
        };
        let ev = Event::ConversationCreated {
            conversation: id,
            channel: msg.channel,
            customer: msg.customer,
            customer_handle,
            customer_name: customer_name.clone(),
            source,
            received_at: now,
            cad,
        };
        self.emit(out, ev, nobody());
        let ev = Event::Message {
            conversation: id,
            from: Party::Customer,
            author: customer_name,
            text,
            at: now,
            external_id: msg.external_id,
            attachments: attachments.clone(),
            sent_at: plausible_sent_at(msg.sent_at, now),
        };
        self.emit(out, ev, nobody());
        self.emit(
            out,
            Event::Queued {
                conversation: id,
                queue,
                at: now,
            },
            nobody(),
        );
        Ok(())
    }

    /// A customer's attachments as agents see them: names and link titles
    /// masked like any text, control characters stripped.
    pub(super) fn mask_attachments(
        &self,
        list: &[crate::model::Attachment],
    ) -> Vec<crate::model::Attachment> {
        let clean = |s: &Option<String>| {
            s.as_deref()
                .map(|v| self.mask_for_agents(&strip_controls(v)))
        };
        list.iter()
            .map(|a| crate::model::Attachment {
                name: clean(&a.name),
                title: clean(&a.title),
                ..a.clone()
            })
            .collect()
    }
}
