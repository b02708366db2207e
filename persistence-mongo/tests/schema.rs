//! MongoDB schema management against the local server: indexes from
//! metadata (unique indexes skip nulls, TTL, changed indexes refused),
//! declared partial indexes, and the generated `$jsonSchema` validator
//! (nested documents, level and action).
mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use bson::{Bson, doc};
use chrono::{DateTime, TimeZone, Utc};
use common::fixtures::{Account, Member, Session, account, member};
use common::with_store;
use futures_util::TryStreamExt as _;
use persistence_core::{ConflictKind, Entity, ErrorKind, Filter, Repository};
use persistence_mongo::{MongoRepository, MongoStore};
use serde::{Deserialize, Serialize};

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

#[tokio::test]
async fn json_schema_validator_rejects_raw_invalid_inserts() {
    with_store(|store| async move {
        // The collection exists without a validator and was not created by
        // the library: only an explicit opt-in (Adopt) lets ensure_schema
        // add the validator with collMod.
        let repo = store
            .repository::<Account>()
            .with_schema_policy(persistence_core::names::SchemaPolicy::Adopt);
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
