//! Events: every change of a tenant's state, in the order it happened.
//!
//! Events are the journal (the audit trail and the source of recovery) and,
//! serialized with their `"type"`, what agents receive on their WebSocket.
//! **Invariant:** when the tenant masks, every text in an event is already
//! masked; raw customer text only ever leaves the engine in a [`Delivery`]
//! to the customer's own channel.

use crate::channel::OutgoingRequest;
use crate::model::{
    AgentId, Cad, ConversationId, DeliveryFailure, Millis, OfferKind, Party, PasswordHash, QueueId,
    Receipt, Role, StateName, TransferTarget, WrapUpReason,
};
use serde::{Deserialize, Serialize};

/// One change of state. Serialized with `"type"` in snake_case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// An agent's state changed (`state` is `available`, `idle`, `rona`, `logged_out`).
    AgentState {
        agent: AgentId,
        state: StateName,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
        at: Millis,
    },
    /// A customer opened a conversation on a channel. `customer` is the
    /// channel's raw id (the journal needs it to reach the customer);
    /// this event goes to no agent. `customer_handle` is what agents see
    /// of it (masked like any text when the tenant masks: an SMS
    /// customer's id is a phone number).
    ConversationCreated {
        conversation: ConversationId,
        channel: String,
        customer: String,
        /// Empty in journals written before it existed: then derived on
        /// replay.
        #[serde(default, skip_serializing_if = "String::is_empty")]
        customer_handle: String,
        customer_name: String,
        source: String,
        received_at: Millis,
        cad: Cad,
    },
    /// The conversation joined a queue (new, returned, or transferred there).
    Queued {
        conversation: ConversationId,
        queue: QueueId,
        at: Millis,
    },
    /// The conversation is offered to one agent, who has until `expires_at`.
    Offer {
        conversation: ConversationId,
        agent: AgentId,
        kind: OfferKind,
        queue: QueueId,
        source: String,
        channel: String,
        customer_name: String,
        received_at: Millis,
        preview: String,
        expires_at: Millis,
        /// Generation of the routing policy that chose the agent (0: built-in).
        generation: u64,
        /// Set on a transfer offer: the queue the conversation returns to if
        /// the agent does not accept it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        return_queue: Option<QueueId>,
        at: Millis,
    },
    /// An offer was withdrawn (`reason`: `timeout`, `agent_unavailable`,
    /// `interrupted`, `ended`, `cancelled`).
    OfferRescinded {
        conversation: ConversationId,
        agent: AgentId,
        reason: String,
    },
    /// An agent accepted a queue or transfer offer. `customer` is the
    /// customer's handle (masked when the tenant masks), never the raw id.
    ConversationStarted {
        conversation: ConversationId,
        agent: AgentId,
        queue: QueueId,
        channel: String,
        customer: String,
        customer_name: String,
        source: String,
        received_at: Millis,
        cad: Cad,
        at: Millis,
    },
    /// A message of the transcript.
    Message {
        conversation: ConversationId,
        from: Party,
        author: String,
        text: String,
        at: Millis,
        /// The channel's own id of the message (Messenger `mid`), used to
        /// drop redeliveries.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        external_id: Option<String>,
        /// What the customer attached (stored by the server).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        attachments: Vec<crate::model::Attachment>,
        /// When the customer sent it by the channel's clock (Messenger's
        /// `timestamp`), when the channel says and it is plausible (see
        /// [`crate::engine::plausible_sent_at`]). Reply windows start here.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sent_at: Option<Millis>,
    },
    /// An earlier customer message, masked after the fact: the customer
    /// split a sensitive item over it and the next message (`4111 1111`,
    /// then `1111 1111`). `index` is the message's position in the
    /// conversation's transcript; `text` replaces its text everywhere.
    MessageRedacted {
        conversation: ConversationId,
        index: usize,
        text: String,
        at: Millis,
    },
    /// The owner handed the conversation over; the agent now owes a wrap-up.
    Transferred {
        conversation: ConversationId,
        agent: AgentId,
        to: TransferTarget,
        at: Millis,
    },
    /// The owner invited a second agent.
    ConferenceRequested {
        conversation: ConversationId,
        agent: AgentId,
        invitee: AgentId,
        at: Millis,
    },
    /// The invited agent did not join (timeout, became unavailable).
    ConferenceCancelled {
        conversation: ConversationId,
        invitee: AgentId,
        reason: String,
        at: Millis,
    },
    /// The invited agent joined.
    ConferenceStarted {
        conversation: ConversationId,
        agent: AgentId,
        at: Millis,
    },
    /// The owner ended the conference, which ends the conversation.
    ConferenceEnded {
        conversation: ConversationId,
        by: AgentId,
        at: Millis,
    },
    /// The invited agent left the conference; the conversation goes on.
    ParticipantLeft {
        conversation: ConversationId,
        agent: AgentId,
        at: Millis,
    },
    /// The conversation's queue or entry point was deleted.
    ConversationInterrupted {
        conversation: ConversationId,
        reason: String,
        at: Millis,
    },
    /// The conversation ended.
    ConversationEnded {
        conversation: ConversationId,
        by: AgentId,
        at: Millis,
    },
    /// The conversation closed without an agent.
    ConversationDropped {
        conversation: ConversationId,
        reason: String,
        at: Millis,
    },
    /// The agent must pick one of `reasons`.
    WrapupRequired {
        conversation: ConversationId,
        agent: AgentId,
        reasons: Vec<WrapUpReason>,
    },
    WrapupSubmitted {
        conversation: ConversationId,
        agent: AgentId,
        reason: String,
        at: Millis,
    },
    /// An admin deleted a queue.
    QueueDeleted { queue: QueueId, at: Millis },
    /// A closed conversation left memory; its events stay in the journal.
    ConversationArchived {
        conversation: ConversationId,
        at: Millis,
    },
    /// An admin changed the tenant's settings (masking, for what comes in
    /// from now on).
    SettingsChanged { mask: bool, at: Millis },
    /// An agent's reply (transcript entry `message`) did not reach the
    /// customer. The transcript gets a system line saying so.
    DeliveryFailed {
        conversation: ConversationId,
        channel: String,
        /// Index of the undelivered reply in the transcript.
        message: usize,
        reason: DeliveryFailure,
        at: Millis,
    },
    /// The customer's channel reported the agent's replies `delivered` or
    /// `read`: every agent reply of the transcript up to index `through`
    /// (inclusive) is now at least `status`. Emitted only when it changes
    /// something.
    Receipt {
        conversation: ConversationId,
        status: Receipt,
        through: usize,
        at: Millis,
    },
    /// The audit trail of a supervisor's action (who, what, when): written
    /// before the events the action caused. `action` is `set_state`,
    /// `move` or `close`; the other fields say on what.
    SupervisorAction {
        supervisor: AgentId,
        action: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        agent: Option<AgentId>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        conversation: Option<ConversationId>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        queue: Option<QueueId>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        state: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
        at: Millis,
    },
    /// An admin created (`created`) or edited an agent. `by` is who did
    /// it (the admin's agent id, or `platform`).
    AgentSaved {
        agent: AgentId,
        name: String,
        capacity: u32,
        queues: Vec<QueueId>,
        skills: Vec<String>,
        role: Role,
        created: bool,
        by: String,
        at: Millis,
    },
    /// An admin set an agent's password: the argon2 PHC hash, never the
    /// password. Goes to no agent; no API answer shows it.
    PasswordSet {
        agent: AgentId,
        password_hash: PasswordHash,
        by: String,
        at: Millis,
    },
    /// An admin disabled (or enabled again) an agent: a disabled agent
    /// cannot log in.
    AgentEnabled {
        agent: AgentId,
        enabled: bool,
        by: String,
        at: Millis,
    },
    /// An admin created (`created`) or edited a queue.
    QueueSaved {
        queue: QueueId,
        name: String,
        rona_timeout_ms: Millis,
        created: bool,
        by: String,
        at: Millis,
    },
    /// An admin replaced the tenant's idle reasons.
    IdleReasonsChanged {
        reasons: Vec<String>,
        by: String,
        at: Millis,
    },
}

