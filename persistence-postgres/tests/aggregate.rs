//! `aggregate` on PostgreSQL (own schema) and SQLite (own file) beyond the
//! conformance cases: every column type a grouping may use agrees with the
//! reference backend, decimals are exact on PostgreSQL and `Unsupported` on
//! SQLite, and a unit of work aggregates its own uncommitted rows.
mod common;

use common::*;
use persistence_core::{Error, ErrorKind, Filter, GroupBy, MemoryRepository, Repository, Value};
use persistence_postgres::RelationalStore;

fn things() -> Vec<Thing> {
    (0..12).map(thing).collect()
}

/// Count, integer sums of i16/i64, avg, min/max of f32, timestamps, dates
/// and enums, keyed by a string and a bool: the same rows as memory.
async fn types_agree_with_memory(store: &RelationalStore) {
    let repo = store.repository::<Thing>();
    repo.ensure_schema().await.expect("schema");
    repo.insert_many(&things()).await.expect("load");
    let memory = MemoryRepository::<Thing>::new();
    memory.insert_many(&things()).await.expect("load memory");
    let g = GroupBy::<Thing>::new()
        .key(Thing::TENANT)
        .key(Thing::FLAG)
        .count()
        .sum(Thing::SMALL)
        .sum(Thing::BIG)
        .avg(Thing::SCORE)
        .min(Thing::RATIO)
        .max(Thing::RATIO)
        .max(Thing::CREATED_AT)
        .min(Thing::BORN)
        .max(Thing::STATUS)
        .min(Thing::NAME)
        .having(Filter::field("count").gte(1))
        .sort(Filter::field("sum_big").desc());
    let filter = Thing::CODE.gte(1);
    let ours = repo.aggregate(&filter, &g).await.expect("aggregate");
    let reference = memory.aggregate(&filter, &g).await.expect("memory");
    assert_eq!(ours.len(), 6);
    assert_eq!(ours, reference);

    let decimals = GroupBy::<Thing>::new()
        .key(Thing::TENANT)
        .sum(Thing::AMOUNT)
        .max(Thing::AMOUNT);
    let r = repo.aggregate(&Filter::all(), &decimals).await;
    if store.dialect() == persistence_postgres::Dialect::Postgres {
        let ours = r.expect("decimal aggregates on PostgreSQL");
        let reference = memory
            .aggregate(&Filter::all(), &decimals)
            .await
            .expect("memory decimals");
        assert_eq!(ours, reference);
        assert!(matches!(
            &ours[0],
            Value::Object(o) if matches!(o.get("sum_amount"), Some(Value::Decimal(_)))
        ));
    } else {
        let e = r.expect_err("decimals on SQLite");
        assert_eq!(e.kind(), &ErrorKind::Unsupported, "{e}");
    }
}

async fn unit_of_work_aggregates_its_own_rows(store: &RelationalStore) {
    store
        .repository::<Thing>()
        .ensure_schema()
        .await
        .expect("schema");
    let g = GroupBy::<Thing>::new()
        .count()
        .sum(Thing::CODE)
        .alias("codes");
    let outcome: Result<(), Error> = store
        .transaction(|tx| {
            Box::pin(async move {
                let repo = tx.repository::<Thing>();
                repo.insert_many(&things()).await?;
                let rows = repo.aggregate(&Filter::all(), &g).await?;
                let Value::Object(row) = &rows[0] else {
                    panic!("not an object: {rows:?}")
                };
                assert_eq!(row.get("count"), Some(&Value::I64(12)));
                assert_eq!(row.get("codes"), Some(&Value::I64(66)));
                Err(Error::invalid_input("roll back"))
            })
        })
        .await;
    assert_eq!(
        outcome.expect_err("rolled back").kind(),
        &ErrorKind::InvalidInput
    );
    let g = GroupBy::<Thing>::new().count();
    let rows = store
        .repository::<Thing>()
        .aggregate(&Filter::all(), &g)
        .await
        .expect("aggregate");
    let Value::Object(row) = &rows[0] else {
        panic!("not an object: {rows:?}")
    };
    assert_eq!(row.get("count"), Some(&Value::I64(0)), "rolled back");
}

macro_rules! both {
    ($($name:ident),*) => {
        mod postgres {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(store) = pg_store().await else { return };
                    super::$name(&store).await;
                    store.close().await;
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

both!(
    types_agree_with_memory,
    unit_of_work_aggregates_its_own_rows
);
