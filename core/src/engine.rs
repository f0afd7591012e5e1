//! The sans-IO engine of one tenant: `(state, command, now) -> events`.
//!
//! [`Engine::handle`] validates a command against the current state, then
//! emits events; every event is applied to the state by [`Engine::apply`],
//! the one place state changes, so replaying a journal through `apply`
//! rebuilds the same state. [`Engine::tick`] turns expired offers into RONA;
//! [`Engine::next_deadline`] tells the driver when to call it.
//! **Invariant:** no I/O, no clock, no randomness: the same commands at the
//! same times give the same events.

use crate::channel::{
    BuiltinChannels, ChannelDirectory, Outbound, OutboundContext, OutboundMessage,
};
use crate::command::{Command, CommandError, CustomerMessage};
use crate::event::{Audience, Carrier, Delivery, Emitted, Event};
use crate::masking::Masker;
use crate::model::Account;
use crate::model::{
    is_blank, strip_controls, AgentConfig, AgentId, AgentState, Cad, ConversationId,
    ConversationState, DeliveryFailure, Message, Millis, OfferKind, Party, QueueConfig, QueueId,
    StateName, StoredCad, TenantSettings, TransferNotAccepted, TransferTarget, DEFAULT_IDLE_REASON,
    DEFAULT_RONA_TIMEOUT_MS, MAX_AGENT_MESSAGE_CHARS, PREVIEW_CHARS,
};
use crate::routing::{Candidate, ConversationView, LongestIdle, RoutingPolicy};
use crate::text;
use crate::wrapup::{BuiltinWrapUp, WrapUpReasons};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::ops::Bound::{Excluded, Unbounded};
use std::sync::Arc;

mod admin;
mod customer;
pub use admin::AdminSnapshot;
mod receipts;
pub use customer::CUSTOMER_LEFT;

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

/// An agent and what it holds.
#[derive(Debug, Clone)]
pub struct Agent {
    pub config: AgentConfig,
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
    /// Boxed: a B-tree node holds eleven slots, mostly half full.
    conversations: BTreeMap<ConversationId, Box<Conversation>>,
    open_by_customer: HashMap<(String, String), ConversationId>,
    last_agent: HashMap<(String, String), AgentId>,
    /// Each customer identity's archived conversations, oldest first, at
    /// most [`HISTORY_KEPT`].
    history: HashMap<(String, String), VecDeque<PastConversation>>,
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
    recent_order: VecDeque<(Millis, Arc<str>)>,
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

/// The whole state of an engine at one point of its journal, so recovery
/// need not replay the journal from the start. Indexes are rebuilt.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Snapshot {
    pub agents: Vec<AgentSnapshot>,
    pub conversations: Vec<Conversation>,
    pub last_agent: Vec<(String, String, AgentId)>,
    /// Customers' earlier conversations; absent in older snapshots.
    #[serde(default)]
    pub history: Vec<(String, String, Vec<PastConversation>)>,
    pub deleted_queues: Vec<QueueId>,
    pub recent_external: Vec<(Millis, String)>,
    pub next_id: ConversationId,
    /// The masking setting as the journal left it (admins change it with
    /// [`Command::ChangeSettings`]); absent in older snapshots.
    #[serde(default)]
    pub mask: Option<bool>,
    /// What admins changed (agents, accounts, queues, idle reasons);
    /// absent in older snapshots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin: Option<AdminSnapshot>,
}

