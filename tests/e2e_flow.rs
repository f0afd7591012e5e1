//! The whole agent flow over real HTTP and WebSockets on loopback, against
//! the real binary: web chat customer → offer → accept → messages →
//! transfer → conference → leave → end → wrap-up; and RONA.

mod common;
use common::*;
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn whole_flow_from_web_chat_to_wrap_up() {
    let server = Server::start(&demo_config());
    let mut alice = AgentClient::login(&server, "alice").await;
    alice.available().await;
    let mut bob = AgentClient::login(&server, "bob").await;
    bob.available().await;
    let mut carol = AgentClient::login(&server, "carol").await;
    carol.available().await;

    // The customer writes; alice (longest idle) gets the offer. The
    // visitor's socket uses the token the server issued for that message.
    let id = server
        .customer_says("v-42", "Jeanne Dupont", "Bonjour, ma facture est fausse")
        .await;
    let mut visitor = server.visitor_events("v-42").await;
    let offer = alice.events.next_of("offer").await;
    assert_eq!(offer["conversation"], id);
    assert_eq!(offer["queue"], "support");
    assert_eq!(offer["source"], "Web chat");
    assert_eq!(offer["preview"], "Bonjour, ma facture est fausse");
    let received = offer["received_at"].as_str().expect("received_at");
    assert!(
        time::OffsetDateTime::parse(received, &time::format_description::well_known::Rfc3339)
            .is_ok(),
        "received_at is RFC 3339: {received}"
    );

    // Accept, then talk both ways.
    alice.accept(id).await;
    let started = alice.events.next_of("conversation_started").await;
    assert_eq!(started["conversation"], id);
    assert_eq!(
        started["messages"][0]["text"],
        "Bonjour, ma facture est fausse"
    );
    assert_eq!(
        visitor.next_of("agent_joined").await["agent"],
        "Alice Martin"
    );
    alice
        .ok(
            &format!("/api/conversations/{id}/messages"),
            json!({"text": "Je regarde cela"}),
        )
        .await;
    let reply = visitor.next_of("message").await;
    assert_eq!(reply["text"], "Je regarde cela");
    assert_eq!(reply["from"], "agent");
    server.customer_says("v-42", "Jeanne Dupont", "Merci").await;
    let m = alice
        .events
        .next_where("message", |m| m["from"] == "customer")
        .await;
    assert_eq!(m["text"], "Merci");
    assert_eq!(m["author"], "Jeanne Dupont");

    // Transfer to bob: alice owes a wrap-up, bob gets the offer and the history.
    alice
        .ok(
            &format!("/api/conversations/{id}/transfer"),
            json!({"agent": "bob"}),
        )
        .await;
    let w = alice.events.next_of("wrapup_required").await;
    assert!(w["reasons"].as_array().is_some_and(|r| !r.is_empty()));
    let offer = bob.events.next_of("offer").await;
    assert_eq!(offer["kind"], "transfer");
    bob.accept(id).await;
    let started = bob.events.next_of("conversation_started").await;
    let texts: Vec<&str> = started["messages"]
        .as_array()
        .expect("transcript")
        .iter()
        .filter_map(|m| m["text"].as_str())
        .collect();
    assert!(
        texts.contains(&"Je regarde cela") && texts.contains(&"Merci"),
        "{texts:?}"
    );
    alice
        .ok(
            &format!("/api/conversations/{id}/wrapup"),
            json!({"reason": "transferred"}),
        )
        .await;

    // Conference with carol, who then leaves.
    bob.ok(
        &format!("/api/conversations/{id}/conference"),
        json!({"agent": "carol"}),
    )
    .await;
    bob.events.next_of("conference_requested").await;
    let invite = carol.events.next_of("offer").await;
    assert_eq!(invite["kind"], "conference");
    carol.accept(id).await;
    bob.events.next_of("conference_started").await;
    carol.events.next_of("conference_started").await;
    let joined = bob
        .events
        .next_where("message", |m| m["from"] == "system")
        .await;
    assert!(joined["text"]
        .as_str()
        .is_some_and(|t| t.contains("Carol Smith joined")));
    carol
        .ok(
            &format!("/api/conversations/{id}/messages"),
            json!({"text": "Bonjour, Carol ici"}),
        )
        .await;
    assert_eq!(
        visitor.next_of("message").await["text"],
        "Bonjour, Carol ici"
    );
    carol
        .ok(
            &format!("/api/conversations/{id}/conference/leave"),
            json!({}),
        )
        .await;
    assert_eq!(
        bob.events.next_of("participant_left").await["agent"],
        "carol"
    );

    // Bob ends and wraps up; a reason not in the list is refused.
    bob.ok(&format!("/api/conversations/{id}/end"), json!({}))
        .await;
    bob.events.next_of("conversation_ended").await;
    visitor.next_of("conversation_ended").await;
    let w = bob.events.next_of("wrapup_required").await;
    let code = w["reasons"][0]["code"]
        .as_str()
        .expect("a reason code")
        .to_string();
    let (status, _) = bob
        .post(
            &format!("/api/conversations/{id}/wrapup"),
            json!({"reason": "no-such-reason"}),
        )
        .await;
    assert_eq!(status, 422);
    bob.ok(
        &format!("/api/conversations/{id}/wrapup"),
        json!({"reason": code}),
    )
    .await;

    let (status, list) = server
        .admin(Method::GET, "/admin/tenants/demo/conversations", None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(list[0]["id"], id);
    assert_eq!(list[0]["state"], "wrapped_up");
    let (_, transcript) = server
        .admin(
            Method::GET,
            &format!("/admin/tenants/demo/conversations/{id}/messages"),
            None,
        )
        .await;
    let froms: Vec<&str> = transcript
        .as_array()
        .expect("transcript")
        .iter()
        .filter_map(|m| m["from"].as_str())
        .collect();
    assert_eq!(froms.first(), Some(&"customer"));
    assert!(froms.contains(&"agent") && froms.contains(&"system"));
}

#[tokio::test]
async fn unanswered_offer_puts_the_agent_in_rona_and_reaches_the_next_agent() {
    let server = Server::start(&demo_config());
    let mut alice = AgentClient::login(&server, "alice").await;
    alice.available().await;
    let mut bob = AgentClient::login(&server, "bob").await;
    bob.available().await;

    let id = server.customer_says("v-7", "Sam", "hello?").await;
    assert_eq!(alice.events.next_of("offer").await["conversation"], id);
    // The demo queue gives 30 s to accept; move the clock past it.
    server.advance(30_001).await;
    let rescinded = alice.events.next_of("offer_rescinded").await;
    assert_eq!(rescinded["reason"], "timeout");
    assert_eq!(alice.events.next_of("agent_state").await["state"], "rona");
    assert_eq!(bob.events.next_of("offer").await["conversation"], id);

    // Alice stays in RONA (no offers) until she sets Available herself.
    let (_, me) = alice.call(Method::GET, "/api/me", None).await;
    assert_eq!(me["state"], "rona");
    let (status, _) = alice
        .post(&format!("/api/conversations/{id}/accept"), json!({}))
        .await;
    assert_eq!(status, 404, "the offer is no longer hers");
    alice.available().await;
}

#[tokio::test]
async fn bad_input_gets_clear_errors() {
    let server = Server::start(&demo_config());
    let alice = AgentClient::login(&server, "alice").await;
    let (status, body) = alice.post("/api/conversations/1/accept", json!({})).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (404, Some("conversation not found"))
    );
    let resp = server
        .http
        .post(server.url("/channels/webchat/demo/messages"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status().as_u16(), 400);
    let resp = server
        .http
        .post(server.url("/api/login"))
        .json(&json!({"tenant": "demo", "agent": "alice", "password": "wrong"}))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status().as_u16(), 401);
    let resp = server
        .http
        .get(server.url("/api/me"))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status().as_u16(), 401);
    let big = "x".repeat(300 * 1024);
    let resp = server
        .http
        .post(server.url("/channels/webchat/demo/messages"))
        .json(&json!({"visitor": "v", "text": big}))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status().as_u16(), 413);
    let (status, _) = server
        .admin(Method::GET, "/admin/tenants/other/conversations", None)
        .await;
    assert_eq!(status, 404);
    let resp = server
        .http
        .get(server.url("/admin/tenants/demo/conversations"))
        .bearer_auth("wrong")
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status().as_u16(), 401);
}

