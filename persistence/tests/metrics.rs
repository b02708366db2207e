//! Pool gauges, waiting/acquire measurement, the utilization warning, the slow
//! log and leak detection, through the manager against real PostgreSQL (own
//! schema) and SQLite (own file).
//!
//! One `DebuggingRecorder` and one capturing `tracing` subscriber are
//! installed per test process; every test labels its database with a unique
//! name and only looks at its own series.
use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use futures_util::StreamExt as _;
use metrics_util::MetricKind;
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use persistence::config::{ConfigLoader, PersistenceConfig};
use persistence::conformance::services::unique_suffix;
use persistence::layer::metrics::names;
use persistence::layer::{LeakDetector, SlowLog};
use persistence::{Entity, Error, Persistence, Query, Repository};
use persistence_testing::{TestMongo, TestPostgres, TestSqlite};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(name = "met_users")]
struct User {
    #[entity(id)]
    id: i64,
    email: String,
    #[entity(version)]
    version: i64,
}

fn user(id: i64, email: &str) -> User {
    User {
        id,
        email: email.to_string(),
        version: 0,
    }
}

fn config(yaml: &str) -> PersistenceConfig {
    ConfigLoader::new()
        .text("persistence.yaml", yaml)
        .env(Vec::new())
        .load()
        .expect("config")
}

// ---------------------------------------------------------------- capture

static LOGS: Mutex<Vec<String>> = Mutex::new(Vec::new());
/// Histogram samples drained by earlier snapshots, by "name|db".
static HISTOGRAMS: Mutex<Option<HashMap<String, Vec<f64>>>> = Mutex::new(None);

struct Capture;

struct Fields(String);

impl tracing::field::Visit for Fields {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, " {}={:?}", field.name(), value);
    }
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        let _ = write!(self.0, " {}={}", field.name(), value);
    }
}

impl tracing::Subscriber for Capture {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut f = Fields(format!("{}:", event.metadata().level()));
        event.record(&mut f);
        LOGS.lock().expect("logs").push(f.0);
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

fn snapshotter() -> &'static Snapshotter {
    static S: OnceLock<Snapshotter> = OnceLock::new();
    S.get_or_init(|| {
        let recorder = DebuggingRecorder::new();
        let s = recorder.snapshotter();
        recorder.install().expect("metrics recorder");
        tracing::subscriber::set_global_default(Capture).expect("tracing subscriber");
        s
    })
}

/// Log lines containing every needle.
fn logs(needles: &[&str]) -> Vec<String> {
    LOGS.lock()
        .expect("logs")
        .iter()
        .filter(|l| needles.iter().all(|n| l.contains(n)))
        .cloned()
        .collect()
}

/// One snapshot: counters and gauges by (name, sorted labels); histogram
/// samples accumulated across snapshots.
fn values(name: &str, labels: &[(&str, &str)]) -> Vec<DebugValue> {
    let snap = snapshotter().snapshot().into_vec();
    let mut hist = HISTOGRAMS.lock().expect("histograms");
    let hist = hist.get_or_insert_with(HashMap::new);
    let mut out = Vec::new();
    for (key, _, _, value) in snap {
        let k = key.key();
        let db = k
            .labels()
            .find(|l| l.key() == names::LABEL_DB)
            .map(|l| l.value().to_string())
            .unwrap_or_default();
        if key.kind() == MetricKind::Histogram {
            if let DebugValue::Histogram(xs) = &value {
                hist.entry(format!("{}|{db}", k.name()))
                    .or_default()
                    .extend(xs.iter().map(|x| x.into_inner()));
            }
        }
        let matches = k.name() == name
            && labels
                .iter()
                .all(|(lk, lv)| k.labels().any(|l| l.key() == *lk && l.value() == *lv));
        if matches {
            out.push(value);
        }
    }
    out
}

fn counter(name: &str, labels: &[(&str, &str)]) -> u64 {
    values(name, labels)
        .into_iter()
        .map(|v| match v {
            DebugValue::Counter(c) => c,
            _ => 0,
        })
        .sum()
}

