//! `Repository::aggregate` on MongoDB beyond the conformance cases: every
//! column type a grouping may use agrees with the reference backend, and a
//! transaction aggregates its own uncommitted documents.
mod common;

use common::with_store;
use persistence_core::conformance::entities::{AllTypes, sample_all_types};
use persistence_core::{
    Error, ErrorKind, Filter, GroupBy, MemoryRepository, Repository, TimestampPrecision, Value,
};

/// Twelve rows, timestamps already at MongoDB's millisecond precision.
fn rows() -> Vec<AllTypes> {
    (1..=12)
        .map(|i| {
            let mut e = sample_all_types(i);
            e.ts = TimestampPrecision::Millis.truncate(e.ts);
            e.opt_ts = e.opt_ts.map(|t| TimestampPrecision::Millis.truncate(t));
            e.i32v = i as i32 * 7 - 40;
            e.f32v = i as f32 / 4.0;
            e.opt_i = (i % 3 != 0).then_some(i as i64 * 11);
            e
        })
        .collect()
}

#[tokio::test]
async fn types_agree_with_memory() {
    with_store(|store| async move {
        let repo = store.repository::<AllTypes>();
        repo.ensure_schema().await.expect("schema");
        repo.insert_many(&rows()).await.expect("load");
        let memory = MemoryRepository::<AllTypes>::new();
        memory.insert_many(&rows()).await.expect("load memory");
        let g = GroupBy::<AllTypes>::new()
            .key(AllTypes::B)
            .key(AllTypes::STATUS)
            .count()
            .sum(AllTypes::I16V)
            .sum(AllTypes::I32V)
            .sum(AllTypes::OPT_I)
            .avg(AllTypes::OPT_I)
            .sum(AllTypes::DEC)
            .max(AllTypes::DEC)
            .min(AllTypes::F32V)
            .max(AllTypes::TS)
            .min(AllTypes::DATE)
            .max(AllTypes::S)
            .having(Filter::field("count").gte(1))
            .sort(Filter::field("sum_i32v").desc());
        let filter = AllTypes::I32V.gt(-40);
        let ours = Repository::aggregate(&repo, &filter, &g).await.expect("aggregate");
        let reference = Repository::aggregate(&memory, &filter, &g).await.expect("memory");
        assert!(!ours.is_empty());
        assert_eq!(ours, reference);
        assert!(matches!(
            &ours[0],
            Value::Object(o) if matches!(o.get("sum_dec"), Some(Value::Decimal(_)))
        ));
        // The average of decimals is a float, as everywhere.
        let avg = GroupBy::<AllTypes>::new().avg(AllTypes::DEC);
        let rows = Repository::aggregate(&repo, &Filter::all(), &avg).await.expect("avg");
        assert!(matches!(
            &rows[0],
            Value::Object(o) if matches!(o.get("avg_dec"), Some(Value::F64(x)) if (x - 123.456).abs() < 1e-9)
        ), "{rows:?}");
    })
    .await;
}

#[tokio::test]
async fn transaction_aggregates_its_own_documents() {
    with_store(|store| async move {
        let repo = store.repository::<AllTypes>();
        repo.ensure_schema().await.expect("schema");
        if !store.supports_transactions().await.expect("hello") {
            eprintln!("SKIPPED: the server is not a replica set");
            return;
        }
        let err = store
            .transaction(|tx| async move {
                let r = tx.repository::<AllTypes>();
                r.insert_many(&rows()).await?;
                let g = GroupBy::<AllTypes>::new()
                    .count()
                    .sum(AllTypes::I32V)
                    .alias("total");
                let got = Repository::aggregate(&r, &Filter::all(), &g).await?;
                let Value::Object(row) = &got[0] else {
                    panic!("not an object: {got:?}")
                };
                assert_eq!(row.get("count"), Some(&Value::I64(12)));
                assert_eq!(row.get("total"), Some(&Value::I64(66)));
                Err::<(), _>(Error::invalid_input("roll back"))
            })
            .await
            .expect_err("aborted");
        assert_eq!(err.kind(), &ErrorKind::InvalidInput);
        let got = Repository::aggregate(&repo, &Filter::all(), &GroupBy::<AllTypes>::new().count())
            .await
            .expect("aggregate");
        let Value::Object(row) = &got[0] else {
            panic!("not an object: {got:?}")
        };
        assert_eq!(row.get("count"), Some(&Value::I64(0)), "nothing kept");
    })
    .await;
}
