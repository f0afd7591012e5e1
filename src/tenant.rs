//! A tenant at run time: its engine behind a lock, the journaling of its
//! events, their fan-out to agent sessions and web chat visitors, and its
//! timer.
//!
//! **Invariant:** events are numbered and handed to the journal while the
//! engine lock is held; the journal writer publishes them after the commit,
//! so every subscriber sees them in journal order and never sees an event
//! that could be lost. Publishing never blocks (a subscriber too slow to
//! keep up is disconnected and resynchronizes).
//! **Invariant:** raw customer text is never logged here: logs carry event
//! types and ids only.

use crate::auth::Sessions;
use crate::clock::{rfc3339, Clock};
use crate::config::TenantConfig;
use crate::generation::TenantGeneration;
use crate::metrics::{Metrics, TenantMetrics};
use crate::store::{OutboxId, OutboxRow, Recovered, Row, Store, StoreError};
use arc_swap::ArcSwap;
use prometheus_client::metrics::histogram::Histogram;
use serde_json::{json, Map, Value};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use switchboard_core::channel::{
    ChannelDirectory, ChannelError, Outbound, OutboundContext, OutboundMessage, OutgoingRequest,
    WEBCHAT,
};
use switchboard_core::engine::Engine;
use switchboard_core::lua::ScriptError;
use switchboard_core::model::{
    AgentState, ConversationId, DeliveryFailure, Millis, Party, DISCONNECTED_REASON,
};
use switchboard_core::routing::{Candidate, ConversationView, RouteDecision, RoutingPolicy};
use switchboard_core::{
    Carrier, Command, CommandError, Delivery, Event, Extensions, Masker, Output,
};
use tokio::sync::{mpsc, Notify};

/// Messages queued for one subscriber before it counts as too slow.
const SUBSCRIBER_BUFFER: usize = 1024;

/// A live connection that receives JSON text frames.
#[derive(Debug)]
struct Subscriber {
    id: u64,
    /// The agent session the socket was opened with (none for visitors).
    session: Option<String>,
    tx: mpsc::Sender<Arc<str>>,
}

/// Fan-out of JSON frames to the connections of agents and visitors.
#[derive(Debug, Default)]
pub struct Hub {
    next_id: AtomicU64,
    agents: Mutex<HashMap<String, Vec<Subscriber>>>,
    visitors: Mutex<HashMap<String, Vec<Subscriber>>>,
    /// Since when each agent with no open socket has had none (set when
    /// its last socket closes or when it logs in without one).
    agents_away: Mutex<HashMap<String, Millis>>,
    /// What supervisors' consoles read (`crate::console`).
    pub console: crate::console::Feed,
    /// Supervisors' consoles monitoring a conversation, by conversation id.
    monitors: Mutex<HashMap<String, Vec<Subscriber>>>,
}

/// A subscription; dropping it does not unsubscribe (call `Hub::leave_*`).
#[derive(Debug)]
pub struct Subscription {
    pub id: u64,
    pub rx: mpsc::Receiver<Arc<str>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these locks cannot leave the maps in a
    // half-written state (each critical section is a single insert/remove),
    // so a poisoned lock is safe to keep using.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Hub {
    fn join(
        map: &Mutex<HashMap<String, Vec<Subscriber>>>,
        key: &str,
        id: u64,
        session: Option<String>,
    ) -> Subscription {
        let (tx, rx) = mpsc::channel(SUBSCRIBER_BUFFER);
        lock(map)
            .entry(key.to_string())
            .or_default()
            .push(Subscriber { id, session, tx });
        Subscription { id, rx }
    }

    /// Remove a subscriber; true when it was the key's last.
    fn leave(map: &Mutex<HashMap<String, Vec<Subscriber>>>, key: &str, id: u64) -> bool {
        let mut m = lock(map);
        if let Some(subs) = m.get_mut(key) {
            subs.retain(|s| s.id != id);
            if subs.is_empty() {
                m.remove(key);
            }
        }
        !m.contains_key(key)
    }

    fn send(map: &Mutex<HashMap<String, Vec<Subscriber>>>, key: &str, frame: &Arc<str>) {
        let mut m = lock(map);
        if let Some(subs) = m.get_mut(key) {
            // A full buffer means the client stopped reading: cut it off; it
            // reconnects and reloads its state.
            subs.retain(|s| s.tx.try_send(frame.clone()).is_ok());
        }
    }

    /// A socket of `agent` opened with session `session`.
    pub fn join_agent(&self, agent: &str, session: &str) -> Subscription {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let sub = Self::join(&self.agents, agent, id, Some(session.to_string()));
        lock(&self.agents_away).remove(agent);
        sub
    }

    /// A socket of `agent` closed at `now`.
    pub fn leave_agent(&self, agent: &str, id: u64, now: Millis) {
        if Self::leave(&self.agents, agent, id) {
            lock(&self.agents_away).insert(agent.to_string(), now);
        }
    }

    /// Close every socket opened with session `session` (its senders are
    /// dropped: each socket's pump ends and closes it).
    pub fn close_session(&self, agent: &str, session: &str) {
        let mut m = lock(&self.agents);
        if let Some(subs) = m.get_mut(agent) {
            subs.retain(|s| s.session.as_deref() != Some(session));
        }
    }

    /// Start the agent's away time at `now` if it has no open socket (a
    /// login without a desktop connected yet).
    pub fn away_unless_connected(&self, agent: &str, now: Millis) {
        let connected = lock(&self.agents).contains_key(agent);
        if !connected {
            lock(&self.agents_away)
                .entry(agent.to_string())
                .or_insert(now);
        }
    }

    /// Since when the agent has had no open socket, if it has none.
    pub fn away_since(&self, agent: &str) -> Option<Millis> {
        lock(&self.agents_away).get(agent).copied()
    }

    /// The agents away, with since when.
    fn away(&self) -> Vec<(String, Millis)> {
        lock(&self.agents_away)
            .iter()
            .map(|(a, t)| (a.clone(), *t))
            .collect()
    }

    fn forget_away(&self, agent: &str) {
        lock(&self.agents_away).remove(agent);
    }

