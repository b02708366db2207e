//! [`Flaky`]: wraps a repository whose reads can be made to fail (with an
//! error of the test's choice) or to be slow, to drive the cache's
//! fail-safe and load timeouts. Writes always go through.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use persistence_core::query::Cursor;
use persistence_core::{
    BoxStream, Capabilities, Entity, Error, Filter, GroupBy, Guard, Page, Query, Repository,
    Result, Update, Value,
};

/// What reads do now.
#[derive(Default)]
pub struct Switch {
    fail: Mutex<Option<fn() -> Error>>,
    delay: Mutex<Option<Duration>>,
    /// Reads that reached the wrapper.
    pub reads: AtomicU64,
    /// Reads that returned (after any delay).
    pub finished: AtomicU64,
}

impl Switch {
    /// Reads fail with `make()` (None: they succeed).
    pub fn fail_with(&self, make: Option<fn() -> Error>) {
        *self.fail.lock() = make;
    }
    /// Reads wait this long first (None: no wait).
    pub fn delay(&self, d: Option<Duration>) {
        *self.delay.lock() = d;
    }
    pub fn reads(&self) -> u64 {
        self.reads.load(Ordering::SeqCst)
    }
    pub fn finished(&self) -> u64 {
        self.finished.load(Ordering::SeqCst)
    }
}

pub struct Flaky<R> {
    pub inner: R,
    pub switch: Arc<Switch>,
}

impl<R> Flaky<R> {
    pub fn new(inner: R) -> (Self, Arc<Switch>) {
        let switch = Arc::new(Switch::default());
        (
            Flaky {
                inner,
                switch: switch.clone(),
            },
            switch,
        )
    }

    async fn read<T>(&self, fut: impl Future<Output = Result<T>>) -> Result<T> {
        self.switch.reads.fetch_add(1, Ordering::SeqCst);
        let delay = *self.switch.delay.lock();
        if let Some(d) = delay {
            tokio::time::sleep(d).await;
        }
        let fail = *self.switch.fail.lock();
        let out = match fail {
            Some(make) => Err(make()),
            None => fut.await,
        };
        self.switch.finished.fetch_add(1, Ordering::SeqCst);
        out
    }
}

impl<E: Entity, R: Repository<E>> Repository<E> for Flaky<R> {
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
    async fn ensure_schema(&self) -> Result<()> {
        self.inner.ensure_schema().await
    }
    async fn verify_schema(&self) -> Result<persistence_core::SchemaReport> {
        self.inner.verify_schema().await
    }
    async fn get(&self, id: &E::Id) -> Result<Option<E>> {
        self.read(self.inner.get(id)).await
    }
    async fn get_many(&self, ids: &[E::Id]) -> Result<Vec<E>> {
        self.read(self.inner.get_many(ids)).await
    }
    async fn insert(&self, entity: &E) -> Result<E> {
        self.inner.insert(entity).await
    }
    async fn insert_many(&self, entities: &[E]) -> Result<u64> {
        self.inner.insert_many(entities).await
    }
    async fn update(&self, entity: &E) -> Result<E> {
        self.inner.update(entity).await
    }
    async fn upsert(&self, entity: &E) -> Result<E> {
        self.inner.upsert(entity).await
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
        self.read(self.inner.find(query)).await
    }
    async fn find_one(&self, query: &Query) -> Result<Option<E>> {
        self.read(self.inner.find_one(query)).await
    }
    async fn count(&self, filter: &Filter) -> Result<u64> {
        self.read(self.inner.count(filter)).await
    }
    async fn exists(&self, filter: &Filter) -> Result<bool> {
        self.read(self.inner.exists(filter)).await
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
}
