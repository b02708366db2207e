//! The tenant registry table and the locks that make provisioning safe
//! under concurrency (see the docs of [`super`]).
//!
//! The registry is `<control>."persistence_tenants"`:
//!
//! | column       | type          |                                           |
//! |--------------|---------------|-------------------------------------------|
//! | `id`         | `text` PK     | the tenant (also its schema)              |
//! | `created_at` | `timestamptz` | first provisioning                        |
//! | `entities`   | `text[]`      | entity names whose tables the tenant has  |
//!
//! A registry made before `entities` existed (columns `id`, `created_at`)
//! gets the column (`ADD COLUMN .. DEFAULT '{}'`, metadata only) the next
//! time a tenant is provisioned; reading never changes it.
//!
//! Locks are PostgreSQL advisory locks of the two-key form (they never
//! collide with an application's one-key `bigint` locks), held until the
//! transaction ends:
//!
//! * `(TENANT_LOCK, hashtext(<tenant>))`: one provisioning or drop of a
//!   tenant at a time (schema names are database-wide, so the key is the
//!   tenant alone, whatever the control schema);
//! * `(GROUP_LOCK, hashtext(<control>))`: shared by every provisioning of
//!   the group, exclusive when the registry is created or upgraded, and
//!   when a provisioning adds entities the group did not have yet.
//!
//! A hash collision only makes two tenants (or groups) wait for each other.

use std::collections::BTreeSet;

use persistence_core::names::MANAGED_MARK;
use persistence_core::{Error, Result};
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DbErr, IsolationLevel, Statement, TransactionTrait, Value,
};

use crate::error::map_db_err;
use crate::query::quote;
use crate::store::conn::Conn;

/// First key of a tenant's advisory lock (`"pers"`).
pub(crate) const TENANT_LOCK: i32 = 0x7065_7273;
/// First key of a tenant group's advisory lock.
pub(crate) const GROUP_LOCK: i32 = 0x7065_7274;

/// The default control schema (the registry is placed there, never owned).
pub(super) const DEFAULT_CONTROL: &str = "public";

/// What the registry table looks like now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Shape {
    /// No table.
    Missing,
    /// `id`, `created_at` only (made before entity sets were stored).
    Legacy,
    /// With `entities`.
    Current,
    /// A table of that name without an `id` column: not ours.
    Foreign,
}

pub(super) fn err(e: DbErr, op: &'static str) -> Error {
    map_db_err(e, &Default::default()).with_operation(op)
}

pub(super) fn stmt(sql: impl Into<String>, values: Vec<Value>) -> Statement {
    Statement::from_sql_and_values(sea_orm::DbBackend::Postgres, sql, values)
}

pub(super) fn text(v: &str) -> Value {
    Value::String(Some(v.to_string()))
}

/// The registry of one control schema (a tenant group).
#[derive(Debug, Clone)]
pub(super) struct Registry {
    pub(super) control: String,
    /// `"<control>"."persistence_tenants"`.
    table: String,
}

impl Registry {
    pub(super) fn new(control: &str) -> Registry {
        Registry {
            control: control.to_string(),
            table: format!("{}.\"persistence_tenants\"", quote(control)),
        }
    }

    /// The shape of the registry table (catalog reads only).
    pub(super) async fn shape<C: Conn>(&self, c: &C, op: &'static str) -> Result<Shape> {
        let row = c
            .row(stmt(
                "SELECT r IS NOT NULL, \
                   EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = r AND attname = 'id' AND NOT attisdropped), \
                   EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = r AND attname = 'entities' AND NOT attisdropped) \
                 FROM (SELECT to_regclass($1) AS r) AS t",
                vec![text(&self.table)],
            ))
            .await
            .map_err(|e| err(e, op))?
            .ok_or_else(|| Error::decode("registry shape: no row"))?;
        let get = |i| {
            row.try_get_by_index::<bool>(i)
                .map_err(|e| Error::decode(format!("registry shape: {e}")))
        };
        Ok(match (get(0)?, get(1)?, get(2)?) {
            (false, _, _) => Shape::Missing,
            (true, false, _) => Shape::Foreign,
            (true, true, false) => Shape::Legacy,
            (true, true, true) => Shape::Current,
        })
    }

