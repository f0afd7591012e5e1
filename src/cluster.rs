//! Nodes of a cluster sharing one PostgreSQL store: which node serves
//! which tenant, and the loop that keeps it so.
//!
//! The unit of ownership is the tenant: its engine lives on exactly one
//! node at a time, under a lease kept in the database
//! ([`ClusterStore`]), and every journal append carries the epoch that
//! the lease's acquisition moved on (Temporal's shards and range ids). No
//! consensus of our own: the database is the one source of truth.
//!
//! Each node runs [`run`]: every `min(lease_ms / 4, 250 ms)` it
//! heartbeats, reads the live nodes and the leases, places every tenant by
//! rendezvous hashing over the live nodes (the highest
//! `hash(tenant, node)` wins, so a joining or leaving node moves only its
//! own share), renews the leases it holds, takes the tenants placed on it
//! (acquire, then recover from snapshot + journal under the new epoch)
//! and hands over the tenants placed elsewhere (stop writing, let the
//! commits in flight finish, release).
//!
//! **Invariant (self-fencing):** a node writes a tenant only until the
//! start of its last successful renewal + `lease_ms` (by its own monotonic
//! clock), which is never later than the lease's end in the database; so
//! it has stopped writing before any other node may acquire the tenant
//! (`tests/cluster.rs`, `a_stopped_owner_is_fenced_and_commits_nothing`).
//! **Invariant (fencing):** once another node acquired the tenant, any
//! append under the old epoch is refused by the database in the same
//! transaction; the node that sees it drops the tenant
//! (`tenant::Lease`, `store/mod.rs`).
//! **Invariant:** a request for a tenant that is moving gets 503 with
//! `Retry-After`, never a silent loss (`AppError::Moving`).

use crate::auth::Sessions;
use crate::clock::{rfc3339, Clock};
use crate::config::TenantConfig;
use crate::error::StartError;
use crate::http::Shared;
use crate::metrics::Metrics;
use crate::store::{ClusterStore, LeaseRow, NodeRow, Store, StoreError};
use crate::tenant::Tenant;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use switchboard_core::model::Millis;

/// Where a tenant is served, as this node knows it.
#[derive(Debug, Clone)]
pub enum Slot {
    /// Here.
    Served(Arc<Tenant>),
    /// By another node, reachable at `url`.
    Elsewhere { node: String, url: String },
    /// Nowhere right now: being taken over or handed over.
    Moving,
}

/// What a request for a tenant should do.
#[derive(Debug, Clone)]
pub enum Route {
    Here(Arc<Tenant>),
    Forward {
        node: String,
        url: String,
    },
    Moving,
    /// No such tenant in the configuration.
    Unknown,
}

/// Every configured tenant and where it is served: the one place handlers
/// find a tenant (`AppState::tenant`).
#[derive(Debug)]
pub struct Registry {
    /// Tenant ids in configuration order.
    ids: Vec<String>,
    configs: HashMap<String, TenantConfig>,
    slots: RwLock<HashMap<String, Slot>>,
}

fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    // Every critical section is one insert or one read: a poisoned lock
    // holds no half-made change.
    l.read().unwrap_or_else(|p| p.into_inner())
}

fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|p| p.into_inner())
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Registry {
    /// Every tenant of the configuration, none served yet.
    pub fn new(configs: &[TenantConfig]) -> Registry {
        Registry {
            ids: configs.iter().map(|t| t.id.clone()).collect(),
            configs: configs.iter().map(|t| (t.id.clone(), t.clone())).collect(),
            slots: RwLock::new(
                configs
                    .iter()
                    .map(|t| (t.id.clone(), Slot::Moving))
                    .collect(),
            ),
        }
    }

    /// The tenant if this node serves it.
    pub fn get(&self, id: &str) -> Option<Arc<Tenant>> {
        match read(&self.slots).get(id) {
            Some(Slot::Served(t)) => Some(t.clone()),
            _ => None,
        }
    }

    /// The tenants served here, in configuration order.
    pub fn values(&self) -> std::vec::IntoIter<Arc<Tenant>> {
        let slots = read(&self.slots);
        let served: Vec<Arc<Tenant>> = self
            .ids
            .iter()
            .filter_map(|id| match slots.get(id) {
                Some(Slot::Served(t)) => Some(t.clone()),
                _ => None,
            })
            .collect();
        served.into_iter()
    }

    pub fn locate(&self, id: &str) -> Route {
        match read(&self.slots).get(id) {
            None => Route::Unknown,
            Some(Slot::Served(t)) => Route::Here(t.clone()),
            Some(Slot::Elsewhere { node, url }) => Route::Forward {
                node: node.clone(),
                url: url.clone(),
            },
            Some(Slot::Moving) => Route::Moving,
        }
    }

    pub fn set(&self, id: &str, slot: Slot) {
        write(&self.slots).insert(id.to_string(), slot);
    }

    /// Every configured tenant id, in configuration order.
    pub fn ids(&self) -> &[String] {
        &self.ids
    }

    /// A tenant's configuration (every node reads the same file).
    pub fn config(&self, id: &str) -> Option<&TenantConfig> {
        self.configs.get(id)
    }
}

