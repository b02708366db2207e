//! MongoRepository vs the raw driver, side by side in one run:
//! `cargo bench -p persistence-mongo --bench mongo`
//! (`BENCH_INSERT_N` sets the batch-insert size, default 100,000).
//! `BENCH_ONLY=insert cargo bench -p persistence-mongo --bench mongo` runs
//! only the single-document insert comparison (`BENCH_INSERTS` each side,
//! default 3,000): `repository.insert`, which returns the stored entity,
//! against the raw driver's `insert_one` of the serde twin.
//!
//! Prints, for each workload, the time through the repository and through
//! the raw `mongodb` driver with a serde struct on the same server, and the
//! ratio (the raw collections have the same validator and index as the
//! repository's). Absolute numbers of the local stand-in server are not MongoDB's;
//! the ratios are what to compare. `BENCH_READS` sets the number of point
//! reads (default 10,000), taken in ABBA order (repository, raw, raw,
//! repository, ...) so neither side always goes first. The last rows time
//! only the client-side work of a point read (id → filter, document →
//! entity) without the server, to show what the repository adds.
//!
//! `insert_many` through the repository is all-or-nothing on a replica set
//! (it runs in a transaction); the raw driver's is not. A row with
//! `with_atomic_batches(false)` shows the plain ordered insert.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use bson::doc;
use futures_util::TryStreamExt as _;
use persistence_core::conformance::services::{self, Service};
use persistence_core::{Entity, Query, Repository};
use persistence_mongo::{MongoConfig, MongoRepository, MongoStore};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(name = "bench_items")]
#[entity(index(group, score))]
struct Item {
    #[entity(id)]
    id: i64,
    #[entity(version)]
    version: i64,
    group: i32,
    score: i64,
    name: String,
}

/// The raw-driver twin of `Item`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct RawItem {
    #[serde(rename = "_id")]
    id: i64,
    version: i64,
    group: i32,
    score: i64,
    name: String,
}

