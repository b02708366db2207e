//! Migrations: generated initial migration plus a hand-written one; up,
//! down (rollback), status; rolling back and re-applying gives the same schema.
mod common;

use common::*;
use persistence_core::{Entity, Repository};
use persistence_postgres::migrate::{self, CreateEntityTable};
use persistence_postgres::sea_orm::{ConnectionTrait, Statement};
use persistence_postgres::sea_orm_migration::prelude::*;
use persistence_postgres::{Dialect, RelationalStore};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(name = "notes", unique(author, title))]
struct Note {
    #[entity(id)]
    id: i64,
    author: String,
    title: String,
    #[entity(version)]
    version: i64,
    body: Option<String>,
}

/// A hand-written migration.
struct AddBodyIndex;
impl MigrationName for AddBodyIndex {
    fn name(&self) -> &str {
        "m0002_add_body_index"
    }
}
// The trait's own signatures elide SchemaManager's lifetime; impls must match.
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for AddBodyIndex {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared(
                "CREATE INDEX IF NOT EXISTS \"ix_notes_body\" ON \"notes\" (\"body\")",
            )
            .await?;
        Ok(())
    }
    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared("DROP INDEX IF EXISTS \"ix_notes_body\"")
            .await?;
        Ok(())
    }
}

struct Migrator;
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(CreateEntityTable::<Note>::new("m0001_create_notes")),
            Box::new(AddBodyIndex),
        ]
    }
}

/// A textual snapshot of the tables and indexes the migrations made.
async fn snapshot(store: &RelationalStore) -> Vec<String> {
    let db = store.connection();
    let (sql, values) = match store.dialect() {
        Dialect::Postgres => (
            "SELECT c.table_name || '.' || c.column_name || ' ' || c.data_type || ' ' || c.is_nullable \
             FROM information_schema.columns c WHERE c.table_schema = $1 AND c.table_name = 'notes' \
             UNION ALL SELECT indexname || ' ' || indexdef FROM pg_indexes \
             WHERE schemaname = $1 AND tablename = 'notes' ORDER BY 1",
            vec![persistence_postgres::sea_orm::Value::String(
                store.schema().map(str::to_string),
            )],
        ),
        Dialect::Sqlite => (
            "SELECT coalesce(sql, name) FROM sqlite_master WHERE tbl_name = 'notes' ORDER BY name",
            vec![],
        ),
    };
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(
            db.get_database_backend(),
            sql,
            values,
        ))
        .await
        .expect("snapshot");
    rows.iter()
        .map(|r| r.try_get_by_index::<String>(0).expect("text"))
        .collect()
}

async fn up_down_status(store: &RelationalStore) {
    let status = migrate::status::<Migrator>(store).await.expect("status");
    assert_eq!(
        status,
        vec![
            ("m0001_create_notes".to_string(), false),
            ("m0002_add_body_index".to_string(), false)
        ]
    );
    migrate::up::<Migrator>(store, None).await.expect("up");
    assert!(
        migrate::status::<Migrator>(store)
            .await
            .expect("status")
            .iter()
            .all(|(_, a)| *a)
    );
    let first = snapshot(store).await;
    assert!(
        first.iter().any(|l| l.contains("ix_notes_body")),
        "{first:?}"
    );
    assert!(
        first.iter().any(|l| l.contains("ux_notes_author_title")),
        "{first:?}"
    );

    // The migrated table is what the repository expects.
    let notes = store.repository::<Note>();
    let n = Note {
        id: 1,
        author: "a".into(),
        title: "t".into(),
        version: 0,
        body: None,
    };
    assert_eq!(notes.insert(&n).await.expect("insert").version, 1);
    notes
        .ensure_schema()
        .await
        .expect("ensure_schema on a migrated table is a no-op");

    // Roll back one step, then everything.
    migrate::down::<Migrator>(store, Some(1))
        .await
        .expect("down 1");
    assert_eq!(
        migrate::status::<Migrator>(store).await.expect("status"),
        vec![
            ("m0001_create_notes".to_string(), true),
            ("m0002_add_body_index".to_string(), false)
        ]
    );
    migrate::down::<Migrator>(store, None)
        .await
        .expect("down all");
    assert!(snapshot(store).await.is_empty(), "table dropped");

    // Re-applying gives the same schema.
    migrate::up::<Migrator>(store, None)
        .await
        .expect("up again");
    assert_eq!(snapshot(store).await, first);
}

