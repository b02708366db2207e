//! Row-level tenancy vs schema-per-tenant, and what row-level security
//! costs on a point read, side by side in one run against raw sqlx.
//!
//! ```text
//! cargo bench -p persistence-postgres --bench tenancy
//! BENCH_TENANTS=1000 BENCH_TENANT_ROWS=20 BENCH_READS=2000 cargo bench -p persistence-postgres --bench tenancy
//! ```
//!
//! `BENCH_TENANTS` tenants (1,000) with `BENCH_TENANT_ROWS` rows each (20):
//! once in one table with an `#[entity(tenant)]` field (row-level, read
//! through `for_tenant` as a role that is not a superuser, so the policy
//! applies), once as a schema per tenant (`Tenants`, one table each). Point
//! reads and inserts pick tenants round-robin; each call is timed and the
//! table shows medians, the ratio against the raw sqlx baseline (the same
//! row read by `id AND tenant`, one statement, no transaction). The role,
//! the schemas and every tenant are dropped at the end.
//!
//! The row-level call is a transaction: `BEGIN`, `set_config('app.tenant',
//! $1, true)`, the statement, `COMMIT` (four round trips); the raw
//! `BEGIN … COMMIT` line is that sequence by hand, so the difference to the
//! plain filter is the transaction, not the policy.
use std::time::{Duration, Instant};

use persistence_core::{Entity, Repository, TenantExt as _};
use persistence_postgres::sea_orm::ConnectionTrait as _;
use persistence_postgres::sea_orm::sqlx;
use persistence_postgres::{RelationalConfig, RelationalStore, TenantId, Tenants};
use persistence_testing::bench::{env, median};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(name = "bench_tenant_items")]
struct TItem {
    #[entity(id)]
    id: i64,
    #[entity(tenant)]
    tenant: String,
    name: String,
    score: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(name = "bench_items")]
struct Item {
    #[entity(id)]
    id: i64,
    name: String,
    score: f64,
}

struct Line {
    case: String,
    median: Duration,
}

fn tenant(i: usize) -> String {
    format!("t{i}")
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string());
    let tenants_n = env("BENCH_TENANTS", 1_000);
    let rows = env("BENCH_TENANT_ROWS", 20);
    let reads = env("BENCH_READS", 2_000);
    let pid = std::process::id();
    let (schema, role, password) = (
        format!("bench_rt_{pid}"),
        format!("bench_rt_{pid}"),
        format!("pw{pid}"),
    );
    let admin = RelationalStore::connect(
        &RelationalConfig::new(url.clone())
            .schema(schema.clone())
            .max_connections(4),
    )
    .await
    .expect("connect to PostgreSQL");
    admin.create_schema().await.expect("bench schema");
    admin
        .connection()
        .execute_unprepared(&format!(
            "CREATE ROLE \"{role}\" LOGIN PASSWORD '{password}' NOSUPERUSER NOBYPASSRLS; \
             GRANT USAGE, CREATE ON SCHEMA \"{schema}\" TO \"{role}\""
        ))
        .await
        .expect("bench role");
    let (scheme, rest) = url.split_once("://").expect("URL");
    let host = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    let role_url = format!("{scheme}://{role}:{password}@{host}");
    let rl = RelationalStore::connect(
        &RelationalConfig::new(role_url)
            .schema(schema.clone())
            .max_connections(4),
    )
    .await
    .expect("connect as the bench role");
    let lines = run(&admin, &rl, &schema, tenants_n, rows, reads).await;
    rl.close().await;
    print(&lines);
    admin.drop_schema().await.expect("drop bench schema");
    admin
        .connection()
        .execute_unprepared(&format!("DROP ROLE \"{role}\""))
        .await
        .expect("drop bench role");
    admin.close().await;
}

