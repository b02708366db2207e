//! The `$jsonSchema` validator generated from entity metadata (nested
//! shapes included) and its [`Validation`] level and action (see the
//! [`schema`](crate::schema) module docs).

use bson::{Bson, Document, doc};
use persistence_core::{EntityMeta, FieldType, ScalarType, Shape};

use crate::codec::{bson_type_alias, field_type_alias, stored_name};

/// `validationLevel` of the generated validator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValidationLevel {
    /// Every insert and update is validated.
    Strict,
    /// Updates of documents that were already invalid are not validated.
    Moderate,
}

/// `validationAction` of the generated validator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValidationAction {
    /// Reject invalid writes (server code 121 → `InvalidInput`).
    Error,
    /// Accept them and log a warning on the server.
    Warn,
}

/// Schema validation settings for `ensure_schema`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validation {
    /// Validation level.
    pub level: ValidationLevel,
    /// Validation action.
    pub action: ValidationAction,
}

impl Default for Validation {
    fn default() -> Self {
        Validation {
            level: ValidationLevel::Strict,
            action: ValidationAction::Error,
        }
    }
}

/// The `$jsonSchema` of an entity (see the module docs).
pub fn json_schema(meta: &EntityMeta) -> Document {
    let mut required = Vec::new();
    let mut properties = Document::new();
    for (i, f) in meta.fields.iter().enumerate() {
        let key = stored_name(meta, i);
        if !f.nullable {
            required.push(Bson::from(key));
        }
        let mut prop = Document::new();
        if let Some(alias) = field_type_alias(meta, i) {
            if f.nullable {
                prop.insert("bsonType", vec![Bson::from(alias), Bson::from("null")]);
            } else {
                prop.insert("bsonType", alias);
            }
        }
        match f.ty {
            FieldType::Json => {
                if let Some(shape) = meta.shape(i) {
                    prop = shape_schema(shape);
                    if f.nullable {
                        prop = with_null(prop);
                    }
                }
            }
            FieldType::Array(s) => {
                if let Some(item) = bson_type_alias(FieldType::Scalar(s)) {
                    prop.insert("items", doc! { "bsonType": item });
                }
            }
            FieldType::Scalar(persistence_core::ScalarType::I16) => {
                prop.insert("minimum", i32::from(i16::MIN));
                prop.insert("maximum", i32::from(i16::MAX));
            }
            _ => {}
        }
        properties.insert(key, prop);
    }
    doc! { "$jsonSchema": {
        "bsonType": "object",
        "required": required,
        "properties": properties,
    } }
}

/// The `bsonType` aliases a scalar has inside a nested (JSON-shaped) value.
fn nested_scalar_types(s: ScalarType) -> Bson {
    use ScalarType as T;
    match s {
        T::Bool => Bson::from("bool"),
        // serde writes `Vec<u8>` as a sequence of integers.
        T::Bytes => Bson::from("array"),
        T::I16 | T::I32 | T::I64 => Bson::from(vec![Bson::from("int"), Bson::from("long")]),
        T::F32 | T::F64 => Bson::from(vec![
            Bson::from("double"),
            Bson::from("int"),
            Bson::from("long"),
        ]),
        // Strings, unit enums, and the serde string forms of UUIDs,
        // timestamps, dates and decimals.
        _ => Bson::from("string"),
    }
}

/// The `$jsonSchema` of a nested value of this shape.
pub fn shape_schema(shape: &Shape) -> Document {
    match shape {
        Shape::Scalar(s) => {
            let mut d = doc! { "bsonType": nested_scalar_types(*s) };
            if *s == ScalarType::I16 {
                d.insert("minimum", i32::from(i16::MIN));
                d.insert("maximum", i32::from(i16::MAX));
            }
            d
        }
        Shape::Nullable(inner) => with_null(shape_schema(inner)),
        Shape::Array(items) => {
            let mut d = doc! { "bsonType": "array" };
            let items = shape_schema(items);
            if !items.is_empty() {
                d.insert("items", items);
            }
            d
        }
        Shape::Map(values) => {
            let mut d = doc! { "bsonType": "object" };
            let values = shape_schema(values);
            if !values.is_empty() {
                d.insert("additionalProperties", values);
            }
            d
        }
        Shape::Object(fields) => {
            let mut properties = Document::new();
            let mut required = Vec::new();
            for f in fields {
                if !f.optional && !matches!(f.shape, Shape::Nullable(_)) {
                    required.push(Bson::from(f.name));
                }
                properties.insert(f.name, shape_schema(&f.shape));
            }
            let mut d = doc! { "bsonType": "object" };
            // `required` must not be empty.
            if !required.is_empty() {
                d.insert("required", required);
            }
            d.insert("properties", properties);
            d
        }
        // `Any` and shapes added later: no constraint.
        _ => Document::new(),
    }
}

/// Allow null besides what `schema` allows (an empty schema already does).
fn with_null(mut schema: Document) -> Document {
    match schema.get("bsonType").cloned() {
        Some(Bson::String(t)) if t != "null" => {
            schema.insert("bsonType", vec![Bson::from(t), Bson::from("null")]);
        }
        Some(Bson::Array(mut ts)) if !ts.contains(&Bson::from("null")) => {
            ts.push(Bson::from("null"));
            schema.insert("bsonType", ts);
        }
        _ => {}
    }
    schema
}

/// `validationLevel` and `validationAction` of a `create` / `collMod` command.
pub(super) fn validation_fields(v: &Validation) -> Document {
    doc! {
        "validationLevel": match v.level {
            ValidationLevel::Strict => "strict",
            ValidationLevel::Moderate => "moderate",
        },
        "validationAction": match v.action {
            ValidationAction::Error => "error",
            ValidationAction::Warn => "warn",
        },
    }
}
