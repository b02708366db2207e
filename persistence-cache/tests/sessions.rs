//! The session store against the local Redis.
mod common;

use std::time::Duration;

use common::Levels;
use persistence_cache::sessions::SessionStore;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Data {
    role: String,
    n: u32,
}

fn data(n: u32) -> Data {
    Data {
        role: "admin".into(),
        n,
    }
}

async fn run(l1: bool) {
    let prefix = common::prefix("sess");
    let Some(layer) = common::layer(Levels::L2, &prefix) else {
        return;
    };
    let mut store = SessionStore::<Data>::new(&layer, "web").expect("store");
    if l1 {
        store = store.with_l1(Duration::from_secs(5), 1000);
    }
    let s1 = store
        .create("alice", data(1), Duration::from_secs(60))
        .await
        .expect("create");
    assert_eq!(s1.id.len(), 68);
    let got = store.get(&s1.id).await.expect("get").expect("live");
    assert_eq!((got.user.as_str(), &got.data), ("alice", &data(1)));
    assert!(got.expires_at > chrono::Utc::now());
    assert_eq!(store.get("nope").await.expect("get"), None);

    // Expired sessions are never returned.
    let short = store
        .create("bob", data(2), Duration::from_millis(100))
        .await
        .expect("create");
    assert!(store.get(&short.id).await.expect("get").is_some());
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(store.get(&short.id).await.expect("get"), None, "l1={l1}");

    // touch extends a live session, not a dead one.
    let t = store
        .create("bob", data(3), Duration::from_millis(150))
        .await
        .expect("create");
    assert!(
        store
            .touch(&t.id, Duration::from_secs(60))
            .await
            .expect("touch")
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(store.get(&t.id).await.expect("get").is_some(), "touched");
    assert!(
        !store
            .touch(&short.id, Duration::from_secs(60))
            .await
            .expect("touch")
    );

    // destroy and destroy_user
    let s2 = store
        .create("alice", data(4), Duration::from_secs(60))
        .await
        .expect("create");
    assert!(store.destroy(&s1.id).await.expect("destroy"));
    assert!(!store.destroy(&s1.id).await.expect("destroy"));
    assert_eq!(store.get(&s1.id).await.expect("get"), None);
    assert!(store.get(&s2.id).await.expect("get").is_some());
    let s3 = store
        .create("alice", data(5), Duration::from_secs(60))
        .await
        .expect("create");
    assert_eq!(store.destroy_user("alice").await.expect("destroy_user"), 2);
    assert_eq!(store.get(&s2.id).await.expect("get"), None, "l1={l1}");
    assert_eq!(store.get(&s3.id).await.expect("get"), None);
    assert!(
        store.get(&t.id).await.expect("get").is_some(),
        "other user kept"
    );
    assert_eq!(store.destroy_user("alice").await.expect("destroy_user"), 0);
    common::delete_keys(&common::redis_url().expect("url"), &prefix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_redis_only() {
    run(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_with_l1() {
    run(true).await;
}

#[tokio::test]
async fn sessions_need_l2() {
    let layer = persistence_cache::CacheLayer::builder()
        .build()
        .expect("layer");
    assert!(SessionStore::<Data>::new(&layer, "web").is_err());
}
