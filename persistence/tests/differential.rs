//! Differential fuzz suite: random datasets and random queries run on the
//! memory reference, SQLite, PostgreSQL, MongoDB and a cached repository
//! (persistence-cache, L1, over SQLite); every backend must return the same
//! ids in the same order as memory, for `find` (filter, multi-key sort,
//! limit/offset), `count` and whole keyset walks through `page()`.
//!
//! The seed is fixed (printed; override with `DIFFERENTIAL_SEED=<u64>`), the
//! number of cases is 240 (more on demand with `PROPTEST_CASES=<n>`); each
//! case inserts one dataset per backend and runs several queries and walks
//! on it, so the slow MongoDB server sees one batch insert per case.
//! Failing cases are shrunk and their seeds saved in
//! `differential.proptest-regressions` (commit it).
//!
//! Run: `cargo nextest run -p persistence --test differential`.

use std::fmt::Write as _;

use chrono::{DateTime, TimeZone, Utc};
use persistence_cache::CacheLayer;
use persistence_core::filter::CompareOp;
use persistence_core::query::{Cursor, Direction, SortKey};
use persistence_core::{DynRepository, Entity, Filter, MemoryRepository, Query, Value};
use persistence_testing::{TestMongo, TestPostgres, TestRedis, TestSqlite};
use proptest::prelude::*;
use proptest::test_runner::{
    Config, FileFailurePersistence, RngAlgorithm, TestCaseError, TestRng, TestRunner,
};
use serde::{Deserialize, Serialize};

/// Nested one level deeper.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Inner {
    k: Option<String>,
}

/// A nested document (a JSON field).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Doc {
    n: Option<i64>,
    f: Option<f64>,
    s: Option<String>,
    inner: Option<Inner>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(name = "diff_rows")]
struct Row {
    #[entity(id)]
    id: i64,
    name: String,
    i: Option<i64>,
    f: Option<f64>,
    s: Option<String>,
    b: Option<bool>,
    t: Option<DateTime<Utc>>,
    tags: Vec<String>,
    nums: Vec<i64>,
    doc: Doc,
}

// ---------------------------------------------------------------- values

const STRINGS: &[&str] = &[
    "", "a", "A", "ab", "abc", "b", "a%", "%", "%a", "_", "a_b", "a_", "\\", "a\\b", "\\%", "'",
    "''", "\"", "it's", "a\"b", "é", "e\u{301}", "zoë", "Zoë", "日本", "日", "😀", "a😀", "a b",
    " ", "ä%_\\'", "*", ".*", "[a]", "$gt", "{}",
];

fn string() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(STRINGS).prop_map(str::to_string),
        1 => "[a%_\\\\'\"é😀 ]{0,4}",
    ]
}

fn int() -> impl Strategy<Value = i64> {
    prop_oneof![
        8 => -3i64..=3,
        1 => Just(i64::MIN),
        1 => Just(i64::MAX),
        1 => Just(1_000_000_007i64),
        1 => Just(-9_007_199_254_740_993i64),
    ]
}

fn float() -> impl Strategy<Value = f64> {
    prop::sample::select(vec![
        -0.0, 0.0, 1.0, -1.0, 1.5, -2.25, 0.1, 0.2, 3.0, 1e300, -1e300, 1e-300, 2.5e-8,
    ])
}

fn time() -> impl Strategy<Value = DateTime<Utc>> {
    // Whole milliseconds: MongoDB keeps milliseconds, the others microseconds.
    (-3i64..=3, 0i64..3).prop_map(|(d, ms)| {
        Utc.with_ymd_and_hms(2024, 2, 29, 12, 0, 0)
            .single()
            .unwrap_or_default()
            + chrono::Duration::days(d)
            + chrono::Duration::milliseconds(ms)
    })
}

fn doc() -> impl Strategy<Value = Doc> {
    (
        prop::option::of(int()),
        prop::option::of(float()),
        prop::option::of(string()),
        prop::option::of(prop::option::of(string()).prop_map(|k| Inner { k })),
    )
        .prop_map(|(n, f, s, inner)| Doc { n, f, s, inner })
}

