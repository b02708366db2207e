//! What the writes of [`MongoRepository`] share: the document stored for an
//! entity (timestamps fitted to milliseconds), the stored version, telling a
//! repeated update from a conflict, naming the index behind a duplicate key,
//! and the transactional `insert_many`.

use std::borrow::Cow;

use bson::{Bson, Document, doc};
use persistence_core::layer::{Op, write_applied};
use persistence_core::lifecycle;
use persistence_core::{Entity, Error, Record, Repository, Result, TimestampPrecision};

use super::MongoRepository;
use crate::codec::{from_document, stored_name, to_document};

impl<E: Entity> MongoRepository<E> {
    /// `insert_many` of prepared documents in its own transaction, retried
    /// (whole) on transient transaction errors.
    pub(super) async fn insert_atomic(
        &self,
        docs: &[Document],
    ) -> std::result::Result<(), mongodb::error::Error> {
        use mongodb::error::{TRANSIENT_TRANSACTION_ERROR, UNKNOWN_TRANSACTION_COMMIT_RESULT};
        let mut session = self.coll.client().start_session().await?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            session.start_transaction().await?;
            if let Err(e) = self.coll.insert_many(docs).session(&mut session).await {
                // Best effort: the server aborts an abandoned transaction on its own.
                let _ = session.abort_transaction().await;
                if e.contains_label(TRANSIENT_TRANSACTION_ERROR) && attempt < MAX_BATCH_ATTEMPTS {
                    continue;
                }
                return Err(e);
            }
            let mut commits = 0;
            loop {
                commits += 1;
                match session.commit_transaction().await {
                    Ok(()) => return Ok(()),
                    Err(e)
                        if e.contains_label(UNKNOWN_TRANSACTION_COMMIT_RESULT) && commits < 3 => {}
                    Err(e) => return Err(e),
                }
            }
        }
    }
    /// The document written for `entity` and the entity it stores.
    ///
    /// The managed timestamps are set first ([`lifecycle::stamped`]: both
    /// when `insert`, which `insert`, `insert_many` and `upsert` ask for,
    /// else `updated_at`); the caller's values there are overwritten.
    /// The entity is what a `get` of the document returns: timestamps are
    /// truncated toward the past to milliseconds before the document is
    /// built (BSON dates keep milliseconds), and every other value converts
    /// to BSON and back unchanged (decimal128 keeps a `Decimal`'s digits and
    /// scale; see [`crate::codec`]), so the entity is rebuilt only when a
    /// timestamp lost digits.
    pub(super) fn document(
        entity: &E,
        version: Option<i64>,
        now: chrono::DateTime<chrono::Utc>,
        insert: bool,
    ) -> Result<(E, Document)> {
        // A tenant entity is written only in a tenant context (see `persistence_core::tenant`).
        persistence_core::tenant::require(E::meta())?;
        let mut entity = lifecycle::stamped_at(entity, now, insert).into_owned();
        if let Some(v) = version {
            entity.set_version(v);
        }
        let mut record = Record::from_entity(&entity)?;
        let mut rebuild = record.fit_timestamps(TimestampPrecision::Millis);
        if insert {
            rebuild |= assign_generated_id(E::meta(), &mut record)?;
        }
        if rebuild {
            entity = record.clone().into_entity()?;
        }
        let doc = to_document(E::meta(), &record)?;
        Ok((entity, doc))
    }

    /// The stored key of the `created_at` field, when `E` has one.
    pub(super) fn created_key() -> Option<&'static str> {
        let meta = E::meta();
        meta.created_at.map(|i| stored_name(meta, i))
    }

    pub(super) fn version_key() -> Option<&'static str> {
        E::meta().version_field().map(|f| f.name)
    }

    /// The stored version of the document with this `_id`, or `None` if it does not exist.
    pub(super) async fn stored_version(
        &self,
        id: &Bson,
        op: &'static str,
    ) -> Result<Option<Option<i64>>> {
        self.stored_version_in(doc! { "_id": id.clone() }, op).await
    }

    /// The stored version of the document `filter` matches (its identity),
    /// or `None` if none does.
    pub(super) async fn stored_version_in(
        &self,
        filter: Document,
        op: &'static str,
    ) -> Result<Option<Option<i64>>> {
        let found = exec!(
            self,
            self.coll
                .find_one(filter.clone())
                .projection(match Self::version_key() {
                    Some(k) => doc! { k: 1 },
                    None => doc! { "_id": 1 },
                })
        )
        .map_err(self.err(op))?;
        Ok(found.map(|d| Self::version_key().and_then(|k| read_i64(d.get(k)))))
    }

    /// The stored document with this `_id` when it is exactly what updating
    /// with `written` stores (its version + 1 and its content). The managed
    /// timestamps are the repository's, not the caller's content: they are
    /// not compared (an update keeps `created_at`, and a repeat takes a new
    /// `updated_at`). The driver re-sends a write whose answer was lost
    /// (retryable writes, e.g. across a server restart); when the first one
    /// had landed, the repeat no longer matches the expected version and
    /// would report a false `Conflict(Version)` for an update that was
    /// applied once. Errors count as "no": the conflict is then reported as
    /// it was.
    pub(super) async fn holds_own_update(&self, id: &Bson, written: &E) -> Option<E> {
        let found = match exec!(self, self.coll.find_one(doc! { "_id": id.clone() })) {
            Ok(Some(d)) => d,
            Ok(None) | Err(_) => return None,
        };
        let current = from_document::<E>(&found).ok()?;
        let meta = E::meta();
        let managed: Vec<usize> = [meta.created_at, meta.updated_at]
            .into_iter()
            .flatten()
            .collect();
        let mut written = Cow::Borrowed(written);
        if !managed.is_empty() {
            let stored = Record::from_entity(&current).ok()?;
            let mut record = Record::from_entity(&*written).ok()?;
            for i in managed {
                record.values[i] = stored.values[i].clone();
            }
            written = Cow::Owned(record.into_entity().ok()?);
        }
        write_applied(Op::Update, &*written, &current, &self.capabilities())
            .unwrap_or(false)
            .then_some(current)
    }

    /// Name the index behind a duplicate-key error. The driver does not
    /// expose the server's `keyPattern`, and messages are not parsed, so the
    /// conflicting index is found by looking: an existing `_id` (when `id_possible`)
    /// → `DuplicateId`, else the first unique index whose values another
    /// document holds. Other errors pass through.
    pub(super) async fn resolve_duplicate(
        &self,
        err: Error,
        doc: &Document,
        id_possible: bool,
    ) -> Error {
        use persistence_core::{ConflictKind, ErrorKind};
        if !matches!(
            err.kind(),
            ErrorKind::Conflict(ConflictKind::Unique { constraint: None })
        ) {
            return err;
        }
        let meta = E::meta();
        let Some(id) = doc.get("_id") else {
            return err;
        };
        if id_possible {
            if let Ok(Some(_)) = self
                .coll
                .find_one(doc! { "_id": id.clone() })
                .projection(doc! { "_id": 1 })
                .await
            {
                return Error::duplicate_id(format!("{} with this id already exists", meta.name))
                    .set_retryable(false)
                    .with_source(err);
            }
        }
        for ix in meta.uniques() {
            let mut probe = doc! { "_id": { "$ne": id.clone() } };
            // A partial index over live documents: deleted ones do not count.
            if let Some(field) = ix.live_only {
                probe.insert(field, doc! { "$type": "null" });
            }
            let mut complete = true;
            for name in &ix.fields {
                match doc.get(*name) {
                    Some(v) if !matches!(v, Bson::Null) => {
                        probe.insert(*name, doc! { "$eq": v.clone() });
                    }
                    _ => complete = false,
                }
            }
            if !complete {
                continue;
            }
            if let Ok(Some(_)) = self
                .coll
                .find_one(probe)
                .projection(doc! { "_id": 1 })
                .await
            {
                return Error::unique_violation(
                    Some(ix.name.clone()),
                    format!(
                        "{} already holds this value of ({}) (index {})",
                        meta.name,
                        ix.fields.join(", "),
                        ix.name
                    ),
                )
                .with_source(err);
            }
        }
        for ix in self.partial_indexes.iter().filter(|p| p.is_unique()) {
            let (Ok(keys), Ok(filter)) = (ix.keys(meta), ix.filter_document(meta)) else {
                continue;
            };
            let mut probe = doc! { "_id": { "$ne": id.clone() } };
            let mut complete = true;
            for key in &keys {
                match doc.get(key) {
                    Some(v) if !key.contains('.') => {
                        probe.insert(key.clone(), doc! { "$eq": v.clone() });
                    }
                    _ => complete = false,
                }
            }
            if !complete {
                continue;
            }
            let probe = doc! { "$and": [probe, filter] };
            if let Ok(Some(_)) = self
                .coll
                .find_one(probe)
                .projection(doc! { "_id": 1 })
                .await
            {
                return Error::unique_violation(
                    Some(ix.name().to_string()),
                    format!(
                        "{} already holds this value of ({}) among the documents of partial index {}",
                        meta.name,
                        keys.join(", "),
                        ix.name()
                    ),
                )
                .with_source(err);
            }
        }
        err
    }
}

