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

use super::ast::{FieldPath, Filter, Scope};

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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::conformance::entities::{Note, Person};
    use crate::entity::Entity;
    use crate::error::ErrorKind;

    fn live() -> Filter {
        Filter::IsNull(FieldPath::Borrowed("deleted_at"))
    }

    #[test]
    fn the_default_scope_is_live_rows_and_checking_twice_changes_nothing() {
        let once = Note::RANK.gt(1).checked(Note::meta()).unwrap();
        assert_eq!(
            once,
            Filter::And(vec![Filter::Scope(Scope::Live), live(), Note::RANK.gt(1)])
        );
        assert_eq!(once.clone().checked(Note::meta()).unwrap(), once);
        // The keyset planner narrows a checked filter and checks it again.
        let narrowed = once
            .clone()
            .and(Note::ID.gt(3))
            .checked(Note::meta())
            .unwrap();
        assert_eq!(
            narrowed,
            Filter::And(vec![
                Filter::Scope(Scope::Live),
                live(),
                Note::RANK.gt(1),
                Note::ID.gt(3)
            ])
        );
    }

    #[test]
    fn with_deleted_drops_the_condition_and_stays_dropped() {
        let f = Note::RANK
            .gt(1)
            .with_deleted()
            .checked(Note::meta())
            .unwrap();
        assert_eq!(
            f,
            Filter::And(vec![Filter::Scope(Scope::WithDeleted), Note::RANK.gt(1)])
        );
        assert_eq!(f.clone().checked(Note::meta()).unwrap(), f);
        let only = Filter::all().only_deleted().checked(Note::meta()).unwrap();
        assert_eq!(
            only,
            Filter::And(vec![
                Filter::Scope(Scope::OnlyDeleted),
                Filter::IsNotNull(FieldPath::Borrowed("deleted_at"))
            ])
        );
    }

    #[test]
    fn entities_without_soft_delete_are_untouched() {
        let f = Person::AGE.gt(1);
        assert_eq!(f.checked(Person::meta()).unwrap(), f);
        assert_eq!(
            Person::AGE
                .gt(1)
                .with_deleted()
                .checked(Person::meta())
                .unwrap(),
            f
        );
        let e = Filter::all()
            .only_deleted()
            .checked(Person::meta())
            .unwrap_err();
        assert_eq!(e.kind(), &ErrorKind::InvalidInput);
        assert!(e.to_string().contains("soft-delete"), "{e}");
    }

    #[test]
    fn scopes_inside_or_and_not_or_in_conflict_are_refused() {
        for f in [
            Note::ID.eq(1).or(Filter::all().with_deleted()),
            Filter::all().with_deleted().not(),
            Filter::all().with_deleted().only_deleted(),
        ] {
            let e = f.checked(Note::meta()).unwrap_err();
            assert_eq!(e.kind(), &ErrorKind::InvalidInput, "{f:?}");
        }
        // The same scope twice is fine.
        assert!(
            Filter::all()
                .with_deleted()
                .with_deleted()
                .checked(Note::meta())
                .is_ok()
        );
    }

    #[test]
    fn or_scope_keeps_a_named_scope() {
        let f = Filter::all().only_deleted().or_scope(Scope::WithDeleted);
        assert_eq!(f.scope(), Some(Scope::OnlyDeleted));
        assert_eq!(
            Filter::all().or_scope(Scope::WithDeleted).scope(),
            Some(Scope::WithDeleted)
        );
    }
}
