//! [`CachedRepository`]: the read-through, write-invalidating decorator.
//!
//! # Coherence within one process
//! Local generations decide which L1 entries are alive: an entity entry's L1
//! key carries `(epoch, stripe generation)` of its key, a query entry's the
//! entity type's query generation. A write, once the underlying repository
//! has answered, first invalidates L2 (see `crate::l2`), then bumps the
//! stripe generation of every written id (or the epoch, for `delete_many`
//! and `update_where`, whose ids are unknown; `find_one_and_delete` the id it
//! returned) and the query generation. `select`, `distinct` and `aggregate`
//! are not cached. Reads compute the current key, so no entry
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
//!
//! # Stale values (source fail-safe, load timeouts, eager refresh)
//! With a [`ReadPolicy`] fail-safe, L1 keeps an entry past its TTL (until
//! its max age) under the same generation key: it stays reachable only
//! while no write or invalidation (local, or from another instance through
//! the backplane) has moved the generation, so a stale value is never older
//! than the last acknowledged write. It is served only when a load fails
//! with a retryable error or outlives the soft timeout; see `stale`.
//!
//! This file holds the types, the public methods and the `Repository` impl;
//! `entries` the L1 entries and generations, `read` the read path, `stale`
//! the fail-safe, load timeouts and eager refresh,
//! `write` the invalidation after writes, `related` the invalidation of
//! child entity types after a parent's delete (cascade / set_null relations), `l2` (feature `redis`) the Redis side and its
//! fail-safe, `leased` (feature `redis`) the cross-process lease step of a miss.

use std::sync::Arc;
#[cfg(feature = "redis")]
use std::sync::atomic::{AtomicBool, AtomicU64};

use moka::future::Cache;
use moka::notification::RemovalCause;
use persistence_core::query::Cursor;
use persistence_core::{
    BoxStream, Capabilities, Entity, Filter, GroupBy, Guard, NearestQuery, Page, Query, Repository,
    Result, TextQuery, Update, Value,
};

#[cfg(feature = "redis")]
use crate::backplane::Receiver;
use crate::codec::Cached;
use crate::config::{EntityTtl, ReadPolicy};
use crate::keys::{Keys, QueryOp};
#[cfg(feature = "redis")]
use crate::l2::L2;
use crate::metrics::{Counters, Event, Stats};
use crate::repository::entries::{Gens, Kind, L1Entry, L1Expiry, Target, norm_id, unexpected};
use crate::shared::Shared;
use crate::singleflight::Flights;

mod entries;
#[cfg(feature = "redis")]
mod l2;
#[cfg(feature = "redis")]
mod leased;
mod read;
mod related;
mod stale;
mod through;
mod write;

pub(crate) struct Inner<E: Entity, R> {
    pub(crate) repo: R,
    pub(crate) keys: Keys,
    /// The key prefix (the layer's, or a scoped one).
    pub(crate) prefix: Arc<str>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) l1: Option<Cache<String, L1Entry<E>>>,
    /// L1 weighs entries by encoded size (`L1Config::max_bytes`).
    l1_bytes: bool,
    #[cfg(feature = "redis")]
    pub(crate) l2: Option<Arc<L2>>,
    ttl: EntityTtl,
    read: ReadPolicy,
    gens: Gens,
    /// Write-through on (see `through`).
    write_through: bool,
    /// In-flight writes, without L2 (see `through`).
    inflight: Arc<through::InFlight>,
    flights: Flights<Cached<E>>,
    pub(crate) counters: Arc<Counters>,
    #[cfg(feature = "redis")]
    l2_failures: AtomicU64,
    #[cfg(feature = "redis")]
    l2_reset_upto: AtomicU64,
    #[cfg(feature = "redis")]
    decode_warned: AtomicBool,
    #[cfg(feature = "redis")]
    l2_warned: AtomicBool,
    #[cfg(feature = "redis")]
    recovering: AtomicBool,
    /// The last epoch token Redis answered with (0: none yet); see
    /// `through` (versioned entities).
    #[cfg(feature = "redis")]
    seen_epoch: AtomicU64,
}

