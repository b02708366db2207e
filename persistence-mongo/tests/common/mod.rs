//! Shared test support: a fresh database per test, dropped afterwards (also on panic).
#![allow(dead_code)]

use std::future::Future;
use std::panic::AssertUnwindSafe;

use futures_util::FutureExt as _;
use persistence_core::conformance::services::{self, Service};
use persistence_mongo::{MongoConfig, MongoStore};

/// Run `body` against a fresh database; prints SKIPPED without a server (fails under CI=true).
pub async fn with_store<F, Fut>(body: F)
where
    F: FnOnce(MongoStore) -> Fut,
    Fut: Future<Output = ()>,
{
    let Some(url) = services::url(Service::Mongo) else {
        return;
    };
    let db = format!("t_{}", services::unique_suffix());
    let store = MongoStore::connect(&MongoConfig::new(url, db))
        .await
        .expect("connect");
    let outcome = AssertUnwindSafe(body(store.clone())).catch_unwind().await;
    if let Err(e) = store.drop_database().await {
        eprintln!("cleanup: {e}");
    }
    if let Err(p) = outcome {
        std::panic::resume_unwind(p);
    }
}
