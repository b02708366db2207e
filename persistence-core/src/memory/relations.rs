//! Declared relations on memory (see [`crate::relation`]): the tables of a
//! [`MemoryStore`](super::MemoryStore) know each other, so a write naming a
//! missing parent is refused and deleting a parent applies its children's
//! `on_delete`.
//!
//! Every write of a store where some table declares a `belongs_to` takes the
//! store's write gate first, so checks and the write (or a delete and its
//! whole cascade plan) are one step for every other writer; readers may see
//! a cascade half applied (children go first, so never a child without its
//! parent). Stores without relations never take the gate.

use std::any::Any;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::{Mutex, MutexGuard, RwLock};

use crate::entity::{Entity, EntityMeta, OnDelete, RelationKind};
use crate::error::{Error, Result};
use crate::relation::CrossStore;
use crate::value::{Record, Value};

use super::codec::{Key, unique_indexes};
use super::store::State;

/// A table as the other tables of its store see it.
pub(super) trait Table: Send + Sync {
    /// Its entity's metadata.
    fn meta(&self) -> &'static EntityMeta;
    /// Whether a row with this id is stored (soft-deleted rows too, as in SQL).
    fn contains(&self, id: &Key) -> bool;
    /// The ids of the rows whose field `field` holds one of `ids`.
    fn referencing(&self, field: usize, ids: &BTreeSet<Key>) -> Vec<Key>;
    /// Remove these rows.
    fn remove_keys(&self, keys: &BTreeSet<Key>);
    /// Set field `field` of these rows to null.
    fn set_null(&self, field: usize, keys: &BTreeSet<Key>) -> Result<()>;
    /// The typed table, for [`MemoryStore::repository`](super::MemoryStore::repository).
    fn as_any(&self) -> &(dyn Any + Send + Sync);
}

/// The typed table behind the trait.
pub(super) struct TableOf<E: Entity>(pub(super) Arc<RwLock<State<E>>>);

impl<E: Entity> Table for TableOf<E> {
    fn meta(&self) -> &'static EntityMeta {
        E::meta()
    }
    fn contains(&self, id: &Key) -> bool {
        self.0.read().rows.contains_key(id)
    }
    fn referencing(&self, field: usize, ids: &BTreeSet<Key>) -> Vec<Key> {
        self.0
            .read()
            .rows
            .iter()
            .filter(|(_, r)| ids.contains(&Key(r.record.get(field).clone())))
            .map(|(k, _)| k.clone())
            .collect()
    }
    fn remove_keys(&self, keys: &BTreeSet<Key>) {
        let cols = unique_indexes(E::meta());
        let mut state = self.0.write();
        for k in keys {
            state.remove(&cols, k);
        }
    }
    fn set_null(&self, field: usize, keys: &BTreeSet<Key>) -> Result<()> {
        let cols = unique_indexes(E::meta());
        let mut state = self.0.write();
        for k in keys {
            let Some(row) = state.rows.get(k).cloned() else {
                continue;
            };
            let mut record: Record = row.record.clone();
            record.values[field] = Value::Null;
            let entity: E = record.clone().into_entity()?;
            let row = Arc::new(super::codec::Row { entity, record });
            state.put(&cols, row, true)?;
        }
        Ok(())
    }
    fn as_any(&self) -> &(dyn Any + Send + Sync) {
        &self.0
    }
}

/// What the tables of one store share.
#[derive(Default)]
pub(super) struct Shared {
    pub(super) tables: RwLock<HashMap<&'static str, Arc<dyn Table>>>,
    gate: Mutex<()>,
    related: AtomicBool,
}

impl Shared {
    /// Register a table (its `belongs_to` relations engage the gate).
    pub(super) fn register(&self, table: Arc<dyn Table>) {
        if table.meta().belongs_to().next().is_some() {
            self.related.store(true, Ordering::SeqCst);
        }
        self.tables.write().insert(table.meta().name, table);
    }

