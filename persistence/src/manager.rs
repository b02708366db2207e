//! The manager: named databases built lazily from configuration, repositories
//! with their layers, health, shutdown.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crate::config::{
    CachePolicy, ConfigLoader, DatabaseConfig, DatabaseKind, PersistenceConfig, Probe, detect,
};
use persistence_cache::{CacheLayer, CacheStatus, EntityTtl, Stats as CacheStats};
use persistence_core::layer::{
    CircuitBreaker, LayerExt, LeakDetector, Metrics, PoolProbe, Retry, Timeout, Tracing,
    metric_names,
};
use persistence_core::{Entity, Error, MemoryRepository, Repository, Result, SharedRepository};
use persistence_mongo::{MongoConfig, MongoStore};
use persistence_postgres::{RelationalConfig, RelationalStore};
use tokio::sync::{Mutex, OnceCell};

use crate::failover::{EndpointHealth, FailoverRepository, Pinger, Topology};
use crate::health::Streak;
use crate::pool::PoolStatus;

/// A built database.
pub(crate) enum Backend {
    Relational(RelationalStore),
    Mongo(MongoStore),
    /// One `MemoryRepository` per entity type, created on first use.
    Memory(std::sync::Mutex<HashMap<TypeId, Box<dyn Any + Send + Sync>>>),
    /// Redis: used as a cache L2 by URL (the caches hold their own pools);
    /// this small pool serves the health check's `PING`.
    Redis(deadpool_redis::Pool),
}

pub(crate) struct Database {
    pub(crate) name: String,
    config: DatabaseConfig,
    pub(crate) backend: OnceCell<Backend>,
    pub(crate) breaker: CircuitBreaker,
    /// Waiting operations and acquire times of its pool.
    pub(crate) probe: PoolProbe,
    /// Long-held connections, streams and transactions.
    leaks: LeakDetector,
    /// The pool sampler and leak watchdog, started when the database is built.
    tasks: std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>,
    failover: OnceCell<Option<Failover>>,
    streak: Streak,
}

impl Database {
    /// The check settings (`failover` section, defaults without it): health
    /// bound, recovery checker interval.
    fn checks(&self) -> crate::config::FailoverSettings {
        self.config.failover.clone().unwrap_or_default()
    }

    fn stop_tasks(&self) {
        if let Ok(mut tasks) = self.tasks.lock() {
            for t in tasks.drain(..) {
                t.abort();
            }
        }
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        self.stop_tasks();
    }
}

/// The other endpoints of a database with replicas or a backup.
struct Failover {
    /// Replicas, then the backup, in the topology's order after the primary.
    others: Vec<Backend>,
    topology: Arc<Topology>,
    pingers: Vec<Pinger>,
}

/// The state of one database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthState {
    /// Answered within the timeout.
    Healthy,
    /// Answered, slowly (over half the timeout) or with its breaker not closed.
    Degraded,
    /// Did not answer, or answered with an error.
    Unhealthy,
    /// Not built yet (databases are built on first use) or not checkable.
    Unknown,
}

/// Health of one database.
#[derive(Debug, Clone)]
pub struct DatabaseHealth {
    /// Configured name.
    pub name: String,
    /// Backend kind.
    pub kind: &'static str,
    /// State.
    pub state: HealthState,
    /// Round-trip time of the check.
    pub latency: Option<Duration>,
    /// The error, when unhealthy (no secrets).
    pub error: Option<String>,
    /// Connection pool occupancy (PostgreSQL/SQLite, once built).
    pub pool: Option<PoolStatus>,
    /// When the current failing streak began (the first failed check since
    /// the last good one); `None` while healthy.
    pub since: Option<SystemTime>,
    /// Primary, replicas and backup, when replicas or a backup are configured.
    pub endpoints: Vec<EndpointHealth>,
}

/// Health of every database, and the worst state among them.
#[derive(Debug, Clone)]
pub struct HealthReport {
    /// Worst state (Unknown counts as healthy here: it was never used).
    pub status: HealthState,
    /// Per database, in name order.
    pub databases: Vec<DatabaseHealth>,
}

