//! # persistence-core
//!
//! The spine of the persistence framework: the [`Entity`] trait and its
//! metadata, the backend-neutral [`Filter`]/[`Query`] model, the [`Repository`]
//! traits, the one [`Error`] type, and [`MemoryRepository`], the in-memory
//! reference backend. Backends (`persistence-postgres`, `persistence-mongo`)
//! and layers (`persistence-cache`) build on these; every one of them runs the
//! same [`conformance`] suite (feature `conformance`).
//!
//! ```
//! use persistence_core::{Entity, MemoryRepository, Query, Repository, StringField};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
//! #[entity(name = "users")]
//! struct User {
//!     #[entity(id)]
//!     id: i64,
//!     #[entity(unique)]
//!     email: String,
//!     #[entity(version)]
//!     version: i64,
//!     name: Option<String>,
//! }
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let users = MemoryRepository::<User>::new();
//! let alice = users
//!     .insert(&User { id: 1, email: "a@x.io".into(), version: 0, name: None })
//!     .await?;
//! assert_eq!(alice.version, 1);
//! let found = users
//!     .find(&Query::filter(User::EMAIL.starts_with("a@")).sort(User::ID.desc()).limit(20))
//!     .await?;
//! assert_eq!(found, vec![alice]);
//! # Ok::<(), persistence_core::Error>(())
//! # }).unwrap();
//! ```
//!
//! ## `#[derive(Entity)]` attributes
//! * struct: `#[entity(name = "users")]` (logical name, default: the struct
//!   name in snake case), `#[entity(unique(a, b))]`, `#[entity(index(a, b))]`
//!   (composite, by field name; repeatable).
//! * field: `#[entity(id)]` (exactly one), `#[entity(version)]` (at most one,
//!   `i64`), `#[entity(unique)]`, `#[entity(index)]`, `#[entity(ttl = "30d")]`
//!   (timestamp fields; `s`, `m`, `h`, `d` units), `#[serde(rename = "..")]` is honored.
//! * managed fields ([`lifecycle`]): `#[entity(created_at)]` and
//!   `#[entity(updated_at)]` on `DateTime<Utc>` (or `Option<..>`) fields the
//!   repository sets; `#[entity(soft_delete)]` on an `Option<DateTime<Utc>>`:
//!   `delete` sets it, reads skip such rows unless the filter says
//!   [`with_deleted`](Filter::with_deleted) / [`only_deleted`](Filter::only_deleted),
//!   [`restore`](SoftDeleteExt::restore) and [`purge`](Repository::purge)
//!   undo and finish a delete, and unique constraints ignore deleted rows.
//! * typed field handles: `User::EMAIL: Field<User, String>`; `User::EMAIL.eq(5)` does not compile.
//!
//! Nested structs are stored as sub-documents / JSON ([`FieldType::Json`]).
//! Deriving [`Embedded`](derive@Embedded) on them (optional) records their
//! shape in the metadata ([`EntityMeta::shape`], [`Shape`]): field names,
//! types, `Option` (null allowed), `#[serde(skip_serializing_if)]` (may be
//! missing), `Vec`/map element shapes. The MongoDB backend turns it into the
//! nested part of its `$jsonSchema` validator; without it a nested field is
//! only required to be present. `#[derive(EntityEnum)]` enums have a shape too.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[allow(unused_extern_crates)]
extern crate self as persistence_core;

pub mod aggregate;
pub mod copy;
pub mod drift;
pub mod entity;
pub mod error;
pub mod filter;
pub mod layer;
pub mod lifecycle;
pub mod memory;
pub mod names;
pub mod query;
pub mod redact;
pub mod relation;
pub mod repository;
pub mod select;
pub mod tenant;
pub mod text;
pub mod update;
pub mod value;
pub mod vector;

#[cfg(feature = "conformance")]
pub mod conformance;

pub use aggregate::{AggFn, Aggregate, AggregateExt, GroupBy};
pub use copy::{CopyOptions, CopyReport, copy_all};
pub use drift::{Difference, DifferenceKind, SchemaReport, Severity};
pub use entity::{
    Embedded, Entity, EntityId, EntityMeta, FieldKind, FieldMeta, FieldType, IndexMeta, Managed,
    Metric, NestedField, ScalarType, Shape, TextLanguage, VectorIndex, VectorSpec,
};
pub use error::{ConflictKind, Error, ErrorKind, Result, WriteOutcome};
pub use filter::{CompareOp, Field, Filter, FilterLimits, Pattern, Scope, StringField};
pub use lifecycle::SoftDeleteExt;
pub use memory::{MemoryRepository, MemoryStore};
pub use persistence_derive::{Embedded, Entity, EntityEnum};
pub use query::{Cursor, Direction, Page, Query, SortKey};
pub use relation::{
    BelongsTo, HasMany, HasOne, Include, LoadExt, OnDelete, Repos, Resolve, Then, With,
};
pub use repository::{
    BoxStream, Capabilities, DynRepository, Repository, SharedRepository, TimestampPrecision,
};
pub use select::SelectExt;
pub use tenant::{TenantExt, TenantScoped};
pub use text::{TextQuery, TextSearchExt};
pub use update::{Guard, Update, UpdateOp};
pub use value::{Record, Value};
pub use vector::{NearestExt, NearestQuery};

#[doc(hidden)]
pub use entity::__private;
