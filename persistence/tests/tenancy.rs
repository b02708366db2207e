//! Tenants through the manager and the YAML (issue 20, item 5):
//! `databases.<name>.tenancy: { strategy: schema | row | database, .. }`,
//! `Persistence::tenant_repo` / `provision_tenant`, and the per-tenant
//! activity the dashboard shows (`Persistence::tenant_activity`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use persistence::config::{ConfigLoader, PersistenceConfig};
use persistence::{Entity, ErrorKind, Filter, Persistence, Query, Repository};
use serde::{Deserialize, Serialize};

/// A row-tenancy entity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(name = "tn_tickets")]
struct Ticket {
    #[entity(id)]
    id: i64,
    #[entity(tenant)]
    tenant: String,
    title: String,
}

/// A plain entity, isolated by schema / database per tenant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(name = "tn_notes")]
struct Note {
    #[entity(id)]
    id: i64,
    #[entity(unique)]
    title: String,
    #[entity(version)]
    version: i64,
}

#[cfg(any(feature = "postgres", feature = "mongo"))]
fn note(id: i64, title: &str) -> Note {
    Note {
        id,
        title: title.to_string(),
        version: 0,
    }
}

fn config(yaml: &str) -> persistence::Result<PersistenceConfig> {
    ConfigLoader::new()
        .text("persistence.yaml", yaml)
        .env(Vec::new())
        .load()
}

fn manager(yaml: &str) -> Persistence {
    Persistence::new(config(yaml).expect("config")).expect("manager")
}

#[test]
fn a_strategy_the_backend_cannot_do_is_a_config_error_naming_the_key() {
    for (yaml, words) in [
        (
            "databases:\n  main: { kind: memory, tenancy: { strategy: schema } }\n",
            "databases.main.tenancy.strategy: `schema` needs postgres or mongo, not kind memory",
        ),
        (
            "databases:\n  main: { kind: memory, tenancy: { strategy: database } }\n",
            "`database` needs mongo",
        ),
        (
            "databases:\n  main: { kind: memory, tenancy: { strategy: row, auto_provision: true } }\n",
            "auto_provision: strategy `row` has nothing to provision",
        ),
        (
            "databases:\n  main: { kind: memory, tenancy: { strategy: row, prefix: x_ } }\n",
            "databases.main.tenancy.prefix applies to strategy `database` only",
        ),
        (
            "databases:\n  main: { kind: memory, tenancy: { strategy: row, tracked: 0 } }\n",
            "tracked must be at least 1",
        ),
    ] {
        let err = config(yaml).and_then(Persistence::new).expect_err(yaml);
        assert_eq!(err.kind(), &ErrorKind::Config, "{yaml}");
        assert!(err.to_string().contains(words), "{yaml}: {err}");
    }
    let err = config("databases:\n  main: { kind: memory, tenancy: { strategy: sharded } }\n")
        .expect_err("unknown strategy");
    // Config values are not echoed (they may be secrets); key and choices are.
    let msg = err.to_string();
    assert!(
        msg.contains("databases.main.tenancy.strategy") && msg.contains("schema, row, database"),
        "{msg}"
    );
}

#[tokio::test]
async fn without_a_tenancy_section_tenant_repo_is_a_config_error() {
    let p = manager("databases:\n  main: { kind: memory }\n");
    let err = p
        .tenant_repo::<Ticket>("main", "a")
        .await
        .expect_err("no section");
    assert_eq!(err.kind(), &ErrorKind::Config);
    assert!(err.to_string().contains("no `tenancy` section"), "{err}");
    assert!(p.tenant_activity("main", 5).is_none());
}

/// Row tenancy through the manager, with the in-process cache the manager
/// puts on by default: each tenant sees, counts and reaches only its rows.
async fn row_tenancy_isolates_and_counts(p: &Persistence) {
    let a = p.tenant_repo::<Ticket>("main", "acme").await.expect("acme");
    let b = p
        .tenant_repo::<Ticket>("main", "globex")
        .await
        .expect("globex");
    for i in 1..=3 {
        let t = Ticket {
            id: i,
            tenant: String::new(),
            title: format!("a{i}"),
        };
        assert_eq!(a.insert(&t).await.expect("insert").tenant, "acme");
    }
    let t = Ticket {
        id: 10,
        tenant: String::new(),
        title: "b10".into(),
    };
    b.insert(&t).await.expect("insert b");
    // Cached by b, absent for a (and the other way round).
    assert_eq!(
        b.get(&10).await.expect("b get").map(|t| t.title),
        Some("b10".into())
    );
    assert_eq!(a.get(&10).await.expect("a get"), None);
    assert_eq!(b.get(&1).await.expect("b get 1"), None);
    assert_eq!(a.count(&Filter::all()).await.expect("count"), 3);
    assert_eq!(b.find(&Query::all()).await.expect("find").len(), 1);
    // A tenant entity outside a tenant repository is refused, never "all".
    let plain = p.repo::<Ticket>().await.expect("repo");
    assert_eq!(
        plain
            .count(&Filter::all())
            .await
            .expect_err("no tenant")
            .kind(),
        &ErrorKind::InvalidInput
    );
    // A plain entity has no tenant field: row tenancy cannot scope it.
    assert_eq!(
        p.tenant_repo::<Note>("main", "acme")
            .await
            .expect_err("not a tenant entity")
            .kind(),
        &ErrorKind::InvalidInput
    );

    let act = p.tenant_activity("main", 10).expect("activity");
    assert_eq!((act.strategy, act.tracked, act.active), ("row", 2, 2));
    assert_eq!(act.top[0].tenant, "acme");
    // acme: 3 inserts, 1 get, 1 count; globex: 1 insert, 2 gets, 1 find.
    assert_eq!(act.top[0].ops_total, 5);
    assert_eq!(act.top[1].tenant, "globex");
    assert_eq!(act.top[1].ops_total, 4);
    assert_eq!(act.top[1].errors_total, 0);
    assert_eq!(p.tenant_activity("main", 1).expect("top 1").top.len(), 1);
}

