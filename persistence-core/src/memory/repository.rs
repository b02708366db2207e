//! [`MemoryRepository`]: the [`Repository`] implementation over a shared,
//! locked [`State`]; every write takes the write lock once, so it is atomic.

use std::sync::Arc;

use parking_lot::RwLock;

use crate::aggregate::{GroupBy, aggregate_records};
use crate::entity::Entity;
use crate::error::{Error, Result};
use crate::filter::Filter;
use crate::lifecycle::{self, stamped};
use crate::query::{Cursor, Page, Query};
use crate::relation::CrossStore;
use crate::repository::{BoxStream, Capabilities, Repository, support};
use crate::update::{Guard, Update};
use crate::value::{Record, Value};
use crate::vector::{NearestQuery, vector_of};

use super::codec::{Key, PRECISION, id_key, key_of, prepare, unique_indexes};
use super::patch;
use super::query::{matches, select};
use super::relations::{Shared, TableOf};
use super::select::{distinct, select_fields};
use super::store::State;

/// A concurrent in-memory repository. Cheap to clone (shares the data).
pub struct MemoryRepository<E: Entity> {
    pub(super) state: Arc<RwLock<State<E>>>,
    /// The tables of its [`MemoryStore`](super::MemoryStore) (relations).
    pub(super) shared: Arc<Shared>,
    /// Relations whose parent lives in another store: not checked here.
    pub(super) cross: CrossStore,
}

impl<E: Entity> Clone for MemoryRepository<E> {
    fn clone(&self) -> Self {
        MemoryRepository {
            state: self.state.clone(),
            shared: self.shared.clone(),
            cross: self.cross.clone(),
        }
    }
}

impl<E: Entity> Default for MemoryRepository<E> {
    fn default() -> Self {
        Self::new()
    }
}

impl<E: Entity> std::fmt::Debug for MemoryRepository<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryRepository")
            .field("entity", &E::meta().name)
            .field("rows", &self.state.read().rows.len())
            .finish()
    }
}

impl<E: Entity> MemoryRepository<E> {
    /// An empty repository, a store of its own: its relations see no
    /// other table (use a [`MemoryStore`](super::MemoryStore) for related entities).
    pub fn new() -> Self {
        Self::in_store(Arc::new(Shared::default()))
    }

    /// A new, empty table of `E` in the store `shared`.
    pub(super) fn in_store(shared: Arc<Shared>) -> Self {
        let state = Arc::new(RwLock::new(State::new()));
        shared.register(Arc::new(TableOf(state.clone())));
        MemoryRepository {
            state,
            shared,
            cross: CrossStore::none(),
        }
    }

    /// The same table, not checking the parents of the relations in
    /// `cross` (their targets live in another store; see
    /// [`crate::relation::CrossStore`]).
    pub fn with_cross_store(mut self, cross: CrossStore) -> Self {
        self.cross = cross;
        self
    }

