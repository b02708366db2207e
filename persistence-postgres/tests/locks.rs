//! Row locks in units of work: two (or more) transactions contend for rows.
//! PostgreSQL in its own schema (`FOR UPDATE`, `NOWAIT`, `SKIP LOCKED`);
//! SQLite in its own file (the database write lock, see `Lock`).
//! Orderings are proved with channels and barriers, never with sleeps.

use std::sync::Arc;
use std::time::Duration;

use persistence_core::{ConflictKind, Entity, Error, ErrorKind, Filter, Query, Repository};
use persistence_postgres::sea_orm::{ConnectionTrait, Statement};
use persistence_postgres::{Lock, RelationalStore};
use persistence_testing::{TestPostgres, TestSqlite};
use serde::{Deserialize, Serialize};
use tokio::sync::{Barrier, mpsc, oneshot};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(name = "lock_jobs")]
struct Job {
    #[entity(id)]
    id: i64,
    status: String,
    worker: Option<String>,
    n: i64,
}

fn job(id: i64) -> Job {
    Job {
        id,
        status: "queued".into(),
        worker: None,
        n: 0,
    }
}

async fn seed(store: &RelationalStore, jobs: i64) {
    let repo = store.repository::<Job>();
    repo.ensure_schema().await.expect("schema");
    for i in 1..=jobs {
        repo.insert(&job(i)).await.expect("insert");
    }
}

/// A safety net only: a lock that is never granted fails the test instead of hanging it.
async fn bounded<T>(what: &str, fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(60), fut)
        .await
        .unwrap_or_else(|_| panic!("{what}: still blocked after 60 s"))
}

async fn pg() -> Option<(RelationalStore, TestPostgres)> {
    let schema = TestPostgres::schema().await?;
    let store = RelationalStore::connect(&schema.config().max_connections(8))
        .await
        .expect("connect");
    Some((store, schema))
}

async fn sqlite() -> (RelationalStore, TestSqlite) {
    let db = TestSqlite::new();
    let store = RelationalStore::connect(&db.config().max_connections(8))
        .await
        .expect("open SQLite");
    (store, db)
}

#[derive(Debug, PartialEq)]
enum Event {
    HolderWrote,
    WaiterLocked(i64),
}

/// Transaction A locks job 1 and holds it until told to go on; it then
/// writes `n = 1`, reports that, and commits. Returns A's task.
fn holder(
    store: &RelationalStore,
    locked: oneshot::Sender<()>,
    go: oneshot::Receiver<()>,
    events: mpsc::UnboundedSender<Event>,
) -> tokio::task::JoinHandle<Result<(), Error>> {
    let store = store.clone();
    tokio::spawn(async move {
        store
            .transaction(|tx| {
                Box::pin(async move {
                    let jobs = tx.repository::<Job>();
                    let mut j = jobs
                        .get_for_update(&1, Lock::Wait)
                        .await?
                        .expect("job 1 exists");
                    let _ = locked.send(());
                    let _ = go.await;
                    j.n += 1;
                    jobs.update(&j).await?;
                    // Sent before the commit: a waiter cannot lock the row before this.
                    let _ = events.send(Event::HolderWrote);
                    Ok(())
                })
            })
            .await
    })
}

/// A second transaction that locks job 1 with `lock` and reports what it saw.
fn waiter(
    store: &RelationalStore,
    lock: Lock,
    events: mpsc::UnboundedSender<Event>,
) -> tokio::task::JoinHandle<Result<Option<Job>, Error>> {
    let store = store.clone();
    tokio::spawn(async move {
        store
            .transaction(|tx| {
                Box::pin(async move {
                    let found = tx.repository::<Job>().get_for_update(&1, lock).await?;
                    if let Some(j) = &found {
                        let _ = events.send(Event::WaiterLocked(j.n));
                    }
                    Ok(found)
                })
            })
            .await
    })
}

fn assert_locked_error(e: &Error, what: &str) {
    assert_eq!(
        e.kind(),
        &ErrorKind::Conflict(ConflictKind::Concurrent),
        "{what}: {e:?}"
    );
    assert!(e.is_retryable(), "{what}: retryable: {e:?}");
    assert!(e.message().contains("locked"), "{what}: says locked: {e}");
}

