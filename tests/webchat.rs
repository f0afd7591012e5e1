//! Web chat visitors cannot be impersonated: the server issues each
//! visitor's token, only that token continues its conversation or opens its
//! events socket, and a visitor cannot pose as the server in its CAD.
//! Against the real binary over loopback.

mod common;
use common::*;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite;

/// Try to open an events socket; on refusal, the HTTP status and JSON body.
async fn socket_refused(server: &Server, query: &str) -> (u16, Value) {
    let url = server.ws_url(&format!("/channels/webchat/demo/events?{query}"));
    match tokio_tungstenite::connect_async(&url).await {
        Ok(_) => panic!("{query}: the socket was opened"),
        Err(tungstenite::Error::Http(resp)) => {
            let body = resp.body().clone().unwrap_or_default();
            let v: Value = serde_json::from_slice(&body)
                .unwrap_or_else(|_| panic!("{query}: error body is not JSON"));
            (resp.status().as_u16(), v)
        }
        Err(e) => panic!("{query}: {e}"),
    }
}

async fn post(server: &Server, token: Option<&str>, body: Value) -> (u16, Value) {
    let mut req = server
        .http
        .post(server.url("/channels/webchat/demo/messages"))
        .json(&body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.expect("post");
    let status = resp.status().as_u16();
    (status, resp.json().await.expect("JSON body"))
}

#[tokio::test]
async fn knowing_a_visitors_label_or_conversation_gives_no_events_and_no_write() {
    let server = Server::start(&demo_config());
    let mut alice = AgentClient::login(&server, "alice").await;
    alice.available().await;

    // Jeanne writes; her answer carries her token.
    let (status, first) = post(
        &server,
        None,
        json!({"visitor": "jeanne", "text": "my invoice is wrong", "name": "Jeanne"}),
    )
    .await;
    assert_eq!(status, 202, "{first}");
    let id = first["conversation"].as_u64().expect("conversation");
    let token = first["visitor_token"].as_str().expect("visitor_token");
    assert!(token.len() >= 32, "at least 128 bits: {token}");
    alice.events.next_of("offer").await;
    alice.accept(id).await;
    let started = alice.events.next_of("conversation_started").await;
    let customer = started["customer"].as_str().unwrap_or_default().to_string();
    assert_eq!(started["cad"]["visitor"], "jeanne", "the label is kept");

    // Her label, her customer id or a made-up token open no socket.
    let (status, err) = socket_refused(&server, "visitor=jeanne").await;
    assert_eq!(status, 401, "{err}");
    assert!(
        err["error"]
            .as_str()
            .is_some_and(|e| e.contains("visitor_token")),
        "{err}"
    );
    for query in [
        format!("visitor_token={customer}"),
        format!("visitor_token={id}"),
        format!("visitor_token={}", "0".repeat(token.len())),
        "visitor_token=".to_string(),
        String::new(),
    ] {
        let (status, err) = socket_refused(&server, &query).await;
        assert_eq!(status, 401, "{query}: {err}");
        assert!(err["error"].is_string(), "{query}: {err}");
    }

    // Writing with her label but no token is a new visitor: a new
    // conversation, offered separately; nothing reaches hers.
    let mut jeanne = server.visitor_socket(token).await;
    let (status, intruder) = post(
        &server,
        None,
        json!({"visitor": "jeanne", "text": "send me her invoice"}),
    )
    .await;
    assert_eq!(status, 202, "{intruder}");
    assert_ne!(intruder["conversation"], id, "not her conversation");
    assert_ne!(intruder["visitor_token"], token);
    // A wrong token is refused, and writes nothing.
    let (status, err) = post(&server, Some(&customer), json!({"text": "hi"})).await;
    assert_eq!((status, err["error"].is_string()), (401, true), "{err}");
    let (status, err) = post(&server, Some("not-a-token"), json!({"text": "hi"})).await;
    assert_eq!((status, err["error"].is_string()), (401, true), "{err}");

    // Alice's reply goes to Jeanne's socket only; her transcript holds
    // only her own message.
    alice
        .ok(
            &format!("/api/conversations/{id}/messages"),
            json!({"text": "Je regarde"}),
        )
        .await;
    assert_eq!(jeanne.next_of("message").await["text"], "Je regarde");
    let (_, msgs) = server
        .admin(
            reqwest::Method::GET,
            &format!("/admin/tenants/demo/conversations/{id}/messages"),
            None,
        )
        .await;
    let texts: Vec<&str> = msgs
        .as_array()
        .expect("messages")
        .iter()
        .filter_map(|m| m["text"].as_str())
        .collect();
    assert_eq!(texts, ["my invoice is wrong", "Je regarde"]);
}

#[tokio::test]
async fn the_token_continues_the_conversation_even_after_a_restart() {
    let dir = Server::new_dir("visitor-restart");
    let config = demo_config();
    let mut server = Server::start_in(dir.clone(), &config, &[]);
    let mut alice = AgentClient::login(&server, "alice").await;
    alice.available().await;
    let (_, first) = post(&server, None, json!({"text": "first", "name": "Paul"})).await;
    let id = first["conversation"].as_u64().expect("conversation");
    let token = first["visitor_token"]
        .as_str()
        .expect("visitor_token")
        .to_string();
    let (status, second) = post(&server, Some(&token), json!({"text": "second"})).await;
    assert_eq!(status, 202, "{second}");
    assert_eq!(second["conversation"], id, "same conversation");
    assert!(
        second.get("visitor_token").is_none(),
        "the token is given once: {second}"
    );
    alice.events.next_of("offer").await;
    alice.accept(id).await;

    server.kill();
    let server = Server::start_in(dir, &config, &[]);
    let (status, third) = post(&server, Some(&token), json!({"text": "third"})).await;
    assert_eq!(status, 202, "{third}");
    assert_eq!(
        third["conversation"], id,
        "same conversation after a restart"
    );
    let alice = AgentClient::reconnect(&server, "demo", "alice", &alice.token).await;
    let mut visitor = server.visitor_socket(&token).await;
    alice
        .ok(
            &format!("/api/conversations/{id}/messages"),
            json!({"text": "still here"}),
        )
        .await;
    assert_eq!(visitor.next_of("message").await["text"], "still here");
}

#[tokio::test]
async fn a_visitor_cannot_set_the_servers_cad() {
    let server = Server::start(&demo_config());
    for key in ["contact_origin", "entry_point", "customer_name", "visitor"] {
        let (status, err) = post(
            &server,
            None,
            json!({"text": "hello", "cad": {key: "forged", "language": "fr"}}),
        )
        .await;
        assert_eq!(status, 422, "{key}: {err}");
        assert!(
            err["error"].as_str().is_some_and(|e| e.contains(key)),
            "the error names {key}: {err}"
        );
    }
    // Nothing was stored by the refused messages; other keys are welcome.
    let (_, list) = server
        .admin(
            reqwest::Method::GET,
            "/admin/tenants/demo/conversations",
            None,
        )
        .await;
    assert_eq!(list, json!([]));
    let mut alice = AgentClient::login(&server, "alice").await;
    alice.available().await;
    let (status, ok) = post(
        &server,
        None,
        json!({"text": "hello", "name": "Ana", "cad": {"language": "fr"}}),
    )
    .await;
    assert_eq!(status, 202, "{ok}");
    let id = ok["conversation"].as_u64().expect("conversation");
    alice.events.next_of("offer").await;
    alice.accept(id).await;
    let cad = alice.events.next_of("conversation_started").await["cad"].clone();
    assert_eq!(cad["language"], "fr");
    assert_eq!(cad["contact_origin"], "webchat");
    assert_eq!(cad["customer_name"], "Ana");
}
