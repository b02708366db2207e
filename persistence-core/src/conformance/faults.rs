//! [`LostAck`]: a repository decorator whose single-entity writes lose their
//! answer, for testing what callers and layers do with a write whose outcome
//! is [unknown](crate::WriteOutcome::Unknown).

use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::aggregate::GroupBy;
use crate::entity::Entity;
use crate::error::{Error, Result, WriteOutcome};
use crate::filter::Filter;
use crate::layer::Op;
use crate::query::{Cursor, Page, Query};
use crate::repository::{BoxStream, Capabilities, Repository};
use crate::text::TextQuery;
use crate::update::{Guard, Update};
use crate::value::Value;
use crate::vector::NearestQuery;

/// What happens to a write whose answer [`LostAck`] loses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckFault {
    /// The write is applied (committed), then the caller gets a timeout of
    /// unknown outcome — what a stalled network or a paused server does.
    AppliedThenLost,
    /// The caller gets a timeout of unknown outcome and the write is not
    /// applied (it never reached the server).
    LostBeforeApplied,
    /// The caller gets a timeout of unknown outcome; the write is applied
    /// later, just before the next write call reaches the store (it was still
    /// in flight), so a repeat runs into it.
    AppliedLate,
}

/// Wraps a repository; the first `faults` calls of `insert`, `update` or
/// `upsert` fail with [`ErrorKind::Timeout`](crate::ErrorKind::Timeout) and
/// [`WriteOutcome::Unknown`], after applying the write or not as
/// [`AckFault`] says. Every other call is forwarded unchanged. Counts the
/// single-entity write calls that reached it.
pub struct LostAck<E, R> {
    inner: R,
    fault: AckFault,
    faults: AtomicU32,
    writes: AtomicU32,
    late: Mutex<Option<(Op, E)>>,
}

impl<E: Entity, R: Repository<E>> LostAck<E, R> {
    /// Lose the answer of the first `faults` single-entity writes.
    pub fn new(inner: R, fault: AckFault, faults: u32) -> Self {
        LostAck {
            inner,
            fault,
            faults: AtomicU32::new(faults),
            writes: AtomicU32::new(0),
            late: Mutex::new(None),
        }
    }

    /// Lose the answer of the next `n` single-entity writes (instead of what is left).
    pub fn lose_next(&self, n: u32) {
        self.faults.store(n, Ordering::SeqCst);
    }

    /// `insert`, `update` and `upsert` calls that reached this decorator.
    pub fn writes(&self) -> u32 {
        self.writes.load(Ordering::SeqCst)
    }

    /// The wrapped repository.
    pub fn inner(&self) -> &R {
        &self.inner
    }

    async fn apply(&self, op: Op, entity: &E) -> Result<E> {
        match op {
            Op::Insert => self.inner.insert(entity).await,
            Op::Update => self.inner.update(entity).await,
            _ => self.inner.upsert(entity).await,
        }
    }

    async fn write(&self, op: Op, entity: &E) -> Result<E> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        let late = self.late.lock().ok().and_then(|mut l| l.take());
        if let Some((late_op, late_entity)) = late {
            // The earlier attempt, still in flight, lands now; its answer is gone.
            let _ = self.apply(late_op, &late_entity).await;
        }
        let lose = self
            .faults
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if !lose {
            return self.apply(op, entity).await;
        }
        match self.fault {
            AckFault::AppliedThenLost => {
                self.apply(op, entity).await?;
            }
            AckFault::LostBeforeApplied => {}
            AckFault::AppliedLate => {
                if let Ok(mut l) = self.late.lock() {
                    *l = Some((op, entity.clone()));
                }
            }
        }
        Err(Error::timeout("injected: the answer of the write was lost")
            .in_context(E::meta().name, op.name())
            .with_outcome(WriteOutcome::Unknown))
    }
}

impl<E: Entity, R: Repository<E>> Repository<E> for LostAck<E, R> {
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
    async fn ensure_schema(&self) -> Result<()> {
        self.inner.ensure_schema().await
    }
    async fn verify_schema(&self) -> Result<crate::SchemaReport> {
        self.inner.verify_schema().await
    }
    async fn get(&self, id: &E::Id) -> Result<Option<E>> {
        self.inner.get(id).await
    }
    async fn get_many(&self, ids: &[E::Id]) -> Result<Vec<E>> {
        self.inner.get_many(ids).await
    }
    async fn insert(&self, entity: &E) -> Result<E> {
        self.write(Op::Insert, entity).await
    }
    async fn insert_many(&self, entities: &[E]) -> Result<u64> {
        self.inner.insert_many(entities).await
    }
    async fn update(&self, entity: &E) -> Result<E> {
        self.write(Op::Update, entity).await
    }
    async fn upsert(&self, entity: &E) -> Result<E> {
        self.write(Op::Upsert, entity).await
    }
    async fn delete(&self, id: &E::Id) -> Result<bool> {
        self.inner.delete(id).await
    }
    async fn delete_many(&self, filter: &Filter) -> Result<u64> {
        self.inner.delete_many(filter).await
    }
    async fn purge(&self, filter: &Filter) -> Result<u64> {
        self.inner.purge(filter).await
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
        self.inner.patch(id, update, guard).await
    }
    async fn update_where(&self, filter: &Filter, update: &Update<E>) -> Result<u64> {
        self.inner.update_where(filter, update).await
    }
    async fn find_one_and_delete(&self, query: &Query) -> Result<Option<E>> {
        self.inner.find_one_and_delete(query).await
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
    async fn find_text(&self, query: &TextQuery) -> Result<Vec<(E, f64)>> {
        self.inner.find_text(query).await
    }
}
