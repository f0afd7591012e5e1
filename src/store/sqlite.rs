//! The SQLite store (WAL): `events` (the journal, per tenant, numbered),
//! `snapshots` (CBOR; JSON text from older versions still read), `epochs`
//! (a tenant's epoch once taken over), `sessions`, `secrets`, `outbox`
//! (replies committed and not yet sent; a sent one is deleted). One writer
//! thread does group commit; reads share one connection.
//!
//! Snapshots are encoded on a thread of their own from a copy of the
//! state, and only the latest [`SNAPSHOTS_KEPT`] of a tenant are kept: the
//! journal is never pruned, so an unreadable snapshot only means a longer
//! replay.

use super::Context;
use super::{
    decode_event, AfterCommit, Committed, OutboxId, OutboxRow, Recovered, Row, Store, StoreError,
    StoredSession, SyncMode, SNAPSHOTS_KEPT,
};

type Result<T, E = StoreError> = std::result::Result<T, E>;
use rusqlite::{params, Connection, OptionalExtension};
use std::collections::{HashMap, HashSet};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use switchboard_core::engine::Snapshot;
use switchboard_core::model::Millis;
use switchboard_core::Event;

/// Most jobs committed in one transaction.
const MAX_GROUP: usize = 1024;
/// Jobs waiting for the writer before submitters wait (back-pressure).
const QUEUE_DEPTH: usize = 16 * 1024;
fn open_connection(path: &Path, sync: SyncMode) -> Result<Connection> {
    let conn = Connection::open(path).with_context(|| format!("opening {}", path.display()))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(
        None,
        "synchronous",
        match sync {
            SyncMode::Full => "FULL",
            SyncMode::Normal => "NORMAL",
        },
    )?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS events (
             tenant TEXT NOT NULL,
             seq INTEGER NOT NULL,
             type TEXT NOT NULL,
             conversation INTEGER,
             body TEXT NOT NULL,
             PRIMARY KEY (tenant, seq)
         );
         CREATE INDEX IF NOT EXISTS events_by_conversation
             ON events (tenant, conversation, seq) WHERE conversation IS NOT NULL;
         CREATE TABLE IF NOT EXISTS snapshots (
             tenant TEXT NOT NULL,
             seq INTEGER NOT NULL,
             body BLOB NOT NULL, -- CBOR (JSON text before)
             PRIMARY KEY (tenant, seq)
         );
         CREATE TABLE IF NOT EXISTS sessions (
             token_hash TEXT PRIMARY KEY,
             tenant TEXT NOT NULL,
             agent TEXT NOT NULL,
             expires_at INTEGER NOT NULL
         );
         CREATE TABLE IF NOT EXISTS epochs (
             tenant TEXT PRIMARY KEY,
             epoch INTEGER NOT NULL
         );
         CREATE TABLE IF NOT EXISTS secrets (
             name TEXT PRIMARY KEY,
             value BLOB NOT NULL
         );
         CREATE TABLE IF NOT EXISTS outbox (
             tenant TEXT NOT NULL,
             seq INTEGER NOT NULL,
             n INTEGER NOT NULL,
             conversation INTEGER NOT NULL,
             message INTEGER NOT NULL,
             channel TEXT NOT NULL,
             customer TEXT NOT NULL,
             author TEXT NOT NULL,
             text TEXT NOT NULL,
             at INTEGER NOT NULL,
             PRIMARY KEY (tenant, seq, n)
         );",
    )
    .context("creating tables")?;
    Ok(conn)
}

type Done = tokio::sync::oneshot::Sender<Result<(), StoreError>>;

