//! A tenant administered over HTTP against the real binary: agents and
//! queues created and changed by an admin (the platform token or an agent
//! with the `admin` role), every change a journal event that survives a
//! restart; the roles that may not, and other tenants' admins, get 403;
//! no answer carries a password hash.

mod common;
use common::*;
use reqwest::Method;
use serde_json::{json, Value};

/// The demo tenant with a supervisor `sam` and an admin `ada`, plus a
/// second tenant `acme` with its own admin `ann`.
fn config() -> String {
    demo_with_staff()
        + r#"
[[tenants]]
id = "acme"
default_queue = "sales"

[[tenants.queues]]
id = "sales"

[[tenants.agents]]
id = "ann"
password = "acme-pass"
queues = ["sales"]
role = "admin"

[tenants.webchat]
queue = "sales"
"#
}

async fn login(server: &Server, tenant: &str, agent: &str, password: &str) -> String {
    let (status, v) = try_login(server, tenant, agent, password).await;
    assert_eq!(status, 200, "login {agent}: {v}");
    v["token"].as_str().expect("token").to_string()
}

async fn call(
    server: &Server,
    token: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, String) {
    let mut req = server
        .http
        .request(method, server.url(path))
        .bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap_or_default())
}

fn json_of(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or(Value::Null)
}

const AGENTS: &str = "/admin/tenants/demo/agents";

