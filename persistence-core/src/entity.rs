//! Entity metadata: what `#[derive(Entity)]` generates and every backend reads.

use std::fmt::Debug;
use std::hash::{Hash, Hasher};
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};

/// The scalar type classes a field (or an array element) can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ScalarType {
    /// `String` (and `&str` values).
    String,
    /// `bool`.
    Bool,
    /// `i16` (and `u8`).
    I16,
    /// `i32` (and `u16`).
    I32,
    /// `i64` (and `u32`).
    I64,
    /// `f32`.
    F32,
    /// `f64`.
    F64,
    /// `uuid::Uuid`.
    Uuid,
    /// `chrono::DateTime<Utc>`.
    DateTime,
    /// `chrono::NaiveDate`.
    Date,
    /// `rust_decimal::Decimal` (feature `decimal`).
    Decimal,
    /// `Vec<u8>`.
    Bytes,
    /// A unit-only enum stored as its variant name (`#[derive(EntityEnum)]`).
    Enum,
}

/// How a field is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldType {
    /// One scalar.
    Scalar(ScalarType),
    /// A `Vec` of scalars.
    Array(ScalarType),
    /// Anything else serde can represent: nested structs, maps, nested vectors.
    /// Stored as a sub-document / JSON; filters may address nested paths.
    Json,
}

impl FieldType {
    /// The scalar type, if this is a scalar field.
    pub fn scalar(self) -> Option<ScalarType> {
        match self {
            FieldType::Scalar(s) => Some(s),
            _ => None,
        }
    }
}

/// Metadata of one field.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldMeta {
    /// The serialized (and stored) name.
    pub name: &'static str,
    /// The Rust field name.
    pub rust_name: &'static str,
    /// Storage type class.
    pub ty: FieldType,
    /// `Option<T>`: may be null.
    pub nullable: bool,
    /// The id field.
    pub id: bool,
    /// The optimistic-locking version field (`i64`).
    pub version: bool,
    /// Unique on its own.
    pub unique: bool,
    /// Indexed on its own.
    pub index: bool,
    /// Expire documents this long after the field's timestamp (backends with TTL indexes).
    pub ttl: Option<Duration>,
}

/// A (possibly composite) index or unique constraint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexMeta {
    /// Deterministic name: `ux_`/`ix_` + entity + fields, shortened with a hash past 63 bytes.
    pub name: String,
    /// Stored field names, in order.
    pub fields: Vec<&'static str>,
    /// Unique constraint.
    pub unique: bool,
}

/// Metadata of an entity type.
#[derive(Debug, Clone, PartialEq)]
pub struct EntityMeta {
    /// Logical name (table / collection / cache namespace).
    pub name: &'static str,
    /// All fields in declaration order.
    pub fields: Vec<FieldMeta>,
    /// Index of the id field in `fields`.
    pub id_index: usize,
    /// Index of the version field, if any.
    pub version_index: Option<usize>,
    /// Unique constraints and indexes (field-level and struct-level), id excluded.
    pub indexes: Vec<IndexMeta>,
    /// A fingerprint of everything above; changes when the stored shape changes.
    pub schema_version: u64,
    /// Known shapes of [`FieldType::Json`] fields, parallel to `fields`
    /// (see [`EntityMeta::shape`]). Not part of `schema_version`.
    shapes: Vec<Option<Shape>>,
}

/// Builder used by the derive macro (and by hand-written impls).
#[derive(Debug)]
pub struct EntityMetaBuilder {
    name: &'static str,
    fields: Vec<FieldMeta>,
    composite: Vec<(Vec<&'static str>, bool)>,
    shapes: Vec<(&'static str, Shape)>,
}

impl EntityMeta {
    /// Start building metadata for entity `name`.
    pub fn builder(name: &'static str) -> EntityMetaBuilder {
        EntityMetaBuilder {
            name,
            fields: Vec::new(),
            composite: Vec::new(),
            shapes: Vec::new(),
        }
    }

    /// The inner shape of a [`FieldType::Json`] field (by index in
    /// `fields`), when its type declares one: nested structs deriving
    /// [`Embedded`](derive@crate::Embedded), and `Option`/`Vec`/`Box`/maps of
    /// such types. `None` for other fields and for shapes nobody declared.
    pub fn shape(&self, index: usize) -> Option<&Shape> {
        self.shapes.get(index).and_then(Option::as_ref)
    }

    /// The id field.
    pub fn id_field(&self) -> &FieldMeta {
        &self.fields[self.id_index]
    }

    /// The version field, if any.
    pub fn version_field(&self) -> Option<&FieldMeta> {
        self.version_index.map(|i| &self.fields[i])
    }

    /// Find a field by stored name.
    pub fn field(&self, name: &str) -> Option<(usize, &FieldMeta)> {
        self.fields.iter().enumerate().find(|(_, f)| f.name == name)
    }

    /// Unique constraints only.
    pub fn uniques(&self) -> impl Iterator<Item = &IndexMeta> {
        self.indexes.iter().filter(|i| i.unique)
    }

    /// Resolve and validate a dotted path against this entity.
    ///
    /// The first segment must be a field; further segments are only allowed
    /// into [`FieldType::Json`] fields. Every segment must be non-empty, must
    /// not start with `$`, and must not contain NUL, `.` or control characters
    /// (so paths can never smuggle an operator or break out of a quoted identifier).
    pub fn resolve_path<'p>(&self, path: &'p str) -> Result<ResolvedPath<'p>> {
        let mut segs = path.split('.');
        let first = segs.next().unwrap_or("");
        let Some((index, field)) = self.field(first) else {
            return Err(Error::invalid_input(format!(
                "unknown field `{}` on {}",
                printable(first),
                self.name
            )));
        };
        let rest: Vec<&str> = segs.collect();
        if !rest.is_empty() && field.ty != FieldType::Json {
            return Err(Error::invalid_input(format!(
                "field `{}` of {} has no nested fields",
                field.name, self.name
            )));
        }
        for seg in &rest {
            validate_segment(seg)?;
        }
        Ok(ResolvedPath { index, rest })
    }
}

