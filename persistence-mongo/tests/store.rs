//! `MongoStore` and `MongoConfig` against the local server: an unreachable
//! server is `Unavailable` with the URL's secrets kept out, and writes are
//! durable by default while the write and read concerns can be chosen.
mod common;

use std::time::Duration;

use common::fixtures::{Account, Session, account};
use persistence_core::{ErrorKind, Repository};
use persistence_mongo::{MongoConfig, MongoStore};
use uuid::Uuid;

#[tokio::test]
async fn unreachable_server_is_unavailable_and_redacted() {
    let config = MongoConfig::new(
        "mongodb://bob:s3cret@127.0.0.1:1/?directConnection=true",
        "x",
    )
    .server_selection_timeout(Duration::from_millis(300));
    let store = MongoStore::connect(&config).await.expect("lazy connect");
    let err = store
        .repository::<Session>()
        .get(&"x".to_string())
        .await
        .expect_err("no server");
    assert_eq!(err.kind(), &ErrorKind::Unavailable);
    assert!(err.is_retryable());
    assert!(!err.to_string().contains("s3cret"));
    assert!(!format!("{config:?}").contains("s3cret"));
}

/// Issue 12, item 5: every store writes with `{ w: majority, j: true }`
/// unless told otherwise, the collection handles inherit it, the test
/// server accepts it, and an explicit opt-out (config or URL) is honoured.
#[tokio::test]
async fn writes_are_durable_by_default_and_the_concern_can_be_chosen() {
    use mongodb::options::{Acknowledgment, ReadConcern, ReadConcernLevel, WriteConcern};
    let Some(db) = persistence_testing::TestMongo::database().await else {
        return;
    };
    let store = db.store().await.expect("connect");
    let wc = store.write_concern().expect("a write concern is set");
    assert_eq!(wc.w, Some(Acknowledgment::Majority));
    assert_eq!(wc.journal, Some(true));
    assert_eq!(
        store.write_concern(),
        Some(&persistence_mongo::config::durable_write_concern())
    );
    let coll = store.database().collection::<bson::Document>("accounts");
    assert_eq!(coll.write_concern(), Some(wc), "collections inherit it");
    // The server accepts it: a write, an update and a delete under it.
    let repo = store.repository::<Account>();
    repo.ensure_schema().await.expect("schema");
    let saved = repo
        .insert(&account(1, Some("d@x.io")))
        .await
        .expect("insert");
    repo.update(&saved).await.expect("update");
    assert!(repo.delete(&saved.id).await.expect("delete"));

    // An explicit opt-out, and a read concern.
    let fast = MongoStore::connect(
        &db.config()
            .write_concern(
                WriteConcern::builder()
                    .w(Acknowledgment::Nodes(1))
                    .journal(false)
                    .build(),
            )
            .read_concern(ReadConcern::majority()),
    )
    .await
    .expect("connect");
    let wc = fast.write_concern().expect("set");
    assert_eq!(
        (wc.w.clone(), wc.journal),
        (Some(Acknowledgment::Nodes(1)), Some(false))
    );
    assert_eq!(
        fast.read_concern().map(|r| r.level.clone()),
        Some(ReadConcernLevel::Majority)
    );
    let repo = fast.repository::<Account>();
    repo.insert(&account(2, Some("e@x.io")))
        .await
        .expect("insert under w:1");
    assert!(
        repo.get(&Uuid::from_u128(2))
            .await
            .expect("majority read")
            .is_some()
    );

    // The URL's own concern wins over the default, not over the configuration.
    let sep = if db.url().contains('?') { '&' } else { '?' };
    let url = format!("{}{sep}w=1", db.url());
    let from_url = MongoStore::connect(&MongoConfig::new(url, db.name()))
        .await
        .expect("connect");
    assert_eq!(
        from_url.write_concern().and_then(|w| w.w.clone()),
        Some(Acknowledgment::Nodes(1))
    );
    db.cleanup().await.expect("cleanup");
}
