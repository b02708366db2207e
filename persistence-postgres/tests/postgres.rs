//! Repository behaviour on the local PostgreSQL (each test in its own schema).
mod common;

use common::*;

macro_rules! pg_test {
    ($name:ident, $body:expr) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            let Some(store) = pg_store().await else {
                return;
            };
            let repo = store.repository::<Thing>();
            let outcome = tokio::spawn({
                let repo = repo.clone();
                async move { $body(&repo).await }
            })
            .await;
            store.drop_schema().await.expect("drop schema");
            store.close().await;
            if let Err(e) = outcome {
                std::panic::resume_unwind(e.into_panic());
            }
        }
    };
}

pg_test!(crud_round_trip_conflicts_versions, crud);
pg_test!(answers_like_the_reference, same_answers_as_memory);
pg_test!(special_floats_round_trip, |r| special_floats(r, true));