#[tokio::test]
async fn row_tenancy_on_memory() {
    let p = manager("databases:\n  main: { kind: memory, tenancy: { strategy: row } }\n");
    row_tenancy_isolates_and_counts(&p).await;
}

#[cfg(feature = "sqlite")]
#[tokio::test]
async fn row_tenancy_on_sqlite() {
    let p = manager(
        "databases:\n  main: { kind: sqlite, url: \"sqlite::memory:\", tenancy: { strategy: row } }\n",
    );
    row_tenancy_isolates_and_counts(&p).await;
}

#[cfg(feature = "postgres")]
mod postgres {
    use super::*;
    use persistence::postgres::RelationalStore;
    use persistence::postgres::sea_orm::{ConnectionTrait, Statement};
    use persistence_testing::TestPostgres;

    /// The first column of every row of a raw statement, as text.
    async fn column(store: &RelationalStore, sql: &str) -> Vec<String> {
        let db = store.connection();
        db.query_all_raw(Statement::from_string(db.get_database_backend(), sql))
            .await
            .expect("raw query")
            .iter()
            .map(|r| r.try_get_by_index::<String>(0).expect("text column"))
            .collect()
    }

    fn pg_manager(pg: &TestPostgres, auto: bool) -> Persistence {
        manager(&format!(
            "databases:\n  main: {{ kind: postgres, url: \"{}\", \
             tenancy: {{ strategy: schema, auto_provision: {auto} }} }}\n",
            pg.url()
        ))
    }

    /// Schema per tenant: the same id in two tenants is two rows, the
    /// manager's cache keeps them apart, an unprovisioned tenant is
    /// `NotFound` until provisioned.
    #[tokio::test]
    async fn schema_per_tenant_through_the_manager() {
        let Some(pg) = TestPostgres::database().await else {
            return;
        };
        {
            let p = pg_manager(&pg, false);
            let err = p
                .tenant_repo::<Note>("main", "acme")
                .await
                .expect_err("not provisioned");
            assert_eq!(err.kind(), &ErrorKind::NotFound, "{err}");
            assert!(err.to_string().contains("provision_tenant"), "{err}");
            p.register_tenant_entity::<Note>("main")
                .await
                .expect("register");
            for t in ["acme", "globex"] {
                p.provision_tenant("main", t).await.expect("provision");
                // Idempotent.
                p.provision_tenant("main", t)
                    .await
                    .expect("provision again");
            }
            let a = p.tenant_repo::<Note>("main", "acme").await.expect("acme");
            let b = p
                .tenant_repo::<Note>("main", "globex")
                .await
                .expect("globex");
            a.insert(&note(1, "from acme")).await.expect("insert a");
            b.insert(&note(1, "from globex")).await.expect("insert b");
            // Read twice: the second read is a cache hit, still the tenant's own.
            for _ in 0..2 {
                assert_eq!(a.get(&1).await.unwrap().unwrap().title, "from acme");
                assert_eq!(b.get(&1).await.unwrap().unwrap().title, "from globex");
            }
            let mut n = a.get(&1).await.unwrap().unwrap();
            n.title = "acme, edited".into();
            a.update(&n).await.expect("update");
            assert_eq!(a.get(&1).await.unwrap().unwrap().title, "acme, edited");
            assert_eq!(b.get(&1).await.unwrap().unwrap().title, "from globex");
            // The rows are in the tenants' schemas.
            let store = p.relational("main").await.unwrap().unwrap();
            let rows = column(
                &store,
                "SELECT title FROM globex.tn_notes UNION ALL SELECT title FROM acme.tn_notes ORDER BY 1",
            )
            .await;
            assert_eq!(rows, ["acme, edited", "from globex"]);
            let act = p.tenant_activity("main", 5).expect("activity");
            assert_eq!((act.strategy, act.tracked), ("schema", 2));
            p.shutdown().await;
        }
        pg.cleanup().await.expect("cleanup");
    }

