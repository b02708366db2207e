//! Dynamic, typed values: what a field holds once an entity is taken apart.
//!
//! Entities are converted to a [`Record`] (one [`Value`] per field, in metadata
//! order) through serde, then *normalized* by the field's [`FieldType`], so a
//! `Uuid` field holds [`Value::Uuid`] rather than the string serde produced.
//! Backends bind these values as parameters and build them back from rows;
//! [`Record::into_entity`] turns them into the entity again.
//!
//! Inside [`FieldType::Json`] fields (nested structs, maps, vectors of
//! non-scalars) values stay as serde produced them: strings, numbers, bools,
//! arrays and objects.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::entity::{FieldType, ScalarType};
use crate::error::{Error, Result};

mod record;

pub(crate) use record::NamedField;
pub use record::{Record, TimestampPrecision};
#[cfg(feature = "decimal")]
pub use rust_decimal::Decimal;

/// A dynamic value.
#[derive(Clone, PartialEq)]
pub enum Value {
    /// Absent / SQL NULL / `None`.
    Null,
    /// A boolean.
    Bool(bool),
    /// Any integer (i16, i32, i64 fields; integers inside JSON).
    I64(i64),
    /// Any float (f32, f64 fields; non-integer numbers inside JSON).
    F64(f64),
    /// Text (also unit enums).
    String(String),
    /// Raw bytes.
    Bytes(Vec<u8>),
    /// A UUID.
    Uuid(Uuid),
    /// A UTC timestamp (microsecond precision is kept by every backend that declares it).
    DateTime(DateTime<Utc>),
    /// A calendar date.
    Date(NaiveDate),
    /// An exact decimal.
    #[cfg(feature = "decimal")]
    Decimal(Decimal),
    /// An array.
    Array(Vec<Value>),
    /// An object with string keys (nested struct or map).
    Object(BTreeMap<String, Value>),
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("null"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::I64(i) => write!(f, "{i}"),
            Value::F64(x) => write!(f, "{x:?}"),
            Value::String(s) => write!(f, "{s:?}"),
            Value::Bytes(b) => write!(f, "bytes[{}]", b.len()),
            Value::Uuid(u) => write!(f, "uuid({u})"),
            Value::DateTime(d) => write!(f, "{}", d.to_rfc3339_opts(SecondsFormat::Micros, true)),
            Value::Date(d) => write!(f, "{d}"),
            #[cfg(feature = "decimal")]
            Value::Decimal(d) => write!(f, "{d}"),
            Value::Array(a) => f.debug_list().entries(a).finish(),
            Value::Object(o) => f.debug_map().entries(o).finish(),
        }
    }
}

impl Value {
    /// True for [`Value::Null`].
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    fn type_rank(&self) -> u8 {
        match self {
            Value::Null => 0,
            Value::I64(_) | Value::F64(_) => 1,
            #[cfg(feature = "decimal")]
            Value::Decimal(_) => 1,
            Value::String(_) => 2,
            Value::Object(_) => 3,
            Value::Array(_) => 4,
            Value::Bytes(_) => 5,
            Value::Uuid(_) => 6,
            Value::Bool(_) => 7,
            Value::Date(_) => 8,
            Value::DateTime(_) => 9,
        }
    }

