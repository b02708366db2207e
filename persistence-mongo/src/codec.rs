//! Documents ↔ entities: values ↔ BSON, by field type (the codec of the
//! repository, of change events and of aggregation results).
//!
//! Storage choices (one per [`ScalarType`]):
//!
//! | field type | BSON |
//! |---|---|
//! | `String`, unit enums | string |
//! | `bool` | bool |
//! | `i16`, `i32` (`u8`, `u16`) | int32 |
//! | `i64` (`u32`) | int64 |
//! | `f32`, `f64` | double (NaN, ±inf and `-0.0` are kept) |
//! | `Uuid` | binary subtype 4 (the standard UUID subtype, not the legacy subtype 3) |
//! | `DateTime<Utc>` | date (milliseconds since the epoch; sub-millisecond digits are truncated) |
//! | `NaiveDate` | date at midnight UTC |
//! | `Decimal` | decimal128 (scale is kept: `1.50` stays `1.50`) |
//! | `Vec<u8>` | binary subtype 0 |
//! | `Vec<scalar>` | array of the scalar's BSON type |
//! | nested structs, maps, other vectors | sub-documents and arrays of their JSON shape |
//! | `None` | null (the field is always present) |
//!
//! The id field is stored as `_id`; every other field under its serialized name.
//!
//! Documents written by other programs: a `String` field marked
//! `#[entity(object_id)]` is stored as an ObjectId (its value is the
//! 24-digit hex form; filters compare ObjectIds), and reading is lenient
//! where nothing is lost or the field type says what is meant: an ObjectId
//! reads into any `String` field as its hex form, a decimal128 into an
//! `f64` field (nearest double) and a double into a `Decimal` field.

use std::collections::BTreeMap;

use bson::spec::BinarySubtype;
use bson::{Binary, Bson, Document};
use chrono::{NaiveDate, NaiveTime};
use persistence_core::{Entity, EntityMeta, Error, FieldType, Record, Result, ScalarType, Value};
use rust_decimal::Decimal;

/// The BSON key a top-level field is stored under (`_id` for the id).
pub fn stored_name(meta: &EntityMeta, index: usize) -> &'static str {
    if index == meta.id_index {
        "_id"
    } else {
        meta.fields[index].name
    }
}

/// Convert a (normalized) value of a field of type `ty` to BSON.
pub fn to_bson(value: &Value, ty: FieldType) -> Result<Bson> {
    Ok(match (value, ty) {
        (Value::Null, _) => Bson::Null,
        (Value::Array(items), FieldType::Array(s)) => Bson::Array(
            items
                .iter()
                .map(|v| to_bson(v, FieldType::Scalar(s)))
                .collect::<Result<_>>()?,
        ),
        (Value::I64(i), FieldType::Scalar(ScalarType::I16 | ScalarType::I32)) => {
            match i32::try_from(*i) {
                Ok(x) => Bson::Int32(x),
                Err(_) => Bson::Int64(*i),
            }
        }
        (v, _) => generic(v)?,
    })
}

fn generic(value: &Value) -> Result<Bson> {
    Ok(match value {
        Value::Null => Bson::Null,
        Value::Bool(b) => Bson::Boolean(*b),
        Value::I64(i) => Bson::Int64(*i),
        Value::F64(x) => Bson::Double(*x),
        Value::String(s) => Bson::String(s.clone()),
        Value::Bytes(b) => Bson::Binary(Binary {
            subtype: BinarySubtype::Generic,
            bytes: b.clone(),
        }),
        Value::Uuid(u) => Bson::Binary(Binary {
            subtype: BinarySubtype::Uuid,
            bytes: u.as_bytes().to_vec(),
        }),
        Value::DateTime(d) => Bson::DateTime(bson::DateTime::from_chrono(*d)),
        Value::Date(d) => Bson::DateTime(bson::DateTime::from_chrono(
            d.and_time(NaiveTime::MIN).and_utc(),
        )),
        Value::Decimal(d) => {
            Bson::Decimal128(d.to_string().parse().map_err(|_| {
                Error::invalid_input(format!("decimal {d} does not fit decimal128"))
            })?)
        }
        Value::Array(items) => Bson::Array(items.iter().map(generic).collect::<Result<_>>()?),
        Value::Object(o) => {
            let mut doc = Document::new();
            for (k, v) in o {
                doc.insert(k.clone(), generic(v)?);
            }
            Bson::Document(doc)
        }
    })
}

