//! Throughput of the Messenger webhook path against a bare axum server,
//! side by side in one run on this machine with the same load.
//!
//! (a) `bare`: an axum server that only checks `X-Hub-Signature-256` and
//!     parses the JSON body, then answers 200.
//! (b) `switchboard`: the real router (`http::app`) of a server built as
//!     `switchboard serve` builds it: signature, the Messenger adapter
//!     script, masking, the engine, the SQLite journal with fsync per
//!     commit (`journal_sync = "full"`), answered after the commit.
//!
//! Each server runs on its own tokio runtime in this process; the load is
//! 64 keep-alive connections on loopback sending signed webhooks, each
//! with a distinct message id, from 2,000 customers, as fast as answers
//! come back. Prints both rates and their ratio, and the CPU time the
//! process spent per webhook in each phase (less sensitive to other work on
//! the machine than the rates).
//!
//! With `--depths 1000,10000,100000`, instead: the real server's ingestion
//! rate with that many conversations already waiting (every webhook a new
//! customer, no agent free), which must not fall as the queue grows: one
//! server per depth, timed in turns.
//!
//! ```sh
//! cargo run --release --example webhook_ratio
//! cargo run --release --example webhook_ratio -- --seconds 10 --connections 64
//! cargo run --release --example webhook_ratio -- --depths 1000,10000,100000 --sync normal
//! ```

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::serve::ListenerExt;
use axum::Router;
use clap::Parser;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use switchboard_core::lua::sb::verify_sha256_signature;

#[derive(Parser, Debug)]
#[command(about = "Messenger webhook throughput: Switchboard vs a bare axum server")]
struct Args {
    /// Seconds measured per server and round (after one second of warm-up).
    #[arg(long, default_value_t = 3)]
    seconds: u64,
    /// Rounds, each loading the bare server then the real one: the host's
    /// speed drifts, and a ratio taken over seconds next to each other
    /// follows it less than one taken minutes apart. The median of the
    /// rounds' ratios is the result.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Concurrent keep-alive connections.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Distinct customers (PSIDs).
    #[arg(long, default_value_t = 2000)]
    customers: u64,
    /// Worker threads of each server's runtime (default: the cores).
    #[arg(long)]
    server_threads: Option<usize>,
    /// Instead of the ratio: the ingestion rate of the real server with
    /// this many conversations already waiting (comma-separated), every
    /// webhook a new customer and no agent free (issue 11, "Cost that must
    /// not grow with the queue"). One server per depth is filled through
    /// the same webhooks, unmeasured; then `--window` webhooks are timed
    /// on each, in `--rounds` turns.
    #[arg(long, value_delimiter = ',')]
    depths: Vec<u64>,
    /// Webhooks timed at each depth (over all rounds).
    #[arg(long, default_value_t = 5000)]
    window: u64,
    /// `journal_sync` of the real server: `full` (fsync per commit, as in
    /// the ratio) or `normal` (the engine's cost less hidden behind the disk).
    #[arg(long, default_value = "full")]
    sync: String,
}

const SECRET: &str = "ratio-secret";
const PAGE: &str = "4242";
const PATH: &str = "/channels/messenger/load/webhook";

