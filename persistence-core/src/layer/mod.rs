//! Decorators over any repository, tower style.
//!
//! A decorator is an [`Around`] hook: it sees every repository call as an
//! [`Op`] plus a closure that performs it (callable again, for retries).
//! [`Layered`] is the one `Repository` implementation that forwards **every**
//! method through the hook, so a decorator cannot forget one.
//!
//! ```
//! use std::time::Duration;
//! use persistence_core::layer::{CircuitBreaker, LayerExt, Retry, Timeout};
//! # use persistence_core::{MemoryRepository, conformance::entities::Person};
//! let repo = MemoryRepository::<Person>::new()
//!     .layer(Timeout::new(Duration::from_secs(2)))
//!     .layer(Retry::default())
//!     .layer(CircuitBreaker::default());
//! ```
//!
//! The outermost layer is the last one added: above, the breaker sees each
//! call once, retry repeats the timed-out inner call. [`Tracing`] (one span
//! per operation, OpenTelemetry database conventions) goes outermost.

use std::future::Future;
use std::pin::Pin;

use crate::aggregate::GroupBy;
use crate::drift::SchemaReport;
use crate::entity::Entity;
use crate::error::Result;
use crate::filter::Filter;
use crate::query::{Cursor, Page, Query};
use crate::repository::{BoxStream, Capabilities, Repository};
use crate::text::TextQuery;
use crate::update::{Guard, Update};
use crate::value::Value;
use crate::vector::NearestQuery;

mod breaker;
mod leak;
pub mod metrics;
mod op;
mod pool;
pub mod probe;
mod resolve;
mod retry;
mod slowlog;
mod timeout;
pub mod trace;

pub use breaker::{BreakerConfig, BreakerState, CircuitBreaker};
pub use leak::{HoldGuard, LeakDetector};
pub use metrics::{Metrics, names as metric_names};
pub use op::Op;
pub use pool::PoolStatus;
pub use probe::PoolProbe;
pub use resolve::{ResolveOutcome, is_read_back, read_back, write_applied};
pub use retry::{Retry, RetryConfig};
pub use slowlog::{MAX_STATEMENT_LEN, SlowEntry, SlowLog};
pub use timeout::Timeout;
pub use trace::{DbSystem, Tracing};

/// A boxed, `Send` future.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A repeatable call: each invocation starts the operation afresh.
pub type Call<'a, T> = &'a (dyn Fn() -> BoxFuture<'a, Result<T>> + Send + Sync);

/// A single-entity write (`insert`, `update` or `upsert`) as
/// [`Around::around_write`] sees it: besides the repeatable call, the entity
/// written and a repeatable read of the stored entity with its id (through
/// the layers below the hook), so a hook can find out whether a write whose
/// [outcome](crate::WriteOutcome) is unknown was applied.
pub struct Write<'a, E: Entity> {
    /// [`Op::Insert`], [`Op::Update`] or [`Op::Upsert`].
    pub op: Op,
    /// The entity as the caller passed it.
    pub entity: &'a E,
    /// Perform the write (again).
    pub call: Call<'a, E>,
    /// Read the stored entity with `entity`'s id.
    pub read: Call<'a, Option<E>>,
    /// The capabilities of the repository below (timestamp precision, for comparing).
    pub capabilities: Capabilities,
}

/// A hook around every repository call.
pub trait Around: Send + Sync {
    /// Run `call` (possibly several times, possibly not at all).
    fn around<'a, T: Send + 'a>(
        &'a self,
        entity: &'static str,
        op: Op,
        call: Call<'a, T>,
    ) -> BoxFuture<'a, Result<T>>;

    /// Run a single-entity write (`insert`, `update`, `upsert`); the default
    /// treats it like any other call ([`around`](Self::around) with
    /// `write.call`). [`Retry`] overrides it to resolve unknown outcomes.
    fn around_write<'a, E: Entity>(&'a self, write: Write<'a, E>) -> BoxFuture<'a, Result<E>> {
        self.around(E::meta().name, write.op, write.call)
    }

