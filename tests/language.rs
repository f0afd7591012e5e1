//! A tenant's language: the system lines of its transcripts and the
//! notices its web chat customers get follow `language` ("fr" here), and
//! stay as written in the journal.

mod common;
use common::*;
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn a_french_tenant_writes_its_system_lines_in_french() {
    let config = demo_config().replace(
        "default_queue = \"support\"\n",
        "default_queue = \"support\"\nlanguage = \"fr\"\n",
    );
    assert_ne!(config, demo_config());
    let server = Server::start(&config);
    let mut alice = AgentClient::login(&server, "alice").await;
    alice.available().await;
    let id = server.customer_says("v-fr", "Jeanne", "Bonjour").await;
    let mut visitor = server.visitor_events("v-fr").await;
    alice.events.next_of("offer").await;
    alice.accept(id).await;
    alice
        .ok(
            &format!("/api/conversations/{id}/transfer"),
            json!({"queue": "billing"}),
        )
        .await;
    let notice = visitor.next_of("notice").await;
    assert_eq!(
        notice["text"],
        "Vous allez être mis en relation avec un autre conseiller. Merci de patienter."
    );
    let (_, transcript) = server
        .admin(
            Method::GET,
            &format!("/admin/tenants/demo/conversations/{id}/messages"),
            None,
        )
        .await;
    let lines: Vec<&str> = transcript
        .as_array()
        .expect("transcript")
        .iter()
        .filter(|m| m["from"] == "system")
        .filter_map(|m| m["text"].as_str())
        .collect();
    assert_eq!(
        lines,
        ["Alice Martin a transféré la conversation vers la file Billing"],
        "{transcript}"
    );
}