/// The BSON of the value of top-level field `index` (an
/// `#[entity(object_id)]` field's hex string becomes an ObjectId).
pub fn field_to_bson(meta: &EntityMeta, index: usize, value: &Value) -> Result<Bson> {
    match value {
        Value::String(hex) if meta.object_ids.contains(&index) => object_id(hex),
        v => to_bson(v, meta.fields[index].ty),
    }
}

/// The ObjectId of its 24-digit hex form.
pub fn object_id(hex: &str) -> Result<Bson> {
    bson::oid::ObjectId::parse_str(hex)
        .map(Bson::ObjectId)
        .map_err(|_| {
            Error::invalid_input(format!(
                "`{}` is not an ObjectId (24 hex digits)",
                hex.chars().take(40).collect::<String>().escape_default()
            ))
        })
}

/// The stored document of an entity record.
pub fn to_document(meta: &EntityMeta, record: &Record) -> Result<Document> {
    let mut doc = Document::new();
    doc.insert(
        "_id",
        field_to_bson(meta, meta.id_index, record.get(meta.id_index))?,
    );
    for (i, f) in meta.fields.iter().enumerate() {
        if i != meta.id_index {
            let v = field_to_bson(meta, i, record.get(i)).map_err(|e| {
                Error::invalid_input(format!("field `{}`: {}", f.name, e.message()))
            })?;
            doc.insert(f.name, v);
        }
    }
    Ok(doc)
}

/// Convert the id of an entity to its `_id` BSON value.
pub fn id_to_bson<E: Entity>(id: &E::Id) -> Result<Bson> {
    use std::any::Any;
    let ty = E::meta().id_field().ty;
    // The id types of `EntityId` directly (the point-read hot path); the
    // same BSON as the generic conversion below, without serde round trips.
    let any: &dyn Any = id;
    if E::meta().object_ids.contains(&E::meta().id_index) {
        if let Some(s) = any.downcast_ref::<String>() {
            return object_id(s);
        }
    }
    match ty {
        FieldType::Scalar(ScalarType::I64) => {
            if let Some(i) = any.downcast_ref::<i64>() {
                return Ok(Bson::Int64(*i));
            }
        }
        FieldType::Scalar(ScalarType::I32 | ScalarType::I16) => {
            if let Some(i) = any.downcast_ref::<i32>() {
                return Ok(Bson::Int32(*i));
            }
            if let Some(i) = any.downcast_ref::<i16>() {
                return Ok(Bson::Int32((*i).into()));
            }
        }
        FieldType::Scalar(ScalarType::String) => {
            if let Some(s) = any.downcast_ref::<String>() {
                return Ok(Bson::String(s.clone()));
            }
        }
        FieldType::Scalar(ScalarType::Uuid) => {
            if let Some(u) = any.downcast_ref::<uuid::Uuid>() {
                return Ok(Bson::Binary(Binary {
                    subtype: BinarySubtype::Uuid,
                    bytes: u.as_bytes().to_vec(),
                }));
            }
        }
        _ => {}
    }
    field_to_bson(
        E::meta(),
        E::meta().id_index,
        &Value::from_serialize(id)?.normalize(ty)?,
    )
}

/// Read a stored document back into an entity.
pub fn from_document<E: Entity>(doc: &Document) -> Result<E> {
    let meta = E::meta();
    let mut values = Vec::with_capacity(meta.fields.len());
    for (i, f) in meta.fields.iter().enumerate() {
        let v = match doc.get(stored_name(meta, i)) {
            None => Value::Null,
            Some(b) => from_bson(b, f.ty)
                .map_err(|e| Error::decode(format!("{}.{}: {}", meta.name, f.name, e.message())))?,
        };
        values.push(v);
    }
    Record::from_values(meta, values)?.into_entity()
}

