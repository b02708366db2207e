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
