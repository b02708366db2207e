//! The repository traits.
//!
//! [`Repository`] is the static form: native `async fn`s, no boxing, used by
//! backends and by decorators (cache, retry, metrics), which wrap an inner
//! `R: Repository<E>` and forward every method. [`DynRepository`] is the
//! object-safe form for wiring by configuration (`Arc<dyn DynRepository<E>>`);
//! every `Repository` is a `DynRepository` through a blanket impl, and
//! `Arc<dyn DynRepository<E>>` is a `Repository` again, so layers compose over
//! either.

use std::future::Future;
use std::sync::Arc;

use futures_core::Stream;
use futures_util::StreamExt as _;
use std::pin::Pin;

use crate::aggregate::GroupBy;
use crate::drift::SchemaReport;
use crate::entity::Entity;
use crate::error::Result;
use crate::filter::Filter;
use crate::query::{Cursor, Page, Query};
use crate::text::TextQuery;
use crate::update::{Guard, Update};
use crate::value::Value;
use crate::vector::NearestQuery;

pub use crate::value::TimestampPrecision;

/// A boxed, `Send` stream of results.
pub type BoxStream<'a, T> = Pin<Box<dyn Stream<Item = T> + Send + 'a>>;

/// What a backend can do. The conformance suite skips a case only when a
/// capability says the backend cannot do it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Capabilities {
    /// Backend name for messages and metrics (`memory`, `postgres`, `sqlite`, `mongo`, ...).
    pub backend: &'static str,
    /// Multi-statement transactions are available.
    pub transactions: bool,
    /// Unique constraints are enforced.
    pub unique_constraints: bool,
    /// `stream` reads incrementally from the server.
    pub streaming: bool,
    /// `insert_many` is all-or-nothing.
    pub atomic_batch: bool,
    /// Timestamp precision kept.
    pub timestamp_precision: TimestampPrecision,
    /// `NaN` and infinities round-trip in float fields.
    pub non_finite_floats: bool,
    /// `-0.0` keeps its sign in float fields.
    pub signed_zero: bool,
    /// Filters on nested paths inside JSON fields.
    pub nested_paths: bool,
    /// Transactions can lock the rows they read (`SELECT … FOR UPDATE`
    /// with `NOWAIT` / `SKIP LOCKED`): another transaction's lock on a
    /// row is waited for, reported, or skipped, row by row. `false` where
    /// a backend has no row locks (SQLite locks the whole database;
    /// MongoDB has none); see the backend's docs for what it does instead.
    pub row_locks: bool,
    /// Ignore-case filters fold every letter by the Unicode rule of
    /// [`crate::filter`] (`É` matches `é`); `false` where only ASCII letters
    /// fold (SQLite's built-in `lower()`/`LIKE`).
    pub unicode_case_folding: bool,
    /// `find_nearest` is answered by an approximate index (pgvector's HNSW /
    /// IVFFlat; MongoDB's `$vectorSearch` would be one, not used here):
    /// results may miss some true neighbours. `false`: exact brute force.
    pub approximate_nearest: bool,
    /// Declared relations are enforced (see [`crate::relation`]): a write
    /// naming a missing parent is refused, deleting a parent applies its
    /// children's `on_delete`.
    pub relations: bool,
    /// Text search follows the word rules of [`crate::text`] (stop words,
    /// stemming, a text index). `false`: MongoDB without text indexes,
    /// where each word is an escaped case-insensitive substring `$regex`
    /// (no stemming; see [`crate::text`]).
    pub native_text_search: bool,
    /// `find_text` is answered from a server-side text index (PostgreSQL's
    /// GIN index on the generated `tsvector` column, SQLite's FTS5 table,
    /// MongoDB's text index with `$text`); `false`: every candidate row is
    /// examined (memory; PostgreSQL on a table the library did not create;
    /// MongoDB's `$regex` fallback). Known after `ensure_schema`.
    pub text_index: bool,
}

impl Capabilities {
    /// Everything supported, microsecond timestamps: start from this and turn off what is missing.
    pub const fn full(backend: &'static str) -> Capabilities {
        Capabilities {
            backend,
            transactions: true,
            unique_constraints: true,
            streaming: true,
            atomic_batch: true,
            timestamp_precision: TimestampPrecision::Micros,
            non_finite_floats: true,
            signed_zero: true,
            nested_paths: true,
            row_locks: true,
            unicode_case_folding: true,
            approximate_nearest: false,
            relations: true,
            native_text_search: true,
            text_index: true,
        }
    }
}