    pub fn join_visitor(&self, visitor: &str) -> Subscription {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        Self::join(&self.visitors, visitor, id, None)
    }

    pub fn leave_visitor(&self, visitor: &str, id: u64) {
        Self::leave(&self.visitors, visitor, id);
    }

    pub fn to_agent(&self, agent: &str, frame: &Arc<str>) {
        Self::send(&self.agents, agent, frame)
    }

    pub fn to_visitor(&self, visitor: &str, frame: &Arc<str>) {
        Self::send(&self.visitors, visitor, frame)
    }

    /// A supervisor's console starts monitoring `conversation`: it gets
    /// the agents' frame of each of its events (but its creation, which
    /// holds the customer's raw id).
    pub fn join_monitor(&self, conversation: ConversationId) -> Subscription {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        Self::join(&self.monitors, &conversation.to_string(), id, None)
    }

    pub fn leave_monitor(&self, conversation: ConversationId, id: u64) {
        Self::leave(&self.monitors, &conversation.to_string(), id);
    }

    fn is_monitored(&self, conversation: ConversationId) -> bool {
        let m = lock(&self.monitors);
        !m.is_empty() && m.contains_key(&conversation.to_string())
    }

    fn to_monitors(&self, conversation: ConversationId, frame: &Arc<str>) {
        Self::send(&self.monitors, &conversation.to_string(), frame)
    }

    /// Close every socket (the tenant leaves this node).
    pub fn close_all(&self) {
        lock(&self.agents).clear();
        lock(&self.visitors).clear();
        lock(&self.monitors).clear();
    }

    /// Number of open agent connections.
    pub fn agent_connections(&self) -> usize {
        lock(&self.agents).values().map(Vec::len).sum()
    }
}

/// A frame for one subscriber.
#[derive(Debug, Clone)]
enum Target {
    Agent(String),
    Visitor(String),
    Monitor(ConversationId),
}

/// What the engine lock protects.
struct Inner {
    engine: Engine,
    /// Sequence number of the last event journaled.
    last_seq: u64,
    since_snapshot: u64,
    /// Bumped each time the engine is rebuilt from the journal after a
    /// failed commit: a failure seen by several callers rebuilds once.
    rebuilds: u64,
}

/// Why an action failed.
#[derive(Debug)]
pub enum ExecuteError {
    /// Refused by the engine; nothing changed.
    Command(CommandError),
    /// Accepted by the engine but not journaled: the caller must not
    /// consider it done.
    Storage(StoreError),
    /// This node no longer serves the tenant (its lease ran out, another
    /// node took it, or it is being handed over): nothing was changed;
    /// the caller retries on the owner.
    Moved,
}

impl From<CommandError> for ExecuteError {
    fn from(e: CommandError) -> Self {
        ExecuteError::Command(e)
    }
}

/// One tenant.
pub struct Tenant {
    pub config: TenantConfig,
    /// The tenant id, shared with journal jobs.
    key: Arc<str>,
    inner: Mutex<Inner>,
    pub hub: Arc<Hub>,
    /// Woken whenever the next deadline may have changed.
    pub timer: Notify,
    clock: Arc<Clock>,
    /// The journal, snapshots and the rest of what is kept durably.
    store: Arc<dyn Store>,
    /// The store epoch this tenant is written under (fencing: a stale one
    /// is refused).
    epoch: u64,
    /// This tenant's metric handles, resolved once.
    pub metrics: TenantMetrics,
    /// The live generation of the tenant's scripts and plugins; a reload
    /// swaps it.
    generation: ArcSwap<TenantGeneration>,
    /// One reload at a time, so generation numbers only grow.
    reloading: Mutex<u64>,
    /// A candidate policy asked beside the live one, if an admin started
    /// one (`crate::shadow`).
    shadow: arc_swap::ArcSwapOption<crate::shadow::Shadow>,
    /// Requests for channels (agent replies), sent by `channels::run_outbox`.
    outbox: mpsc::UnboundedSender<Outgoing>,
    outbox_rx: Mutex<Option<mpsc::UnboundedReceiver<Outgoing>>>,
    /// The server's sessions and the away grace period, set once at start
    /// ([`Tenant::attach_sessions`]); without them the timer does not
    /// watch agents' presence.
    presence: OnceLock<Presence>,
    /// Whether this node may still write the tenant (`crate::cluster`).
    pub lease: Lease,
    /// Commits handed to the journal and not yet answered.
    inflight: std::sync::atomic::AtomicUsize,
    /// The tenant's tasks (timers, outbox), stopped when it leaves this node.
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

/// This node's right to write a tenant. One node alone: always. In a
/// cluster: until the local deadline of its lease (the start of its last
/// successful renewal + `lease_ms`), and never again once fenced (the
/// lease was lost, the journal answered a stale epoch, or the tenant is
/// handed over). Checked under the engine lock before every append, so a
/// node that could not renew in time stops writing by itself, before any
/// other node may take the tenant.
#[derive(Debug)]
pub struct Lease {
    /// Milliseconds since [`Lease::origin`] until which writes are allowed.
    deadline: AtomicU64,
    fenced: std::sync::atomic::AtomicBool,
    /// The journal refused an append of ours as stale: another node owns
    /// the tenant now.
    stale: std::sync::atomic::AtomicBool,
}

impl Default for Lease {
    fn default() -> Self {
        Lease {
            deadline: AtomicU64::new(u64::MAX),
            fenced: Default::default(),
            stale: Default::default(),
        }
    }
}

impl Lease {
    /// A fixed instant that monotonic deadlines count from.
    fn origin() -> std::time::Instant {
        static ORIGIN: OnceLock<std::time::Instant> = OnceLock::new();
        *ORIGIN.get_or_init(std::time::Instant::now)
    }

    fn since_origin(at: std::time::Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(Self::origin()).as_millis()).unwrap_or(u64::MAX)
    }

    /// Writes are allowed until `at` (monotonic clock).
    pub fn hold_until(&self, at: std::time::Instant) {
        self.deadline
            .store(Self::since_origin(at), Ordering::SeqCst);
    }

    /// Stop writing for good.
    pub fn fence(&self) {
        self.fenced.store(true, Ordering::SeqCst);
    }