    /// Run a call over `rows` input rows (`insert_many`); the default treats
    /// it like any other call ([`around`](Self::around)). [`Timeout`]
    /// overrides it to give a batch one limit per
    /// [`ROWS_PER_LIMIT`](Timeout::ROWS_PER_LIMIT) rows, so a large load is
    /// not cut off by a limit meant for one statement.
    fn around_rows<'a, T: Send + 'a>(
        &'a self,
        entity: &'static str,
        op: Op,
        rows: usize,
        call: Call<'a, T>,
    ) -> BoxFuture<'a, Result<T>> {
        let _ = rows;
        self.around(entity, op, call)
    }

    /// Wrap a result stream (default: unchanged).
    fn around_stream<'a, T: Send + 'a>(
        &'a self,
        entity: &'static str,
        stream: BoxStream<'a, Result<T>>,
    ) -> BoxStream<'a, Result<T>> {
        let _ = entity;
        stream
    }
}

/// A repository `R` seen through the hook `A`.
#[derive(Debug, Clone)]
pub struct Layered<R, A> {
    inner: R,
    hook: A,
}

impl<R, A> Layered<R, A> {
    /// Wrap `inner`.
    pub fn new(inner: R, hook: A) -> Self {
        Layered { inner, hook }
    }
    /// The wrapped repository.
    pub fn inner(&self) -> &R {
        &self.inner
    }
    /// The hook.
    pub fn hook(&self) -> &A {
        &self.hook
    }
}

/// `.layer(hook)` on any value.
pub trait LayerExt: Sized {
    /// Wrap `self` with the hook.
    fn layer<A: Around>(self, hook: A) -> Layered<Self, A> {
        Layered::new(self, hook)
    }
}
impl<R> LayerExt for R {}

