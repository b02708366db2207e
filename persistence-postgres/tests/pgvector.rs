//! Vector fields on a PostgreSQL with pgvector (`VECTOR_DATABASE_URL`;
//! `scripts/services up` runs one on 127.0.0.1:5433): the generated
//! `vector(n)` column and HNSW index `ensure_schema` creates (idempotently,
//! also on a table loaded before), recall of the index against the exact
//! answer, filters with nearest, dimension errors, and an on-demand
//! benchmark against the same SQL by hand.
use std::collections::HashSet;
use std::time::{Duration, Instant};

use persistence_core::vector::NearestExt as _;
use persistence_core::{Entity, ErrorKind, Filter, Metric, Repository};
use persistence_postgres::sea_orm::sqlx::{self, Row as _};
use persistence_postgres::sea_orm::{ConnectionTrait as _, Statement};
use persistence_postgres::{RelationalRepository, RelationalStore};
use persistence_testing::TestPostgres;
use serde::{Deserialize, Serialize};

const DIM: usize = 128;

/// The same 128-dim vector ranked two ways. HNSW with m = 32,
/// ef_construction = 200: uniform random 128-dim vectors are the hard case
/// for a graph index (distances concentrate); measured on this data with
/// pgvector's defaults (16, 64) recall@10 was 0.51 / 0.76 / 0.88 / 0.96 at
/// ef_search 40 / 100 / 200 / 400, with (32, 200) 0.75 / 0.92 / 0.98 / 0.99.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(name = "vec_items")]
struct Item {
    #[entity(id)]
    id: i64,
    grp: i32,
    #[entity(vector(dim = 128, metric = l2, hnsw(m = 32, ef_construction = 200)))]
    l2: Vec<f32>,
    #[entity(vector(dim = 128, metric = cosine, hnsw(m = 32, ef_construction = 200)))]
    cos: Vec<f32>,
}

/// The same table without the vector declarations: loads rows before the
/// indexes exist (an HNSW index builds faster over loaded rows).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(name = "vec_items")]
struct PlainItem {
    #[entity(id)]
    id: i64,
    grp: i32,
    l2: Vec<f32>,
    cos: Vec<f32>,
}

/// xorshift64*: a fixed, dependency-free sequence for reproducible data.
struct Rng(u64);

impl Rng {
    fn next_f32(&mut self) -> f32 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let x = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40; // 24 bits
        #[allow(clippy::cast_precision_loss)]
        let u = x as f32 / (1u64 << 24) as f32;
        2.0 * u - 1.0
    }
    fn vector(&mut self) -> Vec<f32> {
        (0..DIM).map(|_| self.next_f32()).collect()
    }
}

fn data(n: usize, seed: u64) -> Vec<PlainItem> {
    let mut rng = Rng(seed);
    (0..n)
        .map(|i| {
            let v = rng.vector();
            let id = i64::try_from(i).expect("id");
            PlainItem {
                id,
                grp: i32::try_from(id % 10).expect("grp"),
                l2: v.clone(),
                cos: v,
            }
        })
        .collect()
}

/// Load `n` rows, then let `ensure_schema` of [`Item`] add the vector
/// columns and indexes over them.
async fn loaded(store: &RelationalStore, n: usize) -> (RelationalRepository<Item>, Vec<PlainItem>) {
    let plain = store.repository::<PlainItem>();
    plain.ensure_schema().await.expect("plain schema");
    let rows = data(n, 0x5EED_0017);
    plain.bulk_insert(&rows).await.expect("load");
    let repo = store.repository::<Item>();
    repo.ensure_schema().await.expect("vector schema");
    (repo, rows)
}

