//! [`CachedRepository`]: the read-through, write-invalidating decorator.
//!
//! # Coherence within one process
//! Local generations decide which L1 entries are alive: an entity entry's L1
//! key carries `(epoch, stripe generation)` of its key, a query entry's the
//! entity type's query generation. A write, once the underlying repository
//! has answered, first invalidates L2 (see [`crate::l2`]), then bumps the
//! stripe generation of every written id (or the epoch, for `delete_many`)
//! and the query generation. Reads compute the current key, so no entry
//! loaded before the write is reachable afterwards; a load that started
//! before the write finishes into a key nobody reads any more (stale-set
//! protection), and in-flight loads are shared only by readers of the same
//! generation (a read after a write never joins an older load).
//!
//! # Fail-safe
//! Redis errors never reach the caller: reads fall through to the
//! repository, writes still invalidate L1. Any Redis failure marks L2
//! *suspect*; before L2 is read again, the entity type's gen and epoch
//! tokens are replaced, which makes every L2 entry written before the outage
//! dead — they are **dropped**, not revalidated.

use std::future::Future;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use futures_util::FutureExt as _;
use moka::Expiry;
use moka::future::Cache;
use moka::notification::RemovalCause;
use persistence_core::query::Cursor;
use persistence_core::{
    BoxStream, Capabilities, Entity, Error, Filter, Page, Query, Repository, Result, Value,
};

use crate::backplane::{Message, Receiver};
use crate::codec::{self, Cached};
use crate::config::{EntityTtl, Shared};
use crate::keys::{Keys, QueryOp};
use crate::l2::L2;
use crate::metrics::{Counters, Event, Level, Stats};
use crate::singleflight::Flights;

const STRIPES: usize = 1024;

#[derive(Clone)]
pub(crate) struct L1Entry<E> {
    pub(crate) value: Cached<E>,
    ttl: Duration,
}

struct L1Expiry;

impl<E> Expiry<String, L1Entry<E>> for L1Expiry {
    fn expire_after_create(
        &self,
        _key: &String,
        value: &L1Entry<E>,
        _created_at: std::time::Instant,
    ) -> Option<Duration> {
        Some(value.ttl)
    }
    fn expire_after_update(
        &self,
        _key: &String,
        value: &L1Entry<E>,
        _updated_at: std::time::Instant,
        _duration_until_expiry: Option<Duration>,
    ) -> Option<Duration> {
        Some(value.ttl)
    }
}

/// Local generations of one entity type.
struct Gens {
    epoch: AtomicU64,
    queries: AtomicU64,
    stripes: Box<[AtomicU64]>,
}

impl Gens {
    fn new() -> Gens {
        Gens {
            epoch: AtomicU64::new(0),
            queries: AtomicU64::new(0),
            stripes: (0..STRIPES).map(|_| AtomicU64::new(0)).collect(),
        }
    }
    fn stripe(key: &str) -> usize {
        let mut h = DefaultHasher::new();
        key.hash(&mut h);
        (h.finish() % STRIPES as u64) as usize
    }
    /// The L1 / flight key of an entity key under the current generations.
    fn entity_key(&self, key: &str) -> String {
        let e = self.epoch.load(Ordering::SeqCst);
        let s = self.stripes[Self::stripe(key)].load(Ordering::SeqCst);
        format!("{key}@{e}.{s}")
    }
    fn query_key(&self, key: &str) -> String {
        format!("{key}@{}", self.queries.load(Ordering::SeqCst))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Keyed by id; stamped with the epoch token in L2.
    Entity,
    /// A query result; stamped with the gen token in L2.
    Query,
}

/// What a write touched.
pub(crate) enum Target {
    /// These entity keys.
    Keys(Vec<String>),
    /// Possibly any entity (`delete_many`, or ids that could not be keyed).
    All,
}

pub(crate) struct Inner<E: Entity, R> {
    pub(crate) repo: R,
    pub(crate) keys: Keys,
    pub(crate) shared: Arc<Shared>,
    pub(crate) l1: Option<Cache<String, L1Entry<E>>>,
    pub(crate) l2: Option<Arc<L2>>,
    ttl: EntityTtl,
    gens: Gens,
    flights: Flights<Cached<E>>,
    pub(crate) counters: Arc<Counters>,
    l2_failures: AtomicU64,
    l2_reset_upto: AtomicU64,
    decode_warned: AtomicBool,
    l2_warned: AtomicBool,
    recovering: AtomicBool,
}

/// A repository with a read-through cache in front of it; itself a
/// [`Repository`], so callers do not change. Built by
/// [`CacheLayer::wrap`](crate::CacheLayer::wrap). Cheap to clone (clones share the cache).
pub struct CachedRepository<E: Entity, R> {
    pub(crate) inner: Arc<Inner<E, R>>,
    /// TTLs of this handle (None: the entity type's).
    ttl: Option<EntityTtl>,
}

impl<E: Entity, R> Clone for CachedRepository<E, R> {
    fn clone(&self) -> Self {
        CachedRepository {
            inner: self.inner.clone(),
            ttl: self.ttl,
        }
    }
}

impl<E: Entity, R> std::fmt::Debug for CachedRepository<E, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedRepository")
            .field("entity", &E::meta().name)
            .field("l1", &self.inner.l1.is_some())
            .field("l2", &self.inner.l2.is_some())
            .finish()
    }
}

