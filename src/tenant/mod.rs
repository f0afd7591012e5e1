//! A tenant at run time: its engine behind a lock, and the one straight
//! path every change takes ([`Tenant::execute`] for commands,
//! [`Tenant::tick`] for timers): lock → handle → journal (fenced append)
//! → after the commit, publish and hand replies to the outbox. What hangs
//! off that path lives beside it: `hub` (sockets and presence), `frames`
//! (the JSON on the wire), `outbox` (replies on their way to a channel),
//! `timers` (the timer task and the presence sweep), `lease` (this node's
//! right to write), `recovery` (the engine and reports read back),
//! `extensions` (what the engine is handed).
//!
//! **Invariant:** events are numbered and handed to the journal while the
//! engine lock is held; the journal writer publishes them after the commit,
//! so every subscriber sees them in journal order and never sees an event
//! that could be lost. Publishing never blocks (a subscriber too slow to
//! keep up is disconnected and resynchronizes).
//! **Invariant:** raw customer text is never logged here: logs carry event
//! types and ids only.

mod extensions;
mod frames;
mod hub;
mod lease;
mod outbox;
mod recovery;
mod timers;

pub use frames::{add_conversation_details, agent_frame, agent_name, message_json};
pub use hub::{Hub, Subscription};
pub use lease::Lease;
pub use outbox::Outgoing;
pub use timers::run_timers;

use extensions::{Directory, TimedRouting};
use frames::{command_name, frames, Target};
use outbox::channel_requests;
use recovery::{recovered_engine, report_history};
use timers::Presence;

use crate::clock::Clock;
use crate::config::TenantConfig;
use crate::generation::TenantGeneration;
use crate::metrics::{Metrics, TenantMetrics};
use crate::store::{Recovered, Row, Store, StoreError};
use arc_swap::ArcSwap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use switchboard_core::channel::WEBCHAT;
use switchboard_core::engine::Engine;
use switchboard_core::lua::ScriptError;
use switchboard_core::model::Millis;
use switchboard_core::{Command, CommandError, Event, Extensions, Masker, Output};
use tokio::sync::{mpsc, Notify};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these locks cannot leave the maps in a
    // half-written state (each critical section is a single insert/remove),
    // so a poisoned lock is safe to keep using.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Events between two snapshots of `engine`'s state.
fn snapshot_due(config: &TenantConfig, engine: &Engine) -> u64 {
    config.snapshot_every.max(engine.size() as u64)
}

