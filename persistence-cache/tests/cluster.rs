//! Tags, sessions and the backplane on a Redis Cluster (`REDIS_CLUSTER_URL`,
//! comma-separated node URLs; `scripts/services up` starts a local one; with
//! `CI=true` a missing cluster fails these tests), plus the on-demand
//! benchmark of an L2 hit against a bare cluster `GET`.
mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{Item, Levels, item, until};
use persistence_cache::sessions::SessionStore;
use persistence_cache::{CacheLayer, CachedRepository};
use persistence_core::{MemoryRepository, Repository};
use persistence_testing::TestRedisCluster;
use persistence_testing::bench::process_cpu;

type Repo = CachedRepository<Item, MemoryRepository<Item>>;

async fn tagged(layer: &CacheLayer, key: &str, tags: &[&str], calls: &Arc<AtomicU64>) -> String {
    let calls = calls.clone();
    let value = format!("{key}@{}", calls.load(Ordering::SeqCst));
    layer
        .get_or_load_tagged(key, tags, move || async move {
            calls.fetch_add(1, Ordering::SeqCst);
            Ok(value)
        })
        .await
        .expect("tagged")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tags_invalidate_across_slots() {
    let Some(cluster) = TestRedisCluster::from_env("ctags") else {
        return;
    };
    // Two L2-only instances: what one stores the other reads.
    let a = common::cluster_layer(Levels::L2, &cluster, |b| b);
    let b = common::cluster_layer(Levels::L2, &cluster, |b| b);
    let calls = Arc::new(AtomicU64::new(0));
    // Many keys and tags: values and tag sets spread over the three nodes.
    let keys: Vec<String> = (0..30).map(|i| format!("k{i}")).collect();
    let tags_of = |i: usize| vec![format!("t{}", i % 5), format!("u{}", i % 7), "all".into()];
    let mut first = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        let tags = tags_of(i);
        let refs: Vec<&str> = tags.iter().map(String::as_str).collect();
        first.push(tagged(&a, k, &refs, &calls).await);
    }
    assert_eq!(calls.load(Ordering::SeqCst), 30);
    for (i, k) in keys.iter().enumerate() {
        let tags = tags_of(i);
        let refs: Vec<&str> = tags.iter().map(String::as_str).collect();
        assert_eq!(
            tagged(&b, k, &refs, &calls).await,
            first[i],
            "L2 hit of {k}"
        );
    }
    assert_eq!(
        calls.load(Ordering::SeqCst),
        30,
        "b read a's values from L2"
    );
    assert_eq!(b.tagged_stats().l2_hits, 30);

    // One tag: exactly its values reload, in every instance.
    assert_eq!(a.invalidate_tag("t0").await, 6);
    for (i, k) in keys.iter().enumerate() {
        let tags = tags_of(i);
        let refs: Vec<&str> = tags.iter().map(String::as_str).collect();
        let v = tagged(&b, k, &refs, &calls).await;
        assert_eq!(v == first[i], i % 5 != 0, "{k}");
    }
    assert_eq!(calls.load(Ordering::SeqCst), 36);
    // The tag every value carries: all reload.
    assert_eq!(b.invalidate_tag("all").await, 30);
    for (i, k) in keys.iter().enumerate() {
        let tags = tags_of(i);
        let refs: Vec<&str> = tags.iter().map(String::as_str).collect();
        tagged(&a, k, &refs, &calls).await;
    }
    assert_eq!(calls.load(Ordering::SeqCst), 66);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_destroy_every_session_of_a_user() {
    let Some(cluster) = TestRedisCluster::from_env("csess") else {
        return;
    };
    let layer = common::cluster_layer(Levels::L2, &cluster, |b| b);
    let store = SessionStore::<u32>::new(&layer, "web").expect("store");
    let other =
        SessionStore::<u32>::new(&common::cluster_layer(Levels::L2, &cluster, |b| b), "web")
            .expect("store");
    let ttl = Duration::from_secs(60);
    let mut alice = Vec::new();
    for n in 0..5 {
        alice.push(store.create("alice", n, ttl).await.expect("create"));
    }
    let bob = store.create("bob", 9, ttl).await.expect("create");
    for s in &alice {
        let got = other.get(&s.id).await.expect("get").expect("live");
        assert_eq!((got.user.as_str(), got.data), ("alice", s.data));
    }
    assert!(other.touch(&bob.id, ttl).await.expect("touch"));
    assert_eq!(other.destroy_user("alice").await.expect("destroy_user"), 5);
    for s in &alice {
        assert_eq!(store.get(&s.id).await.expect("get"), None);
    }
    assert_eq!(
        store.get(&bob.id).await.expect("get").map(|s| s.data),
        Some(9)
    );
    assert!(store.destroy(&bob.id).await.expect("destroy"));
    assert_eq!(other.get(&bob.id).await.expect("get"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn backplane_invalidates_other_instances_l1() {
    let Some(cluster) = TestRedisCluster::from_env("cbp") else {
        return;
    };
    let instance = || common::cluster_layer(Levels::Both, &cluster, |b| b.backplane(true));
    let (la, lb) = (instance(), instance());
    until(async || la.backplane_connected() && lb.backplane_connected()).await;
    let mem = MemoryRepository::<Item>::new();
    let a: Repo = la.wrap(mem.clone());
    let b: Repo = lb.wrap(mem.clone());
    for id in 1..=20 {
        a.insert(&item(id, "v1", id)).await.expect("insert");
    }
    // b caches every entity in its L1 (once the inserts' messages are in).
    until(async || {
        for id in 1..=20 {
            b.get(&id).await.expect("get");
        }
        b.stats().l1_hits >= 20
    })
    .await;
    for id in 1..=20 {
        let cur = b.get(&id).await.expect("get").expect("found");
        let mut next = cur.clone();
        next.name = "v2".into();
        a.update(&next).await.expect("update");
    }
    // Every update reaches b's L1 through the cluster's pub/sub.
    until(async || {
        let mut all = true;
        for id in 1..=20 {
            all &= b
                .get(&id)
                .await
                .expect("get")
                .is_some_and(|e| e.name == "v2");
        }
        all
    })
    .await;
}

/// On demand (a measurement, not a check): `cargo nextest run
/// --cargo-profile bench -p persistence-cache --all-features --test cluster
/// --run-ignored only --no-capture`.
/// An L2 hit (`get` of a cached entity, L2-only layer: one round trip
/// fetching the entry and its two tokens, decode) against a bare cluster
/// `GET` of the same bytes, side by side, sequential round trips. Goal: at
/// most 1.2x. Two baselines: the cluster client with the driver's defaults
/// (no time-out), and the same client built as the layer builds its own
/// (connection and response time-out = the L2 time-out, 250 ms): the
/// like-for-like one, since a response time-out costs the driver two
/// timers per request whoever sends it, and a service would not run
/// without one. Also the driver's own cost of the layer's round trip (the
/// three keys fetched bare, as a pipeline of `GET`s and as one `MGET`
/// routed to their slot), and the CPU time per operation of the whole
/// process (wall-clock medians swing with the machine's load, CPU time
/// much less).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run on demand"]
async fn bench_l2_hit_vs_bare_cluster_get() {
    bench_l2_hit(true).await;
}

/// The same on a single-threaded runtime: no thread waits spinning for
/// another, so the process CPU time per operation is the client's own
/// work (the driver's, and the layer's on top of it), whatever the load.
#[tokio::test(flavor = "current_thread")]
#[ignore = "benchmark: run on demand"]
async fn bench_l2_hit_cpu_single_thread() {
    bench_l2_hit(true).await;
}

/// `n` sequential `GET`s of `key`: each one's time, and the process CPU
/// time per `GET`.
async fn timed_gets(
    conn: &mut redis::cluster_async::ClusterConnection,
    key: &str,
    n: usize,
) -> (Vec<Duration>, Option<Duration>) {
    use redis::AsyncCommands as _;
    let mut times = Vec::with_capacity(n);
    let cpu = process_cpu();
    for _ in 0..n {
        let t = Instant::now();
        let v: Option<Vec<u8>> = conn.get(key).await.expect("get");
        times.push(t.elapsed());
        assert!(v.is_some());
    }
    let cpu = process_cpu().zip(cpu).map(|(b, a)| (b - a) / n as u32);
    (times, cpu)
}

async fn bench_l2_hit(one_server_too: bool) {
    use redis::AsyncCommands as _;
    use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
    let Some(cluster) = TestRedisCluster::from_env("cbench") else {
        return;
    };
    let layer = common::cluster_layer(Levels::L2, &cluster, |b| b);
    let repo: Repo = layer.wrap(MemoryRepository::new());
    repo.insert(&item(1, "bench", 1)).await.expect("insert");
    repo.get(&1).await.expect("warm");
    let client = redis::cluster::ClusterClient::new(cluster.nodes().to_vec()).expect("client");
    let mut raw = client.get_async_connection().await.expect("connect");
    // What `persistence_cache::RedisEndpoint::connect` builds: the layer's default L2 time-out.
    let bound = Duration::from_millis(250);
    let timed = redis::cluster::ClusterClientBuilder::new(cluster.nodes().to_vec())
        .connection_timeout(bound)
        .response_timeout(bound)
        .build()
        .expect("client");
    let mut timed = timed.get_async_connection().await.expect("connect");
    let key = format!("{}:bench", cluster.prefix());
    let () = raw.set(&key, vec![7u8; 64]).await.expect("set");
    // The keys an L2 hit reads: the entry and the entity type's tokens.
    let p = cluster.prefix();
    let base = format!(
        "{p}:{{{p}:{}:{}}}",
        <Item as persistence_core::Entity>::meta().name,
        <Item as persistence_core::Entity>::meta().schema_version
    );
    let keys = [
        format!("{base}:1"),
        format!("{base}:!gen"),
        format!("{base}:!epoch"),
    ];
    let route = RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(Route::with_key(
        &keys[0],
        SlotAddr::Master,
    )));
    const N: usize = 5_000;
    // Per-operation medians (robust to a loaded machine), rounds alternating.
    let median = |mut v: Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let (mut ratios, mut like_ratios) = (Vec::new(), Vec::new());
    for round in 0..3 {
        let (bare, bare_cpu) = timed_gets(&mut raw, &key, N).await;
        let (like, like_cpu) = timed_gets(&mut timed, &key, N).await;
        let mut piped = Vec::with_capacity(N);
        let cpu = process_cpu();
        for _ in 0..N {
            let mut pipe = redis::pipe();
            for k in &keys {
                pipe.cmd("GET").arg(k);
            }
            let t = Instant::now();
            let v: Vec<Option<Vec<u8>>> = pipe.query_async(&mut raw).await.expect("pipeline");
            piped.push(t.elapsed());
            assert!(v[0].is_some());
        }
        let piped_cpu = process_cpu().zip(cpu).map(|(b, a)| (b - a) / N as u32);
        let mut mget = Vec::with_capacity(N);
        for _ in 0..N {
            let mut cmd = redis::cmd("MGET");
            cmd.arg(&keys[..]);
            let t = Instant::now();
            let v = raw.route_command(cmd, route.clone()).await.expect("mget");
            mget.push(t.elapsed());
            assert!(matches!(v, redis::Value::Array(ref a) if a.len() == 3));
        }
        let mut cached = Vec::with_capacity(N);
        let cpu = process_cpu();
        for _ in 0..N {
            let t = Instant::now();
            let v = repo.get(&1).await.expect("get");
            cached.push(t.elapsed());
            assert!(v.is_some());
        }
        let cached_cpu = process_cpu().zip(cpu).map(|(b, a)| (b - a) / N as u32);
        let (bare, like, piped, mget, cached) = (
            median(bare),
            median(like),
            median(piped),
            median(mget),
            median(cached),
        );
        let ratio = cached.as_secs_f64() / bare.as_secs_f64();
        let like_ratio = cached.as_secs_f64() / like.as_secs_f64();
        ratios.push(ratio);
        like_ratios.push(like_ratio);
        println!(
            "round {round}: p50 bare GET {bare:?}, with time-outs {like:?}, bare 3-GET pipeline \
             {piped:?}, bare routed MGET {mget:?}, L2 hit {cached:?}: ratio {ratio:.2}x \
             ({like_ratio:.2}x like for like); process CPU per op: bare GET {bare_cpu:?}, with \
             time-outs {like_cpu:?}, 3-GET pipeline {piped_cpu:?}, L2 hit {cached_cpu:?}"
        );
    }
    assert!(repo.stats().l2_hits >= 3 * N as u64);
    ratios.sort_by(f64::total_cmp);
    like_ratios.sort_by(f64::total_cmp);
    println!(
        "median ratio L2 hit / cluster GET: {:.2}x with the same time-outs (goal <= 1.2x), \
         {:.2}x against the driver's defaults",
        like_ratios[1], ratios[1]
    );
    // For reference, the same on one server (REDIS_URL): the layer's own
    // overhead, apart from the cluster's.
    if let Some(url) = common::redis_url().filter(|_| one_server_too) {
        let prefix = common::prefix("cbench1");
        let single = common::layer(Levels::L2, &prefix).expect("layer");
        let repo1: Repo = single.wrap(MemoryRepository::new());
        repo1.insert(&item(1, "bench", 1)).await.expect("insert");
        repo1.get(&1).await.expect("warm");
        let mut c = redis::Client::open(url.as_str())
            .expect("url")
            .get_multiplexed_async_connection()
            .await
            .expect("connect");
        let key1 = format!("{prefix}:bench");
        let () = c.set(&key1, vec![7u8; 64]).await.expect("set");
        let (mut bare, mut cached) = (Vec::with_capacity(N), Vec::with_capacity(N));
        for _ in 0..N {
            let t = Instant::now();
            let v: Option<Vec<u8>> = c.get(&key1).await.expect("get");
            bare.push(t.elapsed());
            assert!(v.is_some());
            let t = Instant::now();
            assert!(repo1.get(&1).await.expect("get").is_some());
            cached.push(t.elapsed());
        }
        let (bare, cached) = (median(bare), median(cached));
        println!(
            "one server: bare GET p50 {bare:?}, L2 hit p50 {cached:?}, ratio {:.2}x",
            cached.as_secs_f64() / bare.as_secs_f64()
        );
        common::delete_keys(&url, &prefix).await;
    }
    let _: i64 = raw.del(&key).await.expect("del");
}
