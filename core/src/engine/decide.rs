//! Deciding what a command does: the one place commands are told apart,
//! and the agents' own state changes (log in and out, available, idle,
//! gone).

use super::{agents_aud, nobody, one, Engine, Extensions, Output};
use crate::command::{Command, CommandError};
use crate::event::Event;
use crate::model::{
    is_blank, strip_controls, AgentState, ConversationState, Millis, Party, StateName,
    DEFAULT_IDLE_REASON,
};
use crate::text;

impl Engine {
    pub(super) fn decide(
        &mut self,
        command: Command,
        now: Millis,
        ext: &Extensions<'_>,
        out: &mut Output,
    ) -> Result<(), CommandError> {
        match command {
            Command::Login { agent } => {
                let a = self.agent_mut_checked(&agent)?;
                if self.is_disabled(&agent) {
                    return Err(CommandError::Conflict("this agent is disabled".into()));
                }
                if a.state == AgentState::LoggedOut {
                    let ev = Event::AgentState {
                        agent: agent.clone(),
                        state: StateName::Idle,
                        reason: Some(DEFAULT_IDLE_REASON.into()),
                        at: now,
                    };
                    self.emit(out, ev, one(&agent));
                }
                Ok(())
            }
            Command::Logout { agent } => {
                let a = self.agent_mut_checked(&agent)?;
                if !a.conversations.is_empty() || !a.wrapups.is_empty() {
                    return Err(CommandError::Conflict(
                        "end your conversations and submit their wrap-up before logging out".into(),
                    ));
                }
                self.log_out(&agent, now, out);
                Ok(())
            }
            Command::SetAvailable { agent } => {
                let a = self.agent_mut_checked(&agent)?;
                match a.state {
                    AgentState::Available => Ok(()),
                    AgentState::LoggedOut => Err(CommandError::Conflict("log in first".into())),
                    AgentState::Idle { .. } | AgentState::Rona => {
                        let ev = Event::AgentState {
                            agent: agent.clone(),
                            state: StateName::Available,
                            reason: None,
                            at: now,
                        };
                        self.emit(out, ev, one(&agent));
                        Ok(())
                    }
                }
            }
            Command::SetIdle { agent, reason } => {
                let reason = strip_controls(&reason).trim().to_owned();
                let reason = if is_blank(&reason) {
                    DEFAULT_IDLE_REASON
                } else {
                    reason.as_str()
                };
                if reason.chars().count() > 64 {
                    return Err(CommandError::Invalid(
                        "idle reason is longer than 64 characters".into(),
                    ));
                }
                let known = self.settings.idle_reasons.is_empty()
                    || reason == DEFAULT_IDLE_REASON
                    || self.settings.idle_reasons.iter().any(|r| r == reason);
                let a = self.agent_mut_checked(&agent)?;
                if a.state == AgentState::LoggedOut {
                    return Err(CommandError::Conflict("log in first".into()));
                }
                if a.state.reason() == Some(reason) {
                    return Ok(());
                }
                if !known {
                    return Err(CommandError::Invalid(format!(
                        "{reason:?} is not one of this tenant's idle reasons"
                    )));
                }
                self.withdraw_offers_of(&agent, "agent_unavailable", now, out);
                let ev = Event::AgentState {
                    agent: agent.clone(),
                    state: StateName::Idle,
                    reason: Some(reason.to_string()),
                    at: now,
                };
                self.emit(out, ev, one(&agent));
                Ok(())
            }
            Command::CustomerMessage(msg) => self.customer_message(msg, now, ext, out),
            Command::Accept {
                agent,
                conversation,
            } => self.accept(&agent, conversation, now, out),
            Command::AgentMessage {
                agent,
                conversation,
                text,
                attachments,
            } => self.agent_message(&agent, conversation, text, attachments, now, ext, out),
            Command::Transfer {
                agent,
                conversation,
                to,
            } => self.transfer(&agent, conversation, to, now, ext, out),
            Command::InviteToConference {
                agent,
                conversation,
                invitee,
            } => self.invite(&agent, conversation, &invitee, now, out),
            Command::EndConference {
                agent,
                conversation,
            } => {
                let c = self.visible(&agent, conversation)?;
                if c.owner.as_deref() != Some(agent.as_str()) {
                    return Err(CommandError::Conflict(
                        "only the agent who started the conference can end it".into(),
                    ));
                }
                if c.state != ConversationState::Conference {
                    return Err(CommandError::Conflict(
                        "there is no conference to end".into(),
                    ));
                }
                let aud = agents_aud(c.participants());
                let ev = Event::ConferenceEnded {
                    conversation,
                    by: agent.clone(),
                    at: now,
                };
                self.emit(out, ev, aud);
                self.end_conversation(conversation, &agent, now, ext, out);
                Ok(())
            }
            Command::LeaveConference {
                agent,
                conversation,
            } => {
                let c = self.visible(&agent, conversation)?;
                if c.state != ConversationState::Conference
                    || c.guest.as_deref() != Some(agent.as_str())
                {
                    return Err(CommandError::Conflict(
                        "only the invited agent can leave a conference".into(),
                    ));
                }
                let aud = agents_aud(c.participants());
                let name = self.display_name(&agent);
                self.emit(
                    out,
                    Event::ParticipantLeft {
                        conversation,
                        agent: agent.clone(),
                        at: now,
                    },
                    aud.clone(),
                );
                self.system_message(
                    conversation,
                    text::left(self.settings.language, &name),
                    now,
                    aud,
                    out,
                );
                Ok(())
            }
            Command::End {
                agent,
                conversation,
            } => {
                let c = self.visible(&agent, conversation)?;
                if c.owner.as_deref() != Some(agent.as_str()) {
                    return Err(if c.guest.as_deref() == Some(agent.as_str()) {
                        CommandError::Conflict("leave the conference instead".into())
                    } else {
                        CommandError::Conflict("accept the conversation first".into())
                    });
                }
                match c.state {
                    ConversationState::Active
                    | ConversationState::ConferenceRequested
                    | ConversationState::Conference
                    | ConversationState::Interrupted => {}
                    _ => return Err(CommandError::Conflict("conversation already ended".into())),
                }
                self.end_conversation(conversation, &agent, now, ext, out);
                Ok(())
            }
            Command::WrapUp {
                agent,
                conversation,
                reason,
            } => {
                let c = self.visible(&agent, conversation)?;
                let a = self.agent_mut_checked(&agent)?;
                if !a.wrapups.contains(&conversation) {
                    return Err(CommandError::Conflict("no wrap-up is pending".into()));
                }
                let reasons = ext.wrapup.reasons(&c.queue);
                if !reasons.iter().any(|r| r.code == reason) {
                    return Err(CommandError::Invalid(format!(
                        "unknown wrap-up reason {reason:?}"
                    )));
                }
                let ev = Event::WrapupSubmitted {
                    conversation,
                    agent: agent.clone(),
                    reason,
                    at: now,
                };
                self.emit(out, ev, one(&agent));
                Ok(())
            }
            Command::DeleteQueue { queue } => self.delete_queue(&queue, now, out),
            Command::CreateAgent { .. }
            | Command::EditAgent { .. }
            | Command::SetPassword { .. }
            | Command::SetAgentEnabled { .. }
            | Command::SaveQueue { .. }
            | Command::SetIdleReasons { .. }
            | Command::SetMasking { .. } => self.administer(command, now, out),
            Command::AgentGone { agent } => self.agent_gone(&agent, now, out),
            Command::ChangeSettings { mask } => {
                if self.settings.mask != mask {
                    self.emit(out, Event::SettingsChanged { mask, at: now }, nobody());
                }
                Ok(())
            }
            Command::DeliveryFailed {
                conversation,
                message,
                reason,
            } => {
                let c = self
                    .conversations
                    .get(&conversation)
                    .ok_or(CommandError::NotFound("conversation"))?;
                if c.messages.get(message).map(|m| m.from) != Some(Party::Agent) {
                    return Err(CommandError::Invalid(format!(
                        "message {message} is not an agent's reply"
                    )));
                }
                let ev = Event::DeliveryFailed {
                    conversation,
                    channel: c.channel.clone(),
                    message,
                    reason,
                    at: now,
                };
                let aud = agents_aud(c.participants());
                self.emit(out, ev, aud);
                Ok(())
            }
            Command::CustomerReceipt {
                channel,
                customer,
                status,
                watermark,
            } => self.customer_receipt(&channel, &customer, status, watermark, now, out),
            Command::SupervisorSetState {
                supervisor,
                agent,
                state,
                reason,
            } => self.supervisor_set_state(&supervisor, &agent, &state, reason, now, ext, out),
            Command::MoveConversation {
                supervisor,
                conversation,
                queue,
            } => self.move_conversation(&supervisor, conversation, &queue, now, out),
            Command::CloseConversation {
                supervisor,
                conversation,
                reason,
            } => self.close_conversation(&supervisor, conversation, &reason, now, ext, out),
            Command::JoinConversation {
                supervisor,
                conversation,
            } => self.join_conversation(&supervisor, conversation, now, out),
            Command::CustomerLeft { channel, customer } => {
                self.customer_left(&channel, &customer, now, out)
            }
        }
    }

    /// See [`Command::AgentGone`].
    pub(super) fn agent_gone(
        &mut self,
        agent: &str,
        now: Millis,
        out: &mut Output,
    ) -> Result<(), CommandError> {
        let a = self.agent_mut_checked(agent)?;
        let busy = !a.conversations.is_empty() || !a.wrapups.is_empty();
        let (state, reason) = if busy {
            (
                StateName::Idle,
                Some(crate::model::DISCONNECTED_REASON.to_string()),
            )
        } else {
            (StateName::LoggedOut, None)
        };
        let already = match &a.state {
            AgentState::LoggedOut => true,
            AgentState::Idle { reason: r } => busy && r == crate::model::DISCONNECTED_REASON,
            _ => false,
        };
        if already && a.offers.is_empty() {
            return Ok(());
        }
        self.withdraw_offers_of(agent, "agent_unavailable", now, out);
        if !already {
            let ev = Event::AgentState {
                agent: agent.to_string(),
                state,
                reason,
                at: now,
            };
            self.emit(out, ev, one(agent));
        }
        Ok(())
    }
}
