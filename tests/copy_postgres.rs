//! Cross-store copy PostgreSQL → MongoDB → PostgreSQL, compared at the end.

use chrono::{DateTime, Duration, TimeZone, Utc};
use persistence_core::conformance::services::{Service, unique_suffix, url};
use persistence_core::copy::{CopyOptions, copy_all};
use persistence_core::{Entity, Filter, Query, Repository};
use persistence_postgres::{RelationalConfig, RelationalStore};
use persistence_testing::TestMongo;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(name = "ledger")]
struct Entry {
    #[entity(id)]
    id: Uuid,
    #[entity(version)]
    version: i64,
    #[entity(unique)]
    reference: String,
    amount: Decimal,
    booked: DateTime<Utc>,
    note: Option<String>,
    tags: Vec<String>,
}

fn entry(i: u64) -> Entry {
    let base = Utc
        .with_ymd_and_hms(2025, 3, 1, 0, 0, 0)
        .single()
        .expect("ts");
    Entry {
        id: Uuid::from_u128(u128::from(i) * 7_919 + 1),
        version: 0,
        reference: format!("ref-{i:07}"),
        amount: Decimal::new(i as i64 * 101 - 5_000, 2),
        // Whole milliseconds: PostgreSQL keeps microseconds, MongoDB milliseconds;
        // with these, both directions are lossless and the final rows compare equal.
        booked: base + Duration::milliseconds(i as i64 * 1_001),
        note: (i % 4 == 0).then(|| format!("n{i}")),
        tags: (0..(i % 3)).map(|t| format!("t{t}")).collect(),
    }
}

async fn pg_mongo_pg(n: u64) {
    let Some(pg_url) = url(Service::Postgres) else {
        return;
    };
    // A fresh database, dropped afterwards (also on panic); SKIPPED without
    // a server (fails under CI=true).
    let Some(db) = TestMongo::database().await else {
        return;
    };
    let mongo_store = db.store().await.expect("connect");
    let mk = |tag: &str| {
        RelationalConfig::new(pg_url.clone())
            .schema(format!(
                "copy_{tag}_{}",
                unique_suffix().to_ascii_lowercase()
            ))
            .max_connections(4)
    };
    let src_store = RelationalStore::connect(&mk("src")).await.expect("pg src");
    let dst_store = RelationalStore::connect(&mk("dst")).await.expect("pg dst");
    let outcome = async {
        let src = src_store.repository::<Entry>();
        let dst = dst_store.repository::<Entry>();
        let mongo = mongo_store.repository::<Entry>();
        src.ensure_schema().await.expect("src schema");
        dst.ensure_schema().await.expect("dst schema");
        mongo.ensure_schema().await.expect("mongo schema");
        let rows: Vec<Entry> = (0..n).map(entry).collect();
        for c in rows.chunks(5_000) {
            src.insert_many(c).await.expect("seed");
        }
        let there = copy_all(&src, &mongo, CopyOptions::default(), |_| {})
            .await
            .expect("pg → mongo");
        assert_eq!((there.read, there.inserted), (n, n));
        let back = copy_all(&mongo, &dst, CopyOptions::default(), |_| {})
            .await
            .expect("mongo → pg");
        assert_eq!((back.read, back.inserted), (n, n));
        assert_eq!(there.checksum, back.checksum, "same data all the way");
        assert_eq!(dst.count(&Filter::all()).await.expect("count"), n);
        // Row by row: equal except the store-local version.
        let a = src.find(&Query::all()).await.expect("src rows");
        let b = dst.find(&Query::all()).await.expect("dst rows");
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(&b) {
            let mut y = y.clone();
            y.version = x.version;
            assert_eq!(x, &y);
        }
    };
    let result = futures_util::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(outcome)).await;
    let _ = src_store.drop_schema().await;
    let _ = dst_store.drop_schema().await;
    src_store.close().await;
    dst_store.close().await;
    if let Err(p) = result {
        std::panic::resume_unwind(p);
    }
    if let Err(e) = db.cleanup().await {
        eprintln!("cleanup: {e}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_postgres_to_mongo_and_back() {
    pg_mongo_pg(5_000).await;
}

/// The 100,000 entities (passed here in 472 s on the shared, loaded
/// machine: the stand-in MongoDB is a Python process), so on demand:
/// `cargo test -p persistence-tests --test copy_postgres -- --ignored`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "slow on the stand-in server; run on demand"]
async fn copy_100k_postgres_to_mongo_and_back() {
    pg_mongo_pg(100_000).await;
}
