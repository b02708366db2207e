//! Collections and indexes from entity metadata.
//!
//! [`ensure`] creates the collection if missing and every index of
//! [`EntityMeta::indexes`] under its metadata name:
//! * unique indexes get a `partialFilterExpression` requiring each field to
//!   have its stored BSON type, so documents with a null (or missing) value in
//!   a unique field are not indexed and never conflict (SQL semantics, as in
//!   the reference backend);
//! * a field with `#[entity(ttl = "..")]` gets `expireAfterSeconds`.
//!
//! With [`Validation`] enabled (the default), the collection also gets a
//! `$jsonSchema` validator generated from the metadata ([`json_schema`]): a
//! `bsonType` per field (nullable fields also accept null), `required` for
//! the id and every non-`Option` field, typed array items, the `i16` range.
//! It is set when the collection is created and replaced with `collMod` on
//! every `ensure_schema`, so it follows the entity. Nested structs and maps
//! (`FieldType::Json`) are only required to be present: the metadata does
//! not describe their inner shape.
//!
//! Existing indexes with the same name are compared with the wanted
//! definition (keys, unique, partial filter, TTL). A difference is a
//! `Config` error naming the index and the way out: drop the index
//! (`db.<collection>.dropIndex("<name>")`) and call `ensure_schema` again,
//! which recreates it. Nothing is ever dropped implicitly.

use bson::{Bson, Document, doc};
use futures_util::TryStreamExt as _;
use mongodb::{Collection, IndexModel, options::IndexOptions};
use persistence_core::{EntityMeta, Error, FieldType, IndexMeta, Result};

use crate::convert::{bson_type_alias, stored_name};
use crate::error::{NAMESPACE_EXISTS, map, server_code};

/// Every non-null BSON type alias (for JSON fields in unique indexes).
const NON_NULL_TYPES: &[&str] = &[
    "double", "string", "object", "array", "binData", "bool", "date", "int", "long", "decimal",
];

fn key_of(
    meta: &EntityMeta,
    name: &str,
) -> Result<(String, FieldType, Option<std::time::Duration>)> {
    let (i, f) = meta
        .field(name)
        .ok_or_else(|| Error::config(format!("index names unknown field `{name}`")))?;
    Ok((stored_name(meta, i).to_string(), f.ty, f.ttl))
}

/// The wanted index model for one metadata index.
pub fn index_model(meta: &EntityMeta, ix: &IndexMeta) -> Result<IndexModel> {
    let mut keys = Document::new();
    let mut partial = Document::new();
    let mut ttl = None;
    for name in &ix.fields {
        let (key, ty, t) = key_of(meta, name)?;
        keys.insert(key.clone(), 1);
        if ix.fields.len() == 1 {
            ttl = t;
        }
        let cond = match bson_type_alias(ty) {
            Some(alias) => doc! { "$type": alias },
            None => {
                doc! { "$type": NON_NULL_TYPES.iter().map(|s| Bson::from(*s)).collect::<Vec<_>>() }
            }
        };
        partial.insert(key, cond);
    }
    let mut opts = IndexOptions::builder().name(ix.name.clone()).build();
    if ix.unique {
        opts.unique = Some(true);
        opts.partial_filter_expression = Some(partial);
    }
    opts.expire_after = ttl;
    Ok(IndexModel::builder().keys(keys).options(opts).build())
}

fn same(a: &IndexModel, b: &IndexModel) -> Option<String> {
    if a.keys != b.keys {
        return Some(format!("keys {} vs {}", a.keys, b.keys));
    }
    let (ao, bo) = (
        a.options.clone().unwrap_or_default(),
        b.options.clone().unwrap_or_default(),
    );
    if ao.unique.unwrap_or(false) != bo.unique.unwrap_or(false) {
        return Some("unique flag differs".into());
    }
    if ao.expire_after.map(|d| d.as_secs()) != bo.expire_after.map(|d| d.as_secs()) {
        return Some(format!(
            "TTL {:?} vs {:?}",
            ao.expire_after, bo.expire_after
        ));
    }
    if ao.partial_filter_expression != bo.partial_filter_expression {
        return Some("partial filter differs".into());
    }
    None
}

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
        if let Some(alias) = bson_type_alias(f.ty) {
            if f.nullable {
                prop.insert("bsonType", vec![Bson::from(alias), Bson::from("null")]);
            } else {
                prop.insert("bsonType", alias);
            }
        }
        match f.ty {
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

fn validation_fields(v: &Validation) -> Document {
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

/// Create the collection (with its validator), the validator update and the indexes of `meta` (idempotent).
pub async fn ensure(
    coll: &Collection<Document>,
    meta: &EntityMeta,
    validation: Option<&Validation>,
) -> Result<()> {
    let db = coll.client().database(coll.namespace().db.as_str());
    let mut create = doc! { "create": coll.name() };
    if let Some(v) = validation {
        create.insert("validator", json_schema(meta));
        create.extend(validation_fields(v));
    }
    if let Err(e) = db.run_command(create).await {
        if server_code(&e) != Some(NAMESPACE_EXISTS) {
            return Err(map(e, meta).with_operation("ensure_schema"));
        }
        if let Some(v) = validation {
            let mut cmd = doc! { "collMod": coll.name(), "validator": json_schema(meta) };
            cmd.extend(validation_fields(v));
            db.run_command(cmd)
                .await
                .map_err(|e| map(e, meta).with_operation("ensure_schema"))?;
        }
    }
    let existing: Vec<IndexModel> = coll
        .list_indexes()
        .await
        .map_err(|e| map(e, meta).with_operation("ensure_schema"))?
        .try_collect()
        .await
        .map_err(|e| map(e, meta).with_operation("ensure_schema"))?;
    let mut missing = Vec::new();
    for ix in &meta.indexes {
        let want = index_model(meta, ix)?;
        let found = existing
            .iter()
            .find(|m| m.options.as_ref().and_then(|o| o.name.as_deref()) == Some(ix.name.as_str()));
        match found {
            Some(have) => {
                if let Some(diff) = same(have, &want) {
                    return Err(Error::config(format!(
                        "index `{}` of collection `{}` differs from the entity metadata ({diff}); \
                         drop it (db.{}.dropIndex(\"{}\")) and run ensure_schema again to recreate it",
                        ix.name,
                        coll.name(),
                        coll.name(),
                        ix.name
                    ))
                    .in_context(meta.name, "ensure_schema"));
                }
            }
            None => missing.push(want),
        }
    }
    if !missing.is_empty() {
        coll.create_indexes(missing)
            .await
            .map_err(|e| map(e, meta).with_operation("ensure_schema"))?;
    }
    Ok(())
}