/// A repository with a read-through cache in front of it; itself a
/// [`Repository`], so callers do not change. Built by
/// [`CacheLayer::wrap`](crate::CacheLayer::wrap). Cheap to clone (clones share the cache).
pub struct CachedRepository<E: Entity, R> {
    pub(crate) inner: Arc<Inner<E, R>>,
    /// TTLs of this handle (None: the entity type's).
    ttl: Option<EntityTtl>,
    /// Read policy of this handle (None: the entity type's).
    read: Option<ReadPolicy>,
    /// Write-through of this handle (None: the entity type's).
    write_through: Option<bool>,
}

/// Whether a read was answered with a fresh value or a stale one (see
/// [`CachedRepository::get_served`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Served {
    /// A cached value within its TTL, or one just loaded.
    Fresh,
    /// A value past its TTL, served by the fail-safe (the load failed with a
    /// retryable error, or is throttled after one) or because the load
    /// outlived the soft timeout. Still the newest by the generation rules.
    Stale,
}

impl<E: Entity, R> Clone for CachedRepository<E, R> {
    fn clone(&self) -> Self {
        CachedRepository {
            inner: self.inner.clone(),
            ttl: self.ttl,
            read: self.read,
            write_through: self.write_through,
        }
    }
}

impl<E: Entity, R> std::fmt::Debug for CachedRepository<E, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("CachedRepository");
        d.field("entity", &E::meta().name)
            .field("l1", &self.inner.l1.is_some());
        #[cfg(feature = "redis")]
        d.field("l2", &self.inner.l2.is_some());
        d.finish()
    }
}