/// Ids of the exact `k` nearest by `metric` among `rows` passing `pred`.
fn exact(
    rows: &[PlainItem],
    metric: Metric,
    q: &[f32],
    k: usize,
    pred: impl Fn(&PlainItem) -> bool,
) -> Vec<i64> {
    let mut d: Vec<(f64, i64)> = rows
        .iter()
        .filter(|r| pred(r))
        .map(|r| (metric.distance(&r.l2, q), r.id))
        .collect();
    d.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    d.into_iter().take(k).map(|(_, id)| id).collect()
}

fn overlap(a: &[i64], b: &[(Item, f64)]) -> usize {
    let got: HashSet<i64> = b.iter().map(|(e, _)| e.id).collect();
    a.iter().filter(|id| got.contains(id)).count()
}

async fn pg() -> Option<TestPostgres> {
    TestPostgres::vector_schema().await
}

/// recall@10 of the HNSW index (m = 32, ef_construction = 200) against the
/// exact answer on 20,000 random 128-dim vectors (fixed seed), cosine and
/// L2, at `ef_search` 40 (pgvector's default), 100 and 200 (printed) and
/// 400 (asserted ≥ 0.95); then filters: every hit matches,
/// `k` rows come back even for a filter matching 0.25 % of the rows
/// (iterative index scans), and the filtered recall holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hnsw_recall_and_filters_on_20k_vectors() {
    let Some(pg) = pg().await else { return };
    let store = pg.store().await.expect("store");
    assert!(
        store.vector_schema().is_some(),
        "the vector extension is installed"
    );
    let (repo, rows) = loaded(&store, 20_000).await;
    assert!(Repository::capabilities(&repo).approximate_nearest);
    let mut rng = Rng(0xC0FFEE);
    let queries: Vec<Vec<f32>> = (0..50).map(|_| rng.vector()).collect();
    for (field, metric) in [("l2", Metric::L2), ("cos", Metric::Cosine)] {
        let mut found = [0usize; 4];
        for q in &queries {
            let want = exact(&rows, metric, q, 10, |_| true);
            let hits = repo.nearest(field, q, 10).await.expect("nearest");
            assert_eq!(hits.len(), 10);
            found[0] += overlap(&want, &hits);
            for (slot, ef) in [(1, 100), (2, 200), (3, 400)] {
                let hits = repo
                    .nearest(field, q, 10)
                    .ef_search(ef)
                    .await
                    .expect("nearest");
                found[slot] += overlap(&want, &hits);
                assert!(hits.windows(2).all(|w| w[0].1 <= w[1].1), "distance order");
            }
        }
        #[allow(clippy::cast_precision_loss)]
        let r = found.map(|n| n as f64 / 500.0);
        println!(
            "recall@10 {field}: ef_search 40 (default) {:.3}, 100 {:.3}, 200 {:.3}, 400 {:.3}",
            r[0], r[1], r[2], r[3]
        );
        assert!(
            r[3] >= 0.95,
            "{field}: recall@10 at ef_search 400 is {}",
            r[3]
        );
    }
    // Filter + nearest: pre-filter semantics over the index.
    let (mut found, mut wanted) = (0, 0);
    for q in queries.iter().take(20) {
        let want = exact(&rows, Metric::L2, q, 10, |r| r.grp == 3);
        let hits = repo
            .nearest(Item::L2, q, 10)
            .filter(Item::GRP.eq(3))
            .ef_search(200)
            .await
            .expect("filtered");
        assert_eq!(hits.len(), 10, "k rows although 90 % are filtered out");
        assert!(hits.iter().all(|(e, _)| e.grp == 3), "only matching rows");
        found += overlap(&want, &hits);
        wanted += 10;
    }
    #[allow(clippy::cast_precision_loss)]
    let recall = found as f64 / wanted as f64;
    println!("recall@10 with grp = 3 (10 % of rows): {recall:.3}");
    assert!(recall >= 0.9, "filtered recall {recall}");
    // 50 of 20,000 rows match: the iterative scan still finds 10 of them.
    let rare = Item::ID.lt(50);
    let hits = repo
        .nearest(Item::COS, &queries[0], 10)
        .filter(rare)
        .await
        .expect("rare");
    assert_eq!(
        hits.len(),
        10,
        "a very selective filter still yields k rows"
    );
    assert!(hits.iter().all(|(e, _)| e.id < 50));
    drop(store);
    pg.cleanup().await.expect("cleanup");
}

