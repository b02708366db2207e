//! [`TenantScoped`]: a repository bound to one tenant (see [`crate::tenant`]).

use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::Stream;

use crate::Error;
use crate::aggregate::GroupBy;
use crate::drift::SchemaReport;
use crate::entity::{Entity, EntityMeta};
use crate::error::{ErrorKind, Result};
use crate::filter::{CompareOp, FieldPath, Filter};
use crate::query::{Cursor, Page, Query};
use crate::repository::{BoxStream, Capabilities, Repository};
use crate::update::{Guard, Update};
use crate::value::{Record, Value};

use super::context;

/// A repository of a tenant entity bound to one tenant: every call runs in
/// that tenant's context and sees, writes and counts only its rows. Made
/// by [`TenantExt::for_tenant`]; cheap to make per request (it holds the
/// repository and the tenant value).
#[derive(Debug, Clone)]
pub struct TenantScoped<R> {
    inner: R,
    tenant: Value,
}

/// `for_tenant` on every repository.
pub trait TenantExt<E: Entity>: Repository<E> + Sized {
    /// This repository bound to `tenant`. `InvalidInput` when `E` has no
    /// `#[entity(tenant)]` field or `tenant` does not fit its type.
    fn for_tenant(self, tenant: impl Into<Value>) -> Result<TenantScoped<Self>> {
        let meta = E::meta();
        let Some(field) = meta.tenant_field() else {
            return Err(Error::invalid_input(format!(
                "{} has no #[entity(tenant)] field: it is not tenant-scoped",
                meta.name
            )));
        };
        let tenant = tenant.into();
        if tenant.is_null() {
            return Err(Error::invalid_input(format!(
                "the tenant of {} cannot be null",
                meta.name
            )));
        }
        let tenant = tenant.normalize(field.ty).map_err(|e| {
            Error::invalid_input(format!(
                "tenant of {} (field `{}`): {}",
                meta.name,
                field.name,
                e.message()
            ))
        })?;
        Ok(TenantScoped {
            inner: self,
            tenant,
        })
    }
}

impl<E: Entity, R: Repository<E>> TenantExt<E> for R {}

impl<R> TenantScoped<R> {
    /// The tenant this repository is bound to.
    pub fn tenant(&self) -> &Value {
        &self.tenant
    }
    /// The repository underneath (calls on it have no tenant context).
    pub fn inner(&self) -> &R {
        &self.inner
    }

    async fn run<F: Future>(&self, fut: F) -> F::Output {
        context::scope(self.tenant.clone(), fut).await
    }

    /// `entity` with its tenant field set to this tenant; another tenant is refused.
    fn stamp<E: Entity>(&self, entity: &E) -> Result<E> {
        let (meta, i) = tenant_index::<E>();
        let mut record = Record::from_entity(entity)?;
        let given = &record.values[i];
        if *given == self.tenant {
            return Ok(entity.clone());
        }
        if !is_blank(given) {
            return Err(Error::invalid_input(format!(
                "{} carries tenant {given:?} in `{}`, this repository is bound to tenant {:?}",
                meta.name, meta.fields[i].name, self.tenant
            )));
        }
        record.values[i] = self.tenant.clone();
        record.into_entity()
    }

    /// Whether `entity` belongs to this tenant.
    fn owns<E: Entity>(&self, entity: &E) -> Result<bool> {
        let (_, i) = tenant_index::<E>();
        Ok(Record::from_entity(entity)?.values[i] == self.tenant)
    }

    /// `id = $id`, every row (deleted ones too): checking adds the tenant.
    fn by_id<E: Entity>(id: &E::Id) -> Result<Filter> {
        let meta = E::meta();
        let value = Value::from_serialize(id)?.normalize(meta.id_field().ty)?;
        Ok(Filter::Compare {
            field: FieldPath::Borrowed(meta.id_field().name),
            op: CompareOp::Eq,
            value,
        }
        .with_deleted())
    }
}

fn tenant_index<E: Entity>() -> (&'static EntityMeta, usize) {
    let meta = E::meta();
    // `for_tenant` refuses entities without a tenant field.
    (meta, meta.tenant.unwrap_or(meta.id_index))
}

/// The empty value of a tenant field: left unset by the caller.
fn is_blank(v: &Value) -> bool {
    match v {
        Value::String(s) => s.is_empty(),
        Value::I64(i) => *i == 0,
        Value::Uuid(u) => u.is_nil(),
        _ => false,
    }
}

