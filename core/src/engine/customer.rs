//! What a customer does besides writing: leaving before an agent took the
//! conversation ([`crate::Command::CustomerLeft`], counted as *abandoned* by the
//! reports).

use super::{Audience, Engine, Output};
use crate::command::CommandError;
use crate::event::Event;
use crate::model::{ConversationState, Millis};

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
        let ev = Event::ConversationDropped {
            conversation: id,
            reason: CUSTOMER_LEFT.into(),
            at: now,
        };
        self.emit(
            out,
            ev,
            Audience {
                agents: vec![],
                customer: true,
            },
        );
        Ok(())
    }
}