fn gauge(name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    values(name, labels).into_iter().find_map(|v| match v {
        DebugValue::Gauge(g) => Some(g.into_inner()),
        _ => None,
    })
}

fn histogram(name: &str, db: &str) -> Vec<f64> {
    let _ = values(name, &[]);
    HISTOGRAMS
        .lock()
        .expect("histograms")
        .as_ref()
        .and_then(|h| h.get(&format!("{name}|{db}")).cloned())
        .unwrap_or_default()
}

/// Wait (bounded, generously) until `f` holds.
async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

const WARN_HIGH: &str = "connection pool utilization high";

// ---------------------------------------------------------------- tests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_pool_gauges_waiting_acquire_and_utilization_warning() {
    snapshotter();
    // Own schema, dropped by the guard (also on panic).
    let Some(guard) = TestPostgres::schema().await else {
        return;
    };
    let (pg, schema) = (guard.url().to_string(), guard.name().to_string());
    let db = format!("pg_{}", unique_suffix());
    let p = Persistence::new(config(&format!(
        "databases:\n  {db}: {{ kind: postgres, url: \"{pg}\", schema: {schema}, pool: {{ max_connections: 2, acquire_timeout: 60s }} }}\n\
         cache:\n  default: {{ disabled: true }}\n\
         metrics: {{ sample_interval: 20ms, pool_warn_utilization: 85, leak_threshold: 300ms }}\n"
    )))
    .expect("manager");
    assert_eq!(p.pool_status(&db), None, "not built yet");
    let users = p.repo_in::<User>(&db).await.expect("repo");
    for id in 1..=3 {
        users
            .insert(&user(id, &format!("u{id}@x.io")))
            .await
            .expect("insert");
    }
    let labels_in_use = [
        (names::LABEL_DB, db.as_str()),
        (names::LABEL_STATE, names::STATE_IN_USE),
    ];

    // Two open streams hold both connections of the pool.
    let mut s1 = users.stream(&Query::all());
    let mut s2 = users.stream(&Query::all());
    assert!(s1.next().await.expect("row").is_ok());
    assert!(s2.next().await.expect("row").is_ok());
    let status = p.pool_status(&db).expect("pool status");
    assert_eq!((status.max, status.in_use, status.idle), (2, 2, 0));
    eventually("in_use gauge = 2", || {
        gauge(names::POOL_CONNECTIONS, &labels_in_use) == Some(2.0)
    })
    .await;
    assert_eq!(
        gauge(names::POOL_MAX_CONNECTIONS, &[(names::LABEL_DB, &db)]),
        Some(2.0)
    );
    let db_field = format!("db={db}");
    eventually("utilization warning", || {
        !logs(&[WARN_HIGH, &db_field]).is_empty()
    })
    .await;
    let health = p.health().await;
    let h = health
        .databases
        .iter()
        .find(|d| d.name == db)
        .expect("health");
    assert_eq!(h.pool.map(|s| (s.max, s.in_use)), Some((2, 2)));

    // A third operation waits for a connection.
    let waiter = {
        let users = users.clone();
        tokio::spawn(async move { users.insert(&user(4, "u4@x.io")).await })
    };
    eventually("pool_status().waiting = 1", || {
        p.pool_status(&db).map(|s| s.waiting) == Some(1)
    })
    .await;
    eventually("waiting gauge = 1", || {
        gauge(names::POOL_WAITING, &[(names::LABEL_DB, &db)]) == Some(1.0)
    })
    .await;

    // Both streams are held past the leak threshold: reported once each.
    eventually("two stream leaks reported", || {
        counter(
            names::CONNECTION_LEAKS,
            &[(names::LABEL_DB, &db), (names::LABEL_OP, "stream")],
        ) == 2
    })
    .await;
    assert_eq!(
        logs(&["possible leak", &db_field, "op=stream"]).len(),
        2,
        "once per hold"
    );
    assert_eq!(
        counter(
            names::CONNECTION_LEAKS,
            &[(names::LABEL_DB, &db), (names::LABEL_OP, "insert")]
        ),
        0,
        "an operation still waiting for a connection does not hold one"
    );

    // Releasing one connection lets the waiter through; its wait is timed.
    let acquire_before = histogram(names::POOL_ACQUIRE, &db).len();
    drop(s1);
    tokio::time::timeout(Duration::from_secs(30), waiter)
        .await
        .expect("waiter finishes")
        .expect("join")
        .expect("insert after wait");
    assert_eq!(p.pool_status(&db).map(|s| s.waiting), Some(0));
    let acquires = histogram(names::POOL_ACQUIRE, &db);
    assert!(
        acquires.len() > acquire_before,
        "the waiting insert recorded its acquire time"
    );
    assert!(
        acquires.iter().any(|s| *s > 0.0),
        "a measured wait: {acquires:?}"
    );

    // Once per crossing: falling below re-arms, crossing again warns again.
    drop(s2);
    eventually("in_use gauge = 0", || {
        gauge(names::POOL_CONNECTIONS, &labels_in_use) == Some(0.0)
    })
    .await;
    let warned = logs(&[WARN_HIGH, &db_field]).len();
    let mut s3 = users.stream(&Query::all());
    let mut s4 = users.stream(&Query::all());
    assert!(s3.next().await.expect("row").is_ok());
    assert!(s4.next().await.expect("row").is_ok());
    eventually("second crossing warns again", || {
        logs(&[WARN_HIGH, &db_field]).len() == warned + 1
    })
    .await;
    // Many more samples at 100 %: still one warning for this crossing.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(logs(&[WARN_HIGH, &db_field]).len(), warned + 1);
    drop((s3, s4));
    eventually("breaker gauge closed", || {
        gauge(names::BREAKER_STATE, &[(names::LABEL_DB, &db)]) == Some(0.0)
    })
    .await;

    p.shutdown().await;
    guard.cleanup().await.expect("drop schema");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_pool_status_health_and_slow_log_statement_shape() {
    snapshotter();
    let suffix = unique_suffix();
    let db = format!("lite_{suffix}");
    // Its own file, removed by the guard (also on panic).
    let file = TestSqlite::new();
    let p = Persistence::new(config(&format!(
        "databases:\n  {db}: {{ kind: sqlite, url: \"{}\", pool: {{ max_connections: 2 }} }}\n\
         cache:\n  default: {{ disabled: true }}\n\
         metrics: {{ sample_interval: 20ms, slow_threshold: 0s }}\n",
        file.url()
    )))
    .expect("manager");
    let users = p.repo_in::<User>(&db).await.expect("repo");
    let secret = format!("secret-{suffix}@x.io");
    users.insert(&user(1, &secret)).await.expect("insert");
    users.insert(&user(2, "b@x.io")).await.expect("insert");
    let found = users
        .find(&Query::filter(User::EMAIL.eq(secret.as_str())))
        .await
        .expect("find");
    assert_eq!(found.len(), 1);

    // Every operation is "slow" at a zero threshold: the log has their SQL shapes.
    let mine: Vec<_> = SlowLog::global()
        .recent(256)
        .into_iter()
        .filter(|e| e.db == db)
        .collect();
    let find = mine.iter().find(|e| e.op == "find").expect("find logged");
    let sql = find.statement.as_deref().expect("statement shape");
    assert!(
        sql.contains("SELECT") && sql.contains('?'),
        "placeholders: {sql}"
    );
    assert_eq!(find.entity, "met_users");
    assert!(
        mine.iter()
            .filter_map(|e| e.statement.as_deref())
            .all(|s| !s.contains(&secret) && !s.contains("secret-")),
        "bound values never in the log"
    );
    let top = SlowLog::global().top(256);
    assert!(top.windows(2).all(|w| w[0].duration >= w[1].duration));
    assert!(
        counter(
            names::SLOW_OPERATIONS,
            &[(names::LABEL_DB, &db), (names::LABEL_OP, "find")]
        ) >= 1
    );

    // Pool fields in pool_status() and health().
    let db_field = format!("db={db}");
    let in_use_gauge = [
        (names::LABEL_DB, db.as_str()),
        (names::LABEL_STATE, names::STATE_IN_USE),
    ];
    // Back-to-back operations may briefly overlap on two connections while one
    // is being returned: once the sampler has seen the pool idle (gauge and
    // warning state are updated in the same pass), the next crossing warns.
    eventually("sampler saw the pool idle", || {
        gauge(names::POOL_CONNECTIONS, &in_use_gauge) == Some(0.0)
    })
    .await;
    let warned = logs(&[WARN_HIGH, &db_field]).len();
    let mut s1 = users.stream(&Query::all());
    let mut s2 = users.stream(&Query::all());
    assert!(s1.next().await.expect("row").is_ok());
    assert!(s2.next().await.expect("row").is_ok());
    let status = p.pool_status(&db).expect("pool status");
    assert_eq!((status.max, status.size, status.in_use), (2, 2, 2));
    assert_eq!(status.utilization_percent(), 100.0);
    let health = p.health().await;
    let h = health
        .databases
        .iter()
        .find(|d| d.name == db)
        .expect("health");
    assert_eq!(h.pool.map(|s| s.in_use), Some(2));
    eventually("in_use gauge = 2", || {
        gauge(names::POOL_CONNECTIONS, &in_use_gauge) == Some(2.0)
    })
    .await;
    eventually("utilization warning", || {
        logs(&[WARN_HIGH, &db_field]).len() > warned
    })
    .await;
    drop((s1, s2));
    eventually("idle again", || {
        p.pool_status(&db).map(|s| s.in_use) == Some(0)
    })
    .await;

    p.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transaction_held_past_leak_threshold_is_reported_short_one_is_not() {
    snapshotter();
    let Some(guard) = TestPostgres::schema().await else {
        return;
    };
    let label = format!("tx_{}", unique_suffix());
    let store = guard.store().await.expect("connect");
    let repo = store.repository::<User>();
    repo.ensure_schema().await.expect("schema");
    let detector = LeakDetector::new(&label, Duration::from_millis(200));
    store.set_leak_detector(detector.clone());
    let watchdog = detector.spawn_watchdog();
    let leaks = || {
        counter(
            names::CONNECTION_LEAKS,
            &[(names::LABEL_DB, &label), (names::LABEL_OP, "transaction")],
        )
    };

    // A short transaction: gone from the registry before any check can see it.
    store
        .transaction(|tx| {
            Box::pin(async move {
                tx.repository::<User>().insert(&user(1, "a@x.io")).await?;
                Ok::<_, Error>(())
            })
        })
        .await
        .expect("short transaction");
    assert_eq!(detector.held(), 0);
    assert_eq!(detector.check(), 0);
    assert_eq!(leaks(), 0, "a short transaction is not reported");

    // A transaction held open past the threshold is reported while it is open.
    let d = detector.clone();
    let lbl = label.clone();
    store
        .transaction(|tx| {
            Box::pin(async move {
                tx.repository::<User>().insert(&user(2, "b@x.io")).await?;
                assert_eq!(d.held(), 1);
                eventually("leak reported", || {
                    counter(
                        names::CONNECTION_LEAKS,
                        &[(names::LABEL_DB, &lbl), (names::LABEL_OP, "transaction")],
                    ) == 1
                })
                .await;
                Ok::<_, Error>(())
            })
        })
        .await
        .expect("long transaction");
    let label_field = format!("db={label}");
    let reports = logs(&["possible leak", &label_field, "op=transaction"]);
    assert_eq!(reports.len(), 1, "{reports:?}");
    assert!(
        reports[0].contains("tests/metrics.rs"),
        "names the call site that opened it: {}",
        reports[0]
    );
    assert_eq!(detector.held(), 0);
    assert!(!logs(&["reported as leaked was released", &label_field]).is_empty());
    assert_eq!(leaks(), 1, "reported once");
    assert_eq!(
        repo.count(&persistence::Filter::all())
            .await
            .expect("count"),
        2
    );

    watchdog.abort();
    store.close().await;
    guard.cleanup().await.expect("drop schema");
}

/// The Prometheus recorder, not installed globally (a thread-local recorder
/// here), renders the operation counters and latency quantiles.
#[cfg(feature = "prometheus")]
#[test]
fn prometheus_recorder_renders_operation_counters() {
    let (recorder, handle) = persistence::prometheus::recorder();
    let suffix = unique_suffix();
    let db = format!("prom_{suffix}");
    metrics::with_local_recorder(&recorder, || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let p = Persistence::new(config(&format!(
                "databases:\n  {db}: {{ kind: sqlite, url: \"sqlite::memory:\" }}\n"
            )))
            .expect("manager");
            let users = p.repo_in::<User>(&db).await.expect("repo");
            users.insert(&user(1, "a@x.io")).await.expect("insert");
            assert!(users.get(&1).await.expect("get").is_some());
            assert!(users.get(&2).await.expect("get").is_none());
            // Raw SQL on the store is recorded with the same database label.
            let store = p.relational(&db).await.expect("store").expect("relational");
            let n = store
                .repository::<User>()
                .execute(
                    "UPDATE met_users SET email = ? WHERE id = ?",
                    persistence::postgres::params!["b@x.io", 1_i64],
                )
                .await
                .expect("execute");
            assert_eq!(n, 1);
            p.shutdown().await;
        });
    });
    handle.run_upkeep();
    let text = handle.render();
    let line = |needles: &[&str]| {
        text.lines()
            .any(|l| l.starts_with(needles[0]) && needles.iter().all(|n| l.contains(n)))
    };
    let dbl = format!("db=\"{db}\"");
    assert!(
        line(&[
            names::OPERATIONS,
            &dbl,
            "op=\"insert\"",
            "outcome=\"ok\"",
            "} 1"
        ]),
        "{text}"
    );
    assert!(
        line(&[
            names::OPERATIONS,
            &dbl,
            "op=\"get\"",
            "outcome=\"ok\"",
            // `get(&1)` is answered by the cache (the insert wrote the row
            // through); only `get(&2)` reaches the database.
            "} 1"
        ]),
        "{text}"
    );
    assert!(
        line(&[
            names::OPERATIONS,
            &dbl,
            "op=\"execute\"",
            "outcome=\"ok\"",
            "} 1"
        ]),
        "{text}"
    );
    assert!(
        line(&[names::POOL_ACQUIRE, &dbl, "quantile=\"0.5\""]),
        "{text}"
    );
    assert!(
        line(&[
            names::OPERATION_DURATION,
            &dbl,
            "op=\"insert\"",
            "quantile=\"0.99\""
        ]),
        "{text}"
    );
}

