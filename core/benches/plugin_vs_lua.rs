//! One routing decision with 500 candidates through the skills policy,
//! as a Lua script (`scripts/routing/skills.lua`) and as a native plugin
//! (`plugins/skills-router`, built here in the bench's own profile). The
//! inputs are those of `lua_routing`: one agent's load changes per call.
//! After criterion's estimate each policy is timed call by call (20,000
//! calls after a warm-up) for the median and p99 criterion does not give.
//!
//! `cargo bench -p switchboard-core --bench plugin_vs_lua`

use criterion::{criterion_group, criterion_main, Criterion};
use std::collections::BTreeMap;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
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

/// The inputs of decision `n`: agent `n % 500` has load 1, the others 0
/// (so one agent's load changes per call); the candidates are built once
/// and only those two loads are written between calls, so what is timed
/// is the decision rather than the building of 500 candidates.
struct Inputs<'a> {
    n: u64,
    cands: Vec<Candidate<'a>>,
}

impl<'a> Inputs<'a> {
    fn new(ids: &'a [String], skills: &'a [Vec<String>]) -> Self {
        let cands = ids
            .iter()
            .zip(skills)
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
        Inputs { n: 0, cands }
    }

    /// The next decision's candidates.
    fn next(&mut self) -> (u64, &[Candidate<'a>]) {
        let len = self.cands.len() as u64;
        self.cands[(self.n % len) as usize].load = 0;
        self.n += 1;
        self.cands[(self.n % len) as usize].load = 1;
        (self.n, &self.cands)
    }
}

fn view(n: u64, cad: &Cad) -> ConversationView<'_> {
    ConversationView {
        id: n,
        queue: "support",
        channel: "webchat",
        customer: "v1",
        customer_name: "Jeanne",
        source: "Web chat",
        preview: "Bonjour, ma facture est fausse",
        cad,
        received_at: 1,
        queued_at: 1,
        last_agent: None,
    }
}

/// Each call timed alone (`Instant` around `route` only), after a
/// warm-up: criterion reports means of batches, never a tail.
fn percentiles(name: &str, policy: &dyn RoutingPolicy, inputs: &mut Inputs<'_>, cad: &Cad) {
    const WARM_UP: usize = 2_000;
    const CALLS: usize = 20_000;
    for _ in 0..WARM_UP {
        let (n, cands) = inputs.next();
        black_box(policy.route(&view(n, cad), cands));
    }
    let mut took: Vec<Duration> = Vec::with_capacity(CALLS);
    for _ in 0..CALLS {
        let (n, cands) = inputs.next();
        let v = view(n, cad);
        let start = Instant::now();
        let d = policy.route(&v, cands);
        took.push(start.elapsed());
        black_box(d);
    }
    took.sort_unstable();
    let at = |q: f64| took[((took.len() - 1) as f64 * q).round() as usize];
    println!(
        "skills_route_500_candidates/{name}: {CALLS} calls timed one by one: \
         median {:.2} µs, p99 {:.2} µs, max {:.2} µs",
        at(0.5).as_secs_f64() * 1e6,
        at(0.99).as_secs_f64() * 1e6,
        at(1.0).as_secs_f64() * 1e6,
    );
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
        let mut inputs = Inputs::new(&ids, &skills);
        c.bench_function(&format!("skills_route_500_candidates/{name}"), |b| {
            b.iter(|| {
                let (n, cands) = inputs.next();
                black_box(policy.route(&view(n, &cad), cands))
            })
        });
        // Only when measuring (`cargo bench`), not under `cargo test
        // --benches` nor with a filter that leaves this policy out.
        // `--profile-time` runs are for profilers: nothing else then.
        let args: Vec<String> = std::env::args().collect();
        if args.iter().any(|a| a == "--bench")
            && !args.iter().any(|a| a == "--profile-time")
            && selected(name)
        {
            percentiles(name, policy, &mut inputs, &cad);
        }
    }
    // Both answered every call themselves (no fallback was measured).
    assert!(lua.report().iter().all(|r| r.errors == 0));
    assert!(native.report().iter().all(|r| r.errors == 0));
}

/// Whether the command line's filter (if any) selects `name`'s benchmark.
fn selected(name: &str) -> bool {
    /// criterion's options that take a value (the next argument).
    const WITH_VALUE: [&str; 13] = [
        "--measurement-time",
        "--warm-up-time",
        "--sample-size",
        "--save-baseline",
        "--baseline",
        "--load-baseline",
        "--noise-threshold",
        "--confidence-level",
        "--significance-level",
        "--nresamples",
        "--output-format",
        "--color",
        "--plotting-backend",
    ];
    let id = format!("skills_route_500_candidates/{name}");
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if WITH_VALUE.contains(&a.as_str()) {
            args.next();
        } else if !a.starts_with('-') && !id.contains(&a) {
            return false;
        }
    }
    true
}

criterion_group!(benches, routing);
criterion_main!(benches);
