//! The sans-IO engine of one tenant: `(state, command, now) -> events`.
//!
//! [`Engine::handle`] validates a command against the current state, then
//! emits events; every event is applied to the state by [`Engine::apply`],
//! the one place state changes, so replaying a journal through `apply`
//! rebuilds the same state. [`Engine::tick`] turns expired offers into RONA;
//! [`Engine::next_deadline`] tells the driver when to call it.
//! **Invariant:** no I/O, no clock, no randomness: the same commands at the
//! same times give the same events.

use crate::channel::{BuiltinChannels, ChannelDirectory};
use crate::command::{Command, CommandError};
use crate::event::{Audience, Delivery, Emitted, Event};
use crate::masking::Masker;
use crate::model::Account;
use crate::model::{
    AgentConfig, AgentId, AgentState, ConversationId, ConversationState, Millis, Party,
    QueueConfig, QueueId, TenantSettings, PREVIEW_CHARS,
};
use crate::routing::{LongestIdle, RoutingPolicy};
use crate::wrapup::{BuiltinWrapUp, WrapUpReasons};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;

mod admin;
mod agent;
mod apply;
mod conversations;
mod customer;
mod customers;
mod decide;
mod dispatch;
mod invariants;
mod receipts;
mod recent;
mod snapshot;
mod state;
mod supervisor;
mod transcript;
pub use admin::AdminSnapshot;
pub use conversations::Conversations;
pub use customer::CUSTOMER_LEFT;
pub use customers::CustomerMap;
pub use recent::RecentIds;
pub use snapshot::{AgentSnapshot, Snapshot};
pub use state::{
    plausible_sent_at, Agent, Conversation, PastConversation, PendingOffer, HISTORY_KEPT,
    SENT_AT_TRUSTED_MS,
};
pub use transcript::transcript_of;

/// How long a channel's message id is remembered to drop redeliveries
/// (Meta redelivers unacknowledged webhooks for up to a day or so).
pub const DEDUP_WINDOW_MS: Millis = 48 * 3600 * 1000;

/// Longest customer message accepted, in characters.
pub const MAX_CUSTOMER_MESSAGE_CHARS: usize = 20_000;

/// The tenant's extension points for one call.
#[derive(Clone, Copy)]
pub struct Extensions<'a> {
    pub routing: &'a dyn RoutingPolicy,
    pub wrapup: &'a dyn WrapUpReasons,
    /// Asked how an agent's reply reaches the customer.
    pub channels: &'a dyn ChannelDirectory,
}

static BUILTIN_ROUTING: LongestIdle = LongestIdle;

impl Extensions<'static> {
    /// The built-in policy and wrap-up list.
    pub fn builtin() -> Extensions<'static> {
        Extensions {
            routing: &BUILTIN_ROUTING,
            wrapup: BuiltinWrapUp::shared(),
            channels: &BuiltinChannels,
        }
    }
}

/// What one call produced.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Output {
    pub emitted: Vec<Emitted>,
    pub deliveries: Vec<Delivery>,
}

impl Output {
    /// The events alone, in order.
    pub fn events(&self) -> impl Iterator<Item = &Event> {
        self.emitted.iter().map(|e| &e.event)
    }
}