async fn run(
    admin: &RelationalStore,
    rl: &RelationalStore,
    schema: &str,
    tenants_n: usize,
    rows: usize,
    reads: usize,
) -> Vec<Line> {
    // Row-level: one table, owned by the role (RLS forced on it).
    let shared = rl.repository::<TItem>();
    shared.ensure_schema().await.expect("row-level table");
    let scoped: Vec<_> = (0..tenants_n)
        .map(|t| shared.clone().for_tenant(tenant(t)).expect("tenant"))
        .collect();
    for (t, repo) in scoped.iter().enumerate() {
        let batch: Vec<TItem> = (0..rows)
            .map(|r| TItem {
                id: (t * rows + r) as i64,
                tenant: String::new(),
                name: format!("n{r}"),
                score: r as f64,
            })
            .collect();
        repo.insert_many(&batch).await.expect("load row-level");
    }
    // Schema per tenant: `Tenants` on the admin store (registry in the bench schema).
    let tenants = Tenants::new(admin).expect("tenants").register::<Item>();
    let ids: Vec<TenantId> = (0..tenants_n)
        .map(|t| TenantId::new(format!("{schema}_{t}")).expect("tenant id"))
        .collect();
    let started = Instant::now();
    for chunk in ids.chunks(8) {
        futures_util::future::try_join_all(chunk.iter().map(|id| tenants.provision(id)))
            .await
            .expect("provision");
    }
    eprintln!(
        "provisioned {tenants_n} schemas in {:.1?}",
        started.elapsed()
    );
    let per_schema: Vec<_> = ids
        .iter()
        .map(|id| tenants.repository::<Item>(id))
        .collect();
    for repo in &per_schema {
        let batch: Vec<Item> = (0..rows)
            .map(|r| Item {
                id: r as i64,
                name: format!("n{r}"),
                score: r as f64,
            })
            .collect();
        repo.insert_many(&batch)
            .await
            .expect("load schema-per-tenant");
    }
    let table = format!("\"{schema}\".\"bench_tenant_items\"");
    let raw_pool = admin.connection().get_postgres_connection_pool().clone();
    let rl_pool = rl.connection().get_postgres_connection_pool().clone();
    let filter_sql =
        format!("SELECT id, tenant, name, score FROM {table} WHERE id = $1 AND tenant = $2");
    let by_id_sql = format!("SELECT id, tenant, name, score FROM {table} WHERE id = $1");

    let mut t = [Vec::new(), Vec::new(), Vec::new(), Vec::new()];
    for i in 0..reads {
        let k = (i * 7919) % (tenants_n * rows);
        let (tn, r) = (k / rows, k % rows);
        let id = k as i64;
        let name = tenant(tn);
        let s = Instant::now();
        let row = sqlx::query(sqlx::AssertSqlSafe(filter_sql.as_str()))
            .bind(id)
            .bind(&name)
            .fetch_optional(&raw_pool)
            .await
            .expect("raw read");
        t[0].push(s.elapsed());
        assert!(row.is_some());
        let s = Instant::now();
        let mut tx = rl_pool.begin().await.expect("begin");
        sqlx::query("SELECT set_config('app.tenant', $1, true)")
            .bind(&name)
            .execute(&mut *tx)
            .await
            .expect("set_config");
        let row = sqlx::query(sqlx::AssertSqlSafe(by_id_sql.as_str()))
            .bind(id)
            .fetch_optional(&mut *tx)
            .await
            .expect("raw RLS read");
        tx.commit().await.expect("commit");
        t[1].push(s.elapsed());
        assert!(row.is_some());
        let s = Instant::now();
        let got = scoped[tn].get(&id).await.expect("row-level get");
        t[2].push(s.elapsed());
        assert!(got.is_some());
        let s = Instant::now();
        let got = per_schema[tn].get(&(r as i64)).await.expect("schema get");
        t[3].push(s.elapsed());
        assert!(got.is_some());
    }
    let mut lines = Vec::new();
    for (case, v) in [
        "get: raw sqlx, WHERE id AND tenant (baseline)",
        "get: raw sqlx, BEGIN + set_config + RLS + COMMIT",
        "get: row-level for_tenant (RLS + filter)",
        "get: schema-per-tenant repository",
    ]
    .into_iter()
    .zip(t.iter_mut())
    {
        lines.push(Line {
            case: format!("{case}, {tenants_n} tenants"),
            median: median(v),
        });
    }

    let inserts = reads.min(tenants_n * 2);
    let insert_sql =
        format!("INSERT INTO {table} (id, tenant, name, score) VALUES ($1, $2, $3, $4)");
    let mut w = [Vec::new(), Vec::new(), Vec::new()];
    let base = (tenants_n * rows) as i64;
    for i in 0..inserts {
        let tn = i % tenants_n;
        let name = tenant(tn);
        let id = base + 3 * i as i64;
        let s = Instant::now();
        sqlx::query(sqlx::AssertSqlSafe(insert_sql.as_str()))
            .bind(id)
            .bind(&name)
            .bind("x")
            .bind(1.0_f64)
            .execute(&raw_pool)
            .await
            .expect("raw insert");
        w[0].push(s.elapsed());
        let s = Instant::now();
        let item = TItem {
            id: id + 1,
            tenant: String::new(),
            name: "x".into(),
            score: 1.0,
        };
        scoped[tn].insert(&item).await.expect("row-level insert");
        w[1].push(s.elapsed());
        let s = Instant::now();
        let item = Item {
            id: base + i as i64,
            name: "x".into(),
            score: 1.0,
        };
        per_schema[tn].insert(&item).await.expect("schema insert");
        w[2].push(s.elapsed());
    }
    for (case, v) in [
        "insert: raw sqlx (baseline)",
        "insert: row-level for_tenant (RLS)",
        "insert: schema-per-tenant repository",
    ]
    .into_iter()
    .zip(w.iter_mut())
    {
        lines.push(Line {
            case: format!("{case}, {tenants_n} tenants"),
            median: median(v),
        });
    }
    for id in &ids {
        tenants.drop_tenant(id).await.expect("drop tenant");
    }
    lines
}

fn print(lines: &[Line]) {
    println!("{:<70} {:>10} {:>7}", "case", "median", "ratio");
    let mut base = Duration::ZERO;
    for l in lines {
        if l.case.contains("baseline") {
            base = l.median;
        }
        let ratio = l.median.as_secs_f64() / base.as_secs_f64().max(f64::MIN_POSITIVE);
        println!("{:<70} {:>10.1?} {:>6.2}x", l.case, l.median, ratio);
    }
}
