//! Row locks and raw statements inside a unit of work:
//! [`TxRepository::get_for_update`], [`TxRepository::find_for_update`]
//! (with a [`Lock`] mode), [`TxRepository::query_as`] and
//! [`TxRepository::execute`].

use persistence_core::{Entity, Query, Result};

use super::TxRepository;
use crate::repository::Params;

/// What a locking read does about a row another transaction has locked.
///
/// **PostgreSQL** (`Capabilities::row_locks` is `true`): the read is
/// `SELECT … FOR UPDATE`, and each row it returns stays locked against
/// other transactions' writes and locking reads until this transaction
/// commits or rolls back.
///
/// * [`Wait`](Lock::Wait): wait for the other transaction to end, then read
///   the row as it committed it (`FOR UPDATE`).
/// * [`NoWait`](Lock::NoWait): fail at once (`FOR UPDATE NOWAIT`) with a
///   retryable `Conflict(Concurrent)` error whose message says the row is
///   locked; the transaction is then aborted: return the error, retry the
///   whole unit later.
/// * [`SkipLocked`](Lock::SkipLocked): leave locked rows out of the result
///   (`FOR UPDATE SKIP LOCKED`): the job-queue pattern, where each worker
///   claims `find_for_update(&Query::filter(status.eq("queued")).limit(1), SkipLocked)`
///   and gets a different job.
///
/// **SQLite** (`row_locks` is `false`) has no row locks; a write transaction
/// holds the database's single write lock. A locking read first takes that
/// lock for the rest of the transaction (it writes nothing: an `UPDATE`
/// matching no row opens the write transaction), then reads. Other
/// connections can still read; no other transaction can write or take the
/// lock until this one ends. So:
///
/// * `Wait`: waits for the write lock up to the connection's busy timeout
///   (sqlx's default is 5 s), then fails with a retryable
///   `Conflict(Concurrent)` ("database is busy or locked").
/// * `NoWait`: does not wait (the busy timeout is set to 0 for that one
///   attempt and restored): a retryable `Conflict(Concurrent)` saying the
///   database is locked.
/// * `SkipLocked`: like `Wait`: once this transaction holds the write lock,
///   no other transaction holds a lock on any row, so there is nothing to
///   skip. A job queue on SQLite therefore works, one claim at a time.
///
/// Take the lock with the transaction's first statement: a transaction that
/// read before may find that another one wrote in between (WAL) or be
/// refused to avoid a deadlock; both are a retryable `Conflict(Concurrent)`.
///
/// MongoDB has no counterpart (see `persistence_mongo::transaction`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Lock {
    /// Wait for other transactions' locks (`FOR UPDATE`).
    #[default]
    Wait,
    /// Fail at once when a row is locked (`FOR UPDATE NOWAIT`).
    NoWait,
    /// Leave out rows that are locked (`FOR UPDATE SKIP LOCKED`).
    SkipLocked,
}

impl<E: Entity> TxRepository<'_, E> {
    /// Read the entity with `id` and lock its row until the transaction ends
    /// (see [`Lock`] for the modes and what SQLite does instead).
    /// `Ok(None)` when there is no such row, when it is soft-deleted (as
    /// for `get`; it is not locked then), or, with [`Lock::SkipLocked`],
    /// when it is locked elsewhere.
    pub async fn get_for_update(&self, id: &E::Id, lock: Lock) -> Result<Option<E>> {
        self.repo.get_for_update_on(self.tx, id, lock).await
    }

    /// [`find`](persistence_core::Repository::find) that locks every row it
    /// returns until the transaction ends (see [`Lock`]). With
    /// [`Lock::SkipLocked`], rows locked elsewhere are left out before the
    /// limit applies, so `limit(1)` claims the first free row.
    pub async fn find_for_update(&self, query: &Query, lock: Lock) -> Result<Vec<E>> {
        self.repo.find_for_update_on(self.tx, query, lock).await
    }

    /// [`RelationalRepository::query_as`](crate::RelationalRepository::query_as)
    /// in this transaction.
    pub async fn query_as<T: Entity>(
        &self,
        sql: &str,
        params: impl Into<Params>,
    ) -> Result<Vec<T>> {
        self.repo.query_as_on(self.tx, sql, params.into()).await
    }

    /// [`RelationalRepository::execute`](crate::RelationalRepository::execute)
    /// in this transaction.
    pub async fn execute(&self, sql: &str, params: impl Into<Params>) -> Result<u64> {
        self.repo.execute_on(self.tx, sql, params.into()).await
    }
}