fn norm_id<E: Entity>(id: &E::Id) -> Option<Value> {
    Value::from_serialize(id)
        .ok()?
        .normalize(E::meta().id_field().ty)
        .ok()
}

impl<E: Entity, R: Repository<E> + 'static> CachedRepository<E, R> {
    pub(crate) fn new(shared: Arc<Shared>, repo: R) -> Self {
        let meta = E::meta();
        let counters = Arc::new(Counters::with_db(shared.db_label.clone()));
        let l1 = shared.l1.map(|cfg| {
            let c = counters.clone();
            let mut b = Cache::builder()
                .max_capacity(cfg.max_weight)
                .weigher(|_k: &String, v: &L1Entry<E>| v.value.weight())
                .expire_after(L1Expiry)
                .eviction_listener(move |_k, _v, cause| {
                    if cause == RemovalCause::Size {
                        c.record(meta.name, Event::Eviction);
                    }
                });
            if let Some(tti) = cfg.time_to_idle {
                b = b.time_to_idle(tti);
            }
            b.build()
        });
        let ttl = shared
            .per_entity
            .get(meta.name)
            .copied()
            .unwrap_or(shared.default_ttl);
        let repo = CachedRepository {
            ttl: None,
            inner: Arc::new(Inner {
                repo,
                keys: Keys::new(&shared.prefix, meta),
                l2: shared.l2.clone(),
                shared,
                l1,
                ttl,
                gens: Gens::new(),
                flights: Flights::new(),
                counters,
                l2_failures: AtomicU64::new(0),
                l2_reset_upto: AtomicU64::new(0),
                decode_warned: AtomicBool::new(false),
                l2_warned: AtomicBool::new(false),
                recovering: AtomicBool::new(false),
            }),
        };
        if let Some(bp) = &repo.inner.shared.backplane {
            let weak: std::sync::Weak<dyn Receiver> = Arc::downgrade(&repo.inner) as _;
            bp.register(repo.inner.keys.base(), weak);
        }
        repo
    }

    /// A handle on the same cache whose reads store entries with these TTLs
    /// (per-call TTL: `repo.with_ttl(t).get(&id)`).
    pub fn with_ttl(&self, ttl: EntityTtl) -> Self {
        CachedRepository {
            inner: self.inner.clone(),
            ttl: Some(ttl),
        }
    }

    fn ttls(&self) -> EntityTtl {
        self.ttl.unwrap_or(self.inner.ttl)
    }

    /// The wrapped repository.
    pub fn inner(&self) -> &R {
        &self.inner.repo
    }

    /// A snapshot of this repository's cache counters.
    pub fn stats(&self) -> Stats {
        self.inner.counters.snapshot()
    }

    /// Drop everything cached for this entity type (L1 and L2), as a write would.
    pub async fn invalidate_all(&self) {
        self.inner.after_write(Target::All).await;
    }

    /// Drop the cached entity with this id (and every cached query of this type).
    pub async fn invalidate(&self, id: &E::Id) {
        self.inner
            .after_write(self.target(std::slice::from_ref(id)))
            .await;
    }

    /// False while Redis failures have not yet been followed by the reset
    /// that drops entries older than the outage (always true without L2).
    pub fn l2_trusted(&self) -> bool {
        !self.inner.l2_suspect()
    }

    /// Number of loads currently in flight (for tests).
    #[doc(hidden)]
    pub fn loads_in_flight(&self) -> usize {
        self.inner.flights.len()
    }

    fn target(&self, ids: &[E::Id]) -> Target {
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

    async fn write<T>(&self, target: Target, fut: impl Future<Output = Result<T>>) -> Result<T> {
        let out = fut.await;
        // Invalidate also after a failure: a timed-out or partial write may have landed.
        self.inner.after_write(target).await;
        out
    }

    async fn read<F, Fut>(&self, key: String, kind: Kind, load: F) -> Result<Cached<E>>
    where
        F: FnOnce(Arc<Inner<E, R>>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<Cached<E>>> + Send + 'static,
    {
        let inner = &self.inner;
        let local = match kind {
            Kind::Entity => inner.gens.entity_key(&key),
            Kind::Query => inner.gens.query_key(&key),
        };
        if let Some(l1) = &inner.l1 {
            if let Some(hit) = l1.get(&local).await {
                inner.record(Event::Hit(Level::L1));
                return Ok(hit.value);
            }
            inner.record(Event::Miss(Level::L1));
        }
        let me = inner.clone();
        let flight_key = local.clone();
        let ttl = self.ttls();
        inner
            .flights
            .run(flight_key, move || {
                async move { me.fill(key, local, kind, ttl, load).await }.boxed()
            })
            .await
    }
}

impl<E: Entity, R: Repository<E> + 'static> Inner<E, R> {
    pub(crate) fn record(&self, event: Event) {
        self.counters.record(E::meta().name, event);
    }

    fn jittered(&self, ttl: Duration) -> Duration {
        let j = self.shared.jitter;
        if j <= 0.0 {
            return ttl;
        }
        ttl.mul_f64(1.0 - j * fastrand::f64())
    }

    pub(crate) fn ttl_for(&self, value: &Cached<E>, ttl: EntityTtl) -> Duration {
        self.jittered(if value.is_negative() {
            ttl.negative_ttl
        } else {
            ttl.ttl
        })
    }

    /// The L1 lifetime: the TTL, capped while the backplane is disconnected.
    fn l1_ttl_for(&self, value: &Cached<E>, ttl: EntityTtl) -> Duration {
        let ttl = self.ttl_for(value, ttl);
        match &self.shared.backplane {
            Some(bp) if !bp.connected() => ttl.min(bp.degraded_ttl),
            _ => ttl,
        }
    }

    fn local_key(&self, key: &str, kind: Kind) -> String {
        match kind {
            Kind::Entity => self.gens.entity_key(key),
            Kind::Query => self.gens.query_key(key),
        }
    }

    /// Store in L1 under `local` unless a write has moved the generation since.
    async fn l1_put(&self, key: &str, kind: Kind, local: String, value: Cached<E>, ttl: EntityTtl) {
        let Some(l1) = &self.l1 else { return };
        if self.local_key(key, kind) != local {
            self.record(Event::StaleSetPrevented);
            return;
        }
        let ttl = self.l1_ttl_for(&value, ttl);
        l1.insert(local, L1Entry { value, ttl }).await;
    }

    pub(crate) fn l2_failed(self: &Arc<Self>, e: &Error) {
        self.l2_failures.fetch_add(1, Ordering::SeqCst);
        self.spawn_recovery();
        self.record(Event::L2Error);
        if !self.l2_warned.swap(true, Ordering::Relaxed) {
            tracing::warn!(entity = E::meta().name, error = %e, "redis (L2) failed; reading through until it is back");
        } else {
            tracing::debug!(entity = E::meta().name, error = %e, "redis (L2) failed");
        }
    }

    fn decode_failed(&self, e: &Error) {
        self.record(Event::DecodeError);
        if !self.decode_warned.swap(true, Ordering::Relaxed) {
            tracing::warn!(entity = E::meta().name, error = %e, "undecodable cache entry treated as a miss (logged once)");
        }
    }

    /// True while Redis failures have not been followed by a successful reset.
    pub(crate) fn l2_suspect(&self) -> bool {
        self.l2_failures.load(Ordering::SeqCst) > self.l2_reset_upto.load(Ordering::SeqCst)
    }

    /// If L2 is suspect, drop every entry older than the outage by replacing
    /// the tokens. True when L2 can be trusted afterwards.
    async fn try_reset(&self) -> bool {
        let Some(l2) = self.l2.as_deref() else {
            return false;
        };
        let failures = self.l2_failures.load(Ordering::SeqCst);
        if failures <= self.l2_reset_upto.load(Ordering::SeqCst) {
            return true;
        }
        match l2
            .invalidate(self.keys.gen_key(), Some(self.keys.epoch_key()), &[], None)
            .await
        {
            Ok(()) => {
                self.l2_reset_upto.fetch_max(failures, Ordering::SeqCst);
                self.l2_warned.store(false, Ordering::Relaxed);
                tracing::info!(
                    entity = E::meta().name,
                    "redis (L2) is back; entries written before the outage were dropped"
                );
                !self.l2_suspect()
            }
            Err(_) => false,
        }
    }

    /// L2, if configured and trusted (after a reset when it was suspect).
    pub(crate) async fn l2_ready(&self) -> Option<&L2> {
        let l2 = self.l2.as_deref()?;
        // While the background task retries, do not pay a timeout on every read.
        if self.l2_suspect() && self.recovering.load(Ordering::SeqCst) {
            return None;
        }
        if self.try_reset().await {
            Some(l2)
        } else {
            None
        }
    }

    /// Retry the reset in the background until Redis answers, so entries
    /// older than the outage are dropped soon after it ends even when this
    /// instance does not touch L2 (other instances may read them).
    fn spawn_recovery(self: &Arc<Self>) {
        if self.recovering.swap(true, Ordering::SeqCst) {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            self.recovering.store(false, Ordering::SeqCst);
            return;
        };
        let weak = Arc::downgrade(self);
        rt.spawn(async move {
            let mut delay = Duration::from_millis(25);
            loop {
                tokio::time::sleep(delay).await;
                let Some(me) = weak.upgrade() else { return };
                if me.try_reset().await {
                    me.recovering.store(false, Ordering::SeqCst);
                    if !me.l2_suspect() || me.recovering.swap(true, Ordering::SeqCst) {
                        return;
                    }
                }
                delay = (delay * 2).min(Duration::from_secs(1));
            }
        });
    }

    async fn fill<F, Fut>(
        self: Arc<Self>,
        key: String,
        local: String,
        kind: Kind,
        ttl: EntityTtl,
        load: F,
    ) -> Result<Cached<E>>
    where
        F: FnOnce(Arc<Inner<E, R>>) -> Fut,
        Fut: Future<Output = Result<Cached<E>>>,
    {
        // A flight that finished just before this one started has filled L1.
        if let Some(l1) = &self.l1 {
            if let Some(hit) = l1.get(&local).await {
                return Ok(hit.value);
            }
        }
        let mut store: Option<(u64, u64)> = None; // (gen token, stamp)
        if let Some(l2) = self.l2_ready().await {
            match l2
                .lookup(&[&key], self.keys.gen_key(), self.keys.epoch_key())
                .await
            {
                Ok(found) => {
                    let want = match kind {
                        Kind::Entity => found.epoch,
                        Kind::Query => found.gen_token,
                    };
                    if let (Some(Some(bytes)), Some(w)) = (found.values.first(), want) {
                        if codec::stamp(bytes) == Some(w) {
                            match codec::decode::<E>(bytes) {
                                Ok(v) => {
                                    self.record(Event::Hit(Level::L2));
                                    self.l1_put(&key, kind, local, v.clone(), ttl).await;
                                    return Ok(v);
                                }
                                Err(e) => self.decode_failed(&e),
                            }
                        }
                    }
                    self.record(Event::Miss(Level::L2));
                    match (found.gen_token, found.epoch) {
                        (Some(g), Some(ep)) => store = Some((g, pick(kind, g, ep))),
                        _ => match l2
                            .init_tokens(self.keys.gen_key(), self.keys.epoch_key())
                            .await
                        {
                            Ok((g, ep)) => store = Some((g, pick(kind, g, ep))),
                            Err(e) => self.l2_failed(&e),
                        },
                    }
                }
                Err(e) => self.l2_failed(&e),
            }
        }
        self.record(Event::Load);
        let value = match load(self.clone()).await {
            Ok(v) => v,
            Err(e) => {
                self.record(Event::LoadError);
                return Err(e);
            }
        };
        if let (Some((token, stamp)), Some(l2)) = (store, self.l2.as_deref()) {
            self.l2_store(l2, token, vec![(key.clone(), stamp, value.clone())], ttl)
                .await;
        }
        self.l1_put(&key, kind, local, value.clone(), ttl).await;
        Ok(value)
    }

    async fn l2_store(
        self: &Arc<Self>,
        l2: &L2,
        token: u64,
        items: Vec<(String, u64, Cached<E>)>,
        ttl: EntityTtl,
    ) {
        let mut entries = Vec::with_capacity(items.len());
        for (key, stamp, value) in items {
            match codec::encode(stamp, &value) {
                Ok(bytes) => entries.push((key, bytes, self.ttl_for(&value, ttl))),
                Err(e) => {
                    tracing::debug!(entity = E::meta().name, error = %e, "value not cached in L2");
                }
            }
        }
        match l2.set_if_gen(self.keys.gen_key(), token, &entries).await {
            Ok(true) => {}
            Ok(false) => self.record(Event::StaleSetPrevented),
            Err(e) => self.l2_failed(&e),
        }
    }

    /// Invalidate after a write: L2 first (so a reader of the new local
    /// generation cannot refill L1 from an old L2 entry), then L1. When Redis
    /// cannot be reached the L2 invalidation and its backplane message are
    /// queued (see [`crate::outbox`]) and sent as soon as Redis answers.
    pub(crate) async fn after_write(self: &Arc<Self>, target: Target) {
        if self.l2.is_some() && self.l2_suspect() && self.recovering.load(Ordering::SeqCst) {
            // Redis is down and being retried: instead of paying a timeout,
            // count this write as a failure, so the reset that ends the
            // outage happens after it and drops whatever L2 holds for it,
            // and queue the invalidation for the other instances.
            self.l2_failures.fetch_add(1, Ordering::SeqCst);
            self.queue(&target);
        } else if let Some(l2) = self.l2.as_deref() {
            let (epoch, keys): (Option<&str>, &[String]) = match &target {
                Target::Keys(k) => (None, k),
                Target::All => (Some(self.keys.epoch_key()), &[]),
            };
            let publish = self.shared.backplane.as_ref().map(|bp| {
                let base = self.keys.base().to_string();
                let msg = match &target {
                    Target::Keys(k) => Message::Keys {
                        base,
                        keys: k.clone(),
                    },
                    Target::All => Message::All { base },
                };
                (bp.channel.as_str(), msg.encode(bp.origin))
            });
            match l2
                .invalidate(self.keys.gen_key(), epoch, keys, publish)
                .await
            {
                Ok(()) => self.shared.redis_answered(),
                Err(e) => {
                    // It may or may not have reached Redis: send it again.
                    self.queue(&target);
                    self.l2_failed(&e);
                }
            }
        }
        self.invalidate_local(&target).await;
        self.record(Event::Invalidation);
    }

    fn queue(&self, target: &Target) {
        self.shared.outbox.push(
            self.keys.base(),
            self.keys.gen_key(),
            self.keys.epoch_key(),
            match target {
                Target::Keys(k) => Some(k),
                Target::All => None,
            },
        );
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
    fn bump(&self, keys: Option<&[String]>) {
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

impl<E: Entity, R: Repository<E> + 'static> Receiver for Inner<E, R> {
    fn apply(&self, keys: Option<&[String]>) {
        self.bump(keys);
    }

    fn outage(self: Arc<Self>) {
        if self.l2.is_some() {
            self.l2_failures.fetch_add(1, Ordering::SeqCst);
            self.spawn_recovery();
        }
    }
}

/// The stamp an entry of `kind` carries: the epoch token for entities, the gen token for queries.
fn pick(kind: Kind, gen_token: u64, epoch: u64) -> u64 {
    match kind {
        Kind::Entity => epoch,
        Kind::Query => gen_token,
    }
}

fn unexpected() -> Error {
    Error::backend("cache entry of an unexpected shape")
}

impl<E: Entity, R: Repository<E> + 'static> Repository<E> for CachedRepository<E, R> {
    fn capabilities(&self) -> Capabilities {
        self.inner.repo.capabilities()
    }

    async fn ensure_schema(&self) -> Result<()> {
        self.inner.repo.ensure_schema().await
    }

    async fn get(&self, id: &E::Id) -> Result<Option<E>> {
        let Some(v) = norm_id::<E>(id) else {
            return self.inner.repo.get(id).await;
        };
        let key = self.inner.keys.entity(&v);
        let id = id.clone();
        let loaded = self
            .read(key, Kind::Entity, move |inner| async move {
                inner.repo.get(&id).await.map(Cached::Entity)
            })
            .await?;
        match loaded {
            Cached::Entity(e) => Ok(e),
            _ => Err(unexpected()),
        }
    }

    async fn get_many(&self, ids: &[E::Id]) -> Result<Vec<E>> {
        let inner = &self.inner;
        let ttls = self.ttls();
        // Key every id, collapsing duplicates.
        let mut order: Vec<(E::Id, String)> = Vec::with_capacity(ids.len());
        let mut seen = std::collections::HashSet::with_capacity(ids.len());
        for id in ids {
            let Some(v) = norm_id::<E>(id) else {
                return inner.repo.get_many(ids).await;
            };
            let key = inner.keys.entity(&v);
            if seen.insert(key.clone()) {
                order.push((id.clone(), key));
            }
        }
        let mut found: std::collections::HashMap<String, Option<E>> =
            std::collections::HashMap::with_capacity(order.len());
        let mut missing: Vec<(E::Id, String, String)> = Vec::new();
        for (id, key) in &order {
            let local = inner.gens.entity_key(key);
            if let Some(l1) = &inner.l1 {
                if let Some(hit) = l1.get(&local).await {
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
        let mut store: Option<(u64, u64)> = None;
        if !missing.is_empty() {
            if let Some(l2) = inner.l2_ready().await {
                let keys: Vec<&str> = missing.iter().map(|(_, k, _)| k.as_str()).collect();
                match l2
                    .lookup(&keys, inner.keys.gen_key(), inner.keys.epoch_key())
                    .await
                {
                    Ok(f) => {
                        let mut still = Vec::with_capacity(missing.len());
                        for ((id, key, local), bytes) in missing.into_iter().zip(f.values) {
                            let hit = match (&bytes, f.epoch) {
                                (Some(b), Some(ep)) if codec::stamp(b) == Some(ep) => {
                                    match codec::decode::<E>(b) {
                                        Ok(Cached::Entity(e)) => Some(e),
                                        Ok(_) => None,
                                        Err(e) => {
                                            inner.decode_failed(&e);
                                            None
                                        }
                                    }
                                }
                                _ => None,
                            };
                            match hit {
                                Some(e) => {
                                    inner.record(Event::Hit(Level::L2));
                                    inner
                                        .l1_put(
                                            &key,
                                            Kind::Entity,
                                            local,
                                            Cached::Entity(e.clone()),
                                            ttls,
                                        )
                                        .await;
                                    found.insert(key, e);
                                }
                                None => {
                                    inner.record(Event::Miss(Level::L2));
                                    still.push((id, key, local));
                                }
                            }
                        }
                        missing = still;
                        match (f.gen_token, f.epoch) {
                            (Some(g), Some(ep)) => store = Some((g, ep)),
                            _ => match l2
                                .init_tokens(inner.keys.gen_key(), inner.keys.epoch_key())
                                .await
                            {
                                Ok(t) => store = Some(t),
                                Err(e) => inner.l2_failed(&e),
                            },
                        }
                    }
                    Err(e) => inner.l2_failed(&e),
                }
            }
        }
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
            let mut by_key: std::collections::HashMap<String, E> = rows
                .into_iter()
                .filter_map(|e| norm_id::<E>(e.id()).map(|v| (inner.keys.entity(&v), e)))
                .collect();
            let mut l2_items = Vec::new();
            for (_, key, local) in missing {
                let e = by_key.remove(&key);
                if let Some((_, stamp)) = store {
                    l2_items.push((key.clone(), stamp, Cached::Entity(e.clone())));
                }
                inner
                    .l1_put(&key, Kind::Entity, local, Cached::Entity(e.clone()), ttls)
                    .await;
                found.insert(key, e);
            }
            if let (Some((token, _)), Some(l2)) = (store, inner.l2.as_deref()) {
                inner.l2_store(l2, token, l2_items, ttls).await;
            }
        }
        Ok(order
            .into_iter()
            .filter_map(|(_, key)| found.remove(&key).flatten())
            .collect())
    }

    async fn insert(&self, entity: &E) -> Result<E> {
        let t = self.target(std::slice::from_ref(entity.id()));
        self.write(t, self.inner.repo.insert(entity)).await
    }

    async fn insert_many(&self, entities: &[E]) -> Result<u64> {
        let ids: Vec<E::Id> = entities.iter().map(|e| e.id().clone()).collect();
        let t = self.target(&ids);
        self.write(t, self.inner.repo.insert_many(entities)).await
    }

    async fn update(&self, entity: &E) -> Result<E> {
        let t = self.target(std::slice::from_ref(entity.id()));
        self.write(t, self.inner.repo.update(entity)).await
    }

    async fn upsert(&self, entity: &E) -> Result<E> {
        let t = self.target(std::slice::from_ref(entity.id()));
        self.write(t, self.inner.repo.upsert(entity)).await
    }

    async fn delete(&self, id: &E::Id) -> Result<bool> {
        let t = self.target(std::slice::from_ref(id));
        self.write(t, self.inner.repo.delete(id)).await
    }

    async fn delete_many(&self, filter: &Filter) -> Result<u64> {
        self.write(Target::All, self.inner.repo.delete_many(filter))
            .await
    }

    async fn find(&self, query: &Query) -> Result<Vec<E>> {
        let Ok(checked) = query.checked(E::meta()) else {
            return self.inner.repo.find(query).await;
        };
        let key = self.inner.keys.query(QueryOp::Find, &checked);
        let q = query.clone();
        match self
            .read(key, Kind::Query, move |inner| async move {
                inner.repo.find(&q).await.map(|v| Cached::Rows(Arc::new(v)))
            })
            .await?
        {
            Cached::Rows(rows) => Ok(Arc::unwrap_or_clone(rows)),
            _ => Err(unexpected()),
        }
    }

    async fn find_one(&self, query: &Query) -> Result<Option<E>> {
        let Ok(checked) = query.checked(E::meta()) else {
            return self.inner.repo.find_one(query).await;
        };
        let key = self.inner.keys.query(QueryOp::FindOne, &checked);
        let q = query.clone();
        match self
            .read(key, Kind::Query, move |inner| async move {
                inner.repo.find_one(&q).await.map(Cached::Entity)
            })
            .await?
        {
            Cached::Entity(e) => Ok(e),
            _ => Err(unexpected()),
        }
    }

    async fn count(&self, filter: &Filter) -> Result<u64> {
        let Ok(checked) = filter.checked(E::meta()) else {
            return self.inner.repo.count(filter).await;
        };
        let key = self.inner.keys.filter(QueryOp::Count, &checked);
        let f = filter.clone();
        match self
            .read(key, Kind::Query, move |inner| async move {
                inner.repo.count(&f).await.map(Cached::Count)
            })
            .await?
        {
            Cached::Count(n) => Ok(n),
            _ => Err(unexpected()),
        }
    }

    async fn exists(&self, filter: &Filter) -> Result<bool> {
        let Ok(checked) = filter.checked(E::meta()) else {
            return self.inner.repo.exists(filter).await;
        };
        let key = self.inner.keys.filter(QueryOp::Exists, &checked);
        let f = filter.clone();
        match self
            .read(key, Kind::Query, move |inner| async move {
                inner.repo.exists(&f).await.map(Cached::Bool)
            })
            .await?
        {
            Cached::Bool(b) => Ok(b),
            _ => Err(unexpected()),
        }
    }

    fn stream<'a>(&'a self, query: &Query) -> BoxStream<'a, Result<E>> {
        // Streams exist to avoid holding whole results: never cached.
        self.inner.repo.stream(query)
    }

    async fn page(&self, query: &Query, cursor: Option<&Cursor>) -> Result<Page<E>> {
        // Pages go to the repository as is (its own paging semantics); not cached.
        self.inner.repo.page(query, cursor).await
    }
}
