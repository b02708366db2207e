//! Adaptive bulk insert: multi-row INSERT below the threshold, COPY at or above it.
mod common;

use common::*;
use persistence_core::{ConflictKind, ErrorKind, Filter, Repository};
use persistence_postgres::{BulkOptions, RelationalRepository, RelationalStore};

fn tricky(i: u32) -> Thing {
    let mut t = thing(i);
    t.name = Some(format!(
        "tab\there\nnewline\\backslash\r\"quote\" 'single' {i} ✓"
    ));
    t.score = match i % 4 {
        0 => f64::NAN,
        1 => f64::INFINITY,
        2 => -0.0,
        _ => 1e-300,
    };
    t.bytes = vec![0, b'\t', b'\\', b'\n', 255];
    t
}

async fn copy_round_trips_every_type(repo: &RelationalRepository<Thing>) {
    repo.ensure_schema().await.expect("schema");
    let rows: Vec<Thing> = (0..3_000).map(tricky).collect();
    let n = repo.bulk_insert(&rows).await.expect("bulk insert (COPY)");
    assert_eq!(n, 3_000);
    assert_eq!(repo.count(&Filter::all()).await.expect("count"), 3_000);
    for i in [0u32, 1, 2, 3, 1234, 2999] {
        let mut want = tricky(i);
        want.version = 1;
        let got = repo.get(&want.id).await.expect("get").expect("row");
        assert_eq!(got.score.to_bits(), want.score.to_bits(), "row {i} score");
        let mut got = got;
        got.score = 0.0;
        want.score = 0.0;
        assert_eq!(got, want, "row {i}");
    }
}

async fn multi_row_chunks_under_the_bind_limit(repo: &RelationalRepository<Thing>) {
    repo.ensure_schema().await.expect("schema");
    // 19 columns x 5,000 rows = 95,000 parameters: more than one statement may carry.
    let rows: Vec<Thing> = (0..5_000).map(thing).collect();
    let opts = BulkOptions {
        copy_threshold: usize::MAX,
    };
    assert_eq!(
        repo.bulk_insert_with(&rows, &opts)
            .await
            .expect("multi-row"),
        5_000
    );
    assert_eq!(repo.count(&Filter::all()).await.expect("count"), 5_000);
}

async fn bad_row_names_its_index_and_commits_nothing(
    repo: &RelationalRepository<Thing>,
    nul_is_bad: bool,
) {
    repo.ensure_schema().await.expect("schema");
    for total in [50u32, 2_500] {
        let rows: Vec<Thing> = (0..total)
            .map(|i| {
                let mut t = thing(i);
                if i == 7 + total / 2 {
                    // A value the database cannot hold (PostgreSQL) / a duplicate id (SQLite).
                    if nul_is_bad {
                        t.email = "nul\0inside".into();
                    } else {
                        t.id = thing(0).id;
                    }
                }
                t
            })
            .collect();
        let e = repo.bulk_insert(&rows).await.expect_err("bad row");
        let bad = 7 + total / 2;
        if nul_is_bad {
            assert_eq!(e.kind(), &ErrorKind::InvalidInput, "{e:?}");
        } else {
            assert_eq!(
                e.kind(),
                &ErrorKind::Conflict(ConflictKind::DuplicateId),
                "{e:?}"
            );
        }
        assert!(e.message().contains(&format!("row {bad}")), "{e}");
        assert_eq!(
            repo.count(&Filter::all()).await.expect("count"),
            0,
            "nothing committed"
        );
    }
}

async fn copy_conflict_rolls_back(repo: &RelationalRepository<Thing>) {
    repo.ensure_schema().await.expect("schema");
    repo.insert(&thing(1500)).await.expect("existing row");
    let rows: Vec<Thing> = (0..2_000).map(thing).collect();
    let e = repo
        .bulk_insert(&rows)
        .await
        .expect_err("duplicate id in COPY");
    assert_eq!(
        e.kind(),
        &ErrorKind::Conflict(ConflictKind::DuplicateId),
        "{e:?}"
    );
    assert_eq!(repo.count(&Filter::all()).await.expect("count"), 1);
}

async fn streams_without_buffering(repo: &RelationalRepository<Thing>) {
    repo.ensure_schema().await.expect("schema");
    let input = futures_util::stream::iter(0..20_000u32).map(thing);
    let n = repo
        .bulk_insert_stream(input, &BulkOptions::default())
        .await
        .expect("stream");
    assert_eq!(n, 20_000);
    assert_eq!(repo.count(&Filter::all()).await.expect("count"), 20_000);
    // A short stream takes the INSERT path.
    let short = futures_util::stream::iter(20_000..20_010u32).map(thing);
    assert_eq!(
        repo.bulk_insert_stream(short, &BulkOptions::default())
            .await
            .expect("short"),
        10
    );
}

use futures_util::StreamExt as _;

async fn with_pg(body: impl AsyncFnOnce(&RelationalRepository<Thing>)) {
    let Some(store) = pg_store().await else {
        return;
    };
    run(store, None, body).await;
}

async fn with_sqlite(body: impl AsyncFnOnce(&RelationalRepository<Thing>)) {
    let (store, path) = sqlite_store().await;
    run(store, Some(path), body).await;
}

async fn run(
    store: RelationalStore,
    path: Option<std::path::PathBuf>,
    body: impl AsyncFnOnce(&RelationalRepository<Thing>),
) {
    let repo = store.repository::<Thing>();
    let outcome =
        futures_util::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(body(&repo))).await;
    store.drop_schema().await.expect("drop schema");
    store.close().await;
    if let Some(p) = path {
        remove_sqlite(&p);
    }
    if let Err(p) = outcome {
        std::panic::resume_unwind(p);
    }
}

#[tokio::test]
async fn pg_copy_round_trips_every_type() {
    with_pg(copy_round_trips_every_type).await;
}
#[tokio::test]
async fn pg_multi_row_chunks_under_the_bind_limit() {
    with_pg(multi_row_chunks_under_the_bind_limit).await;
}
#[tokio::test]
async fn pg_bad_row_names_its_index_and_commits_nothing() {
    with_pg(async |r| bad_row_names_its_index_and_commits_nothing(r, true).await).await;
}
#[tokio::test]
async fn pg_copy_conflict_rolls_back() {
    with_pg(copy_conflict_rolls_back).await;
}
#[tokio::test]
async fn pg_streams_without_buffering() {
    with_pg(streams_without_buffering).await;
}
#[tokio::test]
async fn sqlite_bad_row_names_its_index_and_commits_nothing() {
    with_sqlite(async |r| bad_row_names_its_index_and_commits_nothing(r, false).await).await;
}
#[tokio::test]
async fn sqlite_streams_in_one_transaction() {
    with_sqlite(streams_without_buffering).await;
}
