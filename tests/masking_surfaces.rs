//! Masking on every agent-facing surface, and nowhere raw in logs; the
//! `switchboard mask` command as CONTRACT.md fixes it.

mod common;
use common::*;
use reqwest::Method;
use serde_json::json;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

const CARD: &str = "4111 1111 1111 1111";
const EMAIL: &str = "melissa@gmail.com";
const PHONE: &str = "+447966197542";

#[tokio::test]
async fn every_agent_facing_surface_is_masked_and_logs_hold_no_raw_value() {
    let server = Server::start(&demo_config());
    let mut alice = AgentClient::login(&server, "alice").await;
    alice.available().await;
    let text = format!("my card {CARD}, mail {EMAIL}, call {PHONE}");
    let id = server.customer_says("mask-1", EMAIL, &text).await;
    let mut visitor = server.visitor_events("mask-1").await;
    let expected = "my card ************1111, mail m******@gmail.com, call *********7542";

    // Offer popup / notification preview.
    let offer = alice.events.next_of("offer").await;
    assert_eq!(offer["preview"], expected);
    assert_eq!(offer["customer_name"], "m******@gmail.com");
    // Conversation pane, CAD variables.
    alice.accept(id).await;
    let started = alice.events.next_of("conversation_started").await;
    assert_eq!(started["messages"][0]["text"], expected);
    assert_eq!(started["cad"]["customer_name"], "m******@gmail.com");
    // Live messages.
    server
        .customer_says("mask-1", EMAIL, &format!("again {CARD}"))
        .await;
    let m = alice
        .events
        .next_where("message", |m| m["from"] == "customer")
        .await;
    assert_eq!(m["text"], "again ************1111");
    // The agent's own text is masked on the desktop, raw for the customer.
    alice
        .ok(
            &format!("/api/conversations/{id}/messages"),
            json!({"text": format!("is it {EMAIL}?")}),
        )
        .await;
    let echo = alice
        .events
        .next_where("message", |m| m["from"] == "agent")
        .await;
    assert_eq!(echo["text"], "is it m******@gmail.com?");
    assert_eq!(
        visitor.next_of("message").await["text"],
        format!("is it {EMAIL}?")
    );
    // Snapshot for reconnects, conversation details, admin transcript.
    for path in ["/api/me".to_string(), format!("/api/conversations/{id}")] {
        let (_, body) = alice.call(Method::GET, &path, None).await;
        let s = body.to_string();
        assert!(
            !s.contains(CARD) && !s.contains(EMAIL) && !s.contains(PHONE),
            "{path}: {s}"
        );
    }
    let (_, transcript) = server
        .admin(
            Method::GET,
            &format!("/admin/tenants/demo/conversations/{id}/messages"),
            None,
        )
        .await;
    assert_eq!(transcript[0]["text"], expected);
    let (_, list) = server
        .admin(Method::GET, "/admin/tenants/demo/conversations", None)
        .await;
    assert!(!list.to_string().contains(EMAIL));
    // Metrics and logs (at debug level) never carry the raw values.
    let metrics = server
        .http
        .get(server.url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    let logs = server.logs();
    assert!(logs.contains("command"), "debug logs are captured");
    for raw in [CARD, EMAIL, PHONE, "4111111111111111"] {
        assert!(!logs.contains(raw), "raw {raw} in logs");
        assert!(!metrics.contains(raw), "raw {raw} in metrics");
    }
    // Nor does the journal on disk.
    let db = std::fs::read(server.dir.join("data").join("switchboard.db")).unwrap_or_default();
    let wal = std::fs::read(server.dir.join("data").join("switchboard.db-wal")).unwrap_or_default();
    for raw in [CARD, EMAIL, PHONE] {
        let needle = raw.as_bytes();
        for bytes in [&db, &wal] {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle),
                "raw {raw} in the journal"
            );
        }
    }
}

#[tokio::test]
async fn with_masking_off_agents_see_raw_text() {
    let server = Server::start(&demo_config());
    let (status, _) = server
        .admin(
            Method::PUT,
            "/admin/tenants/demo/settings",
            Some(json!({"mask": false})),
        )
        .await;
    assert_eq!(status, 200);
    let mut alice = AgentClient::login(&server, "alice").await;
    alice.available().await;
    server
        .customer_says("raw-1", "Mel", &format!("mail {EMAIL}"))
        .await;
    assert_eq!(
        alice.events.next_of("offer").await["preview"],
        format!("mail {EMAIL}")
    );
    // Raw customer text is still never logged.
    assert!(!server.logs().contains(EMAIL));
}

