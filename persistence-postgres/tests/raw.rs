//! The raw escape hatch (`query_as`, `execute`) on PostgreSQL (own schema)
//! and SQLite (own file): bound parameters stay data, decode errors name
//! the field, statement errors are typed, and the store's `Metrics` sees
//! every call (counter and slow log).

use std::time::Duration;

use persistence_core::layer::{Metrics, SlowLog, metric_names};
use persistence_core::{ConflictKind, Entity, Error, ErrorKind, Filter, Repository};
use persistence_postgres::{Dialect, Params, RelationalRepository, RelationalStore, params};
use persistence_testing::{TestPostgres, TestSqlite};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(name = "raw_books")]
struct Book {
    #[entity(id)]
    id: i64,
    #[entity(unique)]
    title: String,
    note: Option<String>,
    stock: i64,
}

/// The same shape under another name: `query_as` decodes any entity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(name = "raw_titles")]
struct Title {
    #[entity(id)]
    id: i64,
    title: String,
}

const HOSTILE: &str = "'; drop table raw_books; --";

/// Placeholder `i` (1-based) of the store's dialect.
fn ph(store: &RelationalStore, i: usize) -> String {
    match store.dialect() {
        Dialect::Postgres => format!("${i}"),
        _ => "?".to_string(),
    }
}

async fn books(store: &RelationalStore) -> RelationalRepository<Book> {
    let repo = store.repository::<Book>();
    repo.ensure_schema().await.expect("schema");
    repo
}

async fn hostile_strings_stay_data(store: &RelationalStore) {
    let repo = books(store).await;
    let t = repo.table_name().to_string();
    let insert = format!(
        "INSERT INTO {t} (id, title, note, stock) VALUES ({}, {}, {}, {})",
        ph(store, 1),
        ph(store, 2),
        ph(store, 3),
        ph(store, 4)
    );
    let n = repo
        .execute(&insert, params![1_i64, HOSTILE, None::<String>, 5_i64])
        .await
        .expect("insert");
    assert_eq!(n, 1);
    let n = repo
        .execute(
            &insert,
            Params::new()
                .bind(2_i64)
                .bind("plain")
                .bind("x'y\"z")
                .bind(7_i64),
        )
        .await
        .expect("insert");
    assert_eq!(n, 1);
    let select = format!(
        "SELECT * FROM {t} WHERE title = {} ORDER BY id",
        ph(store, 1)
    );
    let found: Vec<Book> = repo.query_as(&select, [HOSTILE]).await.expect("query_as");
    assert_eq!(
        found,
        vec![Book {
            id: 1,
            title: HOSTILE.into(),
            note: None,
            stock: 5
        }]
    );
    // The table is still there, both rows too; `get` reads what query_as read.
    assert_eq!(repo.count(&Filter::all()).await.expect("count"), 2);
    assert_eq!(repo.get(&1).await.expect("get"), found.into_iter().next());
    // A string that looks like SQL in a LIKE-free comparison matches nothing else.
    let none: Vec<Book> = repo
        .query_as(&select, ["plain' OR '1'='1"])
        .await
        .expect("query_as");
    assert!(none.is_empty());
    // execute counts affected rows; a hostile value in a WHERE changes nothing else.
    let update = format!(
        "UPDATE {t} SET stock = stock - {} WHERE title = {} AND stock >= {}",
        ph(store, 1),
        ph(store, 2),
        ph(store, 3)
    );
    let n = repo
        .execute(&update, params![2_i64, "plain", 2_i64])
        .await
        .expect("update");
    assert_eq!(n, 1);
    let n = repo
        .execute(&update, params![2_i64, "plain' OR 1=1 --", 2_i64])
        .await
        .expect("update");
    assert_eq!(n, 0);
    assert_eq!(repo.get(&2).await.expect("get").map(|b| b.stock), Some(5));
    // Columns in any order, extra columns ignored, another entity type.
    let titles: Vec<Title> = repo
        .query_as(
            &format!(
                "SELECT stock, title, id FROM {t} WHERE id > {} ORDER BY id",
                ph(store, 1)
            ),
            [0_i64],
        )
        .await
        .expect("titles");
    assert_eq!(
        titles,
        vec![
            Title {
                id: 1,
                title: HOSTILE.into()
            },
            Title {
                id: 2,
                title: "plain".into()
            }
        ]
    );
    // No rows: an empty result, whatever the columns.
    let empty: Vec<Book> = repo
        .query_as(&format!("SELECT * FROM {t} WHERE id < 0"), ())
        .await
        .expect("empty");
    assert!(empty.is_empty());
}

