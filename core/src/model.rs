//! Domain types shared by the engine, the events and the extension traits.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Milliseconds since the Unix epoch. The core never reads the clock: every
/// command comes with `now` of this type.
pub type Millis = u64;

/// Conversation identifier, unique within a tenant.
pub type ConversationId = u64;

/// Agent identifier (login name), unique within a tenant.
pub type AgentId = String;

/// Queue identifier, unique within a tenant.
pub type QueueId = String;

/// Key/value data attached to a conversation and shown on the desktop.
pub type Cad = BTreeMap<String, String>;

/// CAD variables as a conversation keeps them: the pairs sorted by key in
/// one allocation (a `Cad` map spends a node of about 550 bytes on the
/// handful of pairs a conversation has). Serialized as a map, like `Cad`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "Cad", into = "Cad")]
pub struct StoredCad(Box<[(String, String)]>);

impl StoredCad {
    pub fn get(&self, key: &str) -> Option<&String> {
        self.0
            .binary_search_by(|(k, _)| k.as_str().cmp(key))
            .ok()
            .and_then(|i| self.0.get(i))
            .map(|(_, v)| v)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &String)> {
        self.0.iter().map(|(k, v)| (k, v))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The variables as a map (what events and routing views carry).
    pub fn to_cad(&self) -> Cad {
        self.0.iter().cloned().collect()
    }
}

impl From<Cad> for StoredCad {
    fn from(cad: Cad) -> Self {
        // A map iterates in key order: the pairs come out sorted.
        StoredCad(cad.into_iter().collect())
    }
}

impl From<StoredCad> for Cad {
    fn from(cad: StoredCad) -> Self {
        cad.0.into_vec().into_iter().collect()
    }
}

impl std::ops::Index<&str> for StoredCad {
    type Output = String;

    /// Like a map's: panics when `key` is absent.
    fn index(&self, key: &str) -> &String {
        match self.get(key) {
            Some(v) => v,
            None => panic!("no CAD variable {key:?}"),
        }
    }
}

/// CAD variables the engine sets on every new conversation from what the
/// channel established: a channel's own CAD never overrides them.
pub const SERVER_CAD_KEYS: &[&str] = &["contact_origin", "entry_point", "customer_name"];

/// Longest agent message, in Unicode scalar values.
pub const MAX_AGENT_MESSAGE_CHARS: usize = 1000;
/// Most attachments on one agent reply.
pub const MAX_REPLY_ATTACHMENTS: usize = 10;

/// Default number of concurrent conversations an agent handles.
pub const DEFAULT_CAPACITY: u32 = 5;

/// Default time an agent has to accept an offer.
pub const DEFAULT_RONA_TIMEOUT_MS: Millis = 30_000;

/// Length of the preview carried by an offer, in characters.
pub const PREVIEW_CHARS: usize = 140;

/// Where an agent stands. `Rona` (Redirection On No Answer) follows an offer
/// not accepted in time; only the agent leaves it, by setting Available.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum AgentState {
    Available,
    Idle { reason: String },
    Rona,
    LoggedOut,
}

/// An agent state's wire name, as events carry it: `available`, `idle`,
/// `rona`, `logged_out`. Typed so that a journal with any other name is
/// refused on reading instead of turning silently into one of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StateName {
    Available,
    Idle,
    Rona,
    LoggedOut,
}

impl StateName {
    pub fn as_str(self) -> &'static str {
        match self {
            StateName::Available => "available",
            StateName::Idle => "idle",
            StateName::Rona => "rona",
            StateName::LoggedOut => "logged_out",
        }
    }
}

impl std::fmt::Display for StateName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The idle reason of an agent the server saw go while it still had
/// conversations or wrap-ups ([`crate::Command::AgentGone`]).
pub const DISCONNECTED_REASON: &str = "Disconnected";

impl AgentState {
    /// Wire name: `available`, `idle`, `rona`, `logged_out`.
    pub fn name(&self) -> &'static str {
        self.kind().as_str()
    }

    pub fn kind(&self) -> StateName {
        match self {
            AgentState::Available => StateName::Available,
            AgentState::Idle { .. } => StateName::Idle,
            AgentState::Rona => StateName::Rona,
            AgentState::LoggedOut => StateName::LoggedOut,
        }
    }

    /// The state an event names (an idle one with its reason).
    pub fn from_event(kind: StateName, reason: Option<&str>) -> AgentState {
        match kind {
            StateName::Available => AgentState::Available,
            StateName::Idle => AgentState::Idle {
                reason: reason.unwrap_or_default().to_string(),
            },
            StateName::Rona => AgentState::Rona,
            StateName::LoggedOut => AgentState::LoggedOut,
        }
    }

    pub fn reason(&self) -> Option<&str> {
        match self {
            AgentState::Idle { reason } => Some(reason),
            _ => None,
        }
    }
}

