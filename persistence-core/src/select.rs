//! Projections and distinct values: the checks every backend applies to
//! `select`/`distinct` arguments, the shared result rules (a projected row
//! is a [`Value::Object`] of the asked fields; distinct values ascending
//! by [`Value::total_cmp`], null last), and the typed forms
//! [`SelectExt::select_as`] and [`SelectExt::distinct_of`].
//!
//! The typed projection takes its field names from the target struct
//! itself: a tiny recording [`serde::Deserializer`] asks `P::deserialize`
//! for its field list (serde passes it to `deserialize_struct`) and stops.
//! That is a dozen lines over serde's stable API and needs no extra crate
//! (`serde_aux`'s `serde_introspect` does the same trick, but would add a
//! dependency for one function). The rows are then decoded into `P` by the
//! same value → serde path `Record::into_entity` uses.
//!
//! ```
//! use persistence_core::{Entity, Filter, MemoryRepository, Query, Repository, SelectExt, StringField};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
//! struct User { #[entity(id)] id: i64, email: String, city: Option<String> }
//!
//! #[derive(Debug, PartialEq, Deserialize)]
//! struct Contact { id: i64, email: String }
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let users = MemoryRepository::<User>::new();
//! users.insert(&User { id: 1, email: "Ann@X.io".into(), city: Some("Oslo".into()) }).await?;
//! users.insert(&User { id: 2, email: "bo@x.io".into(), city: None }).await?;
//! // Reads only `id` and `email`, matching the e-mail ignoring case.
//! let found: Vec<Contact> = users
//!     .select_as(&Query::filter(User::EMAIL.eq_ignore_case("ann@x.io")))
//!     .await?;
//! assert_eq!(found, [Contact { id: 1, email: "Ann@X.io".into() }]);
//! // Distinct values, ascending, null last.
//! let cities = users.distinct_of(&User::CITY, &Filter::all()).await?;
//! assert_eq!(cities, [Some("Oslo".to_string()), None]);
//! // An unknown field is InvalidInput.
//! assert!(users.select(&Query::all(), &["nope"]).await.is_err());
//! # Ok::<(), persistence_core::Error>(())
//! # }).unwrap();
//! ```

use std::cmp::Ordering;
use std::future::Future;

use serde::de::DeserializeOwned;

use crate::entity::{Entity, EntityMeta, FieldType};
use crate::error::{Error, Result};
use crate::filter::{Field, Filter};
use crate::query::Query;
use crate::repository::Repository;
use crate::value::{NamedField, Record, Value};

/// The fields a `select` asks for, checked against `meta`: every name must
/// be a stored (top-level) field name of the entity. Returns each field's
/// index and name, in the order asked, duplicates collapsed. An empty list,
/// an unknown field or a nested path is `InvalidInput` naming it.
pub fn check_select(meta: &EntityMeta, fields: &[&str]) -> Result<Vec<(usize, &'static str)>> {
    if fields.is_empty() {
        return Err(Error::invalid_input(format!(
            "select on {} needs at least one field",
            meta.name
        )));
    }
    let mut out: Vec<(usize, &'static str)> = Vec::with_capacity(fields.len());
    for name in fields {
        let (i, f) = field_of(meta, name, "select")?;
        if !out.iter().any(|(j, _)| *j == i) {
            out.push((i, f));
        }
    }
    Ok(out)
}

/// The field a `distinct` reads, checked against `meta`: a stored
/// (top-level) field of a scalar type. Unknown fields, nested paths, array
/// and JSON fields are `InvalidInput`.
pub fn check_distinct(meta: &EntityMeta, field: &str) -> Result<(usize, &'static str)> {
    let (i, name) = field_of(meta, field, "distinct")?;
    match meta.fields[i].ty {
        FieldType::Scalar(_) => Ok((i, name)),
        other => Err(Error::invalid_input(format!(
            "distinct needs a scalar field; `{name}` on {} is {other:?}",
            meta.name
        ))),
    }
}

fn field_of(meta: &EntityMeta, name: &str, op: &str) -> Result<(usize, &'static str)> {
    match meta.field(name) {
        Some((i, f)) => Ok((i, f.name)),
        None => Err(Error::invalid_input(format!(
            "{op}: unknown field `{}` on {} (stored field names only, no nested paths)",
            name.escape_debug(),
            meta.name
        ))),
    }
}

/// The projected row of `record`: an object of the asked fields.
pub fn project(record: &Record, fields: &[(usize, &'static str)]) -> Value {
    Value::Object(
        fields
            .iter()
            .map(|(i, name)| ((*name).to_string(), record.get(*i).clone()))
            .collect(),
    )
}

/// A projected row decoded from a backend: the values of `fields` (same
/// order), each normalized to its field's type.
pub fn project_values(
    meta: &EntityMeta,
    fields: &[(usize, &'static str)],
    values: Vec<Value>,
) -> Result<Value> {
    let mut out = std::collections::BTreeMap::new();
    for ((i, name), v) in fields.iter().zip(values) {
        let v = v
            .normalize(meta.fields[*i].ty)
            .map_err(|e| Error::decode(format!("{}.{name}: {}", meta.name, e.message())))?;
        out.insert((*name).to_string(), v);
    }
    Ok(Value::Object(out))
}

/// Put distinct values in the one order every backend returns: ascending by
/// [`Value::total_cmp`], null last, equal values (`0.0`/`-0.0`) once.
pub fn sort_distinct(values: &mut Vec<Value>) {
    values.sort_by(|a, b| match (a.is_null(), b.is_null()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        _ => a.total_cmp(b),
    });
    values.dedup_by(|a, b| a.total_cmp(b) == Ordering::Equal);
}

/// The serde field names of struct `P` (its `deserialize_struct` list).
pub fn struct_fields<P: DeserializeOwned>() -> Result<&'static [&'static str]> {
    let mut fields: Option<&'static [&'static str]> = None;
    // The recorder always stops `deserialize` with an error; what matters is
    // what it recorded.
    let _ = P::deserialize(FieldRecorder(&mut fields));
    fields.ok_or_else(|| {
        Error::invalid_input(format!(
            "select_as: {} is not a plain struct with named fields",
            std::any::type_name::<P>()
        ))
    })
}

struct FieldRecorder<'a>(&'a mut Option<&'static [&'static str]>);

impl<'de> serde::Deserializer<'de> for FieldRecorder<'_> {
    type Error = serde::de::value::Error;

    fn deserialize_any<V: serde::de::Visitor<'de>>(
        self,
        _: V,
    ) -> std::result::Result<V::Value, Self::Error> {
        Err(serde::de::Error::custom("not a struct"))
    }

    fn deserialize_struct<V: serde::de::Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        _: V,
    ) -> std::result::Result<V::Value, Self::Error> {
        *self.0 = Some(fields);
        Err(serde::de::Error::custom("field names recorded"))
    }

    serde::forward_to_deserialize_any! {
        bool u8 u16 u32 u64 i8 i16 i32 i64 i128 u128 f32 f64 char str string unit option
        seq bytes byte_buf map unit_struct newtype_struct tuple_struct tuple enum
        ignored_any identifier
    }
}