enum Job {
    Append {
        tenant: Arc<str>,
        epoch: u64,
        rows: Vec<Row>,
        outbox: Vec<OutboxRow>,
        after_commit: AfterCommit,
        done: Option<Done>,
    },
    Snapshot {
        tenant: Arc<str>,
        epoch: u64,
        seq: u64,
        body: Vec<u8>,
        done: Option<Done>,
    },
    /// After a failed commit: read what the journal holds of the tenant
    /// (everything queued before this job is settled by then) and let its
    /// appends through again.
    Resync {
        tenant: Arc<str>,
        reply: mpsc::Sender<Result<Recovered, StoreError>>,
    },
    /// A take-over: the tenant's epoch moves on by one.
    AdvanceEpoch {
        tenant: Arc<str>,
        reply: mpsc::Sender<Result<u64, StoreError>>,
    },
}

/// The SQLite store: reads and sessions on one connection; the journal
/// writer thread has its own.
pub struct SqliteStore {
    /// The database file (a journal read opens its own connection to it).
    path: PathBuf,
    conn: std::sync::Mutex<Connection>,
    tx: mpsc::SyncSender<Job>,
    /// Test hook (`test_clock` servers only): fail the next commit.
    fail_next: Arc<AtomicBool>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SqliteStore")
    }
}

