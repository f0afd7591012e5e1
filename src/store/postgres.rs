//! The PostgreSQL store, shared by the nodes of a cluster: the journal
//! (`sb_journal`), snapshots (`sb_snapshots`, CBOR), tenants with their
//! epoch and lease (`sb_tenants`), cluster members (`sb_nodes`),
//! `sb_sessions` and `sb_secrets`. The schema is versioned (`sb_schema`)
//! and migrated at open, under an advisory lock so nodes starting together
//! do not race.
//!
//! The client is the synchronous one, which runs a runtime of its own: it
//! is driven only from this store's threads, never from the caller's (often
//! a tokio worker). Writer threads do group commit of the queued appends
//! and snapshots (as the SQLite store does), each for its share of the
//! tenants (a tenant always on the same one: its jobs commit in the order
//! queued), so that commits overlap; two threads serve the
//! reads, sessions and secrets, and one more the cluster calls (so lease
//! renewals never wait behind a tenant's recovery); each caller waits for
//! its reply.
//!
//! **Invariant (fencing):** an append commits in the same transaction that
//! holds its tenant's row (`FOR SHARE`) and finds the epoch it was made
//! under; `acquire` and `advance_epoch` update that row, so they wait for
//! such a transaction and every later one sees the new epoch.
//! **Invariant:** times of leases and heartbeats are the database's clock
//! (`sb_now_ms()`), never a node's.

use super::Context;
use super::{
    decode_event, AfterCommit, ClusterStore, Committed, LeaseRow, NodeRow, OutboxId, OutboxRow,
    Recovered, Row, Store, StoreError, StoredSession, SNAPSHOTS_KEPT,
};
use ::postgres::{Client, Config, IsolationLevel, NoTls, Statement};

type Result<T, E = StoreError> = std::result::Result<T, E>;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;
use switchboard_core::engine::Snapshot;
use switchboard_core::model::Millis;
use switchboard_core::Event;

/// Most jobs committed in one transaction.
const MAX_GROUP: usize = 1024;
/// Jobs waiting for the writer before submitters wait (back-pressure).
const QUEUE_DEPTH: usize = 16 * 1024;
/// Journal writers, each with its connection and group commit; tenants
/// are spread over them, so the commits of different tenants overlap (the
/// database flushes concurrent commits together).
const WRITERS: usize = 4;
/// Threads (each with its connection) serving reads, sessions and secrets.
const READERS: usize = 2;
/// Threads serving the cluster calls (heartbeats, leases).
const CLUSTER_READERS: usize = 1;
/// The longest lease or heartbeat age asked about (a century): longer
/// ones are taken as this, so adding it to a time stays in range.
const LONGEST_MS: u64 = 100 * 365 * 24 * 3600 * 1000;
/// How long connecting may take before it counts as a failure.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a connection may take to answer an empty query after a
/// failure before it counts as broken.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// Sequence numbers read per query by [`Store::journal`].
const JOURNAL_PAGE: u64 = 5_000;
/// The advisory lock key migrations run under ("sb_schem" in ASCII).
const MIGRATION_LOCK: i64 = 0x73625f736368656d;

/// The schema, one step per version (version = index + 1). A step is
/// never edited once released: changes are new steps.
const MIGRATIONS: &[&str] = &[
    // 1: the journal, snapshots, tenants with their epoch and lease, cluster
    // members, sessions, secrets.
    "CREATE FUNCTION sb_now_ms() RETURNS bigint LANGUAGE sql VOLATILE AS
         $$ SELECT floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint $$;
     CREATE TABLE sb_tenants (
         tenant text PRIMARY KEY,
         epoch bigint NOT NULL DEFAULT 0,
         owner text,
         since bigint NOT NULL DEFAULT 0,
         lease_until bigint NOT NULL DEFAULT 0
     );
     CREATE INDEX sb_tenants_by_owner ON sb_tenants (owner) WHERE owner IS NOT NULL;
     CREATE TABLE sb_journal (
         tenant text NOT NULL,
         seq bigint NOT NULL,
         kind text NOT NULL,
         conversation bigint,
         body text NOT NULL,
         epoch bigint NOT NULL,
         PRIMARY KEY (tenant, seq)
     );
     CREATE INDEX sb_journal_by_conversation
         ON sb_journal (tenant, conversation, seq) WHERE conversation IS NOT NULL;
     CREATE TABLE sb_snapshots (
         tenant text NOT NULL,
         seq bigint NOT NULL,
         body bytea NOT NULL,
         PRIMARY KEY (tenant, seq)
     );
     CREATE TABLE sb_sessions (
         token_hash text PRIMARY KEY,
         tenant text NOT NULL,
         agent text NOT NULL,
         expires_at bigint NOT NULL
     );
     CREATE TABLE sb_secrets (
         name text PRIMARY KEY,
         value bytea NOT NULL
     );
     CREATE TABLE sb_nodes (
         id text PRIMARY KEY,
         url text NOT NULL,
         heartbeat_at bigint NOT NULL
     );",
    // 2: the outbox: replies committed and not yet sent (a sent one is
    // deleted), written with the append that decided them.
    "CREATE TABLE sb_outbox (
         tenant text NOT NULL,
         seq bigint NOT NULL,
         n integer NOT NULL,
         conversation bigint NOT NULL,
         message bigint NOT NULL,
         channel text NOT NULL,
         customer text NOT NULL,
         author text NOT NULL,
         text text NOT NULL,
         at bigint NOT NULL,
         PRIMARY KEY (tenant, seq, n)
     );",
    // 3: customers' attachments, where every node reads them.
    "CREATE TABLE sb_attachments (
         tenant text NOT NULL,
         id text NOT NULL,
         meta text NOT NULL,
         content bytea NOT NULL,
         PRIMARY KEY (tenant, id)
     );",
];

/// The schema version this build writes and reads.
pub const SCHEMA_VERSION: i32 = MIGRATIONS.len() as i32;

/// The connection settings `url` names, with a connect timeout and an
/// application name unless it sets them. The URL is never repeated in an
/// error (it may hold a password).
fn config_of(url: &str, application: &str) -> Result<Config> {
    let mut config: Config = url
        .parse()
        .context("the PostgreSQL URL is not valid (postgres://user@host:port/db)")?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    if config.get_application_name().is_none() {
        config.application_name(application);
    }
    Ok(config)
}

/// The schema version the database holds (0: none, never migrated).
fn schema_version(client: &mut Client) -> Result<i32> {
    let exists: bool = client
        .query_one("SELECT to_regclass('sb_schema') IS NOT NULL", &[])
        .and_then(|r| r.try_get(0))
        .map_err(sql)?;
    if !exists {
        return Ok(0);
    }
    client
        .query_one("SELECT COALESCE(MAX(version), 0) FROM sb_schema", &[])
        .and_then(|r| r.try_get(0))
        .map_err(sql)
}

