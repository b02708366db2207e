//! Repository vs raw sqlx on the local PostgreSQL, side by side in one run.
//!
//! ```text
//! cargo bench -p persistence-postgres --bench relational
//! BENCH_ROWS=100000 BENCH_STREAM_ROWS=1000000 cargo bench -p persistence-postgres --bench relational
//! ```
//!
//! Prints one table: point reads, bulk loads (row-by-row, multi-row, COPY,
//! and `psql \copy` of the same data from a file when psql is installed),
//! a 1,000-row filtered + sorted find, and the peak RSS while streaming
//! `BENCH_STREAM_ROWS` rows. Everything happens in a schema of its own,
//! dropped at the end. Reads are interleaved (repository, raw, repository,
//! ...) so load changes on a shared machine hit both sides alike.
//!
//! One run on the 2-core development machine (load average ~9 from other
//! builds, PostgreSQL 15 local, `BENCH_ROW_BY_ROW=2000`):
//!
//! ```text
//! case                                     repository          raw    ratio
//! insert 100000 row-by-row                   237.690s            -        -  (2,000 rows, scaled)
//! insert 100000 multi-row INSERT               1.381s            -        -  172x row-by-row
//! insert 100000 COPY (bulk_insert)             0.972s       0.924s    1.05x  244x row-by-row; raw = psql \copy
//! get by id x5000                              2.269s       2.101s    1.08x
//! find 1000 (filter+sort) x50                  2.103s       1.963s    1.07x
//! stream 1000000 rows                          4.275s            -        -  peak RSS 46.0 MiB (+0.0 MiB)
//! ```
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};
use futures_util::StreamExt as _;
use persistence_core::{Entity, Query, Repository};
use persistence_postgres::sea_orm::sqlx::{self, Row as _};
use persistence_postgres::{BulkOptions, RelationalConfig, RelationalRepository, RelationalStore};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(name = "bench_rows")]
struct Row {
    #[entity(id)]
    id: i64,
    #[entity(index)]
    name: String,
    score: f64,
    created_at: DateTime<Utc>,
    tag: Option<String>,
}

fn row(i: i64) -> Row {
    Row {
        id: i,
        name: format!("name-{:06}", i % 50_000),
        score: (i % 1000) as f64 / 7.0,
        created_at: Utc
            .timestamp_opt(1_700_000_000 + i, 0)
            .single()
            .unwrap_or_default(),
        tag: (i % 3 == 0).then(|| format!("tag{}", i % 10)),
    }
}

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

fn reset_peak_rss() {
    // Linux: writing 5 resets VmHWM to the current RSS.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn raw_row(r: &sqlx::postgres::PgRow) -> Row {
    Row {
        id: r.get(0),
        name: r.get(1),
        score: r.get(2),
        created_at: r.get(3),
        tag: r.get(4),
    }
}

struct Line {
    what: String,
    ours: Duration,
    raw: Option<Duration>,
    note: String,
}

async fn truncate(repo: &RelationalRepository<Row>) {
    repo.delete_many(&persistence_core::Filter::all())
        .await
        .expect("truncate");
}

