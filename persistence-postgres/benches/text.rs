//! Full-text search through the repository (`search_text`) vs the same
//! query written by hand in raw sqlx, on the local PostgreSQL, side by side
//! in one run (issue #17: goal ≤ 1.1×):
//!
//! ```text
//! cargo bench -p persistence-postgres --bench text
//! BENCH_ROWS=20000 BENCH_TEXT_REPS=200 cargo bench -p persistence-postgres --bench text
//! ```
//!
//! Loads `BENCH_ROWS` articles (default 20,000; titles of 4 and bodies of
//! 40 words drawn from 3,000 made-up words) into a schema of its own
//! (dropped at the end): the generated `tsvector` column and its GIN index
//! come from `ensure_schema`. Then times `BENCH_TEXT_REPS` searches per
//! side (default 200) in ABBA order, each with another pair of words:
//! * `two words`: `search_text("w1 w2").limit(10)`;
//! * `phrase+or+filter`: `"w1 w2" or w3` with a filter on the topic.
//!
//! The raw side is what a DBA would write: `WHERE "__text" @@
//! websearch_to_tsquery('english', $1) ORDER BY ts_rank(..) DESC, id LIMIT
//! 10` with the user's string bound as it is, rows decoded into the struct.
//! The table shows medians and their ratio; the notes the ratio of means.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use persistence_testing::bench::{env, median};
use std::time::{Duration, Instant};

use persistence_core::{Entity, Filter, Repository, TextSearchExt as _};
use persistence_postgres::sea_orm::sqlx::{self, Row as _};
use persistence_postgres::{RelationalConfig, RelationalStore};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(name = "bench_articles")]
struct Article {
    #[entity(id)]
    id: i64,
    topic: i32,
    #[entity(text_search)]
    title: String,
    #[entity(text_search)]
    body: Option<String>,
}

const SYLLABLES: [&str; 15] = [
    "ba", "ko", "ri", "tu", "me", "sa", "lo", "ni", "ve", "du", "ga", "pe", "zo", "fi", "ru",
];

fn word(n: u64) -> String {
    let n = n % 3000;
    let mut w = String::new();
    let mut x = n + 225;
    while x > 0 {
        w.push_str(SYLLABLES[(x % 15) as usize]);
        x /= 15;
    }
    w.push('x');
    w
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    /// Zipf-ish: small numbers more often.
    fn skewed(&mut self) -> u64 {
        let a = self.next() % 3000;
        let b = self.next() % 3000;
        a.min(b)
    }
}

fn article(i: i64, rng: &mut Rng) -> Article {
    let words = |n: usize, rng: &mut Rng| {
        (0..n)
            .map(|_| word(rng.skewed()))
            .collect::<Vec<_>>()
            .join(" ")
    };
    Article {
        id: i,
        topic: (i % 10) as i32,
        title: words(4, rng),
        body: Some(words(40, rng)),
    }
}

fn raw_row(r: &sqlx::postgres::PgRow) -> (Article, f64) {
    (
        Article {
            id: r.get(0),
            topic: r.get(1),
            title: r.get(2),
            body: r.get(3),
        },
        r.get(4),
    )
}

fn report(name: &str, ours: &mut [Duration], raw: &mut [Duration]) {
    let mean = |v: &[Duration]| v.iter().sum::<Duration>().as_secs_f64() / v.len().max(1) as f64;
    let (a, b) = (mean(ours), mean(raw));
    let (ma, mb) = (median(ours), median(raw));
    println!(
        "{name:<22} {:>10.3}ms {:>10.3}ms {:>7.2}x  means {:.2}x",
        ma.as_secs_f64() * 1e3,
        mb.as_secs_f64() * 1e3,
        ma.as_secs_f64() / mb.as_secs_f64(),
        a / b
    );
}

#[tokio::main]
async fn main() {
    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string());
    let rows_n = env("BENCH_ROWS", 20_000) as i64;
    let reps = env("BENCH_TEXT_REPS", 200);
    let schema = format!("bench_text_{}", std::process::id());
    let store =
        RelationalStore::connect(&RelationalConfig::new(url).schema(schema).max_connections(4))
            .await
            .expect("connect to PostgreSQL");
    let repo = store.repository::<Article>();
    repo.ensure_schema().await.expect("schema");
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let rows: Vec<Article> = (0..rows_n).map(|i| article(i, &mut rng)).collect();
    for chunk in rows.chunks(2000) {
        repo.insert_many(chunk).await.expect("load");
    }
    let pool = store.connection().get_postgres_connection_pool().clone();
    let table = repo.table_name().to_string();
    sqlx::query(sqlx::AssertSqlSafe(format!("ANALYZE {table}")))
        .execute(&pool)
        .await
        .expect("analyze");
    let tsq = "websearch_to_tsquery('english'::regconfig, $1)";
    let raw_plain = format!(
        "SELECT \"id\", \"topic\", \"title\", \"body\", ts_rank(\"__text\", {tsq})::float8 \
         FROM {table} WHERE \"__text\" @@ {tsq} ORDER BY 5 DESC, \"id\" LIMIT 10"
    );
    let raw_filtered = format!(
        "SELECT \"id\", \"topic\", \"title\", \"body\", ts_rank(\"__text\", {tsq})::float8 \
         FROM {table} WHERE \"__text\" @@ {tsq} AND \"topic\" = $2 \
         ORDER BY 5 DESC, \"id\" LIMIT 10"
    );
    println!("\n{rows_n} articles, {reps} searches per side (medians; ratio to raw sqlx)\n");
    println!(
        "{:<22} {:>12} {:>12} {:>8}  notes",
        "case", "search_text", "raw sqlx", "ratio"
    );
    for (name, filtered) in [("two words", false), ("phrase+or+filter", true)] {
        let (mut ours, mut raw) = (Vec::new(), Vec::new());
        let mut q = Rng(42);
        for rep in 0..reps {
            let (a, b, c) = (word(q.skewed() / 8), word(q.skewed() / 8), word(q.skewed()));
            let text = if filtered {
                format!("\"{a} {b}\" or {c}")
            } else {
                format!("{a} {b}")
            };
            let run_ours = || async {
                let start = Instant::now();
                let mut s = repo.search_text(&text).limit(10);
                if filtered {
                    s = s.filter(Filter::field("topic").eq(3));
                }
                let v = s.await.expect("search_text");
                (start.elapsed(), v)
            };
            let run_raw = || async {
                let start = Instant::now();
                let sql = if filtered { &raw_filtered } else { &raw_plain };
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.as_str())).bind(&text);
                if filtered {
                    q = q.bind(3i32);
                }
                let v: Vec<(Article, f64)> = q
                    .fetch_all(&pool)
                    .await
                    .expect("raw")
                    .iter()
                    .map(raw_row)
                    .collect();
                (start.elapsed(), v)
            };
            let (o, r) = if rep % 4 == 1 || rep % 4 == 2 {
                let r = run_raw().await;
                (run_ours().await, r)
            } else {
                let o = run_ours().await;
                (o, run_raw().await)
            };
            let ids = |v: &[(Article, f64)]| v.iter().map(|(a, _)| a.id).collect::<Vec<_>>();
            assert_eq!(ids(&o.1), ids(&r.1), "{text}: the same answer");
            ours.push(o.0);
            raw.push(r.0);
        }
        report(name, &mut ours, &mut raw);
    }
    store.drop_schema().await.expect("drop bench schema");
    store.close().await;
}
