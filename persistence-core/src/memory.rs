//! The in-memory reference backend.
//!
//! [`MemoryRepository`] defines the semantics the other backends are checked
//! against, and is the embedded default for document storage. It is fully
//! concurrent (one `RwLock` per repository; every write is atomic, including
//! `insert_many`), honors unique constraints (a row with a null in a unique
//! field is not constrained, as in SQL), versions, every filter, sort and paging.
//!
//! # What is stored
//!
//! Memory stores what a microsecond store keeps, so that it agrees with
//! PostgreSQL and SQLite and the entity a write returns is the one `get`
//! reads: the timestamps of timestamp fields (and arrays of them) are
//! truncated toward the past to whole microseconds (the
//! [`TimestampPrecision::Micros`](crate::TimestampPrecision) it declares);
//! everything else is kept exactly as given (decimals keep their scale:
//! memory has no column type to round to; floats keep `-0.0`, `NaN`).
//! `insert`, `update` and `upsert` return the stored entity.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::sync::Arc;

use parking_lot::RwLock;

use crate::entity::{Entity, EntityMeta};
use crate::error::{Error, Result};
use crate::filter::{CompareOp, Filter};
use crate::query::{Direction, Page, Query, SortKey};
use crate::repository::{BoxStream, Capabilities, Repository, TimestampPrecision, support};
use crate::value::{Record, Value};

/// The timestamp precision memory keeps (and declares).
const PRECISION: TimestampPrecision = TimestampPrecision::Micros;

/// A [`Value`] with a total order, usable as a map key.
#[derive(Debug, Clone)]
pub struct Key(pub Value);
impl PartialEq for Key {
    fn eq(&self, other: &Self) -> bool {
        self.0.total_cmp(&other.0) == Ordering::Equal
    }
}
impl Eq for Key {}
impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Key {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0)
    }
}

struct Row<E> {
    entity: E,
    record: Record,
}

struct State<E> {
    rows: BTreeMap<Key, Arc<Row<E>>>,
    /// One map per unique index in `meta.indexes` order: key values -> id.
    uniques: Vec<BTreeMap<Vec<Key>, Key>>,
}

/// A concurrent in-memory repository. Cheap to clone (shares the data).
pub struct MemoryRepository<E: Entity> {
    state: Arc<RwLock<State<E>>>,
}