/// A typed repository of entities `E` (static form).
///
/// Semantics shared by every backend (checked by the conformance suite):
/// * `insert`, `update` and `upsert` return the *stored* entity: what a
///   `get` right after the write returns, not the input. Timestamps come
///   back truncated to [`Capabilities::timestamp_precision`], values a
///   column rounds (a `numeric(12,2)` column of an existing table) come back
///   rounded (SQL backends read the row back with `RETURNING`).
/// * `insert` fails with `Conflict(DuplicateId)` when the id exists and
///   `Conflict(Unique)` on a unique violation; it stores version 1 (for
///   versioned entities).
/// * `update` requires the stored version to equal the entity's version,
///   stores version + 1 and returns the stored entity; a stale version is
///   `Conflict(Version)`, a missing row `NotFound`. Entities without a version
///   field are overwritten.
/// * `upsert` inserts or overwrites regardless of version (version becomes
///   stored + 1, or 1); unique violations are still `Conflict`.
/// * `delete` returns whether a row was deleted.
/// * `find` and `stream` return rows in the query's order, ties broken by id;
///   without sort keys, in id order. See [`crate::filter`] for filter semantics.
pub trait Repository<E: Entity>: Send + Sync {
    /// What this backend can do.
    fn capabilities(&self) -> Capabilities;

    /// Create the table / collection, constraints and indexes if missing (idempotent).
    fn ensure_schema(&self) -> impl Future<Output = Result<()>> + Send;

    /// Compare the live table / collection with the entity metadata and
    /// report every difference (see [`crate::drift`]). Read-only: never
    /// creates or alters anything. `Err` only when the check itself could
    /// not run (server unreachable, ...); a missing table is a difference.
    fn verify_schema(&self) -> impl Future<Output = Result<SchemaReport>> + Send;

    /// The entity with this id.
    fn get(&self, id: &E::Id) -> impl Future<Output = Result<Option<E>>> + Send;

    /// The entities with these ids that exist, in the order of `ids` (duplicates collapsed).
    fn get_many(&self, ids: &[E::Id]) -> impl Future<Output = Result<Vec<E>>> + Send;

    /// Insert a new entity.
    fn insert(&self, entity: &E) -> impl Future<Output = Result<E>> + Send;

    /// Insert many; returns how many were inserted. All-or-nothing when
    /// [`Capabilities::atomic_batch`].
    fn insert_many(&self, entities: &[E]) -> impl Future<Output = Result<u64>> + Send;

    /// Update with optimistic locking.
    fn update(&self, entity: &E) -> impl Future<Output = Result<E>> + Send;

    /// Insert or overwrite.
    fn upsert(&self, entity: &E) -> impl Future<Output = Result<E>> + Send;

    /// Delete by id; `true` if something was deleted.
    fn delete(&self, id: &E::Id) -> impl Future<Output = Result<bool>> + Send;

    /// Delete every row matching `filter`; returns how many. Soft-deletable
    /// entities are soft-deleted (see [`crate::lifecycle`]).
    fn delete_many(&self, filter: &Filter) -> impl Future<Output = Result<u64>> + Send;

    /// Remove every row matching `filter` for good, soft-deleted rows
    /// included unless the filter names a scope
    /// ([`Filter::only_deleted`] empties the trash); returns how many. The
    /// same as `delete_many` for entities without soft delete.
    fn purge(&self, filter: &Filter) -> impl Future<Output = Result<u64>> + Send;

    /// Rows matching the query.
    fn find(&self, query: &Query) -> impl Future<Output = Result<Vec<E>>> + Send;

    /// The rows [`find`](Repository::find) returns, in whatever order the
    /// backend reads them cheapest: for callers that order (or group) the
    /// rows themselves, like eager loading. A backend may skip sorting only
    /// when the query has no limit and no offset (then the order picks no
    /// rows). Required, so that no decorator forgets to pass it on (a
    /// backend that cannot skip the sort answers with `find`).
    fn find_unordered(&self, query: &Query) -> impl Future<Output = Result<Vec<E>>> + Send;

