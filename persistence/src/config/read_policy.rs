//! The read-policy part of a cache policy ([`keys::CACHE_FAIL_SAFE`],
//! [`keys::CACHE_SOFT_TIMEOUT`], [`keys::CACHE_HARD_TIMEOUT`],
//! [`keys::CACHE_EAGER_REFRESH`], [`keys::CACHE_LEASE`]) and its translation into the cache
//! layer's [`ReadPolicy`] (which also holds the validation rules).

use std::time::Duration;

use persistence_cache::{FailSafe, Lease, ReadPolicy};
use serde::{Deserialize, Serialize};

use super::CachePolicy;
#[cfg(doc)]
use super::keys;

/// `fail_safe: { max_age: 1h, throttle: 30s }` ([`keys::CACHE_FAIL_SAFE`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailSafeSettings {
    /// [`keys::CACHE_FAIL_SAFE_MAX_AGE`].
    #[serde(with = "humantime_serde")]
    pub max_age: Duration,
    /// [`keys::CACHE_FAIL_SAFE_THROTTLE`]; unset: 30s.
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub throttle: Option<Duration>,
}

/// `lease: true`, `lease: false` or `lease: { ttl: 2s }` ([`keys::CACHE_LEASE`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum LeaseSettings {
    /// On with the default TTL (3s), or off.
    Switch(bool),
    /// On, with these settings.
    With(LeaseOptions),
}

/// The settings of `lease: { ttl: 2s }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeaseOptions {
    /// [`keys::CACHE_LEASE_TTL`]; unset: 3s.
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub ttl: Option<Duration>,
}

impl LeaseSettings {
    /// The cache layer's lease (None: off).
    pub fn lease(self) -> Option<Lease> {
        match self {
            LeaseSettings::Switch(false) => None,
            LeaseSettings::Switch(true) => Some(Lease::default()),
            LeaseSettings::With(o) => Some(o.ttl.map_or_else(Lease::default, Lease::with_ttl)),
        }
    }
}

/// A fraction such as `0.8` ([`keys::CACHE_EAGER_REFRESH`]). Compared by
/// its bits, so a policy stays `Eq`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Fraction(pub f64);

impl PartialEq for Fraction {
    fn eq(&self, other: &Self) -> bool {
        self.0.to_bits() == other.0.to_bits()
    }
}

impl Eq for Fraction {}

impl CachePolicy {
    /// The cache layer's read policy for this policy (validate it with
    /// [`ReadPolicy::validate`]).
    pub fn read_policy(&self) -> ReadPolicy {
        let mut p = ReadPolicy::default();
        if let Some(fs) = self.fail_safe {
            let mut f = FailSafe::new(fs.max_age);
            if let Some(t) = fs.throttle {
                f = f.with_throttle(t);
            }
            p = p.fail_safe(f);
        }
        if let Some(t) = self.soft_timeout {
            p = p.soft_timeout(t);
        }
        if let Some(t) = self.hard_timeout {
            p = p.hard_timeout(t);
        }
        if let Some(Fraction(f)) = self.eager_refresh {
            p = p.eager_refresh(f);
        }
        if let Some(lease) = self.lease.and_then(LeaseSettings::lease) {
            p = p.lease(lease);
        }
        p
    }
}
