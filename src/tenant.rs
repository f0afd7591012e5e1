//! A tenant at run time: its engine behind a lock, the fan-out of events to
//! agent sessions and web chat visitors, and its timer.
//!
//! **Invariant:** events are published while the engine lock is held, so
//! every subscriber sees them in journal order; publishing never blocks (a
//! subscriber too slow to keep up is disconnected and resynchronizes).
//! **Invariant:** raw customer text is never logged here: logs carry event
//! types and ids only.

use crate::clock::{rfc3339, Clock};
use crate::config::TenantConfig;
use arc_swap::ArcSwap;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use switchboard_core::channel::{
    ChannelAdapter, Outbound, OutboundContext, OutboundMessage, OutgoingRequest,
};
use switchboard_core::engine::Engine;
use switchboard_core::lua::{Generation, ScriptError};
use switchboard_core::model::Party;
use switchboard_core::{Command, CommandError, Event, Extensions, Masker, Output};
use tokio::sync::{mpsc, Notify};

/// Messages queued for one subscriber before it counts as too slow.
const SUBSCRIBER_BUFFER: usize = 1024;

/// A live connection that receives JSON text frames.
#[derive(Debug)]
struct Subscriber {
    id: u64,
    tx: mpsc::Sender<Arc<str>>,
}

/// Fan-out of JSON frames to the connections of agents and visitors.
#[derive(Debug, Default)]
pub struct Hub {
    next_id: AtomicU64,
    agents: Mutex<HashMap<String, Vec<Subscriber>>>,
    visitors: Mutex<HashMap<String, Vec<Subscriber>>>,
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
    fn join(map: &Mutex<HashMap<String, Vec<Subscriber>>>, key: &str, id: u64) -> Subscription {
        let (tx, rx) = mpsc::channel(SUBSCRIBER_BUFFER);
        lock(map)
            .entry(key.to_string())
            .or_default()
            .push(Subscriber { id, tx });
        Subscription { id, rx }
    }

    fn leave(map: &Mutex<HashMap<String, Vec<Subscriber>>>, key: &str, id: u64) {
        let mut m = lock(map);
        if let Some(subs) = m.get_mut(key) {
            subs.retain(|s| s.id != id);
            if subs.is_empty() {
                m.remove(key);
            }
        }
    }

    fn send(map: &Mutex<HashMap<String, Vec<Subscriber>>>, key: &str, frame: &Arc<str>) {
        let mut m = lock(map);
        if let Some(subs) = m.get_mut(key) {
            // A full buffer means the client stopped reading: cut it off; it
            // reconnects and reloads its state.
            subs.retain(|s| s.tx.try_send(frame.clone()).is_ok());
        }
    }

    pub fn join_agent(&self, agent: &str) -> Subscription {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        Self::join(&self.agents, agent, id)
    }

    pub fn leave_agent(&self, agent: &str, id: u64) {
        Self::leave(&self.agents, agent, id)
    }

    pub fn join_visitor(&self, visitor: &str) -> Subscription {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        Self::join(&self.visitors, visitor, id)
    }

    pub fn leave_visitor(&self, visitor: &str, id: u64) {
        Self::leave(&self.visitors, visitor, id)
    }

    pub fn to_agent(&self, agent: &str, frame: &Arc<str>) {
        Self::send(&self.agents, agent, frame)
    }

    pub fn to_visitor(&self, visitor: &str, frame: &Arc<str>) {
        Self::send(&self.visitors, visitor, frame)
    }

    /// Number of open agent connections.
    pub fn agent_connections(&self) -> usize {
        lock(&self.agents).values().map(Vec::len).sum()
    }
}

/// One tenant.
pub struct Tenant {
    pub config: TenantConfig,
    engine: Mutex<Engine>,
    pub hub: Hub,
    /// Woken whenever the next deadline may have changed.
    pub timer: Notify,
    clock: Arc<Clock>,
    /// The live generation of the tenant's scripts; a reload swaps it.
    generation: ArcSwap<Generation>,
    /// One reload at a time, so generation numbers only grow.
    reloading: Mutex<u64>,
    /// Requests for channels (agent replies), sent by `channels::run_outbox`.
    outbox: mpsc::UnboundedSender<Outgoing>,
    outbox_rx: Mutex<Option<mpsc::UnboundedReceiver<Outgoing>>>,
}

/// An agent's reply on its way out through a channel.
#[derive(Debug)]
pub struct Outgoing {
    pub conversation: u64,
    pub channel: String,
    pub request: OutgoingRequest,
}

impl std::fmt::Debug for Tenant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tenant")
            .field("id", &self.config.id)
            .finish()
    }
}

