//! Managed timestamps and soft delete: the rules every backend follows.
//!
//! # Timestamps
//!
//! `#[entity(created_at)]` and `#[entity(updated_at)]` mark `DateTime<Utc>`
//! (or `Option<DateTime<Utc>>`) fields the repository sets; what the caller
//! puts there is overwritten. One rule for every backend: the time is the
//! **client's clock** ([`now`], UTC, truncated to milliseconds, the
//! precision every backend stores), taken once per call, so a returned
//! entity holds exactly what was stored without reading it back, and a row
//! written by `update_where` gets the same time on every backend.
//!
//! * `insert`, `insert_many`: `created_at` = `updated_at` = now.
//! * `update`, `upsert`: `updated_at` = now; `created_at` keeps the stored
//!   value (an `upsert` that inserts sets it to now).
//! * `patch`, `update_where` (and so soft `delete`, `delete_many` and
//!   [`restore`](SoftDeleteExt::restore)): `updated_at` = now, in the same
//!   statement, unless the update sets `updated_at` itself
//!   ([`Update::checked`] adds the assignment).
//!
//! # Soft delete
//!
//! `#[entity(soft_delete)]` marks an `Option<DateTime<Utc>>` field; a row
//! whose field is set is *deleted*:
//!
//! * every read excludes deleted rows by default: `get`, `get_many`,
//!   `find`, `find_one`, `count`, `exists`, `stream`, `page`, `select`,
//!   `distinct`, `aggregate`, and the rows `patch` / `update_where` /
//!   `find_one_and_delete` act on. A filter or query opts out with
//!   [`with_deleted`](Filter::with_deleted) or
//!   [`only_deleted`](Filter::only_deleted) (see [`Scope`]);
//! * `delete` sets the field to now (and bumps the version), returning
//!   whether a live row was deleted; `delete_many` does the same to every
//!   live row matching; `find_one_and_delete` soft-deletes the first live
//!   row and returns it as stored (deleted);
//! * [`restore`](SoftDeleteExt::restore) clears the field;
//!   [`purge`](crate::Repository::purge) removes rows for good (deleted or
//!   not, unless its filter narrows the scope);
//! * unique constraints hold among live rows only (partial unique indexes);
//! * `insert` of an id a deleted row holds is `Conflict(DuplicateId)`
//!   (restore or purge it first); `update` and `upsert` write the whole
//!   entity, its soft-delete field included, like any other field.
//!
//! Backends call the functions here at the points named in their docs.

use std::borrow::Cow;

use chrono::{DateTime, Utc};

use crate::entity::{Entity, EntityMeta};
use crate::error::{ConflictKind, Error, ErrorKind, Result};
use crate::filter::{FieldPath, Filter, Scope};
use crate::query::Query;
use crate::repository::Repository;
use crate::update::{Guard, Update, UpdateOp};
use crate::value::{Record, TimestampPrecision, Value};

/// The time managed timestamps get: the client's clock in UTC, truncated
/// toward the past to milliseconds.
pub fn now() -> DateTime<Utc> {
    TimestampPrecision::Millis.truncate(Utc::now())
}

/// `entity` with its managed timestamps set to [`now`] for a write
/// (`insert`: both, else `updated_at`); borrowed unchanged when `E` has none.
pub fn stamped<E: Entity>(entity: &E, insert: bool) -> Cow<'_, E> {
    stamped_at(entity, now(), insert)
}

/// [`stamped`] with a given time: a call writing many rows takes [`now`]
/// once and stamps every row with it.
pub fn stamped_at<E: Entity>(entity: &E, now: DateTime<Utc>, insert: bool) -> Cow<'_, E> {
    let meta = E::meta();
    if meta.updated_at.is_none() && meta.created_at.is_none() {
        return Cow::Borrowed(entity);
    }
    let mut e = entity.clone();
    e.touch(now, insert);
    Cow::Owned(e)
}

/// `entity` with its managed timestamps set for an overwrite (`update`,
/// an `upsert` that replaces): `updated_at` = now, `created_at` = `created`
/// (the stored value; left as the entity has it when `None`).
pub fn stamped_over<E: Entity>(entity: &E, created: Option<DateTime<Utc>>) -> Cow<'_, E> {
    let meta = E::meta();
    if meta.updated_at.is_none() && meta.created_at.is_none() {
        return Cow::Borrowed(entity);
    }
    let mut e = entity.clone();
    if let Some(t) = created.filter(|_| meta.created_at.is_some()) {
        e.touch(t, true);
    }
    e.touch(now(), false);
    Cow::Owned(e)
}

/// The `created_at` value of a stored record, when `E` has one and it is set.
pub fn created_at_of(meta: &EntityMeta, record: &Record) -> Option<DateTime<Utc>> {
    match record.get(meta.created_at?) {
        Value::DateTime(t) => Some(*t),
        _ => None,
    }
}

