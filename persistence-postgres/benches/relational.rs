//! Repository vs raw sqlx on the local PostgreSQL, side by side in one run.
//!
//! ```text
//! cargo bench -p persistence-postgres --bench relational
//! BENCH_ROWS=100000 BENCH_STREAM_ROWS=1000000 cargo bench -p persistence-postgres --bench relational
//! ```
//!
//! Prints one table: bulk loads (row-by-row, multi-row, COPY binary and
//! text through `bulk_insert`, hand-made raw COPY text vs binary, and
//! `psql \copy` of the same data from a file when psql is installed), point
//! reads, a 1,000-row filtered + sorted find, and the peak RSS while
//! streaming `BENCH_STREAM_ROWS` rows. Everything happens in a schema of its
//! own, dropped at the end. Reads are interleaved (the order alternating) and
//! each call is timed; the table shows medians, the notes the ratio of totals.
//!
//! Other knobs: `BENCH_READS` (5,000), `BENCH_FINDS` (50), `BENCH_COPY_REPS`
//! (3), `BENCH_ROW_BY_ROW` (rows actually inserted one by one, 20,000; the
//! time is scaled to `BENCH_ROWS`), `BENCH_INSERTS` (single-row inserts
//! compared with raw sqlx, 5,000 each side). `BENCH_ONLY=insert` runs only
//! that comparison: `repository.insert` (which returns the stored row, read
//! back with `RETURNING`) against a plain sqlx `INSERT` of the same five
//! columns, interleaved. `BENCH_ONLY=get-repo|get-raw` runs only
//! point reads of one side, for `valgrind --tool=callgrind`: the
//! instructions of one read are the difference of two runs with different
//! `BENCH_READS` divided by the difference in reads.
//!
//! One run on the 2-core development machine (PostgreSQL 15 local, load
//! average 5-6 from other helpers' builds; `BENCH_COPY_REPS=5
//! BENCH_ROW_BY_ROW=5000 BENCH_READS=10000`):
//!
//! ```text
//! case                                     repository          raw    ratio  notes
//! insert 100000 row-by-row                   298.962s            -        -  measured on 5000 rows, scaled
//! insert 100000 multi-row INSERT               1.204s            -        -  248.3x row-by-row
//! insert 100000 COPY binary (bulk_insert)       0.540s       0.664s    0.81x  553.7x row-by-row; raw = psql \copy from a file
//! insert 100000 COPY text (bulk_insert)        0.660s       0.540s    1.22x  raw = bulk_insert in binary; medians of 5
//! insert 100000 raw COPY text                  0.568s       0.464s    1.22x  raw = raw COPY binary; medians of 5, same rows
//! get by id, median of 10000                  189.8us      191.7us    0.99x  totals 4.371s vs 5.459s = 0.80x
//! find 1000 (filter+sort), median of 50        0.065s       0.064s    1.02x  totals 3.204s vs 3.330s = 0.96x
//! stream 1000000 rows                          2.840s            -        -  peak RSS 45.4 MiB (+0.0 MiB over the 45.4 MiB before)
//! ```
//!
//! `BENCH_ONLY=insert BENCH_INSERTS=1500`, before and after writes read the
//! row back with `RETURNING` (dev-profile builds, load average ~17 from
//! other builds; runs alternated before/after/before/after): median ratio
//! to a plain raw `INSERT` 1.01x / 0.96x before, 1.03x / 1.02x after;
//! ratio of totals 1.00x / 1.04x before, 1.04x / 1.07x after (~4 ms a row
//! on that machine, so the noise is larger than the difference).
//!
//! Wall-clock ratios move by several percent between runs on the loaded
//! machine. Callgrind (client side only, noise-free): a point read costs
//! ~69,000 instructions through the repository vs ~60,000 through raw sqlx
//! (1.15x; it was 110,000 vs 65,000 before statements bypassed the boxed
//! `ConnectionTrait` futures and rows stopped going through a `BTreeMap`).
use persistence_testing::bench::{env, median};
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};
use futures_util::StreamExt as _;
use persistence_core::{Entity, Query, Repository};
use persistence_postgres::sea_orm::sqlx::{self, Row as _};
use persistence_postgres::{
    BulkOptions, CopyFormat, RelationalConfig, RelationalRepository, RelationalStore,
};
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

fn secs(d: Duration) -> String {
    if d < Duration::from_millis(10) {
        format!("{:.1}us", d.as_secs_f64() * 1e6)
    } else {
        format!("{:.3}s", d.as_secs_f64())
    }
}