fn connect(config: &Config) -> Result<Client> {
    config
        .connect(NoTls)
        .map_err(|e| StoreError::Failed(format!("connecting to PostgreSQL: {}", described(&e))))
}

/// A client error with its causes (its own text is only the kind: "db
/// error", "error connecting to server"): what the server said, or why
/// the socket failed. Neither repeats the URL.
fn described(e: &::postgres::Error) -> String {
    let mut text = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

/// Bring the database's schema to [`SCHEMA_VERSION`]: one transaction,
/// under an advisory lock, so nodes opening together apply each step once.
fn migrate(client: &mut Client) -> Result<()> {
    let mut tx = client.transaction()?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .context("waiting for the migration lock")?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS sb_schema (
             version integer PRIMARY KEY,
             applied_at timestamptz NOT NULL DEFAULT now()
         )",
    )
    .context("creating sb_schema")?;
    let current: i32 = tx
        .query_one("SELECT COALESCE(MAX(version), 0) FROM sb_schema", &[])?
        .try_get(0)?;
    if current > SCHEMA_VERSION {
        return Err(StoreError::Failed(format!(
            "the database's schema is version {current}, newer than this build knows \
             ({SCHEMA_VERSION}): upgrade this node"
        )));
    }
    for (i, step) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let version = i as i32 + 1;
        tx.batch_execute(step)
            .with_context(|| format!("applying schema version {version}"))?;
        tx.execute("INSERT INTO sb_schema (version) VALUES ($1)", &[&version])?;
        tracing::info!(version, "PostgreSQL schema migrated");
    }
    tx.commit().context("committing the schema")?;
    Ok(())
}

fn sql(e: ::postgres::Error) -> StoreError {
    StoreError::Failed(format!("PostgreSQL: {}", described(&e)))
}

/// A stored count, sequence number or time (never negative) as unsigned.
fn unsigned(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// An unsigned number for a `bigint` column.
fn signed(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// A connection that comes back after it breaks: each use reconnects if
/// the last one was lost.
struct Connection {
    config: Config,
    client: Option<Client>,
    /// Counts connections made, so what was prepared on an earlier one is
    /// prepared again.
    generation: u64,
}

impl Connection {
    fn open(config: Config) -> Result<Connection> {
        let client = connect(&config)?;
        Ok(Connection {
            config,
            client: Some(client),
            generation: 0,
        })
    }

    /// After a failed use: whether the connection broke (a database
    /// restart, a failover, a dropped socket). A broken one is let go, and
    /// the next use makes a new one.
    fn lost(&mut self) -> bool {
        let alive = self
            .client
            .as_mut()
            .is_some_and(|c| !c.is_closed() && c.is_valid(PROBE_TIMEOUT).is_ok());
        if !alive {
            self.client = None;
        }
        !alive
    }

    fn client(&mut self) -> Result<&mut Client, StoreError> {
        if self.client.as_ref().is_none_or(Client::is_closed) {
            self.client = None;
            self.client = Some(connect(&self.config)?);
            self.generation += 1;
        }
        self.client
            .as_mut()
            .ok_or_else(|| StoreError::Failed("no connection to PostgreSQL".into()))
    }
}

type Done = tokio::sync::oneshot::Sender<Result<(), StoreError>>;

/// Work for the writer thread, in queue order.
enum Job {
    Append {
        tenant: Arc<str>,
        epoch: u64,
        rows: Vec<Row>,
        outbox: Vec<OutboxRow>,
        after_commit: AfterCommit,
        done: Done,
    },
    Snapshot {
        tenant: Arc<str>,
        epoch: u64,
        seq: u64,
        body: Vec<u8>,
        done: Done,
    },
    /// After a failed commit: read what the journal holds of the tenant
    /// (everything queued before this job is settled by then) and let its
    /// appends through again.
    Resync {
        tenant: Arc<str>,
        reply: mpsc::Sender<Result<Recovered, StoreError>>,
    },
    /// A take-over without a lease: the tenant's epoch moves on by one.
    AdvanceEpoch {
        tenant: Arc<str>,
        reply: mpsc::Sender<Result<u64, StoreError>>,
    },
}

impl Job {
    fn tenant(&self) -> &Arc<str> {
        match self {
            Job::Append { tenant, .. }
            | Job::Snapshot { tenant, .. }
            | Job::Resync { tenant, .. }
            | Job::AdvanceEpoch { tenant, .. } => tenant,
        }
    }

    fn epoch(&self) -> Option<u64> {
        match self {
            Job::Append { epoch, .. } | Job::Snapshot { epoch, .. } => Some(*epoch),
            Job::Resync { .. } | Job::AdvanceEpoch { .. } => None,
        }
    }

    /// Answer the job without doing it (refused, or the writer stopped).
    fn answer(self, result: Result<(), StoreError>) {
        match self {
            Job::Append { done, .. } | Job::Snapshot { done, .. } => {
                let _ = done.send(result);
            }
            Job::Resync { reply, .. } => {
                let _ = reply.send(result.and(Err(StoreError::Stopped)));
            }
            Job::AdvanceEpoch { reply, .. } => {
                let _ = reply.send(result.and(Err(StoreError::Stopped)));
            }
        }
    }
}

/// A call for a reader thread: it runs on the thread's connection and
/// answers through its own channel.
type Call = Box<dyn FnOnce(&mut Connection) + Send>;

/// The PostgreSQL store. Cheap to share; every database call runs on the
/// store's own threads.
pub struct PgStore {
    /// The journal writers; a tenant's jobs all go to one of them.
    writers: Arc<[mpsc::SyncSender<Job>]>,
    calls: mpsc::Sender<Call>,
    cluster: mpsc::Sender<Call>,
    /// Test hook (`test_clock` servers only): fail the next commit.
    fail_next: Arc<AtomicBool>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PgStore")
    }
}

impl PgStore {
    /// Connect to the database at `url` (`postgres://user:password@host:port/db`
    /// or key=value form), bring its schema up to date and start the
    /// journal writer and the readers. Safe to call from async code: the
    /// connections are made on the store's threads.
    pub fn open(url: &str) -> Result<PgStore> {
        let config = config_of(url, "switchboard")?;

        let fail_next = Arc::new(AtomicBool::new(false));
        // The first writer migrates: the others and the readers start on
        // the migrated schema.
        let mut writers = Vec::with_capacity(WRITERS);
        for i in 0..WRITERS {
            writers.push(writer(i, &config, i == 0, &fail_next)?);
        }
        let calls = readers("pg-reader", READERS, &config)?;
        let cluster = readers("pg-cluster", CLUSTER_READERS, &config)?;
        Ok(PgStore {
            writers: writers.into(),
            calls,
            cluster,
            fail_next,
        })
    }

    /// Connect to the database at `url` for reading only: no migration, no
    /// journal writer, no cluster thread (this process never joins the
    /// cluster: no heartbeat, no lease, no epoch moved), one reader whose
    /// transactions are read-only (`default_transaction_read_only`), so
    /// nothing is written even by mistake. Refused when the database holds
    /// no Switchboard schema, or a newer one than this build reads. What
    /// `switchboard scripts replay` reads through while the nodes run.
    pub fn open_read_only(url: &str) -> Result<PgStore> {
        let mut config = config_of(url, "switchboard-reader")?;
        let options = match config.get_options() {
            Some(o) if !o.trim().is_empty() => format!("{o} -c default_transaction_read_only=on"),
            _ => "-c default_transaction_read_only=on".to_string(),
        };
        config.options(&options);
        let calls = readers("pg-reader", 1, &config)?;
        let version = ask(&calls, schema_version)?;
        if version == 0 {
            return Err(StoreError::Failed(
                "this PostgreSQL database holds no Switchboard journal (no server has used it)"
                    .into(),
            ));
        }
        if version > SCHEMA_VERSION {
            return Err(StoreError::Failed(format!(
                "the database's schema is version {version}, newer than this build knows \
                 ({SCHEMA_VERSION}): upgrade this program"
            )));
        }
        // No writer and no cluster thread: what would write or take part
        // in the cluster answers `Stopped`.
        let (cluster, _) = mpsc::channel();
        Ok(PgStore {
            writers: Arc::from(Vec::new()),
            calls,
            cluster,
            fail_next: Arc::new(AtomicBool::new(false)),
        })
    }

    /// Queue `job` for its tenant's writer; a stopped writer answers at
    /// once.
    fn submit(&self, job: Job) {
        submit_to(&self.writers, job);
    }

    /// Run `f` on a reader's connection and wait for its answer.
    fn call<T: Send + 'static>(
        &self,
        f: impl Fn(&mut Client) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        ask(&self.calls, f)
    }

    /// Run `f` on the cluster thread's connection and wait for its answer.
    fn cluster_call<T: Send + 'static>(
        &self,
        f: impl Fn(&mut Client) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        ask(&self.cluster, f)
    }
}

