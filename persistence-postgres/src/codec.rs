//! Rows ↔ entities: field values to bound parameters ([`to_bind`]),
//! columns to field values ([`decode`]), entities to checked records
//! ([`checked_record`]), and records to entities without an intermediate map
//! ([`entity`]).
//!
//! `Record::into_entity` (persistence-core) rebuilds the entity through a
//! `BTreeMap` of `serde_value` values: a key string per field, a tree insert
//! per field, a second conversion of every value. Measured with callgrind,
//! that was about half of the client-side cost of decoding a row. Here the
//! entity is deserialized straight from the record's values, field by field in
//! metadata order, with exactly the shapes `Record::into_entity` presents
//! (timestamps, UUIDs, dates and decimals as their strings, bytes as a
//! sequence of `u8`, `Null` as `None`, unit enum variants from strings and
//! other variants from single-key objects), so entities decode the same.

use std::cell::Cell;

use chrono::SecondsFormat;
use persistence_core::{Entity, EntityMeta, Error, FieldType, Record, Result, ScalarType, Value};
use sea_orm::{QueryResult, Value as SV};
use serde::de::value::{Error as DeError, MapDeserializer, SeqDeserializer};
use serde::de::{
    self, DeserializeOwned, DeserializeSeed, EnumAccess, IntoDeserializer, VariantAccess, Visitor,
};
use serde::forward_to_deserialize_any;

use crate::query::{Dialect, unsupported};

/// SQLite keeps timestamps as fixed-width RFC 3339 text (microseconds, `Z`), so
/// text order is time order.
fn sqlite_timestamp(d: &chrono::DateTime<chrono::Utc>) -> String {
    d.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn typed_null(dialect: Dialect, ty: FieldType) -> SV {
    use ScalarType as S;
    match (dialect, ty) {
        (Dialect::Postgres, FieldType::Json | FieldType::Array(_)) => SV::Json(None),
        (Dialect::Sqlite, FieldType::Json | FieldType::Array(_)) => SV::String(None),
        (Dialect::Postgres, FieldType::Scalar(s)) => match s {
            S::Bool => SV::Bool(None),
            S::I16 => SV::SmallInt(None),
            S::I32 => SV::Int(None),
            S::I64 => SV::BigInt(None),
            S::F32 => SV::Float(None),
            S::F64 => SV::Double(None),
            S::Uuid => SV::Uuid(None),
            S::DateTime => SV::ChronoDateTimeUtc(None),
            S::Date => SV::ChronoDate(None),
            S::Decimal => SV::Decimal(None),
            S::Bytes => SV::Bytes(None),
            _ => SV::String(None),
        },
        (Dialect::Sqlite, FieldType::Scalar(s)) => match s {
            S::Bool | S::I16 | S::I32 | S::I64 => SV::BigInt(None),
            S::F32 | S::F64 => SV::Double(None),
            S::Bytes => SV::Bytes(None),
            _ => SV::String(None),
        },
    }
}

fn json_bind(dialect: Dialect, json: serde_json::Value) -> SV {
    match dialect {
        Dialect::Postgres => SV::Json(Some(Box::new(json))),
        Dialect::Sqlite => SV::String(Some(json.to_string())),
    }
}

/// The bound value of a (normalized) field value.
pub(crate) fn to_bind(dialect: Dialect, ty: FieldType, v: &Value) -> Result<SV> {
    use ScalarType as S;
    if v.is_null() {
        return Ok(typed_null(dialect, ty));
    }
    let s = match ty {
        FieldType::Json | FieldType::Array(_) => return Ok(json_bind(dialect, v.to_json())),
        FieldType::Scalar(s) => s,
    };
    let pg = dialect == Dialect::Postgres;
    let range = |i: &i64| Error::invalid_input(format!("integer {i} out of range for {s:?}"));
    Ok(match (s, v) {
        (S::String | S::Enum, Value::String(x)) => SV::String(Some(x.clone())),
        (S::Bool, Value::Bool(b)) => SV::Bool(Some(*b)),
        (S::I16, Value::I64(i)) if pg => {
            SV::SmallInt(Some(i16::try_from(*i).map_err(|_| range(i))?))
        }
        (S::I32, Value::I64(i)) if pg => SV::Int(Some(i32::try_from(*i).map_err(|_| range(i))?)),
        (S::I16 | S::I32 | S::I64, Value::I64(i)) => SV::BigInt(Some(*i)),
        // f32 values travel as double precision: stored into `real` they are
        // exact (they came from an f32), and in filters `real` is widened to
        // double for the comparison, exactly as the reference compares.
        (S::F32 | S::F64, Value::F64(x)) => SV::Double(Some(*x)),
        (S::F32 | S::F64, Value::I64(i)) => SV::Double(Some(*i as f64)),
        (S::Uuid, Value::Uuid(u)) if pg => SV::Uuid(Some(*u)),
        (S::Uuid, Value::Uuid(u)) => SV::String(Some(u.hyphenated().to_string())),
        (S::DateTime, Value::DateTime(d)) if pg => SV::ChronoDateTimeUtc(Some(*d)),
        (S::DateTime, Value::DateTime(d)) => SV::String(Some(sqlite_timestamp(d))),
        (S::Date, Value::Date(d)) if pg => SV::ChronoDate(Some(*d)),
        (S::Date, Value::Date(d)) => SV::String(Some(d.to_string())),
        (S::Decimal, Value::Decimal(d)) if pg => SV::Decimal(Some(*d)),
        (S::Decimal, Value::Decimal(d)) => SV::String(Some(d.to_string())),
        (S::Bytes, Value::Bytes(b)) => SV::Bytes(Some(b.clone())),
        (s, v) => {
            return Err(Error::invalid_input(format!(
                "value {v:?} does not fit a {s:?} column"
            )));
        }
    })
}

/// An array field's value bound as a `text[]` (for a native array column,
/// cast to its type by the statement): each element in its text form
/// (strings as they are, other scalars as their JSON text). Elements are
/// never null (an array field holds no `Option`), and nested arrays or
/// objects have no text form here: both are refused.
pub(crate) fn text_array(v: &Value) -> Result<SV> {
    use sea_orm::sea_query::ArrayType;
    let items = match v {
        Value::Null => return Ok(SV::Array(ArrayType::String, None)),
        Value::Array(items) => items,
        other => {
            return Err(Error::invalid_input(format!(
                "value {other:?} does not fit an array column"
            )));
        }
    };
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let text = match item.to_json() {
            serde_json::Value::String(s) => s,
            serde_json::Value::Null
            | serde_json::Value::Array(_)
            | serde_json::Value::Object(_) => {
                return Err(Error::invalid_input(format!(
                    "array element {item:?} has no text form for a native array column"
                )));
            }
            j => j.to_string(),
        };
        out.push(SV::String(Some(text)));
    }
    Ok(SV::Array(ArrayType::String, Some(Box::new(out))))
}

