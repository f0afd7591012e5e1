//! One routing decision with 500 candidates through the skills policy,
//! as a Lua script (`scripts/routing/skills.lua`) and as a native plugin
//! (`plugins/skills-router`, built here in the bench's own profile). The
//! inputs are those of `lua_routing`: one agent's load changes per call.
//!
//! `cargo bench -p switchboard-core --bench plugin_vs_lua`

use criterion::{criterion_group, criterion_main, Criterion};
use std::collections::BTreeMap;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::Command;
use switchboard_core::lua::{Generation, Limits, ScriptFiles, ScriptSpec};
use switchboard_core::masking::Masker;
use switchboard_core::model::Cad;
use switchboard_core::native::{NativePlugin, NativeSpec};
use switchboard_core::routing::{Candidate, ConversationView, RoutingPolicy};

fn lua() -> Generation {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts");
    let spec = ScriptSpec {
        tenant: "bench".into(),
        files: ScriptFiles::read_dir(&dir).unwrap_or_default(),
        routing: Some("routing/skills.lua".into()),
        wrapup: None,
        wrapup_queues: BTreeMap::new(),
        responses: None,
        channels: BTreeMap::new(),
        queues: vec!["support".into(), "billing".into()],
        masker: Masker::default(),
        limits: Limits::default(),
    };
    Generation::load(&spec, 1, 0).unwrap_or_else(|e| panic!("skills.lua: {e:?}"))
}

/// Build skills-router in this bench's profile and load it.
fn native() -> NativePlugin {
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("current_exe: {e}"));
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .unwrap_or_else(|| panic!("bench binary outside <target>/<profile>/deps"));
    let target = profile_dir.parent().unwrap_or(profile_dir);
    let mut cmd = Command::new(env!("CARGO"));
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["build", "-q", "-p", "skills-router", "--target-dir"])
        .arg(target);
    if profile_dir.ends_with("release") {
        cmd.arg("--release");
    }
    let ok = cmd.status().is_ok_and(|s| s.success());
    assert!(ok, "building skills-router failed");
    let lib = profile_dir.join(format!(
        "{}skills_router{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    ));
    let spec = NativeSpec::new("bench", lib, profile_dir.join("plugin-bench"));
    NativePlugin::load(&spec, 1, 0).unwrap_or_else(|e| panic!("{e}"))
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
    let (lua, native) = (lua(), native());
    let policies: [(&str, &dyn RoutingPolicy); 2] = [("lua", &lua), ("native", &native)];
    for (name, policy) in policies {
        let mut n = 0u64;
        c.bench_function(&format!("skills_route_500_candidates/{name}"), |b| {
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
                black_box(policy.route(&view, &cands))
            })
        });
    }
    // Both answered every call themselves (no fallback was measured).
    assert!(lua.report().iter().all(|r| r.errors == 0));
    assert!(native.report().iter().all(|r| r.errors == 0));
}

criterion_group!(benches, routing);
criterion_main!(benches);