/// Queue `job` for the writer of its tenant (always the same one, so a
/// tenant's jobs commit in the order queued); a stopped writer answers at
/// once.
fn submit_to(writers: &[mpsc::SyncSender<Job>], job: Job) {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    job.tenant().hash(&mut h);
    let Some(writer) = writers.get(h.finish() as usize % writers.len().max(1)) else {
        job.answer(Err(StoreError::Stopped));
        return;
    };
    if let Err(mpsc::SendError(job)) = writer.send(job) {
        job.answer(Err(StoreError::Stopped));
    }
}

/// Start journal writer `i` on a connection of its own (migrating the
/// schema first if `migrate`); returns once it is connected.
fn writer(
    i: usize,
    config: &Config,
    migrate_first: bool,
    fail_next: &Arc<AtomicBool>,
) -> Result<mpsc::SyncSender<Job>> {
    let (tx, rx) = mpsc::sync_channel(QUEUE_DEPTH);
    let (ready, started) = mpsc::channel::<Result<()>>();
    let (config, fail) = (config.clone(), fail_next.clone());
    std::thread::Builder::new()
        .name(format!("pg-journal-writer-{i}"))
        .spawn(move || {
            let conn = Connection::open(config).and_then(|mut c| {
                if migrate_first {
                    let client = c.client()?;
                    migrate(client).context("migrating the PostgreSQL schema")?;
                }
                Ok(c)
            });
            match conn {
                Ok(conn) => {
                    let _ = ready.send(Ok(()));
                    write_loop(conn, rx, fail);
                }
                Err(e) => {
                    let _ = ready.send(Err(e));
                }
            }
        })
        .context("starting a journal writer")?;
    started
        .recv()
        .context("a journal writer stopped while starting")??;
    Ok(tx)
}

fn ask<T: Send + 'static>(
    threads: &mpsc::Sender<Call>,
    f: impl Fn(&mut Client) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    request(threads, f)
        .recv()
        .map_err(|_| StoreError::Stopped)?
}

/// Queue `f` for a thread of `threads` without waiting: its answer comes
/// on the receiver (which fails if the threads are gone).
fn request<T: Send + 'static>(
    threads: &mpsc::Sender<Call>,
    f: impl Fn(&mut Client) -> Result<T, StoreError> + Send + 'static,
) -> mpsc::Receiver<Result<T, StoreError>> {
    let (reply, answer) = mpsc::channel();
    let call: Call = Box::new(move |conn| {
        let mut result = conn.client().and_then(&f);
        // The connection was lost (a database restart, a failover): once
        // more on a new one. Every call is safe to repeat (reads, upserts,
        // deletes; an `acquire` repeated after all took effect finds the
        // tenant its own and moves the epoch on once more).
        if result.is_err() && conn.lost() {
            result = conn.client().and_then(&f);
        }
        let _ = reply.send(result);
    });
    // Refused, the call (and `reply` with it) is dropped: `answer` fails.
    let _ = threads.send(call);
    answer
}

/// Start `n` threads, each with its connection, serving calls from one
/// queue; returns once each is connected.
fn readers(name: &str, n: usize, config: &Config) -> Result<mpsc::Sender<Call>> {
    let (calls, queue) = mpsc::channel::<Call>();
    let queue = Arc::new(Mutex::new(queue));
    let (ready, started) = mpsc::channel::<Result<()>>();
    // Only the threads hold a sender: one dying unannounced ends the wait.
    for i in 0..n {
        let (config, queue, ready) = (config.clone(), queue.clone(), ready.clone());
        std::thread::Builder::new()
            .name(format!("{name}-{i}"))
            .spawn(move || match Connection::open(config) {
                Ok(conn) => {
                    let _ = ready.send(Ok(()));
                    read_loop(conn, &queue);
                }
                Err(e) => {
                    let _ = ready.send(Err(e));
                }
            })
            .with_context(|| format!("starting {name}-{i}"))?;
    }
    drop(ready);
    for _ in 0..n {
        started
            .recv()
            .with_context(|| format!("a {name} thread stopped while starting"))??;
    }
    Ok(calls)
}

/// A lease length or heartbeat age for a `bigint` sum with a time.
fn span(ms: u64) -> i64 {
    signed(ms.min(LONGEST_MS))
}

fn read_loop(mut conn: Connection, queue: &Mutex<mpsc::Receiver<Call>>) {
    loop {
        // Only waiting for the next call is under the lock; a poisoned lock
        // still holds a sound receiver.
        let next = queue.lock().unwrap_or_else(|p| p.into_inner()).recv();
        let Ok(call) = next else {
            return; // the store is gone
        };
        call(&mut conn);
    }
}

