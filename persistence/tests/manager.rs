//! The Persistence manager over embedded and real databases.
use std::sync::Arc;

use persistence::config::{ConfigLoader, PersistenceConfig};
use persistence::conformance::services::{Service, unique_suffix, url};
use persistence::{Entity, ErrorKind, HealthState, Persistence, Query, Repository, StringField};
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

#[tokio::test]
async fn real_servers_from_a_config_file() {
    let (Some(pg), Some(mongo), Some(redis)) = (
        url(Service::Postgres),
        url(Service::Mongo),
        url(Service::Redis),
    ) else {
        return;
    };
    let suffix = unique_suffix();
    let schema = format!("mgr_{suffix}");
    let mongo_db = format!("mgr_{suffix}");
    let yaml = format!(
        "databases:\n  main: {{ kind: postgres, url: \"${{PG}}\", schema: {schema}, pool: {{ max_connections: 4 }} }}\n  catalog: {{ kind: mongo, url: \"${{MONGO}}\", database: {mongo_db} }}\n  cache: {{ kind: redis, url: \"${{REDIS}}\" }}\ncache:\n  default: {{ ttl: 30s, l2: cache }}\n"
    );
    let cfg = ConfigLoader::new()
        .text("persistence.yaml", yaml)
        .env([
            ("PG".to_string(), pg.clone()),
            ("MONGO".to_string(), mongo.clone()),
            ("REDIS".to_string(), redis),
        ])
        .load()
        .expect("config");
    let p = Persistence::new(cfg).expect("manager");
    let outcome = async {
        let users = p.repo::<User>().await.expect("postgres");
        users.insert(&user(1)).await.expect("insert");
        assert_eq!(
            users.get(&1).await.expect("get").map(|u| u.email),
            Some("u1@x.io".to_string())
        );
        let dup = users
            .insert(&User {
                id: 2,
                email: "u1@x.io".into(),
                version: 0,
            })
            .await
            .expect_err("unique");
        assert!(dup.is_conflict(), "{dup}");
        let catalog = p.repo_in::<User>("catalog").await.expect("mongo");
        assert_eq!(catalog.capabilities().backend, "mongo");
        catalog.insert(&user(7)).await.expect("insert doc");
        assert_eq!(catalog.get(&7).await.expect("get").map(|u| u.id), Some(7));
        let report = p.health().await;
        let states: Vec<_> = report
            .databases
            .iter()
            .map(|d| (d.name.as_str(), d.state))
            .collect();
        assert!(
            states.contains(&("main", HealthState::Healthy)),
            "{report:?}"
        );
        assert!(
            states.contains(&("catalog", HealthState::Healthy)),
            "{report:?}"
        );
        let described = p.describe();
        assert!(
            described.contains(&format!("schema {schema}")),
            "{described}"
        );
    };
    outcome.await;
    p.shutdown().await;
    // Leave nothing behind.
    let store = persistence::postgres::RelationalStore::connect(
        &persistence::postgres::RelationalConfig::new(pg).schema(schema),
    )
    .await
    .expect("cleanup connect");
    store.drop_schema().await.expect("drop schema");
    let m = persistence::mongo::MongoStore::connect(&persistence::mongo::MongoConfig::new(
        mongo, mongo_db,
    ))
    .await
    .expect("mongo");
    m.drop_database().await.expect("drop db");
}
