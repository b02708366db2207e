//! A filtered, sorted `find` against the SQL a DBA would write, side by
//! side in one run on the local PostgreSQL (issue #19, item 1).
//!
//! ```text
//! cargo bench -p persistence-postgres --bench find
//! BENCH_ROWS=100000 BENCH_FINDS=200 cargo bench -p persistence-postgres --bench find
//! ```
//!
//! The table (`BENCH_ROWS`, 100,000 rows, ten tiers, an index on
//! `(tier, score)`, `score` and `id` NOT NULL) is created by
//! `ensure_schema` in a schema of its own, dropped at the end. The query:
//! `tier = t AND score >= 0 AND score < 1000`, sorted by `score` descending
//! (the id as tie-breaker), 1,000 of the ~10,000 matches. Four sides,
//! interleaved (the order rotating), each on a pool of one connection (the
//! first three on the same one):
//!
//! * `repository`: `repo.find(...)`;
//! * `raw DBA SQL`: sqlx with `... ORDER BY "score" DESC, "id" LIMIT $4`,
//!   decoding the same columns into the same struct: the floor;
//! * `raw, nulls clauses`: sqlx with the text the library wrote before
//!   issue #19 (`DESC NULLS LAST, "id" ASC NULLS FIRST LIMIT 1000`), to
//!   separate the plan from the client-side cost;
//! * `sea-orm entity API`: `bench_find::Entity::find().filter(..)
//!   .order_by_desc(score).order_by_asc(id).limit(1000).all(&db)` on a
//!   sea-orm connection whose search path is the bench's schema, each
//!   model turned into the same struct (issue #19 item 2: the library's
//!   `find` should cost no more than sea-orm's own entity API).
//!
//! Every side runs far more than 5 times, so PostgreSQL's plan cache has
//! chosen between the custom and the generic plan. After the timings the
//! bench prints the library's statement as the server holds it
//! (`pg_prepared_statements`, with its generic/custom plan counts) and the
//! `EXPLAIN ANALYZE` of `EXECUTE` of that statement: the plan actually used.
//! The table shows medians and the ratios to the DBA SQL (of medians and of
//! totals).
//!
//! Two runs each, before and after the nulls clause was dropped on NOT NULL
//! columns and `LIMIT` bound (issue #19 item 1 a, b), on the shared 2-core
//! machine (PostgreSQL 15, load average 2-7 from other builds):
//!
//! ```text
//!                     repository / raw DBA SQL      raw with nulls clauses / raw DBA SQL
//!                     median      totals            median      totals
//! before (run 1)      3.54x       3.01x             2.84x       2.44x
//! before (run 2)      2.75x       2.87x             2.17x       2.32x
//! after  (run 1)      1.49x       1.39x             3.29x       2.82x
//! after  (run 2)      1.54x       1.50x             2.80x       2.67x
//! ```
//!
//! Before, the library's statement was planned (generic plan, 195 of 200
//! executions) as a bitmap scan of all ~10,000 matches and a top-N sort;
//! after, as the DBA's: `Index Scan Backward` of `(tier, score)` and an
//! `Incremental Sort` of the id within equal scores, stopping after 1,001
//! rows. What is left (~1.5-2 ms per 1,000 rows) is client side: the rows
//! are decoded through sea-orm values and the entity's serde form (issue #19
//! item 1 c).
use persistence_testing::bench::{env, median};
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};
use persistence_core::{Entity, Query, Repository};
use persistence_postgres::sea_orm::sqlx::{self, Row as _};
use persistence_postgres::sea_orm::{ConnectionTrait as _, Statement};
use persistence_postgres::{RelationalConfig, RelationalStore};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(name = "bench_find", index(tier, score))]
struct Item {
    #[entity(id)]
    id: i64,
    tier: i32,
    score: f64,
    name: String,
    created_at: DateTime<Utc>,
    tag: Option<String>,
}

const TIERS: i64 = 10;

fn item(i: i64) -> Item {
    Item {
        id: i,
        tier: (i % TIERS) as i32,
        // 0 <= score < 1000, spread over the ids, with some ties.
        score: ((i * 7919) % 100_000) as f64 / 100.0,
        name: format!("name-{i:06}"),
        created_at: Utc
            .timestamp_opt(1_700_000_000 + i, 0)
            .single()
            .unwrap_or_default(),
        tag: (i % 3 == 0).then(|| format!("tag{}", i % 7)),
    }
}