impl Tenant {
    pub fn new(config: TenantConfig, clock: Arc<Clock>) -> anyhow::Result<Tenant> {
        let masker = Masker::new(&config.mask_patterns)?;
        let generation = crate::scripts::load(&config, 1, clock.now()).map_err(|errors| {
            let list: Vec<String> = errors
                .iter()
                .map(|e| format!("{}: {e}", config.id))
                .collect();
            anyhow::anyhow!("invalid scripts:\n{}", list.join("\n"))
        })?;
        let (outbox, outbox_rx) = mpsc::unbounded_channel();
        let engine = Engine::new(
            config.settings(),
            masker,
            config.queue_configs(),
            config.agent_configs(),
        );
        Ok(Tenant {
            config,
            engine: Mutex::new(engine),
            hub: Hub::default(),
            timer: Notify::new(),
            clock,
            generation: ArcSwap::from_pointee(generation),
            reloading: Mutex::new(1),
            outbox,
            outbox_rx: Mutex::new(Some(outbox_rx)),
        })
    }

    pub fn id(&self) -> &str {
        &self.config.id
    }

    pub fn now(&self) -> u64 {
        self.clock.now()
    }

    /// The wrap-up reasons offered after a conversation of `queue`.
    pub fn wrapup_reasons(&self, queue: &str) -> Arc<[switchboard_core::model::WrapUpReason]> {
        use switchboard_core::wrapup::WrapUpReasons;
        self.generation.load().reasons(queue)
    }

    /// The live generation of the scripts (calls in flight keep theirs).
    pub fn generation(&self) -> Arc<Generation> {
        let g = self.generation.load_full();
        g.set_now(self.clock.now());
        g
    }

    /// Build a new generation from the script files and swap it in; on any
    /// error the live one keeps serving. CPU work: call it off the async
    /// worker threads.
    pub fn reload(&self) -> Result<u64, Vec<ScriptError>> {
        let mut last = lock(&self.reloading);
        let number = *last + 1;
        let g = crate::scripts::load(&self.config, number, self.clock.now())?;
        self.generation.store(Arc::new(g));
        *last = number;
        tracing::info!(tenant = %self.config.id, generation = number, "scripts reloaded");
        Ok(number)
    }

    /// The receiver of outgoing channel requests (taken once, by the sender task).
    pub fn take_outbox(&self) -> Option<mpsc::UnboundedReceiver<Outgoing>> {
        lock(&self.outbox_rx).take()
    }

    /// Refuse an agent message its channel cannot deliver (e.g. Messenger
    /// past Meta's 7-day window), before anything is stored.
    pub fn check_deliverable(
        &self,
        conversation: u64,
        author: &str,
        text: &str,
    ) -> Result<(), CommandError> {
        let gen = self.generation();
        let (channel, msg, ctx) = {
            let engine = lock(&self.engine);
            let Some(c) = engine.conversation(conversation) else {
                return Ok(());
            };
            if !gen.has_channel(&c.channel) {
                return Ok(());
            }
            (
                c.channel.clone(),
                outbound_message(c, author, text),
                outbound_context(c, self.clock.now()),
            )
        };
        match gen.channel(&channel).map(|a| a.outbound(&msg, &ctx)) {
            Some(Ok(Outbound::Refuse(reason))) => Err(CommandError::Conflict(reason)),
            _ => Ok(()),
        }
    }

    /// Tell the agents of a conversation that a reply did not reach the customer.
    pub fn delivery_failed(&self, conversation: u64, channel: &str, reason: &str) {
        let agents = self.read(|e| {
            e.conversation(conversation)
                .map(|c| c.participants())
                .unwrap_or_default()
        });
        let frame: Arc<str> = json!({
            "type": "delivery_failed",
            "conversation": conversation,
            "channel": channel,
            "reason": reason,
            "at": rfc3339(self.clock.now()),
        })
        .to_string()
        .into();
        for a in agents {
            self.hub.to_agent(&a, &frame);
        }
    }

    /// Turn masking on or off for what comes in from now on.
    pub fn set_masking(&self, on: bool) {
        lock(&self.engine).set_masking(on);
    }

    /// Read the engine's state.
    pub fn read<R>(&self, f: impl FnOnce(&Engine) -> R) -> R {
        f(&lock(&self.engine))
    }

    /// Run a command, publish what it produced, and return it.
    pub fn execute(&self, command: Command) -> Result<Output, CommandError> {
        let kind = command_name(&command);
        let mut engine = lock(&self.engine);
        let now = self.clock.now();
        let gen = self.generation.load_full();
        gen.set_now(now);
        let ext = Extensions {
            routing: &*gen,
            wrapup: &*gen,
        };
        let result = engine.handle(command, now, &ext);
        match &result {
            Ok(out) => {
                tracing::debug!(tenant = %self.config.id, command = kind, events = out.emitted.len(), "command");
                self.publish(&engine, out, &gen);
            }
            Err(e) => {
                tracing::debug!(tenant = %self.config.id, command = kind, error = %e, "command refused")
            }
        }
        drop(engine);
        self.timer.notify_one();
        result
    }

