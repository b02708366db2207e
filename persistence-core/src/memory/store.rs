//! The table behind a [`MemoryRepository`](super::MemoryRepository): the
//! rows by id and one map per unique index, changed only together so the
//! indexes always describe the rows.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::entity::Entity;
use crate::error::{Error, Result};

use super::codec::{Key, Row, UniqueCols, id_key, unique_key};

/// The rows of one entity type and their unique indexes.
pub(super) struct State<E> {
    /// Rows by id, in id order.
    pub(super) rows: BTreeMap<Key, Arc<Row<E>>>,
    /// One map per unique index in `meta.indexes` order: key values -> id.
    uniques: Vec<BTreeMap<Vec<Key>, Key>>,
}

impl<E> Clone for State<E> {
    fn clone(&self) -> Self {
        State {
            rows: self.rows.clone(),
            uniques: self.uniques.clone(),
        }
    }
}

impl<E: Entity> State<E> {
    /// An empty table for `E`.
    pub(super) fn new() -> Self {
        State {
            rows: BTreeMap::new(),
            uniques: vec![BTreeMap::new(); E::meta().uniques().count()],
        }
    }

    /// `row` with an id when its `#[entity(generated)]` id is unset: an
    /// integer one past the largest stored one (at least 1), a random
    /// UUID (a `String` id holds its simple form).
    pub(super) fn with_generated_id(&self, row: Arc<Row<E>>) -> Result<Arc<Row<E>>> {
        use crate::{FieldType, ScalarType, Value};
        let meta = E::meta();
        let i = meta.id_index;
        if !meta.is_unset_generated(i, row.record.get(i)) {
            return Ok(row);
        }
        let id = match meta.id_field().ty {
            FieldType::Scalar(ScalarType::String) => {
                Value::String(uuid::Uuid::new_v4().simple().to_string())
            }
            FieldType::Scalar(ScalarType::Uuid) => Value::Uuid(uuid::Uuid::new_v4()),
            _ => {
                let max = self
                    .rows
                    .keys()
                    .filter_map(|k| match &k.0 {
                        Value::I64(n) => Some(*n),
                        _ => None,
                    })
                    .max()
                    .unwrap_or(0);
                Value::I64(max.max(0).checked_add(1).ok_or_else(|| {
                    Error::invalid_input(format!("{}: no id left to assign", meta.name))
                })?)
            }
        };
        let mut record = row.record.clone();
        record.values[i] = id.normalize(meta.id_field().ty)?;
        let entity = record.clone().into_entity()?;
        Ok(Arc::new(Row { entity, record }))
    }

    /// Check unique constraints for `row` (ignoring the row with id `own`).
    fn check_unique(&self, cols: &[UniqueCols], row: &Row<E>, own: &Key) -> Result<()> {
        let meta = E::meta();
        for (n, (ix, map)) in meta.uniques().zip(&self.uniques).enumerate() {
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

    /// Add `row` (with id `id`) to the unique indexes, or take it out.
    fn index_row(&mut self, cols: &[UniqueCols], row: &Row<E>, id: &Key, add: bool) {
        for (n, map) in self.uniques.iter_mut().enumerate() {
            if let Some(k) = unique_key(&row.record, &cols[n]) {
                if add {
                    map.insert(k, id.clone());
                } else {
                    map.remove(&k);
                }
            }
        }
    }

    /// Store `row`: a duplicate id fails unless `replace`, a unique
    /// violation always does (and changes nothing).
    pub(super) fn put(
        &mut self,
        cols: &[UniqueCols],
        row: Arc<Row<E>>,
        replace: bool,
    ) -> Result<()> {
        let id = id_key::<E>(&row.record);
        let old = self.rows.get(&id).cloned();
        if old.is_some() && !replace {
            return Err(Error::duplicate_id(format!(
                "{} with this id already exists",
                E::meta().name
            )));
        }
        self.check_unique(cols, &row, &id)?;
        if let Some(old) = &old {
            self.index_row(cols, old, &id, false);
        }
        self.index_row(cols, &row, &id, true);
        self.rows.insert(id, row);
        Ok(())
    }

    /// Remove the row with id `id`, if any, and its index entries.
    pub(super) fn remove(&mut self, cols: &[UniqueCols], id: &Key) -> bool {
        match self.rows.remove(id) {
            Some(row) => {
                self.index_row(cols, &row, id, false);
                true
            }
            None => false,
        }
    }
}
