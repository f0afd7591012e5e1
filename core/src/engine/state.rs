//! The engine's state: agents, conversations, their offers and the
//! earlier conversations a customer's history shows.

use crate::model::{
    AgentConfig, AgentId, AgentState, ConversationId, ConversationState, Message, Millis,
    OfferKind, QueueId, StoredCad,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// An agent and what it holds.
#[derive(Debug, Clone)]
pub struct Agent {
    pub config: AgentConfig,
    /// Names this `config` for policy hosts ([`crate::routing::Candidate::stamp`]):
    /// set anew whenever the configuration is replaced.
    pub stamp: u64,
    pub state: AgentState,
    /// Since when the agent has had no new work (longest-idle key).
    pub idle_since: Millis,
    /// Conversations it takes part in (owner or conference guest).
    pub conversations: BTreeSet<ConversationId>,
    /// Conversations offered to it, not yet accepted.
    pub offers: BTreeSet<ConversationId>,
    /// Conversations it owes a wrap-up reason for.
    pub wrapups: BTreeSet<ConversationId>,
}

impl Agent {
    /// What counts against capacity: conversations, pending offers and
    /// pending wrap-ups (capacity is freed when wrap-up is submitted).
    pub fn load(&self) -> u32 {
        let n = self.conversations.len() + self.offers.len() + self.wrapups.len();
        u32::try_from(n).unwrap_or(u32::MAX)
    }

    /// Available and under capacity: the one rule for "can be offered
    /// more work", used by routing and shown on every screen.
    pub fn can_take_more(&self) -> bool {
        self.state == AgentState::Available && self.load() < self.config.capacity
    }
}

/// A pending offer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingOffer {
    pub agent: AgentId,
    pub kind: OfferKind,
    pub expires_at: Millis,
    pub return_queue: Option<QueueId>,
}

/// A conversation and its transcript.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Conversation {
    pub id: ConversationId,
    pub channel: String,
    /// The channel's raw id of the customer: only for reaching it (and
    /// finding its open conversation); never shown to agents.
    pub customer: String,
    /// What agents and routing see of the customer: its id masked like
    /// any text when the tenant masked at creation (an SMS customer's id
    /// is its phone number). Stable for one customer.
    #[serde(default)]
    pub customer_handle: String,
    pub customer_name: String,
    pub source: String,
    pub received_at: Millis,
    pub cad: StoredCad,
    pub queue: QueueId,
    pub state: ConversationState,
    pub queued_at: Millis,
    pub owner: Option<AgentId>,
    pub guest: Option<AgentId>,
    pub offer: Option<PendingOffer>,
    pub preview: String,
    pub messages: Vec<Message>,
    pub pending_wrapups: BTreeSet<AgentId>,
    /// Why it was interrupted (an admin deleted its queue…), if it was.
    #[serde(default)]
    pub interrupted_reason: Option<String>,
    /// When it closed (wrapped up, or dropped with no wrap-up owed): the
    /// start of its archive countdown.
    #[serde(default)]
    pub closed_at: Option<Millis>,
    /// The wrap-up reasons submitted for it, in order.
    #[serde(default)]
    pub wrapup_reasons: Vec<String>,
    /// When the customer last wrote, by the channel's clock when it gave
    /// a plausible one (else by arrival): where reply windows start.
    #[serde(default)]
    pub customer_wrote_at: Option<Millis>,
}

/// One earlier conversation of a customer, as its history shows it
/// ([`Engine::history_of`]): no text, ids and times only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PastConversation {
    pub conversation: ConversationId,
    pub opened_at: Millis,
    pub closed_at: Option<Millis>,
    pub queue: QueueId,
    /// The agent who last owned it (none if it was never accepted).
    pub agent: Option<AgentId>,
    pub wrapup_reasons: Vec<String>,
    /// Why it was interrupted, if it was.
    pub interrupted_reason: Option<String>,
}

/// How far before its arrival a channel's send time is believed: Meta
/// redelivers a webhook for hours, not for a week. A time outside
/// `[arrival - 7 days, arrival]` (a skewed clock, a made-up value) is
/// dropped and the arrival time stands in for it.
pub const SENT_AT_TRUSTED_MS: Millis = 7 * 24 * 3600 * 1000;

/// The channel's send time of a message arriving at `arrival`, when
/// plausible (see [`SENT_AT_TRUSTED_MS`]).
pub fn plausible_sent_at(sent_at: Option<Millis>, arrival: Millis) -> Option<Millis> {
    sent_at.filter(|&t| t <= arrival && arrival - t <= SENT_AT_TRUSTED_MS)
}

/// Earlier conversations kept per customer identity (the most recent).
pub const HISTORY_KEPT: usize = 20;

impl Conversation {
    /// Agents taking part (owner, then guest).
    pub fn participants(&self) -> Vec<AgentId> {
        self.owner
            .iter()
            .chain(self.guest.iter())
            .cloned()
            .collect()
    }

    /// The agents it concerns (see [`Conversation::concerns`]), each once.
    pub fn concerned(&self) -> Vec<AgentId> {
        let mut out: Vec<AgentId> = Vec::new();
        let offered = self.offer.as_ref().map(|o| &o.agent);
        for a in self
            .owner
            .iter()
            .chain(self.guest.iter())
            .chain(offered)
            .chain(self.pending_wrapups.iter())
        {
            if !out.contains(a) {
                out.push(a.clone());
            }
        }
        out
    }

    /// Whether `agent` may see this conversation: participant, offered to
    /// it, or owing a wrap-up for it.
    pub fn concerns(&self, agent: &str) -> bool {
        self.owner.as_deref() == Some(agent)
            || self.guest.as_deref() == Some(agent)
            || self.offer.as_ref().is_some_and(|o| o.agent == agent)
            || self.pending_wrapups.contains(agent)
    }
}
