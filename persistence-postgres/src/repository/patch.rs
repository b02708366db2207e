//! Atomic partial updates of [`RelationalRepository`], one statement each:
//!
//! * `patch`: `UPDATE t SET x = COALESCE(x, 0) + $1, "version" = "version" + 1
//!   WHERE "id" = $2 [AND "version" = $3] [AND <guard>] RETURNING <columns>`,
//!   decoded as `get` decodes. Only when it returns no row does a second,
//!   read-only query (`SELECT "version", CASE WHEN <guard> ... WHERE "id" = $1`)
//!   tell `NotFound` from a stale version (`Conflict(Version)`) and a failed
//!   guard (`Conflict(Guard)`); if that query finds the row meeting both (it
//!   changed between the two statements) the answer is a retryable
//!   `Conflict(Concurrent)`.
//!   On a soft-deletable entity the row's identity includes the scope of
//!   [`lifecycle::patch_scope`] (`"id" = $1 AND "deleted_at" IS NULL` by
//!   default, `IS NOT NULL` under a guard with `only_deleted()`), in the
//!   update and in the diagnosing query alike: a row outside the scope is
//!   `NotFound`, whatever the guard.
//! * `update_where`: `UPDATE t SET ..., "version" = "version" + 1 WHERE
//!   <filter>`; the count is the rows matched (each one updated). The
//!   checked filter carries the soft-delete scope.
//! * `find_one_and_delete`: `DELETE FROM t WHERE "id" = (SELECT "id" FROM t
//!   WHERE <filter> ORDER BY <sort> LIMIT 1 FOR UPDATE SKIP LOCKED)
//!   RETURNING <columns>` on PostgreSQL, so concurrent pops take distinct
//!   rows without waiting for each other (a pop that finds every matching
//!   row locked by other pops returns `None`); SQLite runs writes one at a
//!   time, so the same statement without the lock clause is atomic there.
//!
//! Integer overflow fails the statement (see `query::translate::update`):
//! `InvalidInput`, nothing changed.

use persistence_core::lifecycle;
use persistence_core::update::UpdateOp;
use persistence_core::{Entity, Error, Filter, Guard, Query, Result, Update, Value};
use sea_orm::{DbErr, Value as SV};

use super::RelationalRepository;
use crate::error::is_unnamed_unique;
use crate::query::translate::update::SQLITE_OVERFLOW;
use crate::query::{Dialect, Sql};
use crate::store::conn::Conn;

impl<E: Entity> RelationalRepository<E> {
    /// `UPDATE t SET <update>, "version" = "version" + 1`.
    fn update_head(&self, update: &Update<E>) -> Result<Sql> {
        let meta = E::meta();
        let mut sql = self.sql();
        sql.push("UPDATE ").push(&self.table.target).push(" SET ");
        self.tr().set_list(&mut sql, update.assignments())?;
        if let Some(vf) = meta.version_field() {
            sql.push(", ")
                .ident(vf.name)
                .push(" = ")
                .ident(vf.name)
                .push(" + 1");
        }
        Ok(sql)
    }

    /// Map an error of an update statement: an overflow names the fields.
    fn update_err(&self, e: DbErr, update: &Update<E>, op: &'static str) -> Error {
        let sqlite_overflow =
            self.dialect() == Dialect::Sqlite && e.to_string().contains(SQLITE_OVERFLOW);
        #[cfg(feature = "postgres")]
        let pg_overflow = crate::error::postgres::pg_code_and_constraint(&e)
            .is_some_and(|(code, _)| code == "22003");
        #[cfg(not(feature = "postgres"))]
        let pg_overflow = false;
        let text = e.to_string();
        let sqlite_columns = (self.dialect() == Dialect::Sqlite)
            .then(|| sqlite_unique_columns(&text))
            .flatten();
        let err = self.err(e, op);
        if let Some(columns) = sqlite_columns.filter(|_| is_unnamed_unique(&err)) {
            // SQLite names the columns, not the index: find the declared
            // unique index over exactly those columns (PostgreSQL names it).
            let meta = E::meta();
            if let Some(ix) = meta.uniques().find(|u| u.fields == columns) {
                return Error::unique_violation(
                    Some(ix.name.clone()),
                    format!(
                        "unique constraint `{}` ({}): {}",
                        ix.name,
                        ix.fields.join(", "),
                        err.message()
                    ),
                )
                .in_context(meta.name, op)
                .with_source(err);
            }
        }
        if !(sqlite_overflow || pg_overflow) {
            return err;
        }
        let fields: Vec<String> = update
            .assignments()
            .iter()
            .filter(|a| matches!(a.op, UpdateOp::Inc(_) | UpdateOp::Mul(_)))
            .map(|a| format!("`{}`", a.field))
            .collect();
        let meta = E::meta();
        Error::invalid_input(format!(
            "update of {}: inc/mul of {} leaves the field's numeric type (overflow); nothing was changed",
            meta.name,
            fields.join(", ")
        ))
        .in_context(meta.name, op)
        .with_source(err)
    }

