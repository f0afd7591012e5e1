//! The supervisors' console feed of one tenant: told of every committed
//! batch of events (after the journal commit, in journal order), it keeps
//! what the engine does not (since when each agent is in its state, since
//! when each conversation is handled), the report figures
//! ([`crate::reports::Reports`]), and its own copy of the rows the live
//! view shows (the projection), whose version the console sockets wait
//! on.
//!
//! **Invariant:** supervisors never read the engine. The projection is
//! seeded from the engine once, when the tenant starts and after a resync
//! ([`Feed::seed`], counted in [`Feed::engine_reads`]); after that each
//! commit brings the rows its events touched ([`Changes::of`], copied
//! under the engine lock by the command that made them: O(what changed))
//! and the feed applies them after the commit, in journal order. Overviews,
//! queue figures and the sockets' diffs are computed from the projection,
//! off the engine lock (`tests/console.rs`,
//! `console_frames_never_read_the_engine` and
//! `the_projection_equals_the_engine_after_a_scripted_sequence`).

use crate::clock::rfc3339;
use crate::reports::Reports;
use axum::extract::ws::Utf8Bytes;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};
use switchboard_core::engine::{Agent, Conversation, Engine};
use switchboard_core::model::{
    AgentState, ConversationId, ConversationState, Millis, TransferTarget,
};
use switchboard_core::{Event, Output};
use tokio::sync::watch;

/// Smallest interval between two frames of a console socket (at most
/// about 10 frames a second).
pub const COALESCE_MS: u64 = 100;

/// Row changes kept for diffs: a socket further behind than this gets a
/// whole overview again.
const LOG_KEPT: usize = 20_000;

pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Each critical section is a single update: a poisoned lock is safe.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A queue as the console lists it (its figures are computed from the
/// conversation and agent rows).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueRow {
    id: String,
    name: String,
}

/// An agent as the console shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentRow {
    id: String,
    name: String,
    state: AgentState,
    queues: Vec<String>,
    load: u32,
    capacity: u32,
    conversations: Vec<ConversationId>,
    /// [`Agent::can_take_more`] when the row was copied: the engine's rule,
    /// not a second one.
    can_take_more: bool,
}

impl AgentRow {
    fn of(a: &Agent) -> AgentRow {
        AgentRow {
            id: a.config.id.clone(),
            name: a.config.name.clone(),
            state: a.state.clone(),
            queues: a.config.queues.clone(),
            load: a.load(),
            capacity: a.config.capacity,
            conversations: a.conversations.iter().copied().collect(),
            can_take_more: a.can_take_more(),
        }
    }
}

/// An open conversation as the console shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversationRow {
    id: ConversationId,
    state: ConversationState,
    queue: String,
    agent: Option<String>,
    queued_at: Millis,
    received_at: Millis,
    customer_name: String,
    channel: String,
}

impl ConversationRow {
    /// The row of an open conversation; none once it is closed (wrapped
    /// up or dropped), as the console lists only open ones.
    fn of(c: &Conversation) -> Option<ConversationRow> {
        if matches!(
            c.state,
            ConversationState::WrappedUp | ConversationState::Dropped
        ) {
            return None;
        }
        Some(ConversationRow {
            id: c.id,
            state: c.state,
            queue: c.queue.clone(),
            agent: c
                .owner
                .clone()
                .or_else(|| c.offer.as_ref().map(|o| o.agent.clone())),
            queued_at: c.queued_at,
            received_at: c.received_at,
            customer_name: c.customer_name.clone(),
            channel: c.channel.clone(),
        })
    }
}

fn queue_rows(e: &Engine) -> Vec<QueueRow> {
    e.queues()
        .map(|q| QueueRow {
            id: q.id.clone(),
            name: q.name.clone(),
        })
        .collect()
}

/// The rows one committed batch touched, as the engine holds them right
/// after the batch: copied under the engine lock, applied by the feed
/// after the commit.
#[derive(Debug, Default)]
pub struct Changes {
    /// The journal sequence number of the batch's last event.
    seq: u64,
    /// A conversation's row, or none when it is no longer open.
    conversations: Vec<(ConversationId, Option<ConversationRow>)>,
    agents: Vec<AgentRow>,
    /// Every queue, when a queue was saved or deleted.
    queues: Option<Vec<QueueRow>>,
}