    /// The write gate, when some table of the store has relations.
    pub(super) fn gate(&self) -> Option<MutexGuard<'_, ()>> {
        self.related
            .load(Ordering::SeqCst)
            .then(|| self.gate.lock())
    }

    fn table(&self, name: &str) -> Option<Arc<dyn Table>> {
        self.tables.read().get(name).cloned()
    }

    /// Refuse `records` of `E` whose non-null key names no parent.
    pub(super) fn check_parents<'r, E: Entity>(
        &self,
        records: impl IntoIterator<Item = &'r Record>,
        cross: &CrossStore,
    ) -> Result<()> {
        let meta = E::meta();
        let rels: Vec<_> = cross
            .enforced(meta)
            .filter_map(|r| Some((r, meta.field(r.key)?.0, (r.target)())))
            .collect();
        if rels.is_empty() {
            return Ok(());
        }
        for record in records {
            for (r, field, target) in &rels {
                let v = record.get(*field);
                if matches!(v, Value::Null) {
                    continue;
                }
                let found = self
                    .table(target.name)
                    .is_some_and(|t| t.contains(&Key(v.clone())));
                if !found {
                    return Err(Error::missing_parent(
                        meta.relation_path(r),
                        format!(
                            "{} refers to a {} that does not exist",
                            meta.name, target.name
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Remove the rows `ids` of table `entity` with what their children's
    /// `on_delete` asks: all of it, or nothing when a `restrict` relation
    /// still has rows (`Conflict(Referenced)`).
    pub(super) fn delete_rows(&self, entity: &'static str, ids: BTreeSet<Key>) -> Result<()> {
        // Plan: the rows to remove per table (parents first) and the keys to clear.
        let mut order: Vec<&'static str> = Vec::new();
        let mut doomed: BTreeMap<&'static str, BTreeSet<Key>> = BTreeMap::new();
        let mut nulls: Vec<(Arc<dyn Table>, usize, BTreeSet<Key>)> = Vec::new();
        let mut queue = vec![(entity, ids)];
        let tables: Vec<Arc<dyn Table>> = self.tables.read().values().cloned().collect();
        while let Some((name, ids)) = queue.pop() {
            let fresh: BTreeSet<Key> = {
                let seen = doomed.entry(name).or_default();
                let fresh: BTreeSet<Key> = ids.into_iter().filter(|k| !seen.contains(k)).collect();
                seen.extend(fresh.iter().cloned());
                fresh
            };
            if !order.contains(&name) {
                order.push(name);
            }
            if fresh.is_empty() {
                continue;
            }
            for child in &tables {
                let cm = child.meta();
                for r in cm
                    .relations
                    .iter()
                    .filter(|r| r.kind == RelationKind::BelongsTo)
                {
                    if (r.target)().name != name {
                        continue;
                    }
                    let Some((field, _)) = cm.field(r.key) else {
                        continue;
                    };
                    let refs: BTreeSet<Key> =
                        child.referencing(field, &fresh).into_iter().collect();
                    if refs.is_empty() {
                        continue;
                    }
                    match r.on_delete {
                        OnDelete::Restrict => {
                            return Err(Error::referenced(
                                cm.relation_path(r),
                                format!("{} rows of {} still refer to it", refs.len(), cm.name),
                            ));
                        }
                        OnDelete::Cascade => queue.push((cm.name, refs)),
                        OnDelete::SetNull => nulls.push((child.clone(), field, refs)),
                    }
                }
            }
        }
        // Apply, children first: clear keys (of rows that stay), then remove.
        for (table, field, keys) in nulls {
            let gone = doomed.get(table.meta().name);
            let keep: BTreeSet<Key> = keys
                .into_iter()
                .filter(|k| gone.is_none_or(|g| !g.contains(k)))
                .collect();
            table.set_null(field, &keep)?;
        }
        for name in order.iter().rev() {
            if let (Some(table), Some(keys)) = (self.table(name), doomed.get(name)) {
                table.remove_keys(keys);
            }
        }
        Ok(())
    }

    /// Whether some table of the store has a `belongs_to` naming `entity`.
    pub(super) fn has_children(&self, entity: &str) -> bool {
        self.related.load(Ordering::SeqCst)
            && self
                .tables
                .read()
                .values()
                .any(|t| t.meta().belongs_to().any(|r| (r.target)().name == entity))
    }
}