impl<E: Entity, R: Repository<E> + 'static> CachedRepository<E, R> {
    /// Keys under `prefix` when given, else the layer's prefix.
    pub(crate) fn new(shared: Arc<Shared>, repo: R, prefix: Option<&str>) -> Self {
        let repo = CachedRepository {
            ttl: None,
            read: None,
            write_through: None,
            inner: Arc::new(Inner::new(shared, repo, prefix)),
        };
        #[cfg(feature = "redis")]
        if let Some(bp) = &repo.inner.shared.backplane {
            let weak: std::sync::Weak<dyn Receiver> = Arc::downgrade(&repo.inner) as _;
            bp.register(repo.inner.keys.base(), weak);
        }
        let weak: std::sync::Weak<dyn crate::shared::DropAll> = Arc::downgrade(&repo.inner) as _;
        repo.inner
            .shared
            .register(repo.inner.prefix.clone(), E::meta(), weak);
        repo
    }

    /// A handle on the same cache whose reads store entries with these TTLs
    /// (per-call TTL: `repo.with_ttl(t).get(&id)`).
    pub fn with_ttl(&self, ttl: EntityTtl) -> Self {
        CachedRepository {
            inner: self.inner.clone(),
            ttl: Some(ttl),
            read: self.read,
            write_through: self.write_through,
        }
    }

    /// A handle on the same cache whose writes are written through or not
    /// (see [`CacheLayerBuilder::write_through`](crate::CacheLayerBuilder::write_through)).
    pub fn with_write_through(&self, on: bool) -> Self {
        CachedRepository {
            write_through: Some(on),
            ..self.clone()
        }
    }

    /// Whether this handle's writes are written through.
    pub fn writes_through(&self) -> bool {
        self.write_through.unwrap_or(self.inner.write_through)
    }

    /// A handle on the same cache whose reads follow this [`ReadPolicy`]
    /// (fail-safe, load timeouts, eager refresh); `policy` must be valid
    /// ([`ReadPolicy::validate`]) and have no lease without L2, else the
    /// error comes back here.
    pub fn with_read_policy(&self, policy: ReadPolicy) -> Result<Self> {
        policy.validate()?;
        #[cfg(feature = "redis")]
        let has_l2 = self.inner.l2.is_some();
        #[cfg(not(feature = "redis"))]
        let has_l2 = false;
        if policy.lease.is_some() && !has_l2 {
            return Err(persistence_core::Error::config(
                "cache lease needs L2 (redis_url): the lease lives in Redis",
            ));
        }
        Ok(CachedRepository {
            inner: self.inner.clone(),
            ttl: self.ttl,
            read: Some(policy),
            write_through: self.write_through,
        })
    }

    pub(super) fn ttls(&self) -> EntityTtl {
        self.ttl.unwrap_or(self.inner.ttl)
    }

    /// The read policy of this handle.
    pub fn read_policy(&self) -> ReadPolicy {
        self.read.unwrap_or(self.inner.read)
    }

    /// `get`, and whether the answer was fresh or [stale](Served::Stale)
    /// (served by the fail-safe or after a soft timeout).
    pub async fn get_served(&self, id: &E::Id) -> Result<(Option<E>, Served)> {
        let Some(v) = norm_id::<E>(id) else {
            return Ok((self.inner.repo.get(id).await?, Served::Fresh));
        };
        let key = self.inner.keys.entity(&v);
        let id = id.clone();
        let (loaded, served) = self
            .read_served(key, Kind::Entity, move |inner| async move {
                inner.repo.get(&id).await.map(Cached::Entity)
            })
            .await?;
        match loaded {
            // A soft-deleted entity is never served, whatever a cache holds.
            Cached::Entity(e) => Ok((e.filter(persistence_core::lifecycle::visible), served)),
            _ => Err(unexpected()),
        }
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
    #[cfg(feature = "redis")]
    pub fn l2_trusted(&self) -> bool {
        !self.inner.l2_suspect()
    }

    /// Number of loads currently in flight (for tests).
    #[doc(hidden)]
    pub fn loads_in_flight(&self) -> usize {
        self.inner.flights.len()
    }

    /// `find` (`op` = `Find`) or `find_unordered` (`FindUnordered`)
    /// through the cache, each under its own key.
    async fn rows(&self, query: &Query, op: QueryOp) -> Result<Vec<E>> {
        let unordered = matches!(op, QueryOp::FindUnordered);
        let Ok(checked) = query.checked(E::meta()) else {
            return match unordered {
                true => self.inner.repo.find_unordered(query).await,
                false => self.inner.repo.find(query).await,
            };
        };
        let key = self.inner.keys.query(op, &checked);
        let q = query.clone();
        match self
            .read(key, Kind::Query, move |inner| async move {
                let rows = match unordered {
                    true => inner.repo.find_unordered(&q).await,
                    false => inner.repo.find(&q).await,
                };
                rows.map(|v| Cached::Rows(Arc::new(v)))
            })
            .await?
        {
            Cached::Rows(rows) => Ok(Arc::unwrap_or_clone(rows)),
            _ => Err(unexpected()),
        }
    }
}

