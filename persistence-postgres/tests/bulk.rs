//! Adaptive bulk insert: multi-row INSERT below the threshold, COPY at or above it.
mod common;

use common::*;
use persistence_core::{ConflictKind, ErrorKind, Filter, Query, Repository};
use persistence_postgres::{BulkOptions, CopyFormat, RelationalRepository, RelationalStore};

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
    if i % 7 == 0 {
        // Before the common era, and a long negative decimal.
        t.born = chrono::NaiveDate::from_ymd_opt(-43, 3, 15);
        t.amount = rust_decimal::Decimal::new(-1_234_567_890_123_456_789, 9);
    }
    t
}

async fn copy_round_trips_every_type(repo: &RelationalRepository<Thing>) {
    repo.ensure_schema().await.expect("schema");
    let rows: Vec<Thing> = (0..3_000).map(tricky).collect();
    for format in [CopyFormat::Text, CopyFormat::Binary] {
        repo.delete_many(&Filter::all()).await.expect("clear");
        let opts = BulkOptions {
            copy_format: format,
            ..BulkOptions::default()
        };
        let n = repo
            .bulk_insert_with(&rows, &opts)
            .await
            .expect("bulk insert (COPY)");
        assert_eq!(n, 3_000, "{format:?}");
        check_tricky(repo).await;
    }
}

async fn check_tricky(repo: &RelationalRepository<Thing>) {
    let mut got = repo.find(&Query::all()).await.expect("find");
    assert_eq!(got.len(), 3_000);
    got.sort_by_key(|t| t.code);
    for (i, mut got) in (0u32..).zip(got) {
        let mut want = tricky(i);
        want.version = 1;
        assert_eq!(got.score.to_bits(), want.score.to_bits(), "row {i} score");
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
        ..BulkOptions::default()
    };
    assert_eq!(
        repo.bulk_insert_with(&rows, &opts)
            .await
            .expect("multi-row"),
        5_000
    );
    assert_eq!(repo.count(&Filter::all()).await.expect("count"), 5_000);
}

/// How a row is made bad.
#[derive(Debug, Clone, Copy)]
enum Bad {
    /// A NUL character: refused on the client before anything is sent.
    Nul,
    /// A date PostgreSQL cannot hold (year 10001 BC): refused by the server.
    DateOutOfRange,
    /// The id of an earlier row of the same input: a server-side conflict.
    DuplicateId,
}

fn spoil(mut t: Thing, bad: Bad) -> Thing {
    match bad {
        Bad::Nul => t.email = "nul\0inside".into(),
        Bad::DateOutOfRange => t.born = chrono::NaiveDate::from_ymd_opt(-10_000, 1, 1),
        Bad::DuplicateId => t.id = thing(0).id,
    }
    t
}

/// A bad row anywhere (first statement or a later one, COPY or multi-row
/// INSERT, slice or stream) fails the call with an error naming exactly its
/// index, and nothing is committed.
async fn bad_row_names_its_index_and_commits_nothing(
    repo: &RelationalRepository<Thing>,
    kinds: &[Bad],
) {
    repo.ensure_schema().await.expect("schema");
    let multi_row = BulkOptions {
        copy_threshold: usize::MAX,
        ..BulkOptions::default()
    };
    let copy = BulkOptions::default();
    let copy_text = BulkOptions {
        copy_format: CopyFormat::Text,
        ..BulkOptions::default()
    };
    // 19 columns: a multi-row INSERT carries at most 3,421 rows, so row 4,321
    // is in the second statement; 50 rows stay below the COPY threshold.
    let cases: [(&str, &BulkOptions, u32, u32); 6] = [
        ("multi-row, first statement", &copy, 50, 32),
        ("multi-row, second statement", &multi_row, 5_000, 4_321),
        ("binary COPY, first rows", &copy, 2_500, 3),
        ("binary COPY, later rows", &copy, 2_500, 2_222),
        ("text COPY, first rows", &copy_text, 2_500, 3),
        ("text COPY, later rows", &copy_text, 2_500, 2_222),
    ];
    for &bad in kinds {
        for &(path, opts, total, at) in &cases {
            for streamed in [false, true] {
                let rows = (0..total).map(move |i| {
                    if i == at {
                        spoil(thing(i), bad)
                    } else {
                        thing(i)
                    }
                });
                let e = if streamed {
                    repo.bulk_insert_stream(futures_util::stream::iter(rows), opts)
                        .await
                } else {
                    repo.bulk_insert_with(&rows.collect::<Vec<_>>(), opts).await
                }
                .expect_err("bad row");
                let what = format!("{bad:?}, {path}, streamed: {streamed}: {e:?}");
                match bad {
                    Bad::Nul | Bad::DateOutOfRange => {
                        assert_eq!(e.kind(), &ErrorKind::InvalidInput, "{what}")
                    }
                    Bad::DuplicateId => assert_eq!(
                        e.kind(),
                        &ErrorKind::Conflict(ConflictKind::DuplicateId),
                        "{what}"
                    ),
                }
                assert!(
                    e.message().starts_with(&format!("row {at}: ")),
                    "names the row: {what}"
                );
                assert_eq!(
                    repo.count(&Filter::all()).await.expect("count"),
                    0,
                    "nothing committed: {what}"
                );
            }
        }
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
    run(store.clone(), None, body).await;
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
    with_pg(async |r| {
        bad_row_names_its_index_and_commits_nothing(
            r,
            &[Bad::Nul, Bad::DateOutOfRange, Bad::DuplicateId],
        )
        .await
    })
    .await;
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
    // SQLite holds NUL characters and any date as text: only the duplicate is bad there.
    with_sqlite(async |r| {
        bad_row_names_its_index_and_commits_nothing(r, &[Bad::DuplicateId]).await
    })
    .await;
}
#[tokio::test]
async fn sqlite_streams_in_one_transaction() {
    with_sqlite(streams_without_buffering).await;
}
