//! The per-tenant migration status table, next to the registry:
//! `<control>."persistence_tenant_migrations"`, one row per tenant a
//! migration run (or a provisioning with a migrator) has touched:
//!
//! | column         | type          |                                                    |
//! |----------------|---------------|----------------------------------------------------|
//! | `tenant`       | `text` PK     | the tenant                                         |
//! | `state`        | `text`        | `running`, `done` or `failed`                      |
//! | `last_applied` | `text` NULL   | last migration applied (committed) in the tenant   |
//! | `target`       | `text` NULL   | the migrator's head when the row was written       |
//! | `error`        | `text` NULL   | why the last run failed (`failed` only)            |
//! | `updated_at`   | `timestamptz` | when the row was written                           |
//!
//! `done` is written in the tenant's migration transaction (it commits
//! with the migrations or not at all); `running` before that transaction
//! and `failed` after its rollback, each in a statement of its own, so a
//! crash leaves `running` behind. The table is created (and marked, like
//! everything the library makes) under the group's exclusive lock the first
//! time it is needed; a table of that name without the mark is never
//! touched (`Config` error).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use persistence_core::names::MANAGED_MARK;
use persistence_core::{Error, Result};
use sea_orm::{ConnectionTrait, DatabaseConnection, IsolationLevel, TransactionTrait, Value};

use crate::query::quote;
use crate::store::conn::Conn;
use crate::tenant::registry::{Registry, err, stmt, text};

const MARK_SUFFIX: &str = " status=tenant-migrations";

/// Where a tenant's last migration run got to (see [`MigrationRecord`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunState {
    /// Started and not finished: a run in progress, or one that crashed.
    Running,
    /// Committed: the tenant was at `target` when the row was written.
    Done,
    /// Rolled back: `error` says why; the tenant is as it was before.
    Failed,
}

impl RunState {
    fn as_str(self) -> &'static str {
        match self {
            RunState::Running => "running",
            RunState::Done => "done",
            RunState::Failed => "failed",
        }
    }

    fn parse(s: &str) -> Result<RunState> {
        match s {
            "running" => Ok(RunState::Running),
            "done" => Ok(RunState::Done),
            "failed" => Ok(RunState::Failed),
            other => Err(Error::decode(format!(
                "tenant migration status: unknown state `{other}`"
            ))),
        }
    }
}

/// A tenant's row of the migration status table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationRecord {
    /// Where the last run got to.
    pub state: RunState,
    /// The last migration applied in the tenant (committed) when written.
    pub last_applied: Option<String>,
    /// The migrator's head of that run.
    pub target: Option<String>,
    /// Why it failed (`Failed` only).
    pub error: Option<String>,
    /// When the row was written.
    pub updated_at: DateTime<Utc>,
}

impl MigrationRecord {
    /// Done at `head`: a rerun has nothing to write for this tenant.
    pub(super) fn done_at(&self, head: Option<&str>) -> bool {
        self.state == RunState::Done
            && self.last_applied.as_deref() == head
            && self.target.as_deref() == head
    }
}

/// What a status write says.
pub(super) struct Write<'a> {
    pub(super) state: RunState,
    pub(super) last_applied: Option<&'a str>,
    pub(super) target: Option<&'a str>,
    pub(super) error: Option<&'a str>,
}

/// The status table of one control schema.
#[derive(Debug, Clone)]
pub(super) struct StatusTable {
    /// `"<control>"."persistence_tenant_migrations"`.
    table: String,
}

impl StatusTable {
    pub(super) fn new(control: &str) -> StatusTable {
        StatusTable {
            table: format!("{}.\"persistence_tenant_migrations\"", quote(control)),
        }
    }

    /// `None`: no table; `Some(true)`: ours (marked); `Some(false)`: not ours.
    async fn shape<C: Conn>(&self, c: &C, op: &'static str) -> Result<Option<bool>> {
        let row = c
            .row(stmt(
                "SELECT r IS NOT NULL, coalesce(starts_with(obj_description(r, 'pg_class'), $2), false) \
                 FROM (SELECT to_regclass($1) AS r) AS t",
                vec![text(&self.table), text(MANAGED_MARK)],
            ))
            .await
            .map_err(|e| err(e, op))?
            .ok_or_else(|| Error::decode("status table shape: no row"))?;
        let get = |i| {
            row.try_get_by_index::<bool>(i)
                .map_err(|e| Error::decode(format!("status table shape: {e}")))
        };
        Ok(if get(0)? { Some(get(1)?) } else { None })
    }

    fn foreign(&self, op: &'static str) -> Error {
        Error::config(format!(
            "table {} exists but was not created by the library (no `{MANAGED_MARK}` comment); \
             it is left unchanged: rename it, or use another control schema",
            self.table
        ))
        .with_operation(op)
    }

