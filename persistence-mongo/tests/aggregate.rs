//! Typed aggregation: $match from a core filter, group-by helpers, $lookup.
mod common;

use bson::doc;
use common::with_store;
use persistence_core::{Entity, Repository};
use persistence_mongo::{Agg, Pipeline};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(name = "authors")]
struct Author {
    #[entity(id)]
    id: i64,
    name: String,
    country: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(name = "books")]
struct Book {
    #[entity(id)]
    id: i64,
    #[entity(index)]
    author_id: i64,
    title: String,
    pages: i64,
}

#[derive(Debug, Deserialize, PartialEq)]
struct ByCountry {
    #[serde(rename = "_id")]
    country: String,
    n: i32,
}

#[derive(Debug, Deserialize)]
struct PagesPerAuthor {
    #[serde(rename = "_id")]
    author_id: i64,
    books: i32,
    total: i64,
    avg: f64,
    longest: i64,
}

#[derive(Debug, Deserialize)]
struct AuthorWithBooks {
    #[serde(rename = "_id")]
    id: i64,
    name: String,
    books: Vec<BookOut>,
}

#[derive(Debug, Deserialize)]
struct BookOut {
    title: String,
}

#[tokio::test]
async fn match_group_and_lookup() {
    with_store(|store| async move {
        let authors = store.repository::<Author>();
        let books = store.repository::<Book>();
        authors.ensure_schema().await.expect("schema");
        books.ensure_schema().await.expect("schema");
        for (id, name, country) in [
            (1, "Ann", "NO"),
            (2, "Bo", "SE"),
            (3, "Cy", "NO"),
            (4, "$gt", "DK"),
        ] {
            authors
                .insert(&Author {
                    id,
                    name: name.into(),
                    country: country.into(),
                })
                .await
                .expect("author");
        }
        let rows = [(10, 1, "A1", 100), (11, 1, "A2", 300), (12, 2, "B1", 50)];
        for (id, author_id, title, pages) in rows {
            books
                .insert(&Book {
                    id,
                    author_id,
                    title: title.into(),
                    pages,
                })
                .await
                .expect("book");
        }

        let by_country: Vec<ByCountry> = authors
            .aggregate_pipeline(
                Pipeline::new()
                    .filter(&Author::COUNTRY.ne("DK"))
                    .expect("filter")
                    .group_by(Some("country"), &[("n", Agg::Count)])
                    .expect("group"),
            )
            .await
            .expect("aggregate");
        assert_eq!(
            by_country,
            vec![
                ByCountry {
                    country: "NO".into(),
                    n: 2
                },
                ByCountry {
                    country: "SE".into(),
                    n: 1
                }
            ]
        );

        let pages: Vec<PagesPerAuthor> = books
            .aggregate_pipeline(
                Pipeline::new()
                    .group_by(
                        Some("author_id"),
                        &[
                            ("books", Agg::Count),
                            ("total", Agg::Sum("pages".into())),
                            ("avg", Agg::Avg("pages".into())),
                            ("longest", Agg::Max("pages".into())),
                        ],
                    )
                    .expect("group"),
            )
            .await
            .expect("aggregate");
        assert_eq!(pages.len(), 2);
        assert_eq!(
            (pages[0].author_id, pages[0].books, pages[0].total),
            (1, 2, 400)
        );
        assert!((pages[0].avg - 200.0).abs() < 1e-9);
        assert_eq!(pages[0].longest, 300);

        // A value shaped like an operator in the $match is literal.
        let literal: Vec<AuthorWithBooks> = authors
            .aggregate_pipeline(
                Pipeline::new()
                    .filter(&Author::NAME.eq("$gt"))
                    .expect("filter")
                    .lookup::<Book>("id", "author_id", "books")
                    .expect("lookup"),
            )
            .await
            .expect("aggregate");
        assert_eq!(literal.len(), 1);
        assert!(literal[0].books.is_empty());

        let joined: Vec<AuthorWithBooks> = authors
            .aggregate_pipeline(
                Pipeline::new()
                    .filter(&Author::COUNTRY.eq("NO"))
                    .expect("filter")
                    .lookup::<Book>("id", "author_id", "books")
                    .expect("lookup")
                    .sort(&[Author::ID.asc()])
                    .expect("sort")
                    .stage(doc! { "$project": { "name": 1, "books.title": 1 } }),
            )
            .await
            .expect("aggregate");
        assert_eq!(joined.len(), 2);
        assert_eq!((joined[0].id, joined[0].name.as_str()), (1, "Ann"));
        let mut titles: Vec<&str> = joined[0].books.iter().map(|b| b.title.as_str()).collect();
        titles.sort_unstable();
        assert_eq!(titles, ["A1", "A2"]);
        assert!(joined[1].books.is_empty());

        // Unknown fields and operator-like output names are rejected before the server.
        assert!(Pipeline::<Book>::new().group_by(Some("nope"), &[]).is_err());
        assert!(
            Pipeline::<Book>::new()
                .group_by(None, &[("$x", Agg::Count)])
                .is_err()
        );
    })
    .await;
}

#[derive(Debug, Deserialize, PartialEq)]
struct TitleOnly {
    #[serde(rename = "_id")]
    id: i64,
    title: String,
    pages: Option<i64>,
}

#[tokio::test]
async fn projection_returns_only_the_named_fields() {
    with_store(|store| async move {
        let books = store.repository::<Book>();
        books.ensure_schema().await.expect("schema");
        for (id, title, pages) in [(1, "b", 10), (2, "a", 20), (3, "c", 30)] {
            books
                .insert(&Book {
                    id,
                    author_id: 1,
                    title: title.into(),
                    pages,
                })
                .await
                .expect("insert");
        }
        let q = persistence_core::Query::filter(Book::PAGES.gte(20)).sort(Book::TITLE.asc());
        let rows: Vec<TitleOnly> = books.find_fields(&q, &["title"]).await.expect("projection");
        assert_eq!(
            rows,
            vec![
                TitleOnly {
                    id: 2,
                    title: "a".into(),
                    pages: None
                },
                TitleOnly {
                    id: 3,
                    title: "c".into(),
                    pages: None
                },
            ]
        );
        let err = books
            .find_fields::<TitleOnly>(&q, &["$where"])
            .await
            .expect_err("unknown field");
        assert_eq!(err.kind(), &persistence_core::ErrorKind::InvalidInput);
    })
    .await;
}
