//! Schema-per-tenant (PostgreSQL).
//!
//! Every tenant gets its own schema, named by its validated [`TenantId`].
//! Tenant-scoped repositories use **schema-qualified** table names
//! (`"acme"."orders"`); the session `search_path` is never touched, so
//! nothing can leak between tenants through pooled connections.
//!
//! * [`TenantId::new`] accepts `^[a-z][a-z0-9_]{0,62}$` only and rejects
//!   reserved names (`public`, `information_schema`, `pg_*`, `admin`, ...:
//!   [`persistence_core::names`]): anything else is `InvalidInput` before
//!   any SQL runs.
//! * [`Tenants`] provisions (creates the schema, marked as the library's,
//!   and every registered entity's tables, in one transaction), lists and
//!   drops tenants. The list of tenants is kept in the registry table
//!   `persistence_tenants` of a control schema (default `public`), one row
//!   per tenant with the set of entities whose tables it has (layout,
//!   upgrade of an older registry and locks: `tenant/registry.rs`).
//! * [`Tenants::drop_tenant`] drops only a schema the library created (it
//!   carries the mark, see [`crate::schema`]): a tenant whose schema existed
//!   before `provision` (or was made by hand) is refused with a `Config`
//!   error and left intact.
//! * [`TenantResolver`] turns a request / context value into a tenant id.
//!
//! ## Concurrency and idempotence
//!
//! [`Tenants::provision`] runs under a transaction-scoped advisory lock per
//! tenant (`pg_advisory_xact_lock(0x70657273, hashtext(<tenant>))`), so any
//! number of concurrent calls for one tenant, from any process, make one
//! schema and report success; the later ones find everything in place and
//! change nothing. Different tenants provision in parallel (they share the
//! group's lock in shared mode). The registry itself is created, or
//! upgraded, once, in its own transaction under the group's exclusive lock.
//! [`Tenants::drop_tenant`] takes the same tenant lock. [`Tenants::list`],
//! [`Tenants::entities`] and [`Tenants::group_entities`] only read (no
//! registry yet: empty), so a role with `USAGE`/`SELECT` can call them.
//!
//! ## Entity sets: the tenant group
//!
//! The tenants of one registry form a group; the group's entity set is the
//! union of the sets recorded for its tenants. Provisioning a tenant
//! creates the tables of the entities registered here (missing ones only:
//! every statement is `IF NOT EXISTS`) and records the union of what the
//! tenant had and what is registered: a set never shrinks and no table is
//! ever dropped by provisioning. If the tenant would end up without an
//! entity of the group (a process that registers fewer entities), nothing is
//! created and the answer is a `Config` error naming the entities, unless
//! [`Tenants::allow_fewer_entities`] opts into a warning instead. Adding
//! entities to the group (a process that registers more) takes the group's
//! exclusive lock for that one provisioning, so the check cannot race with
//! it. During a rolling deploy that adds an entity, the processes still on
//! the old version are therefore refused *new* tenants once a new process
//! has provisioned one (existing tenants keep working): give the old build
//! `allow_fewer_entities()`, or provision new tenants from the new build
//! only. Tables the tenant already has that the library created (their
//! comment names the entity) count as the tenant's, which also fills the
//! set of a tenant recorded before sets were stored.
//!
//! ## Migrations: every tenant, and every new tenant, at head
//!
//! [`Tenants::with_migrator`] gives the group a sea-orm-migration migrator
//! (see [`crate::migrate`]):
//!
//! * [`Tenants::provision`] = create + migrate to head: inside the
//!   provisioning transaction, under the tenant's lock, the migrator's
//!   pending migrations run in the tenant's schema (`SET LOCAL
//!   search_path`), then the registered entities' missing tables are
//!   created (existing ones verified). A tenant provisioned after a
//!   migration was added gets it; a provisioning of an existing tenant
//!   brings it to head; concurrent provisions migrate once.
//! * [`Tenants::migrate_all`] runs the migrator over every registered
//!   tenant, [`MigrateAll::concurrency`] at a time on the store's pool,
//!   each tenant in its own transaction under its lock: a failing tenant
//!   rolls back alone and is reported ([`TenantOutcome::Failed`]), the
//!   others go on. [`MigrateAll::dry_run`] reports what each tenant would
//!   apply and writes nothing; [`MigrateAll::progress`] receives
//!   [`ProgressEvent`]s.
//! * The status table `persistence_tenant_migrations`, next to the
//!   registry, records per tenant the state (`running`, `done`, `failed`),
//!   the last applied migration, the error and the time (layout:
//!   `tenant/status.rs`). `done` commits with the migrations, so after a
//!   crash a rerun finishes the rest and does not write to tenants that
//!   were finished (they are reported [`TenantOutcome::AtHead`]).
//! * [`Tenants::migration_status`] (read-only) lists each tenant's applied
//!   and pending migrations ([`TenantMigrationStatus::is_lagging`]) with its
//!   status row.