/// One tenant's state.
#[derive(Debug, Clone)]
pub struct Engine {
    settings: TenantSettings,
    masker: Masker,
    queues: BTreeMap<QueueId, QueueConfig>,
    agents: BTreeMap<AgentId, Agent>,
    /// Shared with snapshots, in chunks (see [`Conversations`]).
    conversations: Conversations,
    open_by_customer: HashMap<(String, String), ConversationId>,
    /// Shared with snapshots, in buckets (see [`CustomerMap`]).
    last_agent: CustomerMap<AgentId>,
    /// Each customer identity's archived conversations, oldest first, at
    /// most [`HISTORY_KEPT`]; shared with snapshots, in buckets.
    history: CustomerMap<Arc<VecDeque<PastConversation>>>,
    /// Queued conversations of each queue, first to serve first.
    waiting: BTreeMap<QueueId, BTreeSet<(Millis, ConversationId)>>,
    /// Queues `dispatch` must look at: a conversation joined it, one of
    /// its agents can take more, or the policy kept conversations queued
    /// while someone was free. Every other queue has nobody waiting or
    /// nobody free to take them (checked by `check_invariants`).
    dirty: BTreeSet<QueueId>,
    /// The conversations that concern each agent (participant, offered
    /// to it, owing a wrap-up): what its views read instead of scanning
    /// the tenant. Kept by `apply`; never empty sets.
    by_agent: HashMap<AgentId, BTreeSet<ConversationId>>,
    /// Pending offers by expiry.
    deadlines: BTreeSet<(Millis, ConversationId)>,
    /// Closed conversations by the time they are archived.
    closing: BTreeSet<(Millis, ConversationId)>,
    next_id: ConversationId,
    /// Queues an admin deleted (kept so a restart with the same
    /// configuration does not bring them back).
    deleted_queues: BTreeSet<QueueId>,
    /// Channel message ids seen recently, to drop redeliveries.
    /// (Each id is stored once, shared by both.)
    recent_external: HashMap<Arc<str>, Millis>,
    recent_order: RecentIds,
    /// Each agent's role, admin-set password hash and disabled flag (the
    /// roles of configured agents are seeded by [`Engine::seed_roles`]).
    accounts: BTreeMap<AgentId, Account>,
    /// Agents and queues an admin created or changed: snapshots carry their
    /// whole configuration, which then wins over the file's.
    managed_agents: BTreeSet<AgentId>,
    managed_queues: BTreeSet<QueueId>,
    /// Whether an admin replaced the idle reasons.
    managed_idle_reasons: bool,
}

fn agents_aud(agents: Vec<AgentId>) -> Audience {
    Audience {
        agents,
        customer: false,
    }
}

fn one(agent: &str) -> Audience {
    agents_aud(vec![agent.to_string()])
}

fn nobody() -> Audience {
    Audience::default()
}

type Waiting = BTreeMap<QueueId, BTreeSet<(Millis, ConversationId)>>;

fn enqueue(waiting: &mut Waiting, queue: &str, at: Millis, id: ConversationId) {
    match waiting.get_mut(queue) {
        Some(w) => {
            w.insert((at, id));
        }
        None => {
            waiting.insert(queue.to_string(), BTreeSet::from([(at, id)]));
        }
    }
}

fn dequeue(waiting: &mut Waiting, queue: &str, at: Millis, id: ConversationId) {
    if let Some(w) = waiting.get_mut(queue) {
        w.remove(&(at, id));
        if w.is_empty() {
            waiting.remove(queue);
        }
    }
}

fn preview_of(text: &str) -> String {
    match text.char_indices().nth(PREVIEW_CHARS) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_string(),
    }
}

impl Engine {
    /// A tenant with these queues and agents, every agent logged out.
    pub fn new(
        settings: TenantSettings,
        masker: Masker,
        queues: Vec<QueueConfig>,
        agents: Vec<AgentConfig>,
    ) -> Self {
        Engine {
            settings,
            masker,
            queues: queues.into_iter().map(|q| (q.id.clone(), q)).collect(),
            agents: agents
                .into_iter()
                .map(|config| {
                    let agent = Agent {
                        config,
                        stamp: crate::routing::next_config_stamp(),
                        state: AgentState::LoggedOut,
                        idle_since: 0,
                        conversations: BTreeSet::new(),
                        offers: BTreeSet::new(),
                        wrapups: BTreeSet::new(),
                    };
                    (agent.config.id.clone(), agent)
                })
                .collect(),
            conversations: Conversations::default(),
            open_by_customer: HashMap::new(),
            last_agent: CustomerMap::default(),
            history: CustomerMap::default(),
            waiting: BTreeMap::new(),
            dirty: BTreeSet::new(),
            by_agent: HashMap::new(),
            deadlines: BTreeSet::new(),
            closing: BTreeSet::new(),
            next_id: 1,
            deleted_queues: BTreeSet::new(),
            recent_external: HashMap::new(),
            recent_order: RecentIds::default(),
            accounts: BTreeMap::new(),
            managed_agents: BTreeSet::new(),
            managed_queues: BTreeSet::new(),
            managed_idle_reasons: false,
        }
    }