/// Life cycle of a conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConversationState {
    /// Waiting in a queue for an agent.
    Queued,
    /// Offered to one agent (new, transferred to that agent).
    Offered,
    /// Accepted; an agent and the customer talk.
    Active,
    /// Active, and a second agent has been invited.
    ConferenceRequested,
    /// Two agents and the customer.
    Conference,
    /// Its queue or entry point was deleted: agents may only end it.
    Interrupted,
    /// Ended; wrap-up pending for at least one agent.
    Ended,
    /// Ended and every agent submitted a wrap-up reason.
    WrappedUp,
    /// Closed without an agent (transfer not accepted with the drop setting,
    /// queue deleted while waiting).
    Dropped,
}

impl ConversationState {
    pub fn name(self) -> &'static str {
        match self {
            ConversationState::Queued => "queued",
            ConversationState::Offered => "offered",
            ConversationState::Active => "active",
            ConversationState::ConferenceRequested => "conference_requested",
            ConversationState::Conference => "conference",
            ConversationState::Interrupted => "interrupted",
            ConversationState::Ended => "ended",
            ConversationState::WrappedUp => "wrapped_up",
            ConversationState::Dropped => "dropped",
        }
    }

    /// Still open for the customer: a new customer message continues it.
    pub fn is_open(self) -> bool {
        matches!(
            self,
            ConversationState::Queued
                | ConversationState::Offered
                | ConversationState::Active
                | ConversationState::ConferenceRequested
                | ConversationState::Conference
        )
    }
}

/// Why an offer was made: a conversation from a queue, a transfer to an
/// agent, or an invitation to a conference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OfferKind {
    Queue,
    Transfer,
    Conference,
}

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Party {
    Customer,
    Agent,
    System,
}

/// Where a transfer goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransferTarget {
    Queue(QueueId),
    Agent(AgentId),
}

/// What happens to a conversation transferred to an agent who does not
/// accept it. The product this replaces drops it; we return it to its queue
/// by default so that no customer is lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransferNotAccepted {
    #[default]
    ReturnToQueue,
    Drop,
}

/// A wrap-up reason an agent picks after a conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WrapUpReason {
    pub code: String,
    pub label: String,
}

/// A message of the transcript (text already masked when the tenant masks).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub from: Party,
    pub author: String,
    pub text: String,
    pub at: Millis,
    /// What the customer attached (pictures, files, a location…), or the
    /// files an agent sent with a reply.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<Attachment>,
    /// An agent's reply the channel did not take, and why
    /// ([`crate::Event::DeliveryFailed`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed: Option<DeliveryFailure>,
    /// An agent's reply the customer's channel reported delivered or read
    /// ([`crate::Event::Receipt`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receipt: Option<Receipt>,
}

/// How far an agent's reply got, as the customer's channel reports it
/// (Messenger's `delivery` and `read` webhooks, the web chat page's read
/// marks). Read implies delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Receipt {
    Delivered,
    Read,
}

impl Receipt {
    /// The wire name (`delivered`, `read`).
    pub fn name(self) -> &'static str {
        match self {
            Receipt::Delivered => "delivered",
            Receipt::Read => "read",
        }
    }
}

/// A degree of latitude or longitude, compared by its bits (so messages
/// stay `Eq`).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Degrees(pub f64);

impl PartialEq for Degrees {
    fn eq(&self, other: &Self) -> bool {
        self.0.to_bits() == other.0.to_bits()
    }
}
impl Eq for Degrees {}

/// Something a customer attached to a message, as agents see it: the
/// content is Switchboard's copy at `url` (`/api/attachments/{id}`), never
/// the channel's own address. `kind` is `image`, `video`, `audio`, `file`,
/// `location`, `sticker` or `link`; `name` and `title` are masked like
/// any text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mime: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latitude: Option<Degrees>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub longitude: Option<Degrees>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
}

/// Why an agent's reply did not reach the customer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryFailure {
    /// The tenant has no adapter for the conversation's channel.
    NoAdapter,
    /// The channel's adapter (script or plugin) failed to build the request.
    AdapterFailed,
    /// The adapter built a request the host cannot send (bad method, URL).
    InvalidRequest,
    /// The channel answered 4xx: it will not take this message.
    Rejected,
    /// The channel kept answering 5xx, every attempt.
    Unavailable,
    /// The channel could not be reached (connection, time-out), every attempt.
    Unreachable,
}

