//! # persistence
//!
//! The crate an application depends on: re-exports the core
//! ([`Entity`], [`Repository`], [`Query`], [`Filter`], ...), the backends
//! ([`postgres`], [`mongo`], [`cache`]), and provides [`Persistence`], the
//! manager that turns a configuration (or the detected environment) into
//! ready repositories with their layers applied.
//!
//! ```no_run
//! # use persistence::{Entity, Persistence, Repository};
//! # #[derive(Debug, Clone, serde::Serialize, serde::Deserialize, Entity)]
//! # struct User { #[entity(id)] id: i64, name: String }
//! # async fn demo() -> persistence::Result<()> {
//! // No config: DATABASE_URL / MONGODB_URL / REDIS_URL, else local servers, else embedded.
//! let db = Persistence::from_env().await?;
//! println!("{}", db.describe());
//! let users = db.repo::<User>().await?;             // the `main` database, cached per policy
//! let products = db.repo_in::<User>("documents").await?;
//! let report = db.health().await;
//! let pool = db.pool_status("main");               // Some(PoolStatus { max, size, idle, in_use, waiting })
//! let slow = persistence::layer::SlowLog::global().top(10);
//! db.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! Metrics go through the `metrics` facade (names in
//! [`layer::metrics::names`]); feature `prometheus` adds [`prometheus`]-format
//! exposition. Pool gauges and the breaker state are sampled per built
//! database; connections, streams and transactions held longer than
//! `metrics.leak_threshold` are reported.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod audit;
pub mod config;
mod database;
pub mod failover;
mod health;
mod manager;
mod pool;
#[cfg(feature = "prometheus")]
pub mod prometheus;
mod recovery;
#[cfg(relational)]
pub mod registry;
pub mod search;
pub mod tenancy;

pub use failover::{EndpointHealth, FailoverRepository, Role, Topology};
pub use health::{DatabaseHealth, HealthReport, HealthState};
pub use manager::{CacheLayerStatus, CachedEntityStatus, Persistence};
pub use persistence_cache as cache;
pub use persistence_core::*;
#[cfg(feature = "mongo")]
pub use persistence_mongo as mongo;
#[cfg(relational)]
pub use persistence_postgres as postgres;
pub use pool::{PoolStatus, breaker_gauge};
