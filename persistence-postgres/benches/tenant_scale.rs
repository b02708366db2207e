//! Schema-per-tenant at scale: throughput and server memory per connection
//! with 1 tenant vs many, in one run (issue #20 item 1).
//!
//! ```text
//! cargo bench -p persistence-postgres --bench tenant_scale
//! BENCH_TENANTS=1000 BENCH_TASKS=64 BENCH_POOL=16 BENCH_SECS=3 cargo bench ...
//! BENCH_VARIANTS=default,shards cargo bench ...   # a subset of the variants
//! ```
//!
//! `BENCH_TENANTS` tenants (1,000), two entities each, `BENCH_ROWS` rows
//! per table (10). `BENCH_TASKS` tasks (64) loop for `BENCH_WARM` + `BENCH_SECS`
//! seconds (1 + 3; only the last ones count), each iteration a point read
//! and an insert on one entity of one tenant, chosen uniformly or by a
//! Zipf law (s = 1) over the tenants. Every variant connects a fresh pool
//! of `BENCH_POOL` connections (16), so its server caches start empty:
//!
//! * `default`: the library as configured by default (statement cache 100);
//! * `cache=N`: statement cache of N statements per connection;
//! * `shards=K`: tenant-affine routing, K groups of `POOL / K` connections,
//!   statement cache sized for the group's tenants;
//! * `search_path`: the library with `TenantStatements::SearchPath` (bare
//!   table names; `BEGIN`, `set_config('search_path', .., true)`, the
//!   statement, `COMMIT`); `search_path+shards=K` the same on K
//!   tenant-affine groups;
//! * `raw_search_path`: raw sqlx, the same statements under
//!   `BEGIN; SET LOCAL search_path` (one round trip), statement, `COMMIT`
//!   (what one round trip less would give); `raw_search_path+shards=K`;
//! * `row-level`: one shared table, `for_tenant` (RLS as a non-superuser);
//! * `shards=K:cache=N`: K groups, statement cache N;
//! * `spill=K`, `spill=K:cache=N`: as `shards=K` with
//!   `TenantRouting::Spill` (a call whose group has no free connection
//!   goes to the next group that has one);
//! * `<variant>@life=S`: connections recycled after S seconds (`max_lifetime`);
//! * `<variant>@generic`: `plan_cache_mode=force_generic_plan` through the
//!   URL (`?options=-c plan_cache_mode=force_generic_plan`): a statement
//!   is planned once, not custom-planned on its first five executions.
//!
//! Besides throughput, each case reports the CPU time per iteration of
//! this process plus the server's processes (when the server runs on this
//! machine and `/proc` shows its processes): `cpu def1` is default-at-1-
//! tenant's CPU per iteration over the case's, the throughput ratio a
//! CPU-bound machine with nothing else running would show.
//!
//! After each case, every open connection of the case's pool(s) reports
//! `pg_backend_memory_contexts` (its server process's memory) and its
//! count of `pg_prepared_statements`. Ratios are against the 1-tenant case
//! of the same variant and against `default` at 1 tenant.
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use persistence_core::{Entity, Repository, TenantExt as _, TenantScoped};
use persistence_postgres::sea_orm::ConnectionTrait as _;
use persistence_postgres::sea_orm::sqlx::{self, AssertSqlSafe, PgPool, Row as _};
use persistence_postgres::{
    RelationalConfig, RelationalRepository, RelationalStore, TenantRouting, TenantStatements,
    Tenants,
};
use persistence_postgres::{TenantId, sea_orm::DatabaseConnection};
use persistence_testing::bench::{env, process_cpu};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(name = "ts_orders")]
struct Order {
    #[entity(id)]
    id: i64,
    name: String,
    qty: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(name = "ts_notes")]
struct Note {
    #[entity(id)]
    id: i64,
    body: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(name = "ts_shared")]
struct Shared {
    #[entity(id)]
    id: i64,
    #[entity(tenant)]
    tenant: String,
    name: String,
}

/// Unique ids for inserts, across every table.
static NEXT_ID: AtomicI64 = AtomicI64::new(1_000_000_000);

