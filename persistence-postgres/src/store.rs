//! [`RelationalStore`]: a database (PostgreSQL or SQLite) reached through
//! a sea-orm connection pool, plus the schema its tables live in. The
//! repositories ([`RelationalStore::repository`]) and units of work
//! ([`RelationalStore::transaction`]) are made in `repository.rs` and
//! `transaction.rs`; how statements reach the driver is in `store/conn.rs`.

use std::sync::Arc;

use persistence_core::{Error, Result};
use sea_orm::{DatabaseConnection, DbBackend};

use crate::config::{RelationalConfig, validate_schema_name};
use crate::error::map_db_err;
use crate::query::Dialect;

pub(crate) mod conn;

struct StoreInner {
    db: DatabaseConnection,
    dialect: Dialect,
    schema: Option<String>,
    /// Shared with stores derived by `with_schema`.
    leaks: Arc<std::sync::OnceLock<persistence_core::layer::LeakDetector>>,
    /// Records the raw calls (`query_as`, `execute`); shared like `leaks`.
    metrics: Arc<std::sync::OnceLock<persistence_core::layer::Metrics>>,
    /// What `ensure_schema` learned about tables' columns; shared like `leaks`.
    facts: Arc<crate::query::facts::FactsRegistry>,
    /// The schema of the pgvector `vector` extension (`None`: not
    /// installed), once looked up; shared like `leaks`. See [`crate::vector`].
    vector: Arc<std::sync::OnceLock<Option<String>>>,
}

/// A database (PostgreSQL or SQLite) reached through a sea-orm connection
/// pool, plus the PostgreSQL schema its tables live in. Cheap to clone.
#[derive(Clone)]
pub struct RelationalStore {
    inner: Arc<StoreInner>,
}

impl std::fmt::Debug for RelationalStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelationalStore")
            .field("dialect", &self.inner.dialect)
            .field("schema", &self.inner.schema)
            .finish()
    }
}

impl RelationalStore {
    /// Connect with `config` (the pool is created; the first connection is opened).
    pub async fn connect(config: &RelationalConfig) -> Result<RelationalStore> {
        config.validate()?;
        let mut db = sea_orm::Database::connect(config.connect_options())
            .await
            .map_err(|e| crate::error::map_connect_err(e, &config.url))?;
        // The SQL text only (placeholders, never the bound values) for the slow log.
        db.set_metric_callback(|info| {
            persistence_core::layer::probe::statement_executed(&info.statement.sql, info.elapsed)
        });
        let store = Self::from_connection(db, config.schema.clone())?;
        // A lazy pool touches no server here: the lookup then happens at
        // the first `ensure_schema` / `find_nearest` of a vector entity.
        if !config.connect_lazy {
            store.vector_extension().await?;
        }
        Ok(store)
    }

    /// Wrap an existing sea-orm connection; tables go to `schema` (PostgreSQL only).
    pub fn from_connection(
        db: DatabaseConnection,
        schema: Option<String>,
    ) -> Result<RelationalStore> {
        let dialect = match db.get_database_backend() {
            DbBackend::Postgres => Dialect::Postgres,
            DbBackend::Sqlite => Dialect::Sqlite,
            other => {
                return Err(Error::config(format!(
                    "unsupported database backend {other:?}"
                )));
            }
        };
        if let Some(s) = &schema {
            validate_schema_name(s)?;
            if dialect == Dialect::Sqlite {
                return Err(Error::config("schemas are not supported on SQLite"));
            }
        }
        Ok(RelationalStore {
            inner: Arc::new(StoreInner {
                db,
                dialect,
                schema,
                leaks: Arc::default(),
                metrics: Arc::default(),
                facts: Arc::default(),
                vector: Arc::default(),
            }),
        })
    }

    /// The same pool with tables in another (validated) PostgreSQL schema.
    pub(crate) fn with_schema(&self, schema: &str) -> RelationalStore {
        RelationalStore {
            inner: Arc::new(StoreInner {
                db: self.inner.db.clone(),
                dialect: self.inner.dialect,
                schema: Some(schema.to_string()),
                leaks: self.inner.leaks.clone(),
                metrics: self.inner.metrics.clone(),
                facts: self.inner.facts.clone(),
                vector: self.inner.vector.clone(),
            }),
        }
    }

    /// The schema of the pgvector `vector` extension when the store has
    /// looked it up and found it (`connect` does): vector fields then get
    /// generated `vector(n)` columns and ANN indexes (see the README, "Vectors").
    pub fn vector_schema(&self) -> Option<&str> {
        self.inner.vector.get().and_then(Option::as_deref)
    }