/// The run-time part of an agent (its configuration comes from config).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AgentSnapshot {
    pub id: AgentId,
    pub state: AgentState,
    pub idle_since: Millis,
    pub conversations: BTreeSet<ConversationId>,
    pub offers: BTreeSet<ConversationId>,
    pub wrapups: BTreeSet<ConversationId>,
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
                        state: AgentState::LoggedOut,
                        idle_since: 0,
                        conversations: BTreeSet::new(),
                        offers: BTreeSet::new(),
                        wrapups: BTreeSet::new(),
                    };
                    (agent.config.id.clone(), agent)
                })
                .collect(),
            conversations: BTreeMap::new(),
            open_by_customer: HashMap::new(),
            last_agent: HashMap::new(),
            history: HashMap::new(),
            waiting: BTreeMap::new(),
            dirty: BTreeSet::new(),
            by_agent: HashMap::new(),
            deadlines: BTreeSet::new(),
            closing: BTreeSet::new(),
            next_id: 1,
            deleted_queues: BTreeSet::new(),
            recent_external: HashMap::new(),
            recent_order: VecDeque::new(),
            accounts: BTreeMap::new(),
            managed_agents: BTreeSet::new(),
            managed_queues: BTreeSet::new(),
            managed_idle_reasons: false,
        }
    }

    /// Capture the state for a later [`Engine::restore`].
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            agents: self
                .agents
                .values()
                .map(|a| AgentSnapshot {
                    id: a.config.id.clone(),
                    state: a.state.clone(),
                    idle_since: a.idle_since,
                    conversations: a.conversations.clone(),
                    offers: a.offers.clone(),
                    wrapups: a.wrapups.clone(),
                })
                .collect(),
            conversations: self.conversations.values().map(|c| (**c).clone()).collect(),
            last_agent: self
                .last_agent
                .iter()
                .map(|((ch, cu), a)| (ch.clone(), cu.clone(), a.clone()))
                .collect(),
            history: {
                // Sorted: the same state gives the same snapshot bytes.
                let mut h: Vec<_> = self
                    .history
                    .iter()
                    .map(|((ch, cu), h)| (ch.clone(), cu.clone(), h.iter().cloned().collect()))
                    .collect();
                h.sort_by(|a: &(String, String, Vec<PastConversation>), b| {
                    (&a.0, &a.1).cmp(&(&b.0, &b.1))
                });
                h
            },
            deleted_queues: self.deleted_queues.iter().cloned().collect(),
            recent_external: self
                .recent_order
                .iter()
                .map(|(at, id)| (*at, id.to_string()))
                .collect(),
            next_id: self.next_id,
            mask: Some(self.settings.mask),
            admin: self.admin_snapshot(),
        }
    }

    /// Put back the state of a snapshot into an engine built from the
    /// current configuration (new agents start logged out; agents no
    /// longer configured are forgotten).
    pub fn restore(&mut self, snap: Snapshot) {
        if let Some(mask) = snap.mask {
            self.settings.mask = mask;
        }
        if let Some(admin) = &snap.admin {
            self.restore_admin(admin);
        }
        for q in &snap.deleted_queues {
            self.queues.remove(q);
            self.deleted_queues.insert(q.clone());
        }
        for a in self.agents.values_mut() {
            a.config.queues.retain(|q| !snap.deleted_queues.contains(q));
        }
        for s in snap.agents {
            if let Some(a) = self.agents.get_mut(&s.id) {
                a.state = s.state;
                a.idle_since = s.idle_since;
                a.conversations = s.conversations;
                a.offers = s.offers;
                a.wrapups = s.wrapups;
            }
        }
        for c in snap.conversations {
            let key = (c.channel.clone(), c.customer.clone());
            if c.state.is_open() {
                self.open_by_customer.insert(key, c.id);
            }
            if c.state == ConversationState::Queued {
                enqueue(&mut self.waiting, &c.queue, c.queued_at, c.id);
                self.dirty.insert(c.queue.clone());
            }
            for agent in c.concerned() {
                self.by_agent.entry(agent).or_default().insert(c.id);
            }
            if let Some(o) = &c.offer {
                self.deadlines.insert((o.expires_at, c.id));
            }
            if let Some(at) = c.closed_at {
                self.closing
                    .insert((at.saturating_add(self.settings.archive_after_ms), c.id));
            }
            self.conversations.insert(c.id, Box::new(c));
        }
        self.last_agent = snap
            .last_agent
            .into_iter()
            .map(|(ch, cu, a)| ((ch, cu), a))
            .collect();
        self.history = snap
            .history
            .into_iter()
            .map(|(ch, cu, h)| ((ch, cu), h.into()))
            .collect();
        for (at, id) in snap.recent_external {
            let id: Arc<str> = id.into();
            self.recent_external.insert(id.clone(), at);
            self.recent_order.push_back((at, id));
        }
        self.next_id = self.next_id.max(snap.next_id);
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
        self.conversations.values().map(|c| &**c)
    }

    /// The customer's open conversation on `channel`, if any.
    pub fn open_conversation_of(&self, channel: &str, customer: &str) -> Option<&Conversation> {
        let id = self
            .open_by_customer
            .get(&(channel.to_string(), customer.to_string()))?;
        self.conversations.get(id).map(|c| &**c)
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
        self.conversations.get(&id).map(|c| &**c)
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
            .filter_map(|id| self.conversations.get(id).map(|c| &**c))
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

    /// A sensitive item the customer split over their previous message
    /// and `raw` (the new one): the previous message's index, its text
    /// masked, and `raw` masked. Only when the tenant masks and the last
    /// message of the transcript is the customer's.
    fn split_item(&self, c: &Conversation, raw: &str) -> Option<(usize, String, String)> {
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

    fn decide(
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
                if a.state != AgentState::LoggedOut {
                    self.withdraw_offers_of(&agent, "agent_unavailable", now, out);
                    let ev = Event::AgentState {
                        agent: agent.clone(),
                        state: StateName::LoggedOut,
                        reason: None,
                        at: now,
                    };
                    self.emit(out, ev, one(&agent));
                }
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
    fn agent_gone(
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

    fn customer_message(
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

    fn accept(
        &mut self,
        agent: &str,
        id: ConversationId,
        now: Millis,
        out: &mut Output,
    ) -> Result<(), CommandError> {
        let c = self.visible(agent, id)?;
        let Some(offer) = c.offer.as_ref().filter(|o| o.agent == agent) else {
            return Err(CommandError::Conflict("nothing to accept".into()));
        };
        match offer.kind {
            OfferKind::Queue | OfferKind::Transfer => {
                let ev = Event::ConversationStarted {
                    conversation: id,
                    agent: agent.to_string(),
                    queue: c.queue.clone(),
                    channel: c.channel.clone(),
                    customer: c.customer_handle.clone(),
                    customer_name: c.customer_name.clone(),
                    source: c.source.clone(),
                    received_at: c.received_at,
                    cad: c.cad.to_cad(),
                    at: now,
                };
                self.emit(out, ev, one(agent));
            }
            OfferKind::Conference => {
                let participants = c.participants();
                self.guest_joins(id, agent, participants, now, out);
            }
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn agent_message(
        &mut self,
        agent: &str,
        id: ConversationId,
        text: String,
        attachments: Vec<crate::model::Attachment>,
        now: Millis,
        ext: &Extensions<'_>,
        out: &mut Output,
    ) -> Result<(), CommandError> {
        let c = self.visible(agent, id)?;
        let is_participant = c.owner.as_deref() == Some(agent) || c.guest.as_deref() == Some(agent);
        match c.state {
            ConversationState::Active
            | ConversationState::ConferenceRequested
            | ConversationState::Conference
                if is_participant => {}
            ConversationState::Interrupted => {
                return Err(CommandError::Conflict(
                    "this conversation was interrupted: it can only be ended".into(),
                ))
            }
            _ => {
                return Err(CommandError::Conflict(
                    "you are not in this conversation".into(),
                ))
            }
        }
        // The limit is on what was sent, before anything is stripped.
        let n = text.chars().count();
        if n > MAX_AGENT_MESSAGE_CHARS {
            return Err(CommandError::Invalid(format!(
                "message is longer than {MAX_AGENT_MESSAGE_CHARS} characters ({n})"
            )));
        }
        let text = strip_controls(&text).into_owned();
        if is_blank(&text) && attachments.is_empty() {
            return Err(CommandError::Invalid("message is empty".into()));
        }
        check_reply_attachments(&attachments)?;
        // The text is valid: ask the channel how it reaches the customer.
        // A refusal (Messenger past its 7-day window) refuses the command,
        // with nothing stored.
        let message = OutboundMessage {
            conversation: id,
            customer: c.customer.clone(),
            author: agent.to_string(),
            text: text.clone(),
        };
        let ctx = OutboundContext {
            now,
            last_customer_message_at: c.customer_wrote_at,
        };
        let carrier = match ext.channels.outbound(&c.channel, &message, &ctx) {
            Some(Ok(Outbound::Refuse(reason))) => return Err(CommandError::Conflict(reason)),
            Some(Ok(Outbound::Send(request))) => Ok(Carrier::Request(request)),
            Some(Ok(Outbound::Push)) => Ok(Carrier::Push),
            Some(Err(_)) => Err(DeliveryFailure::AdapterFailed),
            None => Err(DeliveryFailure::NoAdapter),
        };
        let index = c.messages.len();
        let channel = c.channel.clone();
        let delivery = |carrier| Delivery {
            conversation: id,
            channel: c.channel.clone(),
            customer: c.customer.clone(),
            author: agent.to_string(),
            text: text.clone(),
            attachments: attachments.clone(),
            message: index,
            carrier,
        };
        let carrier = carrier.map(delivery);
        let participants = c.participants();
        let aud = Audience {
            agents: participants.clone(),
            customer: true,
        };
        let ev = Event::Message {
            conversation: id,
            from: Party::Agent,
            author: agent.to_string(),
            text: self.mask_for_agents(&text),
            at: now,
            external_id: None,
            attachments: self.mask_attachments(&attachments),
            sent_at: None,
        };
        self.emit(out, ev, aud);
        match carrier {
            Ok(delivery) => out.deliveries.push(delivery),
            Err(reason) => {
                let ev = Event::DeliveryFailed {
                    conversation: id,
                    channel,
                    message: index,
                    reason,
                    at: now,
                };
                self.emit(out, ev, agents_aud(participants));
            }
        }
        Ok(())
    }

    fn transfer(
        &mut self,
        agent: &str,
        id: ConversationId,
        to: TransferTarget,
        now: Millis,
        ext: &Extensions<'_>,
        out: &mut Output,
    ) -> Result<(), CommandError> {
        let c = self.visible(agent, id)?;
        if c.owner.as_deref() != Some(agent) {
            return Err(CommandError::Conflict("only the owner can transfer".into()));
        }
        match c.state {
            ConversationState::Active => {}
            ConversationState::Interrupted => {
                return Err(CommandError::Conflict(
                    "this conversation was interrupted: it can only be ended".into(),
                ))
            }
            ConversationState::ConferenceRequested | ConversationState::Conference => {
                return Err(CommandError::Conflict("end the conference first".into()))
            }
            _ => return Err(CommandError::Conflict("conversation is not active".into())),
        }
        let from_queue = c.queue.clone();
        let lang = self.settings.language;
        let name = self.display_name(agent);
        let line = match &to {
            TransferTarget::Queue(q) => {
                let queue = self.queues.get(q).ok_or(CommandError::NotFound("queue"))?;
                text::transferred_to_queue(lang, &name, &queue.name)
            }
            TransferTarget::Agent(b) => {
                if b == agent {
                    return Err(CommandError::Conflict(
                        "you cannot transfer to yourself".into(),
                    ));
                }
                let target = self.agents.get(b).ok_or(CommandError::NotFound("agent"))?;
                if !target.can_take_more() {
                    return Err(CommandError::Conflict(format!(
                        "agent {} is not available",
                        target.config.name
                    )));
                }
                text::transferred_to_agent(lang, &name, &target.config.name)
            }
        };
        let reasons = ext.wrapup.reasons(&from_queue).to_vec();
        self.system_message(id, line, now, one(agent), out);
        let ev = Event::Transferred {
            conversation: id,
            agent: agent.to_string(),
            to: to.clone(),
            at: now,
        };
        self.emit(out, ev, one(agent));
        let ev = Event::WrapupRequired {
            conversation: id,
            agent: agent.to_string(),
            reasons,
        };
        self.emit(out, ev, one(agent));
        match to {
            TransferTarget::Queue(queue) => {
                self.emit(
                    out,
                    Event::Queued {
                        conversation: id,
                        queue,
                        at: now,
                    },
                    nobody(),
                );
            }
            TransferTarget::Agent(b) => {
                self.offer(id, &b, OfferKind::Transfer, Some(from_queue), 0, now, out);
            }
        }
        Ok(())
    }

    fn invite(
        &mut self,
        agent: &str,
        id: ConversationId,
        invitee: &str,
        now: Millis,
        out: &mut Output,
    ) -> Result<(), CommandError> {
        let c = self.visible(agent, id)?;
        if c.owner.as_deref() != Some(agent) {
            return Err(CommandError::Conflict(
                "only the owner can start a conference".into(),
            ));
        }
        match c.state {
            ConversationState::Active => {}
            ConversationState::ConferenceRequested | ConversationState::Conference => {
                return Err(CommandError::Conflict(
                    "a conference is already under way".into(),
                ))
            }
            ConversationState::Interrupted => {
                return Err(CommandError::Conflict(
                    "this conversation was interrupted: it can only be ended".into(),
                ))
            }
            _ => return Err(CommandError::Conflict("conversation is not active".into())),
        }
        if invitee == agent {
            return Err(CommandError::Conflict("you are already in it".into()));
        }
        let target = self
            .agents
            .get(invitee)
            .ok_or(CommandError::NotFound("agent"))?;
        if !target.can_take_more() {
            return Err(CommandError::Conflict(format!(
                "agent {} is not available",
                target.config.name
            )));
        }
        let ev = Event::ConferenceRequested {
            conversation: id,
            agent: agent.to_string(),
            invitee: invitee.to_string(),
            at: now,
        };
        self.emit(out, ev, one(agent));
        self.offer(id, invitee, OfferKind::Conference, None, 0, now, out);
        Ok(())
    }

    /// End the conversation for everyone; every participant owes a wrap-up.
    fn end_conversation(
        &mut self,
        id: ConversationId,
        by: &str,
        now: Millis,
        ext: &Extensions<'_>,
        out: &mut Output,
    ) {
        let Some(c) = self.conversations.get(&id) else {
            return;
        };
        if let Some(offer) = c.offer.clone() {
            self.rescind(out, id, &offer.agent, "ended");
        }
        let Some(c) = self.conversations.get(&id) else {
            return;
        };
        let participants = c.participants();
        let reasons = ext.wrapup.reasons(&c.queue).to_vec();
        let ev = Event::ConversationEnded {
            conversation: id,
            by: by.to_string(),
            at: now,
        };
        self.emit(
            out,
            ev,
            Audience {
                agents: participants.clone(),
                customer: true,
            },
        );
        for agent in participants {
            let ev = Event::WrapupRequired {
                conversation: id,
                agent: agent.clone(),
                reasons: reasons.clone(),
            };
            self.emit(out, ev, one(&agent));
        }
    }

    fn delete_queue(
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
                    let ev = Event::ConversationDropped {
                        conversation: id,
                        reason: "queue_deleted".into(),
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
                _ => {
                    let aud = agents_aud(self.conversations[&id].participants());
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

    #[allow(clippy::too_many_arguments)] // one call site per offer kind; a struct would only rename them
    fn offer(
        &mut self,
        id: ConversationId,
        agent: &str,
        kind: OfferKind,
        return_queue: Option<QueueId>,
        generation: u64,
        now: Millis,
        out: &mut Output,
    ) {
        let Some(c) = self.conversations.get(&id) else {
            return;
        };
        let timeout = self
            .queues
            .get(&c.queue)
            .map(|q| q.rona_timeout_ms)
            .unwrap_or(DEFAULT_RONA_TIMEOUT_MS);
        let ev = Event::Offer {
            conversation: id,
            agent: agent.to_string(),
            kind,
            queue: c.queue.clone(),
            source: c.source.clone(),
            channel: c.channel.clone(),
            customer_name: c.customer_name.clone(),
            received_at: c.received_at,
            preview: c.preview.clone(),
            expires_at: now + timeout,
            generation,
            return_queue,
            at: now,
        };
        self.emit(out, ev, one(agent));
    }

    fn withdraw_offers_of(&mut self, agent: &str, reason: &str, now: Millis, out: &mut Output) {
        let offers: Vec<ConversationId> = self
            .agents
            .get(agent)
            .map(|a| a.offers.iter().copied().collect())
            .unwrap_or_default();
        for id in offers {
            self.withdraw_offer(id, reason, now, out);
        }
    }

    /// Take back the pending offer of `id`, and move the conversation on:
    /// back to its queue, dropped, or (a conference invitation) back to the
    /// owner alone.
    fn withdraw_offer(&mut self, id: ConversationId, reason: &str, now: Millis, out: &mut Output) {
        let Some(c) = self.conversations.get(&id) else {
            return;
        };
        let Some(offer) = c.offer.clone() else {
            return;
        };
        let (queue, queued_at, received_at, owner) =
            (c.queue.clone(), c.queued_at, c.received_at, c.owner.clone());
        self.rescind(out, id, &offer.agent, reason);
        match offer.kind {
            OfferKind::Queue => {
                let ev = Event::Queued {
                    conversation: id,
                    queue,
                    at: queued_at,
                };
                self.emit(out, ev, nobody());
            }
            OfferKind::Transfer => {
                let back = offer
                    .return_queue
                    .filter(|q| self.queues.contains_key(q))
                    .filter(|_| {
                        self.settings.transfer_not_accepted == TransferNotAccepted::ReturnToQueue
                    });
                let name = self.display_name(&offer.agent);
                match back {
                    Some(q) => {
                        self.system_message(
                            id,
                            text::transfer_declined(self.settings.language, &name),
                            now,
                            nobody(),
                            out,
                        );
                        // Ahead of conversations that arrived after this one:
                        // the customer has waited already.
                        let ev = Event::Queued {
                            conversation: id,
                            queue: q,
                            at: received_at,
                        };
                        self.emit(out, ev, nobody());
                    }
                    None => {
                        let ev = Event::ConversationDropped {
                            conversation: id,
                            reason: "transfer_not_accepted".into(),
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
                }
            }
            OfferKind::Conference => {
                let aud = owner.map(|o| one(&o)).unwrap_or_default();
                let ev = Event::ConferenceCancelled {
                    conversation: id,
                    invitee: offer.agent.clone(),
                    reason: reason.to_string(),
                    at: now,
                };
                self.emit(out, ev, aud);
            }
        }
    }

    fn expire_offer(
        &mut self,
        id: ConversationId,
        now: Millis,
        _ext: &Extensions<'_>,
        out: &mut Output,
    ) {
        let agent = match self.conversations.get(&id).and_then(|c| c.offer.as_ref()) {
            Some(o) => o.agent.clone(),
            None => {
                // Stale index entry: drop it so tick always makes progress.
                self.deadlines.retain(|(_, c)| *c != id);
                return;
            }
        };
        self.withdraw_offer(id, "timeout", now, out);
        let is_available = self
            .agents
            .get(&agent)
            .is_some_and(|a| a.state == AgentState::Available);
        if is_available {
            let ev = Event::AgentState {
                agent: agent.clone(),
                state: StateName::Rona,
                reason: None,
                at: now,
            };
            self.emit(out, ev, one(&agent));
        }
        self.withdraw_offers_of(&agent, "agent_unavailable", now, out);
    }

    /// Whether some agent of `queue` can take more now.
    fn has_candidate(&self, queue: &str) -> bool {
        self.agents
            .values()
            .any(|a| a.can_take_more() && a.config.queues.iter().any(|q| q == queue))
    }

    /// Whether `dispatch` has work in `queue`: someone waits and someone
    /// is free to take it.
    fn unsettled(&self, queue: &str) -> bool {
        self.queue_depth(queue) > 0 && self.has_candidate(queue)
    }

    /// Offer waiting conversations, oldest first, to free agents. Only
    /// the queues where something changed (`dirty`) are looked at, and
    /// each only while one of its agents can take more: the policy is
    /// asked exactly what a scan of every waiting conversation would ask
    /// (the others have nobody free), in the same order, at a cost that
    /// does not grow with the queues.
    fn dispatch(&mut self, now: Millis, ext: &Extensions<'_>, out: &mut Output) {
        if self.dirty.is_empty() {
            return;
        }
        let dirty = std::mem::take(&mut self.dirty);
        // Each queue with work, and the last conversation looked at in it.
        let mut live: Vec<(QueueId, Option<(Millis, ConversationId)>)> = dirty
            .into_iter()
            .filter(|q| self.unsettled(q))
            .map(|q| (q, None))
            .collect();
        loop {
            // The oldest conversation not yet looked at, over those queues.
            let next = live
                .iter()
                .enumerate()
                .filter_map(|(i, (q, after))| {
                    let w = self.waiting.get(q)?;
                    let k = match after {
                        None => w.first(),
                        Some(k) => w.range((Excluded(*k), Unbounded)).next(),
                    }?;
                    Some((*k, i))
                })
                .min();
            let Some((key, i)) = next else {
                break;
            };
            if let Some(slot) = live.get_mut(i) {
                slot.1 = Some(key);
            }
            let id = key.1;
            let decided = self.with_routing_inputs(id, |view, candidates| {
                ext.routing
                    .route(view, candidates)
                    .resolve(candidates, ext.routing.generation())
            });
            let Some(chosen) = decided else {
                continue;
            };
            if let Some((agent, generation)) = chosen {
                self.offer(id, &agent, OfferKind::Queue, None, generation, now, out);
                // Only an offer uses up capacity: look again only after one.
                live.retain(|(q, _)| self.has_candidate(q));
            }
        }
        // Someone is still free there and the policy kept conversations
        // queued: it is asked again next time, as a full scan would.
        for (q, _) in live {
            if self.unsettled(&q) {
                self.dirty.insert(q);
            }
        }
    }

    /// What a routing policy is asked about waiting conversation `id` in
    /// the present state: its view and the candidates (Available agents
    /// of its queue with spare capacity, in id order). `None` when there
    /// is no such conversation or nobody can take it. `dispatch` asks
    /// through this, and so does a replay of the journal, which calls it
    /// just before applying each offer made from a queue.
    pub fn with_routing_inputs<R>(
        &self,
        id: ConversationId,
        f: impl FnOnce(&ConversationView<'_>, &[Candidate<'_>]) -> R,
    ) -> Option<R> {
        let c = self.conversations.get(&id)?;
        let candidates: Vec<Candidate<'_>> = self
            .agents
            .values()
            .filter(|a| a.can_take_more() && a.config.queues.contains(&c.queue))
            .map(|a| Candidate {
                id: &a.config.id,
                name: &a.config.name,
                load: a.load(),
                capacity: a.config.capacity,
                idle_since: a.idle_since,
                skills: &a.config.skills,
            })
            .collect();
        if candidates.is_empty() {
            return None;
        }
        let key = (c.channel.clone(), c.customer.clone());
        let cad = c.cad.to_cad();
        let view = ConversationView {
            id,
            queue: &c.queue,
            channel: &c.channel,
            customer: &c.customer_handle,
            customer_name: &c.customer_name,
            source: &c.source,
            preview: &c.preview,
            cad: &cad,
            received_at: c.received_at,
            queued_at: c.queued_at,
            last_agent: self.last_agent.get(&key).map(String::as_str),
        };
        Some(f(&view, &candidates))
    }

    /// Apply one event to the state: the only place state changes. Used
    /// live by `handle`/`tick` and to replay a journal. Also keeps the
    /// agent index and the queues `dispatch` must look at.
    pub fn apply(&mut self, event: &Event) {
        let conversation = event.conversation();
        let before = conversation
            .and_then(|id| self.conversations.get(&id))
            .map(|c| c.concerned())
            .unwrap_or_default();
        let free_before: Vec<(Millis, u32, bool)> =
            before.iter().map(|a| self.agent_key(a)).collect();
        let free_agent = match event {
            Event::AgentState { agent, .. } => Some((agent.clone(), self.agent_key(agent))),
            _ => None,
        };
        self.apply_event(event);
        let Some(id) = conversation else {
            if let Some((agent, key)) = free_agent {
                self.mark_if_freed(&agent, Some(key));
            }
            return;
        };
        let (after, queued) = match self.conversations.get(&id) {
            Some(c) => {
                let queued = self
                    .waiting
                    .get(&c.queue)
                    .is_some_and(|w| w.contains(&(c.queued_at, id)))
                    .then(|| c.queue.clone());
                (c.concerned(), queued)
            }
            None => (Vec::new(), None),
        };
        for (agent, key) in before.iter().zip(free_before) {
            if !after.contains(agent) {
                if let Some(set) = self.by_agent.get_mut(agent) {
                    set.remove(&id);
                    if set.is_empty() {
                        self.by_agent.remove(agent);
                    }
                }
            }
            self.mark_if_freed(agent, Some(key));
        }
        for agent in &after {
            if !before.contains(agent) {
                self.by_agent.entry(agent.clone()).or_default().insert(id);
                self.mark_if_freed(agent, None);
            }
        }
        if let Some(q) = queued {
            self.dirty.insert(q);
        }
    }

    /// What the routing policy sees of an agent that may change: when it
    /// became free, its load, whether it can take more.
    fn agent_key(&self, agent: &str) -> (Millis, u32, bool) {
        self.agents.get(agent).map_or((0, 0, false), |a| {
            (a.idle_since, a.load(), a.can_take_more())
        })
    }

    /// Mark the queues of `agent` for `dispatch` if it can take more and
    /// changed (`before` unknown: assume it did).
    fn mark_if_freed(&mut self, agent: &str, before: Option<(Millis, u32, bool)>) {
        let key = self.agent_key(agent);
        if !key.2 || before == Some(key) {
            return;
        }
        if let Some(a) = self.agents.get(agent) {
            for q in &a.config.queues {
                if !self.dirty.contains(q) {
                    self.dirty.insert(q.clone());
                }
            }
        }
    }

    fn apply_event(&mut self, event: &Event) {
        match event {
            Event::AgentState {
                agent,
                state,
                reason,
                at,
            } => {
                if let Some(a) = self.agents.get_mut(agent) {
                    a.state = AgentState::from_event(*state, reason.as_deref());
                    if a.state == AgentState::Available {
                        a.idle_since = *at;
                    }
                }
            }
            Event::ConversationCreated {
                conversation,
                channel,
                customer,
                customer_handle,
                customer_name,
                source,
                received_at,
                cad,
            } => {
                let customer_handle = if customer_handle.is_empty() {
                    self.mask_for_agents(customer)
                } else {
                    customer_handle.clone()
                };
                self.conversations.insert(
                    *conversation,
                    Box::new(Conversation {
                        id: *conversation,
                        channel: channel.clone(),
                        customer: customer.clone(),
                        customer_handle,
                        customer_name: customer_name.clone(),
                        source: source.clone(),
                        received_at: *received_at,
                        cad: cad.clone().into(),
                        queue: String::new(),
                        state: ConversationState::Queued,
                        queued_at: *received_at,
                        owner: None,
                        guest: None,
                        offer: None,
                        preview: String::new(),
                        messages: Vec::new(),
                        pending_wrapups: BTreeSet::new(),
                        interrupted_reason: None,
                        closed_at: None,
                        wrapup_reasons: Vec::new(),
                        customer_wrote_at: None,
                    }),
                );
                self.open_by_customer
                    .insert((channel.clone(), customer.clone()), *conversation);
                self.next_id = self.next_id.max(conversation + 1);
            }
            Event::Queued {
                conversation,
                queue,
                at,
            } => {
                if let Some(c) = self.conversations.get_mut(conversation) {
                    c.state = ConversationState::Queued;
                    dequeue(&mut self.waiting, &c.queue, c.queued_at, *conversation);
                    c.queue = queue.clone();
                    c.queued_at = *at;
                    c.owner = None;
                    enqueue(&mut self.waiting, queue, *at, *conversation);
                }
            }
            Event::Offer {
                conversation,
                agent,
                kind,
                expires_at,
                return_queue,
                at,
                ..
            } => {
                if let Some(c) = self.conversations.get_mut(conversation) {
                    dequeue(&mut self.waiting, &c.queue, c.queued_at, *conversation);
                    if *kind != OfferKind::Conference {
                        c.state = ConversationState::Offered;
                    }
                    c.offer = Some(PendingOffer {
                        agent: agent.clone(),
                        kind: *kind,
                        expires_at: *expires_at,
                        return_queue: return_queue.clone(),
                    });
                    self.deadlines.insert((*expires_at, *conversation));
                }
                if let Some(a) = self.agents.get_mut(agent) {
                    a.offers.insert(*conversation);
                    a.idle_since = *at;
                }
            }
            Event::OfferRescinded {
                conversation,
                agent,
                ..
            } => {
                self.clear_offer(*conversation, agent);
            }
            Event::ConversationStarted {
                conversation,
                agent,
                ..
            } => {
                self.clear_offer(*conversation, agent);
                if let Some(c) = self.conversations.get_mut(conversation) {
                    c.state = ConversationState::Active;
                    c.owner = Some(agent.clone());
                    self.last_agent
                        .insert((c.channel.clone(), c.customer.clone()), agent.clone());
                }
                if let Some(a) = self.agents.get_mut(agent) {
                    a.conversations.insert(*conversation);
                }
            }
            Event::Message {
                conversation,
                from,
                author,
                text,
                at,
                external_id,
                attachments,
                sent_at,
            } => {
                if let Some(x) = external_id {
                    self.remember_external(x, *at);
                }
                if let Some(c) = self.conversations.get_mut(conversation) {
                    if *from == Party::Customer {
                        // The latest the customer wrote: an older message
                        // arriving late does not move it back or forward.
                        let wrote = sent_at.unwrap_or(*at);
                        c.customer_wrote_at =
                            Some(c.customer_wrote_at.map_or(wrote, |w| w.max(wrote)));
                    }
                    if c.preview.is_empty() && *from == Party::Customer {
                        c.preview = preview_of(text);
                    }
                    // Most conversations wait with one message: room for one.
                    if c.messages.is_empty() {
                        c.messages.reserve_exact(1);
                    }
                    c.messages.push(Message {
                        from: *from,
                        author: author.clone(),
                        text: text.clone(),
                        at: *at,
                        attachments: attachments.clone(),
                        failed: None,
                        receipt: None,
                    });
                }
            }
            Event::MessageRedacted {
                conversation,
                index,
                text,
                ..
            } => {
                if let Some(c) = self.conversations.get_mut(conversation) {
                    let first_from_customer =
                        c.messages.iter().position(|m| m.from == Party::Customer);
                    if first_from_customer == Some(*index) {
                        c.preview = preview_of(text);
                    }
                    if let Some(m) = c.messages.get_mut(*index) {
                        m.text = text.clone();
                    }
                }
            }
            Event::Transferred {
                conversation,
                agent,
                ..
            } => {
                if let Some(c) = self.conversations.get_mut(conversation) {
                    c.owner = None;
                }
                if let Some(a) = self.agents.get_mut(agent) {
                    a.conversations.remove(conversation);
                }
            }
            Event::ConferenceRequested { conversation, .. } => {
                if let Some(c) = self.conversations.get_mut(conversation) {
                    c.state = ConversationState::ConferenceRequested;
                }
            }
            Event::ConferenceCancelled { conversation, .. } => {
                if let Some(c) = self.conversations.get_mut(conversation) {
                    if c.state == ConversationState::ConferenceRequested {
                        c.state = ConversationState::Active;
                    }
                }
            }
            Event::ConferenceStarted {
                conversation,
                agent,
                ..
            } => {
                self.clear_offer(*conversation, agent);
                if let Some(c) = self.conversations.get_mut(conversation) {
                    c.state = ConversationState::Conference;
                    c.guest = Some(agent.clone());
                }
                if let Some(a) = self.agents.get_mut(agent) {
                    a.conversations.insert(*conversation);
                }
            }
            Event::ConferenceEnded { .. } => {}
            Event::ParticipantLeft {
                conversation,
                agent,
                at,
            } => {
                if let Some(c) = self.conversations.get_mut(conversation) {
                    if c.guest.as_deref() == Some(agent.as_str()) {
                        c.guest = None;
                        c.state = ConversationState::Active;
                    }
                }
                if let Some(a) = self.agents.get_mut(agent) {
                    a.conversations.remove(conversation);
                    a.idle_since = *at;
                }
            }
            Event::ConversationInterrupted {
                conversation,
                reason,
                ..
            } => {
                if let Some(c) = self.conversations.get_mut(conversation) {
                    c.state = ConversationState::Interrupted;
                    c.interrupted_reason = Some(reason.clone());
                    self.open_by_customer
                        .remove(&(c.channel.clone(), c.customer.clone()));
                }
            }
            Event::ConversationEnded { conversation, .. } => {
                if let Some(c) = self.conversations.get_mut(conversation) {
                    c.state = ConversationState::Ended;
                    let key = (c.channel.clone(), c.customer.clone());
                    if self.open_by_customer.get(&key) == Some(conversation) {
                        self.open_by_customer.remove(&key);
                    }
                    for agent in c.owner.iter().chain(c.guest.iter()) {
                        if let Some(a) = self.agents.get_mut(agent) {
                            a.conversations.remove(conversation);
                        }
                    }
                }
            }
            Event::ConversationDropped {
                conversation, at, ..
            } => {
                if let Some(c) = self.conversations.get_mut(conversation) {
                    dequeue(&mut self.waiting, &c.queue, c.queued_at, *conversation);
                    c.state = ConversationState::Dropped;
                    let key = (c.channel.clone(), c.customer.clone());
                    if self.open_by_customer.get(&key) == Some(conversation) {
                        self.open_by_customer.remove(&key);
                    }
                }
                self.mark_closed_if_done(*conversation, *at);
            }
            Event::WrapupRequired {
                conversation,
                agent,
                ..
            } => {
                if let Some(a) = self.agents.get_mut(agent) {
                    a.wrapups.insert(*conversation);
                }
                if let Some(c) = self.conversations.get_mut(conversation) {
                    c.pending_wrapups.insert(agent.clone());
                }
            }
            Event::WrapupSubmitted {
                conversation,
                agent,
                reason,
                at,
            } => {
                if let Some(c) = self.conversations.get_mut(conversation) {
                    c.wrapup_reasons.push(reason.clone());
                }
                if let Some(a) = self.agents.get_mut(agent) {
                    a.wrapups.remove(conversation);
                    a.idle_since = *at;
                }
                if let Some(c) = self.conversations.get_mut(conversation) {
                    c.pending_wrapups.remove(agent);
                    if c.state == ConversationState::Ended && c.pending_wrapups.is_empty() {
                        c.state = ConversationState::WrappedUp;
                    }
                }
                self.mark_closed_if_done(*conversation, *at);
            }
            Event::ConversationArchived { conversation, .. } => {
                self.closing.retain(|(_, id)| id != conversation);
                if let Some(c) = self.conversations.remove(conversation) {
                    dequeue(&mut self.waiting, &c.queue, c.queued_at, *conversation);
                    if let Some(o) = &c.offer {
                        self.deadlines.remove(&(o.expires_at, *conversation));
                    }
                    let past = self.history.entry((c.channel, c.customer)).or_default();
                    if past.len() >= HISTORY_KEPT {
                        past.pop_front();
                    }
                    past.push_back(PastConversation {
                        conversation: c.id,
                        opened_at: c.received_at,
                        closed_at: c.closed_at,
                        queue: c.queue,
                        agent: c.owner,
                        wrapup_reasons: c.wrapup_reasons,
                        interrupted_reason: c.interrupted_reason,
                    });
                }
            }
            Event::QueueDeleted { queue, .. } => {
                self.queues.remove(queue);
                self.managed_queues.remove(queue);
                self.deleted_queues.insert(queue.clone());
                for a in self.agents.values_mut() {
                    a.config.queues.retain(|q| q != queue);
                }
            }
            Event::SettingsChanged { mask, .. } => {
                self.settings.mask = *mask;
            }
            // The audit trail: the events the action caused change the state.
            Event::SupervisorAction { .. } => {}
            Event::AgentSaved { .. }
            | Event::PasswordSet { .. }
            | Event::AgentEnabled { .. }
            | Event::QueueSaved { .. }
            | Event::IdleReasonsChanged { .. } => self.apply_admin(event),
            Event::DeliveryFailed {
                conversation,
                message,
                reason,
                at,
                ..
            } => {
                let lang = self.settings.language;
                if let Some(c) = self.conversations.get_mut(conversation) {
                    mark_failed(&mut c.messages, *message, *reason);
                    c.messages.push(delivery_notice(lang, *reason, *at));
                }
            }
            Event::Receipt {
                conversation,
                status,
                through,
                ..
            } => {
                if let Some(c) = self.conversations.get_mut(conversation) {
                    receipts::mark_receipt(&mut c.messages, *status, *through);
                }
            }
        }
    }

    fn remember_external(&mut self, id: &str, at: Millis) {
        let id: Arc<str> = id.into();
        self.recent_external.insert(id.clone(), at);
        self.recent_order.push_back((at, id));
        while let Some((t, old)) = self.recent_order.front() {
            if t.saturating_add(DEDUP_WINDOW_MS) >= at {
                break;
            }
            if self.recent_external.get(old) == Some(t) {
                self.recent_external.remove(old);
            }
            self.recent_order.pop_front();
        }
    }

    fn clear_offer(&mut self, id: ConversationId, agent: &str) {
        if let Some(c) = self.conversations.get_mut(&id) {
            if let Some(o) = c.offer.take() {
                self.deadlines.remove(&(o.expires_at, id));
            }
        }
        if let Some(a) = self.agents.get_mut(agent) {
            a.offers.remove(&id);
        }
    }

    /// Check the engine's invariants; `Err` names the first one broken.
    /// Used by property tests and by recovery checks.
    pub fn check_invariants(&self) -> Result<(), String> {
        for a in self.agents.values() {
            if a.load() > a.config.capacity {
                return Err(format!(
                    "agent {} over capacity: {} > {}",
                    a.config.id,
                    a.load(),
                    a.config.capacity
                ));
            }
            for id in &a.offers {
                let offered_here = self
                    .conversations
                    .get(id)
                    .and_then(|c| c.offer.as_ref())
                    .is_some_and(|o| o.agent == a.config.id);
                if !offered_here {
                    return Err(format!("agent {} holds a stale offer of {id}", a.config.id));
                }
            }
        }
        for c in self.conversations.values() {
            let holders = self
                .agents
                .values()
                .filter(|a| a.offers.contains(&c.id))
                .count();
            if holders > 1 {
                return Err(format!("conversation {} offered to {holders} agents", c.id));
            }
            if c.offer.is_some() && holders != 1 {
                return Err(format!("conversation {} offer not held by its agent", c.id));
            }
            let queued = self
                .waiting
                .get(&c.queue)
                .is_some_and(|w| w.contains(&(c.queued_at, c.id)));
            if queued != (c.state == ConversationState::Queued) {
                return Err(format!(
                    "conversation {} is {} but queued={queued}",
                    c.id,
                    c.state.name()
                ));
            }
            let ok = match c.state {
                ConversationState::Queued => c.owner.is_none() && c.offer.is_none(),
                ConversationState::Offered => c.owner.is_none() && c.offer.is_some(),
                ConversationState::Active => c.owner.is_some() && c.guest.is_none(),
                ConversationState::ConferenceRequested => {
                    c.owner.is_some() && c.offer.is_some() && c.guest.is_none()
                }
                ConversationState::Conference => c.owner.is_some() && c.guest.is_some(),
                ConversationState::Interrupted => c.owner.is_some(),
                ConversationState::Ended
                | ConversationState::WrappedUp
                | ConversationState::Dropped => c.offer.is_none(),
            };
            if !ok {
                return Err(format!(
                    "conversation {} inconsistent in state {}",
                    c.id,
                    c.state.name()
                ));
            }
            for p in c.owner.iter().chain(c.guest.iter()) {
                let holds = self
                    .agents
                    .get(p)
                    .is_some_and(|a| a.conversations.contains(&c.id));
                let live = !matches!(
                    c.state,
                    ConversationState::Ended | ConversationState::WrappedUp
                );
                if live && !holds {
                    return Err(format!("conversation {} lost by agent {p}", c.id));
                }
            }
        }
        let entries: usize = self.waiting.values().map(BTreeSet::len).sum();
        let queued = self
            .conversations
            .values()
            .filter(|c| c.state == ConversationState::Queued)
            .count();
        if entries != queued {
            return Err(format!(
                "{entries} waiting entries for {queued} queued conversations"
            ));
        }
        // The agent index is exactly what a scan of every conversation finds.
        let mut scanned: HashMap<AgentId, BTreeSet<ConversationId>> = HashMap::new();
        for c in self.conversations.values() {
            for a in c.concerned() {
                scanned.entry(a).or_default().insert(c.id);
            }
        }
        if scanned != self.by_agent {
            return Err(format!(
                "agent index differs from a scan: index {:?}, scan {scanned:?}",
                self.by_agent
            ));
        }
        // Dispatch skips only queues with nobody waiting or nobody free.
        for q in self.waiting.keys() {
            if self.unsettled(q) && !self.dirty.contains(q) {
                return Err(format!(
                    "queue {q} has someone free and someone waiting but is not marked"
                ));
            }
        }
        Ok(())
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
            Event::Message {
                from,
                author,
                text,
                at,
                attachments,
                ..
            } => out.push(Message {
                from: *from,
                author: author.clone(),
                text: text.clone(),
                at: *at,
                attachments: attachments.clone(),
                failed: None,
                receipt: None,
            }),
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
fn delivery_notice(language: text::Language, reason: DeliveryFailure, at: Millis) -> Message {
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
fn mark_failed(messages: &mut [Message], index: usize, reason: DeliveryFailure) {
    if let Some(m) = messages.get_mut(index).filter(|m| m.from == Party::Agent) {
        m.failed = Some(reason);
    }
}

/// An agent reply's attachments: at most [`crate::model::MAX_REPLY_ATTACHMENTS`],
/// each one of the server's copies (an id and its address), no location.
fn check_reply_attachments(list: &[crate::model::Attachment]) -> Result<(), CommandError> {
    use crate::model::MAX_REPLY_ATTACHMENTS;
    if list.len() > MAX_REPLY_ATTACHMENTS {
        return Err(CommandError::Invalid(format!(
            "at most {MAX_REPLY_ATTACHMENTS} attachments per reply"
        )));
    }
    if list.iter().any(|a| {
        a.id.is_empty() || a.url.is_empty() || !matches!(a.kind.as_str(), "image" | "file")
    }) {
        return Err(CommandError::Invalid(
            "a reply's attachment is a stored picture or file".into(),
        ));
    }
    Ok(())
}

impl Engine {
    /// A customer's attachments as agents see them: names and link titles
    /// masked like any text, control characters stripped.
    fn mask_attachments(&self, list: &[crate::model::Attachment]) -> Vec<crate::model::Attachment> {
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

/// Supervisors' actions (see [`Command::SupervisorSetState`],
/// [`Command::MoveConversation`], [`Command::CloseConversation`]): each
/// writes a [`Event::SupervisorAction`] first, then what it caused. The
/// server checks the role; the engine checks the supervisor is one of the
/// tenant's agents.
impl Engine {
    fn audit(
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
    fn supervisor_set_state(
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

    fn move_conversation(
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

    fn join_conversation(
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
    fn guest_joins(
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
    fn close_conversation(
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
                let ev = Event::ConversationDropped {
                    conversation: id,
                    reason: "closed_by_supervisor".into(),
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
