//! The raw escape hatch (`find_raw`, `aggregate_raw`,
//! `aggregate_raw_documents`): values in the documents stay values, decode
//! errors name the field, server errors are typed, transactions see their
//! own writes, and `Metrics` sees every call (counter and slow log).
mod common;

use std::time::Duration;

use bson::{Document, doc};
use common::with_store;
use persistence_core::layer::{Metrics, SlowLog, metric_names};
use persistence_core::{Entity, Error, ErrorKind, Repository};
use persistence_mongo::{MongoRepository, MongoStore};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(name = "raw_books")]
struct Book {
    #[entity(id)]
    id: i64,
    title: String,
    note: Option<String>,
    stock: i64,
}

const HOSTILE: &str = "'; drop table raw_books; --";
/// A string that would be an operator if it were parsed as a document.
const OPERATOR_TEXT: &str = "{\"$ne\": null}";

fn book(id: i64, title: &str, stock: i64) -> Book {
    Book {
        id,
        title: title.into(),
        note: None,
        stock,
    }
}

async fn seeded(store: &MongoStore) -> MongoRepository<Book> {
    let repo = store.repository::<Book>();
    repo.ensure_schema().await.expect("schema");
    for b in [
        book(1, HOSTILE, 5),
        book(2, OPERATOR_TEXT, 7),
        book(3, "plain", 1),
    ] {
        repo.insert(&b).await.expect("insert");
    }
    repo
}

#[tokio::test]
async fn values_in_raw_documents_stay_values() {
    with_store(|store| async move {
        let repo = seeded(&store).await;
        let found = repo
            .find_raw(doc! { "title": HOSTILE })
            .await
            .expect("find_raw");
        assert_eq!(found, vec![book(1, HOSTILE, 5)]);
        // A string spelling an operator matches only the row holding that string.
        let found = repo
            .find_raw(doc! { "title": OPERATOR_TEXT })
            .await
            .expect("find_raw");
        assert_eq!(found, vec![book(2, OPERATOR_TEXT, 7)]);
        // Operators of your own, on stored names (`_id` for the id).
        let mut found = repo
            .find_raw(doc! { "stock": { "$gte": 5_i64 }, "_id": { "$ne": 2_i64 } })
            .await
            .expect("find_raw");
        found.sort_by_key(|b| b.id);
        assert_eq!(found, vec![book(1, HOSTILE, 5)]);
        // A pipeline returning entities, and one returning documents.
        let sorted = repo
            .aggregate_raw(vec![
                doc! { "$match": { "stock": { "$lt": 6_i64 } } },
                doc! { "$sort": { "_id": -1 } },
            ])
            .await
            .expect("aggregate_raw");
        assert_eq!(sorted, vec![book(3, "plain", 1), book(1, HOSTILE, 5)]);
        let total: Vec<Document> = repo
            .aggregate_raw_documents(vec![
                doc! { "$group": { "_id": Option::<i64>::None, "total": { "$sum": "$stock" } } },
            ])
            .await
            .expect("aggregate_raw_documents");
        assert_eq!(total.len(), 1);
        let sum = total[0].get("total").and_then(|b| match b {
            bson::Bson::Int64(i) => Some(*i),
            bson::Bson::Int32(i) => Some(i64::from(*i)),
            _ => None,
        });
        assert_eq!(sum, Some(13));
        // Nothing was dropped or changed.
        assert_eq!(
            repo.count(&persistence_core::Filter::all())
                .await
                .expect("count"),
            3
        );
    })
    .await;
}

#[tokio::test]
async fn raw_errors_are_typed() {
    with_store(|store| async move {
        let repo = seeded(&store).await;
        // An output document whose field does not fit: Decode naming the field.
        let e = repo
            .aggregate_raw(vec![
                doc! { "$match": { "_id": 3_i64 } },
                doc! { "$set": { "stock": "many" } },
            ])
            .await
            .expect_err("a string in an i64 field");
        assert_eq!(e.kind(), &ErrorKind::Decode, "{e:?}");
        assert!(e.message().contains("stock"), "names the field: {e}");
        assert_eq!(e.operation(), Some("aggregate_raw"));
        // An unknown query operator / pipeline stage: the server refuses it, typed.
        let e = repo
            .find_raw(doc! { "stock": { "$no_such_operator": 1 } })
            .await
            .expect_err("unknown operator");
        assert_eq!(e.kind(), &ErrorKind::InvalidInput, "{e:?}");
        assert_eq!(e.operation(), Some("find_raw"));
        let e = repo
            .aggregate_raw_documents(vec![doc! { "$no_such_stage": {} }])
            .await
            .expect_err("unknown stage");
        assert!(
            !matches!(e.kind(), ErrorKind::Decode),
            "a server error, not a decode error: {e:?}"
        );
        assert_eq!(e.operation(), Some("aggregate_raw"));
    })
    .await;
}

