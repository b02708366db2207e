//! [`MongoRepository`]: the core [`Repository`] over one collection — the
//! type, its construction and the trait impl. Its per-repository settings
//! (`with_*`) are in `repository/settings.rs`; what the writes share
//! (documents as stored, version checks, naming the index behind a
//! duplicate key, the transactional `insert_many`) in `repository/write.rs`;
//! `patch`, `update_where` and `find_one_and_delete` in `repository/patch.rs`.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use bson::{Document, doc};
use futures_util::{StreamExt as _, TryStreamExt as _};
use mongodb::action::Action as _;
use mongodb::{ClientSession, Collection, Database};
use persistence_core::lifecycle;
use persistence_core::repository::support;
use persistence_core::{
    BoxStream, Capabilities, Cursor, Entity, Error, Filter, GroupBy, Guard, NearestQuery, Page,
    Query, Repository, Result, TimestampPrecision, Update, Value,
};
use tokio::sync::Mutex;

use crate::codec::{from_document, id_to_bson};
use crate::error::map;
use crate::query::{to_query, to_sort};
use crate::schema::{self, PartialIndex, Validation};

/// Run a driver action, inside the bound session if there is one.
macro_rules! exec {
    ($self:expr, $action:expr) => {
        match &$self.session {
            Some(s) => {
                let mut guard = s.lock().await;
                $action.session(&mut *guard).await
            }
            None => $action.await,
        }
    };
}

/// A session shared by the repositories of one transaction (see
/// [`crate::transaction`]; defined here, where the repository holds it).
pub type SharedSession = Arc<Mutex<ClientSession>>;

mod group_by;
mod overwrite;
mod patch;
mod raw;
mod relations;
mod select;
mod settings;
mod stream;
mod write;

/// A repository of entities `E` stored as documents of one collection (named
/// after the entity). Cheap to clone.
///
/// `insert`, `update` and `upsert` return the entity as stored, what `get`
/// reads next: timestamps are truncated toward the past to milliseconds
/// (BSON dates) *before* the document is built, and the returned entity
/// carries the truncated values. Nothing else changes on the way through
/// BSON (decimal128 keeps a `Decimal`'s digits and scale, doubles keep
/// `-0.0`, see [`crate::codec`]), so the written document is not read
/// back; a versioned `upsert` returns the server's document (it increments
/// the version there).
///
/// Managed timestamps and soft delete follow [`persistence_core::lifecycle`]:
/// `insert`, `insert_many` and an inserting `upsert` set `created_at` =
/// `updated_at` = the client's now; `update` and an overwriting `upsert`
/// set `updated_at` and keep the stored `created_at` (for entities with a
/// `created_at` field they are `findOneAndUpdate`s that do not write it,
/// and return the server's document; see `repository/overwrite.rs`).
/// `get` and `get_many` see live documents only (the condition is part of
/// the query), `patch` reaches the documents of its guard's scope, and
/// unique indexes of soft-deletable entities are partial over live
/// documents (see [`crate::schema`]).
///
/// `insert_many` is all-or-nothing when the deployment supports
/// transactions (replica set or sharded cluster; the
/// [`Capabilities::atomic_batch`] capability then says so): the batch is
/// inserted in its own transaction, retried as a whole (at most 3 times) on
/// `TransientTransactionError`. Such a batch is bound by MongoDB's
/// transaction limits (by default 60 s of lifetime); split very large loads
/// or use [`with_atomic_batches(false)`](Self::with_atomic_batches). Inside a
/// [`MongoStore::transaction`](crate::MongoStore::transaction) the batch is
/// part of that transaction. Otherwise (standalone server, or atomic batches
/// turned off) it is one ordered insert: it stops at the first failing
/// document, the documents before it stay inserted, and the error names the
/// failing row (`row i: ...`) and says that the `i` rows before it landed.
///
/// A versioned `update` that finds the stored document already at its
/// version + 1 **with its own content** reports success instead of
/// `Conflict(Version)`: that is what the driver's retryable-write repeat of an
/// update that had landed (its answer lost, e.g. across a server restart)
/// looks like. Repeating an identical update is therefore harmless here
/// (managed timestamps are not compared: the repository sets them);
/// an update with other content still gets the conflict.
pub struct MongoRepository<E: Entity> {
    coll: Collection<Document>,
    validation: Option<Validation>,
    /// Server-side time limit (`maxTimeMS`) of reads; exceeding it is `Timeout`.
    max_time: Option<Duration>,
    /// Set for repositories bound to a transaction (see [`crate::transaction`]).
    session: Option<SharedSession>,
    /// Whether the server supports transactions: [`TX_UNKNOWN`] until
    /// `ensure_schema` or the first `insert_many` asks the server.
    transactions: Arc<AtomicU8>,
    /// `insert_many` in a transaction when the server supports them.
    atomic_batches: bool,
    /// Partial indexes ensured by `ensure_schema` besides the metadata's.
    partial_indexes: Arc<Vec<PartialIndex>>,
    /// What `ensure_schema` may do to a collection it did not create.
    policy: persistence_core::names::SchemaPolicy,
    /// Records the raw calls (`repository/raw.rs`).
    raw_metrics: Option<Arc<persistence_core::layer::Metrics>>,
    /// Whether the collection has the library's text index (`$text`
    /// usable): [`TX_UNKNOWN`] until `ensure_schema` tried to create it
    /// (see `crate::text`).
    text_index: Arc<AtomicU8>,
    /// Relations whose parent lives in another store: not checked here.
    cross: persistence_core::relation::CrossStore,
    _entity: PhantomData<fn() -> E>,
}

