//! Shadow routing end to end, against the real binary over real HTTP: a
//! candidate policy asked beside the live one on every routing decision,
//! with no effect on who gets the conversation; disagreements, errors
//! (with file:line) and agreement counted; a broken or escaping candidate
//! refused with 422; the shadow stopped with DELETE.

mod common;
use common::*;
use reqwest::Method;
use serde_json::{json, Value};
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

/// Offers to `agent` when it is a candidate, else keeps it queued.
fn prefer(agent: &str) -> String {
    format!(
        "return {{ route = function(conversation, candidates, ctx)\n  for i = 1, #candidates do\n    if candidates[i].id == {agent:?} then return candidates[i].id end\n  end\n  return nil\nend }}\n"
    )
}

/// The demo tenant on a private copy of the scripts, live policy
/// `routing/policy.lua` = `live`, plus the candidate files given.
pub fn tenant_with(live: &str, candidates: &[(&str, &str)]) -> (String, PathBuf) {
    let dir = Server::new_dir("shadow-scripts");
    copy_dir(&repo_scripts(), &dir);
    std::fs::write(dir.join("routing/policy.lua"), live).expect("write policy");
    for (file, source) in candidates {
        std::fs::write(dir.join(file), source).expect("write candidate");
    }
    let config = demo_config()
        .replace(
            &format!("scripts_dir = {:?}", repo_scripts()),
            &format!("scripts_dir = {dir:?}"),
        )
        .replace(
            "routing = \"routing/longest_idle.lua\"",
            "routing = \"routing/policy.lua\"",
        );
    (config, dir)
}

async fn all_available(server: &Server) -> Vec<AgentClient> {
    let mut agents = Vec::new();
    for name in ["alice", "bob", "carol"] {
        let mut a = AgentClient::login(server, name).await;
        a.available().await;
        agents.push(a);
    }
    agents
}

const SHADOW: &str = "/admin/tenants/demo/shadow";