fn sign(body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(SECRET.as_bytes()).expect("any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn body(psid: u64, n: u64) -> String {
    serde_json::json!({
        "object": "page",
        "entry": [{"id": PAGE, "time": 1_700_000_000_000u64 + n, "messaging": [{
            "sender": {"id": format!("{}", 7_000_000_000u64 + psid)},
            "recipient": {"id": PAGE},
            "timestamp": 1_700_000_000_000u64 + n,
            "message": {"mid": format!("m_{n}"), "text": format!("hello, my order {n} has not arrived")}
        }]}]
    })
    .to_string()
}

/// (a): signature and JSON, nothing else.
async fn bare(headers: HeaderMap, body: Bytes) -> (StatusCode, &'static str) {
    let sig = headers
        .get("x-hub-signature-256")
        .and_then(|v| v.to_str().ok());
    if !verify_sha256_signature(SECRET.as_bytes(), &body, sig) {
        return (StatusCode::UNAUTHORIZED, "bad signature");
    }
    match serde_json::from_slice::<serde_json::Value>(&body) {
        Ok(v) if v.get("object").is_some() => (StatusCode::OK, "EVENT_RECEIVED"),
        _ => (StatusCode::BAD_REQUEST, "bad body"),
    }
}

fn config(dir: &std::path::Path, sync: &str) -> String {
    format!(
        r#"listen = "127.0.0.1:0"
data_dir = {data:?}
admin_token = "ratio-admin"
journal_sync = "{sync}"

[[tenants]]
id = "load"
mask = true
default_queue = "support"

[[tenants.queues]]
id = "support"
rona_timeout_ms = 600000

[[tenants.agents]]
id = "a0"
password = "x"
queues = ["support"]

[tenants.messenger]
verify_token = "ratio-verify"
app_secret = "{SECRET}"
page_id = "{PAGE}"
page_name = "Load Page"
access_token = "ratio-access"
graph_api_base = "http://127.0.0.1:9"
graph_api_version = "v21.0"
queue = "support"
"#,
        data = dir.join("data"),
        sync = sync,
    )
}

/// Serve the router `make` builds (inside the runtime: the real server
/// spawns its timers and outbox there) on a runtime of its own; returns
/// its address.
fn serve(make: impl FnOnce() -> Router + Send + 'static, threads: Option<usize>) -> SocketAddr {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        if let Some(n) = threads {
            b.worker_threads(n);
        }
        let rt = b.enable_all().build().expect("server runtime");
        rt.block_on(async move {
            let router = make();
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            tx.send(listener.local_addr().expect("addr")).expect("send");
            let listener = listener.tap_io(|tcp| {
                let _ = tcp.set_nodelay(true);
            });
            axum::serve(
                listener,
                router.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await
            .expect("serve");
        });
    });
    rx.recv().expect("server address")
}

/// The load's HTTP client: one keep-alive connection per task.
fn client(args: &Args) -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(args.connections)
        .tcp_nodelay(true)
        .build()
        .expect("client")
}

/// Post one signed webhook; whether it was accepted.
async fn deliver(client: &reqwest::Client, url: &str, body: String) -> bool {
    let sig = sign(body.as_bytes());
    let sent = client
        .post(url)
        .header("content-type", "application/json")
        .header("x-hub-signature-256", sig)
        .body(body)
        .send()
        .await;
    match sent {
        Ok(r) => {
            let s = r.status();
            let _ = r.bytes().await;
            s.is_success()
        }
        Err(_) => false,
    }
}

/// CPU time (user + system) this process has used so far, in seconds,
/// from `/proc/self/stat` (Linux; `None` elsewhere).
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses and may hold
    // spaces: state is field 3, utime 14 and stime 15 (1-based).
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    let ticks = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    // The kernel's USER_HZ is 100 on every Linux ABI Rust targets.
    Some(ticks / 100.0)
}

/// What one server did under the load.
struct Rate {
    /// Accepted webhooks per second.
    per_second: f64,
    /// CPU time of the whole process (server and load alike) per accepted
    /// webhook, in microseconds: less sensitive than the rate to other work
    /// on the machine.
    cpu_us: Option<f64>,
}