    /// The first row matching the query.
    fn find_one(&self, query: &Query) -> impl Future<Output = Result<Option<E>>> + Send;

    /// Number of rows matching `filter`.
    fn count(&self, filter: &Filter) -> impl Future<Output = Result<u64>> + Send;

    /// Whether any row matches `filter`.
    fn exists(&self, filter: &Filter) -> impl Future<Output = Result<bool>> + Send;

    /// Rows matching the query as a stream that does not hold the whole result in memory.
    fn stream<'a>(&'a self, query: &Query) -> BoxStream<'a, Result<E>>;

    /// One page of a keyset-paginated query (`query.limit` is the page size).
    fn page(
        &self,
        query: &Query,
        cursor: Option<&Cursor>,
    ) -> impl Future<Output = Result<Page<E>>> + Send;

    /// Apply `update` to the entity with this id in one statement, when the
    /// stored row meets `guard`; returns the stored entity after the update.
    /// Versioned entities get `version + 1` in the same statement. A missing
    /// row is `NotFound`, a failed guard filter `Conflict(Guard)`, a failed
    /// guard version `Conflict(Version)`; then nothing changes. See
    /// [`crate::update`].
    fn patch(
        &self,
        id: &E::Id,
        update: &Update<E>,
        guard: &Guard,
    ) -> impl Future<Output = Result<E>> + Send;

    /// Apply `update` to every row matching `filter` in one statement;
    /// returns how many rows matched (each was updated, its version bumped).
    fn update_where(
        &self,
        filter: &Filter,
        update: &Update<E>,
    ) -> impl Future<Output = Result<u64>> + Send;

    /// Delete the first row matching the query (in its order) and return it,
    /// atomically: two concurrent calls never return the same row (the
    /// job-queue "pop").
    fn find_one_and_delete(&self, query: &Query) -> impl Future<Output = Result<Option<E>>> + Send;

    /// Only the named fields of the rows matching the query, each row a
    /// [`Value::Object`] keyed by stored field name. An unknown field is
    /// `InvalidInput` (see [`crate::select`] for the rules, and
    /// [`SelectExt::select_as`](crate::select::SelectExt::select_as) for the typed form).
    fn select(
        &self,
        query: &Query,
        fields: &[&str],
    ) -> impl Future<Output = Result<Vec<Value>>> + Send;

    /// The distinct values of `field` among the rows matching `filter`, in
    /// ascending order (null last, when present). The field must be a
    /// top-level scalar field (see [`crate::select`]).
    fn distinct(
        &self,
        field: &str,
        filter: &Filter,
    ) -> impl Future<Output = Result<Vec<Value>>> + Send;

    /// Group the rows matching `filter` and aggregate each group; each row a
    /// [`Value::Object`] of keys and aggregate aliases. See [`crate::aggregate`].
    fn aggregate(
        &self,
        filter: &Filter,
        group: &GroupBy<E>,
    ) -> impl Future<Output = Result<Vec<Value>>> + Send;

    /// The `k` rows matching the query's filter nearest to its vector, as
    /// `(entity, distance)` in distance order, ties by id. See
    /// [`crate::vector`] (and [`NearestExt`](crate::vector::NearestExt) for
    /// the builder form `repo.nearest(field, &v, k)`).
    fn find_nearest(
        &self,
        query: &NearestQuery,
    ) -> impl Future<Output = Result<Vec<(E, f64)>>> + Send;

    /// The rows matching the query's filter and search string, as
    /// `(entity, score)`, most relevant first, ties by id. See
    /// [`crate::text`] (and [`TextSearchExt`](crate::text::TextSearchExt)
    /// for the builder form `repo.search_text("..")`).
    fn find_text(&self, query: &TextQuery) -> impl Future<Output = Result<Vec<(E, f64)>>> + Send;
}