    /// The total order used by the reference backend and by cursors.
    ///
    /// `Null` sorts lowest; numbers compare numerically across integer and
    /// float; strings compare by Unicode code point (the same as UTF-8 bytes);
    /// floats use IEEE total order except that `-0.0` and `0.0` are equal (as
    /// IEEE `==`, SQL and BSON compare them); `NaN` is greatest.
    pub fn total_cmp(&self, other: &Value) -> Ordering {
        use Value::*;
        match (self, other) {
            (Null, Null) => Ordering::Equal,
            (Bool(a), Bool(b)) => a.cmp(b),
            (I64(a), I64(b)) => a.cmp(b),
            (F64(a), F64(b)) => unsigned_zero(*a).total_cmp(&unsigned_zero(*b)),
            (I64(a), F64(b)) => cmp_i_f(*a, *b),
            (F64(a), I64(b)) => cmp_i_f(*b, *a).reverse(),
            #[cfg(feature = "decimal")]
            (Decimal(a), Decimal(b)) => a.cmp(b),
            #[cfg(feature = "decimal")]
            (Decimal(a), I64(b)) => a.cmp(&rust_decimal::Decimal::from(*b)),
            #[cfg(feature = "decimal")]
            (I64(a), Decimal(b)) => rust_decimal::Decimal::from(*a).cmp(b),
            (String(a), String(b)) => a.cmp(b),
            (Bytes(a), Bytes(b)) => a.cmp(b),
            (Uuid(a), Uuid(b)) => a.cmp(b),
            (DateTime(a), DateTime(b)) => a.cmp(b),
            (Date(a), Date(b)) => a.cmp(b),
            (Array(a), Array(b)) => {
                for (x, y) in a.iter().zip(b) {
                    let o = x.total_cmp(y);
                    if o != Ordering::Equal {
                        return o;
                    }
                }
                a.len().cmp(&b.len())
            }
            (Object(a), Object(b)) => {
                for ((ka, va), (kb, vb)) in a.iter().zip(b) {
                    let o = ka.cmp(kb).then_with(|| va.total_cmp(vb));
                    if o != Ordering::Equal {
                        return o;
                    }
                }
                a.len().cmp(&b.len())
            }
            _ => self.type_rank().cmp(&other.type_rank()),
        }
    }

    /// Render as JSON (used for JSON columns and cursors). Non-finite floats
    /// become the strings `"NaN"`, `"inf"`, `"-inf"`; typed scalars become
    /// their canonical string forms (RFC 3339 with microseconds, hyphenated
    /// UUID, decimal string); bytes become an array of numbers.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match self {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::I64(i) => J::from(*i),
            Value::F64(x) => match serde_json::Number::from_f64(*x) {
                Some(n) => J::Number(n),
                None => J::String(non_finite_name(*x).to_string()),
            },
            Value::String(s) => J::String(s.clone()),
            Value::Bytes(b) => J::Array(b.iter().map(|x| J::from(*x)).collect()),
            Value::Uuid(u) => J::String(u.to_string()),
            Value::DateTime(d) => J::String(d.to_rfc3339_opts(SecondsFormat::Micros, true)),
            Value::Date(d) => J::String(d.to_string()),
            #[cfg(feature = "decimal")]
            Value::Decimal(d) => J::String(d.to_string()),
            Value::Array(a) => J::Array(a.iter().map(Value::to_json).collect()),
            Value::Object(o) => {
                J::Object(o.iter().map(|(k, v)| (k.clone(), v.to_json())).collect())
            }
        }
    }

    /// Read a generic JSON value (the inverse of [`Value::to_json`] before normalization).
    pub fn from_json(json: serde_json::Value) -> Value {
        use serde_json::Value as J;
        match json {
            J::Null => Value::Null,
            J::Bool(b) => Value::Bool(b),
            J::Number(n) => match n.as_i64() {
                Some(i) => Value::I64(i),
                None => Value::F64(n.as_f64().unwrap_or(f64::NAN)),
            },
            J::String(s) => Value::String(s),
            J::Array(a) => Value::Array(a.into_iter().map(Value::from_json).collect()),
            J::Object(o) => Value::Object(
                o.into_iter()
                    .map(|(k, v)| (k, Value::from_json(v)))
                    .collect(),
            ),
        }
    }

    /// Convert any serializable value to a generic (not yet normalized) value.
    pub fn from_serialize<T: Serialize + ?Sized>(value: &T) -> Result<Value> {
        let v = serde_value::to_value(value)
            .map_err(|e| Error::invalid_input(format!("cannot serialize value: {e}")))?;
        from_serde_value(v)
    }

    /// Normalize a generic value for a field of type `ty`: parse UUIDs,
    /// timestamps, dates and decimals from their string forms, turn arrays
    /// of small integers into bytes, check integer ranges.
    pub fn normalize(self, ty: FieldType) -> Result<Value> {
        match ty {
            FieldType::Json => Ok(self),
            FieldType::Scalar(s) => normalize_scalar(self, s),
            FieldType::Array(s) => match self {
                Value::Null => Ok(Value::Null),
                Value::Array(items) => Ok(Value::Array(
                    items
                        .into_iter()
                        .map(|v| normalize_scalar(v, s))
                        .collect::<Result<_>>()?,
                )),
                other => Err(Error::invalid_input(format!(
                    "expected an array of {s:?}, got {other:?}"
                ))),
            },
        }
    }

    /// The value in the generic shape serde deserializers accept.
    pub(crate) fn into_serde_value(self) -> serde_value::Value {
        use serde_value::Value as S;
        match self {
            Value::Null => S::Option(None),
            Value::Bool(b) => S::Bool(b),
            Value::I64(i) => S::I64(i),
            Value::F64(x) => S::F64(x),
            Value::String(s) => S::String(s),
            Value::Bytes(b) => S::Seq(b.into_iter().map(S::U8).collect()),
            Value::Uuid(u) => S::String(u.to_string()),
            Value::DateTime(d) => S::String(d.to_rfc3339_opts(SecondsFormat::AutoSi, true)),
            Value::Date(d) => S::String(d.to_string()),
            #[cfg(feature = "decimal")]
            Value::Decimal(d) => S::String(d.to_string()),
            Value::Array(a) => S::Seq(a.into_iter().map(Value::into_serde_value).collect()),
            Value::Object(o) => S::Map(
                o.into_iter()
                    .map(|(k, v)| (S::String(k), v.into_serde_value()))
                    .collect(),
            ),
        }
    }
}

