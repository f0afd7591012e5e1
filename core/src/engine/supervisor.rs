//! Supervisors' actions (see [`Command::SupervisorSetState`],
//! [`Command::MoveConversation`], [`Command::CloseConversation`],
//! [`Command::JoinConversation`]): each writes an [`Event::SupervisorAction`]
//! first, then what it caused. The server checks the role; the engine
//! checks the supervisor is one of the tenant's agents. Also an admin's
//! deletion of a queue, which moves what it held on.

use super::{agents_aud, nobody, Engine, Extensions, Output};
use crate::command::{Command, CommandError};
use crate::event::Event;
use crate::model::{
    is_blank, strip_controls, AgentId, AgentState, ConversationId, ConversationState, Millis,
    OfferKind, QueueId,
};
use crate::text;

impl Engine {
    pub(super) fn delete_queue(
        &mut self,
        queue: &str,
        now: Millis,
        out: &mut Output,
    ) -> Result<(), CommandError> {
        let name = match self.queues.get(queue) {
            Some(q) => q.name.clone(),
            None => return Err(CommandError::NotFound("queue")),
        };
        let affected: Vec<ConversationId> = self
            .conversations
            .values()
            .filter(|c| c.queue == queue && c.state.is_open())
            .map(|c| c.id)
            .collect();
        for id in affected {
            let Some(c) = self.conversations.get(&id) else {
                continue;
            };
            let state = c.state;
            if let Some(offer) = c.offer.clone() {
                self.rescind(out, id, &offer.agent, "interrupted");
            }
            match state {
                ConversationState::Queued | ConversationState::Offered => {
                    self.drop_unhandled(out, id, "queue_deleted", now);
                }
                _ => {
                    let participants = self.conversations.get(&id).map(|c| c.participants());
                    let aud = agents_aud(participants.unwrap_or_default());
                    let ev = Event::ConversationInterrupted {
                        conversation: id,
                        reason: text::queue_deleted_reason(self.settings.language, &name),
                        at: now,
                    };
                    self.emit(out, ev, aud.clone());
                    self.system_message(
                        id,
                        text::queue_deleted_line(self.settings.language, &name),
                        now,
                        aud,
                        out,
                    );
                }
            }
        }
        let ev = Event::QueueDeleted {
            queue: queue.to_string(),
            at: now,
        };
        self.emit(out, ev, nobody());
        Ok(())
    }

    pub(super) fn audit(
        &mut self,
        out: &mut Output,
        supervisor: &str,
        action: &str,
        on: (Option<AgentId>, Option<ConversationId>, Option<QueueId>),
        (state, reason): (Option<String>, Option<String>),
        now: Millis,
    ) {
        let ev = Event::SupervisorAction {
            supervisor: supervisor.to_string(),
            action: action.to_string(),
            agent: on.0,
            conversation: on.1,
            queue: on.2,
            state,
            reason,
            at: now,
        };
        self.emit(out, ev, nobody());
    }

    #[allow(clippy::too_many_arguments)] // the command's fields, the clock and the output
    pub(super) fn supervisor_set_state(
        &mut self,
        supervisor: &str,
        agent: &str,
        state: &str,
        reason: Option<String>,
        now: Millis,
        ext: &Extensions<'_>,
        out: &mut Output,
    ) -> Result<(), CommandError> {
        self.agent_mut_checked(supervisor)?;
        let a = self.agent_mut_checked(agent)?;
        let inner = match state {
            "available" => Command::SetAvailable {
                agent: agent.to_string(),
            },
            "idle" => Command::SetIdle {
                agent: agent.to_string(),
                reason: reason.unwrap_or_default(),
            },
            "logged_out" => {
                if !a.conversations.is_empty() || !a.wrapups.is_empty() {
                    return Err(CommandError::Conflict(
                        "the agent still has conversations or wrap-ups: close them first".into(),
                    ));
                }
                Command::Logout {
                    agent: agent.to_string(),
                }
            }
            other => {
                return Err(CommandError::Invalid(format!(
                    "state must be \"available\", \"idle\" or \"logged_out\", not {other:?}"
                )))
            }
        };
        if a.state == AgentState::LoggedOut && state != "logged_out" {
            return Err(CommandError::Conflict("the agent is logged out".into()));
        }
        let mut caused = Output::default();
        self.decide(inner, now, ext, &mut caused)?;
        let reason = self
            .agent(agent)
            .and_then(|a| a.state.reason().map(str::to_owned));
        self.audit(
            out,
            supervisor,
            "set_state",
            (Some(agent.to_string()), None, None),
            (Some(state.to_string()), reason.filter(|_| state == "idle")),
            now,
        );
        out.emitted.extend(caused.emitted);
        out.deliveries.extend(caused.deliveries);
        Ok(())
    }

