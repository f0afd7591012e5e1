//! Routing: which queue a new conversation joins, and which agent gets it.
//!
//! [`RoutingPolicy`] is the extension point that Lua scripts and dynamic
//! plugins implement; [`LongestIdle`] is the built-in default every failure
//! falls back to. **Boundary:** a policy sees only views built from engine
//! state, whose texts are masked when the tenant masks.

use crate::model::{Cad, ConversationId, Millis};

/// What a routing policy knows of the conversation being routed.
#[derive(Debug, Clone, Copy)]
pub struct ConversationView<'a> {
    pub id: ConversationId,
    pub queue: &'a str,
    pub channel: &'a str,
    pub customer: &'a str,
    pub customer_name: &'a str,
    pub source: &'a str,
    /// First customer message, masked when the tenant masks.
    pub preview: &'a str,
    pub cad: &'a Cad,
    pub received_at: Millis,
    /// When it joined its current queue.
    pub queued_at: Millis,
    /// The agent who last handled this customer, if any.
    pub last_agent: Option<&'a str>,
}

/// An agent who may take the conversation: Available, serving its queue,
/// with spare capacity.
#[derive(Debug, Clone, Copy)]
pub struct Candidate<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub load: u32,
    pub capacity: u32,
    /// Since when the agent has been free of new work (became Available or
    /// last finished a conversation): the longest-idle key.
    pub idle_since: Millis,
    pub skills: &'a [String],
    /// Names the agent's configuration as given (its id, name and skills):
    /// a new number each time a configuration is created or replaced,
    /// never reused in the process ([`next_config_stamp`]); 0 when the
    /// caller does not know. Policy hosts that recognize an unchanged
    /// candidate by the addresses of its texts also compare this, so a
    /// freed configuration whose memory holds another one is never taken
    /// for it.
    pub stamp: u64,
}

/// A stamp for a new agent configuration (see [`Candidate::stamp`]).
pub fn next_config_stamp() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// A policy's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteDecision {
    /// Offer to this agent.
    Agent(String),
    /// Offer to the first of these agents that is still a candidate.
    Ranked(Vec<String>),
    /// Leave it queued for now.
    KeepQueued,
    /// The policy could not decide (its script or plugin failed, or there
    /// is none): the engine uses the built-in policy, and the offer records
    /// generation 0 — the audit trail says who really chose.
    Fallback,
}

impl RouteDecision {
    /// What the engine does with this decision among `candidates`: the
    /// agent offered the conversation and the generation the offer
    /// records (0 when the built-in policy decided), or `None` to keep it
    /// queued. The one rule for live offers, shadow policies and replay.
    pub fn resolve(self, candidates: &[Candidate<'_>], generation: u64) -> Option<(String, u64)> {
        let is_candidate = |id: &str| candidates.iter().any(|c| c.id == id);
        let builtin = || LongestIdle::pick(candidates).map(|a| (a.to_string(), 0));
        match self {
            RouteDecision::KeepQueued => None,
            RouteDecision::Agent(a) if is_candidate(&a) => Some((a, generation)),
            RouteDecision::Ranked(list) => match list.into_iter().find(|a| is_candidate(a)) {
                Some(a) => Some((a, generation)),
                None => builtin(),
            },
            // The policy failed, or named someone who cannot take it: the
            // built-in policy decides.
            RouteDecision::Fallback | RouteDecision::Agent(_) => builtin(),
        }
    }
}

/// A routing policy. Implementations must be cheap: `route` runs on every
/// offer. Errors are the implementation's business: it returns a decision
/// (its fallback) whatever happens inside.
pub trait RoutingPolicy: Send + Sync {
    /// The queue a new conversation joins; `None` keeps the channel's default.
    fn entry(&self, _conversation: &ConversationView<'_>) -> Option<String> {
        None
    }

    /// Choose an agent among `candidates` (never empty).
    fn route(
        &self,
        conversation: &ConversationView<'_>,
        candidates: &[Candidate<'_>],
    ) -> RouteDecision;

    /// Generation of the scripts/plugins that made this policy; 0 for built-in.
    fn generation(&self) -> u64 {
        0
    }
}

/// The built-in policy: the agent idle the longest, ties by id.
#[derive(Debug, Clone, Copy, Default)]
pub struct LongestIdle;

impl LongestIdle {
    /// The longest-idle candidate, if any.
    pub fn pick<'a>(candidates: &[Candidate<'a>]) -> Option<&'a str> {
        candidates
            .iter()
            .min_by(|a, b| (a.idle_since, a.load, a.id).cmp(&(b.idle_since, b.load, b.id)))
            .map(|c| c.id)
    }
}

impl RoutingPolicy for LongestIdle {
    fn route(&self, _: &ConversationView<'_>, candidates: &[Candidate<'_>]) -> RouteDecision {
        match Self::pick(candidates) {
            Some(id) => RouteDecision::Agent(id.to_string()),
            None => RouteDecision::KeepQueued,
        }
    }
}
