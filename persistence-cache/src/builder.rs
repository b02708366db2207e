//! [`CacheLayerBuilder`]: validates the settings and builds a [`CacheLayer`]
//! — the Redis pool, the tag store, the backplane and the invalidation queue's
//! task (the factory, kept apart from the layer it builds).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use persistence_core::{Error, Result};

#[cfg(feature = "redis")]
use crate::backplane::Backplane;
#[cfg(feature = "redis")]
use crate::config::{
    DEFAULT_DEGRADED_TTL, DEFAULT_HEARTBEAT, DEFAULT_MAX_QUEUED, HEARTBEAT_TIMEOUT_TICKS,
};
use crate::config::{EntityTtl, L1Config, Lease, ReadPolicy};
#[cfg(feature = "redis")]
use crate::connect::RedisEndpoint;
use crate::keys::validate_prefix;
#[cfg(feature = "redis")]
use crate::l2::L2;
use crate::layer::CacheLayer;
#[cfg(feature = "redis")]
use crate::outbox::{self, Outbox};
use crate::shared::Shared;
use crate::tags::store::TagStore;

impl CacheLayer {
    /// Start configuring a layer (L1 only, TTL 5 min, negative TTL 30 s, jitter 10 %).
    pub fn builder() -> CacheLayerBuilder {
        CacheLayerBuilder::default()
    }
}

/// Builder of a [`CacheLayer`].
pub struct CacheLayerBuilder {
    prefix: String,
    ttl: EntityTtl,
    per_entity: HashMap<String, EntityTtl>,
    per_entity_l1: HashMap<String, L1Config>,
    read: ReadPolicy,
    per_entity_read: HashMap<String, ReadPolicy>,
    write_through: bool,
    per_entity_write_through: HashMap<String, bool>,
    jitter: f64,
    l1: Option<L1Config>,
    db_label: Option<String>,
    #[cfg(feature = "redis")]
    redis: RedisSettings,
}

impl std::fmt::Debug for CacheLayerBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("CacheLayerBuilder");
        d.field("prefix", &self.prefix)
            .field("ttl", &self.ttl)
            .field("l1", &self.l1);
        #[cfg(feature = "redis")]
        d.field("l2", &self.redis.source.is_some());
        d.finish()
    }
}

