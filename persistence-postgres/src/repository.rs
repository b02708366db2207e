//! [`RelationalRepository`], the [`Repository`] of one entity in one table
//! of a [`RelationalStore`]: the shared statement helpers and the trait
//! impl here, the read path in `repository/read.rs`, the write path in
//! `repository/write.rs`, projections and distinct in `repository/select.rs`,
//! the atomic partial updates (`patch`, `update_where`,
//! `find_one_and_delete`) in `repository/patch.rs`.

use std::marker::PhantomData;
use std::sync::Arc;

use persistence_core::lifecycle;
use persistence_core::repository::support;
use persistence_core::{
    BoxStream, Capabilities, Cursor, Entity, EntityMeta, Error, Filter, GroupBy, Guard,
    NearestQuery, Page, Query, Record, Repository, Result, Update, Value,
};
use sea_orm::{DatabaseConnection, DbErr, QueryResult};

use crate::codec::{decode, to_bind};
use crate::error::{Hints, map_db_err_with};
use crate::query::translate::Translator;
use crate::query::{Dialect, Sql};
use crate::schema::TableInfo;
/// Re-exported from [`crate::store`], its home since the backend file set
/// (the old path `persistence_postgres::repository::RelationalStore`).
pub use crate::store::RelationalStore;
use crate::store::conn::Conn;

mod aggregate;
mod lock;
mod nearest;
mod patch;
mod raw;
mod read;
mod search;
mod select;
pub(crate) mod tenant;
mod write;

pub use raw::Params;

/// A [`Repository`] of `E` stored in one table of a [`RelationalStore`].
///
/// Statements are built from `E::meta()`: identifiers quoted, every value a
/// bound parameter. See the crate docs for the type mapping and the
/// differences between PostgreSQL and SQLite.
pub struct RelationalRepository<E: Entity> {
    store: RelationalStore,
    table: Arc<TableInfo>,
    policy: persistence_core::names::SchemaPolicy,
    _entity: PhantomData<fn() -> E>,
}

impl<E: Entity> Clone for RelationalRepository<E> {
    fn clone(&self) -> Self {
        RelationalRepository {
            store: self.store.clone(),
            table: self.table.clone(),
            policy: self.policy,
            _entity: PhantomData,
        }
    }
}

impl<E: Entity> std::fmt::Debug for RelationalRepository<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelationalRepository")
            .field("table", &self.table.qualified)
            .field("dialect", &self.store.dialect())
            .finish()
    }
}

fn meta_of<E: Entity>() -> &'static EntityMeta {
    E::meta()
}

impl<E: Entity> RelationalRepository<E> {
    /// The store this repository writes to.
    pub fn store(&self) -> &RelationalStore {
        &self.store
    }

    /// What `ensure_schema` may do to an existing table it did not create
    /// (default [`SchemaPolicy::Managed`](persistence_core::names::SchemaPolicy):
    /// verify it, change nothing; see [`crate::schema`]).
    pub fn with_schema_policy(mut self, policy: persistence_core::names::SchemaPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// The same repository, leaving the relations in `cross` to the
    /// application: their parents live in another store, so no foreign key
    /// is created or verified for them and no parent table is created (see
    /// [`persistence_core::relation::CrossStore`]).
    pub fn with_cross_store(mut self, cross: persistence_core::relation::CrossStore) -> Self {
        Arc::make_mut(&mut self.table).cross = cross;
        self
    }

    /// The schema-qualified, quoted table name.
    pub fn table_name(&self) -> &str {
        &self.table.qualified
    }

    fn dialect(&self) -> Dialect {
        self.store.dialect()
    }

    fn db(&self) -> &DatabaseConnection {
        self.store.connection()
    }

    fn sql(&self) -> Sql {
        Sql::new(self.dialect())
    }

    fn tr(&self) -> Translator<'static> {
        Translator {
            meta: meta_of::<E>(),
            dialect: self.dialect(),
            text_index: self.table.facts.text_index(),
        }
    }

    fn err(&self, e: DbErr, op: &'static str) -> Error {
        let hints = Hints {
            op: Some(op),
            ..Hints::default()
        };
        map_db_err_with(e, &self.table.names, hints).in_context(E::meta().name, op)
    }

    async fn exec<C: Conn>(&self, c: &C, sql: Sql) -> Result<u64, DbErr> {
        Ok(c.exec(sql.into_statement()).await?.rows_affected())
    }

    async fn rows<C: Conn>(&self, c: &C, sql: Sql) -> Result<Vec<QueryResult>, DbErr> {
        c.rows(sql.into_statement()).await
    }

