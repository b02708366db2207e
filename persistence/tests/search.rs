//! One search across stores (issue 17, item 4): `Persistence::search` asks
//! PostgreSQL, MongoDB and pgvector sources concurrently; a stalled source
//! times out, a stopped one fails (then is skipped once its breaker opens),
//! and the call still returns the healthy sources' hits by its deadline.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use persistence::config::ConfigLoader;
use persistence::search::{SearchRequest, SearchResults, Searchable, SkipReason, SourceStatus};
use persistence::{Entity, ErrorKind, Persistence, Repository};
use persistence_testing::proxy::{Mode, Proxy};
use persistence_testing::{TestMongo, TestPostgres};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(name = "sr_books")]
struct Book {
    #[entity(id)]
    id: i64,
    title: String,
    summary: String,
    #[entity(vector(dim = 3, metric = cosine))]
    embedding: Vec<f32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(name = "sr_reviews")]
struct Review {
    #[entity(id)]
    id: i64,
    book: i64,
    body: String,
}

fn books() -> Vec<Book> {
    [
        (
            1,
            "Machine Learning in Rust",
            "learning machines, learning fast",
            [1.0, 0.0, 0.0],
        ),
        (
            2,
            "Gardening",
            "soil, seeds and machine-free learning",
            [0.0, 1.0, 0.0],
        ),
        (
            3,
            "Deep Learning",
            "machine learning with deep networks",
            [0.9, 0.1, 0.0],
        ),
        (4, "Cooking", "recipes", [0.0, 0.0, 1.0]),
    ]
    .into_iter()
    .map(|(id, t, s, v)| Book {
        id,
        title: t.into(),
        summary: s.into(),
        embedding: v.to_vec(),
    })
    .collect()
}

fn reviews() -> Vec<Review> {
    [
        (1, 1, "Great intro to MACHINE learning"),
        (2, 3, "Too much math, little machine learning practice"),
        (3, 4, "Tasty"),
    ]
    .into_iter()
    .map(|(id, book, body)| Review {
        id,
        book,
        body: body.into(),
    })
    .collect()
}

/// The ids a source returned, in rank order.
fn ids(res: &SearchResults, source: &str) -> Vec<i64> {
    res.source(source)
        .unwrap()
        .hits
        .iter()
        .map(|h| h.id.as_i64().unwrap())
        .collect()
}

/// `host:port` of a URL.
fn addr(url: &str) -> SocketAddr {
    let rest = url.split("://").nth(1).expect("scheme");
    let rest = rest.rsplit('@').next().expect("host");
    let hostport = rest.split(['/', '?']).next().expect("host:port");
    hostport.parse().expect("a loopback ip:port")
}

/// `url` with its host and port replaced by the proxy's.
fn via(url: &str, proxy: &Proxy) -> String {
    let a = addr(url).to_string();
    url.replacen(&a, &format!("127.0.0.1:{}", proxy.port()), 1)
}

