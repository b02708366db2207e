//! MongoDB-specific behavior of `MongoRepository` against the local server.
mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use bson::spec::BinarySubtype;
use bson::{Bson, doc};
use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use common::with_store;
use futures_util::{StreamExt as _, TryStreamExt as _};
use persistence_core::{
    ConflictKind, Entity, ErrorKind, Filter, MemoryRepository, Query, Repository, StringField,
};
use persistence_mongo::{MongoConfig, MongoRepository, MongoStore};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Address {
    city: String,
    zip: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(name = "accounts")]
struct Account {
    #[entity(id)]
    id: Uuid,
    #[entity(unique)]
    email: Option<String>,
    #[entity(version)]
    version: i64,
    balance: Decimal,
    opened: DateTime<Utc>,
    birthday: NaiveDate,
    tags: Vec<String>,
    address: Address,
    extra: BTreeMap<String, serde_json::Value>,
}

fn account(n: u128, email: Option<&str>) -> Account {
    Account {
        id: Uuid::from_u128(n),
        email: email.map(str::to_string),
        version: 0,
        balance: "12.50".parse().expect("decimal"),
        opened: Utc
            .with_ymd_and_hms(2024, 5, 6, 7, 8, 9)
            .single()
            .expect("ts"),
        birthday: NaiveDate::from_ymd_opt(1990, 1, 2).expect("date"),
        tags: vec!["a".into(), "b".into()],
        address: Address {
            city: "Oslo".into(),
            zip: None,
        },
        extra: BTreeMap::new(),
    }
}

#[tokio::test]
async fn stored_document_uses_native_bson_types() {
    with_store(|store| async move {
        let repo = store.repository::<Account>();
        repo.ensure_schema().await.expect("schema");
        let a = account(1, Some("a@x.io"));
        repo.insert(&a).await.expect("insert");
        let raw = repo
            .collection()
            .find_one(doc! {})
            .await
            .expect("raw find")
            .expect("doc");
        match raw.get("_id") {
            Some(Bson::Binary(b)) => assert_eq!(b.subtype, BinarySubtype::Uuid),
            other => panic!("_id stored as {other:?}"),
        }
        assert!(raw.get("id").is_none(), "the id lives in _id only");
        assert!(matches!(raw.get("balance"), Some(Bson::Decimal128(_))));
        assert!(matches!(raw.get("opened"), Some(Bson::DateTime(_))));
        assert!(matches!(raw.get("birthday"), Some(Bson::DateTime(_))));
        assert_eq!(raw.get("version"), Some(&Bson::Int64(1)));
        assert!(matches!(raw.get("tags"), Some(Bson::Array(_))));
        assert_eq!(
            raw.get_document("address")
                .expect("sub-document")
                .get("city"),
            Some(&Bson::String("Oslo".into()))
        );
        let back = repo.get(&a.id).await.expect("get").expect("found");
        assert_eq!(back.balance.to_string(), "12.50");
        assert_eq!(back.birthday, a.birthday);
    })
    .await;
}

#[tokio::test]
async fn operator_shaped_values_match_literally() {
    with_store(|store| async move {
        let repo = store.repository::<Account>();
        repo.ensure_schema().await.expect("schema");
        let evil = ["{\"$gt\": \"\"}", "$where", "$ne", ".*", "^a"];
        for (i, e) in evil.iter().enumerate() {
            repo.insert(&account(i as u128 + 1, Some(e)))
                .await
                .expect("insert");
        }
        repo.insert(&account(99, Some("plain")))
            .await
            .expect("insert");
        for (i, e) in evil.iter().enumerate() {
            let found = repo
                .find(&Query::filter(Account::EMAIL.eq(*e)))
                .await
                .expect("find");
            assert_eq!(found.len(), 1, "{e}");
            assert_eq!(found[0].id, Uuid::from_u128(i as u128 + 1));
            let prefixed = repo
                .count(&Account::EMAIL.starts_with(e))
                .await
                .expect("count");
            assert_eq!(prefixed, 1, "starts_with {e}");
        }
        // A nested path that tries to smuggle an operator is rejected before the server.
        let err = repo
            .count(&Filter::field("address.$where").eq("x"))
            .await
            .expect_err("operator path");
        assert_eq!(err.kind(), &ErrorKind::InvalidInput);
    })
    .await;
}

