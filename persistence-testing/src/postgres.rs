//! A PostgreSQL schema or database of one's own.

use persistence_core::error::redact_url;
use persistence_core::{Error, Result};
use persistence_postgres::sea_orm::ConnectionTrait as _;
use persistence_postgres::{RelationalConfig, RelationalStore};

use crate::cleanup::{CleanupFuture, run_blocking};
use crate::services::{self, Service};

/// What a [`TestPostgres`] isolates the test in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isolation {
    /// A schema in the server's database (cheap; the URL is unchanged).
    Schema,
    /// A database of its own (for tests that need the `public` schema,
    /// extensions, or database-wide settings).
    Database,
}

/// A fresh PostgreSQL schema or database, dropped when this value is
/// dropped (also when the test panics) or by [`TestPostgres::cleanup`].
///
/// ```no_run
/// # async fn demo() {
/// use persistence_testing::TestPostgres;
/// let Some(pg) = TestPostgres::schema().await else { return }; // SKIPPED
/// let store = pg.store().await.expect("connect");
/// assert_eq!(store.schema(), pg.schema_name());
/// # }
/// ```
pub struct TestPostgres {
    server_url: String,
    url: String,
    name: String,
    isolation: Isolation,
    cleaned: bool,
}

impl std::fmt::Debug for TestPostgres {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestPostgres")
            .field("url", &redact_url(&self.url))
            .field("name", &self.name)
            .field("isolation", &self.isolation)
            .finish()
    }
}

impl TestPostgres {
    /// A fresh schema on the server of `DATABASE_URL` (or the local default).
    ///
    /// `None` when the server is missing outside CI (`SKIPPED` is printed;
    /// return early). With `CI=true` or `PERSISTENCE_REQUIRE_SERVICES=1` a
    /// missing server panics with a clear message.
    ///
    /// # Panics
    /// When the server answers but the schema cannot be created.
    pub async fn schema() -> Option<TestPostgres> {
        Self::located(Service::Postgres, Isolation::Schema).await
    }

    /// A fresh schema on the pgvector server of `VECTOR_DATABASE_URL`
    /// (`scripts/services` runs one on 127.0.0.1:5433), skipped or failing
    /// like [`TestPostgres::schema`].
    ///
    /// # Panics
    /// When the server answers but the schema cannot be created.
    pub async fn vector_schema() -> Option<TestPostgres> {
        Self::located(Service::PgVector, Isolation::Schema).await
    }

    /// A fresh database on the server of `DATABASE_URL` (see [`TestPostgres::schema`]).
    ///
    /// # Panics
    /// When the server answers but the database cannot be created.
    pub async fn database() -> Option<TestPostgres> {
        Self::located(Service::Postgres, Isolation::Database).await
    }

    async fn located(service: Service, isolation: Isolation) -> Option<TestPostgres> {
        let url = services::url(service)?;
        match Self::create(&url, isolation).await {
            Ok(pg) => Some(pg),
            Err(e) => panic!(
                "persistence-testing: cannot create a test {isolation:?} on {}: {e}",
                redact_url(&url)
            ),
        }
    }

    /// A fresh schema or database on the server at `url` (no skipping: a
    /// missing server is an error).
    pub async fn create(url: &str, isolation: Isolation) -> Result<TestPostgres> {
        let name = format!("t_{}", services::unique_suffix());
        let created = match isolation {
            // Created by the library, so it carries its mark and the code
            // under test may `drop_schema` it.
            Isolation::Schema => {
                let store = RelationalStore::connect(
                    &RelationalConfig::new(url)
                        .max_connections(1)
                        .schema(name.clone()),
                )
                .await?;
                let created = store.create_schema().await.map(|_| ());
                store.close().await;
                created
            }
            Isolation::Database => {
                let admin = connect_admin(url).await?;
                let created = admin
                    .connection()
                    .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
                    .await
                    .map(|_| ())
                    .map_err(persistence_postgres::error::map_error);
                admin.close().await;
                created
            }
        };
        created?;
        let db_url = match isolation {
            Isolation::Schema => url.to_string(),
            Isolation::Database => with_database(url, &name)?,
        };
        Ok(TestPostgres {
            server_url: url.to_string(),
            url: db_url,
            name,
            isolation,
            cleaned: false,
        })
    }

    /// The URL to connect with (for [`Isolation::Database`], the test
    /// database's own URL). Contains credentials when the server URL does.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The name of the schema or database (`t_` and 12 hex digits).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The isolation chosen.
    pub fn isolation(&self) -> Isolation {
        self.isolation
    }

