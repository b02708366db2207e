//! Configuration: [`CacheLayer`] and its builder.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use deadpool_redis::{PoolConfig, Runtime, Timeouts};
use persistence_core::error::redact_url;
use persistence_core::{Entity, Error, Repository, Result};

use crate::keys::validate_prefix;
use crate::l2::L2;
use crate::repository::CachedRepository;

/// L1 (in-process, moka) settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct L1Config {
    /// Capacity in weight units: one per cached entity or scalar result
    /// (a `find` result weighs as many units as it has rows).
    pub max_weight: u64,
    /// Drop entries not read for this long (on top of the TTL).
    pub time_to_idle: Option<Duration>,
}

impl Default for L1Config {
    fn default() -> Self {
        L1Config {
            max_weight: 10_000,
            time_to_idle: None,
        }
    }
}

/// TTLs of one entity type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntityTtl {
    /// Lifetime of cached entities and query results.
    pub ttl: Duration,
    /// Lifetime of a cached "not found" (usually shorter).
    pub negative_ttl: Duration,
}

/// Settings shared by every cached repository of one layer.
#[derive(Debug)]
pub(crate) struct Shared {
    pub prefix: String,
    pub default_ttl: EntityTtl,
    pub per_entity: HashMap<String, EntityTtl>,
    pub jitter: f64,
    pub l1: Option<L1Config>,
    pub l2: Option<Arc<L2>>,
    pub tags: Arc<crate::tags::TagStore>,
    pub backplane: Option<Arc<crate::backplane::Backplane>>,
    pub outbox: crate::outbox::Outbox,
    pub db_label: Option<Arc<str>>,
}

impl Shared {
    /// Redis answered: send what is queued, if anything.
    pub(crate) fn redis_answered(&self) {
        if !self.outbox.is_empty() || !self.tags.pending_is_empty() {
            self.outbox.poke();
        }
    }
}

/// The coherence state of a [`CacheLayer`] (see [`CacheLayer::status`]), for
/// health checks and dashboards.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheStatus {
    /// `None` without L2; else whether the last Redis operation of the layer
    /// (a read, a write's invalidation, a heartbeat) succeeded.
    pub l2_up: Option<bool>,
    /// `None` without a backplane; else whether it is subscribed and hearing
    /// heartbeats (while false, L1 entries live at most the degraded TTL).
    pub backplane_connected: Option<bool>,
    /// When the backplane last received a heartbeat or message.
    pub last_heartbeat: Option<std::time::Instant>,
    /// Invalidations waiting for Redis to answer (entity keys, entity types
    /// to invalidate entirely, and tags).
    pub queued_invalidations: usize,
}

impl CacheStatus {
    /// True when nothing is degraded: L2 (if any) answers, the backplane (if
    /// any) is connected and nothing is queued.
    pub fn is_healthy(&self) -> bool {
        self.l2_up != Some(false)
            && self.backplane_connected != Some(false)
            && self.queued_invalidations == 0
    }
}

/// A cache layer: wraps repositories into [`CachedRepository`]s sharing one
/// configuration and one Redis pool. Cheap to clone.
///
/// ```
/// use persistence_cache::CacheLayer;
/// use persistence_core::{Entity, MemoryRepository, Repository};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
/// struct Note { #[entity(id)] id: i64, text: String }
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let layer = CacheLayer::builder().prefix("docs").build()?; // L1 only
/// let notes = layer.wrap(MemoryRepository::<Note>::new());
/// notes.insert(&Note { id: 1, text: "hi".into() }).await?;
/// assert_eq!(notes.get(&1).await?.map(|n| n.text), Some("hi".into()));
/// # Ok::<(), persistence_core::Error>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct CacheLayer {
    pub(crate) shared: Arc<Shared>,
}

impl CacheLayer {
    /// Start configuring a layer (L1 only, TTL 5 min, negative TTL 30 s, jitter 10 %).
    pub fn builder() -> CacheLayerBuilder {
        CacheLayerBuilder::default()
    }