    /// Whether writes are allowed now.
    pub fn valid(&self) -> bool {
        !self.fenced.load(Ordering::SeqCst)
            && Self::since_origin(std::time::Instant::now()) < self.deadline.load(Ordering::SeqCst)
    }

    /// Whether the journal told us another node owns the tenant.
    pub fn is_stale(&self) -> bool {
        self.stale.load(Ordering::SeqCst)
    }

    fn mark_stale(&self) {
        self.stale.store(true, Ordering::SeqCst);
        self.fence();
    }
}

/// What the timer needs to end sessions and log out agents who are gone.
#[derive(Debug)]
struct Presence {
    sessions: Arc<Sessions>,
    grace_ms: Millis,
}

/// An agent's reply on its way out through a channel, as the engine
/// decided it (`message`: the reply's index in the transcript, for
/// reporting a failure back).
#[derive(Debug)]
pub struct Outgoing {
    pub conversation: u64,
    pub channel: String,
    pub message: usize,
    pub request: OutgoingRequest,
    /// The files the reply carries, each sent before the text (see
    /// `crate::channels`); by id, read from the tenant's storage.
    pub attachments: Vec<switchboard_core::model::Attachment>,
    /// Whether the reply has a text to send (a reply may be files alone).
    pub send_text: bool,
    /// Its row in the store's outbox, marked sent once it is.
    pub id: OutboxId,
}

/// The tenant's channels for the engine: web chat built in (replies are
/// pushed on the visitor's socket), every other channel through the
/// generation's adapter (plugin, else script).
struct Directory<'a> {
    generation: &'a TenantGeneration,
}

impl ChannelDirectory for Directory<'_> {
    fn outbound(
        &self,
        channel: &str,
        message: &OutboundMessage,
        ctx: &OutboundContext,
    ) -> Option<Result<Outbound, ChannelError>> {
        if channel == WEBCHAT {
            return Some(Ok(Outbound::Push));
        }
        let adapter = self.generation.channel(channel)?;
        let answer = adapter.outbound(message, ctx);
        if answer.is_err() {
            // Not the adapter's message: a script's error may quote the reply.
            tracing::warn!(channel = %channel, "channel adapter failed to build a reply");
        }
        Some(answer)
    }
}

impl std::fmt::Debug for Tenant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tenant")
            .field("id", &self.config.id)
            .finish()
    }
}

