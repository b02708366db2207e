//! Storage type classes: [`ScalarType`], [`FieldType`], and [`FieldKind`],
//! which maps a Rust field type to its class (the derive macro asks it).

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