fn get<T>(row: &QueryResult, i: usize) -> Result<Option<T>>
where
    Option<T>: sea_orm::TryGetable,
{
    row.try_get_by_index::<Option<T>>(i)
        .map_err(|e| Error::decode(crate::error::decode_reason(&e)).with_source(e))
}

fn json_text(s: Option<String>) -> Result<Value> {
    match s {
        None => Ok(Value::Null),
        Some(s) => serde_json::from_str::<JsonValue>(&s)
            .map(|j| j.0)
            .map_err(|e| Error::decode(format!("invalid JSON in column: {e}")).with_source(e)),
    }
}

/// A JSON document parsed straight into a field value: exactly what
/// `Value::from_json(serde_json::from_slice(..)?)` gives (integers that fit
/// an `i64` as `I64`, other numbers as `F64`, `null` as `Null`, objects
/// keyed in order, the last of duplicate keys winning), without building the
/// `serde_json::Value` tree first. Array and JSON fields are read this way:
/// for a row of two 128-float vectors that tree, and turning it into field
/// values, cost more client time than parsing the numbers themselves.
struct JsonValue(Value);

impl<'de> serde::Deserialize<'de> for JsonValue {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        d.deserialize_any(JsonVisitor).map(JsonValue)
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<Er: de::Error>(self, b: bool) -> Result<Value, Er> {
        Ok(Value::Bool(b))
    }
    fn visit_i64<Er: de::Error>(self, i: i64) -> Result<Value, Er> {
        Ok(Value::I64(i))
    }
    #[allow(clippy::cast_precision_loss)]
    fn visit_u64<Er: de::Error>(self, u: u64) -> Result<Value, Er> {
        // As `serde_json::Number::as_i64`, then `as_f64`.
        Ok(i64::try_from(u).map_or(Value::F64(u as f64), Value::I64))
    }
    fn visit_f64<Er: de::Error>(self, x: f64) -> Result<Value, Er> {
        // serde_json keeps a non-finite number as `null` (JSON text has none).
        Ok(if x.is_finite() {
            Value::F64(x)
        } else {
            Value::Null
        })
    }
    fn visit_str<Er: de::Error>(self, s: &str) -> Result<Value, Er> {
        Ok(Value::String(s.to_owned()))
    }
    fn visit_string<Er: de::Error>(self, s: String) -> Result<Value, Er> {
        Ok(Value::String(s))
    }
    fn visit_unit<Er: de::Error>(self) -> Result<Value, Er> {
        Ok(Value::Null)
    }
    fn visit_none<Er: de::Error>(self) -> Result<Value, Er> {
        Ok(Value::Null)
    }
    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(JsonValue(v)) = seq.next_element()? {
            items.push(v);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = std::collections::BTreeMap::new();
        while let Some((k, JsonValue(v))) = map.next_entry::<String, JsonValue>()? {
            out.insert(k, v);
        }
        Ok(Value::Object(out))
    }
}

