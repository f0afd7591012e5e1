//! Nothing acknowledged is lost: restarts and kill -9 against the real
//! binary with its SQLite journal.

mod common;
use common::*;
use reqwest::Method;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

#[tokio::test]
async fn a_restart_keeps_conversations_sessions_and_pending_timers() {
    let dir = Server::new_dir("restart");
    let config = demo_config();
    let mut server = Server::start_in(dir.clone(), &config, &[]);
    let mut alice = AgentClient::login(&server, "alice").await;
    alice.available().await;
    let mut bob = AgentClient::login(&server, "bob").await;
    bob.available().await;

    // #1 active with alice, #2 offered to bob, #3 ended with wrap-up pending.
    let c1 = server
        .handled(&mut alice, Customer::webchat("v1", "Ann"), "first question")
        .await;
    alice
        .ok(
            &format!("/api/conversations/{c1}/messages"),
            json!({"text": "hello Ann"}),
        )
        .await;
    let c2 = server.customer_says("v2", "Ben", "second question").await;
    assert_eq!(bob.events.next_of("offer").await["conversation"], c2);
    let c3 = server.customer_says("v3", "Cat", "third question").await;
    alice
        .events
        .next_where("offer", |o| o["conversation"] == c3)
        .await;
    alice.accept(c3).await;
    alice
        .ok(&format!("/api/conversations/{c3}/end"), json!({}))
        .await;

    server.kill();
    // The server is down for longer than the offer timeout.
    let server = Server::start_in(dir, &config, &[]);
    server.advance(31_000).await;

    // Sessions survive: the same tokens work.
    let alice = AgentClient::reconnect(&server, "demo", "alice", &alice.token).await;
    let (status, me) = alice.call(Method::GET, "/api/me", None).await;
    assert_eq!(status, 200, "{me}");
    let convs = me["conversations"].as_array().expect("conversations");
    let find = |id: u64| convs.iter().find(|c| c["conversation"] == id).cloned();
    let one = find(c1).expect("conversation 1 is back");
    assert_eq!(one["state"], "active");
    let texts: Vec<&str> = one["messages"]
        .as_array()
        .expect("transcript")
        .iter()
        .filter_map(|m| m["text"].as_str())
        .collect();
    assert_eq!(texts, ["first question", "hello Ann"]);
    let three = find(c3).expect("conversation 3 is back");
    assert_eq!(three["wrapup_pending"], true);
    alice
        .ok(
            &format!("/api/conversations/{c3}/wrapup"),
            json!({"reason": "resolved"}),
        )
        .await;

    // The offer that expired while the server was down was handled as RONA.
    let bob = AgentClient::reconnect(&server, "demo", "bob", &bob.token).await;
    let (_, me) = bob.call(Method::GET, "/api/me", None).await;
    assert_eq!(me["state"], "rona");
    let (_, list) = server
        .admin(Method::GET, "/admin/tenants/demo/conversations", None)
        .await;
    let two = list
        .as_array()
        .and_then(|l| l.iter().find(|c| c["id"] == c2))
        .cloned()
        .expect("conversation 2");
    assert_ne!(two["owner"], "bob");
}