/// Builds each named database on first use and hands out ready repositories:
/// `Timeout` → `Retry` (resolving writes of unknown outcome unless
/// `retry.resolve_writes: false`) → `CircuitBreaker` (one per database) →
/// `Metrics` → `Tracing` (one span per operation),
/// then the read-through cache per the entity's cache policy. Repositories
/// are memoized per database and entity type, so every caller shares one
/// cache and one breaker.
pub struct Persistence {
    config: PersistenceConfig,
    reasons: Vec<String>,
    databases: Vec<Arc<Database>>,
    repos: Mutex<HashMap<(String, TypeId), Box<dyn Any + Send + Sync>>>,
    /// Counters of each cached repository, by database and entity name.
    cache_stats: std::sync::Mutex<HashMap<(String, &'static str), StatsFn>>,
    cache_layers: std::sync::Mutex<CacheLayers>,
    registry: OnceCell<crate::registry::Registry>,
}

type StatsFn = Arc<dyn Fn() -> CacheStats + Send + Sync>;

/// Cache layers by database, L2 database and backplane setting.
type CacheLayers = HashMap<(String, Option<String>, bool), CacheLayer>;

/// The state of one cache layer built by the manager ([`Persistence::cache_status`]).
#[derive(Debug, Clone)]
pub struct CacheLayerStatus {
    /// The database whose repositories it caches.
    pub database: String,
    /// The `redis` database used as L2, if any.
    pub l2: Option<String>,
    /// Whether it has a backplane.
    pub backplane: bool,
    /// Its state.
    pub status: CacheStatus,
}

impl std::fmt::Debug for Persistence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Persistence")
            .field("databases", &self.describe())
            .finish()
    }
}

impl Persistence {
    /// From a configuration (validated again here).
    pub fn new(config: PersistenceConfig) -> Result<Self> {
        config.validate()?;
        let databases = config
            .databases
            .iter()
            .map(|(name, c)| {
                let breaker = c.breaker.unwrap_or_default();
                Arc::new(Database {
                    name: name.clone(),
                    config: c.clone(),
                    backend: OnceCell::new(),
                    breaker: CircuitBreaker::new(name, breaker),
                    probe: PoolProbe::new(name),
                    leaks: LeakDetector::new(name, config.metrics.leak_threshold),
                    tasks: std::sync::Mutex::new(Vec::new()),
                    failover: OnceCell::new(),
                    streak: Streak::default(),
                })
            })
            .collect();
        Ok(Persistence {
            config,
            reasons: Vec::new(),
            databases,
            repos: Mutex::new(HashMap::new()),
            cache_stats: std::sync::Mutex::new(HashMap::new()),
            cache_layers: std::sync::Mutex::new(HashMap::new()),
            registry: OnceCell::new(),
        })
    }

    /// From a configuration file (YAML, TOML or JSON; profile from `PERSISTENCE_ENV`).
    pub async fn from_file(path: impl AsRef<std::path::Path>) -> Result<Self> {
        Self::new(ConfigLoader::new().file(path)?.load()?)
    }

    /// Without a file: detect the environment (env URLs, then local servers,
    /// then embedded defaults; no fallbacks in the `production` profile).
    pub async fn from_env() -> Result<Self> {
        Self::from_env_with(Probe::default()).await
    }

    /// Like [`Persistence::from_env`], probing as `probe` says —
    /// [`Probe::env_only`] skips the local ports: environment URLs, else embedded.
    pub async fn from_env_with(probe: Probe) -> Result<Self> {
        let profile = ConfigLoader::new().selected_profile();
        let detection = tokio::task::spawn_blocking(move || detect(&profile, &probe))
            .await
            .map_err(|e| Error::config(format!("environment detection failed: {e}")))??;
        let mut p = Self::new(detection.config)?;
        p.reasons = detection.reasons;
        Ok(p)
    }

    /// The configuration in use.
    pub fn config(&self) -> &PersistenceConfig {
        &self.config
    }

    /// The resolved topology (secrets redacted) and, after detection, why each database was chosen.
    pub fn describe(&self) -> String {
        let mut s = self.config.describe();
        for r in &self.reasons {
            s.push_str("  because ");
            s.push_str(r);
            s.push('\n');
        }
        s
    }

    fn database(&self, name: &str) -> Result<&Arc<Database>> {
        self.databases
            .iter()
            .find(|d| d.name == name)
            .ok_or_else(|| Error::config(format!("no database named `{name}` is configured")))
    }

