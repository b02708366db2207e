//! The write path of [`RelationalRepository`]: `insert`, `insert_many`
//! (row by row on SQLite, multi-row statements under a savepoint on
//! PostgreSQL), `update`, `upsert` and `delete`, and the mapping of write
//! errors that names the constraint or column at fault.
//!
//! Managed timestamps (see [`lifecycle`]): `insert` / `insert_many` write
//! `created_at` = `updated_at` = now; `update` sets `updated_at` and leaves
//! the `created_at` column out of its `SET` list, so the stored value comes
//! back through `RETURNING`; `upsert` inserts with both set and its
//! `ON CONFLICT DO UPDATE SET` list leaves `created_at` out too.

use persistence_core::lifecycle;
use persistence_core::{Entity, Error, Filter, Record, Result, TimestampPrecision, Value};
use sea_orm::{DbErr, QueryResult};

use super::RelationalRepository;
use crate::codec::{checked_record, to_bind};
use crate::error::is_unnamed_unique;
#[cfg(feature = "postgres")]
use crate::error::{Hints, map_db_err_with};
use crate::query::{Dialect, Sql};
use crate::store::conn::Conn;

/// The savepoint each multi-row INSERT of a bulk load runs under.
#[cfg(feature = "postgres")]
const SAVEPOINT: &str = "SAVEPOINT \"persistence_bulk_chunk\"";
#[cfg(feature = "postgres")]
const ROLLBACK_TO_SAVEPOINT: &str = "ROLLBACK TO SAVEPOINT \"persistence_bulk_chunk\"";
#[cfg(feature = "postgres")]
const RELEASE_SAVEPOINT: &str = "RELEASE SAVEPOINT \"persistence_bulk_chunk\"";

impl<E: Entity> RelationalRepository<E> {
    /// The record written for `entity`: `version` set (when given) and
    /// timestamps truncated toward the past to microseconds, what both
    /// dialects keep (PostgreSQL's own conversion would round pre-2000
    /// values toward 2000-01-01 instead).
    fn record_of(&self, entity: &E, version: Option<i64>) -> Result<Record> {
        let mut record = Record::from_entity(entity)?;
        if let (Some(v), Some(slot)) = (
            version,
            E::meta()
                .version_index
                .and_then(|i| record.values.get_mut(i)),
        ) {
            *slot = Value::I64(v);
        }
        record.fit_timestamps(TimestampPrecision::Micros);
        Ok(record)
    }

    /// The entity of the one row a write's `RETURNING` gave back.
    pub(super) fn returned(&self, rows: &[QueryResult], op: &'static str) -> Result<E> {
        let meta = E::meta();
        match rows.first() {
            Some(row) => self
                .decode_row(row)
                .map_err(|e| e.in_context(meta.name, op)),
            None => Err(Error::backend(format!("{op} returned no row")).in_context(meta.name, op)),
        }
    }

