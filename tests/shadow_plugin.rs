//! A native plugin tried in shadow by name: the tenant's live routing
//! plugin (skills-router) asked again, as a separate instance, agrees
//! with itself; a Lua candidate beside it disagrees where expected.

mod common;
use common::*;
use reqwest::Method;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// `<target>/<profile>` of the running test binary.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    exe.parent()
        .and_then(Path::parent)
        .expect("test binary lives in <target>/<profile>/deps")
        .to_path_buf()
}

/// Build the skills-router plugin once; its library.
fn skills_router() -> &'static Path {
    static LIB: OnceLock<PathBuf> = OnceLock::new();
    LIB.get_or_init(|| {
        let profile_dir = profile_dir();
        let target = profile_dir.parent().expect("target dir");
        let mut cmd = Command::new(env!("CARGO"));
        cmd.current_dir(env!("CARGO_MANIFEST_DIR"))
            .args(["build", "-q", "-p", "skills-router"])
            .arg("--target-dir")
            .arg(target);
        if profile_dir.file_name().is_some_and(|p| p == "release") {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("run cargo build for the plugin");
        assert!(status.success(), "building the plugin failed");
        profile_dir.join(format!(
            "{}skills_router{}",
            std::env::consts::DLL_PREFIX,
            std::env::consts::DLL_SUFFIX
        ))
    })
}

async fn web_chat(server: &Server, visitor: &str, cad: Value) -> u64 {
    let resp = server
        .http
        .post(server.url("/channels/webchat/demo/messages"))
        .json(&json!({"visitor": visitor, "text": "hello", "name": "Visitor", "cad": cad}))
        .send()
        .await
        .expect("post web chat message");
    assert_eq!(resp.status().as_u16(), 202, "web chat message accepted");
    let v: Value = resp.json().await.expect("json");
    v["conversation"].as_u64().expect("conversation id")
}

async fn shadow_after(server: &Server, n: u64) -> Value {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let (status, v) = server
            .admin(Method::GET, "/admin/tenants/demo/shadow", None)
            .await;
        assert_eq!(status, 200, "{v}");
        if v["decisions"].as_u64().is_some_and(|d| d >= n) {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "{n} decisions: {v}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_routing_plugin_is_tried_in_shadow_by_its_name() {
    let config = demo_config().replace("routing = \"routing/longest_idle.lua\"\n", "");
    let config = format!(
        "{config}\n[[tenants.plugins]]\npath = {:?}\nroles = [\"routing\"]\n",
        skills_router()
    );
    let server = Server::start(&config);
    let mut agents = Vec::new();
    for name in ["alice", "bob", "carol"] {
        let mut a = AgentClient::login(&server, name).await;
        a.available().await;
        agents.push(a);
    }

    let (status, v) = server
        .admin(
            Method::PUT,
            "/admin/tenants/demo/shadow",
            Some(json!({"routing": "skills-router"})),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    // The live plugin gives a vip conversation to carol; so does its shadow.
    let id = web_chat(&server, "v1", json!({"tags": "vip"})).await;
    let offer = agents[2].events.next_of("offer").await;
    assert_eq!(offer["conversation"].as_u64(), Some(id));
    let v = shadow_after(&server, 1).await;
    assert_eq!(
        (v["agreed"].as_u64(), v["errors"].as_u64()),
        (Some(1), Some(0)),
        "{v}"
    );

    // Longest idle in shadow would have given the next vip one to alice.
    let (status, v) = server
        .admin(
            Method::PUT,
            "/admin/tenants/demo/shadow",
            Some(json!({"routing": "routing/longest_idle.lua"})),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    let id = web_chat(&server, "v2", json!({"tags": "vip"})).await;
    let offer = agents[2].events.next_of("offer").await;
    assert_eq!(offer["conversation"].as_u64(), Some(id), "live unchanged");
    let v = shadow_after(&server, 1).await;
    assert_eq!(v["disagreements"][0]["live"], "carol", "{v}");
    assert_eq!(v["disagreements"][0]["shadow"], "alice", "{v}");
}
