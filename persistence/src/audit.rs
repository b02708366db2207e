//! Audit trail and retention.
//!
//! [`Audited`] wraps any repository and records every successful write as an
//! [`AuditRecord`] (entity, id, operation, actor, time, changed field names)
//! in any `Repository<AuditRecord>` — a table, a MongoDB collection or memory.
//! Reads and every other method are forwarded unchanged. [`Retention`]
//! deletes records older than N days in bounded batches.
//!
//! ```no_run
//! # use persistence::audit::{AuditContext, AuditRecord, Audited, Retention};
//! # use persistence::{Entity, MemoryRepository, Repository};
//! # #[derive(Debug, Clone, serde::Serialize, serde::Deserialize, Entity)]
//! # struct User { #[entity(id)] id: i64, name: String }
//! # async fn demo() -> persistence::Result<()> {
//! let log = MemoryRepository::<AuditRecord>::new();
//! let users = Audited::new(MemoryRepository::<User>::new(), log.clone());
//! AuditContext::new("alice")
//!     .scope(async { users.insert(&User { id: 1, name: "A".into() }).await })
//!     .await?;
//! let report = Retention::days(90).run(&log).await?;   // nightly
//! # Ok(()) }
//! ```
//!
//! # With the manager
//!
//! Wrap what [`Persistence`](crate::Persistence) hands out:
//! `Audited::new(db.repo::<User>().await?, db.repo::<AuditRecord>().await?)`.
//! The audit layer is then outside the timeout / retry / breaker / cache
//! layers (a retried write is audited once, after it finally succeeds) and the
//! records go to the table `persistence_audit` of `main` (or, with
//! `db.repo_in::<AuditRecord>("docs")`, to a MongoDB collection written with
//! that database's write concern: `{ w: majority, journal: true }` unless
//! configured otherwise); set
//! `cache: { entities: { persistence_audit: { disabled: true } } }` so audit
//! records are not cached. Audit is not switched on from the configuration
//! file: which repositories are audited is a decision made in code.
//!
//! # What is recorded
//!
//! | call | operation | changed fields |
//! | --- | --- | --- |
//! | `insert`, `insert_many` | `insert` (one record per entity) | the fields with a non-null value |
//! | `update` | `update` | the fields whose value differs from the stored entity, read just before |
//! | `upsert` | `upsert` | as `update` when the entity existed, as `insert` otherwise |
//! | `delete` | `delete` (only when something was deleted) | none |
//! | `delete_many` | `delete` (one record per deleted entity) | none |
//! | `patch` | `update` | the top-level fields the [`Update`] assigns |
//! | `update_where` | `update` (one record per updated entity) | as `patch` |
//! | `find_one_and_delete` | `delete` (only when a row was returned) | none |
//!
//! The id and version fields are never listed (the version changes on every
//! write). `update` and `upsert` cost one extra `get`; `delete_many` is run
//! as batches of `find` (ids only needed) + `delete_many(filter AND id IN batch)`
//! until nothing matches, so each deleted id is known: the result is the same
//! set of rows, deleted in several statements instead of one. `update_where`
//! likewise walks the matching ids in id order, `find` (a batch) +
//! `update_where(filter AND id IN batch)`; rows that start matching while it
//! runs may be missed, as with any snapshot. `patch` costs no extra read.
//! `ensure_schema` is not audited. Changed fields are top-level field names
//! (a nested struct that changed anywhere is listed once, by its field name).
//! Records are written only when the inner call succeeded, so an
//! `insert_many` that fails part-way on a backend without all-or-nothing
//! batches (MongoDB unordered inserts) leaves its inserted rows unaudited.
//!
//! # Actor
//!
//! The actor is the one of the innermost [`AuditContext::scope`] around the
//! call (a tokio task-local: it follows the future, not the thread, and is
//! not inherited by `tokio::spawn`ed tasks), else the decorator's
//! [`Audited::default_actor`], else none.
//!
//! # Transactions and failure
//!
//! The audit record is written **after** the data write, by a second call on
//! the log repository. Whether both are atomic depends on what you wrap:
//!
//! * wrap a transaction's repositories — `Audited::new(tx.repository::<User>(),
//!   tx.repository::<AuditRecord>())` inside `RelationalStore::transaction` (or
//!   a MongoDB session) — and the record commits or rolls back with the write;
//! * wrap plain repositories and they are two separate writes. If the audit
//!   write fails, the data write has already happened. With
//!   [`OnAuditError::Fail`] (the default) the call returns a non-retryable
//!   `Backend` error saying the write succeeded but was not audited (so a retry
//!   layer outside does not repeat it); with [`OnAuditError::Log`] the call
//!   succeeds and the failure is logged at `error` level. A crash between the
//!   two writes loses the record in both modes: use a transaction where the
//!   audit trail must be complete.