    pub(crate) async fn patch_on<C: Conn>(
        &self,
        c: &C,
        id: &E::Id,
        update: &Update<E>,
        guard: &Guard,
    ) -> Result<E> {
        let meta = E::meta();
        let ctx = |e: Error| e.in_context(meta.name, "patch");
        let update = update.checked(meta).map_err(ctx)?;
        let filter = guard
            .filter
            .as_ref()
            .map(|f| f.checked(meta))
            .transpose()
            .map_err(ctx)?
            .filter(|f| !f.is_all());
        let vf = meta.version_field();
        if guard.version.is_some() && vf.is_none() {
            return Err(ctx(Error::invalid_input(format!(
                "{} has no version field to guard",
                meta.name
            ))));
        }
        let scope = lifecycle::patch_scope(meta, guard).map_err(ctx)?;
        let id = self.id_value(id).map_err(ctx)?;
        let mut sql = self.update_head(&update).map_err(ctx)?;
        self.where_row(&mut sql, &id, scope.as_ref()).map_err(ctx)?;
        if let (Some(vf), Some(v)) = (vf, guard.version) {
            sql.push(" AND ")
                .ident(vf.name)
                .push(" = ")
                .bind(sea_orm::Value::BigInt(Some(v)));
        }
        if let Some(f) = &filter {
            sql.push(" AND ");
            self.filter_rows(&mut sql, f).map_err(ctx)?;
        }
        sql.push(" RETURNING ");
        self.push_read_list(&mut sql);
        let rows = self
            .rows(c, sql)
            .await
            .map_err(|e| self.update_err(e, &update, "patch"))?;
        if !rows.is_empty() {
            return self.returned(&rows, "patch");
        }
        Err(ctx(self
            .why_not_patched(c, &id, scope.as_ref(), guard, filter.as_ref())
            .await?))
    }

    /// ` WHERE "id" = $1 [AND <scope>]`: the row a patch acts on.
    fn where_row(&self, sql: &mut Sql, id: &Value, scope: Option<&Filter>) -> Result<()> {
        self.where_id(sql, id)?;
        if let Some(s) = scope {
            sql.push(" AND ");
            self.filter_rows(sql, s)?;
        }
        Ok(())
    }

    /// Why a patch matched no row: one read of the row's version and guard
    /// (a row outside `scope` is missing).
    async fn why_not_patched<C: Conn>(
        &self,
        c: &C,
        id: &Value,
        scope: Option<&Filter>,
        guard: &Guard,
        filter: Option<&Filter>,
    ) -> Result<Error> {
        let meta = E::meta();
        let mut sql = self.sql();
        sql.push("SELECT ");
        match meta.version_field() {
            Some(vf) => sql.ident(vf.name),
            None => sql.push("0"),
        };
        sql.push(", CASE WHEN ");
        match filter {
            Some(f) => self.tr().filter(&mut sql, f)?,
            None => {
                sql.push(self.dialect().t());
            }
        }
        sql.push(" THEN 1 ELSE 0 END FROM ");
        self.push_source(&mut sql);
        self.where_row(&mut sql, id, scope)?;
        let rows = self.rows(c, sql).await.map_err(|e| self.err(e, "patch"))?;
        let Some(row) = rows.first() else {
            return Ok(Error::not_found(format!("no {} with this id", meta.name)));
        };
        let version = row.try_get_by_index::<i64>(0).ok();
        let matched = row
            .try_get_by_index::<i32>(1)
            .map(|m| m == 1)
            .unwrap_or(false)
            || row
                .try_get_by_index::<i64>(1)
                .map(|m| m == 1)
                .unwrap_or(false);
        if let Some(expected) = guard.version {
            if version != Some(expected) {
                return Ok(Error::stale_version(Some(expected), version));
            }
        }
        if !matched {
            return Ok(Error::guard_failed(format!(
                "the stored {} does not match the guard",
                meta.name
            )));
        }
        Ok(Error::concurrent(
            "the row changed between the update and the check; retry",
        ))
    }