async fn errors_are_typed(store: &RelationalStore) {
    let repo = books(store).await;
    let t = repo.table_name().to_string();
    repo.insert(&Book {
        id: 1,
        title: "one".into(),
        note: None,
        stock: 1,
    })
    .await
    .expect("insert");
    // A value that does not fit its field: Decode naming the field.
    let e = repo
        .query_as::<Book>(
            &format!("SELECT id, title, note, 'many' AS stock FROM {t}"),
            (),
        )
        .await
        .expect_err("text into an i64 field");
    assert_eq!(e.kind(), &ErrorKind::Decode, "{e:?}");
    assert!(e.message().contains("`stock`"), "names the field: {e}");
    assert_eq!(e.operation(), Some("query_as"));
    // A missing column: Decode naming the field.
    let e = repo
        .query_as::<Book>(&format!("SELECT id, title, stock FROM {t}"), ())
        .await
        .expect_err("no note column");
    assert_eq!(e.kind(), &ErrorKind::Decode, "{e:?}");
    assert!(e.message().contains("`note`"), "names the field: {e}");
    // A syntax error, an unknown column: InvalidInput.
    for sql in [format!("SELEC * FROM {t}"), format!("SELECT nope FROM {t}")] {
        let e = repo
            .query_as::<Book>(&sql, ())
            .await
            .expect_err("refused statement");
        assert_eq!(e.kind(), &ErrorKind::InvalidInput, "{sql}: {e:?}");
        assert!(!e.is_retryable());
        let e = repo.execute(&sql, ()).await.expect_err("refused statement");
        assert_eq!(e.kind(), &ErrorKind::InvalidInput, "{sql}: {e:?}");
        assert_eq!(e.operation(), Some("execute"));
    }
    assert_eq!(
        repo.execute("  ", ()).await.expect_err("empty").kind(),
        &ErrorKind::InvalidInput
    );
    // Constraint errors go through the crate's map as for `insert`.
    let e = repo
        .execute(
            &format!(
                "INSERT INTO {t} (id, title, note, stock) VALUES ({}, {}, NULL, 0)",
                ph(store, 1),
                ph(store, 2)
            ),
            params![2_i64, "one"],
        )
        .await
        .expect_err("duplicate title");
    assert!(
        matches!(e.kind(), ErrorKind::Conflict(ConflictKind::Unique { .. })),
        "{e:?}"
    );
}

/// Raw calls in a unit of work see its writes and roll back with it.
async fn raw_in_a_transaction(store: &RelationalStore) {
    let repo = books(store).await;
    let t = repo.table_name().to_string();
    let insert = format!(
        "INSERT INTO {t} (id, title, note, stock) VALUES ({}, {}, NULL, 1)",
        ph(store, 1),
        ph(store, 2)
    );
    let select = format!("SELECT * FROM {t} ORDER BY id");
    let outcome: Result<(), Error> = store
        .transaction(|tx| {
            let (insert, select) = (insert.clone(), select.clone());
            Box::pin(async move {
                let b = tx.repository::<Book>();
                assert_eq!(b.execute(&insert, params![1_i64, "in tx"]).await?, 1);
                let seen: Vec<Book> = b.query_as(&select, ()).await?;
                assert_eq!(seen.len(), 1);
                Err(Error::invalid_input("roll back"))
            })
        })
        .await;
    assert!(outcome.is_err());
    assert_eq!(repo.count(&Filter::all()).await.expect("count"), 0);
}

/// With `set_metrics`, raw calls are operations `query_as` / `execute`:
/// counted by outcome, and (threshold zero) in the slow log with the SQL
/// text and its placeholders, never the bound values.
async fn metrics_and_slow_log_see_raw_calls(store: &RelationalStore) {
    store.set_metrics(Metrics::new("raw-test").slow_threshold(Duration::ZERO));
    let repo = books(store).await;
    let t = repo.table_name().to_string();
    let marker = format!(
        "raw_marker_{}",
        persistence_testing::services::unique_suffix()
    );
    let select = format!(
        "SELECT * FROM {t} WHERE title = {} /* {marker} */",
        ph(store, 1)
    );
    let _: Vec<Book> = repo.query_as(&select, [HOSTILE]).await.expect("query_as");
    let _ = repo
        .execute(
            &format!("DELETE FROM {t} WHERE id = {} /* {marker} */", ph(store, 1)),
            [1_i64],
        )
        .await
        .expect("execute");
    let _ = repo
        .query_as::<Book>(&format!("SELEC 1 /* {marker} */"), ())
        .await
        .expect_err("syntax");
    let entries: Vec<_> = SlowLog::global()
        .recent(256)
        .into_iter()
        .filter(|e| e.statement.as_deref().is_some_and(|s| s.contains(&marker)))
        .collect();
    let ops: Vec<&str> = entries.iter().map(|e| e.op.as_str()).collect();
    assert!(
        ops.contains(&"query_as") && ops.contains(&"execute"),
        "{ops:?}"
    );
    for e in &entries {
        assert_eq!(e.entity, "raw_books");
        assert_eq!(e.db, "raw-test");
        let s = e.statement.as_deref().unwrap_or_default();
        assert!(!s.contains("drop table"), "no bound value in the log: {s}");
    }
}

