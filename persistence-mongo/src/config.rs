//! The configuration of a MongoDB store: [`MongoConfig`] (where to connect,
//! which database, server selection, concerns), the write and read concern
//! settings the facade's YAML deserializes into, and their driver forms.
//! Plain data; the connected handle is [`MongoStore`] in
//! `store.rs`.

use std::time::Duration;

use mongodb::options::{Acknowledgment, ReadConcern, WriteConcern};
use persistence_core::names::{self, NameKind};
use persistence_core::{Error, Result};
use serde::{Deserialize, Serialize};

/// Old path of [`MongoStore`], now in `store.rs` (kept for one release).
#[doc(hidden)]
pub use crate::store::MongoStore;

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