fn raw_item(r: &sqlx::postgres::PgRow) -> Item {
    Item {
        id: r.get(0),
        tier: r.get(1),
        score: r.get(2),
        name: r.get(3),
        created_at: r.get(4),
        tag: r.get(5),
    }
}

/// The same table through sea-orm's entity API (the connection's search
/// path selects the benchmark's schema).
mod bench_find {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "bench_find")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: i64,
        pub tier: i32,
        pub score: f64,
        pub name: String,
        pub created_at: DateTimeUtc,
        pub tag: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// `find` through sea-orm's entity API, the models as [`Item`]s.
async fn sea_orm_find(db: &sea_orm::DatabaseConnection, tier: i32) -> Vec<Item> {
    use sea_orm::QuerySelect as _;
    use sea_orm::{ColumnTrait as _, EntityTrait as _, QueryFilter as _, QueryOrder as _};
    bench_find::Entity::find()
        .filter(bench_find::Column::Tier.eq(tier))
        .filter(bench_find::Column::Score.gte(0.0))
        .filter(bench_find::Column::Score.lt(1000.0))
        .order_by_desc(bench_find::Column::Score)
        .order_by_asc(bench_find::Column::Id)
        .limit(1_000)
        .all(db)
        .await
        .expect("sea-orm find")
        .into_iter()
        .map(|m| Item {
            id: m.id,
            tier: m.tier,
            score: m.score,
            name: m.name,
            created_at: m.created_at,
            tag: m.tag,
        })
        .collect()
}

fn ms(d: Duration) -> String {
    format!("{:.3}ms", d.as_secs_f64() * 1e3)
}

fn sum(v: &[Duration]) -> Duration {
    v.iter().sum()
}

async fn raw_find(pool: &sqlx::PgPool, sql: &str, tier: i32, limit: Option<i64>) -> Vec<Item> {
    let q = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(tier)
        .bind(0.0f64)
        .bind(1000.0f64);
    let q = match limit {
        Some(l) => q.bind(l),
        None => q,
    };
    q.fetch_all(pool)
        .await
        .expect("raw find")
        .iter()
        .map(raw_item)
        .collect()
}

/// The rows of `sql` (no parameters) as text lines.
async fn lines(store: &RelationalStore, sql: &str) -> Vec<String> {
    let db = store.connection();
    db.query_all_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .iter()
        .map(|r| {
            (0..4)
                .map_while(|i| {
                    r.try_get_by_index::<String>(i)
                        .or_else(|_| r.try_get_by_index::<i64>(i).map(|n| n.to_string()))
                        .ok()
                })
                .collect::<Vec<_>>()
                .join(" | ")
        })
        .collect()
}

