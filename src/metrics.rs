//! Prometheus metrics, served as text at `/metrics`.
//!
//! Counted where events are journaled (messages, offers, RONA), timed around
//! the engine call (commands, including routing) and the journal commit;
//! gauges (queue depth, open agent sockets) are read from state at scrape
//! time. **Invariant:** labels are tenant, channel, queue, direction, never
//! customer data.

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use switchboard_core::engine::Engine;
use switchboard_core::model::Party;
use switchboard_core::{Event, Output};

/// `inbound` (customer → agents) or `outbound` (agent → customer).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)] // label values are lower case on the wire
pub enum Direction {
    inbound,
    outbound,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MessageLabels {
    pub tenant: String,
    pub channel: String,
    pub direction: Direction,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TenantLabels {
    pub tenant: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ChannelLabels {
    pub tenant: String,
    pub channel: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub tenant: String,
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ActionLabels {
    pub tenant: String,
    pub action: String,
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QueueLabels {
    pub tenant: String,
    pub queue: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ScriptLabels {
    pub tenant: String,
    pub script: String,
}

fn latency() -> Histogram {
    // 5 µs to ~40 s.
    Histogram::new(exponential_buckets(0.000_005, 2.0, 24))
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// Every metric of the server.
pub struct Metrics {
    registry: Registry,
    pub messages: Family<MessageLabels, Counter>,
    pub offers: Family<TenantLabels, Counter>,
    pub rona: Family<TenantLabels, Counter>,
    pub command_seconds: Histograms<TenantLabels>,
    pub routing_seconds: Histograms<TenantLabels>,
    pub script_calls: Family<ScriptLabels, Gauge>,
    pub script_errors: Family<ScriptLabels, Gauge>,
    pub commit_seconds: Histogram,
    pub queue_depth: Family<QueueLabels, Gauge>,
    pub agent_sockets: Family<TenantLabels, Gauge>,
    /// Reads of the engine made for the supervisors' console (read from
    /// its feed at scrape time).
    pub console_engine_reads: Family<TenantLabels, Gauge>,
    /// Webhook events skipped because their shape is wrong.
    pub skipped_events: Family<ChannelLabels, Counter>,
    /// Messenger User Profile lookups that gave no name, by reason.
    pub profile_failures: Family<ReasonLabels, Counter>,
    /// Messenger sender actions (`mark_seen`, `typing_on`) that failed.
    pub sender_action_failures: Family<ActionLabels, Counter>,
    /// Tenants this node took (acquired and recovered).
    pub takeovers: Family<TenantLabels, Counter>,
    /// Tenants this node stopped serving because its lease ran out, was
    /// taken over, or the journal answered a stale epoch.
    pub leases_lost: Family<TenantLabels, Counter>,
    /// Requests and WebSockets forwarded to the node owning their tenant.
    pub forwarded: Counter,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("switchboard");
        let m = Metrics {
            messages: Family::default(),
            offers: Family::default(),
            rona: Family::default(),
            command_seconds: Family::new_with_constructor(latency),
            routing_seconds: Family::new_with_constructor(latency),
            script_calls: Family::default(),
            script_errors: Family::default(),
            commit_seconds: latency(),
            queue_depth: Family::default(),
            agent_sockets: Family::default(),
            console_engine_reads: Family::default(),
            skipped_events: Family::default(),
            profile_failures: Family::default(),
            sender_action_failures: Family::default(),
            takeovers: Family::default(),
            leases_lost: Family::default(),
            forwarded: Counter::default(),
            registry: Registry::default(),
        };
        registry.register(
            "messages",
            "Messages, by channel and direction",
            m.messages.clone(),
        );
        registry.register("offers", "Offers made to agents", m.offers.clone());
        registry.register(
            "rona",
            "Offers not accepted in time (agent put in RONA)",
            m.rona.clone(),
        );
        registry.register(
            "command_seconds",
            "Time to run one command in the engine, routing included",
            m.command_seconds.clone(),
        );
        registry.register(
            "routing_seconds",
            "Time of one routing decision by the tenant's policy",
            m.routing_seconds.clone(),
        );
        registry.register(
            "script_calls",
            "Calls into each script since its generation was loaded",
            m.script_calls.clone(),
        );
        registry.register(
            "script_errors",
            "Script calls that failed and fell back to the built-in behaviour, since the generation was loaded",
            m.script_errors.clone(),
        );
        registry.register(
            "journal_commit_seconds",
            "Time from handing events to the journal to their commit",
            m.commit_seconds.clone(),
        );
        registry.register(
            "queue_depth",
            "Conversations waiting in each queue",
            m.queue_depth.clone(),
        );
        registry.register(
            "agent_sockets",
            "Open agent WebSocket connections",
            m.agent_sockets.clone(),
        );
        registry.register(
            "console_engine_reads",
            "Reads of the engine made for the supervisors' console (only when the tenant starts or resyncs: frames come from its own projection)",
            m.console_engine_reads.clone(),
        );
        registry.register(
            "channel_events_skipped",
            "Webhook events skipped (not stored) because their shape is wrong, by channel",
            m.skipped_events.clone(),
        );
        registry.register(
            "profile_lookup_failures",
            "Messenger User Profile lookups that gave no name (the customer stays \"Customer\"), by reason",
            m.profile_failures.clone(),
        );
        registry.register(
            "sender_action_failures",
            "Messenger sender actions (mark_seen, typing_on) that failed, by action and reason (best-effort: nothing else shows them)",
            m.sender_action_failures.clone(),
        );
        registry.register(
            "cluster_takeovers",
            "Tenants this node took over (lease acquired, state recovered), by tenant",
            m.takeovers.clone(),
        );
        registry.register(
            "cluster_leases_lost",
            "Tenants this node stopped serving because its lease ran out or another node took them, by tenant",
            m.leases_lost.clone(),
        );
        registry.register(
            "forwarded_requests",
            "Requests and WebSockets forwarded to the node that owns their tenant",
            m.forwarded.clone(),
        );
        Metrics { registry, ..m }
    }
}

impl Metrics {
    /// The text exposition.
    pub fn render(&self) -> String {
        let mut buf = String::new();
        if encode(&mut buf, &self.registry).is_err() {
            buf.clear();
        }
        buf
    }
}

/// One tenant's handles on the metrics, resolved once at start so the
/// per-message path neither allocates label sets nor looks them up.
#[derive(Debug)]
pub struct TenantMetrics {
    tenant: String,
    family: std::sync::Arc<Metrics>,
    pub command_seconds: Histogram,
    pub routing_seconds: Histogram,
    offers: Counter,
    rona: Counter,
    /// Message counters by (channel, inbound?) for the configured channels.
    messages: Vec<(String, bool, Counter)>,
}

impl TenantMetrics {
    pub fn new(family: std::sync::Arc<Metrics>, tenant: &str, channels: &[&str]) -> Self {
        let t = tenant_labels(tenant);
        let counter = |channel: &str, inbound: bool| {
            family
                .messages
                .get_or_create(&MessageLabels {
                    tenant: tenant.to_string(),
                    channel: channel.to_string(),
                    direction: if inbound {
                        Direction::inbound
                    } else {
                        Direction::outbound
                    },
                })
                .clone()
        };
        let messages = channels
            .iter()
            .flat_map(|c| {
                [
                    (c.to_string(), true, counter(c, true)),
                    (c.to_string(), false, counter(c, false)),
                ]
            })
            .collect();
        let command_seconds = family.command_seconds.get_or_create(&t).clone();
        let routing_seconds = family.routing_seconds.get_or_create(&t).clone();
        let offers = family.offers.get_or_create(&t).clone();
        let rona = family.rona.get_or_create(&t).clone();
        TenantMetrics {
            tenant: tenant.to_string(),
            command_seconds,
            routing_seconds,
            offers,
            rona,
            messages,
            family,
        }
    }

    /// The registry these handles belong to.
    pub fn family(&self) -> &std::sync::Arc<Metrics> {
        &self.family
    }

    fn message(&self, channel: &str, inbound: bool) {
        match self
            .messages
            .iter()
            .find(|(c, i, _)| c == channel && *i == inbound)
        {
            Some((_, _, counter)) => {
                counter.inc();
            }
            // A channel not known at start: the slow path.
            None => {
                self.family
                    .messages
                    .get_or_create(&MessageLabels {
                        tenant: self.tenant.clone(),
                        channel: channel.to_string(),
                        direction: if inbound {
                            Direction::inbound
                        } else {
                            Direction::outbound
                        },
                    })
                    .inc();
            }
        }
    }

    /// Count what an engine output did.
    pub fn record(&self, engine: &Engine, out: &Output) {
        for e in out.events() {
            match e {
                Event::Message {
                    from, conversation, ..
                } => {
                    let inbound = match from {
                        Party::Customer => true,
                        Party::Agent => false,
                        Party::System => continue,
                    };
                    if let Some(c) = engine.conversation(*conversation) {
                        self.message(&c.channel, inbound);
                    }
                }
                Event::Offer { .. } => {
                    self.offers.inc();
                }
                Event::AgentState { state, .. }
                    if *state == switchboard_core::model::StateName::Rona =>
                {
                    self.rona.inc();
                }
                _ => {}
            }
        }
    }
}

pub fn tenant_labels(tenant: &str) -> TenantLabels {
    TenantLabels {
        tenant: tenant.to_string(),
    }
}