/// Send messages from several tasks until `kill_after` are acknowledged,
/// kill -9 the server, restart it, and check that every acknowledged
/// message is stored exactly once and in order.
async fn crash_and_check(seed: u64) {
    let dir = Server::new_dir("crash");
    let config = demo_config();
    let mut server = Server::start_in(dir.clone(), &config, &[]);
    const TASKS: usize = 8;
    const PER_TASK: usize = 400;
    // A seeded choice of when to crash, between 20% and 80% of the load.
    let total = (TASKS * PER_TASK) as u64;
    let kill_after = total / 5 + (seed.wrapping_mul(2654435761) % (total * 3 / 5));
    // Per visitor: its conversation and the texts acknowledged.
    type Acked = HashMap<String, (u64, Vec<String>)>;
    let acked: Arc<Mutex<Acked>> = Arc::default();
    let count = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let (kill_tx, kill_rx) = tokio::sync::oneshot::channel::<()>();
    let kill_tx = Arc::new(Mutex::new(Some(kill_tx)));
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let http = server.http.clone();
        let url = server.url("/channels/webchat/demo/messages");
        let acked = acked.clone();
        let count = count.clone();
        let kill_tx = kill_tx.clone();
        tasks.push(tokio::spawn(async move {
            let visitor = format!("crash-visitor-{t}");
            // The first answer issues the visitor's token; later messages
            // carry it and continue the same conversation.
            let mut token: Option<String> = None;
            for i in 0..PER_TASK {
                let text = format!("task {t} message {i:04}");
                let mut req = http
                    .post(&url)
                    .json(&json!({"visitor": visitor, "text": text}));
                if let Some(tok) = &token {
                    req = req.bearer_auth(tok);
                }
                let resp = req.send().await;
                match resp {
                    Ok(r) if r.status().as_u16() == 202 => {
                        let v: Value = match r.json().await {
                            Ok(v) => v,
                            Err(_) => break,
                        };
                        if let Some(tok) = v["visitor_token"].as_str() {
                            token = Some(tok.to_string());
                        }
                        let conversation = v["conversation"].as_u64().expect("conversation");
                        acked
                            .lock()
                            .expect("lock")
                            .entry(visitor.clone())
                            .or_insert_with(|| (conversation, Vec::new()))
                            .1
                            .push(text);
                        if count.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1 == kill_after
                        {
                            if let Some(tx) = kill_tx.lock().expect("lock").take() {
                                let _ = tx.send(());
                            }
                        }
                    }
                    // Refused or cut off by the crash: not acknowledged.
                    _ => break,
                }
            }
        }));
    }
    let _ = kill_rx.await;
    server.kill();
    for t in tasks {
        let _ = t.await;
    }
    let server = Server::start_in(dir, &config, &[]);
    let (status, list) = server
        .admin(Method::GET, "/admin/tenants/demo/conversations", None)
        .await;
    assert_eq!(status, 200);
    let acked = acked.lock().expect("lock").clone();
    let n_acked: usize = acked.values().map(|(_, texts)| texts.len()).sum();
    assert!(
        n_acked as u64 >= kill_after,
        "seed {seed}: load reached the crash point"
    );
    for (visitor, (id, sent)) in &acked {
        assert!(
            list.as_array()
                .is_some_and(|l| l.iter().any(|c| c["id"] == *id)),
            "seed {seed}: no conversation for {visitor}"
        );
        let (_, msgs) = server
            .admin(
                Method::GET,
                &format!("/admin/tenants/demo/conversations/{id}/messages"),
                None,
            )
            .await;
        let stored: Vec<String> = msgs
            .as_array()
            .expect("messages")
            .iter()
            .filter(|m| m["from"] == "customer")
            .filter_map(|m| m["text"].as_str().map(str::to_string))
            .collect();
        // Every acknowledged message, once, in order; at most one more (sent
        // and stored, but its acknowledgement lost in the crash).
        assert!(
            stored.len() == sent.len() || stored.len() == sent.len() + 1,
            "seed {seed}: {visitor}: {} acknowledged, {} stored",
            sent.len(),
            stored.len()
        );
        assert_eq!(
            &stored[..sent.len()],
            &sent[..],
            "seed {seed}: {visitor}: order or content"
        );
    }
    let _: Value = list;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_message_survives_kill_9_seed_1() {
    crash_and_check(1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_message_survives_kill_9_seed_2() {
    crash_and_check(2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_message_survives_kill_9_seed_3() {
    crash_and_check(3).await;
}

#[tokio::test]
async fn a_redelivered_messenger_webhook_is_stored_once_even_across_a_restart() {
    let dir = Server::new_dir("redeliver");
    let config = demo_config();
    let mut server = Server::start_in(dir.clone(), &config, &[]);
    let post = |server: &Server, body: String, sig: String| {
        let req = server
            .http
            .post(server.url("/channels/messenger/demo/webhook"))
            .header("content-type", "application/json")
            .header("x-hub-signature-256", sig)
            .body(body);
        async move { req.send().await.expect("webhook").status().as_u16() }
    };
    let (body, sig) = messenger_webhook("PSID-7", "m.first", "bonjour");
    assert_eq!(post(&server, body.clone(), sig.clone()).await, 200);
    // Meta did not see the 200 and sends it again, before and after a crash.
    assert_eq!(post(&server, body.clone(), sig.clone()).await, 200);
    server.kill();
    let server = Server::start_in(dir, &config, &[]);
    assert_eq!(post(&server, body, sig).await, 200);
    let (b2, s2) = messenger_webhook("PSID-7", "m.second", "encore");
    assert_eq!(post(&server, b2, s2).await, 200);
    let (_, msgs) = server
        .admin(
            Method::GET,
            "/admin/tenants/demo/conversations/1/messages",
            None,
        )
        .await;
    let texts: Vec<&str> = msgs
        .as_array()
        .expect("messages")
        .iter()
        .filter_map(|m| m["text"].as_str())
        .collect();
    assert_eq!(texts, ["bonjour", "encore"]);
}

#[tokio::test]
async fn an_archived_conversation_leaves_memory_but_its_transcript_stays() {
    let config = demo_config().replace(
        "default_queue = \"support\"",
        "default_queue = \"support\"\narchive_after_ms = 60000",
    );
    let server = Server::start(&config);
    let (alice, id) = server
        .handled_conversation(
            "alice",
            Customer::webchat("arch-1", "Ada"),
            "an old question",
        )
        .await;
    alice
        .ok(
            &format!("/api/conversations/{id}/messages"),
            json!({"text": "an old answer"}),
        )
        .await;
    alice
        .ok(&format!("/api/conversations/{id}/end"), json!({}))
        .await;
    alice
        .ok(
            &format!("/api/conversations/{id}/wrapup"),
            json!({"reason": "resolved"}),
        )
        .await;
    server.advance(60_001).await;
    let (_, list) = server
        .admin(Method::GET, "/admin/tenants/demo/conversations", None)
        .await;
    assert_eq!(
        list,
        json!([]),
        "archived conversations are no longer listed"
    );
    let (status, msgs) = server
        .admin(
            Method::GET,
            &format!("/admin/tenants/demo/conversations/{id}/messages"),
            None,
        )
        .await;
    assert_eq!(status, 200);
    let texts: Vec<&str> = msgs
        .as_array()
        .expect("messages")
        .iter()
        .filter_map(|m| m["text"].as_str())
        .collect();
    assert_eq!(texts, ["an old question", "an old answer"]);
    let (status, _) = server
        .admin(
            Method::GET,
            "/admin/tenants/demo/conversations/999/messages",
            None,
        )
        .await;
    assert_eq!(status, 404);
}

/// A snapshot encodes the whole state, so a fixed spacing would cost more
/// per event as the queue grows: a growing tenant's snapshots are spaced
/// by at least as many events as it holds conversations. With
/// `snapshot_every = 5` and 40 customers waiting, the two snapshots kept
/// are further apart than the conversations the older one held (not 5
/// events), and a restart still recovers every conversation.
#[tokio::test]
async fn snapshots_of_a_growing_tenant_are_spaced_by_its_size() {
    let config = demo_config().replacen(
        "default_queue = \"support\"",
        "default_queue = \"support\"\nsnapshot_every = 5",
        1,
    );
    let dir = Server::new_dir("snapshot-spacing");
    let mut server = Server::start_in(dir.clone(), &config, &[]);
    for i in 0..40 {
        server
            .customer_says(&format!("v-{i}"), &format!("Customer {i}"), "hello")
            .await;
    }
    let db = dir.join("data").join("switchboard.db");
    let kept = || -> Vec<u64> {
        let conn = rusqlite::Connection::open(&db).expect("the journal opens");
        let mut stmt = conn
            .prepare("SELECT seq FROM snapshots WHERE tenant = 'demo' ORDER BY seq")
            .expect("query");
        let seqs = stmt
            .query_map([], |r| r.get::<_, i64>(0))
            .expect("snapshots")
            .filter_map(Result::ok)
            .map(|s| s as u64)
            .collect();
        seqs
    };
    // Snapshots are stored off the command's path: wait for two (a bound
    // on a hang, not a timing assertion).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let seqs = loop {
        let seqs = kept();
        if seqs.len() >= 2 {
            break seqs;
        }
        assert!(std::time::Instant::now() < deadline, "snapshots: {seqs:?}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    let (older, newer) = (seqs[0], seqs[1]);
    let conn = rusqlite::Connection::open(&db).expect("the journal opens");
    let held: u64 = conn
        .query_row(
            "SELECT COUNT(*) FROM events WHERE tenant = 'demo' \
             AND type = 'conversation_created' AND seq <= ?1",
            [older as i64],
            |r| r.get::<_, i64>(0),
        )
        .map(|n| n as u64)
        .expect("counted");
    assert!(held >= 10, "the older snapshot held {held} conversations");
    assert!(
        newer - older >= held,
        "snapshots at {older} and {newer}, the older holding {held} conversations"
    );
    drop(conn);
    server.kill();
    let server = Server::start_in(dir, &config, &[]);
    let (status, body) = server
        .admin(Method::GET, "/admin/tenants/demo/conversations", None)
        .await;
    assert_eq!(status, 200);
    let waiting = body
        .as_array()
        .map_or(0, |l| l.iter().filter(|c| c["state"] == "queued").count());
    assert_eq!(waiting, 40, "{body}");
}
