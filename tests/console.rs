//! The supervisors' console over real HTTP against the binary: the role
//! matrix (agent / supervisor / admin × every console route × own / other
//! tenant), the live overview and its WebSocket, and the report figures of
//! a scripted day run with the test clock.

mod common;
use common::*;
use serde_json::{json, Value};

/// The demo tenant with a supervisor (`sam`) and an admin (`ada`), plus a
/// second tenant `acme` with its own agent and supervisor.
fn config() -> String {
    demo_with_staff()
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

[[tenants.agents]]
id = "zed"
password = "acme-pass"
queues = []
role = "supervisor"

[tenants.webchat]
queue = "sales"
"#
}

async fn login(server: &Server, tenant: &str, agent: &str, password: &str) -> String {
    let (status, v) = try_login(server, tenant, agent, password).await;
    assert_eq!(status, 200, "login {agent}: {v}");
    v["token"].as_str().expect("token").to_string()
}

async fn get(server: &Server, token: &str, path: &str) -> (u16, String) {
    let resp = server
        .http
        .get(server.url(path))
        .bearer_auth(token)
        .send()
        .await
        .expect("request");
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap_or_default())
}

const ROUTES: [&str; 5] = [
    "/api/supervisor/overview",
    "/api/reports/queues",
    "/api/reports/agents",
    "/api/reports/queues?format=csv",
    "/api/reports/agents?format=csv",
];

#[tokio::test]
async fn the_role_matrix_holds_on_every_console_route() {
    let server = Server::start(&config());
    server.customer_says("d1", "Dee", "demo question").await;
    let resp = server
        .http
        .post(server.url("/channels/webchat/acme/messages"))
        .json(&json!({"visitor": "a1", "text": "acme question"}))
        .send()
        .await
        .expect("post");
    assert_eq!(resp.status().as_u16(), 202);

    // (tenant, agent, password, may see the console)
    let users = [
        ("demo", "alice", "demo", false),
        ("demo", "sam", "demo", true),
        ("demo", "ada", "demo", true),
        ("acme", "zoe", "acme-pass", false),
        ("acme", "zed", "acme-pass", true),
    ];
    for (tenant, agent, password, allowed) in users {
        let token = login(&server, tenant, agent, password).await;
        let (status, me) = get(&server, &token, "/api/me").await;
        assert_eq!(status, 200);
        let me: Value = serde_json::from_str(&me).expect("json");
        let role = me["role"].as_str().expect("role");
        assert_eq!(role != "agent", allowed, "{agent}: role {role}");
        for route in ROUTES {
            let (status, body) = get(&server, &token, route).await;
            if !allowed {
                assert_eq!(status, 403, "{agent} {route}: {body}");
                continue;
            }
            assert_eq!(status, 200, "{agent} {route}: {body}");
            // Own tenant only: the other tenant's queues and agents never
            // appear.
            let (own, other) = if tenant == "demo" {
                (["support", "alice"], ["sales", "zoe", "zed"])
            } else {
                (["sales", "zoe"], ["support", "alice", "sam"])
            };
            assert!(
                own.iter().any(|o| body.contains(o)),
                "{agent} {route}: {body}"
            );
            for o in other {
                assert!(!body.contains(o), "{agent} {route} shows {o}: {body}");
            }
        }
        // The WebSocket: refused to agents, the own overview to the others.
        let url = server.ws_url(&format!("/api/supervisor/events?token={token}"));
        let conn = tokio_tungstenite::connect_async(&url).await;
        if allowed {
            let mut ev = Events::connect(&url).await;
            let o = ev.next_of("overview").await;
            let text = o.to_string();
            assert!(!text.contains(if tenant == "demo" { "sales" } else { "support" }));
            drop(conn);
        } else {
            let err = conn.expect_err("agents get no console socket");
            assert!(err.to_string().contains("403"), "{err}");
        }
    }
    // Without a session: 401 everywhere.
    for route in ROUTES {
        let resp = server
            .http
            .get(server.url(route))
            .send()
            .await
            .expect("req");
        assert_eq!(resp.status().as_u16(), 401, "{route}");
    }
}

#[tokio::test]
async fn the_overview_follows_events_live() {
    let server = Server::start(&config());
    let token = login(&server, "demo", "sam", "demo").await;
    let mut console = Console::open(&server, &token).await;
    console
        .until(|v| v["conversations"].as_array().is_some_and(Vec::is_empty))
        .await;
    let mut alice = AgentClient::login(&server, "alice").await;
    alice.available().await;
    let id = server.customer_says("v1", "Val", "hello").await;
    let o = console
        .until(|v| {
            v["conversations"]
                .as_array()
                .is_some_and(|c| c.iter().any(|c| c["state"] == "offered"))
        })
        .await;
    assert_eq!(console.types.first().map(String::as_str), Some("overview"));
    assert_eq!(
        console.types.last().map(String::as_str),
        Some("overview_changes")
    );
    let conv = &o["conversations"][0];
    assert_eq!(conv["id"], id);
    assert_eq!(conv["queue"], "support");
    assert_eq!(conv["agent"], "alice");
    let support = o["queues"]
        .as_array()
        .and_then(|q| q.iter().find(|q| q["id"] == "support"))
        .expect("support");
    assert_eq!(support["id"], "support");
    assert_eq!(support["offered"], 1);
    let (status, body) = get(&server, &token, "/api/supervisor/overview").await;
    assert_eq!(status, 200);
    let v: Value = serde_json::from_str(&body).expect("json");
    let a = v["agents"]
        .as_array()
        .and_then(|a| a.iter().find(|a| a["id"] == "alice"))
        .expect("alice")
        .clone();
    assert_eq!(a["state"], "available");
    assert_eq!(a["load"], 1);
    assert_eq!(a["capacity"], 5);
    assert!(a["since"].is_string(), "{a}");
    for key in [
        "waiting",
        "longest_wait_ms",
        "agents_available",
        "agents_busy",
        "name",
    ] {
        assert!(!v["queues"][0][key].is_null(), "{key}");
    }
}

