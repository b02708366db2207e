//! Reserved names and ownership (issue 13, problems 1 and 2): the library
//! drops and alters only what it created, on the local PostgreSQL and SQLite.
mod common;

use chrono::{DateTime, TimeZone, Utc};
use common::*;
use persistence_core::names::SchemaPolicy;
use persistence_core::{Entity, ErrorKind, Repository};
use persistence_postgres::sea_orm::{ConnectionTrait, Statement, Value};
use persistence_postgres::{RelationalConfig, RelationalStore, TenantId, Tenants};
use persistence_testing::TestPostgres;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(name = "customers")]
struct Customer {
    #[entity(id)]
    id: i64,
    #[entity(unique)]
    email: String,
    #[entity(index)]
    created_at: DateTime<Utc>,
    #[entity(version)]
    version: i64,
}

fn customer(id: i64) -> Customer {
    Customer {
        id,
        email: format!("c{id}@x.io"),
        created_at: Utc
            .with_ymd_and_hms(2024, 1, 2, 3, 4, 5)
            .single()
            .expect("time"),
        version: 0,
    }
}

/// Another team's `customers` table: same columns, its own constraint names,
/// none of the entity's indexes.
const FOREIGN_CUSTOMERS: &str = "CREATE TABLE {t} (id bigint PRIMARY KEY, email text NOT NULL, \
     created_at timestamptz NOT NULL, version bigint NOT NULL)";

