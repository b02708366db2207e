//! Index models from entity metadata (unique indexes skip nulls and, on
//! soft-deletable entities, deleted documents; TTL) and
//! declared [`PartialIndex`]es, and the comparison of an existing index
//! with the wanted one (see the [`schema`](crate::schema) module docs).

use bson::{Bson, Document, doc};
use mongodb::{IndexModel, options::IndexOptions};
use persistence_core::{EntityMeta, Error, FieldType, Filter, IndexMeta, Result};

use crate::codec::{bson_type_alias, stored_name};

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
        let object_id = meta
            .field(name)
            .is_some_and(|(i, _)| meta.object_ids.contains(&i));
        let alias = if object_id {
            Some("objectId")
        } else {
            bson_type_alias(ty)
        };
        let cond = match alias {
            Some(alias) => doc! { "$type": alias },
            None => {
                doc! { "$type": NON_NULL_TYPES.iter().map(|s| Bson::from(*s)).collect::<Vec<_>>() }
            }
        };
        partial.insert(key, cond);
    }
    if let Some(field) = ix.live_only.filter(|_| ix.unique) {
        // Live documents only: a soft-deleted one (its field set) does not
        // hold its values. `$type: "null"`, not `{field: null}` or
        // `$exists: false`, which MongoDB refuses in a partial filter; the
        // field is stored as an explicit null while live (restore writes
        // null too, see `crate::update`).
        let (key, _, _) = key_of(meta, field)?;
        partial.insert(key, doc! { "$type": "null" });
    }
    let mut opts = IndexOptions::builder().name(ix.name.clone()).build();
    if ix.unique {
        opts.unique = Some(true);
        opts.partial_filter_expression = Some(partial);
    }
    opts.expire_after = ttl;
    Ok(IndexModel::builder().keys(keys).options(opts).build())
}

/// A partial index declared on a repository (see the module docs).
#[derive(Debug, Clone, PartialEq)]
pub struct PartialIndex {
    name: String,
    fields: Vec<String>,
    unique: bool,
    filter: Filter,
}

impl PartialIndex {
    /// An index named `name` over `fields` (entity field paths, ascending),
    /// covering only the documents that match `filter`.
    pub fn new<S: Into<String>>(
        name: impl Into<String>,
        fields: impl IntoIterator<Item = S>,
        filter: Filter,
    ) -> Self {
        PartialIndex {
            name: name.into(),
            fields: fields.into_iter().map(Into::into).collect(),
            unique: false,
            filter,
        }
    }

    /// Make it a unique index (among the matching documents).
    pub fn unique(mut self) -> Self {
        self.unique = true;
        self
    }

    /// The index name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether it is unique.
    pub fn is_unique(&self) -> bool {
        self.unique
    }

    /// The stored keys (dotted paths) of the fields, validated against `meta`.
    pub(crate) fn keys(&self, meta: &EntityMeta) -> Result<Vec<String>> {
        self.fields
            .iter()
            .map(|f| {
                let r = meta.resolve_path(f)?;
                let mut key = stored_name(meta, r.index).to_string();
                for seg in &r.rest {
                    key.push('.');
                    key.push_str(seg);
                }
                Ok(key)
            })
            .collect()
    }

    /// The `partialFilterExpression` (checked against `meta`).
    pub(crate) fn filter_document(&self, meta: &EntityMeta) -> Result<Document> {
        crate::query::to_query(meta, &self.filter.checked(meta)?)
    }

    /// The wanted index model (name and fields validated against `meta`).
    pub fn model(&self, meta: &EntityMeta) -> Result<IndexModel> {
        let bad = |m: String| Error::config(m).in_context(meta.name, "ensure_schema");
        persistence_core::entity::validate_identifier(&self.name)
            .map_err(|e| bad(format!("partial index name: {}", e.message())))?;
        if meta.indexes.iter().any(|i| i.name == self.name) || self.name == "_id_" {
            return Err(bad(format!(
                "partial index `{}` has the name of another index",
                self.name
            )));
        }
        if self.fields.is_empty() {
            return Err(bad(format!("partial index `{}` lists no field", self.name)));
        }
        let keys = self
            .keys(meta)
            .map_err(|e| bad(format!("partial index `{}`: {}", self.name, e.message())))?;
        let filter = self
            .filter_document(meta)
            .map_err(|e| bad(format!("partial index `{}`: {}", self.name, e.message())))?;
        if filter.is_empty() {
            return Err(bad(format!(
                "partial index `{}` needs a filter (Filter::all() indexes everything)",
                self.name
            )));
        }
        let mut doc = Document::new();
        for k in keys {
            doc.insert(k, 1);
        }
        let mut opts = IndexOptions::builder().name(self.name.clone()).build();
        if self.unique {
            opts.unique = Some(true);
        }
        opts.partial_filter_expression = Some(filter);
        Ok(IndexModel::builder().keys(doc).options(opts).build())
    }
}

/// How `a` differs from `b` (keys, unique, TTL, partial filter), if it does.
pub(super) fn same(a: &IndexModel, b: &IndexModel) -> Option<String> {
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