impl Event {
    /// The conversation this event is about, if any.
    pub fn conversation(&self) -> Option<ConversationId> {
        match self {
            Event::AgentState { .. }
            | Event::QueueDeleted { .. }
            | Event::SettingsChanged { .. }
            | Event::SupervisorAction { .. }
            | Event::AgentSaved { .. }
            | Event::PasswordSet { .. }
            | Event::AgentEnabled { .. }
            | Event::QueueSaved { .. }
            | Event::IdleReasonsChanged { .. } => None,
            Event::ConversationArchived { conversation, .. } => Some(*conversation),
            Event::ConversationCreated { conversation, .. }
            | Event::Queued { conversation, .. }
            | Event::Offer { conversation, .. }
            | Event::OfferRescinded { conversation, .. }
            | Event::ConversationStarted { conversation, .. }
            | Event::Message { conversation, .. }
            | Event::MessageRedacted { conversation, .. }
            | Event::Transferred { conversation, .. }
            | Event::ConferenceRequested { conversation, .. }
            | Event::ConferenceCancelled { conversation, .. }
            | Event::ConferenceStarted { conversation, .. }
            | Event::ConferenceEnded { conversation, .. }
            | Event::ParticipantLeft { conversation, .. }
            | Event::ConversationInterrupted { conversation, .. }
            | Event::ConversationEnded { conversation, .. }
            | Event::ConversationDropped { conversation, .. }
            | Event::WrapupRequired { conversation, .. }
            | Event::WrapupSubmitted { conversation, .. }
            | Event::DeliveryFailed { conversation, .. }
            | Event::Receipt { conversation, .. } => Some(*conversation),
        }
    }

