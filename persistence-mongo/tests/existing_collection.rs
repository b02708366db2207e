//! Mapping onto an existing collection (issue 16, item 4): documents
//! written by another program through the raw driver, with ObjectId ids
//! and references, decimal128 amounts, BSON dates and a field the entity
//! does not know. The repository reads, filters, inserts (a new ObjectId
//! id), updates and deletes them, and leaves the collection as it was.
mod common;

use bson::oid::ObjectId;
use bson::{Bson, Document, doc};
use chrono::{DateTime, TimeZone, Utc};
use common::with_store;
use futures_util::TryStreamExt as _;
use persistence_core::names::SchemaPolicy;
use persistence_core::{Entity, Query, Repository};
use persistence_mongo::MongoStore;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(name = "orders")]
struct Order {
    /// An ObjectId, as the entity's 24-digit hex string; a new one is
    /// made on insert when the id is empty.
    #[entity(id, generated, object_id)]
    id: String,
    /// A reference to another collection's ObjectId.
    #[entity(object_id, index)]
    customer: String,
    total: Decimal,
    /// Stored as decimal128 by the other program.
    amount: f64,
    /// The other program's key is `placedAt`.
    #[entity(column = "placedAt")]
    placed_at: DateTime<Utc>,
    status: String,
    note: Option<String>,
}

fn at(h: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 5, 6, h, 0, 0)
        .single()
        .expect("time")
}

fn dec128(s: &str) -> Bson {
    Bson::Decimal128(s.parse().expect("decimal128"))
}

/// The collection's options and indexes (what `ensure_schema` could change).
async fn shape(store: &MongoStore) -> (Vec<Document>, Vec<Document>) {
    let specs: Vec<Document> = store
        .database()
        .run_command(doc! { "listCollections": 1, "filter": { "name": "orders" } })
        .await
        .expect("listCollections")
        .get_document("cursor")
        .and_then(|c| c.get_array("firstBatch"))
        .expect("batch")
        .iter()
        .filter_map(|b| b.as_document().cloned())
        .map(|mut d| {
            d.remove("info");
            d
        })
        .collect();
    let indexes: Vec<Document> = store
        .database()
        .collection::<Document>("orders")
        .list_indexes()
        .await
        .expect("indexes")
        .try_collect::<Vec<_>>()
        .await
        .expect("indexes")
        .into_iter()
        .map(|m| bson::to_document(&m).expect("index"))
        .collect();
    (specs, indexes)
}