    fn foreign(&self) -> Error {
        Error::config(format!(
            "table {} exists but is not a tenant registry (it has no `id` column); \
             it is left unchanged: rename it, or use another control schema",
            self.table
        ))
    }

    /// Create the registry (and a non-default control schema), or add the
    /// `entities` column to a legacy one, in a transaction of its own under
    /// the group's exclusive lock. Reads only when it is current already.
    pub(super) async fn ensure(&self, db: &DatabaseConnection) -> Result<()> {
        const OP: &str = "provision";
        match self.shape(db, OP).await? {
            Shape::Current => return Ok(()),
            Shape::Foreign => return Err(self.foreign()),
            Shape::Missing | Shape::Legacy => {}
        }
        let tx = db
            .begin_with_config(Some(IsolationLevel::ReadCommitted), None)
            .await
            .map_err(|e| err(e, OP))?;
        self.lock_group(&tx, true, OP).await?;
        // Asked again under the lock: another process may have done it.
        match self.shape(&tx, OP).await? {
            Shape::Current => {}
            Shape::Foreign => return Err(self.foreign()),
            Shape::Missing => {
                if self.control != DEFAULT_CONTROL {
                    crate::schema::ensure_namespace(&tx, &self.control)
                        .await
                        .map_err(|e| err(e, OP))?;
                }
                tx.execute_unprepared(&format!(
                    "CREATE TABLE IF NOT EXISTS {} (\"id\" text PRIMARY KEY, \
                     \"created_at\" timestamptz NOT NULL DEFAULT now(), \
                     \"entities\" text[] NOT NULL DEFAULT '{{}}')",
                    self.table
                ))
                .await
                .map_err(|e| err(e, OP))?;
                tx.execute_unprepared(&format!(
                    "COMMENT ON TABLE {} IS '{MANAGED_MARK} registry=tenants'",
                    self.table
                ))
                .await
                .map_err(|e| err(e, OP))?;
            }
            Shape::Legacy => {
                // Made by an earlier version of the library: only a column
                // with a constant default is added (no rewrite, rows kept).
                tx.execute_unprepared(&format!(
                    "ALTER TABLE {} ADD COLUMN IF NOT EXISTS \"entities\" text[] NOT NULL DEFAULT '{{}}'",
                    self.table
                ))
                .await
                .map_err(|e| err(e, OP))?;
            }
        }
        tx.commit().await.map_err(|e| err(e, OP))
    }

    /// Take the group's lock (shared or exclusive) until the transaction ends.
    pub(super) async fn lock_group<C: Conn>(
        &self,
        c: &C,
        exclusive: bool,
        op: &'static str,
    ) -> Result<()> {
        let f = if exclusive {
            "pg_advisory_xact_lock"
        } else {
            "pg_advisory_xact_lock_shared"
        };
        c.exec(stmt(
            format!("SELECT {f}({GROUP_LOCK}, hashtext($1))::text"),
            vec![text(&self.control)],
        ))
        .await
        .map(|_| ())
        .map_err(|e| err(e, op))
    }

    /// Every entity some tenant of the group has (current registry).
    pub(super) async fn group_entities<C: Conn>(
        &self,
        c: &C,
        op: &'static str,
    ) -> Result<BTreeSet<String>> {
        let rows = c
            .rows(stmt(
                format!(
                    "SELECT DISTINCT e FROM {}, unnest(\"entities\") AS e",
                    self.table
                ),
                vec![],
            ))
            .await
            .map_err(|e| err(e, op))?;
        rows.iter()
            .map(|r| {
                r.try_get_by_index::<String>(0)
                    .map_err(|e| Error::decode(format!("registry entities: {e}")))
            })
            .collect()
    }

