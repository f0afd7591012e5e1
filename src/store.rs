//! The journal in SQLite: every event of every tenant, appended in order,
//! committed before anyone is told (group commit), plus snapshots for fast
//! start-up and agent sessions.
//!
//! Snapshots are CBOR (older ones, JSON text, are still read), encoded on
//! a thread of their own from a copy of the state, and only the latest
//! [`SNAPSHOTS_KEPT`] of a tenant are kept: the journal is never pruned,
//! so an unreadable snapshot only means a longer replay.
//!
//! **Invariant:** a caller is answered (a webhook acknowledged, an agent's
//! action confirmed) only after its events are committed; subscribers are
//! told only after the commit too, in journal order, by the writer thread.
//! **Invariant:** after a failed commit, nothing more of that tenant is
//! committed until it resynchronizes ([`Journal::resync`]): the tenant
//! rebuilds its engine from what the journal holds, so memory is never
//! ahead of the journal and no later event builds on a lost one
//! (`tests/durability.rs`).
//! **Boundary:** the store knows events as JSON; it does not interpret them
//! (recovery deserializes them into core's `Event`).

use anyhow::{Context, Result};
use rusqlite::{params, Connection};
use std::collections::HashSet;
use std::path::Path;
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
         CREATE TABLE IF NOT EXISTS secrets (
             name TEXT PRIMARY KEY,
             value BLOB NOT NULL
         );",
    )
    .context("creating tables")?;
    Ok(conn)
}

/// One event ready to be written.
#[derive(Debug)]
pub struct Row {
    pub seq: u64,
    pub kind: &'static str,
    pub conversation: Option<u64>,
    pub body: String,
}

type AfterCommit = Box<dyn FnOnce() + Send>;
type Done = tokio::sync::oneshot::Sender<Result<(), String>>;

enum Job {
    Append {
        tenant: Arc<str>,
        rows: Vec<Row>,
        after_commit: AfterCommit,
        done: Option<Done>,
    },
    Snapshot {
        tenant: Arc<str>,
        seq: u64,
        body: Vec<u8>,
        done: Option<Done>,
    },
    /// After a failed commit: read what the journal holds of the tenant
    /// (everything queued before this job is settled by then) and let its
    /// appends through again.
    Resync {
        tenant: Arc<str>,
        reply: mpsc::Sender<Result<Recovered, String>>,
    },
}

/// Handle to the writer thread. Cheap to clone.
#[derive(Clone)]
pub struct Journal {
    tx: mpsc::SyncSender<Job>,
    /// Test hook (`test_clock` servers only): fail the next commit.
    fail_next: Arc<AtomicBool>,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Journal")
    }
}

/// What a tenant had in the journal at start-up.
#[derive(Debug, Default)]
pub struct Recovered {
    pub snapshot: Option<Snapshot>,
    pub events: Vec<Event>,
    pub last_seq: u64,
}

/// The database: recovery reads and session storage on one connection; the
/// journal writer has its own.
pub struct Store {
    conn: std::sync::Mutex<Connection>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Store")
    }
}

