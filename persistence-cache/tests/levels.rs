//! Per-level settings of a layer: separate L1 / L2 TTLs, and asking L2
//! (`CacheLayer::ping_l2`) for health checks.

mod common;

use std::time::{Duration, Instant};

use common::{Levels, item};
use persistence_cache::{CacheLayer, EntityTtl, L1Config};
use persistence_core::{ErrorKind, MemoryRepository, Repository};

/// L1 200 ms, L2 5 s: the entry leaves L1 and is then served from L2 (an L2
/// hit with no load), whatever the jitter.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_leaves_l1_and_is_served_from_l2() {
    let prefix = common::prefix("levels");
    let ttls = EntityTtl::new(Duration::from_secs(60), Duration::from_secs(10))
        .with_l1_ttl(Duration::from_millis(200))
        .with_l2_ttl(Duration::from_secs(5));
    let Some(layer) = common::layer_with(Levels::Both, &prefix, |b| {
        b.entity_ttls("cache_items", ttls)
    }) else {
        return;
    };
    let mem = MemoryRepository::new();
    let repo = layer.wrap(mem.clone());
    mem.insert(&item(1, "a", 1)).await.expect("insert");
    assert!(repo.get(&1).await.expect("get").is_some());
    assert_eq!(repo.stats().loads, 1);
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut from_l2 = false;
    while !from_l2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let before = repo.stats();
        assert!(repo.get(&1).await.expect("get").is_some());
        let after = repo.stats();
        from_l2 = after.l1_misses > before.l1_misses
            && after.l2_hits > before.l2_hits
            && after.loads == before.loads;
    }
    assert!(from_l2, "never served from L2: {:?}", repo.stats());
    if let Some(url) = common::redis_url() {
        common::delete_keys(&url, &prefix).await;
    }
}

/// Each level defaults to `ttl`; a "not found" lives `negative_ttl`, capped
/// by the level's own TTL.
#[test]
fn level_ttls_default_to_ttl() {
    let s = Duration::from_secs;
    let t = EntityTtl::new(s(60), s(10));
    assert_eq!((t.l1(false), t.l2(false)), (s(60), s(60)));
    assert_eq!((t.l1(true), t.l2(true)), (s(10), s(10)));
    let t = t.with_l1_ttl(s(2)).with_l2_ttl(s(600));
    assert_eq!((t.l1(false), t.l2(false)), (s(2), s(600)));
    assert_eq!((t.l1(true), t.l2(true)), (s(2), s(10)));
}

/// A zero TTL at either level is a `Config` error naming it.
#[test]
fn zero_level_ttls_are_rejected() {
    let ok = EntityTtl::new(Duration::from_secs(1), Duration::from_secs(1));
    for (ttls, key) in [
        (ok.with_l1_ttl(Duration::ZERO), "l1_ttl"),
        (ok.with_l2_ttl(Duration::ZERO), "l2_ttl"),
    ] {
        let err = CacheLayer::builder()
            .entity_ttls("cache_items", ttls)
            .build()
            .expect_err("zero");
        assert_eq!(err.kind(), &ErrorKind::Config);
        assert!(
            err.to_string().contains(key) && err.to_string().contains("cache_items"),
            "{err}"
        );
    }
    let err = CacheLayer::builder()
        .l2_ttl(Duration::ZERO)
        .build()
        .expect_err("zero default");
    assert!(err.to_string().contains("l2_ttl"), "{err}");
}

/// `ping_l2` asks Redis through the layer's pool: an error with the reason
/// (and `l2_up` false) when nothing listens, the round trip when it answers,
/// `None` without L2.
#[tokio::test]
async fn ping_l2_asks_redis() {
    let Some(url) = common::redis_url() else {
        return;
    };
    let l1_only = CacheLayer::builder().build().expect("layer");
    assert!(l1_only.ping_l2().await.is_none());

    let dead = CacheLayer::builder()
        .prefix(common::prefix("pingdead"))
        .redis_url("redis://127.0.0.1:1")
        .build()
        .expect("layer");
    let err = dead.ping_l2().await.expect("has L2").expect_err("port 1");
    assert!(err.is_retryable(), "{err}");
    assert!(err.to_string().contains("redis"), "{err}");
    assert_eq!(dead.status().l2_up, Some(false));

    let live = CacheLayer::builder()
        .prefix(common::prefix("pinglive"))
        .redis_url(url)
        .build()
        .expect("layer");
    live.ping_l2().await.expect("has L2").expect("PONG");
    assert_eq!(live.status().l2_up, Some(true));
}

/// `max_bytes`: L1 weighs entries by encoded size, so 50 entities of ~1 KB
/// overflow an 8 KiB L1 (evictions), while the same reads fit in the default
/// 10 000-unit L1 (none).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn l1_capacity_in_bytes() {
    let big = "x".repeat(1000);
    let bytes = L1Config {
        max_bytes: Some(8 * 1024),
        ..L1Config::default()
    };
    for (layer, evicts) in [
        (
            CacheLayer::builder()
                .prefix(common::prefix("bytes"))
                .entity_l1("cache_items", bytes)
                .build()
                .expect("layer"),
            true,
        ),
        (
            CacheLayer::builder()
                .prefix(common::prefix("units"))
                .build()
                .expect("layer"),
            false,
        ),
    ] {
        assert_eq!(
            layer.entity_l1("cache_items").and_then(|c| c.max_bytes),
            evicts.then_some(8 * 1024)
        );
        let mem = MemoryRepository::new();
        let repo = layer.wrap(mem.clone());
        for id in 0..50 {
            mem.insert(&item(id, &big, id)).await.expect("insert");
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            for id in 0..50 {
                assert!(repo.get(&id).await.expect("get").is_some());
            }
            if !evicts || repo.stats().evictions > 0 || Instant::now() > deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(repo.stats().evictions > 0, evicts, "{:?}", repo.stats());
    }
}

/// A zero capacity, or per-entity L1 settings on a layer without L1, are
/// `Config` errors.
#[test]
fn l1_capacity_errors() {
    let zero = L1Config {
        max_bytes: Some(0),
        ..L1Config::default()
    };
    let err = CacheLayer::builder()
        .entity_l1("cache_items", zero)
        .build()
        .expect_err("zero");
    assert!(err.to_string().contains("cache_items"), "{err}");
    let err = CacheLayer::builder()
        .redis_url("redis://127.0.0.1:1")
        .without_l1()
        .entity_l1("cache_items", L1Config::default())
        .build()
        .expect_err("no L1");
    assert_eq!(err.kind(), &ErrorKind::Config);
}