use std::future::Future;

use chrono::{DateTime, Utc};
use persistence_core::repository::BoxStream;
use persistence_core::{
    Capabilities, Cursor, Entity, EntityEnum, Error, ErrorKind, Filter, GroupBy, Guard,
    NearestQuery, Page, Query, Record, Repository, Result, Update, Value, WriteOutcome,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

mod retention;
pub use retention::{Retention, RetentionReport};

/// The kind of write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, EntityEnum)]
#[serde(rename_all = "lowercase")]
pub enum AuditOperation {
    /// `insert` / `insert_many`.
    Insert,
    /// `update`.
    Update,
    /// `upsert`.
    Upsert,
    /// `delete` / `delete_many` (a soft delete for soft-deletable entities).
    Delete,
    /// `purge`: removed for good.
    Purge,
}

/// One audited write.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(name = "persistence_audit")]
pub struct AuditRecord {
    /// A UUIDv7 (time-ordered).
    #[entity(id)]
    pub id: Uuid,
    /// The entity's logical name.
    #[entity(index)]
    pub entity: String,
    /// The written entity's id, as text.
    pub entity_id: String,
    /// What was done.
    pub operation: AuditOperation,
    /// Who did it (see [`AuditContext`]).
    pub actor: Option<String>,
    /// When (after the write succeeded).
    #[entity(index)]
    pub at: DateTime<Utc>,
    /// Names of the fields written (see the module docs).
    pub changed_fields: Vec<String>,
}

tokio::task_local! {
    static CONTEXT: AuditContext;
}

/// Who is acting, for the writes made inside [`AuditContext::scope`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditContext {
    /// The actor recorded.
    pub actor: String,
}

impl AuditContext {
    /// A context for `actor`.
    pub fn new(actor: impl Into<String>) -> Self {
        AuditContext {
            actor: actor.into(),
        }
    }

    /// Run `f` with this context (nested scopes: the innermost wins).
    pub async fn scope<F: Future>(self, f: F) -> F::Output {
        CONTEXT.scope(self, f).await
    }

    /// The context of the running task, if any.
    pub fn current() -> Option<AuditContext> {
        CONTEXT.try_with(|c| c.clone()).ok()
    }
}

/// What to do when the data write succeeded but the audit write failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnAuditError {
    /// Return a non-retryable `Backend` error (the default) whose
    /// [outcome](persistence_core::Error::outcome) is `Unknown`: the write
    /// itself was applied.
    #[default]
    Fail,
    /// Log at `error` level and return the write's result.
    Log,
}

/// A repository whose writes are audited into `log` (see the module docs).
#[derive(Debug, Clone)]
pub struct Audited<R, L> {
    inner: R,
    log: L,
    default_actor: Option<String>,
    on_error: OnAuditError,
    batch: usize,
}

impl<R, L> Audited<R, L> {
    /// Audit the writes of `inner` into `log`.
    pub fn new(inner: R, log: L) -> Self {
        Audited {
            inner,
            log,
            default_actor: None,
            on_error: OnAuditError::Fail,
            batch: 500,
        }
    }

    /// The actor recorded outside any [`AuditContext::scope`].
    pub fn default_actor(mut self, actor: impl Into<String>) -> Self {
        self.default_actor = Some(actor.into());
        self
    }

    /// What to do when the audit write fails.
    pub fn on_error(mut self, on_error: OnAuditError) -> Self {
        self.on_error = on_error;
        self
    }

    /// How many ids `delete_many` deletes (and `update_where` updates) per statement (default 500).
    pub fn delete_batch(mut self, n: usize) -> Self {
        self.batch = n.max(1);
        self
    }

    /// The wrapped repository.
    pub fn inner(&self) -> &R {
        &self.inner
    }

    /// The audit log.
    pub fn log(&self) -> &L {
        &self.log
    }

    fn actor(&self) -> Option<String> {
        AuditContext::current()
            .map(|c| c.actor)
            .or_else(|| self.default_actor.clone())
    }
}

