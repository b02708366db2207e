//! Reserved names and ownership (issue 13, problems 1 and 2): the library
//! drops and alters only the databases and collections it created.
mod common;

use bson::{Document, doc};
use common::with_store;
use futures_util::TryStreamExt as _;
use persistence_core::names::SchemaPolicy;
use persistence_core::{Entity, ErrorKind, Repository};
use persistence_mongo::{MongoConfig, MongoStore, TenantMode, Tenants};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(name = "customers")]
struct Customer {
    #[entity(id)]
    id: i64,
    #[entity(unique)]
    email: String,
    #[entity(index)]
    city: String,
}

fn customer(id: i64) -> Customer {
    Customer {
        id,
        email: format!("c{id}@x.io"),
        city: "Lyon".into(),
    }
}

async fn validator(store: &MongoStore, coll: &str) -> Option<Document> {
    let specs: Vec<_> = store
        .database()
        .list_collections()
        .filter(doc! { "name": coll })
        .await
        .expect("list")
        .try_collect()
        .await
        .expect("collect");
    specs
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("{coll} exists"))
        .options
        .validator
}

async fn index_names(store: &MongoStore, coll: &str) -> Vec<String> {
    let mut names = store
        .database()
        .collection::<Document>(coll)
        .list_index_names()
        .await
        .expect("indexes");
    names.sort();
    names
}

async fn database_exists(store: &MongoStore) -> bool {
    let name = store.database().name().to_string();
    store
        .client()
        .list_database_names()
        .await
        .expect("databases")
        .contains(&name)
}

#[tokio::test]
async fn reserved_and_hostile_database_names_are_refused() {
    for (name, words) in [
        ("admin", "\"admin\" is reserved"),
        ("local", "is reserved"),
        ("config", "is reserved"),
        ("Admin", "is reserved"),
        ("public", "is reserved"),
        ("x\"; db.dropDatabase(); //", "is not a valid database name"),
        ("a.b", "is not a valid database name"),
    ] {
        let config = MongoConfig::new("mongodb://127.0.0.1:1", name);
        let err = config.validate().expect_err(name);
        assert_eq!(err.kind(), &ErrorKind::Config, "{err}");
        assert!(
            err.message().starts_with("MongoConfig.database: ") && err.message().contains(words),
            "{name}: {err}"
        );
        let err = MongoStore::connect(&config).await.expect_err(name);
        assert_eq!(err.kind(), &ErrorKind::Config, "{err}");
    }
}

#[tokio::test]
async fn drop_database_refuses_a_database_made_by_another_application() {
    with_store(|store| async move {
        let theirs = store.database().collection::<Document>("theirs");
        theirs
            .insert_one(doc! { "_id": 1, "v": "keep" })
            .await
            .expect("their write");
        let err = store.drop_database().await.expect_err("not ours");
        assert_eq!(err.kind(), &ErrorKind::Config, "{err}");
        assert!(
            err.message().contains("was not created by persistence"),
            "{err}"
        );
        // Our collection in their database does not make the database ours.
        store
            .repository::<Customer>()
            .ensure_schema()
            .await
            .expect("ensure");
        store.drop_database().await.expect_err("still not ours");
        assert_eq!(theirs.count_documents(doc! {}).await.expect("count"), 1);
    })
    .await;
}

#[tokio::test]
async fn drop_database_drops_a_database_the_library_created() {
    with_store(|store| async move {
        // Nothing there yet: nothing to drop, not an error.
        store.drop_database().await.expect("empty");
        let repo = store.repository::<Customer>();
        repo.ensure_schema().await.expect("ensure");
        repo.insert(&customer(1)).await.expect("insert");
        assert!(database_exists(&store).await);
        store.drop_database().await.expect("drop ours");
        assert!(!database_exists(&store).await);
    })
    .await;
}

