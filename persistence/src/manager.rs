//! The manager: named databases built lazily from configuration, and the
//! handles on them (registry, stores), shutdown. Repositories with their
//! layers are in `manager/repo.rs`; health and status in `manager/status.rs`;
//! what a built database is, in `database.rs`.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::Arc;

use crate::config::{ConfigLoader, DatabaseKind, PersistenceConfig, Probe, detect};
use persistence_cache::{CacheLayer, EntityTtl, ReadPolicy, Stats as CacheStats};
use persistence_core::layer::{CircuitBreaker, LeakDetector, PoolProbe};
use persistence_core::{Error, Result};
#[cfg(feature = "mongo")]
use persistence_mongo::MongoStore;
#[cfg(relational)]
use persistence_postgres::RelationalStore;
use tokio::sync::{Mutex, OnceCell};

use crate::database::{Backend, Database, Streak, build, has_endpoints, pinger};

mod relations;
mod repo;
mod search;
mod status;
mod tenant;

pub use status::{CacheLayerStatus, CachedEntityStatus};

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
    /// The effective TTLs of each cached repository, by database and entity
    /// name, with the key of the layer it belongs to.
    cache_ttls: std::sync::Mutex<CacheTtls>,
    #[cfg(relational)]
    registry: OnceCell<crate::registry::Registry>,
    /// Tenancy: activity trackers, registered tenant entities, tenant repositories.
    tenants: std::sync::Mutex<tenant::TenantState>,
    /// Sources of `search`, in registration order.
    searches: std::sync::RwLock<Vec<Arc<search::Source>>>,
    /// Where entities were placed (`place`), by entity name.
    placements: std::sync::RwLock<HashMap<&'static str, String>>,
}

type StatsFn = Arc<dyn Fn() -> CacheStats + Send + Sync>;

/// A cache layer's key: database, L2 database and backplane setting.
type LayerKey = (String, Option<String>, bool);

/// Effective TTLs by database and entity name, with their layer's key.
type CacheTtls = HashMap<(String, &'static str), (LayerKey, EntityTtl, ReadPolicy)>;

/// Cache layers by database, L2 database and backplane setting.
type CacheLayers = HashMap<LayerKey, CacheLayer>;

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
            cache_ttls: std::sync::Mutex::new(HashMap::new()),
            #[cfg(relational)]
            registry: OnceCell::new(),
            tenants: std::sync::Mutex::new(tenant::TenantState::default()),
            searches: std::sync::RwLock::new(Vec::new()),
            placements: std::sync::RwLock::new(HashMap::new()),
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
                // The store records raw statements with the database's metrics
                // from the start, whether or not a repository was asked for.
                let _ = self.metrics_layer(db, backend);
                let m = &self.config.metrics;
                tasks.push(crate::pool::spawn_sampler(
                    Arc::downgrade(db),
                    m.sample_interval,
                    m.pool_warn_utilization,
                ));
                if backend.has_connections() {
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

    /// The connection registry of the `registry` config section, opened on
    /// first call (its table in `registry.database`, default `main`; key per
    /// [`RegistryKey::from_config`](crate::registry::RegistryKey::from_config)).
    /// `Config` error when the section is absent or the key is missing or bad.
    #[cfg(relational)]
    pub async fn registry(&self) -> Result<&crate::registry::Registry> {
        let Some(rc) = &self.config.registry else {
            return Err(Error::config("no `registry` section is configured"));
        };
        self.registry
            .get_or_try_init(|| async {
                let db = self.database(rc.database.as_deref().unwrap_or("main"))?;
                let Some(store) = self.backend(db).await?.relational() else {
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
    #[cfg(relational)]
    pub async fn relational(&self, name: &str) -> Result<Option<RelationalStore>> {
        Ok(self
            .backend(self.database(name)?)
            .await?
            .relational()
            .cloned())
    }

    /// The MongoDB store of database `name` (built on first use), for
    /// aggregations, transactions and change streams. `Ok(None)` when `name`
    /// is not a MongoDB database.
    #[cfg(feature = "mongo")]
    pub async fn mongo(&self, name: &str) -> Result<Option<MongoStore>> {
        match self.backend(self.database(name)?).await? {
            Backend::Mongo(store) => Ok(Some(store.clone())),
            #[allow(unreachable_patterns)]
            _ => Ok(None),
        }
    }

    /// Close every pool that was opened.
    pub async fn shutdown(&self) {
        self.repos.lock().await.clear();
        if let Ok(mut t) = self.tenants.lock() {
            t.repos.clear();
        }
        // Search sources hold repositories.
        if let Ok(mut s) = self.searches.write() {
            s.clear();
        }
        // Dropping the layers stops their backplane and queue tasks.
        if let Ok(mut layers) = self.cache_layers.lock() {
            layers.clear();
        }
        #[cfg(relational)]
        if let Some(registry) = self.registry.get() {
            registry.close_all().await;
        }
        for db in &self.databases {
            db.stop_tasks();
            #[cfg(relational)]
            if let Some(store) = db.backend.get().and_then(Backend::relational) {
                store.close().await;
            }
            #[cfg(feature = "mongo")]
            if let Some(Backend::Mongo(store)) = db.backend.get() {
                store.close().await;
            }
            if let Some(Some(fo)) = db.failover.get() {
                fo.topology.stop();
                #[cfg(relational)]
                for store in fo.others.iter().filter_map(Backend::relational) {
                    store.close().await;
                }
                #[cfg(feature = "mongo")]
                for other in fo.others.iter() {
                    if let Backend::Mongo(store) = other {
                        store.close().await;
                    }
                }
            }
        }
    }
}