    /// `INSERT INTO t (cols) VALUES (...), (...)`. An unset
    /// `#[entity(generated)]` field is left to the database: `DEFAULT` on
    /// PostgreSQL; on SQLite (one row per statement) its column is left
    /// out.
    fn insert_sql(&self, records: &[&Record]) -> Result<Sql> {
        let meta = E::meta();
        let unset = |r: &Record, i: usize| meta.is_unset_generated(i, r.get(i));
        let sqlite = self.dialect() == Dialect::Sqlite;
        let mut sql = self.sql();
        sql.push("INSERT INTO ").push(&self.table.target).push(" (");
        match records.first() {
            Some(r) if sqlite && (0..meta.fields.len()).any(|i| unset(r, i)) => {
                let cols: Vec<String> = (0..meta.fields.len())
                    .filter(|&i| !unset(r, i))
                    .map(|i| crate::query::quote(meta.fields[i].name))
                    .collect();
                sql.push(&cols.join(", "));
            }
            _ => {
                sql.push(&self.table.column_list);
            }
        }
        sql.push(") VALUES ");
        for (n, r) in records.iter().enumerate() {
            sql.push(if n == 0 { "(" } else { ", (" });
            let mut first = true;
            for i in 0..meta.fields.len() {
                let left_out = unset(r, i);
                if left_out && sqlite {
                    continue;
                }
                if !first {
                    sql.push(", ");
                }
                first = false;
                if left_out {
                    sql.push("DEFAULT");
                } else {
                    self.bind_field(&mut sql, i, r.get(i))?;
                }
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
                .push(&self.table.target)
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
            // A partial index holds live rows only.
            if let Some(live) = ix.live_only {
                if meta
                    .field(live)
                    .is_none_or(|(i, _)| !record.get(i).is_null())
                {
                    continue;
                }
                sql.ident(live).push(" IS NULL AND ");
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
        sql.push("SELECT 1 FROM ").push(&self.table.target);
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
        #[cfg(feature = "postgres")]
        if self.dialect() == Dialect::Postgres {
            let mut column = None;
            if let Some((code, constraint)) = crate::error::postgres::pg_code_and_constraint(&e) {
                if let Some(cn) = constraint.filter(|_| code == "23505") {
                    if self.table.names.needs_primary_key_lookup(cn) {
                        if let Some(pk) =
                            crate::error::postgres::primary_key_of(self.db(), &self.table.qualified)
                                .await
                        {
                            let _ = self.table.names.actual_primary_key.set(pk);
                        }
                    }
                } else if code == "22001" || code == "22003" {
                    let code = code.to_string();
                    let limits = crate::error::postgres::column_limits(
                        self.db(),
                        self.table.schema.as_deref(),
                        meta.name,
                    )
                    .await;
                    column = crate::error::postgres::find_over_limit(meta, record, &limits, &code);
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

    /// Insert one row and return it as stored (`RETURNING` every column).
    pub(crate) async fn insert_on<C: Conn>(&self, c: &C, entity: &E) -> Result<E> {
        let meta = E::meta();
        let record = self
            .record_of(
                &lifecycle::stamped(entity, true),
                meta.version_index.map(|_| 1),
            )
            .map_err(|e| e.in_context(meta.name, "insert"))?;
        let mut sql = self.insert_sql(&[&record])?;
        sql.push(" RETURNING ");
        self.push_read_list(&mut sql);
        match self.rows(c, sql).await {
            Ok(rows) => self.returned(&rows, "insert"),
            Err(e) => Err(self.write_err(c, e, &record, "insert").await),
        }
    }

    /// Insert all rows on `c` (inside a transaction the caller manages).
    pub(crate) async fn insert_all_on<C: Conn>(&self, c: &C, entities: &[E]) -> Result<u64> {
        // One time for the whole call (see `lifecycle`).
        let now = lifecycle::now();
        let records = entities
            .iter()
            .enumerate()
            .map(|(i, e)| {
                checked_record(
                    self.dialect(),
                    i,
                    lifecycle::stamped_at(e, now, true).into_owned(),
                )
            })
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
            // A store of a dialect not compiled in cannot be connected.
            #[cfg(not(feature = "postgres"))]
            Dialect::Postgres => {
                return Err(Error::unsupported(
                    "PostgreSQL support is not compiled in (feature `postgres`)",
                ));
            }
            #[cfg(feature = "postgres")]
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
                        if !crate::error::postgres::is_row_fault(&e) {
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

    pub(crate) async fn update_on<C: Conn>(&self, c: &C, entity: &E) -> Result<E> {
        let meta = E::meta();
        let expected = entity.version();
        let next = expected.map(|v| v + 1);
        let record = self
            .record_of(&lifecycle::stamped_over(entity, None), next)
            .map_err(|e| e.in_context(meta.name, "update"))?;
        let mut sql = self.sql();
        sql.push("UPDATE ").push(&self.table.target).push(" SET ");
        let mut first = true;
        for (i, f) in meta.fields.iter().enumerate() {
            // `created_at` keeps the stored value; the database owns
            // generated columns.
            if f.id || Some(i) == meta.created_at || meta.generated.contains(&i) {
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
                self.bind_field(&mut sql, i, record.get(i))?;
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
        sql.push(" RETURNING ");
        self.push_read_list(&mut sql);
        let rows = match self.rows(c, sql).await {
            Ok(rows) => rows,
            Err(e) => return Err(self.write_err(c, e, &record, "update").await),
        };
        if !rows.is_empty() {
            return self.returned(&rows, "update");
        }
        // Nothing updated: a stale version or a missing row.
        if let Some(vf) = meta.version_field() {
            let mut sql = self.sql();
            sql.push("SELECT ")
                .ident(vf.name)
                .push(" FROM ")
                .push(&self.table.target);
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
        let record = self
            .record_of(
                &lifecycle::stamped(entity, true),
                meta.version_index.map(|_| 1),
            )
            .map_err(|e| e.in_context(meta.name, "upsert"))?;
        let mut sql = self.sql();
        sql.push("INSERT INTO ")
            .push(&self.table.target)
            .push(" AS \"_t\" (")
            .push(&self.table.column_list)
            .push(") VALUES (");
        for i in 0..meta.fields.len() {
            if i > 0 {
                sql.push(", ");
            }
            if meta.is_unset_generated(i, record.get(i)) {
                // NULL on SQLite: a rowid id is assigned, other columns stay empty.
                sql.push(match self.dialect() {
                    Dialect::Postgres => "DEFAULT",
                    Dialect::Sqlite => "NULL",
                });
            } else {
                self.bind_field(&mut sql, i, record.get(i))?;
            }
        }
        sql.push(") ON CONFLICT (")
            .ident(meta.id_field().name)
            .push(") DO UPDATE SET ");
        let mut first = true;
        // An overwrite keeps `created_at`; `updated_at` comes from the new row.
        for (_, f) in
            meta.fields.iter().enumerate().filter(|&(i, f)| {
                !f.id && Some(i) != meta.created_at && !meta.generated.contains(&i)
            })
        {
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
        sql.push(" RETURNING ");
        self.push_read_list(&mut sql);
        match self.rows(c, sql).await {
            Ok(rows) => self.returned(&rows, "upsert"),
            Err(e) => Err(self.write_err(c, e, &record, "upsert").await),
        }
    }

    pub(crate) async fn delete_on<C: Conn>(&self, c: &C, id: &E::Id) -> Result<bool> {
        let id = self.id_value(id)?;
        let mut sql = self.sql();
        sql.push("DELETE FROM ").push(&self.table.target);
        self.where_id(&mut sql, &id)?;
        Ok(self.exec(c, sql).await.map_err(|e| self.err(e, "delete"))? > 0)
    }

    /// `purge`, and `delete_many` of entities without soft delete: a
    /// `DELETE` of the rows matching (`op` names the call in errors).
    pub(crate) async fn purge_on<C: Conn>(
        &self,
        c: &C,
        filter: &Filter,
        op: &'static str,
    ) -> Result<u64> {
        let meta = E::meta();
        let f = lifecycle::purge_filter(filter)
            .checked(meta)
            .map_err(|e| e.in_context(meta.name, op))?;
        let mut sql = self.sql();
        sql.push("DELETE FROM ").push(&self.table.target);
        self.where_filter_rows(&mut sql, &f)
            .map_err(|e| e.in_context(meta.name, op))?;
        self.exec(c, sql).await.map_err(|e| self.err(e, op))
    }
}