/// `ensure_schema` creates the generated column and one HNSW index per
/// vector field, and running it again (another repository, another store)
/// changes nothing; wrong dimensions are `InvalidInput` on pgvector too.
#[tokio::test]
async fn index_is_created_idempotently_and_dimensions_are_checked() {
    let Some(pg) = pg().await else { return };
    let store = pg.store().await.expect("store");
    let repo = store.repository::<Item>();
    repo.ensure_schema().await.expect("first");
    repo.ensure_schema().await.expect("second");
    let again = pg.store().await.expect("store 2");
    again
        .repository::<Item>()
        .ensure_schema()
        .await
        .expect("third");
    let schema = pg.schema_name().expect("schema").to_string();
    let db = store.connection();
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(
            db.get_database_backend(),
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = $1 \
             AND tablename = 'vec_items' AND indexdef LIKE '%USING hnsw%' ORDER BY indexname",
            [schema.clone().into()],
        ))
        .await
        .expect("indexes");
    let defs: Vec<(String, String)> = rows
        .iter()
        .map(|r| {
            (
                r.try_get_by_index(0).expect("name"),
                r.try_get_by_index(1).expect("def"),
            )
        })
        .collect();
    assert_eq!(defs.len(), 2, "{defs:?}");
    assert_eq!(defs[0].0, "vx_vec_items_cos");
    assert!(
        defs[0].1.contains("vector_cosine_ops") && defs[0].1.contains("m='32'"),
        "{defs:?}"
    );
    assert_eq!(defs[1].0, "vx_vec_items_l2");
    assert!(defs[1].1.contains("vector_l2_ops"), "{defs:?}");
    let cols = db
        .query_all_raw(Statement::from_sql_and_values(
            db.get_database_backend(),
            "SELECT column_name::text, is_generated::text FROM information_schema.columns \
             WHERE table_schema = $1 AND table_name = 'vec_items' AND column_name LIKE '%vector' \
             ORDER BY 1",
            [schema.into()],
        ))
        .await
        .expect("columns");
    let cols: Vec<(String, String)> = cols
        .iter()
        .map(|r| {
            (
                r.try_get_by_index(0).expect("c"),
                r.try_get_by_index(1).expect("g"),
            )
        })
        .collect();
    assert_eq!(
        cols,
        [
            ("cos__vector".to_string(), "ALWAYS".to_string()),
            ("l2__vector".to_string(), "ALWAYS".to_string())
        ]
    );
    // Dimension checks come before SQL: typed errors naming the field.
    let mut rng = Rng(7);
    let mut item = Item {
        id: 1,
        grp: 0,
        l2: rng.vector(),
        cos: rng.vector(),
    };
    repo.insert(&item).await.expect("insert");
    item.l2.pop();
    let e = repo.upsert(&item).await.expect_err("127 dims");
    assert_eq!(e.kind(), &ErrorKind::InvalidInput, "{e:?}");
    assert!(
        e.message().contains("field `l2`") && e.message().contains("128"),
        "{e}"
    );
    let e = repo
        .nearest(Item::COS, &[1.0; 3], 5)
        .await
        .expect_err("3 dims");
    assert_eq!(e.kind(), &ErrorKind::InvalidInput, "{e:?}");
    // The generated column follows updates (here a patch-free overwrite).
    let mut moved = repo.get(&1).await.expect("get").expect("row");
    moved.l2 = vec![0.5; DIM];
    repo.upsert(&moved).await.expect("upsert");
    let hits = repo
        .nearest(Item::L2, &[0.5; DIM], 1)
        .await
        .expect("nearest");
    assert!(hits[0].1.abs() < 1e-6, "{:?}", hits[0].1);
    assert_eq!(repo.count(&Filter::all()).await.expect("count"), 1);
    drop((store, again));
    pg.cleanup().await.expect("cleanup");
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// CPU time this process has used so far, all its threads (Linux's
/// per-thread `schedstat`, nanoseconds); `None` where that is not readable.
/// The client's share of a query's cost: on a machine whose cores the
/// server shares, it is what throughput at full load pays for.
fn process_cpu() -> Option<Duration> {
    let mut ns = 0u64;
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let Ok(task) = task else { continue };
        // A thread that has just exited has no file any more.
        let Ok(stat) = std::fs::read_to_string(task.path().join("schedstat")) else {
            continue;
        };
        ns += stat.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(Duration::from_nanos(ns))
}

