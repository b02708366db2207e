//! Migrations for every tenant: the options, progress events and report of
//! [`Tenants::migrate_all`](crate::Tenants::migrate_all), the lag report of
//! [`Tenants::migration_status`](crate::Tenants::migration_status), and the
//! runner behind both (and behind provisioning with a migrator).
//!
//! Per tenant, with at most `concurrency` tenants in flight on the store's
//! one pool:
//!
//! 1. read the versions applied in the tenant (schema-qualified read on the
//!    pool); nothing pending: *at head*, and nothing is written unless its
//!    status row does not say so yet (a rerun skips finished tenants
//!    without a write);
//! 2. dry run: report the pending migrations and stop (reads only);
//! 3. record `running`, then in **one transaction** under the tenant's
//!    advisory lock (the lock provisioning and `drop_tenant` take): check the
//!    tenant is still registered, `SET LOCAL search_path` to its schema, apply
//!    every pending migration, record `done` with the last one, commit. A
//!    failure rolls back that tenant alone, then records `failed` with the
//!    error; the other tenants go on.
//!
//! A crash leaves committed tenants `done` and the one(s) in flight rolled
//! back (`running` in the status table); a rerun applies what is pending
//! where it is pending, so it finishes the rest. Dropping the run's future
//! is not a crash: each tenant runs in its own task, so the ones in flight
//! finish (their transactions are never cut off between two statements)
//! and no further tenant starts.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures_util::StreamExt as _;
use persistence_core::{Error, Result};
use sea_orm::{DatabaseTransaction, IsolationLevel, TransactionTrait};

use crate::migrate::{DynMigrator, err as migration_err};
use crate::store::RelationalStore;
use crate::tenant::id::TenantId;
use crate::tenant::registry::{Registry, err, lock_tenant};
use crate::tenant::status::{MigrationRecord, RunState, StatusTable, Write};

const OP: &str = "migrate_tenants";

/// Default number of tenants migrated at once.
pub const DEFAULT_CONCURRENCY: usize = 8;

/// Options of [`Tenants::migrate_all`](crate::Tenants::migrate_all).
#[derive(Clone)]
pub struct MigrateAll {
    concurrency: usize,
    dry_run: bool,
    progress: Option<Arc<dyn MigrationProgress>>,
}

impl std::fmt::Debug for MigrateAll {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MigrateAll")
            .field("concurrency", &self.concurrency)
            .field("dry_run", &self.dry_run)
            .field("progress", &self.progress.is_some())
            .finish()
    }
}

impl Default for MigrateAll {
    fn default() -> Self {
        MigrateAll {
            concurrency: DEFAULT_CONCURRENCY,
            dry_run: false,
            progress: None,
        }
    }
}

impl MigrateAll {
    /// [`DEFAULT_CONCURRENCY`] tenants at once, for real, no progress reporter.
    pub fn new() -> Self {
        Self::default()
    }

    /// At most `n` tenants in flight (each holds one pooled connection);
    /// 0 is refused with `InvalidInput` when the run starts.
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n;
        self
    }

    /// Report what each tenant would apply; write and create nothing.
    pub fn dry_run(mut self, yes: bool) -> Self {
        self.dry_run = yes;
        self
    }

    /// Call `progress` as tenants start and finish.
    pub fn progress(mut self, progress: impl MigrationProgress + 'static) -> Self {
        self.progress = Some(Arc::new(progress));
        self
    }

    fn emit(&self, event: ProgressEvent<'_>) {
        if let Some(p) = &self.progress {
            p.on_event(&event);
        }
    }
}

