//! The read path: L1 under the current local generation, then a single
//! flight that tries L2 (feature `redis`, see `super::l2`) and loads from the repository,
//! storing the result only where the generation it was loaded under is still
//! current (stale-set protection). With a lease (`super::leased`), an L2
//! miss first takes the key's lease or waits for another instance's load.

use persistence_core::lifecycle;
use std::collections::{HashMap, HashSet};
use std::future::Future;
#[cfg(feature = "redis")]
use std::ops::ControlFlow;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use persistence_core::{Entity, Repository, Result};

use crate::codec::Cached;
use crate::config::EntityTtl;
use crate::metrics::{Event, Level};
use crate::repository::entries::{Kind, L1Entry, norm_id};
#[cfg(feature = "redis")]
use crate::repository::leased::Leased;
use crate::repository::{CachedRepository, Inner, Served};
use crate::singleflight::Checked;

impl<E: Entity, R: Repository<E> + 'static> CachedRepository<E, R> {
    pub(super) async fn read<F, Fut>(&self, key: String, kind: Kind, load: F) -> Result<Cached<E>>
    where
        F: FnOnce(Arc<Inner<E, R>>) -> Fut + Clone + Send + 'static,
        Fut: Future<Output = Result<Cached<E>>> + Send + 'static,
    {
        self.read_served(key, kind, load).await.map(|(v, _)| v)
    }

    /// L1 under the current local generation (a fresh hit, maybe starting
    /// an eager refresh), then L2 on its own (see [`Inner::l2_probe`]),
    /// else a shared load (see `super::stale` for the fail-safe and the
    /// load timeouts).
    pub(super) async fn read_served<F, Fut>(
        &self,
        key: String,
        kind: Kind,
        load: F,
    ) -> Result<(Cached<E>, Served)>
    where
        F: FnOnce(Arc<Inner<E, R>>) -> Fut + Clone + Send + 'static,
        Fut: Future<Output = Result<Cached<E>>> + Send + 'static,
    {
        let inner = &self.inner;
        let policy = self.read_policy();
        let mut stale = None;
        // The generation is read before anything is looked up, so that a
        // value found stays out of L1 if a write moves it meanwhile.
        let mut l1_local = None;
        if let Some(l1) = &inner.l1 {
            let local = inner.local_key(&key, kind);
            let hit = l1.get(&local).await;
            // moka answers at once: without this, tasks doing only L1 hits
            // never yield and can starve the runtime's workers.
            tokio::task::coop::consume_budget().await;
            if let Some(hit) = hit {
                let now = Instant::now();
                if hit.is_fresh(now) {
                    inner.record(Event::Hit(Level::L1));
                    if hit.stale {
                        inner.record(Event::StaleServed);
                        return Ok((hit.value, Served::Stale));
                    }
                    if let Some(f) = policy.eager_refresh {
                        if hit.refresh_due(now, f) && !hit.refreshing.swap(true, Ordering::SeqCst) {
                            self.refresh(key, local, kind, load);
                        }
                    }
                    return Ok((hit.value, Served::Fresh));
                }
                if policy.fail_safe.is_some()
                    && hit.is_servable_stale(now)
                    && inner.shared.stale_coherent()
                {
                    stale = Some(hit);
                }
            }
            inner.record(Event::Miss(Level::L1));
            l1_local = Some(local);
        }
        // L2 before (and without) the single flight: a hit needs none. Only
        // while no flight of this entity type runs (readers arriving during
        // a load join it rather than ask L2 each), and without load
        // time-outs (they bound the whole read, L2 included).
        #[cfg(feature = "redis")]
        let probe = if inner.l2.is_some()
            && policy.soft_timeout.is_none()
            && policy.hard_timeout.is_none()
            && inner.flights.idle()
        {
            match inner.l2_probe(&key, kind).await {
                ControlFlow::Break((v, _)) => {
                    if let Some(local) = l1_local {
                        let keep = policy.keep();
                        inner
                            .l1_put(&key, kind, local, v.clone(), self.ttls(), keep)
                            .await;
                    }
                    return Ok((v, Served::Fresh));
                }
                ControlFlow::Continue(probe) => Some(probe),
            }
        } else {
            None
        };
        #[cfg(not(feature = "redis"))]
        let probe = None;
        // Without L1 the generation matters only to the flight (whose key
        // it is): read it now.
        let local = l1_local.unwrap_or_else(|| inner.local_key(&key, kind));
        // Boxed: the miss path's state stays out of the (hit path's) read
        // future, which is the smaller for it.
        Box::pin(self.load_or_stale(key, local, kind, stale, probe, load)).await
    }

    /// `get_many`: L1, then one L2 lookup for the rest, then one load for
    /// what is still missing.
    pub(super) async fn read_many(&self, ids: &[E::Id]) -> Result<Vec<E>> {
        let inner = &self.inner;
        let ttls = self.ttls();
        let keep = self.read_policy().keep();
        // Key every id, collapsing duplicates.
        let mut order: Vec<(E::Id, String)> = Vec::with_capacity(ids.len());
        let mut seen = HashSet::with_capacity(ids.len());
        for id in ids {
            let Some(v) = norm_id::<E>(id) else {
                return inner.repo.get_many(ids).await;
            };
            let key = inner.keys.entity(&v);
            if seen.insert(key.clone()) {
                order.push((id.clone(), key));
            }
        }
        let mut found: HashMap<String, Option<E>> = HashMap::with_capacity(order.len());
        let mut missing: Vec<(E::Id, String, String)> = Vec::new();
        for (id, key) in &order {
            let local = inner.gens.entity_key(key);
            if let Some(l1) = &inner.l1 {
                let hit = l1.get(&local).await;
                tokio::task::coop::consume_budget().await;
                if let Some(hit) = hit.filter(|h| h.is_fresh(Instant::now())) {
                    if let Cached::Entity(e) = hit.value {
                        inner.record(Event::Hit(Level::L1));
                        found.insert(key.clone(), e);
                        continue;
                    }
                }
                inner.record(Event::Miss(Level::L1));
            }
            missing.push((id.clone(), key.clone(), local));
        }
        #[cfg(feature = "redis")]
        let (missing, store) = inner.l2_fetch_many(missing, &mut found, ttls, keep).await;
        if !missing.is_empty() {
            inner.record(Event::Load);
            let want: Vec<E::Id> = missing.iter().map(|(id, _, _)| id.clone()).collect();
            let rows = match inner.repo.get_many(&want).await {
                Ok(r) => r,
                Err(e) => {
                    inner.record(Event::LoadError);
                    return Err(e);
                }
            };
            let mut by_key: HashMap<String, E> = rows
                .into_iter()
                .filter_map(|e| norm_id::<E>(e.id()).map(|v| (inner.keys.entity(&v), e)))
                .collect();
            #[cfg(feature = "redis")]
            let mut l2_items = Vec::new();
            for (_, key, local) in missing {
                let e = by_key.remove(&key);
                #[cfg(feature = "redis")]
                if let Some((_, stamp)) = store {
                    l2_items.push((key.clone(), stamp, Cached::Entity(e.clone())));
                }
                let value = Cached::Entity(e.clone());
                inner
                    .l1_put(&key, Kind::Entity, local, value, ttls, keep)
                    .await;
                found.insert(key, e);
            }
            #[cfg(feature = "redis")]
            if let (Some((token, _)), Some(l2)) = (store, inner.l2.as_deref()) {
                inner.l2_store(l2, token, l2_items, ttls).await;
            }
        }
        // A soft-deleted entity is never served, whatever a cache holds.
        Ok(order
            .into_iter()
            .filter_map(|(_, key)| found.remove(&key).flatten())
            .filter(lifecycle::visible)
            .collect())
    }
}

