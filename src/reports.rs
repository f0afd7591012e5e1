//! Reports from the journal: per queue and per agent figures for a period,
//! kept up to date as events are committed (the tenant's console feed
//! records each batch), so a request aggregates compact facts in time
//! order instead of replaying the journal.
//!
//! Attribution: a conversation is *offered* to a queue each time it joins
//! it (`queued`); the wait runs until an agent accepts it. *Handle time*
//! runs from the acceptance to the end (or the transfer) of the
//! conversation by that agent. A *RONA* is an offer withdrawn on timeout.
//! *Abandoned* counts conversations whose customer left while waiting
//! (dropped with the reason `customer_left`); *dropped* the other
//! conversations closed without an agent (by a supervisor, a deleted
//! queue, a transfer nobody accepted).

use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use switchboard_core::engine::CUSTOMER_LEFT;
use switchboard_core::model::{ConversationId, Millis};
use switchboard_core::Event;

/// One thing that happened, for the figures.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Fact {
    Offered {
        queue: String,
    },
    Accepted {
        queue: String,
        wait_ms: Millis,
    },
    Dropped {
        queue: String,
    },
    Abandoned {
        queue: String,
    },
    Rona {
        queue: String,
        agent: String,
    },
    Transferred {
        queue: String,
    },
    Handled {
        queue: String,
        agent: String,
        handle_ms: Millis,
    },
    Wrapup {
        queue: String,
        reason: String,
    },
}

/// Where a conversation stands, for attributing its next facts.
#[derive(Debug, Clone, Default)]
struct Open {
    queue: String,
    queued_at: Option<Millis>,
    /// Agent handling it and since when.
    handling: Option<(String, Millis)>,
}

/// The facts of one tenant, in time order, plus each agent's state changes.
#[derive(Debug, Default)]
pub struct Reports {
    facts: Vec<(Millis, Fact)>,
    open: HashMap<ConversationId, Open>,
    /// Each agent's state changes `(at, state)`, in time order.
    states: BTreeMap<String, Vec<(Millis, String)>>,
    /// The latest event time recorded (facts are dated no earlier).
    last_at: Millis,
    /// Now, as far as the figures know (commits and report requests): the
    /// end of the time counted in each agent's current state.
    now: Millis,
}

/// Figures of one queue for a period.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct QueueFigures {
    pub queue: String,
    pub offered: u64,
    pub accepted: u64,
    pub dropped: u64,
    /// Customers who left while waiting (not in `dropped`).
    pub abandoned: u64,
    pub rona: u64,
    pub transferred: u64,
    pub wait_avg_ms: u64,
    pub wait_p90_ms: u64,
    pub handle_avg_ms: u64,
    pub wrapup_reasons: BTreeMap<String, u64>,
    /// Each hour of the period with something offered or accepted, in
    /// order (for the volume and wait charts).
    pub hours: Vec<HourFigures>,
}

/// One hour of a queue's period.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct HourFigures {
    /// The hour's start (ms since the Unix epoch, UTC).
    pub start: Millis,
    pub offered: u64,
    pub accepted: u64,
    /// Average wait of the conversations accepted in that hour.
    pub wait_avg_ms: u64,
}

const HOUR_MS: Millis = 3_600_000;

/// `(offered, accepted, total wait)` per hour start.
type Hours = BTreeMap<Millis, (u64, u64, u64)>;

/// Figures of one agent for a period.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct AgentFigures {
    pub agent: String,
    pub handled: u64,
    pub handle_ms: u64,
    pub rona: u64,
    /// Milliseconds spent in each state (`available`, `idle`, `rona`,
    /// `logged_out`) within the period.
    pub states_ms: BTreeMap<String, u64>,
}

impl Reports {
    /// Record committed events; `now` is the time of the commit (for the
    /// events that carry no time of their own).
    pub fn record(&mut self, events: &[Event], now: Millis) {
        for ev in events {
            self.record_one(ev, now);
        }
    }

    fn push(&mut self, at: Millis, fact: Fact) {
        self.facts.push((at, fact));
    }

