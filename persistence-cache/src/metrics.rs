//! Metrics: counters through the [`metrics`] facade (names defined once,
//! here) and the same counts as a [`Stats`] snapshot.
//!
//! Every counter carries the label `entity` (the entity's logical name);
//! hits and misses also carry `level` (`l1` / `l2`). A layer built with
//! [`db_label`](crate::CacheLayerBuilder::db_label) (as the `persistence`
//! manager does) adds `db` (the configured database name).

use std::sync::Arc;

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Metric names.
pub mod names {
    /// Cache hits (labels: entity, level).
    pub const HITS: &str = "persistence_cache_hits_total";
    /// Cache misses (labels: entity, level).
    pub const MISSES: &str = "persistence_cache_misses_total";
    /// Loads from the underlying repository (label: entity).
    pub const LOADS: &str = "persistence_cache_loads_total";
    /// Loads that failed (label: entity).
    pub const LOAD_ERRORS: &str = "persistence_cache_load_errors_total";
    /// Invalidations caused by writes or explicit calls (label: entity).
    pub const INVALIDATIONS: &str = "persistence_cache_invalidations_total";
    /// L1 entries evicted for size (label: entity).
    pub const EVICTIONS: &str = "persistence_cache_evictions_total";
    /// Loaded results not stored because a write happened during the load (label: entity).
    pub const STALE_SETS_PREVENTED: &str = "persistence_cache_stale_sets_prevented_total";
    /// Redis failures absorbed by the fail-safe (label: entity).
    pub const L2_ERRORS: &str = "persistence_cache_l2_errors_total";
    /// Entries that failed to decode and were treated as misses (label: entity).
    pub const DECODE_ERRORS: &str = "persistence_cache_decode_errors_total";
    /// Reads answered with a stale value by the fail-safe or a soft timeout (label: entity).
    pub const STALE_SERVED: &str = "persistence_cache_stale_served_total";
    /// Loads that outlived the soft timeout; a stale value answered (label: entity).
    pub const SOFT_TIMEOUTS: &str = "persistence_cache_soft_timeouts_total";
    /// Loads that outlived the hard timeout; the read failed with `Timeout` (label: entity).
    pub const HARD_TIMEOUTS: &str = "persistence_cache_hard_timeouts_total";
    /// Background reloads started by eager refresh (label: entity).
    pub const EAGER_REFRESHES: &str = "persistence_cache_eager_refreshes_total";
    /// L2 misses on which this instance took the key's lease and loaded (label: entity).
    pub const LEASES_ACQUIRED: &str = "persistence_cache_leases_acquired_total";
    /// L2 misses that found the key leased by another loader and waited
    /// for its value, or served a stale value at once (label: entity).
    pub const LEASE_WAITS: &str = "persistence_cache_lease_waits_total";
    /// Waits that ended without the holder's value: its lease expired or
    /// was released with nothing stored (the holder died or failed, or a
    /// write refused its store), or the wait bound passed; this instance
    /// then loaded itself (label: entity).
    pub const LEASES_EXPIRED: &str = "persistence_cache_leases_expired_total";
    /// Writes whose returned row was stored in the cache (write-through)
    /// instead of only invalidating it (label: entity).
    pub const WRITE_THROUGHS: &str = "persistence_cache_write_throughs_total";
    /// Reads that joined a load which a write may have superseded before
    /// they joined, and read again (label: entity).
    pub const REREADS: &str = "persistence_cache_rereads_total";
}

/// A snapshot of one cached repository's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// L1 hits.
    pub l1_hits: u64,
    /// L1 misses.
    pub l1_misses: u64,
    /// L2 hits.
    pub l2_hits: u64,
    /// L2 misses.
    pub l2_misses: u64,
    /// Loads from the underlying repository.
    pub loads: u64,
    /// Failed loads.
    pub load_errors: u64,
    /// Invalidations.
    pub invalidations: u64,
    /// L1 evictions for size.
    pub evictions: u64,
    /// Results not stored because a write raced the load.
    pub stale_sets_prevented: u64,
    /// Redis failures absorbed.
    pub l2_errors: u64,
    /// Entries that failed to decode.
    pub decode_errors: u64,
    /// Reads answered with a stale value (fail-safe, soft timeout).
    pub stale_served: u64,
    /// Loads past the soft timeout.
    pub soft_timeouts: u64,
    /// Loads past the hard timeout.
    pub hard_timeouts: u64,
    /// Eager background refreshes started.
    pub eager_refreshes: u64,
    /// Leases taken (this instance loaded for every instance).
    pub leases_acquired: u64,
    /// Misses that waited on another loader's lease (or served stale).
    pub lease_waits: u64,
    /// Lease waits that ended without the holder's value.
    pub leases_expired: u64,
    /// Writes whose returned row was stored (write-through).
    pub write_throughs: u64,
    /// Reads that joined a load a write may have superseded, and read again.
    pub rereads: u64,
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum Event {
    Hit(Level),
    Miss(Level),
    Load,
    LoadError,
    Invalidation,
    Eviction,
    StaleSetPrevented,
    // Only Redis fails or holds undecodable entries.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    L2Error,
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    DecodeError,
    StaleServed,
    SoftTimeout,
    HardTimeout,
    EagerRefresh,
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    LeaseAcquired,
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    LeaseWaited,
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    LeaseExpired,
    WriteThrough,
    Reread,
}

