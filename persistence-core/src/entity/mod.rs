//! Entity metadata: what `#[derive(Entity)]` generates and every backend reads.
//!
//! The [`Entity`] trait is here; the metadata it returns is in `meta.rs`,
//! storage type classes in `types.rs`, nested shapes in `shape.rs`.

use std::fmt::Debug;
use std::hash::Hash;

use serde::Serialize;
use serde::de::DeserializeOwned;

mod hash;
mod meta;
mod shape;
mod text;
mod types;
mod vector;

pub use hash::StableHasher;
pub use meta::relation::{OnDelete, RelationKind, RelationMeta};
pub use meta::{
    EntityMeta, EntityMetaBuilder, FieldMeta, IndexMeta, Managed, ResolvedPath,
    validate_identifier, validate_segment,
};
pub use shape::{Embedded, MAX_SHAPE_DEPTH, NestedField, Shape};
pub use text::{TextLanguage, TextSearch};
pub use types::{FieldKind, FieldType, ScalarType};
pub use vector::{MAX_DIM, Metric, VectorField, VectorIndex, VectorSpec};

/// An entity: a serde struct with metadata, an id and optionally a version.
///
/// Implemented by `#[derive(Entity)]`; see the crate docs for the attributes.
pub trait Entity: Serialize + DeserializeOwned + Clone + Send + Sync + 'static {
    /// The id type.
    type Id: EntityId;
    /// Static metadata.
    fn meta() -> &'static EntityMeta;
    /// The id.
    fn id(&self) -> &Self::Id;
    /// The optimistic-locking version, if the entity has one.
    fn version(&self) -> Option<i64>;
    /// Set the version (no-op for entities without one).
    fn set_version(&mut self, version: i64);
    /// Set the managed timestamps to `now`: `updated_at` always, and
    /// `created_at` too when `insert` (see [`crate::lifecycle`]). Derived for
    /// `#[entity(created_at)]` / `#[entity(updated_at)]`; a no-op otherwise.
    fn touch(&mut self, now: chrono::DateTime<chrono::Utc>, insert: bool) {
        let _ = (now, insert);
    }
    /// When the entity was soft-deleted: the `#[entity(soft_delete)]` field
    /// (`None` for live rows and for entities without one).
    fn deleted_at(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        None
    }
}

/// Types usable as entity ids.
pub trait EntityId:
    FieldKind + Serialize + DeserializeOwned + Clone + Eq + Hash + Ord + Debug + Send + Sync + 'static
{
}
impl EntityId for String {}
impl EntityId for i64 {}
impl EntityId for i32 {}
impl EntityId for i16 {}
impl EntityId for uuid::Uuid {}

#[doc(hidden)]
pub mod __private {
    //! Support for the derive macro: classify a field type, falling back to
    //! JSON when it has no [`FieldKind`] (autoref specialization).
    use super::{FieldKind, FieldType};
    use std::marker::PhantomData;

    pub struct Probe<T: ?Sized>(PhantomData<T>);
    impl<T: ?Sized> Probe<T> {
        pub const NEW: Self = Probe(PhantomData);
    }
    pub trait ViaFieldKind {
        fn classify(&self) -> (FieldType, bool);
    }
    impl<T: FieldKind> ViaFieldKind for Probe<T> {
        fn classify(&self) -> (FieldType, bool) {
            (T::TYPE, T::NULLABLE)
        }
    }
    pub trait ViaSerde {
        fn classify(&self) -> (FieldType, bool);
    }
    impl<T: ?Sized> ViaSerde for &Probe<T> {
        fn classify(&self) -> (FieldType, bool) {
            (FieldType::Json, false)
        }
    }
    pub trait ViaEmbedded {
        fn shape(&self) -> Option<super::Shape>;
    }
    impl<T: super::Embedded> ViaEmbedded for Probe<T> {
        fn shape(&self) -> Option<super::Shape> {
            Some(T::shape())
        }
    }
    pub trait NoShape {
        fn shape(&self) -> Option<super::Shape>;
    }
    impl<T: ?Sized> NoShape for &Probe<T> {
        fn shape(&self) -> Option<super::Shape> {
            None
        }
    }
    std::thread_local! {
        static SHAPE_DEPTH: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    }
    /// Held while a derived `Embedded::shape` runs; `None` past `MAX_SHAPE_DEPTH`.
    pub struct ShapeDepth(());
    impl ShapeDepth {
        pub fn enter() -> Option<ShapeDepth> {
            SHAPE_DEPTH.with(|d| {
                if d.get() >= super::MAX_SHAPE_DEPTH {
                    None
                } else {
                    d.set(d.get() + 1);
                    Some(ShapeDepth(()))
                }
            })
        }
    }
    impl Drop for ShapeDepth {
        fn drop(&mut self) {
            SHAPE_DEPTH.with(|d| d.set(d.get().saturating_sub(1)));
        }
    }
    pub use chrono;
    pub use std::sync::OnceLock;
    pub fn build_meta(b: super::EntityMetaBuilder) -> super::EntityMeta {
        match b.build() {
            Ok(m) => m,
            // The derive macro validates the same rules at compile time, so
            // this is unreachable for derived entities.
            Err(e) => panic!("invalid entity metadata: {e}"),
        }
    }
    pub fn parse_duration_secs(secs: u64) -> Option<std::time::Duration> {
        Some(std::time::Duration::from_secs(secs))
    }
}
