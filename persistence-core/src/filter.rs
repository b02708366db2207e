//! The backend-neutral filter AST and typed field handles.
//!
//! # Semantics (every backend answers the same way; the conformance suite checks it)
//!
//! * **Null.** A field that is `None` (or a nested path that is absent) is *null*.
//!   `eq`, `lt`, `lte`, `gt`, `gte`, `in`, `starts_with`, `contains` never
//!   match null. `ne` and `not_in` are the exact negations of `eq` and `in`,
//!   so they *do* match null. `eq(None)` means `is_null`, `ne(None)` means
//!   `is_not_null`; ordering comparisons against null are invalid input.
//! * **Not.** `not(f)` matches exactly the rows `f` does not match (two-valued
//!   logic, unlike SQL's three-valued `NOT`).
//! * **Empty lists.** `in([])` matches nothing, `not_in([])` matches
//!   everything, `and([])` matches everything, `or([])` matches nothing.
//! * **Strings** compare by Unicode code point (= UTF-8 byte order), case
//!   sensitive, no locale collation. `starts_with` and `contains` are literal,
//!   case-sensitive substring tests: `%`, `_`, `*`, regex characters have no
//!   special meaning.
//! * **Sort order:** null is lowest (first ascending, last descending);
//!   otherwise the same order as comparisons. Ties are broken by the id, ascending,
//!   so every query has a total, repeatable order.
//! * **Floats:** `NaN` compares unspecified (backends disagree); do not filter on it.
//! * **Arrays:** `contains` on a `Vec<T>` field matches rows whose array holds
//!   an element equal to the value.
//! * **Nested paths** (`profile.address.city`) address values inside JSON
//!   fields; they compare as JSON scalars (strings, numbers, booleans).

use std::borrow::Cow;
use std::marker::PhantomData;

use serde::Serialize;

use crate::entity::{EntityMeta, FieldType, ScalarType};
use crate::error::{Error, Result};
use crate::query::{Direction, SortKey};
use crate::value::Value;

/// A dotted field path (`email`, `profile.address.city`).
pub type FieldPath = Cow<'static, str>;

/// Comparison operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CompareOp {
    /// `=`
    Eq,
    /// `!=` (matches null)
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Lte,
    /// `>`
    Gt,
    /// `>=`
    Gte,
}

/// A filter over an entity's fields.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    /// All must match (`And(vec![])` matches everything).
    And(Vec<Filter>),
    /// Any must match (`Or(vec![])` matches nothing).
    Or(Vec<Filter>),
    /// Exactly the rows the inner filter does not match.
    Not(Box<Filter>),
    /// Compare a field with a value.
    Compare {
        /// Field path.
        field: FieldPath,
        /// Operator.
        op: CompareOp,
        /// Value (normalized to the field's type by [`Filter::checked`]).
        value: Value,
    },
    /// Field equals one of the values.
    In {
        /// Field path.
        field: FieldPath,
        /// Candidates.
        values: Vec<Value>,
    },
    /// Field equals none of the values (null matches).
    NotIn {
        /// Field path.
        field: FieldPath,
        /// Excluded values.
        values: Vec<Value>,
    },
    /// Field is null / absent.
    IsNull(FieldPath),
    /// Field is not null.
    IsNotNull(FieldPath),
    /// String field starts with a literal prefix.
    StartsWith {
        /// Field path.
        field: FieldPath,
        /// Prefix (literal).
        prefix: String,
    },
    /// String field contains a literal substring.
    Contains {
        /// Field path.
        field: FieldPath,
        /// Substring (literal).
        substring: String,
    },
    /// Array field holds an element equal to the value.
    ArrayContains {
        /// Field path.
        field: FieldPath,
        /// Element.
        value: Value,
    },
    /// A filter that could not be built (e.g. a value failed to serialize);
    /// checking it yields `InvalidInput` with this message.
    Invalid(String),
}

impl Default for Filter {
    fn default() -> Self {
        Filter::all()
    }
}