impl DeliveryFailure {
    /// The wire name (`no_adapter`, `rejected`, …).
    pub fn name(self) -> &'static str {
        match self {
            DeliveryFailure::NoAdapter => "no_adapter",
            DeliveryFailure::AdapterFailed => "adapter_failed",
            DeliveryFailure::InvalidRequest => "invalid_request",
            DeliveryFailure::Rejected => "rejected",
            DeliveryFailure::Unavailable => "unavailable",
            DeliveryFailure::Unreachable => "unreachable",
        }
    }
}

/// A queue as configured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueConfig {
    pub id: QueueId,
    /// Display name.
    pub name: String,
    pub rona_timeout_ms: Millis,
}

/// An agent as configured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentConfig {
    pub id: AgentId,
    /// Display name.
    pub name: String,
    pub capacity: u32,
    /// Queues this agent takes conversations from.
    pub queues: Vec<QueueId>,
    /// Skills, for routing policies that use them.
    pub skills: Vec<String>,
}

/// An agent's role: `agent` (the desktop only), `supervisor` (the console
/// of its tenant) or `admin` (also administers the tenant).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    #[default]
    Agent,
    Supervisor,
    Admin,
}

impl Role {
    /// Wire name.
    pub fn name(self) -> &'static str {
        match self {
            Role::Agent => "agent",
            Role::Supervisor => "supervisor",
            Role::Admin => "admin",
        }
    }
}

/// An argon2 PHC string. Its `Debug` hides it, so no debug print or log
/// line shows it; serialized as the plain string (the journal keeps it).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PasswordHash(pub String);

impl PasswordHash {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PasswordHash(..)")
    }
}

impl From<&str> for PasswordHash {
    fn from(s: &str) -> Self {
        PasswordHash(s.to_string())
    }
}

impl From<String> for PasswordHash {
    fn from(s: String) -> Self {
        PasswordHash(s)
    }
}

/// What the engine keeps of an agent's account beyond its routing
/// configuration: its role, the argon2 PHC hash an admin set (none: the
/// configured credential still applies) and whether it is disabled.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    pub role: Role,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_hash: Option<PasswordHash>,
    #[serde(default)]
    pub disabled: bool,
}

/// Tenant-wide settings the engine needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantSettings {
    /// "Mask sensitive customer data on the agent desktop".
    pub mask: bool,
    pub transfer_not_accepted: TransferNotAccepted,
    /// Queue for conversations no entry rule places.
    pub default_queue: QueueId,
    /// How long a closed conversation (wrapped up, or dropped with no
    /// wrap-up owed) stays in memory before it is archived: its transcript
    /// then lives only in the journal.
    #[serde(default = "default_archive_after")]
    pub archive_after_ms: Millis,
    /// The reasons an agent may give for being idle (plus the default
    /// "Not ready"); empty accepts any.
    #[serde(default)]
    pub idle_reasons: Vec<String>,
    /// The language of the lines the system writes (transcripts, notices
    /// to customers).
    #[serde(default)]
    pub language: crate::text::Language,
}

/// The idle reason of an agent who gave none (and of a fresh login).
pub const DEFAULT_IDLE_REASON: &str = "Not ready";

/// Is `c` a control character that has no place in a name or a message:
/// C0 and C1 controls other than new line and tab, DEL, and the bidi
/// embeddings, overrides and isolates (U+202A–U+202E, U+2066–U+2069) that
/// make text display in another order than it is read (`evil\u{202e}gpj.exe`).
pub fn is_forbidden_control(c: char) -> bool {
    (c.is_control() && c != '\n' && c != '\t')
        || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `text` without the characters [`is_forbidden_control`] refuses.
pub fn strip_controls(text: &str) -> std::borrow::Cow<'_, str> {
    if text.chars().any(is_forbidden_control) {
        std::borrow::Cow::Owned(text.chars().filter(|&c| !is_forbidden_control(c)).collect())
    } else {
        std::borrow::Cow::Borrowed(text)
    }
}

/// True when `text` shows nothing: only white space and invisible
/// characters (zero-width spaces, joiners, soft hyphens, …).
pub fn is_blank(text: &str) -> bool {
    text.chars()
        .all(|c| c.is_whitespace() || crate::masking::is_invisible(c))
}

/// Default of [`TenantSettings::archive_after_ms`]: one hour.
pub const DEFAULT_ARCHIVE_AFTER_MS: Millis = 3_600_000;

fn default_archive_after() -> Millis {
    DEFAULT_ARCHIVE_AFTER_MS
}
