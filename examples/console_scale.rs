//! The console's live view at scale, against the real release binary on
//! loopback: one tenant with 500 agents and 5,000 conversations waiting
//! (web chat), then customers keep writing (one command each) for a while
//! with no console open, and again with 50 supervisor sockets open.
//! Meanwhile a supervisor's requests keep changing agents' and
//! conversations' rows (one at a time: an agent set available is offered
//! waiting conversations, set idle they go back), so the console has
//! something to show
//! (customers' messages change no row of the live view). Reports the
//! frames each socket got per second (the feed coalesces to at most ~10),
//! the size of the first frame (the whole overview) and of the later ones
//! (what changed), and the engine's command throughput both ways (the
//! ratio is what 50 supervisors cost).
//!
//! ```sh
//! cargo build --release && cargo run --release --example console_scale
//! cargo run --release --example console_scale -- --supervisors 50 --duration 10
//! ```

#[path = "support/listening.rs"]
mod listening;

use clap::Parser;
use futures_util::StreamExt;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

#[derive(Parser, Debug, Clone)]
#[command(about = "Console live view at scale (loopback only)")]
struct Args {
    /// The server binary to start.
    #[arg(long, default_value = "target/release/switchboard")]
    server: PathBuf,
    #[arg(long, default_value_t = 500)]
    agents: usize,
    /// Conversations waiting before the measures.
    #[arg(long, default_value_t = 5000)]
    waiting: usize,
    /// Supervisor sockets open during the second measure.
    #[arg(long, default_value_t = 50)]
    supervisors: usize,
    /// Seconds of each measure.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Agents logged in whose state a supervisor keeps changing during
    /// the measures.
    #[arg(long, default_value_t = 20)]
    churn_agents: usize,
}

fn config(args: &Args, dir: &std::path::Path) -> String {
    let mut s = format!(
        r#"listen = "127.0.0.1:0"
data_dir = {data:?}
journal_sync = "normal"

[[tenants]]
id = "scale"
default_queue = "support"

[[tenants.queues]]
id = "support"

[[tenants.queues]]
id = "billing"

[tenants.webchat]
queue = "support"

[[tenants.agents]]
id = "sup"
password = "scale-pass"
queues = []
role = "supervisor"
"#,
        data = dir.join("data"),
    );
    for i in 0..args.agents {
        let queue = if i % 2 == 0 { "support" } else { "billing" };
        s += &format!(
            "\n[[tenants.agents]]\nid = \"a{i}\"\npassword = \"scale-pass\"\nqueues = [\"{queue}\"]\n"
        );
    }
    s
}

fn start(args: &Args, cfg: &std::path::Path) -> (std::process::Child, String) {
    let mut child = Command::new(&args.server)
        .args(["serve", "--config"])
        .arg(cfg)
        .env("SWITCHBOARD_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "start {}: {e} (cargo build --release first)",
                args.server.display()
            )
        });
    let base = listening::base_url(&mut child);
    (child, base)
}

/// A new web chat visitor's first message: its token.
async fn new_visitor(http: &reqwest::Client, base: &str, i: usize) -> Option<String> {
    let resp = http
        .post(format!("{base}/channels/webchat/scale/messages"))
        .json(&json!({"text": format!("hello {i}"), "name": format!("Customer {i}")}))
        .send()
        .await
        .ok()?;
    let v: Value = resp.json().await.ok()?;
    v["visitor_token"].as_str().map(str::to_owned)
}

/// A session token of `agent` (the supervisor: `sup`).
async fn login(http: &reqwest::Client, base: &str, agent: &str) -> String {
    let login: Value = http
        .post(format!("{base}/api/login"))
        .json(&json!({"tenant": "scale", "agent": agent, "password": "scale-pass"}))
        .send()
        .await
        .expect("login")
        .json()
        .await
        .expect("login answer");
    login["token"].as_str().expect("token").to_string()
}