/// The id as text: strings as they are, numbers and UUIDs in their usual form.
fn id_text<E: Entity>(id: &E::Id) -> String {
    match Value::from_serialize(id) {
        Ok(Value::String(s)) => s,
        Ok(Value::I64(n)) => n.to_string(),
        Ok(Value::Uuid(u)) => u.to_string(),
        Ok(other) => other.to_json().to_string(),
        Err(_) => String::new(),
    }
}

fn id_value<E: Entity>(id: &E::Id) -> Result<Value> {
    Value::from_serialize(id)
}

fn audited_fields<E: Entity>() -> impl Iterator<Item = (usize, &'static str)> {
    let meta = E::meta();
    meta.fields
        .iter()
        .enumerate()
        .filter(|(_, f)| !f.id && !f.version)
        .map(|(i, f)| (i, f.name))
}

/// Non-null fields of `e` (id and version excluded).
fn set_fields<E: Entity>(e: &E) -> Result<Vec<String>> {
    let r = Record::from_entity(e)?;
    Ok(audited_fields::<E>()
        .filter(|(i, _)| !r.get(*i).is_null())
        .map(|(_, n)| n.to_string())
        .collect())
}

/// Fields whose value differs between `old` and `new` (id and version excluded).
fn changed_fields<E: Entity>(old: &E, new: &E) -> Result<Vec<String>> {
    let (a, b) = (Record::from_entity(old)?, Record::from_entity(new)?);
    Ok(audited_fields::<E>()
        .filter(|(i, _)| a.get(*i) != b.get(*i))
        .map(|(_, n)| n.to_string())
        .collect())
}

impl<R, L: Repository<AuditRecord>> Audited<R, L> {
    fn record<E: Entity>(
        &self,
        id: &E::Id,
        operation: AuditOperation,
        changed_fields: Vec<String>,
        actor: &Option<String>,
    ) -> AuditRecord {
        AuditRecord {
            id: Uuid::now_v7(),
            entity: E::meta().name.to_string(),
            entity_id: id_text::<E>(id),
            operation,
            actor: actor.clone(),
            at: Utc::now(),
            changed_fields,
        }
    }

    /// Write the records; apply the failure policy.
    async fn write(
        &self,
        entity: &'static str,
        op: &'static str,
        records: Vec<AuditRecord>,
    ) -> Result<()> {
        let outcome = match records.len() {
            0 => return Ok(()),
            1 => self.log.insert(&records[0]).await.map(|_| ()),
            _ => self.log.insert_many(&records).await.map(|_| ()),
        };
        match (outcome, self.on_error) {
            (Ok(()), _) => Ok(()),
            (Err(e), OnAuditError::Log) => {
                tracing::error!(entity, op, error = %e, "write succeeded but its audit record was not written");
                Ok(())
            }
            (Err(e), OnAuditError::Fail) => Err(Error::new(
                ErrorKind::Backend,
                format!(
                    "the {op} of {entity} succeeded but its audit record was not written: {}",
                    e.message()
                ),
            )
            .in_context(entity, op)
            .set_retryable(false)
            // The write itself was applied: never report it as not applied.
            .with_outcome(WriteOutcome::Unknown)
            .with_source(e)),
        }
    }
}

impl<R, L: Repository<AuditRecord>> Audited<R, L> {
    /// `delete_many` / `purge` in batches of `self.batch`: find the rows
    /// matching `filter`, delete exactly those, record each one deleted here.
    async fn delete_batches<E>(&self, filter: &Filter, op: AuditOperation) -> Result<u64>
    where
        E: Entity,
        R: Repository<E>,
    {
        let actor = self.actor();
        let id_field = E::meta().id_field().name;
        let name = if op == AuditOperation::Purge {
            "purge"
        } else {
            "delete_many"
        };
        let mut total = 0u64;
        loop {
            let batch = self
                .inner
                .find(&Query::filter(filter.clone()).limit(self.batch as u64))
                .await?;
            if batch.is_empty() {
                break;
            }
            let ids = batch
                .iter()
                .map(|e| id_value::<E>(e.id()))
                .collect::<Result<Vec<_>>>()?;
            let these = filter.clone().and(Filter::field(id_field).is_in(ids));
            let deleted = if op == AuditOperation::Purge {
                self.inner.purge(&these).await?
            } else {
                self.inner.delete_many(&these).await?
            };
            total += deleted;
            // Rows deleted concurrently between find and delete are someone
            // else's delete: record only when the count says all went here.
            let records = if deleted == batch.len() as u64 {
                batch
                    .iter()
                    .map(|e| self.record::<E>(e.id(), op, Vec::new(), &actor))
                    .collect()
            } else {
                let mut still = Vec::new();
                for e in &batch {
                    if self.inner.get(e.id()).await?.is_none() {
                        still.push(self.record::<E>(e.id(), op, Vec::new(), &actor));
                    }
                }
                still
            };
            self.write(E::meta().name, name, records).await?;
            if deleted == 0 {
                break;
            }
        }
        Ok(total)
    }
}

