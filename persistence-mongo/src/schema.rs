//! Collections and indexes from entity metadata.
//!
//! [`ensure`] creates the collection if missing and every index of
//! [`EntityMeta::indexes`] under its metadata name:
//! * unique indexes get a `partialFilterExpression` requiring each field to
//!   have its stored BSON type, so documents with a null (or missing) value in
//!   a unique field are not indexed and never conflict (SQL semantics, as in
//!   the reference backend); on a soft-deletable entity
//!   ([`IndexMeta::live_only`](persistence_core::IndexMeta::live_only)) it
//!   also requires `{<soft-delete field>: {$type: "null"}}`, so deleted
//!   documents do not hold their values (MongoDB refuses `{field: null}`
//!   and `$exists: false` in a partial filter; live documents store an
//!   explicit null there);
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
//! core [`Filter`](persistence_core::Filter) (values are BSON values, field names from metadata). Only
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
//!
//! `verify_schema` (module `verify`) is the read-only comparison of the
//! collection, its indexes and its validator with the declaration, one
//! [`Difference`](persistence_core::Difference) each, whoever made it.

use bson::{Document, doc};
use futures_util::TryStreamExt as _;
use mongodb::{Collection, IndexModel};
use persistence_core::names::{MANAGED_MARK, MARKER_COLLECTION, SchemaPolicy};
use persistence_core::{EntityMeta, Error, Result};

use crate::error::{DUPLICATE_KEY, NAMESPACE_EXISTS, map, map_plain, server_code};

mod index;
mod validator;
mod verify;

pub use index::{PartialIndex, index_model};
pub use validator::{Validation, ValidationAction, ValidationLevel, json_schema, shape_schema};

use index::same;
use validator::validation_fields;
pub(crate) use verify::verify;

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
        if wanted.iter().any(|(n, _)| n == p.name()) {
            return Err(
                Error::config(format!("partial index `{}` is declared twice", p.name()))
                    .in_context(meta.name, "ensure_schema"),
            );
        }
        wanted.push((p.name().to_string(), p.model(meta)?));
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
