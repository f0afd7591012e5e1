//! Issue 15, presence towards Messenger customers: the agent opening a
//! conversation sends `mark_seen`, its typing sends `typing_on`, to the
//! stand-in Send API with the page token and `appsecret_proof`; at most
//! one of each per conversation every few seconds by the server's (test)
//! clock; a refused action is counted and never shown as a failed
//! message.

mod common;
#[path = "common/graph.rs"]
mod graph;
use common::*;
use reqwest::Method;
use serde_json::{json, Value};

/// The sender actions the stand-in accepted: (path, PSID, action).
fn actions(g: &graph::Graph) -> Vec<(String, String, String)> {
    g.actions
        .lock()
        .expect("lock")
        .iter()
        .map(|c| {
            assert_eq!(
                c.query.get("appsecret_proof"),
                Some(&graph::proof(graph::APP_SECRET, graph::ACCESS_TOKEN))
            );
            let keys: Vec<&String> = c.body.as_object().expect("object").keys().collect();
            assert_eq!(keys, ["recipient", "sender_action"], "{}", c.body);
            (
                c.path.clone(),
                c.body["recipient"]["id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                c.body["sender_action"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .collect()
}

fn expect(list: &[(&str, &str)]) -> Vec<(String, String, String)> {
    list.iter()
        .map(|(psid, a)| {
            (
                "/v21.0/me/messages".to_string(),
                psid.to_string(),
                a.to_string(),
            )
        })
        .collect()
}

async fn metric(server: &Server, action: &str, reason: &str) -> u64 {
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
        .filter(|l| {
            l.starts_with("switchboard_sender_action_failures")
                && l.contains(&format!("action=\"{action}\""))
                && l.contains(&format!("reason=\"{reason}\""))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[tokio::test]
async fn opening_and_typing_send_mark_seen_and_typing_on_at_most_every_few_seconds() {
    let (base, g) = graph::start().await;
    let server = Server::start_with_env(&demo_config(), &[("SWITCHBOARD_GRAPH_API_BASE", &base)]);
    let mut alice = AgentClient::login(&server, "alice").await;
    alice.available().await;
    let customer = Customer::messenger("PSID-A", "m.1");
    let id = server.offered(&mut alice, customer, "hello").await;
    // Not taking part yet: refused, nothing sent.
    let (status, _) = alice
        .post(&format!("/api/conversations/{id}/seen"), json!({}))
        .await;
    assert_eq!(status, 404);
    alice.accept(id).await;

    let seen = format!("/api/conversations/{id}/seen");
    let typing = format!("/api/conversations/{id}/typing");
    for path in [&seen, &typing, &typing, &seen] {
        let (status, v) = alice.post(path, json!({})).await;
        assert_eq!(status, 204, "{path}: {v}");
    }
    // One of each: the second of each kind came within the interval.
    assert_eq!(
        actions(&g),
        expect(&[("PSID-A", "mark_seen"), ("PSID-A", "typing_on")])
    );

    // Just before the interval ends: still held back.
    server.advance(4_900).await;
    assert_eq!(alice.post(&typing, json!({})).await.0, 204);
    assert_eq!(actions(&g).len(), 2);
    // Once it has passed, the next one goes.
    server.advance(100).await;
    assert_eq!(alice.post(&typing, json!({})).await.0, 204);
    assert_eq!(
        actions(&g),
        expect(&[
            ("PSID-A", "mark_seen"),
            ("PSID-A", "typing_on"),
            ("PSID-A", "typing_on")
        ])
    );
    // No message went to the customer; the transcript is untouched.
    assert!(g.sent.lock().expect("lock").is_empty());
    assert!(g.bad_proofs.lock().expect("lock").is_empty());
}

#[tokio::test]
async fn a_refused_sender_action_is_counted_and_never_a_failed_message() {
    let (base, g) = graph::start().await;
    let server = Server::start_with_env(&demo_config(), &[("SWITCHBOARD_GRAPH_API_BASE", &base)]);
    let customer = Customer::messenger("PSID-B", "m.1");
    let (alice, id) = server
        .handled_conversation("alice", customer, "hello")
        .await;
    *g.refuse_actions.lock().expect("lock") = 1;
    let (status, _) = alice
        .post(&format!("/api/conversations/{id}/typing"), json!({}))
        .await;
    assert_eq!(status, 204, "the agent is not bothered");
    assert!(actions(&g).is_empty());
    assert_eq!(metric(&server, "typing_on", "rejected").await, 1);
    let (_, me) = alice.call(Method::GET, "/api/me", None).await;
    let conv = me["conversations"]
        .as_array()
        .and_then(|l| l.iter().find(|c| c["conversation"] == id))
        .cloned()
        .unwrap_or(Value::Null);
    let texts: Vec<&str> = conv["messages"]
        .as_array()
        .expect("transcript")
        .iter()
        .filter_map(|m| m["text"].as_str())
        .collect();
    assert_eq!(texts, ["hello"], "no failure line in the transcript");
    assert!(!alice
        .events
        .seen
        .iter()
        .any(|e| e["type"] == "delivery_failed"));
    // mark_seen is a kind of its own: it goes.
    assert_eq!(
        alice
            .post(&format!("/api/conversations/{id}/seen"), json!({}))
            .await
            .0,
        204
    );
    assert_eq!(actions(&g), expect(&[("PSID-B", "mark_seen")]));
    assert!(!server.logs().contains("PSID-B"), "PSIDs are not logged");
}