    /// The entities stored for `tenant` (`None`: not registered).
    pub(super) async fn tenant_entities<C: Conn>(
        &self,
        c: &C,
        tenant: &str,
        op: &'static str,
    ) -> Result<Option<BTreeSet<String>>> {
        let rows = c
            .rows(stmt(
                format!(
                    "SELECT e FROM {} AS r LEFT JOIN LATERAL unnest(r.\"entities\") AS e ON true \
                     WHERE r.\"id\" = $1",
                    self.table
                ),
                vec![text(tenant)],
            ))
            .await
            .map_err(|e| err(e, op))?;
        if rows.is_empty() {
            return Ok(None);
        }
        let mut out = BTreeSet::new();
        for r in &rows {
            if let Some(e) = r
                .try_get_by_index::<Option<String>>(0)
                .map_err(|e| Error::decode(format!("registry entities: {e}")))?
            {
                out.insert(e);
            }
        }
        Ok(Some(out))
    }

    /// Record `tenant` with `entities` (the full set: replaces the stored one).
    pub(super) async fn upsert<C: Conn>(
        &self,
        c: &C,
        tenant: &str,
        entities: &BTreeSet<String>,
    ) -> Result<()> {
        let list: Vec<String> = entities.iter().cloned().collect();
        c.exec(stmt(
            format!(
                "INSERT INTO {} (\"id\", \"entities\") VALUES ($1, $2) \
                 ON CONFLICT (\"id\") DO UPDATE SET \"entities\" = EXCLUDED.\"entities\"",
                self.table
            ),
            vec![text(tenant), Value::from(list)],
        ))
        .await
        .map(|_| ())
        .map_err(|e| err(e, "provision"))
    }

    /// Whether `tenant` is registered (any registry shape).
    pub(super) async fn contains<C: Conn>(
        &self,
        c: &C,
        tenant: &str,
        op: &'static str,
    ) -> Result<bool> {
        c.row(stmt(
            format!("SELECT 1 FROM {} WHERE \"id\" = $1", self.table),
            vec![text(tenant)],
        ))
        .await
        .map(|r| r.is_some())
        .map_err(|e| err(e, op))
    }

    /// Forget `tenant`.
    pub(super) async fn delete<C: Conn>(&self, c: &C, tenant: &str) -> Result<()> {
        c.exec(stmt(
            format!("DELETE FROM {} WHERE \"id\" = $1", self.table),
            vec![text(tenant)],
        ))
        .await
        .map(|_| ())
        .map_err(|e| err(e, "drop_tenant"))
    }

    /// The registered tenant ids in byte order (any registry shape).
    pub(super) async fn ids<C: Conn>(&self, c: &C) -> Result<Vec<String>> {
        let rows = c
            .rows(stmt(
                format!(
                    "SELECT \"id\" FROM {} ORDER BY \"id\" COLLATE \"C\"",
                    self.table
                ),
                vec![],
            ))
            .await
            .map_err(|e| err(e, "list_tenants"))?;
        rows.iter()
            .map(|r| {
                r.try_get_by_index::<String>(0)
                    .map_err(|e| Error::decode(e.to_string()))
            })
            .collect()
    }
}

/// Take `tenant`'s exclusive lock until the transaction ends.
pub(super) async fn lock_tenant<C: Conn>(c: &C, tenant: &str, op: &'static str) -> Result<()> {
    c.exec(stmt(
        format!("SELECT pg_advisory_xact_lock({TENANT_LOCK}, hashtext($1))::text"),
        vec![text(tenant)],
    ))
    .await
    .map(|_| ())
    .map_err(|e| err(e, op))
}

/// The entities whose tables exist in schema `tenant`, created by the
/// library (their comment names the entity, see [`crate::schema`]).
pub(super) async fn present_entities<C: Conn>(
    c: &C,
    tenant: &str,
    op: &'static str,
) -> Result<BTreeSet<String>> {
    let prefix = format!("{MANAGED_MARK} entity=");
    let rows = c
        .rows(stmt(
            "SELECT substr(d.description, length($2) + 1) \
             FROM pg_class AS c \
             JOIN pg_namespace AS n ON n.oid = c.relnamespace \
             JOIN pg_description AS d \
               ON d.objoid = c.oid AND d.classoid = 'pg_class'::regclass AND d.objsubid = 0 \
             WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND starts_with(d.description, $2)",
            vec![text(tenant), text(&prefix)],
        ))
        .await
        .map_err(|e| err(e, op))?;
    rows.iter()
        .map(|r| {
            r.try_get_by_index::<String>(0)
                .map_err(|e| Error::decode(format!("tenant tables: {e}")))
        })
        .collect()
}