#[test]
fn mask_command_answers_each_line_before_end_of_input() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .arg("mask")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start switchboard mask");
    let mut stdin = child.stdin.take().expect("stdin");
    let mut out = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    // One line in, its answer out, while stdin is still open.
    stdin
        .write_all(format!("my card {CARD} and {EMAIL}\n").as_bytes())
        .expect("write");
    stdin.flush().expect("flush");
    out.read_line(&mut line).expect("read");
    assert_eq!(line, "my card ************1111 and m******@gmail.com\n");
    line.clear();
    stdin
        .write_all("Répondez-moi 🙂 au + 1 (123) 456 7890\n".as_bytes())
        .expect("write");
    stdin.flush().expect("flush");
    out.read_line(&mut line).expect("read");
    assert_eq!(line, "Répondez-moi 🙂 au **********7890\n");
    drop(stdin);
    assert!(child.wait().expect("wait").success());
}

#[test]
fn mask_command_json_gives_byte_spans() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(["mask", "--json"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start switchboard mask --json");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(
            "é melissa@gmail.com\nnothing here\n4111\u{a0}1111\u{a0}1111\u{a0}1111\tjo\u{200b}hn＠example.com\n"
                .as_bytes(),
        )
        .expect("write");
    let output = child.wait_with_output().expect("wait");
    let lines: Vec<serde_json::Value> = String::from_utf8(output.stdout)
        .expect("utf-8")
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(
        lines[0],
        json!({"masked": "é m******@gmail.com", "spans": [{"start": 3, "end": 20, "kind": "email"}]})
    );
    assert_eq!(lines[1], json!({"masked": "nothing here", "spans": []}));
    // Byte offsets into the original line: the no-break spaces (2 bytes),
    // the zero-width space and the full-width at sign (3 bytes) counted.
    assert_eq!(
        lines[2],
        json!({"masked": "************1111\tj***＠example.com",
               "spans": [{"start": 0, "end": 22, "kind": "card"},
                         {"start": 23, "end": 44, "kind": "email"}]})
    );
}

#[tokio::test]
async fn a_tenant_pattern_masks_its_own_identifiers() {
    let config = demo_config().replace(
        "idle_reasons = [",
        "mask_patterns = [{ name = \"policy\", regex = \"POL-[0-9]{6}\" }]\nidle_reasons = [",
    );
    let server = Server::start(&config);
    let mut alice = AgentClient::login(&server, "alice").await;
    alice.available().await;
    server
        .customer_says("pol-1", "Pat", "my policy is POL-123456")
        .await;
    assert_eq!(
        alice.events.next_of("offer").await["preview"],
        "my policy is ******3456"
    );
}

/// Issue 10: French typography and a card split over two messages. The
/// no-break spaces and the full-width digits are masked on the desktop; the
/// first half, sent alone, is redacted once the second half arrives, live
/// and in every transcript, also after a crash and restart.
#[tokio::test]
async fn typography_and_a_card_split_over_two_messages_are_masked_everywhere() {
    let dir = Server::new_dir("split");
    let mut server = Server::start_in(dir.clone(), &demo_config(), &[]);
    let mut alice = AgentClient::login(&server, "alice").await;
    alice.available().await;
    let id = server
        .customer_says("split-1", "Léa", "ma carte 4111\u{a0}1111")
        .await;
    let offer = alice.events.next_of("offer").await;
    assert_eq!(offer["preview"], "ma carte 4111\u{a0}1111");
    server
        .customer_says("split-1", "Léa", "１１１１\u{202f}1111 merci")
        .await;
    let redacted = alice.events.next_of("message_redacted").await;
    assert_eq!(redacted["conversation"], id);
    assert_eq!(redacted["index"], 0);
    assert_eq!(redacted["text"], "ma carte ********");
    assert_eq!(redacted["preview"], "ma carte ********");
    assert_eq!(redacted["messages"][0]["text"], "ma carte ********");
    alice.accept(id).await;
    let started = alice.events.next_of("conversation_started").await;
    assert_eq!(started["messages"][0]["text"], "ma carte ********");
    assert_eq!(started["messages"][1]["text"], "****1111 merci");
    // A whole card in French typography, in one message.
    server
        .customer_says("split-1", "Léa", "ou 5555\u{a0}5555\u{a0}5555\u{a0}4444 ?")
        .await;
    let m = alice
        .events
        .next_where("message", |m| m["from"] == "customer")
        .await;
    assert_eq!(m["text"], "ou ************4444 ?");

    let path = format!("/admin/tenants/demo/conversations/{id}/messages");
    let (_, transcript) = server.admin(Method::GET, &path, None).await;
    assert_eq!(transcript[0]["text"], "ma carte ********");
    assert_eq!(transcript[1]["text"], "****1111 merci");
    server.kill();
    let server = Server::start_in(dir, &demo_config(), &[]);
    let (_, transcript) = server.admin(Method::GET, &path, None).await;
    assert_eq!(transcript[0]["text"], "ma carte ********");
    assert_eq!(transcript[2]["text"], "ou ************4444 ?");
}
