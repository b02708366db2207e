//! Cache benchmarks, side by side in one run (a harness=false table):
//! * point reads: the repository itself (MemoryRepository), an L1 hit, an
//!   L2 hit (L2-only layer), and the raw driver doing the same Redis `GET`
//!   of the same bytes through the same kind of pool;
//! * L1-hit throughput under 64 concurrent readers;
//! * backplane propagation between two instances on loopback.
//!
//! `cargo bench -p persistence-cache --bench cache` (needs Redis for the L2
//! rows: REDIS_URL or 127.0.0.1:6379, and PostgreSQL for the repository
//! rows: DATABASE_URL or 127.0.0.1:5432; without them those rows say
//! SKIPPED, and under CI=true / PERSISTENCE_REQUIRE_SERVICES=1 the run fails).

use std::time::{Duration, Instant};

use deadpool_redis::redis;
use persistence_cache::CacheLayer;
use persistence_core::conformance::services::{self, Service};
use persistence_core::{Entity, MemoryRepository, Repository};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(name = "bench_users")]
struct User {
    #[entity(id)]
    id: i64,
    email: String,
    name: String,
    score: f64,
    tags: Vec<String>,
    #[entity(version)]
    version: i64,
}

fn user(id: i64) -> User {
    User {
        id,
        email: format!("u{id}@example.com"),
        name: format!("user {id}"),
        score: id as f64 * 1.5,
        tags: vec!["a".into(), "b".into()],
        version: 0,
    }
}

struct Row {
    name: String,
    p50: Duration,
    p99: Duration,
    mean: Duration,
}

async fn measure<F: AsyncFnMut(usize)>(name: &str, n: usize, mut f: F) -> Row {
    for i in 0..n / 10 {
        f(i).await;
    }
    let mut samples = Vec::with_capacity(n);
    for i in 0..n {
        let t = Instant::now();
        f(i).await;
        samples.push(t.elapsed());
    }
    samples.sort();
    let total: Duration = samples.iter().sum();
    Row {
        name: name.to_string(),
        p50: samples[n / 2],
        p99: samples[n * 99 / 100],
        mean: total / n as u32,
    }
}