/// A `json`/`jsonb` column of a PostgreSQL row parsed straight into a field
/// value (see [`JsonValue`]; the bytes as sqlx reads them for
/// `serde_json::Value`). `None` when the row is not a PostgreSQL row or the
/// column is of another type: the caller then reads it the general way (and
/// reports what that finds).
#[cfg(feature = "postgres")]
fn pg_json(row: &QueryResult, i: usize) -> Option<Result<Value>> {
    use sea_orm::sqlx::postgres::{PgValueFormat, Postgres};
    use sea_orm::sqlx::{Row as _, ValueRef as _};
    let raw = row.try_as_pg_row()?.try_get_raw(i).ok()?;
    if raw.is_null() {
        return Some(Ok(Value::Null));
    }
    let ty = raw.type_info().into_owned();
    if !<serde_json::Value as sea_orm::sqlx::Type<Postgres>>::compatible(&ty) {
        return None;
    }
    let mut buf = raw.as_bytes().ok()?;
    if raw.format() == PgValueFormat::Binary
        && ty == <serde_json::Value as sea_orm::sqlx::Type<Postgres>>::type_info()
    {
        // jsonb's binary form: a version byte (1), then the JSON text.
        match buf.split_first() {
            Some((1, rest)) => buf = rest,
            _ => return None,
        }
    }
    Some(
        serde_json::from_slice::<JsonValue>(buf)
            .map(|j| j.0)
            .map_err(|e| Error::decode(format!("invalid JSON in column: {e}")).with_source(e)),
    )
}

