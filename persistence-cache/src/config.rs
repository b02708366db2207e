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

/// Default [`FailSafe::throttle`].
pub const DEFAULT_FAIL_SAFE_THROTTLE: Duration = Duration::from_secs(30);

/// Fail-safe of one entity type: when a load fails with a retryable error
/// (`Unavailable`, `Timeout`, an open circuit breaker), the last value
/// cached in L1 is served instead of the error if it is younger than
/// `max_age` (counted from when this instance cached it) and still the
/// newest by the generation rules (no write or invalidation since, from
/// this or another instance). Non-retryable errors are never masked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailSafe {
    /// Oldest value served after a failed load; L1 keeps entries this long
    /// (at least their TTL) so that they can be.
    pub max_age: Duration,
    /// After a failed load, the key is not reloaded for this long (the stale
    /// value answers at once); default [`DEFAULT_FAIL_SAFE_THROTTLE`].
    pub throttle: Duration,
}

impl FailSafe {
    /// Fail-safe up to `max_age`, with the default throttle.
    pub fn new(max_age: Duration) -> Self {
        FailSafe {
            max_age,
            throttle: DEFAULT_FAIL_SAFE_THROTTLE,
        }
    }

    /// With another throttle.
    #[must_use]
    pub fn with_throttle(mut self, throttle: Duration) -> Self {
        self.throttle = throttle;
        self
    }
}

/// Default [`Lease::ttl`].
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(3);

/// Cross-process stampede protection of one entity type (needs L2): on an
/// L2 miss, one instance takes a short Redis lease on the key and loads;
/// the others wait for its value in L2 (or, with a stale value kept by the
/// fail-safe, serve that at once) and load themselves only when the lease
/// ends without a value (the holder died, failed, or a write refused its
/// store). See `persistence_cache::lease` for the protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    /// Lifetime of a lease (Redis `PX`): the longest a dead or stuck
    /// holder keeps the others waiting (they wait at most twice this in
    /// all). Capped by the [hard timeout](ReadPolicy::hard_timeout) when
    /// one is set. Default [`DEFAULT_LEASE_TTL`].
    pub ttl: Duration,
}

impl Default for Lease {
    fn default() -> Self {
        Lease {
            ttl: DEFAULT_LEASE_TTL,
        }
    }
}

impl Lease {
    /// A lease living `ttl`.
    pub fn with_ttl(ttl: Duration) -> Self {
        Lease { ttl }
    }
}

/// How reads of one entity type behave when loads fail or are slow, or
/// miss together in several processes: the [fail-safe](FailSafe), soft
/// and hard load timeouts, eager refresh and the [lease](Lease).
/// Everything is off by default (reads behave as without it). Applies to
/// reads through the single-key path (`get`, `find`, `find_one`, `count`,
/// `exists`), not to `get_many`.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
#[non_exhaustive]
pub struct ReadPolicy {
    /// Serve the last value when a load fails (None: off).
    pub fail_safe: Option<FailSafe>,
    /// A load slower than this returns the stale value (if the fail-safe
    /// kept one) at once and finishes in the background, refreshing the
    /// cache (None: wait). Needs `fail_safe`.
    pub soft_timeout: Option<Duration>,
    /// A load slower than this, with nothing stale to serve, fails with a
    /// retryable `Timeout` and finishes in the background (None: wait).
    pub hard_timeout: Option<Duration>,
    /// A hit past this fraction of its L1 TTL (in `(0, 1)`, e.g. 0.8) starts
    /// one background reload, so hot keys do not miss on expiry (None: off).
    pub eager_refresh: Option<f64>,
    /// Cross-process stampede protection on L2 misses (None: off).
    pub lease: Option<Lease>,
}

impl ReadPolicy {
    /// How long L1 keeps an entry for the fail-safe (its max age; None: off).
    pub fn keep(&self) -> Option<Duration> {
        self.fail_safe.map(|f| f.max_age)
    }

    /// The effective lease lifetime: the lease's TTL capped by the hard
    /// timeout (None: no lease).
    pub fn lease_ttl(&self) -> Option<Duration> {
        self.lease
            .map(|l| self.hard_timeout.map_or(l.ttl, |h| l.ttl.min(h)))
    }

    /// With this fail-safe.
    #[must_use]
    pub fn fail_safe(mut self, fail_safe: FailSafe) -> Self {
        self.fail_safe = Some(fail_safe);
        self
    }

    /// With this soft load timeout.
    #[must_use]
    pub fn soft_timeout(mut self, timeout: Duration) -> Self {
        self.soft_timeout = Some(timeout);
        self
    }

    /// With this hard load timeout.
    #[must_use]
    pub fn hard_timeout(mut self, timeout: Duration) -> Self {
        self.hard_timeout = Some(timeout);
        self
    }

    /// With eager refresh at this fraction of the TTL.
    #[must_use]
    pub fn eager_refresh(mut self, fraction: f64) -> Self {
        self.eager_refresh = Some(fraction);
        self
    }

    /// With cross-process stampede protection (see [`Lease`]; needs L2).
    #[must_use]
    pub fn lease(mut self, lease: Lease) -> Self {
        self.lease = Some(lease);
        self
    }

    /// `Config` error naming the setting (its YAML name) unless every
    /// duration is positive, `eager_refresh` is in `(0, 1)`, `soft_timeout`
    /// is shorter than `hard_timeout` and has a `fail_safe` to serve from.
    pub fn validate(&self) -> persistence_core::Result<()> {
        let err = |m: &str| Err(persistence_core::Error::config(m.to_string()));
        let named = [
            ("fail_safe.max_age", self.keep()),
            ("fail_safe.throttle", self.fail_safe.map(|f| f.throttle)),
            ("soft_timeout", self.soft_timeout),
            ("hard_timeout", self.hard_timeout),
            ("lease.ttl", self.lease.map(|l| l.ttl)),
        ];
        if let Some((key, _)) = named.iter().find(|(_, d)| d.is_some_and(|d| d.is_zero())) {
            return err(&format!("cache {key} must be positive"));
        }
        if self.eager_refresh.is_some_and(|f| !(f > 0.0 && f < 1.0)) {
            return err("cache eager_refresh must be a fraction of the TTL in (0, 1)");
        }
        if self.soft_timeout.is_some() && self.fail_safe.is_none() {
            return err("cache soft_timeout needs fail_safe (the stale value it answers with)");
        }
        if let (Some(s), Some(h)) = (self.soft_timeout, self.hard_timeout) {
            if s >= h {
                return err("cache soft_timeout must be shorter than hard_timeout");
            }
        }
        Ok(())
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
