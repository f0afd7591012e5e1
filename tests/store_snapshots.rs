//! Snapshots in the store: only the latest two of a tenant are kept however
//! many are taken, the latest is what recovery starts from, and a snapshot
//! written as JSON text by an older version is still read.

mod store_support;
use std::path::PathBuf;
use store_support::{customer, engine};
use switchboard::store::{Row, SqliteStore, Store, SyncMode, SNAPSHOTS_KEPT};
use switchboard_core::engine::Extensions;

fn data_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "switchboard-snapshots-{tag}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn only_the_latest_two_snapshots_are_kept_and_recovery_starts_from_the_latest() {
    let dir = data_dir("kept");
    let store = SqliteStore::open(&dir, SyncMode::Normal).expect("store opens");
    let tenant = "acme";
    let mut e = engine();
    let mut seq = 0u64;
    for round in 0..12u64 {
        let out = e
            .handle(customer(round), 1_000 + round, &Extensions::builtin())
            .expect("accepted");
        let rows = out
            .events()
            .map(|ev| {
                seq += 1;
                Row {
                    seq,
                    kind: ev.type_name(),
                    conversation: ev.conversation(),
                    body: serde_json::to_string(ev).expect("event serializes"),
                }
            })
            .collect();
        let appended = store.append(tenant, 0, rows, Box::new(|| {}));
        assert_eq!(appended.blocking_recv(), Ok(Ok(())));
        let stored = store.snapshot(tenant, 0, seq, e.snapshot());
        assert_eq!(stored.blocking_recv(), Ok(Ok(())));
        let n = store.snapshot_count(tenant).expect("counted");
        assert!(n <= SNAPSHOTS_KEPT, "{n} snapshots after round {round}");
    }
    assert_eq!(store.snapshot_count(tenant).expect("counted"), 2);
    let recovered = store.recover(tenant).expect("recovers");
    let snap = recovered.snapshot.expect("a snapshot");
    assert_eq!(snap.conversations.len(), 12);
    assert!(recovered.events.is_empty(), "nothing after the latest");
    assert_eq!(recovered.last_seq, seq);
    let mut restored = engine();
    restored.restore(snap);
    restored.check_invariants().expect("consistent");
    assert_eq!(
        restored.waiting().collect::<Vec<_>>(),
        e.waiting().collect::<Vec<_>>()
    );
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_json_snapshot_of_an_older_version_is_still_read() {
    let dir = data_dir("json");
    let store = SqliteStore::open(&dir, SyncMode::Normal).expect("store opens");
    let mut e = engine();
    e.handle(customer(1), 1_000, &Extensions::builtin())
        .expect("accepted");
    let json = serde_json::to_string(&e.snapshot()).expect("serializes");
    let conn = rusqlite::Connection::open(dir.join("switchboard.db")).expect("opens");
    conn.execute(
        "INSERT INTO snapshots (tenant, seq, body) VALUES ('acme', 3, ?1)",
        [json],
    )
    .expect("inserted");
    let recovered = store.recover("acme").expect("recovers");
    let snap = recovered.snapshot.expect("the JSON snapshot");
    assert_eq!(snap.conversations.len(), 1);
    assert_eq!(recovered.last_seq, 3);
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}
