//! Row-level security for tenant entities (row-level tenancy, see
//! [`persistence_core::tenant`]) on PostgreSQL.
//!
//! A table the library creates (or owns by its mark) for an entity with an
//! `#[entity(tenant)]` field gets `ENABLE` and `FORCE ROW LEVEL SECURITY`
//! (so the table owner is bound too; superusers and `BYPASSRLS` roles are
//! not) and one policy, [`POLICY`]:
//!
//! ```sql
//! USING ("tenant" = NULLIF(current_setting('app.tenant', true), '')::<type>)
//! WITH CHECK (the same)
//! ```
//!
//! Every statement on such a table runs in a transaction that sets
//! [`SETTING`] first (`set_config(.., true)`: local to that transaction),
//! so a pooled connection never carries a tenant into the next statement.
//! Without the setting no row is visible or writable. Tables the library
//! did not create are never altered (see the schema module docs): they rely
//! on the mandatory filter alone.

use persistence_core::{EntityMeta, Result};

use super::TableInfo;
use crate::query::{Dialect, column_type, quote};

/// The setting the policy reads: the tenant of the statement's transaction.
pub(crate) const SETTING: &str = "app.tenant";

/// The name of the policy on every tenant table.
pub(crate) const POLICY: &str = "persistence_tenant";

impl TableInfo {
    /// The statements turning row-level security on for a tenant entity's
    /// table (idempotent; none for other entities and on SQLite).
    pub(crate) fn rls_ddl(&self, meta: &EntityMeta, dialect: Dialect) -> Result<Vec<String>> {
        let Some(field) = meta.tenant_field() else {
            return Ok(Vec::new());
        };
        if dialect != Dialect::Postgres {
            return Ok(Vec::new());
        }
        let ty = column_type(dialect, field.ty)?;
        let cond = format!(
            "{} = NULLIF(current_setting('{SETTING}', true), '')::{ty}",
            quote(field.name)
        );
        let table = &self.qualified;
        // Identifiers are validated (no quotes), so the table name can sit in
        // a string literal; a concurrent creator may win the CREATE POLICY.
        let policy = format!(
            "DO $$ BEGIN \
               IF NOT EXISTS (SELECT 1 FROM pg_policy WHERE polrelid = '{table}'::regclass \
                              AND polname = '{POLICY}') THEN \
                 CREATE POLICY {POLICY} ON {table} USING ({cond}) WITH CHECK ({cond}); \
               END IF; \
             EXCEPTION WHEN duplicate_object THEN NULL; \
             END $$"
        );
        Ok(vec![
            format!("ALTER TABLE {table} ENABLE ROW LEVEL SECURITY"),
            format!("ALTER TABLE {table} FORCE ROW LEVEL SECURITY"),
            policy,
        ])
    }
}
