//! What every `Store` must do, written against the trait only: the journal
//! (order, fencing by epoch, nothing after a failed commit until resync),
//! snapshots, sessions and secrets. Each check takes a fresh store from an
//! opener and runs against SQLite and PostgreSQL (when a server answers,
//! see `pg_support`). Then the cluster part of the PostgreSQL store
//! (`ClusterStore`): membership, leases, fencing across nodes, migrations.

mod pg_support;
mod store_support;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use store_support::{customer, engine};
use switchboard::store::{
    ClusterStore, OutboxId, OutboxRow, PgStore, Row, SqliteStore, Store, StoreError, StoredSession,
    SyncMode, PG_SCHEMA_VERSION, SNAPSHOTS_KEPT,
};
use switchboard_core::engine::{Engine, Extensions};
use switchboard_core::Event;

/// A fresh, empty store and what to clean up after it (the store is
/// dropped first).
struct Opened {
    store: Arc<dyn Store>,
    dir: Option<PathBuf>,
    _db: Option<pg_support::PgDb>,
}

impl Drop for Opened {
    fn drop(&mut self) {
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// A fresh store, or `None` when its server is not there (PostgreSQL).
type Opener = fn(&str) -> Option<Opened>;

fn sqlite(tag: &str) -> Option<Opened> {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "switchboard-store-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let store = SqliteStore::open(&dir, SyncMode::Normal).expect("the store opens");
    Some(Opened {
        store: Arc::new(store),
        dir: Some(dir),
        _db: None,
    })
}

fn postgres(tag: &str) -> Option<Opened> {
    let db = pg_support::fresh_database(tag)?;
    let store = PgStore::open(&db.url).expect("the PostgreSQL store opens");
    Some(Opened {
        store: Arc::new(store),
        dir: None,
        _db: Some(db),
    })
}

/// Every store implementation, by name.
fn stores() -> Vec<(&'static str, Opener)> {
    vec![("sqlite", sqlite), ("postgres", postgres)]
}

/// Run `check` against a fresh store of every implementation.
fn for_each_store(tag: &str, check: impl Fn(&dyn Store)) {
    for_each_opened(tag, |opened| check(&*opened.store));
}

/// Run `check` against a fresh store of every implementation, with what
/// it was opened on.
fn for_each_opened(tag: &str, check: impl Fn(&Opened)) {
    for (name, open) in stores() {
        if let Some(opened) = open(&format!("{name}-{tag}")) {
            check(&opened);
        }
    }
}

impl Opened {
    /// The same store opened again for reading only, as `switchboard
    /// scripts replay` opens it beside a running server.
    fn read_only(&self) -> Box<dyn Store> {
        match (&self.dir, &self._db) {
            (Some(dir), _) => Box::new(SqliteStore::open_read_only(dir).expect("opens to read")),
            (None, Some(db)) => Box::new(PgStore::open_read_only(&db.url).expect("opens to read")),
            (None, None) => panic!("a store opened on nothing"),
        }
    }
}

/// The tenant's whole journal through [`Store::journal`], stopping after
/// `limit` events.
fn whole_journal(
    store: &dyn Store,
    tenant: &str,
    limit: usize,
) -> (Vec<(u64, Event)>, Result<(), StoreError>) {
    let mut read = Vec::new();
    let done = store.journal(tenant, &mut |seq, event| {
        read.push((seq, event));
        if read.len() >= limit {
            std::ops::ControlFlow::Break(())
        } else {
            std::ops::ControlFlow::Continue(())
        }
    });
    (read, done)
}

/// The events of customer `i`'s first message to `e`, as rows numbered
/// after `*seq`.
fn rows_of(e: &mut Engine, i: u64, seq: &mut u64) -> (Vec<Row>, Vec<Event>) {
    let out = e
        .handle(customer(i), 1_000 + i, &Extensions::builtin())
        .expect("accepted");
    let events: Vec<Event> = out.events().cloned().collect();
    let rows = events
        .iter()
        .map(|ev| {
            *seq += 1;
            Row {
                seq: *seq,
                kind: ev.type_name(),
                conversation: ev.conversation(),
                body: serde_json::to_string(ev).expect("event serializes"),
            }
        })
        .collect();
    (rows, events)
}

fn append(store: &dyn Store, tenant: &str, epoch: u64, rows: Vec<Row>) -> Result<(), StoreError> {
    store
        .append(tenant, epoch, rows, Box::new(|| {}))
        .blocking_recv()
        .unwrap_or(Err(StoreError::Stopped))
}

#[test]
fn appended_events_come_back_in_order_per_tenant() {
    for_each_store("order", |store| {
        let mut e = engine();
        let mut seq = 0;
        let mut all = Vec::new();
        for i in 0..5 {
            let (rows, events) = rows_of(&mut e, i, &mut seq);
            append(store, "acme", 0, rows).expect("committed");
            all.extend(events);
        }
        // Another tenant's events are not mixed in.
        let mut other_seq = 0;
        let (rows, _) = rows_of(&mut engine(), 9, &mut other_seq);
        append(store, "other", 0, rows).expect("committed");
        let back = store.recover("acme").expect("recovers");
        assert!(back.snapshot.is_none());
        assert_eq!(back.last_seq, seq);
        assert_eq!(back.events, all);
        let other = store.recover("other").expect("recovers");
        assert_eq!(other.last_seq, other_seq);
        assert!(store.recover("nobody").expect("recovers").events.is_empty());
        // A conversation's events, in order.
        let conv = all[0].conversation().expect("a conversation event");
        let bodies = store.conversation_events("acme", conv).expect("read");
        assert!(!bodies.is_empty());
        assert!(bodies.iter().all(|b| serde_json::from_str::<Event>(b)
            .expect("event")
            .conversation()
            == Some(conv)));
    });
}

#[test]
fn after_commit_runs_once_committed_and_never_for_a_refused_append() {
    for_each_store("after", |store| {
        let ran = Arc::new(AtomicUsize::new(0));
        let mut e = engine();
        let mut seq = 0;
        let (rows, _) = rows_of(&mut e, 1, &mut seq);
        let r = ran.clone();
        let answer = store.append(
            "acme",
            0,
            rows,
            Box::new(move || {
                r.fetch_add(1, Ordering::SeqCst);
            }),
        );
        assert_eq!(answer.blocking_recv(), Ok(Ok(())));
        assert_eq!(ran.load(Ordering::SeqCst), 1, "ran before the answer");
        let (rows, _) = rows_of(&mut e, 2, &mut seq);
        let r = ran.clone();
        let answer = store.append(
            "acme",
            7,
            rows,
            Box::new(move || {
                r.fetch_add(1, Ordering::SeqCst);
            }),
        );
        assert!(matches!(
            answer.blocking_recv(),
            Ok(Err(StoreError::StaleEpoch { .. }))
        ));
        assert_eq!(
            ran.load(Ordering::SeqCst),
            1,
            "not run for a refused append"
        );
    });
}

#[test]
fn after_commit_runs_in_journal_order_per_tenant_under_load() {
    for_each_store("ordered", |store| {
        let tenants = ["acme", "globex", "initech", "umbrella", "hooli", "stark"];
        let ran: Vec<Arc<std::sync::Mutex<Vec<u64>>>> = tenants
            .iter()
            .map(|_| Arc::new(std::sync::Mutex::new(Vec::new())))
            .collect();
        let mut engines: Vec<(Engine, u64)> = tenants.iter().map(|_| (engine(), 0)).collect();
        let mut answers = Vec::new();
        // Queued without waiting: many jobs of every tenant in flight.
        for i in 0..40 {
            for (t, tenant) in tenants.iter().enumerate() {
                let (e, seq) = &mut engines[t];
                let (rows, _) = rows_of(e, i, seq);
                let last = *seq;
                let log = ran[t].clone();
                answers.push(store.append(
                    tenant,
                    0,
                    rows,
                    Box::new(move || log.lock().expect("not poisoned").push(last)),
                ));
            }
        }
        for a in answers {
            assert_eq!(a.blocking_recv(), Ok(Ok(())));
        }
        for (t, tenant) in tenants.iter().enumerate() {
            let log = ran[t].lock().expect("not poisoned").clone();
            assert_eq!(log.len(), 40, "{tenant}");
            assert!(log.windows(2).all(|w| w[0] < w[1]), "{tenant}: {log:?}");
            let back = store.recover(tenant).expect("recovers");
            assert_eq!(back.last_seq, engines[t].1);
        }
    });
}

#[test]
fn a_stale_epoch_is_refused_and_nothing_of_it_is_stored() {
    for_each_store("epoch", |store| {
        assert_eq!(
            store.epoch("acme").expect("read"),
            0,
            "a new tenant is at 0"
        );
        let mut e = engine();
        let mut seq = 0;
        let (rows, _) = rows_of(&mut e, 1, &mut seq);
        append(store, "acme", 0, rows).expect("epoch 0 is the tenant's");
        let kept = seq;
        // A take-over moves the epoch on: the old owner is fenced out.
        assert_eq!(store.advance_epoch("acme").expect("taken over"), 1);
        assert_eq!(store.epoch("acme").expect("read"), 1);
        assert_eq!(store.epoch("other").expect("read"), 0, "per tenant");
        let (rows, _) = rows_of(&mut e, 2, &mut seq);
        let refused = append(store, "acme", 0, rows);
        assert_eq!(
            refused,
            Err(StoreError::StaleEpoch {
                tenant: "acme".into(),
                epoch: 0,
                current: 1
            })
        );
        let snap = store
            .snapshot("acme", 0, seq, e.snapshot())
            .blocking_recv()
            .expect("answered");
        assert!(matches!(snap, Err(StoreError::StaleEpoch { .. })));
        assert_eq!(store.snapshot_count("acme").expect("counted"), 0);
        assert_eq!(store.recover("acme").expect("recovers").last_seq, kept);
        // The new owner continues from what was kept.
        let mut seq = kept;
        let (rows, _) = rows_of(&mut engine(), 3, &mut seq);
        append(store, "acme", 1, rows).expect("the new epoch writes");
        assert_eq!(store.recover("acme").expect("recovers").last_seq, seq);
    });
}

/// A reply for the outbox, decided by the append whose last event is `seq`.
fn reply(seq: u64, n: u32, text: &str) -> OutboxRow {
    OutboxRow {
        id: OutboxId { seq, n },
        conversation: 1,
        message: u64::from(n) + 1,
        channel: "messenger".into(),
        customer: "psid-1".into(),
        author: "alice".into(),
        text: text.into(),
        at: 1_000 + seq,
    }
}

fn append_with_replies(
    store: &dyn Store,
    tenant: &str,
    epoch: u64,
    rows: Vec<Row>,
    replies: Vec<OutboxRow>,
) -> Result<(), StoreError> {
    store
        .append_with_outbox(tenant, epoch, rows, replies, Box::new(|| {}))
        .blocking_recv()
        .unwrap_or(Err(StoreError::Stopped))
}

#[test]
fn replies_are_pending_from_their_append_until_marked_sent_under_the_epoch() {
    for_each_store("outbox", |store| {
        let mut e = engine();
        let mut seq = 0;
        let (rows, _) = rows_of(&mut e, 0, &mut seq);
        let first = vec![reply(seq, 0, "héllo, raw"), reply(seq, 1, "second")];
        append_with_replies(store, "acme", 0, rows, first.clone()).expect("committed");
        let (rows, _) = rows_of(&mut e, 1, &mut seq);
        let later = reply(seq, 0, "third");
        append_with_replies(store, "acme", 0, rows, vec![later.clone()]).expect("committed");
        // Pending after the append, in order, as written; another
        // tenant's outbox is its own.
        let mut all = first.clone();
        all.push(later.clone());
        assert_eq!(store.outbox_pending("acme").expect("read"), all);
        assert!(store.outbox_pending("other").expect("read").is_empty());

        // Marked sent: no longer pending (and marking again is harmless).
        store
            .outbox_sent("acme", 0, &[first[0].id])
            .expect("marked");
        store
            .outbox_sent("acme", 0, &[first[0].id])
            .expect("marked again");
        assert_eq!(
            store.outbox_pending("acme").expect("read"),
            vec![first[1].clone(), later.clone()]
        );

        // After a take-over, the old epoch marks nothing: the new owner
        // still finds the reply pending.
        let epoch = store.advance_epoch("acme").expect("advanced");
        assert!(matches!(
            store.outbox_sent("acme", 0, &[first[1].id]),
            Err(StoreError::StaleEpoch { .. })
        ));
        assert_eq!(
            store.outbox_pending("acme").expect("read"),
            vec![first[1].clone(), later.clone()]
        );
        store
            .outbox_sent("acme", epoch, &[first[1].id])
            .expect("marked");
        store
            .outbox_sent("acme", epoch, &[later.id])
            .expect("marked");
        assert!(store.outbox_pending("acme").expect("read").is_empty());

        // An append refused for its epoch leaves nothing in the outbox.
        let (rows, _) = rows_of(&mut e, 2, &mut seq);
        let refused = append_with_replies(store, "acme", 0, rows, vec![reply(seq, 0, "lost")]);
        assert!(matches!(refused, Err(StoreError::StaleEpoch { .. })));
        assert!(store.outbox_pending("acme").expect("read").is_empty());

        // A failed commit stores neither the events nor the replies.
        store.fail_next_commit();
        let (rows, _) = rows_of(&mut e, 3, &mut seq);
        let failed = append_with_replies(store, "acme", epoch, rows, vec![reply(seq, 0, "x")]);
        assert!(failed.is_err());
        assert!(store.outbox_pending("acme").expect("read").is_empty());
    });
}

#[test]
fn after_a_failed_commit_the_tenant_is_closed_until_it_resyncs() {
    for_each_store("failed", |store| {
        let mut e = engine();
        let mut seq = 0;
        let (rows, _) = rows_of(&mut e, 1, &mut seq);
        append(store, "acme", 0, rows).expect("committed");
        let kept = seq;
        store.fail_next_commit();
        let (rows, _) = rows_of(&mut e, 2, &mut seq);
        assert!(matches!(
            append(store, "acme", 0, rows),
            Err(StoreError::Failed(_))
        ));
        // Later appends would build on the lost events: refused.
        let (rows, _) = rows_of(&mut e, 3, &mut seq);
        assert_eq!(append(store, "acme", 0, rows), Err(StoreError::Closed));
        // Other tenants are not held back.
        let mut other = 0;
        let (rows, _) = rows_of(&mut engine(), 4, &mut other);
        append(store, "other", 0, rows).expect("another tenant commits");
        let back = store.resync("acme").expect("resyncs");
        assert_eq!(back.last_seq, kept, "nothing of the failed commit");
        let mut seq = kept;
        let (rows, _) = rows_of(&mut engine(), 5, &mut seq);
        append(store, "acme", 0, rows).expect("open again after the resync");
    });
}

#[test]
fn recovery_starts_from_the_latest_snapshot_and_only_the_latest_are_kept() {
    for_each_store("snapshots", |store| {
        let mut e = engine();
        let mut seq = 0;
        for i in 0..5 {
            let (rows, _) = rows_of(&mut e, i, &mut seq);
            append(store, "acme", 0, rows).expect("committed");
            let stored = store.snapshot("acme", 0, seq, e.snapshot()).blocking_recv();
            assert_eq!(stored, Ok(Ok(())));
            assert!(store.snapshot_count("acme").expect("counted") <= SNAPSHOTS_KEPT);
        }
        let snap_seq = seq;
        let (rows, events) = rows_of(&mut e, 99, &mut seq);
        append(store, "acme", 0, rows).expect("committed");
        let back = store.recover("acme").expect("recovers");
        let snap = back.snapshot.expect("a snapshot");
        assert_eq!(snap.conversations.len(), 5);
        assert_eq!(back.events, events, "only what came after seq {snap_seq}");
        assert_eq!(back.snapshot_seq, snap_seq);
        assert_eq!(back.last_seq, seq);
    });
}

#[test]
fn the_journal_reads_backwards_in_pages_down_to_its_start() {
    for_each_store("backwards", |store| {
        let mut e = engine();
        let mut seq = 0;
        let mut all = Vec::new();
        for i in 0..6 {
            let (rows, events) = rows_of(&mut e, i, &mut seq);
            append(store, "acme", 0, rows).expect("committed");
            all.extend(events);
        }
        // Another tenant's events never come back.
        let (rows, _) = rows_of(&mut engine(), 9, &mut 0);
        append(store, "other", 0, rows).expect("committed");
        assert!(seq > 6, "several events per customer");
        // Pages of 4 from the middle down to the start: every event before
        // it exactly once, numbered, the latest first.
        let middle = seq / 2 + 1;
        let mut read = Vec::new();
        let mut before = middle;
        loop {
            let page = store.events_before("acme", before, 4).expect("read");
            assert!(page.len() <= 4);
            let Some(&(last, _)) = page.last() else {
                break;
            };
            assert!(page.windows(2).all(|w| w[0].0 > w[1].0), "latest first");
            read.extend(page);
            before = last;
        }
        let seqs: Vec<u64> = read.iter().map(|(s, _)| *s).collect();
        assert_eq!(seqs, (1..middle).rev().collect::<Vec<u64>>());
        let events: Vec<Event> = read.into_iter().rev().map(|(_, ev)| ev).collect();
        assert_eq!(events, all[..(middle - 1) as usize].to_vec());
        // Past the end: the latest events; nothing before the first.
        let tail = store.events_before("acme", u64::MAX, 2).expect("read");
        assert_eq!(
            tail.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
            vec![seq, seq - 1]
        );
        assert!(store.events_before("acme", 1, 10).expect("read").is_empty());
        assert!(store
            .events_before("nobody", u64::MAX, 10)
            .expect("read")
            .is_empty());
    });
}

#[test]
fn the_whole_journal_reads_forwards_in_order_from_the_writer_or_a_reader() {
    for_each_opened("journal", |opened| {
        let store = &*opened.store;
        // More events than a page of the PostgreSQL read (5,000), in
        // appends of many rows each.
        let mut e = engine();
        let mut seq = 0;
        let mut all = Vec::new();
        let mut i = 0;
        while all.len() < 12_000 {
            let mut rows = Vec::new();
            for _ in 0..500 {
                let (r, events) = rows_of(&mut e, i, &mut seq);
                rows.extend(r);
                all.extend(events);
                i += 1;
            }
            append(store, "acme", 0, rows).expect("committed");
        }
        let (rows, _) = rows_of(&mut engine(), 9, &mut 0);
        append(store, "other", 0, rows).expect("committed");
        let reader = opened.read_only();
        for store in [store, &*reader] {
            // Every event once, numbered from 1, in order; no other
            // tenant's.
            let (read, done) = whole_journal(store, "acme", usize::MAX);
            assert_eq!(done, Ok(()));
            let seqs: Vec<u64> = read.iter().map(|(s, _)| *s).collect();
            assert_eq!(seqs, (1..=seq).collect::<Vec<u64>>());
            assert!(read.iter().map(|(_, e)| e).eq(all.iter()));
            // Stopped when asked, mid-page or right at a page's end.
            for limit in [3, 5_000] {
                let (read, done) = whole_journal(store, "acme", limit);
                assert_eq!(done, Ok(()));
                assert_eq!(read.len(), limit);
                assert_eq!(read.last().map(|(s, _)| *s), Some(limit as u64));
            }
            let (read, done) = whole_journal(store, "nobody", usize::MAX);
            assert_eq!((read.len(), done), (0, Ok(())));
        }
        // Reading moved no epoch, and the reader writes nothing.
        assert_eq!(store.epoch("acme").expect("read"), 0);
        let (rows, _) = rows_of(&mut e, i, &mut seq.clone());
        assert!(append(&*reader, "acme", 0, rows).is_err());
        assert_eq!(store.advance_epoch("acme").expect("moves"), 1);
        assert!(reader.advance_epoch("acme").is_err());
        assert_eq!(store.epoch("acme").expect("read"), 1);
        assert_eq!(
            whole_journal(&*reader, "acme", usize::MAX).0.len(),
            all.len()
        );
    });
}

#[test]
fn an_unreadable_journal_event_is_named_by_tenant_and_number() {
    for_each_store("unreadable", |store| {
        let mut seq = 0;
        let (mut rows, events) = rows_of(&mut engine(), 1, &mut seq);
        let bad = seq + 1;
        rows.push(Row {
            seq: bad,
            kind: "offer",
            conversation: None,
            body: "{\"type\": \"no_such_event\"}".into(),
        });
        append(store, "acme", 0, rows).expect("the store does not read what it keeps");
        let (read, done) = whole_journal(store, "acme", usize::MAX);
        assert!(
            read.iter().map(|(_, e)| e).eq(events.iter()),
            "those before it"
        );
        match done {
            Err(e @ StoreError::Unreadable { .. }) => {
                let text = e.to_string();
                assert!(
                    text.contains(&format!("journal event {bad} of tenant acme")),
                    "{text}"
                );
            }
            other => panic!("not an unreadable event: {other:?}"),
        }
    });
}

#[test]
fn sessions_live_until_they_expire_or_are_deleted() {
    for_each_store("sessions", |store| {
        let session = |hash: &str, expires_at| StoredSession {
            token_hash: hash.into(),
            tenant: "acme".into(),
            agent: "alice".into(),
            expires_at,
        };
        store.save_session(&session("a", 1_000)).expect("saved");
        store.save_session(&session("b", 5_000)).expect("saved");
        store.save_session(&session("c", 5_000)).expect("saved");
        store.delete_session("c").expect("deleted");
        assert_eq!(
            store.live_sessions(2_000).expect("read"),
            vec![session("b", 5_000)]
        );
        // Saving again replaces (a renewed expiry).
        store.save_session(&session("b", 9_000)).expect("saved");
        assert_eq!(
            store.live_sessions(6_000).expect("read"),
            vec![session("b", 9_000)]
        );
        assert!(store.live_sessions(9_000).expect("read").is_empty());
    });
}

#[test]
fn a_secret_is_created_once_and_the_first_writer_wins() {
    for_each_store("secrets", |store| {
        let first = store.secret("key", &[1; 32]).expect("created");
        assert_eq!(first, vec![1; 32]);
        let again = store.secret("key", &[2; 32]).expect("read");
        assert_eq!(again, first);
        assert_eq!(
            store.secret("other", &[3; 32]).expect("created"),
            vec![3; 32]
        );
    });
}

/// The test database helper itself: a fresh database is empty and usable,
/// and gone once its guard is dropped.
#[test]
fn a_fresh_test_database_is_created_and_dropped_again() {
    let Some(db) = pg_support::fresh_database("helper") else {
        return;
    };
    let name = db.name.clone();
    let url = db.url.clone();
    let admin = pg_support::with_database(&url, "postgres");
    let count = move |url: String, name: String| {
        std::thread::spawn(move || {
            let mut c = postgres::Client::connect(&url, postgres::NoTls).expect("connects");
            let row = c
                .query_one(
                    "SELECT COUNT(*) FROM pg_database WHERE datname = $1",
                    &[&name],
                )
                .expect("counted");
            row.get::<_, i64>(0)
        })
        .join()
        .expect("no panic")
    };
    assert_eq!(count(url.clone(), name.clone()), 1);
    drop(db);
    assert_eq!(count(admin, name), 0);
}

// ---- The cluster part of the PostgreSQL store ----
//
// No test here waits for time to pass: a lease of 0 ms has run out by the
// next statement (the database's clock never goes back between two
// statements), and an old heartbeat is made by moving it back in the table.

/// A minute: longer than any of these tests.
const RUNNING: u64 = 60_000;

/// Two nodes' stores on one fresh database, or `None` without a server.
fn two_nodes(tag: &str) -> Option<(pg_support::PgDb, PgStore, PgStore)> {
    let db = pg_support::fresh_database(tag)?;
    let a = PgStore::open(&db.url).expect("node a opens");
    let b = PgStore::open(&db.url).expect("node b opens");
    Some((db, a, b))
}

/// Run one statement on `url` straight through the client (on a thread of
/// its own, as the client needs), for what the traits cannot do: age a
/// heartbeat, count rows.
fn raw(url: &str, statement: &str) -> i64 {
    let (url, statement) = (url.to_string(), statement.to_string());
    std::thread::spawn(move || {
        let mut c = postgres::Client::connect(&url, postgres::NoTls).expect("connects");
        match c.query_opt(statement.as_str(), &[]).expect("runs") {
            Some(row) => row.try_get::<_, i64>(0).unwrap_or(0),
            None => 0,
        }
    })
    .join()
    .expect("no panic")
}

fn lease_of(store: &PgStore, tenant: &str) -> switchboard::store::LeaseRow {
    store
        .leases()
        .expect("read")
        .into_iter()
        .find(|l| l.tenant == tenant)
        .expect("the tenant has a row")
}

#[test]
fn nodes_are_live_while_their_heartbeat_is_recent_and_gone_once_they_leave() {
    let Some((db, a, b)) = two_nodes("nodes") else {
        return;
    };
    a.heartbeat("a", "http://a:1").expect("beats");
    b.heartbeat("b", "http://b:1").expect("beats");
    let live = b.live_nodes(RUNNING).expect("read");
    let ids: Vec<_> = live
        .iter()
        .map(|n| (n.id.as_str(), n.url.as_str()))
        .collect();
    assert_eq!(ids, vec![("a", "http://a:1"), ("b", "http://b:1")]);
    assert_eq!(
        live[0].heartbeat_at,
        live[0].heartbeat_at.max(1),
        "a real time"
    );
    // A heartbeat updates the row (a new address too).
    a.heartbeat("a", "http://a:2").expect("beats");
    assert_eq!(a.live_nodes(RUNNING).expect("read")[0].url, "http://a:2");
    // b's last heartbeat two minutes ago: not live within a minute, still
    // within three.
    raw(
        &db.url,
        "UPDATE sb_nodes SET heartbeat_at = heartbeat_at - 120000 WHERE id = 'b'",
    );
    let ids = |nodes: Vec<switchboard::store::NodeRow>| -> Vec<String> {
        nodes.into_iter().map(|n| n.id).collect()
    };
    assert_eq!(ids(a.live_nodes(RUNNING).expect("read")), vec!["a"]);
    assert_eq!(
        ids(a.live_nodes(3 * RUNNING).expect("read")),
        vec!["a", "b"]
    );
    a.leave("a").expect("left");
    assert_eq!(ids(b.live_nodes(3 * RUNNING).expect("read")), vec!["b"]);
}

#[test]
fn a_running_lease_keeps_the_tenant_and_a_released_one_is_taken_at_once() {
    let Some((_db, a, b)) = two_nodes("leases") else {
        return;
    };
    assert_eq!(a.acquire("acme", "a", RUNNING).expect("asked"), Some(1));
    assert_eq!(
        b.acquire("acme", "b", RUNNING).expect("asked"),
        None,
        "a's lease runs"
    );
    let lease = lease_of(&b, "acme");
    assert_eq!(lease.owner.as_deref(), Some("a"));
    assert_eq!(lease.epoch, 1);
    assert!(lease.until >= lease.since + RUNNING, "{lease:?}");
    assert!(a.renew("acme", "a", 1, RUNNING).expect("renewed"));
    // Released by a wrong node or under a wrong epoch: nothing happens.
    b.release("acme", "b", 1).expect("asked");
    a.release("acme", "a", 7).expect("asked");
    assert_eq!(b.acquire("acme", "b", RUNNING).expect("asked"), None);
    // A hand-over: taken at once, the epoch moves on.
    a.release("acme", "a", 1).expect("released");
    assert_eq!(lease_of(&b, "acme").owner, None);
    assert_eq!(b.acquire("acme", "b", RUNNING).expect("asked"), Some(2));
    assert_eq!(b.epoch("acme").expect("read"), 2, "the store's epoch");
    // A node leaving releases all it holds.
    assert_eq!(b.acquire("globex", "b", RUNNING).expect("asked"), Some(1));
    b.heartbeat("b", "http://b").expect("beats");
    b.leave("b").expect("left");
    assert_eq!(a.acquire("acme", "a", RUNNING).expect("asked"), Some(3));
    assert_eq!(a.acquire("globex", "a", RUNNING).expect("asked"), Some(2));
    // Every tenant's lease, by tenant.
    let all: Vec<_> = a
        .leases()
        .expect("read")
        .into_iter()
        .map(|l| (l.tenant, l.owner, l.epoch))
        .collect();
    assert_eq!(
        all,
        vec![
            ("acme".to_string(), Some("a".to_string()), 3),
            ("globex".to_string(), Some("a".to_string()), 2)
        ]
    );
}

#[test]
fn an_expired_lease_is_taken_over_and_its_holder_can_no_longer_renew() {
    let Some((_db, a, b)) = two_nodes("expired") else {
        return;
    };
    // A lease of 0 ms has run out by the next statement.
    assert_eq!(a.acquire("acme", "a", 0).expect("asked"), Some(1));
    assert!(
        a.renew("acme", "a", 1, 0).expect("asked"),
        "still a's: nobody took it"
    );
    assert_eq!(b.acquire("acme", "b", RUNNING).expect("asked"), Some(2));
    assert!(
        !a.renew("acme", "a", 1, RUNNING).expect("asked"),
        "taken over"
    );
    a.release("acme", "a", 1).expect("asked");
    assert_eq!(
        lease_of(&a, "acme").owner.as_deref(),
        Some("b"),
        "not a's to give"
    );
    assert!(b.renew("acme", "b", 2, RUNNING).expect("renewed"));
    // A take-over without a lease moves the same epoch on and voids b's.
    assert_eq!(a.advance_epoch("acme").expect("taken over"), 3);
    assert!(!b.renew("acme", "b", 2, RUNNING).expect("asked"));
    assert_eq!(a.acquire("acme", "a", RUNNING).expect("asked"), Some(4));
}

#[test]
fn after_another_node_acquires_an_append_under_the_old_epoch_stores_nothing() {
    let Some((_db, a, b)) = two_nodes("fenced") else {
        return;
    };
    let epoch = a.acquire("acme", "a", 0).expect("asked").expect("taken");
    let mut e = engine();
    let mut seq = 0;
    let (rows, _) = rows_of(&mut e, 1, &mut seq);
    append(&a, "acme", epoch, rows).expect("a owns acme");
    let kept = seq;
    let snapshot = a.snapshot("acme", epoch, seq, e.snapshot()).blocking_recv();
    assert_eq!(snapshot, Ok(Ok(())));
    // b takes the tenant over (a's lease ran out): a is fenced out.
    let taken = b.acquire("acme", "b", RUNNING).expect("asked");
    assert_eq!(taken, Some(epoch + 1));
    let ran = Arc::new(AtomicUsize::new(0));
    let r = ran.clone();
    let (rows, _) = rows_of(&mut e, 2, &mut seq);
    let refused = a
        .append(
            "acme",
            epoch,
            rows,
            Box::new(move || {
                r.fetch_add(1, Ordering::SeqCst);
            }),
        )
        .blocking_recv();
    assert_eq!(
        refused,
        Ok(Err(StoreError::StaleEpoch {
            tenant: "acme".into(),
            epoch,
            current: epoch + 1
        }))
    );
    assert_eq!(ran.load(Ordering::SeqCst), 0, "after_commit not run");
    let snapshot = a.snapshot("acme", epoch, seq, e.snapshot()).blocking_recv();
    assert!(matches!(snapshot, Ok(Err(StoreError::StaleEpoch { .. }))));
    let back = b.recover("acme").expect("recovers");
    assert_eq!(back.last_seq, kept, "nothing of the refused append");
    assert_eq!(b.snapshot_count("acme").expect("counted"), 1);
    // The new owner goes on from there.
    let mut seq = kept;
    let (rows, _) = rows_of(&mut engine(), 3, &mut seq);
    append(&b, "acme", epoch + 1, rows).expect("b owns acme");
    assert_eq!(a.recover("acme").expect("recovers").last_seq, seq);
}

/// Appends keep coming from node a while node b takes the tenant over:
/// once `acquire` has returned, nothing more of a's commits, and everything
/// a was told is committed is there.
#[test]
fn an_acquire_fences_the_appends_another_node_has_in_flight() {
    let Some((_db, a, b)) = two_nodes("in-flight") else {
        return;
    };
    let a = Arc::new(a);
    let epoch = a.acquire("acme", "a", 0).expect("asked").expect("taken");
    let acked = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let writer = {
        let (a, acked) = (a.clone(), acked.clone());
        std::thread::spawn(move || {
            let mut e = engine();
            let mut seq = 0;
            for i in 0..100_000 {
                let (rows, _) = rows_of(&mut e, i, &mut seq);
                match append(&*a, "acme", epoch, rows) {
                    Ok(()) => acked.store(seq, Ordering::SeqCst),
                    Err(StoreError::StaleEpoch { .. }) => return,
                    Err(other) => panic!("{other}"),
                }
            }
            panic!("never fenced");
        })
    };
    while acked.load(Ordering::SeqCst) < 20 {
        std::thread::yield_now();
    }
    assert_eq!(
        b.acquire("acme", "b", RUNNING).expect("asked"),
        Some(epoch + 1)
    );
    let at_take_over = b.recover("acme").expect("recovers").last_seq;
    writer.join().expect("a was fenced");
    assert_eq!(
        b.recover("acme").expect("recovers").last_seq,
        at_take_over,
        "nothing of a's committed after the take-over"
    );
    assert_eq!(
        acked.load(Ordering::SeqCst),
        at_take_over,
        "all a was told is there"
    );
}

/// The database drops the store's connections (a restart, a failover):
/// the commit in flight fails and closes the tenant as any failed commit
/// does; the store connects again, and after its resync the tenant writes
/// on.
#[test]
fn lost_connections_are_made_again() {
    let Some(db) = pg_support::fresh_database("reconnect") else {
        return;
    };
    let store = PgStore::open(&db.url).expect("opens");
    let mut e = engine();
    let mut seq = 0;
    let (rows, _) = rows_of(&mut e, 1, &mut seq);
    append(&store, "acme", 0, rows).expect("committed");
    let kept = seq;
    raw(
        &db.url,
        "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity
         WHERE datname = current_database() AND pid <> pg_backend_pid()",
    );
    let (rows, _) = rows_of(&mut e, 2, &mut seq);
    match append(&store, "acme", 0, rows) {
        Ok(()) => {}
        Err(StoreError::Failed(_)) => {
            let back = store.resync("acme").expect("resyncs on a new connection");
            assert_eq!(back.last_seq, kept);
            seq = kept;
        }
        Err(other) => panic!("{other}"),
    }
    let mut e = engine();
    let (rows, _) = rows_of(&mut e, 3, &mut seq);
    append(&store, "acme", 0, rows).expect("commits again");
    // A reader whose connection was lost fails once at most.
    let read = store.recover("acme").or_else(|_| store.recover("acme"));
    assert_eq!(read.expect("reads again").last_seq, seq);
    let secret = store.secret("k", &[1]).or_else(|_| store.secret("k", &[1]));
    assert_eq!(secret.expect("reads again"), vec![1]);
    let beat = store
        .heartbeat("a", "u")
        .or_else(|_| store.heartbeat("a", "u"));
    beat.expect("the cluster thread connects again");
}

#[test]
fn two_nodes_racing_to_acquire_a_tenant_one_wins() {
    let Some((_db, a, b)) = two_nodes("race") else {
        return;
    };
    let (a, b) = (Arc::new(a), Arc::new(b));
    for round in 0..20 {
        let tenant = format!("tenant-{round}");
        let start = Arc::new(std::sync::Barrier::new(2));
        let racers: Vec<_> = [(a.clone(), "a"), (b.clone(), "b")]
            .into_iter()
            .map(|(store, node)| {
                let (tenant, start) = (tenant.clone(), start.clone());
                std::thread::spawn(move || {
                    start.wait();
                    store.acquire(&tenant, node, RUNNING).expect("asked")
                })
            })
            .collect();
        let won: Vec<Option<u64>> = racers
            .into_iter()
            .map(|r| r.join().expect("no panic"))
            .collect();
        assert_eq!(
            won.iter().flatten().collect::<Vec<_>>(),
            vec![&1],
            "round {round}: {won:?}"
        );
    }
}

#[test]
fn migrations_run_once_whoever_opens_the_database_and_however_often() {
    let Some(db) = pg_support::fresh_database("migrations") else {
        return;
    };
    // Several nodes starting at once on an empty database.
    let openers: Vec<_> = (0..4)
        .map(|_| {
            let url = db.url.clone();
            std::thread::spawn(move || PgStore::open(&url).map(|_| ()))
        })
        .collect();
    for o in openers {
        o.join().expect("no panic").expect("opens");
    }
    // And again, on the migrated one: what is stored stays.
    let first = PgStore::open(&db.url).expect("opens");
    assert_eq!(first.secret("key", &[1]).expect("created"), vec![1]);
    drop(first);
    let again = PgStore::open(&db.url).expect("opens again");
    assert_eq!(again.secret("key", &[2]).expect("read"), vec![1]);
    assert_eq!(
        raw(&db.url, "SELECT COUNT(*) FROM sb_schema"),
        i64::from(PG_SCHEMA_VERSION)
    );
}

#[test]
fn a_database_newer_than_this_build_is_refused() {
    let Some(db) = pg_support::fresh_database("newer") else {
        return;
    };
    drop(PgStore::open(&db.url).expect("opens"));
    raw(&db.url, "INSERT INTO sb_schema (version) VALUES (1000)");
    let refused = PgStore::open(&db.url).expect_err("refused");
    assert!(format!("{refused:#}").contains("newer"), "{refused:#}");
}

#[test]
fn a_reader_joins_no_cluster_and_refuses_a_database_without_a_journal() {
    let Some(db) = pg_support::fresh_database("reader") else {
        return;
    };
    let refused = PgStore::open_read_only(&db.url).expect_err("no schema yet");
    assert!(
        refused.to_string().contains("no Switchboard journal"),
        "{refused}"
    );
    assert_eq!(
        raw(
            &db.url,
            "SELECT COUNT(*) FROM pg_tables WHERE tablename LIKE 'sb\\_%'"
        ),
        0,
        "the reader made nothing"
    );
    drop(PgStore::open(&db.url).expect("a node opens and migrates"));
    let reader = PgStore::open_read_only(&db.url).expect("opens to read");
    assert!(reader.heartbeat("reader", "http://x").is_err());
    assert!(reader.acquire("acme", "reader", RUNNING).is_err());
    assert_eq!(raw(&db.url, "SELECT COUNT(*) FROM sb_nodes"), 0);
    assert_eq!(raw(&db.url, "SELECT COUNT(*) FROM sb_tenants"), 0);
    // Its transactions are read-only even for what it does not mean to
    // write: a session is not saved.
    let session = StoredSession {
        token_hash: "h".into(),
        tenant: "acme".into(),
        agent: "alice".into(),
        expires_at: u64::MAX / 2,
    };
    assert!(reader.save_session(&session).is_err());
    assert_eq!(raw(&db.url, "SELECT COUNT(*) FROM sb_sessions"), 0);
}

#[test]
fn a_reader_never_prints_the_password_of_its_url() {
    let e = PgStore::open_read_only("postgres://replay:s3cret-pw@127.0.0.1:1/x?connect_timeout=2")
        .expect_err("nothing answers");
    let text = format!("{e:#}");
    assert!(!text.contains("s3cret-pw"), "{text}");
    assert!(text.contains("PostgreSQL"), "{text}");
}

#[test]
fn a_server_that_does_not_answer_is_an_error_not_a_panic() {
    let opened = PgStore::open("postgres://nobody@127.0.0.1:1/nothing?connect_timeout=2");
    assert!(opened.is_err());
    assert!(PgStore::open("not a url").is_err());
}

/// Callers are async handlers: the store must answer on a current-thread
/// runtime (the client runs only on the store's threads).
#[tokio::test]
async fn the_store_answers_from_async_code() {
    let Some(db) = pg_support::fresh_database("async") else {
        return;
    };
    let store = PgStore::open(&db.url).expect("opens inside a runtime");
    assert_eq!(store.epoch("acme").expect("read"), 0);
    assert_eq!(store.acquire("acme", "a", RUNNING).expect("asked"), Some(1));
    let mut seq = 0;
    let (rows, _) = rows_of(&mut engine(), 1, &mut seq);
    let answer = store.append("acme", 1, rows, Box::new(|| {})).await;
    assert_eq!(answer, Ok(Ok(())));
    assert_eq!(store.recover("acme").expect("recovers").last_seq, seq);
    drop(store);
}

#[test]
fn the_shared_store_keeps_attachments_per_tenant() {
    let Some(opened) = postgres("attachments") else {
        return;
    };
    let store = &*opened.store;
    assert!(store.keeps_attachments());
    let id = "0123456789abcdef0123456789abcdef";
    store
        .put_attachment(
            "acme",
            id,
            b"\x89PNG".to_vec(),
            r#"{"mime":"image/png"}"#.into(),
        )
        .expect("kept");
    let (meta, content) = store
        .attachment("acme", id, true)
        .expect("read")
        .expect("found");
    assert_eq!(meta, r#"{"mime":"image/png"}"#);
    assert_eq!(content.as_deref(), Some(&b"\x89PNG"[..]));
    // The description alone, without the content.
    let (_, none) = store
        .attachment("acme", id, false)
        .expect("read")
        .expect("found");
    assert!(none.is_none());
    // Another tenant's id is unknown there.
    assert!(store.attachment("other", id, true).expect("read").is_none());
    // SQLite (one node) keeps them as files instead.
    let lite = sqlite("attachments").expect("sqlite");
    assert!(!lite.store.keeps_attachments());
}
