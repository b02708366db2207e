//! Shared test support: a fresh database per test, dropped afterwards (also
//! on panic), and the entities several topic files use ([`fixtures`]).
#![allow(dead_code)]

pub mod fixtures;

use std::future::Future;

use persistence_mongo::MongoStore;
use persistence_testing::TestMongo;

/// Run `body` against a fresh database; prints SKIPPED without a server (fails under CI=true).
pub async fn with_store<F, Fut>(body: F)
where
    F: FnOnce(MongoStore) -> Fut,
    Fut: Future<Output = ()>,
{
    let Some(db) = TestMongo::database().await else {
        return;
    };
    let store = db.store().await.expect("connect");
    body(store).await;
    // Dropping `db` drops the database, also while unwinding from a panic.
    if let Err(e) = db.cleanup().await {
        eprintln!("cleanup: {e}");
    }
}