/// `-0.0` as `0.0`: the filter contract compares zeros as equal.
fn unsigned_zero(x: f64) -> f64 {
    if x == 0.0 { 0.0 } else { x }
}

fn cmp_i_f(a: i64, b: f64) -> Ordering {
    if b.is_nan() {
        return Ordering::Less;
    }
    (a as f64).total_cmp(&unsigned_zero(b)).then_with(|| {
        // Equal as f64 but maybe not exactly: compare precisely via i128 when b is integral.
        if b.fract() == 0.0 && b.abs() < 9.3e18 {
            (a as i128).cmp(&(b as i128))
        } else {
            Ordering::Equal
        }
    })
}

fn non_finite_name(x: f64) -> &'static str {
    if x.is_nan() {
        "NaN"
    } else if x > 0.0 {
        "inf"
    } else {
        "-inf"
    }
}

pub(crate) fn from_serde_value(v: serde_value::Value) -> Result<Value> {
    use serde_value::Value as S;
    Ok(match v {
        S::Bool(b) => Value::Bool(b),
        S::U8(i) => Value::I64(i.into()),
        S::U16(i) => Value::I64(i.into()),
        S::U32(i) => Value::I64(i.into()),
        S::U64(i) => Value::I64(
            i64::try_from(i)
                .map_err(|_| Error::invalid_input(format!("integer {i} exceeds i64")))?,
        ),
        S::I8(i) => Value::I64(i.into()),
        S::I16(i) => Value::I64(i.into()),
        S::I32(i) => Value::I64(i.into()),
        S::I64(i) => Value::I64(i),
        S::F32(x) => Value::F64(x.into()),
        S::F64(x) => Value::F64(x),
        S::Char(c) => Value::String(c.to_string()),
        S::String(s) => Value::String(s),
        S::Unit => Value::Null,
        S::Option(None) => Value::Null,
        S::Option(Some(v)) => from_serde_value(*v)?,
        S::Newtype(v) => from_serde_value(*v)?,
        S::Seq(items) => Value::Array(
            items
                .into_iter()
                .map(from_serde_value)
                .collect::<Result<_>>()?,
        ),
        S::Map(m) => {
            let mut out = BTreeMap::new();
            for (k, v) in m {
                let key = match from_serde_value(k)? {
                    Value::String(s) => s,
                    Value::I64(i) => i.to_string(),
                    Value::Bool(b) => b.to_string(),
                    other => {
                        return Err(Error::invalid_input(format!(
                            "map keys must be strings or integers, got {other:?}"
                        )));
                    }
                };
                out.insert(key, from_serde_value(v)?);
            }
            Value::Object(out)
        }
        S::Bytes(b) => Value::Bytes(b),
    })
}

fn parse_float_name(s: &str) -> Option<f64> {
    match s {
        "NaN" | "nan" => Some(f64::NAN),
        "inf" | "Infinity" => Some(f64::INFINITY),
        "-inf" | "-Infinity" => Some(f64::NEG_INFINITY),
        _ => None,
    }
}