impl Filter {
    /// Matches everything.
    pub fn all() -> Filter {
        Filter::And(Vec::new())
    }
    /// Matches nothing.
    pub fn none() -> Filter {
        Filter::Or(Vec::new())
    }
    /// True for `And([])`.
    pub fn is_all(&self) -> bool {
        matches!(self, Filter::And(v) if v.is_empty())
    }

    /// Start an untyped condition on a field path (checked against the
    /// entity's metadata when the query runs).
    pub fn field(path: impl Into<FieldPath>) -> UntypedField {
        UntypedField { path: path.into() }
    }

    /// Both.
    pub fn and(self, other: Filter) -> Filter {
        match (self, other) {
            (Filter::And(mut a), Filter::And(b)) => {
                a.extend(b);
                Filter::And(a)
            }
            (Filter::And(mut a), b) => {
                a.push(b);
                Filter::And(a)
            }
            (a, Filter::And(mut b)) => {
                b.insert(0, a);
                Filter::And(b)
            }
            (a, b) => Filter::And(vec![a, b]),
        }
    }
    /// Either.
    pub fn or(self, other: Filter) -> Filter {
        match (self, other) {
            (Filter::Or(mut a), Filter::Or(b)) => {
                a.extend(b);
                Filter::Or(a)
            }
            (Filter::Or(mut a), b) => {
                a.push(b);
                Filter::Or(a)
            }
            (a, b) => Filter::Or(vec![a, b]),
        }
    }
    /// Negation.
    #[allow(clippy::should_implement_trait)]
    pub fn not(self) -> Filter {
        Filter::Not(Box::new(self))
    }

    /// Validate against `meta` and normalize every value to its field's type.
    ///
    /// Unknown fields, malformed nested paths, values of the wrong type,
    /// string operators on non-strings and ordering against null are
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput).
    /// Backends translate only checked filters.
    pub fn checked(&self, meta: &EntityMeta) -> Result<Filter> {
        Ok(match self {
            Filter::And(fs) => {
                Filter::And(fs.iter().map(|f| f.checked(meta)).collect::<Result<_>>()?)
            }
            Filter::Or(fs) => {
                Filter::Or(fs.iter().map(|f| f.checked(meta)).collect::<Result<_>>()?)
            }
            Filter::Not(f) => Filter::Not(Box::new(f.checked(meta)?)),
            Filter::Compare { field, op, value } => {
                let ty = path_type(meta, field)?;
                if value.is_null() {
                    return match op {
                        CompareOp::Eq => Ok(Filter::IsNull(field.clone())),
                        CompareOp::Ne => Ok(Filter::IsNotNull(field.clone())),
                        _ => Err(Error::invalid_input(format!(
                            "cannot compare `{field}` with null using {op:?}; use is_null"
                        ))),
                    };
                }
                if matches!(ty, FieldType::Array(_)) && !matches!(op, CompareOp::Eq | CompareOp::Ne)
                {
                    return Err(Error::invalid_input(format!(
                        "ordering comparison on array field `{field}`"
                    )));
                }
                Filter::Compare {
                    field: field.clone(),
                    op: *op,
                    value: norm(value, ty, field)?,
                }
            }
            Filter::In { field, values } | Filter::NotIn { field, values } => {
                let ty = path_type(meta, field)?;
                let values = values
                    .iter()
                    .map(|v| {
                        if v.is_null() {
                            Err(Error::invalid_input(format!(
                                "null in the value list of `{field}`; use is_null"
                            )))
                        } else {
                            norm(v, ty, field)
                        }
                    })
                    .collect::<Result<Vec<_>>>()?;
                if matches!(self, Filter::In { .. }) {
                    Filter::In {
                        field: field.clone(),
                        values,
                    }
                } else {
                    Filter::NotIn {
                        field: field.clone(),
                        values,
                    }
                }
            }
            Filter::IsNull(field) => {
                path_type(meta, field)?;
                Filter::IsNull(field.clone())
            }
            Filter::IsNotNull(field) => {
                path_type(meta, field)?;
                Filter::IsNotNull(field.clone())
            }
            Filter::StartsWith { field, prefix } => {
                string_path(meta, field)?;
                Filter::StartsWith {
                    field: field.clone(),
                    prefix: prefix.clone(),
                }
            }
            Filter::Contains { field, substring } => {
                string_path(meta, field)?;
                Filter::Contains {
                    field: field.clone(),
                    substring: substring.clone(),
                }
            }
            Filter::ArrayContains { field, value } => {
                let ty = path_type(meta, field)?;
                let elem = match ty {
                    FieldType::Array(s) => FieldType::Scalar(s),
                    FieldType::Json => FieldType::Json,
                    FieldType::Scalar(_) => {
                        return Err(Error::invalid_input(format!(
                            "`{field}` is not an array field"
                        )));
                    }
                };
                if value.is_null() {
                    return Err(Error::invalid_input("array contains null is not supported"));
                }
                Filter::ArrayContains {
                    field: field.clone(),
                    value: norm(value, elem, field)?,
                }
            }
            Filter::Invalid(msg) => return Err(Error::invalid_input(msg.clone())),
        })
    }
}

