//! `Repository::aggregate` vs the same `GROUP BY` written by hand in raw
//! sqlx, on the local PostgreSQL, side by side in one run (issue #15: goal
//! ≤ 1.1×):
//!
//! ```text
//! cargo bench -p persistence-postgres --bench aggregate
//! BENCH_ROWS=50000 BENCH_GROUPS=100 BENCH_AGG_REPS=40 cargo bench -p persistence-postgres --bench aggregate
//! ```
//!
//! Loads `BENCH_ROWS` rows (default 50,000) in `BENCH_GROUPS` groups
//! (default 100) into a schema of its own (dropped at the end), then times
//! two groupings, each `BENCH_AGG_REPS` times (default 30) per side in ABBA
//! order (repository, raw, raw, repository, ...):
//! * `all groups`: key, count, sum, avg, min, max over every row;
//! * `having+sort+limit`: the same with a filter, `having count >= n`, sorted
//!   by the sum descending, first 10.
//!
//! Each side returns its rows decoded (the repository as `Value` rows and,
//! for `aggregate_as`, as a struct; raw sqlx into the same struct). The table
//! shows medians; the notes the ratio of the means.
//!
//! One run on the 2-core development machine (PostgreSQL local, load
//! average ~2, `BENCH_AGG_REPS=40`):
//!
//! ```text
//! case                                  aggregate aggregate_as     raw sqlx    ratio ratio_as  notes
//! all groups                              14.53ms      15.42ms      15.83ms    0.92x    0.97x  means 0.95x / 1.00x
//! having+sort+limit                       16.54ms      16.55ms      16.22ms    1.02x    1.02x  means 0.99x / 1.00x
//! ```
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use persistence_testing::bench::{env, median};
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};
use persistence_core::{AggregateExt as _, Entity, Filter, GroupBy, Repository};
use persistence_postgres::sea_orm::sqlx::{self, Row as _};
use persistence_postgres::{RelationalConfig, RelationalStore};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(name = "bench_sales")]
struct Sale {
    #[entity(id)]
    id: i64,
    grp: i32,
    qty: i32,
    total: f64,
    amount: Option<i64>,
    at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
struct Stats {
    grp: i32,
    count: i64,
    sum_qty: Option<i64>,
    avg_total: Option<f64>,
    min_at: Option<DateTime<Utc>>,
    max_amount: Option<i64>,
}

fn sale(i: i64, groups: i64) -> Sale {
    Sale {
        id: i,
        grp: (i % groups) as i32,
        qty: (i % 7) as i32 + 1,
        total: (i % 1000) as f64 * 0.25,
        amount: (i % 5 != 0).then_some(i * 3),
        at: Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap() + chrono::Duration::seconds(i),
    }
}

fn raw_stats(r: &sqlx::postgres::PgRow) -> Stats {
    Stats {
        grp: r.get(0),
        count: r.get(1),
        sum_qty: r.get(2),
        avg_total: r.get(3),
        min_at: r.get(4),
        max_amount: r.get(5),
    }
}

struct Timings {
    values: Vec<Duration>,
    typed: Vec<Duration>,
    raw: Vec<Duration>,
}

fn report(name: &str, t: &mut Timings) {
    // Means (the raw side runs twice as often as each repository form).
    let total = |v: &[Duration]| v.iter().sum::<Duration>().as_secs_f64() / v.len().max(1) as f64;
    let (tv, tt, tr) = (total(&t.values), total(&t.typed), total(&t.raw));
    let (mv, mt, mr) = (
        median(&mut t.values),
        median(&mut t.typed),
        median(&mut t.raw),
    );
    let ratio = |a: Duration| a.as_secs_f64() / mr.as_secs_f64();
    println!(
        "{name:<34} {:>10.2}ms {:>10.2}ms {:>10.2}ms {:>7.2}x {:>7.2}x  means {:.2}x / {:.2}x",
        mv.as_secs_f64() * 1e3,
        mt.as_secs_f64() * 1e3,
        mr.as_secs_f64() * 1e3,
        ratio(mv),
        ratio(mt),
        tv / tr,
        tt / tr,
    );
}

#[tokio::main]
async fn main() {
    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string());
    let rows_n = env("BENCH_ROWS", 50_000) as i64;
    let groups = env("BENCH_GROUPS", 100) as i64;
    let reps = env("BENCH_AGG_REPS", 30);
    let schema = format!("bench_agg_{}", std::process::id());
    let store =
        RelationalStore::connect(&RelationalConfig::new(url).schema(schema).max_connections(4))
            .await
            .expect("connect to PostgreSQL");
    let repo = store.repository::<Sale>();
    repo.ensure_schema().await.expect("schema");
    let rows: Vec<Sale> = (0..rows_n).map(|i| sale(i, groups)).collect();
    repo.insert_many(&rows).await.expect("load");
    let pool = store.connection().get_postgres_connection_pool().clone();
    let table = repo.table_name().to_string();
    sqlx::query(sqlx::AssertSqlSafe(format!("ANALYZE {table}")))
        .execute(&pool)
        .await
        .expect("analyze");