/// Convert a stored BSON value of a field of type `ty` to a value.
pub fn from_bson(b: &Bson, ty: FieldType) -> Result<Value> {
    let bad = || Error::decode(format!("unexpected BSON {:?} for {ty:?}", b.element_type()));
    Ok(match (ty, b) {
        (_, Bson::Null | Bson::Undefined) => Value::Null,
        (FieldType::Json, b) => json_value(b),
        (FieldType::Array(s), Bson::Array(items)) => Value::Array(
            items
                .iter()
                .map(|x| from_bson(x, FieldType::Scalar(s)))
                .collect::<Result<_>>()?,
        ),
        (FieldType::Array(_), _) => return Err(bad()),
        (FieldType::Scalar(s), b) => scalar(b, s).ok_or_else(bad)?,
    })
}

fn scalar(b: &Bson, s: ScalarType) -> Option<Value> {
    use ScalarType as T;
    Some(match (s, b) {
        (T::String | T::Enum, Bson::String(x)) => Value::String(x.clone()),
        (T::String, Bson::ObjectId(o)) => Value::String(o.to_hex()),
        (T::Bool, Bson::Boolean(x)) => Value::Bool(*x),
        (T::I16 | T::I32 | T::I64, Bson::Int32(i)) => Value::I64((*i).into()),
        (T::I16 | T::I32 | T::I64, Bson::Int64(i)) => Value::I64(*i),
        (T::F32 | T::F64, Bson::Double(x)) => Value::F64(*x),
        (T::F32 | T::F64, Bson::Int32(i)) => Value::F64((*i).into()),
        (T::F32 | T::F64, Bson::Int64(i)) => Value::F64(*i as f64),
        (T::F64, Bson::Decimal128(d)) => Value::F64(d.to_string().parse().ok()?),
        (T::Uuid, Bson::Binary(bin))
            if matches!(bin.subtype, BinarySubtype::Uuid | BinarySubtype::UuidOld) =>
        {
            Value::Uuid(uuid::Uuid::from_slice(&bin.bytes).ok()?)
        }
        (T::Uuid, Bson::String(x)) => Value::Uuid(x.parse().ok()?),
        (T::DateTime, Bson::DateTime(d)) => Value::DateTime(d.to_chrono()),
        (T::Date, Bson::DateTime(d)) => Value::Date(d.to_chrono().date_naive()),
        (T::Date, Bson::String(x)) => Value::Date(x.parse::<NaiveDate>().ok()?),
        (T::Decimal, Bson::Decimal128(d)) => Value::Decimal(parse_decimal(&d.to_string())?),
        (T::Decimal, Bson::Int32(i)) => Value::Decimal((*i).into()),
        (T::Decimal, Bson::Int64(i)) => Value::Decimal((*i).into()),
        (T::Decimal, Bson::Double(x)) => Value::Decimal(Decimal::try_from(*x).ok()?),
        (T::Bytes, Bson::Binary(bin)) => Value::Bytes(bin.bytes.clone()),
        _ => return None,
    })
}

fn parse_decimal(s: &str) -> Option<Decimal> {
    s.parse::<Decimal>()
        .ok()
        .or_else(|| Decimal::from_scientific(s).ok())
}

/// The generic (JSON-shaped) value of a BSON value inside a JSON field.
fn json_value(b: &Bson) -> Value {
    match b {
        Bson::Null | Bson::Undefined => Value::Null,
        Bson::Boolean(x) => Value::Bool(*x),
        Bson::Int32(i) => Value::I64((*i).into()),
        Bson::Int64(i) => Value::I64(*i),
        Bson::Double(x) => Value::F64(*x),
        Bson::String(s) => Value::String(s.clone()),
        Bson::Array(items) => Value::Array(items.iter().map(json_value).collect()),
        Bson::Document(d) => Value::Object(
            d.iter()
                .map(|(k, v)| (k.clone(), json_value(v)))
                .collect::<BTreeMap<_, _>>(),
        ),
        Bson::Binary(bin) => Value::Bytes(bin.bytes.clone()),
        Bson::DateTime(d) => Value::String(
            d.to_chrono()
                .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
        ),
        Bson::Decimal128(d) => Value::String(d.to_string()),
        other => Value::String(other.to_string()),
    }
}

