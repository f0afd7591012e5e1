//! Journal replay end to end: traffic recorded by the real server with
//! one policy (then stopped), replayed by `switchboard scripts replay`
//! against the same policy (everything agrees) and against another (the
//! expected differences, offer by offer), byte for byte the same on a
//! second run; and the same JSON through `POST /admin/tenants/{t}/replay`.
//! The same with the journal in PostgreSQL (`database_url`), read beside
//! the running node without joining its cluster (skipped, said, when no
//! PostgreSQL answers: see `pg_support`).

mod common;
mod pg_support;
use common::*;
use reqwest::Method;
use serde_json::{json, Value};
use std::path::Path;
use std::process::Command;

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

fn prefer(agent: &str) -> String {
    format!(
        "return {{ route = function(conversation, candidates, ctx)\n  for i = 1, #candidates do\n    if candidates[i].id == {agent:?} then return candidates[i].id end\n  end\n  return nil\nend }}\n"
    )
}

/// The demo tenant on a private copy of the scripts: live policy
/// `routing/policy.lua` prefers bob; `routing/carol.lua` prefers carol;
/// `routing/failing.lua` fails on line 2.
fn tenant() -> String {
    let dir = Server::new_dir("replay-scripts");
    copy_dir(&repo_scripts(), &dir);
    std::fs::write(dir.join("routing/policy.lua"), prefer("bob")).expect("write");
    std::fs::write(dir.join("routing/carol.lua"), prefer("carol")).expect("write");
    std::fs::write(
        dir.join("routing/failing.lua"),
        "return { route = function(c, candidates)\n  return candidates[1].nope.id\nend }\n",
    )
    .expect("write");
    demo_config()
        .replace(
            &format!("scripts_dir = {:?}", repo_scripts()),
            &format!("scripts_dir = {dir:?}"),
        )
        .replace(
            "routing = \"routing/longest_idle.lua\"",
            "routing = \"routing/policy.lua\"",
        )
}

/// `switchboard scripts replay` on the server's configuration: (exit
/// code, stdout).
fn replay(dir: &Path, args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(["scripts", "replay", "--config"])
        .arg(dir.join("switchboard.toml"))
        .args(["--tenant", "demo"])
        .args(args)
        .output()
        .expect("run switchboard scripts replay");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let code = out.status.code().unwrap_or(-1);
    (code, if code == 0 { stdout } else { stdout + &stderr })
}

fn json_of(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("{e}: {s}"))
}

/// Alice, bob and carol available; four customers write, each offered to
/// bob by the live policy; bob accepts the first (loads change in the
/// journal). The conversations' ids, and the agents (connected as long as
/// they are kept).
async fn record_offers(server: &Server) -> (Vec<u64>, Vec<AgentClient>) {
    let mut agents = Vec::new();
    for name in ["alice", "bob", "carol"] {
        let mut a = AgentClient::login(server, name).await;
        a.available().await;
        agents.push(a);
    }
    let mut ids = Vec::new();
    for i in 0..4 {
        let id = server
            .customer_says(&format!("v{i}"), "Customer", &format!("hello {i}"))
            .await;
        let offer = agents[1].events.next_of("offer").await;
        assert_eq!(offer["conversation"].as_u64(), Some(id));
        ids.push(id);
    }
    agents[1]
        .ok(&format!("/api/conversations/{}/accept", ids[0]), json!({}))
        .await;
    (ids, agents)
}

/// The replay's counts: (decisions, agreed, changed, errors).
fn counts(v: &Value) -> (&Value, &Value, &Value, &Value) {
    (&v["decisions"], &v["agreed"], &v["changed"], &v["errors"])
}

/// `scripts replay --json` against the live policy on a day recorded by
/// `record_offers`: every decision agrees. Its output and JSON.
fn replay_with_the_live_policy(dir: &Path) -> (String, Value) {
    let (code, same) = replay(dir, &["--routing", "routing/policy.lua", "--json"]);
    assert_eq!(code, 0, "{same}");
    let v = json_of(&same);
    assert_eq!(
        counts(&v),
        (&json!(4), &json!(4), &json!(0), &json!(0)),
        "{v}"
    );
    assert_eq!(v["offers"]["bob"], json!({"live": 4, "candidate": 4}));
    (same, v)
}

