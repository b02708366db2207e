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
//!   see [`repository`] and [`l2`]).
//! * Negative caching of "not found" with its own (shorter) TTL; an insert
//!   invalidates it like any write.
//! * Stampede protection: concurrent misses of one key in one process share
//!   one load. Stale-set protection: a load that raced a write never stores
//!   its result where later reads could see it.
//! * Fail-safe: Redis failures are absorbed (reads fall through, writes still
//!   invalidate L1); after an outage, L2 entries older than it are dropped.
//! * Keys: see [`keys`]; values: see [`codec`]; metrics: see [`metrics`].
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod backplane;
pub mod codec;
pub mod config;
mod error;
pub mod keys;
pub mod l2;
pub mod metrics;
pub mod repository;
pub mod sessions;
mod singleflight;
pub mod tags;

pub use config::{CacheLayer, CacheLayerBuilder, EntityTtl, L1Config};
pub use metrics::Stats;
pub use repository::CachedRepository;