use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use persistence_core::{Entity, Error, Result};
use sea_orm::{DatabaseTransaction, IsolationLevel, TransactionTrait};
use sea_orm_migration::MigratorTrait;

use crate::migrate::DynMigrator;
use crate::query::{Dialect, quote};
use crate::repository::RelationalRepository;
use crate::store::RelationalStore;

mod id;
mod migrate_all;
mod registry;
mod status;

pub use id::TenantId;
pub use migrate_all::{
    DEFAULT_CONCURRENCY, MigrateAll, MigrationProgress, MigrationReport, ProgressEvent,
    TenantMigrationStatus, TenantOutcome, TenantReport,
};
pub use status::{MigrationRecord, RunState};

use migrate_all::Runner;
use registry::{DEFAULT_CONTROL, Registry, Shape};
use status::StatusTable;

/// Finds the tenant of a request or context value.
pub trait TenantResolver<Ctx: ?Sized>: Send + Sync {
    /// The tenant of `ctx` (`InvalidInput` when it has none or a bad one).
    fn resolve(&self, ctx: &Ctx) -> Result<TenantId>;
}

impl<Ctx: ?Sized, F> TenantResolver<Ctx> for F
where
    F: Fn(&Ctx) -> Result<TenantId> + Send + Sync,
{
    fn resolve(&self, ctx: &Ctx) -> Result<TenantId> {
        self(ctx)
    }
}

type SetupFn = Arc<
    dyn for<'a> Fn(
            &'a RelationalStore,
            &'a DatabaseTransaction,
        ) -> Pin<Box<dyn Future<Output = Result<()>> + Send + 'a>>
        + Send
        + Sync,
>;

/// An entity whose table every tenant gets.
#[derive(Clone)]
struct Registered {
    name: &'static str,
    setup: SetupFn,
}

/// Tenant management over one PostgreSQL pool.
#[derive(Clone)]
pub struct Tenants {
    base: RelationalStore,
    registry: Registry,
    status: StatusTable,
    entities: Vec<Registered>,
    allow_fewer: bool,
    migrator: Option<DynMigrator>,
}

impl std::fmt::Debug for Tenants {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tenants")
            .field("control", &self.registry.control)
            .field(
                "entities",
                &self.entities.iter().map(|r| r.name).collect::<Vec<_>>(),
            )
            .field("allow_fewer_entities", &self.allow_fewer)
            .field("migrator", &self.migrator)
            .finish()
    }
}

impl Tenants {
    /// Tenants of `store` (PostgreSQL), registry in `store`'s schema or `public`.
    pub fn new(store: &RelationalStore) -> Result<Tenants> {
        if store.dialect() != Dialect::Postgres {
            return Err(Error::unsupported("schema-per-tenant needs PostgreSQL"));
        }
        // The store's schema was validated when the store was built; without
        // one the registry goes to `public` (placed there, never owned).
        let control = store.schema().unwrap_or(DEFAULT_CONTROL);
        Ok(Tenants {
            base: store.clone(),
            registry: Registry::new(control),
            status: StatusTable::new(control),
            entities: Vec::new(),
            allow_fewer: false,
            migrator: None,
        })
    }

    /// Create `E`'s table in every tenant provisioned from now on (and in an
    /// existing tenant provisioned again). Registering `E` twice is one entity.
    pub fn register<E: Entity>(mut self) -> Self {
        let name = E::meta().name;
        if self.entities.iter().all(|r| r.name != name) {
            self.entities.push(Registered {
                name,
                setup: Arc::new(|store, tx| {
                    Box::pin(async move { store.repository::<E>().ensure_schema_on(tx).await })
                }),
            });
        }
        self
    }

    /// Let [`provision`](Tenants::provision) make a tenant that lacks
    /// entities other tenants of the group have (a `tracing` warning names
    /// them) instead of refusing with a `Config` error.
    pub fn allow_fewer_entities(mut self) -> Self {
        self.allow_fewer = true;
        self
    }