/// The shadow's report once it has answered `n` decisions (its thread
/// runs beside the live path; this bounds the wait, it times nothing).
async fn shadow_after(server: &Server, n: u64) -> Value {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let (status, v) = server.admin(Method::GET, SHADOW, None).await;
        assert_eq!(status, 200, "{v}");
        if v["decisions"].as_u64().is_some_and(|d| d >= n) {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the shadow answered {n} decisions: {v}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_shadow_policy_never_changes_who_gets_the_conversation() {
    let others = "return { route = function(conversation, candidates, ctx)\n  for i = 1, #candidates do\n    if candidates[i].id ~= 'alice' then return candidates[i].id end\n  end\nend }\n";
    let failing =
        "return { route = function(conversation, candidates, ctx)\n  local x = nil\n  return x.id\nend }\n";
    let (config, _dir) = tenant_with(
        &prefer("alice"),
        &[
            ("routing/others.lua", others),
            ("routing/same.lua", &prefer("alice")),
            ("routing/failing.lua", failing),
            (
                "routing/broken.lua",
                "return { route = function(c)\n  return c.id +\nend }\n",
            ),
        ],
    );
    let server = Server::start(&config);
    let mut agents = all_available(&server).await;

    // No shadow yet: 404 with a JSON error.
    let (status, v) = server.admin(Method::GET, SHADOW, None).await;
    assert_eq!(status, 404, "{v}");
    assert!(v["error"].is_string(), "{v}");

    // Refused like a reload: a broken candidate with its line, a path out
    // of the script folder, a file that is not there.
    let (status, v) = server
        .admin(
            Method::PUT,
            SHADOW,
            Some(json!({"routing": "routing/broken.lua"})),
        )
        .await;
    assert_eq!(status, 422, "{v}");
    assert_eq!(v["errors"][0]["file"], "routing/broken.lua");
    assert_eq!(v["errors"][0]["line"], 3, "{v}");
    for bad in [
        "../../etc/passwd.lua",
        "/etc/x.lua",
        "routing/none.lua",
        "no-such-plugin",
    ] {
        let (status, v) = server
            .admin(Method::PUT, SHADOW, Some(json!({"routing": bad})))
            .await;
        assert_eq!(status, 422, "{bad}: {v}");
        assert!(v["errors"][0]["message"].is_string(), "{v}");
    }
    let (status, _) = server.admin(Method::GET, SHADOW, None).await;
    assert_eq!(status, 404, "nothing started");

    // A candidate that always disagrees: alice still gets every offer.
    let (status, v) = server
        .admin(
            Method::PUT,
            SHADOW,
            Some(json!({"routing": "routing/others.lua"})),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["routing"], "routing/others.lua");
    assert_eq!(v["decisions"], 0);
    let mut ids = Vec::new();
    for i in 0..2 {
        let id = server
            .customer_says(&format!("d{i}"), "Customer", "hello")
            .await;
        let offer = agents[0].events.next_of("offer").await;
        assert_eq!(
            offer["conversation"].as_u64(),
            Some(id),
            "live decision kept"
        );
        ids.push(id);
    }
    let v = shadow_after(&server, 2).await;
    assert_eq!(
        (
            v["decisions"].as_u64(),
            v["agreed"].as_u64(),
            v["errors"].as_u64()
        ),
        (Some(2), Some(0), Some(0)),
        "{v}"
    );
    let d = v["disagreements"].as_array().expect("disagreements");
    assert_eq!(d.len(), 2, "{v}");
    for (d, id) in d.iter().zip(&ids) {
        assert_eq!(d["conversation"].as_u64(), Some(*id));
        assert_eq!(d["live"], "alice");
        assert!(d["shadow"] == "bob" || d["shadow"] == "carol", "{d}");
        assert!(d["at"].as_str().is_some_and(|t| t.contains('T')), "{d}");
        assert_eq!(d.as_object().map(|o| o.len()), Some(4), "ids only: {d}");
    }
    assert!(!v.to_string().contains("hello"), "no customer text: {v}");

    // Admins see it with the scripts.
    let (_, scripts) = server
        .admin(Method::GET, "/admin/tenants/demo/scripts", None)
        .await;
    assert_eq!(
        scripts["shadow"]["routing"], "routing/others.lua",
        "{scripts}"
    );
    assert_eq!(scripts["shadow"]["decisions"], 2, "{scripts}");

    // One that agrees (replacing the first).
    let (status, _) = server
        .admin(
            Method::PUT,
            SHADOW,
            Some(json!({"routing": "routing/same.lua"})),
        )
        .await;
    assert_eq!(status, 200);
    let id = server.customer_says("a1", "Customer", "hello").await;
    let offer = agents[0].events.next_of("offer").await;
    assert_eq!(offer["conversation"].as_u64(), Some(id));
    let v = shadow_after(&server, 1).await;
    assert_eq!(
        (v["decisions"].as_u64(), v["agreed"].as_u64()),
        (Some(1), Some(1)),
        "{v}"
    );
    assert_eq!(v["disagreements"], json!([]));

    // One that errors: counted with its line; the live decision stands.
    let (status, _) = server
        .admin(
            Method::PUT,
            SHADOW,
            Some(json!({"routing": "routing/failing.lua"})),
        )
        .await;
    assert_eq!(status, 200);
    let id = server.customer_says("e1", "Customer", "hello").await;
    let offer = agents[0].events.next_of("offer").await;
    assert_eq!(offer["conversation"].as_u64(), Some(id), "live unaffected");
    assert_eq!(
        offer["generation"], 1,
        "the live policy decided, not the fallback"
    );
    let v = shadow_after(&server, 1).await;
    assert_eq!(
        (v["errors"].as_u64(), v["agreed"].as_u64()),
        (Some(1), Some(0)),
        "{v}"
    );
    assert_eq!(v["last_errors"][0]["file"], "routing/failing.lua", "{v}");
    assert_eq!(v["last_errors"][0]["line"], 3, "{v}");
    // The live policy's own counters saw no error.
    let (_, scripts) = server
        .admin(Method::GET, "/admin/tenants/demo/scripts", None)
        .await;
    let live = scripts["scripts"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["file"] == "routing/policy.lua"))
        .expect("live policy listed")
        .clone();
    assert_eq!(live["errors"], 0, "{live}");

    // DELETE stops it: its last report, then 404.
    let (status, v) = server.admin(Method::DELETE, SHADOW, None).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["routing"], "routing/failing.lua");
    let (status, v) = server.admin(Method::DELETE, SHADOW, None).await;
    assert_eq!(status, 404, "{v}");
    assert!(v["error"].is_string());
    let (_, scripts) = server
        .admin(Method::GET, "/admin/tenants/demo/scripts", None)
        .await;
    assert!(scripts["shadow"].is_null(), "{scripts}");
    let id = server.customer_says("after", "Customer", "hello").await;
    let offer = agents[0].events.next_of("offer").await;
    assert_eq!(offer["conversation"].as_u64(), Some(id));
}