#[tokio::test]
async fn unique_index_ignores_nulls_and_names_itself() {
    with_store(|store| async move {
        let repo = store.repository::<Account>();
        repo.ensure_schema().await.expect("schema");
        repo.insert(&account(1, None)).await.expect("null 1");
        repo.insert(&account(2, None)).await.expect("null 2 does not conflict");
        repo.insert(&account(3, Some("x@y"))).await.expect("x");
        let err = repo
            .insert(&account(4, Some("x@y")))
            .await
            .expect_err("duplicate email");
        assert_eq!(
            err.kind(),
            &ErrorKind::Conflict(ConflictKind::Unique {
                constraint: Some("ux_accounts_email".into())
            }),
            "{err}"
        );
        let err = repo
            .insert(&account(3, Some("other")))
            .await
            .expect_err("duplicate id");
        assert_eq!(err.kind(), &ErrorKind::Conflict(ConflictKind::DuplicateId));
        let err = repo
            .insert_many(&[account(5, Some("five")), account(6, Some("x@y"))])
            .await
            .expect_err("batch duplicate");
        assert!(err.message().starts_with("row 1"), "{err}");
        assert!(
            matches!(
            err.kind(),
            ErrorKind::Conflict(ConflictKind::Unique { constraint: Some(c) }) if c == "ux_accounts_email"
        ),
            "{err:?}"
        );
    })
    .await;
}

#[tokio::test]
async fn stale_update_and_missing_update() {
    with_store(|store| async move {
        let repo = store.repository::<Account>();
        repo.ensure_schema().await.expect("schema");
        let a = repo.insert(&account(1, None)).await.expect("insert");
        let b = repo.update(&a).await.expect("update");
        assert_eq!(b.version, 2);
        // The same update again — what the driver's retryable write sends when
        // the first one landed but its answer was lost: it finds its own
        // result, so it is the success it was, not a false version conflict,
        // and it has no second effect.
        let again = repo
            .update(&a)
            .await
            .expect("a repeat of an applied update");
        assert_eq!(again.version, 2);
        assert_eq!(repo.get(&a.id).await.expect("get"), Some(b.clone()));
        // A stale update with other content is a real conflict.
        let mut stale = a.clone();
        stale.tags = vec!["other writer".into()];
        let err = repo.update(&stale).await.expect_err("stale");
        assert_eq!(
            err.kind(),
            &ErrorKind::Conflict(ConflictKind::Version {
                expected: Some(1),
                actual: Some(2)
            })
        );
        let err = repo.update(&account(7, None)).await.expect_err("missing");
        assert_eq!(err.kind(), &ErrorKind::NotFound);
    })
    .await;
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(name = "sessions")]
#[entity(index(user, created))]
struct Session {
    #[entity(id)]
    id: String,
    user: i64,
    #[entity(ttl = "30d")]
    created: DateTime<Utc>,
}

#[tokio::test]
async fn indexes_from_metadata_are_idempotent_and_checked() {
    with_store(|store| async move {
        let repo = store.repository::<Session>();
        repo.ensure_schema().await.expect("schema");
        repo.ensure_schema()
            .await
            .expect("schema again (idempotent)");
        let ixs: Vec<mongodb::IndexModel> = repo
            .collection()
            .list_indexes()
            .await
            .expect("list")
            .try_collect()
            .await
            .expect("collect");
        let by_name = |n: &str| {
            ixs.iter()
                .find(|m| m.options.as_ref().and_then(|o| o.name.as_deref()) == Some(n))
                .unwrap_or_else(|| panic!("index {n} missing in {ixs:?}"))
        };
        let ttl = by_name("ix_sessions_created");
        assert_eq!(
            ttl.options.as_ref().and_then(|o| o.expire_after),
            Some(Duration::from_secs(30 * 86_400))
        );
        assert_eq!(
            by_name("ix_sessions_user_created").keys,
            doc! { "user": 1, "created": 1 }
        );

        // Someone changes the TTL index by hand: ensure_schema refuses to guess.
        repo.collection()
            .drop_index("ix_sessions_created")
            .await
            .expect("drop");
        repo.collection()
            .create_index(
                mongodb::IndexModel::builder()
                    .keys(doc! { "created": 1 })
                    .options(
                        mongodb::options::IndexOptions::builder()
                            .name("ix_sessions_created".to_string())
                            .expire_after(Duration::from_secs(60))
                            .build(),
                    )
                    .build(),
            )
            .await
            .expect("create");
        let err = repo.ensure_schema().await.expect_err("changed index");
        assert_eq!(err.kind(), &ErrorKind::Config);
        assert!(err.message().contains("ix_sessions_created"), "{err}");
        assert!(err.message().contains("dropIndex"), "{err}");
        // The documented way out: drop it, ensure again.
        repo.collection()
            .drop_index("ix_sessions_created")
            .await
            .expect("drop");
        repo.ensure_schema().await.expect("recreated");
    })
    .await;
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(name = "docs")]
struct Doc {
    #[entity(id)]
    id: i64,
    body: serde_json::Value,
}

