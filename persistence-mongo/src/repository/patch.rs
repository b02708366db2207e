//! Atomic partial updates of [`MongoRepository`]:
//!
//! * `patch`: one `findOneAndUpdate({_id, scope?, version?, guard?, range?},
//!   [<pipeline>], returnDocument: after)`; the document it returns is
//!   decoded as `get` decodes. `scope` is [`lifecycle::patch_scope`]: on a
//!   soft-deletable entity the document must be live (or deleted, when the
//!   guard's filter says `only_deleted()`), else the patch is `NotFound`.
//!   Only when it matches nothing do up to three
//!   read-only `find_one`s tell `NotFound`, `Conflict(Version)`,
//!   `Conflict(Guard)` and an integer overflow (`InvalidInput`) apart; a
//!   document that meets everything by then changed in between: retryable
//!   `Conflict(Concurrent)`.
//! * `update_where`: `updateMany(filter, [<pipeline>])`, the count is
//!   `matchedCount`. MongoDB turns an overflowing integer sum into a double
//!   instead of failing, so the statement's filter carries
//!   `Update::range_filter` (an overflowing document is never written);
//!   before it, one `countDocuments` refuses the update with
//!   `InvalidInput` when any matching document would overflow, so in the
//!   usual case nothing changes. (`updateMany` is atomic per document, not
//!   across documents, as every multi-document write on MongoDB outside a
//!   transaction.)
//! * `find_one_and_delete`: `findOneAndDelete(filter, sort)`, atomic on the
//!   server (an offset is `Unsupported`: the command has no skip).

use bson::{Document, doc};
use mongodb::options::ReturnDocument;
use persistence_core::lifecycle;
use persistence_core::{Entity, Error, Filter, Guard, Query, Result, Scope, Update};

use super::MongoRepository;
use crate::codec::{from_document, id_to_bson};
use crate::query::{to_query, to_sort};
use crate::update::pipeline;

fn all(parts: Vec<Document>) -> Document {
    let parts: Vec<Document> = parts.into_iter().filter(|d| !d.is_empty()).collect();
    match parts.len() {
        0 => Document::new(),
        1 => parts.into_iter().next().unwrap_or_default(),
        _ => doc! { "$and": parts },
    }
}

fn overflow(meta: &persistence_core::EntityMeta) -> Error {
    Error::invalid_input(format!(
        "update of {}: an inc/mul leaves its integer field's type (overflow); nothing was changed",
        meta.name
    ))
}

impl<E: Entity> MongoRepository<E> {
    /// The checked update's pipeline and its range condition (as a query).
    fn plan(&self, update: &Update<E>) -> Result<(Update<E>, Vec<Document>, Option<Document>)> {
        let meta = E::meta();
        let update = update.checked(meta)?;
        let pipe = pipeline(meta, update.assignments(), Self::version_key())?;
        // The range is a condition on values only: it sits next to a filter
        // that carries the soft-delete scope, so it names none of its own.
        let range = update
            .range_filter(meta)
            .map(|f| {
                f.or_scope(Scope::WithDeleted)
                    .checked(meta)
                    .and_then(|f| to_query(meta, &f))
            })
            .transpose()?;
        Ok((update, pipe, range))
    }