/// On-demand benchmark (issue #17), run with
/// `cargo nextest run --release -p persistence-postgres --all-features --test pgvector --run-ignored only --no-capture`
/// (`BENCH_ROWS`, `BENCH_QUERIES` override 20,000 rows / 400 queries):
/// `nearest` k = 10 through the repository against the same SQL by hand
/// (sqlx, decoding the same columns), interleaved on one pooled server,
/// the client's CPU time per query each way, then QPS with 8 concurrent
/// clients each way. Prints the ratios.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "on-demand benchmark; prints repository / hand-SQL ratios"]
async fn bench_nearest_vs_hand_sql() {
    let Some(pg) = pg().await else { return };
    let rows_n = persistence_testing::bench::env("BENCH_ROWS", 20_000);
    let iters = persistence_testing::bench::env("BENCH_QUERIES", 400);
    let store = pg.store().await.expect("store");
    let (repo, _) = loaded(&store, rows_n).await;
    let pool = store.connection().get_postgres_connection_pool().clone();
    let table = repo.table_name().to_string();
    let ext = store.vector_schema().expect("pgvector").to_string();
    let sql = format!(
        "SELECT \"id\", \"grp\", \"l2\", \"cos\", \"l2__vector\" OPERATOR(\"{ext}\".<->) CAST($1 AS \"{ext}\".vector) \
         FROM {table} ORDER BY \"l2__vector\" OPERATOR(\"{ext}\".<->) CAST($2 AS \"{ext}\".vector) LIMIT 10"
    );
    let hand = move |q: Vec<f32>| {
        let (pool, sql) = (pool.clone(), sql.clone());
        async move {
            let text = format!(
                "[{}]",
                q.iter().map(f32::to_string).collect::<Vec<_>>().join(",")
            );
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(text.clone())
                .bind(text)
                .fetch_all(&pool)
                .await
                .expect("hand")
                .iter()
                .map(|r| {
                    let item = Item {
                        id: r.get(0),
                        grp: r.get(1),
                        l2: r.get::<sqlx::types::Json<Vec<f32>>, _>(2).0,
                        cos: r.get::<sqlx::types::Json<Vec<f32>>, _>(3).0,
                    };
                    (item, r.get::<f64, _>(4))
                })
                .collect::<Vec<_>>()
        }
    };
    let mut rng = Rng(42);
    let queries: Vec<Vec<f32>> = (0..iters).map(|_| rng.vector()).collect();
    let (mut lib, mut raw) = (Vec::new(), Vec::new());
    for (n, q) in queries.iter().enumerate() {
        for side in [n % 2, 1 - n % 2] {
            let t = Instant::now();
            let ids: Vec<i64> = if side == 0 {
                let hits = repo.nearest(Item::L2, q, 10).await.expect("repo");
                let ids = hits.iter().map(|(e, _)| e.id).collect();
                lib.push(t.elapsed());
                ids
            } else {
                let hits = hand(q.clone()).await;
                let ids = hits.iter().map(|(e, _)| e.id).collect();
                raw.push(t.elapsed());
                ids
            };
            assert_eq!(ids.len(), 10);
        }
    }
    let (ml, mr) = (
        persistence_testing::bench::median(&mut lib),
        persistence_testing::bench::median(&mut raw),
    );
    let (tl, tr): (Duration, Duration) = (lib.iter().sum(), raw.iter().sum());
    println!(
        "nearest k=10, {rows_n} rows x {DIM} dims, {iters} queries: repository median {:.3} ms, \
         hand SQL {:.3} ms; ratio median {:.2}x, totals {:.2}x",
        ms(ml),
        ms(mr),
        ms(ml) / ms(mr),
        tl.as_secs_f64() / tr.as_secs_f64()
    );
    // The client's CPU time per query, one client, each side in turn over
    // six blocks of all the queries.
    let mut cpu = [Duration::ZERO; 2];
    for block in 0..6 {
        let side = block % 2;
        let Some(c0) = process_cpu() else { break };
        for q in &queries {
            if side == 0 {
                repo.nearest(Item::L2, q, 10).await.expect("repo");
            } else {
                hand(q.clone()).await;
            }
        }
        cpu[side] += process_cpu().unwrap_or(c0).saturating_sub(c0);
    }
    #[allow(clippy::cast_precision_loss)]
    let per = |d: Duration| d.as_secs_f64() * 1e6 / (3.0 * queries.len() as f64);
    if cpu[1] > Duration::ZERO {
        println!(
            "client CPU per query (1 client): repository {:.0} us, hand SQL {:.0} us; ratio {:.2}x",
            per(cpu[0]),
            per(cpu[1]),
            cpu[0].as_secs_f64() / cpu[1].as_secs_f64()
        );
    }
    // QPS with 8 concurrent clients each way, alternating sides over eight
    // rounds (the machine is shared: one round alone says little).
    let rounds: u32 = 8;
    let mut qps = [0.0f64; 2];
    let mut cpu = [Duration::ZERO; 2];
    for round in 0..rounds {
        let side = usize::from(round % 2 == 1);
        let c0 = process_cpu();
        let t = Instant::now();
        let mut tasks = Vec::new();
        for c in 0..8 {
            let (repo, hand, qs) = (repo.clone(), hand.clone(), queries.clone());
            tasks.push(tokio::spawn(async move {
                for q in qs.iter().skip(c).step_by(8) {
                    if side == 0 {
                        repo.nearest(Item::L2, q, 10).await.expect("repo");
                    } else {
                        hand(q.clone()).await;
                    }
                }
            }));
        }
        for t in tasks {
            t.await.expect("client");
        }
        #[allow(clippy::cast_precision_loss)]
        let n = queries.len() as f64;
        let round_qps = n / t.elapsed().as_secs_f64();
        if let (Some(c0), Some(c1)) = (c0, process_cpu()) {
            cpu[side] += c1.saturating_sub(c0);
        }
        println!(
            "8 clients, round {round}: {} {round_qps:.0} QPS",
            ["repository", "hand SQL"][side]
        );
        qps[side] += round_qps / f64::from(rounds / 2);
    }
    println!(
        "8 clients (mean of {} rounds each): repository {:.0} QPS, hand SQL {:.0} QPS; ratio {:.2}x",
        rounds / 2,
        qps[0],
        qps[1],
        qps[1] / qps[0]
    );
    if cpu[1] > Duration::ZERO {
        #[allow(clippy::cast_precision_loss)]
        let per =
            |d: Duration| d.as_secs_f64() * 1e6 / (f64::from(rounds / 2) * queries.len() as f64);
        println!(
            "client CPU per query (8 clients): repository {:.0} us, hand SQL {:.0} us; ratio {:.2}x",
            per(cpu[0]),
            per(cpu[1]),
            cpu[0].as_secs_f64() / cpu[1].as_secs_f64()
        );
    }
    drop(store);
    pg.cleanup().await.expect("cleanup");
}