impl Store {
    /// Open (or create) `dir/switchboard.db` and start the journal writer.
    pub fn open(dir: &Path, sync: SyncMode) -> Result<(Store, Journal)> {
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
        Ok((
            Store {
                conn: std::sync::Mutex::new(conn),
            },
            Journal { tx, fail_next },
        ))
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        // Every use is a single statement: a panic elsewhere cannot leave
        // the connection half-used, so a poisoned lock is still sound.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How many snapshots of `tenant` are stored.
    pub fn snapshot_count(&self, tenant: &str) -> Result<usize> {
        let n: i64 = self.conn().query_row(
            "SELECT COUNT(*) FROM snapshots WHERE tenant = ?1",
            params![tenant],
            |r| r.get(0),
        )?;
        Ok(usize::try_from(n).unwrap_or(0))
    }

    /// Read a tenant's latest readable snapshot and the events after it.
    pub fn recover(&self, tenant: &str) -> Result<Recovered> {
        Self::recover_on(&self.conn(), tenant)
    }

    /// [`Store::recover`] on a given connection (the writer's, to resync).
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
        let mut stmt = conn
            .prepare("SELECT seq, body FROM events WHERE tenant = ?1 AND seq > ?2 ORDER BY seq")?;
        let mut rows = stmt.query(params![tenant, from as i64])?;
        let mut events = Vec::new();
        let mut last_seq = from;
        while let Some(row) = rows.next()? {
            let seq = row.get::<_, i64>(0)? as u64;
            let body: String = row.get(1)?;
            let ev: Event = serde_json::from_str(&body)
                .with_context(|| format!("tenant {tenant}: event {seq} is unreadable"))?;
            events.push(ev);
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
            events,
            last_seq,
        })
    }

    /// The events of one conversation, in order (JSON bodies).
    pub fn conversation_events(&self, tenant: &str, conversation: u64) -> Result<Vec<String>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT body FROM events WHERE tenant = ?1 AND conversation = ?2 ORDER BY seq",
        )?;
        let rows = stmt.query_map(params![tenant, conversation as i64], |r| r.get(0))?;
        Ok(rows.collect::<Result<Vec<String>, _>>()?)
    }

    pub fn save_session(
        &self,
        token_hash: &str,
        tenant: &str,
        agent: &str,
        expires_at: Millis,
    ) -> Result<()> {
        self.conn().execute(
            "INSERT OR REPLACE INTO sessions (token_hash, tenant, agent, expires_at) VALUES (?1, ?2, ?3, ?4)",
            params![token_hash, tenant, agent, expires_at as i64],
        )?;
        Ok(())
    }

    pub fn delete_session(&self, token_hash: &str) -> Result<()> {
        self.conn().execute(
            "DELETE FROM sessions WHERE token_hash = ?1",
            params![token_hash],
        )?;
        Ok(())
    }

    /// The server secret `name`, created from `fresh` the first time (the
    /// first writer wins, so every process sharing the database agrees).
    pub fn secret(&self, name: &str, fresh: &[u8]) -> Result<Vec<u8>> {
        let conn = self.conn();
        conn.execute(
            "INSERT OR IGNORE INTO secrets (name, value) VALUES (?1, ?2)",
            params![name, fresh],
        )?;
        Ok(conn.query_row(
            "SELECT value FROM secrets WHERE name = ?1",
            params![name],
            |r| r.get(0),
        )?)
    }

    /// Sessions still valid at `now`: (token hash, tenant, agent, expiry).
    pub fn live_sessions(&self, now: Millis) -> Result<Vec<(String, String, String, Millis)>> {
        let conn = self.conn();
        conn.execute(
            "DELETE FROM sessions WHERE expires_at <= ?1",
            params![now as i64],
        )?;
        let mut stmt =
            conn.prepare("SELECT token_hash, tenant, agent, expires_at FROM sessions")?;
        let rows = stmt.query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get::<_, i64>(3)? as u64))
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }
}

impl Journal {
    /// Queue `rows` for the next commit; `after_commit` runs on the writer
    /// thread right after it (in journal order), then `done` is answered.
    /// Blocks only when the writer is far behind (back-pressure).
    pub fn append(
        &self,
        tenant: Arc<str>,
        rows: Vec<Row>,
        after_commit: AfterCommit,
    ) -> tokio::sync::oneshot::Receiver<Result<(), String>> {
        let (done, rx) = tokio::sync::oneshot::channel();
        let job = Job::Append {
            tenant,
            rows,
            after_commit,
            done: Some(done),
        };
        if let Err(mpsc::SendError(Job::Append { done: Some(d), .. })) = self.tx.send(job) {
            let _ = d.send(Err("the journal writer has stopped".into()));
        }
        rx
    }

    /// Store a snapshot taken after event `seq` (the caller's events up
    /// to `seq` are already handed to [`Journal::append`]). It is encoded
    /// on a thread of its own, so neither the caller (holding the engine
    /// lock) nor the writer waits for that; the answer comes once it is
    /// stored, older snapshots of the tenant pruned.
    pub fn snapshot(
        &self,
        tenant: Arc<str>,
        seq: u64,
        snapshot: Snapshot,
    ) -> tokio::sync::oneshot::Receiver<Result<(), String>> {
        let (done, rx) = tokio::sync::oneshot::channel();
        let tx = self.tx.clone();
        let spawned = std::thread::Builder::new()
            .name("snapshot-encoder".into())
            .spawn(move || {
                let mut body = Vec::new();
                if let Err(e) = ciborium::into_writer(&snapshot, &mut body) {
                    tracing::error!(tenant = %tenant, error = %e, "snapshot failed");
                    let _ = done.send(Err(format!("encoding the snapshot: {e}")));
                    return;
                }
                drop(snapshot);
                let job = Job::Snapshot {
                    tenant,
                    seq,
                    body,
                    done: Some(done),
                };
                if let Err(mpsc::SendError(Job::Snapshot { done: Some(d), .. })) = tx.send(job) {
                    let _ = d.send(Err("the journal writer has stopped".into()));
                }
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "could not start the snapshot encoder");
        }
        rx
    }

