//! YCSB-style workloads on the local PostgreSQL (and Redis for the cached
//! run), side by side in one run: raw sqlx with the SQL a DBA would write,
//! sea-orm 2's entity API, this library's repository used directly, through
//! the `Persistence` manager (default layers: timeout, retry, breaker,
//! metrics) and through the manager with the read-through cache (moka L1 +
//! Redis L2).
//!
//! ```text
//! cargo bench -p persistence --bench ycsb
//! BENCH_RECORDS=100000 BENCH_SECS=10 BENCH_TASKS=16 BENCH_WORKLOADS=A,B,C,F cargo bench -p persistence --bench ycsb
//! BENCH_SYSTEMS=direct,cached BENCH_WORKLOADS=W cargo bench -p persistence --bench ycsb
//! ```
//!
//! `BENCH_SYSTEMS` picks systems by short name (`raw`, `seaorm`, `direct`,
//! `manager`, `cached`; all by default); a ratio column shows `-` when its
//! baseline is not among them.
//!
//! The workloads are YCSB's core ones over `BENCH_RECORDS` records (100,000)
//! of ten 100-byte text fields, keys drawn from a scrambled Zipfian
//! distribution (θ = 0.99), `BENCH_TASKS` (16) tasks sharing one pool of
//! `BENCH_CONNECTIONS` (16) connections per system:
//!
//! * A, update heavy: 50 % reads, 50 % updates;
//! * B, read mostly: 95 % reads, 5 % updates;
//! * C, read only;
//! * F, read-modify-write: 50 % reads, 50 % read-then-update of one record;
//! * W (only when named in `BENCH_WORKLOADS`; not one of YCSB's): updates
//!   only, so every system has all its tasks writing.
//!
//! A read fetches the whole record; an update sets one field (`field0`), as
//! YCSB's default (`writeallfields=false`) does. The library updates with
//! `patch` (which returns the stored record, as every write of the
//! repository does); raw sqlx and sea-orm (`update_many` with one column)
//! run a plain `UPDATE … WHERE id = $1`.
//!
//! Every system runs each workload for `BENCH_SECS` (10) seconds after one
//! second of warm-up, in `BENCH_ROUNDS` (2) rounds whose order alternates;
//! the table prints ops/s, p50 and p99 latency (of all operations, then of
//! reads and of operations that write apart), the ratio of ops/s to raw
//! sqlx and to the repository used directly (higher is better) for the
//! best round of each, and for the cached system where its reads were
//! answered in that round.
//!
//! **A warm cache** (`BENCH_WARM=1`, the default): before the workloads the
//! cached system reads every record once, as a cache in service has long
//! done, and its TTL (`BENCH_CACHE_TTL`, 1800 s) outlasts the run. Without
//! it, the first ~10 s of a run over 100,000 Zipfian keys is mostly first
//! reads: a third of the reads of a 40,000-operation run are of a key not
//! read before in it (a half at 4,000, a fifth at 200,000), and each such
//! miss costs a PostgreSQL read plus Redis round trips on the two cores
//! PostgreSQL, Redis and the benchmark share. `BENCH_WARM=0` measures that
//! cold start instead. PostgreSQL's own cache is warm for every system:
//! the records were just written. L1 keeps the manager's default (10,000
//! entries, a tenth of the records); `BENCH_L1_MAX_BYTES` sizes it in
//! bytes instead (`l1_max_bytes`; 268435456 holds every record).
//!
//! **Stale reads** are counted, not assumed: every update bumps the record's
//! `version` (the library's `#[entity(version)]` field; raw sqlx and sea-orm
//! set `version = version + 1` and return it), so PostgreSQL's row lock
//! orders the updates of a key and each returns its place in that order; a
//! read that starts after an update returning version *n* was acknowledged
//! and returns a version older than *n* is stale. Every system must report
//! 0. Updates of one key are serialized only by PostgreSQL, as in an
//! application: (until 2026-12 a lock in the benchmark ordered them, held
//! across the whole call, so it also serialized the cache's Redis round
//! trip after each write of a hot key, which no application's writers wait
//! for.)
//!
//! The keys are scrambled with FNV-1a like YCSB's `ScrambledZipfianGenerator`
//! but drawn over the record count itself (YCSB draws over 10^10 and hashes
//! down), so the hottest keys are the same few records in every run. The
//! generator is YCSB's (Gray et al., "Quickly generating billion-record
//! synthetic databases", SIGMOD 1994), written out here because the point is
//! to reproduce YCSB's distribution rather than another Zipf sampler's.
//!
//! Everything happens in schemas of the benchmark's own, dropped at the end:
//! one table for the uncached systems and a copy for the cached one (the
//! others' writes would bypass its cache, which no application that caches a
//! table does). The uncached manager runs with `cache: { default: { disabled:
//! true } }`, since the manager caches in process by default.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use persistence::cache::Stats as CacheStats;
use persistence::config::ConfigLoader;
use persistence::postgres::sea_orm::sqlx::{self, Row as _};
use persistence::postgres::{RelationalConfig, RelationalRepository, RelationalStore};
use persistence::{Entity, Guard, Persistence, Repository, SharedRepository, Update};
use persistence_testing::bench::env;
use sea_orm::{
    ColumnTrait as _, ConnectOptions, Database, DatabaseConnection, EntityTrait as _,
    QueryFilter as _,
};
use serde::{Deserialize, Serialize};