fn print(rows: &[Row], base: &str) {
    let base = rows.iter().find(|r| r.name == base).map(|r| r.p50);
    println!(
        "{:<44} {:>12} {:>12} {:>12} {:>14}",
        "read path", "p50", "p99", "mean", "p50 vs base"
    );
    for r in rows {
        let ratio = base.map_or(String::new(), |b| {
            format!("{:.2}x", r.p50.as_secs_f64() / b.as_secs_f64())
        });
        println!(
            "{:<44} {:>12?} {:>12?} {:>12?} {:>14}",
            r.name, r.p50, r.p99, r.mean, ratio
        );
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    const N: usize = 20_000;
    const KEYS: i64 = 1_000;
    let mem = MemoryRepository::<User>::new();
    for i in 0..KEYS {
        mem.insert(&user(i)).await.expect("insert");
    }
    let prefix = format!("bench{}", fastrand::u64(..));
    let mut rows = Vec::new();

    rows.push(
        measure("MemoryRepository::get (underlying)", N, async |i| {
            let id = i as i64 % KEYS;
            std::hint::black_box(mem.get(&id).await.expect("get"));
        })
        .await,
    );

    let l1 = CacheLayer::builder()
        .prefix(&prefix)
        .build()
        .expect("layer")
        .wrap(mem.clone());
    for i in 0..KEYS {
        l1.get(&i).await.expect("warm");
    }
    rows.push(
        measure("CachedRepository::get, L1 hit", N, async |i| {
            let id = i as i64 % KEYS;
            std::hint::black_box(l1.get(&id).await.expect("get"));
        })
        .await,
    );

    let url = services::url(Service::Redis);
    if let Some(url) = &url {
        let l2 = CacheLayer::builder()
            .prefix(&prefix)
            .without_l1()
            .redis_url(url.as_str())
            .build()
            .expect("layer")
            .wrap(mem.clone());
        for i in 0..KEYS {
            l2.get(&i).await.expect("warm");
        }
        rows.push(
            measure("CachedRepository::get, L2 hit (Redis)", N / 4, async |i| {
                let id = i as i64 % KEYS;
                std::hint::black_box(l2.get(&id).await.expect("get"));
            })
            .await,
        );
        assert!(l2.stats().l2_hits > 0);

        let pool = deadpool_redis::Config::from_url(url.as_str())
            .create_pool(Some(deadpool_redis::Runtime::Tokio1))
            .expect("pool");
        let key_of = |id: i64| format!("{prefix}:bench_users:{}:{id}", User::meta().schema_version);
        rows.push(
            measure(
                "raw deadpool-redis GET of the same entry",
                N / 4,
                async |i| {
                    let id = i as i64 % KEYS;
                    let mut c = pool.get().await.expect("conn");
                    let v: Option<Vec<u8>> = redis::cmd("GET")
                        .arg(key_of(id))
                        .query_async(&mut c)
                        .await
                        .expect("get");
                    std::hint::black_box(v);
                },
            )
            .await,
        );
    }
    // PostgreSQL point read through the repository, raw and cached (L1 hit).
    let schema = format!("bench_{}", fastrand::u64(..) % 1_000_000_000);
    if let Some(pg_url) = services::url(Service::Postgres) {
        let store = persistence_postgres::RelationalStore::connect(
            &persistence_postgres::RelationalConfig::new(pg_url).schema(schema.clone()),
        )
        .await
        .expect("PostgreSQL answers a TCP connect but refuses the store");
        let pg = store.repository::<User>();
        pg.ensure_schema().await.expect("schema");
        for i in 0..KEYS {
            pg.insert(&user(i)).await.expect("insert");
        }
        rows.push(
            measure(
                "PostgreSQL get via RelationalRepository",
                N / 10,
                async |i| {
                    let id = i as i64 % KEYS;
                    std::hint::black_box(pg.get(&id).await.expect("get"));
                },
            )
            .await,
        );
        let cached = CacheLayer::builder()
            .prefix(&prefix)
            .build()
            .expect("layer")
            .wrap(store.repository::<User>());
        for i in 0..KEYS {
            cached.get(&i).await.expect("warm");
        }
        rows.push(
            measure("cached PostgreSQL get, L1 hit", N, async |i| {
                let id = i as i64 % KEYS;
                std::hint::black_box(cached.get(&id).await.expect("get"));
            })
            .await,
        );
        let _ = store.drop_schema().await;
        store.close().await;
    }
    print(&rows, "MemoryRepository::get (underlying)");

    // Throughput: 64 concurrent readers on L1 hits.
    let start = Instant::now();
    let per_task = 20_000;
    let mut tasks = Vec::new();
    for t in 0..64 {
        let r = l1.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..per_task {
                let id = ((i * 64 + t) as i64) % KEYS;
                std::hint::black_box(r.get(&id).await.expect("get"));
            }
        }));
    }
    for t in tasks {
        t.await.expect("join");
    }
    let el = start.elapsed();
    println!(
        "\nL1-hit throughput, 64 concurrent readers on 2 worker threads: {:.0} reads/s ({} reads in {:?})",
        (64 * per_task) as f64 / el.as_secs_f64(),
        64 * per_task,
        el
    );

    // Backplane propagation.
    if let Some(url) = &url {
        let make = || {
            CacheLayer::builder()
                .prefix(&prefix)
                .redis_url(url.as_str())
                .backplane(true)
                .build()
                .expect("layer")
        };
        let (la, lb) = (make(), make());
        while !(la.backplane_connected() && lb.backplane_connected()) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let a = la.wrap(mem.clone());
        let b = lb.wrap(mem.clone());
        let mut cur = mem.get(&0).await.expect("get").expect("row");
        let mut samples = Vec::new();
        for i in 0..500 {
            b.get(&0).await.expect("warm");
            cur.score = i as f64;
            cur = a.update(&cur).await.expect("update");
            let t = Instant::now();
            loop {
                // Local generation check only: no load until the message arrived.
                if b.get(&0).await.expect("get").map(|u| u.version) == Some(cur.version) {
                    break;
                }
                tokio::task::yield_now().await;
                if t.elapsed() > Duration::from_secs(5) {
                    panic!("no propagation");
                }
            }
            samples.push(t.elapsed());
        }
        samples.sort();
        println!(
            "backplane propagation (update in A returned -> B reads the new version), 500 updates: p50 {:?}, p99 {:?}, max {:?}",
            samples[250], samples[495], samples[499]
        );
        // Clean up the benchmark's keys.
        if let Ok(client) = redis::Client::open(url.as_str()) {
            if let Ok(mut c) = client.get_multiplexed_async_connection().await {
                let keys: Vec<String> = redis::cmd("KEYS")
                    .arg(format!("{prefix}:*"))
                    .query_async(&mut c)
                    .await
                    .unwrap_or_default();
                if !keys.is_empty() {
                    let _: Result<(), _> = redis::cmd("DEL").arg(keys).query_async(&mut c).await;
                }
            }
        }
    }
}
