//! Issue 15, "who the customer is", against the real binary and a stand-in
//! Graph API on loopback: a new Messenger customer's name comes from the
//! User Profile API (asked once, cached, masked like any name), every Graph
//! API call carries `appsecret_proof`, and a profile that does not come in
//! time leaves the name "Customer" without holding the offer, the reason
//! counted.

mod common;
#[path = "common/graph.rs"]
mod graph;
use common::*;
use serde_json::json;
use std::time::{Duration, Instant};

async fn post_webhook(server: &Server, psid: &str, mid: &str, text: &str) {
    let (body, sig) = messenger_webhook(psid, mid, text);
    let resp = server
        .http
        .post(server.url("/channels/messenger/demo/webhook"))
        .header("content-type", "application/json")
        .header("X-Hub-Signature-256", sig)
        .body(body)
        .send()
        .await
        .expect("webhook");
    assert_eq!(resp.status().as_u16(), 200);
}

async fn metric(server: &Server, name: &str, reason: &str) -> u64 {
    let text = server
        .http
        .get(server.url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    text.lines()
        .filter(|l| l.starts_with(name) && l.contains(&format!("reason=\"{reason}\"")))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[tokio::test]
async fn a_new_messenger_customer_is_named_from_the_user_profile_api_with_appsecret_proof() {
    let (base, g) = graph::start().await;
    g.profiles
        .lock()
        .expect("lock")
        .insert("PSID-1".into(), ("Peter".into(), "Chang".into()));
    let server = Server::start_with_env(&demo_config(), &[("SWITCHBOARD_GRAPH_API_BASE", &base)]);
    let mut alice = AgentClient::login(&server, "alice").await;
    alice.available().await;

    post_webhook(&server, "PSID-1", "m.1", "hello").await;
    let offer = alice.events.next_of("offer").await;
    assert_eq!(offer["customer_name"], "Peter Chang");
    let id = offer["conversation"].as_u64().expect("id");
    {
        let calls = g.profile_calls.lock().expect("lock").clone();
        assert_eq!(calls.len(), 1, "{calls:?}");
        assert_eq!(calls[0].path, "/v21.0/PSID-1");
        assert_eq!(
            calls[0].query.get("fields").map(String::as_str),
            Some("first_name,last_name,profile_pic")
        );
    }

    // Cached: the next message asks nothing.
    post_webhook(&server, "PSID-1", "m.2", "still there?").await;
    alice
        .ok(&format!("/api/conversations/{id}/accept"), json!({}))
        .await;
    let started = alice.events.next_of("conversation_started").await;
    assert_eq!(started["messages"][1]["author"], "Peter Chang");
    assert_eq!(g.profile_calls.lock().expect("lock").len(), 1);

    // The Send API reply carries the proof too.
    alice
        .ok(
            &format!("/api/conversations/{id}/messages"),
            json!({"text": "Hi Peter"}),
        )
        .await;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while g.sent.lock().expect("lock").is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no Send API call; refused: {:?}",
            g.bad_proofs.lock().expect("lock")
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let sent = g.sent.lock().expect("lock").clone();
    assert_eq!(
        sent[0].query.get("appsecret_proof"),
        Some(&graph::proof(graph::APP_SECRET, graph::ACCESS_TOKEN))
    );
    assert!(g.bad_proofs.lock().expect("lock").is_empty());
    assert!(!server.logs().contains("Peter"), "names are not logged");
}

#[tokio::test]
async fn a_profile_that_does_not_come_in_time_leaves_customer_and_is_counted() {
    let (base, g) = graph::start().await;
    g.hang.lock().expect("lock").push("PSID-SLOW".into());
    let server = Server::start_with_env(&demo_config(), &[("SWITCHBOARD_GRAPH_API_BASE", &base)]);
    let mut alice = AgentClient::login(&server, "alice").await;
    alice.available().await;

    let t0 = Instant::now();
    post_webhook(&server, "PSID-SLOW", "m.1", "hello").await;
    let offer = alice.events.next_of("offer").await;
    let waited = t0.elapsed();
    assert_eq!(offer["customer_name"], "Customer");
    assert!(waited < Duration::from_millis(1900), "waited {waited:?}");
    assert_eq!(
        metric(&server, "switchboard_profile_lookup_failures", "timeout").await,
        1
    );

    // A PSID the API has no profile for: rejected, counted, "Customer".
    post_webhook(&server, "PSID-NONE", "m.2", "bonjour").await;
    let offer = alice
        .events
        .next_where("offer", |o| o["preview"] == "bonjour")
        .await;
    assert_eq!(offer["customer_name"], "Customer");
    assert_eq!(
        metric(&server, "switchboard_profile_lookup_failures", "rejected").await,
        1
    );
}

#[tokio::test]
async fn profile_names_are_masked_like_any_name() {
    let (base, g) = graph::start().await;
    g.profiles
        .lock()
        .expect("lock")
        .insert("PSID-M".into(), ("melissa@gmail.com".into(), "".into()));
    let server = Server::start_with_env(&demo_config(), &[("SWITCHBOARD_GRAPH_API_BASE", &base)]);
    let mut alice = AgentClient::login(&server, "alice").await;
    alice.available().await;
    post_webhook(&server, "PSID-M", "m.1", "hello").await;
    let offer = alice.events.next_of("offer").await;
    assert_eq!(offer["customer_name"], "m******@gmail.com");
}
