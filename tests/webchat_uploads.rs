//! Web chat visitors attach pictures and PDF documents: known by their
//! content (not their name or declared type), at most 10 MiB, only their
//! own uploads on their own messages; agents get Switchboard's copy.

mod common;
use common::*;
use serde_json::{json, Value};

const PNG: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1f, 0x15, 0xc4,
    0x89, 0x00, 0x00, 0x00, 0x0a, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0x00, 0x01, 0x00, 0x00,
    0x05, 0x00, 0x01, 0x0d, 0x0a, 0x2d, 0xb4, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae,
    0x42, 0x60, 0x82,
];

async fn upload(
    server: &Server,
    token: Option<&str>,
    name: &str,
    content_type: &str,
    body: Vec<u8>,
) -> (u16, Value) {
    let mut req = server
        .http
        .post(server.url(&format!("/channels/webchat/demo/attachments?name={name}")))
        .header("content-type", content_type)
        .body(body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.expect("upload");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn say(server: &Server, token: &str, body: Value) -> (u16, Value) {
    let resp = server
        .http
        .post(server.url("/channels/webchat/demo/messages"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .expect("message");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_visitor_attaches_a_picture_and_the_agent_gets_switchboards_copy() {
    let server = Server::start(&demo_config());
    let customer = Customer::webchat("v-up", "Zoé");
    let (mut alice, _) = server
        .handled_conversation("alice", customer, "hello")
        .await;
    let token = server.visitor_token("v-up").expect("token");

    // The declared type and the name do not matter; the content does.
    let (status, a) = upload(
        &server,
        Some(&token),
        "..%2Fphoto.png",
        "text/plain",
        PNG.to_vec(),
    )
    .await;
    assert_eq!(status, 201, "{a}");
    assert_eq!(a["type"], "image");
    assert_eq!(a["mime"], "image/png");
    assert_eq!(a["name"], "photo.png", "the path part is dropped");
    assert_eq!(a["size"], PNG.len());
    let att_id = a["id"].as_str().expect("id").to_string();

    // A message with only the picture reaches the agent.
    let (status, v) = say(&server, &token, json!({"attachments": [att_id]})).await;
    assert_eq!(status, 202, "{v}");
    let m = alice
        .events
        .next_where("message", |m| {
            m["from"] == "customer" && m["attachments"].is_array()
        })
        .await;
    let url = m["attachments"][0]["url"]
        .as_str()
        .expect("url")
        .to_string();
    assert_eq!(url, format!("/api/attachments/{att_id}"));
    let resp = server
        .http
        .get(server.url(&url))
        .bearer_auth(&alice.token)
        .send()
        .await
        .expect("content");
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(
        resp.headers()
            .get("x-content-type-options")
            .and_then(|v| v.to_str().ok()),
        Some("nosniff")
    );
    assert_eq!(resp.bytes().await.expect("bytes").as_ref(), PNG);
}

#[tokio::test]
async fn uploads_that_are_not_allowed_are_refused_and_nothing_is_attached() {
    let server = Server::start(&demo_config());
    let (_, first) = server.webchat_post("v-a", "A", "hello").await;
    let token = first["visitor_token"].as_str().expect("token").to_string();
    let (_, other) = server.webchat_post("v-b", "B", "hello").await;
    let other_token = other["visitor_token"].as_str().expect("token").to_string();

    // With a token that is not one; without one, a new visitor, whose
    // upload the first visitor cannot use.
    let (status, v) = upload(
        &server,
        Some(&"0".repeat(64)),
        "a.png",
        "image/png",
        PNG.to_vec(),
    )
    .await;
    assert_eq!(status, 401, "{v}");
    let (status, fresh) = upload(&server, None, "a.png", "image/png", PNG.to_vec()).await;
    assert_eq!(status, 201, "{fresh}");
    assert!(
        fresh["visitor_token"]
            .as_str()
            .is_some_and(|t| t.len() == 64),
        "{fresh}"
    );
    // Active content dressed as a picture.
    let html = b"<html><script>alert(1)</script></html>".to_vec();
    let (status, v) = upload(&server, Some(&token), "cat.png", "image/png", html).await;
    assert_eq!(status, 415, "{v}");
    assert!(
        v["error"].as_str().is_some_and(|e| e.contains("PDF")),
        "{v}"
    );
    // Too large (10 MiB and one byte), even when it starts like a PNG.
    let mut big = PNG.to_vec();
    big.resize(10 * 1024 * 1024 + 1, 0);
    let (status, v) = upload(&server, Some(&token), "big.png", "image/png", big).await;
    assert_eq!(status, 413, "{v}");
    assert!(
        v["error"].as_str().is_some_and(|e| e.contains("10 MiB")),
        "{v}"
    );
    // Empty.
    let (status, _) = upload(&server, Some(&token), "e.png", "image/png", Vec::new()).await;
    assert_eq!(status, 422);

    // Another visitor's upload, or a made-up id, cannot be attached.
    let (status, a) = upload(
        &server,
        Some(&other_token),
        "b.pdf",
        "application/pdf",
        b"%PDF-1.4 x".to_vec(),
    )
    .await;
    assert_eq!(status, 201, "{a}");
    assert_eq!(a["type"], "file");
    for id in [
        a["id"].as_str().expect("id").to_string(),
        fresh["id"].as_str().expect("id").to_string(),
        "0123456789abcdef0123456789abcdef".to_string(),
        "../../etc/passwd".to_string(),
    ] {
        let (status, v) = say(&server, &token, json!({"text": "see", "attachments": [id]})).await;
        assert_eq!(status, 422, "{v}");
    }
    // An empty message without attachments is still refused.
    let (status, _) = say(&server, &token, json!({"text": ""})).await;
    assert_eq!(status, 422);
    // Nothing of those reached the transcript: still one message.
    let (_, list) = server
        .admin(
            reqwest::Method::GET,
            "/admin/tenants/demo/conversations",
            None,
        )
        .await;
    let conv = list
        .as_array()
        .and_then(|l| {
            l.iter()
                .find(|c| c["customer"] == first["customer"] || c["id"] == first["conversation"])
        })
        .expect("the conversation");
    let (_, t) = server
        .admin(
            reqwest::Method::GET,
            &format!("/admin/tenants/demo/conversations/{}/messages", conv["id"]),
            None,
        )
        .await;
    assert_eq!(t.as_array().map(Vec::len), Some(1), "{t}");
}
