//! Units of work on PostgreSQL (own schema) and SQLite (own file).
mod common;

use common::*;
use persistence_core::{Error, ErrorKind, Filter, Guard, Query, Repository, Update};
use persistence_postgres::{IsolationLevel, RelationalStore};

async fn failure_after_two_writes_leaves_neither(store: &RelationalStore) {
    store
        .repository::<Thing>()
        .ensure_schema()
        .await
        .expect("schema");
    let (a, b) = (thing(1), thing(2));
    let outcome: Result<(), Error> = store
        .transaction(|tx| {
            Box::pin(async move {
                let things = tx.repository::<Thing>();
                things.insert(&a).await?;
                things.insert(&b).await?;
                // Both rows are visible inside the transaction.
                assert_eq!(things.count(&Filter::all()).await?, 2);
                Err(Error::invalid_input(
                    "business rule failed after two writes",
                ))
            })
        })
        .await;
    assert_eq!(
        outcome.expect_err("closure error").kind(),
        &ErrorKind::InvalidInput
    );
    let repo = store.repository::<Thing>();
    assert_eq!(
        repo.count(&Filter::all()).await.expect("count"),
        0,
        "rolled back"
    );

    // A database error inside the unit also rolls back what came before it.
    let (c, dup) = (thing(3), thing(3));
    let outcome: Result<(), Error> = store
        .transaction(|tx| {
            Box::pin(async move {
                let things = tx.repository::<Thing>();
                things.insert(&c).await?;
                things.insert(&dup).await?;
                Ok(())
            })
        })
        .await;
    assert!(outcome.expect_err("duplicate").is_conflict());
    assert_eq!(repo.count(&Filter::all()).await.expect("count"), 0);
}

async fn ok_commits_and_savepoints_nest(store: &RelationalStore) {
    store
        .repository::<Thing>()
        .ensure_schema()
        .await
        .expect("schema");
    let n: u64 = store
        .transaction(|tx| {
            Box::pin(async move {
                let things = tx.repository::<Thing>();
                things.insert(&thing(1)).await?;
                let inner: Result<(), Error> = tx
                    .transaction(|sp| {
                        Box::pin(async move {
                            sp.repository::<Thing>().insert(&thing(2)).await?;
                            Err(Error::invalid_input("inner fails"))
                        })
                    })
                    .await;
                assert!(inner.is_err());
                tx.transaction(|sp| {
                    Box::pin(async move {
                        sp.repository::<Thing>().insert(&thing(3)).await?;
                        Ok::<_, Error>(())
                    })
                })
                .await?;
                // insert_many inside a unit stays all-or-nothing.
                let batch = things.insert_many(&[thing(4), thing(1)]).await;
                assert!(batch.is_err());
                things.count(&Filter::all()).await
            })
        })
        .await
        .expect("unit of work");
    assert_eq!(n, 2);
    let repo = store.repository::<Thing>();
    let ids: Vec<u128> = repo
        .find(&persistence_core::Query::all())
        .await
        .expect("find")
        .iter()
        .map(|t| t.id.as_u128())
        .collect();
    let mut want = vec![thing(1).id.as_u128(), thing(3).id.as_u128()];
    want.sort();
    assert_eq!(ids, want);
}

async fn panic_rolls_back(store: &RelationalStore) {
    store
        .repository::<Thing>()
        .ensure_schema()
        .await
        .expect("schema");
    let s = store.clone();
    let joined = tokio::spawn(async move {
        let _: Result<(), Error> = s
            .transaction(|tx| {
                Box::pin(async move {
                    tx.repository::<Thing>().insert(&thing(1)).await?;
                    panic!("boom inside the unit of work");
                })
            })
            .await;
    })
    .await;
    assert!(joined.is_err(), "the task panicked");
    let repo = store.repository::<Thing>();
    assert!(repo.get(&thing(1).id).await.expect("get").is_none());
}

async fn isolation_level_selectable(store: &RelationalStore) {
    store
        .repository::<Thing>()
        .ensure_schema()
        .await
        .expect("schema");
    let stored = store
        .transaction_with(Some(IsolationLevel::Serializable), |tx| {
            Box::pin(async move { tx.repository::<Thing>().insert(&thing(5)).await })
        })
        .await
        .expect("serializable unit");
    assert_eq!(stored.version, 1);
}

macro_rules! both {
    ($($name:ident),*) => {
        mod postgres {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(store) = pg_store().await else { return };
                    let s = store.clone();
                    let outcome = tokio::spawn(async move { super::$name(&s).await }).await;
                    store.drop_schema().await.expect("drop schema");
                    store.close().await;
                    if let Err(e) = outcome {
                        std::panic::resume_unwind(e.into_panic());
                    }
                }
            )*
        }
        mod sqlite {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let (store, path) = sqlite_store().await;
                    let s = store.clone();
                    let outcome = tokio::spawn(async move { super::$name(&s).await }).await;
                    store.close().await;
                    remove_sqlite(&path);
                    if let Err(e) = outcome {
                        std::panic::resume_unwind(e.into_panic());
                    }
                }
            )*
        }
    };
}

