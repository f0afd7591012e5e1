//! Load generator: simulated customers send signed Messenger webhooks (or
//! web chat messages), simulated agents hold WebSockets, accept offers and
//! reply; a local stand-in Graph API receives the replies. Reports
//! throughput, latency percentiles, errors and the server's peak memory.
//!
//! Everything runs on loopback against the real release binary:
//!
//! ```sh
//! cargo build --release && cargo run --release --example loadgen -- --rate 5000 --duration 10
//! cargo run --release --example loadgen -- --rate 1000 --duration 10     # latency at 1k msg/s
//! cargo run --release --example loadgen -- --rate 0 --idle-sockets 10000 # 10k agent sockets
//! cargo run --release --example loadgen -- --startup-tenants 300          # start-up, 900 plain passwords
//! cargo run --release --example loadgen -- --startup-tenants 300 --hashed # the same with password_hash
//! createdb load1 && cargo run --release --example loadgen -- --rate 1000 \
//!     --database-url postgres://postgres@127.0.0.1/load1               # one node on PostgreSQL
//! createdb load3 && cargo run --release --example loadgen -- --rate 1000 --nodes 3 \
//!     --database-url postgres://postgres@127.0.0.1/load3               # three nodes, round-robin
//! ```
//! Requests loop for a bounded time and stop by themselves.

#[path = "support/listening.rs"]
mod listening;

use clap::Parser;
use futures_util::StreamExt;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

#[derive(Parser, Debug, Clone)]
#[command(about = "Load generator for Switchboard (loopback only)")]
struct Args {
    /// The server binary to start.
    #[arg(long, default_value = "target/release/switchboard")]
    server: PathBuf,
    /// Target inbound messages per second (0: send none).
    #[arg(long, default_value_t = 5000)]
    rate: u64,
    /// Seconds of sending.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Working agents (each with its own WebSocket).
    #[arg(long, default_value_t = 100)]
    agents: usize,
    /// Concurrent conversations per agent.
    #[arg(long, default_value_t = 50)]
    capacity: u32,
    /// Distinct customers (one open conversation each).
    #[arg(long, default_value_t = 2000)]
    customers: usize,
    /// Agents answer one customer message in N.
    #[arg(long, default_value_t = 10)]
    reply_every: u64,
    /// `messenger` (signed webhooks) or `webchat`.
    #[arg(long, default_value = "messenger")]
    channel: String,
    /// Journal sync mode: `full` or `normal`.
    #[arg(long, default_value = "full")]
    sync: String,
    /// Reload the tenant's scripts every N ms during the run (0: never).
    #[arg(long, default_value_t = 0)]
    reload_every_ms: u64,
    /// Run this routing script (a bundled one, e.g. `routing/skills.lua`)
    /// as a shadow policy beside the live one for the whole run.
    #[arg(long)]
    shadow: Option<String>,
    /// Extra agents that only hold a WebSocket open (memory test).
    #[arg(long, default_value_t = 0)]
    idle_sockets: usize,
    /// Concurrent HTTP senders.
    #[arg(long, default_value_t = 64)]
    senders: usize,
    /// Only measure start-up: this many tenants of 3 agents each, then exit.
    #[arg(long)]
    startup_tenants: Option<usize>,
    /// With `--startup-tenants`: agents have `password_hash`, not `password`.
    #[arg(long)]
    hashed: bool,
    /// Journal, sessions and leases in this PostgreSQL database instead of
    /// SQLite (it should be empty: `createdb` a new one per run).
    #[arg(long)]
    database_url: Option<String>,
    /// Start this many nodes on `--database-url` (a cluster); customers'
    /// messages and agents are spread over them round-robin.
    #[arg(long, default_value_t = 1)]
    nodes: usize,
}

const SECRET: &str = "load-secret";
const ADMIN: &str = "load-admin";
const PAGE: &str = "4242";

/// Latency samples in microseconds.
#[derive(Default)]
struct Samples(Mutex<Vec<u64>>);

