//! Row-level tenancy: many tenants sharing one table, each row marked with
//! its tenant.
//!
//! An entity opts in with one `#[entity(tenant)]` field (a `String`,
//! integer or `Uuid`). Its repository is then used through a tenant handle,
//! [`TenantExt::for_tenant`], which returns a [`TenantScoped`] repository
//! bound to one tenant; every call it forwards runs in that tenant's
//! context (see [`context`]). The rules, the same on every backend and
//! through every layer:
//!
//! * **no context, no access**: a call on a tenant entity without a tenant
//!   context is `InvalidInput` naming the entity and its tenant field,
//!   never "all tenants" ([`require`]);
//! * **writes**: `insert`, `insert_many`, `update` and `upsert` set the
//!   tenant field (an entity carrying another tenant is `InvalidInput`;
//!   the field's empty value, `""` / `0` / the nil UUID, is filled in);
//!   `update` of a row another tenant holds is `NotFound`, `upsert` of such
//!   an id `Conflict(DuplicateId)`; no update (`patch`, `update_where`) can
//!   assign the tenant field;
//! * **reads and bulk operations**: [`Filter::checked`](crate::Filter::checked)
//!   adds `tenant = current` to every filter (`find`, `count`, `page`,
//!   `stream`, `select`, `distinct`, `aggregate`, `update_where`,
//!   `delete_many`, `purge`, `find_one_and_delete`); a filter naming the
//!   tenant field with anything else is refused; `patch` and `delete` act
//!   only on the tenant's row (a row of another tenant is `NotFound` /
//!   `false`); `get` and `get_many` drop rows of other tenants;
//! * **backends**: PostgreSQL also enforces it in the database, with a
//!   row-level security policy on tables it creates and `app.tenant` set
//!   (`set_config(.., true)`, local to the statement's transaction) from
//!   the context; SQLite, MongoDB and memory rely on the mandatory filter;
//! * **cache**: entity keys carry the tenant, query keys hash the checked
//!   filter (which holds it), so two tenants never share an entry.

pub mod context;
mod scoped;

pub use context::{current, propagate, require};
pub use scoped::{TenantExt, TenantScoped};