/// Read column `i` of a row as the value of a field of type `ty` (not yet normalized).
pub(crate) fn decode(
    dialect: Dialect,
    ty: FieldType,
    row: &QueryResult,
    i: usize,
) -> Result<Value> {
    use ScalarType as S;
    fn opt<T>(v: Option<T>, f: impl FnOnce(T) -> Value) -> Value {
        v.map_or(Value::Null, f)
    }
    let s = match (dialect, ty) {
        (Dialect::Postgres, FieldType::Json | FieldType::Array(_)) => {
            #[cfg(feature = "postgres")]
            if let Some(v) = pg_json(row, i) {
                return v;
            }
            return Ok(opt(get::<serde_json::Value>(row, i)?, Value::from_json));
        }
        (Dialect::Sqlite, FieldType::Json | FieldType::Array(_)) => {
            return json_text(get::<String>(row, i)?);
        }
        (_, FieldType::Scalar(s)) => s,
    };
    Ok(match (dialect, s) {
        (_, S::String | S::Enum) => opt(get::<String>(row, i)?, Value::String),
        (_, S::Bool) => opt(get::<bool>(row, i)?, Value::Bool),
        (Dialect::Postgres, S::I16) => opt(get::<i16>(row, i)?, |x| Value::I64(x.into())),
        (Dialect::Postgres, S::I32) => opt(get::<i32>(row, i)?, |x| Value::I64(x.into())),
        (_, S::I16 | S::I32 | S::I64) => opt(get::<i64>(row, i)?, Value::I64),
        (Dialect::Postgres, S::F32) => opt(get::<f32>(row, i)?, |x| Value::F64(x.into())),
        (_, S::F32 | S::F64) => opt(get::<f64>(row, i)?, Value::F64),
        (Dialect::Postgres, S::Uuid) => opt(get::<uuid::Uuid>(row, i)?, Value::Uuid),
        (Dialect::Postgres, S::DateTime) => opt(
            get::<chrono::DateTime<chrono::Utc>>(row, i)?,
            Value::DateTime,
        ),
        (Dialect::Postgres, S::Date) => opt(get::<chrono::NaiveDate>(row, i)?, Value::Date),
        (Dialect::Postgres, S::Decimal) => {
            opt(get::<rust_decimal::Decimal>(row, i)?, Value::Decimal)
        }
        // SQLite keeps these as text; `Record::from_values` parses them.
        (Dialect::Sqlite, S::Uuid | S::DateTime | S::Date | S::Decimal) => {
            opt(get::<String>(row, i)?, Value::String)
        }
        (_, S::Bytes) => opt(get::<Vec<u8>>(row, i)?, Value::Bytes),
        (_, other) => return Err(unsupported(other)),
    })
}

fn has_nul(v: &Value) -> bool {
    match v {
        Value::String(s) => s.contains('\0'),
        Value::Array(a) => a.iter().any(has_nul),
        Value::Object(o) => o.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
        _ => false,
    }
}

/// Convert entity `i` to a checked record (version 1 for versioned entities).
pub(crate) fn checked_record<E: Entity>(
    dialect: Dialect,
    i: usize,
    mut entity: E,
) -> Result<Record> {
    let meta = E::meta();
    let row_err = |m: &str| {
        Error::invalid_input(format!("row {i}: {m}")).in_context(meta.name, "bulk_insert")
    };
    if meta.version_index.is_some() {
        entity.set_version(1);
    }
    let mut record = Record::from_entity(&entity).map_err(|e| row_err(e.message()))?;
    // As a single insert stores them: truncated toward the past.
    record.fit_timestamps(persistence_core::TimestampPrecision::Micros);
    for (f, v) in meta.fields.iter().zip(&record.values) {
        if v.is_null() && !f.nullable {
            return Err(row_err(&format!("field `{}` is required", f.name)));
        }
        if dialect == Dialect::Postgres && has_nul(v) {
            return Err(row_err(&format!(
                "field `{}` contains a NUL character",
                f.name
            )));
        }
    }
    Ok(record)
}

/// Deserialize an entity from its field values (in `meta.fields` order, normalized).
pub(crate) fn entity<E: DeserializeOwned>(
    meta: &'static EntityMeta,
    values: Vec<Value>,
) -> Result<E> {
    // Keyed as serde writes the fields (`#[entity(column)]` may differ).
    let fields = meta
        .fields
        .iter()
        .enumerate()
        .zip(values)
        .map(|((i, f), v)| (meta.serde_key(i), Named(f.name, ValueDe(v))));
    E::deserialize(MapDeserializer::<_, DeError>::new(fields)).map_err(|e| {
        Error::decode(format!("cannot decode {}: {e}", meta.name)).with_entity(meta.name)
    })
}

/// Deserialize an entity straight from a row (columns in `meta.fields`
/// order): each field is decoded when serde asks for it, with no vector of
/// values or [`Record`] in between. Decodes exactly as
/// `entity(meta, Record::from_values(meta, decoded)?.values)` does, with the
/// same errors.
pub(crate) fn entity_from_row<E: DeserializeOwned>(
    meta: &'static EntityMeta,
    dialect: Dialect,
    row: &QueryResult,
) -> Result<E> {
    let failed = Cell::new(None);
    let fields = meta.fields.iter().enumerate().map(|(i, f)| {
        let column = Column {
            row,
            dialect,
            meta,
            i,
            failed: &failed,
        };
        (meta.serde_key(i), Named(f.name, column))
    });
    let out = E::deserialize(MapDeserializer::<_, DeError>::new(fields));
    if let Some(e) = failed.take() {
        return Err(e);
    }
    out.map_err(|e| {
        Error::decode(format!("cannot decode {}: {e}", meta.name)).with_entity(meta.name)
    })
}