fn row() -> impl Strategy<Value = Row> {
    (
        string(),
        prop::option::of(int()),
        prop::option::of(float()),
        prop::option::of(string()),
        prop::option::of(any::<bool>()),
        prop::option::of(time()),
        prop::collection::vec(string(), 0..3),
        prop::collection::vec(int(), 0..3),
        doc(),
    )
        .prop_map(|(name, i, f, s, b, t, tags, nums, doc)| Row {
            id: 0,
            name,
            i,
            f,
            s,
            b,
            t,
            tags,
            nums,
            doc,
        })
}

fn dataset() -> impl Strategy<Value = Vec<Row>> {
    prop::collection::vec(row(), 0..30).prop_map(|mut rows| {
        for (n, r) in rows.iter_mut().enumerate() {
            r.id = n as i64 + 1;
        }
        rows
    })
}

// ---------------------------------------------------------------- filters

/// Where a filter can point, and what values it compares with.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Int,
    Float,
    Str,
    Bool,
    Time,
    /// A nested JSON path: any JSON scalar.
    Json,
}

const SCALARS: &[(&str, Kind)] = &[
    ("id", Kind::Int),
    ("name", Kind::Str),
    ("i", Kind::Int),
    ("f", Kind::Float),
    ("s", Kind::Str),
    ("b", Kind::Bool),
    ("t", Kind::Time),
    ("doc.n", Kind::Json),
    ("doc.f", Kind::Json),
    ("doc.s", Kind::Json),
    ("doc.inner.k", Kind::Json),
    ("doc.missing", Kind::Json),
];

const STRINGY: &[&str] = &["name", "s", "doc.s", "doc.inner.k"];
const SORTABLE: &[&str] = &[
    "name",
    "i",
    "f",
    "s",
    "b",
    "t",
    "doc.n",
    "doc.f",
    "doc.s",
    "doc.inner.k",
];

fn value(kind: Kind) -> BoxedStrategy<Value> {
    match kind {
        Kind::Int => int().prop_map(Value::I64).boxed(),
        Kind::Float => {
            prop_oneof![3 => float().prop_map(Value::F64), 1 => (-3i64..=3).prop_map(Value::I64)]
                .boxed()
        }
        Kind::Str => string().prop_map(Value::String).boxed(),
        Kind::Bool => any::<bool>().prop_map(Value::Bool).boxed(),
        Kind::Time => time().prop_map(Value::DateTime).boxed(),
        Kind::Json => prop_oneof![
            3 => int().prop_map(Value::I64),
            2 => float().prop_map(Value::F64),
            3 => string().prop_map(Value::String),
            1 => any::<bool>().prop_map(Value::Bool),
        ]
        .boxed(),
    }
}

fn op() -> impl Strategy<Value = CompareOp> {
    prop::sample::select(vec![
        CompareOp::Eq,
        CompareOp::Ne,
        CompareOp::Lt,
        CompareOp::Lte,
        CompareOp::Gt,
        CompareOp::Gte,
    ])
}

fn leaf() -> BoxedStrategy<Filter> {
    let scalar = prop::sample::select(SCALARS);
    let compare = scalar
        .clone()
        .prop_flat_map(|(f, k)| (Just(f), op(), value(k)))
        .prop_map(|(f, op, v)| Filter::Compare {
            field: f.into(),
            op,
            value: v,
        });
    let list = scalar
        .clone()
        .prop_flat_map(|(f, k)| {
            (
                Just(f),
                prop::collection::vec(value(k), 0..5),
                any::<bool>(),
            )
        })
        .prop_map(|(f, vs, neg)| {
            if neg {
                Filter::field(f).not_in(vs)
            } else {
                Filter::field(f).is_in(vs)
            }
        });
    let nulls = (scalar, any::<bool>()).prop_map(|((f, _), n)| {
        if n {
            Filter::field(f).is_null()
        } else {
            Filter::field(f).is_not_null()
        }
    });
    let text = (prop::sample::select(STRINGY), string(), any::<bool>()).prop_map(|(f, s, p)| {
        if p {
            Filter::field(f).starts_with(&s)
        } else {
            Filter::field(f).contains(&s)
        }
    });
    let has = prop_oneof![
        string().prop_map(|s| Filter::field("tags").has(s)),
        int().prop_map(|i| Filter::field("nums").has(i)),
    ];
    let array_eq = (prop::collection::vec(int(), 0..3), any::<bool>()).prop_map(|(v, eq)| {
        let v = Value::Array(v.into_iter().map(Value::I64).collect());
        if eq {
            Filter::field("nums").eq(v)
        } else {
            Filter::field("nums").ne(v)
        }
    });
    prop_oneof![
        6 => compare,
        2 => list,
        2 => nulls,
        2 => text,
        2 => has,
        1 => array_eq,
        1 => Just(Filter::all()),
        1 => Just(Filter::none()),
    ]
    .boxed()
}