/// Nested paths follow the reference semantics: they resolve through
/// sub-documents only and never compare arrays element-wise (MongoDB would
/// traverse arrays); checked against MemoryRepository filter by filter.
#[tokio::test]
async fn nested_paths_match_the_reference_backend() {
    with_store(|store| async move {
        let repo = store.repository::<Doc>();
        repo.ensure_schema().await.expect("schema");
        let mem = MemoryRepository::<Doc>::new();
        let bodies = [
            serde_json::json!({"a": {"b": 1}}),
            serde_json::json!({"a": {"b": [1, 2]}}),
            serde_json::json!({"a": [{"b": 1}]}),
            serde_json::json!({"a": {"b": null}}),
            serde_json::json!({"a": {}}),
            serde_json::json!({"a": "x"}),
            serde_json::json!({"a": {"b": "1"}}),
            serde_json::json!({"a": {"b": 2.5, "0": 7}}),
            serde_json::json!({"a": [7]}),
            serde_json::json!([{"a": {"b": 1}}]),
            serde_json::json!(null),
            serde_json::json!({"a": {"b": {"c": 1}}}),
            serde_json::json!({"a": {"b": [null]}}),
        ];
        for (i, b) in bodies.iter().enumerate() {
            let d = Doc {
                id: i as i64,
                body: b.clone(),
            };
            repo.insert(&d).await.expect("insert");
            mem.insert(&d).await.expect("mem insert");
        }
        let f = |p: &str| Filter::field(p.to_string());
        let filters = vec![
            f("body.a.b").eq(1),
            f("body.a.b").ne(1),
            f("body.a.b").gt(0),
            f("body.a.b").lte(2),
            f("body.a.b").is_in([1.into(), "1".into()]),
            f("body.a.b").not_in([1.into()]),
            f("body.a.b").is_null(),
            f("body.a.b").is_not_null(),
            f("body.a").is_null(),
            f("body.a").eq("x"),
            f("body.a").has(7),
            f("body.a.b").has(1),
            f("body.a.0").eq(7),
            f("body.a.b").starts_with("1"),
            f("body.a.b").eq(1).not(),
            f("body").is_null(),
            f("body").is_not_null(),
        ];
        for filter in filters {
            let q = Query::filter(filter.clone());
            let want: Vec<i64> = mem
                .find(&q)
                .await
                .expect("mem")
                .iter()
                .map(|d| d.id)
                .collect();
            let got: Vec<i64> = repo
                .find(&q)
                .await
                .expect("mongo")
                .iter()
                .map(|d| d.id)
                .collect();
            assert_eq!(got, want, "{filter:?}");
        }
    })
    .await;
}

#[tokio::test]
async fn stream_pulls_from_the_cursor() {
    with_store(|store| async move {
        let repo = store.repository::<Session>();
        repo.ensure_schema().await.expect("schema");
        let now = Utc::now();
        let rows: Vec<Session> = (0..500)
            .map(|i| Session {
                id: format!("s{i:04}"),
                user: i % 7,
                created: now,
            })
            .collect();
        assert_eq!(repo.insert_many(&rows).await.expect("insert"), 500);
        let mut s = repo.stream(&Query::filter(Session::USER.eq(3)).sort(Session::ID.desc()));
        let first = s.next().await.expect("one").expect("ok");
        assert_eq!(first.user, 3);
        let rest: Vec<Session> = s.try_collect().await.expect("rest");
        assert_eq!(rest.len() + 1, rows.iter().filter(|r| r.user == 3).count());
        assert!(rest.windows(2).all(|w| w[0].id > w[1].id));
    })
    .await;
}

