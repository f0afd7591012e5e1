//! Typing indicators between an agent and a web chat visitor: the agent's
//! typing reaches the visitor's page, the visitor's reaches the agents of
//! its conversation, nobody else's; neither is journaled.

mod common;
use common::*;
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn typing_goes_both_ways_and_only_to_the_conversations_people() {
    let server = Server::start(&demo_config());
    let mut alice = AgentClient::login(&server, "alice").await;
    alice.available().await;
    let mut bob = AgentClient::login(&server, "bob").await;
    let customer = Customer::webchat("v-typing", "Lea");
    let id = server.offered(&mut alice, customer, "hello").await;
    let mut visitor = server.visitor_events("v-typing").await;

    // Not before the conversation is the agent's.
    let (status, _) = alice
        .call(
            Method::POST,
            &format!("/api/conversations/{id}/typing"),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, 404, "offered, not yet taken");
    alice.accept(id).await;

    // The agent types: the visitor's page is told who.
    let (status, _) = alice
        .call(
            Method::POST,
            &format!("/api/conversations/{id}/typing"),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, 204);
    let t = visitor.next_of("typing").await;
    assert_eq!(t["conversation"], id);
    assert_eq!(t["agent"], "Alice Martin");
    // Another agent cannot make the visitor see anything.
    let (status, _) = bob
        .call(
            Method::POST,
            &format!("/api/conversations/{id}/typing"),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, 404);

    // The visitor types: alice sees it, bob does not.
    visitor.send(&json!({"type": "typing"})).await;
    let c = alice.events.next_of("customer_typing").await;
    assert_eq!(c["conversation"], id);
    // A marker after it: bob's socket got nothing in between.
    bob.available().await;
    assert!(
        !bob.events
            .seen
            .iter()
            .any(|e| e["type"] == "customer_typing"),
        "{:?}",
        bob.events.seen
    );

    // Nothing of it in the transcript.
    let (_, transcript) = server
        .admin(
            Method::GET,
            &format!("/admin/tenants/demo/conversations/{id}/messages"),
            None,
        )
        .await;
    assert_eq!(transcript.as_array().map(Vec::len), Some(1), "{transcript}");
}
