//! Row-level tenancy enforced by PostgreSQL itself: the row-level security
//! policy `ensure_schema` puts on a tenant entity's table binds even raw
//! statements without any tenant filter.
//!
//! Superusers bypass row-level security (and the shared test server's user
//! is one), so the statements run as a role of the test's own: created
//! with a unique name (no superuser, no BYPASSRLS), given the test schema,
//! and dropped at the end, also when the test fails.
#![allow(clippy::unwrap_used)]

use std::panic::AssertUnwindSafe;

use futures_util::FutureExt as _;
use persistence_core::conformance::entities::Ticket;
use persistence_core::conformance::services;
use persistence_core::vector::NearestExt as _;
use persistence_core::{Filter, Repository, TenantExt as _};
use persistence_postgres::sea_orm::{
    ConnectionTrait as _, DatabaseConnection, DbBackend, Statement, TransactionTrait as _,
};
use persistence_postgres::{RelationalConfig, RelationalRepository, RelationalStore};
use persistence_testing::TestPostgres;

/// `url` with `user:password` as its credentials.
fn as_user(url: &str, user: &str, password: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap();
    let host = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    format!("{scheme}://{user}:{password}@{host}")
}

async fn count(c: &impl persistence_postgres::sea_orm::ConnectionTrait, sql: &str) -> i64 {
    let row = c
        .query_one_raw(Statement::from_string(DbBackend::Postgres, sql))
        .await
        .unwrap()
        .unwrap();
    row.try_get_by_index::<i64>(0).unwrap()
}

async fn exec(c: &DatabaseConnection, sql: &str) {
    c.execute_unprepared(sql).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn rls_binds_raw_statements_of_a_non_superuser_to_the_tenant() {
    let Some(pg) = TestPostgres::schema().await else {
        return;
    };
    as_own_role(pg, |url, schema, admin| {
        async move { scenario(&url, &schema, &admin).await }.boxed()
    })
    .await;
}

/// `nearest` on pgvector (an index scan in SQL, not `find`) runs in the
/// tenant's transaction too: under RLS it sees the tenant's rows, and only
/// those.
#[tokio::test(flavor = "multi_thread")]
async fn rls_nearest_on_pgvector_sees_the_tenants_rows() {
    let Some(pg) = TestPostgres::vector_schema().await else {
        return;
    };
    as_own_role(pg, |url, schema, _admin| {
        async move {
            let store =
                RelationalStore::connect(&RelationalConfig::new(url).schema(schema.clone()))
                    .await
                    .unwrap();
            let repo: RelationalRepository<Pin> = store.repository();
            repo.ensure_schema().await.unwrap();
            assert!(repo.capabilities().approximate_nearest, "pgvector in use");
            let a = repo.clone().for_tenant("a").unwrap();
            let b = repo.clone().for_tenant("b").unwrap();
            let pin = |id: i64, x: f32| Pin {
                id,
                tenant: String::new(),
                at: vec![x, 0.0],
            };
            a.insert_many(&[pin(1, 1.0), pin(2, 2.0)]).await.unwrap();
            b.insert_many(&[pin(11, 1.1), pin(12, 2.1)]).await.unwrap();
            let near = a.nearest(Pin::AT, &[1.0, 0.0], 10).await.unwrap();
            let ids: Vec<i64> = near.iter().map(|(p, _)| p.id).collect();
            assert_eq!(ids, vec![1, 2], "a's rows in distance order, no b row");
            store.close().await;
        }
        .boxed()
    })
    .await;
}

/// A tenant entity with a vector (HNSW on pgvector).
#[derive(
    Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, persistence_core::Entity,
)]
#[entity(name = "rls_pins")]
struct Pin {
    #[entity(id)]
    id: i64,
    #[entity(tenant)]
    tenant: String,
    #[entity(vector(dim = 2, metric = l2))]
    at: Vec<f32>,
}

