//! Configuration values of a cache layer: [`L1Config`], [`EntityTtl`] and the
//! defaults of the Redis-side settings. The runtime [`CacheLayer`] and its
//! [`CacheLayerBuilder`] live in their own modules now; they are re-exported
//! here, at their old paths, for one release.

use std::time::Duration;

// Old paths (the types moved out of this module); kept for one release.
pub use crate::builder::CacheLayerBuilder;
#[cfg(feature = "redis")]
pub use crate::layer::L2Status;
pub use crate::layer::{CacheLayer, CacheStatus};

/// L1 (in-process, moka) settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct L1Config {
    /// Capacity in weight units: one per cached entity or scalar result
    /// (a `find` result weighs as many units as it has rows).
    pub max_weight: u64,
    /// Drop entries not read for this long (on top of the TTL).
    pub time_to_idle: Option<Duration>,
    /// Capacity in bytes instead of units: each entry weighs its encoded
    /// size (the L2 encoding, see [`crate::codec`]), and `max_weight` is
    /// ignored. Costs one encoding per L1 store. Applies to entity and
    /// query entries, not to tagged values (those count units).
    pub max_bytes: Option<u64>,
}

impl Default for L1Config {
    fn default() -> Self {
        L1Config {
            max_weight: 10_000,
            time_to_idle: None,
            max_bytes: None,
        }
    }
}

/// TTLs of one entity type.
///
/// `ttl` is the lifetime at both levels unless `l1_ttl` / `l2_ttl` say
/// otherwise (L1: moka per-entry expiry; L2: the Redis `PX` of the entry).
/// Neither is required to be shorter than the other: an L1 entry may
/// outlive its L2 copy, since coherence comes from invalidation (generations,
/// backplane), not from the TTLs. A "not found" lives `negative_ttl`, capped
/// by the level's own TTL where one is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntityTtl {
    /// Lifetime of cached entities and query results.
    pub ttl: Duration,
    /// Lifetime of a cached "not found" (usually shorter).
    pub negative_ttl: Duration,
    /// Lifetime in L1 (in-process) when it differs from `ttl`.
    pub l1_ttl: Option<Duration>,
    /// Lifetime in L2 (Redis) when it differs from `ttl`.
    pub l2_ttl: Option<Duration>,
}

impl EntityTtl {
    /// `ttl` and `negative_ttl` at both levels.
    pub fn new(ttl: Duration, negative_ttl: Duration) -> Self {
        EntityTtl {
            ttl,
            negative_ttl,
            l1_ttl: None,
            l2_ttl: None,
        }
    }

    /// With its own L1 lifetime.
    #[must_use]
    pub fn with_l1_ttl(mut self, ttl: Duration) -> Self {
        self.l1_ttl = Some(ttl);
        self
    }

    /// With its own L2 lifetime.
    #[must_use]
    pub fn with_l2_ttl(mut self, ttl: Duration) -> Self {
        self.l2_ttl = Some(ttl);
        self
    }

    /// The effective L1 lifetime of a value (`negative`: a "not found").
    pub fn l1(&self, negative: bool) -> Duration {
        Self::level(self.l1_ttl, self.ttl, self.negative_ttl, negative)
    }

    /// The effective L2 lifetime of a value (`negative`: a "not found").
    pub fn l2(&self, negative: bool) -> Duration {
        Self::level(self.l2_ttl, self.ttl, self.negative_ttl, negative)
    }

    fn level(own: Option<Duration>, ttl: Duration, neg: Duration, negative: bool) -> Duration {
        match (negative, own) {
            (false, own) => own.unwrap_or(ttl),
            (true, Some(own)) => neg.min(own),
            (true, None) => neg,
        }
    }

    /// `Config` error unless every TTL is positive (the message names the
    /// first zero one: `ttl`, `negative_ttl`, `l1_ttl` or `l2_ttl`).
    pub fn validate(&self) -> persistence_core::Result<()> {
        let named = [
            ("ttl", Some(self.ttl)),
            ("negative_ttl", Some(self.negative_ttl)),
            ("l1_ttl", self.l1_ttl),
            ("l2_ttl", self.l2_ttl),
        ];
        match named.iter().find(|(_, d)| d.is_some_and(|d| d.is_zero())) {
            Some((key, _)) => Err(persistence_core::Error::config(format!(
                "cache {key} must be positive"
            ))),
            None => Ok(()),
        }
    }
}

/// Default longest L1 lifetime while the backplane is disconnected.
#[cfg(feature = "redis")]
pub const DEFAULT_DEGRADED_TTL: Duration = Duration::from_secs(1);
/// Default interval of backplane heartbeat ticks.
#[cfg(feature = "redis")]
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_millis(250);
/// Default heartbeat timeout, in heartbeat intervals.
#[cfg(feature = "redis")]
pub const HEARTBEAT_TIMEOUT_TICKS: u32 = 3;
/// Default bound of the invalidation queue (entity keys).
#[cfg(feature = "redis")]
pub const DEFAULT_MAX_QUEUED: usize = 10_000;
