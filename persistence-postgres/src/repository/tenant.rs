//! Row-level tenancy on the relational backend (see
//! [`persistence_core::tenant`]): each call on a tenant entity runs for the
//! tenant of its context.
//!
//! * Filters get `tenant = current` from `Filter::checked`, on both
//!   dialects; without a tenant context every call is `InvalidInput`.
//! * PostgreSQL: each call runs in its own transaction that first sets
//!   `app.tenant` with `set_config(.., true)` (transaction-local), so the
//!   row-level security policy of the table (`schema/rls.rs`) applies;
//!   `stream` reads keyset pages, each in such a transaction. That costs
//!   a `BEGIN`, the `set_config` and a `COMMIT` per call (see the README's
//!   measurement).
//! * SQLite has no row-level security: the mandatory filter is the guard.

use futures_util::StreamExt as _;
use persistence_core::repository::support;
use persistence_core::{BoxStream, Cursor, Entity, Query, Result, Value, tenant};
use sea_orm::{DatabaseTransaction, DbErr, Statement, TransactionTrait};

use super::RelationalRepository;
use crate::query::Dialect;
use crate::schema::rls::SETTING;
use crate::store::conn::Conn;

/// Rows per page when streaming a tenant entity on PostgreSQL.
const STREAM_PAGE: u64 = 1_000;

impl<E: Entity> RelationalRepository<E> {
    /// For a tenant entity: its tenant (`InvalidInput` without a context)
    /// and, on PostgreSQL, a transaction with `app.tenant` set to it. `None`
    /// runs the call on the pool.
    ///
    /// A repository of a tenant store under
    /// [`TenantStatements::SearchPath`](crate::TenantStatements) gets such a
    /// transaction too, with `search_path` set to the tenant's schema (also
    /// transaction-local): its statements name tables unqualified.
    pub(super) async fn tenant_tx(&self, op: &'static str) -> Result<Option<DatabaseTransaction>> {
        let meta = E::meta();
        let t = tenant::require(meta).map_err(|e| e.in_context(meta.name, op))?;
        let path = self.store.search_path();
        if (t.is_none() && path.is_none()) || self.dialect() != Dialect::Postgres {
            return Ok(None);
        }
        let tx = self.db().begin().await.map_err(|e| self.err(e, op))?;
        if let Err(e) = self.scope_tx(&tx, t.as_ref(), path).await {
            let _ = tx.rollback().await;
            return Err(self.err(e, op));
        }
        Ok(Some(tx))
    }

    /// `search_path` and `app.tenant`, each when given, local to `tx`.
    async fn scope_tx(
        &self,
        tx: &DatabaseTransaction,
        tenant: Option<&Value>,
        path: Option<&str>,
    ) -> Result<(), DbErr> {
        if let Some(schema) = path {
            set_search_path(tx, schema).await?;
        }
        if let Some(t) = tenant {
            set_tenant(tx, t).await?;
        }
        Ok(())
    }

    /// Set `app.tenant` in `tx` for a tenant entity on PostgreSQL, and the
    /// `search_path` of a tenant store under `SearchPath` (a bulk insert's
    /// transaction); nothing for other entities.
    pub(crate) async fn set_tenant_in(&self, tx: &DatabaseTransaction) -> Result<()> {
        let meta = E::meta();
        let t = tenant::require(meta).map_err(|e| e.in_context(meta.name, "insert_many"))?;
        if self.dialect() != Dialect::Postgres {
            return Ok(());
        }
        self.scope_tx(tx, t.as_ref(), self.store.search_path())
            .await
            .map_err(|e| self.err(e, "insert_many"))
    }

    /// Commit `tx` when `out` is `Ok`, roll it back otherwise.
    pub(super) async fn finish<T>(
        &self,
        tx: DatabaseTransaction,
        out: Result<T>,
        op: &'static str,
    ) -> Result<T> {
        match out {
            Ok(v) => {
                tx.commit().await.map_err(|e| self.err(e, op))?;
                Ok(v)
            }
            Err(e) => {
                let _ = tx.rollback().await;
                Err(e)
            }
        }
    }

    /// `stream` of a tenant entity on PostgreSQL: keyset pages, each read
    /// in its own tenant transaction (a server-side cursor would hold one
    /// transaction open for as long as the caller reads). A query with a
    /// limit or an offset is read with one `find`.
    pub(super) fn tenant_stream<'a>(&'a self, query: &Query) -> BoxStream<'a, Result<E>> {
        if query.limit.is_some() || query.offset > 0 {
            let q = query.clone();
            let all = futures_util::stream::once(async move {
                match self.find_tenant(&q).await {
                    Ok(rows) => futures_util::stream::iter(rows.into_iter().map(Ok)).left_stream(),
                    Err(e) => futures_util::stream::once(async move { Err(e) }).right_stream(),
                }
            });
            return Box::pin(all.flatten());
        }
        let q = query.clone().limit(STREAM_PAGE);
        let pages = futures_util::stream::unfold(Some(None::<Cursor>), move |state| {
            let q = q.clone();
            async move {
                let cursor = state?;
                match support::page_via_find(self, &q, cursor.as_ref()).await {
                    Ok(page) => {
                        let items: Vec<Result<E>> = page.items.into_iter().map(Ok).collect();
                        Some((items, page.next.map(Some)))
                    }
                    Err(e) => Some((vec![Err(e)], None)),
                }
            }
        });
        Box::pin(pages.flat_map(futures_util::stream::iter))
    }

    async fn find_tenant(&self, q: &Query) -> Result<Vec<E>> {
        persistence_core::Repository::find(self, q).await
    }
}

/// `SELECT set_config('search_path', $1, true)` on `c` (inside a
/// transaction): `schema` (a validated name) alone, quoted. One statement
/// text for every tenant, and never session-level: the connection goes
/// back to the pool with the server's `search_path`.
pub(crate) async fn set_search_path<C: Conn>(c: &C, schema: &str) -> Result<(), DbErr> {
    let stmt = Statement::from_sql_and_values(
        sea_orm::DatabaseBackend::Postgres,
        "SELECT set_config('search_path', $1, true)",
        [sea_orm::Value::String(Some(crate::query::quote(schema)))],
    );
    c.row(stmt).await.map(|_| ())
}

/// `SELECT set_config('app.tenant', $1, true)` on `c` (inside a transaction).
pub(crate) async fn set_tenant<C: Conn>(c: &C, tenant: &Value) -> Result<(), DbErr> {
    let text = match tenant {
        Value::String(s) => s.clone(),
        Value::Uuid(u) => u.hyphenated().to_string(),
        Value::I64(i) => i.to_string(),
        other => other.to_json().to_string(),
    };
    let stmt = Statement::from_sql_and_values(
        sea_orm::DatabaseBackend::Postgres,
        format!("SELECT set_config('{SETTING}', $1, true)"),
        [sea_orm::Value::String(Some(text))],
    );
    c.row(stmt).await.map(|_| ())
}