#[tokio::test]
async fn unreachable_server_is_unavailable_and_redacted() {
    let config = MongoConfig::new(
        "mongodb://bob:s3cret@127.0.0.1:1/?directConnection=true",
        "x",
    )
    .server_selection_timeout(Duration::from_millis(300));
    let store = MongoStore::connect(&config).await.expect("lazy connect");
    let err = store
        .repository::<Session>()
        .get(&"x".to_string())
        .await
        .expect_err("no server");
    assert_eq!(err.kind(), &ErrorKind::Unavailable);
    assert!(err.is_retryable());
    assert!(!err.to_string().contains("s3cret"));
    assert!(!format!("{config:?}").contains("s3cret"));
}

#[tokio::test]
async fn json_schema_validator_rejects_raw_invalid_inserts() {
    with_store(|store| async move {
        let repo = store.repository::<Account>();
        // The collection exists without a validator: ensure_schema adds it with collMod.
        store
            .database()
            .create_collection("accounts")
            .await
            .expect("raw create");
        repo.ensure_schema().await.expect("schema (collMod)");
        repo.ensure_schema().await.expect("schema again");
        repo.insert(&account(1, None)).await.expect("valid insert");
        // Around the repository: a wrong type and a missing required field.
        let bad = doc! { "_id": 5_i64, "email": 17, "version": 1_i64 };
        let err = repo
            .collection()
            .insert_one(bad)
            .await
            .expect_err("the server validates");
        assert_eq!(persistence_mongo::error::server_code(&err), Some(121));
        let mapped = persistence_mongo::error::map(err, Account::meta());
        assert_eq!(mapped.kind(), &ErrorKind::InvalidInput);
        assert!(mapped.message().contains("validation"), "{mapped}");
        let schema = persistence_mongo::schema::json_schema(Account::meta());
        let js = schema.get_document("$jsonSchema").expect("schema");
        let required = js.get_array("required").expect("required");
        assert!(required.contains(&Bson::from("_id")));
        assert!(required.contains(&Bson::from("balance")));
        assert!(
            !required.contains(&Bson::from("email")),
            "Option fields are not required"
        );
    })
    .await;
}

#[tokio::test]
async fn server_time_limit_maps_to_timeout() {
    with_store(|store| async move {
        let repo = store.repository::<Session>();
        repo.ensure_schema().await.expect("schema");
        let now = Utc::now();
        let rows: Vec<Session> = (0..5_000)
            .map(|i| Session {
                id: format!("session-{i:06}-{}", "x".repeat(64)),
                user: i,
                created: now,
            })
            .collect();
        repo.insert_many(&rows).await.expect("insert");
        let limited = repo.clone().with_max_time(Some(Duration::from_millis(1)));
        let q = Query::filter(Session::ID.contains("zz-not-there")).sort(Session::USER.desc());
        match limited.find(&q).await {
            Err(e) => {
                assert_eq!(e.kind(), &ErrorKind::Timeout, "{e}");
                assert!(e.is_retryable());
            }
            // Stand-in difference: the local server may finish (or not enforce
            // maxTimeMS) where MongoDB stops the query with code 50
            // MaxTimeMSExpired; the mapping to Timeout is exercised on MongoDB.
            Ok(rows) => {
                assert!(rows.is_empty());
                eprintln!("note: the server answered within maxTimeMS=1ms; no timeout to map");
            }
        }
        // Without the limit the same query succeeds.
        assert!(repo.find(&q).await.expect("unlimited").is_empty());
    })
    .await;
}

// ------------------------------------------------- nested $jsonSchema

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, persistence_core::Embedded)]
struct Geo {
    lat: f64,
    lon: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, persistence_core::Embedded)]