impl<E: Entity, R: Repository<E>, A: Around> Repository<E> for Layered<R, A> {
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
    async fn ensure_schema(&self) -> Result<()> {
        self.hook
            .around(E::meta().name, Op::EnsureSchema, &|| {
                Box::pin(self.inner.ensure_schema())
            })
            .await
    }
    async fn verify_schema(&self) -> Result<SchemaReport> {
        self.hook
            .around(E::meta().name, Op::VerifySchema, &|| {
                Box::pin(self.inner.verify_schema())
            })
            .await
    }
    async fn get(&self, id: &E::Id) -> Result<Option<E>> {
        self.hook
            .around(E::meta().name, Op::Get, &|| Box::pin(self.inner.get(id)))
            .await
    }
    async fn get_many(&self, ids: &[E::Id]) -> Result<Vec<E>> {
        self.hook
            .around(E::meta().name, Op::GetMany, &|| {
                Box::pin(self.inner.get_many(ids))
            })
            .await
    }
    async fn insert(&self, entity: &E) -> Result<E> {
        self.hook
            .around_write(Write {
                op: Op::Insert,
                entity,
                call: &|| Box::pin(self.inner.insert(entity)),
                read: &|| Box::pin(self.inner.get(entity.id())),
                capabilities: self.inner.capabilities(),
            })
            .await
    }
    async fn insert_many(&self, entities: &[E]) -> Result<u64> {
        self.hook
            .around_rows(E::meta().name, Op::InsertMany, entities.len(), &|| {
                Box::pin(self.inner.insert_many(entities))
            })
            .await
    }
    async fn update(&self, entity: &E) -> Result<E> {
        self.hook
            .around_write(Write {
                op: Op::Update,
                entity,
                call: &|| Box::pin(self.inner.update(entity)),
                read: &|| Box::pin(self.inner.get(entity.id())),
                capabilities: self.inner.capabilities(),
            })
            .await
    }
    async fn upsert(&self, entity: &E) -> Result<E> {
        self.hook
            .around_write(Write {
                op: Op::Upsert,
                entity,
                call: &|| Box::pin(self.inner.upsert(entity)),
                read: &|| Box::pin(self.inner.get(entity.id())),
                capabilities: self.inner.capabilities(),
            })
            .await
    }
    async fn delete(&self, id: &E::Id) -> Result<bool> {
        self.hook
            .around(E::meta().name, Op::Delete, &|| {
                Box::pin(self.inner.delete(id))
            })
            .await
    }
    async fn delete_many(&self, filter: &Filter) -> Result<u64> {
        self.hook
            .around(E::meta().name, Op::DeleteMany, &|| {
                Box::pin(self.inner.delete_many(filter))
            })
            .await
    }
    async fn purge(&self, filter: &Filter) -> Result<u64> {
        self.hook
            .around(E::meta().name, Op::Purge, &|| {
                Box::pin(self.inner.purge(filter))
            })
            .await
    }
    async fn find(&self, query: &Query) -> Result<Vec<E>> {
        self.hook
            .around(E::meta().name, Op::Find, &|| {
                Box::pin(self.inner.find(query))
            })
            .await
    }
    async fn find_unordered(&self, query: &Query) -> Result<Vec<E>> {
        self.hook
            .around(E::meta().name, Op::Find, &|| {
                Box::pin(self.inner.find_unordered(query))
            })
            .await
    }
    async fn find_one(&self, query: &Query) -> Result<Option<E>> {
        self.hook
            .around(E::meta().name, Op::FindOne, &|| {
                Box::pin(self.inner.find_one(query))
            })
            .await
    }
    async fn count(&self, filter: &Filter) -> Result<u64> {
        self.hook
            .around(E::meta().name, Op::Count, &|| {
                Box::pin(self.inner.count(filter))
            })
            .await
    }
    async fn exists(&self, filter: &Filter) -> Result<bool> {
        self.hook
            .around(E::meta().name, Op::Exists, &|| {
                Box::pin(self.inner.exists(filter))
            })
            .await
    }
    fn stream<'a>(&'a self, query: &Query) -> BoxStream<'a, Result<E>> {
        self.hook
            .around_stream(E::meta().name, self.inner.stream(query))
    }
    async fn page(&self, query: &Query, cursor: Option<&Cursor>) -> Result<Page<E>> {
        self.hook
            .around(E::meta().name, Op::Page, &|| {
                Box::pin(self.inner.page(query, cursor))
            })
            .await
    }
    async fn patch(&self, id: &E::Id, update: &Update<E>, guard: &Guard) -> Result<E> {
        self.hook
            .around(E::meta().name, Op::Patch, &|| {
                Box::pin(self.inner.patch(id, update, guard))
            })
            .await
    }
    async fn update_where(&self, filter: &Filter, update: &Update<E>) -> Result<u64> {
        self.hook
            .around(E::meta().name, Op::UpdateWhere, &|| {
                Box::pin(self.inner.update_where(filter, update))
            })
            .await
    }
    async fn find_one_and_delete(&self, query: &Query) -> Result<Option<E>> {
        self.hook
            .around(E::meta().name, Op::FindOneAndDelete, &|| {
                Box::pin(self.inner.find_one_and_delete(query))
            })
            .await
    }
    async fn select(&self, query: &Query, fields: &[&str]) -> Result<Vec<Value>> {
        self.hook
            .around(E::meta().name, Op::Select, &|| {
                Box::pin(self.inner.select(query, fields))
            })
            .await
    }
    async fn distinct(&self, field: &str, filter: &Filter) -> Result<Vec<Value>> {
        self.hook
            .around(E::meta().name, Op::Distinct, &|| {
                Box::pin(self.inner.distinct(field, filter))
            })
            .await
    }
    async fn aggregate(&self, filter: &Filter, group: &GroupBy<E>) -> Result<Vec<Value>> {
        self.hook
            .around(E::meta().name, Op::Aggregate, &|| {
                Box::pin(self.inner.aggregate(filter, group))
            })
            .await
    }
    async fn find_nearest(&self, query: &NearestQuery) -> Result<Vec<(E, f64)>> {
        self.hook
            .around(E::meta().name, Op::Nearest, &|| {
                Box::pin(self.inner.find_nearest(query))
            })
            .await
    }
    async fn find_text(&self, query: &TextQuery) -> Result<Vec<(E, f64)>> {
        self.hook
            .around(E::meta().name, Op::Text, &|| {
                Box::pin(self.inner.find_text(query))
            })
            .await
    }
}