/// One YCSB record: an id and ten 100-byte fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(name = "ycsb_usertable")]
struct Record {
    #[entity(id)]
    id: i64,
    field0: String,
    field1: String,
    field2: String,
    field3: String,
    field4: String,
    field5: String,
    field6: String,
    field7: String,
    field8: String,
    field9: String,
    /// Bumped by every write of the record: the cache orders writes of a
    /// key by it (one Redis round trip per write-through).
    #[entity(version)]
    version: i64,
}

/// The same table through sea-orm's entity API (the search path selects the
/// benchmark's schema).
mod usertable {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "ycsb_usertable")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: i64,
        pub field0: String,
        pub field1: String,
        pub field2: String,
        pub field3: String,
        pub field4: String,
        pub field5: String,
        pub field6: String,
        pub field7: String,
        pub field8: String,
        pub field9: String,
        pub version: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

const FIELD_LEN: usize = 100;

/// A 100-byte field value starting with `seq`.
fn field(seq: u64, tag: char) -> String {
    let mut s = format!("{seq}:");
    while s.len() < FIELD_LEN {
        s.push(tag);
    }
    s
}

fn record(id: i64) -> Record {
    let f = |c| field(0, c);
    Record {
        id,
        field0: f('a'),
        field1: f('b'),
        field2: f('c'),
        field3: f('d'),
        field4: f('e'),
        field5: f('f'),
        field6: f('g'),
        field7: f('h'),
        field8: f('i'),
        field9: f('j'),
        version: 0,
    }
}

/// YCSB's Zipfian generator over `0..n` with constant `theta`, scrambled.
struct Zipf {
    n: u64,
    theta: f64,
    alpha: f64,
    zetan: f64,
    eta: f64,
}

impl Zipf {
    fn new(n: u64, theta: f64) -> Zipf {
        let zeta = |n: u64| (1..=n).map(|i| 1.0 / (i as f64).powf(theta)).sum::<f64>();
        let zetan = zeta(n);
        let zeta2 = zeta(2);
        Zipf {
            n,
            theta,
            alpha: 1.0 / (1.0 - theta),
            zetan,
            eta: (1.0 - (2.0 / n as f64).powf(1.0 - theta)) / (1.0 - zeta2 / zetan),
        }
    }

    /// The rank (0 = hottest) for a uniform `u` in [0, 1).
    fn rank(&self, u: f64) -> u64 {
        let uz = u * self.zetan;
        if uz < 1.0 {
            return 0;
        }
        if uz < 1.0 + 0.5f64.powf(self.theta) {
            return 1;
        }
        let r = (self.n as f64 * (self.eta * u - self.eta + 1.0).powf(self.alpha)) as u64;
        r.min(self.n - 1)
    }