/// A tenant's latest readable snapshot and the events after it, read in
/// one consistent view.
fn recover_on(client: &mut Client, tenant: &str) -> Result<Recovered> {
    let mut tx = client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()?;
    let snapshots = tx.query(
        "SELECT seq, body FROM sb_snapshots WHERE tenant = $1 ORDER BY seq DESC",
        &[&tenant],
    )?;
    let mut found = None;
    for row in snapshots {
        let seq = unsigned(row.try_get(0)?);
        let body: &[u8] = row.try_get(1)?;
        match ciborium::from_reader::<Snapshot, _>(body) {
            Ok(snap) => {
                found = Some((seq, snap));
                break;
            }
            // The journal is complete: an older snapshot, or none, only
            // means replaying more of it.
            Err(e) => {
                tracing::warn!(tenant, seq, error = %e, "snapshot unreadable, using an older one or the journal");
            }
        }
    }
    let (from, snapshot) = match found {
        Some((seq, snap)) => (seq, Some(snap)),
        None => (0, None),
    };
    let rows = tx.query(
        "SELECT seq, body FROM sb_journal WHERE tenant = $1 AND seq > $2 ORDER BY seq",
        &[&tenant, &signed(from)],
    )?;
    let mut events = Vec::with_capacity(rows.len());
    let mut last_seq = from;
    for row in rows {
        let seq = unsigned(row.try_get(0)?);
        let body: &str = row.try_get(1)?;
        events.push(decode_event(tenant, seq, body)?);
        last_seq = seq;
    }
    let max: Option<i64> = tx
        .query_one(
            "SELECT MAX(seq) FROM sb_journal WHERE tenant = $1",
            &[&tenant],
        )?
        .try_get(0)?;
    tx.commit()?;
    Ok(Recovered {
        snapshot,
        snapshot_seq: from,
        events,
        last_seq: last_seq.max(max.map(unsigned).unwrap_or(0)),
    })
}

/// The events of the tenant's journal numbered `after` < seq ≤ `upto`,
/// decoded; if one does not decode, the events before it and why. Both
/// bounds keep the query a range of the primary key whatever the
/// planner's statistics say (with `LIMIT` alone, a freshly loaded journal
/// was scanned and sorted to its end for every page).
#[allow(clippy::type_complexity)]
fn journal_page(
    client: &mut Client,
    tenant: &str,
    after: u64,
    upto: u64,
) -> Result<(Vec<(u64, Event)>, Option<StoreError>)> {
    let rows = client
        .query(
            "SELECT seq, body FROM sb_journal WHERE tenant = $1 AND seq > $2 AND seq <= $3
             ORDER BY seq",
            &[&tenant, &signed(after), &signed(upto)],
        )
        .map_err(sql)?;
    let mut events = Vec::with_capacity(rows.len());
    for row in rows {
        let seq = unsigned(row.try_get(0).map_err(sql)?);
        let body: &str = row.try_get(1).map_err(sql)?;
        match decode_event(tenant, seq, body) {
            Ok(event) => events.push((seq, event)),
            Err(e) => return Ok((events, Some(e))),
        }
    }
    Ok((events, None))
}

fn read_epoch(client: &mut Client, tenant: &str) -> Result<u64, StoreError> {
    let row = client
        .query_opt("SELECT epoch FROM sb_tenants WHERE tenant = $1", &[&tenant])
        .map_err(sql)?;
    match row {
        Some(row) => Ok(unsigned(row.try_get(0).map_err(sql)?)),
        None => Ok(0),
    }
}

/// The tenant's epoch moves on by one (its row made if new); a lease it
/// had is void from now on, so it is cleared.
fn advance_epoch_on(client: &mut Client, tenant: &str) -> Result<u64, StoreError> {
    let row = client
        .query_one(
            "INSERT INTO sb_tenants (tenant, epoch) VALUES ($1, 1)
             ON CONFLICT (tenant) DO UPDATE
                 SET epoch = sb_tenants.epoch + 1, owner = NULL, lease_until = sb_now_ms()
             RETURNING epoch",
            &[&tenant],
        )
        .map_err(sql)?;
    Ok(unsigned(row.try_get(0).map_err(sql)?))
}

impl Store for PgStore {
    fn epoch(&self, tenant: &str) -> Result<u64, StoreError> {
        let tenant = tenant.to_string();
        self.call(move |c| read_epoch(c, &tenant))
    }

    fn advance_epoch(&self, tenant: &str) -> Result<u64, StoreError> {
        let (reply, answer) = mpsc::channel();
        self.submit(Job::AdvanceEpoch {
            tenant: tenant.into(),
            reply,
        });
        answer.recv().map_err(|_| StoreError::Stopped)?
    }

    fn append_with_outbox(
        &self,
        tenant: &str,
        epoch: u64,
        rows: Vec<Row>,
        outbox: Vec<OutboxRow>,
        after: AfterCommit,
    ) -> Committed {
        let (done, rx) = tokio::sync::oneshot::channel();
        self.submit(Job::Append {
            tenant: tenant.into(),
            epoch,
            rows,
            outbox,
            after_commit: after,
            done,
        });
        rx
    }

    fn outbox_pending(&self, tenant: &str) -> Result<Vec<OutboxRow>, StoreError> {
        let tenant = tenant.to_string();
        self.call(move |c| {
            let rows = c
                .query(
                    "SELECT seq, n, conversation, message, channel, customer, author, text, at
                     FROM sb_outbox WHERE tenant = $1 ORDER BY seq, n",
                    &[&tenant],
                )
                .map_err(sql)?;
            rows.iter()
                .map(|r| {
                    Ok(OutboxRow {
                        id: OutboxId {
                            seq: unsigned(r.try_get(0)?),
                            n: u32::try_from(r.try_get::<_, i32>(1)?).unwrap_or(0),
                        },
                        conversation: unsigned(r.try_get(2)?),
                        message: unsigned(r.try_get(3)?),
                        channel: r.try_get(4)?,
                        customer: r.try_get(5)?,
                        author: r.try_get(6)?,
                        text: r.try_get(7)?,
                        at: unsigned(r.try_get(8)?),
                    })
                })
                .collect::<Result<Vec<_>, ::postgres::Error>>()
                .map_err(sql)
        })
    }