    pub fn settings(&self) -> &TenantSettings {
        &self.settings
    }

    pub fn masker(&self) -> &Masker {
        &self.masker
    }

    pub fn queues(&self) -> impl Iterator<Item = &QueueConfig> {
        self.queues.values()
    }

    pub fn queue(&self, id: &str) -> Option<&QueueConfig> {
        self.queues.get(id)
    }

    pub fn agents(&self) -> impl Iterator<Item = &Agent> {
        self.agents.values()
    }

    pub fn agent(&self, id: &str) -> Option<&Agent> {
        self.agents.get(id)
    }

    pub fn conversations(&self) -> impl Iterator<Item = &Conversation> {
        self.conversations.values()
    }

    /// How much a snapshot holds, in entries: the conversations kept,
    /// their messages and the customers with a history. The server spaces
    /// snapshots by it, so that encoding them costs the same per event at
    /// any size, however long the conversations grow. A walk over the
    /// conversations: taken once per snapshot, not per command.
    pub fn size(&self) -> usize {
        let messages: usize = self.conversations.values().map(|c| c.messages.len()).sum();
        self.conversations.len() + messages + self.history.len()
    }

    /// The customer's open conversation on `channel`, if any.
    pub fn open_conversation_of(&self, channel: &str, customer: &str) -> Option<&Conversation> {
        let id = self
            .open_by_customer
            .get(&(channel.to_string(), customer.to_string()))?;
        self.conversations.get(id)
    }

    /// The earlier (archived) conversations of the customer of
    /// conversation `id`, on the same channel identity, most recent first.
    pub fn history_of(&self, id: ConversationId) -> Vec<PastConversation> {
        let Some(c) = self.conversations.get(&id) else {
            return Vec::new();
        };
        self.history
            .get(&(c.channel.clone(), c.customer.clone()))
            .map(|h| h.iter().rev().cloned().collect())
            .unwrap_or_default()
    }

    pub fn conversation(&self, id: ConversationId) -> Option<&Conversation> {
        self.conversations.get(&id)
    }

