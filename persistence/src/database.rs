//! A configured database once built: its [`Backend`] (the store, pool or
//! in-memory map), its per-database state ([`Database`]: breaker, pool probe,
//! leak detector, background tasks, failover endpoints, failing streak), and
//! the functions that build, ping and open repositories on a backend. Shared
//! by the manager, the pool sampler and the registry; uses none of them.

use std::sync::Arc;
use std::time::SystemTime;

#[cfg(relational)]
use crate::config::PoolConfig;
use crate::config::{DatabaseConfig, DatabaseKind, FailoverSettings, Secret};
use crate::failover::{Pinger, Topology};
#[cfg(feature = "mongo")]
use persistence_core::layer::metric_names;
use persistence_core::layer::{CircuitBreaker, LeakDetector, PoolProbe};
use persistence_core::relation::CrossStore;
use persistence_core::{Entity, Error, MemoryStore, Result, SharedRepository};
#[cfg(feature = "mongo")]
use persistence_mongo::{MongoConfig, MongoStore};
#[cfg(relational)]
use persistence_postgres::{RelationalConfig, RelationalStore};
use tokio::sync::OnceCell;

/// A built database.
pub(crate) enum Backend {
    #[cfg(relational)]
    Relational(RelationalStore),
    #[cfg(feature = "mongo")]
    Mongo(MongoStore),
    /// One table per entity; related tables see each other.
    Memory(MemoryStore),
    /// Redis: used as a cache L2 by URL (the caches hold their own pools);
    /// this small pool serves the health check's `PING`.
    #[cfg(feature = "redis")]
    Redis(persistence_cache::RedisClient),
}

impl Backend {
    /// Whether it holds connections (leak watchdog, breaker recovery checker).
    pub(crate) fn has_connections(&self) -> bool {
        match self {
            Backend::Memory(_) => false,
            #[cfg(feature = "redis")]
            Backend::Redis(_) => false,
            #[allow(unreachable_patterns)]
            _ => true,
        }
    }

    /// The relational store, if it is one.
    #[cfg(relational)]
    pub(crate) fn relational(&self) -> Option<&RelationalStore> {
        match self {
            Backend::Relational(store) => Some(store),
            #[allow(unreachable_patterns)]
            _ => None,
        }
    }
}

/// One configured database and its runtime state; built on first use.
pub(crate) struct Database {
    pub(crate) name: String,
    pub(crate) config: DatabaseConfig,
    pub(crate) backend: OnceCell<Backend>,
    pub(crate) breaker: CircuitBreaker,
    /// Waiting operations and acquire times of its pool.
    #[cfg_attr(not(relational), allow(dead_code))]
    pub(crate) probe: PoolProbe,
    /// Long-held connections, streams and transactions.
    pub(crate) leaks: LeakDetector,
    /// The pool sampler and leak watchdog, started when the database is built.
    pub(crate) tasks: std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>,
    pub(crate) failover: OnceCell<Option<Failover>>,
    pub(crate) streak: Streak,
}

impl Database {
    /// The check settings (`failover` section, defaults without it): health
    /// bound, recovery checker interval.
    pub(crate) fn checks(&self) -> FailoverSettings {
        self.config.failover.clone().unwrap_or_default()
    }

    pub(crate) fn stop_tasks(&self) {
        if let Ok(mut tasks) = self.tasks.lock() {
            for t in tasks.drain(..) {
                t.abort();
            }
        }
    }