impl SqliteStore {
    /// Open (or create) `dir/switchboard.db` and start the journal writer.
    pub fn open(dir: &Path, sync: SyncMode) -> Result<SqliteStore> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = dir.join("switchboard.db");
        let conn = open_connection(&path, sync)?;
        let writer = open_connection(&path, sync)?;
        let (tx, rx) = mpsc::sync_channel(QUEUE_DEPTH);
        let fail_next = Arc::new(AtomicBool::new(false));
        let fail = fail_next.clone();
        std::thread::Builder::new()
            .name("journal-writer".into())
            .spawn(move || write_loop(writer, rx, fail))
            .context("starting the journal writer")?;
        Ok(SqliteStore {
            path,
            conn: std::sync::Mutex::new(conn),
            tx,
            fail_next,
        })
    }

    /// Open `dir/switchboard.db`, which must exist, for reading only: no
    /// table is made, no writer started (anything that writes answers
    /// [`StoreError::Stopped`] or fails), so a server using the same file
    /// may keep running. What `switchboard scripts replay` reads through.
    pub fn open_read_only(dir: &Path) -> Result<SqliteStore> {
        let path = dir.join("switchboard.db");
        let conn = open_read_only(&path)?;
        // A writer that is not there: every job is answered at once.
        let (tx, _) = mpsc::sync_channel(0);
        Ok(SqliteStore {
            path,
            conn: std::sync::Mutex::new(conn),
            tx,
            fail_next: Arc::new(AtomicBool::new(false)),
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        // Every use is a single statement: a panic elsewhere cannot leave
        // the connection half-used, so a poisoned lock is still sound.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queue `job`; a stopped writer answers at once.
    fn submit(&self, job: Job) {
        if let Err(mpsc::SendError(job)) = self.tx.send(job) {
            job.answer(Err(StoreError::Stopped));
        }
    }

    /// Read a tenant's latest readable snapshot and the events after it,
    /// on a given connection (the writer's, to resync).
    fn recover_on(conn: &Connection, tenant: &str) -> Result<Recovered> {
        let mut stmt =
            conn.prepare("SELECT seq, body FROM snapshots WHERE tenant = ?1 ORDER BY seq DESC")?;
        let mut rows = stmt.query(params![tenant])?;
        let mut found = None;
        while let Some(row) = rows.next()? {
            let seq = row.get::<_, i64>(0)? as u64;
            match decode_snapshot(row.get_ref(1)?) {
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
        drop(rows);
        drop(stmt);
        let (from, snapshot) = match found {
            Some((seq, snap)) => (seq, Some(snap)),
            None => (0, None),
        };
        let snapshot_seq = from;
        let mut stmt = conn
            .prepare("SELECT seq, body FROM events WHERE tenant = ?1 AND seq > ?2 ORDER BY seq")?;
        let mut rows = stmt.query(params![tenant, from as i64])?;
        let mut events = Vec::new();
        let mut last_seq = from;
        while let Some(row) = rows.next()? {
            let seq = row.get::<_, i64>(0)? as u64;
            let body: String = row.get(1)?;
            events.push(decode_event(tenant, seq, &body)?);
            last_seq = seq;
        }
        let max: Option<i64> = conn.query_row(
            "SELECT MAX(seq) FROM events WHERE tenant = ?1",
            params![tenant],
            |r| r.get(0),
        )?;
        last_seq = last_seq.max(max.unwrap_or(0) as u64);
        Ok(Recovered {
            snapshot,
            snapshot_seq,
            events,
            last_seq,
        })
    }
}

/// A read-only connection to an existing database (never made here).
fn open_read_only(path: &Path) -> Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .with_context(|| format!("opening {} to read", path.display()))?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    Ok(conn)
}

fn sql(e: rusqlite::Error) -> StoreError {
    StoreError::failed(e)
}

fn read_epoch(conn: &Connection, tenant: &str) -> rusqlite::Result<u64> {
    let epoch: Option<i64> = conn
        .query_row(
            "SELECT epoch FROM epochs WHERE tenant = ?1",
            params![tenant],
            |r| r.get(0),
        )
        .optional()?;
    Ok(epoch.unwrap_or(0) as u64)
}

impl Store for SqliteStore {
    fn epoch(&self, tenant: &str) -> Result<u64, StoreError> {
        read_epoch(&self.conn(), tenant).map_err(sql)
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
            done: Some(done),
        });
        rx
    }

    fn outbox_pending(&self, tenant: &str) -> Result<Vec<OutboxRow>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare(
                "SELECT seq, n, conversation, message, channel, customer, author, text, at
                 FROM outbox WHERE tenant = ?1 ORDER BY seq, n",
            )
            .map_err(sql)?;
        let rows = stmt
            .query_map(params![tenant], |r| {
                Ok(OutboxRow {
                    id: OutboxId {
                        seq: r.get::<_, i64>(0)? as u64,
                        n: r.get::<_, i64>(1)? as u32,
                    },
                    conversation: r.get::<_, i64>(2)? as u64,
                    message: r.get::<_, i64>(3)? as u64,
                    channel: r.get(4)?,
                    customer: r.get(5)?,
                    author: r.get(6)?,
                    text: r.get(7)?,
                    at: r.get::<_, i64>(8)? as u64,
                })
            })
            .map_err(sql)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(sql)
    }

    fn outbox_sent(&self, tenant: &str, epoch: u64, ids: &[OutboxId]) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut conn = self.conn();
        // The epoch read and the delete in one transaction: a take-over
        // (the writer moving the epoch) waits for it, or comes first.
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(sql)?;
        let current = read_epoch(&tx, tenant).map_err(sql)?;
        if current != epoch {
            return Err(StoreError::StaleEpoch {
                tenant: tenant.to_string(),
                epoch,
                current,
            });
        }
        {
            let mut delete = tx
                .prepare_cached("DELETE FROM outbox WHERE tenant = ?1 AND seq = ?2 AND n = ?3")
                .map_err(sql)?;
            for id in ids {
                delete
                    .execute(params![tenant, id.seq as i64, i64::from(id.n)])
                    .map_err(sql)?;
            }
        }
        tx.commit().map_err(sql)
    }

    fn snapshot(&self, tenant: &str, epoch: u64, seq: u64, snapshot: Snapshot) -> Committed {
        let (done, rx) = tokio::sync::oneshot::channel();
        let tx = self.tx.clone();
        super::encode_snapshot_then(tenant.into(), snapshot, done, move |tenant, body, done| {
            let job = Job::Snapshot {
                tenant,
                epoch,
                seq,
                body,
                done: Some(done),
            };
            if let Err(mpsc::SendError(job)) = tx.send(job) {
                job.answer(Err(StoreError::Stopped));
            }
        });
        rx
    }

    fn recover(&self, tenant: &str) -> Result<Recovered, StoreError> {
        Self::recover_on(&self.conn(), tenant)
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
        let n: i64 = self
            .conn()
            .query_row(
                "SELECT COUNT(*) FROM snapshots WHERE tenant = ?1",
                params![tenant],
                |r| r.get(0),
            )
            .map_err(sql)?;
        Ok(usize::try_from(n).unwrap_or(0))
    }

    fn events_before(
        &self,
        tenant: &str,
        before: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Event)>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(
                "SELECT seq, body FROM events WHERE tenant = ?1 AND seq < ?2
                 ORDER BY seq DESC LIMIT ?3",
            )
            .map_err(sql)?;
        let before = i64::try_from(before).unwrap_or(i64::MAX);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut rows = stmt.query(params![tenant, before, limit]).map_err(sql)?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(sql)? {
            let seq = row.get::<_, i64>(0).map_err(sql)? as u64;
            let body: String = row.get(1).map_err(sql)?;
            out.push((seq, decode_event(tenant, seq, &body)?));
        }
        Ok(out)
    }

    fn journal(
        &self,
        tenant: &str,
        visit: &mut dyn FnMut(u64, Event) -> ControlFlow<()>,
    ) -> Result<(), StoreError> {
        // A connection of its own: the shared one stays free for the
        // server's other reads while a long journal is read, and one
        // statement reads one consistent view, row by row.
        let conn = open_read_only(&self.path)?;
        let mut stmt =
            conn.prepare("SELECT seq, body FROM events WHERE tenant = ?1 ORDER BY seq")?;
        let mut rows = stmt.query(params![tenant])?;
        while let Some(row) = rows.next()? {
            let seq = row.get::<_, i64>(0)? as u64;
            let body = row
                .get_ref(1)?
                .as_str()
                .map_err(|e| StoreError::unreadable(tenant, seq, e))?;
            if visit(seq, decode_event(tenant, seq, body)?).is_break() {
                break;
            }
        }
        Ok(())
    }

    fn conversation_events(
        &self,
        tenant: &str,
        conversation: u64,
    ) -> Result<Vec<String>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(
                "SELECT body FROM events WHERE tenant = ?1 AND conversation = ?2 ORDER BY seq",
            )
            .map_err(sql)?;
        let rows = stmt
            .query_map(params![tenant, conversation as i64], |r| r.get(0))
            .map_err(sql)?;
        rows.collect::<Result<Vec<String>, _>>().map_err(sql)
    }

    fn save_session(&self, s: &StoredSession) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT OR REPLACE INTO sessions (token_hash, tenant, agent, expires_at) VALUES (?1, ?2, ?3, ?4)",
            params![s.token_hash, s.tenant, s.agent, s.expires_at as i64],
        ).map_err(sql)?;
        Ok(())
    }

    fn delete_session(&self, token_hash: &str) -> Result<(), StoreError> {
        self.conn()
            .execute(
                "DELETE FROM sessions WHERE token_hash = ?1",
                params![token_hash],
            )
            .map_err(sql)?;
        Ok(())
    }

    fn live_sessions(&self, now: Millis) -> Result<Vec<StoredSession>, StoreError> {
        let conn = self.conn();
        conn.execute(
            "DELETE FROM sessions WHERE expires_at <= ?1",
            params![now as i64],
        )
        .map_err(sql)?;
        let mut stmt = conn
            .prepare("SELECT token_hash, tenant, agent, expires_at FROM sessions")
            .map_err(sql)?;
        let rows = stmt
            .query_map([], |r| {
                Ok(StoredSession {
                    token_hash: r.get(0)?,
                    tenant: r.get(1)?,
                    agent: r.get(2)?,
                    expires_at: r.get::<_, i64>(3)? as u64,
                })
            })
            .map_err(sql)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(sql)
    }

    fn secret(&self, name: &str, fresh: &[u8]) -> Result<Vec<u8>, StoreError> {
        let conn = self.conn();
        conn.execute(
            "INSERT OR IGNORE INTO secrets (name, value) VALUES (?1, ?2)",
            params![name, fresh],
        )
        .map_err(sql)?;
        conn.query_row(
            "SELECT value FROM secrets WHERE name = ?1",
            params![name],
            |r| r.get(0),
        )
        .map_err(sql)
    }

    fn fail_next_commit(&self) {
        self.fail_next.store(true, Ordering::SeqCst);
    }
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

    /// Answer the job without doing it (refused, or the writer stopped).
    fn answer(self, result: Result<(), StoreError>) {
        match self {
            Job::Append { done: Some(d), .. } | Job::Snapshot { done: Some(d), .. } => {
                let _ = d.send(result);
            }
            Job::Resync { reply, .. } => {
                let _ = reply.send(result.and(Err(StoreError::Stopped)));
            }
            Job::AdvanceEpoch { reply, .. } => {
                let _ = reply.send(result.and(Err(StoreError::Stopped)));
            }
            _ => {}
        }
    }
}