    /// After a failed commit of `tenant`: once every job queued before
    /// this call is settled, read what the journal holds of the tenant and
    /// let its appends through again (until then they all fail, so nothing
    /// that builds on a lost event is committed). Blocks the calling
    /// thread until the writer answers: call it on the failure path only.
    pub fn resync(&self, tenant: Arc<str>) -> Result<Recovered, String> {
        let (reply, answer) = mpsc::channel();
        self.tx
            .send(Job::Resync { tenant, reply })
            .map_err(|_| "the journal writer has stopped".to_string())?;
        answer
            .recv()
            .map_err(|_| "the journal writer has stopped".to_string())?
    }

    /// Make the next commit fail (a test hook, behind `test_clock`).
    pub fn fail_next_commit(&self) {
        self.fail_next.store(true, Ordering::SeqCst);
    }
}

/// A stored snapshot: CBOR, or JSON text from before.
fn decode_snapshot(body: rusqlite::types::ValueRef<'_>) -> Result<Snapshot> {
    use rusqlite::types::ValueRef;
    match body {
        ValueRef::Blob(b) => ciborium::from_reader(b).context("decoding a CBOR snapshot"),
        ValueRef::Text(t) => serde_json::from_slice(t).context("decoding a JSON snapshot"),
        _ => anyhow::bail!("a snapshot is neither CBOR nor JSON"),
    }
}

fn write_loop(mut conn: Connection, rx: mpsc::Receiver<Job>, fail_next: Arc<AtomicBool>) {
    // Tenants whose last commit failed: their jobs are refused until they
    // resync.
    let mut failed: HashSet<Arc<str>> = HashSet::new();
    while let Ok(first) = rx.recv() {
        let mut jobs = vec![first];
        while jobs.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(j) => jobs.push(j),
                Err(_) => break,
            }
        }
        // A resync is a boundary: what is queued before it is settled first.
        let mut batch = Vec::new();
        for job in jobs {
            match job {
                Job::Resync { tenant, reply } => {
                    settle(
                        &mut conn,
                        std::mem::take(&mut batch),
                        &mut failed,
                        &fail_next,
                    );
                    let read = Store::recover_on(&conn, &tenant).map_err(|e| format!("{e:#}"));
                    if read.is_ok() {
                        failed.remove(&tenant);
                    }
                    let _ = reply.send(read);
                }
                job => batch.push(job),
            }
        }
        settle(&mut conn, batch, &mut failed, &fail_next);
    }
}

/// Commit one group of jobs, then run their `after_commit`s and answer
/// them; jobs of a tenant that failed before are refused, and a failed
/// commit marks every tenant in it.
fn settle(
    conn: &mut Connection,
    jobs: Vec<Job>,
    failed: &mut HashSet<Arc<str>>,
    fail_next: &AtomicBool,
) {
    if jobs.is_empty() {
        return;
    }
    let tenant_of = |job: &Job| match job {
        Job::Append { tenant, .. } | Job::Snapshot { tenant, .. } | Job::Resync { tenant, .. } => {
            tenant.clone()
        }
    };
    let (refused, jobs): (Vec<Job>, Vec<Job>) = jobs
        .into_iter()
        .partition(|j| failed.contains(&tenant_of(j)));
    for job in refused {
        match job {
            Job::Append { done: Some(d), .. } | Job::Snapshot { done: Some(d), .. } => {
                let _ = d.send(Err("an earlier commit of this tenant failed".into()));
            }
            _ => {}
        }
    }
    let result = if fail_next.swap(false, Ordering::SeqCst) {
        Err("commit failed (test hook)".to_string())
    } else {
        commit(conn, &jobs).map_err(|e| format!("{e:#}"))
    };
    if let Err(e) = &result {
        tracing::error!(error = %e, jobs = jobs.len(), "journal commit failed");
        failed.extend(jobs.iter().map(tenant_of));
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
        let mut prune = tx.prepare_cached(
            "DELETE FROM snapshots WHERE tenant = ?1 AND seq NOT IN
                 (SELECT seq FROM snapshots WHERE tenant = ?1 ORDER BY seq DESC LIMIT ?2)",
        )?;
        for job in jobs {
            match job {
                Job::Append { tenant, rows, .. } => {
                    for r in rows {
                        ev.execute(params![
                            tenant.as_ref(),
                            r.seq as i64,
                            r.kind,
                            r.conversation.map(|c| c as i64),
                            r.body
                        ])?;
                    }
                }
                Job::Snapshot {
                    tenant, seq, body, ..
                } => {
                    snap.execute(params![tenant.as_ref(), *seq as i64, body])?;
                    prune.execute(params![tenant.as_ref(), SNAPSHOTS_KEPT as i64])?;
                }
                Job::Resync { .. } => {}
            }
        }
    }
    tx.commit()?;
    Ok(())
}
