//! What the manager reports: health of every database (with the Redis
//! verdict for cache L2s), pool occupancy, cache layers' coherence state and
//! counters, failover topologies.

use std::sync::Arc;
use std::time::Instant;

use crate::Persistence;
use crate::database::ping;
use crate::failover::Topology;
use crate::health::{DatabaseHealth, HealthReport, HealthState};
use crate::pool::PoolStatus;
use persistence_cache::{CacheStatus, EntityTtl, L1Config, ReadPolicy, Stats as CacheStats};

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
    /// Each entity cached through it so far, by entity name.
    pub entities: std::collections::BTreeMap<String, CachedEntityStatus>,
}

/// The settings one cached entity type got ([`CacheLayerStatus::entities`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CachedEntityStatus {
    /// Effective TTLs: `ttl`, `negative_ttl`, `l1_ttl`, `l2_ttl`
    /// ([`EntityTtl::l1`] / [`EntityTtl::l2`] resolve the defaults).
    pub ttl: EntityTtl,
    /// Its L1 settings (`max_bytes`: `l1_max_bytes`).
    pub l1: Option<L1Config>,
    /// Its read policy (`fail_safe`, `soft_timeout`, `hard_timeout`,
    /// `eager_refresh`, `lease`).
    pub read: ReadPolicy,
}

impl Persistence {
    /// Occupancy of database `db`'s connection pool: `None` when it is not
    /// configured, not built yet (databases are built on first use) or has no
    /// pool the manager can see (MongoDB, memory, Redis).
    pub fn pool_status(&self, db: &str) -> Option<PoolStatus> {
        crate::pool::status(self.database(db).ok()?)
    }

    /// The coherence state of every cache layer built so far (one per
    /// database, L2 and backplane setting): whether its Redis answers, its
    /// backplane is connected, when it last heard a heartbeat, and how many
    /// invalidations wait for Redis.
    pub fn cache_status(&self) -> Vec<CacheLayerStatus> {
        let Ok(layers) = self.cache_layers.lock() else {
            return Vec::new();
        };
        let ttls = self
            .cache_ttls
            .lock()
            .map(|t| t.clone())
            .unwrap_or_default();
        let mut out: Vec<CacheLayerStatus> = layers
            .iter()
            .map(|(key, layer)| CacheLayerStatus {
                database: key.0.clone(),
                l2: key.1.clone(),
                backplane: has_backplane(layer),
                status: layer.status(),
                entities: ttls
                    .iter()
                    .filter(|(_, (k, _, _))| k == key)
                    .map(|((_, entity), (_, ttl, read))| {
                        let status = CachedEntityStatus {
                            ttl: *ttl,
                            l1: layer.entity_l1(entity),
                            read: *read,
                        };
                        ((*entity).to_string(), status)
                    })
                    .collect(),
            })
            .collect();
        out.sort_by(|a, b| {
            (&a.database, &a.l2, a.backplane).cmp(&(&b.database, &b.l2, b.backplane))
        });
        out
    }

    /// The failover topology of database `name` (which endpoints answer,
    /// calls routed to each), once built; `None` without replicas or backup.
    pub fn topology(&self, name: &str) -> Option<Arc<Topology>> {
        let db = self.database(name).ok()?;
        db.failover.get()?.as_ref().map(|f| f.topology.clone())
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
                #[cfg(feature = "redis")]
                if db.config.kind == crate::config::DatabaseKind::Redis {
                    // A Redis pool connects on first use: build it here, so an
                    // unused (or not yet used) Redis is asked, not `Unknown`.
                    if let Err(e) = self.backend(db).await {
                        return DatabaseHealth {
                            name: db.name.clone(),
                            kind,
                            state: HealthState::Unhealthy,
                            latency: None,
                            since: db.streak.observe(true),
                            error: Some(e.to_string()),
                            pool: None,
                            endpoints: Vec::new(),
                        };
                    }
                }
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
                    #[cfg(feature = "redis")]
                    crate::database::Backend::Redis(_) => {
                        self.redis_verdict(&db.name, state, error).await
                    }
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

    /// A Redis database named as cache L2 (`cache.*.l2`): when it does not
    /// answer, or a cache's own pool does not get a `PING` answered, or a
    /// cache's backplane is not subscribed, the caches fall back to L1 and
    /// the database (shorter L1 TTL), so it is `Degraded`, not `Unhealthy`.
    /// A Redis that no cache policy names stays `Unhealthy` when it does not
    /// answer. The pool is the sum over the caches' Redis pools.
    #[cfg(feature = "redis")]
    async fn redis_verdict(
        &self,
        name: &str,
        state: HealthState,
        error: Option<String>,
    ) -> (HealthState, Option<String>, Option<PoolStatus>) {
        let layers: Vec<(String, persistence_cache::CacheLayer)> = self
            .cache_layers
            .lock()
            .map(|layers| {
                layers
                    .iter()
                    .filter(|((_, l2, _), _)| l2.as_deref() == Some(name))
                    .map(|((db, _, _), layer)| (db.clone(), layer.clone()))
                    .collect()
            })
            .unwrap_or_default();
        // Each cache's own pool is asked too (bounded by its L2 timeout):
        // that pool serves the traffic, and may fail while this one answers.
        let pings = futures_util::future::join_all(
            layers
                .iter()
                .map(|(db, layer)| async move { (db, layer.ping_l2().await) }),
        )
        .await;
        let statuses: Vec<(Option<persistence_cache::L2Status>, CacheStatus)> = layers
            .iter()
            .map(|(_, layer)| (layer.l2_status(), layer.status()))
            .collect();
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
        let is_l2 = self.config.cache.is_l2(name);
        let down = state == HealthState::Unhealthy;
        let mut error = match error {
            Some(e) if down && is_l2 => Some(format!(
                "redis down (caches serve from L1 and the database): {e}"
            )),
            Some(e) if down => Some(format!("redis down: {e}")),
            other => other,
        };
        let mut state = match state {
            HealthState::Unhealthy if is_l2 => HealthState::Degraded,
            s => s,
        };
        let failed: Vec<String> = pings
            .into_iter()
            .filter_map(|(db, out)| match out {
                Some(Err(e)) => Some(format!("cache of `{db}`: {e}")),
                _ => None,
            })
            .collect();
        if !failed.is_empty() && error.is_none() {
            state = HealthState::Degraded;
            error = Some(format!("cache L2 PING failed: {}", failed.join("; ")));
        }
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
}

/// Whether a cache layer has a backplane (only with Redis).
fn has_backplane(layer: &persistence_cache::CacheLayer) -> bool {
    #[cfg(feature = "redis")]
    return layer.has_backplane();
    #[cfg(not(feature = "redis"))]
    {
        let _ = layer;
        false
    }
}