    /// A key: the rank scrambled with FNV-1a (64-bit), as YCSB does.
    fn key(&self, u: f64) -> i64 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in self.rank(u).to_le_bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        (h % self.n) as i64
    }
}

/// What each system under test can do.
enum System {
    Raw(sqlx::PgPool, String),
    SeaOrm(DatabaseConnection),
    Direct(RelationalRepository<Record>),
    Manager(SharedRepository<Record>),
    Cached(SharedRepository<Record>),
}

impl System {
    /// The short name `BENCH_SYSTEMS` selects it by.
    fn id(&self) -> &'static str {
        match self {
            System::Raw(..) => "raw",
            System::SeaOrm(_) => "seaorm",
            System::Direct(_) => "direct",
            System::Manager(_) => "manager",
            System::Cached(_) => "cached",
        }
    }

    fn name(&self) -> &'static str {
        match self {
            System::Raw(..) => "raw sqlx (hand-written SQL)",
            System::SeaOrm(_) => "sea-orm entity API",
            System::Direct(_) => "repository, direct",
            System::Manager(_) => "repository, through the manager",
            System::Cached(_) => "repository, manager + cache L1/L2",
        }
    }

    /// Read record `id`; its version.
    async fn read(&self, id: i64) -> i64 {
        match self {
            System::Raw(pool, table) => {
                let sql = format!(
                    "SELECT id, field0, field1, field2, field3, field4, field5, field6, field7, field8, field9, version FROM {table} WHERE id = $1"
                );
                let row = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(id)
                    .fetch_one(pool)
                    .await
                    .expect("raw read");
                let fields: Vec<String> = (1..=10).map(|i| row.get::<String, _>(i)).collect();
                std::hint::black_box(fields);
                row.get::<i64, _>(11)
            }
            System::SeaOrm(db) => {
                usertable::Entity::find_by_id(id)
                    .one(db)
                    .await
                    .expect("sea-orm read")
                    .expect("record")
                    .version
            }
            System::Direct(repo) => repo.get(&id).await.expect("read").expect("record").version,
            System::Manager(repo) | System::Cached(repo) => {
                repo.get(&id).await.expect("read").expect("record").version
            }
        }
    }

    /// Set `field0` of record `id`; the version the update produced.
    async fn update(&self, id: i64, value: String) -> i64 {
        match self {
            System::Raw(pool, table) => {
                let sql = format!(
                    "UPDATE {table} SET field0 = $1, version = version + 1 WHERE id = $2 RETURNING version"
                );
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(value)
                    .bind(id)
                    .fetch_one(pool)
                    .await
                    .expect("raw update")
                    .get::<i64, _>(0)
            }
            System::SeaOrm(db) => {
                usertable::Entity::update_many()
                    .col_expr(
                        usertable::Column::Field0,
                        sea_orm::sea_query::Expr::value(value),
                    )
                    .col_expr(
                        usertable::Column::Version,
                        sea_orm::ExprTrait::add(
                            sea_orm::sea_query::Expr::col(usertable::Column::Version),
                            1,
                        ),
                    )
                    .filter(usertable::Column::Id.eq(id))
                    .exec_with_returning(db)
                    .await
                    .expect("sea-orm update")
                    .first()
                    .expect("record")
                    .version
            }
            System::Direct(repo) => {
                let u = Update::<Record>::new().set(Record::FIELD0, value);
                repo.patch(&id, &u, &Guard::none())
                    .await
                    .expect("update")
                    .version
            }
            System::Manager(repo) | System::Cached(repo) => {
                let u = Update::<Record>::new().set(Record::FIELD0, value);
                repo.patch(&id, &u, &Guard::none())
                    .await
                    .expect("update")
                    .version
            }
        }
    }
}

