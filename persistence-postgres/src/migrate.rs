//! Migrations with sea-orm-migration.
//!
//! [`CreateEntityTable<E>`] is the generated initial migration of an entity:
//! `up` creates its table, constraints and indexes exactly as
//! `ensure_schema` does, `down` drops the table. The table gets the library's ownership mark
//! (see [`crate::schema`]); a table of that name that exists **without** the
//! mark (another team's) makes `up` fail naming it, and nothing is changed. Mix it with hand-written
//! `MigrationTrait` migrations in an ordinary sea-orm-migration `Migrator`:
//!
//! ```no_run
//! use persistence_postgres::migrate::CreateEntityTable;
//! use sea_orm_migration::prelude::*;
//! # #[derive(Debug, Clone, serde::Serialize, serde::Deserialize, persistence_core::Entity)]
//! # struct User { #[entity(id)] id: i64 }
//!
//! struct Migrator;
//! impl MigratorTrait for Migrator {
//!     fn migrations() -> Vec<Box<dyn MigrationTrait>> {
//!         vec![Box::new(CreateEntityTable::<User>::new("m0001_create_users"))]
//!     }
//! }
//! ```
//!
//! [`up`], [`down`] and [`status`] run a migrator against a
//! [`RelationalStore`]. With a PostgreSQL schema configured they run inside
//! one transaction that first creates the schema and sets
//! `SET LOCAL search_path` to it, so the tables **and** the
//! `seaql_migrations` bookkeeping table land in that schema (a transaction-
//! scoped setting: nothing leaks into the pool). The `persistence-migrate`
//! example is a small CLI over these three functions.
//!
//! For schema-per-tenant, a migrator given to
//! [`Tenants::with_migrator`](crate::Tenants::with_migrator) brings every
//! newly provisioned tenant to its head and runs over every tenant with
//! [`Tenants::migrate_all`](crate::Tenants::migrate_all) (see [`crate::tenant`]).

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;

use persistence_core::names::MANAGED_MARK;
use persistence_core::{Entity, Error, Result};
use sea_orm::{ConnectionTrait, DatabaseTransaction, DbErr, Statement, TransactionTrait, Value};
use sea_orm_migration::{MigrationName, MigrationTrait, MigratorTrait, SchemaManager};

use crate::error::map_db_err;
use crate::query::{Dialect, quote};
use crate::schema::{self, TableInfo};
use crate::store::RelationalStore;

/// The generated initial migration of entity `E`.
pub struct CreateEntityTable<E: Entity> {
    name: String,
    _entity: PhantomData<fn() -> E>,
}

impl<E: Entity> CreateEntityTable<E> {
    /// A migration named `name` (sea-orm-migration orders migrations by name:
    /// use a sortable prefix such as `m0001_`).
    pub fn new(name: impl Into<String>) -> Self {
        CreateEntityTable {
            name: name.into(),
            _entity: PhantomData,
        }
    }
}

impl<E: Entity> MigrationName for CreateEntityTable<E> {
    fn name(&self) -> &str {
        &self.name
    }
}

fn dialect_of(manager: &SchemaManager<'_>) -> Result<Dialect, DbErr> {
    match manager.get_database_backend() {
        sea_orm::DbBackend::Postgres => Ok(Dialect::Postgres),
        sea_orm::DbBackend::Sqlite => Ok(Dialect::Sqlite),
        other => Err(DbErr::Migration(format!("unsupported backend {other:?}"))),
    }
}

// The trait's own signatures elide SchemaManager's lifetime; impls must match.
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl<E: Entity> MigrationTrait for CreateEntityTable<E> {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let dialect = dialect_of(manager)?;
        // Unqualified: the schema comes from the transaction's search_path (see module docs).
        let table = TableInfo::new(E::meta(), None);
        let ddl = table
            .ddl(E::meta(), dialect)
            .map_err(|e| DbErr::Migration(e.to_string()))?;
        let conn = manager.get_connection();
        // Never alter (index, mark) a table the library did not create.
        if schema::table_owner(conn, &table, E::meta(), dialect).await? == schema::Owner::Foreign {
            return Err(DbErr::Migration(format!(
                "{}: table `{}` already exists and was not created by persistence (it has no \
                 `{MANAGED_MARK}` mark); this migration does not alter it: adopt it \
                 (SchemaPolicy::Adopt) or mark it yourself, or drop the table",
                self.name,
                E::meta().name
            )));
        }
        for stmt in ddl {
            conn.execute_unprepared(&stmt).await?;
        }
        // PostgreSQL's mark is a statement of the DDL; SQLite's is a row.
        if dialect == Dialect::Sqlite {
            schema::mark(conn, &table, E::meta(), dialect).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let sql = format!("DROP TABLE IF EXISTS {}", quote(E::meta().name));
        manager.get_connection().execute_unprepared(&sql).await?;
        Ok(())
    }
}

type UpFuture<'a> = Pin<Box<dyn Future<Output = Result<(), DbErr>> + Send + 'a>>;

fn up_all<M: MigratorTrait + 'static>(tx: &DatabaseTransaction) -> UpFuture<'_> {
    Box::pin(M::up(tx, None))
}

/// A migrator with its type erased: what a `Tenants` keeps to migrate its
/// tenants (the migration names in order, the bookkeeping table, `up`).
#[derive(Clone)]
pub(crate) struct DynMigrator {
    names: Arc<[String]>,
    table: String,
    up: for<'a> fn(&'a DatabaseTransaction) -> UpFuture<'a>,
}

impl std::fmt::Debug for DynMigrator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Migrator")
            .field("migrations", &self.names.len())
            .field("head", &self.head())
            .finish()
    }
}