/// A stored snapshot: CBOR, or JSON text from before.
fn decode_snapshot(body: rusqlite::types::ValueRef<'_>) -> Result<Snapshot> {
    use rusqlite::types::ValueRef;
    match body {
        ValueRef::Blob(b) => ciborium::from_reader(b).context("decoding a CBOR snapshot"),
        ValueRef::Text(t) => serde_json::from_slice(t).context("decoding a JSON snapshot"),
        _ => Err(StoreError::failed("a snapshot is neither CBOR nor JSON")),
    }
}

/// What the writer thread keeps between groups.
struct Writer {
    conn: Connection,
    /// Tenants whose last commit failed: their jobs are refused until they
    /// resync.
    failed: HashSet<Arc<str>>,
    /// Each tenant's epoch, read once then kept (only the writer moves it).
    epochs: HashMap<Arc<str>, u64>,
    fail_next: Arc<AtomicBool>,
}

impl Writer {
    fn epoch(&mut self, tenant: &Arc<str>) -> Result<u64, StoreError> {
        if let Some(e) = self.epochs.get(tenant) {
            return Ok(*e);
        }
        let e = read_epoch(&self.conn, tenant).map_err(sql)?;
        self.epochs.insert(tenant.clone(), e);
        Ok(e)
    }

    fn advance_epoch(&mut self, tenant: &Arc<str>) -> Result<u64, StoreError> {
        let next = self.epoch(tenant)? + 1;
        self.conn
            .execute(
                "INSERT INTO epochs (tenant, epoch) VALUES (?1, ?2)
                 ON CONFLICT (tenant) DO UPDATE SET epoch = excluded.epoch",
                params![tenant.as_ref(), next as i64],
            )
            .map_err(sql)?;
        self.epochs.insert(tenant.clone(), next);
        Ok(next)
    }

