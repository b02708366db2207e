//! A MongoDB database of one's own.

use persistence_core::Result;
use persistence_core::error::redact_url;
use persistence_mongo::{MongoConfig, MongoStore};

use crate::cleanup::{CleanupFuture, run_blocking};
use crate::services::{self, Service};

/// A fresh MongoDB database name, dropped when this value is dropped (also
/// when the test panics) or by [`TestMongo::cleanup`].
///
/// MongoDB creates a database on its first write; nothing is created up
/// front, and the drop removes whatever the test wrote.
///
/// ```no_run
/// # async fn demo() {
/// use persistence_testing::TestMongo;
/// let Some(mongo) = TestMongo::database().await else { return }; // SKIPPED
/// let store = mongo.store().await.expect("connect");
/// # let _ = store;
/// # }
/// ```
pub struct TestMongo {
    url: String,
    database: String,
    cleaned: bool,
}

impl std::fmt::Debug for TestMongo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestMongo")
            .field("url", &redact_url(&self.url))
            .field("database", &self.database)
            .finish()
    }
}

impl TestMongo {
    /// A fresh database on the server of `MONGODB_URL` (or the local default).
    ///
    /// `None` when the server is missing outside CI (`SKIPPED` is printed;
    /// return early). With `CI=true` or `PERSISTENCE_REQUIRE_SERVICES=1` a
    /// missing server panics with a clear message.
    pub async fn database() -> Option<TestMongo> {
        let url = services::url(Service::Mongo)?;
        Some(Self::at(&url))
    }

    /// A fresh database name on the server at `url` (no skipping).
    pub fn at(url: &str) -> TestMongo {
        TestMongo {
            url: url.to_string(),
            database: format!("t_{}", services::unique_suffix()),
            cleaned: false,
        }
    }

    /// The server URL (contains credentials when configured with them).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The database name (`t_` and 12 hex digits).
    pub fn name(&self) -> &str {
        &self.database
    }

    /// The backend configuration for this database.
    pub fn config(&self) -> MongoConfig {
        MongoConfig::new(self.url.clone(), self.database.clone())
    }

    /// A store on this database (a new client per call).
    pub async fn store(&self) -> Result<MongoStore> {
        MongoStore::connect(&self.config()).await
    }

    /// Whether the database exists now (it has been written to and not dropped).
    pub async fn exists(&self) -> Result<bool> {
        let store = self.store().await?;
        let names = store
            .client()
            .list_database_names()
            .await
            .map_err(persistence_mongo::error::map_plain);
        store.client().clone().shutdown().await;
        Ok(names?.iter().any(|n| n == &self.database))
    }

    /// Drop the database now and report errors (instead of printing them
    /// from `Drop`).
    pub async fn cleanup(mut self) -> Result<()> {
        self.cleaned = true;
        drop_now(self.config()).await
    }
}

impl Drop for TestMongo {
    fn drop(&mut self) {
        if self.cleaned {
            return;
        }
        self.cleaned = true;
        let config = self.config();
        run_blocking(
            format!("MongoDB database {}", self.database),
            move || -> CleanupFuture { Box::pin(drop_now(config)) },
        );
    }
}

async fn drop_now(config: MongoConfig) -> Result<()> {
    let store = MongoStore::connect(&config).await?;
    // The name is this value's own (`t_` and a unique suffix), so it is
    // dropped whether or not the library marked it as created by itself.
    let dropped = store
        .database()
        .drop()
        .await
        .map_err(persistence_mongo::error::map_plain);
    store.client().clone().shutdown().await;
    dropped
}