    /// Migrate tenants with `M`: [`provision`](Tenants::provision) brings a
    /// tenant's schema to `M`'s head (before creating the registered
    /// entities' missing tables), and [`migrate_all`](Tenants::migrate_all) /
    /// [`migration_status`](Tenants::migration_status) run over every tenant.
    pub fn with_migrator<M: MigratorTrait + 'static>(mut self) -> Self {
        self.migrator = Some(DynMigrator::of::<M>());
        self
    }

    /// The entity names registered here (sorted).
    pub fn registered(&self) -> Vec<&'static str> {
        let mut v: Vec<_> = self.entities.iter().map(|r| r.name).collect();
        v.sort_unstable();
        v
    }

    /// The store whose tables live in `tenant`'s schema (same pool).
    pub fn store(&self, tenant: &TenantId) -> RelationalStore {
        self.base.with_schema(tenant.as_str())
    }

    /// A repository of `E` scoped to `tenant`.
    pub fn repository<E: Entity>(&self, tenant: &TenantId) -> RelationalRepository<E> {
        self.store(tenant).repository::<E>()
    }

    /// Create the tenant's schema and the registered tables, and record it
    /// with its entity set (one transaction under the tenant's lock;
    /// idempotent and safe to call concurrently, see the module docs).
    ///
    /// A tenant that would lack an entity other tenants of the group have
    /// (neither registered here nor already in the tenant) is a `Config`
    /// error naming it, and nothing changes, unless
    /// [`allow_fewer_entities`](Tenants::allow_fewer_entities) was called.
    pub async fn provision(&self, tenant: &TenantId) -> Result<()> {
        self.registry.ensure(self.base.connection()).await?;
        if self.migrator.is_some() {
            self.status
                .ensure(self.base.connection(), &self.registry, "provision")
                .await?;
        }
        // Under the group's shared lock; again under its exclusive lock when
        // this provisioning adds entities the group does not have yet.
        if !self.provision_once(tenant, false).await? {
            self.provision_once(tenant, true).await?;
        }
        Ok(())
    }

    /// One attempt; `Ok(false)` when the group grows and `exclusive` is not held.
    async fn provision_once(&self, tenant: &TenantId, exclusive: bool) -> Result<bool> {
        const OP: &str = "provision";
        let db = self.base.connection();
        let tx = db
            .begin_with_config(Some(IsolationLevel::ReadCommitted), None)
            .await
            .map_err(|e| registry::err(e, OP))?;
        self.registry.lock_group(&tx, exclusive, OP).await?;
        registry::lock_tenant(&tx, tenant.as_str(), OP).await?;
        // Every statement from here on sees what the previous holders committed.
        let group = self.registry.group_entities(&tx, OP).await?;
        let wanted: BTreeSet<String> = self.entities.iter().map(|r| r.name.to_string()).collect();
        if !exclusive && !wanted.is_subset(&group) {
            tx.rollback().await.map_err(|e| registry::err(e, OP))?;
            return Ok(false);
        }
        let stored = self
            .registry
            .tenant_entities(&tx, tenant.as_str(), OP)
            .await?;
        let mut has = stored.clone().unwrap_or_default();
        // Tables made by `provision` before entity sets were stored (or by
        // `ensure_schema` on the tenant's store) count too.
        has.extend(registry::present_entities(&tx, tenant.as_str(), OP).await?);
        let lacking: Vec<&str> = group
            .iter()
            .filter(|e| !has.contains(*e) && !wanted.contains(*e))
            .map(String::as_str)
            .collect();
        if !lacking.is_empty() {
            let msg = format!(
                "tenant `{tenant}` would lack the table(s) of {} that other tenants of the group \
                 (registry in schema `{}`) have: this Tenants registers only [{}]",
                lacking.join(", "),
                self.registry.control,
                self.registered().join(", ")
            );
            if !self.allow_fewer {
                return Err(Error::config(format!(
                    "{msg}; register them, or call allow_fewer_entities() to provision it anyway \
                     (nothing was changed)"
                ))
                .with_operation(OP));
            }
            tracing::warn!(tenant = %tenant, lacking = %lacking.join(", "), "{msg}");
        }
        // Created with the library's mark when missing; an existing schema
        // is used as it is (and `drop_tenant` will refuse it).
        crate::schema::ensure_namespace(&tx, tenant.as_str())
            .await
            .map_err(|e| registry::err(e, OP))?;
        // The migrations first: they may create or change the entities'
        // tables, which are then verified (or created when they do not).
        if let Some(m) = &self.migrator {
            migrate_all::provision_up(m, &self.status, &tx, tenant.as_str()).await?;
        }
        let store = self.store(tenant);
        for r in &self.entities {
            (r.setup)(&store, &tx).await?;
        }
        // Never shrinks: what the tenant had stays recorded (and in place).
        has.extend(wanted);
        if stored.as_ref() != Some(&has) {
            self.registry.upsert(&tx, tenant.as_str(), &has).await?;
        }
        tx.commit().await.map_err(|e| registry::err(e, OP))?;
        Ok(true)
    }

    /// Drop the tenant's schema with everything in it, and forget it. Only
    /// a schema the library created (marked) is dropped; any other is a
    /// `Config` error and nothing changes. Waits for a provisioning of the
    /// same tenant in progress.
    pub async fn drop_tenant(&self, tenant: &TenantId) -> Result<()> {
        const OP: &str = "drop_tenant";
        let db = self.base.connection();
        let tx = db
            .begin_with_config(Some(IsolationLevel::ReadCommitted), None)
            .await
            .map_err(|e| registry::err(e, OP))?;
        registry::lock_tenant(&tx, tenant.as_str(), OP).await?;
        let shape = self.registry.shape(&tx, OP).await?;
        if shape == Shape::Foreign {
            return Err(self.registry_foreign(OP));
        }
        crate::schema::drop_namespace(&tx, tenant.as_str())
            .await
            .map_err(|e| e.with_operation(OP))?;
        if shape != Shape::Missing {
            self.registry.delete(&tx, tenant.as_str()).await?;
        }
        self.status.forget(&tx, tenant.as_str(), OP).await?;
        tx.commit().await.map_err(|e| registry::err(e, OP))?;
        Ok(())
    }

    /// Every provisioned tenant, sorted. Read-only: no statement creates or
    /// changes anything (a role with `USAGE` on the control schema and
    /// `SELECT` on the registry is enough); no registry yet is an empty list.
    pub async fn list(&self) -> Result<Vec<TenantId>> {
        const OP: &str = "list_tenants";
        let db = self.base.connection();
        match self.registry.shape(db, OP).await? {
            Shape::Missing => return Ok(Vec::new()),
            Shape::Foreign => return Err(self.registry_foreign(OP)),
            Shape::Legacy | Shape::Current => {}
        }
        self.registry
            .ids(db)
            .await?
            .into_iter()
            .map(TenantId::new)
            .collect()
    }

    /// The entity names recorded for `tenant` (sorted; `None` when it is
    /// not provisioned). Read-only; empty for a tenant recorded before
    /// entity sets were stored and not provisioned since.
    pub async fn entities(&self, tenant: &TenantId) -> Result<Option<Vec<String>>> {
        const OP: &str = "tenant_entities";
        let db = self.base.connection();
        match self.registry.shape(db, OP).await? {
            Shape::Missing => Ok(None),
            Shape::Foreign => Err(self.registry_foreign(OP)),
            Shape::Legacy => Ok(self
                .registry
                .ids(db)
                .await?
                .iter()
                .any(|id| id == tenant.as_str())
                .then(Vec::new)),
            Shape::Current => Ok(self
                .registry
                .tenant_entities(db, tenant.as_str(), OP)
                .await?
                .map(|s| s.into_iter().collect())),
        }
    }

    /// The entity set of the tenant group: every entity some provisioned
    /// tenant has (sorted). Read-only.
    pub async fn group_entities(&self) -> Result<Vec<String>> {
        const OP: &str = "tenant_entities";
        let db = self.base.connection();
        match self.registry.shape(db, OP).await? {
            Shape::Missing | Shape::Legacy => Ok(Vec::new()),
            Shape::Foreign => Err(self.registry_foreign(OP)),
            Shape::Current => Ok(self
                .registry
                .group_entities(db, OP)
                .await?
                .into_iter()
                .collect()),
        }
    }

    /// Bring every tenant to the migrator's head (see
    /// [`with_migrator`](Tenants::with_migrator)), `opts.concurrency` tenants
    /// at once, each in its own transaction under its advisory lock: a
    /// failing tenant is rolled back alone and reported, the others go on.
    /// Progress and outcome per tenant are recorded in the status table
    /// `persistence_tenant_migrations` next to the registry, so a rerun after
    /// a crash finishes the rest without writing to finished tenants. A dry
    /// run reports the pending migrations per tenant and writes nothing.
    ///
    /// `Config` error without a migrator; `InvalidInput` for a concurrency of 0.
    pub async fn migrate_all(&self, opts: &MigrateAll) -> Result<MigrationReport> {
        let runner = self.runner("migrate_tenants")?;
        let ids = self.list().await?;
        runner.run(ids, opts).await
    }

    /// Every tenant with the migrations it has applied and those pending
    /// ([`TenantMigrationStatus::is_lagging`]) and its status row. Reads only.
    pub async fn migration_status(&self) -> Result<Vec<TenantMigrationStatus>> {
        let runner = self.runner("migration_status")?;
        let ids = self.list().await?;
        runner.status(ids).await
    }

    fn runner(&self, op: &'static str) -> Result<Runner> {
        let migrator = self.migrator.as_ref().ok_or_else(|| {
            Error::config("no migrator: build the Tenants with with_migrator::<M>()")
                .with_operation(op)
        })?;
        Ok(Runner {
            base: self.base.clone(),
            registry: self.registry.clone(),
            status: self.status.clone(),
            migrator: migrator.clone(),
        })
    }

    fn registry_foreign(&self, op: &'static str) -> Error {
        Error::config(format!(
            "table {}.\"persistence_tenants\" is not a tenant registry (it has no `id` column)",
            quote(&self.registry.control)
        ))
        .with_operation(op)
    }
}