    /// Why `job` may not be committed, if it may not.
    fn refusal(&mut self, job: &Job) -> Option<StoreError> {
        let tenant = job.tenant().clone();
        if self.failed.contains(&tenant) {
            return Some(StoreError::Closed);
        }
        let epoch = match job {
            Job::Append { epoch, .. } | Job::Snapshot { epoch, .. } => *epoch,
            _ => return None,
        };
        match self.epoch(&tenant) {
            Ok(current) if current == epoch => None,
            Ok(current) => Some(StoreError::StaleEpoch {
                tenant: tenant.to_string(),
                epoch,
                current,
            }),
            Err(e) => Some(e),
        }
    }
}

fn write_loop(conn: Connection, rx: mpsc::Receiver<Job>, fail_next: Arc<AtomicBool>) {
    let mut w = Writer {
        conn,
        failed: HashSet::new(),
        epochs: HashMap::new(),
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
                    let read = SqliteStore::recover_on(&w.conn, &tenant);
                    if read.is_ok() {
                        w.failed.remove(&tenant);
                    }
                    let _ = reply.send(read);
                }
                Job::AdvanceEpoch { tenant, reply } => {
                    settle(&mut w, std::mem::take(&mut batch));
                    let _ = reply.send(w.advance_epoch(&tenant));
                }
                job => batch.push(job),
            }
        }
        settle(&mut w, batch);
    }
}

