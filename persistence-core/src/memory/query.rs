//! Queries over the rows in memory: the reference semantics of every filter
//! ([`matches`]), sorting, offset and limit. Paging is the shared keyset
//! plan over `find` (`repository::support::page_via_find`).

use std::cmp::Ordering;
use std::sync::Arc;

use crate::entity::{Entity, EntityMeta};
use crate::error::Result;
use crate::filter::{CompareOp, Filter};
use crate::query::{Direction, Query, SortKey};
use crate::value::{Record, Value};

use super::codec::Row;
use super::store::State;

/// The rows of `state` that `query` selects, in its order, after its offset
/// and limit. The read lock is held only while filtering.
pub(super) fn select<E: Entity>(
    state: &parking_lot::RwLock<State<E>>,
    query: &Query,
) -> Result<Vec<Arc<Row<E>>>> {
    let q = query.checked(E::meta())?;
    let guard = state.read();
    let rows = matching(&guard, &q.filter);
    drop(guard);
    Ok(order(rows, &q))
}

/// The rows of a locked `state` matching a checked filter, unordered.
pub(super) fn matching<E: Entity>(state: &State<E>, filter: &Filter) -> Vec<Arc<Row<E>>> {
    let meta = E::meta();
    state
        .rows
        .values()
        .filter(|r| matches(filter, &r.record, meta))
        .cloned()
        .collect()
}

/// Sort the rows of a checked query, then apply its offset and limit.
pub(super) fn order<E: Entity>(mut rows: Vec<Arc<Row<E>>>, q: &Query) -> Vec<Arc<Row<E>>> {
    sort_rows(&mut rows, &q.sort, E::meta());
    let offset = usize::try_from(q.offset).unwrap_or(usize::MAX);
    match q.limit {
        Some(l) => rows
            .into_iter()
            .skip(offset)
            .take(usize::try_from(l).unwrap_or(usize::MAX))
            .collect(),
        None => rows.into_iter().skip(offset).collect(),
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
        Filter::Like { field, pattern } => {
            matches!(value_at(field), Value::String(s) if pattern.matches(s))
        }
        Filter::ArrayContains { field, value } => match value_at(field) {
            Value::Array(items) => items.iter().any(|x| eq(x, value)),
            _ => false,
        },
        Filter::Invalid(_) => false,
        Filter::Scope(_) => true,
        Filter::MatchesText(q) => meta.text.as_ref().is_some_and(|t| {
            crate::text::ParsedQuery::parse(t.language, q)
                .is_ok_and(|p| p.matches(&crate::text::document(record, t)))
        }),
    }
}
