//! Transactions: commit, abort, retry on write conflicts.
mod common;

use common::with_store;
use persistence_core::{Entity, Error, ErrorKind, Filter, Guard, Query, Repository, Update};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(name = "counters")]
struct Counter {
    #[entity(id)]
    id: String,
    #[entity(version)]
    version: i64,
    value: i64,
}

#[tokio::test]
async fn commit_abort_and_capability() {
    with_store(|store| async move {
        let repo = store.repository::<Counter>();
        repo.ensure_schema().await.expect("schema");
        if !store.supports_transactions().await.expect("hello") {
            eprintln!("SKIPPED: the server is not a replica set");
            return;
        }
        assert!(repo.capabilities().transactions);
        let n = store
            .transaction(|tx| async move {
                let c = tx.repository::<Counter>();
                c.insert(&Counter {
                    id: "a".into(),
                    version: 0,
                    value: 1,
                })
                .await?;
                c.insert(&Counter {
                    id: "b".into(),
                    version: 0,
                    value: 2,
                })
                .await?;
                c.count(&Filter::all()).await
            })
            .await
            .expect("commit");
        assert_eq!(n, 2, "reads inside see the transaction's writes");
        assert_eq!(repo.count(&Filter::all()).await.expect("count"), 2);

        let err = store
            .transaction(|tx| async move {
                let c = tx.repository::<Counter>();
                c.insert(&Counter {
                    id: "c".into(),
                    version: 0,
                    value: 3,
                })
                .await?;
                c.delete(&"a".to_string()).await?;
                Err::<(), _>(Error::invalid_input("changed my mind"))
            })
            .await
            .expect_err("aborted");
        assert_eq!(err.kind(), &ErrorKind::InvalidInput);
        assert_eq!(
            repo.count(&Filter::all()).await.expect("count"),
            2,
            "nothing kept"
        );
        assert!(repo.get(&"a".to_string()).await.expect("get").is_some());

        // A unique/duplicate error inside aborts as well and is not retried.
        let err = store
            .transaction(|tx| async move {
                let c = tx.repository::<Counter>();
                c.insert(&Counter {
                    id: "d".into(),
                    version: 0,
                    value: 4,
                })
                .await?;
                c.insert(&Counter {
                    id: "a".into(),
                    version: 0,
                    value: 5,
                })
                .await
            })
            .await
            .expect_err("duplicate");
        assert!(err.is_conflict(), "{err}");
        assert!(repo.get(&"d".to_string()).await.expect("get").is_none());
    })
    .await;
}

#[tokio::test]
async fn write_conflicts_are_retried() {
    with_store(|store| async move {
        let repo = store.repository::<Counter>();
        repo.ensure_schema().await.expect("schema");
        if !store.supports_transactions().await.expect("hello") {
            eprintln!("SKIPPED: the server is not a replica set");
            return;
        }
        repo.insert(&Counter {
            id: "n".into(),
            version: 0,
            value: 0,
        })
        .await
        .expect("insert");
        let mut tasks = Vec::new();
        for _ in 0..4 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                store
                    .transaction_with(
                        persistence_mongo::TransactionOptions { max_attempts: 50 },
                        |tx| async move {
                            let c = tx.repository::<Counter>();
                            let mut cur = c.get(&"n".to_string()).await?.expect("exists");
                            cur.value += 1;
                            // Give the other transactions time to collide.
                            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                            match c.update(&cur).await {
                                // A stale version inside a transaction means another
                                // one committed first: retry the unit.
                                Err(e)
                                    if matches!(
                                        e.kind(),
                                        ErrorKind::Conflict(
                                            persistence_core::ConflictKind::Version { .. }
                                        )
                                    ) =>
                                {
                                    Err(Error::concurrent("stale read").with_source(e))
                                }
                                other => other,
                            }
                        },
                    )
                    .await
            }));
        }
        for t in tasks {
            t.await
                .expect("task")
                .expect("transaction eventually commits");
        }
        let n = repo
            .get(&"n".to_string())
            .await
            .expect("get")
            .expect("exists");
        assert_eq!(n.value, 4, "every increment applied exactly once");
        assert_eq!(n.version, 5);
    })
    .await;
}