impl Changes {
    /// What `out`'s events touched in `engine` (the state right after
    /// them); `seq` is the journal number of the last of them. Costs what
    /// changed, not the size of the tenant (a queue saved or deleted, rare,
    /// copies every agent: their queue lists may change).
    pub fn of(engine: &Engine, out: &Output, seq: u64) -> Changes {
        let mut conversations = BTreeSet::new();
        let mut agents: BTreeSet<&str> = BTreeSet::new();
        let mut all = false;
        for e in &out.emitted {
            match &e.event {
                // Texts and receipts change no row.
                Event::Message { .. } | Event::MessageRedacted { .. } | Event::Receipt { .. } => {
                    continue
                }
                Event::QueueSaved { .. } | Event::QueueDeleted { .. } => all = true,
                Event::AgentState { agent, .. }
                | Event::Offer { agent, .. }
                | Event::OfferRescinded { agent, .. }
                | Event::ConversationStarted { agent, .. }
                | Event::ConferenceStarted { agent, .. }
                | Event::ParticipantLeft { agent, .. }
                | Event::WrapupRequired { agent, .. }
                | Event::WrapupSubmitted { agent, .. }
                | Event::AgentSaved { agent, .. }
                | Event::AgentEnabled { agent, .. } => {
                    agents.insert(agent);
                }
                Event::Transferred { agent, to, .. } => {
                    agents.insert(agent);
                    if let TransferTarget::Agent(to) = to {
                        agents.insert(to);
                    }
                }
                Event::ConferenceRequested { agent, invitee, .. } => {
                    agents.insert(agent);
                    agents.insert(invitee);
                }
                Event::ConferenceCancelled { invitee, .. } => {
                    agents.insert(invitee);
                }
                Event::ConferenceEnded { by, .. } | Event::ConversationEnded { by, .. } => {
                    agents.insert(by);
                }
                Event::SupervisorAction {
                    agent: Some(agent), ..
                } => {
                    agents.insert(agent);
                }
                _ => {}
            }
            agents.extend(e.audience.agents.iter().map(String::as_str));
            if let Some(id) = e.event.conversation() {
                conversations.insert(id);
            }
        }
        // Whoever a touched conversation concerns now.
        for id in &conversations {
            if let Some(c) = engine.conversation(*id) {
                agents.extend(c.owner.as_deref());
                agents.extend(c.guest.as_deref());
                agents.extend(c.offer.as_ref().map(|o| o.agent.as_str()));
                agents.extend(c.pending_wrapups.iter().map(String::as_str));
            }
        }
        let agents = if all {
            engine.agents().map(AgentRow::of).collect()
        } else {
            agents
                .into_iter()
                .filter_map(|a| engine.agent(a).map(AgentRow::of))
                .collect()
        };
        Changes {
            seq,
            conversations: conversations
                .into_iter()
                .map(|id| (id, engine.conversation(id).and_then(ConversationRow::of)))
                .collect(),
            agents,
            queues: all.then(|| queue_rows(engine)),
        }
    }
}

/// What changed, for the diff log.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Key {
    Agent(String),
    Conversation(ConversationId),
}

/// The console's own copy of the rows, with the log of what changed.
#[derive(Debug, Default)]
struct Projection {
    /// The journal number the rows reflect: a batch at or below it is
    /// already in (a seed taken after it).
    seq: u64,
    /// Moves on with every applied batch that changed a row.
    version: u64,
    /// Diffs can be made from this version on; a socket at an earlier one
    /// gets the whole overview.
    floor: u64,
    /// The changes after `floor`, oldest first.
    log: VecDeque<(u64, Key)>,
    queues: Vec<QueueRow>,
    agents: BTreeMap<String, AgentRow>,
    conversations: BTreeMap<ConversationId, ConversationRow>,
    /// Since when each agent is in its current state.
    agent_since: HashMap<String, Millis>,
    /// Since when each conversation is handled by its agent.
    handled_since: HashMap<ConversationId, Millis>,
    /// Each queue's figures, kept as rows change (by queue id, listed or
    /// not), so a frame costs the queues, not the conversations.
    figures: HashMap<String, Figures>,
}