/// Decode a projected row (an object keyed by stored field name) into `P`,
/// the way `Record::into_entity` decodes an entity.
pub fn decode_row<P: DeserializeOwned>(
    meta: &EntityMeta,
    fields: &[(usize, &'static str)],
    row: Value,
) -> Result<P> {
    let Value::Object(mut map) = row else {
        return Err(Error::decode(format!(
            "{}: a projected row is not an object",
            meta.name
        )));
    };
    let items = fields.iter().map(|(_, name)| {
        let v = map.remove(*name).unwrap_or(Value::Null);
        (*name, NamedField(name, v.into_serde_value()))
    });
    P::deserialize(serde::de::value::MapDeserializer::<
        _,
        serde_value::DeserializerError,
    >::new(items))
    .map_err(|e| {
        Error::decode(format!(
            "cannot decode {} row into {}: {e}",
            meta.name,
            std::any::type_name::<P>()
        ))
        .with_entity(meta.name)
    })
}

/// Decode one distinct value into the field's Rust type.
pub fn decode_value<T: DeserializeOwned>(meta: &EntityMeta, field: &str, v: Value) -> Result<T> {
    T::deserialize(serde_value::ValueDeserializer::<
        serde_value::DeserializerError,
    >::new(v.into_serde_value()))
    .map_err(|e| {
        Error::decode(format!("cannot decode {}.{field}: {e}", meta.name)).with_entity(meta.name)
    })
}

/// Typed projections and distinct values over any [`Repository`].
pub trait SelectExt<E: Entity>: Repository<E> {
    /// The rows matching `query`, each decoded into `P`, a serde struct
    /// whose field names (serde's, i.e. the stored names) are a subset of
    /// the entity's fields: only those are read. A field of `P` the entity
    /// does not have is `InvalidInput`.
    fn select_as<P: DeserializeOwned + Send>(
        &self,
        query: &Query,
    ) -> impl Future<Output = Result<Vec<P>>> + Send {
        async move {
            let meta = E::meta();
            let names = struct_fields::<P>()?;
            let fields = check_select(meta, names)?;
            let rows = self.select(query, names).await?;
            rows.into_iter()
                .map(|r| decode_row::<P>(meta, &fields, r))
                .collect()
        }
    }

    /// The distinct values of `field` among the rows matching `filter`,
    /// ascending, null (`None`) last. See [`Repository::distinct`].
    fn distinct_of<T: DeserializeOwned + Send>(
        &self,
        field: &Field<E, T>,
        filter: &Filter,
    ) -> impl Future<Output = Result<Vec<T>>> + Send {
        async move {
            let meta = E::meta();
            let values = self.distinct(field.path(), filter).await?;
            values
                .into_iter()
                .map(|v| decode_value::<T>(meta, field.path(), v))
                .collect()
        }
    }
}

impl<E: Entity, R: Repository<E> + ?Sized> SelectExt<E> for R {}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize)]
    #[allow(dead_code)]
    struct P {
        a: i64,
        #[serde(rename = "bee")]
        b: Option<String>,
    }

    #[test]
    fn records_struct_fields_and_sorts_nulls_last() {
        assert_eq!(struct_fields::<P>().unwrap(), &["a", "bee"]);
        assert!(struct_fields::<i64>().is_err());
        let mut v = vec![
            Value::Null,
            Value::I64(3),
            Value::F64(-0.0),
            Value::I64(1),
            Value::F64(0.0),
            Value::Null,
        ];
        sort_distinct(&mut v);
        assert_eq!(v.len(), 4);
        assert!(v[3].is_null());
        assert_eq!(v[2], Value::I64(3));
    }
}
