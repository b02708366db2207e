//! The atomic partial updates of [`MemoryRepository`](super::MemoryRepository):
//! `patch`, `update_where` and `find_one_and_delete`, each under one hold of
//! the write lock, applying updates with the reference
//! [`Update::apply_to`].

use std::sync::Arc;

use crate::entity::Entity;
use crate::error::{Error, ErrorKind, Result};
use crate::filter::Filter;
use crate::query::Query;
use crate::update::{Guard, Update};

use super::codec::{Key, Row, id_key, prepare, unique_indexes};
use super::query::{matches, matching, order};
use super::store::State;

/// The row `update` makes of `row` (version + 1 for versioned entities).
fn updated<E: Entity>(update: &Update<E>, row: &Row<E>) -> Result<Arc<Row<E>>> {
    let meta = E::meta();
    let record = update.apply_to(meta, &row.record)?;
    let entity: E = record.into_entity().map_err(|e| {
        // The record fitted the metadata but not the Rust type (a nested
        // value of the wrong shape): the caller's input, nothing stored.
        if matches!(e.kind(), ErrorKind::Decode) {
            Error::invalid_input(format!(
                "the update does not fit {}: {}",
                meta.name,
                e.message()
            ))
        } else {
            e
        }
    })?;
    prepare(&entity, row.entity.version().map(|v| v + 1))
}

/// `patch` on a locked table.
pub(super) fn patch<E: Entity>(
    state: &mut State<E>,
    key: &Key,
    update: &Update<E>,
    scope: Option<&Filter>,
    guard_filter: Option<&Filter>,
    guard: &Guard,
) -> Result<E> {
    let meta = E::meta();
    let Some(current) = state
        .rows
        .get(key)
        .filter(|r| scope.is_none_or(|s| matches(s, &r.record, meta)))
        .cloned()
    else {
        return Err(Error::not_found(format!("no {} with this id", meta.name)));
    };
    if let Some(expected) = guard.version {
        let stored = current.entity.version();
        if stored != Some(expected) {
            return Err(Error::stale_version(Some(expected), stored));
        }
    }
    if let Some(f) = guard_filter {
        if !matches(f, &current.record, meta) {
            return Err(Error::guard_failed(format!(
                "the stored {} does not match the guard",
                meta.name
            )));
        }
    }
    let row = updated(update, &current)?;
    state.put(&unique_indexes(meta), row.clone(), true)?;
    Ok(row.entity.clone())
}

/// `update_where` on a locked table: every row or none.
pub(super) fn update_where<E: Entity>(
    state: &mut State<E>,
    filter: &Filter,
    update: &Update<E>,
) -> Result<u64> {
    let meta = E::meta();
    let old = matching(state, filter);
    let new = old
        .iter()
        .map(|r| updated(update, r))
        .collect::<Result<Vec<_>>>()?;
    let cols = unique_indexes(meta);
    // Take the old rows out, then put the new ones in; on a unique
    // violation take those out again and restore the old rows, which fitted
    // together before.
    for r in &old {
        state.remove(&cols, &id_key::<E>(&r.record));
    }
    for (i, row) in new.iter().enumerate() {
        if let Err(e) = state.put(&cols, row.clone(), false) {
            for done in &new[..i] {
                state.remove(&cols, &id_key::<E>(&done.record));
            }
            for r in &old {
                let _ = state.put(&cols, r.clone(), false);
            }
            return Err(e);
        }
    }
    Ok(new.len() as u64)
}

/// The row `find_one_and_delete` takes, for a checked query.
pub(super) fn first<E: Entity>(state: &State<E>, query: &Query) -> Option<Arc<Row<E>>> {
    let mut q = query.clone();
    q.limit = Some(1);
    order(matching(state, &q.filter), &q).into_iter().next()
}

/// `find_one_and_delete` on a locked table, for a checked query.
pub(super) fn pop<E: Entity>(state: &mut State<E>, query: &Query) -> Option<E> {
    let first = first(state, query)?;
    state.remove(&unique_indexes(E::meta()), &id_key::<E>(&first.record));
    Some(first.entity.clone())
}