#[tokio::test]
async fn a_search_returns_by_its_deadline_with_each_sources_status() {
    let (Some(pg), Some(vec), Some(mongo)) = (
        TestPostgres::schema().await,
        TestPostgres::vector_schema().await,
        TestMongo::database().await,
    ) else {
        return;
    };
    let slow_proxy = Proxy::start(addr(vec.url())).await.expect("proxy");
    let down_proxy = Proxy::start(addr(pg.url())).await.expect("proxy");
    // The stopped database's pool gives up on connecting after 200 ms
    // (`Unavailable`), well within the deadline.
    let db = |name: &str, url: &str, schema: &str| {
        let acquire = if name == "down" { "200ms" } else { "1s" };
        format!(
            "  {name}: {{ kind: postgres, url: \"{url}\", schema: {schema}, \
             pool: {{ max_connections: 4, acquire_timeout: {acquire} }}, \
             retry: {{ max_attempts: 1, base_delay: 10ms, max_delay: 10ms }}, \
             breaker: {{ failure_threshold: 2, open_for: 60s }} }}\n"
        )
    };
    let yaml = format!(
        "databases:\n{}{}{}{}  catalog: {{ kind: mongo, url: \"{}\", database: {} }}\n",
        db("main", pg.url(), pg.schema_name().unwrap()),
        db("vectors", vec.url(), vec.schema_name().unwrap()),
        db(
            "slow",
            &via(vec.url(), &slow_proxy),
            vec.schema_name().unwrap()
        ),
        db(
            "down",
            &via(pg.url(), &down_proxy),
            pg.schema_name().unwrap()
        ),
        mongo.url(),
        mongo.name(),
    );
    let config = ConfigLoader::new()
        .text("search.yaml", &yaml)
        .env(Vec::new())
        .load()
        .expect("config");
    {
        let p = Persistence::new(config).expect("manager");
        for name in ["main", "vectors"] {
            let r = p.repo_in::<Book>(name).await.expect("repo");
            r.insert_many(&books()).await.expect("books");
        }
        let r = p.repo_in::<Review>("catalog").await.expect("repo");
        r.insert_many(&reviews()).await.expect("reviews");

        p.register_search(
            Searchable::<Book>::new("main")
                .name("books")
                .text(&["title", "summary"]),
        )
        .await
        .expect("books");
        p.register_search(
            Searchable::<Review>::new("catalog")
                .name("reviews")
                .text(&["body"]),
        )
        .await
        .expect("reviews");
        p.register_search(
            Searchable::<Book>::new("vectors")
                .name("similar")
                .vector(Book::EMBEDDING),
        )
        .await
        .expect("similar");
        p.register_search(
            Searchable::<Book>::new("slow")
                .name("slow")
                .vector(Book::EMBEDDING),
        )
        .await
        .expect("slow");
        p.register_search(
            Searchable::<Book>::new("down")
                .name("down")
                .text(&["title"]),
        )
        .await
        .expect("down");
        assert_eq!(
            p.register_search(
                Searchable::<Book>::new("main")
                    .name("books")
                    .text(&["title"])
            )
            .await
            .expect_err("same name")
            .kind(),
            &ErrorKind::InvalidInput
        );
        assert_eq!(
            p.register_search(Searchable::<Book>::new("main").name("x").text(&["nope"]))
                .await
                .expect_err("unknown field")
                .kind(),
            &ErrorKind::InvalidInput
        );

        // All healthy: every source answers, ranked by its own rule.
        let res = p
            .search(&SearchRequest::text("machine LEARNING").vector(vec![1.0, 0.05, 0.0]))
            .await
            .expect("search");
        assert!(res.complete(), "{res:#?}");
        // Word occurrences: book 1 has machine×2 + learning×3, book 3
        // machine×1 + learning×2, book 2 machine×1 + learning×1.
        assert_eq!(ids(&res, "books"), [1, 3, 2]);
        assert_eq!(ids(&res, "reviews"), [1, 2]);
        assert_eq!(&ids(&res, "similar")[..2], [1, 3]);
        assert_eq!(res.source("down").unwrap().mode, Some("text"));
        let typed: Vec<(Book, f64)> = res.hits("similar").expect("typed");
        assert_eq!(typed[0].0, books()[0]);
        assert!(typed[0].1 < typed[1].1, "distances ascend");
        // Book 1 is first in books, similar, slow and down: it leads the
        // fused list; reviews are other rows (another entity).
        assert_eq!(res.merged[0].id.as_i64(), Some(1));
        assert_eq!(res.merged[0].source, "books");
        assert!(res.merged.iter().any(|h| h.source == "reviews"));

        // One source stalls (the network black-holes it), one is stopped.
        slow_proxy.set(Mode::Stall);
        drop(down_proxy);
        let deadline = Duration::from_millis(700);
        // A new text and vector: not in any cache.
        let req = SearchRequest::text("deep")
            .vector(vec![0.0, 0.1, 1.0])
            .deadline(deadline);
        let t0 = Instant::now();
        let res = p.search(&req).await.expect("partial results are no error");
        let took = t0.elapsed();
        assert!(!res.complete());
        let status = |s: &str| res.source(s).unwrap().status.clone();
        assert_eq!(status("books"), SourceStatus::Ok);
        assert_eq!(ids(&res, "books"), [3]);
        assert_eq!(status("reviews"), SourceStatus::Ok);
        assert!(ids(&res, "reviews").is_empty());
        assert_eq!(status("similar"), SourceStatus::Ok);
        assert_eq!(ids(&res, "similar")[0], 4);
        assert_eq!(status("slow"), SourceStatus::TimedOut);
        assert_eq!(
            status("down"),
            SourceStatus::Failed(ErrorKind::Unavailable),
            "{res:#?}"
        );
        assert!(res.source("down").unwrap().error.is_some());
        // The stalled source never answers: the call ended on its deadline,
        // not on the stall (a bound on liveness, not a performance figure).
        assert!(took < deadline * 10, "took {took:?}");

        // The stopped database's breaker opens after its failures: then it
        // is skipped without being asked.
        let _ = p
            .search(&SearchRequest::text("again").only(&["down"]))
            .await
            .expect("search");
        let res = p
            .search(&SearchRequest::text("more").only(&["down", "books"]))
            .await
            .expect("search");
        assert_eq!(res.sources.len(), 2);
        assert_eq!(
            res.source("down").unwrap().status,
            SourceStatus::Skipped(SkipReason::BreakerOpen)
        );
        // A text-only request skips the vector sources as not applicable.
        let res = p
            .search(&SearchRequest::text("deep").only(&["similar"]))
            .await
            .expect("search");
        assert_eq!(
            res.source("similar").unwrap().status,
            SourceStatus::Skipped(SkipReason::NotApplicable)
        );
        // Bad requests are errors of the call.
        for bad in [
            SearchRequest::default(),
            SearchRequest::text("x").only(&["nope"]),
            SearchRequest::text("x").limit("books", 0),
        ] {
            assert_eq!(
                p.search(&bad).await.expect_err("bad").kind(),
                &ErrorKind::InvalidInput
            );
        }
        let json = serde_json::to_value(&res).expect("json");
        assert_eq!(json["sources"][0]["status"]["status"], "skipped", "{json}");

        slow_proxy.set(Mode::Pass);
        p.shutdown().await;
    }
    pg.cleanup().await.expect("cleanup");
    vec.cleanup().await.expect("cleanup");
    mongo.cleanup().await.expect("cleanup");
}