impl Tenant {
    /// Build the tenant from its configuration and what the journal holds.
    pub fn new(
        config: TenantConfig,
        clock: Arc<Clock>,
        store: Arc<dyn Store>,
        epoch: u64,
        recovered: Recovered,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<Tenant> {
        let masker = Masker::new(&config.mask_patterns)?;
        let generation = crate::generation::load(&config, 1, clock.now()).map_err(|errors| {
            let list: Vec<String> = errors
                .iter()
                .map(|e| format!("{}: {e}", config.id))
                .collect();
            anyhow::anyhow!("invalid scripts or plugins:\n{}", list.join("\n"))
        })?;
        let (outbox, outbox_rx) = mpsc::unbounded_channel();
        let replayed = recovered.events.len();
        let last_seq = recovered.last_seq;
        let hub = Hub::default();
        // The reports: what the snapshot covers (read back for
        // `reports_days`), then the events after it.
        let earlier = report_history(&*store, &config, recovered.snapshot_seq, clock.now());
        hub.console.record(&earlier, 0);
        hub.console.record(&recovered.events, 0);
        let engine = recovered_engine(&config, masker, recovered);
        hub.console.seed(&engine, last_seq);
        if last_seq > 0 {
            tracing::info!(tenant = %config.id, replayed, last_seq, "state recovered from the journal");
        }
        let mut channels = vec![WEBCHAT, crate::http::messenger::CHANNEL];
        channels.extend(config.plugins.iter().filter_map(|p| p.channel.as_deref()));
        let metrics = TenantMetrics::new(metrics, &config.id, &channels);
        Ok(Tenant {
            key: config.id.as_str().into(),
            config,
            inner: Mutex::new(Inner {
                engine,
                last_seq,
                since_snapshot: replayed as u64,
                rebuilds: 0,
            }),
            hub: Arc::new(hub),
            timer: Notify::new(),
            clock,
            store,
            epoch,
            metrics,
            generation: ArcSwap::from_pointee(generation),
            reloading: Mutex::new(1),
            shadow: arc_swap::ArcSwapOption::empty(),
            outbox,
            outbox_rx: Mutex::new(Some(outbox_rx)),
            presence: OnceLock::new(),
            lease: Lease::default(),
            inflight: Default::default(),
            tasks: Mutex::new(Vec::new()),
        })
    }

    pub fn id(&self) -> &str {
        &self.config.id
    }

    /// The epoch this tenant writes under.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Start the tenant's timers and outbox sender (stopped by
    /// [`Tenant::stop`]).
    pub fn start_tasks(self: &Arc<Self>) {
        let timers = tokio::spawn(run_timers(self.clone()));
        let outbox = tokio::spawn(crate::channels::run_outbox(self.clone()));
        lock(&self.tasks).extend([timers, outbox]);
    }

    /// Stop serving the tenant on this node: no more writes, then wait
    /// (at most `patience`) for the commits already handed to the journal
    /// to be answered, stop the timers and the outbox, and close every
    /// agent, console and visitor socket (desktops reconnect, through any
    /// node, to the new owner). True when nothing was left in flight.
    pub async fn stop(&self, patience: std::time::Duration) -> bool {
        self.lease.fence();
        // Once the engine lock has been taken after the fence, no command
        // can still be between `handle` and `append`.
        drop(lock(&self.inner));
        let deadline = tokio::time::Instant::now() + patience;
        let mut settled = true;
        while self.inflight.load(Ordering::SeqCst) > 0 {
            if tokio::time::Instant::now() >= deadline {
                settled = false;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        for task in lock(&self.tasks).drain(..) {
            task.abort();
        }
        self.hub.close_all();
        settled
    }

    pub fn now(&self) -> u64 {
        self.clock.now()
    }

    /// The wrap-up reasons offered after a conversation of `queue`.
    pub fn wrapup_reasons(&self, queue: &str) -> Arc<[switchboard_core::model::WrapUpReason]> {
        use switchboard_core::wrapup::WrapUpReasons;
        self.generation.load().reasons(queue)
    }

    /// The live generation of the scripts and plugins (calls in flight
    /// keep theirs).
    pub fn generation(&self) -> Arc<TenantGeneration> {
        let g = self.generation.load_full();
        g.set_now(self.clock.now());
        g
    }

    /// Build a new generation from the script files and plugin libraries
    /// and swap it in; on any
    /// error the live one keeps serving. CPU work: call it off the async
    /// worker threads.
    pub fn reload(&self) -> Result<u64, Vec<ScriptError>> {
        let mut last = lock(&self.reloading);
        let number = *last + 1;
        let g = crate::generation::load(&self.config, number, self.clock.now())?;
        self.generation.store(Arc::new(g));
        *last = number;
        tracing::info!(tenant = %self.config.id, generation = number, "scripts reloaded");
        Ok(number)
    }

    /// The shadow policy, if one runs.
    pub fn shadow(&self) -> Option<Arc<crate::shadow::Shadow>> {
        self.shadow.load_full()
    }

    /// Start (`Some`) or stop (`None`) the shadow policy; the one it
    /// replaces, if any.
    pub fn set_shadow(
        &self,
        shadow: Option<crate::shadow::Shadow>,
    ) -> Option<Arc<crate::shadow::Shadow>> {
        self.shadow.swap(shadow.map(Arc::new))
    }

    /// The receiver of outgoing channel requests (taken once, by the sender task).
    pub fn take_outbox(&self) -> Option<mpsc::UnboundedReceiver<Outgoing>> {
        lock(&self.outbox_rx).take()
    }

    /// A reply the engine handed out did not reach the customer: journal
    /// it (the agents see `delivery_failed`, the transcript a system line).
    /// True once settled: journaled, or refused by the engine (nothing to
    /// journal); false when it may still be journaled later.
    pub async fn delivery_failed(
        &self,
        conversation: u64,
        message: usize,
        reason: DeliveryFailure,
    ) -> bool {
        let command = Command::DeliveryFailed {
            conversation,
            message,
            reason,
        };
        match self.execute(command).await {
            Ok(_) => true,
            Err(ExecuteError::Command(e)) => {
                tracing::warn!(tenant = %self.config.id, conversation, error = %e, "delivery failure refused by the engine");
                true
            }
            Err(e) => {
                tracing::error!(tenant = %self.config.id, conversation, error = ?e, "delivery failure not journaled");
                false
            }
        }
    }

    /// The replies committed and not yet sent (the store's outbox).
    pub async fn outbox_pending(&self) -> Result<Vec<OutboxRow>, StoreError> {
        let (store, key) = (self.store.clone(), self.key.clone());
        tokio::task::spawn_blocking(move || store.outbox_pending(&key))
            .await
            .unwrap_or(Err(StoreError::Stopped))
    }

    /// Record that the reply `id` was sent (or its failure journaled), under
    /// this tenant's epoch: refused once another node owns the tenant.
    pub async fn outbox_sent(&self, ids: Vec<OutboxId>) -> Result<(), StoreError> {
        let (store, key, epoch) = (self.store.clone(), self.key.clone(), self.epoch);
        tokio::task::spawn_blocking(move || store.outbox_sent(&key, epoch, &ids))
            .await
            .unwrap_or(Err(StoreError::Stopped))
    }

    /// Where the tenant's attachments are kept (shared by the nodes of a
    /// cluster, so they follow the tenant).
    pub fn attachments(&self) -> crate::attachments::Storage {
        crate::attachments::Storage::new(&self.store, &self.config.data_dir)
    }

    /// Read the engine's state.
    pub fn read<R>(&self, f: impl FnOnce(&Engine) -> R) -> R {
        f(&lock(&self.inner).engine)
    }

    /// Run a command; answer once its events are durably journaled (and
    /// published).
    pub async fn execute(&self, command: Command) -> Result<Output, ExecuteError> {
        let kind = command_name(&command);
        let (out, committed, rearm, rebuilds) = {
            let mut inner = lock(&self.inner);
            if !self.lease.valid() {
                return Err(ExecuteError::Moved);
            }
            let now = self.clock.now();
            let deadline_before = inner.engine.next_deadline();
            let gen = self.generation.load_full();
            gen.set_now(now);
            let shadow = self.shadow.load();
            let routing = TimedRouting {
                inner: &*gen,
                seconds: &self.metrics.routing_seconds,
                shadow: shadow.as_deref().map(|s| (s, now)),
            };
            let channels = Directory { generation: &gen };
            let ext = Extensions {
                routing: &routing,
                wrapup: &*gen,
                channels: &channels,
            };
            let started = std::time::Instant::now();
            let result = inner.engine.handle(command, now, &ext);
            self.metrics
                .command_seconds
                .observe(started.elapsed().as_secs_f64());
            let out = match result {
                Ok(out) => out,
                Err(e) => {
                    tracing::debug!(tenant = %self.config.id, command = kind, error = %e, "command refused");
                    return Err(e.into());
                }
            };
            tracing::debug!(tenant = %self.config.id, command = kind, events = out.emitted.len(), "command");
            let committed = self.journal_and_publish(&mut inner, &out);
            if committed.is_some() {
                self.inflight.fetch_add(1, Ordering::SeqCst);
            }
            (
                out,
                committed,
                inner.engine.next_deadline() != deadline_before,
                inner.rebuilds,
            )
        };
        // The timer task sleeps until the earliest deadline: wake it only
        // when that changed.
        if rearm {
            self.timer.notify_one();
        }
        if let Some(rx) = committed {
            let failure = match rx.await {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(e),
                Err(_) => Some(StoreError::Stopped),
            };
            self.inflight.fetch_sub(1, Ordering::SeqCst);
            if let Some(e) = failure {
                if let StoreError::StaleEpoch { .. } = e {
                    // Deposed: another node owns the tenant now. Nothing
                    // of this is stored; stop writing and let the node
                    // drop the tenant (no resync: the journal is theirs).
                    tracing::warn!(tenant = %self.config.id, epoch = self.epoch, "append refused: stale epoch; the tenant is fenced here");
                    self.lease.mark_stale();
                    return Err(ExecuteError::Moved);
                }
                self.resync(rebuilds);
                return Err(ExecuteError::Storage(e));
            }
        }
        Ok(out)
    }

    /// After a failed commit: the engine applied events the journal does
    /// not hold. Rebuild it from the journal (snapshot + events), once per
    /// failure however many callers saw it, under the engine lock so no
    /// command runs on the lost state meanwhile. Rebuilding on failure
    /// keeps the usual path straight (lock → handle → journal → publish,
    /// no copy of the engine per command).
    fn resync(&self, rebuilds: u64) {
        let mut inner = lock(&self.inner);
        if inner.rebuilds != rebuilds {
            return;
        }
        inner.rebuilds += 1;
        let recovered = match self.store.resync(&self.key) {
            Ok(r) => r,
            Err(e) => {
                // The journal stays closed to this tenant: the next failed
                // command tries again.
                tracing::error!(tenant = %self.config.id, error = %e, "cannot read the journal back after a failed commit");
                return;
            }
        };
        let masker = inner.engine.masker().clone();
        let last_seq = recovered.last_seq;
        let replayed = recovered.events.len() as u64;
        inner.engine = recovered_engine(&self.config, masker, recovered);
        inner.last_seq = last_seq;
        inner.since_snapshot = replayed;
        self.hub.console.seed(&inner.engine, last_seq);
        tracing::warn!(tenant = %self.config.id, last_seq, "engine rebuilt from the journal after a failed commit");
        drop(inner);
        self.timer.notify_one();
    }

    /// Make the journal's next commit fail (test hook behind `test_clock`).
    pub fn fail_next_commit(&self) {
        self.store.fail_next_commit();
    }

    /// Expire due offers, end expired sessions and log out agents who are
    /// gone; returns once the events are journaled.
    pub async fn tick(&self) {
        let (committed, rebuilds) = {
            let mut inner = lock(&self.inner);
            if !self.lease.valid() {
                return;
            }
            let now = self.clock.now();
            let gen = self.generation.load_full();
            gen.set_now(now);
            // Re-offers after a RONA are routing decisions too: timed alike.
            let shadow = self.shadow.load();
            let routing = TimedRouting {
                inner: &*gen,
                seconds: &self.metrics.routing_seconds,
                shadow: shadow.as_deref().map(|s| (s, now)),
            };
            let channels = Directory { generation: &gen };
            let ext = Extensions {
                routing: &routing,
                wrapup: &*gen,
                channels: &channels,
            };
            let out = inner.engine.tick(now, &ext);
            let committed = if out.emitted.is_empty() {
                None
            } else {
                tracing::debug!(tenant = %self.config.id, events = out.emitted.len(), "timers");
                self.journal_and_publish(&mut inner, &out)
            };
            if committed.is_some() {
                self.inflight.fetch_add(1, Ordering::SeqCst);
            }
            (committed, inner.rebuilds)
        };
        if let Some(rx) = committed {
            let answer = rx.await;
            self.inflight.fetch_sub(1, Ordering::SeqCst);
            match answer {
                Ok(Err(StoreError::StaleEpoch { .. })) => {
                    tracing::warn!(tenant = %self.config.id, "timer events refused: stale epoch; the tenant is fenced here");
                    self.lease.mark_stale();
                    return;
                }
                Ok(Err(e)) => {
                    tracing::error!(tenant = %self.config.id, error = %e, "timer events not journaled");
                    self.resync(rebuilds);
                }
                _ => {}
            }
        }
        self.sweep_agents().await;
    }

    /// Connect the tenant's timer to the server's sessions: from then on it
    /// ends expired sessions (closing their sockets) and logs out agents
    /// with no live session or with no socket for longer than `grace_ms`.
    pub fn attach_sessions(&self, sessions: Arc<Sessions>, grace_ms: Millis) {
        if self.presence.set(Presence { sessions, grace_ms }).is_err() {
            tracing::warn!(tenant = %self.config.id, "sessions attached twice");
        }
        self.timer.notify_one();
    }

    /// When the timer next has work: an offer or archive deadline, a
    /// session expiry, or the end of an away agent's grace period.
    pub fn next_deadline(&self) -> Option<Millis> {
        let engine = self.read(|e| e.next_deadline());
        let Some(p) = self.presence.get() else {
            return engine;
        };
        let session = p.sessions.next_expiry(&self.key);
        let away = self
            .hub
            .away()
            .into_iter()
            .map(|(_, since)| since.saturating_add(p.grace_ms))
            .min();
        [engine, session, away].into_iter().flatten().min()
    }

    /// End the sessions expired now (their sockets are closed) and log out
    /// through the engine every agent who is gone: no live session, or no
    /// socket for longer than the grace period. Their pending offers go
    /// back to the queue at once.
    async fn sweep_agents(&self) {
        let Some(p) = self.presence.get() else {
            return;
        };
        let now = self.clock.now();
        for s in p.sessions.expire(&self.key, now) {
            self.hub.close_session(&s.agent, &s.id);
            tracing::info!(tenant = %self.config.id, agent = %s.agent, "session expired");
        }
        // Agents who could be offered work (the others need no watching).
        let watched: HashSet<String> = self.read(|e| {
            e.agents()
                .filter(|a| match &a.state {
                    AgentState::LoggedOut => false,
                    AgentState::Idle { reason } => {
                        reason != DISCONNECTED_REASON || !a.offers.is_empty()
                    }
                    AgentState::Available | AgentState::Rona => true,
                })
                .map(|a| a.config.id.clone())
                .collect()
        });
        for (agent, _) in self.hub.away() {
            if !watched.contains(&agent) {
                self.hub.forget_away(&agent);
            }
        }
        for agent in watched {
            let has_session = p.sessions.has_live(&self.key, &agent, now);
            let away_too_long = self
                .hub
                .away_since(&agent)
                .is_some_and(|since| since.saturating_add(p.grace_ms) <= now);
            if has_session && !away_too_long {
                // After a restart nobody is connected yet: start the grace.
                self.hub.away_unless_connected(&agent, now);
                continue;
            }
            let why = if has_session { "away" } else { "no_session" };
            match self
                .execute(Command::AgentGone {
                    agent: agent.clone(),
                })
                .await
            {
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(tenant = %self.config.id, agent = %agent, error = ?e, "could not log out an agent who is gone");
                }
            }
            self.hub.forget_away(&agent);
            let logged_out = self.read(|e| {
                e.agent(&agent)
                    .is_some_and(|a| a.state == AgentState::LoggedOut)
            });
            if logged_out {
                // No session may outlive its agent's login.
                for s in p.sessions.revoke_agent(&self.key, &agent) {
                    self.hub.close_session(&s.agent, &s.id);
                }
            }
            tracing::info!(tenant = %self.config.id, agent = %agent, reason = why, logged_out, "agent gone");
        }
    }

    /// Under the engine lock: number the events, hand them to the journal
    /// with the frames to publish once they are committed.
    fn journal_and_publish(
        &self,
        inner: &mut Inner,
        out: &Output,
    ) -> Option<crate::store::Committed> {
        if out.emitted.is_empty() && out.deliveries.is_empty() {
            return None;
        }
        let mut rows = Vec::with_capacity(out.emitted.len());
        for e in &out.emitted {
            inner.last_seq += 1;
            rows.push(Row {
                seq: inner.last_seq,
                kind: e.event.type_name(),
                conversation: e.event.conversation(),
                body: serde_json::to_string(&e.event).unwrap_or_default(),
            });
        }
        self.metrics.record(&inner.engine, out);
        let mut frames = frames(&inner.engine, self.id(), out, self.clock.now());
        for e in &out.emitted {
            let Some(id) = e.event.conversation() else {
                continue;
            };
            if !matches!(e.event, Event::ConversationCreated { .. }) && self.hub.is_monitored(id) {
                let frame =
                    json!({"type": "monitor", "event": agent_frame(&inner.engine, &e.event)});
                frames.push((Target::Monitor(id), frame.to_string().into()));
            }
        }
        let (outgoing, replies) = channel_requests(out, inner.last_seq, self.clock.now());
        let console_rows = crate::console::Changes::of(&inner.engine, out, inner.last_seq);
        // The console and reports need no transcript texts.
        let console: Vec<Event> = out
            .emitted
            .iter()
            .filter(|e| !matches!(e.event, Event::Message { .. }))
            .map(|e| e.event.clone())
            .collect();
        let now = self.clock.now();
        let outbox = self.outbox.clone();
        let hub = self.hub.clone();
        let commit_seconds = self.metrics.family().commit_seconds.clone();
        let handed = std::time::Instant::now();
        let rx = self.store.append_with_outbox(
            &self.key,
            self.epoch,
            rows,
            replies,
            Box::new(move || {
                commit_seconds.observe(handed.elapsed().as_secs_f64());
                for (target, frame) in &frames {
                    match target {
                        Target::Agent(a) => hub.to_agent(a, frame),
                        Target::Visitor(v) => hub.to_visitor(v, frame),
                        Target::Monitor(c) => hub.to_monitors(*c, frame),
                    }
                }
                hub.console.apply(console_rows);
                hub.console.record(&console, now);
                // Replies leave for the customer only once journaled.
                for job in outgoing {
                    let _ = outbox.send(job);
                }
            }),
        );
        inner.since_snapshot += out.emitted.len() as u64;
        if inner.since_snapshot >= self.config.snapshot_every {
            inner.since_snapshot = 0;
            // A copy under the lock; encoded and stored off it.
            let snapshot = inner.engine.snapshot();
            drop(
                self.store
                    .snapshot(&self.key, self.epoch, inner.last_seq, snapshot),
            );
        }
        Some(rx)
    }
}

/// Events read back per page by [`report_history`].
const HISTORY_PAGE: usize = 10_000;

/// The journal's events up to `snapshot_seq` (what the latest snapshot
/// covers) from `reports_days` days before `now` on, in journal order: the
/// report figures of that time, which the snapshot does not keep. Read
/// backwards until an event older than that; a failed read is logged and
/// leaves the figures to what was read (the engine does not need them).
fn report_history(
    store: &dyn Store,
    config: &TenantConfig,
    snapshot_seq: u64,
    now: Millis,
) -> Vec<Event> {
    let since = now.saturating_sub(config.reports_days.saturating_mul(24 * 3_600_000));
    let mut events = Vec::new();
    let mut before = snapshot_seq.saturating_add(1);
    'pages: while before > 1 && config.reports_days > 0 {
        let page = match store.events_before(&config.id, before, HISTORY_PAGE) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(tenant = %config.id, error = %e, "reading the journal for the reports");
                break;
            }
        };
        let Some(&(last, _)) = page.last() else {
            break;
        };
        for (_, ev) in page {
            // A conversation put back in its queue keeps its first queueing
            // time: only the other events say where the window ends.
            let old = !matches!(ev, Event::Queued { .. }) && ev.at().is_some_and(|at| at < since);
            if old {
                break 'pages;
            }
            events.push(ev);
        }
        before = last;
    }
    events.reverse();
    if !events.is_empty() {
        tracing::info!(tenant = %config.id, events = events.len(), "report figures read back from the journal");
    }
    events
}

