//! Agents attach pictures and PDF documents to their replies: uploaded
//! for a conversation they take part in (the same limits and content
//! checks as a visitor's upload), sent with or without text, journaled
//! like any reply; a web chat visitor fetches them with its own token, a
//! Messenger customer gets them through the Send API as a file upload.

mod common;
#[path = "common/graph.rs"]
mod graph;
use common::*;
use reqwest::Method;
use serde_json::{json, Value};
use std::time::Duration;

const PDF: &[u8] = b"%PDF-1.4 a short stand-in document";

async fn agent_upload(
    server: &Server,
    agent: &AgentClient,
    conversation: u64,
    name: &str,
    body: Vec<u8>,
) -> (u16, Value) {
    let resp = server
        .http
        .post(server.url(&format!(
            "/api/conversations/{conversation}/attachments?name={name}"
        )))
        .bearer_auth(&agent.token)
        .header("content-type", "application/octet-stream")
        .body(body)
        .send()
        .await
        .expect("upload");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// Files kept for the demo tenant (content and description each).
fn stored_files(server: &Server) -> usize {
    std::fs::read_dir(server.dir.join("data").join("attachments").join("demo"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Alice handles a web chat from Zoé, the visitor the test calls `visitor`.
async fn accepted_webchat(server: &Server, visitor: &str) -> (AgentClient, u64) {
    let customer = Customer::webchat(visitor, "Zoé");
    server
        .handled_conversation("alice", customer, "can you send the form?")
        .await
}

#[tokio::test]
async fn a_web_chat_visitor_gets_the_agents_picture_and_document_and_no_one_else_does() {
    let server = Server::start(&demo_config());
    let bob = AgentClient::login(&server, "bob").await;
    let (alice, id) = accepted_webchat(&server, "v-zoe").await;
    let mut visitor = server.visitor_events("v-zoe").await;

    // Bob is not in the conversation; a made-up id is no conversation.
    let (status, v) = agent_upload(&server, &bob, id, "a.png", graph::PNG.to_vec()).await;
    assert_eq!(status, 404, "{v}");
    let (status, v) = agent_upload(&server, &alice, 9999, "a.png", graph::PNG.to_vec()).await;
    assert_eq!(status, 404, "{v}");

    let (status, pic) = agent_upload(&server, &alice, id, "form.png", graph::PNG.to_vec()).await;
    assert_eq!(status, 201, "{pic}");
    assert_eq!(
        (pic["type"].as_str(), pic["mime"].as_str()),
        (Some("image"), Some("image/png"))
    );
    let (status, doc) = agent_upload(&server, &alice, id, "terms.pdf", PDF.to_vec()).await;
    assert_eq!(status, 201, "{doc}");
    assert_eq!(doc["type"], "file");
    let (pic_id, doc_id) = (
        pic["id"].as_str().expect("id").to_string(),
        doc["id"].as_str().expect("id").to_string(),
    );

    // Files alone, no text: a reply all the same.
    let answer = alice
        .ok(
            &format!("/api/conversations/{id}/messages"),
            json!({"attachments": [pic_id, doc_id]}),
        )
        .await;
    assert_eq!(
        answer["events"][0]["attachments"][0]["url"],
        format!("/api/attachments/{pic_id}"),
        "{answer}"
    );

    // The visitor sees both, at addresses it fetches with its own token.
    let m = visitor.next_of("message").await;
    assert_eq!(m["from"], "agent");
    let list = m["attachments"].as_array().expect("attachments").clone();
    assert_eq!(list.len(), 2, "{m}");
    assert_eq!(list[0]["type"], "image");
    assert_eq!(list[1]["name"], "terms.pdf");
    let pic_url = list[0]["url"].as_str().expect("url").to_string();
    assert_eq!(
        pic_url,
        format!("/channels/webchat/demo/attachments/{pic_id}")
    );
    let token = server.visitor_token("v-zoe").expect("token");
    let resp = server
        .http
        .get(server.url(&format!("{pic_url}?visitor_token={token}")))
        .send()
        .await
        .expect("picture");
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(
        resp.headers()
            .get("content-disposition")
            .and_then(|v| v.to_str().ok()),
        Some("inline; filename=\"form.png\"")
    );
    assert_eq!(resp.bytes().await.expect("bytes").as_ref(), graph::PNG);
    let resp = server
        .http
        .get(server.url(list[1]["url"].as_str().expect("url")))
        .bearer_auth(&token)
        .send()
        .await
        .expect("document");
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(
        resp.headers()
            .get("content-disposition")
            .and_then(|v| v.to_str().ok()),
        Some("attachment; filename=\"terms.pdf\""),
        "a document is a download"
    );
    assert_eq!(resp.bytes().await.expect("bytes").as_ref(), PDF);

    // Another visitor, or none, gets nothing.
    server.customer_says("v-other", "Max", "hello").await;
    let other = server.visitor_token("v-other").expect("token");
    let status = |resp: reqwest::Response| resp.status().as_u16();
    let other_get = server
        .http
        .get(server.url(&pic_url))
        .bearer_auth(&other)
        .send()
        .await
        .expect("get");
    assert_eq!(status(other_get), 404, "not another visitor's");
    let none = server
        .http
        .get(server.url(&pic_url))
        .send()
        .await
        .expect("get");
    assert_eq!(status(none), 401);

    // The transcript and the agent's view keep the files.
    let (_, t) = server
        .admin(
            Method::GET,
            &format!("/admin/tenants/demo/conversations/{id}/messages"),
            None,
        )
        .await;
    assert_eq!(t[1]["from"], "agent", "{t}");
    assert_eq!(t[1]["attachments"][1]["id"], doc_id.as_str(), "{t}");
    let (_, c) = alice
        .call(Method::GET, &format!("/api/conversations/{id}"), None)
        .await;
    let shown = c["messages"][1]["attachments"].as_array().map(Vec::len);
    assert_eq!(shown, Some(2), "{c}");
}

#[tokio::test]
async fn refused_uploads_and_attachments_store_and_send_nothing() {
    let server = Server::start(&demo_config());
    let (alice, id) = accepted_webchat(&server, "v-lim").await;
    let before = stored_files(&server);

    // Too large, active content, empty: refused with a reason, nothing kept.
    let mut big = graph::PNG.to_vec();
    big.resize(10 * 1024 * 1024 + 1, 0);
    let (status, v) = agent_upload(&server, &alice, id, "big.png", big).await;
    assert_eq!(status, 413, "{v}");
    assert!(
        v["error"].as_str().is_some_and(|e| e.contains("10 MiB")),
        "{v}"
    );
    let html = b"<html><script>alert(1)</script></html>".to_vec();
    let (status, v) = agent_upload(&server, &alice, id, "x.png", html).await;
    assert_eq!(status, 415, "{v}");
    let (status, _) = agent_upload(&server, &alice, id, "e.png", Vec::new()).await;
    assert_eq!(status, 422);
    assert_eq!(stored_files(&server), before, "nothing stored");

    // A reply may only carry files uploaded for its conversation: not a
    // visitor's upload, not a made-up id; nor more than ten.
    let resp = server
        .http
        .post(server.url("/channels/webchat/demo/attachments?name=v.png"))
        .bearer_auth(server.visitor_token("v-lim").expect("token"))
        .body(graph::PNG.to_vec())
        .send()
        .await
        .expect("visitor upload");
    let visitor_file: Value = resp.json().await.expect("json");
    let visitor_id = visitor_file["id"].as_str().expect("id").to_string();
    for ids in [
        vec![visitor_id],
        vec!["0123456789abcdef0123456789abcdef".to_string()],
        vec!["../x".to_string()],
    ] {
        let (status, v) = alice
            .post(
                &format!("/api/conversations/{id}/messages"),
                json!({"text": "here", "attachments": ids}),
            )
            .await;
        assert_eq!(status, 422, "{v}");
    }
    let (_, pic) = agent_upload(&server, &alice, id, "p.png", graph::PNG.to_vec()).await;
    let pic_id = pic["id"].as_str().expect("id").to_string();
    let (status, v) = alice
        .post(
            &format!("/api/conversations/{id}/messages"),
            json!({"attachments": vec![pic_id; 11]}),
        )
        .await;
    assert_eq!(status, 422, "{v}");
    // Neither text nor file: refused as before.
    let (status, _) = alice
        .post(
            &format!("/api/conversations/{id}/messages"),
            json!({"text": " "}),
        )
        .await;
    assert_eq!(status, 422);
    let (_, t) = server
        .admin(
            Method::GET,
            &format!("/admin/tenants/demo/conversations/{id}/messages"),
            None,
        )
        .await;
    assert_eq!(
        t.as_array().map(Vec::len),
        Some(1),
        "only the visitor's: {t}"
    );
}

/// Wait until the stand-in Graph API got `n` sends.
async fn sends(g: &graph::Graph, n: usize) -> Vec<graph::Call> {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let sent = g.sent.lock().expect("lock").clone();
        if sent.len() >= n {
            return sent;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} of {n} Send API calls; refused: {:?}",
            sent.len(),
            g.bad_proofs.lock().expect("lock")
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_messenger_customer_gets_the_file_through_the_send_api_and_a_refusal_marks_the_reply() {
    let (base, g) = graph::start().await;
    let server = Server::start_with_env(&demo_config(), &[("SWITCHBOARD_GRAPH_API_BASE", &base)]);
    let customer = Customer::messenger("PSID-7", "m.1");
    let (mut alice, id) = server
        .handled_conversation("alice", customer, "the invoice please")
        .await;

    let (status, doc) = agent_upload(&server, &alice, id, "invoice.pdf", PDF.to_vec()).await;
    assert_eq!(status, 201, "{doc}");
    alice
        .ok(
            &format!("/api/conversations/{id}/messages"),
            json!({"text": "Here it is", "attachments": [doc["id"]]}),
        )
        .await;
    // The file first, as multipart with the bytes, then the text.
    let sent = sends(&g, 2).await;
    let file = &sent[0];
    assert_eq!(file.path, "/v21.0/me/messages");
    assert_eq!(
        file.query.get("appsecret_proof"),
        Some(&graph::proof(graph::APP_SECRET, graph::ACCESS_TOKEN))
    );
    assert_eq!(file.body["recipient"]["id"], "PSID-7", "{:?}", file.body);
    assert_eq!(
        file.body["message"],
        json!({"attachment": {"type": "file", "payload": {"is_reusable": false}}})
    );
    assert_eq!(file.files.len(), 1);
    assert_eq!(file.files[0].name, "filedata");
    assert_eq!(file.files[0].filename.as_deref(), Some("invoice.pdf"));
    assert_eq!(
        file.files[0].content_type.as_deref(),
        Some("application/pdf")
    );
    assert_eq!(file.files[0].data, PDF, "the bytes arrive whole");
    assert_eq!(sent[1].body["message"]["text"], "Here it is");
    assert!(sent[1].files.is_empty());

    // A picture alone the Send API refuses: the reply is marked failed.
    let (_, pic) = agent_upload(&server, &alice, id, "p.png", graph::PNG.to_vec()).await;
    *g.refuse_sends.lock().expect("lock") = 1;
    alice
        .ok(
            &format!("/api/conversations/{id}/messages"),
            json!({"attachments": [pic["id"]]}),
        )
        .await;
    let failed = alice.events.next_of("delivery_failed").await;
    assert_eq!(failed["reason"], "rejected");
    assert_eq!(failed["message"], 2, "the picture's reply");
    let (_, c) = alice
        .call(Method::GET, &format!("/api/conversations/{id}"), None)
        .await;
    assert_eq!(c["messages"][2]["failed"], "rejected", "{c}");
    assert_eq!(g.sent.lock().expect("lock").len(), 2, "nothing more sent");
}