#[tokio::test]
async fn metrics_and_openapi_describe_the_running_server() {
    let server = Server::start(&demo_config());
    server.customer_says("m-1", "Max", "hello").await;
    let text = server
        .http
        .get(server.url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        text.contains(
            r#"switchboard_messages_total{tenant="demo",channel="webchat",direction="inbound"} 1"#
        ),
        "{text}"
    );
    assert!(
        text.contains(r#"switchboard_queue_depth{tenant="demo",queue="support"} 1"#),
        "{text}"
    );
    assert!(!text.contains("hello"), "no customer text in metrics");
    assert!(text.contains("switchboard_routing_seconds_count"), "{text}");
    assert!(
        text.contains(
            r#"switchboard_script_errors{tenant="demo",script="routing/longest_idle.lua"} 0"#
        ),
        "{text}"
    );
    let api: serde_json::Value = server
        .http
        .get(server.url("/api/openapi.json"))
        .send()
        .await
        .expect("openapi")
        .json()
        .await
        .expect("valid JSON");
    for path in [
        "/api/login",
        "/api/agent/events",
        "/api/conversations/{id}/wrapup",
        "/channels/webchat/{tenant}/messages",
        "/admin/tenants/{tenant}/conversations",
    ] {
        assert!(api["paths"][path].is_object(), "{path} documented");
    }
}

#[tokio::test]
async fn deleting_a_queue_interrupts_its_conversations_and_only_end_remains() {
    let server = Server::start(&demo_config());
    let (mut alice, id) = server
        .handled_conversation("alice", Customer::webchat("q-1", "Quinn"), "help")
        .await;
    let (status, body) = server
        .admin(Method::DELETE, "/admin/tenants/demo/queues/support", None)
        .await;
    assert_eq!((status, body["interrupted"].as_u64()), (200, Some(1)));
    let alert = alice.events.next_of("conversation_interrupted").await;
    assert!(alert["reason"]
        .as_str()
        .is_some_and(|r| r.contains("Support")));
    let (status, _) = alice
        .post(
            &format!("/api/conversations/{id}/messages"),
            json!({"text": "still there?"}),
        )
        .await;
    assert_eq!(status, 409);
    let (_, me) = alice.call(Method::GET, "/api/me", None).await;
    assert_eq!(me["conversations"][0]["state"], "interrupted");
    assert!(me["conversations"][0]["interrupted_reason"].is_string());
    alice
        .ok(&format!("/api/conversations/{id}/end"), json!({}))
        .await;
    alice.events.next_of("wrapup_required").await;
    // The deleted queue is gone for new conversations and transfers.
    let (_, dir) = alice.call(Method::GET, "/api/directory", None).await;
    assert!(!dir["queues"].to_string().contains("support"));
    // A customer writing to the deleted queue's entry point is not lost.
    alice
        .ok(
            &format!("/api/conversations/{id}/wrapup"),
            json!({"reason": "other"}),
        )
        .await;
    let next = server.customer_says("q-2", "Rae", "hello?").await;
    let offer = alice
        .events
        .next_where("offer", |o| o["conversation"] == next)
        .await;
    assert_eq!(offer["queue"], "billing");
}
