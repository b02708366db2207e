//! The cache read policy from YAML (`cache.*.fail_safe`, `soft_timeout`,
//! `hard_timeout`, `eager_refresh`): parsed, validated with errors naming
//! the key, handed to the cached repositories (`cache_status()` shows it),
//! and, through every layer the manager builds (timeout, retry, circuit
//! breaker), a PostgreSQL outage answered from stale values.

use std::time::Duration;

use persistence::cache::{FailSafe, ReadPolicy};
use persistence::config::{ConfigLoader, PersistenceConfig};
use persistence::{Entity, ErrorKind, Persistence, Repository};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(name = "fs_items")]
struct Item {
    #[entity(id)]
    id: i64,
    name: String,
}

fn load(yaml: &str) -> persistence::Result<PersistenceConfig> {
    ConfigLoader::new()
        .text("persistence.yaml", yaml)
        .env(Vec::new())
        .load()
}

#[tokio::test]
async fn read_policy_flows_from_yaml_to_the_cached_repository() {
    let config = load(
        "databases:\n  main: { kind: memory }\ncache:\n  default: { ttl: 1m }\n  entities:\n    fs_items: { ttl: 1m, fail_safe: { max_age: 1h, throttle: 5s }, soft_timeout: 100ms, hard_timeout: 2s, eager_refresh: 0.8 }\n",
    )
    .expect("config");
    let policy = config.cache_policy("fs_items").read_policy();
    let want = ReadPolicy::default()
        .fail_safe(FailSafe::new(Duration::from_secs(3600)).with_throttle(Duration::from_secs(5)))
        .soft_timeout(Duration::from_millis(100))
        .hard_timeout(Duration::from_secs(2))
        .eager_refresh(0.8);
    assert_eq!(policy, want);
    // Off unless configured; the throttle has its default.
    assert_eq!(
        config.cache_policy("other").read_policy(),
        ReadPolicy::default()
    );
    let short = load("databases:\n  main: { kind: memory }\ncache:\n  default: { fail_safe: { max_age: 10m } }\n")
        .expect("config");
    let fs = short
        .cache_policy("x")
        .read_policy()
        .fail_safe
        .expect("fail-safe");
    assert_eq!(fs.throttle, Duration::from_secs(30));

    let p = Persistence::new(config).expect("manager");
    let items = p.repo::<Item>().await.expect("repo");
    items
        .insert(&Item {
            id: 1,
            name: "a".into(),
        })
        .await
        .expect("insert");
    assert!(items.get(&1).await.expect("get").is_some());
    let status = p.cache_status();
    let entity = status
        .iter()
        .find_map(|s| s.entities.get("fs_items"))
        .expect("fs_items in the cache status");
    assert_eq!(entity.read, want);
    p.shutdown().await;
}

#[test]
fn read_policy_errors_name_the_key() {
    for (policy, key) in [
        (
            "default: { fail_safe: { max_age: 0s } }",
            "cache.default.fail_safe.max_age",
        ),
        (
            "entities: { fs_items: { fail_safe: { max_age: 1m, throttle: 0s } } }",
            "cache.entities.fs_items.fail_safe.throttle",
        ),
        (
            "default: { soft_timeout: 1s }",
            "cache.default.soft_timeout needs fail_safe",
        ),
        (
            "default: { fail_safe: { max_age: 1m }, soft_timeout: 2s, hard_timeout: 1s }",
            "cache.default.soft_timeout must be shorter than hard_timeout",
        ),
        (
            "default: { hard_timeout: 0s }",
            "cache.default.hard_timeout",
        ),
        (
            "entities: { fs_items: { eager_refresh: 1.5 } }",
            "cache.entities.fs_items.eager_refresh",
        ),
        (
            "default: { eager_refresh: 0 }",
            "cache.default.eager_refresh",
        ),
        (
            "default: { fail_safe: { max_age: 1m, retries: 3 } }",
            "retries",
        ),
        ("default: { fail_safe: { throttle: 1s } }", "max_age"),
    ] {
        let err = load(&format!(
            "databases:\n  main: {{ kind: memory }}\ncache:\n  {policy}\n"
        ))
        .and_then(Persistence::new)
        .expect_err("invalid");
        assert_eq!(err.kind(), &ErrorKind::Config, "{err}");
        assert!(err.to_string().contains(key), "{key}: {err}");
    }
}

