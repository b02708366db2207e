//! The tenant condition [`Filter::checked`] adds on tenant entities.
//!
//! On an entity with an `#[entity(tenant)]` field every checked filter gets
//! the conjunct `tenant = current` (the tenant of the call, see
//! [`crate::tenant`]); without a tenant context checking fails. A filter
//! that names the tenant field in any other way (another value, `in`,
//! `is_null`, inside `or`/`not`) is refused with `InvalidInput` naming the
//! field: the tenant comes from the context, never from the caller's
//! filter. The same condition given by the caller is kept (not added
//! twice), so checking a checked filter again changes nothing.

use crate::entity::EntityMeta;
use crate::error::{Error, Result};
use crate::tenant::context;

use super::ast::{CompareOp, FieldPath, Filter};

/// Add the tenant condition to a checked filter (see the module docs).
pub(super) fn apply(filter: Filter, meta: &EntityMeta) -> Result<Filter> {
    let Some(field) = meta.tenant_field() else {
        return Ok(filter);
    };
    let Some(tenant) = context::require(meta)? else {
        return Ok(filter);
    };
    // The context may come from a handle of another entity type.
    let tenant = tenant.normalize(field.ty).map_err(|e| {
        Error::invalid_input(format!(
            "the tenant context does not fit the tenant field `{}` of {}: {}",
            field.name,
            meta.name,
            e.message()
        ))
    })?;
    let cond = Filter::Compare {
        field: FieldPath::Borrowed(field.name),
        op: CompareOp::Eq,
        value: tenant,
    };
    let mut present = false;
    let mut stack: Vec<(&Filter, bool)> = vec![(&filter, true)];
    while let Some((f, top)) = stack.pop() {
        match f {
            Filter::And(fs) => stack.extend(fs.iter().map(|g| (g, top))),
            Filter::Or(fs) => stack.extend(fs.iter().map(|g| (g, false))),
            Filter::Not(g) => stack.push((g, false)),
            leaf => {
                let names_it = path_of(leaf).is_some_and(|p| {
                    p == field.name
                        || p.strip_prefix(field.name)
                            .is_some_and(|rest| rest.starts_with('.'))
                });
                if !names_it {
                    continue;
                }
                if top && *leaf == cond {
                    present = true;
                } else {
                    return Err(Error::invalid_input(format!(
                        "the filter names the tenant field `{}` of {}: the tenant comes from \
                         the tenant context (repo.for_tenant), a filter cannot choose it",
                        field.name, meta.name
                    )));
                }
            }
        }
    }
    if present {
        return Ok(filter);
    }
    Ok(filter.and(cond))
}

/// The field a leaf filter compares.
fn path_of(f: &Filter) -> Option<&str> {
    match f {
        Filter::Compare { field, .. }
        | Filter::In { field, .. }
        | Filter::NotIn { field, .. }
        | Filter::StartsWith { field, .. }
        | Filter::Contains { field, .. }
        | Filter::Like { field, .. }
        | Filter::ArrayContains { field, .. }
        | Filter::IsNull(field)
        | Filter::IsNotNull(field) => Some(field),
        _ => None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::conformance::entities::{Memo, Ticket};
    use crate::entity::Entity;
    use crate::error::ErrorKind;
    use crate::tenant::context::sync_scope;
    use crate::value::Value;

    fn mine() -> Filter {
        Ticket::TENANT.eq("a")
    }

    #[test]
    fn the_condition_is_added_once_and_checking_twice_changes_nothing() {
        sync_scope(Value::String("a".into()), || {
            let once = Ticket::RANK.gt(1).checked(Ticket::meta()).unwrap();
            assert_eq!(once, Filter::And(vec![Ticket::RANK.gt(1), mine()]));
            assert_eq!(once.clone().checked(Ticket::meta()).unwrap(), once);
            assert_eq!(
                Filter::all().checked(Ticket::meta()).unwrap(),
                Filter::And(vec![mine()])
            );
            // The caller's own tenant is kept, not doubled.
            assert_eq!(mine().checked(Ticket::meta()).unwrap(), mine());
            // A context that does not fit the entity's tenant field.
            let e = Filter::all().checked(Memo::meta()).unwrap_err();
            assert!(e.to_string().contains("`org`"), "{e}");
        });
        sync_scope(Value::I64(7), || {
            // With soft delete: scope marker, live condition, tenant.
            let memo = Filter::all().checked(Memo::meta()).unwrap();
            assert_eq!(memo.clone().checked(Memo::meta()).unwrap(), memo);
        });
    }

    #[test]
    fn other_tenants_and_a_missing_context_are_refused() {
        sync_scope(Value::String("a".into()), || {
            for f in [
                Ticket::TENANT.eq("b"),
                Ticket::TENANT.is_null(),
                Ticket::ID.eq(1).or(mine()),
                mine().not(),
            ] {
                let e = f.checked(Ticket::meta()).unwrap_err();
                assert_eq!(e.kind(), &ErrorKind::InvalidInput, "{f:?}");
                assert!(e.to_string().contains("`tenant`"), "{e}");
            }
        });
        let e = Filter::all().checked(Ticket::meta()).unwrap_err();
        assert_eq!(e.kind(), &ErrorKind::InvalidInput);
        assert!(e.to_string().contains("for_tenant"), "{e}");
    }
}
