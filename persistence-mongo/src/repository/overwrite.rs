//! `update` and `upsert` of [`MongoRepository`]: writes of a whole entity,
//! with its managed timestamps (see [`persistence_core::lifecycle`]).
//!
//! * `update` of an entity without a `created_at` field:
//!   `updateOne({_id, version?}, {$set: <every field but _id>})`, returning
//!   the entity as written (a `$set` rather than a replacement, so fields
//!   the entity does not know, written by other programs, stay). With a
//!   `created_at` field the stored value must survive, so it is
//!   `findOneAndUpdate({_id, version?}, {$set: <every field but _id
//!   and created_at>}, returnDocument: after)`, returning the document the
//!   server answers (decoded as `get` decodes). Either way `updated_at` is
//!   the client's now, the version the caller's + 1, and when nothing
//!   matched, the stored version tells `NotFound` from `Conflict(Version)`
//!   (and a repeat of an update that had landed from both, see
//!   `holds_own_update`).
//! * `upsert` without a version or `created_at` field: `updateOne({_id},
//!   {$set: <fields>}, upsert)`. Otherwise `findOneAndUpdate({_id},
//!   {$set: <fields>, $setOnInsert: {created_at}, $inc: {version: 1}}, upsert, after)`: an
//!   inserting upsert sets `created_at` = `updated_at` = now, an overwriting
//!   one keeps the stored `created_at`; the version is incremented on the
//!   server (missing → 1). The server's document is returned.

use bson::{Document, doc};
use mongodb::options::ReturnDocument;
use persistence_core::lifecycle;
use persistence_core::{ConflictKind, Entity, Error, ErrorKind, Result};

use super::MongoRepository;
use crate::codec::{from_document, id_to_bson};

impl<E: Entity> MongoRepository<E> {
    pub(super) async fn update_doc(&self, entity: &E) -> Result<E> {
        let meta = E::meta();
        let ctx = |e: Error| e.in_context(meta.name, "update");
        let id = id_to_bson::<E>(entity.id()).map_err(ctx)?;
        let expected = entity.version();
        let (stored, doc) =
            Self::document(entity, expected.map(|v| v + 1), lifecycle::now(), false)
                .map_err(ctx)?;
        let mut filter = doc! { "_id": id.clone() };
        if let (Some(k), Some(v)) = (Self::version_key(), expected) {
            filter.insert(k, v);
        }
        let landed = match Self::created_key() {
            None => match exec!(
                self,
                self.coll
                    .update_one(filter.clone(), doc! { "$set": set_of(&doc, &id) })
            ) {
                Ok(r) => (r.matched_count == 1).then(|| stored.clone()),
                Err(e) => {
                    let e = self.err("update")(e);
                    return Err(ctx(self.resolve_duplicate(e, &doc, false).await));
                }
            },
            Some(created) => {
                let mut set = doc.clone();
                set.remove("_id");
                set.remove(created);
                if set.is_empty() {
                    // Nothing but the id and created_at: an update must name a field.
                    set.insert("_id", id.clone());
                }
                let update = doc! { "$set": set };
                let res = exec!(
                    self,
                    self.coll
                        .find_one_and_update(filter.clone(), update.clone())
                        .return_document(ReturnDocument::After)
                );
                match res {
                    Ok(Some(d)) => Some(from_document::<E>(&d).map_err(ctx)?),
                    Ok(None) => None,
                    Err(e) => {
                        let e = self.err("update")(e);
                        return Err(ctx(self.resolve_duplicate(e, &doc, false).await));
                    }
                }
            }
        };
        if let Some(e) = landed {
            return Ok(e);
        }
        match self.stored_version(&id, "update").await? {
            Some(actual) if expected.is_some() => {
                if actual.is_some() && actual == expected.and_then(|v| v.checked_add(1)) {
                    // What this update writes, at the caller's version.
                    let mut written = stored;
                    if let Some(v) = expected {
                        written.set_version(v);
                    }
                    if let Some(current) = self.holds_own_update(&id, &written).await {
                        return Ok(current);
                    }
                }
                Err(ctx(Error::stale_version(expected, actual)))
            }
            // Deleted and possibly re-created between the two calls: report the race.
            Some(_) => Err(ctx(Error::concurrent("concurrent modification"))),
            None => Err(ctx(Error::not_found(format!(
                "no {} with this id",
                meta.name
            )))),
        }
    }

    pub(super) async fn upsert_doc(&self, entity: &E) -> Result<E> {
        let meta = E::meta();
        let ctx = |e: Error| e.in_context(meta.name, "upsert");
        // created_at = updated_at = now; created_at is written on insert only.
        let (stored, doc) = Self::document(entity, None, lifecycle::now(), true).map_err(ctx)?;
        // The document's: a generated id unset in `entity` has been assigned.
        let id = match doc.get("_id") {
            Some(id) => id.clone(),
            None => id_to_bson::<E>(entity.id()).map_err(ctx)?,
        };
        let (version, created) = (Self::version_key(), Self::created_key());
        if version.is_none() && created.is_none() {
            if let Err(e) = exec!(
                self,
                self.coll
                    .update_one(
                        doc! { "_id": id.clone() },
                        doc! { "$set": set_of(&doc, &id) }
                    )
                    .upsert(true)
            ) {
                let e = self.err("upsert")(e);
                return Err(ctx(self.resolve_duplicate(e, &doc, false).await));
            }
            return Ok(stored);
        }
        // Atomic: set every field, created_at only when inserting, increment
        // the version (missing → 1 on insert).
        let mut set = doc.clone();
        set.remove("_id");
        let mut update = Document::new();
        if let Some(k) = created {
            if let Some(v) = set.remove(k) {
                update.insert("$setOnInsert", doc! { k: v });
            }
        }
        if let Some(k) = version {
            set.remove(k);
            update.insert("$inc", doc! { k: 1_i64 });
        }
        if !set.is_empty() {
            update.insert("$set", set);
        }
        let mut attempt = 0;
        loop {
            let res = exec!(
                self,
                self.coll
                    .find_one_and_update(doc! { "_id": id.clone() }, update.clone())
                    .upsert(true)
                    .return_document(ReturnDocument::After)
            );
            match res {
                Ok(Some(d)) => return from_document::<E>(&d).map_err(ctx),
                Ok(None) => return Err(ctx(Error::backend("upsert returned no document"))),
                // A unique index other than `_id` names itself; an unnamed
                // duplicate is two concurrent upserts of a new id: the loser
                // retries, which now finds the document and updates it.
                Err(e) => {
                    let mapped = self
                        .resolve_duplicate(self.err("upsert")(e), &doc, false)
                        .await;
                    let race = matches!(
                        mapped.kind(),
                        ErrorKind::Conflict(ConflictKind::Unique { constraint: None })
                    );
                    if race && attempt < 2 {
                        attempt += 1;
                        continue;
                    }
                    return Err(mapped);
                }
            }
        }
    }
}

/// The `$set` of a whole-entity write: every field but `_id` (or `_id`
/// alone when the entity has no other field: an update must name one).
fn set_of(doc: &Document, id: &bson::Bson) -> Document {
    let mut set = doc.clone();
    set.remove("_id");
    if set.is_empty() {
        set.insert("_id", id.clone());
    }
    set
}