impl Samples {
    fn add(&self, d: Duration) {
        if let Ok(mut v) = self.0.lock() {
            v.push(d.as_micros() as u64);
        }
    }
    fn report(&self, name: &str) {
        let mut v = self.0.lock().map(|v| v.clone()).unwrap_or_default();
        if v.is_empty() {
            println!("{name:<34} no samples");
            return;
        }
        v.sort_unstable();
        let p = |q: f64| v[((v.len() as f64 * q) as usize).min(v.len() - 1)] as f64 / 1000.0;
        println!(
            "{name:<34} n={:<7} p50={:>8.2} ms  p90={:>8.2} ms  p99={:>8.2} ms  p99.9={:>8.2} ms  max={:>8.2} ms",
            v.len(),
            p(0.5),
            p(0.9),
            p(0.99),
            p(0.999),
            *v.last().unwrap_or(&0) as f64 / 1000.0
        );
    }
}

#[derive(Default)]
struct Stats {
    sent: AtomicU64,
    acked: AtomicU64,
    errors: AtomicU64,
    delivered: AtomicU64,
    replies: AtomicU64,
    reply_errors: AtomicU64,
    graph_received: AtomicU64,
    reloads: AtomicU64,
    reload_failures: AtomicU64,
    ack: Samples,
    to_agent: Samples,
    to_graph: Samples,
    /// Send instant of each inbound message id.
    sent_at: Mutex<HashMap<u64, Instant>>,
    /// Send instant of each agent reply id.
    reply_at: Mutex<HashMap<u64, Instant>>,
}

fn cheap_hash() -> String {
    // Load agents log in by the thousand: a deliberately cheap argon2 hash
    // (the PHC string carries its parameters), not a production setting.
    use argon2::password_hash::{PasswordHasher, SaltString};
    let params = argon2::Params::new(8, 1, 1, None).expect("argon2 params");
    let a = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let salt = SaltString::encode_b64(b"loadgen-salt-123").expect("salt");
    a.hash_password(b"load", &salt).expect("hash").to_string()
}

fn config(args: &Args, graph: &str, dir: &std::path::Path) -> String {
    let hash = cheap_hash();
    let mut s = format!(
        r#"listen = "127.0.0.1:0"
data_dir = {data:?}
admin_token = "{ADMIN}"
journal_sync = "{sync}"

[[tenants]]
id = "load"
mask = true
default_queue = "support"

[[tenants.queues]]
id = "support"
rona_timeout_ms = 600000

[[tenants.queues]]
id = "idle"

[tenants.webchat]
queue = "support"

[tenants.messenger]
verify_token = "load-verify"
app_secret = "{SECRET}"
page_id = "{PAGE}"
page_name = "Load Page"
access_token = "load-access"
graph_api_base = "{graph}"
graph_api_version = "v21.0"
queue = "support"
"#,
        data = dir.join("data"),
        sync = args.sync,
    );
    for i in 0..args.agents {
        s += &format!(
            "\n[[tenants.agents]]\nid = \"a{i}\"\npassword_hash = \"{hash}\"\ncapacity = {}\nqueues = [\"support\"]\n",
            args.capacity
        );
    }
    for i in 0..args.idle_sockets {
        s += &format!(
            "\n[[tenants.agents]]\nid = \"idle{i}\"\npassword_hash = \"{hash}\"\ncapacity = 1\nqueues = [\"idle\"]\n"
        );
    }
    s
}

