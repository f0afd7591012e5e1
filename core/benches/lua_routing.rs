//! Benchmarks of the Lua host: one routing decision with 500 candidate
//! agents (bundled `longest_idle` and `skills` policies; one agent's load
//! changes between calls, as in a real dispatch), and a whole reload of a
//! tenant with 20 scripts.
//!
//! `cargo bench -p switchboard-core --bench lua_routing`

use criterion::{criterion_group, criterion_main, Criterion};
use std::collections::BTreeMap;
use std::hint::black_box;
use std::path::PathBuf;
use switchboard_core::lua::{ChannelSpec, Generation, Limits, ScriptFiles, ScriptSpec};
use switchboard_core::masking::Masker;
use switchboard_core::model::Cad;
use switchboard_core::routing::{Candidate, ConversationView, RoutingPolicy};

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

fn routing(c: &mut Criterion) {
    let ids: Vec<String> = (0..500).map(|i| format!("agent{i:03}")).collect();
    let skills: Vec<Vec<String>> = (0..500)
        .map(|i| match i % 3 {
            0 => vec!["en".into(), "fr".into()],
            1 => vec!["en".into()],
            _ => vec!["en".into(), "billing".into()],
        })
        .collect();
    let mut cad = Cad::new();
    cad.insert("language".into(), "fr".into());
    cad.insert("contact_origin".into(), "webchat".into());
    for policy in ["first", "longest_idle", "skills"] {
        let mut s = spec(&format!("routing/{policy}.lua"));
        // Baseline: what marshaling costs, with a script that reads one field.
        s.files.0.insert(
            "routing/first.lua".into(),
            "return { route = function(c, cands) return cands[1].id end }".into(),
        );
        let g = match Generation::load(&s, 1, 0) {
            Ok(g) => g,
            Err(e) => panic!("{policy}: {e:?}"),
        };
        let mut n = 0u64;
        c.bench_function(&format!("route_500_candidates/{policy}"), |b| {
            b.iter(|| {
                n += 1;
                let cands: Vec<Candidate<'_>> = ids
                    .iter()
                    .zip(&skills)
                    .enumerate()
                    .map(|(i, (id, sk))| Candidate {
                        id,
                        name: id,
                        load: u32::from(i as u64 == n % 500),
                        capacity: 5,
                        idle_since: 10_000 + ((i as u64 * 7919) % 500),
                        skills: sk,
                    })
                    .collect();
                let view = ConversationView {
                    id: n,
                    queue: "support",
                    channel: "webchat",
                    customer: "v1",
                    customer_name: "Jeanne",
                    source: "Web chat",
                    preview: "Bonjour, ma facture est fausse",
                    cad: &cad,
                    received_at: 1,
                    queued_at: 1,
                    last_agent: None,
                };
                black_box(g.route(&view, &cands))
            })
        });
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

criterion_group!(benches, routing, reload);
criterion_main!(benches);