/// A repeated search within the cache's TTL is answered from the cache: a
/// row written behind the cache's back (raw driver) is not seen until the
/// entry expires.
#[tokio::test]
async fn a_repeated_search_is_served_from_the_cache() {
    let Some(mongo) = TestMongo::database().await else {
        return;
    };
    let yaml = format!(
        "databases:\n  catalog: {{ kind: mongo, url: \"{}\", database: {} }}\n\
         cache:\n  default: {{ ttl: 60s }}\n",
        mongo.url(),
        mongo.name(),
    );
    let config = ConfigLoader::new()
        .text("search.yaml", &yaml)
        .env(Vec::new())
        .load()
        .expect("config");
    {
        let p = Persistence::new(config).expect("manager");
        let r = p.repo_in::<Review>("catalog").await.expect("repo");
        r.insert_many(&reviews()).await.expect("reviews");
        p.register_search(Searchable::<Review>::new("catalog").text(&["body"]))
            .await
            .expect("register");
        let req = SearchRequest::text("machine");
        let first = p.search(&req).await.expect("search");
        assert_eq!(first.source("catalog.sr_reviews").unwrap().hits.len(), 2);
        // Behind the cache's back.
        let store = p.mongo("catalog").await.unwrap().unwrap();
        store
            .database()
            .collection::<persistence::mongo::mongodb::bson::Document>("sr_reviews")
            .insert_one(persistence::mongo::mongodb::bson::doc! { "_id": 9_i64, "book": 1_i64, "body": "machine" })
            .await
            .expect("raw insert");
        let again = p.search(&req).await.expect("search");
        assert_eq!(
            again.source("catalog.sr_reviews").unwrap().hits,
            first.source("catalog.sr_reviews").unwrap().hits
        );
        // A write through the library invalidates the cached queries.
        r.insert(&Review {
            id: 10,
            book: 2,
            body: "machine".into(),
        })
        .await
        .expect("insert");
        let fresh = p.search(&req).await.expect("search");
        assert_eq!(fresh.source("catalog.sr_reviews").unwrap().hits.len(), 4);
        p.shutdown().await;
    }
    mongo.cleanup().await.expect("cleanup");
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(name = "sr_articles")]
struct Article {
    #[entity(id)]
    id: i64,
    #[entity(text_search)]
    title: String,
    #[entity(text_search)]
    body: String,
}

