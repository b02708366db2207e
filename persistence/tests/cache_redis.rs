//! The manager's Redis side: `health()` asks Redis (a `PING` through the
//! pool, bounded by `failover.check_timeout`), and per-entity L1 / L2 TTLs
//! from YAML (`cache.entities.<name>.l1_ttl` / `l2_ttl`).

use std::time::{Duration, Instant};

use persistence::config::{ConfigLoader, PersistenceConfig};
use persistence::{Entity, ErrorKind, HealthState, Persistence, Repository};
use persistence_testing::TestRedis;
use persistence_testing::services::{Service, url};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(name = "rh_items")]
struct Item {
    #[entity(id)]
    id: i64,
    name: String,
}

fn config(yaml: &str) -> PersistenceConfig {
    ConfigLoader::new()
        .text("persistence.yaml", yaml)
        .env(Vec::new())
        .load()
        .expect("config")
}

fn load_err(yaml: &str) -> persistence::Error {
    ConfigLoader::new()
        .text("persistence.yaml", yaml)
        .env(Vec::new())
        .load()
        .and_then(Persistence::new)
        .expect_err("invalid")
}

/// A database name of this run's own (the cache prefix is
/// `persistence.<database>.default` for a memory database).
fn own_name(tag: &str) -> String {
    TestRedis::unique_prefix(tag)
}

/// A Redis nobody listens on is asked and reported down with the reason,
/// without a repository having used it; the real one is up. Port 1 on
/// loopback: nothing listens there.
#[tokio::test]
async fn health_asks_redis() {
    let Some(redis) = url(Service::Redis) else {
        return;
    };
    // `live` gets a generous check time-out: a check that answers in more
    // than half of it reads `Degraded`, and under CPU load a PING can.
    let p = Persistence::new(config(&format!(
        "databases:\n  main: {{ kind: memory }}\n  gone: {{ kind: redis, url: \"redis://127.0.0.1:1\", failover: {{ check_timeout: 300ms }} }}\n  live: {{ kind: redis, url: \"{redis}\", failover: {{ check_timeout: 10s }} }}\n"
    )))
    .expect("manager");
    let started = Instant::now();
    let report = p.health().await;
    assert!(started.elapsed() < Duration::from_secs(10), "bounded");
    let db = |name: &str| {
        report
            .databases
            .iter()
            .find(|d| d.name == name)
            .cloned()
            .expect(name)
    };
    let gone = db("gone");
    assert_eq!(gone.kind, "redis");
    assert_eq!(
        gone.state,
        HealthState::Unhealthy,
        "no cache falls back on it: {gone:?}"
    );
    let reason = gone.error.clone().unwrap_or_default();
    assert!(reason.starts_with("redis down: "), "{gone:?}");
    assert!(!reason.contains("redis://"), "no URL: {reason}");
    assert!(gone.since.is_some(), "{gone:?}");
    let live = db("live");
    assert_eq!(live.state, HealthState::Healthy, "{live:?}");
    assert!(live.error.is_none() && live.latency.is_some(), "{live:?}");
    assert_eq!(report.status, HealthState::Unhealthy, "{report:?}");
    p.shutdown().await;
}

/// Redis as cache L2: down → `Degraded` with the reason (the caches fall
/// back); up → `Healthy`, and the caches' own pools are asked too
/// (`l2_up` in `cache_status()` is set by the check).
#[tokio::test]
async fn health_of_a_cache_l2() {
    let Some(redis) = url(Service::Redis) else {
        return;
    };
    for (redis_url, up) in [("redis://127.0.0.1:1".to_string(), false), (redis, true)] {
        let main = own_name("h");
        let _cleanup = TestRedis::adopt(&redis_url, &format!("persistence.{main}.default"));
        // A check that answers in more than half its time-out reads
        // `Degraded`: the live server gets a generous one, since this test
        // checks the state and a loaded machine can be slow to answer.
        let check = if up { "10s" } else { "300ms" };
        let p = Persistence::new(config(&format!(
            "databases:\n  {main}: {{ kind: memory }}\n  cache: {{ kind: redis, url: \"{redis_url}\", failover: {{ check_timeout: {check} }} }}\ncache:\n  default: {{ ttl: 30s, l2: cache, backplane: false }}\n"
        )))
        .expect("manager");
        let items = p.repo_in::<Item>(&main).await.expect("repo");
        items
            .insert(&Item {
                id: 1,
                name: "a".into(),
            })
            .await
            .expect("insert");
        let report = p.health().await;
        let cache = report
            .databases
            .iter()
            .find(|d| d.name == "cache")
            .expect("cache");
        let layer = p.cache_status().into_iter().next().expect("one layer");
        if up {
            assert_eq!(cache.state, HealthState::Healthy, "{cache:?}");
            assert!(cache.pool.is_some_and(|p| p.max >= 1), "{cache:?}");
            assert_eq!(layer.status.l2_up, Some(true), "{layer:?}");
        } else {
            assert_eq!(cache.state, HealthState::Degraded, "{cache:?}");
            let reason = cache.error.as_deref().unwrap_or_default();
            assert!(
                reason.starts_with("redis down (caches serve from L1 and the database): "),
                "{cache:?}"
            );
            assert_eq!(layer.status.l2_up, Some(false), "{layer:?}");
        }
        p.shutdown().await;
    }
}

