//! What the server keeps durably, behind one trait: [`Store`]. The
//! journal (every event of every tenant, appended in order under a tenant
//! epoch, committed before anyone is told), snapshots for fast start-up,
//! agent sessions and server secrets. [`SqliteStore`] keeps them for one
//! node; [`PgStore`] (PostgreSQL) for the nodes of a cluster, which also
//! share membership and tenant leases through it ([`ClusterStore`]). Both
//! pass the same suite (`tests/store_contract.rs`).
//!
//! Deduplication of channel message ids and admin settings need nothing of
//! their own here: both are events of the journal (`external_id` on a
//! customer message, `settings_changed`), replayed like the rest.
//!
//! **Invariant:** a caller is answered (a webhook acknowledged, an agent's
//! action confirmed) only after its events are committed; `after_commit`
//! runs only after the commit too, in journal order.
//! **Invariant:** after a failed commit, nothing more of that tenant is
//! committed until it resynchronizes ([`Store::resync`]): the tenant
//! rebuilds its engine from what the journal holds, so memory is never
//! ahead of the journal and no later event builds on a lost one.
//! **Invariant (fencing):** an append or snapshot carries the epoch under
//! which its writer owns the tenant; one under any other epoch is refused
//! and nothing of it is stored. Single-node stores keep every tenant at
//! epoch 0 until [`Store::advance_epoch`] (a take-over) moves it on.
//! **Invariant (outbox):** the replies an append decided are stored in the
//! same transaction as its events ([`Store::append_with_outbox`]); they
//! stay pending until marked sent under the tenant's epoch, so a new owner
//! (or the restarted node) sends what the last one did not.
//! **Boundary:** the store knows events as JSON; it does not interpret them
//! (recovery deserializes them into core's `Event`).

mod postgres;
mod sqlite;

pub use self::postgres::{PgStore, SCHEMA_VERSION as PG_SCHEMA_VERSION};
pub use sqlite::SqliteStore;

use std::ops::ControlFlow;
use switchboard_core::engine::Snapshot;
use switchboard_core::model::Millis;
use switchboard_core::Event;

/// Encode `snapshot` (CBOR) on a thread of its own, so neither the caller
/// (holding the engine lock) nor the store's writer waits for that, then
/// hand the bytes to `submit`; an encoding failure answers `done` instead.
/// Shared by the stores: only what they do with the bytes differs.
pub(crate) fn encode_snapshot_then(
    tenant: std::sync::Arc<str>,
    snapshot: Snapshot,
    done: tokio::sync::oneshot::Sender<Result<(), StoreError>>,
    submit: impl FnOnce(std::sync::Arc<str>, Vec<u8>, tokio::sync::oneshot::Sender<Result<(), StoreError>>)
        + Send
        + 'static,
) {
    let spawned = std::thread::Builder::new()
        .name("snapshot-encoder".into())
        .spawn(move || {
            let mut body = Vec::new();
            if let Err(e) = ciborium::into_writer(&snapshot, &mut body) {
                tracing::error!(tenant = %tenant, error = %e, "snapshot failed");
                let _ = done.send(Err(StoreError::Failed(format!(
                    "encoding the snapshot: {e}"
                ))));
                return;
            }
            drop(snapshot);
            submit(tenant, body, done);
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "could not start the snapshot encoder");
    }
}

/// Snapshots kept per tenant: the latest, and the one before in case the
/// latest cannot be read.
pub const SNAPSHOTS_KEPT: usize = 2;

/// How hard SQLite syncs a commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SyncMode {
    /// fsync on every commit: nothing acknowledged is lost even on power loss.
    #[default]
    Full,
    /// WAL without fsync per commit: survives a process crash (kill -9),
    /// may lose the last commits on power loss.
    Normal,
}

/// One event ready to be written.
#[derive(Debug)]
pub struct Row {
    pub seq: u64,
    pub kind: &'static str,
    pub conversation: Option<u64>,
    pub body: String,
}

/// What a tenant has in the journal: the latest readable snapshot and the
/// events after it.
#[derive(Debug, Default)]
pub struct Recovered {
    pub snapshot: Option<Snapshot>,
    /// The sequence number the snapshot was taken after (0 without one):
    /// `events` are the ones after it.
    pub snapshot_seq: u64,
    pub events: Vec<Event>,
    pub last_seq: u64,
}