/// The same against `routing/carol.lua`: every decision changes.
fn replay_preferring_carol(dir: &Path) -> (String, Value) {
    let (code, other) = replay(dir, &["--routing", "routing/carol.lua", "--json"]);
    assert_eq!(code, 0, "{other}");
    let v = json_of(&other);
    assert_eq!(
        counts(&v),
        (&json!(4), &json!(0), &json!(4), &json!(0)),
        "{v}"
    );
    (other, v)
}

#[tokio::test]
async fn a_recorded_day_replays_the_same_with_its_policy_and_the_expected_changes_with_another() {
    let config = tenant();
    let dir = Server::new_dir("replay");
    let ids = {
        let server = Server::start_in(dir.clone(), &config, &[]);
        record_offers(&server).await.0
    }; // the server stops here

    // The same policy: every decision agrees.
    let (same, v) = replay_with_the_live_policy(&dir);
    assert_eq!(v["live_fallbacks"], 0);
    // Deterministic: byte for byte.
    let (_, again) = replay(&dir, &["--routing", "routing/policy.lua", "--json"]);
    assert_eq!(same, again);

    // Another policy: carol instead of bob, every time.
    let (other, v) = replay_preferring_carol(&dir);
    assert_eq!(v["offers"]["bob"], json!({"live": 4, "candidate": 0}));
    assert_eq!(v["offers"]["carol"], json!({"live": 0, "candidate": 4}));
    let changes: Vec<(u64, &str, &str)> = v["disagreements"]
        .as_array()
        .expect("disagreements")
        .iter()
        .map(|d| {
            (
                d["conversation"].as_u64().unwrap_or(0),
                d["live"].as_str().unwrap_or(""),
                d["candidate"].as_str().unwrap_or(""),
            )
        })
        .collect();
    let expected: Vec<(u64, &str, &str)> = ids.iter().map(|&id| (id, "bob", "carol")).collect();
    assert_eq!(changes, expected);
    assert!(!other.contains("hello"), "no customer text: {other}");
    let (_, again) = replay(&dir, &["--routing", "routing/carol.lua", "--json"]);
    assert_eq!(other, again);

    // A failing candidate: counted, with its line.
    let (code, failing) = replay(&dir, &["--routing", "routing/failing.lua", "--json"]);
    assert_eq!(code, 0, "{failing}");
    let v = json_of(&failing);
    assert_eq!((&v["errors"], &v["agreed"]), (&json!(4), &json!(0)), "{v}");
    assert_eq!(v["last_errors"][0]["line"], 2, "{v}");

    // A window: nothing before the epoch's first second, all from it.
    let (_, none) = replay(
        &dir,
        &[
            "--routing",
            "routing/carol.lua",
            "--json",
            "--until",
            "1970-01-01T00:00:01Z",
        ],
    );
    assert_eq!(json_of(&none)["decisions"], 0, "{none}");
    let (_, all) = replay(
        &dir,
        &[
            "--routing",
            "routing/carol.lua",
            "--json",
            "--since",
            "1970-01-01T00:00:00Z",
        ],
    );
    assert_eq!(json_of(&all)["decisions"], 4, "{all}");

    // The text report.
    let (code, text) = replay(&dir, &["--routing", "routing/carol.lua"]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("decisions  4"), "{text}");
    assert!(text.contains("live bob, candidate carol"), "{text}");

    // A broken candidate: its problem with file:line, exit 1.
    let (code, out) = replay(&dir, &["--routing", "routing/none.lua"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("routing/none.lua"), "{out}");

    // The same through the admin API of a server on that journal.
    let server = Server::start_in(dir.clone(), &config, &[]);
    let (status, api) = server
        .admin(
            Method::POST,
            "/admin/tenants/demo/replay",
            Some(json!({"routing": "routing/carol.lua"})),
        )
        .await;
    assert_eq!(status, 200, "{api}");
    assert_eq!(api, json_of(&other));
    let (status, v) = server
        .admin(
            Method::POST,
            "/admin/tenants/demo/replay",
            Some(json!({"routing": "routing/carol.lua", "since": "yesterday"})),
        )
        .await;
    assert_eq!(status, 422, "{v}");
    let (status, v) = server
        .admin(
            Method::POST,
            "/admin/tenants/demo/replay",
            Some(json!({"routing": "../x.lua"})),
        )
        .await;
    assert_eq!(status, 422, "{v}");
    assert!(v["errors"][0]["message"].is_string(), "{v}");
}

/// A node whose journal is in PostgreSQL records the same day; `scripts
/// replay` on its configuration reads it while the node keeps running
/// (reading only: the cluster still has one node) and agrees on every
/// decision with the live policy; the node's admin route, reading its own
/// store, answers the same JSON.
#[tokio::test]
async fn a_day_kept_in_postgresql_replays_the_same_from_the_command_and_the_node() {
    let Some(db) = pg_support::fresh_database("replay") else {
        println!("skipped: no PostgreSQL");
        return;
    };
    let config = format!("database_url = {:?}\n{}", db.url, tenant());
    let dir = Server::new_dir("replay-pg");
    let server = Server::start_in(dir.clone(), &config, &[]);
    wait_ready(&server).await;
    let (ids, _agents) = record_offers(&server).await;

    let (_, v) = replay_with_the_live_policy(&dir);
    let (_, o) = replay_preferring_carol(&dir);
    let changed: Vec<u64> = o["disagreements"]
        .as_array()
        .expect("disagreements")
        .iter()
        .filter_map(|d| d["conversation"].as_u64())
        .collect();
    assert_eq!(changed, ids);

    for (routing, expected) in [("routing/policy.lua", &v), ("routing/carol.lua", &o)] {
        let (status, api) = server
            .admin(
                Method::POST,
                "/admin/tenants/demo/replay",
                Some(json!({ "routing": routing })),
            )
            .await;
        assert_eq!(status, 200, "{api}");
        assert_eq!(&api, expected);
    }
    // The command never joined the cluster.
    let (status, cluster) = server.admin(Method::GET, "/admin/cluster", None).await;
    assert_eq!(status, 200, "{cluster}");
    assert_eq!(
        cluster["nodes"].as_array().map(Vec::len),
        Some(1),
        "{cluster}"
    );
}

/// A journal that is not there, or a database that does not answer, is
/// said in one line, exit 1; a URL's password is never printed.
#[test]
fn a_journal_that_cannot_be_opened_is_said_plainly() {
    let dir = Server::new_dir("replay-none");
    let config = demo_config().replace(
        "data_dir = \"./data\"",
        &format!("data_dir = {:?}", dir.join("data")),
    );
    std::fs::write(dir.join("switchboard.toml"), &config).expect("write");
    let (code, out) = replay(&dir, &["--routing", "routing/longest_idle.lua"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("no journal at"), "{out}");
    assert!(out.contains("switchboard.db"), "{out}");

    let url = "postgres://replay:s3cret-pw@127.0.0.1:1/day?connect_timeout=2";
    std::fs::write(
        dir.join("switchboard.toml"),
        format!("database_url = {url:?}\n{config}"),
    )
    .expect("write");
    let (code, out) = replay(&dir, &["--routing", "routing/longest_idle.lua"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("opening the PostgreSQL journal"), "{out}");
    assert!(!out.contains("s3cret-pw"), "{out}");
}

/// Wait until the node serves its tenants (`/readyz`): a node of a cluster
/// takes its share first. A bound on a hang, not a timing assertion.
async fn wait_ready(server: &Server) {
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        if let Ok(r) = server.http.get(server.url("/readyz")).send().await {
            if r.status() == 200 {
                return;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the node never became ready: {}",
            server.logs()
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