/// One queue's figures.
#[derive(Debug, Default)]
struct Figures {
    /// Its queued conversations by queueing time (the oldest first).
    waiting: BTreeSet<(Millis, ConversationId)>,
    offered: u64,
    available: u64,
    busy: u64,
}

impl Projection {
    /// Add (or take back) a conversation row's part of its queue's figures.
    fn count_conversation(&mut self, c: &ConversationRow, add: bool) {
        let f = self.figures.entry(c.queue.clone()).or_default();
        match c.state {
            ConversationState::Queued => {
                if add {
                    f.waiting.insert((c.queued_at, c.id));
                } else {
                    f.waiting.remove(&(c.queued_at, c.id));
                }
            }
            ConversationState::Offered if add => f.offered += 1,
            ConversationState::Offered => f.offered = f.offered.saturating_sub(1),
            _ => {}
        }
    }

    /// Add (or take back) an agent row's part of its queues' figures.
    fn count_agent(&mut self, a: &AgentRow, add: bool) {
        let available = a.can_take_more;
        let busy = !available && a.load > 0 && a.state != AgentState::LoggedOut;
        for q in &a.queues {
            let f = self.figures.entry(q.clone()).or_default();
            let n = if available {
                &mut f.available
            } else if busy {
                &mut f.busy
            } else {
                continue;
            };
            *n = if add { *n + 1 } else { n.saturating_sub(1) };
        }
    }

    /// Every queue's figures from the rows (a seed).
    fn count_all(&mut self) {
        self.figures.clear();
        let conversations: Vec<ConversationRow> = self.conversations.values().cloned().collect();
        for c in &conversations {
            self.count_conversation(c, true);
        }
        let agents: Vec<AgentRow> = self.agents.values().cloned().collect();
        for a in &agents {
            self.count_agent(a, true);
        }
    }

    fn put_agent(&mut self, a: AgentRow) {
        if let Some(old) = self.agents.remove(&a.id) {
            self.count_agent(&old, false);
        }
        self.count_agent(&a, true);
        self.agents.insert(a.id.clone(), a);
    }

    fn put_conversation(&mut self, id: ConversationId, row: Option<ConversationRow>) {
        if let Some(old) = self.conversations.remove(&id) {
            self.count_conversation(&old, false);
        }
        if let Some(c) = row {
            self.count_conversation(&c, true);
            self.conversations.insert(id, c);
        }
    }

    fn note(&mut self, key: Key) {
        self.log.push_back((self.version, key));
        while self.log.len() > LOG_KEPT {
            if let Some((v, _)) = self.log.pop_front() {
                self.floor = v;
            }
        }
    }

    fn queue_json(&self, now: Millis) -> Vec<Value> {
        self.queues
            .iter()
            .map(|q| {
                let f = self.figures.get(&q.id);
                let oldest = f.and_then(|f| f.waiting.first()).map(|(at, _)| *at);
                json!({
                    "id": q.id,
                    "name": q.name,
                    "waiting": f.map_or(0, |f| f.waiting.len()),
                    "longest_wait_ms": oldest.map_or(0, |o| now.saturating_sub(o)),
                    "offered": f.map_or(0, |f| f.offered),
                    "agents_available": f.map_or(0, |f| f.available),
                    "agents_busy": f.map_or(0, |f| f.busy),
                })
            })
            .collect()
    }

    fn agent_json(&self, a: &AgentRow) -> Value {
        json!({
            "id": a.id,
            "name": a.name,
            "state": a.state.name(),
            "reason": a.state.reason(),
            "since": self.agent_since.get(&a.id).map(|t| rfc3339(*t)),
            "load": a.load,
            "capacity": a.capacity,
            "conversations": a.conversations,
        })
    }