    pub(super) fn move_conversation(
        &mut self,
        supervisor: &str,
        id: ConversationId,
        queue: &str,
        now: Millis,
        out: &mut Output,
    ) -> Result<(), CommandError> {
        self.agent_mut_checked(supervisor)?;
        let c = self
            .conversations
            .get(&id)
            .ok_or(CommandError::NotFound("conversation"))?;
        if !self.queues.contains_key(queue) {
            return Err(CommandError::NotFound("queue"));
        }
        let waiting = match (&c.state, &c.offer) {
            (ConversationState::Queued, None) => true,
            (ConversationState::Offered, Some(o)) => o.kind == OfferKind::Queue,
            _ => false,
        };
        if !waiting {
            return Err(CommandError::Conflict(
                "only a conversation waiting in a queue can be moved".into(),
            ));
        }
        if c.queue == queue {
            return Err(CommandError::Conflict(
                "the conversation is already in that queue".into(),
            ));
        }
        let (offer, received_at) = (c.offer.clone(), c.received_at);
        self.audit(
            out,
            supervisor,
            "move",
            (None, Some(id), Some(queue.to_string())),
            (None, None),
            now,
        );
        if let Some(o) = offer {
            self.rescind(out, id, &o.agent, "cancelled");
        }
        // Its place in the new queue is its arrival: the customer has
        // waited already.
        let ev = Event::Queued {
            conversation: id,
            queue: queue.to_string(),
            at: received_at,
        };
        self.emit(out, ev, nobody());
        Ok(())
    }

    pub(super) fn join_conversation(
        &mut self,
        supervisor: &str,
        id: ConversationId,
        now: Millis,
        out: &mut Output,
    ) -> Result<(), CommandError> {
        let s = self.agent_mut_checked(supervisor)?;
        if s.state == AgentState::LoggedOut {
            return Err(CommandError::Conflict(
                "log in on the desktop first: that is where you write".into(),
            ));
        }
        let c = self
            .conversations
            .get(&id)
            .ok_or(CommandError::NotFound("conversation"))?;
        match c.state {
            ConversationState::Active => {}
            ConversationState::ConferenceRequested | ConversationState::Conference => {
                return Err(CommandError::Conflict(
                    "the conversation already has (or is inviting) a third participant".into(),
                ))
            }
            _ => {
                return Err(CommandError::Conflict(
                    "only an active conversation can be joined".into(),
                ))
            }
        }
        if c.owner.as_deref() == Some(supervisor) {
            return Err(CommandError::Conflict("you already handle it".into()));
        }
        let participants = c.participants();
        self.audit(
            out,
            supervisor,
            "join",
            (None, Some(id), None),
            (None, None),
            now,
        );
        // As when an invited agent accepts a conference.
        self.guest_joins(id, supervisor, participants, now, out);
        Ok(())
    }

    /// `guest` becomes the conversation's third participant: the
    /// participants and the guest are told, and the transcript says so.
    pub(super) fn guest_joins(
        &mut self,
        id: ConversationId,
        guest: &str,
        mut told: Vec<AgentId>,
        now: Millis,
        out: &mut Output,
    ) {
        told.push(guest.to_string());
        let aud = agents_aud(told);
        let ev = Event::ConferenceStarted {
            conversation: id,
            agent: guest.to_string(),
            at: now,
        };
        self.emit(out, ev, aud.clone());
        let name = self.display_name(guest);
        self.system_message(
            id,
            text::joined(self.settings.language, &name),
            now,
            aud,
            out,
        );
    }

    pub(super) fn close_conversation(
        &mut self,
        supervisor: &str,
        id: ConversationId,
        reason: &str,
        now: Millis,
        ext: &Extensions<'_>,
        out: &mut Output,
    ) -> Result<(), CommandError> {
        self.agent_mut_checked(supervisor)?;
        let reason = strip_controls(reason).trim().to_owned();
        if is_blank(&reason) {
            return Err(CommandError::Invalid("a reason is required".into()));
        }
        if reason.chars().count() > 200 {
            return Err(CommandError::Invalid(
                "the reason is longer than 200 characters".into(),
            ));
        }
        let reason = self.mask_for_agents(&reason);
        let c = self
            .conversations
            .get(&id)
            .ok_or(CommandError::NotFound("conversation"))?;
        let state = c.state;
        if !state.is_open() && state != ConversationState::Interrupted {
            return Err(CommandError::Conflict("conversation already ended".into()));
        }
        let offer = c.offer.clone();
        let participants = c.participants();
        self.audit(
            out,
            supervisor,
            "close",
            (None, Some(id), None),
            (None, Some(reason.clone())),
            now,
        );
        match state {
            ConversationState::Queued | ConversationState::Offered => {
                if let Some(o) = offer {
                    self.rescind(out, id, &o.agent, "ended");
                }
                self.drop_unhandled(out, id, "closed_by_supervisor", now);
            }
            _ => {
                let name = self.display_name(supervisor);
                self.system_message(
                    id,
                    text::closed_by(self.settings.language, &name, &reason),
                    now,
                    agents_aud(participants),
                    out,
                );
                self.end_conversation(id, supervisor, now, ext, out);
            }
        }
        Ok(())
    }
}