    /// Wrap a repository. Each call creates an independent cache (its own L1
    /// and local generations): wrap once per repository and clone the
    /// [`CachedRepository`] (clones share the cache). Separate instances over
    /// the same data (other processes, or a second `wrap`) see each other's
    /// writes in L2 at once, and in L1 through the [backplane](CacheLayerBuilder::backplane)
    /// or after the TTL.
    pub fn wrap<E: Entity, R: Repository<E> + 'static>(&self, repo: R) -> CachedRepository<E, R> {
        CachedRepository::new(self.shared.clone(), repo)
    }

    /// The coherence state: L2 reachable, backplane connected, last
    /// heartbeat, invalidations queued while Redis is unreachable.
    pub fn status(&self) -> CacheStatus {
        let s = &self.shared;
        CacheStatus {
            l2_up: s.l2.as_ref().map(|l2| l2.is_up()),
            backplane_connected: s.backplane.as_ref().map(|b| b.connected()),
            last_heartbeat: s.backplane.as_ref().and_then(|b| b.last_heartbeat()),
            queued_invalidations: s.outbox.len() + s.tags.pending_len(),
        }
    }

    /// True when a backplane is configured.
    pub fn has_backplane(&self) -> bool {
        self.shared.backplane.is_some()
    }

    /// True when L2 (Redis) is configured.
    pub fn has_l2(&self) -> bool {
        self.shared.l2.is_some()
    }

    /// True while the backplane is subscribed and hearing heartbeats (false without one).
    pub fn backplane_connected(&self) -> bool {
        self.shared
            .backplane
            .as_ref()
            .is_some_and(|b| b.connected())
    }

    /// The default TTLs (of entity types without their own).
    pub fn default_ttl(&self) -> EntityTtl {
        self.shared.default_ttl
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        &self.shared.prefix
    }

    /// The Redis connection pool's occupancy, for health checks (coherence
    /// state: [`CacheLayer::status`]); `None` without L2.
    pub fn l2_status(&self) -> Option<L2Status> {
        let pool = self.shared.l2.as_ref()?.pool_status();
        Some(L2Status {
            pool_max: pool.max_size,
            pool_size: pool.size,
            pool_idle: pool.available,
            pool_waiting: pool.waiting,
        })
    }
}

/// The Redis side of a [`CacheLayer`] (see [`CacheLayer::l2_status`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct L2Status {
    /// Most pooled connections.
    pub pool_max: usize,
    /// Connections open.
    pub pool_size: usize,
    /// Open connections idle in the pool.
    pub pool_idle: usize,
    /// Callers waiting for a connection.
    pub pool_waiting: usize,
}

enum L2Source {
    Url(String),
    Pool(deadpool_redis::Pool),
}

/// Default longest L1 lifetime while the backplane is disconnected.
pub const DEFAULT_DEGRADED_TTL: Duration = Duration::from_secs(1);
/// Default interval of backplane heartbeat ticks.
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_millis(250);
/// Default heartbeat timeout, in heartbeat intervals.
pub const HEARTBEAT_TIMEOUT_TICKS: u32 = 3;
/// Default bound of the invalidation queue (entity keys).
pub const DEFAULT_MAX_QUEUED: usize = 10_000;

/// Builder of a [`CacheLayer`].
pub struct CacheLayerBuilder {
    prefix: String,
    ttl: EntityTtl,
    per_entity: HashMap<String, EntityTtl>,
    jitter: f64,
    l1: Option<L1Config>,
    l2: Option<L2Source>,
    l2_timeout: Duration,
    pool_size: usize,
    backplane: bool,
    degraded_ttl: Duration,
    heartbeat: Duration,
    heartbeat_timeout: Option<Duration>,
    max_queued: usize,
    db_label: Option<String>,
}

impl std::fmt::Debug for CacheLayerBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheLayerBuilder")
            .field("prefix", &self.prefix)
            .field("ttl", &self.ttl)
            .field("l1", &self.l1)
            .field("l2", &self.l2.is_some())
            .finish()
    }
}