#[tokio::test]
async fn an_admin_creates_an_agent_who_logs_in_gets_offers_and_is_then_disabled() {
    let dir = Server::new_dir("administration");
    let config = config();
    let mut server = Server::start_in(dir.clone(), &config, &[]);
    let ada = login(&server, "demo", "ada", "demo").await;

    // Created by ada (an agent with the admin role): 201, no hash.
    let (status, body) = call(
        &server,
        &ada,
        Method::POST,
        AGENTS,
        Some(json!({"id": "dan", "name": "Dan New", "capacity": 1,
                    "queues": ["support"], "skills": ["en"], "password": "dan-secret-1"})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let dan = json_of(&body);
    assert_eq!(dan["role"], "agent");
    assert_eq!(dan["enabled"], true);
    assert!(
        !body.contains("argon2") && !body.contains("dan-secret-1"),
        "{body}"
    );

    // Clear errors: taken id 409, bad capacity 422, unknown agent 404.
    let (status, body) = call(
        &server,
        &ada,
        Method::POST,
        AGENTS,
        Some(json!({"id": "dan", "name": "Dan", "password": "dan-secret-1"})),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    let (status, body) = call(
        &server,
        &ada,
        Method::PUT,
        &format!("{AGENTS}/dan"),
        Some(json!({"capacity": 0})),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("capacity"), "{body}");
    let (status, _) = call(
        &server,
        &ada,
        Method::PUT,
        &format!("{AGENTS}/nobody"),
        Some(json!({"capacity": 2})),
    )
    .await;
    assert_eq!(status, 404);

    // Dan logs in with the new password and gets an offer.
    let mut dan = AgentClient::login_to(&server, "demo", "dan", "dan-secret-1").await;
    dan.available().await;
    let c1 = server.customer_says("v1", "Ann", "hello").await;
    assert_eq!(dan.events.next_of("offer").await["conversation"], c1);
    dan.accept(c1).await;

    // A new queue (the platform token), given to dan with a second place:
    // a transfer to it reaches dan.
    let (status, q) = server
        .admin(
            Method::POST,
            "/admin/tenants/demo/queues",
            Some(json!({"id": "vip", "name": "VIP", "rona_timeout_ms": 20000})),
        )
        .await;
    assert_eq!(status, 201, "{q}");
    let (status, body) = call(
        &server,
        &ada,
        Method::PUT,
        &format!("{AGENTS}/dan"),
        Some(json!({"capacity": 2, "queues": ["vip"]})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(json_of(&body)["capacity"], 2);
    let mut alice = AgentClient::login(&server, "alice").await;
    alice.available().await;
    let c2 = server.customer_says("v2", "Ben", "transfer me").await;
    alice
        .events
        .next_where("offer", |o| o["conversation"] == c2)
        .await;
    alice.accept(c2).await;
    alice
        .ok(
            &format!("/api/conversations/{c2}/transfer"),
            json!({"queue": "vip"}),
        )
        .await;
    let offer = dan
        .events
        .next_where("offer", |o| o["conversation"] == c2)
        .await;
    assert_eq!(offer["queue"], "vip");

    // Holding conversations: disabling is refused, nothing changes.
    let (status, body) = call(
        &server,
        &ada,
        Method::PUT,
        &format!("{AGENTS}/dan"),
        Some(json!({"enabled": false})),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("close them first"), "{body}");
    // Dan's offer goes back; dan ends and wraps up #1.
    dan.ok(&format!("/api/conversations/{c1}/end"), json!({}))
        .await;
    let w = dan.events.next_of("wrapup_required").await;
    let reason = w["reasons"][0]["code"]
        .as_str()
        .expect("a reason")
        .to_string();
    dan.ok(
        &format!("/api/conversations/{c1}/wrapup"),
        json!({"reason": reason}),
    )
    .await;
    // Still offered #2 (not accepted): disabling takes it back.
    let (status, body) = call(
        &server,
        &ada,
        Method::PUT,
        &format!("{AGENTS}/dan"),
        Some(json!({"enabled": false})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(json_of(&body)["enabled"], false);
    assert_eq!(json_of(&body)["state"], "logged_out");
    dan.events.closed_by_server().await;
    let (status, _) = dan.call(Method::GET, "/api/me", None).await;
    assert_eq!(status, 401);
    let (status, _) = try_login(&server, "demo", "dan", "dan-secret-1").await;
    assert_eq!(status, 401);

    // Everything survives a restart: dan still disabled, the queue there.
    server.kill();
    let server = Server::start_in(dir, &config, &[]);
    let (status, _) = try_login(&server, "demo", "dan", "dan-secret-1").await;
    assert_eq!(status, 401);
    let (status, list) = server.admin(Method::GET, AGENTS, None).await;
    assert_eq!(status, 200);
    let dan = list
        .as_array()
        .and_then(|l| l.iter().find(|a| a["id"] == "dan"))
        .cloned()
        .expect("dan survives");
    assert_eq!(dan["enabled"], false);
    assert_eq!(dan["capacity"], 2);
    assert_eq!(dan["queues"], json!(["vip"]));
    assert!(!list.to_string().contains("argon2"));
    let (_, queues) = server
        .admin(Method::GET, "/admin/tenants/demo/queues", None)
        .await;
    assert!(queues.to_string().contains("\"vip\""), "{queues}");

    // Enabled again with a new password: the new one works, not the old.
    let (status, body) = server
        .admin(
            Method::PUT,
            &format!("{AGENTS}/dan"),
            Some(json!({"enabled": true, "password": "dan-secret-2"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(!body.to_string().contains("argon2"));
    let (status, _) = try_login(&server, "demo", "dan", "dan-secret-1").await;
    assert_eq!(status, 401);
    login(&server, "demo", "dan", "dan-secret-2").await;
}

#[tokio::test]
async fn only_the_tenants_admins_administer_it() {
    let server = Server::start(&config());
    let alice = login(&server, "demo", "alice", "demo").await;
    let sam = login(&server, "demo", "sam", "demo").await;
    let ann = login(&server, "acme", "ann", "acme-pass").await;
    let ada = login(&server, "demo", "ada", "demo").await;
    let routes: [(Method, &str, Option<Value>); 7] = [
        (Method::GET, AGENTS, None),
        (
            Method::POST,
            AGENTS,
            Some(json!({"id": "eve", "name": "Eve", "password": "eve-secret"})),
        ),
        (
            Method::PUT,
            "/admin/tenants/demo/agents/bob",
            Some(json!({"capacity": 3})),
        ),
        (Method::GET, "/admin/tenants/demo/queues", None),
        (
            Method::POST,
            "/admin/tenants/demo/queues",
            Some(json!({"id": "new", "name": "New"})),
        ),
        (
            Method::PUT,
            "/admin/tenants/demo/queues/support",
            Some(json!({"rona_timeout_ms": 20000})),
        ),
        (
            Method::PUT,
            "/admin/tenants/demo/idle-reasons",
            Some(json!({"reasons": ["Lunch"]})),
        ),
    ];
    for (method, path, body) in &routes {
        for (who, token) in [("alice", &alice), ("sam", &sam), ("ann of acme", &ann)] {
            let (status, text) = call(&server, token, method.clone(), path, body.clone()).await;
            assert_eq!(status, 403, "{who} {method} {path}: {text}");
        }
    }
    for (method, path, body) in &routes {
        let (status, text) = call(&server, &ada, method.clone(), path, body.clone()).await;
        assert!(
            status == 200 || status == 201,
            "ada {method} {path}: {status} {text}"
        );
        assert!(!text.contains("argon2"), "{text}");
    }
    // The idle reasons reached the desktop's view.
    let (_, me) = call(&server, &alice, Method::GET, "/api/me", None).await;
    assert_eq!(json_of(&me)["idle_reasons"], json!(["Lunch"]));
    // A promoted agent administers at once; a demoted admin no longer does.
    let (status, _) = call(
        &server,
        &ada,
        Method::PUT,
        "/admin/tenants/demo/agents/sam",
        Some(json!({"role": "admin"})),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = call(&server, &sam, Method::GET, AGENTS, None).await;
    assert_eq!(status, 200);
    let (status, _) = call(
        &server,
        &sam,
        Method::PUT,
        "/admin/tenants/demo/agents/ada",
        Some(json!({"role": "agent"})),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = call(&server, &ada, Method::GET, AGENTS, None).await;
    assert_eq!(status, 403);
}

/// The journal's `supervisor_action` events of the demo tenant (the audit
/// trail), read from the server's SQLite file.
fn audit_trail(server: &Server) -> Vec<Value> {
    let path = server.dir.join("data").join("switchboard.db");
    let conn =
        rusqlite::Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("the journal opens");
    let mut stmt = conn
        .prepare(
            "SELECT body FROM events WHERE tenant = 'demo' AND type = 'supervisor_action'
             ORDER BY seq",
        )
        .expect("query");
    let rows = stmt.query_map([], |r| r.get::<_, String>(0)).expect("rows");
    rows.map(|r| json_of(&r.expect("row"))).collect()
}

#[tokio::test]
async fn only_the_tenants_admins_switch_masking_and_each_switch_is_audited() {
    const SETTINGS: &str = "/admin/tenants/demo/settings";
    let server = Server::start(&config());
    let alice = login(&server, "demo", "alice", "demo").await;
    let sam = login(&server, "demo", "sam", "demo").await;
    let ann = login(&server, "acme", "ann", "acme-pass").await;
    let ada = login(&server, "demo", "ada", "demo").await;
    for (who, token) in [("alice", &alice), ("sam", &sam), ("ann of acme", &ann)] {
        for (method, body) in [
            (Method::GET, None),
            (Method::PUT, Some(json!({"mask": false}))),
        ] {
            let (status, text) = call(&server, token, method.clone(), SETTINGS, body).await;
            assert_eq!(status, 403, "{who} {method}: {text}");
        }
    }
    let (status, text) = call(&server, &ada, Method::GET, SETTINGS, None).await;
    assert_eq!((status, json_of(&text)), (200, json!({"mask": true})));
    assert!(audit_trail(&server).is_empty(), "nothing changed yet");
    // A bad body changes nothing.
    let (status, _) = call(
        &server,
        &ada,
        Method::PUT,
        SETTINGS,
        Some(json!({"mask": "no"})),
    )
    .await;
    assert_eq!(status, 400);

    let (status, text) = call(
        &server,
        &ada,
        Method::PUT,
        SETTINGS,
        Some(json!({"mask": false})),
    )
    .await;
    assert_eq!((status, json_of(&text)), (200, json!({"mask": false})));
    let (_, text) = call(&server, &ada, Method::GET, SETTINGS, None).await;
    assert_eq!(json_of(&text), json!({"mask": false}));
    // Who turned it off, and when, is in the journal.
    let trail = audit_trail(&server);
    assert_eq!(trail.len(), 1, "{trail:?}");
    assert_eq!(trail[0]["supervisor"], "ada");
    assert_eq!(trail[0]["action"], "masking");
    assert_eq!(trail[0]["state"], "off");
    assert!(trail[0]["at"].as_u64().is_some());
    // It applies: a card number now reaches the agent as written.
    let mut desk = AgentClient::login(&server, "alice").await;
    desk.available().await;
    server
        .customer_says("v1", "Val", "my card 4111 1111 1111 1111")
        .await;
    let offer = desk.events.next_of("offer").await;
    assert!(
        offer["preview"]
            .as_str()
            .is_some_and(|p| p.contains("4111 1111 1111 1111")),
        "{offer}"
    );
    // Back on, by the platform token: audited as the platform.
    let (status, _) = server
        .admin(Method::PUT, SETTINGS, Some(json!({"mask": true})))
        .await;
    assert_eq!(status, 200);
    let trail = audit_trail(&server);
    assert_eq!(trail.len(), 2, "{trail:?}");
    assert_eq!(
        (&trail[1]["supervisor"], &trail[1]["state"]),
        (&json!("platform"), &json!("on"))
    );
}