/// Cache counters of a manager-built cache carry the database name.
#[tokio::test]
async fn cache_counters_carry_the_database_label() {
    snapshotter();
    let db = format!("mem_{}", unique_suffix());
    let p = Persistence::new(config(&format!(
        "databases:\n  {db}: {{ kind: memory }}\ncache:\n  default: {{ ttl: 1m }}\n"
    )))
    .expect("manager");
    let users = p.repo_in::<User>(&db).await.expect("repo");
    users.insert(&user(1, "a@x.io")).await.expect("insert");
    assert!(users.get(&1).await.expect("get").is_some());
    assert!(users.get(&1).await.expect("get").is_some());
    let hits = counter(
        persistence::cache::metrics::names::HITS,
        &[
            (names::LABEL_DB, &db),
            ("entity", "met_users"),
            ("level", "l1"),
        ],
    );
    assert!(hits >= 1, "l1 hits labelled with db: {hits}");
    p.shutdown().await;
}

/// MongoDB: pool counts from the driver's events, command shapes (no values)
/// in the slow log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongo_pool_status_and_command_shapes() {
    snapshotter();
    // Own database, dropped by the guard (also on panic).
    let Some(guard) = TestMongo::database().await else {
        return;
    };
    let (mongo, mdb) = (guard.url().to_string(), guard.name().to_string());
    let suffix = unique_suffix();
    let db = format!("mg_{suffix}");
    let p = Persistence::new(config(&format!(
        "databases:\n  {db}: {{ kind: mongo, url: \"{mongo}\", database: {mdb} }}\n\
         cache:\n  default: {{ disabled: true }}\n\
         metrics: {{ sample_interval: 20ms, slow_threshold: 0s }}\n"
    )))
    .expect("manager");
    let users = p.repo_in::<User>(&db).await.expect("repo");
    let secret = format!("secret-{suffix}@x.io");
    users.insert(&user(1, &secret)).await.expect("insert");
    let found = users
        .find(&Query::filter(User::EMAIL.eq(secret.as_str())))
        .await
        .expect("find");
    assert_eq!(found.len(), 1);

    let status = p.pool_status(&db).expect("pool counts from driver events");
    assert!(status.max > 0 && status.size >= 1, "{status:?}");
    // The driver checks connections back in just after the operation returns.
    eventually("mongo connections checked back in", || {
        p.pool_status(&db).map(|s| (s.in_use, s.waiting)) == Some((0, 0))
    })
    .await;
    assert!(!histogram(names::POOL_ACQUIRE, &db).is_empty());

    let mine: Vec<_> = SlowLog::global()
        .recent(256)
        .into_iter()
        .filter(|e| e.db == db)
        .collect();
    let find = mine.iter().find(|e| e.op == "find").expect("find logged");
    let shape = find.statement.as_deref().expect("command shape");
    assert!(
        shape.starts_with("find met_users") && shape.contains("email"),
        "{shape}"
    );
    assert!(
        mine.iter()
            .filter_map(|e| e.statement.as_deref())
            .all(|s| !s.contains("secret-")),
        "no values: {mine:?}"
    );

    p.shutdown().await;
    guard.cleanup().await.expect("drop database");
}