/// Receives the progress of a [`MigrateAll`] run (called from the run's
/// task: keep it short). Any `Fn(&ProgressEvent<'_>) + Send + Sync` is one.
pub trait MigrationProgress: Send + Sync {
    /// One event.
    fn on_event(&self, event: &ProgressEvent<'_>);
}

impl<F: Fn(&ProgressEvent<'_>) + Send + Sync> MigrationProgress for F {
    fn on_event(&self, event: &ProgressEvent<'_>) {
        self(event)
    }
}

/// What a [`MigrationProgress`] hears.
#[derive(Debug)]
#[non_exhaustive]
pub enum ProgressEvent<'a> {
    /// The run starts over `total` tenants.
    Begin {
        /// Tenants in the run.
        total: usize,
    },
    /// Work on a tenant starts (at most `concurrency` are between
    /// `Started` and `Finished` at any time).
    Started {
        /// The tenant.
        tenant: &'a TenantId,
    },
    /// Work on a tenant ended.
    Finished {
        /// The tenant.
        tenant: &'a TenantId,
        /// How it ended.
        outcome: &'a TenantOutcome,
        /// Tenants finished so far, this one included.
        done: usize,
        /// Tenants in the run.
        total: usize,
    },
}

/// How one tenant's migration ended.
#[derive(Debug)]
pub enum TenantOutcome {
    /// These migrations were applied and committed (in order).
    Migrated {
        /// Their names.
        applied: Vec<String>,
    },
    /// Nothing was pending.
    AtHead,
    /// Dry run: these would be applied (in order).
    WouldApply {
        /// Their names.
        pending: Vec<String>,
    },
    /// Rolled back: the tenant is as it was (the status table has the error).
    Failed(Error),
    /// Dropped while the run went on: skipped.
    Gone,
}

/// One tenant's line of a [`MigrationReport`].
#[derive(Debug)]
pub struct TenantReport {
    /// The tenant.
    pub tenant: TenantId,
    /// How it ended.
    pub outcome: TenantOutcome,
}

/// The answer of [`Tenants::migrate_all`](crate::Tenants::migrate_all).
#[derive(Debug)]
pub struct MigrationReport {
    /// The migrator's last migration.
    pub head: Option<String>,
    /// Whether this was a dry run.
    pub dry_run: bool,
    /// Every tenant of the group, sorted by id.
    pub tenants: Vec<TenantReport>,
}

impl MigrationReport {
    /// The tenants that failed, with their errors.
    pub fn failures(&self) -> impl Iterator<Item = (&TenantId, &Error)> {
        self.tenants.iter().filter_map(|r| match &r.outcome {
            TenantOutcome::Failed(e) => Some((&r.tenant, e)),
            _ => None,
        })
    }

    /// No tenant failed.
    pub fn is_success(&self) -> bool {
        self.failures().next().is_none()
    }

    /// How many tenants ended as `pred` says.
    pub fn count(&self, pred: impl Fn(&TenantOutcome) -> bool) -> usize {
        self.tenants.iter().filter(|r| pred(&r.outcome)).count()
    }
}

/// One tenant's line of [`Tenants::migration_status`](crate::Tenants::migration_status).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantMigrationStatus {
    /// The tenant.
    pub tenant: TenantId,
    /// The migrator's migrations applied in the tenant (in order).
    pub applied: Vec<String>,
    /// Those not applied yet (in order).
    pub pending: Vec<String>,
    /// Its row of the status table (`None`: never migrated by a run or a
    /// provisioning with a migrator).
    pub record: Option<MigrationRecord>,
}

impl TenantMigrationStatus {
    /// Behind the migrator's head.
    pub fn is_lagging(&self) -> bool {
        !self.pending.is_empty()
    }
}

/// Apply `migrator` in `tenant`'s schema inside the provisioning
/// transaction `tx` and record it `done` (unless its row says so already).
pub(super) async fn provision_up(
    migrator: &DynMigrator,
    status: &StatusTable,
    tx: &DatabaseTransaction,
    tenant: &str,
) -> Result<()> {
    const OP: &str = "provision";
    migrator
        .up_in(tx, tenant)
        .await
        .map_err(|e| migration_err(e, OP))?;
    let head = migrator.head();
    if status
        .record(tx, tenant, OP)
        .await?
        .is_some_and(|r| r.done_at(head))
    {
        return Ok(());
    }
    let applied = migrator
        .applied(tx, tenant)
        .await
        .map_err(|e| migration_err(e, OP))?;
    let last = migrator.last_applied(&applied);
    let w = Write {
        state: RunState::Done,
        last_applied: last.as_deref(),
        target: head,
        error: None,
    };
    status.write(tx, tenant, w, OP).await
}

