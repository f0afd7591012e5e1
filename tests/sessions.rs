//! Sessions that end: logout (one session or all), expiry and an agent's
//! desktop gone past the grace period close sockets and take back offers;
//! tokens only where they belong. Real HTTP and WebSockets over loopback;
//! timers through the test clock.

mod common;
use common::*;
use reqwest::Method;
use serde_json::{json, Value};

/// Close code of a socket whose session ended.
const SESSION_ENDED: u16 = 4001;

async fn me(server: &Server, token: &str) -> (u16, Value) {
    let resp = server
        .http
        .get(server.url("/api/me"))
        .bearer_auth(token)
        .send()
        .await
        .expect("me");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// An agent's state as another agent's directory shows it.
async fn state_of(viewer: &AgentClient, agent: &str) -> String {
    let (_, dir) = viewer.call(Method::GET, "/api/directory", None).await;
    dir["agents"]
        .as_array()
        .and_then(|a| a.iter().find(|x| x["id"] == agent))
        .and_then(|x| x["state"].as_str())
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn logout_closes_that_sessions_socket_and_leaves_the_other_session_whole() {
    let server = Server::start(&demo_config());
    let mut laptop = AgentClient::login(&server, "alice").await;
    let mut phone = AgentClient::login(&server, "alice").await;
    let bob = AgentClient::login(&server, "bob").await;
    let (status, _) = laptop.post("/api/logout", json!({})).await;
    assert_eq!(status, 204);
    assert_eq!(laptop.events.closed_by_server().await, Some(SESSION_ENDED));
    assert_eq!(me(&server, &laptop.token).await.0, 401);
    // The other session is still whole: it reads and acts.
    assert_eq!(me(&server, &phone.token).await.0, 200);
    phone.available().await;
    assert_eq!(state_of(&bob, "alice").await, "available");
    // The last session's logout logs the agent out.
    let (status, _) = phone.post("/api/logout", json!({})).await;
    assert_eq!(status, 204);
    assert_eq!(phone.events.closed_by_server().await, Some(SESSION_ENDED));
    assert_eq!(state_of(&bob, "alice").await, "logged_out");
}

#[tokio::test]
async fn logout_all_ends_every_session_of_the_agent_and_closes_every_socket() {
    let server = Server::start(&demo_config());
    let mut laptop = AgentClient::login(&server, "alice").await;
    let mut phone = AgentClient::login(&server, "alice").await;
    let mut bob = AgentClient::login(&server, "bob").await;
    laptop.available().await;
    let (status, body) = phone.post("/api/logout/all", json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["sessions"], 2);
    assert_eq!(laptop.events.closed_by_server().await, Some(SESSION_ENDED));
    assert_eq!(phone.events.closed_by_server().await, Some(SESSION_ENDED));
    assert_eq!(me(&server, &laptop.token).await.0, 401);
    assert_eq!(me(&server, &phone.token).await.0, 401);
    assert_eq!(state_of(&bob, "alice").await, "logged_out");
    // Bob's session is untouched; `?all=true` is the same route.
    let again = AgentClient::login(&server, "bob").await;
    // Anything but true or false is refused, and nothing ends.
    let (status, _) = again.post("/api/logout?all=null&all=null", json!({})).await;
    assert_eq!(status, 400);
    let (status, body) = again.post("/api/logout?all=true", json!({})).await;
    assert_eq!((status, body["sessions"].clone()), (200, json!(2)));
    assert_eq!(bob.events.closed_by_server().await, Some(SESSION_ENDED));
}

#[tokio::test]
async fn logout_with_a_conversation_open_is_refused_and_changes_nothing() {
    let server = Server::start(&demo_config());
    let (alice, id) = server
        .handled_conversation("alice", Customer::webchat("v1", "Vic"), "hello")
        .await;
    for path in ["/api/logout", "/api/logout/all"] {
        let (status, _) = alice.post(path, json!({})).await;
        assert_eq!(status, 409, "{path}");
    }
    assert_eq!(me(&server, &alice.token).await.0, 200);
    alice
        .ok(
            &format!("/api/conversations/{id}/messages"),
            json!({"text": "still here"}),
        )
        .await;
}

#[tokio::test]
async fn an_expired_session_closes_its_socket_and_its_offer_goes_to_another_agent() {
    let config = demo_config().replace("session_ttl_secs = 31536000", "session_ttl_secs = 3600");
    let server = Server::start(&config);
    let mut alice = AgentClient::login(&server, "alice").await;
    alice.available().await;
    server.advance(3_590_000).await;
    let first = server.customer_says("v1", "Ann", "hello").await;
    let offer = alice.events.next_of("offer").await;
    assert_eq!(offer["conversation"], first);
    let mut bob = AgentClient::login(&server, "bob").await;
    bob.available().await;
    // Alice's session expires with the offer pending (RONA is 30 s away).
    server.advance(11_000).await;
    assert_eq!(alice.events.closed_by_server().await, Some(SESSION_ENDED));
    let offer = bob.events.next_of("offer").await;
    assert_eq!(offer["conversation"], first, "the offer came back at once");
    assert_eq!(me(&server, &alice.token).await.0, 401);
    assert_eq!(state_of(&bob, "alice").await, "logged_out");
    // New conversations never reach her.
    let second = server.customer_says("v2", "Ben", "hi").await;
    let offer = bob.events.next_of("offer").await;
    assert_eq!(offer["conversation"], second);
}

#[tokio::test]
async fn an_agent_whose_sockets_are_gone_past_the_grace_period_is_logged_out() {
    let config = demo_config().replace(
        "session_ttl_secs = 31536000",
        "session_ttl_secs = 31536000\naway_grace_secs = 10",
    );
    let server = Server::start(&config);
    let mut alice = AgentClient::login(&server, "alice").await;
    alice.available().await;
    let id = server.customer_says("v1", "Ann", "hello").await;
    alice.events.next_of("offer").await;
    let mut bob = AgentClient::login(&server, "bob").await;
    bob.available().await;
    let token = alice.token.clone();
    alice.events.close().await;
    server.wait_agent_sockets("demo", 1).await;
    // Within the grace period (a network blip) nothing changes.
    server.advance(9_000).await;
    let (status, v) = me(&server, &token).await;
    assert_eq!((status, v["state"].as_str()), (200, Some("available")));
    // Past it: logged out, the pending offer goes to Bob at once (RONA
    // would have taken 30 s), and the session is over.
    server.advance(2_000).await;
    let offer = bob.events.next_of("offer").await;
    assert_eq!(offer["conversation"], id);
    assert_eq!(state_of(&bob, "alice").await, "logged_out");
    assert_eq!(me(&server, &token).await.0, 401);
}

#[tokio::test]
async fn an_agent_gone_with_a_conversation_keeps_it_but_gets_no_new_offer() {
    let config = demo_config().replace(
        "session_ttl_secs = 31536000",
        "session_ttl_secs = 31536000\naway_grace_secs = 10",
    );
    let server = Server::start(&config);
    let (alice, _) = server
        .handled_conversation("alice", Customer::webchat("v1", "Ann"), "hello")
        .await;
    let token = alice.token.clone();
    alice.events.close().await;
    server.wait_agent_sockets("demo", 0).await;
    server.advance(11_000).await;
    let (status, v) = me(&server, &token).await;
    assert_eq!(
        status, 200,
        "the session stays: she can come back to finish"
    );
    assert_eq!(v["state"], "idle");
    assert_eq!(v["reason"], "Disconnected");
    let mut bob = AgentClient::login(&server, "bob").await;
    bob.available().await;
    let second = server.customer_says("v2", "Ben", "hi").await;
    assert_eq!(bob.events.next_of("offer").await["conversation"], second);
}

#[tokio::test]
async fn tokens_in_the_query_string_open_websockets_only() {
    let server = Server::start(&demo_config());
    let alice = AgentClient::login(&server, "alice").await;
    let resp = server
        .http
        .get(server.url(&format!("/api/me?token={}", alice.token)))
        .send()
        .await
        .expect("me");
    assert_eq!(resp.status().as_u16(), 401, "REST");
    let resp = server
        .http
        .get(server.url(&format!("/admin/tenants/demo/conversations?token={ADMIN}")))
        .send()
        .await
        .expect("admin");
    assert_eq!(resp.status().as_u16(), 401, "admin");
    // The WebSocket route keeps `?token=` (CONTRACT.md): the harness's
    // login just used it.
    assert_eq!(alice.events.seen[0]["type"], "agent_state");
}

#[tokio::test]
async fn a_websocket_ticket_opens_one_socket_once() {
    let server = Server::start(&demo_config());
    let alice = AgentClient::login(&server, "alice").await;
    let (status, v) = alice.post("/api/agent/events/ticket", json!({})).await;
    assert_eq!(status, 200, "{v}");
    let ticket = v["ticket"].as_str().expect("ticket");
    assert_ne!(ticket, alice.token);
    let url = server.ws_url(&format!("/api/agent/events?ticket={ticket}"));
    let mut events = Events::connect(&url).await;
    assert_eq!(events.next_of("agent_state").await["agent"], "alice");
    let again = tokio_tungstenite::connect_async(&url).await;
    assert!(again.is_err(), "a ticket is used once");
    let (status, _) = server
        .http
        .get(server.url(&format!("/api/me?ticket={ticket}")))
        .send()
        .await
        .map(|r| (r.status().as_u16(), ()))
        .expect("me");
    assert_eq!(status, 401);
}

#[tokio::test]
async fn the_bearer_scheme_is_case_insensitive_and_the_admin_token_exact() {
    let server = Server::start(&demo_config());
    let alice = AgentClient::login(&server, "alice").await;
    let status = |auth: String, path: &'static str| {
        let req = server
            .http
            .get(server.url(path))
            .header("authorization", auth);
        async move { req.send().await.expect("request").status().as_u16() }
    };
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        assert_eq!(
            status(format!("{scheme} {}", alice.token), "/api/me").await,
            200,
            "{scheme}"
        );
        assert_eq!(
            status(
                format!("{scheme} {ADMIN}"),
                "/admin/tenants/demo/conversations"
            )
            .await,
            200,
            "{scheme}"
        );
    }
    let admin = "/admin/tenants/demo/conversations";
    for wrong in [
        format!("Bearer \t{ADMIN}"),
        format!("Bearer {ADMIN}x"),
        format!("Bearer {}", &ADMIN[..ADMIN.len() - 1]),
        format!("Basic {ADMIN}"),
        format!("Bearer{ADMIN}"),
        ADMIN.to_string(),
    ] {
        assert_eq!(status(wrong.clone(), admin).await, 401, "{wrong:?}");
    }
}