/// The scripted day, run through the engine with the test clock: two
/// conversations handled (waits of 10 s and 35 s, one RONA, handle times
/// of 60 s and 30 s), one whose customer leaves while waiting (abandoned)
/// and one a supervisor closes before any agent took it (dropped). Returns
/// the report period (query string), the wrap-up reason used and alice's
/// client (her socket keeps her present).
async fn scripted_day(server: &Server, token: &str) -> (String, String, AgentClient) {
    let mut alice = AgentClient::login(server, "alice").await;
    // Everything after this instant, for a day.
    let (_, me) = get(server, token, "/api/supervisor/overview").await;
    let me: Value = serde_json::from_str(&me).expect("json");
    let start = me["at"].as_str().expect("at").to_string();
    let from = time::OffsetDateTime::parse(&start, &time::format_description::well_known::Rfc3339)
        .expect("time")
        - time::Duration::seconds(1);
    let to = from + time::Duration::days(1);
    let fmt = |t: time::OffsetDateTime| {
        t.format(&time::format_description::well_known::Rfc3339)
            .expect("format")
    };
    let period = format!("from={}&to={}", urlencode(&fmt(from)), urlencode(&fmt(to)));
    alice.available().await;

    // 1: waits 10 s, handled 60 s.
    let c1 = server.customer_says("v1", "One", "first").await;
    alice.events.next_of("offer").await;
    server.advance(10_000).await;
    alice.accept(c1).await;
    server.advance(60_000).await;
    alice
        .ok(&format!("/api/conversations/{c1}/end"), json!({}))
        .await;
    let w = alice.events.next_of("wrapup_required").await;
    let reason = w["reasons"][0]["code"].as_str().expect("code").to_string();
    alice
        .ok(
            &format!("/api/conversations/{c1}/wrapup"),
            json!({"reason": reason}),
        )
        .await;

    // 2: not answered in 30 s (RONA), offered again, accepted 5 s later
    // (a wait of 35 s), handled 30 s.
    let c2 = server.customer_says("v2", "Two", "second").await;
    alice.events.next_of("offer").await;
    server.advance(30_000).await;
    alice
        .events
        .next_where("agent_state", |v| v["state"] == "rona")
        .await;
    alice.available().await;
    alice.events.next_of("offer").await;
    server.advance(5_000).await;
    alice.accept(c2).await;
    server.advance(30_000).await;
    alice
        .ok(&format!("/api/conversations/{c2}/end"), json!({}))
        .await;
    alice.events.next_of("wrapup_required").await;
    alice
        .ok(
            &format!("/api/conversations/{c2}/wrapup"),
            json!({"reason": reason}),
        )
        .await;

    // 3: the customer leaves after 20 s of waiting (abandoned).
    let c3 = server.customer_says("v3", "Three", "third").await;
    alice
        .events
        .next_where("offer", |v| v["conversation"] == c3)
        .await;
    server.advance(20_000).await;
    let visitor = server.visitor_token("v3").expect("visitor token");
    let resp = server
        .http
        .post(server.url("/channels/webchat/demo/leave"))
        .bearer_auth(&visitor)
        .send()
        .await
        .expect("leave");
    assert_eq!(resp.status().as_u16(), 200);
    alice
        .events
        .next_where("offer_rescinded", |v| v["conversation"] == c3)
        .await;
    // Leaving twice: nothing open any more.
    let resp = server
        .http
        .post(server.url("/channels/webchat/demo/leave"))
        .bearer_auth(&visitor)
        .send()
        .await
        .expect("leave");
    assert_eq!(resp.status().as_u16(), 404);

    // 4: closed by the supervisor before any agent took it (dropped).
    let c4 = server.customer_says("v4", "Four", "fourth").await;
    let (status, v) = call(
        server,
        token,
        reqwest::Method::POST,
        &format!("/api/supervisor/conversations/{c4}/close"),
        json!({"reason": "spam"}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    (period, reason, alice)
}

#[tokio::test]
async fn report_figures_match_a_scripted_day() {
    let server = Server::start(&config());
    let token = login(&server, "demo", "sam", "demo").await;
    // The console's socket keeps the supervisor present (as the desktop's
    // keeps an agent).
    let mut feed =
        Events::connect(&server.ws_url(&format!("/api/supervisor/events?token={token}"))).await;
    feed.next_of("overview").await;
    let (period, reason, _alice) = scripted_day(&server, &token).await;

    let (status, body) = get(&server, &token, &format!("/api/reports/queues?{period}")).await;
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).expect("json");
    let support = v["queues"]
        .as_array()
        .and_then(|q| q.iter().find(|q| q["queue"] == "support"))
        .expect("support")
        .clone();
    assert_eq!(support["offered"], 4, "{support}");
    assert_eq!(support["accepted"], 2);
    assert_eq!(support["rona"], 1);
    assert_eq!(support["abandoned"], 1);
    assert_eq!(support["dropped"], 1);
    assert_eq!(support["transferred"], 0);
    about(&support["wait_avg_ms"], (10_000 + 35_000) / 2);
    about(&support["wait_p90_ms"], 35_000);
    about(&support["handle_avg_ms"], (60_000 + 30_000) / 2);
    assert_eq!(support["wrapup_reasons"][&reason], 2);
    // Per hour (the charts): the same volume, hours on the hour, and the
    // waits add up.
    let hours = support["hours"].as_array().expect("hours");
    let sum = |k: &str| hours.iter().filter_map(|h| h[k].as_u64()).sum::<u64>();
    assert_eq!((sum("offered"), sum("accepted")), (4, 2), "{support}");
    assert!(hours
        .iter()
        .all(|h| h["start"].as_u64().is_some_and(|s| s % 3_600_000 == 0)));
    let waited: u64 = hours
        .iter()
        .map(|h| h["wait_avg_ms"].as_u64().unwrap_or(0) * h["accepted"].as_u64().unwrap_or(0))
        .sum();
    // (each hour's average is rounded down: at most 1 ms per hour lost)
    about(&json!(waited + hours.len() as u64), 45_000);

    let (status, body) = get(&server, &token, &format!("/api/reports/agents?{period}")).await;
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).expect("json");
    let a = v["agents"]
        .as_array()
        .and_then(|a| a.iter().find(|a| a["agent"] == "alice"))
        .expect("alice")
        .clone();
    assert_eq!(a["handled"], 2, "{a}");
    about(&a["handle_ms"], 90_000);
    assert_eq!(a["rona"], 1);
    // Time in RONA: from the timeout to setting Available (no clock move).
    about(&a["states_ms"]["rona"], 0);
    let available = a["states_ms"]["available"].as_u64().expect("available");
    assert!(available >= 135_000, "{a}");

    // The CSV: a header row, then one row per queue.
    let (status, csv) = get(
        &server,
        &token,
        &format!("/api/reports/queues?{period}&format=csv"),
    )
    .await;
    assert_eq!(status, 200);
    let mut lines = csv.lines();
    assert!(lines.next().is_some_and(
        |h| h.starts_with("queue,offered,accepted,dropped,rona") && h.ends_with(",abandoned")
    ));
    let row = csv
        .lines()
        .find(|l| l.starts_with("support,"))
        .expect("support row");
    assert!(row.starts_with("support,4,2,1,1,0,"), "{row}");
    assert!(row.ends_with(&format!(",{reason}=2,1")), "{row}");
    // A period before the day holds nothing.
    let (_, body) = get(
        &server,
        &token,
        "/api/reports/queues?from=2000-01-01T00:00:00Z&to=2000-01-02T00:00:00Z",
    )
    .await;
    let v: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["queues"][0]["offered"], 0);
    // Bad periods are 400.
    for q in [
        "from=yesterday",
        "format=xml",
        "from=2000-01-02T00:00:00Z&to=2000-01-01T00:00:00Z",
    ] {
        let (status, _) = get(&server, &token, &format!("/api/reports/queues?{q}")).await;
        assert_eq!(status, 400, "{q}");
    }
}