fn printable(s: &str) -> String {
    s.chars().take(64).flat_map(char::escape_default).collect()
}

/// A hasher whose output is fixed (FNV-1a, 64 bit), unlike std's
/// `DefaultHasher`, whose algorithm may change between Rust releases. Used
/// for values that outlive a process: `schema_version` (part of shared cache
/// keys), index name suffixes and cursor fingerprints.
#[derive(Debug, Clone, Copy)]
pub struct StableHasher(u64);

impl Default for StableHasher {
    fn default() -> Self {
        StableHasher(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for StableHasher {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

/// Check one segment of a nested path.
pub fn validate_segment(seg: &str) -> Result<()> {
    if seg.is_empty() {
        return Err(Error::invalid_input("empty segment in field path"));
    }
    if seg.len() > 255 {
        return Err(Error::invalid_input(
            "field path segment longer than 255 bytes",
        ));
    }
    if seg.starts_with('$') {
        return Err(Error::invalid_input(format!(
            "field path segment `{}` must not start with `$`",
            printable(seg)
        )));
    }
    if seg.chars().any(|c| c.is_control() || c == '.') {
        return Err(Error::invalid_input(format!(
            "field path segment `{}` contains a control character",
            printable(seg)
        )));
    }
    Ok(())
}

/// A validated path: a field plus segments inside it (JSON fields only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedPath<'p> {
    /// Index of the top-level field in [`EntityMeta::fields`].
    pub index: usize,
    /// Segments below the field (empty for a plain field).
    pub rest: Vec<&'p str>,
}

impl ResolvedPath<'_> {
    /// The type of the addressed value: the field's own type, or `Json` inside a JSON field.
    pub fn ty(&self, meta: &EntityMeta) -> FieldType {
        if self.rest.is_empty() {
            meta.fields[self.index].ty
        } else {
            FieldType::Json
        }
    }
    /// Whether the addressed value may be null.
    pub fn nullable(&self, meta: &EntityMeta) -> bool {
        !self.rest.is_empty() || meta.fields[self.index].nullable
    }
}

impl EntityMetaBuilder {
    /// Add a field.
    pub fn field(mut self, field: FieldMeta) -> Self {
        self.fields.push(field);
        self
    }
    /// Declare the inner shape of a [`FieldType::Json`] field (by stored
    /// name; `None` is ignored, so the derive can pass what it found). Shapes
    /// of fields that are not `Json` are ignored.
    pub fn shape(mut self, field: &'static str, shape: Option<Shape>) -> Self {
        if let Some(shape) = shape {
            self.shapes.push((field, shape));
        }
        self
    }
    /// Add a composite unique constraint or index over stored field names.
    pub fn composite(mut self, fields: &[&'static str], unique: bool) -> Self {
        self.composite.push((fields.to_vec(), unique));
        self
    }

    /// Validate and finish. The derive macro reports the same problems at
    /// compile time; this check protects hand-written implementations.
    pub fn build(self) -> Result<EntityMeta> {
        let ids: Vec<usize> = positions(&self.fields, |f| f.id);
        let [id_index] = ids[..] else {
            return Err(Error::config(format!(
                "{} must have exactly one id field",
                self.name
            )));
        };
        let versions = positions(&self.fields, |f| f.version);
        if versions.len() > 1 {
            return Err(Error::config(format!(
                "{} has more than one version field",
                self.name
            )));
        }
        if let Some(&v) = versions.first() {
            if self.fields[v].ty != FieldType::Scalar(ScalarType::I64) || self.fields[v].nullable {
                return Err(Error::config(format!(
                    "{}: the version field must be i64",
                    self.name
                )));
            }
        }
        match self.fields[id_index].ty {
            FieldType::Scalar(
                ScalarType::String
                | ScalarType::I16
                | ScalarType::I32
                | ScalarType::I64
                | ScalarType::Uuid,
            ) if !self.fields[id_index].nullable => {}
            other => {
                return Err(Error::config(format!(
                    "{}: the id must be a String, integer or Uuid, not {other:?}",
                    self.name
                )));
            }
        }
        for (i, f) in self.fields.iter().enumerate() {
            if self.fields[..i].iter().any(|g| g.name == f.name) {
                return Err(Error::config(format!(
                    "{}: duplicate field `{}`",
                    self.name, f.name
                )));
            }
            validate_identifier(f.name)?;
        }
        validate_identifier(self.name)?;
        // Tables and collections are named after the entity.
        if let Some(why) = crate::names::reserved_reason(crate::names::NameKind::Table, self.name) {
            return Err(Error::config(format!(
                "entity name `{}` is reserved ({why}): it names the table / collection",
                self.name
            )));
        }
        let mut indexes = Vec::new();
        for f in &self.fields {
            if f.id {
                continue;
            }
            if f.unique {
                indexes.push(IndexMeta::new(self.name, vec![f.name], true));
            } else if f.index || f.ttl.is_some() {
                indexes.push(IndexMeta::new(self.name, vec![f.name], false));
            }
        }
        for (fields, unique) in self.composite {
            for name in &fields {
                if !self.fields.iter().any(|f| f.name == *name) {
                    return Err(Error::config(format!(
                        "{}: index names unknown field `{name}`",
                        self.name
                    )));
                }
            }
            indexes.push(IndexMeta::new(self.name, fields, unique));
        }
        let mut h = StableHasher::default();
        self.name.hash(&mut h);
        for f in &self.fields {
            (f.name, f.ty, f.nullable, f.id, f.version).hash(&mut h);
        }
        for i in &indexes {
            (&i.fields, i.unique).hash(&mut h);
        }
        let mut shapes: Vec<Option<Shape>> = vec![None; self.fields.len()];
        for (name, shape) in self.shapes {
            let Some(i) = self.fields.iter().position(|f| f.name == name) else {
                return Err(Error::config(format!(
                    "{}: shape given for unknown field `{name}`",
                    self.name
                )));
            };
            if self.fields[i].ty == FieldType::Json {
                shapes[i] = Some(shape);
            }
        }
        Ok(EntityMeta {
            name: self.name,
            fields: self.fields,
            id_index,
            version_index: versions.first().copied(),
            indexes,
            schema_version: h.finish(),
            shapes,
        })
    }
}

fn positions(fields: &[FieldMeta], pred: impl Fn(&FieldMeta) -> bool) -> Vec<usize> {
    fields
        .iter()
        .enumerate()
        .filter(|(_, f)| pred(f))
        .map(|(i, _)| i)
        .collect()
}

/// Identifiers that reach SQL or MongoDB (entity and field names): ASCII
/// letter or `_` first, then letters, digits, `_`; at most 63 bytes.
pub fn validate_identifier(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(Error::invalid_input(format!(
            "`{}` is not a valid identifier (ASCII letters, digits and _, at most 63 bytes)",
            printable(name)
        )))
    }
}

impl IndexMeta {
    fn new(entity: &str, fields: Vec<&'static str>, unique: bool) -> Self {
        let prefix = if unique { "ux" } else { "ix" };
        let mut name = format!("{prefix}_{entity}_{}", fields.join("_"));
        if name.len() > 63 {
            let mut h = StableHasher::default();
            name.hash(&mut h);
            let hash = format!("_{:016x}", h.finish());
            name.truncate(63 - hash.len());
            name.push_str(&hash);
        }
        IndexMeta {
            name,
            fields,
            unique,
        }
    }
}

/// The stored shape of a value inside a [`FieldType::Json`] field: serde's
/// JSON-like form, so UUIDs, timestamps, dates and decimals are strings there
/// and `Vec<u8>` is an array of integers. Backends use it to describe nested
/// documents (MongoDB: the `$jsonSchema` validator).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Shape {
    /// A scalar in its serde form.
    Scalar(ScalarType),
    /// `Option<T>`: the inner shape or null.
    Nullable(Box<Shape>),
    /// A sequence (`Vec<T>`, `Box<[T]>`) of one shape.
    Array(Box<Shape>),
    /// A map with string keys (`BTreeMap<String, T>`, `HashMap<String, T>`).
    Map(Box<Shape>),
    /// A struct with named fields ([`Embedded`](derive@crate::Embedded)), in declaration order.
    Object(Vec<NestedField>),
    /// Unknown (a type without a declared shape, or a recursive type past
    /// [`MAX_SHAPE_DEPTH`]): any value.
    Any,
}

/// One field of a [`Shape::Object`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NestedField {
    /// The serialized name.
    pub name: &'static str,
    /// The field's shape (`Nullable` for `Option` fields).
    pub shape: Shape,
    /// May be missing from the stored document (`#[serde(skip_serializing_if = ..)]`).
    pub optional: bool,
}

