//! The HTTP edge, in-process: the router that `switchboard serve` runs
//! (`http::app` over `server::build`), driven with `tower::ServiceExt::oneshot`
//! without a socket. These tests hold what the edge answers (status codes,
//! JSON error bodies from every layer, body limits, the upgrade routes asked
//! without an upgrade); the end-to-end tests start the binary instead.
//!
//! Every error answer is JSON `{"error": "…"}`, whoever produces it: our
//! handlers, axum's extractors (path, query, body, body limit, WebSocket
//! upgrade), the router (404, 405) or a channel adapter.

mod common;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, HeaderMap, Method, Request};
use axum::Router;
use common::{demo_config, messenger_signature, messenger_webhook, ADMIN};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::path::PathBuf;
use switchboard::config::Config;
use tower::ServiceExt;

/// The demo tenant's router on a fresh data folder.
struct Edge {
    app: Router,
    dir: PathBuf,
}

impl Drop for Edge {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// An answer: status, headers, body read as JSON (Null when it is not).
struct Answer {
    status: u16,
    headers: HeaderMap,
    body: Value,
    text: String,
}

impl Edge {
    fn new(tag: &str) -> Edge {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "switchboard-router-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        let toml = demo_config().replace(
            "data_dir = \"./data\"",
            &format!("data_dir = {:?}", dir.join("data")),
        );
        let cfg = Config::from_toml_str(&toml).expect("the demo configuration reads");
        let state = switchboard::server::build(&cfg, ADMIN.into()).expect("the server builds");
        Edge {
            app: switchboard::http::app(state),
            dir,
        }
    }

    async fn send(&self, mut req: Request<Body>) -> Answer {
        // What `serve` adds to every connection.
        req.extensions_mut()
            .insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 40000))));
        let resp = self
            .app
            .clone()
            .oneshot(req)
            .await
            .expect("the router answers");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .expect("a readable body")
            .to_bytes();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        Answer {
            status,
            headers,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            text,
        }
    }

    async fn login(&self, agent: &str) -> String {
        let a = self
            .send(json_req(
                Method::POST,
                "/api/login",
                None,
                &json!({"tenant": "demo", "agent": agent, "password": "demo"}),
            ))
            .await;
        assert_eq!(a.status, 200, "login: {}", a.text);
        a.body["token"].as_str().expect("a token").to_string()
    }
}

fn req(method: Method, uri: &str, token: Option<&str>) -> axum::http::request::Builder {
    let b = Request::builder().method(method).uri(uri);
    match token {
        Some(t) => b.header(header::AUTHORIZATION, format!("Bearer {t}")),
        None => b,
    }
}

fn json_req(method: Method, uri: &str, token: Option<&str>, body: &Value) -> Request<Body> {
    raw_req(method, uri, token, "application/json", body.to_string())
}

fn raw_req(
    method: Method,
    uri: &str,
    token: Option<&str>,
    content_type: &str,
    body: String,
) -> Request<Body> {
    req(method, uri, token)
        .header(header::CONTENT_TYPE, content_type)
        .body(Body::from(body))
        .expect("a valid request")
}

fn empty(method: Method, uri: &str, token: Option<&str>) -> Request<Body> {
    req(method, uri, token)
        .body(Body::empty())
        .expect("a valid request")
}

/// Assert the status and that the body is exactly `{"error": text}`.
fn json_error(what: &str, a: &Answer, status: u16) {
    assert_eq!(a.status, status, "{what}: {}", a.text);
    let ct = a
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert!(ct.starts_with("application/json"), "{what}: {ct}");
    let message = a.body["error"].as_str().unwrap_or_default();
    assert!(!message.is_empty(), "{what}: {}", a.text);
    assert_eq!(
        a.body.as_object().map(|o| o.len()),
        Some(1),
        "{what}: {}",
        a.text
    );
}

