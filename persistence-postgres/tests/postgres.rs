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

/// The statement `eq_ignore_case` produces (`lower("name") = lower($1)`, see
/// the translator's unit test) is served by an expression index on
/// `lower(name)`, and answers like the reference.
async fn ignore_case_uses_a_lower_expression_index(
    repo: &persistence_postgres::RelationalRepository<Thing>,
) {
    use persistence_core::{Repository, StringField};
    use persistence_postgres::sea_orm::{ConnectionTrait as _, Statement, TransactionTrait as _};
    repo.ensure_schema().await.expect("schema");
    let rows: Vec<Thing> = (1..=500).map(thing).collect();
    repo.insert_many(&rows).await.expect("insert");
    let db = repo.store().connection();
    let table = repo.table_name().to_string();
    db.execute_unprepared(&format!(
        "CREATE INDEX ix_things_lower_name ON {table} (lower(\"name\")); ANALYZE {table}"
    ))
    .await
    .expect("index");
    let n = repo
        .count(&Thing::NAME.eq_ignore_case("BOB"))
        .await
        .expect("count");
    let want = rows
        .iter()
        .filter(|t| t.name.as_deref().is_some_and(|n| n.to_lowercase() == "bob"))
        .count();
    assert_eq!(n, want as u64);
    let tx = db.begin().await.expect("begin");
    tx.execute_unprepared("SET LOCAL enable_seqscan = off")
        .await
        .expect("set");
    let plan = tx
        .query_all_raw(Statement::from_sql_and_values(
            tx.get_database_backend(),
            format!("EXPLAIN SELECT COUNT(*) FROM {table} WHERE (lower(\"name\") = lower($1))"),
            ["BOB".into()],
        ))
        .await
        .expect("explain");
    let text: Vec<String> = plan
        .iter()
        .map(|r| r.try_get_by_index::<String>(0).expect("plan line"))
        .collect();
    tx.rollback().await.expect("rollback");
    assert!(
        text.iter().any(|l| l.contains("ix_things_lower_name")),
        "the lower(name) index serves eq_ignore_case: {text:#?}"
    );
}

pg_test!(
    ignore_case_is_served_by_a_lower_index,
    ignore_case_uses_a_lower_expression_index
);

/// The unique constraint of a soft-deletable entity is a partial unique
/// index over live rows (`WHERE deleted_at IS NULL`), created once, and a
/// violation names it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soft_delete_unique_is_a_partial_index() {
    use persistence_core::conformance::entities::Note;
    use persistence_core::{ConflictKind, ErrorKind, Repository};
    use persistence_postgres::sea_orm::{ConnectionTrait as _, Statement};
    let Some(store) = pg_store().await else {
        return;
    };
    let s = store.clone();
    let outcome = tokio::spawn(async move {
        let repo = s.repository::<Note>();
        repo.ensure_schema().await.expect("schema");
        repo.ensure_schema()
            .await
            .expect("ensure_schema is idempotent");
        let db = s.connection();
        let rows = db
            .query_all_raw(Statement::from_sql_and_values(
                db.get_database_backend(),
                "SELECT indexname::text, indexdef FROM pg_indexes \
                 WHERE schemaname = $1 AND tablename = 'conf_notes' ORDER BY indexname",
                [s.schema().expect("a test schema").into()],
            ))
            .await
            .expect("pg_indexes");
        let indexes: Vec<(String, String)> = rows
            .iter()
            .map(|r| {
                (
                    r.try_get_by_index(0).expect("name"),
                    r.try_get_by_index(1).expect("def"),
                )
            })
            .collect();
        let (_, def) = indexes
            .iter()
            .find(|(n, _)| n == "ux_conf_notes_slug")
            .unwrap_or_else(|| panic!("no ux_conf_notes_slug in {indexes:#?}"));
        assert!(
            def.starts_with("CREATE UNIQUE INDEX") && def.contains("WHERE (deleted_at IS NULL)"),
            "{def}"
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
    store.drop_schema().await.expect("drop schema");
    store.close().await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}