    /// Refuse `entities` naming a missing parent (only when the store has relations).
    fn check_parents<'e>(&self, entities: impl IntoIterator<Item = &'e E>) -> Result<()> {
        if self.cross.enforced(E::meta()).next().is_none() {
            return Ok(());
        }
        let records = entities
            .into_iter()
            .map(Record::from_entity)
            .collect::<Result<Vec<_>>>()?;
        self.shared.check_parents::<E>(&records, &self.cross)
    }

    /// Run `op` (a `patch` / `update_where` under the write lock), then
    /// check the parents of the rows it changed; undo it all when one is missing.
    fn checked_change<T>(&self, op: impl FnOnce(&mut State<E>) -> Result<T>) -> Result<T> {
        if self.cross.enforced(E::meta()).next().is_none() {
            return op(&mut self.state.write());
        }
        let before = self.state.read().clone();
        let out = op(&mut self.state.write())?;
        let changed: Vec<Record> = {
            let state = self.state.read();
            state
                .rows
                .iter()
                .filter(|(k, r)| before.rows.get(*k).is_none_or(|o| !Arc::ptr_eq(o, r)))
                .map(|(_, r)| r.record.clone())
                .collect()
        };
        if let Err(e) = self.shared.check_parents::<E>(&changed, &self.cross) {
            *self.state.write() = before;
            return Err(e);
        }
        Ok(out)
    }

    /// Remove the rows `keys` through the store when some table refers to
    /// `E` (their `on_delete`); `None` when no relation is involved.
    fn delete_related(&self, keys: impl FnOnce(&State<E>) -> Vec<Key>) -> Option<Result<usize>> {
        if !self.shared.has_children(E::meta().name) {
            return None;
        }
        let keys: std::collections::BTreeSet<Key> = keys(&self.state.read()).into_iter().collect();
        let n = keys.len();
        Some(self.shared.delete_rows(E::meta().name, keys).map(|()| n))
    }

    /// Number of stored entities.
    pub fn len(&self) -> usize {
        self.state.read().rows.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<E: Entity> Repository<E> for MemoryRepository<E> {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            transactions: false,
            row_locks: false,
            timestamp_precision: PRECISION,
            text_index: false,
            ..Capabilities::full("memory")
        }
    }

    async fn ensure_schema(&self) -> Result<()> {
        Ok(())
    }

    /// Always matches: the store keeps entities as they are, there is no
    /// schema to drift.
    async fn verify_schema(&self) -> Result<crate::SchemaReport> {
        Ok(crate::SchemaReport::new(E::meta().name, E::meta().name))
    }

    async fn get(&self, id: &E::Id) -> Result<Option<E>> {
        let key = key_of::<E>(id)?;
        Ok(self
            .state
            .read()
            .rows
            .get(&key)
            .map(|r| r.entity.clone())
            .filter(lifecycle::visible))
    }

    async fn get_many(&self, ids: &[E::Id]) -> Result<Vec<E>> {
        let keys = ids.iter().map(key_of::<E>).collect::<Result<Vec<_>>>()?;
        let state = self.state.read();
        let mut seen = std::collections::BTreeSet::new();
        Ok(keys
            .into_iter()
            .filter(|k| seen.insert(k.clone()))
            .filter_map(|k| state.rows.get(&k).map(|r| r.entity.clone()))
            .filter(lifecycle::visible)
            .collect())
    }

    async fn insert(&self, entity: &E) -> Result<E> {
        let meta = E::meta();
        let row = prepare(&*stamped(entity, true), meta.version_index.map(|_| 1))?;
        let cols = unique_indexes(meta);
        let _gate = self.shared.gate();
        self.check_parents([entity])
            .map_err(|e| e.in_context(meta.name, "insert"))?;
        let mut state = self.state.write();
        let row = state
            .with_generated_id(row)
            .map_err(|e| e.in_context(meta.name, "insert"))?;
        state
            .put(&cols, row.clone(), false)
            .map_err(|e| e.in_context(meta.name, "insert"))?;
        Ok(row.entity.clone())
    }

    async fn insert_many(&self, entities: &[E]) -> Result<u64> {
        let meta = E::meta();
        // One time for the whole call (see `lifecycle`).
        let now = lifecycle::now();
        let rows = entities
            .iter()
            .enumerate()
            .map(|(i, e)| {
                prepare(
                    &*lifecycle::stamped_at(e, now, true),
                    meta.version_index.map(|_| 1),
                )
                .map_err(|err| Error::invalid_input(format!("row {i}: {}", err.message())))
            })
            .collect::<Result<Vec<_>>>()?;
        let cols = unique_indexes(meta);
        let _gate = self.shared.gate();
        self.check_parents(entities)
            .map_err(|e| e.in_context(meta.name, "insert_many"))?;
        let mut state = self.state.write();
        let n = rows.len() as u64;
        let mut done: Vec<Key> = Vec::with_capacity(rows.len());
        for (i, row) in rows.into_iter().enumerate() {
            let row = match state.with_generated_id(row) {
                Ok(row) => row,
                Err(e) => {
                    for id in done {
                        state.remove(&cols, &id);
                    }
                    return Err(e.in_context(meta.name, "insert_many"));
                }
            };
            if let Err(e) = state.put(&cols, row.clone(), false) {
                // All-or-nothing: undo what this call inserted.
                for id in done {
                    state.remove(&cols, &id);
                }
                let msg = format!("row {i}: {}", e.message());
                return Err(Error::new(e.kind().clone(), msg).in_context(meta.name, "insert_many"));
            }
            done.push(id_key::<E>(&row.record));
        }
        Ok(n)
    }

    async fn update(&self, entity: &E) -> Result<E> {
        let meta = E::meta();
        let cols = unique_indexes(meta);
        let _gate = self.shared.gate();
        self.check_parents([entity])
            .map_err(|e| e.in_context(meta.name, "update"))?;
        let mut state = self.state.write();
        let probe = Record::from_entity(entity)?;
        let id = id_key::<E>(&probe);
        let Some(current) = state.rows.get(&id) else {
            return Err(Error::not_found(format!("no {} with this id", meta.name))
                .in_context(meta.name, "update"));
        };
        let next = match (entity.version(), current.entity.version()) {
            (Some(mine), Some(stored)) if mine != stored => {
                return Err(
                    Error::stale_version(Some(mine), Some(stored)).in_context(meta.name, "update")
                );
            }
            (Some(_), Some(stored)) => Some(stored + 1),
            _ => None,
        };
        let created = lifecycle::created_at_of(meta, &current.record);
        let row = prepare(&*lifecycle::stamped_over(entity, created), next)?;
        state
            .put(&cols, row.clone(), true)
            .map_err(|e| e.in_context(meta.name, "update"))?;
        Ok(row.entity.clone())
    }

    async fn upsert(&self, entity: &E) -> Result<E> {
        let meta = E::meta();
        let cols = unique_indexes(meta);
        let _gate = self.shared.gate();
        self.check_parents([entity])
            .map_err(|e| e.in_context(meta.name, "upsert"))?;
        let mut state = self.state.write();
        let probe = Record::from_entity(entity)?;
        let id = id_key::<E>(&probe);
        let next = meta.version_index.map(|_| {
            state
                .rows
                .get(&id)
                .and_then(|r| r.entity.version())
                .map_or(1, |v| v + 1)
        });
        let entity = match state.rows.get(&id) {
            Some(current) => {
                lifecycle::stamped_over(entity, lifecycle::created_at_of(meta, &current.record))
            }
            None => stamped(entity, true),
        };
        let row = prepare(&*entity, next)?;
        state
            .put(&cols, row.clone(), true)
            .map_err(|e| e.in_context(meta.name, "upsert"))?;
        Ok(row.entity.clone())
    }

    async fn delete(&self, id: &E::Id) -> Result<bool> {
        if lifecycle::soft_deletes::<E>() {
            return lifecycle::soft_delete(self, id)
                .await
                .map_err(|e| e.in_context(E::meta().name, "delete"));
        }
        let meta = E::meta();
        let key = key_of::<E>(id)?;
        let cols = unique_indexes(meta);
        let _gate = self.shared.gate();
        let related = self.delete_related(|s| {
            s.rows
                .get_key_value(&key)
                .map(|(k, _)| k.clone())
                .into_iter()
                .collect()
        });
        if let Some(n) = related {
            return n
                .map(|n| n > 0)
                .map_err(|e| e.in_context(meta.name, "delete"));
        }
        Ok(self.state.write().remove(&cols, &key))
    }

    async fn delete_many(&self, filter: &Filter) -> Result<u64> {
        if lifecycle::soft_deletes::<E>() {
            return lifecycle::soft_delete_many(self, filter)
                .await
                .map_err(|e| e.in_context(E::meta().name, "delete_many"));
        }
        self.purge(filter).await
    }

    async fn purge(&self, filter: &Filter) -> Result<u64> {
        let meta = E::meta();
        let f = lifecycle::purge_filter(filter)
            .checked(meta)
            .map_err(|e| e.in_context(meta.name, "purge"))?;
        let cols = unique_indexes(meta);
        let _gate = self.shared.gate();
        let related = self.delete_related(|state| {
            state
                .rows
                .iter()
                .filter(|(_, r)| matches(&f, &r.record, meta))
                .map(|(k, _)| k.clone())
                .collect()
        });
        if let Some(n) = related {
            return n
                .map(|n| n as u64)
                .map_err(|e| e.in_context(meta.name, "purge"));
        }
        let mut state = self.state.write();
        let doomed: Vec<Key> = state
            .rows
            .iter()
            .filter(|(_, r)| matches(&f, &r.record, meta))
            .map(|(k, _)| k.clone())
            .collect();
        for k in &doomed {
            state.remove(&cols, k);
        }
        Ok(doomed.len() as u64)
    }

    async fn find(&self, query: &Query) -> Result<Vec<E>> {
        let rows = select(&self.state, query).map_err(|e| e.in_context(E::meta().name, "find"))?;
        Ok(rows.iter().map(|r| r.entity.clone()).collect())
    }

    /// Sorting in memory costs little: the rows of `find`.
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
            .map_err(|e| e.in_context(meta.name, "count"))?;
        let state = self.state.read();
        Ok(state
            .rows
            .values()
            .filter(|r| matches(&f, &r.record, meta))
            .count() as u64)
    }

    async fn exists(&self, filter: &Filter) -> Result<bool> {
        let meta = E::meta();
        let f = filter
            .checked(meta)
            .map_err(|e| e.in_context(meta.name, "exists"))?;
        let state = self.state.read();
        Ok(state.rows.values().any(|r| matches(&f, &r.record, meta)))
    }

    fn stream<'a>(&'a self, query: &Query) -> BoxStream<'a, Result<E>> {
        // The matching rows are selected under the read lock as shared
        // pointers (no entity is cloned up front); entities are cloned one
        // at a time as the consumer pulls them.
        match select(&self.state, query) {
            Ok(rows) => Box::pin(futures_util::stream::iter(
                rows.into_iter().map(|r| Ok(r.entity.clone())),
            )),
            Err(e) => Box::pin(futures_util::stream::once(async move {
                Err(e.in_context(E::meta().name, "stream"))
            })),
        }
    }

    async fn page(&self, query: &Query, cursor: Option<&Cursor>) -> Result<Page<E>> {
        support::page_via_find(self, query, cursor)
            .await
            .map_err(|e| e.in_context(E::meta().name, "page"))
    }

    async fn select(&self, query: &Query, fields: &[&str]) -> Result<Vec<Value>> {
        select_fields(&self.state, query, fields)
            .map_err(|e| e.in_context(E::meta().name, "select"))
    }

    async fn distinct(&self, field: &str, filter: &Filter) -> Result<Vec<Value>> {
        distinct(&self.state, field, filter).map_err(|e| e.in_context(E::meta().name, "distinct"))
    }

    async fn patch(&self, id: &E::Id, update: &Update<E>, guard: &Guard) -> Result<E> {
        let meta = E::meta();
        let ctx = |e: Error| e.in_context(meta.name, "patch");
        let update = update.checked(meta).map_err(ctx)?;
        let filter = guard
            .filter
            .as_ref()
            .map(|f| f.checked(meta))
            .transpose()
            .map_err(ctx)?;
        if guard.version.is_some() && meta.version_index.is_none() {
            return Err(ctx(Error::invalid_input(format!(
                "{} has no version field to guard",
                meta.name
            ))));
        }
        let scope = lifecycle::patch_scope(meta, guard).map_err(ctx)?;
        let key = key_of::<E>(id).map_err(ctx)?;
        let _gate = self.shared.gate();
        self.checked_change(|state| {
            patch::patch(state, &key, &update, scope.as_ref(), filter.as_ref(), guard)
        })
        .map_err(ctx)
    }

    async fn update_where(&self, filter: &Filter, update: &Update<E>) -> Result<u64> {
        let meta = E::meta();
        let ctx = |e: Error| e.in_context(meta.name, "update_where");
        let update = update.checked(meta).map_err(ctx)?;
        let f = filter.checked(meta).map_err(ctx)?;
        let _gate = self.shared.gate();
        self.checked_change(|state| patch::update_where(state, &f, &update))
            .map_err(ctx)
    }

    async fn find_one_and_delete(&self, query: &Query) -> Result<Option<E>> {
        let meta = E::meta();
        if lifecycle::soft_deletes::<E>() {
            return lifecycle::soft_pop(self, query)
                .await
                .map_err(|e| e.in_context(meta.name, "find_one_and_delete"));
        }
        let q = query
            .checked(meta)
            .map_err(|e| e.in_context(meta.name, "find_one_and_delete"))?;
        let _gate = self.shared.gate();
        if self.shared.has_children(meta.name) {
            let Some(first) = patch::first(&self.state.read(), &q) else {
                return Ok(None);
            };
            self.shared
                .delete_rows(meta.name, [id_key::<E>(&first.record)].into())
                .map_err(|e| e.in_context(meta.name, "find_one_and_delete"))?;
            return Ok(Some(first.entity.clone()));
        }
        let mut state = self.state.write();
        Ok(patch::pop(&mut state, &q))
    }

    async fn aggregate(&self, filter: &Filter, group: &GroupBy<E>) -> Result<Vec<Value>> {
        let meta = E::meta();
        let ctx = |e: Error| e.in_context(meta.name, "aggregate");
        let plan = group.checked(meta).map_err(ctx)?;
        let f = filter.checked(meta).map_err(ctx)?;
        let state = self.state.read();
        let matching = state
            .rows
            .values()
            .filter(|r| matches(&f, &r.record, meta))
            .map(|r| &r.record);
        aggregate_records(&plan, matching).map_err(ctx)
    }

    async fn find_nearest(&self, query: &NearestQuery) -> Result<Vec<(E, f64)>> {
        let meta = E::meta();
        let q = query
            .checked(meta)
            .map_err(|e| e.in_context(meta.name, "find_nearest"))?;
        let metric = q.field.spec.metric;
        let state = self.state.read();
        // Rows are kept in id order, so a stable sort breaks ties by id.
        let mut hits: Vec<(f64, &E)> = state
            .rows
            .values()
            .filter(|r| matches(&q.filter, &r.record, meta))
            .filter_map(|r| {
                let v = vector_of(&r.record.values[q.field.index])?;
                Some((metric.distance(&v, &query.vector), &r.entity))
            })
            .collect();
        hits.sort_by(|a, b| a.0.total_cmp(&b.0));
        hits.truncate(query.k);
        Ok(hits.into_iter().map(|(d, e)| (e.clone(), d)).collect())
    }

    async fn find_text(&self, query: &crate::text::TextQuery) -> Result<Vec<(E, f64)>> {
        let meta = E::meta();
        let q = query
            .checked(meta)
            .map_err(|e| e.in_context(meta.name, "find_text"))?;
        let state = self.state.read();
        let rows = state
            .rows
            .values()
            .filter(|r| matches(&q.filter, &r.record, meta))
            .map(|r| r.entity.clone());
        crate::text::rank_exact(rows, &q).map_err(|e| e.in_context(meta.name, "find_text"))
    }
}

impl<E: Entity> MemoryRepository<E> {
    /// Snapshot of all entities in id order (for tests and debugging).
    pub fn all(&self) -> Vec<E> {
        self.state
            .read()
            .rows
            .values()
            .map(|r| r.entity.clone())
            .collect()
    }
}
