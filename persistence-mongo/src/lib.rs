//! # persistence-mongo
//!
//! MongoDB document repositories for the persistence framework, on the
//! official `mongodb` 3.x driver.
//!
//! * [`MongoRepository<E>`] implements [`persistence_core::Repository`] for any
//!   `#[derive(Entity)]` type: one collection per entity (named after it), the
//!   id stored as `_id`, nested structs / vectors / maps as sub-documents and
//!   arrays. Type mapping (Uuid = binary subtype 4, timestamps = BSON dates
//!   with millisecond precision, Decimal = decimal128) is documented in [`convert`].
//! * Filters become query documents with every value a BSON value (no
//!   operator injection) and field names from metadata only; see [`filter`].
//! * Errors are mapped by server code and label; see [`error`].
//! * [`MongoStore::transaction`] runs a closure in a multi-document
//!   transaction with transaction-bound repositories; see [`transaction`].
//! * [`MongoRepository::watch`] is a typed, resumable change stream; see [`watch`].
//! * [`MongoRepository::aggregate`] runs typed pipelines (`$match` from a
//!   core filter, group-by helpers, `$lookup`, raw stages) and typed
//!   projections (`find_fields`); see [`aggregate`].
//! * [`Tenants`]: database-per-tenant or collection-prefix-per-tenant; see [`tenant`].
//! * [`copy_all`] copies every entity between any two repositories (idempotent, verified); see [`copy`].
//! * `ensure_schema` creates the collection and the metadata's indexes
//!   (unique indexes skip nulls, TTL), declared [`PartialIndex`]es, and a
//!   `$jsonSchema` validator that also describes nested structs deriving
//!   `persistence_core::Embedded`; see [`schema`].
//! * `insert_many` is all-or-nothing (its own transaction) when the
//!   deployment supports transactions, an ordered insert that reports how
//!   many rows landed otherwise; see [`MongoRepository`].
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
pub mod config;
pub mod convert;
pub mod copy;
pub mod error;
pub mod filter;
pub mod monitor;
pub mod repository;
pub mod schema;
pub mod tenant;
pub mod transaction;
pub mod watch;

pub use aggregate::{Agg, Pipeline};
pub use config::{DEFAULT_URL, MongoConfig, MongoStore};
pub use copy::{CopyOptions, CopyReport, copy_all};
/// The driver, for its option types (write and read concerns...).
pub use mongodb;
pub use monitor::MongoPoolStats;
pub use repository::MongoRepository;
pub use schema::{PartialIndex, Validation, ValidationAction, ValidationLevel};
pub use tenant::{TenantMode, TenantScope, Tenants};
pub use transaction::{Transaction, TransactionOptions};
pub use watch::{Change, ChangeKind, ResumeToken};
