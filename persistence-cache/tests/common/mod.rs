//! Test helpers: Redis location, unique prefixes, key cleanup, and wrapper
//! repositories that count and pause loads.
#![allow(dead_code, unused_macros)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

pub mod flaky;

use persistence_cache::{CacheLayer, CacheLayerBuilder};
use persistence_core::query::Cursor;
use persistence_core::{
    BoxStream, Capabilities, Entity, Filter, GroupBy, Guard, NearestQuery, Page, Query, Repository,
    Result, Update, Value,
};
use persistence_testing::TestRedis;
use persistence_testing::services::{self, Service};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

/// The Redis URL, or None (test prints SKIPPED) when absent outside CI.
pub fn redis_url() -> Option<String> {
    services::url(Service::Redis)
}

/// A fresh key prefix.
pub fn prefix(tag: &str) -> String {
    TestRedis::unique_prefix(tag)
}

/// Delete every key under `prefix:` (SCAN + UNLINK).
pub async fn delete_keys(url: &str, prefix: &str) {
    if let Err(e) = TestRedis::delete_under(url, prefix).await {
        eprintln!("cleanup of {prefix}: {e}");
    }
}

/// Number of keys under `prefix:` (SCAN).
pub async fn count_keys(url: &str, prefix: &str) -> usize {
    TestRedis::keys_under(url, prefix)
        .await
        .expect("scan")
        .len()
}

/// Which levels a test layer uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Levels {
    L1,
    L2,
    Both,
}

/// The Redis time-out of the tests' layers (tests of time-outs set their
/// own): these tests check what the cache does with the answers, and under
/// CPU load (CI runs tests side by side on 2 cores) an answer can take
/// longer than the default 250 ms, which the cache rightly treats as an
/// outage (it then loads without L2, and a test counting loads fails).
#[allow(dead_code)]
pub const TEST_L2_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// A layer with the given levels (None when Redis is needed and missing, or
/// without the `redis` feature).
pub fn layer(levels: Levels, prefix: &str) -> Option<CacheLayer> {
    layer_with(levels, prefix, |b| b)
}

pub fn layer_with(
    levels: Levels,
    prefix: &str,
    f: impl FnOnce(CacheLayerBuilder) -> CacheLayerBuilder,
) -> Option<CacheLayer> {
    #[cfg_attr(not(feature = "redis"), allow(unused_mut))]
    let mut b = CacheLayer::builder().prefix(prefix);
    #[cfg(feature = "redis")]
    {
        b = b.l2_timeout(TEST_L2_TIMEOUT);
    }
    match levels {
        Levels::L1 => {}
        #[cfg(feature = "redis")]
        Levels::L2 => b = b.without_l1().redis_url(redis_url()?),
        #[cfg(feature = "redis")]
        Levels::Both => b = b.redis_url(redis_url()?),
        // Without the feature there is no L2 to test.
        #[cfg(not(feature = "redis"))]
        Levels::L2 | Levels::Both => return None,
    }
    Some(f(b).build().expect("layer"))
}