    /// The default database for entities: `main`, else the only non-Redis database.
    fn default_database(&self) -> Result<&str> {
        if self.config.databases.contains_key("main") {
            return Ok("main");
        }
        let mut candidates = self
            .config
            .databases
            .iter()
            .filter(|(_, d)| d.kind != DatabaseKind::Redis);
        match (candidates.next(), candidates.next()) {
            (Some((name, _)), None) => Ok(name),
            _ => Err(Error::config("no `main` database; use repo_in(name)")),
        }
    }

    async fn backend<'d>(&self, db: &'d Arc<Database>) -> Result<&'d Backend> {
        let lazy = has_endpoints(&db.config);
        let backend = db
            .backend
            .get_or_try_init(|| build(db, db.config.url.as_ref(), lazy))
            .await
            .map_err(|e| {
                Error::new(
                    e.kind().clone(),
                    format!("database `{}`: {}", db.name, e.message()),
                )
            })?;
        if let Ok(mut tasks) = db.tasks.lock() {
            if tasks.is_empty() {
                let m = &self.config.metrics;
                tasks.push(crate::pool::spawn_sampler(
                    Arc::downgrade(db),
                    m.sample_interval,
                    m.pool_warn_utilization,
                ));
                if !matches!(backend, Backend::Memory(_) | Backend::Redis(_)) {
                    tasks.push(db.leaks.spawn_watchdog());
                    // With replicas or a backup the checker starts with the
                    // topology (it pings the write candidates); see `failover`.
                    if !has_endpoints(&db.config) {
                        tasks.push(crate::recovery::spawn(
                            db.breaker.clone(),
                            vec![pinger(backend)],
                            &db.checks(),
                        ));
                    }
                }
            }
        }
        Ok(backend)
    }

    /// Occupancy of database `db`'s connection pool: `None` when it is not
    /// configured, not built yet (databases are built on first use) or has no
    /// pool the manager can see (MongoDB, memory, Redis).
    pub fn pool_status(&self, db: &str) -> Option<PoolStatus> {
        crate::pool::status(self.database(db).ok()?)
    }

    /// Replicas and backup (pools created lazily, so an endpoint that is down
    /// at start-up is not an error) and the started checker; `None` without.
    async fn failover<'a>(db: &'a Database, primary: &Backend) -> Result<Option<&'a Failover>> {
        let built = db
            .failover
            .get_or_try_init(|| async {
                let c = &db.config;
                if !has_endpoints(c) {
                    return Ok(None);
                }
                let mut others = Vec::new();
                for url in c.replicas.iter().chain(&c.backup) {
                    others.push(build(db, Some(url), true).await?);
                }
                let label = |u: Option<&crate::config::Secret>| {
                    u.map(|u| u.to_string()).unwrap_or_default()
                };
                let replicas: Vec<String> = c.replicas.iter().map(|u| label(Some(u))).collect();
                let topology = Arc::new(Topology::new(
                    &db.name,
                    &replicas,
                    label(c.url.as_ref()),
                    c.backup.as_ref().map(|u| label(Some(u))),
                    c.failover.clone().unwrap_or_default(),
                ));
                let pingers: Vec<Pinger> = std::iter::once(primary)
                    .chain(&others)
                    .map(pinger)
                    .collect();
                topology.start_checker(pingers.clone());
                // The breaker's recovery checker: the endpoints that take writes.
                let mut writers = vec![pingers[0].clone()];
                if c.backup.is_some() {
                    writers.extend(pingers.last().cloned());
                }
                if let Ok(mut tasks) = db.tasks.lock() {
                    tasks.push(crate::recovery::spawn(
                        db.breaker.clone(),
                        writers,
                        &db.checks(),
                    ));
                }
                Ok::<_, Error>(Some(Failover {
                    others,
                    topology,
                    pingers,
                }))
            })
            .await?;
        Ok(built.as_ref())
    }

    /// A repository of `E` in the default database (`main`).
    pub async fn repo<E: Entity>(&self) -> Result<SharedRepository<E>> {
        let name = self.default_database()?.to_string();
        self.repo_in::<E>(&name).await
    }

    /// A repository of `E` in database `name`, schema ensured, layers applied.
    pub async fn repo_in<E: Entity>(&self, name: &str) -> Result<SharedRepository<E>> {
        let key = (name.to_string(), TypeId::of::<E>());
        let mut repos = self.repos.lock().await;
        if let Some(r) = repos
            .get(&key)
            .and_then(|b| b.downcast_ref::<SharedRepository<E>>())
        {
            return Ok(r.clone());
        }
        let db = self.database(name)?.clone();
        let backend = self.backend(&db).await?;
        let primary = raw_repo::<E>(backend, name)?;
        let raw: SharedRepository<E> = match Self::failover(&db, backend).await? {
            None => primary,
            Some(fo) => {
                let mut endpoints = vec![primary];
                for b in &fo.others {
                    endpoints.push(raw_repo::<E>(b, name)?);
                }
                Arc::new(FailoverRepository::new(endpoints, fo.topology.clone())?)
            }
        };
        raw.ensure_schema().await?;
        let layered = raw
            .layer(Timeout::new(
                db.config.timeout.unwrap_or(Duration::from_secs(30)),
            ))
            .layer(Retry::from_config(db.config.retry.as_ref()))
            .layer(db.breaker.clone())
            .layer(self.metrics_layer(&db, backend))
            .layer(Tracing::new(
                db.config.kind.db_system(),
                db.config
                    .schema
                    .as_deref()
                    .or(db.config.database.as_deref())
                    .unwrap_or(name),
            ));
        let policy = self.config.cache_policy(E::meta().name).clone();
        let repo: SharedRepository<E> = if policy.disabled {
            Arc::new(layered)
        } else {
            // The prefix names the database *and* its schema / Mongo database, so two
            // deployments (or tests) sharing one Redis never read each other's entries.
            let scope = db
                .config
                .schema
                .as_deref()
                .or(db.config.database.as_deref())
                .unwrap_or("default");
            if let Some(l2) = &policy.l2 {
                // Built (no connection yet) so that `health()` pings it.
                self.backend(self.database(l2)?).await?;
            }
            let prefix = format!("persistence.{name}.{scope}");
            let layer = self.cache_layer(name, &prefix, policy.l2.as_deref(), &policy)?;
            let defaults = layer.default_ttl();
            let ttl = EntityTtl {
                ttl: policy.ttl.unwrap_or(defaults.ttl),
                negative_ttl: policy.negative_ttl.unwrap_or(defaults.negative_ttl),
            };
            let cached = layer.wrap(layered).with_ttl(ttl);
            let handle = cached.clone();
            if let Ok(mut stats) = self.cache_stats.lock() {
                stats.insert(
                    (name.to_string(), E::meta().name),
                    Arc::new(move || handle.stats()),
                );
            }
            Arc::new(cached)
        };
        repos.insert(key, Box::new(repo.clone()));
        Ok(repo)
    }

    /// The cache layer of database `name` with L2 `l2` and the policy's
    /// backplane setting: one per combination, shared by every entity type
    /// (one Redis pool, one backplane subscription and heartbeat).
    fn cache_layer(
        &self,
        name: &str,
        prefix: &str,
        l2: Option<&str>,
        policy: &CachePolicy,
    ) -> Result<CacheLayer> {
        let c = &self.config.cache;
        let backplane = c.backplane_for(policy);
        let key = (name.to_string(), l2.map(str::to_string), backplane);
        let mut layers = self
            .cache_layers
            .lock()
            .map_err(|_| Error::backend("cache layer registry lock poisoned"))?;
        if let Some(layer) = layers.get(&key) {
            return Ok(layer.clone());
        }
        let mut b = CacheLayer::builder().prefix(prefix).db_label(name);
        if let Some(l2) = l2 {
            if let Some(url) = &self.database(l2)?.config.url {
                b = b.redis_url(url.expose()).backplane(backplane);
            }
        }
        if let Some(t) = c.heartbeat {
            b = b.heartbeat(t);
        }
        if let Some(t) = c.heartbeat_timeout {
            b = b.heartbeat_timeout(t);
        }
        if let Some(t) = c.degraded_ttl {
            b = b.backplane_degraded_ttl(t);
        }
        if let Some(n) = c.max_queued_invalidations {
            b = b.max_queued_invalidations(n);
        }
        let layer = b.build()?;
        layers.insert(key, layer.clone());
        Ok(layer)
    }

    /// The coherence state of every cache layer built so far (one per
    /// database, L2 and backplane setting): whether its Redis answers, its
    /// backplane is connected, when it last heard a heartbeat, and how many
    /// invalidations wait for Redis.
    pub fn cache_status(&self) -> Vec<CacheLayerStatus> {
        let Ok(layers) = self.cache_layers.lock() else {
            return Vec::new();
        };
        let mut out: Vec<CacheLayerStatus> = layers
            .iter()
            .map(|((db, l2, _), layer)| CacheLayerStatus {
                database: db.clone(),
                l2: l2.clone(),
                backplane: layer.has_backplane(),
                status: layer.status(),
            })
            .collect();
        out.sort_by(|a, b| {
            (&a.database, &a.l2, a.backplane).cmp(&(&b.database, &b.l2, b.backplane))
        });
        out
    }

    /// The `Metrics` layer of a database: slow threshold from the config, pool
    /// probe for relational pools, leak detection for databases with connections.
    fn metrics_layer(&self, db: &Database, backend: &Backend) -> Metrics {
        let mut m = Metrics::new(&db.name).slow_threshold(self.config.metrics.slow_threshold);
        match backend {
            Backend::Relational(_) => {
                m = m
                    .pool_probe(db.probe.clone())
                    .leak_detector(db.leaks.clone());
            }
            Backend::Mongo(_) => m = m.leak_detector(db.leaks.clone()),
            Backend::Memory(_) | Backend::Redis(_) => {}
        }
        m
    }

    /// The failover topology of database `name` (which endpoints answer,
    /// calls routed to each), once built; `None` without replicas or backup.
    pub fn topology(&self, name: &str) -> Option<Arc<Topology>> {
        let db = self.database(name).ok()?;
        db.failover.get()?.as_ref().map(|f| f.topology.clone())
    }

    /// The connection registry of the `registry` config section, opened on
    /// first call (its table in `registry.database`, default `main`; key per
    /// [`RegistryKey::from_config`](crate::registry::RegistryKey::from_config)).
    /// `Config` error when the section is absent or the key is missing or bad.
    pub async fn registry(&self) -> Result<&crate::registry::Registry> {
        let Some(rc) = &self.config.registry else {
            return Err(Error::config("no `registry` section is configured"));
        };
        self.registry
            .get_or_try_init(|| async {
                let db = self.database(rc.database.as_deref().unwrap_or("main"))?;
                let Backend::Relational(store) = self.backend(db).await? else {
                    return Err(Error::config(
                        "registry.database must be postgres or sqlite",
                    ));
                };
                let key = crate::registry::RegistryKey::from_config(rc)?;
                let max = rc
                    .max_open_pools
                    .unwrap_or(crate::registry::DEFAULT_MAX_OPEN_POOLS);
                crate::registry::Registry::open(store.clone(), key, max).await
            })
            .await
    }

    /// The relational store of database `name` (built on first use), for
    /// what repositories do not cover: transactions
    /// ([`RelationalStore::transaction`]), schema-per-tenant, statements of
    /// your own. `Ok(None)` when `name` is not a PostgreSQL / SQLite database.
    pub async fn relational(&self, name: &str) -> Result<Option<RelationalStore>> {
        match self.backend(self.database(name)?).await? {
            Backend::Relational(store) => Ok(Some(store.clone())),
            _ => Ok(None),
        }
    }

    /// The MongoDB store of database `name` (built on first use), for
    /// aggregations, transactions and change streams. `Ok(None)` when `name`
    /// is not a MongoDB database.
    pub async fn mongo(&self, name: &str) -> Result<Option<MongoStore>> {
        match self.backend(self.database(name)?).await? {
            Backend::Mongo(store) => Ok(Some(store.clone())),
            _ => Ok(None),
        }
    }

    /// The cache counters of entity `entity` (its logical name) in database
    /// `db`, once a cached repository of it has been handed out.
    pub fn cache_stats(&self, db: &str, entity: &str) -> Option<CacheStats> {
        let stats = self.cache_stats.lock().ok()?;
        stats
            .iter()
            .find(|((d, e), _)| d == db && *e == entity)
            .map(|(_, f)| f())
    }

    /// Check every database that has been built (a round trip each, in
    /// parallel, bounded by the database's `failover.check_timeout`, default
    /// 500ms: a hung server is `Unhealthy` after that); databases never used
    /// are `Unknown`. A check that reaches a database whose circuit breaker
    /// is open lets a probe call through at once.
    pub async fn health(&self) -> HealthReport {
        let checks = self.databases.iter().map(|db| {
            let timeout = db.checks().check_timeout;
            async move {
                let kind = db.config.kind.name();
                let Some(backend) = db.backend.get() else {
                    return DatabaseHealth {
                        name: db.name.clone(),
                        kind,
                        state: HealthState::Unknown,
                        latency: None,
                        error: None,
                        pool: None,
                        since: None,
                        endpoints: Vec::new(),
                    };
                };
                if let Some(Some(fo)) = db.failover.get() {
                    let mut c = crate::health::check_endpoints(&fo.topology, &fo.pingers).await;
                    let breaker = db.breaker.state();
                    if c.state == HealthState::Healthy
                        && breaker != persistence_core::layer::BreakerState::Closed
                    {
                        c.state = HealthState::Degraded;
                        c.error = Some("circuit breaker not closed".to_string());
                    }
                    return DatabaseHealth {
                        name: db.name.clone(),
                        kind,
                        state: c.state,
                        latency: c.latency,
                        since: db.streak.observe(c.error.is_some()),
                        error: c.error,
                        endpoints: c.endpoints,
                        pool: crate::pool::status(db),
                    };
                }
                let start = Instant::now();
                let outcome = tokio::time::timeout(timeout, ping(backend)).await;
                let latency = start.elapsed();
                if matches!(outcome, Ok(Ok(()))) {
                    // Reachable: an open breaker may let a probe call through now.
                    db.breaker.endpoint_reachable();
                }
                let (state, error) = match outcome {
                    Ok(Ok(())) if latency > timeout / 2 => (HealthState::Degraded, None),
                    Ok(Ok(())) => match db.breaker.state() {
                        persistence_core::layer::BreakerState::Closed => {
                            (HealthState::Healthy, None)
                        }
                        _ => (
                            HealthState::Degraded,
                            Some("circuit breaker not closed".to_string()),
                        ),
                    },
                    Ok(Err(e)) => (HealthState::Unhealthy, Some(e.to_string())),
                    Err(_) => (
                        HealthState::Unhealthy,
                        Some(format!("no answer within {timeout:?}")),
                    ),
                };
                let (state, error, pool) = match backend {
                    Backend::Redis(_) => self.redis_verdict(&db.name, state, error),
                    _ => (state, error, crate::pool::status(db)),
                };
                DatabaseHealth {
                    name: db.name.clone(),
                    kind,
                    state,
                    latency: Some(latency),
                    since: db.streak.observe(error.is_some()),
                    error,
                    pool,
                    endpoints: Vec::new(),
                }
            }
        });
        let databases = futures_util::future::join_all(checks).await;
        let status =
            databases
                .iter()
                .map(|d| d.state)
                .fold(HealthState::Healthy, |worst, s| match (worst, s) {
                    (HealthState::Unhealthy, _) | (_, HealthState::Unhealthy) => {
                        HealthState::Unhealthy
                    }
                    (HealthState::Degraded, _) | (_, HealthState::Degraded) => {
                        HealthState::Degraded
                    }
                    _ => HealthState::Healthy,
                });
        HealthReport { status, databases }
    }

    /// A Redis database serves as cache L2: when it does not answer, or a
    /// cache's backplane is not subscribed, the caches fall back to L1 and
    /// the database (shorter L1 TTL), so it is `Degraded`, not `Unhealthy`.
    /// The pool is the sum over the caches' Redis pools.
    fn redis_verdict(
        &self,
        name: &str,
        state: HealthState,
        error: Option<String>,
    ) -> (HealthState, Option<String>, Option<PoolStatus>) {
        let statuses: Vec<(Option<persistence_cache::L2Status>, CacheStatus)> = self
            .cache_layers
            .lock()
            .map(|layers| {
                layers
                    .iter()
                    .filter(|((_, l2, _), _)| l2.as_deref() == Some(name))
                    .map(|(_, layer)| (layer.l2_status(), layer.status()))
                    .collect()
            })
            .unwrap_or_default();
        let n = |v: usize| u32::try_from(v).unwrap_or(u32::MAX);
        let pool = (!statuses.is_empty()).then(|| {
            statuses.iter().filter_map(|(p, _)| p.as_ref()).fold(
                PoolStatus::default(),
                |mut p, s| {
                    p.max = p.max.saturating_add(n(s.pool_max));
                    p.size = p.size.saturating_add(n(s.pool_size));
                    p.idle = p.idle.saturating_add(n(s.pool_idle));
                    p.in_use = p
                        .in_use
                        .saturating_add(n(s.pool_size.saturating_sub(s.pool_idle)));
                    p.waiting = p.waiting.saturating_add(n(s.pool_waiting));
                    p
                },
            )
        });
        let mut state = match state {
            HealthState::Unhealthy => HealthState::Degraded,
            s => s,
        };
        let mut error = error;
        let with_backplane = statuses
            .iter()
            .filter(|(_, s)| s.backplane_connected.is_some())
            .count();
        let unsubscribed = statuses
            .iter()
            .filter(|(_, s)| s.backplane_connected == Some(false))
            .count();
        let queued: usize = statuses.iter().map(|(_, s)| s.queued_invalidations).sum();
        if queued > 0 {
            state = HealthState::Degraded;
            let msg = format!("{queued} cache invalidations wait for redis");
            error = Some(match error {
                Some(e) => format!("{e}; {msg}"),
                None => msg,
            });
        }
        if unsubscribed > 0 {
            state = HealthState::Degraded;
            let msg = format!(
                "cache backplane not subscribed ({unsubscribed} of {with_backplane} caches)"
            );
            error = Some(match error {
                Some(e) => format!("{e}; {msg}"),
                None => msg,
            });
        }
        (state, error, pool)
    }

    /// Close every pool that was opened.
    pub async fn shutdown(&self) {
        self.repos.lock().await.clear();
        // Dropping the layers stops their backplane and queue tasks.
        if let Ok(mut layers) = self.cache_layers.lock() {
            layers.clear();
        }
        if let Some(registry) = self.registry.get() {
            registry.close_all().await;
        }
        for db in &self.databases {
            db.stop_tasks();
            if let Some(Backend::Relational(store)) = db.backend.get() {
                store.close().await;
            }
            if let Some(Some(fo)) = db.failover.get() {
                fo.topology.stop();
                for b in &fo.others {
                    if let Backend::Relational(store) = b {
                        store.close().await;
                    }
                }
            }
        }
    }
}