    pub(super) async fn patch_doc(
        &self,
        id: &E::Id,
        update: &Update<E>,
        guard: &Guard,
    ) -> Result<E> {
        let meta = E::meta();
        let ctx = |e: Error| e.in_context(meta.name, "patch");
        let (_, pipe, range) = self.plan(update).map_err(ctx)?;
        let guard_doc = match &guard.filter {
            Some(f) => to_query(meta, &f.checked(meta).map_err(ctx)?).map_err(ctx)?,
            None => Document::new(),
        };
        let version = match (Self::version_key(), guard.version) {
            (Some(k), Some(v)) => doc! { k: v },
            (None, Some(_)) => {
                return Err(ctx(Error::invalid_input(format!(
                    "{} has no version field to guard",
                    meta.name
                ))));
            }
            _ => Document::new(),
        };
        let id = id_to_bson::<E>(id).map_err(ctx)?;
        // The document's identity: its id and, for soft-deletable entities,
        // the scope the guard names (live documents by default).
        let scope = match lifecycle::patch_scope(meta, guard).map_err(ctx)? {
            Some(f) => to_query(meta, &f).map_err(ctx)?,
            None => Document::new(),
        };
        let by_id = all(vec![doc! { "_id": id.clone() }, scope]);
        let filter = all(vec![
            by_id.clone(),
            version,
            guard_doc.clone(),
            range.clone().unwrap_or_default(),
        ]);
        let found = exec!(
            self,
            self.coll
                .find_one_and_update(filter, pipe)
                .return_document(ReturnDocument::After)
        )
        .map_err(self.err("patch"))?;
        if let Some(d) = found {
            return from_document::<E>(&d).map_err(ctx);
        }
        // Why nothing matched: read-only checks, in the documented order.
        let Some(stored) = self.stored_version_in(by_id.clone(), "patch").await? else {
            return Err(ctx(Error::not_found(format!(
                "no {} with this id",
                meta.name
            ))));
        };
        if let Some(expected) = guard.version {
            if stored != Some(expected) {
                return Err(ctx(Error::stale_version(Some(expected), stored)));
            }
        }
        if !guard_doc.is_empty() && !self.matches(all(vec![by_id.clone(), guard_doc])).await? {
            return Err(ctx(Error::guard_failed(format!(
                "the stored {} does not match the guard",
                meta.name
            ))));
        }
        if let Some(r) = range {
            if !self.matches(all(vec![by_id, r])).await? {
                return Err(ctx(overflow(meta)));
            }
        }
        Err(ctx(Error::concurrent(
            "the document changed between the update and the check; retry",
        )))
    }

    async fn matches(&self, filter: Document) -> Result<bool> {
        let found = exec!(
            self,
            self.coll.find_one(filter).projection(doc! { "_id": 1 })
        )
        .map_err(self.err("patch"))?;
        Ok(found.is_some())
    }

    pub(super) async fn update_where_docs(
        &self,
        filter: &Filter,
        update: &Update<E>,
    ) -> Result<u64> {
        let meta = E::meta();
        let ctx = |e: Error| e.in_context(meta.name, "update_where");
        let (_, pipe, range) = self.plan(update).map_err(ctx)?;
        let f = filter
            .checked(meta)
            .and_then(|f| to_query(meta, &f))
            .map_err(ctx)?;
        if let Some(r) = &range {
            let over = all(vec![f.clone(), doc! { "$nor": [r.clone()] }]);
            let n = exec!(self, self.coll.count_documents(over.clone()))
                .map_err(self.err("update_where"))?;
            if n > 0 {
                return Err(ctx(overflow(meta)));
            }
        }
        let target = all(vec![f, range.unwrap_or_default()]);
        let res = exec!(self, self.coll.update_many(target.clone(), pipe.clone()))
            .map_err(self.err("update_where"))?;
        Ok(res.matched_count)
    }

    pub(super) async fn pop(&self, query: &Query) -> Result<Option<E>> {
        let meta = E::meta();
        let op = "find_one_and_delete";
        let q = query
            .checked(meta)
            .map_err(|e| e.in_context(meta.name, op))?;
        if q.offset > 0 {
            return Err(Error::unsupported(
                "find_one_and_delete with an offset: MongoDB's findOneAndDelete has no skip",
            )
            .in_context(meta.name, op));
        }
        let (filter, sort) =
            (|| Ok::<_, Error>((to_query(meta, &q.filter)?, to_sort(meta, &q.sort)?)))()
                .map_err(|e| e.in_context(meta.name, op))?;
        if Self::has_children() {
            return self.pop_related(filter, sort).await;
        }
        let found = exec!(
            self,
            self.coll
                .find_one_and_delete(filter.clone())
                .sort(sort.clone())
        )
        .map_err(self.err(op))?;
        found
            .map(|d| from_document::<E>(&d))
            .transpose()
            .map_err(|e| e.in_context(meta.name, op))
    }
}