impl<E: Entity> Clone for MongoRepository<E> {
    fn clone(&self) -> Self {
        MongoRepository {
            coll: self.coll.clone(),
            validation: self.validation,
            max_time: self.max_time,
            session: self.session.clone(),
            transactions: self.transactions.clone(),
            atomic_batches: self.atomic_batches,
            partial_indexes: self.partial_indexes.clone(),
            policy: self.policy,
            raw_metrics: self.raw_metrics.clone(),
            text_index: self.text_index.clone(),
            cross: self.cross.clone(),
            _entity: PhantomData,
        }
    }
}

impl<E: Entity> std::fmt::Debug for MongoRepository<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MongoRepository")
            .field("namespace", &self.coll.namespace().to_string())
            .finish()
    }
}

impl<E: Entity> MongoRepository<E> {
    /// The repository of `E` in `db` (collection `E::meta().name`).
    pub fn new(db: &Database) -> Self {
        Self::with_collection(db.collection(E::meta().name))
    }

    /// The repository of `E` over a given collection.
    pub fn with_collection(coll: Collection<Document>) -> Self {
        // Parents find this entity's relations when they delete (see `repository/relations.rs`).
        persistence_core::relation::register(E::meta());
        MongoRepository {
            coll,
            validation: Some(Validation::default()),
            max_time: None,
            session: None,
            transactions: Arc::new(AtomicU8::new(TX_UNKNOWN)),
            atomic_batches: true,
            partial_indexes: Arc::new(Vec::new()),
            policy: persistence_core::names::SchemaPolicy::Managed,
            raw_metrics: None,
            text_index: Arc::new(AtomicU8::new(TX_UNKNOWN)),
            cross: persistence_core::relation::CrossStore::none(),
            _entity: PhantomData,
        }
    }

    /// The same repository, not checking the parents of the relations in
    /// `cross`: their targets live in another store (see
    /// [`persistence_core::relation::CrossStore`]).
    pub fn with_cross_store(mut self, cross: persistence_core::relation::CrossStore) -> Self {
        self.cross = cross;
        self
    }

    /// Whether the server supports multi-document transactions (asked once
    /// with `hello`, then remembered by this repository and its clones).
    pub async fn supports_transactions(&self) -> Result<bool> {
        match self.transactions.load(Ordering::Relaxed) {
            TX_YES => return Ok(true),
            TX_NO => return Ok(false),
            _ => {}
        }
        let hello = self
            .coll
            .client()
            .database("admin")
            .run_command(doc! { "hello": 1 })
            .await
            .map_err(self.err("hello"))?;
        let tx = hello.get_str("setName").is_ok() || hello.get_str("msg") == Ok("isdbgrid");
        self.transactions
            .store(if tx { TX_YES } else { TX_NO }, Ordering::Relaxed);
        Ok(tx)
    }

    /// The same repository bound to a transaction's session.
    pub(crate) fn in_session(&self, session: SharedSession) -> Self {
        let mut r = self.clone();
        r.session = Some(session);
        r
    }

    fn err(&self, op: &'static str) -> impl Fn(mongodb::error::Error) -> Error {
        move |e| crate::error::map_in(e, E::meta(), op)
    }