    /// Replicas and backup (pools created lazily, so an endpoint that is down
    /// at start-up is not an error) and the started checker; `None` without.
    pub(crate) async fn failover(&self, primary: &Backend) -> Result<Option<&Failover>> {
        let built = self
            .failover
            .get_or_try_init(|| async {
                let c = &self.config;
                if !has_endpoints(c) {
                    return Ok(None);
                }
                let mut others = Vec::new();
                for url in c.replicas.iter().chain(&c.backup) {
                    others.push(build(self, Some(url), true).await?);
                }
                let label = |u: Option<&Secret>| u.map(|u| u.to_string()).unwrap_or_default();
                let replicas: Vec<String> = c.replicas.iter().map(|u| label(Some(u))).collect();
                let topology = Arc::new(Topology::new(
                    &self.name,
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
                if let Ok(mut tasks) = self.tasks.lock() {
                    tasks.push(crate::recovery::spawn(
                        self.breaker.clone(),
                        writers,
                        &self.checks(),
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
}

impl Drop for Database {
    fn drop(&mut self) {
        self.stop_tasks();
    }
}

/// The other endpoints of a database with replicas or a backup.
pub(crate) struct Failover {
    /// Replicas, then the backup, in the topology's order after the primary.
    pub(crate) others: Vec<Backend>,
    pub(crate) topology: Arc<Topology>,
    pub(crate) pingers: Vec<Pinger>,
}

/// Remembers when the current failing streak of a database began.
#[derive(Debug, Default)]
pub(crate) struct Streak(std::sync::Mutex<Option<SystemTime>>);

impl Streak {
    /// Record one check; returns the first failure of the current streak
    /// (`None` once a check succeeds).
    pub(crate) fn observe(&self, failing: bool) -> Option<SystemTime> {
        let mut since = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if failing {
            Some(*since.get_or_insert_with(SystemTime::now))
        } else {
            *since = None;
            None
        }
    }
}

/// The plain repository of `E` on one built endpoint.
#[cfg_attr(not(feature = "redis"), allow(unused_variables))]
pub(crate) fn raw_repo<E: Entity>(
    backend: &Backend,
    name: &str,
    cross: &CrossStore,
) -> Result<SharedRepository<E>> {
    let cross = cross.clone();
    Ok(match backend {
        #[cfg(relational)]
        Backend::Relational(store) => Arc::new(store.repository::<E>().with_cross_store(cross)),
        #[cfg(feature = "mongo")]
        Backend::Mongo(store) => Arc::new(store.repository::<E>().with_cross_store(cross)),
        Backend::Memory(store) => Arc::new(store.repository::<E>().with_cross_store(cross)),
        #[cfg(feature = "redis")]
        Backend::Redis(_) => {
            return Err(Error::config(format!(
                "database `{name}` is redis: it serves as a cache (cache.*.l2), not as an entity store"
            )));
        }
    })
}

pub(crate) fn has_endpoints(c: &DatabaseConfig) -> bool {
    !c.replicas.is_empty() || c.backup.is_some()
}

/// A `'static` ping of one endpoint, for the failover checker.
pub(crate) fn pinger(backend: &Backend) -> Pinger {
    match backend {
        #[cfg(relational)]
        Backend::Relational(store) => {
            let store = store.clone();
            Arc::new(move || {
                let store = store.clone();
                Box::pin(async move { ping(&Backend::Relational(store)).await })
            })
        }
        #[cfg(feature = "mongo")]
        Backend::Mongo(store) => {
            let store = store.clone();
            Arc::new(move || {
                let store = store.clone();
                Box::pin(async move { store.ping().await })
            })
        }
        #[cfg(feature = "redis")]
        Backend::Redis(client) => {
            let client = client.clone();
            Arc::new(move || {
                let client = client.clone();
                Box::pin(async move { client.ping().await })
            })
        }
        Backend::Memory(_) => Arc::new(|| Box::pin(async { Ok(()) })),
    }
}

pub(crate) async fn ping(backend: &Backend) -> Result<()> {
    match backend {
        #[cfg(relational)]
        Backend::Relational(store) => store
            .connection()
            .ping()
            .await
            .map_err(|e| Error::unavailable(format!("ping failed: {e}"))),
        #[cfg(feature = "mongo")]
        Backend::Mongo(store) => store.ping().await,
        #[cfg(feature = "redis")]
        // On a cluster: every primary must answer.
        Backend::Redis(client) => client.ping().await,
        Backend::Memory(_) => Ok(()),
    }
}

/// Connect (or, with `lazy`, prepare) the backend of `db` at `url`.
#[cfg_attr(not(relational), allow(unused_variables))]
pub(crate) async fn build(db: &Database, url: Option<&Secret>, lazy: bool) -> Result<Backend> {
    let c = &db.config;
    c.kind.check_compiled(&db.name)?;
    let url = url.map(|u| u.expose().to_string());
    Ok(match c.kind {
        #[cfg(relational)]
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
        #[cfg(feature = "mongo")]
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
        DatabaseKind::Memory => Backend::Memory(MemoryStore::new()),
        #[cfg(feature = "redis")]
        DatabaseKind::Redis => {
            // One connection, every wait bounded by the check timeout.
            let timeout = db.checks().check_timeout;
            let endpoint = redis_endpoint(&db.name, c, &url.unwrap_or_default())?;
            Backend::Redis(endpoint.connect(1, timeout)?)
        }
        #[allow(unreachable_patterns)] // every kind compiled in: check_compiled answered above
        kind => {
            return Err(Error::config(format!(
                "database `{}` is kind {}, which this build lacks",
                db.name,
                kind.name()
            )));
        }
    })
}

/// The Redis server of database `name` (`config`) at `url` — or its Redis
/// Cluster when `config.cluster` lists nodes (`url` is then unused) — with
/// its `tls` settings.
#[cfg(feature = "redis")]
pub(crate) fn redis_endpoint(
    name: &str,
    config: &crate::config::DatabaseConfig,
    url: &str,
) -> Result<persistence_cache::RedisEndpoint> {
    use persistence_cache::{RedisEndpoint, RedisTls};
    let nodes = || config.cluster.iter().map(|n| n.expose().to_string());
    let tls = config.tls.as_ref().map(|tls| RedisTls {
        root_cert: tls.root_cert.clone(),
        client_cert: tls.client_cert.clone(),
        client_key: tls.client_key.clone(),
    });
    let endpoint = match (&tls, config.cluster.is_empty()) {
        (None, true) => Ok(RedisEndpoint::new(url)),
        (Some(tls), true) => RedisEndpoint::with_tls(url, tls),
        (None, false) => RedisEndpoint::cluster(nodes()),
        (Some(tls), false) => RedisEndpoint::cluster_with_tls(nodes(), tls),
    };
    endpoint.map_err(|e| Error::config(format!("databases.{name}: {}", e.message())))
}

#[cfg(relational)]
/// A relational backend configuration from a URL, schema and the pool settings
/// of a configured (or registry-defined) database.
pub(crate) fn relational_config(
    url: String,
    schema: Option<String>,
    pool: &PoolConfig,
) -> RelationalConfig {
    let mut rc = RelationalConfig::new(url);
    rc.schema = schema;
    rc.max_connections = pool.max_connections;
    rc.min_connections = pool.min_connections;
    rc.acquire_timeout = pool.acquire_timeout;
    rc.idle_timeout = pool.idle_timeout;
    rc.max_lifetime = pool.max_lifetime;
    rc.statement_cache_capacity = pool.statement_cache_capacity;
    rc.tenant_shards = pool.tenant_shards;
    if let Some(r) = pool.tenant_routing {
        rc.tenant_routing = match r {
            crate::config::TenantRoutingConfig::Home => persistence_postgres::TenantRouting::Home,
            crate::config::TenantRoutingConfig::Spill => persistence_postgres::TenantRouting::Spill,
        };
    }
    if let Some(t) = pool.tenant_statements {
        rc.tenant_statements = match t {
            crate::config::TenantStatementsConfig::Qualified => {
                persistence_postgres::TenantStatements::Qualified
            }
            crate::config::TenantStatementsConfig::SearchPath => {
                persistence_postgres::TenantStatements::SearchPath
            }
        };
    }
    rc.statement_timeout = pool.statement_timeout;
    rc.application_name = pool.application_name.clone();
    rc
}

#[cfg(all(test, relational))]
mod tests {
    use super::*;

    #[test]
    fn pool_settings_reach_the_relational_config() {
        let pool = PoolConfig {
            max_connections: Some(16),
            statement_cache_capacity: Some(500),
            tenant_shards: Some(8),
            tenant_routing: Some(crate::config::TenantRoutingConfig::Spill),
            tenant_statements: Some(crate::config::TenantStatementsConfig::SearchPath),
            ..PoolConfig::default()
        };
        let rc = relational_config("postgres://h/db".into(), None, &pool);
        assert_eq!(rc.max_connections, Some(16));
        assert_eq!(rc.statement_cache_capacity, Some(500));
        assert_eq!(rc.tenant_shards, Some(8));
        assert_eq!(
            rc.tenant_routing,
            persistence_postgres::TenantRouting::Spill
        );
        assert_eq!(
            rc.tenant_statements,
            persistence_postgres::TenantStatements::SearchPath
        );
        let plain = relational_config("postgres://h/db".into(), None, &PoolConfig::default());
        assert_eq!(
            plain.tenant_routing,
            persistence_postgres::TenantRouting::Home
        );
        assert_eq!(
            plain.tenant_statements,
            persistence_postgres::TenantStatements::Qualified
        );
    }
}