#[tokio::test]
async fn documents_of_another_program_are_read_and_written_in_place() {
    with_store(|store| async move {
        let raw = store.database().collection::<Document>("orders");
        let (alice, bob) = (ObjectId::new(), ObjectId::new());
        let ids = [ObjectId::new(), ObjectId::new(), ObjectId::new()];
        raw.insert_many([
            doc! { "_id": ids[0], "customer": alice, "total": dec128("19.99"), "amount": dec128("5.5"),
                   "placedAt": bson::DateTime::from_chrono(at(9)), "status": "open", "note": Bson::Null,
                   "legacy": "theirs" },
            doc! { "_id": ids[1], "customer": bob, "total": dec128("120.00"), "amount": dec128("-1.25"),
                   "placedAt": bson::DateTime::from_chrono(at(10)), "status": "paid", "note": "gift",
                   "legacy": "theirs" },
            doc! { "_id": ids[2], "customer": alice, "total": dec128("7.50"), "amount": 2.0,
                   "placedAt": bson::DateTime::from_chrono(at(11)), "status": "open",
                   "legacy": "theirs" },
        ])
        .await
        .expect("raw insert");
        let before = shape(&store).await;

        for policy in [SchemaPolicy::Managed, SchemaPolicy::VerifyOnly] {
            let repo = store.repository::<Order>().with_schema_policy(policy);
            repo.ensure_schema().await.expect("ensure_schema");
        }
        let repo = store.repository::<Order>();

        // Read: ObjectIds as hex, decimal128 into Decimal and f64, dates.
        let all = repo
            .find(&Query::all().sort(Order::PLACED_AT.asc()))
            .await
            .expect("find");
        let hex: Vec<String> = ids.iter().map(|o| o.to_hex()).collect();
        assert_eq!(
            all.iter().map(|o| o.id.clone()).collect::<Vec<_>>(),
            hex
        );
        let first = &all[0];
        assert_eq!(first.customer, alice.to_hex());
        assert_eq!(first.total, "19.99".parse::<Decimal>().expect("dec"));
        assert_eq!((first.amount, all[1].amount, all[2].amount), (5.5, -1.25, 2.0));
        assert_eq!(first.placed_at, at(9));
        assert_eq!((first.note.clone(), all[2].note.clone()), (None, None));
        assert_eq!(repo.get(&hex[1]).await.expect("get").as_ref(), Some(&all[1]));

        // Filters compare ObjectIds, decimals and dates.
        let found = |q: Query| {
            let repo = repo.clone();
            async move {
                repo.find(&q.sort(Order::PLACED_AT.asc()))
                    .await
                    .expect("find")
                    .into_iter()
                    .map(|o| o.id)
                    .collect::<Vec<_>>()
            }
        };
        assert_eq!(
            found(Query::filter(Order::CUSTOMER.eq(alice.to_hex()))).await,
            [hex[0].clone(), hex[2].clone()]
        );
        assert_eq!(
            found(Query::filter(Order::TOTAL.gt("10".parse::<Decimal>().expect("dec")))).await,
            [hex[0].clone(), hex[1].clone()]
        );
        assert_eq!(
            found(Query::filter(Order::PLACED_AT.gte(at(10)))).await,
            [hex[1].clone(), hex[2].clone()]
        );
        assert_eq!(
            found(Query::filter(Order::ID.is_in([hex[2].clone()]))).await,
            [hex[2].clone()]
        );
        let bad = repo
            .find(&Query::filter(Order::CUSTOMER.eq("not-an-object-id")))
            .await
            .expect_err("not an ObjectId");
        assert_eq!(bad.kind(), &persistence_core::ErrorKind::InvalidInput, "{bad}");

        // Insert: a new ObjectId id, stored as an ObjectId.
        let new = Order {
            id: String::new(),
            customer: bob.to_hex(),
            total: "3.30".parse().expect("dec"),
            amount: 1.5,
            placed_at: at(12),
            status: "open".into(),
            note: None,
        };
        let stored = repo.insert(&new).await.expect("insert");
        let oid = ObjectId::parse_str(&stored.id).expect("a hex ObjectId id");
        assert_eq!(Order { id: String::new(), ..stored.clone() }, new);
        let doc = raw
            .find_one(doc! { "_id": oid })
            .await
            .expect("raw find")
            .expect("stored under its ObjectId");
        assert_eq!(doc.get("customer"), Some(&Bson::ObjectId(bob)));
        assert!(matches!(doc.get("total"), Some(Bson::Decimal128(_))));
        assert_eq!(repo.get(&stored.id).await.expect("get"), Some(stored.clone()));

        // Update: the field the entity does not know stays.
        let mut changed = all[0].clone();
        changed.status = "paid".into();
        changed.total = "21.00".parse().expect("dec");
        assert_eq!(repo.update(&changed).await.expect("update"), changed);
        let doc = raw
            .find_one(doc! { "_id": ids[0] })
            .await
            .expect("raw find")
            .expect("doc");
        assert_eq!(doc.get_str("legacy"), Ok("theirs"));
        assert_eq!(doc.get_str("status"), Ok("paid"));
        let upserted = repo
            .upsert(&Order { note: Some("again".into()), ..changed.clone() })
            .await
            .expect("upsert");
        assert_eq!(upserted.note.as_deref(), Some("again"));
        let doc = raw.find_one(doc! { "_id": ids[0] }).await.expect("raw").expect("doc");
        assert_eq!(doc.get_str("legacy"), Ok("theirs"), "kept by upsert");

        // Delete by id and by filter.
        assert!(repo.delete(&stored.id).await.expect("delete"));
        assert_eq!(
            repo.delete_many(&Order::CUSTOMER.eq(bob.to_hex()))
                .await
                .expect("delete_many"),
            1
        );
        assert_eq!(
            raw.count_documents(doc! {}).await.expect("count"),
            2,
            "two of alice's orders are left"
        );
        assert_eq!(before, shape(&store).await, "the collection is unchanged");
    })
    .await;
}

/// A generated integer id has no meaning on MongoDB: a typed error.
#[tokio::test]
async fn a_generated_integer_id_is_refused() {
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
    #[entity(name = "counters")]
    struct Counter {
        #[entity(id, generated)]
        id: i64,
        n: i64,
    }
    with_store(|store| async move {
        let repo = store.repository::<Counter>();
        let err = repo
            .insert(&Counter { id: 0, n: 1 })
            .await
            .expect_err("no sequence");
        assert_eq!(
            err.kind(),
            &persistence_core::ErrorKind::Unsupported,
            "{err}"
        );
        let given = repo
            .insert(&Counter { id: 7, n: 1 })
            .await
            .expect("a given id");
        assert_eq!(given.id, 7);
    })
    .await;
}