/// Microseconds since 2000-01-01 UTC (PostgreSQL's binary timestamp).
fn pg_micros(d: &DateTime<Utc>) -> i64 {
    const PG_EPOCH_UNIX_MICROS: i64 = 946_684_800_000_000;
    d.timestamp_micros() - PG_EPOCH_UNIX_MICROS
}

/// The rows as PostgreSQL COPY text, the same bytes for the raw text COPY
/// and the `psql \copy` file.
fn copy_text(data: &[Row]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() * 64);
    for r in data {
        use std::io::Write as _;
        let _ = writeln!(
            out,
            "{}\t{}\t{:?}\t{}\t{}",
            r.id,
            r.name,
            r.score,
            r.created_at.to_rfc3339(),
            r.tag.as_deref().unwrap_or("\\N")
        );
    }
    out
}

/// The rows as PostgreSQL COPY binary.
fn copy_binary(data: &[Row]) -> Vec<u8> {
    let mut out = Vec::with_capacity(19 + data.len() * 64);
    out.extend_from_slice(b"PGCOPY\n\xff\r\n\0");
    out.extend_from_slice(&0i32.to_be_bytes()); // flags
    out.extend_from_slice(&0i32.to_be_bytes()); // header extension
    for r in data {
        out.extend_from_slice(&5i16.to_be_bytes());
        out.extend_from_slice(&8i32.to_be_bytes());
        out.extend_from_slice(&r.id.to_be_bytes());
        out.extend_from_slice(&(r.name.len() as i32).to_be_bytes());
        out.extend_from_slice(r.name.as_bytes());
        out.extend_from_slice(&8i32.to_be_bytes());
        out.extend_from_slice(&r.score.to_bits().to_be_bytes());
        out.extend_from_slice(&8i32.to_be_bytes());
        out.extend_from_slice(&pg_micros(&r.created_at).to_be_bytes());
        match &r.tag {
            Some(t) => {
                out.extend_from_slice(&(t.len() as i32).to_be_bytes());
                out.extend_from_slice(t.as_bytes());
            }
            None => out.extend_from_slice(&(-1i32).to_be_bytes()),
        }
    }
    out.extend_from_slice(&(-1i16).to_be_bytes());
    out
}

/// `COPY table FROM STDIN` of prepared bytes in one transaction, 1 MiB a message.
async fn raw_copy(pool: &sqlx::PgPool, table: &str, binary: bool, data: &[Row]) -> Duration {
    let t = Instant::now();
    let bytes = if binary {
        copy_binary(data)
    } else {
        copy_text(data)
    };
    let mut tx = pool.begin().await.expect("begin");
    let stmt = format!(
        "COPY {table} FROM STDIN{}",
        if binary { " (FORMAT binary)" } else { "" }
    );
    let mut copy = tx.copy_in_raw(&stmt).await.expect("copy in");
    for piece in bytes.chunks(1 << 20) {
        copy.send(piece).await.expect("copy send");
    }
    copy.finish().await.expect("copy finish");
    tx.commit().await.expect("commit");
    t.elapsed()
}

/// One point read through raw sqlx (same SQL text, same pool).
async fn raw_get(pool: &sqlx::PgPool, sql: &str, id: i64) -> Option<Row> {
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(pool)
        .await
        .expect("raw get")
        .as_ref()
        .map(raw_row)
}

/// One row through raw sqlx, returning nothing (the caller keeps its input).
async fn raw_insert(pool: &sqlx::PgPool, sql: &str, r: &Row) {
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(r.id)
        .bind(&r.name)
        .bind(r.score)
        .bind(r.created_at)
        .bind(&r.tag)
        .execute(pool)
        .await
        .expect("raw insert");
}

/// Single-row inserts, interleaved (the order alternates): the repository's
/// `insert` against a raw sqlx `INSERT` of the same columns into the same
/// table (the raw side takes odd ids, the repository even ones above the
/// loaded rows). Each call is timed; medians are compared, the note gives
/// the ratio of totals.
async fn insert_case(repo: &RelationalRepository<Row>, pool: &sqlx::PgPool, n: usize) -> Line {
    let sql = format!(
        "INSERT INTO {} (\"id\", \"name\", \"score\", \"created_at\", \"tag\") \
         VALUES ($1, $2, $3, $4, $5)",
        repo.table_name()
    );
    let base = 1_000_000_000i64;
    for i in 0..20 {
        // Warm both paths (prepared statements, pool).
        repo.insert(&row(base - 2 * i - 2))
            .await
            .expect("warm insert");
        raw_insert(pool, &sql, &row(base - 2 * i - 1)).await;
    }
    let (mut ours, mut raw) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for k in 0..n as i64 {
        for side in [k % 2, 1 - k % 2] {
            let t = Instant::now();
            if side == 0 {
                std::hint::black_box(repo.insert(&row(base + 2 * k)).await.expect("insert"));
                ours.push(t.elapsed());
            } else {
                let r = row(base + 2 * k + 1);
                raw_insert(pool, &sql, &r).await;
                std::hint::black_box(r);
                raw.push(t.elapsed());
            }
        }
    }
    let sum = |v: &[Duration]| v.iter().sum::<Duration>();
    let (ours_sum, raw_sum) = (sum(&ours), sum(&raw));
    Line {
        what: format!("insert one row, median of {n}"),
        ours: median(&mut ours),
        raw: Some(median(&mut raw)),
        note: format!(
            "totals {:.3}s vs {:.3}s = {:.2}x; raw = plain INSERT (no RETURNING)",
            ours_sum.as_secs_f64(),
            raw_sum.as_secs_f64(),
            ours_sum.as_secs_f64() / raw_sum.as_secs_f64()
        ),
    }
}

