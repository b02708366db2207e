//! # persistence-mongo
//!
//! MongoDB document repositories for the persistence framework, on the
//! official `mongodb` 3.x driver.
//!
//! * [`MongoRepository<E>`] implements [`persistence_core::Repository`] for any
//!   `#[derive(Entity)]` type: one collection per entity (named after it), the
//!   id stored as `_id`, nested structs / vectors / maps as sub-documents and
//!   arrays. Type mapping (Uuid = binary subtype 4, timestamps = BSON dates
//!   with millisecond precision, Decimal = decimal128) is documented in [`codec`].
//! * Filters become query documents with every value a BSON value (no
//!   operator injection) and field names from metadata only; see [`query`].
//!   `like` patterns and the ignore-case operators are an anchored `$regex`
//!   over escaped text (`i` option to ignore case), see [`query::pattern_regex`].
//! * `select` is a `find` with a projection of the asked fields; `distinct`
//!   a `$match` + `$group` on the field (a missing field counts as null).
//! * Errors are mapped by server code and label; see [`error`].
//! * [`MongoStore::transaction`] runs a closure in a multi-document
//!   transaction with transaction-bound repositories; see [`transaction`].
//! * [`MongoRepository::watch`] is a typed, resumable change stream; see [`watch`].
//! * [`MongoRepository::aggregate_pipeline`] runs typed pipelines (`$match` from a
//!   core filter, group-by helpers, `$lookup`, raw stages) and typed
//!   projections (`find_fields`); see [`aggregate`].
//! * [`Tenants`]: database-per-tenant or collection-prefix-per-tenant; see [`tenant`].
//! * [`copy_all`] copies every entity between any two repositories (idempotent, verified);
//!   it lives in [`persistence_core::copy`] (it uses only core) and is re-exported here.
//! * `ensure_schema` creates the collection and the metadata's indexes
//!   (unique indexes skip nulls, TTL), declared [`PartialIndex`]es, and a
//!   `$jsonSchema` validator that also describes nested structs deriving
//!   `persistence_core::Embedded`; see [`schema`].
//! * `insert_many` is all-or-nothing (its own transaction) when the
//!   deployment supports transactions, an ordered insert that reports how
//!   many rows landed otherwise; see [`MongoRepository`].
//! * `patch` / `update_where` are one `findOneAndUpdate` / `updateMany` with
//!   an update pipeline that writes down the framework's null rules (every
//!   value `$literal`), guarded against integer overflow in the filter;
//!   `find_one_and_delete` is `findOneAndDelete` with the query's sort (see
//!   `persistence_core::update` for the rules).
//!
//! The files are those of every backend crate: `store` (the connected
//! handle), `config`, `repository`, `query` (filters → BSON), `codec`
//! (documents ↔ entities), `schema`, `error`, `transaction`, `tenant`,
//! `pool` (pool status for the metrics), plus `aggregate`, `watch` and
//! `update` (a checked `Update` → the update pipeline).
//!
//! ```no_run
//! use persistence_core::{Entity, Repository};
//! use persistence_mongo::{MongoConfig, MongoStore};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Debug, Clone, Serialize, Deserialize, Entity)]
//! struct User {
//!     #[entity(id)]
//!     id: i64,
//!     #[entity(unique)]
//!     email: String,
//! }
//!
//! # async fn run() -> persistence_core::Result<()> {
//! let store = MongoStore::connect(&MongoConfig::from_env("app")).await?;
//! let users = store.repository::<User>();
//! users.ensure_schema().await?;
//! users.insert(&User { id: 1, email: "a@x.io".into() }).await?;
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod aggregate;
pub mod codec;
pub mod config;
pub mod error;
pub mod pool;
pub mod query;
pub mod repository;
pub mod schema;
pub mod store;
pub mod tenant;
mod text;
pub mod transaction;
mod update;
pub mod watch;

// Old module paths, kept for one release (see the README): `convert` is
// `codec`, `filter` is `query`, `monitor` is `pool`, and `copy` moved to
// `persistence_core::copy` (it uses only core). `config::MongoStore` is a
// re-export in `config.rs`.
#[doc(hidden)]
pub use codec as convert;
#[doc(hidden)]
pub use persistence_core::copy;
#[doc(hidden)]
pub use pool as monitor;
#[doc(hidden)]
pub use query as filter;

pub use aggregate::{Agg, Pipeline};
pub use config::{DEFAULT_URL, MongoConfig};
/// The driver, for its option types (write and read concerns...).
pub use mongodb;
pub use persistence_core::copy::{CopyOptions, CopyReport, copy_all};
pub use pool::MongoPoolStats;
pub use repository::MongoRepository;
pub use schema::{PartialIndex, Validation, ValidationAction, ValidationLevel};
pub use store::MongoStore;
pub use tenant::{TenantMode, TenantScope, Tenants};
pub use transaction::{Transaction, TransactionOptions};
pub use watch::{Change, ChangeKind, ResumeToken};