impl DynMigrator {
    pub(crate) fn of<M: MigratorTrait + 'static>() -> DynMigrator {
        DynMigrator {
            names: M::migrations()
                .iter()
                .map(|m| m.name().to_string())
                .collect(),
            table: M::migration_table_name().to_string(),
            up: up_all::<M>,
        }
    }

    /// The last migration (what a tenant at head has applied last).
    pub(crate) fn head(&self) -> Option<&str> {
        self.names.last().map(String::as_str)
    }

    /// The migrations of this migrator that `applied` lacks, in order.
    pub(crate) fn pending(&self, applied: &[String]) -> Vec<String> {
        self.names
            .iter()
            .filter(|n| !applied.contains(n))
            .cloned()
            .collect()
    }

    /// The migrations of this migrator that are in `applied`, in order.
    pub(crate) fn in_order(&self, applied: &[String]) -> Vec<String> {
        self.names
            .iter()
            .filter(|n| applied.contains(n))
            .cloned()
            .collect()
    }

    /// The last migration of this migrator (in its order) that is in `applied`.
    pub(crate) fn last_applied(&self, applied: &[String]) -> Option<String> {
        self.names
            .iter()
            .rev()
            .find(|n| applied.contains(n))
            .cloned()
    }

    /// The versions recorded in `schema`'s bookkeeping table (empty when it
    /// has none). Schema-qualified reads only: creates nothing.
    pub(crate) async fn applied<C: ConnectionTrait>(
        &self,
        c: &C,
        schema: &str,
    ) -> Result<Vec<String>, DbErr> {
        let table = format!("{}.{}", quote(schema), quote(&self.table));
        let exists = c
            .query_one_raw(Statement::from_sql_and_values(
                sea_orm::DbBackend::Postgres,
                "SELECT to_regclass($1) IS NOT NULL",
                [Value::String(Some(table.clone()))],
            ))
            .await?
            .map(|r| r.try_get_by_index::<bool>(0))
            .transpose()?
            .unwrap_or(false);
        if !exists {
            return Ok(Vec::new());
        }
        let rows = c
            .query_all_raw(Statement::from_string(
                sea_orm::DbBackend::Postgres,
                format!("SELECT \"version\" FROM {table}"),
            ))
            .await?;
        rows.iter()
            .map(|r| r.try_get_by_index::<String>(0))
            .collect()
    }

    /// Apply every pending migration in `schema` (which must exist) inside
    /// `tx`: `search_path` is set to it for the migrations and set back
    /// afterwards (both transaction-local).
    pub(crate) async fn up_in(&self, tx: &DatabaseTransaction, schema: &str) -> Result<(), DbErr> {
        let before = tx
            .query_one_raw(Statement::from_string(
                sea_orm::DbBackend::Postgres,
                "SELECT current_setting('search_path')",
            ))
            .await?
            .map(|r| r.try_get_by_index::<String>(0))
            .transpose()?
            .unwrap_or_default();
        tx.execute_unprepared(&format!("SET LOCAL search_path TO {}", quote(schema)))
            .await?;
        (self.up)(tx).await?;
        tx.execute_raw(Statement::from_sql_and_values(
            sea_orm::DbBackend::Postgres,
            "SELECT set_config('search_path', $1, true)",
            [Value::String(Some(before))],
        ))
        .await?;
        Ok(())
    }
}

/// A migration error (the migration's message) or a database error, as an [`Error`].
pub(crate) fn err(e: DbErr, op: &'static str) -> Error {
    match &e {
        DbErr::Migration(m) => Error::backend(format!("migration failed: {m}")).with_source(e),
        _ => map_db_err(e, &Default::default()),
    }
    .with_operation(op)
}

/// Apply pending migrations of `M` (`steps`: at most this many).
pub async fn up<M: MigratorTrait>(store: &RelationalStore, steps: Option<u32>) -> Result<()> {
    in_schema(store, "migrate_up", async |tx| M::up(tx, steps).await).await
}

/// Roll back applied migrations of `M` (`steps`: this many, default all).
pub async fn down<M: MigratorTrait>(store: &RelationalStore, steps: Option<u32>) -> Result<()> {
    in_schema(store, "migrate_down", async |tx| M::down(tx, steps).await).await
}

/// Each migration of `M` with whether it is applied, in order.
pub async fn status<M: MigratorTrait>(store: &RelationalStore) -> Result<Vec<(String, bool)>> {
    let mut out = Vec::new();
    in_schema(store, "migrate_status", async |tx| {
        M::install(tx).await?;
        for m in M::get_migration_with_status(tx).await? {
            let applied = matches!(m.status(), sea_orm_migration::MigrationStatus::Applied);
            out.push((m.name().to_string(), applied));
        }
        Ok(())
    })
    .await?;
    Ok(out)
}

async fn in_schema(
    store: &RelationalStore,
    op: &'static str,
    body: impl AsyncFnOnce(&sea_orm::DatabaseTransaction) -> Result<(), DbErr>,
) -> Result<()> {
    let tx = store.connection().begin().await.map_err(|e| err(e, op))?;
    if let (Some(schema), Dialect::Postgres) = (store.schema(), store.dialect()) {
        // Created with the library's mark when missing (see `crate::schema`).
        crate::schema::ensure_namespace(&tx, schema)
            .await
            .map_err(|e| err(e, op))?;
        tx.execute_unprepared(&format!("SET LOCAL search_path TO {}", quote(schema)))
            .await
            .map_err(|e| err(e, op))?;
    }
    match body(&tx).await {
        Ok(()) => tx.commit().await.map_err(|e| err(e, op)),
        Err(e) => {
            let _ = tx.rollback().await;
            Err(err(e, op))
        }
    }
}
