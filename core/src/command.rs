//! Commands: what agents, customers, admins and the clock ask of the engine.

use crate::model::{
    AgentId, Cad, ConversationId, DeliveryFailure, Millis, PasswordHash, QueueId, Receipt, Role,
    TransferTarget,
};
use serde::{Deserialize, Serialize};

/// An input to [`crate::engine::Engine::handle`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum Command {
    /// An agent logs in (LoggedOut → Idle "Not ready").
    Login {
        agent: AgentId,
    },
    /// An agent logs out (only with no conversation and no pending wrap-up).
    Logout {
        agent: AgentId,
    },
    /// An agent sets Available, or Idle with a reason.
    SetAvailable {
        agent: AgentId,
    },
    SetIdle {
        agent: AgentId,
        reason: String,
    },
    /// A customer wrote on a channel. Continues the customer's open
    /// conversation on that channel, or opens one.
    CustomerMessage(CustomerMessage),
    Accept {
        agent: AgentId,
        conversation: ConversationId,
    },
    AgentMessage {
        agent: AgentId,
        conversation: ConversationId,
        /// May be blank when the reply carries attachments.
        text: String,
        /// Files the agent uploaded for this conversation, checked and
        /// described by the server (at most [`crate::model::MAX_REPLY_ATTACHMENTS`]).
        attachments: Vec<crate::model::Attachment>,
    },
    Transfer {
        agent: AgentId,
        conversation: ConversationId,
        to: TransferTarget,
    },
    InviteToConference {
        agent: AgentId,
        conversation: ConversationId,
        invitee: AgentId,
    },
    EndConference {
        agent: AgentId,
        conversation: ConversationId,
    },
    LeaveConference {
        agent: AgentId,
        conversation: ConversationId,
    },
    End {
        agent: AgentId,
        conversation: ConversationId,
    },
    WrapUp {
        agent: AgentId,
        conversation: ConversationId,
        reason: String,
    },
    /// An admin deleted a queue: its conversations are interrupted.
    DeleteQueue {
        queue: QueueId,
    },
    /// The server saw the agent go (no live session, or no desktop
    /// connected for longer than the grace period). Its pending offers go
    /// back at once; it is logged out, or, when it still has conversations
    /// or wrap-ups (which must not be lost), set Idle
    /// [`crate::model::DISCONNECTED_REASON`] so nothing new is offered.
    AgentGone {
        agent: AgentId,
    },
    /// An admin changes the tenant's settings: masking on or off for
    /// what comes in from now on. Journaled, so it survives a restart.
    ChangeSettings {
        mask: bool,
    },
    /// The server could not carry out a [`crate::Delivery`]: reply
    /// `message` (its index in the transcript) did not reach the customer.
    DeliveryFailed {
        conversation: ConversationId,
        message: usize,
        reason: DeliveryFailure,
    },
    /// The customer's channel reports the agent's replies delivered or
    /// read: every agent reply of the customer's open conversation sent at
    /// or before `watermark` (ms, the channel's clock). Never opens a
    /// conversation; a receipt that changes nothing emits nothing.
    CustomerReceipt {
        channel: String,
        customer: String,
        status: Receipt,
        watermark: Millis,
    },
    /// A supervisor forces an agent's state: `available`, `idle` (with a
    /// reason, as [`Command::SetIdle`]) or `logged_out` (its offers go back
    /// to their queues; refused while it holds conversations or owes
    /// wrap-ups). Audited by an [`crate::Event::SupervisorAction`].
    SupervisorSetState {
        supervisor: AgentId,
        agent: AgentId,
        state: String,
        #[serde(default)]
        reason: Option<String>,
    },
    /// A supervisor moves a waiting conversation (queued, or offered from
    /// its queue: the offer is withdrawn) to another queue, where it keeps
    /// its place by arrival time. Audited.
    MoveConversation {
        supervisor: AgentId,
        conversation: ConversationId,
        queue: QueueId,
    },
    /// A supervisor closes a stuck conversation with a reason: a waiting
    /// one is dropped; one with agents ends as if its owner ended it (each
    /// participant owes a wrap-up), after a system message with the reason.
    /// Audited.
    CloseConversation {
        supervisor: AgentId,
        conversation: ConversationId,
        reason: String,
    },
    /// The customer left before an agent took the conversation (a web chat
    /// visitor closed the chat): a waiting or offered conversation is
    /// dropped with the reason `customer_left` (the reports count it as
    /// *abandoned*); an offer out for it is withdrawn. Refused (409) once
    /// an agent has it: ending it is then the agent's.
    CustomerLeft {
        channel: String,
        customer: String,
    },
    /// A supervisor joins an active conversation as its third participant
    /// (the conference guest, without an invitation): the agent and the
    /// customer see them join; they write and leave as a guest does.
    /// The supervisor must be logged in. Audited.
    JoinConversation {
        supervisor: AgentId,
        conversation: ConversationId,
    },
    /// An admin (`by`: its agent id, or `platform` for the platform's
    /// token) creates an agent, logged out, with a password the server
    /// already hashed (argon2 PHC string: the password never reaches the
    /// engine). Audited by the events' `by`.
    CreateAgent {
        by: String,
        agent: AgentId,
        profile: AgentProfile,
        password_hash: PasswordHash,
    },
    /// An admin edits an agent's name, capacity, queues, skills and role.
    EditAgent {
        by: String,
        agent: AgentId,
        profile: AgentProfile,
    },
    /// An admin sets an agent's password (already hashed).
    SetPassword {
        by: String,
        agent: AgentId,
        password_hash: PasswordHash,
    },
    /// An admin disables (or enables again) an agent. Disabling logs it
    /// out at once (its offers go back to their queues); refused while it
    /// holds conversations or owes wrap-ups.
    SetAgentEnabled {
        by: String,
        agent: AgentId,
        enabled: bool,
    },
    /// An admin creates (`create`) or edits a queue.
    SaveQueue {
        by: String,
        queue: QueueId,
        name: String,
        rona_timeout_ms: Millis,
        create: bool,
    },
    /// An admin (`by`) turns masking on or off for what comes in from now
    /// on: a `supervisor_action` (`action: "masking"`, `state: "on"|"off"`)
    /// for the audit trail, then `settings_changed` if the setting changes.
    SetMasking {
        by: String,
        mask: bool,
    },
    /// An admin replaces the tenant's idle reasons.
    SetIdleReasons {
        by: String,
        reasons: Vec<String>,
    },
}