/// Commit one group of jobs, then run their `after_commit`s and answer
/// them; jobs of a tenant that failed before or under another epoch are
/// refused, and a failed commit marks every tenant in it.
fn settle(w: &mut Writer, jobs: Vec<Job>) {
    if jobs.is_empty() {
        return;
    }
    let mut accepted = Vec::with_capacity(jobs.len());
    for job in jobs {
        match w.refusal(&job) {
            Some(e) => job.answer(Err(e)),
            None => accepted.push(job),
        }
    }
    let jobs = accepted;
    if jobs.is_empty() {
        return;
    }
    let result = if w.fail_next.swap(false, Ordering::SeqCst) {
        Err(StoreError::Failed("commit failed (test hook)".into()))
    } else {
        commit(&mut w.conn, &jobs)
    };
    if let Err(e) = &result {
        tracing::error!(error = %e, jobs = jobs.len(), "journal commit failed");
        w.failed.extend(jobs.iter().map(|j| j.tenant().clone()));
    }
    for job in jobs {
        match job {
            Job::Append {
                after_commit, done, ..
            } => {
                if result.is_ok() {
                    after_commit();
                }
                if let Some(d) = done {
                    let _ = d.send(result.clone());
                }
            }
            Job::Snapshot { done: Some(d), .. } => {
                let _ = d.send(result.clone());
            }
            _ => {}
        }
    }
}

fn commit(conn: &mut Connection, jobs: &[Job]) -> Result<()> {
    let tx = conn.transaction()?;
    {
        let mut ev = tx.prepare_cached(
            "INSERT INTO events (tenant, seq, type, conversation, body) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        let mut snap = tx.prepare_cached(
            "INSERT OR REPLACE INTO snapshots (tenant, seq, body) VALUES (?1, ?2, ?3)",
        )?;
        let mut out = tx.prepare_cached(
            "INSERT INTO outbox (tenant, seq, n, conversation, message, channel, customer,
                                 author, text, at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )?;
        let mut prune = tx.prepare_cached(
            "DELETE FROM snapshots WHERE tenant = ?1 AND seq NOT IN
                 (SELECT seq FROM snapshots WHERE tenant = ?1 ORDER BY seq DESC LIMIT ?2)",
        )?;
        for job in jobs {
            match job {
                Job::Append {
                    tenant,
                    rows,
                    outbox,
                    ..
                } => {
                    for r in rows {
                        ev.execute(params![
                            tenant.as_ref(),
                            r.seq as i64,
                            r.kind,
                            r.conversation.map(|c| c as i64),
                            r.body
                        ])?;
                    }
                    for o in outbox {
                        out.execute(params![
                            tenant.as_ref(),
                            o.id.seq as i64,
                            i64::from(o.id.n),
                            o.conversation as i64,
                            o.message as i64,
                            o.channel,
                            o.customer,
                            o.author,
                            o.text,
                            o.at as i64
                        ])?;
                    }
                }
                Job::Snapshot {
                    tenant, seq, body, ..
                } => {
                    snap.execute(params![tenant.as_ref(), *seq as i64, body])?;
                    prune.execute(params![tenant.as_ref(), SNAPSHOTS_KEPT as i64])?;
                }
                Job::Resync { .. } | Job::AdvanceEpoch { .. } => {}
            }
        }
    }
    tx.commit()?;
    Ok(())
}