    /// `auto_provision`: concurrent first requests of a new tenant's
    /// repository all succeed and make one schema.
    #[tokio::test]
    async fn auto_provision_makes_the_tenant_once_under_concurrency() {
        let Some(pg) = TestPostgres::database().await else {
            return;
        };
        {
            let p = std::sync::Arc::new(pg_manager(&pg, true));
            let tasks: Vec<_> = (0..8)
                .map(|i| {
                    let p = p.clone();
                    tokio::spawn(async move {
                        let r = p.tenant_repo::<Note>("main", "initech").await?;
                        r.insert(&note(i, &format!("n{i}"))).await
                    })
                })
                .collect();
            for t in tasks {
                t.await.expect("join").expect("tenant repo and insert");
            }
            let r = p
                .tenant_repo::<Note>("main", "initech")
                .await
                .expect("repo");
            assert_eq!(r.count(&Filter::all()).await.expect("count"), 8);
            let store = p.relational("main").await.unwrap().unwrap();
            let n = column(
                &store,
                "SELECT count(*)::text FROM pg_namespace WHERE nspname = 'initech'",
            )
            .await;
            assert_eq!(n, ["1"]);
            p.shutdown().await;
        }
        pg.cleanup().await.expect("cleanup");
    }

    #[tokio::test]
    async fn row_tenancy_on_postgres() {
        let Some(pg) = TestPostgres::schema().await else {
            return;
        };
        {
            let p = manager(&format!(
                "databases:\n  main: {{ kind: postgres, url: \"{}\", schema: {}, \
                 tenancy: {{ strategy: row }} }}\n",
                pg.url(),
                pg.schema_name().unwrap()
            ));
            row_tenancy_isolates_and_counts(&p).await;
            p.shutdown().await;
        }
        pg.cleanup().await.expect("cleanup");
    }
}

#[cfg(feature = "mongo")]
mod mongo {
    use super::*;
    use persistence::mongo::{TenantMode, Tenants};
    use persistence_testing::TestMongo;

    async fn isolates(p: &Persistence) {
        let a = p.tenant_repo::<Note>("main", "acme").await.expect("acme");
        let b = p
            .tenant_repo::<Note>("main", "globex")
            .await
            .expect("globex");
        a.insert(&note(1, "from acme")).await.expect("insert a");
        b.insert(&note(1, "from globex")).await.expect("insert b");
        for _ in 0..2 {
            assert_eq!(a.get(&1).await.unwrap().unwrap().title, "from acme");
            assert_eq!(b.get(&1).await.unwrap().unwrap().title, "from globex");
        }
        // The unique index was provisioned in each tenant.
        let err = a.insert(&note(2, "from acme")).await.expect_err("unique");
        assert!(matches!(err.kind(), ErrorKind::Conflict(_)), "{err}");
        assert_eq!(a.count(&Filter::all()).await.unwrap(), 1);
    }

    #[tokio::test]
    async fn database_per_tenant_on_mongo() {
        let Some(db) = TestMongo::database().await else {
            return;
        };
        let prefix = format!("{}_", db.name());
        {
            let p = manager(&format!(
                "databases:\n  main: {{ kind: mongo, url: \"{}\", database: {}, \
                 tenancy: {{ strategy: database, auto_provision: true }} }}\n",
                db.url(),
                db.name()
            ));
            isolates(&p).await;
            let store = p.mongo("main").await.unwrap().unwrap();
            let names = store.client().list_database_names().await.expect("list");
            for t in ["acme", "globex"] {
                assert!(names.contains(&format!("{prefix}{t}")), "{names:?}");
            }
            let tenants = Tenants::new(store, TenantMode::DatabasePerTenant { prefix }).unwrap();
            for t in ["acme", "globex"] {
                tenants
                    .tenant(t)
                    .unwrap()
                    .remove()
                    .await
                    .expect("remove tenant");
            }
            p.shutdown().await;
        }
        db.cleanup().await.expect("cleanup");
    }

    #[tokio::test]
    async fn collection_prefix_per_tenant_on_mongo() {
        let Some(db) = TestMongo::database().await else {
            return;
        };
        {
            let p = manager(&format!(
                "databases:\n  main: {{ kind: mongo, url: \"{}\", database: {}, \
                 tenancy: {{ strategy: schema }} }}\n",
                db.url(),
                db.name()
            ));
            p.register_tenant_entity::<Note>("main")
                .await
                .expect("register");
            for t in ["acme", "globex"] {
                p.provision_tenant("main", t).await.expect("provision");
            }
            isolates(&p).await;
            let store = p.mongo("main").await.unwrap().unwrap();
            let mut names = store
                .database()
                .list_collection_names()
                .await
                .expect("list");
            names.retain(|n| n.contains("tn_notes"));
            names.sort();
            assert_eq!(names, ["acme__tn_notes", "globex__tn_notes"]);
            p.shutdown().await;
        }
        db.cleanup().await.expect("cleanup");
    }
}