impl<E: Entity, R: Repository<E> + 'static> Inner<E, R> {
    fn new(shared: Arc<Shared>, repo: R, prefix: Option<&str>) -> Self {
        let meta = E::meta();
        let prefix: Arc<str> = Arc::from(prefix.unwrap_or(&shared.prefix));
        let keys = Keys::new(&prefix, meta);
        let counters = Arc::new(Counters::with_db(shared.db_label.clone()));
        let l1_config = shared.l1_for(meta.name);
        let l1 = l1_config.map(|cfg| {
            let c = counters.clone();
            let mut b = Cache::builder()
                .max_capacity(cfg.max_bytes.unwrap_or(cfg.max_weight))
                .weigher(|_k: &String, v: &L1Entry<E>| v.weight)
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
        let read = shared
            .per_entity_read
            .get(meta.name)
            .copied()
            .unwrap_or(shared.default_read);
        let write_through = shared
            .per_entity_write_through
            .get(meta.name)
            .copied()
            .unwrap_or(shared.write_through);
        Inner {
            repo,
            keys,
            prefix,
            #[cfg(feature = "redis")]
            l2: shared.l2.clone(),
            shared,
            l1,
            l1_bytes: l1_config.is_some_and(|c| c.max_bytes.is_some()),
            ttl,
            read,
            gens: Gens::new(),
            write_through,
            inflight: Arc::default(),
            flights: Flights::new(),
            counters,
            #[cfg(feature = "redis")]
            l2_failures: AtomicU64::new(0),
            #[cfg(feature = "redis")]
            l2_reset_upto: AtomicU64::new(0),
            #[cfg(feature = "redis")]
            decode_warned: AtomicBool::new(false),
            #[cfg(feature = "redis")]
            l2_warned: AtomicBool::new(false),
            #[cfg(feature = "redis")]
            recovering: AtomicBool::new(false),
            #[cfg(feature = "redis")]
            seen_epoch: AtomicU64::new(0),
        }
    }

    pub(crate) fn record(&self, event: Event) {
        self.counters.record(E::meta().name, event);
    }

    /// The L1 weight of `value`: its encoded size in bytes, or units
    /// (`Cached::weight`); `None` when it cannot be encoded (not kept in L1).
    pub(crate) fn l1_weight(&self, value: &Cached<E>) -> Option<u32> {
        if !self.l1_bytes {
            return Some(value.weight());
        }
        match crate::codec::encode(0, value) {
            Ok(bytes) => Some(u32::try_from(bytes.len()).unwrap_or(u32::MAX)),
            Err(e) => {
                tracing::debug!(entity = E::meta().name, error = %e, "value not cached in L1");
                None
            }
        }
    }

    /// The L2 (Redis) lifetime of `value`, jittered.
    #[cfg(feature = "redis")]
    pub(crate) fn l2_ttl_for(&self, value: &Cached<E>, ttl: EntityTtl) -> std::time::Duration {
        self.shared.jittered(ttl.l2(value.is_negative()))
    }
}

/// The row a write returned, to write through.
fn row<E: Clone>(e: &E) -> Option<E> {
    Some(e.clone())
}

impl<E: Entity, R: Repository<E> + 'static> Repository<E> for CachedRepository<E, R> {
    fn capabilities(&self) -> Capabilities {
        self.inner.repo.capabilities()
    }

    async fn ensure_schema(&self) -> Result<()> {
        self.inner.repo.ensure_schema().await
    }

    /// Not cached: always asks the repository below.
    async fn verify_schema(&self) -> Result<persistence_core::SchemaReport> {
        self.inner.repo.verify_schema().await
    }

    async fn get(&self, id: &E::Id) -> Result<Option<E>> {
        self.get_served(id).await.map(|(e, _)| e)
    }

    async fn get_many(&self, ids: &[E::Id]) -> Result<Vec<E>> {
        self.read_many(ids).await
    }

    async fn insert(&self, entity: &E) -> Result<E> {
        let t = self.target(std::slice::from_ref(entity.id()));
        self.write_as(t, self.inner.repo.insert(entity), row).await
    }

    async fn insert_many(&self, entities: &[E]) -> Result<u64> {
        let ids: Vec<E::Id> = entities.iter().map(|e| e.id().clone()).collect();
        let t = self.target(&ids);
        self.write(t, self.inner.repo.insert_many(entities)).await
    }

    async fn update(&self, entity: &E) -> Result<E> {
        let t = self.target(std::slice::from_ref(entity.id()));
        self.write_as(t, self.inner.repo.update(entity), row).await
    }

    async fn upsert(&self, entity: &E) -> Result<E> {
        let t = self.target(std::slice::from_ref(entity.id()));
        self.write_as(t, self.inner.repo.upsert(entity), row).await
    }

    async fn delete(&self, id: &E::Id) -> Result<bool> {
        let t = self.target(std::slice::from_ref(id));
        let out = self.write(t, self.inner.repo.delete(id)).await;
        self.inner.after_delete(!matches!(out, Ok(false))).await;
        out
    }

    async fn delete_many(&self, filter: &Filter) -> Result<u64> {
        let out = self
            .write(Target::All, self.inner.repo.delete_many(filter))
            .await;
        self.inner.after_delete(!matches!(out, Ok(0))).await;
        out
    }

    async fn purge(&self, filter: &Filter) -> Result<u64> {
        let out = self.write(Target::All, self.inner.repo.purge(filter)).await;
        self.inner.after_delete(!matches!(out, Ok(0))).await;
        out
    }

    async fn find(&self, query: &Query) -> Result<Vec<E>> {
        self.rows(query, QueryOp::Find).await
    }

    /// Cached apart from `find` (its rows may come in another order).
    async fn find_unordered(&self, query: &Query) -> Result<Vec<E>> {
        self.rows(query, QueryOp::FindUnordered).await
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

    async fn patch(&self, id: &E::Id, update: &Update<E>, guard: &Guard) -> Result<E> {
        let t = self.target(std::slice::from_ref(id));
        self.write_as(t, self.inner.repo.patch(id, update, guard), row)
            .await
    }

    async fn update_where(&self, filter: &Filter, update: &Update<E>) -> Result<u64> {
        // The ids are not known: every cached entity and query is dropped.
        self.write(Target::All, self.inner.repo.update_where(filter, update))
            .await
    }

    async fn find_one_and_delete(&self, query: &Query) -> Result<Option<E>> {
        // Registered as a write of unknown keys (see `through`).
        let reg = self
            .inner
            .begin_write(&Target::All, self.writes_through(), false)
            .await;
        let out = self.inner.repo.find_one_and_delete(query).await;
        // The id is known only afterwards: the popped one, or (after a
        // failure, which may have landed) any.
        let t = match &out {
            Ok(Some(e)) => self.target(std::slice::from_ref(e.id())),
            Ok(None) => Target::Keys(Vec::new()),
            Err(_) => Target::All,
        };
        let (ttl, keep) = (self.ttls(), self.read_policy().keep());
        self.inner.end_write(t, reg, None, ttl, keep).await;
        self.inner.after_delete(!matches!(out, Ok(None))).await;
        out
    }

    async fn select(&self, query: &Query, fields: &[&str]) -> Result<Vec<Value>> {
        // Projections, distinct values and aggregates are not cached.
        self.inner.repo.select(query, fields).await
    }

    async fn distinct(&self, field: &str, filter: &Filter) -> Result<Vec<Value>> {
        self.inner.repo.distinct(field, filter).await
    }

    async fn aggregate(&self, filter: &Filter, group: &GroupBy<E>) -> Result<Vec<Value>> {
        self.inner.repo.aggregate(filter, group).await
    }

    /// Cached like `find`: keyed by the checked filter, field, vector bits,
    /// `k` and `ef_search`; every write drops it as it drops query results.
    async fn find_nearest(&self, query: &NearestQuery) -> Result<Vec<(E, f64)>> {
        let Ok(checked) = query.checked(E::meta()) else {
            return self.inner.repo.find_nearest(query).await;
        };
        let key = self.inner.keys.nearest(query, &checked.filter);
        let q = query.clone();
        match self
            .read(key, Kind::Query, move |inner| async move {
                inner
                    .repo
                    .find_nearest(&q)
                    .await
                    .map(|v| Cached::Nearest(Arc::new(v)))
            })
            .await?
        {
            Cached::Nearest(rows) => Ok(Arc::unwrap_or_clone(rows)),
            _ => Err(unexpected()),
        }
    }

    /// Cached like `find`: keyed by the checked filter, the search string
    /// and the limit; every write drops it as it drops query results.
    async fn find_text(&self, query: &TextQuery) -> Result<Vec<(E, f64)>> {
        let Ok(checked) = query.checked(E::meta()) else {
            return self.inner.repo.find_text(query).await;
        };
        let key = self.inner.keys.text(query, &checked.filter);
        let q = query.clone();
        match self
            .read(key, Kind::Query, move |inner| async move {
                inner
                    .repo
                    .find_text(&q)
                    .await
                    .map(|v| Cached::Nearest(Arc::new(v)))
            })
            .await?
        {
            Cached::Nearest(rows) => Ok(Arc::unwrap_or_clone(rows)),
            _ => Err(unexpected()),
        }
    }
}
