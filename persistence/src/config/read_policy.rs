//! The read-policy part of a cache policy ([`keys::CACHE_FAIL_SAFE`],
//! [`keys::CACHE_SOFT_TIMEOUT`], [`keys::CACHE_HARD_TIMEOUT`],
//! [`keys::CACHE_EAGER_REFRESH`]) and its translation into the cache
//! layer's [`ReadPolicy`] (which also holds the validation rules).

use std::time::Duration;

use persistence_cache::{FailSafe, ReadPolicy};
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
        p
    }
}
