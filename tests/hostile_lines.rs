//! The hostile-script corpus (core/tests/hostile/) through the admin
//! reload of the real server: each script is loaded, routes one
//! conversation (the host falls back and keeps serving), and its failure
//! in `last_errors` carries the file and a line of the script.

mod common;
use common::*;
use reqwest::Method;
use std::path::{Path, PathBuf};

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read dir").flatten() {
        let dest = to.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), &dest).expect("copy");
        }
    }
}

fn corpus() -> Vec<(String, String)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("core/tests/hostile");
    let mut v: Vec<(String, String)> = std::fs::read_dir(dir)
        .expect("hostile corpus")
        .flatten()
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read_to_string(e.path()).expect("read"),
            )
        })
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn every_hostile_failure_through_the_server_carries_its_line() {
    let dir = Server::new_dir("hostile-scripts");
    copy_dir(&repo_scripts(), &dir);
    let policy = dir.join("routing/policy.lua");
    std::fs::write(&policy, "return { route = function() return nil end }\n").expect("write");
    let config = demo_config()
        .replace(
            &format!("scripts_dir = {:?}", repo_scripts()),
            &format!("scripts_dir = {dir:?}"),
        )
        .replace(
            "routing = \"routing/longest_idle.lua\"",
            "routing = \"routing/policy.lua\"",
        )
        .replace("capacity = 5", "capacity = 500");
    let server = Server::start(&config);
    let mut agents = Vec::new();
    for name in ["alice", "bob", "carol"] {
        let mut a = AgentClient::login(&server, name).await;
        a.available().await;
        agents.push(a);
    }
    let mut ran = 0;
    for (name, source) in corpus() {
        if name == "load_loop.lua" || name == "returns_nil_module.lua" {
            continue; // refused at load: core/tests/lua_host.rs
        }
        std::fs::write(&policy, &source).expect("write hostile policy");
        let (status, v) = server
            .admin(Method::POST, "/admin/tenants/demo/reload", None)
            .await;
        assert_eq!(status, 200, "{name}: {v}");
        server
            .customer_says(&format!("h-{name}"), "Customer", "hello")
            .await;
        let (_, v) = server
            .admin(Method::GET, "/admin/tenants/demo/scripts", None)
            .await;
        let s = v["scripts"]
            .as_array()
            .and_then(|s| s.iter().find(|s| s["file"] == "routing/policy.lua"))
            .unwrap_or_else(|| panic!("{name}: policy listed in {v}"))
            .clone();
        // One route call failed (the call count also has the entry call).
        assert_eq!(s["errors"].as_u64(), Some(1), "{name}: {s}");
        let f = &s["last_errors"][0];
        assert_eq!(f["file"], "routing/policy.lua", "{name}: {f}");
        let lines = source.lines().count() as u64;
        assert!(
            f["line"].as_u64().is_some_and(|l| (1..=lines).contains(&l)),
            "{name}: no line in {f}"
        );
        ran += 1;
    }
    assert!(ran >= 40, "the corpus ran ({ran})");
    // The host kept serving: a good policy routes again.
    std::fs::write(
        &policy,
        "return { route = function(c, cands) return cands[1].id end }\n",
    )
    .expect("write");
    let (status, _) = server
        .admin(Method::POST, "/admin/tenants/demo/reload", None)
        .await;
    assert_eq!(status, 200);
    let id = server.customer_says("after", "Customer", "hello").await;
    let offer = agents[0]
        .events
        .next_where("offer", |o| o["conversation"].as_u64() == Some(id))
        .await;
    assert_eq!(offer["conversation"].as_u64(), Some(id));
}