fn path_type(meta: &EntityMeta, path: &str) -> Result<FieldType> {
    let r = meta.resolve_path(path)?;
    Ok(r.ty(meta))
}

fn string_path(meta: &EntityMeta, path: &str) -> Result<()> {
    match path_type(meta, path)? {
        FieldType::Scalar(ScalarType::String | ScalarType::Enum) | FieldType::Json => Ok(()),
        other => Err(Error::invalid_input(format!(
            "starts_with/contains need a string field; `{path}` is {other:?}"
        ))),
    }
}

fn norm(v: &Value, ty: FieldType, field: &str) -> Result<Value> {
    match ty {
        FieldType::Json => match v {
            // Inside JSON only JSON scalars can be compared.
            Value::Object(_) | Value::Array(_) => Err(Error::invalid_input(format!(
                "nested path `{field}` can only be compared with scalars"
            ))),
            other => Ok(Value::from_json(other.to_json())),
        },
        _ => v
            .clone()
            .normalize(ty)
            .map_err(|e| Error::invalid_input(format!("value for `{field}`: {}", e.message()))),
    }
}

fn to_value<T: Serialize + ?Sized>(v: &T) -> std::result::Result<Value, String> {
    Value::from_serialize(v).map_err(|e| e.message().to_string())
}

fn cmp_filter(field: FieldPath, op: CompareOp, v: std::result::Result<Value, String>) -> Filter {
    match v {
        Ok(value) => Filter::Compare { field, op, value },
        Err(e) => Filter::Invalid(e),
    }
}

fn list(
    vs: impl IntoIterator<Item = std::result::Result<Value, String>>,
) -> std::result::Result<Vec<Value>, String> {
    vs.into_iter().collect()
}

/// Values accepted where a field of type `T` is compared: `T` itself, `&T`,
/// `&str` for strings, a bare `T` for `Option<T>`. Anything else does not
/// compile, so `User::EMAIL.eq(5)` is a type error.
pub trait Compatible<T: ?Sized> {
    /// The value, serialized.
    fn to_filter_value(&self) -> std::result::Result<Value, String>;
}
impl<T: Serialize> Compatible<T> for T {
    fn to_filter_value(&self) -> std::result::Result<Value, String> {
        to_value(self)
    }
}
impl<T: Serialize> Compatible<T> for &T {
    fn to_filter_value(&self) -> std::result::Result<Value, String> {
        to_value(*self)
    }
}
impl<T: Serialize> Compatible<Option<T>> for T {
    fn to_filter_value(&self) -> std::result::Result<Value, String> {
        to_value(self)
    }
}
impl Compatible<String> for &str {
    fn to_filter_value(&self) -> std::result::Result<Value, String> {
        Ok(Value::String((*self).to_string()))
    }
}
impl Compatible<Option<String>> for &str {
    fn to_filter_value(&self) -> std::result::Result<Value, String> {
        Ok(Value::String((*self).to_string()))
    }
}

/// A typed handle to a field of entity `E` with Rust type `T`, generated by
/// `#[derive(Entity)]` as an associated constant (`User::EMAIL`).
pub struct Field<E, T> {
    path: FieldPath,
    _marker: PhantomData<fn() -> (E, T)>,
}