#[tokio::test]
async fn rejections_of_paths_queries_and_bodies_are_json() {
    let edge = Edge::new("rejections");
    let alice = edge.login("alice").await;
    let t = Some(alice.as_str());

    // A path that does not parse (ids are numbers), or overflows.
    let a = edge
        .send(json_req(
            Method::POST,
            "/api/conversations/abc/accept",
            t,
            &json!({}),
        ))
        .await;
    json_error("path parse", &a, 400);
    let a = edge
        .send(json_req(
            Method::POST,
            "/api/conversations/99999999999999999999999/end",
            t,
            &json!({}),
        ))
        .await;
    json_error("path overflow", &a, 400);
    // A query that does not parse.
    let a = edge
        .send(empty(Method::GET, "/api/directory?search=a&search=b", t))
        .await;
    json_error("query parse", &a, 400);
    // Bodies: not JSON, the wrong shape, too large (JSON and raw routes).
    let a = edge
        .send(raw_req(
            Method::POST,
            "/channels/webchat/demo/messages",
            None,
            "application/json",
            "{not json".into(),
        ))
        .await;
    json_error("JSON syntax", &a, 400);
    let a = edge
        .send(json_req(
            Method::PUT,
            "/api/agent/state",
            t,
            &json!({"state": 3}),
        ))
        .await;
    json_error("JSON shape", &a, 400);
    // A struct's fields as an array (serde would take it) is not an object.
    let a = edge
        .send(raw_req(
            Method::PUT,
            "/api/agent/state",
            t,
            "application/json",
            r#"["available", null]"#.into(),
        ))
        .await;
    json_error("an array for an object", &a, 400);
    let big = "x".repeat(300 * 1024);
    let a = edge
        .send(json_req(
            Method::POST,
            "/channels/webchat/demo/messages",
            None,
            &json!({"text": big}),
        ))
        .await;
    json_error("body limit, JSON route", &a, 413);
    let (body, sig) = messenger_webhook("1", "m.1", &big);
    let a = edge
        .send(
            req(Method::POST, "/channels/messenger/demo/webhook", None)
                .header("x-hub-signature-256", sig)
                .body(Body::from(body))
                .expect("request"),
        )
        .await;
    json_error("body limit, raw webhook", &a, 413);
}

#[tokio::test]
async fn the_router_and_the_channels_refuse_in_json() {
    let edge = Edge::new("router");
    let alice = edge.login("alice").await;

    // WebSocket routes asked without an upgrade.
    let a = edge
        .send(empty(Method::GET, "/api/agent/events", Some(&alice)))
        .await;
    json_error("agent socket without upgrade", &a, 400);
    let first = edge
        .send(json_req(
            Method::POST,
            "/channels/webchat/demo/messages",
            None,
            &json!({"name": "W", "text": "hello"}),
        ))
        .await;
    assert_eq!(first.status, 202, "{}", first.text);
    let token = first.body["visitor_token"]
        .as_str()
        .expect("a visitor token");
    let a = edge
        .send(empty(
            Method::GET,
            &format!("/channels/webchat/demo/events?visitor_token={token}"),
            None,
        ))
        .await;
    json_error("visitor socket without upgrade", &a, 400);

    // The router: no such path, wrong method (with Allow kept).
    json_error(
        "404",
        &edge.send(empty(Method::GET, "/api/nothing", None)).await,
        404,
    );
    json_error(
        "404 deep",
        &edge.send(empty(Method::GET, "/x/y/z", None)).await,
        404,
    );
    let a = edge.send(empty(Method::DELETE, "/api/login", None)).await;
    json_error("405", &a, 405);
    assert!(a.headers.get(header::ALLOW).is_some(), "Allow is kept");

    // A channel adapter's refusal (the bundled Messenger script), and a
    // verification handshake with the wrong token.
    let body = r#"{"object":"user","entry":[]}"#;
    let a = edge
        .send(
            req(Method::POST, "/channels/messenger/demo/webhook", None)
                .header(
                    "x-hub-signature-256",
                    messenger_signature(body, "demo-secret"),
                )
                .body(Body::from(body))
                .expect("request"),
        )
        .await;
    json_error("adapter refusal", &a, 404);
    let a = edge
        .send(empty(
            Method::GET,
            "/channels/messenger/demo/webhook?hub.mode=subscribe&hub.verify_token=bad&hub.challenge=c",
            None,
        ))
        .await;
    json_error("handshake refused", &a, 403);
    // Its success stays the plain challenge Meta expects.
    let a = edge
        .send(empty(
            Method::GET,
            "/channels/messenger/demo/webhook?hub.mode=subscribe&hub.verify_token=demo-verify&hub.challenge=c42",
            None,
        ))
        .await;
    assert_eq!((a.status, a.text.as_str()), (200, "c42"));

    // Unauthenticated, unknown tenant, a wrong admin token.
    json_error(
        "401",
        &edge.send(empty(Method::GET, "/api/me", None)).await,
        401,
    );
    let a = edge
        .send(json_req(
            Method::POST,
            "/channels/webchat/nope/messages",
            None,
            &json!({"text": "hi"}),
        ))
        .await;
    json_error("unknown tenant", &a, 404);
    let a = edge
        .send(empty(
            Method::GET,
            "/admin/tenants/demo/scripts",
            Some(&alice),
        ))
        .await;
    json_error("an agent is not a tenant admin", &a, 403);

    // A test clock step that would overflow time arithmetic is refused
    // (found by the API fuzzer's kind of input), and the clock still moves.
    let a = edge
        .send(json_req(
            Method::POST,
            "/admin/clock/advance",
            Some(ADMIN),
            &json!({"ms": u64::MAX}),
        ))
        .await;
    json_error("clock step too large", &a, 422);
    let a = edge
        .send(json_req(
            Method::POST,
            "/admin/clock/advance",
            Some(ADMIN),
            &json!({"ms": 1}),
        ))
        .await;
    assert!(a.status < 300, "{}", a.text);
}