/// The object-safe form of [`Repository`], for `Arc<dyn DynRepository<E>>`.
#[async_trait::async_trait]
pub trait DynRepository<E: Entity>: Send + Sync {
    /// See [`Repository::capabilities`].
    fn capabilities(&self) -> Capabilities;
    /// See [`Repository::ensure_schema`].
    async fn ensure_schema(&self) -> Result<()>;
    /// See [`Repository::verify_schema`].
    async fn verify_schema(&self) -> Result<SchemaReport>;
    /// See [`Repository::get`].
    async fn get(&self, id: &E::Id) -> Result<Option<E>>;
    /// See [`Repository::get_many`].
    async fn get_many(&self, ids: &[E::Id]) -> Result<Vec<E>>;
    /// See [`Repository::insert`].
    async fn insert(&self, entity: &E) -> Result<E>;
    /// See [`Repository::insert_many`].
    async fn insert_many(&self, entities: &[E]) -> Result<u64>;
    /// See [`Repository::update`].
    async fn update(&self, entity: &E) -> Result<E>;
    /// See [`Repository::upsert`].
    async fn upsert(&self, entity: &E) -> Result<E>;
    /// See [`Repository::delete`].
    async fn delete(&self, id: &E::Id) -> Result<bool>;
    /// See [`Repository::delete_many`].
    async fn delete_many(&self, filter: &Filter) -> Result<u64>;
    /// See [`Repository::purge`].
    async fn purge(&self, filter: &Filter) -> Result<u64>;
    /// See [`Repository::find`].
    async fn find(&self, query: &Query) -> Result<Vec<E>>;
    /// See [`Repository::find_unordered`].
    async fn find_unordered(&self, query: &Query) -> Result<Vec<E>>;
    /// See [`Repository::find_one`].
    async fn find_one(&self, query: &Query) -> Result<Option<E>>;
    /// See [`Repository::count`].
    async fn count(&self, filter: &Filter) -> Result<u64>;
    /// See [`Repository::exists`].
    async fn exists(&self, filter: &Filter) -> Result<bool>;
    /// See [`Repository::stream`].
    fn stream<'a>(&'a self, query: &Query) -> BoxStream<'a, Result<E>>;
    /// See [`Repository::page`].
    async fn page(&self, query: &Query, cursor: Option<&Cursor>) -> Result<Page<E>>;
    /// See [`Repository::patch`].
    async fn patch(&self, id: &E::Id, update: &Update<E>, guard: &Guard) -> Result<E>;
    /// See [`Repository::update_where`].
    async fn update_where(&self, filter: &Filter, update: &Update<E>) -> Result<u64>;
    /// See [`Repository::find_one_and_delete`].
    async fn find_one_and_delete(&self, query: &Query) -> Result<Option<E>>;
    /// See [`Repository::select`].
    async fn select(&self, query: &Query, fields: &[&str]) -> Result<Vec<Value>>;
    /// See [`Repository::distinct`].
    async fn distinct(&self, field: &str, filter: &Filter) -> Result<Vec<Value>>;
    /// See [`Repository::aggregate`].
    async fn aggregate(&self, filter: &Filter, group: &GroupBy<E>) -> Result<Vec<Value>>;
    /// See [`Repository::find_nearest`].
    async fn find_nearest(&self, query: &NearestQuery) -> Result<Vec<(E, f64)>>;
    /// See [`Repository::find_text`].
    async fn find_text(&self, query: &TextQuery) -> Result<Vec<(E, f64)>>;
}

/// A shared, type-erased repository.
pub type SharedRepository<E> = Arc<dyn DynRepository<E>>;

impl<E: Entity> std::fmt::Debug for dyn DynRepository<E> + '_ {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DynRepository")
            .field("entity", &E::meta().name)
            .field("backend", &self.capabilities().backend)
            .finish()
    }
}