impl<E, T> Clone for Field<E, T> {
    fn clone(&self) -> Self {
        Field {
            path: self.path.clone(),
            _marker: PhantomData,
        }
    }
}

impl<E, T> std::fmt::Debug for Field<E, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Field({})", self.path)
    }
}

impl<E, T> Field<E, T> {
    /// A handle for a stored field name (used by the derive macro).
    pub const fn new(path: &'static str) -> Self {
        Field {
            path: Cow::Borrowed(path),
            _marker: PhantomData,
        }
    }
    /// The dotted path.
    pub fn path(&self) -> &str {
        &self.path
    }
    /// A value nested inside this (JSON) field, with a type of your choosing:
    /// `User::PROFILE.nested::<String>("address.city")`.
    pub fn nested<U>(&self, sub_path: &str) -> Field<E, U> {
        Field {
            path: Cow::Owned(format!("{}.{}", self.path, sub_path)),
            _marker: PhantomData,
        }
    }
    /// `field == value`
    pub fn eq(&self, value: impl Compatible<T>) -> Filter {
        cmp_filter(self.path.clone(), CompareOp::Eq, value.to_filter_value())
    }
    /// `field != value` (matches null)
    pub fn ne(&self, value: impl Compatible<T>) -> Filter {
        cmp_filter(self.path.clone(), CompareOp::Ne, value.to_filter_value())
    }
    /// `field < value`
    pub fn lt(&self, value: impl Compatible<T>) -> Filter {
        cmp_filter(self.path.clone(), CompareOp::Lt, value.to_filter_value())
    }
    /// `field <= value`
    pub fn lte(&self, value: impl Compatible<T>) -> Filter {
        cmp_filter(self.path.clone(), CompareOp::Lte, value.to_filter_value())
    }
    /// `field > value`
    pub fn gt(&self, value: impl Compatible<T>) -> Filter {
        cmp_filter(self.path.clone(), CompareOp::Gt, value.to_filter_value())
    }
    /// `field >= value`
    pub fn gte(&self, value: impl Compatible<T>) -> Filter {
        cmp_filter(self.path.clone(), CompareOp::Gte, value.to_filter_value())
    }
    /// `field IN (values)`
    pub fn is_in<V: Compatible<T>>(&self, values: impl IntoIterator<Item = V>) -> Filter {
        match list(values.into_iter().map(|v| v.to_filter_value())) {
            Ok(values) => Filter::In {
                field: self.path.clone(),
                values,
            },
            Err(e) => Filter::Invalid(e),
        }
    }
    /// `field NOT IN (values)` (matches null)
    pub fn not_in<V: Compatible<T>>(&self, values: impl IntoIterator<Item = V>) -> Filter {
        match list(values.into_iter().map(|v| v.to_filter_value())) {
            Ok(values) => Filter::NotIn {
                field: self.path.clone(),
                values,
            },
            Err(e) => Filter::Invalid(e),
        }
    }
    /// `field IS NULL`
    pub fn is_null(&self) -> Filter {
        Filter::IsNull(self.path.clone())
    }
    /// `field IS NOT NULL`
    pub fn is_not_null(&self) -> Filter {
        Filter::IsNotNull(self.path.clone())
    }
    /// Ascending sort key.
    pub fn asc(&self) -> SortKey {
        SortKey {
            field: self.path.clone(),
            direction: Direction::Asc,
        }
    }
    /// Descending sort key.
    pub fn desc(&self) -> SortKey {
        SortKey {
            field: self.path.clone(),
            direction: Direction::Desc,
        }
    }
}

/// String operations, for `String` and `Option<String>` fields.
pub trait StringField {
    /// Literal, case-sensitive prefix test.
    fn starts_with(&self, prefix: &str) -> Filter;
    /// Literal, case-sensitive substring test.
    fn contains(&self, substring: &str) -> Filter;
}
macro_rules! string_field {
    ($($t:ty),*) => {$(
        impl<E> StringField for Field<E, $t> {
            fn starts_with(&self, prefix: &str) -> Filter {
                Filter::StartsWith { field: self.path.clone(), prefix: prefix.to_string() }
            }
            fn contains(&self, substring: &str) -> Filter {
                Filter::Contains { field: self.path.clone(), substring: substring.to_string() }
            }
        }
    )*};
}
string_field!(String, Option<String>);