/// Field `i` of a row, read when serde asks for it. A read error is kept in
/// `failed` (serde's errors are strings) and reported as it is.
struct Column<'r> {
    row: &'r QueryResult,
    dialect: Dialect,
    meta: &'static EntityMeta,
    i: usize,
    failed: &'r Cell<Option<Error>>,
}

impl Column<'_> {
    fn read(&self) -> Result<Value> {
        let (meta, f) = (self.meta, &self.meta.fields[self.i]);
        let v = decode(self.dialect, f.ty, self.row, self.i).map_err(|e| {
            Error::decode(format!("field `{}`: {}", f.name, e.message()))
                .with_entity(meta.name)
                .with_source(e)
        })?;
        // PostgreSQL scalars come back as exactly their field's type
        // (`decode` reads each by its type), so normalizing is the identity.
        if self.dialect == Dialect::Postgres && matches!(f.ty, FieldType::Scalar(_)) {
            return Ok(v);
        }
        v.normalize(f.ty)
            .map_err(|e| Error::decode(format!("{}.{}: {}", meta.name, f.name, e.message())))
    }

    fn value(&self) -> Result<ValueDe, DeError> {
        match self.read() {
            Ok(v) => Ok(ValueDe(v)),
            Err(e) => {
                let message = de::Error::custom(e.message());
                self.failed.set(Some(e));
                Err(message)
            }
        }
    }
}

/// A PostgreSQL scalar column handed straight to the visitor: what
/// `ValueDe(decode(..)).deserialize_any(visitor)` does for the types read
/// here, without the [`Value`] and sea-orm's `TryGetable` in between (a
/// fifth of the time of loading a few thousand rows). `Err(visitor)` when
/// this is not such a column or reading it failed: the caller then takes
/// the general path, which reads the column again and reports the error.
#[cfg(feature = "postgres")]
fn pg_scalar<'de, V: Visitor<'de>>(
    column: &Column<'_>,
    visitor: V,
) -> std::result::Result<Result<V::Value, DeError>, V> {
    use sea_orm::sqlx::Row as _;
    use sea_orm::sqlx::postgres::PgRow;
    /// Column `i` read as a `T` and given to `some` (NULL: `visit_none`);
    /// the visitor back when it cannot be read as a `T`.
    fn visit<'de, T, V: Visitor<'de>>(
        row: &PgRow,
        i: usize,
        visitor: V,
        some: impl FnOnce(V, T) -> Result<V::Value, DeError>,
    ) -> std::result::Result<Result<V::Value, DeError>, V>
    where
        T: for<'r> sea_orm::sqlx::Decode<'r, sea_orm::sqlx::Postgres>
            + sea_orm::sqlx::Type<sea_orm::sqlx::Postgres>,
    {
        match row.try_get::<Option<T>, usize>(i) {
            Ok(Some(x)) => Ok(some(visitor, x)),
            Ok(None) => Ok(visitor.visit_none()),
            Err(_) => Err(visitor),
        }
    }
    use ScalarType as S;
    let FieldType::Scalar(s) = column.meta.fields[column.i].ty else {
        return Err(visitor);
    };
    let Some(row) = column.row.try_as_pg_row() else {
        return Err(visitor);
    };
    let i = column.i;
    // Each arm is the `decode` arm of its type, then `ValueDe`'s visit.
    match s {
        S::I64 => visit(row, i, visitor, |v, x: i64| v.visit_i64(x)),
        S::I32 => visit(row, i, visitor, |v, x: i32| v.visit_i64(x.into())),
        S::I16 => visit(row, i, visitor, |v, x: i16| v.visit_i64(x.into())),
        S::String | S::Enum => visit(row, i, visitor, |v, x: String| v.visit_string(x)),
        S::Bool => visit(row, i, visitor, |v, x: bool| v.visit_bool(x)),
        S::F64 => visit(row, i, visitor, |v, x: f64| v.visit_f64(x)),
        S::F32 => visit(row, i, visitor, |v, x: f32| v.visit_f64(x.into())),
        // The text `ValueDe` gives these (serde has no timestamp, date, uuid
        // or decimal: their `Deserialize` impls read a string), from the
        // driver's binary value without the `Value` in between.
        S::DateTime => visit(row, i, visitor, |v, x: chrono::DateTime<chrono::Utc>| {
            v.visit_string(x.to_rfc3339_opts(SecondsFormat::AutoSi, true))
        }),
        S::Date => visit(row, i, visitor, |v, x: chrono::NaiveDate| {
            v.visit_string(x.to_string())
        }),
        S::Uuid => visit(row, i, visitor, |v, x: uuid::Uuid| {
            let mut buf = uuid::Uuid::encode_buffer();
            v.visit_str(x.hyphenated().encode_lower(&mut buf))
        }),
        S::Decimal => visit(row, i, visitor, |v, x: rust_decimal::Decimal| {
            v.visit_string(x.to_string())
        }),
        _ => Err(visitor),
    }
}