#[tokio::main]
async fn main() {
    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string());
    let rows_n = env("BENCH_ROWS", 100_000);
    let iters = env("BENCH_FINDS", 200);
    let schema = format!("bench_find_{}", std::process::id());
    // One connection: both sides share it, and pg_prepared_statements (a
    // per-session view) shows the library's statements.
    let store = RelationalStore::connect(
        &RelationalConfig::new(url.clone())
            .schema(schema.clone())
            .max_connections(1),
    )
    .await
    .expect("connect to PostgreSQL");
    let repo = store.repository::<Item>();
    repo.ensure_schema().await.expect("schema");
    let data: Vec<Item> = (0..rows_n as i64).map(item).collect();
    repo.bulk_insert(&data).await.expect("load");
    let table = repo.table_name().to_string();
    let pool = store.connection().get_postgres_connection_pool().clone();
    sqlx::query(sqlx::AssertSqlSafe(format!("ANALYZE {table}")))
        .execute(&pool)
        .await
        .expect("analyze");

    let cols = "\"id\", \"tier\", \"score\", \"name\", \"created_at\", \"tag\"";
    let dba = format!(
        "SELECT {cols} FROM {table} WHERE \"tier\" = $1 AND \"score\" >= $2 AND \"score\" < $3 \
         ORDER BY \"score\" DESC, \"id\" LIMIT $4"
    );
    let nulls = format!(
        "SELECT {cols} FROM {table} WHERE \"tier\" = $1 AND \"score\" >= $2 AND \"score\" < $3 \
         ORDER BY \"score\" DESC NULLS LAST, \"id\" ASC NULLS FIRST LIMIT 1000"
    );
    let query = |tier: i32| {
        Query::filter(
            Item::TIER
                .eq(tier)
                .and(Item::SCORE.gte(0.0))
                .and(Item::SCORE.lt(1000.0)),
        )
        .sort(Item::SCORE.desc())
        .limit(1_000)
    };

    let mut sea_options = sea_orm::ConnectOptions::new(url.clone());
    sea_options
        .max_connections(1)
        .set_schema_search_path(schema.clone());
    let sea = sea_orm::Database::connect(sea_options)
        .await
        .expect("sea-orm connect");

    let mut times: [Vec<Duration>; 4] = Default::default();
    for n in 0..iters {
        let tier = (n as i64 % TIERS) as i32;
        let mut first: Option<Vec<Item>> = None;
        for k in 0..4 {
            let side = (n + k) % 4;
            let t = Instant::now();
            let got = match side {
                0 => repo.find(&query(tier)).await.expect("find"),
                1 => raw_find(&pool, &dba, tier, Some(1_000)).await,
                2 => raw_find(&pool, &nulls, tier, None).await,
                _ => sea_orm_find(&sea, tier).await,
            };
            times[side].push(t.elapsed());
            assert_eq!(got.len(), 1_000);
            match &first {
                None => first = Some(got),
                Some(f) => assert_eq!(f, &got, "every side returns the same rows"),
            }
        }
    }
    let [mut ours, mut dba_t, mut nulls_t, mut sea_t] = times;
    let (ours_sum, dba_sum, nulls_sum, sea_sum) =
        (sum(&ours), sum(&dba_t), sum(&nulls_t), sum(&sea_t));
    let (ours_med, dba_med, nulls_med, sea_med) = (
        median(&mut ours),
        median(&mut dba_t),
        median(&mut nulls_t),
        median(&mut sea_t),
    );

    println!();
    println!(
        "find 1000 of ~10000 (tier = t, score range, ORDER BY score DESC, id), {rows_n} rows, {iters} rounds"
    );
    println!(
        "{:<24} {:>12} {:>14} {:>14}",
        "side", "median", "median ratio", "totals ratio"
    );
    for (name, med, total) in [
        ("repository", ours_med, ours_sum),
        ("raw DBA SQL", dba_med, dba_sum),
        ("raw, nulls clauses", nulls_med, nulls_sum),
        ("sea-orm entity API", sea_med, sea_sum),
    ] {
        println!(
            "{:<24} {:>12} {:>13.2}x {:>13.2}x",
            name,
            ms(med),
            med.as_secs_f64() / dba_med.as_secs_f64(),
            total.as_secs_f64() / dba_sum.as_secs_f64()
        );
    }

    // The library's statement as the server holds it, and its plan.
    let prepared = lines(
        &store,
        "SELECT name, statement, generic_plans, custom_plans FROM pg_prepared_statements \
         WHERE statement LIKE '%ORDER BY%' AND statement NOT LIKE '%pg_prepared_statements%' \
         ORDER BY name",
    )
    .await;
    println!();
    println!("prepared statements (name | statement | generic plans | custom plans):");
    for l in &prepared {
        println!("  {l}");
    }
    let ours = prepared.iter().find_map(|l| {
        let mut it = l.split(" | ");
        let (name, text) = (it.next()?, it.next()?);
        (text != dba && text != nulls).then(|| (name.to_string(), text.to_string()))
    });
    if let Some((name, text)) = ours {
        let args = if text.contains("$4") {
            "(3, 0, 1000, 1000)"
        } else {
            "(3, 0, 1000)"
        };
        println!();
        println!("EXPLAIN ANALYZE EXECUTE {name}{args} (the library's statement):");
        for l in lines(&store, &format!("EXPLAIN ANALYZE EXECUTE {name}{args}")).await {
            println!("  {l}");
        }
    }
    println!();
    println!("EXPLAIN ANALYZE of the DBA SQL (custom plan):");
    let explain = format!(
        "EXPLAIN ANALYZE {}",
        dba.replace("$1", "3")
            .replace("$2", "0")
            .replace("$3", "1000")
            .replace("$4", "1000")
    );
    for l in lines(&store, &explain).await {
        println!("  {l}");
    }

    println!();
    println!(
        "repository / sea-orm entity API: {:.2}x (medians), {:.2}x (totals)",
        ours_med.as_secs_f64() / sea_med.as_secs_f64(),
        ours_sum.as_secs_f64() / sea_sum.as_secs_f64()
    );
    sea.close().await.expect("close sea-orm");
    store.drop_schema().await.expect("drop bench schema");
    store.close().await;
}