#[async_trait::async_trait]
impl<E: Entity, R: Repository<E>> DynRepository<E> for R {
    fn capabilities(&self) -> Capabilities {
        Repository::capabilities(self)
    }
    async fn ensure_schema(&self) -> Result<()> {
        Repository::ensure_schema(self).await
    }
    async fn verify_schema(&self) -> Result<SchemaReport> {
        Repository::verify_schema(self).await
    }
    async fn get(&self, id: &E::Id) -> Result<Option<E>> {
        Repository::get(self, id).await
    }
    async fn get_many(&self, ids: &[E::Id]) -> Result<Vec<E>> {
        Repository::get_many(self, ids).await
    }
    async fn insert(&self, entity: &E) -> Result<E> {
        Repository::insert(self, entity).await
    }
    async fn insert_many(&self, entities: &[E]) -> Result<u64> {
        Repository::insert_many(self, entities).await
    }
    async fn update(&self, entity: &E) -> Result<E> {
        Repository::update(self, entity).await
    }
    async fn upsert(&self, entity: &E) -> Result<E> {
        Repository::upsert(self, entity).await
    }
    async fn delete(&self, id: &E::Id) -> Result<bool> {
        Repository::delete(self, id).await
    }
    async fn delete_many(&self, filter: &Filter) -> Result<u64> {
        Repository::delete_many(self, filter).await
    }
    async fn purge(&self, filter: &Filter) -> Result<u64> {
        Repository::purge(self, filter).await
    }
    async fn find(&self, query: &Query) -> Result<Vec<E>> {
        Repository::find(self, query).await
    }
    async fn find_unordered(&self, query: &Query) -> Result<Vec<E>> {
        Repository::find_unordered(self, query).await
    }
    async fn find_one(&self, query: &Query) -> Result<Option<E>> {
        Repository::find_one(self, query).await
    }
    async fn count(&self, filter: &Filter) -> Result<u64> {
        Repository::count(self, filter).await
    }
    async fn exists(&self, filter: &Filter) -> Result<bool> {
        Repository::exists(self, filter).await
    }
    fn stream<'a>(&'a self, query: &Query) -> BoxStream<'a, Result<E>> {
        Repository::stream(self, query)
    }
    async fn page(&self, query: &Query, cursor: Option<&Cursor>) -> Result<Page<E>> {
        Repository::page(self, query, cursor).await
    }
    async fn patch(&self, id: &E::Id, update: &Update<E>, guard: &Guard) -> Result<E> {
        Repository::patch(self, id, update, guard).await
    }
    async fn update_where(&self, filter: &Filter, update: &Update<E>) -> Result<u64> {
        Repository::update_where(self, filter, update).await
    }
    async fn find_one_and_delete(&self, query: &Query) -> Result<Option<E>> {
        Repository::find_one_and_delete(self, query).await
    }
    async fn select(&self, query: &Query, fields: &[&str]) -> Result<Vec<Value>> {
        Repository::select(self, query, fields).await
    }
    async fn distinct(&self, field: &str, filter: &Filter) -> Result<Vec<Value>> {
        Repository::distinct(self, field, filter).await
    }
    async fn aggregate(&self, filter: &Filter, group: &GroupBy<E>) -> Result<Vec<Value>> {
        Repository::aggregate(self, filter, group).await
    }
    async fn find_nearest(&self, query: &NearestQuery) -> Result<Vec<(E, f64)>> {
        Repository::find_nearest(self, query).await
    }
    async fn find_text(&self, query: &TextQuery) -> Result<Vec<(E, f64)>> {
        Repository::find_text(self, query).await
    }
}