    fn record_one(&mut self, ev: &Event, now: Millis) {
        // Facts stay in time order: an event dated earlier than the last
        // (a conversation put back in its queue keeps its first queueing
        // time) counts at the latest time seen. Only the events' own times
        // move that on (one without, an offer withdrawn, counts at the
        // latest), so the figures read back from the journal at start are
        // the ones recorded live, whenever each batch was committed.
        let at = ev.at().map_or(self.last_at, |a| a.max(self.last_at));
        self.last_at = at;
        self.now = self.now.max(now).max(at);
        match ev {
            Event::Queued {
                conversation,
                queue,
                ..
            } => {
                let o = self.open.entry(*conversation).or_default();
                if o.queued_at.is_some() && o.queue == *queue {
                    // Back in its queue after an offer (RONA): still the
                    // same wait.
                    return;
                }
                o.queue = queue.clone();
                o.queued_at = Some(at);
                self.push(
                    at,
                    Fact::Offered {
                        queue: queue.clone(),
                    },
                );
            }
            Event::ConversationStarted {
                conversation,
                agent,
                queue,
                ..
            } => {
                let o = self.open.entry(*conversation).or_default();
                if o.queue.is_empty() {
                    o.queue = queue.clone();
                }
                let queue = o.queue.clone();
                let wait_ms = o.queued_at.take().map(|q| at.saturating_sub(q));
                o.handling = Some((agent.clone(), at));
                if let Some(wait_ms) = wait_ms {
                    self.push(at, Fact::Accepted { queue, wait_ms });
                }
            }
            Event::OfferRescinded {
                conversation,
                agent,
                reason,
            } if reason == "timeout" => {
                let queue = self.queue_of(*conversation);
                self.push(
                    at,
                    Fact::Rona {
                        queue,
                        agent: agent.clone(),
                    },
                );
            }
            Event::Transferred { conversation, .. } => {
                let queue = self.queue_of(*conversation);
                self.end_handling(*conversation, at);
                self.push(at, Fact::Transferred { queue });
            }
            Event::ConversationEnded { conversation, .. }
            | Event::ConferenceEnded { conversation, .. } => {
                self.end_handling(*conversation, at);
            }
            Event::ConversationDropped {
                conversation,
                reason,
                ..
            } => {
                let queue = self.queue_of(*conversation);
                if let Some(o) = self.open.get_mut(conversation) {
                    o.queued_at = None;
                }
                if reason == CUSTOMER_LEFT {
                    self.push(at, Fact::Abandoned { queue });
                } else {
                    self.push(at, Fact::Dropped { queue });
                }
            }
            Event::WrapupSubmitted {
                conversation,
                reason,
                ..
            } => {
                let queue = self.queue_of(*conversation);
                self.push(
                    at,
                    Fact::Wrapup {
                        queue,
                        reason: reason.clone(),
                    },
                );
            }
            Event::ConversationArchived { conversation, .. } => {
                self.open.remove(conversation);
            }
            Event::AgentState { agent, state, .. } => {
                self.states
                    .entry(agent.clone())
                    .or_default()
                    .push((at, state.as_str().to_string()));
            }
            _ => {}
        }
    }

    fn queue_of(&self, conversation: ConversationId) -> String {
        self.open
            .get(&conversation)
            .map(|o| o.queue.clone())
            .unwrap_or_default()
    }

    fn end_handling(&mut self, conversation: ConversationId, at: Millis) {
        let Some(o) = self.open.get_mut(&conversation) else {
            return;
        };
        if let Some((agent, since)) = o.handling.take() {
            let queue = o.queue.clone();
            self.push(
                at,
                Fact::Handled {
                    queue,
                    agent,
                    handle_ms: at.saturating_sub(since),
                },
            );
        }
    }

    /// The facts within `[from, to)`.
    fn window(&self, from: Millis, to: Millis) -> &[(Millis, Fact)] {
        // Facts are recorded in commit order; times only grow with it.
        let start = self.facts.partition_point(|(at, _)| *at < from);
        let end = self.facts.partition_point(|(at, _)| *at < to);
        self.facts.get(start..end.max(start)).unwrap_or(&[])
    }

    /// Figures per queue for `[from, to)`, for the queues given (in that
    /// order) and any other queue that has facts.
    pub fn queues(&self, from: Millis, to: Millis, queues: &[String]) -> Vec<QueueFigures> {
        let mut by: BTreeMap<String, (QueueFigures, Vec<Millis>, Vec<Millis>, Hours)> =
            BTreeMap::new();
        for q in queues {
            by.entry(q.clone()).or_default();
        }
        for (at, fact) in self.window(from, to) {
            let queue = match fact {
                Fact::Offered { queue }
                | Fact::Accepted { queue, .. }
                | Fact::Dropped { queue }
                | Fact::Abandoned { queue }
                | Fact::Rona { queue, .. }
                | Fact::Transferred { queue }
                | Fact::Handled { queue, .. }
                | Fact::Wrapup { queue, .. } => queue,
            };
            let (f, waits, handles, hours) = by.entry(queue.clone()).or_default();
            let hour = at - at % HOUR_MS;
            match fact {
                Fact::Offered { .. } => {
                    f.offered += 1;
                    hours.entry(hour).or_default().0 += 1;
                }
                Fact::Accepted { wait_ms, .. } => {
                    f.accepted += 1;
                    waits.push(*wait_ms);
                    let h = hours.entry(hour).or_default();
                    h.1 += 1;
                    h.2 += wait_ms;
                }
                Fact::Dropped { .. } => f.dropped += 1,
                Fact::Abandoned { .. } => f.abandoned += 1,
                Fact::Rona { .. } => f.rona += 1,
                Fact::Transferred { .. } => f.transferred += 1,
                Fact::Handled { handle_ms, .. } => handles.push(*handle_ms),
                Fact::Wrapup { reason, .. } => {
                    *f.wrapup_reasons.entry(reason.clone()).or_default() += 1
                }
            }
        }
        let order = |q: &String| queues.iter().position(|x| x == q).unwrap_or(usize::MAX);
        let mut out: Vec<QueueFigures> = by
            .into_iter()
            .map(|(queue, (mut f, mut waits, handles, hours))| {
                f.queue = queue;
                f.hours = hours
                    .into_iter()
                    .map(|(start, (offered, accepted, wait))| HourFigures {
                        start,
                        offered,
                        accepted,
                        wait_avg_ms: wait.checked_div(accepted).unwrap_or(0),
                    })
                    .collect();
                f.wait_avg_ms = average(&waits);
                f.wait_p90_ms = p90(&mut waits);
                f.handle_avg_ms = average(&handles);
                f
            })
            .collect();
        out.sort_by_key(|f| order(&f.queue));
        out
    }