/// Which reply of the outbox: the sequence number of the last event of
/// the append that decided it, and its rank among that append's replies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OutboxId {
    pub seq: u64,
    pub n: u32,
}

/// A reply decided and committed, to be sent through its channel: what
/// the channel's adapter needs to build the request again at send time
/// (so no access token is stored). `text` is the customer-facing text as
/// the agent wrote it (the journal may hold it masked): storage, never
/// logged, hence the `Debug` without it.
#[derive(Clone, PartialEq, Eq)]
pub struct OutboxRow {
    pub id: OutboxId,
    pub conversation: u64,
    /// The reply's index in the conversation's transcript.
    pub message: u64,
    pub channel: String,
    pub customer: String,
    pub author: String,
    pub text: String,
    /// When the engine decided the reply (the adapter builds it as of then).
    pub at: Millis,
}

impl std::fmt::Debug for OutboxRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutboxRow")
            .field("id", &self.id)
            .field("conversation", &self.conversation)
            .field("message", &self.message)
            .field("channel", &self.channel)
            .finish_non_exhaustive()
    }
}

/// A stored agent session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSession {
    /// SHA-256 of the token (the session's id).
    pub token_hash: String,
    pub tenant: String,
    pub agent: String,
    pub expires_at: Millis,
}

/// Why the store did not do what it was asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The writer no longer owns the tenant (or never did under this epoch).
    #[error("tenant {tenant}: epoch {epoch} is not the tenant's epoch ({current})")]
    StaleEpoch {
        tenant: String,
        epoch: u64,
        current: u64,
    },
    /// An earlier commit of the tenant failed and it has not resynced.
    #[error("an earlier commit of this tenant failed")]
    Closed,
    /// The store cannot be used (its writer stopped).
    #[error("the journal writer has stopped")]
    Stopped,
    /// The database failed (I/O, SQL, an unreadable row).
    #[error("{0}")]
    Failed(String),
    /// A journal event that does not decode as an event (read by
    /// [`Store::journal`]).
    #[error("journal event {seq} of tenant {tenant} is unreadable: {cause}")]
    Unreadable {
        tenant: String,
        seq: u64,
        cause: String,
    },
}

impl StoreError {
    pub(crate) fn failed(e: impl std::fmt::Display) -> StoreError {
        StoreError::Failed(e.to_string())
    }

    /// Journal event `seq` of `tenant` did not decode.
    pub(crate) fn unreadable(tenant: &str, seq: u64, cause: impl std::fmt::Display) -> StoreError {
        StoreError::Unreadable {
            tenant: tenant.to_string(),
            seq,
            cause: cause.to_string(),
        }
    }
}

/// Journal event `seq` of `tenant` from its stored JSON (every read of the
/// journal, in both stores).
pub(crate) fn decode_event(tenant: &str, seq: u64, body: &str) -> Result<Event, StoreError> {
    serde_json::from_str(body).map_err(|e| StoreError::unreadable(tenant, seq, e))
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> StoreError {
        StoreError::failed(e)
    }
}

impl From<::postgres::Error> for StoreError {
    fn from(e: ::postgres::Error) -> StoreError {
        StoreError::failed(e)
    }
}

/// Say what the store was doing when something failed: the message
/// becomes `what: cause`, one line.
pub(crate) trait Context<T> {
    fn context(self, what: &str) -> Result<T, StoreError>;
    fn with_context(self, what: impl FnOnce() -> String) -> Result<T, StoreError>;
}

impl<T, E: std::fmt::Display> Context<T> for Result<T, E> {
    fn context(self, what: &str) -> Result<T, StoreError> {
        self.map_err(|e| StoreError::Failed(format!("{what}: {e}")))
    }
    fn with_context(self, what: impl FnOnce() -> String) -> Result<T, StoreError> {
        self.map_err(|e| StoreError::Failed(format!("{}: {e}", what())))
    }
}

