//! [`CacheLayer`]: the runtime cache layer (one configuration, one Redis
//! pool) that wraps repositories, and its health views [`CacheStatus`] and
//! (feature `redis`) `L2Status`. Built by [`crate::CacheLayerBuilder`];
//! tagged values are in [`crate::tags`].

use std::sync::Arc;

use persistence_core::{Entity, Repository};

use crate::config::EntityTtl;
use crate::repository::CachedRepository;
use crate::shared::Shared;

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
    /// Wrap a repository. Each call creates an independent cache (its own L1
    /// and local generations): wrap once per repository and clone the
    /// [`CachedRepository`] (clones share the cache). Separate instances over
    /// the same data (other processes, or a second `wrap`) see each other's
    /// writes in L2 at once, and in L1 through the backplane (feature `redis`,
    /// `CacheLayerBuilder::backplane`) or after the TTL.
    pub fn wrap<E: Entity, R: Repository<E> + 'static>(&self, repo: R) -> CachedRepository<E, R> {
        CachedRepository::new(self.shared.clone(), repo, None)
    }

    /// [`wrap`](CacheLayer::wrap) with keys under `{prefix}.{scope}` instead
    /// of `{prefix}`: for repositories of one entity type that hold different
    /// data, such as one per tenant schema, so they never share an entry (nor
    /// an invalidation). `scope` is spelled like a key prefix part (ASCII
    /// letters, digits, `_`, `-`, `.`); otherwise `InvalidInput`.
    pub fn wrap_scoped<E: Entity, R: Repository<E> + 'static>(
        &self,
        scope: &str,
        repo: R,
    ) -> persistence_core::Result<CachedRepository<E, R>> {
        let prefix = format!("{}.{scope}", self.shared.prefix);
        crate::keys::validate_prefix(&prefix).map_err(|e| {
            persistence_core::Error::invalid_input(format!(
                "cache scope `{scope}`: {}",
                e.message()
            ))
        })?;
        Ok(CachedRepository::new(
            self.shared.clone(),
            repo,
            Some(&prefix),
        ))
    }

    /// The coherence state: L2 reachable, backplane connected, last
    /// heartbeat, invalidations queued while Redis is unreachable.
    #[cfg(feature = "redis")]
    pub fn status(&self) -> CacheStatus {
        let s = &self.shared;
        CacheStatus {
            l2_up: s.l2.as_ref().map(|l2| l2.is_up()),
            backplane_connected: s.backplane.as_ref().map(|b| b.connected()),
            last_heartbeat: s.backplane.as_ref().and_then(|b| b.last_heartbeat()),
            queued_invalidations: s.outbox.len() + s.tags.pending_len(),
        }
    }

    /// The coherence state; without the `redis` feature nothing can be
    /// degraded (no L2, no backplane, nothing queued).
    #[cfg(not(feature = "redis"))]
    pub fn status(&self) -> CacheStatus {
        CacheStatus {
            l2_up: None,
            backplane_connected: None,
            last_heartbeat: None,
            queued_invalidations: 0,
        }
    }

    /// True when a backplane is configured.
    #[cfg(feature = "redis")]
    pub fn has_backplane(&self) -> bool {
        self.shared.backplane.is_some()
    }

    /// True when L2 (Redis) is configured.
    #[cfg(feature = "redis")]
    pub fn has_l2(&self) -> bool {
        self.shared.l2.is_some()
    }

    /// True while the backplane is subscribed and hearing heartbeats (false without one).
    #[cfg(feature = "redis")]
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

    /// The L1 settings entity type `entity` (its logical name) gets:
    /// its own ([`entity_l1`](crate::CacheLayerBuilder::entity_l1)), else
    /// the layer's; `None` without L1.
    pub fn entity_l1(&self, entity: &str) -> Option<crate::L1Config> {
        self.shared.l1_for(entity)
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        &self.shared.prefix
    }

    /// Ask L2 now: `PING` through the layer's own Redis pool, bounded by its
    /// [L2 timeout](crate::CacheLayerBuilder::l2_timeout). Returns the round
    /// trip, or the error (`Unavailable` / `Timeout`, no URL in it); `None`
    /// without L2. Updates [`CacheStatus::l2_up`], and an answer sends what
    /// invalidations wait for Redis at once.
    #[cfg(feature = "redis")]
    pub async fn ping_l2(&self) -> Option<persistence_core::Result<std::time::Duration>> {
        let l2 = self.shared.l2.as_ref()?;
        let out = l2.ping().await;
        if out.is_ok() {
            self.shared.redis_answered();
        }
        Some(out)
    }

    /// The Redis connection pool's occupancy, for health checks (coherence
    /// state: [`CacheLayer::status`]); `None` without L2.
    #[cfg(feature = "redis")]
    pub fn l2_status(&self) -> Option<L2Status> {
        let pool = self.shared.l2.as_ref()?.pool_status();
        Some(L2Status {
            pool_max: pool.max,
            pool_size: pool.size,
            pool_idle: pool.idle,
            pool_waiting: pool.waiting,
        })
    }
}

/// The Redis side of a [`CacheLayer`] (see [`CacheLayer::l2_status`]). On a
/// Redis Cluster the "pool" is the one multiplexed cluster connection
/// (`pool_max` 1, `pool_size` 1 once connected).
#[cfg(feature = "redis")]
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