    /// Figures per agent for `[from, to)`; `until` bounds the time counted
    /// in the current state (now).
    pub fn agents(&self, from: Millis, to: Millis, agents: &[String]) -> Vec<AgentFigures> {
        let mut by: BTreeMap<String, AgentFigures> = BTreeMap::new();
        for a in agents {
            by.entry(a.clone()).or_default();
        }
        for (_, fact) in self.window(from, to) {
            match fact {
                Fact::Handled {
                    agent, handle_ms, ..
                } => {
                    let f = by.entry(agent.clone()).or_default();
                    f.handled += 1;
                    f.handle_ms += handle_ms;
                }
                Fact::Rona { agent, .. } => by.entry(agent.clone()).or_default().rona += 1,
                _ => {}
            }
        }
        let end = to.min(self.now.max(self.last_at).max(from));
        for (agent, changes) in &self.states {
            let f = by.entry(agent.clone()).or_default();
            for (i, (at, state)) in changes.iter().enumerate() {
                let next = changes.get(i + 1).map_or(end, |(n, _)| *n);
                let (s, e) = ((*at).max(from), next.min(end));
                if e > s {
                    *f.states_ms.entry(state.clone()).or_default() += e - s;
                }
            }
        }
        let order = |a: &String| agents.iter().position(|x| x == a).unwrap_or(usize::MAX);
        let mut out: Vec<AgentFigures> = by
            .into_iter()
            .map(|(agent, mut f)| {
                f.agent = agent;
                f
            })
            .collect();
        out.sort_by_key(|f| order(&f.agent));
        out
    }

    /// Note that time has passed with nothing recorded (the end of the
    /// period counted for the agents' current states).
    pub fn advance(&mut self, now: Millis) {
        self.now = self.now.max(now);
    }

    /// Number of facts kept (for the benchmark and tests).
    pub fn len(&self) -> usize {
        self.facts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.facts.is_empty()
    }
}

fn average(v: &[Millis]) -> Millis {
    if v.is_empty() {
        0
    } else {
        v.iter().sum::<Millis>() / v.len() as u64
    }
}

/// The 90th percentile (nearest rank).
fn p90(v: &mut [Millis]) -> Millis {
    if v.is_empty() {
        return 0;
    }
    v.sort_unstable();
    let rank = (v.len() * 9).div_ceil(10);
    v.get(rank.saturating_sub(1)).copied().unwrap_or(0)
}

/// CSV of queue figures, header row first. Columns only ever get added
/// at the end (`abandoned` came after `wrapup_reasons`), so a reader by
/// position keeps working.
pub fn queues_csv(rows: &[QueueFigures]) -> String {
    let mut s = String::from("queue,offered,accepted,dropped,rona,transferred,wait_avg_ms,wait_p90_ms,handle_avg_ms,wrapup_reasons,abandoned\n");
    for r in rows {
        let reasons: Vec<String> = r
            .wrapup_reasons
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        s.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{},{}\n",
            csv_field(&r.queue),
            r.offered,
            r.accepted,
            r.dropped,
            r.rona,
            r.transferred,
            r.wait_avg_ms,
            r.wait_p90_ms,
            r.handle_avg_ms,
            csv_field(&reasons.join(";")),
            r.abandoned
        ));
    }
    s
}

/// CSV of agent figures, header row first.
pub fn agents_csv(rows: &[AgentFigures]) -> String {
    let mut s = String::from(
        "agent,handled,handle_ms,rona,available_ms,idle_ms,rona_state_ms,logged_out_ms\n",
    );
    for r in rows {
        let st = |k: &str| r.states_ms.get(k).copied().unwrap_or(0);
        s.push_str(&format!(
            "{},{},{},{},{},{},{},{}\n",
            csv_field(&r.agent),
            r.handled,
            r.handle_ms,
            r.rona,
            st("available"),
            st("idle"),
            st("rona"),
            st("logged_out")
        ));
    }
    s
}

/// A CSV field, quoted when needed; a leading `=`, `+`, `-` or `@` is
/// prefixed with `'` so a spreadsheet does not run it as a formula.
fn csv_field(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@']) {
        format!("'{s}")
    } else {
        s.to_string()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}
