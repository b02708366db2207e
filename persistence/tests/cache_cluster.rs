//! A Redis Cluster as the cache L2 from YAML (`kind: redis`, `cluster:
//! [...]`): config validation naming the key, the cache working over the
//! cluster (`REDIS_CLUSTER_URL`; with `CI=true` a missing cluster fails), and
//! `health()` asking every primary.

use persistence::config::{ConfigLoader, PersistenceConfig};
use persistence::{Entity, ErrorKind, HealthState, Persistence, Repository};
use persistence_testing::{TestRedis, TestRedisCluster};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(name = "rc_items")]
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

fn error(yaml: &str) -> String {
    let err = load(yaml).expect_err("config error");
    assert_eq!(err.kind(), &ErrorKind::Config, "{err}");
    err.to_string()
}

#[test]
fn cluster_settings_are_checked_with_the_key() {
    let msg = error("databases:\n  c: { kind: postgres, cluster: [\"redis://h:7000\"] }\n");
    assert!(
        msg.contains("databases.c.cluster applies to kind redis only"),
        "{msg}"
    );
    let msg = error(
        "databases:\n  c: { kind: redis, url: \"redis://h:6379\", cluster: [\"redis://h:7000\"] }\n",
    );
    assert!(
        msg.contains("databases.c: set url") && msg.contains("not both"),
        "{msg}"
    );
    let msg = error("databases:\n  c: { kind: redis, cluster: [\"http://u:pw@h:7000\"] }\n");
    assert!(msg.contains("databases.c.cluster[0]"), "{msg}");
    assert!(!msg.contains(":pw@"), "no secret: {msg}");
    let msg = error(
        "databases:\n  c: { kind: redis, cluster: [\"redis://h:7000\", \"rediss://h:7001\"] }\n",
    );
    assert!(
        msg.contains("databases.c.cluster[1]") && msg.contains("same scheme"),
        "{msg}"
    );
    let msg = error("databases:\n  c: { kind: redis, cluster: [] }\n");
    assert!(msg.contains("databases.c.url is required"), "{msg}");
    let msg = error(
        "databases:\n  c: { kind: redis, cluster: [\"redis://h:7000\"], tls: { mode: verify-full } }\n",
    );
    assert!(
        msg.contains("databases.c.tls needs a rediss:// url"),
        "{msg}"
    );
    let ok = load(
        "databases:\n  c: { kind: redis, cluster: [\"redis://:s3cret@h:7000\", \"redis://:s3cret@h:7001\"] }\n",
    )
    .expect("valid");
    let shown = ok.describe();
    assert!(shown.contains("c: redis cluster ["), "{shown}");
    assert!(
        !shown.contains("s3cret") && !format!("{ok:?}").contains("s3cret"),
        "{shown}"
    );
}

fn yaml(main: &str, nodes: &[String]) -> String {
    let list: Vec<String> = nodes.iter().map(|n| format!("\"{n}\"")).collect();
    format!(
        "databases:\n  {main}: {{ kind: memory }}\n  cache: {{ kind: redis, cluster: [{}], failover: {{ check_timeout: 2s }} }}\ncache:\n  default: {{ ttl: 1m, l2: cache, backplane: true }}\n",
        list.join(", ")
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_serves_as_the_cache_l2() {
    let Some(cluster) = TestRedisCluster::from_env("rc") else {
        return;
    };
    let nodes = cluster.nodes().to_vec();
    let main = TestRedis::unique_prefix("rc");
    let prefix = format!("persistence.{main}.default");
    let _cleanup: Vec<TestRedis> = nodes.iter().map(|n| TestRedis::adopt(n, &prefix)).collect();
    let p = Persistence::new(load(&yaml(&main, &nodes)).expect("config")).expect("manager");
    let items = p.repo_in::<Item>(&main).await.expect("repo");
    let a = Item {
        id: 1,
        name: "a".into(),
    };
    items.insert(&a).await.expect("insert");
    assert_eq!(items.get(&1).await.expect("get"), Some(a.clone()));
    let stats = p.cache_stats(&main, "rc_items").expect("stats");
    // The insert wrote the row through (a script on the cluster), so the
    // read is a hit and nothing is loaded.
    assert_eq!(
        (stats.write_throughs, stats.loads, stats.l2_errors),
        (1, 0, 0),
        "{stats:?}"
    );

    let report = p.health().await;
    let cache = report
        .databases
        .iter()
        .find(|d| d.name == "cache")
        .expect("cache");
    assert_eq!(cache.state, HealthState::Healthy, "{cache:?}");
    let layer = p.cache_status().into_iter().next().expect("one layer");
    assert_eq!(layer.status.l2_up, Some(true), "{layer:?}");

    // Another instance (its memory database empty) finds the entity in L2.
    let q = Persistence::new(load(&yaml(&main, &nodes)).expect("config")).expect("manager");
    let other = q.repo_in::<Item>(&main).await.expect("repo");
    assert_eq!(other.get(&1).await.expect("get"), Some(a));
    let stats = q.cache_stats(&main, "rc_items").expect("stats");
    assert_eq!((stats.l2_hits, stats.loads), (1, 0), "{stats:?}");
    q.shutdown().await;
    p.shutdown().await;

    // A dead cluster: down, and the cache falls back (degraded).
    let p =
        Persistence::new(load(&yaml(&main, &["redis://127.0.0.1:1".to_string()])).expect("config"))
            .expect("manager");
    let items = p.repo_in::<Item>(&main).await.expect("repo");
    assert_eq!(items.get(&1).await.expect("no L2 is no error"), None);
    let report = p.health().await;
    let cache = report
        .databases
        .iter()
        .find(|d| d.name == "cache")
        .expect("cache");
    assert_eq!(cache.state, HealthState::Degraded, "{cache:?}");
    p.shutdown().await;
}