fn next_id() -> i64 {
    NEXT_ID.fetch_add(1, Ordering::Relaxed)
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Picks tenant indexes: uniform, or Zipf (s = 1) by a cumulative table.
#[derive(Clone)]
enum Dist {
    Uniform(usize),
    Zipf(Arc<Vec<f64>>),
}

impl Dist {
    fn zipf(n: usize) -> Dist {
        let mut acc = 0.0;
        let mut cdf: Vec<f64> = (1..=n)
            .map(|k| {
                acc += 1.0 / k as f64;
                acc
            })
            .collect();
        for c in &mut cdf {
            *c /= acc;
        }
        Dist::Zipf(Arc::new(cdf))
    }
    fn pick(&self, rng: &mut Rng) -> usize {
        match self {
            Dist::Uniform(n) => (rng.next() % *n as u64) as usize,
            Dist::Zipf(cdf) => {
                let u = rng.unit();
                cdf.partition_point(|c| *c < u).min(cdf.len() - 1)
            }
        }
    }
    fn name(&self) -> &'static str {
        match self {
            Dist::Uniform(_) => "uniform",
            Dist::Zipf(_) => "zipf",
        }
    }
}

/// What one iteration runs on.
#[derive(Clone)]
enum Target {
    Repos(Arc<Vec<(RelationalRepository<Order>, RelationalRepository<Note>)>>),
    SearchPath(Arc<Vec<(PgPool, String)>>),
    RowLevel(Arc<Vec<TenantScoped<RelationalRepository<Shared>>>>),
}

#[derive(Clone, Copy)]
struct Sizes {
    rows: usize,
}

async fn iteration(target: &Target, t: usize, rng: &mut Rng, sizes: Sizes) {
    let r = (rng.next() % sizes.rows as u64) as i64;
    let second = rng.next() % 2 == 1;
    match target {
        Target::Repos(repos) => {
            let (orders, notes) = &repos[t];
            if second {
                assert!(notes.get(&r).await.expect("get").is_some());
                let n = Note {
                    id: next_id(),
                    body: "x".into(),
                };
                notes.insert(&n).await.expect("insert");
            } else {
                assert!(orders.get(&r).await.expect("get").is_some());
                let o = Order {
                    id: next_id(),
                    name: "x".into(),
                    qty: 1,
                };
                orders.insert(&o).await.expect("insert");
            }
        }
        Target::SearchPath(tenants) => {
            let (pool, schema) = &tenants[t];
            let begin = format!("BEGIN; SET LOCAL search_path TO \"{schema}\"");
            let (get, ins) = if second {
                (
                    "SELECT \"id\", \"body\" FROM \"ts_notes\" WHERE \"id\" = $1",
                    "INSERT INTO \"ts_notes\" (\"id\", \"body\") VALUES ($1, 'x')",
                )
            } else {
                (
                    "SELECT \"id\", \"name\", \"qty\" FROM \"ts_orders\" WHERE \"id\" = $1",
                    "INSERT INTO \"ts_orders\" (\"id\", \"name\", \"qty\") VALUES ($1, 'x', 1)",
                )
            };
            let mut tx = pool
                .begin_with(AssertSqlSafe(begin.clone()))
                .await
                .expect("begin");
            let row = sqlx::query(get)
                .bind(r)
                .fetch_optional(&mut *tx)
                .await
                .expect("get");
            assert!(row.is_some());
            tx.commit().await.expect("commit");
            let mut tx = pool.begin_with(AssertSqlSafe(begin)).await.expect("begin");
            sqlx::query(ins)
                .bind(next_id())
                .execute(&mut *tx)
                .await
                .expect("insert");
            tx.commit().await.expect("commit");
        }
        Target::RowLevel(repos) => {
            let repo = &repos[t];
            let id = (t * sizes.rows) as i64 + r;
            assert!(repo.get(&id).await.expect("get").is_some());
            let s = Shared {
                id: next_id(),
                tenant: String::new(),
                name: "x".into(),
            };
            repo.insert(&s).await.expect("insert");
        }
    }
}

struct Outcome {
    per_sec: f64,
    mem_mb: f64,
    mem_max_mb: f64,
    prepared: f64,
    /// CPU time per iteration, µs: this process plus the server's
    /// processes (0 when the server's processes cannot be read). Unlike
    /// `per_sec`, hardly moved by other work on the machine.
    cpu_us: f64,
    /// Of `mem_mb`: the prepared statements' plan contexts
    /// (`CachedPlanSource` / `CachedPlanQuery` / `CachedPlan`).
    plan_mb: f64,
    /// Of `mem_mb`: the catalog caches (`CacheMemoryContext` itself, where
    /// relcache and syscache entries live, and its other children such as
    /// `index info`).
    catalog_mb: f64,
    conns: usize,
}