fn filter() -> impl Strategy<Value = Filter> {
    let tree = leaf().prop_recursive(5, 48, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Filter::And),
            prop::collection::vec(inner.clone(), 0..4).prop_map(Filter::Or),
            inner.prop_map(Filter::not),
        ]
    });
    // Sometimes a long `not` chain, up to the depth limit.
    (tree, prop_oneof![4 => Just(0usize), 1 => 1usize..=26]).prop_map(|(mut f, nots)| {
        for _ in 0..nots {
            f = f.not();
        }
        f
    })
}

fn sort() -> impl Strategy<Value = Vec<SortKey>> {
    prop::collection::vec(
        (prop::sample::select(SORTABLE), any::<bool>()).prop_map(|(f, desc)| SortKey {
            field: f.into(),
            direction: if desc {
                Direction::Desc
            } else {
                Direction::Asc
            },
        }),
        0..4,
    )
}

fn query() -> impl Strategy<Value = Query> {
    (
        filter(),
        sort(),
        prop::option::of(0u64..15),
        prop_oneof![3 => Just(0u64), 1 => 0u64..8],
    )
        .prop_map(|(filter, sort, limit, offset)| Query {
            filter,
            sort,
            limit,
            offset,
        })
}

/// A keyset walk: filter and sort, page size.
fn walk() -> impl Strategy<Value = (Query, u64)> {
    (filter(), sort(), 1u64..7).prop_map(|(filter, sort, size)| {
        (
            Query {
                filter,
                sort,
                limit: Some(size),
                offset: 0,
            },
            size,
        )
    })
}

#[derive(Debug, Clone)]
struct Case {
    rows: Vec<Row>,
    queries: Vec<Query>,
    walks: Vec<(Query, u64)>,
}

fn case() -> impl Strategy<Value = Case> {
    (
        dataset(),
        prop::collection::vec(query(), 6..10),
        prop::collection::vec(walk(), 1..3),
    )
        .prop_map(|(rows, queries, walks)| Case {
            rows,
            queries,
            walks,
        })
}

// ---------------------------------------------------------------- running

type Repo = Box<dyn DynRepository<Row>>;

async fn find_ids(repo: &Repo, q: &Query) -> Result<Vec<i64>, String> {
    repo.find(q)
        .await
        .map(|rows| rows.iter().map(|r| r.id).collect())
        .map_err(|e| format!("find: {e}"))
}

async fn walk_ids(repo: &Repo, q: &Query) -> Result<Vec<Vec<i64>>, String> {
    let mut pages = Vec::new();
    let mut cursor: Option<Cursor> = None;
    loop {
        let page = repo
            .page(q, cursor.as_ref())
            .await
            .map_err(|e| format!("page {}: {e}", pages.len()))?;
        pages.push(page.items.iter().map(|r| r.id).collect());
        match page.next {
            Some(c) if pages.len() < 40 => cursor = Some(c),
            Some(_) => return Err("more than 40 pages".into()),
            None => return Ok(pages),
        }
    }
}

/// What the reference answered, over all cases (to see the suite is not vacuous).
#[derive(Debug, Default, Clone, Copy)]
struct Stats {
    cases: usize,
    queries: usize,
    non_empty: usize,
    invalid: usize,
    walks: usize,
    pages: usize,
}

