//! [`Record`]: one entity taken apart into a [`Value`] per field, and back;
//! and [`TimestampPrecision`], to which a backend fits a record's timestamps
//! before writing (a leaf here so that values need not know repositories).

use crate::entity::{Entity, EntityMeta, ResolvedPath, VectorSpec};
use crate::error::{Error, Result};

use super::{Value, from_serde_value};

/// Timestamp precision a backend keeps.
///
/// Every backend truncates the timestamps of an entity's fields to its
/// precision *toward the past* before writing (see
/// [`Record::fit_timestamps`](crate::Record::fit_timestamps)), and the
/// entity a write returns carries the truncated values, exactly what a later
/// `get` reads. Timestamps inside nested structs and maps are JSON strings
/// and are kept as serde wrote them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TimestampPrecision {
    /// Microseconds (PostgreSQL, SQLite as text, memory).
    Micros,
    /// Milliseconds (BSON dates).
    Millis,
}

impl TimestampPrecision {
    /// `t` truncated toward the past to this precision
    /// (`1969-12-31T23:59:59.9999995Z` becomes `…59.999999Z` in microseconds).
    pub fn truncate(self, t: chrono::DateTime<chrono::Utc>) -> chrono::DateTime<chrono::Utc> {
        use chrono::Timelike as _;
        let unit = match self {
            TimestampPrecision::Micros => 1_000,
            TimestampPrecision::Millis => 1_000_000,
        };
        // chrono keeps the sub-second part as a non-negative count of
        // nanoseconds (a leap second is 1_000_000_000..2_000_000_000), so
        // rounding it down is rounding toward the past.
        let ns = t.nanosecond();
        t.with_nanosecond(ns - ns % unit).unwrap_or(t)
    }
}

/// A vector field's value against its declaration (null passes: the
/// field's nullability is checked like any other field's).
fn check_vector(spec: &VectorSpec, field: &str, v: &Value) -> Result<()> {
    let Value::Array(items) = v else {
        return Ok(());
    };
    let mut comps = Vec::with_capacity(items.len());
    for x in items {
        #[allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)]
        comps.push(match x {
            Value::F64(f) if f.is_finite() && f.abs() > f64::from(f32::MAX) => f32::INFINITY,
            Value::F64(f) => *f as f32,
            Value::I64(i) => *i as f32,
            _ => f32::NAN,
        });
    }
    spec.check(&format!("field `{field}`"), &comps)
}

/// One entity taken apart: a value per field, in [`EntityMeta::fields`] order.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    /// The values, aligned with the metadata's fields.
    pub values: Vec<Value>,
}

impl Record {
    /// Take an entity apart (serialize, then normalize every field by its type).
    pub fn from_entity<E: Entity>(entity: &E) -> Result<Record> {
        let meta = E::meta();
        let v = serde_value::to_value(entity)
            .map_err(|e| Error::invalid_input(format!("cannot serialize {}: {e}", meta.name)))?;
        let serde_value::Value::Map(mut map) = v else {
            return Err(Error::invalid_input(format!(
                "{} must serialize as a struct",
                meta.name
            )));
        };
        let mut values = Vec::with_capacity(meta.fields.len());
        for (i, f) in meta.fields.iter().enumerate() {
            let raw = map
                .remove(&serde_value::Value::String(meta.serde_key(i).to_string()))
                .map(from_serde_value)
                .transpose()?
                .unwrap_or(Value::Null);
            let v = raw.normalize(f.ty).map_err(|e| {
                Error::invalid_input(format!("field `{}`: {}", f.name, e.message()))
            })?;
            if let Some(vf) = meta.vectors.iter().find(|v| v.index == i) {
                check_vector(&vf.spec, f.name, &v)?;
            }
            values.push(v);
        }
        Ok(Record { values })
    }

    /// Build a record from values read from a backend, checking the count and normalizing each.
    pub fn from_values(meta: &EntityMeta, values: Vec<Value>) -> Result<Record> {
        if values.len() != meta.fields.len() {
            return Err(Error::decode(format!(
                "{}: expected {} columns, got {}",
                meta.name,
                meta.fields.len(),
                values.len()
            )));
        }
        let values = values
            .into_iter()
            .zip(&meta.fields)
            .map(|(v, f)| {
                v.normalize(f.ty).map_err(|e| {
                    Error::decode(format!("{}.{}: {}", meta.name, f.name, e.message()))
                })
            })
            .collect::<Result<_>>()?;
        Ok(Record { values })
    }

