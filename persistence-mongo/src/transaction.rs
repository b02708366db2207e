//! Multi-document transactions: a closure-style unit of work over a client session.
//!
//! ```no_run
//! # use persistence_core::{Entity, Repository};
//! # use persistence_mongo::MongoStore;
//! # #[derive(Debug, Clone, serde::Serialize, serde::Deserialize, Entity)]
//! # struct Account { #[entity(id)] id: i64, #[entity(version)] version: i64, balance: i64 }
//! # async fn run(store: MongoStore) -> persistence_core::Result<()> {
//! store
//!     .transaction(|tx| async move {
//!         let accounts = tx.repository::<Account>();
//!         let mut a = accounts.get(&1).await?.expect("exists");
//!         a.balance -= 10;
//!         accounts.update(&a).await?;
//!         Ok(())
//!     })
//!     .await?;
//! # Ok(()) }
//! ```
//!
//! The closure runs inside a transaction: `Ok` commits, `Err` aborts (the
//! session is also aborted by the server if it is dropped mid-way). When the
//! closure fails with a retryable `Conflict(Concurrent)` (the driver's
//! `TransientTransactionError` label, e.g. a write conflict with another
//! transaction) or the commit reports a transient error, the whole closure
//! runs again, at most [`TransactionOptions::max_attempts`] times; a commit
//! whose outcome is unknown (`UnknownTransactionCommitResult`) is re-committed.
//!
//! Transactions need a replica set or sharded cluster:
//! [`MongoStore::supports_transactions`] tells, and a standalone server gives
//! `Unsupported`.
//!
//! ## No row locks
//!
//! MongoDB has no `SELECT … FOR UPDATE`: a read in a transaction locks
//! nothing, so `Capabilities::row_locks` is `false` and these repositories
//! have no `get_for_update` / `find_for_update` (the PostgreSQL backend's
//! `Lock` modes have no counterpart here). What protects a document is a
//! *write* to it: once a transaction has written a document, another
//! transaction writing it before the first ends fails at once with a write
//! conflict (112, `TransientTransactionError`), a retryable
//! `Conflict(Concurrent)`, and [`MongoStore::transaction`] runs its closure
//! again. So to claim a document (the job-queue pattern), write it in one
//! conditional statement instead of locking then writing: a guarded
//! `patch` (filter `status == "queued"`, set `status = "taken"`) either
//! claims it or fails the guard, and a versioned `update` does the same
//! through the version check.

use std::future::Future;
use std::sync::Arc;

use mongodb::error::{TRANSIENT_TRANSACTION_ERROR, UNKNOWN_TRANSACTION_COMMIT_RESULT};
use persistence_core::{ConflictKind, Entity, Error, ErrorKind, Result};
use tokio::sync::Mutex;

use crate::error::map_plain;
use crate::repository::MongoRepository;
use crate::store::MongoStore;

/// A session shared by the repositories of one transaction (defined with
/// the repository, which holds it).
pub use crate::repository::SharedSession;

/// Retry policy of [`MongoStore::transaction`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransactionOptions {
    /// How many times the closure may run in total (at least 1).
    pub max_attempts: u32,
}

impl Default for TransactionOptions {
    fn default() -> Self {
        TransactionOptions { max_attempts: 5 }
    }
}

/// The handle passed to a transaction's closure: hands out repositories bound to its session.
#[derive(Clone)]
pub struct Transaction {
    store: MongoStore,
    session: SharedSession,
}

impl std::fmt::Debug for Transaction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transaction").finish_non_exhaustive()
    }
}

impl Transaction {
    /// The repository of `E`, every operation of which runs in this transaction.
    /// (Inside a transaction, `stream` reads its whole result before yielding.)
    pub fn repository<E: Entity>(&self) -> MongoRepository<E> {
        self.store
            .repository::<E>()
            .in_session(self.session.clone())
    }

    /// Bind an existing repository (e.g. with custom validation) to this transaction.
    pub fn bind<E: Entity>(&self, repo: &MongoRepository<E>) -> MongoRepository<E> {
        repo.in_session(self.session.clone())
    }
}

fn transient(e: &Error) -> bool {
    matches!(e.kind(), ErrorKind::Conflict(ConflictKind::Concurrent))
}

impl MongoStore {
    /// Whether the server can run multi-document transactions (replica set
    /// member or `mongos`), from the `hello` command.
    pub async fn supports_transactions(&self) -> Result<bool> {
        let hello = self
            .database()
            .run_command(bson::doc! { "hello": 1 })
            .await
            .map_err(|e| map_plain(e).with_operation("hello"))?;
        Ok(hello.get_str("setName").is_ok() || hello.get_str("msg") == Ok("isdbgrid"))
    }

    /// Run `work` in a transaction with the default retry policy (see the module docs).
    ///
    /// With a leak detector ([`MongoStore::set_leak_detector`]), a transaction
    /// open longer than its threshold is reported with the caller's file and line.
    #[track_caller]
    pub fn transaction<T, F, Fut>(&self, work: F) -> impl Future<Output = Result<T>>
    where
        F: FnMut(Transaction) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        self.transaction_with(TransactionOptions::default(), work)
    }

    /// Run `work` in a transaction with an explicit retry policy.
    #[track_caller]
    pub fn transaction_with<T, F, Fut>(
        &self,
        options: TransactionOptions,
        work: F,
    ) -> impl Future<Output = Result<T>>
    where
        F: FnMut(Transaction) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        self.transaction_at(options, work, std::panic::Location::caller())
    }

    async fn transaction_at<T, F, Fut>(
        &self,
        options: TransactionOptions,
        mut work: F,
        site: &'static std::panic::Location<'static>,
    ) -> Result<T>
    where
        F: FnMut(Transaction) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        if !self.supports_transactions().await? {
            return Err(Error::unsupported(
                "MongoDB transactions need a replica set or a sharded cluster",
            ));
        }
        let session = self
            .client()
            .start_session()
            .await
            .map_err(|e| map_plain(e).with_operation("transaction"))?;
        let session: SharedSession = Arc::new(Mutex::new(session));
        let _hold = self
            .leak_detector()
            .map(|d| d.track("transaction", None, Some(site)));
        let max = options.max_attempts.max(1);
        let mut attempt = 0;
        loop {
            attempt += 1;
            session
                .lock()
                .await
                .start_transaction()
                .await
                .map_err(|e| map_plain(e).with_operation("transaction"))?;
            let tx = Transaction {
                store: self.clone(),
                session: session.clone(),
            };
            match work(tx).await {
                Ok(value) => match commit(&session).await {
                    Ok(()) => return Ok(value),
                    Err(e) if transient(&e) && attempt < max => continue,
                    Err(e) => return Err(e),
                },
                Err(e) => {
                    // Best effort: the server aborts on its own if this fails.
                    let _ = session.lock().await.abort_transaction().await;
                    if e.is_retryable() && transient(&e) && attempt < max {
                        continue;
                    }
                    return Err(e);
                }
            }
        }
    }
}

async fn commit(session: &SharedSession) -> Result<()> {
    let mut guard = session.lock().await;
    let mut tries = 0;
    loop {
        tries += 1;
        match guard.commit_transaction().await {
            Ok(()) => return Ok(()),
            Err(e) if e.contains_label(UNKNOWN_TRANSACTION_COMMIT_RESULT) && tries < 3 => continue,
            Err(e) if e.contains_label(TRANSIENT_TRANSACTION_ERROR) => {
                return Err(Error::concurrent("transient error on commit")
                    .with_operation("commit")
                    .with_source(e));
            }
            Err(e) => return Err(map_plain(e).with_operation("commit")),
        }
    }
}