    /// Queued conversations in the order they will be served (oldest
    /// first over every queue).
    pub fn waiting(&self) -> impl Iterator<Item = ConversationId> + '_ {
        let mut heads: Vec<_> = self.waiting.values().map(|w| w.iter().peekable()).collect();
        std::iter::from_fn(move || {
            let (_, i) = heads
                .iter_mut()
                .enumerate()
                .filter_map(|(i, h)| h.peek().map(|k| (**k, i)))
                .min()?;
            heads.get_mut(i)?.next().map(|(_, id)| *id)
        })
    }

    /// How many conversations wait in `queue`.
    pub fn queue_depth(&self, queue: &str) -> usize {
        self.waiting.get(queue).map_or(0, BTreeSet::len)
    }

    /// The conversations that concern `agent` (see
    /// [`Conversation::concerns`]), by id, from the agent index: the cost
    /// does not grow with the rest of the tenant.
    pub fn conversations_of<'a>(
        &'a self,
        agent: &str,
    ) -> impl Iterator<Item = &'a Conversation> + 'a {
        self.by_agent
            .get(agent)
            .into_iter()
            .flatten()
            .filter_map(|id| self.conversations.get(id))
    }

    /// When [`Engine::tick`] next has work: the earliest offer expiry.
    pub fn next_deadline(&self) -> Option<Millis> {
        let offer = self.deadlines.first().map(|(at, _)| *at);
        let archive = self.closing.first().map(|(at, _)| *at);
        match (offer, archive) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Mask `text` when the tenant masks; otherwise return it as is.
    pub fn mask_for_agents(&self, text: &str) -> String {
        if self.settings.mask {
            self.masker.mask(text).into_owned()
        } else {
            text.to_string()
        }
    }

    /// Run one command at `now`. On error nothing changed.
    pub fn handle(
        &mut self,
        command: Command,
        now: Millis,
        ext: &Extensions<'_>,
    ) -> Result<Output, CommandError> {
        let mut out = Output::default();
        self.decide(command, now, ext, &mut out)?;
        self.dispatch(now, ext, &mut out);
        Ok(out)
    }

    /// Expire every offer due at `now` (the agent goes to RONA, the
    /// conversation moves on), then offer what waits.
    pub fn tick(&mut self, now: Millis, ext: &Extensions<'_>) -> Output {
        let mut out = Output::default();
        while let Some(&(at, id)) = self.deadlines.first() {
            if at > now {
                break;
            }
            self.expire_offer(id, now, ext, &mut out);
        }
        while let Some(&(at, id)) = self.closing.first() {
            if at > now {
                break;
            }
            let ev = Event::ConversationArchived {
                conversation: id,
                at: now,
            };
            self.emit(&mut out, ev, nobody());
        }
        self.dispatch(now, ext, &mut out);
        out
    }

    /// Start the archive countdown of a conversation that just closed.
    fn mark_closed_if_done(&mut self, id: ConversationId, at: Millis) {
        let retention = self.settings.archive_after_ms;
        if let Some(c) = self.conversations.get_mut(&id) {
            let closed = matches!(
                c.state,
                ConversationState::WrappedUp | ConversationState::Dropped
            ) && c.pending_wrapups.is_empty();
            if closed && c.closed_at.is_none() {
                c.closed_at = Some(at);
                self.closing.insert((at.saturating_add(retention), id));
            }
        }
    }

    /// Withdraw the offer of `conversation` from `agent`, telling that
    /// agent why.
    fn rescind(
        &mut self,
        out: &mut Output,
        conversation: ConversationId,
        agent: &str,
        reason: &str,
    ) {
        let ev = Event::OfferRescinded {
            conversation,
            agent: agent.to_string(),
            reason: reason.to_string(),
        };
        self.emit(out, ev, one(agent));
    }

    fn emit(&mut self, out: &mut Output, event: Event, audience: Audience) {
        self.apply(&event);
        out.emitted.push(Emitted { event, audience });
    }

    /// An agent who holds nothing more is logged out (their offers
    /// withdrawn first); nothing if they already are.
    fn log_out(&mut self, agent: &str, now: Millis, out: &mut Output) {
        if self
            .agents
            .get(agent)
            .is_none_or(|a| a.state == AgentState::LoggedOut)
        {
            return;
        }
        self.withdraw_offers_of(agent, "agent_unavailable", now, out);
        let ev = Event::AgentState {
            agent: agent.to_string(),
            state: crate::model::StateName::LoggedOut,
            reason: None,
            at: now,
        };
        self.emit(out, ev, one(agent));
    }

    /// A conversation no agent has is closed without one (`reason`: the
    /// customer left, a supervisor closed it, its queue was deleted, a
    /// transfer nobody took); only the customer is told.
    fn drop_unhandled(&mut self, out: &mut Output, id: ConversationId, reason: &str, now: Millis) {
        let ev = Event::ConversationDropped {
            conversation: id,
            reason: reason.into(),
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
    }

    fn agent_mut_checked(&self, agent: &str) -> Result<&Agent, CommandError> {
        self.agents
            .get(agent)
            .ok_or(CommandError::NotFound("agent"))
    }

    /// The conversation, if `agent` may see it; the same error otherwise.
    fn visible(&self, agent: &str, id: ConversationId) -> Result<&Conversation, CommandError> {
        match self.conversations.get(&id) {
            Some(c) if c.concerns(agent) => Ok(c),
            _ => Err(CommandError::NotFound("conversation")),
        }
    }

    fn display_name(&self, agent: &str) -> String {
        self.agents
            .get(agent)
            .map(|a| a.config.name.clone())
            .unwrap_or_else(|| agent.to_string())
    }

    fn system_message(
        &mut self,
        conversation: ConversationId,
        text: String,
        now: Millis,
        audience: Audience,
        out: &mut Output,
    ) {
        let ev = Event::Message {
            conversation,
            from: Party::System,
            author: "system".into(),
            text,
            at: now,
            external_id: None,
            attachments: Vec::new(),
            sent_at: None,
        };
        self.emit(out, ev, audience);
    }
}