#[tokio::test]
async fn postgres_up_down_status_in_own_schema() {
    let Some(store) = pg_store().await else {
        return;
    };
    let s = store.clone();
    let outcome = tokio::spawn(async move { up_down_status(&s).await }).await;
    store.drop_schema().await.expect("drop schema");
    store.close().await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

#[tokio::test]
async fn sqlite_up_down_status() {
    let (store, path) = sqlite_store().await;
    let s = store.clone();
    let outcome = tokio::spawn(async move { up_down_status(&s).await }).await;
    store.close().await;
    remove_sqlite(&path);
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

/// A `notes` table another team made with plain SQL: the generated initial
/// migration fails naming it, and the table is left exactly as it was (no
/// ownership mark, no index, no constraint); nothing is recorded as applied.
async fn refuses_a_foreign_table(store: &RelationalStore) {
    let create = match (store.dialect(), store.schema()) {
        (Dialect::Postgres, Some(schema)) => format!(
            "CREATE TABLE \"{schema}\".\"notes\" (\"id\" bigint PRIMARY KEY, \"author\" text, \"title\" text)"
        ),
        _ => "CREATE TABLE \"notes\" (\"id\" INTEGER PRIMARY KEY, \"author\" TEXT, \"title\" TEXT)"
            .to_string(),
    };
    store
        .connection()
        .execute_unprepared(&create)
        .await
        .expect("foreign table");
    let before = snapshot(store).await;
    let err = migrate::up::<Migrator>(store, None)
        .await
        .expect_err("another team's table");
    let text = err.to_string();
    assert!(
        text.contains("m0001_create_notes") && text.contains("not created by persistence"),
        "{text}"
    );
    assert_eq!(snapshot(store).await, before, "table unchanged");
    if let (Dialect::Postgres, Some(schema)) = (store.dialect(), store.schema()) {
        let comment = store
            .connection()
            .query_one_raw(Statement::from_string(
                store.connection().get_database_backend(),
                format!(
                    "SELECT to_regclass('\"{schema}\".\"notes\"') IS NOT NULL, \
                     COALESCE(obj_description(to_regclass('\"{schema}\".\"notes\"'), 'pg_class'), '')"
                ),
            ))
            .await
            .expect("comment")
            .and_then(|r| {
                Some((
                    r.try_get_by_index::<bool>(0).ok()?,
                    r.try_get_by_index::<String>(1).ok()?,
                ))
            });
        assert_eq!(
            comment,
            Some((true, String::new())),
            "exists, not marked as the library's"
        );
    }
    assert!(
        migrate::status::<Migrator>(store)
            .await
            .expect("status")
            .iter()
            .all(|(_, applied)| !applied)
    );
}

#[tokio::test]
async fn postgres_initial_migration_leaves_a_foreign_table_alone() {
    let Some(store) = pg_store().await else {
        return;
    };
    let s = store.clone();
    let outcome = tokio::spawn(async move { refuses_a_foreign_table(&s).await }).await;
    store.drop_schema().await.expect("drop schema");
    store.close().await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

#[tokio::test]
async fn sqlite_initial_migration_leaves_a_foreign_table_alone() {
    let (store, path) = sqlite_store().await;
    let s = store.clone();
    let outcome = tokio::spawn(async move { refuses_a_foreign_table(&s).await }).await;
    store.close().await;
    remove_sqlite(&path);
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}
