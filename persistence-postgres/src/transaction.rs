//! Units of work: closure-style transactions with transaction-scoped repositories.
//!
//! ```no_run
//! # use persistence_postgres::RelationalStore;
//! # use persistence_core::{Entity, Repository};
//! # #[derive(Debug, Clone, serde::Serialize, serde::Deserialize, Entity)]
//! # struct Account { #[entity(id)] id: i64, balance: i64 }
//! # async fn demo(store: RelationalStore, a: Account, b: Account) -> persistence_core::Result<()> {
//! store
//!     .transaction(|tx| {
//!         Box::pin(async move {
//!             let accounts = tx.repository::<Account>();
//!             accounts.update(&a).await?;
//!             accounts.update(&b).await?;
//!             Ok::<_, persistence_core::Error>(())
//!         })
//!     })
//!     .await
//! # }
//! ```
//!
//! * `Ok` commits, `Err` rolls back; a panic or a dropped future rolls back
//!   too (the open transaction is rolled back when it is dropped).
//! * [`UnitOfWork::transaction`] nests with a `SAVEPOINT`: an inner `Err`
//!   rolls back to the savepoint only and the outer unit goes on.
//! * [`RelationalStore::transaction_with`] selects the isolation level
//!   (PostgreSQL; SQLite transactions are always serializable and ignore it).
//! * On a tenant's store under
//!   [`TenantStatements::SearchPath`](crate::TenantStatements) the
//!   transaction starts with `search_path` set to the tenant's schema (local
//!   to the transaction), so its repositories' bare table names and your
//!   own statements in it resolve there.
//! * A serialization failure or deadlock surfaces as a retryable
//!   `Conflict(Concurrent)`: run the whole closure again.
//! * [`TxRepository::get_for_update`] / [`TxRepository::find_for_update`]
//!   lock the rows they read ([`Lock`]: wait, `NOWAIT`, `SKIP LOCKED`;
//!   SQLite takes its database write lock instead), and
//!   [`TxRepository::query_as`] / [`TxRepository::execute`] run raw SQL in
//!   the transaction.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;

use persistence_core::lifecycle;
use persistence_core::repository::support;
use persistence_core::{
    BoxStream, Capabilities, Cursor, Entity, Error, Filter, GroupBy, Guard, NearestQuery, Page,
    Query, Repository, Result, Update, Value,
};
use sea_orm::{DatabaseTransaction, TransactionTrait};

pub use sea_orm::IsolationLevel;

mod lock;
pub use lock::Lock;

use crate::error::{Hints, map_db_err_with};
use crate::query::Dialect;
use crate::repository::RelationalRepository;
use crate::store::RelationalStore;

/// The future a unit-of-work closure returns.
pub type UnitFuture<'t, T, Er> =
    Pin<Box<dyn Future<Output = std::result::Result<T, Er>> + Send + 't>>;

/// An open transaction (or savepoint) handed to a unit-of-work closure.
pub struct UnitOfWork {
    tx: DatabaseTransaction,
    store: RelationalStore,
}

impl std::fmt::Debug for UnitOfWork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UnitOfWork")
            .field("store", &self.store)
            .finish()
    }
}

fn tx_err(e: sea_orm::DbErr, op: &'static str) -> Error {
    let hints = Hints {
        op: Some(op),
        column: None,
    };
    map_db_err_with(e, &Default::default(), hints).with_operation(op)
}

async fn run_unit<T, Er, F>(uow: UnitOfWork, f: F) -> std::result::Result<T, Er>
where
    F: for<'t> FnOnce(&'t UnitOfWork) -> UnitFuture<'t, T, Er>,
    Er: From<Error>,
{
    let outcome = f(&uow).await;
    match outcome {
        Ok(v) => {
            uow.tx
                .commit()
                .await
                .map_err(|e| Er::from(tx_err(e, "commit")))?;
            Ok(v)
        }
        Err(e) => {
            // A failed rollback leaves the connection to the pool's reset; the caller's error wins.
            let _ = uow.tx.rollback().await;
            Err(e)
        }
    }
}

