//! What leaves the system is decided by the engine and journaled, end to
//! end against the real binary: admin settings survive a restart, a failed
//! journal commit leaves nothing applied, and a reply the channel refuses
//! is a journaled `delivery_failed` the desktop and the transcript show,
//! after a restart too.

mod common;
use axum::routing::post;
use common::*;
use reqwest::Method;
use serde_json::{json, Value};

/// The message texts of a transcript.
fn texts(transcript: &Value) -> Vec<String> {
    transcript
        .as_array()
        .expect("transcript")
        .iter()
        .filter_map(|m| m["text"].as_str().map(str::to_string))
        .collect()
}

async fn transcript(server: &Server, id: u64) -> Value {
    let (status, v) = server
        .admin(
            Method::GET,
            &format!("/admin/tenants/demo/conversations/{id}/messages"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{v}");
    v
}

async fn set_mask(server: &Server, mask: bool) {
    let (status, v) = server
        .admin(
            Method::PUT,
            "/admin/tenants/demo/settings",
            Some(json!({ "mask": mask })),
        )
        .await;
    assert_eq!(status, 200, "{v}");
}

#[tokio::test]
async fn the_masking_setting_survives_restarts() {
    let dir = Server::new_dir("settings");
    let config = demo_config();
    let mut server = Server::start_in(dir.clone(), &config, &[]);
    set_mask(&server, false).await;
    server.kill();

    let mut server = Server::start_in(dir.clone(), &config, &[]);
    let id = server
        .customer_says("v1", "Ann", "card 4111 1111 1111 1111")
        .await;
    assert_eq!(
        texts(&transcript(&server, id).await),
        ["card 4111 1111 1111 1111"],
        "unmasked after a restart"
    );
    set_mask(&server, true).await;
    server.kill();

    let server = Server::start_in(dir, &config, &[]);
    let id = server
        .customer_says("v2", "Ben", "card 4111 1111 1111 1111")
        .await;
    assert_eq!(
        texts(&transcript(&server, id).await),
        ["card ************1111"],
        "masked again after a restart"
    );
}

async fn conversations(server: &Server) -> Value {
    let (status, v) = server
        .admin(Method::GET, "/admin/tenants/demo/conversations", None)
        .await;
    assert_eq!(status, 200, "{v}");
    v
}

async fn fail_next_commit(server: &Server) {
    let (status, v) = server
        .admin(Method::POST, "/admin/journal/fail-next", None)
        .await;
    assert_eq!(status, 200, "{v}");
}

/// The demo tenant in a folder of its own, and alice available.
async fn demo_with_alice_available(name: &str) -> (std::path::PathBuf, Server, AgentClient) {
    let dir = Server::new_dir(name);
    let server = Server::start_in(dir.clone(), &demo_config(), &[]);
    let mut alice = AgentClient::login(&server, "alice").await;
    alice.available().await;
    (dir, server, alice)
}

/// What memory held is what the journal holds: the conversations are the
/// same after a restart.
async fn assert_same_after_restart(mut server: Server, dir: std::path::PathBuf, before: Value) {
    server.kill();
    let server = Server::start_in(dir, &demo_config(), &[]);
    assert_eq!(conversations(&server).await, before);
}

#[tokio::test]
async fn a_failed_commit_leaves_nothing_applied() {
    let (dir, server, mut alice) = demo_with_alice_available("failed-commit").await;

    // A customer's first message whose commit fails: 503, and the engine
    // holds no conversation the journal does not.
    fail_next_commit(&server).await;
    let (status, v) = server.webchat_post("lost", "Lou", "hello?").await;
    assert_eq!(status, 503, "{v}");
    assert_eq!(conversations(&server).await, json!([]));
    let (_, me) = alice.call(Method::GET, "/api/me", None).await;
    assert_eq!(me["conversations"], json!([]), "no offer from a lost event");

    // The next conversation takes the id the journal gives it.
    let id = server.customer_says("v1", "Ann", "first question").await;
    assert_eq!(id, 1);
    alice.events.next_of("offer").await;

    // An agent's action whose commit fails is not applied either.
    fail_next_commit(&server).await;
    let (status, v) = alice
        .post(&format!("/api/conversations/{id}/accept"), json!({}))
        .await;
    assert_eq!(status, 503, "{v}");
    let (_, me) = alice.call(Method::GET, "/api/me", None).await;
    assert_eq!(me["conversations"][0]["state"], "offered", "{me}");
    alice.accept(id).await;
    let before = conversations(&server).await;
    assert_eq!(before[0]["state"], "active", "{before}");

    assert_same_after_restart(server, dir, before).await;
}

/// A bug that panics under the engine lock, after the engine changed and
/// before the journal holds it: that caller gets no answer, and the next
/// caller finds the engine rebuilt from the journal (no conversation the
/// journal does not hold, the ids it gives), not the half-changed one.
#[tokio::test]
async fn a_panic_under_the_engine_lock_leaves_nothing_applied() {
    let (dir, server, mut alice) = demo_with_alice_available("engine-panic").await;

    let (status, v) = server
        .admin(Method::POST, "/admin/engine/panic-next", None)
        .await;
    assert_eq!(status, 200, "{v}");
    let lost = server
        .http
        .post(server.url("/channels/webchat/demo/messages"))
        .json(&json!({"visitor": "lost", "text": "hello?", "name": "Lou"}))
        .send()
        .await;
    // An error is the connection dropped: no answer at all.
    if let Ok(r) = lost {
        assert!(
            r.status().is_server_error(),
            "a command that panicked was answered {}",
            r.status()
        );
    }
    assert_eq!(conversations(&server).await, json!([]));
    let (_, me) = alice.call(Method::GET, "/api/me", None).await;
    assert_eq!(me["conversations"], json!([]), "no offer from a lost event");

    let id = server.customer_says("v1", "Ann", "first question").await;
    assert_eq!(
        id, 1,
        "the next conversation takes the id the journal gives it"
    );
    alice.events.next_of("offer").await;
    alice.accept(id).await;
    let before = conversations(&server).await;
    assert_eq!(before[0]["state"], "active", "{before}");

    assert_same_after_restart(server, dir, before).await;
}

/// A stand-in Graph API that refuses every message (an expired token).
async fn refusing_graph_api() -> String {
    let app = axum::Router::new().route(
        "/v21.0/me/messages",
        post(|| async {
            (
                axum::http::StatusCode::BAD_REQUEST,
                axum::Json(json!({"error": {"message": "Error validating access token", "type": "OAuthException", "code": 190}})),
            )
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}")
}

#[tokio::test]
async fn a_refused_reply_is_journaled_shown_to_the_agent_and_kept_in_the_transcript() {
    let graph = refusing_graph_api().await;
    let env = [("SWITCHBOARD_GRAPH_API_BASE", graph.as_str())];
    let dir = Server::new_dir("delivery-failed");
    let config = demo_config();
    let mut server = Server::start_in(dir.clone(), &config, &env);
    let mut alice = AgentClient::login(&server, "alice").await;
    alice.available().await;
    server
        .messenger_says("PSID-9", "m.1", "where is my order?")
        .await;
    let id = alice.events.next_of("offer").await["conversation"]
        .as_u64()
        .expect("id");
    alice.accept(id).await;
    alice
        .ok(
            &format!("/api/conversations/{id}/messages"),
            json!({"text": "Let me check"}),
        )
        .await;
    let failed = alice.events.next_of("delivery_failed").await;
    assert_eq!(failed["conversation"].as_u64(), Some(id));
    assert_eq!(failed["channel"], "messenger");
    assert_eq!(failed["reason"], "rejected");
    assert_eq!(failed["message"], 1, "the reply's place in the transcript");
    let notice = failed["text"].as_str().expect("notice").to_string();
    let expected = [
        "where is my order?".to_string(),
        "Let me check".to_string(),
        notice.clone(),
    ];
    assert_eq!(texts(&transcript(&server, id).await), expected);
    // Done with in the outbox too (else a restart would try it again).
    server_outbox_empty(&dir).await;
    server.kill();

    let server = Server::start_in(dir, &config, &env);
    let t = transcript(&server, id).await;
    assert_eq!(texts(&t), expected, "still there after a restart");
    assert_eq!(t[2]["from"], "system");
    // The reply itself stays marked, with why: the desktop's bubble after
    // a reload, and the admin transcript.
    assert_eq!(t[1]["failed"], "rejected", "{t}");
    assert!(t[0].get("failed").is_none(), "{t}");
    let alice = AgentClient::login(&server, "alice").await;
    let (_, me) = alice.call(reqwest::Method::GET, "/api/me", None).await;
    let conv = me["conversations"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["conversation"] == id))
        .expect("the conversation is the agent's");
    assert_eq!(conv["messages"][1]["failed"], "rejected", "{conv}");
}