/// What the engine lock protects.
struct Inner {
    engine: Engine,
    /// Sequence number of the last event journaled.
    last_seq: u64,
    since_snapshot: u64,
    /// Events after which the next snapshot is taken: the state's size
    /// when the last one was (at least `snapshot_every`).
    snapshot_due: u64,
    /// Bumped each time the engine is rebuilt from the journal after a
    /// failed commit: a failure seen by several callers rebuilds once.
    rebuilds: u64,
    /// The engine may hold what the journal does not (a panic under the
    /// lock, and the rebuild after it failed): nothing runs on it until a
    /// rebuild succeeds.
    suspect: bool,
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
    /// Test hook: the next command panics under the engine lock.
    panic_next: std::sync::atomic::AtomicBool,
    /// A snapshot is being encoded and stored: the next waits for it.
    snapshotting: Arc<std::sync::atomic::AtomicBool>,
    /// The tenant's tasks (timers, outbox), stopped when it leaves this node.
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
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
    ) -> Result<Tenant, crate::error::TenantError> {
        use crate::error::TenantError;
        let masker =
            Masker::new(&config.mask_patterns).map_err(|cause| TenantError::MaskPatterns {
                tenant: config.id.clone(),
                cause,
            })?;
        let generation = crate::generation::load(&config, 1, clock.now()).map_err(|problems| {
            TenantError::Scripts {
                tenant: config.id.clone(),
                problems,
            }
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
        let snapshot_due = snapshot_due(&config, &engine);
        Ok(Tenant {
            key: config.id.as_str().into(),
            config,
            inner: Mutex::new(Inner {
                snapshot_due,
                engine,
                last_seq,
                since_snapshot: replayed as u64,
                rebuilds: 0,
                suspect: false,
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
            panic_next: Default::default(),
            snapshotting: Default::default(),
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
        drop(self.engine_lock());
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

    /// Where the tenant's attachments are kept (shared by the nodes of a
    /// cluster, so they follow the tenant).
    pub fn attachments(&self) -> crate::attachments::Storage {
        crate::attachments::Storage::new(&self.store, &self.config.data_dir)
    }

    /// Read the engine's state.
    pub fn read<R>(&self, f: impl FnOnce(&Engine) -> R) -> R {
        f(&self.engine_lock().engine)
    }

    /// Run a command; answer once its events are durably journaled (and
    /// published).
    pub async fn execute(&self, command: Command) -> Result<Output, ExecuteError> {
        let kind = command_name(&command);
        let result = self
            .run(kind, true, |engine, now, ext| {
                let started = std::time::Instant::now();
                let result = engine.handle(command, now, ext);
                self.metrics
                    .command_seconds
                    .observe(started.elapsed().as_secs_f64());
                result
            })
            .await;
        if let Err(ExecuteError::Command(e)) = &result {
            tracing::debug!(tenant = %self.config.id, command = kind, error = %e, "command refused");
        }
        result
    }

    /// The one path every change of the tenant takes, commands and timers
    /// alike. Under the engine lock: the lease, then `step` on the engine
    /// at the clock's `now` with the live generation's extensions (routing
    /// timed and shown to the shadow, so re-offers after a RONA count
    /// too), then its events numbered and handed to the journal with what
    /// to publish and send once committed ([`Tenant::journal_and_publish`]).
    /// Off the lock: wake the timer when the next deadline moved
    /// (`wake_timer`; not when the timer itself runs), then wait for the
    /// commit. A stale epoch fences the tenant here; any other failed
    /// commit rebuilds the engine from the journal ([`Tenant::resync`]).
    async fn run(
        &self,
        what: &'static str,
        wake_timer: bool,
        step: impl FnOnce(&mut Engine, Millis, &Extensions<'_>) -> Result<Output, CommandError>,
    ) -> Result<Output, ExecuteError> {
        let (out, committed, rearm, rebuilds) = {
            let mut inner = self.engine_lock();
            if !self.lease.valid() {
                return Err(ExecuteError::Moved);
            }
            if inner.suspect {
                return Err(ExecuteError::Storage(StoreError::failed(
                    "the engine could not be rebuilt from the journal after a panic",
                )));
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
            let out = step(&mut inner.engine, now, &ext)?;
            if self.panic_next.swap(false, Ordering::SeqCst) {
                panic!("test hook: a command panicked under the engine lock");
            }
            if !out.emitted.is_empty() {
                tracing::debug!(tenant = %self.config.id, command = what, events = out.emitted.len(), "events");
            }
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
        if rearm && wake_timer {
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
                    tracing::warn!(tenant = %self.config.id, epoch = self.epoch, command = what, "append refused: stale epoch; the tenant is fenced here");
                    self.lease.mark_stale();
                    return Err(ExecuteError::Moved);
                }
                tracing::error!(tenant = %self.config.id, command = what, error = %e, "events not journaled");
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
        let mut inner = self.engine_lock();
        if inner.rebuilds != rebuilds {
            return;
        }
        // On failure the journal stays closed to this tenant: the next
        // failed command tries again.
        self.rebuild(&mut inner, "after a failed commit");
        drop(inner);
        self.timer.notify_one();
    }

    /// Replace the engine with the journal's (snapshot + events). False
    /// when the journal could not be read back.
    fn rebuild(&self, inner: &mut Inner, why: &str) -> bool {
        inner.rebuilds += 1;
        let recovered = match self.store.resync(&self.key) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(tenant = %self.config.id, error = %e, "cannot read the journal back {why}");
                return false;
            }
        };
        let masker = inner.engine.masker().clone();
        let last_seq = recovered.last_seq;
        let replayed = recovered.events.len() as u64;
        inner.engine = recovered_engine(&self.config, masker, recovered);
        inner.last_seq = last_seq;
        inner.since_snapshot = replayed;
        inner.snapshot_due = snapshot_due(&self.config, &inner.engine);
        self.hub.console.seed(&inner.engine, last_seq);
        tracing::warn!(tenant = %self.config.id, last_seq, "engine rebuilt from the journal {why}");
        true
    }

    /// The engine lock. Commands never panic on input, but a bug that
    /// panics while the lock is held may leave the engine half changed,
    /// with events the journal does not hold: the next caller rebuilds it
    /// from the journal, as after a failed commit, before anyone reads or
    /// changes it (`tests/effects.rs`
    /// `a_panic_under_the_engine_lock_leaves_nothing_applied`).
    fn engine_lock(&self) -> MutexGuard<'_, Inner> {
        let mut inner = match self.inner.lock() {
            Ok(inner) => inner,
            Err(poisoned) => {
                self.inner.clear_poison();
                let mut inner = poisoned.into_inner();
                inner.suspect = true;
                inner
            }
        };
        if inner.suspect {
            inner.suspect = !self.rebuild(&mut inner, "after a panic under the engine lock");
            if !inner.suspect {
                self.timer.notify_one();
            }
        }
        inner
    }

    /// Make the next command panic under the engine lock, after the engine
    /// changed and before its events are journaled (test hook behind
    /// `test_clock`).
    pub fn panic_next_command(&self) {
        self.panic_next.store(true, Ordering::SeqCst);
    }

    /// Make the journal's next commit fail (test hook behind `test_clock`).
    pub fn fail_next_commit(&self) {
        self.store.fail_next_commit();
    }

    /// Expire due offers, end expired sessions and log out agents who are
    /// gone; returns once the events are journaled.
    pub async fn tick(&self) {
        let result = self
            .run(
                "timers",
                false,
                |engine, now, ext| Ok(engine.tick(now, ext)),
            )
            .await;
        // Fenced or moved: the sessions are the new owner's to sweep. A
        // failed commit was logged and the engine rebuilt on the way.
        if let Err(ExecuteError::Moved) = result {
            return;
        }
        self.sweep_agents().await;
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
        let frames = frames(&inner.engine, self.id(), out, self.clock.now(), |id| {
            self.hub.is_monitored(id)
        });
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
        // Encoding a snapshot costs its size: spaced by at least the state's
        // size in events (as it was at the last snapshot: measuring it
        // walks the conversations), snapshots cost the same per event
        // whatever the number of waiting conversations or the length of
        // their transcripts (a start-up then replays at most about as many
        // events as the snapshot holds), and one at a time, so a slow
        // encoding is never stacked with the next.
        if inner.since_snapshot >= inner.snapshot_due
            && !self.snapshotting.swap(true, Ordering::SeqCst)
        {
            inner.since_snapshot = 0;
            inner.snapshot_due = snapshot_due(&self.config, &inner.engine);
            // A copy under the lock (shared conversations, a few pointers);
            // encoded and stored off it.
            let snapshot = inner.engine.snapshot();
            let stored = self
                .store
                .snapshot(&self.key, self.epoch, inner.last_seq, snapshot);
            let busy = self.snapshotting.clone();
            match tokio::runtime::Handle::try_current() {
                Ok(rt) => {
                    rt.spawn(async move {
                        let _ = stored.await;
                        busy.store(false, Ordering::SeqCst);
                    });
                }
                Err(_) => busy.store(false, Ordering::SeqCst),
            }
        }
        Some(rx)
    }
}