    pub(crate) async fn update_where_on<C: Conn>(
        &self,
        c: &C,
        filter: &Filter,
        update: &Update<E>,
    ) -> Result<u64> {
        let meta = E::meta();
        let ctx = |e: Error| e.in_context(meta.name, "update_where");
        let update = update.checked(meta).map_err(ctx)?;
        let f = filter.checked(meta).map_err(ctx)?;
        let mut sql = self.update_head(&update).map_err(ctx)?;
        self.where_filter_rows(&mut sql, &f).map_err(ctx)?;
        self.exec(c, sql)
            .await
            .map_err(|e| self.update_err(e, &update, "update_where"))
    }

    pub(crate) async fn find_one_and_delete_on<C: Conn>(
        &self,
        c: &C,
        query: &Query,
    ) -> Result<Option<E>> {
        let meta = E::meta();
        let op = "find_one_and_delete";
        let q = query
            .checked(meta)
            .map_err(|e| e.in_context(meta.name, op))?;
        let id = meta.id_field().name;
        let mut sql = self.sql();
        sql.push("DELETE FROM ")
            .push(&self.table.target)
            .push(" WHERE ")
            .ident(id)
            .push(" = (SELECT ")
            .ident(id)
            .push(" FROM ");
        self.push_source(&mut sql);
        // The known NOT NULL columns sort without a NULLS clause, so an index
        // can provide the queue's order (see `crate::query::facts`).
        let facts = &self.table.facts;
        self.where_filter(&mut sql, &q.filter)
            .and_then(|()| {
                self.tr()
                    .order_by_known(&mut sql, &q.sort, &|c| facts.not_null(c))
            })
            .map_err(|e| e.in_context(meta.name, op))?;
        sql.push(" LIMIT 1");
        if q.offset > 0 {
            sql.push(" OFFSET ").bind(SV::BigInt(Some(
                i64::try_from(q.offset).unwrap_or(i64::MAX),
            )));
        }
        if self.dialect() == Dialect::Postgres {
            sql.push(" FOR UPDATE SKIP LOCKED");
        }
        sql.push(") RETURNING ");
        self.push_read_list(&mut sql);
        let rows = self.rows(c, sql).await.map_err(|e| self.err(e, op))?;
        match rows.first() {
            Some(row) => self
                .decode_row(row)
                .map(Some)
                .map_err(|e| e.in_context(meta.name, op)),
            None => Ok(None),
        }
    }
}

/// The columns SQLite names in `UNIQUE constraint failed: t.a, t.b`.
fn sqlite_unique_columns(message: &str) -> Option<Vec<&str>> {
    let (_, list) = message.split_once("UNIQUE constraint failed: ")?;
    let list = list.split(['\n', '(', ')']).next()?.trim();
    list.split(", ")
        .map(|qualified| qualified.rsplit_once('.').map(|(_, column)| column.trim()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::sqlite_unique_columns;

    #[test]
    fn sqlite_names_the_columns_of_a_unique_violation() {
        let msg = "Execution Error: error returned from database: (code: 2067) UNIQUE constraint failed: conf_notes.slug";
        assert_eq!(sqlite_unique_columns(msg), Some(vec!["slug"]));
        let two = "UNIQUE constraint failed: t.tenant, t.handle";
        assert_eq!(sqlite_unique_columns(two), Some(vec!["tenant", "handle"]));
        assert_eq!(
            sqlite_unique_columns("NOT NULL constraint failed: t.a"),
            None
        );
    }
}