/// Send signed webhooks over `connections` keep-alive connections for
/// warm-up + `seconds`; returns accepted webhooks per second measured.
async fn load(addr: SocketAddr, args: &Args, next: Arc<AtomicU64>) -> Rate {
    let client = client(args);
    let url = format!("http://{addr}{PATH}");
    let counting = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..args.connections {
        let (client, url, next) = (client.clone(), url.clone(), next.clone());
        let (counting, stop, ok, failed) =
            (counting.clone(), stop.clone(), ok.clone(), failed.clone());
        let customers = args.customers;
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let n = next.fetch_add(1, Ordering::Relaxed);
                let good = deliver(&client, &url, body(n % customers, n)).await;
                if counting.load(Ordering::Relaxed) {
                    if good { &ok } else { &failed }.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    counting.store(true, Ordering::SeqCst);
    let started = Instant::now();
    let cpu_before = cpu_seconds();
    tokio::time::sleep(Duration::from_secs(args.seconds)).await;
    counting.store(false, Ordering::SeqCst);
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = cpu_before.zip(cpu_seconds()).map(|(a, b)| b - a);
    stop.store(true, Ordering::SeqCst);
    for t in tasks {
        let _ = t.await;
    }
    let failed = failed.load(Ordering::SeqCst);
    if failed > 0 {
        eprintln!("  {failed} requests failed");
    }
    let ok = ok.load(Ordering::SeqCst) as f64;
    Rate {
        per_second: ok / elapsed,
        cpu_us: cpu.filter(|_| ok > 0.0).map(|c| c / ok * 1e6),
    }
}

fn cpu_text(r: &Rate) -> String {
    r.cpu_us
        .map_or(String::new(), |c| format!(", {c:.0} µs of CPU each"))
}

/// Send webhooks `from..to` (customer `n` for webhook `n`: each one opens
/// a conversation) over `connections` keep-alive connections of `client`;
/// returns how many were accepted, the seconds it took and the CPU
/// seconds the process spent meanwhile.
async fn drive(
    client: &reqwest::Client,
    url: &str,
    connections: usize,
    (from, to): (u64, u64),
) -> (u64, f64, Option<f64>) {
    let next = Arc::new(AtomicU64::new(from));
    let accepted = Arc::new(AtomicU64::new(0));
    let (started, cpu_before) = (Instant::now(), cpu_seconds());
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let (client, url) = (client.clone(), url.to_string());
        let (next, accepted) = (next.clone(), accepted.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= to {
                    break;
                }
                if deliver(&client, &url, body(n, n)).await {
                    accepted.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let cpu = cpu_before.zip(cpu_seconds()).map(|(a, b)| b - a);
    (
        accepted.load(Ordering::SeqCst),
        started.elapsed().as_secs_f64(),
        cpu,
    )
}

/// `--depths`: one real server per depth, each filled with that many
/// waiting conversations (unmeasured), then timed in turns: each round
/// sends `window / rounds` webhooks to each server in turn, so a drift of
/// the host's speed falls on every depth alike. Prints the rate and the
/// CPU per webhook at each depth, and their spreads.
async fn depths(servers: &[(u64, SocketAddr)], args: &Args) {
    let clients: Vec<(reqwest::Client, String)> = servers
        .iter()
        .map(|(_, addr)| (client(args), format!("http://{addr}{PATH}")))
        .collect();
    let mut next = 0u64;
    for ((depth, _), (client, url)) in servers.iter().zip(&clients) {
        let (accepted, _, _) = drive(client, url, args.connections, (next, next + depth)).await;
        next += depth;
        if accepted < *depth {
            println!("filling to {depth}: {accepted} accepted; stopped");
            return;
        }
    }
    let rounds = args.rounds.max(1) as u64;
    let per_round = (args.window / rounds).max(1);
    println!(
        "{} connections, journal_sync = {}, every webhook a new customer, no agent free; \
         {} timed at each depth in {} rounds",
        args.connections,
        args.sync,
        per_round * rounds,
        rounds
    );
    // Per server: accepted, seconds, CPU seconds.
    let mut totals = vec![(0u64, 0f64, Some(0f64)); servers.len()];
    for _ in 0..rounds {
        for ((client, url), total) in clients.iter().zip(totals.iter_mut()) {
            let (ok, secs, cpu) =
                drive(client, url, args.connections, (next, next + per_round)).await;
            next += per_round;
            total.0 += ok;
            total.1 += secs;
            total.2 = total.2.zip(cpu).map(|(a, b)| a + b);
        }
    }
    let (mut rates, mut cpus) = (Vec::new(), Vec::new());
    for ((depth, _), (ok, secs, cpu)) in servers.iter().zip(&totals) {
        let rate = *ok as f64 / secs;
        let cpu = cpu.filter(|_| *ok > 0).map(|c| c / *ok as f64 * 1e6);
        let cpu_text = cpu.map_or(String::new(), |c| format!(", {c:>5.0} µs of CPU each"));
        println!("{depth:>8} waiting: {rate:>8.0} new conversations/s{cpu_text}");
        rates.push(rate);
        cpus.extend(cpu);
        if *ok < per_round * rounds {
            eprintln!("  {} requests failed", per_round * rounds - ok);
        }
    }
    let spread = |v: &[f64]| {
        let max = v.iter().copied().fold(f64::MIN, f64::max);
        let min = v.iter().copied().fold(f64::MAX, f64::min);
        min / max
    };
    if rates.len() > 1 {
        println!("slowest / fastest: {:.3}", spread(&rates));
    }
    // The CPU each webhook cost, cheapest / dearest: less sensitive than
    // the rates to other work on the machine.
    if cpus.len() > 1 {
        println!("CPU per webhook, cheapest / dearest: {:.3}", spread(&cpus));
    }
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let dir = std::env::temp_dir().join(format!("switchboard-ratio-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    // A real server, assembled as `switchboard serve` does it, keeping its
    // data in `dir/name`.
    let real = |name: &str| -> anyhow::Result<SocketAddr> {
        let cfg = switchboard::config::Config::from_toml_str(&config(&dir.join(name), &args.sync))?;
        Ok(serve(
            move || {
                let state =
                    switchboard::server::build(&cfg, "ratio-admin".into()).expect("server builds");
                switchboard::http::app(state)
            },
            args.server_threads,
        ))
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    if !args.depths.is_empty() {
        let mut servers = Vec::new();
        for &d in &args.depths {
            servers.push((d, real(&format!("depth-{d}"))?));
        }
        rt.block_on(depths(&servers, &args));
        let _ = std::fs::remove_dir_all(&dir);
        return Ok(());
    }
    let real_addr = real("ratio")?;
    let bare_addr = serve(
        || Router::new().route(PATH, post(bare)),
        args.server_threads,
    );
    let next = Arc::new(AtomicU64::new(0));
    println!(
        "{} connections, {} round(s) of {} s each, distinct message ids, {} customers, journal_sync = {}",
        args.connections, args.rounds, args.seconds, args.customers, args.sync
    );
    let (mut ratios, mut cpu_ratios) = (Vec::new(), Vec::new());
    for round in 1..=args.rounds.max(1) {
        let bare = rt.block_on(load(bare_addr, &args, next.clone()));
        let real = rt.block_on(load(real_addr, &args, next.clone()));
        println!("round {round}:");
        println!(
            "  bare axum (signature + JSON):         {:>7.0} webhooks/s{}",
            bare.per_second,
            cpu_text(&bare)
        );
        println!(
            "  switchboard (adapter, engine, fsync): {:>7.0} webhooks/s{}",
            real.per_second,
            cpu_text(&real)
        );
        let ratio = real.per_second / bare.per_second;
        println!("  ratio: {ratio:.3}");
        ratios.push(ratio);
        if let (Some(b), Some(r)) = (bare.cpu_us, real.cpu_us) {
            // On a busy machine the rates follow the other work; the CPU
            // each webhook costs much less so.
            println!(
                "  CPU ratio (bare CPU per webhook / switchboard's): {:.3}",
                b / r
            );
            cpu_ratios.push(b / r);
        }
    }
    println!(
        "ratio: {:.3} (median of {} rounds)",
        median(&mut ratios),
        ratios.len()
    );
    if !cpu_ratios.is_empty() {
        println!(
            "CPU ratio: {:.3} (median of {} rounds)",
            median(&mut cpu_ratios),
            cpu_ratios.len()
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