    let all = GroupBy::<Sale>::new()
        .key(Sale::GRP)
        .count()
        .sum(Sale::QTY)
        .avg(Sale::TOTAL)
        .min(Sale::AT)
        .max(Sale::AMOUNT);
    let raw_all = format!(
        "SELECT \"grp\", COUNT(*), SUM(\"qty\"), AVG(\"total\"), MIN(\"at\"), MAX(\"amount\") \
         FROM {table} GROUP BY \"grp\" ORDER BY \"grp\""
    );
    let min_count = rows_n / groups / 2;
    let filtered = all
        .clone()
        .having(Filter::field("count").gte(min_count))
        .sort(Filter::field("sum_qty").desc())
        .limit(10);
    let filter = Sale::QTY.gte(2);
    let raw_filtered = format!(
        "SELECT \"grp\", COUNT(*), SUM(\"qty\"), AVG(\"total\"), MIN(\"at\"), MAX(\"amount\") \
         FROM {table} WHERE \"qty\" >= $1 GROUP BY \"grp\" HAVING COUNT(*) >= $2 \
         ORDER BY SUM(\"qty\") DESC, \"grp\" LIMIT 10"
    );

    println!(
        "\n{} rows, {} groups, {} runs per side (medians; ratios to raw sqlx)\n",
        rows_n, groups, reps
    );
    println!(
        "{:<34} {:>12} {:>12} {:>12} {:>8} {:>8}  notes",
        "case", "aggregate", "aggregate_as", "raw sqlx", "ratio", "ratio_as"
    );
    for (name, f, g, sql, binds) in [
        ("all groups", Filter::all(), &all, raw_all.as_str(), false),
        (
            "having+sort+limit",
            filter,
            &filtered,
            raw_filtered.as_str(),
            true,
        ),
    ] {
        let expected = if binds { 10 } else { groups as usize };
        let mut t = Timings {
            values: Vec::new(),
            typed: Vec::new(),
            raw: Vec::new(),
        };
        for rep in 0..reps * 2 {
            let raw_first = rep % 4 == 1 || rep % 4 == 2;
            let run_raw = || async {
                let start = Instant::now();
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
                if binds {
                    q = q.bind(2i32).bind(min_count);
                }
                let v: Vec<Stats> = q
                    .fetch_all(&pool)
                    .await
                    .expect("raw")
                    .iter()
                    .map(raw_stats)
                    .collect();
                assert_eq!(v.len(), expected);
                start.elapsed()
            };
            if raw_first {
                t.raw.push(run_raw().await);
            }
            if rep % 2 == 0 {
                let start = Instant::now();
                let v = repo.aggregate(&f, g).await.expect("aggregate");
                assert_eq!(v.len(), expected);
                t.values.push(start.elapsed());
            } else {
                let start = Instant::now();
                let v: Vec<Stats> = repo.aggregate_as(&f, g).await.expect("aggregate_as");
                assert_eq!(v.len(), expected);
                t.typed.push(start.elapsed());
            }
            if !raw_first {
                t.raw.push(run_raw().await);
            }
        }
        report(name, &mut t);
    }
    // The two agree.
    let ours: Vec<Stats> = repo.aggregate_as(&Filter::all(), &all).await.unwrap();
    let raw: Vec<Stats> = sqlx::query(sqlx::AssertSqlSafe(raw_all.as_str()))
        .fetch_all(&pool)
        .await
        .unwrap()
        .iter()
        .map(raw_stats)
        .collect();
    let sums = |v: &[Stats]| v.iter().map(|s| s.sum_qty).collect::<Vec<_>>();
    assert_eq!(sums(&ours), sums(&raw), "the same sums");
    store.drop_schema().await.expect("drop bench schema");
    store.close().await;
}