struct Postal {
    street: String,
    zip: Option<String>,
    geo: Geo,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, persistence_core::EntityEnum)]
enum ContactKind {
    Email,
    Phone,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, persistence_core::Embedded)]
struct Contact {
    kind: ContactKind,
    value: String,
    since: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(name = "customers")]
struct Customer {
    #[entity(id)]
    id: i64,
    address: Postal,
    billing: Option<Postal>,
    contacts: Vec<Contact>,
    scores: BTreeMap<String, i64>,
}

/// An older shape of `customers` (no `geo`): writing it through a
/// repository hits the validator generated for `Customer`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, persistence_core::Embedded)]
struct OldPostal {
    street: String,
    zip: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(name = "customers")]
struct OldCustomer {
    #[entity(id)]
    id: i64,
    address: OldPostal,
    billing: Option<OldPostal>,
    contacts: Vec<Contact>,
    scores: BTreeMap<String, i64>,
}

fn customer(id: i64) -> Customer {
    let since = Utc
        .with_ymd_and_hms(2024, 1, 2, 3, 4, 5)
        .single()
        .expect("ts");
    Customer {
        id,
        address: Postal {
            street: "Main 1".into(),
            zip: None,
            geo: Geo {
                lat: 59.9,
                lon: 10.7,
            },
        },
        billing: Some(Postal {
            street: "Box 7".into(),
            zip: Some("0150".into()),
            geo: Geo { lat: 1.0, lon: 2.0 },
        }),
        contacts: vec![Contact {
            kind: ContactKind::Email,
            value: "a@x.io".into(),
            since,
        }],
        scores: BTreeMap::from([("q1".to_string(), 3)]),
    }
}

#[tokio::test]
async fn json_schema_describes_nested_documents() {
    with_store(|store| async move {
        let repo = store.repository::<Customer>();
        repo.ensure_schema().await.expect("schema");
        // What the repository writes passes the nested validator.
        let mut c = customer(1);
        repo.insert(&c).await.expect("valid nested insert");
        c.id = 2;
        c.billing = None;
        c.contacts.clear();
        repo.insert(&c).await.expect("null billing, empty contacts");
        assert_eq!(repo.get(&2).await.expect("get"), Some(c));

        let schema = persistence_mongo::schema::json_schema(Customer::meta());
        let props = schema
            .get_document("$jsonSchema")
            .and_then(|s| s.get_document("properties"))
            .expect("properties");
        let address = props.get_document("address").expect("address");
        assert_eq!(address.get_str("bsonType"), Ok("object"));
        let required = address.get_array("required").expect("required");
        assert!(required.contains(&Bson::from("street")));
        assert!(required.contains(&Bson::from("geo")));
        assert!(!required.contains(&Bson::from("zip")), "Option: not required");
        let zip_types = address
            .get_document("properties")
            .and_then(|p| p.get_document("zip"))
            .and_then(|z| z.get_array("bsonType"))
            .expect("zip bsonType");
        assert!(zip_types.contains(&Bson::from("null")));
        let contact_items = props
            .get_document("contacts")
            .and_then(|c| c.get_document("items"))
            .expect("items");
        assert_eq!(contact_items.get_str("bsonType"), Ok("object"));

        // Around the repository: invalid nested documents are rejected by the server.
        let base = repo
            .collection()
            .find_one(doc! { "_id": 1_i64 })
            .await
            .expect("read")
            .expect("stored");
        let invalid = [
            ("address.geo missing", "address", Bson::from(doc! { "street": "x", "zip": Bson::Null })),
            (
                "address.geo.lat not a number",
                "address",
                Bson::from(doc! { "street": "x", "zip": Bson::Null, "geo": { "lat": "north", "lon": 1.0 } }),
            ),
            (
                "contact value not a string",
                "contacts",
                Bson::from(vec![Bson::from(doc! { "kind": "Email", "value": 5, "since": "2024-01-02T03:04:05Z" })]),
            ),
            ("billing not an object", "billing", Bson::from("nowhere")),
            ("score not an integer", "scores", Bson::from(doc! { "q1": "high" })),
        ];
        for (i, (what, key, value)) in invalid.into_iter().enumerate() {
            let mut bad = base.clone();
            bad.insert("_id", 100 + i as i64);
            bad.insert(key, value);
            let err = repo
                .collection()
                .insert_one(bad)
                .await
                .expect_err(what);
            assert_eq!(persistence_mongo::error::server_code(&err), Some(121), "{what}");
        }
        // The same document with a null billing is valid: Option allows null.
        let mut ok = base.clone();
        ok.insert("_id", 200_i64);
        ok.insert("billing", Bson::Null);
        repo.collection().insert_one(ok).await.expect("null billing");

        // Through a repository of an outdated shape: InvalidInput with the reason.
        let old = MongoRepository::<OldCustomer>::with_collection(
            store.database().collection("customers"),
        );
        let err = old
            .insert(&OldCustomer {
                id: 300,
                address: OldPostal {
                    street: "Old 1".into(),
                    zip: None,
                },
                billing: None,
                contacts: vec![],
                scores: BTreeMap::new(),
            })
            .await
            .expect_err("nested geo is required");
        assert_eq!(err.kind(), &ErrorKind::InvalidInput, "{err}");
        assert!(err.message().contains("schema validation"), "{err}");
        // The server's reason (errInfo) is in the message: geo is missing in address.
        assert!(err.message().contains("geo"), "{err}");
        assert_eq!(repo.count(&Filter::all()).await.expect("count"), 3);
    })
    .await;
}

