//! No password in any error that involves a connection URL: every path
//! (PostgreSQL, SQLite, MongoDB, Redis, config load, manager, registry) is
//! formatted with `{}`, `{:#}`, `{:?}` and `{:#?}`, down the whole source
//! chain. No server is needed: the URLs are unparsable or point at a port
//! where nothing listens.

use std::net::TcpListener;

use persistence::Persistence;
use persistence::cache::CacheLayer;
use persistence::config::{ConfigLoader, DatabaseKind};
use persistence::mongo::{MongoConfig, MongoStore};
use persistence::postgres::{RelationalConfig, RelationalStore};
use persistence::registry::{ConnectionDefinition, Registry, RegistryKey};
use persistence_core::Error;

const PASSWORD: &str = "hunter2sekret";

/// A loopback port where nothing listens.
fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    drop(l);
    port
}

fn every_text(e: &Error) -> Vec<String> {
    let mut texts = vec![
        format!("{e}"),
        format!("{e:#}"),
        format!("{e:?}"),
        format!("{e:#?}"),
    ];
    let mut cur = std::error::Error::source(e);
    while let Some(s) = cur {
        texts.extend([
            format!("{s}"),
            format!("{s:#}"),
            format!("{s:?}"),
            format!("{s:#?}"),
        ]);
        cur = s.source();
    }
    texts
}

fn assert_no_password(what: &str, e: &Error) {
    for t in every_text(e) {
        assert!(!t.contains(PASSWORD), "{what} shows the password: {t}");
    }
}

fn bad_urls(scheme: &str, port: u16) -> Vec<String> {
    vec![
        // Unparsable: a space in the host, a port that is not a number, an
        // unescaped `@` in the password.
        format!("{scheme}://app:{PASSWORD}@db host:5432/app"),
        format!("{scheme}://app:{PASSWORD}@127.0.0.1:notaport/app"),
        format!("{scheme}://app:x@{PASSWORD}@127.0.0.1:{port}/app"),
        format!("{scheme}://app:{PASSWORD}@127.0.0.1:{port}/app?bogus_option=1"),
        // Parsable, nothing listening.
        format!("{scheme}://app:{PASSWORD}@127.0.0.1:{port}/app"),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_and_sqlite_connect_errors() {
    let port = closed_port();
    for url in bad_urls("postgres", port) {
        let e = RelationalStore::connect(
            &RelationalConfig::new(url.clone())
                .acquire_timeout(std::time::Duration::from_millis(500)),
        )
        .await
        .expect_err("cannot connect");
        assert_no_password(&format!("postgres {}", url.replace(PASSWORD, "***")), &e);
    }
    for url in [
        format!("sqlite://app:{PASSWORD}@/nonexistent-dir/x.db"),
        format!("sqlite:///nonexistent-dir/x.db?password={PASSWORD}"),
        format!("sqlite:///nonexistent-dir/{PASSWORD}/x.db?mode=ro"),
    ] {
        if let Err(e) = RelationalStore::connect(&RelationalConfig::new(url.clone())).await {
            assert_no_password("sqlite", &e);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongo_connect_errors() {
    let port = closed_port();
    for url in bad_urls("mongodb", port) {
        let url = format!(
            "{url}{}serverSelectionTimeoutMS=300&directConnection=true",
            if url.contains('?') { "&" } else { "?" }
        );
        let store = MongoStore::connect(&MongoConfig::new(url.clone(), "app")).await;
        let e = match store {
            Err(e) => e,
            // Connecting is lazy: the first command meets the server (or not).
            Ok(store) => store.ping().await.expect_err("nothing listens"),
        };
        assert_no_password(&format!("mongo {}", url.replace(PASSWORD, "***")), &e);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cache_errors() {
    let port = closed_port();
    for url in [
        format!("redis://:{PASSWORD}@127.0.0.1:notaport"),
        format!("redis://app:{PASSWORD}@db host:6379"),
        format!("redis://:{PASSWORD}@127.0.0.1:{port}/notadb"),
    ] {
        if let Err(e) = CacheLayer::builder().redis_url(url.clone()).build() {
            assert_no_password("redis", &e);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_load_and_manager_errors() {
    let port = closed_port();
    let texts = [
        format!(
            "databases:\n  main: {{ kind: postgres, url: \"mysql://root:{PASSWORD}@h/db\" }}\n"
        ),
        format!(
            "databases:\n  main: {{ kind: postgres, url: \"postgres://app:{PASSWORD}@db host/x\" }}\n"
        ),
        format!(
            "databases:\n  main: {{ kind: mongo, url: \"mongodb://app:{PASSWORD}@db host/x\", database: app }}\n"
        ),
        format!(
            "databases:\n  main: {{ kind: redis, url: \"redis://:{PASSWORD}@127.0.0.1:notaport\" }}\n"
        ),
        format!(
            "databases:\n  main: {{ kind: postgres, url: \"postgres://app:{PASSWORD}@127.0.0.1:{port}/x\", pool: {{ acquire_timeout: 500ms }} }}\n"
        ),
        format!(
            "databases:\n  main: {{ kind: postgres, url: \"postgres://app:{PASSWORD}@h/x\", bogus: 1 }}\n"
        ),
    ];
    for text in texts {
        let loaded = ConfigLoader::new()
            .text("persistence.yaml", text.clone())
            .env(Vec::new())
            .load();
        let config = match loaded {
            Err(e) => {
                assert_no_password("config load", &e);
                continue;
            }
            Ok(c) => c,
        };
        let db = match Persistence::new(config) {
            Err(e) => {
                assert_no_password("manager", &e);
                continue;
            }
            Ok(db) => db,
        };
        #[derive(Debug, Clone, serde::Serialize, serde::Deserialize, persistence::Entity)]
        #[entity(name = "secret_things")]
        struct Thing {
            #[entity(id)]
            id: i64,
        }
        if let Err(e) = db.repo::<Thing>().await {
            assert_no_password("manager repo", &e);
        }
        let health = db.health().await;
        assert!(
            !format!("{health:?}").contains(PASSWORD),
            "health: {health:?}"
        );
        db.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_errors() {
    let port = closed_port();
    let store = RelationalStore::connect(&RelationalConfig::new("sqlite::memory:"))
        .await
        .expect("sqlite");
    let (key, _) = RegistryKey::generate();
    let registry = Registry::open(store, key, 4).await.expect("registry");
    let mut n = 0;
    // The unparsable URLs only: a refused connection waits for the pool's
    // acquire timeout (the connect paths are covered above).
    for (kind, url) in bad_urls("postgres", port)
        .into_iter()
        .take(3)
        .map(|u| (DatabaseKind::Postgres, u))
        .chain(
            bad_urls("mongodb", port)
                .into_iter()
                .take(3)
                .map(|u| (DatabaseKind::Mongo, u)),
        )
    {
        n += 1;
        let name = format!("c{n}");
        let def = ConnectionDefinition::new(name.clone(), kind, url.as_str());
        if let Err(e) = registry.add(&def).await {
            assert_no_password("registry add", &e);
            continue;
        }
        if let Err(e) = registry.pool(&name).await {
            assert_no_password("registry pool", &e);
        }
        let listed = registry.list().await.expect("list");
        assert!(!format!("{listed:?}").contains(PASSWORD), "{listed:?}");
    }
}
