//! Issue 15, message status: Meta's `delivery` and `read` webhooks mark
//! the agent's replies delivered and read, against the real binary with
//! signed webhooks. Journaled: a redelivered receipt changes nothing, a
//! receipt never opens a conversation, and a restart keeps the marks.

mod common;
#[path = "common/graph.rs"]
mod graph;
use common::*;
use reqwest::Method;
use serde_json::{json, Value};

const HOUR: u64 = 3_600_000;

fn wall_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn receipt_webhook(psid: &str, kind: &str, watermark: u64) -> String {
    let inner = match kind {
        "delivery" => json!({"mids": ["m_stand_in"], "watermark": watermark}),
        _ => json!({"watermark": watermark}),
    };
    json!({"object": "page", "entry": [{"id": "1000", "time": 1, "messaging": [
        {"sender": {"id": psid}, "recipient": {"id": "1000"}, "timestamp": watermark, kind: inner}
    ]}]})
    .to_string()
}

async fn receipts_in_transcript(alice: &AgentClient, id: u64) -> Vec<Value> {
    let (status, me) = alice.call(Method::GET, "/api/me", None).await;
    assert_eq!(status, 200, "{me}");
    let conv = me["conversations"]
        .as_array()
        .expect("conversations")
        .iter()
        .find(|c| c["conversation"] == id)
        .cloned()
        .expect("the conversation");
    conv["messages"]
        .as_array()
        .expect("transcript")
        .iter()
        .map(|m| m["receipt"].clone())
        .collect()
}

#[tokio::test]
async fn delivery_and_read_webhooks_mark_the_agents_replies_once_and_survive_a_restart() {
    let dir = Server::new_dir("receipts");
    let config = demo_config();
    let (base, _graph) = graph::start().await;
    let env = [("SWITCHBOARD_GRAPH_API_BASE", base.as_str())];
    let mut server = Server::start_in(dir.clone(), &config, &env);
    let customer = Customer::messenger("PSID-R", "m.1");
    let (mut alice, id) = server
        .handled_conversation("alice", customer, "hello")
        .await;
    let say = |text: &'static str| json!({ "text": text });
    alice
        .ok(&format!("/api/conversations/{id}/messages"), say("first"))
        .await;
    // The second reply an hour later by the server's clock.
    server.advance(HOUR).await;
    alice
        .ok(&format!("/api/conversations/{id}/messages"), say("second"))
        .await;

    // Delivered up to half an hour from now: the first reply only.
    let delivered = receipt_webhook("PSID-R", "delivery", wall_ms() + HOUR / 2);
    assert_eq!(server.messenger_deliver(&delivered).await.0, 200);
    let ev = alice.events.next_of("receipt").await;
    assert_eq!(ev["conversation"], id);
    assert_eq!(ev["status"], "delivered");
    assert_eq!(ev["through"], 1);
    assert!(ev["at"].is_string(), "{ev}");

    // Meta redelivers it; another customer's read, with no conversation.
    assert_eq!(server.messenger_deliver(&delivered).await.0, 200);
    let stranger = receipt_webhook("PSID-NOBODY", "read", wall_ms() + 2 * HOUR);
    assert_eq!(server.messenger_deliver(&stranger).await.0, 200);
    let read = receipt_webhook("PSID-R", "read", wall_ms() + 2 * HOUR);
    assert_eq!(server.messenger_deliver(&read).await.0, 200);
    let ev = alice.events.next_of("receipt").await;
    assert_eq!(
        (ev["status"].as_str(), ev["through"].as_u64()),
        (Some("read"), Some(2)),
        "the redelivered receipt emitted nothing: {ev}"
    );
    assert!(
        !alice
            .events
            .seen
            .iter()
            .any(|e| e["type"] == "offer" && e["conversation"] != id),
        "a receipt opened no conversation"
    );
    let (_, queues) = alice.call(Method::GET, "/api/me", None).await;
    assert_eq!(
        queues["conversations"].as_array().map(Vec::len),
        Some(1),
        "{queues}"
    );
    assert_eq!(
        receipts_in_transcript(&alice, id).await,
        [Value::Null, json!("read"), json!("read")]
    );

    // Journaled: after a crash the transcript still shows them.
    server.kill();
    let server = Server::start_in(dir, &config, &env);
    let alice = AgentClient::reconnect(&server, "demo", "alice", &alice.token).await;
    assert_eq!(
        receipts_in_transcript(&alice, id).await,
        [Value::Null, json!("read"), json!("read")]
    );
    // And a receipt redelivered after the restart still changes nothing.
    assert_eq!(server.messenger_deliver(&read).await.0, 200);
    assert!(
        !server.logs().contains("PSID-R"),
        "customer ids are not logged"
    );
}

#[tokio::test]
async fn a_web_chat_visitor_reading_marks_the_agents_replies_read() {
    let server = Server::start(&demo_config());
    let customer = Customer::webchat("v1", "Ann");
    let (mut alice, id) = server
        .handled_conversation("alice", customer, "hello")
        .await;
    let mut visitor = server.visitor_events("v1").await;
    // Nothing written by the agent yet: a read mark changes nothing.
    visitor.send(&json!({"type": "read"})).await;
    alice
        .ok(
            &format!("/api/conversations/{id}/messages"),
            json!({"text": "Hi Ann"}),
        )
        .await;
    visitor.next_of("message").await;
    visitor.send(&json!({"type": "read"})).await;
    let ev = alice.events.next_of("receipt").await;
    assert_eq!(ev["conversation"], id);
    assert_eq!(ev["status"], "read");
    assert_eq!(ev["through"], 1);
    // Read again: nothing new. The next receipt is for the next reply.
    visitor.send(&json!({"type": "read"})).await;
    alice
        .ok(
            &format!("/api/conversations/{id}/messages"),
            json!({"text": "Anything else?"}),
        )
        .await;
    visitor.next_of("message").await;
    visitor.send(&json!({"type": "read"})).await;
    let ev = alice.events.next_of("receipt").await;
    assert_eq!(ev["through"], 2, "{ev}");
    assert_eq!(
        receipts_in_transcript(&alice, id).await,
        [Value::Null, json!("read"), json!("read")]
    );
}