/// Customers write (one message, one command each) for `secs`, at most
/// `concurrency` at once, while one supervisor request at a time changes
/// an agent's state: (customer commands per second, state changes per
/// second).
async fn measure(
    http: &reqwest::Client,
    base: &str,
    tokens: &Arc<Vec<String>>,
    args: &Args,
    sup: &str,
) -> (f64, f64) {
    let (concurrency, secs) = (args.concurrency, args.duration);
    let done = Arc::new(AtomicU64::new(0));
    let changed = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let until = started + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    {
        let (http, base, sup, changed) = (
            http.clone(),
            base.to_string(),
            sup.to_string(),
            changed.clone(),
        );
        let agents = args.churn_agents.min(args.agents);
        tasks.push(tokio::spawn(async move {
            let mut n = 0usize;
            while Instant::now() < until && agents > 0 {
                // Available (it is offered waiting conversations), then
                // idle (the offers go back to their queue).
                let agent = format!("a{}", (n / 2) % agents);
                let state = if n.is_multiple_of(2) {
                    "available"
                } else {
                    "idle"
                };
                n += 1;
                let ok = http
                    .put(format!("{base}/api/supervisor/agents/{agent}/state"))
                    .bearer_auth(&sup)
                    .json(&json!({"state": state}))
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success());
                if ok {
                    changed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for w in 0..concurrency {
        let (http, base, tokens, done) =
            (http.clone(), base.to_string(), tokens.clone(), done.clone());
        tasks.push(tokio::spawn(async move {
            let mut n = w;
            while Instant::now() < until {
                let token = &tokens[n % tokens.len()];
                n += concurrency;
                let ok = http
                    .post(format!("{base}/channels/webchat/scale/messages"))
                    .bearer_auth(token)
                    .json(&json!({"text": "still there?"}))
                    .send()
                    .await
                    .is_ok_and(|r| r.status().as_u16() == 202);
                if ok {
                    done.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let secs = started.elapsed().as_secs_f64();
    (
        done.load(Ordering::Relaxed) as f64 / secs,
        changed.load(Ordering::Relaxed) as f64 / secs,
    )
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let dir =
        std::env::temp_dir().join(format!("switchboard-console-scale-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let cfg = dir.join("scale.toml");
    std::fs::write(&cfg, config(&args, &dir)).expect("config");
    let (mut child, base) = start(&args, &cfg);
    let http = reqwest::Client::new();

    // The waiting conversations (nobody is available: they all wait).
    let fill = Instant::now();
    let mut tokens = Vec::with_capacity(args.waiting);
    let mut next = 0;
    while tokens.len() < args.waiting {
        let batch: Vec<_> = (next..(next + 64).min(args.waiting))
            .map(|i| {
                let (http, base) = (http.clone(), base.clone());
                tokio::spawn(async move { new_visitor(&http, &base, i).await })
            })
            .collect();
        next += batch.len();
        for b in batch {
            if let Ok(Some(t)) = b.await {
                tokens.push(t);
            }
        }
        if next >= args.waiting && tokens.len() < args.waiting {
            panic!(
                "only {} of {} conversations started",
                tokens.len(),
                args.waiting
            );
        }
    }
    let tokens = Arc::new(tokens);
    println!(
        "{} agents, {} conversations waiting (filled in {:.1} s)",
        args.agents,
        tokens.len(),
        fill.elapsed().as_secs_f64()
    );

    let sup = login(&http, &base, "sup").await;
    // The agents whose state changes: logged in (no socket: the measures
    // end well within the away grace).
    for i in 0..args.churn_agents.min(args.agents) {
        login(&http, &base, &format!("a{i}")).await;
    }
    let (quiet, quiet_changes) = measure(&http, &base, &tokens, &args, &sup).await;
    println!("0 supervisors: {quiet:.0} commands/s ({quiet_changes:.0} agent state changes/s)");

    // The supervisors: one session each, one console socket each.
    let frames = Arc::new(AtomicU64::new(0));
    let bytes = Arc::new(AtomicU64::new(0));
    let counting = Arc::new(AtomicBool::new(false));
    // The first frame of each socket (the whole overview): count, bytes.
    let first = Arc::new((AtomicU64::new(0), AtomicU64::new(0)));
    let mut sockets = Vec::new();
    for _ in 0..args.supervisors {
        let token = login(&http, &base, "sup").await;
        let url = format!(
            "{}/api/supervisor/events?token={token}",
            base.replacen("http", "ws", 1)
        );
        let (mut ws, _) = tokio_tungstenite::connect_async(&url)
            .await
            .expect("console socket");
        let (frames, bytes, counting) = (frames.clone(), bytes.clone(), counting.clone());
        let first = first.clone();
        sockets.push(tokio::spawn(async move {
            let mut got_first = false;
            while let Some(Ok(m)) = ws.next().await {
                if let Message::Text(t) = m {
                    if !got_first {
                        got_first = true;
                        first.0.fetch_add(1, Ordering::Relaxed);
                        first.1.fetch_add(t.len() as u64, Ordering::Relaxed);
                    } else if counting.load(Ordering::Relaxed) {
                        frames.fetch_add(1, Ordering::Relaxed);
                        bytes.fetch_add(t.len() as u64, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    // Every socket has its first overview before the measure.
    tokio::time::sleep(Duration::from_secs(2)).await;
    counting.store(true, Ordering::Relaxed);
    let started = Instant::now();
    let (busy, busy_changes) = measure(&http, &base, &tokens, &args, &sup).await;
    let secs = started.elapsed().as_secs_f64();
    counting.store(false, Ordering::Relaxed);
    let n = frames.load(Ordering::Relaxed) as f64;
    let per_socket = n / args.supervisors.max(1) as f64 / secs;
    let frame_kib = bytes.load(Ordering::Relaxed) as f64 / n.max(1.0) / 1024.0;
    let first_kib = first.1.load(Ordering::Relaxed) as f64
        / first.0.load(Ordering::Relaxed).max(1) as f64
        / 1024.0;
    println!(
        "{} supervisors: {busy:.0} commands/s ({busy_changes:.0} agent state changes/s); \
         {per_socket:.1} frames/s per socket after the first; first frame {first_kib:.0} KiB, \
         later frames {frame_kib:.1} KiB on average",
        args.supervisors
    );
    println!(
        "throughput with {} supervisors / without: {:.2}",
        args.supervisors,
        busy / quiet
    );
    for s in sockets {
        s.abort();
    }
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
}