#[tokio::test]
async fn ensure_schema_leaves_another_applications_collection_alone() {
    with_store(|store| async move {
        let db = store.database();
        // Another application's collection: no validator, its own documents.
        db.create_collection("customers").await.expect("create");
        let theirs = db.collection::<Document>("customers");
        theirs
            .insert_one(doc! { "_id": 100, "email": "legacy@x.io", "city": 7 })
            .await
            .expect("their insert");
        let before = index_names(&store, "customers").await;

        let repo = store.repository::<Customer>();
        repo.ensure_schema().await.expect("verify only");
        repo.ensure_schema().await.expect("again");
        assert_eq!(validator(&store, "customers").await, None, "no validator");
        assert_eq!(index_names(&store, "customers").await, before, "no index");
        // The other application's own update, off the entity's shape, still works.
        theirs
            .update_one(doc! { "_id": 100 }, doc! { "$unset": { "email": "" } })
            .await
            .expect("their update");
        repo.insert(&customer(1)).await.expect("our insert");

        // Opting in takes it over: validator and indexes.
        theirs
            .delete_one(doc! { "_id": 100 })
            .await
            .expect("their cleanup");
        let adopted = store
            .repository::<Customer>()
            .with_schema_policy(SchemaPolicy::Adopt);
        adopted.ensure_schema().await.expect("adopt");
        assert!(validator(&store, "customers").await.is_some());
        let names = index_names(&store, "customers").await;
        assert!(
            names.contains(&"ux_customers_email".to_string()),
            "{names:?}"
        );
    })
    .await;
}

#[tokio::test]
async fn library_collections_keep_validators_and_indexes() {
    with_store(|store| async move {
        let repo = store.repository::<Customer>();
        repo.ensure_schema().await.expect("create");
        repo.ensure_schema().await.expect("idempotent");
        assert!(validator(&store, "customers").await.is_some());
        assert_eq!(
            index_names(&store, "customers").await,
            vec![
                "_id_".to_string(),
                "ix_customers_city".to_string(),
                "ux_customers_email".to_string()
            ]
        );
        // The validator is enforced on raw writes.
        let raw = store.database().collection::<Document>("customers");
        raw.insert_one(doc! { "_id": 9, "email": 5 })
            .await
            .expect_err("validator");
        // Verify-only creates nothing.
        let other = store
            .with_database(&format!("{}_v", store.database().name()))
            .expect("name");
        let err = other
            .repository::<Customer>()
            .with_schema_policy(SchemaPolicy::VerifyOnly)
            .ensure_schema()
            .await
            .expect_err("missing");
        assert_eq!(err.kind(), &ErrorKind::Config, "{err}");
        assert!(!database_exists(&other).await);
    })
    .await;
}

#[tokio::test]
async fn tenant_removal_drops_only_marked_collections() {
    with_store(|store| async move {
        let tenants = Tenants::new(store.clone(), TenantMode::CollectionPrefix).expect("tenants");
        let acme = tenants.tenant("acme").expect("acme");
        acme.provision::<Customer>().await.expect("provision");
        // Someone else's collection under the same prefix.
        store
            .database()
            .collection::<Document>("acme__ledger")
            .insert_one(doc! { "_id": 1 })
            .await
            .expect("their write");
        let err = acme.remove().await.expect_err("not all ours");
        assert_eq!(err.kind(), &ErrorKind::Config, "{err}");
        assert!(err.message().contains("acme__ledger"), "{err}");
        let mut names = store
            .database()
            .list_collection_names()
            .await
            .expect("names");
        names.sort();
        assert!(
            names.contains(&"acme__customers".to_string())
                && names.contains(&"acme__ledger".to_string()),
            "nothing dropped: {names:?}"
        );
        // Without the foreign collection the tenant goes.
        store
            .database()
            .collection::<Document>("acme__ledger")
            .drop()
            .await
            .expect("their drop");
        acme.remove().await.expect("remove");
        let names = store
            .database()
            .list_collection_names()
            .await
            .expect("names");
        assert!(!names.iter().any(|n| n.starts_with("acme__")), "{names:?}");
        // Reserved tenant names never become databases.
        let per_db = Tenants::new(
            store.clone(),
            TenantMode::DatabasePerTenant {
                prefix: String::new(),
            },
        )
        .expect("tenants");
        for reserved in ["admin", "local", "config", "public"] {
            assert!(per_db.tenant(reserved).is_err(), "{reserved}");
        }
    })
    .await;
}
