//! The facade built with some backends compiled out (cargo features
//! `postgres`, `sqlite`, `mongo`, `redis`): what remains works end to end,
//! and what is missing is named, not half-built. CI runs this file with
//! `--no-default-features --features sqlite`; with every feature on, only
//! the end-to-end case runs.
#![cfg(feature = "sqlite")]
#![allow(clippy::unwrap_used)]

use persistence::config::{ConfigLoader, PersistenceConfig};
use persistence::{Entity, Persistence, Query, Repository};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(name = "feature_users")]
struct User {
    #[entity(id)]
    id: i64,
    #[entity(unique)]
    email: String,
}

fn config(yaml: &str) -> PersistenceConfig {
    ConfigLoader::new()
        .text("persistence.yaml", yaml)
        .env(Vec::new())
        .load()
        .expect("config")
}

#[tokio::test]
async fn sqlite_and_memory_serve_cached_repositories() {
    let p = Persistence::new(config(
        "databases:\n  main: { kind: sqlite, url: \"sqlite::memory:\" }\n  documents: { kind: memory }\n",
    ))
    .expect("manager");
    let users = p.repo::<User>().await.expect("main");
    let alice = User {
        id: 1,
        email: "a@x.io".into(),
    };
    users.insert(&alice).await.expect("insert");
    assert_eq!(users.get(&1).await.expect("get"), Some(alice.clone()));
    let found = users
        .find(&Query::filter(User::EMAIL.eq("a@x.io")))
        .await
        .expect("find");
    assert_eq!(found, vec![alice.clone()]);
    let docs = p.repo_in::<User>("documents").await.expect("documents");
    docs.insert(&alice).await.expect("insert into memory");
    assert_eq!(
        docs.count(&persistence::Filter::all())
            .await
            .expect("count"),
        1
    );
    p.shutdown().await;
}

#[cfg(not(feature = "mongo"))]
#[test]
fn a_database_of_a_missing_backend_is_a_config_error() {
    use persistence::ErrorKind;
    // Loading validates: the file is refused before anything connects.
    let err = ConfigLoader::new()
        .text(
            "persistence.yaml",
            "databases:\n  main: { kind: sqlite, url: \"sqlite::memory:\" }\n  documents: { kind: mongo, url: \"mongodb://127.0.0.1:27017\", database: app }\n",
        )
        .env(Vec::new())
        .load()
        .expect_err("mongo is compiled out");
    assert_eq!(err.kind(), &ErrorKind::Config, "{err}");
    assert!(
        err.to_string()
            .contains("database `documents` is kind mongo, but persistence was built without the `mongo` feature"),
        "{err}"
    );
}

#[cfg(not(any(feature = "mongo", feature = "redis", feature = "postgres")))]
#[test]
fn detection_passes_over_urls_of_missing_backends() {
    use persistence::config::{DatabaseKind, Probe, detect};
    let probe = Probe {
        env: Some(vec![
            (
                "DATABASE_URL".into(),
                "postgres://u@127.0.0.1:5432/app".into(),
            ),
            ("MONGODB_URL".into(), "mongodb://127.0.0.1:27017".into()),
            ("REDIS_URL".into(), "redis://127.0.0.1:6379".into()),
        ]),
        ..Probe::env_only()
    };
    let d = detect("development", &probe).expect("detect");
    assert_eq!(d.config.databases["main"].kind, DatabaseKind::Sqlite);
    assert_eq!(d.config.databases["documents"].kind, DatabaseKind::Memory);
    assert!(!d.config.databases.contains_key("cache"));
    for var in ["DATABASE_URL", "MONGODB_URL", "REDIS_URL"] {
        assert!(
            d.reasons
                .iter()
                .any(|r| r.starts_with(&format!("{var} ignored: persistence was built without"))),
            "{var}: {:?}",
            d.reasons
        );
    }
}
