//! Issue 15, "who the customer is", against the real binary and a stand-in
//! Graph API on loopback: a new Messenger customer's name comes from the
//! User Profile API (asked once, cached, masked like any name), every Graph
//! API call carries `appsecret_proof`, and a profile that does not come in
//! time leaves the name "Customer" without holding the offer, the reason
//! counted.

mod common;
#[path = "common/graph.rs"]
mod graph;
use common::*;
use serde_json::json;
use std::time::{Duration, Instant};

async fn post_webhook(server: &Server, psid: &str, mid: &str, text: &str) {
    server.messenger_says(psid, mid, text).await;
}

async fn metric(server: &Server, name: &str, reason: &str) -> u64 {
    let text = server
        .http
        .get(server.url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    text.lines()
        .filter(|l| l.starts_with(name) && l.contains(&format!("reason=\"{reason}\"")))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[tokio::test]
async fn a_new_messenger_customer_is_named_from_the_user_profile_api_with_appsecret_proof() {
    let (base, g) = graph::start().await;
    g.profiles
        .lock()
        .expect("lock")
        .insert("PSID-1".into(), ("Peter".into(), "Chang".into()));
    let server = Server::start_with_env(&demo_config(), &[("SWITCHBOARD_GRAPH_API_BASE", &base)]);
    let mut alice = AgentClient::login(&server, "alice").await;
    alice.available().await;

    post_webhook(&server, "PSID-1", "m.1", "hello").await;
    let offer = alice.events.next_of("offer").await;
    assert_eq!(offer["customer_name"], "Peter Chang");
    let id = offer["conversation"].as_u64().expect("id");
    {
        let calls = g.profile_calls.lock().expect("lock").clone();
        assert_eq!(calls.len(), 1, "{calls:?}");
        assert_eq!(calls[0].path, "/v21.0/PSID-1");
        assert_eq!(
            calls[0].query.get("fields").map(String::as_str),
            Some("first_name,last_name,profile_pic")
        );
    }

    // Cached: the next message asks nothing.
    post_webhook(&server, "PSID-1", "m.2", "still there?").await;
    alice.accept(id).await;
    let started = alice.events.next_of("conversation_started").await;
    assert_eq!(started["messages"][1]["author"], "Peter Chang");
    assert_eq!(g.profile_calls.lock().expect("lock").len(), 1);

    // The Send API reply carries the proof too.
    alice
        .ok(
            &format!("/api/conversations/{id}/messages"),
            json!({"text": "Hi Peter"}),
        )
        .await;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while g.sent.lock().expect("lock").is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no Send API call; refused: {:?}",
            g.bad_proofs.lock().expect("lock")
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let sent = g.sent.lock().expect("lock").clone();
    assert_eq!(
        sent[0].query.get("appsecret_proof"),
        Some(&graph::proof(graph::APP_SECRET, graph::ACCESS_TOKEN))
    );
    assert!(g.bad_proofs.lock().expect("lock").is_empty());
    assert!(!server.logs().contains("Peter"), "names are not logged");
}

#[tokio::test]
async fn a_profile_that_does_not_come_in_time_leaves_customer_and_is_counted() {
    let (base, g) = graph::start().await;
    g.hang.lock().expect("lock").push("PSID-SLOW".into());
    let server = Server::start_with_env(&demo_config(), &[("SWITCHBOARD_GRAPH_API_BASE", &base)]);
    let mut alice = AgentClient::login(&server, "alice").await;
    alice.available().await;

    let t0 = Instant::now();
    post_webhook(&server, "PSID-SLOW", "m.1", "hello").await;
    let offer = alice.events.next_of("offer").await;
    let waited = t0.elapsed();
    assert_eq!(offer["customer_name"], "Customer");
    assert!(waited < Duration::from_millis(1900), "waited {waited:?}");
    assert_eq!(
        metric(&server, "switchboard_profile_lookup_failures", "timeout").await,
        1
    );

    // A PSID the API has no profile for: rejected, counted, "Customer".
    post_webhook(&server, "PSID-NONE", "m.2", "bonjour").await;
    let offer = alice
        .events
        .next_where("offer", |o| o["preview"] == "bonjour")
        .await;
    assert_eq!(offer["customer_name"], "Customer");
    assert_eq!(
        metric(&server, "switchboard_profile_lookup_failures", "rejected").await,
        1
    );
}

#[tokio::test]
async fn profile_names_are_masked_like_any_name() {
    let (base, g) = graph::start().await;
    g.profiles
        .lock()
        .expect("lock")
        .insert("PSID-M".into(), ("melissa@gmail.com".into(), "".into()));
    let server = Server::start_with_env(&demo_config(), &[("SWITCHBOARD_GRAPH_API_BASE", &base)]);
    let mut alice = AgentClient::login(&server, "alice").await;
    alice.available().await;
    post_webhook(&server, "PSID-M", "m.1", "hello").await;
    let offer = alice.events.next_of("offer").await;
    assert_eq!(offer["customer_name"], "m******@gmail.com");
}

/// The demo tenant plus `acme`, whose agents must not see demo's files.
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
"#
}

#[tokio::test]
async fn messenger_attachments_of_every_kind_reach_the_agent_as_switchboard_urls() {
    let (base, _g) = graph::start().await;
    let server = Server::start_with_env(&two_tenants(), &[("SWITCHBOARD_GRAPH_API_BASE", &base)]);
    let mut alice = AgentClient::login(&server, "alice").await;
    alice.available().await;
    let cdn = |f: &str| format!("{base}/cdn/{f}");
    let body = json!({"object": "page", "entry": [{"id": "1000", "time": 1, "messaging": [
        {"sender": {"id": "PSID-A"}, "recipient": {"id": "1000"}, "timestamp": 1,
         "message": {"mid": "m.1", "text": "here", "attachments": [
            {"type": "image", "payload": {"url": cdn("photo.png")}},
            {"type": "file", "payload": {"url": cdn("doc.pdf")}},
            {"type": "location", "title": "My place", "payload": {"coordinates": {"lat": 48.8566, "long": 2.3522}}},
            {"type": "fallback", "title": "Write to melissa@gmail.com", "payload": {"url": "https://example.com/a"}},
            {"type": "file", "payload": {"url": cdn("page.html")}},
            {"type": "video", "payload": {"url": cdn("gone.mp4")}}
         ]}},
        {"sender": {"id": "PSID-A"}, "recipient": {"id": "1000"}, "timestamp": 2,
         "message": {"mid": "m.2", "sticker_id": 369239263222822u64, "attachments": [
            {"type": "image", "payload": {"url": cdn("sticker.png"), "sticker_id": 369239263222822u64}}]}},
        {"sender": {"id": "PSID-A"}, "recipient": {"id": "1000"}, "timestamp": 3,
         "message": {"mid": "m.3", "text": "Track my order", "quick_reply": {"payload": "TRACK"}}}
    ]}]})
    .to_string();
    let (status, answer) = server.messenger_deliver(&body).await;
    assert_eq!(status, 200, "{answer}");
    let id = alice.accept_next_offer().await;
    let started = alice.events.next_of("conversation_started").await;
    let messages = started["messages"].as_array().expect("messages").clone();
    assert_eq!(messages.len(), 3, "{messages:#?}");
    assert_eq!(messages[2]["text"], "Track my order");
    let a = messages[0]["attachments"]
        .as_array()
        .expect("attachments")
        .clone();
    assert_eq!(a.len(), 6, "{a:#?}");
    let kinds: Vec<&str> = a.iter().filter_map(|x| x["type"].as_str()).collect();
    assert_eq!(
        kinds,
        ["image", "file", "location", "link", "file", "video"]
    );
    for x in &a {
        let url = x["url"].as_str().expect("url");
        assert!(url.starts_with("/api/attachments/"), "never the CDN: {x}");
        assert!(!x.to_string().contains("/cdn/"), "{x}");
    }
    assert_eq!(a[0]["mime"], "image/png");
    assert_eq!(a[0]["size"], graph::PNG.len());
    assert_eq!(a[1]["name"], "doc.pdf");
    assert_eq!(a[2]["latitude"], 48.8566);
    assert_eq!(a[2]["longitude"], 2.3522);
    assert_eq!(
        a[3]["title"], "Write to m******@gmail.com",
        "link titles are masked"
    );
    assert!(
        a[4]["title"]
            .as_str()
            .is_some_and(|t| t.contains("type not allowed")),
        "{}",
        a[4]
    );
    assert!(
        a[5]["title"]
            .as_str()
            .is_some_and(|t| t.starts_with("Attachment unavailable")),
        "{}",
        a[5]
    );
    let sticker = &messages[1]["attachments"][0];
    assert_eq!(sticker["type"], "sticker");

    // The content, to the tenant's agents only.
    let get = |url: &str, token: Option<&str>| {
        let mut req = server.http.get(server.url(url));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send()
    };
    let image_url = a[0]["url"].as_str().expect("url");
    let resp = get(image_url, Some(&alice.token)).await.expect("get");
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.headers()["content-type"], "image/png");
    assert_eq!(resp.headers()["x-content-type-options"], "nosniff");
    assert!(resp.headers()["content-disposition"]
        .to_str()
        .is_ok_and(|d| d.starts_with("inline")));
    assert_eq!(resp.bytes().await.expect("bytes").as_ref(), graph::PNG);
    let resp = get(a[1]["url"].as_str().expect("url"), Some(&alice.token))
        .await
        .expect("get");
    assert_eq!(
        resp.headers()["content-disposition"],
        "attachment; filename=\"doc.pdf\""
    );
    assert_eq!(
        get(image_url, None).await.expect("get").status().as_u16(),
        401
    );
    let zoe = AgentClient::login_to(&server, "acme", "zoe", "acme-pass").await;
    assert_eq!(
        get(image_url, Some(&zoe.token))
            .await
            .expect("get")
            .status()
            .as_u16(),
        404,
        "another tenant's attachment is not found"
    );
    assert_eq!(
        get(
            "/api/attachments/..%2F..%2Fswitchboard.toml",
            Some(&alice.token)
        )
        .await
        .expect("get")
        .status()
        .as_u16(),
        400,
        "ids are checked before any path is built"
    );

    // Transcripts keep them.
    let (_, transcript) = server
        .admin(
            reqwest::Method::GET,
            &format!("/admin/tenants/demo/conversations/{id}/messages"),
            None,
        )
        .await;
    assert_eq!(
        transcript[0]["attachments"].as_array().map(Vec::len),
        Some(6),
        "{transcript}"
    );
}

