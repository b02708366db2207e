//! Schema-per-tenant (PostgreSQL).
//!
//! Every tenant gets its own schema, named by its validated [`TenantId`].
//! Tenant-scoped repositories use **schema-qualified** table names
//! (`"acme"."orders"`); the session `search_path` is never touched, so
//! nothing can leak between tenants through pooled connections.
//!
//! * [`TenantId::new`] accepts `^[a-z][a-z0-9_]{0,62}$` only and rejects
//!   reserved names (`public`, `information_schema`, `pg_*`, `admin`, ...:
//!   [`persistence_core::names`]): anything else is `InvalidInput` before
//!   any SQL runs.
//! * [`Tenants`] provisions (creates the schema, marked as the library's,
//!   and every registered entity's tables, in one transaction), lists and
//!   drops tenants. The list of tenants is kept in the registry table
//!   `persistence_tenants` of a control schema (default `public`).
//! * [`Tenants::drop_tenant`] drops only a schema the library created (it
//!   carries the mark, see [`crate::schema`]): a tenant whose schema existed
//!   before `provision` (or was made by hand) is refused with a `Config`
//!   error and left intact.
//! * [`TenantResolver`] turns a request / context value into a tenant id.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use persistence_core::names::{self, NameKind};
use persistence_core::{Entity, Error, Result};
use sea_orm::{ConnectionTrait, DatabaseTransaction, Statement, TransactionTrait};

use crate::error::map_db_err;
use crate::query::{Dialect, quote};
use crate::repository::RelationalRepository;
use crate::store::RelationalStore;
use crate::store::conn::Conn;

/// The control schema when the store has none (the registry table is placed there).
const DEFAULT_CONTROL: &str = "public";

/// A validated tenant id, usable as a schema name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TenantId(String);

impl TenantId {
    /// Validate with [`persistence_core::names`] ([`NameKind::Tenant`]):
    /// `^[a-z][a-z0-9_]{0,62}$`, not reserved (`public`,
    /// `information_schema`, `pg_*`, `admin`, ...).
    pub fn new(id: impl AsRef<str>) -> Result<TenantId> {
        let id = id.as_ref();
        names::validate(NameKind::Tenant, id)?;
        // A tenant id is also a schema name.
        names::validate(NameKind::Schema, id)?;
        Ok(TenantId(id.to_string()))
    }

    /// The id (also the schema name).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for TenantId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Finds the tenant of a request or context value.
pub trait TenantResolver<Ctx: ?Sized>: Send + Sync {
    /// The tenant of `ctx` (`InvalidInput` when it has none or a bad one).
    fn resolve(&self, ctx: &Ctx) -> Result<TenantId>;
}

impl<Ctx: ?Sized, F> TenantResolver<Ctx> for F
where
    F: Fn(&Ctx) -> Result<TenantId> + Send + Sync,
{
    fn resolve(&self, ctx: &Ctx) -> Result<TenantId> {
        self(ctx)
    }
}

type SetupFn = Arc<
    dyn for<'a> Fn(
            &'a RelationalStore,
            &'a DatabaseTransaction,
        ) -> Pin<Box<dyn Future<Output = Result<()>> + Send + 'a>>
        + Send
        + Sync,
>;

/// Tenant management over one PostgreSQL pool.
#[derive(Clone)]
pub struct Tenants {
    base: RelationalStore,
    control: String,
    setup: Vec<SetupFn>,
}

impl std::fmt::Debug for Tenants {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tenants")
            .field("control", &self.control)
            .field("entities", &self.setup.len())
            .finish()
    }
}

impl Tenants {
    /// Tenants of `store` (PostgreSQL), registry in `store`'s schema or `public`.
    pub fn new(store: &RelationalStore) -> Result<Tenants> {
        if store.dialect() != Dialect::Postgres {
            return Err(Error::unsupported("schema-per-tenant needs PostgreSQL"));
        }
        // The store's schema was validated when the store was built; without
        // one the registry goes to `public` (placed there, never owned).
        let control = store.schema().unwrap_or(DEFAULT_CONTROL).to_string();
        Ok(Tenants {
            base: store.clone(),
            control,
            setup: Vec::new(),
        })
    }

    /// Create `E`'s table in every tenant provisioned from now on.
    pub fn register<E: Entity>(mut self) -> Self {
        self.setup.push(Arc::new(|store, tx| {
            Box::pin(async move { store.repository::<E>().ensure_schema_on(tx).await })
        }));
        self
    }

    fn registry(&self) -> String {
        format!("{}.\"persistence_tenants\"", quote(&self.control))
    }