impl<E: Entity, R: Repository<E> + 'static> Inner<E, R> {
    /// The L1 lifetime: the L1 TTL, jittered, capped while the backplane
    /// is disconnected.
    fn l1_ttl_for(&self, value: &Cached<E>, ttl: EntityTtl) -> Duration {
        self.shared
            .l1_ttl(self.shared.jittered(ttl.l1(value.is_negative())))
    }

    pub(super) fn local_key(&self, key: &str, kind: Kind) -> String {
        match kind {
            Kind::Entity => self.gens.entity_key(key),
            Kind::Query => self.gens.query_key(key),
        }
    }

    /// Store in L1 under `local` unless a write has moved the generation
    /// since; kept (for the fail-safe) until `keep` when that is longer
    /// than its TTL.
    pub(super) async fn l1_put(
        &self,
        key: &str,
        kind: Kind,
        local: String,
        value: Cached<E>,
        ttl: EntityTtl,
        keep: Option<Duration>,
    ) {
        let Some(l1) = &self.l1 else { return };
        if self.local_key(key, kind) != local {
            self.record(Event::StaleSetPrevented);
            return;
        }
        let Some(weight) = self.l1_weight(&value) else {
            return;
        };
        let fresh = self.l1_ttl_for(&value, ttl);
        // The backplane's degraded cap bounds the fail-safe life too.
        let kept = keep.map(|k| self.shared.l1_ttl(k.max(fresh)));
        let now = Instant::now();
        let entry = L1Entry {
            value,
            ttl: kept.unwrap_or(fresh),
            weight,
            loaded_at: now,
            fresh_until: now + fresh,
            keep_until: kept.map(|k| now + k),
            stale: false,
            refreshing: Arc::new(AtomicBool::new(false)),
        };
        l1.insert(local, entry).await;
    }

    /// Load `key` (L2 first, then the lease step when `opts.lease` is set)
    /// and store the result where its generation is still current.
    ///
    /// The result says from which tick of the flights' clock it is known
    /// current (see [`crate::singleflight`]): before the lookup that found
    /// it, before the load, or before an L2 store Redis accepted.
    pub(super) async fn fill<F, Fut>(
        self: Arc<Self>,
        key: String,
        local: String,
        kind: Kind,
        opts: FillOpts,
        load: F,
    ) -> Result<Checked<Cached<E>>>
    where
        F: FnOnce(Arc<Inner<E, R>>) -> Fut,
        Fut: Future<Output = Result<Cached<E>>>,
    {
        let FillOpts { ttl, keep, .. } = opts;
        // Without L1 a reader that joins late checks the value (see
        // `crate::singleflight`); with L1 the generation in the flight key
        // does that (a local write moves it; other instances' writes reach
        // L1 over the backplane, and so the flight key).
        let watch = self.l1.is_none();
        let tick = || if watch { self.flights.tick() } else { u64::MAX };
        // Before every lookup below (L1, L2, another instance's lease).
        let since = tick();
        let found = |value, token| {
            Ok(Checked {
                value,
                since,
                token,
            })
        };
        // A flight that finished just before this one started has filled L1.
        if let (Some(l1), false) = (&self.l1, opts.refresh) {
            if let Some(hit) = l1.get(&local).await {
                if hit.is_fresh(Instant::now()) && !hit.stale {
                    return found(hit.value, None);
                }
            }
        }
        // The read's own L2 lookup stands unless a flight ended since (it
        // may have stored the value after that lookup).
        #[cfg(feature = "redis")]
        let store = match opts.probe.filter(|p| p.ended == self.flights.ended()) {
            Some(probe) => probe.store,
            None => match self.l2_fetch(&key, kind).await {
                ControlFlow::Break((v, token)) => {
                    self.l1_put(&key, kind, local, v.clone(), ttl, keep).await;
                    return found(v, token);
                }
                ControlFlow::Continue(store) => store,
            },
        };
        #[cfg(feature = "redis")]
        let (store, held) = match (opts.lease, store) {
            (Some(lease_ttl), Some(_)) => {
                let stale_ok = opts.stale_ok || opts.refresh;
                match self.lease_miss(&key, kind, lease_ttl, stale_ok).await {
                    Leased::Value(v) => {
                        self.l1_put(&key, kind, local, v.clone(), ttl, keep).await;
                        return found(v, None);
                    }
                    Leased::Busy => return Err(crate::lease::busy()),
                    Leased::Load { store, held } => (store, held),
                }
            }
            (_, store) => (store, None),
        };
        self.record(Event::Load);
        #[cfg_attr(not(feature = "redis"), allow(unused_mut))]
        let (mut since, mut token) = (tick(), None);
        let value = match load(self.clone()).await {
            Ok(v) => v,
            Err(e) => {
                self.record(Event::LoadError);
                // Let the others load now rather than when the lease expires.
                #[cfg(feature = "redis")]
                if let Some(h) = held {
                    h.release().await;
                }
                return Err(e);
            }
        };
        #[cfg(feature = "redis")]
        if let (Some((gen_token, stamp)), Some(l2)) = (store, self.l2.as_deref()) {
            let before = tick();
            let items = vec![(key.clone(), stamp, value.clone())];
            // Accepted: no write was acknowledged between the load and now.
            if self.l2_store(l2, gen_token, items, ttl).await {
                (since, token) = (before, Some(gen_token));
            }
        }
        // Stored (or refused) first, so whoever takes the lease next sees it.
        #[cfg(feature = "redis")]
        if let Some(h) = held {
            h.release().await;
        }
        self.l1_put(&key, kind, local, value.clone(), ttl, keep)
            .await;
        Ok(Checked {
            value,
            since,
            token,
        })
    }
}

/// How one [`Inner::fill`] runs.
#[derive(Debug, Clone, Copy)]
pub(super) struct FillOpts {
    /// TTLs of what it stores.
    pub ttl: EntityTtl,
    /// Fail-safe life of the L1 entry (None: no fail-safe).
    pub keep: Option<Duration>,
    /// Reload even if L1 holds a fresh entry (eager refresh).
    pub refresh: bool,
    /// Lease lifetime (None: no lease; see `crate::lease`).
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub lease: Option<Duration>,
    /// The caller has a stale value to serve while another instance holds
    /// the lease (`crate::lease::busy` instead of waiting).
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub stale_ok: bool,
    /// What the read's own L2 lookup found (None: look in the flight).
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub probe: Option<Probe>,
}

/// A read's own L2 miss, before its flight (see [`Inner::l2_probe`]).
#[derive(Debug, Clone, Copy)]
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
pub(super) struct Probe {
    /// The (gen token, stamp) to store the loaded value under (None: do
    /// not store in L2).
    pub store: Option<(u64, u64)>,
    /// [`crate::singleflight::Flights::ended`] before the lookup.
    pub ended: u64,
}