/// The pieces of a `Tenants` a run needs (owned: each tenant of a run is
/// migrated in a task of its own, see [`Runner::run`]).
#[derive(Clone)]
pub(super) struct Runner {
    pub(super) base: RelationalStore,
    pub(super) registry: Registry,
    pub(super) status: StatusTable,
    pub(super) migrator: DynMigrator,
}

impl Runner {
    /// Migrate `ids` (sorted) as `opts` says (see the module docs).
    ///
    /// Each tenant runs in a spawned task, at most `concurrency` at once:
    /// dropping the returned future starts no further tenant, and the ones
    /// in flight still finish (commit or roll back, record their state,
    /// report `Finished`) instead of being cancelled between two statements
    /// of their transaction. A statement cut off mid-flight leaves its
    /// pooled connection to the driver's clean-up on release, which a
    /// dropped run must not depend on (seen: a connection never returned,
    /// so the pool's `close` waited for ever).
    pub(super) async fn run(
        &self,
        ids: Vec<TenantId>,
        opts: &MigrateAll,
    ) -> Result<MigrationReport> {
        if opts.concurrency == 0 {
            return Err(
                Error::invalid_input("migrate_all: concurrency must be at least 1")
                    .with_operation(OP),
            );
        }
        let db = self.base.connection();
        if !opts.dry_run && !ids.is_empty() {
            self.status.ensure(db, &self.registry, OP).await?;
        }
        let records = Arc::new(self.status.records(db, OP).await?);
        let total = ids.len();
        let done = Arc::new(AtomicUsize::new(0));
        opts.emit(ProgressEvent::Begin { total });
        let shared = Arc::new((self.clone(), opts.clone()));
        let mut tenants: Vec<TenantReport> = futures_util::stream::iter(ids)
            .map(|tenant| {
                let (shared, records, done) = (shared.clone(), records.clone(), done.clone());
                let id = tenant.clone();
                let task = tokio::spawn(async move {
                    let (runner, opts) = &*shared;
                    opts.emit(ProgressEvent::Started { tenant: &tenant });
                    let outcome = runner
                        .one(&tenant, records.get(tenant.as_str()), opts.dry_run)
                        .await;
                    let n = done.fetch_add(1, Ordering::SeqCst) + 1;
                    opts.emit(ProgressEvent::Finished {
                        tenant: &tenant,
                        outcome: &outcome,
                        done: n,
                        total,
                    });
                    TenantReport { tenant, outcome }
                });
                async move {
                    match task.await {
                        Ok(report) => report,
                        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                        Err(e) => TenantReport {
                            tenant: id,
                            outcome: TenantOutcome::Failed(
                                Error::unavailable(format!("the tenant's task ended: {e}"))
                                    .with_operation(OP),
                            ),
                        },
                    }
                }
            })
            .buffer_unordered(opts.concurrency)
            .collect()
            .await;
        tenants.sort_by(|a, b| a.tenant.cmp(&b.tenant));
        Ok(MigrationReport {
            head: self.migrator.head().map(str::to_string),
            dry_run: opts.dry_run,
            tenants,
        })
    }

