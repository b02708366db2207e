//! [`RelationalStore`] (a connection pool plus a schema) and
//! [`RelationalRepository`], the [`Repository`] over it.

use std::collections::{BTreeMap, BTreeSet};
use std::marker::PhantomData;
use std::sync::Arc;

use futures_util::StreamExt as _;
use persistence_core::memory::Key;
use persistence_core::repository::support;
use persistence_core::{
    BoxStream, Capabilities, Cursor, Entity, EntityMeta, Error, Filter, Page, Query, Record,
    Repository, Result, Value,
};
use sea_orm::{
    ConnectionTrait as _, DatabaseConnection, DbBackend, DbErr, QueryResult, Statement, StreamTrait,
};

use crate::config::{RelationalConfig, validate_schema_name};
use crate::conn::Conn;
use crate::error::{Hints, dialect_name, is_unnamed_unique, map_db_err, map_db_err_with};
use crate::schema::TableInfo;
use crate::sql::{Dialect, Sql, Translator, decode, to_bind};

struct StoreInner {
    db: DatabaseConnection,
    dialect: Dialect,
    schema: Option<String>,
    /// Shared with stores derived by `with_schema`.
    leaks: Arc<std::sync::OnceLock<persistence_core::layer::LeakDetector>>,
}

/// A database (PostgreSQL or SQLite) reached through a sea-orm connection
/// pool, plus the PostgreSQL schema its tables live in. Cheap to clone.
#[derive(Clone)]
pub struct RelationalStore {
    inner: Arc<StoreInner>,
}

impl std::fmt::Debug for RelationalStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelationalStore")
            .field("dialect", &self.inner.dialect)
            .field("schema", &self.inner.schema)
            .finish()
    }
}

impl RelationalStore {
    /// Connect with `config` (the pool is created; the first connection is opened).
    pub async fn connect(config: &RelationalConfig) -> Result<RelationalStore> {
        config.validate()?;
        let mut db = sea_orm::Database::connect(config.connect_options())
            .await
            .map_err(|e| crate::error::map_connect_err(e, &config.url))?;
        // The SQL text only (placeholders, never the bound values) for the slow log.
        db.set_metric_callback(|info| {
            persistence_core::layer::probe::statement_executed(&info.statement.sql, info.elapsed)
        });
        Self::from_connection(db, config.schema.clone())
    }

    /// Wrap an existing sea-orm connection; tables go to `schema` (PostgreSQL only).
    pub fn from_connection(
        db: DatabaseConnection,
        schema: Option<String>,
    ) -> Result<RelationalStore> {
        let dialect = match db.get_database_backend() {
            DbBackend::Postgres => Dialect::Postgres,
            DbBackend::Sqlite => Dialect::Sqlite,
            other => {
                return Err(Error::config(format!(
                    "unsupported database backend {other:?}"
                )));
            }
        };
        if let Some(s) = &schema {
            validate_schema_name(s)?;
            if dialect == Dialect::Sqlite {
                return Err(Error::config("schemas are not supported on SQLite"));
            }
        }
        Ok(RelationalStore {
            inner: Arc::new(StoreInner {
                db,
                dialect,
                schema,
                leaks: Arc::default(),
            }),
        })
    }

    /// The same pool with tables in another (validated) PostgreSQL schema.
    pub(crate) fn with_schema(&self, schema: &str) -> RelationalStore {
        RelationalStore {
            inner: Arc::new(StoreInner {
                db: self.inner.db.clone(),
                dialect: self.inner.dialect,
                schema: Some(schema.to_string()),
                leaks: self.inner.leaks.clone(),
            }),
        }
    }

    /// The sea-orm connection (pool).
    pub fn connection(&self) -> &DatabaseConnection {
        &self.inner.db
    }

    /// Report transactions of this store (and of stores derived from it)
    /// held open longer than the detector's threshold. Set once; later calls
    /// are ignored.
    pub fn set_leak_detector(&self, detector: persistence_core::layer::LeakDetector) {
        let _ = self.inner.leaks.set(detector);
    }

