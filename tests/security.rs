//! No one let in: tenant isolation over every agent route, login limits,
//! logout, and secrets kept out of logs and error bodies.

mod common;
use common::*;
use reqwest::Method;
use serde_json::{json, Value};

/// The demo tenant plus a second tenant, `acme`.
fn two_tenants() -> String {
    demo_config()
        + r#"
[[tenants]]
id = "acme"
default_queue = "sales"

[[tenants.queues]]
id = "sales"

[[tenants.agents]]
id = "zoe"
password = "acme-pass"
queues = ["sales"]

[tenants.webchat]
queue = "sales"
"#
}

#[tokio::test]
async fn an_agent_cannot_reach_another_tenants_data() {
    let server = Server::start(&two_tenants());
    let mut alice = AgentClient::login(&server, "alice").await;
    alice.available().await;
    // Demo has conversations 1..=3; acme has only 1.
    for v in ["d1", "d2", "d3"] {
        server.customer_says(v, "Dee", "demo secret question").await;
    }
    alice.events.next_of("offer").await;
    alice.ok("/api/conversations/1/accept", json!({})).await;
    let resp = server
        .http
        .post(server.url("/channels/webchat/acme/messages"))
        .json(&json!({"visitor": "a1", "text": "acme question"}))
        .send()
        .await
        .expect("post");
    assert_eq!(resp.status().as_u16(), 202);

    let mut zoe = AgentClient::login_to(&server, "acme", "zoe", "acme-pass").await;
    // For each route: a demo conversation id must answer exactly as an id
    // that exists nowhere.
    let routes: Vec<(Method, &str, Option<Value>)> = vec![
        (Method::GET, "", None),
        (Method::POST, "/accept", Some(json!({}))),
        (Method::POST, "/messages", Some(json!({"text": "hi"}))),
        (Method::POST, "/transfer", Some(json!({"queue": "sales"}))),
        (Method::POST, "/conference", Some(json!({"agent": "zoe"}))),
        (Method::POST, "/conference/end", Some(json!({}))),
        (Method::POST, "/conference/leave", Some(json!({}))),
        (Method::POST, "/end", Some(json!({}))),
        (Method::POST, "/wrapup", Some(json!({"reason": "resolved"}))),
    ];
    for (method, suffix, body) in &routes {
        let nowhere = zoe
            .call(
                method.clone(),
                &format!("/api/conversations/999{suffix}"),
                body.clone(),
            )
            .await;
        assert_eq!(nowhere.0, 404, "{method} {suffix}");
        for id in [2, 3] {
            let other = zoe
                .call(
                    method.clone(),
                    &format!("/api/conversations/{id}{suffix}"),
                    body.clone(),
                )
                .await;
            assert_eq!(other, nowhere, "{method} /api/conversations/{id}{suffix}");
        }
    }
    // Ids are per tenant: zoe's conversation 1 is acme's own.
    zoe.available().await;
    let offer = zoe.events.next_of("offer").await;
    assert_eq!(offer["preview"], "acme question");
    zoe.ok("/api/conversations/1/accept", json!({})).await;
    // Another tenant's queue and agent look like ones that do not exist.
    let demo_queue = zoe
        .post("/api/conversations/1/transfer", json!({"queue": "billing"}))
        .await;
    let no_queue = zoe
        .post("/api/conversations/1/transfer", json!({"queue": "nowhere"}))
        .await;
    assert_eq!(demo_queue.0, 404);
    assert_eq!(demo_queue, no_queue);
    let demo_agent = zoe
        .post("/api/conversations/1/conference", json!({"agent": "alice"}))
        .await;
    let no_agent = zoe
        .post(
            "/api/conversations/1/conference",
            json!({"agent": "nobody"}),
        )
        .await;
    assert_eq!(demo_agent.0, 404);
    assert_eq!(demo_agent, no_agent);
    // The directory lists only the agent's own tenant.
    let (_, dir) = zoe.call(Method::GET, "/api/directory", None).await;
    let text = dir.to_string();
    assert!(
        !text.contains("alice") && !text.contains("billing"),
        "{text}"
    );
    // Alice cannot see acme's transcript either.
    let (status, body) = alice.call(Method::GET, "/api/conversations/1", None).await;
    assert_eq!(status, 200);
    assert!(!body.to_string().contains("acme question"));
    // A token of one tenant opens nothing of the other's channel or admin.
    let resp = server
        .http
        .get(server.url("/admin/tenants/demo/conversations"))
        .bearer_auth(&zoe.token)
        .send()
        .await
        .expect("request");
    // Known, but not an admin of that tenant (nor of any).
    assert_eq!(resp.status().as_u16(), 403);
}

