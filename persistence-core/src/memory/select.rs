//! Projections and distinct values over the rows in memory (the reference
//! semantics of [`Repository::select`](crate::Repository::select) and
//! [`Repository::distinct`](crate::Repository::distinct)).

use crate::entity::Entity;
use crate::error::Result;
use crate::filter::Filter;
use crate::query::Query;
use crate::select::{check_distinct, check_select, project, sort_distinct};
use crate::value::Value;

use super::query::{matches, select};
use super::store::State;

/// The asked fields of the rows `query` selects, in its order.
pub(super) fn select_fields<E: Entity>(
    state: &parking_lot::RwLock<State<E>>,
    query: &Query,
    fields: &[&str],
) -> Result<Vec<Value>> {
    let meta = E::meta();
    let cols = check_select(meta, fields)?;
    let rows = select(state, query)?;
    Ok(rows.iter().map(|r| project(&r.record, &cols)).collect())
}

/// The distinct values of `field` among the rows matching `filter`.
pub(super) fn distinct<E: Entity>(
    state: &parking_lot::RwLock<State<E>>,
    field: &str,
    filter: &Filter,
) -> Result<Vec<Value>> {
    let meta = E::meta();
    let (i, _) = check_distinct(meta, field)?;
    let f = filter.checked(meta)?;
    let mut values: Vec<Value> = {
        let guard = state.read();
        guard
            .rows
            .values()
            .filter(|r| matches(&f, &r.record, meta))
            .map(|r| r.record.get(i).clone())
            .collect()
    };
    sort_distinct(&mut values);
    Ok(values)
}