/// A one-message webhook whose Meta `timestamp` is `age_ms` before now.
async fn says_sent_ago(server: &Server, psid: &str, mid: &str, text: &str, age_ms: u64) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64;
    let body = json!({"object": "page", "entry": [{"id": "1000", "time": now, "messaging": [
        {"sender": {"id": psid}, "recipient": {"id": "1000"}, "timestamp": now - age_ms,
         "message": {"mid": mid, "text": text}}
    ]}]})
    .to_string();
    let (status, answer) = server.messenger_deliver(&body).await;
    assert_eq!(status, 200, "{answer}");
}

/// The Send API calls once there are `n` (the outbox sends after the
/// commit, so a reply's answer comes before its call).
async fn sent(g: &graph::Graph, n: usize) -> Vec<graph::Call> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let calls = g.sent.lock().expect("lock").clone();
        if calls.len() >= n || Instant::now() > deadline {
            return calls;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Accept the first offer; reply `text`; the status of the reply.
async fn accept_and_reply(alice: &mut AgentClient, text: &str) -> (u16, serde_json::Value) {
    let id = alice.accept_next_offer().await;
    alice
        .post(
            &format!("/api/conversations/{id}/messages"),
            json!({"text": text}),
        )
        .await
}

#[tokio::test]
async fn reply_windows_start_at_metas_timestamp_not_at_arrival() {
    const HOUR: u64 = 3_600_000;
    let (base, g) = graph::start().await;
    let env = [("SWITCHBOARD_GRAPH_API_BASE", base.as_str())];

    // With the HUMAN_AGENT tag (the demo page has it): a message Meta
    // timestamps 30 hours ago, delivered only now, is past the 24-hour
    // window: the reply carries the tag.
    let server = Server::start_with_env(&demo_config(), &env);
    let mut alice = AgentClient::login(&server, "alice").await;
    alice.available().await;
    says_sent_ago(&server, "PSID-LATE", "m.late", "still waiting", 30 * HOUR).await;
    let (status, v) = accept_and_reply(&mut alice, "Sorry for the wait").await;
    assert_eq!(status, 200, "{v}");
    let calls = sent(&g, 1).await;
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].body["messaging_type"], "MESSAGE_TAG");
    assert_eq!(calls[0].body["tag"], "HUMAN_AGENT");

    // A newer message, then an older one arriving late: the window runs
    // from the newer (a late delivery neither extends nor shortens it).
    says_sent_ago(&server, "PSID-LATE", "m.new", "any news?", HOUR).await;
    says_sent_ago(&server, "PSID-LATE", "m.old", "hello?", 40 * HOUR).await;
    let id = v["events"][0]["conversation"]
        .as_u64()
        .expect("conversation");
    alice
        .ok(
            &format!("/api/conversations/{id}/messages"),
            json!({"text": "Yes!"}),
        )
        .await;
    let calls = sent(&g, 2).await;
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[1].body["messaging_type"], "RESPONSE");
    drop(server);

    // Without the tag, the same late message cannot be answered: 409,
    // nothing sent.
    let no_tag = demo_config().replace("human_agent_tag = true", "human_agent_tag = false");
    assert_ne!(no_tag, demo_config(), "the demo sets the tag");
    let server = Server::start_with_env(&no_tag, &env);
    let mut alice = AgentClient::login(&server, "alice").await;
    alice.available().await;
    says_sent_ago(&server, "PSID-LATE2", "m.late2", "still waiting", 30 * HOUR).await;
    let (status, v) = accept_and_reply(&mut alice, "Sorry for the wait").await;
    assert_eq!(status, 409, "{v}");
    assert!(
        v["error"].as_str().is_some_and(|e| e.contains("24 hours")),
        "{v}"
    );
    assert_eq!(g.sent.lock().expect("lock").len(), 2, "nothing more sent");
}
