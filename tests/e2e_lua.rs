//! The Lua plugin host end to end, against the real binary over real HTTP:
//! editing a routing script and reloading changes routing with no restart;
//! a broken edit is refused with file:line while the old generation keeps
//! serving; reloads while messages flow lose nothing; a signed Messenger
//! webhook reaches an agent and the reply reaches a stand-in Graph API on
//! loopback (the only thing replaced: Meta's servers).

mod common;
use axum::extract::{Query, State};
use axum::routing::{get, post};
use axum::Json;
use common::*;
use reqwest::Method;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

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

/// A private copy of the scripts with `routing/policy.lua` as the policy.
fn tenant_with_policy(policy: &str, tag: &str) -> (String, PathBuf) {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let dir =
        std::env::temp_dir().join(format!("switchboard-lua-{tag}-{}-{n}", std::process::id()));
    copy_dir(&repo_scripts(), &dir);
    std::fs::write(dir.join("routing/policy.lua"), policy).expect("write policy");
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

fn prefer(agent: &str) -> String {
    format!(
        "-- Offers to {agent} when it is a candidate.\nreturn {{ route = function(conversation, candidates, ctx)\n  for i = 1, #candidates do\n    if candidates[i].id == {agent:?} then return candidates[i].id end\n  end\n  return nil\nend }}\n"
    )
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

#[tokio::test]
async fn editing_a_policy_and_reloading_changes_routing_without_restart() {
    let (config, dir) = tenant_with_policy(&prefer("bob"), "reload");
    let server = Server::start(&config);
    let mut agents = all_available(&server).await;

    let id = server.customer_says("v1", "Jeanne", "first").await;
    let offer = agents[1].events.next_of("offer").await;
    assert_eq!(
        (offer["conversation"].as_u64(), offer["generation"].as_u64()),
        (Some(id), Some(1))
    );

    // Edit the script: carol now; reload; the next conversation goes to carol.
    std::fs::write(dir.join("routing/policy.lua"), prefer("carol")).expect("edit");
    let (status, v) = server
        .admin(Method::POST, "/admin/tenants/demo/reload", None)
        .await;
    assert_eq!((status, v["generation"].as_u64()), (200, Some(2)), "{v}");
    let id = server.customer_says("v2", "Paul", "second").await;
    let offer = agents[2].events.next_of("offer").await;
    assert_eq!(
        (offer["conversation"].as_u64(), offer["generation"].as_u64()),
        (Some(id), Some(2))
    );

    // A broken edit is refused with file:line; generation 2 keeps serving.
    std::fs::write(
        dir.join("routing/policy.lua"),
        "return { route = function(conversation, candidates, ctx)\n  return candidates[1].id +\nend }\n",
    )
    .expect("edit");
    let (status, v) = server
        .admin(Method::POST, "/admin/tenants/demo/reload", None)
        .await;
    assert_eq!(status, 422, "{v}");
    assert_eq!(v["errors"][0]["file"], "routing/policy.lua");
    assert_eq!(v["errors"][0]["line"], 3);
    assert!(v["errors"][0]["message"]
        .as_str()
        .is_some_and(|m| !m.is_empty()));
    let id = server.customer_says("v3", "Anne", "third").await;
    let offer = agents[2].events.next_of("offer").await;
    assert_eq!(
        (offer["conversation"].as_u64(), offer["generation"].as_u64()),
        (Some(id), Some(2))
    );

    // Admins see the live generation and its script's calls.
    let (status, v) = server
        .admin(Method::GET, "/admin/tenants/demo/scripts", None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(v["generation"], 2);
    let policy = v["scripts"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["file"] == "routing/policy.lua"))
        .expect("policy listed")
        .clone();
    assert_eq!(policy["errors"], 0);
    assert!(policy["calls"].as_u64().is_some_and(|c| c >= 2));
}

#[tokio::test]
async fn a_failing_policy_falls_back_and_admins_see_where() {
    let (config, _dir) = tenant_with_policy(
        "return { route = function(conversation, candidates, ctx)\n  while true do end\nend }\n",
        "failing",
    );
    let server = Server::start(&config);
    let mut agents = all_available(&server).await;
    let id = server.customer_says("v1", "Jeanne", "hello").await;
    // The longest idle agent (alice, first available) still gets it.
    let offer = agents[0].events.next_of("offer").await;
    assert_eq!(offer["conversation"].as_u64(), Some(id));
    let (_, v) = server
        .admin(Method::GET, "/admin/tenants/demo/scripts", None)
        .await;
    let policy = v["scripts"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["file"] == "routing/policy.lua"))
        .expect("policy listed")
        .clone();
    assert_eq!(policy["errors"], 1, "{policy}");
    let last = &policy["last_errors"][0];
    assert_eq!(
        (last["line"].as_u64(), last["kind"].as_str()),
        (Some(2), Some("timeout")),
        "{last}"
    );
    assert!(
        !server.logs().contains("hello"),
        "customer text never logged"
    );
}

#[tokio::test]
async fn reloading_100_times_while_messages_flow_routes_every_message() {
    let (config, dir) = tenant_with_policy(&prefer("bob"), "flow");
    let config = config.replace("capacity = 5", "capacity = 500");
    let server = Arc::new(Server::start(&config));
    let _agents = all_available(&server).await;
    let reloader = {
        let server = server.clone();
        let dir = dir.clone();
        tokio::spawn(async move {
            let mut last = 1;
            for i in 0..100 {
                let who = ["alice", "bob", "carol"][i % 3];
                std::fs::write(dir.join("routing/policy.lua"), prefer(who)).expect("edit");
                let (status, v) = server
                    .admin(Method::POST, "/admin/tenants/demo/reload", None)
                    .await;
                assert_eq!(status, 200, "{v}");
                let g = v["generation"].as_u64().expect("generation");
                assert!(g > last, "generations grow");
                last = g;
            }
            last
        })
    };
    let mut ids = Vec::new();
    for i in 0..100 {
        ids.push(
            server
                .customer_says(&format!("flow-{i}"), "Customer", "hello")
                .await,
        );
    }
    let last = reloader.await.expect("reloads");
    assert_eq!(last, 101);
    let (_, list) = server
        .admin(Method::GET, "/admin/tenants/demo/conversations", None)
        .await;
    let list = list.as_array().expect("conversations").clone();
    assert_eq!(list.len(), 100);
    for c in &list {
        assert_eq!(c["state"], "offered", "every message was routed: {c}");
    }
    let (_, v) = server
        .admin(Method::GET, "/admin/tenants/demo/scripts", None)
        .await;
    for s in v["scripts"].as_array().expect("scripts") {
        assert_eq!(s["errors"], 0, "{s}");
    }
}

/// What the stand-in Graph API received.
#[derive(Debug, Clone)]
struct Received {
    path: String,
    query: BTreeMap<String, String>,
    body: Value,
}

#[derive(Clone, Default)]
struct Graph {
    received: Arc<Mutex<Vec<Received>>>,
    /// Answer 500 to this many requests first (Meta's transient errors).
    fail_first: Arc<Mutex<u32>>,
}

async fn graph_send(
    State(g): State<Graph>,
    uri: axum::http::Uri,
    Query(query): Query<BTreeMap<String, String>>,
    Json(body): Json<Value>,
) -> (axum::http::StatusCode, Json<Value>) {
    g.received.lock().expect("lock").push(Received {
        path: uri.path().to_string(),
        query,
        body: body.clone(),
    });
    let mut fail = g.fail_first.lock().expect("lock");
    if *fail > 0 {
        *fail -= 1;
        return (
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            Json(
                json!({"error": {"message": "An unexpected error has occurred. Please retry your request later.", "type": "OAuthException", "is_transient": true, "code": 2}}),
            ),
        );
    }
    (
        axum::http::StatusCode::OK,
        Json(json!({"recipient_id": body["recipient"]["id"], "message_id": "m_stand_in"})),
    )
}

async fn stand_in_graph_api() -> (String, Graph) {
    let g = Graph::default();
    let app = axum::Router::new()
        .route("/v21.0/me/messages", post(graph_send))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(g.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}"), g)
}

fn signed(body: &str, secret: &str) -> String {
    messenger_signature(body, secret)
}

async fn post_webhook(server: &Server, body: &str, signature: Option<&str>) -> (u16, String) {
    let mut req = server
        .http
        .post(server.url("/channels/messenger/demo/webhook"))
        .header("content-type", "application/json")
        .body(body.to_string());
    if let Some(s) = signature {
        req = req.header("X-Hub-Signature-256", s);
    }
    let resp = req.send().await.expect("webhook");
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap_or_default())
}