fn array_contains<T>(path: &FieldPath, item: impl Compatible<T>) -> Filter {
    match item.to_filter_value() {
        Ok(value) => Filter::ArrayContains {
            field: path.clone(),
            value,
        },
        Err(e) => Filter::Invalid(e),
    }
}

impl<E, T> Field<E, Vec<T>> {
    /// The array holds an element equal to `item`.
    pub fn has(&self, item: impl Compatible<T>) -> Filter {
        array_contains(&self.path, item)
    }
}

impl<E, T> Field<E, Option<Vec<T>>> {
    /// The array is present and holds an element equal to `item` (`None`
    /// holds nothing: `has` is false, `has(..).not()` true).
    pub fn has(&self, item: impl Compatible<T>) -> Filter {
        array_contains(&self.path, item)
    }
}

/// An untyped condition builder for paths known only at run time (HTTP query
/// strings, config). Checked against metadata when the query runs.
#[derive(Debug, Clone)]
pub struct UntypedField {
    path: FieldPath,
}

impl UntypedField {
    fn cmp(&self, op: CompareOp, value: impl Into<Value>) -> Filter {
        Filter::Compare {
            field: self.path.clone(),
            op,
            value: value.into(),
        }
    }
    /// `=`
    pub fn eq(&self, value: impl Into<Value>) -> Filter {
        self.cmp(CompareOp::Eq, value)
    }
    /// `!=`
    pub fn ne(&self, value: impl Into<Value>) -> Filter {
        self.cmp(CompareOp::Ne, value)
    }
    /// `<`
    pub fn lt(&self, value: impl Into<Value>) -> Filter {
        self.cmp(CompareOp::Lt, value)
    }
    /// `<=`
    pub fn lte(&self, value: impl Into<Value>) -> Filter {
        self.cmp(CompareOp::Lte, value)
    }
    /// `>`
    pub fn gt(&self, value: impl Into<Value>) -> Filter {
        self.cmp(CompareOp::Gt, value)
    }
    /// `>=`
    pub fn gte(&self, value: impl Into<Value>) -> Filter {
        self.cmp(CompareOp::Gte, value)
    }
    /// `IN`
    pub fn is_in(&self, values: impl IntoIterator<Item = Value>) -> Filter {
        Filter::In {
            field: self.path.clone(),
            values: values.into_iter().collect(),
        }
    }
    /// `NOT IN`
    pub fn not_in(&self, values: impl IntoIterator<Item = Value>) -> Filter {
        Filter::NotIn {
            field: self.path.clone(),
            values: values.into_iter().collect(),
        }
    }
    /// `IS NULL`
    pub fn is_null(&self) -> Filter {
        Filter::IsNull(self.path.clone())
    }
    /// `IS NOT NULL`
    pub fn is_not_null(&self) -> Filter {
        Filter::IsNotNull(self.path.clone())
    }
    /// Literal prefix.
    pub fn starts_with(&self, prefix: &str) -> Filter {
        Filter::StartsWith {
            field: self.path.clone(),
            prefix: prefix.to_string(),
        }
    }
    /// Literal substring.
    pub fn contains(&self, substring: &str) -> Filter {
        Filter::Contains {
            field: self.path.clone(),
            substring: substring.to_string(),
        }
    }
    /// Array element.
    pub fn has(&self, value: impl Into<Value>) -> Filter {
        Filter::ArrayContains {
            field: self.path.clone(),
            value: value.into(),
        }
    }
    /// Ascending sort key.
    pub fn asc(&self) -> SortKey {
        SortKey {
            field: self.path.clone(),
            direction: Direction::Asc,
        }
    }
    /// Descending sort key.
    pub fn desc(&self) -> SortKey {
        SortKey {
            field: self.path.clone(),
            direction: Direction::Desc,
        }
    }
}