fn item(i: i64) -> Item {
    Item {
        id: i,
        version: 0,
        group: (i % 100) as i32,
        score: (i * 7919) % 10_007,
        name: format!("item-{i}"),
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort_unstable();
    v[v.len() / 2]
}

fn row(name: &str, repo: Duration, raw: Duration) {
    println!(
        "| {name:<44} | {:>12.3} | {:>12.3} | {:>6.3}x |",
        repo.as_secs_f64() * 1e3,
        raw.as_secs_f64() * 1e3,
        repo.as_secs_f64() / raw.as_secs_f64()
    );
}

/// Like `row`, in microseconds (client-side work only).
fn row_us(name: &str, repo: Duration, raw: Duration) {
    println!(
        "| {name:<44} | {:>12.3} | {:>12.3} | {:>6.3}x |",
        repo.as_secs_f64() * 1e6,
        raw.as_secs_f64() * 1e6,
        repo.as_secs_f64() / raw.as_secs_f64()
    );
}

/// Single-document inserts in ABBA order: the repository against the raw
/// driver on a collection with the same validator and index. Prints p50 and
/// mean.
async fn insert_case(repo: &MongoRepository<Item>, raw: &mongodb::Collection<RawItem>) {
    let n: i64 = std::env::var("BENCH_INSERTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3_000);
    let base = 1_000_000_000_i64;
    for k in 0..20 {
        // Warm both paths.
        repo.insert(&item(base - 2 * k - 2)).await.unwrap();
        raw.insert_one(raw_item(&item(base - 2 * k - 1)))
            .await
            .unwrap();
    }
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for k in 0..n {
        let repo_first = k % 4 == 0 || k % 4 == 3;
        for side in [repo_first, !repo_first] {
            if side {
                let e = item(base + 2 * k);
                let t = Instant::now();
                std::hint::black_box(repo.insert(&e).await.unwrap());
                a.push(t.elapsed());
            } else {
                let e = raw_item(&item(base + 2 * k + 1));
                let t = Instant::now();
                raw.insert_one(&e).await.unwrap();
                b.push(t.elapsed());
                std::hint::black_box(e);
            }
        }
    }
    let mean = |v: &[Duration]| v.iter().sum::<Duration>() / v.len() as u32;
    row(
        &format!("insert one (p50 of {n}, ABBA)"),
        median(a.clone()),
        median(b.clone()),
    );
    row(&format!("insert one (mean of {n})"), mean(&a), mean(&b));
}

fn raw_item(i: &Item) -> RawItem {
    RawItem {
        id: i.id,
        version: 1,
        group: i.group,
        score: i.score,
        name: i.name.clone(),
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let Some(url) = services::url(Service::Mongo) else {
        return;
    };
    let n_insert: i64 = std::env::var("BENCH_INSERT_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let db = format!("bench_{}", services::unique_suffix());
    let store = MongoStore::connect(&MongoConfig::new(url, db))
        .await
        .unwrap();
    let repo = store.repository::<Item>();
    repo.ensure_schema().await.unwrap();
    // The raw collections get what ensure_schema gives the repository's: the
    // same validator and the same (group, score) index, so the ratios show
    // the client-side overhead, not server-side work.
    let raw_collection = |name: &'static str| {
        let db = store.database().clone();
        async move {
            db.create_collection(name)
                .validator(persistence_mongo::schema::json_schema(Item::meta()))
                .await
                .unwrap();
            let c = db.collection::<RawItem>(name);
            c.create_index(
                mongodb::IndexModel::builder()
                    .keys(doc! { "group": 1, "score": 1 })
                    .build(),
            )
            .await
            .unwrap();
            c
        }
    };
    let raw = raw_collection("bench_raw").await;

    println!(
        "| workload (ms)                                | repository   | raw driver   | ratio   |"
    );
    println!(
        "|----------------------------------------------|--------------|--------------|---------|"
    );

    if std::env::var("BENCH_ONLY").as_deref() == Ok("insert") {
        insert_case(&repo, &raw).await;
        store.drop_database().await.unwrap();
        return;
    }

    // insert_many, in batches of 10,000 both ways, chunk by chunk in ABBA
    // order so both sides see the same (noisy) machine.
    let rows: Vec<Item> = (0..n_insert).map(item).collect();
    let raw_rows: Vec<RawItem> = rows.iter().map(raw_item).collect();
    let plain =
        MongoRepository::<Item>::with_collection(store.database().collection("bench_plain"))
            .with_atomic_batches(false);
    plain.ensure_schema().await.unwrap();
    let raw2 = raw_collection("bench_raw2").await;
    let atomic = repo.supports_transactions().await.unwrap();
    let (mut repo_ins, mut raw_ins, mut plain_ins, mut raw2_ins) = (
        Duration::ZERO,
        Duration::ZERO,
        Duration::ZERO,
        Duration::ZERO,
    );
    for (k, (c, rc)) in rows.chunks(10_000).zip(raw_rows.chunks(10_000)).enumerate() {
        let repo_first = k % 4 == 0 || k % 4 == 3;
        for side in [repo_first, !repo_first] {
            let t = Instant::now();
            if side {
                repo.insert_many(c).await.unwrap();
                repo_ins += t.elapsed();
            } else {
                raw.insert_many(rc).await.unwrap();
                raw_ins += t.elapsed();
            }
        }
        for side in [repo_first, !repo_first] {
            let t = Instant::now();
            if side {
                plain.insert_many(c).await.unwrap();
                plain_ins += t.elapsed();
            } else {
                raw2.insert_many(rc).await.unwrap();
                raw2_ins += t.elapsed();
            }
        }
    }
    row(
        &format!(
            "insert_many {n_insert} (total{})",
            if atomic { ", in transactions" } else { "" }
        ),
        repo_ins,
        raw_ins,
    );
    row(
        &format!("insert_many {n_insert} (no transaction)"),
        plain_ins,
        raw2_ins,
    );

    // Point reads by id, interleaved (ABBA) so both see the same server
    // state and neither always goes first.
    let reads: usize = std::env::var("BENCH_READS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let (mut a, mut b) = (Vec::with_capacity(reads), Vec::with_capacity(reads));
    for k in 0..reads as i64 {
        let id = (k * 7919) % n_insert;
        let repo_first = k % 4 == 0 || k % 4 == 3;
        for side in [repo_first, !repo_first] {
            if side {
                let t = Instant::now();
                let x = repo.get(&id).await.unwrap();
                a.push(t.elapsed());
                assert_eq!(x.map(|x| x.id), Some(id));
            } else {
                let t = Instant::now();
                let y = raw.find_one(doc! { "_id": id }).await.unwrap();
                b.push(t.elapsed());
                assert_eq!(y.map(|y| y.id), Some(id));
            }
        }
    }
    let mean = |v: &[Duration]| v.iter().sum::<Duration>() / v.len() as u32;
    let pct = |v: &[Duration], p: f64| {
        let mut v = v.to_vec();
        v.sort_unstable();
        v[((v.len() as f64 * p) as usize).min(v.len() - 1)]
    };
    row(
        &format!("get by id (p50 of {reads}, ABBA)"),
        median(a.clone()),
        median(b.clone()),
    );
    row(
        &format!("get by id (p90 of {reads})"),
        pct(&a, 0.9),
        pct(&b, 0.9),
    );
    row(&format!("get by id (mean of {reads})"), mean(&a), mean(&b));

    // Client-side work only: the filter and the decoding of one document.
    let stored = repo
        .collection()
        .find_one(doc! { "_id": 42_i64 })
        .await
        .unwrap()
        .unwrap();
    let raw_bytes = bson::to_vec(&stored).unwrap();
    let cpu_rounds = 100_000u32;
    let t = Instant::now();
    for _ in 0..cpu_rounds {
        let d: bson::Document = bson::from_slice(std::hint::black_box(&raw_bytes)).unwrap();
        let e = persistence_mongo::codec::from_document::<Item>(&d).unwrap();
        std::hint::black_box(e);
    }
    let repo_dec = t.elapsed() / cpu_rounds;
    let t = Instant::now();
    for _ in 0..cpu_rounds {
        let e: RawItem = bson::from_slice(std::hint::black_box(&raw_bytes)).unwrap();
        std::hint::black_box(e);
    }
    let raw_dec = t.elapsed() / cpu_rounds;
    row_us("decode one document (client CPU, us)", repo_dec, raw_dec);
    let t = Instant::now();
    for i in 0..cpu_rounds {
        let id = i64::from(i);
        let f = doc! { "_id": persistence_mongo::codec::id_to_bson::<Item>(std::hint::black_box(&id)).unwrap() };
        std::hint::black_box(f);
    }
    let repo_f = t.elapsed() / cpu_rounds;
    let t = Instant::now();
    for i in 0..cpu_rounds {
        let f = doc! { "_id": std::hint::black_box(i64::from(i)) };
        std::hint::black_box(f);
    }
    let raw_f = t.elapsed() / cpu_rounds;
    row_us("id filter (client CPU, us)", repo_f, raw_f);

    // Filter + sort, 1,000 results.
    let q = Query::filter(Item::GROUP.is_in([3, 4]).and(Item::SCORE.gte(0)))
        .sort(Item::SCORE.desc())
        .limit(1_000);
    let rounds = 20;
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let t = Instant::now();
        let x = repo.find(&q).await.unwrap();
        a.push(t.elapsed());
        let t = Instant::now();
        let y: Vec<RawItem> = raw
            .find(doc! { "group": { "$in": [3, 4] }, "score": { "$gte": 0_i64 } })
            .sort(doc! { "score": -1, "_id": 1 })
            .limit(1_000)
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        b.push(t.elapsed());
        assert_eq!(x.len(), y.len());
    }
    row(
        "find filter+sort, 1000 rows (p50 of 20)",
        median(a),
        median(b),
    );

    // Single-document inserts.
    insert_case(&repo, &raw).await;

    store.drop_database().await.unwrap();
}
