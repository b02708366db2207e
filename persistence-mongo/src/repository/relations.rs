//! Declared relations on MongoDB (see [`persistence_core::relation`]),
//! enforced by the repository: MongoDB has no foreign keys.
//!
//! * **A write naming a missing parent** (`insert`, `insert_many`,
//!   `update`, `upsert`, and `patch` / `update_where` setting a key) is
//!   refused with `Conflict(MissingParent)` after one `countDocuments` per
//!   relation on the parent collection (soft-deleted parents count, as in
//!   SQL). An update may only `set` or `unset` a key (anything else is
//!   `InvalidInput`).
//! * **Deleting a parent** (`delete`, `delete_many`, `purge`,
//!   `find_one_and_delete` that remove documents; a soft delete keeps them)
//!   first plans the whole cascade: the children come from the parent's
//!   `has_many` / `has_one` and from every child entity this process made a
//!   repository for ([`persistence_core::relation::register`]); a
//!   `restrict` child found anywhere refuses the delete before anything is
//!   written (`Conflict(Referenced)`). Then `set_null` keys are cleared and
//!   the documents are deleted, children first.
//!
//! **Atomicity.** Where the deployment supports transactions (replica set,
//! sharded cluster) a delete with its cascade runs in one transaction
//! (retried on transient errors), or in the caller's
//! [`MongoStore::transaction`](crate::MongoStore::transaction). Without
//! them (a standalone server) the steps are separate writes: a failure
//! half-way leaves the children removed so far removed, and a child
//! inserted concurrently, after the plan, is left behind as an orphan. The
//! parent check of a child write is a read, and reads take no locks on
//! MongoDB: a parent deleted between the check and the write leaves an
//! orphan too, with or without transactions.

use std::collections::HashSet;
use std::sync::Arc;

use bson::{Bson, Document, doc};
use futures_util::TryStreamExt as _;
use mongodb::error::TRANSIENT_TRANSACTION_ERROR;
use mongodb::{Collection, Database};
use persistence_core::relation::{OnDelete, children_of};
use persistence_core::{
    Entity, EntityMeta, Error, Filter, Record, Result, Update, UpdateOp, Value,
};
use tokio::sync::Mutex;

use super::{MongoRepository, SharedSession};
use crate::codec::from_document;
use crate::error::map_plain;
use crate::query::to_query;

/// Run a driver action in `session` when there is one.
macro_rules! in_session {
    ($session:expr, $action:expr) => {
        match $session {
            Some(s) => {
                let mut guard = s.lock().await;
                $action.session(&mut *guard).await
            }
            None => $action.await,
        }
    };
}

async fn ids_of(
    coll: &Collection<Document>,
    filter: Document,
    session: Option<&SharedSession>,
) -> Result<Vec<Bson>> {
    let find = coll.find(filter).projection(doc! { "_id": 1 });
    let docs: Vec<Document> = match session {
        Some(s) => {
            let mut guard = s.lock().await;
            let mut cursor = find.session(&mut *guard).await.map_err(map_plain)?;
            cursor
                .stream(&mut guard)
                .try_collect()
                .await
                .map_err(map_plain)?
        }
        None => find
            .await
            .map_err(map_plain)?
            .try_collect()
            .await
            .map_err(map_plain)?,
    };
    Ok(docs
        .into_iter()
        .filter_map(|mut d| d.remove("_id"))
        .collect())
}

/// `{ key: { $in: ids } }`.
fn field_in(key: &str, ids: Vec<Bson>) -> Document {
    let mut d = Document::new();
    d.insert(key, doc! { "$in": ids });
    d
}

fn collection(db: &Database, meta: &EntityMeta) -> Collection<Document> {
    db.collection(meta.name)
}