/// Run `body(url as the role, schema, admin connection)` as a role of the
/// test's own (no superuser, no BYPASSRLS) that may use the test schema;
/// the schema and the role are dropped afterwards, also when `body` panics.
async fn as_own_role(
    pg: TestPostgres,
    body: impl FnOnce(
        String,
        String,
        DatabaseConnection,
    ) -> futures_util::future::BoxFuture<'static, ()>,
) {
    let schema = pg.schema_name().unwrap().to_string();
    let admin = pg.store().await.unwrap();
    let role = format!("rls_{}", services::unique_suffix());
    let password = services::unique_suffix();
    exec(
        admin.connection(),
        &format!(
            "CREATE ROLE \"{role}\" LOGIN PASSWORD '{password}' NOSUPERUSER NOBYPASSRLS; \
             GRANT USAGE, CREATE ON SCHEMA \"{schema}\" TO \"{role}\""
        ),
    )
    .await;
    let server_url = pg.url().to_string();
    let url = as_user(&server_url, &role, &password);
    let outcome = AssertUnwindSafe(body(url, schema, admin.connection().clone()))
        .catch_unwind()
        .await;
    // The table belongs to the role: drop the schema (and it) before the role.
    admin.close().await;
    pg.cleanup().await.unwrap();
    let server = RelationalStore::connect(&RelationalConfig::new(server_url))
        .await
        .unwrap();
    exec(server.connection(), &format!("DROP ROLE \"{role}\"")).await;
    server.close().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

async fn scenario(url: &str, schema: &str, admin: &DatabaseConnection) {
    let store = RelationalStore::connect(&RelationalConfig::new(url).schema(schema.to_string()))
        .await
        .unwrap();
    let repo: RelationalRepository<Ticket> = store.repository();
    repo.ensure_schema().await.unwrap();
    let table = format!("\"{schema}\".\"conf_tickets\"");
    // The table has the policy, and FORCE binds its owner (this role).
    let forced = count(
        admin,
        &format!(
            "SELECT count(*) FROM pg_class c JOIN pg_policy p ON p.polrelid = c.oid \
             WHERE c.oid = '{table}'::regclass AND c.relrowsecurity AND c.relforcerowsecurity"
        ),
    )
    .await;
    assert_eq!(forced, 1, "RLS enabled, forced, one policy");

    let a = repo.clone().for_tenant("a").unwrap();
    let b = repo.clone().for_tenant("b").unwrap();
    a.insert_many(&[
        Ticket::new(1, "x", 1),
        Ticket::new(2, "y", 2),
        Ticket::new(3, "z", 3),
    ])
    .await
    .unwrap();
    b.insert_many(&[Ticket::new(11, "x", 1), Ticket::new(12, "y", 2)])
        .await
        .unwrap();
    assert_eq!(a.count(&Filter::all()).await.unwrap(), 3);
    assert_eq!(b.count(&Filter::all()).await.unwrap(), 2);
    // The superuser bypasses RLS: all five rows are there.
    assert_eq!(
        count(admin, &format!("SELECT count(*) FROM {table}")).await,
        5
    );

    let conn = store.connection();
    // No tenant set: a raw statement without any filter sees nothing.
    assert_eq!(
        count(conn, &format!("SELECT count(*) FROM {table}")).await,
        0
    );
    // Tenant `a` set in a transaction: only a's rows, still without a filter.
    let tx = conn.begin().await.unwrap();
    tx.execute_unprepared("SELECT set_config('app.tenant', 'a', true)")
        .await
        .unwrap();
    assert_eq!(
        count(&tx, &format!("SELECT count(*) FROM {table}")).await,
        3
    );
    assert_eq!(
        count(
            &tx,
            &format!("SELECT count(*) FROM {table} WHERE tenant = 'b'")
        )
        .await,
        0
    );
    // Writing a row of another tenant, or moving one there, is refused.
    let insert = tx
        .execute_unprepared(&format!(
            "INSERT INTO {table} (id, tenant, code, rank, version) VALUES (20, 'b', 'q', 1, 1)"
        ))
        .await;
    assert!(insert.is_err(), "insert for tenant b under a: {insert:?}");
    tx.rollback().await.unwrap();
    let tx = conn.begin().await.unwrap();
    tx.execute_unprepared("SELECT set_config('app.tenant', 'a', true)")
        .await
        .unwrap();
    let moved = tx
        .execute_unprepared(&format!("UPDATE {table} SET tenant = 'b' WHERE id = 1"))
        .await;
    assert!(moved.is_err(), "moving a row to tenant b: {moved:?}");
    tx.rollback().await.unwrap();
    // An unfiltered DELETE under `a` removes a's rows only.
    let tx = conn.begin().await.unwrap();
    tx.execute_unprepared("SELECT set_config('app.tenant', 'a', true)")
        .await
        .unwrap();
    let deleted = tx
        .execute_unprepared(&format!("DELETE FROM {table}"))
        .await
        .unwrap();
    assert_eq!(deleted.rows_affected(), 3);
    tx.commit().await.unwrap();
    // The setting was local to that transaction.
    assert_eq!(
        count(conn, &format!("SELECT count(*) FROM {table}")).await,
        0
    );
    assert_eq!(
        b.count(&Filter::all()).await.unwrap(),
        2,
        "b's rows are intact"
    );
    store.close().await;
}
