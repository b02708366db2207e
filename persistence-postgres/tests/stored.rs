//! Writes return what the database stored, read back with `RETURNING`:
//! on a table made by someone else with a `numeric(12,2)` and a
//! `timestamptz(3)` column, PostgreSQL rounds the values, and `insert`,
//! `update` and `upsert` return the rounded values, the same a `get` reads.
mod common;

use chrono::{DateTime, Utc};
use common::pg_store;
use persistence_core::{Entity, Repository};
use persistence_postgres::sea_orm::ConnectionTrait as _;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(name = "priced")]
struct Priced {
    #[entity(id)]
    id: i64,
    amount: Decimal,
    at: DateTime<Utc>,
    #[entity(version)]
    version: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(name = "priced_plain")]
struct PricedPlain {
    #[entity(id)]
    id: i64,
    amount: Decimal,
}

fn dec(s: &str) -> Decimal {
    s.parse().expect("decimal")
}

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .expect("timestamp")
        .with_timezone(&Utc)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_return_the_values_a_narrower_column_kept() {
    let Some(store) = pg_store().await else {
        return;
    };
    let repo = store.repository::<Priced>();
    // Someone else's table: narrower than what ensure_schema would create.
    store
        .connection()
        .execute_unprepared(&format!(
            "CREATE TABLE {} (\"id\" bigint PRIMARY KEY, \"amount\" numeric(12,2) NOT NULL, \
             \"at\" timestamptz(3) NOT NULL, \"version\" bigint NOT NULL)",
            repo.table_name()
        ))
        .await
        .expect("create table");

    let input = Priced {
        id: 1,
        amount: dec("19.999"),
        at: at("2024-05-06T07:08:09.123456789Z"),
        version: 0,
    };
    let inserted = repo.insert(&input).await.expect("insert");
    assert_eq!(inserted.amount.to_string(), "20.00", "{inserted:?}");
    assert_eq!(inserted.at, at("2024-05-06T07:08:09.123Z"));
    assert_eq!(inserted.version, 1);
    assert_eq!(repo.get(&1).await.expect("get"), Some(inserted.clone()));

    let mut next = inserted.clone();
    next.amount = dec("0.005");
    next.at = at("2024-05-06T07:08:09.9996Z");
    let updated = repo.update(&next).await.expect("update");
    // numeric rounds half away from zero; timestamptz(3) rounds to nearest.
    assert_eq!(updated.amount.to_string(), "0.01", "{updated:?}");
    assert_eq!(updated.at, at("2024-05-06T07:08:10Z"));
    assert_eq!(updated.version, 2);
    assert_eq!(repo.get(&1).await.expect("get"), Some(updated.clone()));

    let mut over = updated.clone();
    over.amount = dec("-1.2345");
    let upserted = repo.upsert(&over).await.expect("upsert");
    assert_eq!(upserted.amount.to_string(), "-1.23", "{upserted:?}");
    assert_eq!(upserted.version, 3);
    assert_eq!(repo.get(&1).await.expect("get"), Some(upserted));

    // Without a version column (the upsert's other statement shape).
    let plain = store.repository::<PricedPlain>();
    store
        .connection()
        .execute_unprepared(&format!(
            "CREATE TABLE {} (\"id\" bigint PRIMARY KEY, \"amount\" numeric(6,1) NOT NULL)",
            plain.table_name()
        ))
        .await
        .expect("create table");
    let p = PricedPlain {
        id: 7,
        amount: dec("2.25"),
    };
    let created = plain.upsert(&p).await.expect("upsert");
    assert_eq!(created.amount.to_string(), "2.3");
    assert_eq!(plain.get(&7).await.expect("get"), Some(created));
    let updated = plain
        .update(&PricedPlain {
            id: 7,
            amount: dec("-0.05"),
        })
        .await
        .expect("update");
    assert_eq!(updated.amount.to_string(), "-0.1");
    assert_eq!(plain.get(&7).await.expect("get"), Some(updated));

    store.drop_schema().await.expect("drop schema");
    store.close().await;
}