// ---------------------------------------------------------- partial indexes

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(name = "members")]
struct Member {
    #[entity(id)]
    id: i64,
    email: String,
    active: bool,
    tier: i32,
}

fn member(id: i64, email: &str, active: bool, tier: i32) -> Member {
    Member {
        id,
        email: email.into(),
        active,
        tier,
    }
}

#[tokio::test]
async fn partial_indexes_are_ensured_and_checked() {
    use persistence_mongo::PartialIndex;
    with_store(|store| async move {
        let active_email = PartialIndex::new(
            "ux_members_active_email",
            ["email"],
            Member::ACTIVE.eq(true),
        )
        .unique();
        let repo = store
            .repository::<Member>()
            .with_partial_index(active_email.clone())
            .with_partial_index(PartialIndex::new(
                "ix_members_tier_high",
                ["tier", "email"],
                Member::TIER.gte(5),
            ));
        repo.ensure_schema().await.expect("schema");
        repo.ensure_schema()
            .await
            .expect("schema again (idempotent)");
        let ixs: Vec<mongodb::IndexModel> = repo
            .collection()
            .list_indexes()
            .await
            .expect("list")
            .try_collect()
            .await
            .expect("collect");
        let by_name = |n: &str| {
            ixs.iter()
                .find(|m| m.options.as_ref().and_then(|o| o.name.as_deref()) == Some(n))
                .unwrap_or_else(|| panic!("index {n} missing in {ixs:?}"))
                .clone()
        };
        let ux = by_name("ux_members_active_email");
        let opts = ux.options.clone().unwrap_or_default();
        assert_eq!(opts.unique, Some(true));
        assert!(opts.partial_filter_expression.is_some(), "{ux:?}");
        assert_eq!(
            by_name("ix_members_tier_high").keys,
            doc! { "tier": 1, "email": 1 }
        );

        // Unique among active members only.
        repo.insert(&member(1, "a@x.io", true, 1))
            .await
            .expect("first active");
        repo.insert(&member(2, "a@x.io", false, 1))
            .await
            .expect("inactive twin");
        repo.insert(&member(3, "a@x.io", false, 1))
            .await
            .expect("another inactive twin");
        let err = repo
            .insert(&member(4, "a@x.io", true, 1))
            .await
            .expect_err("second active");
        assert_eq!(
            err.kind(),
            &ErrorKind::Conflict(ConflictKind::Unique {
                constraint: Some("ux_members_active_email".into())
            }),
            "{err}"
        );

        // The declaration changes: a clear error, then the documented way out.
        let changed = store.repository::<Member>().with_partial_index(
            PartialIndex::new("ux_members_active_email", ["email"], Member::TIER.gte(2)).unique(),
        );
        let err = changed
            .ensure_schema()
            .await
            .expect_err("changed partial index");
        assert_eq!(err.kind(), &ErrorKind::Config);
        assert!(err.message().contains("ux_members_active_email"), "{err}");
        assert!(err.message().contains("dropIndex"), "{err}");
        changed
            .collection()
            .drop_index("ux_members_active_email")
            .await
            .expect("drop");
        changed.ensure_schema().await.expect("recreated");
        changed
            .ensure_schema()
            .await
            .expect("idempotent after the change");
        // Now unique among tier >= 2: two active tier-1 twins are fine.
        changed
            .insert(&member(5, "a@x.io", true, 1))
            .await
            .expect("tier 1");
        changed
            .insert(&member(6, "b@x.io", true, 3))
            .await
            .expect("tier 3");
        let err = changed
            .insert(&member(7, "b@x.io", false, 2))
            .await
            .expect_err("tier 2 twin");
        assert!(err.is_conflict(), "{err}");

        // Bad declarations are Config errors before anything reaches the server.
        let bad = store
            .repository::<Member>()
            .with_partial_index(PartialIndex::new(
                "ix_bad",
                ["nope"],
                Member::ACTIVE.eq(true),
            ));
        assert_eq!(
            bad.ensure_schema().await.expect_err("unknown field").kind(),
            &ErrorKind::Config
        );
        let bad = store
            .repository::<Member>()
            .with_partial_index(PartialIndex::new(
                "ix bad; drop",
                ["email"],
                Member::ACTIVE.eq(true),
            ));
        assert_eq!(
            bad.ensure_schema().await.expect_err("bad name").kind(),
            &ErrorKind::Config
        );
    })
    .await;
}