/// CPU time of every child process of `postmaster` (the server's
/// backends and helpers), from `/proc`; `None` when not readable.
fn server_cpu(postmaster: u32) -> Option<Duration> {
    let mut ns = 0u64;
    for entry in std::fs::read_dir("/proc").ok()? {
        let path = entry.ok()?.path();
        let Ok(stat) = std::fs::read_to_string(path.join("stat")) else {
            continue;
        };
        // `pid (comm) state ppid ...`: comm may hold spaces.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if ppid != Some(postmaster) {
            continue;
        }
        if let Ok(sched) = std::fs::read_to_string(path.join("schedstat")) {
            ns += sched
                .split_whitespace()
                .next()
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    Some(Duration::from_nanos(ns))
}

/// Client plus server CPU time so far (`None` without both).
fn total_cpu(postmaster: Option<u32>) -> Option<Duration> {
    Some(process_cpu()? + server_cpu(postmaster?)?)
}

#[allow(clippy::too_many_arguments)]
async fn run_case(
    postmaster: Option<u32>,
    target: &Target,
    dist: &Dist,
    pools: &[PgPool],
    tasks: usize,
    warm: Duration,
    secs: Duration,
    sizes: Sizes,
) -> Outcome {
    let stop = Arc::new(AtomicBool::new(false));
    let counting = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let mut handles = Vec::new();
    for i in 0..tasks {
        let (target, dist) = (target.clone(), dist.clone());
        let (stop, counting, done) = (stop.clone(), counting.clone(), done.clone());
        handles.push(tokio::spawn(async move {
            let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (i as u64 + 1).wrapping_mul(0x2545_f491));
            while !stop.load(Ordering::Relaxed) {
                let t = dist.pick(&mut rng);
                iteration(&target, t, &mut rng, sizes).await;
                if counting.load(Ordering::Relaxed) {
                    done.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    tokio::time::sleep(warm).await;
    counting.store(true, Ordering::Relaxed);
    let started = Instant::now();
    let cpu0 = total_cpu(postmaster);
    tokio::time::sleep(secs).await;
    counting.store(false, Ordering::Relaxed);
    let cpu1 = total_cpu(postmaster);
    let elapsed = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        h.await.expect("task");
    }
    let iterations = done.load(Ordering::Relaxed) as f64;
    let per_sec = iterations / elapsed.as_secs_f64();
    let cpu_us = match (cpu0, cpu1) {
        (Some(a), Some(b)) => (b - a).as_secs_f64() * 1e6 / iterations.max(1.0),
        _ => 0.0,
    };
    let (mut sum, mut max, mut prepared, mut n) = (0.0f64, 0.0f64, 0.0, 0usize);
    let (mut plans, mut catalog) = (0.0f64, 0.0f64);
    for pool in pools {
        // Every open connection of the pool, held at once so each is asked.
        let mut held = Vec::new();
        for _ in 0..pool.size() {
            held.push(pool.acquire().await.expect("acquire"));
        }
        for c in &mut held {
            let row = sqlx::query(
                "SELECT (SELECT sum(total_bytes) FROM pg_backend_memory_contexts)::float8, \
                 (SELECT count(*) FROM pg_prepared_statements)::float8, \
                 (SELECT coalesce(sum(total_bytes), 0) FROM pg_backend_memory_contexts \
                  WHERE name LIKE 'CachedPlan%')::float8, \
                 (SELECT coalesce(sum(total_bytes), 0) FROM pg_backend_memory_contexts \
                  WHERE name = 'CacheMemoryContext' OR (parent = 'CacheMemoryContext' \
                  AND name NOT LIKE 'CachedPlan%'))::float8",
            )
            .fetch_one(&mut **c)
            .await
            .expect("memory");
            let mb = row.get::<f64, _>(0) / 1_048_576.0;
            sum += mb;
            max = max.max(mb);
            prepared += row.get::<f64, _>(1);
            plans += row.get::<f64, _>(2) / 1_048_576.0;
            catalog += row.get::<f64, _>(3) / 1_048_576.0;
            n += 1;
        }
    }
    let d = n.max(1) as f64;
    Outcome {
        per_sec,
        cpu_us,
        mem_mb: sum / d,
        mem_max_mb: max,
        prepared: prepared / d,
        plan_mb: plans / d,
        catalog_mb: catalog / d,
        conns: n,
    }
}

fn pools_of(store: &RelationalStore) -> Vec<PgPool> {
    let shards: &[DatabaseConnection] = store.tenant_shards();
    if shards.is_empty() {
        vec![store.connection().get_postgres_connection_pool().clone()]
    } else {
        shards
            .iter()
            .map(|d| d.get_postgres_connection_pool().clone())
            .collect()
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string());
    let n = env("BENCH_TENANTS", 1_000);
    let rows = env("BENCH_ROWS", 10);
    let tasks = env("BENCH_TASKS", 64);
    let pool_size = env("BENCH_POOL", 16) as u32;
    let warm = Duration::from_secs(env("BENCH_WARM", 1) as u64);
    let secs = Duration::from_secs(env("BENCH_SECS", 3) as u64);
    let shards = env("BENCH_SHARDS", 8) as u32;
    let variants: Vec<String> = std::env::var("BENCH_VARIANTS")
        .unwrap_or_else(|_| {
            format!(
                "default,cache=5000,shards={shards},shards={pool_size},search_path,\
                 search_path+shards={shards},raw_search_path,row-level"
            )
        })
        .split(',')
        .map(str::to_string)
        .collect();
    let pid = std::process::id();
    let schema = format!("bench_ts_{pid}");
    let admin = RelationalStore::connect(
        &RelationalConfig::new(url.clone())
            .schema(schema.clone())
            .max_connections(8),
    )
    .await
    .expect("connect");
    admin.create_schema().await.expect("schema");
    // The server's postmaster (the parent of a backend) when it runs on
    // this machine: its children's CPU time is measured too.
    let backend: i32 = sqlx::query("SELECT pg_backend_pid()")
        .fetch_one(admin.connection().get_postgres_connection_pool())
        .await
        .expect("backend pid")
        .get(0);
    let postmaster = std::fs::read_to_string(format!("/proc/{backend}/stat"))
        .ok()
        .and_then(|stat| {
            let (_, rest) = stat.rsplit_once(')')?;
            rest.split_whitespace().nth(1)?.parse::<u32>().ok()
        });
    let tenants = Tenants::new(&admin)
        .expect("tenants")
        .register::<Order>()
        .register::<Note>();
    let ids: Vec<TenantId> = (0..n)
        .map(|t| TenantId::new(format!("ts{pid}_{t}")).expect("id"))
        .collect();
    let started = Instant::now();
    for chunk in ids.chunks(8) {
        futures_util::future::try_join_all(chunk.iter().map(|id| async {
            tenants.provision(id).await?;
            let orders: Vec<Order> = (0..rows as i64)
                .map(|id| Order {
                    id,
                    name: format!("o{id}"),
                    qty: id,
                })
                .collect();
            tenants.repository::<Order>(id).insert_many(&orders).await?;
            let notes: Vec<Note> = (0..rows as i64)
                .map(|id| Note {
                    id,
                    body: format!("n{id}"),
                })
                .collect();
            tenants.repository::<Note>(id).insert_many(&notes).await
        }))
        .await
        .expect("provision");
    }
    eprintln!("provisioned {n} tenants in {:.1?}", started.elapsed());
    let rl = if variants.iter().any(|v| v == "row-level") {
        Some(row_level_setup(&admin, &url, &schema, n, rows, pool_size).await)
    } else {
        None
    };

    let sizes = Sizes { rows };
    let mut out: Vec<(String, usize, &'static str, Outcome)> = Vec::new();
    for variant_name in &variants {
        for (used, dist) in [
            (1, Dist::Uniform(1)),
            (n, Dist::Uniform(n)),
            (n, Dist::zipf(n)),
        ] {
            let mut cfg = RelationalConfig::new(url.clone())
                .schema(schema.clone())
                .max_connections(pool_size);
            // `<variant>@life=S`: connections recycled after S seconds.
            // `<variant>@generic`: the server plans prepared statements
            // generically from their first execution (`plan_cache_mode`
            // through the URL's `options`).
            let (base, generic) = match variant_name.strip_suffix("@generic") {
                Some(v) => (v, true),
                None => (variant_name.as_str(), false),
            };
            if generic {
                let sep = if url.contains('?') { '&' } else { '?' };
                cfg.url = format!("{url}{sep}options=-c%20plan_cache_mode%3Dforce_generic_plan");
            }
            let (base, life) = match base.split_once("@life=") {
                Some((v, s)) => (v, Some(s.parse::<u64>().expect("seconds"))),
                None => (base, None),
            };
            cfg.max_lifetime = life.map(Duration::from_secs);
            let variant = base;
            // Per connection: its tenants x 4 statement shapes, with room
            // (`shards=K:cache=N` sets it).
            let groups = variant
                .strip_prefix("shards=")
                .map(|k| (k, TenantRouting::Home))
                .or_else(|| {
                    variant
                        .strip_prefix("spill=")
                        .map(|k| (k, TenantRouting::Spill))
                });
            let (target, store) = if let Some((k, routing)) = groups {
                let (k, cache) = match k.split_once(":cache=") {
                    Some((k, c)) => (k, Some(c.parse::<usize>().expect("cache"))),
                    None => (k, None),
                };
                let k: u32 = k.parse().expect("shards");
                let cache = cache.unwrap_or((used * 4 * 5 / 4 / k as usize).max(100));
                cfg = cfg
                    .tenant_shards(k)
                    .tenant_routing(routing)
                    .statement_cache_capacity(cache);
                let store = RelationalStore::connect(&cfg).await.expect("connect");
                (repos_target(&store, &ids[..used]), Some(store))
            } else if let Some(c) = variant.strip_prefix("cache=") {
                cfg = cfg.statement_cache_capacity(c.parse().expect("cache"));
                let store = RelationalStore::connect(&cfg).await.expect("connect");
                (repos_target(&store, &ids[..used]), Some(store))
            } else if variant == "default" {
                let store = RelationalStore::connect(&cfg).await.expect("connect");
                (repos_target(&store, &ids[..used]), Some(store))
            } else if let Some(k) = variant.strip_prefix("search_path") {
                // The library: `search_path` on the one pool,
                // `search_path+shards=K` on K groups.
                if let Some(k) = k.strip_prefix("+shards=") {
                    cfg = cfg.tenant_shards(k.parse().expect("shards"));
                }
                cfg = cfg.tenant_statements(TenantStatements::SearchPath);
                let store = RelationalStore::connect(&cfg).await.expect("connect");
                (repos_target(&store, &ids[..used]), Some(store))
            } else if let Some(k) = variant.strip_prefix("raw_search_path") {
                if let Some(k) = k.strip_prefix("+shards=") {
                    cfg = cfg.tenant_shards(k.parse().expect("shards"));
                }
                let store = RelationalStore::connect(&cfg).await.expect("connect");
                let tenants = Tenants::new(&store).expect("tenants");
                let names = ids[..used]
                    .iter()
                    .map(|i| {
                        let pool = tenants
                            .store(i)
                            .connection()
                            .get_postgres_connection_pool()
                            .clone();
                        (pool, i.as_str().to_string())
                    })
                    .collect();
                (Target::SearchPath(Arc::new(names)), Some(store))
            } else if variant == "row-level" {
                let (rl_url, rl_schema) = rl.as_ref().expect("row-level set up");
                let store = RelationalStore::connect(
                    &RelationalConfig::new(rl_url.clone())
                        .schema(rl_schema.clone())
                        .max_connections(pool_size),
                )
                .await
                .expect("connect role");
                let repo = store.repository::<Shared>();
                let repos = (0..used)
                    .map(|t| repo.clone().for_tenant(format!("t{t}")).expect("tenant"))
                    .collect();
                (Target::RowLevel(Arc::new(repos)), Some(store))
            } else {
                panic!("unknown variant {variant}");
            };
            let store = store.expect("store");
            let o = run_case(
                postmaster,
                &target,
                &dist,
                &pools_of(&store),
                tasks,
                warm,
                secs,
                sizes,
            )
            .await;
            eprintln!(
                "{variant_name:<22} {used:>6} {:<8} {:>9.0}/s {:>7.1} MB/conn (max {:.1}; plans {:.1}, catalog {:.1}) {:>6.0} stmts {} conns",
                dist.name(),
                o.per_sec,
                o.mem_mb,
                o.mem_max_mb,
                o.plan_mb,
                o.catalog_mb,
                o.prepared,
                o.conns
            );
            out.push((variant_name.clone(), used, dist.name(), o));
            store.close().await;
        }
    }
    print_table(&out);

    for id in &ids {
        tenants.drop_tenant(id).await.expect("drop tenant");
    }
    if rl.is_some() {
        admin
            .connection()
            .execute_unprepared(&format!(
                "DROP SCHEMA IF EXISTS \"{schema}_rl\" CASCADE; DROP ROLE IF EXISTS \"{schema}\""
            ))
            .await
            .expect("drop row-level");
    }
    admin.drop_schema().await.expect("drop schema");
    admin.close().await;
}

fn repos_target(store: &RelationalStore, ids: &[TenantId]) -> Target {
    let tenants = Tenants::new(store)
        .expect("tenants")
        .register::<Order>()
        .register::<Note>();
    Target::Repos(Arc::new(
        ids.iter()
            .map(|id| {
                (
                    tenants.repository::<Order>(id),
                    tenants.repository::<Note>(id),
                )
            })
            .collect(),
    ))
}

/// A role without superuser rights owning one shared table (RLS applies),
/// loaded with `rows` rows per tenant; returns its URL and schema.
async fn row_level_setup(
    admin: &RelationalStore,
    url: &str,
    schema: &str,
    n: usize,
    rows: usize,
    pool: u32,
) -> (String, String) {
    let (role, rl_schema) = (schema.to_string(), format!("{schema}_rl"));
    admin
        .connection()
        .execute_unprepared(&format!(
            "CREATE ROLE \"{role}\" LOGIN PASSWORD 'pw' NOSUPERUSER NOBYPASSRLS; \
             CREATE SCHEMA \"{rl_schema}\" AUTHORIZATION \"{role}\""
        ))
        .await
        .expect("role");
    let (scheme, rest) = url.split_once("://").expect("URL");
    let host = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    let rl_url = format!("{scheme}://{role}:pw@{host}");
    let store = RelationalStore::connect(
        &RelationalConfig::new(rl_url.clone())
            .schema(rl_schema.clone())
            .max_connections(pool.min(8)),
    )
    .await
    .expect("connect role");
    let repo = store.repository::<Shared>();
    repo.ensure_schema().await.expect("shared table");
    for t in 0..n {
        let batch: Vec<Shared> = (0..rows)
            .map(|r| Shared {
                id: (t * rows + r) as i64,
                tenant: String::new(),
                name: format!("n{r}"),
            })
            .collect();
        repo.clone()
            .for_tenant(format!("t{t}"))
            .expect("tenant")
            .insert_many(&batch)
            .await
            .expect("load row-level");
    }
    store.close().await;
    (rl_url, rl_schema)
}

fn print_table(out: &[(String, usize, &'static str, Outcome)]) {
    println!(
        "{:<22} {:>7} {:<8} {:>10} {:>8} {:>8} {:>8} {:>8} {:>9} {:>9} {:>7} {:>7} {:>7}",
        "variant",
        "tenants",
        "dist",
        "iter/s",
        "vs 1t",
        "vs def1",
        "cpu µs",
        "cpu def1",
        "MB/conn",
        "vs 1t",
        "plansMB",
        "catMB",
        "stmts"
    );
    let def1 = out
        .iter()
        .find(|(v, u, _, _)| v == "default" && *u == 1)
        .map(|o| o.3.per_sec);
    // Default at 1 tenant's CPU per iteration over this case's: the
    // throughput ratio a machine with nothing else running would show.
    let def1_cpu = out
        .iter()
        .find(|(v, u, _, _)| v == "default" && *u == 1)
        .map(|o| o.3.cpu_us)
        .filter(|c| *c > 0.0);
    for (v, used, dist, o) in out {
        let one = out
            .iter()
            .find(|(v2, u2, _, _)| v2 == v && *u2 == 1)
            .map(|x| &x.3)
            .expect("1-tenant case");
        println!(
            "{:<22} {:>7} {:<8} {:>10.0} {:>7.2}x {:>7} {:>8.0} {:>8} {:>9.1} {:>8.2}x {:>7.1} {:>7.1} {:>7.0}",
            v,
            used,
            dist,
            o.per_sec,
            o.per_sec / one.per_sec,
            def1.map_or("-".to_string(), |d| format!("{:.2}x", o.per_sec / d)),
            o.cpu_us,
            def1_cpu.map_or("-".to_string(), |d| format!("{:.2}x", d / o.cpu_us)),
            o.mem_mb,
            o.mem_mb / one.mem_mb,
            o.plan_mb,
            o.catalog_mb,
            o.prepared
        );
    }
}
