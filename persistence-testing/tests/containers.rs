//! The `containers` feature against a real Docker engine. Where none is
//! reachable (this project's own machines and CI have none) the test prints
//! why it did not run and returns; it is exercised only where Docker exists.
#![cfg(feature = "containers")]

use persistence_core::{Entity, Repository};
use persistence_testing::containers::{self, docker_available};
use persistence_testing::services::Service;
use persistence_testing::{Isolation, TestMongo, TestPostgres, TestRedis};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(name = "container_items")]
struct Item {
    #[entity(id)]
    id: i64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_in_containers_serve_isolated_resources() {
    if !docker_available() {
        eprintln!(
            "SKIPPED (no Docker engine: DOCKER_HOST unset and no /var/run/docker.sock): \
             the containers feature runs only where Docker exists"
        );
        return;
    }
    let pg_server = containers::start(Service::Postgres)
        .await
        .expect("postgres container");
    let pg = TestPostgres::create(pg_server.url(), Isolation::Schema)
        .await
        .expect("schema");
    let store = pg.store().await.expect("connect");
    let repo = store.repository::<Item>();
    repo.ensure_schema().await.expect("ensure_schema");
    repo.insert(&Item { id: 1 }).await.expect("insert");
    assert_eq!(repo.get(&1).await.expect("get"), Some(Item { id: 1 }));
    store.close().await;

    let mongo_server = containers::start(Service::Mongo)
        .await
        .expect("mongo container");
    let mongo = TestMongo::at(mongo_server.url());
    let docs = mongo.store().await.expect("connect").repository::<Item>();
    docs.insert(&Item { id: 2 }).await.expect("insert");
    assert!(mongo.exists().await.expect("exists"));

    let redis_server = containers::start(Service::Redis)
        .await
        .expect("redis container");
    let redis = TestRedis::at(redis_server.url(), "containers");
    let mut c = redis.connection().await.expect("connect");
    let _: () = ::redis::cmd("SET")
        .arg(redis.key("k"))
        .arg(1)
        .query_async(&mut c)
        .await
        .expect("set");
    assert_eq!(redis.keys().await.expect("keys").len(), 1);
    // Resources are dropped before their servers (reverse declaration order).
}