    /// When it happened, for the events that carry their time (`at`).
    pub fn at(&self) -> Option<Millis> {
        match self {
            Event::AgentState { at, .. }
            | Event::Queued { at, .. }
            | Event::Offer { at, .. }
            | Event::ConversationStarted { at, .. }
            | Event::Message { at, .. }
            | Event::MessageRedacted { at, .. }
            | Event::Transferred { at, .. }
            | Event::ConferenceRequested { at, .. }
            | Event::ConferenceCancelled { at, .. }
            | Event::ConferenceStarted { at, .. }
            | Event::ConferenceEnded { at, .. }
            | Event::ParticipantLeft { at, .. }
            | Event::ConversationInterrupted { at, .. }
            | Event::ConversationEnded { at, .. }
            | Event::ConversationDropped { at, .. }
            | Event::WrapupSubmitted { at, .. }
            | Event::QueueDeleted { at, .. }
            | Event::ConversationArchived { at, .. }
            | Event::SettingsChanged { at, .. }
            | Event::DeliveryFailed { at, .. }
            | Event::Receipt { at, .. }
            | Event::SupervisorAction { at, .. }
            | Event::AgentSaved { at, .. }
            | Event::PasswordSet { at, .. }
            | Event::AgentEnabled { at, .. }
            | Event::QueueSaved { at, .. }
            | Event::IdleReasonsChanged { at, .. } => Some(*at),
            Event::ConversationCreated { .. }
            | Event::OfferRescinded { .. }
            | Event::WrapupRequired { .. } => None,
        }
    }

    /// The `"type"` name of this event on the wire.
    pub fn type_name(&self) -> &'static str {
        match self {
            Event::AgentState { .. } => "agent_state",
            Event::ConversationCreated { .. } => "conversation_created",
            Event::Queued { .. } => "queued",
            Event::Offer { .. } => "offer",
            Event::OfferRescinded { .. } => "offer_rescinded",
            Event::ConversationStarted { .. } => "conversation_started",
            Event::Message { .. } => "message",
            Event::MessageRedacted { .. } => "message_redacted",
            Event::Transferred { .. } => "transferred",
            Event::ConferenceRequested { .. } => "conference_requested",
            Event::ConferenceCancelled { .. } => "conference_cancelled",
            Event::ConferenceStarted { .. } => "conference_started",
            Event::ConferenceEnded { .. } => "conference_ended",
            Event::ParticipantLeft { .. } => "participant_left",
            Event::ConversationInterrupted { .. } => "conversation_interrupted",
            Event::ConversationEnded { .. } => "conversation_ended",
            Event::ConversationDropped { .. } => "conversation_dropped",
            Event::WrapupRequired { .. } => "wrapup_required",
            Event::WrapupSubmitted { .. } => "wrapup_submitted",
            Event::QueueDeleted { .. } => "queue_deleted",
            Event::ConversationArchived { .. } => "conversation_archived",
            Event::SettingsChanged { .. } => "settings_changed",
            Event::DeliveryFailed { .. } => "delivery_failed",
            Event::Receipt { .. } => "receipt",
            Event::SupervisorAction { .. } => "supervisor_action",
            Event::AgentSaved { .. } => "agent_saved",
            Event::PasswordSet { .. } => "password_set",
            Event::AgentEnabled { .. } => "agent_enabled",
            Event::QueueSaved { .. } => "queue_saved",
            Event::IdleReasonsChanged { .. } => "idle_reasons_changed",
        }
    }
}

/// Who is told about an event.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Audience {
    /// Agents whose desktop receives the event.
    pub agents: Vec<AgentId>,
    /// The conversation's customer receives it through its channel (agent
    /// messages, end of conversation).
    pub customer: bool,
}

/// An event with the people it concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Emitted {
    pub event: Event,
    pub audience: Audience,
}

/// An agent's message on its way to the customer: the only place raw text
/// leaves the engine, and only towards the customer's channel. The engine
/// decided how it travels (its channel's adapter built the request, or it
/// is pushed on the customer's socket); the server only carries it out and
/// reports a failure back as [`crate::Command::DeliveryFailed`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub conversation: ConversationId,
    pub channel: String,
    pub customer: String,
    pub author: AgentId,
    pub text: String,
    /// The files the reply carries (the server's copies, by id), sent
    /// before the text; the text may then be blank.
    pub attachments: Vec<crate::model::Attachment>,
    /// Index of the reply in the conversation's transcript.
    pub message: usize,
    pub carrier: Carrier,
}

/// How a [`Delivery`] travels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Carrier {
    /// Send this request (built by the channel's adapter).
    Request(OutgoingRequest),
    /// Push the text on the customer's own connection (web chat).
    Push,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_state_names_read_back_and_an_unknown_one_is_refused() {
        for name in ["available", "idle", "rona", "logged_out"] {
            let json = format!(r#"{{"type":"agent_state","agent":"a","state":"{name}","at":1}}"#);
            let ev: Event = serde_json::from_str(&json).expect("a known state reads");
            assert_eq!(serde_json::to_string(&ev).expect("serializes"), json);
        }
        // Before, any other name replayed as "logged_out" without a word.
        let busy = r#"{"type":"agent_state","agent":"a","state":"busy","at":1}"#;
        assert!(serde_json::from_str::<Event>(busy).is_err());
    }
}
