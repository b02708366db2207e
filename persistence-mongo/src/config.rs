//! Connection configuration and the [`MongoStore`] handle.

use std::sync::Arc;
use std::time::Duration;

use mongodb::options::{Acknowledgment, ClientOptions, ReadConcern, WriteConcern};
use mongodb::{Client, Database};
use persistence_core::names::{self, NameKind};
use persistence_core::{Entity, Error, Result};
use serde::{Deserialize, Serialize};

use crate::error::map_plain;
use crate::repository::MongoRepository;

/// The URL used when `MONGODB_URL` is not set.
pub const DEFAULT_URL: &str = "mongodb://127.0.0.1:27017/?directConnection=true";

/// The `w` of a MongoDB write concern: how many members acknowledge a write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "AckRepr", into = "AckRepr")]
pub enum WriteAck {
    /// `majority`: a majority of the replica set's voting members.
    Majority,
    /// A number of members (`1`: the primary alone).
    Nodes(u32),
    /// A custom write concern (tag set) name.
    Tag(String),
}

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum AckRepr {
    Nodes(u32),
    Name(String),
}

impl From<AckRepr> for WriteAck {
    fn from(r: AckRepr) -> Self {
        match r {
            AckRepr::Nodes(n) => WriteAck::Nodes(n),
            AckRepr::Name(s) if s == "majority" => WriteAck::Majority,
            AckRepr::Name(s) => WriteAck::Tag(s),
        }
    }
}

impl From<WriteAck> for AckRepr {
    fn from(w: WriteAck) -> Self {
        match w {
            WriteAck::Majority => AckRepr::Name("majority".to_string()),
            WriteAck::Nodes(n) => AckRepr::Nodes(n),
            WriteAck::Tag(s) => AckRepr::Name(s),
        }
    }
}

/// A MongoDB write concern (`databases.<name>.write_concern`). Every field
/// has a durable default, so a database without the section, and every key
/// left out, means `{ w: majority, journal: true }`: an acknowledged write
/// is on disk on a majority of members and survives a crash or a failover.
/// `w: 1` (the primary alone) and `journal: false` are explicit opt-outs
/// that trade that guarantee for latency.
///
/// ```yaml
/// write_concern: { w: majority, journal: true, timeout: 5s }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WriteConcernSettings {
    /// Acknowledgment (default `majority`).
    #[serde(default = "WriteConcernSettings::default_w")]
    pub w: WriteAck,
    /// Wait for the journal (default true).
    #[serde(default = "WriteConcernSettings::default_journal")]
    pub journal: bool,
    /// How long the server waits for the acknowledgment (`wtimeout`);
    /// default none: the call's `timeout` bounds it.
    #[serde(default, with = "humantime_serde")]
    pub timeout: Option<Duration>,
}

impl WriteConcernSettings {
    fn default_w() -> WriteAck {
        WriteAck::Majority
    }
    fn default_journal() -> bool {
        true
    }
}

impl Default for WriteConcernSettings {
    fn default() -> Self {
        WriteConcernSettings {
            w: Self::default_w(),
            journal: Self::default_journal(),
            timeout: None,
        }
    }
}

/// A MongoDB read concern level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReadConcernLevel {
    /// The node's most recent data (may be rolled back).
    Local,
    /// Like `local`, without waiting for sharded orphans to be filtered.
    Available,
    /// Data acknowledged by a majority (never rolled back).
    Majority,
    /// Majority data reflecting every write acknowledged before the read began.
    Linearizable,
    /// A snapshot of majority-committed data (transactions).
    Snapshot,
}

/// A MongoDB read concern (`databases.<name>.read_concern: { level }`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadConcernSettings {
    /// The level.
    pub level: ReadConcernLevel,
}

/// How to reach MongoDB and which database to use.
#[derive(Clone)]
pub struct MongoConfig {
    /// Connection string (`mongodb://` or `mongodb+srv://`). Never logged or put in errors.
    pub url: String,
    /// Database name (validated by [`persistence_core::names`]: ASCII
    /// letters, digits, `_` and `-`, at most 63 bytes, not reserved:
    /// `admin`, `local`, `config`, `public`, ...).
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

    /// Check the settings (done by [`MongoStore::connect`]): the database
    /// name per [`persistence_core::names`] (`Config` error naming
    /// `MongoConfig.database`).
    pub fn validate(&self) -> Result<()> {
        names::validate_config(NameKind::Database, &self.database, "MongoConfig.database")
    }
}

/// Check a database name with [`persistence_core::names`]: ASCII letters,
/// digits, `_`, `-`; 1..=63 bytes; not reserved (`Config` error).
pub fn validate_database_name(name: &str) -> Result<()> {
    match names::problem(NameKind::Database, name) {
        None => Ok(()),
        Some(p) => Err(Error::config(format!("MongoDB database name: {p}"))),
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
