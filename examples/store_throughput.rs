//! Journal throughput of the two stores, side by side on this machine:
//! `--callers` concurrent callers spread over `--tenants` tenants each
//! append one-event batches and wait for the commit before the next (as a
//! webhook is answered only once its message is committed), until
//! `--events` are acknowledged. Prints acknowledged events per second for
//! SQLite (fsync per commit, the default) and for PostgreSQL (a database
//! of its own, created on the server and dropped after).
//!
//! ```sh
//! cargo run --release --example store_throughput
//! cargo run --release --example store_throughput -- --events 50000 --callers 128 \
//!     --database-url postgres://postgres@127.0.0.1:5432/postgres
//! ```
//!
//! Without `--database-url`, `SWITCHBOARD_TEST_DATABASE_URL` or else the
//! local server is used; PostgreSQL is skipped when none answers.

use anyhow::{Context, Result};
use clap::Parser;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;
use switchboard::store::{PgStore, Row, SqliteStore, Store, SyncMode};

#[derive(Parser, Debug)]
#[command(about = "Acknowledged journal appends per second: SQLite and PostgreSQL")]
struct Args {
    /// Events appended (and acknowledged) per store.
    #[arg(long, default_value_t = 20_000)]
    events: u64,
    /// Tenants the callers are spread over.
    #[arg(long, default_value_t = 8)]
    tenants: u64,
    /// Concurrent callers, each waiting for its commit before the next.
    #[arg(long, default_value_t = 64)]
    callers: u64,
    /// The PostgreSQL server (any database on it: a new one is made).
    #[arg(long)]
    database_url: Option<String>,
}

/// A customer message as the journal holds one (its size, roughly).
const BODY: &str = r#"{"type":"customer_message","conversation":1,"at":1000,"customer":"visitor-1","channel":"webchat","text":"Hello, I would like to know where my order is, it was due yesterday","external_id":"m-1"}"#;

/// Append `args.events` one-event batches from `args.callers` threads;
/// acknowledged events per second.
fn measure(store: Arc<dyn Store>, args: &Args) -> Result<f64> {
    let seqs: Arc<Vec<AtomicU64>> =
        Arc::new((0..args.tenants).map(|_| AtomicU64::new(0)).collect());
    let left = Arc::new(AtomicU64::new(args.events));
    let started = Instant::now();
    let callers: Vec<_> = (0..args.callers)
        .map(|i| {
            let (store, seqs, left) = (store.clone(), seqs.clone(), left.clone());
            let t = i % args.tenants;
            std::thread::spawn(move || -> Result<()> {
                let tenant = format!("tenant-{t}");
                while left
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                    .is_ok()
                {
                    let seq = seqs[t as usize].fetch_add(1, Ordering::SeqCst) + 1;
                    let row = Row {
                        seq,
                        kind: "customer_message",
                        conversation: Some(seq),
                        body: BODY.to_string(),
                    };
                    store
                        .append(&tenant, 0, vec![row], Box::new(|| {}))
                        .blocking_recv()
                        .context("the store stopped")??;
                }
                Ok(())
            })
        })
        .collect();
    for c in callers {
        c.join()
            .map_err(|_| anyhow::anyhow!("a caller panicked"))??;
    }
    Ok(args.events as f64 / started.elapsed().as_secs_f64())
}

/// A database of its own on the server at `url`, dropped after `f`.
fn with_database<T>(url: &str, f: impl FnOnce(&str) -> Result<T>) -> Result<Option<T>> {
    let name = format!("sb_throughput_{}", std::process::id());
    let admin = url.to_string();
    let create = format!("CREATE DATABASE \"{name}\"");
    // The synchronous client runs a runtime of its own: a thread of its own.
    let made = std::thread::spawn(move || -> Result<()> {
        let mut c = postgres::Client::connect(&admin, postgres::NoTls)?;
        c.batch_execute(&create)?;
        Ok(())
    })
    .join()
    .map_err(|_| anyhow::anyhow!("the client panicked"))?;
    if let Err(e) = made {
        eprintln!("PostgreSQL at {url} not usable ({e:#}): skipped");
        return Ok(None);
    }
    let db_url = database_url(url, &name);
    let result = f(&db_url);
    let (admin, drop) = (
        url.to_string(),
        format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"),
    );
    let _ = std::thread::spawn(move || -> Result<()> {
        let mut c = postgres::Client::connect(&admin, postgres::NoTls)?;
        c.batch_execute(&drop)?;
        Ok(())
    })
    .join();
    result.map(Some)
}

/// `url` with its database replaced by `name`.
fn database_url(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (url, String::new()),
    };
    let Some(scheme_end) = base.find("://") else {
        return format!("{url} dbname={name}"); // key=value form
    };
    let authority_end = base[scheme_end + 3..]
        .find('/')
        .map_or(base.len(), |i| scheme_end + 3 + i);
    format!("{}/{name}{query}", &base[..authority_end])
}

fn main() -> Result<()> {
    let args = Args::parse();
    println!(
        "{} one-event appends, {} callers over {} tenants, each waiting for its commit",
        args.events, args.callers, args.tenants
    );

    let dir = std::env::temp_dir().join(format!("switchboard-throughput-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let sqlite: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir, SyncMode::Full)?);
    let rate = measure(sqlite, &args)?;
    let _ = std::fs::remove_dir_all(&dir);
    println!("sqlite (fsync per commit): {rate:>10.0} events/s");

    let url = args
        .database_url
        .clone()
        .or_else(|| std::env::var("SWITCHBOARD_TEST_DATABASE_URL").ok())
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let pg = with_database(&url, |db| {
        let store: Arc<dyn Store> = Arc::new(PgStore::open(db)?);
        measure(store, &args)
    })?;
    if let Some(rate) = pg {
        println!("postgres:                  {rate:>10.0} events/s");
    }
    Ok(())
}
