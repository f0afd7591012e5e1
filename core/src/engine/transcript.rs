//! Transcripts rebuilt from events: what an archived conversation shows.

use super::receipts;
use crate::event::Event;
use crate::model::{DeliveryFailure, Message, Millis, Party};
use crate::text;

/// The transcript line a `message` event adds (as sent: no failure, no
/// receipt yet); `None` for any other event.
pub(super) fn message_of(ev: &Event) -> Option<Message> {
    match ev {
        Event::Message {
            from,
            author,
            text,
            at,
            attachments,
            ..
        } => Some(Message {
            from: *from,
            author: author.clone(),
            text: text.clone(),
            at: *at,
            attachments: attachments.clone(),
            failed: None,
            receipt: None,
        }),
        _ => None,
    }
}

/// The transcript a conversation's events make, in order: its messages,
/// with every later redaction applied. What an archived conversation's
/// transcript is rebuilt from (the engine keeps the same in memory while
/// the conversation is live).
pub fn transcript_of<'a>(
    events: impl IntoIterator<Item = &'a Event>,
    language: text::Language,
) -> Vec<Message> {
    let mut out: Vec<Message> = Vec::new();
    for ev in events {
        match ev {
            Event::Message { .. } => out.extend(message_of(ev)),
            Event::MessageRedacted { index, text, .. } => {
                if let Some(m) = out.get_mut(*index) {
                    m.text = text.clone();
                }
            }
            Event::DeliveryFailed {
                message,
                reason,
                at,
                ..
            } => {
                mark_failed(&mut out, *message, *reason);
                out.push(delivery_notice(language, *reason, *at));
            }
            Event::Receipt {
                status, through, ..
            } => receipts::mark_receipt(&mut out, *status, *through),
            _ => {}
        }
    }
    out
}

/// The system line a failed delivery adds to the transcript (live, on
/// replay and in an archived conversation's rebuilt transcript alike).
pub(super) fn delivery_notice(
    language: text::Language,
    reason: DeliveryFailure,
    at: Millis,
) -> Message {
    Message {
        from: Party::System,
        author: "system".into(),
        text: text::delivery_notice(language, reason).into(),
        at,
        attachments: Vec::new(),
        failed: None,
        receipt: None,
    }
}

/// Mark the agent's reply at `index` as not delivered (other entries are
/// left alone: the index comes from the journal).
pub(super) fn mark_failed(messages: &mut [Message], index: usize, reason: DeliveryFailure) {
    if let Some(m) = messages.get_mut(index).filter(|m| m.from == Party::Agent) {
        m.failed = Some(reason);
    }
}
