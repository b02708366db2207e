//! MongoRepository vs the raw driver, side by side in one run:
//! `cargo bench -p persistence-mongo --bench mongo`
//! (`BENCH_INSERT_N` sets the batch-insert size, default 100,000).
//!
//! Prints, for each workload, the time through the repository and through
//! the raw `mongodb` driver with a serde struct on the same server, and the
//! ratio. Absolute numbers of the local stand-in server are not MongoDB's;
//! the ratios are what to compare.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use bson::doc;
use futures_util::TryStreamExt as _;
use persistence_core::conformance::services::{self, Service};
use persistence_core::{Entity, Query, Repository};
use persistence_mongo::{MongoConfig, MongoStore};
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
    let raw = store.database().collection::<RawItem>("bench_raw");
    raw.create_index(
        mongodb::IndexModel::builder()
            .keys(doc! { "group": 1, "score": 1 })
            .build(),
    )
    .await
    .unwrap();

    println!(
        "| workload (ms)                                | repository   | raw driver   | ratio   |"
    );
    println!(
        "|----------------------------------------------|--------------|--------------|---------|"
    );

    // insert_many, in batches of 10,000 both ways.
    let rows: Vec<Item> = (0..n_insert).map(item).collect();
    let raw_rows: Vec<RawItem> = rows
        .iter()
        .map(|i| RawItem {
            id: i.id,
            version: 1,
            group: i.group,
            score: i.score,
            name: i.name.clone(),
        })
        .collect();
    let t = Instant::now();
    for c in rows.chunks(10_000) {
        repo.insert_many(c).await.unwrap();
    }
    let repo_ins = t.elapsed();
    let t = Instant::now();
    for c in raw_rows.chunks(10_000) {
        raw.insert_many(c).await.unwrap();
    }
    let raw_ins = t.elapsed();
    row(
        &format!("insert_many {n_insert} (total)"),
        repo_ins,
        raw_ins,
    );

    // Point reads by id, interleaved so both see the same server state.
    let reads = 2_000;
    let (mut a, mut b) = (Vec::with_capacity(reads), Vec::with_capacity(reads));
    for k in 0..reads as i64 {
        let id = (k * 7919) % n_insert;
        let t = Instant::now();
        let x = repo.get(&id).await.unwrap();
        a.push(t.elapsed());
        let t = Instant::now();
        let y = raw.find_one(doc! { "_id": id }).await.unwrap();
        b.push(t.elapsed());
        assert_eq!(x.map(|x| x.id), y.map(|y| y.id));
    }
    row(
        "get by id (p50 of 2000)",
        median(a.clone()),
        median(b.clone()),
    );
    row(
        "get by id (mean of 2000)",
        a.iter().sum::<Duration>() / reads as u32,
        b.iter().sum::<Duration>() / reads as u32,
    );

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

    store.drop_database().await.unwrap();
}
