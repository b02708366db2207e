//! Row locks (`Capabilities::row_locks`). Locking reads exist only inside a
//! backend's own transactions (`TxRepository::get_for_update` on
//! PostgreSQL), which the `Backend` trait does not reach; their contention
//! tests live with the backend (`persistence-postgres/tests/locks.rs`). The
//! case here pins the declaration: the harness checks, for every flag a
//! case needs, that each repository reports what its backend declares, so
//! a backend cannot claim row locks it does not report (or the reverse).
#![allow(clippy::unwrap_used, missing_docs)]

use crate::conformance::Backend;
use crate::conformance::entities::*;
use crate::repository::Repository;

/// Needs: row_locks
pub async fn row_locks_come_with_transactions<B: Backend>(b: &B) {
    let caps = b.repo::<Person>().await.capabilities();
    assert!(
        caps.row_locks && caps.transactions,
        "{} declares row locks, which are taken in transactions, but no transactions",
        caps.backend
    );
}