/// How deep [`Embedded::shape`] of derived structs descends before answering
/// [`Shape::Any`] (recursive types such as trees stay finite).
pub const MAX_SHAPE_DEPTH: usize = 16;

/// Types whose stored shape is known (see [`Shape`]). `#[derive(Embedded)]`
/// implements it for structs with named fields, `#[derive(EntityEnum)]` for
/// unit enums; scalars, `Option`, `Vec`, `Box` and string-keyed maps of such
/// types implement it here.
pub trait Embedded {
    /// The shape of a stored value of this type.
    fn shape() -> Shape;
}

macro_rules! scalar_shape {
    ($($t:ty => $s:ident),* $(,)?) => {
        $(impl Embedded for $t { fn shape() -> Shape { Shape::Scalar(ScalarType::$s) } })*
    };
}
scalar_shape! {
    String => String, bool => Bool, u8 => I16, i16 => I16, i32 => I32, i64 => I64,
    u16 => I32, u32 => I64, f32 => F32, f64 => F64,
    uuid::Uuid => Uuid, chrono::DateTime<chrono::Utc> => DateTime, chrono::NaiveDate => Date,
}
#[cfg(feature = "decimal")]
scalar_shape! { rust_decimal::Decimal => Decimal }

impl<T: Embedded> Embedded for Option<T> {
    fn shape() -> Shape {
        Shape::Nullable(Box::new(T::shape()))
    }
}
impl<T: Embedded> Embedded for Vec<T> {
    fn shape() -> Shape {
        Shape::Array(Box::new(T::shape()))
    }
}
impl<T: Embedded> Embedded for Box<T> {
    fn shape() -> Shape {
        T::shape()
    }
}
impl<T: Embedded> Embedded for std::collections::BTreeMap<String, T> {
    fn shape() -> Shape {
        Shape::Map(Box::new(T::shape()))
    }
}
impl<T: Embedded, S> Embedded for std::collections::HashMap<String, T, S> {
    fn shape() -> Shape {
        Shape::Map(Box::new(T::shape()))
    }
}

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

