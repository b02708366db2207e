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

/// Create the collection and indexes of `meta` (idempotent).
pub async fn ensure(coll: &Collection<Document>, meta: &EntityMeta) -> Result<()> {
    let db = coll.client().database(coll.namespace().db.as_str());
    if let Err(e) = db.create_collection(coll.name()).await {
        if server_code(&e) != Some(NAMESPACE_EXISTS) {
            return Err(map(e, meta).with_operation("ensure_schema"));
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
