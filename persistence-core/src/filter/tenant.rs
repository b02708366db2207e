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
