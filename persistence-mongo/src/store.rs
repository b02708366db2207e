//! [`MongoStore`]: a connected client plus the database repositories live
//! in. It builds the driver client from a [`MongoConfig`] (durable write
//! concern unless told otherwise), installs the pool monitor, hands out
//! repositories and drops databases the library created. Transactions are
//! in `transaction.rs`.

use std::sync::Arc;

use mongodb::options::{ClientOptions, ReadConcern, WriteConcern};
use mongodb::{Client, Database};
use persistence_core::names::{self, NameKind};
use persistence_core::{Entity, Error, Result};

use crate::config::{MongoConfig, durable_write_concern, validate_database_name};
use crate::error::map_plain;
use crate::repository::MongoRepository;

/// A connected client plus the database repositories live in. Cheap to clone.
#[derive(Clone, Debug)]
pub struct MongoStore {
    client: Client,
    db: Database,
    /// Pool counts and command shapes from driver events (clients built by `connect`).
    monitor: Option<Arc<crate::pool::Monitor>>,
    /// Shared with stores derived by `with_database`.
    leaks: Arc<std::sync::OnceLock<persistence_core::layer::LeakDetector>>,
    /// Given to the repositories for their raw calls; shared like `leaks`.
    metrics: Arc<std::sync::OnceLock<persistence_core::layer::Metrics>>,
}

impl MongoStore {
    /// Connect (lazily: the first operation selects a server).
    pub async fn connect(config: &MongoConfig) -> Result<MongoStore> {
        config.validate()?;
        let mut opts = ClientOptions::parse(&config.url)
            .await
            .map_err(|e| crate::error::map_connect(e, &config.url))?;
        if opts.server_selection_timeout.is_none() {
            opts.server_selection_timeout = Some(config.server_selection_timeout);
        }
        if let Some(a) = &config.app_name {
            opts.app_name = Some(a.clone());
        }
        // Durable unless told otherwise: the configuration, else the URL, else majority + journal.
        opts.write_concern = Some(match (&config.write_concern, opts.write_concern.take()) {
            (Some(wc), _) => wc.clone(),
            (None, Some(url)) if url.w.is_some() || url.journal.is_some() => url,
            (None, url) => {
                let mut wc = durable_write_concern();
                wc.w_timeout = url.and_then(|u| u.w_timeout);
                wc
            }
        });
        if let Some(rc) = &config.read_concern {
            opts.read_concern = Some(rc.clone());
        }
        let monitor = crate::pool::Monitor::install(&mut opts);
        let client =
            Client::with_options(opts).map_err(|e| crate::error::map_connect(e, &config.url))?;
        let db = client.database(&config.database);
        Ok(MongoStore {
            client,
            db,
            monitor,
            leaks: Arc::default(),
            metrics: Arc::default(),
        })
    }

    /// A store over an existing client and database (no pool statistics:
    /// the client's event handlers are its owner's).
    pub fn from_database(client: Client, db: Database) -> MongoStore {
        MongoStore {
            client,
            db,
            monitor: None,
            leaks: Arc::default(),
            metrics: Arc::default(),
        }
    }

    /// Close the client's connections and stop its background tasks, now
    /// (shared by every clone of this store and by stores derived with
    /// `with_database`). Without this the driver's workers may still be
    /// handing out connections when the runtime stops, which panics inside
    /// the driver at process exit. Operations after `close` fail.
    pub async fn close(&self) {
        self.client.clone().shutdown().immediate(true).await;
    }

    /// Connection pool counts from the driver's events (`None` for a store
    /// built with [`from_database`](Self::from_database)).
    pub fn pool_stats(&self) -> Option<crate::MongoPoolStats> {
        self.monitor.as_ref().map(|m| m.stats())
    }

    /// Call `f` with the wait of every connection check-out (set once).
    pub fn on_connection_acquired(&self, f: impl Fn(std::time::Duration) + Send + Sync + 'static) {
        if let Some(m) = &self.monitor {
            m.set_acquire_observer(Box::new(f));
        }
    }