impl<E: Entity> Clone for MemoryRepository<E> {
    fn clone(&self) -> Self {
        MemoryRepository {
            state: self.state.clone(),
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

fn unique_indexes(meta: &EntityMeta) -> Vec<Vec<usize>> {
    meta.uniques()
        .map(|ix| {
            ix.fields
                .iter()
                .filter_map(|n| meta.field(n).map(|(i, _)| i))
                .collect()
        })
        .collect()
}

fn unique_key(record: &Record, cols: &[usize]) -> Option<Vec<Key>> {
    cols.iter()
        .map(|&c| {
            let v = record.get(c);
            (!v.is_null()).then(|| Key(v.clone()))
        })
        .collect()
}

impl<E: Entity> MemoryRepository<E> {
    /// An empty repository.
    pub fn new() -> Self {
        let n = E::meta().uniques().count();
        MemoryRepository {
            state: Arc::new(RwLock::new(State {
                rows: BTreeMap::new(),
                uniques: vec![BTreeMap::new(); n],
            })),
        }
    }

    /// Number of stored entities.
    pub fn len(&self) -> usize {
        self.state.read().rows.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The row stored for `entity`: its version set, its timestamps
    /// truncated to microseconds (see the module docs).
    fn prepare(entity: &E, version: Option<i64>) -> Result<Arc<Row<E>>> {
        let mut entity = entity.clone();
        if let Some(v) = version {
            entity.set_version(v);
        }
        let mut record = Record::from_entity(&entity)?;
        if record.fit_timestamps(PRECISION) {
            entity = record.clone().into_entity()?;
        }
        Ok(Arc::new(Row { entity, record }))
    }

    fn id_key(record: &Record) -> Key {
        Key(record.get(E::meta().id_index).clone())
    }

    /// Check unique constraints for `row` (ignoring the row with id `own`).
    fn check_unique(state: &State<E>, cols: &[Vec<usize>], row: &Row<E>, own: &Key) -> Result<()> {
        let meta = E::meta();
        for (n, (ix, map)) in meta.uniques().zip(&state.uniques).enumerate() {
            if let Some(k) = unique_key(&row.record, &cols[n]) {
                if let Some(holder) = map.get(&k) {
                    if holder != own {
                        return Err(Error::unique_violation(
                            Some(ix.name.clone()),
                            format!(
                                "{} already holds this value of ({})",
                                meta.name,
                                ix.fields.join(", ")
                            ),
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    fn index_row(state: &mut State<E>, cols: &[Vec<usize>], row: &Row<E>, id: &Key, add: bool) {
        for (n, map) in state.uniques.iter_mut().enumerate() {
            if let Some(k) = unique_key(&row.record, &cols[n]) {
                if add {
                    map.insert(k, id.clone());
                } else {
                    map.remove(&k);
                }
            }
        }
    }

    fn put(
        state: &mut State<E>,
        cols: &[Vec<usize>],
        row: Arc<Row<E>>,
        replace: bool,
    ) -> Result<()> {
        let id = Self::id_key(&row.record);
        let old = state.rows.get(&id).cloned();
        if old.is_some() && !replace {
            return Err(Error::duplicate_id(format!(
                "{} with this id already exists",
                E::meta().name
            )));
        }
        Self::check_unique(state, cols, &row, &id)?;
        if let Some(old) = &old {
            Self::index_row(state, cols, old, &id, false);
        }
        Self::index_row(state, cols, &row, &id, true);
        state.rows.insert(id, row);
        Ok(())
    }

    fn select(&self, query: &Query) -> Result<Vec<Arc<Row<E>>>> {
        let meta = E::meta();
        let q = query.checked(meta)?;
        let state = self.state.read();
        let mut rows: Vec<Arc<Row<E>>> = state
            .rows
            .values()
            .filter(|r| matches(&q.filter, &r.record, meta))
            .cloned()
            .collect();
        drop(state);
        sort_rows(&mut rows, &q.sort, meta);
        let offset = usize::try_from(q.offset).unwrap_or(usize::MAX);
        let rows: Vec<_> = match q.limit {
            Some(l) => rows
                .into_iter()
                .skip(offset)
                .take(usize::try_from(l).unwrap_or(usize::MAX))
                .collect(),
            None => rows.into_iter().skip(offset).collect(),
        };
        Ok(rows)
    }
}

fn sort_rows<E>(rows: &mut [Arc<Row<E>>], sort: &[SortKey], meta: &EntityMeta) {
    let paths: Vec<_> = sort
        .iter()
        .filter_map(|k| meta.resolve_path(&k.field).ok().map(|p| (p, k.direction)))
        .collect();
    rows.sort_by(|a, b| {
        for (p, dir) in &paths {
            let o = a
                .record
                .get_path(meta, p)
                .total_cmp(&b.record.get_path(meta, p));
            let o = if *dir == Direction::Desc {
                o.reverse()
            } else {
                o
            };
            if o != Ordering::Equal {
                return o;
            }
        }
        Ordering::Equal
    });
}

fn same_bracket(a: &Value, b: &Value) -> bool {
    use Value::*;
    let num = |v: &Value| match v {
        I64(_) | F64(_) => true,
        #[cfg(feature = "decimal")]
        Decimal(_) => true,
        _ => false,
    };
    (num(a) && num(b)) || std::mem::discriminant(a) == std::mem::discriminant(b)
}

fn eq(a: &Value, b: &Value) -> bool {
    !a.is_null() && same_bracket(a, b) && a.total_cmp(b) == Ordering::Equal
}

/// `v` equals one of `values` (a checked list: sorted by `total_cmp`, distinct).
fn in_list(v: &Value, values: &[Value]) -> bool {
    if values.len() <= 16 {
        return values.iter().any(|x| eq(v, x));
    }
    !v.is_null()
        && values
            .binary_search_by(|x| x.total_cmp(v))
            .is_ok_and(|i| same_bracket(v, &values[i]))
}

/// Evaluate a *checked* filter against a record (the reference semantics).
pub fn matches(filter: &Filter, record: &Record, meta: &EntityMeta) -> bool {
    const NULL: &Value = &Value::Null;
    let value_at = |path: &str| -> &Value {
        // Fast path: a plain field name (no nested segments).
        if !path.contains('.') {
            return match meta.field(path) {
                Some((i, _)) => record.get(i),
                None => NULL,
            };
        }
        match meta.resolve_path(path) {
            Ok(p) => record.path_ref(&p),
            Err(_) => NULL,
        }
    };
    match filter {
        Filter::And(fs) => fs.iter().all(|f| matches(f, record, meta)),
        Filter::Or(fs) => fs.iter().any(|f| matches(f, record, meta)),
        Filter::Not(f) => !matches(f, record, meta),
        Filter::Compare { field, op, value } => {
            let v = value_at(field);
            match op {
                CompareOp::Eq => eq(v, value),
                CompareOp::Ne => !eq(v, value),
                _ => {
                    if v.is_null() || !same_bracket(v, value) {
                        return false;
                    }
                    let o = v.total_cmp(value);
                    match op {
                        CompareOp::Lt => o == Ordering::Less,
                        CompareOp::Lte => o != Ordering::Greater,
                        CompareOp::Gt => o == Ordering::Greater,
                        _ => o != Ordering::Less,
                    }
                }
            }
        }
        Filter::In { field, values } => in_list(value_at(field), values),
        Filter::NotIn { field, values } => !in_list(value_at(field), values),
        Filter::IsNull(field) => value_at(field).is_null(),
        Filter::IsNotNull(field) => !value_at(field).is_null(),
        Filter::StartsWith { field, prefix } => {
            matches!(value_at(field), Value::String(s) if s.starts_with(prefix.as_str()))
        }
        Filter::Contains { field, substring } => {
            matches!(value_at(field), Value::String(s) if s.contains(substring.as_str()))
        }
        Filter::ArrayContains { field, value } => match value_at(field) {
            Value::Array(items) => items.iter().any(|x| eq(x, value)),
            _ => false,
        },
        Filter::Invalid(_) => false,
    }
}

impl<E: Entity> Repository<E> for MemoryRepository<E> {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            transactions: false,
            timestamp_precision: PRECISION,
            ..Capabilities::full("memory")
        }
    }

    async fn ensure_schema(&self) -> Result<()> {
        Ok(())
    }

    async fn get(&self, id: &E::Id) -> Result<Option<E>> {
        let key = Key(Value::from_serialize(id)?.normalize(E::meta().id_field().ty)?);
        Ok(self.state.read().rows.get(&key).map(|r| r.entity.clone()))
    }

    async fn get_many(&self, ids: &[E::Id]) -> Result<Vec<E>> {
        let ty = E::meta().id_field().ty;
        let keys = ids
            .iter()
            .map(|id| Ok(Key(Value::from_serialize(id)?.normalize(ty)?)))
            .collect::<Result<Vec<_>>>()?;
        let state = self.state.read();
        let mut seen = std::collections::BTreeSet::new();
        Ok(keys
            .into_iter()
            .filter(|k| seen.insert(k.clone()))
            .filter_map(|k| state.rows.get(&k).map(|r| r.entity.clone()))
            .collect())
    }

    async fn insert(&self, entity: &E) -> Result<E> {
        let meta = E::meta();
        let row = Self::prepare(entity, meta.version_index.map(|_| 1))?;
        let cols = unique_indexes(meta);
        Self::put(&mut self.state.write(), &cols, row.clone(), false)
            .map_err(|e| e.in_context(meta.name, "insert"))?;
        Ok(row.entity.clone())
    }

    async fn insert_many(&self, entities: &[E]) -> Result<u64> {
        let meta = E::meta();
        let rows = entities
            .iter()
            .enumerate()
            .map(|(i, e)| {
                Self::prepare(e, meta.version_index.map(|_| 1))
                    .map_err(|err| Error::invalid_input(format!("row {i}: {}", err.message())))
            })
            .collect::<Result<Vec<_>>>()?;
        let cols = unique_indexes(meta);
        let mut state = self.state.write();
        let mut done: Vec<Key> = Vec::with_capacity(rows.len());
        for (i, row) in rows.iter().enumerate() {
            if let Err(e) = Self::put(&mut state, &cols, row.clone(), false) {
                // All-or-nothing: undo what this call inserted.
                for id in done {
                    if let Some(r) = state.rows.remove(&id) {
                        Self::index_row(&mut state, &cols, &r, &id, false);
                    }
                }
                let msg = format!("row {i}: {}", e.message());
                return Err(Error::new(e.kind().clone(), msg).in_context(meta.name, "insert_many"));
            }
            done.push(Self::id_key(&row.record));
        }
        Ok(rows.len() as u64)
    }

    async fn update(&self, entity: &E) -> Result<E> {
        let meta = E::meta();
        let cols = unique_indexes(meta);
        let mut state = self.state.write();
        let probe = Record::from_entity(entity)?;
        let id = Self::id_key(&probe);
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
        let row = Self::prepare(entity, next)?;
        Self::put(&mut state, &cols, row.clone(), true)
            .map_err(|e| e.in_context(meta.name, "update"))?;
        Ok(row.entity.clone())
    }

    async fn upsert(&self, entity: &E) -> Result<E> {
        let meta = E::meta();
        let cols = unique_indexes(meta);
        let mut state = self.state.write();
        let probe = Record::from_entity(entity)?;
        let id = Self::id_key(&probe);
        let next = meta.version_index.map(|_| {
            state
                .rows
                .get(&id)
                .and_then(|r| r.entity.version())
                .map_or(1, |v| v + 1)
        });
        let row = Self::prepare(entity, next)?;
        Self::put(&mut state, &cols, row.clone(), true)
            .map_err(|e| e.in_context(meta.name, "upsert"))?;
        Ok(row.entity.clone())
    }

    async fn delete(&self, id: &E::Id) -> Result<bool> {
        let meta = E::meta();
        let key = Key(Value::from_serialize(id)?.normalize(meta.id_field().ty)?);
        let cols = unique_indexes(meta);
        let mut state = self.state.write();
        match state.rows.remove(&key) {
            Some(row) => {
                Self::index_row(&mut state, &cols, &row, &key, false);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    async fn delete_many(&self, filter: &Filter) -> Result<u64> {
        let meta = E::meta();
        let f = filter
            .checked(meta)
            .map_err(|e| e.in_context(meta.name, "delete_many"))?;
        let cols = unique_indexes(meta);
        let mut state = self.state.write();
        let doomed: Vec<Key> = state
            .rows
            .iter()
            .filter(|(_, r)| matches(&f, &r.record, meta))
            .map(|(k, _)| k.clone())
            .collect();
        for k in &doomed {
            if let Some(row) = state.rows.remove(k) {
                Self::index_row(&mut state, &cols, &row, k, false);
            }
        }
        Ok(doomed.len() as u64)
    }

    async fn find(&self, query: &Query) -> Result<Vec<E>> {
        let rows = self
            .select(query)
            .map_err(|e| e.in_context(E::meta().name, "find"))?;
        Ok(rows.iter().map(|r| r.entity.clone()).collect())
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
        match self.select(query) {
            Ok(rows) => Box::pin(futures_util::stream::iter(
                rows.into_iter().map(|r| Ok(r.entity.clone())),
            )),
            Err(e) => Box::pin(futures_util::stream::once(async move {
                Err(e.in_context(E::meta().name, "stream"))
            })),
        }
    }

    async fn page(&self, query: &Query, cursor: Option<&crate::query::Cursor>) -> Result<Page<E>> {
        support::page_via_find(self, query, cursor)
            .await
            .map_err(|e| e.in_context(E::meta().name, "page"))
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