#[tokio::test]
async fn logins_are_checked_limited_and_revocable() {
    let server = Server::start(&two_tenants());
    let login = |tenant: &'static str, agent: &'static str, password: &'static str| {
        let http = server.http.clone();
        let url = server.url("/api/login");
        async move {
            let r = http
                .post(url)
                .json(&json!({"tenant": tenant, "agent": agent, "password": password}))
                .send()
                .await
                .expect("login request");
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    // Wrong tenant, unknown agent, wrong password: the same answer.
    let a = login("demo", "zoe", "acme-pass").await;
    let b = login("demo", "nobody", "demo").await;
    let c = login("acme", "zoe", "wrong").await;
    assert_eq!(a.0, 401);
    assert_eq!(a, b);
    assert_eq!(b, c);
    // Five failures lock the account for a while, even with the right password.
    for _ in 0..4 {
        login("acme", "zoe", "wrong").await;
    }
    let locked = login("acme", "zoe", "acme-pass").await;
    assert_eq!(locked.0, 429, "{locked:?}");
    // Other accounts are not affected; logout revokes the token.
    let alice = AgentClient::login(&server, "alice").await;
    let (status, _) = alice.call(Method::GET, "/api/me", None).await;
    assert_eq!(status, 200);
    let (status, _) = alice.post("/api/logout", json!({})).await;
    assert_eq!(status, 204);
    let (status, _) = alice.call(Method::GET, "/api/me", None).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn secrets_never_reach_logs_or_error_bodies() {
    let server = Server::start(&demo_config());
    let (alice, id) = server
        .handled_conversation("alice", Customer::webchat("v9", "Vic"), "hello")
        .await;
    let (_, err) = alice
        .post(
            &format!("/api/conversations/{id}/wrapup"),
            json!({"reason": "x"}),
        )
        .await;
    let logs = server.logs();
    assert!(logs.contains("agent logged in"), "logs are captured");
    for secret in [
        ADMIN,
        "demo-secret",
        "demo-access",
        "demo-verify",
        &alice.token,
    ] {
        assert!(!logs.contains(secret), "a secret is in the logs");
        assert!(!err.to_string().contains(secret));
    }
    assert!(!logs.contains("\"demo\""), "a password is in the logs");
}

#[tokio::test]
async fn sessions_expire() {
    let config = demo_config().replace("session_ttl_secs = 31536000", "session_ttl_secs = 3600");
    let server = Server::start(&config);
    let alice = AgentClient::login(&server, "alice").await;
    let (status, _) = alice.call(Method::GET, "/api/me", None).await;
    assert_eq!(status, 200);
    server.advance(3_600_001).await;
    let (status, _) = alice.call(Method::GET, "/api/me", None).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn an_address_spraying_passwords_over_many_accounts_is_stopped() {
    let server = Server::start(&demo_config());
    let try_login = |agent: String, password: &'static str| {
        let req = server
            .http
            .post(server.url("/api/login"))
            .json(&json!({"tenant": "demo", "agent": agent, "password": password}));
        async move { req.send().await.expect("login").status().as_u16() }
    };
    // Twenty wrong guesses, each on a different account (none locked).
    for i in 0..20 {
        assert_eq!(try_login(format!("guess{i}"), "wrong").await, 401);
    }
    // The address is now refused, even with a good password.
    assert_eq!(try_login("alice".into(), "demo").await, 429);
}

/// Regression: a reply's deliverability was checked before the engine saw
/// who sends it, so any agent of the tenant learned (409) that a Messenger
/// conversation existed and was out of reach.
#[tokio::test]
async fn another_agents_messenger_conversation_answers_like_a_missing_one() {
    let server = Server::start(&demo_config());
    let mut alice = AgentClient::login(&server, "alice").await;
    alice.available().await;
    let bob = AgentClient::login(&server, "bob").await;
    let (body, sig) = messenger_webhook("PSID-1", "m.1", "hello");
    let resp = server
        .http
        .post(server.url("/channels/messenger/demo/webhook"))
        .header("content-type", "application/json")
        .header("x-hub-signature-256", sig)
        .body(body)
        .send()
        .await
        .expect("webhook");
    assert_eq!(resp.status().as_u16(), 200);
    let id = alice.events.next_of("offer").await["conversation"]
        .as_u64()
        .expect("id");
    alice.accept(id).await;
    // Past Meta's 7-day window the customer cannot be reached.
    server.advance(8 * 24 * 3600 * 1000).await;
    let (status, _) = alice
        .post(
            &format!("/api/conversations/{id}/messages"),
            json!({"text": "still there?"}),
        )
        .await;
    assert_eq!(status, 409, "the owner is told");
    let theirs = bob
        .post(
            &format!("/api/conversations/{id}/messages"),
            json!({"text": "x"}),
        )
        .await;
    let nowhere = bob
        .post("/api/conversations/999/messages", json!({"text": "x"}))
        .await;
    assert_eq!(theirs.0, 404);
    assert_eq!(theirs, nowhere);
}
