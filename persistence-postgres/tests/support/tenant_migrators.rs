//! Shared by the tenant migration tests: an entity, two migrators (the
//! second adds a column), a control schema with cleanup, and catalog reads.
#![allow(dead_code)]

use persistence_core::Entity;
use persistence_postgres::migrate::CreateEntityTable;
use persistence_postgres::sea_orm::{ConnectionTrait, Statement, Value};
use persistence_postgres::sea_orm_migration::prelude::*;
use persistence_postgres::{RelationalStore, TenantId, Tenants};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(name = "notes")]
pub struct Note {
    #[entity(id)]
    pub id: i64,
    pub body: String,
}

pub const M1: &str = "m0001_create_notes";
pub const M2: &str = "m0002_add_extra";

/// Adds `notes.extra` (no `IF NOT EXISTS`: fails where the column exists).
pub struct AddExtra;
impl MigrationName for AddExtra {
    fn name(&self) -> &str {
        M2
    }
}
// The trait's own signatures elide SchemaManager's lifetime; impls must match.
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for AddExtra {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared("ALTER TABLE \"notes\" ADD COLUMN \"extra\" text")
            .await?;
        Ok(())
    }
    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared("ALTER TABLE \"notes\" DROP COLUMN \"extra\"")
            .await?;
        Ok(())
    }
}

/// Version 1 of the application: creates `notes`.
pub struct V1;
impl MigratorTrait for V1 {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![Box::new(CreateEntityTable::<Note>::new(M1))]
    }
}

/// Version 2: also adds `notes.extra`.
pub struct V2;
impl MigratorTrait for V2 {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(CreateEntityTable::<Note>::new(M1)),
            Box::new(AddExtra),
        ]
    }
}

/// How long the teardown may wait for the pool to close.
pub const TEARDOWN_BOUND: std::time::Duration = std::time::Duration::from_secs(120);

/// Runs `body` with a store (pool of `pool` connections) in a fresh control
/// schema, then drops every tenant of its registry and the control schema,
/// also when the body panicked.
pub async fn with_control<F, Fut>(pool: u32, body: F)
where
    F: FnOnce(RelationalStore) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let Some(control) = persistence_testing::TestPostgres::schema().await else {
        return;
    };
    let store = RelationalStore::connect(&control.config().max_connections(pool))
        .await
        .expect("connect");
    let outcome = tokio::spawn(body(store.clone())).await;
    let tenants = Tenants::new(&store).expect("tenants");
    for t in tenants.list().await.expect("list for cleanup") {
        tenants.drop_tenant(&t).await.expect("cleanup tenant");
    }
    store.drop_schema().await.expect("drop control schema");
    // A pooled connection never given back would make `close` wait for
    // ever: fail instead (a bound on a hang, not a timing assertion).
    tokio::time::timeout(TEARDOWN_BOUND, store.close())
        .await
        .expect("the pool closes: every connection was given back");
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

/// The first column of `sql` (the caller casts it to text).
pub async fn strings(store: &RelationalStore, sql: &str, args: Vec<&str>) -> Vec<String> {
    let db = store.connection();
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(
            db.get_database_backend(),
            sql,
            args.into_iter().map(|a| Value::String(Some(a.to_string()))),
        ))
        .await
        .expect(sql);
    rows.iter()
        .map(|r| r.try_get_by_index::<String>(0).expect("text column"))
        .collect()
}

pub async fn exec(store: &RelationalStore, sql: &str) {
    store
        .connection()
        .execute_unprepared(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// Row versions of everything a migration run could write: the status and
/// registry rows, every relation of the tenants' schemas (an `ALTER TABLE`
/// or a new table changes or adds a `pg_class` row) and every tenant's
/// `seaql_migrations` rows.
pub async fn snapshot(store: &RelationalStore, tenants: &[TenantId]) -> Vec<String> {
    let control = store.schema().expect("control schema").to_string();
    let mut all = strings(
        store,
        &format!(
            "SELECT 'registry ' || \"id\" || ' ' || xmin::text FROM \"{control}\".persistence_tenants \
             ORDER BY 1"
        ),
        vec![],
    )
    .await;
    all.extend(status_rows(store).await);
    let names: Vec<&str> = tenants.iter().map(TenantId::as_str).collect();
    let list = format!("{{{}}}", names.join(","));
    all.extend(
        strings(
            store,
            "SELECT n.nspname || '.' || c.relname || ' ' || c.xmin::text || ' ' || c.relnatts::text \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = ANY($1::text[]) ORDER BY 1",
            vec![&list],
        )
        .await,
    );
    for t in tenants {
        all.extend(
            strings(
                store,
                &format!(
                    "SELECT '{t} ' || version || ' ' || xmin::text FROM \"{t}\".seaql_migrations \
                     ORDER BY 1"
                ),
                vec![],
            )
            .await,
        );
    }
    all
}

/// `tenant state last_applied xmin` of every status row (no table: none).
pub async fn status_rows(store: &RelationalStore) -> Vec<String> {
    let control = store.schema().expect("control schema").to_string();
    let table = format!("\"{control}\".persistence_tenant_migrations");
    if strings(
        store,
        "SELECT (to_regclass($1) IS NOT NULL)::text",
        vec![&table],
    )
    .await
        != ["true"]
    {
        return Vec::new();
    }
    strings(
        store,
        &format!(
            "SELECT 'status ' || tenant || ' ' || state || ' ' || coalesce(last_applied, '-') || ' ' \
             || xmin::text FROM {table} ORDER BY 1"
        ),
        vec![],
    )
    .await
}

/// Whether `tenant`'s `notes` has the column `extra`.
pub async fn has_extra(store: &RelationalStore, tenant: &TenantId) -> bool {
    !strings(
        store,
        "SELECT column_name::text FROM information_schema.columns \
         WHERE table_schema = $1 AND table_name = 'notes' AND column_name = 'extra'",
        vec![tenant.as_str()],
    )
    .await
    .is_empty()
}
