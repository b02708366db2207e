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
//! every `ensure_schema`, so it follows the entity.
//!
//! Nested structs, vectors and maps (`FieldType::Json`) are described when
//! the metadata knows their shape ([`EntityMeta::shape`]: the nested struct
//! derives `persistence_core::Embedded`): `bsonType: "object"` with
//! `properties` and `required` (every field except `Option` ones, which also
//! accept null, and `skip_serializing_if` ones, which may be missing), arrays
//! with typed `items`, maps with typed `additionalProperties`. Nested values
//! are stored in serde's form, so UUIDs, timestamps, dates and decimals are
//! strings there and integers are `int` or `long`. Unknown extra fields stay
//! allowed (serde ignores them when reading). A `Json` field without a known
//! shape is only required to be present (unless it is an `Option`).
//!
//! ## Partial indexes
//!
//! A [`PartialIndex`] is declared per repository
//! ([`MongoRepository::with_partial_index`](crate::MongoRepository::with_partial_index))
//! rather than in the entity metadata: keys (field paths of the entity,
//! validated), optionally unique, and a `partialFilterExpression` built from a
//! core [`Filter`] (values are BSON values, field names from metadata). Only
//! documents matching the filter are indexed, so a partial unique index
//! enforces uniqueness among them only (e.g. one *active* account per email).
//! MongoDB accepts a subset of operators there: equality, `$gt`/`$gte`/
//! `$lt`/`$lte` and `$and` on top-level fields everywhere, `$in` and `$or`
//! since 6.0; `ne`, `not`, `starts_with`/`contains` and nested paths (which
//! become `$nor`/`$regex`/array guards) are refused by the server when the
//! index is created (an error from `ensure_schema`). It is ensured by
//! `ensure_schema` like the metadata indexes and checked the same way below.
//! Repositories without the declaration leave the index alone (only
//! declared and metadata indexes are compared); for tenants, declare it on
//! the tenant's repository (`scope.repository::<E>().with_partial_index(..)`)
//! before `ensure_schema`. The PostgreSQL backend has no such declaration.
//!
//! Existing indexes with the same name are compared with the wanted
//! definition (keys, unique, partial filter, TTL). A difference is a
//! `Config` error naming the index and the way out: drop the index
//! (`db.<collection>.dropIndex("<name>")`) and call `ensure_schema` again,
//! which recreates it. Nothing is ever dropped implicitly.
//!
//! ## Ownership: only collections the library created are changed
//!
//! Each database has a marker collection
//! ([`MARKER_COLLECTION`],
//! `persistence_managed`): `{_id: "collection:<name>"}` for every collection
//! the library created, and `{_id: "database"}` when the library created
//! the database (its first collection went into an empty database). With
//! the default [`SchemaPolicy::Managed`]:
//!
//! * a missing collection is created (with its validator) and marked, then
//!   gets its indexes;
//! * a marked collection gets the current validator (`collMod`) and the
//!   missing indexes;
//! * an **existing collection without the mark is never altered**: no
//!   validator is installed or replaced and no index is created; its indexes
//!   are compared with the declared ones and what is missing or different
//!   is a `tracing` warning naming it.
//!
//! [`SchemaPolicy::Adopt`] (per repository: `with_schema_policy`) marks an
//! existing collection and then treats it as the library's;
//! [`SchemaPolicy::VerifyOnly`] creates and changes nothing (a missing
//! collection is a `Config` error). `MongoStore::drop_database` and tenant
//! removal drop only marked databases / collections.

use bson::{Bson, Document, doc};
use futures_util::TryStreamExt as _;
use mongodb::{Collection, IndexModel, options::IndexOptions};
use persistence_core::{
    EntityMeta, Error, FieldType, Filter, IndexMeta, Result, ScalarType, Shape,
};

use persistence_core::names::{MANAGED_MARK, MARKER_COLLECTION, SchemaPolicy};

use crate::convert::{bson_type_alias, stored_name};
use crate::error::{DUPLICATE_KEY, NAMESPACE_EXISTS, map, map_plain, server_code};

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
        crate::filter::to_query(meta, &self.filter.checked(meta)?)
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
    ensure_with(coll, meta, validation, &[]).await
}

/// [`ensure`] plus declared partial indexes (checked like the metadata's).
pub async fn ensure_with(
    coll: &Collection<Document>,
    meta: &EntityMeta,
    validation: Option<&Validation>,
    partial: &[PartialIndex],
) -> Result<()> {
    ensure_with_policy(coll, meta, validation, partial, SchemaPolicy::Managed).await
}

/// The `_id` of a collection's marker document.
pub(crate) fn collection_marker(name: &str) -> String {
    format!("collection:{name}")
}

/// The `_id` of a database's marker document.
pub(crate) const DATABASE_MARKER: &str = "database";