    fn outbox_sent(&self, tenant: &str, epoch: u64, ids: &[OutboxId]) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        let tenant = tenant.to_string();
        let seqs: Vec<i64> = ids.iter().map(|id| signed(id.seq)).collect();
        let ns: Vec<i32> = ids
            .iter()
            .map(|id| i32::try_from(id.n).unwrap_or(i32::MAX))
            .collect();
        self.call(move |c| {
            // The tenant's row locked while its epoch is checked: a
            // take-over waits for the delete, or comes first and refuses it.
            let mut tx = c.transaction().map_err(sql)?;
            let current = tx
                .query_opt(
                    "SELECT epoch FROM sb_tenants WHERE tenant = $1 FOR SHARE",
                    &[&tenant],
                )
                .map_err(sql)?
                .map(|r| r.try_get::<_, i64>(0))
                .transpose()
                .map_err(sql)?
                .map_or(0, unsigned);
            if current != epoch {
                return Err(StoreError::StaleEpoch {
                    tenant: tenant.clone(),
                    epoch,
                    current,
                });
            }
            tx.execute(
                "DELETE FROM sb_outbox o USING unnest($2::bigint[], $3::int[]) AS d(seq, n) \
                 WHERE o.tenant = $1 AND o.seq = d.seq AND o.n = d.n",
                &[&tenant, &seqs, &ns],
            )
            .map_err(sql)?;
            tx.commit().map_err(sql)
        })
    }

    fn snapshot(&self, tenant: &str, epoch: u64, seq: u64, snapshot: Snapshot) -> Committed {
        let (done, rx) = tokio::sync::oneshot::channel();
        let writers = self.writers.clone();
        super::encode_snapshot_then(tenant.into(), snapshot, done, move |tenant, body, done| {
            let job = Job::Snapshot {
                tenant,
                epoch,
                seq,
                body,
                done,
            };
            submit_to(&writers, job);
        });
        rx
    }

    fn recover(&self, tenant: &str) -> Result<Recovered, StoreError> {
        let tenant = tenant.to_string();
        self.call(move |c| recover_on(c, &tenant))
    }

    fn resync(&self, tenant: &str) -> Result<Recovered, StoreError> {
        let (reply, answer) = mpsc::channel();
        self.submit(Job::Resync {
            tenant: tenant.into(),
            reply,
        });
        answer.recv().map_err(|_| StoreError::Stopped)?
    }

    fn snapshot_count(&self, tenant: &str) -> Result<usize, StoreError> {
        let tenant = tenant.to_string();
        self.call(move |c| {
            let n: i64 = c
                .query_one(
                    "SELECT COUNT(*) FROM sb_snapshots WHERE tenant = $1",
                    &[&tenant],
                )
                .and_then(|r| r.try_get(0))
                .map_err(sql)?;
            Ok(usize::try_from(n).unwrap_or(0))
        })
    }

    fn events_before(
        &self,
        tenant: &str,
        before: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Event)>, StoreError> {
        let tenant = tenant.to_string();
        let before = i64::try_from(before).unwrap_or(i64::MAX);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.call(move |c| {
            let rows = c
                .query(
                    "SELECT seq, body FROM sb_journal WHERE tenant = $1 AND seq < $2
                     ORDER BY seq DESC LIMIT $3",
                    &[&tenant, &before, &limit],
                )
                .map_err(sql)?;
            let mut out = Vec::with_capacity(rows.len());
            for row in rows {
                let seq = unsigned(row.try_get(0).map_err(sql)?);
                let body: &str = row.try_get(1).map_err(sql)?;
                out.push((seq, decode_event(&tenant, seq, body)?));
            }
            Ok(out)
        })
    }

    fn journal(
        &self,
        tenant: &str,
        visit: &mut dyn FnMut(u64, Event) -> ControlFlow<()>,
    ) -> Result<(), StoreError> {
        // The journal up to its last event now (it only grows at its end),
        // in pages of sequence numbers, each one query on a reader; the
        // next page is asked for before this one is visited, so the
        // database reads it and the reader decodes it meanwhile. At most
        // two pages are held.
        let last = {
            let tenant = tenant.to_string();
            self.call(move |c| {
                c.query_one(
                    "SELECT COALESCE(MAX(seq), 0) FROM sb_journal WHERE tenant = $1",
                    &[&tenant],
                )
                .and_then(|r| r.try_get::<_, i64>(0))
                .map(unsigned)
                .map_err(sql)
            })?
        };
        let page = |after: u64| {
            let tenant = tenant.to_string();
            let upto = after.saturating_add(JOURNAL_PAGE).min(last);
            (
                upto,
                request(&self.calls, move |c| journal_page(c, &tenant, after, upto)),
            )
        };
        if last == 0 {
            return Ok(());
        }
        let mut next = page(0);
        loop {
            let (upto, answer) = next;
            let (events, failed) = answer.recv().map_err(|_| StoreError::Stopped)??;
            let ahead = (failed.is_none() && upto < last).then(|| page(upto));
            for (seq, event) in events {
                if visit(seq, event).is_break() {
                    return Ok(());
                }
            }
            if let Some(e) = failed {
                return Err(e);
            }
            match ahead {
                Some(more) => next = more,
                None => return Ok(()),
            }
        }
    }

    fn conversation_events(
        &self,
        tenant: &str,
        conversation: u64,
    ) -> Result<Vec<String>, StoreError> {
        let tenant = tenant.to_string();
        self.call(move |c| {
            let rows = c
                .query(
                    "SELECT body FROM sb_journal WHERE tenant = $1 AND conversation = $2
                     ORDER BY seq",
                    &[&tenant, &signed(conversation)],
                )
                .map_err(sql)?;
            rows.iter()
                .map(|r| r.try_get::<_, String>(0))
                .collect::<Result<Vec<_>, _>>()
                .map_err(sql)
        })
    }

    fn save_session(&self, s: &StoredSession) -> Result<(), StoreError> {
        let s = s.clone();
        self.call(move |c| {
            c.execute(
                "INSERT INTO sb_sessions (token_hash, tenant, agent, expires_at)
                 VALUES ($1, $2, $3, $4)
                 ON CONFLICT (token_hash) DO UPDATE SET tenant = excluded.tenant,
                     agent = excluded.agent, expires_at = excluded.expires_at",
                &[&s.token_hash, &s.tenant, &s.agent, &signed(s.expires_at)],
            )
            .map_err(sql)?;
            Ok(())
        })
    }

    fn delete_session(&self, token_hash: &str) -> Result<(), StoreError> {
        let token_hash = token_hash.to_string();
        self.call(move |c| {
            c.execute(
                "DELETE FROM sb_sessions WHERE token_hash = $1",
                &[&token_hash],
            )
            .map_err(sql)?;
            Ok(())
        })
    }

    fn live_sessions(&self, now: Millis) -> Result<Vec<StoredSession>, StoreError> {
        self.call(move |c| {
            c.execute(
                "DELETE FROM sb_sessions WHERE expires_at <= $1",
                &[&signed(now)],
            )
            .map_err(sql)?;
            let rows = c
                .query(
                    "SELECT token_hash, tenant, agent, expires_at FROM sb_sessions
                     WHERE expires_at > $1 ORDER BY token_hash",
                    &[&signed(now)],
                )
                .map_err(sql)?;
            rows.iter()
                .map(|r| {
                    Ok(StoredSession {
                        token_hash: r.try_get(0)?,
                        tenant: r.try_get(1)?,
                        agent: r.try_get(2)?,
                        expires_at: unsigned(r.try_get(3)?),
                    })
                })
                .collect::<Result<Vec<_>, ::postgres::Error>>()
                .map_err(sql)
        })
    }

    fn secret(&self, name: &str, fresh: &[u8]) -> Result<Vec<u8>, StoreError> {
        let name = name.to_string();
        let fresh = fresh.to_vec();
        self.call(move |c| {
            c.execute(
                "INSERT INTO sb_secrets (name, value) VALUES ($1, $2)
                 ON CONFLICT (name) DO NOTHING",
                &[&name, &fresh],
            )
            .map_err(sql)?;
            c.query_one("SELECT value FROM sb_secrets WHERE name = $1", &[&name])
                .and_then(|r| r.try_get(0))
                .map_err(sql)
        })
    }

    fn fail_next_commit(&self) {
        self.fail_next.store(true, Ordering::SeqCst);
    }

    fn keeps_attachments(&self) -> bool {
        true
    }

    fn put_attachment(
        &self,
        tenant: &str,
        id: &str,
        content: Vec<u8>,
        meta: String,
    ) -> Result<(), StoreError> {
        let (tenant, id) = (tenant.to_string(), id.to_string());
        self.call(move |c| {
            c.execute(
                "INSERT INTO sb_attachments (tenant, id, meta, content) VALUES ($1, $2, $3, $4)",
                &[&tenant, &id, &meta, &content],
            )
            .map_err(sql)?;
            Ok(())
        })
    }

    fn attachment(
        &self,
        tenant: &str,
        id: &str,
        content: bool,
    ) -> Result<Option<(String, Option<Vec<u8>>)>, StoreError> {
        let (tenant, id) = (tenant.to_string(), id.to_string());
        self.call(move |c| {
            let row = c
                .query_opt(
                    "SELECT meta, CASE WHEN $3 THEN content END
                     FROM sb_attachments WHERE tenant = $1 AND id = $2",
                    &[&tenant, &id, &content],
                )
                .map_err(sql)?;
            row.map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
                .transpose()
                .map_err(sql)
        })
    }
}

