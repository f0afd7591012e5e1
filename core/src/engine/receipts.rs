//! Receipts: the customer's channel reports the agents' replies delivered
//! or read (Messenger's `delivery` and `read` webhooks, the web chat
//! page's read marks). Journaled as [`Event::Receipt`], so a desktop that
//! reconnects and the transcript after a restart show them too.

use super::{agents_aud, Engine, Output};
use crate::command::CommandError;
use crate::event::Event;
use crate::model::{Message, Millis, Party, Receipt};

impl Engine {
    /// See [`crate::Command::CustomerReceipt`]: the customer's open
    /// conversation on `channel`, its agent replies sent at or before
    /// `watermark`. No open conversation, no such reply, or nothing that
    /// would change: no event (a redelivered receipt is not an error).
    pub(super) fn customer_receipt(
        &mut self,
        channel: &str,
        customer: &str,
        status: Receipt,
        watermark: Millis,
        now: Millis,
        out: &mut Output,
    ) -> Result<(), CommandError> {
        let Some(c) = self.open_conversation_of(channel, customer) else {
            return Ok(());
        };
        let Some(through) = c
            .messages
            .iter()
            .rposition(|m| m.from == Party::Agent && m.at <= watermark)
        else {
            return Ok(());
        };
        let changes = c.messages[..=through]
            .iter()
            .any(|m| m.from == Party::Agent && m.receipt.is_none_or(|r| r < status));
        if !changes {
            return Ok(());
        }
        let ev = Event::Receipt {
            conversation: c.id,
            status,
            through,
            at: now,
        };
        let aud = agents_aud(c.participants());
        self.emit(out, ev, aud);
        Ok(())
    }
}

/// Raise every agent reply up to `through` (inclusive) to at least
/// `status` (live, on replay and in a rebuilt transcript alike).
pub(super) fn mark_receipt(messages: &mut [Message], status: Receipt, through: usize) {
    let end = through.saturating_add(1).min(messages.len());
    for m in messages[..end].iter_mut() {
        if m.from == Party::Agent && m.receipt.is_none_or(|r| r < status) {
            m.receipt = Some(status);
        }
    }
}