#[cfg(test)]
mod tests;

/// Attempts of a transactional `insert_many` that hits transient errors.
const MAX_BATCH_ATTEMPTS: u32 = 3;

fn read_i64(b: Option<&Bson>) -> Option<i64> {
    match b? {
        Bson::Int64(i) => Some(*i),
        Bson::Int32(i) => Some((*i).into()),
        _ => None,
    }
}

/// An unset `#[entity(generated)]` id gets a new one, made here as the
/// driver makes `_id`s: an ObjectId (its hex form in a `String` id) or a
/// random UUID. MongoDB has no sequence: a generated integer id is refused.
/// Whether the record changed.
fn assign_generated_id(meta: &persistence_core::EntityMeta, record: &mut Record) -> Result<bool> {
    let i = meta.id_index;
    if !meta.is_unset_generated(i, record.get(i)) {
        return Ok(false);
    }
    let id = match meta.id_field().ty {
        persistence_core::FieldType::Scalar(persistence_core::ScalarType::String) => {
            persistence_core::Value::String(bson::oid::ObjectId::new().to_hex())
        }
        persistence_core::FieldType::Scalar(persistence_core::ScalarType::Uuid) => {
            persistence_core::Value::Uuid(uuid::Uuid::new_v4())
        }
        _ => {
            return Err(persistence_core::Error::unsupported(format!(
                "{}: MongoDB assigns no integer ids; set the id (or make it a String ObjectId)",
                meta.name
            )));
        }
    };
    record.values[i] = id;
    Ok(true)
}
