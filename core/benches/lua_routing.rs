//! Benchmarks of the Lua host: one routing decision with 500 candidate
//! agents (a trivial policy `first`, and the bundled `longest_idle` and
//! `skills` policies; one agent's load changes between calls, as in a real
//! dispatch), and a whole reload of a tenant with 20 scripts.
//!
//! `cargo bench -p switchboard-core --bench lua_routing -- route_500`
//!
//! After criterion's estimate, each routing policy is timed call by call
//! (20,000 calls after 2,000 warm-up calls) and its `median` and `p99`
//! are printed: criterion gives no percentiles.
//!
//! `LUA_ROUTING_CALLS=N` runs instead N decisions per policy through the
//! function `decide` and exits, for instruction counts that do not depend
//! on the machine's load:
//!
//! ```text
//! LUA_ROUTING_CALLS=2000 valgrind --tool=callgrind --toggle-collect='*decide*' \
//!   target/release/deps/lua_routing-<hash> first
//! ```
//!
//! (an argument keeps the policies whose name contains it); the
//! instructions per decision are callgrind's total divided by N.

use criterion::Criterion;
use std::collections::BTreeMap;
use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use switchboard_core::lua::{ChannelSpec, Generation, Limits, ScriptFiles, ScriptSpec};
use switchboard_core::masking::Masker;
use switchboard_core::model::Cad;
use switchboard_core::routing::{Candidate, ConversationView, RouteDecision, RoutingPolicy};

const POLICIES: [&str; 3] = ["first", "longest_idle", "skills"];
const AGENTS: usize = 500;
const TIMED_CALLS: usize = 20_000;
const WARM_UP_CALLS: usize = 2_000;

fn files() -> ScriptFiles {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts");
    ScriptFiles::read_dir(&dir).unwrap_or_default()
}