/// The tenant's engine as the journal left it: configuration, then the
/// snapshot, then the events after it.
fn recovered_engine(config: &TenantConfig, masker: Masker, recovered: Recovered) -> Engine {
    let mut engine = Engine::new(
        config.settings(),
        masker,
        config.queue_configs(),
        config.agent_configs(),
    );
    engine.seed_roles(config.agents.iter().map(|a| (a.id.clone(), a.role)));
    if let Some(snap) = recovered.snapshot {
        engine.restore(snap);
    }
    for ev in &recovered.events {
        engine.apply(ev);
    }
    if let Err(e) = engine.check_invariants() {
        tracing::warn!(tenant = %config.id, error = %e, "recovered state is inconsistent");
    }
    engine
}

/// The requests carrying agents' replies, as the engine decided them (web
/// chat replies are pushed as frames instead), and their rows for the
/// store's outbox (`seq`: the append's last event).
fn channel_requests(out: &Output, seq: u64, now: Millis) -> (Vec<Outgoing>, Vec<OutboxRow>) {
    let mut outgoing = Vec::new();
    let mut rows = Vec::new();
    for d in &out.deliveries {
        let Carrier::Request(request) = &d.carrier else {
            continue;
        };
        let id = OutboxId {
            seq,
            n: u32::try_from(rows.len()).unwrap_or(u32::MAX),
        };
        rows.push(OutboxRow {
            id,
            conversation: d.conversation,
            message: d.message as u64,
            channel: d.channel.clone(),
            customer: d.customer.clone(),
            author: d.author.to_string(),
            text: d.text.clone(),
            at: now,
        });
        outgoing.push(Outgoing {
            conversation: d.conversation,
            channel: d.channel.clone(),
            message: d.message,
            request: request.clone(),
            attachments: d.attachments.clone(),
            send_text: !switchboard_core::model::is_blank(&d.text),
            id,
        });
    }
    (outgoing, rows)
}