impl<E: Entity> Repository<E> for Arc<dyn DynRepository<E> + '_> {
    fn capabilities(&self) -> Capabilities {
        (**self).capabilities()
    }
    async fn ensure_schema(&self) -> Result<()> {
        (**self).ensure_schema().await
    }
    async fn verify_schema(&self) -> Result<SchemaReport> {
        (**self).verify_schema().await
    }
    async fn get(&self, id: &E::Id) -> Result<Option<E>> {
        (**self).get(id).await
    }
    async fn get_many(&self, ids: &[E::Id]) -> Result<Vec<E>> {
        (**self).get_many(ids).await
    }
    async fn insert(&self, entity: &E) -> Result<E> {
        (**self).insert(entity).await
    }
    async fn insert_many(&self, entities: &[E]) -> Result<u64> {
        (**self).insert_many(entities).await
    }
    async fn update(&self, entity: &E) -> Result<E> {
        (**self).update(entity).await
    }
    async fn upsert(&self, entity: &E) -> Result<E> {
        (**self).upsert(entity).await
    }
    async fn delete(&self, id: &E::Id) -> Result<bool> {
        (**self).delete(id).await
    }
    async fn delete_many(&self, filter: &Filter) -> Result<u64> {
        (**self).delete_many(filter).await
    }
    async fn purge(&self, filter: &Filter) -> Result<u64> {
        (**self).purge(filter).await
    }
    async fn find(&self, query: &Query) -> Result<Vec<E>> {
        (**self).find(query).await
    }
    async fn find_unordered(&self, query: &Query) -> Result<Vec<E>> {
        (**self).find_unordered(query).await
    }
    async fn find_one(&self, query: &Query) -> Result<Option<E>> {
        (**self).find_one(query).await
    }
    async fn count(&self, filter: &Filter) -> Result<u64> {
        (**self).count(filter).await
    }
    async fn exists(&self, filter: &Filter) -> Result<bool> {
        (**self).exists(filter).await
    }
    fn stream<'a>(&'a self, query: &Query) -> BoxStream<'a, Result<E>> {
        (**self).stream(query)
    }
    async fn page(&self, query: &Query, cursor: Option<&Cursor>) -> Result<Page<E>> {
        (**self).page(query, cursor).await
    }
    async fn patch(&self, id: &E::Id, update: &Update<E>, guard: &Guard) -> Result<E> {
        (**self).patch(id, update, guard).await
    }
    async fn update_where(&self, filter: &Filter, update: &Update<E>) -> Result<u64> {
        (**self).update_where(filter, update).await
    }
    async fn find_one_and_delete(&self, query: &Query) -> Result<Option<E>> {
        (**self).find_one_and_delete(query).await
    }
    async fn select(&self, query: &Query, fields: &[&str]) -> Result<Vec<Value>> {
        (**self).select(query, fields).await
    }
    async fn distinct(&self, field: &str, filter: &Filter) -> Result<Vec<Value>> {
        (**self).distinct(field, filter).await
    }
    async fn aggregate(&self, filter: &Filter, group: &GroupBy<E>) -> Result<Vec<Value>> {
        (**self).aggregate(filter, group).await
    }
    async fn find_nearest(&self, query: &NearestQuery) -> Result<Vec<(E, f64)>> {
        (**self).find_nearest(query).await
    }
    async fn find_text(&self, query: &TextQuery) -> Result<Vec<(E, f64)>> {
        (**self).find_text(query).await
    }
}

/// Helpers for backends implementing [`Repository`] from a smaller core.
pub mod support {
    use super::*;
    use crate::query::finish_page;

    /// `page` in terms of `find`: plans the keyset query, fetches `size + 1`, builds the cursor.
    pub async fn page_via_find<E, R>(
        repo: &R,
        query: &Query,
        cursor: Option<&Cursor>,
    ) -> Result<Page<E>>
    where
        E: Entity,
        R: Repository<E> + ?Sized,
    {
        let (q, size) = query.keyset(E::meta(), cursor)?;
        let rows = repo.find(&q).await?;
        finish_page(rows, size, &q.sort)
    }

    /// `find_nearest` by brute force: validate, read the rows matching the
    /// filter with `find`, rank them exactly ([`crate::vector::rank_exact`]).
    pub async fn nearest_via_find<E, R>(repo: &R, query: &NearestQuery) -> Result<Vec<(E, f64)>>
    where
        E: Entity,
        R: Repository<E> + ?Sized,
    {
        let checked = query.checked(E::meta())?;
        let rows = repo.find(&Query::filter(query.filter.clone())).await?;
        crate::vector::rank_exact(rows, &checked)
    }

    /// `find_text` by brute force: validate, read the rows matching the
    /// filter and the search string with `find`, rank them in the client
    /// ([`crate::text::rank_exact`]).
    pub async fn text_via_find<E, R>(repo: &R, query: &TextQuery) -> Result<Vec<(E, f64)>>
    where
        E: Entity,
        R: Repository<E> + ?Sized,
    {
        let checked = query.checked(E::meta())?;
        let filter = query
            .filter
            .clone()
            .and(Filter::MatchesText(query.text.clone()));
        let rows = repo.find(&Query::filter(filter)).await?;
        crate::text::rank_exact(rows, &checked)
    }

    /// `find_one` in terms of `find` with limit 1.
    pub async fn find_one_via_find<E, R>(repo: &R, query: &Query) -> Result<Option<E>>
    where
        E: Entity,
        R: Repository<E> + ?Sized,
    {
        let mut q = query.clone();
        q.limit = Some(1);
        Ok(repo.find(&q).await?.into_iter().next())
    }

    /// Collect a stream (for tests and small results).
    pub async fn collect<E>(mut s: BoxStream<'_, Result<E>>) -> Result<Vec<E>> {
        let mut out = Vec::new();
        while let Some(item) = s.next().await {
            out.push(item?);
        }
        Ok(out)
    }
}