/// Whether column `i` of a PostgreSQL row is NULL (`None`: not a
/// PostgreSQL row, or no such column; the caller takes the general path).
#[cfg(feature = "postgres")]
fn pg_is_null(row: &QueryResult, i: usize) -> Option<bool> {
    use sea_orm::sqlx::{Row as _, ValueRef as _};
    let raw = row.try_as_pg_row()?.try_get_raw(i).ok()?;
    Some(raw.is_null())
}

impl<'de> de::Deserializer<'de> for Column<'_> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        #[cfg(feature = "postgres")]
        let visitor = if self.dialect == Dialect::Postgres {
            match pg_scalar(&self, visitor) {
                Ok(out) => return out,
                Err(visitor) => visitor,
            }
        } else {
            visitor
        };
        self.value()?.deserialize_any(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        // A PostgreSQL scalar: NULL is `None`, anything else is read by
        // `deserialize_any`'s direct path (what `ValueDe` does, without
        // building the `Value` first).
        #[cfg(feature = "postgres")]
        if self.dialect == Dialect::Postgres
            && matches!(self.meta.fields[self.i].ty, FieldType::Scalar(_))
        {
            match pg_is_null(self.row, self.i) {
                Some(true) => return visitor.visit_none(),
                Some(false) => return visitor.visit_some(self),
                None => {}
            }
        }
        self.value()?.deserialize_option(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.value()?.deserialize_newtype_struct(name, visitor)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.value()?.deserialize_enum(name, variants, visitor)
    }

    forward_to_deserialize_any! {
        bool u8 u16 u32 u64 i8 i16 i32 i64 i128 u128 f32 f64 char str string unit
        seq bytes byte_buf map unit_struct tuple_struct struct tuple ignored_any identifier
    }
}

/// A top-level field's value: an error while deserializing it names the field.
struct Named<D>(&'static str, D);

/// Prefix an error with the field it is about.
fn named(name: &'static str) -> impl FnOnce(DeError) -> DeError {
    move |e| de::Error::custom(format_args!("field `{name}`: {e}"))
}

impl<'de, D: de::Deserializer<'de, Error = DeError>> IntoDeserializer<'de, DeError> for Named<D> {
    type Deserializer = Self;
    fn into_deserializer(self) -> Self {
        self
    }
}

impl<'de, D: de::Deserializer<'de, Error = DeError>> de::Deserializer<'de> for Named<D> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let named = named(self.0);
        self.1.deserialize_any(visitor).map_err(named)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let named = named(self.0);
        self.1.deserialize_option(visitor).map_err(named)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        let named = named(self.0);
        self.1
            .deserialize_newtype_struct(name, visitor)
            .map_err(named)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        let named = named(self.0);
        self.1
            .deserialize_enum(name, variants, visitor)
            .map_err(named)
    }

    forward_to_deserialize_any! {
        bool u8 u16 u32 u64 i8 i16 i32 i64 i128 u128 f32 f64 char str string unit
        seq bytes byte_buf map unit_struct tuple_struct struct tuple ignored_any identifier
    }
}

/// One value, presented as `Record::into_entity` presents it.
struct ValueDe(Value);

impl<'de> IntoDeserializer<'de, DeError> for ValueDe {
    type Deserializer = Self;
    fn into_deserializer(self) -> Self {
        self
    }
}