/// Rust types with a known storage class. Types without it (nested structs,
/// maps) are stored as [`FieldType::Json`].
pub trait FieldKind {
    /// The storage type.
    const TYPE: FieldType;
    /// `Option<T>`.
    const NULLABLE: bool = false;
    /// Only `u8`: makes `Vec<u8>` bytes rather than an array.
    const IS_BYTE: bool = false;
}

macro_rules! scalar_kind {
    ($($t:ty => $s:ident),* $(,)?) => {
        $(impl FieldKind for $t { const TYPE: FieldType = FieldType::Scalar(ScalarType::$s); })*
    };
}
scalar_kind! {
    String => String, bool => Bool, i16 => I16, i32 => I32, i64 => I64,
    u16 => I32, u32 => I64, f32 => F32, f64 => F64,
    uuid::Uuid => Uuid, chrono::DateTime<chrono::Utc> => DateTime, chrono::NaiveDate => Date,
}
#[cfg(feature = "decimal")]
scalar_kind! { rust_decimal::Decimal => Decimal }

impl FieldKind for u8 {
    const TYPE: FieldType = FieldType::Scalar(ScalarType::I16);
    const IS_BYTE: bool = true;
}

impl<T: FieldKind> FieldKind for Option<T> {
    const TYPE: FieldType = T::TYPE;
    const NULLABLE: bool = true;
}

impl<T: FieldKind> FieldKind for Vec<T> {
    const TYPE: FieldType = match (T::IS_BYTE, T::TYPE) {
        (true, _) => FieldType::Scalar(ScalarType::Bytes),
        (false, FieldType::Scalar(s)) if !T::NULLABLE => FieldType::Array(s),
        _ => FieldType::Json,
    };
}

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

#[cfg(test)]
mod tests {
    use super::StableHasher;
    use std::hash::Hasher;

    #[test]
    fn stable_hasher_is_fnv1a() {
        // Reference values of 64-bit FNV-1a.
        let h = |s: &str| {
            let mut h = StableHasher::default();
            h.write(s.as_bytes());
            h.finish()
        };
        assert_eq!(h(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(h("a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(h("foobar"), 0x8594_4171_f739_67e8);
    }
}
