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