/// How many snapshots of the demo tenant the server's SQLite file holds.
fn snapshots(server: &Server) -> i64 {
    let path = server.dir.join("data").join("switchboard.db");
    rusqlite::Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .and_then(|c| {
            c.query_row(
                "SELECT COUNT(*) FROM snapshots WHERE tenant = 'demo'",
                [],
                |r| r.get(0),
            )
        })
        .unwrap_or(0)
}

#[tokio::test]
async fn report_figures_are_the_same_after_a_snapshot_and_a_restart() {
    // A snapshot every 5 events: the scripted day ends well past the
    // latest one, so most of its facts are before it.
    let config = config().replacen(
        "default_queue = \"support\"",
        "default_queue = \"support\"\nsnapshot_every = 5",
        1,
    );
    let dir = Server::new_dir("console-restart");
    let mut server = Server::start_in(dir.clone(), &config, &[]);
    let token = login(&server, "demo", "sam", "demo").await;
    let mut feed =
        Events::connect(&server.ws_url(&format!("/api/supervisor/events?token={token}"))).await;
    feed.next_of("overview").await;
    let (period, _, alice) = scripted_day(&server, &token).await;
    // The snapshot is written off the engine's path: wait for it (a bound
    // on a hang, not a timing assertion).
    let deadline = std::time::Instant::now() + PATIENCE;
    while snapshots(&server) == 0 {
        assert!(std::time::Instant::now() < deadline, "no snapshot taken");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let report = |server: &Server, token: String, kind: &'static str| {
        let path = format!("/api/reports/{kind}?{period}");
        let server_url = server.url(&path);
        let http = server.http.clone();
        async move {
            let resp = http
                .get(server_url)
                .bearer_auth(token)
                .send()
                .await
                .expect("report");
            assert_eq!(resp.status().as_u16(), 200);
            resp.json::<Value>().await.expect("json")
        }
    };
    let queues = report(&server, token.clone(), "queues").await;
    let agents = report(&server, token.clone(), "agents").await;
    let support = queues["queues"][0].clone();
    assert_eq!(support["queue"], "support");
    assert_eq!(support["offered"], 4, "{support}");
    drop((alice, feed));
    server.kill();

    let server = Server::start_in(dir, &config, &[]);
    let token = login(&server, "demo", "sam", "demo").await;
    assert!(
        server
            .logs()
            .contains("report figures read back from the journal"),
        "the figures came from before the snapshot"
    );
    let after = report(&server, token.clone(), "queues").await;
    assert_eq!(
        after["queues"], queues["queues"],
        "queue figures after the restart"
    );
    let after = report(&server, token, "agents").await;
    let figures = |v: &Value| -> Vec<Value> {
        v["agents"]
            .as_array()
            .expect("agents")
            .iter()
            .map(|a| json!([a["agent"], a["handled"], a["handle_ms"], a["rona"]]))
            .collect()
    };
    assert_eq!(figures(&after), figures(&agents));
    let alice = after["agents"]
        .as_array()
        .and_then(|a| a.iter().find(|a| a["agent"] == "alice"))
        .expect("alice");
    assert_eq!(alice["handled"], 2, "{alice}");
}