/// The stand-in Graph API: records when each reply arrives.
async fn graph_api(stats: Arc<Stats>) -> String {
    use axum::routing::post;
    let app = axum::Router::new().route(
        "/{version}/me/messages",
        post(move |body: axum::Json<Value>| {
            let stats = stats.clone();
            async move {
                stats.graph_received.fetch_add(1, Ordering::Relaxed);
                if let Some(id) = body["message"]["text"]
                    .as_str()
                    .and_then(|t| t.strip_prefix("R "))
                    .and_then(|n| n.parse::<u64>().ok())
                {
                    let at = stats.reply_at.lock().ok().and_then(|mut m| m.remove(&id));
                    if let Some(at) = at {
                        stats.to_graph.add(at.elapsed());
                    }
                }
                axum::Json(json!({"recipient_id": body["recipient"]["id"], "message_id": "m_load"}))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind graph");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}")
}

fn rss_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

/// Log in, coming back when the server says so (503 when its password
/// workers are saturated, 429 while the account has attempts in flight).
async fn login(http: &reqwest::Client, base: &str, agent: &str) -> Option<String> {
    for _ in 0..120 {
        let resp = http
            .post(format!("{base}/api/login"))
            .json(&json!({"tenant": "load", "agent": agent, "password": "load"}))
            .send()
            .await
            .ok()?;
        if matches!(resp.status().as_u16(), 429 | 503) {
            let secs = resp
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok()?.parse().ok())
                .unwrap_or(1u64);
            tokio::time::sleep(Duration::from_millis(secs * 1000 / 4 + 50)).await;
            continue;
        }
        let v: Value = resp.json().await.ok()?;
        return v["token"].as_str().map(str::to_string);
    }
    None
}

/// `--startup-tenants N`: time from starting the server to its listening
/// line with N tenants of 3 agents each, and its memory then.
fn startup(args: &Args, tenants: usize) {
    let dir = std::env::temp_dir().join(format!("switchboard-startup-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let hash = cheap_hash();
    let mut cfg = format!(
        "listen = \"127.0.0.1:0\"\ndata_dir = {:?}\nadmin_token = \"{ADMIN}\"\n",
        dir.join("data")
    );
    for t in 0..tenants {
        cfg += &format!("\n[[tenants]]\nid = \"t{t}\"\ndefault_queue = \"q\"\n\n[[tenants.queues]]\nid = \"q\"\n");
        for a in 0..3 {
            let credential = if args.hashed {
                format!("password_hash = \"{hash}\"")
            } else {
                format!("password = \"pw-{t}-{a}\"")
            };
            cfg +=
                &format!("\n[[tenants.agents]]\nid = \"a{a}\"\n{credential}\nqueues = [\"q\"]\n");
        }
    }
    let path = dir.join("startup.toml");
    std::fs::write(&path, cfg).expect("write config");
    let started = Instant::now();
    let mut child = Command::new(&args.server)
        .args(["serve", "--config"])
        .arg(&path)
        .env("SWITCHBOARD_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "start {}: {e} (cargo build --release first)",
                args.server.display()
            )
        });
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let listening = lines
        .by_ref()
        .map_while(Result::ok)
        .any(|l| l.starts_with("Switchboard is listening on "));
    let elapsed = started.elapsed();
    let pid = child.id();
    println!(
        "{tenants} tenants x 3 agents ({}): listening={listening} after {:.2} s; RSS {:.1} MiB (peak {:.1} MiB)",
        if args.hashed { "password_hash" } else { "plain password" },
        elapsed.as_secs_f64(),
        rss_kib(pid, "VmRSS:") as f64 / 1024.0,
        rss_kib(pid, "VmHWM:") as f64 / 1024.0
    );
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
}

async fn run_agent(
    http: reqwest::Client,
    base: String,
    agent: String,
    stats: Arc<Stats>,
    reply_every: u64,
    stop: Arc<tokio::sync::Notify>,
) {
    let Some(token) = login(&http, &base, &agent).await else {
        eprintln!("login failed for {agent}");
        return;
    };
    let ws_url = format!(
        "{}/api/agent/events?token={token}",
        base.replacen("http", "ws", 1)
    );
    let Ok((mut ws, _)) = tokio_tungstenite::connect_async(&ws_url).await else {
        eprintln!("websocket failed for {agent}");
        return;
    };
    let _ = http
        .put(format!("{base}/api/agent/state"))
        .bearer_auth(&token)
        .json(&json!({"state": "available"}))
        .send()
        .await;
    let next_reply = Arc::new(AtomicU64::new(1_000_000_000));
    loop {
        let frame = tokio::select! {
            f = ws.next() => f,
            _ = stop.notified() => break,
        };
        let Some(Ok(Message::Text(t))) = frame else {
            if frame.is_none() {
                break;
            }
            continue;
        };
        let Ok(v) = serde_json::from_str::<Value>(&t) else {
            continue;
        };
        match v["type"].as_str() {
            Some("offer") => {
                let id = v["conversation"].as_u64().unwrap_or(0);
                let (http, base, token) = (http.clone(), base.clone(), token.clone());
                tokio::spawn(async move {
                    let _ = http
                        .post(format!("{base}/api/conversations/{id}/accept"))
                        .bearer_auth(&token)
                        .send()
                        .await;
                });
            }
            Some("conversation_started") => {
                // Messages that arrived before acceptance come in the transcript.
                if let Some(msgs) = v["messages"].as_array() {
                    for m in msgs {
                        observe(&stats, m["text"].as_str());
                    }
                }
            }
            Some("message") if v["from"] == "customer" => {
                let n = observe(&stats, v["text"].as_str());
                if let Some(n) = n.filter(|n| n % reply_every == 0) {
                    let conv = v["conversation"].as_u64().unwrap_or(0);
                    let rid = next_reply.fetch_add(1, Ordering::Relaxed) + n;
                    if let Ok(mut m) = stats.reply_at.lock() {
                        m.insert(rid, Instant::now());
                    }
                    let (http, base, token, stats) =
                        (http.clone(), base.clone(), token.clone(), stats.clone());
                    tokio::spawn(async move {
                        let r = http
                            .post(format!("{base}/api/conversations/{conv}/messages"))
                            .bearer_auth(&token)
                            .json(&json!({"text": format!("R {rid}")}))
                            .send()
                            .await;
                        match r {
                            Ok(r) if r.status().is_success() => {
                                stats.replies.fetch_add(1, Ordering::Relaxed)
                            }
                            _ => stats.reply_errors.fetch_add(1, Ordering::Relaxed),
                        };
                    });
                }
            }
            _ => {}
        }
    }
}

/// Record the webhook → agent latency of an inbound message `L <n>`.
fn observe(stats: &Stats, text: Option<&str>) -> Option<u64> {
    let n = text?.strip_prefix("L ")?.parse::<u64>().ok()?;
    let at = stats.sent_at.lock().ok().and_then(|mut m| m.remove(&n));
    if let Some(at) = at {
        stats.delivered.fetch_add(1, Ordering::Relaxed);
        stats.to_agent.add(at.elapsed());
    }
    Some(n)
}

fn webhook_body(psid: &str, n: u64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    json!({"object": "page", "entry": [{"id": PAGE, "time": now, "messaging": [{
        "sender": {"id": psid}, "recipient": {"id": PAGE}, "timestamp": now,
        "message": {"mid": format!("m_{n}"), "text": format!("L {n}")}
    }]}]})
    .to_string()
}

fn sign(body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).expect("hmac key");
    mac.update(body.as_bytes());
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Start node `n` of the run; its process and base URL.
fn start_node(args: &Args, cfg: &std::path::Path, n: usize) -> (std::process::Child, String) {
    let mut cmd = Command::new(&args.server);
    cmd.args(["serve", "--config"])
        .arg(cfg)
        .env("SWITCHBOARD_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    if let Some(url) = &args.database_url {
        cmd.env("SWITCHBOARD_DATABASE_URL", url)
            .env("SWITCHBOARD_NODE_ID", format!("load-{n}"));
    }
    let mut child = cmd.spawn().unwrap_or_else(|e| {
        panic!(
            "start {}: {e} (cargo build --release first)",
            args.server.display()
        )
    });
    let base = listening::base_url(&mut child);
    (child, base)
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    if args.nodes > 1 && args.database_url.is_none() {
        eprintln!("--nodes needs --database-url: nodes of a cluster share a PostgreSQL database");
        std::process::exit(2);
    }
    if let Some(n) = args.startup_tenants {
        startup(&args, n);
        return;
    }
    let stats = Arc::new(Stats::default());
    let graph = graph_api(stats.clone()).await;
    let dir = std::env::temp_dir().join(format!("switchboard-load-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let cfg = dir.join("load.toml");
    std::fs::write(&cfg, config(&args, &graph, &dir)).expect("write config");
    // The nodes (one unless --nodes): each started here, on loopback,
    // with the same configuration (it points at this tool's stand-in
    // Graph API) and, for a cluster, the same database.
    let mut children = Vec::new();
    let bases: Vec<String> = (0..args.nodes.max(1))
        .map(|n| {
            let (child, base) = start_node(&args, &cfg, n);
            children.push(child);
            base
        })
        .collect();
    let pid = children.first().map(|c| c.id()).unwrap_or(0);
    let base = bases[0].clone();
    // A cluster serves once every node has taken its share.
    if args.database_url.is_some() {
        let probe = reqwest::Client::new();
        for b in &bases {
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                let ready = probe
                    .get(format!("{b}/readyz"))
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success());
                if ready {
                    break;
                }
                assert!(Instant::now() < deadline, "{b} never became ready");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.senders * 2)
        .build()
        .expect("client");
    println!(
        "{} node(s) {:?} (first pid {pid}), store {}; {} agents x {} capacity, {} customers, channel {}, journal sync {}",
        bases.len(),
        bases,
        if args.database_url.is_some() { "PostgreSQL" } else { "SQLite" },
        args.agents, args.capacity, args.customers, args.channel, args.sync
    );

    let stop = Arc::new(tokio::sync::Notify::new());
    let mut agent_tasks = Vec::new();
    let started = Instant::now();
    for i in 0..args.agents {
        agent_tasks.push(tokio::spawn(run_agent(
            http.clone(),
            bases[i % bases.len()].clone(),
            format!("a{i}"),
            stats.clone(),
            args.reply_every,
            stop.clone(),
        )));
    }
    // Idle desktops: log in and hold the socket.
    let mut idle = Vec::new();
    for chunk in (0..args.idle_sockets).collect::<Vec<_>>().chunks(256) {
        let mut batch = Vec::new();
        for &i in chunk {
            let (http, base) = (http.clone(), base.clone());
            batch.push(tokio::spawn(async move {
                let token = login(&http, &base, &format!("idle{i}")).await?;
                let url = format!(
                    "{}/api/agent/events?token={token}",
                    base.replacen("http", "ws", 1)
                );
                tokio_tungstenite::connect_async(&url)
                    .await
                    .ok()
                    .map(|(ws, _)| ws)
            }));
        }
        for b in batch {
            if let Ok(Some(ws)) = b.await {
                idle.push(ws);
            }
        }
    }
    if args.idle_sockets > 0 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        println!(
            "idle agent sockets open: {} in {:.1} s; server RSS {:.1} MiB (peak {:.1} MiB)",
            idle.len(),
            started.elapsed().as_secs_f64(),
            rss_kib(pid, "VmRSS:") as f64 / 1024.0,
            rss_kib(pid, "VmHWM:") as f64 / 1024.0
        );
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    // A shadow policy beside the live one.
    if let Some(routing) = &args.shadow {
        let r = http
            .put(format!("{base}/admin/tenants/load/shadow"))
            .bearer_auth(ADMIN)
            .json(&json!({ "routing": routing }))
            .send()
            .await
            .expect("start the shadow policy");
        assert!(r.status().is_success(), "shadow refused: {}", r.status());
        println!("shadow policy {routing} running");
    }

    // Reloads during the run.
    let reloader = (args.reload_every_ms > 0).then(|| {
        let (http, base, stats) = (http.clone(), base.clone(), stats.clone());
        let every = Duration::from_millis(args.reload_every_ms);
        let until = Instant::now() + Duration::from_secs(args.duration);
        tokio::spawn(async move {
            while Instant::now() < until {
                tokio::time::sleep(every).await;
                let r = http
                    .post(format!("{base}/admin/tenants/load/reload"))
                    .bearer_auth(ADMIN)
                    .send()
                    .await;
                stats.reloads.fetch_add(1, Ordering::Relaxed);
                if !matches!(&r, Ok(r) if r.status().is_success()) {
                    stats.reload_failures.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    });

    // Senders: each paces its share of the rate.
    let send_start = Instant::now();
    let counter = Arc::new(AtomicU64::new(0));
    let mut senders = Vec::new();
    // Web chat visitor tokens the server issued, by customer.
    let visitor_tokens: Arc<std::sync::Mutex<HashMap<String, String>>> = Arc::default();
    if args.rate > 0 {
        let per_sender = args.rate as f64 / args.senders as f64;
        let total = args.rate * args.duration;
        for k in 0..args.senders {
            let (http, bases, stats, counter, a, visitor_tokens) = (
                http.clone(),
                bases.clone(),
                stats.clone(),
                counter.clone(),
                args.clone(),
                visitor_tokens.clone(),
            );
            senders.push(tokio::spawn(async move {
                let interval = Duration::from_secs_f64(1.0 / per_sender);
                // Stagger the senders over one interval so arrivals are
                // spread evenly instead of landing in bursts on the same
                // timer tick.
                let mut next = Instant::now() + interval.mul_f64(k as f64 / a.senders as f64);
                tokio::time::sleep_until(next.into()).await;
                loop {
                    let n = counter.fetch_add(1, Ordering::Relaxed);
                    if n >= total || send_start.elapsed() > Duration::from_secs(a.duration + 5) {
                        break;
                    }
                    let psid = format!("{}", 10_000 + n % a.customers as u64);
                    // Round-robin over the nodes, as a load balancer would.
                    let base = &bases[n as usize % bases.len()];
                    if let Ok(mut m) = stats.sent_at.lock() {
                        m.insert(n, Instant::now());
                    }
                    stats.sent.fetch_add(1, Ordering::Relaxed);
                    let t0 = Instant::now();
                    let r = if a.channel == "webchat" {
                        // A customer's first message gets its visitor token;
                        // its later ones carry it (same conversation).
                        let token = visitor_tokens
                            .lock()
                            .ok()
                            .and_then(|m| m.get(&psid).cloned());
                        let mut req = http
                            .post(format!("{base}/channels/webchat/load/messages"))
                            .json(&json!({"visitor": psid, "text": format!("L {n}")}));
                        if let Some(t) = &token {
                            req = req.bearer_auth(t);
                        }
                        match req.send().await {
                            Ok(r) if token.is_none() && r.status().is_success() => {
                                let status = r.status();
                                let v: serde_json::Value = r.json().await.unwrap_or_default();
                                if let (Some(t), Ok(mut m)) =
                                    (v["visitor_token"].as_str(), visitor_tokens.lock())
                                {
                                    m.entry(psid.clone()).or_insert_with(|| t.to_string());
                                }
                                Ok(status)
                            }
                            other => other.map(|r| r.status()),
                        }
                    } else {
                        let body = webhook_body(&psid, n);
                        http.post(format!("{base}/channels/messenger/load/webhook"))
                            .header("content-type", "application/json")
                            .header("x-hub-signature-256", sign(&body))
                            .body(body)
                            .send()
                            .await
                            .map(|r| r.status())
                    };
                    match r {
                        Ok(status) if status.is_success() => {
                            stats.acked.fetch_add(1, Ordering::Relaxed);
                            stats.ack.add(t0.elapsed());
                        }
                        _ => {
                            stats.errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    next += interval;
                    let now = Instant::now();
                    if next > now {
                        tokio::time::sleep(next - now).await;
                    } else {
                        next = now;
                    }
                }
            }));
        }
    }
    for s in senders {
        let _ = s.await;
    }
    let send_secs = send_start.elapsed().as_secs_f64();
    // Let deliveries drain (bounded).
    let drain_until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < drain_until
        && stats.delivered.load(Ordering::Relaxed) < stats.acked.load(Ordering::Relaxed)
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    if let Some(r) = reloader {
        let _ = r.await;
    }
    let peak = rss_kib(pid, "VmHWM:");
    stop.notify_waiters();
    let acked = stats.acked.load(Ordering::Relaxed);
    println!(
        "--- results ({} s of sending)",
        format_args!("{send_secs:.1}")
    );
    println!(
        "inbound: sent {} acked {} errors {}  => {:.0} msg/s acknowledged",
        stats.sent.load(Ordering::Relaxed),
        acked,
        stats.errors.load(Ordering::Relaxed),
        acked as f64 / send_secs
    );
    println!(
        "delivered to agents {}  replies {} (errors {})  received by Graph API {}",
        stats.delivered.load(Ordering::Relaxed),
        stats.replies.load(Ordering::Relaxed),
        stats.reply_errors.load(Ordering::Relaxed),
        stats.graph_received.load(Ordering::Relaxed)
    );
    if args.reload_every_ms > 0 {
        println!(
            "reloads {} failed {}",
            stats.reloads.load(Ordering::Relaxed),
            stats.reload_failures.load(Ordering::Relaxed)
        );
    }
    if args.shadow.is_some() {
        let r = http
            .get(format!("{base}/admin/tenants/load/shadow"))
            .bearer_auth(ADMIN)
            .send()
            .await;
        if let Ok(r) = r {
            let v: Value = r.json().await.unwrap_or_default();
            println!(
                "shadow: decisions {} agreed {} errors {} dropped {}",
                v["decisions"], v["agreed"], v["errors"], v["dropped"]
            );
        }
    }
    stats.ack.report("webhook acknowledged");
    stats.to_agent.report("webhook in -> agent WebSocket");
    stats.to_graph.report("agent reply -> Graph API request");
    println!("first server's peak RSS {:.1} MiB", peak as f64 / 1024.0);
    for mut child in children {
        let _ = child.kill();
        let _ = child.wait();
    }
    let _ = std::fs::remove_dir_all(&dir);
    drop(idle);
    for t in agent_tasks {
        t.abort();
    }
}
