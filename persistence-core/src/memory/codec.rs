//! What memory stores for an entity: a [`Row`] (the entity as a write
//! returns it, and its [`Record`] for filtering), and [`Key`], a value with
//! a total order for the id map and the unique indexes.

use std::cmp::Ordering;
use std::sync::Arc;

use crate::entity::{Entity, EntityMeta};
use crate::error::Result;
use crate::value::{Record, TimestampPrecision, Value};

/// The timestamp precision memory keeps (and declares).
pub(super) const PRECISION: TimestampPrecision = TimestampPrecision::Micros;

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

/// One stored entity.
pub(super) struct Row<E> {
    /// What `get` returns.
    pub(super) entity: E,
    /// The same, taken apart (filters and sorting read it).
    pub(super) record: Record,
}

/// The row stored for `entity`: its version set, its timestamps
/// truncated to microseconds (see the module docs).
pub(super) fn prepare<E: Entity>(entity: &E, version: Option<i64>) -> Result<Arc<Row<E>>> {
    // A tenant entity is written only in a tenant context (see `crate::tenant`).
    crate::tenant::context::require(E::meta())?;
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

/// The id of a record of `E`, as a key.
pub(super) fn id_key<E: Entity>(record: &Record) -> Key {
    Key(record.get(E::meta().id_index).clone())
}

/// The key of an id given by a caller.
pub(super) fn key_of<E: Entity>(id: &E::Id) -> Result<Key> {
    // Id operations on a tenant entity need a tenant context too.
    crate::tenant::context::require(E::meta())?;
    Ok(Key(
        Value::from_serialize(id)?.normalize(E::meta().id_field().ty)?
    ))
}

/// The columns of one unique index.
pub(super) struct UniqueCols {
    /// The indexed fields.
    cols: Vec<usize>,
    /// Rows where this field is set are not indexed (soft-deleted rows).
    live_only: Option<usize>,
}

/// The field indexes of every unique index, in `meta.uniques()` order.
pub(super) fn unique_indexes(meta: &EntityMeta) -> Vec<UniqueCols> {
    meta.uniques()
        .map(|ix| UniqueCols {
            cols: ix
                .fields
                .iter()
                .filter_map(|n| meta.field(n).map(|(i, _)| i))
                .collect(),
            live_only: ix.live_only.and_then(|n| meta.field(n).map(|(i, _)| i)),
        })
        .collect()
}

/// The key of `record` in a unique index; `None` when a value is null (not
/// constrained, as in SQL) or the row is outside a partial index.
pub(super) fn unique_key(record: &Record, ix: &UniqueCols) -> Option<Vec<Key>> {
    if ix.live_only.is_some_and(|c| !record.get(c).is_null()) {
        return None;
    }
    ix.cols
        .iter()
        .map(|&c| {
            let v = record.get(c);
            (!v.is_null()).then(|| Key(v.clone()))
        })
        .collect()
}