/// Runs on the store's side right after the commit of its append (in
/// journal order): publishing and handing replies out.
pub type AfterCommit = Box<dyn FnOnce() + Send>;
/// Answered once a job is committed (or refused).
pub type Committed = tokio::sync::oneshot::Receiver<Result<(), StoreError>>;

/// Everything the server keeps durably. Implementations are shared by
/// every tenant and every request: cheap to call from async code (appends
/// queue and answer later; reads are single statements).
pub trait Store: Send + Sync + std::fmt::Debug {
    /// The tenant's current epoch (0 for a tenant never taken over).
    fn epoch(&self, tenant: &str) -> Result<u64, StoreError>;
    /// Take the tenant over: its epoch moves on by one, and appends under
    /// any earlier epoch are refused from now on. Returns the new epoch.
    fn advance_epoch(&self, tenant: &str) -> Result<u64, StoreError>;
    /// Queue `rows` for the next commit under `epoch`; `after_commit` runs
    /// right after it, then the answer is given. Refused (nothing stored,
    /// `after_commit` not run) under a stale epoch or while the tenant is
    /// closed by a failed commit.
    fn append(&self, tenant: &str, epoch: u64, rows: Vec<Row>, after: AfterCommit) -> Committed {
        self.append_with_outbox(tenant, epoch, rows, Vec::new(), after)
    }
    /// [`Store::append`], with the replies the append decided written to
    /// the outbox in the same transaction: both are stored, or neither.
    fn append_with_outbox(
        &self,
        tenant: &str,
        epoch: u64,
        rows: Vec<Row>,
        outbox: Vec<OutboxRow>,
        after: AfterCommit,
    ) -> Committed;
    /// The tenant's replies committed and not yet marked sent, in order.
    fn outbox_pending(&self, tenant: &str) -> Result<Vec<OutboxRow>, StoreError>;
    /// The replies `ids` were sent (or their failures journaled): they are
    /// removed from the outbox in one transaction, never to be sent again.
    /// Refused, all of them, under an epoch that is not the tenant's (a
    /// deposed owner marks nothing).
    fn outbox_sent(&self, tenant: &str, epoch: u64, ids: &[OutboxId]) -> Result<(), StoreError>;
    /// Store a snapshot taken after event `seq` (the events up to `seq`
    /// already appended), without making the caller wait for its encoding;
    /// older snapshots beyond [`SNAPSHOTS_KEPT`] are pruned.
    fn snapshot(&self, tenant: &str, epoch: u64, seq: u64, snapshot: Snapshot) -> Committed;
    /// Read the tenant's latest readable snapshot and the events after it.
    fn recover(&self, tenant: &str) -> Result<Recovered, StoreError>;
    /// After a failed commit: once every job queued before is settled, read
    /// what the journal holds of the tenant (as [`Store::recover`]) and let
    /// its appends through again. Blocks the calling thread.
    fn resync(&self, tenant: &str) -> Result<Recovered, StoreError>;
    /// How many snapshots of the tenant are stored.
    fn snapshot_count(&self, tenant: &str) -> Result<usize, StoreError>;
    /// Up to `limit` of the tenant's events numbered below `before`, the
    /// latest first, with their sequence numbers: the journal read
    /// backwards page by page, from any point down to its start (what the
    /// reports read at start for the events a snapshot covers).
    fn events_before(
        &self,
        tenant: &str,
        before: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Event)>, StoreError>;
    /// The tenant's whole journal from its first event, in order, each
    /// event with its sequence number, handed to `visit` one at a time
    /// until it answers `Break` (what a replay reads): the journal as it
    /// stands when the read starts. Read from one statement or in pages,
    /// never held whole, and never holding up the store's other reads for
    /// long; reads only (no lease, no epoch, no write). An event that does
    /// not decode is [`StoreError::Unreadable`]: the events before it were
    /// visited, none after.
    fn journal(
        &self,
        tenant: &str,
        visit: &mut dyn FnMut(u64, Event) -> ControlFlow<()>,
    ) -> Result<(), StoreError>;
    /// The events of one conversation, in order (JSON bodies).
    fn conversation_events(
        &self,
        tenant: &str,
        conversation: u64,
    ) -> Result<Vec<String>, StoreError>;
    fn save_session(&self, session: &StoredSession) -> Result<(), StoreError>;
    fn delete_session(&self, token_hash: &str) -> Result<(), StoreError>;
    /// Sessions still valid at `now` (expired ones are deleted).
    fn live_sessions(&self, now: Millis) -> Result<Vec<StoredSession>, StoreError>;
    /// The server secret `name`, created from `fresh` the first time (the
    /// first writer wins, so every process sharing the store agrees).
    fn secret(&self, name: &str, fresh: &[u8]) -> Result<Vec<u8>, StoreError>;
    /// Make the next commit fail (a test hook, behind `test_clock`).
    fn fail_next_commit(&self);
    /// Whether customers' attachments are kept here, where every node
    /// reads them (a cluster's database); otherwise they are files under
    /// the node's `data_dir` (`crate::attachments`).
    fn keeps_attachments(&self) -> bool {
        false
    }
    /// Keep an attachment's content and its description (JSON).
    fn put_attachment(
        &self,
        _tenant: &str,
        _id: &str,
        _content: Vec<u8>,
        _meta: String,
    ) -> Result<(), StoreError> {
        Err(StoreError::Failed(
            "attachments are not kept in this store".into(),
        ))
    }
    /// An attachment's description (JSON) and, if asked, its content.
    #[allow(clippy::type_complexity)]
    fn attachment(
        &self,
        _tenant: &str,
        _id: &str,
        _content: bool,
    ) -> Result<Option<(String, Option<Vec<u8>>)>, StoreError> {
        Ok(None)
    }
}