/// A workload: the share of reads, updates and read-modify-writes.
#[derive(Clone, Copy)]
struct Workload {
    name: char,
    read: f64,
    update: f64,
}

const WORKLOADS: [Workload; 5] = [
    Workload {
        name: 'A',
        read: 0.5,
        update: 0.5,
    },
    Workload {
        name: 'B',
        read: 0.95,
        update: 0.05,
    },
    Workload {
        name: 'C',
        read: 1.0,
        update: 0.0,
    },
    // The rest (50 %) is read-modify-write.
    Workload {
        name: 'F',
        read: 0.5,
        update: 0.0,
    },
    // Not YCSB's, and not run unless named: updates only, to see what the
    // cache adds to a write with the writers' concurrency held equal.
    Workload {
        name: 'W',
        read: 0.0,
        update: 1.0,
    },
];

/// The shared state of one run: the highest acknowledged version of each
/// key, and a sequence for the values written.
struct Keys {
    acked: Vec<AtomicI64>,
    seq: AtomicU64,
    stale: AtomicUsize,
}

impl Keys {
    fn new(n: usize) -> Keys {
        Keys {
            acked: (0..n).map(|_| AtomicI64::new(0)).collect(),
            seq: AtomicU64::new(0),
            stale: AtomicUsize::new(0),
        }
    }

    async fn read(&self, sys: &System, id: i64) {
        let before = self.acked[id as usize].load(Ordering::SeqCst);
        let got = sys.read(id).await;
        if got < before {
            self.stale.fetch_add(1, Ordering::Relaxed);
        }
    }

    async fn update(&self, sys: &System, id: i64) {
        let seq = self.seq.fetch_add(1, Ordering::SeqCst) + 1;
        let version = sys.update(id, field(seq, 'u')).await;
        self.acked[id as usize].fetch_max(version, Ordering::SeqCst);
    }
}

/// What an operation of a workload did (for the latency split).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    Read,
    /// An update, or a read-modify-write.
    Write,
}

/// One measured run.
struct Outcome {
    ops: usize,
    elapsed: Duration,
    p50: Duration,
    p99: Duration,
    read_p50: Option<Duration>,
    write_p50: Option<Duration>,
    stale: usize,
    /// The cached system's counters over the run (None for the others).
    cache: Option<CacheStats>,
}

impl Outcome {
    fn ops_per_sec(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64()
    }
}

async fn run(
    sys: Arc<System>,
    keys: Arc<Keys>,
    zipf: Arc<Zipf>,
    w: Workload,
    tasks: usize,
    warmup: Duration,
    secs: Duration,
) -> Outcome {
    let start = Instant::now();
    let measure_from = start + warmup;
    let end = measure_from + secs;
    let stale_before = keys.stale.load(Ordering::SeqCst);
    let handles: Vec<_> = (0..tasks)
        .map(|t| {
            let (sys, keys, zipf) = (sys.clone(), keys.clone(), zipf.clone());
            tokio::spawn(async move {
                let mut rng = fastrand::Rng::with_seed(0x5eed + t as u64);
                let mut lat: Vec<(Duration, Op)> = Vec::with_capacity(100_000);
                loop {
                    let now = Instant::now();
                    if now >= end {
                        break;
                    }
                    let id = zipf.key(rng.f64());
                    let op = rng.f64();
                    let kind = if op < w.read {
                        keys.read(&sys, id).await;
                        Op::Read
                    } else if op < w.read + w.update {
                        keys.update(&sys, id).await;
                        Op::Write
                    } else {
                        keys.read(&sys, id).await;
                        keys.update(&sys, id).await;
                        Op::Write
                    };
                    if now >= measure_from {
                        lat.push((now.elapsed(), kind));
                    }
                }
                lat
            })
        })
        .collect();
    let mut all = Vec::new();
    for h in handles {
        all.extend(h.await.expect("task"));
    }
    all.sort_unstable_by_key(|(d, _)| *d);
    let pct = |of: &[Duration], p: f64| {
        of.get(((of.len() as f64 * p) as usize).min(of.len().saturating_sub(1)))
            .copied()
    };
    // The latencies of operations of `kind` (None: all), still sorted.
    let of = |kind: Option<Op>| -> Vec<Duration> {
        all.iter()
            .filter(|(_, k)| kind.is_none_or(|want| *k == want))
            .map(|(d, _)| *d)
            .collect()
    };
    let every = of(None);
    Outcome {
        ops: all.len(),
        elapsed: secs,
        p50: pct(&every, 0.50).unwrap_or_default(),
        p99: pct(&every, 0.99).unwrap_or_default(),
        read_p50: pct(&of(Some(Op::Read)), 0.50),
        write_p50: pct(&of(Some(Op::Write)), 0.50),
        stale: keys.stale.load(Ordering::SeqCst) - stale_before,
        cache: None,
    }
}