// ------------------------------------------------------- atomic insert_many

#[tokio::test]
async fn insert_many_is_all_or_nothing_with_transactions() {
    with_store(|store| async move {
        let repo = store.repository::<Member>();
        repo.ensure_schema().await.expect("schema");
        repo.insert(&member(5, "five@x.io", true, 1))
            .await
            .expect("seed");
        let batch: Vec<Member> = (1..=9)
            .map(|i| member(i, &format!("{i}@x.io"), true, 1))
            .collect();
        let err = repo
            .insert_many(&batch)
            .await
            .expect_err("duplicate id 5 in the middle");
        assert!(err.is_conflict(), "{err}");
        assert!(err.message().contains("row 4"), "{err}");
        if repo.supports_transactions().await.expect("hello") {
            assert!(repo.capabilities().atomic_batch);
            assert_eq!(
                repo.count(&Filter::all()).await.expect("count"),
                1,
                "nothing kept"
            );
        } else {
            // A standalone server: the documented ordered, non-atomic behavior.
            assert!(!repo.capabilities().atomic_batch);
            assert_eq!(repo.count(&Filter::all()).await.expect("count"), 5);
        }
        // Opting out of the transaction: ordered insert, the prefix stays and is reported.
        let plain = store.repository::<Member>().with_atomic_batches(false);
        assert!(!plain.capabilities().atomic_batch);
        repo.delete_many(&Filter::all()).await.expect("clear");
        repo.insert(&member(5, "five@x.io", true, 1))
            .await
            .expect("seed");
        let err = plain.insert_many(&batch).await.expect_err("duplicate");
        assert!(err.is_conflict(), "{err}");
        assert!(
            err.message().contains("the 4 rows before it were inserted"),
            "{err}"
        );
        assert_eq!(plain.count(&Filter::all()).await.expect("count"), 5);
        // A clean batch goes in whole either way.
        let more: Vec<Member> = (10..20)
            .map(|i| member(i, &format!("{i}@x.io"), false, 2))
            .collect();
        assert_eq!(repo.insert_many(&more).await.expect("clean batch"), 10);
        assert_eq!(repo.count(&Filter::all()).await.expect("count"), 15);
    })
    .await;
}