/// This node, as the cluster knows it.
#[derive(Debug)]
pub struct Node {
    pub id: String,
    pub url: String,
    pub lease_ms: u64,
    /// The shared store's membership and leases; `None` for a server alone.
    pub cluster: Option<Arc<dyn ClusterStore>>,
    pub away_grace_ms: Millis,
    /// When this process started serving (ms since the Unix epoch).
    pub started_at: Millis,
    ready: AtomicBool,
    draining: AtomicBool,
    /// Tenants this node holds a lease on, with their epoch.
    held: Mutex<BTreeMap<String, u64>>,
    /// One step of the loop, or the drain, at a time.
    step: tokio::sync::Mutex<()>,
}

impl Node {
    pub fn new(
        id: String,
        url: String,
        lease_ms: u64,
        cluster: Option<Arc<dyn ClusterStore>>,
        away_grace_ms: Millis,
        started_at: Millis,
    ) -> Node {
        Node {
            ready: AtomicBool::new(cluster.is_none()),
            id,
            url,
            lease_ms,
            cluster,
            away_grace_ms,
            started_at,
            draining: AtomicBool::new(false),
            held: Mutex::new(BTreeMap::new()),
            step: tokio::sync::Mutex::new(()),
        }
    }

    /// A member that has recovered every tenant placed on it (one node
    /// alone: once built).
    pub fn ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst) && !self.draining.load(Ordering::SeqCst)
    }

    fn lease(&self) -> Duration {
        Duration::from_millis(self.lease_ms)
    }

    /// How long one database call of the loop may take before it counts
    /// as failed.
    fn call_patience(&self) -> Duration {
        Duration::from_millis((self.lease_ms / 2).max(100))
    }

    fn held(&self) -> BTreeMap<String, u64> {
        lock(&self.held).clone()
    }
}

/// The node that a tenant is placed on among `live` nodes: the highest
/// `hash(tenant, node)` (rendezvous hashing), ties broken by node id.
pub fn place<'a>(tenant: &str, live: &'a [NodeRow]) -> Option<&'a NodeRow> {
    live.iter().max_by(|a, b| {
        score(tenant, &a.id)
            .cmp(&score(tenant, &b.id))
            .then_with(|| a.id.cmp(&b.id))
    })
}

fn score(tenant: &str, node: &str) -> u64 {
    let mut h = Sha256::new();
    h.update(tenant.as_bytes());
    h.update([0u8]);
    h.update(node.as_bytes());
    let d = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&d[..8]);
    u64::from_be_bytes(first)
}

/// Run a blocking store call off the async workers, failing it when it
/// takes longer than `patience`.
async fn blocking<T: Send + 'static>(
    patience: Duration,
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    match tokio::time::timeout(patience, tokio::task::spawn_blocking(f)).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => Err(StoreError::Failed(format!("store call failed: {e}"))),
        Err(_) => Err(StoreError::Failed("store call timed out".into())),
    }
}

/// Serve every tenant here (one node alone): recover each at its epoch,
/// attach sessions, start timers and outbox.
pub fn serve_all_here(
    registry: &Registry,
    store: &Arc<dyn Store>,
    sessions: &Arc<Sessions>,
    clock: &Arc<Clock>,
    metrics: &Arc<Metrics>,
    away_grace_ms: Millis,
) -> Result<(), StartError> {
    for id in registry.ids() {
        let Some(cfg) = registry.config(id) else {
            continue;
        };
        let recovered = store.recover(id).map_err(|cause| StartError::Recover {
            tenant: id.to_string(),
            cause,
        })?;
        // One node owns every tenant: it writes under the tenant's
        // current epoch.
        let epoch = store.epoch(id).map_err(|cause| StartError::Epoch {
            tenant: id.to_string(),
            cause,
        })?;
        let tenant = Arc::new(Tenant::new(
            cfg.clone(),
            clock.clone(),
            store.clone(),
            epoch,
            recovered,
            metrics.clone(),
        )?);
        tenant.attach_sessions(sessions.clone(), away_grace_ms);
        tenant.start_tasks();
        registry.set(id, Slot::Served(tenant));
    }
    Ok(())
}

