//! Point reads at 32 tasks: sqlx (what sea-orm and this library run on)
//! against tokio-postgres + deadpool-postgres (what toasty runs on), side by
//! side in one run on the local PostgreSQL (issue #19, item 5).
//!
//! ```text
//! cargo bench -p persistence-postgres --features postgres --bench concurrency
//! BENCH_ROWS=100000 BENCH_TASKS=32 BENCH_POOL=16 BENCH_SECS=5 BENCH_ROUNDS=3 \
//!     cargo bench -p persistence-postgres --features postgres --bench concurrency
//! ```
//!
//! A table of nine columns (`BENCH_ROWS` rows, made by `ensure_schema` in a
//! schema of its own and dropped at the end); every side reads one row by
//! its primary key with the same statement text, and decodes **all nine
//! columns** into the same struct (a client that skips columns flatters
//! itself). Sides, each on its own pool of `BENCH_POOL` connections, with
//! `BENCH_TASKS` tasks reading uniformly random ids for `BENCH_SECS`
//! seconds, rounds rotating the order:
//!
//! Every side talks plain TCP. The local server offers TLS, which sqlx's
//! and the library's default (`sslmode=prefer`, as libpq's) would take,
//! while tokio-postgres with `NoTls` would not: on loopback TLS alone was
//! worth ~2.5x in client CPU per read (see the table below), which is not
//! what this bench is about.
//!
//! * `sqlx`: `sqlx::query(..).bind(id).fetch_optional(&pool)` (the
//!   statement prepared once per connection by sqlx's cache);
//! * `sqlx-no-acquire-ping`: the same with `test_before_acquire(false)`
//!   (sqlx pings every connection it hands out, by default, and every
//!   connection given back: three round trips per statement);
//! * `tokio-postgres`: `deadpool_postgres` + `prepare_cached` + `query_opt`;
//! * `library`: `repo.get(&id)` on a [`RelationalStore`] (sea-orm on sqlx).
//!
//! `BENCH_SIDES=sqlx` (comma-separated names) runs only those sides, e.g.
//! under `perf record`.
//!
//! Printed per side: operations per second, p50/p99 latency, the ratio to
//! sqlx, and the **client CPU time per operation** (all threads of this
//! process, from `/proc/self/task/*/schedstat`). PostgreSQL runs on the
//! same two cores, so a client that burns less CPU per read leaves more to
//! the server: the CPU column explains the throughput column, and it is far
//! less sensitive to the machine's load than the throughput.
//!
//! Measured (release, 2 shared cores, load average 6-7, 100,000 rows, 32
//! tasks, pool 16, 2 rounds of 4 s):
//!
//! ```text
//! side                   ops/s   ratio   p50       cpu/op   ratio
//! sqlx                   23133   1.00x   1063 µs   21.9 µs  1.00x
//! sqlx-no-acquire-ping   28975   1.25x    851 µs   17.6 µs  0.80x
//! tokio-postgres         49346   2.13x    503 µs    9.3 µs  0.42x
//! library (repo.get)     28108   1.22x    844 µs   18.7 µs  0.85x
//! ```
//!
//! Where sqlx loses (perf, DWARF call graphs): three `send`s per statement,
//! each waking the server's backend: the ping on acquire, the statement,
//! and the ping sqlx 0.9 always sends when a connection goes back to its
//! pool (`Floating::return_to_pool`, not configurable). tokio-postgres
//! sends one. The library now skips the acquire ping on connections used
//! in the last second (`PING_IF_IDLE_FOR`); the release ping is what is left
//! of the gap, with sqlx's per-statement work. In the first run, with the
//! default `sslmode=prefer`, sqlx also spent its CPU in rustls: 27 µs per
//! read against tokio-postgres' 8.9 µs in plain TCP.
use persistence_testing::bench::{env, median, process_cpu};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};
use persistence_core::{Entity, Repository};
use persistence_postgres::sea_orm::sqlx::{self, Row as _};
use persistence_postgres::{RelationalConfig, RelationalStore, SslMode};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(name = "bench_conc")]
struct Item {
    #[entity(id)]
    id: i64,
    tier: i32,
    score: f64,
    name: String,
    created_at: DateTime<Utc>,
    tag: Option<String>,
    qty: i64,
    active: bool,
    note: String,
}

fn item(i: i64) -> Item {
    Item {
        id: i,
        tier: (i % 10) as i32,
        score: ((i * 7919) % 100_000) as f64 / 100.0,
        name: format!("name-{i:06}"),
        created_at: Utc
            .timestamp_opt(1_700_000_000 + i, 0)
            .single()
            .unwrap_or_default(),
        tag: (i % 3 == 0).then(|| format!("tag{}", i % 7)),
        qty: i * 3,
        active: i % 2 == 0,
        note: format!("a note of some length for row {i}"),
    }
}