    pub(crate) fn leak_detector(&self) -> Option<&persistence_core::layer::LeakDetector> {
        self.inner.leaks.get()
    }

    /// The dialect.
    pub fn dialect(&self) -> Dialect {
        self.inner.dialect
    }

    /// The PostgreSQL schema, if one is configured.
    pub fn schema(&self) -> Option<&str> {
        self.inner.schema.as_deref()
    }

    /// The repository of entity `E` in this store.
    pub fn repository<E: Entity>(&self) -> RelationalRepository<E> {
        let mut table = TableInfo::new(E::meta(), self.schema());
        table.select_by_id = format!(
            "SELECT {} FROM {} WHERE {} = {}",
            table.column_list,
            table.qualified,
            crate::sql::quote(E::meta().id_field().name),
            match self.dialect() {
                Dialect::Postgres => "$1",
                Dialect::Sqlite => "?",
            }
        );
        RelationalRepository {
            store: self.clone(),
            table: Arc::new(table),
            _entity: PhantomData,
        }
    }

    /// Drop the configured schema and everything in it (PostgreSQL; a no-op
    /// without a schema or on SQLite).
    pub async fn drop_schema(&self) -> Result<()> {
        if let (Some(s), Dialect::Postgres) = (self.schema(), self.dialect()) {
            let sql = format!("DROP SCHEMA IF EXISTS {} CASCADE", crate::sql::quote(s));
            self.inner
                .db
                .execute_unprepared(&sql)
                .await
                .map_err(|e| map_db_err(e, &Default::default()).with_operation("drop_schema"))?;
        }
        Ok(())
    }

    /// Close the pool (shared by every clone of this store and by tenant
    /// stores derived from it).
    pub async fn close(&self) {
        match self.dialect() {
            Dialect::Postgres => self.inner.db.get_postgres_connection_pool().close().await,
            Dialect::Sqlite => self.inner.db.get_sqlite_connection_pool().close().await,
        }
    }
}

/// A [`Repository`] of `E` stored in one table of a [`RelationalStore`].
///
/// Statements are built from `E::meta()`: identifiers quoted, every value a
/// bound parameter. See the crate docs for the type mapping and the
/// differences between PostgreSQL and SQLite.
pub struct RelationalRepository<E: Entity> {
    store: RelationalStore,
    table: Arc<TableInfo>,
    _entity: PhantomData<fn() -> E>,
}

