//! A cluster of real `switchboard` processes on loopback sharing one fresh
//! PostgreSQL database per test: any node serves any request, a dead or
//! stopped owner's tenants are taken over with nothing acknowledged lost,
//! a drained node hands its tenants over, a joining node takes its share.
//!
//! Without a PostgreSQL server the tests say they skipped and pass
//! (`pg_support`). No timing is asserted: conditions are awaited under a
//! generous deadline; take-over times are printed.

mod common;
#[path = "common/graph.rs"]
mod graph;
mod pg_support;

use common::*;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// Tenants of the test configuration: enough for placement to spread.
const TENANTS: usize = 6;
/// Short leases: a dead node's tenants move within about a second.
const LEASE_MS: &str = "1000";
/// The bound on waiting for the cluster to settle: a bound on a hang.
const SETTLE: Duration = Duration::from_secs(60);
/// App secret of every test tenant's Messenger page (the stand-in Graph
/// API's, so it accepts the pages' sends).
const SECRET: &str = graph::APP_SECRET;

fn tenant(i: usize) -> String {
    format!("t{i}")
}

/// `TENANTS` tenants, each with web chat, Messenger and two agents, masking
/// off (the transcripts are compared with what was sent).
fn cluster_config() -> String {
    let mut c = String::from(
        "listen = \"127.0.0.1:0\"\ndata_dir = \"./data\"\nsession_ttl_secs = 31536000\naway_grace_secs = 600\n",
    );
    for i in 0..TENANTS {
        c.push_str(&format!(
            r#"
[[tenants]]
id = "{t}"
mask = false
default_queue = "support"

[[tenants.queues]]
id = "support"
rona_timeout_ms = 600000

[[tenants.agents]]
id = "ann"
password = "pw"
capacity = 50
queues = ["support"]

[[tenants.agents]]
id = "ben"
password = "pw"
capacity = 50
queues = ["support"]

[tenants.webchat]
queue = "support"

[tenants.messenger]
verify_token = "verify"
app_secret = "{SECRET}"
page_id = "1000"
page_name = "Page"
access_token = "{token}"
queue = "support"
"#,
            t = tenant(i),
            token = graph::ACCESS_TOKEN
        ));
    }
    c
}

/// The nodes of one test, sharing its database.
struct Cluster {
    db: pg_support::PgDb,
    nodes: Vec<Option<Server>>,
    /// Base URLs of the nodes running now (what the load senders use).
    live: Arc<RwLock<Vec<String>>>,
    http: reqwest::Client,
    /// Where the nodes reach the Graph API (nowhere, unless a test starts
    /// the stand-in).
    graph_base: String,
}

impl Cluster {
    /// `n` nodes `n0…`, or `None` (said) when no PostgreSQL answers.
    async fn start(tag: &str, n: usize) -> Option<Cluster> {
        Self::start_with_graph(tag, n, "http://127.0.0.1:9").await
    }