impl<'de> de::Deserializer<'de> for ValueDe {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.0 {
            Value::Null => visitor.visit_none(),
            Value::Bool(b) => visitor.visit_bool(b),
            Value::I64(i) => visitor.visit_i64(i),
            Value::F64(x) => visitor.visit_f64(x),
            Value::String(s) => visitor.visit_string(s),
            Value::Bytes(b) => visitor.visit_seq(SeqDeserializer::new(b.into_iter())),
            Value::Uuid(u) => {
                let mut buf = uuid::Uuid::encode_buffer();
                visitor.visit_str(u.hyphenated().encode_lower(&mut buf))
            }
            Value::DateTime(d) => {
                visitor.visit_string(d.to_rfc3339_opts(SecondsFormat::AutoSi, true))
            }
            Value::Date(d) => visitor.visit_string(d.to_string()),
            Value::Decimal(d) => visitor.visit_string(d.to_string()),
            Value::Array(a) => visitor.visit_seq(SeqDeserializer::new(a.into_iter().map(ValueDe))),
            Value::Object(o) => visitor.visit_map(MapDeserializer::new(
                o.into_iter().map(|(k, v)| (k, ValueDe(v))),
            )),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.0 {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        match self.0 {
            Value::String(variant) => visitor.visit_enum(Enum {
                variant,
                value: None,
            }),
            Value::Object(o) if o.len() == 1 => {
                let Some((variant, value)) = o.into_iter().next() else {
                    return Err(de::Error::custom("map with a single key"));
                };
                visitor.visit_enum(Enum {
                    variant,
                    value: Some(value),
                })
            }
            _ => Err(de::Error::custom(
                "an enum must be a string or a map with a single key",
            )),
        }
    }

    forward_to_deserialize_any! {
        bool u8 u16 u32 u64 i8 i16 i32 i64 i128 u128 f32 f64 char str string unit
        seq bytes byte_buf map unit_struct tuple_struct struct tuple ignored_any identifier
    }
}

struct Enum {
    variant: String,
    value: Option<Value>,
}

impl<'de> EnumAccess<'de> for Enum {
    type Error = DeError;
    type Variant = Variant;

    fn variant_seed<S: DeserializeSeed<'de>>(
        self,
        seed: S,
    ) -> Result<(S::Value, Variant), DeError> {
        let v = seed.deserialize(self.variant.into_deserializer())?;
        Ok((v, Variant(self.value)))
    }
}

struct Variant(Option<Value>);

impl<'de> VariantAccess<'de> for Variant {
    type Error = DeError;

    fn unit_variant(self) -> Result<(), DeError> {
        match self.0 {
            None => Ok(()),
            Some(v) => de::Deserialize::deserialize(ValueDe(v)),
        }
    }