/// `select`, `select_as` and `distinct` inside a transaction read through
/// its session: they see its uncommitted writes.
#[tokio::test]
async fn select_and_distinct_in_a_transaction() {
    use persistence_core::SelectExt;
    #[derive(Debug, PartialEq, Deserialize)]
    struct Slim {
        value: i64,
    }
    with_store(|store| async move {
        let repo = store.repository::<Counter>();
        repo.ensure_schema().await.expect("schema");
        if !store.supports_transactions().await.expect("hello") {
            eprintln!("SKIPPED: the server is not a replica set");
            return;
        }
        let err = store
            .transaction(|tx| async move {
                let c = tx.repository::<Counter>();
                for (id, value) in [("a", 3), ("b", 1), ("c", 3)] {
                    c.insert(&Counter {
                        id: id.into(),
                        version: 0,
                        value,
                    })
                    .await?;
                }
                let q = Query::all().sort(Counter::VALUE.asc());
                let rows: Vec<Slim> = c.select_as(&q).await?;
                assert_eq!(
                    rows,
                    [Slim { value: 1 }, Slim { value: 3 }, Slim { value: 3 }]
                );
                let ids = c.select(&q, &["id"]).await?;
                assert_eq!(ids.len(), 3);
                let values = c.distinct_of(&Counter::VALUE, &Filter::all()).await?;
                assert_eq!(values, [1, 3]);
                Err::<(), _>(Error::invalid_input("roll back"))
            })
            .await
            .expect_err("aborted");
        assert_eq!(err.kind(), &ErrorKind::InvalidInput);
        assert!(
            repo.distinct("value", &Filter::all())
                .await
                .expect("distinct")
                .is_empty()
        );
    })
    .await;
}

/// `patch`, `update_where` and `find_one_and_delete` inside a transaction
/// run on its session: aborted with it, kept on commit.
#[tokio::test]
async fn partial_updates_follow_the_transaction() {
    with_store(|store| async move {
        let repo = store.repository::<Counter>();
        repo.ensure_schema().await.expect("schema");
        if !store.supports_transactions().await.expect("hello") {
            eprintln!("SKIPPED: the server is not a replica set");
            return;
        }
        let seed = |id: &str, value| Counter {
            id: id.into(),
            version: 0,
            value,
        };
        repo.insert_many(&[seed("a", 10), seed("b", 20)])
            .await
            .expect("seed");
        let err = store
            .transaction(|tx| async move {
                let c = tx.repository::<Counter>();
                let got = c
                    .patch(
                        &"a".to_string(),
                        &Update::new().inc(Counter::VALUE, -4),
                        &Guard::when(Counter::VALUE.gte(4)).and_version(1),
                    )
                    .await?;
                assert_eq!((got.value, got.version), (6, 2));
                let n = c
                    .update_where(&Filter::all(), &Update::new().mul(Counter::VALUE, 2))
                    .await?;
                assert_eq!(n, 2);
                let popped = c
                    .find_one_and_delete(&Query::all().sort(Counter::VALUE.desc()))
                    .await?;
                assert_eq!(popped.map(|p| (p.id, p.value)), Some(("b".into(), 40)));
                Err::<(), _>(Error::invalid_input("abort"))
            })
            .await
            .expect_err("aborted");
        assert_eq!(err.kind(), &ErrorKind::InvalidInput);
        let a = repo.get(&"a".to_string()).await.expect("get").expect("a");
        assert_eq!((a.value, a.version), (10, 1), "nothing kept");
        assert!(repo.get(&"b".to_string()).await.expect("get").is_some());
        store
            .transaction(|tx| async move {
                tx.repository::<Counter>()
                    .patch(
                        &"a".to_string(),
                        &Update::new().inc(Counter::VALUE, 1),
                        &Guard::none(),
                    )
                    .await
            })
            .await
            .expect("commit");
        let a = repo.get(&"a".to_string()).await.expect("get").expect("a");
        assert_eq!((a.value, a.version), (11, 2));
    })
    .await;
}
