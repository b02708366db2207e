//! Schema-per-tenant on the local PostgreSQL.
mod common;

use std::collections::HashMap;

use common::*;
use persistence_core::{Entity, ErrorKind, Filter, Query, Repository};
use persistence_postgres::{RelationalStore, TenantId, TenantResolver, Tenants};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(name = "notes")]
struct Note {
    #[entity(id)]
    id: i64,
    #[entity(index)]
    tenant: String,
    body: String,
}

async fn schema_exists(store: &RelationalStore, name: &str) -> bool {
    use persistence_postgres::sea_orm::{ConnectionTrait, Statement, Value};
    let db = store.connection();
    let row = db
        .query_one_raw(Statement::from_sql_and_values(
            db.get_database_backend(),
            "SELECT count(*) FROM information_schema.schemata WHERE schema_name = $1",
            [Value::String(Some(name.to_string()))],
        ))
        .await
        .expect("count schemas")
        .expect("row");
    row.try_get_by_index::<i64>(0).expect("count") > 0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_tenants_two_hundred_tasks_five_connections() {
    // The control schema is dropped by the guard, also on panic.
    let Some(control) = persistence_testing::TestPostgres::schema().await else {
        return;
    };
    let sfx = suffix();
    let store = RelationalStore::connect(&control.config().max_connections(5))
        .await
        .expect("connect");
    let tenants = Tenants::new(&store).expect("tenants").register::<Note>();
    let ids: Vec<TenantId> = (0..50)
        .map(|n| TenantId::new(format!("t{sfx}_{n}")).expect("valid id"))
        .collect();

    let outcome = tokio::spawn({
        let tenants = tenants.clone();
        let ids = ids.clone();
        async move {
            for t in &ids {
                tenants.provision(t).await.expect("provision");
            }
            tenants
                .provision(&ids[0])
                .await
                .expect("provision is idempotent");
            let listed = tenants.list().await.expect("list");
            assert_eq!(listed.len(), 50);

            let mut tasks = Vec::new();
            for k in 0..200i64 {
                let tenants = tenants.clone();
                let tenant = ids[(k % 50) as usize].clone();
                tasks.push(tokio::spawn(async move {
                    let notes = tenants.repository::<Note>(&tenant);
                    for j in 0..3 {
                        let note = Note {
                            id: k * 10 + j,
                            tenant: tenant.to_string(),
                            body: format!("task {k}"),
                        };
                        notes.insert(&note).await.expect("insert");
                        assert_eq!(notes.get(&note.id).await.expect("get"), Some(note));
                    }
                    let mine = notes.find(&Query::all()).await.expect("find");
                    assert!(
                        mine.iter().all(|n| n.tenant == tenant.as_str()),
                        "only own rows"
                    );
                }));
            }
            for t in tasks {
                t.await.expect("task");
            }
            for t in &ids {
                let notes = tenants.repository::<Note>(t);
                assert_eq!(notes.count(&Filter::all()).await.expect("count"), 12);
                let foreign = notes
                    .count(&Note::TENANT.ne(t.to_string()))
                    .await
                    .expect("count");
                assert_eq!(foreign, 0);
            }
            tenants.drop_tenant(&ids[49]).await.expect("drop tenant");
            assert_eq!(tenants.list().await.expect("list").len(), 49);
        }
    })
    .await;
    for t in &ids {
        tenants.drop_tenant(t).await.expect("cleanup tenant");
    }
    store.drop_schema().await.expect("drop control schema");
    store.close().await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

#[tokio::test]
async fn hostile_tenant_names_are_refused_and_nothing_runs() {
    let Some(store) = pg_store().await else {
        return;
    };
    let resolver = |headers: &HashMap<&str, &str>| {
        TenantId::new(headers.get("x-tenant").copied().unwrap_or(""))
    };
    for hostile in [
        "x; DROP SCHEMA public",
        "\"",
        "x\"; DROP SCHEMA public CASCADE; --",
        "аcme", // Cyrillic а
        "acme\u{0301}",
        "ACME",
        "public",
        "pg_catalog",
        "information_schema",
        &"a".repeat(64),
        "",
    ] {
        let headers = HashMap::from([("x-tenant", hostile)]);
        let e = resolver.resolve(&headers).expect_err(hostile);
        assert_eq!(e.kind(), &ErrorKind::InvalidInput, "{hostile:?}");
        if !hostile.is_empty() && !matches!(hostile, "public" | "pg_catalog" | "information_schema")
        {
            assert!(
                !schema_exists(&store, hostile).await,
                "{hostile:?} was not created"
            );
        }
    }
    for system in ["public", "pg_catalog", "information_schema"] {
        assert!(schema_exists(&store, system).await, "{system} untouched");
    }
    store.drop_schema().await.expect("drop");
    store.close().await;
}