#[tokio::test]
async fn validation_level_and_action_are_configurable() {
    use persistence_mongo::{Validation, ValidationAction, ValidationLevel};
    with_store(|store| async move {
        let options = |store: MongoStore| async move {
            let spec = store
                .database()
                .list_collections()
                .filter(doc! { "name": "customers" })
                .await
                .expect("list")
                .try_next()
                .await
                .expect("next")
                .expect("collection");
            (
                spec.options.validation_level.map(|l| format!("{l:?}")),
                spec.options.validation_action.map(|a| format!("{a:?}")),
            )
        };
        let strict = store.repository::<Customer>();
        strict.ensure_schema().await.expect("schema");
        assert_eq!(
            options(store.clone()).await,
            (Some("Strict".into()), Some("Error".into()))
        );
        // collMod switches an existing collection to moderate + warn.
        let lenient = store
            .repository::<Customer>()
            .with_validation(Some(Validation {
                level: ValidationLevel::Moderate,
                action: ValidationAction::Warn,
            }));
        lenient.ensure_schema().await.expect("collMod");
        assert_eq!(
            options(store.clone()).await,
            (Some("Moderate".into()), Some("Warn".into()))
        );
        // With action warn, an invalid raw document is accepted (and logged by the server).
        lenient
            .collection()
            .insert_one(doc! { "_id": 1_i64, "address": "not an object" })
            .await
            .expect("warn only");
        // And back to strict/error: the same write is rejected again.
        strict.ensure_schema().await.expect("collMod back");
        let err = strict
            .collection()
            .insert_one(doc! { "_id": 2_i64, "address": "not an object" })
            .await
            .expect_err("error action");
        assert_eq!(persistence_mongo::error::server_code(&err), Some(121));
    })
    .await;
}

/// Issue 12, item 5: every store writes with `{ w: majority, j: true }`
/// unless told otherwise, the collection handles inherit it, the test
/// server accepts it, and an explicit opt-out (config or URL) is honoured.
#[tokio::test]
async fn writes_are_durable_by_default_and_the_concern_can_be_chosen() {
    use mongodb::options::{Acknowledgment, ReadConcern, ReadConcernLevel, WriteConcern};
    let Some(db) = persistence_testing::TestMongo::database().await else {
        return;
    };
    let store = db.store().await.expect("connect");
    let wc = store.write_concern().expect("a write concern is set");
    assert_eq!(wc.w, Some(Acknowledgment::Majority));
    assert_eq!(wc.journal, Some(true));
    assert_eq!(
        store.write_concern(),
        Some(&persistence_mongo::config::durable_write_concern())
    );
    let coll = store.database().collection::<bson::Document>("accounts");
    assert_eq!(coll.write_concern(), Some(wc), "collections inherit it");
    // The server accepts it: a write, an update and a delete under it.
    let repo = store.repository::<Account>();
    repo.ensure_schema().await.expect("schema");
    let saved = repo
        .insert(&account(1, Some("d@x.io")))
        .await
        .expect("insert");
    repo.update(&saved).await.expect("update");
    assert!(repo.delete(&saved.id).await.expect("delete"));

    // An explicit opt-out, and a read concern.
    let fast = MongoStore::connect(
        &db.config()
            .write_concern(
                WriteConcern::builder()
                    .w(Acknowledgment::Nodes(1))
                    .journal(false)
                    .build(),
            )
            .read_concern(ReadConcern::majority()),
    )
    .await
    .expect("connect");
    let wc = fast.write_concern().expect("set");
    assert_eq!(
        (wc.w.clone(), wc.journal),
        (Some(Acknowledgment::Nodes(1)), Some(false))
    );
    assert_eq!(
        fast.read_concern().map(|r| r.level.clone()),
        Some(ReadConcernLevel::Majority)
    );
    let repo = fast.repository::<Account>();
    repo.insert(&account(2, Some("e@x.io")))
        .await
        .expect("insert under w:1");
    assert!(
        repo.get(&Uuid::from_u128(2))
            .await
            .expect("majority read")
            .is_some()
    );

    // The URL's own concern wins over the default, not over the configuration.
    let sep = if db.url().contains('?') { '&' } else { '?' };
    let url = format!("{}{sep}w=1", db.url());
    let from_url = MongoStore::connect(&MongoConfig::new(url, db.name()))
        .await
        .expect("connect");
    assert_eq!(
        from_url.write_concern().and_then(|w| w.w.clone()),
        Some(Acknowledgment::Nodes(1))
    );
    db.cleanup().await.expect("cleanup");
}