/// Full-text sources answer with the entity's text search (stemmed,
/// ranked by the backend): memory and SQLite agree on what matches.
#[tokio::test]
async fn full_text_sources_use_the_entitys_text_search() {
    let yaml =
        "databases:\n  mem: { kind: memory }\n  lite: { kind: sqlite, url: \"sqlite::memory:\" }\n";
    let config = ConfigLoader::new()
        .text("search.yaml", yaml)
        .env(Vec::new())
        .load()
        .expect("config");
    let p = Persistence::new(config).expect("manager");
    let articles = [
        (
            1,
            "Running shoes",
            "How to choose shoes for running on roads",
        ),
        (2, "Trail runner review", "A shoe that runs well on trails"),
        (3, "Cooking pasta", "Boil water, add salt"),
    ]
    .map(|(id, t, b)| Article {
        id,
        title: t.into(),
        body: b.into(),
    });
    for db in ["mem", "lite"] {
        let r = p.repo_in::<Article>(db).await.expect("repo");
        r.insert_many(&articles).await.expect("insert");
        p.register_search(Searchable::<Article>::new(db).full_text())
            .await
            .expect("register");
    }
    assert_eq!(
        p.register_search(Searchable::<Book>::new("mem").name("no text").full_text())
            .await
            .expect_err("Book declares no text_search field")
            .kind(),
        &ErrorKind::InvalidInput
    );
    let res = p
        .search(&SearchRequest::text("run shoes"))
        .await
        .expect("search");
    assert!(res.complete(), "{res:#?}");
    for s in ["mem.sr_articles", "lite.sr_articles"] {
        // Stemmed: "running" and "runs" match "run", "shoe" matches "shoes".
        let mut got = ids(&res, s);
        got.sort_unstable();
        assert_eq!(got, [1, 2], "{s}: {res:#?}");
        assert_eq!(ids(&res, s)[0], 1, "{s}: both words twice ranks first");
        assert!(res.source(s).unwrap().hits[0].score > 0.0);
    }
    // Websearch syntax: "-trail" excludes.
    let res = p
        .search(&SearchRequest::text("shoes -trail"))
        .await
        .expect("search");
    assert_eq!(ids(&res, "mem.sr_articles"), [1]);
    assert_eq!(ids(&res, "lite.sr_articles"), [1]);
    p.shutdown().await;
}

/// A text-search entity for the benchmark (PostgreSQL `tsvector` + GIN).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(name = "sr_bench_docs")]
struct BenchDoc {
    #[entity(id)]
    id: i64,
    #[entity(text_search)]
    title: String,
    #[entity(text_search)]
    body: String,
}

/// A vector entity for the benchmark (pgvector, HNSW).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(name = "sr_bench_vecs")]
struct BenchVec {
    #[entity(id)]
    id: i64,
    title: String,
    #[entity(vector(dim = 64, metric = cosine))]
    embedding: Vec<f32>,
}

const BENCH_WORDS: [&str; 24] = [
    "machine", "learning", "garden", "river", "stone", "cloud", "rust", "ocean", "forest",
    "engine", "paper", "market", "signal", "winter", "castle", "letter", "bridge", "planet",
    "silver", "harbor", "meadow", "lantern", "canyon", "violin",
];

/// xorshift64: reproducible data without a dependency.
struct Xs(u64);

impl Xs {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn word(&mut self) -> &'static str {
        BENCH_WORDS[usize::try_from(self.next() % 24).expect("index")]
    }
    fn words(&mut self, n: usize) -> String {
        (0..n).map(|_| self.word()).collect::<Vec<_>>().join(" ")
    }
    fn vector(&mut self, dim: usize) -> Vec<f32> {
        #[allow(clippy::cast_precision_loss)]
        (0..dim)
            .map(|_| (self.next() >> 40) as f32 / (1u64 << 24) as f32 - 0.5)
            .collect()
    }
}

/// The `p`-th percentile (0..=100) of `v` in milliseconds (sorted in place).
fn pct(v: &mut [Duration], p: usize) -> f64 {
    v.sort_unstable();
    if v.is_empty() {
        return 0.0;
    }
    let i = ((v.len() - 1) * p).div_ceil(100);
    v[i].as_secs_f64() * 1e3
}