impl ClusterStore for PgStore {
    fn heartbeat(&self, node: &str, url: &str) -> Result<(), StoreError> {
        let (node, url) = (node.to_string(), url.to_string());
        self.cluster_call(move |c| {
            c.execute(
                "INSERT INTO sb_nodes (id, url, heartbeat_at) VALUES ($1, $2, sb_now_ms())
                 ON CONFLICT (id) DO UPDATE
                     SET url = excluded.url, heartbeat_at = excluded.heartbeat_at",
                &[&node, &url],
            )
            .map_err(sql)?;
            Ok(())
        })
    }

    fn live_nodes(&self, lease_ms: u64) -> Result<Vec<NodeRow>, StoreError> {
        self.cluster_call(move |c| {
            let rows = c
                .query(
                    "SELECT id, url, heartbeat_at FROM sb_nodes
                     WHERE heartbeat_at >= sb_now_ms() - $1 ORDER BY id",
                    &[&span(lease_ms)],
                )
                .map_err(sql)?;
            rows.iter()
                .map(|r| {
                    Ok(NodeRow {
                        id: r.try_get(0)?,
                        url: r.try_get(1)?,
                        heartbeat_at: unsigned(r.try_get(2)?),
                    })
                })
                .collect::<Result<Vec<_>, ::postgres::Error>>()
                .map_err(sql)
        })
    }

    fn leave(&self, node: &str) -> Result<(), StoreError> {
        let node = node.to_string();
        self.cluster_call(move |c| {
            let mut tx = c.transaction().map_err(sql)?;
            tx.execute("DELETE FROM sb_nodes WHERE id = $1", &[&node])
                .map_err(sql)?;
            // Rows locked in tenant order, as appends lock them.
            tx.execute(
                "UPDATE sb_tenants SET owner = NULL, lease_until = sb_now_ms()
                 WHERE tenant IN (SELECT tenant FROM sb_tenants WHERE owner = $1
                                  ORDER BY tenant FOR UPDATE)",
                &[&node],
            )
            .map_err(sql)?;
            tx.commit().map_err(sql)
        })
    }

    fn leases(&self) -> Result<Vec<LeaseRow>, StoreError> {
        self.cluster_call(move |c| {
            let rows = c
                .query(
                    "SELECT tenant, owner, epoch, since, lease_until FROM sb_tenants
                     ORDER BY tenant",
                    &[],
                )
                .map_err(sql)?;
            rows.iter()
                .map(|r| {
                    Ok(LeaseRow {
                        tenant: r.try_get(0)?,
                        owner: r.try_get(1)?,
                        epoch: unsigned(r.try_get(2)?),
                        since: unsigned(r.try_get(3)?),
                        until: unsigned(r.try_get(4)?),
                    })
                })
                .collect::<Result<Vec<_>, ::postgres::Error>>()
                .map_err(sql)
        })
    }

    fn acquire(&self, tenant: &str, node: &str, lease_ms: u64) -> Result<Option<u64>, StoreError> {
        let (tenant, node) = (tenant.to_string(), node.to_string());
        self.cluster_call(move |c| {
            // One statement: the row is made or locked, and taken only if
            // nobody else's lease still runs (checked again on the latest
            // row after waiting for a concurrent taker).
            let row = c
                .query_opt(
                    "WITH clock AS (SELECT sb_now_ms() AS now)
                     INSERT INTO sb_tenants AS t (tenant, epoch, owner, since, lease_until)
                     SELECT $1, 1, $2, clock.now, clock.now + $3 FROM clock
                     ON CONFLICT (tenant) DO UPDATE
                         SET epoch = t.epoch + 1, owner = excluded.owner,
                             since = excluded.since, lease_until = excluded.lease_until
                         WHERE t.owner IS NULL OR t.owner = excluded.owner
                             OR t.lease_until <= excluded.since
                     RETURNING t.epoch",
                    &[&tenant, &node, &span(lease_ms)],
                )
                .map_err(sql)?;
            match row {
                Some(r) => Ok(Some(unsigned(r.try_get(0).map_err(sql)?))),
                None => Ok(None),
            }
        })
    }

    fn renew(
        &self,
        tenant: &str,
        node: &str,
        epoch: u64,
        lease_ms: u64,
    ) -> Result<bool, StoreError> {
        let (tenant, node) = (tenant.to_string(), node.to_string());
        self.cluster_call(move |c| {
            let n = c
                .execute(
                    "UPDATE sb_tenants SET lease_until = sb_now_ms() + $4
                     WHERE tenant = $1 AND owner = $2 AND epoch = $3",
                    &[&tenant, &node, &signed(epoch), &span(lease_ms)],
                )
                .map_err(sql)?;
            Ok(n == 1)
        })
    }