/// Whether a read may return `entity`: false for soft-deleted rows. `get`
/// and `get_many` (and caches serving them) drop what this refuses.
pub fn visible<E: Entity>(entity: &E) -> bool {
    entity.deleted_at().is_none()
}

/// Whether `E` soft-deletes (`delete` becomes an update).
pub fn soft_deletes<E: Entity>() -> bool {
    E::meta().soft_delete.is_some()
}

/// The update `delete` applies to a soft-deletable entity: the soft-delete
/// field set to [`now`] (`updated_at` follows through [`Update::checked`]).
pub fn deletion<E: Entity>() -> Result<Update<E>> {
    let field = soft_field(E::meta())?;
    Ok(Update::new().assign(field, UpdateOp::Set(Value::DateTime(now()))))
}

/// The checked condition that puts a row in reach of a `patch`: for a
/// soft-deletable entity, the scope its guard filter names (live rows by
/// default); for a tenant entity, the tenant's rows (both, when both);
/// `None` for other entities. Backends add it to the row's
/// identity (`id = $1 AND …`), so a row outside the scope is `NotFound`.
pub fn patch_scope(meta: &EntityMeta, guard: &Guard) -> Result<Option<Filter>> {
    if meta.soft_delete.is_none() {
        // A tenant entity: the row must be the tenant's (see `crate::tenant`).
        return match meta.tenant {
            Some(_) => Filter::all().checked(meta).map(Some),
            None => Ok(None),
        };
    }
    let scope = guard
        .filter
        .as_ref()
        .and_then(Filter::scope)
        .unwrap_or_default();
    Filter::Scope(scope).checked(meta).map(Some)
}

/// `delete(id)` of a soft-deletable entity, through `repo.patch`.
pub async fn soft_delete<E, R>(repo: &R, id: &E::Id) -> Result<bool>
where
    E: Entity,
    R: Repository<E> + ?Sized,
{
    match repo.patch(id, &deletion()?, &Guard::none()).await {
        Ok(_) => Ok(true),
        Err(e) if *e.kind() == ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// `delete_many(filter)` of a soft-deletable entity, through
/// `repo.update_where`: every live row matching `filter` (rows already
/// deleted keep their time, whatever the filter's scope).
pub async fn soft_delete_many<E, R>(repo: &R, filter: &Filter) -> Result<u64>
where
    E: Entity,
    R: Repository<E> + ?Sized,
{
    let field = soft_field(E::meta())?;
    let live = filter.clone().and(Filter::IsNull(field));
    repo.update_where(&live, &deletion()?).await
}

/// `find_one_and_delete(query)` of a soft-deletable entity: soft-delete the
/// first live row matching and return it as stored. Each attempt is one
/// guarded `patch` (the row must still be live and match the filter), so
/// two concurrent calls never return the same row; a lost race moves on to
/// the next row.
pub async fn soft_pop<E, R>(repo: &R, query: &Query) -> Result<Option<E>>
where
    E: Entity,
    R: Repository<E> + ?Sized,
{
    let deletion = deletion::<E>()?;
    let guard = Guard::when(query.filter.clone());
    loop {
        let Some(first) = repo.find_one(query).await? else {
            return Ok(None);
        };
        match repo.patch(first.id(), &deletion, &guard).await {
            Ok(e) => return Ok(Some(e)),
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::NotFound | ErrorKind::Conflict(ConflictKind::Guard)
                ) =>
            {
                continue;
            }
            Err(e) => return Err(e),
        }
    }
}

/// The filter `purge` removes: `filter`, over every row unless it names a scope.
pub fn purge_filter(filter: &Filter) -> Filter {
    filter.clone().or_scope(Scope::WithDeleted)
}

fn soft_field(meta: &EntityMeta) -> Result<FieldPath> {
    meta.soft_delete_field()
        .map(|f| FieldPath::Borrowed(f.name))
        .ok_or_else(|| {
            Error::invalid_input(format!("{} has no #[entity(soft_delete)] field", meta.name))
        })
}

/// Soft-delete operations on any repository of a soft-deletable entity.
pub trait SoftDeleteExt<E: Entity>: Repository<E> {
    /// Undelete the row with this id: clears the soft-delete field (one
    /// guarded `patch`; `updated_at` and the version move). `true` if a
    /// deleted row was restored, `false` when no deleted row has this id.
    /// `InvalidInput` for entities without a soft-delete field.
    fn restore(&self, id: &E::Id) -> impl std::future::Future<Output = Result<bool>> + Send
    where
        Self: Sync,
    {
        async move {
            let field = soft_field(E::meta())?;
            let update = Update::new().assign(field, UpdateOp::Unset);
            let guard = Guard::when(Filter::all().only_deleted());
            match self.patch(id, &update, &guard).await {
                Ok(_) => Ok(true),
                Err(e) if *e.kind() == ErrorKind::NotFound => Ok(false),
                Err(e) => Err(e),
            }
        }
    }
}

impl<E: Entity, R: Repository<E> + ?Sized> SoftDeleteExt<E> for R {}