async fn wait_for_requests(g: &Graph, n: usize) -> Vec<Received> {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let got = g.received.lock().expect("lock").clone();
        if got.len() >= n {
            return got;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "Graph API got {got:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn signed_messenger_webhook_reaches_an_agent_and_the_reply_reaches_graph_api() {
    let (graph_base, graph) = stand_in_graph_api().await;
    let server = Server::start_with_env(
        &demo_config(),
        &[("SWITCHBOARD_GRAPH_API_BASE", &graph_base)],
    );

    // Subscription handshake.
    let hs = |token: &str| {
        server.url(&format!(
            "/channels/messenger/demo/webhook?hub.mode=subscribe&hub.verify_token={token}&hub.challenge=1158201444"
        ))
    };
    let resp = server
        .http
        .get(hs("demo-verify"))
        .send()
        .await
        .expect("handshake");
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.text().await.expect("body"), "1158201444");
    let resp = server
        .http
        .get(hs("wrong"))
        .send()
        .await
        .expect("handshake");
    assert_eq!(resp.status().as_u16(), 403);

    let mut alice = AgentClient::login(&server, "alice").await;
    alice.available().await;

    let body = json!({"object": "page", "entry": [{"id": "1000", "time": 1_700_000_000_000u64, "messaging": [
        {"sender": {"id": "PSID-42"}, "recipient": {"id": "1000"}, "timestamp": 1_700_000_000_000u64,
         "message": {"mid": "m.1", "text": "Bonjour, ma commande est en retard"}},
        {"sender": {"id": "1000"}, "recipient": {"id": "PSID-42"}, "timestamp": 1_700_000_000_001u64,
         "message": {"mid": "m.2", "text": "echo of the page", "is_echo": true}},
        {"sender": {"id": "PSID-42"}, "recipient": {"id": "1000"}, "timestamp": 1_700_000_000_002u64,
         "read": {"watermark": 1_700_000_000_001u64}}
    ]}]})
    .to_string();

    // Bad or missing signature: 401 and nothing stored.
    assert_eq!(post_webhook(&server, &body, None).await.0, 401);
    assert_eq!(
        post_webhook(&server, &body, Some(&signed(&body, "not-the-secret")))
            .await
            .0,
        401
    );
    assert_eq!(post_webhook(&server, &body, Some("sha256=zz")).await.0, 401);
    let (_, list) = server
        .admin(Method::GET, "/admin/tenants/demo/conversations", None)
        .await;
    assert_eq!(list, json!([]), "nothing stored");

    let (status, text) = post_webhook(&server, &body, Some(&signed(&body, "demo-secret"))).await;
    assert_eq!((status, text.as_str()), (200, "EVENT_RECEIVED"));
    let offer = alice.events.next_of("offer").await;
    assert_eq!(offer["source"], "Demo Page");
    assert_eq!(offer["channel"], "messenger");
    assert_eq!(offer["preview"], "Bonjour, ma commande est en retard");
    let id = offer["conversation"].as_u64().expect("id");

    // A postback and an image continue the same conversation (one per PSID).
    let more = json!({"object": "page", "entry": [{"id": "1000", "time": 2, "messaging": [
        {"sender": {"id": "PSID-42"}, "recipient": {"id": "1000"}, "timestamp": 2, "postback": {"title": "Track my order", "payload": "TRACK"}},
        {"sender": {"id": "PSID-42"}, "recipient": {"id": "1000"}, "timestamp": 3, "message": {"mid": "m.3", "attachments": [{"type": "image", "payload": {"url": "https://example.invalid/x.png"}}]}}
    ]}]})
    .to_string();
    assert_eq!(
        post_webhook(&server, &more, Some(&signed(&more, "demo-secret")))
            .await
            .0,
        200
    );
    alice.accept(id).await;
    let started = alice.events.next_of("conversation_started").await;
    let texts: Vec<&str> = started["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter_map(|m| m["text"].as_str())
        .collect();
    assert_eq!(
        texts,
        [
            "Bonjour, ma commande est en retard",
            "Track my order",
            "[image]"
        ]
    );

    // The reply goes out as Meta's Send API request; a 500 is retried.
    *graph.fail_first.lock().expect("lock") = 1;
    alice
        .ok(
            &format!("/api/conversations/{id}/messages"),
            json!({"text": "Je regarde"}),
        )
        .await;
    let got = wait_for_requests(&graph, 2).await;
    for r in &got {
        assert_eq!(r.path, "/v21.0/me/messages");
        assert_eq!(
            r.query.get("access_token").map(String::as_str),
            Some("demo-access")
        );
        // HMAC-SHA256("demo-access") keyed by "demo-secret", hex.
        assert_eq!(
            r.query.get("appsecret_proof").map(String::len),
            Some(64),
            "every Graph API call carries appsecret_proof"
        );
        assert_eq!(
            r.body,
            json!({"recipient": {"id": "PSID-42"}, "messaging_type": "RESPONSE", "message": {"text": "Je regarde"}})
        );
    }

    // Past 24 hours: the HUMAN_AGENT tag.
    server.advance(25 * 3600 * 1000).await;
    alice
        .ok(
            &format!("/api/conversations/{id}/messages"),
            json!({"text": "Toujours là ?"}),
        )
        .await;
    let got = wait_for_requests(&graph, 3).await;
    assert_eq!(
        got[2].body,
        json!({"recipient": {"id": "PSID-42"}, "messaging_type": "MESSAGE_TAG", "tag": "HUMAN_AGENT", "message": {"text": "Toujours là ?"}})
    );

    // Past 7 days: refused, nothing sent.
    server.advance(7 * 24 * 3600 * 1000).await;
    let (status, v) = alice
        .post(
            &format!("/api/conversations/{id}/messages"),
            json!({"text": "Allô ?"}),
        )
        .await;
    assert_eq!(status, 409, "{v}");
    assert!(
        v["error"].as_str().is_some_and(|e| e.contains("7 days")),
        "{v}"
    );
    assert_eq!(graph.received.lock().expect("lock").len(), 3);
}

#[tokio::test]
async fn an_unreachable_graph_api_is_reported_to_the_agent() {
    // A port nothing listens on: every attempt fails.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let base = format!("http://127.0.0.1:{closed}");
    let server = Server::start_with_env(&demo_config(), &[("SWITCHBOARD_GRAPH_API_BASE", &base)]);
    let mut alice = AgentClient::login(&server, "alice").await;
    alice.available().await;
    let body = json!({"object": "page", "entry": [{"id": "1000", "time": 1, "messaging": [
        {"sender": {"id": "PSID-7"}, "recipient": {"id": "1000"}, "timestamp": 1, "message": {"mid": "m.1", "text": "hi"}}
    ]}]})
    .to_string();
    assert_eq!(
        post_webhook(&server, &body, Some(&signed(&body, "demo-secret")))
            .await
            .0,
        200
    );
    let id = alice.events.next_of("offer").await["conversation"]
        .as_u64()
        .expect("id");
    alice.accept(id).await;
    alice
        .ok(
            &format!("/api/conversations/{id}/messages"),
            json!({"text": "hello"}),
        )
        .await;
    let failed = alice.events.next_of("delivery_failed").await;
    assert_eq!(failed["conversation"].as_u64(), Some(id));
    assert_eq!(failed["channel"], "messenger");
    assert!(
        !server.logs().contains("demo-access"),
        "the access token is never logged"
    );
}

fn scripts_check(config: &Path) -> (i32, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(["scripts", "check", "--config"])
        .arg(config)
        .output()
        .expect("run scripts check");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn scripts_check_reports_every_problem_with_tenant_file_and_line() {
    let example = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/acme/acme.toml");
    assert_eq!(scripts_check(&example).0, 0, "the example tenant is valid");

    let (config, dir) = tenant_with_policy("return {\n  route = 42\n}\n", "check");
    std::fs::write(
        dir.join("wrapup/en.lua"),
        "return { { code = 'a', label = 'A' }, { code = 'a', label = 'B' } }",
    )
    .expect("edit");
    let cfg = dir.join("switchboard.toml");
    std::fs::write(&cfg, config).expect("config");
    let (code, out) = scripts_check(&cfg);
    assert_eq!(code, 1, "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines,
        [
            "demo: routing/policy.lua:?: a routing policy must define route(conversation, candidates, ctx)",
            "demo: wrapup/en.lua:?: reasons: code \"a\" appears twice",
        ]
    );
}

#[tokio::test]
async fn canned_responses_are_served_per_conversation_and_reloaded_with_the_generation() {
    let (config, dir) = tenant_with_policy(&prefer("alice"), "responses");
    let server = Server::start(&config);
    let mut alice = AgentClient::login(&server, "alice").await;
    alice.available().await;
    let bob = AgentClient::login(&server, "bob").await;
    let id = server
        .customer_says("v-canned", "melissa@gmail.com", "hello")
        .await;
    let offer = alice.events.next_of("offer").await;
    assert_eq!(offer["conversation"].as_u64(), Some(id));
    alice.accept(id).await;

    let path = format!("/api/responses?conversation={id}");
    let (status, v) = alice.call(Method::GET, &path, None).await;
    assert_eq!(status, 200, "{v}");
    let list = v["responses"].as_array().expect("responses").clone();
    let greeting = list
        .iter()
        .find(|r| r["code"] == "greeting")
        .expect("greeting");
    assert_eq!(greeting["title"], "Greeting");
    // The customer's name as agents see it: masked.
    assert_eq!(
        greeting["text"],
        "Hello m******@gmail.com, this is Alice Martin from Support. How can I help you today?"
    );
    assert!(
        list.iter().all(|r| r["code"] != "refund_time"),
        "a billing-only response is not offered in support: {v}"
    );
    assert!(!v.to_string().contains("melissa@"));

    // Only for a conversation the agent takes part in; the query is checked.
    let (status, _) = bob.call(Method::GET, &path, None).await;
    assert_eq!(status, 404);
    let (status, v) = alice.call(Method::GET, "/api/responses", None).await;
    assert_eq!(status, 400, "{v}");
    assert!(v["error"].is_string());
    let (status, _) = alice
        .call(Method::GET, "/api/responses?conversation=abc", None)
        .await;
    assert_eq!(status, 400);
    let resp = server
        .http
        .get(server.url(&path))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status().as_u16(), 401);

    // A broken list is refused at reload and the old one keeps serving.
    let file = dir.join("responses/en.lua");
    std::fs::write(
        &file,
        "return { { code = 'a', title = 'A', text = 'x' }, { code = 'a', title = 'B', text = 'y' } }",
    )
    .expect("edit");
    let (status, v) = server
        .admin(Method::POST, "/admin/tenants/demo/reload", None)
        .await;
    assert_eq!(status, 422, "{v}");
    assert_eq!(v["errors"][0]["file"], "responses/en.lua");
    assert!(v["errors"][0]["message"]
        .as_str()
        .is_some_and(|m| m.contains("appears twice")));
    let (_, v) = alice.call(Method::GET, &path, None).await;
    assert!(v["responses"]
        .as_array()
        .is_some_and(|l| l.iter().any(|r| r["code"] == "greeting")));

    // A valid edit is served from the next generation.
    std::fs::write(
        &file,
        "return { { code = 'queue', title = 'Queue', text = '{agent_name} in {queue} for {customer_name} {other}' } }",
    )
    .expect("edit");
    let (status, v) = server
        .admin(Method::POST, "/admin/tenants/demo/reload", None)
        .await;
    assert_eq!(status, 200, "{v}");
    let (_, v) = alice.call(Method::GET, &path, None).await;
    assert_eq!(
        v["responses"],
        json!([{"code": "queue", "title": "Queue", "language": null,
                "text": "Alice Martin in Support for m******@gmail.com {other}"}])
    );
}