/// The test clock moves by the steps the test gives plus the wall time the
/// requests take: a figure is its scripted value plus at most that.
fn about(v: &Value, expected: u64) {
    let got = v.as_u64().expect("a number");
    assert!(
        (expected..expected + 3_000).contains(&got),
        "{got} is not about {expected}"
    );
}

fn urlencode(s: &str) -> String {
    s.replace('+', "%2B").replace(':', "%3A")
}

async fn call(
    server: &Server,
    token: &str,
    method: reqwest::Method,
    path: &str,
    body: Value,
) -> (u16, Value) {
    let resp = server
        .http
        .request(method, server.url(path))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .expect("request");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// The supervisor actions: (method, path, body) on the demo tenant's
/// agent `alice` and conversation `id`.
fn actions(id: u64) -> [(reqwest::Method, String, Value); 4] {
    [
        (
            reqwest::Method::PUT,
            "/api/supervisor/agents/alice/state".into(),
            json!({"state": "idle", "reason": "Break"}),
        ),
        (
            reqwest::Method::POST,
            format!("/api/supervisor/conversations/{id}/move"),
            json!({"queue": "billing"}),
        ),
        (
            reqwest::Method::POST,
            format!("/api/supervisor/conversations/{id}/close"),
            json!({"reason": "stuck"}),
        ),
        (
            reqwest::Method::GET,
            format!("/api/supervisor/conversations/{id}"),
            Value::Null,
        ),
    ]
}

#[tokio::test]
async fn supervisor_actions_are_refused_to_agents_and_to_other_tenants() {
    let server = Server::start(&config());
    let mut alice = AgentClient::login(&server, "alice").await;
    alice.available().await;
    let id = server.customer_says("v1", "Val", "hello").await;
    alice.events.next_of("offer").await;
    let agent = login(&server, "demo", "bob", "demo").await;
    let other = login(&server, "acme", "zed", "acme-pass").await;
    for (method, path, body) in actions(id) {
        let (status, v) = call(&server, &agent, method.clone(), &path, body.clone()).await;
        assert_eq!(status, 403, "agent {method} {path}: {v}");
        let (status, v) = call(&server, &other, method.clone(), &path, body).await;
        assert_eq!(status, 404, "other tenant {method} {path}: {v}");
    }
    // Nothing changed: alice is still available with her offer.
    let sam = login(&server, "demo", "sam", "demo").await;
    let (status, v) = call(
        &server,
        &sam,
        reqwest::Method::GET,
        &format!("/api/supervisor/conversations/{id}"),
        Value::Null,
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["state"], "offered");
    assert_eq!(v["queue"], "support");
    // Bad requests from a supervisor.
    let (status, v) = call(
        &server,
        &sam,
        reqwest::Method::PUT,
        "/api/supervisor/agents/alice/state",
        json!({"state": "asleep"}),
    )
    .await;
    assert_eq!(status, 422, "{v}");
    let (status, v) = call(
        &server,
        &sam,
        reqwest::Method::POST,
        &format!("/api/supervisor/conversations/{id}/move"),
        json!({"queue": "nowhere"}),
    )
    .await;
    assert_eq!(status, 404, "{v}");
    let (status, v) = call(
        &server,
        &sam,
        reqwest::Method::POST,
        &format!("/api/supervisor/conversations/{id}/close"),
        json!({"reason": "   "}),
    )
    .await;
    assert_eq!(status, 422, "{v}");
}

#[tokio::test]
async fn a_supervisor_logs_out_an_agent_and_its_desktop_follows() {
    let server = Server::start(&config());
    let mut alice = AgentClient::login(&server, "alice").await;
    alice.available().await;
    let mut bob = AgentClient::login(&server, "bob").await;
    bob.available().await;
    let id = server.customer_says("v1", "Val", "hello").await;
    let offer = alice.events.next_of("offer").await;
    assert_eq!(offer["conversation"], id);
    let sam = login(&server, "demo", "sam", "demo").await;
    let (status, v) = call(
        &server,
        &sam,
        reqwest::Method::PUT,
        "/api/supervisor/agents/alice/state",
        json!({"state": "logged_out"}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["state"], "logged_out");
    let rescinded = alice.events.next_of("offer_rescinded").await;
    assert_eq!(rescinded["conversation"], id);
    let state = alice.events.next_of("agent_state").await;
    assert_eq!(state["state"], "logged_out");
    // The offer went back to the queue and on to bob.
    let offer = bob.events.next_of("offer").await;
    assert_eq!(offer["conversation"], id);
    // Her session ended with her login.
    assert_eq!(alice.events.closed_by_server().await, Some(4001));
    let (status, _) = alice.call(reqwest::Method::GET, "/api/me", None).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn a_supervisor_moves_monitors_and_closes_a_conversation_with_a_reason() {
    let server = Server::start(&config());
    let mut alice = AgentClient::login(&server, "alice").await;
    let sam = login(&server, "demo", "sam", "demo").await;
    let first = server.customer_says("v1", "Val", "hello").await;
    let id = server
        .customer_says("v2", "Vic", "my card is 4111 1111 1111 1111")
        .await;
    // Waiting (nobody available): moved to billing, keeping its place.
    let (status, v) = call(
        &server,
        &sam,
        reqwest::Method::POST,
        &format!("/api/supervisor/conversations/{id}/move"),
        json!({"queue": "billing"}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["queue"], "billing");
    assert_eq!(v["state"], "queued");
    let (status, o) = get(&server, &sam, "/api/supervisor/overview").await;
    assert_eq!(status, 200);
    let o: Value = serde_json::from_str(&o).expect("json");
    let queue_of = |c: u64| {
        o["conversations"]
            .as_array()
            .and_then(|cs| cs.iter().find(|x| x["id"] == c))
            .map(|x| x["queue"].clone())
    };
    assert_eq!(queue_of(id), Some(json!("billing")));
    assert_eq!(queue_of(first), Some(json!("support")));

    // Monitored on the console socket: masked transcript, then live events.
    let mut feed =
        Events::connect(&server.ws_url(&format!("/api/supervisor/events?token={sam}"))).await;
    feed.send(&json!({"type": "monitor", "conversation": id}))
        .await;
    let started = feed.next_of("monitor_started").await;
    let text = started["conversation"]["messages"].to_string();
    assert!(text.contains("************1111"), "{text}");
    assert!(!text.contains("4111 1111"), "{text}");

    alice.available().await;
    let offer = alice.events.next_of("offer").await;
    assert_eq!(offer["conversation"], first, "the oldest first");
    alice.accept(first).await;
    let offer = alice.events.next_of("offer").await;
    assert_eq!(offer["conversation"], id);
    assert_eq!(offer["queue"], "billing");
    alice.accept(id).await;
    feed.next_where("monitor", |v| v["event"]["type"] == "conversation_started")
        .await;
    server.customer_says("v2", "Vic", "anyone there?").await;
    let m = feed
        .next_where("monitor", |v| v["event"]["type"] == "message")
        .await;
    assert_eq!(m["event"]["text"], "anyone there?");

    // Closed with a reason the agent sees; wrap-up as for an end.
    let (status, v) = call(
        &server,
        &sam,
        reqwest::Method::POST,
        &format!("/api/supervisor/conversations/{id}/close"),
        json!({"reason": "Customer left hours ago"}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["state"], "ended");
    let notice = alice
        .events
        .next_where("message", |m| {
            m["conversation"] == id && m["from"] == "system"
        })
        .await;
    assert_eq!(
        notice["text"],
        "Closed by Sam Super: Customer left hours ago"
    );
    let ended = alice.events.next_of("conversation_ended").await;
    assert_eq!(ended["conversation"], id);
    assert_eq!(ended["by"], "sam");
    let wrapup = alice.events.next_of("wrapup_required").await;
    assert_eq!(wrapup["conversation"], id);
    feed.next_where("monitor", |v| v["event"]["type"] == "conversation_ended")
        .await;
    // Closed already: a conflict.
    let (status, _) = call(
        &server,
        &sam,
        reqwest::Method::POST,
        &format!("/api/supervisor/conversations/{id}/close"),
        json!({"reason": "again"}),
    )
    .await;
    assert_eq!(status, 409);
}

#[tokio::test]
async fn a_supervisor_joins_a_conversation_as_its_third_participant() {
    let server = Server::start(&config());
    let mut alice = AgentClient::login(&server, "alice").await;
    alice.available().await;
    let id = server.customer_says("v-join", "Ana", "help please").await;
    let mut visitor = server.visitor_events("v-join").await;
    alice.events.next_of("offer").await;
    alice.accept(id).await;
    let join = format!("/api/supervisor/conversations/{id}/join");

    // An agent may not; another tenant's supervisor finds nothing.
    let (status, _) = alice.post(&join, json!({})).await;
    assert_eq!(status, 403);
    let zed = login(&server, "acme", "zed", "acme-pass").await;
    let resp = server
        .http
        .post(server.url(&join))
        .bearer_auth(&zed)
        .send()
        .await
        .expect("join");
    assert_eq!(resp.status().as_u16(), 404);

    // Sam joins (logged in on the desktop), writes, and the customer and
    // alice see it; the audit trail keeps who did it.
    let mut sam = AgentClient::login(&server, "sam").await;
    let (status, view) = sam.post(&join, json!({})).await;
    assert_eq!(status, 200, "{view}");
    let started = alice.events.next_of("conference_started").await;
    assert_eq!(started["agent"], "sam");
    sam.events.next_of("conference_started").await;
    sam.ok(
        &format!("/api/conversations/{id}/messages"),
        json!({"text": "A supervisor here: we will sort it out"}),
    )
    .await;
    let m = visitor
        .next_where("message", |m| m["from"] == "agent")
        .await;
    assert_eq!(m["text"], "A supervisor here: we will sort it out");
    let (status, _) = sam.post(&join, json!({})).await;
    assert_eq!(status, 409, "already in");
    sam.ok(
        &format!("/api/conversations/{id}/conference/leave"),
        json!({}),
    )
    .await;
    alice.events.next_of("participant_left").await;
    let (_, transcript) = server
        .admin(
            reqwest::Method::GET,
            &format!("/admin/tenants/demo/conversations/{id}/messages"),
            None,
        )
        .await;
    let texts = transcript.to_string();
    assert!(
        texts.contains("Sam Super joined the conversation"),
        "{texts}"
    );
    assert!(texts.contains("Sam Super left the conversation"), "{texts}");
}

#[tokio::test]
async fn a_tenant_admin_sees_and_reloads_its_scripts_and_nobody_elses() {
    let server = Server::start(&config());
    let ada = login(&server, "demo", "ada", "demo").await;
    let sam = login(&server, "demo", "sam", "demo").await;
    let alice = login(&server, "demo", "alice", "demo").await;

    // The scripts of the live generation, with their calls and errors.
    let (status, body) = get(&server, &ada, "/admin/tenants/demo/scripts").await;
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).expect("json");
    let routing = v["scripts"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["role"] == "routing"))
        .expect("a routing script")["file"]
        .as_str()
        .expect("file")
        .to_string();
    // Its source, read-only; nothing outside the generation.
    let (status, body) = get(
        &server,
        &ada,
        &format!(
            "/admin/tenants/demo/scripts/source?file={}",
            urlencode(&routing)
        ),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let src: Value = serde_json::from_str(&body).expect("json");
    assert!(
        src["source"]
            .as_str()
            .is_some_and(|s| s.contains("function")),
        "{src}"
    );
    for file in ["../../../../etc/passwd", "routing/nope.lua", "/etc/passwd"] {
        let (status, _) = get(
            &server,
            &ada,
            &format!(
                "/admin/tenants/demo/scripts/source?file={}",
                urlencode(file)
            ),
        )
        .await;
        assert_eq!(status, 404, "{file}");
    }
    // A reload from the console.
    let resp = server
        .http
        .post(server.url("/admin/tenants/demo/reload"))
        .bearer_auth(&ada)
        .send()
        .await
        .expect("reload");
    assert_eq!(resp.status().as_u16(), 200);

    // A supervisor, an agent, or the admin of another tenant: 403.
    for (who, token, path) in [
        ("sam", &sam, "/admin/tenants/demo/scripts"),
        ("alice", &alice, "/admin/tenants/demo/scripts"),
        ("ada elsewhere", &ada, "/admin/tenants/acme/scripts"),
    ] {
        let (status, body) = get(&server, token, path).await;
        assert_eq!(status, 403, "{who}: {body}");
    }
    // Platform routes stay the platform admin's.
    let resp = server
        .http
        .post(server.url("/admin/clock/advance"))
        .bearer_auth(&ada)
        .json(&json!({"ms": 1}))
        .send()
        .await
        .expect("advance");
    assert_eq!(resp.status().as_u16(), 401);
}

/// A console socket with the page's state rebuilt from its frames: the
/// whole `overview` first, then each `overview_changes` applied by id (as
/// web/console.js does).
struct Console {
    ws: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    view: Value,
    /// Frame types received, in order.
    types: Vec<String>,
}

impl Console {
    async fn open(server: &Server, token: &str) -> Console {
        let url = server.ws_url(&format!("/api/supervisor/events?token={token}"));
        let (ws, _) = tokio_tungstenite::connect_async(&url)
            .await
            .expect("console socket");
        Console {
            ws,
            view: Value::Null,
            types: Vec::new(),
        }
    }

    fn apply(&mut self, frame: Value) {
        let ty = frame["type"].as_str().unwrap_or_default().to_string();
        match ty.as_str() {
            "overview" => self.view = frame["overview"].clone(),
            "overview_changes" => {
                assert!(self.view.is_object(), "changes before any overview");
                self.view["at"] = frame["at"].clone();
                self.view["queues"] = frame["queues"].clone();
                for (list, rows) in [
                    ("agents", &frame["agents"]),
                    ("conversations", &frame["conversations"]),
                ] {
                    let mut have = self.view[list].as_array().cloned().unwrap_or_default();
                    for row in rows.as_array().into_iter().flatten() {
                        have.retain(|r| r["id"] != row["id"]);
                        have.push(row.clone());
                    }
                    if list == "conversations" {
                        let removed = frame["removed"].as_array().cloned().unwrap_or_default();
                        have.retain(|r| !removed.contains(&r["id"]));
                        have.sort_by_key(|r| r["id"].as_u64());
                    } else {
                        have.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
                    }
                    self.view[list] = Value::Array(have);
                }
            }
            _ => {}
        }
        self.types.push(ty);
    }

    /// The next frame, applied; false when none came within `wait`.
    async fn next(&mut self, wait: std::time::Duration) -> bool {
        use futures_util::StreamExt;
        match tokio::time::timeout(wait, self.ws.next()).await {
            Ok(Some(Ok(tokio_tungstenite::tungstenite::Message::Text(t)))) => {
                let v: Value = serde_json::from_str(&t).expect("frame is JSON");
                self.apply(v);
                true
            }
            Ok(Some(Ok(_))) => true,
            Ok(other) => panic!("console socket ended: {other:?}"),
            Err(_) => false,
        }
    }

    /// Read frames until the rebuilt page satisfies `pred` (a bound on a
    /// hang, not a timing assertion); returns it.
    async fn until(&mut self, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while !(self.view.is_object() && pred(&self.view)) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "never shown; the page: {:#}",
                self.view
            );
            self.next(std::time::Duration::from_millis(300)).await;
        }
        self.view.clone()
    }

    /// Read frames until the rebuilt page equals a fresh
    /// `GET /api/supervisor/overview` (a bound on a hang, not a timing
    /// assertion); returns it.
    async fn settles_on_overview(&mut self, server: &Server, token: &str) -> Value {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let (status, body) = get(server, token, "/api/supervisor/overview").await;
            assert_eq!(status, 200, "{body}");
            let fresh: Value = serde_json::from_str(&body).expect("json");
            if timeless(&self.view) == timeless(&fresh) {
                return fresh;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the page never caught up:\n{:#}\nfresh:\n{:#}",
                self.view,
                fresh
            );
            self.next(std::time::Duration::from_millis(300)).await;
        }
    }
}

/// An overview without what only the clock moves (`at`, the longest
/// waits).
fn timeless(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(o) = v.as_object_mut() {
        o.remove("at");
    }
    for q in v["queues"].as_array_mut().into_iter().flatten() {
        if let Some(o) = q.as_object_mut() {
            o.remove("longest_wait_ms");
        }
    }
    v
}

fn row<'a>(overview: &'a Value, list: &str, id: &Value) -> Option<&'a Value> {
    overview[list]
        .as_array()
        .and_then(|rows| rows.iter().find(|r| &r["id"] == id))
}

