//! [`Shared`]: the state of one cache layer that every part of it reads —
//! settings, the Redis client, the tag store, the backplane and the
//! invalidation queue. A leaf below both the layer and its repositories, so
//! neither has to import the other.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use futures_util::future::BoxFuture;
use parking_lot::Mutex;
use persistence_core::EntityMeta;

#[cfg(feature = "redis")]
use crate::backplane::Backplane;
use crate::config::{EntityTtl, L1Config, ReadPolicy};
#[cfg(feature = "redis")]
use crate::l2::L2;
#[cfg(feature = "redis")]
use crate::outbox::Outbox;
use crate::tags::store::TagStore;

/// Settings shared by every cached repository of one layer.
#[derive(Debug)]
pub(crate) struct Shared {
    pub prefix: String,
    pub default_ttl: EntityTtl,
    pub per_entity: HashMap<String, EntityTtl>,
    pub per_entity_l1: HashMap<String, L1Config>,
    pub default_read: ReadPolicy,
    pub per_entity_read: HashMap<String, ReadPolicy>,
    /// Write-through by default (see `crate::repository::through`).
    pub write_through: bool,
    pub per_entity_write_through: HashMap<String, bool>,
    pub jitter: f64,
    pub l1: Option<L1Config>,
    #[cfg(feature = "redis")]
    pub l2: Option<Arc<L2>>,
    pub tags: Arc<TagStore>,
    #[cfg(feature = "redis")]
    pub backplane: Option<Arc<Backplane>>,
    #[cfg(feature = "redis")]
    pub outbox: Outbox,
    pub db_label: Option<Arc<str>>,
    /// Every repository this layer wraps (see `crate::repository::related`).
    pub wrapped: Mutex<Vec<Wrapped>>,
}

/// A cached repository as the invalidation along relations sees it.
pub(crate) trait DropAll: Send + Sync {
    /// Drop everything cached for its entity type, as a write that changed
    /// unknown rows does (L2, the other instances' L1 through the backplane, L1).
    fn drop_all(self: Arc<Self>) -> BoxFuture<'static, ()>;
}

/// One repository the layer wrapped: its key prefix, entity type and cache.
pub(crate) struct Wrapped {
    pub prefix: Arc<str>,
    pub meta: &'static EntityMeta,
    pub repo: Weak<dyn DropAll>,
}

impl std::fmt::Debug for Wrapped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wrapped")
            .field("prefix", &self.prefix)
            .field("entity", &self.meta.name)
            .finish_non_exhaustive()
    }
}

impl Shared {
    /// Remember a wrapped repository (and forget the dropped ones).
    pub(crate) fn register(
        &self,
        prefix: Arc<str>,
        meta: &'static EntityMeta,
        repo: Weak<dyn DropAll>,
    ) {
        let mut list = self.wrapped.lock();
        list.retain(|w| w.repo.strong_count() > 0);
        list.push(Wrapped { prefix, meta, repo });
    }

    /// The L1 settings of entity `name` (None: no L1).
    pub(crate) fn l1_for(&self, name: &str) -> Option<L1Config> {
        let default = self.l1?;
        Some(self.per_entity_l1.get(name).copied().unwrap_or(default))
    }

    /// Redis answered: send what is queued, if anything.
    #[cfg(feature = "redis")]
    pub(crate) fn redis_answered(&self) {
        if !self.outbox.is_empty() || !self.tags.pending_is_empty() {
            self.outbox.poke();
        }
    }

    /// Whether this instance's L1 hears every invalidation that concerns it,
    /// so that a stale copy still under its generation key is the newest
    /// value: always without L2 (one process); with L2 only while a
    /// backplane is connected (without one, other instances' writes never
    /// reach L1, and the fail-safe does not serve stale copies).
    pub(crate) fn stale_coherent(&self) -> bool {
        #[cfg(feature = "redis")]
        if self.l2.is_some() {
            return self.backplane.as_ref().is_some_and(|bp| bp.connected());
        }
        true
    }

    /// `ttl` shortened by up to the jitter fraction, so entries loaded
    /// together do not expire together.
    pub(crate) fn jittered(&self, ttl: Duration) -> Duration {
        let j = self.jitter;
        if j <= 0.0 {
            return ttl;
        }
        ttl.mul_f64(1.0 - j * fastrand::f64())
    }

    /// The L1 lifetime of an entry living `ttl`: capped while the backplane
    /// is disconnected.
    pub(crate) fn l1_ttl(&self, ttl: Duration) -> Duration {
        #[cfg(feature = "redis")]
        if let Some(bp) = &self.backplane {
            if !bp.connected() {
                return ttl.min(bp.degraded_ttl);
            }
        }
        ttl
    }
}
