//! `databases.<name>.tenancy` ([`keys::TENANCY`]): how the database's
//! tenants are isolated, for [`Persistence::tenant_repo`](crate::Persistence::tenant_repo).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{DatabaseKind, keys};

/// How tenants are isolated ([`keys::TENANCY_STRATEGY`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TenancyStrategy {
    /// One schema per tenant (PostgreSQL); on MongoDB one collection prefix
    /// per tenant (`<tenant>__<entity>` in the database).
    Schema,
    /// One table for every tenant, rows marked by the entity's
    /// `#[entity(tenant)]` field (every backend; PostgreSQL adds row-level
    /// security).
    Row,
    /// One database per tenant (MongoDB: `<prefix><tenant>`).
    Database,
}

impl TenancyStrategy {
    /// `schema`, `row` or `database`.
    pub fn name(self) -> &'static str {
        match self {
            TenancyStrategy::Schema => "schema",
            TenancyStrategy::Row => "row",
            TenancyStrategy::Database => "database",
        }
    }

    /// Whether a database of `kind` can isolate tenants this way.
    pub fn supported_by(self, kind: DatabaseKind) -> bool {
        match self {
            TenancyStrategy::Row => !matches!(kind, DatabaseKind::Redis),
            TenancyStrategy::Schema => matches!(kind, DatabaseKind::Postgres | DatabaseKind::Mongo),
            TenancyStrategy::Database => matches!(kind, DatabaseKind::Mongo),
        }
    }
}

/// The `tenancy` section of a database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenancyConfig {
    /// [`keys::TENANCY_STRATEGY`] (required).
    pub strategy: TenancyStrategy,
    /// [`keys::TENANCY_PREFIX`]: `database` strategy, the prefix of every
    /// tenant's database (default: the database's `database` name and `_`).
    #[serde(default)]
    pub prefix: Option<String>,
    /// [`keys::TENANCY_AUTO_PROVISION`]: `schema` / `database` strategies,
    /// provision a tenant (its schema or collections) the first time one of
    /// its repositories is asked for; default `false`: an unknown tenant's
    /// repository is `NotFound` (PostgreSQL) until `provision_tenant`.
    #[serde(default)]
    pub auto_provision: bool,
    /// [`keys::TENANCY_TRACKED`]: most tenants whose activity is tracked
    /// (default 10000; beyond, the least active entry is replaced).
    #[serde(default = "default_tracked")]
    pub tracked: usize,
    /// [`keys::TENANCY_WINDOW`]: the activity window of the per-tenant
    /// rates and of "active" (default 10s).
    #[serde(default = "default_window", with = "humantime_serde")]
    pub window: Duration,
}

fn default_tracked() -> usize {
    10_000
}

fn default_window() -> Duration {
    Duration::from_secs(10)
}

impl TenancyConfig {
    /// A section with `strategy` and every other key at its default.
    pub fn new(strategy: TenancyStrategy) -> Self {
        TenancyConfig {
            strategy,
            prefix: None,
            auto_provision: false,
            tracked: default_tracked(),
            window: default_window(),
        }
    }

    /// The checks serde cannot express, for database `name` of `kind`.
    pub(crate) fn validate(&self, name: &str, kind: DatabaseKind) -> persistence_core::Result<()> {
        let at = format!("databases.{name}.{}", keys::TENANCY);
        if !self.strategy.supported_by(kind) {
            let which = match self.strategy {
                TenancyStrategy::Schema => "postgres or mongo",
                TenancyStrategy::Database => "mongo",
                TenancyStrategy::Row => "an entity store (not redis)",
            };
            return Err(persistence_core::Error::config(format!(
                "{at}.{}: `{}` needs {which}, not kind {}",
                keys::TENANCY_STRATEGY,
                self.strategy.name(),
                kind.name()
            )));
        }
        if let Some(p) = &self.prefix {
            if self.strategy != TenancyStrategy::Database {
                return Err(persistence_core::Error::config(format!(
                    "{at}.{} applies to strategy `database` only",
                    keys::TENANCY_PREFIX
                )));
            }
            if !p.is_empty() {
                persistence_core::names::validate_config(
                    persistence_core::names::NameKind::Database,
                    p,
                    &format!("{at}.{}", keys::TENANCY_PREFIX),
                )?;
            }
        }
        if self.auto_provision && self.strategy == TenancyStrategy::Row {
            return Err(persistence_core::Error::config(format!(
                "{at}.{}: strategy `row` has nothing to provision per tenant",
                keys::TENANCY_AUTO_PROVISION
            )));
        }
        if self.tracked == 0 {
            return Err(persistence_core::Error::config(format!(
                "{at}.{} must be at least 1",
                keys::TENANCY_TRACKED
            )));
        }
        if self.window.is_zero() {
            return Err(persistence_core::Error::config(format!(
                "{at}.{} must be greater than zero",
                keys::TENANCY_WINDOW
            )));
        }
        Ok(())
    }
}
