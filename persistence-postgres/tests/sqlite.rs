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

/// The unique constraint of a soft-deletable entity is a partial unique
/// index over live rows (`WHERE "deleted_at" IS NULL`), created once, and a
/// violation names it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soft_delete_unique_is_a_partial_index() {
    use persistence_core::conformance::entities::Note;
    use persistence_core::{ConflictKind, ErrorKind, Repository};
    use persistence_postgres::sea_orm::{ConnectionTrait as _, Statement};
    let (store, path) = sqlite_store().await;
    let s = store.clone();
    let outcome = tokio::spawn(async move {
        let repo = s.repository::<Note>();
        repo.ensure_schema().await.expect("schema");
        repo.ensure_schema()
            .await
            .expect("ensure_schema is idempotent");
        let db = s.connection();
        let rows = db
            .query_all_raw(Statement::from_string(
                db.get_database_backend(),
                "SELECT name, coalesce(sql, '') FROM sqlite_master \
                 WHERE type = 'index' AND tbl_name = 'conf_notes' ORDER BY name",
            ))
            .await
            .expect("sqlite_master");
        let indexes: Vec<(String, String)> = rows
            .iter()
            .map(|r| {
                (
                    r.try_get_by_index(0).expect("name"),
                    r.try_get_by_index(1).expect("sql"),
                )
            })
            .collect();
        let (_, sql) = indexes
            .iter()
            .find(|(n, _)| n == "ux_conf_notes_slug")
            .unwrap_or_else(|| panic!("no ux_conf_notes_slug in {indexes:#?}"));
        assert!(
            sql.starts_with("CREATE UNIQUE INDEX") && sql.contains(r#"WHERE "deleted_at" IS NULL"#),
            "{sql}"
        );
        repo.insert(&Note::new(1, "same", 0)).await.expect("insert");
        let e = repo
            .insert(&Note::new(2, "same", 0))
            .await
            .expect_err("live duplicate");
        assert_eq!(
            e.kind(),
            &ErrorKind::Conflict(ConflictKind::Unique {
                constraint: Some("ux_conf_notes_slug".into())
            }),
            "{e}"
        );
    })
    .await;
    store.close().await;
    remove_sqlite(&path);
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}
