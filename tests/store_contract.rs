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
    PgStore, Row, SqliteStore, Store, StoreError, StoredSession, SyncMode, SNAPSHOTS_KEPT,
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
    for (name, open) in stores() {
        if let Some(opened) = open(&format!("{name}-{tag}")) {
            check(&*opened.store);
        }
    }
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
        assert_eq!(back.last_seq, seq);
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