/// `patch`, `update_where` and `find_one_and_delete` of a transaction
/// repository run in the transaction: rolled back with it, kept on commit.
async fn partial_updates_follow_the_unit(store: &RelationalStore) {
    let repo = store.repository::<Thing>();
    repo.ensure_schema().await.expect("schema");
    repo.insert_many(&[thing(1), thing(2)]).await.expect("seed");
    let (id1, id2) = (thing(1).id, thing(2).id);
    let big = thing(1).big;
    let outcome: Result<(), Error> = store
        .transaction(|tx| {
            Box::pin(async move {
                let things = tx.repository::<Thing>();
                let got = things
                    .patch(
                        &id1,
                        &Update::new().inc(Thing::BIG, 5),
                        &Guard::when(Thing::BIG.gte(big)).and_version(1),
                    )
                    .await?;
                assert_eq!((got.big, got.version), (big + 5, 2));
                assert_eq!(
                    things
                        .update_where(&Filter::all(), &Update::new().inc(Thing::SMALL, 1))
                        .await?,
                    2
                );
                let popped = things
                    .find_one_and_delete(&Query::filter(Thing::ID.eq(id2)))
                    .await?;
                assert_eq!(popped.map(|t| t.id), Some(id2));
                Err(Error::invalid_input("roll it all back"))
            })
        })
        .await;
    assert!(outcome.is_err());
    let t1 = repo.get(&id1).await.expect("get").expect("row 1");
    assert_eq!((t1.big, t1.small, t1.version), (big, thing(1).small, 1));
    assert!(
        repo.get(&id2).await.expect("get").is_some(),
        "the pop was rolled back"
    );
    store
        .transaction(|tx| {
            Box::pin(async move {
                tx.repository::<Thing>()
                    .patch(&id1, &Update::new().inc(Thing::BIG, 5), &Guard::none())
                    .await
            })
        })
        .await
        .expect("committed unit");
    let t1 = repo.get(&id1).await.expect("get").expect("row 1");
    assert_eq!((t1.big, t1.version), (big + 5, 2));
}

/// `select`, `select_as` and `distinct` on a transaction's repository see
/// its uncommitted writes (they run on the transaction's connection).
async fn select_and_distinct_in_a_unit_of_work(store: &RelationalStore) {
    use persistence_core::{SelectExt, StringField};
    #[derive(Debug, PartialEq, serde::Deserialize)]
    struct Slim {
        code: i32,
        tenant: String,
    }
    store
        .repository::<Thing>()
        .ensure_schema()
        .await
        .expect("schema");
    let outcome: Result<(), Error> = store
        .transaction(|tx| {
            Box::pin(async move {
                let things = tx.repository::<Thing>();
                for i in 1..=6 {
                    things.insert(&thing(i)).await?;
                }
                let q = Query::filter(Thing::CODE.gte(3)).sort(Thing::CODE.desc());
                let rows = things.select(&q, &["code"]).await?;
                assert_eq!(rows.len(), 4);
                let slim: Vec<Slim> = things.select_as(&q).await?;
                assert_eq!(
                    slim[0],
                    Slim {
                        code: 6,
                        tenant: "t0".into()
                    }
                );
                let tenants = things.distinct_of(&Thing::TENANT, &Filter::all()).await?;
                assert_eq!(tenants, ["t0", "t1", "t2"]);
                let names = things
                    .distinct_of(&Thing::NAME, &Thing::NAME.eq_ignore_case("BOB"))
                    .await?;
                assert_eq!(names, [Some("Bob".to_string()), Some("bob".to_string())]);
                Err(Error::invalid_input("roll back"))
            })
        })
        .await;
    assert!(outcome.is_err());
    let repo = store.repository::<Thing>();
    assert!(
        repo.distinct("tenant", &Filter::all())
            .await
            .expect("distinct")
            .is_empty(),
        "rolled back"
    );
}