/// The `metrics` section: defaults, unknown keys rejected, bad values named.
#[test]
fn metrics_config_keys_are_checked() {
    let defaults = config("databases:\n  main: { kind: memory }\n");
    assert_eq!(defaults.metrics.slow_threshold, Duration::from_millis(500));
    assert_eq!(defaults.metrics.leak_threshold, Duration::from_secs(30));
    assert_eq!(defaults.metrics.pool_warn_utilization, 85);
    let set = config(
        "databases:\n  main: { kind: memory }\nmetrics: { slow_threshold: 50ms, leak_threshold: 2s, pool_warn_utilization: 90, sample_interval: 250ms }\n",
    );
    assert_eq!(set.metrics.slow_threshold, Duration::from_millis(50));
    assert_eq!(set.metrics.leak_threshold, Duration::from_secs(2));
    assert_eq!(set.metrics.pool_warn_utilization, 90);
    assert_eq!(set.metrics.sample_interval, Duration::from_millis(250));

    let typo = ConfigLoader::new()
        .text(
            "persistence.yaml",
            "databases:\n  main: { kind: memory }\nmetrics: { slow_treshold: 1s }\n",
        )
        .env(Vec::new())
        .load()
        .expect_err("unknown key");
    assert!(typo.to_string().contains("slow_treshold"), "{typo}");

    let bad = ConfigLoader::new()
        .text(
            "persistence.yaml",
            "databases:\n  main: { kind: memory }\nmetrics: { pool_warn_utilization: 0 }\n",
        )
        .env(Vec::new())
        .load()
        .and_then(Persistence::new)
        .expect_err("0 %");
    assert!(
        bad.to_string().contains("metrics.pool_warn_utilization"),
        "{bad}"
    );
}
