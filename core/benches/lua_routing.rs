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

mod support;

use criterion::Criterion;
use std::collections::BTreeMap;
use std::hint::black_box;
use support::{filters, percentiles, print_percentiles, spec, wanted, Agents, Dispatch};
use switchboard_core::lua::{ChannelSpec, Generation};
use switchboard_core::routing::RouteDecision;

const POLICIES: [&str; 3] = ["first", "longest_idle", "skills"];

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

/// One decision: what callgrind counts (`--toggle-collect='*decide*'`).
#[inline(never)]
fn decide(g: &Generation, d: &mut Dispatch<'_>) -> RouteDecision {
    d.decide(g)
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
        print_percentiles(&name, percentiles(&g, &mut d));
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
        for _ in 0..support::WARM_UP_CALLS {
            black_box(d.decide(&g));
        }
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