    /// Truncate every timestamp of a timestamp field (and of an array of
    /// timestamps) toward the past to `precision`, as the backend that keeps
    /// that precision stores it. Returns whether a value changed (the
    /// entity the record came from then differs from what is stored).
    /// Timestamps inside JSON fields are strings and are not touched.
    pub fn fit_timestamps(&mut self, precision: TimestampPrecision) -> bool {
        fn fit(v: &mut Value, p: TimestampPrecision) -> bool {
            match v {
                Value::DateTime(t) => {
                    let fitted = p.truncate(*t);
                    let changed = fitted != *t;
                    *t = fitted;
                    changed
                }
                Value::Array(items) => items.iter_mut().fold(false, |c, x| fit(x, p) | c),
                _ => false,
            }
        }
        self.values
            .iter_mut()
            .fold(false, |changed, v| fit(v, precision) | changed)
    }

    /// The value of field `index`.
    pub fn get(&self, index: usize) -> &Value {
        self.values.get(index).unwrap_or(&Value::Null)
    }

    /// Resolve a dotted path (`profile.address.city`) inside this record.
    pub fn get_path(&self, meta: &EntityMeta, path: &ResolvedPath<'_>) -> Value {
        let _ = meta;
        self.path_ref(path).clone()
    }

    /// Like [`Record::get_path`], without cloning.
    pub fn path_ref(&self, path: &ResolvedPath<'_>) -> &Value {
        const NULL: &Value = &Value::Null;
        let mut v = self.get(path.index);
        for seg in &path.rest {
            match v {
                Value::Object(o) => match o.get(*seg) {
                    Some(x) => v = x,
                    None => return NULL,
                },
                _ => return NULL,
            }
        }
        v
    }

    /// Rebuild the entity.
    pub fn into_entity<E: Entity>(self) -> Result<E> {
        let meta = E::meta();
        let fields = meta
            .fields
            .iter()
            .zip(self.values)
            .enumerate()
            .map(|(i, (f, v))| (meta.serde_key(i), NamedField(f.name, v.into_serde_value())));
        E::deserialize(serde::de::value::MapDeserializer::<
            _,
            serde_value::DeserializerError,
        >::new(fields))
        .map_err(|e| {
            Error::decode(format!("cannot decode {}: {e}", meta.name)).with_entity(meta.name)
        })
    }
}

/// A field's value while an entity is rebuilt: an error in it names the field.
pub(crate) struct NamedField(pub(crate) &'static str, pub(crate) serde_value::Value);

impl NamedField {
    fn parts(
        self,
    ) -> (
        serde_value::ValueDeserializer<serde_value::DeserializerError>,
        impl FnOnce(serde_value::DeserializerError) -> serde_value::DeserializerError,
    ) {
        let name = self.0;
        (serde_value::ValueDeserializer::new(self.1), move |e| {
            serde::de::Error::custom(format_args!("field `{name}`: {e}"))
        })
    }
}

impl<'de> serde::de::IntoDeserializer<'de, serde_value::DeserializerError> for NamedField {
    type Deserializer = Self;
    fn into_deserializer(self) -> Self {
        self
    }
}

impl<'de> serde::Deserializer<'de> for NamedField {
    type Error = serde_value::DeserializerError;

    fn deserialize_any<V: serde::de::Visitor<'de>>(
        self,
        visitor: V,
    ) -> std::result::Result<V::Value, Self::Error> {
        let (de, named) = self.parts();
        de.deserialize_any(visitor).map_err(named)
    }

    fn deserialize_option<V: serde::de::Visitor<'de>>(
        self,
        visitor: V,
    ) -> std::result::Result<V::Value, Self::Error> {
        let (de, named) = self.parts();
        de.deserialize_option(visitor).map_err(named)
    }

    fn deserialize_newtype_struct<V: serde::de::Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> std::result::Result<V::Value, Self::Error> {
        let (de, named) = self.parts();
        de.deserialize_newtype_struct(name, visitor).map_err(named)
    }

    fn deserialize_enum<V: serde::de::Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> std::result::Result<V::Value, Self::Error> {
        let (de, named) = self.parts();
        de.deserialize_enum(name, variants, visitor).map_err(named)
    }

    serde::forward_to_deserialize_any! {
        bool u8 u16 u32 u64 i8 i16 i32 i64 i128 u128 f32 f64 char str string unit
        seq bytes byte_buf map unit_struct tuple_struct struct tuple ignored_any identifier
    }
}
