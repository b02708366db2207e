//! The stored shape of nested values ([`Shape`]) and the types that know
//! theirs ([`Embedded`]): what the MongoDB backend turns into the nested part
//! of its `$jsonSchema` validator.

use super::types::ScalarType;

/// The stored shape of a value inside a [`FieldType::Json`](super::FieldType::Json) field: serde's
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
