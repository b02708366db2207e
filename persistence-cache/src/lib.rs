//! # persistence-cache
//!
//! A read-through cache layer for any [`persistence_core::Repository`]:
//! [`CacheLayer::wrap`] turns a repository into a [`CachedRepository`], itself
//! a `Repository`, so callers do not change.
//!
//! * **L1**: in-process [moka](https://docs.rs/moka) cache, bounded by weight
//!   (one unit per cached entity), per-entry TTL with jitter, optional TTI.
//! * **L2**: Redis through a deadpool-redis pool, shared by processes.
//! * Either may be absent: L1 only (the default), L2 only, or both.
//! * Read-through on `get`, `get_many`, `find`, `find_one`, `count`, `exists`;
//!   `stream` and `page` go to the repository uncached.
//! * Write-through invalidation: after `insert`, `insert_many`, `update`,
//!   `upsert`, `delete`, `delete_many` the written entities' keys and every
//!   cached query of the entity type are dead, in L1 and L2 (generations,
//!   see [`repository`] and `l2`).
//! * Negative caching of "not found" with its own (shorter) TTL; an insert
//!   invalidates it like any write.
//! * Stampede protection: concurrent misses of one key in one process share
//!   one load. Stale-set protection: a load that raced a write never stores
//!   its result where later reads could see it.
//! * Fail-safe: Redis failures are absorbed (reads fall through, writes still
//!   invalidate L1); after an outage, L2 entries older than it are dropped.
//! * Stale values ([`ReadPolicy`], all off by default): the source
//!   fail-safe (a retryable load failure is answered with the last value,
//!   within a max age, never past a write or invalidation), soft / hard load
//!   timeouts, eager refresh; [`CachedRepository::get_served`] says whether
//!   an answer was [`Served::Stale`].
//! * Leases ([`Lease`], opt-in, needs L2): cross-process stampede
//!   protection — on an L2 miss one instance takes a short Redis lease on
//!   the key and loads, the others wait for its value (see [`lease`]).
//! * L1 hits are cooperative (they consume tokio's task budget), so tasks
//!   doing only hits never starve a runtime's workers.
//! * Tags: [`CacheLayer::get_or_load_tagged`] / [`CacheLayer::invalidate_tag`]
//!   for computed values, O(tagged items) via Redis sets (see [`tags`]).
//! * Backplane: cross-instance L1 invalidation over Redis pub/sub, with a
//!   heartbeat that notices a stalled Redis; a write whose invalidation
//!   cannot reach Redis queues it until Redis answers (see `backplane`).
//!   [`CacheLayer::status`] tells whether L2 answers, the backplane is
//!   connected and how many invalidations wait.
//! * Sessions: `sessions::SessionStore` on the same Redis.
//! * Keys: see [`keys`]; values: see [`codec`]; metrics: see [`metrics`].
//!
//! ```
//! use std::time::Duration;
//! use persistence_cache::{CacheLayer, L1Config};
//! # fn main() -> persistence_core::Result<()> {
//! let layer = CacheLayer::builder()
//!     .prefix("shop")                         // per app / tenant
//!     .ttl(Duration::from_secs(300))          // jittered down by up to 10 %
//!     .negative_ttl(Duration::from_secs(15))
//!     .entity_ttl("products", Duration::from_secs(3600), Duration::from_secs(60))
//!     .l1(L1Config { max_weight: 100_000, time_to_idle: Some(Duration::from_secs(600)), max_bytes: None })
//!     .entity_l1("products", L1Config { max_bytes: Some(64 << 20), ..L1Config::default() })
//!     // .redis_url("redis://127.0.0.1:6379").backplane(true)  // L2 + cross-instance L1
//!     .build()?;
//! # let _ = layer; Ok(()) }
//! ```
//!
//! ## Features
//! * `redis` (default): L2 on Redis, the backplane, the invalidation queue,
//!   sessions, and the builder's Redis settings (`redis_url`, `redis_pool`,
//!   `without_l1`, `backplane`, ...). Without it the crate is the moka L1
//!   layer alone: [`CacheLayer`], [`CacheLayerBuilder`] (prefix, TTLs,
//!   jitter, L1, `db_label`), [`CachedRepository`], tagged values in L1,
//!   [`CacheStatus`] (never degraded), [`Stats`], [`keys`], [`codec`] and
//!   [`metrics`]; it does not depend on `deadpool-redis`.
//!
//! ## Design choices
//! * Invalidation is by **generation**, never by scanning keys: local
//!   generations (per key stripe, per entity type for queries, an epoch for
//!   `delete_many`) are part of the L1 key; in Redis, random gen/epoch tokens
//!   stamp every entry and gate every store (Lua), so a load that raced a
//!   write can never store where a later read finds it.
//! * Single flight is ours (shared futures keyed by key *and* generation),
//!   not moka's `try_get_with`: it covers L2-only mode, and a read that starts
//!   after a write never joins a load that started before it.
//! * After a Redis outage, entries written before it are **dropped** (tokens
//!   replaced, by every instance that saw the outage, in the background as
//!   soon as Redis answers), not revalidated.
//! * Redis Cluster: [`RedisEndpoint::cluster`]; keys carry hash tags so that
//!   every script and pipeline touches one slot (see [`keys`], [`tags`],
//!   `sessions`, `backplane`).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[cfg(feature = "redis")]
pub mod backplane;
mod builder;
#[cfg(feature = "redis")]
pub mod client;
pub mod codec;
pub mod config;
#[cfg(feature = "redis")]
mod connect;
#[cfg(feature = "redis")]
mod error;
pub mod keys;
#[cfg(feature = "redis")]
pub mod l2;
mod layer;
#[cfg(feature = "redis")]
pub mod lease;
pub mod metrics;
#[cfg(feature = "redis")]
mod outbox;
pub mod repository;
#[cfg(feature = "redis")]
pub mod sessions;
mod shared;
mod singleflight;
pub mod tags;

pub use builder::CacheLayerBuilder;
#[cfg(feature = "redis")]
pub use client::RedisClient;
pub use config::{EntityTtl, FailSafe, L1Config, Lease, ReadPolicy};
#[cfg(feature = "redis")]
pub use connect::{RedisEndpoint, RedisTls, is_tls_url};
#[cfg(feature = "redis")]
pub use layer::L2Status;
pub use layer::{CacheLayer, CacheStatus};
pub use metrics::Stats;
pub use repository::{CachedRepository, Served};