    fn release(&self, tenant: &str, node: &str, epoch: u64) -> Result<(), StoreError> {
        let (tenant, node) = (tenant.to_string(), node.to_string());
        self.cluster_call(move |c| {
            c.execute(
                "UPDATE sb_tenants SET owner = NULL, lease_until = sb_now_ms()
                 WHERE tenant = $1 AND owner = $2 AND epoch = $3",
                &[&tenant, &node, &signed(epoch)],
            )
            .map_err(sql)?;
            Ok(())
        })
    }
}

/// The writer's statements, prepared once per connection (each would
/// otherwise cost a round trip more per group).
#[derive(Clone)]
struct Prepared {
    make_tenants: Statement,
    lock_tenants: Statement,
    append: Statement,
    store_snapshot: Statement,
    outbox: Statement,
    prune_snapshots: Statement,
    /// Lock, check and append in one statement (one round trip, its own
    /// transaction), for groups of appends of tenants whose row exists.
    lock_and_append: Statement,
}

impl Prepared {
    fn new(client: &mut Client) -> Result<Prepared, ::postgres::Error> {
        Ok(Prepared {
            make_tenants: client.prepare(
                "INSERT INTO sb_tenants (tenant) SELECT unnest($1::text[]) ON CONFLICT DO NOTHING",
            )?,
            // Locked in tenant order (the same order everywhere: no
            // deadlock); an epoch change waits for the transaction to end.
            lock_tenants: client.prepare(
                "SELECT tenant, epoch FROM sb_tenants WHERE tenant = ANY($1::text[])
                 ORDER BY tenant FOR SHARE",
            )?,
            append: client.prepare(
                "INSERT INTO sb_journal (tenant, seq, kind, conversation, body, epoch)
                 SELECT * FROM unnest($1::text[], $2::int8[], $3::text[], $4::int8[],
                                      $5::text[], $6::int8[])",
            )?,
            outbox: client.prepare(
                "INSERT INTO sb_outbox (tenant, seq, n, conversation, message, channel,
                                        customer, author, text, at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            )?,
            store_snapshot: client.prepare(
                "INSERT INTO sb_snapshots (tenant, seq, body) VALUES ($1, $2, $3)
                 ON CONFLICT (tenant, seq) DO UPDATE SET body = excluded.body",
            )?,
            // `locked` is read once (it is used twice): the rows written
            // are exactly those whose epoch is the one returned.
            lock_and_append: client.prepare(
                "WITH locked AS (
                     SELECT tenant, epoch FROM sb_tenants WHERE tenant = ANY($1::text[])
                     ORDER BY tenant FOR SHARE
                 ), written AS (
                     INSERT INTO sb_journal (tenant, seq, kind, conversation, body, epoch)
                     SELECT r.tenant, r.seq, r.kind, r.conversation, r.body, r.epoch
                     FROM unnest($2::text[], $3::int8[], $4::text[], $5::int8[],
                                 $6::text[], $7::int8[])
                          AS r (tenant, seq, kind, conversation, body, epoch)
                     JOIN locked l ON l.tenant = r.tenant AND l.epoch = r.epoch
                     RETURNING 1
                 )
                 SELECT tenant, epoch, (SELECT COUNT(*) FROM written) FROM locked",
            )?,
            prune_snapshots: client.prepare(
                "DELETE FROM sb_snapshots WHERE tenant = $1 AND seq NOT IN
                     (SELECT seq FROM sb_snapshots WHERE tenant = $1 ORDER BY seq DESC LIMIT $2)",
            )?,
        })
    }
}

/// Why `job` may not be written, given the epochs its group locked (a
/// tenant without a row is at epoch 0).
fn refusal(job: &Job, epochs: &HashMap<String, u64>) -> Option<StoreError> {
    let tenant = job.tenant();
    let epoch = job.epoch().unwrap_or(0);
    let current = epochs.get(tenant.as_ref()).copied().unwrap_or(0);
    (current != epoch).then(|| StoreError::StaleEpoch {
        tenant: tenant.to_string(),
        epoch,
        current,
    })
}

/// The common group: appends only, of tenants whose row exists. One
/// statement, so one round trip and its own transaction: it locks the
/// tenants' rows, writes the events whose epoch is their tenant's, and
/// returns the epochs it checked them against.
fn commit_appends(
    client: &mut Client,
    st: &Prepared,
    jobs: &[Job],
    names: &[&str],
) -> Result<Vec<Option<StoreError>>> {
    let (mut tenants, mut seqs, mut kinds, mut convs, mut bodies, mut epochs_of) = (
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
    );
    for job in jobs {
        if let Job::Append {
            tenant,
            epoch,
            rows,
            ..
        } = job
        {
            for r in rows {
                tenants.push(tenant.as_ref());
                seqs.push(signed(r.seq));
                kinds.push(r.kind);
                convs.push(r.conversation.map(signed));
                bodies.push(r.body.as_str());
                epochs_of.push(signed(*epoch));
            }
        }
    }
    let locked = client
        .query(
            &st.lock_and_append,
            &[&names, &tenants, &seqs, &kinds, &convs, &bodies, &epochs_of],
        )
        .context("appending to the journal")?;
    let epochs: HashMap<String, u64> = locked
        .iter()
        .map(|r| Ok((r.try_get(0)?, unsigned(r.try_get(1)?))))
        .collect::<Result<_, ::postgres::Error>>()?;
    Ok(jobs.iter().map(|job| refusal(job, &epochs)).collect())
}

/// What the writer thread keeps between groups.
struct Writer {
    conn: Connection,
    /// The statements, and the connection they were prepared on.
    prepared: Option<(u64, Prepared)>,
    /// Tenants whose last commit failed: their jobs are refused until they
    /// resync.
    failed: HashSet<Arc<str>>,
    /// Tenants known to have their row (rows are never deleted), so it is
    /// not made again.
    known: HashSet<Arc<str>>,
    fail_next: Arc<AtomicBool>,
}

impl Writer {
    /// The connection (made again if it broke) and its statements.
    fn ready(&mut self) -> Result<(&mut Client, Prepared), StoreError> {
        self.conn.client()?;
        let generation = self.conn.generation;
        let client = self
            .conn
            .client
            .as_mut()
            .ok_or_else(|| StoreError::Failed("no connection to PostgreSQL".into()))?;
        let prepared = match &self.prepared {
            Some((g, p)) if *g == generation => p.clone(),
            _ => {
                let p = Prepared::new(client).map_err(sql)?;
                self.prepared = Some((generation, p.clone()));
                p
            }
        };
        Ok((client, prepared))
    }
}

