//! Introspection → code on MongoDB (issue 16, item 5): collections another
//! program made with the raw driver — ObjectId ids and references,
//! decimal128 amounts, BSON dates, a camelCase key, a field some documents
//! lack, a `$jsonSchema` validator on one collection, unique and compound
//! indexes — are sampled and printed as entities. The output must equal the
//! checked-in `fixtures/shop_mongo.rs` (`PERSISTENCE_BLESS=1` rewrites it),
//! which this test compiles (`#[path]` below) and uses to read the
//! documents back, insert (a new ObjectId) and delete; `verify` of the
//! generated entities finds no error.

#[path = "fixtures/shop_mongo.rs"]
mod shop;

use bson::oid::ObjectId;
use bson::{Bson, doc};
use chrono::{DateTime, Utc};
use persistence_cli::{Cli, Exit};
use persistence_core::{Query, Repository};
use persistence_mongo::MongoStore;
use persistence_testing::TestMongo;
use rust_decimal::Decimal;
use shop::{Customer, Order};

const FIXTURE: &str = "tests/fixtures/shop_mongo.rs";
const ADA: &str = "65f000000000000000000001";
const BOB: &str = "65f000000000000000000002";
const O1: &str = "65f0000000000000000000a1";
const O2: &str = "65f0000000000000000000a2";

fn oid(s: &str) -> ObjectId {
    ObjectId::parse_str(s).expect("oid")
}

fn at(s: &str) -> DateTime<Utc> {
    s.parse().expect("timestamp")
}

fn bdate(s: &str) -> bson::DateTime {
    bson::DateTime::from_chrono(at(s))
}

fn dec128(s: &str) -> Bson {
    Bson::Decimal128(s.parse().expect("decimal128"))
}

fn dec(s: &str) -> Decimal {
    s.parse().expect("decimal")
}

/// The other program's collections and documents.
async fn theirs(store: &MongoStore) {
    let db = store.database();
    db.run_command(doc! {
        "create": "orders",
        "validator": { "$jsonSchema": {
            "bsonType": "object",
            "required": ["_id", "customer", "total", "placedAt", "status"],
            "properties": {
                "_id": { "bsonType": "objectId" },
                "customer": { "bsonType": "objectId" },
                "total": { "bsonType": "decimal" },
                "placedAt": { "bsonType": "date" },
                "status": { "bsonType": "string" },
                "note": { "bsonType": ["string", "null"] },
                "items": { "bsonType": "array", "items": { "bsonType": "string" } },
            },
        } },
    })
    .await
    .expect("create orders");
    let customers = db.collection::<bson::Document>("customers");
    customers
        .insert_many([
            doc! { "_id": oid(ADA), "email": "ada@example.com", "name": "Ada", "vip": true,
            "visits": 3_i32, "since": bdate("2024-05-01T10:00:00Z"),
            "address": { "city": "London" } },
            doc! { "_id": oid(BOB), "email": "bob@example.com", "name": "Bob", "vip": false,
            "visits": 12_000_000_000_i64, "since": bdate("2024-05-02T11:30:00Z") },
        ])
        .await
        .expect("insert customers");
    db.collection::<bson::Document>("orders")
        .insert_many([
            doc! { "_id": oid(O1), "customer": oid(ADA), "total": dec128("99.90"),
            "placedAt": bdate("2024-05-03T09:00:00Z"), "status": "paid",
            "note": "gift wrap", "items": ["book", "pen"] },
            doc! { "_id": oid(O2), "customer": oid(BOB), "total": dec128("7.25"),
            "placedAt": bdate("2024-05-05T09:00:00Z"), "status": "pending",
            "note": Bson::Null, "items": [] },
        ])
        .await
        .expect("insert orders");
    db.run_command(doc! { "createIndexes": "customers", "indexes": [
        { "key": { "email": 1 }, "name": "email_1", "unique": true },
    ] })
    .await
    .expect("customer indexes");
    db.run_command(doc! { "createIndexes": "orders", "indexes": [
        { "key": { "customer": 1 }, "name": "customer_1" },
        { "key": { "status": 1, "placedAt": -1 }, "name": "status_1_placedAt_-1" },
    ] })
    .await
    .expect("order indexes");
}