impl Event {
    /// Every event, in [`Event::index`] order.
    const ALL: [Event; 20] = [
        Event::Hit(Level::L1),
        Event::Hit(Level::L2),
        Event::Miss(Level::L1),
        Event::Miss(Level::L2),
        Event::Load,
        Event::LoadError,
        Event::Invalidation,
        Event::Eviction,
        Event::StaleSetPrevented,
        Event::L2Error,
        Event::DecodeError,
        Event::StaleServed,
        Event::SoftTimeout,
        Event::HardTimeout,
        Event::EagerRefresh,
        Event::LeaseAcquired,
        Event::LeaseWaited,
        Event::LeaseExpired,
        Event::WriteThrough,
        Event::Reread,
    ];

    /// The metric name of `event` and its `level` label.
    fn metric(self) -> (&'static str, Option<Level>) {
        match self {
            Event::Hit(Level::L1) => (names::HITS, Some(Level::L1)),
            Event::Hit(Level::L2) => (names::HITS, Some(Level::L2)),
            Event::Miss(Level::L1) => (names::MISSES, Some(Level::L1)),
            Event::Miss(Level::L2) => (names::MISSES, Some(Level::L2)),
            Event::Load => (names::LOADS, None),
            Event::LoadError => (names::LOAD_ERRORS, None),
            Event::Invalidation => (names::INVALIDATIONS, None),
            Event::Eviction => (names::EVICTIONS, None),
            Event::StaleSetPrevented => (names::STALE_SETS_PREVENTED, None),
            Event::L2Error => (names::L2_ERRORS, None),
            Event::DecodeError => (names::DECODE_ERRORS, None),
            Event::StaleServed => (names::STALE_SERVED, None),
            Event::SoftTimeout => (names::SOFT_TIMEOUTS, None),
            Event::HardTimeout => (names::HARD_TIMEOUTS, None),
            Event::EagerRefresh => (names::EAGER_REFRESHES, None),
            Event::LeaseAcquired => (names::LEASES_ACQUIRED, None),
            Event::LeaseWaited => (names::LEASE_WAITS, None),
            Event::LeaseExpired => (names::LEASES_EXPIRED, None),
            Event::WriteThrough => (names::WRITE_THROUGHS, None),
            Event::Reread => (names::REREADS, None),
        }
    }