impl Default for CacheLayerBuilder {
    fn default() -> Self {
        CacheLayerBuilder {
            prefix: "app".to_string(),
            ttl: EntityTtl::new(Duration::from_secs(300), Duration::from_secs(30)),
            per_entity: HashMap::new(),
            per_entity_l1: HashMap::new(),
            read: ReadPolicy::default(),
            per_entity_read: HashMap::new(),
            write_through: true,
            per_entity_write_through: HashMap::new(),
            jitter: 0.1,
            l1: Some(L1Config::default()),
            db_label: None,
            #[cfg(feature = "redis")]
            redis: RedisSettings::default(),
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
    /// Default L1 lifetime, when it differs from the [TTL](Self::ttl).
    pub fn l1_ttl(mut self, ttl: Duration) -> Self {
        self.ttl.l1_ttl = Some(ttl);
        self
    }
    /// Default L2 lifetime, when it differs from the [TTL](Self::ttl).
    pub fn l2_ttl(mut self, ttl: Duration) -> Self {
        self.ttl.l2_ttl = Some(ttl);
        self
    }
    /// TTLs for one entity type (by its logical name, `E::meta().name`).
    pub fn entity_ttl(self, entity: &str, ttl: Duration, negative_ttl: Duration) -> Self {
        self.entity_ttls(entity, EntityTtl::new(ttl, negative_ttl))
    }
    /// TTLs for one entity type, with separate L1 / L2 lifetimes if set.
    pub fn entity_ttls(mut self, entity: &str, ttls: EntityTtl) -> Self {
        self.per_entity.insert(entity.to_string(), ttls);
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
    /// L1 settings of one entity type (by its logical name), e.g. its own
    /// [`max_bytes`](L1Config::max_bytes); others use [`l1`](Self::l1)'s.
    /// Needs L1.
    pub fn entity_l1(mut self, entity: &str, config: L1Config) -> Self {
        self.per_entity_l1.insert(entity.to_string(), config);
        self
    }
    /// Default [read policy](ReadPolicy): fail-safe, soft / hard load
    /// timeouts, eager refresh (all off unless set).
    pub fn read_policy(mut self, policy: ReadPolicy) -> Self {
        self.read = policy;
        self
    }
    /// The read policy of one entity type (by its logical name); others use
    /// [`read_policy`](Self::read_policy)'s.
    pub fn entity_read_policy(mut self, entity: &str, policy: ReadPolicy) -> Self {
        self.per_entity_read.insert(entity.to_string(), policy);
        self
    }
    /// Write-through (on by default): a write that returns the stored row
    /// (`insert`, `update`, `upsert`, `patch`) and overlapped no other
    /// write of the same key stores that row in L2 and this instance's L1
    /// instead of only invalidating, so the next read is a hit. Any overlap,
    /// failure or unknown outcome falls back to the invalidation. Costs one
    /// more Redis round trip per write (the in-flight mark before it); see
    /// the crate's README, "Write-through".
    pub fn write_through(mut self, on: bool) -> Self {
        self.write_through = on;
        self
    }
    /// Write-through of one entity type (by its logical name); others use
    /// [`write_through`](Self::write_through)'s.
    pub fn entity_write_through(mut self, entity: &str, on: bool) -> Self {
        self.per_entity_write_through.insert(entity.to_string(), on);
        self
    }
    /// Cross-process stampede protection for every entity type (see
    /// [`Lease`]; needs L2): sets the lease of the default
    /// [read policy](Self::read_policy), so call it after that one.
    /// Entities with their own read policy take its lease (or none).
    pub fn lease(mut self, lease: Lease) -> Self {
        self.read.lease = Some(lease);
        self
    }
    /// No L1 (L2 only).
    #[cfg(feature = "redis")]
    pub fn without_l1(mut self) -> Self {
        self.l1 = None;
        self
    }
    /// Use Redis at `url` as L2.
    #[cfg(feature = "redis")]
    pub fn redis_url(mut self, url: impl Into<String>) -> Self {
        self.redis.source = Some(L2Source::Url(RedisEndpoint::new(url)));
        self
    }
    /// Use the Redis server `endpoint` (a URL with TLS settings, see
    /// [`RedisEndpoint::with_tls`]) or the Redis Cluster
    /// ([`RedisEndpoint::cluster`]) as L2; like [`redis_url`](Self::redis_url).
    #[cfg(feature = "redis")]
    pub fn redis_endpoint(mut self, endpoint: RedisEndpoint) -> Self {
        self.redis.source = Some(L2Source::Url(endpoint));
        self
    }
    /// Use an existing deadpool-redis pool as L2.
    #[cfg(feature = "redis")]
    pub fn redis_pool(mut self, pool: deadpool_redis::Pool) -> Self {
        self.redis.source = Some(L2Source::Pool(pool));
        self
    }
    /// Time budget of one Redis operation (default 250 ms); past it the
    /// operation counts as failed and the fail-safe applies.
    #[cfg(feature = "redis")]
    pub fn l2_timeout(mut self, timeout: Duration) -> Self {
        self.redis.timeout = timeout;
        self
    }

    /// Cross-instance L1 invalidation over Redis pub/sub (needs L1 and
    /// [`redis_url`](Self::redis_url); build inside a tokio runtime).
    #[cfg(feature = "redis")]
    pub fn backplane(mut self, on: bool) -> Self {
        self.redis.backplane = on;
        self
    }
    /// Longest L1 lifetime while the backplane is disconnected (default 1 s).
    #[cfg(feature = "redis")]
    pub fn backplane_degraded_ttl(mut self, ttl: Duration) -> Self {
        self.redis.degraded_ttl = ttl;
        self
    }
    /// Interval of the backplane's heartbeat ticks (default 250 ms). Every
    /// instance publishes one per interval; a subscriber that hears nothing
    /// for the [heartbeat timeout](Self::heartbeat_timeout) treats Redis as
    /// stalled (drops L1, degraded TTL, reconnects).
    #[cfg(feature = "redis")]
    pub fn heartbeat(mut self, every: Duration) -> Self {
        self.redis.heartbeat = every;
        self
    }
    /// Silence after which the backplane counts as lost (default 3 heartbeat
    /// intervals; must exceed one interval).
    #[cfg(feature = "redis")]
    pub fn heartbeat_timeout(mut self, timeout: Duration) -> Self {
        self.redis.heartbeat_timeout = Some(timeout);
        self
    }
    /// Most entity keys whose invalidation may wait for Redis (default
    /// 10 000); past it, the entity type that overflows is invalidated
    /// entirely instead (one message, all its entries dead).
    #[cfg(feature = "redis")]
    pub fn max_queued_invalidations(mut self, n: usize) -> Self {
        self.redis.max_queued = n;
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
        self.ttl.validate()?;
        for (entity, t) in &self.per_entity {
            t.validate()
                .map_err(|e| Error::config(format!("{} (entity {entity})", e.message())))?;
        }
        self.read.validate()?;
        for (entity, p) in &self.per_entity_read {
            p.validate()
                .map_err(|e| Error::config(format!("{} (entity {entity})", e.message())))?;
        }
        if self.l1.is_none() && !self.per_entity_l1.is_empty() {
            return Err(Error::config(
                "per-entity L1 settings were given to a layer without L1",
            ));
        }
        let l1s = self.l1.iter().map(|c| (None, c));
        let entity_l1s = self.per_entity_l1.iter().map(|(e, c)| (Some(e), c));
        if let Some((entity, _)) = l1s
            .chain(entity_l1s)
            .find(|(_, c)| c.max_bytes == Some(0) || c.max_weight == 0)
        {
            let of = entity.map(|e| format!(" (entity {e})")).unwrap_or_default();
            return Err(Error::config(format!(
                "cache L1 capacity (l1_max_bytes / max_weight) must be positive{of}"
            )));
        }
        #[cfg(feature = "redis")]
        let l2 = self.redis.open_l2(self.l1.is_some())?;
        #[cfg(feature = "redis")]
        let has_l2 = l2.is_some();
        #[cfg(not(feature = "redis"))]
        let has_l2 = false;
        let leased = std::iter::once((None, &self.read))
            .chain(self.per_entity_read.iter().map(|(e, p)| (Some(e), p)))
            .find(|(_, p)| p.lease.is_some());
        if let (Some((entity, _)), false) = (leased, has_l2) {
            let of = entity.map(|e| format!(" (entity {e})")).unwrap_or_default();
            return Err(Error::config(format!(
                "cache lease needs L2 (redis_url): the lease lives in Redis{of}"
            )));
        }
        let tags = Arc::new(TagStore::new(self.l1.map(|c| c.max_weight)));
        #[cfg(feature = "redis")]
        let backplane =
            self.redis
                .start_backplane(&self.prefix, self.l1.is_some(), l2.clone(), &tags)?;
        let shared = Arc::new(Shared {
            prefix: self.prefix,
            default_ttl: self.ttl,
            per_entity: self.per_entity,
            per_entity_l1: self.per_entity_l1,
            default_read: self.read,
            per_entity_read: self.per_entity_read,
            write_through: self.write_through,
            per_entity_write_through: self.per_entity_write_through,
            jitter: self.jitter,
            tags,
            l1: self.l1,
            #[cfg(feature = "redis")]
            backplane,
            #[cfg(feature = "redis")]
            l2: l2.map(|(_, l2)| l2),
            #[cfg(feature = "redis")]
            outbox: Outbox::new(self.redis.max_queued),
            db_label: self.db_label.map(Arc::from),
            wrapped: parking_lot::Mutex::new(Vec::new()),
        });
        #[cfg(feature = "redis")]
        outbox::start(&shared);
        Ok(CacheLayer { shared })
    }
}

#[cfg(feature = "redis")]
enum L2Source {
    Url(RedisEndpoint),
    Pool(deadpool_redis::Pool),
}

/// The builder's Redis settings (L2, backplane, invalidation queue).
#[cfg(feature = "redis")]
struct RedisSettings {
    source: Option<L2Source>,
    timeout: Duration,
    pool_size: usize,
    backplane: bool,
    degraded_ttl: Duration,
    heartbeat: Duration,
    heartbeat_timeout: Option<Duration>,
    max_queued: usize,
}

#[cfg(feature = "redis")]
impl Default for RedisSettings {
    fn default() -> Self {
        RedisSettings {
            source: None,
            timeout: Duration::from_millis(250),
            pool_size: 16,
            backplane: false,
            degraded_ttl: DEFAULT_DEGRADED_TTL,
            heartbeat: DEFAULT_HEARTBEAT,
            heartbeat_timeout: None,
            max_queued: DEFAULT_MAX_QUEUED,
        }
    }
}

#[cfg(feature = "redis")]
impl RedisSettings {
    fn heartbeat_timeout(&self) -> Duration {
        self.heartbeat_timeout
            .unwrap_or(self.heartbeat * HEARTBEAT_TIMEOUT_TICKS)
    }

    /// Validate and open L2: `(its URL when given as one, the client)`, or
    /// None without L2.
    fn open_l2(&self, has_l1: bool) -> Result<Option<(Option<RedisEndpoint>, Arc<L2>)>> {
        if !has_l1 && self.source.is_none() {
            return Err(Error::config("a cache layer needs L1, L2 or both"));
        }
        let heartbeat_timeout = self.heartbeat_timeout();
        if self.heartbeat.is_zero() || heartbeat_timeout <= self.heartbeat {
            return Err(Error::config(
                "cache heartbeat must be positive and its timeout longer than one heartbeat",
            ));
        }
        if self.degraded_ttl.is_zero() {
            return Err(Error::config("cache degraded TTL must be positive"));
        }
        Ok(match &self.source {
            None => None,
            Some(L2Source::Pool(pool)) => {
                Some((None, Arc::new(L2::new(pool.clone().into(), self.timeout))))
            }
            Some(L2Source::Url(endpoint)) => {
                let client = endpoint.connect(self.pool_size, self.timeout)?;
                Some((
                    Some(endpoint.clone()),
                    Arc::new(L2::new(client, self.timeout)),
                ))
            }
        })
    }

    /// The backplane, when asked for (needs L1, L2 by URL and a tokio runtime).
    fn start_backplane(
        &self,
        prefix: &str,
        has_l1: bool,
        l2: Option<(Option<RedisEndpoint>, Arc<L2>)>,
        tags: &Arc<TagStore>,
    ) -> Result<Option<Arc<Backplane>>> {
        let by_url = l2.and_then(|(url, l2)| url.map(|u| (u, l2)));
        match (self.backplane, by_url) {
            (false, _) => Ok(None),
            (true, None) => Err(Error::config(
                "the cache backplane needs L2 configured with redis_url",
            )),
            (true, Some(_)) if !has_l1 => Err(Error::config("the cache backplane needs L1")),
            (true, Some((url, l2))) => {
                if tokio::runtime::Handle::try_current().is_err() {
                    return Err(Error::config(
                        "build a layer with a backplane inside a tokio runtime",
                    ));
                }
                let bp = Arc::new(Backplane::new(
                    prefix,
                    self.degraded_ttl,
                    self.heartbeat,
                    self.heartbeat_timeout(),
                ));
                let weak_tags = Arc::downgrade(tags);
                bp.set_tag_sink(Box::new(move |tag| {
                    if let Some(t) = weak_tags.upgrade() {
                        t.bump(tag);
                    }
                }));
                bp.start(url, l2);
                Ok(Some(bp))
            }
        }
    }
}
