//! One routing decision with 500 candidates through the skills policy,
//! as a Lua script (`scripts/routing/skills.lua`) and as a native plugin
//! (`plugins/skills-router`, built here in the bench's own profile). The
//! inputs are those of `lua_routing`: one agent's load changes per call.
//! After criterion's estimate each policy is timed call by call (20,000
//! calls after a warm-up) for the median and p99 criterion does not give.
//!
//! `cargo bench -p switchboard-core --bench plugin_vs_lua`

mod support;

use criterion::{criterion_group, criterion_main, Criterion};
use std::hint::black_box;
use std::path::Path;
use std::process::Command;
use support::{filters, percentiles, print_percentiles, spec, wanted, Agents, Dispatch};
use switchboard_core::lua::Generation;
use switchboard_core::native::{NativePlugin, NativeSpec};
use switchboard_core::routing::RoutingPolicy;

fn lua() -> Generation {
    Generation::load(&spec("routing/skills.lua"), 1, 0)
        .unwrap_or_else(|e| panic!("skills.lua: {e:?}"))
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
    let agents = Agents::new();
    let filters = filters();
    let (lua, native) = (lua(), native());
    let policies: [(&str, &dyn RoutingPolicy); 2] = [("lua", &lua), ("native", &native)];
    for (name, policy) in policies {
        let name = format!("skills_route_500_candidates/{name}");
        let mut d = Dispatch::new(&agents);
        c.bench_function(&name, |b| b.iter(|| black_box(d.decide(policy))));
        // Only when measuring (`cargo bench`), not under `cargo test
        // --benches` nor with a filter that leaves this policy out.
        // `--profile-time` runs are for profilers: nothing else then.
        let args: Vec<String> = std::env::args().collect();
        if args.iter().any(|a| a == "--bench")
            && !args.iter().any(|a| a == "--profile-time")
            && wanted(&name, &filters)
        {
            print_percentiles(&name, percentiles(policy, &mut d));
        }
    }
    // Both answered every call themselves (no fallback was measured).
    assert!(lua.report().iter().all(|r| r.errors == 0));
    assert!(native.report().iter().all(|r| r.errors == 0));
}

criterion_group!(benches, routing);
criterion_main!(benches);