/// What an admin sets of an agent (besides its id and password).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentProfile {
    pub name: String,
    pub capacity: u32,
    #[serde(default)]
    pub queues: Vec<QueueId>,
    #[serde(default)]
    pub skills: Vec<String>,
    #[serde(default)]
    pub role: Role,
}

/// A customer's message as a channel adapter normalized it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerMessage {
    /// Channel name (`messenger`, `webchat`, …).
    pub channel: String,
    /// The customer's id on that channel (PSID, visitor id).
    pub customer: String,
    /// Display name, when the channel knows it.
    pub customer_name: Option<String>,
    /// Raw text; the engine masks it before it goes anywhere.
    pub text: String,
    /// Source shown on the offer (page name, entry point).
    pub source: String,
    /// Queue the channel's entry point leads to, unless the entry policy
    /// says otherwise.
    pub queue: QueueId,
    /// Extra CAD variables (contact origin, entry point, …).
    pub cad: Cad,
    /// The channel's id of this message (Messenger `mid`): a message whose
    /// id was seen in the last [`crate::engine::DEDUP_WINDOW_MS`] is dropped.
    #[serde(default)]
    pub external_id: Option<String>,
    /// What the customer attached, already stored by the server.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<crate::model::Attachment>,
    /// When the customer sent it by the channel's clock (Messenger's
    /// `timestamp`, ms), if the channel says.
    #[serde(default)]
    pub sent_at: Option<crate::model::Millis>,
}

/// Why a command was refused. Nothing changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// Unknown (or not visible to the caller): the same answer for both.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The command does not fit the current state.
    #[error("{0}")]
    Conflict(String),
    /// The command's content is invalid.
    #[error("{0}")]
    Invalid(String),
}