    /// Expire due offers.
    pub fn tick(&self) {
        let mut engine = lock(&self.engine);
        let now = self.clock.now();
        let gen = self.generation.load_full();
        gen.set_now(now);
        let ext = Extensions {
            routing: &*gen,
            wrapup: &*gen,
        };
        let out = engine.tick(now, &ext);
        if !out.emitted.is_empty() {
            tracing::debug!(tenant = %self.config.id, events = out.emitted.len(), "timers");
            self.publish(&engine, &out, &gen);
        }
    }

    fn publish(&self, engine: &Engine, out: &Output, gen: &Generation) {
        for emitted in &out.emitted {
            let ev = &emitted.event;
            if !emitted.audience.agents.is_empty() {
                let frame: Arc<str> = agent_frame(engine, ev).to_string().into();
                for agent in &emitted.audience.agents {
                    self.hub.to_agent(agent, &frame);
                }
            }
            if let Some(frame) = visitor_frame(engine, ev, emitted.audience.customer) {
                if let Some(c) = ev.conversation().and_then(|id| engine.conversation(id)) {
                    if c.channel == "webchat" {
                        self.hub.to_visitor(&c.customer, &frame.to_string().into());
                    }
                }
            }
        }
        for d in &out.deliveries {
            if d.channel == "webchat" {
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
                    "at": rfc3339(self.clock.now()),
                });
                self.hub.to_visitor(&d.customer, &frame.to_string().into());
            } else if let Some(adapter) = gen.channel(&d.channel) {
                let Some(c) = engine.conversation(d.conversation) else {
                    continue;
                };
                let msg = outbound_message(c, &d.author, &d.text);
                let ctx = outbound_context(c, self.clock.now());
                let failure = match adapter.outbound(&msg, &ctx) {
                    Ok(Outbound::Send(request)) => {
                        let job = Outgoing {
                            conversation: d.conversation,
                            channel: d.channel.clone(),
                            request,
                        };
                        match self.outbox.send(job) {
                            Ok(()) => None,
                            Err(_) => Some("the channel sender is not running".to_string()),
                        }
                    }
                    Ok(Outbound::Refuse(reason)) => Some(reason),
                    Err(e) => Some(e.to_string()),
                };
                if let Some(reason) = failure {
                    tracing::warn!(tenant = %self.config.id, conversation = d.conversation, channel = %d.channel, "reply not sent");
                    let frame: Arc<str> = json!({
                        "type": "delivery_failed",
                        "conversation": d.conversation,
                        "channel": d.channel,
                        "reason": reason,
                        "at": rfc3339(self.clock.now()),
                    })
                    .to_string()
                    .into();
                    for a in c.participants() {
                        self.hub.to_agent(&a, &frame);
                    }
                }
            }
        }
    }
}

fn outbound_message(
    c: &switchboard_core::engine::Conversation,
    author: &str,
    text: &str,
) -> OutboundMessage {
    OutboundMessage {
        conversation: c.id,
        customer: c.customer.clone(),
        author: author.to_string(),
        text: text.to_string(),
    }
}

/// When the customer last wrote: the start of the channel's reply windows.
fn outbound_context(c: &switchboard_core::engine::Conversation, now: u64) -> OutboundContext {
    OutboundContext {
        now,
        last_customer_message_at: c
            .messages
            .iter()
            .rev()
            .find(|m| m.from == Party::Customer)
            .map(|m| m.at),
    }
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
            _ => {}
        }
    }
    v
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
    map.insert("guest".into(), json!(c.guest));
    map.insert(
        "messages".into(),
        Value::Array(c.messages.iter().map(message_json).collect()),
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
    json!({ "from": from, "author": m.author, "text": m.text, "at": rfc3339(m.at) })
}

/// What a web chat visitor is told of an event (agent messages go as
/// deliveries, with the agent's raw text).
fn visitor_frame(engine: &Engine, ev: &Event, to_customer: bool) -> Option<Value> {
    let name = |agent: &str| {
        engine
            .agent(agent)
            .map(|a| a.config.name.clone())
            .unwrap_or_else(|| agent.to_string())
    };
    match ev {
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
            json!({"type": "notice", "conversation": conversation, "text": "This conversation was interrupted. Please write again to start a new one."}),
        ),
        _ => None,
    }
}

/// Drive the tenant's timers until the process ends.
pub async fn run_timers(tenant: Arc<Tenant>) {
    loop {
        let next = tenant.read(|e| e.next_deadline());
        let now = tenant.now();
        let wait = match next {
            Some(d) => d.saturating_sub(now),
            None => 60_000,
        };
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_millis(wait)) => {}
            _ = tenant.timer.notified() => {}
        }
        tenant.tick();
    }
}