/// A routing policy whose decisions are timed into a histogram.
struct TimedRouting<'a> {
    inner: &'a dyn RoutingPolicy,
    seconds: &'a Histogram,
    /// The shadow policy told of each decision, and the time.
    shadow: Option<(&'a crate::shadow::Shadow, Millis)>,
}

impl RoutingPolicy for TimedRouting<'_> {
    fn entry(&self, conversation: &ConversationView<'_>) -> Option<String> {
        self.inner.entry(conversation)
    }

    fn route(
        &self,
        conversation: &ConversationView<'_>,
        candidates: &[Candidate<'_>],
    ) -> RouteDecision {
        let started = std::time::Instant::now();
        let decision = self.inner.route(conversation, candidates);
        self.seconds.observe(started.elapsed().as_secs_f64());
        if let Some((shadow, now)) = self.shadow {
            shadow.observe(
                now,
                conversation,
                candidates,
                &decision,
                self.inner.generation(),
            );
        }
        decision
    }

    fn generation(&self) -> u64 {
        self.inner.generation()
    }
}

/// The frames an output sends: to agents (their projection of each event)
/// and to web chat visitors (notices and the agents' raw replies).
fn frames(engine: &Engine, tenant: &str, out: &Output, now: u64) -> Vec<(Target, Arc<str>)> {
    let mut frames = Vec::new();
    for emitted in &out.emitted {
        let ev = &emitted.event;
        if !emitted.audience.agents.is_empty() {
            let frame: Arc<str> = agent_frame(engine, ev).to_string().into();
            for agent in &emitted.audience.agents {
                frames.push((Target::Agent(agent.clone()), frame.clone()));
            }
        }
        if let Some(frame) = visitor_frame(engine, ev, emitted.audience.customer) {
            if let Some(c) = ev.conversation().and_then(|id| engine.conversation(id)) {
                if c.channel == WEBCHAT {
                    frames.push((
                        Target::Visitor(c.customer.clone()),
                        frame.to_string().into(),
                    ));
                }
            }
        }
    }
    for d in &out.deliveries {
        if d.carrier == Carrier::Push {
            let author = engine
                .agent(&d.author)
                .map(|a| a.config.name.clone())
                .unwrap_or_else(|| d.author.clone());
            let frame = json!({
                "type": "message",
                "conversation": d.conversation,
                "from": "agent",
                "author": author,
                "text": d.text,
                "at": rfc3339(now),
            });
            let frame = with_visitor_attachments(frame, tenant, d);
            frames.push((
                Target::Visitor(d.customer.clone()),
                frame.to_string().into(),
            ));
        }
    }
    frames
}