    fn newtype_variant_seed<S: DeserializeSeed<'de>>(self, seed: S) -> Result<S::Value, DeError> {
        match self.0 {
            Some(v) => seed.deserialize(ValueDe(v)),
            None => Err(de::Error::invalid_type(
                de::Unexpected::UnitVariant,
                &"newtype variant",
            )),
        }
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, DeError> {
        match self.0 {
            Some(Value::Array(a)) => {
                visitor.visit_seq(SeqDeserializer::new(a.into_iter().map(ValueDe)))
            }
            _ => Err(de::Error::invalid_type(
                de::Unexpected::UnitVariant,
                &"tuple variant",
            )),
        }
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        match self.0 {
            Some(Value::Object(o)) => visitor.visit_map(MapDeserializer::new(
                o.into_iter().map(|(k, v)| (k, ValueDe(v))),
            )),
            _ => Err(de::Error::invalid_type(
                de::Unexpected::UnitVariant,
                &"struct variant",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use chrono::{TimeZone, Utc};
    use persistence_core::{Entity, Record};
    use serde::{Deserialize, Serialize};

    #[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
    enum Kind {
        A,
        B,
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    enum Shape {
        Dot,
        Circle(f64),
        Rect { w: i64, h: i64 },
        Pair(i64, String),
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct Inner {
        city: Option<String>,
        at: chrono::DateTime<Utc>,
        shape: Shape,
        ids: Vec<uuid::Uuid>,
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, persistence_core::Entity)]
    #[entity(name = "de_things")]
    struct Thing {
        #[entity(id)]
        id: uuid::Uuid,
        name: Option<String>,
        small: i16,
        ratio: f32,
        score: f64,
        flag: bool,
        amount: rust_decimal::Decimal,
        at: chrono::DateTime<Utc>,
        day: Option<chrono::NaiveDate>,
        bytes: Vec<u8>,
        kind: Kind,
        tags: Vec<String>,
        inner: Option<Inner>,
        attrs: BTreeMap<String, i64>,
        shapes: Vec<Shape>,
    }

    fn sample(i: i64) -> Thing {
        let at = Utc
            .timestamp_opt(1_700_000_000 + i, 123_456_000)
            .single()
            .expect("ts");
        Thing {
            id: uuid::Uuid::from_u128(0xabcdef + i as u128),
            name: (i % 2 == 0).then(|| format!("n{i}")),
            small: -3,
            ratio: 1.0 / 3.0,
            score: -0.0,
            flag: true,
            amount: rust_decimal::Decimal::new(12_345 + i, 2),
            at,
            day: chrono::NaiveDate::from_ymd_opt(-44, 3, 15),
            bytes: vec![0, 1, 255],
            kind: if i % 2 == 0 { Kind::A } else { Kind::B },
            tags: vec!["x".into(), "y".into()],
            inner: (i % 3 != 0).then(|| Inner {
                city: None,
                at,
                shape: Shape::Rect { w: 2, h: 3 },
                ids: vec![uuid::Uuid::from_u128(7)],
            }),
            attrs: [("k".to_string(), i)].into_iter().collect(),
            shapes: vec![Shape::Dot, Shape::Circle(1.5), Shape::Pair(1, "p".into())],
        }
    }

    #[test]
    fn decodes_like_record_into_entity() {
        for i in 0..6 {
            let t = sample(i);
            let record = Record::from_entity(&t).expect("record");
            let via_core: Thing = record.clone().into_entity().expect("core");
            let direct: Thing = super::entity(Thing::meta(), record.values).expect("direct");
            assert_eq!(direct, via_core);
            assert_eq!(direct, t);
        }
    }

    #[test]
    fn type_errors_are_decode_errors() {
        let mut record = Record::from_entity(&sample(1)).expect("record");
        record.values[2] = persistence_core::Value::String("not a number".into());
        let e = super::entity::<Thing>(Thing::meta(), record.values).expect_err("bad");
        assert_eq!(e.kind(), &persistence_core::ErrorKind::Decode, "{e:?}");
        assert!(e.message().contains("field `small`"), "{e}");
        assert!(e.message().contains("de_things"), "{e}");
        let mut record = Record::from_entity(&sample(1)).expect("record");
        record.values[10] = persistence_core::Value::String("C".into());
        let e = super::entity::<Thing>(Thing::meta(), record.values).expect_err("bad");
        assert!(
            e.message().contains("field `kind`: unknown variant `C`"),
            "{e}"
        );
    }

    /// JSON columns parsed straight into field values give what the
    /// `serde_json::Value` route gives, for every kind of JSON value.
    #[test]
    fn json_parses_like_from_json() {
        let docs = [
            "null",
            "true",
            "0",
            "-1",
            "9223372036854775807",
            "9223372036854775808",
            "18446744073709551615",
            "-9223372036854775808",
            "1.0",
            "-0.0",
            "1e300",
            "0.1",
            "-1.5e-7",
            r#""a\"b\u00e9""#,
            "[]",
            "{}",
            "[1, 2.5, -3, 0.125, 1e2]",
            r#"{"b": [1, {"c": null}], "a": "x", "a": "y", "": 1.5}"#,
            r#"[[[]], {"k": [true, false]}, "s", null]"#,
        ];
        for doc in docs {
            let want = persistence_core::Value::from_json(
                serde_json::from_str::<serde_json::Value>(doc).expect("json"),
            );
            let got = super::json_text(Some(doc.to_string())).expect("parse");
            assert_eq!(got, want, "{doc}");
        }
        let e = super::json_text(Some("[1,".into())).expect_err("truncated");
        assert_eq!(e.kind(), &persistence_core::ErrorKind::Decode, "{e:?}");
        assert_eq!(
            super::json_text(None).expect("null"),
            persistence_core::Value::Null
        );
    }
}