    fn index(self) -> usize {
        match self {
            Event::Hit(Level::L1) => 0,
            Event::Hit(Level::L2) => 1,
            Event::Miss(Level::L1) => 2,
            Event::Miss(Level::L2) => 3,
            Event::Load => 4,
            Event::LoadError => 5,
            Event::Invalidation => 6,
            Event::Eviction => 7,
            Event::StaleSetPrevented => 8,
            Event::L2Error => 9,
            Event::DecodeError => 10,
            Event::StaleServed => 11,
            Event::SoftTimeout => 12,
            Event::HardTimeout => 13,
            Event::EagerRefresh => 14,
            Event::LeaseAcquired => 15,
            Event::LeaseWaited => 16,
            Event::LeaseExpired => 17,
            Event::WriteThrough => 18,
            Event::Reread => 19,
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum Level {
    L1,
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    L2,
}

impl Level {
    fn label(self) -> &'static str {
        match self {
            Level::L1 => "l1",
            Level::L2 => "l2",
        }
    }
}

/// What the `counter!` macro would give its metrics (its call site's).
static METADATA: metrics::Metadata<'static> =
    metrics::Metadata::new(module_path!(), metrics::Level::INFO, Some(module_path!()));

/// Every event's metric key for one entity (see [`Counters::record`]).
#[derive(Debug)]
struct MetricKeys {
    entity: &'static str,
    /// By [`Event::index`].
    keys: Vec<metrics::Key>,
}

impl MetricKeys {
    fn new(entity: &'static str, db: Option<&str>) -> MetricKeys {
        let keys = Event::ALL
            .iter()
            .map(|&event| {
                let (name, level) = event.metric();
                let mut labels = Vec::with_capacity(3);
                if let Some(db) = db {
                    labels.push(metrics::Label::new("db", db.to_string()));
                }
                labels.push(metrics::Label::new("entity", entity));
                if let Some(l) = level {
                    labels.push(metrics::Label::new("level", l.label()));
                }
                metrics::Key::from_parts(name, labels)
            })
            .collect();
        MetricKeys { entity, keys }
    }
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// The `db` label, when the layer has one.
    db: Option<Arc<str>>,
    /// The metric keys, once an event was recorded.
    keys: std::sync::OnceLock<MetricKeys>,
    l1_hits: AtomicU64,
    l1_misses: AtomicU64,
    l2_hits: AtomicU64,
    l2_misses: AtomicU64,
    loads: AtomicU64,
    load_errors: AtomicU64,
    invalidations: AtomicU64,
    evictions: AtomicU64,
    stale_sets_prevented: AtomicU64,
    l2_errors: AtomicU64,
    decode_errors: AtomicU64,
    stale_served: AtomicU64,
    soft_timeouts: AtomicU64,
    hard_timeouts: AtomicU64,
    eager_refreshes: AtomicU64,
    leases_acquired: AtomicU64,
    lease_waits: AtomicU64,
    leases_expired: AtomicU64,
    write_throughs: AtomicU64,
    rereads: AtomicU64,
}

impl Counters {
    pub(crate) fn with_db(db: Option<Arc<str>>) -> Self {
        Counters {
            db,
            ..Counters::default()
        }
    }

    pub(crate) fn record(&self, entity: &'static str, event: Event) {
        self.slot(event).fetch_add(1, Relaxed);
        // The keys of this set's entity, built once: the `counter!` macro
        // builds one per call (an allocation, and hashing its labels). The
        // recorder is still looked up on every call, as the macro does.
        let keys = self
            .keys
            .get_or_init(|| MetricKeys::new(entity, self.db.as_deref()));
        if keys.entity == entity {
            let key = &keys.keys[event.index()];
            metrics::with_recorder(|r| r.register_counter(key, &METADATA).increment(1));
            return;
        }
        let (name, level) = event.metric();
        match (level, &self.db) {
            (Some(l), None) => {
                metrics::counter!(name, "entity" => entity, "level" => l.label()).increment(1)
            }
            (None, None) => metrics::counter!(name, "entity" => entity).increment(1),
            (Some(l), Some(db)) => metrics::counter!(name,
                "db" => db.to_string(), "entity" => entity, "level" => l.label())
            .increment(1),
            (None, Some(db)) => {
                metrics::counter!(name, "db" => db.to_string(), "entity" => entity).increment(1)
            }
        }
    }

    /// The counter of `event`.
    fn slot(&self, event: Event) -> &AtomicU64 {
        match event {
            Event::Hit(Level::L1) => &self.l1_hits,
            Event::Hit(Level::L2) => &self.l2_hits,
            Event::Miss(Level::L1) => &self.l1_misses,
            Event::Miss(Level::L2) => &self.l2_misses,
            Event::Load => &self.loads,
            Event::LoadError => &self.load_errors,
            Event::Invalidation => &self.invalidations,
            Event::Eviction => &self.evictions,
            Event::StaleSetPrevented => &self.stale_sets_prevented,
            Event::L2Error => &self.l2_errors,
            Event::DecodeError => &self.decode_errors,
            Event::StaleServed => &self.stale_served,
            Event::SoftTimeout => &self.soft_timeouts,
            Event::HardTimeout => &self.hard_timeouts,
            Event::EagerRefresh => &self.eager_refreshes,
            Event::LeaseAcquired => &self.leases_acquired,
            Event::LeaseWaited => &self.lease_waits,
            Event::LeaseExpired => &self.leases_expired,
            Event::WriteThrough => &self.write_throughs,
            Event::Reread => &self.rereads,
        }
    }

    pub(crate) fn snapshot(&self) -> Stats {
        Stats {
            l1_hits: self.l1_hits.load(Relaxed),
            l1_misses: self.l1_misses.load(Relaxed),
            l2_hits: self.l2_hits.load(Relaxed),
            l2_misses: self.l2_misses.load(Relaxed),
            loads: self.loads.load(Relaxed),
            load_errors: self.load_errors.load(Relaxed),
            invalidations: self.invalidations.load(Relaxed),
            evictions: self.evictions.load(Relaxed),
            stale_sets_prevented: self.stale_sets_prevented.load(Relaxed),
            l2_errors: self.l2_errors.load(Relaxed),
            decode_errors: self.decode_errors.load(Relaxed),
            stale_served: self.stale_served.load(Relaxed),
            soft_timeouts: self.soft_timeouts.load(Relaxed),
            hard_timeouts: self.hard_timeouts.load(Relaxed),
            eager_refreshes: self.eager_refreshes.load(Relaxed),
            leases_acquired: self.leases_acquired.load(Relaxed),
            lease_waits: self.lease_waits.load(Relaxed),
            leases_expired: self.leases_expired.load(Relaxed),
            write_throughs: self.write_throughs.load(Relaxed),
            rereads: self.rereads.load(Relaxed),
        }
    }
}