/// The plain repository of `E` on one built endpoint.
fn raw_repo<E: Entity>(backend: &Backend, name: &str) -> Result<SharedRepository<E>> {
    Ok(match backend {
        Backend::Relational(store) => Arc::new(store.repository::<E>()),
        Backend::Mongo(store) => Arc::new(store.repository::<E>()),
        Backend::Memory(map) => {
            let mut map = map
                .lock()
                .map_err(|_| Error::backend("memory store lock poisoned"))?;
            let repo = map
                .entry(TypeId::of::<E>())
                .or_insert_with(|| Box::new(MemoryRepository::<E>::new()))
                .downcast_ref::<MemoryRepository<E>>()
                .cloned()
                .ok_or_else(|| Error::backend("memory store type mismatch"))?;
            Arc::new(repo)
        }
        Backend::Redis(_) => {
            return Err(Error::config(format!(
                "database `{name}` is redis: it serves as a cache (cache.*.l2), not as an entity store"
            )));
        }
    })
}

fn has_endpoints(c: &DatabaseConfig) -> bool {
    !c.replicas.is_empty() || c.backup.is_some()
}

/// A `'static` ping of one endpoint, for the failover checker.
fn pinger(backend: &Backend) -> Pinger {
    match backend {
        Backend::Relational(store) => {
            let store = store.clone();
            Arc::new(move || {
                let store = store.clone();
                Box::pin(async move { ping(&Backend::Relational(store)).await })
            })
        }
        Backend::Mongo(store) => {
            let store = store.clone();
            Arc::new(move || {
                let store = store.clone();
                Box::pin(async move { store.ping().await })
            })
        }
        Backend::Redis(pool) => {
            let pool = pool.clone();
            Arc::new(move || {
                let pool = pool.clone();
                Box::pin(async move { ping(&Backend::Redis(pool)).await })
            })
        }
        Backend::Memory(_) => Arc::new(|| Box::pin(async { Ok(()) })),
    }
}

