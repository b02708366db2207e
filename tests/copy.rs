//! Cross-store copy: memory → MongoDB → memory, 100,000 entities, re-runnable.

use chrono::{DateTime, Duration, TimeZone, Utc};
use persistence_core::copy::{CopyOptions, copy_all};
use persistence_core::{Entity, Filter, MemoryRepository, Repository};
use persistence_testing::TestMongo;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(name = "events")]
struct Event {
    #[entity(id)]
    id: i64,
    #[entity(version)]
    version: i64,
    kind: String,
    at: DateTime<Utc>,
    amount: Option<f64>,
}

fn event(i: i64) -> Event {
    let base = Utc
        .with_ymd_and_hms(2025, 1, 1, 0, 0, 0)
        .single()
        .expect("ts");
    Event {
        id: i,
        version: 0,
        kind: format!("k{}", i % 13),
        // Microseconds: the MongoDB copy keeps milliseconds; verification compares at that precision.
        at: base + Duration::microseconds(i * 1_234_567),
        amount: (i % 3 != 0).then_some(i as f64 / 7.0),
    }
}

/// 10,000 entities on every run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_there_and_back() {
    there_and_back(10_000).await;
}

/// The 100,000 entities (passed here in 713 s on the shared,
/// loaded machine: the stand-in server is a Python process), so on demand:
/// `cargo test -p persistence-tests --test copy -- --ignored`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "slow on the stand-in server; run on demand"]
async fn copy_100k_there_and_back() {
    there_and_back(100_000).await;
}

async fn there_and_back(n: i64) {
    // A fresh database, dropped afterwards (also on panic); SKIPPED without
    // a server (fails under CI=true).
    let Some(db) = TestMongo::database().await else {
        return;
    };
    let store = db.store().await.expect("connect");
    let source = MemoryRepository::<Event>::new();
    let rows: Vec<Event> = (0..n).map(event).collect();
    source.insert_many(&rows).await.expect("seed");
    let mongo = store.repository::<Event>();
    mongo.ensure_schema().await.expect("schema");

    // A crash midway: part of the data is already there, one row differs.
    mongo.insert_many(&rows[..2_500]).await.expect("partial");
    let mut changed = rows[10].clone();
    changed.kind = "tampered".into();
    changed.version = 1;
    mongo.update(&changed).await.expect("tamper");

    let mut batches = 0;
    let report = copy_all(
        &source,
        &mongo,
        CopyOptions {
            batch_size: 2_000,
            verify: true,
        },
        |_| batches += 1,
    )
    .await
    .expect("copy to mongo");
    assert_eq!(report.read, n as u64);
    assert_eq!(report.unchanged, 2_499);
    assert_eq!(report.overwritten, 1);
    assert_eq!(report.inserted, n as u64 - 2_500);
    assert_eq!(report.counts, Some((n as u64, n as u64)));
    assert_eq!(batches, (n as usize).div_ceil(2_000));
    assert_eq!(mongo.get(&10).await.expect("get").expect("row").kind, "k10");

    // Re-running over a complete copy writes nothing.
    let again = copy_all(&source, &mongo, CopyOptions::default(), |_| {})
        .await
        .expect("re-run");
    assert_eq!(
        (again.inserted, again.overwritten, again.unchanged),
        (0, 0, n as u64)
    );

    // And back.
    let back = MemoryRepository::<Event>::new();
    let report = copy_all(&mongo, &back, CopyOptions::default(), |_| {})
        .await
        .expect("copy back");
    assert_eq!(report.inserted, n as u64);
    assert!(report.checksum.is_some());
    assert_eq!(back.count(&Filter::all()).await.expect("count"), n as u64);
    let orig = source.get(&(n - 3)).await.expect("get").expect("row");
    let copy = back.get(&(n - 3)).await.expect("get").expect("row");
    assert_eq!(copy.kind, orig.kind);
    assert_eq!(copy.amount, orig.amount);
    assert_eq!(copy.at.timestamp_millis(), orig.at.timestamp_millis());
    if let Err(e) = db.cleanup().await {
        eprintln!("cleanup: {e}");
    }
}