fn spec(routing: &str) -> ScriptSpec {
    ScriptSpec {
        tenant: "bench".into(),
        files: files(),
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

fn generation(policy: &str) -> Generation {
    let mut s = spec(&format!("routing/{policy}.lua"));
    // Baseline: what the hand-off costs, with a script that reads one field.
    s.files.0.insert(
        "routing/first.lua".into(),
        "return { route = function(c, cands) return cands[1].id end }".into(),
    );
    match Generation::load(&s, 1, 0) {
        Ok(g) => g,
        Err(e) => panic!("{policy}: {e:?}"),
    }
}

/// The agents of every decision: ids, names and skills live as long as
/// the bench, as agent configs live as long as the engine.
struct Agents {
    ids: Vec<String>,
    skills: Vec<Vec<String>>,
}

impl Agents {
    fn new() -> Agents {
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

    /// Built once, outside the timed code; `Dispatch::next` then changes
    /// one agent's load in place per decision.
    fn candidates(&self) -> Vec<Candidate<'_>> {
        self.ids
            .iter()
            .zip(&self.skills)
            .enumerate()
            .map(|(i, (id, sk))| Candidate {
                id,
                name: id,
                load: 0,
                capacity: 5,
                idle_since: 10_000 + ((i as u64 * 7919) % 500),
                skills: sk,
                stamp: 0,
            })
            .collect()
    }
}

/// The state of a run of decisions: the candidates and the conversation
/// number.
struct Dispatch<'a> {
    cands: Vec<Candidate<'a>>,
    cad: Cad,
    n: u64,
}

impl<'a> Dispatch<'a> {
    fn new(agents: &'a Agents) -> Dispatch<'a> {
        let mut cad = Cad::new();
        cad.insert("language".into(), "fr".into());
        cad.insert("contact_origin".into(), "webchat".into());
        Dispatch {
            cands: agents.candidates(),
            cad,
            n: 0,
        }
    }

    /// The next conversation: the agent that had a conversation last time
    /// is free again, and another one has one.
    fn next(&mut self) {
        let len = self.cands.len() as u64;
        self.cands[(self.n % len) as usize].load = 0;
        self.n += 1;
        self.cands[(self.n % len) as usize].load = 1;
    }

    fn route(&self, g: &Generation) -> RouteDecision {
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
        g.route(&view, &self.cands)
    }
}

/// One decision: what callgrind counts (`--toggle-collect='*decide*'`).
#[inline(never)]
fn decide(g: &Generation, d: &mut Dispatch<'_>) -> RouteDecision {
    d.next();
    d.route(g)
}

#[inline(never)]
fn warm_up(g: &Generation, d: &mut Dispatch<'_>) {
    for _ in 0..WARM_UP_CALLS {
        d.next();
        black_box(d.route(g));
    }
}

/// Median and 99th percentile of single decisions.
fn percentiles(g: &Generation, d: &mut Dispatch<'_>) -> (Duration, Duration) {
    warm_up(g, d);
    let mut times = Vec::with_capacity(TIMED_CALLS);
    for _ in 0..TIMED_CALLS {
        d.next();
        let start = Instant::now();
        black_box(d.route(g));
        times.push(start.elapsed());
    }
    times.sort_unstable();
    (times[TIMED_CALLS / 2], times[TIMED_CALLS * 99 / 100])
}

/// The positional arguments (criterion's filters), ignoring flags and
/// their values.
fn filters() -> Vec<String> {
    let mut out = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a.starts_with("--") {
            if !a.contains('=')
                && matches!(
                    a.as_str(),
                    "--measurement-time"
                        | "--warm-up-time"
                        | "--sample-size"
                        | "--profile-time"
                        | "--save-baseline"
                        | "--baseline"
                        | "--load-baseline"
                        | "--output-format"
                        | "--color"
                        | "--nresamples"
                        | "--noise-threshold"
                        | "--confidence-level"
                        | "--significance-level"
                        | "--plotting-backend"
                        | "--format"
                )
            {
                args.next();
            }
        } else if !a.starts_with('-') {
            out.push(a);
        }
    }
    out
}

fn wanted(name: &str, filters: &[String]) -> bool {
    filters.is_empty() || filters.iter().any(|f| name.contains(f.as_str()))
}

fn routing(c: &mut Criterion) {
    let agents = Agents::new();
    let filters = filters();
    for policy in POLICIES {
        let name = format!("route_500_candidates/{policy}");
        if !wanted(&name, &filters) {
            continue;
        }
        let g = generation(policy);
        let mut d = Dispatch::new(&agents);
        c.bench_function(&name, |b| b.iter(|| black_box(decide(&g, &mut d))));
        let (median, p99) = percentiles(&g, &mut d);
        println!(
            "{name}: median {:.1} µs, p99 {:.1} µs ({TIMED_CALLS} calls timed one by one)",
            median.as_secs_f64() * 1e6,
            p99.as_secs_f64() * 1e6
        );
    }
}

/// 20 scripts: a routing policy with its library, a wrap-up list per queue
/// (15 queues plus the tenant's; the policy requires `pick`, the adapter `url`) and the Messenger adapter.
fn reload(c: &mut Criterion) {
    let mut s = spec("routing/skills.lua");
    s.wrapup = Some("wrapup/en.lua".into());
    for i in 0..15 {
        let q = format!("queue{i:02}");
        let file = format!("wrapup/{q}.lua");
        s.files.0.insert(
            file.clone(),
            format!(
                "return {{ {{ code = 'resolved', label = 'Resolved {i}' }}, {{ code = 'other', label = 'Other' }} }}"
            ),
        );
        s.queues.push(q.clone());
        s.wrapup_queues.insert(q, file);
    }
    s.channels.insert(
        "messenger".into(),
        ChannelSpec {
            script: "channels/messenger.lua".into(),
            settings: BTreeMap::new(),
        },
    );
    let mut n = 0;
    c.bench_function("reload_tenant_20_scripts", |b| {
        b.iter(|| {
            n += 1;
            black_box(Generation::load(&s, n, 0).map(|g| g.number()).unwrap_or(0))
        })
    });
}

/// `LUA_ROUTING_CALLS=N`: N decisions per policy, nothing else.
fn count_only(calls: usize) {
    let agents = Agents::new();
    let filters = filters();
    for policy in POLICIES {
        if !wanted(policy, &filters) {
            continue;
        }
        let g = generation(policy);
        let mut d = Dispatch::new(&agents);
        warm_up(&g, &mut d);
        let mut last = RouteDecision::Fallback;
        for _ in 0..calls {
            last = black_box(decide(&g, &mut d));
        }
        println!("{policy}: {calls} decisions, last {last:?}");
    }
}

fn main() {
    if let Some(calls) = std::env::var("LUA_ROUTING_CALLS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        count_only(calls);
        return;
    }
    let mut c = Criterion::default().configure_from_args();
    routing(&mut c);
    reload(&mut c);
    c.final_summary();
}