#[tokio::main]
async fn main() {
    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string());
    let rows_n = env("BENCH_ROWS", 100_000);
    let stream_n = env("BENCH_STREAM_ROWS", 1_000_000);
    let reads = env("BENCH_READS", 5_000);
    let schema = format!("bench_{}", std::process::id());
    let store = RelationalStore::connect(
        &RelationalConfig::new(url.clone())
            .schema(schema.clone())
            .max_connections(4),
    )
    .await
    .expect("connect to PostgreSQL");
    let repo = store.repository::<Row>();
    repo.ensure_schema().await.expect("schema");
    let pool = store.connection().get_postgres_connection_pool().clone();
    let table = repo.table_name().to_string();
    let mut lines = Vec::new();

    // --- bulk loads -------------------------------------------------------
    let data: Vec<Row> = (0..rows_n as i64).map(row).collect();
    let by_row_n = rows_n.min(env("BENCH_ROW_BY_ROW", 20_000));
    let t = Instant::now();
    for r in &data[..by_row_n] {
        repo.insert(r).await.expect("insert");
    }
    let by_row = t.elapsed().mul_f64(rows_n as f64 / by_row_n as f64);
    lines.push(Line {
        what: format!("insert {rows_n} row-by-row"),
        ours: by_row,
        raw: None,
        note: format!("measured on {by_row_n} rows, scaled"),
    });
    truncate(&repo).await;

    let t = Instant::now();
    repo.bulk_insert_with(
        &data,
        &BulkOptions {
            copy_threshold: usize::MAX,
        },
    )
    .await
    .expect("multi-row");
    let multi = t.elapsed();
    lines.push(Line {
        what: format!("insert {rows_n} multi-row INSERT"),
        ours: multi,
        raw: None,
        note: format!(
            "{:.1}x row-by-row",
            by_row.as_secs_f64() / multi.as_secs_f64()
        ),
    });
    truncate(&repo).await;

    let t = Instant::now();
    repo.bulk_insert(&data).await.expect("copy");
    let copy = t.elapsed();

    // psql \copy of the same rows from a file.
    let file = std::env::temp_dir().join(format!("{schema}.tsv"));
    let mut psql_time = None;
    {
        let mut text = String::new();
        for r in &data {
            text.push_str(&format!(
                "{}\t{}\t{:?}\t{}\t{}\n",
                r.id,
                r.name,
                r.score,
                r.created_at.to_rfc3339(),
                r.tag.as_deref().unwrap_or("\\N")
            ));
        }
        std::fs::write(&file, text).expect("write tsv");
        truncate(&repo).await;
        let t = Instant::now();
        let status = std::process::Command::new("psql")
            .arg(&url)
            .arg("-q")
            .arg("-c")
            .arg(format!("\\copy {table} FROM '{}'", file.display()))
            .status();
        if status.is_ok_and(|s| s.success()) {
            psql_time = Some(t.elapsed());
        }
        let _ = std::fs::remove_file(&file);
    }
    lines.push(Line {
        what: format!("insert {rows_n} COPY (bulk_insert)"),
        ours: copy,
        raw: psql_time,
        note: format!(
            "{:.1}x row-by-row; raw = psql \\copy from a file",
            by_row.as_secs_f64() / copy.as_secs_f64()
        ),
    });
    truncate(&repo).await;
    repo.bulk_insert(&data).await.expect("reload");
    drop(data);

    // --- point reads ------------------------------------------------------
    let ids: Vec<i64> = (0..reads as i64)
        .map(|i| (i * 7919) % rows_n as i64)
        .collect();
    for id in ids.iter().take(200) {
        repo.get(id).await.expect("warm");
    }
    // Interleaved, so load changes on a shared machine hit both sides alike.
    let sql = format!(
        "SELECT \"id\", \"name\", \"score\", \"created_at\", \"tag\" FROM {table} WHERE \"id\" = $1"
    );
    let (mut ours, mut raw) = (Duration::ZERO, Duration::ZERO);
    for id in &ids {
        let t = Instant::now();
        std::hint::black_box(repo.get(id).await.expect("get"));
        ours += t.elapsed();
        let t = Instant::now();
        let r = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
            .bind(id)
            .fetch_optional(&pool)
            .await
            .expect("raw get");
        std::hint::black_box(r.as_ref().map(raw_row));
        raw += t.elapsed();
    }
    lines.push(Line {
        what: format!("get by id x{reads}"),
        ours,
        raw: Some(raw),
        note: String::new(),
    });

    // --- find 1,000 rows with filter + sort --------------------------------
    let q = Query::filter(Row::SCORE.gte(10.0).and(Row::NAME.lt("name-010000")))
        .sort(Row::NAME.desc())
        .limit(1_000);
    let iters = 50;
    let sql = format!(
        "SELECT \"id\", \"name\", \"score\", \"created_at\", \"tag\" FROM {table} \
         WHERE \"score\" >= $1 AND \"name\" COLLATE \"C\" < $2 \
         ORDER BY \"name\" COLLATE \"C\" DESC NULLS LAST, \"id\" ASC NULLS FIRST LIMIT 1000"
    );
    let (mut ours, mut raw) = (Duration::ZERO, Duration::ZERO);
    for _ in 0..iters {
        let t = Instant::now();
        let v = repo.find(&q).await.expect("find");
        assert_eq!(v.len(), 1_000);
        ours += t.elapsed();
        let t = Instant::now();
        let v: Vec<Row> = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
            .bind(10.0f64)
            .bind("name-010000")
            .fetch_all(&pool)
            .await
            .expect("raw find")
            .iter()
            .map(raw_row)
            .collect();
        assert_eq!(v.len(), 1_000);
        raw += t.elapsed();
    }
    lines.push(Line {
        what: format!("find 1000 (filter+sort) x{iters}"),
        ours,
        raw: Some(raw),
        note: String::new(),
    });

    // --- stream a large table with flat memory ------------------------------
    truncate(&repo).await;
    let input = futures_util::stream::iter(0..stream_n as i64).map(row);
    repo.bulk_insert_stream(input, &BulkOptions::default())
        .await
        .expect("load stream rows");
    reset_peak_rss();
    let base = peak_rss_kib();
    let t = Instant::now();
    let mut s = repo.stream(&Query::all());
    let mut n = 0usize;
    while let Some(r) = s.next().await {
        std::hint::black_box(r.expect("row"));
        n += 1;
    }
    drop(s);
    let streamed = t.elapsed();
    let peak = peak_rss_kib();
    lines.push(Line {
        what: format!("stream {n} rows"),
        ours: streamed,
        raw: None,
        note: format!(
            "peak RSS {:.1} MiB (+{:.1} MiB over the {:.1} MiB before)",
            peak as f64 / 1024.0,
            peak.saturating_sub(base) as f64 / 1024.0,
            base as f64 / 1024.0
        ),
    });

    store.drop_schema().await.expect("drop bench schema");
    store.close().await;

    println!();
    println!(
        "{:<38} {:>12} {:>12} {:>8}  notes",
        "case", "repository", "raw", "ratio"
    );
    for l in lines {
        let (raw, ratio) = match l.raw {
            Some(r) => (
                format!("{:.3}s", r.as_secs_f64()),
                format!("{:.2}x", l.ours.as_secs_f64() / r.as_secs_f64()),
            ),
            None => ("-".into(), "-".into()),
        };
        println!(
            "{:<38} {:>11.3}s {:>12} {:>8}  {}",
            l.what,
            l.ours.as_secs_f64(),
            raw,
            ratio,
            l.note
        );
    }
}