/// Soft delete inside a unit of work: the transaction's repository stamps,
/// soft-deletes and hides the row like the pool's (they share the
/// statements); a rollback brings the row back as it was.
async fn soft_delete_follows_the_unit(store: &RelationalStore) {
    use persistence_core::conformance::entities::Note;
    use persistence_core::lifecycle::SoftDeleteExt as _;
    let repo = store.repository::<Note>();
    repo.ensure_schema().await.expect("schema");
    repo.insert_many(&[Note::new(1, "a", 0), Note::new(2, "b", 0)])
        .await
        .expect("seed");
    let before = repo.get(&1).await.expect("get").expect("row 1");
    assert_eq!(before.created_at, before.updated_at);
    assert!(before.created_at > chrono::DateTime::<chrono::Utc>::UNIX_EPOCH);
    let outcome: Result<(), Error> = store
        .transaction(|tx| {
            Box::pin(async move {
                let notes = tx.repository::<Note>();
                assert!(notes.delete(&1).await?, "a live row is deleted");
                assert!(notes.get(&1).await?.is_none(), "get in the unit");
                let locked = notes
                    .get_for_update(&1, persistence_postgres::Lock::Wait)
                    .await?;
                assert!(locked.is_none(), "get_for_update in the unit");
                let live = notes
                    .find_for_update(&Query::all(), persistence_postgres::Lock::Wait)
                    .await?;
                assert_eq!(live.iter().map(|n| n.id).collect::<Vec<_>>(), [2]);
                let many = notes.get_many(&[1, 2]).await?;
                assert_eq!(many.iter().map(|n| n.id).collect::<Vec<_>>(), [2]);
                assert_eq!(notes.count(&Filter::all()).await?, 1);
                assert_eq!(notes.count(&Filter::all().with_deleted()).await?, 2);
                let e = notes
                    .patch(&1, &Update::new().inc(Note::RANK, 1), &Guard::none())
                    .await
                    .expect_err("patch of a deleted row");
                assert_eq!(e.kind(), &ErrorKind::NotFound);
                // The slug of a deleted row is free among live rows.
                let again = notes.insert(&Note::new(3, "a", 0)).await?;
                assert_eq!(again.created_at, again.updated_at);
                assert!(!notes.restore(&2).await?, "row 2 is live");
                Err(Error::invalid_input("roll back"))
            })
        })
        .await;
    assert_eq!(
        outcome.expect_err("rolled back").kind(),
        &ErrorKind::InvalidInput
    );
    assert_eq!(
        repo.get(&1).await.expect("get"),
        Some(before),
        "the rollback brings the row back as it was"
    );
    assert!(repo.get(&3).await.expect("get").is_none());
    assert_eq!(
        repo.count(&Filter::all().with_deleted())
            .await
            .expect("count"),
        2
    );
}

both!(
    failure_after_two_writes_leaves_neither,
    soft_delete_follows_the_unit,
    ok_commits_and_savepoints_nest,
    panic_rolls_back,
    isolation_level_selectable,
    select_and_distinct_in_a_unit_of_work,
    partial_updates_follow_the_unit
);

/// Write skew under SERIALIZABLE: one of two units fails with SQLSTATE 40001,
/// surfaced as a retryable `Conflict(Concurrent)`; retrying it succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serialization_failure_is_retryable_concurrent_conflict() {
    let Some(store) = pg_store().await else {
        return;
    };
    let s = store.clone();
    let outcome = tokio::spawn(async move {
        let repo = s.repository::<Thing>();
        repo.ensure_schema().await.expect("schema");
        let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(2));
        let unit = |i: u32| {
            let s = s.clone();
            let barrier = barrier.clone();
            async move {
                s.transaction_with(Some(IsolationLevel::Serializable), |tx| {
                    Box::pin(async move {
                        let things = tx.repository::<Thing>();
                        let seen = things.count(&Filter::all()).await?;
                        barrier.wait().await;
                        let mut t = thing(i);
                        t.code = seen as i32 + i as i32;
                        things.insert(&t).await?;
                        Ok::<_, Error>(())
                    })
                })
                .await
            }
        };
        let (a, b) = tokio::join!(unit(1), unit(2));
        let failures: Vec<Error> = [a, b].into_iter().filter_map(Result::err).collect();
        assert_eq!(failures.len(), 1, "exactly one unit loses: {failures:?}");
        let e = &failures[0];
        assert_eq!(
            e.kind(),
            &ErrorKind::Conflict(persistence_core::ConflictKind::Concurrent),
            "{e:?}"
        );
        assert!(e.is_retryable());
        assert_eq!(repo.count(&Filter::all()).await.expect("count"), 1);
    })
    .await;
    store.drop_schema().await.expect("drop schema");
    store.close().await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

/// A unit of work dropped mid-way (its task aborted while the transaction is
/// open) rolls back. The pool has one connection, so the reads afterwards run
/// on the very session the transaction used: had it not been rolled back,
/// they would see the insert.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_unit_of_work_rolls_back() {
    let Some(schema) = persistence_testing::TestPostgres::schema().await else {
        return;
    };
    let store = RelationalStore::connect(&schema.config().max_connections(1))
        .await
        .expect("connect");
    let s = store.clone();
    let outcome = tokio::spawn(async move {
        s.repository::<Thing>()
            .ensure_schema()
            .await
            .expect("schema");
        let (inserted, wait_inserted) = tokio::sync::oneshot::channel();
        let unit = tokio::spawn({
            let s = s.clone();
            async move {
                let _: Result<(), Error> = s
                    .transaction(|tx| {
                        Box::pin(async move {
                            tx.repository::<Thing>().insert(&thing(1)).await?;
                            let _ = inserted.send(());
                            std::future::pending::<()>().await;
                            Ok(())
                        })
                    })
                    .await;
            }
        });
        wait_inserted.await.expect("the unit inserted a row");
        unit.abort();
        assert!(unit.await.is_err_and(|e| e.is_cancelled()));
        let repo = s.repository::<Thing>();
        assert!(repo.get(&thing(1).id).await.expect("get").is_none());
        assert_eq!(repo.count(&Filter::all()).await.expect("count"), 0);
    })
    .await;
    store.drop_schema().await.expect("drop schema");
    store.close().await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}
