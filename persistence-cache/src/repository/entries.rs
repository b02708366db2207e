//! The vocabulary of the cached repository: L1 entries and their expiry,
//! the local generations ([`Gens`]) that decide which L1 entries are alive,
//! what a read keys on ([`Kind`]) and what a write touched ([`Target`]).

use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use moka::Expiry;
use persistence_core::{Entity, Error, Value};

use crate::codec::Cached;

/// Local generations per entity type: a write bumps its key's stripe,
/// which retires the L1 entries of every key in that stripe. 16,384 (128
/// KiB per cached entity type) keeps that collateral small: at 3,000
/// writes/s a stripe moves ~0.2 times a second (with 1,024, ~3 times,
/// and YCSB A's L1 answered 31 % of reads; see `persistence/benches/ycsb.rs`).
const STRIPES: usize = 16_384;

#[derive(Clone)]
pub(crate) struct L1Entry<E> {
    pub(crate) value: Cached<E>,
    /// How long moka keeps it: its TTL, or the fail-safe's max age.
    pub(super) ttl: Duration,
    /// Units or encoded bytes (see `Inner::l1_weight`).
    pub(super) weight: u32,
    /// When it was cached (eager refresh counts from here).
    pub(super) loaded_at: Instant,
    /// Fresh (served as a hit) until then; afterwards only the fail-safe
    /// may serve it, until `keep_until`.
    pub(super) fresh_until: Instant,
    /// End of its fail-safe life (None: no fail-safe; never served stale).
    pub(super) keep_until: Option<Instant>,
    /// A stale value kept fresh for the fail-safe throttle: served, flagged stale.
    pub(super) stale: bool,
    /// An eager refresh was started for it (one per entry).
    pub(super) refreshing: Arc<AtomicBool>,
}

impl<E> L1Entry<E> {
    pub(super) fn is_fresh(&self, now: Instant) -> bool {
        now < self.fresh_until
    }

    /// Expired, but the fail-safe may still serve it.
    pub(super) fn is_servable_stale(&self, now: Instant) -> bool {
        self.keep_until.is_some_and(|k| now < k)
    }

    /// Past `fraction` of its fresh life: time for an eager refresh.
    pub(super) fn refresh_due(&self, now: Instant, fraction: f64) -> bool {
        let life = self.fresh_until.saturating_duration_since(self.loaded_at);
        !self.stale && now >= self.loaded_at + life.mul_f64(fraction)
    }
}

pub(super) struct L1Expiry;

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
pub(super) struct Gens {
    pub(super) epoch: AtomicU64,
    pub(super) queries: AtomicU64,
    pub(super) stripes: Box<[AtomicU64]>,
}

impl Gens {
    pub(super) fn new() -> Gens {
        Gens {
            epoch: AtomicU64::new(0),
            queries: AtomicU64::new(0),
            stripes: (0..STRIPES).map(|_| AtomicU64::new(0)).collect(),
        }
    }
    pub(super) fn stripe(key: &str) -> usize {
        let mut h = DefaultHasher::new();
        key.hash(&mut h);
        (h.finish() % STRIPES as u64) as usize
    }
    /// The L1 / flight key of an entity key under the current generations.
    pub(super) fn entity_key(&self, key: &str) -> String {
        let e = self.epoch.load(Ordering::SeqCst);
        let s = self.stripes[Self::stripe(key)].load(Ordering::SeqCst);
        format!("{key}@{e}.{s}")
    }
    /// `(epoch, stripe generation)` of an entity key, for [`Self::bump_from`].
    pub(super) fn snapshot(&self, key: &str) -> (u64, u64) {
        (
            self.epoch.load(Ordering::SeqCst),
            self.stripes[Self::stripe(key)].load(Ordering::SeqCst),
        )
    }

    /// Bump the stripe generation of `key` (and the query generation). When
    /// nothing moved since `snap` was taken, answers the L1 key of `key`
    /// under the new generation — a key no other write or invalidation can
    /// have used; else None (the bump happened all the same).
    pub(super) fn bump_from(&self, key: &str, snap: (u64, u64)) -> Option<String> {
        let (epoch, stripe) = snap;
        let slot = &self.stripes[Self::stripe(key)];
        let exact = slot
            .compare_exchange(stripe, stripe + 1, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok();
        if !exact {
            slot.fetch_add(1, Ordering::SeqCst);
        }
        self.queries.fetch_add(1, Ordering::SeqCst);
        (exact && self.epoch.load(Ordering::SeqCst) == epoch)
            .then(|| format!("{key}@{epoch}.{}", stripe + 1))
    }

    pub(super) fn query_key(&self, key: &str) -> String {
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

/// The id as a normalized [`Value`] (None when it cannot be keyed).
pub(super) fn norm_id<E: Entity>(id: &E::Id) -> Option<Value> {
    Value::from_serialize(id)
        .ok()?
        .normalize(E::meta().id_field().ty)
        .ok()
}

/// The stamp an entry of `kind` carries: the epoch token for entities, the gen token for queries.
#[cfg(feature = "redis")]
pub(super) fn pick(kind: Kind, gen_token: u64, epoch: u64) -> u64 {
    match kind {
        Kind::Entity => epoch,
        Kind::Query => gen_token,
    }
}

pub(super) fn unexpected() -> Error {
    Error::backend("cache entry of an unexpected shape")
}