async fn ping(backend: &Backend) -> Result<()> {
    match backend {
        Backend::Relational(store) => store
            .connection()
            .ping()
            .await
            .map_err(|e| Error::unavailable(format!("ping failed: {e}"))),
        Backend::Mongo(store) => store.ping().await,
        Backend::Redis(pool) => {
            let mut conn = pool.get().await.map_err(|e| match e {
                deadpool_redis::PoolError::Timeout(_) => {
                    Error::timeout("redis: no connection within the check timeout")
                }
                other => Error::unavailable(format!("redis: {other}")),
            })?;
            deadpool_redis::redis::cmd("PING")
                .query_async::<String>(&mut conn)
                .await
                .map(|_| ())
                .map_err(|e| Error::unavailable(format!("redis PING failed: {e}")))
        }
        Backend::Memory(_) => Ok(()),
    }
}

async fn build(db: &Database, url: Option<&crate::config::Secret>, lazy: bool) -> Result<Backend> {
    let c = &db.config;
    let url = url.map(|u| u.expose().to_string());
    Ok(match c.kind {
        DatabaseKind::Postgres | DatabaseKind::Sqlite => {
            let mut rc = relational_config(url.unwrap_or_default(), c.schema.clone(), &c.pool);
            rc.connect_lazy = lazy;
            if let Some(tls) = &c.tls {
                rc.ssl_mode = Some(persistence_postgres::SslMode::parse(&tls.mode).map_err(
                    |e| Error::config(format!("databases.{}.tls.mode: {}", db.name, e.message())),
                )?);
                rc.ssl_root_cert = tls.root_cert.clone();
            }
            let store = RelationalStore::connect(&rc).await?;
            store.set_leak_detector(db.leaks.clone());
            Backend::Relational(store)
        }
        DatabaseKind::Mongo => {
            let database = c.database.clone().unwrap_or_else(|| db.name.clone());
            let mut mc = MongoConfig::new(url.unwrap_or_default(), database);
            if let Some(wc) = &c.write_concern {
                mc = mc.write_concern(persistence_mongo::config::to_write_concern(wc));
            }
            if let Some(rc) = &c.read_concern {
                mc = mc.read_concern(persistence_mongo::config::to_read_concern(rc));
            }
            let store = MongoStore::connect(&mc).await?;
            store.set_leak_detector(db.leaks.clone());
            let label = db.name.clone();
            store.on_connection_acquired(move |waited| {
                metrics::histogram!(metric_names::POOL_ACQUIRE, metric_names::LABEL_DB => label.clone())
                    .record(waited.as_secs_f64());
            });
            Backend::Mongo(store)
        }
        DatabaseKind::Memory => Backend::Memory(std::sync::Mutex::new(HashMap::new())),
        DatabaseKind::Redis => {
            // One connection, every wait bounded by the check timeout.
            let timeout = db.checks().check_timeout;
            let mut cfg = deadpool_redis::Config::from_url(url.unwrap_or_default());
            let mut pool = deadpool_redis::PoolConfig::new(1);
            pool.timeouts = deadpool_redis::Timeouts {
                wait: Some(timeout),
                create: Some(timeout),
                recycle: Some(timeout),
            };
            cfg.pool = Some(pool);
            // The config error may echo the URL (with its password): not kept.
            let pool = cfg
                .create_pool(Some(deadpool_redis::Runtime::Tokio1))
                .map_err(|_| Error::config(format!("databases.{}: invalid redis url", db.name)))?;
            Backend::Redis(pool)
        }
    })
}

/// A relational backend configuration from a URL, schema and the pool settings
/// of a configured (or registry-defined) database.
pub(crate) fn relational_config(
    url: String,
    schema: Option<String>,
    pool: &crate::config::PoolConfig,
) -> RelationalConfig {
    let mut rc = RelationalConfig::new(url);
    rc.schema = schema;
    rc.max_connections = pool.max_connections;
    rc.min_connections = pool.min_connections;
    rc.acquire_timeout = pool.acquire_timeout;
    rc.idle_timeout = pool.idle_timeout;
    rc.max_lifetime = pool.max_lifetime;
    rc.statement_timeout = pool.statement_timeout;
    rc.application_name = pool.application_name.clone();
    rc
}