    async fn one(
        &self,
        tenant: &TenantId,
        record: Option<&MigrationRecord>,
        dry_run: bool,
    ) -> TenantOutcome {
        let db = self.base.connection();
        let head = self.migrator.head();
        let applied = match self.migrator.applied(db, tenant.as_str()).await {
            Ok(a) => a,
            Err(e) => return TenantOutcome::Failed(migration_err(e, OP)),
        };
        let last = self.migrator.last_applied(&applied);
        let pending = self.migrator.pending(&applied);
        let write = |state, error| Write {
            state,
            last_applied: last.as_deref(),
            target: head,
            error,
        };
        if pending.is_empty() {
            if dry_run || record.is_some_and(|r| r.done_at(head)) {
                return TenantOutcome::AtHead;
            }
            // At head but not recorded so (e.g. migrated by hand): say so.
            return match self
                .status
                .write(db, tenant.as_str(), write(RunState::Done, None), OP)
                .await
            {
                Ok(()) => TenantOutcome::AtHead,
                Err(e) => TenantOutcome::Failed(e),
            };
        }
        if dry_run {
            return TenantOutcome::WouldApply { pending };
        }
        if let Err(e) = self
            .status
            .write(db, tenant.as_str(), write(RunState::Running, None), OP)
            .await
        {
            return TenantOutcome::Failed(e);
        }
        match self.apply(tenant).await {
            Ok(Some(applied)) if applied.is_empty() => TenantOutcome::AtHead,
            Ok(Some(applied)) => TenantOutcome::Migrated { applied },
            Ok(None) => {
                // Dropped meanwhile: its `running` row goes too.
                match self.status.forget(db, tenant.as_str(), OP).await {
                    Ok(()) => TenantOutcome::Gone,
                    Err(e) => TenantOutcome::Failed(e),
                }
            }
            Err(e) => {
                let text = e.to_string();
                let failed = write(RunState::Failed, Some(&text));
                if let Err(w) = self.status.write(db, tenant.as_str(), failed, OP).await {
                    tracing::warn!(tenant = %tenant, error = %w, "could not record a failed tenant migration");
                }
                TenantOutcome::Failed(e)
            }
        }
    }

    /// The tenant's transaction: `None` when it is no longer registered,
    /// else the migrations this call applied.
    async fn apply(&self, tenant: &TenantId) -> Result<Option<Vec<String>>> {
        let tx = self
            .base
            .connection()
            .begin_with_config(Some(IsolationLevel::ReadCommitted), None)
            .await
            .map_err(|e| err(e, OP))?;
        match self.apply_in(&tx, tenant.as_str()).await {
            Ok(Some(applied)) => {
                tx.commit().await.map_err(|e| err(e, OP))?;
                Ok(Some(applied))
            }
            other => {
                let _ = tx.rollback().await;
                other
            }
        }
    }

    async fn apply_in(
        &self,
        tx: &DatabaseTransaction,
        tenant: &str,
    ) -> Result<Option<Vec<String>>> {
        lock_tenant(tx, tenant, OP).await?;
        if !self.registry.contains(tx, tenant, OP).await? {
            return Ok(None);
        }
        let m = &self.migrator;
        // Read again under the lock: another run may have migrated it.
        let before = m
            .applied(tx, tenant)
            .await
            .map_err(|e| migration_err(e, OP))?;
        m.up_in(tx, tenant)
            .await
            .map_err(|e| migration_err(e, OP))?;
        let after = m
            .applied(tx, tenant)
            .await
            .map_err(|e| migration_err(e, OP))?;
        let last = m.last_applied(&after);
        let w = Write {
            state: RunState::Done,
            last_applied: last.as_deref(),
            target: m.head(),
            error: None,
        };
        self.status.write(tx, tenant, w, OP).await?;
        let pending_before = m.pending(&before);
        Ok(Some(
            pending_before
                .into_iter()
                .filter(|n| after.contains(n))
                .collect(),
        ))
    }

    /// Applied and pending migrations of every tenant of `ids`, with its
    /// status row. Reads only.
    pub(super) async fn status(&self, ids: Vec<TenantId>) -> Result<Vec<TenantMigrationStatus>> {
        const OP: &str = "migration_status";
        let db = self.base.connection();
        let mut records: HashMap<String, MigrationRecord> = self.status.records(db, OP).await?;
        let applied: Vec<(TenantId, Result<Vec<String>>)> = futures_util::stream::iter(ids)
            .map(|t| async move {
                let applied = self
                    .migrator
                    .applied(db, t.as_str())
                    .await
                    .map_err(|e| migration_err(e, OP));
                (t, applied)
            })
            .buffered(DEFAULT_CONCURRENCY)
            .collect()
            .await;
        applied
            .into_iter()
            .map(|(tenant, applied)| {
                let applied = applied?;
                let pending = self.migrator.pending(&applied);
                let record = records.remove(tenant.as_str());
                Ok(TenantMigrationStatus {
                    applied: self.migrator.in_order(&applied),
                    pending,
                    record,
                    tenant,
                })
            })
            .collect()
    }
}