    fn conversation_json(&self, c: &ConversationRow) -> Value {
        let since = match c.state {
            ConversationState::Queued | ConversationState::Offered => c.queued_at,
            _ => self
                .handled_since
                .get(&c.id)
                .copied()
                .unwrap_or(c.received_at),
        };
        json!({
            "id": c.id,
            "state": c.state.name(),
            "queue": c.queue,
            "agent": c.agent,
            "since": rfc3339(since),
            "customer_name": c.customer_name,
            "channel": c.channel,
        })
    }

    /// The whole overview (CONTRACT.md, "Added for the second round").
    fn overview(&self, now: Millis) -> Value {
        json!({
            "at": rfc3339(now),
            "queues": self.queue_json(now),
            "agents": self.agents.values().map(|a| self.agent_json(a)).collect::<Vec<_>>(),
            "conversations": self
                .conversations
                .values()
                .map(|c| self.conversation_json(c))
                .collect::<Vec<_>>(),
        })
    }

    /// The rows changed after version `from` (every queue: they are few),
    /// or none when the log no longer reaches back that far.
    fn changes_since(&self, from: u64, now: Millis) -> Option<Value> {
        if from < self.floor {
            return None;
        }
        let start = self.log.partition_point(|(v, _)| *v <= from);
        let keys: BTreeSet<&Key> = self.log.range(start..).map(|(_, k)| k).collect();
        let (mut agents, mut conversations, mut removed) = (Vec::new(), Vec::new(), Vec::new());
        for key in keys {
            match key {
                Key::Agent(id) => {
                    if let Some(a) = self.agents.get(id) {
                        agents.push(self.agent_json(a));
                    }
                }
                Key::Conversation(id) => match self.conversations.get(id) {
                    Some(c) => conversations.push(self.conversation_json(c)),
                    None => removed.push(*id),
                },
            }
        }
        Some(json!({
            "type": "overview_changes",
            "at": rfc3339(now),
            "queues": self.queue_json(now),
            "agents": agents,
            "conversations": conversations,
            "removed": removed,
        }))
    }
}

/// A frame made for some sockets, kept a moment for the others.
#[derive(Debug)]
struct Made {
    from: Option<u64>,
    to: u64,
    frame: Utf8Bytes,
    at: Instant,
}

/// What a console socket sends next, and the version it brings the
/// socket to.
#[derive(Debug)]
pub struct Frame {
    pub frame: Utf8Bytes,
    pub version: u64,
}

/// See the module documentation.
#[derive(Debug)]
pub struct Feed {
    changes: watch::Sender<u64>,
    projection: Mutex<Projection>,
    /// Frames made in the last [`COALESCE_MS`], shared by the sockets
    /// that need the same one.
    made: Mutex<Vec<Made>>,
    /// Reads of the engine made for the console (seeds only).
    engine_reads: AtomicU64,
    pub reports: Mutex<Reports>,
}

impl Default for Feed {
    fn default() -> Self {
        Feed {
            changes: watch::Sender::new(0),
            projection: Mutex::default(),
            made: Mutex::default(),
            engine_reads: AtomicU64::new(0),
            reports: Mutex::default(),
        }
    }
}

impl Feed {
    /// Events committed at `now` (recovery replays the journal through it
    /// too, so the figures survive restarts).
    pub fn record(&self, events: &[Event], now: Millis) {
        {
            let mut p = lock(&self.projection);
            // A new `since` is a change of the row even when the rest of
            // it is the same.
            let version = p.version + 1;
            for ev in events {
                match ev {
                    Event::AgentState { agent, at, .. }
                        if p.agent_since.insert(agent.clone(), *at) != Some(*at) =>
                    {
                        p.version = version;
                        p.note(Key::Agent(agent.clone()));
                    }
                    Event::ConversationStarted {
                        conversation, at, ..
                    } if p.handled_since.insert(*conversation, *at) != Some(*at) => {
                        p.version = version;
                        p.note(Key::Conversation(*conversation));
                    }
                    Event::ConversationArchived { conversation, .. } => {
                        p.handled_since.remove(conversation);
                    }
                    _ => {}
                }
            }
        }
        lock(&self.reports).record(events, now);
        self.wake();
    }