/// Keep this node's part of the cluster until it drains.
pub async fn run(state: Shared) {
    let node = &state.node;
    let Some(cluster) = node.cluster.clone() else {
        return;
    };
    let period = Duration::from_millis((node.lease_ms / 4).clamp(20, 250));
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tracing::info!(node = %node.id, url = %node.url, lease_ms = node.lease_ms, "joining the cluster");
    loop {
        tick.tick().await;
        let _one = node.step.lock().await;
        if node.draining.load(Ordering::SeqCst) {
            return;
        }
        if let Err(e) = step(&state, &cluster).await {
            tracing::warn!(node = %node.id, error = %e, "cluster step failed");
        }
    }
}

/// One round: fence what ran out, heartbeat, renew, place, take, hand over.
async fn step(state: &Shared, cluster: &Arc<dyn ClusterStore>) -> Result<(), StoreError> {
    let node = &state.node;
    let patience = node.call_patience();
    // Leases that ran out (a renewal too late) or that the journal found
    // stale: stop serving at once.
    for (id, epoch) in node.held() {
        let lost = state
            .tenants
            .get(&id)
            .is_none_or(|t| !t.lease.valid() || t.lease.is_stale());
        if lost {
            tracing::warn!(node = %node.id, tenant = %id, epoch, "lease lost: the tenant is fenced here");
            count_lost(state, &id);
            drop_tenant(state, &id, None).await;
        }
    }
    let (me, url, lease_ms) = (node.id.clone(), node.url.clone(), node.lease_ms);
    let c = cluster.clone();
    let (live, leases) = blocking(patience, move || {
        c.heartbeat(&me, &url)?;
        Ok((c.live_nodes(lease_ms)?, c.leases()?))
    })
    .await
    .inspect_err(|_| node.ready.store(false, Ordering::SeqCst))?;
    renew_all(state, cluster).await;
    let member = live.iter().any(|n| n.id == node.id);
    let leases: HashMap<&str, &LeaseRow> = leases.iter().map(|l| (l.tenant.as_str(), l)).collect();
    let mut complete = member;
    for id in state.tenants.ids() {
        let placed = place(id, &live).map(|n| n.id.as_str());
        let held = node.held().contains_key(id);
        if member && placed == Some(node.id.as_str()) {
            if !held {
                match take_tenant(state, cluster, id).await {
                    // A recovery takes a while: keep the other leases
                    // fresh before taking the next tenant.
                    Ok(true) => renew_all(state, cluster).await,
                    Ok(false) => complete = false,
                    Err(e) => {
                        complete = false;
                        tracing::warn!(node = %node.id, tenant = %id, error = %e, "could not take the tenant");
                    }
                }
            }
        } else if held {
            // Placed on another node (one joined): hand it over.
            if let Some(epoch) = node.held().get(id).copied() {
                tracing::info!(node = %node.id, tenant = %id, to = placed.unwrap_or("-"), "handing the tenant over");
                drop_tenant(state, id, Some((cluster, epoch))).await;
            }
        }
        if !node.held().contains_key(id) {
            let owner = leases
                .get(id.as_str())
                .and_then(|l| l.owner.as_deref())
                .filter(|o| *o != node.id)
                .and_then(|o| live.iter().find(|n| n.id == o));
            state.tenants.set(
                id,
                match owner {
                    Some(n) => Slot::Elsewhere {
                        node: n.id.clone(),
                        url: n.url.clone(),
                    },
                    None => Slot::Moving,
                },
            );
        }
    }
    node.ready.store(complete, Ordering::SeqCst);
    Ok(())
}

fn count_lost(state: &Shared, id: &str) {
    state
        .metrics
        .leases_lost
        .get_or_create(&crate::metrics::tenant_labels(id))
        .inc();
}