impl Default for CacheLayerBuilder {
    fn default() -> Self {
        CacheLayerBuilder {
            prefix: "app".to_string(),
            ttl: EntityTtl {
                ttl: Duration::from_secs(300),
                negative_ttl: Duration::from_secs(30),
            },
            per_entity: HashMap::new(),
            jitter: 0.1,
            l1: Some(L1Config::default()),
            l2: None,
            l2_timeout: Duration::from_millis(250),
            pool_size: 16,
            backplane: false,
            degraded_ttl: DEFAULT_DEGRADED_TTL,
            heartbeat: DEFAULT_HEARTBEAT,
            heartbeat_timeout: None,
            max_queued: DEFAULT_MAX_QUEUED,
            db_label: None,
        }
    }
}

impl CacheLayerBuilder {
    /// Key prefix (per app / tenant): 1..=64 bytes of `[A-Za-z0-9_.-]`.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }
    /// Default TTL of entries.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl.ttl = ttl;
        self
    }
    /// Default TTL of cached "not found" results.
    pub fn negative_ttl(mut self, ttl: Duration) -> Self {
        self.ttl.negative_ttl = ttl;
        self
    }
    /// TTLs for one entity type (by its logical name, `E::meta().name`).
    pub fn entity_ttl(mut self, entity: &str, ttl: Duration, negative_ttl: Duration) -> Self {
        self.per_entity
            .insert(entity.to_string(), EntityTtl { ttl, negative_ttl });
        self
    }
    /// TTL jitter in `[0, 1)`: each entry lives `ttl * (1 - jitter * u)`, `u` uniform in `[0, 1)`,
    /// so entries loaded together do not expire together.
    pub fn jitter(mut self, jitter: f64) -> Self {
        self.jitter = jitter;
        self
    }
    /// Configure L1 (on by default).
    pub fn l1(mut self, config: L1Config) -> Self {
        self.l1 = Some(config);
        self
    }
    /// No L1 (L2 only).
    pub fn without_l1(mut self) -> Self {
        self.l1 = None;
        self
    }
    /// Use Redis at `url` as L2.
    pub fn redis_url(mut self, url: impl Into<String>) -> Self {
        self.l2 = Some(L2Source::Url(url.into()));
        self
    }
    /// Use an existing deadpool-redis pool as L2.
    pub fn redis_pool(mut self, pool: deadpool_redis::Pool) -> Self {
        self.l2 = Some(L2Source::Pool(pool));
        self
    }
    /// Time budget of one Redis operation (default 250 ms); past it the
    /// operation counts as failed and the fail-safe applies.
    pub fn l2_timeout(mut self, timeout: Duration) -> Self {
        self.l2_timeout = timeout;
        self
    }

    /// Cross-instance L1 invalidation over Redis pub/sub (needs L1 and
    /// [`redis_url`](Self::redis_url); build inside a tokio runtime).
    pub fn backplane(mut self, on: bool) -> Self {
        self.backplane = on;
        self
    }
    /// Longest L1 lifetime while the backplane is disconnected (default 1 s).
    pub fn backplane_degraded_ttl(mut self, ttl: Duration) -> Self {
        self.degraded_ttl = ttl;
        self
    }
    /// Interval of the backplane's heartbeat ticks (default 250 ms). Every
    /// instance publishes one per interval; a subscriber that hears nothing
    /// for the [heartbeat timeout](Self::heartbeat_timeout) treats Redis as
    /// stalled (drops L1, degraded TTL, reconnects).
    pub fn heartbeat(mut self, every: Duration) -> Self {
        self.heartbeat = every;
        self
    }
    /// Silence after which the backplane counts as lost (default 3 heartbeat
    /// intervals; must exceed one interval).
    pub fn heartbeat_timeout(mut self, timeout: Duration) -> Self {
        self.heartbeat_timeout = Some(timeout);
        self
    }
    /// Most entity keys whose invalidation may wait for Redis (default
    /// 10 000); past it, the entity type that overflows is invalidated
    /// entirely instead (one message, all its entries dead).
    pub fn max_queued_invalidations(mut self, n: usize) -> Self {
        self.max_queued = n;
        self
    }

    /// Add the label `db` = `name` to every cache counter of this layer (the
    /// `persistence` manager passes the configured database name).
    pub fn db_label(mut self, name: impl Into<String>) -> Self {
        self.db_label = Some(name.into());
        self
    }

    /// Validate and build.
    pub fn build(self) -> Result<CacheLayer> {
        validate_prefix(&self.prefix)?;
        if !(0.0..1.0).contains(&self.jitter) {
            return Err(Error::config("cache TTL jitter must be in [0, 1)"));
        }
        let check = |t: &EntityTtl| {
            if t.ttl.is_zero() || t.negative_ttl.is_zero() {
                Err(Error::config("cache TTLs must be positive"))
            } else {
                Ok(())
            }
        };
        check(&self.ttl)?;
        self.per_entity.values().try_for_each(check)?;
        if self.l1.is_none() && self.l2.is_none() {
            return Err(Error::config("a cache layer needs L1, L2 or both"));
        }
        let heartbeat_timeout = self
            .heartbeat_timeout
            .unwrap_or(self.heartbeat * HEARTBEAT_TIMEOUT_TICKS);
        if self.heartbeat.is_zero() || heartbeat_timeout <= self.heartbeat {
            return Err(Error::config(
                "cache heartbeat must be positive and its timeout longer than one heartbeat",
            ));
        }
        if self.degraded_ttl.is_zero() {
            return Err(Error::config("cache degraded TTL must be positive"));
        }
        let l2_url = match &self.l2 {
            Some(L2Source::Url(u)) => Some(u.clone()),
            _ => None,
        };
        let l2 = match self.l2 {
            None => None,
            Some(L2Source::Pool(pool)) => Some(Arc::new(L2::new(pool, self.l2_timeout))),
            Some(L2Source::Url(url)) => {
                let mut cfg = deadpool_redis::Config::from_url(url.clone());
                let mut pool_cfg = PoolConfig::new(self.pool_size);
                pool_cfg.timeouts = Timeouts {
                    wait: Some(self.l2_timeout),
                    create: Some(self.l2_timeout),
                    recycle: Some(self.l2_timeout),
                };
                cfg.pool = Some(pool_cfg);
                // The pool error may echo the URL (with its password): not kept as source.
                let pool = cfg.create_pool(Some(Runtime::Tokio1)).map_err(|_| {
                    Error::config(format!("invalid redis url {}", redact_url(&url)))
                })?;
                Some(Arc::new(L2::new(pool, self.l2_timeout)))
            }
        };
        let tags = Arc::new(crate::tags::TagStore::new(self.l1.map(|c| c.max_weight)));
        let backplane = match (self.backplane, l2_url.zip(l2.clone())) {
            (false, _) => None,
            (true, None) => {
                return Err(Error::config(
                    "the cache backplane needs L2 configured with redis_url",
                ));
            }
            (true, Some(_)) if self.l1.is_none() => {
                return Err(Error::config("the cache backplane needs L1"));
            }
            (true, Some((url, l2))) => {
                if tokio::runtime::Handle::try_current().is_err() {
                    return Err(Error::config(
                        "build a layer with a backplane inside a tokio runtime",
                    ));
                }
                let bp = Arc::new(crate::backplane::Backplane::new(
                    &self.prefix,
                    self.degraded_ttl,
                    self.heartbeat,
                    heartbeat_timeout,
                ));
                let weak_tags = Arc::downgrade(&tags);
                bp.set_tag_sink(Box::new(move |tag| {
                    if let Some(t) = weak_tags.upgrade() {
                        t.bump(tag);
                    }
                }));
                bp.start(url, l2);
                Some(bp)
            }
        };
        let shared = Arc::new(Shared {
            prefix: self.prefix,
            default_ttl: self.ttl,
            per_entity: self.per_entity,
            jitter: self.jitter,
            tags,
            backplane,
            l1: self.l1,
            l2,
            outbox: crate::outbox::Outbox::new(self.max_queued),
            db_label: self.db_label.map(Arc::from),
        });
        crate::outbox::start(&shared);
        Ok(CacheLayer { shared })
    }
}