/// Remove the documents of `meta` matching `filter` with what their
/// children's `on_delete` asks (see the module docs); returns how many of
/// `meta`'s documents went.
async fn remove(
    db: &Database,
    session: Option<&SharedSession>,
    meta: &'static EntityMeta,
    filter: Document,
) -> Result<u64> {
    let ids = ids_of(&collection(db, meta), filter, session).await?;
    if ids.is_empty() {
        return Ok(0);
    }
    let mut seen: HashSet<(&'static str, String)> = ids
        .iter()
        .map(|id| (meta.name, format!("{id:?}")))
        .collect();
    let mut doomed: Vec<(&'static EntityMeta, Vec<Bson>)> = vec![(meta, ids)];
    let mut nulls: Vec<(&'static EntityMeta, &'static str, Vec<Bson>)> = Vec::new();
    let mut next = 0;
    while next < doomed.len() {
        let (parent, ids) = doomed[next].clone();
        next += 1;
        for (child, r) in children_of(parent) {
            let coll = collection(db, child);
            let refs = field_in(r.key, ids.clone());
            match r.on_delete {
                OnDelete::Restrict => {
                    let n = in_session!(session, coll.count_documents(refs.clone()))
                        .map_err(map_plain)?;
                    if n > 0 {
                        return Err(Error::referenced(
                            child.relation_path(r),
                            format!("{n} documents of {} still refer to it", child.name),
                        ));
                    }
                }
                OnDelete::SetNull => nulls.push((child, r.key, ids.clone())),
                OnDelete::Cascade => {
                    let fresh: Vec<Bson> = ids_of(&coll, refs, session)
                        .await?
                        .into_iter()
                        .filter(|id| seen.insert((child.name, format!("{id:?}"))))
                        .collect();
                    if !fresh.is_empty() {
                        doomed.push((child, fresh));
                    }
                }
            }
        }
    }
    for (child, key, ids) in nulls {
        let coll = collection(db, child);
        let refs = field_in(key, ids);
        let mut clear = Document::new();
        clear.insert(key, Bson::Null);
        in_session!(
            session,
            coll.update_many(refs.clone(), doc! { "$set": clear.clone() })
        )
        .map_err(map_plain)?;
    }
    let mut removed = 0;
    for (m, ids) in doomed.iter().rev() {
        let coll = collection(db, m);
        let res = in_session!(
            session,
            coll.delete_many(doc! { "_id": { "$in": ids.clone() } })
        )
        .map_err(map_plain)?;
        if std::ptr::eq(*m, meta) {
            removed = res.deleted_count;
        }
    }
    Ok(removed)
}

fn transient(e: &mongodb::error::Error) -> bool {
    e.contains_label(TRANSIENT_TRANSACTION_ERROR)
}

impl<E: Entity> MongoRepository<E> {
    fn database(&self) -> Database {
        self.coll.client().database(&self.coll.namespace().db)
    }

    /// Whether deleting `E` documents must look at children.
    pub(super) fn has_children() -> bool {
        !children_of(E::meta()).is_empty()
    }

    /// Remove the documents matching `filter` and apply their children's
    /// `on_delete`, in a transaction where there is one (see the module docs).
    pub(super) async fn remove_related(&self, filter: Document, op: &'static str) -> Result<u64> {
        let meta = E::meta();
        let db = self.database();
        let ctx = |e: Error| e.in_context(meta.name, op);
        if let Some(s) = &self.session {
            return remove(&db, Some(s), meta, filter).await.map_err(ctx);
        }
        if !self.supports_transactions().await.map_err(ctx)? {
            return remove(&db, None, meta, filter).await.map_err(ctx);
        }
        let session = self
            .coll
            .client()
            .start_session()
            .await
            .map_err(|e| ctx(map_plain(e)))?;
        let session: SharedSession = Arc::new(Mutex::new(session));
        let mut attempt = 0;
        loop {
            attempt += 1;
            session
                .lock()
                .await
                .start_transaction()
                .await
                .map_err(|e| ctx(map_plain(e)))?;
            let out = remove(&db, Some(&session), meta, filter.clone()).await;
            let mut guard = session.lock().await;
            match out {
                Ok(n) => match guard.commit_transaction().await {
                    Ok(()) => return Ok(n),
                    Err(e) if transient(&e) && attempt < 3 => continue,
                    Err(e) => return Err(ctx(map_plain(e).with_operation("commit"))),
                },
                Err(e) => {
                    let _ = guard.abort_transaction().await;
                    if e.is_retryable() && attempt < 3 {
                        continue;
                    }
                    return Err(ctx(e));
                }
            }
        }
    }

    /// `find_one_and_delete` of a parent: the first document, removed with
    /// its children (again when another caller took it first).
    pub(super) async fn pop_related(&self, filter: Document, sort: Document) -> Result<Option<E>> {
        let op = "find_one_and_delete";
        for _ in 0..16 {
            let found = in_session!(
                self.session.as_ref(),
                self.coll.find_one(filter.clone()).sort(sort.clone())
            )
            .map_err(self.err(op))?;
            let Some(d) = found else {
                return Ok(None);
            };
            let entity = from_document::<E>(&d).map_err(|e| e.in_context(E::meta().name, op))?;
            let id = d.get("_id").cloned().unwrap_or(Bson::Null);
            if self.remove_related(doc! { "_id": id }, op).await? > 0 {
                return Ok(Some(entity));
            }
        }
        Err(
            Error::concurrent("find_one_and_delete: other callers kept taking the first document")
                .in_context(E::meta().name, op),
        )
    }

    /// Refuse `entities` whose non-null keys name missing parents.
    pub(super) async fn check_parents<'e>(
        &self,
        entities: impl IntoIterator<Item = &'e E>,
        op: &'static str,
    ) -> Result<()> {
        let meta = E::meta();
        if self.cross.enforced(meta).next().is_none() {
            return Ok(());
        }
        let records = entities
            .into_iter()
            .map(Record::from_entity)
            .collect::<Result<Vec<_>>>()?;
        for r in self.cross.enforced(meta) {
            let Some((i, _)) = meta.field(r.key) else {
                continue;
            };
            let values = records.iter().map(|rec| rec.get(i).clone()).collect();
            self.check_values(r, values, op).await?;
        }
        Ok(())
    }

    /// Refuse an update that sets a key to a missing parent.
    pub(super) async fn check_update(&self, update: &Update<E>, op: &'static str) -> Result<()> {
        let meta = E::meta();
        for r in self.cross.enforced(meta) {
            for a in update.assignments().iter().filter(|a| &*a.field == r.key) {
                match &a.op {
                    UpdateOp::Set(v) => self.check_values(r, vec![v.clone()], op).await?,
                    UpdateOp::Unset => {}
                    _ => {
                        return Err(Error::invalid_input(format!(
                            "the key `{}` of relation `{}` can only be set or unset",
                            r.key,
                            meta.relation_path(r)
                        ))
                        .in_context(meta.name, op));
                    }
                }
            }
        }
        Ok(())
    }

    async fn check_values(
        &self,
        r: &persistence_core::relation::RelationMeta,
        mut values: Vec<Value>,
        op: &'static str,
    ) -> Result<()> {
        let meta = E::meta();
        values.retain(|v| !matches!(v, Value::Null));
        values.sort_by(|a, b| a.total_cmp(b));
        values.dedup_by(|a, b| a.total_cmp(b).is_eq());
        if values.is_empty() {
            return Ok(());
        }
        let target = (r.target)();
        let want = values.len() as u64;
        let f = to_query(target, &Filter::field(target.id_field().name).is_in(values))
            .map_err(|e| e.in_context(meta.name, op))?;
        let coll = collection(&self.database(), target);
        let n = in_session!(self.session.as_ref(), coll.count_documents(f.clone()))
            .map_err(self.err(op))?;
        if n < want {
            return Err(Error::missing_parent(
                meta.relation_path(r),
                format!(
                    "{} refers to a {} that does not exist",
                    meta.name, target.name
                ),
            )
            .in_context(meta.name, op));
        }
        Ok(())
    }
}