/// A member of a cluster, as the shared store knows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct NodeRow {
    pub id: String,
    /// How the other nodes reach this one (`advertise_url`).
    pub url: String,
    /// Milliseconds since the Unix epoch, by the database's clock.
    pub heartbeat_at: Millis,
}

/// Who owns a tenant, as the shared store knows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LeaseRow {
    pub tenant: String,
    /// The node holding (or last holding) the lease; `None` once released
    /// or never taken.
    pub owner: Option<String>,
    pub epoch: u64,
    /// When the current owner took the tenant (ms since the Unix epoch).
    pub since: Millis,
    /// Until when the lease holds (database clock, ms since the Unix epoch).
    pub until: Millis,
}

/// Membership and tenant leases, kept in the store that the nodes of a
/// cluster share (PostgreSQL). Times are the database's: no two nodes
/// compare their own clocks. Every method is one short transaction.
///
/// **Invariant:** [`ClusterStore::acquire`] moves the tenant's epoch on (the
/// same epoch [`Store::append`] is fenced by), so once it returns, nothing
/// appended under an earlier epoch can commit.
pub trait ClusterStore: Send + Sync + std::fmt::Debug {
    /// Record that `node` (reachable at `url`) is alive now.
    fn heartbeat(&self, node: &str, url: &str) -> Result<(), StoreError>;
    /// Nodes whose last heartbeat is at most `lease_ms` old, by id.
    fn live_nodes(&self, lease_ms: u64) -> Result<Vec<NodeRow>, StoreError>;
    /// `node` leaves: its row is removed and every lease it holds is
    /// released at once (a drain).
    fn leave(&self, node: &str) -> Result<(), StoreError>;
    /// Every tenant's lease, by tenant id.
    fn leases(&self) -> Result<Vec<LeaseRow>, StoreError>;
    /// Take `tenant` for `node` for `lease_ms` if nobody else holds a lease
    /// that is still running: the epoch moves on by one and is returned.
    /// `None` when another node holds it.
    fn acquire(&self, tenant: &str, node: &str, lease_ms: u64) -> Result<Option<u64>, StoreError>;
    /// Extend `node`'s lease on `tenant` under `epoch` by `lease_ms` from
    /// now. `false` when the lease is no longer `node`'s under `epoch`
    /// (taken over, or released).
    fn renew(
        &self,
        tenant: &str,
        node: &str,
        epoch: u64,
        lease_ms: u64,
    ) -> Result<bool, StoreError>;
    /// Give `tenant` up at once (hand-over) if `node` still holds it
    /// under `epoch`; another node may acquire it right away.
    fn release(&self, tenant: &str, node: &str, epoch: u64) -> Result<(), StoreError>;
}