/// The console's projection against what the engine itself shows (each
/// conversation's supervisor route and each agent's `/api/me`), after a
/// scripted sequence: customers write, offers, an accept, a transfer, a
/// RONA with the test clock, a supervisor's move and close, a customer
/// who leaves, an agent who logs out. And a console socket that applied
/// every diff holds exactly the fresh overview.
#[tokio::test]
async fn the_projection_equals_the_engine_after_a_scripted_sequence() {
    let server = Server::start(&config());
    let sam = login(&server, "demo", "sam", "demo").await;
    let mut console = Console::open(&server, &sam).await;
    let mut alice = AgentClient::login(&server, "alice").await;
    let mut bob = AgentClient::login(&server, "bob").await;
    let carol = AgentClient::login(&server, "carol").await;
    alice.available().await;

    // Offered to alice, accepted, then transferred to billing.
    let c1 = server
        .handled(&mut alice, Customer::webchat("p1", "One"), "first")
        .await;
    // Offered to alice and left to ring: RONA.
    let c2 = server.customer_says("p2", "Two", "second").await;
    alice
        .events
        .next_where("offer", |o| o["conversation"] == c2)
        .await;
    server.advance(31_000).await;
    alice
        .events
        .next_where("offer_rescinded", |o| o["conversation"] == c2)
        .await;
    alice
        .ok(
            &format!("/api/conversations/{c1}/transfer"),
            json!({"queue": "billing"}),
        )
        .await;
    // Waiting ones: one moved, one closed, one whose customer leaves.
    let c3 = server.customer_says("p3", "Three", "third").await;
    let c4 = server.customer_says("p4", "Four", "fourth").await;
    let c5 = server.customer_says("p5", "Five", "fifth").await;
    let (status, v) = call(
        &server,
        &sam,
        reqwest::Method::POST,
        &format!("/api/supervisor/conversations/{c3}/move"),
        json!({"queue": "billing"}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let (status, v) = call(
        &server,
        &sam,
        reqwest::Method::POST,
        &format!("/api/supervisor/conversations/{c4}/close"),
        json!({"reason": "spam"}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let token = server.visitor_token("p5").expect("p5's token");
    let resp = server
        .http
        .post(server.url("/channels/webchat/demo/leave"))
        .bearer_auth(token)
        .send()
        .await
        .expect("leave");
    assert_eq!(resp.status().as_u16(), 200);
    // Bob takes what he is offered; carol is logged out by the supervisor.
    bob.available().await;
    let offer = bob.events.next_of("offer").await;
    let taken = offer["conversation"].as_u64().expect("id");
    bob.accept(taken).await;
    let (status, v) = call(
        &server,
        &sam,
        reqwest::Method::PUT,
        "/api/supervisor/agents/carol/state",
        json!({"state": "logged_out"}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    drop(carol);

    // The page rebuilt from diffs is exactly the fresh overview.
    let overview = console.settles_on_overview(&server, &sam).await;
    assert_eq!(console.types.first().map(String::as_str), Some("overview"));
    assert!(
        console.types.iter().any(|t| t == "overview_changes"),
        "{:?}",
        console.types
    );

    // Every conversation as the engine shows it.
    for id in [c1, c2, c3, c4, c5] {
        let (status, body) = get(
            &server,
            &sam,
            &format!("/api/supervisor/conversations/{id}"),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let engine: Value = serde_json::from_str(&body).expect("json");
        let state = engine["state"].as_str().expect("state");
        let listed = row(&overview, "conversations", &json!(id));
        if state == "wrapped_up" || state == "dropped" {
            assert!(listed.is_none(), "{id} is {state} yet listed: {listed:?}");
            continue;
        }
        let listed = listed.unwrap_or_else(|| panic!("{id} ({state}) not listed"));
        assert_eq!(listed["state"], engine["state"], "{id}");
        assert_eq!(listed["queue"], engine["queue"], "{id}");
        assert_eq!(listed["customer_name"], engine["customer_name"], "{id}");
        assert_eq!(listed["channel"], engine["channel"], "{id}");
        if !engine["owner"].is_null() {
            assert_eq!(listed["agent"], engine["owner"], "{id}");
        }
    }
    assert!(row(&overview, "conversations", &json!(c4)).is_none());
    assert!(row(&overview, "conversations", &json!(c5)).is_none());
    assert_eq!(
        row(&overview, "conversations", &json!(c3)).map(|c| c["queue"].clone()),
        Some(json!("billing"))
    );
    // Every agent as its own desktop shows it.
    for agent in [&alice, &bob] {
        let (status, me) = agent.call(reqwest::Method::GET, "/api/me", None).await;
        assert_eq!(status, 200, "{me}");
        let listed = row(&overview, "agents", &me["agent"]).expect("listed");
        assert_eq!(listed["state"], me["state"], "{}", agent.name);
        assert_eq!(listed["reason"], me["reason"], "{}", agent.name);
        let concerns = me["conversations"].as_array().map_or(0, Vec::len);
        assert_eq!(listed["load"], json!(concerns), "{}: {me}", agent.name);
        for c in me["conversations"].as_array().into_iter().flatten() {
            if c["offer"].is_object() {
                let offered = row(&overview, "conversations", &c["conversation"]).expect("listed");
                assert_eq!(offered["agent"], me["agent"]);
            }
        }
    }
    // The queue figures (kept as rows change) are those the rows give
    // (in the demo every agent is in both queues).
    let convs = overview["conversations"].as_array().expect("conversations");
    let agents = overview["agents"].as_array().expect("agents");
    let queued_agents = || {
        agents
            .iter()
            .filter(|a| ["alice", "bob", "carol"].contains(&a["id"].as_str().unwrap_or_default()))
    };
    let free =
        |a: &&Value| a["state"] == "available" && a["load"].as_u64() < a["capacity"].as_u64();
    let available = queued_agents().filter(free).count();
    let busy = queued_agents()
        .filter(|a| !free(a) && a["load"].as_u64() > Some(0) && a["state"] != "logged_out")
        .count();
    for q in overview["queues"].as_array().expect("queues") {
        let count = |state: &str| {
            convs
                .iter()
                .filter(|c| c["queue"] == q["id"] && c["state"] == state)
                .count()
        };
        assert_eq!(q["waiting"], json!(count("queued")), "{q}");
        assert_eq!(q["offered"], json!(count("offered")), "{q}");
        assert_eq!(q["agents_available"], json!(available), "{q}");
        assert_eq!(q["agents_busy"], json!(busy), "{q}");
    }
    assert!(
        convs
            .iter()
            .any(|c| c["state"] == "queued" || c["state"] == "offered"),
        "the figures count something: {overview:#}"
    );
    let carol = row(&overview, "agents", &json!("carol")).expect("carol");
    assert_eq!(carol["state"], "logged_out");
    assert_eq!(
        row(&overview, "agents", &json!("alice")).map(|a| a["state"].clone()),
        Some(json!("rona"))
    );
}

/// `switchboard_console_engine_reads` of a tenant, from `/metrics`.
async fn console_engine_reads(server: &Server, tenant: &str) -> u64 {
    server
        .metric("switchboard_console_engine_reads", tenant)
        .await
        .expect("the metric is there")
}

/// Supervisors read the console's projection, never the engine: with 20
/// console sockets receiving frames while customers write and an agent
/// takes conversations, the engine was read for the console only once,
/// when the tenant started.
#[tokio::test]
async fn console_frames_never_read_the_engine() {
    let server = Server::start(&config());
    assert_eq!(console_engine_reads(&server, "demo").await, 1, "the seed");
    let sam = login(&server, "demo", "sam", "demo").await;
    let mut consoles = Vec::new();
    for _ in 0..20 {
        consoles.push(Console::open(&server, &sam).await);
    }
    let mut alice = AgentClient::login(&server, "alice").await;
    alice.available().await;
    for i in 0..12 {
        let id = server
            .customer_says(&format!("w{i}"), "Walt", "hello")
            .await;
        server
            .customer_says(&format!("w{i}"), "Walt", "still there?")
            .await;
        if i < 5 {
            alice
                .events
                .next_where("offer", |o| o["conversation"] == id)
                .await;
            alice.accept(id).await;
        }
    }
    for c in &mut consoles {
        let o = c.settles_on_overview(&server, &sam).await;
        assert_eq!(o["conversations"].as_array().map(Vec::len), Some(12));
    }
    assert!(consoles
        .iter()
        .all(|c| c.types.iter().any(|t| t == "overview_changes")));
    assert_eq!(console_engine_reads(&server, "demo").await, 1);
}

/// A failed commit: the engine is rebuilt from the journal and the
/// console's projection seeded again from it (the one other engine read
/// the console makes); the page shows what the journal holds, then goes
/// on with diffs.
#[tokio::test]
async fn after_a_failed_commit_the_console_shows_what_the_journal_holds() {
    let server = Server::start(&config());
    let sam = login(&server, "demo", "sam", "demo").await;
    let mut console = Console::open(&server, &sam).await;
    let mut alice = AgentClient::login(&server, "alice").await;
    alice.available().await;
    let id = server.customer_says("v1", "Val", "hello").await;
    alice.events.next_of("offer").await;
    console
        .until(|v| row(v, "conversations", &json!(id)).is_some_and(|c| c["state"] == "offered"))
        .await;

    let (status, v) = server
        .admin(reqwest::Method::POST, "/admin/journal/fail-next", None)
        .await;
    assert_eq!(status, 200, "{v}");
    let (status, v) = alice
        .post(&format!("/api/conversations/{id}/accept"), json!({}))
        .await;
    assert_eq!(status, 503, "{v}");
    let o = console.settles_on_overview(&server, &sam).await;
    assert_eq!(
        row(&o, "conversations", &json!(id)).map(|c| c["state"].clone()),
        Some(json!("offered")),
        "what the journal holds"
    );
    assert_eq!(
        console_engine_reads(&server, "demo").await,
        2,
        "start and resync"
    );
    // A whole overview again after the reseed.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while console.types.iter().filter(|t| *t == "overview").count() < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no whole overview after the reseed: {:?}",
            console.types
        );
        console.next(std::time::Duration::from_millis(300)).await;
    }

    alice.accept(id).await;
    let o = console
        .until(|v| row(v, "conversations", &json!(id)).is_some_and(|c| c["state"] == "active"))
        .await;
    assert_eq!(
        timeless(&o),
        timeless(&console.settles_on_overview(&server, &sam).await)
    );
    assert_eq!(console_engine_reads(&server, "demo").await, 2);
}