/// Record that the library created `id` (`collection:<name>` or `database`)
/// in `db` (idempotent).
pub(crate) async fn write_marker(db: &mongodb::Database, id: &str) -> Result<()> {
    let doc = doc! { "_id": id, "mark": MANAGED_MARK, "created_at": bson::DateTime::now() };
    match db
        .collection::<Document>(MARKER_COLLECTION)
        .insert_one(doc)
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if server_code(&e) == Some(DUPLICATE_KEY) => Ok(()),
        Err(e) => Err(map_plain(e).with_operation("ensure_schema")),
    }
}

/// Whether `db` holds the marker `id`.
pub(crate) async fn has_marker(db: &mongodb::Database, id: &str) -> Result<bool> {
    db.collection::<Document>(MARKER_COLLECTION)
        .find_one(doc! { "_id": id })
        .await
        .map(|d| d.is_some())
        .map_err(map_plain)
}

/// [`ensure_with`] under a [`SchemaPolicy`] (see the module docs).
pub async fn ensure_with_policy(
    coll: &Collection<Document>,
    meta: &EntityMeta,
    validation: Option<&Validation>,
    partial: &[PartialIndex],
    policy: SchemaPolicy,
) -> Result<()> {
    let mut wanted = Vec::with_capacity(meta.indexes.len() + partial.len());
    for ix in &meta.indexes {
        wanted.push((ix.name.clone(), index_model(meta, ix)?));
    }
    for p in partial {
        if wanted.iter().any(|(n, _)| n == &p.name) {
            return Err(
                Error::config(format!("partial index `{}` is declared twice", p.name))
                    .in_context(meta.name, "ensure_schema"),
            );
        }
        wanted.push((p.name.clone(), p.model(meta)?));
    }
    let db = coll.client().database(coll.namespace().db.as_str());
    let op = |e| map(e, meta).with_operation("ensure_schema");
    let marker = collection_marker(coll.name());
    let own = if has_marker(&db, &marker)
        .await
        .map_err(|e| e.with_operation("ensure_schema"))?
    {
        policy != SchemaPolicy::VerifyOnly
    } else {
        let names = db.list_collection_names().await.map_err(op)?;
        let exists = names.iter().any(|n| n == coll.name());
        match (exists, policy) {
            (false, SchemaPolicy::VerifyOnly) => {
                return Err(Error::config(format!(
                    "collection `{}` does not exist (schema policy verify-only: nothing is created)",
                    coll.name()
                ))
                .in_context(meta.name, "ensure_schema"));
            }
            (false, _) => {
                // Claim it before creating it, so a crash in between leaves
                // a mark for a missing collection (created next time), never
                // an unmarked collection of ours.
                let fresh_database = names.iter().all(|n| n == MARKER_COLLECTION);
                write_marker(&db, &marker).await?;
                if fresh_database {
                    write_marker(&db, DATABASE_MARKER).await?;
                }
                true
            }
            (true, SchemaPolicy::Adopt) => {
                write_marker(&db, &marker).await?;
                true
            }
            (true, _) => false,
        }
    };
    if !own {
        return verify_foreign(coll, meta, &wanted).await;
    }
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
    for (name, want) in wanted {
        let found = existing
            .iter()
            .find(|m| m.options.as_ref().and_then(|o| o.name.as_deref()) == Some(name.as_str()));
        match found {
            Some(have) => {
                if let Some(diff) = same(have, &want) {
                    return Err(Error::config(format!(
                        "index `{}` of collection `{}` differs from its declaration ({diff}); \
                         drop it (db.{}.dropIndex(\"{}\")) and run ensure_schema again to recreate it",
                        name,
                        coll.name(),
                        coll.name(),
                        name
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

/// Compare the indexes of a collection the library did not create with the
/// declared ones; warn about what is missing or different, change nothing.
async fn verify_foreign(
    coll: &Collection<Document>,
    meta: &EntityMeta,
    wanted: &[(String, IndexModel)],
) -> Result<()> {
    let existing: Vec<IndexModel> = coll
        .list_indexes()
        .await
        .map_err(|e| map(e, meta).with_operation("ensure_schema"))?
        .try_collect()
        .await
        .map_err(|e| map(e, meta).with_operation("ensure_schema"))?;
    let mut problems = Vec::new();
    for (name, want) in wanted {
        // Matched by name, else by keys (another application's name for it).
        let found = existing
            .iter()
            .find(|m| m.options.as_ref().and_then(|o| o.name.as_deref()) == Some(name.as_str()))
            .or_else(|| existing.iter().find(|m| m.keys == want.keys));
        match found {
            None => problems.push(format!("index {name} ({}) is missing", want.keys)),
            Some(have) => {
                if let Some(diff) = same(have, want) {
                    problems.push(format!("index {name} differs ({diff})"));
                }
            }
        }
    }
    if !problems.is_empty() {
        tracing::warn!(
            collection = coll.name(),
            entity = meta.name,
            problems = %problems.join("; "),
            "collection not created by persistence differs from the entity's declaration; \
             left unchanged (no index or validator is added; use SchemaPolicy::Adopt to take it over)"
        );
    }
    Ok(())
}