    /// Create the table when missing (own transaction, group's exclusive lock).
    pub(super) async fn ensure(
        &self,
        db: &DatabaseConnection,
        registry: &Registry,
        op: &'static str,
    ) -> Result<()> {
        match self.shape(db, op).await? {
            Some(true) => return Ok(()),
            Some(false) => return Err(self.foreign(op)),
            None => {}
        }
        let tx = db
            .begin_with_config(Some(IsolationLevel::ReadCommitted), None)
            .await
            .map_err(|e| err(e, op))?;
        registry.lock_group(&tx, true, op).await?;
        match self.shape(&tx, op).await? {
            Some(true) => {}
            Some(false) => return Err(self.foreign(op)),
            None => {
                for sql in [
                    format!(
                        "CREATE TABLE IF NOT EXISTS {} (\"tenant\" text PRIMARY KEY, \
                         \"state\" text NOT NULL, \"last_applied\" text, \"target\" text, \
                         \"error\" text, \"updated_at\" timestamptz NOT NULL DEFAULT now())",
                        self.table
                    ),
                    format!(
                        "COMMENT ON TABLE {} IS '{MANAGED_MARK}{MARK_SUFFIX}'",
                        self.table
                    ),
                ] {
                    tx.execute_unprepared(&sql).await.map_err(|e| err(e, op))?;
                }
            }
        }
        tx.commit().await.map_err(|e| err(e, op))
    }

    /// Every row, by tenant (no table: none). Read-only.
    pub(super) async fn records<C: Conn>(
        &self,
        c: &C,
        op: &'static str,
    ) -> Result<HashMap<String, MigrationRecord>> {
        match self.shape(c, op).await? {
            None => return Ok(HashMap::new()),
            Some(false) => return Err(self.foreign(op)),
            Some(true) => {}
        }
        self.select(c, "", vec![], op).await
    }

    /// `tenant`'s row (the table exists).
    pub(super) async fn record<C: Conn>(
        &self,
        c: &C,
        tenant: &str,
        op: &'static str,
    ) -> Result<Option<MigrationRecord>> {
        let mut rows = self
            .select(c, "WHERE \"tenant\" = $1", vec![text(tenant)], op)
            .await?;
        Ok(rows.remove(tenant))
    }

    async fn select<C: Conn>(
        &self,
        c: &C,
        filter: &str,
        values: Vec<Value>,
        op: &'static str,
    ) -> Result<HashMap<String, MigrationRecord>> {
        let rows = c
            .rows(stmt(
                format!(
                    "SELECT \"tenant\", \"state\", \"last_applied\", \"target\", \"error\", \
                     \"updated_at\" FROM {} {filter}",
                    self.table
                ),
                values,
            ))
            .await
            .map_err(|e| err(e, op))?;
        let decode = |e: sea_orm::DbErr| Error::decode(format!("tenant migration status: {e}"));
        let mut out = HashMap::with_capacity(rows.len());
        for r in &rows {
            let record = MigrationRecord {
                state: RunState::parse(&r.try_get_by_index::<String>(1).map_err(decode)?)?,
                last_applied: r.try_get_by_index(2).map_err(decode)?,
                target: r.try_get_by_index(3).map_err(decode)?,
                error: r.try_get_by_index(4).map_err(decode)?,
                updated_at: r.try_get_by_index(5).map_err(decode)?,
            };
            out.insert(r.try_get_by_index::<String>(0).map_err(decode)?, record);
        }
        Ok(out)
    }

    /// Record `w` for `tenant` (replaces its row).
    pub(super) async fn write<C: Conn>(
        &self,
        c: &C,
        tenant: &str,
        w: Write<'_>,
        op: &'static str,
    ) -> Result<()> {
        let opt = |v: Option<&str>| Value::String(v.map(str::to_string));
        c.exec(stmt(
            format!(
                "INSERT INTO {} (\"tenant\", \"state\", \"last_applied\", \"target\", \"error\", \
                 \"updated_at\") VALUES ($1, $2, $3, $4, $5, clock_timestamp()) \
                 ON CONFLICT (\"tenant\") DO UPDATE SET \"state\" = EXCLUDED.\"state\", \
                 \"last_applied\" = EXCLUDED.\"last_applied\", \"target\" = EXCLUDED.\"target\", \
                 \"error\" = EXCLUDED.\"error\", \"updated_at\" = EXCLUDED.\"updated_at\"",
                self.table
            ),
            vec![
                text(tenant),
                text(w.state.as_str()),
                opt(w.last_applied),
                opt(w.target),
                opt(w.error),
            ],
        ))
        .await
        .map(|_| ())
        .map_err(|e| err(e, op))
    }

    /// Forget `tenant` (when the table exists and is ours).
    pub(super) async fn forget<C: Conn>(
        &self,
        c: &C,
        tenant: &str,
        op: &'static str,
    ) -> Result<()> {
        if self.shape(c, op).await? != Some(true) {
            return Ok(());
        }
        c.exec(stmt(
            format!("DELETE FROM {} WHERE \"tenant\" = $1", self.table),
            vec![text(tenant)],
        ))
        .await
        .map(|_| ())
        .map_err(|e| err(e, op))
    }
}
