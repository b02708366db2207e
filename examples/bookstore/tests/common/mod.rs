//! Shared set-up of the bookstore tests: start the app in process on an
//! ephemeral loopback port, on embedded defaults or on the real services.

#![allow(dead_code)]

use std::net::SocketAddr;

use persistence_bookstore::client::Client;
use persistence_bookstore::{AppConfig, Running, serve};
use persistence_core::conformance::services::{self, Service};

/// A namespace of its own for every test (schema, Mongo database, key prefix, tenants).
pub fn namespace() -> String {
    format!("bs_{}", services::unique_suffix())
}

/// The embedded configuration (whatever the environment says).
pub fn embedded() -> AppConfig {
    AppConfig::embedded(&namespace())
}

/// The real services (env URLs or the local servers); `None` (skipped,
/// said on stderr) when one is missing outside CI; under CI a panic.
pub fn services() -> Option<AppConfig> {
    let pg = services::url(Service::Postgres)?;
    let mongo = services::url(Service::Mongo)?;
    let redis = services::url(Service::Redis)?;
    let mut c = AppConfig::embedded(&namespace());
    c.database_url = Some(pg);
    c.mongodb_url = Some(mongo);
    c.redis_url = Some(redis);
    Some(c)
}

/// Start on an ephemeral loopback port.
pub async fn start(config: AppConfig) -> Running {
    serve(config, SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .expect("the bookstore starts")
}

/// Stop and drop everything the instance created: its schemas and Mongo
/// database (`destroy`) and, on Redis, the keys under its prefixes (the
/// query cache and sessions, and the manager's per-database caches).
pub async fn finish(running: Running) {
    let app = running.app.clone();
    running.stop().await.expect("server stops");
    app.destroy().await.expect("cleanup");
    if let Some(url) = &app.config.redis_url {
        let ns = &app.config.namespace;
        for prefix in [
            format!("bookstore.{ns}.queries"),
            format!("persistence.main.{ns}"),
            format!("persistence.catalog.{ns}"),
        ] {
            persistence_testing::TestRedis::delete_under(url, &prefix)
                .await
                .expect("delete the instance's Redis keys");
        }
    }
}

/// A client logged in as seeded customer `i`.
pub async fn customer(addr: SocketAddr, i: usize) -> Client {
    let mut c = Client::new(addr).expect("loopback");
    c.login_as(i).await.expect("login");
    c
}
