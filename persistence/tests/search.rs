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
