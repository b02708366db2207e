//! Repository behaviour on SQLite (each test in its own temporary database file).
mod common;

use common::*;

macro_rules! sqlite_test {
    ($name:ident, $body:expr) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            let (store, path) = sqlite_store().await;
            let repo = store.repository::<Thing>();
            let outcome = tokio::spawn({
                let repo = repo.clone();
                async move { $body(&repo).await }
            })
            .await;
            store.close().await;
            remove_sqlite(&path);
            if let Err(e) = outcome {
                std::panic::resume_unwind(e.into_panic());
            }
        }
    };
}

sqlite_test!(crud_round_trip_conflicts_versions, crud);
sqlite_test!(answers_like_the_reference, same_answers_as_memory);
sqlite_test!(special_floats_round_trip, |r| special_floats(r, false));

#[tokio::test]
async fn in_memory_default_works() {
    let store = persistence_postgres::RelationalStore::connect(
        &persistence_postgres::RelationalConfig::new("sqlite::memory:"),
    )
    .await
    .expect("memory");
    let repo = store.repository::<Thing>();
    crud(&repo).await;
}