    /// `by_id` restricted to live documents when `E` soft-deletes: `get` and
    /// `get_many` do not see deleted ones (the condition is in the query,
    /// so deleted documents are not even sent).
    fn live(&self, by_id: Document, op: &'static str) -> Result<Document> {
        let meta = E::meta();
        let scope = lifecycle::patch_scope(meta, &Guard::none())
            .and_then(|s| s.map(|f| to_query(meta, &f)).transpose())
            .map_err(|e| e.in_context(meta.name, op))?;
        Ok(match scope {
            Some(s) if !s.is_empty() => doc! { "$and": [by_id, s] },
            _ => by_id,
        })
    }

    fn find_action(&self, q: &Query) -> Result<(Document, Document)> {
        let meta = E::meta();
        Ok((to_query(meta, &q.filter)?, to_sort(meta, &q.sort)?))
    }
}

pub(crate) const TX_UNKNOWN: u8 = 0;
pub(crate) const TX_YES: u8 = 1;
pub(crate) const TX_NO: u8 = 2;

impl<E: Entity> Repository<E> for MongoRepository<E> {
    fn capabilities(&self) -> Capabilities {
        let mut c = Capabilities::full("mongo");
        // Through `MongoStore::transaction`; known after `ensure_schema`
        // (or the first `insert_many`).
        let tx = self.transactions.load(Ordering::Relaxed) == TX_YES;
        c.transactions = tx;
        // Inside a caller's transaction the batch is part of it.
        c.atomic_batch = self.session.is_some() || (tx && self.atomic_batches);
        c.timestamp_precision = TimestampPrecision::Millis;
        // No row locks (see `crate::transaction`).
        c.row_locks = false;
        // Neither `$text` (MongoDB's own stop words and phrase rules) nor
        // the `$regex` fallback follows the word rules (see `crate::text`).
        c.native_text_search = false;
        c.text_index = self.text_index.load(Ordering::Relaxed) == TX_YES;
        c
    }

    async fn ensure_schema(&self) -> Result<()> {
        schema::ensure_with_policy(
            &self.coll,
            E::meta(),
            self.validation.as_ref(),
            &self.partial_indexes,
            self.policy,
        )
        .await?;
        let text = crate::text::ensure_text_index(&self.coll, E::meta(), self.policy).await?;
        self.text_index
            .store(if text { TX_YES } else { TX_NO }, Ordering::Relaxed);
        self.transactions.store(TX_UNKNOWN, Ordering::Relaxed);
        self.supports_transactions()
            .await
            .map_err(|e| e.with_operation("ensure_schema"))?;
        Ok(())
    }

    async fn verify_schema(&self) -> Result<persistence_core::SchemaReport> {
        schema::verify(
            &self.coll,
            E::meta(),
            self.validation.as_ref(),
            &self.partial_indexes,
        )
        .await
    }

    async fn get(&self, id: &E::Id) -> Result<Option<E>> {
        let id = id_to_bson::<E>(id)?;
        let filter = self.live(doc! { "_id": id }, "get")?;
        let found = exec!(self, self.coll.find_one(filter.clone())).map_err(self.err("get"))?;
        found
            .map(|d| from_document::<E>(&d))
            .transpose()
            .map_err(|e| e.in_context(E::meta().name, "get"))
    }

