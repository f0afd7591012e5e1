//! The customer's history on the agent's side: a returning customer's
//! earlier conversations (when, queue, agent, wrap-up reason) and their
//! transcripts on demand, masked, from the journal; nobody else's.

mod common;
use common::*;
use reqwest::Method;
use serde_json::{json, Value};

/// Take the offer of conversation `id`, end it and wrap it up with the
/// first reason offered; returns that reason's label.
async fn handle_to_the_end(agent: &mut AgentClient, id: u64) -> String {
    agent.accept(id).await;
    agent
        .ok(
            &format!("/api/conversations/{id}/messages"),
            json!({"text": "Done, have a nice day"}),
        )
        .await;
    agent
        .ok(&format!("/api/conversations/{id}/end"), json!({}))
        .await;
    let w = agent.events.next_of("wrapup_required").await;
    let first = &w["reasons"][0];
    let code = first["code"].as_str().expect("a reason code").to_string();
    agent
        .ok(
            &format!("/api/conversations/{id}/wrapup"),
            json!({"reason": code}),
        )
        .await;
    first["label"].as_str().expect("a reason label").to_string()
}

#[tokio::test]
async fn a_returning_customer_shows_its_earlier_conversations_masked() {
    let server = Server::start(&demo_config());
    let mut alice = AgentClient::login(&server, "alice").await;
    alice.available().await;
    let bob = AgentClient::login(&server, "bob").await;

    // A first conversation, with a card number in it, handled and closed.
    let first = server
        .customer_says("v-7", "Jeanne", "my card is 4111 1111 1111 1111")
        .await;
    assert_eq!(alice.events.next_of("offer").await["conversation"], first);
    let label = handle_to_the_end(&mut alice, first).await;
    // Archived after the retention (the demo keeps closed ones an hour).
    server.advance(3_600_001).await;
    let (status, _) = alice
        .call(Method::GET, &format!("/api/conversations/{first}"), None)
        .await;
    assert_eq!(status, 404, "archived: no longer live");

    // The same customer comes back; another one arrives too.
    let again = server
        .customer_says("v-7", "Jeanne", "it happened again")
        .await;
    assert_ne!(again, first);
    assert_eq!(alice.events.next_of("offer").await["conversation"], again);
    alice.accept(again).await;
    let (status, h) = alice
        .call(
            Method::GET,
            &format!("/api/conversations/{again}/history"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{h}");
    let past = h["conversations"].as_array().expect("a list");
    assert_eq!(past.len(), 1, "{h}");
    assert_eq!(past[0]["conversation"], first);
    assert_eq!(past[0]["queue"], "support");
    assert_eq!(past[0]["agent"], "alice");
    assert_eq!(past[0]["agent_name"], "Alice Martin");
    assert_eq!(past[0]["wrapup_reasons"], json!([label]));
    assert!(past[0]["opened_at"].as_u64() < past[0]["closed_at"].as_u64());

    // Its transcript on demand, masked as agents see everything.
    let (status, t) = alice
        .call(
            Method::GET,
            &format!("/api/conversations/{again}/history/{first}"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{t}");
    let texts: Vec<&str> = t["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter_map(|m| m["text"].as_str())
        .collect();
    assert!(texts.iter().any(|x| x.starts_with("my card is")), "{t}");
    assert!(texts.contains(&"Done, have a nice day"), "{t}");
    let all = t.to_string();
    assert!(
        !all.contains("4111 1111 1111 1111"),
        "card number unmasked: {all}"
    );
    assert!(all.contains("1111"), "last four kept: {all}");

    // Nobody else's: another agent, a guessed id, another customer.
    for path in [
        format!("/api/conversations/{again}/history"),
        format!("/api/conversations/{again}/history/{first}"),
    ] {
        let (status, body) = bob.call(Method::GET, &path, None).await;
        assert_eq!(status, 404, "bob {path}: {body}");
    }
    let (status, _) = alice
        .call(
            Method::GET,
            &format!("/api/conversations/{again}/history/{again}"),
            None,
        )
        .await;
    assert_eq!(status, 404, "the open conversation is not history");
    let other = server.customer_says("v-8", "Paul", "hello").await;
    alice
        .events
        .next_where("offer", |o| o["conversation"] == other)
        .await;
    alice.accept(other).await;
    let (_, h) = alice
        .call(
            Method::GET,
            &format!("/api/conversations/{other}/history"),
            None,
        )
        .await;
    assert_eq!(h["conversations"], json!([]), "another customer has none");
    let (status, _) = alice
        .call(
            Method::GET,
            &format!("/api/conversations/{other}/history/{first}"),
            None,
        )
        .await;
    assert_eq!(status, 404, "not this customer's");

    // The history survives a restart.
    let dir = server.dir.clone();
    drop(server);
    let server = Server::start_in(dir, &demo_config(), &[]);
    let alice = AgentClient::login(&server, "alice").await;
    let (_, h): (u16, Value) = alice
        .call(
            Method::GET,
            &format!("/api/conversations/{again}/history"),
            None,
        )
        .await;
    assert_eq!(h["conversations"][0]["conversation"], first, "{h}");
}