/// The BSON type alias top-level field `index` is stored as (`objectId`
/// for an `#[entity(object_id)]` field, else by its type).
pub fn field_type_alias(meta: &EntityMeta, index: usize) -> Option<&'static str> {
    if meta.object_ids.contains(&index) {
        return Some("objectId");
    }
    bson_type_alias(meta.fields.get(index)?.ty)
}

/// The BSON type alias (as used by `$type` and `bsonType`) a field of this type is stored as.
pub fn bson_type_alias(ty: FieldType) -> Option<&'static str> {
    use ScalarType as T;
    Some(match ty {
        FieldType::Json => return None,
        FieldType::Array(_) => "array",
        FieldType::Scalar(s) => match s {
            T::String | T::Enum => "string",
            T::Bool => "bool",
            T::I16 | T::I32 => "int",
            T::I64 => "long",
            T::F32 | T::F64 => "double",
            T::Uuid | T::Bytes => "binData",
            T::DateTime | T::Date => "date",
            T::Decimal => "decimal",
            _ => return None,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_round_trip_keeps_scale() {
        for s in ["1.50", "-0.001", "79228162514264337593543950335", "0"] {
            let d: Decimal = s.parse().expect("decimal");
            let b = to_bson(&Value::Decimal(d), FieldType::Scalar(ScalarType::Decimal))
                .expect("to bson");
            assert!(matches!(b, Bson::Decimal128(_)));
            let back = from_bson(&b, FieldType::Scalar(ScalarType::Decimal)).expect("from bson");
            assert_eq!(back, Value::Decimal(d));
            if let Value::Decimal(x) = back {
                assert_eq!(x.to_string(), s);
            }
        }
    }

    #[derive(Debug, Clone, serde::Serialize, serde::Deserialize, persistence_core::Entity)]
    struct ById {
        #[entity(id)]
        id: i64,
    }
    #[derive(Debug, Clone, serde::Serialize, serde::Deserialize, persistence_core::Entity)]
    struct ByUuid {
        #[entity(id)]
        id: uuid::Uuid,
    }
    #[derive(Debug, Clone, serde::Serialize, serde::Deserialize, persistence_core::Entity)]
    struct ByName {
        #[entity(id)]
        id: String,
    }
    #[derive(Debug, Clone, serde::Serialize, serde::Deserialize, persistence_core::Entity)]
    struct BySmall {
        #[entity(id)]
        id: i16,
    }

    fn generic_id<E: Entity>(id: &E::Id) -> Bson {
        let ty = E::meta().id_field().ty;
        to_bson(
            &Value::from_serialize(id)
                .and_then(|v| v.normalize(ty))
                .expect("value"),
            ty,
        )
        .expect("bson")
    }

    #[test]
    fn id_fast_path_matches_the_generic_conversion() {
        for i in [0_i64, -1, i64::MAX] {
            assert_eq!(id_to_bson::<ById>(&i).expect("id"), generic_id::<ById>(&i));
        }
        let u = uuid::Uuid::new_v4();
        assert_eq!(
            id_to_bson::<ByUuid>(&u).expect("id"),
            generic_id::<ByUuid>(&u)
        );
        let s = "a$b".to_string();
        assert_eq!(
            id_to_bson::<ByName>(&s).expect("id"),
            generic_id::<ByName>(&s)
        );
        assert_eq!(
            id_to_bson::<BySmall>(&-7).expect("id"),
            generic_id::<BySmall>(&-7)
        );
    }

    #[test]
    fn uuid_is_subtype_4() {
        let u = uuid::Uuid::new_v4();
        let b = to_bson(&Value::Uuid(u), FieldType::Scalar(ScalarType::Uuid)).expect("bson");
        match &b {
            Bson::Binary(bin) => assert_eq!(bin.subtype, BinarySubtype::Uuid),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            from_bson(&b, FieldType::Scalar(ScalarType::Uuid)).expect("back"),
            Value::Uuid(u)
        );
    }
}