impl<E: Entity, R: Repository<E>> Repository<E> for TenantScoped<R> {
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
    async fn ensure_schema(&self) -> Result<()> {
        self.inner.ensure_schema().await
    }
    async fn verify_schema(&self) -> Result<SchemaReport> {
        self.inner.verify_schema().await
    }
    async fn get(&self, id: &E::Id) -> Result<Option<E>> {
        match self.run(self.inner.get(id)).await? {
            Some(e) if self.owns(&e)? => Ok(Some(e)),
            _ => Ok(None),
        }
    }
    async fn get_many(&self, ids: &[E::Id]) -> Result<Vec<E>> {
        let mut out = self.run(self.inner.get_many(ids)).await?;
        let mut keep = Vec::with_capacity(out.len());
        for e in &out {
            keep.push(self.owns(e)?);
        }
        let mut k = keep.into_iter();
        out.retain(|_| k.next().unwrap_or(false));
        Ok(out)
    }
    async fn insert(&self, entity: &E) -> Result<E> {
        let e = self.stamp(entity)?;
        self.run(self.inner.insert(&e)).await
    }
    async fn insert_many(&self, entities: &[E]) -> Result<u64> {
        let es = entities
            .iter()
            .map(|e| self.stamp(e))
            .collect::<Result<Vec<E>>>()?;
        self.run(self.inner.insert_many(&es)).await
    }
    async fn update(&self, entity: &E) -> Result<E> {
        let e = self.stamp(entity)?;
        let mine = Self::by_id::<E>(e.id())?;
        self.run(async {
            if !self.inner.exists(&mine).await? {
                return Err(Error::not_found(format!("{} not found", E::meta().name))
                    .in_context(E::meta().name, "update"));
            }
            self.inner.update(&e).await
        })
        .await
    }
    async fn upsert(&self, entity: &E) -> Result<E> {
        let e = self.stamp(entity)?;
        let mine = Self::by_id::<E>(e.id())?;
        self.run(async {
            if self.inner.exists(&mine).await? {
                return self.inner.upsert(&e).await;
            }
            match self.inner.insert(&e).await {
                // Inserted by another call of this tenant meanwhile: overwrite;
                // held by another tenant: the conflict stands.
                Err(err)
                    if matches!(
                        err.kind(),
                        ErrorKind::Conflict(crate::ConflictKind::DuplicateId)
                    ) && self.inner.exists(&mine).await? =>
                {
                    self.inner.upsert(&e).await
                }
                other => other,
            }
        })
        .await
    }
    async fn delete(&self, id: &E::Id) -> Result<bool> {
        let mine = Self::by_id::<E>(id)?;
        Ok(self.run(self.inner.delete_many(&mine)).await? > 0)
    }
    async fn delete_many(&self, filter: &Filter) -> Result<u64> {
        self.run(self.inner.delete_many(filter)).await
    }
    async fn purge(&self, filter: &Filter) -> Result<u64> {
        self.run(self.inner.purge(filter)).await
    }
    async fn find(&self, query: &Query) -> Result<Vec<E>> {
        self.run(self.inner.find(query)).await
    }
    async fn find_unordered(&self, query: &Query) -> Result<Vec<E>> {
        self.run(self.inner.find_unordered(query)).await
    }
    async fn find_nearest(&self, query: &crate::vector::NearestQuery) -> Result<Vec<(E, f64)>> {
        self.run(self.inner.find_nearest(query)).await
    }
    async fn find_text(&self, query: &crate::text::TextQuery) -> Result<Vec<(E, f64)>> {
        self.run(self.inner.find_text(query)).await
    }
    async fn find_one(&self, query: &Query) -> Result<Option<E>> {
        self.run(self.inner.find_one(query)).await
    }
    async fn count(&self, filter: &Filter) -> Result<u64> {
        self.run(self.inner.count(filter)).await
    }
    async fn exists(&self, filter: &Filter) -> Result<bool> {
        self.run(self.inner.exists(filter)).await
    }
    fn stream<'a>(&'a self, query: &Query) -> BoxStream<'a, Result<E>> {
        let inner = context::sync_scope(self.tenant.clone(), || self.inner.stream(query));
        Box::pin(Scoped {
            inner,
            tenant: self.tenant.clone(),
        })
    }
    async fn page(&self, query: &Query, cursor: Option<&Cursor>) -> Result<Page<E>> {
        self.run(self.inner.page(query, cursor)).await
    }
    async fn patch(&self, id: &E::Id, update: &Update<E>, guard: &Guard) -> Result<E> {
        self.run(self.inner.patch(id, update, guard)).await
    }
    async fn update_where(&self, filter: &Filter, update: &Update<E>) -> Result<u64> {
        self.run(self.inner.update_where(filter, update)).await
    }
    async fn find_one_and_delete(&self, query: &Query) -> Result<Option<E>> {
        self.run(self.inner.find_one_and_delete(query)).await
    }
    async fn select(&self, query: &Query, fields: &[&str]) -> Result<Vec<Value>> {
        self.run(self.inner.select(query, fields)).await
    }
    async fn distinct(&self, field: &str, filter: &Filter) -> Result<Vec<Value>> {
        self.run(self.inner.distinct(field, filter)).await
    }
    async fn aggregate(&self, filter: &Filter, group: &GroupBy<E>) -> Result<Vec<Value>> {
        self.run(self.inner.aggregate(filter, group)).await
    }
}

/// A stream polled inside its tenant's context.
struct Scoped<'a, T> {
    inner: BoxStream<'a, T>,
    tenant: Value,
}

impl<T> Stream for Scoped<'_, T> {
    type Item = T;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let this = &mut *self;
        context::sync_scope(this.tenant.clone(), || this.inner.as_mut().poll_next(cx))
    }
}
