//! Locking reads for [`TxRepository::get_for_update`](crate::TxRepository::get_for_update)
//! and [`find_for_update`](crate::TxRepository::find_for_update): the
//! statements (`FOR UPDATE [NOWAIT | SKIP LOCKED]` on PostgreSQL; the
//! database write lock first on SQLite) and their errors. The semantics
//! are documented on [`Lock`](crate::Lock).

use persistence_core::{ConflictKind, Entity, Error, ErrorKind, Query, Result};
use sea_orm::DatabaseTransaction;

use super::RelationalRepository;
use crate::codec::to_bind;
use crate::query::{Dialect, Sql};
use crate::store::conn::Conn;
use crate::transaction::Lock;

/// A statement that writes nothing but opens SQLite's write transaction
/// (the RESERVED lock): an `UPDATE` of no row still begins the write.
fn sqlite_write_lock_sql(table: &str, id_column: &str) -> String {
    format!("UPDATE {table} SET {id_column} = {id_column} WHERE 0")
}

impl<E: Entity> RelationalRepository<E> {
    /// The error of a lock that is held elsewhere, from the mapped error.
    fn locked(&self, e: Error, lock: Lock, op: &'static str) -> Error {
        if lock != Lock::NoWait
            || !matches!(e.kind(), ErrorKind::Conflict(ConflictKind::Concurrent))
        {
            return e;
        }
        let what = match self.dialect() {
            Dialect::Postgres => "the row is locked by another transaction",
            Dialect::Sqlite => "the database is locked by another transaction's write",
        };
        let message = format!(
            "{what} (Lock::NoWait); retry the transaction later: {}",
            e.message()
        );
        e.with_message(message).in_context(E::meta().name, op)
    }

    /// SQLite: take the database write lock for the rest of the transaction
    /// (waiting up to the busy timeout, or not at all with `NoWait`).
    async fn sqlite_lock(
        &self,
        tx: &DatabaseTransaction,
        lock: Lock,
        op: &'static str,
    ) -> Result<()> {
        let idf = crate::query::quote(E::meta().id_field().name);
        let mut take = self.sql();
        take.push(&sqlite_write_lock_sql(&self.table.target, &idf));
        if lock != Lock::NoWait {
            return self
                .exec(tx, take)
                .await
                .map(|_| ())
                .map_err(|e| self.err(e, op));
        }
        // `busy_timeout` is per connection: off for this one attempt, then back.
        let mut read = self.sql();
        read.push("PRAGMA busy_timeout");
        let before = self
            .rows(tx, read)
            .await
            .map_err(|e| self.err(e, op))?
            .first()
            .map(|r| r.try_get_by_index::<i64>(0))
            .transpose()
            .map_err(|e| self.err(e, op))?
            .unwrap_or(0);
        let mut off = self.sql();
        off.push("PRAGMA busy_timeout = 0");
        self.exec(tx, off).await.map_err(|e| self.err(e, op))?;
        let taken = self.exec(tx, take).await;
        let mut back = self.sql();
        // An integer read from the connection, not caller data.
        back.push(&format!("PRAGMA busy_timeout = {}", before.max(0)));
        let restored = self.exec(tx, back).await;
        taken.map_err(|e| self.locked(self.err(e, op), lock, op))?;
        restored.map_err(|e| self.err(e, op))?;
        Ok(())
    }

    fn lock_clause(&self, sql: &mut Sql, lock: Lock) {
        if self.dialect() == Dialect::Postgres {
            sql.push(" FOR UPDATE");
            match lock {
                Lock::Wait => {}
                Lock::NoWait => {
                    sql.push(" NOWAIT");
                }
                Lock::SkipLocked => {
                    sql.push(" SKIP LOCKED");
                }
            }
        }
    }

    pub(crate) async fn get_for_update_on(
        &self,
        tx: &DatabaseTransaction,
        id: &E::Id,
        lock: Lock,
    ) -> Result<Option<E>> {
        let op = "get_for_update";
        let meta = E::meta();
        let id = self.id_value(id).map_err(|e| e.in_context(meta.name, op))?;
        if self.dialect() == Dialect::Sqlite {
            self.sqlite_lock(tx, lock, op).await?;
        }
        let mut sql = self.select_head();
        sql.push(" WHERE ")
            .ident(meta.id_field().name)
            .push(" = ")
            .bind(
                to_bind(self.dialect(), meta.id_field().ty, &id)
                    .map_err(|e| e.in_context(meta.name, op))?,
            );
        // Like `get`: a soft-deleted row is not returned (nor locked).
        if let Some(f) = meta.soft_delete_field() {
            sql.push(" AND ").ident(f.name).push(" IS NULL");
        }
        self.lock_clause(&mut sql, lock);
        let row = tx
            .row(sql.into_statement())
            .await
            .map_err(|e| self.locked(self.err(e, op), lock, op))?;
        row.map(|r| self.decode_row(&r))
            .transpose()
            .map_err(|e| e.in_context(meta.name, op))
    }

    pub(crate) async fn find_for_update_on(
        &self,
        tx: &DatabaseTransaction,
        query: &Query,
        lock: Lock,
    ) -> Result<Vec<E>> {
        let op = "find_for_update";
        let meta = E::meta();
        let q = query
            .checked(meta)
            .map_err(|e| e.in_context(meta.name, op))?;
        let mut sql = self
            .select_sql(&q)
            .map_err(|e| e.in_context(meta.name, op))?;
        if self.dialect() == Dialect::Sqlite {
            self.sqlite_lock(tx, lock, op).await?;
        }
        self.lock_clause(&mut sql, lock);
        let rows = self
            .rows(tx, sql)
            .await
            .map_err(|e| self.locked(self.err(e, op), lock, op))?;
        rows.iter()
            .map(|r| self.decode_row(r))
            .collect::<Result<_>>()
            .map_err(|e| e.in_context(meta.name, op))
    }
}