/// Read every record once through `sys`, with `tasks` tasks.
async fn warm(sys: Arc<System>, records: usize, tasks: usize) {
    let handles: Vec<_> = (0..tasks)
        .map(|t| {
            let sys = sys.clone();
            tokio::spawn(async move {
                for id in (t..records).step_by(tasks) {
                    sys.read(id as i64).await;
                }
            })
        })
        .collect();
    for h in handles {
        h.await.expect("warm task");
    }
}

/// `after - before`, counter by counter (the ones the table shows).
fn cache_delta(before: CacheStats, after: CacheStats) -> CacheStats {
    let mut d = after;
    d.l1_hits -= before.l1_hits;
    d.l1_misses -= before.l1_misses;
    d.l2_hits -= before.l2_hits;
    d.l2_misses -= before.l2_misses;
    d.loads -= before.loads;
    d.write_throughs -= before.write_throughs;
    d.l2_errors -= before.l2_errors;
    d
}

/// Where the cached system's reads were answered, in words.
fn cache_line(c: &CacheStats) -> String {
    let reads = (c.l1_hits + c.l1_misses).max(1) as f64;
    format!(
        "reads answered by L1 {:.1} %, by L2 {:.1} %, loaded {:.1} %; {} write-throughs, {} Redis errors",
        100.0 * c.l1_hits as f64 / reads,
        100.0 * c.l2_hits as f64 / reads,
        100.0 * c.loads as f64 / reads,
        c.write_throughs,
        c.l2_errors
    )
}

/// The cache settings of the cached system.
struct CacheSettings<'a> {
    redis: &'a str,
    ttl: Duration,
    l1_max_bytes: Option<u64>,
}

fn manager_yaml(url: &str, schema: &str, cache: Option<&CacheSettings<'_>>, pool: usize) -> String {
    let mut y = format!(
        "databases:\n  main:\n    kind: postgres\n    url: \"{url}\"\n    schema: {schema}\n    pool: {{ max_connections: {pool} }}\n"
    );
    match cache {
        Some(c) => y.push_str(&format!(
            "  cache:\n    kind: redis\n    url: \"{}\"\n    pool: {{ max_connections: {pool} }}\ncache:\n  default: {{ ttl: {}s, l2: cache{} }}\n",
            c.redis,
            c.ttl.as_secs(),
            c.l1_max_bytes
                .map_or_else(String::new, |b| format!(", l1_max_bytes: {b}"))
        )),
        // The manager caches in process by default: off, to measure the layers alone.
        None => y.push_str("cache:\n  default: { disabled: true }\n"),
    }
    y
}

async fn manager(yaml: &str) -> (Persistence, SharedRepository<Record>) {
    let config = ConfigLoader::new()
        .text("persistence.yaml", yaml)
        .env(Vec::new())
        .load()
        .expect("config");
    let p = Persistence::new(config).expect("manager");
    let repo = p.repo::<Record>().await.expect("repository");
    (p, repo)
}

