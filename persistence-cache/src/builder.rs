//! [`CacheLayerBuilder`]: validates the settings and builds a [`CacheLayer`]
//! — the Redis pool, the tag store, the backplane and the invalidation queue's
//! task (the factory, kept apart from the layer it builds).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use deadpool_redis::{PoolConfig, Runtime, Timeouts};
use persistence_core::error::redact_url;
use persistence_core::{Error, Result};

use crate::backplane::Backplane;
use crate::config::{
    DEFAULT_DEGRADED_TTL, DEFAULT_HEARTBEAT, DEFAULT_MAX_QUEUED, EntityTtl,
    HEARTBEAT_TIMEOUT_TICKS, L1Config,
};
use crate::keys::validate_prefix;
use crate::l2::L2;
use crate::layer::CacheLayer;
use crate::outbox::{self, Outbox};
use crate::shared::Shared;
use crate::tags::store::TagStore;

enum L2Source {
    Url(String),
    Pool(deadpool_redis::Pool),
}

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
        let tags = Arc::new(TagStore::new(self.l1.map(|c| c.max_weight)));
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
                let bp = Arc::new(Backplane::new(
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
            outbox: Outbox::new(self.max_queued),
            db_label: self.db_label.map(Arc::from),
        });
        outbox::start(&shared);
        Ok(CacheLayer { shared })
    }
}
