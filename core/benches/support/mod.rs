//! What the routing benches share (`lua_routing`, `plugin_vs_lua`): the
//! bundled scripts, 500 agents, a run of decisions in which one agent's
//! load changes per call, call-by-call percentiles and criterion's
//! filters.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use switchboard_core::lua::{Limits, ScriptFiles, ScriptSpec};
use switchboard_core::masking::Masker;
use switchboard_core::model::Cad;
use switchboard_core::routing::{Candidate, ConversationView, RoutingPolicy};

pub const AGENTS: usize = 500;
pub const TIMED_CALLS: usize = 20_000;
pub const WARM_UP_CALLS: usize = 2_000;

/// The bundled scripts with `routing` as the policy.
pub fn spec(routing: &str) -> ScriptSpec {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts");
    ScriptSpec {
        tenant: "bench".into(),
        files: ScriptFiles::read_dir(&dir).unwrap_or_default(),
        routing: Some(routing.into()),
        wrapup: None,
        wrapup_queues: BTreeMap::new(),
        responses: None,
        channels: BTreeMap::new(),
        queues: vec!["support".into(), "billing".into()],
        masker: Masker::default(),
        limits: Limits::default(),
    }
}

/// The agents of every decision: ids, names and skills live as long as
/// the bench, as agent configs live as long as the engine.
pub struct Agents {
    ids: Vec<String>,
    skills: Vec<Vec<String>>,
}

impl Agents {
    pub fn new() -> Agents {
        Agents {
            ids: (0..AGENTS).map(|i| format!("agent{i:03}")).collect(),
            skills: (0..AGENTS)
                .map(|i| match i % 3 {
                    0 => vec!["en".into(), "fr".into()],
                    1 => vec!["en".into()],
                    _ => vec!["en".into(), "billing".into()],
                })
                .collect(),
        }
    }
}

/// A run of decisions: decision `n` has agent `n % 500` at load 1 and the
/// others at 0. The candidates are built once and only those two loads
/// are written between calls, so what is timed is the decision rather
/// than the building of 500 candidates.
pub struct Dispatch<'a> {
    cands: Vec<Candidate<'a>>,
    cad: Cad,
    n: u64,
}

impl<'a> Dispatch<'a> {
    pub fn new(agents: &'a Agents) -> Dispatch<'a> {
        let cands = agents
            .ids
            .iter()
            .zip(&agents.skills)
            .enumerate()
            .map(|(i, (id, sk))| Candidate {
                id,
                name: id,
                load: u32::from(i == 0),
                capacity: 5,
                idle_since: 10_000 + ((i as u64 * 7919) % 500),
                skills: sk,
                stamp: 0,
            })
            .collect();
        let mut cad = Cad::new();
        cad.insert("language".into(), "fr".into());
        cad.insert("contact_origin".into(), "webchat".into());
        Dispatch { cands, cad, n: 0 }
    }

    /// On to the next conversation: the agent that had one last time is
    /// free again, and another one has one.
    pub fn next(&mut self) {
        let len = self.cands.len() as u64;
        self.cands[(self.n % len) as usize].load = 0;
        self.n += 1;
        self.cands[(self.n % len) as usize].load = 1;
    }

    /// The current conversation, routed by `policy`.
    pub fn route<R>(&self, route: impl FnOnce(&ConversationView<'_>, &[Candidate<'a>]) -> R) -> R {
        let view = ConversationView {
            id: self.n,
            queue: "support",
            channel: "webchat",
            customer: "v1",
            customer_name: "Jeanne",
            source: "Web chat",
            preview: "Bonjour, ma facture est fausse",
            cad: &self.cad,
            received_at: 1,
            queued_at: 1,
            last_agent: None,
        };
        route(&view, &self.cands)
    }

    /// The next decision by `policy`.
    pub fn decide(
        &mut self,
        policy: &dyn RoutingPolicy,
    ) -> switchboard_core::routing::RouteDecision {
        self.next();
        self.route(|v, c| policy.route(v, c))
    }
}

/// Median, 99th percentile and longest of single decisions by `policy`
/// (each timed alone, `Instant` around the call only, after a warm-up):
/// criterion reports means of batches, never a tail.
pub fn percentiles(policy: &dyn RoutingPolicy, d: &mut Dispatch<'_>) -> [Duration; 3] {
    for _ in 0..WARM_UP_CALLS {
        black_box(d.decide(policy));
    }
    let mut took = Vec::with_capacity(TIMED_CALLS);
    for _ in 0..TIMED_CALLS {
        d.next();
        let start = Instant::now();
        let decision = d.route(|v, c| policy.route(v, c));
        took.push(start.elapsed());
        black_box(decision);
    }
    took.sort_unstable();
    let at = |q: f64| took[((took.len() - 1) as f64 * q).round() as usize];
    [at(0.5), at(0.99), at(1.0)]
}

/// `name: median …, p99 …, max …` in microseconds.
pub fn print_percentiles(name: &str, [median, p99, max]: [Duration; 3]) {
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    println!(
        "{name}: {TIMED_CALLS} calls timed one by one: median {:.2} µs, p99 {:.2} µs, max {:.2} µs",
        us(median),
        us(p99),
        us(max)
    );
}

/// The positional arguments (criterion's filters), without the options
/// and the values of those that take one.
pub fn filters() -> Vec<String> {
    const WITH_VALUE: [&str; 15] = [
        "--measurement-time",
        "--warm-up-time",
        "--sample-size",
        "--profile-time",
        "--save-baseline",
        "--baseline",
        "--load-baseline",
        "--output-format",
        "--color",
        "--nresamples",
        "--noise-threshold",
        "--confidence-level",
        "--significance-level",
        "--plotting-backend",
        "--format",
    ];
    let mut out = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if WITH_VALUE.contains(&a.as_str()) {
            args.next();
        } else if !a.starts_with('-') {
            out.push(a);
        }
    }
    out
}

/// Whether the filters select the benchmark `name` (no filter: all).
pub fn wanted(name: &str, filters: &[String]) -> bool {
    filters.is_empty() || filters.iter().any(|f| name.contains(f.as_str()))
}