impl RelationalStore {
    /// Run `f` in a transaction: commit on `Ok`, roll back on `Err` (and on panic / drop).
    ///
    /// With a leak detector ([`RelationalStore::set_leak_detector`]), a
    /// transaction open longer than its threshold is reported with the
    /// caller's file and line.
    #[track_caller]
    pub fn transaction<T, Er, F>(&self, f: F) -> impl Future<Output = std::result::Result<T, Er>>
    where
        F: for<'t> FnOnce(&'t UnitOfWork) -> UnitFuture<'t, T, Er>,
        Er: From<Error>,
    {
        self.transaction_with(None, f)
    }

    /// [`transaction`](Self::transaction) with an isolation level (PostgreSQL).
    #[track_caller]
    pub fn transaction_with<T, Er, F>(
        &self,
        isolation: Option<IsolationLevel>,
        f: F,
    ) -> impl Future<Output = std::result::Result<T, Er>>
    where
        F: for<'t> FnOnce(&'t UnitOfWork) -> UnitFuture<'t, T, Er>,
        Er: From<Error>,
    {
        let site = std::panic::Location::caller();
        async move {
            let isolation = match self.dialect() {
                Dialect::Postgres => isolation,
                Dialect::Sqlite => None,
            };
            let tx = self
                .connection()
                .begin_with_config(isolation, None)
                .await
                .map_err(|e| Er::from(tx_err(e, "begin")))?;
            // A tenant store under `TenantStatements::SearchPath`: its
            // repositories name tables unqualified.
            if let Some(schema) = self.search_path() {
                if let Err(e) = crate::repository::tenant::set_search_path(&tx, schema).await {
                    let _ = tx.rollback().await;
                    return Err(Er::from(tx_err(e, "begin")));
                }
            }
            let _hold = self
                .leak_detector()
                .map(|d| d.track("transaction", None, Some(site)));
            run_unit(
                UnitOfWork {
                    tx,
                    store: self.clone(),
                },
                f,
            )
            .await
        }
    }
}

impl UnitOfWork {
    /// A repository of `E` whose every statement runs in this transaction.
    pub fn repository<E: Entity>(&self) -> TxRepository<'_, E> {
        TxRepository {
            repo: self.store.repository::<E>(),
            tx: &self.tx,
            _entity: PhantomData,
        }
    }

    /// A nested unit of work on a `SAVEPOINT`: `Err` rolls back to it, `Ok` releases it.
    pub async fn transaction<T, Er, F>(&self, f: F) -> std::result::Result<T, Er>
    where
        F: for<'t> FnOnce(&'t UnitOfWork) -> UnitFuture<'t, T, Er>,
        Er: From<Error>,
    {
        let tx = self
            .tx
            .begin()
            .await
            .map_err(|e| Er::from(tx_err(e, "savepoint")))?;
        run_unit(
            UnitOfWork {
                tx,
                store: self.store.clone(),
            },
            f,
        )
        .await
    }

    /// The underlying sea-orm transaction (for statements of your own).
    pub fn connection(&self) -> &DatabaseTransaction {
        &self.tx
    }
}

/// A repository bound to an open transaction ([`UnitOfWork::repository`]).
pub struct TxRepository<'t, E: Entity> {
    repo: RelationalRepository<E>,
    tx: &'t DatabaseTransaction,
    _entity: PhantomData<fn() -> E>,
}

impl<E: Entity> std::fmt::Debug for TxRepository<'_, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TxRepository")
            .field("repo", &self.repo)
            .finish()
    }
}