    fn decode_record(&self, row: &QueryResult) -> Result<Record> {
        let meta = E::meta();
        let values = meta
            .fields
            .iter()
            .enumerate()
            .map(|(i, f)| {
                decode(self.dialect(), f.ty, row, i).map_err(|e| {
                    Error::decode(format!("field `{}`: {}", f.name, e.message()))
                        .with_entity(meta.name)
                        .with_source(e)
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Record::from_values(meta, values)
    }

    fn decode_row(&self, row: &QueryResult) -> Result<E> {
        crate::codec::entity_from_row(E::meta(), self.dialect(), row)
    }

    fn id_value(&self, id: &E::Id) -> Result<Value> {
        let f = E::meta().id_field();
        Value::from_serialize(id)?.normalize(f.ty)
    }

    fn where_id(&self, sql: &mut Sql, id: &Value) -> Result<()> {
        let f = E::meta().id_field();
        sql.push(" WHERE ")
            .ident(f.name)
            .push(" = ")
            .bind(to_bind(self.dialect(), f.ty, id)?);
        Ok(())
    }

    fn select_head(&self) -> Sql {
        let mut sql = self.sql();
        sql.push("SELECT ")
            .push(&self.table.column_list)
            .push(" FROM ");
        self.push_source(&mut sql);
        sql
    }

    /// What reads select from: the table, or, when some of its columns are
    /// of native types the crate adapts, the sub-select reading them as the
    /// crate's types (see [`crate::query::native`]), so filters and sort
    /// keys see the same values as the entity.
    fn push_source(&self, sql: &mut Sql) {
        match self.table.facts.adapted() {
            Some(a) => sql.push(&a.source),
            None => sql.push(&self.table.target),
        };
    }

    /// The columns a write's `RETURNING` gives back (adapted columns cast).
    fn push_read_list(&self, sql: &mut Sql) {
        match self.table.facts.adapted() {
            Some(a) => sql.push(&a.read_list),
            None => sql.push(&self.table.column_list),
        };
    }

    /// Bind the value `v` of field `i` for a write (adapted columns get
    /// the cast to their native type).
    fn bind_field(&self, sql: &mut Sql, i: usize, v: &Value) -> Result<()> {
        let f = &E::meta().fields[i];
        let adapted = self.table.facts.adapted();
        match adapted.as_ref().and_then(|a| a.fields.get(i)?.as_ref()) {
            None => {
                sql.bind(to_bind(self.dialect(), f.ty, v)?);
            }
            Some(a) => {
                let b = if a.text_array {
                    crate::codec::text_array(v)?
                } else {
                    to_bind(self.dialect(), f.ty, v)?
                };
                sql.push("CAST(")
                    .bind(b)
                    .push(" AS ")
                    .push(&a.cast)
                    .push(")");
            }
        }
        Ok(())
    }

    /// The filter of a write (`UPDATE` / `DELETE`): on a table with adapted
    /// columns, `"id" IN (SELECT "id" FROM <sub-select> WHERE <filter>)`, so
    /// the filter compares the values as reads do.
    fn filter_rows(&self, sql: &mut Sql, filter: &Filter) -> Result<()> {
        match self.table.facts.adapted() {
            None => self.tr().filter(sql, filter),
            Some(a) => {
                let id = E::meta().id_field().name;
                sql.push("(")
                    .ident(id)
                    .push(" IN (SELECT ")
                    .ident(id)
                    .push(" FROM ")
                    .push(&a.source)
                    .push(" WHERE ");
                self.tr().filter(sql, filter)?;
                sql.push("))");
                Ok(())
            }
        }
    }

    /// ` WHERE <filter>` of a write (see [`Self::filter_rows`]).
    fn where_filter_rows(&self, sql: &mut Sql, filter: &Filter) -> Result<()> {
        if !filter.is_all() {
            sql.push(" WHERE ");
            self.filter_rows(sql, filter)?;
        }
        Ok(())
    }

    fn where_filter(&self, sql: &mut Sql, filter: &Filter) -> Result<()> {
        if !filter.is_all() {
            sql.push(" WHERE ");
            self.tr().filter(sql, filter)?;
        }
        Ok(())
    }

    pub(crate) async fn ensure_schema_on<C: Conn>(&self, c: &C) -> Result<()> {
        let meta = E::meta();
        crate::schema::ensure(c, &self.table, meta, self.dialect(), self.policy).await?;
        crate::fulltext::ensure_text(c, &self.table, meta, self.dialect(), self.policy).await?;
        if meta.vectors.is_empty() || self.dialect() != Dialect::Postgres {
            return Ok(());
        }
        let ext = self
            .store
            .vector_extension()
            .await
            .map_err(|e| e.in_context(meta.name, "ensure_schema"))?;
        if let Some(ext) = ext {
            crate::vector::ensure_vectors(c, &self.table, meta, ext, self.policy).await?;
        }
        Ok(())
    }

    pub(crate) async fn verify_schema_on<C: Conn>(
        &self,
        c: &C,
    ) -> Result<persistence_core::SchemaReport> {
        crate::schema::verify_schema(c, &self.table, E::meta(), self.dialect()).await
    }

    pub(crate) fn map_err_for(&self, e: DbErr, op: &'static str) -> Error {
        self.err(e, op)
    }

    #[cfg(feature = "postgres")]
    pub(crate) fn map_err_at_row(&self, e: DbErr, row: usize) -> Error {
        crate::error::map_db_err_at_row(e, &self.table.names, row)
    }

    #[cfg(feature = "postgres")]
    pub(crate) fn column_list(&self) -> &str {
        &self.table.column_list
    }
}

/// Related rows for eager loading come from this store's tables (see
/// [`persistence_core::relation`]).
impl persistence_core::relation::Resolve for RelationalStore {
    async fn repository<T: Entity>(&self) -> Result<persistence_core::SharedRepository<T>> {
        Ok(Arc::new(RelationalStore::repository::<T>(self)))
    }
}

impl RelationalStore {
    /// The repository of entity `E` in this store.
    pub fn repository<E: Entity>(&self) -> RelationalRepository<E> {
        let mut table = TableInfo::new(E::meta(), self.schema());
        table.facts = self.table_facts(&table.qualified);
        if self.search_path().is_some() {
            // Its calls run under `SET LOCAL search_path` (`tenant_tx`): one
            // statement text for every tenant.
            table.target = crate::query::quote(E::meta().name);
        }
        table.select_by_id = format!(
            "SELECT {} FROM {} WHERE {} = {}",
            table.column_list,
            table.target,
            crate::query::quote(E::meta().id_field().name),
            match self.dialect() {
                Dialect::Postgres => "$1",
                Dialect::Sqlite => "?",
            }
        );
        RelationalRepository {
            store: self.clone(),
            table: Arc::new(table),
            policy: persistence_core::names::SchemaPolicy::default(),
            _entity: PhantomData,
        }
    }
}

/// Run `$body` with `$c` bound to the connection of the call: the pool,
/// or for a tenant entity on PostgreSQL a transaction with `app.tenant`
/// set, and for a tenant store under `TenantStatements::SearchPath` one
/// with `search_path` set (see `repository/tenant.rs`), committed when the
/// call succeeds.
macro_rules! on_conn {
    ($self:ident, $op:literal, |$c:ident| $body:expr) => {
        match $self.tenant_tx($op).await? {
            Some(tx) => {
                let out = {
                    let $c = &tx;
                    $body
                };
                $self.finish(tx, out, $op).await
            }
            None => {
                // Held for the call: counts it in flight on its group.
                let routed = $self.store.routed();
                let $c: &DatabaseConnection = &routed;
                $body
            }
        }
    };
}

impl<E: Entity> Repository<E> for RelationalRepository<E> {
    fn capabilities(&self) -> Capabilities {
        let mut caps = Capabilities::full(self.dialect().name());
        // pgvector found by `connect` and an ANN index declared: approximate.
        caps.approximate_nearest = self.store.vector_schema().is_some()
            && E::meta()
                .vectors
                .iter()
                .any(|v| v.spec.index != persistence_core::VectorIndex::None);
        // The generated `tsvector` column / FTS5 table `ensure_schema` found.
        caps.text_index = self.table.facts.text_index();
        if self.dialect() == Dialect::Sqlite {
            // SQLite stores NaN as NULL and drops the sign of -0.0 in REAL columns.
            caps.non_finite_floats = false;
            caps.signed_zero = false;
            // One database write lock, no row locks (see `crate::Lock`).
            caps.row_locks = false;
            // Built-in lower()/LIKE fold ASCII letters only.
            caps.unicode_case_folding = false;
        }
        caps
    }

    async fn ensure_schema(&self) -> Result<()> {
        self.ensure_schema_on(self.db()).await
    }

    async fn verify_schema(&self) -> Result<persistence_core::SchemaReport> {
        self.verify_schema_on(self.db()).await
    }

    async fn get(&self, id: &E::Id) -> Result<Option<E>> {
        on_conn!(self, "get", |c| self.get_on(c, id).await)
    }

    async fn get_many(&self, ids: &[E::Id]) -> Result<Vec<E>> {
        on_conn!(self, "get_many", |c| self.get_many_on(c, ids).await)
    }

    async fn insert(&self, entity: &E) -> Result<E> {
        on_conn!(self, "insert", |c| self.insert_on(c, entity).await)
    }

    async fn insert_many(&self, entities: &[E]) -> Result<u64> {
        if entities.is_empty() {
            return Ok(0);
        }
        self.bulk_insert(entities)
            .await
            .map_err(|e| e.in_context(E::meta().name, "insert_many"))
    }

    async fn update(&self, entity: &E) -> Result<E> {
        on_conn!(self, "update", |c| self.update_on(c, entity).await)
    }

    async fn upsert(&self, entity: &E) -> Result<E> {
        on_conn!(self, "upsert", |c| self.upsert_on(c, entity).await)
    }

    async fn delete(&self, id: &E::Id) -> Result<bool> {
        if lifecycle::soft_deletes::<E>() {
            return lifecycle::soft_delete(self, id)
                .await
                .map_err(|e| e.in_context(E::meta().name, "delete"));
        }
        on_conn!(self, "delete", |c| self.delete_on(c, id).await)
    }

    async fn delete_many(&self, filter: &Filter) -> Result<u64> {
        if lifecycle::soft_deletes::<E>() {
            return lifecycle::soft_delete_many(self, filter)
                .await
                .map_err(|e| e.in_context(E::meta().name, "delete_many"));
        }
        on_conn!(self, "delete_many", |c| self
            .purge_on(c, filter, "delete_many")
            .await)
    }

    async fn purge(&self, filter: &Filter) -> Result<u64> {
        on_conn!(self, "purge", |c| self.purge_on(c, filter, "purge").await)
    }

    async fn find(&self, query: &Query) -> Result<Vec<E>> {
        on_conn!(self, "find", |c| self.find_on(c, query).await)
    }

    async fn find_unordered(&self, query: &Query) -> Result<Vec<E>> {
        on_conn!(self, "find", |c| self.find_unordered_on(c, query).await)
    }

    async fn find_one(&self, query: &Query) -> Result<Option<E>> {
        support::find_one_via_find(self, query).await
    }

    async fn count(&self, filter: &Filter) -> Result<u64> {
        on_conn!(self, "count", |c| self.count_on(c, filter).await)
    }

    async fn exists(&self, filter: &Filter) -> Result<bool> {
        on_conn!(self, "exists", |c| self.exists_on(c, filter).await)
    }

    fn stream<'a>(&'a self, query: &Query) -> BoxStream<'a, Result<E>> {
        if (E::meta().tenant.is_some() || self.store.search_path().is_some())
            && self.dialect() == Dialect::Postgres
        {
            return self.tenant_stream(query);
        }
        self.stream_on(self.db(), query)
    }

    async fn page(&self, query: &Query, cursor: Option<&Cursor>) -> Result<Page<E>> {
        support::page_via_find(self, query, cursor)
            .await
            .map_err(|e| e.in_context(E::meta().name, "page"))
    }

    async fn select(&self, query: &Query, fields: &[&str]) -> Result<Vec<Value>> {
        on_conn!(self, "select", |c| self.select_on(c, query, fields).await)
    }

    async fn distinct(&self, field: &str, filter: &Filter) -> Result<Vec<Value>> {
        on_conn!(self, "distinct", |c| self
            .distinct_on(c, field, filter)
            .await)
    }

    async fn patch(&self, id: &E::Id, update: &Update<E>, guard: &Guard) -> Result<E> {
        on_conn!(self, "patch", |c| self.patch_on(c, id, update, guard).await)
    }

    async fn update_where(&self, filter: &Filter, update: &Update<E>) -> Result<u64> {
        on_conn!(self, "update_where", |c| self
            .update_where_on(c, filter, update)
            .await)
    }

    async fn find_one_and_delete(&self, query: &Query) -> Result<Option<E>> {
        if lifecycle::soft_deletes::<E>() {
            return lifecycle::soft_pop(self, query)
                .await
                .map_err(|e| e.in_context(E::meta().name, "find_one_and_delete"));
        }
        on_conn!(self, "find_one_and_delete", |c| self
            .find_one_and_delete_on(c, query)
            .await)
    }

    async fn aggregate(&self, filter: &Filter, group: &GroupBy<E>) -> Result<Vec<Value>> {
        on_conn!(self, "aggregate", |c| self
            .aggregate_on(c, filter, group)
            .await)
    }

    async fn find_text(&self, query: &persistence_core::TextQuery) -> Result<Vec<(E, f64)>> {
        on_conn!(self, "find_text", |c| self.text_on(c, query).await)
    }

    async fn find_nearest(&self, query: &NearestQuery) -> Result<Vec<(E, f64)>> {
        // A tenant entity on PostgreSQL: in its tenant transaction, so the
        // row-level security policy sees `app.tenant`.
        if let Some(tx) = self.tenant_tx("find_nearest").await? {
            let out = self.nearest_on(&tx, query).await;
            if let Some(rows) = self.finish(tx, out, "find_nearest").await? {
                return Ok(rows);
            }
            // No pgvector: exact, through `find` (its own tenant transaction).
            return support::nearest_via_find(self, query)
                .await
                .map_err(|e| e.in_context(E::meta().name, "find_nearest"));
        }
        self.nearest_pool(query).await
    }
}