fn count_ops(
    snapshot: &[(
        metrics_util::CompositeKey,
        Option<metrics::Unit>,
        Option<metrics::SharedString>,
        metrics_util::debugging::DebugValue,
    )],
    op: &str,
    outcome: &str,
) -> u64 {
    snapshot
        .iter()
        .filter(|(key, _, _, _)| {
            let k = key.key();
            k.name() == metric_names::OPERATIONS
                && k.labels().any(|l| l.key() == "op" && l.value() == op)
                && k.labels()
                    .any(|l| l.key() == "outcome" && l.value() == outcome)
                && k.labels()
                    .any(|l| l.key() == "entity" && l.value() == "raw_books")
        })
        .map(|(_, _, _, v)| match v {
            metrics_util::debugging::DebugValue::Counter(c) => *c,
            _ => 0,
        })
        .sum()
}

/// Run `body` on a current-thread runtime with a local metrics recorder;
/// returns the snapshot.
fn with_recorder(
    body: impl std::future::Future<Output = ()>,
) -> Vec<(
    metrics_util::CompositeKey,
    Option<metrics::Unit>,
    Option<metrics::SharedString>,
    metrics_util::debugging::DebugValue,
)> {
    let recorder = metrics_util::debugging::DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(body);
    });
    snapshotter.snapshot().into_vec()
}

fn check_counts(
    snapshot: &[(
        metrics_util::CompositeKey,
        Option<metrics::Unit>,
        Option<metrics::SharedString>,
        metrics_util::debugging::DebugValue,
    )],
) {
    assert_eq!(count_ops(snapshot, "query_as", "ok"), 1);
    assert_eq!(count_ops(snapshot, "execute", "ok"), 1);
    assert_eq!(count_ops(snapshot, "query_as", "invalid_input"), 1);
}

async fn pg() -> Option<(RelationalStore, TestPostgres)> {
    let schema = TestPostgres::schema().await?;
    let store = RelationalStore::connect(&schema.config())
        .await
        .expect("connect");
    Some((store, schema))
}

async fn sqlite() -> (RelationalStore, TestSqlite) {
    let db = TestSqlite::new();
    let store = db.store().await.expect("open SQLite");
    (store, db)
}

#[tokio::test]
async fn pg_hostile_strings_stay_data() {
    if let Some((store, _s)) = pg().await {
        hostile_strings_stay_data(&store).await;
    }
}

#[tokio::test]
async fn sqlite_hostile_strings_stay_data() {
    let (store, _db) = sqlite().await;
    hostile_strings_stay_data(&store).await;
}

#[tokio::test]
async fn pg_errors_are_typed() {
    if let Some((store, _s)) = pg().await {
        errors_are_typed(&store).await;
    }
}

#[tokio::test]
async fn sqlite_errors_are_typed() {
    let (store, _db) = sqlite().await;
    errors_are_typed(&store).await;
}

#[tokio::test]
async fn pg_raw_in_a_transaction() {
    if let Some((store, _s)) = pg().await {
        raw_in_a_transaction(&store).await;
    }
}

#[tokio::test]
async fn sqlite_raw_in_a_transaction() {
    let (store, _db) = sqlite().await;
    raw_in_a_transaction(&store).await;
}

#[test]
fn pg_metrics_and_slow_log_see_raw_calls() {
    let mut ran = false;
    let snapshot = with_recorder(async {
        if let Some((store, _s)) = pg().await {
            metrics_and_slow_log_see_raw_calls(&store).await;
            ran = true;
        }
    });
    if ran {
        check_counts(&snapshot);
    }
}

#[test]
fn sqlite_metrics_and_slow_log_see_raw_calls() {
    let snapshot = with_recorder(async {
        let (store, _db) = sqlite().await;
        metrics_and_slow_log_see_raw_calls(&store).await;
    });
    check_counts(&snapshot);
}
