//! The write side: what a write touched ([`Target`]), and the invalidation
//! that follows every write — L2 first (feature `redis`, see `super::l2`), then the local
//! generations and L1.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use persistence_core::{Entity, Repository, Result};

use crate::metrics::Event;
use crate::repository::entries::{Gens, Target, norm_id};
use crate::repository::{CachedRepository, Inner};

impl<E: Entity, R: Repository<E> + 'static> CachedRepository<E, R> {
    pub(super) fn target(&self, ids: &[E::Id]) -> Target {
        // Huge batches: one epoch bump beats thousands of keys in DEL and messages.
        if ids.len() > 1000 {
            return Target::All;
        }
        let mut keys = Vec::with_capacity(ids.len());
        for id in ids {
            match norm_id::<E>(id) {
                Some(v) => keys.push(self.inner.keys.entity(&v)),
                None => return Target::All,
            }
        }
        Target::Keys(keys)
    }

    pub(super) async fn write<T>(
        &self,
        target: Target,
        fut: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        self.write_returning(target, fut, |_| None, false).await
    }

    /// A write whose answer holds the stored row (`row`): registered before
    /// it runs and written through after it when nothing overlapped (see
    /// `super::through`), else invalidated as [`Self::write`] does.
    pub(super) async fn write_as<T>(
        &self,
        target: Target,
        fut: impl Future<Output = Result<T>>,
        row: impl FnOnce(&T) -> Option<E>,
    ) -> Result<T> {
        self.write_returning(target, fut, row, true).await
    }

    /// [`Self::write_as`]; `returns_row`: whether the write answers with the
    /// stored row (false: `row` never finds one).
    async fn write_returning<T>(
        &self,
        target: Target,
        fut: impl Future<Output = Result<T>>,
        row: impl FnOnce(&T) -> Option<E>,
        returns_row: bool,
    ) -> Result<T> {
        let on = self.writes_through();
        let reg = self.inner.begin_write(&target, on, returns_row).await;
        let out = fut.await;
        // Invalidate also after a failure: a timed-out or partial write may have landed.
        let value = out.as_ref().ok().and_then(row);
        let (ttl, keep) = (self.ttls(), self.read_policy().keep());
        self.inner.end_write(target, reg, value, ttl, keep).await;
        out
    }
}

impl<E: Entity, R: Repository<E> + 'static> Inner<E, R> {
    /// Invalidate after a write: L2 first (so a reader of the new local
    /// generation cannot refill L1 from an old L2 entry), then L1. When Redis
    /// cannot be reached the L2 invalidation and its backplane message are
    /// queued (see [`crate::outbox`]) and sent as soon as Redis answers.
    pub(crate) async fn after_write(self: &Arc<Self>, target: Target) {
        // No write-through in flight here may store its row afterwards.
        self.inflight.poison(&target);
        #[cfg(feature = "redis")]
        self.l2_invalidate(&target).await;
        self.invalidate_local(&target).await;
        self.record(Event::Invalidation);
    }

    pub(crate) async fn invalidate_local(&self, target: &Target) {
        let old: Vec<String> = match target {
            Target::Keys(keys) if self.l1.is_some() => {
                keys.iter().map(|k| self.gens.entity_key(k)).collect()
            }
            _ => Vec::new(),
        };
        self.bump(match target {
            Target::Keys(k) => Some(k),
            Target::All => None,
        });
        // The generation bump already made them unreachable; free the memory now.
        if let Some(l1) = &self.l1 {
            for k in &old {
                l1.invalidate(k).await;
            }
        }
    }

    /// Bump the local generations of `keys` (all entities when None) and of queries.
    pub(super) fn bump(&self, keys: Option<&[String]>) {
        match keys {
            Some(keys) => {
                for k in keys {
                    self.gens.stripes[Gens::stripe(k)].fetch_add(1, Ordering::SeqCst);
                }
            }
            None => {
                self.gens.epoch.fetch_add(1, Ordering::SeqCst);
            }
        }
        self.gens.queries.fetch_add(1, Ordering::SeqCst);
    }
}