fn write_loop(conn: Connection, rx: mpsc::Receiver<Job>, fail_next: Arc<AtomicBool>) {
    let mut w = Writer {
        conn,
        prepared: None,
        failed: HashSet::new(),
        known: HashSet::new(),
        fail_next,
    };
    while let Ok(first) = rx.recv() {
        let mut jobs = vec![first];
        while jobs.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(j) => jobs.push(j),
                Err(_) => break,
            }
        }
        // A resync or a take-over is a boundary: what is queued before it
        // is settled first.
        let mut batch = Vec::new();
        for job in jobs {
            match job {
                Job::Resync { tenant, reply } => {
                    settle(&mut w, std::mem::take(&mut batch));
                    let mut read = w.conn.client().and_then(|c| recover_on(c, &tenant));
                    if read.is_err() && w.conn.lost() {
                        read = w.conn.client().and_then(|c| recover_on(c, &tenant));
                    }
                    if read.is_ok() {
                        w.failed.remove(&tenant);
                    }
                    let _ = reply.send(read);
                }
                Job::AdvanceEpoch { tenant, reply } => {
                    settle(&mut w, std::mem::take(&mut batch));
                    let moved = w.conn.client().and_then(|c| advance_epoch_on(c, &tenant));
                    if moved.is_ok() {
                        w.known.insert(tenant);
                    }
                    let _ = reply.send(moved);
                }
                job => batch.push(job),
            }
        }
        settle(&mut w, batch);
    }
}

/// Commit one group of jobs, then run their `after_commit`s and answer
/// them: jobs of a tenant closed by a failed commit, or under an epoch that
/// is not the tenant's, are refused; a failed commit fails every job in it
/// and closes their tenants.
fn settle(w: &mut Writer, jobs: Vec<Job>) {
    if jobs.is_empty() {
        return;
    }
    let mut open = Vec::with_capacity(jobs.len());
    for job in jobs {
        if w.failed.contains(job.tenant()) {
            job.answer(Err(StoreError::Closed));
        } else {
            open.push(job);
        }
    }
    if open.is_empty() {
        return;
    }
    let fail = w.fail_next.swap(false, Ordering::SeqCst);
    // Tenants whose row may not exist yet (made in the same transaction).
    let new: BTreeSet<Arc<str>> = open
        .iter()
        .map(Job::tenant)
        .filter(|t| !w.known.contains(*t))
        .cloned()
        .collect();
    let result = match w.ready() {
        Ok((client, prepared)) => commit(client, &prepared, &open, &new, fail),
        Err(e) => Err(e),
    };
    match result {
        Ok(refusals) => {
            w.known.extend(new);
            for (job, refusal) in open.into_iter().zip(refusals) {
                match (job, refusal) {
                    (job, Some(e)) => job.answer(Err(e)),
                    (
                        Job::Append {
                            after_commit, done, ..
                        },
                        None,
                    ) => {
                        after_commit();
                        let _ = done.send(Ok(()));
                    }
                    (job, None) => job.answer(Ok(())),
                }
            }
        }
        Err(e) => {
            tracing::error!(error = %e, jobs = open.len(), "journal commit failed");
            // A broken connection is let go: the next group makes a new one.
            w.conn.lost();
            w.failed.extend(open.iter().map(|j| j.tenant().clone()));
            for job in open {
                job.answer(Err(e.clone()));
            }
        }
    }
}

/// One transaction for a group: the tenants' rows are locked (the `new`
/// ones made first) and their epochs read; the jobs under the right epoch
/// are written with one statement for all their events. Per job, in
/// order: why it was refused (nothing of it stored).
fn commit(
    client: &mut Client,
    st: &Prepared,
    jobs: &[Job],
    new: &BTreeSet<Arc<str>>,
    fail: bool,
) -> Result<Vec<Option<StoreError>>> {
    let group: BTreeSet<&Arc<str>> = jobs.iter().map(Job::tenant).collect();
    let names: Vec<&str> = group.iter().map(|t| t.as_ref()).collect();
    // Replies for the outbox go with their events in one transaction.
    let only_appends = jobs
        .iter()
        .all(|j| matches!(j, Job::Append { outbox, .. } if outbox.is_empty()));
    if new.is_empty() && only_appends && !fail {
        return commit_appends(client, st, jobs, &names);
    }

    let mut tx = client.transaction()?;
    if !new.is_empty() {
        let new: Vec<&str> = new.iter().map(|t| t.as_ref()).collect();
        tx.execute(&st.make_tenants, &[&new])
            .context("making the tenants' rows")?;
    }
    let epochs: HashMap<String, u64> = tx
        .query(&st.lock_tenants, &[&names])
        .context("locking the tenants")?
        .iter()
        .map(|r| Ok((r.try_get(0)?, unsigned(r.try_get(1)?))))
        .collect::<Result<_, ::postgres::Error>>()?;

    let mut refusals = Vec::with_capacity(jobs.len());
    // The events of every accepted append, one array per column.
    let (mut tenants, mut seqs, mut kinds, mut convs, mut bodies, mut epochs_of) = (
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
    );
    let mut snapshots = Vec::new();
    let mut replies: Vec<(&str, &OutboxRow)> = Vec::new();
    for job in jobs {
        let tenant = job.tenant();
        let epoch = job.epoch().unwrap_or(0);
        if let Some(refused) = refusal(job, &epochs) {
            refusals.push(Some(refused));
            continue;
        }
        refusals.push(None);
        match job {
            Job::Append { rows, outbox, .. } => {
                for r in rows {
                    tenants.push(tenant.as_ref());
                    seqs.push(signed(r.seq));
                    kinds.push(r.kind);
                    convs.push(r.conversation.map(signed));
                    bodies.push(r.body.as_str());
                    epochs_of.push(signed(epoch));
                }
                replies.extend(outbox.iter().map(|o| (tenant.as_ref(), o)));
            }
            Job::Snapshot { seq, body, .. } => {
                snapshots.push((tenant.as_ref(), signed(*seq), body))
            }
            Job::Resync { .. } | Job::AdvanceEpoch { .. } => {}
        }
    }
    if !tenants.is_empty() {
        tx.execute(
            &st.append,
            &[&tenants, &seqs, &kinds, &convs, &bodies, &epochs_of],
        )
        .context("appending to the journal")?;
    }
    for (tenant, o) in replies {
        tx.execute(
            &st.outbox,
            &[
                &tenant,
                &signed(o.id.seq),
                &i32::try_from(o.id.n).unwrap_or(i32::MAX),
                &signed(o.conversation),
                &signed(o.message),
                &o.channel,
                &o.customer,
                &o.author,
                &o.text,
                &signed(o.at),
            ],
        )
        .context("writing the outbox")?;
    }
    for (tenant, seq, body) in snapshots {
        tx.execute(&st.store_snapshot, &[&tenant, &seq, body])
            .context("storing a snapshot")?;
        tx.execute(&st.prune_snapshots, &[&tenant, &(SNAPSHOTS_KEPT as i64)])
            .context("pruning snapshots")?;
    }
    if fail {
        // Rolled back when `tx` is dropped.
        return Err(StoreError::failed("commit failed (test hook)"));
    }
    tx.commit().context("committing")?;
    Ok(refusals)
}