    /// The schema name, for [`Isolation::Schema`].
    pub fn schema_name(&self) -> Option<&str> {
        (self.isolation == Isolation::Schema).then_some(self.name.as_str())
    }

    /// The database name, for [`Isolation::Database`].
    pub fn database_name(&self) -> Option<&str> {
        (self.isolation == Isolation::Database).then_some(self.name.as_str())
    }

    /// The backend configuration: the URL, the schema when isolated by
    /// schema, and a small pool (4 connections) so parallel tests do not
    /// exhaust the server.
    pub fn config(&self) -> RelationalConfig {
        let cfg = RelationalConfig::new(self.url.clone()).max_connections(4);
        match self.isolation {
            Isolation::Schema => cfg.schema(self.name.clone()),
            Isolation::Database => cfg,
        }
    }

    /// A store connected with [`TestPostgres::config`] (a new pool per call;
    /// drop it before this value, i.e. declare it after).
    pub async fn store(&self) -> Result<RelationalStore> {
        RelationalStore::connect(&self.config()).await
    }

    /// Whether the schema or database exists now (asked on a fresh connection).
    pub async fn exists(&self) -> Result<bool> {
        exists(&self.server_url, &self.name, self.isolation).await
    }

    /// Keep the schema or database: no cleanup on drop (to inspect it after
    /// a failure, or when the caller removes it itself). Returns its name.
    pub fn keep(mut self) -> String {
        self.cleaned = true;
        std::mem::take(&mut self.name)
    }

    /// Drop the schema or database now and report errors (instead of
    /// printing them from `Drop`).
    pub async fn cleanup(mut self) -> Result<()> {
        self.cleaned = true;
        drop_now(self.server_url.clone(), self.name.clone(), self.isolation).await
    }
}

impl Drop for TestPostgres {
    fn drop(&mut self) {
        if self.cleaned {
            return;
        }
        self.cleaned = true;
        let (url, name, isolation) = (self.server_url.clone(), self.name.clone(), self.isolation);
        run_blocking(
            format!("PostgreSQL {isolation:?} {name}").to_lowercase(),
            move || -> CleanupFuture { Box::pin(drop_now(url, name, isolation)) },
        );
    }
}

async fn connect_admin(url: &str) -> Result<RelationalStore> {
    RelationalStore::connect(&RelationalConfig::new(url).max_connections(1)).await
}

async fn drop_now(url: String, name: String, isolation: Isolation) -> Result<()> {
    let admin = connect_admin(&url).await?;
    let sql = match isolation {
        Isolation::Schema => format!("DROP SCHEMA IF EXISTS \"{name}\" CASCADE"),
        // FORCE (PostgreSQL 13+) ends sessions still connected to it.
        Isolation::Database => format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"),
    };
    let dropped = admin
        .connection()
        .execute_unprepared(&sql)
        .await
        .map(|_| ())
        .map_err(persistence_postgres::error::map_error);
    admin.close().await;
    dropped
}

async fn exists(url: &str, name: &str, isolation: Isolation) -> Result<bool> {
    use persistence_postgres::sea_orm::{DbBackend, Statement};
    let admin = connect_admin(url).await?;
    let sql = match isolation {
        Isolation::Schema => "SELECT 1 FROM information_schema.schemata WHERE schema_name = $1",
        Isolation::Database => "SELECT 1 FROM pg_database WHERE datname = $1",
    };
    let row = admin
        .connection()
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            sql,
            [name.into()],
        ))
        .await
        .map_err(persistence_postgres::error::map_error);
    admin.close().await;
    Ok(row?.is_some())
}

/// `url` with its database (path) replaced by `db`, keeping the query.
fn with_database(url: &str, db: &str) -> Result<String> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| Error::config("the PostgreSQL URL has no scheme"))?;
    let (before_query, query) = match rest.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (rest, None),
    };
    let authority = before_query.split('/').next().unwrap_or(before_query);
    let mut out = format!("{scheme}://{authority}/{db}");
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn replaces_the_database() {
        assert_eq!(
            with_database("postgres://u:p@h:5432/postgres", "t_1").ok(),
            Some("postgres://u:p@h:5432/t_1".to_string())
        );
        assert_eq!(
            with_database("postgres://h/x?sslmode=disable", "t_1").ok(),
            Some("postgres://h/t_1?sslmode=disable".to_string())
        );
        assert_eq!(
            with_database("postgresql://h", "t_1").ok(),
            Some("postgresql://h/t_1".to_string())
        );
        assert!(with_database("nope", "t_1").is_err());
    }
}