/// Sessions of this schema's tests that wait for a lock on a `FOR UPDATE`.
async fn pg_lock_waiters(store: &RelationalStore) -> i64 {
    let sql = "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' \
               AND query LIKE '%FOR UPDATE%' AND query LIKE $1";
    let pattern = format!("%{}%", store.schema().expect("a test schema"));
    let row = store
        .connection()
        .query_one_raw(Statement::from_sql_and_values(
            store.connection().get_database_backend(),
            sql,
            [pattern.into()],
        ))
        .await
        .expect("pg_stat_activity")
        .expect("a row");
    row.try_get_by_index::<i64>(0).expect("count")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pg_wait_blocks_until_the_holder_commits() {
    let Some((store, _schema)) = pg().await else {
        return;
    };
    seed(&store, 1).await;
    let (events, mut seen) = mpsc::unbounded_channel();
    let (locked, is_locked) = oneshot::channel();
    let (go, gone) = oneshot::channel();
    let a = holder(&store, locked, gone, events.clone());
    is_locked.await.expect("A locked job 1");
    let b = waiter(&store, Lock::Wait, events);
    // B is seen waiting for A's row lock (polled, not timed) and has not finished.
    bounded("B waiting on the lock", async {
        while pg_lock_waiters(&store).await < 1 {
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert!(!b.is_finished(), "B must wait while A holds the lock");
    go.send(()).expect("A is waiting");
    bounded("A", a).await.expect("A joins").expect("A commits");
    let got = bounded("B", b).await.expect("B joins").expect("B commits");
    // B read the row as A committed it, and only after A wrote.
    assert_eq!(got.map(|j| j.n), Some(1));
    assert_eq!(seen.recv().await, Some(Event::HolderWrote));
    assert_eq!(seen.recv().await, Some(Event::WaiterLocked(1)));
    assert!(
        store.repository::<Job>().capabilities().row_locks,
        "PostgreSQL declares row locks"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pg_nowait_fails_with_a_typed_retryable_error() {
    let Some((store, _schema)) = pg().await else {
        return;
    };
    seed(&store, 2).await;
    let (events, _seen) = mpsc::unbounded_channel();
    let (locked, is_locked) = oneshot::channel();
    let (go, gone) = oneshot::channel();
    let a = holder(&store, locked, gone, events.clone());
    is_locked.await.expect("A locked job 1");
    let e = bounded("B", waiter(&store, Lock::NoWait, events))
        .await
        .expect("B joins")
        .expect_err("job 1 is locked by A");
    assert_locked_error(&e, "get_for_update NOWAIT");
    assert_eq!(e.operation(), Some("get_for_update"));
    // find_for_update NOWAIT over both rows meets the lock too; job 2 alone is free.
    let e = store
        .transaction(|tx| {
            Box::pin(async move {
                tx.repository::<Job>()
                    .find_for_update(&Query::all(), Lock::NoWait)
                    .await
            })
        })
        .await
        .expect_err("job 1 is locked by A");
    assert_locked_error(&e, "find_for_update NOWAIT");
    let free: Vec<Job> = store
        .transaction(|tx| {
            Box::pin(async move {
                tx.repository::<Job>()
                    .find_for_update(&Query::filter(Job::ID.eq(2)), Lock::NoWait)
                    .await
            })
        })
        .await
        .expect("job 2 is free");
    assert_eq!(free, vec![job(2)]);
    go.send(()).expect("A is waiting");
    bounded("A", a).await.expect("A joins").expect("A commits");
}

/// The job queue: four workers each claim the first queued job with
/// `SKIP LOCKED` and hold it (all four at once, behind a barrier) before
/// marking it taken: each gets a different job, and the fifth stays queued.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pg_skip_locked_gives_each_worker_its_own_job() {
    let Some((store, _schema)) = pg().await else {
        return;
    };
    seed(&store, 5).await;
    let workers = 4;
    let barrier = Arc::new(Barrier::new(workers));
    let tasks: Vec<_> = (0..workers)
        .map(|w| {
            let store = store.clone();
            let barrier = barrier.clone();
            tokio::spawn(async move {
                store
                    .transaction(|tx| {
                        Box::pin(async move {
                            let jobs = tx.repository::<Job>();
                            let q = Query::filter(Job::STATUS.eq("queued"))
                                .sort(Job::ID.asc())
                                .limit(1);
                            let mut claimed = jobs.find_for_update(&q, Lock::SkipLocked).await?;
                            assert_eq!(claimed.len(), 1, "worker {w} finds a free job");
                            let mut j = claimed.remove(0);
                            // Every worker holds its row lock here at the same time.
                            barrier.wait().await;
                            j.status = "taken".into();
                            j.worker = Some(format!("w{w}"));
                            jobs.update(&j).await?;
                            Ok::<_, Error>(j.id)
                        })
                    })
                    .await
            })
        })
        .collect();
    let mut ids = Vec::new();
    for t in tasks {
        ids.push(bounded("worker", t).await.expect("joins").expect("claims"));
    }
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), workers, "distinct jobs: {ids:?}");
    let repo = store.repository::<Job>();
    let queued = repo
        .find(&Query::filter(Job::STATUS.eq("queued")))
        .await
        .expect("find");
    assert_eq!(queued.len(), 1);
    assert!(!ids.contains(&queued[0].id));

    // A locked row is skipped by get_for_update too.
    let (events, _seen) = mpsc::unbounded_channel();
    let (locked, is_locked) = oneshot::channel();
    let (go, gone) = oneshot::channel();
    let a = holder(&store, locked, gone, events.clone());
    is_locked.await.expect("A locked job 1");
    let skipped = bounded("B", waiter(&store, Lock::SkipLocked, events))
        .await
        .expect("B joins")
        .expect("B commits");
    assert_eq!(skipped, None);
    go.send(()).expect("A is waiting");
    bounded("A", a).await.expect("A joins").expect("A commits");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pg_get_for_update_outside_a_row_is_none_and_bad_queries_are_typed() {
    let Some((store, _schema)) = pg().await else {
        return;
    };
    seed(&store, 1).await;
    let (none, bad) = store
        .transaction(|tx| {
            Box::pin(async move {
                let jobs = tx.repository::<Job>();
                let none = jobs.get_for_update(&99, Lock::Wait).await?;
                let bad = jobs
                    .find_for_update(
                        &Query::filter(Filter::field("no_such_field").eq(1)),
                        Lock::Wait,
                    )
                    .await;
                Ok::<_, Error>((none, bad))
            })
        })
        .await
        .expect("transaction");
    assert_eq!(none, None);
    let e = bad.expect_err("unknown field");
    assert_eq!(e.kind(), &ErrorKind::InvalidInput, "{e:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_locking_reads_take_the_database_write_lock() {
    let (store, _db) = sqlite().await;
    seed(&store, 3).await;
    assert!(
        !store.repository::<Job>().capabilities().row_locks,
        "SQLite declares no row locks"
    );
    let (events, mut seen) = mpsc::unbounded_channel();
    let (locked, is_locked) = oneshot::channel();
    let (go, gone) = oneshot::channel();
    let a = holder(&store, locked, gone, events.clone());
    is_locked.await.expect("A locked job 1");
    // NoWait: the write lock is A's, whatever row is asked for.
    let e = store
        .transaction(|tx| {
            Box::pin(async move {
                tx.repository::<Job>()
                    .find_for_update(&Query::filter(Job::ID.eq(3)), Lock::NoWait)
                    .await
            })
        })
        .await
        .expect_err("the database write lock is held by A");
    assert_locked_error(&e, "SQLite NOWAIT");
    // Plain reads are not blocked.
    assert_eq!(
        store
            .repository::<Job>()
            .count(&Filter::all())
            .await
            .expect("count"),
        3
    );
    // Wait: B gets the lock once A commits, and sees A's write.
    let b = waiter(&store, Lock::Wait, events);
    go.send(()).expect("A is waiting");
    bounded("A", a).await.expect("A joins").expect("A commits");
    let got = bounded("B", b).await.expect("B joins").expect("B commits");
    assert_eq!(got.map(|j| j.n), Some(1));
    assert_eq!(seen.recv().await, Some(Event::HolderWrote));
    assert_eq!(seen.recv().await, Some(Event::WaiterLocked(1)));
}

/// SKIP LOCKED on SQLite claims one job at a time (the write lock
/// serializes the workers); each still gets its own job.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_skip_locked_job_queue_serializes_the_workers() {
    let (store, _db) = sqlite().await;
    seed(&store, 4).await;
    let tasks: Vec<_> = (0..3)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .transaction(|tx| {
                        Box::pin(async move {
                            let jobs = tx.repository::<Job>();
                            let q = Query::filter(Job::STATUS.eq("queued"))
                                .sort(Job::ID.asc())
                                .limit(1);
                            let mut j = jobs
                                .find_for_update(&q, Lock::SkipLocked)
                                .await?
                                .pop()
                                .expect("a queued job");
                            j.status = "taken".into();
                            j.worker = Some(format!("w{w}"));
                            jobs.update(&j).await?;
                            Ok::<_, Error>(j.id)
                        })
                    })
                    .await
            })
        })
        .collect();
    let mut ids = Vec::new();
    for t in tasks {
        ids.push(bounded("worker", t).await.expect("joins").expect("claims"));
    }
    ids.sort_unstable();
    assert_eq!(ids, vec![1, 2, 3]);
}