async fn exec(store: &RelationalStore, sql: &str) {
    store
        .connection()
        .execute_unprepared(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

async fn strings(store: &RelationalStore, sql: &str, args: Vec<Value>) -> Vec<String> {
    let db = store.connection();
    db.query_all_raw(Statement::from_sql_and_values(
        db.get_database_backend(),
        sql,
        args,
    ))
    .await
    .unwrap_or_else(|e| panic!("{sql}: {e}"))
    .iter()
    .map(|r| r.try_get_by_index::<String>(0).expect("text"))
    .collect()
}

fn text(s: &str) -> Value {
    Value::String(Some(s.to_string()))
}

/// `indexname: indexdef` of every index of `schema.table`, sorted.
async fn pg_indexes(store: &RelationalStore, schema: &str, table: &str) -> Vec<String> {
    strings(
        store,
        "SELECT indexname || ': ' || indexdef FROM pg_indexes \
         WHERE schemaname = $1 AND tablename = $2 ORDER BY indexname",
        vec![text(schema), text(table)],
    )
    .await
}

async fn schema_exists(store: &RelationalStore, name: &str) -> bool {
    !strings(
        store,
        "SELECT nspname::text FROM pg_namespace WHERE nspname = $1",
        vec![text(name)],
    )
    .await
    .is_empty()
}

async fn table_comment(store: &RelationalStore, qualified: &str) -> String {
    strings(
        store,
        "SELECT COALESCE(obj_description(to_regclass($1), 'pg_class'), '')",
        vec![text(qualified)],
    )
    .await
    .concat()
}

#[tokio::test]
async fn reserved_and_hostile_schemas_are_refused_before_any_sql() {
    // No server is contacted: validation comes first.
    for (schema, words) in [
        ("public", "\"public\" is reserved"),
        ("information_schema", "is reserved"),
        ("pg_catalog", "is reserved"),
        ("admin", "is reserved"),
        ("x\"; DROP TABLE t; --", "is not a valid schema name"),
    ] {
        let config = RelationalConfig::new("postgres://u:p@127.0.0.1:1/db").schema(schema);
        let err = RelationalStore::connect(&config).await.expect_err(schema);
        assert_eq!(err.kind(), &ErrorKind::Config, "{schema}: {err}");
        assert!(
            err.message().starts_with("RelationalConfig.schema: ") && err.message().contains(words),
            "{schema}: {err}"
        );
    }
    for tenant in [
        "public",
        "pg_toast",
        "information_schema",
        "local",
        "config",
    ] {
        let err = TenantId::new(tenant).expect_err(tenant);
        assert_eq!(err.kind(), &ErrorKind::InvalidInput, "{err}");
    }
}

#[tokio::test]
async fn drop_schema_refuses_a_schema_made_by_plain_sql_and_public() {
    // A database of our own, so `public` here is ours to watch.
    let Some(db) = TestPostgres::database().await else {
        return;
    };
    let admin = RelationalStore::connect(&db.config())
        .await
        .expect("connect");
    exec(&admin, "CREATE SCHEMA theirs").await;
    exec(&admin, "CREATE TABLE theirs.t (id int PRIMARY KEY)").await;
    exec(&admin, "INSERT INTO theirs.t VALUES (1)").await;
    exec(&admin, "CREATE TABLE public.sentinel (id int PRIMARY KEY)").await;

    let theirs = RelationalStore::connect(&db.config().schema("theirs"))
        .await
        .expect("connect");
    let err = theirs.drop_schema().await.expect_err("not ours");
    assert_eq!(err.kind(), &ErrorKind::Config, "{err}");
    assert!(
        err.message()
            .contains("schema `theirs` was not created by persistence"),
        "{err}"
    );
    assert_eq!(err.operation(), Some("drop_schema"));
    assert_eq!(
        strings(&admin, "SELECT id::text FROM theirs.t", vec![]).await,
        vec!["1".to_string()],
        "left intact"
    );

    // `public` cannot be configured, not even through an existing connection...
    let err = RelationalStore::from_connection(admin.connection().clone(), Some("public".into()))
        .expect_err("public");
    assert_eq!(err.kind(), &ErrorKind::InvalidInput, "{err}");
    // ...and a store without a schema (tables in `public`) has nothing to drop.
    admin.drop_schema().await.expect("no-op");
    assert!(schema_exists(&admin, "public").await);
    assert_eq!(
        strings(&admin, "SELECT count(*)::text FROM public.sentinel", vec![]).await,
        vec!["0".to_string()]
    );

    // A tenant whose schema was made by plain SQL is not dropped either.
    exec(&admin, "CREATE SCHEMA acme").await;
    exec(&admin, "CREATE TABLE acme.keep (id int)").await;
    let tenants = Tenants::new(&admin)
        .expect("tenants")
        .register::<Customer>();
    let acme = TenantId::new("acme").expect("id");
    tenants.provision(&acme).await.expect("provision into it");
    let err = tenants.drop_tenant(&acme).await.expect_err("not ours");
    assert_eq!(err.kind(), &ErrorKind::Config, "{err}");
    assert!(
        strings(
            &admin,
            "SELECT tablename::text FROM pg_tables WHERE schemaname = 'acme' ORDER BY 1",
            vec![]
        )
        .await
            == vec!["customers".to_string(), "keep".to_string()],
        "acme intact"
    );
    // A tenant the library created is dropped.
    let fresh = TenantId::new("fresh").expect("id");
    tenants.provision(&fresh).await.expect("provision");
    assert!(schema_exists(&admin, "fresh").await);
    tenants.drop_tenant(&fresh).await.expect("drop ours");
    assert!(!schema_exists(&admin, "fresh").await);

    theirs.close().await;
    admin.close().await;
    db.cleanup().await.expect("cleanup");
}

#[tokio::test]
async fn a_schema_the_library_created_is_dropped() {
    // A database of our own holds the schema (dropped with the guard).
    let Some(pg) = TestPostgres::database().await else {
        return;
    };
    // Not created up front: ensure_schema creates (and marks) it.
    let name = "t_own".to_string();
    let store = RelationalStore::connect(&RelationalConfig::new(pg.url()).schema(name.clone()))
        .await
        .expect("connect");
    let repo = store.repository::<Customer>();
    repo.ensure_schema().await.expect("ensure");
    repo.insert(&customer(1)).await.expect("insert");
    assert!(schema_exists(&store, &name).await);
    store.drop_schema().await.expect("drop ours");
    assert!(!schema_exists(&store, &name).await);
    // Dropping what is not there is not an error.
    store.drop_schema().await.expect("again");
    store.close().await;
}

#[tokio::test]
async fn ensure_schema_leaves_another_teams_table_alone() {
    let Some(pg) = TestPostgres::schema().await else {
        return;
    };
    let schema = pg.schema_name().expect("schema").to_string();
    let store = pg.store().await.expect("connect");
    let table = format!("\"{schema}\".\"customers\"");
    exec(&store, &FOREIGN_CUSTOMERS.replace("{t}", &table)).await;
    exec(
        &store,
        &format!("CREATE INDEX their_email ON {table} (lower(email))"),
    )
    .await;
    let before = pg_indexes(&store, &schema, "customers").await;
    assert_eq!(before.len(), 2, "{before:?}");

    let repo = store.repository::<Customer>();
    repo.ensure_schema().await.expect("verify only");
    repo.ensure_schema().await.expect("again");
    assert_eq!(
        pg_indexes(&store, &schema, "customers").await,
        before,
        "no index added"
    );
    assert_eq!(table_comment(&store, &table).await, "", "not marked");
    // The repository still works on it.
    repo.insert(&customer(1)).await.expect("insert");
    assert_eq!(repo.get(&1).await.expect("get").map(|c| c.id), Some(1));

    // A table lacking a column the entity stores is an error naming it.
    exec(&store, &format!("ALTER TABLE {table} DROP COLUMN version")).await;
    let err = repo.ensure_schema().await.expect_err("missing column");
    assert_eq!(err.kind(), &ErrorKind::Config, "{err}");
    assert!(
        err.message().contains("lacks the column(s) version"),
        "{err}"
    );
    assert_eq!(pg_indexes(&store, &schema, "customers").await, before);
    exec(
        &store,
        &format!("ALTER TABLE {table} ADD COLUMN version bigint NOT NULL DEFAULT 0"),
    )
    .await;

    // Opting in per repository takes it over: marked, indexes added.
    let adopted = store
        .repository::<Customer>()
        .with_schema_policy(SchemaPolicy::Adopt);
    adopted.ensure_schema().await.expect("adopt");
    assert!(
        table_comment(&store, &table)
            .await
            .starts_with("persistence:managed")
    );
    let after = pg_indexes(&store, &schema, "customers").await;
    assert!(
        after
            .iter()
            .any(|i| i.starts_with("ix_customers_created_at:")),
        "{after:?}"
    );
    store.close().await;
}

#[tokio::test]
async fn library_tables_keep_the_current_behaviour() {
    let Some(pg) = TestPostgres::schema().await else {
        return;
    };
    let schema = pg.schema_name().expect("schema").to_string();
    let store = pg.store().await.expect("connect");
    let repo = store.repository::<Customer>();
    repo.ensure_schema().await.expect("create");
    repo.ensure_schema().await.expect("idempotent");
    let table = format!("\"{schema}\".\"customers\"");
    assert!(
        table_comment(&store, &table)
            .await
            .starts_with("persistence:managed entity=customers")
    );
    let indexes = pg_indexes(&store, &schema, "customers").await;
    for name in [
        "pk_customers:",
        "ux_customers_email:",
        "ix_customers_created_at:",
    ] {
        assert!(
            indexes.iter().any(|i| i.starts_with(name)),
            "{name} in {indexes:?}"
        );
    }
    // A dropped index of a library table is recreated.
    exec(
        &store,
        &format!("DROP INDEX \"{schema}\".ix_customers_created_at"),
    )
    .await;
    repo.ensure_schema().await.expect("recreate");
    assert_eq!(pg_indexes(&store, &schema, "customers").await, indexes);
    // Verify-only creates nothing.
    let never = format!("t_never_{}", suffix());
    let other_store =
        RelationalStore::connect(&RelationalConfig::new(pg.url()).schema(never.clone()))
            .await
            .expect("connect");
    let other = other_store
        .repository::<Customer>()
        .with_schema_policy(SchemaPolicy::VerifyOnly);
    let err = other.ensure_schema().await.expect_err("missing");
    assert_eq!(err.kind(), &ErrorKind::Config, "{err}");
    assert!(!schema_exists(&store, &never).await);
    other_store.close().await;
    store.close().await;
}

#[tokio::test]
async fn sqlite_leaves_a_foreign_table_alone_and_marks_its_own() {
    let (store, path) = sqlite_store().await;
    exec(&store, &FOREIGN_CUSTOMERS.replace("{t}", "customers")).await;
    let idx = "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = ? ORDER BY name";
    let before = strings(&store, idx, vec![text("customers")]).await;
    let repo = store.repository::<Customer>();
    repo.ensure_schema().await.expect("verify only");
    assert_eq!(strings(&store, idx, vec![text("customers")]).await, before);
    repo.insert(&customer(1)).await.expect("insert");

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
    #[entity(name = "orders")]
    struct Order {
        #[entity(id)]
        id: i64,
        #[entity(index)]
        customer: i64,
    }
    let orders = store.repository::<Order>();
    orders.ensure_schema().await.expect("create");
    orders.ensure_schema().await.expect("idempotent");
    assert_eq!(
        strings(&store, idx, vec![text("orders")]).await,
        vec!["ix_orders_customer".to_string()]
    );
    assert_eq!(
        strings(
            &store,
            "SELECT name FROM persistence_managed ORDER BY name",
            vec![]
        )
        .await,
        vec!["orders".to_string()]
    );
    store.close().await;
    remove_sqlite(&path);
}

#[tokio::test]
async fn test_schemas_from_persistence_testing_are_the_librarys() {
    let Some(pg) = TestPostgres::schema().await else {
        return;
    };
    let store = pg.store().await.expect("connect");
    assert!(store.create_schema().await.expect("marked"));
    store.close().await;
}