    /// Wake the sockets when a row changed (not for a message, a receipt:
    /// fifty sockets woken per message cost more than their frames).
    fn wake(&self) {
        let version = lock(&self.projection).version;
        self.changes.send_if_modified(|n| {
            let moved = *n != version;
            *n = version;
            moved
        });
    }

    /// The whole projection from the engine, under its lock: at start and
    /// after a resync (the only engine reads the console makes). Sockets
    /// behind get a whole overview next.
    pub fn seed(&self, engine: &Engine, seq: u64) {
        self.engine_reads.fetch_add(1, Ordering::Relaxed);
        let mut p = lock(&self.projection);
        p.seq = seq;
        p.version += 1;
        p.floor = p.version;
        p.log.clear();
        p.queues = queue_rows(engine);
        p.agents = engine
            .agents()
            .map(|a| (a.config.id.clone(), AgentRow::of(a)))
            .collect();
        p.conversations = engine
            .conversations()
            .filter_map(ConversationRow::of)
            .map(|c| (c.id, c))
            .collect();
        p.count_all();
        drop(p);
        self.wake();
    }

    /// A committed batch's rows (after the commit, in journal order; a
    /// batch a later seed already covers is skipped).
    pub fn apply(&self, changes: Changes) {
        let mut p = lock(&self.projection);
        if changes.seq <= p.seq {
            return;
        }
        p.seq = changes.seq;
        let mut changed = false;
        if let Some(queues) = changes.queues {
            changed |= p.queues != queues;
            p.queues = queues;
        }
        let version = p.version + 1;
        for a in changes.agents {
            if p.agents.get(&a.id) != Some(&a) {
                changed = true;
                p.version = version;
                p.note(Key::Agent(a.id.clone()));
                p.put_agent(a);
            }
        }
        for (id, row) in changes.conversations {
            let differs = match &row {
                Some(r) => p.conversations.get(&id) != Some(r),
                None => p.conversations.contains_key(&id),
            };
            if !differs {
                continue;
            }
            changed = true;
            p.version = version;
            p.note(Key::Conversation(id));
            p.put_conversation(id, row);
        }
        p.version = if changed { version } else { p.version };
    }

    /// A receiver woken when the rows change.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// How often the engine was read for the console (`/metrics`).
    pub fn engine_reads(&self) -> u64 {
        self.engine_reads.load(Ordering::Relaxed)
    }

    /// The overview (`GET /api/supervisor/overview`), from the projection.
    pub fn overview(&self, now: Millis) -> Value {
        lock(&self.projection).overview(now)
    }

    /// The next frame of a socket that last got version `last` (none: it
    /// got nothing yet): the whole `overview` first or when it fell too
    /// far behind, else `overview_changes` since `last`; none when nothing
    /// it shows changed. A frame made for another socket in the last
    /// [`COALESCE_MS`] with the same versions is shared. Real time paces
    /// the sharing, the tenant's clock dates the figures.
    pub fn frame(&self, last: Option<u64>, now: Millis) -> Option<Frame> {
        let p = lock(&self.projection);
        let to = p.version;
        if last == Some(to) {
            return None;
        }
        let from = last.filter(|l| *l >= p.floor);
        let mut made = lock(&self.made);
        made.retain(|m| m.at.elapsed() < Duration::from_millis(COALESCE_MS));
        if let Some(m) = made.iter().find(|m| m.from == from && m.to == to) {
            return Some(Frame {
                frame: m.frame.clone(),
                version: to,
            });
        }
        let value = match from.and_then(|f| p.changes_since(f, now)) {
            Some(diff) => diff,
            None => json!({"type": "overview", "overview": p.overview(now)}),
        };
        drop(p);
        let frame = Utf8Bytes::from(value.to_string());
        made.push(Made {
            from,
            to,
            frame: frame.clone(),
            at: Instant::now(),
        });
        Some(Frame { frame, version: to })
    }
}
