//! The `Persistence` manager on real servers, several stores at once:
//! PostgreSQL + MongoDB + Redis from one configuration, and MongoDB's
//! concerns from YAML with the Redis its caches use in `health()`.
//! (Moved from `persistence/tests/manager.rs`.)
use persistence::config::{ConfigLoader, PersistenceConfig};
use persistence::{Entity, HealthState, Persistence, Repository};
use persistence_testing::{TestMongo, TestPostgres, TestRedis};
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
async fn real_servers_from_a_config_file() {
    // Each resource is removed when dropped, also if an assertion fails.
    let (Some(pg_schema), Some(mongo_db), Some(redis)) = (
        TestPostgres::schema().await,
        TestMongo::database().await,
        TestRedis::new().await,
    ) else {
        return;
    };
    let (pg, mongo) = (pg_schema.url().to_string(), mongo_db.url().to_string());
    let (schema, mongo_db) = (pg_schema.name(), mongo_db.name());
    // The manager's cache prefixes are `persistence.{database}.{schema or database}`.
    let _main_keys = TestRedis::adopt(redis.url(), &format!("persistence.main.{schema}"));
    let _catalog_keys = TestRedis::adopt(redis.url(), &format!("persistence.catalog.{mongo_db}"));
    let redis = redis.url().to_string();
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
}

/// Issue 12, items 5 and 6: the YAML write/read concern reaches the driver
/// (durable by default), and `health()` pings the Redis the caches use.
#[tokio::test]
async fn mongo_concerns_from_yaml_and_redis_in_health() {
    use persistence::mongo::mongodb::options::{Acknowledgment, ReadConcernLevel};
    let (Some(mongo), Some(redis)) = (TestMongo::database().await, TestRedis::new().await) else {
        return;
    };
    let (url, name) = (mongo.url().to_string(), mongo.name().to_string());
    let _keys = TestRedis::adopt(redis.url(), &format!("persistence.docs.{name}"));
    let yaml = format!(
        "databases:\n  docs: {{ kind: mongo, url: \"{url}\", database: {name}, write_concern: {{ w: 1, journal: false, timeout: 2s }}, read_concern: {{ level: majority }} }}\n  durable: {{ kind: mongo, url: \"{url}\", database: {name} }}\n  cache: {{ kind: redis, url: \"{}\" }}\ncache:\n  default: {{ ttl: 30s, l2: cache }}\n",
        redis.url()
    );
    let p = Persistence::new(config(&yaml)).expect("manager");
    let docs = p.repo_in::<User>("docs").await.expect("docs");
    docs.insert(&user(1)).await.expect("insert under w:1");
    let store = p.mongo("docs").await.expect("built").expect("mongo");
    let wc = store.write_concern().expect("set");
    assert_eq!(
        (wc.w.clone(), wc.journal, wc.w_timeout),
        (
            Some(Acknowledgment::Nodes(1)),
            Some(false),
            Some(std::time::Duration::from_secs(2))
        )
    );
    assert_eq!(
        store.read_concern().map(|r| r.level.clone()),
        Some(ReadConcernLevel::Majority)
    );
    let durable = p.mongo("durable").await.expect("built").expect("mongo");
    let wc = durable.write_concern().expect("default");
    assert_eq!(
        (wc.w.clone(), wc.journal),
        (Some(Acknowledgment::Majority), Some(true))
    );
    let repo = p.repo_in::<User>("durable").await.expect("durable");
    repo.insert(&user(2))
        .await
        .expect("insert under majority + journal");

    let report = p.health().await;
    let cache = report
        .databases
        .iter()
        .find(|d| d.name == "cache")
        .expect("cache");
    assert_eq!(cache.kind, "redis");
    assert_ne!(cache.state, HealthState::Unknown, "{cache:?}");
    assert!(
        cache.latency.is_some() && cache.error.is_none(),
        "{cache:?}"
    );
    let pool = cache.pool.expect("the caches' Redis pools");
    assert!(pool.max >= 1, "{pool:?}");
    p.shutdown().await;
    mongo.cleanup().await.expect("cleanup");
}