    fn err(e: sea_orm::DbErr, op: &'static str) -> Error {
        map_db_err(e, &Default::default()).with_operation(op)
    }

    async fn ensure_registry<C: Conn>(&self, c: &C) -> Result<()> {
        if self.control != DEFAULT_CONTROL {
            crate::schema::ensure_namespace(c, &self.control)
                .await
                .map_err(|e| Self::err(e, "provision"))?;
        }
        c.execute_unprepared(&format!(
            "CREATE TABLE IF NOT EXISTS {} (\"id\" text PRIMARY KEY, \
             \"created_at\" timestamptz NOT NULL DEFAULT now())",
            self.registry()
        ))
        .await
        .map_err(|e| Self::err(e, "provision"))?;
        Ok(())
    }

    /// The store whose tables live in `tenant`'s schema (same pool).
    pub fn store(&self, tenant: &TenantId) -> RelationalStore {
        self.base.with_schema(tenant.as_str())
    }

    /// A repository of `E` scoped to `tenant`.
    pub fn repository<E: Entity>(&self, tenant: &TenantId) -> RelationalRepository<E> {
        self.store(tenant).repository::<E>()
    }

    /// Create the tenant's schema and the registered tables, and record it
    /// (one transaction; idempotent).
    pub async fn provision(&self, tenant: &TenantId) -> Result<()> {
        let db = self.base.connection();
        let tx = db.begin().await.map_err(|e| Self::err(e, "provision"))?;
        self.ensure_registry(&tx).await?;
        let store = self.store(tenant);
        // Created with the library's mark when missing; an existing schema
        // is used as it is (and `drop_tenant` will refuse it).
        crate::schema::ensure_namespace(&tx, tenant.as_str())
            .await
            .map_err(|e| Self::err(e, "provision"))?;
        for setup in &self.setup {
            setup(&store, &tx).await?;
        }
        tx.execute_raw(Statement::from_sql_and_values(
            db.get_database_backend(),
            format!(
                "INSERT INTO {} (\"id\") VALUES ($1) ON CONFLICT (\"id\") DO NOTHING",
                self.registry()
            ),
            [sea_orm::Value::String(Some(tenant.as_str().to_string()))],
        ))
        .await
        .map_err(|e| Self::err(e, "provision"))?;
        tx.commit().await.map_err(|e| Self::err(e, "provision"))?;
        Ok(())
    }

    /// Drop the tenant's schema with everything in it, and forget it. Only
    /// a schema the library created (marked) is dropped; any other is a
    /// `Config` error and nothing changes.
    pub async fn drop_tenant(&self, tenant: &TenantId) -> Result<()> {
        let db = self.base.connection();
        let tx = db.begin().await.map_err(|e| Self::err(e, "drop_tenant"))?;
        self.ensure_registry(&tx).await?;
        crate::schema::drop_namespace(&tx, tenant.as_str())
            .await
            .map_err(|e| e.with_operation("drop_tenant"))?;
        tx.execute_raw(Statement::from_sql_and_values(
            db.get_database_backend(),
            format!("DELETE FROM {} WHERE \"id\" = $1", self.registry()),
            [sea_orm::Value::String(Some(tenant.as_str().to_string()))],
        ))
        .await
        .map_err(|e| Self::err(e, "drop_tenant"))?;
        tx.commit().await.map_err(|e| Self::err(e, "drop_tenant"))?;
        Ok(())
    }

    /// Every provisioned tenant, sorted.
    pub async fn list(&self) -> Result<Vec<TenantId>> {
        let db = self.base.connection();
        self.ensure_registry(db).await?;
        let rows = db
            .query_all_raw(Statement::from_string(
                db.get_database_backend(),
                format!(
                    "SELECT \"id\" FROM {} ORDER BY \"id\" COLLATE \"C\"",
                    self.registry()
                ),
            ))
            .await
            .map_err(|e| Self::err(e, "list_tenants"))?;
        rows.iter()
            .map(|r| {
                let id: String = r
                    .try_get_by_index(0)
                    .map_err(|e| Error::decode(e.to_string()))?;
                TenantId::new(id)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_ids() {
        assert!(TenantId::new("acme_01").is_ok());
        for bad in [
            "",
            "x; DROP SCHEMA public",
            "\"",
            "Acme",
            "1acme",
            "аcme", // Cyrillic а
            "acme\u{200b}",
            "public",
            "pg_catalog",
            "pg_toast",
            "information_schema",
            "admin",
            "config",
            &"a".repeat(64),
        ] {
            assert!(TenantId::new(bad).is_err(), "{bad:?}");
        }
        assert!(TenantId::new("a".repeat(63)).is_ok());
    }
}
