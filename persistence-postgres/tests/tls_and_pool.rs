//! TLS (rustls) and pool settings against the local PostgreSQL (ssl = on,
//! self-signed certificate for `localhost`).
mod common;

use std::time::Duration;

use common::*;
use persistence_core::{ErrorKind, Repository as _};
use persistence_postgres::sea_orm::{ConnectionTrait, Statement};
use persistence_postgres::{RelationalConfig, RelationalStore, SslMode};

async fn scalar(store: &RelationalStore, sql: &str) -> String {
    let db = store.connection();
    let row = db
        .query_one_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .expect(sql)
        .expect("row");
    row.try_get_by_index::<String>(0).expect("text")
}

/// The server's certificate file when TLS is on and the file is readable here.
async fn server_cert(url: &str) -> Option<String> {
    let store = RelationalStore::connect(&RelationalConfig::new(url))
        .await
        .expect("connect");
    let on = scalar(&store, "SHOW ssl").await == "on";
    let file = scalar(&store, "SHOW ssl_cert_file").await;
    store.close().await;
    if on && std::fs::metadata(&file).is_ok() {
        Some(file)
    } else {
        eprintln!("SKIPPED: the PostgreSQL server has no readable TLS certificate");
        None
    }
}

fn with_host(url: &str, host: &str) -> String {
    let (scheme, rest) = url.split_once("://").expect("url");
    let (auth, tail) = rest.split_once('@').map_or(("", rest), |(a, t)| (a, t));
    let tail = tail.split_once([':', '/']).map_or(String::new(), |(_, t)| {
        let sep = if tail.contains(':') && tail.find(':') < tail.find('/') {
            ":"
        } else {
            "/"
        };
        format!("{sep}{t}")
    });
    let auth = if auth.is_empty() {
        String::new()
    } else {
        format!("{auth}@")
    };
    format!("{scheme}://{auth}{host}{tail}")
}

#[tokio::test]
async fn require_connects_and_verify_full_needs_the_root() {
    let Some(url) = pg_url() else { return };
    let Some(cert) = server_cert(&url).await else {
        return;
    };
    let url = with_host(&url, "localhost");

    let store =
        RelationalStore::connect(&RelationalConfig::new(url.clone()).ssl_mode(SslMode::Require))
            .await
            .expect("sslmode=require connects");
    let ssl: String = {
        let db = store.connection();
        let row = db
            .query_one_raw(Statement::from_string(
                db.get_database_backend(),
                "SELECT ssl::text FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            ))
            .await
            .expect("pg_stat_ssl")
            .expect("row");
        row.try_get_by_index(0).expect("text")
    };
    assert_eq!(ssl, "true", "the session is encrypted");
    store.close().await;

    let e =
        RelationalStore::connect(&RelationalConfig::new(url.clone()).ssl_mode(SslMode::VerifyFull))
            .await
            .expect_err("a self-signed certificate is refused under verify-full");
    assert_eq!(e.kind(), &ErrorKind::Unavailable, "{e:?}");
    assert!(!e.is_retryable(), "{e:?}");
    assert!(e.message().contains("TLS"), "clear message: {e}");

    let store = RelationalStore::connect(
        &RelationalConfig::new(url)
            .ssl_mode(SslMode::VerifyFull)
            .ssl_root_cert(cert),
    )
    .await
    .expect("verify-full with the certificate as root connects");
    assert_eq!(scalar(&store, "SELECT 'ok'").await, "ok");
    store.close().await;
}

#[tokio::test]
async fn pool_settings_apply() {
    let Some(url) = pg_url() else { return };
    let mut cfg = RelationalConfig::new(url)
        .max_connections(2)
        .acquire_timeout(Duration::from_secs(5))
        .statement_timeout(Duration::from_millis(1_500));
    cfg.application_name = Some("persistence-test".into());
    cfg.min_connections = Some(1);
    cfg.idle_timeout = Some(Duration::from_secs(30));
    cfg.max_lifetime = Some(Duration::from_secs(300));
    let store = RelationalStore::connect(&cfg).await.expect("connect");
    assert_eq!(
        scalar(&store, "SHOW application_name").await,
        "persistence-test"
    );
    assert_eq!(scalar(&store, "SHOW statement_timeout").await, "1500ms");
    // A statement past the timeout is a retryable Timeout.
    let db = store.connection();
    let e = db
        .execute_unprepared("SELECT pg_sleep(5)")
        .await
        .map_err(persistence_postgres::error::map_error)
        .expect_err("statement timeout");
    assert_eq!(e.kind(), &ErrorKind::Timeout, "{e:?}");
    assert!(e.is_retryable());
    store.close().await;
}

#[tokio::test]
async fn pool_acquire_timeout_is_unavailable() {
    let Some(url) = pg_url() else { return };
    let cfg = RelationalConfig::new(url)
        .max_connections(1)
        .acquire_timeout(Duration::from_millis(500));
    let store = RelationalStore::connect(&cfg).await.expect("connect");
    let repo = store.repository::<Thing>();
    // The only connection is held by an open transaction.
    let tx = persistence_postgres::sea_orm::TransactionTrait::begin(store.connection())
        .await
        .expect("begin");
    let e = repo
        .count(&persistence_core::Filter::all())
        .await
        .expect_err("no connection free");
    assert_eq!(e.kind(), &ErrorKind::Unavailable, "{e:?}");
    assert!(e.is_retryable());
    tx.rollback().await.expect("rollback");
    store.close().await;
}

#[tokio::test]
async fn connection_refused_is_unavailable() {
    let cfg = RelationalConfig::new("postgres://postgres@127.0.0.1:1/postgres")
        .acquire_timeout(Duration::from_secs(2));
    let e = RelationalStore::connect(&cfg)
        .await
        .expect_err("nothing listens on port 1");
    assert_eq!(e.kind(), &ErrorKind::Unavailable, "{e:?}");
    assert!(e.is_retryable());
}

#[test]
fn config_debug_never_shows_the_password() {
    let cfg = RelationalConfig::new("postgres://app:hunter2@db.internal:5432/app");
    assert!(!format!("{cfg:?}").contains("hunter2"));
}
