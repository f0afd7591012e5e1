//! Assembling a running server from a configuration: the store, recovery
//! of every tenant, password hashes, sessions, timers; then serving.

use crate::auth::Sessions;
use crate::clock::Clock;
use crate::cluster::{serve_all_here, Node, Registry};
use crate::config::Config;
use crate::error::StartError;
use crate::http::{self, AppState};
use crate::metrics::Metrics;
use crate::passwords::Passwords;
use crate::store::{ClusterStore, PgStore, SqliteStore, Store};
use axum::serve::ListenerExt;
use std::sync::Arc;

type Result<T, E = StartError> = std::result::Result<T, E>;

/// Build the shared state of a server alone (SQLite; `database_url`
/// is ignored): open the store, recover each tenant from its journal,
/// load live sessions, read credentials, start timers.
/// Must run inside a tokio runtime.
pub fn build(cfg: &Config, admin_token: String) -> Result<Arc<AppState>> {
    let store: Arc<dyn Store> = Arc::new(
        SqliteStore::open(&cfg.data_dir, cfg.journal_sync).map_err(StartError::OpenStore)?,
    );
    let bound = cfg
        .listen
        .parse()
        .unwrap_or_else(|_| std::net::SocketAddr::from(([127, 0, 0, 1], 0)));
    assemble(cfg, admin_token, store, None, bound)
}

/// Open the store the configuration names: SQLite alone, or PostgreSQL as
/// a node of the cluster of every server using that database.
/// The store, and its cluster side when it is shared.
type Opened = (Arc<dyn Store>, Option<Arc<dyn ClusterStore>>);

fn open_store(cfg: &Config) -> Result<Opened> {
    match &cfg.database_url {
        None => Ok((
            Arc::new(
                SqliteStore::open(&cfg.data_dir, cfg.journal_sync)
                    .map_err(StartError::OpenStore)?,
            ),
            None,
        )),
        Some(url) => {
            let pg = Arc::new(PgStore::open(url).map_err(StartError::OpenPostgres)?);
            Ok((pg.clone(), Some(pg)))
        }
    }
}

/// The shared state over an open store. Alone, every tenant is recovered
/// and served at once; in a cluster, none yet: `cluster::run` takes this
/// node's share.
fn assemble(
    cfg: &Config,
    admin_token: String,
    store: Arc<dyn Store>,
    cluster: Option<Arc<dyn ClusterStore>>,
    bound: std::net::SocketAddr,
) -> Result<Arc<AppState>> {
    let clock = Arc::new(Clock::default());
    let metrics = Arc::new(Metrics::default());
    let sessions = Arc::new(
        Sessions::load(store.clone(), cfg.session_ttl_secs * 1000, clock.now())
            .map_err(StartError::Sessions)?,
    );
    let away_grace_ms = cfg.away_grace_secs.saturating_mul(1000);
    let tenants = Registry::new(&cfg.tenants);
    for t in &cfg.tenants {
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
    }
    if cluster.is_none() {
        serve_all_here(&tenants, &store, &sessions, &clock, &metrics, away_grace_ms)?;
    }
    let node = Arc::new(Node::new(
        cfg.node_id_for(bound),
        cfg.advertise_url_for(bound),
        cfg.lease_ms,
        cluster,
        away_grace_ms,
        clock.now(),
    ));
    let visitors = crate::visitors::VisitorTokens::load(&*store).map_err(StartError::Secret)?;
    // Cheap: plain passwords are keyed hashes, argon2 hashes are only parsed.
    let passwords = Passwords::from_config(cfg);
    let forwarder = reqwest::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(2))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(StartError::Forwarder)?;
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
        sender_actions: Arc::new(crate::sender_actions::SenderActions::new(metrics.clone())),
        metrics,
        node,
        forwarder,
    }))
}

/// Resolves on SIGTERM or Ctrl-C.
async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
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
    let listen = |cause| StartError::Listen {
        address: cfg.listen.clone(),
        cause,
    };
    let listener = tokio::net::TcpListener::bind(&cfg.listen)
        .await
        .map_err(listen)?;
    let addr = listener.local_addr().map_err(listen)?;
    let open_cfg = cfg.clone();
    let (store, cluster) = tokio::task::spawn_blocking(move || open_store(&open_cfg))
        .await
        .map_err(StartError::Opener)??;
    let state = assemble(&cfg, admin_token.clone(), store, cluster, addr)?;
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
    if state.node.cluster.is_some() {
        println!(
            "Cluster node {} (reachable at {}), lease {} ms",
            state.node.id, state.node.url, state.node.lease_ms
        );
        tokio::spawn(crate::cluster::run(state.clone()));
    }
    tracing::info!(%addr, tenants = cfg.tenants.len(), node = %state.node.id, clustered = cfg.clustered(), "serving");
    // On SIGTERM or Ctrl-C: drain (hand the tenants over, commits in
    // flight finished), then stop taking connections; sockets still open
    // a moment later (agents' and visitors', piped ones) are cut.
    let drained = Arc::new(tokio::sync::Notify::new());
    let serving = axum::serve(
        listener,
        http::app(state.clone()).into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown({
        let drained = drained.clone();
        async move {
            stop_signal().await;
            tracing::info!("stopping: draining first");
            crate::cluster::drain(&state).await;
            drained.notify_one();
        }
    });
    let cut = async {
        drained.notified().await;
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    };
    tokio::select! {
        served = serving => served.map_err(StartError::Serve),
        _ = cut => {
            tracing::info!("stopped with sockets still open");
            Ok(())
        }
    }
}