#[tokio::test]
async fn raw_reads_run_in_the_transaction() {
    with_store(|store| async move {
        let repo = seeded(&store).await;
        if !store.supports_transactions().await.expect("hello") {
            eprintln!("SKIPPED: the server is not a replica set");
            return;
        }
        let outcome: Result<(), Error> = store
            .transaction(|tx| async move {
                let b = tx.repository::<Book>();
                b.insert(&book(4, "in tx", 9)).await?;
                let seen = b.find_raw(doc! { "_id": 4_i64 }).await?;
                assert_eq!(seen, vec![book(4, "in tx", 9)]);
                let seen = b
                    .aggregate_raw(vec![doc! { "$match": { "stock": 9_i64 } }])
                    .await?;
                assert_eq!(seen.len(), 1);
                Err(Error::invalid_input("roll back"))
            })
            .await;
        assert!(outcome.is_err());
        assert!(
            repo.find_raw(doc! { "_id": 4_i64 })
                .await
                .expect("find_raw")
                .is_empty()
        );
        // No row locks on MongoDB.
        assert!(!repo.capabilities().row_locks);
    })
    .await;
}

type Snapshot = Vec<(
    metrics_util::CompositeKey,
    Option<metrics::Unit>,
    Option<metrics::SharedString>,
    metrics_util::debugging::DebugValue,
)>;

fn count_ops(snapshot: &Snapshot, db: &str, op: &str, outcome: &str) -> u64 {
    snapshot
        .iter()
        .filter(|(key, _, _, _)| {
            let k = key.key();
            k.name() == metric_names::OPERATIONS
                && k.labels().any(|l| l.key() == "db" && l.value() == db)
                && k.labels().any(|l| l.key() == "op" && l.value() == op)
                && k.labels()
                    .any(|l| l.key() == "outcome" && l.value() == outcome)
        })
        .map(|(_, _, _, v)| match v {
            metrics_util::debugging::DebugValue::Counter(c) => *c,
            _ => 0,
        })
        .sum()
}

/// With `MongoStore::set_metrics`, the raw calls are operations `find_raw` /
/// `aggregate_raw`: counted by outcome and (threshold zero) in the slow log
/// with the command shape, never the values.
#[test]
fn metrics_and_slow_log_see_raw_calls() {
    let db = format!("raw-{}", persistence_testing::services::unique_suffix());
    let recorder = metrics_util::debugging::DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let mut ran = false;
    metrics::with_local_recorder(&recorder, || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(with_store(|store| {
                let db = db.clone();
                let ran = &mut ran;
                async move {
                    store.set_metrics(Metrics::new(&db).slow_threshold(Duration::ZERO));
                    let repo = seeded(&store).await;
                    repo.find_raw(doc! { "title": HOSTILE })
                        .await
                        .expect("find_raw");
                    repo.aggregate_raw(vec![doc! { "$match": { "title": HOSTILE } }])
                        .await
                        .expect("aggregate_raw");
                    let _ = repo
                        .find_raw(doc! { "stock": { "$no_such_operator": 1 } })
                        .await
                        .expect_err("unknown operator");
                    let entries: Vec<_> = SlowLog::global()
                        .recent(256)
                        .into_iter()
                        .filter(|e| e.db == db)
                        .collect();
                    let ops: Vec<&str> = entries.iter().map(|e| e.op.as_str()).collect();
                    assert!(
                        ops.contains(&"find_raw") && ops.contains(&"aggregate_raw"),
                        "{ops:?}"
                    );
                    for e in &entries {
                        assert_eq!(e.entity, "raw_books");
                        let s = e.statement.as_deref().unwrap_or_default();
                        assert!(!s.is_empty(), "the command shape is logged: {e:?}");
                        assert!(!s.contains("drop table"), "no value in the log: {s}");
                    }
                    *ran = true;
                }
            }));
    });
    if ran {
        let snapshot = snapshotter.snapshot().into_vec();
        assert_eq!(count_ops(&snapshot, &db, "find_raw", "ok"), 1);
        assert_eq!(count_ops(&snapshot, &db, "aggregate_raw", "ok"), 1);
        assert_eq!(count_ops(&snapshot, &db, "find_raw", "invalid_input"), 1);
    }
}