fn print_lines(lines: Vec<Line>) {
    println!();
    println!(
        "{:<38} {:>12} {:>12} {:>8}  notes",
        "case", "repository", "raw", "ratio"
    );
    for l in lines {
        let (raw, ratio) = match l.raw {
            Some(r) => (
                secs(r),
                format!("{:.2}x", l.ours.as_secs_f64() / r.as_secs_f64()),
            ),
            None => ("-".into(), "-".into()),
        };
        println!(
            "{:<38} {:>12} {:>12} {:>8}  {}",
            l.what,
            secs(l.ours),
            raw,
            ratio,
            l.note
        );
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

    // BENCH_ONLY=get-repo|get-raw: only point reads of one side, for
    // `valgrind --tool=callgrind` (instructions per read = difference of two
    // runs with different BENCH_READS, divided by the difference in reads).
    let inserts = env("BENCH_INSERTS", 5_000);
    if std::env::var("BENCH_ONLY").as_deref() == Ok("insert") {
        let line = insert_case(&repo, &pool, inserts).await;
        store.drop_schema().await.expect("drop bench schema");
        store.close().await;
        print_lines(vec![line]);
        return;
    }
    if let Ok(only) = std::env::var("BENCH_ONLY") {
        let data: Vec<Row> = (0..rows_n as i64).map(row).collect();
        repo.bulk_insert(&data).await.expect("load");
        let sql = format!(
            "SELECT \"id\", \"name\", \"score\", \"created_at\", \"tag\" FROM {table} WHERE \"id\" = $1"
        );
        for i in 0..(reads + 20) as i64 {
            let id = (i * 7919) % rows_n as i64;
            match only.as_str() {
                "get-repo" => {
                    std::hint::black_box(repo.get(&id).await.expect("get"));
                }
                _ => {
                    std::hint::black_box(raw_get(&pool, &sql, id).await);
                }
            }
        }
        store.drop_schema().await.expect("drop bench schema");
        store.close().await;
        return;
    }

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
            ..BulkOptions::default()
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

    // COPY: the library (text format, from entities) against hand-made raw
    // COPYs of the same rows in text and in binary format, interleaved and
    // repeated; the median of each is reported.
    let copy_reps = env("BENCH_COPY_REPS", 3).max(1);
    let text_opts = BulkOptions {
        copy_format: CopyFormat::Text,
        ..BulkOptions::default()
    };
    let (mut lib, mut lib_text, mut text, mut binary) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for rep in 0..copy_reps {
        for k in 0..4 {
            truncate(&repo).await;
            match (k + rep) % 4 {
                0 => {
                    let t = Instant::now();
                    repo.bulk_insert(&data).await.expect("copy");
                    lib.push(t.elapsed());
                }
                1 => {
                    let t = Instant::now();
                    repo.bulk_insert_with(&data, &text_opts)
                        .await
                        .expect("copy text");
                    lib_text.push(t.elapsed());
                }
                2 => text.push(raw_copy(&pool, &table, false, &data).await),
                _ => binary.push(raw_copy(&pool, &table, true, &data).await),
            }
        }
    }
    let copy = median(&mut lib);
    let lib_text = median(&mut lib_text);
    let text = median(&mut text);
    let binary = median(&mut binary);

    // psql \copy of the same rows from a file.
    let file = std::env::temp_dir().join(format!("{schema}.tsv"));
    std::fs::write(&file, copy_text(&data)).expect("write tsv");
    let mut psql = Vec::new();
    for _ in 0..copy_reps {
        truncate(&repo).await;
        let t = Instant::now();
        let status = std::process::Command::new("psql")
            .arg(&url)
            .arg("-q")
            .arg("-c")
            .arg(format!("\\copy {table} FROM '{}'", file.display()))
            .status();
        if status.is_ok_and(|s| s.success()) {
            psql.push(t.elapsed());
        }
    }
    let _ = std::fs::remove_file(&file);
    let psql_time = (!psql.is_empty()).then(|| median(&mut psql));
    lines.push(Line {
        what: format!("insert {rows_n} COPY binary (bulk_insert)"),
        ours: copy,
        raw: psql_time,
        note: format!(
            "{:.1}x row-by-row; raw = psql \\copy from a file{}",
            by_row.as_secs_f64() / copy.as_secs_f64(),
            if psql_time.is_none() {
                " (psql not available)"
            } else {
                ""
            }
        ),
    });
    lines.push(Line {
        what: format!("insert {rows_n} COPY text (bulk_insert)"),
        ours: lib_text,
        raw: Some(copy),
        note: format!("raw = bulk_insert in binary; medians of {copy_reps}"),
    });
    lines.push(Line {
        what: format!("insert {rows_n} raw COPY text"),
        ours: text,
        raw: Some(binary),
        note: format!("raw = raw COPY binary; medians of {copy_reps}, same rows"),
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
    // Interleaved (the order alternates), so load changes on a shared machine
    // hit both sides alike; each call is timed and the medians are compared.
    let sql = format!(
        "SELECT \"id\", \"name\", \"score\", \"created_at\", \"tag\" FROM {table} WHERE \"id\" = $1"
    );
    let (mut ours, mut raw) = (Vec::with_capacity(reads), Vec::with_capacity(reads));
    for (n, id) in ids.iter().enumerate() {
        for side in [n % 2, 1 - n % 2] {
            let t = Instant::now();
            if side == 0 {
                std::hint::black_box(repo.get(id).await.expect("get"));
                ours.push(t.elapsed());
            } else {
                std::hint::black_box(raw_get(&pool, &sql, *id).await);
                raw.push(t.elapsed());
            }
        }
    }
    let sum = |v: &[Duration]| v.iter().sum::<Duration>();
    let (ours_sum, raw_sum) = (sum(&ours), sum(&raw));
    lines.push(Line {
        what: format!("get by id, median of {reads}"),
        ours: median(&mut ours),
        raw: Some(median(&mut raw)),
        note: format!(
            "totals {:.3}s vs {:.3}s = {:.2}x",
            ours_sum.as_secs_f64(),
            raw_sum.as_secs_f64(),
            ours_sum.as_secs_f64() / raw_sum.as_secs_f64()
        ),
    });

    // --- find 1,000 rows with filter + sort --------------------------------
    // The raw side writes the order as the library now does (`name` and `id`
    // are NOT NULL: no nulls clause; strings by code point); `benches/find.rs`
    // compares a find with the SQL a DBA would write.
    let q = Query::filter(Row::SCORE.gte(10.0).and(Row::NAME.lt("name-010000")))
        .sort(Row::NAME.desc())
        .limit(1_000);
    let iters = env("BENCH_FINDS", 50);
    let sql = format!(
        "SELECT \"id\", \"name\", \"score\", \"created_at\", \"tag\" FROM {table} \
         WHERE \"score\" >= $1 AND \"name\" COLLATE \"C\" < $2 \
         ORDER BY \"name\" COLLATE \"C\" DESC, \"id\" LIMIT $3"
    );
    let (mut ours, mut raw) = (Vec::new(), Vec::new());
    for n in 0..iters {
        for side in [n % 2, 1 - n % 2] {
            let t = Instant::now();
            if side == 0 {
                let v = repo.find(&q).await.expect("find");
                assert_eq!(v.len(), 1_000);
                ours.push(t.elapsed());
            } else {
                let v: Vec<Row> = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
                    .bind(10.0f64)
                    .bind("name-010000")
                    .bind(1_000i64)
                    .fetch_all(&pool)
                    .await
                    .expect("raw find")
                    .iter()
                    .map(raw_row)
                    .collect();
                assert_eq!(v.len(), 1_000);
                raw.push(t.elapsed());
            }
        }
    }
    let (ours_sum, raw_sum) = (sum(&ours), sum(&raw));
    lines.push(Line {
        what: format!("find 1000 (filter+sort), median of {iters}"),
        ours: median(&mut ours),
        raw: Some(median(&mut raw)),
        note: format!(
            "totals {:.3}s vs {:.3}s = {:.2}x",
            ours_sum.as_secs_f64(),
            raw_sum.as_secs_f64(),
            ours_sum.as_secs_f64() / raw_sum.as_secs_f64()
        ),
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

    // --- single-row inserts -------------------------------------------------
    lines.push(insert_case(&repo, &pool, inserts).await);

    store.drop_schema().await.expect("drop bench schema");
    store.close().await;
    print_lines(lines);
}