#[tokio::test]
async fn sampled_collections_become_compiling_entities() {
    let Some(db) = TestMongo::database().await else {
        return;
    };
    let store = db.store().await.expect("connect");
    theirs(&store).await;
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_persistence-cli"))
        .args(["introspect", "--url", db.url(), "--database", db.name()])
        .output()
        .expect("run persistence-cli");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "exit {:?}: {stderr}",
        output.status
    );
    let generated = String::from_utf8(output.stdout).expect("utf-8");
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(FIXTURE);
    if std::env::var_os("PERSISTENCE_BLESS").is_some() {
        std::fs::write(&path, &generated).expect("write fixture");
    }
    let fixture = std::fs::read_to_string(&path).expect("fixture");
    assert!(
        generated == fixture,
        "introspect output differs from {FIXTURE} (PERSISTENCE_BLESS=1 rewrites it):\n{generated}"
    );

    // The generated entities read the other program's documents.
    let customers = store.repository::<Customer>();
    let all = customers
        .find(&Query::all().sort(Customer::EMAIL.asc()))
        .await
        .expect("read customers");
    assert_eq!(
        all,
        [
            Customer {
                id: ADA.into(),
                email: "ada@example.com".into(),
                name: "Ada".into(),
                vip: true,
                visits: 3,
                since: at("2024-05-01T10:00:00Z"),
                address: Some(serde_json::json!({ "city": "London" })),
            },
            Customer {
                id: BOB.into(),
                email: "bob@example.com".into(),
                name: "Bob".into(),
                vip: false,
                visits: 12_000_000_000,
                since: at("2024-05-02T11:30:00Z"),
                address: None,
            },
        ]
    );
    let orders = store.repository::<Order>();
    let ada = orders
        .find(&Query::filter(Order::CUSTOMER.eq(ADA.to_string())))
        .await
        .expect("filter on an ObjectId reference");
    assert_eq!(ada.len(), 1);
    assert_eq!(
        (ada[0].id.as_str(), ada[0].total, ada[0].placed_at),
        (O1, dec("99.90"), at("2024-05-03T09:00:00Z"))
    );
    assert_eq!(
        ada[0].items,
        Some(vec!["book".to_string(), "pen".to_string()])
    );
    let new = orders
        .insert(&Order {
            id: String::new(),
            customer: BOB.into(),
            total: dec("3.50"),
            placed_at: at("2024-05-06T09:00:00Z"),
            status: "pending".into(),
            note: None,
            // Optional, but the validator refuses null (the fixture says so).
            items: Some(vec![]),
        })
        .await
        .expect("insert");
    assert_eq!(new.id.len(), 24, "a new ObjectId: {}", new.id);
    let stored = store
        .database()
        .collection::<bson::Document>("orders")
        .find_one(doc! { "_id": oid(&new.id) })
        .await
        .expect("raw read")
        .expect("stored");
    assert!(
        matches!(stored.get("customer"), Some(Bson::ObjectId(_))),
        "{stored}"
    );
    assert!(
        matches!(stored.get("total"), Some(Bson::Decimal128(_))),
        "{stored}"
    );
    orders.delete(&new.id).await.expect("delete");
    assert_eq!(
        orders
            .count(&persistence_core::Filter::all())
            .await
            .expect("count"),
        2
    );

    // `verify` with the generated entities reports what the library would
    // do differently, one line each: its uniques are partial ("the field
    // is set"), it wants a validator, and its validator allows null for an
    // optional field (the other program's refuses it).
    let mut out = Vec::new();
    let result = Cli::new()
        .entity::<Customer>()
        .entity::<Order>()
        .run(
            &[
                "verify".into(),
                "--url".into(),
                db.url().into(),
                "--database".into(),
                db.name().into(),
            ],
            &mut out,
        )
        .await;
    assert!(
        matches!(&result, Err(Exit::Failed(m)) if m.contains("(3 error(s) or warning(s))")),
        "{result:?}"
    );
    let ns = format!("{}.", db.name());
    let lines: Vec<String> = String::from_utf8(out)
        .expect("utf-8")
        .replace(&ns, "")
        .lines()
        .filter(|l| !l.contains("cannot verify"))
        .map(str::to_string)
        .collect();
    assert_eq!(
        lines,
        [
            "error: unique differs: customers ux_customers_email: expected { \"email\": 1 } unique \
             partial { \"email\": { \"$type\": \"string\" } }, found { \"email\": 1 } unique",
            "warning: missing validator: customers validator: expected the $jsonSchema generated \
             from the entity, found none",
            "error: validator differs: orders validator: expected the $jsonSchema generated from the \
             entity, found `$jsonSchema.properties.items.bsonType` = \"array\" (expected [\"array\", \"null\"])",
        ]
    );
    store.close().await;
    if let Err(e) = db.cleanup().await {
        eprintln!("cleanup: {e}");
    }
}