/// On-demand benchmark (issue #17): one `Persistence::search` over three
/// sources (PostgreSQL full text, MongoDB text, pgvector nearest) against
/// each source's leg run alone, sequentially, through the same
/// repositories, interleaved in one run; and against the three legs joined
/// by hand (`tokio::join!`, the ideal concurrent call). Prints p50/p99 and
/// the ratios search / slowest leg (goal ≤ 1.1×: the legs really run
/// concurrently), search / sum of the legs and search / hand join. Run with
/// `cargo nextest run -p persistence --all-features --test search --run-ignored only --no-capture`
/// (`BENCH_ROWS`, `BENCH_MONGO_ROWS`, `BENCH_QUERIES` override 3,000 rows
/// per PostgreSQL source, 100 reviews on MongoDB, 300 queries).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "benchmark: prints search / slowest-leg ratios"]
async fn bench_search_vs_legs() {
    use persistence::{Filter, NearestQuery, Query, TextQuery};
    let (Some(pg), Some(vec), Some(mongo)) = (
        TestPostgres::schema().await,
        TestPostgres::vector_schema().await,
        TestMongo::database().await,
    ) else {
        return;
    };
    let rows = persistence_testing::bench::env("BENCH_ROWS", 3_000);
    // The test Mongo scans with a regex (no text index): about 50 us a
    // document, so fewer reviews keep the three legs of similar length,
    // where running them concurrently matters most.
    let mongo_rows = persistence_testing::bench::env("BENCH_MONGO_ROWS", 100);
    let iters = persistence_testing::bench::env("BENCH_QUERIES", 300);
    let db = |name: &str, url: &str, schema: &str| {
        format!(
            "  {name}: {{ kind: postgres, url: \"{url}\", schema: {schema}, \
             pool: {{ max_connections: 4 }} }}\n"
        )
    };
    // No cache: every leg, alone or in the search, asks its server.
    let yaml = format!(
        "databases:\n{}{}  catalog: {{ kind: mongo, url: \"{}\", database: {} }}\n\
         cache:\n  default: {{ disabled: true }}\n",
        db("main", pg.url(), pg.schema_name().unwrap()),
        db("vectors", vec.url(), vec.schema_name().unwrap()),
        mongo.url(),
        mongo.name(),
    );
    let config = ConfigLoader::new()
        .text("search.yaml", &yaml)
        .env(Vec::new())
        .load()
        .expect("config");
    {
        let p = Persistence::new(config).expect("manager");
        let mut rng = Xs(0x5EA2_C417);
        let n = i64::try_from(rows).expect("rows");
        let docs = p.repo_in::<BenchDoc>("main").await.expect("docs");
        let reviews = p.repo_in::<Review>("catalog").await.expect("reviews");
        let vecs = p.repo_in::<BenchVec>("vectors").await.expect("vecs");
        let d: Vec<BenchDoc> = (0..n)
            .map(|id| BenchDoc {
                id,
                title: rng.words(3),
                body: rng.words(30),
            })
            .collect();
        let r: Vec<Review> = (0..i64::try_from(mongo_rows).expect("rows"))
            .map(|id| Review {
                id,
                book: id % 97,
                body: rng.words(20),
            })
            .collect();
        let v: Vec<BenchVec> = (0..n)
            .map(|id| BenchVec {
                id,
                title: rng.words(3),
                embedding: rng.vector(64),
            })
            .collect();
        for chunk in d.chunks(500) {
            docs.insert_many(chunk).await.expect("docs");
        }
        for chunk in r.chunks(500) {
            reviews.insert_many(chunk).await.expect("reviews");
        }
        for chunk in v.chunks(500) {
            vecs.insert_many(chunk).await.expect("vecs");
        }
        p.register_search(Searchable::<BenchDoc>::new("main").name("docs").full_text())
            .await
            .expect("docs");
        p.register_search(
            Searchable::<Review>::new("catalog")
                .name("reviews")
                .text(&["body"]),
        )
        .await
        .expect("reviews");
        p.register_search(
            Searchable::<BenchVec>::new("vectors")
                .name("similar")
                .vector(BenchVec::EMBEDDING),
        )
        .await
        .expect("similar");

        // The legs as the search asks them, straight on the repositories.
        let text_leg = |t: &str| {
            let docs = docs.clone();
            let q = TextQuery::new(t).limit(10);
            async move { docs.find_text(&q).await.expect("docs").len() }
        };
        let mongo_leg = |t: &str| {
            let reviews = reviews.clone();
            // As the search builds it: every word, the first 5 × 10 rows.
            let mut filter: Option<Filter> = None;
            for w in t.split_whitespace() {
                let c = Filter::field("body").contains_ignore_case(&w.to_lowercase());
                filter = Some(match filter {
                    None => c,
                    Some(f) => f.and(c),
                });
            }
            let q = Query::filter(filter.unwrap_or_else(Filter::all)).limit(50);
            async move { reviews.find(&q).await.expect("reviews").len() }
        };
        let vector_leg = |x: &[f32]| {
            let vecs = vecs.clone();
            let q = NearestQuery::new("embedding", x.to_vec(), 10);
            async move { vecs.find_nearest(&q).await.expect("similar").len() }
        };

        // Warm every path (connections, prepared statements).
        let warm = SearchRequest::text("river stone").vector(rng.vector(64));
        for _ in 0..20 {
            p.search(&warm).await.expect("warm");
        }
        let (mut search, mut slowest, mut sum, mut joined) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut legs = [Vec::new(), Vec::new(), Vec::new()];
        let mut per_iter = Vec::new();
        for i in 0..iters {
            // A new text and vector each time.
            let text = rng.words(2);
            let x = rng.vector(64);
            let req = SearchRequest::text(text.clone())
                .vector(x.clone())
                .deadline(Duration::from_secs(10));
            // Rotate the order of the three measurements.
            let mut s_took = Duration::ZERO;
            let mut l_took = [Duration::ZERO; 3];
            for step in 0..3 {
                match (step + i) % 3 {
                    0 => {
                        let t = Instant::now();
                        let res = p.search(&req).await.expect("search");
                        s_took = t.elapsed();
                        assert!(res.complete(), "{res:#?}");
                    }
                    1 => {
                        let t = Instant::now();
                        text_leg(&text).await;
                        l_took[0] = t.elapsed();
                        let t = Instant::now();
                        mongo_leg(&text).await;
                        l_took[1] = t.elapsed();
                        let t = Instant::now();
                        vector_leg(&x).await;
                        l_took[2] = t.elapsed();
                    }
                    _ => {
                        let t = Instant::now();
                        let _ = tokio::join!(text_leg(&text), mongo_leg(&text), vector_leg(&x));
                        joined.push(t.elapsed());
                    }
                }
            }
            let max = l_took.iter().copied().max().unwrap_or_default();
            search.push(s_took);
            slowest.push(max);
            sum.push(l_took.iter().sum());
            per_iter.push(s_took.as_secs_f64() / max.as_secs_f64());
            for (k, d) in l_took.into_iter().enumerate() {
                legs[k].push(d);
            }
        }
        per_iter.sort_by(f64::total_cmp);
        let row = |name: &str, v: &mut Vec<Duration>| {
            let (p50, p99) = (pct(v, 50), pct(v, 99));
            println!("  {name:<26} p50 {p50:7.3} ms  p99 {p99:7.3} ms");
            (p50, p99)
        };
        println!(
            "search over 3 sources ({rows} rows on PostgreSQL and pgvector, {mongo_rows} on \
             MongoDB), {iters} queries:"
        );
        for (k, name) in [
            "leg: postgres full text",
            "leg: mongo text",
            "leg: pgvector nearest",
        ]
        .into_iter()
        .enumerate()
        {
            row(name, &mut legs[k]);
        }
        let s = row("search (3 sources)", &mut search);
        let m = row("slowest leg (per query)", &mut slowest);
        let t = row("sum of legs", &mut sum);
        let j = row("legs joined by hand", &mut joined);
        println!(
            "search / slowest leg: p50 {:.2}x, p99 {:.2}x, median per query {:.2}x (goal <= 1.1x)",
            s.0 / m.0,
            s.1 / m.1,
            per_iter[per_iter.len() / 2]
        );
        println!(
            "search / sum of legs: p50 {:.2}x, p99 {:.2}x; hand join / slowest leg: p50 {:.2}x; \
             search / hand join: p50 {:.2}x",
            s.0 / t.0,
            s.1 / t.1,
            j.0 / m.0,
            s.0 / j.0
        );
        p.shutdown().await;
    }
    pg.cleanup().await.expect("cleanup");
    vec.cleanup().await.expect("cleanup");
    mongo.cleanup().await.expect("cleanup");
}