    /// Like [`Cluster::start`], the nodes sending to the Graph API at `graph_base`.
    async fn start_with_graph(tag: &str, n: usize, graph_base: &str) -> Option<Cluster> {
        let Some(db) = pg_support::fresh_database(tag) else {
            println!("skipped: no PostgreSQL");
            return None;
        };
        let mut c = Cluster {
            db,
            nodes: Vec::new(),
            live: Arc::new(RwLock::new(Vec::new())),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(15))
                .build()
                .expect("client"),
            graph_base: graph_base.to_string(),
        };
        for i in 0..n {
            c.start_node(i);
        }
        c.settle(n).await;
        Some(c)
    }

    fn start_node(&mut self, i: usize) {
        let id = format!("n{i}");
        let server = Server::start_in(
            Server::new_dir(&format!("cluster-{id}")),
            &cluster_config(),
            &[
                ("SWITCHBOARD_DATABASE_URL", self.db.url.as_str()),
                ("SWITCHBOARD_NODE_ID", id.as_str()),
                ("SWITCHBOARD_LEASE_MS", LEASE_MS),
                ("SWITCHBOARD_GRAPH_API_BASE", self.graph_base.as_str()),
            ],
        );
        while self.nodes.len() <= i {
            self.nodes.push(None);
        }
        self.nodes[i] = Some(server);
        self.refresh_live();
    }

    fn refresh_live(&self) {
        *self.live.write().expect("live") = self
            .nodes
            .iter()
            .flatten()
            .map(|s| s.base.clone())
            .collect();
    }

    fn node(&self, i: usize) -> &Server {
        self.nodes[i].as_ref().expect("node running")
    }

    fn node_mut(&mut self, i: usize) -> &mut Server {
        self.nodes[i].as_mut().expect("node running")
    }

    /// Index of the node called `id`.
    fn index_of(id: &str) -> usize {
        id.trim_start_matches('n').parse().expect("node id nN")
    }

    /// `GET /admin/cluster` from the first running node that answers.
    async fn view(&self) -> Option<Value> {
        for s in self.nodes.iter().flatten() {
            let answer = self
                .http
                .get(s.url("/admin/cluster"))
                .bearer_auth(ADMIN)
                .send()
                .await;
            if let Ok(r) = answer {
                if r.status() == 200 {
                    return r.json().await.ok();
                }
            }
        }
        None
    }

    /// Wait until `n` nodes are live, every tenant has a live owner, and
    /// every running node is ready.
    async fn settle(&self, n: usize) -> Value {
        let deadline = Instant::now() + SETTLE;
        loop {
            if let Some(v) = self.view().await {
                let nodes = v["nodes"].as_array().map_or(0, Vec::len);
                let owned = v["tenants"].as_array().is_some_and(|ts| {
                    ts.len() == TENANTS && ts.iter().all(|t| t["owner"].is_string())
                });
                if nodes == n && owned && self.all_ready().await {
                    return v;
                }
            }
            assert!(
                Instant::now() < deadline,
                "the cluster never settled on {n} nodes: {:?}",
                self.view().await
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn all_ready(&self) -> bool {
        for s in self.nodes.iter().flatten() {
            match self.http.get(s.url("/readyz")).send().await {
                Ok(r) if r.status() == 200 => {}
                _ => return false,
            }
        }
        true
    }

    /// The node owning `t` now (as the cluster view says).
    async fn owner(&self, t: &str) -> Option<String> {
        let v = self.view().await?;
        v["tenants"].as_array()?.iter().find(|x| x["id"] == t)?["owner"]
            .as_str()
            .map(str::to_string)
    }

    /// Wait until `t` is owned by a live node other than `not`; the new
    /// owner.
    async fn new_owner(&self, t: &str, not: &str) -> String {
        let deadline = Instant::now() + SETTLE;
        loop {
            if let Some(o) = self.owner(t).await {
                if o != not {
                    return o;
                }
            }
            assert!(Instant::now() < deadline, "{t} never left {not}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A Messenger message, retried (as Meta does) on any node until one
    /// acknowledges it or the deadline passes: whether it was acknowledged.
    async fn messenger(&self, turn: usize, t: &str, psid: &str, mid: &str, text: &str) -> bool {
        deliver(&self.http, &self.live, turn, t, psid, mid, text).await
    }

    /// A tenant's open conversations: customer id → conversation id.
    async fn conversations(&self, t: &str) -> HashMap<String, u64> {
        let deadline = Instant::now() + SETTLE;
        loop {
            if let Some(list) = self
                .admin_get(&format!("/admin/tenants/{t}/conversations"))
                .await
            {
                return list
                    .as_array()
                    .expect("conversations")
                    .iter()
                    .filter_map(|c| Some((c["customer"].as_str()?.to_string(), c["id"].as_u64()?)))
                    .collect();
            }
            assert!(
                Instant::now() < deadline,
                "conversations of {t} never answered"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The customer texts of a conversation, in order.
    async fn customer_texts(&self, t: &str, conversation: u64) -> Vec<String> {
        let deadline = Instant::now() + SETTLE;
        loop {
            let path = format!("/admin/tenants/{t}/conversations/{conversation}/messages");
            if let Some(list) = self.admin_get(&path).await {
                return list
                    .as_array()
                    .expect("messages")
                    .iter()
                    .filter(|m| m["from"] == "customer")
                    .filter_map(|m| m["text"].as_str().map(str::to_string))
                    .collect();
            }
            assert!(
                Instant::now() < deadline,
                "transcript of {t}/{conversation} never answered"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// An admin GET on any node that answers 200 (retrying 503s).
    async fn admin_get(&self, path: &str) -> Option<Value> {
        for s in self.nodes.iter().flatten() {
            if let Ok(r) = self.http.get(s.url(path)).bearer_auth(ADMIN).send().await {
                if r.status() == 200 {
                    return r.json().await.ok();
                }
            }
        }
        None
    }

    /// Every acknowledged text is stored exactly once, in the order it was
    /// acknowledged, in its customer's conversation.
    async fn check_acknowledged(&self, acked: &Acked) {
        let acked = acked.lock().expect("acked").clone();
        let mut by_tenant: HashMap<String, Vec<(String, Vec<String>)>> = HashMap::new();
        for ((t, psid), texts) in acked {
            by_tenant.entry(t).or_default().push((psid, texts));
        }
        let mut total = 0;
        for (t, customers) in by_tenant {
            let conversations = self.conversations(&t).await;
            for (psid, texts) in customers {
                if texts.is_empty() {
                    continue;
                }
                let id = *conversations.get(&psid).unwrap_or_else(|| {
                    panic!("{t}: no conversation for {psid}: {conversations:?}")
                });
                let stored = self.customer_texts(&t, id).await;
                let mut at = 0;
                for text in &texts {
                    let n = stored.iter().filter(|s| *s == text).count();
                    assert_eq!(n, 1, "{t}/{psid}: {text:?} stored {n} times: {stored:?}");
                    let pos = stored.iter().position(|s| s == text).unwrap_or_default();
                    assert!(pos >= at, "{t}/{psid}: {text:?} out of order: {stored:?}");
                    at = pos;
                }
                total += texts.len();
            }
        }
        println!("checked {total} acknowledged messages: each stored once, in order");
    }
}

/// Acknowledged texts per (tenant, customer), in acknowledgement order.
type Acked = Arc<Mutex<HashMap<(String, String), Vec<String>>>>;

/// Post one signed Messenger webhook round-robin over the live nodes,
/// retrying anything but a 200 (503 while a tenant moves, a refused
/// connection to a dead node) for up to a minute.
async fn deliver(
    http: &reqwest::Client,
    live: &RwLock<Vec<String>>,
    mut turn: usize,
    t: &str,
    psid: &str,
    mid: &str,
    text: &str,
) -> bool {
    let (body, _) = messenger_webhook(psid, mid, text);
    let sig = messenger_signature(&body, SECRET);
    let deadline = Instant::now() + SETTLE;
    while Instant::now() < deadline {
        let base = {
            let nodes = live.read().expect("live");
            if nodes.is_empty() {
                None
            } else {
                Some(nodes[turn % nodes.len()].clone())
            }
        };
        turn += 1;
        let Some(base) = base else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let answer = http
            .post(format!("{base}/channels/messenger/{t}/webhook"))
            .header("content-type", "application/json")
            .header("X-Hub-Signature-256", &sig)
            .body(body.clone())
            .send()
            .await;
        match answer {
            Ok(r) if r.status() == 200 => return true,
            Ok(r) if r.status() == 503 || r.status() == 502 => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Ok(r) => panic!("{t}: webhook answered {}: {:?}", r.status(), r.text().await),
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    false
}

/// Customers writing to tenants without pause until `stop`: each customer
/// sends its messages one after the other (so their order is known), each
/// message to the next node. Returns the task and what was acknowledged.
fn load(
    c: &Cluster,
    customers: Vec<(String, String)>,
    stop: Arc<AtomicBool>,
) -> (tokio::task::JoinHandle<()>, Acked) {
    let acked: Acked = Arc::default();
    let mut tasks = Vec::new();
    for (k, (t, psid)) in customers.into_iter().enumerate() {
        let (http, live, acked, stop) =
            (c.http.clone(), c.live.clone(), acked.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                let text = format!("{psid} message {n}");
                let mid = format!("m-{t}-{psid}-{n}");
                if deliver(&http, &live, k + n, &t, &psid, &mid, &text).await {
                    acked
                        .lock()
                        .expect("acked")
                        .entry((t.clone(), psid.clone()))
                        .or_default()
                        .push(text);
                }
                n += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }));
    }
    let all = tokio::spawn(async move {
        for t in tasks {
            let _ = t.await;
        }
    });
    (all, acked)
}

fn count(acked: &Acked) -> usize {
    acked.lock().expect("acked").values().map(Vec::len).sum()
}

async fn wait_count(acked: &Acked, at_least: usize) {
    let deadline = Instant::now() + SETTLE;
    while count(acked) < at_least {
        assert!(
            Instant::now() < deadline,
            "load stalled at {}",
            count(acked)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Log an agent in through one node: its token.
async fn login(c: &Cluster, node: usize, t: &str, agent: &str) -> String {
    let deadline = Instant::now() + SETTLE;
    loop {
        let r = c
            .http
            .post(c.node(node).url("/api/login"))
            .json(&json!({"tenant": t, "agent": agent, "password": "pw"}))
            .send()
            .await
            .expect("login");
        let status = r.status().as_u16();
        let v: Value = r.json().await.unwrap_or(Value::Null);
        if status == 200 {
            let token = v["token"].as_str().expect("token").to_string();
            assert!(
                token.starts_with(&format!("{t}.")),
                "the token names its tenant"
            );
            return token;
        }
        assert_eq!(status, 503, "login: {v}");
        assert!(Instant::now() < deadline, "login never answered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// An agent call through one node, retried while the tenant moves.
async fn agent_call(
    c: &Cluster,
    node: usize,
    token: &str,
    method: reqwest::Method,
    path: &str,
    body: Value,
) -> Value {
    let deadline = Instant::now() + SETTLE;
    loop {
        let r = c
            .http
            .request(method.clone(), c.node(node).url(path))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await;
        if let Ok(r) = r {
            let status = r.status().as_u16();
            let v: Value = r.json().await.unwrap_or(Value::Null);
            if status == 200 {
                return v;
            }
            assert_eq!(status, 503, "{path}: {v}");
        }
        assert!(Instant::now() < deadline, "{path} never answered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The agent's event socket through one node (its first frame read).
async fn agent_socket(c: &Cluster, node: usize, token: &str) -> Events {
    let deadline = Instant::now() + SETTLE;
    loop {
        let url = c
            .node(node)
            .ws_url(&format!("/api/agent/events?token={token}"));
        if let Ok((ws, _)) = tokio_tungstenite::connect_async(&url).await {
            drop(ws);
            let mut events = Events::connect(&url).await;
            events.next_of("agent_state").await;
            return events;
        }
        assert!(Instant::now() < deadline, "the agent socket never opened");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn any_node_serves_any_request() {
    let Some(c) = Cluster::start("any_node", 3).await else {
        return;
    };
    for i in 0..TENANTS {
        let t = tenant(i);
        // Login on node 0, the socket on node 1, the customer via node 2.
        let token = login(&c, 0, &t, "ann").await;
        let mut events = agent_socket(&c, 1, &token).await;
        agent_call(
            &c,
            2,
            &token,
            reqwest::Method::PUT,
            "/api/agent/state",
            json!({"state": "available"}),
        )
        .await;
        assert!(
            c.messenger(
                2,
                &t,
                "cust-a",
                &format!("mid-a-{t}"),
                &format!("hello {t}")
            )
            .await,
            "acknowledged"
        );
        let offer = events.next_of("offer").await;
        let id = offer["conversation"].as_u64().expect("conversation");
        agent_call(
            &c,
            0,
            &token,
            reqwest::Method::POST,
            &format!("/api/conversations/{id}/accept"),
            json!({}),
        )
        .await;
        events.next_of("conversation_started").await;
        assert!(
            c.messenger(1, &t, "cust-a", &format!("mid-b-{t}"), "second")
                .await
        );
        let m = events
            .next_where("message", |m| m["text"] == "second")
            .await;
        assert_eq!(m["from"], "customer");
        // Admin routes of the tenant answer on every node.
        for n in 0..3 {
            let r = c
                .http
                .get(
                    c.node(n)
                        .url(&format!("/admin/tenants/{t}/conversations/{id}/messages")),
                )
                .bearer_auth(ADMIN)
                .send()
                .await
                .expect("transcript");
            assert_eq!(r.status(), 200);
        }
        // A web chat visitor writes through node 1 and listens on node 2;
        // the agent's reply (sent through node 0) reaches its socket.
        let r = c
            .http
            .post(c.node(1).url(&format!("/channels/webchat/{t}/messages")))
            .json(&json!({"visitor": "web", "text": "from the web", "name": "Web"}))
            .send()
            .await
            .expect("web chat message");
        assert_eq!(r.status(), 202);
        let v: Value = r.json().await.expect("json");
        let visitor = v["visitor_token"].as_str().expect("visitor token");
        let web = v["conversation"].as_u64().expect("conversation");
        let mut chat = Events::connect(&c.node(2).ws_url(&format!(
            "/channels/webchat/{t}/events?visitor_token={visitor}"
        )))
        .await;
        events
            .next_where("offer", |o| o["conversation"] == web)
            .await;
        agent_call(
            &c,
            0,
            &token,
            reqwest::Method::POST,
            &format!("/api/conversations/{web}/accept"),
            json!({}),
        )
        .await;
        agent_call(
            &c,
            0,
            &token,
            reqwest::Method::POST,
            &format!("/api/conversations/{web}/messages"),
            json!({"text": "hello visitor"}),
        )
        .await;
        let reply = chat
            .next_where("message", |m| m["text"] == "hello visitor")
            .await;
        assert_eq!(reply["from"], "agent");
        chat.close().await;
        events.close().await;
    }
    let v = c.view().await.expect("view");
    println!("placement over 3 nodes: {}", v["tenants"]);
    // A request already forwarded once is never forwarded again: a node
    // that does not own the tenant answers 503 with Retry-After.
    let t = tenant(0);
    let owner = c.owner(&t).await.expect("owner");
    let not_owner = (Cluster::index_of(&owner) + 1) % 3;
    let r = c
        .http
        .get(
            c.node(not_owner)
                .url(&format!("/admin/tenants/{t}/conversations")),
        )
        .bearer_auth(ADMIN)
        .header("x-switchboard-forwarded", "elsewhere")
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 503);
    assert_eq!(
        r.headers().get("retry-after").and_then(|v| v.to_str().ok()),
        Some("1")
    );
    let body: Value = r.json().await.expect("JSON error");
    assert!(body["error"].is_string(), "{body}");
}

/// Without `database_url`: one node of one, ready once it serves, listing
/// itself and its tenants; SIGTERM drains it and it exits.
#[tokio::test]
async fn a_server_alone_is_a_ready_node_of_one() {
    let mut server = Server::start(&demo_config());
    let r = server
        .http
        .get(server.url("/readyz"))
        .send()
        .await
        .expect("readyz");
    assert_eq!(r.status(), 200);
    let (status, v) = server
        .admin(reqwest::Method::GET, "/admin/cluster", None)
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["nodes"].as_array().map(Vec::len), Some(1), "{v}");
    assert_eq!(v["nodes"][0]["tenants"], json!(["demo"]));
    assert_eq!(v["nodes"][0]["url"], server.base.as_str());
    assert_eq!(v["tenants"][0]["id"], "demo");
    assert_eq!(v["tenants"][0]["owner"], v["nodes"][0]["id"]);
    assert_eq!(v["tenants"][0]["epoch"], 0);
    let anonymous = server
        .http
        .get(server.url("/admin/cluster"))
        .send()
        .await
        .expect("cluster");
    assert_eq!(anonymous.status(), 401);
    // Logged-in agents' tokens name their tenant.
    let (status, login) = try_login(&server, "demo", "alice", "demo").await;
    assert_eq!(status, 200);
    assert!(login["token"]
        .as_str()
        .is_some_and(|t| t.starts_with("demo.")));
    server.signal("TERM");
    assert!(
        server.wait_exit(Duration::from_secs(30)),
        "drained and exited"
    );
    assert!(server.logs().contains("draining"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killing_a_busy_owner_loses_nothing_acknowledged() {
    let Some(mut c) = Cluster::start("kill9", 3).await else {
        return;
    };
    // Three seeds: three tenants, three owners killed in turn (each
    // restarted before the next round).
    for seed in 0..3 {
        let dead = kill_round(&mut c, seed).await;
        c.start_node(dead);
        c.settle(3).await;
    }
}

/// Kill -9 the owner of a busy tenant under load; check everything
/// acknowledged and the agent's conversation. The index of the killed node.
async fn kill_round(c: &mut Cluster, seed: usize) -> usize {
    let t = tenant(seed * 2 % TENANTS);
    let owner = c.owner(&t).await.expect("owner");
    let dead = Cluster::index_of(&owner);
    let other = (dead + 1) % 3;
    // The agent logs in and connects through a node that survives.
    let token = login(c, other, &t, "ann").await;
    let mut events = agent_socket(c, other, &token).await;
    agent_call(
        c,
        other,
        &token,
        reqwest::Method::PUT,
        "/api/agent/state",
        json!({"state": "available"}),
    )
    .await;
    let stop = Arc::new(AtomicBool::new(false));
    let customers: Vec<(String, String)> = (0..4)
        .map(|k| (t.clone(), format!("busy-{seed}-{k}")))
        .chain(
            (0..TENANTS)
                .map(tenant)
                .filter(|x| *x != t)
                .map(|x| (x, format!("side-{seed}"))),
        )
        .collect();
    let (task, acked) = load(c, customers, stop.clone());
    let offer = events.next_of("offer").await;
    let accepted = offer["conversation"].as_u64().expect("conversation");
    agent_call(
        c,
        other,
        &token,
        reqwest::Method::POST,
        &format!("/api/conversations/{accepted}/accept"),
        json!({}),
    )
    .await;
    wait_count(&acked, 40).await;

    c.node_mut(dead).kill();
    let killed = Instant::now();
    c.nodes[dead] = None;
    c.refresh_live();
    let new_owner = c.new_owner(&t, &owner).await;
    println!(
        "take-over after kill -9 of {owner}: {} ms (lease {LEASE_MS} ms), {t} now on {new_owner}",
        killed.elapsed().as_millis()
    );
    let before = count(&acked);
    wait_count(&acked, before + 40).await;
    stop.store(true, Ordering::SeqCst);
    let _ = task.await;
    c.check_acknowledged(&acked).await;

    // The agent's desktop reconnects (through a surviving node) and gets
    // its conversation back.
    let mut events = agent_socket(c, other, &token).await;
    let me = agent_call(
        c,
        other,
        &token,
        reqwest::Method::GET,
        "/api/me",
        Value::Null,
    )
    .await;
    let mine: Vec<u64> = me["conversations"]
        .as_array()
        .expect("conversations")
        .iter()
        .filter_map(|x| x["conversation"].as_u64())
        .collect();
    assert!(
        mine.contains(&accepted),
        "the accepted conversation is back: {me}"
    );
    let psid = c
        .conversations(&t)
        .await
        .into_iter()
        .find(|(_, id)| *id == accepted)
        .map(|(psid, _)| psid)
        .expect("the accepted conversation's customer");
    let mid = format!("after-kill-{seed}");
    assert!(c.messenger(0, &t, &psid, &mid, "after the kill").await);
    events
        .next_where("message", |m| m["text"] == "after the kill")
        .await;
    dead
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stopped_owner_is_fenced_and_commits_nothing() {
    let Some(c) = Cluster::start("sigstop", 3).await else {
        return;
    };
    let t = tenant(1);
    let owner = c.owner(&t).await.expect("owner");
    let stopped = Cluster::index_of(&owner);
    let other = (stopped + 1) % 3;
    let token = login(&c, other, &t, "ann").await;
    // One socket straight to the owner, one through another node.
    let mut direct = agent_socket(&c, stopped, &token).await;
    let mut piped = agent_socket(&c, other, &token).await;
    agent_call(
        &c,
        other,
        &token,
        reqwest::Method::PUT,
        "/api/agent/state",
        json!({"state": "available"}),
    )
    .await;
    assert!(
        c.messenger(other, &t, "before", "stop-1", "before the stop")
            .await
    );
    let first = direct.next_of("offer").await["conversation"]
        .as_u64()
        .expect("conversation");

    c.node(stopped).signal("STOP");
    let paused = Instant::now();
    // Requests go to the others only while it is stopped.
    let stopped_base = c.node(stopped).base.clone();
    c.live.write().expect("live").retain(|b| *b != stopped_base);
    let new_owner = c.new_owner(&t, &owner).await;
    println!(
        "take-over after SIGSTOP of {owner}: {} ms (lease {LEASE_MS} ms), {t} now on {new_owner}",
        paused.elapsed().as_millis()
    );
    let stop = Arc::new(AtomicBool::new(false));
    let (task, acked) = load(
        &c,
        vec![(t.clone(), "during".into()), (t.clone(), "before".into())],
        stop.clone(),
    );
    wait_count(&acked, 20).await;

    c.node(stopped).signal("CONT");
    // Straight away, a message to the old owner itself: whatever it
    // answers, it must not write it as the owner. Answered 200 (forwarded
    // to the new owner), it is stored once; refused, it is not stored.
    let (body, _) = messenger_webhook("before", "after-cont", "straight after SIGCONT");
    let straight = c
        .http
        .post(
            c.node(stopped)
                .url(&format!("/channels/messenger/{t}/webhook")),
        )
        .header("content-type", "application/json")
        .header("X-Hub-Signature-256", messenger_signature(&body, SECRET))
        .body(body)
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0);
    println!("the old owner answered {straight} right after SIGCONT");
    // Its sockets of the tenant are closed; nothing it held is written.
    direct.closed_by_server().await;
    c.refresh_live();
    let before = count(&acked);
    wait_count(&acked, before + 20).await;
    stop.store(true, Ordering::SeqCst);
    let _ = task.await;
    {
        let mut all = acked.lock().expect("acked");
        let before = all.entry((t.clone(), "before".into())).or_default();
        before.insert(0, "before the stop".into());
        if straight == 200 {
            before.insert(1, "straight after SIGCONT".into());
        }
    }
    c.check_acknowledged(&acked).await;
    if straight != 200 {
        let id = c.conversations(&t).await["before"];
        let texts = c.customer_texts(&t, id).await;
        assert!(
            !texts.iter().any(|x| x == "straight after SIGCONT"),
            "a refused message was stored: {texts:?}"
        );
    }
    // No conversation was offered twice, on any socket of the agent.
    let mut offers: HashMap<u64, usize> = HashMap::new();
    let seen: Vec<Value> = direct
        .seen
        .iter()
        .chain(piped.seen.iter())
        .cloned()
        .collect();
    let _ = piped.closed_by_server().await;
    for e in seen.iter().chain(piped.seen.iter()) {
        if e["type"] == "offer" {
            *offers
                .entry(e["conversation"].as_u64().unwrap_or_default())
                .or_default() += 1;
        }
    }
    // The direct and the piped socket each saw each offer once.
    assert!(
        offers.values().all(|n| *n <= 2),
        "an offer came twice: {offers:?}"
    );
    assert!(offers.contains_key(&first));
    let view = c.settle(3).await;
    println!("after SIGCONT: {}", view["tenants"]);
    // It fenced itself (its lease had run out by its own clock) or was
    // told by the database that another node has the tenant.
    let logs = c.node(stopped).logs();
    assert!(
        logs.contains("lease lost")
            || logs.contains("lease taken over")
            || logs.contains("stale epoch"),
        "the paused node dropped the tenant"
    );
    let metrics = c
        .http
        .get(c.node(stopped).url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    let label = format!("tenant=\"{t}\"");
    let lost: u64 = metrics
        .lines()
        .filter(|l| l.starts_with("switchboard_cluster_leases_lost_total") && l.contains(&label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    assert!(lost >= 1, "the paused node counted the lease it lost");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rolling_restart_loses_nothing() {
    let Some(mut c) = Cluster::start("rolling", 3).await else {
        return;
    };
    let stop = Arc::new(AtomicBool::new(false));
    let customers: Vec<(String, String)> = (0..TENANTS)
        .map(|i| (tenant(i), "roll".to_string()))
        .collect();
    let (task, acked) = load(&c, customers, stop.clone());
    wait_count(&acked, 30).await;
    let mut reloads = 0;
    for i in 0..3 {
        let id = format!("n{i}");
        let held: Vec<String> = c
            .view()
            .await
            .and_then(|v| {
                v["tenants"].as_array().map(|ts| {
                    ts.iter()
                        .filter(|x| x["owner"] == id.as_str())
                        .filter_map(|x| x["id"].as_str().map(str::to_string))
                        .collect()
                })
            })
            .unwrap_or_default();
        let base = c.node(i).base.clone();
        c.live.write().expect("live").retain(|b| *b != base);
        c.node(i).signal("TERM");
        let drained = Instant::now();
        assert!(
            c.node_mut(i).wait_exit(SETTLE),
            "{id} exits after its drain"
        );
        for t in &held {
            c.new_owner(t, &id).await;
        }
        println!(
            "{id} drained: its {} tenant(s) taken over in {} ms",
            held.len(),
            drained.elapsed().as_millis()
        );
        c.nodes[i] = None;
        c.settle(2).await;
        c.start_node(i);
        c.settle(3).await;
        // An admin reload sent to any node is applied by the owner.
        for k in 0..TENANTS {
            let t = tenant(k);
            let deadline = Instant::now() + SETTLE;
            loop {
                let node = c.node((k + i) % 3);
                let r = c
                    .http
                    .post(node.url(&format!("/admin/tenants/{t}/reload")))
                    .bearer_auth(ADMIN)
                    .send()
                    .await
                    .expect("reload");
                if r.status() == 200 {
                    reloads += 1;
                    break;
                }
                assert_eq!(r.status(), 503, "reload of {t}");
                assert!(Instant::now() < deadline, "reload of {t} never answered");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        let before = count(&acked);
        wait_count(&acked, before + 12).await;
    }
    stop.store(true, Ordering::SeqCst);
    let _ = task.await;
    println!("{reloads} reloads, none failed");
    c.check_acknowledged(&acked).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_joining_node_takes_its_share() {
    let Some(mut c) = Cluster::start("join", 3).await else {
        return;
    };
    let stop = Arc::new(AtomicBool::new(false));
    let customers: Vec<(String, String)> = (0..TENANTS)
        .map(|i| (tenant(i), "join".to_string()))
        .collect();
    let (task, acked) = load(&c, customers, stop.clone());
    wait_count(&acked, 30).await;
    let joined = Instant::now();
    c.start_node(3);
    let v = c.settle(4).await;
    let moved: Vec<&str> = v["tenants"]
        .as_array()
        .expect("tenants")
        .iter()
        .filter(|x| x["owner"] == "n3")
        .filter_map(|x| x["id"].as_str())
        .collect();
    assert!(!moved.is_empty(), "the fourth node took some tenants: {v}");
    println!(
        "n3 joined and took {moved:?} in {} ms",
        joined.elapsed().as_millis()
    );
    let before = count(&acked);
    wait_count(&acked, before + 30).await;
    stop.store(true, Ordering::SeqCst);
    let _ = task.await;
    c.check_acknowledged(&acked).await;
}

/// The texts the stand-in Graph API accepted, once `done` holds of them.
async fn sent_texts(g: &graph::Graph, done: impl Fn(&[String]) -> bool) -> Vec<String> {
    let deadline = Instant::now() + SETTLE;
    loop {
        let texts: Vec<String> = g
            .sent
            .lock()
            .expect("lock")
            .iter()
            .map(|c| c.body["message"]["text"].as_str().unwrap_or("").to_string())
            .collect();
        if done(&texts) {
            return texts;
        }
        assert!(Instant::now() < deadline, "sends never came: {texts:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reply_committed_by_a_killed_owner_is_sent_once_by_the_next() {
    let (base, g) = graph::start().await;
    let Some(mut c) = Cluster::start_with_graph("outbox", 2, &base).await else {
        return;
    };
    let t = tenant(0);
    let owner = c.owner(&t).await.expect("owner");
    let dead = Cluster::index_of(&owner);
    let other = (dead + 1) % 2;
    let token = login(&c, other, &t, "ann").await;
    let mut events = agent_socket(&c, other, &token).await;
    agent_call(
        &c,
        other,
        &token,
        reqwest::Method::PUT,
        "/api/agent/state",
        json!({"state": "available"}),
    )
    .await;
    assert!(
        c.messenger(0, &t, "psid-outbox", "m-outbox-1", "hello")
            .await
    );
    let id = events.next_of("offer").await["conversation"]
        .as_u64()
        .expect("conversation");
    agent_call(
        &c,
        other,
        &token,
        reqwest::Method::POST,
        &format!("/api/conversations/{id}/accept"),
        json!({}),
    )
    .await;
    // The channel receives the reply and does not answer: the owner dies
    // with it committed and not sent.
    g.hold_sends.store(true, Ordering::SeqCst);
    agent_call(
        &c,
        other,
        &token,
        reqwest::Method::POST,
        &format!("/api/conversations/{id}/messages"),
        json!({"text": "kept across the move"}),
    )
    .await;
    let deadline = Instant::now() + SETTLE;
    while g.held.load(Ordering::SeqCst) == 0 {
        assert!(Instant::now() < deadline, "the reply never left");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    c.node_mut(dead).kill();
    c.nodes[dead] = None;
    c.refresh_live();
    g.hold_sends.store(false, Ordering::SeqCst);
    assert!(g.sent.lock().expect("lock").is_empty());

    let new_owner = c.new_owner(&t, &owner).await;
    println!("{t} moved from {owner} to {new_owner}");
    assert_eq!(
        sent_texts(&g, |s| !s.is_empty()).await,
        ["kept across the move"],
        "the new owner sends the committed reply"
    );
    // A later reply goes out after it: the first was sent once.
    agent_call(
        &c,
        other,
        &token,
        reqwest::Method::POST,
        &format!("/api/conversations/{id}/messages"),
        json!({"text": "after the move"}),
    )
    .await;
    assert_eq!(
        sent_texts(&g, |s| s.len() >= 2).await,
        ["kept across the move", "after the move"]
    );
    assert!(g.bad_proofs.lock().expect("lock").is_empty());
}

/// `GET /api/attachments/{id}` through `node` as the agent of `token`,
/// retried while the tenant moves: (status, nosniff header, content).
async fn get_attachment(
    c: &Cluster,
    node: usize,
    token: &str,
    id: &str,
) -> (u16, Option<String>, Vec<u8>) {
    let deadline = Instant::now() + SETTLE;
    loop {
        let r = c
            .http
            .get(c.node(node).url(&format!("/api/attachments/{id}")))
            .bearer_auth(token)
            .send()
            .await;
        if let Ok(r) = r {
            let status = r.status().as_u16();
            if status != 503 && status != 502 {
                let nosniff = r
                    .headers()
                    .get("x-content-type-options")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                let body = r.bytes().await.map(|b| b.to_vec()).unwrap_or_default();
                return (status, nosniff, body);
            }
        }
        assert!(Instant::now() < deadline, "the attachment never answered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_attachment_uploaded_on_one_owner_is_served_by_the_next() {
    let Some(mut c) = Cluster::start("attachments", 2).await else {
        return;
    };
    let t = tenant(1);
    let owner = c.owner(&t).await.expect("owner");
    let dead = Cluster::index_of(&owner);
    let other = (dead + 1) % 2;
    // A web chat visitor uploads a picture through the owner itself.
    let deadline = Instant::now() + SETTLE;
    let uploaded = loop {
        let r = c
            .http
            .post(
                c.node(dead)
                    .url(&format!("/channels/webchat/{t}/attachments?name=photo.png")),
            )
            .header("content-type", "image/png")
            .body(graph::PNG.to_vec())
            .send()
            .await
            .expect("upload");
        let status = r.status().as_u16();
        let v: Value = r.json().await.unwrap_or(Value::Null);
        if status == 201 {
            break v;
        }
        assert_eq!(status, 503, "upload: {v}");
        assert!(Instant::now() < deadline, "the upload never answered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let id = uploaded["id"].as_str().expect("id").to_string();
    let token = login(&c, other, &t, "ann").await;
    let (status, _, body) = get_attachment(&c, other, &token, &id).await;
    assert_eq!(status, 200);
    assert_eq!(body, graph::PNG);

    // The owner dies; the tenant moves to the node left, which serves the
    // picture from the shared store, as before.
    c.node_mut(dead).kill();
    c.nodes[dead] = None;
    c.refresh_live();
    let new_owner = c.new_owner(&t, &owner).await;
    assert_eq!(Cluster::index_of(&new_owner), other);
    let (status, nosniff, body) = get_attachment(&c, other, &token, &id).await;
    assert_eq!(status, 200);
    assert_eq!(nosniff.as_deref(), Some("nosniff"));
    assert_eq!(body, graph::PNG);
    // Another tenant's agent gets 404, as for an unknown id.
    let stranger = login(&c, other, &tenant(2), "ann").await;
    let (status, _, _) = get_attachment(&c, other, &stranger, &id).await;
    assert_eq!(status, 404);
}