/// Wait until `layer`'s backplane is subscribed (bounded: 30 s).
pub async fn wait_connected(layer: &CacheLayer) {
    let start = std::time::Instant::now();
    while !layer.backplane_connected() {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(30),
            "backplane did not connect"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// Poll until `check` holds (bounded: 10 s).
pub async fn until<F: AsyncFnMut() -> bool>(mut check: F) {
    let start = std::time::Instant::now();
    while start.elapsed() < std::time::Duration::from_secs(10) {
        if check().await {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    panic!("not within 10 s");
}

/// A plain test entity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, persistence_core::Entity)]
#[entity(name = "cache_items")]
pub struct Item {
    #[entity(id)]
    pub id: i64,
    #[entity(version)]
    pub version: i64,
    pub name: String,
    pub n: i64,
}

pub fn item(id: i64, name: &str, n: i64) -> Item {
    Item {
        id,
        version: 0,
        name: name.to_string(),
        n,
    }
}

/// Wraps a repository: counts reads that reach it, and can pause them.
pub struct Probe<R> {
    pub inner: R,
    pub reads: Arc<AtomicU64>,
    /// When set, every read waits at `entered`/`release` before reading.
    pub gate: Option<Arc<Gate>>,
}

/// A pause point: the loader signals `entered`, then waits for `release`.
#[derive(Default)]
pub struct Gate {
    pub entered: Notify,
    pub release: Notify,
    pub armed: std::sync::atomic::AtomicBool,
}

impl Gate {
    pub fn armed() -> Arc<Gate> {
        let g = Arc::new(Gate::default());
        g.armed.store(true, Ordering::SeqCst);
        g
    }
}

impl<R> Probe<R> {
    pub fn new(inner: R) -> Self {
        Probe {
            inner,
            reads: Arc::new(AtomicU64::new(0)),
            gate: None,
        }
    }
    async fn before_read(&self) {
        self.reads.fetch_add(1, Ordering::SeqCst);
        if let Some(g) = &self.gate {
            if g.armed.swap(false, Ordering::SeqCst) {
                g.entered.notify_one();
                g.release.notified().await;
            }
        }
    }
}

impl<E: Entity, R: Repository<E>> Repository<E> for Probe<R> {
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
    async fn ensure_schema(&self) -> Result<()> {
        self.inner.ensure_schema().await
    }
    async fn verify_schema(&self) -> Result<persistence_core::SchemaReport> {
        self.inner.verify_schema().await
    }
    async fn get(&self, id: &E::Id) -> Result<Option<E>> {
        let v = self.inner.get(id).await;
        self.before_read().await;
        v
    }
    async fn get_many(&self, ids: &[E::Id]) -> Result<Vec<E>> {
        let v = self.inner.get_many(ids).await;
        self.before_read().await;
        v
    }
    async fn insert(&self, entity: &E) -> Result<E> {
        self.inner.insert(entity).await
    }
    async fn insert_many(&self, entities: &[E]) -> Result<u64> {
        self.inner.insert_many(entities).await
    }
    async fn update(&self, entity: &E) -> Result<E> {
        self.inner.update(entity).await
    }
    async fn upsert(&self, entity: &E) -> Result<E> {
        self.inner.upsert(entity).await
    }
    async fn delete(&self, id: &E::Id) -> Result<bool> {
        self.inner.delete(id).await
    }
    async fn delete_many(&self, filter: &Filter) -> Result<u64> {
        self.inner.delete_many(filter).await
    }
    async fn purge(&self, filter: &Filter) -> Result<u64> {
        self.inner.purge(filter).await
    }
    async fn find(&self, query: &Query) -> Result<Vec<E>> {
        let v = self.inner.find(query).await;
        self.before_read().await;
        v
    }
    async fn find_unordered(&self, query: &Query) -> Result<Vec<E>> {
        let v = self.inner.find_unordered(query).await;
        self.before_read().await;
        v
    }
    async fn find_one(&self, query: &Query) -> Result<Option<E>> {
        let v = self.inner.find_one(query).await;
        self.before_read().await;
        v
    }
    async fn count(&self, filter: &Filter) -> Result<u64> {
        let v = self.inner.count(filter).await;
        self.before_read().await;
        v
    }
    async fn exists(&self, filter: &Filter) -> Result<bool> {
        let v = self.inner.exists(filter).await;
        self.before_read().await;
        v
    }
    fn stream<'a>(&'a self, query: &Query) -> BoxStream<'a, Result<E>> {
        self.inner.stream(query)
    }
    async fn page(&self, query: &Query, cursor: Option<&Cursor>) -> Result<Page<E>> {
        self.inner.page(query, cursor).await
    }
    async fn patch(&self, id: &E::Id, update: &Update<E>, guard: &Guard) -> Result<E> {
        self.inner.patch(id, update, guard).await
    }
    async fn update_where(&self, filter: &Filter, update: &Update<E>) -> Result<u64> {
        self.inner.update_where(filter, update).await
    }
    async fn find_one_and_delete(&self, query: &Query) -> Result<Option<E>> {
        self.inner.find_one_and_delete(query).await
    }
    async fn select(&self, query: &Query, fields: &[&str]) -> Result<Vec<Value>> {
        let v = self.inner.select(query, fields).await;
        self.before_read().await;
        v
    }
    async fn distinct(&self, field: &str, filter: &Filter) -> Result<Vec<Value>> {
        let v = self.inner.distinct(field, filter).await;
        self.before_read().await;
        v
    }
    async fn aggregate(&self, filter: &Filter, group: &GroupBy<E>) -> Result<Vec<Value>> {
        let v = self.inner.aggregate(filter, group).await;
        self.before_read().await;
        v
    }
    async fn find_nearest(&self, query: &NearestQuery) -> Result<Vec<(E, f64)>> {
        let v = self.inner.find_nearest(query).await;
        self.before_read().await;
        v
    }
    async fn find_text(&self, query: &persistence_core::TextQuery) -> Result<Vec<(E, f64)>> {
        let v = self.inner.find_text(query).await;
        self.before_read().await;
        v
    }
}

/// The conformance backend over a cached `MemoryRepository` at the given levels
/// (L1 only when Redis is missing outside CI; SKIPPED was printed then).
/// Its keys are deleted when it is dropped.
pub struct CachedMemory {
    layer: CacheLayer,
    /// One store per case: related tables see each other (relations).
    store: persistence_core::MemoryStore,
    _keys: Option<TestRedis>,
    _cluster: Option<persistence_testing::TestRedisCluster>,
}

impl persistence_core::conformance::Backend for CachedMemory {
    type Repo<E: persistence_core::Entity> =
        persistence_cache::CachedRepository<E, persistence_core::MemoryRepository<E>>;
    fn capabilities() -> Capabilities {
        // The cache reports what the repository under it does.
        persistence_core::MemoryRepository::<persistence_core::conformance::entities::Person>::new()
            .capabilities()
    }
    async fn repo<E: persistence_core::Entity>(&self) -> Self::Repo<E> {
        self.layer.wrap(self.store.repository())
    }
}

/// A fresh [`CachedMemory`] with its own key prefix.
pub async fn cached_memory(levels: Levels) -> CachedMemory {
    let keys = if levels == Levels::L1 {
        None
    } else {
        TestRedis::tagged("conf").await
    };
    let layer = match &keys {
        Some(k) => layer(levels, k.prefix()),
        None => layer(Levels::L1, &prefix("conf")),
    }
    .expect("layer");
    CachedMemory {
        layer,
        store: persistence_core::MemoryStore::new(),
        _keys: keys,
        _cluster: None,
    }
}

/// A layer on the Redis Cluster of `cluster` (its prefix) at `levels`
/// (L2 or both), `f` adding settings.
#[cfg(feature = "redis")]
pub fn cluster_layer(
    levels: Levels,
    cluster: &persistence_testing::TestRedisCluster,
    f: impl FnOnce(CacheLayerBuilder) -> CacheLayerBuilder,
) -> CacheLayer {
    let endpoint =
        persistence_cache::RedisEndpoint::cluster(cluster.nodes().iter().cloned()).expect("nodes");
    let mut b = CacheLayer::builder()
        .prefix(cluster.prefix())
        .redis_endpoint(endpoint);
    if levels == Levels::L2 {
        b = b.without_l1();
    }
    f(b).build().expect("cluster layer")
}

/// [`cached_memory`] on the Redis Cluster of `REDIS_CLUSTER_URL` (L1 only
/// when it is missing outside CI; SKIPPED was printed then).
#[cfg(feature = "redis")]
pub async fn cached_memory_cluster(levels: Levels) -> CachedMemory {
    let Some(cluster) = persistence_testing::TestRedisCluster::from_env("conf") else {
        return cached_memory(Levels::L1).await;
    };
    CachedMemory {
        layer: cluster_layer(levels, &cluster, |b| b),
        store: persistence_core::MemoryStore::new(),
        _keys: None,
        _cluster: Some(cluster),
    }
}

/// The `main` of a conformance test file (`harness = false`): the suite once
/// per cache level (`l1::`, `l2::`, `l1_l2::`), each case on a fresh backend
/// from `$make_at(levels)` (or `$make_at(url, levels)` with `service = ...`).
macro_rules! conformance_at_every_level {
    ($make_at:ident) => {
        fn main() -> std::process::ExitCode {
            use persistence_core::conformance::harness::{main, trials};
            let mut all = trials("l1::", || $make_at(common::Levels::L1));
            all.extend(trials("l2::", || $make_at(common::Levels::L2)));
            all.extend(trials("l1_l2::", || $make_at(common::Levels::Both)));
            main(all)
        }
    };
    ($make_at:ident, service = $service:expr) => {
        fn main() -> std::process::ExitCode {
            use persistence_core::conformance::harness::{main, service_trials};
            let at = |levels| move |url| $make_at(url, levels);
            let mut all = service_trials("l1::", $service, at(common::Levels::L1));
            all.extend(service_trials("l2::", $service, at(common::Levels::L2)));
            all.extend(service_trials(
                "l1_l2::",
                $service,
                at(common::Levels::Both),
            ));
            main(all)
        }
    };
}
