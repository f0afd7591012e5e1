//! Every error answer of the API is JSON `{"error": "…"}`, whoever produces
//! it: our handlers, axum's extractors (path, query, body, body limit,
//! WebSocket upgrade), the router (404, 405) or a channel adapter.

mod common;
use common::*;
use reqwest::Method;
use serde_json::{json, Value};

/// Send a request; assert the status and that the body is `{"error": text}`.
async fn expect_json_error(
    server: &Server,
    what: &str,
    req: reqwest::RequestBuilder,
    status: u16,
) -> reqwest::header::HeaderMap {
    let resp = req.send().await.expect(what);
    assert_eq!(resp.status().as_u16(), status, "{what}");
    let headers = resp.headers().clone();
    let ct = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(ct.starts_with("application/json"), "{what}: {ct}");
    let body: Value = resp.json().await.expect("JSON body");
    let message = body["error"].as_str().unwrap_or_default();
    assert!(!message.is_empty(), "{what}: {body}");
    assert_eq!(body.as_object().map(|o| o.len()), Some(1), "{what}: {body}");
    let _ = server;
    headers
}

#[tokio::test]
async fn rejections_of_paths_queries_bodies_and_upgrades_are_json() {
    let server = Server::start(&demo_config());
    let alice = AgentClient::login(&server, "alice").await;
    let http = &server.http;
    let agent = |m: Method, p: &str| http.request(m, server.url(p)).bearer_auth(&alice.token);

    // A path that does not parse (ids are numbers).
    expect_json_error(
        &server,
        "path parse",
        agent(Method::POST, "/api/conversations/abc/accept").json(&json!({})),
        400,
    )
    .await;
    expect_json_error(
        &server,
        "path overflow",
        agent(
            Method::POST,
            "/api/conversations/99999999999999999999999/end",
        )
        .json(&json!({})),
        400,
    )
    .await;
    // A query that does not parse.
    expect_json_error(
        &server,
        "query parse",
        agent(Method::GET, "/api/directory?search=a&search=b"),
        400,
    )
    .await;
    // Bodies: not JSON, the wrong shape, too large (JSON and raw routes).
    expect_json_error(
        &server,
        "JSON syntax",
        http.post(server.url("/channels/webchat/demo/messages"))
            .header("content-type", "application/json")
            .body("{not json"),
        400,
    )
    .await;
    expect_json_error(
        &server,
        "JSON shape",
        agent(Method::PUT, "/api/agent/state").json(&json!({"state": 3})),
        400,
    )
    .await;
    let big = "x".repeat(300 * 1024);
    expect_json_error(
        &server,
        "body limit, JSON route",
        http.post(server.url("/channels/webchat/demo/messages"))
            .json(&json!({"text": big})),
        413,
    )
    .await;
    let (body, sig) = messenger_webhook("1", "m.1", &big);
    expect_json_error(
        &server,
        "body limit, raw webhook",
        http.post(server.url("/channels/messenger/demo/webhook"))
            .header("x-hub-signature-256", sig)
            .body(body),
        413,
    )
    .await;
    // WebSocket routes asked without an upgrade.
    expect_json_error(
        &server,
        "agent socket without upgrade",
        agent(Method::GET, "/api/agent/events"),
        400,
    )
    .await;
    let (_, first) = server.webchat_post("w", "W", "hello").await;
    let token = first["visitor_token"].as_str().expect("token");
    expect_json_error(
        &server,
        "visitor socket without upgrade",
        http.get(server.url(&format!(
            "/channels/webchat/demo/events?visitor_token={token}"
        ))),
        400,
    )
    .await;
    // The router: no such path, wrong method (with Allow kept).
    expect_json_error(&server, "404", http.get(server.url("/api/nothing")), 404).await;
    expect_json_error(&server, "404 deep", http.get(server.url("/x/y/z")), 404).await;
    let headers =
        expect_json_error(&server, "405", http.delete(server.url("/api/login")), 405).await;
    assert!(headers.get("allow").is_some(), "Allow is kept");
    // A channel adapter's refusal (the bundled Messenger script).
    let body = r#"{"object":"user","entry":[]}"#;
    expect_json_error(
        &server,
        "adapter refusal",
        http.post(server.url("/channels/messenger/demo/webhook"))
            .header(
                "x-hub-signature-256",
                messenger_signature(body, "demo-secret"),
            )
            .body(body),
        404,
    )
    .await;
    expect_json_error(
        &server,
        "handshake refused",
        http.get(server.url(
            "/channels/messenger/demo/webhook?hub.mode=subscribe&hub.verify_token=bad&hub.challenge=c",
        )),
        403,
    )
    .await;
    // Unauthenticated, unknown tenant.
    expect_json_error(&server, "401", http.get(server.url("/api/me")), 401).await;
    expect_json_error(
        &server,
        "unknown tenant",
        http.post(server.url("/channels/webchat/nope/messages"))
            .json(&json!({"text": "hi"})),
        404,
    )
    .await;

    // A test clock step that would overflow time arithmetic is refused
    // (found by the API fuzzer's kind of input), and the server lives on.
    expect_json_error(
        &server,
        "clock step too large",
        http.post(server.url("/admin/clock/advance"))
            .bearer_auth(ADMIN)
            .json(&json!({"ms": u64::MAX})),
        422,
    )
    .await;
    server.advance(1).await;

    // The handshake's success stays the plain challenge Meta expects.
    let resp = http
        .get(server.url(
            "/channels/messenger/demo/webhook?hub.mode=subscribe&hub.verify_token=demo-verify&hub.challenge=c42",
        ))
        .send()
        .await
        .expect("handshake");
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.text().await.expect("body"), "c42");
}