/// Renew every lease this node holds; a refusal means another node has
/// the tenant now: it is dropped here.
async fn renew_all(state: &Shared, cluster: &Arc<dyn ClusterStore>) {
    let node = &state.node;
    let (patience, lease_ms) = (node.call_patience(), node.lease_ms);
    for (id, epoch) in node.held() {
        let started = Instant::now();
        let (c, me, t) = (cluster.clone(), node.id.clone(), id.clone());
        match blocking(patience, move || c.renew(&t, &me, epoch, lease_ms)).await {
            Ok(true) => {
                if let Some(t) = state.tenants.get(&id) {
                    t.lease.hold_until(started + node.lease());
                }
            }
            Ok(false) => {
                tracing::warn!(node = %node.id, tenant = %id, epoch, "lease taken over: the tenant is fenced here");
                count_lost(state, &id);
                drop_tenant(state, &id, None).await;
            }
            Err(e) => {
                // The local deadline fences the tenant if this goes on.
                tracing::warn!(node = %node.id, tenant = %id, error = %e, "lease not renewed");
            }
        }
    }
}

/// Acquire the tenant, then recover it under the new epoch and serve it.
/// `Ok(false)` when another node still holds it.
async fn take_tenant(
    state: &Shared,
    cluster: &Arc<dyn ClusterStore>,
    id: &str,
) -> Result<bool, StoreError> {
    let node = &state.node;
    let Some(cfg) = state.tenants.config(id).cloned() else {
        return Ok(false);
    };
    let started = Instant::now();
    let (c, me, t, lease_ms) = (
        cluster.clone(),
        node.id.clone(),
        id.to_string(),
        node.lease_ms,
    );
    let Some(epoch) = blocking(node.call_patience(), move || c.acquire(&t, &me, lease_ms)).await?
    else {
        return Ok(false);
    };
    let (store, clock, metrics, t) = (
        state.store.clone(),
        state.clock.clone(),
        state.metrics.clone(),
        id.to_string(),
    );
    // Recovery reads the journal and loads the scripts: off the workers,
    // with no deadline of the loop's (a long journal takes what it takes;
    // the lease is renewed right after if needed).
    let built = tokio::task::spawn_blocking(move || -> Result<Tenant, StoreError> {
        let recovered = store.recover(&t)?;
        Tenant::new(cfg, clock, store, epoch, recovered, metrics).map_err(StoreError::failed)
    })
    .await
    .map_err(StoreError::failed)
    .and_then(|r| r);
    let tenant = match built {
        Ok(t) => Arc::new(t),
        Err(e) => {
            let (c, me, t) = (cluster.clone(), node.id.clone(), id.to_string());
            let _ = blocking(node.call_patience(), move || c.release(&t, &me, epoch)).await;
            return Err(e);
        }
    };
    tenant.lease.hold_until(started + node.lease());
    let (sessions, t, now) = (state.sessions.clone(), id.to_string(), state.clock.now());
    if let Err(e) = blocking(node.call_patience(), move || sessions.load_tenant(&t, now)).await {
        tracing::warn!(tenant = %id, error = %e, "sessions not loaded");
    }
    tenant.attach_sessions(state.sessions.clone(), node.away_grace_ms);
    tenant.start_tasks();
    lock(&node.held).insert(id.to_string(), epoch);
    state.tenants.set(id, Slot::Served(tenant.clone()));
    state
        .metrics
        .takeovers
        .get_or_create(&crate::metrics::tenant_labels(id))
        .inc();
    tracing::info!(node = %node.id, tenant = %id, epoch, took_ms = started.elapsed().as_millis() as u64, "tenant taken over and recovered");
    Ok(true)
}

/// Stop serving `id` here: no more writes, commits in flight settled,
/// timers and outbox stopped, sockets closed, sessions forgotten; with
/// `release`, the lease given up so the new owner takes it at once.
async fn drop_tenant(state: &Shared, id: &str, release: Option<(&Arc<dyn ClusterStore>, u64)>) {
    let node = &state.node;
    let tenant = state.tenants.get(id);
    state.tenants.set(id, Slot::Moving);
    if let Some(t) = tenant {
        if !t.stop(node.call_patience()).await {
            tracing::warn!(tenant = %id, "commits still in flight at hand-over (the epoch fences them)");
        }
    }
    state.sessions.forget_tenant(id);
    lock(&node.held).remove(id);
    if let Some((cluster, epoch)) = release {
        let (c, me, t) = (cluster.clone(), node.id.clone(), id.to_string());
        if let Err(e) = blocking(node.call_patience(), move || c.release(&t, &me, epoch)).await {
            tracing::warn!(tenant = %id, error = %e, "lease not released (it runs out by itself)");
        }
    }
}

