//! Tagged values: get_or_load_tagged / invalidate_tag across L1 and L2.
mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use common::Levels;
use persistence_cache::CacheLayer;
use tokio::sync::Notify;

fn levels() -> Vec<Levels> {
    let mut v = vec![Levels::L1];
    if common::redis_url().is_some() {
        v.push(Levels::L2);
        v.push(Levels::Both);
    }
    v
}

async fn load(
    layer: &CacheLayer,
    key: &str,
    tags: &[&str],
    calls: &Arc<AtomicU64>,
    value: &str,
) -> String {
    let calls = calls.clone();
    let value = value.to_string();
    layer
        .get_or_load_tagged(key, tags, move || async move {
            calls.fetch_add(1, Ordering::SeqCst);
            Ok(value)
        })
        .await
        .expect("tagged")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalidate_tag_removes_everything_tagged() {
    for lv in levels() {
        let prefix = common::prefix("tags");
        let layer = common::layer(lv, &prefix).expect("layer");
        let calls = Arc::new(AtomicU64::new(0));
        assert_eq!(
            load(&layer, "u1/profile", &["user:1", "profiles"], &calls, "p1").await,
            "p1"
        );
        assert_eq!(
            load(&layer, "u2/profile", &["user:2", "profiles"], &calls, "p2").await,
            "p2"
        );
        assert_eq!(
            load(&layer, "u1/orders", &["user:1"], &calls, "o1").await,
            "o1"
        );
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        assert_eq!(
            load(&layer, "u1/profile", &["user:1", "profiles"], &calls, "x").await,
            "p1"
        );
        assert_eq!(calls.load(Ordering::SeqCst), 3, "{lv:?}: hit");

        let removed = layer.invalidate_tag("user:1").await;
        if lv != Levels::L1 {
            assert_eq!(removed, 2, "{lv:?}: exactly the tagged L2 entries");
        }
        assert_eq!(
            load(&layer, "u1/profile", &["user:1", "profiles"], &calls, "p1b").await,
            "p1b"
        );
        assert_eq!(
            load(&layer, "u1/orders", &["user:1"], &calls, "o1b").await,
            "o1b"
        );
        assert_eq!(
            load(&layer, "u2/profile", &["user:2", "profiles"], &calls, "x").await,
            "p2"
        );
        assert_eq!(
            calls.load(Ordering::SeqCst),
            5,
            "{lv:?}: untagged entry kept"
        );

        layer.invalidate_tag("profiles").await;
        assert_eq!(
            load(&layer, "u2/profile", &["user:2", "profiles"], &calls, "p2b").await,
            "p2b"
        );
        assert_eq!(
            load(&layer, "u1/orders", &["user:1"], &calls, "x").await,
            "o1b"
        );

        if lv != Levels::L1 {
            // A second process (fresh layer, same prefix) sees L2, and the invalidation.
            let other = common::layer(lv, &prefix).expect("layer");
            let calls2 = Arc::new(AtomicU64::new(0));
            assert_eq!(
                load(&other, "u1/orders", &["user:1"], &calls2, "x").await,
                "o1b"
            );
            assert_eq!(calls2.load(Ordering::SeqCst), 0, "served from L2");
            if lv == Levels::L2 {
                // (With L1 in `other`, only the backplane would reach it.)
                layer.invalidate_tag("user:1").await;
                assert_eq!(
                    load(&other, "u1/orders", &["user:1"], &calls2, "o1c").await,
                    "o1c"
                );
            }
            common::delete_keys(&common::redis_url().expect("url"), &prefix).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tagged_load_racing_invalidation_is_not_cached() {
    for lv in levels() {
        let prefix = common::prefix("tagrace");
        let layer = common::layer(lv, &prefix).expect("layer");
        let entered = Arc::new(Notify::new());
        let release = Arc::new(Notify::new());
        let (e2, r2) = (entered.clone(), release.clone());
        let l2 = layer.clone();
        let pending = tokio::spawn(async move {
            l2.get_or_load_tagged("k", &["t"], move || async move {
                let v = "old".to_string(); // read before the invalidation
                e2.notify_one();
                r2.notified().await;
                Ok(v)
            })
            .await
        });
        entered.notified().await;
        layer.invalidate_tag("t").await;
        release.notify_one();
        assert_eq!(pending.await.expect("join").expect("load"), "old");
        let calls = Arc::new(AtomicU64::new(0));
        assert_eq!(
            load(&layer, "k", &["t"], &calls, "new").await,
            "new",
            "{lv:?}"
        );
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert!(layer.tagged_stats().stale_sets_prevented >= 1);
        if let Some(url) = common::redis_url() {
            common::delete_keys(&url, &prefix).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_tagged_misses_load_once() {
    let prefix = common::prefix("tagflight");
    let layer = common::layer(Levels::L1, &prefix).expect("layer");
    let calls = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..200 {
        let (layer, calls) = (layer.clone(), calls.clone());
        tasks.push(tokio::spawn(async move {
            load(&layer, "hot", &["t"], &calls, "v").await
        }));
    }
    for t in tasks {
        assert_eq!(t.await.expect("join"), "v");
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}
