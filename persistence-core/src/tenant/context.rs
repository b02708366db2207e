//! The tenant context: which tenant the current call runs for.
//!
//! A task-local set only by [`TenantScoped`](super::TenantScoped) around
//! each call it forwards (and carried into tasks a layer spawns for that
//! call by [`propagate`]). Backends and layers read it: [`Filter::checked`]
//! adds `tenant = current` to every filter of a tenant entity, the memory
//! and MongoDB backends refuse id operations without it, PostgreSQL sets
//! `app.tenant` from it for its row-level security policy, and the cache
//! puts it in entity keys.
//!
//! [`Filter::checked`]: crate::Filter::checked

use std::future::Future;

use futures_util::future::Either;

use crate::entity::EntityMeta;
use crate::error::{Error, Result};
use crate::value::Value;

tokio::task_local! {
    static CURRENT: Value;
}

/// The tenant the current call runs for, when inside a tenant scope.
pub fn current() -> Option<Value> {
    CURRENT.try_with(Value::clone).ok()
}

/// The tenant of a call on a tenant entity (`meta` has an
/// `#[entity(tenant)]` field); `None` for other entities. Without a tenant
/// context a tenant entity is `InvalidInput` naming the entity and its
/// tenant field: never "all tenants".
pub fn require(meta: &EntityMeta) -> Result<Option<Value>> {
    let Some(field) = meta.tenant_field() else {
        return Ok(None);
    };
    match current() {
        Some(t) => Ok(Some(t)),
        None => Err(Error::invalid_input(format!(
            "{} is tenant-scoped (#[entity(tenant)] field `{}`) and this call has no tenant \
             context: use repo.for_tenant(tenant)",
            meta.name, field.name
        ))),
    }
}

/// `fut`, run inside the tenant context of the caller (if any): for work a
/// layer spawns on behalf of a call (a cache load in its own task). It can
/// only carry the current tenant on, never choose another.
pub fn propagate<F: Future>(fut: F) -> impl Future<Output = F::Output> {
    match current() {
        Some(t) => Either::Left(CURRENT.scope(t, fut)),
        None => Either::Right(fut),
    }
}

/// `fut` run for `tenant` (only [`TenantScoped`](super::TenantScoped) sets it).
pub(super) fn scope<F: Future>(tenant: Value, fut: F) -> impl Future<Output = F::Output> {
    CURRENT.scope(tenant, fut)
}

/// `f` run synchronously for `tenant` (each poll of a scoped stream).
pub(crate) fn sync_scope<T>(tenant: Value, f: impl FnOnce() -> T) -> T {
    CURRENT.sync_scope(tenant, f)
}