fn command_name(c: &Command) -> &'static str {
    match c {
        Command::Login { .. } => "login",
        Command::Logout { .. } => "logout",
        Command::SetAvailable { .. } => "set_available",
        Command::SetIdle { .. } => "set_idle",
        Command::CustomerMessage(_) => "customer_message",
        Command::Accept { .. } => "accept",
        Command::AgentMessage { .. } => "agent_message",
        Command::Transfer { .. } => "transfer",
        Command::InviteToConference { .. } => "conference",
        Command::EndConference { .. } => "end_conference",
        Command::LeaveConference { .. } => "leave_conference",
        Command::End { .. } => "end",
        Command::WrapUp { .. } => "wrapup",
        Command::DeleteQueue { .. } => "delete_queue",
        Command::AgentGone { .. } => "agent_gone",
        Command::ChangeSettings { .. } => "change_settings",
        Command::DeliveryFailed { .. } => "delivery_failed",
        Command::CustomerReceipt { .. } => "customer_receipt",
        Command::SupervisorSetState { .. } => "supervisor_set_state",
        Command::MoveConversation { .. } => "move_conversation",
        Command::CloseConversation { .. } => "close_conversation",
        Command::JoinConversation { .. } => "join_conversation",
        Command::CustomerLeft { .. } => "customer_left",
        Command::CreateAgent { .. } => "create_agent",
        Command::EditAgent { .. } => "edit_agent",
        Command::SetPassword { .. } => "set_password",
        Command::SetAgentEnabled { .. } => "set_agent_enabled",
        Command::SaveQueue { .. } => "save_queue",
        Command::SetIdleReasons { .. } => "set_idle_reasons",
        Command::SetMasking { .. } => "set_masking",
    }
}

const TIME_FIELDS: [&str; 3] = ["at", "received_at", "expires_at"];