const COLS: &str =
    "\"id\", \"tier\", \"score\", \"name\", \"created_at\", \"tag\", \"qty\", \"active\", \"note\"";

/// A xorshift generator per task: uniform ids without a shared lock.
struct Ids(u64, i64);

impl Ids {
    fn next(&mut self) -> i64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % self.1 as u64) as i64
    }
}

#[derive(Clone)]
enum Side {
    Sqlx(sqlx::PgPool, Arc<str>),
    SqlxNoPing(sqlx::PgPool, Arc<str>),
    TokioPg(deadpool_postgres::Pool, Arc<str>),
    Library(Arc<persistence_postgres::RelationalRepository<Item>>),
}

impl Side {
    fn name(&self) -> &'static str {
        match self {
            Side::Sqlx(..) => "sqlx",
            Side::SqlxNoPing(..) => "sqlx-no-acquire-ping",
            Side::TokioPg(..) => "tokio-postgres",
            Side::Library(_) => "library (repo.get)",
        }
    }

    async fn get(&self, id: i64) -> Option<Item> {
        match self {
            Side::Sqlx(pool, sql) | Side::SqlxNoPing(pool, sql) => {
                sqlx::query(sqlx::AssertSqlSafe(&**sql))
                    .bind(id)
                    .fetch_optional(pool)
                    .await
                    .expect("sqlx read")
                    .map(|r| Item {
                        id: r.get(0),
                        tier: r.get(1),
                        score: r.get(2),
                        name: r.get(3),
                        created_at: r.get(4),
                        tag: r.get(5),
                        qty: r.get(6),
                        active: r.get(7),
                        note: r.get(8),
                    })
            }
            Side::TokioPg(pool, sql) => {
                let client = pool.get().await.expect("deadpool-postgres");
                let stmt = client.prepare_cached(sql).await.expect("prepare");
                client
                    .query_opt(&stmt, &[&id])
                    .await
                    .expect("tokio-postgres read")
                    .map(|r| Item {
                        id: r.get(0),
                        tier: r.get(1),
                        score: r.get(2),
                        name: r.get(3),
                        created_at: r.get(4),
                        tag: r.get(5),
                        qty: r.get(6),
                        active: r.get(7),
                        note: r.get(8),
                    })
            }
            Side::Library(repo) => repo.get(&id).await.expect("library read"),
        }
    }
}

struct Outcome {
    ops: u64,
    wall: Duration,
    cpu: Option<Duration>,
    lat: Vec<Duration>,
}