    async fn get_many(&self, ids: &[E::Id]) -> Result<Vec<E>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let keys = ids
            .iter()
            .map(id_to_bson::<E>)
            .collect::<Result<Vec<_>>>()?;
        let mut found: HashMap<E::Id, E> = HashMap::with_capacity(ids.len());
        let filter = self.live(doc! { "_id": { "$in": keys } }, "get_many")?;
        let docs: Vec<Document> = match &self.session {
            Some(s) => {
                let mut guard = s.lock().await;
                let mut cursor = self
                    .coll
                    .find(filter)
                    .session(&mut *guard)
                    .await
                    .map_err(self.err("get_many"))?;
                cursor
                    .stream(&mut guard)
                    .try_collect()
                    .await
                    .map_err(self.err("get_many"))?
            }
            None => self
                .coll
                .find(filter)
                .await
                .map_err(self.err("get_many"))?
                .try_collect()
                .await
                .map_err(self.err("get_many"))?,
        };
        for d in &docs {
            let e = from_document::<E>(d)?;
            found.insert(e.id().clone(), e);
        }
        let mut out = Vec::with_capacity(found.len());
        for id in ids {
            if let Some(e) = found.remove(id) {
                out.push(e);
            }
        }
        Ok(out)
    }

    async fn insert(&self, entity: &E) -> Result<E> {
        self.check_parents([entity], "insert").await?;
        let (entity, doc) = Self::document(
            entity,
            Self::version_key().map(|_| 1),
            lifecycle::now(),
            true,
        )
        .map_err(|e| e.in_context(E::meta().name, "insert"))?;
        if let Err(e) = exec!(self, self.coll.insert_one(&doc)) {
            let e = self.err("insert")(e);
            return Err(self
                .resolve_duplicate(e, &doc, true)
                .await
                .in_context(E::meta().name, "insert"));
        }
        Ok(entity)
    }

    async fn insert_many(&self, entities: &[E]) -> Result<u64> {
        if entities.is_empty() {
            return Ok(0);
        }
        self.check_parents(entities, "insert_many").await?;
        let version = Self::version_key().map(|_| 1);
        // One time for the whole call (see `lifecycle`).
        let now = lifecycle::now();
        let docs = entities
            .iter()
            .enumerate()
            .map(|(i, e)| {
                Self::document(e, version, now, true)
                    .map(|(_, d)| d)
                    .map_err(|err| Error::invalid_input(format!("row {i}: {}", err.message())))
            })
            .collect::<Result<Vec<_>>>()
            .map_err(|e| e.in_context(E::meta().name, "insert_many"))?;
        let n = docs.len() as u64;
        let atomic = self.session.is_none()
            && self.atomic_batches
            && self
                .supports_transactions()
                .await
                .map_err(|e| e.in_context(E::meta().name, "insert_many"))?;
        let result = if atomic {
            self.insert_atomic(&docs).await
        } else {
            exec!(self, self.coll.insert_many(&docs).ordered(true)).map(|_| ())
        };
        let Err(e) = result else {
            return Ok(n);
        };
        let row = match e.kind.as_ref() {
            mongodb::error::ErrorKind::InsertMany(m) => m
                .write_errors
                .as_ref()
                .and_then(|w| w.first().map(|x| x.index)),
            _ => None,
        };
        let mut mapped = map(e, E::meta());
        if let Some(d) = row.and_then(|i| docs.get(i)) {
            mapped = self.resolve_duplicate(mapped, d, true).await;
        }
        let landed = match (atomic || self.session.is_some(), row) {
            (true, _) => " (nothing of the batch was kept)".to_string(),
            (false, Some(i)) => {
                format!(" (not atomic: the {i} rows before it were inserted, none after)")
            }
            (false, None) => String::new(),
        };
        Err(match row {
            Some(i) => Error::new(
                mapped.kind().clone(),
                format!("row {i}: {}{landed}", mapped.message()),
            )
            .set_retryable(mapped.is_retryable())
            .with_outcome(mapped.outcome())
            .with_source(mapped),
            None => mapped,
        }
        .in_context(E::meta().name, "insert_many"))
    }

    async fn update(&self, entity: &E) -> Result<E> {
        self.check_parents([entity], "update").await?;
        self.update_doc(entity).await
    }

    async fn upsert(&self, entity: &E) -> Result<E> {
        self.check_parents([entity], "upsert").await?;
        self.upsert_doc(entity).await
    }

    async fn delete(&self, id: &E::Id) -> Result<bool> {
        if lifecycle::soft_deletes::<E>() {
            return lifecycle::soft_delete(self, id)
                .await
                .map_err(|e| e.in_context(E::meta().name, "delete"));
        }
        persistence_core::tenant::require(E::meta())
            .map_err(|e| e.in_context(E::meta().name, "delete"))?;
        let id = id_to_bson::<E>(id)?;
        if Self::has_children() {
            let n = self.remove_related(doc! { "_id": id }, "delete").await?;
            return Ok(n > 0);
        }
        let res = exec!(self, self.coll.delete_one(doc! { "_id": id.clone() }))
            .map_err(self.err("delete"))?;
        Ok(res.deleted_count > 0)
    }

    async fn delete_many(&self, filter: &Filter) -> Result<u64> {
        if lifecycle::soft_deletes::<E>() {
            return lifecycle::soft_delete_many(self, filter)
                .await
                .map_err(|e| e.in_context(E::meta().name, "delete_many"));
        }
        self.purge_as(filter, "delete_many").await
    }

    async fn purge(&self, filter: &Filter) -> Result<u64> {
        self.purge_as(filter, "purge").await
    }

    async fn find(&self, query: &Query) -> Result<Vec<E>> {
        let mut s = self.stream(query);
        let mut out = Vec::new();
        while let Some(e) = s.next().await {
            out.push(e?);
        }
        Ok(out)
    }

    /// The rows of `find`: a sort the index covers costs MongoDB little.
    async fn find_unordered(&self, query: &Query) -> Result<Vec<E>> {
        self.find(query).await
    }

    async fn find_one(&self, query: &Query) -> Result<Option<E>> {
        support::find_one_via_find(self, query).await
    }

    async fn count(&self, filter: &Filter) -> Result<u64> {
        let meta = E::meta();
        let f = filter
            .checked(meta)
            .and_then(|f| to_query(meta, &f))
            .map_err(|e| e.in_context(meta.name, "count"))?;
        exec!(
            self,
            self.coll
                .count_documents(f.clone())
                .optional(self.max_time, |a, t| a.max_time(t))
        )
        .map_err(self.err("count"))
    }

    async fn exists(&self, filter: &Filter) -> Result<bool> {
        let meta = E::meta();
        let f = filter
            .checked(meta)
            .and_then(|f| to_query(meta, &f))
            .map_err(|e| e.in_context(meta.name, "exists"))?;
        let found = exec!(
            self,
            self.coll.find_one(f.clone()).projection(doc! { "_id": 1 })
        )
        .map_err(self.err("exists"))?;
        Ok(found.is_some())
    }

    fn stream<'a>(&'a self, query: &Query) -> BoxStream<'a, Result<E>> {
        self.stream_docs(query)
    }

    async fn page(&self, query: &Query, cursor: Option<&Cursor>) -> Result<Page<E>> {
        support::page_via_find(self, query, cursor)
            .await
            .map_err(|e| e.in_context(E::meta().name, "page"))
    }

    async fn select(&self, query: &Query, fields: &[&str]) -> Result<Vec<Value>> {
        self.select_docs(query, fields).await
    }

    async fn distinct(&self, field: &str, filter: &Filter) -> Result<Vec<Value>> {
        self.distinct_values(field, filter).await
    }

    async fn patch(&self, id: &E::Id, update: &Update<E>, guard: &Guard) -> Result<E> {
        self.check_update(update, "patch").await?;
        self.patch_doc(id, update, guard).await
    }

    async fn update_where(&self, filter: &Filter, update: &Update<E>) -> Result<u64> {
        self.check_update(update, "update_where").await?;
        self.update_where_docs(filter, update).await
    }

    async fn find_one_and_delete(&self, query: &Query) -> Result<Option<E>> {
        if lifecycle::soft_deletes::<E>() {
            return lifecycle::soft_pop(self, query)
                .await
                .map_err(|e| e.in_context(E::meta().name, "find_one_and_delete"));
        }
        self.pop(query).await
    }

    async fn aggregate(&self, filter: &Filter, group: &GroupBy<E>) -> Result<Vec<Value>> {
        self.group_by(filter, group).await
    }

    /// `$text` ranked by `textScore` where the text index exists and the
    /// search has no `or`; otherwise the `$regex` fallback ranked in the
    /// client (see `crate::text`).
    async fn find_text(&self, query: &persistence_core::TextQuery) -> Result<Vec<(E, f64)>> {
        let indexed = self.text_index.load(Ordering::Relaxed) == TX_YES;
        let ctx = |e: Error| e.in_context(E::meta().name, "find_text");
        let q = query.checked(E::meta()).map_err(ctx)?;
        let pipeline = if indexed {
            crate::text::text_pipeline(E::meta(), &q).map_err(ctx)?
        } else {
            None
        };
        match pipeline {
            Some(p) => {
                let docs = self.raw_documents("find_text", None, p).await?;
                crate::text::decode_scored::<E>(docs).map_err(ctx)
            }
            None => crate::text::find_text_fallback(self, query)
                .await
                .map_err(ctx),
        }
    }

    /// Exact brute force over the documents matching the filter
    /// (`$vectorSearch` is an Atlas-only stage; see [`persistence_core::vector`]).
    async fn find_nearest(&self, query: &NearestQuery) -> Result<Vec<(E, f64)>> {
        support::nearest_via_find(self, query)
            .await
            .map_err(|e| e.in_context(E::meta().name, "find_nearest"))
    }
}

impl<E: Entity> MongoRepository<E> {
    /// `purge`, and `delete_many` of entities without soft delete: a
    /// `deleteMany` of the documents matching (`op` names the call in errors).
    async fn purge_as(&self, filter: &Filter, op: &'static str) -> Result<u64> {
        let meta = E::meta();
        let f = lifecycle::purge_filter(filter)
            .checked(meta)
            .and_then(|f| to_query(meta, &f))
            .map_err(|e| e.in_context(meta.name, op))?;
        if Self::has_children() {
            return self.remove_related(f, op).await;
        }
        let res = exec!(self, self.coll.delete_many(f.clone())).map_err(self.err(op))?;
        Ok(res.deleted_count)
    }
}
