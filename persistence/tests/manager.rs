//! The Persistence manager over embedded databases and single real servers
//! (the multi-store scenarios are in the workspace `tests/manager.rs`).
use std::sync::Arc;

use persistence::config::{ConfigLoader, PersistenceConfig};
use persistence::{Entity, ErrorKind, HealthState, Persistence, Query, Repository, StringField};
use persistence_testing::services::{Service, url};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(name = "mgr_users")]
struct User {
    #[entity(id)]
    id: i64,
    #[entity(unique)]
    email: String,
    #[entity(version)]
    version: i64,
}

fn user(id: i64) -> User {
    User {
        id,
        email: format!("u{id}@x.io"),
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

#[tokio::test]
async fn embedded_topology_serves_repositories_with_layers() {
    let p = Persistence::new(config(
        "databases:\n  main: { kind: sqlite, url: \"sqlite::memory:\" }\n  documents: { kind: memory }\n",
    ))
    .expect("manager");
    let before = p.health().await;
    assert!(
        before
            .databases
            .iter()
            .all(|d| d.state == HealthState::Unknown),
        "nothing built yet"
    );

    let users = p.repo::<User>().await.expect("main");
    users.insert(&user(1)).await.expect("insert");
    let again = p.repo::<User>().await.expect("memoized");
    assert!(
        Arc::ptr_eq(&users, &again),
        "one repository (one cache) per database and entity"
    );
    assert_eq!(
        again.get(&1).await.expect("get").map(|u| u.version),
        Some(1)
    );

    let docs = p.repo_in::<User>("documents").await.expect("documents");
    assert_eq!(docs.capabilities().backend, "memory");
    docs.insert(&user(2)).await.expect("insert doc");
    assert_eq!(
        p.repo_in::<User>("documents")
            .await
            .expect("same")
            .count(&persistence::Filter::all())
            .await
            .expect("count"),
        1
    );
    let found = users
        .find(&Query::filter(User::EMAIL.starts_with("u1")))
        .await
        .expect("find");
    assert_eq!(found.len(), 1);

    let report = p.health().await;
    assert_eq!(report.status, HealthState::Healthy, "{report:?}");
    assert!(
        report
            .databases
            .iter()
            .all(|d| d.state == HealthState::Healthy),
        "{report:?}"
    );
    p.shutdown().await;
}

#[tokio::test]
async fn configuration_mistakes_are_clear_errors() {
    let p = Persistence::new(config(
        "databases:\n  main: { kind: memory }\n  cache: { kind: redis, url: \"redis://127.0.0.1:6379\" }\n",
    ))
    .expect("manager");
    let err = p
        .repo_in::<User>("nope")
        .await
        .expect_err("unknown database");
    assert_eq!(err.kind(), &ErrorKind::Config);
    assert!(err.to_string().contains("nope"), "{err}");
    let err = p
        .repo_in::<User>("cache")
        .await
        .expect_err("redis is not an entity store");
    assert_eq!(err.kind(), &ErrorKind::Config);
    assert!(err.to_string().contains("cache"), "{err}");
}

#[tokio::test]
async fn tls_settings_reach_the_driver() {
    let Some(pg) = url(Service::Postgres) else {
        return;
    };
    let yaml = format!(
        "databases:\n  main: {{ kind: postgres, url: \"{pg}\", tls: {{ mode: sometimes }} }}\n"
    );
    let p = Persistence::new(config(&yaml)).expect("manager");
    let err = p.repo::<User>().await.expect_err("bad mode");
    assert_eq!(err.kind(), &ErrorKind::Config);
    assert!(err.to_string().contains("tls.mode"), "{err}");
    let yaml = format!(
        "databases:\n  main: {{ kind: postgres, url: \"{pg}\", tls: {{ mode: verify-full, root_cert: /nonexistent/root.pem }} }}\n"
    );
    let p = Persistence::new(config(&yaml)).expect("manager");
    assert!(
        p.repo::<User>().await.is_err(),
        "verify-full with a missing root certificate cannot connect"
    );
}

#[tokio::test]
async fn unreachable_database_is_unavailable_not_a_hang() {
    let p = Persistence::new(config(
        "databases:\n  main:\n    kind: postgres\n    url: \"postgres://postgres@127.0.0.1:1/db\"\n    pool: { acquire_timeout: 1s }\n",
    ))
    .expect("manager");
    let started = std::time::Instant::now();
    let err = p
        .repo::<User>()
        .await
        .expect_err("nothing listens on port 1");
    assert_eq!(err.kind(), &ErrorKind::Unavailable, "{err}");
    assert!(err.is_retryable());
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
}

/// A Redis that does not answer makes the cache `Degraded`, never
/// `Unhealthy`: reads and writes still work from L1 and the database.
#[tokio::test]
async fn a_dead_redis_degrades_health_but_not_the_repositories() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port");
    let p = Persistence::new(config(&format!(
        "databases:\n  main: {{ kind: memory }}\n  cache: {{ kind: redis, url: \"redis://{closed}\", failover: {{ check_timeout: 300ms }} }}\ncache:\n  default: {{ ttl: 30s, l2: cache }}\n"
    )))
    .expect("manager");
    let users = p.repo::<User>().await.expect("repo");
    users.insert(&user(1)).await.expect("insert without L2");
    assert!(users.get(&1).await.expect("get").is_some());
    let started = std::time::Instant::now();
    let report = p.health().await;
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "bounded by check_timeout"
    );
    let cache = report
        .databases
        .iter()
        .find(|d| d.name == "cache")
        .expect("cache");
    assert_eq!(cache.state, HealthState::Degraded, "{cache:?}");
    assert!(
        cache
            .error
            .as_deref()
            .is_some_and(|e| !e.contains("redis://")),
        "{cache:?}"
    );
    assert!(cache.since.is_some());
    assert_eq!(report.status, HealthState::Degraded, "{report:?}");
    p.shutdown().await;
}

/// `insert_many` through the manager's layers is the bulk path (COPY from
/// 1,000 rows on PostgreSQL), all or nothing, and its timeout grows with
/// the batch (one `timeout` per 1,000 rows) instead of cutting a large load.
#[tokio::test]
async fn insert_many_through_the_manager_loads_in_bulk() {
    let Some(pg) = persistence_testing::TestPostgres::schema().await else {
        return;
    };
    let schema = pg.name().to_owned();
    let yaml = format!(
        "databases:\n  main: {{ kind: postgres, url: \"{}\", schema: {schema}, timeout: 5s }}\ncache:\n  default: {{ disabled: true }}\n",
        pg.url()
    );
    let p = Persistence::new(config(&yaml)).expect("manager");
    let users = p.repo::<User>().await.expect("repo");

    // A duplicate email at row 2,345: nothing is written, the row is named.
    let mut batch: Vec<User> = (1..=2_500).map(user).collect();
    batch[2_345].email = batch[10].email.clone();
    let err = users.insert_many(&batch).await.expect_err("duplicate");
    assert!(matches!(err.kind(), ErrorKind::Conflict(_)), "{err}");
    assert!(err.to_string().contains("row 2345"), "{err}");
    assert_eq!(
        users
            .count(&persistence::Filter::all())
            .await
            .expect("count"),
        0
    );

    let batch: Vec<User> = (1..=12_000).map(user).collect();
    assert_eq!(users.insert_many(&batch).await.expect("bulk load"), 12_000);
    assert_eq!(
        users
            .count(&persistence::Filter::all())
            .await
            .expect("count"),
        12_000
    );
    assert_eq!(
        users.get(&11_999).await.expect("get").map(|u| u.version),
        Some(1)
    );
    p.shutdown().await;
}
