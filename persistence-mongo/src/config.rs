//! Connection configuration and the [`MongoStore`] handle.

use std::sync::Arc;
use std::time::Duration;

use mongodb::options::{Acknowledgment, ClientOptions, ReadConcern, WriteConcern};
use mongodb::{Client, Database};
use persistence_core::config::{
    ReadConcernLevel, ReadConcernSettings, WriteAck, WriteConcernSettings,
};
use persistence_core::{Entity, Error, Result};

use crate::error::map_plain;
use crate::repository::MongoRepository;

/// The URL used when `MONGODB_URL` is not set.
pub const DEFAULT_URL: &str = "mongodb://127.0.0.1:27017/?directConnection=true";

/// How to reach MongoDB and which database to use.
#[derive(Clone)]
pub struct MongoConfig {
    /// Connection string (`mongodb://` or `mongodb+srv://`). Never logged or put in errors.
    pub url: String,
    /// Database name (validated: ASCII letters, digits, `_` and `-`, at most 63 bytes).
    pub database: String,
    /// How long to wait for a suitable server before failing with `Unavailable`.
    pub server_selection_timeout: Duration,
    /// Application name reported to the server.
    pub app_name: Option<String>,
    /// The write concern of every operation. `None`: the URL's (`w=`,
    /// `journal=`, `wtimeoutMS=`) if it sets one, else [`durable_write_concern`].
    pub write_concern: Option<WriteConcern>,
    /// The read concern. `None`: the URL's, else the server's default (`local`).
    pub read_concern: Option<ReadConcern>,
}

/// The default write concern: `{ w: "majority", j: true }` — an acknowledged
/// write is journaled on a majority of members, so it survives a server
/// crash (kill -9) and a failover. Opt out explicitly with a weaker concern
/// (`MongoConfig::write_concern`, YAML `write_concern: { w: 1 }` or the URL).
pub fn durable_write_concern() -> WriteConcern {
    to_write_concern(&WriteConcernSettings::default())
}

/// The driver's write concern for the configuration's settings.
pub fn to_write_concern(s: &WriteConcernSettings) -> WriteConcern {
    let w = match &s.w {
        WriteAck::Majority => Acknowledgment::Majority,
        WriteAck::Nodes(n) => Acknowledgment::Nodes(*n),
        WriteAck::Tag(t) => Acknowledgment::Custom(t.clone()),
    };
    WriteConcern::builder()
        .w(w)
        .journal(s.journal)
        .w_timeout(s.timeout)
        .build()
}

/// The driver's read concern for the configuration's settings.
pub fn to_read_concern(s: &ReadConcernSettings) -> ReadConcern {
    match s.level {
        ReadConcernLevel::Local => ReadConcern::local(),
        ReadConcernLevel::Available => ReadConcern::available(),
        ReadConcernLevel::Majority => ReadConcern::majority(),
        ReadConcernLevel::Linearizable => ReadConcern::linearizable(),
        ReadConcernLevel::Snapshot => ReadConcern::snapshot(),
    }
}

impl std::fmt::Debug for MongoConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MongoConfig")
            .field("url", &persistence_core::error::redact_url(&self.url))
            .field("database", &self.database)
            .field("server_selection_timeout", &self.server_selection_timeout)
            .field("app_name", &self.app_name)
            .field("write_concern", &self.write_concern)
            .field("read_concern", &self.read_concern)
            .finish()
    }
}

impl MongoConfig {
    /// A configuration for `url` and `database`.
    pub fn new(url: impl Into<String>, database: impl Into<String>) -> Self {
        MongoConfig {
            url: url.into(),
            database: database.into(),
            server_selection_timeout: Duration::from_secs(10),
            app_name: None,
            write_concern: None,
            read_concern: None,
        }
    }

    /// Set the write concern (see [`durable_write_concern`] for the default).
    pub fn write_concern(mut self, wc: WriteConcern) -> Self {
        self.write_concern = Some(wc);
        self
    }

    /// Set the read concern.
    pub fn read_concern(mut self, rc: ReadConcern) -> Self {
        self.read_concern = Some(rc);
        self
    }

    /// `MONGODB_URL` (or [`DEFAULT_URL`]) and `database`.
    pub fn from_env(database: impl Into<String>) -> Self {
        let url = std::env::var("MONGODB_URL").unwrap_or_else(|_| DEFAULT_URL.to_string());
        Self::new(url, database)
    }

    /// Set the server selection timeout.
    pub fn server_selection_timeout(mut self, t: Duration) -> Self {
        self.server_selection_timeout = t;
        self
    }
}

/// Check a database name: ASCII letters, digits, `_`, `-`; 1..=63 bytes.
pub fn validate_database_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(Error::config(format!(
            "invalid MongoDB database name `{}` (ASCII letters, digits, _ and -, at most 63 bytes)",
            name.escape_default()
        )))
    }
}

/// A connected client plus the database repositories live in. Cheap to clone.
#[derive(Clone, Debug)]
pub struct MongoStore {
    client: Client,
    db: Database,
    /// Pool counts and command shapes from driver events (clients built by `connect`).
    monitor: Option<Arc<crate::monitor::Monitor>>,
    /// Shared with stores derived by `with_database`.
    leaks: Arc<std::sync::OnceLock<persistence_core::layer::LeakDetector>>,
}

impl MongoStore {
    /// Connect (lazily: the first operation selects a server).
    pub async fn connect(config: &MongoConfig) -> Result<MongoStore> {
        validate_database_name(&config.database)?;
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
        let monitor = crate::monitor::Monitor::install(&mut opts);
        let client =
            Client::with_options(opts).map_err(|e| crate::error::map_connect(e, &config.url))?;
        let db = client.database(&config.database);
        Ok(MongoStore {
            client,
            db,
            monitor,
            leaks: Arc::default(),
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
        }
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
        MongoRepository::new(&self.db)
    }

    /// Check that a server answers (`ping`).
    pub async fn ping(&self) -> Result<()> {
        self.db
            .run_command(bson::doc! { "ping": 1 })
            .await
            .map(|_| ())
            .map_err(|e| map_plain(e).with_operation("ping"))
    }

    /// Drop the whole database (tests, tenants being removed).
    pub async fn drop_database(&self) -> Result<()> {
        self.db
            .drop()
            .await
            .map_err(|e| map_plain(e).with_operation("drop_database"))
    }
}