impl<E, R, L> Repository<E> for Audited<R, L>
where
    E: Entity,
    R: Repository<E>,
    L: Repository<AuditRecord>,
{
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
    async fn ensure_schema(&self) -> Result<()> {
        self.inner.ensure_schema().await?;
        self.log.ensure_schema().await
    }
    /// The entity's report, with the differences of the audit log's table
    /// appended (each names its own table).
    async fn verify_schema(&self) -> Result<persistence_core::SchemaReport> {
        let mut report = self.inner.verify_schema().await?;
        report
            .differences
            .extend(self.log.verify_schema().await?.differences);
        Ok(report.sorted())
    }
    async fn get(&self, id: &E::Id) -> Result<Option<E>> {
        self.inner.get(id).await
    }
    async fn get_many(&self, ids: &[E::Id]) -> Result<Vec<E>> {
        self.inner.get_many(ids).await
    }
    async fn insert(&self, entity: &E) -> Result<E> {
        let actor = self.actor();
        let stored = self.inner.insert(entity).await?;
        let rec = self.record::<E>(
            stored.id(),
            AuditOperation::Insert,
            set_fields(&stored)?,
            &actor,
        );
        self.write(E::meta().name, "insert", vec![rec]).await?;
        Ok(stored)
    }
    async fn insert_many(&self, entities: &[E]) -> Result<u64> {
        let actor = self.actor();
        let n = self.inner.insert_many(entities).await?;
        let records = entities
            .iter()
            .map(|e| Ok(self.record::<E>(e.id(), AuditOperation::Insert, set_fields(e)?, &actor)))
            .collect::<Result<Vec<_>>>()?;
        self.write(E::meta().name, "insert_many", records).await?;
        Ok(n)
    }
    async fn update(&self, entity: &E) -> Result<E> {
        let actor = self.actor();
        let before = self.inner.get(entity.id()).await?;
        let stored = self.inner.update(entity).await?;
        let changed = match &before {
            Some(old) => changed_fields(old, &stored)?,
            None => set_fields(&stored)?,
        };
        let rec = self.record::<E>(stored.id(), AuditOperation::Update, changed, &actor);
        self.write(E::meta().name, "update", vec![rec]).await?;
        Ok(stored)
    }
    async fn upsert(&self, entity: &E) -> Result<E> {
        let actor = self.actor();
        let before = self.inner.get(entity.id()).await?;
        let stored = self.inner.upsert(entity).await?;
        let changed = match &before {
            Some(old) => changed_fields(old, &stored)?,
            None => set_fields(&stored)?,
        };
        let rec = self.record::<E>(stored.id(), AuditOperation::Upsert, changed, &actor);
        self.write(E::meta().name, "upsert", vec![rec]).await?;
        Ok(stored)
    }
    async fn delete(&self, id: &E::Id) -> Result<bool> {
        let actor = self.actor();
        let deleted = self.inner.delete(id).await?;
        if deleted {
            let rec = self.record::<E>(id, AuditOperation::Delete, Vec::new(), &actor);
            self.write(E::meta().name, "delete", vec![rec]).await?;
        }
        Ok(deleted)
    }
    async fn delete_many(&self, filter: &Filter) -> Result<u64> {
        // A soft delete reaches live rows only: look for those alone, so a
        // batch of rows deleted before never ends the loop early.
        let live = match E::meta().soft_delete_field() {
            Some(f) => filter.clone().and(Filter::field(f.name).is_null()),
            None => filter.clone(),
        };
        self.delete_batches::<E>(&live, AuditOperation::Delete)
            .await
    }
    async fn purge(&self, filter: &Filter) -> Result<u64> {
        let all = persistence_core::lifecycle::purge_filter(filter);
        self.delete_batches::<E>(&all, AuditOperation::Purge).await
    }
    async fn find(&self, query: &Query) -> Result<Vec<E>> {
        self.inner.find(query).await
    }
    async fn find_unordered(&self, query: &Query) -> Result<Vec<E>> {
        self.inner.find_unordered(query).await
    }
    async fn find_one(&self, query: &Query) -> Result<Option<E>> {
        self.inner.find_one(query).await
    }
    async fn count(&self, filter: &Filter) -> Result<u64> {
        self.inner.count(filter).await
    }
    async fn exists(&self, filter: &Filter) -> Result<bool> {
        self.inner.exists(filter).await
    }
    fn stream<'a>(&'a self, query: &Query) -> BoxStream<'a, Result<E>> {
        self.inner.stream(query)
    }
    async fn page(&self, query: &Query, cursor: Option<&Cursor>) -> Result<Page<E>> {
        self.inner.page(query, cursor).await
    }
    async fn patch(&self, id: &E::Id, update: &Update<E>, guard: &Guard) -> Result<E> {
        let actor = self.actor();
        let stored = self.inner.patch(id, update, guard).await?;
        let rec = self.record::<E>(
            stored.id(),
            AuditOperation::Update,
            update_fields(update),
            &actor,
        );
        self.write(E::meta().name, "patch", vec![rec]).await?;
        Ok(stored)
    }
    async fn update_where(&self, filter: &Filter, update: &Update<E>) -> Result<u64> {
        let actor = self.actor();
        let id_field = E::meta().id_field().name;
        let fields = update_fields(update);
        let mut total = 0u64;
        let mut after: Option<Value> = None;
        loop {
            // Walk the matching ids in id order (keyset on the id: an updated
            // row that still matches is not visited twice).
            let mut batch_filter = filter.clone();
            if let Some(last) = after.take() {
                batch_filter = batch_filter.and(Filter::field(id_field).gt(last));
            }
            let batch = self
                .inner
                .find(
                    &Query::filter(batch_filter)
                        .sort(Filter::field(id_field).asc())
                        .limit(self.batch as u64),
                )
                .await?;
            let Some(last) = batch.last() else { break };
            after = Some(id_value::<E>(last.id())?);
            let more = batch.len() >= self.batch;
            let ids = batch
                .iter()
                .map(|e| id_value::<E>(e.id()))
                .collect::<Result<Vec<_>>>()?;
            let n = self
                .inner
                .update_where(
                    &filter.clone().and(Filter::field(id_field).is_in(ids)),
                    update,
                )
                .await?;
            total += n;
            // When fewer rows matched than were read, some changed or went
            // away in between: record the ones that still exist (a record too
            // many rather than a write unaudited).
            let updated = if n == batch.len() as u64 {
                batch
            } else {
                let ids: Vec<E::Id> = batch.iter().map(|e| e.id().clone()).collect();
                self.inner.get_many(&ids).await?
            };
            let records = updated
                .iter()
                .map(|e| self.record::<E>(e.id(), AuditOperation::Update, fields.clone(), &actor))
                .collect();
            self.write(E::meta().name, "update_where", records).await?;
            if !more {
                break;
            }
        }
        Ok(total)
    }
    async fn find_one_and_delete(&self, query: &Query) -> Result<Option<E>> {
        let actor = self.actor();
        let popped = self.inner.find_one_and_delete(query).await?;
        if let Some(e) = &popped {
            let rec = self.record::<E>(e.id(), AuditOperation::Delete, Vec::new(), &actor);
            self.write(E::meta().name, "find_one_and_delete", vec![rec])
                .await?;
        }
        Ok(popped)
    }
    async fn select(&self, query: &Query, fields: &[&str]) -> Result<Vec<Value>> {
        self.inner.select(query, fields).await
    }
    async fn distinct(&self, field: &str, filter: &Filter) -> Result<Vec<Value>> {
        self.inner.distinct(field, filter).await
    }
    async fn aggregate(&self, filter: &Filter, group: &GroupBy<E>) -> Result<Vec<Value>> {
        self.inner.aggregate(filter, group).await
    }
    async fn find_nearest(&self, query: &NearestQuery) -> Result<Vec<(E, f64)>> {
        self.inner.find_nearest(query).await
    }
    async fn find_text(&self, query: &persistence_core::TextQuery) -> Result<Vec<(E, f64)>> {
        self.inner.find_text(query).await
    }
}

/// The top-level fields an update writes (a nested path counts as its
/// field), in order, without repeats.
fn update_fields<E>(update: &Update<E>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for a in update.assignments() {
        let top = a.field.split('.').next().unwrap_or_default();
        if !out.iter().any(|f| f == top) {
            out.push(top.to_string());
        }
    }
    out
}