async fn run(side: &Side, tasks: usize, secs: u64, rows: i64) -> Outcome {
    let stop = Arc::new(AtomicBool::new(false));
    let cpu0 = process_cpu();
    let t0 = Instant::now();
    let handles: Vec<_> = (0..tasks)
        .map(|t| {
            let (side, stop) = (side.clone(), stop.clone());
            tokio::spawn(async move {
                let mut ids = Ids(0x9E37_79B9_7F4A_7C15 ^ ((t as u64 + 1) * 0x1000_0001), rows);
                let mut lat = Vec::with_capacity(1 << 14);
                while !stop.load(Ordering::Relaxed) {
                    let id = ids.next();
                    let t = Instant::now();
                    let got = side.get(id).await;
                    lat.push(t.elapsed());
                    assert_eq!(got.map(|i| i.id), Some(id));
                }
                lat
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(secs)).await;
    stop.store(true, Ordering::Relaxed);
    let mut lat = Vec::new();
    for h in handles {
        lat.extend(h.await.expect("task"));
    }
    let wall = t0.elapsed();
    let cpu = process_cpu().zip(cpu0).map(|(b, a)| b - a);
    Outcome {
        ops: lat.len() as u64,
        wall,
        cpu,
        lat,
    }
}

fn us(d: Duration) -> String {
    format!("{:.1}µs", d.as_secs_f64() * 1e6)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string());
    let rows = env("BENCH_ROWS", 100_000) as i64;
    let tasks = env("BENCH_TASKS", 32);
    let pool_size = env("BENCH_POOL", 16);
    let secs = env("BENCH_SECS", 5) as u64;
    let rounds = env("BENCH_ROUNDS", 3);
    let schema = format!("bench_conc_{}", std::process::id());

    let store = RelationalStore::connect(
        &RelationalConfig::new(url.clone())
            .schema(schema.clone())
            .ssl_mode(SslMode::Disable)
            .max_connections(pool_size as u32),
    )
    .await
    .expect("connect to PostgreSQL");
    let repo = store.repository::<Item>();
    repo.ensure_schema().await.expect("schema");
    let data: Vec<Item> = (0..rows).map(item).collect();
    repo.bulk_insert(&data).await.expect("load");
    let table = repo.table_name().to_string();
    let sql: Arc<str> = format!("SELECT {COLS} FROM {table} WHERE \"id\" = $1").into();

    let options: sqlx::postgres::PgConnectOptions = url.parse().expect("sqlx URL");
    let options = options.ssl_mode(sqlx::postgres::PgSslMode::Disable);
    let sqlx_pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(pool_size as u32)
        .min_connections(pool_size as u32)
        .connect_with(options.clone())
        .await
        .expect("sqlx pool");
    let sqlx_no_ping = sqlx::postgres::PgPoolOptions::new()
        .max_connections(pool_size as u32)
        .min_connections(pool_size as u32)
        .test_before_acquire(false)
        .connect_with(options)
        .await
        .expect("sqlx pool");
    sqlx::query(sqlx::AssertSqlSafe(format!("ANALYZE {table}")))
        .execute(&sqlx_pool)
        .await
        .expect("analyze");
    let pg_config: tokio_postgres::Config = url.parse().expect("tokio-postgres URL");
    let manager = deadpool_postgres::Manager::from_config(
        pg_config,
        tokio_postgres::NoTls,
        deadpool_postgres::ManagerConfig {
            recycling_method: deadpool_postgres::RecyclingMethod::Fast,
        },
    );
    let tp_pool = deadpool_postgres::Pool::builder(manager)
        .max_size(pool_size)
        .build()
        .expect("deadpool-postgres pool");

    // `BENCH_SIDES=sqlx` (or `sqlx-no-acquire-ping`, `tokio-postgres`, `library`;
    // comma-separated)
    // runs only those, e.g. under `perf record`; the first side run is the
    // base of the ratios.
    let only = std::env::var("BENCH_SIDES").unwrap_or_default();
    let sides: Vec<Side> = [
        Side::Sqlx(sqlx_pool.clone(), sql.clone()),
        Side::SqlxNoPing(sqlx_no_ping.clone(), sql.clone()),
        Side::TokioPg(tp_pool.clone(), sql.clone()),
        Side::Library(Arc::new(store.repository::<Item>())),
    ]
    .into_iter()
    .filter(|s| {
        only.is_empty()
            || only
                .split(',')
                .any(|o| s.name().split(' ').next() == Some(o.trim()))
    })
    .collect();
    // Warm every pool (connections open, statements prepared) and check
    // that every side reads the same row.
    for side in &sides {
        assert_eq!(side.get(7).await, Some(item(7)), "{}", side.name());
        run(side, tasks, 1, rows).await;
    }
    println!(
        "point reads by id, {rows} rows, {tasks} tasks, pool {pool_size}, {secs}s x {rounds} rounds"
    );
    let mut per_side: Vec<Vec<Outcome>> = sides.iter().map(|_| Vec::new()).collect();
    for round in 0..rounds {
        for k in 0..sides.len() {
            let i = (round + k) % sides.len();
            let o = run(&sides[i], tasks, secs, rows).await;
            println!(
                "  round {round} {:<20} {:>9.0} ops/s  cpu/op {}",
                sides[i].name(),
                o.ops as f64 / o.wall.as_secs_f64(),
                o.cpu.map_or("-".into(), |c| us(c / o.ops.max(1) as u32)),
            );
            per_side[i].push(o);
        }
    }
    let total = |os: &[Outcome]| {
        let ops: u64 = os.iter().map(|o| o.ops).sum();
        let wall: Duration = os.iter().map(|o| o.wall).sum();
        let cpu: Option<Duration> = os.iter().map(|o| o.cpu).sum();
        (
            ops as f64 / wall.as_secs_f64(),
            cpu.map(|c| c / ops.max(1) as u32),
        )
    };
    let (base, base_cpu) = total(&per_side[0]);
    println!(
        "\n{:<20} {:>10} {:>8} {:>9} {:>9} {:>10} {:>8}",
        "side", "ops/s", "ratio", "p50", "p99", "cpu/op", "ratio"
    );
    for (side, os) in sides.iter().zip(&mut per_side) {
        let (rate, cpu) = total(os);
        let mut lat: Vec<Duration> = os.iter_mut().flat_map(|o| o.lat.drain(..)).collect();
        let p50 = median(&mut lat);
        let p99 = lat[(lat.len() * 99 / 100).min(lat.len().saturating_sub(1))];
        let cpu_ratio = cpu.zip(base_cpu).map_or("-".into(), |(c, b)| {
            format!("{:.2}x", c.as_secs_f64() / b.as_secs_f64())
        });
        println!(
            "{:<20} {:>10.0} {:>7.2}x {:>9} {:>9} {:>10} {:>8}",
            side.name(),
            rate,
            rate / base,
            us(p50),
            us(p99),
            cpu.map_or("-".into(), us),
            cpu_ratio
        );
    }

    sqlx_pool.close().await;
    sqlx_no_ping.close().await;
    tp_pool.close();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"
    )))
    .execute(&store.connection().get_postgres_connection_pool().clone())
    .await
    .expect("drop the bench schema");
    store.close().await;
}