impl<E: Entity> Repository<E> for TxRepository<'_, E> {
    fn capabilities(&self) -> Capabilities {
        self.repo.capabilities()
    }
    async fn ensure_schema(&self) -> Result<()> {
        self.repo.ensure_schema_on(self.tx).await
    }
    async fn verify_schema(&self) -> Result<persistence_core::SchemaReport> {
        self.repo.verify_schema_on(self.tx).await
    }
    async fn get(&self, id: &E::Id) -> Result<Option<E>> {
        self.repo.get_on(self.tx, id).await
    }
    async fn get_many(&self, ids: &[E::Id]) -> Result<Vec<E>> {
        self.repo.get_many_on(self.tx, ids).await
    }
    async fn insert(&self, entity: &E) -> Result<E> {
        self.repo.insert_on(self.tx, entity).await
    }
    async fn insert_many(&self, entities: &[E]) -> Result<u64> {
        // A savepoint keeps the batch all-or-nothing inside the enclosing transaction.
        let sp = self
            .tx
            .begin()
            .await
            .map_err(|e| tx_err(e, "insert_many"))?;
        match self.repo.insert_all_on(&sp, entities).await {
            Ok(n) => {
                sp.commit().await.map_err(|e| tx_err(e, "insert_many"))?;
                Ok(n)
            }
            Err(e) => {
                let _ = sp.rollback().await;
                Err(e)
            }
        }
    }
    async fn update(&self, entity: &E) -> Result<E> {
        self.repo.update_on(self.tx, entity).await
    }
    async fn upsert(&self, entity: &E) -> Result<E> {
        self.repo.upsert_on(self.tx, entity).await
    }
    async fn delete(&self, id: &E::Id) -> Result<bool> {
        if lifecycle::soft_deletes::<E>() {
            return lifecycle::soft_delete(self, id)
                .await
                .map_err(|e| e.in_context(E::meta().name, "delete"));
        }
        self.repo.delete_on(self.tx, id).await
    }
    async fn delete_many(&self, filter: &Filter) -> Result<u64> {
        if lifecycle::soft_deletes::<E>() {
            return lifecycle::soft_delete_many(self, filter)
                .await
                .map_err(|e| e.in_context(E::meta().name, "delete_many"));
        }
        self.repo.purge_on(self.tx, filter, "delete_many").await
    }

    async fn purge(&self, filter: &Filter) -> Result<u64> {
        self.repo.purge_on(self.tx, filter, "purge").await
    }
    async fn find(&self, query: &Query) -> Result<Vec<E>> {
        self.repo.find_on(self.tx, query).await
    }
    async fn find_unordered(&self, query: &Query) -> Result<Vec<E>> {
        self.repo.find_unordered_on(self.tx, query).await
    }
    async fn find_one(&self, query: &Query) -> Result<Option<E>> {
        support::find_one_via_find(self, query).await
    }
    async fn count(&self, filter: &Filter) -> Result<u64> {
        self.repo.count_on(self.tx, filter).await
    }
    async fn exists(&self, filter: &Filter) -> Result<bool> {
        self.repo.exists_on(self.tx, filter).await
    }
    fn stream<'a>(&'a self, query: &Query) -> BoxStream<'a, Result<E>> {
        self.repo.stream_on(self.tx, query)
    }
    async fn page(&self, query: &Query, cursor: Option<&Cursor>) -> Result<Page<E>> {
        support::page_via_find(self, query, cursor)
            .await
            .map_err(|e| e.in_context(E::meta().name, "page"))
    }
    async fn select(&self, query: &Query, fields: &[&str]) -> Result<Vec<Value>> {
        self.repo.select_on(self.tx, query, fields).await
    }
    async fn distinct(&self, field: &str, filter: &Filter) -> Result<Vec<Value>> {
        self.repo.distinct_on(self.tx, field, filter).await
    }

    async fn patch(&self, id: &E::Id, update: &Update<E>, guard: &Guard) -> Result<E> {
        self.repo.patch_on(self.tx, id, update, guard).await
    }
    async fn update_where(&self, filter: &Filter, update: &Update<E>) -> Result<u64> {
        self.repo.update_where_on(self.tx, filter, update).await
    }
    async fn find_one_and_delete(&self, query: &Query) -> Result<Option<E>> {
        if lifecycle::soft_deletes::<E>() {
            return lifecycle::soft_pop(self, query)
                .await
                .map_err(|e| e.in_context(E::meta().name, "find_one_and_delete"));
        }
        self.repo.find_one_and_delete_on(self.tx, query).await
    }

    async fn aggregate(&self, filter: &Filter, group: &GroupBy<E>) -> Result<Vec<Value>> {
        self.repo.aggregate_on(self.tx, filter, group).await
    }

    /// The ranked statement in this transaction.
    async fn find_text(&self, query: &persistence_core::TextQuery) -> Result<Vec<(E, f64)>> {
        self.repo.text_on(self.tx, query).await
    }

    /// pgvector: the index-ordered statement in this transaction (its
    /// `SET LOCAL`s put back after it); elsewhere exact over `find`.
    async fn find_nearest(&self, query: &NearestQuery) -> Result<Vec<(E, f64)>> {
        match self.repo.nearest_on(self.tx, query).await? {
            Some(rows) => Ok(rows),
            None => support::nearest_via_find(self, query)
                .await
                .map_err(|e| e.in_context(E::meta().name, "find_nearest")),
        }
    }
}