impl<E: Entity> Clone for RelationalRepository<E> {
    fn clone(&self) -> Self {
        RelationalRepository {
            store: self.store.clone(),
            table: self.table.clone(),
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

/// The savepoint each multi-row INSERT of a bulk load runs under.
const SAVEPOINT: &str = "SAVEPOINT \"persistence_bulk_chunk\"";
const ROLLBACK_TO_SAVEPOINT: &str = "ROLLBACK TO SAVEPOINT \"persistence_bulk_chunk\"";
const RELEASE_SAVEPOINT: &str = "RELEASE SAVEPOINT \"persistence_bulk_chunk\"";

fn meta_of<E: Entity>() -> &'static EntityMeta {
    E::meta()
}

impl<E: Entity> RelationalRepository<E> {
    /// The store this repository writes to.
    pub fn store(&self) -> &RelationalStore {
        &self.store
    }

    /// The schema-qualified, quoted table name.
    pub fn table_name(&self) -> &str {
        &self.table.qualified
    }

    fn dialect(&self) -> Dialect {
        self.store.dialect()
    }

    fn db(&self) -> &DatabaseConnection {
        &self.store.inner.db
    }

    fn sql(&self) -> Sql {
        Sql::new(self.dialect())
    }

    fn tr(&self) -> Translator<'static> {
        Translator {
            meta: meta_of::<E>(),
            dialect: self.dialect(),
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
        crate::de::entity(E::meta(), self.decode_record(row)?.values)
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
            .push(" FROM ")
            .push(&self.table.qualified);
        sql
    }

    /// `SELECT ... WHERE ... ORDER BY ... LIMIT ... OFFSET ...` for a checked query.
    fn select_sql(&self, q: &Query) -> Result<Sql> {
        let mut sql = self.select_head();
        if !q.filter.is_all() {
            sql.push(" WHERE ");
            self.tr().filter(&mut sql, &q.filter)?;
        }
        self.tr().order_by(&mut sql, &q.sort)?;
        let limit = q.limit.map(|l| l.min(i64::MAX as u64));
        match (limit, q.offset, self.dialect()) {
            (Some(l), _, _) => {
                sql.push(&format!(" LIMIT {l}"));
            }
            (None, o, Dialect::Sqlite) if o > 0 => {
                sql.push(" LIMIT -1");
            }
            _ => {}
        }
        if q.offset > 0 {
            sql.push(&format!(" OFFSET {}", q.offset.min(i64::MAX as u64)));
        }
        Ok(sql)
    }

    fn where_filter(&self, sql: &mut Sql, filter: &Filter) -> Result<()> {
        if !filter.is_all() {
            sql.push(" WHERE ");
            self.tr().filter(sql, filter)?;
        }
        Ok(())
    }

    fn record_of(&self, entity: &E, version: Option<i64>) -> Result<(E, Record)> {
        let mut entity = entity.clone();
        if let Some(v) = version {
            entity.set_version(v);
        }
        let record = Record::from_entity(&entity)?;
        Ok((entity, record))
    }

    /// `INSERT INTO t (cols) VALUES (...), (...)`.
    fn insert_sql(&self, records: &[&Record]) -> Result<Sql> {
        let meta = E::meta();
        let mut sql = self.sql();
        sql.push("INSERT INTO ")
            .push(&self.table.qualified)
            .push(" (")
            .push(&self.table.column_list)
            .push(") VALUES ");
        for (n, r) in records.iter().enumerate() {
            sql.push(if n == 0 { "(" } else { ", (" });
            for (i, f) in meta.fields.iter().enumerate() {
                if i > 0 {
                    sql.push(", ");
                }
                sql.bind(to_bind(self.dialect(), f.ty, r.get(i))?);
            }
            sql.push(")");
        }
        Ok(sql)
    }

    /// On SQLite a unique violation does not name its constraint: find the
    /// unique constraint another row already holds the record's values of.
    async fn name_unique<C: Conn>(&self, c: &C, record: &Record) -> Option<String> {
        let meta = E::meta();
        let id = meta.id_field();
        for ix in meta.uniques() {
            let mut sql = self.sql();
            sql.push("SELECT 1 FROM ")
                .push(&self.table.qualified)
                .push(" WHERE ");
            let mut complete = true;
            for name in &ix.fields {
                let (i, f) = meta.field(name)?;
                let v = record.get(i);
                if v.is_null() {
                    complete = false;
                    break;
                }
                sql.ident(f.name)
                    .push(" = ")
                    .bind(to_bind(self.dialect(), f.ty, v).ok()?)
                    .push(" AND ");
            }
            if !complete {
                continue;
            }
            sql.ident(id.name)
                .push(" <> ")
                .bind(to_bind(self.dialect(), id.ty, record.get(meta.id_index)).ok()?)
                .push(" LIMIT 1");
            if let Ok(rows) = self.rows(c, sql).await {
                if !rows.is_empty() {
                    return Some(ix.name.clone());
                }
            }
        }
        None
    }

    async fn id_exists<C: Conn>(&self, c: &C, record: &Record) -> bool {
        let meta = E::meta();
        let mut sql = self.sql();
        sql.push("SELECT 1 FROM ").push(&self.table.qualified);
        if self.where_id(&mut sql, record.get(meta.id_index)).is_err() {
            return false;
        }
        self.rows(c, sql).await.is_ok_and(|r| !r.is_empty())
    }

    /// Map an error of a write of `record`: on PostgreSQL, look up the
    /// table's primary key once when a unique violation names a constraint
    /// the metadata does not know, and find the column a too-long /
    /// out-of-range value was meant for; on SQLite, name the unique
    /// constraint. Lookups run on the pool (a failed transaction accepts
    /// no more statements) and never replace the error when they fail.
    async fn write_err<C: Conn>(
        &self,
        c: &C,
        e: DbErr,
        record: &Record,
        op: &'static str,
    ) -> Error {
        let meta = E::meta();
        if self.dialect() == Dialect::Postgres {
            let mut column = None;
            if let Some((code, constraint)) = crate::error::pg_code_and_constraint(&e) {
                if let Some(cn) = constraint.filter(|_| code == "23505") {
                    if self.table.names.needs_primary_key_lookup(cn) {
                        if let Some(pk) =
                            crate::error::primary_key_of(self.db(), &self.table.qualified).await
                        {
                            let _ = self.table.names.actual_primary_key.set(pk);
                        }
                    }
                } else if code == "22001" || code == "22003" {
                    let code = code.to_string();
                    let limits = crate::error::column_limits(
                        self.db(),
                        self.table.schema.as_deref(),
                        meta.name,
                    )
                    .await;
                    column = crate::error::find_over_limit(meta, record, &limits, &code);
                }
            }
            let hints = Hints {
                op: Some(op),
                column: column.as_ref().map(|(c, l)| (c.as_str(), l.as_str())),
            };
            return map_db_err_with(e, &self.table.names, hints).in_context(meta.name, op);
        }
        let err = self.err(e, op);
        if is_unnamed_unique(&err) {
            // SQLite reports a duplicate non-integer primary key as a unique violation.
            if matches!(op, "insert" | "insert_many") && self.id_exists(c, record).await {
                return Error::duplicate_id(format!(
                    "an entity with this id exists ({})",
                    err.message()
                ))
                .in_context(meta.name, op)
                .with_source(err);
            }
            if let Some(name) = self.name_unique(c, record).await {
                let fields = meta
                    .uniques()
                    .find(|u| u.name == name)
                    .map(|u| u.fields.join(", "))
                    .unwrap_or_default();
                return Error::unique_violation(
                    Some(name.clone()),
                    format!("unique constraint `{name}` ({fields}): {}", err.message()),
                )
                .in_context(meta.name, op)
                .with_source(err);
            }
        }
        err
    }

    pub(crate) async fn ensure_schema_on<C: Conn>(&self, c: &C) -> Result<()> {
        let ddl = self.table.ddl(E::meta(), self.dialect())?;
        for stmt in ddl {
            if let Err(e) = c.execute_unprepared(&stmt).await {
                // Concurrent CREATE ... IF NOT EXISTS may race on the catalog; once more settles it.
                c.execute_unprepared(&stmt)
                    .await
                    .map_err(|_| self.err(e, "ensure_schema"))?;
            }
        }
        Ok(())
    }

    pub(crate) async fn get_on<C: Conn>(&self, c: &C, id: &E::Id) -> Result<Option<E>> {
        let id = self.id_value(id)?;
        // The statement text is built once per repository.
        let bind = to_bind(self.dialect(), E::meta().id_field().ty, &id)?;
        let stmt = Statement::from_sql_and_values(
            self.dialect().backend(),
            self.table.select_by_id.as_str(),
            [bind],
        );
        let row = c.row(stmt).await.map_err(|e| self.err(e, "get"))?;
        row.map(|r| self.decode_row(&r))
            .transpose()
            .map_err(|e| e.in_context(E::meta().name, "get"))
    }

    pub(crate) async fn get_many_on<C: Conn>(&self, c: &C, ids: &[E::Id]) -> Result<Vec<E>> {
        let meta = E::meta();
        let idf = meta.id_field();
        let mut seen = BTreeSet::new();
        let mut keys = Vec::with_capacity(ids.len());
        for id in ids {
            let k = Key(self.id_value(id)?);
            if seen.insert(k.clone()) {
                keys.push(k);
            }
        }
        let mut found: BTreeMap<Key, E> = BTreeMap::new();
        for chunk in keys.chunks(1000) {
            let mut sql = self.select_head();
            sql.push(" WHERE ").ident(idf.name).push(" IN (");
            for (i, k) in chunk.iter().enumerate() {
                if i > 0 {
                    sql.push(", ");
                }
                sql.bind(to_bind(self.dialect(), idf.ty, &k.0)?);
            }
            sql.push(")");
            for row in self
                .rows(c, sql)
                .await
                .map_err(|e| self.err(e, "get_many"))?
            {
                let record = self
                    .decode_record(&row)
                    .map_err(|e| e.in_context(meta.name, "get_many"))?;
                let key = Key(record.get(meta.id_index).clone());
                let entity = crate::de::entity(meta, record.values)
                    .map_err(|e| e.in_context(meta.name, "get_many"))?;
                found.insert(key, entity);
            }
        }
        Ok(keys.iter().filter_map(|k| found.remove(k)).collect())
    }

    pub(crate) async fn insert_on<C: Conn>(&self, c: &C, entity: &E) -> Result<E> {
        let meta = E::meta();
        let (entity, record) = self
            .record_of(entity, meta.version_index.map(|_| 1))
            .map_err(|e| e.in_context(meta.name, "insert"))?;
        let sql = self.insert_sql(&[&record])?;
        match self.exec(c, sql).await {
            Ok(_) => Ok(entity),
            Err(e) => Err(self.write_err(c, e, &record, "insert").await),
        }
    }

    /// Insert all rows on `c` (inside a transaction the caller manages).
    pub(crate) async fn insert_all_on<C: Conn>(&self, c: &C, entities: &[E]) -> Result<u64> {
        let records = entities
            .iter()
            .enumerate()
            .map(|(i, e)| crate::bulk::checked_record(self.dialect(), i, e.clone()))
            .collect::<Result<Vec<_>>>()
            .map_err(|e| e.in_context(E::meta().name, "insert_many"))?;
        self.insert_records_on(c, &records, 0).await?;
        Ok(records.len() as u64)
    }

    /// Insert checked records on `c`; `start` is the index of the first one
    /// in the caller's input (for error messages).
    pub(crate) async fn insert_records_on<C: Conn>(
        &self,
        c: &C,
        records: &[Record],
        start: usize,
    ) -> Result<()> {
        let meta = E::meta();
        let row_err = |i: usize, e: Error| {
            let msg = format!("row {i}: {}", e.message());
            // Keeps the outcome, retryability and source.
            e.with_message(msg)
                .with_entity(meta.name)
                .with_operation("insert_many")
        };
        match self.dialect() {
            // In-process: row by row is cheap and names the failing row exactly.
            Dialect::Sqlite => {
                for (i, r) in records.iter().enumerate() {
                    let sql = self.insert_sql(&[r])?;
                    if let Err(e) = self.exec(c, sql).await {
                        return Err(row_err(
                            start + i,
                            self.write_err(c, e, r, "insert_many").await,
                        ));
                    }
                }
            }
            Dialect::Postgres => {
                // Each multi-row statement runs under a savepoint: when the
                // server rejects it for a row's values (22xxx / 23xxx), the
                // statement is rolled back to the savepoint and its rows are
                // replayed one by one, so the error names the exact row. The
                // caller then rolls the whole transaction back.
                let per_chunk = (self.dialect().max_binds() / meta.fields.len().max(1)).max(1);
                let mut first = start;
                for chunk in records.chunks(per_chunk) {
                    let refs: Vec<&Record> = chunk.iter().collect();
                    let sql = self.insert_sql(&refs)?;
                    let sp = |e| self.err(e, "insert_many");
                    c.execute_unprepared(SAVEPOINT).await.map_err(sp)?;
                    if let Err(e) = self.exec(c, sql).await {
                        if !crate::error::is_row_fault(&e) {
                            return Err(self.err(e, "insert_many"));
                        }
                        c.execute_unprepared(ROLLBACK_TO_SAVEPOINT)
                            .await
                            .map_err(sp)?;
                        for (i, r) in chunk.iter().enumerate() {
                            if let Err(e) = self.exec(c, self.insert_sql(&[r])?).await {
                                return Err(crate::error::map_db_err_at_row(
                                    e,
                                    &self.table.names,
                                    first + i,
                                )
                                .in_context(meta.name, "insert_many"));
                            }
                        }
                        // Not reproducible row by row: report the whole statement.
                        let err = self.err(e, "insert_many");
                        let msg = format!(
                            "in rows {first}..{}: {}",
                            first + chunk.len(),
                            err.message()
                        );
                        return Err(err
                            .with_message(msg)
                            .with_entity(meta.name)
                            .with_operation("insert_many"));
                    }
                    c.execute_unprepared(RELEASE_SAVEPOINT).await.map_err(sp)?;
                    first += chunk.len();
                }
            }
        }
        Ok(())
    }

    pub(crate) fn map_err_for(&self, e: DbErr, op: &'static str) -> Error {
        self.err(e, op)
    }

    pub(crate) fn map_err_at_row(&self, e: DbErr, row: usize) -> Error {
        crate::error::map_db_err_at_row(e, &self.table.names, row)
    }

    pub(crate) fn column_list(&self) -> &str {
        &self.table.column_list
    }

    pub(crate) async fn update_on<C: Conn>(&self, c: &C, entity: &E) -> Result<E> {
        let meta = E::meta();
        let expected = entity.version();
        let next = expected.map(|v| v + 1);
        let (stored, record) = self
            .record_of(entity, next)
            .map_err(|e| e.in_context(meta.name, "update"))?;
        let mut sql = self.sql();
        sql.push("UPDATE ")
            .push(&self.table.qualified)
            .push(" SET ");
        let mut first = true;
        for (i, f) in meta.fields.iter().enumerate() {
            if f.id {
                continue;
            }
            if !first {
                sql.push(", ");
            }
            first = false;
            sql.ident(f.name).push(" = ");
            if f.version {
                sql.ident(f.name).push(" + 1");
            } else {
                sql.bind(to_bind(self.dialect(), f.ty, record.get(i))?);
            }
        }
        if first {
            // Only an id: nothing to change, but the row must exist.
            return match self.get_on(c, entity.id()).await? {
                Some(e) => Ok(e),
                None => Err(Error::not_found(format!("no {} with this id", meta.name))
                    .in_context(meta.name, "update")),
            };
        }
        let id = record.get(meta.id_index).clone();
        self.where_id(&mut sql, &id)?;
        if let (Some(vf), Some(v)) = (meta.version_field(), expected) {
            sql.push(" AND ")
                .ident(vf.name)
                .push(" = ")
                .bind(sea_orm::Value::BigInt(Some(v)));
        }
        let n = match self.exec(c, sql).await {
            Ok(n) => n,
            Err(e) => return Err(self.write_err(c, e, &record, "update").await),
        };
        if n > 0 {
            return Ok(stored);
        }
        // Nothing updated: a stale version or a missing row.
        if let Some(vf) = meta.version_field() {
            let mut sql = self.sql();
            sql.push("SELECT ")
                .ident(vf.name)
                .push(" FROM ")
                .push(&self.table.qualified);
            self.where_id(&mut sql, &id)?;
            let rows = self.rows(c, sql).await.map_err(|e| self.err(e, "update"))?;
            if let Some(row) = rows.first() {
                let actual = row.try_get_by_index::<i64>(0).ok();
                return Err(Error::stale_version(expected, actual).in_context(meta.name, "update"));
            }
        }
        Err(Error::not_found(format!("no {} with this id", meta.name))
            .in_context(meta.name, "update"))
    }

    pub(crate) async fn upsert_on<C: Conn>(&self, c: &C, entity: &E) -> Result<E> {
        let meta = E::meta();
        let (mut stored, record) = self
            .record_of(entity, meta.version_index.map(|_| 1))
            .map_err(|e| e.in_context(meta.name, "upsert"))?;
        let mut sql = self.sql();
        sql.push("INSERT INTO ")
            .push(&self.table.qualified)
            .push(" AS \"_t\" (")
            .push(&self.table.column_list)
            .push(") VALUES (");
        for (i, f) in meta.fields.iter().enumerate() {
            if i > 0 {
                sql.push(", ");
            }
            sql.bind(to_bind(self.dialect(), f.ty, record.get(i))?);
        }
        sql.push(") ON CONFLICT (")
            .ident(meta.id_field().name)
            .push(") DO UPDATE SET ");
        let mut first = true;
        for f in meta.fields.iter().filter(|f| !f.id) {
            if !first {
                sql.push(", ");
            }
            first = false;
            sql.ident(f.name).push(" = ");
            if f.version {
                sql.push("\"_t\".").ident(f.name).push(" + 1");
            } else {
                sql.push("excluded.").ident(f.name);
            }
        }
        if first {
            let id = meta.id_field().name;
            sql.ident(id).push(" = excluded.").ident(id);
        }
        if let Some(vf) = meta.version_field() {
            sql.push(" RETURNING ").ident(vf.name);
        }
        if meta.version_field().is_some() {
            let rows = match self.rows(c, sql).await {
                Ok(r) => r,
                Err(e) => return Err(self.write_err(c, e, &record, "upsert").await),
            };
            let v = rows
                .first()
                .and_then(|r| r.try_get_by_index::<i64>(0).ok())
                .ok_or_else(|| Error::decode("upsert returned no version"))?;
            stored.set_version(v);
        } else if let Err(e) = self.exec(c, sql).await {
            return Err(self.write_err(c, e, &record, "upsert").await);
        }
        Ok(stored)
    }

    pub(crate) async fn delete_on<C: Conn>(&self, c: &C, id: &E::Id) -> Result<bool> {
        let id = self.id_value(id)?;
        let mut sql = self.sql();
        sql.push("DELETE FROM ").push(&self.table.qualified);
        self.where_id(&mut sql, &id)?;
        Ok(self.exec(c, sql).await.map_err(|e| self.err(e, "delete"))? > 0)
    }

    pub(crate) async fn delete_many_on<C: Conn>(&self, c: &C, filter: &Filter) -> Result<u64> {
        let meta = E::meta();
        let f = filter
            .checked(meta)
            .map_err(|e| e.in_context(meta.name, "delete_many"))?;
        let mut sql = self.sql();
        sql.push("DELETE FROM ").push(&self.table.qualified);
        self.where_filter(&mut sql, &f)
            .map_err(|e| e.in_context(meta.name, "delete_many"))?;
        self.exec(c, sql)
            .await
            .map_err(|e| self.err(e, "delete_many"))
    }

    pub(crate) async fn find_on<C: Conn>(&self, c: &C, query: &Query) -> Result<Vec<E>> {
        let meta = E::meta();
        let q = query
            .checked(meta)
            .map_err(|e| e.in_context(meta.name, "find"))?;
        let sql = self
            .select_sql(&q)
            .map_err(|e| e.in_context(meta.name, "find"))?;
        let rows = self.rows(c, sql).await.map_err(|e| self.err(e, "find"))?;
        rows.iter()
            .map(|r| self.decode_row(r))
            .collect::<Result<_>>()
            .map_err(|e| e.in_context(meta.name, "find"))
    }

    pub(crate) async fn count_on<C: Conn>(&self, c: &C, filter: &Filter) -> Result<u64> {
        let meta = E::meta();
        let f = filter
            .checked(meta)
            .map_err(|e| e.in_context(meta.name, "count"))?;
        let mut sql = self.sql();
        sql.push("SELECT COUNT(*) FROM ")
            .push(&self.table.qualified);
        self.where_filter(&mut sql, &f)
            .map_err(|e| e.in_context(meta.name, "count"))?;
        let rows = self.rows(c, sql).await.map_err(|e| self.err(e, "count"))?;
        let n = rows
            .first()
            .map(|r| r.try_get_by_index::<i64>(0))
            .transpose()
            .map_err(|e| self.err(e, "count"))?
            .unwrap_or(0);
        Ok(u64::try_from(n).unwrap_or(0))
    }

    pub(crate) async fn exists_on<C: Conn>(&self, c: &C, filter: &Filter) -> Result<bool> {
        let meta = E::meta();
        let f = filter
            .checked(meta)
            .map_err(|e| e.in_context(meta.name, "exists"))?;
        let mut sql = self.sql();
        sql.push("SELECT 1 FROM ").push(&self.table.qualified);
        self.where_filter(&mut sql, &f)
            .map_err(|e| e.in_context(meta.name, "exists"))?;
        sql.push(" LIMIT 1");
        let rows = self.rows(c, sql).await.map_err(|e| self.err(e, "exists"))?;
        Ok(!rows.is_empty())
    }
}

impl<E: Entity> RelationalRepository<E> {
    /// Stream the rows of `query` from `conn` (a pool or a transaction).
    pub(crate) fn stream_on<'a, S: StreamTrait>(
        &'a self,
        conn: &'a S,
        query: &Query,
    ) -> BoxStream<'a, Result<E>> {
        let meta = E::meta();
        let stmt = query
            .checked(meta)
            .and_then(|q| self.select_sql(&q))
            .map_err(|e| e.in_context(meta.name, "stream"));
        let stmt = match stmt {
            Ok(s) => s.into_statement(),
            Err(e) => return Box::pin(futures_util::stream::once(async move { Err(e) })),
        };
        let s = futures_util::stream::once(async move {
            match conn.stream_raw(stmt).await {
                Ok(rows) => rows
                    .map(move |r| match r {
                        Ok(row) => self
                            .decode_row(&row)
                            .map_err(|e| e.in_context(E::meta().name, "stream")),
                        Err(e) => Err(self.err(e, "stream")),
                    })
                    .left_stream(),
                Err(e) => futures_util::stream::once(async move { Err(self.err(e, "stream")) })
                    .right_stream(),
            }
        })
        .flatten();
        Box::pin(s)
    }
}

