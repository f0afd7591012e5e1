//! Assembling a running server from a configuration: the store, recovery
//! of every tenant, password hashes, sessions, timers; then serving.

use crate::auth::Sessions;
use crate::clock::Clock;
use crate::config::Config;
use crate::http::{self, AppState};
use crate::metrics::Metrics;
use crate::passwords::Passwords;
use crate::store::{SqliteStore, Store};
use crate::tenant::{self, Tenant};
use anyhow::{Context, Result};
use axum::serve::ListenerExt;
use std::collections::HashMap;
use std::sync::Arc;

/// Build the shared state: open the store, recover each tenant from its
/// journal, load live sessions, read credentials, start timers.
/// Must run inside a tokio runtime.
pub fn build(cfg: &Config, admin_token: String) -> Result<Arc<AppState>> {
    let clock = Arc::new(Clock::default());
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&cfg.data_dir, cfg.journal_sync)?);
    let metrics = Arc::new(Metrics::default());
    let mut tenants = HashMap::new();
    let sessions = Arc::new(Sessions::load(
        store.clone(),
        cfg.session_ttl_secs * 1000,
        clock.now(),
    )?);
    for t in &cfg.tenants {
        let recovered = store
            .recover(&t.id)
            .with_context(|| format!("recovering tenant {}", t.id))?;
        // One node owns every tenant: it writes under the tenant's
        // current epoch.
        let epoch = store
            .epoch(&t.id)
            .with_context(|| format!("reading the epoch of tenant {}", t.id))?;
        let tenant = Arc::new(Tenant::new(
            t.clone(),
            clock.clone(),
            store.clone(),
            epoch,
            recovered,
            metrics.clone(),
        )?);
        for p in t
            .plugins
            .iter()
            .filter(|p| p.channel.is_some() && p.signature.is_none())
        {
            tracing::warn!(
                tenant = %t.id,
                channel = p.channel.as_deref().unwrap_or_default(),
                "this channel accepts unsigned webhooks: configure `signature` for it"
            );
        }
        tenant.attach_sessions(sessions.clone(), cfg.away_grace_secs.saturating_mul(1000));
        tokio::spawn(tenant::run_timers(tenant.clone()));
        tokio::spawn(crate::channels::run_outbox(tenant.clone()));
        tenants.insert(t.id.clone(), tenant);
    }
    let visitors = crate::visitors::VisitorTokens::load(&*store)?;
    // Cheap: plain passwords are keyed hashes, argon2 hashes are only parsed.
    let passwords = Passwords::from_config(cfg);
    Ok(Arc::new(AppState {
        tenants,
        sessions,
        visitors,
        passwords,
        admin_token,
        clock,
        test_clock: cfg.test_clock,
        store,
        profiles: Arc::new(crate::profiles::Profiles::new(metrics.clone())),
        metrics,
    }))
}

/// Serve until Ctrl-C, printing where to go and how to log in.
pub async fn run(cfg: Config, demo: bool) -> Result<()> {
    let (admin_token, generated) = match cfg.admin_token.clone().filter(|t| !t.is_empty()) {
        Some(t) => (t, false),
        None => {
            use rand::RngCore;
            let mut raw = [0u8; 24];
            rand::rng().fill_bytes(&mut raw);
            (hex::encode(raw), true)
        }
    };
    let state = build(&cfg, admin_token.clone())?;
    let listener = tokio::net::TcpListener::bind(&cfg.listen)
        .await
        .with_context(|| format!("listening on {}", cfg.listen))?;
    let addr = listener.local_addr()?;
    // Events are small frames written one by one: without TCP_NODELAY,
    // Nagle's algorithm and the peer's delayed ACK hold some of them ~40 ms.
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY");
        }
    });
    println!("Switchboard is listening on http://{addr}");
    println!("Agent desktop: http://{addr}/");
    for t in &cfg.tenants {
        if t.webchat.is_some() {
            println!("Customer web chat ({}): http://{addr}/chat/{}", t.id, t.id);
        }
        for a in &t.agents {
            match (&a.password, demo) {
                (Some(p), true) => {
                    println!("  login: tenant {} / agent {} / password {p}", t.id, a.id)
                }
                _ => println!("  agent: tenant {} / agent {}", t.id, a.id),
            }
        }
    }
    if generated {
        println!("Admin token (set SWITCHBOARD_ADMIN_TOKEN to choose it): {admin_token}");
    }
    tracing::info!(%addr, tenants = cfg.tenants.len(), data_dir = %cfg.data_dir.display(), "serving");
    axum::serve(
        listener,
        http::app(state).into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await
    .context("serving HTTP")
}