/// `l1_ttl: 200ms, l2_ttl: 5s`: the entry leaves L1 and is then served from
/// L2 (an L2 hit with no new load), and the TTLs and `l1_max_bytes` show in
/// `cache_status()`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn l1_and_l2_ttls_from_yaml() {
    let Some(redis) = url(Service::Redis) else {
        return;
    };
    let main = own_name("t");
    let _cleanup = TestRedis::adopt(&redis, &format!("persistence.{main}.default"));
    let p = Persistence::new(config(&format!(
        "databases:\n  {main}: {{ kind: memory }}\n  cache: {{ kind: redis, url: \"{redis}\" }}\ncache:\n  default: {{ ttl: 1m }}\n  entities:\n    rh_items: {{ ttl: 1m, l1_ttl: 200ms, l2_ttl: 5s, l1_max_bytes: 1048576, l2: cache, backplane: false }}\n"
    )))
    .expect("manager");
    let items = p.repo_in::<Item>(&main).await.expect("repo");
    items
        .insert(&Item {
            id: 1,
            name: "a".into(),
        })
        .await
        .expect("insert");
    assert!(items.get(&1).await.expect("get").is_some());
    let stats = || p.cache_stats(&main, "rh_items").expect("stats");
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut from_l2 = false;
    while !from_l2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let before = stats();
        assert!(items.get(&1).await.expect("get").is_some());
        let after = stats();
        from_l2 = after.l1_misses > before.l1_misses
            && after.l2_hits > before.l2_hits
            && after.loads == before.loads;
    }
    assert!(
        from_l2,
        "never served from L2 after leaving L1: {:?}",
        stats()
    );
    let status = p.cache_status();
    let entity = status
        .iter()
        .find_map(|s| s.entities.get("rh_items"))
        .expect("rh_items in the cache status");
    assert_eq!(entity.l1.and_then(|c| c.max_bytes), Some(1 << 20));
    let ttl = entity.ttl;
    assert_eq!(
        (ttl.ttl, ttl.l1_ttl, ttl.l2_ttl),
        (
            Duration::from_secs(60),
            Some(Duration::from_millis(200)),
            Some(Duration::from_secs(5))
        )
    );
    assert_eq!(ttl.l1(false), Duration::from_millis(200));
    assert_eq!(ttl.l2(false), Duration::from_secs(5));
    p.shutdown().await;
}

/// Zero TTLs are `Config` errors naming the key.
#[test]
fn ttl_errors_name_the_key() {
    for (policy, key) in [
        ("default: { l1_ttl: 0s }", "cache.default.l1_ttl"),
        (
            "entities: { rh_items: { l2_ttl: 0ms } }",
            "cache.entities.rh_items.l2_ttl",
        ),
        (
            "entities: { rh_items: { ttl: 0s, l1_ttl: 1s } }",
            "cache.entities.rh_items.ttl",
        ),
        (
            "entities: { rh_items: { negative_ttl: 0s } }",
            "cache.entities.rh_items.negative_ttl",
        ),
        (
            "entities: { rh_items: { l1_max_bytes: 0 } }",
            "cache.entities.rh_items.l1_max_bytes",
        ),
    ] {
        let err = load_err(&format!(
            "databases:\n  main: {{ kind: memory }}\ncache:\n  {policy}\n"
        ));
        assert_eq!(err.kind(), &ErrorKind::Config, "{err}");
        assert!(err.to_string().contains(key), "{key}: {err}");
    }
    let err = load_err(
        "databases:\n  main: { kind: memory }\ncache:\n  entities: { rh_items: { l1_ttl: soon } }\n",
    );
    assert_eq!(err.kind(), &ErrorKind::Config, "{err}");
    assert!(err.to_string().contains("l1_ttl"), "{err}");
}