/// Run one case on every backend; the first difference to memory fails it.
async fn run_case(backends: &[(&str, Repo)], case: &Case, stats: &mut Stats) -> Result<(), String> {
    stats.cases += 1;
    for (name, repo) in backends {
        repo.delete_many(&Filter::all())
            .await
            .map_err(|e| format!("{name}: delete_many: {e}"))?;
        repo.insert_many(&case.rows)
            .await
            .map_err(|e| format!("{name}: insert_many: {e}"))?;
    }
    let (reference, others) = backends.split_first().ok_or("no backends")?;
    for q in &case.queries {
        let want = find_ids(&reference.1, q).await;
        stats.queries += 1;
        match &want {
            Ok(ids) if !ids.is_empty() => stats.non_empty += 1,
            Err(_) => stats.invalid += 1,
            Ok(_) => {}
        }
        let want_count = reference
            .1
            .count(&q.filter)
            .await
            .map_err(|e| e.to_string());
        for (name, repo) in others {
            let got = find_ids(repo, q).await;
            if got != want {
                return Err(diff(name, "find", q, &want, &got));
            }
            let count = repo.count(&q.filter).await.map_err(|e| e.to_string());
            if count != want_count {
                return Err(diff(name, "count", q, &want_count, &count));
            }
        }
    }
    for (q, _) in &case.walks {
        let want = walk_ids(&reference.1, q).await;
        stats.walks += 1;
        stats.pages += want.as_ref().map_or(0, Vec::len);
        for (name, repo) in others {
            let got = walk_ids(repo, q).await;
            if got != want {
                return Err(diff(name, "page walk", q, &want, &got));
            }
        }
    }
    Ok(())
}

fn diff<T: std::fmt::Debug>(backend: &str, what: &str, q: &Query, want: &T, got: &T) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        "{backend} differs from memory on {what}\n  query: {q:?}\n  memory: {want:?}\n  {backend}: {got:?}"
    );
    s
}

const DEFAULT_SEED: u64 = 0x5eed_d1ff_2026_0013;
const DEFAULT_CASES: u32 = 240;

#[test]
fn backends_agree_with_memory() {
    let seed = std::env::var("DIFFERENTIAL_SEED")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(DEFAULT_SEED);
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse::<u32>().ok())
        .unwrap_or(DEFAULT_CASES);
    println!("differential: seed {seed} (DIFFERENTIAL_SEED), {cases} cases (PROPTEST_CASES)");

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    // Resources first, so stores are dropped before them.
    let Some(pg) = rt.block_on(TestPostgres::schema()) else {
        return;
    };
    let Some(mongo) = rt.block_on(TestMongo::database()) else {
        return;
    };
    let sqlite = TestSqlite::new();
    let cached_sqlite = TestSqlite::new();
    let backends: Vec<(&str, Repo)> = rt.block_on(async {
        let pg_store = pg.store().await.expect("PostgreSQL store");
        let mongo_store = mongo.store().await.expect("MongoDB store");
        let sqlite_store = sqlite.store().await.expect("SQLite store");
        let cached_store = cached_sqlite.store().await.expect("SQLite store (cached)");
        let layer = CacheLayer::builder()
            .prefix(TestRedis::unique_prefix("diff"))
            .build()
            .expect("cache layer");
        let backends: Vec<(&str, Repo)> = vec![
            ("memory", Box::new(MemoryRepository::<Row>::new())),
            ("sqlite", Box::new(sqlite_store.repository::<Row>())),
            ("postgres", Box::new(pg_store.repository::<Row>())),
            ("mongodb", Box::new(mongo_store.repository::<Row>())),
            (
                "cached sqlite",
                Box::new(layer.wrap(cached_store.repository::<Row>())),
            ),
        ];
        for (name, repo) in &backends {
            repo.ensure_schema()
                .await
                .unwrap_or_else(|e| panic!("{name}: ensure_schema: {e}"));
        }
        backends
    });

    let config = Config {
        cases,
        source_file: Some(file!()),
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource(
            "proptest-regressions",
        ))),
        max_shrink_iters: 256,
        ..Config::default()
    };
    let mut seed_bytes = [0u8; 32];
    seed_bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let mut runner = TestRunner::new_with_rng(
        config,
        TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes),
    );
    let stats = std::sync::Mutex::new(Stats::default());
    let result = runner.run(&case(), |c| {
        let mut s = stats.lock().map(|s| *s).unwrap_or_default();
        let r = rt.block_on(run_case(&backends, &c, &mut s));
        if let Ok(mut g) = stats.lock() {
            *g = s;
        }
        r.map_err(TestCaseError::fail)
    });
    println!(
        "differential: ran {:?} (counts include shrinking)",
        stats.lock().map(|s| *s).unwrap_or_default()
    );
    drop(backends);
    if let Err(e) = result {
        panic!("differential suite failed (seed {seed}): {e}");
    }
}
