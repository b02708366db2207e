//! What the registry stores: a [`ConnectionDefinition`] (and its listing,
//! [`ConnectionSummary`]), the row it is stored as, and the checks on names
//! and kinds.

use chrono::{DateTime, Utc};
use persistence_core::{Entity, Error, Result};
use serde::{Deserialize, Serialize};

use crate::config::{DatabaseConfig, DatabaseKind, PersistenceConfig, PoolConfig, Secret};

/// The logical name (table) of the stored definitions.
pub const TABLE: &str = "persistence_connections";

/// `s` reduced to at most 32 ASCII letters and digits, for error messages.
pub(super) fn printable(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(32)
        .collect()
}

/// One connection definition. `Debug` redacts the URL.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectionDefinition {
    /// Unique name (an identifier: letters, digits, `_`).
    pub name: String,
    /// Backend: `postgres`, `sqlite` or `mongo`.
    pub kind: DatabaseKind,
    /// Connection URL, with its password (stored encrypted).
    pub url: Secret,
    /// PostgreSQL schema.
    pub schema: Option<String>,
    /// MongoDB database name (default: the connection name).
    pub database: Option<String>,
    /// Pool settings.
    pub pool: PoolConfig,
}

impl ConnectionDefinition {
    /// A definition with default pool settings.
    pub fn new(name: impl Into<String>, kind: DatabaseKind, url: impl Into<Secret>) -> Self {
        ConnectionDefinition {
            name: name.into(),
            kind,
            url: url.into(),
            schema: None,
            database: None,
            pool: PoolConfig::default(),
        }
    }

    /// Set the PostgreSQL schema.
    pub fn schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = Some(schema.into());
        self
    }

    /// Set the MongoDB database.
    pub fn database(mut self, database: impl Into<String>) -> Self {
        self.database = Some(database.into());
        self
    }

    /// Set the pool settings.
    pub fn pool(mut self, pool: PoolConfig) -> Self {
        self.pool = pool;
        self
    }

    pub(super) fn validate(&self) -> Result<()> {
        if !matches!(
            self.kind,
            DatabaseKind::Postgres | DatabaseKind::Sqlite | DatabaseKind::Mongo
        ) {
            return Err(Error::config(format!(
                "registry connection `{}`: kind {} is not supported (postgres, sqlite, mongo)",
                self.name,
                self.kind.name()
            )));
        }
        // The same name and URL checks as a configured database.
        let mut config = PersistenceConfig::default();
        config
            .databases
            .insert(self.name.clone(), self.as_database_config());
        config.validate().map_err(|e| {
            Error::config(format!(
                "registry connection `{}`: {}",
                printable_name(&self.name),
                e.message()
            ))
        })
    }

    fn as_database_config(&self) -> DatabaseConfig {
        DatabaseConfig {
            schema: self.schema.clone(),
            database: self.database.clone(),
            pool: self.pool.clone(),
            ..DatabaseConfig::new(self.kind, Some(self.url.clone()))
        }
    }
}

/// A connection name fit for an error message (control characters replaced).
pub(super) fn printable_name(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .take(64)
        .collect()
}

/// A definition as listed: everything but the URL.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectionSummary {
    /// Name.
    pub name: String,
    /// Backend.
    pub kind: DatabaseKind,
    /// The id of the key the URL is sealed with.
    pub key_id: String,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// Whether its pool is open in this process.
    pub open: bool,
}

/// The stored row.
#[derive(Debug, Clone, Serialize, Deserialize, Entity)]
#[entity(name = "persistence_connections")]
pub(super) struct ConnectionRow {
    #[entity(id)]
    pub(super) name: String,
    pub(super) kind: String,
    pub(super) schema_name: Option<String>,
    pub(super) database_name: Option<String>,
    pub(super) pool: PoolConfig,
    pub(super) key_id: String,
    pub(super) nonce: Vec<u8>,
    pub(super) ciphertext: Vec<u8>,
    #[entity(version)]
    pub(super) version: i64,
    pub(super) updated_at: DateTime<Utc>,
}

/// The kind stored in a row.
pub(super) fn parse_kind(name: &str, kind: &str) -> Result<DatabaseKind> {
    match kind {
        "postgres" => Ok(DatabaseKind::Postgres),
        "sqlite" => Ok(DatabaseKind::Sqlite),
        "mongo" => Ok(DatabaseKind::Mongo),
        other => Err(Error::config(format!(
            "registry connection `{name}` has an unknown kind `{}`",
            printable(other)
        ))),
    }
}
