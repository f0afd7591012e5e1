//! Messenger webhooks as Meta (or someone holding a leaked app secret, or a
//! buggy proxy) may send them: events of the wrong shape are skipped and
//! counted, never stored under a made-up customer id, and a batch larger
//! than the adapter takes at once is stored whole, in chunks, instead of a
//! 503 that Meta would redeliver forever. Signed webhooks against the real
//! binary.

mod common;
use common::*;
use reqwest::Method;
use serde_json::{json, Value};

async fn deliver(server: &Server, body: &str) -> (u16, String) {
    server.messenger_deliver(body).await
}

fn page(messaging: Vec<Value>) -> String {
    json!({"object": "page", "entry": [{"id": "1000", "time": 1, "messaging": messaging}]})
        .to_string()
}

fn message(psid: &str, mid: &str, text: &str) -> Value {
    json!({"sender": {"id": psid}, "recipient": {"id": "1000"}, "timestamp": 1,
           "message": {"mid": mid, "text": text}})
}

async fn conversations(server: &Server) -> Vec<Value> {
    let (status, list) = server
        .admin(Method::GET, "/admin/tenants/demo/conversations", None)
        .await;
    assert_eq!(status, 200);
    list.as_array().cloned().unwrap_or_default()
}

async fn skipped_metric(server: &Server) -> u64 {
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
        .find(|l| {
            l.starts_with("switchboard_channel_events_skipped_total")
                && l.contains("channel=\"messenger\"")
                && l.contains("tenant=\"demo\"")
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn events_of_the_wrong_shape_are_skipped_and_counted_never_stored() {
    let server = Server::start(&demo_config());
    let body = page(vec![
        json!({"sender": {"id": {"nested": "object"}}, "message": {"mid": "m.1", "text": "a"}}),
        json!({"sender": {"id": 1234567}, "message": {"mid": "m.2", "text": "b"}}),
        json!({"sender": "just-a-string", "message": {"mid": "m.3", "text": "c"}}),
        json!({"sender": {"id": "2001"}, "timestamp": 1}),
        json!({"sender": {"id": "2002"}, "message": "not an object"}),
        json!({"sender": {"id": "2003"}, "message": {"mid": "m.6", "text": {"t": 1}}}),
        json!({"message": {"mid": "m.7", "text": "no sender"}}),
        json!(42),
        message("3001", "m.9", "a good one"),
        json!({"sender": {"id": "3002"}, "read": {"watermark": 1}}),
        message("3003", "m.11", "another good one"),
    ]);
    let (status, answer) = deliver(&server, &body).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer, "EVENT_RECEIVED");

    let list = conversations(&server).await;
    let mut customers: Vec<&str> = list.iter().filter_map(|c| c["customer"].as_str()).collect();
    customers.sort_unstable();
    assert_eq!(customers, ["3001", "3003"], "only the good events");
    assert_eq!(skipped_metric(&server).await, 8);

    // A body whose entry list is not a list: acknowledged, counted, nothing
    // stored (a 5xx would only make Meta send it again).
    let (status, _) = deliver(&server, r#"{"object":"page","entry":{"id":"1000"}}"#).await;
    assert_eq!(status, 200);
    assert_eq!(skipped_metric(&server).await, 9);
    assert_eq!(conversations(&server).await.len(), 2);
}

#[tokio::test]
async fn a_batch_bigger_than_the_adapter_takes_is_stored_whole_in_chunks() {
    let server = Server::start(&demo_config());
    // 1,200 messages from 12 customers: more than a script may return from
    // one call (1,000 events).
    const CUSTOMERS: usize = 12;
    const PER_CUSTOMER: usize = 100;
    let mut events = Vec::new();
    for i in 0..PER_CUSTOMER {
        for c in 0..CUSTOMERS {
            events.push(message(
                &format!("{}", 5000 + c),
                &format!("m.{c}.{i}"),
                &format!("c{c} n{i:03}"),
            ));
        }
    }
    let body = page(events);
    let (status, answer) = deliver(&server, &body).await;
    assert_eq!(status, 200, "{answer}");

    check_every_message(&server, CUSTOMERS, PER_CUSTOMER).await;
    // Meta redelivers the same batch: nothing is stored twice.
    let (status, _) = deliver(&server, &body).await;
    assert_eq!(status, 200);
    check_every_message(&server, CUSTOMERS, PER_CUSTOMER).await;
}

/// Every message of the big batch is stored, in order, once per customer.
async fn check_every_message(server: &Server, customers: usize, per_customer: usize) {
    let list = conversations(server).await;
    assert_eq!(list.len(), customers, "one conversation per customer");
    for conv in &list {
        let id = conv["id"].as_u64().expect("id");
        let c = conv["customer"]
            .as_str()
            .and_then(|s| s.parse::<usize>().ok())
            .expect("customer")
            - 5000;
        let (_, msgs) = server
            .admin(
                Method::GET,
                &format!("/admin/tenants/demo/conversations/{id}/messages"),
                None,
            )
            .await;
        let texts: Vec<String> = msgs
            .as_array()
            .expect("messages")
            .iter()
            .filter_map(|m| m["text"].as_str().map(str::to_string))
            .collect();
        let want: Vec<String> = (0..per_customer).map(|i| format!("c{c} n{i:03}")).collect();
        assert_eq!(texts, want, "customer {c}");
    }
}