/// The JSON an agent's desktop receives for an event: the event itself with
/// times in RFC 3339, plus what the desktop needs to show it (display
/// names, the transcript when a conversation starts).
pub fn agent_frame(engine: &Engine, ev: &Event) -> Value {
    let mut v = serde_json::to_value(ev).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut v {
        for k in TIME_FIELDS {
            if let Some(ms) = map.get(k).and_then(Value::as_u64) {
                map.insert(k.to_string(), Value::String(rfc3339(ms)));
            }
        }
        if let Some(q) = map.get("queue").and_then(Value::as_str) {
            if let Some(queue) = engine.queue(q) {
                map.insert("queue_name".into(), Value::String(queue.name.clone()));
            }
        }
        match ev {
            Event::ConversationStarted { conversation, .. }
            | Event::ConferenceStarted { conversation, .. } => {
                if let Some(c) = engine.conversation(*conversation) {
                    add_conversation_details(engine, c, map);
                }
            }
            Event::Message {
                from: Party::Agent,
                author,
                ..
            } => {
                map.insert(
                    "author_name".into(),
                    Value::String(agent_name(engine, author)),
                );
            }
            // The desktop marks the reply and adds the transcript's notice.
            Event::DeliveryFailed { reason, .. } => {
                let line =
                    switchboard_core::text::delivery_notice(engine.settings().language, *reason);
                map.insert("text".into(), Value::String(line.into()));
            }
            // The desktop replaces the transcript (and the offer's preview)
            // rather than finding the message it had.
            Event::MessageRedacted { conversation, .. } => {
                if let Some(c) = engine.conversation(*conversation) {
                    add_conversation_details(engine, c, map);
                    map.insert("preview".into(), Value::String(c.preview.clone()));
                }
            }
            _ => {}
        }
    }
    v
}

/// An agent's display name (its id when unknown).
fn agent_name(engine: &Engine, agent: &str) -> String {
    engine
        .agent(agent)
        .map(|a| a.config.name.clone())
        .unwrap_or_else(|| agent.to_string())
}

/// Transcript and participants of a conversation, for a desktop frame.
pub fn add_conversation_details(
    engine: &Engine,
    c: &switchboard_core::engine::Conversation,
    map: &mut Map<String, Value>,
) {
    map.insert("state".into(), Value::String(c.state.name().into()));
    map.insert(
        "customer_name".into(),
        Value::String(c.customer_name.clone()),
    );
    map.insert("channel".into(), Value::String(c.channel.clone()));
    map.insert("source".into(), Value::String(c.source.clone()));
    map.insert("received_at".into(), Value::String(rfc3339(c.received_at)));
    map.insert("cad".into(), json!(c.cad));
    map.insert("owner".into(), json!(c.owner));
    if let Some(r) = &c.interrupted_reason {
        map.insert("interrupted_reason".into(), Value::String(r.clone()));
    }
    map.insert("guest".into(), json!(c.guest));
    if let Some(w) = c.customer_wrote_at {
        map.insert("customer_wrote_at".into(), Value::String(rfc3339(w)));
    }
    map.insert(
        "messages".into(),
        Value::Array(
            c.messages
                .iter()
                .map(|m| {
                    let mut v = message_json(m);
                    if m.from == Party::Agent {
                        v["author_name"] = Value::String(agent_name(engine, &m.author));
                    }
                    v
                })
                .collect(),
        ),
    );
    if let Some(q) = engine.queue(&c.queue) {
        map.insert("queue".into(), Value::String(q.id.clone()));
        map.insert("queue_name".into(), Value::String(q.name.clone()));
    }
}

/// A transcript entry on the wire: `{from, author, text, at}`.
pub fn message_json(m: &switchboard_core::model::Message) -> Value {
    let from = match m.from {
        Party::Customer => "customer",
        Party::Agent => "agent",
        Party::System => "system",
    };
    let mut v = json!({ "from": from, "author": m.author, "text": m.text, "at": rfc3339(m.at) });
    if !m.attachments.is_empty() {
        v["attachments"] = json!(m.attachments);
    }
    if let Some(reason) = m.failed {
        v["failed"] = json!(reason.name());
    }
    if let Some(r) = m.receipt {
        v["receipt"] = json!(r.name());
    }
    v
}

/// A reply's attachments in the visitor's frame, at the address the
/// visitor fetches them from with its own token.
fn with_visitor_attachments(mut frame: Value, tenant: &str, d: &Delivery) -> Value {
    if d.attachments.is_empty() {
        return frame;
    }
    let list: Vec<Value> = d
        .attachments
        .iter()
        .map(|a| {
            let mut v = json!(a);
            v["url"] = json!(crate::http::webchat::visitor_url(tenant, &a.id));
            v
        })
        .collect();
    frame["attachments"] = json!(list);
    frame
}

/// What a web chat visitor is told of an event (agent messages go as
/// deliveries, with the agent's raw text).
fn visitor_frame(engine: &Engine, ev: &Event, to_customer: bool) -> Option<Value> {
    let name = |agent: &str| agent_name(engine, agent);
    match ev {
        Event::Transferred { conversation, .. } => Some(json!({
            "type": "notice",
            "conversation": conversation,
            "text": switchboard_core::text::customer_transferred(engine.settings().language),
        })),
        Event::ConversationStarted {
            conversation,
            agent,
            ..
        }
        | Event::ConferenceStarted {
            conversation,
            agent,
            ..
        } => Some(
            json!({"type": "agent_joined", "conversation": conversation, "agent": name(agent)}),
        ),
        Event::ParticipantLeft {
            conversation,
            agent,
            ..
        } => {
            Some(json!({"type": "agent_left", "conversation": conversation, "agent": name(agent)}))
        }
        Event::ConversationEnded { conversation, .. } if to_customer => {
            Some(json!({"type": "conversation_ended", "conversation": conversation}))
        }
        Event::ConversationDropped {
            conversation,
            reason,
            ..
        } if to_customer => Some(
            json!({"type": "conversation_ended", "conversation": conversation, "reason": reason}),
        ),
        Event::ConversationInterrupted { conversation, .. } => Some(
            json!({"type": "notice", "conversation": conversation, "text": switchboard_core::text::customer_interrupted(engine.settings().language)}),
        ),
        _ => None,
    }
}

/// Drive the tenant's timers until the process ends.
pub async fn run_timers(tenant: Arc<Tenant>) {
    loop {
        let next = tenant.next_deadline();
        let now = tenant.now();
        let wait = match next {
            Some(d) => d.saturating_sub(now),
            None => 60_000,
        };
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_millis(wait)) => {}
            _ = tenant.timer.notified() => {}
        }
        tenant.tick().await;
    }
}
