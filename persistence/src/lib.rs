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
//! db.shutdown().await;
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod manager;
mod pool;

pub use manager::{DatabaseHealth, HealthReport, HealthState, Persistence};
pub use persistence_cache as cache;
pub use persistence_core::*;
pub use persistence_mongo as mongo;
pub use persistence_postgres as postgres;
pub use pool::{PoolStatus, breaker_gauge};