fn normalize_scalar(v: Value, s: ScalarType) -> Result<Value> {
    use ScalarType as T;
    let bad = |v: &Value| Error::invalid_input(format!("expected {s:?}, got {v:?}"));
    Ok(match (s, v) {
        (_, Value::Null) => Value::Null,
        (T::String | T::Enum, Value::String(x)) => Value::String(x),
        (T::Bool, Value::Bool(b)) => Value::Bool(b),
        (T::I16, Value::I64(i)) if i16::try_from(i).is_ok() => Value::I64(i),
        (T::I32, Value::I64(i)) if i32::try_from(i).is_ok() => Value::I64(i),
        (T::I64, Value::I64(i)) => Value::I64(i),
        (T::F32 | T::F64, Value::F64(x)) => Value::F64(x),
        (T::F32 | T::F64, Value::I64(i)) => Value::F64(i as f64),
        (T::F32 | T::F64, Value::String(x)) => match parse_float_name(&x) {
            Some(f) => Value::F64(f),
            None => return Err(bad(&Value::String(x))),
        },
        (T::Uuid, Value::Uuid(u)) => Value::Uuid(u),
        (T::Uuid, Value::String(x)) => Value::Uuid(
            Uuid::parse_str(&x).map_err(|e| Error::invalid_input(format!("invalid uuid: {e}")))?,
        ),
        (T::Uuid, Value::Bytes(b)) => Value::Uuid(
            Uuid::from_slice(&b).map_err(|e| Error::invalid_input(format!("invalid uuid: {e}")))?,
        ),
        (T::DateTime, Value::DateTime(d)) => Value::DateTime(d),
        (T::DateTime, Value::String(x)) => Value::DateTime(
            DateTime::parse_from_rfc3339(&x)
                .map_err(|e| Error::invalid_input(format!("invalid timestamp {x:?}: {e}")))?
                .with_timezone(&Utc),
        ),
        (T::Date, Value::Date(d)) => Value::Date(d),
        (T::Date, Value::String(x)) => Value::Date(
            x.parse::<NaiveDate>()
                .map_err(|e| Error::invalid_input(format!("invalid date {x:?}: {e}")))?,
        ),
        #[cfg(feature = "decimal")]
        (T::Decimal, Value::Decimal(d)) => Value::Decimal(d),
        #[cfg(feature = "decimal")]
        (T::Decimal, Value::String(x)) => Value::Decimal(
            x.parse::<Decimal>()
                .map_err(|e| Error::invalid_input(format!("invalid decimal {x:?}: {e}")))?,
        ),
        #[cfg(feature = "decimal")]
        (T::Decimal, Value::I64(i)) => Value::Decimal(Decimal::from(i)),
        (T::Bytes, Value::Bytes(b)) => Value::Bytes(b),
        (T::Bytes, Value::Array(items)) => {
            let mut out = Vec::with_capacity(items.len());
            for it in items {
                match it {
                    Value::I64(i) if (0..=255).contains(&i) => out.push(i as u8),
                    other => return Err(bad(&other)),
                }
            }
            Value::Bytes(out)
        }
        (_, other) => return Err(bad(&other)),
    })
}

impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Bool(v)
    }
}
impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::I64(v)
    }
}
impl From<i32> for Value {
    fn from(v: i32) -> Self {
        Value::I64(v.into())
    }
}
impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::F64(v)
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::String(v.to_string())
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::String(v)
    }
}
impl From<Uuid> for Value {
    fn from(v: Uuid) -> Self {
        Value::Uuid(v)
    }
}
impl From<DateTime<Utc>> for Value {
    fn from(v: DateTime<Utc>) -> Self {
        Value::DateTime(v)
    }
}
impl From<NaiveDate> for Value {
    fn from(v: NaiveDate) -> Self {
        Value::Date(v)
    }
}
impl From<Vec<u8>> for Value {
    fn from(v: Vec<u8>) -> Self {
        Value::Bytes(v)
    }
}
#[cfg(feature = "decimal")]
impl From<Decimal> for Value {
    fn from(v: Decimal) -> Self {
        Value::Decimal(v)
    }
}
impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}