    /// Report transactions held open longer than the detector's threshold
    /// (set once; shared with stores derived by `with_database`).
    pub fn set_leak_detector(&self, detector: persistence_core::layer::LeakDetector) {
        let _ = self.leaks.set(detector);
    }

    /// Record the raw calls ([`find_raw`](MongoRepository::find_raw),
    /// [`aggregate_raw`](MongoRepository::aggregate_raw)) of the repositories
    /// this store hands out from now on (also in transactions) with
    /// `metrics`: see [`MongoRepository::with_metrics`]. Set once (later
    /// calls are ignored); shared with stores derived by `with_database`.
    pub fn set_metrics(&self, metrics: persistence_core::layer::Metrics) {
        let _ = self.metrics.set(metrics);
    }

    pub(crate) fn leak_detector(&self) -> Option<&persistence_core::layer::LeakDetector> {
        self.leaks.get()
    }

    /// The same client on another database (name validated).
    pub fn with_database(&self, name: &str) -> Result<MongoStore> {
        validate_database_name(name)?;
        Ok(MongoStore {
            client: self.client.clone(),
            db: self.client.database(name),
            monitor: self.monitor.clone(),
            leaks: self.leaks.clone(),
            metrics: self.metrics.clone(),
        })
    }

    /// The driver client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The driver database.
    pub fn database(&self) -> &Database {
        &self.db
    }

    /// The write concern every operation of this store uses (`None` only
    /// for a store over a client built elsewhere that sets none).
    pub fn write_concern(&self) -> Option<&WriteConcern> {
        self.db.write_concern()
    }

    /// The read concern in force (`None`: the server's default).
    pub fn read_concern(&self) -> Option<&ReadConcern> {
        self.db.read_concern()
    }

    /// The repository of entity `E` (collection named after the entity).
    pub fn repository<E: Entity>(&self) -> MongoRepository<E> {
        let repo = MongoRepository::new(&self.db);
        match self.metrics.get() {
            Some(m) => repo.with_metrics(m.clone()),
            None => repo,
        }
    }

    /// Check that a server answers (`ping`).
    pub async fn ping(&self) -> Result<()> {
        self.db
            .run_command(bson::doc! { "ping": 1 })
            .await
            .map(|_| ())
            .map_err(|e| map_plain(e).with_operation("ping"))
    }

    /// Drop the whole database (tests, tenants being removed), only if
    /// the library created it: its first collection was created by
    /// `ensure_schema` (the `database` marker in
    /// [`MARKER_COLLECTION`](persistence_core::names::MARKER_COLLECTION),
    /// see [`crate::schema`]). A database made otherwise (or holding
    /// another application's collections from before) is refused with a
    /// `Config` error and left intact; a reserved name (`admin`, `local`,
    /// `config`, ...) is always refused. A database with no collection is
    /// not an error (nothing to drop).
    pub async fn drop_database(&self) -> Result<()> {
        let name = self.db.name();
        names::validate_config(NameKind::Database, name, "drop_database")
            .map_err(|e| e.with_operation("drop_database"))?;
        let op = |e| map_plain(e).with_operation("drop_database");
        let collections = self.db.list_collection_names().await.map_err(op)?;
        if collections.is_empty() {
            return Ok(());
        }
        if !crate::schema::has_marker(&self.db, crate::schema::DATABASE_MARKER)
            .await
            .map_err(|e| e.with_operation("drop_database"))?
        {
            return Err(Error::config(format!(
                "database `{name}` was not created by persistence (no `{}` marker in its \
                 `{}` collection): refusing to drop it; drop it yourself if you mean to",
                crate::schema::DATABASE_MARKER,
                names::MARKER_COLLECTION
            ))
            .with_operation("drop_database"));
        }
        self.db.drop().await.map_err(op)
    }
}

/// Related rows for eager loading come from this store's collections (see
/// [`persistence_core::relation`]).
impl persistence_core::relation::Resolve for MongoStore {
    async fn repository<T: Entity>(&self) -> Result<persistence_core::SharedRepository<T>> {
        Ok(std::sync::Arc::new(MongoStore::repository::<T>(self)))
    }
}
