//! The in-memory reference backend.
//!
//! [`MemoryRepository`] defines the semantics the other backends are checked
//! against, and is the embedded default for document storage. It is fully
//! concurrent (one `RwLock` per repository; every write is atomic, including
//! `insert_many`), honors unique constraints (a row with a null in a unique
//! field is not constrained, as in SQL), versions, every filter, sort and paging.
//!
//! # What is stored
//!
//! Memory stores what a microsecond store keeps, so that it agrees with
//! PostgreSQL and SQLite and the entity a write returns is the one `get`
//! reads: the timestamps of timestamp fields (and arrays of them) are
//! truncated toward the past to whole microseconds (the
//! [`TimestampPrecision::Micros`](crate::TimestampPrecision) it declares);
//! everything else is kept exactly as given (decimals keep their scale:
//! memory has no column type to round to; floats keep `-0.0`, `NaN`).
//! `insert`, `update` and `upsert` return the stored entity.
//!
//! The files follow the backend crates' names: `codec.rs` (map keys and the
//! stored row of an entity), `store.rs` (the table: rows and unique
//! indexes), `query.rs` (filter evaluation, sorting, offset and limit) and
//! `repository.rs` (the [`Repository`](crate::Repository) implementation),
//! `select.rs` (projections and distinct values) and `patch.rs` (`patch`, `update_where`, `find_one_and_delete` under the
//! write lock, through the reference [`Update::apply_to`](crate::Update::apply_to)).
//! `relations.rs` and `tables.rs` hold declared relations: a
//! [`MemoryStore`] hands out repositories that see each other's tables
//! (a `MemoryRepository::new()` is a store of its own).
//! Memory has no configuration, schema (`ensure_schema` does nothing),
//! driver errors, transactions, tenants or connection pool, so it has none
//! of those files.

mod codec;
mod patch;
mod query;
mod relations;
mod repository;
mod select;
mod store;
mod tables;

pub use codec::Key;
pub use query::matches;
pub use repository::MemoryRepository;
pub use tables::MemoryStore;