/// A PostgreSQL cluster of the test's own is killed under a manager whose
/// cache policy has a fail-safe: reads keep answering, and the counters say
/// they were stale. With `failure_threshold: 2` the breaker opens after the
/// first failed loads; its fail-fast `Unavailable` is masked like the pool's.
#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_outage_is_answered_from_stale_through_the_manager() {
    use persistence_testing::local::{LocalPg, or_skip};
    let pg = tokio::task::spawn_blocking(LocalPg::start)
        .await
        .expect("task");
    let Some(pg) = or_skip("PostgreSQL outage under the manager's cache", pg) else {
        return;
    };
    let url = LocalPg::url_at(pg.port());
    let config = load(&format!(
        "databases:\n  main: {{ kind: postgres, url: \"{url}\", schema: fs_test, pool: {{ max_connections: 4, acquire_timeout: 1s }}, retry: {{ max_attempts: 1, base_delay: 10ms, max_delay: 10ms }}, breaker: {{ failure_threshold: 2, open_for: 60s }} }}\ncache:\n  default: {{ ttl: 100ms, fail_safe: {{ max_age: 10m, throttle: 100ms }} }}\n"
    ))
    .expect("config");
    let p = Persistence::new(config).expect("manager");
    let items = p.repo::<Item>().await.expect("repo");
    for id in 1..=3 {
        items
            .insert(&Item {
                id,
                name: format!("n{id}"),
            })
            .await
            .expect("insert");
        assert!(items.get(&id).await.expect("get").is_some());
    }
    let pg = std::sync::Arc::new(pg);
    let p2 = pg.clone();
    tokio::task::spawn_blocking(move || p2.kill9())
        .await
        .expect("kill");
    tokio::time::sleep(Duration::from_millis(200)).await;
    for round in 0..20 {
        for id in 1..=3 {
            let got = items
                .get(&id)
                .await
                .unwrap_or_else(|e| panic!("round {round}, id {id}: {e}"));
            assert_eq!(got.map(|i| i.name), Some(format!("n{id}")));
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    let stats = p.cache_stats("main", "fs_items").expect("stats");
    assert!(stats.stale_served >= 60, "{stats:?}");
    assert!(stats.load_errors >= 3, "{stats:?}");
    p.shutdown().await;
}

/// `lease` (cross-process stampede protection): `true`, `{ ttl }` or
/// `false`, off by default, needs `l2`; errors name the key. (The config
/// names a Redis database, which needs the `redis` feature.)
#[cfg(feature = "redis")]
#[test]
fn lease_from_yaml() {
    use persistence::cache::Lease;
    let with = |policy: &str| {
        load(&format!(
            "databases:\n  main: {{ kind: memory }}\n  cache: {{ kind: redis, url: \"redis://127.0.0.1:6379\" }}\ncache:\n  {policy}\n"
        ))
    };
    let config = with(
        "default: { l2: cache, lease: true }\n  entities:\n    a: { l2: cache, lease: { ttl: 2s } }\n    b: { l2: cache, lease: false }\n    c: { l2: cache, lease: {} }",
    )
    .expect("config");
    assert_eq!(
        config.cache_policy("x").read_policy().lease,
        Some(Lease::default())
    );
    assert_eq!(
        config.cache_policy("a").read_policy().lease,
        Some(Lease::with_ttl(Duration::from_secs(2)))
    );
    assert_eq!(config.cache_policy("b").read_policy().lease, None);
    assert_eq!(
        config.cache_policy("c").read_policy().lease,
        Some(Lease::default())
    );
    assert_eq!(Lease::default().ttl, Duration::from_secs(3));
    let capped = with("default: { l2: cache, lease: true, hard_timeout: 1s }").expect("config");
    assert_eq!(
        capped.cache_policy("x").read_policy().lease_ttl(),
        Some(Duration::from_secs(1))
    );
    Persistence::new(config).expect("valid");
    for (policy, key) in [
        (
            "default: { lease: true }",
            "cache.default.lease is on but cache.default.l2 is not set",
        ),
        (
            "entities: { a: { lease: { ttl: 2s } } }",
            "cache.entities.a.lease is on but cache.entities.a.l2",
        ),
        (
            "default: { l2: cache, lease: { ttl: 0s } }",
            "cache.default.lease.ttl",
        ),
        (
            "default: { l2: cache, lease: { ttl: 2s, wait: 1s } }",
            "lease",
        ),
        ("default: { l2: cache, lease: 5 }", "lease"),
    ] {
        let err = with(policy)
            .and_then(Persistence::new)
            .expect_err("invalid");
        assert_eq!(err.kind(), &ErrorKind::Config, "{err}");
        assert!(err.to_string().contains(key), "{key}: {err}");
    }
}