#[tokio::main]
async fn main() {
    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string());
    let redis = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_string());
    let records = env("BENCH_RECORDS", 100_000);
    let tasks = env("BENCH_TASKS", 16);
    let conns = env("BENCH_CONNECTIONS", 16);
    let secs = Duration::from_secs(env("BENCH_SECS", 10) as u64);
    let rounds = env("BENCH_ROUNDS", 2);
    let warm_cache = env("BENCH_WARM", 1) != 0;
    let cache_settings = CacheSettings {
        redis: &redis,
        ttl: Duration::from_secs(env("BENCH_CACHE_TTL", 1800) as u64),
        l1_max_bytes: std::env::var("BENCH_L1_MAX_BYTES")
            .ok()
            .map(|v| v.parse().expect("BENCH_L1_MAX_BYTES: a number of bytes")),
    };
    let only = std::env::var("BENCH_WORKLOADS").unwrap_or_else(|_| "A,B,C,F".to_string());
    let workloads: Vec<Workload> = WORKLOADS
        .into_iter()
        .filter(|w| {
            only.split(',')
                .any(|s| s.trim().eq_ignore_ascii_case(&w.name.to_string()))
        })
        .collect();

    let schema = format!("bench_ycsb_{}", std::process::id());
    let store = RelationalStore::connect(
        &RelationalConfig::new(url.clone())
            .schema(schema.clone())
            .max_connections(conns as u32),
    )
    .await
    .expect("connect to PostgreSQL");
    let direct = store.repository::<Record>();
    direct.ensure_schema().await.expect("schema");
    let table = direct.table_name().to_string();
    // The cached system gets a table of its own (the same records): the
    // other systems' writes would bypass its cache, which no application
    // that caches a table does.
    let cached_schema = format!("{schema}_cached");
    let cached_store = RelationalStore::connect(
        &RelationalConfig::new(url.clone())
            .schema(cached_schema.clone())
            .max_connections(4),
    )
    .await
    .expect("connect to PostgreSQL");
    let cached_table = cached_store.repository::<Record>();
    cached_table.ensure_schema().await.expect("schema");
    let load = Instant::now();
    let data: Vec<Record> = (0..records as i64).map(record).collect();
    for chunk in data.chunks(20_000) {
        direct.bulk_insert(chunk).await.expect("load");
        cached_table.bulk_insert(chunk).await.expect("load");
    }
    println!("loaded {records} records twice in {:.1?}", load.elapsed());
    drop(data);

    let raw = sqlx::postgres::PgPoolOptions::new()
        .max_connections(conns as u32)
        .connect(&url)
        .await
        .expect("raw pool");
    let mut opts = ConnectOptions::new(url.clone());
    opts.max_connections(conns as u32)
        .set_schema_search_path(schema.clone())
        .sqlx_logging(false);
    let sea = Database::connect(opts).await.expect("sea-orm connect");
    let (plain, managed) = manager(&manager_yaml(&url, &schema, None, conns)).await;
    let (cached_p, cached) = manager(&manager_yaml(
        &url,
        &cached_schema,
        Some(&cache_settings),
        conns,
    ))
    .await;

    let mut systems: Vec<Arc<System>> = vec![
        Arc::new(System::Raw(raw, table)),
        Arc::new(System::SeaOrm(sea)),
        Arc::new(System::Direct(direct)),
        Arc::new(System::Manager(managed)),
        Arc::new(System::Cached(cached)),
    ];
    let chosen = std::env::var("BENCH_SYSTEMS")
        .unwrap_or_else(|_| "raw,seaorm,direct,manager,cached".to_string());
    systems.retain(|s| chosen.split(',').any(|c| c.trim() == s.id()));
    let zipf = Arc::new(Zipf::new(records as u64, 0.99));
    // One record of acknowledged writes per table: the uncached systems share
    // one table, the cached one has its own.
    let shared_keys = Arc::new(Keys::new(records));
    let cached_keys = Arc::new(Keys::new(records));
    let keys_of = |sys: &System| match sys {
        System::Cached(_) => cached_keys.clone(),
        _ => shared_keys.clone(),
    };
    let warmup = Duration::from_secs(1);
    let cache_stats = || {
        cached_p
            .cache_stats("main", Record::meta().name)
            .unwrap_or_default()
    };
    let cached_sys = systems
        .iter()
        .find(|s| matches!(***s, System::Cached(_)))
        .cloned();
    if let (true, Some(cached_sys)) = (warm_cache, cached_sys) {
        let t = Instant::now();
        warm(cached_sys, records, tasks).await;
        println!(
            "warmed the cache: read every record once in {:.1?} ({})",
            t.elapsed(),
            cache_line(&cache_stats())
        );
    } else {
        println!("cold cache (BENCH_WARM=0): the runs start with an empty cache");
    }

    println!(
        "\n{records} records, {tasks} tasks, {conns} connections per system, {} s per run, best of {rounds} rounds",
        secs.as_secs()
    );
    println!(
        "{:<9} {:<36} {:>10} {:>10} {:>10} {:>10} {:>10} {:>8} {:>9} {:>6}",
        "workload",
        "system",
        "ops/s",
        "p50",
        "p99",
        "read p50",
        "write p50",
        "vs raw",
        "vs direct",
        "stale"
    );
    for w in &workloads {
        let mut best: Vec<Option<Outcome>> = systems.iter().map(|_| None).collect();
        for round in 0..rounds {
            let order: Vec<usize> = if round % 2 == 0 {
                (0..systems.len()).collect()
            } else {
                (0..systems.len()).rev().collect()
            };
            for i in order {
                let is_cached = matches!(*systems[i], System::Cached(_));
                let stats_before = cache_stats();
                let mut o = run(
                    systems[i].clone(),
                    keys_of(&systems[i]),
                    zipf.clone(),
                    *w,
                    tasks,
                    warmup,
                    secs,
                )
                .await;
                if is_cached {
                    o.cache = Some(cache_delta(stats_before, cache_stats()));
                }
                let stale_total = best[i].as_ref().map_or(0, |b| b.stale) + o.stale;
                let keep = best[i]
                    .as_ref()
                    .is_none_or(|b| o.ops_per_sec() > b.ops_per_sec());
                if keep {
                    best[i] = Some(Outcome {
                        stale: stale_total,
                        ..o
                    });
                } else if let Some(b) = best[i].as_mut() {
                    b.stale = stale_total;
                }
            }
        }
        let ops_of = |id: &str| {
            systems
                .iter()
                .zip(&best)
                .find(|(s, _)| s.id() == id)
                .and_then(|(_, o)| o.as_ref().map(Outcome::ops_per_sec))
        };
        let ratio = |o: &Outcome, of: Option<f64>| {
            of.map_or_else(
                || "-".to_string(),
                |b| format!("{:.2}x", o.ops_per_sec() / b),
            )
        };
        let (raw_ops, direct_ops) = (ops_of("raw"), ops_of("direct"));
        let opt = |d: Option<Duration>| d.map_or_else(|| "-".to_string(), |d| format!("{d:.1?}"));
        for (sys, o) in systems.iter().zip(&best) {
            let o = o.as_ref().expect("measured");
            println!(
                "{:<9} {:<36} {:>10.0} {:>10.1?} {:>10.1?} {:>10} {:>10} {:>8} {:>9} {:>6}",
                w.name,
                sys.name(),
                o.ops_per_sec(),
                o.p50,
                o.p99,
                opt(o.read_p50),
                opt(o.write_p50),
                ratio(o, raw_ops),
                ratio(o, direct_ops),
                o.stale
            );
            if let Some(c) = &o.cache {
                println!("{:<9} {:<36} {}", "", "  (its best round)", cache_line(c));
            }
        }
    }

    plain.shutdown().await;
    cached_p.shutdown().await;
    store.drop_schema().await.expect("drop bench schema");
    store.close().await;
    cached_store.drop_schema().await.expect("drop bench schema");
    cached_store.close().await;
}
