//! Tenants: validated names, isolation, provisioning, removal.
mod common;

use common::with_store;
use persistence_core::{Entity, ErrorKind, Filter, Repository};
use persistence_mongo::tenant::validate_tenant;
use persistence_mongo::{TenantMode, Tenants};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(name = "items")]
struct Item {
    #[entity(id)]
    id: i64,
    #[entity(unique)]
    sku: String,
}

#[test]
fn tenant_names_are_validated() {
    for ok in ["acme", "a1", "tenant_7"] {
        validate_tenant(ok).expect(ok);
    }
    for bad in [
        "",
        "Acme",
        "1abc",
        "a-b",
        "a.b",
        "a$b",
        "admin",
        "local",
        "config",
        "x\0",
        &"a".repeat(33),
    ] {
        let err = validate_tenant(bad).expect_err(bad);
        assert_eq!(err.kind(), &ErrorKind::InvalidInput, "{bad}");
    }
}

#[tokio::test]
async fn database_per_tenant_isolates_and_provisions() {
    with_store(|store| async move {
        let prefix = format!("{}_", store.database().name());
        let tenants =
            Tenants::new(store.clone(), TenantMode::DatabasePerTenant { prefix }).expect("tenants");
        let a = tenants.tenant("acme").expect("acme");
        let b = tenants.tenant("globex").expect("globex");
        let ra = a.provision::<Item>().await.expect("provision a");
        let rb = b.provision::<Item>().await.expect("provision b");
        ra.insert(&Item {
            id: 1,
            sku: "x".into(),
        })
        .await
        .expect("a insert");
        rb.insert(&Item {
            id: 1,
            sku: "x".into(),
        })
        .await
        .expect("same id and sku in b");
        assert!(
            ra.insert(&Item {
                id: 2,
                sku: "x".into()
            })
            .await
            .expect_err("unique per tenant")
            .is_conflict()
        );
        assert_eq!(rb.count(&Filter::all()).await.expect("count"), 1);
        assert!(tenants.tenant("admin").is_err());
        a.remove().await.expect("remove a");
        b.remove().await.expect("remove b");
    })
    .await;
}

#[tokio::test]
async fn collection_prefix_tenants() {
    with_store(|store| async move {
        let tenants = Tenants::new(store.clone(), TenantMode::CollectionPrefix).expect("tenants");
        let a = tenants.tenant("acme").expect("acme");
        let b = tenants.tenant("globex").expect("globex");
        assert_eq!(a.collection_name::<Item>(), "acme__items");
        let ra = a.provision::<Item>().await.expect("provision a");
        let rb = b.provision::<Item>().await.expect("provision b");
        ra.insert(&Item {
            id: 1,
            sku: "x".into(),
        })
        .await
        .expect("a");
        rb.insert(&Item {
            id: 1,
            sku: "x".into(),
        })
        .await
        .expect("b");
        a.remove().await.expect("remove a");
        assert_eq!(
            rb.count(&Filter::all()).await.expect("count"),
            1,
            "b untouched"
        );
        let names = store
            .database()
            .list_collection_names()
            .await
            .expect("names");
        assert!(!names.iter().any(|n| n.starts_with("acme__")), "{names:?}");
    })
    .await;
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(name = "notes", index(body))]
struct Note {
    #[entity(id)]
    id: i64,
    body: String,
    #[entity(unique)]
    slug: Option<String>,
}

/// 16 concurrent provisionings of one tenant (two entities each, in either
/// order): every one succeeds, and the tenant has each collection once.
async fn sixteen_concurrent(tenants: &Tenants) -> persistence_mongo::tenant::TenantScope {
    let scope = tenants.tenant("acme").expect("acme");
    let mut tasks = Vec::new();
    for k in 0..16 {
        let scope = scope.clone();
        tasks.push(tokio::spawn(async move {
            if k % 2 == 0 {
                scope.provision::<Item>().await.map(|_| ())?;
                scope.provision::<Note>().await.map(|_| ())
            } else {
                scope.provision::<Note>().await.map(|_| ())?;
                scope.provision::<Item>().await.map(|_| ())
            }
        }));
    }
    let mut errors = Vec::new();
    for t in tasks {
        if let Err(e) = t.await.expect("task") {
            errors.push(e.to_string());
        }
    }
    assert!(errors.is_empty(), "{} errors: {errors:?}", errors.len());
    scope
}

async fn collections(scope: &persistence_mongo::tenant::TenantScope) -> Vec<String> {
    let mut names = scope
        .store()
        .database()
        .list_collection_names()
        .await
        .expect("names");
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_provisioning_database_per_tenant() {
    with_store(|store| async move {
        let prefix = format!("{}_", store.database().name());
        let tenants =
            Tenants::new(store.clone(), TenantMode::DatabasePerTenant { prefix }).expect("tenants");
        let scope = sixteen_concurrent(&tenants).await;
        let outcome = async {
            assert_eq!(
                collections(&scope).await,
                vec!["items", "notes", "persistence_managed"]
            );
            let notes = scope.repository::<Note>();
            let indexes = notes_indexes(&scope, "notes").await;
            assert_eq!(indexes.len(), 3, "{indexes:?}");
            // A repeated provisioning is a no-op.
            scope.provision::<Note>().await.expect("again");
            assert_eq!(notes_indexes(&scope, "notes").await, indexes);
            notes
                .insert(&Note {
                    id: 1,
                    body: "b".into(),
                    slug: None,
                })
                .await
                .expect("insert");
        };
        outcome.await;
        scope.remove().await.expect("remove");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_provisioning_collection_prefix() {
    with_store(|store| async move {
        let tenants = Tenants::new(store.clone(), TenantMode::CollectionPrefix).expect("tenants");
        let scope = sixteen_concurrent(&tenants).await;
        assert_eq!(
            collections(&scope).await,
            vec!["acme__items", "acme__notes", "persistence_managed"]
        );
        let indexes = notes_indexes(&scope, "acme__notes").await;
        assert_eq!(indexes.len(), 3, "{indexes:?}");
        scope.provision::<Note>().await.expect("again");
        assert_eq!(notes_indexes(&scope, "acme__notes").await, indexes);
        scope.remove().await.expect("remove");
    })
    .await;
}

/// Index names of `coll` (sorted).
async fn notes_indexes(scope: &persistence_mongo::tenant::TenantScope, coll: &str) -> Vec<String> {
    let mut names = scope
        .store()
        .database()
        .collection::<bson::Document>(coll)
        .list_index_names()
        .await
        .expect("indexes");
    names.sort();
    names
}