impl<E: Entity> Repository<E> for RelationalRepository<E> {
    fn capabilities(&self) -> Capabilities {
        let mut caps = Capabilities::full(dialect_name(self.dialect()));
        if self.dialect() == Dialect::Sqlite {
            // SQLite stores NaN as NULL and drops the sign of -0.0 in REAL columns.
            caps.non_finite_floats = false;
            caps.signed_zero = false;
        }
        caps
    }

    async fn ensure_schema(&self) -> Result<()> {
        self.ensure_schema_on(self.db()).await
    }

    async fn get(&self, id: &E::Id) -> Result<Option<E>> {
        self.get_on(self.db(), id).await
    }

    async fn get_many(&self, ids: &[E::Id]) -> Result<Vec<E>> {
        self.get_many_on(self.db(), ids).await
    }

    async fn insert(&self, entity: &E) -> Result<E> {
        self.insert_on(self.db(), entity).await
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
        self.update_on(self.db(), entity).await
    }

    async fn upsert(&self, entity: &E) -> Result<E> {
        self.upsert_on(self.db(), entity).await
    }

    async fn delete(&self, id: &E::Id) -> Result<bool> {
        self.delete_on(self.db(), id).await
    }

    async fn delete_many(&self, filter: &Filter) -> Result<u64> {
        self.delete_many_on(self.db(), filter).await
    }

    async fn find(&self, query: &Query) -> Result<Vec<E>> {
        self.find_on(self.db(), query).await
    }

    async fn find_one(&self, query: &Query) -> Result<Option<E>> {
        support::find_one_via_find(self, query).await
    }

    async fn count(&self, filter: &Filter) -> Result<u64> {
        self.count_on(self.db(), filter).await
    }

    async fn exists(&self, filter: &Filter) -> Result<bool> {
        self.exists_on(self.db(), filter).await
    }

    fn stream<'a>(&'a self, query: &Query) -> BoxStream<'a, Result<E>> {
        self.stream_on(self.db(), query)
    }

    async fn page(&self, query: &Query, cursor: Option<&Cursor>) -> Result<Page<E>> {
        support::page_via_find(self, query, cursor)
            .await
            .map_err(|e| e.in_context(E::meta().name, "page"))
    }
}