/// Leave the cluster (SIGTERM): stop serving every tenant, let the commits
/// in flight finish, then leave, which releases every lease at once so
/// the other nodes take the tenants without waiting for them to run out.
pub async fn drain(state: &Shared) {
    let node = &state.node;
    node.draining.store(true, Ordering::SeqCst);
    let _one = node.step.lock().await;
    let held = node.held();
    tracing::info!(node = %node.id, tenants = held.len(), "draining");
    let stops = held.keys().map(|id| drop_tenant(state, id, None));
    futures_util::future::join_all(stops).await;
    if let Some(cluster) = &node.cluster {
        let (c, me) = (cluster.clone(), node.id.clone());
        match blocking(node.call_patience() * 4, move || c.leave(&me)).await {
            Ok(()) => tracing::info!(node = %node.id, "left the cluster"),
            Err(e) => {
                tracing::warn!(node = %node.id, error = %e, "could not leave: the leases run out by themselves")
            }
        }
    } else {
        for t in state.tenants.values() {
            t.stop(Duration::from_secs(5)).await;
        }
    }
}

/// `GET /admin/cluster`: the nodes and who owns each tenant.
pub async fn view(state: &Shared) -> Result<Value, StoreError> {
    let node = &state.node;
    let Some(cluster) = node.cluster.clone() else {
        let tenants: Vec<Arc<Tenant>> = state.tenants.values().collect();
        return Ok(json!({
            "nodes": [{
                "id": node.id,
                "url": node.url,
                "heartbeat_at": rfc3339(state.clock.now()),
                "tenants": tenants.iter().map(|t| t.id()).collect::<Vec<_>>(),
                "ready": node.ready(),
            }],
            "tenants": tenants.iter().map(|t| json!({
                "id": t.id(),
                "owner": node.id,
                "epoch": t.epoch(),
                "since": rfc3339(node.started_at),
            })).collect::<Vec<_>>(),
        }));
    };
    let lease_ms = node.lease_ms;
    let (live, leases) = blocking(node.call_patience() * 4, move || {
        Ok((cluster.live_nodes(lease_ms)?, cluster.leases()?))
    })
    .await?;
    let live_owner = |l: &LeaseRow| l.owner.clone().filter(|o| live.iter().any(|n| &n.id == o));
    let nodes: Vec<Value> = live
        .iter()
        .map(|n| {
            let tenants: Vec<&str> = leases
                .iter()
                .filter(|l| live_owner(l).as_deref() == Some(n.id.as_str()))
                .map(|l| l.tenant.as_str())
                .collect();
            json!({"id": n.id, "url": n.url, "heartbeat_at": rfc3339(n.heartbeat_at), "tenants": tenants})
        })
        .collect();
    let tenants: Vec<Value> = state
        .tenants
        .ids()
        .iter()
        .map(|id| match leases.iter().find(|l| &l.tenant == id) {
            Some(l) => {
                json!({"id": id, "owner": live_owner(l), "epoch": l.epoch, "since": rfc3339(l.since)})
            }
            None => json!({"id": id, "owner": Value::Null, "epoch": 0, "since": Value::Null}),
        })
        .collect();
    Ok(json!({ "nodes": nodes, "tenants": tenants }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes(ids: &[&str]) -> Vec<NodeRow> {
        ids.iter()
            .map(|id| NodeRow {
                id: id.to_string(),
                url: format!("http://{id}"),
                heartbeat_at: 0,
            })
            .collect()
    }

    #[test]
    fn only_a_joining_nodes_share_moves() {
        let tenants: Vec<String> = (0..200).map(|i| format!("t{i}")).collect();
        let three = nodes(&["a", "b", "c"]);
        let four = nodes(&["a", "b", "c", "d"]);
        let mut moved = 0;
        for t in &tenants {
            let before = place(t, &three).map(|n| n.id.clone());
            let after = place(t, &four).map(|n| n.id.clone());
            if before != after {
                assert_eq!(
                    after.as_deref(),
                    Some("d"),
                    "a tenant moved between old nodes"
                );
                moved += 1;
            }
        }
        assert!(moved > 20 && moved < 90, "about a quarter moves: {moved}");
        assert!(place("t", &[]).is_none());
    }
}