    /// Look up (once) where the pgvector extension is installed in this
    /// database: `Some(schema)` or `None` (not installed, or SQLite).
    pub(crate) async fn vector_extension(&self) -> Result<Option<&str>> {
        if self.inner.vector.get().is_none() {
            let found = match self.inner.dialect {
                Dialect::Postgres => crate::vector::lookup(&self.inner.db)
                    .await
                    .map_err(|e| map_db_err(e, &crate::error::ConstraintNames::default()))?,
                Dialect::Sqlite => None,
            };
            let _ = self.inner.vector.set(found);
        }
        Ok(self.vector_schema())
    }

    /// The sea-orm connection (pool).
    pub fn connection(&self) -> &DatabaseConnection {
        &self.inner.db
    }

    /// Report transactions of this store (and of stores derived from it)
    /// held open longer than the detector's threshold. Set once; later calls
    /// are ignored.
    pub fn set_leak_detector(&self, detector: persistence_core::layer::LeakDetector) {
        let _ = self.inner.leaks.set(detector);
    }

    /// Record the raw calls of this store's repositories
    /// ([`query_as`](crate::RelationalRepository::query_as),
    /// [`execute`](crate::RelationalRepository::execute), also in
    /// transactions) with `metrics`: counted and timed as operations
    /// `query_as` / `execute`, slow ones in the slow log with their SQL text.
    /// Repository methods are recorded by a `Metrics` layer around the
    /// repository instead (raw calls are not repository methods). Set once
    /// (later calls are ignored); shared with tenant stores derived from this one.
    pub fn set_metrics(&self, metrics: persistence_core::layer::Metrics) {
        let _ = self.inner.metrics.set(metrics);
    }

    pub(crate) fn metrics(&self) -> Option<&persistence_core::layer::Metrics> {
        self.inner.metrics.get()
    }

    /// The shared facts of table `qualified` (see [`crate::query::facts`]).
    pub(crate) fn table_facts(&self, qualified: &str) -> Arc<crate::query::facts::TableFacts> {
        self.inner.facts.table(qualified)
    }

    pub(crate) fn leak_detector(&self) -> Option<&persistence_core::layer::LeakDetector> {
        self.inner.leaks.get()
    }

    /// The dialect.
    pub fn dialect(&self) -> Dialect {
        self.inner.dialect
    }

    /// The PostgreSQL schema, if one is configured.
    pub fn schema(&self) -> Option<&str> {
        self.inner.schema.as_deref()
    }

    /// Create the configured schema if it does not exist, marked as the
    /// library's (PostgreSQL; see [`crate::schema`]). Returns whether the
    /// schema is the library's (created now or earlier); an existing schema
    /// without the mark is left alone (`false`). `true` without a schema.
    pub async fn create_schema(&self) -> Result<bool> {
        match (self.schema(), self.dialect()) {
            (Some(s), Dialect::Postgres) => crate::schema::ensure_namespace(&self.inner.db, s)
                .await
                .map_err(|e| map_db_err(e, &Default::default()).with_operation("create_schema")),
            _ => Ok(true),
        }
    }

    /// Drop the configured schema and everything in it (PostgreSQL), only
    /// if the library created it (it carries the mark, see
    /// [`crate::schema`]): a schema made otherwise is refused with a
    /// `Config` error and left intact. A no-op without a schema (the
    /// default schema, e.g. `public`, is never dropped), on SQLite, or when
    /// the schema does not exist.
    pub async fn drop_schema(&self) -> Result<()> {
        if let (Some(s), Dialect::Postgres) = (self.schema(), self.dialect()) {
            crate::schema::drop_namespace(&self.inner.db, s)
                .await
                .map_err(|e| e.with_operation("drop_schema"))?;
        }
        Ok(())
    }

    /// Close the pool (shared by every clone of this store and by tenant
    /// stores derived from it).
    pub async fn close(&self) {
        match self.dialect() {
            #[cfg(feature = "postgres")]
            Dialect::Postgres => self.inner.db.get_postgres_connection_pool().close().await,
            #[cfg(feature = "sqlite")]
            Dialect::Sqlite => self.inner.db.get_sqlite_connection_pool().close().await,
            // A store of a dialect not compiled in cannot be connected.
            #[allow(unreachable_patterns)]
            _ => {}
        }
    }
}
