//! Soft-delete scopes: which rows of a soft-deletable entity a filter sees.
//!
//! A filter on an entity with an `#[entity(soft_delete)]` field sees only
//! live rows unless it says otherwise with [`Filter::with_deleted`] or
//! [`Filter::only_deleted`] (and their [`Query`](crate::Query) forms).
//! [`Filter::checked`] applies the scope: its result starts with a
//! [`Filter::Scope`] marker (which matches every row: backends translate it
//! as `TRUE`) followed by the condition on the soft-delete field, so
//! checking a checked filter again changes nothing.

use crate::entity::EntityMeta;
use crate::error::{Error, Result};

use super::ast::{FieldPath, Filter};

/// Which rows of a soft-deletable entity a filter sees.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Rows whose soft-delete field is null (the default).
    #[default]
    Live,
    /// Every row, deleted or not.
    WithDeleted,
    /// Only soft-deleted rows.
    OnlyDeleted,
}

impl Filter {
    /// See deleted rows too (soft-deletable entities; no effect on others).
    pub fn with_deleted(self) -> Filter {
        self.and(Filter::Scope(Scope::WithDeleted))
    }
    /// See only soft-deleted rows (`InvalidInput` on entities without a
    /// soft-delete field).
    pub fn only_deleted(self) -> Filter {
        self.and(Filter::Scope(Scope::OnlyDeleted))
    }
    /// The scope this filter asks for, when it names one.
    pub fn scope(&self) -> Option<Scope> {
        let mut stack = vec![self];
        while let Some(f) = stack.pop() {
            match f {
                Filter::Scope(s) => return Some(*s),
                Filter::And(fs) => stack.extend(fs),
                _ => {}
            }
        }
        None
    }
    /// This filter with `scope` added, unless it already names one.
    pub fn or_scope(self, scope: Scope) -> Filter {
        if self.scope().is_some() {
            self
        } else {
            self.and(Filter::Scope(scope))
        }
    }
}

/// Apply the soft-delete scope to a checked filter (see the module docs).
pub(super) fn apply(filter: Filter, meta: &EntityMeta) -> Result<Filter> {
    let mut found: Option<Scope> = None;
    // Scope markers may only be conjuncts of the whole filter.
    let mut stack: Vec<(&Filter, bool)> = vec![(&filter, true)];
    while let Some((f, top)) = stack.pop() {
        match f {
            Filter::Scope(s) => {
                if !top {
                    return Err(Error::invalid_input(
                        "with_deleted() / only_deleted() apply to the whole filter: they cannot sit inside or() / not()",
                    ));
                }
                if found.is_some_and(|g| g != *s) {
                    return Err(Error::invalid_input(
                        "the filter asks for two different soft-delete scopes",
                    ));
                }
                found = Some(*s);
            }
            Filter::And(fs) => stack.extend(fs.iter().map(|g| (g, top))),
            Filter::Or(fs) => stack.extend(fs.iter().map(|g| (g, false))),
            Filter::Not(g) => stack.push((g, false)),
            _ => {}
        }
    }
    let Some(field) = meta.soft_delete_field() else {
        return match found {
            None => Ok(filter),
            Some(Scope::OnlyDeleted) => Err(Error::invalid_input(format!(
                "only_deleted(): {} has no soft-delete field",
                meta.name
            ))),
            Some(_) => Ok(strip(filter)),
        };
    };
    let scope = found.unwrap_or_default();
    let path = FieldPath::Borrowed(field.name);
    let cond = match scope {
        Scope::Live => Some(Filter::IsNull(path)),
        Scope::OnlyDeleted => Some(Filter::IsNotNull(path)),
        Scope::WithDeleted => None,
    };
    let mut parts = vec![Filter::Scope(scope)];
    parts.extend(cond.clone());
    let rest = conjuncts(filter);
    parts.extend(
        rest.into_iter()
            .filter(|f| !matches!(f, Filter::Scope(_)) && Some(f) != cond.as_ref()),
    );
    Ok(Filter::And(parts))
}

/// The top-level conjuncts of `filter` (nested `and`s flattened).
fn conjuncts(filter: Filter) -> Vec<Filter> {
    let mut out = Vec::new();
    let mut stack = vec![filter];
    while let Some(mut f) = stack.pop() {
        match &mut f {
            Filter::And(fs) => stack.extend(std::mem::take(fs).into_iter().rev()),
            _ => out.push(f),
        }
    }
    out
}

/// `filter` without its scope markers (entities without soft delete).
fn strip(filter: Filter) -> Filter {
    let parts: Vec<Filter> = conjuncts(filter)
        .into_iter()
        .filter(|f| !matches!(f, Filter::Scope(_)))
        .collect();
    match <[Filter; 1]>::try_from(parts) {
        Ok([one]) => one,
        Err(parts) => Filter::And(parts),
    }
}
